#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# check-hardening.sh BINARY...: each ELF binary (any architecture: binutils' readelf reads
# them all, stripped or not) was built with Debian's hardening flags, judged from what
# they leave in the file:
#   PIE            ELF type DYN with DT_FLAGS_1 PIE (-fPIE -pie)
#   RELRO          a GNU_RELRO segment (-Wl,-z,relro)
#   BIND_NOW       DT_FLAGS BIND_NOW or DT_FLAGS_1 NOW (-Wl,-z,now)
#   stack guard    imports __stack_chk_fail (-fstack-protector-strong)
#   FORTIFY        imports a glibc __*_chk function (-D_FORTIFY_SOURCE=2 with -O)
#   64-bit offsets a 32-bit binary imports no 32-bit-offset file call (open, lseek, fstat,
#                  ...; -D_FILE_OFFSET_BITS=64 makes them open64, lseek64, fstat64, ...)
# Prints one line per failed property ("BINARY: no BIND_NOW (...)") and exits 1 if any
# failed; silent and 0 when all hold.
set -euo pipefail
(($#)) || { echo "usage: check-hardening.sh BINARY..." >&2; exit 2; }
command -v readelf >/dev/null || { echo "check-hardening: readelf not found (apt-get install binutils)" >&2; exit 2; }
bad=0
no() { echo "$1: $2" >&2; bad=1; }
# glibc's calls whose off_t/struct stat is 32 bits wide without -D_FILE_OFFSET_BITS=64
lfs_calls='open|openat|creat|lseek|fstat|stat|lstat|fstatat|ftruncate|truncate|pread|pwrite|mmap|readdir|fopen|freopen|fseeko|ftello|mkstemp|mkostemp|sendfile|fallocate|posix_fallocate|statfs|fstatfs|getrlimit|setrlimit|glob|scandir|alphasort|ftw|nftw|lockf|fcntl'
for f in "$@"; do
    [[ -f $f ]] || { no "$f" "no such file"; continue; }
    header=$(readelf -hW "$f" 2>&1) || { no "$f" "not an ELF file: $header"; continue; }
    dyn=$(readelf -dW "$f" 2>&1)
    segs=$(readelf -lW "$f" 2>&1)
    # the imported functions' names, version suffixes (@GLIBC_2.4) cut off
    syms=$(readelf --dyn-syms -W "$f" 2>&1 | awk '$7 == "UND" { sub(/@.*/, "", $8); print $8 }' | sort -u)
    grep -Eq 'Type:[[:space:]]+DYN' <<<"$header" && grep -Eq 'FLAGS_1\).*PIE' <<<"$dyn" \
        || no "$f" "not PIE (ELF type $(sed -n 's/.*Type:[[:space:]]*\([A-Z]*\).*/\1/p' <<<"$header"); build with -fPIE -pie)"
    grep -q 'GNU_RELRO' <<<"$segs" || no "$f" "no GNU_RELRO segment (link with -Wl,-z,relro)"
    grep -Eq '\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*NOW' <<<"$dyn" \
        || no "$f" "no BIND_NOW (link with -Wl,-z,now)"
    grep -qx '__stack_chk_fail' <<<"$syms" \
        || no "$f" "no stack protector: __stack_chk_fail is not imported (-fstack-protector-strong)"
    grep -Eq '^__[a-z0-9_]+_chk$' <<<"$(grep -vx '__stack_chk_fail' <<<"$syms")" \
        || no "$f" "no FORTIFY: no __*_chk function is imported (-D_FORTIFY_SOURCE=2 and -O2)"
    if grep -Eq 'Class:[[:space:]]+ELF32' <<<"$header"; then
        narrow=$(grep -Ex "($lfs_calls)" <<<"$syms" | tr '\n' ' ') || true
        [[ -z $narrow ]] || no "$f" "32-bit file offsets: imports ${narrow% } (-D_FILE_OFFSET_BITS=64)"
    fi
done
exit "$bad"
