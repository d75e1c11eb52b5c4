#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A sick node stops taking jobs: agent amd64-1's builder storage is a small filesystem
# the test fills. A build sent there fails with "No space left on device", amd64-1 checks
# itself, says it is unhealthy with the cause and takes no job; the build runs once more
# on amd64-2 and pushes one index. The test frees the space: amd64-1 is ready again within
# its re-check period and builds the next job. A Dockerfile's own failure (RUN false) is
# not retried, is named in the error, and leaves the node ready. amd64-3 is unhealthy from
# its start (--min-free more than any disk has): it says so, runs, and takes no job.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
[[ $(id -u) == 0 ]] || lab_fail "this test mounts a small filesystem (tmpfs): run it as root"
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=amd64-1,amd64-2,amd64-3"
lab_start_coordinator "$LAB/farm.yaml"

# amd64-1's builder storage: a 256 MiB tmpfs (its work dir and TMPDIR stay on the disk)
small=$LAB/agents/amd64-1/buildah
mkdir -p "$small"
mount -t tmpfs -o size=256m farm-sick "$small" || lab_fail "cannot mount a tmpfs at $small"
lab_on_exit "umount -l '$small'"
lab_start_agent amd64-1 linux/amd64 --min-free 48M
lab_start_agent amd64-2 linux/amd64
lab_start_agent amd64-3 linux/amd64 --min-free 1000T
lab_wait_nodes 2 30 amd64-1 amd64-2
lab_wait_until 30 "amd64-3 to be listed unhealthy" bash -c \
    '"$FARMCTL" nodes --coordinator "$FARM_COORDINATOR" | grep -Eq "^amd64-3 .* unhealthy "'
grep -q 'this node is unhealthy: disk (work dir): .*under --min-free' "$LAB/agent-amd64-3.log" \
    || lab_fail "amd64-3 did not say at start that it is unhealthy and why"

lab_example_context "$LAB/ctx"
submit() { # NAME TAG: farmctl submit of $LAB/NAME to TAG, output in $LAB/NAME.{out,err}
    local rc=0
    lab_farmctl submit -t "$2" --platform linux/amd64 --progress plain "$LAB/$1" \
        >"$LAB/$1.out" 2>"$LAB/$1.err" || rc=$?
    return "$rc"
}
pushes() { grep -c ' pushed index ' "$LAB/coordinator.log" || true; }

# --- the disk fills ---------------------------------------------------------------------
# 24 MiB left, under --min-free: the build starts, and a step that writes 100 MiB runs out
avail=$(df --output=avail -B1 "$small" | tail -1)
fallocate -l "$((avail - 24 * 1048576))" "$small/filler" || lab_fail "cannot fill $small"
lab_log "filled $small: $(df --output=avail -h "$small" | tail -1 | tr -d ' ') left"
echo 'RUN dd if=/dev/zero of=/fill bs=1M count=100 && rm /fill' >>"$LAB/ctx/Dockerfile"

# both nodes idle: farm.yaml's order sends the build to amd64-1 first
submit ctx "$REGISTRY/team/sick:1" || { cat "$LAB/ctx.err" >&2; lab_fail "the build failed instead of running again on amd64-2"; }
cat "$LAB/ctx.err" >&2
grep -Eq '^sha256:[0-9a-f]{64}$' "$LAB/ctx.out" || lab_fail "no digest from the build"
grep -q 'attempt 1 on amd64-1' "$LAB/ctx.err" || lab_fail "the build did not go to amd64-1 first"
grep -q 'No space left on device on node amd64-1' "$LAB/ctx.err" \
    || lab_fail "the user was not told the cause and the node (No space left on device on node amd64-1)"
grep -q 'attempt 2 on amd64-2' "$LAB/ctx.err" || lab_fail "the job did not run again on amd64-2 as attempt 2"
grep -q 'failed on node' "$LAB/ctx.err" && lab_fail "the node's fault was reported as the build's failure"
(( $(pushes) == 1 )) || lab_fail "$(pushes) index pushes for one build, not 1"
skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/team/sick:1" >"$LAB/index.json" \
    || lab_fail "nothing under $REGISTRY/team/sick:1"
[[ "sha256:$(sha256sum <"$LAB/index.json" | cut -d' ' -f1)" == "$(cat "$LAB/ctx.out")" ]] \
    || lab_fail "the tag does not name the index farmctl printed"

# the node says why, the coordinator shows it, and the failed build left no container
grep -q 'this node is unhealthy: disk (builder storage)' "$LAB/agent-amd64-1.log" \
    || lab_fail "amd64-1 did not say it is unhealthy and why"
lab_farmctl nodes >"$LAB/nodes1" || lab_fail "farmctl nodes failed"
cat "$LAB/nodes1" >&2
grep -Eq '^amd64-1 .* unhealthy ' "$LAB/nodes1" || lab_fail "farmctl nodes does not show amd64-1 unhealthy"
grep -Eq '^ +unhealthy: disk \(builder storage\): .*\(under --min-free 48 MiB\); fix: free space on that filesystem' "$LAB/nodes1" \
    || lab_fail "farmctl nodes does not show amd64-1's cause"
