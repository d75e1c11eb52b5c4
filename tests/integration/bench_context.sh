#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark: a large build context through farm (pack -> upload to the coordinator ->
# agent fetch -> extract -> build -> push). Prints the time of each phase as farmctl
# reports it, then a second submit of the same context (sent once: no upload).
# Not a ctest test. usage: tests/integration/bench_context.sh [SIZE_MIB]  (default 256)
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
mib=${1:-256}
lab_init
export LAB_SKIP_BINFMT=1
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=amd64-1"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent amd64-1 linux/amd64
lab_wait_nodes 1 30 amd64-1
mkdir -p "$LAB/ctx"
head -c "$((mib << 20))" /dev/urandom >"$LAB/ctx/big.bin"
echo hello >"$LAB/ctx/small.txt"
printf 'FROM scratch\nCOPY small.txt /small.txt\n' >"$LAB/ctx/Dockerfile"

stamp() { while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done; }
run() {
    local t0
    t0=$(date +%s.%N)
    lab_farmctl submit -t "$REGISTRY/bench/ctx:$1" --platform linux/amd64 --progress plain "$LAB/ctx" \
        2>&1 >/dev/null | stamp >"$LAB/$1.log"
    awk -v t0="$t0" -v run="$1" '
        / #context .* packed/        { printf "bench: %-8s packed            %7.2fs\n", run, $1 - t0 }
        / #context .* uploaded$/     { printf "bench: %-8s uploaded          %7.2fs\n", run, $1 - t0 }
        /not sent again/            { printf "bench: %-8s already there     %7.2fs\n", run, $1 - t0 }
        / farm: extracting context$/ { printf "bench: %-8s agent has context %7.2fs\n", run, $1 - t0 }
        / farm: building /           { printf "bench: %-8s extracted         %7.2fs\n", run, $1 - t0 }
        / #index pushed/             { printf "bench: %-8s index pushed      %7.2fs\n", run, $1 - t0 }
    ' "$LAB/$1.log"
}
echo "bench: context of $mib MiB (random, incompressible)"
run first
run second
