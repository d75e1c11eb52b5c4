#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Nothing a coordinator accepted is lost when it stops: the journal (state_dir/journal.db)
# brings every unfinished build back, and the agents, which kept building, hand over
# what they ran. On real parts (registry, coordinator, a sandboxed agent, buildah):
# 1. SIGKILL with one build running (a RUN step of 15 s) and one queued behind it: the
#    restarted coordinator adopts the running attempt from the agent's HELLO (the RUN
#    step's process is the same, it ran once: 0 build seconds rebuilt), pushes its index
#    once, then builds the queued one. Said: the time from the restart to the adopted
#    result.
# 2. SIGTERM (systemctl restart's signal) with 50 builds queued: the coordinator exits
#    within a second, nothing is cancelled on the node, and after the start every one of
#    the 50 pushes exactly one index under its own tag.
# Invariants checked after each: every accepted build pushed one index (its tag names
# it) and no build was dispatched twice.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
command -v pgrep >/dev/null || lab_fail "pgrep is not installed"
export LAB_SKIP_BINFMT=1
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=x86-r"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent x86-r linux/amd64
lab_wait_nodes 1 30 x86-r
alog=$LAB/agent-x86-r.log
clog=$LAB/coordinator.log

# --- 1. SIGKILL with a build running and one queued
ctx=$LAB/ctx-long
lab_example_context "$ctx"
dur=15.$$   # busybox sleep takes fractions: no other lab's sleep has this duration
cat >>"$ctx/Dockerfile" <<DEOF
ARG ROUND
RUN echo "farm-test: long step starts \$ROUND" && sleep $dur && echo "farm-test: long step ends \$ROUND"
DEOF
for round in run queued; do
    "$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$REGISTRY/team/restart:$round" \
        --platform linux/amd64 --progress plain --build-arg "ROUND=$round" "$ctx" \
        >"$LAB/out-$round" 2>"$LAB/err-$round" &
    echo $! >"$LAB/submit-$round.pid"
    lab_wait_until 60 "build $round to be accepted" grep -q 'accepted' "$LAB/out-$round" "$LAB/err-$round"
done
lab_wait_until 180 "the RUN step's sleep (round run)" bash -c "pgrep -f 'sleep $dur\$' >/dev/null"
p=$(pgrep -f "sleep $dur\$" | head -1)
bid_run=$(grep -ho 'build b[0-9]*-[0-9a-f]* accepted' "$LAB/out-run" "$LAB/err-run" | head -1 | cut -d' ' -f2)
bid_queued=$(grep -ho 'build b[0-9]*-[0-9a-f]* accepted' "$LAB/out-queued" "$LAB/err-queued" | head -1 | cut -d' ' -f2)
[[ -n $bid_run && -n $bid_queued ]] || lab_fail "farmctl did not name both builds"
lab_log "build $bid_run runs (RUN step pid $p), $bid_queued is queued; SIGKILL to the coordinator"
lab_stop coordinator KILL
lab_wait_until 30 "the agent to notice the coordinator was gone" \
    grep -q 'silent for .* ms; reconnecting' "$alog"
sleep 2
kill -0 "$p" 2>/dev/null || lab_fail "the RUN step (pid $p) ended while no coordinator was there"
lab_start_coordinator "$LAB/farm.yaml"
t_start=$(date +%s%N)
grep -q "journal: 2 unfinished build(s) restored" "$clog" \
    || lab_fail "the restarted coordinator did not restore both builds from its journal"
lab_wait_until 60 "the running attempt to be adopted" grep -q "job=$bid_run.1 attempt=1 adopted" "$clog"
t_adopt=$(date +%s%N)
kill -0 "$p" 2>/dev/null || lab_fail "the RUN step (pid $p) did not survive the restart"
lab_wait_until 120 "build $bid_run's index" grep -q "build=$bid_run pushed index" "$clog"
t_adopted=$(date +%s%N)
lab_wait_until 180 "build $bid_queued's index" grep -q "build=$bid_queued pushed index" "$clog"
# invariants: one index each, under its tag; each RUN step ran once; nothing re-dispatched
for b in "$bid_run" "$bid_queued"; do
    n=$(grep -c "build=$b pushed index" "$clog" || true)
    ((n == 1)) || lab_fail "build $b pushed its index $n times, not once"
