/* SPDX-License-Identifier: Apache-2.0 */
/* coordinator/history: the replies built for a caller from a real journal, the two rules
 * (who lists, who reads) tried by each role, ^N, filters, log chunks and live-line
 * watches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fs.h"
#include "coordinator/history.h"

static char s_dir[64];
static farm_journal_t *s_j;
static farm_coord_parts_t s_parts;
static char *s_plats[] = {"linux/amd64", "linux/arm64"};
static char *s_tags[] = {"1.0"};

static void s_put(const char *id, uint64_t seq, const char *owner, int finish_ok)
{
    farm_journal_build_t b;
    farm_journal_job_t jobs[2];
    memset(&b, 0, sizeof b);
    snprintf(b.id, sizeof b.id, "%s", id);
    b.seq = seq;
    snprintf(b.owner, sizeof b.owner, "%s", owner);
    snprintf(b.registry, sizeof b.registry, "registry.example:5000");
    snprintf(b.repository, sizeof b.repository, "team/%s", owner);
    b.tags = s_tags;
    b.n_tags = 1;
    b.platforms = s_plats;
    b.n_platforms = 2;
    snprintf(b.context_digest, sizeof b.context_digest,
             "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    b.state = FARM_JOURNAL_BUILD_RUNNING;
    b.created = b.updated = 1700000000000LL + (long long)seq * 1000;
    for (int i = 0; i < 2; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        snprintf(jobs[i].build_id, sizeof jobs[i].build_id, "%s", id);
        snprintf(jobs[i].id, sizeof jobs[i].id, "%s.%d", id, i + 1);
        snprintf(jobs[i].platform, sizeof jobs[i].platform, "%s", s_plats[i]);
        jobs[i].state = FARM_JOURNAL_JOB_QUEUED;
    }
    assert_int_equal(farm_journal_put_build(s_j, &b, jobs, 2), 0);
    if (finish_ok >= 0)
        assert_int_equal(farm_journal_finish(s_j, id, finish_ok,
                                             finish_ok ? NULL : "cancelled by farmctl",
                                             finish_ok ? "sha256:aaaabbbbccccddddaaaabbbbccccdddd"
                                                         "aaaabbbbccccddddaaaabbbbccccdddd" : NULL,
                                             1, b.created + 500), 0);
}

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/farm-history-XXXXXX");
    if (!mkdtemp(s_dir) || !(s_j = farm_journal_open(s_dir, NULL)))
        return -1;
    memset(&s_parts, 0, sizeof s_parts);
    s_parts.journal = s_j;
    s_put("b1-alice", 1, "alice", 1);
    s_put("b2-bob", 2, "bob", 0);
    s_put("b3-alice", 3, "alice", -1); /* running */
    for (int i = 0; i < 40; i++) {
        char line[64];
        snprintf(line, sizeof line, "line %02d of the build", i);
        assert_int_equal(farm_journal_put_line(s_j, "b3-alice", s_plats[i % 2], "x86-1", line),
                         0);
    }
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    farm_journal_destroy(&s_j);
    farm_fs_rmtree(s_dir);
    return 0;
}

static const farm_history_caller_t s_alice = {"alice", FARM_ROLE_SUBMIT};
static const farm_history_caller_t s_bob = {"bob", FARM_ROLE_SUBMIT};
static const farm_history_caller_t s_ro = {"ro", FARM_ROLE_READ};
static const farm_history_caller_t s_admin = {"ops", FARM_ROLE_ADMIN};

static Farm__HistoryReply *s_list(const farm_history_caller_t *c, char **filters, size_t n)
{
    Farm__HistoryRequest req = FARM__HISTORY_REQUEST__INIT;
    req.filters = filters;
    req.n_filters = n;
    return farm_history_list(&s_parts, c, &req);
}

