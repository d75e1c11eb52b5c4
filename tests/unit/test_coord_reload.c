/* SPDX-License-Identifier: Apache-2.0 */
/* farm.yaml reloaded in a running coordinator: what may change and what is refused by
 * name (farm_config_reload_check), platforms followed by name, the node table (removed
 * nodes leave the names HELLO finds, added ones join, a node listed again comes back),
 * and the scheduler after a reload: its self-check holds after every step, queues keep
 * their order under their platform's new index, running jobs stay, a removed node takes
 * nothing new, an added node takes work, a removed platform's jobs must be out first. */
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

static farm_config_t *s_cfg(const char *yaml)
{
    farm_config_t *cfg = NULL;
    farm_diag_t d = {0};
    if (farm_config_parse(&cfg, "farm.yaml", yaml, strlen(yaml), &d) < 0) {
        for (size_t i = 0; i < d.n; i++)
            fprintf(stderr, "%s\n", d.items[i]);
        fail_msg("config does not parse");
    }
    return cfg;
}

static void s_checked(const farm_scheduler_t *s)
{
    if (farm_scheduler_check(s) < 0)
        fail_msg("%s", farm_error_last());
}

#define HEAD "coordinator: {agents: 'tcp://127.0.0.1:1', clients: 'tcp://127.0.0.1:2'"

/* ------------------------------------------------------------------ config */

static void test_restart_only_settings_are_refused_by_name(void **state)
{
    static const struct {
        const char *head, *name;
    } cases[] = {
        {"coordinator: {agents: 'tcp://127.0.0.1:9', clients: 'tcp://127.0.0.1:2'}\n",
         "coordinator.agents cannot change on reload (tcp://127.0.0.1:1 -> tcp://127.0.0.1:9)"},
        {"coordinator: {agents: 'tcp://127.0.0.1:1', clients: 'tcp://127.0.0.1:3'}\n",
         "coordinator.clients cannot change on reload"},
        {HEAD ", state_dir: /var/tmp/elsewhere}\n", "coordinator.state_dir cannot change"},
        {HEAD ", heartbeat: 2s}\n", "coordinator.heartbeat cannot change on reload (1000 ms "
                                    "-> 2000 ms)"},
        {HEAD ", max_uploads: 3}\n", "coordinator.max_uploads cannot change"},
        {HEAD ", signing_key_file: /etc/farm/signing.key}\n",
         "coordinator.signing_key_file cannot change on reload (not set -> "
         "/etc/farm/signing.key)"},
    };
    const char *body = "platforms:\n  linux/amd64: [a]\nnodes:\n  a: {}\n";
    char yaml[1024];
    farm_config_t *old, *neu;

    snprintf(yaml, sizeof yaml, HEAD "}\n%s", body);
    old = s_cfg(yaml);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(yaml, sizeof yaml, "%s%s", cases[i].head, body);
        neu = s_cfg(yaml);
        assert_int_equal(farm_config_reload_check(old, neu), FARM_EINVALID);
        if (!strstr(farm_error_last(), cases[i].name) ||
            !strstr(farm_error_last(), "restart the coordinator"))
            fail_msg("case %zu: %s", i, farm_error_last());
        farm_config_destroy(&neu);
    }
    /* what may change: nodes, clients, platforms, registries, timeouts */
    neu = s_cfg(HEAD ", job_timeout: 5m, queue_timeout: 1m}\n"
                "platforms:\n  linux/arm64: [b]\n  linux/amd64: [a, b]\n"
                "nodes:\n  a: {slots: 3}\n  b: {}\n"
                "registries:\n  reg.local:5000: {insecure: true}\n");
    assert_int_equal(farm_config_reload_check(old, neu), 0);
    farm_config_destroy(&neu);
    farm_config_destroy(&old);
}

