/* SPDX-License-Identifier: Apache-2.0 */
/* Bounded formatting: farm_str_fmt refuses what does not fit (FARM_ETOOBIG, empty
 * result, a message naming what), farm_str_fmt_cut marks a cut with "...". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "common/error.h"
#include "common/str.h"

static void test_fmt(void **state)
{
    char out[8];

    assert_int_equal(farm_str_fmt(out, sizeof out, "the tag", "%s:%d", "v", 12345), 0);
    assert_string_equal(out, "v:12345"); /* 7 bytes fit in 8 */
    memset(out, 'x', sizeof out);
    assert_int_equal(farm_str_fmt(out, sizeof out, "the tag", "%s:%d", "v", 123456),
                     FARM_ETOOBIG);
    assert_string_equal(out, "");
    assert_string_equal(farm_error_last(), "the tag is too long (8 bytes, at most 7)");
}

static void test_fmt_cut(void **state)
{
    char out[8];

    assert_int_equal(farm_str_fmt_cut(out, sizeof out, "%s", "1234567"), 0);
    assert_string_equal(out, "1234567");
    assert_int_equal(farm_str_fmt_cut(out, sizeof out, "%s", "12345678"), 1);
    assert_string_equal(out, "1234...");
    assert_int_equal(farm_str_fmt_cut(out, 3, "%s", "abc"), 1); /* no room for "..." */
    assert_string_equal(out, "");
}

static void test_error_wrap_marks_cut(void **state)
{
    char big[3000];

    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    farm_error_set(FARM_ERROR, "%s", big);
    assert_int_equal(strlen(farm_error_last()), 2047);
    assert_string_equal(farm_error_last() + 2044, "...");
    farm_error_set(FARM_ERROR, "inner");
    farm_error_wrap(FARM_ERROR, "outer %d", 1);
    assert_string_equal(farm_error_last(), "outer 1: inner");
    farm_error_set(FARM_ERROR, "%.2045s", big); /* fits alone, not with "outer: " */
    farm_error_wrap(FARM_ERROR, "outer");
    assert_int_equal(strncmp(farm_error_last(), "outer: mmm", 10), 0);
    assert_string_equal(farm_error_last() + strlen(farm_error_last()) - 3, "...");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmt),
        cmocka_unit_test(test_fmt_cut),
        cmocka_unit_test(test_error_wrap_marks_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
