/* SPDX-License-Identifier: Apache-2.0 */
/* farm.yaml's schema: the bounded YAML tree (common/yamltree.c) -> a checked
 * farm_config_t. Every problem is collected (not just the first) as
 * "PATH:LINE:COLUMN: what is wrong; what to do". */
#include "common/config.h"
#include "common/keys.h"

#include <ctype.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buildflags.h"
#include "common/endpoint.h"
#include "common/error.h"
#include "common/limits.h"
#include "common/platform.h"
#include "common/str.h"

#define S_MAX_BYTES (1024 * 1024)
#define S_MAX_SLOTS 1024
/* A label for messages: a few words around one farm_yaml_quote() (< 128 bytes) */
#define S_WHAT_MAX (128 + 32)
#define S_MAX_HEARTBEAT_MS 3600000L
#define S_MAX_QUEUE_TIMEOUT_MS (7L * 24 * 3600 * 1000)
#define S_MAX_LIVENESS 100
#define S_MAX_CACHE_WAIT_MS 600000L /* 10 minutes: longer is no longer "briefly" */

static const farm_yaml_limits_t s_limits = {
    .max_bytes = S_MAX_BYTES,
    .max_depth = 32,
    .max_nodes = 200000,
    .max_problems = 100,
    .doc = "farm.yaml",
    .depth_used = 4,
};

/* A node name used under platforms:, checked against nodes: once both are read. */
typedef struct {
    const farm_yaml_node_t *name;
    size_t platform; /* index into cfg->platforms */
} s_ref_t;

typedef struct {
    farm_yaml_t *y; /* the tree and the problems found */
    farm_config_t *cfg;
    s_ref_t *refs;
    size_t n_refs, cap_refs;
    const farm_yaml_node_t *key_at; /* where keys were last seen, for messages */
    const farm_yaml_node_t *agents_at, *clients_at; /* coordinator.agents, .clients */
} s_ctx_t;

/* Printable, no whitespace: safe to echo unquoted in a message. */
static int s_word(const char *s)
{
    for (; *s; s++)
        if (!isgraph((unsigned char)*s))
            return 0;
    return 1;
}

/* A size: a number with K, M, G or T (powers of 1024), e.g. 500M or 20G. */
static void s_want_size(s_ctx_t *ctx, const farm_yaml_node_t *n, const char *what,
                        unsigned long long *out)
{
    const char *s;
    char *end;
    unsigned long long v;
    int shift;

    if (!(s = farm_yaml_want_string(ctx->y, n, what, "write a size, e.g. 500M or 20G")))
        return;
    v = strtoull(s, &end, 10);
    shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : *end == 'T' ? 40 : -1;
    if (end == s || shift < 0 || (end[1] && strcmp(end + 1, "iB") != 0) || v == 0 ||
        v > (1ULL << 50) >> shift) {
        farm_yaml_problem(ctx->y, FARM_YAML_AT(n), "%s: %s is not a size; write a number and K, "
                          "M, G or T, e.g. 500M or 20G", what, farm_yaml_quote(s));
        return;
    }
    *out = v << shift;
}