static void test_platforms_map_by_name(void **state)
{
    farm_config_t *old = s_cfg(HEAD "}\nplatforms:\n  linux/amd64: [a]\n  linux/arm64: [a]\n"
                                    "  linux/riscv64: [a]\nnodes:\n  a: {}\n");
    farm_config_t *neu = s_cfg(HEAD "}\nplatforms:\n  linux/s390x: [a]\n  linux/riscv64: [a]\n"
                                    "  linux/amd64: [a]\nnodes:\n  a: {}\n");
    long *map = NULL;

    assert_int_equal(farm_config_platform_map(&map, old, neu), 0);
    assert_int_equal(map[0], 2);  /* amd64 moved */
    assert_int_equal(map[1], -1); /* arm64 gone */
    assert_int_equal(map[2], 1);  /* riscv64 moved */
    free(map);
    farm_config_destroy(&neu);
    farm_config_destroy(&old);
}

/* ------------------------------------------------------------------ nodes, scheduler */

#define MAX_EV 256

typedef struct {
    char kind; /* a assign, c cancel, w waiting, r requeued, e expired */
    farm_job_t *job;
    char node[FARM_NAME_MAX + 1];
} ev_t;

typedef struct {
    farm_config_t *cfg;
    farm_nodes_t *nodes;
    farm_scheduler_t *s;
    ev_t ev[MAX_EV];
    size_t n_ev;
    farm_job_t jobs[16];
} fx_t;

static void s_rec(fx_t *fx, char kind, farm_job_t *job, const farm_node_t *node)
{
    assert_true(fx->n_ev < MAX_EV);
    fx->ev[fx->n_ev] = (ev_t){.kind = kind, .job = job};
    snprintf(fx->ev[fx->n_ev++].node, sizeof fx->ev[0].node, "%s", node ? node->cfg->name : "");
}

static void cb_assign(void *a, farm_job_t *j, farm_node_t *n) { s_rec(a, 'a', j, n); }
static void cb_cancel(void *a, farm_job_t *j, farm_node_t *n, const char *r) { s_rec(a, 'c', j, n); }
static void cb_waiting(void *a, farm_job_t *j) { s_rec(a, 'w', j, NULL); }
static void cb_requeued(void *a, farm_job_t *j, const char *why) { s_rec(a, 'r', j, NULL); }
static void cb_expired(void *a, farm_job_t *j, int running) { s_rec(a, 'e', j, NULL); }

static fx_t *s_fx(const char *yaml)
{
    fx_t *fx = calloc(1, sizeof *fx);
    farm_scheduler_cbs_t cbs = {cb_assign, cb_cancel, cb_waiting, cb_requeued, cb_expired};
    assert_non_null(fx);
    fx->cfg = s_cfg(yaml);
    fx->nodes = farm_nodes_new(fx->cfg);
    fx->s = farm_scheduler_new(fx->cfg, &cbs, fx);
    assert_non_null(fx->nodes);
    assert_non_null(fx->s);
    return fx;
}

static void s_fx_free(fx_t *fx)
{
    farm_scheduler_destroy(&fx->s);
    farm_nodes_destroy(&fx->nodes);
    farm_config_destroy(&fx->cfg);
    free(fx);
}

static farm_hello_outcome_t s_hello(fx_t *fx, farm_node_t **n, const char *name,
                                    const char *plats, char *reason)
{
    char buf[256], *save = NULL, *list[8];
    farm_hello_t h = {.name = name, .platforms = list, .slots = 0, .builder = "test",
                      .version = FARM_VERSION, .session = (uint64_t)random() + 1};
    snprintf(buf, sizeof buf, "%s", plats);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        list[h.n_platforms++] = t;
    return farm_nodes_hello(fx->nodes, n, &h, name, strlen(name), 0, reason, 512);
}

