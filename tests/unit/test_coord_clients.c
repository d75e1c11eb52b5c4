/* SPDX-License-Identifier: Apache-2.0 */
/* farmctl's requests, answered without a socket (the send function records each reply):
 * the role each request needs, a context served to its uploader's builds only, submit's
 * limits, a drain of an unknown node, which builds and job ids a client is shown, who may
 * follow a build (and the journal's answer for one gone from memory), the follower bound,
 * and that only the submitter's token may send a waiting build's logins again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/config.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "coordinator/builds.h"
#include "coordinator/clients.h"
#include "coordinator/ctxstore.h"
#include "coordinator/journal.h"
#include "coordinator/nodes.h"
#include "coordinator/scheduler.h"
#include "coord_fx.h"

#define ALICE_KEY "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"

/* What the last reply said. */
typedef struct {
    int n;
    Farm__Envelope__BodyCase body;
    char reason[1024];
    char build_id[128];
    int have;
    size_t n_builds;
    char owners[4][64];
    size_t node_jobs; /* job ids shown on node a */
    int send_logins, ok;
    char waiting[1024], state[32], rid[16];
    int refused_to_other; /* a Refused went to another connection than the last reply */
} sent_t;

typedef struct {
    coord_fx_t c;
    farm_ctxstore_t *ctx;
    farm_clients_t *cl;
    sent_t sent;
} fx_t;

static char s_dir[] = "/tmp/farm-test-clients.XXXXXX";
static const char s_bytes[] = "alice's build context";

static int cb_send(void *arg, const void *rid, size_t rid_len, Farm__Envelope *env)
{
    sent_t *t = &((fx_t *)arg)->sent;
    int refused = t->body == FARM__ENVELOPE__BODY_REFUSED && t->n;
    char before[16];
    snprintf(before, sizeof before, "%s", t->rid);
    memset(t, 0, sizeof *t);
    t->n++;
    t->body = env->body_case;
    snprintf(t->rid, sizeof t->rid, "%.*s", (int)rid_len, (const char *)rid);
    t->refused_to_other = refused && strcmp(before, t->rid) != 0;
    switch (env->body_case) {
    case FARM__ENVELOPE__BODY_REFUSED:
        snprintf(t->reason, sizeof t->reason, "%s", env->refused->reason);
        break;
    case FARM__ENVELOPE__BODY_ACCEPTED:
        snprintf(t->build_id, sizeof t->build_id, "%s", env->accepted->build_id);
        break;
    case FARM__ENVELOPE__BODY_CONTEXT_STATUS:
        t->have = env->context_status->have;
        snprintf(t->reason, sizeof t->reason, "%s", env->context_status->error);
        break;
    case FARM__ENVELOPE__BODY_BUILDS_REPLY:
        t->n_builds = env->builds_reply->n_builds;
        for (size_t i = 0; i < t->n_builds && i < 4; i++)
            snprintf(t->owners[i], sizeof t->owners[i], "%s", env->builds_reply->builds[i]->owner);
        break;
    case FARM__ENVELOPE__BODY_FOLLOWING:
        snprintf(t->build_id, sizeof t->build_id, "%s", env->following->build_id);
        snprintf(t->state, sizeof t->state, "%s", env->following->state);
        snprintf(t->waiting, sizeof t->waiting, "%s", env->following->waiting);
        t->send_logins = env->following->send_logins;
        break;
    case FARM__ENVELOPE__BODY_BUILD_DONE:
        snprintf(t->build_id, sizeof t->build_id, "%s", env->build_done->build_id);
        snprintf(t->reason, sizeof t->reason, "%s", env->build_done->error);
        t->ok = env->build_done->ok;
        break;
    case FARM__ENVELOPE__BODY_NODES_REPLY:
        for (size_t i = 0; i < env->nodes_reply->n_nodes; i++)
            if (strcmp(env->nodes_reply->nodes[i]->name, "a") == 0)
                t->node_jobs = env->nodes_reply->nodes[i]->n_jobs;
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
    assert_non_null(fx->ctx);
    fx->cl = farm_clients_new(
        &(farm_coord_parts_t){fx->c.cfg, fx->c.nodes, fx->c.s, fx->c.b, fx->ctx, NULL, NULL}, cb_send, fx);
    assert_non_null(fx->cl);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *fx = *state;
    farm_clients_destroy(&fx->cl);
    coord_fx_fini(&fx->c);
    farm_ctxstore_destroy(&fx->ctx);
    farm_fs_rmtree(s_dir);
    free(fx);
    return 0;
}

static void s_message(fx_t *fx, const farm_client_t *c, Farm__Envelope *env)
{
    fx->sent.n = 0;
    farm_clients_message(fx->cl, c, env);
    assert_int_equal(fx->sent.n, 1); /* every request is answered once */
}

static void s_submit(fx_t *fx, const farm_client_t *c, const char *digest, size_t n_args)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Submit s = FARM__SUBMIT__INIT;
    char *tags[] = {"reg.local:5000/team/app:1"}, *plats[] = {"linux/amd64"};
    Farm__KeyValue *kv = calloc(n_args + 1, sizeof *kv), **kvp = calloc(n_args + 1, sizeof *kvp);

    for (size_t i = 0; i < n_args; i++) {
        farm__key_value__init(&kv[i]);
        kv[i].key = "K";
        kv[i].value = "V";
        kvp[i] = &kv[i];
    }
    s.n_tags = 1;
    s.tags = tags;
    s.n_platforms = 1;
    s.platforms = plats;
    s.context_digest = (char *)digest;
    s.n_build_args = n_args;
    s.build_args = kvp;
    env.body_case = FARM__ENVELOPE__BODY_SUBMIT;
    env.submit = &s;
    s_message(fx, c, &env);
    free(kv);
    free(kvp);
}

