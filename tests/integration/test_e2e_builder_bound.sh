#!/usr/bin/env bash
# --builder-cache-max bounds the node's whole builder storage, not each cache: a node
# keeps one layer cache per client and platform (BUILDER_ROOT/CLIENT/PLATFORM), so a
# per-cache bound would let N clients use N times the bound. One node, two clients:
#   1. alice fills her cache, then bob's builds take the root over the bound: alice's idle
#      cache (the least recently used) is emptied, the root stays under the bound after
#      every build, and bob's log does not name alice;
#   2. a cache in use is never emptied: while alice's slow build runs, bob's builds take
#      the root over the bound again; alice's build succeeds with her file in the image,
#      bob's log says a running job's cache is over, and the next build after hers brings
#      the root back under the bound;
#   3. two jobs of one repository (one cache) at once: the prune waits for the running
#      one, both images are right, and the next job prunes.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
export LAB_SKIP_BINFMT=1
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=n1:2"
ak=$(lab_keygen alice)
bk=$(lab_keygen bob)
sed -i "/^  lab: {key:/a\\  alice: {key: \"$ak\", role: submit}\\n  bob: {key: \"$bk\", role: submit}" "$LAB/farm.yaml"
lab_start_coordinator "$LAB/farm.yaml"
max=$((10 * 1024 * 1024))
lab_start_agent n1 linux/amd64 --slots 2 --builder-cache-max 10M
lab_wait_nodes 1 30 n1
lab_example_context "$LAB/ex"
root=$LAB/agents/n1/buildah

ctx() { # DIR [RUN-TAIL]: busybox, then a new 1.5 MB file (a new layer each build)
    mkdir -p "$1"
    cp "$LAB/ex/busybox/amd64/busybox" "$1/busybox"
    head -c 1100000 /dev/urandom | base64 -w0 >"$1/data.txt"
    { printf 'FROM scratch\nCOPY busybox /bin/busybox\nCOPY data.txt /data.txt\n'
      [[ -z ${2:-} ]] || printf '%s\n' "$2"; } >"$1/Dockerfile"
}
build() { # CLIENT TAG LOG [RUN-TAIL]
    local who=$1 tag=$2 log=$3
    ctx "$LAB/ctx-$who" "${4:-}"
    FARM_KEY=$LAB/keys/$who.key lab_farmctl submit --progress plain --platform linux/amd64 \
        -t "$REGISTRY/$who/app:$tag" "$LAB/ctx-$who" >/dev/null 2>"$log" \
        || { cat "$log" >&2; lab_fail "$who's build $tag failed"; }
}
bytes() { du -sb "$1" | cut -f1; }
under_bound() { # WHEN
    local size
    size=$(bytes "$root")
    lab_log "$1: builder root $size bytes (bound $max)"
    ((size <= max)) || lab_fail "$1: the builder root is $size bytes, over --builder-cache-max ($max)"
}

# 1. alice's idle cache goes first when bob's builds take the root over the bound
for i in 1 2; do
    build alice "a$i" "$LAB/a$i.log"
    under_bound "after alice's build $i"
done
alice_size=$(bytes "$root/alice/linux-amd64")
lab_log "alice's cache: $alice_size bytes"
for i in 1 2 3 4; do
    build bob "b$i" "$LAB/b$i.log"
    under_bound "after bob's build $i"
done
grep -q 'emptied 1 idle cache(s) of other clients or platforms' "$LAB"/b*.log \
    || lab_fail "no build of bob's emptied alice's idle cache: the test did not exceed the bound"
after=$(bytes "$root/alice/linux-amd64")
((after < alice_size / 4)) || lab_fail "alice's idle cache is still $after bytes (was $alice_size)"
if grep -i alice "$LAB"/b*.log >&2; then
    lab_fail "bob's build log names alice (above)"
fi
lab_log "1: alice's idle cache was emptied ($alice_size -> $after bytes); bob's log does not name her"

# 2. a cache in use is never emptied: alice's slow build runs while bob goes over the bound
ctx "$LAB/ctx-alice" 'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox echo alice-slow-started; /bin/busybox sleep 25; /bin/busybox cp /data.txt /seen.txt"]'
data=$(cat "$LAB/ctx-alice/data.txt")
FARM_KEY=$LAB/keys/alice.key lab_farmctl submit --progress plain --platform linux/amd64 \
    -t "$REGISTRY/alice/app:slow" "$LAB/ctx-alice" >/dev/null 2>"$LAB/slow.log" &
slow=$!
lab_wait_until 120 "alice's slow RUN step" grep -q 'alice-slow-started' "$LAB/slow.log"
for i in 5 6 7; do
    build bob "b$i" "$LAB/b$i.log"
    lab_log "after bob's build $i (alice's running): builder root $(bytes "$root") bytes"
    grep -q 'alice-slow-started' "$LAB/slow.log" || lab_fail "alice's log lost its lines"
done
grep -q 'cache(s) in use by running jobs: a later job prunes them' "$LAB"/b[567].log \
    || lab_fail "bob's builds never found the root over the bound with alice's cache in use"
wait "$slow" || { cat "$LAB/slow.log" >&2; lab_fail "alice's build failed while bob's builds bounded the node"; }
got=$(lab_image_file "$REGISTRY/alice/app:slow" amd64 /seen.txt)
[[ $got == "$data" ]] || lab_fail "alice's image does not hold her file"
build bob b8 "$LAB/b8.log"
under_bound "after bob's build 8 (alice's done)"

# 3. two jobs of one repository share its cache at once: bob's slow build runs while his
# next builds of the same repository go over the bound; their prune waits for it (never
# removing what it uses), all succeed, and the first job after it prunes
ctx "$LAB/ctx-bob-slow" 'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox echo bob-slow-started; /bin/busybox sleep 20; /bin/busybox cp /data.txt /seen.txt"]'
data=$(cat "$LAB/ctx-bob-slow/data.txt")
FARM_KEY=$LAB/keys/bob.key lab_farmctl submit --progress plain --platform linux/amd64 \
    -t "$REGISTRY/bob/app:slow" "$LAB/ctx-bob-slow" >/dev/null 2>"$LAB/bslow.log" &
slow=$!
lab_wait_until 120 "bob's slow RUN step" grep -q 'bob-slow-started' "$LAB/bslow.log"
for i in 9 10; do
    build bob "b$i" "$LAB/b$i.log"
done
grep -q 'other jobs of it run, so a later job prunes it' "$LAB"/b9.log "$LAB"/b10.log \
    || lab_fail "bob's builds beside his slow one never found their cache over the bound"
wait "$slow" || { cat "$LAB/bslow.log" >&2; lab_fail "bob's slow build failed while his other builds used its cache"; }
got=$(lab_image_file "$REGISTRY/bob/app:slow" amd64 /seen.txt)
[[ $got == "$data" ]] || lab_fail "bob's slow image does not hold its file"
build bob b11 "$LAB/b11.log"
under_bound "after bob's build 11 (his slow one done)"
lab_log "PASS: --builder-cache-max bounds the whole node; idle caches go least recently used first, busy ones never"
