#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The lab works from a checkout under a 0700 directory (root's home, any Debian 12 home,
# where people clone): its sandboxed agent, run as $LAB_AGENT_USER, becomes ready within
# the usual time although that user can neither run the build dir's farm-agent nor enter
# the test's working directory; `farm-agent check` as that user works too.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
[[ $(id -u) == 0 ]] || lab_fail "needs root: the lab runs its sandboxed agents as $LAB_AGENT_USER only when root"
lab_sandbox_user

# a "home" only root may enter, holding a build dir (the three binaries)
home=$LAB/home
mkdir -m 0700 "$home"
mkdir -p "$home/farm/build"
cp "$FARMCTL" "$FARM_COORDINATOR_BIN" "$FARM_AGENT_BIN" "$home/farm/build/"
chmod 0711 "$LAB"
! setpriv --reuid "$LAB_AGENT_USER" --regid "$LAB_AGENT_USER" --init-groups \
    test -x "$home/farm/build/farm-agent" 2>/dev/null \
    || lab_fail "$LAB_AGENT_USER can run $home/farm/build/farm-agent: the home is not closed"

# a second lab from that build dir, started in it as ctest would; the agent check runs as
# the agents' user, as test_e2e_agent_check does
(
    cd "$home/farm/build"
    export FARM_BUILD_DIR=$home/farm/build LAB= LAB_T0=$SECONDS
    unset REGISTRY
    __FARM_LAB_SH=
    # shellcheck source=../lab/lib.sh
    source "$FARM_SOURCE_DIR/tests/lab/lib.sh"
    lab_init
    [[ $FARM_AGENT_BIN != "$home"/* ]] || lab_fail "the lab runs the agent from the closed $home"
    lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=n1"
    lab_start_coordinator "$LAB/farm.yaml"
    lab_start_agent n1 linux/amd64
    lab_wait_nodes 1 30 n1
    pid=$(lab_pid agent-n1)
    [[ $(stat -c %U "/proc/$pid") == "$LAB_AGENT_USER" ]] \
        || lab_fail "agent n1 runs as $(stat -c %U "/proc/$pid"), not $LAB_AGENT_USER"
    rc=0
    setpriv --reuid "$LAB_AGENT_USER" --regid "$LAB_AGENT_USER" --init-groups \
        env -C "$LAB/agents/n1" HOME="$LAB/agents/n1/home" TMPDIR="$LAB/agents/n1/tmp" \
        "$FARM_AGENT_BIN" check --isolation chroot --work-dir "$LAB/agents/n1/work" \
        --builder-root "$LAB/agents/n1/buildah" >"$LAB/check.out" 2>&1 || rc=$?
    cat "$LAB/check.out" >&2
    grep -q '^ok    builder: buildah version' "$LAB/check.out" \
        || lab_fail "farm-agent check as $LAB_AGENT_USER did not run buildah (exit $rc)"
    lab_log "PASS (inner lab)"
) || lab_fail "the lab from a build dir under a 0700 directory failed (above)"
lab_log PASS
