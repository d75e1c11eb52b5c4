#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The packages under a real systemd: the amd64 .debs (deploy/packages/build-debs.sh) are
# installed with apt into a clean Debian 12 root (mmdebstrap, cached under
# $FARM_CACHE/systemd-root by its package list), booted with systemd-nspawn --boot. In it,
# README's "A real fleet, step by step" as written: keys, farm.yaml, farm-agent check,
# `systemctl enable --now` of both units; an image with RUN steps is built through the
# units and pushed to a registry on the host's loopback (the container shares the host's
# network). Then a narrowed bounding set (an override as `systemctl edit` writes) makes
# the agent refuse to start naming the capabilities and the unit setting, and the unit
# stay failed (exit status 78, not restarted), the refusal in `journalctl -p err`; an
# upgrade to a higher version (the debs rebuilt from a copy with the version bumped)
# restarts both services on the new binaries and builds again; remove keeps keys, users
# and state; purge leaves nothing the packages made (the file tree, users, groups and
# subordinate ids as before the install, the admin's farm.yaml aside); installed again in
# the other order, the users swap ids and the kept farm.yaml is the coordinator's again,
# not readable by the build user.
# Needs root (mmdebstrap, systemd-nspawn, apt-get in the root); fails without it.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
if [[ $(id -u) != 0 ]]; then
    echo "test_systemd_boot: FAIL: needs root (mmdebstrap, systemd-nspawn)" >&2
    exit 1
fi
lab_init --no-binaries
for t in mmdebstrap:mmdebstrap systemd-nspawn:systemd-container nsenter:util-linux skopeo:skopeo; do
    command -v "${t%%:*}" >/dev/null || lab_fail "${t%%:*} not found (apt-get install ${t#*:}; tests/lab/lib.sh LAB_DEPS has it)"
