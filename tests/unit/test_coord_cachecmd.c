/* SPDX-License-Identifier: Apache-2.0 */
/* farmctl du and prune through the coordinator (coordinator/cachecmd.h), without sockets:
 * the query goes to each named (or every connected) node, the client's answer waits for
 * every node, names the node from its session (not from what the node says), names a node
 * lost meanwhile or silent past the wait, refuses an unknown node naming the known ones,
 * and after a prune the node is no longer warm for what it emptied (and still is for the
 * rest). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/wire.h"
#include "coord_fx.h"
#include "coordinator/cachecmd.h"
#include "coordinator/warm.h"

typedef struct {
    int to_agent, to_client;
    uint64_t last_request;
    Farm__Envelope *reply; /* the client's, packed and unpacked (a copy) */
} sent_t;

static int s_copy(Farm__Envelope **out, Farm__Envelope *env)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(farm_wire_pack(&buf, &len, &env->base), 0);
    *out = farm__envelope__unpack(NULL, len, buf);
    free(buf);
    return *out ? 0 : -1;
}

static int s_to_agent(void *arg, const void *rid, size_t rid_len, Farm__Envelope *env)
{
    sent_t *s = arg;
    (void)rid;
    (void)rid_len;
    assert_int_equal(env->body_case, FARM__ENVELOPE__BODY_CACHE_QUERY);
    assert_int_equal(env->cache_query->n_nodes, 0);
    s->last_request = env->cache_query->request_id;
    s->to_agent++;
    return 0;
}

static int s_to_client(void *arg, const void *rid, size_t rid_len, Farm__Envelope *env)
{
    sent_t *s = arg;
    assert_int_equal(rid_len, 3);
    assert_memory_equal(rid, "cli", 3);
    assert_int_equal(env->body_case, FARM__ENVELOPE__BODY_CACHE_REPLY);
    if (s->reply)
        farm__envelope__free_unpacked(s->reply, NULL);
    s->to_client++;
    return s_copy(&s->reply, env);
}

static void s_report(farm_cachecmd_t *cc, farm_node_t *node, uint64_t id, const char *scope,
                     const char *kept, long long now)
{
    Farm__CacheReport r = FARM__CACHE_REPORT__INIT;
    Farm__CacheEntry e = FARM__CACHE_ENTRY__INIT, *ep = &e;
    r.request_id = id;
    r.node = "someone-else"; /* the session says who it is, not this */
    e.kind = "builder";
    e.scope = (char *)scope;
    e.platform = "linux/amd64";
    e.size = 1000;
    e.kept = (char *)kept;
    r.entries = &ep;
    r.n_entries = 1;
    r.error = "";
    farm_cachecmd_report(cc, node, &r, now);
}

static void test_du_answered(void **state)
{
    coord_fx_t fx;
    sent_t s = {0};
    Farm__CacheQuery q = FARM__CACHE_QUERY__INIT;
    farm_cachecmd_t *cc;
    farm_node_t *a;
    char reason[512];
    (void)state;

    coord_fx_init(&fx, NULL, NULL);
    a = farm_nodes_by_name(fx.nodes, "a");
    cc = farm_cachecmd_new(fx.nodes, fx.s, s_to_client, s_to_agent, &s, 1000);
    assert_int_equal(farm_cachecmd_request(cc, reason, sizeof reason, "cli", 3, &q, 0), 0);
    assert_int_equal(s.to_agent, 1);
    assert_int_equal(s.to_client, 0); /* waits for the node */
    assert_int_equal(farm_cachecmd_pending(cc), 1);
    /* an answer to another request is not this one's */
    s_report(cc, a, s.last_request + 100, "alice", "", 10);
    assert_int_equal(s.to_client, 0);
    s_report(cc, a, s.last_request, "alice", "", 10);
    assert_int_equal(s.to_client, 1);
    assert_int_equal(farm_cachecmd_pending(cc), 0);
    assert_int_equal(s.reply->cache_reply->n_reports, 1);
    assert_int_equal(s.reply->cache_reply->n_missing, 0);
    assert_string_equal(s.reply->cache_reply->reports[0]->node, "a");
    assert_int_equal(s.reply->cache_reply->reports[0]->entries[0]->size, 1000);
    /* a second answer of the same node changes nothing */
    s_report(cc, a, s.last_request, "alice", "", 20);
    assert_int_equal(s.to_client, 1);
    farm_cachecmd_destroy(&cc);
    farm__envelope__free_unpacked(s.reply, NULL);
    coord_fx_fini(&fx);
}

