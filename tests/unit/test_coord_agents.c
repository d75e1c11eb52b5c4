/* SPDX-License-Identifier: Apache-2.0 */
/* The agents' side without a socket (the send function records each message): the
 * JobAssign a job becomes (its own build's logins only, farm.yaml's registry settings),
 * the cancels a HELLO after an outage gets for attempts this coordinator does not run
 * there (before the WELCOME), results acknowledged even when late, a node's own fault
 * (retried once elsewhere, the node unhealthy until it says otherwise), a session the
 * coordinator does not know, and farmctl at the agents' endpoint told where to go. */
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
#include "common/fs.h"
#include "coordinator/agents.h"
#include "coordinator/builds.h"
#include "coordinator/ctxstore.h"
#include "coordinator/nodes.h"
#include "coordinator/scheduler.h"
#include "coordinator/timeserve.h"
#include "coord_fx.h"

#define DIGEST "sha256:0000000000000000000000000000000000000000000000000000000000000000"
#define SENT_MAX 8

/* One message sent, the parts the tests look at. */
typedef struct {
    char rid[16];
    Farm__Envelope__BodyCase body;
    char job_id[128];
    unsigned attempt;
    char text[1024]; /* a cancel's or refusal's reason */
    int rehello;
    /* a JobAssign */
    char build_id[128], platform[64], cache_scope[64];
    uint32_t timeout_ms;
    size_t n_args, n_creds, n_regs;
    char cred_user[64], cred_secret[64], reg_host[64];
    int reg_insecure, reg_farm_creds;
} sent_t;

typedef struct {
    coord_fx_t c;
    farm_ctxstore_t *ctx;
    farm_timeserve_t *ts;
    farm_agents_t *ag;
    sent_t sent[SENT_MAX];
    size_t n_sent;
} fx_t;

static char s_dir[] = "/tmp/farm-test-agents.XXXXXX";

static int cb_send(void *arg, const void *rid, size_t rid_len, Farm__Envelope *env)
{
    fx_t *fx = arg;
    sent_t *t;

    assert_true(fx->n_sent < SENT_MAX);
    t = &fx->sent[fx->n_sent++];
    memset(t, 0, sizeof *t);
    snprintf(t->rid, sizeof t->rid, "%.*s", (int)rid_len, (const char *)rid);
    t->body = env->body_case;
    switch (env->body_case) {
    case FARM__ENVELOPE__BODY_JOB_ASSIGN: {
        const Farm__JobAssign *ja = env->job_assign;
        snprintf(t->job_id, sizeof t->job_id, "%s", ja->job_id);
        t->attempt = ja->attempt;
        snprintf(t->build_id, sizeof t->build_id, "%s", ja->build_id);
        snprintf(t->platform, sizeof t->platform, "%s", ja->platform);
        snprintf(t->cache_scope, sizeof t->cache_scope, "%s", ja->cache_scope);
        t->timeout_ms = ja->timeout_ms;
        t->n_args = ja->n_build_args;
        t->n_creds = ja->n_credentials;
        if (ja->n_credentials) {
            snprintf(t->cred_user, sizeof t->cred_user, "%s", ja->credentials[0]->username);
            snprintf(t->cred_secret, sizeof t->cred_secret, "%s", ja->credentials[0]->secret);
        }
        t->n_regs = ja->n_registries;
        if (ja->n_registries) {
            snprintf(t->reg_host, sizeof t->reg_host, "%s", ja->registries[0]->registry);
            t->reg_insecure = ja->registries[0]->insecure;
            t->reg_farm_creds = ja->registries[0]->farm_credentials;
        }
        break;
    }
    case FARM__ENVELOPE__BODY_JOB_CANCEL:
        snprintf(t->job_id, sizeof t->job_id, "%s", env->job_cancel->job_id);
        t->attempt = env->job_cancel->attempt;
        snprintf(t->text, sizeof t->text, "%s", env->job_cancel->reason);
        break;
    case FARM__ENVELOPE__BODY_JOB_ACK:
        snprintf(t->job_id, sizeof t->job_id, "%s", env->job_ack->job_id);
        t->attempt = env->job_ack->attempt;
        break;
    case FARM__ENVELOPE__BODY_REJECT:
        snprintf(t->text, sizeof t->text, "%s", env->reject->reason);
        t->rehello = env->reject->rehello;
        break;
    case FARM__ENVELOPE__BODY_REFUSED:
        snprintf(t->text, sizeof t->text, "%s", env->refused->reason);
        break;
    default: break;
    }
    return 0;
}

