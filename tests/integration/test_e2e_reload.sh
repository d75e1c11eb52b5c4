#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# farm.yaml reloaded (SIGHUP) in a running coordinator, on real parts (registry,
# coordinator, sandboxed agents, farmctl, CURVE keys):
#   1. nodes a, b (a drained); a build runs on b; the file is reloaded with b removed and
#      c added: b's build finishes and pushes (attempt 1, never re-dispatched), b is then
#      forgotten and its agent told why, c connects and builds the next build;
#   2. an invalid farm.yaml is refused with its file:line:column in the log, and a setting
#      only a restart can change is refused by name; the config in force keeps serving;
#   3. a client key removed: that client is refused with a message naming why, on a new
#      connection and on one it opened before the reload; another client is served;
#   4. a platform removed while a build of it waits: the build fails, its reason naming
#      the reload;
#   5. a node's key replaced: its agent, connected with the old key, is told why and stops.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
lab_registry_start
pa=$(lab_free_port)
pc=$(lab_free_port)
yaml=$LAB/farm.yaml

# write_yaml NODES CLIENTS [CLIENTS_PORT] [EXTRA_PLATFORM_NODE] [PLATFORM_LINE]: the
# farm.yaml the coordinator reads, replaced whole (as an editor or config management would)
write_yaml() {
    local nodes=$1 clients=$2 port=${3:-$pc} extra=${4:-} more=${5:-} n list=""
    for n in $nodes $extra; do list+=${list:+, }$n; done
    {
        echo "coordinator:"
        echo "  agents: tcp://127.0.0.1:$pa"
        echo "  clients: tcp://127.0.0.1:$port"
        echo "  heartbeat: 500ms"
        echo "  state_dir: $LAB/state"
        echo "  public_key: \"$(lab_keygen coordinator)\""
        echo "  secret_key_file: $LAB/keys/coordinator.key"
        echo "platforms:"
        echo "  linux/amd64: [$list]"
        [[ -z $more ]] || echo "  $more"
        echo "nodes:"
        for n in $nodes; do echo "  $n: {slots: 1, key: \"$(lab_keygen "${KEY_OF[$n]:-$n}")\"}"; done
        echo "clients:"
        for n in $clients; do echo "  $n: {key: \"$(lab_keygen "$n")\", role: admin}"; done
        echo "registries:"
        echo "  \"$REGISTRY\": {insecure: true}"
    } >"$yaml.new"
    mv "$yaml.new" "$yaml"
}

# reload WHAT PATTERN: SIGHUP the coordinator and wait for one more log line matching
# PATTERN (grep -E) than before
reload() {
    local what=$1 pattern=$2 before
    before=$(grep -cE -- "$pattern" "$LAB/coordinator.log" || true)
    lab_log "SIGHUP: $what"
    kill -HUP "$(lab_pid coordinator)" # the main process only, as systemctl reload does
    lab_wait_until 20 "the coordinator's answer to the reload ($what)" \
        bash -c '(( $(grep -cE -- "$1" "$2" || true) > $3 ))' _ "$pattern" "$LAB/coordinator.log" "$before"
}

declare -A KEY_OF=() # a node's key pair, when not the one named after it
mkdir -p "$LAB/state"
write_yaml "a b" "lab ops"
export FARM_KEY=$LAB/keys/lab.key FARM_COORDINATOR_KEY=$LAB/keys/coordinator.pub
lab_start_coordinator "$yaml"
lab_start_agent a linux/amd64
lab_start_agent b linux/amd64
lab_wait_nodes 2 30 a b
lab_farmctl drain a >/dev/null || lab_fail "farmctl drain a failed"

ctx=$LAB/ctx
lab_example_context "$ctx"
cat >>"$ctx/Dockerfile" <<'DEOF'
ARG ROUND
ARG PAUSE=1
RUN echo "farm-test: long step starts $ROUND" && sleep $PAUSE && echo "farm-test: long step ends"
DEOF

# submit N PAUSE: a build of $REGISTRY/reload/app:N in the background (pid in $submit_pid)
submit() {
    "$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$REGISTRY/reload/app:$1" \
        --platform linux/amd64 --build-arg "ROUND=$1" --build-arg "PAUSE=$2" --progress plain \
        "$ctx" >"$LAB/out$1" 2>"$LAB/err$1" &
    submit_pid=$!
}
# finished N: the build's farmctl exited 0 and its index is in the registry
finished() {
    local rc=0
    wait "$submit_pid" || rc=$?
    cat "$LAB/err$1" >&2
    ((rc == 0)) || lab_fail "build $1 failed (farmctl exit $rc)"
    lab_index "$REGISTRY/reload/app:$1" | grep -q 'image.index.v1+json' \
        || lab_fail "no index under $REGISTRY/reload/app:$1"
}

