#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# deploy/systemd's units: `systemd-analyze verify` passes on both without a word (their
# ExecStart pointed at this build's binaries: verify checks the command exists), and
# fails on broken copies (so this test can fail); their exposure (systemd-analyze
# security --offline) stays below what they have today; the agent's unit keeps what its
# sandbox needs: no NoNewPrivileges, exactly CAP_SETUID, CAP_SETGID, CAP_DAC_OVERRIDE and
# CAP_SYS_ADMIN in the bounding set (the booted test, test_systemd_boot, shows they work), and
# none of the options that make systemd turn NoNewPrivileges on by itself for an
# unprivileged User= (newuidmap and newgidmap are setuid). Both units leave a daemon
# that refuses to start (exit status 78) stopped rather than restart it.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
command -v systemd-analyze >/dev/null \
    || lab_fail "systemd-analyze not found (apt-get install systemd; tests/run.sh installs it)"
units=$FARM_SOURCE_DIR/deploy/systemd
d=$LAB/units
mkdir -p "$d"
for u in farm-coordinator farm-agent; do
    [[ -f $units/$u.service ]] || lab_fail "$units/$u.service missing"
    grep -q "^ExecStart=/usr/bin/$u " "$units/$u.service" || lab_fail "$u.service does not run /usr/bin/$u"
    sed "s|^ExecStart=/usr/bin/$u |ExecStart=$FARM_BUILD_DIR/$u |" "$units/$u.service" >"$d/$u.service"
done

# verify: status 0 and nothing printed (it only warns, status 0, on unknown keys and bad values)
verify() {
    local out rc=0
    out=$(cd "$d" && systemd-analyze verify "$@" 2>&1) || rc=$?
    printf '%s' "$out" >"$LAB/verify.out"
    ((rc == 0)) && [[ -z $out ]]
}
verify farm-coordinator.service farm-agent.service \
    || lab_fail "systemd-analyze verify: $(cat "$LAB/verify.out")"
lab_log "systemd-analyze verify: both units clean"

# broken copies: a misspelt hardening key, a bad value, a missing binary
sed 's/^ProtectSystem=strict/ProtectSytem=strict/' "$d/farm-agent.service" >"$d/broken-key.service"
sed 's/^Restart=on-failure/Restart=sometimes/' "$d/farm-coordinator.service" >"$d/broken-value.service"
sed "s|^ExecStart=[^ ]*|ExecStart=$LAB/no-such-binary|" "$d/farm-agent.service" >"$d/broken-exec.service"
for b in broken-key broken-value broken-exec; do
    ! verify "$b.service" || lab_fail "systemd-analyze verify passed the broken copy $b.service"
    lab_log "verify refuses $b.service: $(head -c 160 "$LAB/verify.out" | tr '\n' ' ')"
done

# exposure (0 safest .. 10): the coordinator is locked down, the agent as far as its
# sandbox allows; --threshold is tenths
exposure() {
    systemd-analyze security --offline=yes --no-pager "$d/$1.service" 2>/dev/null \
        | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}
for spec in farm-coordinator:2.0 farm-agent:6.5; do
    u=${spec%%:*} max=${spec#*:}
    got=$(exposure "$u")
    [[ -n $got ]] || lab_fail "systemd-analyze security printed no exposure level for $u"
    (( $(echo "$got <= $max" | bc) )) || lab_fail "$u.service exposure $got > $max: a hardening line went"
    lab_log "$u.service exposure $got (at most $max)"
done

for u in farm-coordinator farm-agent; do
    grep -qx 'RestartPreventExitStatus=78' "$units/$u.service" \
        || lab_fail "$u.service restarts a daemon that refused to start (exit 78): it needs RestartPreventExitStatus=78"
    grep -qx 'Restart=on-failure' "$units/$u.service" || lab_fail "$u.service does not restart after a crash"
done

# the agent's sandbox: settings (comments aside) that must and must not be there
cfg=$(grep -Ev '^[[:space:]]*(#|$)' "$units/farm-agent.service")
grep -qx 'NoNewPrivileges=no' <<<"$cfg" || lab_fail "farm-agent.service must say NoNewPrivileges=no"
# exactly what Debian's setuid-root newuidmap/newgidmap need, nothing more
bnd=$(sed -n 's/^CapabilityBoundingSet=//p' <<<"$cfg" | tr ' ' '\n' | sort | tr '\n' ' ')
[[ $bnd == "CAP_DAC_OVERRIDE CAP_SETGID CAP_SETUID CAP_SYS_ADMIN " ]] \
    || lab_fail "farm-agent.service's bounding set is [$bnd], not CAP_SETUID CAP_SETGID CAP_DAC_OVERRIDE CAP_SYS_ADMIN (newuidmap, newgidmap: see the unit's comments)"
grep -qx 'AmbientCapabilities=' <<<"$cfg" || lab_fail "farm-agent.service must give the agent no ambient capabilities"
grep -qx 'User=farm' <<<"$cfg" || lab_fail "farm-agent.service does not run as farm"
for k in SystemCallFilter SystemCallArchitectures RestrictNamespaces RestrictAddressFamilies \
    RestrictRealtime RestrictSUIDSGID LockPersonality MemoryDenyWriteExecute PrivateDevices \
    ProtectKernelTunables ProtectKernelModules ProtectKernelLogs ProtectClock ProtectHostname \
    ProtectProc ProcSubset PrivateUsers DynamicUser; do
    ! grep -q "^$k=" <<<"$cfg" || lab_fail "farm-agent.service sets $k=, which breaks the sandbox (see its comments)"
done
# the coordinator execs itself (stitch): nothing may block that
ccfg=$(grep -Ev '^[[:space:]]*(#|$)' "$units/farm-coordinator.service")
grep -qx 'NoNewPrivileges=yes' <<<"$ccfg" || lab_fail "farm-coordinator.service lost NoNewPrivileges=yes"
grep -qx 'CapabilityBoundingSet=' <<<"$ccfg" || lab_fail "farm-coordinator.service has capabilities"
! grep -Eq '^(NoExecPaths|ExecPaths)=' <<<"$ccfg" || lab_fail "farm-coordinator.service restricts exec paths"
lab_log "PASS"
