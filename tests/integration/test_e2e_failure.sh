#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A RUN step that fails on one platform: farmctl exits non-zero with that platform's log
# tail, and nothing is pushed under the tag.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
lab_start_farm
ctx=$LAB/ctx
lab_example_context "$ctx"
cat >>"$ctx/Dockerfile" <<'DEOF'
RUN if [ "$TARGETARCH" = arm64 ]; then echo "farm-test: the arm64 step breaks here" >&2; exit 7; fi; echo ok
DEOF
tag=$REGISTRY/team/broken:1.0
rc=0
lab_farmctl submit -t "$tag" --platform linux/amd64,linux/arm64,linux/arm/v7 --progress plain \
    "$ctx" >"$LAB/out" 2>"$LAB/err" || rc=$?
cat "$LAB/err" >&2
(( rc != 0 )) || lab_fail "farmctl exited 0 although arm64 failed"
[[ ! -s $LAB/out ]] || lab_fail "farmctl printed a digest for a failed build: $(cat "$LAB/out")"
grep -q 'error: build .* failed: linux/arm64 failed on node arm64-1' "$LAB/err" \
    || lab_fail "the error does not name the failing platform and node"
# the log tail comes with the error, each line once (the lines streamed during the build
# and the agent's tail in its result are the same lines)
n=$(sed -n '/^error: build/,$p' "$LAB/err" | grep -cx '  | farm-test: the arm64 step breaks here' || true)
(( n == 1 )) || lab_fail "the failing platform's log line is in the error $n times, not once"
if skopeo inspect --raw --tls-verify=false "docker://$tag" >/dev/null 2>&1; then
    lab_fail "something was pushed under $tag"
fi
# --allow-partial: the index names the platforms that built, and farmctl says what it lacks
lab_farmctl submit -t "$REGISTRY/team/partial:1.0" --platform linux/amd64,linux/arm64,linux/arm/v7 \
    --allow-partial --progress plain "$ctx" >"$LAB/p.out" 2>"$LAB/p.err" \
    || { cat "$LAB/p.err"; lab_fail "--allow-partial with one failing platform exited non-zero"; }
grep -q 'warning: the index lacks linux/arm64' "$LAB/p.err" || lab_fail "no warning about the missing platform"
n=$(skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/team/partial:1.0" \
    | /usr/bin/python3 -c 'import json,sys; m=[x for x in json.load(sys.stdin)["manifests"] if x["platform"]["os"] != "unknown"]; print(" ".join(sorted(x["platform"]["architecture"] for x in m)))')
[[ $n == "amd64 arm" ]] || lab_fail "partial index holds [$n], expected amd64 and arm"

# the coordinator keeps serving: the same farm builds a good submit right after
lab_example_context "$LAB/good"
lab_farmctl submit -t "$REGISTRY/team/good:1.0" --platform linux/amd64 --progress quiet \
    "$LAB/good" >"$LAB/good.out" 2>"$LAB/good.err" || { cat "$LAB/good.err"; lab_fail "good submit after a failure failed"; }
grep -Eq '^sha256:[0-9a-f]{64}$' "$LAB/good.out" || lab_fail "no digest from the good submit"

# Ctrl-C on farmctl cancels the build: the agents stop, their slots free up, and nothing
# is pushed under the tag
lab_example_context "$LAB/slow"
echo 'RUN echo "farm-test: long step starts" && sleep 30' >>"$LAB/slow/Dockerfile"
"$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$REGISTRY/team/cancelled:1" \
    --platform linux/amd64,linux/arm64 --progress plain "$LAB/slow" >"$LAB/c.out" 2>"$LAB/c.err" &
pid=$!
lab_wait_until 120 "the slow build's long step" grep -q '] farm-test: long step starts$' "$LAB/c.err"
kill -INT "$pid"
rc=0; wait "$pid" || rc=$?
cat "$LAB/c.err" >&2
(( rc != 0 )) || lab_fail "a cancelled build exited 0"
grep -q 'cancelled by farmctl' "$LAB/c.err" || lab_fail "farmctl did not report the cancellation"
lab_wait_until 30 "the agents to cancel their jobs" grep -q 'cancelling' "$LAB/agent-amd64-1.log"
lab_wait_until 30 "amd64-1's slot to be free" bash -c \
    '"$FARMCTL" nodes --coordinator "$FARM_COORDINATOR" | grep -Eq "^amd64-1 .* ready +0/1"'
if skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/team/cancelled:1" >/dev/null 2>&1; then
    lab_fail "a cancelled build pushed an index"
fi
lab_log "PASS"
