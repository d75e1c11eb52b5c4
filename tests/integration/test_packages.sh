#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Debian packages, built and used for real: deploy/packages/build-debs.sh builds
# farm-coordinator, farm-agent and farmctl for amd64, arm64 and armhf; the package
# metadata and binaries are checked (dpkg-deb, file, dpkg-shlibdeps, Debian's hardening:
# tests/lab/check-hardening.sh), and the armhf farmctl packs a context holding a file over
# 2 GiB under qemu (64-bit file offsets); the amd64 packages
# are installed (apt-get install ./x.deb), reinstalled (nothing changes), their units pass
# systemd-analyze verify, and their binaries run the quick start. Then the arm64 and armhf
# agents from their packages (dpkg-deb -x), run under qemu-user through binfmt_misc with
# exactly the runtime libraries their Depends name (unpacked from Debian's :arm64/:armhf
# packages, QEMU_LD_PREFIX), are nodes of a lab farm next to the installed coordinator and
# amd64 agent, and each builds its platform in one submit. Last, the packages are purged
# and everything they made is gone, while what was there before stays.
# Needs root (apt-get, binfmt_misc): run by anyone else it exits 77 (ctest: skipped).
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
if [[ $(id -u) != 0 ]]; then
    echo "test_packages: SKIPPED: needs root (apt-get install, binfmt_misc)" >&2
    exit 77
fi
lab_init --no-binaries
# agents run as farm and must reach their dirs, keys and runtime roots in here
chmod 0711 "$LAB"
PY=$LAB_PYTHON
pkgs=(farm-coordinator farm-agent farmctl)
arches=(amd64 arm64 armhf)
version=$(sed -n 's/^project(farm VERSION \([0-9.]*\).*/\1/p' "$FARM_SOURCE_DIR/CMakeLists.txt")
[[ -n $version ]] || lab_fail "no project version in CMakeLists.txt"
installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q 'ok installed$'; }
for p in "${pkgs[@]}"; do
    ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qv 'not-installed' \
        || lab_fail "$p is already on this host: this test installs and purges its own (apt-get purge ${pkgs[*]} first)"
done

# --- build ---------------------------------------------------------------------------------
# build dirs, sysroots and downloaded .debs are kept in the build tree between runs
work=$FARM_BUILD_DIR/packages-work
t0=$SECONDS
"$FARM_SOURCE_DIR/deploy/packages/build-debs.sh" --work "$work" --out "$LAB/debs" \
    >"$LAB/build-debs.out" 2>"$LAB/build-debs.log" \
    || { tail -n 40 "$LAB/build-debs.log" >&2; lab_fail "build-debs.sh failed"; }
lab_log "build-debs.sh: 9 packages in $((SECONDS - t0)) s: $(grep -o '[a-z0-9]*: 3 packages in [0-9]* s' "$LAB/build-debs.log" | tr '\n' ' ')"