static void test_refused_and_missing(void **state)
{
    coord_fx_t fx;
    sent_t s = {0};
    Farm__CacheQuery q = FARM__CACHE_QUERY__INIT;
    char *nodes[] = {"a", "zz"};
    farm_cachecmd_t *cc;
    char reason[512];
    (void)state;

    coord_fx_init(&fx, NULL, NULL);
    cc = farm_cachecmd_new(fx.nodes, fx.s, s_to_client, s_to_agent, &s, 1000);
    /* an unknown node: refused, naming the nodes there are; nothing sent */
    q.nodes = nodes;
    q.n_nodes = 2;
    assert_true(farm_cachecmd_request(cc, reason, sizeof reason, "cli", 3, &q, 0) < 0);
    assert_string_equal(reason, "no node \"zz\" in farm.yaml; its nodes are: a");
    assert_int_equal(s.to_agent, 0);
    assert_int_equal(farm_cachecmd_pending(cc), 0);
    /* silent past the wait: named, with the wait */
    q.n_nodes = 1;
    assert_int_equal(farm_cachecmd_request(cc, reason, sizeof reason, "cli", 3, &q, 0), 0);
    farm_cachecmd_tick(cc, 999);
    assert_int_equal(s.to_client, 0);
    farm_cachecmd_tick(cc, 1000);
    assert_int_equal(s.to_client, 1);
    assert_int_equal(s.reply->cache_reply->n_reports, 0);
    assert_int_equal(s.reply->cache_reply->n_missing, 1);
    assert_string_equal(s.reply->cache_reply->missing[0]->node, "a");
    assert_non_null(strstr(s.reply->cache_reply->missing[0]->why, "did not answer within 1 s"));
    /* lost while answering: named at the next tick, not after the wait */
    assert_int_equal(farm_cachecmd_request(cc, reason, sizeof reason, "cli", 3, &q, 2000), 0);
    farm_nodes_lose(fx.nodes, farm_nodes_by_name(fx.nodes, "a"));
    farm_cachecmd_tick(cc, 2001);
    assert_int_equal(s.to_client, 2);
    assert_non_null(strstr(s.reply->cache_reply->missing[0]->why, "lost while answering"));
    /* lost before: answered at once, the node named lost, nothing sent to it */
    s.to_agent = 0;
    q.n_nodes = 0;
    assert_int_equal(farm_cachecmd_request(cc, reason, sizeof reason, "cli", 3, &q, 3000), 0);
    assert_int_equal(s.to_agent, 0);
    assert_int_equal(s.to_client, 3);
    assert_non_null(strstr(s.reply->cache_reply->missing[0]->why, "lost: its agent stopped"));
    farm_cachecmd_destroy(&cc);
    farm__envelope__free_unpacked(s.reply, NULL);
    coord_fx_fini(&fx);
}

static void test_prune_forgets_warm(void **state)
{
    coord_fx_t fx;
    sent_t s = {0};
    Farm__CacheQuery q = FARM__CACHE_QUERY__INIT;
    farm_cachecmd_t *cc;
    farm_node_t *a;
    farm_warm_t *w;
    char reason[512], *ka, *kb, *kk, *kp;
    size_t la, lb, lk, lp, got[FARM_WARM_NODES];
    (void)state;

    coord_fx_init(&fx, NULL, NULL);
    a = farm_nodes_by_name(fx.nodes, "a");
    w = farm_scheduler_warm(fx.s);
    assert_int_equal(farm_warm_key(&ka, &la, "alice", "reg", "app", "linux/amd64", "Dockerfile"), 0);
    assert_int_equal(farm_warm_key(&kb, &lb, "bob", "reg", "app", "linux/amd64", "Dockerfile"), 0);
    assert_int_equal(farm_warm_key(&kk, &lk, "", "reg", "app", "linux/amd64", "Dockerfile"), 0);
    assert_int_equal(farm_warm_key(&kp, &lp, "alice", "reg", "app", "linux/arm64", "Dockerfile"), 0);
    assert_int_equal(farm_warm_record(w, ka, la, a->index), 0);
    assert_int_equal(farm_warm_record(w, ka, la, 5), 0); /* another node stays warm for it */
    assert_int_equal(farm_warm_record(w, kb, lb, a->index), 0);
    assert_int_equal(farm_warm_record(w, kk, lk, a->index), 0);
    assert_int_equal(farm_warm_record(w, kp, lp, a->index), 0);
    cc = farm_cachecmd_new(fx.nodes, fx.s, s_to_client, s_to_agent, &s, 1000);

    /* a du changes nothing */
    assert_int_equal(farm_cachecmd_request(cc, reason, sizeof reason, "cli", 3, &q, 0), 0);
    s_report(cc, a, s.last_request, "alice", "", 1);
    assert_int_equal(farm_warm_nodes(w, ka, la, got), 2);
    /* a prune that kept bob's cache (in use) and emptied alice's and the keyless one */
    q.prune = 1;
    assert_int_equal(farm_cachecmd_request(cc, reason, sizeof reason, "cli", 3, &q, 2), 0);
    s_report(cc, a, s.last_request, "bob", "in use by a running job", 3);
    assert_int_equal(farm_warm_nodes(w, kb, lb, got), 1);
    assert_int_equal(farm_cachecmd_request(cc, reason, sizeof reason, "cli", 3, &q, 4), 0);
    s_report(cc, a, s.last_request, "alice", "", 5);
    assert_int_equal(farm_warm_nodes(w, ka, la, got), 1);
    assert_int_equal(got[0], 5);
    assert_int_equal(farm_warm_nodes(w, kp, lp, got), 1); /* arm64: not emptied */
    assert_int_equal(farm_cachecmd_request(cc, reason, sizeof reason, "cli", 3, &q, 6), 0);
    s_report(cc, a, s.last_request, "@keyless", "", 7);
    assert_int_equal(farm_warm_nodes(w, kk, lk, got), 0);
    assert_int_equal(farm_warm_dirty(w), 1);
    /* the direct rule: another node's index, or a scope that is a prefix, is not forgotten */
    assert_int_equal(farm_warm_forget(w, 9, "alice", "linux/amd64"), 0);
    assert_int_equal(farm_warm_forget(w, a->index, "bo", "linux/amd64"), 0);
    assert_int_equal(farm_warm_forget(w, a->index, "bob", "linux/amd"), 0);
    assert_int_equal(farm_warm_forget(w, a->index, "bob", "linux/amd64"), 1);
    assert_int_equal(farm_warm_nodes(w, kb, lb, got), 0);
    free(ka);
    free(kb);
    free(kk);
    free(kp);
    farm_cachecmd_destroy(&cc);
    farm__envelope__free_unpacked(s.reply, NULL);
    coord_fx_fini(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_du_answered),
        cmocka_unit_test(test_refused_and_missing),
        cmocka_unit_test(test_prune_forgets_warm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