grep -Eq '^amd64-2 .* ready ' "$LAB/nodes1" || lab_fail "amd64-2 is not ready"
find "$small" -name containers.json | grep -q . || lab_fail "no containers.json in amd64-1's storage to judge"
leftover=$(find "$small" -name containers.json -exec grep -l '"id"' {} + 2>/dev/null || true)
[[ -z $leftover ]] || lab_fail "the failed build left a container in amd64-1's storage: $leftover"

# no later job goes there, though it is idle and first in farm.yaml
started() { grep -c 'started (worker pid' "$LAB/agent-amd64-1.log" || true; }
before=$(started)
lab_example_context "$LAB/later"
echo 'RUN echo later' >>"$LAB/later/Dockerfile"
submit later "$REGISTRY/team/later:1" || { cat "$LAB/later.err" >&2; lab_fail "the later build failed"; }
grep -q 'attempt 1 on amd64-2' "$LAB/later.err" || lab_fail "the later build did not go to amd64-2"
(( $(started) == before )) || lab_fail "an unhealthy amd64-1 started a job"

# --- the space is freed -----------------------------------------------------------------
rm -f "$small/filler"
t0=$SECONDS
lab_wait_nodes 1 45 amd64-1   # the agent re-checks every 15 s
lab_log "amd64-1 ready again $((SECONDS - t0)) s after the space was freed"
grep -q 'this node is healthy again' "$LAB/agent-amd64-1.log" || lab_fail "amd64-1 did not say it is healthy again"
lab_farmctl nodes >"$LAB/nodes2"
# one cause left, amd64-3's, listed right under it
n=$(grep -c '^ *unhealthy: ' "$LAB/nodes2" || true)
(( n == 1 )) && grep -A1 '^amd64-3 ' "$LAB/nodes2" | grep -q '^ *unhealthy: disk (work dir)' \
    || { cat "$LAB/nodes2" >&2; lab_fail "farmctl nodes still shows amd64-1's cause"; }
lab_example_context "$LAB/next"
echo 'RUN echo next' >>"$LAB/next/Dockerfile"
submit next "$REGISTRY/team/next:1" || { cat "$LAB/next.err" >&2; lab_fail "the build after the space was freed failed"; }
grep -q 'attempt 1 on amd64-1' "$LAB/next.err" || lab_fail "the next build did not use amd64-1 again"

# --- a Dockerfile's failure: not retried, the node stays ready ---------------------------
lab_example_context "$LAB/broken"
echo 'RUN false' >>"$LAB/broken/Dockerfile"
rc=0
submit broken "$REGISTRY/team/broken:1" || rc=$?
cat "$LAB/broken.err" >&2
(( rc != 0 )) || lab_fail "a build whose RUN step fails exited 0"
grep -q 'attempt 1 on amd64-1' "$LAB/broken.err" || lab_fail "the broken build did not go to amd64-1"
grep -q 'attempt 2' "$LAB/broken.err" && lab_fail "a Dockerfile's failure was retried"
grep -q 'step "RUN false" failed (exit status 1) on node amd64-1' "$LAB/broken.err" \
    || lab_fail "the error does not name the failing step and the node"
lab_farmctl nodes >"$LAB/nodes3"
cat "$LAB/nodes3" >&2
grep -Eq '^amd64-1 .* ready ' "$LAB/nodes3" || lab_fail "amd64-1 is not ready after a Dockerfile's failure"
(( $(grep -c '^ *unhealthy: ' "$LAB/nodes3" || true) == 1 )) \
    || lab_fail "a Dockerfile's failure made a node unhealthy"

# --- the attack: a step that prints a node's cause cannot make a healthy node unhealthy --
lab_example_context "$LAB/liar"
echo 'RUN echo "write /x: No space left on device" >&2; false' >>"$LAB/liar/Dockerfile"
rc=0
submit liar "$REGISTRY/team/liar:1" || rc=$?
cat "$LAB/liar.err" >&2
(( rc != 0 )) || lab_fail "the lying build exited 0"
grep -q 'attempt 1 on amd64-1' "$LAB/liar.err" || lab_fail "the lying build did not go to amd64-1"
grep -q 'attempt 2' "$LAB/liar.err" && lab_fail "a step that printed a node's cause got its job retried"
grep -q 'No space left on device on node' "$LAB/liar.err" \
    && lab_fail "the error blames the node for what a step printed"
grep -qF 'step "RUN echo "write /x: No space left on device" >&2; false" failed (exit status 1) on node amd64-1' "$LAB/liar.err" \
    || lab_fail "the lying build's error does not name its failing step"
grep -q "its log says No space left on device, but this node's health checks pass" \
    "$LAB/agent-amd64-1.log" || lab_fail "amd64-1 did not check itself and say the checks pass"
lab_farmctl nodes >"$LAB/nodes4"
grep -Eq '^amd64-1 .* ready ' "$LAB/nodes4" || { cat "$LAB/nodes4" >&2; lab_fail "the lying build made amd64-1 unready"; }
# amd64-3 ran through it all, unhealthy, and never took a job
lab_alive agent-amd64-3 || lab_fail "the agent unhealthy at start did not keep running"
grep -q 'started (worker pid' "$LAB/agent-amd64-3.log" && lab_fail "amd64-3, unhealthy, started a job"
grep -Eq '^amd64-3 .* unhealthy ' "$LAB/nodes4" || lab_fail "amd64-3 is no longer shown unhealthy"
lab_log "PASS"
