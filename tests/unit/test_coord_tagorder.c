/* SPDX-License-Identifier: Apache-2.0 */
/* The per-tag order of index pushes, on its own: two pushes of one tag never hold it at
 * once and a build waiting for a tag is not overtaken on it; a build's index goes under a
 * tag only when no build submitted later took it (a redo of the same build may), one
 * repository's tag is not another's, and with a journal the order survives a restart and
 * a record that cannot be written stops the push; a push that failed gives back the tags
 * it sent nothing to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "coordinator/journal.h"
#include "coordinator/tagorder.h"

/* A build as the order sees it: id, submit number, repository and tags. */
typedef struct {
    farm_build_t b;
    char *tags[4];
    farm_target_t targets[2];
    uint32_t tag_target[4];
    char *refs[4];
    char refbuf[4][600];
} fake_build_t;

/* Tag i in full, in the build's repository k (0: its own). */
static void s_tag_in(fake_build_t *f, size_t i, uint32_t k)
{
    f->tag_target[i] = k;
    snprintf(f->refbuf[i], sizeof f->refbuf[i], "%s/%s:%s", f->targets[k].registry,
             f->targets[k].repository, f->tags[i]);
    f->refs[i] = f->refbuf[i];
}

static void s_build(fake_build_t *f, uint64_t seq, const char *repo, const char *t0,
                    const char *t1)
{
    memset(f, 0, sizeof *f);
    f->b.seq = seq;
    snprintf(f->b.id, sizeof f->b.id, "b%llu-%032llx", (unsigned long long)seq,
             (unsigned long long)seq);
    snprintf(f->b.registry, sizeof f->b.registry, "reg.local:5000");
    snprintf(f->b.repository, sizeof f->b.repository, "%s", repo);
    f->tags[0] = (char *)t0;
    f->tags[1] = (char *)t1;
    f->b.tags = f->tags;
    f->b.n_tags = t1 ? 2 : 1;
    snprintf(f->targets[0].registry, sizeof f->targets[0].registry, "reg.local:5000");
    snprintf(f->targets[0].repository, sizeof f->targets[0].repository, "%s", repo);
    snprintf(f->targets[1].registry, sizeof f->targets[1].registry, "other.local:5000");
    snprintf(f->targets[1].repository, sizeof f->targets[1].repository, "%s", repo);
    f->b.targets = f->targets;
    f->b.n_targets = 1;
    f->b.tag_target = f->tag_target;
    f->b.tag_refs = f->refs;
    for (size_t i = 0; i < f->b.n_tags; i++)
        s_tag_in(f, i, 0);
}

static void s_free(fake_build_t *f)
{
    free(f->b.kept_by);
    f->b.kept_by = NULL;
}

static void test_one_push_per_tag_and_no_overtaking(void **state)
{
    farm_tagorder_t *o = farm_tagorder_new(NULL);
    fake_build_t b1, b2, b3, b4, b5;

    assert_non_null(o);
    s_build(&b1, 1, "app", "1.0", NULL);
    s_build(&b2, 2, "app", "1.0", "latest");
    s_build(&b3, 3, "app", "latest", NULL);
    s_build(&b4, 4, "app", "2.0", NULL);
    s_build(&b5, 5, "other", "1.0", NULL); /* same tag name, another repository */

    farm_tagorder_pass_begin(o);
    assert_int_equal(farm_tagorder_may_start(o, &b1.b), 1);
    assert_int_equal(farm_tagorder_take(o, &b1.b), 0);
    assert_int_equal(farm_tagorder_busy(o, &b1.b), 1);

    /* b2 wants 1.0, which b1 pushes: it waits, for both its tags */
    farm_tagorder_pass_begin(o);
    assert_int_equal(farm_tagorder_may_start(o, &b2.b), 0);
    /* b3 asked later for latest, free but wanted by b2 ahead of it: it waits too */
    assert_int_equal(farm_tagorder_may_start(o, &b3.b), 0);
    /* others go by */
    assert_int_equal(farm_tagorder_may_start(o, &b4.b), 1);
    assert_int_equal(farm_tagorder_may_start(o, &b5.b), 1);
    assert_int_equal(farm_tagorder_take(o, &b5.b), 0);

    /* b1 ends: b2 has its turn first, then b3 waits on b2's latest */
    farm_tagorder_release(o, &b1.b);
    assert_int_equal(farm_tagorder_busy(o, &b1.b), 0);
    farm_tagorder_pass_begin(o);
    assert_int_equal(farm_tagorder_may_start(o, &b2.b), 1);
    assert_int_equal(farm_tagorder_take(o, &b2.b), 0);
    assert_int_equal(farm_tagorder_busy(o, &b2.b), 2);
    assert_int_equal(farm_tagorder_may_start(o, &b3.b), 0);
    farm_tagorder_release(o, &b2.b);
    farm_tagorder_pass_begin(o);
    assert_int_equal(farm_tagorder_may_start(o, &b3.b), 1);
    /* a release by a build that does not hold the tag frees nothing */
    assert_int_equal(farm_tagorder_take(o, &b3.b), 0);
    farm_tagorder_release(o, &b2.b);
    assert_int_equal(farm_tagorder_busy(o, &b3.b), 1);
    farm_tagorder_destroy(&o);
    assert_null(o);
    farm_tagorder_destroy(&o);
}