static void s_request(fx_t *fx, const farm_client_t *c, Farm__Envelope__BodyCase body)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__NodesRequest nr = FARM__NODES_REQUEST__INIT;
    Farm__BuildsRequest br = FARM__BUILDS_REQUEST__INIT;
    env.body_case = body;
    if (body == FARM__ENVELOPE__BODY_NODES_REQUEST)
        env.nodes_request = &nr;
    else
        env.builds_request = &br;
    s_message(fx, c, &env);
}

/* c uploads s_bytes (offer, one chunk); its digest in out. */
static void s_upload(fx_t *fx, const farm_client_t *c, char out[FARM_DIGEST_STRLEN])
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__ContextOffer off = FARM__CONTEXT_OFFER__INIT;
    Farm__ContextChunk ch = FARM__CONTEXT_CHUNK__INIT;

    farm_digest_buffer(out, s_bytes, sizeof s_bytes - 1);
    off.digest = out;
    off.size = sizeof s_bytes - 1;
    env.body_case = FARM__ENVELOPE__BODY_CONTEXT_OFFER;
    env.context_offer = &off;
    s_message(fx, c, &env);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_CONTEXT_STATUS);
    assert_false(fx->sent.have);
    ch.digest = out;
    ch.data.data = (uint8_t *)s_bytes;
    ch.data.len = sizeof s_bytes - 1;
    env.body_case = FARM__ENVELOPE__BODY_CONTEXT_CHUNK;
    env.context_chunk = &ch;
    s_message(fx, c, &env);
    assert_string_equal(fx->sent.reason, "");
    assert_true(fx->sent.have);
}

static const farm_client_t s_alice = {.rid = "r1", .rid_len = 2, .name = "alice",
                                      .key = ALICE_KEY, .role = FARM_ROLE_SUBMIT};
static const farm_client_t s_bob = {.rid = "r2", .rid_len = 2, .name = "bob",
                                    .key = "S.5KNl4+5+pc=yvcWB=ePs//lK-Zm+pVc&)VGZQ4",
                                    .role = FARM_ROLE_SUBMIT};
static const farm_client_t s_carol = {.rid = "r3", .rid_len = 2, .name = "carol",
                                      .key = "0:2!mJo:y#t7mTNro92/<IFW^FS7R44fE-Ob!766",
                                      .role = FARM_ROLE_READ};
static const farm_client_t s_admin = {.rid = "r4", .rid_len = 2, .name = "ops",
                                      .key = "h#Jp0}jHp+u=n8SCj.!}MMGd4CYB{pO}MoSRdM&N",
                                      .role = FARM_ROLE_ADMIN};

