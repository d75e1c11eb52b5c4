/* SPDX-License-Identifier: Apache-2.0 */
/* A bounded YAML tree: libyaml events -> nodes with positions, then checks that report
 * every problem (not just the first) as "NAME:LINE:COLUMN: what is wrong; what to do",
 * sorted into document order at the end. */
#include "common/yamltree.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/error.h"
#include "common/str.h"

typedef struct {
    int line, col;
    size_t seq;
    char *msg;
} s_problem_t;

struct farm_yaml {
    char *name; /* path or name for messages */
    farm_yaml_limits_t limits;
    farm_yaml_node_t *root;
    s_problem_t *problems;
    size_t n_problems, cap_problems, n_dropped, seq;
    int oom;
};

int farm_yaml_grow(farm_yaml_t *self, void **arr, size_t *cap, size_t n, size_t size)
{
    void *p;
    size_t ncap;
    if (n < *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 8;
    p = realloc(*arr, ncap * size);
    if (!p) {
        self->oom = 1;
        return -1;
    }
    *arr = p;
    *cap = ncap;
    return 0;
}

char *farm_yaml_strdup(farm_yaml_t *self, const char *s)
{
    char *d = strdup(s);
    if (!d)
        self->oom = 1;
    return d;
}

void farm_yaml_set_oom(farm_yaml_t *self)
{
    self->oom = 1;
}

int farm_yaml_oom(const farm_yaml_t *self)
{
    return self->oom;
}

void farm_yaml_problem(farm_yaml_t *self, int line, int col, const char *fmt, ...)
{
    char *body = NULL, *msg = NULL;
    va_list ap;
    int n;

    if (self->n_problems >= self->limits.max_problems) {
        self->n_dropped++;
        return;
    }
    va_start(ap, fmt);
    n = vasprintf(&body, fmt, ap);
    va_end(ap);
    if (n < 0) {
        self->oom = 1;
        return;
    }
    if (line > 0)
        n = asprintf(&msg, "%s:%d:%d: %s", self->name, line, col, body);
    else
        n = asprintf(&msg, "%s: %s", self->name, body);
    free(body);
    if (n < 0 || farm_yaml_grow(self, (void **)&self->problems, &self->cap_problems,
                                self->n_problems, sizeof *self->problems) < 0) {
        if (n >= 0)
            free(msg);
        self->oom = 1;
        return;
    }
    self->problems[self->n_problems++] = (s_problem_t){line, col, self->seq++, msg};
}

size_t farm_yaml_problem_count(const farm_yaml_t *self)
{
    return self->n_problems + self->n_dropped;
}

/* A user's string, quoted for a message: bounded, control characters escaped. */
const char *farm_yaml_quote(const char *s)
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

int farm_yaml_is_null(const farm_yaml_node_t *n)
{
    if (!n)
        return 1;
    return n->kind == FARM_YAML_SCALAR && n->plain && !n->bad &&
           (!n->value[0] || !strcmp(n->value, "~") || !strcmp(n->value, "null") ||
            !strcmp(n->value, "Null") || !strcmp(n->value, "NULL"));
}

/* What a node is, for "got ..." in messages. */
const char *farm_yaml_what(const farm_yaml_node_t *n)
{
    static _Thread_local char buf[160];
    if (farm_yaml_is_null(n))
        return "nothing";
    if (n->kind == FARM_YAML_SEQ)
        return "a list";
    if (n->kind == FARM_YAML_MAP)
        return "a map";
    /* a quoted value is at most 127 bytes: it fits */
    snprintf(buf, sizeof buf, "the value %s", farm_yaml_quote(n->value));
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
            size_t cost =
                tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
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

static void s_node_free(farm_yaml_node_t *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        s_node_free(n->items[i]);
    free(n->items);
    free(n->value);
    free(n);
}

static void s_syntax_error(farm_yaml_t *self, const yaml_parser_t *p, const char *yaml, size_t len)
{
    const char *problem = p->problem ? p->problem : "cannot be read";
    size_t at = p->problem_mark.index;
    if (p->error == YAML_MEMORY_ERROR) {
        self->oom = 1;
        return;
    }
    if (at < len && yaml[at] == '\t') {
        farm_yaml_problem(self, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
                          "YAML syntax error: a tab character here; YAML indents with spaces only, "
                          "replace the tab with spaces");
        return;
    }
    if (p->context)
        farm_yaml_problem(
            self, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
            "YAML syntax error: %s (%s that started at %d:%d); check the indentation, "
            "quotes and brackets here",
            problem, p->context, (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    else
        farm_yaml_problem(self, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
                          "YAML syntax error: %s; check the indentation, quotes and brackets here",
                          problem);
}

/* Reads the YAML events into a tree, bounding depth and node count. Returns 0 with
 * *out (NULL for an empty stream) or -1 when the document cannot be read at all. */
static int s_load_tree(farm_yaml_t *self, const char *yaml, size_t len, farm_yaml_node_t **out)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    farm_yaml_node_t **stack = NULL, *root = NULL, *node;
    size_t depth = 0, count = 0;
    int docs = 0, done = 0, rc = 0;

    *out = NULL;
    if (!(stack = calloc((size_t)self->limits.max_depth + 1, sizeof *stack)) ||
        !yaml_parser_initialize(&parser)) {
        free(stack);
        self->oom = 1;
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    while (!done) {
        int line, col;
        if (!yaml_parser_parse(&parser, &ev)) {
            s_syntax_error(self, &parser, yaml, len);
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
                farm_yaml_problem(self, line, col,
                                  "a second YAML document starts here; %s holds one document: "
                                  "remove this \"---\" and merge what follows into the first",
                                  self->limits.doc);
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
            if (++count > self->limits.max_nodes) {
                farm_yaml_problem(self, line, col,
                                  "more than %zu YAML nodes; %s is not meant to "
                                  "be this large, split or trim it",
                                  self->limits.max_nodes, self->limits.doc);
                rc = -1;
                done = 1;
                break;
            }
            if (!(node = calloc(1, sizeof *node))) {
                self->oom = 1;
                rc = -1;
                done = 1;
                break;
            }
            node->line = line;
            node->col = col;
            if (ev.type == YAML_SCALAR_EVENT) {
                node->kind = FARM_YAML_SCALAR;
                node->plain =
                    ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !ev.data.scalar.tag;
                node->value = malloc(ev.data.scalar.length + 1);
                if (!node->value) {
                    self->oom = 1;
                } else {
                    memcpy(node->value, ev.data.scalar.value, ev.data.scalar.length);
                    node->value[ev.data.scalar.length] = '\0';
                    if (memchr(ev.data.scalar.value, 0, ev.data.scalar.length)) {
                        farm_yaml_problem(self, line, col,
                                          "this value contains a NUL character; "
                                          "remove the \\0 escape");
                        node->bad = 1;
                    }
                }
            } else if (ev.type == YAML_ALIAS_EVENT) {
                /* Refused rather than expanded: no "billion laughs", and a configuration
                 * file is short enough to write out. */
                farm_yaml_problem(self, line, col,
                                  "YAML aliases (*%s) are not supported in %s; "
                                  "write the value out in full",
                                  (const char *)ev.data.alias.anchor, self->limits.doc);
                node->kind = FARM_YAML_SCALAR;
                node->bad = 1;
                node->value = farm_yaml_strdup(self, "");
            } else {
                node->kind = ev.type == YAML_SEQUENCE_START_EVENT ? FARM_YAML_SEQ : FARM_YAML_MAP;
            }
            if (!node->value && node->kind == FARM_YAML_SCALAR) {
                free(node);
                rc = -1;
                done = 1;
                break;
            }
            if (depth == 0) {
                root = node;
            } else {
                farm_yaml_node_t *parent = stack[depth - 1];
                if (farm_yaml_grow(self, (void **)&parent->items, &parent->cap, parent->n,
                                   sizeof *parent->items) < 0) {
                    s_node_free(node);
                    rc = -1;
                    done = 1;
                    break;
                }
                parent->items[parent->n++] = node;
            }
            if (node->kind != FARM_YAML_SCALAR) {
                if (depth == (size_t)self->limits.max_depth) {
                    farm_yaml_problem(self, line, col,
                                      "nesting deeper than %d levels; %s needs "
                                      "at most %d, check the indentation",
                                      self->limits.max_depth, self->limits.doc,
                                      self->limits.depth_used);
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
    free(stack);
    if (rc < 0 || self->oom) {
        s_node_free(root);
        return -1;
    }
    *out = root;
    return 0;
}

int farm_yaml_entry_cmp(const void *a, const void *b)
{
    const farm_yaml_entry_t *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Sorts `v` and calls back for every entry that repeats an earlier one. */
void farm_yaml_find_dups(farm_yaml_t *self, farm_yaml_entry_t *v, size_t n,
                         void (*on_dup)(farm_yaml_t *, const farm_yaml_entry_t *dup,
                                        const farm_yaml_entry_t *first, void *),
                         void *arg)
{
    qsort(v, n, sizeof *v, farm_yaml_entry_cmp);
    for (size_t i = 1, first = 0; i < n; i++) {
        if (strcmp(v[i].s, v[first].s) == 0)
            on_dup(self, &v[i], &v[first], arg);
        else
            first = i;
    }
}

static void s_on_dup_key(farm_yaml_t *self, const farm_yaml_entry_t *dup,
                         const farm_yaml_entry_t *first, void *arg)
{
    const char *where = arg;
    ((farm_yaml_node_t *)dup->node)->skip = 1;
    farm_yaml_problem(self, FARM_YAML_AT(dup->node),
                      "duplicate key %s %s (first at %d:%d); remove one of them",
                      farm_yaml_quote(dup->s), where, FARM_YAML_AT(first->node));
}

static void s_list_keys(char *buf, size_t len, const char *const *known)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; known[i]; i++) {
        if (farm_str_fmt_cut(buf + off, len - off, "%s%s", i ? ", " : "", known[i]))
            break;
        off += strlen(buf + off);
    }
}

/* Checks a map's keys: scalars, no duplicates, and (if `known` is given) known ones.
 * Marks the keys whose values must be ignored with skip. `where` reads "under nodes:". */
void farm_yaml_check_keys(farm_yaml_t *self, farm_yaml_node_t *map, const char *const *known,
                          const char *where)
{
    farm_yaml_entry_t *v;
    size_t nv = 0;

    if (!map->n)
        return;
    if (!(v = calloc(map->n / 2 + 1, sizeof *v))) {
        self->oom = 1;
        return;
    }
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        farm_yaml_node_t *k = map->items[i];
        if (k->bad) {
            k->skip = 1;
            continue;
        }
        if (k->kind != FARM_YAML_SCALAR) {
            k->skip = 1;
            farm_yaml_problem(self, FARM_YAML_AT(k), "a key %s is %s; keys must be plain names",
                              where, farm_yaml_what(k));
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
                    farm_yaml_problem(self, FARM_YAML_AT(k),
                                      "unknown key %s %s; did you mean \"%s\"? (known "
                                      "keys: %s)",
                                      farm_yaml_quote(k->value), where, known[best], list);
                else
                    farm_yaml_problem(self, FARM_YAML_AT(k),
                                      "unknown key %s %s; remove it or use one of the "
                                      "known keys: %s",
                                      farm_yaml_quote(k->value), where, list);
                continue;
            }
        }
        v[nv++] = (farm_yaml_entry_t){k->value, i, k};
    }
    farm_yaml_find_dups(self, v, nv, s_on_dup_key, (void *)where);
    free(v);
}

/* A map, or nothing (treated as empty). Reports anything else. */
int farm_yaml_want_map(farm_yaml_t *self, const farm_yaml_node_t *n, const char *what,
                       const char *hint)
{
    if (n->bad)
        return -1;
    if (n->kind == FARM_YAML_MAP || farm_yaml_is_null(n))
        return 0;
    farm_yaml_problem(self, FARM_YAML_AT(n), "%s must be a map, got %s; %s", what,
                      farm_yaml_what(n), hint);
    return -1;
}

/* A scalar that says something: returns its text, or NULL after reporting. */
const char *farm_yaml_want_string(farm_yaml_t *self, const farm_yaml_node_t *n, const char *what,
                                  const char *hint)
{
    if (n->bad)
        return NULL;
    if (n->kind != FARM_YAML_SCALAR || farm_yaml_is_null(n) || !n->value[0]) {
        farm_yaml_problem(self, FARM_YAML_AT(n), "%s must be %s, got %s; %s", what,
                          "a non-empty string",
                          farm_yaml_is_null(n) || n->kind != FARM_YAML_SCALAR ? farm_yaml_what(n)
                                                                              : "an empty string",
                          hint);
        return NULL;
    }
    return n->value;
}

int farm_yaml_want_int(farm_yaml_t *self, const farm_yaml_node_t *n, const char *what, long min,
                       long max, int *out)
{
    const char *s = n->value, *d;
    long v = 0;

    if (n->bad)
        return -1;
    if (n->kind != FARM_YAML_SCALAR || !n->plain || farm_yaml_is_null(n))
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
    farm_yaml_problem(
        self, FARM_YAML_AT(n), "%s must be a whole number from %ld to %ld, got %s%s; e.g. %s: %ld",
        what, min, max, farm_yaml_what(n),
        n->kind == FARM_YAML_SCALAR && !n->plain && !farm_yaml_is_null(n) ? " (quoted)" : "",
        strrchr(what, '.') ? strrchr(what, '.') + 1 : what, min);
    return -1;
}

int farm_yaml_want_bool(farm_yaml_t *self, const farm_yaml_node_t *n, const char *what, int *out)
{
    if (n->bad)
        return -1;
    if (n->kind == FARM_YAML_SCALAR && n->plain) {
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
    farm_yaml_problem(self, FARM_YAML_AT(n),
                      "%s must be true or false, got %s%s; write true or false without "
                      "quotes",
                      what, farm_yaml_what(n),
                      n->kind == FARM_YAML_SCALAR && !n->plain ? " (quoted)" : "");
    return -1;
}

/* A list of strings (tags, platforms) as a fresh array; NULL when not a list. */
const farm_yaml_node_t *farm_yaml_want_list(farm_yaml_t *self, const farm_yaml_node_t *n,
                                            const char *what, const char *hint)
{
    if (n->bad)
        return NULL;
    if (farm_yaml_is_null(n))
        return NULL;
    if (n->kind != FARM_YAML_SEQ) {
        farm_yaml_problem(self, FARM_YAML_AT(n), "%s must be a list, got %s; %s", what,
                          farm_yaml_what(n), hint);
        return NULL;
    }
    return n;
}

farm_yaml_t *farm_yaml_new(const char *name, const farm_yaml_limits_t *limits)
{
    farm_yaml_t *self = calloc(1, sizeof *self);
    if (!self || !(self->name = strdup(name))) {
        free(self);
        farm_error_set(FARM_ERROR, "%s: out of memory", name);
        return NULL;
    }
    self->limits = *limits;
    if (!self->limits.doc)
        self->limits.doc = "the file";
    return self;
}

void farm_yaml_destroy(farm_yaml_t **self_p)
{
    farm_yaml_t *self;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    s_node_free(self->root);
    for (size_t i = 0; i < self->n_problems; i++)
        free(self->problems[i].msg);
    free(self->problems);
    free(self->name);
    free(self);
    *self_p = NULL;
}

int farm_yaml_load(farm_yaml_t *self, const char *text, size_t len)
{
    s_node_free(self->root);
    self->root = NULL;
    if (!text && len) {
        farm_yaml_problem(self, 0, 0, "no text to read");
        return -1;
    }
    if (len > self->limits.max_bytes) {
        farm_yaml_problem(self, 0, 0,
                          "the file is %zu bytes; %s may be at most %zu bytes, "
                          "trim it",
                          len, self->limits.doc, self->limits.max_bytes);
        return -1;
    }
    return s_load_tree(self, text ? text : "", len, &self->root);
}

farm_yaml_node_t *farm_yaml_root(const farm_yaml_t *self)
{
    return self->root;
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

int farm_yaml_finish(farm_yaml_t *self, farm_diag_t *diags)
{
    if (self->oom)
        return farm_error_set(FARM_ERROR, "%s: out of memory while reading it", self->name);
    if (!self->n_problems)
        return 0;
    qsort(self->problems, self->n_problems, sizeof *self->problems, s_cmp_problem);
    farm_error_set(FARM_EINVALID, "%s", self->problems[0].msg);
    for (size_t i = 0; i < self->n_problems; i++)
        farm_diag_add(diags, "%s", self->problems[i].msg);
    if (self->n_dropped)
        farm_diag_add(diags, "%s: %zu more problems not shown; fix these and run again", self->name,
                      self->n_dropped);
    return FARM_EINVALID;
}

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