static int s_want_duration(s_ctx_t *ctx, const farm_yaml_node_t *n, const char *what, long min,
                           long max, int *out)
{
    long v;
    const char *s;
    if (n->bad)
        return -1;
    if (n->kind != FARM_YAML_SCALAR || farm_yaml_is_null(n)) {
        farm_yaml_problem(ctx->y, FARM_YAML_AT(n),
                          "%s must be a duration, got %s; write e.g. 500ms, 1s, 2m or 1h", what,
                          farm_yaml_what(n));
        return -1;
    }
    s = n->value;
    /* a bare 0 is unambiguous where 0 is allowed (it turns the wait off) */
    v = min == 0 && !strcmp(s, "0") ? 0 : farm_config_parse_duration_ms(s);
    if (v < 0) {
        int digits = 1;
        for (const char *p = s; *p; p++)
            digits &= isdigit((unsigned char)*p) != 0;
        farm_yaml_problem(ctx->y, FARM_YAML_AT(n), "%s: %s is not a duration; %s", what,
                          farm_yaml_quote(s),
                          digits ? "give it a unit, e.g. 500ms, 1s, 2m or 1h"
                                 : "write a number and a unit (ms, s, m, h), e.g. 500ms, 1s or 2m");
        return -1;
    }
    if (v < min || v > max) {
        if (max >= 3600000)
            farm_yaml_problem(ctx->y, FARM_YAML_AT(n), "%s: %s is out of range; use from %s to "
                              "%ldh", what, farm_yaml_quote(s), min ? "1ms" : "0", max / 3600000);
        else
            farm_yaml_problem(ctx->y, FARM_YAML_AT(n), "%s: %s is out of range; use from %s to "
                              "%lds", what, farm_yaml_quote(s), min ? "1ms" : "0", max / 1000);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static char *s_want_endpoint(s_ctx_t *ctx, const farm_yaml_node_t *n, const char *what)
{
    const char *s = farm_yaml_want_string(ctx->y, n, what, "write e.g. tcp://127.0.0.1:7701");
    farm_endpoint_t ep;
    if (!s)
        return NULL;
    if (farm_endpoint_parse(&ep, s) < 0) {
        farm_yaml_problem(ctx->y, FARM_YAML_AT(n), "%s: %s is not a valid endpoint; %s", what,
                          farm_yaml_quote(s), farm_error_last());
        return NULL;
    }
    return farm_yaml_strdup(ctx->y, s);
}

/* -- sections ------------------------------------------------------------------------ */

static const char *const s_top_keys[] = {"coordinator", "platforms", "nodes", "clients",
                                         "registries", "build", "history", NULL};
static const char *const s_coord_keys[] = {"agents",      "clients",       "heartbeat",
                                           "liveness",    "queue_timeout", "job_timeout",
                                           "context_ttl", "state_dir",     "public_key",
                                           "secret_key_file", "max_builds_per_client",
                                           "max_uploads", "max_uploads_per_client",
                                           "context_quota", "cache_wait", "signing_key_file",
                                           "http", "http_token_file", NULL};
static const char *const s_plat_keys[] = {"native", "emulated", NULL};
static const char *const s_node_keys[] = {"slots", "key", NULL};
static const char *const s_client_keys[] = {"key", "role", NULL};

/* A CURVE public key in Z85, as `farmctl keygen` prints it. */
static char *s_want_key(s_ctx_t *ctx, const farm_yaml_node_t *n, const char *what)
{
    const char *s = farm_yaml_want_string(ctx->y, n, what,
                                          "write the 40-character public key that farmctl "
                                          "keygen wrote to NAME.pub");
    if (!s)
        return NULL;
    if (!farm_key_valid(s)) {
        farm_yaml_problem(ctx->y, FARM_YAML_AT(n), "%s: %s is not a CURVE public key (40 "
                          "Z85 characters from farmctl keygen's NAME.pub)", what,
                          farm_yaml_quote(s));
        return NULL;
    }
    return farm_yaml_strdup(ctx->y, s);
}
static const char *const s_reg_keys[] = {"insecure", "ca", "credentials_for", NULL};
static const char *const s_build_keys[] = {"tags",   "platforms", "dockerfile", "network",
                                           "args",   "target",    "no_cache",   "pull",
                                           "labels", "annotations", "secrets",  "cache",
                                           "provenance", NULL};

static void s_coordinator(s_ctx_t *ctx, farm_yaml_node_t *map)
{
    farm_config_t *cfg = ctx->cfg;
    const farm_yaml_node_t *agents = NULL, *clients = NULL;

    if (farm_yaml_want_map(ctx->y, map, "coordinator:",
                           "write e.g. \"coordinator: {agents: "
                           "tcp://0.0.0.0:7700}\" with the keys indented "
                           "under it") < 0)
        return;
    farm_yaml_check_keys(ctx->y, map, s_coord_keys, "under coordinator:");
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const farm_yaml_node_t *k = map->items[i], *v = map->items[i + 1];
        const char *s;
        if (k->skip)
            continue;
        if (!strcmp(k->value, "agents")) {
            if ((cfg->agents_endpoint = s_want_endpoint(ctx, v, "coordinator.agents")))
                agents = ctx->agents_at = v;
        } else if (!strcmp(k->value, "clients")) {
            if ((cfg->clients_endpoint = s_want_endpoint(ctx, v, "coordinator.clients")))
                clients = ctx->clients_at = v;
        } else if (!strcmp(k->value, "heartbeat")) {
            s_want_duration(ctx, v, "coordinator.heartbeat", 1, S_MAX_HEARTBEAT_MS,
                            &cfg->heartbeat_ms);
        } else if (!strcmp(k->value, "context_ttl")) {
            s_want_duration(ctx, v, "coordinator.context_ttl", 1, S_MAX_QUEUE_TIMEOUT_MS,
                            &cfg->context_ttl_ms);
        } else if (!strcmp(k->value, "job_timeout")) {
            s_want_duration(ctx, v, "coordinator.job_timeout", 1, S_MAX_QUEUE_TIMEOUT_MS,
                            &cfg->job_timeout_ms);
        } else if (!strcmp(k->value, "queue_timeout")) {
            s_want_duration(ctx, v, "coordinator.queue_timeout", 1, S_MAX_QUEUE_TIMEOUT_MS,
                            &cfg->queue_timeout_ms);
        } else if (!strcmp(k->value, "cache_wait")) {
            s_want_duration(ctx, v, "coordinator.cache_wait", 0, S_MAX_CACHE_WAIT_MS,
                            &cfg->cache_wait_ms);
        } else if (!strcmp(k->value, "liveness")) {
            farm_yaml_want_int(ctx->y, v, "coordinator.liveness", 1, S_MAX_LIVENESS,
                               &cfg->liveness);
        } else if (!strcmp(k->value, "state_dir")) {
            if ((s = farm_yaml_want_string(ctx->y, v, "coordinator.state_dir",
                                           "write a directory, e.g. /var/lib/farm")))
                cfg->state_dir = farm_yaml_strdup(ctx->y, s);
        } else if (!strcmp(k->value, "max_builds_per_client")) {
            farm_yaml_want_int(ctx->y, v, "coordinator.max_builds_per_client", 1, 100000,
                               &cfg->max_builds_per_client);
        } else if (!strcmp(k->value, "max_uploads")) {
            farm_yaml_want_int(ctx->y, v, "coordinator.max_uploads", 1, 4096, &cfg->max_uploads);
        } else if (!strcmp(k->value, "max_uploads_per_client")) {
            farm_yaml_want_int(ctx->y, v, "coordinator.max_uploads_per_client", 1, 4096,
                               &cfg->max_uploads_per_client);
        } else if (!strcmp(k->value, "context_quota")) {
            s_want_size(ctx, v, "coordinator.context_quota", &cfg->context_quota);
        } else if (!strcmp(k->value, "public_key")) {
            cfg->public_key = s_want_key(ctx, v, "coordinator.public_key");
            cfg->public_key_line = v->line;
            cfg->public_key_column = v->col;
            ctx->key_at = v;
        } else if (!strcmp(k->value, "http")) {
            if ((s = farm_yaml_want_string(ctx->y, v, "coordinator.http",
                                           "write ADDR:PORT, e.g. 127.0.0.1:9180"))) {
                if (farm_endpoint_parse_addr(NULL, 0, NULL, &cfg->http_loopback, s) < 0)
                    farm_yaml_problem(ctx->y, FARM_YAML_AT(v), "coordinator.http: %s: %s",
                                      farm_yaml_quote(s), farm_error_last());
                else
                    cfg->http = farm_yaml_strdup(ctx->y, s);
                cfg->http_line = v->line;
                cfg->http_column = v->col;
            }
        } else if (!strcmp(k->value, "http_token_file")) {
            if ((s = farm_yaml_want_string(ctx->y, v, "coordinator.http_token_file",
                                           "write the path of a file holding the token, "
                                           "e.g. /etc/farm/http.token")))
                cfg->http_token_file = farm_yaml_strdup(ctx->y, s);
        } else if (!strcmp(k->value, "secret_key_file")) {
            if ((s = farm_yaml_want_string(ctx->y, v, "coordinator.secret_key_file",
                                           "write the path of the coordinator's key file "
                                           "(farmctl keygen)")))
                cfg->secret_key_file = farm_yaml_strdup(ctx->y, s);
            ctx->key_at = v;
        } else if (!strcmp(k->value, "signing_key_file")) {
            if ((s = farm_yaml_want_string(ctx->y, v, "coordinator.signing_key_file",
                                           "write the path of the index signing key "
                                           "(farmctl keygen --signing NAME wrote NAME.key)")))
                cfg->signing_key_file = farm_yaml_strdup(ctx->y, s);
            cfg->signing_key_line = v->line;
            cfg->signing_key_column = v->col;
        }
    }
    /* the page and API show every build: off the machine only behind a token */
    if (cfg->http && !cfg->http_loopback && !cfg->http_token_file)
        farm_yaml_problem(ctx->y, cfg->http_line, cfg->http_column,
                          "coordinator.http is %s, which is not a loopback address, but "
                          "coordinator.http_token_file is not set: anyone who reaches it "
                          "could read every build and node. Bind 127.0.0.1:PORT, or add "
                          "coordinator.http_token_file naming a file that holds a token "
                          "(e.g. openssl rand -hex 32 > /etc/farm/http.token)",
                          farm_yaml_quote(cfg->http));
    if (agents && clients && !strcmp(agents->value, clients->value))
        farm_yaml_problem(ctx->y, FARM_YAML_AT(clients),
                          "coordinator.clients is the same endpoint as "
                          "coordinator.agents (%d:%d); give them different ports",
                          FARM_YAML_AT(agents));
}

static int s_name_ok(const char *s)
{
    size_t n = strlen(s);
    /* nodes keep a client's layer cache in a directory of its name: never . or .. */
    if (!n || n > FARM_NAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return 0;
    return 1;
}

/* A list of node names under a platform, appended to *names. */
static void s_node_list(s_ctx_t *ctx, const farm_yaml_node_t *seq, size_t platform,
                        const char *plat, const char *kind, char ***names, size_t *n_names)
{
    char **grown;
    if (seq->bad)
        return;
    if (seq->kind != FARM_YAML_SEQ) {
        farm_yaml_problem(ctx->y, FARM_YAML_AT(seq),
                          "%s of %s must be a list of node names, got %s; write e.g. "
                          "%s: [x86-1, x86-2]",
                          kind, plat, farm_yaml_what(seq), kind);
        return;
    }
    if (!(grown = realloc(*names, (*n_names + seq->n + 1) * sizeof *grown))) {
        farm_yaml_set_oom(ctx->y);
        return;
    }
    *names = grown;
    for (size_t i = 0; i < seq->n; i++) {
        const farm_yaml_node_t *it = seq->items[i];
        const char *s = farm_yaml_want_string(ctx->y, it, "a node name",
                                              "write the name of a node "
                                              "defined under nodes:");
        if (!s)
            continue;
        if (farm_yaml_grow(ctx->y, (void **)&ctx->refs, &ctx->cap_refs, ctx->n_refs,
                           sizeof *ctx->refs) < 0)
            return;
        ctx->refs[ctx->n_refs++] = (s_ref_t){it, platform};
        if (((*names)[*n_names] = farm_yaml_strdup(ctx->y, s)))
            (*n_names)++;
    }
}

static void s_on_dup_name(farm_yaml_t *y, const farm_yaml_entry_t *dup,
                          const farm_yaml_entry_t *first, void *arg)
{
    farm_yaml_problem(y, FARM_YAML_AT(dup->node),
                      "node %s is listed twice for %s (first at %d:%d); list "
                      "each node once, under native or emulated",
                      farm_yaml_quote(dup->s), (const char *)arg, FARM_YAML_AT(first->node));
}

static void s_on_dup_platform(farm_yaml_t *y, const farm_yaml_entry_t *dup,
                              const farm_yaml_entry_t *first, void *arg)
{
    farm_yaml_problem(y, FARM_YAML_AT(dup->node),
                      "%s names the platform %s again (first at %d:%d as %s); "
                      "%s",
                      farm_yaml_quote(dup->node->value), dup->s, FARM_YAML_AT(first->node),
                      farm_yaml_quote(first->node->value), (const char *)arg);
}

static void s_platforms(s_ctx_t *ctx, farm_yaml_node_t *map)
{
    farm_config_t *cfg = ctx->cfg;
    farm_yaml_entry_t *canon = NULL;
    size_t n_canon = 0;

    if (farm_yaml_want_map(ctx->y, map, "platforms:",
                           "write one platform per line, e.g. "
                           "\"linux/amd64: [x86-1]\"") < 0)
        return;
    farm_yaml_check_keys(ctx->y, map, NULL, "under platforms:");
    if (!(cfg->platforms = calloc(map->n / 2 + 1, sizeof *cfg->platforms))) {
        farm_yaml_set_oom(ctx->y);
        return;
    }
    if (!(canon = calloc(map->n / 2 + 1, sizeof *canon))) {
        farm_yaml_set_oom(ctx->y);
        return;
    }
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const farm_yaml_node_t *k = map->items[i], *v = map->items[i + 1];
        farm_config_platform_t *p;
        farm_platform_t plat;
        char str[FARM_PLATFORM_STRLEN];
        farm_yaml_entry_t *names;
        size_t first_ref = ctx->n_refs, n_names = 0;

        if (k->skip)
            continue;
        if (farm_platform_parse(&plat, k->value) < 0) {
            farm_yaml_problem(ctx->y, FARM_YAML_AT(k), "%s", farm_error_last());
            continue;
        }
        farm_platform_format(str, sizeof str, &plat);
        p = &cfg->platforms[cfg->n_platforms];
        if (!(p->platform = farm_yaml_strdup(ctx->y, str)))
            break;
        p->line = k->line;
        p->column = k->col;
        canon[n_canon++] = (farm_yaml_entry_t){p->platform, i, k};

        if (farm_yaml_is_null(v)) {
            farm_yaml_problem(ctx->y, FARM_YAML_AT(k),
                              "platform %s lists no nodes; write e.g. \"%s: [node-name]\" "
                              "or remove it",
                              str, k->value);
        } else if (v->kind == FARM_YAML_SEQ) {
            s_node_list(ctx, v, cfg->n_platforms, str, "the node list", &p->native,
                        &p->n_native);
        } else if (v->kind == FARM_YAML_MAP) {
            char where[FARM_PLATFORM_STRLEN + 16]; /* str is a formatted platform */
            size_t before = farm_yaml_problem_count(ctx->y);
            snprintf(where, sizeof where, "under %s:", str);
            farm_yaml_check_keys(ctx->y, (farm_yaml_node_t *)v, s_plat_keys, where);
            for (size_t j = 0; j + 1 < v->n; j += 2) {
                const farm_yaml_node_t *kk = v->items[j], *vv = v->items[j + 1];
                if (kk->skip)
                    continue;
                if (farm_yaml_is_null(vv))
                    continue; /* "emulated:" with nothing: no emulated nodes */
                if (!strcmp(kk->value, "native"))
                    s_node_list(ctx, vv, cfg->n_platforms, str, "native", &p->native,
                                &p->n_native);
                else
                    s_node_list(ctx, vv, cfg->n_platforms, str, "emulated", &p->emulated,
                                &p->n_emulated);
            }
            /* "no nodes" only when nothing else was said about them */
            if (!p->n_native && !p->n_emulated && !farm_yaml_oom(ctx->y) &&
                before == farm_yaml_problem_count(ctx->y))
                farm_yaml_problem(ctx->y, FARM_YAML_AT(k),
                                  "platform %s lists no nodes; add a node under "
                                  "native: or emulated:, or remove the platform",
                                  str);
        } else if (!v->bad) {
            farm_yaml_problem(ctx->y, FARM_YAML_AT(v),
                              "platform %s must map to a list of node names, got %s; "
                              "write e.g. \"%s: [%s]\"",
                              str, farm_yaml_what(v), str,
                              s_name_ok(v->value) ? v->value : "node-name");
        }
        cfg->n_platforms++;

        /* the same node twice for one platform (native and emulated count together) */
        if (!(names = calloc(ctx->n_refs - first_ref + 1, sizeof *names))) {
            farm_yaml_set_oom(ctx->y);
            break;
        }
        for (size_t j = first_ref; j < ctx->n_refs; j++)
            names[n_names++] = (farm_yaml_entry_t){ctx->refs[j].name->value, j, ctx->refs[j].name};
        farm_yaml_find_dups(ctx->y, names, n_names, s_on_dup_name, str);
        free(names);
    }
    farm_yaml_find_dups(
        ctx->y, canon, n_canon, s_on_dup_platform,
        "list each platform once (aliases like aarch64 and arm64/v8 mean linux/arm64)");
    free(canon);
}

static void s_nodes(s_ctx_t *ctx, farm_yaml_node_t *map)
{
    farm_config_t *cfg = ctx->cfg;

    if (farm_yaml_want_map(ctx->y, map, "nodes:",
                           "write one node per line, e.g. "
                           "\"x86-1: {slots: 4}\"") < 0)
        return;
    farm_yaml_check_keys(ctx->y, map, NULL, "under nodes:");
    if (!(cfg->nodes = calloc(map->n / 2 + 1, sizeof *cfg->nodes))) {
        farm_yaml_set_oom(ctx->y);
        return;
    }
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        farm_yaml_node_t *k = map->items[i], *v = map->items[i + 1];
        farm_config_node_t *node;
        char what[S_WHAT_MAX];

        if (k->skip)
            continue;
        if (!s_name_ok(k->value))
            farm_yaml_problem(ctx->y, FARM_YAML_AT(k),
                              "node name %s is not valid; use 1 to %d letters, digits, "
                              "'-', '_' or '.'",
                              farm_yaml_quote(k->value), FARM_NAME_MAX);
        /* recorded even when invalid, so references to it are not reported twice */
        node = &cfg->nodes[cfg->n_nodes++];
        if (!(node->name = farm_yaml_strdup(ctx->y, k->value)))
            return;
        node->slots = 1;
        node->line = k->line;
        node->column = k->col;
        snprintf(what, sizeof what, "node %s", farm_yaml_quote(k->value));
        if (farm_yaml_want_map(ctx->y, v, what,
                               "write e.g. \"x86-1: {slots: 4}\" or \"x86-1: {}\"") < 0)
            continue;
        snprintf(what, sizeof what, "under node %s", farm_yaml_quote(k->value));
        farm_yaml_check_keys(ctx->y, v, s_node_keys, what);
        for (size_t j = 0; j + 1 < v->n; j += 2) {
            int is_key;
            if (v->items[j]->skip)
                continue; /* a key that is not a scalar has no value to compare */
            is_key = !strcmp(v->items[j]->value, "key");
            snprintf(what, sizeof what, "nodes.%s.%s",
                     s_name_ok(k->value) ? k->value : farm_yaml_quote(k->value),
                     is_key ? "key" : "slots");
            if (is_key) {
                node->key = s_want_key(ctx, v->items[j + 1], what);
                node->key_given = 1;
                ctx->key_at = v->items[j + 1];
            } else {
                farm_yaml_want_int(ctx->y, v->items[j + 1], what, 1, S_MAX_SLOTS, &node->slots);
            }
        }
    }
}

