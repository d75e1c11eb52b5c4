/* SPDX-License-Identifier: Apache-2.0 */
/* The stitch's child checks, without a registry: a manifest and the config it names,
 * judged against the descriptor the coordinator holds (reported digest, size and media
 * type; the job's platform). Each refusal must name the platform, the digest and what
 * differed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/oci.h"
#include "common/platform.h"
#include "coordinator/stitch.h"

#define OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define LAYER "sha256:1111111111111111111111111111111111111111111111111111111111111111"

typedef struct {
    char cfg[1024];
    size_t cfg_len;
    char cfg_digest[FARM_DIGEST_STRLEN];
    char man[2048];
    size_t man_len;
    farm_descriptor_t desc; /* as the coordinator holds it for the job */
} child_t;

/* A child whose config says os/arch[/variant] (variant NULL: no key), for a job on
 * job_platform, reported with the manifest's true digest, size and media type. */
static void s_child(child_t *c, const char *job_platform, const char *arch, const char *variant)
{
    int n;

    memset(c, 0, sizeof *c);
    n = snprintf(c->cfg, sizeof c->cfg,
                 "{\"architecture\":\"%s\",\"os\":\"linux\"%s%s%s,\"rootfs\":{\"type\":"
                 "\"layers\",\"diff_ids\":[]}}",
                 arch, variant ? ",\"variant\":\"" : "", variant ? variant : "",
                 variant ? "\"" : "");
    assert_true(n > 0 && (size_t)n < sizeof c->cfg);
    c->cfg_len = (size_t)n;
    farm_digest_buffer(c->cfg_digest, c->cfg, c->cfg_len);
    n = snprintf(c->man, sizeof c->man,
                 "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
                 "\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":"
                 "\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"%s\",\"size\":"
                 "32}]}",
                 FARM_MEDIA_OCI_MANIFEST, OCI_CONFIG, c->cfg_digest, c->cfg_len, LAYER);
    assert_true(n > 0 && (size_t)n < sizeof c->man);
    c->man_len = (size_t)n;
    snprintf(c->desc.media_type, sizeof c->desc.media_type, "%s", FARM_MEDIA_OCI_MANIFEST);
    farm_digest_buffer(c->desc.digest, c->man, c->man_len);
    c->desc.size = c->man_len;
    assert_int_equal(farm_platform_parse(&c->desc.platform, job_platform), 0);
}

static int s_check(const child_t *c)
{
    farm_error_clear();
    return farm_stitch_check_child(&c->desc, FARM_MEDIA_OCI_MANIFEST, c->man, c->man_len,
                                   c->cfg, c->cfg_len);
}

/* The last error holds every one of the given pieces. */
static void s_says(const char *first, ...)
{
    va_list ap;
    const char *s = first;
    va_start(ap, first);
    while (s) {
        if (!strstr(farm_error_last(), s))
            fail_msg("error \"%s\" lacks \"%s\"", farm_error_last(), s);
        s = va_arg(ap, const char *);
    }
    va_end(ap);
}

static void test_right_platform(void **state)
{
    child_t c;
    (void)state;
    s_child(&c, "linux/amd64", "amd64", NULL);
    assert_int_equal(s_check(&c), 0);
    /* the config's own spellings normalise too */
    s_child(&c, "linux/amd64", "x86_64", NULL);
    assert_int_equal(s_check(&c), 0);
    s_child(&c, "linux/arm/v7", "arm", "v7");
    assert_int_equal(s_check(&c), 0);
    s_child(&c, "linux/arm/v7", "arm", NULL); /* arm without a variant is arm/v7 */
    assert_int_equal(s_check(&c), 0);
    /* a Docker v2 manifest reported as such is fine as well */
    s_child(&c, "linux/amd64", "amd64", NULL);
    {
        char *p = strstr(c.man, FARM_MEDIA_OCI_MANIFEST);
        char man[2048];
        int n = snprintf(man, sizeof man, "%.*s%s%s", (int)(p - c.man), c.man,
                         FARM_MEDIA_DOCKER_MANIFEST, p + strlen(FARM_MEDIA_OCI_MANIFEST));
        assert_true(n > 0 && (size_t)n < sizeof man);
        memcpy(c.man, man, (size_t)n + 1);
        c.man_len = (size_t)n;
        farm_digest_buffer(c.desc.digest, c.man, c.man_len);
        c.desc.size = c.man_len;
        snprintf(c.desc.media_type, sizeof c.desc.media_type, "%s", FARM_MEDIA_DOCKER_MANIFEST);
        assert_int_equal(farm_stitch_check_child(&c.desc, FARM_MEDIA_DOCKER_MANIFEST, c.man,
                                                 c.man_len, c.cfg, c.cfg_len), 0);
    }
}