declare -A elf=([amd64]='x86-64' [arm64]='ARM aarch64' [armhf]='ARM, EABI5 version 1 (SYSV), dynamically linked, interpreter /lib/ld-linux-armhf.so.3')
deb() { echo "$LAB/debs/${1}_$version-1_$2.deb"; }
for a in "${arches[@]}"; do
    for p in "${pkgs[@]}"; do
        f=$(deb "$p" "$a")
        [[ -f $f ]] || lab_fail "build-debs.sh wrote no $f"
        grep -qx "$f" "$LAB/build-debs.out" || lab_fail "build-debs.sh did not list $f"
        [[ $(dpkg-deb -f "$f" Package) == "$p" ]] || lab_fail "$f: Package is not $p"
        [[ $(dpkg-deb -f "$f" Architecture) == "$a" ]] || lab_fail "$f: Architecture $(dpkg-deb -f "$f" Architecture), not $a"
        [[ $(dpkg-deb -f "$f" Version) == "$version-1" ]] || lab_fail "$f: Version $(dpkg-deb -f "$f" Version), not $version-1"
        mkdir -p "$LAB/x-$a"
        dpkg-deb -x "$f" "$LAB/x-$a"
        out=$(file -b "$LAB/x-$a/usr/bin/$p")
        [[ $out == *"${elf[$a]}"* && $out == *stripped* && $out != *"not stripped"* ]] \
            || lab_fail "$f: /usr/bin/$p is not a stripped ${elf[$a]} binary: $out"
        listing=$(dpkg-deb -c "$f")
        grep -q " ./usr/share/doc/$p/copyright$" <<<"$listing" || lab_fail "$f has no copyright file"
    done
    f=$(deb farm-agent "$a")
    listing=$(dpkg-deb -c "$f")
    grep -q ' ./lib/systemd/system/farm-agent.service$' <<<"$listing" || lab_fail "$f has no unit"
    mkdir -p "$LAB/ctl-$a"
    dpkg-deb -e "$f" "$LAB/ctl-$a"
    grep -qx /etc/default/farm-agent "$LAB/ctl-$a/conffiles" || lab_fail "$f: /etc/default/farm-agent is not a conffile"
    for s in postinst prerm postrm; do
        [[ -x $LAB/ctl-$a/$s ]] || lab_fail "$f has no executable $s"
        sh -n "$LAB/ctl-$a/$s" || lab_fail "$f: $s does not pass sh -n"
    done
    dep=$(dpkg-deb -f "$f" Depends)
    for d in buildah runc slirp4netns uidmap libzmq5 libprotobuf-c1 libcurl4 libssl3 libjansson4 libarchive13; do
        [[ ", $dep," == *", $d"[\ ,]* ]] || lab_fail "$f: Depends lacks $d: $dep"
    done
    [[ $(dpkg-deb -f "$f" Recommends) == "qemu-user-static, binfmt-support" ]] \
        || lab_fail "$f: Recommends is $(dpkg-deb -f "$f" Recommends)"
    [[ $(dpkg-deb -f "$(deb farm-coordinator "$a")" Depends) == *libyaml-0-2* ]] \
        || lab_fail "farm-coordinator ($a) does not depend on libyaml-0-2"
done
# the listed library dependencies are what dpkg-shlibdeps finds in the amd64 binaries
mkdir -p "$LAB/shlibs/debian"
printf 'Source: farm\n\nPackage: farm\nArchitecture: any\n' >"$LAB/shlibs/debian/control"
for p in "${pkgs[@]}"; do
    want=$(cd "$LAB/shlibs" && dpkg-shlibdeps -O "$LAB/x-amd64/usr/bin/$p" 2>/dev/null | sed 's/^shlibs:Depends=//')
    have=$(dpkg-deb -f "$(deb "$p" amd64)" Depends)
    [[ -n $want && ( $have == "$want" || $have == "$want, "* ) ]] \
        || lab_fail "$p: Depends starts [$have], dpkg-shlibdeps says [$want] (deploy/packages/packaging.cmake)"
done
lab_log "9 packages: names, architectures, version $version-1, stripped ELF binaries, conffiles, scripts, Depends checked"
# Debian's hardening in every packaged binary (PIE, RELRO, BIND_NOW, stack protector,
# FORTIFY; on armhf 64-bit file offsets): read from the stripped files themselves
for a in "${arches[@]}"; do
    "$FARM_SOURCE_DIR/tests/lab/check-hardening.sh" "${pkgs[@]/#/$LAB/x-$a/usr/bin/}" 2>"$LAB/hardening-$a.err" \
        || lab_fail "the $a packages' binaries lack hardening: $(cat "$LAB/hardening-$a.err")"
done
lab_log "9 binaries: PIE, RELRO, BIND_NOW, stack protector, FORTIFY; armhf with 64-bit file offsets"

# --- the maintainer scripts on a host without the farm user -------------------------------
# This host may already have a farm user (the lab makes one): the same scripts, filled in
# for a stand-in user and directories in $LAB, show the fresh-host path: user and ids
# made, an upgrade changes nothing, remove keeps the keys, purge restores /etc/subuid,
# /etc/subgid and /etc/passwd exactly.
st=$LAB/standin
su=farm-pkgtest
mkdir -p "$st"
! getent passwd "$su" >/dev/null || lab_fail "user $su exists: a stand-in from an earlier run? (deluser --system $su)"
for s in postinst prerm postrm; do
    sed -e "s|@PKG@|farm-pkgtest|g; s|@USER@|$su|g; s|@HOME@|$st/home|g; s|@CONF@|$st/conf|g" \
        -e "s|@RECORD@|$st/record|g; s|@ETC@|$st/etc|g; s|@ETC_RECORD@|$st/etc.created|g" \
        -e "s|@SUBIDS@|65536|g; s|@SUBIDS_NOTE@||g; s|@SUBDIRS@|work builder|g" \
        -e "s|@GECOS@|farm package test|g; s|@NEXT@|(test)|g" \
        "$FARM_SOURCE_DIR/deploy/packages/debian/$s.in" >"$st/$s"
    ! grep -q '@[A-Z_]*@' "$st/$s" || lab_fail "$s.in has a placeholder this test does not fill: $(grep -o '@[A-Z_]*@' "$st/$s" | sort -u)"
    chmod +x "$st/$s"
