#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# No confused deputy through a node's layer cache (clients never share one): alice
# pushes a private base image to a registry that needs a password, and builds FROM it on
# the node with her login, so the node pulls it. mallory, with no login at all, then
# builds FROM the same name on the same node. With one cache per node, buildah (pull
# policy "missing") used alice's local copy and mallory's RUN step printed alice's file.
# Each client has its own cache now: mallory's FROM goes to the registry as mallory, gets
# its 401, and his build fails without reading anything of alice's.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
export LAB_SKIP_BINFMT=1
command -v htpasswd >/dev/null || lab_fail "htpasswd (apache2-utils) is not installed"
pass="alicepw-$RANDOM$RANDOM"
mkdir -p "$LAB/auth" "$LAB/alice" "$LAB/nodocker"
htpasswd -Bbn alice "$pass" | grep . >"$LAB/auth/htpasswd"
printf 'auth:\n  htpasswd:\n    realm: t\n    path: %s\n' "$LAB/auth/htpasswd" >"$LAB/auth/a.yml"
lab_registry_start "$LAB/auth/a.yml"
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$REGISTRY" "$(printf 'alice:%s' "$pass" | base64 -w0)" \
    >"$LAB/alice/config.json"
echo '{}' >"$LAB/nodocker/config.json"
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=n1"
ak=$(lab_keygen alice)
mk=$(lab_keygen mallory)
sed -i "/^  lab: {key:/a\\  alice: {key: \"$ak\", role: submit}\\n  mallory: {key: \"$mk\", role: submit}" "$LAB/farm.yaml"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent n1 linux/amd64
lab_wait_nodes 1 30 n1
lab_example_context "$LAB/ex"
as() { # CLIENT DOCKER_CONFIG_DIR [farmctl submit args...]
    local who=$1 cfg=$2
    shift 2
    DOCKER_CONFIG=$cfg FARM_KEY=$LAB/keys/$who.key lab_farmctl submit --progress plain \
        --platform linux/amd64 "$@"
}

# alice's private base, and a build FROM it on the node (the node pulls it with her login)
mkdir -p "$LAB/base" "$LAB/app" "$LAB/m"
cp "$LAB/ex/busybox/amd64/busybox" "$LAB/base/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox","sh","-c","/bin/busybox --install -s /bin && echo alice-private-source > /private.txt"]\n' \
    >"$LAB/base/Dockerfile"
as alice "$LAB/alice" -t "$REGISTRY/alice/base:1" "$LAB/base" >/dev/null 2>"$LAB/base.log" \
    || { cat "$LAB/base.log" >&2; lab_fail "alice's base build failed"; }
printf 'FROM %s/alice/base:1\nRUN echo "alice reads: $(cat /private.txt)"\n' "$REGISTRY" >"$LAB/app/Dockerfile"
as alice "$LAB/alice" -t "$REGISTRY/alice/app:1" "$LAB/app" >/dev/null 2>"$LAB/app.log" \
    || { cat "$LAB/app.log" >&2; lab_fail "alice's build FROM her base failed"; }
grep -v STEP "$LAB/app.log" | grep -q 'alice reads: alice-private-source' \
    || lab_fail "alice's own build did not see her base"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$REGISTRY/v2/alice/base/manifests/1")
[[ $code == 401 ]] || lab_fail "the registry lets anyone read alice/base:1 (HTTP $code): the test shows nothing"

# mallory, no login, the same FROM on the same node
printf 'FROM %s/alice/base:1\nRUN echo "mallory reads: $(cat /private.txt)"\n' "$REGISTRY" >"$LAB/m/Dockerfile"
if as mallory "$LAB/nodocker" -t "$REGISTRY/mallory/x:1" "$LAB/m" >/dev/null 2>"$LAB/m.log"; then
    lab_fail "mallory built FROM alice's private image without a login"
fi
if grep -v STEP "$LAB/m.log" | grep 'alice-private-source' >&2; then
    lab_fail "mallory's build read alice's private base from the node's storage"
fi
grep -qi 'unauthorized\|401\|authentication required' "$LAB/m.log" \
    || { tail -20 "$LAB/m.log" >&2; lab_fail "mallory's build did not fail on the registry's refusal"; }
lab_log "PASS: a base pulled with alice's login does not serve mallory's build"