static void test_wrong_architecture(void **state)
{
    child_t c;
    (void)state;
    /* the attack: a real arm64 image reported for an amd64 job */
    s_child(&c, "linux/amd64", "arm64", NULL);
    assert_int_equal(s_check(&c), FARM_EINVALID);
    s_says("linux/amd64 child", c.desc.digest, c.cfg_digest, "says linux/arm64, not linux/amd64",
           NULL);
    s_child(&c, "linux/arm64", "amd64", NULL);
    assert_int_equal(s_check(&c), FARM_EINVALID);
    s_says("linux/arm64 child", "says linux/amd64, not linux/arm64", NULL);
}

static void test_arm_variant_mismatch(void **state)
{
    child_t c;
    (void)state;
    s_child(&c, "linux/arm/v7", "arm", "v6");
    assert_int_equal(s_check(&c), FARM_EINVALID);
    s_says("linux/arm/v7 child", c.desc.digest, "says linux/arm/v6, not linux/arm/v7", NULL);
    s_child(&c, "linux/arm/v6", "arm", "v7");
    assert_int_equal(s_check(&c), FARM_EINVALID);
    s_says("says linux/arm/v7, not linux/arm/v6", NULL);
    s_child(&c, "linux/arm/v6", "arm", NULL); /* no variant means v7, not "any arm" */
    assert_int_equal(s_check(&c), FARM_EINVALID);
    s_says("says linux/arm/v7, not linux/arm/v6", NULL);
}

static void test_arm64_variant(void **state)
{
    child_t c;
    (void)state;
    s_child(&c, "linux/arm64", "arm64", NULL); /* what buildah writes */
    assert_int_equal(s_check(&c), 0);
    s_child(&c, "linux/arm64", "arm64", "v8");
    assert_int_equal(s_check(&c), 0);
    s_child(&c, "linux/arm64/v8", "arm64", NULL);
    assert_int_equal(s_check(&c), 0);
    s_child(&c, "linux/arm64", "aarch64", "");
    assert_int_equal(s_check(&c), 0);
    s_child(&c, "linux/arm64", "arm", "v8"); /* 32-bit arm is not arm64 */
    assert_int_not_equal(s_check(&c), 0);
}

static void s_index_case(const char *served_type, const char *body)
{
    farm_descriptor_t d = {0};
    char cfg_digest[FARM_DIGEST_STRLEN];
    uint64_t cfg_size = 99;

    snprintf(d.media_type, sizeof d.media_type, "%s", FARM_MEDIA_OCI_MANIFEST);
    farm_digest_buffer(d.digest, body, strlen(body));
    d.size = strlen(body);
    assert_int_equal(farm_platform_parse(&d.platform, "linux/amd64"), 0);
    farm_error_clear();
    assert_int_equal(farm_stitch_check_manifest(cfg_digest, &cfg_size, &d, served_type, body,
                                                strlen(body)),
                     FARM_EINVALID);
    s_says("linux/amd64 child", d.digest, "is an image index", NULL);
    assert_string_equal(cfg_digest, "");
    assert_int_equal(cfg_size, 0);
}