static farm_node_t *s_up(fx_t *fx, const char *name, const char *plats)
{
    farm_node_t *n = NULL;
    char reason[512];
    if (s_hello(fx, &n, name, plats, reason) < 0)
        fail_msg("HELLO of %s refused: %s", name, reason);
    assert_int_equal(farm_scheduler_node_up(fx->s, n, 0), 0);
    s_checked(fx->s);
    return n;
}

static farm_job_t *s_job(fx_t *fx, size_t i, const char *platform)
{
    farm_job_t *j = &fx->jobs[i];
    const farm_config_platform_t *cp = farm_config_platform(fx->cfg, platform);
    assert_non_null(cp);
    snprintf(j->id, sizeof j->id, "b1.%zu", i + 1);
    snprintf(j->platform, sizeof j->platform, "%s", cp->platform);
    j->platform_index = (size_t)(cp - fx->cfg->platforms);
    j->attempt = 1;
    assert_int_equal(farm_scheduler_add(fx->s, j, 0), 0);
    s_checked(fx->s);
    return j;
}

static size_t s_dispatch(fx_t *fx)
{
    size_t n = farm_scheduler_dispatch(fx->s, 0);
    s_checked(fx->s);
    return n;
}

/* What the coordinator's reload does to these two parts: nodes first, then the
 * scheduler, removed nodes drained; the old config freed. */
static int s_reload(fx_t *fx, const char *yaml)
{
    farm_config_t *neu = s_cfg(yaml);
    long *map = NULL;
    int rc;

    assert_int_equal(farm_config_reload_check(fx->cfg, neu), 0);
    assert_int_equal(farm_config_platform_map(&map, fx->cfg, neu), 0);
    for (size_t pi = 0; pi < fx->cfg->n_platforms; pi++)
        if (map[pi] < 0 && farm_scheduler_platform_jobs(fx->s, pi, NULL, 0) > 0) {
            /* the scheduler refuses too, unchanged */
            assert_int_equal(farm_scheduler_reload(fx->s, neu, map,
                                                   farm_nodes_count(fx->nodes)), FARM_EINVALID);
            s_checked(fx->s);
            free(map);
            farm_config_destroy(&neu);
            return FARM_EINVALID;
        }
    assert_int_equal(farm_nodes_reload(fx->nodes, neu, map), 0);
    rc = farm_scheduler_reload(fx->s, neu, map, farm_nodes_count(fx->nodes));
    assert_int_equal(rc, 0);
    for (size_t i = 0; i < farm_nodes_count(fx->nodes); i++) {
        farm_node_t *n = farm_nodes_at(fx->nodes, i);
        farm_scheduler_node_drain(fx->s, n, n->removed);
    }
    s_checked(fx->s);
    free(map);
    farm_config_destroy(&fx->cfg); /* nothing may point into it any more (ASan says) */
    fx->cfg = neu;
    return 0;
}

static const char *Y_AB = HEAD "}\n"
                          "platforms:\n  linux/amd64: [a, b]\n  linux/arm64: [b]\n"
                          "nodes:\n  a: {slots: 1}\n  b: {slots: 1}\n";
/* b removed, c added, the platforms in another order and one more */
static const char *Y_AC = HEAD "}\n"
                          "platforms:\n  linux/riscv64: [c]\n  linux/arm64: [c]\n"
                          "  linux/amd64: [a, c]\n"
                          "nodes:\n  a: {slots: 1}\n  c: {slots: 2}\n";

