/* SPDX-License-Identifier: Apache-2.0 */
/* The scheduler's rules, each on its own, in milliseconds: least loaded first with
 * farm.yaml's order on ties, native before emulated, waiting said once per attempt,
 * requeue on loss as a new attempt, late results ignored, timeouts, withdraw; warm nodes
 * (that built the same repository, platform and Dockerfile) first, waited for at most
 * coordinator.cache_wait. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/config.h"
#include "common/error.h"
#include "coordinator/nodes.h"
#include "coordinator/scheduler.h"
#include "coordinator/warm.h"

/* Every step the tests take is followed by the scheduler's self-check: each call below
 * goes through a wrapper that asserts farm_scheduler_check() after it. */
static void s_checked(const farm_scheduler_t *s)
{
    if (farm_scheduler_check(s) < 0)
        fail_msg("%s", farm_error_last());
}

static int s_add(farm_scheduler_t *s, farm_job_t *j, long long now)
{
    int rc = farm_scheduler_add(s, j, now);
    s_checked(s);
    return rc;
}

static int s_node_up(farm_scheduler_t *s, farm_node_t *n, long long now)
{
    int rc = farm_scheduler_node_up(s, n, now);
    s_checked(s);
    return rc;
}

static void s_node_down(farm_scheduler_t *s, farm_node_t *n, const char *why, long long now)
{
    farm_scheduler_node_down(s, n, why, now);
    s_checked(s);
}

static int s_node_rejoin(farm_scheduler_t *s, farm_node_t *n, const farm_sched_held_t *held,
                         size_t k, int *adopted, const char *why, long long now)
{
    int rc = farm_scheduler_node_rejoin(s, n, held, k, adopted, why, now);
    s_checked(s);
    return rc;
}

static void s_node_drain(farm_scheduler_t *s, farm_node_t *n, int on)
{
    farm_scheduler_node_drain(s, n, on);
    s_checked(s);
}

static void s_node_health(farm_scheduler_t *s, farm_node_t *n, int sick)
{
    farm_scheduler_node_health(s, n, sick);
    s_checked(s);
}

static int s_retry(farm_scheduler_t *s, farm_job_t *j, const char *why, long long now)
{
    int rc = farm_scheduler_retry(s, j, why, now);
    s_checked(s);
    return rc;
}

static size_t s_dispatch(farm_scheduler_t *s, long long now)
{
    size_t n = farm_scheduler_dispatch(s, now);
    s_checked(s);
    return n;
}

static void s_release(farm_scheduler_t *s, farm_job_t *j)
{
    farm_scheduler_release(s, j);
    s_checked(s);
}

static void s_withdraw(farm_scheduler_t *s, farm_job_t *j, const char *reason)
{
    farm_scheduler_withdraw(s, j, reason);
    s_checked(s);
}

static void s_tick(farm_scheduler_t *s, long long now)
{
    farm_scheduler_tick(s, now);
    s_checked(s);
}

#define farm_scheduler_add s_add
#define farm_scheduler_node_up s_node_up
#define farm_scheduler_node_down s_node_down
#define farm_scheduler_node_rejoin s_node_rejoin
#define farm_scheduler_node_drain s_node_drain
#define farm_scheduler_node_health s_node_health
#define farm_scheduler_retry s_retry
#define farm_scheduler_dispatch s_dispatch
#define farm_scheduler_release s_release
#define farm_scheduler_withdraw s_withdraw
#define farm_scheduler_tick s_tick

#define MAX_EV 20000

typedef struct {
    char kind;            /* a assign, c cancel, w waiting, r requeued, e expired */
    farm_job_t *job;
    const char *node;
    unsigned attempt;
} ev_t;

typedef struct {
    farm_config_t *cfg;
    farm_nodes_t *nodes;
    farm_scheduler_t *s;
    ev_t ev[MAX_EV];
    size_t n_ev;
    farm_job_t *jobs;
    size_t n_jobs;
} fx_t;

static void s_rec(fx_t *fx, char kind, farm_job_t *job, const farm_node_t *node)
{
    assert_true(fx->n_ev < MAX_EV);
    fx->ev[fx->n_ev++] = (ev_t){kind, job, node ? node->cfg->name : NULL, job->attempt};
}

static void cb_assign(void *a, farm_job_t *j, farm_node_t *n) { s_rec(a, 'a', j, n); }
static void cb_cancel(void *a, farm_job_t *j, farm_node_t *n, const char *r) { s_rec(a, 'c', j, n); }
static void cb_waiting(void *a, farm_job_t *j) { s_rec(a, 'w', j, NULL); }
static void cb_requeued(void *a, farm_job_t *j, const char *why) { s_rec(a, 'r', j, NULL); }
static void cb_expired(void *a, farm_job_t *j, int running) { s_rec(a, 'e', j, NULL); }

static fx_t *s_fx(const char *yaml, size_t n_jobs)
{
    fx_t *fx = calloc(1, sizeof *fx);
    farm_scheduler_cbs_t cbs = {cb_assign, cb_cancel, cb_waiting, cb_requeued, cb_expired};
    farm_diag_t d = {0};
    assert_non_null(fx);
    if (farm_config_parse(&fx->cfg, "test.yaml", yaml, strlen(yaml), &d) < 0) {
        for (size_t i = 0; i < d.n; i++)
            fprintf(stderr, "%s\n", d.items[i]);
        fail_msg("config does not parse");
    }
    fx->nodes = farm_nodes_new(fx->cfg);
    fx->s = farm_scheduler_new(fx->cfg, &cbs, fx);
    fx->jobs = calloc(n_jobs + 1, sizeof *fx->jobs);
    fx->n_jobs = n_jobs;
    assert_non_null(fx->nodes);
    assert_non_null(fx->s);
    assert_non_null(fx->jobs);
    return fx;
}

static void s_fx_free(fx_t *fx)
{
    farm_scheduler_destroy(&fx->s);
    farm_nodes_destroy(&fx->nodes);
    farm_config_destroy(&fx->cfg);
    for (size_t i = 0; i < fx->n_jobs; i++)
        free(fx->jobs[i].cache_key);
    free(fx->jobs);
    free(fx);
}

/* A node says HELLO for platforms (comma list) and slots; it is READY and up. */
static farm_node_t *s_up(fx_t *fx, const char *name, const char *plats, unsigned slots)
{
    char buf[256], *save = NULL, *list[8];
    farm_hello_t h = {.name = name, .platforms = list, .slots = slots, .builder = "test",
                      .version = FARM_VERSION, .session = (uint64_t)random() + 1};
    farm_node_t *n = NULL;
    char reason[512];
    snprintf(buf, sizeof buf, "%s", plats);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        list[h.n_platforms++] = t;
    assert_true(farm_nodes_hello(fx->nodes, &n, &h, name, strlen(name), 0, reason,
                                 sizeof reason) >= 0);
    assert_int_equal(farm_scheduler_node_up(fx->s, n, 0), 0);
    return n;
}

static farm_job_t *s_job(fx_t *fx, size_t i, const char *platform, long long now)
{
    farm_job_t *j = &fx->jobs[i];
    const farm_config_platform_t *cp = farm_config_platform(fx->cfg, platform);
    assert_non_null(cp);
    snprintf(j->id, sizeof j->id, "b1.%zu", i + 1);
    snprintf(j->platform, sizeof j->platform, "%s", cp->platform);
    j->platform_index = (size_t)(cp - fx->cfg->platforms);
    j->attempt = 1;
    assert_int_equal(farm_scheduler_add(fx->s, j, now), 0);
    return j;
}

static size_t s_count(const fx_t *fx, char kind)
{
    size_t n = 0;
    for (size_t i = 0; i < fx->n_ev; i++)
        n += fx->ev[i].kind == kind;
    return n;
}

static const ev_t *s_nth(const fx_t *fx, char kind, size_t nth)
{
    for (size_t i = 0; i < fx->n_ev; i++)
        if (fx->ev[i].kind == kind && nth-- == 0)
            return &fx->ev[i];
    return NULL;
}

static const char *Y_TWO =
    "coordinator: {agents: 'tcp://127.0.0.1:1', clients: 'tcp://127.0.0.1:2',"
    " queue_timeout: 10s, job_timeout: 60s}\n"
    "platforms:\n  linux/amd64: [a, b]\n"
    "nodes:\n  a: {slots: 2}\n  b: {slots: 2}\n";