static void s_clients(s_ctx_t *ctx, farm_yaml_node_t *map)
{
    farm_config_t *cfg = ctx->cfg;

    if (farm_yaml_want_map(ctx->y, map, "clients:",
                           "write one client per line, e.g. "
                           "\"alice: {key: KEY, role: submit}\"") < 0)
        return;
    farm_yaml_check_keys(ctx->y, map, NULL, "under clients:");
    if (!(cfg->clients = calloc(map->n / 2 + 1, sizeof *cfg->clients))) {
        farm_yaml_set_oom(ctx->y);
        return;
    }
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        farm_yaml_node_t *k = map->items[i], *v = map->items[i + 1];
        farm_config_client_t *cl;
        char what[S_WHAT_MAX];
        const char *role = NULL;
        int key_given = 0;

        if (k->skip)
            continue;
        if (!s_name_ok(k->value))
            farm_yaml_problem(ctx->y, FARM_YAML_AT(k),
                              "client name %s is not valid; use 1 to %d letters, digits, "
                              "'-', '_' or '.'", farm_yaml_quote(k->value), FARM_NAME_MAX);
        cl = &cfg->clients[cfg->n_clients++];
        if (!(cl->name = farm_yaml_strdup(ctx->y, k->value)))
            return;
        cl->line = k->line;
        cl->column = k->col;
        ctx->key_at = k;
        snprintf(what, sizeof what, "client %s", farm_yaml_quote(k->value));
        if (farm_yaml_want_map(ctx->y, v, what, "write e.g. \"alice: {key: KEY, role: submit}\"") < 0)
            continue;
        snprintf(what, sizeof what, "under client %s", farm_yaml_quote(k->value));
        farm_yaml_check_keys(ctx->y, v, s_client_keys, what);
        for (size_t j = 0; j + 1 < v->n; j += 2) {
            const farm_yaml_node_t *ck = v->items[j], *cv = v->items[j + 1];
            if (ck->skip)
                continue;
            snprintf(what, sizeof what, "clients.%s.%s",
                     s_name_ok(k->value) ? k->value : farm_yaml_quote(k->value), ck->value);
            if (!strcmp(ck->value, "key")) {
                cl->key = s_want_key(ctx, cv, what);
                key_given = 1;
                continue;
            }
            if (!(role = farm_yaml_want_string(ctx->y, cv, what, "write read, submit or admin")))
                continue;
            cl->role = !strcmp(role, "read")     ? FARM_ROLE_READ
                       : !strcmp(role, "submit") ? FARM_ROLE_SUBMIT
                       : !strcmp(role, "admin")  ? FARM_ROLE_ADMIN
                                                 : FARM_ROLE_NONE;
            if (!cl->role)
                farm_yaml_problem(ctx->y, FARM_YAML_AT(cv), "%s: %s is not a role; use read "
                                  "(nodes, builds), submit (and build) or admin (and cancel "
                                  "any build, drain nodes)", what, farm_yaml_quote(role));
        }
        if (!cl->key && v->kind == FARM_YAML_MAP && !key_given)
            farm_yaml_problem(ctx->y, FARM_YAML_AT(k), "client %s has no key; add \"key: ...\" "
                              "with the public key from farmctl keygen", farm_yaml_quote(k->value));
        if (!role && v->kind == FARM_YAML_MAP)
            farm_yaml_problem(ctx->y, FARM_YAML_AT(k), "client %s has no role; add \"role: "
                              "read\", \"role: submit\" or \"role: admin\"",
                              farm_yaml_quote(k->value));
    }
}

