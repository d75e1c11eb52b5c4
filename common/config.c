/* farm.yaml: libyaml events -> a small bounded tree -> checked farm_config_t.
 * Every problem is collected (not just the first) as "PATH:LINE:COLUMN: what is wrong;
 * what to do", then sorted into document order. */
#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "common/error.h"
#include "common/platform.h"

#define S_MAX_BYTES (1024 * 1024) /* libyaml has no size limit of its own */
#define S_MAX_DEPTH 32            /* nor a depth limit */
#define S_MAX_NODES 200000
#define S_MAX_PROBLEMS 100
#define S_MAX_SLOTS 1024
#define S_MAX_NAME 63             /* node names become ZeroMQ routing ids and log fields */
#define S_MAX_HEARTBEAT_MS 3600000L
#define S_MAX_QUEUE_TIMEOUT_MS (7L * 24 * 3600 * 1000)
#define S_MAX_LIVENESS 100

enum { S_SCALAR, S_SEQ, S_MAP };

typedef struct s_node s_node_t;
struct s_node {
    int kind;
    int plain; /* scalar written without quotes or tag: "null", "4", "true" mean what they say */
    int bad;   /* already reported (alias, NUL byte): checks skip it silently */
    int skip;  /* map key that is duplicated, unknown or not a scalar: its value is ignored */
    int line, col; /* 1-based */
    char *value;   /* scalar text */
    s_node_t **items; /* sequence items; map keys and values alternating */
    size_t n, cap;
};

typedef struct {
    int line, col;
    size_t seq;
    char *msg;
} s_problem_t;

/* A node name used under platforms:, checked against nodes: once both are read. */
typedef struct {
    const s_node_t *name;
    size_t platform; /* index into cfg->platforms */
} s_ref_t;

typedef struct {
    const char *name; /* path or name for messages */
    farm_config_t *cfg;
    s_problem_t *problems;
    size_t n_problems, cap_problems, n_dropped, seq;
    s_ref_t *refs;
    size_t n_refs, cap_refs;
    int oom;
} s_ctx_t;

/* -- small helpers ------------------------------------------------------------------- */

static int s_grow(s_ctx_t *ctx, void **arr, size_t *cap, size_t n, size_t size)
{
    void *p;
    size_t ncap;
    if (n < *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 8;
    p = realloc(*arr, ncap * size);
    if (!p) {
        ctx->oom = 1;
        return -1;
    }
    *arr = p;
    *cap = ncap;
    return 0;
}

static char *s_strdup(s_ctx_t *ctx, const char *s)
{
    char *d = strdup(s);
    if (!d)
        ctx->oom = 1;
    return d;
}

/* A user's string, quoted for a message: bounded, control characters escaped. */
static const char *s_q(const char *s)
{
    static _Thread_local char ring[4][128];
    static _Thread_local int next;
    char *buf = ring[next++ & 3];
    size_t i = 0;
    buf[i++] = '"';
    for (; *s && i < sizeof ring[0] - 8; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[i++] = '\\';
            buf[i++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            i += (size_t)snprintf(buf + i, 5, "\\x%02x", c);
        } else {
            buf[i++] = (char)c;
        }
    }
    if (*s) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i++] = '"';
    buf[i] = '\0';
    return buf;
}

static void s_problem(s_ctx_t *ctx, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void s_problem(s_ctx_t *ctx, int line, int col, const char *fmt, ...)
{
    char body[1024], *msg;
    va_list ap;
    int n;

    if (ctx->n_problems >= S_MAX_PROBLEMS) {
        ctx->n_dropped++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    if (line > 0)
        n = asprintf(&msg, "%s:%d:%d: %s", ctx->name, line, col, body);
    else
        n = asprintf(&msg, "%s: %s", ctx->name, body);
    if (n < 0 || s_grow(ctx, (void **)&ctx->problems, &ctx->cap_problems, ctx->n_problems,
                        sizeof *ctx->problems) < 0) {
        if (n >= 0)
            free(msg);
        ctx->oom = 1;
        return;
    }
    ctx->problems[ctx->n_problems++] = (s_problem_t){line, col, ctx->seq++, msg};
}

#define S_AT(node) (node)->line, (node)->col

static int s_is_null(const s_node_t *n)
{
    if (!n)
        return 1;
    return n->kind == S_SCALAR && n->plain && !n->bad &&
           (!n->value[0] || !strcmp(n->value, "~") || !strcmp(n->value, "null") ||
            !strcmp(n->value, "Null") || !strcmp(n->value, "NULL"));
}

/* What a node is, for "got ..." in messages. */
static const char *s_what(const s_node_t *n)
{
    static _Thread_local char buf[160];
    if (s_is_null(n))
        return "nothing";
    if (n->kind == S_SEQ)
        return "a list";
    if (n->kind == S_MAP)
        return "a map";
    snprintf(buf, sizeof buf, "the value %s", s_q(n->value));
    return buf;
}

static size_t s_levenshtein(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64], prev, tmp;
    if (la >= 63 || lb >= 63)
        return 64;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            tmp = row[j];
            row[j] = row[j] + 1;
            if (row[j - 1] + 1 < row[j])
                row[j] = row[j - 1] + 1;
            if (prev + cost < row[j])
                row[j] = prev + cost;
            prev = tmp;
        }
    }
    return row[lb];
}

static int s_cmp_str_idx(const void *a, const void *b);

/* Printable, no whitespace: safe to echo unquoted in a message. */
static int s_word(const char *s)
{
    for (; *s; s++)
        if (!isgraph((unsigned char)*s))
            return 0;
    return 1;
}

/* -- the tree ------------------------------------------------------------------------ */

