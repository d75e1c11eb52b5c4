#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The libFuzzer targets of tests/fuzz build with clang and survive a short run: each
# replays its seed corpus (hostile inputs and the inputs of bugs found before) and then
# fuzzes for FARM_FUZZ_SECONDS (default 10) from a fresh work corpus. Any crash, leak,
# timeout, out-of-memory or ASan/UBSan report fails the test, with the input saved and
# named. No clang is a failure, not a skip (tests/lab/lib.sh LAB_DEPS installs it).
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init --no-binaries

secs=${FARM_FUZZ_SECONDS:-10}
fuzz=$FARM_SOURCE_DIR/tests/fuzz
command -v clang >/dev/null || lab_fail "clang is not installed: the fuzzers need it" \
    "(apt-get install clang libclang-rt-14-dev)"

# Configure and build once, here, so a build problem is reported as one.
lab_log "building the fuzzers into $FARM_BUILD_DIR/fuzz"
fbuild=$FARM_BUILD_DIR/fuzz
mkdir -p "$fbuild"
cmake -S "$fuzz" -B "$fbuild" -DCMAKE_C_COMPILER=clang >"$LAB/fuzz-configure.log" 2>&1 \
    || lab_fail "configuring tests/fuzz failed"
cmake --build "$fbuild" -j "$(nproc 2>/dev/null || echo 2)" >"$LAB/fuzz-build.log" 2>&1 \
    || lab_fail "building tests/fuzz failed"

targets=()
for src in "$fuzz"/fuzz_*.c; do
    t=$(basename "$src" .c)
    targets+=("${t#fuzz_}")
done
((${#targets[@]} >= 7)) || lab_fail "only ${#targets[@]} fuzz targets in $fuzz: ${targets[*]}"

failed=()
for t in "${targets[@]}"; do
    [[ -x $fbuild/fuzz_$t ]] || lab_fail "fuzz_$t was not built"
    # A fresh work corpus in $LAB; saved failing inputs are copied out before cleanup.
    if FARM_FUZZ_WORK=$LAB/work FARM_FUZZ_BUILD_DIR=$fbuild \
        "$fuzz/run.sh" "$t" "$secs" >>"$LAB/fuzz-summary.log" 2>&1; then
        tail -n 1 "$LAB/fuzz-summary.log" >&2
    else
        failed+=("$t")
        tail -n 60 "$LAB/fuzz-summary.log" >&2
    fi
done
if ((${#failed[@]})); then
    mkdir -p "$fbuild/failed"
    cp -a "$LAB/work/artifacts/." "$fbuild/failed/" 2>/dev/null || true
    lab_fail "fuzz targets failed: ${failed[*]} (inputs copied to $fbuild/failed;" \
        "replay one with $fbuild/fuzz_TARGET FILE)"
fi
lab_log "all ${#targets[@]} fuzz targets passed (${secs}s each)"