static void test_nodes_removed_added_and_back(void **state)
{
    fx_t *fx = s_fx(Y_AB);
    farm_node_t *a = s_up(fx, "a", "linux/amd64"), *b = s_up(fx, "b", "linux/amd64,linux/arm64");
    farm_node_t *n = NULL;
    char reason[512];

    assert_int_equal(s_reload(fx, Y_AC), 0);
    /* the records stay where they were: pointers held across the reload are good */
    assert_ptr_equal(farm_nodes_at(fx->nodes, 0), a);
    assert_ptr_equal(farm_nodes_at(fx->nodes, 1), b);
    assert_int_equal(farm_nodes_count(fx->nodes), 3);
    assert_true(b->removed);
    assert_string_equal(b->cfg->name, "b"); /* its own copy: the old file is freed */
    assert_int_equal(b->n_platforms, 2); /* kept (renumbered), should it be listed again */
    assert_int_equal(b->platforms[0].platform_index, 2);
    assert_int_equal(b->platforms[1].platform_index, 1);
    assert_null(farm_nodes_by_name(fx->nodes, "b"));
    assert_non_null(farm_nodes_by_name(fx->nodes, "c"));
    assert_int_equal(farm_nodes_by_name(fx->nodes, "c")->index, 2);
    /* a's amd64 is now the new file's third platform */
    assert_int_equal(a->n_platforms, 1);
    assert_int_equal(a->platforms[0].platform_index, 2);
    /* b's next HELLO is an unknown node's; c is welcome at once, for its new platform too */
    assert_int_equal(s_hello(fx, &n, "b", "linux/amd64", reason), FARM_HELLO_REJECTED);
    assert_non_null(strstr(reason, "node \"b\" is not defined under nodes:"));
    assert_int_equal(s_hello(fx, &n, "c", "linux/riscv64,linux/amd64", reason), FARM_HELLO_NEW);
    assert_int_equal(n->slots, 2);
    assert_int_equal(farm_scheduler_node_up(fx->s, n, 0), 0);
    s_checked(fx->s);
    /* listed again: b is found by name again, the same record */
    assert_int_equal(s_reload(fx, Y_AB), 0);
    assert_false(b->removed);
    assert_ptr_equal(farm_nodes_by_name(fx->nodes, "b"), b);
    /* still connected: it serves its platforms again without a new HELLO */
    assert_int_equal(b->n_platforms, 2);
    assert_true(farm_node_serves(b, 0, NULL) && farm_node_serves(b, 1, NULL));
    s_job(fx, 0, "linux/arm64");
    assert_int_equal(s_dispatch(fx), 1);
    assert_ptr_equal(fx->jobs[0].node, b);
    assert_null(farm_nodes_by_name(fx->nodes, "c"));
    s_fx_free(fx);
}

/* A live node's slots follow farm.yaml's, never above what its agent offered at HELLO. */
static void test_slots_follow_a_reload(void **state)
{
    fx_t *fx = s_fx(HEAD "}\nplatforms:\n  linux/amd64: [a, b]\n"
                         "nodes:\n  a: {slots: 4}\n  b: {slots: 4}\n");
    char *plats[] = {"linux/amd64"}, reason[512];
    farm_hello_t h = {.name = "a", .platforms = plats, .n_platforms = 1, .slots = 2,
                      .builder = "test", .version = FARM_VERSION, .session = 1};
    farm_node_t *a = NULL, *b = NULL;

    assert_int_equal(farm_nodes_hello(fx->nodes, &a, &h, "a", 1, 0, reason, sizeof reason),
                     FARM_HELLO_NEW);
    h.name = "b";
    h.slots = 6; /* more than farm.yaml's 4 */
    h.session = 2;
    assert_int_equal(farm_nodes_hello(fx->nodes, &b, &h, "b", 1, 0, reason, sizeof reason),
                     FARM_HELLO_NEW);
    assert_int_equal(farm_scheduler_node_up(fx->s, a, 0), 0);
    assert_int_equal(farm_scheduler_node_up(fx->s, b, 0), 0);
    assert_int_equal(a->slots, 2);
    assert_int_equal(b->slots, 4);
    assert_int_equal(s_reload(fx, HEAD "}\nplatforms:\n  linux/amd64: [a, b]\n"
                                       "nodes:\n  a: {slots: 8}\n  b: {slots: 8}\n"), 0);
    assert_int_equal(a->slots, 2); /* the agent's own bound */
    assert_int_equal(b->slots, 6);
    assert_int_equal(s_reload(fx, HEAD "}\nplatforms:\n  linux/amd64: [a, b]\n"
                                       "nodes:\n  a: {slots: 1}\n  b: {slots: 1}\n"), 0);
    assert_int_equal(a->slots, 1);
    assert_int_equal(b->slots, 1);
    s_fx_free(fx);
}

