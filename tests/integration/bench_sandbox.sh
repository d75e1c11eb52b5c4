#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What the sandbox costs: the lab's example (three platforms, two of them emulated) built
# through one farm with the agents in the sandbox (--isolation oci, as the farm user) and
# with --isolation chroot (as root, the old way), alternating, same machine, same run.
# Prints every submit's wall time and the median of each. Not a ctest test (not named
# test_*): run it by hand.
#
# usage: tests/integration/bench_sandbox.sh [--runs N]   (default 5 per mode)
# Environment: FARM_BUILD_DIR / FARM_SOURCE_DIR as for the integration tests.
# shellcheck source-path=SCRIPTDIR/../lab source=lib.sh
set -euo pipefail
source "$(dirname "$0")/../lab/lib.sh"
runs=5
while (($#)); do
    case $1 in
        --runs) runs=${2:?--runs N}; shift ;;
        *) echo "usage: $0 [--runs N]" >&2; exit 2 ;;
    esac
    shift
done
lab_init
export LAB_AGENT_VERBOSE=""
lab_registry_start
lab_binfmt_register
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=amd64-1" "linux/arm64=arm64-1" "linux/arm/v7=armv7-1"
lab_start_coordinator "$LAB/farm.yaml"
lab_example_context "$LAB/ctx"

agents() { # MODE: (re)start the three agents with that isolation
    local a
    for a in amd64-1 arm64-1 armv7-1; do
        lab_alive "agent-$a" 2>/dev/null && lab_stop "agent-$a"
    done
    # a fresh builder storage per mode: rootless and root storage do not mix
    rm -rf "$LAB/agents"
    LAB_ISOLATION=$1 lab_start_agent amd64-1 linux/amd64
    LAB_ISOLATION=$1 lab_start_agent arm64-1 linux/arm64
    LAB_ISOLATION=$1 lab_start_agent armv7-1 linux/arm/v7
    lab_wait_nodes 3 30 amd64-1 arm64-1 armv7-1
}

declare -A times=()
n=0
for ((r = 0; r <= runs; r++)); do
    for mode in oci chroot; do
        agents "$mode"
        n=$((n + 1))
        t0=$(date +%s.%N)
        lab_farmctl submit --farm "$LAB/farm.yaml" -t "$REGISTRY/bench/sandbox:$n" --progress quiet "$LAB/ctx" \
            >/dev/null 2>"$LAB/submit-$n.err" || { cat "$LAB/submit-$n.err" >&2; lab_fail "submit $n ($mode) failed"; }
        t=$(echo "$(date +%s.%N) - $t0" | bc)
        if ((r == 0)); then
            printf 'warm-up %-6s %.2f s (not counted)\n' "$mode" "$t"
        else
            printf 'run %d  %-6s %.2f s\n' "$r" "$mode" "$t"
            times[$mode]+="$t "
        fi
    done
done
m_oci=$(lab_median <<<"${times[oci]}")
m_chroot=$(lab_median <<<"${times[chroot]}")
printf 'median of %d: sandbox (oci) %.2f s, chroot %.2f s, cost %+.2f s (%.0f%%)\n' "$runs" \
    "$m_oci" "$m_chroot" "$(echo "$m_oci - $m_chroot" | bc)" "$(echo "($m_oci - $m_chroot) * 100 / $m_chroot" | bc -l)"
