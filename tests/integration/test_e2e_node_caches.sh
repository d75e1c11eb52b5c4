#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# farmctl du and farmctl prune on real parts (coordinator, two sandboxed agents, buildah,
# a registry): du lists each node's builder cache and cached contexts with their sizes;
# prune --filter until=1h keeps what was just used; a prune while a job builds leaves that
# job's cache alone and the job succeeds; a plain prune frees the space (du says so), and
# the next build of the same Dockerfile is cold (no step from the cache, not placed as
# warm); a plain prune keeps the base images builds pulled, --all removes them too; a
# client with role submit is refused with the role it needs; a lost node is named in the
# answer.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
export LAB_SKIP_BINFMT=1
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=n1,n2"
sk=$(lab_keygen sub)
sed -i "/^  lab: {key:/a\\  sub: {key: \"$sk\", role: submit}" "$LAB/farm.yaml"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent n1 linux/amd64
lab_start_agent n2 linux/amd64
lab_wait_nodes 2 30 n1 n2
lab_example_context "$LAB/ex"

submit() { # NAME CONTEXT [args]: a build of linux/amd64, its plain progress in $LAB/NAME.log
    local name=$1 ctx=$2
    shift 2
    lab_farmctl submit --progress plain --platform linux/amd64 -t "$REGISTRY/team/app:$name" \
        "$@" "$ctx" >"$LAB/$name.out" 2>"$LAB/$name.log" \
        || { cat "$LAB/$name.log" >&2; lab_fail "submit $name failed"; }
}
du_json() { lab_farmctl du --format json >"$LAB/$1.json" 2>"$LAB/$1.err" \
    || { cat "$LAB/$1.err" >&2; lab_fail "farmctl du ($1) failed"; }; }
# NODE KIND FIELD FILE: the sum of FIELD over NODE's entries of KIND
sum() { jq --arg n "$1" --arg k "$2" "[.reports[] | select(.node == \$n) | .entries[] |
    select(.kind == \$k) | .$3] | add // 0" "$4"; }

# two builds, one on each node (the other drained meanwhile)
lab_farmctl drain n2 >/dev/null
submit a "$LAB/ex"
lab_farmctl drain n2 --undo >/dev/null
lab_farmctl drain n1 >/dev/null
cp -r "$LAB/ex" "$LAB/ex2"
echo two >"$LAB/ex2/extra.txt"
submit b "$LAB/ex2"
lab_farmctl drain n1 --undo >/dev/null

# du: each node's cache of client lab for linux/amd64, and its context, not empty
du_json du1
for n in n1 n2; do
    b=$(sum $n builder size "$LAB/du1.json")
    c=$(sum $n context size "$LAB/du1.json")
    ((b > 1000000)) || lab_fail "du: $n's builder cache is $b bytes (expected the build's layers)"
    ((c > 0)) || lab_fail "du: $n has no cached context"
    jq -e --arg n $n '.reports[] | select(.node == $n) | .entries[] |
        select(.kind == "builder" and .scope == "lab" and .platform == "linux/amd64" and
               .in_use == false and .last_used_unix > 0)' "$LAB/du1.json" >/dev/null \
        || lab_fail "du: $n lists no builder cache of client lab, linux/amd64"
done
lab_farmctl du >"$LAB/du1.txt"
grep -Eq '^n1 +builder lab linux/amd64 +[0-9.]+M ' "$LAB/du1.txt" \
    || { cat "$LAB/du1.txt" >&2; lab_fail "the du table lacks n1's builder cache"; }
grep -q '^Total:' "$LAB/du1.txt" || lab_fail "the du table has no total"
lab_farmctl du --verbose --node n2 >"$LAB/du1v.txt"
grep -q $'^Client:\t\tlab' "$LAB/du1v.txt" && ! grep -q $'^Node:\t\tn1' "$LAB/du1v.txt" \
    || { cat "$LAB/du1v.txt" >&2; lab_fail "du --verbose --node n2 is not n2's alone"; }
lab_log "du: both nodes' caches listed"