static void s_node_free(s_node_t *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        s_node_free(n->items[i]);
    free(n->items);
    free(n->value);
    free(n);
}

static void s_syntax_error(s_ctx_t *ctx, const yaml_parser_t *p, const char *yaml, size_t len)
{
    const char *problem = p->problem ? p->problem : "cannot be read";
    size_t at = p->problem_mark.index;
    if (p->error == YAML_MEMORY_ERROR) {
        ctx->oom = 1;
        return;
    }
    if (at < len && yaml[at] == '\t') {
        s_problem(ctx, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
                  "YAML syntax error: a tab character here; YAML indents with spaces only, "
                  "replace the tab with spaces");
        return;
    }
    if (p->context)
        s_problem(ctx, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
                  "YAML syntax error: %s (%s that started at %d:%d); check the indentation, "
                  "quotes and brackets here", problem, p->context, (int)p->context_mark.line + 1,
                  (int)p->context_mark.column + 1);
    else
        s_problem(ctx, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
                  "YAML syntax error: %s; check the indentation, quotes and brackets here",
                  problem);
}

/* Reads the YAML events into a tree, bounding depth and node count. Returns 0 with
 * *out (NULL for an empty stream) or -1 when the document cannot be read at all. */
static int s_load_tree(s_ctx_t *ctx, const char *yaml, size_t len, s_node_t **out)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    s_node_t *stack[S_MAX_DEPTH], *root = NULL, *node;
    size_t depth = 0, count = 0;
    int docs = 0, done = 0, rc = 0;

    *out = NULL;
    if (!yaml_parser_initialize(&parser)) {
        ctx->oom = 1;
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    while (!done) {
        int line, col;
        if (!yaml_parser_parse(&parser, &ev)) {
            s_syntax_error(ctx, &parser, yaml, len);
            rc = -1;
            break;
        }
        line = (int)ev.start_mark.line + 1;
        col = (int)ev.start_mark.column + 1;
        node = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                s_problem(ctx, line, col,
                          "a second YAML document starts here; farm.yaml holds one document: "
                          "remove this \"---\" and merge what follows into the first");
                rc = -1;
                done = 1;
            }
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_SCALAR_EVENT:
        case YAML_ALIAS_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (++count > S_MAX_NODES) {
                s_problem(ctx, line, col, "more than %d YAML nodes; farm.yaml is not meant to "
                                          "be this large, split or trim it", S_MAX_NODES);
                rc = -1;
                done = 1;
                break;
            }
            if (!(node = calloc(1, sizeof *node))) {
                ctx->oom = 1;
                rc = -1;
                done = 1;
                break;
            }
            node->line = line;
            node->col = col;
            if (ev.type == YAML_SCALAR_EVENT) {
                node->kind = S_SCALAR;
                node->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                              !ev.data.scalar.tag;
                node->value = malloc(ev.data.scalar.length + 1);
                if (!node->value) {
                    ctx->oom = 1;
                } else {
                    memcpy(node->value, ev.data.scalar.value, ev.data.scalar.length);
                    node->value[ev.data.scalar.length] = '\0';
                    if (memchr(ev.data.scalar.value, 0, ev.data.scalar.length)) {
                        s_problem(ctx, line, col, "this value contains a NUL character; "
                                                  "remove the \\0 escape");
                        node->bad = 1;
                    }
                }
            } else if (ev.type == YAML_ALIAS_EVENT) {
                /* Refused rather than expanded: no "billion laughs", and a farm file is
                 * short enough to write out. */
                s_problem(ctx, line, col, "YAML aliases (*%s) are not supported in farm.yaml; "
                                          "write the value out in full",
                          (const char *)ev.data.alias.anchor);
                node->kind = S_SCALAR;
                node->bad = 1;
                node->value = s_strdup(ctx, "");
            } else {
                node->kind = ev.type == YAML_SEQUENCE_START_EVENT ? S_SEQ : S_MAP;
            }
            if (!node->value && node->kind == S_SCALAR) {
                free(node);
                rc = -1;
                done = 1;
                break;
            }
            if (depth == 0) {
                root = node;
            } else {
                s_node_t *parent = stack[depth - 1];
                if (s_grow(ctx, (void **)&parent->items, &parent->cap, parent->n,
                           sizeof *parent->items) < 0) {
                    s_node_free(node);
                    rc = -1;
                    done = 1;
                    break;
                }
                parent->items[parent->n++] = node;
            }
            if (node->kind != S_SCALAR) {
                if (depth == S_MAX_DEPTH) {
                    s_problem(ctx, line, col, "nesting deeper than %d levels; farm.yaml needs "
                                              "at most 4, check the indentation", S_MAX_DEPTH);
                    rc = -1;
                    done = 1;
                    break;
                }
                stack[depth++] = node;
            }
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (rc < 0 || ctx->oom) {
        s_node_free(root);
        return -1;
    }
    *out = root;
    return 0;
}

/* -- generic checks ------------------------------------------------------------------ */

typedef struct {
    const char *s;
    size_t idx;
    const s_node_t *node;
} s_str_idx_t;