static void test_index_refused(void **state)
{
    child_t c;
    char body[2048];
    (void)state;
    s_child(&c, "linux/amd64", "amd64", NULL);
    snprintf(body, sizeof body,
             "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[{\"mediaType\":\"%s\","
             "\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"architecture\":\"amd64\",\"os\":"
             "\"linux\"}}]}",
             FARM_MEDIA_OCI_INDEX, FARM_MEDIA_OCI_MANIFEST, c.desc.digest, c.man_len);
    s_index_case(FARM_MEDIA_OCI_INDEX, body);
    s_index_case(NULL, body);
    /* served as a manifest but the bytes are an index */
    s_index_case(FARM_MEDIA_OCI_MANIFEST, body);
    snprintf(body, sizeof body,
             "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[]}",
             FARM_MEDIA_DOCKER_LIST);
    s_index_case(FARM_MEDIA_DOCKER_LIST, body);
    /* an OCI index may leave mediaType out: the served type and the manifests[] tell */
    s_index_case(FARM_MEDIA_OCI_INDEX, "{\"schemaVersion\":2,\"manifests\":[]}");
    s_index_case(NULL, "{\"schemaVersion\":2,\"manifests\":[]}");
}

static void test_digest_mismatch(void **state)
{
    child_t c;
    (void)state;
    /* the registry serves other bytes than the reported digest */
    s_child(&c, "linux/amd64", "amd64", NULL);
    c.man[c.man_len - 1] = ' '; /* one byte changed: still same length */
    assert_int_equal(s_check(&c), FARM_EINVALID);
    s_says("linux/amd64 child", c.desc.digest, "hash to", NULL);
    /* the config served is not the config the manifest names */
    s_child(&c, "linux/amd64", "amd64", NULL);
    c.cfg[c.cfg_len - 1] = ' ';
    assert_int_equal(s_check(&c), FARM_EINVALID);
    s_says("linux/amd64 child", c.desc.digest, c.cfg_digest, "hash to", NULL);
    /* right bytes, wrong reported size or media type */
    s_child(&c, "linux/amd64", "amd64", NULL);
    c.desc.size++;
    assert_int_equal(s_check(&c), FARM_EINVALID);
    s_says(c.desc.digest, "bytes but the node reported", NULL);
    s_child(&c, "linux/amd64", "amd64", NULL);
    snprintf(c.desc.media_type, sizeof c.desc.media_type, "%s", FARM_MEDIA_DOCKER_MANIFEST);
    assert_int_equal(s_check(&c), FARM_EINVALID);
    s_says(c.desc.digest, "media type is " FARM_MEDIA_OCI_MANIFEST, "reported "
           FARM_MEDIA_DOCKER_MANIFEST, NULL);
    /* the registry says one type, the bytes another */
    s_child(&c, "linux/amd64", "amd64", NULL);
    farm_error_clear();
    assert_int_equal(farm_stitch_check_child(&c.desc, FARM_MEDIA_DOCKER_MANIFEST, c.man,
                                             c.man_len, c.cfg, c.cfg_len),
                     FARM_EINVALID);
    s_says(c.desc.digest, "serves it as", NULL);
    /* a config of the right bytes but another length than the manifest says */
    s_child(&c, "linux/amd64", "amd64", NULL);
    farm_error_clear();
    assert_int_equal(farm_stitch_check_config(&c.desc, c.cfg_digest, c.cfg_len + 1, c.cfg,
                                              c.cfg_len),
                     FARM_EINVALID);
    s_says(c.cfg_digest, "manifest says", NULL);
}

