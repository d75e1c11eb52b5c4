#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Contexts do not fill the disk: the coordinator deletes contexts unused for
# coordinator.context_ttl, and an agent keeps its cache under --cache-max (least recently
# used out first, never one a job needs). A later submit simply sends the context again.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
export LAB_SKIP_BINFMT=1
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=amd64-1"
sed -i 's/^  heartbeat: .*/&\n  context_ttl: 3s/' "$LAB/farm.yaml"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent amd64-1 linux/amd64 --cache-max 1K
lab_wait_nodes 1 30 amd64-1
lab_example_context "$LAB/a"
lab_example_context "$LAB/b"
echo "b" >"$LAB/b/extra.txt"

submit() { # submit NAME CONTEXT: prints the context digest
    lab_farmctl submit -t "$REGISTRY/team/cache:$1" --platform linux/amd64 --progress plain "$2" \
        >"$LAB/$1.out" 2>"$LAB/$1.err" || { cat "$LAB/$1.err" >&2; lab_fail "submit $1 failed"; }
    grep -m1 -o '#context .* packed: sha256:[0-9a-f]*' "$LAB/$1.err" | grep -o 'sha256:.*'
}
da=$(submit a1 "$LAB/a")
db=$(submit b1 "$LAB/b")
[[ $da != "$db" ]] || lab_fail "the two contexts have one digest"
cache=$LAB/agents/amd64-1/work/cache
lab_wait_until 10 "the agent to evict context a" test ! -e "$cache/${da#sha256:}.tar"
[[ -e $cache/${db#sha256:}.tar ]] || lab_fail "the agent evicted the newest context too"
grep -q "evicted context $da" "$LAB/agent-amd64-1.log" || lab_fail "no eviction logged"

lab_wait_until 30 "the coordinator to drop both contexts" \
    bash -c "! ls '$LAB/state/contexts/'*.tar >/dev/null 2>&1"
grep -q "removed context $da" "$LAB/coordinator.log" || lab_fail "no removal logged"
# gone from both: the next submit sends it again and builds
submit a2 "$LAB/a" >/dev/null
grep -q "#context $da uploading" "$LAB/a2.err" || lab_fail "the context was not uploaded again"
lab_log "PASS"
