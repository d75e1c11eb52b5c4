#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The coordinator is stopped (SIGSTOP) for 20 s while both platforms' jobs run a RUN step
# of 15 s, then continued. The agents keep building through the pause (the RUN step's
# processes live on and each RUN step runs once: its sleep, whose duration holds this
# test's pid, is seen with exactly one pid per platform), they keep the finished results
# and hand them over when the coordinator answers again; the coordinator does not count
# its own pause against the nodes, adopts their attempts (no attempt 2), pushes the index
# once, and farmctl succeeds.
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
dur=15.$$   # busybox sleep takes fractions: no other lab's sleep has this duration
cat >>"$ctx/Dockerfile" <<DEOF
RUN echo "farm-test: long step starts" && sleep $dur && echo "farm-test: long step ends"
DEOF
sleeps() { pgrep -f "sleep $dur\$" || true; }

# every pid the RUN step's sleep ever had, polled in the background for the whole build
: >"$LAB/sleep-pids"
( while :; do sleeps >>"$LAB/sleep-pids"; sleep 0.2; done ) &
poller=$!
lab_on_exit "kill $poller 2>/dev/null || true"

tag=$REGISTRY/team/paused:1
"$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$tag" --progress plain \
    --platform linux/amd64,linux/arm64 --metadata-file "$LAB/meta.json" "$ctx" \
    >"$LAB/out" 2>"$LAB/err" &
submit_pid=$!
lab_wait_until 300 "both platforms' RUN step (sleep $dur)" \
    bash -c "(( \$(pgrep -fc 'sleep $dur\$') >= 2 ))"
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
lab_signal coordinator CONT
lab_log "SIGCONT to the coordinator"
rc=0
wait "$submit_pid" || rc=$?
kill "$poller" 2>/dev/null || true
cat "$LAB/err" >&2
((rc == 0)) || lab_fail "farmctl submit failed after the coordinator's pause (exit $rc)"
grep -Eq '^sha256:[0-9a-f]{64}$' "$LAB/out" || lab_fail "farmctl printed no index digest"

# each RUN step ran once: two sleeps (one per platform) in the whole build, never a third
n=$(sort -u "$LAB/sleep-pids" | grep -c . || true)
((n == 2)) || lab_fail "the RUN step's sleep ran $n time(s) (pids: $(sort -u "$LAB/sleep-pids" | tr '\n' ' ')); expected 2, once per platform"
n=$(grep -c 'farm-test: long step ends' "$LAB/err" || true)
((n <= 2)) || lab_fail "the RUN step ended $n times"
grep -q 'attempt 2' "$LAB/err" && lab_fail "a job was dispatched again (attempt 2) after the pause"
grep -Eq 'cancell' "$LAB/agent-x86-p.log" "$LAB/agent-arm-p.log" \
    && lab_fail "an agent cancelled its job: $(grep -h cancell "$LAB"/agent-*-p.log)"
# the coordinator saw its own pause and gave the nodes a fresh grace period
grep -q 'the coordinator did not run for [0-9]* ms' "$LAB/coordinator.log" \
    || lab_fail "the coordinator did not notice its own pause"
grep -E 'node=[a-z-]+ lost' "$LAB/coordinator.log" && lab_fail "the coordinator declared a node lost after its own pause"
n=$(grep -c 'adopted: the node kept it' "$LAB/coordinator.log" || true)
((n == 2)) || lab_fail "the coordinator adopted $n attempt(s); expected both"
grep -q 'its result, kept through the outage, sent' "$LAB"/agent-*-p.log \
    || lab_fail "no agent handed over a result it kept through the pause"
# the index went to the tag once
n=$(grep -c "PUT /v2/team/paused/manifests/1 " "$LAB/registry.log" || true)
((n == 1)) || lab_fail "the index was pushed $n time(s) under the tag; expected once"
lab_index "$tag" | grep -q '"linux"' || lab_fail "no index under $tag"
lab_log "PASS"
