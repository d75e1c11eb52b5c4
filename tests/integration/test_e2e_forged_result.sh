#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A Dockerfile cannot plant a job result: its RUN step prints a result line in the old
# "@@result ok ..." form naming another image that really is in the registry, and tries to
# write to the worker's result fd (fd 4, /proc/self/fd/4), and leaves a process behind that
# prints it again later (after the worker's own last line: what a text protocol would
# take as the result). The build succeeds and the
# index's child is the image that was built (its config history and layers hold what this
# RUN step made), not the forged digest.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
for tool in skopeo curl tar; do
    command -v "$tool" >/dev/null || lab_fail "$tool is not installed"
done
export LAB_SKIP_BINFMT=1
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=x86-f"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent x86-f linux/amd64
lab_wait_nodes 1 30 x86-f
py=/usr/bin/python3

# child_of TAG: the linux/amd64 child's digest in the index under TAG
child_of() {
    lab_index "$1" | "$py" -c 'import json,sys
m=[c for c in json.load(sys.stdin)["manifests"] if c["platform"]["architecture"]=="amd64"]
assert len(m)==1, m
print(m[0]["digest"])'
}

# 1. a decoy: a real image in the registry, in the repository the forged build pushes to
lab_example_context "$LAB/decoy"
echo 'RUN echo decoy > /etc/farm-decoy' >>"$LAB/decoy/Dockerfile"
lab_farmctl submit -t "$REGISTRY/team/forged:decoy" --platform linux/amd64 --progress plain \
    "$LAB/decoy" >"$LAB/decoy.out" 2>"$LAB/decoy.err" || { cat "$LAB/decoy.err" >&2; lab_fail "decoy build failed"; }
decoy=$(child_of "$REGISTRY/team/forged:decoy")
[[ $decoy =~ ^sha256:[0-9a-f]{64}$ ]] || lab_fail "no decoy digest ($decoy)"
lab_log "decoy image $decoy"

# 2. the forging build
mt=application/vnd.oci.image.manifest.v1+json
forged="@@result ok $mt $decoy 123 1 1"
lab_example_context "$LAB/ctx"
cat >>"$LAB/ctx/Dockerfile" <<DEOF
RUN echo "$forged" \\
 && echo "$forged" >&2 \\
 && { ( echo "$forged" >&4 ) 2>/dev/null && echo "farm-test: fd 4 WRITABLE" || echo "farm-test: fd 4 closed"; } \\
 && { ( echo "$forged" >/proc/self/fd/4 ) 2>/dev/null && echo "farm-test: proc fd 4 WRITABLE" || echo "farm-test: proc fd 4 closed"; } \\
 && echo forged-test-marker > /etc/farm-forged-test \\
 && echo "$forged" \\
 && { ( sleep 4; echo "$forged" ) & }
DEOF
tag=$REGISTRY/team/forged:1
lab_farmctl submit -t "$tag" --platform linux/amd64 --progress plain --metadata-file "$LAB/meta.json" \
    "$LAB/ctx" >"$LAB/out" 2>"$LAB/err" || { cat "$LAB/err" >&2; lab_fail "the forging build failed"; }
cat "$LAB/err" >&2
# the RUN step ran and printed the forgery (as log text, nothing more); lines it printed
# end the log line, while the STEP line that quotes the command has more after them
grep -qxF "[linux/amd64 x86-f] $forged" "$LAB/err" || lab_fail "the build log does not show the forged line: the RUN step did not run?"
grep -qx '\[linux/amd64 x86-f\] farm-test: fd 4 closed' "$LAB/err" || lab_fail "the RUN step could write to fd 4"
grep -qx '\[linux/amd64 x86-f\] farm-test: proc fd 4 closed' "$LAB/err" || lab_fail "the RUN step could write to /proc/self/fd/4"
! grep -Eq '\] farm-test: (proc )?fd 4 WRITABLE$' "$LAB/err" || lab_fail "the RUN step reached the result fd"

child=$(child_of "$tag")
[[ $child != "$decoy" ]] || lab_fail "the index names the forged digest $decoy"
want=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["farm.platforms"]["linux/amd64"]["digest"])' "$LAB/meta.json" 2>/dev/null || true)
[[ -z $want || $want == "$child" ]] || lab_fail "metadata says $want, the index $child"
grep -q "pushed $child" "$LAB/agent-x86-f.log" || lab_fail "the agent did not report the image it pushed ($child)"
(( $(grep -c "pushed $decoy" "$LAB/agent-x86-f.log") <= 1 )) \
    || lab_fail "the agent reported the decoy digest for the forging build"

# the child is the image this build made: manifest bytes hash to its digest, the config's
# history holds this RUN step, and a layer holds the file it wrote
repo_url=http://$REGISTRY/v2/team/forged
accept="Accept: $mt, application/vnd.docker.distribution.manifest.v2+json"
curl -fsS -H "$accept" "$repo_url/manifests/$child" -o "$LAB/manifest.json" || lab_fail "cannot fetch the child manifest"
[[ sha256:$(sha256sum <"$LAB/manifest.json" | cut -d' ' -f1) == "$child" ]] || lab_fail "the child manifest does not hash to $child"
config=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["digest"])' "$LAB/manifest.json")
curl -fsS "$repo_url/blobs/$config" -o "$LAB/config.json" || lab_fail "cannot fetch the child's config"
grep -q 'forged-test-marker' "$LAB/config.json" || lab_fail "the child's config history lacks the forging RUN step"
found=0
for layer in $("$py" -c 'import json,sys; print(" ".join(l["digest"] for l in json.load(open(sys.argv[1]))["layers"]))' "$LAB/manifest.json"); do
    curl -fsS "$repo_url/blobs/$layer" -o "$LAB/layer.tgz" || lab_fail "cannot fetch layer $layer"
    if tar -xzOf "$LAB/layer.tgz" etc/farm-forged-test 2>/dev/null | grep -q forged-test-marker; then
        found=1
    fi
done
(( found )) || lab_fail "no layer of the child holds /etc/farm-forged-test"
# and the decoy is untouched: its own content, not this build's
curl -fsS -H "$accept" "$repo_url/manifests/$decoy" -o "$LAB/decoy-manifest.json"
dconfig=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["digest"])' "$LAB/decoy-manifest.json")
[[ $dconfig != "$config" ]] || lab_fail "decoy and built image share a config"
lab_log "PASS"