static void test_least_loaded_ties_in_farm_yaml_order(void **state)
{
    fx_t *fx = s_fx(Y_TWO, 5);
    s_up(fx, "b", "linux/amd64", 0); /* b says HELLO first: order is farm.yaml's, not HELLO's */
    s_up(fx, "a", "linux/amd64", 0);
    for (size_t i = 0; i < 5; i++)
        s_job(fx, i, "linux/amd64", 0);
    assert_int_equal(farm_scheduler_dispatch(fx->s, 0), 4);
    assert_string_equal(s_nth(fx, 'a', 0)->node, "a");
    assert_string_equal(s_nth(fx, 'a', 1)->node, "b");
    assert_string_equal(s_nth(fx, 'a', 2)->node, "a");
    assert_string_equal(s_nth(fx, 'a', 3)->node, "b");
    /* every slot taken: the fifth job waits in the queue, FIFO */
    assert_int_equal(farm_scheduler_queued(fx->s), 1);
    assert_int_equal(fx->jobs[4].state, FARM_JOB_QUEUED);
    assert_ptr_equal(s_nth(fx, 'a', 0)->job, &fx->jobs[0]);
    assert_ptr_equal(s_nth(fx, 'a', 3)->job, &fx->jobs[3]);
    /* a slot frees on b: the queued job goes there */
    farm_scheduler_release(fx->s, &fx->jobs[1]);
    fx->jobs[1].state = FARM_JOB_DONE;
    assert_int_equal(farm_scheduler_dispatch(fx->s, 0), 1);
    assert_string_equal(s_nth(fx, 'a', 4)->node, "b");
    assert_int_equal(farm_scheduler_node_used(fx->s, farm_nodes_by_name(fx->nodes, "b")), 2);
    s_fx_free(fx);
}

static void test_load_is_a_ratio_of_slots(void **state)
{
    fx_t *fx = s_fx("coordinator: {agents: 'tcp://127.0.0.1:1', clients: 'tcp://127.0.0.1:2'}\n"
                    "platforms:\n  linux/amd64: [big, small]\n"
                    "nodes:\n  big: {slots: 4}\n  small: {slots: 1}\n", 5);
    s_up(fx, "big", "linux/amd64", 0);
    s_up(fx, "small", "linux/amd64", 0);
    for (size_t i = 0; i < 5; i++)
        s_job(fx, i, "linux/amd64", 0);
    assert_int_equal(farm_scheduler_dispatch(fx->s, 0), 5);
    /* 0/4 vs 0/1: tie, big first; 1/4 vs 0/1: small; then only big has room */
    assert_string_equal(s_nth(fx, 'a', 0)->node, "big");
    assert_string_equal(s_nth(fx, 'a', 1)->node, "small");
    for (size_t i = 2; i < 5; i++)
        assert_string_equal(s_nth(fx, 'a', i)->node, "big");
    s_fx_free(fx);
}

static void test_agent_slots_lower_the_configured_ones(void **state)
{
    fx_t *fx = s_fx(Y_TWO, 3);
    farm_node_t *a = s_up(fx, "a", "linux/amd64", 1);
    assert_int_equal(a->slots, 1);
    /* a huge value must not wrap to a negative count */
    farm_node_t *b = s_up(fx, "b", "linux/amd64", 0xffffffffu);
    assert_int_equal(b->slots, 2);
    for (size_t i = 0; i < 3; i++)
        s_job(fx, i, "linux/amd64", 0);
    assert_int_equal(farm_scheduler_dispatch(fx->s, 0), 3);
    assert_int_equal(farm_scheduler_node_used(fx->s, a), 1);
    assert_int_equal(farm_scheduler_node_used(fx->s, b), 2);
    s_fx_free(fx);
}

static const char *Y_EMU =
    "coordinator: {agents: 'tcp://127.0.0.1:1', clients: 'tcp://127.0.0.1:2'}\n"
    "platforms:\n  linux/amd64: [x86]\n"
    "  linux/arm/v7:\n    native: [pi]\n    emulated: [x86]\n"
    "nodes:\n  x86: {slots: 4}\n  pi: {slots: 1}\n";

static void test_native_before_emulated(void **state)
{
    fx_t *fx = s_fx(Y_EMU, 3);
    farm_node_t *pi = s_up(fx, "pi", "linux/arm/v7", 0);
    farm_node_t *x86 = s_up(fx, "x86", "linux/amd64,linux/arm/v7", 0);
    s_job(fx, 0, "linux/arm/v7", 0);
    s_job(fx, 1, "linux/arm/v7", 0);
    farm_scheduler_dispatch(fx->s, 0);
    /* the busy native node is waited for while it lives: x86 idles for arm/v7 */
    assert_int_equal(s_count(fx, 'a'), 1);
    assert_string_equal(s_nth(fx, 'a', 0)->node, "pi");
    assert_int_equal(fx->jobs[0].emulated, 0);
    assert_int_equal(farm_scheduler_node_used(fx->s, x86), 0);
    /* the native node dies: both jobs go to the emulated node, the lost one as attempt 2 */
    farm_nodes_lose(fx->nodes, pi);
    farm_scheduler_node_down(fx->s, pi, "lost", 5);
    assert_int_equal(s_count(fx, 'r'), 1);
    assert_int_equal(fx->jobs[0].attempt, 2);
    farm_scheduler_dispatch(fx->s, 5);
    assert_int_equal(s_count(fx, 'a'), 3);
    /* the requeued job went to the front of the queue */
    assert_ptr_equal(s_nth(fx, 'a', 1)->job, &fx->jobs[0]);
    assert_string_equal(s_nth(fx, 'a', 1)->node, "x86");
    assert_string_equal(s_nth(fx, 'a', 2)->node, "x86");
    assert_int_equal(fx->jobs[0].emulated, 1);
    assert_int_equal(farm_scheduler_node_used(fx->s, x86), 2);
    s_fx_free(fx);
}

/* The native node is busy with another platform's job while an arm/v7 job waits for it;
 * when it is lost, the emulated node takes the waiting job at the next dispatch. */
static void test_emulated_takes_over_when_native_lost(void **state)
{
    fx_t *fx = s_fx("coordinator: {agents: 'tcp://127.0.0.1:1', clients: 'tcp://127.0.0.1:2'}\n"
                    "platforms:\n  linux/arm64: [pi]\n"
                    "  linux/arm/v7:\n    native: [pi]\n    emulated: [x86]\n"
                    "nodes:\n  x86: {slots: 2}\n  pi: {slots: 1}\n", 2);
    farm_node_t *pi = s_up(fx, "pi", "linux/arm64,linux/arm/v7", 0);
    s_up(fx, "x86", "linux/arm/v7", 0);
    s_job(fx, 0, "linux/arm64", 0);
    farm_scheduler_dispatch(fx->s, 0);
    s_job(fx, 1, "linux/arm/v7", 1);
    farm_scheduler_dispatch(fx->s, 1);
    assert_int_equal(s_count(fx, 'a'), 1); /* arm/v7 waits for its busy native node */
    farm_nodes_lose(fx->nodes, pi);
    farm_scheduler_node_down(fx->s, pi, "lost", 2);
    farm_scheduler_dispatch(fx->s, 2);
    assert_int_equal(s_count(fx, 'a'), 2);
    assert_ptr_equal(s_nth(fx, 'a', 1)->job, &fx->jobs[1]);
    assert_string_equal(s_nth(fx, 'a', 1)->node, "x86");
    s_fx_free(fx);
}

/* A lost node's jobs go back to the front of the queue in the order they had. */
static void test_requeue_keeps_order(void **state)
{
    fx_t *fx = s_fx(Y_TWO, 4);
    farm_node_t *a = s_up(fx, "a", "linux/amd64", 0);
    for (size_t i = 0; i < 4; i++)
        s_job(fx, i, "linux/amd64", 0);
    farm_scheduler_dispatch(fx->s, 0); /* jobs 0, 1 on a; 2, 3 queued */
    farm_nodes_lose(fx->nodes, a);
    farm_scheduler_node_down(fx->s, a, "lost", 1);
    s_up(fx, "b", "linux/amd64", 0);
    farm_scheduler_dispatch(fx->s, 1);
    assert_int_equal(s_count(fx, 'a'), 4);
    assert_ptr_equal(s_nth(fx, 'a', 2)->job, &fx->jobs[0]);
    assert_ptr_equal(s_nth(fx, 'a', 3)->job, &fx->jobs[1]);
    farm_scheduler_release(fx->s, &fx->jobs[0]);
    fx->jobs[0].state = FARM_JOB_DONE;
    farm_scheduler_dispatch(fx->s, 2);
    assert_ptr_equal(s_nth(fx, 'a', 4)->job, &fx->jobs[2]);
    s_fx_free(fx);
}

