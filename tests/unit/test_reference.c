/* SPDX-License-Identifier: Apache-2.0 */
/* common/reference: docker/distribution normalisation and grammar, table driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/limits.h"
#include "common/reference.h"

#define D64 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static const struct {
    const char *in, *registry, *repository, *tag, *digest, *formatted, *api_host;
} s_good[] = {
    {"alpine", "docker.io", "library/alpine", "latest", "", "docker.io/library/alpine:latest",
     "registry-1.docker.io"},
    {"alpine:3.19", "docker.io", "library/alpine", "3.19", "", NULL, NULL},
    {"user/app", "docker.io", "user/app", "latest", "", "docker.io/user/app:latest", NULL},
    {"docker.io/alpine", "docker.io", "library/alpine", "latest", "", NULL, NULL},
    {"index.docker.io/user/app:v1", "docker.io", "user/app", "v1", "", NULL, NULL},
    {"docker.io/library/alpine:edge", "docker.io", "library/alpine", "edge", "", NULL, NULL},
    {"localhost/app", "localhost", "app", "latest", "", NULL, "localhost"},
    {"localhost:5000/a/b:t", "localhost:5000", "a/b", "t", "", "localhost:5000/a/b:t",
     "localhost:5000"},
    {"127.0.0.1:5000/team/app:1.4", "127.0.0.1:5000", "team/app", "1.4", "", NULL, NULL},
    {"registry.example.com/team/app:1.4", "registry.example.com", "team/app", "1.4", "", NULL,
     "registry.example.com"},
    {"r.io/a/b@sha256:" D64, "r.io", "a/b", "", "sha256:" D64, "r.io/a/b@sha256:" D64, NULL},
    {"r.io/a:t@sha256:" D64, "r.io", "a", "t", "sha256:" D64, "r.io/a:t@sha256:" D64, NULL},
    {"alpine@sha256:" D64, "docker.io", "library/alpine", "", "sha256:" D64, NULL, NULL},
    {"ghcr.io/o/deep/nested/path:x", "ghcr.io", "o/deep/nested/path", "x", "", NULL, NULL},
    {"r.io/a.b/c_d/e__f/g-h/i---j:Tag_1.-x", "r.io", "a.b/c_d/e__f/g-h/i---j", "Tag_1.-x", "",
     NULL, NULL},
    {"my-registry:5000/x", "my-registry:5000", "x", "latest", "", NULL, NULL},
    {"[::1]:5000/x:y", "[::1]:5000", "x", "y", "", NULL, NULL},
    {"Registry.IO/x", "Registry.IO", "x", "latest", "", NULL, NULL}, /* host may be upper */
    {"a/b:_tag", "docker.io", "a/b", "_tag", "", NULL, NULL},
};

static const struct {
    const char *in, *why; /* substring of the message */
} s_bad[] = {
    {"", "empty"},
    {"Alpine", "lowercase"},
    {"user/App", "lowercase"},
    {"r.io/Team/app", "lowercase"},
    {"r.io/", "empty"},
    {":tag", "empty"},
    {"@sha256:" D64, "empty"},
    {"r.io/a/b:", "tag"},
    {"r.io/a/b:-bad", "tag"},
    {"r.io/a/b:.bad", "tag"},
    {"r.io/a/b:bad!", "tag"},
    {"r.io/a/b:t@sha256:abc", "digest"},
    {"r.io/a/b@sha256:" D64 "0", "digest"},
    {"r.io/a/b@md5:d41d8cd98f00b204e9800998ecf8427e", "sha256"},
    {"r.io/a/b@", "digest"},
    {"r.io/a//b", "path components"},
    {"r.io/a/b/", "path components"},
    {"r.io/-a", "path components"},
    {"r.io/a-", "path components"},
    {"r.io/a..b", "path components"},
    {"r.io/a___b", "path components"},
    {"r.io/a+b", "path components"},
    {"r.io/a b", "space"},
    {"r.io:/a", "host"},
    {"r.io:50x0/a", "host"},
    {"-r.io/a", "host"},
    {"r..io/a", "host"},
    {D64, "image ID"},
    {"a/b:0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789",
     "128"},
};