typedef struct {
    const char *key, *kind, *name;
    int line, column;
} s_keyref_t;

static int s_keyref_cmp(const void *a, const void *b)
{
    const s_keyref_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->line != y->line ? x->line - y->line : x->column - y->column);
}

/* One key, one identity: a key shared by two nodes, two clients, or a peer and the
 * coordinator would let one act as the other. */
static void s_check_unique_keys(s_ctx_t *ctx)
{
    const farm_config_t *cfg = ctx->cfg;
    size_t n = 0;
    s_keyref_t *refs = calloc(cfg->n_nodes + cfg->n_clients + 2, sizeof *refs);

    if (!refs) {
        farm_yaml_set_oom(ctx->y);
        return;
    }
    if (cfg->public_key)
        refs[n++] = (s_keyref_t){cfg->public_key, "the coordinator", "", 0, 0};
    for (size_t i = 0; i < cfg->n_nodes; i++)
        if (cfg->nodes[i].key)
            refs[n++] = (s_keyref_t){cfg->nodes[i].key, "node", cfg->nodes[i].name,
                                     cfg->nodes[i].line, cfg->nodes[i].column};
    for (size_t i = 0; i < cfg->n_clients; i++)
        if (cfg->clients[i].key)
            refs[n++] = (s_keyref_t){cfg->clients[i].key, "client", cfg->clients[i].name,
                                     cfg->clients[i].line, cfg->clients[i].column};
    qsort(refs, n, sizeof *refs, s_keyref_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(refs[i].key, refs[i - 1].key) == 0)
            farm_yaml_problem(ctx->y, refs[i].line ? refs[i].line : 1,
                              refs[i].column ? refs[i].column : 1,
                              "%s %s has the same key as %s%s%s; each node and client needs a "
                              "key of its own (farmctl keygen)", refs[i].kind, refs[i].name,
                              refs[i - 1].kind, refs[i - 1].name[0] ? " " : "", refs[i - 1].name);
    free(refs);
}

/* Keys, all or none: with keys every node and client is known by its key and both
 * endpoints use CURVE; without keys only this machine may reach the endpoints. */
static void s_check_security(s_ctx_t *ctx)
{
    farm_config_t *cfg = ctx->cfg;
    int any = cfg->public_key || cfg->secret_key_file || cfg->n_clients;

    for (size_t i = 0; i < cfg->n_nodes; i++)
        any |= cfg->nodes[i].key != NULL;
    if (!any) {
        /* farmctl talks to coordinator.clients in the clear (logins, secrets) whatever else
         * the file holds, so a repository's farm.yaml is held to this rule as well */
        const farm_yaml_node_t *at[] = {ctx->agents_at, ctx->clients_at};
        const char *eps[] = {cfg->agents_endpoint, cfg->clients_endpoint};
        const char *names[] = {"coordinator.agents", "coordinator.clients"};
        for (int i = 0; i < 2; i++) {
            farm_endpoint_t ep;
            if (!eps[i] || !at[i] || farm_endpoint_parse(&ep, eps[i]) < 0 || ep.loopback)
                continue;
            /* without platforms: (not a coordinator's file) only farmctl reads it, and it
             * reaches a wildcard coordinator.clients on 127.0.0.1 */
            if (!cfg->n_platforms && (i == 0 || ep.wildcard))
                continue;
            farm_yaml_problem(ctx->y, FARM_YAML_AT(at[i]), "%s is %s, which is not a "
                              "loopback address, but farm.yaml names no keys: %s would "
                              "travel unencrypted to whatever that is. Write a literal "
                              "loopback address (tcp://127.0.0.1:PORT, tcp://[::1]:PORT) or "
                              "ipc://PATH (a host name is never taken for this machine), or "
                              "give the farm keys: farmctl keygen, coordinator.public_key, "
                              "coordinator.secret_key_file, a key for each node and clients:",
                              names[i], farm_yaml_quote(eps[i]),
                              i ? "farmctl's registry logins and build secrets"
                                : "every job and its registry logins");
        }
        return;
    }
    cfg->secure = 1;
    /* farmctl reads farm.yaml for the coordinator's public key only: the rest is the
     * coordinator's business (farmctl validate checks it all) */
    if (!cfg->public_key)
        farm_yaml_problem(ctx->y, ctx->key_at ? ctx->key_at->line : 1,
                          ctx->key_at ? ctx->key_at->col : 1,
                          "keys are configured but coordinator.public_key is missing; add the "
                          "coordinator's public key (farmctl keygen coordinator)");
    if (cfg->n_platforms && !cfg->secret_key_file)
        farm_yaml_problem(ctx->y, ctx->key_at ? ctx->key_at->line : 1,
                          ctx->key_at ? ctx->key_at->col : 1,
                          "keys are configured but coordinator.secret_key_file is missing; "
                          "name the coordinator's key file");
    s_check_unique_keys(ctx);
    for (size_t i = 0; i < cfg->n_nodes; i++)
        if (!cfg->nodes[i].key_given)
            farm_yaml_problem(ctx->y, cfg->nodes[i].line, cfg->nodes[i].column,
                              "node %s has no key, so it could never connect; add \"key: ...\" "
                              "with its public key (farmctl keygen %s on that host)",
                              farm_yaml_quote(cfg->nodes[i].name), cfg->nodes[i].name);
}

static void s_registries(s_ctx_t *ctx, farm_yaml_node_t *map)
{
    farm_config_t *cfg = ctx->cfg;

    if (farm_yaml_want_map(ctx->y, map, "registries:",
                           "write e.g. \"registries: {\\\"registry.local:5000\\\": "
                           "{insecure: true}}\"") < 0)
        return;
    farm_yaml_check_keys(ctx->y, map, NULL, "under registries:");
    if (!(cfg->registries = calloc(map->n / 2 + 1, sizeof *cfg->registries))) {
        farm_yaml_set_oom(ctx->y);
        return;
    }
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        farm_yaml_node_t *k = map->items[i], *v = map->items[i + 1];
        farm_config_registry_t *r;
        char what[S_WHAT_MAX];
        const char *bad = NULL;

        if (k->skip)
            continue;
        if (!k->value[0])
            bad = "it is empty";
        else if (strstr(k->value, "://"))
            bad = "write the host as in image references, without a scheme";
        else
            for (const char *p = k->value; *p && !bad; p++)
                if (*p == '/' || isspace((unsigned char)*p) || !isprint((unsigned char)*p))
                    bad = "write host or host:port only, without a path or spaces";
        if (bad) {
            farm_yaml_problem(ctx->y, FARM_YAML_AT(k),
                              "registry %s is not a host: %s (e.g. \"registry.local:5000\")",
                              farm_yaml_quote(k->value), bad);
            continue;
        }
        r = &cfg->registries[cfg->n_registries++];
        if (!(r->host = farm_yaml_strdup(ctx->y, k->value)))
            return;
        snprintf(what, sizeof what, "registry %s", farm_yaml_quote(k->value));
        if (farm_yaml_want_map(ctx->y, v, what, "write e.g. {insecure: true}") < 0)
            continue;
        snprintf(what, sizeof what, "under registry %s", farm_yaml_quote(k->value));
        farm_yaml_check_keys(ctx->y, v, s_reg_keys, what);
        r->line = k->line;
        r->column = k->col;
        for (size_t j = 0; j + 1 < v->n; j += 2) {
            const farm_yaml_node_t *key = v->items[j], *val = v->items[j + 1];
            if (key->skip)
                continue;
            snprintf(what, sizeof what, "registries.%s.%s", farm_yaml_quote(k->value),
                     key->value);
            if (!strcmp(key->value, "insecure")) {
                farm_yaml_want_bool(ctx->y, val, what, &r->insecure);
            } else if (!strcmp(key->value, "ca")) {
                const char *ca = farm_yaml_want_string(ctx->y, val, what,
                                                       "write the path of a PEM CA bundle, "
                                                       "e.g. /etc/farm/registry-ca.pem");
                if (ca && !(r->ca = farm_yaml_strdup(ctx->y, ca)))
                    return;
            } else if (!strcmp(key->value, "credentials_for")) {
                const farm_yaml_node_t *l = farm_yaml_want_list(
                    ctx->y, val, what, "write the client names, e.g. [ci], or [\"*\"]");
                if (!l)
                    continue;
                if (!(r->credentials_for = calloc(l->n + 1, sizeof *r->credentials_for))) {
                    farm_yaml_set_oom(ctx->y);
                    return;
                }
                for (size_t m = 0; m < l->n; m++) {
                    const char *name = farm_yaml_want_string(ctx->y, l->items[m], what,
                                                             "write a client name");
                    if (!name)
                        continue;
                    if (!(r->credentials_for[r->n_credentials_for++] =
                              farm_yaml_strdup(ctx->y, name)))
                        return;
                }
            }
        }
    }
}

