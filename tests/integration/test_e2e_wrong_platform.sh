#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The agent refuses to push an image whose config names another platform than the job's:
# a builder that ignores --platform (a real buildah behind a wrapper that swaps it) makes
# a linux/amd64 image for a linux/arm64 job; nothing reaches the registry.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
lab_registry_start
lab_binfmt_register
cat >"$LAB/lying-buildah" <<'SEOF'
#!/usr/bin/env bash
out=(); swap=0
for a in "$@"; do
    if (( swap )); then out+=(linux/amd64); swap=0; continue; fi
    [[ $a == --platform ]] && swap=1
    out+=("$a")
done
exec buildah "${out[@]}"
SEOF
chmod +x "$LAB/lying-buildah"
lab_farm_yaml "$LAB/farm.yaml" "linux/arm64=liar"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent liar linux/arm64 --builder "$LAB/lying-buildah"
lab_wait_nodes 1 30 liar
lab_example_context "$LAB/ctx"
rc=0
lab_farmctl submit -t "$REGISTRY/team/liar:1" --platform linux/arm64 --progress plain \
    "$LAB/ctx" >"$LAB/out" 2>"$LAB/err" || rc=$?
cat "$LAB/err" >&2
(( rc != 0 )) || lab_fail "a linux/amd64 image was accepted for a linux/arm64 job"
grep -q "config says linux/amd64 but the job is for linux/arm64; refusing to push" "$LAB/err" \
    || lab_fail "the refusal does not say which platforms disagree"
catalog=$(curl -fsS "http://$REGISTRY/v2/_catalog")
[[ $catalog != *team/liar* ]] || lab_fail "something was pushed to team/liar: $catalog"
lab_log "PASS"
