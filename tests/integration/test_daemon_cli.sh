#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What the daemons print before and while they serve, as an operator meets it:
# - `--version` on farm-coordinator, farm-agent and farmctl prints the build's version;
# - under systemd (stderr is the stream $JOURNAL_STREAM names, dev:inode), every line
#   starts with its syslog priority, so `journalctl -p err` finds the refusals: a
#   coordinator refusing a bad farm.yaml and an agent refusing a missing key say <3>, a
#   running coordinator's lines <6> (info) and <7> (debug, -v), and a warning <4>;
# - a daemon that refuses to start (bad options, a bad farm.yaml, a missing key) exits
#   78 (EX_CONFIG), which the units' RestartPreventExitStatus= does not restart;
# - without keys the agent refuses a coordinator that is not on this machine (its jobs
#   carry registry logins), judged by the endpoint rule (a host name is not loopback),
#   and names the fix; with keys it goes on to connect; a keyless coordinator refuses a
#   coordinator.agents bind off loopback;
# - with stderr elsewhere (a file, a terminal) the same lines carry no prefix.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
version=$(sed -n 's/^project(farm VERSION \([0-9.]*\).*/\1/p' "$FARM_SOURCE_DIR/CMakeLists.txt")
[[ -n $version ]] || lab_fail "no project version in CMakeLists.txt"
for spec in "$FARM_COORDINATOR_BIN:farm-coordinator" "$FARM_AGENT_BIN:farm-agent" "$FARMCTL:farmctl"; do
    IFS=: read -r bin name <<<"$spec"
    out=$("$bin" --version 2>&1) || lab_fail "$name --version failed: $out"
    [[ $out == "$name $version" ]] || lab_fail "$name --version says \"$out\", not \"$name $version\""
done
lab_log "--version: farm-coordinator, farm-agent, farmctl say $version"

# run_to FILE JOURNAL CMD...: CMD with stderr (and stdout) appended to FILE; JOURNAL=1
# sets $JOURNAL_STREAM to FILE's dev:inode, as systemd does for StandardError=journal
run_to() {
    local f=$1 j=$2
    shift 2
    : >>"$f"
    if ((j)); then
        JOURNAL_STREAM=$(stat -c '%d:%i' "$f") "$@" >>"$f" 2>&1
    else
        env -u JOURNAL_STREAM "$@" >>"$f" 2>&1
    fi
}

# a farm.yaml the coordinator refuses
printf 'coordinator:\n  agents: tcp://127.0.0.1:1\nplatforms:\n  linux/amd64: [nowhere]\n' >"$LAB/bad.yaml"
for j in 1 0; do
    f=$LAB/bad-$j.log
    rc=0
    run_to "$f" "$j" "$FARM_COORDINATOR_BIN" --config "$LAB/bad.yaml" || rc=$?
    ((rc == 78)) || lab_fail "farm-coordinator with a bad farm.yaml: exit status $rc, not 78: $(cat "$f")"
    grep -q 'is not valid; fix it' "$f" || lab_fail "farm-coordinator did not refuse bad.yaml: $(cat "$f")"
    if ((j)); then
        grep -vq '^<3>' "$f" && lab_fail "a refusal line without <3> in the journal: $(grep -v '^<3>' "$f")"
    else
        grep -q '^<' "$f" && lab_fail "a priority prefix outside the journal: $(cat "$f")"
    fi
done
lab_log "bad farm.yaml: every refusal line <3> in the journal, none elsewhere: $(head -n1 "$LAB/bad-1.log")"

for j in 1 0; do
    f=$LAB/agent-$j.log
    rc=0
    run_to "$f" "$j" "$FARM_AGENT_BIN" --coordinator tcp://127.0.0.1:1 --name n1 \
        --key "$LAB/missing.key" --coordinator-key "$LAB/missing.pub" || rc=$?
    ((rc == 78)) || lab_fail "farm-agent without its key: exit status $rc, not 78: $(cat "$f")"
    want="farm-agent: cannot open key file $LAB/missing.key"
    if ((j)); then want="<3>$want"; fi
    grep -q "^$want" "$f" || lab_fail "farm-agent's refusal is not \"$want...\": $(cat "$f")"
