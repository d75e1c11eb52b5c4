/* SPDX-License-Identifier: Apache-2.0 */
/* Wire messages: round trips over real ZeroMQ sockets, and refusal of malformed,
 * oversized, versionless and multi-frame input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zmq.h>

#include "common/error.h"
#include "common/wire.h"

typedef struct {
    void *zctx, *router, *dealer;
} pair_t;

static int s_setup(void **state)
{
    static int n;
    char ep[64];
    pair_t *p = calloc(1, sizeof *p);
    snprintf(ep, sizeof ep, "inproc://wire-test-%d", n++);
    p->zctx = zmq_ctx_new();
    p->router = farm_wire_socket(p->zctx, FARM_WIRE_ROUTER_SERVER, ep, NULL);
    p->dealer = farm_wire_socket(p->zctx, FARM_WIRE_DEALER_CLIENT, ep, "node-a");
    assert_non_null(p->router);
    assert_non_null(p->dealer);
    *state = p;
    return 0;
}

static int s_teardown(void **state)
{
    pair_t *p = *state;
    zmq_close(p->router);
    zmq_close(p->dealer);
    zmq_ctx_term(p->zctx);
    free(p);
    return 0;
}

/* Receive with a bounded wait (farm_wire_recv itself never blocks). */
static int s_recv(void *sock, char *rid, size_t *rid_len, Farm__Envelope **out)
{
    zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, 2000) <= 0)
        return FARM_ERETRY;
    return farm_wire_recv(sock, rid, rid_len, out);
}

static void test_hello_round_trip(void **state)
{
    pair_t *p = *state;
    Farm__Envelope env = FARM__ENVELOPE__INIT, *got = NULL;
    Farm__Hello h = FARM__HELLO__INIT;
    char *plats[] = {"linux/arm64", "linux/arm/v7"};
    char rid[FARM_WIRE_ROUTING_MAX];
    size_t rid_len = 0;

    h.name = "node-a";
    h.platforms = plats;
    h.n_platforms = 2;
    h.slots = 4;
    h.builder = "buildah";
    h.version = "0.1.0";
    env.version = FARM_WIRE_VERSION;
    env.body_case = FARM__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    assert_int_equal(farm_wire_send(p->dealer, NULL, 0, &env), 0);
    assert_int_equal(s_recv(p->router, rid, &rid_len, &got), 0);
    /* the agent's stable routing id is its name */
    assert_int_equal(rid_len, 6);
    assert_memory_equal(rid, "node-a", 6);
    assert_int_equal(got->body_case, FARM__ENVELOPE__BODY_HELLO);
    assert_string_equal(got->hello->name, "node-a");
    assert_int_equal(got->hello->n_platforms, 2);
    assert_string_equal(got->hello->platforms[1], "linux/arm/v7");
    assert_int_equal(got->hello->slots, 4);
    farm_wire_free(&got);
    assert_null(got);

    /* and back through the router to that routing id, with binary data */
    {
        Farm__ContextChunk ch = FARM__CONTEXT_CHUNK__INIT;
        uint8_t data[5] = {0, 1, 0, 2, 0};
        ch.digest = "sha256:00";
        ch.data.data = data;
        ch.data.len = sizeof data;
        ch.total = 5;
        env.body_case = FARM__ENVELOPE__BODY_CONTEXT_CHUNK;
        env.context_chunk = &ch;
        assert_int_equal(farm_wire_send(p->router, "node-a", 6, &env), 0);
        assert_int_equal(s_recv(p->dealer, NULL, NULL, &got), 0);
        assert_int_equal(got->body_case, FARM__ENVELOPE__BODY_CONTEXT_CHUNK);
        assert_int_equal(got->context_chunk->data.len, 5);
        assert_memory_equal(got->context_chunk->data.data, data, 5);
        farm_wire_free(&got);
    }
}

/* NodesReply carries each node's agent version; a reply without it (an older
 * coordinator) reads as "" (farmctl nodes shows "?") */
