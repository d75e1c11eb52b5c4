# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash disable=SC2119,SC2120
# farm's test lab: real parts on this machine (docker-registry, farm-coordinator,
# farm-agent with buildah, qemu-user via binfmt_misc). Source it from an integration
# test and call lab_init first:
#
#   #!/usr/bin/env bash
#   set -euo pipefail
#   source "$(dirname "$0")/../lab/lib.sh"
#   lab_init
#   lab_start_farm                      # registry + coordinator + amd64-1/arm64-1/armv7-1
#   lab_example_context "$LAB/ctx"
#   digest=$(lab_farmctl submit -t "$REGISTRY/example:t1" "$LAB/ctx" | tail -n1)
#   ...
#
# Everything the lab starts is killed, and $LAB removed, when the test exits (set
# LAB_KEEP=1 to keep $LAB for a post-mortem). A test that sets its own EXIT trap must
# call lab_cleanup from it, or use lab_on_exit CMD instead.
#
# Environment read: FARM_SOURCE_DIR (default: this repo), FARM_BUILD_DIR (default
# $FARM_SOURCE_DIR/build), FARM_CACHE (default /var/cache/farm), FARM_BUSYBOX_DIR
# (default $FARM_CACHE/busybox), LAB_HEARTBEAT (default 500ms), LAB_KEEP,
# LAB_SKIP_BINFMT (lab_start_farm does not register qemu), LAB_LOG_LINES (default 60).

[[ -n ${__FARM_LAB_SH:-} ]] && return 0
__FARM_LAB_SH=1

: "${FARM_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${FARM_BUILD_DIR:=$FARM_SOURCE_DIR/build}"
: "${FARM_CACHE:=/var/cache/farm}"
: "${FARM_BUSYBOX_DIR:=$FARM_CACHE/busybox}"
export FARM_SOURCE_DIR FARM_BUILD_DIR FARM_CACHE FARM_BUSYBOX_DIR
# Debian's python3 (python3-jsonschema is installed for it), not a pyenv/venv one.
if [[ -z ${LAB_PYTHON:-} ]]; then
    if [[ -x /usr/bin/python3 ]]; then LAB_PYTHON=/usr/bin/python3; else LAB_PYTHON=python3; fi
fi
export LAB_PYTHON

# Debian packages the build, the unit tests and the lab need (tests/run.sh, quickstart).
LAB_DEPS=(build-essential cmake pkg-config libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
    libcurl4-openssl-dev libssl-dev libyaml-dev libjansson-dev libarchive-dev libcmocka-dev
    libsqlite3-dev libmicrohttpd-dev
    buildah docker-registry qemu-user-static skopeo golang-github-opencontainers-image-spec-dev
    python3 python3-jsonschema python3-cryptography binfmt-support iproute2 runc slirp4netns uidmap curl valgrind apache2-utils bc python3-zmq clang libclang-rt-14-dev systemd
    mmdebstrap systemd-container)

# python3-cryptography: sigstore_policy.py checks farm's signatures as containers/image does.
# crun: test_e2e_agent_check judges it on this host's cgroups; openssl (the command) makes
# test_e2e_registry_tls's certificates and checks test_sigstore's signatures; file reads
# test_packages' binaries; git lists the files test_tree_rules checks.
# iptables: test_e2e_sick_registry cuts one agent's user off the registry.
# jq: test_e2e_node_caches reads farmctl du's and prune's --format json.
# prometheus: test_e2e_web scrapes the farm with a real Prometheus, and promtool checks
# deploy/prometheus/; chromium: test_e2e_web loads the page headless.
# test_lab_deps fails when a command the scripts call comes from a package not in LAB_DEPS.
LAB_DEPS+=(crun file openssl git iptables jq prometheus chromium)

LAB=${LAB:-}
LAB_LAST_PID=
LAB_T0=${LAB_T0:-$SECONDS}
__lab_exit_hooks=()
__lab_cleaned=0
__lab_logs_dumped=0
__lab_owns_dir=0

# --- messages ---------------------------------------------------------------------------

lab_log() { printf '[lab %4ss] %s\n' "$((SECONDS - LAB_T0))" "$*" >&2; }

