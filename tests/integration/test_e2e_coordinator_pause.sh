#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The coordinator is stopped (SIGSTOP) for 20 s during a build, then continued.
# 1. Both platforms' jobs run a long RUN step (15 s on amd64: it ends during the pause;
#    40 s on arm64: it still runs when the coordinator resumes). The agents keep building
#    (the RUN step's processes live through the pause and each RUN step runs once: its
#    sleep, whose duration holds this test's pid, is seen with one pid per platform);
#    the coordinator does not count its own pause against the nodes, adopts both
#    attempts (the finished one's kept result and the running one), dispatches nothing
#    again, pushes the index once, and farmctl succeeds.
# 2. The agent finishes a job during the pause and is itself killed and started again
#    before the coordinator resumes: the result it kept in its work dir is delivered and
#    used, nothing is built again.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
command -v pgrep >/dev/null || lab_fail "pgrep is not installed"
lab_registry_start
lab_binfmt_register
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=x86-p" "linux/arm64=arm-p"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent x86-p linux/amd64
lab_start_agent arm-p linux/arm64
lab_wait_nodes 2 30 x86-p arm-p
ctx=$LAB/ctx
lab_example_context "$ctx"
# busybox sleep takes fractions: no other lab's sleep has these durations
short=15.$$ long=40.$$
cat >>"$ctx/Dockerfile" <<DEOF
ARG ROUND
RUN echo "farm-test: long step starts \$ROUND" && if [ "\$TARGETARCH" = arm64 ]; then sleep $long; else sleep $short; fi && echo "farm-test: long step ends"
DEOF
pattern="sleep ($short|$long)\$"
sleeps() { pgrep -f "$pattern" || true; }

# every pid the RUN steps' sleeps ever had, polled in the background
: >"$LAB/sleep-pids"
( while :; do sleeps >>"$LAB/sleep-pids"; sleep 0.2; done ) &
poller=$!
lab_on_exit "kill $poller 2>/dev/null || true"
runs() { sort -u "$LAB/sleep-pids" | grep -c . || true; }

# submit ROUND PLATFORMS: in the background; pid in $LAB/submit-ROUND.pid
submit() {
    "$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$REGISTRY/team/paused:$1" \
        --progress plain --platform "$2" --build-arg "ROUND=$1" "$ctx" \
        >"$LAB/out-$1" 2>"$LAB/err-$1" &
    echo $! >"$LAB/submit-$1.pid"
}
# finish ROUND: wait for farmctl; it must succeed with an index digest
finish() {
    local rc=0
    wait "$(cat "$LAB/submit-$1.pid")" || rc=$?
    cat "$LAB/err-$1" >&2
    ((rc == 0)) || lab_fail "farmctl submit (round $1) failed after the coordinator's pause (exit $rc)"
    grep -Eq '^sha256:[0-9a-f]{64}$' "$LAB/out-$1" || lab_fail "farmctl printed no index digest (round $1)"
    grep -q 'attempt 2' "$LAB/err-$1" && lab_fail "a job was dispatched again (attempt 2) in round $1"
    n=$(grep -c "PUT /v2/team/paused/manifests/$1 " "$LAB/registry.log" || true)
    ((n == 1)) || lab_fail "the index of round $1 was pushed $n time(s) under its tag; expected once"
}

# --- 1. a 20 s pause while both platforms build
submit 1 linux/amd64,linux/arm64
lab_wait_until 300 "both platforms' RUN step" bash -c "(( \$(pgrep -fc '$pattern') >= 2 ))"
mapfile -t before < <(sleeps)
lab_log "RUN steps running as pids ${before[*]}; SIGSTOP to the coordinator for 20 s"
lab_signal coordinator STOP
t_stop=$SECONDS
sleep 10
# the old agents killed their jobs 2.5 s into a pause: these must still run
for p in "${before[@]}"; do
    kill -0 "$p" 2>/dev/null || lab_fail "the RUN step's sleep (pid $p) ended 10 s into the pause"
done
grep -q 'silent for .* ms; reconnecting' "$LAB/agent-x86-p.log" \
    || lab_fail "the agent did not notice the coordinator's silence (the pause shows nothing)"
grep -q 'job(s) go on' "$LAB/agent-x86-p.log" || lab_fail "the agent did not say its job goes on"
sleep $((20 - (SECONDS - t_stop)))
pgrep -f "sleep $long\$" >/dev/null || lab_fail "the arm64 RUN step no longer runs at the resume"
lab_signal coordinator CONT
lab_log "SIGCONT to the coordinator"
finish 1
n=$(runs)
((n == 2)) || lab_fail "the RUN steps' sleeps ran $n time(s) (pids: $(sort -u "$LAB/sleep-pids" | tr '\n' ' ')); expected 2, once per platform"
grep -h 'cancell' "$LAB"/agent-*-p.log && lab_fail "an agent cancelled a job (above)"
grep -q 'the coordinator did not run for [0-9]* ms' "$LAB/coordinator.log" \
    || lab_fail "the coordinator did not notice its own pause"
grep -E 'node=[a-z-]+ lost' "$LAB/coordinator.log" && lab_fail "the coordinator declared a node lost after its own pause"
grep -q 'node=x86-p job=.* adopted: the node kept it and finished it' "$LAB/coordinator.log" \
    || lab_fail "the coordinator did not adopt the amd64 result kept through the pause"
grep -q 'node=arm-p job=.* adopted: the node kept it running' "$LAB/coordinator.log" \
    || lab_fail "the coordinator did not adopt the arm64 attempt that still ran"
grep -q 'its result, kept through the outage, sent' "$LAB/agent-x86-p.log" \
    || lab_fail "the amd64 agent did not hand over the result it kept"

# --- 2. finished during the pause, the agent restarted before the resume
submit 2 linux/amd64
lab_wait_until 180 "the amd64 RUN step (round 2)" bash -c "pgrep -f 'sleep $short\$' >/dev/null"
kept=$(grep -c 'finished while no coordinator answers' "$LAB/agent-x86-p.log" || true)
lab_signal coordinator STOP
lab_log "SIGSTOP to the coordinator; waiting for the amd64 job to finish"
lab_wait_until 60 "the job to finish while the coordinator is stopped" \
    bash -c "(( \$(grep -c 'finished while no coordinator answers' '$LAB/agent-x86-p.log') > $kept ))"
ls "$LAB/agents/x86-p/work/results/" | grep -q '^result-' \
    || lab_fail "the finished result is not kept in the agent's work dir"
lab_stop agent-x86-p KILL
lab_start_agent x86-p linux/amd64
lab_wait_until 30 "the restarted agent to find the kept result" \
    grep -q 'finished result(s) from an earlier run wait for the coordinator' "$LAB/agent-x86-p.log"
lab_signal coordinator CONT
lab_log "SIGCONT to the coordinator"
finish 2
n=$(runs)
((n == 3)) || lab_fail "the RUN steps' sleeps ran $n time(s) in both rounds; expected 3 (round 2 once)"
n=$(grep -c 'node=x86-p job=.* adopted: the node kept it and finished it' "$LAB/coordinator.log" || true)
((n == 2)) || lab_fail "the restarted agent's kept result was not adopted ($n adoption(s) of a finished x86-p job)"
lab_wait_until 10 "the delivered result to leave the work dir" \
    bash -c "! ls '$LAB/agents/x86-p/work/results/' | grep -q '^result-'"
lab_log "PASS"