static int s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    char store[sizeof s_dir + 16];

    memcpy(s_dir + sizeof s_dir - 7, "XXXXXX", 6);
    assert_non_null(mkdtemp(s_dir));
    snprintf(store, sizeof store, "%s/contexts", s_dir);
    coord_fx_init(&fx->c, NULL, fx);
    fx->ctx = farm_ctxstore_new(store, 0, 0, 0, NULL, NULL);
    fx->ts = farm_timeserve_new(FARM_TIMESERVE_PER_PEER, FARM_TIMESERVE_TOTAL);
    assert_non_null(fx->ctx);
    assert_non_null(fx->ts);
    fx->ag = farm_agents_new(&(farm_coord_parts_t){fx->c.cfg, fx->c.nodes, fx->c.s, fx->c.b, fx->ctx, NULL, NULL},
                              fx->ts, cb_send,
                             fx);
    assert_non_null(fx->ag);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *fx = *state;
    farm_agents_destroy(&fx->ag);
    assert_null(fx->ag);
    coord_fx_fini(&fx->c);
    farm_ctxstore_destroy(&fx->ctx);
    farm_timeserve_destroy(&fx->ts);
    farm_fs_rmtree(s_dir);
    free(fx);
    return 0;
}

/* A build of owner's for linux/amd64, started and dispatched: its job runs on node a
 * (the fixture's scheduler sends nothing; the tests call farm_agents_assign). */
static farm_job_t *s_running_job(fx_t *fx, const char *owner, const farm_cred_t *cred)
{
    char *tags[] = {"reg.local:5000/team/app:1"}, *plats[] = {"linux/amd64"};
    const char *keys[] = {"VERSION"}, *values[] = {"1"};
    farm_submit_t s = {.tags = tags, .n_tags = 1, .platforms = plats, .n_platforms = 1,
                       .arg_keys = keys, .arg_values = values, .n_args = 1,
                       .context_digest = DIGEST, .context_stored = 1, .context_size = 10,
                       .client = owner, .client_len = strlen(owner), .owner = owner,
                       .creds = cred, .n_creds = cred ? 1 : 0};
    farm_build_t *b = NULL;
    char reason[2048];

    assert_int_equal(farm_builds_submit(fx->c.b, &b, &s, 0, reason, sizeof reason), 0);
    farm_builds_start(fx->c.b, b, 0);
    assert_int_equal(farm_scheduler_dispatch(fx->c.s, 0), 1);
    assert_int_equal(b->jobs[0].state, FARM_JOB_RUNNING);
    return &b->jobs[0];
}

static farm_node_t *s_node_a(fx_t *fx)
{
    farm_node_t *n = farm_nodes_by_name(fx->c.nodes, "a");
    assert_non_null(n);
    return n;
}

