/* SPDX-License-Identifier: Apache-2.0 */
/* Path helpers refuse rather than cut: a path one byte too long is FARM_ETOOBIG with an
 * empty result (never a shorter path naming another file), one that fits exactly is
 * whole; mkdirs refuses an over-long path before creating anything. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"

static void test_join(void **state)
{
    char out[16];

    assert_int_equal(farm_path_join(out, sizeof out, "/a", "b"), 0);
    assert_string_equal(out, "/a/b");
    assert_int_equal(farm_path_join(out, sizeof out, "/a/", "b"), 0); /* one slash */
    assert_string_equal(out, "/a/b");
    assert_int_equal(farm_path_join(out, sizeof out, "/a", NULL), 0);
    assert_string_equal(out, "/a");
    assert_int_equal(farm_path_join(out, sizeof out, "/a", ""), 0);
    assert_string_equal(out, "/a");
    /* exactly 15 bytes fit in 16 */
    assert_int_equal(farm_path_join(out, sizeof out, "/0123456789", "abc"), 0);
    assert_string_equal(out, "/0123456789/abc");
}

static void test_join_refuses(void **state)
{
    char out[16];

    /* 16 bytes do not fit in 16: refused, and nothing usable is left in out */
    memset(out, 'x', sizeof out);
    assert_int_equal(farm_path_join(out, sizeof out, "/0123456789", "abcd"), FARM_ETOOBIG);
    assert_string_equal(out, "");
    assert_non_null(strstr(farm_error_last(), "path too long"));
    assert_non_null(strstr(farm_error_last(), "/0123456789"));

    memset(out, 'x', sizeof out);
    assert_int_equal(farm_path_join(out, sizeof out, "/0123456789abcdef", NULL), FARM_ETOOBIG);
    assert_string_equal(out, "");

    /* a real-sized case: state_dir at the limit plus a file name */
    {
        char *dir = malloc(FARM_PATH_MAX), big[FARM_PATH_MAX];
        assert_non_null(dir);
        memset(dir, 'd', FARM_PATH_MAX - 1);
        dir[0] = '/';
        dir[FARM_PATH_MAX - 1] = '\0';
        assert_int_equal(farm_path_join(big, sizeof big, dir, NULL), 0);
        assert_int_equal(farm_path_join(big, sizeof big, dir, "x"), FARM_ETOOBIG);
        assert_string_equal(big, "");
        free(dir);
    }
}

static void test_fmt(void **state)
{
    char out[16];

    assert_int_equal(farm_path_fmt(out, sizeof out, "%s/%d.tar", "/ctx", 42), 0);
    assert_string_equal(out, "/ctx/42.tar");

    memset(out, 'x', sizeof out);
    assert_int_equal(farm_path_fmt(out, sizeof out, "%s/%d.partial", "/ctx", 123456), FARM_ETOOBIG);
    assert_string_equal(out, "");
    /* the message names the path that did not fit, not the format */
    assert_non_null(strstr(farm_error_last(), "/ctx/"));
    assert_null(strstr(farm_error_last(), "%s"));

    assert_int_equal(farm_path_fmt(out, 0, "%s", "a"), FARM_ETOOBIG); /* no room at all */
}

