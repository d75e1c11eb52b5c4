#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Cache-aware scheduling on real parts: two nodes of one platform (n1 first in farm.yaml,
# so least-loaded-first alone would pick it whenever both are idle).
# - the first build of a repository goes to n2 (the only node up); once n1 is up too,
#   every further build of that repository goes to n2, the node that built it, and farmctl
#   (progress line, metadata file "warm": true, farmctl nodes "(warm)") says so;
# - another repository is not warm on n2: it goes to n1, "warm": false;
# - while its warm node is busy, a build waits for it at most coordinator.cache_wait (3s)
#   and then goes to the idle node, long before the warm node is free;
# - with n2 stopped, the next build of the repository goes to n1 promptly;
# - after a coordinator restart, a repository still goes to the node that built it.
# (The agents' cache hit counts are not judged here: that is the agents' part.)
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=n1,n2"
sed -i 's/^  heartbeat: .*/&\n  cache_wait: 3s/' "$LAB/farm.yaml"
"$FARMCTL" validate "$LAB/farm.yaml" || lab_fail "the lab's farm.yaml does not validate"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent n2 linux/amd64
lab_wait_nodes 1 30 n2
lab_example_context "$LAB/ctx"
PY=${LAB_PYTHON:-/usr/bin/python3}
app=$REGISTRY/team/warm

# meta FILE KEY: the linux/amd64 entry's KEY in a metadata file (json: true/false)
meta() {
    "$PY" -c 'import json,sys; v=json.load(open(sys.argv[1]))["farm.platforms"]["linux/amd64"][sys.argv[2]]; print(json.dumps(v))' "$1" "$2"
}

# submit N REPO [CONTEXT]: one linux/amd64 build; output in $LAB/N.{out,err}, metadata
# in $LAB/N.json
submit() {
    local n=$1 repo=$2 ctx=${3:-$LAB/ctx}
    lab_farmctl submit -t "$repo:$n" --platform linux/amd64 --progress plain \
        --metadata-file "$LAB/$n.json" "$ctx" >"$LAB/$n.out" 2>"$LAB/$n.err" \
        || { cat "$LAB/$n.err" >&2; lab_fail "build $n of $repo failed"; }
    cat "$LAB/$n.err" >&2
}

# expect N NODE WARM: build N ran on NODE (progress lines and metadata), warm true/false
expect() {
    local n=$1 node=$2 warm=$3 got
    grep -q "^\[linux/amd64 $node\] dispatched: attempt 1 on $node" "$LAB/$n.err" \
        || lab_fail "build $n was not dispatched to $node: $(grep dispatched "$LAB/$n.err")"
    got=$(meta "$LAB/$n.json" node)
    [[ $got == "\"$node\"" ]] || lab_fail "build $n: metadata names node $got, not $node"
    got=$(meta "$LAB/$n.json" warm)
    [[ $got == "$warm" ]] || lab_fail "build $n: metadata says warm=$got, not $warm"
    if [[ $warm == true ]]; then
        grep -q "dispatched: attempt 1 on $node (warm" "$LAB/$n.err" \
            || lab_fail "build $n: the progress line does not say it was placed warm"
    else
        ! grep -q "dispatched: .*(warm" "$LAB/$n.err" || lab_fail "build $n was said to be warm"
    fi
    # the agents may not count cache hits yet: only the keys' presence is judged
    meta "$LAB/$n.json" cache_hits | grep -Eq '^[0-9]+$' || lab_fail "build $n: no cache_hits"
    meta "$LAB/$n.json" steps | grep -Eq '^[0-9]+$' || lab_fail "build $n: no steps"
}

# 1: only n2 is up; it builds the repository (nothing was warm)
submit 1 "$app"
expect 1 n2 false

lab_start_agent n1 linux/amd64
lab_wait_nodes 2 30 n1 n2
lab_farmctl nodes >"$LAB/nodes"
cat "$LAB/nodes" >&2
grep -Eq '^NAME +PLATFORMS +STATE +SLOTS +CACHE +HITS +VERSION +JOBS$' "$LAB/nodes" \
    || lab_fail "farmctl nodes has no CACHE, HITS and VERSION columns"
# VERSION: what the agent said in its HELLO, the version CMakeLists.txt gives the build
version=$(sed -n 's/^project(farm VERSION \([0-9.]*\).*/\1/p' "$FARM_SOURCE_DIR/CMakeLists.txt")
[[ -n $version ]] || lab_fail "no project version in CMakeLists.txt"
grep -Eq "^n2 +linux/amd64 +ready +0/1 +[0-9.]+[KMGTP]? +[0-9]+ +${version//./\\.} +-\$" "$LAB/nodes" \
    || lab_fail "farmctl nodes does not show n2's cache size, hits and version $version"