static void s_on_dup_tag(farm_yaml_t *y, const farm_yaml_entry_t *dup,
                         const farm_yaml_entry_t *first, void *arg)
{
    farm_yaml_problem(y, FARM_YAML_AT(dup->node),
                      "tag %s is listed twice in build.tags (first at %d:%d); "
                      "remove one",
                      farm_yaml_quote(dup->s), FARM_YAML_AT(first->node));
}

/* build.labels / build.annotations: {KEY: VALUE}, each checked as farmctl's --label /
 * --annotation would check it (set_fn on a scratch set of flags). */
static void s_build_meta(s_ctx_t *ctx, const farm_yaml_node_t *v, const char *what,
                         int (*set_fn)(farm_buildflags_t *, const char *, const char *),
                         farm_kv_t **out, size_t *n_out)
{
    farm_buildflags_t scratch = {0};

    if (farm_yaml_want_map(ctx->y, v, what, "write e.g. {org.opencontainers.image.vendor: "
                           "\"Example\"}") < 0 || farm_yaml_is_null(v))
        return;
    farm_yaml_check_keys(ctx->y, (farm_yaml_node_t *)v, NULL, what);
    if (!(*out = calloc(v->n / 2 + 1, sizeof **out))) {
        farm_yaml_set_oom(ctx->y);
        return;
    }
    for (size_t j = 0; j + 1 < v->n; j += 2) {
        const farm_yaml_node_t *k = v->items[j], *val = v->items[j + 1];
        if (k->skip || val->bad)
            continue;
        if (val->kind != FARM_YAML_SCALAR || farm_yaml_is_null(val)) {
            farm_yaml_problem(ctx->y, FARM_YAML_AT(val), "%s %s must be a single value, got %s; "
                              "write %s: \"...\"", what, farm_yaml_quote(k->value),
                              farm_yaml_what(val), k->value);
            continue;
        }
        if (set_fn(&scratch, k->value, val->value) < 0) {
            farm_yaml_problem(ctx->y, FARM_YAML_AT(k), "%s: %s", what, farm_error_last());
            continue;
        }
        (*out)[*n_out].key = farm_yaml_strdup(ctx->y, k->value);
        (*out)[*n_out].value = farm_yaml_strdup(ctx->y, val->value);
        (*n_out)++;
    }
    farm_buildflags_clear(&scratch);
}

/* A checked-in farm.yaml is written by whoever can change the repository: its secrets
 * are files of the repository, never the user's environment or files elsewhere (farmctl
 * submit checks the resolved path again, symlinks followed). 1 if the spec was refused. */
static int s_secret_outside(s_ctx_t *ctx, const farm_yaml_node_t *n, const char *s,
                            const farm_secret_spec_t *spec)
{
    const char *p = spec->source;
    int dotdot = 0;

    if (spec->kind != FARM_SECRET_FILE) {
        farm_yaml_problem(ctx->y, FARM_YAML_AT(n), "build.secrets: %s reads %s; a farm.yaml "
                          "checked into a repository may not send your environment with a "
                          "build: pass --secret %s to farmctl submit instead, or write "
                          "id=%s,src=FILE with a file inside the repository",
                          farm_yaml_quote(s), spec->kind == FARM_SECRET_ENV
                              ? "an environment variable" : "the environment variable of "
                                                            "its id when one is set",
                          s, spec->id);
        return 1;
    }
    for (const char *c = p; *c; c += strcspn(c, "/"), c += *c == '/') {
        if (c[0] == '.' && c[1] == '.' && (c[2] == '/' || !c[2]))
            dotdot = 1;
    }
    if (p[0] == '/' || p[0] == '~' || dotdot) {
        farm_yaml_problem(ctx->y, FARM_YAML_AT(n), "build.secrets: %s names a file outside "
                          "the repository; a checked-in farm.yaml may only send files inside "
                          "it (src= relative to farm.yaml's directory, no \"..\"): pass "
                          "--secret id=%s,src=%s to farmctl submit instead", farm_yaml_quote(s),
                          spec->id, p);
        return 1;
    }
    return 0;
}

/* build.secrets: farmctl --secret specs; a value never belongs in a checked-in file. */
static void s_build_secrets(s_ctx_t *ctx, const farm_yaml_node_t *v, farm_config_build_t *b)
{
    const farm_yaml_node_t *l = farm_yaml_want_list(ctx->y, v, "build.secrets",
                                                    "write e.g. [\"id=npmrc,src=.npmrc\"]");
    if (!l)
        return;
    if (!(b->secrets = calloc(l->n + 1, sizeof *b->secrets))) {
        farm_yaml_set_oom(ctx->y);
        return;
    }
    for (size_t j = 0; j < l->n; j++) {
        farm_secret_spec_t spec;
        const char *s = farm_yaml_want_string(ctx->y, l->items[j], "a build secret",
                                              "write id=ID,src=FILE");
        if (!s)
            continue;
        if (farm_secret_spec_parse(&spec, s) < 0) {
            farm_yaml_problem(ctx->y, FARM_YAML_AT(l->items[j]), "build.secrets: %s",
                              farm_error_last());
            continue;
        }
        if (s_secret_outside(ctx, l->items[j], s, &spec))
            continue;
        b->secrets[b->n_secrets++] = farm_yaml_strdup(ctx->y, s);
    }
    if (b->n_secrets > FARM_SECRETS_MAX)
        farm_yaml_problem(ctx->y, FARM_YAML_AT(l), "build.secrets: %zu secrets; farm sends at "
                          "most %d", b->n_secrets, FARM_SECRETS_MAX);
}

static const char *const s_history_keys[] = {"keep", "max_builds", "log_limit", NULL};

/* history: {keep: 7d, max_builds: 10000, log_limit: 1M} */
static void s_history(s_ctx_t *ctx, farm_yaml_node_t *map)
{
    farm_config_t *cfg = ctx->cfg;

    if (farm_yaml_want_map(ctx->y, map, "history:",
                           "indent keep:, max_builds: and log_limit: under it") < 0)
        return;
    farm_yaml_check_keys(ctx->y, map, s_history_keys, "under history:");
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const farm_yaml_node_t *k = map->items[i], *v = map->items[i + 1];
        if (k->skip)
            continue;
        if (!strcmp(k->value, "keep")) {
            const char *s = farm_yaml_want_string(ctx->y, v, "history.keep",
                                                  "write a duration, e.g. 7d, 12h or 30m");
            long long ms = -1;
            char *end;
            if (!s)
                continue;
            if (s[0] && s[strlen(s) - 1] == 'd') { /* days: the unit a retention is said in */
                long long d = strtoll(s, &end, 10);
                ms = end != s && *end == 'd' && !end[1] && d > 0 && d <= 3650
                         ? d * 86400000LL : -1;
            } else if (farm_config_parse_duration_ms(s) >= 0) {
                ms = farm_config_parse_duration_ms(s);
            }
            if (ms < 60000 || ms > 3650LL * 86400000) {
                farm_yaml_problem(ctx->y, FARM_YAML_AT(v), "history.keep: %s is not a duration "
                                  "from 1m to 3650d; write e.g. 7d, 12h or 30m",
                                  farm_yaml_quote(s));
                continue;
            }
            cfg->history_keep_ms = ms;
        } else if (!strcmp(k->value, "max_builds")) {
            farm_yaml_want_int(ctx->y, v, "history.max_builds", 1, 1000000,
                               &cfg->history_max_builds);
        } else if (!strcmp(k->value, "log_limit")) {
            unsigned long long n = 0;
            s_want_size(ctx, v, "history.log_limit", &n);
            if (n && (n < 4096 || n > (1ULL << 30)))
                farm_yaml_problem(ctx->y, FARM_YAML_AT(v), "history.log_limit: %llu bytes is "
                                  "out of range; use from 4K to 1G", n);
            else if (n)
                cfg->history_log_limit = n;
        }
    }
}

