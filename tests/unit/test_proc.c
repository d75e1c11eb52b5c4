/* SPDX-License-Identifier: Apache-2.0 */
/* farm_proc_capture: a helper's answer or a tool's --version, read whole or refused.
 * Real programs (/bin/sh) on real pipes: output that just fits is kept, one byte more is
 * refused, input reaches stdin, exit codes and signals come back, and a program that
 * closes its output but lingers is killed at the deadline instead of hanging its caller. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/proc.h"

static int s_sh(const char *script, int timeout_ms, char *out, size_t cap, size_t *len)
{
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    farm_proc_capture_t pc = {.argv = argv, .timeout_ms = timeout_ms};
    return farm_proc_capture(&pc, out, cap, len);
}

/* cap 16: 15 bytes fit exactly (with the NUL); 16 are one too many */
static void test_output_that_just_fits(void **state)
{
    char out[16];
    size_t len = 99;
    (void)state;

    assert_int_equal(s_sh("printf %s 123456789012345", 10000, out, sizeof out, &len), 0);
    assert_int_equal(len, 15);
    assert_string_equal(out, "123456789012345");

    assert_int_equal(s_sh("printf %s 1234567890123456", 10000, out, sizeof out, &len),
                     FARM_ETOOBIG);
    assert_int_equal(strlen(out), 15); /* still a string, cut */
    assert_non_null(strstr(farm_error_last(), "/bin/sh"));

    /* far more than fits, from a writer that would block forever on a full pipe */
    assert_int_equal(s_sh("while :; do echo yyyyyyyyyyyyyyyyyyyyyyy; done", 10000, out,
                          sizeof out, &len),
                     FARM_ETOOBIG);
}

static void test_input_status_and_signal(void **state)
{
    char *cat[] = {"cat", NULL};
    farm_proc_capture_t pc = {.argv = cat, .input = "to stdin\n", .input_len = 9,
                              .timeout_ms = 10000};
    char out[64];
    size_t len = 0;
    (void)state;

    assert_int_equal(farm_proc_capture(&pc, out, sizeof out, &len), 0);
    assert_string_equal(out, "to stdin\n");
    assert_int_equal(len, 9);

    assert_int_equal(s_sh("echo partial; exit 7", 10000, out, sizeof out, &len), 7);
    assert_string_equal(out, "partial\n");
    assert_int_equal(s_sh("kill -9 $$", 10000, out, sizeof out, &len), 128 + 9);

    /* stderr is the caller's unless asked for */
    {
        char *argv[] = {"/bin/sh", "-c", "echo out; echo err >&2", NULL};
        farm_proc_capture_t both = {.argv = argv, .with_stderr = 1, .timeout_ms = 10000};
        assert_int_equal(farm_proc_capture(&both, out, sizeof out, &len), 0);
        assert_non_null(strstr(out, "out\n"));
        assert_non_null(strstr(out, "err\n"));
    }
}

static void test_not_found(void **state)
{
    char *argv[] = {"farm-no-such-program-here", NULL};
    farm_proc_capture_t pc = {.argv = argv, .timeout_ms = 10000};
    char out[8];
    (void)state;

    assert_int_equal(farm_proc_capture(&pc, out, sizeof out, NULL), FARM_ENOTFOUND);
    assert_non_null(strstr(farm_error_last(), "farm-no-such-program-here"));
}

/* Both ways of not finishing end at the deadline: silent and running, and with its output
 * closed but the process still there (the wait after EOF has the same deadline). The
 * bound is loose (a loaded machine); without the deadline these calls take 300 s. */
static void test_deadline(void **state)
{
    char out[64];
    long long t0;
    (void)state;

    t0 = farm_now_ms();
    assert_int_equal(s_sh("exec sleep 300", 300, out, sizeof out, NULL), FARM_ERETRY);
    assert_true(farm_now_ms() - t0 < 30000);

    t0 = farm_now_ms();
    assert_int_equal(s_sh("echo closing; exec >&- 2>&-; exec sleep 300", 300, out, sizeof out,
                          NULL),
                     FARM_ERETRY);
    assert_true(farm_now_ms() - t0 < 30000);
    assert_non_null(strstr(farm_error_last(), "timed out"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_that_just_fits),
        cmocka_unit_test(test_input_status_and_signal),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