done
d_run=$(grep -o "build=$bid_run pushed index sha256:[0-9a-f]*" "$clog" | awk '{print $4}')
got=$(lab_index "$REGISTRY/team/restart:run" | sha256sum | cut -d' ' -f1)
[[ "sha256:$got" == "$d_run" ]] || lab_fail "the tag restart:run names sha256:$got, not build $bid_run's index $d_run"
n=$(grep -c "job=$bid_run.1 attempt=[0-9]* platform=linux/amd64 started" "$alog" || true)
((n == 1)) || lab_fail "build $bid_run's job started $n times on the node: build seconds were spent again"
grep -q "re-dispatching" "$clog" && lab_fail "a job was dispatched again after the restart"
grep -q "cancelling" "$alog" && lab_fail "the agent was told to cancel a job"
lab_log "scenario 1: 2 of 2 builds pushed one index each; 0 build seconds rebuilt; the running attempt adopted $(((t_adopt - t_start) / 1000000)) ms after the restart, its index pushed after $(((t_adopted - t_start) / 1000000)) ms (the RUN step had ~10 s left)"
# the two farmctl submits, left running through the kill, followed their builds to the end
for round in run queued; do
    st=0; wait "$(cat "$LAB/submit-$round.pid")" || st=$?
    ((st == 0)) || { cat "$LAB/err-$round" >&2; lab_fail "farmctl submit ($round) exited $st after the restart, not 0"; }
    b=$bid_run; [[ $round == queued ]] && b=$bid_queued
    d=$(grep -o "build=$b pushed index sha256:[0-9a-f]*" "$clog" | awk '{print $4}')
    [[ $(tail -n 1 "$LAB/out-$round") == "$d" ]] \
        || lab_fail "farmctl submit ($round) printed $(tail -n 1 "$LAB/out-$round"), not its build's index $d"
done

# --- 2. SIGTERM with 50 builds queued
ctx=$LAB/ctx-small
mkdir -p "$ctx"
printf 'FROM scratch\nARG N\nCOPY f /f\nLABEL n=$N\n' >"$ctx/Dockerfile"
echo small >"$ctx/f"
N=50
for i in $(seq 1 $N); do
    "$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$REGISTRY/team/many:$i" \
        --platform linux/amd64 --progress plain --build-arg "N=$i" "$ctx" \
        >"$LAB/many-$i.out" 2>"$LAB/many-$i.err" &
    echo $! >>"$LAB/many.pids"
done
lab_wait_until 120 "the $N builds to be accepted" \
    bash -c "(( \$(cat $LAB/many-*.out $LAB/many-*.err | grep -c ' accepted') >= $N ))"
pushed_before=$(grep -c "pushed index" "$clog" || true)
lab_log "SIGTERM to the coordinator with $((N + 2 - pushed_before)) build(s) not finished"
t0=$(date +%s%N)
lab_stop coordinator TERM 10
stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
((stop_ms < 3000)) || lab_fail "the coordinator took $stop_ms ms to stop on SIGTERM (a second is the aim)"
grep -q "cancelling" "$alog" && lab_fail "the stop cancelled a job on the node"
lab_start_coordinator "$LAB/farm.yaml"
lab_wait_until 600 "all $N builds' indexes" \
    bash -c "(( \$(grep -c 'pushed index' $clog) >= $N + 2 ))"
for i in $(seq 1 $N); do
    bid=$(grep -ho 'build b[0-9]*-[0-9a-f]* accepted' "$LAB/many-$i.out" "$LAB/many-$i.err" | head -1 | cut -d' ' -f2)
    [[ -n $bid ]] || lab_fail "submit $i was not accepted"
    n=$(grep -c "build=$bid pushed index" "$clog" || true)
    ((n == 1)) || lab_fail "build $bid (many:$i) pushed its index $n times, not once"
    d=$(grep -o "build=$bid pushed index sha256:[0-9a-f]*" "$clog" | awk '{print $4}')
    got=$(lab_index "$REGISTRY/team/many:$i" | sha256sum | cut -d' ' -f1)
    [[ "sha256:$got" == "$d" ]] || lab_fail "many:$i names sha256:$got, not build $bid's index $d"
done
grep -q "re-dispatching" "$clog" && lab_fail "a job was dispatched again after the restart"
lab_log "scenario 2: SIGTERM exit in $stop_ms ms; $N of $N builds pushed one index each after the restart"
while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$LAB/many.pids"
lab_log "PASS"