static void s_build(s_ctx_t *ctx, farm_yaml_node_t *map)
{
    farm_config_build_t *b = &ctx->cfg->build;

    b->present = 1;
    if (farm_yaml_want_map(ctx->y, map, "build:",
                           "indent tags:, platforms:, dockerfile: and args: "
                           "under it") < 0)
        return;
    farm_yaml_check_keys(ctx->y, map, s_build_keys, "under build:");
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const farm_yaml_node_t *k = map->items[i], *v = map->items[i + 1], *l;
        const char *s;
        farm_yaml_entry_t *seen;
        size_t n_seen = 0;

        if (k->skip)
            continue;
        if (!strcmp(k->value, "dockerfile")) {
            if ((s = farm_yaml_want_string(ctx->y, v, "build.dockerfile",
                                           "write a path relative to the "
                                           "context, e.g. Dockerfile")))
                b->dockerfile = farm_yaml_strdup(ctx->y, s);
        } else if (!strcmp(k->value, "target")) {
            farm_buildflags_t scratch = {0};
            if (!(s = farm_yaml_want_string(ctx->y, v, "build.target",
                                            "write a stage name of the Dockerfile")))
                continue;
            if (farm_buildflags_set_target(&scratch, s) < 0)
                farm_yaml_problem(ctx->y, FARM_YAML_AT(v), "build.target: %s", farm_error_last());
            else
                b->target = farm_yaml_strdup(ctx->y, s);
            farm_buildflags_clear(&scratch);
        } else if (!strcmp(k->value, "cache")) {
            farm_buildflags_t scratch = {0};
            if (!(s = farm_yaml_want_string(ctx->y, v, "build.cache",
                                            "write REGISTRY/REPOSITORY, e.g. "
                                            "registry.example.com/team/app-cache")))
                continue;
            if (farm_buildflags_cache_spec(&scratch, 1, s) < 0)
                farm_yaml_problem(ctx->y, FARM_YAML_AT(v), "build.cache: %s", farm_error_last());
            else
                b->cache = farm_yaml_strdup(ctx->y, s);
            farm_buildflags_clear(&scratch);
        } else if (!strcmp(k->value, "provenance")) {
            farm_buildflags_t scratch = {0};
            if (!(s = farm_yaml_want_string(ctx->y, v, "build.provenance",
                                            "write false, min or max")))
                continue;
            if (farm_buildflags_provenance_spec(&scratch, s) < 0)
                farm_yaml_problem(ctx->y, FARM_YAML_AT(v), "build.provenance: %s is not false, "
                                  "min or max (buildx's modes; true is min)", farm_yaml_quote(s));
            else
                b->provenance = scratch.provenance;
        } else if (!strcmp(k->value, "no_cache")) {
            farm_yaml_want_bool(ctx->y, v, "build.no_cache", &b->no_cache);
        } else if (!strcmp(k->value, "pull")) {
            farm_yaml_want_bool(ctx->y, v, "build.pull", &b->pull);
        } else if (!strcmp(k->value, "labels")) {
            s_build_meta(ctx, v, "build.labels", farm_buildflags_set_label, &b->labels,
                         &b->n_labels);
        } else if (!strcmp(k->value, "annotations")) {
            s_build_meta(ctx, v, "build.annotations", farm_buildflags_set_annotation,
                         &b->annotations, &b->n_annotations);
        } else if (!strcmp(k->value, "secrets")) {
            s_build_secrets(ctx, v, b);
        } else if (!strcmp(k->value, "network")) {
            if (!(s = farm_yaml_want_string(ctx->y, v, "build.network",
                                            "write default or none")))
                continue;
            if (farm_build_network_parse(s, &b->network_none) < 0)
                farm_yaml_problem(ctx->y, v->line, v->col, "build.network: %s",
                                  farm_error_last());
        } else if (!strcmp(k->value, "tags")) {
            if (!(l = farm_yaml_want_list(ctx->y, v, "build.tags",
                                          "write e.g. [registry.example.com/team/app:latest]")))
                continue;
            b->tags = calloc(l->n + 1, sizeof *b->tags);
            seen = calloc(l->n + 1, sizeof *seen);
            if (!b->tags || !seen) {
                free(seen);
                farm_yaml_set_oom(ctx->y);
                return;
            }
            for (size_t j = 0; j < l->n; j++) {
                const farm_yaml_node_t *it = l->items[j];
                if (!(s = farm_yaml_want_string(ctx->y, it, "a tag",
                                                "write an image reference, e.g. "
                                                "registry.example.com/team/app:1.4")))
                    continue;
                if (!s_word(s)) {
                    farm_yaml_problem(ctx->y, FARM_YAML_AT(it),
                                      "tag %s contains whitespace or control "
                                      "characters; write one image reference per list "
                                      "item",
                                      farm_yaml_quote(s));
                    continue;
                }
                seen[n_seen++] = (farm_yaml_entry_t){s, j, it};
                b->tags[b->n_tags++] = farm_yaml_strdup(ctx->y, s);
            }
            farm_yaml_find_dups(ctx->y, seen, n_seen, s_on_dup_tag, NULL);
            free(seen);
        } else if (!strcmp(k->value, "platforms")) {
            if (!(l = farm_yaml_want_list(ctx->y, v, "build.platforms",
                                          "write e.g. [linux/amd64, linux/arm64]")))
                continue;
            b->platforms = calloc(l->n + 1, sizeof *b->platforms);
            seen = calloc(l->n + 1, sizeof *seen);
            if (!b->platforms || !seen) {
                free(seen);
                farm_yaml_set_oom(ctx->y);
                return;
            }
            for (size_t j = 0; j < l->n; j++) {
                const farm_yaml_node_t *it = l->items[j];
                farm_platform_t p;
                char str[FARM_PLATFORM_STRLEN];
                if (!(s = farm_yaml_want_string(ctx->y, it, "a build platform",
                                                "write e.g. linux/arm64")))
                    continue;
                if (farm_platform_parse(&p, s) < 0) {
                    farm_yaml_problem(ctx->y, FARM_YAML_AT(it), "build.platforms: %s",
                                      farm_error_last());
                    continue;
                }
                farm_platform_format(str, sizeof str, &p);
                if (!(b->platforms[b->n_platforms] = farm_yaml_strdup(ctx->y, str)))
                    break;
                seen[n_seen++] = (farm_yaml_entry_t){b->platforms[b->n_platforms], j, it};
                b->n_platforms++;
            }
            farm_yaml_find_dups(ctx->y, seen, n_seen, s_on_dup_platform,
                                "list each platform once in build.platforms");
            free(seen);
        } else if (!strcmp(k->value, "args")) {
            if (farm_yaml_want_map(ctx->y, v, "build.args", "write e.g. {VERSION: \"1.4\"}") < 0 ||
                farm_yaml_is_null(v))
                continue;
            farm_yaml_check_keys(ctx->y, (farm_yaml_node_t *)v, NULL, "under build.args:");
            if (!(b->args = calloc(v->n / 2 + 1, sizeof *b->args))) {
                farm_yaml_set_oom(ctx->y);
                return;
            }
            for (size_t j = 0; j + 1 < v->n; j += 2) {
                const farm_yaml_node_t *ak = v->items[j], *av = v->items[j + 1];
                farm_kv_t *kv;
                if (ak->skip)
                    continue;
                if (!ak->value[0] || strchr(ak->value, '=') || !s_word(ak->value)) {
                    farm_yaml_problem(ctx->y, FARM_YAML_AT(ak),
                                      "build arg name %s is not valid; use a name "
                                      "without '=' or spaces, e.g. VERSION",
                                      farm_yaml_quote(ak->value));
                    continue;
                }
                if (av->bad)
                    continue;
                if (av->kind != FARM_YAML_SCALAR) {
                    farm_yaml_problem(ctx->y, FARM_YAML_AT(av),
                                      "build arg %s must be a single value, got %s; "
                                      "write e.g. %s: \"1.4\"",
                                      ak->value, farm_yaml_what(av), ak->value);
                    continue;
                }
                if (farm_yaml_is_null(av)) {
                    farm_yaml_problem(ctx->y, FARM_YAML_AT(ak),
                                      "build arg %s has no value; write %s: \"\" for an "
                                      "empty one",
                                      ak->value, ak->value);
                    continue;
                }
                kv = &b->args[b->n_args];
                kv->key = farm_yaml_strdup(ctx->y, ak->value);
                kv->value = farm_yaml_strdup(ctx->y, av->value);
                b->n_args++;
            }
        }
    }
}

/* Every node named under platforms: must be defined under nodes:. */
/* registries.*.credentials_for names enrolled clients (or "*"): a typo would silently
 * leave a client without the login it was meant to get. */
static void s_check_grants(s_ctx_t *ctx)
{
    const farm_config_t *cfg = ctx->cfg;

    for (size_t i = 0; cfg->n_clients && i < cfg->n_registries; i++) {
        const farm_config_registry_t *r = &cfg->registries[i];
        for (size_t j = 0; j < r->n_credentials_for; j++) {
            int found = strcmp(r->credentials_for[j], "*") == 0;
            for (size_t k = 0; !found && k < cfg->n_clients; k++)
                found = strcmp(cfg->clients[k].name, r->credentials_for[j]) == 0;
            if (!found)
                farm_yaml_problem(ctx->y, r->line, r->column,
                                  "registries.%s.credentials_for names client %s, which is "
                                  "not under clients:; enrol it or fix the name",
                                  r->host, farm_yaml_quote(r->credentials_for[j]));
        }
    }
}

