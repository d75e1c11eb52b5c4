/* SPDX-License-Identifier: Apache-2.0 */
/* What farmctl du lists and farmctl prune removes on a node (agent/inventory.h): the rule
 * for each entry (in use: kept; used within until: kept, saying how long ago; else
 * pruned), a cache's directory name back to its platform, the node's builder caches found
 * under the builder root (least recently used first, nothing that is not a cache), and the
 * cached contexts listed and pruned, never one a job needs or one being fetched. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/builder.h"
#include "agent/cache.h"
#include "agent/inventory.h"
#include "common/digest.h"
#include "common/fs.h"

static char s_dir[256];

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/farm-test-inventory.%d", (int)getpid());
    farm_fs_rmtree(s_dir);
    return mkdir(s_dir, 0700);
}

static int s_teardown(void **state)
{
    (void)state;
    farm_fs_rmtree(s_dir);
    return 0;
}

static void test_decide(void **state)
{
    farm_inventory_ask_t du = {.prune = 0, .now_s = 100000};
    farm_inventory_ask_t all = {.prune = 1, .now_s = 100000};
    farm_inventory_ask_t hour = {.prune = 1, .until_s = 3600, .now_s = 100000};
    char why[128];
    (void)state;

    /* du decides nothing and says nothing */
    assert_int_equal(farm_inventory_decide(why, sizeof why, &du, 0, 1), 0);
    assert_string_equal(why, "");
    /* in use: never, whatever its age */
    assert_int_equal(farm_inventory_decide(why, sizeof why, &all, 1, 1), 0);
    assert_string_equal(why, "in use by a running job");
    assert_int_equal(farm_inventory_decide(why, sizeof why, &hour, 1, 1), 0);
    assert_string_equal(why, "in use by a running job");
    /* no filter: everything not in use, however recent */
    assert_int_equal(farm_inventory_decide(why, sizeof why, &all, 0, 100000), 1);
    assert_string_equal(why, "");
    /* until=1h: used 5 min ago stays, saying so; used 2 h ago goes; exactly 1 h goes */
    assert_int_equal(farm_inventory_decide(why, sizeof why, &hour, 0, 100000 - 300), 0);
    assert_string_equal(why, "used 5m ago, within until=1h");
    assert_int_equal(farm_inventory_decide(why, sizeof why, &hour, 0, 100000 - 7200), 1);
    assert_int_equal(farm_inventory_decide(why, sizeof why, &hour, 0, 100000 - 3600), 1);
    /* a last use in the future (a clock step) is recent, not negative */
    assert_int_equal(farm_inventory_decide(why, sizeof why, &hour, 0, 100000 + 50), 0);
    assert_string_equal(why, "used 0s ago, within until=1h");
    /* an unknown last use does not keep it */
    assert_int_equal(farm_inventory_decide(why, sizeof why, &hour, 0, 0), 1);
}

static void test_platform(void **state)
{
    char p[96];
    (void)state;
    assert_int_equal(farm_inventory_platform(p, sizeof p, "linux-amd64"), 0);
    assert_string_equal(p, "linux/amd64");
    assert_int_equal(farm_inventory_platform(p, sizeof p, "linux-arm-v7"), 0);
    assert_string_equal(p, "linux/arm/v7");
    assert_int_equal(farm_inventory_platform(p, sizeof p, "linux-arm64"), 0);
    assert_string_equal(p, "linux/arm64");
    assert_int_equal(farm_inventory_platform(p, sizeof p, ""), -1);
    assert_int_equal(farm_inventory_platform(p, sizeof p, "nonsense"), -1);
    assert_int_equal(farm_inventory_platform(p, sizeof p, "linux-amd64-v2-x"), -1);
}