# 2, 3: both nodes idle, n1 first in farm.yaml; the builds go to n2, which built it
submit 2 "$app"
expect 2 n2 true
submit 3 "$app"
expect 3 n2 true

# another repository is not warm on n2: least loaded first, n1
submit 4 "$REGISTRY/team/other"
expect 4 n1 false

# 5: the same repository, a slow step (the key is repository, platform and Dockerfile
# path, not the context): while it runs, farmctl nodes marks the job (warm) on n2
mkdir -p "$LAB/slow"
cp -a "$LAB/ctx/." "$LAB/slow/"
echo 'RUN echo "farm-test: slow step" && sleep 5' >>"$LAB/slow/Dockerfile"
submit 5 "$app" "$LAB/slow" &
submit_pid=$!
# (looked for as long as the build runs, not a fixed 30 s: on a loaded machine the slow
# step may start later than that)
warm_seen=0
deadline=$((SECONDS + 300))
while kill -0 "$submit_pid" 2>/dev/null && ((SECONDS < deadline)); do
    if lab_farmctl nodes 2>/dev/null | grep -Eq '^n2 .* b[0-9]+-[0-9a-f]+\.1\(warm\)$'; then
        warm_seen=1
        break
    fi
    sleep 0.2
done
wait "$submit_pid" || lab_fail "build 5 failed"
((warm_seen)) || lab_fail "farmctl nodes never showed build 5's job as (warm) on n2"
expect 5 n2 true

# 6, 7: the other repository is warm on n1; 6 keeps n1 busy for a long step, 7 waits for
# n1 up to cache_wait and then goes to the idle n2, finishing while 6 still runs
sed -i 's/sleep 5$/sleep 25/' "$LAB/slow/Dockerfile"
submit 6 "$REGISTRY/team/other" "$LAB/slow" &
submit_pid=$!
lab_wait_until 60 "build 6 to run on n1" bash -c \
    '"$FARMCTL" nodes --coordinator "$FARM_COORDINATOR" | grep -Eq "^n1 .* 1/1 .*\(warm\)$"'
t0=$SECONDS
submit 7 "$REGISTRY/team/other"
elapsed=$((SECONDS - t0))
expect 7 n2 false
kill -0 "$submit_pid" 2>/dev/null || lab_fail "build 7 was not placed before n1 was free again"
((elapsed >= 3)) || lab_fail "build 7 did not wait for its warm node (${elapsed}s)"
lab_log "build 7 waited for n1 and built on n2 in ${elapsed}s"
wait "$submit_pid" || lab_fail "build 6 failed"
expect 6 n1 true

# 8: n2 is gone; the repository goes to n1 at once (no wait for a node that is not alive)
lab_stop agent-n2
t0=$SECONDS
submit 8 "$app"
elapsed=$((SECONDS - t0))
grep -q "^\[linux/amd64 n1\] dispatched: attempt [12] on n1" "$LAB/8.err" \
    || lab_fail "build 8 was not dispatched to n1"
[[ $(meta "$LAB/8.json" node) == '"n1"' ]] || lab_fail "build 8 did not come from n1"
[[ $(meta "$LAB/8.json" warm) == false ]] || lab_fail "build 8 on n1 was said to be warm"
((elapsed < 30)) || lab_fail "build 8 took ${elapsed}s with n2 stopped"
lab_log "build 8 on n1 took ${elapsed}s"

# 9, 10: which node holds which cache outlives a coordinator restart (STATE_DIR/warm.json,
# written at most 5 s after a change and at shutdown): a repository built only on n2
# goes back to n2 after the restart, though n1 is first in farm.yaml and as idle
lab_start_agent n2 linux/amd64
lab_wait_nodes 2 60 n1 n2
lab_stop agent-n1
# (until the coordinator has seen n1 go, it may still send n1 the job)
n1_gone() { [[ $(__lab_nodes_ready n1) == 0 ]]; }
lab_wait_until 60 "the coordinator to see n1 gone" n1_gone
submit 9 "$REGISTRY/team/restart"
expect 9 n2 false
lab_stop coordinator
[[ -s $LAB/state/warm.json ]] || lab_fail "the coordinator left no state/warm.json at shutdown"
# a temp file a crash between write and rename would leave: removed at the next start
echo partial >"$LAB/state/warm.json.new-AbC123"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent n1 linux/amd64
lab_wait_nodes 2 60 n1 n2
# (the log is appended to: the restored line is the new coordinator's)
grep -q "warm placement: [0-9]* repositories' cache nodes restored from" "$LAB/coordinator.log" \
    || lab_fail "the restarted coordinator did not restore warm placement"
[[ ! -e $LAB/state/warm.json.new-AbC123 ]] || lab_fail "the restarted coordinator left a crashed save's temp file"
submit 10 "$REGISTRY/team/restart"
expect 10 n2 true
lab_log "PASS"
