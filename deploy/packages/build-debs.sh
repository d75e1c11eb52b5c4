#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Build the Debian packages farm-coordinator, farm-agent and farmctl for amd64, arm64 and
# armhf on this amd64 Debian 12 machine: amd64 natively, arm64 and armhf with Debian's
# cross compilers (crossbuild-essential-arm64/-armhf) against a sysroot of the target's
# -dev packages (apt-get download + dpkg -x: nothing foreign is installed on this host,
# so its own library versions never have to match the other architectures'). Compiled
# with dpkg-buildflags' flags for each architecture (hardening=+all, 64-bit file offsets)
# and checked for them (tests/lab/check-hardening.sh).
#
# usage: deploy/packages/build-debs.sh [--arch amd64,arm64,armhf] [--out DIR] [--work DIR]
#                                      [--no-install] [-j N]
#   --arch        which architectures (default all three)
#   --out         where the .deb files go (default WORK/out)
#   --work        build dirs and sysroots, one per architecture, kept between runs
#                 (default ${TMPDIR:-/tmp}/farm-debs)
#   --no-install  don't apt-get install missing build tools (fail instead)
# Needs root (or sudo) for apt-get only. Prints the .deb files it wrote, one a line, last.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
arches=amd64,arm64,armhf out="" work="" install=1 jobs=$(nproc 2>/dev/null || echo 2)
while (($#)); do
    case $1 in
        --arch) arches=${2:?--arch LIST}; shift ;;
        --arch=*) arches=${1#*=} ;;
        --out) out=${2:?--out DIR}; shift ;;
        --out=*) out=${1#*=} ;;
        --work) work=${2:?--work DIR}; shift ;;
        --work=*) work=${1#*=} ;;
        --no-install) install=0 ;;
        -j) jobs=${2:?-j N}; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "build-debs: unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
work=${work:-${TMPDIR:-/tmp}/farm-debs}
out=${out:-$work/out}
mkdir -p "$work" "$out"
work=$(cd "$work" && pwd)
out=$(cd "$out" && pwd)

say() { printf '\n== build-debs: %s\n' "$*" >&2; }
die() { printf 'build-debs: %s\n' "$*" >&2; exit 1; }

declare -A triplet=([amd64]=x86_64-linux-gnu [arm64]=aarch64-linux-gnu [armhf]=arm-linux-gnueabihf)
declare -A toolchain=([arm64]=toolchain-aarch64.cmake [armhf]=toolchain-armhf.cmake)
declare -A elf=([amd64]='x86-64' [arm64]='ARM aarch64' [armhf]='ARM, EABI5')
# the target's -dev packages farm links against (CMakeLists.txt's pkg_check_modules)
dev_libs=(libzmq3-dev libprotobuf-c-dev libcurl4-openssl-dev libssl-dev libyaml-dev
    libjansson-dev libarchive-dev libsqlite3-dev libmicrohttpd-dev)

IFS=, read -r -a want <<<"$arches"
for a in "${want[@]}"; do
    [[ -n ${triplet[$a]:-} ]] || die "unknown architecture '$a' (amd64, arm64, armhf)"
done
[[ $(dpkg --print-architecture) == amd64 ]] || die "this script cross-builds from amd64 only"

# --- build tools --------------------------------------------------------------------------

tools=(cmake pkg-config protobuf-c-compiler dpkg-dev file binutils)
# each architecture's compilers, by package name (spelt out: what a new machine gets)
declare -A compilers=([amd64]=build-essential [arm64]=crossbuild-essential-arm64
                      [armhf]=crossbuild-essential-armhf)
for a in "${want[@]}"; do
    tools+=("${compilers[$a]}")
    [[ $a == amd64 ]] && tools+=("${dev_libs[@]}")
done
missing=()
for p in "${tools[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
        || missing+=("$p")
