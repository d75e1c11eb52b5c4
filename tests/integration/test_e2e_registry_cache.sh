#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The shared cache in the registry, per platform: two nodes of linux/amd64 and
# one of linux/arm64. A build with --cache-to/--cache-from REPO (whose cache does not exist
# yet: a cold build, not an error) pushes each platform's cache to REPO/linux-amd64 and
# REPO/linux-arm64. Then the linux/amd64 node that built it is stopped and a one-file
# change is built on the other, whose own layer cache is empty: its slow RUN step is taken
# from the registry cache (not run), and the image is correct. A --cache-to that cannot be
# pushed does not fail the build.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
lab_registry_start
lab_binfmt_register
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=c1,c2" "linux/arm64=c3"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent c1 linux/amd64
lab_start_agent c2 linux/amd64
lab_start_agent c3 linux/arm64
lab_wait_nodes 3 30 c1 c2 c3

# a multi-arch base in the registry, as real Dockerfiles start FROM one (buildah 1.28
# finds no registry cache for the steps of a FROM scratch build: their cache keys differ
# from node to node)
lab_example_context "$LAB/base"
lab_farmctl submit -t "$REGISTRY/lab/base:1" --platform linux/amd64,linux/arm64 \
    --progress plain "$LAB/base" >/dev/null 2>"$LAB/base.err" \
    || { cat "$LAB/base.err" >&2; lab_fail "building the base failed"; }
ctx=$LAB/ctx
mkdir -p "$ctx"
cat >"$ctx/Dockerfile" <<EOF
FROM $REGISTRY/lab/base:1
RUN sleep 2 && echo slow-step-ran && echo slow > /slow
COPY app.txt /app.txt
EOF
cache=$REGISTRY/team/app-cache

submit() { # TAG LOG [args...]
    local tag=$1 log=$2
    shift 2
    lab_farmctl submit -t "$REGISTRY/team/app:$tag" --platform linux/amd64,linux/arm64 \
        --progress plain "$@" "$ctx" >"$log.out" 2>"$log" \
        || { cat "$log" >&2; lab_fail "submit $tag failed"; }
}

# 1. cold, with a cache that does not exist yet: builds, and pushes one cache per platform
echo v1 >"$ctx/app.txt"
submit 1 "$LAB/one.log" --cache-from "$cache" --cache-to "type=registry,ref=$cache"
n=$(grep -c '^\[linux/[^]]*\] slow-step-ran$' "$LAB/one.log" || true)
((n == 2)) || lab_fail "the first build ran the slow step on $n platforms, not 2"
for p in linux-amd64 linux-arm64; do
    tags=$(curl -fsS "http://$REGISTRY/v2/team/app-cache/$p/tags/list") \
        || lab_fail "no registry cache at $cache/$p"
    lab_log "cache $cache/$p: $tags"
done
built_on=$(sed -n 's/^\[linux\/amd64 \([^]]*\)\] slow-step-ran$/\1/p' "$LAB/one.log" | head -n1)
[[ $built_on == c1 || $built_on == c2 ]] || lab_fail "cannot tell which node built linux/amd64 ($built_on)"
other=c1
[[ $built_on == c1 ]] && other=c2
lab_log "linux/amd64 built on $built_on; stopping it, the rebuild goes to $other"

# 2. the warm node is gone: the other node starts from the registry cache
lab_stop "agent-$built_on"
echo v2 >"$ctx/app.txt"
submit 2 "$LAB/two.log" --cache-from "$cache" --cache-to "$cache"
grep -q "^\[linux/amd64 $other\] " "$LAB/two.log" || lab_fail "linux/amd64 did not build on $other"
if grep '^\[linux/amd64 [^]]*\] slow-step-ran$' "$LAB/two.log" >&2; then
    lab_fail "$other ran the slow step: the registry cache was not used"
fi
grep -q "^\[linux/amd64 $other\] --> Using cache " "$LAB/two.log" \
    || lab_fail "$other took no step from the cache"
got=$(lab_image_file "$REGISTRY/team/app:2" amd64 /app.txt)
[[ $got == v2 ]] || lab_fail "the rebuilt amd64 image holds '$got', not v2"
got=$(lab_image_file "$REGISTRY/team/app:2" arm64 /app.txt)
[[ $got == v2 ]] || lab_fail "the rebuilt arm64 image holds '$got', not v2"
lab_log "a node with an empty layer cache rebuilt from the registry cache (slow step not run)"

# 3. a cache push that fails does not fail the build
echo v3 >"$ctx/app.txt"
submit 3 "$LAB/three.log" --platform linux/amd64 --cache-to "127.0.0.1:9/nowhere/cache"
grep -q "pushing the build cache to 127.0.0.1:9/nowhere/cache/linux-amd64 failed; building again without --cache-to" "$LAB/three.log" \
    || lab_fail "the failed cache push was not reported"
got=$(lab_image_file "$REGISTRY/team/app:3" amd64 /app.txt)
[[ $got == v3 ]] || lab_fail "the build with a failing cache push holds '$got', not v3"
lab_log "PASS: per-platform registry cache; a missing cache is a cold build; a failed cache push does not fail the build"