static int s_cmp_str_idx(const void *a, const void *b)
{
    const s_str_idx_t *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Sorts `v` and calls back for every entry that repeats an earlier one. */
static void s_find_dups(s_ctx_t *ctx, s_str_idx_t *v, size_t n,
                        void (*on_dup)(s_ctx_t *, const s_str_idx_t *dup,
                                       const s_str_idx_t *first, void *),
                        void *arg)
{
    qsort(v, n, sizeof *v, s_cmp_str_idx);
    for (size_t i = 1, first = 0; i < n; i++) {
        if (strcmp(v[i].s, v[first].s) == 0)
            on_dup(ctx, &v[i], &v[first], arg);
        else
            first = i;
    }
}

static void s_on_dup_key(s_ctx_t *ctx, const s_str_idx_t *dup, const s_str_idx_t *first,
                         void *arg)
{
    const char *where = arg;
    ((s_node_t *)dup->node)->skip = 1;
    s_problem(ctx, S_AT(dup->node), "duplicate key %s %s (first at %d:%d); remove one of them",
              s_q(dup->s), where, S_AT(first->node));
}

static void s_list_keys(char *buf, size_t len, const char *const *known)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; known[i] && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", known[i]);
}

/* Checks a map's keys: scalars, no duplicates, and (if `known` is given) known ones.
 * Marks the keys whose values must be ignored with skip. `where` reads "under nodes:". */
static void s_check_keys(s_ctx_t *ctx, s_node_t *map, const char *const *known,
                         const char *where)
{
    s_str_idx_t *v;
    size_t nv = 0;

    if (!map->n)
        return;
    if (!(v = calloc(map->n / 2 + 1, sizeof *v))) {
        ctx->oom = 1;
        return;
    }
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        s_node_t *k = map->items[i];
        if (k->bad) {
            k->skip = 1;
            continue;
        }
        if (k->kind != S_SCALAR) {
            k->skip = 1;
            s_problem(ctx, S_AT(k), "a key %s is %s; keys must be plain names", where,
                      s_what(k));
            continue;
        }
        if (known) {
            size_t j, best = 0, best_d = 99;
            char list[256];
            for (j = 0; known[j] && strcmp(known[j], k->value); j++) {
                size_t d = s_levenshtein(k->value, known[j]);
                if (d < best_d) {
                    best_d = d;
                    best = j;
                }
            }
            if (!known[j]) {
                k->skip = 1;
                s_list_keys(list, sizeof list, known);
                if (best_d <= 2 || (best_d <= 3 && strlen(k->value) > 6))
                    s_problem(ctx, S_AT(k), "unknown key %s %s; did you mean \"%s\"? (known "
                                            "keys: %s)", s_q(k->value), where, known[best], list);
                else
                    s_problem(ctx, S_AT(k), "unknown key %s %s; remove it or use one of the "
                                            "known keys: %s", s_q(k->value), where, list);
                continue;
            }
        }
        v[nv++] = (s_str_idx_t){k->value, i, k};
    }
    s_find_dups(ctx, v, nv, s_on_dup_key, (void *)where);
    free(v);
}

/* A map, or nothing (treated as empty). Reports anything else. */
static int s_want_map(s_ctx_t *ctx, const s_node_t *n, const char *what, const char *hint)
{
    if (n->bad)
        return -1;
    if (n->kind == S_MAP || s_is_null(n))
        return 0;
    s_problem(ctx, S_AT(n), "%s must be a map, got %s; %s", what, s_what(n), hint);
    return -1;
}

/* A scalar that says something: returns its text, or NULL after reporting. */
static const char *s_want_string(s_ctx_t *ctx, const s_node_t *n, const char *what,
                                 const char *hint)
{
    if (n->bad)
        return NULL;
    if (n->kind != S_SCALAR || s_is_null(n) || !n->value[0]) {
        s_problem(ctx, S_AT(n), "%s must be %s, got %s; %s", what,
                  "a non-empty string", s_is_null(n) || n->kind != S_SCALAR ? s_what(n)
                                                                            : "an empty string",
                  hint);
        return NULL;
    }
    return n->value;
}

static int s_want_int(s_ctx_t *ctx, const s_node_t *n, const char *what, long min, long max,
                      int *out)
{
    const char *s = n->value, *d;
    long v = 0;

    if (n->bad)
        return -1;
    if (n->kind != S_SCALAR || !n->plain || s_is_null(n))
        goto bad;
    d = s[0] == '+' ? s + 1 : s;
    if (!*d || strlen(d) > 9)
        goto bad;
    for (const char *p = d; *p; p++) {
        if (!isdigit((unsigned char)*p))
            goto bad;
        v = v * 10 + (*p - '0');
    }
    if (v < min || v > max)
        goto bad;
    *out = (int)v;
    return 0;
bad:
    s_problem(ctx, S_AT(n), "%s must be a whole number from %ld to %ld, got %s%s; e.g. %s: %ld",
              what, min, max, s_what(n),
              n->kind == S_SCALAR && !n->plain && !s_is_null(n) ? " (quoted)" : "",
              strrchr(what, '.') ? strrchr(what, '.') + 1 : what, min);
    return -1;
}

static int s_want_bool(s_ctx_t *ctx, const s_node_t *n, const char *what, int *out)
{
    if (n->bad)
        return -1;
    if (n->kind == S_SCALAR && n->plain) {
        if (!strcmp(n->value, "true") || !strcmp(n->value, "True") || !strcmp(n->value, "TRUE")) {
            *out = 1;
            return 0;
        }
        if (!strcmp(n->value, "false") || !strcmp(n->value, "False") ||
            !strcmp(n->value, "FALSE")) {
            *out = 0;
            return 0;
        }
    }
    s_problem(ctx, S_AT(n), "%s must be true or false, got %s%s; write true or false without "
                            "quotes", what, s_what(n),
              n->kind == S_SCALAR && !n->plain ? " (quoted)" : "");
    return -1;
}

