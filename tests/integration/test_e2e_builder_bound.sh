#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# --builder-cache-max bounds the node's whole builder storage, not each cache: a node
# keeps one layer cache per client and platform (BUILDER_ROOT/CLIENT/PLATFORM), so a
# per-cache bound would let N clients use N times the bound. One node, three clients:
#   1. alice builds, then carol, then bob's builds take the root over the bound: the
#      least recently used idle cache (alice's) is emptied and carol's is kept; the root
#      stays under the bound after every build; bob's logs name neither of them;
#   2. caches in use are never emptied: while a slow build of alice's and one of bob's
#      run, bob's next builds of the same repository go over the bound: his own cache's
#      prune waits for his running job ("other jobs of it run"), alice's busy cache is left
#      alone ("in use by running jobs"), both slow images are right, and the first build
#      after them brings the root back under the bound.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
export LAB_SKIP_BINFMT=1
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=n1:3"
for who in alice bob carol; do
    k=$(lab_keygen "$who")
    sed -i "/^  lab: {key:/a\\  $who: {key: \"$k\", role: submit}" "$LAB/farm.yaml"
done
lab_start_coordinator "$LAB/farm.yaml"
max=$((10 * 1024 * 1024))
lab_start_agent n1 linux/amd64 --slots 3 --builder-cache-max 10M
lab_wait_nodes 1 30 n1
lab_example_context "$LAB/ex"
root=$LAB/agents/n1/buildah

ctx() { # DIR [RUN-TAIL]: busybox, then a new file (a new layer each build)
    mkdir -p "$1"
    cp "$LAB/ex/busybox/amd64/busybox" "$1/busybox"
    head -c 300000 /dev/urandom | base64 -w0 >"$1/data.txt"
    { printf 'FROM scratch\nCOPY busybox /bin/busybox\nCOPY data.txt /data.txt\n'
      [[ -z ${2:-} ]] || printf '%s\n' "$2"; } >"$1/Dockerfile"
}
submit() { # CLIENT TAG CONTEXT LOG
    FARM_KEY=$LAB/keys/$1.key lab_farmctl submit --progress plain --platform linux/amd64 \
        -t "$REGISTRY/$1/app:$2" "$3" >/dev/null 2>"$4"
}
build() { # CLIENT TAG LOG
    ctx "$LAB/ctx-$1"
    submit "$1" "$2" "$LAB/ctx-$1" "$3" || { cat "$3" >&2; lab_fail "$1's build $2 failed"; }
}
bytes() { du -sb "$1" | cut -f1; }
under_bound() { # WHEN
    local size
    size=$(bytes "$root")
    lab_log "$1: builder root $size bytes (bound $max)"
    ((size <= max)) || lab_fail "$1: the builder root is $size bytes, over --builder-cache-max ($max)"
}

# 1. the least recently used idle cache goes first
build alice a1 "$LAB/a1.log"
build carol c1 "$LAB/c1.log"
under_bound "after alice's and carol's builds"
alice_size=$(bytes "$root/alice/linux-amd64")
carol_size=$(bytes "$root/carol/linux-amd64")
emptied=0
for i in 1 2 3 4 5 6 7 8; do
    build bob "b$i" "$LAB/b$i.log"
    under_bound "after bob's build $i"
    if grep -q 'emptied 1 idle cache(s) of other clients or platforms' "$LAB/b$i.log"; then
        emptied=$i
        break
    fi
done
((emptied)) || lab_fail "8 builds of bob's never took the root over the bound: the test did not exercise it"
a=$(bytes "$root/alice/linux-amd64")
c=$(bytes "$root/carol/linux-amd64")
lab_log "bob's build $emptied emptied one cache: alice $alice_size -> $a bytes, carol $carol_size -> $c bytes"
((a < alice_size / 4)) || lab_fail "alice's cache, the least recently used, was not emptied ($alice_size -> $a bytes)"
((c >= carol_size * 9 / 10)) || lab_fail "carol's cache, used after alice's, was emptied first ($carol_size -> $c bytes)"
if grep -Ei 'alice|carol' "$LAB"/b*.log >&2; then
    lab_fail "bob's build logs name another client (above)"
fi

# 2. caches in use are never emptied, and a cache's own prune waits for its running job
slow='RUN ["/bin/busybox", "sh", "-c", "/bin/busybox echo slow-started; /bin/busybox sleep 75; /bin/busybox cp /data.txt /seen.txt"]'
for who in alice bob; do
    ctx "$LAB/slow-$who" "$slow"
    submit "$who" slow "$LAB/slow-$who" "$LAB/slow-$who.log" &
    eval "slow_$who=\$!"
done
lab_wait_until 120 "both slow RUN steps" bash -c \
    "grep -q slow-started '$LAB/slow-alice.log' && grep -q slow-started '$LAB/slow-bob.log'"
# (no fixed count: bob builds until both cases came up, while the slow steps still run)
seen_busy=0 seen_own=0
for i in 11 12 13 14 15 16 17 18 19 20; do
    kill -0 "$slow_alice" 2>/dev/null && kill -0 "$slow_bob" 2>/dev/null || break
    build bob "b$i" "$LAB/b$i.log"
    lab_log "after bob's build $i (two slow builds running): builder root $(bytes "$root") bytes"
    grep -q 'cache(s) in use by running jobs: a later job prunes them' "$LAB/b$i.log" && seen_busy=1
    grep -q 'other jobs of it run, so a later job prunes it' "$LAB/b$i.log" && seen_own=1
    ((seen_busy && seen_own)) && break
done
((seen_busy)) || lab_fail "bob's builds never found the root over the bound with alice's cache in use"
((seen_own)) || lab_fail "bob's builds never found his own cache over the bound while his slow build ran"
for who in alice bob; do
    eval "pid=\$slow_$who"
    wait "$pid" || { cat "$LAB/slow-$who.log" >&2; lab_fail "$who's slow build failed while the node was pruned"; }
    got=$(lab_image_file "$REGISTRY/$who/app:slow" amd64 /seen.txt)
    [[ $got == "$(cat "$LAB/slow-$who/data.txt")" ]] || lab_fail "$who's slow image does not hold its file"
done
build bob b21 "$LAB/b21.log"
under_bound "after bob's build 21 (the slow builds done)"
lab_log "PASS: --builder-cache-max bounds the whole node; idle caches go least recently used first, busy ones never"
