#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A farm.yaml checked into a repository is input from whoever can change the repository.
# On a keyed farm deployed as the README says (alice's farmctl has FARM_COORDINATOR,
# FARM_COORDINATOR_KEY and FARM_KEY; bob is another client), each attack is tried:
#  0. a keyless coordinator.clients spelt like loopback (tcp://127.attacker.example) is
#     refused by farmctl validate and by submit at its line; a plain endpoint named by a
#     host name (tcp://localhost) gets no build secret;
#  1. build.secrets naming alice's ~/.ssh key, ../x and env=SOME_TOKEN are refused at
#     their lines, and so is a src= inside the repository that is a symlink out of it;
#     nothing is pushed. A file inside the repository reaches RUN --mount=type=secret;
#  2. a farm.yaml naming another coordinator (a real CURVE server, with its endpoint and
#     key) and a host under registries: is refused, and that server receives nothing;
#     with --trust-repo-coordinator it does receive the Submit with alice's passwords
#     (so the probe would see the leak); farmctl nodes, builds and drain follow the same
#     rule (the file's key is refused unless it is alice's own, or trusted), and a
#     farm.yaml naming alice's own key serves them;
#  3. bob submits alice's context digest without sending its bytes: refused as "upload
#     it first", while alice's own submit of it is accepted;
#  4. bob offers alice's digest: told to send it, her context's age unchanged; alice's
#     offer is "have" and refreshes it, also after a coordinator restart.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
export LAB_SKIP_BINFMT=1
rnd() { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
peer() { "$LAB_PYTHON" "$FARM_SOURCE_DIR/tests/integration/trust_peer.py" "$@"; }

lab_registry_start
LAB_CLIENT_ROLE=submit lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=amd64-1"
bob_key=$(lab_keygen bob)
sed -i "/^  lab: {key:/a\\  bob: {key: \"$bob_key\", role: submit}" "$LAB/farm.yaml"
grep -q '^  bob: ' "$LAB/farm.yaml" || lab_fail "could not enrol bob in farm.yaml"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent amd64-1 linux/amd64
lab_wait_nodes 1 30 amd64-1
alice_key=$LAB/keys/lab.key   # the client "lab" is alice
coord_pub=$FARM_COORDINATOR_KEY

# alice's home: a private key and registry logins a repository must not reach
home=$LAB/alicehome
mkdir -p "$home/.ssh" "$home/docker"
ssh_secret="ssh-$(rnd)" token="tok-$(rnd)" pw_target="pwT-$(rnd)" pw_evil="pwE-$(rnd)"
printf '%s\n' "$ssh_secret" >"$home/.ssh/id_ed25519"
chmod 600 "$home/.ssh/id_ed25519"
printf '{"auths": {"%s": {"auth": "%s"}, "evil.example:5000": {"auth": "%s"}}}\n' "$REGISTRY" \
    "$(printf 'alice:%s' "$pw_target" | base64 -w0)" \
    "$(printf 'alice:%s' "$pw_evil" | base64 -w0)" >"$home/docker/config.json"
export DOCKER_CONFIG=$home/docker SOME_TOKEN=$token
printf 'outside the repository\n' >"$LAB/x"

# every refusal: exit 1 (or 2, farmctl's usage error), stderr holding each needle
expect_refused() {
    local what=$1 err=$2 rc=$3
    shift 3
    ((rc == 1 || rc == 2)) || { cat "$err" >&2; lab_fail "$what: exit $rc, not 1 or 2"; }
    local n
    for n in "$@"; do
        grep -qF -- "$n" "$err" || { cat "$err" >&2; lab_fail "$what: no \"$n\" in the message"; }
    done
    lab_log "ok: $what"
}
not_pushed() {
    if skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/$1" >/dev/null 2>&1; then
        lab_fail "$REGISTRY/$1 was pushed"
    fi
}

# --- 0. a keyless endpoint is judged by its address, not its spelling
repo=$LAB/repo0
lab_example_context "$repo"
cat >"$repo/farm.yaml" <<YAML
build:
  tags: [$REGISTRY/trust/zero:1]
  platforms: [linux/amd64]
coordinator:
  clients: tcp://127.attacker.example:7701
YAML
rc=0
"$FARMCTL" validate "$repo/farm.yaml" 2>"$LAB/v0.err" || rc=$?
expect_refused "validate: tcp://127.attacker.example without keys" "$LAB/v0.err" "$rc" \
    "$repo/farm.yaml:5:12: coordinator.clients is \"tcp://127.attacker.example:7701\", which is not a loopback address" \
    "Write a literal loopback address"
rc=0
(cd "$repo" && env -u FARM_COORDINATOR -u FARM_COORDINATOR_KEY "$FARMCTL" submit --progress plain .) \
    >/dev/null 2>"$LAB/s0.err" || rc=$?
expect_refused "submit: tcp://127.attacker.example without keys" "$LAB/s0.err" "$rc" \
    "farm.yaml:5:12: coordinator.clients is \"tcp://127.attacker.example:7701\"" "fix farm.yaml first"
not_pushed trust/zero:1

# a host name that does resolve here is still not taken for loopback: no secret over it
port=$(lab_free_port)
cat >"$LAB/plain.py" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
while True:
    c, _ = s.accept()
    c.settimeout(10)
    with open(sys.argv[2], "ab") as f:
        try:
            while (b := c.recv(65536)):
                f.write(b)
        except OSError:
            pass
PY
lab_spawn plain "$LAB/plain.log" "$LAB_PYTHON" "$LAB/plain.py" "$port" "$LAB/plain.bin"
lab_wait_until 10 "the plain listener" lab_port_listening "$port"
printf '%s' "$token" >"$LAB/cli-secret"
rc=0
lab_example_context "$LAB/plainctx"   # no farm.yaml: the endpoint is the command line's
(cd "$LAB/plainctx" && env -u FARM_COORDINATOR_KEY HOME="$home" "$FARMCTL" submit \
    --coordinator "tcp://localhost:$port" --secret "id=s,src=$LAB/cli-secret" \
    -t "$REGISTRY/trust/plain:1" --platform linux/amd64 --progress plain .) \
    >/dev/null 2>"$LAB/s0b.err" || rc=$?
expect_refused "a secret over tcp://localhost without keys" "$LAB/s0b.err" "$rc" \
    "tcp://localhost:$port is a plain (unencrypted) connection off this machine, and build secrets are never sent over one"
sleep 1
! grep -qF "$token" "$LAB/plain.bin" 2>/dev/null || lab_fail "the secret reached the plain listener"

# --- 1. secrets from a checked-in farm.yaml stay inside the repository
repo=$LAB/repo1
lab_example_context "$repo"
inside="inside-$(rnd)"
mkdir -p "$repo/conf"
printf '%s' "$inside" >"$repo/conf/e.txt"
cat >>"$repo/Dockerfile" <<'DOCKER'
ARG E_SHA
RUN --mount=type=secret,id=e test "$(sha256sum < /run/secrets/e | cut -d' ' -f1)" = "$E_SHA" \
 && echo "INSIDE-SECRET-READ"
DOCKER
write_yaml() {
    cat >"$repo/farm.yaml" <<YAML
build:
  tags: [$REGISTRY/trust/secrets:1]
  platforms: [linux/amd64]
  args: {E_SHA: "$(printf '%s' "$inside" | sha256sum | cut -d' ' -f1)"}
  secrets: [$1]
YAML
}
write_yaml "\"id=a,src=$home/.ssh/id_ed25519\", \"id=b,src=../x\", \"id=c,env=SOME_TOKEN\""
rc=0
"$FARMCTL" validate "$repo/farm.yaml" 2>"$LAB/v1.err" || rc=$?
expect_refused "validate: secrets outside the repository" "$LAB/v1.err" "$rc" \
    "$repo/farm.yaml:5:13: build.secrets: \"id=a,src=$home/.ssh/id_ed25519\" names a file outside the repository" \
    "$repo/farm.yaml:5:" "\"id=b,src=../x\" names a file outside the repository" \
    "\"id=c,env=SOME_TOKEN\" reads an environment variable" \
    "pass --secret id=c,env=SOME_TOKEN to farmctl submit instead" "3 problem(s)"
rc=0
(cd "$repo" && "$FARMCTL" submit --progress plain .) >/dev/null 2>"$LAB/s1.err" || rc=$?
expect_refused "submit: secrets outside the repository" "$LAB/s1.err" "$rc" \
    "names a file outside the repository" "reads an environment variable"
# a path inside the repository that is a symlink out of it (a file, a directory)
ln -s "$home/.ssh/id_ed25519" "$repo/conf/key"
ln -s "$home/.ssh" "$repo/conf/sshdir"
for src in conf/key conf/sshdir/id_ed25519; do
    write_yaml "\"id=e,src=$src\""
    "$FARMCTL" validate -q "$repo/farm.yaml" || lab_fail "validate refused src=$src (a path inside)"
    rc=0
    (cd "$repo" && "$FARMCTL" submit --progress plain .) >/dev/null 2>"$LAB/s1l.err" || rc=$?
    expect_refused "submit: src=$src, a symlink out of the repository" "$LAB/s1l.err" "$rc" \
        "secret e: src=$src resolves to $home/.ssh/id_ed25519, outside the repository ($repo)" \
        "pass --secret id=e,src=FILE to farmctl submit instead"
done
grep -qF "$ssh_secret" "$LAB/coordinator.log" "$LAB/agent-amd64-1.log" \
    && lab_fail "alice's ssh key reached the farm's logs"
not_pushed trust/secrets:1
# a file inside the repository is a fine build secret
rm "$repo/conf/key" "$repo/conf/sshdir"
write_yaml "\"id=e,src=conf/e.txt\""
rc=0
(cd "$repo" && "$FARMCTL" submit --progress plain .) >"$LAB/s1ok.out" 2>"$LAB/s1ok.err" || rc=$?
((rc == 0)) || { cat "$LAB/s1ok.err" >&2; lab_fail "the build with a secret inside the repository failed"; }
grep -q "INSIDE-SECRET-READ" "$LAB/s1ok.err" || lab_fail "RUN did not read the secret inside the repository"
digest=$(sed -n 's/^#context [^ ]* packed: \(sha256:[0-9a-f]*\) (\([0-9]*\) bytes)$/\1/p' "$LAB/s1ok.err" | head -n1)
size=$(sed -n 's/^#context [^ ]* packed: sha256:[0-9a-f]* (\([0-9]*\) bytes)$/\1/p' "$LAB/s1ok.err" | head -n1)
[[ $digest == sha256:* && -n $size ]] || { cat "$LAB/s1ok.err" >&2; lab_fail "no context digest in farmctl's output"; }
lab_log "ok: a secret inside the repository reached RUN; alice's context is $digest"

# --- 2. the coordinator that gets alice's logins is hers, not the repository's
evil_port=$(lab_free_port)
evil_key=$(lab_keygen evil)
lab_spawn evil "$LAB/evil.log" "$LAB_PYTHON" "$FARM_SOURCE_DIR/tests/integration/trust_peer.py" \
    serve "tcp://127.0.0.1:$evil_port" "$LAB/keys/evil.key" "$LAB/evil.bin"
lab_wait_until 10 "the other coordinator" lab_port_listening "$evil_port"
: >"$LAB/evil.bin"
repo=$LAB/repo2
lab_example_context "$repo"
cat >"$repo/farm.yaml" <<YAML
coordinator:
  clients: tcp://127.0.0.1:$evil_port
  public_key: "$evil_key"
registries:
  "evil.example:5000": {insecure: true}
build:
  tags: [$REGISTRY/trust/logins:1]
  platforms: [linux/amd64]
YAML
"$FARMCTL" validate -q "$repo/farm.yaml" || lab_fail "validate refused the other coordinator's file"
rc=0
(cd "$repo" && env -u FARM_COORDINATOR HOME="$home" "$FARMCTL" submit --progress plain .) \
    >/dev/null 2>"$LAB/s2a.err" || rc=$?
expect_refused "submit: farm.yaml names a different coordinator" "$LAB/s2a.err" "$rc" \
    "farm.yaml:3:15: coordinator.public_key names a different coordinator than yours (\$FARM_COORDINATOR_KEY)" \
    "--trust-repo-coordinator"
rc=0
(cd "$repo" && env -u FARM_COORDINATOR -u FARM_COORDINATOR_KEY HOME="$home" "$FARMCTL" submit \
    --progress plain .) >/dev/null 2>"$LAB/s2b.err" || rc=$?
expect_refused "submit: farm.yaml's coordinator key without one of alice's" "$LAB/s2b.err" "$rc" \
    "farm.yaml:3:15: coordinator.public_key chooses the coordinator farmctl trusts (it receives your registry logins" \
    "set FARM_COORDINATOR_KEY"
# her key kept as ~/.config/farm/coordinator.pub counts as hers too
mkdir -p "$home/.config/farm"
cp "$coord_pub" "$home/.config/farm/coordinator.pub"
rc=0
(cd "$repo" && env -u FARM_COORDINATOR -u FARM_COORDINATOR_KEY HOME="$home" "$FARMCTL" submit \
    --progress plain .) >/dev/null 2>"$LAB/s2d.err" || rc=$?
expect_refused "submit: farm.yaml names a coordinator other than ~/.config/farm's" "$LAB/s2d.err" "$rc" \
    "farm.yaml:3:15: coordinator.public_key names a different coordinator than yours ($home/.config/farm/coordinator.pub)"
# nodes, builds and drain decide the key by the same rule
for cmd in nodes builds "drain amd64-1"; do
    rc=0
    # shellcheck disable=SC2086 # cmd is the command and its argument
    (cd "$repo" && env -u FARM_COORDINATOR -u FARM_COORDINATOR_KEY HOME="$home" "$FARMCTL" $cmd) \
        >/dev/null 2>"$LAB/s2n.err" || rc=$?
    expect_refused "farmctl $cmd: farm.yaml names a coordinator other than ~/.config/farm's" \
        "$LAB/s2n.err" "$rc" \
        "farmctl ${cmd%% *}: farm.yaml:3:15: coordinator.public_key names a different coordinator than yours ($home/.config/farm/coordinator.pub)" \
        "--trust-repo-coordinator"
done
sleep 1
[[ ! -s $LAB/evil.bin ]] || lab_fail "the repository's coordinator received a message: $(od -c "$LAB/evil.bin" | head)"
not_pushed trust/logins:1
# the probe sees a leak when there is one: trusting the file sends the Submit there
rc=0
(cd "$repo" && env -u FARM_COORDINATOR -u FARM_COORDINATOR_KEY HOME="$home" "$FARMCTL" submit \
    --trust-repo-coordinator --progress plain .) >/dev/null 2>"$LAB/s2c.err" || rc=$?
grep -q "this coordinator got your Submit" "$LAB/s2c.err" \
    || { cat "$LAB/s2c.err" >&2; lab_fail "--trust-repo-coordinator did not reach the file's coordinator"; }
grep -qF "$pw_target" "$LAB/evil.bin" && grep -qF "$pw_evil" "$LAB/evil.bin" \
    || lab_fail "the probe did not see the logins a trusted coordinator receives"
lab_log "ok: only --trust-repo-coordinator sends alice's logins to the repository's coordinator"
# trusted, nodes asks the file's coordinator (the probe hears the request)
: >"$LAB/evil.bin"
(cd "$repo" && env -u FARM_COORDINATOR -u FARM_COORDINATOR_KEY HOME="$home" "$FARMCTL" nodes \
    --trust-repo-coordinator) >/dev/null 2>"$LAB/s2t.err" || true
[[ -s $LAB/evil.bin ]] || { cat "$LAB/s2t.err" >&2; lab_fail "farmctl nodes --trust-repo-coordinator did not reach the file's coordinator"; }
# a checked-in farm.yaml naming alice's own coordinator key serves every command
repo=$LAB/repo2b
mkdir -p "$repo"
cat >"$repo/farm.yaml" <<YAML
coordinator:
  clients: $FARM_COORDINATOR
  public_key: "$(sed -n 's/^public-key = //p' "$coord_pub")"
YAML
for cmd in nodes builds; do
    (cd "$repo" && env -u FARM_COORDINATOR -u FARM_COORDINATOR_KEY HOME="$home" "$FARMCTL" $cmd) \
        >"$LAB/s2own.out" 2>"$LAB/s2own.err" || { cat "$LAB/s2own.err" >&2; lab_fail "farmctl $cmd with a farm.yaml naming alice's own key failed"; }
done
(cd "$repo" && env -u FARM_COORDINATOR -u FARM_COORDINATOR_KEY HOME="$home" "$FARMCTL" nodes) \
    | grep -q '^amd64-1 ' || lab_fail "farmctl nodes with alice's own key in farm.yaml does not list amd64-1"
lab_log "ok: nodes, builds and drain take the repository's coordinator key only when it is alice's or trusted"

# --- 3. a digest is not a capability: bob cannot build alice's context
out=$(peer submit "$FARM_COORDINATOR" "$LAB/keys/bob.key" "$coord_pub" "$digest" "$REGISTRY/trust/bob:1")
[[ $out == "refused the coordinator does not hold this context; upload it first" ]] \
    || lab_fail "bob's submit of alice's digest: $out"
not_pushed trust/bob:1
out=$(peer submit "$FARM_COORDINATOR" "$alice_key" "$coord_pub" "$digest" "$REGISTRY/trust/alice:2" 300)
[[ $out == "accepted "*$'\n'done ]] || lab_fail "alice's own submit of her digest: $out"
lab_log "ok: bob is refused alice's context, alice is served it"

# --- 4. no oracle, no refresh
obj=$LAB/state/contexts/${digest#sha256:}.tar
[[ -f $obj ]] || lab_fail "alice's context is not at $obj"
touch -d "2 hours ago" "$obj"
before=$(stat -c %Y "$obj")
out=$(peer offer "$FARM_COORDINATOR" "$LAB/keys/bob.key" "$coord_pub" "$digest" "$size")
[[ $out == "have=0 offset=0 error=" ]] || lab_fail "bob's offer of alice's digest: $out"
[[ $(stat -c %Y "$obj") == "$before" ]] || lab_fail "bob's offer refreshed alice's context"
out=$(peer offer "$FARM_COORDINATOR" "$alice_key" "$coord_pub" "$digest" "$size")
[[ $out == "have=1 offset=$size error=" ]] || lab_fail "alice's offer of her digest: $out"
(($(stat -c %Y "$obj") > before)) || lab_fail "alice's offer did not refresh her context"
lab_stop coordinator
lab_start_coordinator "$LAB/farm.yaml"
out=$(peer offer "$FARM_COORDINATOR" "$alice_key" "$coord_pub" "$digest" "$size")
[[ $out == "have=1 offset=$size error=" ]] || lab_fail "after a restart, alice's offer: $out"
out=$(peer offer "$FARM_COORDINATOR" "$LAB/keys/bob.key" "$coord_pub" "$digest" "$size")
[[ $out == "have=0 offset=0 error=" ]] || lab_fail "after a restart, bob's offer: $out"
lab_log "ok: who uploaded what outlives a restart; bob learns nothing"
lab_alive coordinator || lab_fail "the coordinator died"
lab_log "PASS"