static void test_roles(void **state)
{
    fx_t *fx = *state;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Drain d = FARM__DRAIN__INIT;
    const char *what;

    s_submit(fx, &s_carol, "sha256:00", 0);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_REFUSED);
    assert_string_equal(fx->sent.reason,
                        "client carol has role read; to submit it needs role submit: an admin "
                        "changes clients: carol: role: in t.yaml and reloads farm-coordinator");
    d.node = "a";
    env.body_case = FARM__ENVELOPE__BODY_DRAIN;
    env.drain = &d;
    s_message(fx, &s_alice, &env);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_REFUSED);
    assert_non_null(strstr(fx->sent.reason, "to drain nodes it needs role admin"));
    /* farmctl du and prune: admin only (a submit client is alice) */
    {
        Farm__CacheQuery q = FARM__CACHE_QUERY__INIT;
        env.body_case = FARM__ENVELOPE__BODY_CACHE_QUERY;
        env.cache_query = &q;
        s_message(fx, &s_alice, &env);
        assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_REFUSED);
        assert_non_null(strstr(fx->sent.reason, "to list or prune node caches (farmctl du, "
                                                "prune) it needs role admin"));
    }
    /* a reader may list */
    s_request(fx, &s_carol, FARM__ENVELOPE__BODY_BUILDS_REQUEST);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_BUILDS_REPLY);
    /* what farmctl never sends needs no role here (it is ignored further on) */
    assert_int_equal(farm_clients_needs(FARM__ENVELOPE__BODY_JOB_RESULT, &what), FARM_ROLE_NONE);
    assert_int_equal(farm_clients_needs(FARM__ENVELOPE__BODY_CANCEL, &what), FARM_ROLE_SUBMIT);
    assert_string_equal(what, "cancel builds");
    /* a connection let in with a key a reload has since removed */
    farm_clients_refuse_unenrolled(fx->cl, "r", 1, "6Nv).=U@Q.6g:P{e@rvS=3&7za+7XZf<D{CbgErO");
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_REFUSED);
    assert_string_equal(fx->sent.reason,
                        "key 6Nv).=U@Q.6g:P{e@rvS=3&7za+7XZf<D{CbgErO is no longer enrolled under "
                        "clients: in t.yaml (farm.yaml was reloaded without it); ask the farm's "
                        "admin to enrol it again, or use the key that is enrolled");
}

static void test_submit_limits_and_drain(void **state)
{
    fx_t *fx = *state;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Drain d = FARM__DRAIN__INIT;
    char reason[128];

    s_submit(fx, &s_alice, "sha256:00", FARM_BUILD_ARGS_MAX + 1);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_REFUSED);
    snprintf(reason, sizeof reason, "too many build args (%d; at most %d)",
             FARM_BUILD_ARGS_MAX + 1, FARM_BUILD_ARGS_MAX);
    assert_string_equal(fx->sent.reason, reason);
    d.node = "zz";
    env.body_case = FARM__ENVELOPE__BODY_DRAIN;
    env.drain = &d;
    s_message(fx, &s_admin, &env);
    assert_string_equal(fx->sent.reason, "no node \"zz\" in t.yaml");
    d.node = "a";
    s_message(fx, &s_admin, &env);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_NODES_REPLY);
}

