#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Signed indexes, judged by containers/image (skopeo) with a sigstoreSigned policy and
# farm's public key (Debian 12's skopeo has sigstore verification patched out, so the
# test runs Debian 13's, in a root of its own: lab_skopeo), by that policy's evaluation
# written again in Python (sigstore_policy.py, which also judges the index itself), and
# by farmctl verify:
#  1. the coordinator refuses to start on a signing key others may read, one that is not
#     EC P-256, or a missing file, naming farm.yaml's line and the fix;
#  2. a three-platform build signed under two tags is ACCEPTED under each tag and by
#     digest, and farmctl verify shows its three platforms; under a tag it was not signed
#     for it is REFUSED;
#  3. an attacker replaces the index under the tag (their own amd64 image and index, pushed
#     with curl; then with farm's signature manifests copied beside them): REFUSED; a
#     --amend over it is refused too (farm signs no kept entry it did not sign before),
#     while an amend over farm's own signed index is signed and ACCEPTED;
#  4. a build signed by another key (the coordinator restarted with it; a reload refuses
#     the change): REFUSED with farm's key, ACCEPTED with the other's;
#  5. a stitch that refuses a child (a lying node, tests/integration/stitch_liar.py) signs
#     nothing: no new signature manifest, no new signature layer;
#  6. the time signing adds: stitch_ms of the same 3-platform rebuild without and with a key.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
for tool in skopeo curl openssl; do
    command -v "$tool" >/dev/null || lab_fail "$tool is not installed"
done
"$LAB_PYTHON" -c 'import zmq' 2>/dev/null || lab_fail "python3-zmq is not installed"
lab_registry_start
lab_binfmt_register
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=amd64-1,liar" "linux/arm64=arm64-1" "linux/arm/v7=armv7-1"
all=linux/amd64,linux/arm64,linux/arm/v7
K=$LAB/keys

# keygen --signing: a 0600 PEM EC P-256 key and its public key, never overwritten
"$FARMCTL" keygen --signing farm --dir "$K" >"$LAB/keygen.out" || lab_fail "keygen --signing failed"
"$FARMCTL" keygen --signing other --dir "$K" >/dev/null || lab_fail "keygen --signing other failed"
[[ $(stat -c %a "$K/farm.key") == 600 ]] || lab_fail "farm.key is mode $(stat -c %a "$K/farm.key"), not 600"
openssl pkey -in "$K/farm.key" -noout -text 2>/dev/null | grep -q 'NIST CURVE: P-256' \
    || lab_fail "farm.key is not an EC P-256 key openssl reads"
openssl pkey -pubin -in "$K/farm.pub" -noout 2>/dev/null || lab_fail "farm.pub is not a PEM public key"
if "$FARMCTL" keygen --signing farm --dir "$K" >/dev/null 2>"$LAB/keygen2.err"; then
    lab_fail "keygen --signing overwrote farm.key"
fi
grep -q "never overwritten" "$LAB/keygen2.err" || lab_fail "keygen's refusal does not say why"

# with_key FILE: farm.yaml with coordinator.signing_key_file: FILE
with_key() {
    sed -e '/^  signing_key_file:/d' -e "/^coordinator:/a\\  signing_key_file: $1" \
        "$LAB/farm.yaml" >"$LAB/farm.yaml.new" && mv "$LAB/farm.yaml.new" "$LAB/farm.yaml"
}

# 1. keys the coordinator refuses
refused() { # WHY PATTERN...
    local why=$1 rc=0 p
    shift
    timeout 30 "$FARM_COORDINATOR_BIN" --config "$LAB/farm.yaml" >"$LAB/refused.log" 2>&1 || rc=$?
    ((rc == 78)) || { cat "$LAB/refused.log" >&2; lab_fail "$why: the coordinator exited $rc, not 78"; }
    grep -q "farm.yaml:[0-9]*:[0-9]*: coordinator.signing_key_file" "$LAB/refused.log" \
        || { cat "$LAB/refused.log" >&2; lab_fail "$why: the refusal does not name farm.yaml's line"; }
    for p in "$@"; do
        grep -qF -- "$p" "$LAB/refused.log" || { cat "$LAB/refused.log" >&2; lab_fail "$why: the refusal does not say \"$p\""; }
    done
    lab_log "refused: $why"
}
cp "$K/farm.key" "$K/loose.key"
chmod 644 "$K/loose.key"
with_key "$K/loose.key"
refused "a key others may read" "chmod 600"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$K/p384.key" 2>/dev/null
chmod 600 "$K/p384.key"
with_key "$K/p384.key"
refused "a P-384 key" "not an EC P-256"
with_key "$K/absent.key"
refused "a missing key" "farmctl keygen --signing"