static void test_scheduler_follows_a_reload(void **state)
{
    fx_t *fx = s_fx(Y_AB);
    farm_node_t *b = s_up(fx, "b", "linux/amd64,linux/arm64");
    farm_node_t *a, *c;
    size_t before;

    /* b runs amd64 job 1; jobs 2 and 3 (amd64) and 4 (arm64) wait */
    s_job(fx, 0, "linux/amd64");
    assert_int_equal(s_dispatch(fx), 1);
    assert_ptr_equal(fx->jobs[0].node, b);
    s_job(fx, 1, "linux/amd64");
    s_job(fx, 2, "linux/amd64");
    s_job(fx, 3, "linux/arm64");
    assert_int_equal(s_dispatch(fx), 0);
    a = s_up(fx, "a", "linux/amd64");
    (void)a;
    before = fx->n_ev;
    /* no dispatch yet: a reload with queued jobs and a running one */
    assert_int_equal(s_reload(fx, Y_AC), 0);
    assert_int_equal(fx->jobs[0].state, FARM_JOB_RUNNING);
    assert_ptr_equal(fx->jobs[0].node, b);
    assert_int_equal(fx->jobs[0].platform_index, 2);
    assert_int_equal(fx->jobs[1].platform_index, 2);
    assert_int_equal(fx->jobs[3].platform_index, 1);
    assert_int_equal(farm_scheduler_queued(fx->s), 3);
    /* a takes the first queued amd64 job, in queue order; b (removed) takes nothing */
    assert_int_equal(s_dispatch(fx), 1);
    assert_ptr_equal(fx->jobs[1].node, farm_nodes_by_name(fx->nodes, "a"));
    for (size_t i = before; i < fx->n_ev; i++)
        assert_string_not_equal(fx->ev[i].node, "b");
    /* b finishes its job and still takes nothing */
    farm_scheduler_release(fx->s, &fx->jobs[0]);
    fx->jobs[0].state = FARM_JOB_DONE;
    s_checked(fx->s);
    assert_int_equal(s_dispatch(fx), 0);
    assert_int_equal(farm_scheduler_node_used(fx->s, b), 0);
    /* c says HELLO: it takes amd64 job 3 and arm64 job 4 */
    c = s_up(fx, "c", "linux/amd64,linux/arm64");
    assert_int_equal(s_dispatch(fx), 2);
    assert_ptr_equal(fx->jobs[2].node, c);
    assert_ptr_equal(fx->jobs[3].node, c);
    /* the removed node's loss later changes nothing queued */
    farm_nodes_lose(fx->nodes, b);
    farm_scheduler_node_down(fx->s, b, "gone", 0);
    s_checked(fx->s);
    /* a lost node's job goes back to its platform's queue under the new index */
    farm_nodes_lose(fx->nodes, c);
    farm_scheduler_node_down(fx->s, c, "lost", 0);
    s_checked(fx->s);
    assert_int_equal(fx->jobs[3].state, FARM_JOB_QUEUED);
    assert_int_equal(fx->jobs[3].attempt, 2);
    s_fx_free(fx);
}

