/* SPDX-License-Identifier: Apache-2.0 */
/* Log lines reach systemd's journal with their priority: when $JOURNAL_STREAM names the
 * file stderr is (dev:inode), every line of farm_log and farm_log_say starts with <3>
 * error, <4> warning, <6> info or <7> debug; when it names another file, is malformed or
 * unset, lines are printed as before, without a prefix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

typedef enum { S_SAME, S_OTHER, S_UNSET, S_BAD } s_stream_t;

/* Logs one line per level and a two-line farm_log_say with stderr redirected to a fresh
 * file, $JOURNAL_STREAM set as `how` says; out gets what was written. */
static void s_capture(char *out, size_t len, s_stream_t how)
{
    char path[] = "/tmp/farm-test-log-XXXXXX", other[] = "/tmp/farm-test-log-XXXXXX";
    char js[64];
    struct stat st;
    int fd = mkstemp(path), ofd = mkstemp(other), saved = dup(STDERR_FILENO);
    FILE *f;
    size_t n;

    assert_true(fd >= 0 && ofd >= 0 && saved >= 0);
    assert_int_equal(fstat(how == S_OTHER ? ofd : fd, &st), 0);
    snprintf(js, sizeof js, "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
    if (how == S_BAD)
        strcat(js, "x"); /* the right numbers, then junk: not the journal's format */
    if (how == S_UNSET)
        unsetenv("JOURNAL_STREAM");
    else
        setenv("JOURNAL_STREAM", js, 1);

    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    farm_log_init("test", FARM_LOG_DEBUG);
    farm_log_error("an error %d", 1);
    farm_log_warn("a warning");
    farm_log_info("some news");
    farm_log_debug("a detail");
    farm_log_say(FARM_LOG_ERROR, "refusing to start\nrun the check");
    fflush(stderr);
    dup2(saved, STDERR_FILENO); /* cmocka reports on stderr */
    close(saved);
    unsetenv("JOURNAL_STREAM");

    f = fdopen(fd, "r");
    assert_non_null(f);
    rewind(f);
    n = fread(out, 1, len - 1, f);
    out[n] = '\0';
    fclose(f);
    close(ofd);
    unlink(path);
    unlink(other);
}

/* Line i (0-based) of text, without its newline. */
static void s_line(char *out, size_t len, const char *text, int i)
{
    const char *p = text, *nl;

    for (; i > 0 && p; i--)
        p = (nl = strchr(p, '\n')) ? nl + 1 : NULL;
    assert_non_null(p);
    nl = strchr(p, '\n');
    snprintf(out, len, "%.*s", nl ? (int)(nl - p) : (int)strlen(p), p);
}

static void test_journal_prefixes(void **state)
{
    static const char *want[][2] = {{"<3>", "ERROR an error 1"}, {"<4>", "WARN a warning"},
                                    {"<6>", "INFO some news"},   {"<7>", "DEBUG a detail"},
                                    {"<3>", "refusing to start"}, {"<3>", "run the check"}};
    char text[8192], line[1024];

    s_capture(text, sizeof text, S_SAME);
    for (int i = 0; i < 6; i++) {
        s_line(line, sizeof line, text, i);
        assert_int_equal(strncmp(line, want[i][0], 3), 0);
        assert_non_null(strstr(line, want[i][1]));
        /* one prefix, then the text as it is printed without the journal */
        assert_true(line[3] != '<');
    }
    s_line(line, sizeof line, text, 4);
    assert_string_equal(line, "<3>refusing to start");
    s_line(line, sizeof line, text, 0);
    assert_non_null(strstr(line, " test["));
}

static void s_no_prefix(s_stream_t how)
{
    char text[8192], line[1024];

    s_capture(text, sizeof text, how);
    for (int i = 0; i < 6; i++) {
        s_line(line, sizeof line, text, i);
        assert_true(line[0] != '<');
        assert_true(line[0] != '\0');
    }
    s_line(line, sizeof line, text, 0);
    assert_true(line[0] >= '0' && line[0] <= '9'); /* the time stamp comes first, as before */
    assert_non_null(strstr(line, "ERROR an error 1"));
    s_line(line, sizeof line, text, 4);
    assert_string_equal(line, "refusing to start");
}

static void test_other_stream(void **state)
{
    s_no_prefix(S_OTHER); /* stderr was redirected away from the journal's stream */
}

static void test_unset(void **state)
{
    s_no_prefix(S_UNSET);
}

static void test_malformed(void **state)
{
    s_no_prefix(S_BAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal_prefixes),
        cmocka_unit_test(test_other_stream),
        cmocka_unit_test(test_unset),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
