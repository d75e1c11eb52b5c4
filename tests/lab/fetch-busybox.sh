#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fetch Debian's busybox-static for amd64, arm64 and armhf once, and cache the static
# binaries as DEST/{amd64,arm64,armv7}/busybox. They are the only "base image" the lab
# and the example use: no Docker Hub here, images start FROM scratch.
#
# usage: tests/lab/fetch-busybox.sh [DEST]
#   DEST defaults to ${FARM_CACHE:-/var/cache/farm}/busybox
# Needs root (dpkg --add-architecture, apt-get update) the first time only.
set -euo pipefail

dest=${1:-${FARM_CACHE:-/var/cache/farm}/busybox}

# Debian architecture -> directory name (= TARGETARCH + TARGETVARIANT) and the ELF
# e_machine we expect (0x3e x86-64, 0xb7 aarch64, 0x28 arm).
declare -A DIR=([amd64]=amd64 [arm64]=arm64 [armhf]=armv7)
declare -A MACHINE=([amd64]=3e00 [arm64]=b700 [armhf]=2800)

say() { printf 'fetch-busybox: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# e_machine of an ELF file as 4 hex digits (little-endian bytes 18-19), "" if not ELF.
elf_machine() {
    local magic
    magic=$(od -An -tx1 -N4 "$1" 2>/dev/null | tr -d ' \n')
    [[ $magic == 7f454c46 ]] || return 0
    od -An -tx1 -j18 -N2 "$1" | tr -d ' \n'
}

have_all() {
    local a f
    for a in "${!DIR[@]}"; do
        f=$dest/${DIR[$a]}/busybox
        [[ -x $f && $(elf_machine "$f") == "${MACHINE[$a]}" ]] || return 1
    done
}

if have_all; then
    say "cached in $dest"
    exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found: this script needs a Debian-based host"
[[ $(id -u) == 0 ]] || die "run as root the first time (dpkg --add-architecture / apt-get update)"

export DEBIAN_FRONTEND=noninteractive
native=$(dpkg --print-architecture)
foreign=$(dpkg --print-foreign-architectures)
need_update=0
for a in arm64 armhf; do
    [[ $a == "$native" ]] && continue
    if ! grep -qx "$a" <<<"$foreign"; then
        say "dpkg --add-architecture $a"
        dpkg --add-architecture "$a"
        need_update=1
    fi
done
# Package lists for a newly added (or never fetched) architecture need an update.
if (( need_update == 0 )); then
    for a in "${!DIR[@]}"; do
        if ! apt-cache show "busybox-static:$a" >/dev/null 2>&1; then
            need_update=1
            break
        fi
    done
fi
if (( need_update )); then
    say "apt-get update"
    # A mirror mid-sync can fail one index (e.g. security's armhf list) while the main
    # archive, which is where busybox-static comes from, is fine: warn, retry once, and
    # let apt-get download decide.
    if ! apt-get update -qq; then
        sleep 2
        apt-get update -qq || say "WARNING: apt-get update reported errors; trying the download anyway"
    fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get download drops privileges to _apt when it can; give it a directory it may write.
chown _apt "$work" 2>/dev/null || true
(
    cd "$work"
    apt-get download -qq busybox-static:amd64 busybox-static:arm64 busybox-static:armhf
) || die "apt-get download busybox-static:{amd64,arm64,armhf} failed"

for a in "${!DIR[@]}"; do
    debs=("$work"/busybox-static_*_"$a".deb)
    deb=${debs[0]}
    [[ -f $deb ]] || die "no busybox-static .deb for $a in $work"
    x=$work/x-$a
    mkdir -p "$x"
    dpkg-deb -x "$deb" "$x"
    bin=""
    for cand in "$x/bin/busybox" "$x/usr/bin/busybox"; do
        [[ -f $cand ]] && { bin=$cand; break; }
    done
    [[ -n $bin ]] || die "$deb has no bin/busybox"
    [[ $(elf_machine "$bin") == "${MACHINE[$a]}" ]] \
        || die "$deb: bin/busybox is not an ELF for $a (e_machine $(elf_machine "$bin"))"
    mkdir -p "$dest/${DIR[$a]}"
    install -m 0755 "$bin" "$dest/${DIR[$a]}/busybox.tmp"
    mv -f "$dest/${DIR[$a]}/busybox.tmp" "$dest/${DIR[$a]}/busybox"
    say "$a -> $dest/${DIR[$a]}/busybox ($(basename "$deb"))"
done

have_all || die "cache in $dest is incomplete after fetching"