/* A job restored from the journal and parked for its node's HELLO follows its platform. */
static void test_parked_job_follows_its_platform(void **state)
{
    fx_t *fx = s_fx(Y_AB);
    farm_job_t *j = &fx->jobs[0], *out[2];

    snprintf(j->id, sizeof j->id, "b1.1");
    snprintf(j->platform, sizeof j->platform, "linux/arm64");
    j->platform_index = 1;
    j->attempt = 1;
    snprintf(j->node_name, sizeof j->node_name, "c");
    assert_int_equal(farm_scheduler_park(fx->s, j, 60000), 0);
    s_checked(fx->s);
    assert_int_equal(farm_scheduler_platform_jobs(fx->s, 1, out, 2), 1);
    assert_ptr_equal(out[0], j);
    assert_int_equal(s_reload(fx, Y_AC), 0); /* linux/arm64 is second there too; amd64 third */
    assert_int_equal(j->platform_index, 1);
    assert_int_equal(s_reload(fx, HEAD "}\nplatforms:\n  linux/arm64: [c]\n"
                                       "nodes:\n  c: {}\n"), 0);
    assert_int_equal(j->platform_index, 0);
    assert_int_equal(farm_scheduler_parked(fx->s), 1);
    /* its node comes back without it: it is queued under the new index and dispatched */
    {
        farm_node_t *c = NULL;
        char reason[512];
        int adopted = 0;
        assert_true(s_hello(fx, &c, "c", "linux/arm64", reason) >= 0);
        assert_int_equal(farm_scheduler_node_rejoin(fx->s, c, NULL, 0, &adopted, "restarted", 0), 0);
        s_checked(fx->s);
    }
    assert_int_equal(farm_scheduler_parked(fx->s), 0);
    assert_int_equal(s_dispatch(fx), 1);
    assert_int_equal(j->state, FARM_JOB_RUNNING);
    s_fx_free(fx);
}

static void test_removed_platform_jobs_must_go_first(void **state)
{
    fx_t *fx = s_fx(Y_AB);
    farm_job_t *out[4];

    s_up(fx, "b", "linux/amd64,linux/arm64");
    s_job(fx, 0, "linux/arm64");
    s_job(fx, 1, "linux/arm64");
    assert_int_equal(s_dispatch(fx), 1); /* b's one slot: job 1 runs, job 2 queued */
    assert_int_equal(farm_scheduler_platform_jobs(fx->s, 1, out, 4), 2);
    assert_ptr_equal(out[0], &fx->jobs[1]); /* queued first, then running */
    assert_ptr_equal(out[1], &fx->jobs[0]);
    /* a file without linux/arm64 while its jobs are in: the scheduler refuses */
    assert_int_equal(s_reload(fx, HEAD "}\nplatforms:\n  linux/amd64: [a, b]\n"
                                       "nodes:\n  a: {}\n  b: {}\n"), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "linux/arm64 is gone from farm.yaml"));
    /* the coordinator withdraws (and fails) them first; then the reload goes through */
    farm_scheduler_withdraw(fx->s, &fx->jobs[0], "platform removed");
    farm_scheduler_withdraw(fx->s, &fx->jobs[1], "platform removed");
    fx->jobs[0].state = fx->jobs[1].state = FARM_JOB_FAILED;
    s_checked(fx->s);
    assert_int_equal(fx->ev[fx->n_ev - 1].kind, 'c'); /* the running one is cancelled */
    assert_int_equal(s_reload(fx, HEAD "}\nplatforms:\n  linux/amd64: [a, b]\n"
                                       "nodes:\n  a: {}\n  b: {}\n"), 0);
    s_job(fx, 2, "linux/amd64");
    assert_int_equal(s_dispatch(fx), 1);
    assert_ptr_equal(fx->jobs[2].node, farm_nodes_by_name(fx->nodes, "b"));
    s_fx_free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_only_settings_are_refused_by_name),
        cmocka_unit_test(test_platforms_map_by_name),
        cmocka_unit_test(test_nodes_removed_added_and_back),
        cmocka_unit_test(test_slots_follow_a_reload),
        cmocka_unit_test(test_scheduler_follows_a_reload),
        cmocka_unit_test(test_parked_job_follows_its_platform),
        cmocka_unit_test(test_removed_platform_jobs_must_go_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
