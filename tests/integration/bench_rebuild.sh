#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The rebuild benchmark (layer cache): a Dockerfile with a slow RUN step, then a COPY of a file
# that changes. On one farm (registry, coordinator, the lab's three agents): a cold build,
# then a build after a one-file change (warm). In the same run, the one-machine way:
# `buildah build --layers` of the three platforms one after another (chroot isolation, as
# root, vfs), cold then warm after the same change, plus `buildah manifest` push of the
# index. Prints every time and the warm/cold ratios. Not a ctest test (not named test_*):
# run it by hand.
#
# usage: tests/integration/bench_rebuild.sh [--runs N] [--slow SECONDS]
#   --runs N      cold+warm pairs per side (default 3); medians are printed
#   --slow S      how long the slow RUN step sleeps (default 3)
# Environment: FARM_BUILD_DIR / FARM_SOURCE_DIR as for the integration tests.
# shellcheck source-path=SCRIPTDIR/../lab source=lib.sh
set -euo pipefail
source "$(dirname "$0")/../lab/lib.sh"
runs=3 slow=3
while (($#)); do
    case $1 in
        --runs) runs=${2:?--runs N}; shift ;;
        --slow) slow=${2:?--slow SECONDS}; shift ;;
        *) echo "usage: $0 [--runs N] [--slow SECONDS]" >&2; exit 2 ;;
    esac
    shift
done
lab_init
export LAB_AGENT_VERBOSE=""
lab_start_farm
plats=(linux/amd64 linux/arm64 linux/arm/v7)

ctx=$LAB/ctx
lab_example_context "$ctx"
cat >"$ctx/Dockerfile" <<EOF
FROM scratch
ARG TARGETARCH
ARG TARGETVARIANT
ARG RUN_ID
COPY busybox/\${TARGETARCH}\${TARGETVARIANT}/busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox sleep $slow && /bin/busybox echo \$RUN_ID > /slow"]
COPY app.txt /app.txt
EOF

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

farm_build() { # TAG RUN_ID
    lab_farmctl submit -t "$REGISTRY/bench/rebuild:$1" --platform "$(IFS=,; echo "${plats[*]}")" \
        --build-arg "RUN_ID=$2" --progress quiet "$ctx" >/dev/null 2>"$LAB/farm-$1.err" \
        || { cat "$LAB/farm-$1.err" >&2; lab_fail "farm build $1 failed"; }
}

root=$LAB/buildah
bah=(buildah --root "$root/storage" --runroot "$root/run" --storage-driver vfs)
buildah_build() { # TAG RUN_ID: three platforms one after another, then the index pushed
    local p ids=() id
    "${bah[@]}" manifest rm "bench-$1" >/dev/null 2>&1 || true
    for p in "${plats[@]}"; do
        id=$("${bah[@]}" build --layers --isolation chroot --platform "$p" --build-arg "RUN_ID=$2" \
            -q "$ctx" 2>>"$LAB/buildah.log") || lab_fail "buildah build --platform $p failed (buildah.log)"
        ids+=("$id")
    done
    "${bah[@]}" manifest create "bench-$1" >/dev/null
    for id in "${ids[@]}"; do "${bah[@]}" manifest add "bench-$1" "$id" >/dev/null; done
    "${bah[@]}" manifest push --all --tls-verify=false "bench-$1" \
        "docker://$REGISTRY/bench/rebuild-buildah:$1" >>"$LAB/buildah.log" 2>&1 \
        || lab_fail "buildah manifest push failed (buildah.log)"
}

declare -A t=()
for ((r = 1; r <= runs; r++)); do
    # a new RUN_ID per pair: the cold build misses the cache, the warm one (same RUN_ID,
    # one file changed after the slow step) can hit it
    echo "cold $r" >"$ctx/app.txt"
    t0=$(now); farm_build "c$r" "run$r"; t[farm_cold]+="$(since "$t0") "
    echo "warm $r" >"$ctx/app.txt"
    t0=$(now); farm_build "w$r" "run$r"; t[farm_warm]+="$(since "$t0") "
    echo "cold $r" >"$ctx/app.txt"
    t0=$(now); buildah_build "c$r" "bah$r"; t[buildah_cold]+="$(since "$t0") "
    echo "warm $r" >"$ctx/app.txt"
    t0=$(now); buildah_build "w$r" "bah$r"; t[buildah_warm]+="$(since "$t0") "
    printf 'pair %d: farm cold %.2f s warm %.2f s | buildah --layers cold %.2f s warm %.2f s\n' "$r" \
        "$(awk '{print $NF}' <<<"${t[farm_cold]}")" "$(awk '{print $NF}' <<<"${t[farm_warm]}")" \
        "$(awk '{print $NF}' <<<"${t[buildah_cold]}")" "$(awk '{print $NF}' <<<"${t[buildah_warm]}")"
done
fc=$(lab_median <<<"${t[farm_cold]}") fw=$(lab_median <<<"${t[farm_warm]}")
bc_=$(lab_median <<<"${t[buildah_cold]}") bw=$(lab_median <<<"${t[buildah_warm]}")
printf 'median of %d (slow step %s s, 3 platforms):\n' "$runs" "$slow"
printf '  farm                    cold %.2f s  warm %.2f s  warm/cold %.2f\n' "$fc" "$fw" "$(echo "$fw / $fc" | bc -l)"
printf '  buildah --layers, 1 box cold %.2f s  warm %.2f s  warm/cold %.2f\n' "$bc_" "$bw" "$(echo "$bw / $bc_" | bc -l)"
printf '  farm warm / buildah warm %.2f\n' "$(echo "$fw / $bw" | bc -l)"