/* Tags of one name in two repositories are two tags: the turn and the order rule hold for
 * each registry/repository:tag apart. */
static void test_tags_in_two_repositories(void **state)
{
    farm_tagorder_t *o = farm_tagorder_new(NULL);
    fake_build_t b1, b2, b3;

    assert_non_null(o);
    s_build(&b1, 1, "app", "1", "1"); /* reg.local:5000/app:1 and other.local:5000/app:1 */
    b1.b.n_targets = 2;
    s_tag_in(&b1, 1, 1);
    s_build(&b2, 2, "app", "1", NULL); /* other.local:5000/app:1 only */
    b2.b.n_targets = 2;
    s_tag_in(&b2, 0, 1);
    s_build(&b3, 3, "app", "1", NULL); /* reg.local:5000/app:1 */
    assert_string_equal(b1.b.tag_refs[1], "other.local:5000/app:1");

    farm_tagorder_pass_begin(o);
    assert_int_equal(farm_tagorder_may_start(o, &b2.b), 1);
    assert_int_equal(farm_tagorder_take(o, &b2.b), 0);
    assert_int_equal(farm_tagorder_claim(o, &b2.b, 1000), 1);
    /* b1 shares other.local's tag with b2's push: it waits; b3 shares nothing with b2 but
     * reg.local's tag with b1, asked first: it waits for b1 */
    assert_int_equal(farm_tagorder_may_start(o, &b1.b), 0);
    assert_int_equal(farm_tagorder_may_start(o, &b3.b), 0);
    farm_tagorder_release(o, &b2.b);
    farm_tagorder_pass_begin(o);
    assert_int_equal(farm_tagorder_may_start(o, &b1.b), 1);
    assert_int_equal(farm_tagorder_take(o, &b1.b), 0);
    assert_int_equal(farm_tagorder_busy(o, &b1.b), 2);
    /* b1 moves its own repository's tag; the other's was pushed by b2, submitted later */
    assert_int_equal(farm_tagorder_claim(o, &b1.b, 2000), 1);
    assert_string_equal(b1.b.kept_by[0], "");
    assert_string_equal(b1.b.kept_by[1], b2.b.id);
    farm_tagorder_release(o, &b1.b);
    farm_tagorder_pass_begin(o);
    assert_int_equal(farm_tagorder_may_start(o, &b3.b), 1);
    assert_int_equal(farm_tagorder_take(o, &b3.b), 0);
    assert_int_equal(farm_tagorder_claim(o, &b3.b, 3000), 1);
    farm_tagorder_release(o, &b3.b);
    s_free(&b1);
    s_free(&b2);
    s_free(&b3);
    farm_tagorder_destroy(&o);
}

