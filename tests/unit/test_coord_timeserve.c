/* SPDX-License-Identifier: Apache-2.0 */
/* The coordinator's answers to farm-agent check's clock question: malformed requests
 * are refused with a reason, each peer and the whole endpoint keep to a budget a second. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/error.h"
#include "coordinator/timeserve.h"

static void test_malformed(void **state)
{
    farm_timeserve_t *t = farm_timeserve_new(5, 100);
    (void)state;
    assert_non_null(t);
    assert_int_equal(farm_timeserve_admit(t, "n1", 1, 0, 1000), FARM_EINVALID);
    /* a farm with keys answers only authenticated nodes */
    assert_int_equal(farm_timeserve_admit(t, "", 1, 7, 1000), FARM_EINVALID);
    assert_int_equal(farm_timeserve_admit(t, NULL, 1, 7, 1000), FARM_EINVALID);
    /* without keys every peer is "" */
    assert_int_equal(farm_timeserve_admit(t, "", 0, 7, 1000), 0);
    assert_int_equal(farm_timeserve_admit(t, "n1", 1, 7, 1000), 0);
    farm_timeserve_destroy(&t);
    assert_null(t);
    farm_timeserve_destroy(&t);
}

static void test_budgets(void **state)
{
    farm_timeserve_t *t = farm_timeserve_new(3, 5);
    (void)state;
    for (int i = 0; i < 3; i++)
        assert_int_equal(farm_timeserve_admit(t, "n1", 1, 1, 5000 + i), 0);
    assert_int_equal(farm_timeserve_admit(t, "n1", 1, 1, 5100), FARM_ERETRY);
    /* another peer has its own budget, up to the endpoint's */
    assert_int_equal(farm_timeserve_admit(t, "n2", 1, 1, 5200), 0);
    assert_int_equal(farm_timeserve_admit(t, "n2", 1, 1, 5300), 0);
    assert_int_equal(farm_timeserve_admit(t, "n3", 1, 1, 5400), FARM_ERETRY);
    /* the next second starts afresh */
    assert_int_equal(farm_timeserve_admit(t, "n1", 1, 1, 6000), 0);
    assert_int_equal(farm_timeserve_admit(t, "n3", 1, 1, 6001), 0);
    farm_timeserve_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_budgets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
