/* SPDX-License-Identifier: Apache-2.0 */
/* farm.yaml: the ARCHITECTURE.md example read field by field, defaults, lookups, and every
 * class of mistake reported at its exact line:column, all of them in one pass. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/buildflags.h"
#include "common/config.h"
#include "common/error.h"
#include "common/limits.h"

#define DATA FARM_TEST_DATA "/config/"

static farm_config_t *s_ok(const char *yaml)
{
    farm_config_t *cfg = NULL;
    farm_diag_t d = {0};
    if (farm_config_parse(&cfg, "t.yaml", yaml, strlen(yaml), &d) != 0) {
        for (size_t i = 0; i < d.n; i++)
            print_error("%s\n", d.items[i]);
        farm_diag_clear(&d);
        fail_msg("valid YAML refused:\n%s", yaml);
    }
    assert_int_equal(d.n, 0);
    assert_non_null(cfg);
    return cfg;
}

/* Exactly one problem, at `where` ("t.yaml:L:C"), whose text holds `needle`. */
static void s_one(const char *yaml, const char *where, const char *needle)
{
    farm_config_t *cfg = (farm_config_t *)1;
    farm_diag_t d = {0};
    char prefix[64];
    int rc = farm_config_parse(&cfg, "t.yaml", yaml, strlen(yaml), &d);

    assert_int_equal(rc, FARM_EINVALID);
    assert_null(cfg);
    if (d.n != 1) {
        for (size_t i = 0; i < d.n; i++)
            print_error("  %s\n", d.items[i]);
        fail_msg("expected one problem at %s, got %zu for:\n%s", where, d.n, yaml);
    }
    snprintf(prefix, sizeof prefix, "%s: ", where);
    if (strncmp(d.items[0], prefix, strlen(prefix)) != 0 || !strstr(d.items[0], needle))
        fail_msg("expected \"%s...%s\", got \"%s\"", prefix, needle, d.items[0]);
    /* the error slot holds the same first problem */
    assert_string_equal(farm_error_last(), d.items[0]);
    farm_diag_clear(&d);
}

static void test_architecture_example(void **state)
{
    farm_config_t *cfg = NULL;
    farm_diag_t d = {0};
    const farm_config_platform_t *p;

    assert_int_equal(farm_config_load(&cfg, DATA "good.yaml", &d), 0);
    assert_int_equal(d.n, 0);
    assert_string_equal(cfg->path, DATA "good.yaml");
    assert_string_equal(cfg->agents_endpoint, "tcp://0.0.0.0:7700");
    assert_string_equal(cfg->clients_endpoint, "tcp://127.0.0.1:7701");
    assert_int_equal(cfg->heartbeat_ms, 1000);
    assert_int_equal(cfg->liveness, 3);
    assert_int_equal(cfg->queue_timeout_ms, 600000);
    assert_int_equal(cfg->job_timeout_ms, 7200000);
    assert_int_equal(cfg->context_ttl_ms, 86400000);
    assert_string_equal(cfg->state_dir, "/var/lib/farm");

    assert_int_equal(cfg->n_platforms, 3);
    p = &cfg->platforms[0];
    assert_string_equal(p->platform, "linux/amd64");
    assert_int_equal(p->n_native, 2);
    assert_string_equal(p->native[0], "x86-1");
    assert_string_equal(p->native[1], "x86-2");
    assert_int_equal(p->n_emulated, 0);
    assert_int_equal(p->line, 9);
    assert_int_equal(p->column, 3);
    p = &cfg->platforms[1];
    assert_string_equal(p->platform, "linux/arm64");
    assert_int_equal(p->n_native, 2);
    assert_string_equal(p->native[0], "pi5");
    assert_string_equal(p->native[1], "graviton");
    p = &cfg->platforms[2];
    assert_string_equal(p->platform, "linux/arm/v7");
    assert_int_equal(p->n_native, 1);
    assert_string_equal(p->native[0], "pi3");
    assert_int_equal(p->n_emulated, 1);
    assert_string_equal(p->emulated[0], "x86-1");
    assert_int_equal(p->line, 11);

    assert_int_equal(cfg->n_nodes, 5);
    assert_string_equal(cfg->nodes[0].name, "x86-1");
    assert_int_equal(cfg->nodes[0].slots, 4);
    assert_int_equal(cfg->nodes[0].line, 15);
    assert_int_equal(cfg->nodes[0].column, 3);
    assert_string_equal(cfg->nodes[3].name, "graviton");
    assert_int_equal(cfg->nodes[3].slots, 8);
    assert_string_equal(cfg->nodes[4].name, "pi3");
    assert_int_equal(cfg->nodes[4].slots, 1);

    assert_int_equal(cfg->n_registries, 1);
    assert_string_equal(cfg->registries[0].host, "registry.local:5000");
    assert_int_equal(cfg->registries[0].insecure, 1);

    /* keys: CURVE on both endpoints, each node and client known by its key */
    assert_true(cfg->secure);
    assert_string_equal(cfg->public_key, "h#Jp0}jHp+u=n8SCj.!}MMGd4CYB{pO}MoSRdM&N");
    assert_string_equal(cfg->secret_key_file, "/etc/farm/coordinator.key");
    assert_null(cfg->signing_key_file); /* indexes are not signed */
    assert_string_equal(cfg->nodes[4].key, "um#>5Yn6IGO%LIjl8ZB[tUX5=c>>QEAvyM:vq=x]");
    assert_int_equal(cfg->n_clients, 1);
    assert_string_equal(cfg->clients[0].name, "alice");
    assert_int_equal(cfg->clients[0].role, FARM_ROLE_SUBMIT);

    assert_true(cfg->build.present);
    assert_int_equal(cfg->build.n_tags, 1);
    assert_string_equal(cfg->build.tags[0], "registry.example.com/team/app:latest");
    assert_int_equal(cfg->build.n_platforms, 3);
    assert_string_equal(cfg->build.platforms[0], "linux/amd64");
    assert_string_equal(cfg->build.platforms[1], "linux/arm64");
    assert_string_equal(cfg->build.platforms[2], "linux/arm/v7");
    assert_string_equal(cfg->build.dockerfile, "Dockerfile");
    assert_int_equal(cfg->build.n_args, 1);
    assert_string_equal(cfg->build.args[0].key, "VERSION");
    assert_string_equal(cfg->build.args[0].value, "1.4");
    farm_config_destroy(&cfg);
    assert_null(cfg);
    farm_config_destroy(&cfg); /* NULL is fine */
    farm_config_destroy(NULL);
}

/* Keys, all or none: a coordinator's file without keys may bind loopback only; with
 * keys every node needs one, clients need a key and a role, keys must be CURVE keys. */