/* A drained node finishes what it runs and takes nothing new; a drained native node
 * lets the emulated one step in; undrain puts it back. */
static void test_drain(void **state)
{
    fx_t *fx = s_fx(Y_EMU, 3);
    farm_node_t *pi = s_up(fx, "pi", "linux/arm/v7", 0);
    s_up(fx, "x86", "linux/amd64,linux/arm/v7", 0);
    s_job(fx, 0, "linux/arm/v7", 0);
    farm_scheduler_dispatch(fx->s, 0);
    assert_string_equal(s_nth(fx, 'a', 0)->node, "pi");
    farm_scheduler_node_drain(fx->s, pi, 1);
    assert_true(farm_scheduler_node_drained(fx->s, pi));
    assert_ptr_equal(fx->jobs[0].node, pi); /* still running there */
    farm_scheduler_release(fx->s, &fx->jobs[0]);
    fx->jobs[0].state = FARM_JOB_DONE;
    s_job(fx, 1, "linux/arm/v7", 1);
    farm_scheduler_dispatch(fx->s, 1);
    assert_string_equal(s_nth(fx, 'a', 1)->node, "x86"); /* pi is free but drained */
    farm_scheduler_node_drain(fx->s, pi, 0);
    s_job(fx, 2, "linux/arm/v7", 2);
    farm_scheduler_dispatch(fx->s, 2);
    assert_string_equal(s_nth(fx, 'a', 2)->node, "pi");
    s_fx_free(fx);
}

/* An unhealthy node takes no new job while its running one goes on; a job that failed
 * for its node's reason runs again as a new attempt on the other node; healthy again, the
 * node takes jobs. Drain and health are separate: undraining an unhealthy node leaves it
 * out. */
static void test_unhealthy_node_takes_no_job(void **state)
{
    fx_t *fx = s_fx(Y_TWO, 4);
    farm_node_t *a = s_up(fx, "a", "linux/amd64", 0);
    farm_node_t *b = s_up(fx, "b", "linux/amd64", 0);
    s_job(fx, 0, "linux/amd64", 0);
    s_job(fx, 1, "linux/amd64", 0);
    farm_scheduler_dispatch(fx->s, 0);
    assert_ptr_equal(fx->jobs[0].node, a);
    assert_ptr_equal(fx->jobs[1].node, b);
    farm_scheduler_node_health(fx->s, a, 1);
    assert_true(farm_scheduler_node_sick(fx->s, a));
    assert_ptr_equal(fx->jobs[0].node, a); /* its running job goes on */
    assert_int_equal(farm_scheduler_retry(fx->s, &fx->jobs[0], "disk full on a", 1), 0);
    assert_int_equal(s_count(fx, 'r'), 1);
    assert_int_equal(fx->jobs[0].attempt, 2);
    assert_int_equal(fx->jobs[0].state, FARM_JOB_QUEUED);
    assert_int_equal(farm_scheduler_node_used(fx->s, a), 0);
    /* a is idle and first in farm.yaml, b has a job: the retry still goes to b */
    farm_scheduler_dispatch(fx->s, 1);
    assert_ptr_equal(fx->jobs[0].node, b);
    assert_string_equal(s_nth(fx, 'a', 2)->node, "b");
    assert_int_equal(s_nth(fx, 'a', 2)->attempt, 2);
    assert_int_equal(farm_scheduler_retry(fx->s, &fx->jobs[2], "x", 1), FARM_EINVALID);
    /* b is full: a new job waits rather than go to a */
    s_job(fx, 2, "linux/amd64", 2);
    farm_scheduler_dispatch(fx->s, 2);
    assert_int_equal(fx->jobs[2].state, FARM_JOB_QUEUED);
    assert_int_equal(s_count(fx, 'w'), 0); /* b is live: not "no node" */
    /* drain and undrain leave it unhealthy, out of scheduling */
    farm_scheduler_node_drain(fx->s, a, 1);
    farm_scheduler_node_drain(fx->s, a, 0);
    farm_scheduler_dispatch(fx->s, 3);
    assert_int_equal(fx->jobs[2].state, FARM_JOB_QUEUED);
    /* reconnects keep it out too */
    s_node_down(fx->s, a, "gone", 4);
    assert_int_equal(farm_scheduler_node_up(fx->s, a, 5), 0);
    farm_scheduler_dispatch(fx->s, 5);
    assert_int_equal(fx->jobs[2].state, FARM_JOB_QUEUED);
    farm_scheduler_node_health(fx->s, a, 0);
    farm_scheduler_dispatch(fx->s, 6);
    assert_ptr_equal(fx->jobs[2].node, a);
    s_fx_free(fx);
}

/* The only node of a platform unhealthy: its jobs wait like jobs with no live node (said
 * once), within queue_timeout; healthy again, it takes them. */
static void test_unhealthy_only_node_jobs_wait(void **state)
{
    fx_t *fx = s_fx(Y_TWO, 3);
    farm_node_t *a = s_up(fx, "a", "linux/amd64", 1);
    s_job(fx, 0, "linux/amd64", 0);
    farm_scheduler_dispatch(fx->s, 0);
    assert_ptr_equal(fx->jobs[0].node, a);
    s_job(fx, 1, "linux/amd64", 0); /* queued behind it */
    farm_scheduler_node_health(fx->s, a, 1);
    assert_int_equal(s_count(fx, 'w'), 1); /* job 1 is told no node serves it now */
    assert_int_equal(farm_scheduler_retry(fx->s, &fx->jobs[0], "disk full on a", 1), 0);
    assert_int_equal(s_count(fx, 'w'), 2);
    farm_scheduler_dispatch(fx->s, 1);
    assert_int_equal(fx->jobs[0].state, FARM_JOB_QUEUED);
    assert_int_equal(fx->jobs[1].state, FARM_JOB_QUEUED);
    farm_scheduler_node_health(fx->s, a, 0);
    farm_scheduler_dispatch(fx->s, 2);
    assert_ptr_equal(fx->jobs[0].node, a); /* the retry first, at the front */
    assert_int_equal(fx->jobs[0].attempt, 2);
    farm_scheduler_node_health(fx->s, a, 1);
    farm_scheduler_tick(fx->s, 2 + 10001); /* queue_timeout 10 s */
    assert_int_equal(s_count(fx, 'e'), 1);
    assert_ptr_equal(s_nth(fx, 'e', 0)->job, &fx->jobs[1]);
    s_fx_free(fx);
}

/* The self-check is not vacuous: a job whose state no longer matches the list it is on,
 * or a running job unlinked behind the scheduler's back, is named. */
static void test_self_check_names_broken_bookkeeping(void **state)
{
    fx_t *fx = s_fx(Y_TWO, 2);
    s_up(fx, "a", "linux/amd64", 0);
    s_job(fx, 0, "linux/amd64", 0);
    s_job(fx, 1, "linux/amd64", 0);
    assert_int_equal(farm_scheduler_check(fx->s), 0);
    fx->jobs[1].state = FARM_JOB_RUNNING; /* still in the queue */
    assert_int_equal(farm_scheduler_check(fx->s), FARM_ERROR);
    assert_non_null(strstr(farm_error_last(), "scheduler error: job b1.2 in linux/amd64's queue"));
    fx->jobs[1].state = FARM_JOB_QUEUED;
    farm_scheduler_dispatch(fx->s, 0);
    assert_ptr_not_equal(fx->jobs[0].node, NULL);
    farm_link_remove(&fx->jobs[0].node_link); /* the slot stays counted */
    assert_int_equal(farm_scheduler_check(fx->s), FARM_ERROR);
    assert_non_null(strstr(farm_error_last(), "node a counts 2 used slot(s) but runs 1 job(s)"));
    farm_link_push_back(&fx->jobs[1].node_link, &fx->jobs[0].node_link);
    assert_int_equal(farm_scheduler_check(fx->s), 0);
    s_fx_free(fx);
}

