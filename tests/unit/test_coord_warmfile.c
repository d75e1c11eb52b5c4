/* SPDX-License-Identifier: Apache-2.0 */
/* warm.json across restarts: saved only when the memory changed and at most every
 * FARM_WARMFILE_SAVE_MS unless forced (shutdown), restored by the next run, and a file
 * that cannot be written or read costs warm placement only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/config.h"
#include "common/fs.h"
#include "coordinator/warm.h"
#include "coordinator/warmfile.h"
#include "coord_fx.h"

static char s_dir[] = "/tmp/farm-test-warmfile.XXXXXX";
static char s_path[sizeof s_dir + 32];

static int s_setup(void **state)
{
    memcpy(s_dir + sizeof s_dir - 7, "XXXXXX", 6);
    if (!mkdtemp(s_dir))
        return -1;
    snprintf(s_path, sizeof s_path, "%s/state/warm.json", s_dir);
    return 0;
}

static int s_teardown(void **state)
{
    farm_fs_rmtree(s_dir);
    return 0;
}

static farm_config_t *s_cfg(void)
{
    static const char y[] = COORD_FX_YAML;
    farm_config_t *cfg = NULL;
    assert_int_equal(farm_config_parse(&cfg, "t.yaml", y, strlen(y), NULL), 0);
    return cfg;
}

static void s_record(farm_warm_t *w, const char *repo)
{
    char *key;
    size_t len;
    assert_int_equal(farm_warm_key(&key, &len, "alice", "reg.local:5000", repo, "linux/amd64",
                                   "Dockerfile"), 0);
    assert_int_equal(farm_warm_record(w, key, len, 0), 0);
    free(key);
}

/* What a new run restores from s_path. */
static int s_restored(const farm_config_t *cfg)
{
    farm_warm_t *w = farm_warm_new(16);
    farm_warmfile_t *f = farm_warmfile_new(s_path, w, cfg);
    int rc = farm_warmfile_restore(f);
    farm_warmfile_destroy(&f);
    farm_warm_destroy(&w);
    return rc;
}

static void test_saves_what_changed_at_most_so_often(void **state)
{
    farm_config_t *cfg = s_cfg();
    farm_warm_t *w = farm_warm_new(16);
    farm_warmfile_t *f = farm_warmfile_new(s_path, w, cfg);
    char dir[sizeof s_path];

    assert_non_null(f);
    snprintf(dir, sizeof dir, "%s/state", s_dir);
    assert_int_equal(farm_fs_mkdirs(dir), 0);
    assert_int_equal(farm_warmfile_restore(f), 0); /* no file yet: nothing */
    assert_int_equal(farm_warmfile_save(f, 100000, 0), 0); /* nothing changed */
    s_record(w, "team/one");
    assert_int_equal(farm_warmfile_save(f, 100000, 0), 1);
    assert_int_equal(s_restored(cfg), 1);
    s_record(w, "team/two");
    /* too soon after the last save: kept for later, unless forced */
    assert_int_equal(farm_warmfile_save(f, 100000 + FARM_WARMFILE_SAVE_MS - 1, 0), 0);
    assert_int_equal(s_restored(cfg), 1);
    assert_int_equal(farm_warmfile_save(f, 100000 + FARM_WARMFILE_SAVE_MS, 0), 1);
    assert_int_equal(s_restored(cfg), 2);
    s_record(w, "team/three");
    assert_int_equal(farm_warmfile_save(f, 100000 + FARM_WARMFILE_SAVE_MS + 1, 1), 1);
    assert_int_equal(s_restored(cfg), 3);
    farm_warmfile_destroy(&f);
    farm_warm_destroy(&w);
    farm_config_destroy(&cfg);
}

static void test_unwritable_and_unreadable_files(void **state)
{
    farm_config_t *cfg = s_cfg();
    farm_warm_t *w = farm_warm_new(16);
    farm_warmfile_t *f = farm_warmfile_new(s_path, w, cfg);
    char dir[sizeof s_path];

    /* the state directory is missing: the save fails, and works once it is there */
    s_record(w, "team/one");
    assert_true(farm_warmfile_save(f, 100000, 0) < 0);
    snprintf(dir, sizeof dir, "%s/state", s_dir);
    assert_int_equal(farm_fs_mkdirs(dir), 0);
    assert_int_equal(farm_warmfile_save(f, 100000 + FARM_WARMFILE_SAVE_MS, 0), 1);
    /* a damaged file: the next run starts without it, and with nothing half-read */
    assert_int_equal(farm_fs_write_atomic(s_path, "{\"keys\": [", 10), 0);
    assert_true(s_restored(cfg) < 0);
    farm_warmfile_destroy(&f);
    farm_warm_destroy(&w);
    farm_config_destroy(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_saves_what_changed_at_most_so_often, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_and_unreadable_files, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
