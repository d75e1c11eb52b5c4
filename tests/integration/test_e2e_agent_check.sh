#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# farm-agent check on this host: as a uid with no subordinate range it FAILs naming
# usermod --add-subuids; a crun that is absent FAILs naming apt-get install crun, the
# installed one FAILs on a cgroup v1/hybrid host naming runc; an emulated
# platform with no binfmt entry FAILs naming its qemu entry; against a lab coordinator the
# clock check reports a skew under 2 s (without disturbing the node's own session), against
# a dead endpoint it FAILs within ~5 s naming it. The coordinator answers time requests
# only from enrolled node keys, ignores malformed ones and rate-limits a flood. A sandboxed
# agent that cannot work refuses to start and names `farm-agent check`.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
U=4242
getent passwd "$U" >/dev/null && lab_fail "uid $U exists on this host; the test needs a uid without an entry"
# a home and work dir the unprivileged uid can reach
chmod 755 "$LAB"
mkdir -p "$LAB/u$U/tmp"
chown -R "$U:$U" "$LAB/u$U"
as_u() { HOME=$LAB/u$U TMPDIR=$LAB/u$U/tmp setpriv --reuid "$U" --regid "$U" --clear-groups "$@"; }

# check OUT RC [ARGS...] as root; RC is the expected exit status
run_check() {
    local out=$1 want=$2 rc=0
    shift 2
    "$@" >"$LAB/$out" 2>&1 || rc=$?
    cat "$LAB/$out" >&2
    ((rc == want)) || lab_fail "$out: exit status $rc, expected $want"
}

# 1. a uid with no subordinate range
run_check u.out 1 as_u "$FARM_AGENT_BIN" check --work-dir "$LAB/u$U/work" \
    --builder-root "$LAB/u$U/buildah"
grep -q '^FAIL  subordinate uids: no range for uid 4242 in /etc/subuid' "$LAB/u.out" \
    || lab_fail "no FAIL for the missing subuid range"
grep -q '^      fix: .*usermod --add-subuids [0-9]*-[0-9]* --add-subgids' "$LAB/u.out" \
    || lab_fail "the fix does not name usermod --add-subuids"
grep -q '^ok    disk (work dir): ' "$LAB/u.out" || lab_fail "the work dir was not checked"
grep -q '^ok    builder: buildah version' "$LAB/u.out" || lab_fail "buildah --version failed as uid $U"
# usage errors are status 2
run_check usage.out 2 "$FARM_AGENT_BIN" check --isolation sandbox

# 2. the runtime, judged on what this host has (never assumed): a crun that is not there
# FAILs naming its package; the crun this host has FAILs on cgroup v1/hybrid naming runc
# and is ok on cgroup v2
run_check nocrun.out 1 "$FARM_AGENT_BIN" check --runtime "$LAB/none/crun" --work-dir "$LAB/w" \
    --builder-root "$LAB/b"
grep -q "^FAIL  runtime: $LAB/none/crun not found" "$LAB/nocrun.out" || lab_fail "a missing crun was not refused"
grep -q '^      fix: apt-get install crun, or --runtime runc' "$LAB/nocrun.out" \
    || lab_fail "the fix for a missing crun does not name apt-get install crun"
case $(stat -f -c %T /sys/fs/cgroup) in
    cgroup2fs) mode="cgroup v2" ;;
    tmpfs) mode="cgroup v1"; [[ -d /sys/fs/cgroup/unified ]] && mode="cgroup v1 (hybrid)" ;;
    *) lab_fail "/sys/fs/cgroup is $(stat -f -c %T /sys/fs/cgroup): neither cgroup v1 nor v2" ;;
esac
rc=0
"$FARM_AGENT_BIN" check --runtime crun --work-dir "$LAB/w" --builder-root "$LAB/b" \
    >"$LAB/crun.out" 2>&1 || rc=$?
cat "$LAB/crun.out" >&2
if ! command -v crun >/dev/null; then
    ((rc == 1)) || lab_fail "crun.out: exit status $rc without crun, expected 1"
    grep -q '^FAIL  runtime: crun not found' "$LAB/crun.out" || lab_fail "the absent crun was not refused"
    grep -q '^      fix: apt-get install crun' "$LAB/crun.out" \
        || lab_fail "the fix for the absent crun does not name apt-get install crun"
    lab_fail "crun is not installed here, so its $mode check cannot be shown: apt-get install crun" \
        "(LAB_DEPS in tests/lab/lib.sh has it; tests/run.sh installs it)"
elif [[ $mode == "cgroup v2" ]]; then
    grep -q "^ok    runtime: crun version [0-9.]* (cgroup v2)" "$LAB/crun.out" \
        || lab_fail "crun was not found fine on this cgroup v2 host"
else
    ((rc == 1)) || lab_fail "crun.out: exit status $rc on a $mode host, expected 1"
    grep -qF "FAIL  runtime: crun version" "$LAB/crun.out" || lab_fail "crun was not refused"
    grep -qF "on a $mode host: crun refuses it" "$LAB/crun.out" \
        || lab_fail "the crun refusal does not name this host's $mode"
    grep -q 'fix: use --runtime runc' "$LAB/crun.out" || lab_fail "the crun fix does not name runc"
fi
lab_log "runtime: crun on this $mode host judged"

# 3. emulation: arm64 registered by the lab; a platform whose qemu entry is absent
lab_binfmt_register
missing=
for a in riscv64 s390x ppc64le mips64le; do
    [[ -e /proc/sys/fs/binfmt_misc/qemu-${a/mips64le/mips64el} ]] || { missing=$a; break; }