static void test_submit_order_wins_each_tag(void **state)
{
    farm_tagorder_t *o = farm_tagorder_new(NULL);
    fake_build_t b5, b7, b6, b3;

    assert_non_null(o);
    s_build(&b5, 5, "app", "1.0", "latest");
    s_build(&b7, 7, "app", "1.0", NULL);
    s_build(&b6, 6, "app", "latest", "1.0");
    s_build(&b3, 3, "other", "1.0", NULL);

    /* b7 (submitted later) pushes first */
    assert_int_equal(farm_tagorder_claim(o, &b7.b, 1), 1);
    assert_string_equal(b7.b.kept_by[0], "");
    /* b5 finishes later: 1.0 stays b7's, latest is b5's */
    assert_int_equal(farm_tagorder_claim(o, &b5.b, 2), 1);
    assert_string_equal(b5.b.kept_by[0], b7.b.id);
    assert_string_equal(b5.b.kept_by[1], "");
    /* b6: latest moves from b5 (older) to b6; 1.0 stays b7's */
    assert_int_equal(farm_tagorder_claim(o, &b6.b, 3), 1);
    assert_string_equal(b6.b.kept_by[0], "");
    assert_string_equal(b6.b.kept_by[1], b7.b.id);
    /* b5 again (its push redone): nothing of it moves now, each tag says who has it */
    assert_int_equal(farm_tagorder_claim(o, &b5.b, 4), 0);
    assert_string_equal(b5.b.kept_by[0], b7.b.id);
    assert_string_equal(b5.b.kept_by[1], b6.b.id);
    /* b7 again: equal is its own, moved again */
    assert_int_equal(farm_tagorder_claim(o, &b7.b, 5), 1);
    assert_string_equal(b7.b.kept_by[0], "");
    /* the same tag name in another repository is another tag */
    assert_int_equal(farm_tagorder_claim(o, &b3.b, 6), 1);
    s_free(&b5);
    s_free(&b6);
    s_free(&b7);
    s_free(&b3);
    farm_tagorder_destroy(&o);
}

static void test_order_survives_a_restart(void **state)
{
    char dir[] = "/tmp/farm-tagorder-XXXXXX";
    farm_journal_t *j;
    farm_tagorder_t *o;
    farm_journal_tag_t t;
    fake_build_t b5, b7, b9;

    assert_non_null(mkdtemp(dir));
    s_build(&b5, 5, "app", "1.0", "latest");
    s_build(&b7, 7, "app", "1.0", NULL);
    s_build(&b9, 9, "app", "latest", NULL);

    j = farm_journal_open(dir, NULL);
    assert_non_null(j);
    o = farm_tagorder_new(j);
    assert_int_equal(farm_tagorder_claim(o, &b7.b, 1700000000000LL), 1);
    /* written before the push starts */
    assert_int_equal(farm_journal_get_tag(j, &t, "reg.local:5000", "app", "1.0"), 0);
    assert_int_equal(t.seq, 7);
    assert_string_equal(t.build_id, b7.b.id);
    assert_int_equal(t.at, 1700000000000LL);
    farm_tagorder_destroy(&o);
    farm_journal_destroy(&j);

    /* a new coordinator: nothing in memory, the journal says 1.0 is b7's */
    j = farm_journal_open(dir, NULL);
    assert_non_null(j);
    o = farm_tagorder_new(j);
    assert_int_equal(farm_tagorder_claim(o, &b5.b, 1700000001000LL), 1);
    assert_string_equal(b5.b.kept_by[0], b7.b.id);
    assert_string_equal(b5.b.kept_by[1], "");
    assert_int_equal(farm_tagorder_claim(o, &b9.b, 1700000002000LL), 1);
    farm_tagorder_destroy(&o);
    farm_journal_destroy(&j);
    j = farm_journal_open(dir, NULL);
    assert_int_equal(farm_journal_get_tag(j, &t, "reg.local:5000", "app", "latest"), 0);
    assert_int_equal(t.seq, 9);
    assert_int_equal(farm_journal_get_tag(j, &t, "reg.local:5000", "app", "1.0"), 0);
    assert_int_equal(t.seq, 7);
    farm_journal_destroy(&j);
    s_free(&b5);
    s_free(&b7);
    s_free(&b9);
    farm_fs_rmtree(dir);
}

/* With the journal in batch mode (one commit per reactor turn), a claim is still on disk
 * before the push starts: a coordinator killed right after it leaves the record. */