static void test_context_and_builds_are_the_uploaders(void **state)
{
    fx_t *fx = *state;
    char digest[FARM_DIGEST_STRLEN];
    const struct {
        const farm_client_t *c;
        size_t sees;
    } seen[] = {{&s_alice, 1}, {&s_admin, 1}, {&s_bob, 0}, {&s_carol, 0}};

    s_upload(fx, &s_alice, digest);
    /* bob names alice's digest: as if the coordinator did not hold it */
    s_submit(fx, &s_bob, digest, 0);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_REFUSED);
    assert_string_equal(fx->sent.reason,
                        "the coordinator does not hold this context; upload it first");
    s_submit(fx, &s_alice, digest, 1);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_ACCEPTED);
    assert_int_equal(farm_scheduler_dispatch(fx->c.s, 0), 1);

    /* alice and the admin see her build and its job; bob and carol see neither */
    for (size_t i = 0; i < sizeof seen / sizeof seen[0]; i++) {
        s_request(fx, seen[i].c, FARM__ENVELOPE__BODY_BUILDS_REQUEST);
        assert_int_equal(fx->sent.n_builds, seen[i].sees);
        if (seen[i].sees)
            assert_string_equal(fx->sent.owners[0], "alice");
        s_request(fx, seen[i].c, FARM__ENVELOPE__BODY_NODES_REQUEST);
        assert_int_equal(fx->sent.node_jobs, seen[i].sees);
    }

    /* the same rule, by value: a keyless farm's build belongs to its connection */
    {
        farm_build_t b = {.client_len = 2};
        farm_client_t same = {.rid = "r9", .rid_len = 2, .name = "", .role = FARM_ROLE_SUBMIT};
        farm_client_t other = {.rid = "r8", .rid_len = 2, .name = "", .role = FARM_ROLE_SUBMIT};
        memcpy(b.client, "r9", 2);
        assert_true(farm_client_sees(&same, &b));
        assert_false(farm_client_sees(&other, &b));
        other.role = FARM_ROLE_ADMIN;
        assert_true(farm_client_sees(&other, &b));
    }
}

static void s_follow(fx_t *fx, const farm_client_t *c, const char *id, const char *token)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Follow f = FARM__FOLLOW__INIT;
    f.build_id = (char *)id;
    f.submit_token.data = (uint8_t *)token;
    f.submit_token.len = token ? strlen(token) : 0;
    env.body_case = FARM__ENVELOPE__BODY_FOLLOW;
    env.follow = &f;
    farm_clients_message(fx->cl, c, &env);
}

static void s_logins(fx_t *fx, const farm_client_t *c, const char *id, const char *token)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Logins l = FARM__LOGINS__INIT;
    Farm__RegistryCredential cr = FARM__REGISTRY_CREDENTIAL__INIT, *crp[] = {&cr};
    Farm__Secret sec = FARM__SECRET__INIT, *secp[] = {&sec};
    cr.registry = "reg.local:5000";
    cr.username = "alice";
    cr.secret = "pw";
    sec.id = "tok";
    sec.value.data = (uint8_t *)"v";
    sec.value.len = 1;
    l.build_id = (char *)id;
    l.submit_token.data = (uint8_t *)token;
    l.submit_token.len = token ? strlen(token) : 0;
    l.n_credentials = 1;
    l.credentials = crp;
    l.n_secrets = 1;
    l.secrets = secp;
    env.body_case = FARM__ENVELOPE__BODY_LOGINS;
    env.logins = &l;
    farm_clients_message(fx->cl, c, &env);
}

/* Following a build by id: its owner and an admin may, another submit client is told
 * whose it is, an unknown id is refused with why; a finished build answers BuildDone. */