static void test_keys_and_clients(void **state)
{
    const char *base = "platforms: {linux/amd64: [a]}\n";
    char y[1024];
    farm_config_t *cfg;

    snprintf(y, sizeof y, "coordinator: {agents: 'tcp://0.0.0.0:7700', clients: 'tcp://127.0.0.1:7701'}\n"
             "%snodes: {a: {}}\n", base);
    s_one(y, "t.yaml:1:23", "coordinator.agents is \"tcp://0.0.0.0:7700\", which is not a "
                            "loopback address, but farm.yaml names no keys");
    snprintf(y, sizeof y, "coordinator: {agents: 'tcp://127.0.0.1:7700', clients: 'ipc:///run/farm.sock'}\n"
             "%snodes: {a: {}}\n", base);
    cfg = s_ok(y);
    assert_false(cfg->secure);
    farm_config_destroy(&cfg);
    /* a repository's file (no platforms:) may name a remote coordinator with its key
     * (farmctl sends over CURVE only) */
    cfg = s_ok("coordinator: {clients: 'tcp://farm.example.com:7701', public_key: "
               "\"h#Jp0}jHp+u=n8SCj.!}MMGd4CYB{pO}MoSRdM&N\"}\n");
    assert_true(cfg->secure);
    assert_int_equal(cfg->public_key_line, 1);
    assert_int_equal(cfg->public_key_column, 67);
    farm_config_destroy(&cfg);
    /* and a wildcard one, which farmctl reaches on 127.0.0.1 */
    cfg = s_ok("coordinator: {clients: 'tcp://0.0.0.0:7701'}\n");
    farm_config_destroy(&cfg);
    snprintf(y, sizeof y, "coordinator: {agents: 'tcp://0.0.0.0:7700', public_key: "
             "\"h#Jp0}jHp+u=n8SCj.!}MMGd4CYB{pO}MoSRdM&N\", secret_key_file: /k}\n"
             "%snodes: {a: {}}\n", base);
    s_one(y, "t.yaml:3:9", "node \"a\" has no key, so it could never connect");
    snprintf(y, sizeof y, "coordinator: {public_key: \"h#Jp0}jHp+u=n8SCj.!}MMGd4CYB{pO}MoSRdM&N\","
             " secret_key_file: /k}\n%snodes: {a: {key: short}}\n", base);
    s_one(y, "t.yaml:3:18", "nodes.a.key: \"short\" is not a CURVE public key");
    snprintf(y, sizeof y, "coordinator: {public_key: \"h#Jp0}jHp+u=n8SCj.!}MMGd4CYB{pO}MoSRdM&N\","
             " secret_key_file: /k}\n%snodes: {a: {key: \"um#>5Yn6IGO%%LIjl8ZB[tUX5=c>>QEAvyM:vq=x]\"}}\n"
             "clients: {ci: {key: \"6Nv).=U@Q.6g:P{e@rvS=3&7za+7XZf<D{CbgErO\", role: root}}\n", base);
    s_one(y, "t.yaml:4:71", "clients.ci.role: \"root\" is not a role");
    snprintf(y, sizeof y, "coordinator: {public_key: \"h#Jp0}jHp+u=n8SCj.!}MMGd4CYB{pO}MoSRdM&N\","
             " secret_key_file: /k}\n%snodes: {a: {key: \"um#>5Yn6IGO%%LIjl8ZB[tUX5=c>>QEAvyM:vq=x]\"}}\n"
             "clients: {ci: {key: \"6Nv).=U@Q.6g:P{e@rvS=3&7za+7XZf<D{CbgErO\", role: admin}}\n", base);
    cfg = s_ok(y);
    assert_true(cfg->secure);
    assert_int_equal(cfg->clients[0].role, FARM_ROLE_ADMIN);
    farm_config_destroy(&cfg);
    /* a key shared by a node and a client, or a client and the coordinator, is refused */
    snprintf(y, sizeof y, "coordinator: {public_key: \"h#Jp0}jHp+u=n8SCj.!}MMGd4CYB{pO}MoSRdM&N\","
             " secret_key_file: /k}\n%snodes: {a: {key: \"um#>5Yn6IGO%%LIjl8ZB[tUX5=c>>QEAvyM:vq=x]\"}}\n"
             "clients: {ci: {key: \"um#>5Yn6IGO%%LIjl8ZB[tUX5=c>>QEAvyM:vq=x]\", role: read}}\n", base);
    s_one(y, "t.yaml:4:11", "client ci has the same key as node a");
}

static void test_lookups(void **state)
{
    farm_config_t *cfg = NULL;
    const farm_config_platform_t *p;
    const farm_config_node_t *n;

    assert_int_equal(farm_config_load(&cfg, DATA "good.yaml", NULL), 0);
    p = farm_config_platform(cfg, "aarch64");
    assert_non_null(p);
    assert_string_equal(p->platform, "linux/arm64");
    p = farm_config_platform(cfg, "linux/arm/7");
    assert_non_null(p);
    assert_string_equal(p->platform, "linux/arm/v7");
    assert_string_equal(p->emulated[0], "x86-1");
    assert_ptr_equal(farm_config_platform(cfg, "x86_64"), &cfg->platforms[0]);
    assert_null(farm_config_platform(cfg, "linux/s390x"));
    assert_null(farm_config_platform(cfg, "linux/arm/v6"));
    assert_null(farm_config_platform(cfg, "linux/foo/bar/baz"));
    assert_null(farm_config_platform(cfg, NULL));

    n = farm_config_node(cfg, "graviton");
    assert_non_null(n);
    assert_int_equal(n->slots, 8);
    assert_null(farm_config_node(cfg, "Graviton"));
    assert_null(farm_config_node(cfg, "ghost"));

    /* exact host:port as written in image references */
    assert_int_equal(farm_config_registry_insecure(cfg, "registry.local:5000"), 1);
    assert_int_equal(farm_config_registry_insecure(cfg, "registry.local"), 0);
    assert_int_equal(farm_config_registry_insecure(cfg, "registry.local:5001"), 0);
    assert_int_equal(farm_config_registry_insecure(cfg, "registry.example.com"), 0);
    assert_int_equal(farm_config_registry_insecure(NULL, "registry.local:5000"), 0);
    farm_config_destroy(&cfg);
}