static void test_waiting_said_once_per_attempt(void **state)
{
    fx_t *fx = s_fx(Y_EMU, 2);
    s_job(fx, 0, "linux/arm/v7", 0);
    s_job(fx, 1, "linux/arm/v7", 0);
    farm_scheduler_dispatch(fx->s, 0);
    farm_scheduler_dispatch(fx->s, 1);
    assert_int_equal(s_count(fx, 'w'), 2);
    assert_int_equal(s_count(fx, 'a'), 0);
    /* an emulated node alone serves it */
    farm_node_t *x86 = s_up(fx, "x86", "linux/amd64,linux/arm/v7", 1);
    farm_scheduler_dispatch(fx->s, 2);
    assert_int_equal(s_count(fx, 'a'), 1);
    assert_string_equal(s_nth(fx, 'a', 0)->node, "x86");
    /* the only node dies: the requeued attempt and the queued job say waiting (again for
     * the first: a new attempt), nothing twice for the same attempt */
    farm_nodes_lose(fx->nodes, x86);
    farm_scheduler_node_down(fx->s, x86, "lost", 3);
    farm_scheduler_dispatch(fx->s, 3);
    assert_int_equal(s_count(fx, 'w'), 3);
    assert_ptr_equal(s_nth(fx, 'w', 2)->job, &fx->jobs[0]);
    assert_int_equal(s_nth(fx, 'w', 2)->attempt, 2);
    s_fx_free(fx);
}

static void test_results_count_only_from_the_running_attempt(void **state)
{
    fx_t *fx = s_fx(Y_TWO, 1);
    farm_node_t *a = s_up(fx, "a", "linux/amd64", 1);
    farm_node_t *b = s_up(fx, "b", "linux/amd64", 1);
    s_job(fx, 0, "linux/amd64", 0);
    farm_scheduler_dispatch(fx->s, 0);
    assert_ptr_equal(fx->jobs[0].node, a);
    assert_ptr_equal(farm_scheduler_running(fx->s, a, "b1.1", 1), &fx->jobs[0]);
    assert_null(farm_scheduler_running(fx->s, b, "b1.1", 1));  /* another node */
    assert_null(farm_scheduler_running(fx->s, a, "b1.1", 2));  /* another attempt */
    assert_null(farm_scheduler_running(fx->s, a, "b9.9", 1));  /* unknown job */
    farm_nodes_lose(fx->nodes, a);
    farm_scheduler_node_down(fx->s, a, "silent", 1);
    farm_scheduler_dispatch(fx->s, 1);
    assert_ptr_equal(fx->jobs[0].node, b);
    /* attempt 1's late result, from a, no longer counts; attempt 2 on b does */
    assert_null(farm_scheduler_running(fx->s, a, "b1.1", 1));
    assert_null(farm_scheduler_running(fx->s, b, "b1.1", 1));
    assert_ptr_equal(farm_scheduler_running(fx->s, b, "b1.1", 2), &fx->jobs[0]);
    assert_int_equal(farm_scheduler_node_used(fx->s, a), 0);
    s_fx_free(fx);
}

static void test_timeouts(void **state)
{
    fx_t *fx = s_fx(Y_TWO, 3);
    farm_node_t *a = s_up(fx, "a", "linux/amd64", 1);
    s_job(fx, 0, "linux/amd64", 0);
    farm_scheduler_dispatch(fx->s, 0);
    s_job(fx, 1, "linux/amd64", 1000);
    s_job(fx, 2, "linux/amd64", 5000);
    /* queue_timeout 10 s: job 1 expires at 11 s, job 2 not yet */
    farm_scheduler_tick(fx->s, 11001);
    assert_int_equal(s_count(fx, 'e'), 1);
    assert_ptr_equal(s_nth(fx, 'e', 0)->job, &fx->jobs[1]);
    assert_int_equal(farm_scheduler_queued(fx->s), 1);
    /* job_timeout 60 s: the running attempt is cancelled on its node and expires */
    farm_scheduler_tick(fx->s, 60001);
    assert_int_equal(s_count(fx, 'c'), 1);
    assert_string_equal(s_nth(fx, 'c', 0)->node, "a");
    assert_ptr_equal(s_nth(fx, 'e', 1)->job, &fx->jobs[0]);
    assert_int_equal(farm_scheduler_node_used(fx->s, a), 0);
    s_fx_free(fx);
}

static void test_withdraw(void **state)
{
    fx_t *fx = s_fx(Y_TWO, 2);
    farm_node_t *a = s_up(fx, "a", "linux/amd64", 1);
    s_job(fx, 0, "linux/amd64", 0);
    s_job(fx, 1, "linux/amd64", 0);
    farm_scheduler_dispatch(fx->s, 0);
    farm_scheduler_withdraw(fx->s, &fx->jobs[1], "build failed"); /* queued: silently */
    assert_int_equal(farm_scheduler_queued(fx->s), 0);
    assert_int_equal(s_count(fx, 'c'), 0);
    farm_scheduler_withdraw(fx->s, &fx->jobs[0], "build failed"); /* running: cancelled */
    assert_int_equal(s_count(fx, 'c'), 1);
    assert_int_equal(farm_scheduler_node_used(fx->s, a), 0);
    fx->jobs[0].state = fx->jobs[1].state = FARM_JOB_CANCELLED;
    farm_scheduler_forget(fx->s, &fx->jobs[0]);
    assert_null(farm_scheduler_job(fx->s, "b1.1"));
    assert_ptr_equal(farm_scheduler_job(fx->s, "b1.2"), &fx->jobs[1]);
    s_fx_free(fx);
}

/* Many nodes and many queued jobs: every slot is filled, no node over its slots, and
 * the load stays balanced (no node more than one job ahead of another of equal slots). */
static void test_many_nodes_balanced(void **state)
{
    enum { NODES = 200, JOBS = 5000 };
    char *yaml = malloc(64 * NODES * 2 + 512), *p;
    fx_t *fx;
    assert_non_null(yaml);
    p = yaml + sprintf(yaml, "coordinator: {agents: 'tcp://127.0.0.1:1', clients: 'tcp://127.0.0.1:2'}\n"
                             "platforms:\n  linux/amd64: [");
    for (int i = 0; i < NODES; i++)
        p += sprintf(p, "%sn%d", i ? ", " : "", i);
    p += sprintf(p, "]\nnodes:\n");
    for (int i = 0; i < NODES; i++)
        p += sprintf(p, "  n%d: {slots: 8}\n", i);
    fx = s_fx(yaml, JOBS);
    for (int i = 0; i < NODES; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%d", i);
        s_up(fx, name, "linux/amd64", 0);
    }
    for (size_t i = 0; i < JOBS; i++)
        s_job(fx, i, "linux/amd64", 0);
    assert_int_equal(farm_scheduler_dispatch(fx->s, 0), NODES * 8);
    assert_int_equal(farm_scheduler_queued(fx->s), JOBS - NODES * 8);
    for (int i = 0; i < NODES; i++)
        assert_int_equal(farm_scheduler_node_used(fx->s, farm_nodes_at(fx->nodes, (size_t)i)), 8);
    /* first round: one job per node before any node gets a second */
    for (int i = 0; i < NODES; i++)
        assert_int_equal(fx->jobs[i].node->index, (size_t)i);
    s_fx_free(fx);
    free(yaml);
}

/* ------------------------------------------------------------------ warm nodes */

/* The key of repository (on reg.local), the job's platform and dockerfile. */
static void s_key(farm_job_t *j, const char *repository, const char *dockerfile)
{
    free(j->cache_key);
    assert_int_equal(farm_warm_key(&j->cache_key, &j->cache_key_len, "alice", "reg.local",
                                   repository, j->platform, dockerfile), 0);
}

/* A job of repository "app" (Dockerfile), or of repo when given. */
static farm_job_t *s_kjob(fx_t *fx, size_t i, const char *platform, const char *repo,
                          long long now)
{
    farm_job_t *j = &fx->jobs[i];
    const farm_config_platform_t *cp = farm_config_platform(fx->cfg, platform);
    assert_non_null(cp);
    snprintf(j->platform, sizeof j->platform, "%s", cp->platform);
    s_key(j, repo ? repo : "app", "Dockerfile");
    return s_job(fx, i, platform, now);
}