done
lab_log "agent without its key: $(cat "$LAB/agent-1.log")"

# bad options: 78 from both daemons (under systemd they come from the unit's
# FARM_AGENT_ARGS or FARM_COORDINATOR_ARGS), but `farm-agent check` keeps 2
for cmd in "$FARM_COORDINATOR_BIN --config $LAB/bad.yaml --no-such-option" \
    "$FARM_AGENT_BIN --coordinator tcp://127.0.0.1:1 --name n1 --slots many" \
    "$FARM_AGENT_BIN --coordinator tcp://127.0.0.1:1 --name n1 --no-such-option"; do
    rc=0
    $cmd >"$LAB/opts.out" 2>&1 || rc=$?
    ((rc == 78)) || lab_fail "$cmd: exit status $rc, not 78: $(cat "$LAB/opts.out")"
done
rc=0
"$FARM_AGENT_BIN" check --slots many >"$LAB/opts.out" 2>&1 || rc=$?
((rc == 2)) || lab_fail "farm-agent check --slots many: exit status $rc, not 2 (a usage error of a command)"
lab_log "bad options: both daemons exit 78, farm-agent check 2"

# keyless agents: only a coordinator on this machine. A listener on this machine's
# loopback, reached by a host name (tcp://localhost), stands for whatever would answer:
# it must see no connection (the rule judges the address as written, not where it leads).
port=$(lab_free_port)
cat >"$LAB/listen.py" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
while True:
    c, _ = s.accept()
    open(sys.argv[2], "a").write("connection\n")
    c.close()
PY
lab_spawn listener "$LAB/listener.log" "$LAB_PYTHON" "$LAB/listen.py" "$port" "$LAB/heard"
lab_wait_until 10 "the listener" lab_port_listening "$port"
for ep in "tcp://localhost:$port" tcp://10.0.0.10:7700 tcp://0.0.0.0:7700; do
    rc=0
    "$FARM_AGENT_BIN" --coordinator "$ep" --name n1 --isolation chroot --work-dir "$LAB/kl" \
        >"$LAB/keyless.out" 2>&1 || rc=$?
    ((rc == 78)) || lab_fail "a keyless agent for $ep: exit status $rc, not 78: $(cat "$LAB/keyless.out")"
    grep -qF "farm-agent: refusing to start: --coordinator $ep is not on this machine" "$LAB/keyless.out" \
        && grep -qF "Enrol this node with keys: \`farmctl keygen NAME\`" "$LAB/keyless.out" \
        || lab_fail "the keyless agent's refusal for $ep does not say why and the fix: $(cat "$LAB/keyless.out")"
done
sleep 1
[[ ! -e $LAB/heard ]] || lab_fail "the keyless agent connected to tcp://localhost:$port"
rc=0
"$FARM_AGENT_BIN" --coordinator tcp://nowhere --name n1 >"$LAB/keyless.out" 2>&1 || rc=$?
((rc == 78)) && grep -qF 'farm-agent: --coordinator "tcp://nowhere": ' "$LAB/keyless.out" \
    || lab_fail "an agent with an endpoint of no port: exit status $rc: $(cat "$LAB/keyless.out")"