static void test_job_assign_carries_its_builds_logins_only(void **state)
{
    fx_t *fx = *state;
    farm_cred_t cred = {.registry = "reg.local:5000", .username = "alice",
                        .secret = "alice-s3cret"};
    farm_job_t *ja = s_running_job(fx, "alice", &cred);
    farm_job_t *jb = s_running_job(fx, "bob", NULL);

    farm_agents_assign(fx->ag, ja, s_node_a(fx));
    farm_agents_assign(fx->ag, jb, s_node_a(fx));
    assert_int_equal(fx->n_sent, 2);
    /* alice's job: her login, farm.yaml's settings for the target, her cache scope */
    assert_int_equal(fx->sent[0].body, FARM__ENVELOPE__BODY_JOB_ASSIGN);
    assert_string_equal(fx->sent[0].rid, "a");
    assert_string_equal(fx->sent[0].build_id, ja->build->id);
    assert_string_equal(fx->sent[0].job_id, ja->id);
    assert_int_equal(fx->sent[0].attempt, ja->attempt);
    assert_string_equal(fx->sent[0].platform, "linux/amd64");
    assert_int_equal(fx->sent[0].n_args, 1);
    assert_int_equal(fx->sent[0].timeout_ms, (uint32_t)fx->c.cfg->job_timeout_ms);
    assert_string_equal(fx->sent[0].cache_scope, "alice");
    assert_int_equal(fx->sent[0].n_creds, 1);
    assert_string_equal(fx->sent[0].cred_user, "alice");
    assert_string_equal(fx->sent[0].cred_secret, "alice-s3cret");
    assert_int_equal(fx->sent[0].n_regs, 1);
    assert_string_equal(fx->sent[0].reg_host, "reg.local:5000");
    assert_true(fx->sent[0].reg_insecure);
    assert_false(fx->sent[0].reg_farm_creds); /* no credentials_for: in farm.yaml */
    /* bob's job on the same node: none of alice's login */
    assert_string_equal(fx->sent[1].job_id, jb->id);
    assert_int_equal(fx->sent[1].n_creds, 0);
    assert_string_equal(fx->sent[1].cred_secret, "");
    assert_string_equal(fx->sent[1].cache_scope, "bob");
    assert_int_equal(farm_scheduler_check(fx->c.s), 0);
}

static void test_cancel_only_to_a_ready_node(void **state)
{
    fx_t *fx = *state;
    farm_job_t *j = s_running_job(fx, "alice", NULL);
    farm_node_t *a = s_node_a(fx);

    farm_agents_cancel(fx->ag, j, a, "cancelled by its client");
    assert_int_equal(fx->n_sent, 1);
    assert_int_equal(fx->sent[0].body, FARM__ENVELOPE__BODY_JOB_CANCEL);
    assert_string_equal(fx->sent[0].job_id, j->id);
    assert_string_equal(fx->sent[0].text, "cancelled by its client");
    farm_nodes_lose(fx->c.nodes, a);
    farm_agents_cancel(fx->ag, j, a, "cancelled by its client");
    assert_int_equal(fx->n_sent, 1); /* a lost node hears nothing */
}

/* After an outage node a says HELLO with a new session, holding its running attempt and
 * one this coordinator never ran: the first is adopted, the second cancelled before the
 * WELCOME, and nothing else is sent. */
