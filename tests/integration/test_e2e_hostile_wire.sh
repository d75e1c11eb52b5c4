#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Hostile and malformed messages on both coordinator endpoints (raw ZeroMQ peers written
# in Python): each gets a clear refusal or is dropped, and the coordinator keeps serving:
# afterwards `farmctl nodes` answers and a real build succeeds.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
export LAB_SKIP_BINFMT=1
export LAB_KEYS=0 # raw peers without keys test the wire layer; test_e2e_curve tests CURVE
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=amd64-1,fake-1"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent amd64-1 linux/amd64
lab_wait_nodes 1 30 amd64-1

/usr/bin/python3 "$FARM_SOURCE_DIR/tests/integration/hostile_peer.py" \
    "$LAB_AGENTS_ENDPOINT" "$FARM_COORDINATOR" || lab_fail "hostile peer checks failed"

lab_alive coordinator || lab_fail "the coordinator died"
grep -q 'bad message from agent' "$LAB/coordinator.log" || lab_fail "no log line for the malformed agent message"
grep -q 'bad message from a client' "$LAB/coordinator.log" || lab_fail "no log line for the malformed client message"
lab_farmctl nodes >"$LAB/nodes" || lab_fail "farmctl nodes failed after the hostile peers"
grep -Eq '^amd64-1 .* ready' "$LAB/nodes" || lab_fail "amd64-1 is no longer ready"
lab_example_context "$LAB/ctx"
lab_farmctl submit -t "$REGISTRY/team/after:1" --platform linux/amd64 --progress quiet "$LAB/ctx" \
    >"$LAB/out" 2>"$LAB/err" || { cat "$LAB/err"; lab_fail "a real build failed after the hostile peers"; }
grep -Eq '^sha256:[0-9a-f]{64}$' "$LAB/out" || lab_fail "no digest"
lab_log "PASS"