# lab_dump_logs [LINES]: the tail of every log in $LAB (registry, coordinator, agents...).
lab_dump_logs() {
    local n=${1:-${LAB_LOG_LINES:-60}} f
    [[ -n $LAB && -d $LAB ]] || return 0
    __lab_logs_dumped=1
    shopt -s nullglob
    for f in "$LAB"/*.log; do
        printf '\n----- %s (last %s lines) -----\n' "${f#"$LAB"/}" "$n" >&2
        tail -n "$n" "$f" >&2 || true
    done
    shopt -u nullglob
    printf -- '----- end of lab logs -----\n' >&2
}

# lab_fail MSG...: say what failed, dump the lab's logs, exit 1 (the EXIT trap cleans up).
lab_fail() {
    printf '\nLAB FAIL: %s\n' "$*" >&2
    lab_dump_logs
    exit 1
}

# --- setup: packages and the build ---------------------------------------------------

# lab_missing_deps [PKG...]: print the packages (default LAB_DEPS) that are not installed.
lab_missing_deps() {
    local p
    (($#)) || set -- "${LAB_DEPS[@]}"
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
            || echo "$p"
    done
}

# lab_install_deps [PKG...]: apt-get install what is missing of LAB_DEPS plus PKGs;
# runs apt only when something is missing. Non-interactive; needs root (or sudo).
lab_install_deps() {
    local -a missing sudo=()
    mapfile -t missing < <(lab_missing_deps "${LAB_DEPS[@]}" "$@")
    ((${#missing[@]})) || return 0
    if [[ $(id -u) != 0 ]]; then
        command -v sudo >/dev/null \
            || { echo "lab: missing packages ${missing[*]}; run as root or install them" >&2; return 1; }
        sudo=(sudo -n)
    fi
    echo "lab: installing ${missing[*]}" >&2
    # A mirror mid-sync may fail one index; the install below says if it mattered.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null \
        || echo "lab: WARNING: apt-get update reported errors" >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" </dev/null \
        || { echo "lab: apt-get install ${missing[*]} failed" >&2; return 1; }
    mapfile -t missing < <(lab_missing_deps "${LAB_DEPS[@]}" "$@")
    ((${#missing[@]} == 0)) || { echo "lab: still missing after install: ${missing[*]}" >&2; return 1; }
}

# lab_build: configure and build farm into $FARM_BUILD_DIR ($CMAKE_ARGS are passed to the
# configure step, e.g. CMAKE_ARGS="-DFARM_SANITIZE=ON").
lab_build() {
    local -a extra=()
    [[ -n ${CMAKE_ARGS:-} ]] && read -r -a extra <<<"$CMAKE_ARGS"
    cmake -S "$FARM_SOURCE_DIR" -B "$FARM_BUILD_DIR" "${extra[@]}" \
        && cmake --build "$FARM_BUILD_DIR" -j "$(nproc 2>/dev/null || echo 2)"
}

# --- lifecycle --------------------------------------------------------------------------

# lab_init [--no-binaries] [--dir DIR]: make $LAB (a fresh temp dir), install the cleanup
# trap, find the farm binaries ($FARMCTL $FARM_COORDINATOR_BIN $FARM_AGENT_BIN).
#   --no-binaries  don't require the binaries to exist
#   --dir DIR      use DIR as $LAB (created if needed) and never remove it (quickstart)
lab_init() {
    local need_bins=1 dir=""
    while (($#)); do
        case $1 in
            --no-binaries) need_bins=0 ;;
            --dir) dir=${2:?lab_init --dir DIR}; shift ;;
            *) echo "lab_init: unknown option $1" >&2; return 2 ;;
        esac
        shift
    done
    if [[ -n $dir ]]; then
        mkdir -p "$dir"
        LAB=$(cd "$dir" && pwd)
        __lab_owns_dir=0
        rm -rf "$LAB/pids"
    else
        LAB=$(mktemp -d "${TMPDIR:-/tmp}/farm-lab.XXXXXX")
        __lab_owns_dir=1
    fi
    export LAB
    mkdir -p "$LAB/pids"
    : >"$LAB/pids.list"
    : >"$LAB/ports"
    : >"$LAB/agents.list"
    trap 'lab_cleanup' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    export FARMCTL=$FARM_BUILD_DIR/farmctl
    export FARM_COORDINATOR_BIN=$FARM_BUILD_DIR/farm-coordinator
    export FARM_AGENT_BIN=$FARM_BUILD_DIR/farm-agent
    if (( need_bins )); then
        local b
        for b in "$FARMCTL" "$FARM_COORDINATOR_BIN" "$FARM_AGENT_BIN"; do
            [[ -x $b ]] || lab_fail "$b not found or not executable: build first" \
                "(cmake -S $FARM_SOURCE_DIR -B $FARM_BUILD_DIR && cmake --build $FARM_BUILD_DIR)" \
                "or set FARM_BUILD_DIR"
        done
    fi
    (( need_bins )) && __lab_reachable_agent
    lab_log "lab in $LAB (build dir $FARM_BUILD_DIR)"
}

# Sandboxed agents run as $LAB_AGENT_USER, and test_e2e_agent_check runs farm-agent as a
# uid of its own: they cannot run $FARM_AGENT_BIN in a checkout under a 0700 directory
# (root's home, any Debian 12 home). Then the lab runs a copy in $LAB/bin (0711) instead.
__lab_reachable_agent() {
    local nobody=(setpriv --reuid 65534 --regid 65534 --clear-groups)
    [[ $(id -u) == 0 ]] || return 0
    "${nobody[@]}" test -x "$FARM_AGENT_BIN" 2>/dev/null && return 0
    mkdir -p "$LAB/bin"
    chmod 0711 "$LAB" "$LAB/bin"
    cp "$FARM_AGENT_BIN" "$LAB/bin/farm-agent" && chmod 0755 "$LAB/bin/farm-agent" \
        || lab_fail "cannot copy $FARM_AGENT_BIN to $LAB/bin"
    "${nobody[@]}" test -x "$LAB/bin/farm-agent" 2>/dev/null \
        || lab_fail "other users cannot run $FARM_AGENT_BIN (a parent directory is closed to them)" \
            "nor its copy $LAB/bin/farm-agent: set TMPDIR to a directory they can reach, e.g. /tmp"
    lab_log "$FARM_AGENT_BIN is closed to other users (a parent directory is 0700):" \
        "the agents run a copy, $LAB/bin/farm-agent"
    export FARM_AGENT_BIN=$LAB/bin/farm-agent
}

# lab_on_exit CMD...: run CMD (one string, eval'd) at exit, before the lab's processes die.
lab_on_exit() { __lab_exit_hooks+=("$*"); }

# Fields of /proc/PID/stat after "(comm)": 1 state, 2 ppid, 3 pgrp, ... 20 starttime.
__lab_stat() {
    local pid=$1 field=$2 s
    s=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    s=${s##*) }
    awk -v f="$field" '{print $f}' <<<"$s"
}

# True while PID exists and is not a zombie.
__lab_alive() {
    local state
    state=$(__lab_stat "$1" 1) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

# True while PID is still the process the lab started (same start time: pids get reused).
__lab_same() {
    local pid=$1 start=${2:-}
    __lab_alive "$pid" || return 1
    [[ -z $start || $(__lab_stat "$pid" 20) == "$start" ]]
}

# Send SIG to PID's process group when PID leads its own group (processes are started
# with setsid, so builder children die with their agent), else to PID alone.
__lab_kill() {
    local sig=$1 pid=$2 pgid
    pgid=$(__lab_stat "$pid" 3) || return 0
    if [[ $pgid == "$pid" && $pgid != "$$" ]]; then
        kill -s "$sig" -- "-$pid" 2>/dev/null || true
    else
        kill -s "$sig" "$pid" 2>/dev/null || true
    fi
}

# Wait until PID is gone, up to TIMEOUT seconds (fractions allowed). 0 = gone.
__lab_wait_gone() {
    local pid=$1 timeout=${2:-10} i n
    n=$(awk -v t="$timeout" 'BEGIN{print int(t*10)}')
    for ((i = 0; i < n; i++)); do
        __lab_alive "$pid" || return 0
        sleep 0.1
    done
    ! __lab_alive "$pid"
}

# lab_kill_all: stop every process listed in $LAB/pids.list, newest first: SIGTERM to
# its process group, SIGKILL after 5 s. Skips pids that now belong to another process.
lab_kill_all() {
    local name pid start
    [[ -n $LAB && -s $LAB/pids.list ]] || return 0
    while read -r name pid start; do
        __lab_same "$pid" "$start" || continue
        __lab_kill TERM "$pid"
        __lab_kill CONT "$pid" # a SIGSTOPped process acts on TERM only once resumed
    done < <(tac "$LAB/pids.list")
    while read -r name pid start; do
        __lab_same "$pid" "$start" || continue
        if ! __lab_wait_gone "$pid" 5; then
            lab_log "$name (pid $pid) ignored SIGTERM; SIGKILL"
            __lab_kill KILL "$pid"
            __lab_wait_gone "$pid" 5 || lab_log "WARNING: $name (pid $pid) survived SIGKILL"
        fi
    done < <(tac "$LAB/pids.list")
}

# lab_cleanup [RC]: run lab_on_exit hooks, dump logs if RC (default $?) is non-zero, kill
# everything the lab started, remove $LAB (unless LAB_KEEP=1 or lab_init --dir).
# Idempotent; it is the EXIT trap that lab_init installs.
lab_cleanup() {
    local rc=${1:-$?}
    __lab_cleanup_inner "$rc"
    rc=$?
    # the EXIT trap keeps the script's status unless it exits itself
    (( __lab_sanitizer_failed )) && exit 1
    return "$rc"
}

__lab_sanitizer_failed=0
__lab_cleanup_inner() {
    local rc=${1:-$?} hook
    (( __lab_cleaned )) && return "$rc"
    __lab_cleaned=1
    set +e
    for hook in "${__lab_exit_hooks[@]}"; do eval "$hook"; done
    if (( rc != 0 && __lab_logs_dumped == 0 )); then
        printf '\nlab: exiting with status %s\n' "$rc" >&2
        lab_dump_logs
    fi
    [[ -n $LAB && -d $LAB ]] || return "$rc"
    lab_kill_all
    # farm built with -DFARM_SANITIZE=ON: a sanitizer report in any file the lab's
    # processes wrote (daemon logs, farmctl's captured stderr) fails the test
    # and so does the coordinator's scheduler self-check (it runs at every turn under -v)
    local pat='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|scheduler error: ' san
    san=$(find "$LAB" -maxdepth 1 -type f -size -64M -print0 | xargs -0 -r grep -lE "$pat" 2>/dev/null)
    if [[ -n $san ]]; then
        printf '\nlab: SANITIZER OR SCHEDULER REPORT in %s\n' "$(tr '\n' ' ' <<<"$san")" >&2
        xargs -r grep -hE -A30 "$pat" <<<"$san" 2>/dev/null | head -80 >&2
        __lab_sanitizer_failed=1
        rc=1
    fi
    if (( __lab_owns_dir == 0 )); then
        return "$rc"
    fi
    if [[ -n ${LAB_KEEP:-} ]]; then
        lab_log "LAB_KEEP set: leaving $LAB"
        return "$rc"
    fi
    # A builder killed mid-RUN must not leave a bind mount that rm would descend into.
    local mnt
    while read -r mnt; do
        umount -l "$mnt" 2>/dev/null
    done < <(awk -v lab="$LAB" 'index($5, lab) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    rm -rf --one-file-system "$LAB"
    return "$rc"
}

# --- processes --------------------------------------------------------------------------

# lab_spawn NAME LOGFILE CMD [ARGS...]: start CMD in the background in its own process
# group, stdout+stderr appended to LOGFILE, stdin from /dev/null. Sets LAB_LAST_PID and
# writes $LAB/pids/NAME.pid. NAME must be unique among running lab processes.
lab_spawn() {
    local name=$1 log=$2
    shift 2
    [[ -n $LAB ]] || { echo "lab_spawn: call lab_init first" >&2; return 1; }
    printf '\n===== %s: %s\n' "$(date -u +%FT%TZ)" "$*" >>"$log"
    if [[ $- == *m* ]]; then
        # Job control on: the background job already leads its own group.
        "$@" </dev/null >>"$log" 2>&1 &
    else
        # setsid execs in place (the child is not a group leader), so $! is CMD's pid.
        setsid "$@" </dev/null >>"$log" 2>&1 &
    fi
    LAB_LAST_PID=$!
    echo "$LAB_LAST_PID" >"$LAB/pids/$name.pid"
    echo "$name $LAB_LAST_PID $(__lab_stat "$LAB_LAST_PID" 20 || true)" >>"$LAB/pids.list"
    lab_log "started $name (pid $LAB_LAST_PID): $*"
}

# lab_pid NAME: print the pid of a process started by lab_spawn.
lab_pid() {
    [[ -s $LAB/pids/$1.pid ]] || { echo "lab_pid: no process named $1" >&2; return 1; }
    cat "$LAB/pids/$1.pid"
}

# lab_alive NAME: true while that lab process runs.
lab_alive() { local p; p=$(lab_pid "$1") && __lab_alive "$p"; }

# lab_signal NAME SIG: send SIG (e.g. STOP, CONT, KILL) to NAME's process group, no wait.
# STOP makes an agent silent without closing its socket: a lost node for the heartbeat.
lab_signal() { local p; p=$(lab_pid "$1") && __lab_kill "$2" "$p"; }

# lab_stop NAME [SIG] [TIMEOUT]: send SIG (default TERM) and wait up to TIMEOUT seconds
# (default 10) for the process to end; after a TERM that is ignored, SIGKILL.
lab_stop() {
    local name=$1 sig=${2:-TERM} timeout=${3:-10} p
    p=$(lab_pid "$name") || return 1
    __lab_alive "$p" || return 0
    __lab_kill "$sig" "$p"
    [[ $sig == STOP || $sig == SIGSTOP ]] && return 0
    __lab_kill CONT "$p"
    if ! __lab_wait_gone "$p" "$timeout"; then
        [[ $sig == KILL || $sig == SIGKILL ]] && lab_fail "$name (pid $p) survived SIGKILL"
        lab_log "$name (pid $p) still alive ${timeout}s after SIG$sig; SIGKILL"
        __lab_kill KILL "$p"
        __lab_wait_gone "$p" 5 || lab_fail "$name (pid $p) survived SIGKILL"
    fi
    lab_log "stopped $name (pid $p) with SIG$sig"
}

# lab_wait_until TIMEOUT WHAT CMD [ARGS...]: run CMD every 0.2 s until it succeeds;
# lab_fail "timed out after TIMEOUTs waiting for WHAT" otherwise.
lab_wait_until() {
    local timeout=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + timeout))
    until "$@"; do
        ((SECONDS < deadline)) || lab_fail "timed out after ${timeout}s waiting for $what"
        sleep 0.2
    done
}

# --- ports ------------------------------------------------------------------------------

# lab_free_port: print a free TCP port on 127.0.0.1 (never the same one twice in a lab).
lab_free_port() {
    local port i
    for ((i = 0; i < 50; i++)); do
        port=$("$LAB_PYTHON" -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()') || { echo "lab_free_port: python3 failed" >&2; return 1; }
        if [[ -z $LAB || ! -f $LAB/ports ]]; then
            echo "$port"
            return 0
        fi
        if ! grep -qx "$port" "$LAB/ports"; then
            echo "$port" >>"$LAB/ports"
            echo "$port"
            return 0
        fi
    done
    echo "lab_free_port: no fresh port after 50 tries" >&2
    return 1
}

# True when something listens on 127.0.0.1:PORT (or any address) over TCP.
lab_port_listening() {
    local port=$1
    if command -v ss >/dev/null; then
        [[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
    fi
}

# lab_port_owned PORT PID: true when PID itself listens on TCP PORT. lab_port_listening
# alone would also accept another process (another lab on this machine) that took a
# port lab_free_port found free. Without ss, whoever listens counts.
lab_port_owned() {
    local port=$1 pid=$2
    if command -v ss >/dev/null; then
        [[ $(ss -Hltnp "sport = :$port" 2>/dev/null) == *"pid=$pid,"* ]]
    else
        lab_port_listening "$port"
    fi
}

# --- registry ---------------------------------------------------------------------------

# lab_registry_start [EXTRA_CONFIG_YAML]: start /usr/bin/docker-registry (distribution
# 2.8) on a free 127.0.0.1 port (or $LAB_REGISTRY_PORT), storage in $LAB/registry/data,
# and wait until GET /v2/
# answers. EXTRA_CONFIG_YAML (a file) is appended to the config, e.g. an auth: section;
# /v2/ then answers 401, which still counts as up. Exports REGISTRY=127.0.0.1:PORT.
lab_registry_start() {
    local extra_conf=${1:-} port conf bin=/usr/bin/docker-registry try pid deadline code
    [[ -x $bin ]] || bin=$(command -v docker-registry) \
        || lab_fail "docker-registry not installed (apt-get install docker-registry)"
    mkdir -p "$LAB/registry/data"
    conf=$LAB/registry/config.yml
    # a port found free may be taken by another process before the registry binds it
    # (other labs run on this machine): then the registry exits, and a fresh port is tried
    for try in 1 2 3 4 5; do
        port=${LAB_REGISTRY_PORT:-}
        [[ -n $port ]] || port=$(lab_free_port)
        cat >"$conf" <<EOF
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $LAB/registry/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  headers:
    X-Content-Type-Options: [nosniff]
EOF
        [[ -n $extra_conf ]] && cat "$extra_conf" >>"$conf"
        lab_spawn registry "$LAB/registry.log" "$bin" serve "$conf"
        pid=$LAB_LAST_PID
        deadline=$((SECONDS + 30))
        while :; do
            if ! __lab_alive "$pid"; then
                if [[ -z ${LAB_REGISTRY_PORT:-} ]] && ((try < 5)) \
                    && grep -q "127.0.0.1:$port: bind: address already in use" "$LAB/registry.log"; then
                    lab_log "127.0.0.1:$port was taken before the registry bound it; another port"
                    continue 2
                fi
                lab_fail "docker-registry exited; see $LAB/registry.log"
            fi
            # it answers, and it is ours (not another process on a port taken meanwhile)
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/v2/" || true)
            [[ $code == 200 || $code == 401 ]] && lab_port_owned "$port" "$pid" && break 2
            ((SECONDS < deadline)) || lab_fail "docker-registry on 127.0.0.1:$port did not answer /v2/ within 30s"
            sleep 0.1
        done
    done
    export REGISTRY=127.0.0.1:$port
    lab_log "registry up at $REGISTRY"
}

# --- a skopeo that verifies sigstore signatures ------------------------------------------
# Debian 12's containers/image has sigstore verification patched out (every sigstore
# signature is refused with "Debian-local change: sigstore disabled"); Debian 13's has it.
# lab_skopeo_root bootstraps a trixie root holding its skopeo once (mmdebstrap from the
# Debian archive, cached in $FARM_CACHE/skopeo-root), unpacks it into $LAB/skopeo-root.
# lab_skopeo ARGS... runs that skopeo there, in a mount namespace of its own with $LAB
# bind-mounted at the same path (paths under $LAB mean the same inside) and the host's
# network (the lab's registry on 127.0.0.1).
lab_skopeo_root() {
    local mirror=http://deb.debian.org/debian cache=$FARM_CACHE/skopeo-root t0=$SECONDS
    local tarball=$FARM_CACHE/skopeo-root/trixie-skopeo.tar
    mkdir -p "$cache"
    if [[ ! -f $tarball ]]; then
        mmdebstrap --variant=apt --format=tar --include=skopeo trixie "$tarball.$$.part" \
            "$mirror" >"$LAB/mmdebstrap-skopeo.log" 2>&1 || {
            rm -f "$tarball.$$.part"
            tail -n 30 "$LAB/mmdebstrap-skopeo.log" >&2
            lab_fail "mmdebstrap of a Debian 13 root with skopeo failed"
        }
        mv "$tarball.$$.part" "$tarball"
        lab_log "bootstrapped $tarball in $((SECONDS - t0)) s"
    fi
    LAB_SKOPEO_ROOT=$LAB/skopeo-root
    mkdir -p "$LAB_SKOPEO_ROOT"
    tar -C "$LAB_SKOPEO_ROOT" -xf "$tarball" || lab_fail "could not unpack $tarball"
    mkdir -p "$LAB_SKOPEO_ROOT$LAB"
    lab_log "skopeo with sigstore: $(lab_skopeo --version)"
}
lab_skopeo() {
    [[ -n ${LAB_SKOPEO_ROOT:-} ]] || lab_fail "lab_skopeo before lab_skopeo_root"
    # shellcheck disable=SC2016
    unshare -m -- sh -c 'root=$1 lab=$2; shift 2
        mount --make-rprivate / && mount --bind "$lab" "$root$lab" &&
        mount -t proc proc "$root/proc" && exec chroot "$root" skopeo "$@"' \
        lab_skopeo "$LAB_SKOPEO_ROOT" "$LAB" "$@"
}

# --- qemu / binfmt_misc -----------------------------------------------------------------

__LAB_BINFMT=/proc/sys/fs/binfmt_misc
# Standard qemu magic/mask (as in Debian's qemu-user-static, /usr/lib/binfmt.d).
declare -A __LAB_QEMU_MAGIC=(
    [aarch64]='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
    [arm]='\x7f\x45\x4c\x46\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00'
)
__LAB_QEMU_MASK='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'

# Registered, enabled, with the F flag, and its interpreter exists.
__lab_binfmt_ok() {
    local f=$__LAB_BINFMT/qemu-$1 interp
    [[ -r $f ]] || return 1
    grep -qx enabled "$f" || return 1
    grep -Eq '^flags:.*F' "$f" || return 1
    interp=$(sed -n 's/^interpreter //p' "$f")
    [[ -n $interp && -x $interp ]]
}

__lab_binfmt_one() {
    local a=$1 f=$__LAB_BINFMT/qemu-$1 conf=/usr/lib/binfmt.d/qemu-$1.conf interp
    __lab_binfmt_ok "$a" && return 0
    if [[ -e $f ]]; then
        # Registered without F (or disabled): drop it so it can be registered with F.
        lab_log "binfmt qemu-$a present without the F flag or disabled; re-registering"
        echo -1 >"$f" 2>/dev/null || true
    fi
    # 1. Debian's way (binfmt-support): fix_binary yes in /usr/share/binfmts gives F.
    if command -v update-binfmts >/dev/null && [[ -e /usr/share/binfmts/qemu-$a ]]; then
        update-binfmts --enable "qemu-$a" >/dev/null 2>&1 || true
        __lab_binfmt_ok "$a" && return 0
        [[ -e $f ]] && { echo -1 >"$f" 2>/dev/null || true; }
    fi
    # 2. The package's binfmt.d line (flags OPF).
    if [[ -r $conf ]]; then
        grep -v '^#' "$conf" | head -n1 | tr -d '\n' >"$__LAB_BINFMT/register" 2>/dev/null || true
        __lab_binfmt_ok "$a" && return 0
        [[ -e $f ]] && { echo -1 >"$f" 2>/dev/null || true; }
    fi
    # 3. The standard strings with the static interpreter, flag F.
    interp=$(command -v "qemu-$a-static" || true)
    [[ -n $interp ]] || lab_fail "qemu-$a-static not found: apt-get install qemu-user-static"
    printf ':qemu-%s:M::%s:%s:%s:F' "$a" "${__LAB_QEMU_MAGIC[$a]}" "$__LAB_QEMU_MASK" "$interp" \
        >"$__LAB_BINFMT/register" 2>/dev/null \
        || lab_fail "cannot register qemu-$a in $__LAB_BINFMT/register (need root and a writable binfmt_misc)"
    __lab_binfmt_ok "$a" || lab_fail "qemu-$a registered but not enabled with the F flag: $(cat "$f" 2>&1)"
}

# Run the foreign busybox directly, then inside an empty chroot where no interpreter
# exists: only a binfmt entry with F (interpreter opened at registration) works there.
__lab_binfmt_check_run() {
    local dir=$1 want=$2 bb=$FARM_BUSYBOX_DIR/$1/busybox out root
    if [[ ! -x $bb ]]; then
        lab_log "WARNING: $bb missing (tests/lab/fetch-busybox.sh); binfmt checked by flags only"
        return 0
    fi
    out=$("$bb" uname -m 2>&1) || lab_fail "running $bb failed under binfmt_misc: $out"
    [[ $out == "$want" ]] || lab_fail "$bb says uname -m = '$out', expected '$want'"
    root=$(mktemp -d "${LAB:-/tmp}/binfmt-chroot.XXXXXX")
    cp "$bb" "$root/busybox"
    out=$(chroot "$root" /busybox uname -m 2>&1) \
        || { rm -rf "$root"; lab_fail "the $dir busybox does not run in a chroot: is the F flag effective? ($out)"; }
    rm -rf "$root"
    [[ $out == "$want" ]] || lab_fail "chroot: $dir busybox says uname -m = '$out', expected '$want'"
}

# lab_binfmt_register: make sure qemu-user-static runs aarch64 and arm binaries through
# binfmt_misc with the F (fix-binary) flag, as buildah's chroot RUN steps need. Mounts
# binfmt_misc if needed, registers what is missing, and proves it by running the cached
# arm64/armv7 busybox (directly and in a chroot). Fails loudly if any of it cannot be done.
lab_binfmt_register() {
    if [[ ! -e $__LAB_BINFMT/register ]]; then
        mount -t binfmt_misc binfmt_misc "$__LAB_BINFMT" 2>/dev/null \
            || lab_fail "binfmt_misc is not mounted at $__LAB_BINFMT and mounting it failed" \
                "(need root; in a container it needs CAP_SYS_ADMIN / --privileged)"
    fi
    [[ -w $__LAB_BINFMT/register ]] || lab_fail "$__LAB_BINFMT/register is not writable (need root)"
    if [[ -r $__LAB_BINFMT/status ]] && [[ $(cat "$__LAB_BINFMT/status") != enabled ]]; then
        echo 1 >"$__LAB_BINFMT/status" || lab_fail "binfmt_misc is disabled and cannot be enabled"
    fi
    __lab_binfmt_one aarch64
    __lab_binfmt_one arm
    __lab_binfmt_check_run arm64 aarch64
    __lab_binfmt_check_run armv7 armv7l
    lab_log "binfmt_misc: qemu-aarch64 and qemu-arm registered with F"
}

# --- the example ------------------------------------------------------------------------

# lab_example_context DIR: copy deploy/example's Dockerfile and .dockerignore into DIR and
# add DIR/busybox/{amd64,arm64,armv7}/busybox (fetched and cached on first use). The
# example's farm.yaml is left out (its endpoints are not the lab's): a test that wants one
# in the context copies $LAB_FARM_YAML there.
lab_example_context() {
    local dir=${1:?usage: lab_example_context DIR} a
    local src=$FARM_SOURCE_DIR/deploy/example
    [[ -f $src/Dockerfile ]] || lab_fail "$src/Dockerfile not found"
    if ! [[ -x $FARM_BUSYBOX_DIR/amd64/busybox && -x $FARM_BUSYBOX_DIR/arm64/busybox \
        && -x $FARM_BUSYBOX_DIR/armv7/busybox ]]; then
        "$FARM_SOURCE_DIR/tests/lab/fetch-busybox.sh" "$FARM_BUSYBOX_DIR" \
            || lab_fail "could not fetch busybox-static into $FARM_BUSYBOX_DIR"
    fi
    mkdir -p "$dir"
    cp "$src/Dockerfile" "$dir/Dockerfile"
    [[ -f $src/.dockerignore ]] && cp "$src/.dockerignore" "$dir/.dockerignore"
    for a in amd64 arm64 armv7; do
        mkdir -p "$dir/busybox/$a"
        cp "$FARM_BUSYBOX_DIR/$a/busybox" "$dir/busybox/$a/busybox"
    done
}

# --- the farm ---------------------------------------------------------------------------

# "a, b, c"
__lab_join() {
    local out="" x
    for x in "$@"; do out+=${out:+, }$x; done
    printf '%s' "$out"
}

# lab_farm_yaml OUT SPEC...: write a farm.yaml. Each SPEC is
#   PLATFORM=NODE[:SLOTS][,NODE[:SLOTS]...][;emulated=NODE[,NODE...]]
# e.g. "linux/amd64=amd64-1,amd64-2:2" "linux/arm/v7=armv7-1;emulated=amd64-1".
# Endpoints are fresh 127.0.0.1 ports (or $LAB_AGENTS_PORT/$LAB_CLIENTS_PORT); heartbeat $LAB_HEARTBEAT (500ms); state in
# $LAB/state; $REGISTRY (if set) is insecure and build.tags is $REGISTRY/example:latest.
# With no SPEC: amd64-1, arm64-1, armv7-1. Sets LAB_FARM_YAML=OUT (the default for
# lab_start_coordinator), which reads the endpoints back from the file.
# Keys (CURVE) unless LAB_KEYS=0: farmctl keygen makes $LAB/keys/{coordinator,NODE,lab}.key,
# farm.yaml enrols every node and the client "lab" (role $LAB_CLIENT_ROLE, default admin),
# and FARM_KEY / FARM_COORDINATOR_KEY are exported so farmctl uses them.
lab_keygen() {
    local name=$1
    mkdir -p "$LAB/keys"
    [[ -f $LAB/keys/$name.key ]] || "$FARMCTL" keygen --dir "$LAB/keys" "$name" >/dev/null \
        || lab_fail "farmctl keygen $name failed"
    sed -n 's/^public-key = //p' "$LAB/keys/$name.pub"
}

lab_farm_yaml() {
    local out=${1:?usage: lab_farm_yaml OUT SPEC...} spec plat rest native emulated n name slots
    shift
    (($# > 0)) || set -- "linux/amd64=amd64-1" "linux/arm64=arm64-1" "linux/arm/v7=armv7-1"
    local pa pc
    pa=${LAB_AGENTS_PORT:-}
    pc=${LAB_CLIENTS_PORT:-}
    [[ -n $pa ]] || pa=$(lab_free_port)
    [[ -n $pc ]] || pc=$(lab_free_port)
    local -A slots_of=()
    local -a node_order=() plats=()
    {
        echo "# written by tests/lab/lib.sh lab_farm_yaml"
        echo "coordinator:"
        echo "  agents: tcp://127.0.0.1:$pa"
        echo "  clients: tcp://127.0.0.1:$pc"
        echo "  heartbeat: ${LAB_HEARTBEAT:-500ms}"
        if [[ ${LAB_KEYS:-1} != 0 ]]; then
            echo "  public_key: \"$(lab_keygen coordinator)\""
            echo "  secret_key_file: $LAB/keys/coordinator.key"
        fi
        echo "  state_dir: $LAB/state"
        echo "platforms:"
        for spec in "$@"; do
            plat=${spec%%=*}
            rest=${spec#*=}
            native=${rest%%;*}
            emulated=
            [[ $rest == *";emulated="* ]] && emulated=${rest#*;emulated=}
            plats+=("$plat")
            local -a names=()
            for n in ${native//,/ } ${emulated//,/ }; do
                name=${n%%:*}
                slots=1
                [[ $n == *:* ]] && slots=${n#*:}
                if [[ -z ${slots_of[$name]:-} ]]; then
                    node_order+=("$name")
                    slots_of[$name]=$slots
                elif [[ $n == *:* ]]; then
                    slots_of[$name]=$slots
                fi
                [[ " ${native//,/ } " == *" $n "* ]] && names+=("$name")
            done
            if [[ -n $emulated ]]; then
                echo "  $plat:"
                echo "    native: [$(__lab_join "${names[@]}")]"
                local -a enames=()
                for n in ${emulated//,/ }; do enames+=("${n%%:*}"); done
                echo "    emulated: [$(__lab_join "${enames[@]}")]"
            else
                echo "  $plat: [$(__lab_join "${names[@]}")]"
            fi
        done
        echo "nodes:"
        for name in "${node_order[@]}"; do
            if [[ ${LAB_KEYS:-1} != 0 ]]; then
                echo "  $name: {slots: ${slots_of[$name]}, key: \"$(lab_keygen "$name")\"}"
            else
                echo "  $name: {slots: ${slots_of[$name]}}"
            fi
        done
        if [[ ${LAB_KEYS:-1} != 0 ]]; then
            echo "clients:"
            echo "  lab: {key: \"$(lab_keygen lab)\", role: ${LAB_CLIENT_ROLE:-admin}}"
        fi
        if [[ -n ${REGISTRY:-} ]]; then
            echo "registries:"
            echo "  \"$REGISTRY\": {insecure: true}"
        fi
        echo "build:"
        [[ -n ${REGISTRY:-} ]] && echo "  tags: [$REGISTRY/example:latest]"
        echo "  platforms: [$(__lab_join "${plats[@]}")]"
        echo "  dockerfile: Dockerfile"
    } >"$out"
    mkdir -p "$LAB/state"
    export LAB_FARM_YAML=$out
    if [[ ${LAB_KEYS:-1} != 0 ]]; then
        export FARM_KEY=$LAB/keys/lab.key FARM_COORDINATOR_KEY=$LAB/keys/coordinator.pub
    else
        unset FARM_KEY FARM_COORDINATOR_KEY
    fi
}

# Read "  KEY: VALUE" from the coordinator: section of a farm.yaml (our own files only).
__lab_yaml_coord() {
    awk -v key="$2" '
        /^[^ #]/ { in_c = ($0 ~ /^coordinator:/) ; next }
        in_c && $1 == key":" { print $2; exit }' "$1"
}

# lab_start_coordinator [FARMYAML] [EXTRA ARGS...]: start farm-coordinator --config
# FARMYAML -v (default $LAB_FARM_YAML), log $LAB/coordinator.log, wait until both its
# ports listen. Sets LAB_AGENTS_ENDPOINT/FARM_COORDINATOR from the file; pid in
# LAB_LAST_PID and $LAB/pids/coordinator.pid.
lab_start_coordinator() {
    local yaml=${1:-${LAB_FARM_YAML:-}} ep port pid
    [[ -n $yaml && -f $yaml ]] || lab_fail "lab_start_coordinator: no farm.yaml (${yaml:-unset})"
    (($# > 0)) && shift
    export LAB_FARM_YAML=$yaml
    ep=$(__lab_yaml_coord "$yaml" agents)
    [[ -n $ep ]] && export LAB_AGENTS_ENDPOINT=${ep//0.0.0.0/127.0.0.1}
    ep=$(__lab_yaml_coord "$yaml" clients)
    [[ -n $ep ]] && export FARM_COORDINATOR=${ep//0.0.0.0/127.0.0.1}
    lab_spawn coordinator "$LAB/coordinator.log" "$FARM_COORDINATOR_BIN" --config "$yaml" -v "$@"
    pid=$LAB_LAST_PID
    for ep in "$LAB_AGENTS_ENDPOINT" "$FARM_COORDINATOR"; do
        port=${ep##*:}
        [[ $port =~ ^[0-9]+$ ]] || continue
        local deadline=$((SECONDS + 15))
        # its own listener: another process may have taken a port lab_free_port found free
        until lab_port_owned "$port" "$pid"; do
            __lab_alive "$pid" || lab_fail "farm-coordinator exited at start; see $LAB/coordinator.log" \
                "(if it says the address is in use, another process took $ep first)"
            ((SECONDS < deadline)) || lab_fail "farm-coordinator did not listen on $ep within 15s"
            sleep 0.1
        done
    done
    LAB_LAST_PID=$pid
}

# lab_sandbox_user: make sure the unprivileged user sandboxed agents run as exists ($LAB_AGENT_USER,
# default farm, as the package makes it) with subordinate uid and gid ranges of 65536, and
# that it may open /dev/net/tun (Debian's default mode is 0666; some hosts ship 0600).
# Needs root to change anything; prints nothing when all is in place.
LAB_AGENT_USER=${LAB_AGENT_USER:-farm}
lab_sandbox_user() {
    local u=$LAB_AGENT_USER f start
    if ! id "$u" >/dev/null 2>&1; then
        [[ $(id -u) == 0 ]] || lab_fail "no user $u for the agents' sandbox (run as root once, or set LAB_AGENT_USER)"
        useradd --system --user-group --home-dir /var/lib/farm-agent --no-create-home \
            --shell /usr/sbin/nologin "$u" || lab_fail "useradd $u failed"
        lab_log "created the system user $u for sandboxed agents"
    fi
    for f in /etc/subuid /etc/subgid; do
        [[ -f $f ]] || touch "$f"
        grep -q "^$u:[0-9]*:[0-9]*$" "$f" && continue
        [[ $(id -u) == 0 ]] || lab_fail "$u has no range in $f (usermod --add-subuids/--add-subgids)"
        # the first 65536 ids above every range in the file, and above 100000
        start=$(awk -F: 'BEGIN { m = 100000 } NF == 3 && $2 + $3 > m { m = $2 + $3 } END { print m }' "$f")
        if [[ $f == /etc/subuid ]]; then
            usermod --add-subuids "$start-$((start + 65535))" "$u"
        else
            usermod --add-subgids "$start-$((start + 65535))" "$u"
        fi || lab_fail "usermod: cannot give $u a range in $f"
        lab_log "gave $u the ids $start-$((start + 65535)) in $f"
    done
    if ! setpriv --reuid "$u" --regid "$u" --init-groups sh -c 'exec 3<>/dev/net/tun' 2>/dev/null; then
        [[ $(id -u) == 0 ]] || lab_fail "$u cannot open /dev/net/tun (slirp4netns needs it)"
        chmod 0666 /dev/net/tun && lab_log "chmod 0666 /dev/net/tun (Debian's default mode) for slirp4netns"
    fi
}

# lab_start_agent NAME PLATFORMS [EXTRA ARGS...]: start farm-agent NAME for PLATFORMS
# (comma list, e.g. linux/arm64) against $LAB_AGENTS_ENDPOINT with its own --work-dir
# $LAB/agents/NAME/work and --builder-root $LAB/agents/NAME/buildah, --storage-driver vfs
# -v (LAB_AGENT_VERBOSE="" drops -v); log $LAB/agent-NAME.log (appended across restarts).
# RUN steps run in the agent's sandbox (--isolation oci, the default) with the agent as
# the unprivileged $LAB_AGENT_USER (lab_sandbox_user) owning $LAB/agents/NAME and its key;
# LAB_ISOLATION=chroot starts it as root with --isolation chroot instead (the old, unsafe
# way, for comparisons). EXTRA ARGS go last (e.g. --slots 2). Pid in LAB_LAST_PID and
# $LAB/pids/agent-NAME.pid; the lab name of the process is agent-NAME (lab_stop
# agent-NAME, lab_signal agent-NAME STOP).
lab_start_agent() {
    local name=${1:?usage: lab_start_agent NAME PLATFORMS [ARGS...]} platforms=${2:?platforms}
    shift 2
    [[ -n ${LAB_AGENTS_ENDPOINT:-} ]] || lab_fail "lab_start_agent: no coordinator (LAB_AGENTS_ENDPOINT unset)"
    local d=$LAB/agents/$name iso=${LAB_ISOLATION:-oci}
    local -a keys=() as=()
    mkdir -p "$d/work" "$d/buildah" "$d/home" "$d/tmp"
    # with keys: the node's own key pair (made by lab_farm_yaml) and the coordinator's key
    [[ -n ${FARM_COORDINATOR_KEY:-} && -f $LAB/keys/$name.key ]] \
        && keys=(--key "$LAB/keys/$name.key" --coordinator-key "$FARM_COORDINATOR_KEY")
    if [[ $iso != chroot && $(id -u) == 0 ]]; then
        lab_sandbox_user
        # the agent's user must reach its own dir, key and the coordinator's public key
        chmod 0711 "$LAB" "$LAB/agents"
        [[ -d $LAB/keys ]] && chmod 0711 "$LAB/keys"
        [[ -n ${FARM_COORDINATOR_KEY:-} && -f $FARM_COORDINATOR_KEY ]] && chmod 0644 "$FARM_COORDINATOR_KEY"
        [[ -f $LAB/keys/$name.key ]] && chown "$LAB_AGENT_USER:" "$LAB/keys/$name.key"
        chown -R "$LAB_AGENT_USER:" "$d"
        chmod 0700 "$d"
        setpriv --reuid "$LAB_AGENT_USER" --regid "$LAB_AGENT_USER" --init-groups test -w "$d/work" \
            || lab_fail "the agents' user $LAB_AGENT_USER cannot reach $d: a parent directory" \
                "is closed to it (e.g. /root is 0700); use a directory under /var/lib, /var/tmp or /tmp"
        setpriv --reuid "$LAB_AGENT_USER" --regid "$LAB_AGENT_USER" --init-groups test -x "$FARM_AGENT_BIN" \
            || lab_fail "the agents' user $LAB_AGENT_USER cannot run $FARM_AGENT_BIN: a parent" \
                "directory is closed to it; put the binary where it can reach it (e.g. under $LAB)"
        # in its own dir: the test's (a 0700 checkout's build dir) may be closed to it
        as=(setpriv --reuid "$LAB_AGENT_USER" --regid "$LAB_AGENT_USER" --init-groups
            env -C "$d" HOME="$d/home" TMPDIR="$d/tmp")
    elif [[ $(id -u) == 0 ]]; then
        # a key file and the agent's dirs must be its user's own (after a sandboxed run)
        [[ -f $LAB/keys/$name.key ]] && chown root: "$LAB/keys/$name.key"
        chown -R root: "$d"
    fi
    lab_spawn "agent-$name" "$LAB/agent-$name.log" "${as[@]}" "$FARM_AGENT_BIN" \
        --coordinator "$LAB_AGENTS_ENDPOINT" --name "$name" --platform "$platforms" "${keys[@]}" \
        --work-dir "$d/work" --builder buildah --builder-root "$d/buildah" \
        --storage-driver vfs --isolation "$iso" ${LAB_AGENT_VERBOSE--v} "$@"
    grep -qx "$name" "$LAB/agents.list" || echo "$name" >>"$LAB/agents.list"
}

# lab_farmctl SUBCOMMAND [ARGS...]: farmctl SUBCOMMAND --coordinator $FARM_COORDINATOR ARGS.
lab_farmctl() {
    local sub=${1:?usage: lab_farmctl SUBCOMMAND [ARGS...]}
    shift
    "$FARMCTL" "$sub" --coordinator "$FARM_COORDINATOR" "$@"
}

# Count how many of NAMES have a line in `farmctl nodes` with the word "ready" (and not
# "not ready"/"unready"); with no NAMES, count such lines.
__lab_nodes_ready() {
    local out name n=0 line lc
    local re_ready='(^|[^[:alnum:]_-])ready([^[:alnum:]_-]|$)'
    local re_not='(not[ _-]?|un)ready'
    out=$(timeout 10 "$FARMCTL" nodes --coordinator "$FARM_COORDINATOR" 2>/dev/null) || { echo 0; return 0; }
    if (($# == 0)); then
        while IFS= read -r line; do
            lc=${line,,}
            [[ $lc =~ $re_ready && ! $lc =~ $re_not ]] && n=$((n + 1))
        done <<<"$out"
        echo "$n"
        return 0
    fi
    for name in "$@"; do
        while IFS= read -r line; do
            [[ $line =~ (^|[^[:alnum:]_.-])"$name"([^[:alnum:]_.-]|$) ]] || continue
            lc=${line,,}
            if [[ $lc =~ $re_ready && ! $lc =~ $re_not ]]; then
                n=$((n + 1))
                break
            fi
        done <<<"$out"
    done
    echo "$n"
}

# lab_wait_nodes N [TIMEOUT] [NAME...]: poll `farmctl nodes` until N nodes are ready
# (default timeout 30 s). Counted among NAMEs, default the agents lab_start_agent started
# (a node counts when a line holds its name and the word "ready").
lab_wait_nodes() {
    local want=${1:?usage: lab_wait_nodes N [TIMEOUT] [NAME...]} timeout=${2:-30} got=0 deadline
    if (($# >= 2)); then shift 2; else shift $#; fi
    local -a names=("$@")
    if ((${#names[@]} == 0)) && [[ -s $LAB/agents.list ]]; then
        mapfile -t names <"$LAB/agents.list"
    fi
    deadline=$((SECONDS + timeout))
    while :; do
        got=$(__lab_nodes_ready "${names[@]}")
        ((got >= want)) && break
        if ((SECONDS >= deadline)); then
            lab_log "farmctl nodes said:"
            timeout 10 "$FARMCTL" nodes --coordinator "$FARM_COORDINATOR" >&2 || true
            lab_fail "only $got of $want nodes ready after ${timeout}s (${names[*]:-any})"
        fi
        sleep 0.3
    done
    lab_log "$got node(s) ready"
}

# lab_start_farm: the standard lab farm. Starts a registry (unless $REGISTRY is set),
# registers qemu (unless LAB_SKIP_BINFMT=1), writes $LAB/farm.yaml for
# linux/amd64:[amd64-1] linux/arm64:[arm64-1] linux/arm/v7:[armv7-1], starts the
# coordinator and the three agents, and waits for the three nodes to be ready.
# Exports REGISTRY, FARM_COORDINATOR, LAB_AGENTS_ENDPOINT, LAB_FARM_YAML.
lab_start_farm() {
    [[ -n ${REGISTRY:-} ]] || lab_registry_start
    [[ -n ${LAB_SKIP_BINFMT:-} ]] || lab_binfmt_register
    lab_farm_yaml "$LAB/farm.yaml" \
        "linux/amd64=amd64-1" "linux/arm64=arm64-1" "linux/arm/v7=armv7-1"
    lab_start_coordinator "$LAB/farm.yaml"
    lab_start_agent amd64-1 linux/amd64
    lab_start_agent arm64-1 linux/arm64
    lab_start_agent armv7-1 linux/arm/v7
    lab_wait_nodes 3 30 amd64-1 arm64-1 armv7-1
}

# --- judging results --------------------------------------------------------------------

# lab_index REF: print the raw manifest/index at REF (e.g. $REGISTRY/example:latest).
lab_index() {
    skopeo inspect --raw --tls-verify=false "docker://$1"
}

# lab_median: the median of the numbers on stdin (whitespace-separated), for benchmarks.
lab_median() {
    tr ' ' '\n' | sed '/^$/d' | sort -n \
        | awk '{a[NR] = $1} END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# lab_image_file REF ARCH PATH: print PATH from the last layer of ARCH's image (amd64,
# arm64, arm) in the index at REF (HOST:PORT/REPO:TAG on the lab's plain-HTTP registry).
lab_image_file() {
    "$LAB_PYTHON" - "$1" "$2" "$3" <<'PY'
import io, json, sys, tarfile, urllib.request
ref, arch, path = sys.argv[1:]
host, rest = ref.split("/", 1)
repo, tag = rest.rsplit(":", 1)
def get(p, accept=None):
    req = urllib.request.Request(f"http://{host}/v2/{repo}/{p}")
    if accept:
        req.add_header("Accept", accept)
    return urllib.request.urlopen(req).read()
idx = json.loads(get(f"manifests/{tag}", "application/vnd.oci.image.index.v1+json"))
child = [m for m in idx["manifests"] if m["platform"]["architecture"] == arch][0]
man = json.loads(get(f"manifests/{child['digest']}", child["mediaType"]))
blob = get(f"blobs/{man['layers'][-1]['digest']}")
with tarfile.open(fileobj=io.BytesIO(blob)) as t:
    sys.stdout.write(t.extractfile(path.lstrip("/")).read().decode())
PY
}