static void test_rejoin_adopts_and_cancels_the_rest(void **state)
{
    fx_t *fx = *state;
    farm_job_t *j = s_running_job(fx, "alice", NULL);
    unsigned attempt = j->attempt;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Hello h = FARM__HELLO__INIT;
    Farm__HeldJob held[2] = {FARM__HELD_JOB__INIT, FARM__HELD_JOB__INIT}, *hp[] = {&held[0],
                                                                                   &held[1]};
    char *plats[] = {"linux/amd64"};

    held[0].job_id = j->id;
    held[0].attempt = attempt;
    held[1].job_id = "b9-ffffffffffffffffffffffffffffffff-0";
    held[1].attempt = 3;
    h.name = "a";
    h.platforms = plats;
    h.n_platforms = 1;
    h.slots = 4;
    h.builder = "t";
    h.version = FARM_VERSION;
    h.session = 8; /* the fixture's was 7 */
    h.n_jobs = 2;
    h.jobs = hp;
    env.body_case = FARM__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    farm_agents_message(fx->ag, "a", 1, "", &env);
    assert_int_equal(fx->n_sent, 2);
    assert_int_equal(fx->sent[0].body, FARM__ENVELOPE__BODY_JOB_CANCEL);
    assert_string_equal(fx->sent[0].job_id, "b9-ffffffffffffffffffffffffffffffff-0");
    assert_int_equal(fx->sent[0].attempt, 3);
    assert_non_null(strstr(fx->sent[0].text, "does not run this attempt on this node"));
    assert_int_equal(fx->sent[1].body, FARM__ENVELOPE__BODY_WELCOME);
    /* adopted: the same attempt still runs on a, not queued again */
    assert_int_equal(j->state, FARM_JOB_RUNNING);
    assert_int_equal(j->attempt, attempt);
    assert_non_null(farm_scheduler_running(fx->c.s, s_node_a(fx), j->id, attempt));
    assert_int_equal(farm_scheduler_check(fx->c.s), 0);
    /* too many held jobs: refused, and the node table is left as it was */
    fx->n_sent = 0;
    h.n_jobs = FARM_HELD_JOBS_MAX + 1;
    farm_agents_message(fx->ag, "a", 1, "", &env);
    assert_int_equal(fx->n_sent, 1);
    assert_int_equal(fx->sent[0].body, FARM__ENVELOPE__BODY_REJECT);
    assert_false(fx->sent[0].rehello);
    assert_non_null(strstr(fx->sent[0].text, "held jobs (at most"));
    assert_int_equal(s_node_a(fx)->state, FARM_NODE_READY);
}

/* A result is acknowledged whether it is used or late (the node stops keeping it); an
 * unusable descriptor fails the job naming the node. */
static void test_results_are_acknowledged(void **state)
{
    fx_t *fx = *state;
    farm_job_t *j = s_running_job(fx, "alice", NULL);
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__JobResult r = FARM__JOB_RESULT__INIT;
    Farm__Descriptor d = FARM__DESCRIPTOR__INIT;

    d.digest = "not-a-digest";
    d.platform = "linux/amd64";
    d.media_type = "application/vnd.oci.image.manifest.v1+json";
    r.job_id = j->id;
    r.attempt = j->attempt;
    r.ok = 1;
    r.image = &d;
    r.error = "";
    env.body_case = FARM__ENVELOPE__BODY_JOB_RESULT;
    env.job_result = &r;
    farm_agents_message(fx->ag, "a", 1, "", &env);
    assert_int_equal(fx->n_sent, 1);
    assert_int_equal(fx->sent[0].body, FARM__ENVELOPE__BODY_JOB_ACK);
    assert_string_equal(fx->sent[0].job_id, j->id);
    assert_int_equal(j->state, FARM_JOB_FAILED);
    /* the same result again is late: acknowledged, ignored */
    farm_agents_message(fx->ag, "a", 1, "", &env);
    assert_int_equal(fx->n_sent, 2);
    assert_int_equal(fx->sent[1].body, FARM__ENVELOPE__BODY_JOB_ACK);
    assert_int_equal(j->state, FARM_JOB_FAILED);
    assert_int_equal(farm_scheduler_check(fx->c.s), 0);
}

static void s_result(fx_t *fx, const farm_job_t *j, const char *error, const char *node_fault)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__JobResult r = FARM__JOB_RESULT__INIT;
    r.job_id = (char *)j->id;
    r.attempt = j->attempt;
    r.error = (char *)error;
    r.node_fault = (char *)node_fault;
    env.body_case = FARM__ENVELOPE__BODY_JOB_RESULT;
    env.job_result = &r;
    farm_agents_message(fx->ag, "a", 1, "", &env);
}

static void s_heartbeat(fx_t *fx, const char *unhealthy)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Heartbeat hb = FARM__HEARTBEAT__INIT;
    hb.unhealthy = (char *)unhealthy;
    env.body_case = FARM__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    farm_agents_message(fx->ag, "a", 1, "", &env);
}

/* A result the node says is its own fault makes it unhealthy (no job goes there) and
 * queues the job again as a new attempt; a heartbeat without a cause makes it healthy;
 * a second node fault of the same job fails it with the error. A build's failure (no
 * node_fault) leaves the node healthy. */
