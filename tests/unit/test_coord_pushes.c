/* SPDX-License-Identifier: Apache-2.0 */
/* Index pushes with real helper processes (small shell programs in the stitch helper's
 * place): at most `parallel` run, the others start as slots free, oldest first; the
 * helper's result decides the build, a helper that dies without one fails it, and one
 * that runs past the deadline is stopped and fails it with the deadline's message. Per
 * tag: one push at a time, and a build finishing after one submitted later leaves it the
 * tag (its helper is not asked to move it; with no tag left, the index goes by digest). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/config.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/reactor.h"
#include "common/wire.h"
#include "coordinator/builds.h"
#include "coordinator/nodes.h"
#include "coordinator/pushes.h"
#include "coordinator/scheduler.h"
#include "coord_fx.h"

#define DIGEST "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define BUILDS 3

typedef struct {
    coord_fx_t c;
    farm_reactor_t *r;
    farm_pushes_t *p;
    int done, done_ok;
    size_t most_running;
    char order[BUILDS + 1];     /* which build finished when: '0' + its submit index */
    char error[BUILDS][1024];
    char digest[BUILDS][FARM_DIGEST_STRLEN];
    farm_build_t *builds[BUILDS];
    volatile int stop;
} fx_t;

static fx_t *s_fx;

static void cb_stitch(void *a, farm_build_t *b)
{
    fx_t *fx = a;
    farm_pushes_request(fx->p, b);
}

static void cb_done(void *a, farm_build_t *b, int ok, const char *d, uint64_t size,
                    const char *err)
{
    fx_t *fx = a;
    for (int i = 0; i < BUILDS; i++) {
        if (fx->builds[i] != b)
            continue;
        fx->order[fx->done] = (char)('0' + i);
        snprintf(fx->error[i], sizeof fx->error[i], "%s", err ? err : "");
        snprintf(fx->digest[i], sizeof fx->digest[i], "%s", d ? d : "");
    }
    fx->done++;
    fx->done_ok += ok;
}

static void s_turn_end(farm_reactor_t *r, void *arg)
{
    fx_t *fx = arg;
    farm_pushes_start_waiting(fx->p);
    if (farm_pushes_running(fx->p) > fx->most_running)
        fx->most_running = farm_pushes_running(fx->p);
    if (fx->done == BUILDS)
        fx->stop = 1;
}

static int s_give_up(farm_reactor_t *r, void *arg)
{
    fail_msg("the pushes did not end within 30 s");
    return -1;
}

/* BUILDS builds, submitted in index order with tags[i] ("a b": two tags), reach
 * STITCHING in finish order with the helper `sh -c script`. */
static fx_t *s_setup_tags(const char *script, size_t parallel, long long timeout_ms,
                          const char *const tags[BUILDS], const int finish[BUILDS])
{
    static char *argv[4];
    fx_t *fx = calloc(1, sizeof *fx);
    farm_builds_cbs_t bcbs = {coord_fx_nop_event, cb_stitch, cb_done};
    farm_pushes_opts_t opts = {.parallel = parallel, .timeout_ms = timeout_ms, .argv = argv};
    char *plats[] = {"linux/amd64"};
    char reason[2048];

    argv[0] = "/bin/sh";
    argv[1] = "-c";
    argv[2] = (char *)script;
    argv[3] = NULL;
    assert_non_null(fx);
    coord_fx_init(&fx->c, &bcbs, fx);
    fx->r = farm_reactor_new();
    assert_non_null(fx->r);
    fx->p = farm_pushes_new(fx->r, fx->c.b, fx->c.cfg, &opts);
    assert_non_null(fx->p);
    for (int i = 0; i < BUILDS; i++) {
        char t[2][64], *tag[2] = {t[0], t[1]}, first[16] = "", second[16] = "";
        int n = sscanf(tags[i], "%15s %15s", first, second);
        snprintf(t[0], sizeof t[0], "reg.local:5000/team/app:%s", first);
        snprintf(t[1], sizeof t[1], "reg.local:5000/team/app:%s", second);
        farm_submit_t s = {.tags = tag, .n_tags = (size_t)n, .platforms = plats,
                           .n_platforms = 1, .context_digest = DIGEST, .context_stored = 1,
                           .context_size = 10, .client = "c1", .client_len = 2};
        farm_build_t *b = NULL;
        assert_int_equal(farm_builds_submit(fx->c.b, &b, &s, 0, reason, sizeof reason), 0);
        farm_builds_start(fx->c.b, b, 0);
        fx->builds[i] = b;
    }
    /* node "a" has 4 slots: every job runs */
    assert_int_equal(farm_scheduler_dispatch(fx->c.s, 0), BUILDS);
    for (int k = 0; k < BUILDS; k++) {
        farm_build_t *b = fx->builds[finish[k]];
        farm_descriptor_t d = {.size = 5};
        snprintf(d.media_type, sizeof d.media_type, "%s", FARM_MEDIA_OCI_MANIFEST);
        snprintf(d.digest, sizeof d.digest, "%s", DIGEST);
        d.platform = b->jobs[0].plat;
        farm_scheduler_release(fx->c.s, &b->jobs[0]);
        farm_builds_job_pushed(fx->c.b, &b->jobs[0], &d, 1, 1, 5);
        assert_int_equal(b->state, FARM_BUILD_STITCHING);
    }
    farm_reactor_set_turn_end(fx->r, s_turn_end, fx);
    assert_true(farm_reactor_timer_add(fx->r, "give-up", 30000, 1, s_give_up, fx) > 0);
    s_fx = fx;
    return fx;
}

