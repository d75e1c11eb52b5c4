#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every refusal farmctl can meet names its cause and the fix, and comes quickly (not after
# a 5 s silence): an unenrolled client key, the wrong coordinator key, no coordinator key,
# the agents' port (keyed and keyless farms), a closed port, a name that does not
# resolve, an HTTP server's port, a port that takes the connection and says nothing, a
# read client that submits, a registry that speaks plain HTTP where farm.yaml expects
# TLS, a quota, and a coordinator key given to a keyless farm. farmctl finds its key at
# ~/.config/farm/key (a symlink to the user's own 0600 file) and the coordinator's at
# ~/.config/farm/coordinator.pub, so the README's `farmctl nodes --coordinator
# tcp://HEAD:7701` works as written.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
pa=$(lab_free_port)
pc=$(lab_free_port)
for k in n1 ro dev stranger othercoord; do lab_keygen "$k" >/dev/null; done
cat >"$LAB/farm.yaml" <<YAML
coordinator:
  agents: tcp://127.0.0.1:$pa
  clients: tcp://127.0.0.1:$pc
  state_dir: $LAB/state
  public_key: "$(lab_keygen coordinator)"
  secret_key_file: $LAB/keys/coordinator.key
platforms:
  linux/amd64: [n1]
nodes:
  n1: {key: "$(lab_keygen n1)"}
clients:
  ro: {key: "$(lab_keygen ro)", role: read}
  dev: {key: "$(lab_keygen dev)", role: submit}
YAML
lab_start_coordinator "$LAB/farm.yaml"
unset FARM_KEY FARM_COORDINATOR_KEY FARM_COORDINATOR
mkdir -p "$LAB/nohome" "$LAB/work" "$LAB/state2"
cd "$LAB/work" # no farm.yaml here: only what each case gives

# expect NAME WANT [ENV=VALUE...] -- FARMCTL-ARGS...: farmctl fails within 20 s (the old
# answer to all of these was a 5 s wait and "no answer") and its error holds WANT.
expect() {
    local name=$1 want=$2 rc=0 t0 secs
    shift 2
    local -a envs=()
    while [[ $1 != -- ]]; do envs+=("$1"); shift; done
    shift
    t0=$(date +%s%N)
    env HOME="$LAB/nohome" "${envs[@]}" timeout 60 "$FARMCTL" "$@" \
        >"$LAB/$name.out" 2>"$LAB/$name.err" </dev/null || rc=$?
    secs=$(( ($(date +%s%N) - t0) / 1000000000 ))
    lab_log "$name: rc $rc after ${secs}s: $(head -c 600 "$LAB/$name.err")"
    (( rc != 0 )) || lab_fail "$name: farmctl exited 0"
    (( rc != 124 )) || lab_fail "$name: farmctl hung for 60 s"
    grep -qF -- "$want" "$LAB/$name.err" \
        || lab_fail "$name: the error does not say \"$want\": $(cat "$LAB/$name.err")"
    ! grep -q 'no answer from' "$LAB/$name.err" || lab_fail "$name: still \"no answer\""
    (( secs < 20 )) || lab_fail "$name: took ${secs}s"
}
K=$LAB/keys
stranger=$(sed -n 's/^public-key = //p' "$K/stranger.pub")

expect unknown_key "refused farmctl's key $stranger" \
    FARM_COORDINATOR_KEY="$K/coordinator.pub" FARM_KEY="$K/stranger.key" \
    -- nodes --coordinator "tcp://127.0.0.1:$pc"
grep -qF "clients: NAME: {key: \"$stranger\", role: submit}" "$LAB/unknown_key.err" \
    || lab_fail "the unknown-key refusal does not show the farm.yaml line to add"
grep -qF "refused unknown key $stranger" "$LAB/coordinator.log" \
    || lab_fail "the coordinator did not log the unknown key"

expect wrong_coordinator_key "is not that coordinator's" \
    FARM_COORDINATOR_KEY="$K/othercoord.pub" FARM_KEY="$K/ro.key" \
    -- nodes --coordinator "tcp://127.0.0.1:$pc"