static void test_defaults_and_forms(void **state)
{
    farm_config_t *cfg = s_ok("platforms:\n"
                              "  x86_64:\n"
                              "    - a\n"
                              "    - b\n"
                              "  armhf:\n"
                              "    emulated: [a]\n"
                              "  linux/arm64:\n"
                              "    native: [c]\n"
                              "    emulated:\n"
                              "nodes:\n"
                              "  a: {}\n"
                              "  b:\n"
                              "  c: {slots: 1024}\n"
                              "registries:\n"
                              "  plain:5000: {insecure: false}\n"
                              "  other.example:\n");
    assert_null(cfg->agents_endpoint);
    assert_null(cfg->clients_endpoint);
    assert_null(cfg->state_dir);
    assert_int_equal(cfg->heartbeat_ms, 1000);
    assert_int_equal(cfg->liveness, 3);
    assert_int_equal(cfg->queue_timeout_ms, 600000);
    assert_false(cfg->build.present);
    assert_int_equal(cfg->n_platforms, 3);
    assert_string_equal(cfg->platforms[0].platform, "linux/amd64");
    assert_int_equal(cfg->platforms[0].n_native, 2);
    assert_string_equal(cfg->platforms[1].platform, "linux/arm/v7");
    assert_int_equal(cfg->platforms[1].n_native, 0);
    assert_int_equal(cfg->platforms[1].n_emulated, 1);
    assert_int_equal(cfg->platforms[2].n_native, 1);
    assert_int_equal(cfg->platforms[2].n_emulated, 0);
    assert_int_equal(farm_config_node(cfg, "a")->slots, 1);
    assert_int_equal(farm_config_node(cfg, "b")->slots, 1);
    assert_int_equal(farm_config_node(cfg, "c")->slots, 1024);
    assert_int_equal(farm_config_registry_insecure(cfg, "plain:5000"), 0);
    assert_int_equal(farm_config_registry_insecure(cfg, "other.example"), 0);
    farm_config_destroy(&cfg);

    cfg = s_ok("coordinator:\n"
               "  agents: ipc:///run/farm/agents\n"
               "  clients: inproc://clients\n"
               "  heartbeat: 250ms\n"
               "  liveness: 5\n"
               "  queue_timeout: 1m30s\n"
               "  job_timeout: 45m\n"
               "  context_ttl: 3h\n");
    assert_string_equal(cfg->agents_endpoint, "ipc:///run/farm/agents");
    assert_string_equal(cfg->clients_endpoint, "inproc://clients");
    assert_int_equal(cfg->heartbeat_ms, 250);
    assert_int_equal(cfg->liveness, 5);
    assert_int_equal(cfg->queue_timeout_ms, 90000);
    assert_int_equal(cfg->job_timeout_ms, 45 * 60 * 1000);
    assert_int_equal(cfg->context_ttl_ms, 3 * 3600 * 1000);
    assert_int_equal(cfg->cache_wait_ms, 3000); /* the default */
    farm_config_destroy(&cfg);

    /* coordinator.cache_wait: a duration, and 0 (written bare or with a unit) turns it off */
    static const struct {
        const char *text;
        int ms;
    } waits[] = {{"1m", 60000}, {"500ms", 500}, {"0", 0}, {"0s", 0}};
    for (size_t i = 0; i < sizeof waits / sizeof *waits; i++) {
        char y[64];
        snprintf(y, sizeof y, "coordinator:\n  cache_wait: %s\n", waits[i].text);
        cfg = s_ok(y);
        assert_int_equal(cfg->cache_wait_ms, waits[i].ms);
        farm_config_destroy(&cfg);
    }

    cfg = s_ok("coordinator: {agents: \"tcp://[::1]:7700\", clients: tcp://*:7701}\n");
    assert_string_equal(cfg->agents_endpoint, "tcp://[::1]:7700");
    assert_string_equal(cfg->clients_endpoint, "tcp://*:7701");
    farm_config_destroy(&cfg);
}

static void test_build_only_file(void **state)
{
    farm_config_t *cfg = NULL;
    assert_int_equal(farm_config_load(&cfg, DATA "build-only.yaml", NULL), 0);
    assert_true(cfg->build.present);
    assert_int_equal(cfg->n_nodes, 0);
    assert_int_equal(cfg->n_platforms, 0);
    assert_null(cfg->agents_endpoint);
    assert_int_equal(cfg->build.n_tags, 2);
    assert_string_equal(cfg->build.tags[1], "registry.example.com/team/app:latest");
    assert_int_equal(cfg->build.n_platforms, 3);
    assert_string_equal(cfg->build.platforms[0], "linux/arm64");
    assert_string_equal(cfg->build.platforms[1], "linux/arm/v7");
    assert_string_equal(cfg->build.platforms[2], "linux/amd64");
    assert_null(cfg->build.dockerfile);
    assert_int_equal(cfg->build.n_args, 2);
    assert_string_equal(cfg->build.args[0].key, "VERSION");
    assert_string_equal(cfg->build.args[0].value, "1.4"); /* as written, not a float */
    assert_string_equal(cfg->build.args[1].key, "EMPTY");
    assert_string_equal(cfg->build.args[1].value, "");
    farm_config_destroy(&cfg);
}

static void test_syntax_errors(void **state)
{
    farm_config_t *cfg = (farm_config_t *)1;
    farm_diag_t d = {0};

    /* from a file: the message starts with its path */
    assert_int_equal(farm_config_load(&cfg, DATA "syntax.yaml", &d), FARM_EINVALID);
    assert_null(cfg);
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.items[0], DATA "syntax.yaml:3:2: YAML syntax error: did not find "
                                       "expected key"));
    farm_diag_clear(&d);
    s_one("nodes: {a: {}\n", "t.yaml:2:1", "YAML syntax error");
    s_one("nodes:\n  a: \"unterminated\n", "t.yaml:3:1", "YAML syntax error");
    s_one("nodes:\n\ta: {}\n", "t.yaml:2:1", "tab character");
    s_one("nodes: {}\n---\nbuild: {}\n", "t.yaml:2:1", "second YAML document");
}

static void test_alias_refused(void **state)
{
    farm_config_t *cfg = NULL;
    farm_diag_t d = {0};
    const char *y = "build:\n  tags: &t [a]\n  platforms: *t\n";
    assert_int_equal(farm_config_parse(&cfg, "t.yaml", y, strlen(y), &d), FARM_EINVALID);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.items[0], "t.yaml:3:14: YAML aliases (*t) are not supported in "
                                    "farm.yaml; write the value out in full");
    farm_diag_clear(&d);
}

static void test_unknown_keys(void **state)
{
    s_one("nodez:\n  a: {}\n", "t.yaml:1:1", "unknown key \"nodez\" at the top level; did you "
                                             "mean \"nodes\"?");
    s_one("version: 2\n", "t.yaml:1:1", "known keys: coordinator, platforms, nodes, clients, registries, "
                                        "build");
    s_one("coordinator:\n  hearbeat: 1s\n", "t.yaml:2:3",
          "unknown key \"hearbeat\" under coordinator:; did you mean \"heartbeat\"? (known keys: "
          "agents, clients, heartbeat, liveness, queue_timeout, job_timeout, context_ttl, state_dir, "
          "public_key, secret_key_file, max_builds_per_client, max_uploads, max_uploads_per_client, "
          "context_quota, cache_wait, signing_key_file, http, http_token_file)");
    s_one("nodes:\n  a: {slot: 2}\n", "t.yaml:2:7", "did you mean \"slots\"?");
    s_one("platforms:\n  linux/amd64:\n    natve: [a]\n    emulated: [a]\nnodes: {a: {}}\n",
          "t.yaml:3:5", "unknown key \"natve\" under linux/amd64:; did you mean \"native\"?");
    s_one("registries:\n  r:5000: {insecure: true, tls: no}\n", "t.yaml:2:28",
          "unknown key \"tls\" under registry \"r:5000\"");
    s_one("build:\n  tag: [x]\n", "t.yaml:2:3", "did you mean \"tags\"?");
}

/* coordinator.signing_key_file: a path, kept with its line and column for the
 * coordinator's start-up check (the file is read there, not here: farmctl reads the same
 * farm.yaml on machines without the key) */
static void test_signing_key_file(void **state)
{
    farm_config_t *cfg = s_ok("coordinator:\n  agents: tcp://127.0.0.1:1\n"
                              "  signing_key_file: /nowhere/signing.key\n");
    assert_string_equal(cfg->signing_key_file, "/nowhere/signing.key");
    assert_int_equal(cfg->signing_key_line, 3);
    assert_int_equal(cfg->signing_key_column, 21);
    farm_config_destroy(&cfg);
    s_one("coordinator:\n  signing_key_file: [a]\n", "t.yaml:2:21",
          "coordinator.signing_key_file");
}

