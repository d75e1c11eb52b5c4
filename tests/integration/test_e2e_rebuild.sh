#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fast rebuilds: every node keeps a layer cache. A Dockerfile with a slow RUN
# step, then a COPY of a file that changes: the second submit after a one-file change runs
# the slow step on no platform (shown from the build log: the step prints a marker when it
# runs, and the builder says "Using cache"), and the image holds the new file. Then one
# node bounded by --builder-cache-max keeps its builder storage under the bound across
# many builds that each add new layers.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
lab_start_farm

ctx=$LAB/ctx
lab_example_context "$ctx"
cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
ARG TARGETARCH
ARG TARGETVARIANT
COPY busybox/${TARGETARCH}${TARGETVARIANT}/busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox sleep 2 && /bin/busybox echo slow-step-ran && /bin/busybox echo slow > /slow"]
COPY app.txt /app.txt
EOF
plats=linux/amd64,linux/arm64,linux/arm/v7

submit() { # TAG LOG [farmctl args...]
    local tag=$1 log=$2
    shift 2
    lab_farmctl submit -t "$REGISTRY/team/rebuild:$tag" --platform "$plats" --progress plain \
        --metadata-file "$log.json" "$@" "$ctx" >"$log.out" 2>"$log" \
        || { cat "$log" >&2; lab_fail "submit $tag failed"; }
}

# 1. cold: the slow step runs on every platform
echo v1 >"$ctx/app.txt"
submit cold "$LAB/cold.log"
n=$(grep -c '^\[linux/[^]]*\] slow-step-ran$' "$LAB/cold.log" || true)
((n == 3)) || lab_fail "the cold build ran the slow step on $n platforms, not 3"

# 2. one file changed: the slow step runs nowhere, the new file is in every image
echo v2 >"$ctx/app.txt"
submit warm "$LAB/warm.log"
if grep '^\[linux/[^]]*\] slow-step-ran$' "$LAB/warm.log" >&2; then
    lab_fail "the rebuild after a one-file change ran the slow RUN step again (above)"
fi
for p in linux/amd64 linux/arm64 linux/arm/v7; do
    grep -q "^\[$p [^]]*\] --> Using cache " "$LAB/warm.log" \
        || lab_fail "$p: no step of the rebuild came from the cache"
    grep -q "^\[$p [^]]*\] farm: [1-9][0-9]* of [0-9]* build steps from the cache" "$LAB/warm.log" \
        || lab_fail "$p: the build log does not count the cached steps"
done
for a in amd64 arm64 arm; do
    got=$(lab_image_file "$REGISTRY/team/rebuild:warm" "$a" /app.txt)
    [[ $got == v2 ]] || lab_fail "$a: /app.txt in the rebuilt image is '$got', not v2"
done
lab_log "rebuild after a one-file change: the slow step ran on no platform; images hold the new file"

# 3. --builder-cache-max: one node, many builds with new layers each, storage stays bounded
max=$((12 * 1024 * 1024))
lab_stop agent-amd64-1
lab_start_agent amd64-1 linux/amd64 --builder-cache-max 12M
lab_wait_nodes 1 30 amd64-1
plats=linux/amd64
store=$LAB/agents/amd64-1/buildah
peak=0
for i in 1 2 3 4 5 6; do
    head -c 700000 /dev/urandom | base64 >"$ctx/app.txt"
    submit "bound$i" "$LAB/bound$i.log"
    size=$(du -sb "$store" | cut -f1)
    ((size > peak)) && peak=$size
    lab_log "after build $i: builder storage $size bytes (bound $max)"
    ((size <= max)) || lab_fail "builder storage is $size bytes after build $i, over --builder-cache-max ($max)"
done
grep -q "pruned linux-amd64" "$LAB"/bound*.log || lab_fail "no build pruned the cache: the test did not exceed the bound"
# failed builds keep the steps they committed: the bound holds for them too
cp "$ctx/Dockerfile" "$LAB/Dockerfile.ok"
cat >>"$ctx/Dockerfile" <<'EOF'
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox head -c 3000000 /dev/urandom > /big"]
RUN ["/bin/busybox", "false"]
EOF
for i in 1 2 3; do
    head -c 700000 /dev/urandom | base64 >"$ctx/app.txt"
    if lab_farmctl submit -t "$REGISTRY/team/rebuild:fail$i" --platform linux/amd64 \
        --progress plain "$ctx" >/dev/null 2>"$LAB/fail$i.log"; then
        lab_fail "the failing build $i succeeded"
    fi
    size=$(du -sb "$store" | cut -f1)
    lab_log "after failed build $i: builder storage $size bytes (bound $max)"
    ((size <= max)) || lab_fail "builder storage is $size bytes after failed build $i, over --builder-cache-max ($max)"
done
cp "$LAB/Dockerfile.ok" "$ctx/Dockerfile"
lab_log "PASS: warm rebuilds, and builder storage stayed under --builder-cache-max (peak $peak of $max bytes)"
