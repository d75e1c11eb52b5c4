#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A 3-platform submit on real parts: docker-registry, buildah, a coordinator and agents
# for linux/amd64, linux/arm64, linux/arm/v7 (arm RUN steps under qemu-user-static).
# Judged by real clients: the OCI schema, skopeo inspect/copy, qemu running the arm64
# child's own binary.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
lab_start_farm
ctx=$LAB/example
lab_example_context "$ctx"
tag=$REGISTRY/team/example:1.0

t0=$(date +%s.%N)
lab_farmctl submit -t "$tag" -t "$REGISTRY/team/example:latest" \
    --platform linux/amd64,linux/arm64,linux/arm/v7 --build-arg VERSION=1.0 \
    --metadata-file "$LAB/meta.json" --progress plain "$ctx" >"$LAB/submit.out" 2>"$LAB/submit.err" \
    || { cat "$LAB/submit.err"; lab_fail "3-platform submit failed"; }
t1=$(date +%s.%N)
cat "$LAB/submit.err" >&2
digest=$(tail -n1 "$LAB/submit.out")
lab_log "submit took $(echo "$t1 - $t0" | bc) s; index $digest"
[[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || lab_fail "last stdout line is not a digest: $digest"
# progress lines are tagged with platform and node
grep -q '^\[linux/arm64 arm64-1\]' "$LAB/submit.err" || lab_fail "no progress line tagged [linux/arm64 arm64-1]"
grep -q '^\[linux/arm/v7 armv7-1\]' "$LAB/submit.err" || lab_fail "no progress line tagged [linux/arm/v7 armv7-1]"

PY=${LAB_PYTHON:-/usr/bin/python3}
skopeo inspect --raw --tls-verify=false "docker://$tag" >"$LAB/index.json"
skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/team/example:latest" >"$LAB/index-latest.json"
cmp -s "$LAB/index.json" "$LAB/index-latest.json" || lab_fail "the two tags name different indexes"
got=$(sha256sum "$LAB/index.json" | cut -d' ' -f1)
[[ "sha256:$got" == "$digest" ]] || lab_fail "registry index sha256:$got != printed $digest"

# the index: OCI media type, valid against the official schema, explicit variants,
# children = the metadata file's per-platform digests
"$PY" - "$LAB/index.json" "$LAB/meta.json" "$digest" <<'PYEOF'
import json, sys, os, glob
index = json.load(open(sys.argv[1]))
meta = json.load(open(sys.argv[2]))
digest = sys.argv[3]
assert index["schemaVersion"] == 2
assert index["mediaType"] == "application/vnd.oci.image.index.v1+json", index["mediaType"]
plats = {}
for m in index["manifests"]:
    if m.get("annotations", {}).get("vnd.docker.reference.type") == "attestation-manifest":
        continue  # provenance (test_e2e_provenance judges it)
    p = m["platform"]
    key = p["os"] + "/" + p["architecture"] + ("/" + p["variant"] if p.get("variant") else "")
    plats[key] = m
assert sorted(plats) == ["linux/amd64", "linux/arm/v7", "linux/arm64/v8"], sorted(plats)
assert meta["containerimage.digest"] == digest, meta
assert meta["containerimage.descriptor"]["digest"] == digest
assert meta["containerimage.descriptor"]["mediaType"] == index["mediaType"]
for canon, key, node in [("linux/amd64", "linux/amd64", "amd64-1"),
                         ("linux/arm64", "linux/arm64/v8", "arm64-1"),
                         ("linux/arm/v7", "linux/arm/v7", "armv7-1")]:
    assert meta["farm.platforms"][canon]["digest"] == plats[key]["digest"], canon
    assert meta["farm.platforms"][canon]["node"] == node, meta["farm.platforms"][canon]
    assert plats[key]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
# the official schema, from Debian's golang-github-opencontainers-image-spec-dev
import jsonschema
schema_dir = "/usr/share/gocode/src/github.com/opencontainers/image-spec/schema"
def sibling(uri):  # never the network: every reference is a sibling schema file
    return json.load(open(os.path.join(schema_dir, uri.rsplit("/", 1)[-1])))
schema = json.load(open(schema_dir + "/image-index-schema.json"))
store = {}
for f in glob.glob(schema_dir + "/*.json"):
    doc = json.load(open(f))
    store[os.path.basename(f)] = doc  # jsonschema 4.10 sometimes resolves "defs.json" bare
    if doc.get("id"):
        store[doc["id"]] = doc
resolver = jsonschema.RefResolver.from_schema(schema, store=store, handlers={"https": sibling, "http": sibling})
jsonschema.validate(index, schema, resolver=resolver)
print("index valid against image-index-schema.json with", len(index["manifests"]), "children")
PYEOF

name=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["image.name"])' "$LAB/meta.json")
[[ $name == "$tag,$REGISTRY/team/example:latest" ]] || lab_fail "metadata image.name is $name"

# skopeo picks the right child for each platform
for spec in "amd64::linux/amd64" "arm64:v8:linux/arm64" "arm:v7:linux/arm/v7"; do
    arch=${spec%%:*}; rest=${spec#*:}; variant=${rest%%:*}; canon=${rest#*:}
    args=(--override-os linux --override-arch "$arch")
    [[ -n $variant ]] && args+=(--override-variant "$variant")
    # skopeo 1.9 prints the index digest and no variant: the chosen child shows in its
    # architecture and layers
    picked=$(skopeo "${args[@]}" inspect --tls-verify=false "docker://$tag" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["Architecture"] + "/" + d.get("Variant", "") + " " + ",".join(d["Layers"]))')
    want=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["farm.platforms"][sys.argv[2]]["digest"])' "$LAB/meta.json" "$canon")
    want_layers=$(skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/team/example@$want" | "$PY" -c 'import json,sys; print(",".join(l["digest"] for l in json.load(sys.stdin)["layers"]))')
    [[ $picked == "$arch/$variant $want_layers" || $picked == "$arch/ $want_layers" ]] \
        || lab_fail "skopeo picked [$picked] for $canon, want child $want [$arch/$variant $want_layers]"
    lab_log "skopeo picks child $want for $canon"
done

# skopeo copy --all copies the whole index
skopeo copy --all --src-tls-verify=false "docker://$tag" "oci:$LAB/copy:all" >/dev/null
"$PY" - "$LAB/copy" "$LAB/index.json" <<'PYEOF' || lab_fail "skopeo copy --all did not copy the whole index"
import json, os, sys
layout, index = sys.argv[1], json.load(open(sys.argv[2]))
blob = lambda d: os.path.join(layout, "blobs", "sha256", d.split(":")[1])
for child in index["manifests"]:          # every child manifest, its config and layers
    m = json.load(open(blob(child["digest"])))
    for d in [m["config"]] + m["layers"]:
        assert os.path.getsize(blob(d["digest"])) == d["size"], d
print("skopeo copy --all copied", len(index["manifests"]), "children with their blobs")
PYEOF

# the arm64 child's own busybox runs under qemu-aarch64-static and says aarch64
skopeo --override-arch arm64 copy --src-tls-verify=false "docker://$tag" "dir:$LAB/arm64" >/dev/null
mkdir -p "$LAB/arm64-root"
for layer in $("$PY" -c 'import json,sys; [print(l["digest"].split(":")[1]) for l in json.load(open(sys.argv[1]))["layers"]]' "$LAB/arm64/manifest.json"); do
    tar -xzf "$LAB/arm64/$layer" -C "$LAB/arm64-root" 2>/dev/null || tar -xf "$LAB/arm64/$layer" -C "$LAB/arm64-root"
done
[[ -f $LAB/arm64-root/bin/busybox ]] || lab_fail "no /bin/busybox in the arm64 child"
file_out=$(od -An -tx1 -j18 -N2 "$LAB/arm64-root/bin/busybox" | tr -d ' ')
[[ $file_out == b700 ]] || lab_fail "arm64 child's busybox is not an aarch64 ELF (e_machine $file_out)"
arch=$(qemu-aarch64-static "$LAB/arm64-root/bin/busybox" uname -m)
[[ $arch == aarch64 ]] || lab_fail "arm64 child's busybox reports $arch"
[[ $(cat "$LAB/arm64-root/etc/farm-target-platform") == linux/arm64 ]] || lab_fail "TARGETPLATFORM in arm64 child: $(cat "$LAB/arm64-root/etc/farm-target-platform")"
[[ $(cat "$LAB/arm64-root/etc/farm-built-on") == aarch64 ]] || lab_fail "arm64 RUN step did not run as aarch64"
[[ $(cat "$LAB/arm64-root/etc/farm-version") == 1.0 ]] || lab_fail "--build-arg VERSION did not reach the build"
lab_log "arm64 child's busybox under qemu-aarch64-static: $arch"

# a bare `farmctl submit` in a repository with a farm.yaml: tags, platforms and the
# coordinator endpoint come from it ($LAB/farm.yaml: build.tags = $REGISTRY/example:latest);
# the same context is not sent again
cp "$LAB/farm.yaml" "$ctx/farm.yaml"
(cd "$ctx" && env -u FARM_COORDINATOR "$FARMCTL" submit --progress plain) >"$LAB/submit2.out" 2>"$LAB/submit2.err" \
    || { cat "$LAB/submit2.err"; lab_fail "bare submit with farm.yaml defaults failed"; }
rm "$ctx/farm.yaml"
grep -q '#build .* accepted: 3 platform(s)' "$LAB/submit2.err" || lab_fail "bare submit did not take 3 platforms from farm.yaml"
[[ $(skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/example:latest" | sha256sum | cut -d' ' -f1) == "$(tail -n1 "$LAB/submit2.out" | cut -d: -f2)" ]] \
    || lab_fail "bare submit did not push to build.tags"
# $FARM_COORDINATOR is used when --coordinator is absent; the context is already there
FARM_COORDINATOR=$FARM_COORDINATOR "$FARMCTL" submit -t "$REGISTRY/team/example:again" \
    --platform linux/amd64,linux/arm64,linux/arm/v7 --build-arg VERSION=1.0 --progress plain "$ctx" \
    >"$LAB/submit3.out" 2>"$LAB/submit3.err" || { cat "$LAB/submit3.err"; lab_fail "third submit failed"; }
grep -q 'already on the coordinator' "$LAB/submit3.err" || lab_fail "context was sent twice"
# --progress auto on a terminal draws one live line per platform (run under a pty). The
# terminal's type is set here, not inherited: CI runners have TERM unset or dumb
tty_submit() { # OUT TERM TAG
    SHELL=/bin/sh TERM=$2 script -qfec "$FARMCTL submit --coordinator $FARM_COORDINATOR -t $REGISTRY/team/example:$3 --platform linux/amd64,linux/arm64,linux/arm/v7 $ctx" \
        /dev/null >"$1" 2>&1 </dev/null || { cat -v "$1"; lab_fail "submit on a terminal (TERM=$2) failed"; }
}
tty_submit "$LAB/tty.out" xterm tty
grep -q $'\033\\[J' "$LAB/tty.out" || lab_fail "no live redraw on a terminal"
sed -i 's/\x1b\[[0-9]*[AJ]//g; s/\r//g' "$LAB/tty.out"
for p in linux/amd64 linux/arm64 linux/arm/v7; do
    grep -Eq "^\[\+\] $p +[a-z0-9-]+ +pushed" "$LAB/tty.out" || { cat -v "$LAB/tty.out"; lab_fail "no finished line for $p on the terminal"; }
done
! grep -q '^\[linux/amd64 amd64-1\] STEP' "$LAB/tty.out" || lab_fail "the terminal got plain log lines"
# a dumb terminal cannot redraw: plain tagged lines instead
tty_submit "$LAB/dumb.out" dumb dumb
! grep -q $'\033\\[' "$LAB/dumb.out" || { cat -v "$LAB/dumb.out"; lab_fail "TERM=dumb got escape sequences"; }
grep -q '^\[linux/arm64 arm64-1\]' <(tr -d '\r' <"$LAB/dumb.out") \
    || { cat -v "$LAB/dumb.out"; lab_fail "TERM=dumb got no plain line tagged [linux/arm64 arm64-1]"; }

# agents clean their job directories
for a in amd64-1 arm64-1 armv7-1; do
    left=$(find "$LAB/agents/$a/work/jobs" -mindepth 1 -maxdepth 1 | wc -l)
    (( left == 0 )) || lab_fail "agent $a left $left job dir(s) behind"
done

# farmctl nodes lists the farm with states and slots
lab_farmctl nodes >"$LAB/nodes.out"
cat "$LAB/nodes.out" >&2
grep -Eq '^arm64-1 +linux/arm64 +ready +0/1' "$LAB/nodes.out" || lab_fail "farmctl nodes does not show arm64-1 ready 0/1"
lab_log "PASS"
