/* SPDX-License-Identifier: Apache-2.0 */
/* The node table: HELLO checks with reasons a person can act on, sessions (a resent
 * HELLO is not a restart), routing ids, loss. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/config.h"
#include "coordinator/nodes.h"

static const char *Y =
    "coordinator: {agents: 'tcp://127.0.0.1:1', clients: 'tcp://127.0.0.1:2'}\n"
    "platforms:\n  linux/amd64: [x86]\n"
    "  linux/arm/v7:\n    native: [pi]\n    emulated: [x86]\n"
    "nodes:\n  x86: {slots: 4}\n  pi: {slots: 1}\n";

typedef struct {
    farm_config_t *cfg;
    farm_nodes_t *nodes;
} fx_t;

static int s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    assert_int_equal(farm_config_parse(&fx->cfg, "farm.yaml", Y, strlen(Y), NULL), 0);
    fx->nodes = farm_nodes_new(fx->cfg);
    assert_non_null(fx->nodes);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *fx = *state;
    farm_nodes_destroy(&fx->nodes);
    farm_config_destroy(&fx->cfg);
    free(fx);
    return 0;
}

static farm_hello_outcome_t s_hello(fx_t *fx, farm_node_t **n, const char *name, const char *p1,
                                    const char *p2, const char *version, uint64_t session,
                                    const char *rid, char *reason)
{
    char *plats[] = {(char *)p1, (char *)p2};
    farm_hello_t h = {.name = name, .platforms = plats, .n_platforms = p1 ? (p2 ? 2 : 1) : 0,
                      .slots = 0, .builder = "buildah", .version = version, .session = session};
    return farm_nodes_hello(fx->nodes, n, &h, rid, strlen(rid), 100, reason, 1024);
}

static void test_hello_refusals_say_what_to_do(void **state)
{
    fx_t *fx = *state;
    farm_node_t *n;
    char reason[1024];

    assert_int_equal(s_hello(fx, &n, "ghost", "linux/amd64", NULL, FARM_VERSION, 1, "r1", reason),
                     FARM_HELLO_REJECTED);
    assert_non_null(strstr(reason, "node \"ghost\" is not defined under nodes: in farm.yaml"));
    assert_int_equal(s_hello(fx, &n, "x86", "linux/amd64", NULL, "99.0.0", 1, "r1", reason),
                     FARM_HELLO_REJECTED);
    assert_non_null(strstr(reason, "incompatible"));
    assert_int_equal(s_hello(fx, &n, "x86", NULL, NULL, FARM_VERSION, 1, "r1", reason),
                     FARM_HELLO_REJECTED);
    assert_non_null(strstr(reason, "offers no platform"));
    assert_int_equal(s_hello(fx, &n, "pi", "linux/amd64", NULL, FARM_VERSION, 1, "r1", reason),
                     FARM_HELLO_REJECTED);
    assert_non_null(strstr(reason, "platform linux/amd64 is not mapped to node \"pi\""));
    assert_int_equal(s_hello(fx, &n, "pi", "linux/../amd64", NULL, FARM_VERSION, 1, "r1", reason),
                     FARM_HELLO_REJECTED);
    assert_non_null(strstr(reason, "bad platform"));
    /* nothing was recorded */
    assert_null(farm_nodes_by_rid(fx->nodes, "r1", 2));
    assert_int_equal(farm_nodes_by_name(fx->nodes, "pi")->state, FARM_NODE_UNKNOWN);
}