static void test_wrong_types(void **state)
{
    s_one("nodes: [a, b]\n", "t.yaml:1:8", "nodes: must be a map, got a list");
    s_one("coordinator: tcp://0.0.0.0:7700\n", "t.yaml:1:14",
          "coordinator: must be a map, got the value \"tcp://0.0.0.0:7700\"");
    s_one("- nodes\n", "t.yaml:1:1", "the top level must be a map of sections, got a list");
    s_one("platforms:\n  linux/amd64: {native: x}\nnodes: {x: {}}\n", "t.yaml:2:25",
          "native of linux/amd64 must be a list of node names, got the value \"x\"");
    s_one("platforms:\n  linux/amd64: x\nnodes: {x: {}}\n", "t.yaml:2:16",
          "platform linux/amd64 must map to a list of node names");
    s_one("platforms:\n  linux/amd64:\nnodes: {x: {}}\n", "t.yaml:2:3",
          "platform linux/amd64 lists no nodes");
    s_one("platforms:\n  linux/amd64: [[a]]\nnodes: {a: {}}\n", "t.yaml:2:17",
          "a node name must be a non-empty string, got a list");
    s_one("nodes:\n  a: [1]\n", "t.yaml:2:6", "node \"a\" must be a map, got a list");
    s_one("nodes:\n  a: 4\n", "t.yaml:2:6", "node \"a\" must be a map, got the value \"4\"");
    s_one("registries:\n  r:5000: {insecure: \"yes\"}\n", "t.yaml:2:22",
          "must be true or false, got the value \"yes\" (quoted)");
    s_one("build:\n  tags: app:1\n", "t.yaml:2:9", "build.tags must be a list");
    s_one("build:\n  args: [A=1]\n", "t.yaml:2:9", "build.args must be a map, got a list");
    s_one("build:\n  dockerfile: [a]\n", "t.yaml:2:15", "build.dockerfile must be a non-empty "
                                                        "string, got a list");
    s_one("build:\n  network: host\n", "t.yaml:2:12", "build.network: \"host\" is not offered");
    s_one("build:\n  cache: reg.local/app:1\n", "t.yaml:2:10", "build.cache: --cache-to: ");
    s_one("coordinator:\n  state_dir: ~\n", "t.yaml:2:14", "coordinator.state_dir must be a "
                                                           "non-empty string, got nothing");
    s_one("coordinator:\n  liveness: \"5\"\n", "t.yaml:2:13", "(quoted)");
}

static void test_duplicates(void **state)
{
    s_one("nodes:\n  a: {}\n  a: {slots: 2}\n", "t.yaml:3:3",
          "duplicate key \"a\" under nodes: (first at 2:3); remove one of them");
    s_one("build: {}\nbuild: {}\n", "t.yaml:2:1", "duplicate key \"build\" at the top level "
                                                 "(first at 1:1)");
    s_one("nodes:\n  a: {slots: 1, slots: 2}\n", "t.yaml:2:17", "duplicate key \"slots\" under "
                                                            "node \"a\" (first at 2:7)");
    s_one("build:\n  args: {A: 1, B: 2, A: 3}\n", "t.yaml:2:22", "duplicate key \"A\" under "
                                                              "build.args:");
    /* the same platform after normalisation */
    s_one("platforms:\n  aarch64: [a]\n  linux/arm64/v8: [a]\nnodes: {a: {}}\n", "t.yaml:3:3",
          "\"linux/arm64/v8\" names the platform linux/arm64 again (first at 2:3 as "
          "\"aarch64\")");
    s_one("platforms:\n  linux/arm/v7: [a]\n  armhf: [a]\nnodes: {a: {}}\n", "t.yaml:3:3",
          "names the platform linux/arm/v7 again");
    s_one("build:\n  platforms: [x86_64, linux/amd64]\n", "t.yaml:2:23",
          "\"linux/amd64\" names the platform linux/amd64 again (first at 2:15 as "
          "\"x86_64\"); list each platform once in build.platforms");
    /* the same node twice for a platform, native and emulated together */
    s_one("platforms:\n  linux/amd64: [a, a]\nnodes: {a: {}}\n", "t.yaml:2:20",
          "node \"a\" is listed twice for linux/amd64 (first at 2:17)");
    s_one("platforms:\n  linux/amd64: {native: [a], emulated: [b, a]}\nnodes: {a: {}, b: {}}\n",
          "t.yaml:2:44", "node \"a\" is listed twice for linux/amd64 (first at 2:26)");
    s_one("build:\n  tags: [a:1, b:1, a:1]\n", "t.yaml:2:20", "tag \"a:1\" is listed twice");
}

static void test_platform_problems(void **state)
{
    s_one("platforms:\n  linux/foo/bar/baz: [a]\nnodes: {a: {}}\n", "t.yaml:2:3",
          "platform \"linux/foo/bar/baz\" has too many parts");
    s_one("platforms:\n  \"linux/\": [a]\nnodes: {a: {}}\n", "t.yaml:2:3",
          "platform \"linux/\" has an empty part");
    s_one("platforms:\n  linux/arm/v9: [a]\nnodes: {a: {}}\n", "t.yaml:2:3",
          "variant \"v9\" does not exist for arm");
    s_one("build:\n  platforms: [linux/amd64, linux/foo/bar/baz]\n", "t.yaml:2:28",
          "build.platforms: platform \"linux/foo/bar/baz\" has too many parts");
    s_one("build:\n  platforms:\n    - \"\"\n", "t.yaml:3:7",
          "a build platform must be a non-empty string, got an empty string");
}

static void test_undefined_node(void **state)
{
    s_one("platforms:\n  linux/amd64: [a, ghost]\nnodes: {a: {}}\n", "t.yaml:2:20",
          "node \"ghost\" is mapped to linux/amd64 but is not defined under nodes:; add "
          "\"ghost: {slots: 1}\" under nodes: or fix the name");
    s_one("platforms:\n  armhf:\n    native: [a]\n    emulated: [pi3]\nnodes: {a: {}}\n",
          "t.yaml:4:16", "node \"pi3\" is mapped to linux/arm/v7 but is not defined");
    /* no nodes: section at all */
    s_one("platforms:\n  linux/amd64: [a]\n", "t.yaml:2:17", "node \"a\" is mapped to "
                                                            "linux/amd64 but is not defined");
}

typedef struct {
    const char *value, *needle;
} s_case_t;

/* s_one for each value written into `fmt` (one %s); every problem is at `where`. */
static void s_each(const char *fmt, const char *where, const s_case_t *c, size_t n)
{
    char yaml[256];
    for (size_t i = 0; i < n; i++) {
        snprintf(yaml, sizeof yaml, fmt, c[i].value);
        s_one(yaml, where, c[i].needle);
    }
}

#define S_EACH(fmt, where, ...)                                                                \
    do {                                                                                       \
        const s_case_t c_[] = {__VA_ARGS__};                                                   \
        s_each(fmt, where, c_, sizeof c_ / sizeof *c_);                                        \
    } while (0)