static void test_rules(void **state)
{
    (void)state;
    assert_true(farm_history_may_list(&s_alice, "alice"));
    assert_false(farm_history_may_list(&s_alice, "bob"));
    assert_false(farm_history_may_list(&s_alice, ""));
    assert_true(farm_history_may_list(&s_ro, "bob"));
    assert_true(farm_history_may_list(&s_admin, "bob"));
    assert_true(farm_history_may_read(&s_alice, "alice"));
    assert_false(farm_history_may_read(&s_alice, "bob"));
    assert_false(farm_history_may_read(&s_ro, "alice"));
    assert_true(farm_history_may_read(&s_admin, "alice"));
    assert_true(farm_history_may_read(&s_admin, "")); /* a keyless farm's builds */
    assert_false(farm_history_may_read(&(farm_history_caller_t){"alice", FARM_ROLE_NONE},
                                       "alice"));
}

static void test_list_by_role(void **state)
{
    Farm__HistoryReply *r;
    char *f_failed[] = {"status=cancelled"}, *f_bad[] = {"colour=red"}, *f_repo[] = {
        "repository!=registry.example:5000/team/alice"}, *f_other[] = {"owner=bob"};
    (void)state;

    r = s_list(&s_alice, NULL, 0);
    assert_non_null(r);
    assert_int_equal(r->n_builds, 2); /* its own, newest first */
    assert_string_equal(r->builds[0]->build_id, "b3-alice");
    assert_string_equal(r->builds[0]->status, "running");
    assert_string_equal(r->builds[1]->status, "completed");
    assert_int_equal(r->builds[1]->n_platforms, 2);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    r = s_list(&s_ro, NULL, 0);
    assert_int_equal(r->n_builds, 3);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    r = s_list(&s_ro, f_failed, 1);
    assert_int_equal(r->n_builds, 1);
    assert_string_equal(r->builds[0]->status, "cancelled");
    assert_string_equal(r->builds[0]->error, "cancelled by farmctl");
    protobuf_c_message_free_unpacked(&r->base, NULL);
    r = s_list(&s_admin, f_repo, 1);
    assert_int_equal(r->n_builds, 1);
    assert_string_equal(r->builds[0]->build_id, "b2-bob");
    protobuf_c_message_free_unpacked(&r->base, NULL);
    /* a submit client asking for another's: refused, saying who may */
    assert_null(s_list(&s_alice, f_other, 1));
    assert_non_null(strstr(farm_error_last(), "lists only its own builds; a read or admin"));
    assert_null(s_list(&s_alice, f_bad, 1));
    assert_non_null(strstr(farm_error_last(), "filter \"colour=red\": unknown key; use status="));
    assert_null(s_list(&(farm_history_caller_t){"x", FARM_ROLE_NONE}, NULL, 0));
}

static void test_get_by_role(void **state)
{
    Farm__HistoryGet req = FARM__HISTORY_GET__INIT;
    Farm__HistoryRecord *r;
    char id[FARM_ID_MAX + 1];
    (void)state;

    req.build = "b1-alice";
    r = farm_history_get(&s_parts, &s_alice, &req);
    assert_non_null(r);
    assert_string_equal(r->build->owner, "alice");
    assert_int_equal(r->n_platforms, 2);
    assert_string_equal(r->dockerfile, "Dockerfile");
    protobuf_c_message_free_unpacked(&r->base, NULL);
    assert_null(farm_history_get(&s_parts, &s_bob, &req));
    assert_non_null(strstr(farm_error_last(), "build b1-alice belongs to client alice; client "
                                              "bob (role submit) may inspect only its own"));
    assert_null(farm_history_get(&s_parts, &s_ro, &req));
    assert_non_null(strstr(farm_error_last(), "client ro has role read"));
    r = farm_history_get(&s_parts, &s_admin, &req);
    assert_non_null(r);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    req.build = "b9-gone";
    assert_null(farm_history_get(&s_parts, &s_admin, &req));
    assert_non_null(strstr(farm_error_last(), "no build b9-gone on this coordinator"));
    /* ^N counts the builds the caller lists */
    assert_int_equal(farm_history_resolve(id, &s_parts, &s_alice, "^1"), 0);
    assert_string_equal(id, "b1-alice");
    assert_int_equal(farm_history_resolve(id, &s_parts, &s_admin, "^1"), 0);
    assert_string_equal(id, "b2-bob");
    assert_int_equal(farm_history_resolve(id, &s_parts, &s_alice, "^2"), FARM_ENOTFOUND);
    assert_int_equal(farm_history_resolve(id, &s_parts, &s_alice, "^x"), FARM_EINVALID);
    assert_int_equal(farm_history_resolve(id, &s_parts, &s_alice, ""), FARM_EINVALID);
}

