#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# farm on one machine, end to end: install what is missing, build, register qemu, start
# a registry, a coordinator and three agents (amd64-1, arm64-1, armv7-1), build
# deploy/example for linux/amd64, linux/arm64 and linux/arm/v7 with farmctl, and show the
# image index that was pushed. Then stop everything it started, unless --keep.
#
# usage: deploy/quickstart.sh [--keep] [--state-dir DIR] [--no-install] [--no-build]
#        deploy/quickstart.sh --stop [--state-dir DIR]
#   --keep        leave the farm running (stop it later with --stop)
#   --stop        stop a farm left running by --keep (by the pid files in the state dir)
#   --state-dir   default /var/lib/farm-quickstart for root, else
#                 ${XDG_STATE_HOME:-~/.local/state}/farm-quickstart, or
#                 /tmp/farm-quickstart when there is no usable home
#   --no-install  don't apt-get install missing packages
#   --no-build    use the binaries already in $FARM_BUILD_DIR (default build/)
# Needs root for apt-get, binfmt_misc and the agents' user: the agents run as the
# unprivileged system user farm (created if missing, with subordinate uid/gid ranges),
# and RUN steps run in their sandbox (see README, "What farm defends against").
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
export FARM_SOURCE_DIR=$repo
: "${FARM_BUILD_DIR:=$repo/build}"
export FARM_BUILD_DIR

keep=0 stop=0 install=1 build=1 state=""
while (($#)); do
    case $1 in
        --keep) keep=1 ;;
        --stop) stop=1 ;;
        --state-dir) state=${2:?--state-dir DIR}; shift ;;
        --state-dir=*) state=${1#*=} ;;
        --no-install) install=0 ;;
        --no-build) build=0 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "quickstart: unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if [[ -z $state ]]; then
    if [[ $(id -u) == 0 ]]; then
        # the agents run as the unprivileged farm user, which must reach their dirs
        # (root's home is closed to it)
        state=/var/lib/farm-quickstart
    elif [[ -n ${HOME:-} && -d $HOME && -w $HOME ]]; then
        state=${XDG_STATE_HOME:-$HOME/.local/state}/farm-quickstart
    else
        state=/tmp/farm-quickstart
    fi
fi

# shellcheck source=../tests/lab/lib.sh
source "$repo/tests/lab/lib.sh"

say() { printf '\n==> %s\n' "$*"; }

# Stop what a previous --keep run left in STATE (pids checked against their start times).
stop_farm() {
    if [[ ! -s $state/pids.list ]]; then
        echo "quickstart: nothing to stop in $state"
        return 0
    fi
    LAB=$state
    lab_kill_all
    : >"$state/pids.list"
    rm -rf "$state/pids"
    echo "quickstart: stopped the farm in $state"
}

if ((stop)); then
    stop_farm
    exit 0
fi

if [[ -s $state/pids.list ]]; then
    say "stopping the farm a previous --keep run left in $state"
    stop_farm
fi

if ((install)); then
    say "packages"
    lab_install_deps
fi
say "busybox-static for amd64, arm64, armhf (the example's base)"
"$repo/tests/lab/fetch-busybox.sh" "$FARM_BUSYBOX_DIR"
if ((build)); then
    say "building farm in $FARM_BUILD_DIR"
    lab_build
fi

lab_init --dir "$state"
# On success with --keep the farm stays up; on any failure everything is stopped.
quickstart_exit() {
    local rc=$?
    if ((keep && rc == 0)); then
        return 0
    fi
    lab_cleanup "$rc"
    : >"$state/pids.list"
    return "$rc"
}
trap quickstart_exit EXIT

say "qemu-user in binfmt_misc (F flag) for the arm RUN steps"
lab_binfmt_register

say "registry"
if ! lab_port_listening 5000; then export LAB_REGISTRY_PORT=5000; fi
lab_registry_start
unset LAB_REGISTRY_PORT

say "coordinator and agents"
if ! lab_port_listening 7700 && ! lab_port_listening 7701; then
    export LAB_AGENTS_PORT=7700 LAB_CLIENTS_PORT=7701
fi
# one machine: no keys, loopback endpoints only (farm.yaml for a fleet uses keys)
LAB_KEYS=0 LAB_HEARTBEAT=1s lab_farm_yaml "$state/farm.yaml" \
    "linux/amd64=amd64-1" "linux/arm64=arm64-1" "linux/arm/v7=armv7-1"
lab_start_coordinator "$state/farm.yaml"
export LAB_AGENT_VERBOSE=""   # the build's own output, without the agents' debug lines
lab_start_agent amd64-1 linux/amd64
lab_start_agent arm64-1 linux/arm64
lab_start_agent armv7-1 linux/arm/v7
lab_wait_nodes 3 30 amd64-1 arm64-1 armv7-1
"$FARMCTL" nodes --coordinator "$FARM_COORDINATOR" || true

say "the example's build context"
ctx=$state/example
rm -rf "$ctx"
lab_example_context "$ctx"
cp "$state/farm.yaml" "$ctx/farm.yaml"
ref=$REGISTRY/example:latest

say "farmctl submit -t $ref $ctx"
t0=$SECONDS
lab_farmctl submit --farm "$state/farm.yaml" --progress plain \
    -t "$ref" --platform linux/amd64,linux/arm64,linux/arm/v7 "$ctx" \
    | tee "$state/submit.out" || lab_fail "farmctl submit failed"
digest=$(tail -n1 "$state/submit.out")
echo "index digest: $digest ($((SECONDS - t0)) s)"

say "the image index at $ref"
index=$(lab_index "$ref") || lab_fail "skopeo could not read $ref"
"$LAB_PYTHON" -m json.tool <<<"$index"
say "what a client pulling $ref gets on each platform (skopeo --override-arch)"
for p in amd64 arm64 arm/v7; do
    arch=${p%%/*} variant=""
    [[ $p == */* ]] && variant=${p#*/}
    args=(--override-os linux --override-arch "$arch")
    [[ -n $variant ]] && args+=(--override-variant "$variant")
    printf 'linux/%-7s -> ' "$p"
    skopeo inspect --tls-verify=false "${args[@]}" \
        --format '{{.Os}}/{{.Architecture}} image, layers {{.Layers}}' "docker://$ref" \
        || echo "(skopeo could not pick a child for linux/$p)"
done

if ((keep)); then
    cat <<EOF

The farm is still running (state, logs and pid files in $state):
  registry     http://$REGISTRY
  coordinator  agents $LAB_AGENTS_ENDPOINT, clients $FARM_COORDINATOR
  try          cd $ctx && $FARMCTL submit --farm farm.yaml .
               $FARMCTL nodes --coordinator $FARM_COORDINATOR
  stop it      $repo/deploy/quickstart.sh --stop${state:+ --state-dir $state}
EOF
else
    say "stopping the farm (use --keep to leave it running)"
fi