static int s_want_duration(s_ctx_t *ctx, const s_node_t *n, const char *what, long max,
                           int *out)
{
    long v;
    const char *s;
    if (n->bad)
        return -1;
    if (n->kind != S_SCALAR || s_is_null(n)) {
        s_problem(ctx, S_AT(n), "%s must be a duration, got %s; write e.g. 500ms, 1s, 2m or 1h",
                  what, s_what(n));
        return -1;
    }
    s = n->value;
    v = farm_config_parse_duration_ms(s);
    if (v < 0) {
        int digits = 1;
        for (const char *p = s; *p; p++)
            digits &= isdigit((unsigned char)*p) != 0;
        s_problem(ctx, S_AT(n), "%s: %s is not a duration; %s", what, s_q(s),
                  digits ? "give it a unit, e.g. 500ms, 1s, 2m or 1h"
                         : "write a number and a unit (ms, s, m, h), e.g. 500ms, 1s or 2m");
        return -1;
    }
    if (v < 1 || v > max) {
        s_problem(ctx, S_AT(n), "%s: %s is out of range; use from 1ms to %ldh", what, s_q(s),
                  max / 3600000);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* ZeroMQ endpoints the farm can bind or connect: tcp://host:port, ipc://path, inproc://name. */
static int s_endpoint_ok(const char *e, const char **why)
{
    if (!strncmp(e, "tcp://", 6)) {
        const char *host = e + 6, *colon = strrchr(host, ':');
        long port = 0;
        if (!colon || colon == host) {
            *why = "it needs a host and a port, e.g. tcp://127.0.0.1:7701";
            return -1;
        }
        if (host[0] == '[' && colon[-1] != ']') {
            *why = "an IPv6 host goes in brackets, e.g. tcp://[::1]:7701";
            return -1;
        }
        for (const char *p = host; p < colon; p++)
            if (isspace((unsigned char)*p) || *p == '/' || !isprint((unsigned char)*p)) {
                *why = "the host contains a space, a slash or a control character";
                return -1;
            }
        if (!colon[1] || strlen(colon + 1) > 5) {
            *why = "the port must be a number from 1 to 65535";
            return -1;
        }
        for (const char *p = colon + 1; *p; p++) {
            if (!isdigit((unsigned char)*p)) {
                *why = "the port must be a number from 1 to 65535";
                return -1;
            }
            port = port * 10 + (*p - '0');
        }
        if (port < 1 || port > 65535) {
            *why = "the port must be a number from 1 to 65535";
            return -1;
        }
        return 0;
    }
    if (!strncmp(e, "ipc://", 6) || !strncmp(e, "inproc://", 9)) {
        if (!e[e[0] == 'i' && e[1] == 'p' ? 6 : 9]) {
            *why = "it needs a path (ipc://) or a name (inproc://) after the scheme";
            return -1;
        }
        return 0;
    }
    *why = "use tcp://host:port, ipc://path or inproc://name";
    return -1;
}

static char *s_want_endpoint(s_ctx_t *ctx, const s_node_t *n, const char *what)
{
    const char *s = s_want_string(ctx, n, what, "write e.g. tcp://127.0.0.1:7701"), *why;
    if (!s)
        return NULL;
    if (s_endpoint_ok(s, &why) < 0) {
        s_problem(ctx, S_AT(n), "%s: %s is not a valid endpoint; %s", what, s_q(s), why);
        return NULL;
    }
    return s_strdup(ctx, s);
}

/* -- sections ------------------------------------------------------------------------ */

static const char *const s_top_keys[] = {"coordinator", "platforms", "nodes", "registries",
                                         "build", NULL};
static const char *const s_coord_keys[] = {"agents", "clients", "heartbeat", "liveness",
                                           "queue_timeout", "job_timeout", "context_ttl", "state_dir", NULL};
static const char *const s_plat_keys[] = {"native", "emulated", NULL};
static const char *const s_node_keys[] = {"slots", NULL};
static const char *const s_reg_keys[] = {"insecure", NULL};
static const char *const s_build_keys[] = {"tags", "platforms", "dockerfile", "args", NULL};

static void s_coordinator(s_ctx_t *ctx, s_node_t *map)
{
    farm_config_t *cfg = ctx->cfg;
    const s_node_t *agents = NULL, *clients = NULL;

    if (s_want_map(ctx, map, "coordinator:", "write e.g. \"coordinator: {agents: "
                                             "tcp://0.0.0.0:7700}\" with the keys indented "
                                             "under it") < 0)
        return;
    s_check_keys(ctx, map, s_coord_keys, "under coordinator:");
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const s_node_t *k = map->items[i], *v = map->items[i + 1];
        const char *s;
        if (k->skip)
            continue;
        if (!strcmp(k->value, "agents")) {
            if ((cfg->agents_endpoint = s_want_endpoint(ctx, v, "coordinator.agents")))
                agents = v;
        } else if (!strcmp(k->value, "clients")) {
            if ((cfg->clients_endpoint = s_want_endpoint(ctx, v, "coordinator.clients")))
                clients = v;
        } else if (!strcmp(k->value, "heartbeat")) {
            s_want_duration(ctx, v, "coordinator.heartbeat", S_MAX_HEARTBEAT_MS,
                            &cfg->heartbeat_ms);
        } else if (!strcmp(k->value, "context_ttl")) {
            s_want_duration(ctx, v, "coordinator.context_ttl", S_MAX_QUEUE_TIMEOUT_MS,
                            &cfg->context_ttl_ms);
        } else if (!strcmp(k->value, "job_timeout")) {
            s_want_duration(ctx, v, "coordinator.job_timeout", S_MAX_QUEUE_TIMEOUT_MS,
                            &cfg->job_timeout_ms);
        } else if (!strcmp(k->value, "queue_timeout")) {
            s_want_duration(ctx, v, "coordinator.queue_timeout", S_MAX_QUEUE_TIMEOUT_MS,
                            &cfg->queue_timeout_ms);
        } else if (!strcmp(k->value, "liveness")) {
            s_want_int(ctx, v, "coordinator.liveness", 1, S_MAX_LIVENESS, &cfg->liveness);
        } else if (!strcmp(k->value, "state_dir")) {
            if ((s = s_want_string(ctx, v, "coordinator.state_dir",
                                   "write a directory, e.g. /var/lib/farm")))
                cfg->state_dir = s_strdup(ctx, s);
        }
    }
    if (agents && clients && !strcmp(agents->value, clients->value))
        s_problem(ctx, S_AT(clients), "coordinator.clients is the same endpoint as "
                                      "coordinator.agents (%d:%d); give them different ports",
                  S_AT(agents));
}

static int s_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > S_MAX_NAME)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return 0;
    return 1;
}

