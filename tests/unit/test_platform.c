/* SPDX-License-Identifier: Apache-2.0 */
/* Platforms: containerd-style normalisation, refusal of junk with a message naming it,
 * equality across aliases, index variants, buildx TARGET* args, this host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/platform.h"

static void s_expect(const char *in, const char *os, const char *arch, const char *variant,
                     const char *canon)
{
    farm_platform_t p;
    char buf[FARM_PLATFORM_STRLEN];
    int rc = farm_platform_parse(&p, in);
    if (rc != 0)
        fail_msg("\"%s\" did not parse: %s", in, farm_error_last());
    assert_string_equal(p.os, os);
    assert_string_equal(p.architecture, arch);
    assert_string_equal(p.variant, variant);
    farm_platform_format(buf, sizeof buf, &p);
    assert_string_equal(buf, canon);
}

static void test_normalisation_table(void **state)
{
    static const struct {
        const char *in, *os, *arch, *variant, *canon;
    } t[] = {
        {"linux/amd64", "linux", "amd64", "", "linux/amd64"},
        {"amd64", "linux", "amd64", "", "linux/amd64"},
        {"x86_64", "linux", "amd64", "", "linux/amd64"},
        {"x86-64", "linux", "amd64", "", "linux/amd64"},
        {"linux/x86_64", "linux", "amd64", "", "linux/amd64"},
        {"linux/amd64/v1", "linux", "amd64", "", "linux/amd64"},
        {"linux/amd64/v3", "linux", "amd64", "v3", "linux/amd64/v3"},
        {"aarch64", "linux", "arm64", "", "linux/arm64"},
        {"arm64", "linux", "arm64", "", "linux/arm64"},
        {"arm64/v8", "linux", "arm64", "", "linux/arm64"},
        {"linux/arm64", "linux", "arm64", "", "linux/arm64"},
        {"linux/arm64/v8", "linux", "arm64", "", "linux/arm64"},
        {"linux/arm64/8", "linux", "arm64", "", "linux/arm64"},
        {"linux/aarch64", "linux", "arm64", "", "linux/arm64"},
        {"linux/arm64/v8.2", "linux", "arm64", "v8.2", "linux/arm64/v8.2"},
        {"armhf", "linux", "arm", "v7", "linux/arm/v7"},
        {"armel", "linux", "arm", "v6", "linux/arm/v6"},
        {"arm", "linux", "arm", "v7", "linux/arm/v7"},
        {"linux/arm", "linux", "arm", "v7", "linux/arm/v7"},
        {"linux/arm/7", "linux", "arm", "v7", "linux/arm/v7"},
        {"linux/arm/v7", "linux", "arm", "v7", "linux/arm/v7"},
        {"linux/arm/v6", "linux", "arm", "v6", "linux/arm/v6"},
        {"linux/arm/6", "linux", "arm", "v6", "linux/arm/v6"},
        {"linux/arm/v5", "linux", "arm", "v5", "linux/arm/v5"},
        {"arm/v7", "linux", "arm", "v7", "linux/arm/v7"},
        {"linux/armhf", "linux", "arm", "v7", "linux/arm/v7"},
        {"armv7l", "linux", "arm", "v7", "linux/arm/v7"},
        {"armv6l", "linux", "arm", "v6", "linux/arm/v6"},
        {"i386", "linux", "386", "", "linux/386"},
        {"i686", "linux", "386", "", "linux/386"},
        {"386", "linux", "386", "", "linux/386"},
        {"linux/386", "linux", "386", "", "linux/386"},
        {"ppc64le", "linux", "ppc64le", "", "linux/ppc64le"},
        {"ppc64el", "linux", "ppc64le", "", "linux/ppc64le"},
        {"linux/s390x", "linux", "s390x", "", "linux/s390x"},
        {"riscv64", "linux", "riscv64", "", "linux/riscv64"},
        {"windows/amd64", "windows", "amd64", "", "windows/amd64"},
        /* case-insensitive and trimmed */
        {"LINUX/ARM64", "linux", "arm64", "", "linux/arm64"},
        {"  Linux/Arm/V7\n", "linux", "arm", "v7", "linux/arm/v7"},
        {"\tX86_64 ", "linux", "amd64", "", "linux/amd64"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        s_expect(t[i].in, t[i].os, t[i].arch, t[i].variant, t[i].canon);
}

static void s_expect_bad(const char *in, const char *needle)
{
    farm_platform_t p;
    farm_error_clear();
    if (farm_platform_parse(&p, in) != FARM_EINVALID)
        fail_msg("\"%s\" was accepted as %s/%s/%s", in, p.os, p.architecture, p.variant);
    if (!strstr(farm_error_last(), needle))
        fail_msg("message for \"%s\" lacks \"%s\": %s", in, needle, farm_error_last());
}

