/* SPDX-License-Identifier: Apache-2.0 */
/* farmctl prune --filter: until=DURATION in buildx's (Go's) units; anything else is refused
 * with an error that names what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/prunefilter.h"

static void test_durations(void **state)
{
    static const struct {
        const char *in;
        uint64_t s;
    } ok[] = {{"until=24h", 86400},   {"until=90m", 5400}, {"until=1h30m", 5400},
              {"until=45s", 45},      {"until=1h1m1s", 3661}, {"until=0s", 0},
              {"until=2h2h", 14400},  {"until=876000h", 876000ULL * 3600}};
    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 1;
        assert_int_equal(farm_prunefilter_parse(&v, ok[i].in), 0);
        assert_int_equal(v, ok[i].s);
    }
}

static void test_refused(void **state)
{
    static const struct {
        const char *in, *says;
    } bad[] = {{"until=", "no duration"},
               {"until=24", "no unit after 24"},
               {"until=3d", "unknown unit after 3"},
               {"until=h", "is not a number"},
               {"until=-1h", "is not a number"},
               {"until=1h30", "no unit after 30"},
               {"since=1h", "the one filter is until=DURATION"},
               {"until 1h", "the one filter is until=DURATION"},
               {"until=876001h", "longer than a century"},
               {"until=99999999999999999999s", "is not a number"}};
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        assert_int_equal(farm_prunefilter_parse(&v, bad[i].in), FARM_EINVALID);
        assert_int_equal(v, 0);
        if (!strstr(farm_error_last(), bad[i].says))
            fail_msg("%s: \"%s\" does not say \"%s\"", bad[i].in, farm_error_last(), bad[i].says);
    }
    assert_int_equal(farm_prunefilter_parse(&(uint64_t){0}, NULL), FARM_EINVALID);
}

static void test_age(void **state)
{
    char b[32];
    (void)state;
    farm_prunefilter_age(b, sizeof b, 0);
    assert_string_equal(b, "0s");
    farm_prunefilter_age(b, sizeof b, 59);
    assert_string_equal(b, "59s");
    farm_prunefilter_age(b, sizeof b, 61);
    assert_string_equal(b, "1m1s");
    farm_prunefilter_age(b, sizeof b, 3600);
    assert_string_equal(b, "1h");
    farm_prunefilter_age(b, sizeof b, 5400);
    assert_string_equal(b, "1h30m");
    farm_prunefilter_age(b, sizeof b, 3 * 86400 + 4 * 3600 + 5);
    assert_string_equal(b, "3d4h");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_age),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