# a loopback endpoint without keys, or one off this machine with keys, passes the rule:
# the agent is still running (connecting) after 3 s
lab_keygen kn1 >/dev/null
lab_keygen kcoord >/dev/null
for spec in "tcp://127.0.0.1:1" "tcp://10.0.0.10:7700 --key $LAB/keys/kn1.key --coordinator-key $LAB/keys/kcoord.pub"; do
    rc=0
    # shellcheck disable=SC2086 # spec is the endpoint and the key options
    timeout 3 "$FARM_AGENT_BIN" --coordinator $spec --name n1 --isolation chroot \
        --work-dir "$LAB/kw" >"$LAB/keyed.out" 2>&1 || rc=$?
    ((rc == 124)) || lab_fail "the agent for $spec did not keep running (exit status $rc): $(cat "$LAB/keyed.out")"
    ! grep -q 'refusing to start' "$LAB/keyed.out" || lab_fail "the agent for $spec refused: $(cat "$LAB/keyed.out")"
done
lab_log "keyless agents: refused for a coordinator off this machine, with the fix; keyed or loopback ones run"

# a keyless coordinator binds coordinator.agents on loopback only
printf 'coordinator:\n  agents: tcp://0.0.0.0:7700\n  clients: tcp://127.0.0.1:7701\nplatforms:\n  linux/amd64: [n1]\nnodes:\n  n1: {slots: 1}\n' >"$LAB/open.yaml"
rc=0
"$FARM_COORDINATOR_BIN" --config "$LAB/open.yaml" >"$LAB/open.out" 2>&1 || rc=$?
((rc == 78)) && grep -qF 'open.yaml:2:11: coordinator.agents is "tcp://0.0.0.0:7700", which is not a loopback address, but farm.yaml names no keys: every job and its registry logins would travel unencrypted' "$LAB/open.out" \
    || lab_fail "a keyless coordinator binding agents on 0.0.0.0: exit status $rc: $(cat "$LAB/open.out")"
lab_log "keyless coordinator: coordinator.agents on 0.0.0.0 refused (78)"

# a running coordinator, -v, its log the journal's stream: info, debug (a heartbeat of no
# session) and warning lines (an agent that is not in farm.yaml says HELLO)
export LAB_KEYS=0 # a plain loopback farm: the stranger needs no key to be heard
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=n1"
: >"$LAB/coordinator.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$LAB/coordinator.log")
export JOURNAL_STREAM
lab_start_coordinator "$LAB/farm.yaml"
unset JOURNAL_STREAM
"$LAB_PYTHON" - "$LAB_AGENTS_ENDPOINT" <<'PYEOF' || lab_fail "could not say HELLO as a stranger"
import sys, time, zmq
sys.path.insert(0, __import__("os").environ["FARM_SOURCE_DIR"] + "/tests/integration")
from farm_wire import envelope as env, f_bytes as fb
s = zmq.Context().socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 1000)
s.setsockopt(zmq.ROUTING_ID, b"stranger")
s.connect(sys.argv[1])
s.send(env(13, b""))  # a heartbeat of no session: told to say HELLO (logged at debug)
s.poll(5000)
s.recv()
s.send(env(10, fb(1, b"stranger") + fb(2, b"linux/amd64")))  # not in farm.yaml: warn
s.poll(5000)
PYEOF
deadline=$((SECONDS + 30))
until grep -q '^<4>.*rejecting agent stranger' "$LAB/coordinator.log"; do
    ((SECONDS < deadline)) || lab_fail "no <4> warning for the stranger's HELLO: $(cat "$LAB/coordinator.log")"
    sleep 0.2
done
# (lab_spawn's own header line is the lab's, not the coordinator's)
lines=$(grep -v '^=====\|^$' "$LAB/coordinator.log")
grep -q '^<6>' <<<"$lines" || lab_fail "no <6> info line from the running coordinator: $lines"
grep -q '^<7>' <<<"$lines" || lab_fail "no <7> debug line from the coordinator under -v: $lines"
bad=$(grep -v '^<[3467]>[0-9]\{4\}-' <<<"$lines") && lab_fail "coordinator lines without a priority: $bad"
lab_log "running coordinator: $(grep -c '^<6>' <<<"$lines") <6>, $(grep -c '^<7>' <<<"$lines") <7>, $(grep -c '^<4>' <<<"$lines") <4> lines"
lab_log "PASS"