# --- 1. b removed while it builds, c added ------------------------------------------------
submit 1 25
lab_wait_until 180 "build 1's long RUN step" grep -q "] farm-test: long step starts 1$" "$LAB/err1"
grep -q "dispatched: attempt 1 on b" "$LAB/err1" || lab_fail "build 1 did not run on b (a is drained)"
write_yaml "a c" "lab ops"
reload "b removed, c added" "reload: .* applied"
grep -E "reload: $yaml applied: 2 node\(s\) \(added: c; removed: b\)" "$LAB/coordinator.log" >&2 \
    || lab_fail "the coordinator did not log the reload's outcome (added c, removed b)"
lab_start_agent c linux/amd64
lab_wait_nodes 1 30 c
# b still runs build 1 and is still listed with it
lab_farmctl nodes >"$LAB/nodes-after" || lab_fail "farmctl nodes failed after the reload"
cat "$LAB/nodes-after" >&2
grep -Eq "^b +removed +1/1 .* b1-[0-9a-f]+\.1$" "$LAB/nodes-after" || lab_fail "b is not shown removed, running build 1"
finished 1
grep -q "attempt 2" "$LAB/err1" && lab_fail "build 1 was re-dispatched after the reload"
grep -q "long step ends" "$LAB/err1" || lab_fail "build 1's RUN step did not finish on b"
# b, idle, is forgotten and its agent told why; it exits as for any refusal
lab_wait_until 20 "b to be forgotten" grep -q "node=b removed from farm.yaml and idle: forgotten" "$LAB/coordinator.log"
lab_wait_until 20 "b's agent to hear why" grep -q "node \"b\" was removed from $yaml (reload)" "$LAB/agent-b.log"
lab_wait_until 20 "b's agent to stop" bash -c '! kill -0 "$1" 2>/dev/null' _ "$(lab_pid agent-b)"
lab_farmctl nodes >"$LAB/nodes-forgotten" || lab_fail "farmctl nodes failed"
! grep -q "^b " "$LAB/nodes-forgotten" || lab_fail "farmctl nodes still lists the forgotten node b"
submit 2 1
finished 2
grep -q "dispatched: attempt 1 on c" "$LAB/err2" || lab_fail "build 2 did not run on c"
grep -q "job=.*attempt=1 platform=linux/amd64 pushed" "$LAB/agent-c.log" || lab_fail "c's agent pushed nothing"

# --- 2. refused reloads: the config in force stays --------------------------------------
write_yaml "a c" "lab ops" "$pc" zz
zz_line=$(grep -n "linux/amd64: \[a, c, zz\]" "$yaml" | cut -d: -f1)
reload "a platform mapped to an undefined node" "reload refused"
grep -E "$yaml:$zz_line:[0-9]+: node \"?zz\"? is mapped to linux/amd64 but is not defined under nodes:" \
    "$LAB/coordinator.log" >&2 || lab_fail "the refusal does not name $yaml:$zz_line:COLUMN and the problem"
grep -q "reload refused: $yaml is not valid .*the farm.yaml loaded before stays in force" \
    "$LAB/coordinator.log" || lab_fail "the coordinator did not log that the old config stays"
other=$(lab_free_port)
write_yaml "a c" "lab ops" "$other"
reload "coordinator.clients changed" "reload refused"
grep -q "coordinator.clients cannot change on reload (tcp://127.0.0.1:$pc -> tcp://127.0.0.1:$other); restart the coordinator" \
    "$LAB/coordinator.log" || lab_fail "the refusal does not name coordinator.clients"
# still the config loaded in part 1: c builds, on the same endpoint
submit 3 1
finished 3
grep -q "dispatched: attempt 1 on c" "$LAB/err3" || lab_fail "build 3 did not run on c after the refused reloads"

# --- 3. a client key removed ------------------------------------------------------------
# a connection made with lab's key before the reload: its next message is refused, naming why
cat >"$LAB/held.py" <<'PY'
import os, sys, time
sys.path.insert(0, sys.argv[1])
from farm_wire import check, curve_dealer, envelope, failures, read_key, recv_body
endpoint, keydir, flag = sys.argv[2], sys.argv[3], sys.argv[4]
s = curve_dealer(endpoint, keydir + "/lab.key", read_key(keydir + "/coordinator.pub")[0])
s.send(envelope(26, b""))
check(recv_body(s, 27) is not None, "lab lists the nodes before the reload")
open(flag + ".ready", "w").close()
deadline = time.time() + 60
while not os.path.exists(flag + ".go") and time.time() < deadline:
    time.sleep(0.1)