/* Each build its own tag, finishing in submit order. */
static fx_t *s_setup(const char *script, size_t parallel, long long timeout_ms)
{
    static const char *const tags[BUILDS] = {"0", "1", "2"};
    static const int finish[BUILDS] = {0, 1, 2};
    return s_setup_tags(script, parallel, timeout_ms, tags, finish);
}

static int s_teardown(void **state)
{
    fx_t *fx = s_fx;
    if (!fx)
        return 0;
    farm_pushes_destroy(&fx->p);
    coord_fx_fini(&fx->c);
    farm_reactor_destroy(&fx->r);
    free(fx);
    s_fx = NULL;
    return 0;
}

static void test_one_at_a_time_and_the_result_decides(void **state)
{
    /* reads its request (the build's children) and answers ok with an index digest */
    fx_t *fx = s_setup("cat <&3 >/dev/null; echo pushing; "
                       "printf '\\010\\001\\032\\107" DIGEST "\\040\\144' >&4", 1, 30000);

    /* one helper started at once; the other two wait, oldest first */
    assert_int_equal(farm_pushes_running(fx->p), 1);
    assert_int_equal(farm_pushes_waiting(fx->p), 2);
    assert_non_null(fx->builds[0]->stitch);
    assert_null(fx->builds[1]->stitch);
    assert_int_equal(farm_reactor_run(fx->r, &fx->stop), 0);
    assert_int_equal(fx->done, BUILDS);
    assert_int_equal(fx->done_ok, BUILDS);
    assert_int_equal(fx->most_running, 1);
    assert_string_equal(fx->order, "012");
    for (int i = 0; i < BUILDS; i++)
        assert_string_equal(fx->digest[i], DIGEST);
    assert_int_equal(farm_pushes_running(fx->p), 0);
    assert_int_equal(farm_pushes_waiting(fx->p), 0);
}

static void test_helper_without_result_fails_the_build(void **state)
{
    fx_t *fx = s_setup("echo 'no result'; exit 0", 2, 30000);

    assert_int_equal(farm_pushes_running(fx->p), 2);
    assert_int_equal(farm_pushes_waiting(fx->p), 1);
    assert_int_equal(farm_reactor_run(fx->r, &fx->stop), 0);
    assert_int_equal(fx->done, BUILDS);
    assert_int_equal(fx->done_ok, 0);
    assert_true(fx->most_running <= 2);
    for (int i = 0; i < BUILDS; i++)
        assert_string_equal(fx->error[i], "index push process died without a result");
}

static void test_helper_error_is_the_builds_error(void **state)
{
    /* ok=false, error "tag refused" */
    fx_t *fx = s_setup("printf '\\022\\013tag refused' >&4", 3, 30000);

    assert_int_equal(farm_reactor_run(fx->r, &fx->stop), 0);
    assert_int_equal(fx->done_ok, 0);
    for (int i = 0; i < BUILDS; i++)
        assert_string_equal(fx->error[i], "tag refused");
}

static void test_deadline_stops_the_helper(void **state)
{
    fx_t *fx = s_setup("exec sleep 60", 3, 1500);

    assert_int_equal(farm_pushes_running(fx->p), 3);
    assert_int_equal(farm_reactor_run(fx->r, &fx->stop), 0);
    assert_int_equal(fx->done, BUILDS);
    assert_int_equal(fx->done_ok, 0);
    for (int i = 0; i < BUILDS; i++)
        assert_string_equal(fx->error[i],
                            "the index push to reg.local:5000/team/app took longer than 1 s and "
                            "was stopped; check the registry (some tags may already name the new "
                            "index)");
    assert_int_equal(farm_pushes_running(fx->p), 0);
}