static void test_follow_rights(void **state)
{
    fx_t *fx = *state;
    char digest[FARM_DIGEST_STRLEN], id[128];
    farm_client_t alice2 = s_alice;

    alice2.rid = "r5"; /* another terminal of alice's: `farmctl wait` */
    s_upload(fx, &s_alice, digest);
    s_submit(fx, &s_alice, digest, 0);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_ACCEPTED);
    snprintf(id, sizeof id, "%s", fx->sent.build_id);

    s_follow(fx, &s_bob, id, NULL);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_REFUSED);
    char want[512];
    snprintf(want, sizeof want, "build %s belongs to client alice; client bob may follow only "
             "its own builds (an admin may follow any): ask alice or an admin", id);
    assert_string_equal(fx->sent.reason, want);
    s_follow(fx, &s_carol, id, NULL); /* read: watches nothing of others' */
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_REFUSED);
    s_follow(fx, &s_alice, "b99-00000000000000000000000000000000", NULL);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_REFUSED);
    assert_string_equal(fx->sent.reason, "no build b99-00000000000000000000000000000000 on this "
                        "coordinator: it was pruned, or submitted to another farm");
    s_follow(fx, &s_alice, "b1-\x1b]0;owned\x07", NULL); /* a hostile id: echoed inert */
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_REFUSED);
    assert_null(strchr(fx->sent.reason, '\x1b'));
    assert_null(strchr(fx->sent.reason, '\x07'));

    s_follow(fx, &alice2, id, NULL);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_FOLLOWING);
    assert_string_equal(fx->sent.build_id, id);
    assert_string_equal(fx->sent.state, "queued");
    assert_false(fx->sent.send_logins);
    s_follow(fx, &s_admin, id, NULL);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_FOLLOWING);
    assert_int_equal(farm_builds_get(fx->c.b, id)->n_followers, 3);

    /* every follower hears the end; one that comes later gets it at once */
    fx->sent.n = 0;
    farm_builds_finish(fx->c.b, farm_builds_get(fx->c.b, id), 0, NULL, 0, "it broke", 5);
    /* the builds' done callback (the fixture's does nothing): as the coordinator's */
    farm_clients_done(fx->cl, farm_builds_get(fx->c.b, id), 0, NULL, 0, "it broke");
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_BUILD_DONE);
    s_follow(fx, &s_alice, id, NULL);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_BUILD_DONE);
    assert_string_equal(fx->sent.build_id, id);
    assert_false(fx->sent.ok);
    assert_string_equal(fx->sent.reason, "it broke");
}

/* The ninth follower drops the oldest, which is told how to follow again. */
static void test_follow_drops_oldest(void **state)
{
    fx_t *fx = *state;
    char digest[FARM_DIGEST_STRLEN], id[128], rid[8];
    farm_client_t w = s_alice;

    s_upload(fx, &s_alice, digest);
    s_submit(fx, &s_alice, digest, 0);
    snprintf(id, sizeof id, "%s", fx->sent.build_id);
    for (int i = 0; i < FARM_FOLLOWERS_MAX - 1; i++) {
        snprintf(rid, sizeof rid, "w%d", i);
        w.rid = rid;
        w.rid_len = strlen(rid);
        s_follow(fx, &w, id, NULL);
        assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_FOLLOWING);
        assert_false(fx->sent.refused_to_other);
    }
    w.rid = "w9";
    w.rid_len = 2;
    fx->sent.n = 0;
    fx->sent.body = 0;
    /* the Refused to r1 (the submit, the oldest) goes first, then w9's Following */
    s_follow(fx, &w, id, NULL);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_FOLLOWING);
    assert_string_equal(fx->sent.rid, "w9");
    assert_true(fx->sent.refused_to_other);
    assert_int_equal(farm_builds_get(fx->c.b, id)->n_followers, FARM_FOLLOWERS_MAX);
    assert_memory_equal(farm_builds_get(fx->c.b, id)->followers[0].rid, "w0", 2);
}

/* After a restart a build waits for its submitter: only the follow carrying the Submit's
 * token is asked for the logins; farmctl wait (no token) is told it waits for its
 * submitter and cannot send them; the submitter's Logins put the jobs in the queue. */
