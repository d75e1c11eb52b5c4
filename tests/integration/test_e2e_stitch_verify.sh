#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The stitch trusts nothing it was told. A node whose key is enrolled (a raw CURVE peer
# that builds nothing, tests/integration/stitch_liar.py) answers linux/amd64 jobs with
# JobResults naming images that really exist: a real linux/arm64 image of the same
# repository, a real linux/amd64 image that lives only in another repository, and the
# right image with a wrong size. Each build fails with a message naming the platform,
# the digest and what differed, and nothing is pushed under its tag. The same peer
# naming a real linux/amd64 image of the repository with its true size gets the index
# pushed (so the refusals are the checks, not a broken peer), and its hostile provenance
# record is filtered before it reaches the statement.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
for tool in skopeo curl; do
    command -v "$tool" >/dev/null || lab_fail "$tool is not installed"
done
"$LAB_PYTHON" -c 'import zmq' 2>/dev/null || lab_fail "python3-zmq is not installed"
lab_registry_start
lab_binfmt_register
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=amd64-1,liar" "linux/arm64=arm64-1"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent amd64-1 linux/amd64
lab_start_agent arm64-1 linux/arm64
lab_wait_nodes 2 30 amd64-1 arm64-1
mt=application/vnd.oci.image.manifest.v1+json
repo=team/stitch

# child_of TAG ARCH: the digest and size of TAG's index child for ARCH
child_of() {
    lab_index "$1" | "$LAB_PYTHON" -c 'import json,sys
m=[c for c in json.load(sys.stdin)["manifests"] if c["platform"]["architecture"]==sys.argv[1]]
assert len(m)==1, m
print(m[0]["digest"], m[0]["size"])' "$2"
}

# tag_absent REPO TAG: the registry has no manifest under that tag
tag_absent() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' \
        -H "Accept: application/vnd.oci.image.index.v1+json, $mt" \
        "http://$REGISTRY/v2/$1/manifests/$2")
    [[ $code == 404 ]]
}

# 1. real images, built by real agents
lab_example_context "$LAB/ctx"
lab_example_context "$LAB/ctx-other"
echo 'LABEL farm.test=elsewhere' >>"$LAB/ctx-other/Dockerfile"
build() { # TAG PLATFORM CTX
    lab_farmctl submit -t "$REGISTRY/$1" --platform "$2" --progress plain "$3" \
        >"$LAB/real.out" 2>"$LAB/real.err" || { cat "$LAB/real.err" >&2; lab_fail "building $1 failed"; }
}
build "$repo:real-arm64" linux/arm64 "$LAB/ctx"
build "$repo:real-amd64" linux/amd64 "$LAB/ctx"
build "team/elsewhere:amd64" linux/amd64 "$LAB/ctx-other"
read -r arm arm_size < <(child_of "$REGISTRY/$repo:real-arm64" arm64)
read -r amd amd_size < <(child_of "$REGISTRY/$repo:real-amd64" amd64)
read -r other other_size < <(child_of "$REGISTRY/team/elsewhere:amd64" amd64)
lab_log "arm64 image $arm, amd64 image $amd, amd64 image elsewhere $other"
[[ $other != "$amd" ]] || lab_fail "the two amd64 images are the same"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Accept: $mt" "http://$REGISTRY/v2/$repo/manifests/$other")
[[ $code == 404 ]] || lab_fail "$other is in $repo too (HTTP $code): the other-repository case would prove nothing"

# 2. the real amd64 node goes; the liar takes its place
lab_stop agent-amd64-1
amd_gone() { [[ $(__lab_nodes_ready amd64-1) == 0 ]]; }
lab_wait_until 20 "amd64-1 to be lost" amd_gone
answer=$LAB/answer
echo "$mt $amd $amd_size" >"$answer"
lab_spawn liar "$LAB/liar.log" "$LAB_PYTHON" "$FARM_SOURCE_DIR/tests/integration/stitch_liar.py" \
    "$LAB_AGENTS_ENDPOINT" "$LAB/keys/liar.key" "$FARM_COORDINATOR_KEY" liar linux/amd64 "$answer"
lab_wait_nodes 1 30 liar

