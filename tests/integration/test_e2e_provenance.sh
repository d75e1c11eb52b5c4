#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Provenance per platform, attached as BuildKit attaches it, on real parts (registry,
# buildah, coordinator, three agents): two base images the test pushes, then one
# multi-stage build FROM them three times: --provenance=mode=max, the default (min) and
# --provenance=false. The index and every statement are read back from the registry and
# judged against the in-toto Statement v1 / SLSA Provenance v1 field rules
# (tests/data/provenance/statement-slsa-v1.schema.json) and against what the test knows:
# each platform's node and its key, the context digest, the Dockerfile's digest, the
# bases' digests per platform, the build args (max only), the build id. skopeo inspect
# and skopeo copy --multi-arch all still take the index. A coordinator killed between one
# platform's end and the other's attests the first as it would have. A registry that
# changes an attestation manifest's bytes gets no index.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
# the farm's registry is a real one behind a forwarder that lies about attestation
# manifests in team/lied only (tests/integration/lying_registry.py)
lab_registry_start
upstream=$REGISTRY
port=$(lab_free_port)
lab_spawn lying "$LAB/lying.log" "${LAB_PYTHON:-/usr/bin/python3}" \
    "$FARM_SOURCE_DIR/tests/integration/lying_registry.py" "$port" "$upstream" team/lied
REGISTRY=127.0.0.1:$port
lab_wait_until 20 "the forwarding registry" curl -sf -o /dev/null "http://$REGISTRY/v2/"
lab_start_farm
PY=${LAB_PYTHON:-/usr/bin/python3}
PLATS=linux/amd64,linux/arm64,linux/arm/v7
ctx=$LAB/ctx
lab_example_context "$ctx"

# buildx's spellings are refused with the reason when farm cannot do them
if lab_farmctl submit -t "$REGISTRY/team/x:1" --platform linux/amd64 --attest type=sbom \
    "$ctx" >/dev/null 2>"$LAB/sbom.err"; then
    lab_fail "--attest type=sbom was taken"
fi
grep -q 'provenance attestations only' "$LAB/sbom.err" || { cat "$LAB/sbom.err" >&2; lab_fail "--attest type=sbom: no reason given"; }
if lab_farmctl submit -t "$REGISTRY/team/x:1" --platform linux/amd64 --provenance mode=huge \
    "$ctx" >/dev/null 2>"$LAB/huge.err"; then
    lab_fail "--provenance mode=huge was taken"
fi
grep -q 'mode=min or mode=max' "$LAB/huge.err" || { cat "$LAB/huge.err" >&2; lab_fail "--provenance mode=huge: no fix named"; }

submit() { # NAME [farmctl submit args...]: the build's stderr in $LAB/NAME.err, metadata in $LAB/NAME.json
    local name=$1
    shift
    lab_farmctl submit --platform "$PLATS" --progress plain --metadata-file "$LAB/$name.json" \
        "$@" >"$LAB/$name.out" 2>"$LAB/$name.err" \
        || { tail -30 "$LAB/$name.err" >&2; lab_fail "submit $name failed"; }
}

# two bases, each a 3-platform index: the intermediate stage's and the final stage's
printf 'FROM scratch\nARG TARGETARCH\nARG TARGETVARIANT\nCOPY busybox/${TARGETARCH}${TARGETVARIANT}/busybox /bin/busybox\n' \
    >"$ctx/Dockerfile.base1"
printf 'FROM scratch\nARG TARGETARCH\nARG TARGETVARIANT\nCOPY busybox/${TARGETARCH}${TARGETVARIANT}/busybox /bin/busybox\nLABEL base=two\n' \
    >"$ctx/Dockerfile.base2"
submit base1 -f "$ctx/Dockerfile.base1" -t "$REGISTRY/team/base1:1" --provenance=false "$ctx"
submit base2 -f "$ctx/Dockerfile.base2" -t "$REGISTRY/team/base2:1" --provenance=false "$ctx"
cat >"$ctx/Dockerfile.app" <<EOF
FROM $REGISTRY/team/base1:1 AS tools
RUN ["/bin/busybox", "sh", "-c", "echo tools > /tools.txt"]
FROM scratch AS mid
COPY --from=tools /tools.txt /mid.txt
FROM $REGISTRY/team/base2:1
ARG VERSION=dev
COPY --from=mid /mid.txt /mid.txt
RUN ["/bin/busybox", "sh", "-c", "echo \$VERSION > /version"]
EOF