done
[[ -n $missing ]] || lab_fail "every candidate platform has a qemu entry here; cannot show a missing one"
run_check emu.out 1 "$FARM_AGENT_BIN" check --isolation chroot --work-dir "$LAB/w" \
    --builder-root "$LAB/b" --platform "linux/amd64,linux/arm64,linux/$missing"
grep -q '^ok    emulation linux/arm64: emulated by .* (flags .*F' "$LAB/emu.out" \
    || lab_fail "linux/arm64 was not found emulated with the F flag"
grep -q "^FAIL  emulation linux/$missing: .* has no qemu-" "$LAB/emu.out" \
    || lab_fail "linux/$missing was not reported missing"
grep -q "fix: .*\(qemu-user-static\|update-binfmts --enable qemu-\)" "$LAB/emu.out" \
    || lab_fail "the emulation fix names neither qemu-user-static nor update-binfmts"
grep -q '^WARN  isolation: --isolation chroot: RUN steps are NOT sandboxed' "$LAB/emu.out" \
    || lab_fail "chroot isolation was not warned about"

# 4. the clock, against a lab coordinator with keys and a live node n1
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=n1"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent n1 linux/amd64
lab_wait_nodes 1 30 n1
keys=(--key "$LAB/keys/n1.key" --coordinator-key "$LAB/keys/coordinator.pub")
# as the agent itself runs (the lab's sandboxed agents run as $LAB_AGENT_USER, whose key
# file this is)
as_agent=()
[[ $(id -u) == 0 ]] && as_agent=(setpriv --reuid "$LAB_AGENT_USER" --regid "$LAB_AGENT_USER"
    --init-groups env HOME="$LAB/agents/n1/home" TMPDIR="$LAB/agents/n1/tmp")
run_check clock.out 0 "${as_agent[@]}" "$FARM_AGENT_BIN" check --coordinator "$LAB_AGENTS_ENDPOINT" \
    --name n1 "${keys[@]}" --work-dir "$LAB/agents/n1/work" \
    --builder-root "$LAB/agents/n1/buildah" --storage-driver overlay
line=$(grep '^ok    clock: the coordinator at ' "$LAB/clock.out") || lab_fail "no ok clock line"
skew=$(sed -n 's/.* is \([0-9]*\) ms \(ahead\|behind\).*/\1/p' <<<"$line")
[[ -n $skew ]] && ((skew < 2000)) || lab_fail "clock skew '$skew' is not under 2 s: $line"
grep -q '^ok    keys: ' "$LAB/clock.out" || lab_fail "the keys were not reported"
# the node's own session was not disturbed
sleep 1
lab_wait_nodes 1 5 n1
! grep -q 'lost' "$LAB/coordinator.log" || lab_fail "the coordinator lost a node during the check"
! grep -qi 'reject' "$LAB/agent-n1.log" || lab_fail "the agent was rejected during the check"
# without keys the farm does not answer: a clear FAIL naming the endpoint and the keys
run_check nokey.out 1 "$FARM_AGENT_BIN" check --coordinator "$LAB_AGENTS_ENDPOINT" \
    --isolation chroot --work-dir "$LAB/w" --builder-root "$LAB/b"
grep -q "^FAIL  clock: no answer from $LAB_AGENTS_ENDPOINT within 5 s" "$LAB/nokey.out" \
    || lab_fail "no FAIL naming the endpoint without keys"
grep -q 'fix: .*--key/--coordinator-key' "$LAB/nokey.out" || lab_fail "the fix does not mention keys"
# a dead endpoint
dead=tcp://127.0.0.1:$(lab_free_port)
t0=$SECONDS
run_check dead.out 1 "${as_agent[@]}" "$FARM_AGENT_BIN" check --coordinator "$dead" \
    "${keys[@]}" --work-dir "$LAB/agents/n1/work" --builder-root "$LAB/agents/n1/buildah"
((SECONDS - t0 <= 9)) || lab_fail "the dead endpoint took $((SECONDS - t0)) s, not ~5"
grep -q "^FAIL  clock: no answer from $dead within 5 s" "$LAB/dead.out" \
    || lab_fail "no FAIL naming the dead endpoint"
# raw peers: nonce echoed, malformed ignored, flood limited, client keys not served
"$LAB_PYTHON" "$FARM_SOURCE_DIR/tests/integration/time_peer.py" "$LAB_AGENTS_ENDPOINT" \
    "$LAB/keys" n1 lab || lab_fail "time request peer checks failed"
grep -q 'time request from n1 ignored: time request without a nonce' "$LAB/coordinator.log" \
    || lab_fail "the malformed time request was not logged as ignored"
lab_alive coordinator || lab_fail "the coordinator died"

# 5. a sandboxed agent that cannot work (no subordinate range) refuses to start
rc=0
as_u timeout 30 "$FARM_AGENT_BIN" --coordinator "$LAB_AGENTS_ENDPOINT" --name n1 \
    --work-dir "$LAB/u$U/work" --builder-root "$LAB/u$U/buildah" >"$LAB/refuse.out" \
    2>"$LAB/refuse.err" || rc=$?
cat "$LAB/refuse.err" >&2
((rc == 78)) || lab_fail "the sandboxed agent without a subuid range exited $rc, not 78 (a refusal to start)"
grep -q 'the sandbox cannot work here: subordinate uids' "$LAB/refuse.err" \
    || lab_fail "the refusal does not say what is missing"
grep -q 'Run `farm-agent check`' "$LAB/refuse.err" || lab_fail "the refusal does not name farm-agent check"
grep -q -- '--isolation chroot' "$LAB/refuse.err" || lab_fail "the refusal does not name --isolation chroot"
lab_log PASS