/* A list of node names under a platform, appended to *names. */
static void s_node_list(s_ctx_t *ctx, const s_node_t *seq, size_t platform, const char *plat,
                        const char *kind, char ***names, size_t *n_names)
{
    char **grown;
    if (seq->bad)
        return;
    if (seq->kind != S_SEQ) {
        s_problem(ctx, S_AT(seq), "%s of %s must be a list of node names, got %s; write e.g. "
                                  "%s: [x86-1, x86-2]", kind, plat, s_what(seq), kind);
        return;
    }
    if (!(grown = realloc(*names, (*n_names + seq->n + 1) * sizeof *grown))) {
        ctx->oom = 1;
        return;
    }
    *names = grown;
    for (size_t i = 0; i < seq->n; i++) {
        const s_node_t *it = seq->items[i];
        const char *s = s_want_string(ctx, it, "a node name", "write the name of a node "
                                                              "defined under nodes:");
        if (!s)
            continue;
        if (s_grow(ctx, (void **)&ctx->refs, &ctx->cap_refs, ctx->n_refs, sizeof *ctx->refs) < 0)
            return;
        ctx->refs[ctx->n_refs++] = (s_ref_t){it, platform};
        if (((*names)[*n_names] = s_strdup(ctx, s)))
            (*n_names)++;
    }
}

static void s_on_dup_name(s_ctx_t *ctx, const s_str_idx_t *dup, const s_str_idx_t *first,
                          void *arg)
{
    s_problem(ctx, S_AT(dup->node), "node %s is listed twice for %s (first at %d:%d); list "
                                    "each node once, under native or emulated",
              s_q(dup->s), (const char *)arg, S_AT(first->node));
}

static void s_on_dup_platform(s_ctx_t *ctx, const s_str_idx_t *dup, const s_str_idx_t *first,
                              void *arg)
{
    s_problem(ctx, S_AT(dup->node), "%s names the platform %s again (first at %d:%d as %s); "
                                    "%s", s_q(dup->node->value), dup->s, S_AT(first->node),
              s_q(first->node->value), (const char *)arg);
}

static void s_platforms(s_ctx_t *ctx, s_node_t *map)
{
    farm_config_t *cfg = ctx->cfg;
    s_str_idx_t *canon = NULL;
    size_t n_canon = 0;

    if (s_want_map(ctx, map, "platforms:", "write one platform per line, e.g. "
                                           "\"linux/amd64: [x86-1]\"") < 0)
        return;
    s_check_keys(ctx, map, NULL, "under platforms:");
    if (!(cfg->platforms = calloc(map->n / 2 + 1, sizeof *cfg->platforms))) {
        ctx->oom = 1;
        return;
    }
    if (!(canon = calloc(map->n / 2 + 1, sizeof *canon))) {
        ctx->oom = 1;
        return;
    }
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const s_node_t *k = map->items[i], *v = map->items[i + 1];
        farm_config_platform_t *p;
        farm_platform_t plat;
        char str[FARM_PLATFORM_STRLEN];
        s_str_idx_t *names;
        size_t first_ref = ctx->n_refs, n_names = 0;

        if (k->skip)
            continue;
        if (farm_platform_parse(&plat, k->value) < 0) {
            s_problem(ctx, S_AT(k), "%s", farm_error_last());
            continue;
        }
        farm_platform_format(str, sizeof str, &plat);
        p = &cfg->platforms[cfg->n_platforms];
        if (!(p->platform = s_strdup(ctx, str)))
            break;
        p->line = k->line;
        p->column = k->col;
        canon[n_canon++] = (s_str_idx_t){p->platform, i, k};

        if (s_is_null(v)) {
            s_problem(ctx, S_AT(k), "platform %s lists no nodes; write e.g. \"%s: [node-name]\" "
                                    "or remove it", str, k->value);
        } else if (v->kind == S_SEQ) {
            s_node_list(ctx, v, cfg->n_platforms, str, "the node list", &p->native,
                        &p->n_native);
        } else if (v->kind == S_MAP) {
            char where[FARM_PLATFORM_STRLEN + 16];
            size_t before = ctx->n_problems + ctx->n_dropped;
            snprintf(where, sizeof where, "under %s:", str);
            s_check_keys(ctx, (s_node_t *)v, s_plat_keys, where);
            for (size_t j = 0; j + 1 < v->n; j += 2) {
                const s_node_t *kk = v->items[j], *vv = v->items[j + 1];
                if (kk->skip)
                    continue;
                if (s_is_null(vv))
                    continue; /* "emulated:" with nothing: no emulated nodes */
                if (!strcmp(kk->value, "native"))
                    s_node_list(ctx, vv, cfg->n_platforms, str, "native", &p->native,
                                &p->n_native);
                else
                    s_node_list(ctx, vv, cfg->n_platforms, str, "emulated", &p->emulated,
                                &p->n_emulated);
            }
            /* "no nodes" only when nothing else was said about them */
            if (!p->n_native && !p->n_emulated && !ctx->oom &&
                before == ctx->n_problems + ctx->n_dropped)
                s_problem(ctx, S_AT(k), "platform %s lists no nodes; add a node under "
                                        "native: or emulated:, or remove the platform", str);
        } else if (!v->bad) {
            s_problem(ctx, S_AT(v), "platform %s must map to a list of node names, got %s; "
                                    "write e.g. \"%s: [%s]\"", str, s_what(v), str,
                      s_name_ok(v->value) ? v->value : "node-name");
        }
        cfg->n_platforms++;

        /* the same node twice for one platform (native and emulated count together) */
        if (!(names = calloc(ctx->n_refs - first_ref + 1, sizeof *names))) {
            ctx->oom = 1;
            break;
        }
        for (size_t j = first_ref; j < ctx->n_refs; j++)
            names[n_names++] = (s_str_idx_t){ctx->refs[j].name->value, j, ctx->refs[j].name};
        s_find_dups(ctx, names, n_names, s_on_dup_name, str);
        free(names);
    }
    s_find_dups(ctx, canon, n_canon, s_on_dup_platform,
                "list each platform once (aliases like aarch64 and arm64/v8 mean linux/arm64)");
    free(canon);
}