s.send(envelope(26, b""))
r = recv_body(s, 23)
reason = r[1][0].decode() if r and 1 in r else ""
print("refused: " + reason)
check("is no longer enrolled under clients:" in reason, "the held connection is refused, naming why")
check(recv_body(s, 27, 1000) is None, "and is not given the node list")
sys.exit(1 if failures else 0)
PY
"$LAB_PYTHON" "$LAB/held.py" "$FARM_SOURCE_DIR/tests/integration" "$FARM_COORDINATOR" "$LAB/keys" \
    "$LAB/held" >"$LAB/held.out" 2>&1 &
held_pid=$!
lab_wait_until 30 "lab's held connection to be served" test -e "$LAB/held.ready"
write_yaml "a c" "ops"
reload "client lab removed" "reload: .* applied"
touch "$LAB/held.go"
rc=0
wait "$held_pid" || rc=$?
cat "$LAB/held.out" >&2
((rc == 0)) || lab_fail "a connection opened with lab's key before the reload was still served"
lab_key=$(sed -n 's/^public-key = //p' "$LAB/keys/lab.pub")
rc=0
timeout 60 "$FARMCTL" builds --coordinator "$FARM_COORDINATOR" >"$LAB/removed.out" 2>"$LAB/removed.err" || rc=$?
cat "$LAB/removed.err" >&2
((rc != 0 && rc != 124)) || lab_fail "farmctl with the removed key: exit $rc"
grep -qF -- "refused farmctl's key $lab_key" "$LAB/removed.err" \
    && grep -qF "it is not enrolled under clients:" "$LAB/removed.err" \
    || lab_fail "the removed client is not told its key is no longer enrolled"
FARM_KEY=$LAB/keys/ops.key timeout 60 "$FARMCTL" nodes --coordinator "$FARM_COORDINATOR" >"$LAB/ops.out" \
    || lab_fail "client ops was not served after the reload"
grep -Eq "^c +linux/amd64 +ready " "$LAB/ops.out" || lab_fail "ops is not shown node c: $(cat "$LAB/ops.out")"

# --- 4. a platform removed while a build of it waits ------------------------------------
export FARM_KEY=$LAB/keys/ops.key
write_yaml "a c" "ops" "$pc" "" "linux/arm64: [a]"
reload "linux/arm64 added" "reload: .* applied"
grep -q "applied: 2 node(s) (added: none; removed: none), 2 platform(s) (added: linux/arm64; removed: none)" \
    "$LAB/coordinator.log" || lab_fail "the reload adding linux/arm64 was not logged"
"$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$REGISTRY/reload/app:4" --platform linux/arm64 \
    --build-arg ROUND=4 --progress plain "$ctx" >"$LAB/out4" 2>"$LAB/err4" &
submit_pid=$!
# no node serves linux/arm64 (a is drained and offers amd64 only): the job waits
lab_wait_until 60 "build 4 to wait for a node" grep -q "no live node serves linux/arm64 yet" "$LAB/err4"
write_yaml "a c" "ops"
reload "linux/arm64 removed" "reload: .* applied"
rc=0
wait "$submit_pid" || rc=$?
cat "$LAB/err4" >&2
((rc != 0)) || lab_fail "build 4 succeeded without its platform"
grep -q "platform linux/arm64 was removed from $yaml (reload)" "$LAB/err4" \
    || lab_fail "build 4's failure does not name the reload"

# --- 5. a node's key replaced -----------------------------------------------------------
KEY_OF[c]=c-new
write_yaml "a c" "ops"
reload "c's key replaced" "reload: .* applied"
lab_wait_until 20 "c's agent to hear why" grep -q "node \"c\"'s key changed in $yaml (reload)" "$LAB/agent-c.log"
lab_wait_until 20 "c's agent to stop" bash -c '! kill -0 "$1" 2>/dev/null' _ "$(lab_pid agent-c)"
lab_farmctl nodes >"$LAB/nodes-rekeyed" || lab_fail "farmctl nodes failed"
grep -Eq "^c +linux/amd64 +lost " "$LAB/nodes-rekeyed" || lab_fail "c is not shown lost: $(cat "$LAB/nodes-rekeyed")"
lab_log "PASS"
