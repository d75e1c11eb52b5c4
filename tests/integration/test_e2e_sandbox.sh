#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# RUN steps are sandboxed by default: a hostile Dockerfile, built by an agent with its
# default isolation (the lab runs it as the unprivileged farm user), tries from a RUN step
#   - a chroot escape (chroot into a subdirectory, walk up, chroot again) to read a
#     root-only file of the host and to create a file on the host,
#   - a kill of a host process,
#   - connections to the registry and the coordinator on the host's 127.0.0.1 (directly
#     and through slirp4netns's gateway 10.0.2.2),
#   - a read of the agent's key and work dir,
#   - a listing of the host's processes,
#   - being root on the host (its uid map),
# and every one fails, while outbound access works: an HTTP GET from the RUN step reaches
# a server in a network namespace this test makes (10.x address on a veth pair; no
# traffic leaves the machine). The same build runs on the emulated linux/arm64 node with
# busybox (kill, loopback, agent files, process list). Then `network: none` on a node
# (--network none) leaves a RUN step without the outbound server, and an agent started
# with --isolation chroot says loudly that its RUN steps are not sandboxed.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
[[ $(id -u) == 0 ]] || { echo "test_e2e_sandbox: needs root (network namespaces, the farm user)"; exit 77; }
command -v gcc >/dev/null || lab_fail "gcc is not installed"

# --- a server outside the agent's reach but on an address it can route to ---------------
ns=farm-out-$$
# a /30 of 10.231.0.0/16 chosen by our pid, not one already on this host: the same test
# in another lab on this machine must not route our requests to its server
for ((i = 0; i < 100; i++)); do
    n=$((($$ + i * 997) % 16384))
    out_host=10.231.$((n / 64)).$((n % 64 * 4 + 1)) out_addr=10.231.$((n / 64)).$((n % 64 * 4 + 2))
    ip -o -4 addr show | grep -qF " $out_host/" || break
done
out_port=8080
ip netns add "$ns" || lab_fail "ip netns add $ns"
lab_on_exit "ip netns del $ns 2>/dev/null; ip link del fo$$ 2>/dev/null"
ip link add "fo$$" type veth peer name "fi$$"
ip link set "fi$$" netns "$ns"
ip addr add "$out_host/30" dev "fo$$"
ip link set "fo$$" up
ip netns exec "$ns" ip addr add "$out_addr/30" dev "fi$$"
ip netns exec "$ns" ip link set "fi$$" up
ip netns exec "$ns" ip link set lo up
mkdir -p "$LAB/www"
echo "outbound-from-sandbox-$$" >"$LAB/www/outbound.txt"
lab_spawn outside "$LAB/outside.log" ip netns exec "$ns" "$LAB_PYTHON" -m http.server \
    --bind "$out_addr" --directory "$LAB/www" "$out_port"
deadline=$((SECONDS + 30)) # python's start-up on a loaded machine
while ((SECONDS < deadline)); do
    curl -fsS "http://$out_addr:$out_port/outbound.txt" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://$out_addr:$out_port/outbound.txt" | grep -q "outbound-from-sandbox-$$" \
    || lab_fail "the outside server in $ns does not answer from the host"

# --- the farm: amd64 native, arm64 emulated, both sandboxed ------------------------------
lab_registry_start
lab_binfmt_register
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=sbx-amd64" "linux/arm64=sbx-arm64"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent sbx-amd64 linux/amd64
lab_start_agent sbx-arm64 linux/arm64
lab_wait_nodes 2 30 sbx-amd64 sbx-arm64