# a submit client may not: the refusal names the role and the fix
if FARM_KEY=$LAB/keys/sub.key lab_farmctl du >/dev/null 2>"$LAB/sub.err"; then
    lab_fail "a client with role submit ran farmctl du"
fi
grep -q 'client sub has role submit; to list or prune node caches .* needs role admin' \
    "$LAB/sub.err" || { cat "$LAB/sub.err" >&2; lab_fail "the refusal does not name the role"; }
if FARM_KEY=$LAB/keys/sub.key lab_farmctl prune -f >/dev/null 2>"$LAB/sub2.err"; then
    lab_fail "a client with role submit ran farmctl prune"
fi
grep -q 'needs role admin' "$LAB/sub2.err" || lab_fail "prune's refusal does not name the role"
# without a terminal and without -f, nothing is pruned
if lab_farmctl prune </dev/null >/dev/null 2>"$LAB/noforce.err"; then
    lab_fail "farmctl prune pruned without a terminal and without -f"
fi
grep -q 'pass -f' "$LAB/noforce.err" || lab_fail "the refusal without -f does not say -f"
# on a terminal it asks; "n" prunes nothing
printf 'n\n' | script -qec "'$FARMCTL' prune --coordinator '$FARM_COORDINATOR'" /dev/null \
    >"$LAB/tty.out" 2>&1 && lab_fail "farmctl prune on a terminal answered n exited 0"
grep -q 'Are you sure you want to continue? \[y/N\]' "$LAB/tty.out" \
    && grep -q 'nothing pruned' "$LAB/tty.out" || { cat "$LAB/tty.out" >&2; lab_fail "prune on a terminal did not ask"; }
# an unknown node is refused, naming the nodes there are
if lab_farmctl du --node nope >/dev/null 2>"$LAB/nope.err"; then lab_fail "du --node nope ran"; fi
grep -q 'no node "nope" in farm.yaml; its nodes are: n1, n2' "$LAB/nope.err" \
    || { cat "$LAB/nope.err" >&2; lab_fail "the unknown node's refusal names no nodes"; }
lab_log "refusals: role, no -f, unknown node"

# until=1h keeps everything just used
lab_farmctl prune -f --filter until=1h --format json >"$LAB/p1.json"
[[ $(jq '[.reports[].freed] | add' "$LAB/p1.json") == 0 ]] || lab_fail "until=1h freed something"
[[ $(jq '[.reports[].entries[] | select(.kept | test("within until=1h") | not)] | length' \
    "$LAB/p1.json") == 0 ]] || lab_fail "until=1h: an entry was not kept as recently used"
du_json du2
for n in n1 n2; do
    [[ $(sum $n builder size "$LAB/du2.json") -ge $(( $(sum $n builder size "$LAB/du1.json") / 2 )) ]] \
        || lab_fail "until=1h: $n's builder cache shrank"
done
lab_log "prune --filter until=1h kept the caches used minutes ago"

# a prune while a job builds on n1: its cache is kept, the job ends well
mkdir -p "$LAB/slow"
cp "$LAB/ex/busybox/amd64/busybox" "$LAB/slow/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox","sh","-c","/bin/busybox --install -s /bin"]\nRUN sleep 12 && echo slow-done\n' \
    >"$LAB/slow/Dockerfile"
lab_farmctl drain n2 >/dev/null
lab_farmctl submit --progress plain --platform linux/amd64 -t "$REGISTRY/team/slow:1" "$LAB/slow" \
    >"$LAB/slow.out" 2>"$LAB/slow.log" &
slow_pid=$!
lab_wait_until 120 "the slow job's RUN sleep step" grep -q 'RUN sleep 12' "$LAB/slow.log"
lab_farmctl prune -f --node n1 --format json >"$LAB/p2.json"
jq -e '.reports[0].entries[] | select(.kind == "builder" and .scope == "lab" and
    .in_use == true and .kept == "in use by a running job")' "$LAB/p2.json" >/dev/null \
    || { cat "$LAB/p2.json" >&2; lab_fail "the prune did not keep the running job's cache"; }
jq -e '.reports[0].entries[] | select(.kind == "context" and .in_use == true and
    .kept == "in use by a running job")' "$LAB/p2.json" >/dev/null \
    || lab_fail "the prune did not keep the running job's context"
