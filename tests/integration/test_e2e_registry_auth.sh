#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Registry logins belong to the submitter (no confused deputy), against a docker-registry
# that wants a password (htpasswd, Basic) over plain HTTP (farm.yaml: insecure: true):
#  1. the agent's and the coordinator's hosts HAVE a login for the registry in their own
#     docker config, but a client that sends none cannot push: the build fails with the
#     registry's 401 and nothing is pushed;
#  2. farm.yaml's registries.HOST.credentials_for grants the farm's own login to the
#     client: the same submit then pushes;
#  3. the submitter's login from a credential helper (docker-credential-farmtest, on
#     farmctl's PATH only) reaches the push, and a FROM of a private base image in that
#     (insecure) registry; a RUN step sees no auth fd and no login in its environment;
#     the password is in no log, no process argv while the build runs, and no file under
#     the lab dir or /tmp.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
export LAB_SKIP_BINFMT=1
touch "$LAB/start-stamp"
rnd() { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
host_user=farmhost host_pass="hostpw-$(rnd)"     # the agent/coordinator hosts' own login
user=alice pass="alicepw-$(rnd)"                  # the submitter's login
mkdir -p "$LAB/auth"
{ htpasswd -Bbn "$host_user" "$host_pass" && htpasswd -Bbn "$user" "$pass"; } \
    | grep . >"$LAB/auth/htpasswd" || lab_fail "htpasswd (apache2-utils) failed"
cat >"$LAB/auth/registry-auth.yml" <<YEOF
auth:
  htpasswd:
    realm: farm-test
    path: $LAB/auth/htpasswd
YEOF
lab_registry_start "$LAB/auth/registry-auth.yml"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$REGISTRY/v2/")
[[ $code == 401 ]] || lab_fail "the registry does not ask for a password (HTTP $code)"

# the daemons' own docker config: a login of the farm's (must not serve other clients)
mkdir -p "$LAB/hostdocker" "$LAB/nodocker" "$LAB/alice" "$LAB/bin"
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$REGISTRY" \
    "$(printf '%s:%s' "$host_user" "$host_pass" | base64 -w0)" >"$LAB/hostdocker/config.json"
echo '{}' >"$LAB/nodocker/config.json"
# the submitter's: a credential helper that knows the password only from its environment
# (so no file holds it), for this registry only
cat >"$LAB/bin/docker-credential-farmtest" <<'HEOF'
#!/bin/sh
[ "$1" = get ] || exit 1
read -r server
if [ "$server" = "$FARMTEST_REGISTRY" ]; then
    printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\n' "$server" "$FARMTEST_USER" "$FARMTEST_SECRET"
else
    echo "credentials not found in native keychain"; exit 1
fi
HEOF
chmod +x "$LAB/bin/docker-credential-farmtest"
printf '{"credHelpers": {"%s": "farmtest"}}\n' "$REGISTRY" >"$LAB/alice/config.json"

export DOCKER_CONFIG=$LAB/hostdocker   # the coordinator's and the agent's own login
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=amd64-1"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent amd64-1 linux/amd64
lab_wait_nodes 1 30 amd64-1
lab_example_context "$LAB/ctx"

tags_of() {  # tags of REPO, as the registry lists them (with the farm's login)
    curl -s -u "$host_user:$host_pass" "http://$REGISTRY/v2/$1/tags/list"
}

# --- 1. no login sent: the farm's own login is not used on the client's behalf
rc=0
(DOCKER_CONFIG=$LAB/nodocker lab_farmctl submit -t "$REGISTRY/team/private:1" \
    --platform linux/amd64 --progress plain "$LAB/ctx") >"$LAB/no.out" 2>"$LAB/no.err" || rc=$?
cat "$LAB/no.err" >&2
(( rc != 0 )) || lab_fail "a client without credentials pushed with the agent's own login"
grep -q "401" "$LAB/no.err" || lab_fail "the failure does not carry the registry's 401"
grep -q "docker login $REGISTRY" "$LAB/no.err" || lab_fail "the error does not say to log in to $REGISTRY"
if tags_of team/private | grep -q '"1"'; then
    lab_fail "team/private:1 exists although the build failed"
fi
if [[ -d $LAB/registry/data/docker/registry/v2/repositories/team/private/_manifests/revisions ]] \
    && [[ -n $(ls "$LAB/registry/data/docker/registry/v2/repositories/team/private/_manifests/revisions/sha256" 2>/dev/null) ]]; then
    lab_fail "a manifest was pushed to team/private although the client sent no login"
fi
lab_log "no login: refused with the registry's 401, nothing pushed"

# --- 2. farm.yaml grants the farm's own login to client lab: the same submit pushes
lab_stop coordinator TERM
sed -i "s|^  \"$REGISTRY\": {insecure: true}|  \"$REGISTRY\": {insecure: true, credentials_for: [lab]}|" "$LAB/farm.yaml"
grep -q "credentials_for: \[lab\]" "$LAB/farm.yaml" || lab_fail "could not edit farm.yaml"
lab_start_coordinator "$LAB/farm.yaml"
lab_wait_nodes 1 30 amd64-1
(DOCKER_CONFIG=$LAB/nodocker lab_farmctl submit -t "$REGISTRY/team/granted:1" \
    --platform linux/amd64 --progress plain "$LAB/ctx") >"$LAB/granted.out" 2>"$LAB/granted.err" \
    || { cat "$LAB/granted.err"; lab_fail "a push with the farm's login granted in farm.yaml failed"; }
tags_of team/granted | grep -q '"1"' || lab_fail "no team/granted:1 after a granted push"
# and back: no grant from here on
lab_stop coordinator TERM
sed -i "s|, credentials_for: \[lab\]}|}|" "$LAB/farm.yaml"
lab_start_coordinator "$LAB/farm.yaml"
lab_wait_nodes 1 30 amd64-1
lab_log "granted: pushed with the farm's login"

# --- 3. the submitter's login from a credential helper: push a base image, then build
# FROM it (a private image in an insecure registry) and push that
submit_as_alice() {
    env DOCKER_CONFIG="$LAB/alice" PATH="$LAB/bin:$PATH" FARMTEST_REGISTRY="$REGISTRY" \
        FARMTEST_USER="$user" FARMTEST_SECRET="$pass" \
        "$FARMCTL" submit --coordinator "$FARM_COORDINATOR" --platform linux/amd64 \
        --progress plain "$@"
}
submit_as_alice -t "$REGISTRY/team/base:1" "$LAB/ctx" >"$LAB/base.out" 2>"$LAB/base.err" \
    || { cat "$LAB/base.err"; lab_fail "a push with the submitter's helper login failed"; }
grep -q "sending your login for $REGISTRY" "$LAB/base.err" || lab_fail "farmctl did not send the helper's login"
tags_of team/base | grep -q '"1"' || lab_fail "no team/base:1"

mkdir -p "$LAB/ctx2"
cat >"$LAB/ctx2/Dockerfile" <<DEOF
FROM $REGISTRY/team/base:1
RUN echo "fds:"; ls -l /proc/self/fd/; echo "env:"; cat /proc/self/environ | tr '\\0' '\\n'; \
    if ls -l /proc/self/fd/ | grep -q farm-authfile; then echo "AUTHFD-""VISIBLE"; fi; \
    echo done > /etc/farm-derived
DEOF
# scan every process's argv while the build runs
(
    while [[ ! -e $LAB/scan.stop ]]; do
        for f in /proc/[0-9]*/cmdline; do
            if tr '\0' ' ' <"$f" 2>/dev/null | grep -qF -- "$pass"; then
                echo "$f: $(tr '\0' ' ' <"$f" | head -c 200)" >>"$LAB/argv-leaks"
            fi
        done
        sleep 0.2
    done
) &
scanner=$!
rc=0
submit_as_alice -t "$REGISTRY/team/derived:1" "$LAB/ctx2" >"$LAB/derived.out" 2>"$LAB/derived.err" || rc=$?
touch "$LAB/scan.stop"
wait "$scanner" || true
(( rc == 0 )) || { cat "$LAB/derived.err"; lab_fail "a build FROM a private base image with the submitter's login failed"; }
tags_of team/derived | grep -q '"1"' || lab_fail "no team/derived:1"
grep -q "fds:" "$LAB/derived.err" "$LAB"/agent-amd64-1.log || lab_fail "the RUN step's output is missing"
if grep -q "AUTHFD-VISIBLE\|memfd:farm" "$LAB/derived.err" "$LAB"/agent-amd64-1.log; then
    lab_fail "a RUN step could see the builder's auth file"
fi
[[ ! -s $LAB/argv-leaks ]] || { cat "$LAB/argv-leaks"; lab_fail "the password appeared in a process's argv"; }

# the password is in no log, no output, no file under the lab dir or /tmp
b64=$(printf '%s:%s' "$user" "$pass" | base64 -w0)
if grep -rlF -e "$pass" -e "$b64" "$LAB" 2>/dev/null; then
    lab_fail "the submitter's password leaked into the files above"
fi
# (xargs -r with no file runs nothing and says 0: judge by what grep lists)
leaks=$(find /tmp -xdev -type f -newer "$LAB/start-stamp" -size -20M -print0 2>/dev/null \
    | xargs -0 -r grep -lF -e "$pass" -e "$b64" 2>/dev/null || true)
if [[ -n $leaks ]]; then
    printf '%s\n' "$leaks" >&2
    lab_fail "the submitter's password leaked into the files above (under /tmp)"
fi
lab_log "PASS"