/* The job's attempt ends well on its node: the node is warm for its key. */
static void s_built(fx_t *fx, farm_job_t *j)
{
    farm_node_t *n = j->node;
    assert_non_null(n);
    farm_scheduler_release(fx->s, j);
    j->state = FARM_JOB_DONE;
    farm_scheduler_job_built(fx->s, j, n);
}

/* Job i runs on node, placed warm (1) or not (0). */
static void s_on(const fx_t *fx, size_t i, const farm_node_t *node, int warm)
{
    assert_int_equal(fx->jobs[i].state, FARM_JOB_RUNNING);
    assert_ptr_equal(fx->jobs[i].node, node);
    assert_int_equal(fx->jobs[i].warm, warm);
}

/* b comes up alone (slots as the agent says, 0: farm.yaml's) and builds app as job 0,
 * so b is warm for it; then a comes up, first in farm.yaml and idle. */
static farm_node_t *s_b_builds_app(fx_t *fx, const char *plats, unsigned b_slots,
                                   farm_node_t **a_out)
{
    farm_node_t *b = s_up(fx, "b", plats, b_slots);
    s_kjob(fx, 0, "linux/amd64", NULL, 0);
    farm_scheduler_dispatch(fx->s, 0);
    s_on(fx, 0, b, 0); /* nothing was warm yet */
    s_built(fx, &fx->jobs[0]);
    *a_out = s_up(fx, "a", plats, 0);
    return b;
}

static const char *Y_WARM =
    "coordinator: {agents: 'tcp://127.0.0.1:1', clients: 'tcp://127.0.0.1:2',"
    " cache_wait: 3s}\n"
    "platforms:\n  linux/amd64: [a, b]\n  linux/arm64: [a, b]\n"
    "nodes:\n  a: {slots: 1}\n  b: {slots: 2}\n";

/* b builds app first (a is not up yet); later a is idle and first in farm.yaml, yet the
 * jobs of app go to b while it has a free slot. */
static void test_warm_node_takes_its_key_again(void **state)
{
    fx_t *fx = s_fx(Y_WARM, 4);
    farm_node_t *a;
    farm_node_t *b = s_b_builds_app(fx, "linux/amd64,linux/arm64", 0, &a);
    s_kjob(fx, 1, "linux/amd64", NULL, 10);
    farm_scheduler_dispatch(fx->s, 10);
    assert_string_equal(s_nth(fx, 'a', 1)->node, "b");
    assert_int_equal(fx->jobs[1].warm, 1);
    /* b runs one of its two slots; a is idle (least loaded) but b still has room */
    s_kjob(fx, 2, "linux/amd64", NULL, 20);
    farm_scheduler_dispatch(fx->s, 20);
    assert_string_equal(s_nth(fx, 'a', 2)->node, "b");
    assert_int_equal(fx->jobs[2].warm, 1);
    assert_int_equal(farm_scheduler_node_used(fx->s, b), 2);
    assert_int_equal(farm_scheduler_wake_at(fx->s), -1);
    s_fx_free(fx);
}

/* The warm node is busy: the job waits for it, at most cache_wait from when a cold node
 * was free for it, then the least loaded node takes it; a warm node that frees in time
 * gets it. */
static void test_busy_warm_node_is_waited_for_up_to_cache_wait(void **state)
{
    fx_t *fx = s_fx(Y_WARM, 6);
    farm_node_t *a;
    farm_node_t *b = s_b_builds_app(fx, "linux/amd64", 1, &a);
    s_kjob(fx, 1, "linux/amd64", NULL, 100); /* takes b, its only slot */
    farm_scheduler_dispatch(fx->s, 100);
    assert_ptr_equal(fx->jobs[1].node, b);
    /* job 2 waits for b although a is free */
    s_kjob(fx, 2, "linux/amd64", NULL, 1000);
    assert_int_equal(farm_scheduler_dispatch(fx->s, 1000), 0);
    assert_int_equal(fx->jobs[2].state, FARM_JOB_QUEUED);
    assert_int_equal(farm_scheduler_wake_at(fx->s), 4000);
    assert_int_equal(farm_scheduler_node_used(fx->s, a), 0);
    farm_scheduler_dispatch(fx->s, 3999);
    assert_int_equal(fx->jobs[2].state, FARM_JOB_QUEUED);
    /* cache_wait is over: a takes it, cold */
    farm_scheduler_dispatch(fx->s, 4000);
    s_on(fx, 2, a, 0);
    assert_int_equal(farm_scheduler_wake_at(fx->s), -1);

    /* both nodes built app now (b most recently): the next job goes to b, the one after
     * to a, both warm; the third waits for whichever frees first, before cache_wait */
    s_built(fx, &fx->jobs[2]);
    s_built(fx, &fx->jobs[1]);
    s_kjob(fx, 3, "linux/amd64", NULL, 5000);
    s_kjob(fx, 4, "linux/amd64", NULL, 5000);
    s_kjob(fx, 5, "linux/amd64", NULL, 5000);
    assert_int_equal(farm_scheduler_dispatch(fx->s, 5000), 2);
    assert_ptr_equal(fx->jobs[3].node, b);
    assert_ptr_equal(fx->jobs[4].node, a);
    assert_int_equal(fx->jobs[3].warm + fx->jobs[4].warm, 2);
    assert_int_equal(fx->jobs[5].state, FARM_JOB_QUEUED);
    farm_scheduler_release(fx->s, &fx->jobs[4]); /* failed, say: a is free again */
    fx->jobs[4].state = FARM_JOB_FAILED;
    farm_scheduler_dispatch(fx->s, 5100);
    s_on(fx, 5, a, 1);
    s_fx_free(fx);
}

/* A job queued while every node is busy starts its cache wait only when a cold node is
 * free for it: cache_wait bounds how long that node idles, not how long the job queued. */
static void test_cache_wait_counts_from_a_free_cold_node(void **state)
{
    fx_t *fx = s_fx(Y_WARM, 4);
    farm_node_t *a;
    farm_node_t *b = s_b_builds_app(fx, "linux/amd64", 1, &a);
    s_kjob(fx, 1, "linux/amd64", NULL, 10);
    s_kjob(fx, 2, "linux/amd64", "other", 10);
    s_kjob(fx, 3, "linux/amd64", NULL, 10);
    farm_scheduler_dispatch(fx->s, 10);
    s_on(fx, 1, b, 1);
    s_on(fx, 2, a, 0);
    assert_int_equal(farm_scheduler_wake_at(fx->s), -1); /* no free node: no wait yet */
    farm_scheduler_release(fx->s, &fx->jobs[2]);
    fx->jobs[2].state = FARM_JOB_DONE;
    farm_scheduler_dispatch(fx->s, 2000);                /* a is free from now */
    assert_int_equal(fx->jobs[3].state, FARM_JOB_QUEUED);
    assert_int_equal(farm_scheduler_wake_at(fx->s), 5000);
    farm_scheduler_dispatch(fx->s, 5000);
    s_on(fx, 3, a, 0);
    s_fx_free(fx);
}

/* The head of the queue waits for its busy warm node; the job behind it, of another
 * repository, is not held up and takes the free node at once. */
static void test_waiting_job_does_not_block_the_queue(void **state)
{
    fx_t *fx = s_fx(Y_WARM, 4);
    farm_node_t *a;
    farm_node_t *b = s_b_builds_app(fx, "linux/amd64", 1, &a);
    s_kjob(fx, 1, "linux/amd64", NULL, 10);
    farm_scheduler_dispatch(fx->s, 10);
    assert_ptr_equal(fx->jobs[1].node, b);
    s_kjob(fx, 2, "linux/amd64", NULL, 20);          /* app: waits for b */
    s_kjob(fx, 3, "linux/amd64", "other", 20);       /* behind it: takes a now */
    assert_int_equal(farm_scheduler_dispatch(fx->s, 20), 1);
    assert_int_equal(fx->jobs[2].state, FARM_JOB_QUEUED);
    s_on(fx, 3, a, 0);
    /* b frees before the wait ends: the waiting job goes there, warm */
    s_built(fx, &fx->jobs[1]);
    farm_scheduler_dispatch(fx->s, 30);
    s_on(fx, 2, b, 1);
    assert_int_equal(farm_scheduler_wake_at(fx->s), -1);
    assert_int_equal(farm_scheduler_queued(fx->s), 0);
    s_fx_free(fx);
}

