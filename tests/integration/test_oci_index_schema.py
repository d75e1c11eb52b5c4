#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The image index farm composes validates against the official OCI image-spec JSON
schema (Debian golang-github-opencontainers-image-spec-dev), with the schema's $refs
resolved from its sibling files. The validator is shown to reject broken indexes, so a
pass means something. Needs the farm-oci-compose test tool (tests/tools/)."""
import json
import os
import pathlib
import subprocess
import sys

import jsonschema

SCHEMA_DIR = pathlib.Path(
    "/usr/share/gocode/src/github.com/opencontainers/image-spec/schema")
DIGESTS = {
    "linux/amd64": "sha256:" + "a" * 64,
    "linux/arm64": "sha256:" + "b" * 64,
    "linux/arm/v7": "sha256:" + "c" * 64,
}


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def tool():
    build = os.environ.get("FARM_BUILD_DIR")
    if not build:
        fail("FARM_BUILD_DIR is not set (run through ctest)")
    path = pathlib.Path(build) / "tests" / "tools" / "farm-oci-compose"
    if not os.access(path, os.X_OK):
        fail(f"{path} is missing: build the farm-oci-compose target first")
    return str(path)


def validator():
    if not (SCHEMA_DIR / "image-index-schema.json").is_file():
        fail(f"{SCHEMA_DIR}: install golang-github-opencontainers-image-spec-dev")

    # The schemas name each other by relative URI against ids such as
    # https://opencontainers.org/schema/image/index; every such URI is a sibling file.
    schema = json.loads((SCHEMA_DIR / "image-index-schema.json").read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    try:  # jsonschema >= 4.18: the referencing library
        import referencing
        import referencing.jsonschema

        def retrieve(uri):
            name = uri.rsplit("/", 1)[-1]
            path = SCHEMA_DIR / name
            if not name.endswith(".json") or not path.is_file():
                raise referencing.exceptions.NoSuchResource(ref=uri)
            return referencing.Resource.from_contents(
                json.loads(path.read_text()),
                default_specification=referencing.jsonschema.DRAFT4)

        return jsonschema.Draft4Validator(schema, registry=referencing.Registry(retrieve=retrieve))
    except ImportError:  # Debian 12's python3-jsonschema 4.10: RefResolver with a store
        def sibling(uri):
            name = uri.rsplit("/", 1)[-1]
            if not name.endswith(".json") or not (SCHEMA_DIR / name).is_file():
                raise ValueError("schema reference outside the schema folder: " + uri)
            return json.loads((SCHEMA_DIR / name).read_text())

        # never the network: every https reference is a sibling file
        store = {}
        for f in SCHEMA_DIR.glob("*.json"):
            doc = json.loads(f.read_text())
            store[f.name] = doc  # 4.10 sometimes resolves "defs.json" with no base
            if doc.get("id"):
                store[doc["id"]] = doc
        resolver = jsonschema.RefResolver.from_schema(schema, store=store,
                                                      handlers={"https": sibling, "http": sibling})
        return jsonschema.Draft4Validator(schema, resolver=resolver)


def compose(*args):
    out = subprocess.run([tool(), *args], capture_output=True, text=True, timeout=30)
    return out.returncode, out.stdout, out.stderr


def main():
    v = validator()

    # 1. The index farm pushes for three platforms, with an annotation.
    args = ["-a", "org.opencontainers.image.created=2026-11-28T10:00:00Z"]
    args += [f"{p}={d}:{1000 + i}" for i, (p, d) in enumerate(DIGESTS.items())]
    rc, out, err = compose(*args)
    if rc != 0:
        fail(f"farm-oci-compose failed: {err}")
    index = json.loads(out)
    errors = sorted(v.iter_errors(index), key=str)
    if errors:
        fail("composed index does not validate:\n" + "\n".join(e.message for e in errors))

    # What the schema cannot say: media types, explicit variants, order, bytes.
    if index["mediaType"] != "application/vnd.oci.image.index.v1+json":
        fail(f"index mediaType {index['mediaType']}")
    plats = [(m["platform"]["os"], m["platform"]["architecture"],
              m["platform"].get("variant")) for m in index["manifests"]]
    want = [("linux", "amd64", None), ("linux", "arm64", "v8"), ("linux", "arm", "v7")]
    if plats != want:
        fail(f"platforms {plats}, want {want}")
    if [m["digest"] for m in index["manifests"]] != list(DIGESTS.values()):
        fail("children out of order")
    if out != json.dumps(index, separators=(",", ":")):
        fail("index JSON is not compact in the composed key order")

    # 2. The validator really validates, $refs included (each is caught by the schema,
    #    three of them only through defs*.json).
    def broken(mutate, why):
        doc = json.loads(out)
        mutate(doc)
        if v.is_valid(doc):
            fail(f"schema accepted an index with {why}: the validator is not working")

    broken(lambda d: d.update(schemaVersion=3), "schemaVersion 3")
    broken(lambda d: d["manifests"][0].pop("size"), "a child without size")
    broken(lambda d: d["manifests"][0].update(digest="not-a-digest"), "a bad digest")
    broken(lambda d: d["manifests"][1].update(mediaType="no media type"), "a bad media type")
    broken(lambda d: d.update(annotations={"k": 1}), "a non-string annotation")
    broken(lambda d: d["manifests"][2]["platform"].pop("os"), "a platform without os")

    # 3. farm refuses to compose what the schema would refuse.
    rc, _, err = compose("linux/amd64=sha256:../../etc/passwd:10")
    if rc == 0 or "not a sha256 digest" not in err:
        fail(f"traversal digest accepted (rc={rc}, {err!r})")
    rc, _, err = compose()
    if rc == 0 or "at least one child manifest" not in err:
        fail(f"an index without children was composed (rc={rc}, {err!r})")

    print("ok: composed index validates against image-index-schema.json "
          f"({len(index['manifests'])} children)")


if __name__ == "__main__":
    main()