# a build secret goes to the builder, never into a statement
export PROV_SECRET="s3cret-$RANDOM$RANDOM"
submit max -f "$ctx/Dockerfile.app" -t "$REGISTRY/team/app:max" --provenance=mode=max \
    --build-arg VERSION=7 --secret id=tok,env=PROV_SECRET "$ctx"
submit min -f "$ctx/Dockerfile.app" -t "$REGISTRY/team/app:min" --build-arg VERSION=7 "$ctx"
submit off -f "$ctx/Dockerfile.app" -t "$REGISTRY/team/app:off" --provenance=false \
    --build-arg VERSION=7 "$ctx"
submit attest -f "$ctx/Dockerfile.app" -t "$REGISTRY/team/app:attest" \
    --attest type=provenance,mode=max --build-arg VERSION=8 "$ctx"
ctxdigest=$(sed -n 's/.*#context .* packed: \(sha256:[0-9a-f]\{64\}\).*/\1/p' "$LAB/max.err" | head -1)
[[ -n $ctxdigest ]] || lab_fail "no '#context ... packed: DIGEST' line in the max submit's output"

"$PY" - "$REGISTRY" "$LAB" "$ctxdigest" "$ctx/Dockerfile.app" \
    "$FARM_SOURCE_DIR/tests/data/provenance/statement-slsa-v1.schema.json" <<'PYEOF'
import hashlib, json, os, sys, time, urllib.request
import jsonschema, zmq.utils.z85

registry, lab, ctxdigest, dockerfile, schema_path = sys.argv[1:]
schema = json.load(open(schema_path))
jsonschema.Draft202012Validator.check_schema(schema)
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
PLATS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
HOST = {"x86_64": "linux/amd64", "aarch64": "linux/arm64", "armv7l": "linux/arm/v7"}[os.uname().machine]
df_sha = hashlib.sha256(open(dockerfile, "rb").read()).hexdigest()

def get(repo, kind, ref, accept=None):
    req = urllib.request.Request(f"http://{registry}/v2/{repo}/{kind}/{ref}")
    if accept:
        req.add_header("Accept", accept)
    body = urllib.request.urlopen(req).read()
    if ref.startswith("sha256:"):
        assert "sha256:" + hashlib.sha256(body).hexdigest() == ref, f"{repo} {ref}: bytes differ"
    return body

def canon(p):
    s = p["os"] + "/" + p["architecture"] + ("/" + p["variant"] if p.get("variant") else "")
    return "linux/arm64" if s == "linux/arm64/v8" else s

def children(repo, tag):
    idx = json.loads(get(repo, "manifests", tag, INDEX))
    assert idx["mediaType"] == INDEX, idx
    return idx, {canon(m["platform"]): m["digest"] for m in idx["manifests"]
                 if m["platform"]["os"] != "unknown"}

# a base that is an index names, per platform, the child the build used (the nodes built
# the bases themselves: their storage holds them under manifests of their own)
_, base1 = children("team/base1", "1")
_, base2 = children("team/base2", "1")

def key_sha(node):
    for line in open(f"{lab}/keys/{node}.pub"):
        if line.startswith("public-key = "):
            return hashlib.sha256(zmq.utils.z85.decode(line.split("=", 1)[1].strip())).hexdigest()
    raise AssertionError(f"no public key for {node}")