static void s_check_refs(s_ctx_t *ctx)
{
    const farm_config_t *cfg = ctx->cfg;
    farm_yaml_entry_t *defined = NULL;

    if (!ctx->n_refs)
        return;
    if (!(defined = calloc(cfg->n_nodes + 1, sizeof *defined))) {
        farm_yaml_set_oom(ctx->y);
        return;
    }
    for (size_t i = 0; i < cfg->n_nodes; i++)
        defined[i] = (farm_yaml_entry_t){cfg->nodes[i].name, 0, NULL};
    qsort(defined, cfg->n_nodes, sizeof *defined, farm_yaml_entry_cmp);
    for (size_t i = 0; i < ctx->n_refs; i++) {
        const s_ref_t *r = &ctx->refs[i];
        farm_yaml_entry_t key = {r->name->value, 0, NULL};
        if (bsearch(&key, defined, cfg->n_nodes, sizeof *defined, farm_yaml_entry_cmp))
            continue;
        if (s_name_ok(r->name->value))
            farm_yaml_problem(ctx->y, FARM_YAML_AT(r->name),
                              "node %s is mapped to %s but is not defined under "
                              "nodes:; add \"%s: {slots: 1}\" under nodes: or fix "
                              "the name",
                              farm_yaml_quote(r->name->value), cfg->platforms[r->platform].platform,
                              r->name->value);
        else
            farm_yaml_problem(ctx->y, FARM_YAML_AT(r->name),
                              "node %s is mapped to %s but is not a valid node "
                              "name; use a name defined under nodes: (letters, "
                              "digits, '-', '_', '.')",
                              farm_yaml_quote(r->name->value),
                              cfg->platforms[r->platform].platform);
    }
    free(defined);
}

static void s_top(s_ctx_t *ctx, farm_yaml_node_t *root)
{
    if (!root || farm_yaml_is_null(root)) {
        farm_yaml_problem(ctx->y, 1, 1,
                          "the file is empty; write coordinator:, platforms: and nodes: "
                          "(or build: for a repository's defaults)");
        return;
    }
    if (root->bad)
        return;
    if (root->kind != FARM_YAML_MAP) {
        farm_yaml_problem(ctx->y, FARM_YAML_AT(root),
                          "the top level must be a map of sections, got %s; start "
                          "with coordinator:, platforms:, nodes:, registries: or build:",
                          farm_yaml_what(root));
        return;
    }
    farm_yaml_check_keys(ctx->y, root, s_top_keys, "at the top level");
    for (size_t i = 0; i + 1 < root->n; i += 2) {
        const farm_yaml_node_t *k = root->items[i];
        farm_yaml_node_t *v = root->items[i + 1];
        if (k->skip)
            continue;
        if (!strcmp(k->value, "coordinator"))
            s_coordinator(ctx, v);
        else if (!strcmp(k->value, "platforms"))
            s_platforms(ctx, v);
        else if (!strcmp(k->value, "nodes"))
            s_nodes(ctx, v);
        else if (!strcmp(k->value, "clients"))
            s_clients(ctx, v);
        else if (!strcmp(k->value, "registries"))
            s_registries(ctx, v);
        else if (!strcmp(k->value, "build"))
            s_build(ctx, v);
        else if (!strcmp(k->value, "history"))
            s_history(ctx, v);
        if (farm_yaml_oom(ctx->y))
            return;
    }
    s_check_refs(ctx);
    s_check_security(ctx);
    s_check_grants(ctx);
}

/* -- public -------------------------------------------------------------------------- */

int farm_config_parse(farm_config_t **out, const char *name, const char *yaml, size_t len,
                      farm_diag_t *diags)
{
    s_ctx_t ctx = {0};
    farm_config_t *cfg;
    int rc;

    *out = NULL;
    name = name ? name : "farm.yaml";
    if (!(cfg = calloc(1, sizeof *cfg)) || !(cfg->path = strdup(name)) ||
        !(ctx.y = farm_yaml_new(name, &s_limits))) {
        farm_config_destroy(&cfg);
        return farm_error_set(FARM_ERROR, "%s: out of memory", name);
    }
    cfg->heartbeat_ms = 1000;
    cfg->liveness = 3;
    cfg->queue_timeout_ms = 600000;
    cfg->job_timeout_ms = 7200000;
    cfg->context_ttl_ms = 86400000;
    cfg->cache_wait_ms = 3000;
    cfg->max_builds_per_client = 64;
    cfg->history_keep_ms = 7LL * 86400000;
    cfg->history_max_builds = 10000;
    cfg->history_log_limit = 1ULL << 20;
    cfg->max_uploads = FARM_UPLOADS_MAX;
    cfg->max_uploads_per_client = FARM_UPLOADS_PER_CLIENT_MAX;
    cfg->context_quota = 20ULL << 30;
    ctx.cfg = cfg;

    if (farm_yaml_load(ctx.y, yaml, len) == 0)
        s_top(&ctx, farm_yaml_root(ctx.y));
    rc = farm_yaml_finish(ctx.y, diags);
    farm_yaml_destroy(&ctx.y);
    free(ctx.refs);
    if (rc < 0)
        farm_config_destroy(&cfg);
    *out = cfg;
    return rc;
}