static void test_slots(void **state)
{
    S_EACH("nodes:\n  a: {slots: %s}\n", "t.yaml:2:14",
           {"0", "nodes.a.slots must be a whole number from 1 to 1024, got the value \"0\""},
           {"-2", "got the value \"-2\""},
           {"1025", "from 1 to 1024"},
           {"99999999999999999999", "from 1 to 1024"},
           {"2.5", "whole number"},
           {"four", "got the value \"four\""},
           {"\"4\"", "(quoted)"},
           {"", "got nothing"});
    s_one("nodes:\n  \"bad name\": {}\n", "t.yaml:2:3", "node name \"bad name\" is not valid");
    /* names become directories (a node keeps each client's layer cache in one of its
     * name; clients' names follow the same rule): never . or .. */
    s_one("nodes:\n  \"..\": {}\n", "t.yaml:2:3", "node name \"..\" is not valid");
    s_one("platforms:\n  linux/amd64: [\"a\\x1b[2J\"]\nnodes: {a: {}}\n", "t.yaml:2:17",
          "node \"a\\x1b[2J\" is mapped to linux/amd64 but is not a valid node name");
}

static void test_durations_and_endpoints(void **state)
{
    S_EACH("coordinator:\n  heartbeat: %s\n", "t.yaml:2:14",
           {"soon", "coordinator.heartbeat: \"soon\" is not a duration"},
           {"1000", "give it a unit"},
           {"0ms", "out of range"},
           {"2h", "out of range"});
    S_EACH("coordinator:\n  agents: %s\n", "t.yaml:2:11",
           {"tcp://h:0", "coordinator.agents: \"tcp://h:0\" is not a valid endpoint; the port "
                         "must be a number from 1 to 65535"},
           {"tcp://h:65536", "from 1 to 65535"},
           {"tcp://h:http", "from 1 to 65535"},
           {"tcp://h", "needs a host and a port"},
           {"tcp://[::1:7700", "an IPv6 host goes in brackets"});
    S_EACH("coordinator:\n  clients: %s\n", "t.yaml:2:12",
           {"tcp://:7701", "needs a host and a port"},
           {"http://h:80", "use tcp://host:port, ipc://path or inproc://name"},
           {"ipc://", "needs a path"},
           {"inproc://", "needs a path (ipc://) or a name (inproc://)"});
    s_one("coordinator:\n  queue_timeout: [1s]\n", "t.yaml:2:18",
          "coordinator.queue_timeout must be a duration, got a list");
    s_one("coordinator:\n  agents: tcp://127.0.0.1:1\n  clients: tcp://127.0.0.1:1\n",
          "t.yaml:3:12",
          "coordinator.clients is the same endpoint as coordinator.agents (2:11)");
    s_one("coordinator:\n  liveness: 0\n", "t.yaml:2:13", "from 1 to 100");
    S_EACH("coordinator:\n  cache_wait: %s\n", "t.yaml:2:15",
           {"soon", "coordinator.cache_wait: \"soon\" is not a duration"},
           {"3", "give it a unit"},
           {"-1s", "is not a duration"},
           {"11m", "coordinator.cache_wait: \"11m\" is out of range; use from 0 to 600s"},
           {"[1s]", "coordinator.cache_wait must be a duration, got a list"});
    /* a bare 0 stays refused where 0 is not allowed */
    s_one("coordinator:\n  heartbeat: 0\n", "t.yaml:2:14", "give it a unit");
}

/* coordinator.http: ADDR:PORT, loopback unless a token file is named */
static void test_http_settings(void **state)
{
    farm_config_t *cfg = s_ok("coordinator:\n  http: 127.0.0.1:9180\n");
    assert_string_equal(cfg->http, "127.0.0.1:9180");
    assert_int_equal(cfg->http_loopback, 1);
    assert_null(cfg->http_token_file);
    farm_config_destroy(&cfg);
    cfg = s_ok("coordinator:\n  http: 0.0.0.0:9180\n  http_token_file: /etc/farm/http.token\n");
    assert_int_equal(cfg->http_loopback, 0);
    assert_string_equal(cfg->http_token_file, "/etc/farm/http.token");
    farm_config_destroy(&cfg);
    s_one("coordinator:\n  http: 0.0.0.0:9180\n", "t.yaml:2:9",
          "coordinator.http is \"0.0.0.0:9180\", which is not a loopback address, but "
          "coordinator.http_token_file is not set");
    S_EACH("coordinator:\n  http: %s\n", "t.yaml:2:9",
           {"localhost:9180", "coordinator.http: \"localhost:9180\": \"localhost\" is not an IP address"},
           {"http://127.0.0.1:9180", "without a scheme"},
           {"127.0.0.1", "needs a host and a port"},
           {"127.0.0.1:0", "from 1 to 65535"});
    s_one("coordinator:\n  http: [9180]\n", "t.yaml:2:9", "coordinator.http must be");
}

static void test_build_args(void **state)
{
    s_one("build:\n  args: {A: [1]}\n", "t.yaml:2:13",
          "build arg A must be a single value, got a list");
    s_one("build:\n  args:\n    A:\n      b: c\n", "t.yaml:4:7",
          "build arg A must be a single value, got a map");
    s_one("build:\n  args: {A: }\n", "t.yaml:2:10", "build arg A has no value");
    s_one("build:\n  args: {\"A=B\": x}\n", "t.yaml:2:10", "build arg name \"A=B\" is not valid");
    s_one("build:\n  args: {\"A\\tB\": x}\n", "t.yaml:2:10", "build arg name \"A\\x09B\" is not valid");
    s_one("build:\n  tags: [\"a b\"]\n", "t.yaml:2:10", "tag \"a b\" contains whitespace");
}

