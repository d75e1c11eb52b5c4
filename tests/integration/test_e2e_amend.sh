#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# farmctl submit --amend on real parts (a registry, a farm of three platforms):
# 1. an index of linux/amd64, linux/arm64 and linux/arm/v7 is pushed; --amend --platform
#    linux/arm/v7 with a changed context rebuilds only arm/v7: the new index keeps the
#    amd64 and arm64 children with their digests unchanged, in their places, the arm/v7 one
#    is new, and the index annotation of the first push is kept;
# 2. an index crafted with attestation entries (platform unknown/unknown, annotation
#    vnd.docker.reference.digest) for the amd64 and the arm/v7 child: the amend keeps the
#    amd64 one and drops the arm/v7 one;
# 3. a lying kept child: an index whose linux/arm64 entry names the amd64 image; the amend
#    is refused naming that entry, and the tag is not moved;
# 4. a tag with no image, and a tag naming a single image, are refused, saying why;
#    --amend without --platform is refused by farmctl before anything is sent;
# 5. an amend with a second repository of the same registry mounts the kept images there
#    (test_e2e_multirepo: another registry's is refused).
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
for tool in skopeo curl; do
    command -v "$tool" >/dev/null || lab_fail "$tool is not installed"
done
export LAB_SKIP_BINFMT=1
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=x86-1" "linux/arm64=arm-1" "linux/arm/v7=armv7-1"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent x86-1 linux/amd64
lab_start_agent arm-1 linux/arm64
lab_start_agent armv7-1 linux/arm/v7
lab_wait_nodes 3 30 x86-1 arm-1 armv7-1
REPO=$REGISTRY/team/amend

# ctx NAME CONTENT: a context whose image holds CONTENT (no RUN step: no emulation needed)
ctx() {
    mkdir -p "$LAB/$1"
    printf 'FROM scratch\nCOPY f /f\n' >"$LAB/$1/Dockerfile"
    echo "$2" >"$LAB/$1/f"
}
# submit NAME CTX ARGS...: farmctl submit; exit status in rc_NAME, stdout/stderr in NAME.out/err
submit() {
    local name=$1 c=$2 rc=0
    shift 2
    lab_farmctl submit --progress plain --metadata-file "$LAB/$name.json" "$@" "$LAB/$c" \
        >"$LAB/$name.out" 2>"$LAB/$name.err" || rc=$?
    printf -v "rc_$name" '%s' "$rc"
}
# reg OP ARGS...: the registry from python (tests/integration's own crafting)
reg() {
    "$LAB_PYTHON" - "$REGISTRY" "$@" <<'PY'
import hashlib, json, sys, urllib.request
base = "http://" + sys.argv[1]
op, args = sys.argv[2], sys.argv[3:]
IDX = "application/vnd.oci.image.index.v1+json"
MAN = "application/vnd.oci.image.manifest.v1+json"
def req(method, path, data=None, ctype=None, accept=None):
    r = urllib.request.Request(base + path, data=data, method=method)
    if ctype: r.add_header("Content-Type", ctype)
    if accept: r.add_header("Accept", accept)
    return urllib.request.urlopen(r)
def get(repo, ref):
    with req("GET", f"/v2/{repo}/manifests/{ref}",
             accept=IDX + "," + MAN) as r:
        return r.read()
def put(repo, ref, body, ctype):
    req("PUT", f"/v2/{repo}/manifests/{ref}", body, ctype).close()
    return "sha256:" + hashlib.sha256(body).hexdigest()
def blob(repo, body):
    d = "sha256:" + hashlib.sha256(body).hexdigest()
    with req("POST", f"/v2/{repo}/blobs/uploads/") as r:
        loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else base + loc
    sep = "&" if "?" in loc else "?"
    urllib.request.urlopen(urllib.request.Request(loc + sep + "digest=" + d, data=body,
        method="PUT", headers={"Content-Type": "application/octet-stream"})).close()
    return d
if op == "children":       # REPO TAG: "arch[/variant] digest" per image entry
    for m in json.loads(get(*args))["manifests"]:
        p = m["platform"]
        v = p.get("variant") if p["architecture"] == "arm" else None  # arm64's is v8
        print(p["architecture"] + ("/" + v if v else ""), m["digest"])
elif op == "index":        # REPO TAG: the raw index
    sys.stdout.write(get(*args).decode())
elif op == "attested":     # REPO FROM NEW: FROM's index plus an attestation per child
    repo, src, dst = args
    idx = json.loads(get(repo, src))
    cfg = blob(repo, b"{}")
    for m in list(idx["manifests"]):
        att = json.dumps({"schemaVersion": 2, "mediaType": MAN, "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": 2},
            "layers": [], "annotations": {"of": m["digest"]}}).encode()
        d = put(repo, "sha256:" + hashlib.sha256(att).hexdigest(), att, MAN)
        idx["manifests"].append({"mediaType": MAN, "digest": d, "size": len(att),
            "platform": {"architecture": "unknown", "os": "unknown"},
            "annotations": {"vnd.docker.reference.digest": m["digest"],
                            "vnd.docker.reference.type": "attestation-manifest"}})
    print(put(repo, dst, json.dumps(idx).encode(), IDX))
