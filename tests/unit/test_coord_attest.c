/* SPDX-License-Identifier: Apache-2.0 */
/* The provenance statement builder (coordinator/attest.c), without a registry: the
 * in-toto Statement v1 / SLSA Provenance v1 shape, what min leaves out and max keeps,
 * the attestation manifest and its index entry as BuildKit writes them, and refusals of
 * input that would make a statement lie or break. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "common/buildflags.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/platform.h"
#include "coordinator/attest.h"

#define CHILD "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define CTX "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DF "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define B1 "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define B2 "sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"

static farm_kv_t s_args[] = {{"VERSION", "7"}, {"GREETING", "hi"}};
static char *s_tags[] = {"1.0", "latest"};
static const farm_attest_base_t s_bases[] = {{"r.example:5000/team/tools:1", B1, 0},
                                             {"docker.io/library/alpine:3.19", B2, 1}};

static void s_setup(farm_attest_build_t *b, farm_attest_child_t *c, farm_descriptor_t *img,
                    farm_attest_mode_t mode)
{
    memset(b, 0, sizeof *b);
    memset(c, 0, sizeof *c);
    memset(img, 0, sizeof *img);
    b->mode = mode;
    b->build_id = "b7-0123456789abcdef0123456789abcdef";
    b->context_digest = CTX;
    b->dockerfile = "docker/Dockerfile";
    b->target = "";
    b->args = s_args;
    b->n_args = 2;
    b->registry = "r.example:5000";
    b->repository = "team/app";
    b->tags = s_tags;
    b->n_tags = 2;
    c->node = "pi4";
    c->node_key_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    c->emulated = 1;
    c->have_job = 1;
    c->started_ms = 1796544000123ull;
    c->finished_ms = 1796544060456ull;
    c->dockerfile_digest = DF;
    c->bases = s_bases;
    c->n_bases = 2;
    snprintf(img->media_type, sizeof img->media_type, "%s", FARM_MEDIA_OCI_MANIFEST);
    snprintf(img->digest, sizeof img->digest, "%s", CHILD);
    img->size = 500;
    assert_int_equal(farm_platform_parse(&img->platform, "linux/arm/v7"), 0);
}

static json_t *s_statement(const farm_attest_build_t *b, const farm_descriptor_t *img,
                           const farm_attest_child_t *c)
{
    char *s = NULL;
    size_t n = 0;
    json_t *j;

    assert_int_equal(farm_attest_statement(&s, &n, b, img, c), 0);
    assert_int_equal(n, strlen(s));
    j = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(j);
    free(s);
    return j;
}

static const char *s_str(json_t *root, const char *path)
{
    char buf[256], *save = NULL;
    json_t *v = root;
    snprintf(buf, sizeof buf, "%s", path);
    for (char *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(k)) : json_object_get(v, k);
    return json_string_value(v);
}

static void test_max_statement(void **state)
{
    farm_attest_build_t b;
    farm_attest_child_t c;
    farm_descriptor_t img;
    json_t *st, *ext, *deps, *ip;
    (void)state;

    s_setup(&b, &c, &img, FARM_ATTEST_MAX);
    st = s_statement(&b, &img, &c);
    assert_string_equal(s_str(st, "_type"), "https://in-toto.io/Statement/v1");
    assert_string_equal(s_str(st, "predicateType"), "https://slsa.dev/provenance/v1");
    /* one subject per tag, BuildKit's purl, the child's digest */
    assert_int_equal(json_array_size(json_object_get(st, "subject")), 2);
    assert_string_equal(s_str(st, "subject.0.name"),
                        "pkg:docker/r.example:5000/team/app@1.0?platform=linux%2Farm%2Fv7");
    assert_string_equal(s_str(st, "subject.1.name"),
                        "pkg:docker/r.example:5000/team/app@latest?platform=linux%2Farm%2Fv7");
    assert_string_equal(s_str(st, "subject.0.digest.sha256"), CHILD + 7);
    assert_string_equal(s_str(st, "predicate.buildDefinition.buildType"),
                        FARM_ATTEST_BUILD_TYPE);
    assert_string_equal(s_str(st, "predicate.runDetails.builder.id"), "urn:farm:node:pi4");
    assert_string_equal(s_str(st, "predicate.runDetails.metadata.invocationId"), b.build_id);
    assert_string_equal(s_str(st, "predicate.runDetails.metadata.startedOn"),
                        "2026-12-06T08:00:00.123Z");
    assert_string_equal(s_str(st, "predicate.runDetails.metadata.finishedOn"),
                        "2026-12-06T08:01:00.456Z");
    ext = json_object_get(json_object_get(json_object_get(st, "predicate"), "buildDefinition"),
                          "externalParameters");
    assert_string_equal(s_str(ext, "context"), CTX);
    assert_string_equal(s_str(ext, "dockerfile.path"), "docker/Dockerfile");
    assert_string_equal(s_str(ext, "dockerfile.digest.sha256"), DF + 7);
    assert_string_equal(s_str(ext, "args.VERSION"), "7");
    assert_string_equal(s_str(ext, "args.GREETING"), "hi");
    assert_string_equal(s_str(ext, "platform"), "linux/arm/v7");
    assert_string_equal(s_str(ext, "target"), "");
    ip = json_object_get(json_object_get(json_object_get(st, "predicate"), "buildDefinition"),
                         "internalParameters");
    assert_true(json_is_true(json_object_get(ip, "emulated")));
    assert_string_equal(s_str(ip, "node_key_sha256"), c.node_key_sha256);
    deps = json_object_get(json_object_get(json_object_get(st, "predicate"), "buildDefinition"),
                           "resolvedDependencies");
    assert_int_equal(json_array_size(deps), 3);
    assert_string_equal(s_str(deps, "0.name"), "context");
    assert_string_equal(s_str(deps, "0.digest.sha256"), CTX + 7);
    assert_string_equal(s_str(deps, "1.name"), "r.example:5000/team/tools:1");
    assert_string_equal(s_str(deps, "1.uri"),
                        "pkg:docker/r.example:5000/team/tools@1?platform=linux%2Farm%2Fv7");
    assert_string_equal(s_str(deps, "1.annotations.stage"), "intermediate");
    assert_string_equal(s_str(deps, "2.digest.sha256"), B2 + 7);
    assert_string_equal(s_str(deps, "2.annotations.stage"), "final");
    json_decref(st);
}

