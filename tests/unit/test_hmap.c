/* SPDX-License-Identifier: Apache-2.0 */
/* The hash map behind every index: put/get/del against a reference array, through
 * growth and many deletions (backward shift must keep every probe run reachable). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/hmap.h"

#define N 20000

static void test_against_reference(void **state)
{
    farm_hmap_t *m = farm_hmap_new();
    static char keys[N][16];
    static int present[N];
    unsigned seed = 1;

    assert_non_null(m);
    for (int i = 0; i < N; i++)
        snprintf(keys[i], sizeof keys[i], "job-%d", i);
    for (int round = 0; round < 200000; round++) {
        int i = (int)(rand_r(&seed) % N), op = (int)(rand_r(&seed) % 3);
        if (op < 2) {
            assert_int_equal(farm_hmap_puts(m, keys[i], &present[i]), 0);
            present[i] = 1;
        } else {
            void *v = farm_hmap_dels(m, keys[i]);
            assert_ptr_equal(v, present[i] ? &present[i] : NULL);
            present[i] = 0;
        }
    }
    size_t count = 0;
    for (int i = 0; i < N; i++) {
        count += present[i];
        assert_ptr_equal(farm_hmap_gets(m, keys[i]), present[i] ? &present[i] : NULL);
    }
    assert_int_equal(farm_hmap_size(m), count);
    /* binary keys with NULs are distinct by length and bytes */
    assert_int_equal(farm_hmap_put(m, "a\0b", 3, keys[0]), 0);
    assert_int_equal(farm_hmap_put(m, "a\0c", 3, keys[1]), 0);
    assert_ptr_equal(farm_hmap_get(m, "a\0b", 3), keys[0]);
    assert_ptr_equal(farm_hmap_get(m, "a\0c", 3), keys[1]);
    assert_null(farm_hmap_get(m, "a", 1));
    farm_hmap_destroy(&m);
    assert_null(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_against_reference)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
