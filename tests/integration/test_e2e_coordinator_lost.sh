#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# An agent that loses its coordinator keeps its job running until a coordinator answers.
# 1. The coordinator is SIGKILLed mid-RUN-step and started again 8 s later with its journal
#    gone (a new state_dir, a lost disk): the RUN step's process lives through the outage
#    (the old agent killed it 2.5 s after the kill); the restarted coordinator does not
#    know the job, answers the agent's HELLO (which lists it) with a cancel, and only then
#    does the agent end it, naming the coordinator's reason. (With its journal, a restarted
#    coordinator adopts the job instead: test_e2e_coordinator_restart.) Its farmctl submit, left running, hears nothing more and after its 60 s
#    silence bound says which build may be running or lost and what to run.
# 2. The coordinator is SIGKILLed mid-RUN-step and not started again: the job goes on
#    until --orphan-timeout (20 s here) and is ended then, with that reason.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
command -v pgrep >/dev/null || lab_fail "pgrep is not installed"
export LAB_SKIP_BINFMT=1
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=x86-l"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent x86-l linux/amd64 --orphan-timeout 20s
lab_wait_nodes 1 30 x86-l
alog=$LAB/agent-x86-l.log
ctx=$LAB/ctx
lab_example_context "$ctx"
dur=300.$$   # busybox sleep takes fractions: no other lab's sleep has this duration
cat >>"$ctx/Dockerfile" <<DEOF
ARG ROUND
RUN echo "farm-test: long step starts \$ROUND" && sleep $dur
DEOF
sleep_pid() { pgrep -f "sleep $dur\$" | head -1; }

# run_until_sleep ROUND: submit in the background; wait for the RUN step's sleep; print its pid
run_until_sleep() {
    "$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$REGISTRY/team/lost:$1" \
        --platform linux/amd64 --progress plain --build-arg "ROUND=$1" "$ctx" \
        >"$LAB/out-$1" 2>"$LAB/err-$1" &
    echo $! >"$LAB/submit-$1.pid"
    lab_wait_until 180 "the RUN step's sleep (round $1)" bash -c "pgrep -f 'sleep $dur\$' >/dev/null"
}

# --- 1. killed and restarted: the job runs until the new coordinator says cancel
run_until_sleep 1
p=$(sleep_pid)
lab_log "RUN step running as pid $p; SIGKILL to the coordinator"
lab_stop coordinator KILL
t_kill1=$SECONDS   # farmctl submit 1 is left running: it must say its build may be lost
lab_wait_until 30 "the agent to notice the coordinator was gone" \
    grep -q 'silent for .* ms; reconnecting' "$alog"
sleep 6
kill -0 "$p" 2>/dev/null || lab_fail "the RUN step (pid $p) ended while no coordinator was there"
grep -q 'cancelling' "$alog" && lab_fail "the agent cancelled its job with no coordinator to say so"
lab_log "RUN step (pid $p) still runs; starting the coordinator again without its journal"
rm -f "$LAB/state/journal.db" "$LAB/state/journal.db-wal" "$LAB/state/journal.db-shm"
lab_start_coordinator "$LAB/farm.yaml"
t_start=$SECONDS
lab_wait_until 60 "the agent to be told to cancel its job" grep -q 'cancelling: the coordinator does not run this attempt' "$alog"
lab_wait_until 30 "the RUN step to end after the cancel" bash -c "! kill -0 $p 2>/dev/null"
lab_log "cancelled $((SECONDS - t_start)) s after the coordinator came back"
grep -q 'not a job this coordinator runs there; cancelled' "$LAB/coordinator.log" \
    || lab_fail "the coordinator did not say it cancelled the job it does not know"
grep -Eq 'HELLO sent .*\(1 job\(s\) held\)' "$alog" || lab_fail "the agent's HELLO did not list its job"
lab_wait_nodes 1 60 x86-l
# farmctl, whose build went with the killed coordinator, hears nothing from the new one:
# after its 60 s silence bound it says which build and what is known, not that it finishes
spid=$(cat "$LAB/submit-1.pid")
lab_wait_until 150 "farmctl submit (round 1) to give up on the silent coordinator" \
    grep -q 'no word from the coordinator' "$LAB/err-1"
st=0; wait "$spid" || st=$?   # it exits right after saying so
((st == 1)) || lab_fail "farmctl submit (round 1) exited $st after the coordinator went silent, not 1"
((SECONDS - t_kill1 >= 55)) || lab_fail "farmctl gave up $((SECONDS - t_kill1)) s after the kill, before its 60 s bound"
bid=$(grep -ho 'build b[0-9]*-[0-9a-f]* accepted' "$LAB/out-1" "$LAB/err-1" | head -1 | cut -d' ' -f2)
[[ -n "$bid" ]] || lab_fail "farmctl submit (round 1) did not say its build was accepted"
want="farmctl submit: no word from the coordinator at $FARM_COORDINATOR for 60 s; build $bid may still be running there or may have been lost with a restart; \`farmctl builds\` shows whether it is there"
grep -qxF "$want" "$LAB/err-1" || { cat "$LAB/err-1" >&2; lab_fail "farmctl submit (round 1) did not name its build and what is known: want: $want"; }
grep -q 'went silent\|may still finish' "$LAB/err-1" && lab_fail "farmctl still says the build may finish"
lab_log "farmctl named build $bid after $((SECONDS - t_kill1)) s of silence"

# --- 2. killed and gone: the job runs until --orphan-timeout
run_until_sleep 2
p=$(sleep_pid)
lab_log "RUN step running as pid $p; SIGKILL to the coordinator, not started again"
lab_stop coordinator KILL
t_kill=$SECONDS
kill "$(cat "$LAB/submit-2.pid")" 2>/dev/null || true
sleep 12
kill -0 "$p" 2>/dev/null || lab_fail "the RUN step (pid $p) ended 12 s after losing the coordinator (--orphan-timeout 20s)"
lab_wait_until 40 "the agent to give up its job after --orphan-timeout" \
    grep -q 'no coordinator answered for [0-9]* s (--orphan-timeout 20 s)' "$alog"
lab_wait_until 30 "the RUN step to end after the orphan timeout" bash -c "! kill -0 $p 2>/dev/null"
((SECONDS - t_kill >= 19)) || lab_fail "the job was given up $((SECONDS - t_kill)) s after the kill, before --orphan-timeout"
lab_log "PASS"