/* min: buildx's default leaves out the build args and the bases of other stages */
static void test_min_leaves_out(void **state)
{
    farm_attest_build_t b;
    farm_attest_child_t c;
    farm_descriptor_t img;
    json_t *st, *bd;
    (void)state;

    s_setup(&b, &c, &img, FARM_ATTEST_MIN);
    st = s_statement(&b, &img, &c);
    bd = json_object_get(json_object_get(st, "predicate"), "buildDefinition");
    assert_null(json_object_get(json_object_get(bd, "externalParameters"), "args"));
    assert_int_equal(json_array_size(json_object_get(bd, "resolvedDependencies")), 2);
    assert_string_equal(s_str(bd, "resolvedDependencies.1.annotations.stage"), "final");
    assert_string_equal(s_str(bd, "externalParameters.dockerfile.digest.sha256"), DF + 7);
    json_decref(st);
}

/* a job restored without what its node measured: no times, no bases, no guess; no tag:
 * the subject names the repository; no keys: an empty fingerprint */
static void test_unknowns_left_out(void **state)
{
    farm_attest_build_t b;
    farm_attest_child_t c;
    farm_descriptor_t img;
    json_t *st, *md;
    (void)state;

    s_setup(&b, &c, &img, FARM_ATTEST_MAX);
    c.have_job = 0;
    c.n_bases = 0;
    c.dockerfile_digest = "";
    c.node_key_sha256 = NULL;
    c.emulated = 0;
    b.n_tags = 0;
    st = s_statement(&b, &img, &c);
    md = json_object_get(json_object_get(json_object_get(st, "predicate"), "runDetails"),
                         "metadata");
    assert_null(json_object_get(md, "startedOn"));
    assert_null(json_object_get(md, "finishedOn"));
    assert_string_equal(s_str(st, "subject.0.name"),
                        "pkg:docker/r.example:5000/team/app?platform=linux%2Farm%2Fv7");
    assert_string_equal(
        s_str(st, "predicate.buildDefinition.internalParameters.node_key_sha256"), "");
    assert_null(json_object_get(
        json_object_get(json_object_get(json_object_get(json_object_get(st, "predicate"),
                                                        "buildDefinition"),
                                        "externalParameters"),
                        "dockerfile"),
        "digest"));
    json_decref(st);
}