done
if ((${#missing[@]})); then
    ((install)) || die "missing packages: ${missing[*]} (run without --no-install, as root)"
    sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo -n)
    say "installing ${missing[*]}"
    # a mirror mid-sync may fail one index; the install says if it mattered
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null \
        || echo "build-debs: WARNING: apt-get update reported errors" >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o DPkg::Lock::Timeout=600 "${missing[@]}" </dev/null \
        || die "apt-get install ${missing[*]} failed"
fi

# --- sysroots -----------------------------------------------------------------------------

# sysroot ARCH: WORK/sysroot-ARCH holding the target's -dev packages and everything they
# depend on, unpacked. The .debs are kept in WORK/debs-ARCH; only new ones are fetched.
sysroot() {
    local a=$1 root=$work/sysroot-$1 debs=$work/debs-$1 p name f l t
    local -a closure fetch=()
    mkdir -p "$debs"
    mapfile -t closure < <(apt-cache depends --recurse --no-recommends --no-suggests \
        --no-conflicts --no-breaks --no-replaces --no-enhances "${dev_libs[@]/%/:$a}" \
        | grep -E "^[a-z0-9][^ ]*:$a\$" | sort -u)
    ((${#closure[@]} > 10)) || die "apt-cache found no $a packages: is $a a dpkg foreign architecture (dpkg --add-architecture $a; apt-get update)?"
    for p in "${closure[@]}"; do
        name=${p%:*}
        compgen -G "$debs/${name}_*_$a.deb" >/dev/null || fetch+=("$p")
    done
    if ((${#fetch[@]})); then
        say "$a: downloading ${#fetch[@]} packages into $debs"
        (cd "$debs" && apt-get download -q "${fetch[@]}" </dev/null) >"$work/download-$a.log" 2>&1 \
            || { cat "$work/download-$a.log" >&2; die "apt-get download failed for $a"; }
    fi
    # unpack again only when the set of .debs changed
    if [[ ! -f $root/.debs || $(ls "$debs") != $(cat "$root/.debs") ]]; then
        say "$a: unpacking $(ls "$debs" | wc -l) packages into $root"
        rm -rf "$root"
        mkdir -p "$root"
        for f in "$debs"/*.deb; do dpkg-deb -x "$f" "$root"; done
        # absolute symlinks (libz.so -> /lib/...) must point into the sysroot, not the host
        while IFS= read -r l; do
            t=$(readlink "$l")
            [[ $t == /* ]] || continue
            ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$root$t")" "$l"
        done < <(find "$root" -type l)
        ls "$debs" >"$root/.debs"
    fi
    [[ -f $root/usr/lib/${triplet[$a]}/pkgconfig/libzmq.pc ]] || die "$root has no libzmq.pc"
}

# --- build and package --------------------------------------------------------------------

built=()
for a in "${want[@]}"; do
    t0=$SECONDS
    b=$work/build-$a
    args=(-DFARM_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr)
    if [[ $a != amd64 ]]; then
        sysroot "$a"
        args+=("-DCMAKE_TOOLCHAIN_FILE=$repo/deploy/packages/${toolchain[$a]}"
               "-DFARM_SYSROOT=$work/sysroot-$a")
    fi
    # Debian's flags for this architecture (dpkg-buildflags: hardening=+all adds BIND_NOW,
    # future=+lfs 64-bit file offsets on armhf); CMake reads CFLAGS, CPPFLAGS and LDFLAGS
    # on a first configure, so a build dir made without them is made again
    flags=$(cd "$repo" && DEB_HOST_ARCH=$a DEB_BUILD_MAINT_OPTIONS="hardening=+all future=+lfs" \
        dpkg-buildflags --export=sh) || die "$a: dpkg-buildflags failed"
    if [[ -f $b/CMakeCache.txt && $(cat "$b/.buildflags" 2>/dev/null) != "$flags" ]]; then
        rm -rf "$b"
    fi
    say "$a: configure and build in $b"
    (eval "$flags" && export CFLAGS="$CPPFLAGS $CFLAGS" && cmake -S "$repo" -B "$b" "${args[@]}") \
        >"$work/configure-$a.log" 2>&1 \
        || { cat "$work/configure-$a.log" >&2; die "$a: cmake configure failed"; }
    printf '%s' "$flags" >"$b/.buildflags"
    cmake --build "$b" -j "$jobs" >"$work/build-$a.log" 2>&1 \
        || { tail -n 60 "$work/build-$a.log" >&2; die "$a: build failed (log $work/build-$a.log)"; }
    for exe in farm-coordinator farm-agent farmctl; do
        file -L "$b/$exe" | grep -q "${elf[$a]}" \
            || die "$a: $b/$exe is not a ${elf[$a]} binary: $(file -L "$b/$exe")"
    done
    "$repo/tests/lab/check-hardening.sh" "$b/farm-coordinator" "$b/farm-agent" "$b/farmctl" \
        || die "$a: the binaries lack hardening (above)"
    rm -rf "$b/packages"
    (cd "$b" && cpack -G DEB >"$work/cpack-$a.log" 2>&1) \
        || { cat "$work/cpack-$a.log" >&2; die "$a: cpack failed"; }
    for f in "$b"/packages/*.deb; do
        got=$(dpkg-deb -f "$f" Architecture)
        [[ $got == "$a" ]] || die "$f says Architecture: $got, not $a"
        cp "$f" "$out/"
        built+=("$out/${f##*/}")
    done
    say "$a: $(ls "$b"/packages/*.deb | wc -l) packages in $((SECONDS - t0)) s"
done
printf '%s\n' "${built[@]}"