elif op == "liar":         # REPO FROM NEW: FROM's index whose arm64 entry names the amd64 image
    repo, src, dst = args
    idx = json.loads(get(repo, src))
    amd = [m for m in idx["manifests"] if m["platform"]["architecture"] == "amd64"][0]
    for m in idx["manifests"]:
        if m["platform"]["architecture"] == "arm64":
            m["digest"], m["size"] = amd["digest"], amd["size"]
    print(put(repo, dst, json.dumps(idx).encode(), IDX))
elif op == "single":       # REPO DIGEST NEW: the image DIGEST under tag NEW
    repo, d, dst = args
    print(put(repo, dst, get(repo, d), MAN))
PY
}
child() { reg children team/amend "$1" | awk -v p="$2" '$1 == p { print $2 }'; }

# --- 1. three platforms, then arm/v7 amended
ctx v1 one
submit full v1 -t "$REPO:1" --platform linux/amd64,linux/arm64,linux/arm/v7 \
    --annotation index:org.example.kept=yes
cat "$LAB/full.err" >&2
((rc_full == 0)) || lab_fail "the first submit failed (exit $rc_full)"
i1=$(cat "$LAB/full.out")
a1=$(child 1 amd64) b1=$(child 1 arm64) c1=$(child 1 arm/v7)
[[ -n $a1 && -n $b1 && -n $c1 ]] || lab_fail "the first index lacks a platform"
ctx v2 two
submit amend v2 -t "$REPO:1" --amend --platform linux/arm/v7
cat "$LAB/amend.err" >&2
((rc_amend == 0)) || lab_fail "the amend failed (exit $rc_amend)"
i2=$(cat "$LAB/amend.out")
[[ $i2 =~ ^sha256:[0-9a-f]{64}$ && $i2 != "$i1" ]] || lab_fail "the amend printed no new index ($i2)"
got=$(lab_index "$REPO:1" | sha256sum | sed 's/^/sha256:/; s/ .*//')
[[ $got == "$i2" ]] || lab_fail "$REPO:1 names $got, not the amended index $i2"
reg children team/amend 1 >"$LAB/children2"
[[ $(awk '{print $1}' "$LAB/children2" | paste -sd,) == amd64,arm64,arm/v7 ]] \
    || lab_fail "the amended index's platforms: $(cat "$LAB/children2")"
[[ $(child 1 amd64) == "$a1" ]] || lab_fail "amd64 was not kept: $(child 1 amd64) != $a1"
[[ $(child 1 arm64) == "$b1" ]] || lab_fail "arm64 was not kept: $(child 1 arm64) != $b1"
c2=$(child 1 arm/v7)
[[ -n $c2 && $c2 != "$c1" ]] || lab_fail "arm/v7 was not rebuilt ($c2, was $c1)"
# only arm/v7 was built: one job
n=$(grep -c 'pushed: sha256:' "$LAB/amend.err" || true)
((n == 1)) || lab_fail "the amend built $n platforms, not 1"
reg index team/amend 1 | grep -q '"org.example.kept":"yes"' \
    || lab_fail "the amended index lost the first push's annotation"
grep -q "\[linux/amd64 kept\] $a1" "$LAB/amend.err" || lab_fail "farmctl does not say amd64 was kept"
skopeo inspect --tls-verify=false --override-arch arm --override-variant v7 "docker://$REPO:1" \
    | grep -q '"Architecture": "arm"' || lab_fail "skopeo does not find arm/v7 in the amended index"
lab_log "amended: amd64 $a1 and arm64 $b1 kept, arm/v7 $c1 -> $c2"