static void test_junk_is_refused(void **state)
{
    s_expect_bad("linux/foo/bar/baz", "\"linux/foo/bar/baz\" has too many parts");
    s_expect_bad("", "empty platform");
    s_expect_bad("   ", "empty platform");
    s_expect_bad("linux/", "\"linux/\" has an empty part");
    s_expect_bad("/amd64", "\"/amd64\" has an empty part");
    s_expect_bad("linux//v7", "has an empty part");
    s_expect_bad("linux", "\"linux\" names no architecture");
    s_expect_bad("foo", "unknown architecture \"foo\"");
    s_expect_bad("linux/sparc", "unknown architecture \"sparc\"");
    s_expect_bad("windoze/amd64", "unknown operating system \"windoze\"");
    s_expect_bad("linux/arm/v9", "variant \"v9\" does not exist for arm");
    s_expect_bad("linux/amd64/v7", "variant \"v7\" does not exist for amd64");
    s_expect_bad("linux/arm64/v7", "variant \"v7\" does not exist for arm64");
    s_expect_bad("armhf/v6", "armhf means arm/v7");
    s_expect_bad("linux/arm/v 7", "is not valid");
    s_expect_bad("linux/arm64/\x01", "is not valid");
    s_expect_bad(NULL, "no platform");
    {
        char longs[400];
        memset(longs, 'a', sizeof longs - 1);
        longs[sizeof longs - 1] = '\0';
        s_expect_bad(longs, "is too long");
    }
}

static void test_parse_clears_out_on_error(void **state)
{
    farm_platform_t p;
    memset(&p, 'x', sizeof p);
    assert_int_equal(farm_platform_parse(&p, "linux/foo/bar/baz"), FARM_EINVALID);
    assert_string_equal(p.os, "");
    assert_string_equal(p.architecture, "");
}

static farm_platform_t s_raw(const char *os, const char *arch, const char *variant)
{
    farm_platform_t p;
    memset(&p, 0, sizeof p);
    snprintf(p.os, sizeof p.os, "%s", os);
    snprintf(p.architecture, sizeof p.architecture, "%s", arch);
    snprintf(p.variant, sizeof p.variant, "%s", variant);
    return p;
}

static void test_equality(void **state)
{
    farm_platform_t a, b, r;
    assert_int_equal(farm_platform_parse(&a, "aarch64"), 0);
    assert_int_equal(farm_platform_parse(&b, "linux/arm64/v8"), 0);
    assert_true(farm_platform_equal(&a, &b));
    assert_int_equal(farm_platform_parse(&a, "armhf"), 0);
    assert_int_equal(farm_platform_parse(&b, "linux/arm/7"), 0);
    assert_true(farm_platform_equal(&a, &b));
    assert_int_equal(farm_platform_parse(&b, "linux/arm/v6"), 0);
    assert_false(farm_platform_equal(&a, &b));
    assert_int_equal(farm_platform_parse(&a, "linux/amd64"), 0);
    assert_int_equal(farm_platform_parse(&b, "linux/arm64"), 0);
    assert_false(farm_platform_equal(&a, &b));

    /* un-normalised structs as they come out of an image config */
    r = s_raw("linux", "arm64", "v8");
    assert_int_equal(farm_platform_parse(&a, "linux/arm64"), 0);
    assert_true(farm_platform_equal(&r, &a));
    r = s_raw("linux", "arm", "");
    assert_int_equal(farm_platform_parse(&a, "linux/arm/v7"), 0);
    assert_true(farm_platform_equal(&r, &a));
    r = s_raw("linux", "arm", "v6");
    assert_false(farm_platform_equal(&r, &a));
    r = s_raw("windows", "amd64", "");
    assert_int_equal(farm_platform_parse(&a, "linux/amd64"), 0);
    assert_false(farm_platform_equal(&r, &a));
}

static void test_index_variant(void **state)
{
    farm_platform_t p;
    assert_int_equal(farm_platform_parse(&p, "linux/arm64"), 0);
    assert_string_equal(farm_platform_index_variant(&p), "v8");
    assert_int_equal(farm_platform_parse(&p, "linux/arm/v7"), 0);
    assert_string_equal(farm_platform_index_variant(&p), "v7");
    assert_int_equal(farm_platform_parse(&p, "armel"), 0);
    assert_string_equal(farm_platform_index_variant(&p), "v6");
    assert_int_equal(farm_platform_parse(&p, "linux/amd64"), 0);
    assert_null(farm_platform_index_variant(&p));
    assert_int_equal(farm_platform_parse(&p, "linux/s390x"), 0);
    assert_null(farm_platform_index_variant(&p));
    p = s_raw("linux", "arm", "");
    assert_string_equal(farm_platform_index_variant(&p), "v7");
}

