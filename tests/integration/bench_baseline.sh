#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Baseline for farm's benchmark: "the usual way on one machine". Three `buildah build
# --platform` runs one after another (foreign ones under qemu), then `buildah manifest
# create/add/push` of one index to the lab registry. Prints wall times. Not a ctest test
# (not named test_*): run it by hand.
#
# usage: tests/integration/bench_baseline.sh [--farm] [--runs N]
#   --farm    afterwards, time the same build through farm (registry + coordinator + the
#             three lab agents, fresh storage) with farmctl submit
#   --runs N  repeat the baseline N times (fresh buildah storage each run), default 1
# Environment: FARM_BUILD_DIR / FARM_SOURCE_DIR as for the integration tests;
# BENCH_PLATFORMS (default "linux/amd64 linux/arm64 linux/arm/v7").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR/../lab source=lib.sh
source "$here/../lab/lib.sh"

with_farm=0
runs=1
while (($#)); do
    case $1 in
        --farm) with_farm=1 ;;
        --runs) runs=${2:?--runs N}; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "bench_baseline: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
read -r -a platforms <<<"${BENCH_PLATFORMS:-linux/amd64 linux/arm64 linux/arm/v7}"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
report() { printf 'bench: %-34s %8ss\n' "$1" "$2"; }

if ((with_farm)); then lab_init; else lab_init --no-binaries; fi
lab_registry_start
lab_binfmt_register
lab_example_context "$LAB/ctx"

for ((run = 1; run <= runs; run++)); do
    # Fresh storage per run, like a fresh CI machine: nothing cached between platforms'
    # runs except what buildah itself shares within one storage.
    root=$LAB/baseline-$run
    mkdir -p "$root"
    bah=(buildah --root "$root/storage" --runroot "$root/run" --storage-driver vfs)
    list=baseline-list-$run
    ref=$REGISTRY/example-baseline:run$run
    echo "bench: baseline run $run/${runs} (${platforms[*]}) -> $ref"
    t_all0=$(now)
    declare -A ids=()
    for p in "${platforms[@]}"; do
        t0=$(now)
        "${bah[@]}" build --isolation chroot --platform "$p" --build-arg VERSION=bench \
            -t "baseline-$run-${p//\//-}" "$LAB/ctx" >>"$LAB/baseline.log" 2>&1 \
            || lab_fail "buildah build --platform $p failed (see baseline.log)"
        t1=$(now)
        ids[$p]=baseline-$run-${p//\//-}
        report "build $p" "$(secs "$t0" "$t1")"
    done
    t_builds=$(now)
    t0=$(now)
    "${bah[@]}" manifest create "$list" >>"$LAB/baseline.log" 2>&1
    for p in "${platforms[@]}"; do
        "${bah[@]}" manifest add "$list" "containers-storage:localhost/${ids[$p]}:latest" \
            >>"$LAB/baseline.log" 2>&1 || lab_fail "buildah manifest add ${ids[$p]} failed"
    done
    t1=$(now)
    report "manifest create + ${#platforms[@]} x add" "$(secs "$t0" "$t1")"
    "${bah[@]}" manifest push --all --tls-verify=false "$list" "docker://$ref" \
        >>"$LAB/baseline.log" 2>&1 || lab_fail "buildah manifest push failed (see baseline.log)"
    t2=$(now)
    report "manifest push --all" "$(secs "$t1" "$t2")"
    report "builds (sequential)" "$(secs "$t_all0" "$t_builds")"
    report "TOTAL baseline (build+stitch+push)" "$(secs "$t_all0" "$t2")"
    n=$(lab_index "$ref" | "$LAB_PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["manifests"]))')
    [[ $n == "${#platforms[@]}" ]] || lab_fail "baseline index at $ref has $n children, expected ${#platforms[@]}"
    unset ids
done

if ((with_farm)); then
    lab_start_farm
    ref=$REGISTRY/example-farm:bench
    plist=$(IFS=,; echo "${platforms[*]}")
    for r in $(seq 1 "$runs"); do
        echo "bench: farm run $r/$runs ($plist) -> $ref-$r"
        t0=$(now)
        out=$(lab_farmctl submit --progress plain -t "$ref-$r" --platform "$plist" \
            --build-arg VERSION=bench --metadata-file "$LAB/meta-$r.json" "$LAB/ctx" \
            2>>"$LAB/farmctl.log") || lab_fail "farmctl submit failed (see farmctl.log)"
        t1=$(now)
        printf '%s\n' "$out" >>"$LAB/farmctl.log"
        report "TOTAL farm submit (build+push+index)" "$(secs "$t0" "$t1")"
        # the coordinator's own measure: last job result -> index pushed under every tag
        report "coordinator stitch (result->index)" \
            "$("$LAB_PYTHON" -c 'import json,sys; print("%.3f" % (json.load(open(sys.argv[1]))["farm.stitch_ms"] / 1000))' "$LAB/meta-$r.json")"
        echo "bench: farm index digest $(tail -n1 <<<"$out")"
    done
fi