static void test_claim_durable_in_batch_mode(void **state)
{
    char dir[] = "/tmp/farm-tagorder-XXXXXX";
    farm_journal_t *j;
    farm_journal_tag_t t;
    fake_build_t b7;
    pid_t pid;
    int status;

    assert_non_null(mkdtemp(dir));
    s_build(&b7, 7, "app", "1.0", NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        farm_journal_t *cj = farm_journal_open(dir, NULL);
        farm_tagorder_t *o = cj ? farm_tagorder_new(cj) : NULL;
        if (!o)
            _exit(2);
        farm_journal_set_batch(cj, 1);
        _exit(farm_tagorder_claim(o, &b7.b, 1) == 1 ? 0 : 3); /* no close, no commit */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    j = farm_journal_open(dir, NULL);
    assert_non_null(j);
    assert_int_equal(farm_journal_get_tag(j, &t, "reg.local:5000", "app", "1.0"), 0);
    assert_string_equal(t.build_id, b7.b.id);
    farm_journal_destroy(&j);
    farm_fs_rmtree(dir);
}

/* A push that failed gives back the tags it sent nothing to, to whichever build had them
 * (or none), in memory and in the journal; those it tried stay its. */
static void test_failed_push_gives_back_untried_tags(void **state)
{
    char dir[] = "/tmp/farm-tagorder-XXXXXX";
    farm_journal_t *j;
    farm_tagorder_t *o;
    farm_journal_tag_t t;
    fake_build_t b3, b7, b5, b4;

    assert_non_null(mkdtemp(dir));
    j = farm_journal_open(dir, NULL);
    assert_non_null(j);
    o = farm_tagorder_new(j);
    s_build(&b3, 3, "app", "1.0", NULL);
    s_build(&b7, 7, "app", "latest", "1.0");
    s_build(&b5, 5, "app", "1.0", "latest");
    s_build(&b4, 4, "app", "1.0", "latest");
    assert_int_equal(farm_tagorder_claim(o, &b3.b, 1), 1);
    assert_int_equal(farm_tagorder_claim(o, &b7.b, 2), 2);
    /* b7's helper sent a PUT for latest only, then failed */
    farm_tagorder_undo(o, &b7.b, 1, 3);
    assert_int_equal(farm_journal_get_tag(j, &t, "reg.local:5000", "app", "1.0"), 0);
    assert_int_equal(t.seq, 3);
    assert_string_equal(t.build_id, b3.b.id);
    assert_int_equal(farm_journal_get_tag(j, &t, "reg.local:5000", "app", "latest"), 0);
    assert_int_equal(t.seq, 7);
    /* b5: 1.0 is back to b3 (older), so it moves; latest may name b7's index: kept */
    assert_int_equal(farm_tagorder_claim(o, &b5.b, 4), 1);
    assert_string_equal(b5.b.kept_by[0], "");
    assert_string_equal(b5.b.kept_by[1], b7.b.id);
    /* b5 fails before any PUT: 1.0 goes back to b3, latest stays b7's */
    farm_tagorder_undo(o, &b5.b, 0, 5);
    farm_tagorder_destroy(&o);
    farm_journal_destroy(&j);

    /* after a restart: b4 (older than b5, newer than b3) moves 1.0 */
    j = farm_journal_open(dir, NULL);
    o = farm_tagorder_new(j);
    assert_int_equal(farm_tagorder_claim(o, &b4.b, 6), 1);
    assert_string_equal(b4.b.kept_by[0], "");
    assert_string_equal(b4.b.kept_by[1], b7.b.id);
    /* undone to no build at all: a tag nobody held before */
    fake_build_t b9;
    s_build(&b9, 9, "app", "9.9", NULL);
    assert_int_equal(farm_tagorder_claim(o, &b9.b, 7), 1);
    farm_tagorder_undo(o, &b9.b, 0, 8);
    assert_int_equal(farm_journal_get_tag(j, &t, "reg.local:5000", "app", "9.9"), 0);
    assert_int_equal(t.seq, 0);
    assert_string_equal(t.build_id, "");
    fake_build_t b8;
    s_build(&b8, 8, "app", "9.9", NULL);
    assert_int_equal(farm_tagorder_claim(o, &b8.b, 9), 1);
    farm_tagorder_destroy(&o);
    farm_journal_destroy(&j);
    s_free(&b3);
    s_free(&b7);
    s_free(&b5);
    s_free(&b4);
    s_free(&b9);
    s_free(&b8);
    farm_fs_rmtree(dir);
}

/* With a journal, a tag leaves memory when its push ends (the record is read again);
 * without one, memory is the record and keeps it. */
static void test_memory_with_and_without_a_journal(void **state)
{
    char dir[] = "/tmp/farm-tagorder-XXXXXX";
    farm_journal_t *j;
    farm_tagorder_t *o, *m = farm_tagorder_new(NULL);
    fake_build_t b7, b5, b6;

    assert_non_null(mkdtemp(dir));
    j = farm_journal_open(dir, NULL);
    assert_non_null(j);
    o = farm_tagorder_new(j);
    s_build(&b7, 7, "app", "1.0", "latest");
    s_build(&b5, 5, "app", "1.0", NULL);
    s_build(&b6, 6, "app", "latest", NULL);
    for (farm_tagorder_t *t = o; t; t = t == o ? m : NULL) {
        assert_int_equal(farm_tagorder_take(t, &b7.b), 0);
        assert_int_equal(farm_tagorder_claim(t, &b7.b, 1), 2);
        assert_int_equal(farm_tagorder_size(t), 2);
        /* b6 waits for latest in this pass: that entry stays through the release */
        farm_tagorder_pass_begin(t);
        assert_int_equal(farm_tagorder_may_start(t, &b6.b), 0);
        farm_tagorder_release(t, &b7.b);
        assert_int_equal(farm_tagorder_size(t), t == o ? 1 : 2);
        farm_tagorder_pass_begin(t);
        assert_int_equal(farm_tagorder_may_start(t, &b5.b), 1);
        assert_int_equal(farm_tagorder_take(t, &b5.b), 0);
        assert_int_equal(farm_tagorder_claim(t, &b5.b, 2), 0);
        assert_string_equal(b5.b.kept_by[0], b7.b.id);
        farm_tagorder_release(t, &b5.b);
        assert_int_equal(farm_tagorder_may_start(t, &b6.b), 1);
        assert_int_equal(farm_tagorder_take(t, &b6.b), 0);
        assert_int_equal(farm_tagorder_claim(t, &b6.b, 3), 0);
        farm_tagorder_release(t, &b6.b);
        assert_int_equal(farm_tagorder_size(t), t == o ? 0 : 2);
    }
    farm_tagorder_destroy(&o);
    farm_tagorder_destroy(&m);
    farm_journal_destroy(&j);
    s_free(&b7);
    s_free(&b5);
    s_free(&b6);
    farm_fs_rmtree(dir);
}

/* A journal that cannot write: the claim fails, naming the build and the tag. */
static int f_put_tag(void *i, const farm_journal_tag_t *t)
{
    return farm_error_set(FARM_EIO, "journal test: the disk is full; free space on it");
}
static int f_get_tag(void *i, farm_journal_tag_t *out, const char *r, const char *repo,
                     const char *tag)
{
    return FARM_ENOTFOUND;
}
static int f_get_tag_broken(void *i, farm_journal_tag_t *out, const char *r, const char *repo,
                            const char *tag)
{
    return farm_error_set(FARM_EIO, "journal test: cannot be read");
}

static void test_unwritable_record_stops_the_push(void **state)
{
    static const farm_journal_ops_t ops = {.name = "broken", .put_tag = f_put_tag,
                                           .get_tag = f_get_tag};
    static const farm_journal_ops_t ops2 = {.name = "unreadable", .put_tag = f_put_tag,
                                            .get_tag = f_get_tag_broken};
    farm_journal_t *j = farm_journal_new(&ops, NULL, NULL);
    farm_tagorder_t *o = farm_tagorder_new(j);
    fake_build_t b1;

    s_build(&b1, 1, "app", "1.0", NULL);
    assert_true(farm_tagorder_claim(o, &b1.b, 1) < 0);
    assert_non_null(strstr(farm_error_last(), b1.b.id));
    assert_non_null(strstr(farm_error_last(), "recording that it pushes tag reg.local:5000/app:1.0"));
    assert_non_null(strstr(farm_error_last(), "the disk is full"));
    farm_tagorder_destroy(&o);
    farm_journal_destroy(&j);

    j = farm_journal_new(&ops2, NULL, NULL);
    o = farm_tagorder_new(j);
    assert_true(farm_tagorder_claim(o, &b1.b, 1) < 0);
    assert_non_null(strstr(farm_error_last(), "reading which build last pushed tag reg.local:5000/app:1.0"));
    assert_non_null(strstr(farm_error_last(), "cannot be read"));
    s_free(&b1);
    farm_tagorder_destroy(&o);
    farm_journal_destroy(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_push_per_tag_and_no_overtaking),
        cmocka_unit_test(test_submit_order_wins_each_tag),
        cmocka_unit_test(test_tags_in_two_repositories),
        cmocka_unit_test(test_order_survives_a_restart),
        cmocka_unit_test(test_failed_push_gives_back_untried_tags),
        cmocka_unit_test(test_claim_durable_in_batch_mode),
        cmocka_unit_test(test_memory_with_and_without_a_journal),
        cmocka_unit_test(test_unwritable_record_stops_the_push),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
