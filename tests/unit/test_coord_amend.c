/* SPDX-License-Identifier: Apache-2.0 */
/* The index merge of `farmctl submit --amend`: the old index's other platforms kept in
 * place with their attestations and annotations, the rebuilt platform replaced, a new
 * one appended; a single image, an entry without a platform, two entries of one platform
 * and bytes that are no index are refused, naming REF and the entry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/error.h"
#include "coordinator/amend.h"

#define D(c) "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
             c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define MT "application/vnd.oci.image.manifest.v1+json"
#define IMG(d, arch, var) "{\"mediaType\":\"" MT "\",\"digest\":\"" d "\",\"size\":500," \
    "\"platform\":{\"architecture\":\"" arch "\",\"os\":\"linux\"" var "}}"
#define ATT(d, of) "{\"mediaType\":\"" MT "\",\"digest\":\"" d "\",\"size\":300," \
    "\"annotations\":{\"vnd.docker.reference.digest\":\"" of "\"," \
    "\"vnd.docker.reference.type\":\"attestation-manifest\"}," \
    "\"platform\":{\"architecture\":\"unknown\",\"os\":\"unknown\"}}"
#define INDEX(mans, ann) "{\"schemaVersion\":2,\"mediaType\":" \
    "\"application/vnd.oci.image.index.v1+json\",\"manifests\":[" mans "]" ann "}"

#define A D("a")
#define B D("b")
#define C D("c")
#define C2 D("e")
#define X D("1")
#define Y D("2")
#define Z D("3")

static const char s_old[] = INDEX(IMG(A, "amd64", "") "," ATT(X, A) "," IMG(B, "arm64", "")
                                  "," IMG(C, "arm", ",\"variant\":\"v7\"") "," ATT(Y, C),
                                  ",\"annotations\":{\"org.opencontainers.image.source\":"
                                  "\"git\",\"keep\":\"old\",\"over\":\"old\"}");

static json_t *s_merge(farm_amend_kept_t **kept, size_t *n_kept, const char *old,
                       const char *new_json)
{
    char *out = NULL;
    size_t len = 0;
    json_t *j;

    assert_int_equal(farm_amend_merge(&out, &len, kept, n_kept, "reg/app:1", NULL, old,
                                      strlen(old), new_json, strlen(new_json)), 0);
    assert_int_equal(strlen(out), len);
    assert_non_null(j = json_loads(out, 0, NULL));
    free(out);
    return j;
}

static const char *s_digest(json_t *j, size_t i)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(j, "manifests"), i),
                                             "digest"));
}

static void test_replace_one_keep_two(void **state)
{
    farm_amend_kept_t *kept = NULL;
    size_t n = 0;
    json_t *j, *ann;

    (void)state;
    j = s_merge(&kept, &n, s_old,
                INDEX(IMG(C2, "arm", ",\"variant\":\"v7\"") "," ATT(Z, C2),
                      ",\"annotations\":{\"over\":\"new\"}"));
    /* images in the old order, the rebuilt one in its place; then the attestations: the
     * new one's, and the kept image's (the replaced image's is dropped) */
    assert_int_equal(json_array_size(json_object_get(j, "manifests")), 5);
    assert_string_equal(s_digest(j, 0), A);
    assert_string_equal(s_digest(j, 1), B);
    assert_string_equal(s_digest(j, 2), C2);
    assert_string_equal(s_digest(j, 3), Z);
    assert_string_equal(s_digest(j, 4), X);
    assert_string_equal(json_string_value(json_object_get(j, "mediaType")),
                        "application/vnd.oci.image.index.v1+json");
    ann = json_object_get(j, "annotations");
    assert_string_equal(json_string_value(json_object_get(ann, "keep")), "old");
    assert_string_equal(json_string_value(json_object_get(ann, "over")), "new");
    assert_string_equal(json_string_value(json_object_get(ann, "org.opencontainers.image.source")),
                        "git");
    /* what the stitch checks in the registry: the two kept images and the attestation */
    assert_int_equal(n, 3);
    assert_string_equal(kept[0].d.digest, A);
    assert_string_equal(kept[0].d.platform.architecture, "amd64");
    assert_int_equal(kept[0].d.size, 500);
    assert_int_equal(kept[0].entry, 0);
    assert_false(kept[0].attestation);
    assert_string_equal(kept[1].d.digest, B);
    assert_int_equal(kept[1].entry, 2);
    assert_string_equal(kept[2].d.digest, X);
    assert_true(kept[2].attestation);
    free(kept);
    json_decref(j);
}

static void test_new_platform_appended(void **state)
{
    farm_amend_kept_t *kept = NULL;
    size_t n = 0;
    json_t *j;

    (void)state;
    /* a Docker manifest list is amended too; the result is an OCI index */
    j = s_merge(&kept, &n,
                "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution."
                "manifest.list.v2+json\",\"manifests\":[" IMG(A, "amd64", "") "]}",
                INDEX(IMG(B, "arm64", "") "," IMG(A, "amd64", ""), ""));
    assert_int_equal(json_array_size(json_object_get(j, "manifests")), 2);
    assert_string_equal(s_digest(j, 0), A); /* rebuilt, in its place */
    assert_string_equal(s_digest(j, 1), B);
    assert_int_equal(n, 0);
    assert_null(json_object_get(j, "annotations"));
    free(kept);
    json_decref(j);
}

static void s_refused(const char *old, const char *served, const char *want1,
                      const char *want2)
{
    const char *nw = INDEX(IMG(C2, "arm", ",\"variant\":\"v7\""), "");
    farm_amend_kept_t *kept = (farm_amend_kept_t *)1;
    char *out = (char *)1;
    size_t len = 1, n = 1;

    assert_int_equal(farm_amend_merge(&out, &len, &kept, &n, "reg/app:1", served, old,
                                      strlen(old), nw, strlen(nw)), FARM_EINVALID);
    assert_null(out);
    assert_null(kept);
    assert_int_equal(n, 0);
    if (!strstr(farm_error_last(), want1) || (want2 && !strstr(farm_error_last(), want2)))
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", farm_error_last(), want1,
                 want2 ? want2 : "");
}

static void test_refusals(void **state)
{
    (void)state;
    s_refused("{\"schemaVersion\":2,\"mediaType\":\"" MT "\",\"config\":{},\"layers\":[]}",
              NULL, "reg/app:1 is a single image", "without --amend");
    /* no mediaType in the bytes: the Content-Type it was served with rules */
    s_refused("{\"schemaVersion\":2,\"config\":{},\"layers\":[]}", MT,
              "reg/app:1 is a single image", MT);
    s_refused("not json", NULL, "reg/app:1 is not a JSON object", NULL);
    s_refused(INDEX(IMG(A, "amd64", "") ",{\"mediaType\":\"" MT "\",\"digest\":\"" B
                    "\",\"size\":3}", ""),
              NULL, "index entry 2 (" B ") names no platform", NULL);
    s_refused(INDEX(IMG(A, "amd64", "") "," IMG(B, "amd64", ""), ""), NULL,
              "index entries 1 and 2 both claim linux/amd64", NULL);
    s_refused(INDEX("{\"mediaType\":\"" MT "\",\"digest\":\"sha256:12\",\"size\":3}", ""), NULL,
              "index entry 1 is not a descriptor", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replace_one_keep_two),
        cmocka_unit_test(test_new_platform_appended),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