grep -qF -- "$(sed -n 's/^public-key = //p' "$K/othercoord.pub")" "$LAB/wrong_coordinator_key.err" \
    || lab_fail "the wrong-key refusal does not show the key farmctl used"

expect no_coordinator_key "uses keys (CURVE) but farmctl has no coordinator key: set FARM_COORDINATOR_KEY" \
    FARM_KEY="$K/ro.key" -- nodes --coordinator "tcp://127.0.0.1:$pc"

expect agents_port "is the coordinator's agents endpoint" \
    FARM_COORDINATOR_KEY="$K/coordinator.pub" FARM_KEY="$K/ro.key" \
    -- nodes --coordinator "tcp://127.0.0.1:$pa"

closed=$(lab_free_port)
expect closed_port "cannot connect to tcp://127.0.0.1:$closed: nothing listens there (connection refused)" \
    FARM_COORDINATOR_KEY="$K/coordinator.pub" FARM_KEY="$K/ro.key" \
    -- nodes --coordinator "tcp://127.0.0.1:$closed"

# a name that does not resolve (.invalid never does, RFC 6761)
expect no_such_host "cannot connect to tcp://farm-head.invalid:7701: cannot resolve farm-head.invalid" \
    FARM_COORDINATOR_KEY="$K/coordinator.pub" FARM_KEY="$K/ro.key" \
    -- nodes --coordinator "tcp://farm-head.invalid:7701"

# a port that takes the connection and never speaks: silence, said as such after 5 s
mute=$(lab_free_port)
lab_spawn mute "$LAB/mute.log" "$LAB_PYTHON" -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
held = []
while True:
    c, _ = s.accept(); held.append(c)
' "$mute"
lab_wait_until 15 "the mute listener" lab_port_listening "$mute"
expect mute_port "did not finish the ZeroMQ handshake" \
    FARM_COORDINATOR_KEY="$K/coordinator.pub" FARM_KEY="$K/ro.key" \
    -- nodes --coordinator "tcp://127.0.0.1:$mute"

# a read client that submits: the coordinator's words, with the role it needs
lab_example_context "$LAB/ctx"
expect read_submits "client ro has role read; to submit it needs role submit" \
    FARM_COORDINATOR_KEY="$K/coordinator.pub" FARM_KEY="$K/ro.key" \
    -- submit --coordinator "tcp://127.0.0.1:$pc" -t 127.0.0.1:5999/team/app:1 \
       --platform linux/amd64 --progress plain "$LAB/ctx"
grep -qF "clients: ro: role: in $LAB/farm.yaml" "$LAB/read_submits.err" \
    || lab_fail "the role refusal does not name the farm.yaml setting"

# a plain-HTTP registry farm.yaml does not list as insecure: refused when the build is
# submitted, before any build work (this farm has no agents), with the line to add
lab_registry_start
expect plain_registry "submit refused: registry $REGISTRY answers plain HTTP, not TLS" \
    FARM_COORDINATOR_KEY="$K/coordinator.pub" FARM_KEY="$K/dev.key" \
    -- submit --coordinator "tcp://127.0.0.1:$pc" -t "$REGISTRY/team/app:1" \
       --platform linux/amd64 --progress plain "$LAB/ctx"
grep -qF "add \`registries: \"$REGISTRY\": {insecure: true}\` there" "$LAB/plain_registry.err" \
    || lab_fail "the plain-HTTP refusal does not give the farm.yaml line"

# an HTTP server's port (the registry's: it waits for a request line that never comes) is
# not taken for a coordinator that refused us, nor for "no answer"
expect http_port "tcp://$REGISTRY took the connection but did not finish the ZeroMQ handshake within 5 s" \
    FARM_COORDINATOR_KEY="$K/coordinator.pub" FARM_KEY="$K/ro.key" \
    -- nodes --coordinator "tcp://$REGISTRY"