# lie TAG MEDIA DIGEST SIZE PATTERN...: the liar answers the TAG build's amd64 job with
# that descriptor; the build must fail saying every PATTERN, and TAG must not exist
lie() {
    local tag=$1 digest=$3 rc=0 p
    echo "$2 $3 $4" >"$answer"
    shift 4
    lab_farmctl submit -t "$REGISTRY/$repo:$tag" --platform linux/amd64 --progress plain \
        "$LAB/ctx" >"$LAB/$tag.out" 2>"$LAB/$tag.err" || rc=$?
    cat "$LAB/$tag.err" >&2
    (( rc != 0 )) || lab_fail "$tag: the build succeeded with a lying node"
    grep -q "answered with $digest" "$LAB/liar.log" || lab_fail "$tag: the liar was not asked"
    for p in "$@"; do
        grep -qF -- "$p" "$LAB/$tag.err" || lab_fail "$tag: the failure does not say \"$p\""
    done
    tag_absent "$repo" "$tag" || lab_fail "$tag: something was pushed under $repo:$tag"
    lab_log "$tag refused"
}

# an arm64 image of the same repository, for an amd64 job: digest, size and media type
# all match what the registry holds, only the image's config tells
lie lie-arm64 "$mt" "$arm" "$arm_size" \
    "linux/amd64 child $arm" "says linux/arm64, not linux/amd64"
# an amd64 image, but not in the build's repository
lie lie-elsewhere "$mt" "$other" "$other_size" \
    "linux/amd64 child $other is not in $REGISTRY/$repo"
# the right image, the wrong size
lie lie-size "$mt" "$amd" "$((amd_size + 1))" \
    "linux/amd64 child $amd" "is $amd_size bytes but the node reported $((amd_size + 1))"
grep -q "linux/amd64 child $arm" "$LAB/coordinator.log" || lab_fail "the coordinator log does not say why"

# 3. the same peer with a true descriptor: the index is pushed and names that child
echo "$mt $amd $amd_size" >"$answer"
lab_farmctl submit -t "$REGISTRY/$repo:honest" --platform linux/amd64 --progress plain \
    "$LAB/ctx" >"$LAB/honest.out" 2>"$LAB/honest.err" || { cat "$LAB/honest.err" >&2; lab_fail "a true descriptor was refused"; }
read -r got _ < <(child_of "$REGISTRY/$repo:honest" amd64)
[[ $got == "$amd" ]] || lab_fail "the honest index names $got, not $amd"

# 4. its provenance: the liar's record was hostile (names that break lines or JSON, a bad
# digest, an over-long name, 25 bases, finish before start). The statement stays valid,
# names the builder by the coordinator's own word (the key's node, its fingerprint), and
# holds only the one base a statement may: the rest were left out, and the log says so.
"$LAB_PYTHON" - "$REGISTRY" "$repo" "$amd" "$LAB/keys/liar.pub" \
    "$FARM_SOURCE_DIR/tests/data/provenance/statement-slsa-v1.schema.json" <<'PYEOF' \
    || lab_fail "the liar's provenance got into the statement"
import hashlib, json, sys, urllib.request
import jsonschema, zmq.utils.z85
registry, repo, child, pub, schema = sys.argv[1:]
def get(kind, ref, accept="application/vnd.oci.image.index.v1+json"):
    req = urllib.request.Request(f"http://{registry}/v2/{repo}/{kind}/{ref}", headers={"Accept": accept})
    return urllib.request.urlopen(req).read()
idx = json.loads(get("manifests", "honest"))
att = [m for m in idx["manifests"] if m.get("annotations", {}).get("vnd.docker.reference.digest") == child]
assert len(att) == 1, idx
man = json.loads(get("manifests", att[0]["digest"], att[0]["mediaType"]))
st = json.loads(get("blobs", man["layers"][0]["digest"]))
jsonschema.validate(st, json.load(open(schema)), cls=jsonschema.Draft202012Validator)
key = [l.split("=", 1)[1].strip() for l in open(pub) if l.startswith("public-key = ")][0]
bd, rd = st["predicate"]["buildDefinition"], st["predicate"]["runDetails"]
assert rd["builder"]["id"] == "urn:farm:node:liar", rd["builder"]
assert bd["internalParameters"] == {"emulated": False,
    "node_key_sha256": hashlib.sha256(zmq.utils.z85.decode(key)).hexdigest()}, bd["internalParameters"]
assert bd["resolvedDependencies"][1:] == [{"uri": "pkg:docker/r.example/ok@1?platform=linux%2Famd64",
    "name": "r.example/ok:1", "digest": {"sha256": "ab" * 32}, "annotations": {"stage": "final"}}], bd["resolvedDependencies"]
assert "digest" not in bd["externalParameters"]["dockerfile"], bd["externalParameters"]
md = rd["metadata"]
assert md["startedOn"] <= md["finishedOn"], md
print("the liar's statement: valid, builder liar by its key, one base, no Dockerfile digest")
PYEOF
grep -q "node=liar job=.*: base image 0 of its provenance is left out" "$LAB/coordinator.log" \
    || lab_fail "the coordinator did not say it left the liar's bad bases out"
lab_log "PASS"