static void test_oversize(void **state)
{
    child_t c;
    size_t big = FARM_MANIFEST_MAX + 1, bigcfg = FARM_STITCH_CONFIG_MAX + 1;
    char *buf = malloc(bigcfg), cfg_digest[FARM_DIGEST_STRLEN];
    uint64_t cfg_size;
    (void)state;
    assert_non_null(buf);
    memset(buf, ' ', bigcfg);
    s_child(&c, "linux/amd64", "amd64", NULL);
    farm_digest_buffer(c.desc.digest, buf, big); /* even the "right" digest */
    c.desc.size = big;
    farm_error_clear();
    assert_int_equal(farm_stitch_check_manifest(cfg_digest, &cfg_size, &c.desc,
                                                FARM_MEDIA_OCI_MANIFEST, buf, big),
                     FARM_ETOOBIG);
    s_says("linux/amd64 child", c.desc.digest, "over the 4194304 byte limit", NULL);
    /* exactly at the limit is not refused for its size */
    farm_digest_buffer(c.desc.digest, buf, FARM_MANIFEST_MAX);
    c.desc.size = FARM_MANIFEST_MAX;
    farm_error_clear();
    assert_int_equal(farm_stitch_check_manifest(cfg_digest, &cfg_size, &c.desc,
                                                FARM_MEDIA_OCI_MANIFEST, buf, FARM_MANIFEST_MAX),
                     FARM_EINVALID); /* blanks are not JSON */
    assert_null(strstr(farm_error_last(), "limit"));
    s_child(&c, "linux/amd64", "amd64", NULL);
    farm_digest_buffer(cfg_digest, buf, bigcfg);
    farm_error_clear();
    assert_int_equal(farm_stitch_check_config(&c.desc, cfg_digest, bigcfg, buf, bigcfg),
                     FARM_ETOOBIG);
    s_says("linux/amd64 child", cfg_digest, "over the", NULL);
    free(buf);
}

static void test_malformed(void **state)
{
    child_t c;
    (void)state;
    /* config without architecture */
    s_child(&c, "linux/amd64", "amd64", NULL);
    {
        const char *cfg = "{\"os\":\"linux\"}";
        char man[2048], d[FARM_DIGEST_STRLEN];
        int n;
        farm_digest_buffer(d, cfg, strlen(cfg));
        n = snprintf(man, sizeof man,
                     "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
                     "\"digest\":\"%s\",\"size\":%zu},\"layers\":[]}",
                     FARM_MEDIA_OCI_MANIFEST, OCI_CONFIG, d, strlen(cfg));
        farm_digest_buffer(c.desc.digest, man, (size_t)n);
        c.desc.size = (uint64_t)n;
        farm_error_clear();
        assert_int_equal(farm_stitch_check_child(&c.desc, NULL, man, (size_t)n, cfg,
                                                 strlen(cfg)),
                         FARM_EINVALID);
        s_says(d, "no os and architecture", NULL);
    }
    /* manifest without a config descriptor, and not JSON at all */
    {
        const char *man = "{\"schemaVersion\":2,\"mediaType\":\"" FARM_MEDIA_OCI_MANIFEST
                          "\",\"layers\":[]}";
        farm_digest_buffer(c.desc.digest, man, strlen(man));
        c.desc.size = strlen(man);
        farm_error_clear();
        assert_int_equal(farm_stitch_check_child(&c.desc, NULL, man, strlen(man), "{}", 2),
                         FARM_EINVALID);
        s_says("config descriptor", NULL);
        man = "not json";
        farm_digest_buffer(c.desc.digest, man, strlen(man));
        c.desc.size = strlen(man);
        farm_error_clear();
        assert_int_equal(farm_stitch_check_child(&c.desc, NULL, man, strlen(man), "{}", 2),
                         FARM_EINVALID);
        s_says(c.desc.digest, "not valid JSON", NULL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_right_platform),  cmocka_unit_test(test_wrong_architecture),
        cmocka_unit_test(test_arm_variant_mismatch), cmocka_unit_test(test_arm64_variant),
        cmocka_unit_test(test_index_refused),   cmocka_unit_test(test_digest_mismatch),
        cmocka_unit_test(test_oversize),        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
