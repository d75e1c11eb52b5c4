#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A second, independent judge of farm's signatures: containers/image's sigstoreSigned
policy evaluation (signature/policy_eval_sigstore.go, internal/sigstore_payload.go,
policy_reference_match.go at v5.23), written again in Python with python3-cryptography,
sharing no code with farm. Debian's skopeo and podman have that evaluation patched out
("Debian-local change: sigstore disabled"), so the lab cannot ask them for the verdict.

usage: sigstore_policy.py REGISTRY/REPO:TAG|@DIGEST PUBKEY.pem
       sigstore_policy.py --forge REGISTRY/REPO:TAG MANIFEST_OUT INDEX_OUT
       sigstore_policy.py --attest REGISTRY/REPO:TAG NEWTAG ARCH=NODE:native|emulated...
Reads the index over plain HTTP (the lab's registry), then, as `skopeo copy --multi-arch
all` does, judges every image it lists, and the index itself as a copy of the index
alone would: each needs a signature in its sha256-<hex>.sig manifest (layers of type
application/vnd.dev.cosign.simplesigning.v1+json, the base64 DER ECDSA signature in the
dev.cosignproject.cosign/signature annotation) that verifies with the key, whose payload
names exactly that digest and an identity matchRepoDigestOrExact accepts. Prints one line
per image and exits 0 when all are accepted, 1 otherwise."""
import base64
import hashlib
import json
import sys
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIG_MIME = "application/vnd.dev.cosign.simplesigning.v1+json"
SIG_ANN = "dev.cosignproject.cosign/signature"
ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])


class Rejected(Exception):
    pass


def parse_ref(s):
    """docker/distribution's normalisation: (domain, path, tag, digest)."""
    digest = ""
    if "@" in s:
        s, digest = s.split("@", 1)
    tag = ""
    slash = s.rfind("/")
    if ":" in s[slash + 1:]:
        s, tag = s.rsplit(":", 1)
    first, _, rest = s.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = "docker.io", s
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    return domain, path, tag, digest


def ref_string(r):
    domain, path, tag, digest = r
    return f"{domain}/{path}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def identity_accepted(intended, signed):
    """matchRepoDigestOrExact (policy_reference_match.go)."""
    sig = parse_ref(signed)
    if not sig[2] and not sig[3]:
        return False  # a name only never matches
    if intended[2]:  # tagged (with or without a digest): the exact reference
        return ref_string(sig) == ref_string(intended)
    if intended[3]:  # by digest: the repository
        return sig[:2] == intended[:2]
    return False


def exact(obj, keys, what):
    if not isinstance(obj, dict) or set(obj) != set(keys):
        raise Rejected(f"payload: {what} must have exactly the fields {sorted(keys)}")


def parse_payload(data):
    p = json.loads(data)
    exact(p, ["critical", "optional"], "the payload")
    c = p["critical"]
    exact(c, ["type", "image", "identity"], "critical")
    if c["type"] != "cosign container image signature":
        raise Rejected(f"Unrecognized signature type {c['type']}")
    exact(c["image"], ["docker-manifest-digest"], "critical.image")
    exact(c["identity"], ["docker-reference"], "critical.identity")
    opt = p["optional"]
    if opt is not None:
        if not isinstance(opt, dict):
            raise Rejected("payload: optional is not an object")
        ts = opt.get("timestamp")
        if ts is not None and (not isinstance(ts, (int, float)) or int(ts) != ts):
            raise Rejected("Field optional.timestamp is not is not an integer")
    return c["image"]["docker-manifest-digest"], c["identity"]["docker-reference"]


class Registry:
    def __init__(self, host, repo):
        self.base = f"http://{host}/v2/{repo}"

    def get(self, path, accept=None):
        req = urllib.request.Request(f"{self.base}/{path}")
        if accept:
            req.add_header("Accept", accept)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise


def judge(reg, intended, digest, manifest, key):
    """None when accepted, else the reason (as containers/image words it)."""
    sig_manifest = reg.get(f"manifests/sha256-{digest[7:]}.sig", ACCEPT)
    layers = json.loads(sig_manifest).get("layers", []) if sig_manifest else []
    reasons = []
    for layer in layers:
        if layer.get("mediaType") != SIG_MIME:
            continue
        try:
            b64 = (layer.get("annotations") or {}).get(SIG_ANN)
            if b64 is None:
                raise Rejected(f"missing {SIG_ANN} annotation")
            payload = reg.get(f"blobs/{layer['digest']}")
            if payload is None or "sha256:" + hashlib.sha256(payload).hexdigest() != layer["digest"]:
                raise Rejected(f"payload blob {layer['digest']} missing or damaged")
            try:
                key.verify(base64.b64decode(b64, validate=True), payload, ec.ECDSA(hashes.SHA256()))
            except (InvalidSignature, ValueError) as e:
                raise Rejected(f"cryptographic signature verification failed: {e or 'invalid signature'}")
            signed_digest, identity = parse_payload(payload)
            if "sha256:" + hashlib.sha256(manifest).hexdigest() != signed_digest:
                raise Rejected(f"Signature for digest {signed_digest} does not match")
            if not identity_accepted(intended, identity):
                raise Rejected(f'Signature for identity "{identity}" is not accepted')
            return None  # one accepted signature is enough
        except Rejected as e:
            reasons.append(str(e))
    if not reasons:
        return "A signature was required, but no signature exists"
    return "None of the signatures were accepted, reasons: " + "; ".join(reasons)


def forge(ref_s, man_out, index_out):
    """The attacker's index for a test: the amd64 image of the index under ref_s with an
    annotation of theirs (so another digest, never signed), first in the list, and an
    annotation on the index. Writes both; prints the old amd64 digest, the new one and the
    new index's."""
    r = parse_ref(ref_s)
    reg = Registry(r[0], r[1])
    idx = json.loads(reg.get(f"manifests/{r[2]}", ACCEPT))
    c = [m for m in idx["manifests"] if m["platform"]["architecture"] == "amd64"][0]
    man = json.loads(reg.get(f"manifests/{c['digest']}", ACCEPT))
    man.setdefault("annotations", {})["evil"] = "yes"
    mb = json.dumps(man, separators=(",", ":")).encode()
    old = c["digest"]
    c["digest"] = "sha256:" + hashlib.sha256(mb).hexdigest()
    c["size"] = len(mb)
    idx["manifests"].remove(c)
    idx["manifests"].insert(0, c)
    idx.setdefault("annotations", {})["evil"] = "yes"
    ib = json.dumps(idx, separators=(",", ":")).encode()
    with open(man_out, "wb") as f:
        f.write(mb)
    with open(index_out, "wb") as f:
        f.write(ib)
    print(old, c["digest"], "sha256:" + hashlib.sha256(ib).hexdigest())


def push_blob(reg, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    req = urllib.request.Request(f"{reg.base}/blobs/uploads/", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=60) as r:
        loc = r.headers["Location"]
    if loc.startswith("/"):
        loc = reg.base.split("/v2/")[0] + loc
    sep = "&" if "?" in loc else "?"
    req = urllib.request.Request(f"{loc}{sep}digest={digest}", method="PUT", data=data,
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(req, timeout=60).read()
    return digest


def put_manifest(reg, ref, data, media_type):
    req = urllib.request.Request(f"{reg.base}/manifests/{ref}", method="PUT", data=data,
                                 headers={"Content-Type": media_type})
    urllib.request.urlopen(req, timeout=60).read()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def attest(ref_s, new_tag, specs):
    """The index under ref_s again, under new_tag, with a provenance attestation manifest
    per platform named in specs ("amd64=NODE:native"), attached the way BuildKit attaches
    them: an in-toto Statement v1 whose SLSA Provenance v1 predicate names the builder
    urn:farm:node:NODE and internalParameters.emulated, in a manifest listed with the
    unknown/unknown platform and the vnd.docker.reference.* annotations."""
    r = parse_ref(ref_s)
    reg = Registry(r[0], r[1])
    idx = json.loads(reg.get(f"manifests/{r[2]}", ACCEPT))
    cfg = b"{}"
    cfg_digest = push_blob(reg, cfg)
    for spec in specs:
        arch, _, rest = spec.partition("=")
        node, _, how = rest.partition(":")
        child = [m for m in idx["manifests"] if m["platform"]["architecture"] == arch][0]
        st = json.dumps({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": ref_s, "digest": {"sha256": child["digest"][7:]}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {
                "buildDefinition": {"buildType": "urn:farm:test", "externalParameters": {},
                                    "internalParameters": {"emulated": how == "emulated"}},
                "runDetails": {"builder": {"id": "urn:farm:node:" + node}},
            },
        }).encode()
        man = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": cfg_digest, "size": len(cfg)},
            "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": push_blob(reg, st),
                        "size": len(st),
                        "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v1"}}],
        }).encode()
        d = put_manifest(reg, "sha256:" + hashlib.sha256(man).hexdigest(), man,
                         "application/vnd.oci.image.manifest.v1+json")
        idx["manifests"].append({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": len(man),
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                            "vnd.docker.reference.digest": child["digest"]},
        })
    print(put_manifest(reg, new_tag, json.dumps(idx).encode(), "application/vnd.oci.image.index.v1+json"))


def main():
    if sys.argv[1] == "--attest":
        attest(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    if sys.argv[1] == "--forge":
        forge(*sys.argv[2:5])
        return
    ref_s, key_path = sys.argv[1], sys.argv[2]
    with open(key_path, "rb") as f:
        key = serialization.load_pem_public_key(f.read())
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        sys.exit(f"{key_path}: not an EC P-256 public key")
    intended = parse_ref(ref_s)
    reg = Registry(intended[0], intended[1])
    index = reg.get(f"manifests/{intended[3] or intended[2]}", ACCEPT)
    if index is None:
        sys.exit(f"{ref_s}: not found")
    images = [("index", "sha256:" + hashlib.sha256(index).hexdigest(), index)]
    for m in json.loads(index).get("manifests", []):
        p = m.get("platform") or {}
        name = "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)
        images.append((name or "?", m["digest"], reg.get(f"manifests/{m['digest']}", ACCEPT) or b""))
    ok = True
    for name, digest, manifest in images:
        why = judge(reg, intended, digest, manifest, key)
        print(f"{name} {digest}: {'accepted' if why is None else 'REJECTED: ' + why}")
        ok = ok and why is None
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
