#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A node's layer cache is its clients' own (one cache per client and platform):
# buildah's --layers cache key covers a step's text and parent, not what a RUN step reads
# from a secret or bind mount. With one cache per node, a client could
#   1. poison another client's later build: mallory builds a secret-dependent step with
#      his value; alice's identical step, with her secret, reused his layer;
#   2. read another client's secret-derived layer: alice's step wrote data fetched with
#      her token; mallory's identical step (a dummy token) reused it and printed it;
#   3. build FROM another client's private base image that the node had pulled with that
#      client's login, without a login of his own (test_e2e_private_base tries that).
# Each client now has its own cache on every node (BUILDER_ROOT/CLIENT/PLATFORM), and the
# coordinator's warm placement is per client too. Two clients with role submit, one node.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
export LAB_SKIP_BINFMT=1
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=n1:2"
ak=$(lab_keygen alice)
mk=$(lab_keygen mallory)
sed -i "/^  lab: {key:/a\\  alice: {key: \"$ak\", role: submit}\\n  mallory: {key: \"$mk\", role: submit}" "$LAB/farm.yaml"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent n1 linux/amd64 --slots 2
lab_wait_nodes 1 30 n1
lab_example_context "$LAB/ex"

as() { # CLIENT [farmctl submit args...]
    local who=$1
    shift
    FARM_KEY=$LAB/keys/$who.key lab_farmctl submit --progress plain --platform linux/amd64 \
        -t "$REGISTRY/$who/app:$RANDOM" "$@"
}
ctx() { # DIR DOCKERFILE-TAIL: FROM scratch with busybox installed, then the tail
    mkdir -p "$1"
    cp "$LAB/ex/busybox/amd64/busybox" "$1/busybox"
    { printf 'FROM scratch\nCOPY busybox /bin/busybox\n'
      printf 'RUN ["/bin/busybox","sh","-c","/bin/busybox --install -s /bin"]\n'
      printf '%s\n' "$2"; } >"$1/Dockerfile"
}
said() { grep -v 'STEP' "$1" | grep -q "$2"; }

# 1. poisoning through a secret-dependent step
step='RUN --mount=type=secret,id=npmrc sh -c "cat /run/secrets/npmrc > /etc/npmrc-derived"'
ctx "$LAB/m1" "$step"$'\nRUN echo mallory-done'
ctx "$LAB/a1" "$step"$'\nRUN echo "alice sees: $(cat /etc/npmrc-derived)"'
NPMRC='registry=http://evil.example/' as mallory --secret id=npmrc,env=NPMRC "$LAB/m1" \
    >/dev/null 2>"$LAB/m1.log" || { cat "$LAB/m1.log" >&2; lab_fail "mallory's build 1 failed"; }
NPMRC='registry=https://npm.alice.internal/' as alice --secret id=npmrc,env=NPMRC "$LAB/a1" \
    >/dev/null 2>"$LAB/a1.log" || { cat "$LAB/a1.log" >&2; lab_fail "alice's build 1 failed"; }
said "$LAB/a1.log" 'alice sees: registry=http://evil.example/' \
    && lab_fail "alice's build reused mallory's secret-derived layer (poisoned)"
said "$LAB/a1.log" 'alice sees: registry=https://npm.alice.internal/' \
    || lab_fail "alice's build did not see her own secret"
lab_log "1: mallory's layer was not reused by alice's identical step"

# 2. reading another client's secret-derived layer
step='RUN --mount=type=secret,id=token sh -c "cat /run/secrets/token > /root-token"'
ctx "$LAB/a2" "$step"$'\nRUN echo alice-done'
ctx "$LAB/m2" "$step"$'\nRUN echo "mallory got: $(cat /root-token)"'
TOKEN='alice-private-token-0123456789' as alice --secret id=token,env=TOKEN "$LAB/a2" \
    >/dev/null 2>"$LAB/a2.log" || { cat "$LAB/a2.log" >&2; lab_fail "alice's build 2 failed"; }
TOKEN='dummy' as mallory --secret id=token,env=TOKEN "$LAB/m2" >/dev/null 2>"$LAB/m2.log" \
    || { cat "$LAB/m2.log" >&2; lab_fail "mallory's build 2 failed"; }
said "$LAB/m2.log" 'alice-private-token' && lab_fail "mallory read alice's secret-derived layer"
said "$LAB/m2.log" 'mallory got: dummy' || lab_fail "mallory's step did not run with his own secret"
lab_log "2: alice's secret-derived layer was not reused by mallory's identical step"

# the same client still gets its cache: alice's identical rebuild hits
TOKEN='alice-private-token-0123456789' as alice --secret id=token,env=TOKEN "$LAB/a2" \
    >/dev/null 2>"$LAB/a2b.log" || { cat "$LAB/a2b.log" >&2; lab_fail "alice's rebuild failed"; }
grep -q '^\[linux/amd64 n1\] --> Using cache ' "$LAB/a2b.log" || lab_fail "alice's own rebuild took nothing from her cache"

# 3. where that comes from: one storage per client and platform on the node (so an image
# a node pulled with one client's login is not in another client's storage either)
[[ -d $LAB/agents/n1/buildah/alice/linux-amd64 ]] || lab_fail "no per-client storage for alice"
[[ -d $LAB/agents/n1/buildah/mallory/linux-amd64 ]] || lab_fail "no per-client storage for mallory"
lab_log "PASS: each client's layer cache is its own on the node"