static void test_refusals(void **state)
{
    farm_attest_build_t b;
    farm_attest_child_t c;
    farm_descriptor_t img;
    farm_attest_base_t bad = {"x", "sha256:nothex", 1};
    char *s = NULL;
    size_t n = 0;
    (void)state;

    s_setup(&b, &c, &img, FARM_ATTEST_MAX);
    c.node = "";
    assert_int_equal(farm_attest_statement(&s, &n, &b, &img, &c), FARM_EINVALID);
    assert_null(s);
    assert_non_null(strstr(farm_error_last(), "linux/arm/v7"));
    s_setup(&b, &c, &img, FARM_ATTEST_MAX);
    b.context_digest = "sha256:short";
    assert_int_equal(farm_attest_statement(&s, &n, &b, &img, &c), FARM_EINVALID);
    s_setup(&b, &c, &img, FARM_ATTEST_MAX);
    c.bases = &bad;
    c.n_bases = 1;
    assert_int_equal(farm_attest_statement(&s, &n, &b, &img, &c), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "base image 0"));
    /* a build arg that is not UTF-8 cannot go into JSON: refused, not dropped */
    {
        farm_kv_t odd[] = {{"K", "\xff\xfe"}};
        s_setup(&b, &c, &img, FARM_ATTEST_MAX);
        b.args = odd;
        b.n_args = 1;
        assert_true(farm_attest_statement(&s, &n, &b, &img, &c) < 0);
        assert_null(s);
    }
}

static void test_manifest_and_entry(void **state)
{
    char *man = NULL, *cfg = NULL, cd[FARM_DIGEST_STRLEN];
    size_t ml = 0, cl = 0;
    json_t *m, *c, *e;
    (void)state;

    assert_int_equal(farm_attest_manifest(&man, &ml, &cfg, &cl, B1, 1234), 0);
    m = json_loads(man, 0, NULL);
    c = json_loads(cfg, 0, NULL);
    assert_non_null(m);
    assert_non_null(c);
    farm_digest_buffer(cd, cfg, cl);
    assert_int_equal(json_integer_value(json_object_get(m, "schemaVersion")), 2);
    assert_string_equal(s_str(m, "mediaType"), FARM_MEDIA_OCI_MANIFEST);
    assert_string_equal(s_str(m, "config.digest"), cd);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "config"), "size")),
                     (json_int_t)cl);
    assert_int_equal(json_array_size(json_object_get(m, "layers")), 1);
    assert_string_equal(s_str(m, "layers.0.mediaType"), "application/vnd.in-toto+json");
    assert_string_equal(s_str(m, "layers.0.digest"), B1);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(json_object_get(m, "layers"), 0),
                                            "annotations"),
                            "in-toto.io/predicate-type")),
                        "https://slsa.dev/provenance/v1");
    assert_string_equal(s_str(c, "architecture"), "unknown");
    assert_string_equal(s_str(c, "os"), "unknown");
    assert_string_equal(s_str(c, "rootfs.diff_ids.0"), B1);
    e = farm_attest_index_entry(B2, ml, CHILD);
    assert_string_equal(s_str(e, "platform.os"), "unknown");
    assert_string_equal(s_str(e, "platform.architecture"), "unknown");
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "annotations"),
                                                          "vnd.docker.reference.type")),
                        "attestation-manifest");
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "annotations"),
                                                          "vnd.docker.reference.digest")),
                        CHILD);
    json_decref(m);
    json_decref(c);
    json_decref(e);
    free(man);
    free(cfg);
}

/* the index keeps its children first, then the attestations */
static void test_index_append(void **state)
{
    char *idx = strdup("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index."
                       "v1+json\",\"manifests\":[{\"digest\":\"" CHILD "\"}]}");
    size_t len = strlen(idx);
    json_t *extra = json_array(), *root;
    (void)state;

    json_array_append_new(extra, farm_attest_index_entry(B1, 10, CHILD));
    assert_int_equal(farm_attest_index_append(&idx, &len, extra), 0);
    assert_int_equal(len, strlen(idx));
    root = json_loads(idx, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(root, "manifests")), 2);
    assert_string_equal(s_str(root, "manifests.0.digest"), CHILD);
    assert_string_equal(s_str(root, "manifests.1.digest"), B1);
    /* the key order of the index is kept: its bytes are its digest */
    assert_true(strncmp(idx, "{\"schemaVersion\":2,\"mediaType\"", 30) == 0);
    json_decref(root);
    json_decref(extra);
    free(idx);
}

static void test_modes_and_fingerprint(void **state)
{
    char fp[65];
    (void)state;

    assert_int_equal(farm_attest_mode_parse(""), FARM_ATTEST_MIN);
    assert_int_equal(farm_attest_mode_parse("min"), FARM_ATTEST_MIN);
    assert_int_equal(farm_attest_mode_parse("max"), FARM_ATTEST_MAX);
    assert_int_equal(farm_attest_mode_parse("off"), FARM_ATTEST_OFF);
    assert_int_equal(farm_attest_mode_parse("maximal"), -1);
    /* Z85 of 32 zero bytes is forty '0's; the fingerprint is sha256 of those bytes */
    farm_attest_key_fingerprint(fp, "0000000000000000000000000000000000000000");
    assert_string_equal(fp, "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925");
    farm_attest_key_fingerprint(fp, "short");
    assert_string_equal(fp, "");
    farm_attest_key_fingerprint(fp, NULL);
    assert_string_equal(fp, "");
}