static void test_destroy_stops_running_helpers(void **state)
{
    fx_t *fx = s_setup("exec sleep 60", 1, 30000);

    assert_int_equal(farm_pushes_running(fx->p), 1);
    assert_int_equal(farm_pushes_waiting(fx->p), 2);
    /* the builds stay STITCHING and lose their handle: nothing is finished behind them */
    farm_pushes_destroy(&fx->p);
    assert_null(fx->p);
    assert_null(fx->builds[0]->stitch);
    assert_int_equal(fx->done, 0);
}

/* The ok result with DIGEST, after the helper kept its request in dir (one file each)
 * and took 300 ms: pushes that overlap would be seen. */
#define S_RESULT_OK "printf '\\010\\001\\032\\107" DIGEST "\\040\\144' >&4"

static char s_req_dir[] = "/tmp/farm-pushes-XXXXXX";
static char s_script[512];

static const char *s_keeping_script_with(const char *result)
{
    strcpy(s_req_dir, "/tmp/farm-pushes-XXXXXX");
    assert_non_null(mkdtemp(s_req_dir));
    snprintf(s_script, sizeof s_script,
             "f=$(mktemp %s/req.XXXXXX); cat <&3 >\"$f\"; sleep 0.3; %s", s_req_dir, result);
    return s_script;
}

static const char *s_keeping_script(void)
{
    return s_keeping_script_with(S_RESULT_OK);
}

/* The tags each helper was asked to move, one "t1,t2" string per request, sorted. */
static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t s_requests(char out[BUILDS][64])
{
    DIR *d = opendir(s_req_dir);
    struct dirent *e;
    char *ptrs[BUILDS], sorted[BUILDS][64];
    size_t n = 0;

    assert_non_null(d);
    while ((e = readdir(d))) {
        char path[512], *buf = NULL;
        size_t len = 0;
        FILE *f;
        if (strncmp(e->d_name, "req.", 4) != 0)
            continue;
        assert_true(n < BUILDS);
        snprintf(path, sizeof path, "%s/%s", s_req_dir, e->d_name);
        assert_non_null(f = fopen(path, "rb"));
        buf = malloc(1 << 16);
        len = fread(buf, 1, 1 << 16, f);
        fclose(f);
        Farm__StitchRequest *r = farm__stitch_request__unpack(NULL, len, (uint8_t *)buf);
        assert_non_null(r);
        sorted[n][0] = 0;
        for (size_t i = 0; i < r->n_tags; i++)
            snprintf(sorted[n] + strlen(sorted[n]), 64 - strlen(sorted[n]), "%s%s",
                     i ? "," : "", r->tags[i]);
        farm__stitch_request__free_unpacked(r, NULL);
        free(buf);
        ptrs[n] = sorted[n];
        n++;
    }
    closedir(d);
    qsort(ptrs, n, sizeof *ptrs, s_cmp);
    for (size_t i = 0; i < n; i++)
        snprintf(out[i], 64, "%s", ptrs[i]);
    farm_fs_rmtree(s_req_dir);
    return n;
}

static void test_one_push_per_tag(void **state)
{
    static const char *const tags[BUILDS] = {"1", "1", "1"};
    static const int finish[BUILDS] = {0, 1, 2};
    char req[BUILDS][64];
    /* three slots, but one tag: one push at a time, in submit order */
    fx_t *fx = s_setup_tags(s_keeping_script(), 3, 30000, tags, finish);

    assert_int_equal(farm_pushes_running(fx->p), 1);
    assert_int_equal(farm_pushes_waiting(fx->p), 2);
    assert_int_equal(farm_reactor_run(fx->r, &fx->stop), 0);
    assert_int_equal(fx->done_ok, BUILDS);
    assert_int_equal(fx->most_running, 1);
    assert_string_equal(fx->order, "012");
    assert_int_equal(s_requests(req), BUILDS);
    for (int i = 0; i < BUILDS; i++) {
        assert_string_equal(req[i], "1");
        assert_string_equal(fx->builds[i]->kept_by[0], "");
    }
}

