#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# SIGKILL of the agent (its pid only, not its group) while a RUN step runs: the job's
# whole process tree ends (worker, buildah, the RUN step's processes), and the agent
# started again with the same --work-dir removes the job directory that was left.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
for tool in pgrep skopeo; do
    command -v "$tool" >/dev/null || lab_fail "$tool is not installed"
done
export LAB_SKIP_BINFMT=1
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=x86-k"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent x86-k linux/amd64
lab_wait_nodes 1 30 x86-k
agent_dir=$LAB/agents/x86-k
jobs_dir=$agent_dir/work/jobs
ctx=$LAB/ctx
lab_example_context "$ctx"
# a uniquely recognisable long RUN step, with a child of its own in the background; the
# durations hold our pid, so the same test running in another lab on this machine (whose
# sleeps /proc shows too) is never taken for ours
s1=1${$}1 s2=1${$}2
cat >>"$ctx/Dockerfile" <<DEOF
RUN --mount=type=secret,id=tok echo "farm-test: long sleep starts" && (sleep $s2 &) && sleep $s1
DEOF

# build_procs: "PID STATE what" for every live process of this build: the RUN step's
# sleeps, anything run with the lab agent's builder root or work dir on its command line
# (buildah; the agent itself is not counted), anything whose environment points TMPDIR into its jobs dir (the worker and
# everything it started). Zombies are dead already and are not listed.
build_procs() {
    local d pid state cmd agent
    agent=$(cat "$LAB/pids/agent-x86-k.pid")
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        [[ $pid == "$$" || $pid == "$BASHPID" || $pid == "$agent" ]] && continue
        state=$(__lab_stat "$pid" 1 2>/dev/null) || continue
        [[ $state == Z || $state == X ]] && continue
        cmd=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
        if [[ $cmd == *"sleep $s1 "* || $cmd == *"sleep $s2 "* || $cmd == *"$agent_dir/"* ]] \
            || tr '\0' '\n' <"$d/environ" 2>/dev/null | grep -q "^TMPDIR=$jobs_dir/"; then
            echo "$pid $state $cmd"
        fi
    done
}
no_build_procs() { [[ -z $(build_procs) ]]; }
sleep_runs() { pgrep -f "^sleep $s1\$" >/dev/null; }

# the RUN step has a secret mounted: buildah keeps a copy in the working container while
# it runs, which the kill leaves behind
secret="agent-kill-secret-$$-$RANDOM"
TOK=$secret "$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$REGISTRY/team/killed:1" \
    --platform linux/amd64 --progress plain --secret id=tok,env=TOK "$ctx" >"$LAB/out" 2>"$LAB/err" &
submit_pid=$!
lab_wait_until 180 "the RUN step's sleep $s1" sleep_runs
build_procs >"$LAB/procs-before"
cat "$LAB/procs-before" >&2
grep -q "sleep $s1" "$LAB/procs-before" || lab_fail "the build's processes are not recognised (no sleep $s1)"
grep -Eq 'farm-agent worker|/proc/self/exe worker|exe worker' "$LAB/procs-before" \
    || lab_fail "no worker process among the build's processes"
[[ -n $(find "$jobs_dir" -mindepth 1 -maxdepth 1) ]] || lab_fail "no job directory in $jobs_dir while the job runs"

agent_pid=$(lab_pid agent-x86-k)
lab_log "SIGKILL to the agent's pid $agent_pid only"
kill -KILL "$agent_pid"
deadline=$((SECONDS + 60))
until no_build_procs; do
    if ((SECONDS >= deadline)); then
        build_procs >&2
        lab_fail "processes of the build survived the agent's SIGKILL for 60 s"
    fi
    sleep 0.5
done
lab_log "no process of the build is left"
[[ -n $(find "$jobs_dir" -mindepth 1 -maxdepth 1) ]] \
    || lab_fail "the job directory is already gone: this test would not show the restart's clean-up"

# the build would go back to the agent once it returns: cancel it first
kill -INT "$submit_pid"
wait "$submit_pid" || true
welcomed=$(grep -c 'welcomed by' "$LAB/agent-x86-k.log")
lab_start_agent x86-k linux/amd64
# the coordinator may still list the killed agent as ready: wait for the new one's WELCOME
lab_wait_until 30 "the restarted agent's WELCOME" \
    bash -c "(( \$(grep -c 'welcomed by' '$LAB/agent-x86-k.log') > $welcomed ))"
lab_wait_nodes 1 30 x86-k
left=$(find "$jobs_dir" -mindepth 1 -maxdepth 1)
[[ -z $left ]] || lab_fail "the restarted agent left job directories: $left"
grep -q 'removed 1 job dir(s) left by an earlier agent run' "$LAB/agent-x86-k.log" \
    || lab_fail "the restarted agent did not say it removed the old job dir"
no_build_procs || { build_procs >&2; lab_fail "processes of the build are back"; }
# the killed build's working container (with the secret's copy) is gone once the node
# runs its next job of that cache
grep -rlq -- "$secret" "$LAB/agents" 2>/dev/null \
    || lab_fail "the killed build left no copy of its secret: this test would not show the clean-up"
lab_example_context "$LAB/ctx2"
"$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$REGISTRY/team/after:1" \
    --platform linux/amd64 --progress plain "$LAB/ctx2" >/dev/null 2>"$LAB/err2" \
    || { cat "$LAB/err2" >&2; lab_fail "the build after the restart failed"; }
if grep -rl -- "$secret" "$LAB/agents" "$LAB/state" >&2 2>/dev/null; then
    lab_fail "the killed build's secret is still on disk (above)"
fi
lab_log "PASS"
