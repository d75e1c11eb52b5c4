/* SPDX-License-Identifier: Apache-2.0 */
/* Which nodes hold which caches, across a coordinator restart (STATE_DIR/warm.json): what
 * is saved comes back in the same order (the nodes' and the keys' LRU), nodes by name (a
 * node gone from farm.yaml is skipped, a reordered farm.yaml still matches), and a file
 * that is not what we wrote adds nothing and says what is wrong with it. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/fs.h"
#include "coordinator/warm.h"

static char s_dir[] = "/tmp/farm-test-warm.XXXXXX";
static char s_path[sizeof s_dir + 16];

static int s_setup(void **state)
{
    (void)state;
    if (!mkdtemp(s_dir))
        return -1;
    snprintf(s_path, sizeof s_path, "%s/warm.json", s_dir);
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    farm_fs_rmtree(s_dir);
    return 0;
}

static char *s_key(size_t *len, const char *client, const char *repo)
{
    char *k = NULL;
    assert_int_equal(farm_warm_key(&k, len, client, "reg.local:5000", repo, "linux/arm64",
                                   "docker/Dockerfile"), 0);
    return k;
}

static void s_write(const char *text)
{
    assert_int_equal(farm_fs_write_atomic(s_path, text, strlen(text)), 0);
}

static void test_roundtrip(void **state)
{
    const char *names[] = {"n0", "n1", "n2"};
    const char *moved[] = {"n2", "x", "n0", "n1"}; /* farm.yaml reordered, one added */
    size_t l1, l2, l3, got[FARM_WARM_NODES];
    char *k1 = s_key(&l1, "alice", "team/app"), *k2 = s_key(&l2, "", "team/other");
    char *k3 = s_key(&l3, "bob", "team/third");
    farm_warm_t *w = farm_warm_new(16), *r;
    struct stat st;
    (void)state;

    unlink(s_path);
    assert_false(farm_warm_dirty(w));
    assert_int_equal(farm_warm_record(w, k1, l1, 0), 0);
    assert_int_equal(farm_warm_record(w, k1, l1, 2), 0); /* k1: n2, then n0 */
    assert_int_equal(farm_warm_record(w, k2, l2, 1), 0);
    assert_int_equal(farm_warm_record(w, k1, l1, 1), 0); /* k1 most recent: n1, n2, n0 */
    assert_true(farm_warm_dirty(w));
    assert_int_equal(farm_warm_save(w, s_path, names, 3), 0);
    assert_false(farm_warm_dirty(w));
    assert_int_equal(stat(s_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* a new coordinator whose farm.yaml lists the nodes in another order; room for two
     * keys, so the least recently used one (k2) goes first when a third comes */
    r = farm_warm_new(2);
    assert_int_equal(farm_warm_load(r, s_path, moved, 4), 2);
    assert_false(farm_warm_dirty(r));
    assert_int_equal(farm_warm_record(r, k3, l3, 1), 0);
    assert_int_equal(farm_warm_nodes(r, k2, l2, got), 0);
    assert_int_equal(farm_warm_nodes(r, k1, l1, got), 3);
    assert_int_equal(got[0], 3); /* n1 */
    assert_int_equal(got[1], 0); /* n2 */
    assert_int_equal(got[2], 2); /* n0 */

    /* a node no longer in farm.yaml is skipped; a key left with none is not restored */
    farm_warm_destroy(&r);
    r = farm_warm_new(16);
    {
        const char *only_n1[] = {"n1"};
        assert_int_equal(farm_warm_load(r, s_path, only_n1, 1), 2);
        assert_int_equal(farm_warm_nodes(r, k1, l1, got), 1);
        assert_int_equal(got[0], 0);
        farm_warm_destroy(&r);
        r = farm_warm_new(16);
        const char *only_n0[] = {"n0"};
        assert_int_equal(farm_warm_load(r, s_path, only_n0, 1), 1); /* k2 was on n1 only */
        assert_int_equal(farm_warm_nodes(r, k2, l2, got), 0);
    }
    /* no file yet: nothing, and no error */
    unlink(s_path);
    assert_int_equal(farm_warm_load(r, s_path, names, 3), 0);
    /* a key JSON cannot hold (a Dockerfile path is any bytes) is not kept; the others are */
    {
        size_t l4;
        char *k4 = NULL;
        farm_warm_t *w2 = farm_warm_new(16), *r2 = farm_warm_new(16);
        assert_int_equal(farm_warm_key(&k4, &l4, "alice", "reg", "r", "linux/amd64", "D\xe9"), 0);
        assert_int_equal(farm_warm_record(w2, k1, l1, 0), 0);
        assert_int_equal(farm_warm_record(w2, k4, l4, 1), 0);
        assert_int_equal(farm_warm_save(w2, s_path, names, 3), 0);
        assert_int_equal(farm_warm_load(r2, s_path, names, 3), 1);
        assert_int_equal(farm_warm_nodes(r2, k1, l1, got), 1);
        assert_int_equal(farm_warm_nodes(r2, k4, l4, got), 0);
        farm_warm_destroy(&w2);
        farm_warm_destroy(&r2);
        free(k4);
    }
    farm_warm_destroy(&r);
    farm_warm_destroy(&w);
    free(k1);
    free(k2);
    free(k3);
}

static void s_refused(const char *text, const char *says)
{
    const char *names[] = {"n0", "n1"};
    farm_warm_t *r = farm_warm_new(16);

    s_write(text);
    assert_true(farm_warm_load(r, s_path, names, 2) < 0);
    if (!strstr(farm_error_last(), says) || !strstr(farm_error_last(), s_path))
        fail_msg("for %s: expected \"%s\" in \"%s\"", text, says, farm_error_last());
    assert_int_equal(farm_warm_size(r), 0); /* nothing added, not even the good entries */
    farm_warm_destroy(&r);
}

#define GOOD "{\"client\":\"a\",\"repository\":\"r/x\",\"platform\":\"linux/amd64\",\"dockerfile\":\"D\",\"nodes\":[\"n0\"]}"

static void test_bad_files(void **state)
{
    char *big;
    (void)state;

    s_refused("{not json", "warm.json:1:");
    s_refused("[]", "not a warm-node file of version 1");
    s_refused("{\"version\":2,\"entries\":[]}", "not a warm-node file of version 1");
    s_refused("{\"version\":1,\"entries\":{}}", "not a warm-node file of version 1");
    s_refused("{\"version\":1,\"version\":1,\"entries\":[]}", "duplicate");
    s_refused("{\"version\":1,\"entries\":[" GOOD ",7]}", "entries[1] is not an object");
    s_refused("{\"version\":1,\"entries\":[" GOOD ",{\"client\":\"a\\u0000b\",\"repository\":"
              "\"r\",\"platform\":\"p\",\"dockerfile\":\"D\",\"nodes\":[]}]}",
              "is not allowed"); /* jansson refuses NUL in strings itself */
    s_refused("{\"version\":1,\"entries\":[{\"client\":\"a\",\"repository\":1,\"platform\":\"p\","
              "\"dockerfile\":\"D\",\"nodes\":[]}]}", "entries[0].repository");
    s_refused("{\"version\":1,\"entries\":[{\"client\":\"a\",\"repository\":\"r\",\"platform\":"
              "\"p\",\"dockerfile\":\"D\",\"nodes\":[\"n0\",\"n1\",\"n0\",\"n1\",\"n0\"]}]}",
              "entries[0].nodes is not a list of at most");
    s_refused("{\"version\":1,\"entries\":[{\"client\":\"a\",\"repository\":\"r\",\"platform\":"
              "\"p\",\"dockerfile\":\"D\",\"nodes\":[3]}]}", "entries[0].nodes[0] is not a name");
    /* a part longer than any key part can be */
    big = malloc(10000);
    assert_non_null(big);
    {
        int n = snprintf(big, 10000, "{\"version\":1,\"entries\":[{\"client\":\"");
        memset(big + n, 'a', 5000);
        snprintf(big + n + 5000, 10000 - (size_t)n - 5000,
                 "\",\"repository\":\"r\",\"platform\":\"p\",\"dockerfile\":\"D\",\"nodes\":[]}]}");
    }
    s_refused(big, "entries[0].client is not a string of at most");
    free(big);
    /* over the size limit (a sparse file: nothing is written, the size is what counts) */
    {
        const char *names[] = {"n0"};
        farm_warm_t *r = farm_warm_new(4);
        int fd;
        unlink(s_path);
        assert_true((fd = open(s_path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0);
        assert_int_equal(ftruncate(fd, (off_t)(64u << 20) + 1), 0);
        close(fd);
        assert_true(farm_warm_load(r, s_path, names, 1) < 0);
        assert_non_null(strstr(farm_error_last(), "not a regular file of at most 67108864 bytes"));
        assert_int_equal(farm_warm_size(r), 0);
        unlink(s_path);
        farm_warm_destroy(&r);
    }
    /* a FIFO planted there neither hangs the start nor is read */
    {
        const char *names[] = {"n0"};
        farm_warm_t *r = farm_warm_new(4);
        unlink(s_path);
        assert_int_equal(mkfifo(s_path, 0600), 0);
        assert_true(farm_warm_load(r, s_path, names, 1) < 0);
        assert_non_null(strstr(farm_error_last(), "not a regular file"));
        unlink(s_path);
        farm_warm_destroy(&r);
    }
    /* a symlink planted where the file goes is not followed */
    {
        const char *names[] = {"n0"};
        farm_warm_t *r = farm_warm_new(4);
        unlink(s_path);
        assert_int_equal(symlink("/etc/hostname", s_path), 0);
        assert_true(farm_warm_load(r, s_path, names, 1) < 0);
        assert_int_equal(farm_warm_size(r), 0);
        unlink(s_path);
        farm_warm_destroy(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