jq -e '.reports[0].entries[] | select(.kind == "job" and .in_use == true and .size > 0 and
    .kept == "in use by a running job")' "$LAB/p2.json" >/dev/null \
    || lab_fail "the running job's directory is not listed, in use, with its size"
wait $slow_pid || { cat "$LAB/slow.log" >&2; lab_fail "the job that ran through a prune failed"; }
grep -q 'slow-done' "$LAB/slow.log" || lab_fail "the slow job's step did not finish"
lab_farmctl drain n2 --undo >/dev/null
lab_log "a prune during a build kept its cache and context; the build succeeded"

# prune: space freed, du shows it, the next build is cold
lab_farmctl prune -f >"$LAB/p3.txt"
grep -Eq '^Total:.*reclaimed \([1-9][0-9]* bytes\)' "$LAB/p3.txt" \
    || { cat "$LAB/p3.txt" >&2; lab_fail "prune reclaimed nothing"; }
grep -Eq '^n2 +pruned builder lab linux/amd64 ' "$LAB/p3.txt" \
    || lab_fail "prune did not list n2's builder cache as pruned"
du_json du3
for n in n1 n2; do
    before=$(sum $n builder size "$LAB/du2.json")
    after=$(sum $n builder size "$LAB/du3.json")
    ((after < before / 2)) || lab_fail "du after prune: $n's builder cache $before -> $after bytes"
    [[ $(sum $n context size "$LAB/du3.json") == 0 ]] || lab_fail "du after prune: $n keeps contexts"
done
lab_log "prune freed the caches: $(grep '^Total' "$LAB/p3.txt")"
submit a2 "$LAB/ex"
grep -q 'farm: 0 of [1-9][0-9]* build steps from the cache' "$LAB/a2.log" \
    || { grep 'steps from the cache' "$LAB/a2.log" >&2; lab_fail "the rebuild after prune took steps from a cache"; }
grep -q '(warm)' "$LAB/a2.out" "$LAB/a2.log" && lab_fail "the rebuild after prune was placed as warm"
lab_log "the rebuild after prune is cold"

# a base image a build pulled stays through a plain prune; --all removes it too
mkdir -p "$LAB/onbase"
printf 'FROM %s\nRUN echo on-base >/on-base\n' "$REGISTRY/team/app:a" >"$LAB/onbase/Dockerfile"
lab_farmctl drain n2 >/dev/null
submit onbase "$LAB/onbase"
lab_farmctl drain n2 --undo >/dev/null
lab_farmctl prune -f --node n1 --format json >"$LAB/p4.json"
kept=$(sum n1 builder size "$LAB/p4.json")
((kept > 1000000)) || lab_fail "a plain prune left $kept bytes on n1: it removed the base image"
[[ $(sum n1 builder freed "$LAB/p4.json") -gt 0 ]] || lab_fail "a plain prune freed no build step"
lab_farmctl prune -f --all --node n1 --format json >"$LAB/p5.json"
left=$(sum n1 builder size "$LAB/p5.json")
((left < kept / 2)) || lab_fail "prune --all left $left of $kept bytes: the base image stayed"
lab_log "a plain prune kept the base image ($kept bytes); --all removed it ($left left)"

# a lost node is named
lab_stop agent-n2 KILL
lab_wait_until 30 "n2 to be lost" bash -c "'$FARMCTL' nodes --coordinator '$FARM_COORDINATOR' | grep -Eq '^n2 .* lost'"
if lab_farmctl du --format json >"$LAB/du4.json" 2>"$LAB/du4.err"; then
    lab_fail "du exited 0 with a node missing"
fi
grep -q '^farmctl du: node n2 did not answer: lost' "$LAB/du4.err" \
    || { cat "$LAB/du4.err" >&2; lab_fail "du did not name the lost node"; }
jq -e '.missing[0].node == "n2" and (.reports | length) == 1 and .reports[0].node == "n1"' \
    "$LAB/du4.json" >/dev/null || lab_fail "du's answer with n2 lost is not n1's report and n2 missing"
lab_log "PASS"
