#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A build's secrets outlive a coordinator restart only in its farmctl submit, which sends
# them again. On real parts (registry, coordinator with its journal, a sandboxed agent,
# buildah): build A (no secret) runs a 15 s RUN step on the only slot; build B, queued
# behind it, has a --secret its RUN step checks (the step fails without it). The
# coordinator is SIGKILLed and started again on the same state dir: B comes back waiting
# for its submitter (its secret was never written down) and is not dispatched meanwhile;
# a farmctl wait of B, from another process, is told B waits for its submitter; B's
# farmctl submit reattaches, is asked for its logins and secrets, sends them, and B builds
# with its secret and pushes one index. A's farmctl submit follows A to its end too.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
command -v pgrep >/dev/null || lab_fail "pgrep is not installed"
export LAB_SKIP_BINFMT=1
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=x86-a"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent x86-a linux/amd64
lab_wait_nodes 1 30 x86-a
clog=$LAB/coordinator.log
ctx=$LAB/ctx
lab_example_context "$ctx"
dur=15.$$   # busybox sleep takes fractions: no other lab's sleep has this duration
secret="reattach-$$-$RANDOM"
sha=$(printf '%s' "$secret" | sha256sum | cut -d' ' -f1)
cat >>"$ctx/Dockerfile" <<DEOF
ARG ROUND
RUN --mount=type=secret,id=tok if [ "\$ROUND" = a ]; then sleep $dur; else test "\$(sha256sum < /run/secrets/tok | cut -d' ' -f1)" = "$sha"; fi && echo "farm-test: step \$ROUND done"
DEOF
export FARM_TEST_REATTACH_SECRET=$secret
submit() {
    "$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$REGISTRY/team/reattach:$1" \
        --platform linux/amd64 --progress plain --build-arg "ROUND=$1" "${@:2}" "$ctx" \
        >"$LAB/out-$1" 2>"$LAB/err-$1" &
    echo $! >"$LAB/submit-$1.pid"
    lab_wait_until 60 "build $1 to be accepted" grep -q ' accepted' "$LAB/err-$1"
}
submit a
lab_wait_until 180 "build a's RUN step" bash -c "pgrep -f 'sleep $dur\$' >/dev/null"
submit b --secret id=tok,env=FARM_TEST_REATTACH_SECRET
bid=$(grep -o 'build b[0-9]*-[0-9a-f]* accepted' "$LAB/err-b" | head -1 | cut -d' ' -f2)
[[ -n $bid ]] || lab_fail "farmctl submit (b) did not name its build"
lab_log "build a runs, $bid (with a secret) is queued; SIGKILL to the coordinator"
lab_stop coordinator KILL
t_kill=$SECONDS
lab_wait_until 30 "farmctl submit (b) to notice" grep -qF "lost the coordinator at $FARM_COORDINATOR; reconnecting to follow build $bid" "$LAB/err-b"
# b's farmctl is held still so that what b does without its submitter shows
kill -STOP "$(cat "$LAB/submit-b.pid")"
lab_start_coordinator "$LAB/farm.yaml"
grep -q "1 of them waiting for their submitter" "$clog" \
    || { grep journal "$clog" >&2; lab_fail "the restarted coordinator does not say build b waits for its submitter"; }
# another process following b is told why it waits, and cannot send what it does not have
lab_farmctl wait --progress plain "$bid" >"$LAB/wait.out" 2>"$LAB/wait.err" &
wpid=$!
lab_wait_until 30 "farmctl wait to say build b waits for its submitter" \
    grep -qF "build $bid waits for its submitter (the farmctl submit that sent it)" "$LAB/wait.err"
# a's adopted RUN step ends and frees the slot: b, without its secret, still does not run
bida=$(grep -o 'build b[0-9]*-[0-9a-f]* accepted' "$LAB/err-a" | head -1 | cut -d' ' -f2)
lab_wait_until 120 "build a's index" grep -q "build=$bida pushed index" "$clog"
sleep 3
grep -q "job=$bid.1 " "$LAB/agent-x86-a.log" && lab_fail "build b ran before its submitter sent its secret again"
lab_farmctl builds | grep -E "^$bid +.* waiting " >/dev/null \
    || { lab_farmctl builds >&2; lab_fail "farmctl builds does not show build b waiting"; }
kill -CONT "$(cat "$LAB/submit-b.pid")"
lab_wait_until 60 "farmctl submit (b) to send its secrets again" \
    grep -qF "sending your registry logins and secrets for build $bid again" "$LAB/err-b"
lab_wait_until 30 "farmctl submit (b) to follow $bid again" grep -qF "following build $bid again" "$LAB/err-b"
lab_wait_until 30 "the coordinator to take b's secret back" \
    grep -q "build=$bid its submitter is back with 0 login(s) and 1 secret(s)" "$clog"
for r in a b; do
    st=0
    wait "$(cat "$LAB/submit-$r.pid")" || st=$?
    cat "$LAB/err-$r" >&2
    ((st == 0)) || lab_fail "farmctl submit ($r) exited $st after the restart, not 0"
    got=$(lab_index "$REGISTRY/team/reattach:$r" | sha256sum | cut -d' ' -f1)
    [[ $(cat "$LAB/out-$r") == "sha256:$got" ]] || lab_fail "farmctl submit ($r) printed $(cat "$LAB/out-$r"), not the tag's index sha256:$got"
done
grep -q '\[linux/amd64 x86-a\] farm-test: step b done' "$LAB/err-b" || lab_fail "build b's RUN step did not see its secret"
n=$(grep -c "build=$bid pushed index" "$clog" || true)
((n == 1)) || lab_fail "build b pushed its index $n times, not once"
st=0
wait "$wpid" || st=$?
cat "$LAB/wait.err" >&2
((st == 0)) || lab_fail "farmctl wait of b exited $st, not 0"
[[ $(cat "$LAB/wait.out") == "$(cat "$LAB/out-b")" ]] || lab_fail "farmctl wait of b printed another digest than its submit"
grep -qF "$secret" "$LAB/wait.err" "$LAB/err-b" && lab_fail "the secret's value shows in farmctl's output"
grep -qF "$secret" "$clog" && lab_fail "the secret's value is in the coordinator's log"
grep -qF "$secret" "$LAB/state/journal.db" "$LAB/state/journal.db-wal" 2>/dev/null && lab_fail "the secret's value is in the journal"
lab_log "build b reattached and built with its secret $((SECONDS - t_kill)) s after the kill; PASS"