static void s_nodes(s_ctx_t *ctx, s_node_t *map)
{
    farm_config_t *cfg = ctx->cfg;

    if (s_want_map(ctx, map, "nodes:", "write one node per line, e.g. "
                                       "\"x86-1: {slots: 4}\"") < 0)
        return;
    s_check_keys(ctx, map, NULL, "under nodes:");
    if (!(cfg->nodes = calloc(map->n / 2 + 1, sizeof *cfg->nodes))) {
        ctx->oom = 1;
        return;
    }
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        s_node_t *k = map->items[i], *v = map->items[i + 1];
        farm_config_node_t *node;
        char what[128];

        if (k->skip)
            continue;
        if (!s_name_ok(k->value))
            s_problem(ctx, S_AT(k), "node name %s is not valid; use 1 to %d letters, digits, "
                                    "'-', '_' or '.'", s_q(k->value), S_MAX_NAME);
        /* recorded even when invalid, so references to it are not reported twice */
        node = &cfg->nodes[cfg->n_nodes++];
        if (!(node->name = s_strdup(ctx, k->value)))
            return;
        node->slots = 1;
        node->line = k->line;
        node->column = k->col;
        snprintf(what, sizeof what, "node %s", s_q(k->value));
        if (s_want_map(ctx, v, what, "write e.g. \"x86-1: {slots: 4}\" or \"x86-1: {}\"") < 0)
            continue;
        snprintf(what, sizeof what, "under node %s", s_q(k->value));
        s_check_keys(ctx, v, s_node_keys, what);
        for (size_t j = 0; j + 1 < v->n; j += 2) {
            if (v->items[j]->skip)
                continue;
            snprintf(what, sizeof what, "nodes.%s.slots",
                     s_name_ok(k->value) ? k->value : s_q(k->value));
            s_want_int(ctx, v->items[j + 1], what, 1, S_MAX_SLOTS, &node->slots);
        }
    }
}

static void s_registries(s_ctx_t *ctx, s_node_t *map)
{
    farm_config_t *cfg = ctx->cfg;

    if (s_want_map(ctx, map, "registries:", "write e.g. \"registries: {\\\"registry.local:5000\\\": "
                                            "{insecure: true}}\"") < 0)
        return;
    s_check_keys(ctx, map, NULL, "under registries:");
    if (!(cfg->registries = calloc(map->n / 2 + 1, sizeof *cfg->registries))) {
        ctx->oom = 1;
        return;
    }
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        s_node_t *k = map->items[i], *v = map->items[i + 1];
        farm_config_registry_t *r;
        char what[160];
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
            s_problem(ctx, S_AT(k), "registry %s is not a host: %s (e.g. \"registry.local:5000\")",
                      s_q(k->value), bad);
            continue;
        }
        r = &cfg->registries[cfg->n_registries++];
        if (!(r->host = s_strdup(ctx, k->value)))
            return;
        snprintf(what, sizeof what, "registry %s", s_q(k->value));
        if (s_want_map(ctx, v, what, "write e.g. {insecure: true}") < 0)
            continue;
        snprintf(what, sizeof what, "under registry %s", s_q(k->value));
        s_check_keys(ctx, v, s_reg_keys, what);
        for (size_t j = 0; j + 1 < v->n; j += 2) {
            if (v->items[j]->skip)
                continue;
            snprintf(what, sizeof what, "registries.%s.insecure", s_q(k->value));
            s_want_bool(ctx, v->items[j + 1], what, &r->insecure);
        }
    }
}

/* A list of strings (tags, platforms) as a fresh array; NULL when not a list. */
static const s_node_t *s_want_list(s_ctx_t *ctx, const s_node_t *n, const char *what,
                                   const char *hint)
{
    if (n->bad)
        return NULL;
    if (s_is_null(n))
        return NULL;
    if (n->kind != S_SEQ) {
        s_problem(ctx, S_AT(n), "%s must be a list, got %s; %s", what, s_what(n), hint);
        return NULL;
    }
    return n;
}

static void s_on_dup_tag(s_ctx_t *ctx, const s_str_idx_t *dup, const s_str_idx_t *first,
                         void *arg)
{
    s_problem(ctx, S_AT(dup->node), "tag %s is listed twice in build.tags (first at %d:%d); "
                                    "remove one", s_q(dup->s), S_AT(first->node));
}