/* the stitch helper takes no more from the wire than it can hold */
static void test_from_wire_bounds(void **state)
{
    Farm__ProvenanceStitch w = FARM__PROVENANCE_STITCH__INIT;
    Farm__ProvenanceChild c = FARM__PROVENANCE_CHILD__INIT, *cp = &c;
    Farm__ProvenanceJob j = FARM__PROVENANCE_JOB__INIT;
    Farm__ProvenanceBase base = FARM__PROVENANCE_BASE__INIT, *bp[FARM_ATTEST_BASES_MAX + 1];
    farm_attest_wire_t aw;
    (void)state;

    for (size_t i = 0; i <= FARM_ATTEST_BASES_MAX; i++)
        bp[i] = &base;
    base.name = "r/x:1";
    base.digest = B1;
    w.mode = "max";
    w.build_id = "b1";
    w.context_digest = CTX;
    w.dockerfile = "Dockerfile";
    w.n_children = 1;
    w.children = &cp;
    c.node = "n1";
    c.job = &j;
    j.bases = bp;
    j.n_bases = 2;
    assert_int_equal(farm_attest_from_wire(&aw, &w, 1), 0);
    assert_int_equal(aw.build.mode, FARM_ATTEST_MAX);
    assert_int_equal(aw.children[0].n_bases, 2);
    assert_true(aw.children[0].have_job);
    farm_attest_wire_free(&aw);
    assert_int_equal(farm_attest_from_wire(&aw, &w, 2), FARM_EINVALID);
    j.n_bases = FARM_ATTEST_BASES_MAX + 1;
    assert_int_equal(farm_attest_from_wire(&aw, &w, 1), FARM_EINVALID);
    j.n_bases = 1;
    w.mode = "off";
    assert_int_equal(farm_attest_from_wire(&aw, &w, 1), FARM_EINVALID);
}

/* --provenance and --attest as buildx spells them */
static void test_flag_spellings(void **state)
{
    farm_buildflags_t f = {0};
    (void)state;

    assert_int_equal(farm_buildflags_provenance_spec(&f, "false"), 0);
    assert_int_equal(f.provenance, FARM_PROVENANCE_OFF);
    assert_int_equal(farm_buildflags_provenance_spec(&f, "true"), 0);
    assert_int_equal(f.provenance, FARM_PROVENANCE_MIN);
    assert_int_equal(farm_buildflags_provenance_spec(&f, "mode=max"), 0);
    assert_int_equal(f.provenance, FARM_PROVENANCE_MAX);
    assert_int_equal(farm_buildflags_provenance_spec(&f, "mode=min"), 0);
    assert_int_equal(f.provenance, FARM_PROVENANCE_MIN);
    assert_int_equal(farm_buildflags_provenance_spec(&f, "max"), 0);
    assert_int_equal(f.provenance, FARM_PROVENANCE_MAX);
    assert_int_equal(farm_buildflags_provenance_spec(&f, "mode=max,disabled=true"), 0);
    assert_int_equal(f.provenance, FARM_PROVENANCE_OFF);
    assert_int_equal(farm_buildflags_attest_spec(&f, "type=provenance,mode=max"), 0);
    assert_int_equal(f.provenance, FARM_PROVENANCE_MAX);
    assert_int_equal(farm_buildflags_attest_spec(&f, "type=provenance,disabled=true"), 0);
    assert_int_equal(f.provenance, FARM_PROVENANCE_OFF);
    assert_int_equal(farm_buildflags_attest_spec(&f, "type=sbom"), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "type=provenance"));
    assert_int_equal(farm_buildflags_attest_spec(&f, "mode=max"), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "type=provenance,mode=max"));
    assert_int_equal(farm_buildflags_provenance_spec(&f, "mode=huge"), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "mode=min or mode=max"));
    assert_int_equal(farm_buildflags_provenance_spec(&f, "builder-id=x"), FARM_EINVALID);
    /* the wire's words, both ways */
    assert_string_equal(farm_provenance_name(FARM_PROVENANCE_MAX), "max");
    assert_int_equal(farm_provenance_parse("off"), FARM_PROVENANCE_OFF);
    assert_int_equal(farm_provenance_parse(""), FARM_PROVENANCE_DEFAULT);
    assert_int_equal(farm_provenance_parse("yes"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_statement),     cmocka_unit_test(test_min_leaves_out),
        cmocka_unit_test(test_unknowns_left_out), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_manifest_and_entry), cmocka_unit_test(test_index_append),
        cmocka_unit_test(test_modes_and_fingerprint), cmocka_unit_test(test_from_wire_bounds),
        cmocka_unit_test(test_flag_spellings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