int farm_config_load(farm_config_t **out, const char *path, farm_diag_t *diags)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0;
    struct stat st;
    int rc;

    *out = NULL;
    if (!path || !*path)
        return farm_error_set(FARM_EINVALID, "no farm.yaml path given");
    /* O_NONBLOCK: a FIFO given as farm.yaml is refused below instead of blocking open() */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        rc = farm_error_set(errno == ENOENT ? FARM_ENOTFOUND : FARM_EIO,
                            "%s: cannot open: %s; check the path or pass the right file", path,
                            strerror(errno));
        goto fail;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        rc = farm_error_set(FARM_EINVALID, "%s: not a regular file; pass a farm.yaml file", path);
        goto fail;
    }
    if (!(f = fdopen(fd, "rb"))) {
        close(fd);
        rc = farm_error_set(FARM_EIO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!(buf = malloc(S_MAX_BYTES + 1))) {
        rc = farm_error_set(FARM_ERROR, "%s: out of memory", path);
        goto fail;
    }
    len = fread(buf, 1, S_MAX_BYTES + 1, f);
    if (ferror(f)) {
        rc = farm_error_set(FARM_EIO, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    if (len > S_MAX_BYTES) {
        rc = farm_error_set(FARM_ETOOBIG, "%s: larger than %d bytes; farm.yaml is not meant to "
                                          "be this large, trim it", path, S_MAX_BYTES);
        goto fail;
    }
    fclose(f);
    rc = farm_config_parse(out, path, buf, len, diags);
    free(buf);
    return rc;
fail:
    farm_diag_add(diags, "%s", farm_error_last());
    if (f)
        fclose(f);
    free(buf);
    return rc;
}

static void s_free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void farm_config_destroy(farm_config_t **self_p)
{
    farm_config_t *c;
    if (!self_p || !*self_p)
        return;
    c = *self_p;
    free(c->path);
    free(c->agents_endpoint);
    free(c->clients_endpoint);
    free(c->state_dir);
    for (size_t i = 0; i < c->n_platforms; i++) {
        free(c->platforms[i].platform);
        s_free_strv(c->platforms[i].native, c->platforms[i].n_native);
        s_free_strv(c->platforms[i].emulated, c->platforms[i].n_emulated);
    }
    free(c->platforms);
    for (size_t i = 0; i < c->n_nodes; i++) {
        free(c->nodes[i].name);
        free(c->nodes[i].key);
    }
    free(c->nodes);
    for (size_t i = 0; i < c->n_clients; i++) {
        free(c->clients[i].name);
        free(c->clients[i].key);
    }
    free(c->clients);
    free(c->public_key);
    free(c->secret_key_file);
    free(c->signing_key_file);
    free(c->http);
    free(c->http_token_file);
    for (size_t i = 0; i < c->n_registries; i++) {
        free(c->registries[i].host);
        free(c->registries[i].ca);
        free(c->registries[i].ca_pem);
        s_free_strv(c->registries[i].credentials_for, c->registries[i].n_credentials_for);
    }
    free(c->registries);
    s_free_strv(c->build.tags, c->build.n_tags);
    s_free_strv(c->build.platforms, c->build.n_platforms);
    free(c->build.dockerfile);
    for (size_t i = 0; i < c->build.n_args; i++) {
        free(c->build.args[i].key);
        free(c->build.args[i].value);
    }
    free(c->build.args);
    free(c->build.target);
    free(c->build.cache);
    for (size_t i = 0; i < c->build.n_labels; i++) {
        free(c->build.labels[i].key);
        free(c->build.labels[i].value);
    }
    free(c->build.labels);
    for (size_t i = 0; i < c->build.n_annotations; i++) {
        free(c->build.annotations[i].key);
        free(c->build.annotations[i].value);
    }
    free(c->build.annotations);
    s_free_strv(c->build.secrets, c->build.n_secrets);
    free(c);
    *self_p = NULL;
}

const char *farm_role_name(farm_role_t role)
{
    switch (role) {
    case FARM_ROLE_READ: return "read";
    case FARM_ROLE_SUBMIT: return "submit";
    case FARM_ROLE_ADMIN: return "admin";
    default: return "none";
    }
}

const farm_config_node_t *farm_config_node(const farm_config_t *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->n_nodes; i++)
        if (strcmp(cfg->nodes[i].name, name) == 0)
            return &cfg->nodes[i];
    return NULL;
}

const farm_config_platform_t *farm_config_platform(const farm_config_t *cfg, const char *platform)
{
    farm_platform_t p;
    char str[FARM_PLATFORM_STRLEN];

    if (!cfg || !platform || farm_platform_parse(&p, platform) < 0)
        return NULL;
    farm_platform_format(str, sizeof str, &p);
    for (size_t i = 0; i < cfg->n_platforms; i++)
        if (strcmp(cfg->platforms[i].platform, str) == 0)
            return &cfg->platforms[i];
    return NULL;
}

int farm_config_registry_insecure(const farm_config_t *cfg, const char *registry_host)
{
    if (!cfg || !registry_host)
        return 0;
    for (size_t i = 0; i < cfg->n_registries; i++)
        if (strcmp(cfg->registries[i].host, registry_host) == 0)
            return cfg->registries[i].insecure;
    return 0;
}

const farm_config_registry_t *farm_config_registry(const farm_config_t *cfg, const char *host)
{
    if (!cfg || !host)
        return NULL;
    for (size_t i = 0; i < cfg->n_registries; i++)
        if (strcmp(cfg->registries[i].host, host) == 0)
            return &cfg->registries[i];
    return NULL;
}

int farm_config_registry_grants(const farm_config_registry_t *r, const char *client)
{
    if (!r || !client)
        return 0;
    for (size_t i = 0; i < r->n_credentials_for; i++)
        if (strcmp(r->credentials_for[i], "*") == 0 ||
            (client[0] && strcmp(r->credentials_for[i], client) == 0))
            return 1;
    return 0;
}

int farm_config_load_cas(farm_config_t *cfg)
{
    for (size_t i = 0; cfg && i < cfg->n_registries; i++) {
        farm_config_registry_t *r = &cfg->registries[i];
        FILE *f;
        char *buf;
        size_t n;

        if (!r->ca || r->ca_pem)
            continue;
        if (!(f = fopen(r->ca, "re")))
            return farm_error_set(FARM_EIO, "%s:%d:%d: registries.%s.ca: cannot read %s: %s",
                                  cfg->path, r->line, r->column, r->host, r->ca,
                                  strerror(errno));
        if (!(buf = malloc(FARM_CA_PEM_MAX + 1))) {
            fclose(f);
            return farm_error_set(FARM_ERROR, "out of memory");
        }
        n = fread(buf, 1, FARM_CA_PEM_MAX + 1, f);
        fclose(f);
        buf[n > FARM_CA_PEM_MAX ? FARM_CA_PEM_MAX : n] = '\0';
        if (n > FARM_CA_PEM_MAX || !strstr(buf, "-----BEGIN CERTIFICATE-----")) {
            free(buf);
            return farm_error_set(FARM_EINVALID, "%s:%d:%d: registries.%s.ca: %s %s", cfg->path,
                                  r->line, r->column, r->host, r->ca,
                                  n > FARM_CA_PEM_MAX ? "is larger than 256 KiB"
                                                      : "holds no PEM certificate");
        }
        r->ca_pem = buf;
        r->ca_pem_len = n;
    }
    return 0;
}

long farm_config_parse_duration_ms(const char *s)
{
    double total = 0;
    int parts = 0;

    if (!s)
        return -1;
    while (isspace((unsigned char)*s))
        s++;
    while (*s && !isspace((unsigned char)*s)) {
        char num[32];
        size_t n = 0;
        int digits = 0, dots = 0;
        double unit;

        while (isdigit((unsigned char)*s) || *s == '.') {
            if (n + 1 >= sizeof num)
                return -1;
            digits += isdigit((unsigned char)*s) != 0;
            dots += *s == '.';
            num[n++] = *s++;
        }
        num[n] = '\0';
        if (!digits || dots > 1)
            return -1;
        if (s[0] == 'm' && s[1] == 's') {
            unit = 1;
            s += 2;
        } else if (s[0] == 's') {
            unit = 1000;
            s++;
        } else if (s[0] == 'm') {
            unit = 60000;
            s++;
        } else if (s[0] == 'h') {
            unit = 3600000;
            s++;
        } else {
            return -1; /* a bare number has no unit: 1000 could be ms or s */
        }
        total += strtod(num, NULL) * unit;
        if (total > 1e12)
            return -1;
        parts++;
    }
    while (isspace((unsigned char)*s))
        s++;
    if (!parts || *s)
        return -1;
    return (long)(total + 0.5);
}

/* ------------------------------------------------------------------ reload */

static int s_same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* One setting a running coordinator cannot take on: its name, and both values said. */
static int s_fixed(const farm_config_t *neu, const char *name, const char *was, const char *now)
{
    return farm_error_set(FARM_EINVALID, "%s: %s cannot change on reload (%s -> %s); restart "
                          "the coordinator, or put the old value back", neu->path, name,
                          was ? was : "not set", now ? now : "not set");
}

int farm_config_reload_check(const farm_config_t *old, const farm_config_t *neu)
{
    char a[32], b[32];

    if (!s_same_str(old->agents_endpoint, neu->agents_endpoint))
        return s_fixed(neu, "coordinator.agents", old->agents_endpoint, neu->agents_endpoint);
    if (!s_same_str(old->clients_endpoint, neu->clients_endpoint))
        return s_fixed(neu, "coordinator.clients", old->clients_endpoint, neu->clients_endpoint);
    if (!s_same_str(old->state_dir, neu->state_dir))
        return s_fixed(neu, "coordinator.state_dir", old->state_dir, neu->state_dir);
    if (!s_same_str(old->public_key, neu->public_key))
        return s_fixed(neu, "coordinator.public_key", old->public_key, neu->public_key);
    if (!s_same_str(old->secret_key_file, neu->secret_key_file))
        return s_fixed(neu, "coordinator.secret_key_file", old->secret_key_file,
                       neu->secret_key_file);
    /* the coordinator read and checked the key at start; a new one needs the same checks
     * before any index is signed with it */
    if (!s_same_str(old->signing_key_file, neu->signing_key_file))
        return s_fixed(neu, "coordinator.signing_key_file", old->signing_key_file,
                       neu->signing_key_file);
    if (!s_same_str(old->http, neu->http))
        return s_fixed(neu, "coordinator.http", old->http, neu->http);
    if (!s_same_str(old->http_token_file, neu->http_token_file))
        return s_fixed(neu, "coordinator.http_token_file", old->http_token_file,
                       neu->http_token_file);
#define S_FIXED_NUM(field, name, fmt)                                                        \
    if (old->field != neu->field) {                                                          \
        snprintf(a, sizeof a, fmt, old->field);                                              \
        snprintf(b, sizeof b, fmt, neu->field);                                              \
        return s_fixed(neu, name, a, b);                                                     \
    }
    S_FIXED_NUM(heartbeat_ms, "coordinator.heartbeat", "%d ms")
    S_FIXED_NUM(max_uploads, "coordinator.max_uploads", "%d")
    S_FIXED_NUM(max_uploads_per_client, "coordinator.max_uploads_per_client", "%d")
    S_FIXED_NUM(context_quota, "coordinator.context_quota", "%llu bytes")
#undef S_FIXED_NUM
    if (neu->n_platforms == 0)
        return farm_error_set(FARM_EINVALID, "%s: the coordinator needs at least one entry "
                              "under platforms:", neu->path);
    return 0;
}

int farm_config_platform_map(long **out, const farm_config_t *old, const farm_config_t *neu)
{
    long *map = calloc(old->n_platforms + 1, sizeof *map);

    *out = NULL;
    if (!map)
        return farm_error_set(FARM_ERROR, "out of memory");
    for (size_t i = 0; i < old->n_platforms; i++) {
        const farm_config_platform_t *p = farm_config_platform(neu, old->platforms[i].platform);
        map[i] = p ? (long)(p - neu->platforms) : -1;
    }
    *out = map;
    return 0;
}