static void test_node_fault_retries_once_and_marks_the_node(void **state)
{
    fx_t *fx = *state;
    farm_job_t *j = s_running_job(fx, "alice", NULL);
    farm_node_t *a = s_node_a(fx);

    s_result(fx, j, "No space left on device on node a (buildah build exited with status 1)",
             "disk (builder storage): /b: 0.0 GiB free\n(under --min-free)");
    assert_int_equal(fx->sent[0].body, FARM__ENVELOPE__BODY_JOB_ACK);
    assert_string_equal(a->unhealthy, "disk (builder storage): /b: 0.0 GiB free?(under --min-free)");
    assert_true(farm_scheduler_node_sick(fx->c.s, a));
    assert_int_equal(j->state, FARM_JOB_QUEUED);
    assert_int_equal(j->attempt, 2);
    assert_int_equal(farm_scheduler_dispatch(fx->c.s, 1), 0); /* a is its only node */
    assert_int_equal(farm_scheduler_check(fx->c.s), 0);
    s_heartbeat(fx, "disk (builder storage): /b: 0.0 GiB free");
    assert_true(farm_scheduler_node_sick(fx->c.s, a));
    s_heartbeat(fx, "");
    assert_string_equal(a->unhealthy, "");
    assert_false(farm_scheduler_node_sick(fx->c.s, a));
    assert_int_equal(farm_scheduler_dispatch(fx->c.s, 2), 1);
    assert_int_equal(j->state, FARM_JOB_RUNNING);
    s_result(fx, j, "No space left on device on node a (again)", "disk (builder storage): full");
    assert_int_equal(j->state, FARM_JOB_FAILED);
    assert_non_null(strstr(j->error, "No space left on device on node a (again)"));
    assert_true(farm_scheduler_node_sick(fx->c.s, a));
    s_heartbeat(fx, "");
    /* the build's own failure: not retried, the node stays healthy */
    j = s_running_job(fx, "bob", NULL);
    s_result(fx, j, "step \"RUN false\" failed (exit status 1) on node a (...)", "");
    assert_int_equal(j->state, FARM_JOB_FAILED);
    assert_int_equal(j->attempt, 1);
    assert_false(farm_scheduler_node_sick(fx->c.s, a));
    assert_int_equal(farm_scheduler_check(fx->c.s), 0);
}

static void test_unknown_session_and_wrong_port(void **state)
{
    fx_t *fx = *state;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Heartbeat hb = FARM__HEARTBEAT__INIT;
    Farm__BuildsRequest br = FARM__BUILDS_REQUEST__INIT;

    env.body_case = FARM__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    farm_agents_message(fx->ag, "zz", 2, "", &env);
    assert_int_equal(fx->n_sent, 1);
    assert_string_equal(fx->sent[0].rid, "zz");
    assert_int_equal(fx->sent[0].body, FARM__ENVELOPE__BODY_REJECT);
    assert_true(fx->sent[0].rehello);
    assert_string_equal(fx->sent[0].text, "unknown session; say HELLO again");
    env.body_case = FARM__ENVELOPE__BODY_BUILDS_REQUEST;
    env.builds_request = &br;
    farm_agents_message(fx->ag, "zz", 2, "", &env);
    assert_int_equal(fx->n_sent, 2);
    assert_int_equal(fx->sent[1].body, FARM__ENVELOPE__BODY_REFUSED);
    assert_non_null(strstr(fx->sent[1].text, "farmctl connects to its clients endpoint, "
                                             "coordinator.clients in farm.yaml "
                                             "(tcp://127.0.0.1:2)"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_job_assign_carries_its_builds_logins_only,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_only_to_a_ready_node, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rejoin_adopts_and_cancels_the_rest, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_results_are_acknowledged, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_node_fault_retries_once_and_marks_the_node, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_session_and_wrong_port, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