/* No more jobs of a platform wait than the busy warm nodes have slots: with b's one slot
 * taken and one job of app waiting for it, the next job of app takes the free node. */
static void test_waits_are_bounded_by_the_warm_slots(void **state)
{
    fx_t *fx = s_fx(Y_WARM, 4);
    farm_node_t *a;
    farm_node_t *b = s_b_builds_app(fx, "linux/amd64", 1, &a);
    s_kjob(fx, 1, "linux/amd64", NULL, 10);
    s_kjob(fx, 2, "linux/amd64", NULL, 10);
    s_kjob(fx, 3, "linux/amd64", NULL, 10);
    assert_int_equal(farm_scheduler_dispatch(fx->s, 10), 2);
    assert_ptr_equal(fx->jobs[1].node, b);
    assert_int_equal(fx->jobs[2].state, FARM_JOB_QUEUED); /* waits for b */
    s_on(fx, 3, a, 0); /* does not */
    s_fx_free(fx);
}

/* A warm node that is lost or drained is not waited for: the job goes to the least
 * loaded node at the next dispatch, long before cache_wait ends. */
static void test_lost_or_drained_warm_node_is_not_waited_for(void **state)
{
    for (int lose = 0; lose < 2; lose++) {
        fx_t *fx = s_fx(Y_WARM, 3);
        farm_node_t *a;
        farm_node_t *b = s_b_builds_app(fx, "linux/amd64", 1, &a);
        s_kjob(fx, 1, "linux/amd64", NULL, 10);
        farm_scheduler_dispatch(fx->s, 10);
        s_kjob(fx, 2, "linux/amd64", NULL, 20);
        farm_scheduler_dispatch(fx->s, 20);
        assert_int_equal(fx->jobs[2].state, FARM_JOB_QUEUED); /* waits for b */
        if (lose) {
            farm_nodes_lose(fx->nodes, b);
            farm_scheduler_node_down(fx->s, b, "lost", 30);
        } else {
            farm_scheduler_node_drain(fx->s, b, 1);
        }
        farm_scheduler_dispatch(fx->s, 30);
        s_on(fx, 2, a, 0);
        if (lose) /* job 1 was requeued (in front): it waits for a, no warm node is alive */
            assert_int_equal(fx->jobs[1].state, FARM_JOB_QUEUED);
        assert_int_equal(farm_scheduler_wake_at(fx->s), -1);
        s_fx_free(fx);
    }
}

/* coordinator.cache_wait: 0 never waits: a busy warm node means the least loaded node. */
static void test_cache_wait_zero_never_waits(void **state)
{
    fx_t *fx = s_fx("coordinator: {agents: 'tcp://127.0.0.1:1', clients: 'tcp://127.0.0.1:2',"
                    " cache_wait: 0}\n"
                    "platforms:\n  linux/amd64: [a, b]\n"
                    "nodes:\n  a: {slots: 1}\n  b: {slots: 1}\n", 3);
    farm_node_t *a;
    farm_node_t *b = s_b_builds_app(fx, "linux/amd64", 0, &a);
    s_kjob(fx, 1, "linux/amd64", NULL, 10);
    s_kjob(fx, 2, "linux/amd64", NULL, 10);
    assert_int_equal(farm_scheduler_dispatch(fx->s, 10), 2);
    s_on(fx, 1, b, 1); /* still preferred while it has room */
    s_on(fx, 2, a, 0);
    assert_int_equal(farm_scheduler_wake_at(fx->s), -1);
    s_fx_free(fx);
}

/* Another repository, platform or Dockerfile is not warm on the node that built app. */
static void test_other_repository_platform_or_dockerfile_is_not_warm(void **state)
{
    fx_t *fx = s_fx(Y_WARM, 4);
    farm_node_t *a;
    farm_node_t *b = s_b_builds_app(fx, "linux/amd64,linux/arm64", 0, &a);
    /* each alone, so a (first in farm.yaml, idle) is the least loaded choice */
    s_kjob(fx, 1, "linux/amd64", "other", 10);
    farm_scheduler_dispatch(fx->s, 10);
    s_on(fx, 1, a, 0);
    farm_scheduler_release(fx->s, &fx->jobs[1]);
    fx->jobs[1].state = FARM_JOB_DONE;
    s_kjob(fx, 2, "linux/arm64", NULL, 20);
    farm_scheduler_dispatch(fx->s, 20);
    s_on(fx, 2, a, 0);
    farm_scheduler_release(fx->s, &fx->jobs[2]);
    fx->jobs[2].state = FARM_JOB_DONE;
    s_kjob(fx, 3, "linux/amd64", NULL, 30);
    s_key(&fx->jobs[3], "app", "other.Dockerfile");
    farm_scheduler_dispatch(fx->s, 30);
    s_on(fx, 3, a, 0);
    assert_int_equal(farm_scheduler_node_used(fx->s, b), 0);
    s_fx_free(fx);
}

/* An emulated node's build makes nothing warm: it is used only while no native node lives. */
static void test_emulated_build_is_not_warm(void **state)
{
    fx_t *fx = s_fx(Y_EMU, 2);
    farm_node_t *x86 = s_up(fx, "x86", "linux/amd64,linux/arm/v7", 0);
    s_kjob(fx, 0, "linux/arm/v7", NULL, 0);
    farm_scheduler_dispatch(fx->s, 0);
    assert_ptr_equal(fx->jobs[0].node, x86);
    s_built(fx, &fx->jobs[0]);
    assert_int_equal(farm_scheduler_warm_keys(fx->s), 0);
    farm_node_t *pi = s_up(fx, "pi", "linux/arm/v7", 0);
    s_kjob(fx, 1, "linux/arm/v7", NULL, 10);
    farm_scheduler_dispatch(fx->s, 10);
    s_on(fx, 1, pi, 0);
    s_fx_free(fx);
}

/* The coordinator remembers at most FARM_WARM_KEYS_MAX keys, the least recently used
 * forgotten first; each key keeps its FARM_WARM_NODES most recent nodes. */
static void test_warm_keys_are_bounded(void **state)
{
    enum { EXTRA = 5 };
    fx_t *fx = s_fx(Y_WARM, 3);
    farm_node_t *b = s_up(fx, "b", "linux/amd64", 0);
    farm_job_t k = {0};
    char repo[32];

    snprintf(k.platform, sizeof k.platform, "linux/amd64");
    for (int i = 0; i < FARM_WARM_KEYS_MAX + EXTRA; i++) {
        snprintf(repo, sizeof repo, "app%d", i);
        s_key(&k, repo, "Dockerfile");
        farm_scheduler_job_built(fx->s, &k, b);
    }
    assert_int_equal(farm_scheduler_warm_keys(fx->s), FARM_WARM_KEYS_MAX);
    s_up(fx, "a", "linux/amd64", 0);
    s_kjob(fx, 0, "linux/amd64", "app0", 10); /* forgotten: least loaded, a */
    farm_scheduler_dispatch(fx->s, 10);
    assert_string_equal(fx->jobs[0].node_name, "a");
    assert_int_equal(fx->jobs[0].warm, 0);
    snprintf(repo, sizeof repo, "app%d", FARM_WARM_KEYS_MAX + EXTRA - 1);
    s_kjob(fx, 1, "linux/amd64", repo, 20);   /* remembered: b */
    farm_scheduler_dispatch(fx->s, 20);
    assert_string_equal(fx->jobs[1].node_name, "b");
    assert_int_equal(fx->jobs[1].warm, 1);
    free(k.cache_key);
    s_fx_free(fx);

    /* per key: the last FARM_WARM_NODES nodes, most recent first */
    farm_warm_t *w = farm_warm_new(2);
    size_t out[FARM_WARM_NODES];
    assert_non_null(w);
    for (size_t n = 0; n < FARM_WARM_NODES + 2; n++)
        assert_int_equal(farm_warm_record(w, "k", 1, n), 0);
    assert_int_equal(farm_warm_record(w, "k", 1, 3), 0); /* again: to the front */
    assert_int_equal(farm_warm_nodes(w, "k", 1, out), FARM_WARM_NODES);
    assert_int_equal(out[0], 3);
    assert_int_equal(out[1], 5);
    assert_int_equal(out[2], 4);
    assert_int_equal(out[3], 2);
    /* LRU: a lookup counts as a use */
    assert_int_equal(farm_warm_record(w, "l", 1, 1), 0);
    assert_int_equal(farm_warm_nodes(w, "k", 1, out), FARM_WARM_NODES);
    assert_int_equal(farm_warm_record(w, "m", 1, 1), 0); /* "l" goes */
    assert_int_equal(farm_warm_size(w), 2);
    assert_int_equal(farm_warm_nodes(w, "l", 1, out), 0);
    assert_int_equal(farm_warm_nodes(w, "k", 1, out), FARM_WARM_NODES);
    farm_warm_destroy(&w);
}