# --- 2. attestations: the kept child's stays, the rebuilt one's goes
reg attested team/amend 1 att >/dev/null
ctx v3 three
submit att v3 -t "$REPO:att" --amend --platform linux/arm/v7
cat "$LAB/att.err" >&2
((rc_att == 0)) || lab_fail "the amend of an index with attestations failed (exit $rc_att)"
reg index team/amend att | "$LAB_PYTHON" -c '
import json, sys
a1, c2 = sys.argv[1:]
m = json.load(sys.stdin)["manifests"]
att = [x["annotations"]["vnd.docker.reference.digest"] for x in m
       if x["platform"]["os"] == "unknown"]
imgs = [x for x in m if x["platform"]["os"] != "unknown"]
assert len(imgs) == 3, imgs
assert a1 in att, ("the kept amd64 attestation is gone", att)
assert c2 not in att and len(att) == 2, ("the rebuilt arm/v7 attestation was kept", att)
' "$a1" "$c2" || lab_fail "the attestations of the amended index are wrong"
lab_log "attestations: the kept platforms' kept, the rebuilt platform's dropped"

# --- 3. a lying kept child: refused, naming the entry; the tag stays
lie=$(reg liar team/amend 1 lie)
submit liar v3 -t "$REPO:lie" --amend --platform linux/arm/v7
cat "$LAB/liar.err" >&2
((rc_liar != 0)) || lab_fail "an index whose arm64 entry names an amd64 image was amended"
grep -q "kept index entry 2 (linux/arm64, $a1) refused" "$LAB/liar.err" \
    || lab_fail "the refusal does not name the lying entry"
grep -q "says linux/amd64, not linux/arm64" "$LAB/liar.err" || lab_fail "the refusal does not say what lied"
got=$(lab_index "$REPO:lie" | sha256sum | sed 's/^/sha256:/; s/ .*//')
[[ $got == "$lie" ]] || lab_fail "$REPO:lie moved to $got after a refused amend"
lab_log "a lying kept child: refused, naming entry 2"

# --- 4. nothing to amend
submit none v3 -t "$REPO:nothing" --amend --platform linux/arm/v7
((rc_none != 0)) || lab_fail "an amend of a tag with no image succeeded"
grep -q "$REPO:nothing names no image" "$LAB/none.err" || { cat "$LAB/none.err" >&2; lab_fail "the refusal does not say the tag names nothing"; }
reg single team/amend "$a1" single >/dev/null
submit single v3 -t "$REPO:single" --amend --platform linux/arm/v7
((rc_single != 0)) || lab_fail "an amend of a single image succeeded"
grep -q "$REPO:single is a single image" "$LAB/single.err" || { cat "$LAB/single.err" >&2; lab_fail "the refusal does not say it is a single image"; }
submit noplat v3 -t "$REPO:1" --amend
((rc_noplat == 2)) || lab_fail "--amend without --platform: exit $rc_noplat, not 2"
grep -q "pass --platform" "$LAB/noplat.err" || lab_fail "--amend without --platform does not say what to pass"
got=$(lab_index "$REPO:1" | sha256sum | sed 's/^/sha256:/; s/ .*//')
[[ $got == "$i2" ]] || lab_fail "$REPO:1 moved to $got"
lab_log "no index, a single image, no --platform: refused"

# --- 5. with a second repository of the same registry: the kept images are mounted there
submit tworepo v3 -t "$REPO:1" -t "$REGISTRY/team/amend2:1" --amend --platform linux/arm/v7
cat "$LAB/tworepo.err" >&2
((rc_tworepo == 0)) || lab_fail "an amend into a second repository of the registry failed (exit $rc_tworepo)"
i3=$(cat "$LAB/tworepo.out")
for r in "$REPO:1" "$REGISTRY/team/amend2:1"; do
    got=$(lab_index "$r" | sha256sum | sed 's/^/sha256:/; s/ .*//')
    [[ $got == "$i3" ]] || lab_fail "$r names $got, not the amended index $i3"
done
[[ $(reg children team/amend2 1 | awk '$1 == "amd64" {print $2}') == "$a1" ]] \
    || lab_fail "team/amend2:1 does not keep amd64 $a1"
skopeo inspect --tls-verify=false --override-arch arm64 "docker://$REGISTRY/team/amend2:1" \
    | grep -q '"Architecture": "arm64"' || lab_fail "the kept arm64 image is not whole in team/amend2"
grep -F '/v2/team/amend2/blobs/uploads/?mount=sha256:' "$LAB/registry.log" | grep -F 'from=team/amend' \
    | grep -q 'http.response.status=201' || lab_fail "the kept images' blobs were not mounted into team/amend2"
lab_log "a second repository of the registry: the kept images mounted there, both tags amended"
lab_log "PASS"
