/* SPDX-License-Identifier: Apache-2.0 */
/* Which enrolled peer a CURVE key is, per endpoint: a node's key names the node at the
 * agents' endpoint only, a client's key the client at the clients' endpoint only (the
 * other endpoint is told apart, so the peer can be told it dialled the wrong port), and
 * an unknown key or endpoint is nobody. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/config.h"
#include "common/keys.h"
#include "coordinator/enrolled.h"

#define NODE_KEY "5-Q/(t>FSDtPWpg9=r@Q.2q)TlHhTY{?Ws8gAloj"
#define ALICE_KEY "6Nv).=U@Q.6g:P{e@rvS=3&7za+7XZf<D{CbgErO"
#define OTHER_KEY "DXelH&*^O17VnIiNlCdz4.?tOJrb-g3p+)ms9si/"

static const char *Y =
    "coordinator: {agents: 'tcp://0.0.0.0:7700', clients: 'tcp://0.0.0.0:7701', "
    "public_key: \"h#Jp0}jHp+u=n8SCj.!}MMGd4CYB{pO}MoSRdM&N\", secret_key_file: /k}\n"
    "platforms:\n  linux/amd64: [x86]\n"
    "nodes:\n  x86: {key: \"" NODE_KEY "\"}\n"
    "clients:\n  alice: {key: \"" ALICE_KEY "\", role: submit}\n";

static void test_keys_by_endpoint(void **state)
{
    farm_config_t *cfg = NULL;
    farm_enrolled_t *e;
    uint8_t node[32], alice[32], other[32];
    const farm_config_client_t *c;
    int elsewhere;

    assert_int_equal(farm_config_parse(&cfg, "t.yaml", Y, strlen(Y), NULL), 0);
    assert_non_null(e = farm_enrolled_new(cfg));
    assert_int_equal(farm_key_decode(node, NODE_KEY), 0);
    assert_int_equal(farm_key_decode(alice, ALICE_KEY), 0);
    assert_int_equal(farm_key_decode(other, OTHER_KEY), 0);

    elsewhere = -1;
    assert_string_equal(farm_enrolled_lookup(e, "agents", node, &elsewhere), "x86");
    assert_int_equal(elsewhere, 0);
    /* a client is known by its key: each message is judged against the keys in force */
    assert_string_equal(farm_enrolled_lookup(e, "clients", alice, &elsewhere), ALICE_KEY);
    assert_string_equal(farm_enrolled_client_by_key(e, ALICE_KEY)->name, "alice");
    assert_int_equal(elsewhere, 0);
    /* the wrong port: refused, and said to be the other endpoint's key */
    assert_null(farm_enrolled_lookup(e, "clients", node, &elsewhere));
    assert_int_equal(elsewhere, 1);
    assert_null(farm_enrolled_lookup(e, "agents", alice, &elsewhere));
    assert_int_equal(elsewhere, 1);
    /* nobody's key */
    assert_null(farm_enrolled_lookup(e, "agents", other, &elsewhere));
    assert_int_equal(elsewhere, 0);
    assert_null(farm_enrolled_lookup(e, "clients", other, &elsewhere));
    assert_int_equal(elsewhere, 0);
    /* an endpoint that is neither admits no one */
    assert_null(farm_enrolled_lookup(e, "admin", node, &elsewhere));

    assert_non_null(c = farm_enrolled_client(e, "alice"));
    assert_int_equal(c->role, FARM_ROLE_SUBMIT);
    assert_string_equal(c->key, ALICE_KEY);
    assert_null(farm_enrolled_client(e, "x86")); /* a node is not a client */
    assert_null(farm_enrolled_client(e, "alic"));
    farm_enrolled_destroy(&e);
    assert_null(e);
    farm_config_destroy(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_by_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