/* build: keys for farmctl submit's buildx flags; secrets only as references (no values) */
static void test_build_flags(void **state)
{
    farm_config_t *cfg = s_ok("build:\n"
                              "  target: release\n"
                              "  no_cache: true\n"
                              "  pull: true\n"
                              "  labels: {org.example.team: farm, empty: \"\"}\n"
                              "  annotations: {\"index:org.example.i\": i, plain: p}\n"
                              "  secrets: [\"id=npmrc,src=.npmrc\", \"id=token,src=ci/t\"]\n");
    assert_string_equal(cfg->build.target, "release");
    assert_true(cfg->build.no_cache);
    assert_true(cfg->build.pull);
    assert_int_equal(cfg->build.n_labels, 2);
    assert_string_equal(cfg->build.labels[0].key, "org.example.team");
    assert_string_equal(cfg->build.labels[1].value, "");
    assert_int_equal(cfg->build.n_annotations, 2);
    assert_string_equal(cfg->build.annotations[0].key, "index:org.example.i");
    assert_int_equal(cfg->build.n_secrets, 2);
    assert_string_equal(cfg->build.secrets[1], "id=token,src=ci/t");
    farm_config_destroy(&cfg);

    s_one("build:\n  target: \"-x\"\n", "t.yaml:2:11", "build.target: target \"-x\" is not a "
          "stage name");
    s_one("build:\n  no_cache: yes\n", "t.yaml:2:13", "build.no_cache must be true or false");
    /* build.provenance: the default of farmctl submit's --provenance */
    cfg = s_ok("build:\n  provenance: false\n");
    assert_int_equal(cfg->build.provenance, FARM_PROVENANCE_OFF);
    farm_config_destroy(&cfg);
    cfg = s_ok("build:\n  provenance: max\n");
    assert_int_equal(cfg->build.provenance, FARM_PROVENANCE_MAX);
    farm_config_destroy(&cfg);
    s_one("build:\n  provenance: full\n", "t.yaml:2:15",
          "build.provenance: \"full\" is not false, min or max");
    s_one("build:\n  pull: 1\n", "t.yaml:2:9", "build.pull must be true or false");
    s_one("build:\n  labels: [a=b]\n", "t.yaml:2:11", "build.labels must be a map, got a list");
    s_one("build:\n  labels: {\"a b\": x}\n", "t.yaml:2:12",
          "build.labels: label key \"a b\" is not valid");
    s_one("build:\n  labels: {a: [x]}\n", "t.yaml:2:15", "build.labels \"a\" must be a single "
          "value, got a list");
    s_one("build:\n  annotations:\n    \"manifest-descriptor:k\": v\n", "t.yaml:3:5",
          "manifest-descriptor: annotations are not supported");
    s_one("build:\n  annotations: {\"foo:k\": v}\n", "t.yaml:2:17", "unknown type \"foo\"");
    s_one("build:\n  secrets: [\"id=x,value=hunter2\"]\n", "t.yaml:2:13",
          "build.secrets: --secret id=x,value=hunter2: unknown key \"value\"");
    s_one("build:\n  secrets: [\"src=.npmrc\"]\n", "t.yaml:2:13", "no id=");
    s_one("build:\n  secrets: id=x,env=Y\n", "t.yaml:2:12", "build.secrets must be a list");
    s_one("build:\n  secrets: [[x]]\n", "t.yaml:2:13", "a build secret must be a non-empty "
          "string, got a list");
    {
        char yaml[4096];
        size_t off = (size_t)snprintf(yaml, sizeof yaml, "build:\n  secrets:\n");
        for (int i = 0; i <= FARM_SECRETS_MAX; i++)
            off += (size_t)snprintf(yaml + off, sizeof yaml - off, "    - id=s%d,src=s\n", i);
        s_one(yaml, "t.yaml:3:5", "build.secrets: 17 secrets; farm sends at most 16");
    }
}

/* A checked-in farm.yaml is written by whoever can change the repository: its secrets
 * are files inside the repository, never the environment or a file elsewhere. */
static void test_build_secrets_stay_in_the_repository(void **state)
{
    farm_config_t *cfg = s_ok("build:\n  secrets: [\"id=a,src=.npmrc\", \"id=b,src=ci/x..y\", "
                              "\"id=c,type=file\", \"id=d,src=./a/b\"]\n");
    assert_int_equal(cfg->build.n_secrets, 4);
    farm_config_destroy(&cfg);
    (void)state;

    s_one("build:\n  secrets: [\"id=a,src=/home/alice/.ssh/id_ed25519\"]\n", "t.yaml:2:13",
          "build.secrets: \"id=a,src=/home/alice/.ssh/id_ed25519\" names a file outside the "
          "repository; a checked-in farm.yaml may only send files inside it (src= relative to "
          "farm.yaml's directory, no \"..\"): pass --secret "
          "id=a,src=/home/alice/.ssh/id_ed25519 to farmctl submit instead");
    s_one("build:\n  secrets: [\"id=b,src=../x\"]\n", "t.yaml:2:13", "names a file outside");
    s_one("build:\n  secrets: [\"id=b,src=a/../../x\"]\n", "t.yaml:2:13", "names a file outside");
    s_one("build:\n  secrets: [\"id=b,src=a/..\"]\n", "t.yaml:2:13", "names a file outside");
    s_one("build:\n  secrets: [\"id=b,src=~/.npmrc\"]\n", "t.yaml:2:13", "names a file outside");
    s_one("build:\n  secrets: [\"id=c,env=SOME_TOKEN\"]\n", "t.yaml:2:13",
          "build.secrets: \"id=c,env=SOME_TOKEN\" reads an environment variable; a farm.yaml "
          "checked into a repository may not send your environment with a build: pass "
          "--secret id=c,env=SOME_TOKEN to farmctl submit instead");
    s_one("build:\n  secrets: [\"id=c,type=env\"]\n", "t.yaml:2:13", "reads an environment");
    /* neither src= nor env=: buildx reads the variable ID when it is set */
    s_one("build:\n  secrets: [\"id=HOME\"]\n", "t.yaml:2:13",
          "reads the environment variable of its id when one is set");
}

/* A keyless farm is reached only on this machine: an endpoint counts as loopback when it
 * is a literal loopback address or ipc://, never by how a host name is spelt. */
static void test_keyless_endpoint_is_literal_loopback(void **state)
{
    farm_config_t *cfg;
    (void)state;

    s_one("build:\n  tags: [r/a:1]\ncoordinator:\n  clients: tcp://127.attacker.example:7701\n",
          "t.yaml:4:12", "coordinator.clients is \"tcp://127.attacker.example:7701\", which is "
          "not a loopback address, but farm.yaml names no keys: farmctl's registry logins and "
          "build secrets would travel unencrypted to whatever that is. Write a literal loopback "
          "address (tcp://127.0.0.1:PORT, tcp://[::1]:PORT) or ipc://PATH");
    s_one("coordinator:\n  clients: tcp://localhost:7701\n", "t.yaml:2:12",
          "which is not a loopback address");
    s_one("coordinator:\n  clients: tcp://farm.example.com:7701\n", "t.yaml:2:12",
          "or give the farm keys");
    s_one("coordinator:\n  clients: \"tcp://127.0.0.1;10.1.1.1:7701\"\n", "t.yaml:2:12",
          "which is not a loopback address");
    s_one("coordinator:\n  agents: tcp://127.0.0.1:7700\n  clients: tcp://localhost:7701\n"
          "platforms: {linux/amd64: [a]}\nnodes: {a: {}}\n", "t.yaml:3:12",
          "coordinator.clients is \"tcp://localhost:7701\", which is not a loopback address");
    /* the agents' endpoint too: jobs carry registry logins to whatever connects */
    s_one("coordinator:\n  agents: tcp://localhost:7700\n  clients: tcp://127.0.0.1:7701\n"
          "platforms: {linux/amd64: [a]}\nnodes: {a: {}}\n", "t.yaml:2:11",
          "coordinator.agents is \"tcp://localhost:7700\", which is not a loopback address, "
          "but farm.yaml names no keys: every job and its registry logins would travel "
          "unencrypted");
    s_one("coordinator:\n  agents: tcp://10.0.0.10:7700\n  clients: tcp://127.0.0.1:7701\n"
          "platforms: {linux/amd64: [a]}\nnodes: {a: {}}\n", "t.yaml:2:11",
          "or give the farm keys");
    cfg = s_ok("coordinator:\n  clients: tcp://127.9.8.7:7701\n");
    farm_config_destroy(&cfg);
    cfg = s_ok("coordinator:\n  clients: \"tcp://[::1]:7701\"\n");
    farm_config_destroy(&cfg);
}

static void test_registries(void **state)
{
    s_one("registries:\n  \"https://r:5000\": {insecure: true}\n", "t.yaml:2:3",
          "registry \"https://r:5000\" is not a host: write the host as in image references, "
          "without a scheme");
    s_one("registries:\n  r:5000/v2: {}\n", "t.yaml:2:3", "without a path");
    s_one("registries:\n  r:5000: {insecure: maybe}\n", "t.yaml:2:22",
          "registries.\"r:5000\".insecure must be true or false, got the value \"maybe\"");
}

