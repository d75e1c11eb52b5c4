/* SPDX-License-Identifier: Apache-2.0 */
/* Finished results kept until the coordinator takes them (agent/held.h): kept and found
 * by job and attempt, dropped on the coordinator's word, written to the work dir and read
 * back by a restarted agent, bounded (the oldest goes), a broken file removed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent/held.h"
#include "common/fs.h"

static void s_result(Farm__JobResult *r, Farm__Descriptor *d, const char *id, unsigned attempt)
{
    farm__job_result__init(r);
    farm__descriptor__init(d);
    d->media_type = "application/vnd.oci.image.manifest.v1+json";
    d->digest = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
    d->size = 123;
    d->platform = "linux/amd64";
    r->job_id = (char *)id;
    r->attempt = attempt;
    r->ok = 1;
    r->error = "";
    r->image = d;
    r->build_ms = 15000;
}

static void test_kept_until_dropped_and_across_restarts(void **state)
{
    char dir[] = "/tmp/farm-held-XXXXXX", path[256];
    Farm__JobResult r;
    Farm__Descriptor d;
    farm_held_t *h;
    FILE *f;
    (void)state;

    assert_non_null(mkdtemp(dir));
    h = farm_held_new(dir);
    assert_non_null(h);
    s_result(&r, &d, "b1-aa.linux-amd64", 1);
    assert_int_equal(farm_held_put(h, &r), 0);
    s_result(&r, &d, "b2-bb.linux-arm64", 3);
    r.ok = 0;
    r.error = "RUN exited 1";
    r.image = NULL;
    assert_int_equal(farm_held_put(h, &r), 0);
    assert_int_equal(farm_held_count(h), 2);
    farm_held_destroy(&h);

    /* a restarted agent finds both, oldest first, with what they said */
    h = farm_held_new(dir);
    assert_int_equal(farm_held_count(h), 2);
    assert_string_equal(farm_held_at(h, 0)->job_id, "b1-aa.linux-amd64");
    assert_int_equal(farm_held_at(h, 0)->attempt, 1);
    assert_string_equal(farm_held_at(h, 0)->image->digest, d.digest);
    assert_true(farm_held_at(h, 0)->build_ms == 15000);
    assert_string_equal(farm_held_at(h, 1)->error, "RUN exited 1");
    /* the coordinator's word: gone, from disk too */
    assert_int_equal(farm_held_drop(h, "b1-aa.linux-amd64", 2), 0); /* another attempt */
    assert_int_equal(farm_held_drop(h, "b1-aa.linux-amd64", 1), 1);
    assert_int_equal(farm_held_drop(h, "b1-aa.linux-amd64", 1), 0);
    s_result(&r, &d, "b3-cc.linux-amd64", 1);
    assert_int_equal(farm_held_put(h, &r), 0);
    farm_held_destroy(&h);
    /* a file that is not a result is removed, not delivered */
    snprintf(path, sizeof path, "%s/result-999", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("\xff\xff\xff\xff garbage", f);
    fclose(f);
    h = farm_held_new(dir);
    assert_int_equal(farm_held_count(h), 2);
    assert_string_equal(farm_held_at(h, 0)->job_id, "b2-bb.linux-arm64");
    assert_string_equal(farm_held_at(h, 1)->job_id, "b3-cc.linux-amd64");
    assert_int_equal(access(path, F_OK), -1);
    farm_held_destroy(&h);
    farm_fs_rmtree(dir);
}

static void test_bounded_oldest_first_out(void **state)
{
    Farm__JobResult r;
    Farm__Descriptor d;
    farm_held_t *h = farm_held_new(NULL);
    char id[64];
    (void)state;

    assert_non_null(h);
    for (int i = 0; i < FARM_HELD_MAX + 5; i++) {
        snprintf(id, sizeof id, "b%d-x.linux-amd64", i);
        s_result(&r, &d, id, 1);
        assert_int_equal(farm_held_put(h, &r), 0);
    }
    assert_int_equal(farm_held_count(h), FARM_HELD_MAX);
    assert_string_equal(farm_held_at(h, 0)->job_id, "b5-x.linux-amd64");
    /* the same attempt again replaces it */
    s_result(&r, &d, "b5-x.linux-amd64", 1);
    assert_int_equal(farm_held_put(h, &r), 0);
    assert_int_equal(farm_held_count(h), FARM_HELD_MAX);
    assert_string_equal(farm_held_at(h, FARM_HELD_MAX - 1)->job_id, "b5-x.linux-amd64");
    farm_held_destroy(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kept_until_dropped_and_across_restarts),
        cmocka_unit_test(test_bounded_oldest_first_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