static void test_older_build_leaves_the_newer_ones_tag(void **state)
{
    /* build 1 (submitted after 0) finishes first; 0 shares tag 1 and has its own "a";
     * 2 has another tag and goes by 0 while 0 waits for tag 1 */
    static const char *const tags[BUILDS] = {"1 a", "1", "b"};
    static const int finish[BUILDS] = {1, 0, 2};
    char req[BUILDS][64];
    fx_t *fx = s_setup_tags(s_keeping_script(), 3, 30000, tags, finish);

    assert_non_null(fx->builds[1]->stitch);
    assert_null(fx->builds[0]->stitch); /* waits for tag 1 */
    assert_int_equal(farm_reactor_run(fx->r, &fx->stop), 0);
    assert_int_equal(fx->done_ok, BUILDS);
    assert_int_equal(fx->most_running, 2);
    /* 0's helper was asked to move "a" only; "1" stayed build 1's */
    assert_int_equal(s_requests(req), BUILDS);
    assert_string_equal(req[0], "1");
    assert_string_equal(req[1], "a");
    assert_string_equal(req[2], "b");
    assert_string_equal(fx->builds[0]->kept_by[0], fx->builds[1]->id);
    assert_string_equal(fx->builds[0]->kept_by[1], "");
    assert_string_equal(fx->builds[1]->kept_by[0], "");
    assert_string_equal(fx->digest[0], DIGEST);
}

static void test_no_tag_left_pushes_by_digest(void **state)
{
    /* the newest finishes first: the two older keep no tag, their helpers are asked for
     * none (the stitch then pushes the index by digest), and they still succeed */
    static const char *const tags[BUILDS] = {"1", "1", "1"};
    static const int finish[BUILDS] = {2, 1, 0};
    char req[BUILDS][64];
    fx_t *fx = s_setup_tags(s_keeping_script(), 3, 30000, tags, finish);

    assert_int_equal(farm_reactor_run(fx->r, &fx->stop), 0);
    assert_int_equal(fx->done_ok, BUILDS);
    assert_string_equal(fx->order, "210");
    assert_int_equal(s_requests(req), BUILDS);
    assert_string_equal(req[0], "");
    assert_string_equal(req[1], "");
    assert_string_equal(req[2], "1");
    assert_string_equal(fx->builds[0]->kept_by[0], fx->builds[2]->id);
    assert_string_equal(fx->builds[1]->kept_by[0], fx->builds[2]->id);
}

/* The newer build's push fails: a failure before any PUT gives the tag back (the older
 * build then moves it); one after a PUT was sent for it keeps it (it may name the newer
 * index). */
static void test_failed_push_gives_back_untouched_tags(void **state)
{
    static const char *const tags[BUILDS] = {"1", "1", "x"};
    static const int finish[BUILDS] = {1, 0, 2};
    char req[BUILDS][64];
    /* ok=false, error "x", tags_tried 0 */
    fx_t *fx = s_setup_tags(s_keeping_script_with("printf '\\022\\001x' >&4"), 3, 30000,
                            tags, finish);

    assert_int_equal(farm_reactor_run(fx->r, &fx->stop), 0);
    assert_int_equal(fx->done_ok, 0);
    assert_int_equal(s_requests(req), BUILDS);
    /* both were asked to move tag 1: build 1 took nothing */
    assert_string_equal(req[0], "1");
    assert_string_equal(req[1], "1");
    assert_string_equal(fx->builds[0]->kept_by[0], "");
}

static void test_failed_push_after_a_put_keeps_the_tag(void **state)
{
    static const char *const tags[BUILDS] = {"1", "1", "x"};
    static const int finish[BUILDS] = {1, 0, 2};
    char req[BUILDS][64];
    /* ok=false, error "x", tags_tried 1 */
    fx_t *fx = s_setup_tags(s_keeping_script_with("printf '\\022\\001x\\050\\001' >&4"), 3,
                            30000, tags, finish);

    assert_int_equal(farm_reactor_run(fx->r, &fx->stop), 0);
    assert_int_equal(fx->done_ok, 0);
    assert_int_equal(s_requests(req), BUILDS);
    assert_string_equal(req[0], "");
    assert_string_equal(req[1], "1");
    assert_string_equal(req[2], "x");
    assert_string_equal(fx->builds[0]->kept_by[0], fx->builds[1]->id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_one_at_a_time_and_the_result_decides, s_teardown),
        cmocka_unit_test_teardown(test_helper_without_result_fails_the_build, s_teardown),
        cmocka_unit_test_teardown(test_helper_error_is_the_builds_error, s_teardown),
        cmocka_unit_test_teardown(test_deadline_stops_the_helper, s_teardown),
        cmocka_unit_test_teardown(test_destroy_stops_running_helpers, s_teardown),
        cmocka_unit_test_teardown(test_one_push_per_tag, s_teardown),
        cmocka_unit_test_teardown(test_older_build_leaves_the_newer_ones_tag, s_teardown),
        cmocka_unit_test_teardown(test_no_tag_left_pushes_by_digest, s_teardown),
        cmocka_unit_test_teardown(test_failed_push_gives_back_untouched_tags, s_teardown),
        cmocka_unit_test_teardown(test_failed_push_after_a_put_keeps_the_tag, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