# README "A real fleet" step 6, as written: the user's key linked at ~/.config/farm/key
# (keygen writes NAME.key where it runs) and the head's coordinator.pub beside it
home=$LAB/home
mkdir -p "$home/.config/farm" "$home/keys"
cp -p "$K/ro.key" "$home/keys/ro.key"
ln -s "$home/keys/ro.key" "$home/.config/farm/key"
cp "$K/coordinator.pub" "$home/.config/farm/coordinator.pub"
HOME=$home "$FARMCTL" nodes --coordinator "tcp://127.0.0.1:$pc" >"$LAB/step6.out" 2>"$LAB/step6.err" \
    || lab_fail "README step 6 failed: $(cat "$LAB/step6.err")"
grep -q '^n1 ' "$LAB/step6.out" || lab_fail "step 6 listed no n1: $(cat "$LAB/step6.out")"
# ... and the link's target is judged: one others may read is refused, with the fix
chmod 0644 "$home/keys/ro.key"
rc=0
HOME=$home "$FARMCTL" nodes --coordinator "tcp://127.0.0.1:$pc" 2>"$LAB/step6mode.err" || rc=$?
(( rc != 0 )) && grep -q "chmod 600 $home/keys/ro.key" "$LAB/step6mode.err" \
    || lab_fail "a linked key others may read was not refused: $(cat "$LAB/step6mode.err")"
chmod 0600 "$home/keys/ro.key"
# keygen says where farmctl looks for the key it just wrote
(cd "$LAB/work" && "$FARMCTL" keygen alice >"$LAB/keygen.out")
grep -qF "ln -s \"$LAB/work/alice.key\" ~/.config/farm/key" "$LAB/keygen.out" \
    || lab_fail "keygen does not say how farmctl finds the key: $(cat "$LAB/keygen.out")"
lab_alive coordinator || lab_fail "the coordinator died"

# a keyless farm: farmctl on the agents' port is told so by the coordinator; a
# coordinator key given to it is named; its quota refusal is shown as the coordinator
# said it
lab_stop coordinator
pa2=$(lab_free_port)
pc2=$(lab_free_port)
cat >"$LAB/plain.yaml" <<YAML
coordinator:
  agents: tcp://127.0.0.1:$pa2
  clients: tcp://127.0.0.1:$pc2
  state_dir: $LAB/state2
  context_quota: 1M
platforms:
  linux/amd64: [n1]
nodes:
  n1: {slots: 1}
YAML
lab_start_coordinator "$LAB/plain.yaml"
expect plain_agents_port "this is the coordinator's agents endpoint (tcp://127.0.0.1:$pa2)" \
    -- nodes --coordinator "tcp://127.0.0.1:$pa2"
grep -qF "coordinator.clients in farm.yaml (tcp://127.0.0.1:$pc2)" "$LAB/plain_agents_port.err" \
    || lab_fail "the agents' port refusal does not name the clients endpoint"
expect plain_with_key "uses no keys" \
    FARM_COORDINATOR_KEY="$K/coordinator.pub" FARM_KEY="$K/ro.key" \
    -- nodes --coordinator "tcp://127.0.0.1:$pc2"
# a quota refusal: the coordinator's words (the 5 MB context is over this farm's 1M)
expect quota "context upload refused: the context is " \
    -- submit --coordinator "tcp://127.0.0.1:$pc2" -t 127.0.0.1:5999/team/app:1 \
       --platform linux/amd64 --progress plain "$LAB/ctx"
grep -qF "more than the coordinator keeps for all contexts (coordinator.context_quota: 1 MiB, set in the coordinator's farm.yaml): make it smaller" \
    "$LAB/quota.err" || lab_fail "the quota refusal does not name coordinator.context_quota and the fix"
HOME=$LAB/nohome "$FARMCTL" nodes --coordinator "tcp://127.0.0.1:$pc2" >/dev/null 2>"$LAB/plain.err" \
    || lab_fail "farmctl nodes on the keyless farm failed: $(cat "$LAB/plain.err")"
lab_alive coordinator || lab_fail "the coordinator died"
lab_log PASS
