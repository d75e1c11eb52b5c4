#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/fuzz/run.sh TARGET SECONDS [LIBFUZZER_ARG...]
#
# Builds the fuzz project (clang, tests/fuzz/CMakeLists.txt) and runs one target: first
# once over its seed corpus tests/fuzz/corpus/TARGET (every seed must pass), then
# fuzzing for SECONDS. TARGET is a name from tests/fuzz/fuzz_NAME.c (wire, config,
# reference, platform, challenge, dockerignore, context) or "all" for each in turn.
# Exit status 0 only if nothing crashed, leaked, timed out or reported undefined
# behaviour; a failing input is saved under the work dir and named in the output.
#
# New inputs the fuzzer finds go to a work corpus, not to the committed seeds; runs
# continue from it. Copy an input worth keeping into tests/fuzz/corpus/TARGET/.
#
# Environment: FARM_BUILD_DIR (default build/ in the repo), FARM_FUZZ_BUILD_DIR (the
# fuzz build, default $FARM_BUILD_DIR/fuzz), FARM_FUZZ_WORK (default
# $FARM_FUZZ_BUILD_DIR/work), CC (default clang), FARM_FUZZ_JOBS (build parallelism,
# default 2).
set -euo pipefail

usage() { echo "usage: $0 TARGET SECONDS [LIBFUZZER_ARG...]" >&2; exit 2; }
(($# >= 2)) || usage
target=${1#fuzz_}
secs=$2
shift 2
[[ $secs =~ ^[0-9]+$ ]] || usage

src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$src/../.." && pwd)
build=${FARM_BUILD_DIR:-$root/build}
[[ $build == /* ]] || build=$root/$build
fbuild=${FARM_FUZZ_BUILD_DIR:-$build/fuzz}
work=${FARM_FUZZ_WORK:-$fbuild/work}
cc=${CC:-clang}

die() { echo "fuzz: $*" >&2; exit 1; }
command -v "$cc" >/dev/null || die "$cc not found: the fuzzers need clang with libFuzzer" \
    "(Debian: apt-get install clang libclang-rt-14-dev)"
mkdir -p "$fbuild"
cmake -S "$src" -B "$fbuild" -DCMAKE_C_COMPILER="$cc" >"$fbuild/configure.log" 2>&1 \
    || { cat "$fbuild/configure.log" >&2; echo "fuzz: configuring $fbuild failed" >&2; exit 1; }
cmake --build "$fbuild" -j "${FARM_FUZZ_JOBS:-2}" >"$fbuild/build.log" 2>&1 \
    || { tail -n 60 "$fbuild/build.log" >&2; echo "fuzz: building $fbuild failed" >&2; exit 1; }

if [[ $target == all ]]; then
    rc=0
    for f in "$src"/fuzz_*.c; do
        t=$(basename "$f" .c)
        "$0" "${t#fuzz_}" "$secs" "$@" || rc=1
    done
    exit "$rc"
fi

bin=$fbuild/fuzz_$target
seeds=$src/corpus/$target
if [[ ! -x $bin ]]; then
    echo "fuzz: no target $target ($bin); targets:" \
        "$(cd "$src" && for f in fuzz_*.c; do f=${f#fuzz_}; printf '%s ' "${f%.c}"; done)" >&2
    exit 2
fi
[[ -d $seeds && -n $(ls -A "$seeds") ]] || die "$target has no seeds in $seeds"
mkdir -p "$work/$target" "$work/artifacts" "$work/tmp"
log=$work/$target.log

# Reports are fatal (-fno-sanitize-recover in the build); leaks are checked per input.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# fuzz_context makes its private dirs here; a crash leaves them for the post-mortem.
export TMPDIR=$work/tmp

# A bad report is any crash, leak, timeout, OOM or sanitizer report; libFuzzer then
# exits non-zero, and the log is searched as well in case a report did not stop it.
bad='ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: |fuzz check failed'
fail() {
    echo "fuzz $target: FAILED: $*" >&2
    grep -E -A40 "$bad" "$log" | head -n 80 >&2 || tail -n 40 "$log" >&2
    sed -n "s/.*Test unit written to /fuzz: $target: input saved as /p" "$log" >&2
    exit 1
}

# 1. Every seed, once (a seed that crashes is a regression of a fixed bug).
"$bin" -runs=0 -timeout=10 "-artifact_prefix=$work/artifacts/$target-" "$seeds" >"$log" 2>&1 \
    || fail "a seed in $seeds"
grep -qE "$bad" "$log" && fail "a seed in $seeds"
nseeds=$(find "$seeds" -type f | wc -l)

# 2. Fuzzing: new inputs to the work corpus (first dir), the seeds read-only (second).
if ((secs > 0)); then
    "$bin" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        "-artifact_prefix=$work/artifacts/$target-" "$@" "$work/$target" "$seeds" >"$log" 2>&1 \
        || fail "after fuzzing (log $log)"
    grep -qE "$bad" "$log" && fail "after fuzzing (log $log)"
fi

# One line a person can compare between runs.
done_line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)' "$log" | tail -n 1)
final_stat() { sed -n "s/^stat::$1:[[:space:]]*//p" "$log"; }
printf 'fuzz %-12s ok: %s seeds, %ss, %s runs, %s exec/s, cov %s, ft %s, corpus %s, new %s, %s\n' \
    "$target" "$nseeds" "$secs" "$(final_stat number_of_executed_units)" \
    "$(final_stat average_exec_per_sec)" \
    "$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$done_line")" \
    "$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$done_line")" \
    "$(sed -n 's/.*corp: \([^ ]*\).*/\1/p' <<<"$done_line")" \
    "$(final_stat new_units_added)" "rss $(final_stat peak_rss_mb) MB"
