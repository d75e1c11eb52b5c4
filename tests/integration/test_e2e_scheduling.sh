#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Scheduling rules on real parts:
# - a platform whose native node is down is built on its emulated node (farm.yaml
#   platforms: {native: [...], emulated: [...]}), and farmctl says so;
# - a platform mapped only to nodes that are not alive waits (farmctl says so) and fails
#   after coordinator.queue_timeout with a clear message, pushing nothing.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
lab_registry_start
lab_binfmt_register
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=x86-1" "linux/arm/v7=pi3;emulated=x86-1" "linux/arm64=pi5"
sed -i 's/^  heartbeat: .*/&\n  queue_timeout: 4s\n  job_timeout: 30s/' "$LAB/farm.yaml"
"$FARMCTL" validate "$LAB/farm.yaml" || lab_fail "the lab's farm.yaml does not validate"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent x86-1 linux/amd64,linux/arm/v7
lab_wait_nodes 1 30 x86-1
lab_example_context "$LAB/ctx"

# pi3 (native arm/v7) never comes up: x86-1 builds arm/v7 under emulation
lab_farmctl submit -t "$REGISTRY/team/emu:1" --platform linux/arm/v7 --progress plain \
    --metadata-file "$LAB/meta.json" "$LAB/ctx" >"$LAB/emu.out" 2>"$LAB/emu.err" \
    || { cat "$LAB/emu.err"; lab_fail "arm/v7 on the emulated node failed"; }
grep -q 'dispatched: attempt 1 on x86-1 (emulated)' "$LAB/emu.err" || lab_fail "not dispatched as emulated"
node=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["farm.platforms"]["linux/arm/v7"]["node"])' "$LAB/meta.json")
[[ $node == x86-1 ]] || lab_fail "metadata names node $node"
lab_farmctl nodes >"$LAB/nodes"
cat "$LAB/nodes" >&2
grep -Eq '^x86-1 +linux/amd64,linux/arm/v7\(emulated\) +ready' "$LAB/nodes" || lab_fail "farmctl nodes does not show x86-1's emulated platform"
grep -Eq '^pi5 +linux/arm64 +unknown' "$LAB/nodes" || lab_fail "farmctl nodes does not show pi5 as never seen"

# pi5 (the only arm64 node) is not alive: the job waits, then fails at queue_timeout
rc=0
start=$SECONDS
lab_farmctl submit -t "$REGISTRY/team/nobody:1" --platform linux/amd64,linux/arm64 --progress plain \
    "$LAB/ctx" >"$LAB/wait.out" 2>"$LAB/wait.err" || rc=$?
cat "$LAB/wait.err" >&2
(( rc != 0 )) || lab_fail "a build with no live arm64 node succeeded"
grep -q 'waiting: no live node serves linux/arm64 yet' "$LAB/wait.err" || lab_fail "farmctl was not told the job waits"
grep -q 'no node of linux/arm64 became available within 4 s' "$LAB/wait.err" || lab_fail "the failure does not name the queue timeout"
(( SECONDS - start < 120 )) || lab_fail "the queue timeout took $((SECONDS - start)) s"
if skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/team/nobody:1" >/dev/null 2>&1; then
    lab_fail "an index was pushed although arm64 never built"
fi

# a builder that hangs does not hold the build forever: coordinator.job_timeout fails it
# and the node's slot comes back
lab_example_context "$LAB/hang"
echo 'RUN echo "farm-test: hanging" && sleep 600' >>"$LAB/hang/Dockerfile"
rc=0
lab_farmctl submit -t "$REGISTRY/team/hang:1" --platform linux/amd64 --progress plain \
    "$LAB/hang" >"$LAB/hang.out" 2>"$LAB/hang.err" || rc=$?
cat "$LAB/hang.err" >&2
(( rc != 0 )) || lab_fail "a hung build succeeded"
grep -q 'ran longer than 30 s (coordinator.job_timeout)' "$LAB/hang.err" || lab_fail "no job_timeout message"
lab_wait_until 30 "x86-1's slot to be free" bash -c \
    '"$FARMCTL" nodes --coordinator "$FARM_COORDINATOR" | grep -Eq "^x86-1 .* ready +0/1"'
lab_log "PASS"
