#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The coordinator SIGKILLed at each point of a build's life, and started again on its
# state_dir; every time the build ends with exactly one index under its tag, the one its
# children make, and its farmctl submit, left running, exits 0 with that digest:
# 1. uploading: farmctl is sending a 192 MiB context (stopped there, so the upload cannot
#    end first); it sees the connection drop, offers the context again once the
#    coordinator is back, and the build goes on from there;
# 2. running, three times at different moments of an 8 s RUN step: the agent's HELLO
#    hands the attempt over; the job starts once on the node (no build second spent again);
# 3. stitching: every platform is pushed and the index push is under way (the
#    coordinator's own connections to the registry are cut with iptables, so it hangs
#    there); the restarted coordinator pushes the same index, once.
# Said for each: the time from the restart to the index.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
[[ $(id -u) == 0 ]] || lab_fail "this test cuts the coordinator off the registry with iptables: run it as root"
command -v iptables >/dev/null || lab_fail "iptables not found (apt-get install iptables)"
command -v pgrep >/dev/null || lab_fail "pgrep is not installed"
export LAB_SKIP_BINFMT=1
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=x86-k"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent x86-k linux/amd64
lab_wait_nodes 1 30 x86-k
clog=$LAB/coordinator.log
alog=$LAB/agent-x86-k.log
port=${REGISTRY##*:}

# submit NAME CTX [ARGS...]: farmctl submit in the background, to team/kill:NAME
submit() {
    local name=$1 ctx=$2
    shift 2
    "$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$REGISTRY/team/kill:$name" \
        --platform linux/amd64 --progress plain "$@" "$ctx" >"$LAB/$name.out" 2>"$LAB/$name.err" &
    echo $! >"$LAB/$name.pid"
}

build_id() { grep -ho 'build b[0-9]*-[0-9a-f]* accepted' "$LAB/$1.err" | head -1 | cut -d' ' -f2; }

restart() {
    lab_stop coordinator KILL
    sleep 1
    lab_start_coordinator "$LAB/farm.yaml"
    t_start=$(date +%s%N)
}

# check NAME: farmctl exited 0 with the index digest, which the tag names and which the
# coordinator pushed once; sets ms: the time from the last restart to the index
check() {
    local name=$1 pid st=0 bid d got n
    pid=$(cat "$LAB/$name.pid")
    wait "$pid" || st=$?   # bounded by the ctest timeout; farmctl gives up by itself
    ((st == 0)) || { cat "$LAB/$name.err" >&2; lab_fail "farmctl submit ($name) exited $st, not 0"; }
    bid=$(build_id "$name")
    [[ -n $bid ]] || lab_fail "farmctl submit ($name) named no build"
    d=$(tail -1 "$LAB/$name.out")
    n=$(grep -c "build=$bid pushed index $d" "$clog" || true)
    ((n == 1)) || lab_fail "build $bid ($name) logged its index $d pushed $n times, not once"
    got=sha256:$(lab_index "$REGISTRY/team/kill:$name" | sha256sum | cut -d' ' -f1)
    [[ $got == "$d" ]] || lab_fail "team/kill:$name names $got, not build $bid's index $d"
    n=$(grep -c "PUT /v2/team/kill/manifests/$name " "$LAB/registry.log" || true)
    ((n == 1)) || lab_fail "the index of $name was PUT under its tag $n times, not once"
    ms=$((($(date +%s%N) - t_start) / 1000000))
}

# --- 1. uploading
ctx=$LAB/ctx-big
mkdir -p "$ctx"
printf 'FROM scratch\nCOPY small /small\n' >"$ctx/Dockerfile"
echo small >"$ctx/small"
head -c $((192 << 20)) /dev/urandom >"$ctx/big"   # in the context, not in the image
submit upload "$ctx"
lab_wait_until 60 "the upload to start" grep -q 'uploading' "$LAB/upload.err"
kill -STOP "$(cat "$LAB/upload.pid")"
restart
kill -CONT "$(cat "$LAB/upload.pid")"
check upload
grep -q 'lost the coordinator at .* during the upload' "$LAB/upload.err" \
    || lab_fail "farmctl did not say it lost the coordinator during the upload"
lab_log "uploading: killed mid-upload; one index, ${ms} ms after the restart"
rm -f "$ctx/big"

# --- 2. running, three times
ctx=$LAB/ctx-run
lab_example_context "$ctx"
dur=8.$$
cat >>"$ctx/Dockerfile" <<DEOF
ARG ROUND
RUN echo "farm-test: round \$ROUND" && sleep $dur
DEOF
for round in 1 2 3; do
    submit "run$round" "$ctx" --build-arg "ROUND=$round"
    lab_wait_until 120 "the RUN step (round $round)" bash -c "pgrep -f 'sleep $dur\$' >/dev/null"
    sleep $((round * 2 - 1))   # 1, 3 and 5 s into the step
    restart
    check "run$round"
    bid=$(build_id "run$round")
    n=$(grep -c "job=$bid.1 attempt=[0-9]* platform=linux/amd64 started" "$alog" || true)
    ((n == 1)) || lab_fail "build $bid's job started $n times on the node"
    grep -q "job=$bid.1 attempt=1 adopted" "$clog" || lab_fail "build $bid's attempt was not adopted"
    lab_log "running (round $round, killed $((round * 2 - 1)) s into an 8 s step): adopted, started once; index ${ms} ms after the restart"
done

# --- 3. stitching
cut=(OUTPUT -p tcp -d 127.0.0.1 --dport "$port" -m owner --uid-owner 0 -j DROP)
ctx=$LAB/ctx-stitch
mkdir -p "$ctx"
printf 'FROM scratch\nCOPY f /f\n' >"$ctx/Dockerfile"
echo stitch >"$ctx/f"
submit stitch "$ctx"
lab_wait_until 60 "the build to be accepted" grep -q 'accepted' "$LAB/stitch.err"
iptables -I "${cut[@]}" || lab_fail "iptables cannot add the rule that cuts root off port $port"
lab_on_exit "iptables -D ${cut[*]} 2>/dev/null"
bid=$(build_id stitch)
lab_wait_until 120 "build $bid to be stitching" grep -q "build=$bid verifying" "$clog"
sleep 1
coord=$(lab_pid coordinator)
helper=$(pgrep -P "$coord" -f stitch | head -1 || true)
[[ -n $helper ]] || lab_fail "no index-push helper runs under the coordinator (pid $coord)"
restart
kill -KILL "$helper" 2>/dev/null || true   # it hung on the cut connection; it goes with it
iptables -D "${cut[@]}"
check stitch
lab_log "stitching: killed mid index push; the same index pushed once, ${ms} ms after the restart"
lab_log "PASS"
