#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Restarts: a coordinator killed with SIGKILL and started again gets its agents back
# (they notice, say HELLO again) and builds; an agent restarted under the same name
# takes its place back (ROUTER_HANDOVER) and builds.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=amd64-1"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent amd64-1 linux/amd64
lab_wait_nodes 1 30 amd64-1
lab_example_context "$LAB/ctx"

submit() {
    lab_farmctl submit -t "$REGISTRY/team/restart:$1" --platform linux/amd64 --progress quiet \
        "$LAB/ctx" >"$LAB/$1.out" 2>"$LAB/$1.err" || { cat "$LAB/$1.err"; lab_fail "submit $1 failed"; }
    grep -Eq '^sha256:[0-9a-f]{64}$' "$LAB/$1.out" || lab_fail "submit $1 printed no digest"
}

lab_stop coordinator KILL
# the agent notices (3 x 500 ms of silence) and backs off before the coordinator returns:
# wait for that, not a fixed 4 s; back too early, the coordinator answers the agent's
# heartbeats and the silence this test checks for may never be logged
lab_wait_until 60 "the agent to notice the coordinator was gone" \
    grep -q 'silent for .* ms; reconnecting' "$LAB/agent-amd64-1.log"
lab_start_coordinator "$LAB/farm.yaml"
lab_wait_nodes 1 60 amd64-1
submit after-coordinator-restart
n=$(grep -c 'welcomed by' "$LAB/agent-amd64-1.log")
(( n >= 2 )) || lab_fail "the agent was welcomed $n time(s); expected a second HELLO after the restart"

lab_stop agent-amd64-1 KILL
lab_start_agent amd64-1 linux/amd64
lab_wait_nodes 1 40 amd64-1
submit after-agent-restart
lab_log "PASS"
