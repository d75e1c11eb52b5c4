#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two builds of one tag finishing out of order, on real parts: per tag the submit order
# wins. Builds A and C are submitted first and slowed by a long RUN step; B, submitted
# after them, is quick and pushes first under 1.0 and 2.0. Then:
# - 1.0 and 2.0 still name B's index (A and C, finishing later, do not move them);
# - A's own tag a-only names A's index; C, all of whose tags B took, is pushed by digest;
# - A and C succeed, their indexes are in the repository by digest, and farmctl and the
#   metadata file say which tag was not moved and which build has it.
# Then across a restart: D (slow) is submitted, E after it pushes 3.0, the coordinator is
# SIGKILLed and started again while D's RUN step goes on; D's adopted result is pushed by
# the new coordinator, which knows from its journal that 3.0 is E's and leaves it.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=x86-1:3"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent x86-1 linux/amd64 --slots 3
lab_wait_nodes 1 30 x86-1

REPO=$REGISTRY/team/app
for b in A B C; do
    lab_example_context "$LAB/$b"
    echo "RUN echo $b > /etc/farm-which" >>"$LAB/$b/Dockerfile"
done
for b in A C; do
    echo 'RUN echo "farm-test: slow" && sleep 20' >>"$LAB/$b/Dockerfile"
done

# submit NAME TAGS...: farmctl submit in the background, its pid in pid_NAME
submit() {
    local name=$1 t
    local -a args=()
    shift
    for t in "$@"; do args+=(-t "$REPO:$t"); done
    lab_farmctl submit "${args[@]}" --platform linux/amd64 --progress plain \
        --metadata-file "$LAB/$name.json" "$LAB/$name" >"$LAB/$name.out" 2>"$LAB/$name.err" &
    printf -v "pid_$name" '%s' $!
}
# finished NAME: wait for its farmctl; it must succeed and print a digest
finished() {
    local pid_var=pid_$1 rc=0
    wait "${!pid_var}" || rc=$?
    cat "$LAB/$1.err" >&2
    ((rc == 0)) || lab_fail "build $1 failed (exit $rc)"
    grep -Eq '^sha256:[0-9a-f]{64}$' "$LAB/$1.out" || lab_fail "build $1 printed no index digest"
}
meta() { "$LAB_PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$LAB/$1.json" "$2"; }
digest_of() { lab_index "$1" | sha256sum | sed 's/^/sha256:/; s/ .*//'; }

submit A 1.0 a-only
submit C 2.0
lab_wait_until 60 "A and C to run their slow step" bash -c \
    "grep -q 'farm-test: slow' '$LAB/A.err' && grep -q 'farm-test: slow' '$LAB/C.err'"
submit B 1.0 2.0
finished B
# B was submitted last but finished first: A and C are still building
grep -q 'farm-test: slow' "$LAB/A.err" && ! grep -Eq '^sha256:' "$LAB/A.out" \
    || lab_fail "A finished before B: the test did not make them finish out of order"
finished A
finished C

a=$(cat "$LAB/A.out") b=$(cat "$LAB/B.out") c=$(cat "$LAB/C.out")
[[ $a != "$b" && $c != "$b" && $a != "$c" ]] || lab_fail "the three builds made the same index"
id_b=$(meta B 'd["farm.build_id"]')
[[ $id_b =~ ^b[0-9]+-[0-9a-f]{32}$ ]] || lab_fail "B's metadata has no build id ($id_b)"

# the tags: the newer build's index stays
got=$(digest_of "$REPO:1.0") || lab_fail "tag 1.0 is not in $REPO"
[[ $got == "$b" ]] || lab_fail "tag 1.0 names $got, not the newer build B's index $b (A's is $a)"
got=$(digest_of "$REPO:2.0") || lab_fail "tag 2.0 is not in $REPO"
[[ $got == "$b" ]] || lab_fail "tag 2.0 names $got, not the newer build B's index $b (C's is $c)"
got=$(digest_of "$REPO:a-only") || lab_fail "tag a-only is not in $REPO"
[[ $got == "$a" ]] || lab_fail "tag a-only names $got, not A's index $a"
# the older builds' indexes are in the repository by digest, whole
for d in "$a" "$c"; do
    got=$(digest_of "$REPO@$d") || lab_fail "index $d is not in $REPO by digest"
    [[ $got == "$d" ]] || lab_fail "$REPO@$d serves bytes with digest $got"
done

