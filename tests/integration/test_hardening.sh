#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The default build's farm-coordinator, farm-agent and farmctl carry Debian's hardening
# (PIE, RELRO, BIND_NOW, stack protector, FORTIFY; tests/lab/check-hardening.sh reads them
# from the binaries), and the check fails on a program built without them, so it can fail.
# test_packages runs the same check on the nine packaged binaries (amd64, arm64, armhf).
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
check=$FARM_SOURCE_DIR/tests/lab/check-hardening.sh
bins=("$FARM_BUILD_DIR/farm-coordinator" "$FARM_BUILD_DIR/farm-agent" "$FARM_BUILD_DIR/farmctl")
"$check" "${bins[@]}" 2>"$LAB/check.err" \
    || lab_fail "the build's binaries lack hardening (CMakeLists.txt's flags; FORTIFY needs a build type other than Debug): $(cat "$LAB/check.err")"
lab_log "hardened: ${bins[*]##*/}"

# a program built the way farm was before: each property is reported missing
printf '#include <stdio.h>\n#include <string.h>\nint main(int c, char **v) { char b[16]; strcpy(b, v[0]); puts(b); return c; }\n' >"$LAB/plain.c"
cc -O2 -fno-stack-protector -U_FORTIFY_SOURCE -no-pie -Wl,-z,lazy -Wl,-z,norelro \
    -o "$LAB/plain" "$LAB/plain.c" || lab_fail "cc could not build the unhardened sample"
if "$check" "$LAB/plain" 2>"$LAB/plain.err"; then
    lab_fail "check-hardening.sh passed a binary built without hardening"
fi
for want in "not PIE" "no GNU_RELRO" "no BIND_NOW" "no stack protector" "no FORTIFY"; do
    grep -q "$want" "$LAB/plain.err" || lab_fail "check-hardening.sh did not say \"$want\" of the unhardened sample: $(cat "$LAB/plain.err")"
done
lab_log "an unhardened sample is refused: $(wc -l <"$LAB/plain.err") properties missing"
lab_log "PASS"
