#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Install what is missing, fetch the lab's busybox, build, and run the tests with ctest.
# Non-interactive (CI=true, no stdin). Extra arguments go to ctest, e.g.
#   tests/run.sh -R unit            tests/run.sh -L integration -V
# Environment: FARM_BUILD_DIR (default build, relative to the repo root), CMAKE_ARGS
# (passed to the configure step), FARM_CACHE (busybox cache, default /var/cache/farm),
# FARM_SKIP_INSTALL=1 (don't touch packages). Exit status: ctest's.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
export FARM_SOURCE_DIR=$root
build=${FARM_BUILD_DIR:-build}
[[ $build == /* ]] || build=$root/$build
export FARM_BUILD_DIR=$build
export DEBIAN_FRONTEND=noninteractive

# shellcheck source=lab/lib.sh
source "$root/tests/lab/lib.sh"

step() { printf '\n=== %s\n' "$*"; }

if [[ -z ${FARM_SKIP_INSTALL:-} ]]; then
    step "packages"
    lab_install_deps
else
    mapfile -t missing < <(lab_missing_deps)
    ((${#missing[@]} == 0)) || printf 'run.sh: WARNING: FARM_SKIP_INSTALL is set and these packages are missing: %s\n  the tests that use them will fail; install them: apt-get install %s\n' \
        "${missing[*]}" "${missing[*]}" >&2
fi

step "busybox-static (amd64, arm64, armhf) for the lab's images"
"$root/tests/lab/fetch-busybox.sh" "$FARM_BUSYBOX_DIR"

step "build in $FARM_BUILD_DIR"
lab_build

step "ctest $*"
cd "$FARM_BUILD_DIR"
rc=0
ctest --output-on-failure "$@" </dev/null || rc=$?
exit "$rc"