static void test_good(void **state)
{
    for (size_t i = 0; i < sizeof s_good / sizeof s_good[0]; i++) {
        farm_reference_t r;
        char buf[600];
        int rc = farm_reference_parse(&r, s_good[i].in);
        if (rc != 0)
            fail_msg("\"%s\" should parse: %s", s_good[i].in, farm_error_last());
        assert_string_equal(r.registry, s_good[i].registry);
        assert_string_equal(r.repository, s_good[i].repository);
        assert_string_equal(r.tag, s_good[i].tag);
        assert_string_equal(r.digest, s_good[i].digest);
        assert_int_equal(farm_reference_format(buf, sizeof buf, &r), 0);
        if (s_good[i].formatted)
            assert_string_equal(buf, s_good[i].formatted);
        if (s_good[i].api_host)
            assert_string_equal(farm_reference_api_host(&r), s_good[i].api_host);
        /* the formatted form is canonical: it parses to itself */
        {
            farm_reference_t r2;
            char buf2[600];
            assert_int_equal(farm_reference_parse(&r2, buf), 0);
            assert_int_equal(farm_reference_format(buf2, sizeof buf2, &r2), 0);
            assert_string_equal(buf, buf2);
        }
    }
}

static void test_bad(void **state)
{
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++) {
        farm_reference_t r;
        int rc = farm_reference_parse(&r, s_bad[i].in);
        if (rc != FARM_EINVALID)
            fail_msg("\"%s\" should be refused, got rc %d (%s/%s)", s_bad[i].in, rc,
                     r.registry, r.repository);
        if (!strstr(farm_error_last(), s_bad[i].why))
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", s_bad[i].in, farm_error_last(),
                     s_bad[i].why);
        /* errors name the reference (long ones are cut) */
        if (strlen(s_bad[i].in) < 100 && !strstr(farm_error_last(), s_bad[i].in))
            fail_msg("message \"%s\" does not name \"%s\"", farm_error_last(), s_bad[i].in);
    }
    assert_int_equal(farm_reference_parse(&(farm_reference_t){0}, NULL), FARM_EINVALID);
}

static void test_limits(void **state)
{
    char name[400], tag[200];
    farm_reference_t r;
    /* a 128-character tag is the maximum */
    memset(tag, 'a', 128);
    tag[128] = '\0';
    snprintf(name, sizeof name, "r.io/x:%s", tag);
    assert_int_equal(farm_reference_parse(&r, name), 0);
    assert_int_equal(strlen(r.tag), 128);
    /* names over 255 characters are refused */
    memset(name, 'a', 300);
    name[300] = '\0';
    name[0] = 'r', name[1] = '.', name[2] = 'i', name[3] = 'o', name[4] = '/';
    assert_int_equal(farm_reference_parse(&r, name), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "255"));
    /* docker.io/library/ counts toward the limit: 18 + 237 = 255 is the most */
    memset(name, 'a', 237);
    name[237] = '\0';
    assert_int_equal(farm_reference_parse(&r, name), 0);
    assert_int_equal(strlen(r.registry) + 1 + strlen(r.repository), 255);
    name[237] = 'a';
    name[238] = '\0';
    assert_int_equal(farm_reference_parse(&r, name), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "255"));
}

/* The longest reference that parses still fits FARM_REFERENCE_MAX; a buffer too small is
 * refused, never filled with a shorter (other) reference. */
static void test_format_bounded(void **state)
{
    char in[1024], buf[FARM_REFERENCE_MAX], small[32];
    farm_reference_t r;
    size_t n = 0;

    n += (size_t)snprintf(in + n, sizeof in - n, "registry.example.com:5000/");
    while (n < 250)
        in[n++] = 'a';
    n += (size_t)snprintf(in + n, sizeof in - n, ":");
    for (int i = 0; i < 128; i++)
        in[n++] = 't';
    n += (size_t)snprintf(in + n, sizeof in - n, "@sha256:%s%s",
                          "0123456789abcdef0123456789abcdef",
                          "0123456789abcdef0123456789abcdef");
    assert_int_equal(farm_reference_parse(&r, in), 0);
    assert_int_equal(farm_reference_format(buf, sizeof buf, &r), 0);
    assert_string_equal(buf, in);

    memset(small, 'x', sizeof small);
    assert_int_equal(farm_reference_format(small, sizeof small, &r), FARM_ETOOBIG);
    assert_string_equal(small, "");
    assert_non_null(strstr(farm_error_last(), "image reference is too long"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_format_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