static void test_follow_submitter_sends_logins(void **state)
{
    fx_t *fx = *state;
    char digest[FARM_DIGEST_STRLEN], id[128];
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Submit s = FARM__SUBMIT__INIT;
    char *tags[] = {"reg.local:5000/team/app:1"}, *plats[] = {"linux/amd64"};
    farm_client_t back = s_alice, wait = s_alice;
    farm_build_t *b;

    back.rid = "r7"; /* the same farmctl submit on a new connection */
    wait.rid = "r6";
    s_upload(fx, &s_alice, digest);
    s.n_tags = 1;
    s.tags = tags;
    s.n_platforms = 1;
    s.platforms = plats;
    s.context_digest = digest;
    s.submit_token.data = (uint8_t *)"the-token";
    s.submit_token.len = 9;
    env.body_case = FARM__ENVELOPE__BODY_SUBMIT;
    env.submit = &s;
    s_message(fx, &s_alice, &env);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_ACCEPTED);
    snprintf(id, sizeof id, "%s", fx->sent.build_id);
    b = farm_builds_get(fx->c.b, id);
    assert_non_null(b);
    assert_true(b->token_digest[0]);
    farm_builds_await_submitter(fx->c.b, b, 10); /* as a restore does */
    assert_int_equal(farm_scheduler_queued(fx->c.s), 0);

    s_follow(fx, &wait, id, NULL);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_FOLLOWING);
    assert_false(fx->sent.send_logins);
    assert_non_null(strstr(fx->sent.waiting, "waits for its submitter"));
    s_follow(fx, &back, id, "wrong-token");
    assert_false(fx->sent.send_logins);
    s_follow(fx, &s_bob, id, "the-token"); /* bob holds the token but is not alice */
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_REFUSED);
    s_logins(fx, &wait, id, NULL);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_REFUSED);
    assert_non_null(strstr(fx->sent.reason, "only the farmctl submit that sent build"));
    assert_true(b->awaiting_submitter);

    s_follow(fx, &back, id, "the-token");
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_FOLLOWING);
    assert_true(fx->sent.send_logins);
    assert_string_equal(fx->sent.waiting, "");
    s_logins(fx, &back, id, "the-token");
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_FOLLOWING);
    assert_false(fx->sent.send_logins);
    assert_false(b->awaiting_submitter);
    assert_string_equal(farm_build_cred(b, "reg.local:5000")->secret, "pw");
    assert_int_equal(b->flags.n_secrets, 1);
    assert_int_equal(farm_scheduler_queued(fx->c.s), 1);
    assert_int_equal(farm_scheduler_check(fx->c.s), 0);
    /* sent again (a retry): nothing changes, the follower is told the state */
    s_logins(fx, &back, id, "the-token");
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_FOLLOWING);
    assert_int_equal(farm_scheduler_queued(fx->c.s), 1);
}

/* A finished build the coordinator no longer holds in memory is answered from the
 * journal: BuildDone at once to its owner; to another client it is unknown. */
static void test_follow_from_journal(void **state)
{
    fx_t *fx = *state;
    char digest[FARM_DIGEST_STRLEN], id[128], *plats[FARM_PLATFORMS_MAX];
    const char *index = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    farm_journal_t *j = farm_journal_open(s_dir, NULL);
    farm_journal_build_t jb;
    farm_build_t *b;

    if (!j)
        fail_msg("farm_journal_open: %s", farm_error_last());
    s_upload(fx, &s_alice, digest);
    s_submit(fx, &s_alice, digest, 0);
    snprintf(id, sizeof id, "%s", fx->sent.build_id);
    b = farm_builds_get(fx->c.b, id);
    assert_int_equal(farm_journal_build_from(&jb, plats, b, 1), 0);
    jb.created = jb.updated = 1700000000000LL;
    assert_int_equal(farm_journal_put_build(j, &jb, NULL, 0), 0);
    assert_int_equal(farm_journal_finish(j, id, 1, NULL, index, 555, 1700000001000LL), 0);
    farm_builds_finish(fx->c.b, b, 1, index, 555, NULL, 10);
    farm_builds_reap(fx->c.b, 1000000, 0, NULL, NULL);
    assert_null(farm_builds_get(fx->c.b, id));

    s_follow(fx, &s_alice, id, NULL);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_REFUSED); /* no journal given */
    farm_clients_destroy(&fx->cl);
    fx->cl = farm_clients_new(
        &(farm_coord_parts_t){fx->c.cfg, fx->c.nodes, fx->c.s, fx->c.b, fx->ctx, j, NULL}, cb_send, fx);
    assert_non_null(fx->cl);
    s_follow(fx, &s_alice, id, NULL);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_BUILD_DONE);
    assert_string_equal(fx->sent.build_id, id);
    assert_true(fx->sent.ok);
    s_follow(fx, &s_bob, id, NULL);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_REFUSED);
    s_follow(fx, &s_admin, id, NULL);
    assert_int_equal(fx->sent.body, FARM__ENVELOPE__BODY_BUILD_DONE);
    farm_clients_destroy(&fx->cl); /* before the journal it borrows */
    farm_journal_destroy(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roles, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_submit_limits_and_drain, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_context_and_builds_are_the_uploaders, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_follow_rights, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_follow_drops_oldest, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_follow_submitter_sends_logins, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_follow_from_journal, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