static void test_nodes_reply_version(void **state)
{
    pair_t *p = *state;
    Farm__Envelope env = FARM__ENVELOPE__INIT, *got = NULL;
    Farm__NodesReply rep = FARM__NODES_REPLY__INIT;
    Farm__NodeInfo a = FARM__NODE_INFO__INIT, b = FARM__NODE_INFO__INIT, *nodes[] = {&a, &b};

    a.name = "new";
    a.state = "ready";
    a.version = "0.1.0";
    b.name = "old";
    b.state = "ready"; /* version left unset, as an older coordinator sends it */
    rep.nodes = nodes;
    rep.n_nodes = 2;
    env.version = FARM_WIRE_VERSION;
    env.body_case = FARM__ENVELOPE__BODY_NODES_REPLY;
    env.nodes_reply = &rep;
    assert_int_equal(farm_wire_send(p->router, "node-a", 6, &env), 0);
    assert_int_equal(s_recv(p->dealer, NULL, NULL, &got), 0);
    assert_int_equal(got->body_case, FARM__ENVELOPE__BODY_NODES_REPLY);
    assert_int_equal(got->nodes_reply->n_nodes, 2);
    assert_string_equal(got->nodes_reply->nodes[0]->version, "0.1.0");
    assert_string_equal(got->nodes_reply->nodes[1]->version, "");
    farm_wire_free(&got);

    /* and HELLO's version: an agent that leaves it out arrives with "" */
    {
        Farm__Hello h = FARM__HELLO__INIT;
        char *plats[] = {"linux/arm64"};
        char rid[FARM_WIRE_ROUTING_MAX];
        size_t rid_len = 0;
        h.name = "node-a";
        h.platforms = plats;
        h.n_platforms = 1;
        env.body_case = FARM__ENVELOPE__BODY_HELLO;
        env.hello = &h;
        assert_int_equal(farm_wire_send(p->dealer, NULL, 0, &env), 0);
        assert_int_equal(s_recv(p->router, rid, &rid_len, &got), 0);
        assert_int_equal(got->body_case, FARM__ENVELOPE__BODY_HELLO);
        assert_string_equal(got->hello->version, "");
        farm_wire_free(&got);
    }
}

static void test_unroutable_send_fails(void **state)
{
    pair_t *p = *state;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Heartbeat hb = FARM__HEARTBEAT__INIT;
    env.version = FARM_WIRE_VERSION;
    env.body_case = FARM__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    /* ROUTER_MANDATORY: a peer that is not connected is an error, not silence */
    assert_true(farm_wire_send(p->router, "nobody", 6, &env) < 0);
}

static void test_malformed_refused(void **state)
{
    pair_t *p = *state;
    Farm__Envelope *got = NULL;
    char rid[FARM_WIRE_ROUTING_MAX];
    size_t rid_len;
    const char junk[] = "\xff\xff\xff\xff\x0f garbage";

    assert_int_equal(zmq_send(p->dealer, junk, sizeof junk, 0), (int)sizeof junk);
    assert_int_equal(s_recv(p->router, rid, &rid_len, &got), FARM_EINVALID);
    assert_null(got);
    assert_non_null(strstr(farm_error_last(), "malformed"));

    /* an extra frame poisons the whole message */
    {
        Farm__Envelope env = FARM__ENVELOPE__INIT;
        Farm__Heartbeat hb = FARM__HEARTBEAT__INIT;
        uint8_t buf[64];
        size_t n;
        env.version = FARM_WIRE_VERSION;
        env.body_case = FARM__ENVELOPE__BODY_HEARTBEAT;
        env.heartbeat = &hb;
        n = farm__envelope__pack(&env, buf);
        zmq_send(p->dealer, buf, n, ZMQ_SNDMORE);
        zmq_send(p->dealer, buf, n, 0);
        assert_int_equal(s_recv(p->router, rid, &rid_len, &got), FARM_EINVALID);
        assert_null(got);
    }
    /* the socket still serves the next good message */
    {
        Farm__Envelope env = FARM__ENVELOPE__INIT;
        Farm__Heartbeat hb = FARM__HEARTBEAT__INIT;
        env.version = FARM_WIRE_VERSION;
        env.body_case = FARM__ENVELOPE__BODY_HEARTBEAT;
        env.heartbeat = &hb;
        assert_int_equal(farm_wire_send(p->dealer, NULL, 0, &env), 0);
        assert_int_equal(s_recv(p->router, rid, &rid_len, &got), 0);
        assert_int_equal(got->body_case, FARM__ENVELOPE__BODY_HEARTBEAT);
        farm_wire_free(&got);
    }
}

static void test_unpack_rules(void **state)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT, *got = NULL;
    Farm__Heartbeat hb = FARM__HEARTBEAT__INIT;
    uint8_t buf[64];
    size_t n;
    (void)state;

    /* no body */
    env.version = FARM_WIRE_VERSION;
    n = farm__envelope__pack(&env, buf);
    assert_int_equal(farm_wire_unpack(&got, buf, n), FARM_EINVALID);
    assert_null(got);
    /* wrong version */
    env.version = 99;
    env.body_case = FARM__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    n = farm__envelope__pack(&env, buf);
    assert_int_equal(farm_wire_unpack(&got, buf, n), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "version 99"));
    /* too big, refused before unpacking */
    assert_int_equal(farm_wire_unpack(&got, buf, (size_t)FARM_WIRE_MAXMSG + 1), FARM_ETOOBIG);
    /* truncated */
    env.version = FARM_WIRE_VERSION;
    {
        Farm__Hello h = FARM__HELLO__INIT;
        h.name = "a-long-enough-node-name";
        env.body_case = FARM__ENVELOPE__BODY_HELLO;
        env.hello = &h;
        n = farm__envelope__pack(&env, buf);
        assert_int_equal(farm_wire_unpack(&got, buf, n - 3), FARM_EINVALID);
        assert_int_equal(farm_wire_unpack(&got, buf, n), 0);
        assert_string_equal(got->hello->name, "a-long-enough-node-name");
        farm_wire_free(&got);
    }
}