# farmctl says which tag was not moved and why
grep -Fq "tag 1.0 not moved: build $id_b (submitted later) already pushed it" "$LAB/A.err" \
    || lab_fail "farmctl did not say A's tag 1.0 was kept for B"
grep -Fq "tag 2.0 not moved: build $id_b (submitted later) already pushed it" "$LAB/C.err" \
    || lab_fail "farmctl did not say C's tag 2.0 was kept for B"
grep -q 'not moved' "$LAB/B.err" && lab_fail "B was told a tag was not moved"
grep -Fq "#index pushed to $REPO:a-only " "$LAB/A.err" || lab_fail "A does not say it pushed a-only (only)"
grep -Fq "#index pushed to $REPO@$c " "$LAB/C.err" || lab_fail "C does not say its index went by digest"
# and the metadata file records it
[[ $(meta A "d['farm.tags_not_moved'] == [{'tag': '1.0', 'pushed_by': '$id_b'}]") == True ]] \
    || lab_fail "A's metadata: farm.tags_not_moved is $(meta A 'd["farm.tags_not_moved"]')"
[[ $(meta A 'd["image.name"]') == "$REPO:a-only" ]] || lab_fail "A's image.name is $(meta A 'd["image.name"]')"
[[ $(meta C 'd["image.name"]') == "$REPO@$c" ]] || lab_fail "C's image.name is $(meta C 'd["image.name"]')"
[[ $(meta C "d['farm.tags_not_moved'] == [{'tag': '2.0', 'pushed_by': '$id_b'}]") == True ]] \
    || lab_fail "C's metadata: farm.tags_not_moved is $(meta C 'd["farm.tags_not_moved"]')"
[[ $(meta B 'd["farm.tags_not_moved"]') == "[]" ]] || lab_fail "B's metadata lists tags not moved"
grep -q "every tag was taken by a build submitted later: its index is pushed by digest only" \
    "$LAB/coordinator.log" || lab_fail "the coordinator did not log C's push by digest"
lab_log "out of order: 1.0 and 2.0 name B's index; A and C pushed by digest (A also under a-only)"

# --- across a coordinator restart: the order is in the journal
lab_example_context "$LAB/D"
lab_example_context "$LAB/E"
echo 'RUN echo D > /etc/farm-which && echo "farm-test: slower" && sleep 25' >>"$LAB/D/Dockerfile"
echo 'RUN echo E > /etc/farm-which' >>"$LAB/E/Dockerfile"
submit D 3.0
lab_wait_until 60 "D to run its slow step" grep -q 'farm-test: slower' "$LAB/D.err"
id_d=$(grep -o 'build b[0-9]*-[0-9a-f]* accepted' "$LAB/D.err" | head -1 | cut -d' ' -f2)
[[ -n $id_d ]] || lab_fail "farmctl did not name build D"
submit E 3.0
finished E
e=$(cat "$LAB/E.out")
id_e=$(meta E 'd["farm.build_id"]')
lab_log "E ($id_e) pushed 3.0 while D ($id_d) builds; SIGKILL to the coordinator"
lab_stop coordinator KILL
lab_wait_until 30 "the agent to notice the coordinator was gone" \
    grep -q 'silent for .* ms; reconnecting' "$LAB/agent-x86-1.log"
lab_start_coordinator "$LAB/farm.yaml"
lab_wait_until 120 "D's index, pushed by the restarted coordinator" \
    grep -q "build=$id_d pushed index" "$LAB/coordinator.log"
d=$(grep -o "build=$id_d pushed index sha256:[0-9a-f]*" "$LAB/coordinator.log" | tail -1 | awk '{print $4}')
[[ $d != "$e" ]] || lab_fail "D and E made the same index"
grep -Fq "build=$id_d tag $REPO:3.0 not moved: build $id_e (submitted later) already pushed it" \
    "$LAB/coordinator.log" || lab_fail "the restarted coordinator did not keep 3.0 for E"
got=$(digest_of "$REPO:3.0") || lab_fail "tag 3.0 is not in $REPO"
[[ $got == "$e" ]] || lab_fail "after the restart, tag 3.0 names $got, not the newer build E's index $e (D's is $d)"
got=$(digest_of "$REPO@$d") || lab_fail "D's index $d is not in $REPO by digest"
[[ $got == "$d" ]] || lab_fail "$REPO@$d serves bytes with digest $got"
kill "$pid_D" 2>/dev/null || true
lab_log "across a restart: 3.0 names E's index; D's index pushed by digest"
lab_log "PASS"