static void test_logs_chunks(void **state)
{
    Farm__LogsRequest req = FARM__LOGS_REQUEST__INIT;
    Farm__LogsReply **reps;
    size_t n = 0, lines = 0;
    (void)state;

    req.build = "^0";
    reps = farm_history_logs(&n, &s_parts, &s_alice, &req, 400);
    assert_non_null(reps);
    assert_true(n > 1);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(reps[i]->more, i + 1 < n);
        assert_string_equal(reps[i]->build_id, "b3-alice");
        lines += reps[i]->n_lines;
    }
    assert_int_equal(lines, 40);
    assert_string_equal(reps[0]->lines[0]->line, "line 00 of the build");
    assert_string_equal(reps[0]->lines[0]->node, "x86-1");
    farm_history_logs_free(reps, n);
    req.platform = "linux/arm64";
    reps = farm_history_logs(&n, &s_parts, &s_alice, &req, 0);
    assert_int_equal(n, 1);
    assert_int_equal(reps[0]->n_lines, 20);
    assert_string_equal(reps[0]->lines[0]->line, "line 01 of the build");
    farm_history_logs_free(reps, n);
    req.platform = "linux/s390x";
    assert_null(farm_history_logs(&n, &s_parts, &s_alice, &req, 0));
    assert_non_null(strstr(farm_error_last(), "has no platform linux/s390x"));
    req.platform = "";
    req.build = "b3-alice";
    assert_null(farm_history_logs(&n, &s_parts, &s_bob, &req, 0));
    assert_non_null(strstr(farm_error_last(), "may read the logs of only its own builds"));
    req.build = "b2-bob"; /* a build with no line: one empty reply */
    reps = farm_history_logs(&n, &s_parts, &s_bob, &req, 0);
    assert_int_equal(n, 1);
    assert_int_equal(reps[0]->n_lines, 0);
    assert_false(reps[0]->more);
    farm_history_logs_free(reps, n);
}

static int s_lines, s_ends;
static void s_on_line(void *arg, const char *build_id, const char *platform, const char *line)
{
    (void)arg;
    assert_string_equal(build_id, "b3-alice");
    if (line) {
        assert_string_equal(platform, "linux/amd64");
        s_lines++;
    } else {
        s_ends++;
    }
}

static void test_watches(void **state)
{
    farm_history_watches_t *w = farm_history_watches_new();
    int a, b;
    (void)state;

    a = farm_history_watch(w, "b3-alice", s_on_line, NULL);
    b = farm_history_watch(w, "b3-alice", s_on_line, NULL);
    assert_true(a > 0 && b > a);
    assert_true(farm_history_watch(w, "b3-alice", NULL, NULL) < 0);
    farm_history_line(w, "b3-alice", "linux/amd64", "hello");
    farm_history_line(w, "b1-alice", "linux/amd64", "not watched");
    assert_int_equal(s_lines, 2);
    farm_history_unwatch(w, a);
    farm_history_line(w, "b3-alice", "linux/amd64", "again");
    assert_int_equal(s_lines, 3);
    farm_history_ended(w, "b3-alice");
    assert_int_equal(s_ends, 1);
    farm_history_line(w, "b3-alice", "linux/amd64", "after the end");
    assert_int_equal(s_lines, 3); /* the end took the watch away */
    farm_history_watches_destroy(&w);
    assert_null(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_list_by_role),
        cmocka_unit_test(test_get_by_role),
        cmocka_unit_test(test_logs_chunks),
        cmocka_unit_test(test_watches),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