def judge(name, mode, args):
    meta = json.load(open(f"{lab}/{name}.json"))
    idx, kids = children("team/app", name)
    assert sorted(kids) == sorted(PLATS), kids
    atts = [m for m in idx["manifests"] if m["platform"]["os"] == "unknown"]
    if mode == "off":
        assert atts == [], f"{name}: --provenance=false gave attestations: {atts}"
        assert len(idx["manifests"]) == 3, idx
        print(f"{name}: 3 children, no attestation")
        return
    assert len(atts) == 3, f"{name}: {len(atts)} attestation manifests, want 3"
    refs = {}
    for a in atts:
        assert a["mediaType"] == MANIFEST, a
        assert a["platform"] == {"architecture": "unknown", "os": "unknown"}, a["platform"]
        ann = a["annotations"]
        assert ann["vnd.docker.reference.type"] == "attestation-manifest", ann
        refs[ann["vnd.docker.reference.digest"]] = a
    assert sorted(refs) == sorted(kids.values()), f"{name}: attestations refer to {sorted(refs)}, children are {kids}"
    for plat in PLATS:
        child = kids[plat]
        assert meta["farm.platforms"][plat]["digest"] == child, (plat, meta["farm.platforms"])
        node = meta["farm.platforms"][plat]["node"]
        a = refs[child]
        man = json.loads(get("team/app", "manifests", a["digest"], MANIFEST))
        assert man["mediaType"] == MANIFEST and len(man["layers"]) == 1, man
        layer = man["layers"][0]
        assert layer["mediaType"] == "application/vnd.in-toto+json", layer
        assert layer["annotations"]["in-toto.io/predicate-type"] == "https://slsa.dev/provenance/v1", layer
        cfg = json.loads(get("team/app", "blobs", man["config"]["digest"]))
        assert cfg["architecture"] == "unknown" and cfg["os"] == "unknown", cfg
        raw = get("team/app", "blobs", layer["digest"])
        assert len(raw) == layer["size"], layer
        assert os.environ["PROV_SECRET"].encode() not in raw and b"tok" not in raw, f"{name} {plat}: the statement carries the build secret"
        st = json.loads(raw)
        jsonschema.validate(st, schema, cls=jsonschema.Draft202012Validator)
        pct = plat.replace("/", "%2F")
        assert st["subject"] == [{"name": f"pkg:docker/{registry}/team/app@{name}?platform={pct}",
                                  "digest": {"sha256": child[7:]}}], st["subject"]
        pred = st["predicate"]
        bd, rd = pred["buildDefinition"], pred["runDetails"]
        assert bd["buildType"].startswith("urn:farm:"), bd["buildType"]
        assert rd["builder"]["id"] == f"urn:farm:node:{node}", rd["builder"]
        assert rd["metadata"]["invocationId"] == meta["farm.build_id"], rd["metadata"]
        t0, t1 = rd["metadata"]["startedOn"], rd["metadata"]["finishedOn"]
        assert t0 <= t1, (t0, t1)
        assert abs(time.time() - time.mktime(time.strptime(t1[:19], "%Y-%m-%dT%H:%M:%S")) + time.timezone) < 3600, t1
        ext = bd["externalParameters"]
        assert ext["context"] == ctxdigest, (ext, ctxdigest)
        assert ext["dockerfile"] == {"path": "Dockerfile.app", "digest": {"sha256": df_sha}}, ext
        assert ext["platform"] == plat and ext["target"] == "", ext
        if mode == "max":
            assert ext["args"] == args, ext.get("args")
        else:
            assert "args" not in ext, f"{name}: min mode carries build args: {ext}"
        ip = bd["internalParameters"]
        assert ip == {"emulated": plat != HOST, "node_key_sha256": key_sha(node)}, (plat, ip)
        deps = bd["resolvedDependencies"]
        assert deps[0] == {"name": "context", "digest": {"sha256": ctxdigest[7:]}}, deps[0]
        bases = {d["annotations"]["stage"]: d for d in deps[1:]}
        want = {"final": (f"{registry}/team/base2:1", base2[plat])}
        if mode == "max":
            want["intermediate"] = (f"{registry}/team/base1:1", base1[plat])
        assert sorted(bases) == sorted(want), f"{name} {plat}: base images {deps[1:]}, want {want}"
        for stage, (ref, digest) in want.items():
            d = bases[stage]
            assert d["name"] == ref, (stage, d)
            assert d["digest"] == {"sha256": digest[7:]}, f"{name} {plat} {stage} base: {d['digest']}, the pushed base's child is {digest}"
            assert d["uri"] == f"pkg:docker/{registry}/team/{ref.rsplit('/', 1)[1].replace(':', '@')}?platform={pct}", d["uri"]
        print(f"{name} {plat}: statement valid; node {node}, emulated {ip['emulated']}, bases {[bases[s]['digest']['sha256'][:12] for s in sorted(bases)]}")

judge("max", "max", {"VERSION": "7"})
judge("min", "min", None)
judge("off", "off", None)
judge("attest", "max", {"VERSION": "8"})
for n in ("max", "min", "off", "attest"):
    print(f"stitch_ms {n}: {json.load(open(f'{lab}/{n}.json'))['farm.stitch_ms']}")
PYEOF

# a coordinator killed while one platform is done and the other still builds attests as
# the first would have: the done platform's times and bases come back from the journal
printf 'FROM %s/team/base2:1\nARG TARGETARCH\nRUN ["/bin/busybox", "sh", "-c", "if [ $TARGETARCH = arm ]; then /bin/busybox sleep 15; fi; echo r > /r"]\n' \
    "$REGISTRY" >"$ctx/Dockerfile.slow"
lab_farmctl submit --platform linux/amd64,linux/arm/v7 --progress plain -f "$ctx/Dockerfile.slow" \
    -t "$REGISTRY/team/app:restart" --provenance=mode=max "$ctx" >"$LAB/restart.out" 2>"$LAB/restart.err" &
