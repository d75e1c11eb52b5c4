#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A node that cannot reach the registry stops taking jobs: amd64-1's user is cut off the
# registry's port (iptables), amd64-2 and the coordinator are not. A build sent to
# amd64-1 builds, fails to push ("registry ... unreachable"), amd64-1 confirms it with a
# connection of its own, says it is unhealthy with the cause and takes no job; the build
# runs again on amd64-2 and pushes its index. The cut mended, amd64-1 is ready again within
# its re-check period and builds the next job.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
[[ $(id -u) == 0 ]] || lab_fail "this test cuts an agent off the registry with iptables: run it as root"
command -v iptables >/dev/null || lab_fail "iptables not found (apt-get install iptables)"
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=amd64-1,amd64-2"
lab_start_coordinator "$LAB/farm.yaml"
# amd64-1 sandboxed, as $LAB_AGENT_USER; amd64-2 as root (--isolation chroot), so a rule
# on the agents' user cuts amd64-1 only
lab_start_agent amd64-1 linux/amd64
LAB_ISOLATION=chroot lab_start_agent amd64-2 linux/amd64
lab_wait_nodes 2 30 amd64-1 amd64-2

port=${REGISTRY##*:}
cut=(OUTPUT -p tcp -d 127.0.0.1 --dport "$port" -m owner --uid-owner "$LAB_AGENT_USER"
     -j REJECT --reject-with tcp-reset)
iptables -I "${cut[@]}" || lab_fail "iptables cannot add the rule that cuts $LAB_AGENT_USER off port $port"
lab_on_exit "iptables -D ${cut[*]} 2>/dev/null"
setpriv --reuid "$LAB_AGENT_USER" --regid "$LAB_AGENT_USER" --init-groups \
    curl -s -o /dev/null "http://$REGISTRY/v2/" && lab_fail "the cut does not hold: $LAB_AGENT_USER reaches the registry"
curl -sf -o /dev/null "http://$REGISTRY/v2/" || lab_fail "the cut also stops root reaching the registry"

lab_example_context "$LAB/ctx"
submit() { # NAME TAG: farmctl submit of $LAB/NAME to TAG, output in $LAB/NAME.{out,err}
    lab_farmctl submit -t "$2" --platform linux/amd64 --progress plain "$LAB/$1" \
        >"$LAB/$1.out" 2>"$LAB/$1.err"
}
submit ctx "$REGISTRY/team/cut:1" || { cat "$LAB/ctx.err" >&2; lab_fail "the build failed instead of running again on amd64-2"; }
cat "$LAB/ctx.err" >&2
grep -Eq '^sha256:[0-9a-f]{64}$' "$LAB/ctx.out" || lab_fail "no digest from the build"
grep -q 'attempt 1 on amd64-1' "$LAB/ctx.err" || lab_fail "the build did not go to amd64-1 first"
grep -q "registry $REGISTRY unreachable on node amd64-1" "$LAB/ctx.err" \
    || lab_fail "the user was not told the registry was unreachable from amd64-1"
grep -q 'attempt 2 on amd64-2' "$LAB/ctx.err" || lab_fail "the job did not run again on amd64-2"
(( $(grep -c ' pushed index ' "$LAB/coordinator.log") == 1 )) || lab_fail "not exactly one index pushed"
skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/team/cut:1" >/dev/null \
    || lab_fail "nothing under $REGISTRY/team/cut:1"
lab_farmctl nodes >"$LAB/nodes1"
cat "$LAB/nodes1" >&2
grep -Eq '^amd64-1 .* unhealthy ' "$LAB/nodes1" || lab_fail "farmctl nodes does not show amd64-1 unhealthy"
grep -q "^ *unhealthy: registry $REGISTRY unreachable from this node: connect: Connection refused" \
    "$LAB/nodes1" || lab_fail "farmctl nodes does not show amd64-1's cause"

iptables -D "${cut[@]}"
t0=$SECONDS
lab_wait_nodes 1 45 amd64-1   # the agent re-checks every 15 s
lab_log "amd64-1 ready again $((SECONDS - t0)) s after the cut was mended"
lab_example_context "$LAB/next"
echo 'RUN echo next' >>"$LAB/next/Dockerfile"
submit next "$REGISTRY/team/next:1" || { cat "$LAB/next.err" >&2; lab_fail "the build after the cut was mended failed"; }
grep -q 'attempt 1 on amd64-1' "$LAB/next.err" || lab_fail "the next build did not use amd64-1 again"
lab_log "PASS"