# 2. the farm signs
with_key "$K/farm.key"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent amd64-1 linux/amd64
lab_start_agent arm64-1 linux/arm64
lab_start_agent armv7-1 linux/arm/v7
lab_wait_nodes 3 30 amd64-1 arm64-1 armv7-1
grep -q "signing every pushed index with $K/farm.key" "$LAB/coordinator.log" \
    || lab_fail "the coordinator does not say it signs"
lab_example_context "$LAB/ctx"
repo=team/signed
lab_farmctl submit -t "$REGISTRY/$repo:1" -t "$REGISTRY/$repo:stable" --platform "$all" \
    --progress plain --metadata-file "$LAB/meta1.json" "$LAB/ctx" >"$LAB/s1.out" 2>"$LAB/s1.err" \
    || { cat "$LAB/s1.err" >&2; lab_fail "the signed build failed"; }
for t in 1 stable; do
    # the 3 images and their 3 provenance attestations
    grep -qF "#signed $REGISTRY/$repo:$t (the index and 6 manifest(s) it lists)" "$LAB/s1.err" \
        || { cat "$LAB/s1.err" >&2; lab_fail "farmctl submit does not say it signed $repo:$t"; }
done
index=$(tr -d '\n' <"$LAB/s1.out" | grep -o 'sha256:[0-9a-f]\{64\}' | tail -n1)
# the private key is in no log (the coordinator's holds the helper's lines too)
keyline=$(sed -n 2p "$K/farm.key")
[[ ${#keyline} -ge 40 ]] || lab_fail "farm.key has no PEM body line"
if grep -rlF -- "$keyline" "$LAB"/*.log "$LAB"/*.err "$LAB"/*.out 2>/dev/null; then
    lab_fail "the signing key appears in a log"
fi
[[ -n $index ]] || lab_fail "no index digest in the submit's output"

# Three judges. skopeo (Debian 13's 1.18) with a policy that takes only
# farm's signatures, sigstore attachments on: the standard client, which judges each
# image of the index against its own signatures. sigstore_policy.py is that policy
# evaluation again, in Python, sharing no code with farm, and judges the index too. And
# farmctl verify.
lab_skopeo_root
mkdir -p "$LAB/registries.d"
printf 'docker:\n  %s:\n    use-sigstore-attachments: true\n' "$REGISTRY" >"$LAB/registries.d/farm.yaml"
policy() { # KEYFILE OUT
    printf '{"default": [{"type": "reject"}], "transports": {"docker": {"%s": [{"type": "sigstoreSigned", "keyPath": "%s", "signedIdentity": {"type": "matchRepoDigestOrExact"}}]}}}\n' \
        "$REGISTRY" "$1" >"$2"
}
policy "$K/farm.pub" "$LAB/policy.json"
n_copy=0
copy() { # REF [POLICY]: skopeo copy --multi-arch all, output in $LAB/copy.out
    n_copy=$((n_copy + 1))
    lab_skopeo --policy "${2:-$LAB/policy.json}" --registries.d "$LAB/registries.d" copy \
        --src-tls-verify=false --remove-signatures --multi-arch all "docker://$1" \
        "oci:$LAB/copy$n_copy:x" >"$LAB/copy.out" 2>&1
}
# the manifests REF's index lists: 3 images and their 3 provenance attestations
listed() { lab_index "$1" | "$LAB_PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["manifests"]))'; }
skopeo_accepts() { # REF: every image of the index copied, each judged by its signatures
    copy "$1" "${2:-}" || { cat "$LAB/copy.out" >&2; lab_fail "skopeo refused $1"; }
    (($(grep -c "Copying image sha256:" "$LAB/copy.out") == 6 && $(listed "$1") == 6)) \
        || { cat "$LAB/copy.out" >&2; lab_fail "skopeo did not copy $1's 3 images and 3 attestations"; }
    [[ -f $LAB/copy$n_copy/index.json ]] || lab_fail "skopeo wrote no OCI layout for $1"
    lab_log "skopeo accepts $1 (3 images and 3 attestations, each sigstore-signed by the policy's key)"
}
skopeo_refuses() { # REF PATTERN [POLICY]
    if copy "$1" "${3:-}"; then cat "$LAB/copy.out" >&2; lab_fail "skopeo accepted $1"; fi
    grep -qiE "$2" "$LAB/copy.out" || { cat "$LAB/copy.out" >&2; lab_fail "skopeo refused $1 but not because: $2"; }
    lab_log "skopeo refuses $1: $(grep -oiE "$2" "$LAB/copy.out" | head -n1)"
}
judge() { "$LAB_PYTHON" "$FARM_SOURCE_DIR/tests/integration/sigstore_policy.py" "$@"; }
judge_accepts() { # REF PUB
    judge "$1" "$2" >"$LAB/judge.out" 2>&1 || { cat "$LAB/judge.out" >&2; lab_fail "the policy judge refused $1"; }
    (($(grep -c ': accepted$' "$LAB/judge.out") == 7)) || { cat "$LAB/judge.out" >&2; lab_fail "the judge did not see the index, 3 images and 3 attestations"; }
    lab_log "the policy judge accepts $1 (index, 3 images, 3 attestations)"
}
judge_refuses() { # REF PUB PATTERN
    if judge "$1" "$2" >"$LAB/judge.out" 2>&1; then cat "$LAB/judge.out" >&2; lab_fail "the policy judge accepted $1"; fi
    grep -qE "$3" "$LAB/judge.out" || { cat "$LAB/judge.out" >&2; lab_fail "the judge refused $1 but not because: $3"; }
    lab_log "the policy judge refuses $1: $(grep -oE "$3" "$LAB/judge.out" | head -n1)"
}
verify() { "$FARMCTL" verify --insecure "$@"; }
verify_refuses() { # REF PUB PATTERN
    if verify "$1" --key "$2" >"$LAB/v.out" 2>&1; then cat "$LAB/v.out" >&2; lab_fail "farmctl verify accepted $1 with $2"; fi
    grep -qE "$3" "$LAB/v.out" || { cat "$LAB/v.out" >&2; lab_fail "farmctl verify refused $1 but not because: $3"; }
    grep -q "NOT VERIFIED" "$LAB/v.out" || lab_fail "farmctl verify does not say NOT VERIFIED for $1"
    lab_log "farmctl verify refuses $1: $(grep -oE "$3" "$LAB/v.out" | head -n1)"
}

for t in 1 stable; do
    skopeo_accepts "$REGISTRY/$repo:$t"
    judge_accepts "$REGISTRY/$repo:$t" "$K/farm.pub"
done
judge_accepts "$REGISTRY/$repo@$index" "$K/farm.pub"
# farmctl verify agrees, and shows the platforms and the nodes
verify "$REGISTRY/$repo:1" --key "$K/farm.pub" >"$LAB/v1.out" 2>&1 \
    || { cat "$LAB/v1.out" >&2; lab_fail "farmctl verify refused the signed index"; }
cat "$LAB/v1.out" >&2
grep -q "index $REGISTRY/$repo:1@$index: 3 platform(s)" "$LAB/v1.out" || lab_fail "verify does not show the index"
for p in linux/amd64 'linux/arm64(/v8)?' linux/arm/v7; do
    grep -qE "^$p +sha256:[0-9a-f]{64} .* ok \($REGISTRY/$repo:1\)" "$LAB/v1.out" || lab_fail "verify does not show $p signed"
done
grep -q "VERIFIED: the index" "$LAB/v1.out" || lab_fail "verify does not say VERIFIED"
verify "$REGISTRY/$repo@$index" --key "$K/farm.pub" >/dev/null 2>&1 || lab_fail "farmctl verify refused the index by digest"
verify "$REGISTRY/$repo:1" >"$LAB/v0.out" 2>&1 || lab_fail "farmctl verify without --key failed"
grep -q "signature: not checked" "$LAB/v0.out" || lab_fail "verify without --key does not say it did not check"
# the node and how it built, from the index's provenance attestations
grep -qE "^linux/amd64 +sha256:[0-9a-f]{64} +amd64-1 +native" "$LAB/v0.out" || lab_fail "verify does not show amd64-1, native, from the provenance"
grep -qE "^linux/arm/v7 +sha256:[0-9a-f]{64} +armv7-1 +emulated" "$LAB/v0.out" || lab_fail "verify does not show armv7-1, emulated, from the provenance"
# with provenance attestations attached as BuildKit attaches them (an index of farm's
# shape, unsigned: verify shows the nodes and native or emulated, and no signature)
"$LAB_PYTHON" "$FARM_SOURCE_DIR/tests/integration/sigstore_policy.py" --attest "$REGISTRY/$repo:1" attested \
    amd64=amd64-1:native arm64=x86-9:emulated >/dev/null || lab_fail "attaching test attestations failed"
if verify "$REGISTRY/$repo:attested" --key "$K/farm.pub" >"$LAB/va.out" 2>&1; then
    lab_fail "farmctl verify accepted an index farm did not sign"
fi
cat "$LAB/va.out" >&2
grep -q "index $REGISTRY/$repo:attested@sha256:[0-9a-f]*: 3 platform(s)" "$LAB/va.out" || lab_fail "verify counts attestations as platforms"
grep -qE "^linux/amd64 +sha256:[0-9a-f]{64} +amd64-1 +native " "$LAB/va.out" || lab_fail "verify does not show amd64 built natively on amd64-1"
grep -qE "^linux/arm64(/v8)? +sha256:[0-9a-f]{64} +x86-9 +emulated " "$LAB/va.out" || lab_fail "verify does not show arm64 emulated on x86-9"
grep -qE "^linux/arm/v7 +sha256:[0-9a-f]{64} +- +- " "$LAB/va.out" || lab_fail "verify shows provenance arm/v7 lacks"
[[ $(grep -c "^(attestation)" "$LAB/va.out") == 2 ]] || lab_fail "verify does not list the two attestation manifests"
# the one .sig manifest of the index holds one layer per tag, as cosign appends
sig_layers() { # REPO DIGEST
    curl -sf -H "Accept: application/vnd.oci.image.manifest.v1+json" \
        "http://$REGISTRY/v2/$1/manifests/sha256-${2#sha256:}.sig" \
        | "$LAB_PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["layers"]))' || echo 0
}
[[ $(sig_layers "$repo" "$index") == 2 ]] || lab_fail "the index's .sig has $(sig_layers "$repo" "$index") layers, not 2"
# the same index under a tag it was not signed for (identity is each pushed tag)
lab_index "$REGISTRY/$repo:1" >"$LAB/index1.json"
curl -sf -X PUT -H "Content-Type: application/vnd.oci.image.index.v1+json" \
    --data-binary @"$LAB/index1.json" "http://$REGISTRY/v2/$repo/manifests/unsigned-tag" >/dev/null \
    || lab_fail "could not tag the index again"
skopeo_refuses "$REGISTRY/$repo:unsigned-tag" "is not accepted"
judge_refuses "$REGISTRY/$repo:unsigned-tag" "$K/farm.pub" "Signature for identity .* is not accepted"
verify_refuses "$REGISTRY/$repo:unsigned-tag" "$K/farm.pub" "which .* does not match"

# 3. the attacker's index under the tag: their own amd64 image (farm's with an annotation
# of theirs: another digest), first in the list, and an annotation; pushed with curl
mt=application/vnd.oci.image.manifest.v1+json
"$LAB_PYTHON" "$FARM_SOURCE_DIR/tests/integration/sigstore_policy.py" --forge "$REGISTRY/$repo:1" \
    "$LAB/evil-man.json" "$LAB/evil-index.json" >"$LAB/forged" || lab_fail "forging the attacker's index failed"
read -r amd_old evil_child evil_digest <"$LAB/forged"
curl -sf -X PUT -H "Content-Type: $mt" --data-binary @"$LAB/evil-man.json" \
    "http://$REGISTRY/v2/$repo/manifests/$evil_child" >/dev/null || lab_fail "the attacker's image push failed"
curl -sf -X PUT -H "Content-Type: application/vnd.oci.image.index.v1+json" --data-binary @"$LAB/evil-index.json" \
    "http://$REGISTRY/v2/$repo/manifests/1" >/dev/null || lab_fail "the attacker's index push failed"
[[ "sha256:$(lab_index "$REGISTRY/$repo:1" | sha256sum | cut -d" " -f1)" == "$evil_digest" ]] \
    || lab_fail "the attacker's index is not under the tag"
skopeo_refuses "$REGISTRY/$repo:1" "no signature exists"
judge_refuses "$REGISTRY/$repo:1" "$K/farm.pub" "no signature exists"
verify_refuses "$REGISTRY/$repo:1" "$K/farm.pub" "no signature"
# then with farm's signature manifests copied beside the attacker's index and image
for pair in "$index $evil_digest" "$amd_old $evil_child"; do
    read -r from to <<<"$pair"
    curl -sf -H "Accept: $mt" "http://$REGISTRY/v2/$repo/manifests/sha256-${from#sha256:}.sig" >"$LAB/copied.sig" \
        || lab_fail "reading farm's signature of $from"
    curl -sf -X PUT -H "Content-Type: $mt" --data-binary @"$LAB/copied.sig" \
        "http://$REGISTRY/v2/$repo/manifests/sha256-${to#sha256:}.sig" >/dev/null || lab_fail "copying a signature failed"
done
skopeo_refuses "$REGISTRY/$repo:1" "does not match"
judge_refuses "$REGISTRY/$repo:1" "$K/farm.pub" "Signature for digest sha256:[0-9a-f]+ does not match"
verify_refuses "$REGISTRY/$repo:1" "$K/farm.pub" "the payload signs sha256:[0-9a-f]+, not this manifest"
# the tag the attacker did not touch still verifies
judge_accepts "$REGISTRY/$repo:stable" "$K/farm.pub"
# --amend over the attacker's index: its kept amd64 entry is not farm's (the signature
# copied beside it names another digest), so farm refuses to sign it into a new index
before=$(lab_index "$REGISTRY/$repo:1" | sha256sum)
if lab_farmctl submit --amend --platform linux/arm/v7 -t "$REGISTRY/$repo:1" --progress plain \
    "$LAB/ctx" >"$LAB/amend-evil.out" 2>"$LAB/amend-evil.err"; then
    lab_fail "--amend signed the attacker's kept image into a new index"
fi
grep -q "kept index entry 1 refused: --amend signs only what this farm signed before" "$LAB/amend-evil.err" \
    || { cat "$LAB/amend-evil.err" >&2; lab_fail "the amend's refusal does not name the unsigned kept entry"; }
grep -q "is not signed by this farm's key" "$LAB/amend-evil.err" || lab_fail "the amend's refusal does not say why"
[[ $(lab_index "$REGISTRY/$repo:1" | sha256sum) == "$before" ]] || lab_fail "the refused amend moved the tag"
lab_log "--amend over the attacker's index refused: $(grep -o "kept index entry 1 refused" "$LAB/amend-evil.err")"
# and over farm's own signed index it keeps the two other platforms and signs the result
lab_farmctl submit --amend --platform linux/arm/v7 -t "$REGISTRY/$repo:stable" --progress plain \
    "$LAB/ctx" >"$LAB/amend-ok.out" 2>"$LAB/amend-ok.err" \
    || { cat "$LAB/amend-ok.err" >&2; lab_fail "--amend over farm's signed index failed"; }
skopeo_accepts "$REGISTRY/$repo:stable"
judge_accepts "$REGISTRY/$repo:stable" "$K/farm.pub"

# 4. another key: a reload cannot change it; the coordinator restarted with other.key
with_key "$K/other.key"
kill -HUP "$(lab_pid coordinator)"
reload_refused() { grep -q "coordinator.signing_key_file cannot change on reload" "$LAB/coordinator.log"; }
lab_wait_until 20 "the reload to be refused" reload_refused
lab_farmctl submit -t "$REGISTRY/$repo:still-farm" --platform "$all" --progress plain "$LAB/ctx" \
    >"$LAB/s2.out" 2>"$LAB/s2.err" || { cat "$LAB/s2.err" >&2; lab_fail "the build after the refused reload failed"; }
judge_accepts "$REGISTRY/$repo:still-farm" "$K/farm.pub"
lab_stop coordinator
lab_start_coordinator "$LAB/farm.yaml"
lab_wait_nodes 3 30 amd64-1 arm64-1 armv7-1
lab_farmctl submit -t "$REGISTRY/team/other:1" --platform "$all" --progress plain "$LAB/ctx" \
    >"$LAB/s4.out" 2>"$LAB/s4.err" || { cat "$LAB/s4.err" >&2; lab_fail "the build signed by other failed"; }
skopeo_refuses "$REGISTRY/team/other:1" "cryptographic signature verification failed"
judge_refuses "$REGISTRY/team/other:1" "$K/farm.pub" "cryptographic signature verification failed"
verify_refuses "$REGISTRY/team/other:1" "$K/farm.pub" "not signed by this key"
policy "$K/other.pub" "$LAB/policy-other.json"
skopeo_accepts "$REGISTRY/team/other:1" "$LAB/policy-other.json"
judge_accepts "$REGISTRY/team/other:1" "$K/other.pub"
verify "$REGISTRY/team/other:1" --key "$K/other.pub" >"$LAB/v4b.out" 2>&1 \
    || { cat "$LAB/v4b.out" >&2; lab_fail "farmctl verify refused other's signature with other.pub"; }

# 5. a stitch that refuses a child signs nothing: the lying node answers the amd64 job
# with the real arm64 image of the repository (already signed as a child of index 1)
with_key "$K/farm.key"
lab_stop coordinator
lab_start_coordinator "$LAB/farm.yaml"
lab_wait_nodes 3 30 amd64-1 arm64-1 armv7-1
arm=$(lab_index "$REGISTRY/$repo:stable" | "$LAB_PYTHON" -c 'import json,sys
m=[c for c in json.load(sys.stdin)["manifests"] if c["platform"]["architecture"]=="arm64"][0]
print(m["mediaType"], m["digest"], m["size"])')
read -r _ arm_digest _ <<<"$arm"
before_tags=$(curl -sf "http://$REGISTRY/v2/$repo/tags/list")
before_arm=$(sig_layers "$repo" "$arm_digest")
lab_stop agent-amd64-1
amd_gone() { [[ $(__lab_nodes_ready amd64-1) == 0 ]]; }
lab_wait_until 20 "amd64-1 to be lost" amd_gone
echo "$arm" >"$LAB/answer"
lab_spawn liar "$LAB/liar.log" "$LAB_PYTHON" "$FARM_SOURCE_DIR/tests/integration/stitch_liar.py" \
    "$LAB_AGENTS_ENDPOINT" "$K/liar.key" "$FARM_COORDINATOR_KEY" liar linux/amd64 "$LAB/answer"
lab_wait_nodes 1 30 liar
if lab_farmctl submit -t "$REGISTRY/$repo:lie" --platform linux/amd64,linux/arm64 --progress plain \
    "$LAB/ctx" >"$LAB/lie.out" 2>"$LAB/lie.err"; then
    lab_fail "the build with a lying node succeeded"
fi
grep -q "says linux/arm64, not linux/amd64" "$LAB/lie.err" || { cat "$LAB/lie.err" >&2; lab_fail "the stitch did not refuse the lie"; }
grep -q "#signed" "$LAB/lie.err" && lab_fail "farmctl says the refused build was signed"
after_tags=$(curl -sf "http://$REGISTRY/v2/$repo/tags/list")
[[ $before_tags == "$after_tags" ]] || lab_fail "the refused stitch pushed tags: $before_tags -> $after_tags"
[[ $(sig_layers "$repo" "$arm_digest") == "$before_arm" ]] || lab_fail "the refused stitch added a signature of $arm_digest"
lab_stop liar
lab_log "a refused stitch signed nothing"

# 6. the time signing adds to a 3-platform submit: the same build (all steps cached)
# without a key and with one, three times each
lab_start_agent amd64-1 linux/amd64
lab_wait_nodes 3 30 amd64-1 arm64-1 armv7-1
measure() { # LABEL
    local i ms=() sm=()
    for i in 1 2 3; do
        lab_farmctl submit -t "$REGISTRY/team/timing:$1-$i" --platform "$all" --progress plain \
            --metadata-file "$LAB/m.json" "$LAB/ctx" >/dev/null 2>"$LAB/m.err" \
            || { cat "$LAB/m.err" >&2; lab_fail "timing build $1-$i failed"; }
        ms+=("$("$LAB_PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["farm.stitch_ms"])' "$LAB/m.json")")
        sm+=("$("$LAB_PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("farm.sign_ms", 0))' "$LAB/m.json")")
    done
    lab_log "stitch_ms $1: ${ms[*]} (median $(echo "${ms[*]}" | lab_median)); sign_ms: ${sm[*]}"
}
measure signed
sed -i '/^  signing_key_file:/d' "$LAB/farm.yaml"
lab_stop coordinator
lab_start_coordinator "$LAB/farm.yaml"
lab_wait_nodes 3 30 amd64-1 arm64-1 armv7-1
measure unsigned
grep -q "#signed" "$LAB/m.err" && lab_fail "a farm without a signing key signed"
lab_log "PASS: signed indexes accepted by skopeo and farmctl verify; replaced, re-tagged and other-key indexes refused; a refused stitch signs nothing"