/* Millions of empty repeated entries are refused before protobuf-c allocates them; a
 * Submit at the real limits still unpacks. */
static void test_field_count_refused_before_unpack(void **state)
{
    size_t n = 1000000, len = 2 + 3 + 2 * n + 8, i = 0;
    uint8_t *buf = malloc(len), *body;
    Farm__Envelope *env = NULL, e = FARM__ENVELOPE__INIT;
    Farm__Submit sub = FARM__SUBMIT__INIT;
    Farm__KeyValue kv[FARM_BUILD_ARGS_MAX], *kvp[FARM_BUILD_ARGS_MAX];
    char *tags[FARM_TAGS_MAX];
    long long t0;
    size_t packed;

    assert_non_null(buf);
    buf[i++] = 0x08; /* version = 1 */
    buf[i++] = 0x01;
    buf[i++] = 0xaa; /* field 21 (submit), length-delimited: 2 * n bytes */
    buf[i++] = 0x01;
    {
        uint64_t v = 2 * n;
        while (v >= 0x80) {
            buf[i++] = (uint8_t)(v | 0x80);
            v >>= 7;
        }
        buf[i++] = (uint8_t)v;
    }
    body = buf + i;
    for (size_t k = 0; k < n; k++) {
        body[2 * k] = 0x22; /* field 4 (build_args), an empty KeyValue */
        body[2 * k + 1] = 0x00;
    }
    i += 2 * n;
    t0 = farm_now_ms();
    assert_int_equal(farm_wire_unpack(&env, buf, i), FARM_ETOOBIG);
    assert_null(env);
    assert_non_null(strstr(farm_error_last(), "refused before unpacking"));
    assert_non_null(strstr(farm_error_last(), "Submit.build_args"));
    assert_true(farm_now_ms() - t0 < 2000); /* refused by a scan, not after allocating */
    free(buf);

    for (size_t k = 0; k < FARM_BUILD_ARGS_MAX; k++) {
        farm__key_value__init(&kv[k]);
        kv[k].key = "K";
        kv[k].value = "v";
        kvp[k] = &kv[k];
    }
    for (size_t k = 0; k < FARM_TAGS_MAX; k++)
        tags[k] = "registry.example.com/team/app:tag";
    sub.n_build_args = FARM_BUILD_ARGS_MAX;
    sub.build_args = kvp;
    sub.n_tags = FARM_TAGS_MAX;
    sub.tags = tags;
    e.version = FARM_WIRE_VERSION;
    e.body_case = FARM__ENVELOPE__BODY_SUBMIT;
    e.submit = &sub;
    assert_int_equal(farm_wire_pack(&buf, &packed, &e.base), 0);
    assert_int_equal(farm_wire_unpack(&env, buf, packed), 0);
    assert_int_equal(env->submit->n_build_args, FARM_BUILD_ARGS_MAX);
    farm_wire_free(&env);
    free(buf);
}

/* Bytes and strings are data, never parsed as messages: a MiB of spaces (which would read
 * as half a million fields) passes; many tags of a Submit do not. */
static void test_field_count_knows_the_schema(void **state)
{
    Farm__Envelope e = FARM__ENVELOPE__INIT, *env = NULL;
    Farm__ContextChunk ch = FARM__CONTEXT_CHUNK__INIT;
    Farm__Submit sub = FARM__SUBMIT__INIT;
    uint8_t *data = malloc(1 << 20), *buf = NULL;
    char **tags = calloc(FARM_WIRE_REPEATED_MAX + 1, sizeof *tags);
    size_t len;

    assert_non_null(data);
    assert_non_null(tags);
    memset(data, ' ', 1 << 20);
    ch.digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    ch.data.data = data;
    ch.data.len = 1 << 20;
    e.version = FARM_WIRE_VERSION;
    e.body_case = FARM__ENVELOPE__BODY_CONTEXT_CHUNK;
    e.context_chunk = &ch;
    assert_int_equal(farm_wire_pack(&buf, &len, &e.base), 0);
    assert_int_equal(farm_wire_unpack(&env, buf, len), 0);
    assert_int_equal(env->context_chunk->data.len, 1 << 20);
    farm_wire_free(&env);
    free(buf);

    for (size_t k = 0; k <= FARM_WIRE_REPEATED_MAX; k++)
        tags[k] = "";
    sub.n_tags = FARM_WIRE_REPEATED_MAX + 1;
    sub.tags = tags;
    e.body_case = FARM__ENVELOPE__BODY_SUBMIT;
    e.submit = &sub;
    assert_int_equal(farm_wire_pack(&buf, &len, &e.base), 0);
    assert_int_equal(farm_wire_unpack(&env, buf, len), FARM_ETOOBIG);
    assert_non_null(strstr(farm_error_last(), "Submit.tags"));
    free(buf);
    free(tags);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_nodes_reply_version, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unroutable_send_fails, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_refused, s_setup, s_teardown),
        cmocka_unit_test(test_unpack_rules),
        cmocka_unit_test(test_field_count_refused_before_unpack),
        cmocka_unit_test(test_field_count_knows_the_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
