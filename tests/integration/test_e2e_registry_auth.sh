#!/usr/bin/env bash
# A registry that wants a password (htpasswd, Basic): agents and the coordinator take
# credentials from their own docker config.json ($DOCKER_CONFIG), push, verify and stitch;
# the password appears in no log. Without credentials the build fails saying what to do.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
export LAB_SKIP_BINFMT=1
user=farmbot
pass="s3cret-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkdir -p "$LAB/auth"
htpasswd -Bbn "$user" "$pass" >"$LAB/auth/htpasswd" 2>/dev/null || lab_fail "htpasswd (apache2-utils) failed"
cat >"$LAB/auth/registry-auth.yml" <<YEOF
auth:
  htpasswd:
    realm: farm-test
    path: $LAB/auth/htpasswd
YEOF
lab_registry_start "$LAB/auth/registry-auth.yml"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$REGISTRY/v2/")
[[ $code == 401 ]] || lab_fail "the registry does not ask for a password (HTTP $code)"
mkdir -p "$LAB/docker" "$LAB/nodocker"
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$REGISTRY" "$(printf '%s:%s' "$user" "$pass" | base64 -w0)" \
    >"$LAB/docker/config.json"
echo '{}' >"$LAB/nodocker/config.json"

export DOCKER_CONFIG=$LAB/docker   # the coordinator's and the agent's own credentials
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=amd64-1"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent amd64-1 linux/amd64
lab_wait_nodes 1 30 amd64-1
lab_example_context "$LAB/ctx"
(unset DOCKER_CONFIG; lab_farmctl submit -t "$REGISTRY/team/private:1" --platform linux/amd64 \
    --progress plain "$LAB/ctx") >"$LAB/ok.out" 2>"$LAB/ok.err" \
    || { cat "$LAB/ok.err"; lab_fail "submit to a password-protected registry failed"; }
skopeo inspect --raw --tls-verify=false --creds "$user:$pass" "docker://$REGISTRY/team/private:1" \
    | grep -q 'image.index.v1+json' || lab_fail "no index under team/private:1"

# an agent without credentials: the build fails and says what to do
lab_stop agent-amd64-1 TERM
DOCKER_CONFIG=$LAB/nodocker lab_start_agent amd64-1 linux/amd64
lab_wait_nodes 1 30 amd64-1
rc=0
lab_farmctl submit -t "$REGISTRY/team/private:2" --platform linux/amd64 --progress plain \
    "$LAB/ctx" >"$LAB/no.out" 2>"$LAB/no.err" || rc=$?
cat "$LAB/no.err" >&2
(( rc != 0 )) || lab_fail "a push without credentials succeeded"
grep -q "docker login $REGISTRY" "$LAB/no.err" || lab_fail "the error does not say to log in to $REGISTRY"

# the password is in no log, no farmctl output, no process argument
if grep -rlF -- "$pass" "$LAB"/*.log "$LAB"/*.err "$LAB"/*.out 2>/dev/null; then
    lab_fail "the registry password leaked into the files above"
fi
b64=$(printf '%s:%s' "$user" "$pass" | base64 -w0)
if grep -rlF -- "$b64" "$LAB"/*.log "$LAB"/*.err "$LAB"/*.out 2>/dev/null; then
    lab_fail "the base64 credentials leaked into the files above"
fi
lab_log "PASS"