# the host's targets
echo "host-secret-$$" >"$LAB/host-secret"
chmod 0600 "$LAB/host-secret"
lab_spawn victim "$LAB/victim.log" sleep 600
victim=$LAB_LAST_PID
reg_port=${REGISTRY##*:}
agents_port=${LAB_AGENTS_ENDPOINT##*:}
clients_port=${FARM_COORDINATOR##*:}
agent_files=$LAB/keys/sbx-amd64.key,$LAB/agents/sbx-amd64/work,$LAB/agents/sbx-amd64
arm_files=$LAB/keys/sbx-arm64.key,$LAB/agents/sbx-arm64/work

# --- the hostile context --------------------------------------------------------------------
ctx=$LAB/ctx
mkdir -p "$ctx"
gcc -static -O1 -o "$ctx/attack" "$FARM_SOURCE_DIR/tests/integration/sandbox_attack.c" \
    || lab_fail "cannot build the static attack program (libc6-dev's static libc?)"
cp "$FARM_BUSYBOX_DIR/arm64/busybox" "$ctx/busybox-arm64"
cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
ARG TARGETARCH
ARG HOST_PID HOST_PORTS AGENT_FILES ARM_FILES HOST_SECRET ESCAPE_TO OUT_ADDR OUT_PORT
# a fresh value per submit: the RUN step runs every time (not from the layer cache)
ARG RUN_ID
COPY attack busybox-arm64 /
# amd64: the full attack program; arm64 (emulated): the same ideas with busybox
RUN ["/busybox-arm64", "sh", "-c", "if [ \"$TARGETARCH\" = amd64 ]; then exec /attack; fi; \
  B=/busybox-arm64; \
  $B kill -9 $HOST_PID 2>/dev/null && echo \"ATTACK arm-kill: SUCCEEDED\" || echo \"ATTACK arm-kill: blocked\"; \
  for p in $(echo $HOST_PORTS | $B tr , ' '); do \
    $B nc -w 3 127.0.0.1 $p </dev/null && echo \"ATTACK arm-loopback-$p: SUCCEEDED\" || echo \"ATTACK arm-loopback-$p: blocked\"; \
    $B nc -w 3 10.0.2.2 $p </dev/null && echo \"ATTACK arm-gateway-$p: SUCCEEDED\" || echo \"ATTACK arm-gateway-$p: blocked\"; \
  done; \
  for f in $(echo $ARM_FILES | $B tr , ' '); do \
    $B ls $f >/dev/null 2>&1 && echo \"ATTACK arm-agent-file: SUCCEEDED $f\" || echo \"ATTACK arm-agent-file: blocked $f\"; \
  done; \
  n=$($B ls /proc | $B grep -c '^[0-9]'); \
  [ $n -gt 8 ] && echo \"ATTACK arm-proc-list: SUCCEEDED $n\" || echo \"ATTACK arm-proc-list: blocked $n processes\"; \
  echo \"OUTBOUND: $(printf 'GET /outbound.txt HTTP/1.0\\r\\n\\r\\n' | $B nc -w 5 $OUT_ADDR $OUT_PORT 2>&1 | $B tail -n 1)\""]
EOF
# the arm64 busybox runs the shell on both platforms (qemu on the amd64 node too), so the
# amd64 branch exec's the static attack program

submit() { # TAG PLATFORMS OUTFILE [extra farmctl args]
    local tag=$1 plats=$2 out=$3
    shift 3
    lab_farmctl submit -t "$REGISTRY/team/sandbox:$tag" --platform "$plats" --progress plain \
        --build-arg "HOST_PID=$victim" --build-arg "HOST_PORTS=$reg_port,$agents_port,$clients_port" \
        --build-arg "AGENT_FILES=$agent_files" --build-arg "ARM_FILES=$arm_files" \
        --build-arg "HOST_SECRET=$LAB/host-secret" --build-arg "ESCAPE_TO=$LAB/escaped-by-build" \
        --build-arg "OUT_ADDR=$out_addr" --build-arg "OUT_PORT=$out_port" \
        --build-arg "RUN_ID=$tag" "$@" \
        "$ctx" >"$out.out" 2>"$out"
}

submit a1 linux/amd64,linux/arm64 "$LAB/attack.log" \
    || { cat "$LAB/attack.log" >&2; lab_fail "the attack build failed"; }
log=$LAB/attack.log
grep 'ATTACK\|OUTBOUND' "$log" >&2 || true

# every attack ran and was blocked
for a in host-root kill-host-process read-agent-file list-host-processes chroot-escape \
    "connect-host-loopback-127.0.0.1-$reg_port" "connect-host-loopback-10.0.2.2-$reg_port" \
    "connect-host-loopback-127.0.0.1-$agents_port" "connect-host-loopback-10.0.2.2-$clients_port" \
    arm-kill "arm-loopback-$reg_port" "arm-gateway-$agents_port" arm-agent-file arm-proc-list; do
    grep -q "ATTACK $a: " "$log" || lab_fail "the attack $a did not run (no line in the build log)"
done
# (the STEP line quotes the command; what the RUN step printed is the whole log line)
attack_ok='^\[[^]]*\] ATTACK [^ ]+: SUCCEEDED'
if grep -E "$attack_ok" "$log" >&2; then
    lab_fail "an attack from a RUN step succeeded (above)"
fi
n=$(grep -Ec '^\[[^]]*\] ATTACK [^ ]+: blocked' "$log")
lab_log "$n attacks from RUN steps, all blocked"
# and the host says the same
__lab_alive "$victim" || lab_fail "the host process $victim was killed from a RUN step"
[[ ! -e $LAB/escaped-by-build ]] || lab_fail "a RUN step created $LAB/escaped-by-build on the host"
grep -q "host-secret-$$" "$log" && lab_fail "the host's secret file appears in the build log"
grep -q "ATTACK host-root: blocked uid_map *0 *$(id -u "$LAB_AGENT_USER") *1" "$log" \
    || lab_fail "RUN steps' root is not the agent's user ($LAB_AGENT_USER) in a user namespace"

# outbound works on both platforms, against the server in the test's namespace
c=$(grep -Ec "^\[[^]]*\] OUTBOUND: (ok )?outbound-from-sandbox-$$" "$log" || true)
((c == 2)) || lab_fail "outbound access from the sandbox did not reach $out_addr on both platforms ($c of 2)"
lab_log "outbound HTTP from RUN steps reached $out_addr:$out_port on both platforms"

# --- network none, per build (farmctl --network none) and per node (--network none) ----------
submit b1 linux/amd64 "$LAB/build-none.log" --network none \
    || { cat "$LAB/build-none.log" >&2; lab_fail "the --network none build failed"; }
grep -q "^\[linux/amd64 sbx-amd64\] OUTBOUND: failed" "$LAB/build-none.log" \
    || { grep OUTBOUND "$LAB/build-none.log" >&2; lab_fail "a --network none build's RUN step reached the outside"; }
if lab_farmctl submit -t "$REGISTRY/team/sandbox:host" --platform linux/amd64 --network host \
    "$ctx" >/dev/null 2>"$LAB/host.err"; then
    lab_fail "farmctl submit --network host was accepted"
fi
grep -q "is not offered.*never the agent's host network" "$LAB/host.err" || { cat "$LAB/host.err" >&2; lab_fail "--network host: no clear refusal"; }
lab_log "--network none per build: no outbound access; --network host refused"

lab_stop agent-sbx-amd64
lab_start_agent sbx-amd64 linux/amd64 --network none
lab_wait_nodes 1 30 sbx-amd64
submit a2 linux/amd64 "$LAB/none.log" || { cat "$LAB/none.log" >&2; lab_fail "the build on a --network none node failed"; }
grep -q "^\[linux/amd64 sbx-amd64\] OUTBOUND: failed" "$LAB/none.log" \
    || { grep OUTBOUND "$LAB/none.log" >&2; lab_fail "a --network none node's RUN step reached the outside"; }
grep -E "$attack_ok" "$LAB/none.log" >&2 && lab_fail "an attack succeeded on the --network none node"
lab_log "--network none: no outbound access, attacks blocked"

# --- chroot is opt-in and loud -----------------------------------------------------------------
lab_stop agent-sbx-amd64
LAB_ISOLATION=chroot lab_start_agent sbx-amd64 linux/amd64
lab_wait_nodes 1 30 sbx-amd64
# (the node may still count as ready from its last run: wait for the new run's log)
deadline=$((SECONDS + 30))
while ((SECONDS < deadline)); do
    grep -q "WARN.*--isolation chroot" "$LAB/agent-sbx-amd64.log" && break
    sleep 0.1
done
grep -q "WARN.*--isolation chroot" "$LAB/agent-sbx-amd64.log" \
    || lab_fail "an agent with --isolation chroot does not warn at start-up"
lab_example_context "$LAB/plain"
lab_farmctl submit -t "$REGISTRY/team/sandbox:chroot" --platform linux/amd64 --progress plain \
    "$LAB/plain" >/dev/null 2>"$LAB/chroot.log" || { cat "$LAB/chroot.log" >&2; lab_fail "chroot build failed"; }
grep -q "NOT sandboxed" "$LAB/chroot.log" || lab_fail "the build log does not say the RUN steps were not sandboxed"
lab_log "PASS: RUN steps are sandboxed; chroot is opt-in and says so"
