#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A farm.yaml with an error: `farmctl validate` and the coordinator both exit non-zero
# naming the line. A submit for a platform the farm lacks is refused without building
# anything. An agent the farm does not know is rejected with a reason.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
cat >"$LAB/bad.yaml" <<'YEOF'
coordinator:
  agents: tcp://127.0.0.1:1
  clients: tcp://127.0.0.1:2
platforms:
  linux/amd64: [x86-1]
  linux/arm64: [pi5]
nodes:
  x86-1: {slots: 2}
YEOF
rc=0; "$FARMCTL" validate "$LAB/bad.yaml" >"$LAB/v.out" 2>"$LAB/v.err" || rc=$?
cat "$LAB/v.err" >&2
(( rc != 0 )) || lab_fail "farmctl validate accepted a node that is not defined"
grep -q "bad.yaml:6:[0-9]*:.*pi5" "$LAB/v.err" || lab_fail "validate did not name line 6 and node pi5"
rc=0; timeout 20 "$FARM_COORDINATOR_BIN" --config "$LAB/bad.yaml" >"$LAB/c.out" 2>"$LAB/c.err" || rc=$?
cat "$LAB/c.err" >&2
(( rc == 78 )) || lab_fail "the coordinator with a bad farm.yaml: exit status $rc, not 78 (a refusal to start)"
grep -q "bad.yaml:6:[0-9]*:.*pi5" "$LAB/c.err" || lab_fail "the coordinator did not name line 6 and node pi5"

# a state dir someone else made first (as another user could under /var/tmp, the
# default's parent) or that others may write to: the coordinator refuses to start,
# saying why, rather than trust what they may have planted (warm.json, contexts)
sed 's/^  linux\/arm64: \[pi5\]$//' "$LAB/bad.yaml" >"$LAB/ok.yaml"
for how in other-owner world-writable; do
    st=$LAB/state-$how
    mkdir -p "$st"
    if [[ $how == other-owner ]]; then chown 65534:65534 "$st"; want="is owned by uid 65534"; else chmod 0777 "$st"; want="is writable by group or others"; fi
    printf '  state_dir: %s\n' "$st" >"$LAB/st.yaml.part"
    sed "/^  clients: /r $LAB/st.yaml.part" "$LAB/ok.yaml" >"$LAB/st.yaml"
    rc=0; timeout 20 "$FARM_COORDINATOR_BIN" --config "$LAB/st.yaml" >"$LAB/st.out" 2>"$LAB/st.err" || rc=$?
    cat "$LAB/st.err" >&2
    (( rc == 78 )) || lab_fail "the coordinator with a state dir that $how: exit status $rc, not 78 (a refusal to start)"
    grep -q "coordinator.state_dir $st $want" "$LAB/st.err" || lab_fail "no clear refusal of the $how state dir"
done

# validate reports every problem of a file in one pass, each with file:line:column
rc=0; "$FARMCTL" validate "$FARM_SOURCE_DIR/tests/data/config/many-errors.yaml" 2>"$LAB/many.err" || rc=$?
(( rc == 1 )) || lab_fail "validate of many-errors.yaml exited $rc"
n=$(grep -c '^.*many-errors.yaml:[0-9]*:[0-9]*: ' "$LAB/many.err")
(( n == 17 )) || { cat "$LAB/many.err"; lab_fail "validate reported $n located problems, expected 17"; }
grep -q 'many-errors.yaml: 17 problem(s)' "$LAB/many.err" || lab_fail "no problem count"
"$FARMCTL" validate "$FARM_SOURCE_DIR/tests/data/config/good.yaml" >"$LAB/good.out" || lab_fail "good.yaml did not validate"
grep -q 'ok (5 nodes, 3 platforms)' "$LAB/good.out" || lab_fail "validate of good.yaml: $(cat "$LAB/good.out")"

# no coordinator at the endpoint: farmctl gives up with a message, it does not hang
lab_example_context "$LAB/ctx0"
rc=0
timeout 120 "$FARMCTL" submit --coordinator "tcp://127.0.0.1:$(lab_free_port)" -t 127.0.0.1:1/x/y:1 \
    --platform linux/amd64 "$LAB/ctx0" >"$LAB/nc.out" 2>"$LAB/nc.err" || rc=$?
cat "$LAB/nc.err" >&2
(( rc != 0 && rc != 124 )) || lab_fail "farmctl with no coordinator exited $rc"
grep -q 'nothing listens there (connection refused). Is farm-coordinator running on that host' "$LAB/nc.err" \
    || lab_fail "no hint that the coordinator is not running"

# a real farm with amd64 only
export LAB_SKIP_BINFMT=1
export LAB_KEYS=0 # unknown and misconfigured agents without keys: what a keyless farm says
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=amd64-1"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent amd64-1 linux/amd64
lab_wait_nodes 1 30 amd64-1
lab_example_context "$LAB/ctx"
# farmctl refuses from farm.yaml before packing anything
rc=0
"$FARMCTL" submit --farm "$LAB/farm.yaml" --coordinator "$FARM_COORDINATOR" -t "$REGISTRY/x/y:1" \
    --platform linux/amd64,linux/s390x "$LAB/ctx" >"$LAB/s1.out" 2>"$LAB/s1.err" || rc=$?
cat "$LAB/s1.err" >&2
(( rc != 0 )) || lab_fail "submit for linux/s390x was not refused"
grep -q 'linux/s390x is not served by this farm' "$LAB/s1.err" || lab_fail "refusal does not name linux/s390x"
# without a farm.yaml on the client side the coordinator refuses it itself
rc=0
(cd "$LAB/ctx" && "$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$REGISTRY/x/y:1" \
    --platform linux/amd64,linux/riscv64 "$LAB/ctx" >"$LAB/s2.out" 2>"$LAB/s2.err") || rc=$?
cat "$LAB/s2.err" >&2
(( rc != 0 )) || lab_fail "coordinator accepted linux/riscv64"
grep -q 'submit refused: platform linux/riscv64 is not served by this farm' "$LAB/s2.err" \
    || lab_fail "coordinator refusal does not name linux/riscv64"
! grep -q 'assigned' "$LAB/agent-amd64-1.log" || lab_fail "an agent was given a job of a refused build"
if skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/x/y:1" >/dev/null 2>&1; then
    lab_fail "something was pushed for a refused build"
fi

# an agent whose name farm.yaml lacks is rejected with a reason and exits non-zero
rc=0
timeout 30 "$FARM_AGENT_BIN" --coordinator "$LAB_AGENTS_ENDPOINT" --name stranger \
    --platform linux/amd64 --work-dir "$LAB/stranger" --isolation chroot >"$LAB/st.out" 2>"$LAB/st.err" || rc=$?
cat "$LAB/st.err" >&2
(( rc != 0 && rc != 124 )) || lab_fail "an unknown agent was not rejected (rc $rc)"
grep -q 'node "stranger" is not defined under nodes:' "$LAB/st.err" || lab_fail "rejection gives no reason"
# and one offering a platform not mapped to it
rc=0
timeout 30 "$FARM_AGENT_BIN" --coordinator "$LAB_AGENTS_ENDPOINT" --name amd64-1 \
    --platform linux/arm64 --work-dir "$LAB/wrong" --isolation chroot >"$LAB/w.out" 2>"$LAB/w.err" || rc=$?
(( rc != 0 && rc != 124 )) || lab_fail "an agent offering an unmapped platform was not rejected"
grep -q 'platform linux/arm64 is not mapped to node "amd64-1"' "$LAB/w.err" || lab_fail "no reason for the platform rejection"
lab_log "PASS"