/* ca: and credentials_for: (who may use the farm's own login for a registry) */
static void test_registry_ca_and_grants(void **state)
{
    char ca[] = "/tmp/farm-test-ca-XXXXXX", y[2048];
    const char *pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const farm_config_registry_t *r;
    farm_config_t *cfg;
    int fd = mkstemp(ca);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, pem, strlen(pem)), (ssize_t)strlen(pem));
    close(fd);
    snprintf(y, sizeof y, "registries:\n  r:5000: {ca: %s, credentials_for: [ci]}\n"
             "  open:5000: {credentials_for: [\"*\"]}\n  plain:5000: {insecure: true}\n", ca);
    cfg = s_ok(y);
    r = farm_config_registry(cfg, "r:5000");
    assert_non_null(r);
    assert_string_equal(r->ca, ca);
    assert_null(r->ca_pem);
    assert_true(farm_config_registry_grants(r, "ci"));
    assert_false(farm_config_registry_grants(r, "alice"));
    assert_false(farm_config_registry_grants(r, "")); /* a keyless farm's client is nobody */
    assert_true(farm_config_registry_grants(farm_config_registry(cfg, "open:5000"), ""));
    assert_false(farm_config_registry_grants(farm_config_registry(cfg, "plain:5000"), "ci"));
    assert_null(farm_config_registry(cfg, "other:5000"));
    assert_int_equal(farm_config_load_cas(cfg), 0);
    assert_int_equal(r->ca_pem_len, strlen(pem));
    assert_memory_equal(r->ca_pem, pem, strlen(pem));
    farm_config_destroy(&cfg);
    /* a CA file that holds no certificate, or is missing: refused at load */
    snprintf(y, sizeof y, "registries:\n  r:5000: {ca: /nonexistent/ca.pem}\n");
    cfg = s_ok(y);
    assert_int_equal(farm_config_load_cas(cfg), FARM_EIO);
    assert_non_null(strstr(farm_error_last(), "registries.r:5000.ca: cannot read"));
    farm_config_destroy(&cfg);
    fd = open(ca, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "junk\n", 5), 5);
    close(fd);
    snprintf(y, sizeof y, "registries:\n  r:5000: {ca: %s}\n", ca);
    cfg = s_ok(y);
    assert_int_equal(farm_config_load_cas(cfg), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "holds no PEM certificate"));
    farm_config_destroy(&cfg);
    unlink(ca);
    /* a grant must name an enrolled client */
    s_one("coordinator: {public_key: \"h#Jp0}jHp+u=n8SCj.!}MMGd4CYB{pO}MoSRdM&N\"}\n"
          "clients: {ci: {key: \"6Nv).=U@Q.6g:P{e@rvS=3&7za+7XZf<D{CbgErO\", role: submit}}\n"
          "registries:\n  r:5000: {credentials_for: [cj]}\n",
          "t.yaml:4:3", "registries.r:5000.credentials_for names client \"cj\", which is not "
          "under clients:");
    s_one("registries:\n  r:5000: {credentials_for: ci}\n", "t.yaml:2:29",
          "credentials_for");
}

/* The many-errors fixture: every problem found in one pass, in document order. */
static void test_all_problems_in_one_pass(void **state)
{
    static const char *const want[] = {
        "2:11: coordinator.agents: \"tcp://0.0.0.0:99999\" is not a valid endpoint",
        "3:12: coordinator.clients: \"http://127.0.0.1:7701\" is not a valid endpoint",
        "4:3: unknown key \"hearbeat\" under coordinator:; did you mean \"heartbeat\"?",
        "5:13: coordinator.liveness must be a whole number",
        "7:24: node \"ghost\" is mapped to linux/amd64 but is not defined under nodes:",
        "8:3: \"x86_64\" names the platform linux/amd64 again (first at 7:3",
        "9:3: platform \"linux/foo/bar/baz\" has too many parts",
        "12:5: unknown key \"emulatd\" under linux/arm/v7:; did you mean \"emulated\"?",
        "14:18: nodes.x86-1.slots must be a whole number from 1 to 1024, got the value \"0\"",
        "15:18: nodes.x86-2.slots must be a whole number from 1 to 1024, got the value \"many\"",
        "16:8: node \"pi3\" must be a map, got a list",
        "17:3: duplicate key \"x86-1\" under nodes: (first at 14:3)",
        "19:37: registries.\"registry.local:5000\".insecure must be true or false",
        "21:28: \"amd64\" names the platform linux/amd64 again (first at 21:15",
        "21:35: build.platforms: platform \"windoze/amd64\": unknown operating system",
        "22:19: build arg VERSION must be a single value, got a list",
        "23:3: unknown key \"tag\" under build:; did you mean \"tags\"?",
    };
    farm_config_t *cfg = NULL;
    farm_diag_t d = {0};
    const char *path = DATA "many-errors.yaml";

    assert_int_equal(farm_config_load(&cfg, path, &d), FARM_EINVALID);
    assert_null(cfg);
    for (size_t i = 0; i < d.n; i++)
        print_message("  %s\n", d.items[i]);
    assert_int_equal(d.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < d.n; i++) {
        char expect[512];
        snprintf(expect, sizeof expect, "%s:%s", path, want[i]);
        if (strncmp(d.items[i], expect, strlen(expect)) != 0)
            fail_msg("problem %zu: want \"%s...\", got \"%s\"", i, expect, d.items[i]);
        /* every message says what to do after what is wrong */
        assert_non_null(strchr(d.items[i], ';'));
    }
    /* without a diag list the first problem is still in the error slot */
    farm_error_clear();
    assert_int_equal(farm_config_load(&cfg, path, NULL), FARM_EINVALID);
    assert_string_equal(farm_error_last(), d.items[0]);
    farm_diag_clear(&d);
    assert_int_equal(d.n, 0);
    assert_null(d.items);
}

static void test_bounds(void **state)
{
    farm_config_t *cfg = NULL;
    farm_diag_t d = {0};
    char *big, deep[200];
    size_t n = 0;

    /* nesting */
    n += (size_t)snprintf(deep + n, sizeof deep - n, "nodes: ");
    for (int i = 0; i < 40; i++)
        deep[n++] = '[';
    for (int i = 0; i < 40; i++)
        deep[n++] = ']';
    deep[n] = '\0';
    s_one(deep, "t.yaml:1:39", "nesting deeper than 32 levels");

    /* size, before libyaml sees a byte */
    big = malloc(1024 * 1024 + 2);
    assert_non_null(big);
    memset(big, '#', 1024 * 1024 + 1);
    big[1024 * 1024 + 1] = '\0';
    assert_int_equal(farm_config_parse(&cfg, "t.yaml", big, strlen(big), &d), FARM_EINVALID);
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.items[0], "may be at most 1048576 bytes"));
    farm_diag_clear(&d);
    big[1024 * 1024] = '\0'; /* exactly 1 MiB of comment: allowed in, but says nothing */
    assert_int_equal(farm_config_parse(&cfg, "t.yaml", big, strlen(big), &d), FARM_EINVALID);
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.items[0], "t.yaml:1:1: the file is empty"));
    farm_diag_clear(&d);
    free(big);

    /* problems are capped, and the cap says so */
    big = malloc(150 * 16 + 1);
    assert_non_null(big);
    n = 0;
    for (int i = 0; i < 150; i++)
        n += (size_t)sprintf(big + n, "bogus%03d: 1\n", i);
    assert_int_equal(farm_config_parse(&cfg, "t.yaml", big, n, &d), FARM_EINVALID);
    assert_int_equal(d.n, 101);
    assert_non_null(strstr(d.items[0], "t.yaml:1:1: unknown key \"bogus000\""));
    assert_string_equal(d.items[100], "t.yaml: 50 more problems not shown; fix these and run "
                                      "again");
    farm_diag_clear(&d);
    free(big);

    s_one("", "t.yaml:1:1", "the file is empty");
    s_one("build:\n  args: {A: \"x\\0y\"}\n", "t.yaml:2:13", "NUL character");
}