done
pkgs=(farm-coordinator farm-agent farmctl)
version=$(sed -n 's/^project(farm VERSION \([0-9.]*\).*/\1/p' "$FARM_SOURCE_DIR/CMakeLists.txt")
[[ $version =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || lab_fail "no x.y.z project version in CMakeLists.txt: '$version'"
next=${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.$((BASH_REMATCH[3] + 1))

# --- the packages: this version and the next --------------------------------------------
work=$FARM_BUILD_DIR/packages-work
t0=$SECONDS
"$FARM_SOURCE_DIR/deploy/packages/build-debs.sh" --arch amd64 --work "$work" --out "$LAB/debs" \
    >"$LAB/build-debs.out" 2>"$LAB/build-debs.log" \
    || { tail -n 40 "$LAB/build-debs.log" >&2; lab_fail "build-debs.sh failed"; }
# the next version: the same sources with the project version bumped, in a copy
src=$FARM_BUILD_DIR/packages-next-src
rm -rf "$src"
mkdir -p "$src"
if git -C "$FARM_SOURCE_DIR" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$FARM_SOURCE_DIR" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -C "$src" -xf -
else
    tar -C "$FARM_SOURCE_DIR" --exclude=./build --exclude=./.git -cf - . | tar -C "$src" -xf -
fi
sed -i "s/^project(farm VERSION $version/project(farm VERSION $next/" "$src/CMakeLists.txt"
grep -q "^project(farm VERSION $next" "$src/CMakeLists.txt" || lab_fail "could not bump the version in $src/CMakeLists.txt"
"$src/deploy/packages/build-debs.sh" --arch amd64 --work "$FARM_BUILD_DIR/packages-work-next" \
    --out "$LAB/debs-next" >"$LAB/build-debs-next.out" 2>"$LAB/build-debs-next.log" \
    || { tail -n 40 "$LAB/build-debs-next.log" >&2; lab_fail "build-debs.sh (version $next) failed"; }
# deb NAME [DIR] [VERSION]: the amd64 package file
deb() { echo "${2:-$LAB/debs}/${1}_${3:-$version}-1_amd64.deb"; }
for p in "${pkgs[@]}"; do
    [[ -f $(deb "$p") ]] || lab_fail "build-debs.sh wrote no $(deb "$p")"
    [[ -f $(deb "$p" "$LAB/debs-next" "$next") ]] || lab_fail "no $p $next package"
done
lab_log "packages $version and $next (amd64) in $((SECONDS - t0)) s"

# --- a clean bookworm root, cached by its package list ------------------------------------
# systemd to boot, and what the packages depend on (so that apt installs them from the
# local files without the network: a Depends missing from the packages is missing here too)
mapfile -t depends < <(for p in "${pkgs[@]}"; do dpkg-deb -f "$(deb "$p")" Depends; done \
    | tr ',' '\n' | sed 's/([^)]*)//g; s/|.*//; s/[[:space:]]//g' | sed '/^$/d')
list=$(printf '%s\n' systemd systemd-sysv dbus "${depends[@]}" | sort -u | paste -sd, -)
mirror=http://deb.debian.org/debian
key=$(printf 'bookworm %s %s\n' "$mirror" "$list" | sha256sum | cut -c1-16)
cache=$FARM_CACHE/systemd-root
tarball=$cache/bookworm-$key.tar
mkdir -p "$cache"
if [[ ! -f $tarball ]]; then
    t0=$SECONDS
    mmdebstrap --variant=apt --format=tar --include="$list" bookworm "$tarball.$$.part" "$mirror" \
        >"$LAB/mmdebstrap.log" 2>&1 \
        || { rm -f "$tarball.$$.part"; tail -n 30 "$LAB/mmdebstrap.log" >&2; lab_fail "mmdebstrap failed"; }
    mv "$tarball.$$.part" "$tarball"
    lab_log "bootstrapped $tarball in $((SECONDS - t0)) s"
fi
root=$LAB/root
mkdir -p "$root"
tar -C "$root" -xf "$tarball" || lab_fail "could not unpack $tarball"
t=$root/root/t
mkdir -p "$t"
cp -r "$LAB/debs" "$LAB/debs-next" "$t/"
lab_example_context "$t/ctx"
lab_log "root from $tarball ($list)"

# --- boot ---------------------------------------------------------------------------------
lab_registry_start
machine=farm-boot-$$
# --register=no --keep-unit: no machined or host systemd needed; @keyring: buildah's runc
# makes a session keyring for each RUN step, which nspawn's default filter refuses
lab_spawn nspawn "$LAB/boot.log" systemd-nspawn -D "$root" --boot --register=no --keep-unit \
    --console=read-only --system-call-filter=@keyring -M "$machine"
npid=$LAB_LAST_PID
init=
poweroff() {
    [[ -n $init ]] && __lab_alive "$npid" || return 0
    kill -RTMIN+4 "$init" 2>/dev/null
    for _ in $(seq 1 300); do __lab_alive "$npid" || return 0; sleep 0.2; done
    lab_log "the container did not power off in 60 s; the lab kills it"
}
lab_on_exit poweroff
for _ in $(seq 1 300); do
    for c in $(cat "/proc/$npid/task/$npid/children" 2>/dev/null); do
        [[ $(cat "/proc/$c/comm" 2>/dev/null) == systemd ]] && init=$c
    done
    [[ -n $init ]] && break
    __lab_alive "$npid" || lab_fail "systemd-nspawn exited: $(tail -n 20 "$LAB/boot.log")"
    sleep 0.2
done
[[ -n $init ]] || lab_fail "no systemd in the container after 60 s: $(tail -n 20 "$LAB/boot.log")"
# inroot CMD...: run CMD in the container (its namespaces, root and environment)
inroot() {
    nsenter --target "$init" --all -r -w /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}
# (its bus comes up a moment after systemd itself)
for i in $(seq 1 240); do
    state=$(timeout 10 nsenter --target "$init" --all -r -w /bin/systemctl is-system-running --wait 2>&1) || true
    [[ $state == running || $state == degraded ]] && break
    ((i < 240)) || lab_fail "the container's systemd is '$state' after 120 s: $(tail -n 20 "$LAB/boot.log")"
    sleep 0.5
done
lab_log "booted $machine (systemd pid $init on the host): $state"

# what the root holds before the packages: its file tree (system state that changes by
# itself left out), users, groups and subordinate ids
fs_state() {
    inroot sh -c 'find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
        -o -path /var/tmp -o -path /var/log -o -path /var/cache -o -path /var/lib/apt \
        -o -path /var/lib/dpkg -o -path /var/lib/systemd -o -path /root -o -path /etc/ld.so.cache \
        -o -name "*-" -path "/etc/*" \) -prune -o -printf "%p %u:%g %m\n" | LC_ALL=C sort
        cat /etc/passwd /etc/group /etc/shadow /etc/gshadow /etc/subuid /etc/subgid 2>/dev/null'
}
# everything named like the packages (their files, users' dirs, records, links, units)
farm_names() {
    inroot find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /root \) \
        -prune -o \( -name '*farm*' -print \) | LC_ALL=C sort
}
before=$(fs_state)
[[ -z $(farm_names) ]] || lab_fail "the clean root already has farm files: $(farm_names)"

# --- README "A real fleet": the head (coordinator and a build node) -----------------------
apt_in() {
    inroot apt-get -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 "$@" </dev/null \
        >>"$LAB/apt.log" 2>&1 || { tail -n 30 "$LAB/apt.log" >&2; lab_fail "apt-get $* in the root failed"; }
}
# the coordinator's package first, the agent's next (after purge the other way round)
apt_in install "$(deb farm-coordinator /root/t/debs)"
apt_in install "$(deb farm-agent /root/t/debs)" "$(deb farmctl /root/t/debs)"
for p in "${pkgs[@]}"; do
    [[ $(inroot dpkg-query -W -f='${Status} ${Version}' "$p") == "install ok installed $version-1" ]] \
        || lab_fail "$p $version-1 is not installed in the root"
done
ids1="farm $(inroot id -u farm):$(inroot id -g farm) farm-coordinator $(inroot id -u farm-coordinator):$(inroot id -g farm-coordinator)"
lab_log "installed with apt: ${pkgs[*]} $version-1 ($ids1)"

pa=$(lab_free_port)
pc=$(lab_free_port)
inroot sh -c 'cd /etc/farm/coordinator && runuser -u farm-coordinator -- farmctl keygen --dir . coordinator' >/dev/null \
    || lab_fail "farmctl keygen coordinator (as farm-coordinator) failed"
inroot sh -c 'cd /etc/farm/agent && runuser -u farm -- farmctl keygen --dir . node' >/dev/null \
    || lab_fail "farmctl keygen node (as farm) failed"
inroot farmctl keygen --dir /root/t client >/dev/null || lab_fail "farmctl keygen client failed"
pub() { inroot sed -n 's/^public-key = //p' "$1"; }
inroot install -m 0640 -g farm-coordinator /usr/share/doc/farm-coordinator/farm.yaml.example /etc/farm/farm.yaml
# the editor step: this root's endpoints, node and client (written into the installed file)
cat >"$t/farm.yaml" <<EOF
coordinator:
  agents: tcp://127.0.0.1:$pa
  clients: tcp://127.0.0.1:$pc
  heartbeat: 1s
  state_dir: /var/lib/farm-coordinator
  public_key: "$(pub /etc/farm/coordinator/coordinator.pub)"
  secret_key_file: /etc/farm/coordinator/coordinator.key
platforms:
  linux/amd64: [head]
nodes:
  head: {slots: 1, key: "$(pub /etc/farm/agent/node.pub)"}
clients:
  ci: {key: "$(pub /root/t/client.pub)", role: admin}
registries:
  "$REGISTRY": {insecure: true}
EOF
inroot sh -c 'cat /root/t/farm.yaml >/etc/farm/farm.yaml'
[[ $(inroot stat -c '%U:%G %a' /etc/farm/farm.yaml) == "root:farm-coordinator 640" ]] \
    || lab_fail "farm.yaml is $(inroot stat -c '%U:%G %a' /etc/farm/farm.yaml) after README's install"
out=$(inroot farmctl validate /etc/farm/farm.yaml 2>&1) || lab_fail "farmctl validate: $out"
inroot systemctl enable --now farm-coordinator >>"$LAB/systemctl.log" 2>&1 || lab_fail "systemctl enable --now farm-coordinator failed"

# the build node
inroot install -o farm -g farm -m 0644 /etc/farm/coordinator/coordinator.pub /etc/farm/agent/coordinator.pub
inroot sh -c "printf 'FARM_COORDINATOR=tcp://127.0.0.1:$pa\nFARM_NAME=head\nFARM_AGENT_ARGS=\"--slots 1\"\n' >>/etc/default/farm-agent"
# preflight as README step 4 has it
check_cmd='. /etc/default/farm-agent; runuser -u farm -- farm-agent check --coordinator "$FARM_COORDINATOR" --name "$FARM_NAME" --key /etc/farm/agent/node.key --coordinator-key /etc/farm/agent/coordinator.pub --work-dir /var/lib/farm-agent/work $FARM_AGENT_ARGS'
inroot sh -c "$check_cmd" >"$LAB/check.out" 2>&1 || { cat "$LAB/check.out" >&2; lab_fail "farm-agent check (README step 4) FAILs in the booted root"; }
lab_log "farm-agent check: $(tail -n 1 "$LAB/check.out")"

# the same check with the unit's own settings, but the bounding set the unit had before
# (CAP_SETUID CAP_SETGID): it names the missing capabilities and the unit setting
props=()
while IFS= read -r l; do props+=(-p "$l"); done < <(inroot systemctl show farm-agent -p User -p Group \
    -p NoNewPrivileges -p ProtectSystem -p ProtectHome -p PrivateTmp -p PrivateMounts \
    -p ProtectControlGroups -p DevicePolicy -p DeviceAllow -p RemoveIPC | sed '/^[^=]*=$/d')
narrow=(-p "CapabilityBoundingSet=CAP_SETUID CAP_SETGID" -p ReadWritePaths=/var/lib/farm-agent)
inroot sh -c ". /etc/default/farm-agent; exec systemd-run --wait --pipe --quiet ${props[*]@Q} ${narrow[*]@Q} -p WorkingDirectory=/var/lib/farm-agent \
    /usr/bin/farm-agent check --coordinator \"\$FARM_COORDINATOR\" --name \"\$FARM_NAME\" --key /etc/farm/agent/node.key \
    --coordinator-key /etc/farm/agent/coordinator.pub --work-dir /var/lib/farm-agent/work" >"$LAB/check-narrow.out" 2>&1 \
    && lab_fail "farm-agent check passed with the bounding set CAP_SETUID CAP_SETGID: $(cat "$LAB/check-narrow.out")"
grep -q 'FAIL  id-map privileges: the capability bounding set (CapBnd 00000000000000c0 .*lacks CAP_DAC_OVERRIDE CAP_SYS_ADMIN' "$LAB/check-narrow.out" \
    && grep -q 'fix: under systemd: CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_DAC_OVERRIDE CAP_SYS_ADMIN in farm-agent.service' "$LAB/check-narrow.out" \
    || { cat "$LAB/check-narrow.out" >&2; lab_fail "farm-agent check under a narrowed bounding set does not name the capabilities and the unit setting"; }
! grep -q 'FAIL  subordinate' "$LAB/check-narrow.out" || lab_fail "farm-agent check blames the subordinate ids: $(grep FAIL "$LAB/check-narrow.out")"
lab_log "farm-agent check under CapabilityBoundingSet=CAP_SETUID CAP_SETGID: $(grep -o 'lacks CAP_DAC_OVERRIDE CAP_SYS_ADMIN' "$LAB/check-narrow.out"), fix names the unit setting"

inroot systemctl restart farm-coordinator >>"$LAB/systemctl.log" 2>&1 || lab_fail "systemctl restart farm-coordinator failed"
inroot systemctl enable --now farm-agent >>"$LAB/systemctl.log" 2>&1 || lab_fail "systemctl enable --now farm-agent failed"

export FARM_COORD_EP=tcp://127.0.0.1:$pc
ctl() { inroot FARM_KEY=/root/t/client.key FARM_COORDINATOR_KEY=/etc/farm/coordinator/coordinator.pub farmctl "$@"; }
unit_prop() { inroot systemctl show -p "$2" --value "$1"; }
journal() { inroot journalctl -u "$1" --no-pager -o cat -n "${2:-30}" 2>&1; }
# wait_ready WHAT: the node head is ready, both units active and never restarted
wait_ready() {
    local i out=""
    for i in $(seq 1 600); do
        out=$(ctl nodes --coordinator "$FARM_COORD_EP" 2>&1) || true
        grep -Eq '^head +linux/amd64 +ready' <<<"$out" && break
        # a unit that failed to start is restarted every few seconds: no need to wait
        for u in farm-coordinator farm-agent; do
            [[ $(unit_prop $u NRestarts) == 0 ]] || { journal $u >&2; lab_fail "$1: $u failed and was restarted"; }
        done
        ((i < 600)) || { journal farm-agent >&2; journal farm-coordinator >&2;
            lab_fail "$1: node head not ready after 120 s: $out"; }
        sleep 0.2
    done
    for u in farm-coordinator farm-agent; do
        [[ $(unit_prop $u ActiveState) == active && $(unit_prop $u NRestarts) == 0 ]] \
            || { journal $u >&2; lab_fail "$1: $u is $(unit_prop $u ActiveState), restarted $(unit_prop $u NRestarts) times"; }
    done
}
# exposure, as systemd-analyze security rates the loaded units
exposure() { inroot systemd-analyze security --no-pager "$1" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'; }
ea=$(exposure farm-agent.service)
ec=$(exposure farm-coordinator.service)
[[ -n $ea && -n $ec ]] || lab_fail "systemd-analyze security printed no exposure level"
(($(echo "$ec <= 2.0" | bc))) || lab_fail "farm-coordinator.service exposure $ec > 2.0"
(($(echo "$ea <= 6.5" | bc))) || lab_fail "farm-agent.service exposure $ea > 6.5"
lab_log "systemd-analyze security in the booted root: farm-agent.service $ea, farm-coordinator.service $ec"
wait_ready "enable --now"
[[ $(unit_prop farm-agent UnitFileState) == enabled && $(unit_prop farm-coordinator UnitFileState) == enabled ]] \
    || lab_fail "the units are not enabled"
# the agent really runs as farm under the unit's bounding set
apid=$(unit_prop farm-agent MainPID)
[[ $(inroot stat -c %U "/proc/$apid") == farm ]] || lab_fail "farm-agent (pid $apid in the root) does not run as farm"
bnd=$(inroot sed -n 's/^CapBnd:[[:space:]]*//p' "/proc/$apid/status")
[[ $bnd == 00000000002000c2 ]] || lab_fail "farm-agent's bounding set is $bnd, not CAP_SETUID CAP_SETGID CAP_DAC_OVERRIDE CAP_SYS_ADMIN (00000000002000c2)"
[[ $(inroot sed -n 's/^CapEff:[[:space:]]*//p' "/proc/$apid/status") == 0000000000000000 ]] \
    || lab_fail "farm-agent holds effective capabilities"
lab_log "both units active under systemd; the agent runs as farm, CapBnd $bnd, no effective capabilities"

# --- a build through the units --------------------------------------------------------------
# submit TAG VERSION: one linux/amd64 build, its RUN steps on the agent under its unit
submit() {
    local out
    out=$(ctl submit --coordinator "$FARM_COORD_EP" -t "$REGISTRY/boot/example:$1" \
        --platform linux/amd64 --build-arg "VERSION=$2" --progress plain /root/t/ctx 2>"$LAB/submit-$1.err") \
        || { cat "$LAB/submit-$1.err" >&2; journal farm-agent 60 >&2; lab_fail "farmctl submit ($1) failed"; }
    [[ $(tail -n 1 <<<"$out") =~ ^sha256:[0-9a-f]{64}$ ]] || lab_fail "farmctl submit ($1) printed no digest: $out"
    got=$(lab_image_file "$REGISTRY/boot/example:$1" amd64 etc/farm-version) \
        || lab_fail "the image $REGISTRY/boot/example:$1 has no /etc/farm-version"
    [[ $got == "$2" ]] || lab_fail "the RUN step of build $1 wrote '$got', not $2"
    lab_log "build $1: $(tail -n 1 <<<"$out"), its RUN step wrote /etc/farm-version=$got"
}
submit 1 boot1

# --- reload: farm.yaml read again by the same process ------------------------------------------
cpid=$(unit_prop farm-coordinator MainPID)
inroot systemctl reload farm-coordinator >>"$LAB/systemctl.log" 2>&1 \
    || { inroot systemctl status farm-coordinator --no-pager >&2 || true; journal farm-coordinator >&2
         lab_fail "systemctl reload farm-coordinator failed"; }
for i in $(seq 1 100); do
    journal farm-coordinator 50 | grep -q 'reload: /etc/farm/farm.yaml applied' && break
    ((i < 100)) || { journal farm-coordinator >&2; lab_fail "systemctl reload: the coordinator did not log the reload applied"; }
    sleep 0.2
done
[[ $(unit_prop farm-coordinator MainPID) == "$cpid" && $(unit_prop farm-coordinator NRestarts) == 0 ]] \
    || lab_fail "systemctl reload restarted the coordinator"
lab_log "systemctl reload: farm.yaml applied by the same coordinator (pid $cpid in the root)"

# --- a narrowed bounding set: the agent refuses to start and says why ----------------------
inroot mkdir -p /etc/systemd/system/farm-agent.service.d
inroot sh -c 'printf "[Service]\nCapabilityBoundingSet=\nCapabilityBoundingSet=CAP_SETUID CAP_SETGID\n" >/etc/systemd/system/farm-agent.service.d/narrow.conf'
inroot systemctl daemon-reload
inroot systemctl restart farm-agent >>"$LAB/systemctl.log" 2>&1 || true
for i in $(seq 1 150); do
    journal farm-agent 200 | grep -q 'the sandbox cannot work here: id-map privileges' && break
    ((i < 150)) || { journal farm-agent >&2; lab_fail "the narrowed agent did not say why it cannot start"; }
    sleep 0.2
done
journal farm-agent 200 | grep -q 'lacks CAP_DAC_OVERRIDE CAP_SYS_ADMIN' \
    && journal farm-agent 200 | grep -q 'CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_DAC_OVERRIDE CAP_SYS_ADMIN' \
    || { journal farm-agent >&2; lab_fail "the narrowed agent's log does not name the capabilities and the setting"; }
lab_log "with CapabilityBoundingSet=CAP_SETUID CAP_SETGID the agent refuses: $(journal farm-agent 200 | grep -m1 -o 'the sandbox cannot work here: id-map privileges: .\{0,80\}')"
# a refusal is final: the unit fails (exit status 78, RestartPreventExitStatus=78) and
# is not restarted every RestartSec= (5 s); the refusal is among the journal's errors
for i in $(seq 1 300); do
    [[ $(unit_prop farm-agent ActiveState) == failed ]] && break
    ((i < 300)) || lab_fail "the refusing agent's unit is $(unit_prop farm-agent ActiveState)/$(unit_prop farm-agent SubState) after 60 s, not failed (restarted $(unit_prop farm-agent NRestarts) times)"
    sleep 0.2
done
sleep 12 # more than twice RestartSec=5s: a restart would have come by now
st="$(unit_prop farm-agent ActiveState)/$(unit_prop farm-agent SubState) status $(unit_prop farm-agent ExecMainStatus), $(unit_prop farm-agent NRestarts) restarts"
[[ $st == "failed/failed status 78, 0 restarts" ]] \
    || { journal farm-agent >&2; lab_fail "the refusing agent's unit is $st, not failed/failed status 78, 0 restarts"; }
inroot journalctl -u farm-agent -p err --no-pager -o cat >"$LAB/journal-err.out" 2>&1
grep -q 'farm-agent: the sandbox cannot work here: id-map privileges' "$LAB/journal-err.out" \
    && grep -q 'farm-agent: refusing to start' "$LAB/journal-err.out" \
    || { cat "$LAB/journal-err.out" >&2; lab_fail "journalctl -p err -u farm-agent does not show the refusal"; }
status=$(inroot systemctl status farm-agent --no-pager 2>&1 || true)
grep -q 'Active: failed' <<<"$status" && grep -q 'status=78' <<<"$status" \
    || lab_fail "systemctl status farm-agent does not show the failure (Active: failed, status=78): $status"
lab_log "the refusing agent's unit: $st; journalctl -p err: $(grep -m1 -o 'refusing to start.\{0,40\}' "$LAB/journal-err.out")"
inroot rm -r /etc/systemd/system/farm-agent.service.d
inroot systemctl daemon-reload
inroot systemctl reset-failed farm-agent >/dev/null 2>&1 || true
inroot systemctl restart farm-agent >>"$LAB/systemctl.log" 2>&1 || lab_fail "systemctl restart farm-agent (override gone) failed"

# --- restart ----------------------------------------------------------------------------------
inroot systemctl restart farm-coordinator farm-agent >>"$LAB/systemctl.log" 2>&1 || lab_fail "systemctl restart failed"
wait_ready "restart"
lab_log "restarted both units: node ready again"

# --- upgrade ----------------------------------------------------------------------------------
pids_old="$(unit_prop farm-coordinator MainPID) $(unit_prop farm-agent MainPID)"
# the coordinator's package first, while a build runs (its RUN step sleeps 8 s): the
# package restarts the coordinator, which takes the build back from its journal and the
# agent; the waiting farmctl follows it to the end
slow=8.$$   # busybox sleep takes fractions: the host's pgrep finds this one (the root has none)
inroot sh -c "rm -rf /root/t/ctx-slow && cp -r /root/t/ctx /root/t/ctx-slow && echo 'RUN sleep $slow' >>/root/t/ctx-slow/Dockerfile"
ctl submit --coordinator "$FARM_COORD_EP" -t "$REGISTRY/boot/example:inflight" \
    --platform linux/amd64 --progress plain /root/t/ctx-slow >"$LAB/submit-inflight.out" \
    2>"$LAB/submit-inflight.err" &
inflight=$!
for i in $(seq 1 600); do
    pgrep -f "sleep $slow\$" >/dev/null && break
    ((i < 600)) || { cat "$LAB/submit-inflight.err" >&2; lab_fail "the in-flight build's RUN step did not start"; }
    sleep 0.2
done
apt_in install "$(deb farm-coordinator /root/t/debs-next "$next")"
st=0; wait "$inflight" || st=$?
((st == 0)) && [[ $(tail -n 1 "$LAB/submit-inflight.out") =~ ^sha256:[0-9a-f]{64}$ ]] \
    || { cat "$LAB/submit-inflight.err" >&2; journal farm-coordinator 60 >&2
         lab_fail "the build in flight during the coordinator's upgrade did not end with its index (farmctl exited $st)"; }
journal farm-coordinator 200 | grep -q 'attempt=1 adopted' \
    || { journal farm-coordinator 200 >&2; lab_fail "the upgraded coordinator did not adopt the running attempt"; }
lab_log "coordinator upgraded to $next-1 during a build: the build adopted and pushed ($(tail -n 1 "$LAB/submit-inflight.out"))"
apt_in install "$(deb farm-coordinator /root/t/debs-next "$next")" "$(deb farm-agent /root/t/debs-next "$next")" \
    "$(deb farmctl /root/t/debs-next "$next")"
for p in "${pkgs[@]}"; do
    [[ $(inroot dpkg-query -W -f='${Version}' "$p") == "$next-1" ]] || lab_fail "$p is not $next-1 after the upgrade"
done
[[ $(inroot farmctl version 2>&1) == *"$next"* ]] || lab_fail "farmctl version after the upgrade: $(inroot farmctl version 2>&1)"
wait_ready "upgrade"
pids_new="$(unit_prop farm-coordinator MainPID) $(unit_prop farm-agent MainPID)"
for i in 1 2; do
    o=$(cut -d' ' -f$i <<<"$pids_old") n=$(cut -d' ' -f$i <<<"$pids_new")
    [[ $o != "$n" ]] || lab_fail "the upgrade did not restart a service (pid $n before and after)"
    exe=$(inroot readlink "/proc/$n/exe")
    [[ $exe == /usr/bin/farm-* && $exe != *deleted* ]] || lab_fail "pid $n runs $exe after the upgrade, not the new binary"
done
[[ $(inroot stat -c '%U:%G %a' /etc/farm/farm.yaml) == "root:farm-coordinator 640" ]] || lab_fail "the upgrade changed farm.yaml"
submit 2 boot2
lab_log "upgraded to $next-1: both services restarted on the new binaries (pids $pids_old -> $pids_new), build 2 done"

# --- remove: keys, users, state kept ---------------------------------------------------------
apt_in remove farm-agent farm-coordinator farmctl
for f in /etc/farm/agent/node.key /etc/farm/coordinator/coordinator.key /var/lib/farm-agent/work \
    /var/lib/farm-coordinator /etc/default/farm-agent /etc/farm/farm.yaml; do
    inroot test -e "$f" || lab_fail "apt remove took $f"
done
inroot id farm >/dev/null && inroot id farm-coordinator >/dev/null || lab_fail "apt remove took the users"
inroot test ! -e /usr/bin/farm-agent || lab_fail "apt remove left /usr/bin/farm-agent"
n=$(inroot sh -c 'for d in /proc/[0-9]*; do stat -c %U "$d" 2>/dev/null; done' | grep -cxE 'farm|farm-coordinator' || true)
((n == 0)) || lab_fail "$n processes of farm or farm-coordinator still run after apt remove"
lab_log "apt remove: services stopped, keys, users and state kept"

# --- purge: nothing the packages made is left -----------------------------------------------
# (farmctl has no conffiles: remove took all of it, and apt knows it no more)
apt_in purge farm-agent farm-coordinator
for p in "${pkgs[@]}"; do
    ! inroot dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qv not-installed || lab_fail "$p still known to dpkg after purge"
done
# what is left: the admin's farm.yaml (and /etc/farm holding it), now root's alone
left=$(farm_names)
[[ $left == $'/etc/farm\n/etc/farm/farm.yaml' ]] || lab_fail "after purge, still there: $(tr '\n' ' ' <<<"$left")"
diffs=$(diff <(echo "$before") <(fs_state) | grep '^[<>]' | grep -v -e '^> /etc/farm root:root 755$' -e '^> /etc/farm/farm.yaml root:root 640$' || true)
[[ -z $diffs ]] || lab_fail "purge did not restore the root (files, users, groups, ids): $diffs"
lab_log "purged: file tree, users, groups and subordinate ids as before the install; kept /etc/farm/farm.yaml is $(inroot stat -c '%U:%G %a' /etc/farm/farm.yaml)"

# --- installed again, the other way round: the users swap ids --------------------------------
apt_in install "$(deb farm-agent /root/t/debs-next "$next")" "$(deb farmctl /root/t/debs-next "$next")"
apt_in install "$(deb farm-coordinator /root/t/debs-next "$next")"
ids2="farm $(inroot id -u farm):$(inroot id -g farm) farm-coordinator $(inroot id -u farm-coordinator):$(inroot id -g farm-coordinator)"
lab_log "installed again, agent first: $ids2 (first: $ids1)"
[[ $(inroot id -g farm) == "${ids1##*:}" ]] \
    || lab_fail "the users did not swap ids ($ids1, then $ids2): this test no longer shows a kept farm.yaml meeting a reused id"
[[ $(inroot stat -c '%U:%G %a' /etc/farm/farm.yaml) == "root:farm-coordinator 640" ]] \
    || lab_fail "the kept farm.yaml is $(inroot stat -c '%U:%G %a' /etc/farm/farm.yaml) after reinstall, not root:farm-coordinator 640"
# the build user tries to read it; the coordinator's user can
! inroot runuser -u farm -- cat /etc/farm/farm.yaml >/dev/null 2>&1 || lab_fail "farm (the build user) can read the kept farm.yaml"
inroot runuser -u farm-coordinator -- cat /etc/farm/farm.yaml >/dev/null || lab_fail "farm-coordinator cannot read the kept farm.yaml"
lab_log "the kept farm.yaml is root:farm-coordinator 640 again: farm cannot read it, farm-coordinator can"
lab_log "PASS"