done
lab_on_exit '"$st/postrm" purge >/dev/null 2>&1'
ids_before=$(cat /etc/subuid /etc/subgid; getent passwd | sort; getent group | sort)
"$st/postinst" configure "" >"$st/postinst.log" 2>&1 || { cat "$st/postinst.log" >&2; lab_fail "stand-in postinst failed"; }
line=$(getent passwd "$su") || lab_fail "postinst made no user $su"
[[ $(cut -d: -f3 <<<"$line") -lt 1000 && $(cut -d: -f7 <<<"$line") == /usr/sbin/nologin ]] \
    || lab_fail "$su is not a system user without login: $line"
for f in /etc/subuid /etc/subgid; do
    r=$(grep "^$su:" "$f") || lab_fail "postinst gave $su no range in $f"
    [[ ${r##*:} == 65536 ]] || lab_fail "$su's range in $f is not 65536 ids: $r"
    sort -t: -k2,2n "$f" | awk -F: 'NF == 3 { if (NR > 1 && $2 < end) bad = 1; if ($2 + $3 > end) end = $2 + $3 } END { exit bad }' \
        || lab_fail "$su's new range overlaps another in $f: $(cat "$f")"
done
for d in home home/work home/builder conf; do
    [[ $(stat -c '%U %a' "$st/$d") == "$su 700" ]] || lab_fail "$st/$d is $(stat -c '%U %a' "$st/$d")"
done
[[ $(stat -c '%U %a' "$st/etc") == "root 755" ]] || lab_fail "$st/etc is $(stat -c '%U %a' "$st/etc")"
made=$(cat /etc/subuid /etc/subgid; getent passwd | sort; ls -la "$st/home" "$st/conf")
"$st/postinst" configure 0.1.0-1 >"$st/postinst2.log" 2>&1 || { cat "$st/postinst2.log" >&2; lab_fail "stand-in postinst (upgrade) failed"; }
[[ $(cat /etc/subuid /etc/subgid; getent passwd | sort; ls -la "$st/home" "$st/conf") == "$made" ]] \
    || lab_fail "a second postinst changed something: $(cat "$st/postinst2.log")"
echo secret >"$st/conf/node.key"
"$st/prerm" remove && "$st/postrm" remove || lab_fail "stand-in prerm/postrm remove failed"
[[ -f $st/conf/node.key ]] && getent passwd "$su" >/dev/null || lab_fail "remove (not purge) took the keys or the user"
"$st/postrm" purge >"$st/purge.log" 2>&1 || { cat "$st/purge.log" >&2; lab_fail "stand-in postrm purge failed"; }
[[ $(cat /etc/subuid /etc/subgid; getent passwd | sort; getent group | sort) == "$ids_before" ]] \
    || lab_fail "purge did not restore users, groups and ids: $(diff <(echo "$ids_before") <(cat /etc/subuid /etc/subgid; getent passwd | sort; getent group | sort))"
for d in home conf etc record etc.created; do
    [[ ! -e $st/$d ]] || lab_fail "purge left $st/$d"
done
lab_log "maintainer scripts with a fresh user: user, ids, dirs made once; remove keeps keys; purge restores all"

# --- install, reinstall --------------------------------------------------------------------
snapshot() {
    local d
    {
        getent passwd farm farm-coordinator || true
        md5sum /etc/subuid /etc/subgid
        for d in /etc/farm /etc/farm/agent /etc/farm/coordinator /var/lib/farm-agent \
            /var/lib/farm-agent/work /var/lib/farm-agent/builder /var/lib/farm-coordinator; do
            stat -c '%n %U %G %a' "$d" 2>/dev/null || echo "$d absent"
        done
    } 2>&1
}
before=$(snapshot)
had_etc_farm=0
[[ -d /etc/farm ]] && had_etc_farm=1
purged=0
purge() {
    ((purged)) && return 0
    purged=1
    lab_kill_all
    env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout=600 \
        "${pkgs[@]}" </dev/null >"$LAB/purge.log" 2>&1
}
lab_on_exit purge
t0=$SECONDS
env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 \
    "$(deb farm-coordinator amd64)" "$(deb farm-agent amd64)" "$(deb farmctl amd64)" \
    </dev/null >"$LAB/install.log" 2>&1 || { tail -n 30 "$LAB/install.log" >&2; lab_fail "apt-get install of the amd64 packages failed"; }
for p in "${pkgs[@]}"; do installed "$p" || lab_fail "$p is not installed after apt-get install"; done
lab_log "installed the amd64 packages in $((SECONDS - t0)) s"
records=$(cat /var/lib/misc/farm-agent.created /var/lib/misc/farm-coordinator.created 2>/dev/null || true)

for spec in farm:/var/lib/farm-agent farm-coordinator:/var/lib/farm-coordinator; do
    IFS=: read -r u home <<<"$spec"
    line=$(getent passwd "$u") || lab_fail "no user $u after install"
    [[ $(cut -d: -f6 <<<"$line") == "$home" ]] || lab_fail "$u's home is not $home: $line"
    [[ $(cut -d: -f7 <<<"$line") == /usr/sbin/nologin ]] || lab_fail "$u can log in: $line"
done
for spec in /var/lib/farm-agent:farm:700 /var/lib/farm-agent/work:farm:700 \
    /var/lib/farm-agent/builder:farm:700 /etc/farm/agent:farm:700 \
    /var/lib/farm-coordinator:farm-coordinator:700 /etc/farm/coordinator:farm-coordinator:700 \
    /etc/farm:root:755; do
    IFS=: read -r d u m <<<"$spec"
    [[ $(stat -c '%U %a' "$d" 2>&1) == "$u $m" ]] || lab_fail "$d is $(stat -c '%U:%G %a' "$d" 2>&1), want $u, mode $m"
done
for f in /etc/subuid /etc/subgid; do
    awk -F: -v u=farm -v id="$(id -u farm)" '($1 == u || $1 == id) && $3 >= 65536 { ok = 1 } END { exit !ok }' "$f" \
        || lab_fail "farm has no range of 65536 ids in $f: $(grep -E "^(farm|$(id -u farm)):" "$f")"
done
# no two ranges in the files overlap
for f in /etc/subuid /etc/subgid; do
    sort -t: -k2,2n "$f" | awk -F: 'NF == 3 { if (NR > 1 && $2 < end) { print "overlap: " $0; bad = 1 } if ($2 + $3 > end) end = $2 + $3 }
        END { exit bad }' || lab_fail "$f has overlapping ranges: $(cat "$f")"
done
installed_state=$(snapshot)
# idempotent: installing the same packages again changes nothing
dpkg -i "$(deb farm-coordinator amd64)" "$(deb farm-agent amd64)" "$(deb farmctl amd64)" \
    >"$LAB/reinstall.log" 2>&1 || { cat "$LAB/reinstall.log" >&2; lab_fail "reinstalling the packages failed"; }
[[ $(snapshot) == "$installed_state" ]] \
    || lab_fail "reinstalling changed users, ids or dirs: $(diff <(echo "$installed_state") <(snapshot))"
# an upgrade finds a directory with a loosened mode and sets it back
chmod 0755 /var/lib/farm-agent
dpkg -i "$(deb farm-agent amd64)" >"$LAB/reinstall2.log" 2>&1 || { cat "$LAB/reinstall2.log" >&2; lab_fail "reinstall after chmod failed"; }
[[ $(stat -c %a /var/lib/farm-agent) == 700 ]] || lab_fail "postinst left /var/lib/farm-agent at mode $(stat -c %a /var/lib/farm-agent)"
grep -q '/var/lib/farm-agent had mode 755; now 0700' "$LAB/reinstall2.log" || lab_fail "postinst did not say it fixed the mode"
lab_log "users farm and farm-coordinator, 0700 dirs, subordinate ids in place; reinstall changes nothing"

# the installed units, with the installed binaries
if ! out=$(systemd-analyze verify /lib/systemd/system/farm-coordinator.service \
    /lib/systemd/system/farm-agent.service 2>&1) || [[ -n $out ]]; then
    lab_fail "systemd-analyze verify of the installed units: $out"
fi
[[ $(/usr/bin/farmctl version 2>&1) == *"$version"* ]] || lab_fail "farmctl version says $(/usr/bin/farmctl version 2>&1)"

# --- the quick start on the installed binaries ---------------------------------------------
t0=$SECONDS
FARM_BUILD_DIR=/usr/bin "$FARM_SOURCE_DIR/deploy/quickstart.sh" --no-install --no-build \
    --state-dir "$LAB/quickstart" >"$LAB/quickstart.log" 2>&1 \
    || { tail -n 60 "$LAB/quickstart.log" >&2; lab_fail "quickstart.sh on the installed binaries failed"; }
grep -Eq '^index digest: sha256:[0-9a-f]{64}' "$LAB/quickstart.log" \
    || { tail -n 30 "$LAB/quickstart.log" >&2; lab_fail "quickstart printed no index digest"; }
grep -q '/usr/bin/farm-coordinator --config' "$LAB/quickstart/coordinator.log" \
    || lab_fail "the quick start did not run /usr/bin/farm-coordinator"
grep -q '/usr/bin/farm-agent --coordinator' "$LAB/quickstart/agent-arm64-1.log" \
    || lab_fail "the quick start did not run /usr/bin/farm-agent"
lab_log "quickstart.sh with FARM_BUILD_DIR=/usr/bin: $(grep '^index digest' "$LAB/quickstart.log") in $((SECONDS - t0)) s"

# --- arm64 and armhf agents from their packages, under qemu-user ---------------------------
# runtime_root ARCH: the libraries the three packages' Depends name, and theirs, unpacked
# from Debian's ARCH packages into $LAB/rt-ARCH: if a Depends were missing, a program
# would not load
declare -A qemu=([arm64]=aarch64 [armhf]=arm)
runtime_root() {
    local a=$1 root=$LAB/rt-$1 debs=$work/debs-$1 p f l t
    local -a libs closure fetch=()
    mapfile -t libs < <(for p in "${pkgs[@]}"; do dpkg-deb -f "$(deb "$p" "$a")" Depends; done \
        | tr ',' '\n' | sed 's/([^)]*)//; s/ //g' | grep '^lib' | sort -u)
    mapfile -t closure < <(apt-cache depends --recurse --no-recommends --no-suggests \
        --no-conflicts --no-breaks --no-replaces --no-enhances "${libs[@]/%/:$a}" \
        | grep -E "^[a-z0-9][^ ]*:$a\$" | sort -u)
    mkdir -p "$debs" "$root"
    for p in "${closure[@]}"; do
        compgen -G "$debs/${p%:*}_*_$a.deb" >/dev/null || fetch+=("$p")
    done
    if ((${#fetch[@]})); then
        (cd "$debs" && apt-get download -q "${fetch[@]}" </dev/null) >"$LAB/download-$a.log" 2>&1 \
            || { cat "$LAB/download-$a.log" >&2; lab_fail "apt-get download of $a runtime libraries failed"; }
    fi
    for p in "${closure[@]}"; do
        f=$(compgen -G "$debs/${p%:*}_*_$a.deb" | head -n1)
        dpkg-deb -x "$f" "$root"
    done
    # absolute links (lib/ld-linux-*.so -> /lib/...) must stay inside the root
    while IFS= read -r l; do
        t=$(readlink "$l")
        [[ $t == /* ]] && ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$root$t")" "$l"
    done < <(find "$root" -type l)
    lab_log "$a runtime root: ${#closure[@]} packages for Depends: ${libs[*]}"
}
for a in arm64 armhf; do
    runtime_root "$a"
    out=$(QEMU_LD_PREFIX=$LAB/rt-$a "$LAB/x-$a/usr/bin/farmctl" version 2>&1) || true
    [[ $out == *"$version"* ]] || lab_fail "the $a farmctl does not run under qemu: $out"
    out=$(QEMU_LD_PREFIX=$LAB/rt-$a "$LAB/x-$a/usr/bin/farm-coordinator" --help 2>&1 | head -n1) || true
    [[ $out == usage:\ farm-coordinator* ]] || lab_fail "the $a farm-coordinator does not run under qemu: $out"
done

# The armhf farmctl packs a context holding a file over 2 GiB (sparse; farm's limit is
# 4 GiB): with 32-bit file offsets its stat fails with EOVERFLOW ("Value too large for
# defined data type"). No coordinator listens: the submit fails after the packing, at the
# connection (farmctl says that nothing listens there).
big=$LAB/bigctx
mkdir -p "$big"
echo 'FROM scratch' >"$big/Dockerfile"
truncate -s 2100M "$big/big.bin"
t0=$SECONDS
QEMU_LD_PREFIX=$LAB/rt-armhf timeout 600 "$LAB/x-armhf/usr/bin/farmctl" submit \
    --coordinator "tcp://127.0.0.1:$(lab_free_port)" -t 127.0.0.1:5999/big/x:1 \
    --platform linux/arm/v7 --progress plain "$big" >"$LAB/big.out" 2>"$LAB/big.err" || true
grep -Eq "^#context $big packed: sha256:[0-9a-f]{64} \(22[0-9]{8} bytes\)$" "$LAB/big.err" \
    || lab_fail "the armhf farmctl did not pack a context with a 2.1 GiB file: $(cat "$LAB/big.err")"
grep -q 'nothing listens there' "$LAB/big.err" \
    || lab_fail "the armhf farmctl failed otherwise than at the connection: $(cat "$LAB/big.err")"
rm -rf "$big"
lab_log "armhf farmctl under qemu packed a 2.1 GiB file in $((SECONDS - t0)) s: $(grep -o '([0-9]* bytes)' "$LAB/big.err")"

REGISTRY=""
lab_registry_start
lab_binfmt_register
export FARMCTL=/usr/bin/farmctl FARM_COORDINATOR_BIN=/usr/bin/farm-coordinator
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=amd64-1" "linux/arm64=arm64-1" "linux/arm/v7=armv7-1"
lab_start_coordinator "$LAB/farm.yaml"
FARM_AGENT_BIN=/usr/bin/farm-agent
lab_start_agent amd64-1 linux/amd64
for spec in arm64:arm64-1:linux/arm64 armhf:armv7-1:linux/arm/v7; do
    IFS=: read -r a node plat <<<"$spec"
    # the foreign agent's own loader and libraries come from its runtime root
    out=$(QEMU_LD_PREFIX=$LAB/rt-$a "$LAB/x-$a/usr/bin/farm-agent" --help 2>&1 | head -n1) || true
    [[ $out == usage:\ farm-agent* ]] || lab_fail "the $a farm-agent does not run under qemu: $out"
    FARM_AGENT_BIN=$LAB/x-$a/usr/bin/farm-agent
    export QEMU_LD_PREFIX=$LAB/rt-$a
    lab_start_agent "$node" "$plat"
    unset QEMU_LD_PREFIX
done
lab_wait_nodes 3 90 amd64-1 arm64-1 armv7-1
# each foreign agent really is its package's binary under qemu-user
for spec in arm64:arm64-1 armhf:armv7-1; do
    IFS=: read -r a node <<<"$spec"
    pid=$(lab_pid "agent-$node")
    exe=$(readlink "/proc/$pid/exe")
    [[ $exe == *qemu* || $exe == *"${qemu[$a]}-binfmt"* ]] || lab_fail "agent $node (pid $pid) runs $exe, not qemu-${qemu[$a]}"
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$LAB/x-$a/usr/bin/farm-agent" \
        || lab_fail "agent $node does not run $LAB/x-$a/usr/bin/farm-agent: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
    [[ $(stat -c %U "/proc/$pid") == "${LAB_AGENT_USER:-farm}" || ${LAB_ISOLATION:-oci} == chroot ]] \
        || lab_fail "agent $node runs as $(stat -c %U "/proc/$pid"), not ${LAB_AGENT_USER:-farm}"
    lab_log "agent $node: $LAB/x-$a/usr/bin/farm-agent under $exe, user $(stat -c %U "/proc/$pid")"
done

ctx=$LAB/example
lab_example_context "$ctx"
tag=$REGISTRY/pkg/example:1.0
t0=$SECONDS
lab_farmctl submit -t "$tag" --platform linux/amd64,linux/arm64,linux/arm/v7 --build-arg VERSION=pkg \
    --metadata-file "$LAB/meta.json" --progress plain "$ctx" >"$LAB/submit.out" 2>"$LAB/submit.err" \
    || { cat "$LAB/submit.err" >&2; lab_fail "the 3-platform submit to the packaged agents failed"; }
digest=$(tail -n1 "$LAB/submit.out")
[[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || lab_fail "submit printed no digest: $digest"
lab_log "3-platform submit on the packaged agents: $digest in $((SECONDS - t0)) s"
"$PY" - "$LAB/meta.json" <<'PYEOF' || lab_fail "a platform was not built by its packaged node"
import json, sys
meta = json.load(open(sys.argv[1]))
for plat, node in [("linux/amd64", "amd64-1"), ("linux/arm64", "arm64-1"), ("linux/arm/v7", "armv7-1")]:
    got = meta["farm.platforms"][plat]["node"]
    assert got == node, (plat, got)
print("each platform built by its node:", {p: v["node"] for p, v in meta["farm.platforms"].items()})
PYEOF
# the registry's children: the right platform in each image config, the RUN step saw it
for spec in amd64::linux/amd64:x86_64 arm64:v8:linux/arm64:aarch64 arm:v7:linux/arm/v7:armv7l; do
    IFS=: read -r arch variant canon machine <<<"$spec"
    args=(--override-os linux --override-arch "$arch")
    [[ -n $variant ]] && args+=(--override-variant "$variant")
    rm -rf "$LAB/img"
    skopeo "${args[@]}" copy --src-tls-verify=false "docker://$tag" "dir:$LAB/img" >/dev/null \
        || lab_fail "skopeo could not copy the $canon child"
    cfg=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["digest"].split(":")[1])' "$LAB/img/manifest.json")
    got=$("$PY" -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["os"] + "/" + c["architecture"] + ("/" + c["variant"] if c.get("variant") else ""))' "$LAB/img/$cfg")
    [[ $got == "$canon" || $got == "$canon/$variant" ]] || lab_fail "the $canon child's config says $got"
    mkdir -p "$LAB/img/root"
    for l in $("$PY" -c 'import json,sys; [print(l["digest"].split(":")[1]) for l in json.load(open(sys.argv[1]))["layers"]]' "$LAB/img/manifest.json"); do
        tar -xf "$LAB/img/$l" -C "$LAB/img/root" 2>/dev/null
    done
    [[ $(cat "$LAB/img/root/etc/farm-built-on") == "$machine" ]] \
        || lab_fail "$canon: the RUN step saw $(cat "$LAB/img/root/etc/farm-built-on"), not $machine"
    [[ $(cat "$LAB/img/root/etc/farm-version") == pkg ]] || lab_fail "$canon: build arg lost"
    lab_log "$canon child: config $got, RUN step saw $machine"
done
lab_farmctl nodes >"$LAB/nodes.out"
grep -Eq '^armv7-1 +linux/arm/v7 +ready' "$LAB/nodes.out" || lab_fail "farmctl nodes: $(cat "$LAB/nodes.out")"
# each packaged agent said its version in HELLO: the VERSION column
for node in amd64-1 arm64-1 armv7-1; do
    grep -Eq "^$node .* ${version//./\\.} +-\$" "$LAB/nodes.out" \
        || lab_fail "farmctl nodes does not show $node's version $version: $(cat "$LAB/nodes.out")"
done

# --- purge ---------------------------------------------------------------------------------
purge || { cat "$LAB/purge.log" >&2; lab_fail "apt-get purge failed"; }
for p in "${pkgs[@]}"; do
    ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qv 'not-installed' \
        || lab_fail "$p still known to dpkg after purge: $(dpkg-query -W -f='${Status}' "$p")"
done
for f in /usr/bin/farm-agent /usr/bin/farm-coordinator /usr/bin/farmctl /etc/default/farm-agent \
    /etc/default/farm-coordinator /lib/systemd/system/farm-agent.service /var/lib/misc/farm-agent.created; do
    [[ ! -e $f ]] || lab_fail "$f is still there after purge"
done
[[ $(snapshot) == "$before" ]] \
    || lab_fail "purge did not restore users, ids and dirs (made: $(tr '\n' ' ' <<<"$records")): $(diff <(echo "$before") <(snapshot))"
((had_etc_farm)) || [[ ! -e /etc/farm ]] || lab_fail "/etc/farm is still there after purge"
lab_log "purged: users, ids and dirs as before the install (the packages had made: $(tr '\n' ' ' <<<"$records"))"
lab_log "PASS"