static void test_missing_file(void **state)
{
    farm_config_t *cfg = (farm_config_t *)1;
    farm_diag_t d = {0};
    char expect[256];

    assert_true(farm_config_load(&cfg, DATA "no-such-farm.yaml", &d) < 0);
    assert_null(cfg);
    assert_int_equal(d.n, 1);
    snprintf(expect, sizeof expect, "%sno-such-farm.yaml: cannot open: %s", DATA,
             strerror(ENOENT));
    assert_non_null(strstr(d.items[0], expect));
    assert_non_null(strstr(farm_error_last(), strerror(ENOENT)));
    farm_diag_clear(&d);

    assert_true(farm_config_load(&cfg, DATA, &d) < 0); /* a directory */
    assert_non_null(strstr(d.items[0], "not a regular file"));
    farm_diag_clear(&d);
}

static void test_parse_duration(void **state)
{
    static const struct {
        const char *in;
        long ms;
    } t[] = {
        {"500ms", 500}, {"1s", 1000},       {"2m", 120000},   {"1h", 3600000},
        {"1m30s", 90000}, {"1.5s", 1500},   {" 1s ", 1000},   {"0s", 0},
        {"1h1m1s1ms", 3661001},
        {"", -1},       {"1000", -1},       {"s", -1},        {"1x", -1},
        {"-1s", -1},    {"1 s", -1},        {"1.2.3s", -1},   {"1sec", -1},
        {"1S", -1},     {"99999999999h", -1}, {".s", -1},     {"inf s", -1},
        {"1e3ms", -1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (farm_config_parse_duration_ms(t[i].in) != t[i].ms)
            fail_msg("\"%s\": want %ld, got %ld", t[i].in, t[i].ms,
                     farm_config_parse_duration_ms(t[i].in));
    assert_int_equal(farm_config_parse_duration_ms(NULL), -1);
}

static void test_diag(void **state)
{
    farm_diag_t d = {0};
    farm_diag_add(&d, "%s:%d", "a", 1);
    farm_diag_add(&d, "b");
    farm_diag_add(NULL, "ignored");
    assert_int_equal(d.n, 2);
    assert_string_equal(d.items[0], "a:1");
    assert_string_equal(d.items[1], "b");
    farm_diag_clear(&d);
    assert_int_equal(d.n, 0);
    farm_diag_clear(&d);
    farm_diag_clear(NULL);
}

/* A FIFO (or any non-file) given as farm.yaml is refused at once, not blocked on. */
static void test_not_a_regular_file(void **state)
{
    char dir[] = "/tmp/farm-test-config-XXXXXX", path[64];
    farm_config_t *cfg = NULL;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/farm.yaml", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(farm_config_load(&cfg, path, NULL), FARM_EINVALID);
    assert_null(cfg);
    assert_non_null(strstr(farm_error_last(), "not a regular file"));
    assert_int_equal(farm_config_load(&cfg, dir, NULL), FARM_EINVALID);
    unlink(path);
    rmdir(dir);
}

/* history: its defaults, its forms (days, sizes with or without iB), and each bad value
 * refused at its line and column with what it takes. */
static void test_history(void **state)
{
    static const char base[] = "platforms:\n  linux/amd64: [a]\nnodes:\n  a: {}\n";
    char yaml[512];
    farm_config_t *cfg;
    (void)state;

    cfg = s_ok(base);
    assert_int_equal(cfg->history_keep_ms, 7LL * 86400000);
    assert_int_equal(cfg->history_max_builds, 10000);
    assert_int_equal(cfg->history_log_limit, 1 << 20);
    farm_config_destroy(&cfg);
    snprintf(yaml, sizeof yaml, "%shistory:\n  keep: 30d\n  max_builds: 50\n  log_limit: 64KiB\n",
             base);
    cfg = s_ok(yaml);
    assert_int_equal(cfg->history_keep_ms, 30LL * 86400000);
    assert_int_equal(cfg->history_max_builds, 50);
    assert_int_equal(cfg->history_log_limit, 64 << 10);
    farm_config_destroy(&cfg);
    snprintf(yaml, sizeof yaml, "%shistory:\n  keep: 12h\n  log_limit: 2M\n", base);
    cfg = s_ok(yaml);
    assert_int_equal(cfg->history_keep_ms, 12LL * 3600000);
    assert_int_equal(cfg->history_log_limit, 2 << 20);
    farm_config_destroy(&cfg);
    snprintf(yaml, sizeof yaml, "%shistory:\n  keep: forever\n", base);
    s_one(yaml, "t.yaml:6:9", "history.keep: \"forever\" is not a duration from 1m to 3650d");
    snprintf(yaml, sizeof yaml, "%shistory:\n  keep: 0d\n", base);
    s_one(yaml, "t.yaml:6:9", "history.keep");
    snprintf(yaml, sizeof yaml, "%shistory:\n  max_builds: 0\n", base);
    s_one(yaml, "t.yaml:6:15", "history.max_builds");
    snprintf(yaml, sizeof yaml, "%shistory:\n  log_limit: 100\n", base);
    s_one(yaml, "t.yaml:6:14", "history.log_limit");
    snprintf(yaml, sizeof yaml, "%shistory:\n  log_limit: 1K\n", base);
    s_one(yaml, "t.yaml:6:14", "use from 4K to 1G");
    snprintf(yaml, sizeof yaml, "%shistory:\n  keeps: 7d\n", base);
    s_one(yaml, "t.yaml:6:3", "keeps");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_architecture_example),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_keys_and_clients),
        cmocka_unit_test(test_defaults_and_forms),
        cmocka_unit_test(test_build_only_file),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_alias_refused),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_signing_key_file),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_platform_problems),
        cmocka_unit_test(test_undefined_node),
        cmocka_unit_test(test_slots),
        cmocka_unit_test(test_durations_and_endpoints),
        cmocka_unit_test(test_http_settings),
        cmocka_unit_test(test_build_args),
        cmocka_unit_test(test_build_flags),
        cmocka_unit_test(test_build_secrets_stay_in_the_repository),
        cmocka_unit_test(test_keyless_endpoint_is_literal_loopback),
        cmocka_unit_test(test_registries),
        cmocka_unit_test(test_registry_ca_and_grants),
        cmocka_unit_test(test_all_problems_in_one_pass),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_diag),
        cmocka_unit_test(test_not_a_regular_file),
        cmocka_unit_test(test_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
