#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two agents serve linux/amd64; the one running the job is killed with SIGKILL
# mid-build; the build still succeeds on the other within a few heartbeat intervals.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=x86-a,x86-b"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent x86-a linux/amd64
lab_start_agent x86-b linux/amd64
lab_wait_nodes 2 30 x86-a x86-b
ctx=$LAB/ctx
lab_example_context "$ctx"

# wait_long_step ERRFILE: wait until the build's long RUN step runs; print its node
# (180 s, as the other tests wait for a build's step: a build on a loaded machine)
wait_long_step() {
    local deadline=$((SECONDS + 180))
    while ((SECONDS < deadline)); do
        if grep -q "] farm-test: long step starts [0-9]*$" "$1"; then
            grep -m1 -o 'dispatched: attempt 1 on [a-z0-9-]*' "$1" | awk '{print $NF}'
            return 0
        fi
        sleep 0.1
    done
    cat "$1" >&2
    lab_fail "the build never reached its long RUN step"
}
# a long RUN step so there is a "mid-build" to kill
cat >>"$ctx/Dockerfile" <<'DEOF'
# a new ROUND per submit: the long step runs every time (the nodes keep a layer cache)
ARG ROUND
RUN echo "farm-test: long step starts $ROUND" && sleep 6 && echo "farm-test: long step ends"
DEOF
tag=$REGISTRY/team/survivor:1.0
"$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$tag" --platform linux/amd64 --build-arg ROUND=1 \
    --metadata-file "$LAB/meta.json" --progress plain "$ctx" >"$LAB/out" 2>"$LAB/err" &
submit_pid=$!
victim=$(wait_long_step "$LAB/err") && [[ -n $victim ]] || lab_fail "no node ran the long step"
# farmctl nodes shows the running job on its node
lab_farmctl nodes >"$LAB/nodes-busy"
cat "$LAB/nodes-busy" >&2
grep -Eq "^$victim +linux/amd64 +ready +1/1 +[0-9.]+[KMGTP]? +[0-9]+ +[0-9][^ ]* +b[0-9]+-[0-9a-f]+\.1\$" "$LAB/nodes-busy" \
    || lab_fail "farmctl nodes does not show $victim busy with the job"
lab_log "killing $victim (SIGKILL) mid-build"
lab_signal "agent-$victim" KILL
t_kill=$(date +%s.%N)
rc=0
wait "$submit_pid" || rc=$?
t_done=$(date +%s.%N)
cat "$LAB/err" >&2
(( rc == 0 )) || lab_fail "the build failed after losing $victim (exit $rc)"
survivor=x86-a; [[ $victim == x86-a ]] && survivor=x86-b
grep -q "lost: node $victim lost" "$LAB/err" || lab_fail "farmctl was not told that $victim was lost"
grep -q "dispatched: attempt 2 on $survivor" "$LAB/err" || lab_fail "the job was not re-dispatched to $survivor as attempt 2"
node=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["farm.platforms"]["linux/amd64"]["node"])' "$LAB/meta.json")
[[ $node == "$survivor" ]] || lab_fail "metadata says the image came from $node, not $survivor"
skopeo inspect --raw --tls-verify=false "docker://$tag" | grep -q 'image.index.v1+json' || lab_fail "no index under $tag"
# re-dispatch is prompt: loss is noticed after 3 x 500 ms heartbeats; the rebuild itself
# takes the rest. Generous bound for a shared machine.
elapsed=$(echo "$t_done - $t_kill" | bc)
lab_log "finished $elapsed s after the kill"
(( $(echo "$elapsed < 120" | bc) )) || lab_fail "took $elapsed s after the kill"

# Phase 2: a node that only freezes (SIGSTOP on the agent, its build worker runs on) is
# declared lost, its job goes to the other node as attempt 2, and when it wakes up its
# late result for attempt 1 is ignored: the index names the survivor's image.
lab_start_agent "$victim" linux/amd64
lab_wait_nodes 2 30 x86-a x86-b
tag2=$REGISTRY/team/survivor:2.0
: >"$LAB/err2"
"$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$tag2" --platform linux/amd64 --build-arg ROUND=2 \
    --build-arg ROUND=2 --metadata-file "$LAB/meta2.json" --progress plain "$ctx" >"$LAB/out2" 2>"$LAB/err2" &
submit_pid=$!
frozen=$(wait_long_step "$LAB/err2") && [[ -n $frozen ]] || lab_fail "no node ran the long step (round 2)"
frozen_pid=$(lab_pid "agent-$frozen")
lab_log "freezing $frozen (SIGSTOP pid $frozen_pid only; its worker keeps building)"
kill -STOP "$frozen_pid"
rc=0
wait "$submit_pid" || rc=$?
sleep 8   # the frozen node's worker finishes its attempt meanwhile
kill -CONT "$frozen_pid"
cat "$LAB/err2" >&2
(( rc == 0 )) || lab_fail "round 2 failed after freezing $frozen (exit $rc)"
other=x86-a; [[ $frozen == x86-a ]] && other=x86-b
grep -q "dispatched: attempt 2 on $other" "$LAB/err2" || lab_fail "round 2 was not re-dispatched to $other"
node=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["farm.platforms"]["linux/amd64"]["node"])' "$LAB/meta2.json")
[[ $node == "$other" ]] || lab_fail "round 2's image came from $node, not $other"
# the woken node comes back by itself, and what it says about attempt 1 changes nothing
lab_wait_nodes 2 40 x86-a x86-b
bid2=$(grep -m1 -o '^#build b[0-9]*-[0-9a-f]*' "$LAB/err2" | cut -c8-)
[[ -n $bid2 ]] || lab_fail "no build id in round 2's output"
lab_wait_until 60 "the frozen node's late attempt-1 result" \
    grep -q "job=$bid2.1 attempt=1 platform=linux/amd64 pushed" "$LAB/agent-$frozen.log"
want=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["containerimage.digest"])' "$LAB/meta2.json")
got=sha256:$(skopeo inspect --raw --tls-verify=false "docker://$tag2" | sha256sum | cut -d' ' -f1)
[[ $got == "$want" ]] || lab_fail "the index under $tag2 changed after the frozen node woke up"
lab_log "PASS"
