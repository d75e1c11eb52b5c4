/* SPDX-License-Identifier: Apache-2.0 */
/* A bounded YAML tree (libyaml): size, depth, node count and problem count limited,
 * aliases refused, every node with its line and column. The checks a schema is built
 * from report each problem as "NAME:LINE:COLUMN: what is wrong; what to do" and carry
 * on, so one run shows every mistake in a file. common/config.c holds farm.yaml's
 * schema on top of it. */
#ifndef FARM_YAMLTREE_H
#define FARM_YAMLTREE_H

#include <stddef.h>

/* Every problem found in a file, each "PATH:LINE:COLUMN: what is wrong and what to do". */
typedef struct {
    char **items;
    size_t n;
} farm_diag_t;

void farm_diag_add(farm_diag_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void farm_diag_clear(farm_diag_t *d);

typedef enum { FARM_YAML_SCALAR, FARM_YAML_SEQ, FARM_YAML_MAP } farm_yaml_kind_t;

typedef struct farm_yaml_node farm_yaml_node_t;
struct farm_yaml_node {
    farm_yaml_kind_t kind;
    int plain; /* scalar written without quotes or tag: "null", "4", "true" mean what they say */
    int bad;   /* already reported (alias, NUL byte): checks skip it silently */
    int skip;  /* map key that is duplicated, unknown or not a scalar: its value is ignored */
    int line, col; /* 1-based */
    char *value;   /* scalar text ("" for collections' value) */
    farm_yaml_node_t **items; /* sequence items; map keys and values alternating */
    size_t n, cap;
};

#define FARM_YAML_AT(node) (node)->line, (node)->col

typedef struct {
    size_t max_bytes;    /* libyaml has no size limit of its own */
    int max_depth;       /* nor a depth limit */
    size_t max_nodes;
    size_t max_problems; /* then one "N more problems" line */
    const char *doc;     /* what the file is, in messages: "farm.yaml" */
    int depth_used;      /* deepest nesting the schema needs, for the depth message */
} farm_yaml_limits_t;

/* A document being read: its tree and the problems found in it. */
typedef struct farm_yaml farm_yaml_t;

/* name is the path (or a label) that starts every message. */
farm_yaml_t *farm_yaml_new(const char *name, const farm_yaml_limits_t *limits);
void farm_yaml_destroy(farm_yaml_t **self_p);

/* Reads one document into the tree. 0 (farm_yaml_root NULL for an empty stream) or -1
 * when it cannot be read at all: syntax error, too large, too deep, too many nodes,
 * several documents (the problems say which). Aliases and NUL characters are reported
 * and their nodes marked bad, the rest is still read. */
int farm_yaml_load(farm_yaml_t *self, const char *text, size_t len);
farm_yaml_node_t *farm_yaml_root(const farm_yaml_t *self);

void farm_yaml_problem(farm_yaml_t *self, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Problems reported so far, those dropped beyond max_problems included. */
size_t farm_yaml_problem_count(const farm_yaml_t *self);
/* An allocation failed: the run ends with "out of memory" instead of problems. */
void farm_yaml_set_oom(farm_yaml_t *self);
int farm_yaml_oom(const farm_yaml_t *self);
/* Ends the run: 0 if nothing was wrong; else FARM_EINVALID with every problem in
 * document order in diags (may be NULL) and the first in farm_error_last(), or
 * FARM_ERROR for out of memory. */
int farm_yaml_finish(farm_yaml_t *self, farm_diag_t *diags);

/* Allocation helpers that record out of memory in self. */
char *farm_yaml_strdup(farm_yaml_t *self, const char *s);
/* Grows *arr (of *cap elements of size) so that element n exists. */
int farm_yaml_grow(farm_yaml_t *self, void **arr, size_t *cap, size_t n, size_t size);

/* --- reading nodes --- */

int farm_yaml_is_null(const farm_yaml_node_t *n); /* absent, "", ~ or null, unquoted */
/* What a node is, for "got ..." in messages: "nothing", "a list", "the value \"x\"". */
const char *farm_yaml_what(const farm_yaml_node_t *n);
/* A user's string quoted for a message: bounded, control characters escaped. Four
 * results may be used at once (a per-thread ring). */
const char *farm_yaml_quote(const char *s);

/* Checks a map's keys: scalars, no duplicates, and (if known is given, NULL-ended) known
 * ones, suggesting the nearest known key for a typo. Marks the keys whose values must be
 * ignored with skip. where reads e.g. "under nodes:". */
void farm_yaml_check_keys(farm_yaml_t *self, farm_yaml_node_t *map, const char *const *known,
                          const char *where);
/* A map, or nothing (treated as empty): 0; else reported, -1. */
int farm_yaml_want_map(farm_yaml_t *self, const farm_yaml_node_t *n, const char *what,
                       const char *hint);
/* A list: the node; nothing: NULL silently; else reported, NULL. */
const farm_yaml_node_t *farm_yaml_want_list(farm_yaml_t *self, const farm_yaml_node_t *n,
                                            const char *what, const char *hint);
/* A scalar that says something: its text; else reported, NULL. */
const char *farm_yaml_want_string(farm_yaml_t *self, const farm_yaml_node_t *n,
                                  const char *what, const char *hint);
/* An unquoted whole number in [min, max] (what's last ".part" names it in the example). */
int farm_yaml_want_int(farm_yaml_t *self, const farm_yaml_node_t *n, const char *what,
                       long min, long max, int *out);
int farm_yaml_want_bool(farm_yaml_t *self, const farm_yaml_node_t *n, const char *what,
                        int *out);

/* --- duplicates --- */

typedef struct {
    const char *s; /* compared */
    size_t idx;    /* order of appearance: the first of equals is the one kept */
    const farm_yaml_node_t *node;
} farm_yaml_entry_t;

int farm_yaml_entry_cmp(const void *a, const void *b); /* by s, then idx: for qsort/bsearch */
/* Sorts v and calls on_dup for every entry that repeats an earlier one. */
void farm_yaml_find_dups(farm_yaml_t *self, farm_yaml_entry_t *v, size_t n,
                         void (*on_dup)(farm_yaml_t *, const farm_yaml_entry_t *dup,
                                        const farm_yaml_entry_t *first, void *arg),
                         void *arg);

#endif