static void s_build(s_ctx_t *ctx, s_node_t *map)
{
    farm_config_build_t *b = &ctx->cfg->build;

    b->present = 1;
    if (s_want_map(ctx, map, "build:", "indent tags:, platforms:, dockerfile: and args: "
                                       "under it") < 0)
        return;
    s_check_keys(ctx, map, s_build_keys, "under build:");
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const s_node_t *k = map->items[i], *v = map->items[i + 1], *l;
        const char *s;
        s_str_idx_t *seen;
        size_t n_seen = 0;

        if (k->skip)
            continue;
        if (!strcmp(k->value, "dockerfile")) {
            if ((s = s_want_string(ctx, v, "build.dockerfile", "write a path relative to the "
                                                                "context, e.g. Dockerfile")))
                b->dockerfile = s_strdup(ctx, s);
        } else if (!strcmp(k->value, "tags")) {
            if (!(l = s_want_list(ctx, v, "build.tags", "write e.g. [registry.example.com/team/app:latest]")))
                continue;
            b->tags = calloc(l->n + 1, sizeof *b->tags);
            seen = calloc(l->n + 1, sizeof *seen);
            if (!b->tags || !seen) {
                free(seen);
                ctx->oom = 1;
                return;
            }
            for (size_t j = 0; j < l->n; j++) {
                const s_node_t *it = l->items[j];
                if (!(s = s_want_string(ctx, it, "a tag", "write an image reference, e.g. "
                                                         "registry.example.com/team/app:1.4")))
                    continue;
                if (!s_word(s)) {
                    s_problem(ctx, S_AT(it), "tag %s contains whitespace or control "
                                             "characters; write one image reference per list "
                                             "item", s_q(s));
                    continue;
                }
                seen[n_seen++] = (s_str_idx_t){s, j, it};
                b->tags[b->n_tags++] = s_strdup(ctx, s);
            }
            s_find_dups(ctx, seen, n_seen, s_on_dup_tag, NULL);
            free(seen);
        } else if (!strcmp(k->value, "platforms")) {
            if (!(l = s_want_list(ctx, v, "build.platforms", "write e.g. [linux/amd64, linux/arm64]")))
                continue;
            b->platforms = calloc(l->n + 1, sizeof *b->platforms);
            seen = calloc(l->n + 1, sizeof *seen);
            if (!b->platforms || !seen) {
                free(seen);
                ctx->oom = 1;
                return;
            }
            for (size_t j = 0; j < l->n; j++) {
                const s_node_t *it = l->items[j];
                farm_platform_t p;
                char str[FARM_PLATFORM_STRLEN];
                if (!(s = s_want_string(ctx, it, "a build platform", "write e.g. linux/arm64")))
                    continue;
                if (farm_platform_parse(&p, s) < 0) {
                    s_problem(ctx, S_AT(it), "build.platforms: %s", farm_error_last());
                    continue;
                }
                farm_platform_format(str, sizeof str, &p);
                if (!(b->platforms[b->n_platforms] = s_strdup(ctx, str)))
                    break;
                seen[n_seen++] = (s_str_idx_t){b->platforms[b->n_platforms], j, it};
                b->n_platforms++;
            }
            s_find_dups(ctx, seen, n_seen, s_on_dup_platform,
                        "list each platform once in build.platforms");
            free(seen);
        } else if (!strcmp(k->value, "args")) {
            if (s_want_map(ctx, v, "build.args", "write e.g. {VERSION: \"1.4\"}") < 0 ||
                s_is_null(v))
                continue;
            s_check_keys(ctx, (s_node_t *)v, NULL, "under build.args:");
            if (!(b->args = calloc(v->n / 2 + 1, sizeof *b->args))) {
                ctx->oom = 1;
                return;
            }
            for (size_t j = 0; j + 1 < v->n; j += 2) {
                const s_node_t *ak = v->items[j], *av = v->items[j + 1];
                farm_kv_t *kv;
                if (ak->skip)
                    continue;
                if (!ak->value[0] || strchr(ak->value, '=') || !s_word(ak->value)) {
                    s_problem(ctx, S_AT(ak), "build arg name %s is not valid; use a name "
                                             "without '=' or spaces, e.g. VERSION",
                              s_q(ak->value));
                    continue;
                }
                if (av->bad)
                    continue;
                if (av->kind != S_SCALAR) {
                    s_problem(ctx, S_AT(av), "build arg %s must be a single value, got %s; "
                                             "write e.g. %s: \"1.4\"", ak->value, s_what(av),
                              ak->value);
                    continue;
                }
                if (s_is_null(av)) {
                    s_problem(ctx, S_AT(ak), "build arg %s has no value; write %s: \"\" for an "
                                             "empty one", ak->value, ak->value);
                    continue;
                }
                kv = &b->args[b->n_args];
                kv->key = s_strdup(ctx, ak->value);
                kv->value = s_strdup(ctx, av->value);
                b->n_args++;
            }
        }
    }
}

