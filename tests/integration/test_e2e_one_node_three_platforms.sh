#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Concurrent jobs on one node are safe: one agent with three slots serves
# linux/amd64 natively and linux/arm64 and linux/arm/v7 under qemu, and builds all three
# at once FROM the same multi-arch base (an index in the lab registry, pulled by name by
# the three jobs together), three times in a row, while two CPU burners load the machine.
# Every build succeeds and every child is its platform's image on its platform's base.
# (With one builder storage for all platforms, concurrent pulls of one multi-arch name
# raced: "locating pulled image ... image not known". Each platform has its own storage.)
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
lab_registry_start
lab_binfmt_register
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=solo:3" "linux/arm64=solo" "linux/arm/v7=solo"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent solo linux/amd64,linux/arm64,linux/arm/v7 --slots 3
lab_wait_nodes 1 30 solo
all=linux/amd64,linux/arm64,linux/arm/v7

# the multi-arch base: the example, pushed by farm as one index
lab_example_context "$LAB/base"
lab_farmctl submit -t "$REGISTRY/lab/base:1" --platform "$all" --progress plain "$LAB/base" \
    >/dev/null 2>"$LAB/base.err" || { cat "$LAB/base.err" >&2; lab_fail "building the base failed"; }

mkdir -p "$LAB/ctx"
cat >"$LAB/ctx/Dockerfile" <<EOF
FROM $REGISTRY/lab/base:1
ARG RUN_ID
RUN echo "\$RUN_ID on \$(cat /etc/farm-target-platform) saw \$(uname -m)" > /etc/on-base
EOF

# load: two busy loops for the whole test
for i in 1 2; do
    lab_spawn "burner$i" "$LAB/burner$i.log" sh -c 'while :; do :; done'
done

for r in 1 2 3; do
    lab_farmctl submit -t "$REGISTRY/team/onbase:$r" --platform "$all" --progress plain \
        --build-arg "RUN_ID=run$r" "$LAB/ctx" >"$LAB/run$r.out" 2>"$LAB/run$r.err" \
        || { cat "$LAB/run$r.err" >&2; lab_fail "run $r: the three-platform build on one node failed"; }
    # the three jobs overlapped on the node
    n=$(grep -c 'started (worker pid' "$LAB/agent-solo.log")
    lab_log "run $r: built ($n jobs started on solo so far)"
    idx=$(lab_index "$REGISTRY/team/onbase:$r")
    "$LAB_PYTHON" - "$idx" <<'PY' || lab_fail "run $r: the index is not the three platforms"
import json, sys
idx = json.loads(sys.argv[1])
got = sorted((m["platform"]["architecture"], m["platform"].get("variant", "")) for m in idx["manifests"]
             if m["platform"]["os"] != "unknown")  # not the provenance attestations
assert got == [("amd64", ""), ("arm", "v7"), ("arm64", "v8")] or got == [("amd64", ""), ("arm", "v7"), ("arm64", "")], got
PY
done
# the jobs of a run really ran side by side: some job started while another ran
"$LAB_PYTHON" - "$LAB/agent-solo.log" <<'PY' || lab_fail "the node never ran two jobs at once"
import re, sys
running, peak = 0, 0
for line in open(sys.argv[1]):
    if re.search(r" started \(worker pid ", line):
        running += 1
        peak = max(peak, running)
    elif re.search(r" (pushed|failed|cancelled)\b", line) and "job=" in line:
        running -= 1
print("peak concurrent jobs on solo:", peak)
sys.exit(0 if peak >= 2 else 1)
PY
# each platform's image sits on its own platform's base, and its RUN step ran there
for pa in amd64:linux/amd64:x86_64 arm64:linux/arm64:aarch64 arm:linux/arm/v7:armv7l; do
    IFS=: read -r a p m <<<"$pa"
    got=$(lab_image_file "$REGISTRY/team/onbase:3" "$a" /etc/on-base)
    [[ $got == "run3 on $p saw $m" ]] || lab_fail "$a: /etc/on-base says '$got', not 'run3 on $p saw $m'"
done
lab_log "PASS: one node, three slots, three platforms from one multi-arch base, three times under load"