rpid=$!
lab_wait_until 120 "linux/amd64 to be pushed" grep -q '^\[linux/amd64 amd64-1\] pushed:' "$LAB/restart.err"
grep -q '^\[linux/arm/v7 armv7-1\] pushed:' "$LAB/restart.err" && lab_fail "arm/v7 was done before the restart: the test shows nothing"
lab_stop coordinator KILL
sleep 1
lab_start_coordinator "$LAB/farm.yaml"
wait "$rpid" || { tail -20 "$LAB/restart.err" >&2; lab_fail "the submit across the restart failed"; }
"$PY" - "$REGISTRY" <<'PYEOF' || lab_fail "the platform done before the restart lost its provenance"
import json, sys, urllib.request
registry = sys.argv[1]
def get(kind, ref, accept="application/vnd.oci.image.index.v1+json"):
    req = urllib.request.Request(f"http://{registry}/v2/{kind}/{ref}", headers={"Accept": accept})
    return urllib.request.urlopen(req).read()
idx = json.loads(get("team/app/manifests", "restart"))
base = {m["platform"]["architecture"]: m["digest"]
        for m in json.loads(get("team/base2/manifests", "1"))["manifests"]}
kids = {m["digest"]: m["platform"]["architecture"] for m in idx["manifests"] if m["platform"]["os"] != "unknown"}
atts = [m for m in idx["manifests"] if m["platform"]["os"] == "unknown"]
assert len(atts) == 2, idx
for a in atts:
    arch = kids[a["annotations"]["vnd.docker.reference.digest"]]
    man = json.loads(get("team/app/manifests", a["digest"], a["mediaType"]))
    st = json.loads(get("team/app/blobs", man["layers"][0]["digest"], "*/*"))
    md = st["predicate"]["runDetails"]["metadata"]
    deps = st["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert "startedOn" in md and "finishedOn" in md, (arch, md)
    assert [d["digest"]["sha256"] for d in deps[1:]] == [base[arch][7:]], (arch, deps)
    print(f"after the restart, {arch}: {md['startedOn']} .. {md['finishedOn']}, base {deps[1]['name']}")
PYEOF

# skopeo still handles the index: picks the host's image, and copies everything
skopeo inspect --tls-verify=false "docker://$REGISTRY/team/app:max" >"$LAB/inspect.json" \
    || lab_fail "skopeo inspect of the attested index failed"
skopeo copy --multi-arch all --src-tls-verify=false "docker://$REGISTRY/team/app:max" \
    "oci:$LAB/copy:max" >/dev/null 2>"$LAB/copy.err" \
    || { cat "$LAB/copy.err" >&2; lab_fail "skopeo copy --multi-arch all of the attested index failed"; }
"$PY" - "$LAB/copy" <<'PYEOF' || lab_fail "skopeo copy --multi-arch all left something out"
import json, os, sys
layout = sys.argv[1]
blob = lambda d: os.path.join(layout, "blobs", "sha256", d.split(":")[1])
top = json.load(open(os.path.join(layout, "index.json")))["manifests"][0]
idx = json.load(open(blob(top["digest"])))
n = 0
for m in idx["manifests"]:
    man = json.load(open(blob(m["digest"])))
    for d in [man["config"]] + man["layers"]:
        assert os.path.getsize(blob(d["digest"])) == d["size"], d
    n += 1
assert n == 6, n
print("skopeo copy --multi-arch all: 3 images and 3 attestation manifests with their blobs")
PYEOF
# no partial index: a registry that serves an attestation manifest with other bytes than
# were pushed fails the stitch, and nothing goes under the tag
if lab_farmctl submit -t "$REGISTRY/team/lied:1" --platform "$PLATS" --progress plain \
    -f "$ctx/Dockerfile.app" "$ctx" >"$LAB/lied.out" 2>"$LAB/lied.err"; then
    lab_fail "the build succeeded though the registry lied about its attestations"
fi
grep -q 'lied about' "$LAB/lying.log" || lab_fail "the forwarder was never asked for an attestation"
grep -q 'provenance for child sha256:[0-9a-f]*, in .*team/lied: reading attestation manifest sha256:[0-9a-f]* back: .*content has digest' "$LAB/lied.err" \
    || { tail -5 "$LAB/lied.err" >&2; lab_fail "the failure does not say which attestation the registry changed"; }
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.index.v1+json' \
    "http://$upstream/v2/team/lied/manifests/1")
[[ $code == 404 ]] || lab_fail "an index went under team/lied:1 (HTTP $code) after a failed attestation"
lab_log "PASS: provenance per platform (max, min, --attest, off) read back and judged; a lying registry gets no index"