/* Every node named under platforms: must be defined under nodes:. */
static void s_check_refs(s_ctx_t *ctx)
{
    const farm_config_t *cfg = ctx->cfg;
    s_str_idx_t *defined = NULL;

    if (!ctx->n_refs)
        return;
    if (!(defined = calloc(cfg->n_nodes + 1, sizeof *defined))) {
        ctx->oom = 1;
        return;
    }
    for (size_t i = 0; i < cfg->n_nodes; i++)
        defined[i] = (s_str_idx_t){cfg->nodes[i].name, 0, NULL};
    qsort(defined, cfg->n_nodes, sizeof *defined, s_cmp_str_idx);
    for (size_t i = 0; i < ctx->n_refs; i++) {
        const s_ref_t *r = &ctx->refs[i];
        s_str_idx_t key = {r->name->value, 0, NULL};
        if (bsearch(&key, defined, cfg->n_nodes, sizeof *defined, s_cmp_str_idx))
            continue;
        if (s_name_ok(r->name->value))
            s_problem(ctx, S_AT(r->name), "node %s is mapped to %s but is not defined under "
                                          "nodes:; add \"%s: {slots: 1}\" under nodes: or fix "
                                          "the name", s_q(r->name->value),
                      cfg->platforms[r->platform].platform, r->name->value);
        else
            s_problem(ctx, S_AT(r->name), "node %s is mapped to %s but is not a valid node "
                                          "name; use a name defined under nodes: (letters, "
                                          "digits, '-', '_', '.')", s_q(r->name->value),
                      cfg->platforms[r->platform].platform);
    }
    free(defined);
}

static void s_top(s_ctx_t *ctx, s_node_t *root)
{
    if (!root || s_is_null(root)) {
        s_problem(ctx, 1, 1, "the file is empty; write coordinator:, platforms: and nodes: "
                             "(or build: for a repository's defaults)");
        return;
    }
    if (root->bad)
        return;
    if (root->kind != S_MAP) {
        s_problem(ctx, S_AT(root), "the top level must be a map of sections, got %s; start "
                                   "with coordinator:, platforms:, nodes:, registries: or build:",
                  s_what(root));
        return;
    }
    s_check_keys(ctx, root, s_top_keys, "at the top level");
    for (size_t i = 0; i + 1 < root->n; i += 2) {
        const s_node_t *k = root->items[i];
        s_node_t *v = root->items[i + 1];
        if (k->skip)
            continue;
        if (!strcmp(k->value, "coordinator"))
            s_coordinator(ctx, v);
        else if (!strcmp(k->value, "platforms"))
            s_platforms(ctx, v);
        else if (!strcmp(k->value, "nodes"))
            s_nodes(ctx, v);
        else if (!strcmp(k->value, "registries"))
            s_registries(ctx, v);
        else if (!strcmp(k->value, "build"))
            s_build(ctx, v);
        if (ctx->oom)
            return;
    }
    s_check_refs(ctx);
}

static int s_cmp_problem(const void *a, const void *b)
{
    const s_problem_t *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* -- public -------------------------------------------------------------------------- */

void farm_diag_add(farm_diag_t *d, const char *fmt, ...)
{
    char *msg, **items;
    va_list ap;
    int n;

    if (!d)
        return;
    va_start(ap, fmt);
    n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (!(items = realloc(d->items, (d->n + 1) * sizeof *items))) {
        free(msg);
        return;
    }
    d->items = items;
    d->items[d->n++] = msg;
}

void farm_diag_clear(farm_diag_t *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->items[i]);
    free(d->items);
    d->items = NULL;
    d->n = 0;
}

int farm_config_parse(farm_config_t **out, const char *name, const char *yaml, size_t len,
                      farm_diag_t *diags)
{
    s_ctx_t ctx;
    s_node_t *root = NULL;
    farm_config_t *cfg;
    int rc = 0;

    *out = NULL;
    memset(&ctx, 0, sizeof ctx);
    ctx.name = name ? name : "farm.yaml";
    if (!(cfg = calloc(1, sizeof *cfg)) || !(cfg->path = strdup(ctx.name))) {
        free(cfg);
        return farm_error_set(FARM_ERROR, "%s: out of memory", ctx.name);
    }
    cfg->heartbeat_ms = 1000;
    cfg->liveness = 3;
    cfg->queue_timeout_ms = 600000;
    cfg->job_timeout_ms = 7200000;
    cfg->context_ttl_ms = 86400000;
    ctx.cfg = cfg;

    if (!yaml && len)
        s_problem(&ctx, 0, 0, "no text to read");
    else if (len > S_MAX_BYTES)
        s_problem(&ctx, 0, 0, "the file is %zu bytes; farm.yaml may be at most %d bytes, trim it",
                  len, S_MAX_BYTES);
    else if (s_load_tree(&ctx, yaml ? yaml : "", len, &root) == 0)
        s_top(&ctx, root);
    s_node_free(root);

    if (ctx.oom) {
        rc = farm_error_set(FARM_ERROR, "%s: out of memory while reading it", ctx.name);
    } else if (ctx.n_problems) {
        qsort(ctx.problems, ctx.n_problems, sizeof *ctx.problems, s_cmp_problem);
        farm_error_set(FARM_EINVALID, "%s", ctx.problems[0].msg);
        for (size_t i = 0; i < ctx.n_problems; i++)
            farm_diag_add(diags, "%s", ctx.problems[i].msg);
        if (ctx.n_dropped)
            farm_diag_add(diags, "%s: %zu more problems not shown; fix these and run again",
                          ctx.name, ctx.n_dropped);
        rc = FARM_EINVALID;
    }
    for (size_t i = 0; i < ctx.n_problems; i++)
        free(ctx.problems[i].msg);
    free(ctx.problems);
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
    for (size_t i = 0; i < c->n_nodes; i++)
        free(c->nodes[i].name);
    free(c->nodes);
    for (size_t i = 0; i < c->n_registries; i++)
        free(c->registries[i].host);
    free(c->registries);
    s_free_strv(c->build.tags, c->build.n_tags);
    s_free_strv(c->build.platforms, c->build.n_platforms);
    free(c->build.dockerfile);
    for (size_t i = 0; i < c->build.n_args; i++) {
        free(c->build.args[i].key);
        free(c->build.args[i].value);
    }
    free(c->build.args);
    free(c);
    *self_p = NULL;
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