static void test_mkdirs_refuses_long(void **state)
{
    char base[] = "/tmp/farm-test-fs-XXXXXX", *path;
    size_t n;
    struct stat st;

    assert_non_null(mkdtemp(base));
    n = strlen(base);
    assert_non_null(path = malloc(FARM_PATH_MAX + 64));
    memcpy(path, base, n);
    path[n] = '/';
    memcpy(path + n + 1, "first", 5);
    path[n + 6] = '/';
    memset(path + n + 7, 'a', FARM_PATH_MAX);
    path[n + 7 + FARM_PATH_MAX] = '\0';
    assert_int_equal(farm_fs_mkdirs(path), FARM_ETOOBIG);
    /* refused before anything was created: no "first" directory left behind */
    path[n + 6] = '\0';
    assert_int_not_equal(stat(path, &st), 0);
    /* a path that fits is made, parents included */
    memcpy(path + n + 6, "/x/y", 5);
    assert_int_equal(farm_fs_mkdirs(path), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    farm_fs_rmtree(base);
    assert_int_not_equal(stat(base, &st), 0);
    free(path);
}

/* all or nothing: the old content or the new one, never a mix or a leftover temp file;
 * a symlink at the path is replaced, not written through */
static void test_write_atomic(void **state)
{
    char base[] = "/tmp/farm-test-fs-XXXXXX", path[64], target[64], buf[32] = {0};
    struct stat st;
    FILE *f;
    (void)state;

    assert_non_null(mkdtemp(base));
    snprintf(path, sizeof path, "%s/f", base);
    snprintf(target, sizeof target, "%s/target", base);
    assert_int_equal(farm_fs_write_atomic(path, "first", 5), 0);
    assert_int_equal(farm_fs_write_atomic(path, "second", 6), 0);
    assert_non_null(f = fopen(path, "r"));
    assert_int_equal(fread(buf, 1, sizeof buf - 1, f), 6);
    fclose(f);
    assert_string_equal(buf, "second");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* the planted symlink is replaced; its target is untouched */
    unlink(path);
    assert_non_null(f = fopen(target, "w"));
    fclose(f);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(farm_fs_write_atomic(path, "third", 5), 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_size, 0);
    /* only the file and the symlink's target are there: no temp file left beside them */
    {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 2", base);
        assert_int_equal(system(cmd), 0);
    }
    /* a directory that is not there: an error naming the file, nothing left */
    snprintf(path, sizeof path, "%s/no/f", base);
    assert_true(farm_fs_write_atomic(path, "x", 1) < 0);
    assert_non_null(strstr(farm_error_last(), "/no/f"));
    farm_fs_rmtree(base);
}

/* A state file is read whole, or refused naming it: missing (FARM_ENOTFOUND), over the
 * bound, a FIFO (without hanging), a symlink, a directory. */
static void test_read_file(void **state)
{
    char dir[] = "/tmp/farm-test-fs-XXXXXX", path[128], other[128];
    char *text = (char *)1;
    size_t len = 99;
    FILE *f;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/state.json", dir);
    assert_int_equal(farm_fs_read_file(&text, &len, path, 64), FARM_ENOTFOUND);
    assert_null(text);
    assert_int_equal(len, 0);

    assert_non_null(f = fopen(path, "w"));
    fputs("{\"version\": 1}", f);
    fclose(f);
    assert_int_equal(farm_fs_read_file(&text, &len, path, 64), 0);
    assert_int_equal(len, 14);
    assert_string_equal(text, "{\"version\": 1}");
    free(text);
    /* exactly at the bound is read; one byte under it is refused, naming the file */
    assert_int_equal(farm_fs_read_file(&text, &len, path, 14), 0);
    free(text);
    assert_int_equal(farm_fs_read_file(&text, &len, path, 13), FARM_EINVALID);
    assert_null(text);
    assert_non_null(strstr(farm_error_last(), path));
    assert_non_null(strstr(farm_error_last(), "at most 13 bytes"));

    snprintf(other, sizeof other, "%s/link", dir);
    assert_int_equal(symlink(path, other), 0);
    assert_true(farm_fs_read_file(&text, &len, other, 64) < 0);
    assert_null(text);
    unlink(other);

    snprintf(other, sizeof other, "%s/fifo", dir);
    assert_int_equal(mkfifo(other, 0600), 0);
    assert_int_equal(farm_fs_read_file(&text, &len, other, 64), FARM_EINVALID);
    unlink(other);

    assert_int_equal(farm_fs_read_file(&text, &len, dir, 1 << 20), FARM_EINVALID);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join),
        cmocka_unit_test(test_join_refuses),
        cmocka_unit_test(test_fmt),
        cmocka_unit_test(test_mkdirs_refuses_long),
        cmocka_unit_test(test_write_atomic),
        cmocka_unit_test(test_read_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