static void test_from_config(void **state)
{
    farm_platform_t p;
    char buf[FARM_PLATFORM_STRLEN];

    assert_int_equal(farm_platform_from_config(&p, "linux", "arm64", NULL), 0);
    farm_platform_format(buf, sizeof buf, &p);
    assert_string_equal(buf, "linux/arm64");
    assert_int_equal(farm_platform_from_config(&p, "linux", "arm64", "v8"), 0);
    assert_string_equal(p.variant, "");
    assert_int_equal(farm_platform_from_config(&p, "linux", "arm", ""), 0);
    farm_platform_format(buf, sizeof buf, &p);
    assert_string_equal(buf, "linux/arm/v7");
    assert_int_equal(farm_platform_from_config(&p, "linux", "arm", "v6"), 0);
    assert_string_equal(p.variant, "v6");
    assert_int_equal(farm_platform_from_config(&p, "linux", "amd64", NULL), 0);
    assert_string_equal(p.variant, "");
    assert_int_equal(farm_platform_from_config(&p, "linux", NULL, NULL), FARM_EINVALID);
    assert_int_equal(farm_platform_from_config(&p, NULL, "amd64", NULL), FARM_EINVALID);
    assert_int_equal(farm_platform_from_config(&p, "linux", "", NULL), FARM_EINVALID);
    assert_int_equal(farm_platform_from_config(&p, "linux", "mystery", NULL), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "mystery"));
}

static void s_expect_args(const char *in, const char *plat, const char *os, const char *arch,
                          const char *variant)
{
    farm_platform_t p;
    char a[FARM_PLATFORM_STRLEN], b[32], c[32], d[16];
    assert_int_equal(farm_platform_parse(&p, in), 0);
    memset(d, 'x', sizeof d);
    farm_platform_target_args(&p, a, sizeof a, b, sizeof b, c, sizeof c, d, sizeof d);
    assert_string_equal(a, plat);
    assert_string_equal(b, os);
    assert_string_equal(c, arch);
    assert_string_equal(d, variant);
}

static void test_target_args(void **state)
{
    farm_platform_t raw = s_raw("linux", "arm", "");
    char a[FARM_PLATFORM_STRLEN], v[16];

    s_expect_args("linux/arm/v7", "linux/arm/v7", "linux", "arm", "v7");
    s_expect_args("armhf", "linux/arm/v7", "linux", "arm", "v7");
    s_expect_args("linux/arm64", "linux/arm64", "linux", "arm64", "");
    s_expect_args("arm64/v8", "linux/arm64", "linux", "arm64", "");
    s_expect_args("x86_64", "linux/amd64", "linux", "amd64", "");
    s_expect_args("armel", "linux/arm/v6", "linux", "arm", "v6");
    /* an un-normalised arm says v7, as buildx does */
    farm_platform_target_args(&raw, a, sizeof a, NULL, 0, NULL, 0, v, sizeof v);
    assert_string_equal(a, "linux/arm/v7");
    assert_string_equal(v, "v7");
}

static void test_format_bounded(void **state)
{
    farm_platform_t p;
    char small[8];
    memset(small, 'x', sizeof small);
    assert_int_equal(farm_platform_parse(&p, "linux/arm/v7"), 0);
    farm_platform_format(small, sizeof small, &p);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, "linux/a", 8);
}

/* --platform lists: canonical forms appended, bounded, a bad one named */
static void test_list(void **state)
{
    char *out[3] = {0};
    size_t n = 0;
    (void)state;

    assert_int_equal(farm_platform_list(out, &n, 3, "amd64,linux/arm/v7"), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out[0], "linux/amd64");
    assert_string_equal(out[1], "linux/arm/v7");
    assert_int_equal(farm_platform_list(out, &n, 3, "aarch64,ppc99"), FARM_EINVALID);
    assert_int_equal(n, 3); /* aarch64 was added, ppc99 refused */
    assert_string_equal(out[2], "linux/arm64");
    assert_int_equal(farm_platform_list(out, &n, 3, "s390x"), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "too many platforms (at most 3)"));
    for (size_t i = 0; i < n; i++)
        free(out[i]);
}

static void test_host(void **state)
{
    farm_platform_t p, q;
    struct utsname u;
    char buf[FARM_PLATFORM_STRLEN], expect[256];

    assert_int_equal(uname(&u), 0);
    assert_int_equal(farm_platform_host(&p), 0);
    assert_string_equal(p.os, "linux");
    farm_platform_format(buf, sizeof buf, &p);
    /* the host's platform is what its uname machine normalises to */
    snprintf(expect, sizeof expect, "linux/%s", u.machine);
    assert_int_equal(farm_platform_parse(&q, expect), 0);
    assert_true(farm_platform_equal(&p, &q));
    if (strcmp(u.machine, "x86_64") == 0)
        assert_string_equal(buf, "linux/amd64");
    else if (strcmp(u.machine, "aarch64") == 0)
        assert_string_equal(buf, "linux/arm64");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalisation_table),
        cmocka_unit_test(test_junk_is_refused),
        cmocka_unit_test(test_parse_clears_out_on_error),
        cmocka_unit_test(test_equality),
        cmocka_unit_test(test_index_variant),
        cmocka_unit_test(test_from_config),
        cmocka_unit_test(test_target_args),
        cmocka_unit_test(test_format_bounded),
        cmocka_unit_test(test_list), cmocka_unit_test(test_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