static void s_touch(const char *path, long long mtime)
{
    struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void test_builder_caches(void **state)
{
    char p[512];
    farm_builder_cache_t *l;
    size_t n = 0;
    (void)state;

    /* no root yet: none */
    snprintf(p, sizeof p, "%s/none", s_dir);
    l = farm_builder_caches(p, &n);
    assert_int_equal(n, 0);
    free(l);
    snprintf(p, sizeof p, "%s/alice", s_dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/@keyless", s_dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/bad name", s_dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/alice/linux-amd64.lock", s_dir);
    s_touch(p, 3000);
    snprintf(p, sizeof p, "%s/alice/linux-arm-v7.lock", s_dir);
    s_touch(p, 1000);
    snprintf(p, sizeof p, "%s/@keyless/linux-arm64.lock", s_dir);
    s_touch(p, 2000);
    /* not caches: another scope's name, a file that is not SLUG.lock, a directory */
    snprintf(p, sizeof p, "%s/bad name/linux-amd64.lock", s_dir);
    s_touch(p, 10);
    snprintf(p, sizeof p, "%s/alice/notes.txt", s_dir);
    s_touch(p, 10);
    snprintf(p, sizeof p, "%s/alice/dir.lock", s_dir);
    assert_int_equal(mkdir(p, 0700), 0);

    l = farm_builder_caches(s_dir, &n);
    assert_int_equal(n, 3);
    assert_string_equal(l[0].scope, "alice");
    assert_string_equal(l[0].slug, "linux-arm-v7");
    assert_int_equal(l[0].used.tv_sec, 1000);
    assert_string_equal(l[1].scope, "@keyless");
    assert_string_equal(l[1].slug, "linux-arm64");
    assert_string_equal(l[2].scope, "alice");
    assert_string_equal(l[2].slug, "linux-amd64");
    free(l);
}

typedef struct {
    char digest[8][FARM_DIGEST_STRLEN];
    char kept[8][128];
    int in_use[8];
    uint64_t freed[8];
    size_t n;
} seen_t;

static void s_seen(void *arg, const farm_cache_item_t *it)
{
    seen_t *s = arg;
    assert_true(s->n < 8);
    snprintf(s->digest[s->n], sizeof s->digest[0], "%s", it->digest);
    snprintf(s->kept[s->n], sizeof s->kept[0], "%s", it->kept);
    s->in_use[s->n] = it->in_use;
    s->freed[s->n] = it->freed;
    s->n++;
}

static size_t s_find(const seen_t *s, const char *digest)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->digest[i], digest) == 0)
            return i;
    fail_msg("%s not listed", digest);
    return 0;
}

static int s_needs(void *arg, const char *digest)
{
    return strcmp(arg, digest) == 0;
}

static void s_request(void *arg, const char *digest, uint64_t offset)
{
    (void)arg;
    (void)digest;
    (void)offset;
}

/* three contexts stored, one a job needs, one used recently; a fourth being fetched */
static void test_contexts(void **state)
{
    char dir[300], path[512], d[4][FARM_DIGEST_STRLEN];
    unsigned char data[4][100];
    farm_cache_t *c;
    seen_t s = {0};
    long long now = (long long)time(NULL);
    farm_inventory_ask_t du = {.now_s = now};
    farm_inventory_ask_t hour = {.prune = 1, .until_s = 3600, .now_s = now};
    farm_inventory_ask_t all = {.prune = 1, .now_s = now};
    (void)state;

    snprintf(dir, sizeof dir, "%s/cache", s_dir);
    assert_non_null(c = farm_cache_new(dir, 0, s_request, NULL));
    for (int i = 0; i < 4; i++) {
        memset(data[i], 'a' + i, sizeof data[i]);
        farm_digest_buffer(d[i], data[i], sizeof data[i]);
        assert_int_equal(farm_cache_fetch(c, d[i], sizeof data[i], 0), 0);
        if (i == 3)
            break; /* still fetching */
        farm_cache_chunk_t ch = {.digest = d[i], .offset = 0, .total = sizeof data[i],
                                 .data = data[i], .len = sizeof data[i]};
        assert_int_equal(farm_cache_on_chunk(c, &ch, 0), FARM_CACHE_STORED);
        assert_int_equal(farm_cache_path(c, path, sizeof path, d[i]), 0);
        s_touch(path, i == 2 ? now - 60 : now - 86400); /* 2: a minute ago */
    }
    /* du: the three stored, sizes and last use, d[0] in use; nothing removed */
    assert_int_equal(farm_cache_inventory(c, &du, s_needs, d[0], s_seen, &s), 3);
    assert_int_equal(s.n, 3);
    assert_true(s.in_use[s_find(&s, d[0])]);
    assert_false(s.in_use[s_find(&s, d[1])]);
    assert_int_equal(farm_cache_has(c, d[1]), 1);
    assert_int_equal(farm_cache_path(c, path, sizeof path, d[1]), 0);
    s_touch(path, now - 86400); /* has() marked it used now */
    /* until=1h: d[1] (a day old) goes; d[0] (a job's) and d[2] (a minute old) stay */
    memset(&s, 0, sizeof s);
    assert_int_equal(farm_cache_inventory(c, &hour, s_needs, d[0], s_seen, &s), 3);
    assert_string_equal(s.kept[s_find(&s, d[0])], "in use by a running job");
    assert_int_equal(s.freed[s_find(&s, d[1])], 100);
    assert_string_equal(s.kept[s_find(&s, d[1])], "");
    assert_string_equal(s.kept[s_find(&s, d[2])], "used 1m ago, within until=1h");
    assert_int_equal(farm_cache_has(c, d[1]), 0);
    assert_int_equal(farm_cache_has(c, d[2]), 1);
    /* everything not in use: d[2] goes, d[0] stays, the fetch of d[3] goes on */
    memset(&s, 0, sizeof s);
    assert_int_equal(farm_cache_inventory(c, &all, s_needs, d[0], s_seen, &s), 2);
    assert_int_equal(farm_cache_has(c, d[0]), 1);
    assert_int_equal(farm_cache_has(c, d[2]), 0);
    assert_int_equal(farm_cache_fetching(c), 1);
    farm_cache_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_platform),
        cmocka_unit_test_setup_teardown(test_builder_caches, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_contexts, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
