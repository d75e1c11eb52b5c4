#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What provenance attestations cost a 3-platform submit: the stitch's time (farm.stitch_ms
# of --metadata-file: the last job's result to the index pushed) and the whole submit's,
# with --provenance=false, the default (min) and mode=max, interleaved round by round on
# one farm (registry, coordinator, the lab's three agents), the example context. Each
# round changes a build arg, so the images (and their statements) are new; the round's
# first submit builds, the next two take its layers, and which mode goes first rotates. Prints every
# run and the medians. Not a ctest test (not named test_*): run it by hand.
#
# usage: tests/integration/bench_provenance.sh [--runs N]   (default 7)
# Environment: FARM_BUILD_DIR / FARM_SOURCE_DIR as for the integration tests.
# shellcheck source-path=SCRIPTDIR/../lab source=lib.sh
set -euo pipefail
source "$(dirname "$0")/../lab/lib.sh"
runs=7
while (($#)); do
    case $1 in
        --runs) runs=${2:?--runs N}; shift ;;
        *) echo "usage: $0 [--runs N]" >&2; exit 2 ;;
    esac
    shift
done
lab_init
export LAB_AGENT_VERBOSE=""
lab_start_farm
ctx=$LAB/example
lab_example_context "$ctx"
declare -A stitch total
modes=(false min max)
for r in $(seq 1 "$runs"); do
    # the round's first submit builds anew, the others take its layers: rotate who is first
    for k in 0 1 2; do
        mode=${modes[$(((r + k) % 3))]}
        flag=--provenance=$mode
        [[ $mode == min ]] && flag=--provenance=mode=min
        [[ $mode == max ]] && flag=--provenance=mode=max
        t0=$(date +%s%N)
        lab_farmctl submit -t "$REGISTRY/bench/prov:$mode-$r" --platform linux/amd64,linux/arm64,linux/arm/v7 \
            --build-arg "VERSION=$r" "$flag" --progress quiet --metadata-file "$LAB/m.json" "$ctx" \
            >/dev/null 2>"$LAB/b.err" || { cat "$LAB/b.err" >&2; lab_fail "submit $mode round $r failed"; }
        t1=$(date +%s%N)
        s=$("$LAB_PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["farm.stitch_ms"])' "$LAB/m.json")
        stitch[$mode]+="$s "
        total[$mode]+="$(( (t1 - t0) / 1000000 )) "
        printf 'round %d %-5s stitch %5s ms  submit %6s ms\n' "$r" "$mode" "$s" "$(( (t1 - t0) / 1000000 ))"
    done
done
for mode in false min max; do
    printf '%-5s median stitch %s ms (%s), submit %s ms\n' "$mode" \
        "$(echo "${stitch[$mode]}" | lab_median)" "${stitch[$mode]% }" \
        "$(echo "${total[$mode]}" | lab_median)"
done
