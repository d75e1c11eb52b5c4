#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# CURVE on both endpoints (raw pyzmq peers with keys from farmctl keygen): a plain-text
# peer, an unknown key and a client key on the agent endpoint get nothing; a node's key
# cannot HELLO as another node; a session that does not hold a job cannot read its
# context or plant its log or result; read/submit/admin rights hold; and the coordinator
# logs an unknown key once, so an operator can enrol it.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
pa=$(lab_free_port)
pc=$(lab_free_port)
for k in n1 n2 admin dev ro stranger; do lab_keygen "$k" >/dev/null; done
cat >"$LAB/farm.yaml" <<YAML
coordinator:
  agents: tcp://127.0.0.1:$pa
  clients: tcp://127.0.0.1:$pc
  heartbeat: 5s
  state_dir: $LAB/state
  public_key: "$(lab_keygen coordinator)"
  secret_key_file: $LAB/keys/coordinator.key
platforms:
  linux/amd64: [n1, n2]
nodes:
  n1: {key: "$(lab_keygen n1)"}
  n2: {key: "$(lab_keygen n2)"}
clients:
  admin: {key: "$(lab_keygen admin)", role: admin}
  dev: {key: "$(lab_keygen dev)", role: submit}
  ro: {key: "$(lab_keygen ro)", role: read}
YAML
lab_start_coordinator "$LAB/farm.yaml"
"$LAB_PYTHON" "$FARM_SOURCE_DIR/tests/integration/curve_peer.py" \
    "$LAB_AGENTS_ENDPOINT" "$FARM_COORDINATOR" "$LAB/keys" || lab_fail "CURVE peer checks failed"

stranger=$(sed -n 's/^public-key = //p' "$LAB/keys/stranger.pub")
n=$(grep -cF "refused unknown key $stranger" "$LAB/coordinator.log" || true)
(( n == 1 )) || lab_fail "the unknown key was logged $n times, not once"
grep -q "ignoring late result for job" "$LAB/coordinator.log" \
    || lab_fail "the forged result was not logged as ignored"
lab_alive coordinator || lab_fail "the coordinator died"

# farmctl: with the farm's key and ours it lists nodes; without ours it says what to do
FARM_COORDINATOR_KEY=$LAB/keys/coordinator.pub FARM_KEY=$LAB/keys/ro.key \
    "$FARMCTL" nodes --coordinator "$FARM_COORDINATOR" >"$LAB/nodes.out" \
    || lab_fail "farmctl nodes with a read key failed"
grep -q '^n1 ' "$LAB/nodes.out" || lab_fail "farmctl nodes listed no n1: $(cat "$LAB/nodes.out")"
rc=0
FARM_COORDINATOR_KEY=$LAB/keys/coordinator.pub FARM_KEY=$LAB/keys/missing.key HOME=$LAB \
    "$FARMCTL" nodes --coordinator "$FARM_COORDINATOR" 2>"$LAB/nokey.err" || rc=$?
(( rc != 0 )) && grep -q "missing.key" "$LAB/nokey.err" \
    || lab_fail "farmctl without its key file: rc $rc, $(cat "$LAB/nokey.err")"
# a secret key file others may read is refused
chmod 644 "$LAB/keys/ro.key"
rc=0
FARM_COORDINATOR_KEY=$LAB/keys/coordinator.pub FARM_KEY=$LAB/keys/ro.key \
    "$FARMCTL" nodes --coordinator "$FARM_COORDINATOR" 2>"$LAB/mode.err" || rc=$?
(( rc != 0 )) && grep -q "chmod 600" "$LAB/mode.err" \
    || lab_fail "a group/other-readable key was not refused: $(cat "$LAB/mode.err")"
lab_log PASS