/* A node's new session (HELLO again) with the attempts it holds. */
static int s_rejoin(fx_t *fx, farm_node_t *n, const farm_sched_held_t *held, size_t k,
                    int *adopted, long long now)
{
    char *list[] = {"linux/amd64"};
    farm_hello_t h = {.name = n->cfg->name, .platforms = list, .n_platforms = 1, .slots = 0,
                      .builder = "test", .version = FARM_VERSION,
                      .session = (uint64_t)random() + 1};
    farm_node_t *again = NULL;
    char reason[512];
    assert_true(farm_nodes_hello(fx->nodes, &again, &h, n->cfg->name, strlen(n->cfg->name), now,
                                 reason, sizeof reason) >= 0);
    assert_ptr_equal(again, n);
    return farm_scheduler_node_rejoin(fx->s, n, held, k, adopted, "lost", now);
}

/* A node that reconnects holding its attempts keeps them: no requeue, no second copy;
 * what it no longer holds is queued again as a new attempt; what it holds that is not
 * its own is not adopted. */
static void test_rejoin_adopts_what_the_node_holds(void **state)
{
    fx_t *fx = s_fx(Y_TWO, 3);
    farm_node_t *a = s_up(fx, "a", "linux/amd64", 0);
    farm_sched_held_t held[] = {{"b1.1", 1}, {"b1.2", 7}, {"b9.9", 1}};
    int adopted[3];

    for (size_t i = 0; i < 3; i++)
        s_job(fx, i, "linux/amd64", 0);
    farm_scheduler_dispatch(fx->s, 0); /* 1 and 2 on a (2 slots), 3 queued */
    assert_int_equal(s_count(fx, 'a'), 2);
    assert_int_equal(s_rejoin(fx, a, held, 3, adopted, 5000), 0);
    assert_int_equal(adopted[0], 1);   /* b1.1 attempt 1 runs there: kept */
    assert_int_equal(adopted[1], 0);   /* not that attempt */
    assert_int_equal(adopted[2], 0);   /* unknown job */
    assert_int_equal(fx->jobs[0].state, FARM_JOB_RUNNING);
    assert_ptr_equal(fx->jobs[0].node, a);
    assert_int_equal(fx->jobs[0].attempt, 1);
    assert_true(fx->jobs[0].started_at == 0); /* job_timeout still counts from the start */
    assert_ptr_equal(farm_scheduler_running(fx->s, a, "b1.1", 1), &fx->jobs[0]);
    /* b1.2 it did not hold: queued again as attempt 2 */
    assert_int_equal(s_count(fx, 'r'), 1);
    assert_ptr_equal(s_nth(fx, 'r', 0)->job, &fx->jobs[1]);
    assert_int_equal(fx->jobs[1].attempt, 2);
    farm_scheduler_dispatch(fx->s, 5000);
    /* one free slot: b1.2 (front of the queue) goes; b1.1 was never sent again */
    assert_int_equal(s_count(fx, 'a'), 3);
    assert_ptr_equal(s_nth(fx, 'a', 2)->job, &fx->jobs[1]);
    assert_int_equal(farm_scheduler_node_used(fx->s, a), 2);
    assert_int_equal(fx->jobs[2].state, FARM_JOB_QUEUED);
    /* job_timeout applies to the adopted attempt from its first start (b1.3 expires in
     * its queue meanwhile; b1.2's attempt 2 started at 5 s has time left) */
    farm_scheduler_tick(fx->s, 60001);
    assert_int_equal(s_count(fx, 'e'), 2);
    assert_true(s_nth(fx, 'e', 0)->job == &fx->jobs[0] || s_nth(fx, 'e', 1)->job == &fx->jobs[0]);
    assert_true(s_nth(fx, 'e', 0)->job != &fx->jobs[1] && s_nth(fx, 'e', 1)->job != &fx->jobs[1]);
    s_fx_free(fx);
}

/* A node declared lost (its attempt queued again as the next one) that comes back holding
 * the old attempt gets it back while no other node took it; once another node runs it,
 * the old attempt is not adopted (the caller cancels it). */
static void test_rejoin_takes_back_a_requeued_attempt(void **state)
{
    fx_t *fx = s_fx(Y_TWO, 2);
    farm_node_t *a = s_up(fx, "a", "linux/amd64", 1);
    farm_node_t *b = NULL;
    farm_sched_held_t held[] = {{"b1.1", 1}, {"b1.2", 1}};
    int adopted[2];

    s_job(fx, 0, "linux/amd64", 0);
    farm_scheduler_dispatch(fx->s, 0);
    assert_ptr_equal(fx->jobs[0].node, a);
    farm_nodes_lose(fx->nodes, a);
    farm_scheduler_node_down(fx->s, a, "silent", 3000);
    farm_scheduler_dispatch(fx->s, 3000); /* no other node: it waits as attempt 2 */
    assert_int_equal(fx->jobs[0].state, FARM_JOB_QUEUED);
    assert_int_equal(fx->jobs[0].attempt, 2);
    assert_int_equal(s_rejoin(fx, a, held, 1, adopted, 4000), 0);
    assert_int_equal(adopted[0], 1);
    assert_int_equal(fx->jobs[0].state, FARM_JOB_RUNNING);
    assert_int_equal(fx->jobs[0].attempt, 1);
    assert_ptr_equal(fx->jobs[0].node, a);
    assert_int_equal(farm_scheduler_queued(fx->s), 0);
    assert_int_equal(farm_scheduler_node_used(fx->s, a), 1);
    farm_scheduler_dispatch(fx->s, 4000);
    assert_int_equal(s_count(fx, 'a'), 1); /* never sent again */

    /* the second job: lost with a, re-dispatched on b, then a comes back with it */
    farm_scheduler_release(fx->s, &fx->jobs[0]);
    fx->jobs[0].state = FARM_JOB_DONE;
    s_job(fx, 1, "linux/amd64", 5000);
    farm_scheduler_dispatch(fx->s, 5000);
    assert_ptr_equal(fx->jobs[1].node, a);
    farm_nodes_lose(fx->nodes, a);
    farm_scheduler_node_down(fx->s, a, "silent", 8000);
    b = s_up(fx, "b", "linux/amd64", 1);
    farm_scheduler_dispatch(fx->s, 8000);
    assert_ptr_equal(fx->jobs[1].node, b);
    assert_int_equal(fx->jobs[1].attempt, 2);
    assert_int_equal(s_rejoin(fx, a, held + 1, 1, adopted, 9000), 0);
    assert_int_equal(adopted[0], 0);
    assert_ptr_equal(fx->jobs[1].node, b);
    assert_int_equal(fx->jobs[1].attempt, 2);
    /* a done job is not adopted either */
    assert_int_equal(s_rejoin(fx, a, held, 1, adopted, 9500), 0);
    assert_int_equal(adopted[0], 0);
    s_fx_free(fx);
}

/* A restarted coordinator parks the jobs its journal says ran on nodes: none is sent
 * anywhere while it waits; the node's HELLO holding the attempt adopts it (job_timeout
 * still from its start), one the node no longer holds goes to the front of the queue as
 * the next attempt at once, and one whose node never comes back at the end of its wait. */
