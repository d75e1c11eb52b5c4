#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Limits no peer can exhaust: a hostile client (enrolled, role submit) hits the upload,
# quota, builds-per-client and field-count limits and sends an over-long HELLO, while an
# honest client is answered promptly and a node's heartbeats keep flowing.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
pa=$(lab_free_port)
pc=$(lab_free_port)
cat >"$LAB/farm.yaml" <<YAML
coordinator:
  agents: tcp://127.0.0.1:$pa
  clients: tcp://127.0.0.1:$pc
  heartbeat: 500ms
  state_dir: $LAB/state
  max_builds_per_client: 5
  max_uploads_per_client: 4
  context_quota: 1M
  public_key: "$(lab_keygen coordinator)"
  secret_key_file: $LAB/keys/coordinator.key
platforms:
  linux/amd64: [n1]
nodes:
  n1: {key: "$(lab_keygen n1)"}
clients:
  h: {key: "$(lab_keygen h)", role: submit}
  ro: {key: "$(lab_keygen ro)", role: read}
YAML
lab_start_coordinator "$LAB/farm.yaml"
"$LAB_PYTHON" "$FARM_SOURCE_DIR/tests/integration/limits_peer.py" \
    "$LAB_AGENTS_ENDPOINT" "$FARM_COORDINATOR" "$LAB/keys" || lab_fail "limit checks failed"
grep -q "refused before unpacking: more than 4096 entries in Submit.build_args" "$LAB/coordinator.log" \
    || lab_fail "the million-field message was not refused before unpacking"
grep -q "its client started more than 4 at once (coordinator.max_uploads_per_client)" "$LAB/coordinator.log" \
    || lab_fail "the dropped upload was not logged"
n=$(grep -c "bad message from a client" "$LAB/coordinator.log" || true)
(( n <= 40 )) || lab_fail "$n warnings for 300 junk messages: not rate-limited"
grep -q "more warnings about peers' messages in the last second were not logged" "$LAB/coordinator.log" \
    || lab_fail "the suppressed warnings were not counted"
used=$(du -sb --apparent-size "$LAB/state/contexts" | cut -f1)
(( used <= 1048576 + 65536 )) || lab_fail "the context store holds $used bytes, over its 1M quota"
lab_alive coordinator || lab_fail "the coordinator died"
lab_log PASS