static void test_sessions(void **state)
{
    fx_t *fx = *state;
    farm_node_t *n, *again;
    char reason[1024];
    int emulated = -1;

    assert_int_equal(s_hello(fx, &n, "x86", "x86_64", "linux/arm/v7", FARM_VERSION, 11, "rx", reason),
                     FARM_HELLO_NEW);
    assert_int_equal(n->state, FARM_NODE_READY);
    assert_int_equal(n->slots, 4);
    assert_true(farm_node_serves(n, 0, &emulated));
    assert_int_equal(emulated, 0);
    assert_true(farm_node_serves(n, 1, &emulated));
    assert_int_equal(emulated, 1);
    assert_ptr_equal(farm_nodes_by_rid(fx->nodes, "rx", 2), n);
    /* the same session again: not a restart */
    assert_int_equal(s_hello(fx, &again, "x86", "linux/amd64", NULL, FARM_VERSION, 11, "rx", reason),
                     FARM_HELLO_RESENT);
    assert_ptr_equal(again, n);
    /* a new session: restarted, from a new routing id */
    assert_int_equal(s_hello(fx, &again, "x86", "linux/amd64", NULL, FARM_VERSION, 12, "ry", reason),
                     FARM_HELLO_RESTARTED);
    assert_null(farm_nodes_by_rid(fx->nodes, "rx", 2));
    assert_ptr_equal(farm_nodes_by_rid(fx->nodes, "ry", 2), n);
    assert_false(farm_node_serves(n, 1, NULL)); /* it offers arm/v7 no more */
    /* lost: its routing id no longer names it; HELLO after that is a new session */
    farm_nodes_lose(fx->nodes, n);
    assert_int_equal(n->state, FARM_NODE_LOST);
    assert_null(farm_nodes_by_rid(fx->nodes, "ry", 2));
    assert_int_equal(s_hello(fx, &again, "x86", "linux/amd64", NULL, FARM_VERSION, 12, "ry", reason),
                     FARM_HELLO_NEW);
}

/* the agent's version is kept per node for farmctl nodes; an agent too old to send one
 * (HELLO without field 5) is accepted with "" */
static void test_version_kept(void **state)
{
    fx_t *fx = *state;
    farm_node_t *n;
    char reason[1024], v[40];

    assert_string_equal(farm_nodes_by_name(fx->nodes, "x86")->version, "");
    snprintf(v, sizeof v, "%.*s.7-test", (int)strcspn(FARM_VERSION, "."), FARM_VERSION);
    assert_int_equal(s_hello(fx, &n, "x86", "linux/amd64", NULL, v, 1, "r1", reason),
                     FARM_HELLO_NEW);
    assert_string_equal(n->version, v);
    farm_nodes_lose(fx->nodes, n);
    assert_string_equal(n->version, v); /* a lost node still says what it ran */
    if (FARM_VERSION[0] == '0') {
        assert_int_equal(s_hello(fx, &n, "x86", "linux/amd64", NULL, "", 2, "r2", reason),
                         FARM_HELLO_NEW);
        assert_string_equal(n->version, "");
    }
    /* over 32 characters: refused before anything is kept */
    assert_int_equal(s_hello(fx, &n, "x86", "linux/amd64", NULL,
                             "0.1.0-aaaaaaaaaaaaaaaaaaaaaaaaaaaa", 3, "r3", reason),
                     FARM_HELLO_REJECTED);
    assert_non_null(strstr(reason, "version at most 32"));
    assert_string_equal(n->version, FARM_VERSION[0] == '0' ? "" : v);
}

/* A coordinator that did not run for over two heartbeats (stopped, stalled) gives every
 * READY node a fresh grace period instead of counting its own pause against them; a
 * normal turn changes nothing. */
static void test_own_pause_is_not_the_nodes_silence(void **state)
{
    fx_t *fx = *state;
    farm_node_t *x86 = NULL, *pi = NULL;
    char reason[1024];

    assert_int_equal(s_hello(fx, &x86, "x86", "linux/amd64", NULL, FARM_VERSION, 1, "r1", reason),
                     FARM_HELLO_NEW);
    assert_int_equal(s_hello(fx, &pi, "pi", "linux/arm/v7", NULL, FARM_VERSION, 2, "r2", reason),
                     FARM_HELLO_NEW);
    farm_nodes_lose(fx->nodes, pi);
    assert_true(farm_nodes_gap_check(fx->nodes, 1000, 1000) == 0); /* first call */
    assert_true(farm_nodes_gap_check(fx->nodes, 2000, 1000) == 0);
    assert_true(farm_nodes_gap_check(fx->nodes, 4000, 1000) == 0); /* two beats: normal */
    assert_true(x86->last_seen == 100);
    /* stopped 20 s */
    assert_true(farm_nodes_gap_check(fx->nodes, 24000, 1000) == 20000);
    assert_true(x86->last_seen == 24000);
    assert_true(pi->last_seen == 100); /* a lost node stays lost */
    assert_true(farm_nodes_gap_check(fx->nodes, 25000, 1000) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_refusals_say_what_to_do, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sessions, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_version_kept, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_own_pause_is_not_the_nodes_silence, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