static void test_parked_jobs_wait_for_their_node(void **state)
{
    fx_t *fx = s_fx(Y_TWO, 4);
    farm_node_t *a = farm_nodes_by_name(fx->nodes, "a"), *b;
    farm_sched_held_t held[] = {{"b1.1", 3}, {"b9.9", 1}};
    int adopted[2];
    const char *nodes[] = {"a", "a", "b"};
    unsigned attempts[] = {3, 1, 2};

    for (size_t i = 0; i < 3; i++) {
        farm_job_t *j = &fx->jobs[i];
        snprintf(j->id, sizeof j->id, "b1.%zu", i + 1);
        snprintf(j->platform, sizeof j->platform, "linux/amd64");
        snprintf(j->node_name, sizeof j->node_name, "%s", nodes[i]);
        j->attempt = attempts[i];
        j->state = FARM_JOB_RUNNING; /* as the journal had it */
        j->started_at = -2000;
        assert_int_equal(farm_scheduler_park(fx->s, j, 10000 + (long long)i), 0);
        s_checked(fx->s);
        assert_int_equal(j->state, FARM_JOB_QUEUED);
    }
    assert_int_equal(farm_scheduler_parked(fx->s), 3);
    assert_int_equal(farm_scheduler_queued(fx->s), 0);
    /* a job with no node to wait for is refused */
    snprintf(fx->jobs[3].id, sizeof fx->jobs[3].id, "b1.4");
    assert_int_equal(farm_scheduler_park(fx->s, &fx->jobs[3], 10000), FARM_EINVALID);
    s_job(fx, 3, "linux/amd64", 0);
    b = s_up(fx, "b", "linux/amd64", 2);
    farm_scheduler_dispatch(fx->s, 100);
    assert_int_equal(s_count(fx, 'a'), 1); /* only the queued one: the parked wait */
    assert_ptr_equal(s_nth(fx, 'a', 0)->job, &fx->jobs[3]);
    assert_ptr_equal(fx->jobs[3].node, b);

    /* a (never seen by this coordinator) says HELLO holding b1.1 attempt 3, not b1.2 */
    assert_int_equal(s_rejoin(fx, a, held, 2, adopted, 2000), 0);
    assert_int_equal(adopted[0], 1);
    assert_int_equal(adopted[1], 0);
    assert_int_equal(fx->jobs[0].state, FARM_JOB_RUNNING);
    assert_ptr_equal(fx->jobs[0].node, a);
    assert_int_equal(fx->jobs[0].attempt, 3);
    assert_ptr_equal(farm_scheduler_running(fx->s, a, "b1.1", 3), &fx->jobs[0]);
    assert_int_equal(s_count(fx, 'r'), 1); /* b1.2: a came back without it */
    assert_ptr_equal(s_nth(fx, 'r', 0)->job, &fx->jobs[1]);
    assert_int_equal(fx->jobs[1].attempt, 2);
    assert_int_equal(farm_scheduler_parked(fx->s), 1);
    farm_scheduler_dispatch(fx->s, 2000);
    assert_ptr_equal(fx->jobs[1].node, a); /* a's free slot */
    assert_int_equal(fx->jobs[2].state, FARM_JOB_QUEUED); /* still b's, though b is up */
    /* b's HELLO was before the restore's end here: its wait ends at 10 s */
    farm_scheduler_tick(fx->s, 10001);
    assert_int_equal(farm_scheduler_parked(fx->s), 1);
    farm_scheduler_tick(fx->s, 10002);
    assert_int_equal(farm_scheduler_parked(fx->s), 0);
    assert_int_equal(s_count(fx, 'r'), 2);
    assert_int_equal(fx->jobs[2].attempt, 3);
    farm_scheduler_dispatch(fx->s, 10002);
    assert_ptr_equal(fx->jobs[2].node, b);
    /* job_timeout from the adopted attempt's first start (-2 s): expired at 58.001 s */
    farm_scheduler_tick(fx->s, 58001);
    assert_int_equal(s_count(fx, 'e'), 1);
    assert_ptr_equal(s_nth(fx, 'e', 0)->job, &fx->jobs[0]);
    farm_scheduler_release(fx->s, &fx->jobs[1]);
    fx->jobs[1].state = FARM_JOB_DONE;
    /* a parked job withdrawn (its build cancelled) leaves no trace */
    fx->jobs[2].node_name[0] = 'a';
    farm_scheduler_release(fx->s, &fx->jobs[2]);
    fx->jobs[2].state = FARM_JOB_DONE;
    fx->jobs[0].state = FARM_JOB_RUNNING;
    assert_int_equal(farm_scheduler_park(fx->s, &fx->jobs[0], 70000), 0);
    assert_int_equal(farm_scheduler_parked(fx->s), 1);
    farm_scheduler_withdraw(fx->s, &fx->jobs[0], "cancelled");
    assert_int_equal(farm_scheduler_parked(fx->s), 0);
    s_fx_free(fx);
}

/* The coordinator's own pause (SIGSTOP) is not the jobs' time: after pause_gap, a running
 * attempt and a queued job expire that much later, and the order of expiry holds. */
static void test_pause_gap_is_not_the_jobs_time(void **state)
{
    fx_t *fx = s_fx(Y_TWO, 3);
    s_up(fx, "a", "linux/amd64", 1);

    s_job(fx, 0, "linux/amd64", 0);
    s_job(fx, 1, "linux/amd64", 1000);
    farm_scheduler_dispatch(fx->s, 1000); /* 0 runs on a (1 slot); 1 queued */
    assert_int_equal(fx->jobs[0].state, FARM_JOB_RUNNING);
    assert_int_equal(fx->jobs[1].state, FARM_JOB_QUEUED);
    /* stopped for 30 s at 5 s */
    farm_scheduler_pause_gap(fx->s, 30000);
    s_checked(fx->s);
    farm_scheduler_tick(fx->s, 41001); /* queue_timeout 10 s: 1 + 30 + 10 = 41 s */
    assert_int_equal(s_count(fx, 'e'), 1);
    assert_ptr_equal(s_nth(fx, 'e', 0)->job, &fx->jobs[1]);
    farm_scheduler_tick(fx->s, 90000); /* job_timeout 60 s: 1 + 30 + 60 = 91 s */
    assert_int_equal(s_count(fx, 'e'), 1);
    farm_scheduler_tick(fx->s, 91001);
    assert_int_equal(s_count(fx, 'e'), 2);
    assert_ptr_equal(s_nth(fx, 'e', 1)->job, &fx->jobs[0]);
    s_fx_free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_least_loaded_ties_in_farm_yaml_order),
        cmocka_unit_test(test_load_is_a_ratio_of_slots),
        cmocka_unit_test(test_agent_slots_lower_the_configured_ones),
        cmocka_unit_test(test_native_before_emulated),
        cmocka_unit_test(test_emulated_takes_over_when_native_lost),
        cmocka_unit_test(test_requeue_keeps_order),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_waiting_said_once_per_attempt),
        cmocka_unit_test(test_results_count_only_from_the_running_attempt),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_withdraw),
        cmocka_unit_test(test_many_nodes_balanced),
        cmocka_unit_test(test_warm_node_takes_its_key_again),
        cmocka_unit_test(test_busy_warm_node_is_waited_for_up_to_cache_wait),
        cmocka_unit_test(test_cache_wait_counts_from_a_free_cold_node),
        cmocka_unit_test(test_waiting_job_does_not_block_the_queue),
        cmocka_unit_test(test_waits_are_bounded_by_the_warm_slots),
        cmocka_unit_test(test_lost_or_drained_warm_node_is_not_waited_for),
        cmocka_unit_test(test_cache_wait_zero_never_waits),
        cmocka_unit_test(test_other_repository_platform_or_dockerfile_is_not_warm),
        cmocka_unit_test(test_emulated_build_is_not_warm),
        cmocka_unit_test(test_warm_keys_are_bounded),
        cmocka_unit_test(test_rejoin_adopts_what_the_node_holds),
        cmocka_unit_test(test_rejoin_takes_back_a_requeued_attempt),
        cmocka_unit_test(test_parked_jobs_wait_for_their_node),
        cmocka_unit_test(test_pause_gap_is_not_the_jobs_time),
        cmocka_unit_test(test_self_check_names_broken_bookkeeping),
        cmocka_unit_test(test_unhealthy_node_takes_no_job),
        cmocka_unit_test(test_unhealthy_only_node_jobs_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
