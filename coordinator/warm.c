/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/warm.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/hmap.h"
#include "coordinator/job.h"

#define WARM_FILE_MAX (64u << 20) /* 4,096 keys of 4 parts, escaped: far less */
#define WARM_PART_MAX 4096        /* one part of a key (client, repository, ...) */

typedef struct {
    farm_link_t lru;   /* front: most recently used */
    size_t nodes[FARM_WARM_NODES];
    size_t n_nodes;
    size_t key_len;
    char key[];        /* to take the entry out of the map when it is evicted */
} entry_t;

struct farm_warm {
    farm_hmap_t *by_key; /* key -> entry_t */
    farm_link_t lru;
    size_t max_keys;
    int dirty;           /* recorded since the last save or load */
};

farm_warm_t *farm_warm_new(size_t max_keys)
{
    farm_warm_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    if (!(self->by_key = farm_hmap_new())) {
        free(self);
        return NULL;
    }
    farm_link_init(&self->lru);
    self->max_keys = max_keys ? max_keys : 1;
    return self;
}

void farm_warm_destroy(farm_warm_t **self_p)
{
    farm_warm_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    while (!farm_link_empty(&self->lru)) {
        entry_t *e = FARM_LINK_OWNER(self->lru.next, entry_t, lru);
        farm_link_remove(&e->lru);
        free(e);
    }
    farm_hmap_destroy(&self->by_key);
    free(self);
    *self_p = NULL;
}

int farm_warm_key(char **out, size_t *out_len, const char *scope, const char *registry,
                  const char *repository, const char *platform, const char *dockerfile)
{
    size_t ls = strlen(scope), lr = strlen(registry), lp = strlen(repository);
    size_t lf = strlen(platform), ld = strlen(dockerfile);
    size_t len = ls + 1 + lr + 1 + lp + 1 + lf + 1 + ld;
    char *k = malloc(len + 1), *p = k;

    *out = NULL;
    *out_len = 0;
    if (!k)
        return -1;
    memcpy(p, scope, ls);
    p += ls;
    *p++ = '\0';
    memcpy(p, registry, lr);
    p += lr;
    *p++ = '/';
    memcpy(p, repository, lp);
    p += lp;
    *p++ = '\0';
    memcpy(p, platform, lf);
    p += lf;
    *p++ = '\0';
    memcpy(p, dockerfile, ld + 1);
    *out = k;
    *out_len = len;
    return 0;
}

static entry_t *s_get(farm_warm_t *self, const char *key, size_t key_len)
{
    entry_t *e = farm_hmap_get(self->by_key, key, key_len);
    if (e) {
        farm_link_remove(&e->lru);
        farm_link_push_front(&self->lru, &e->lru);
    }
    return e;
}

int farm_warm_record(farm_warm_t *self, const char *key, size_t key_len, size_t node_index)
{
    entry_t *e = s_get(self, key, key_len);
    size_t i;

    if (!e) {
        if (farm_hmap_size(self->by_key) >= self->max_keys) {
            entry_t *old = FARM_LINK_OWNER(self->lru.prev, entry_t, lru);
            farm_hmap_del(self->by_key, old->key, old->key_len);
            farm_link_remove(&old->lru);
            free(old);
        }
        if (!(e = calloc(1, sizeof *e + key_len)))
            return -1;
        memcpy(e->key, key, key_len);
        e->key_len = key_len;
        if (farm_hmap_put(self->by_key, e->key, key_len, e) < 0) {
            free(e);
            return -1;
        }
        farm_link_push_front(&self->lru, &e->lru);
    }
    /* node_index moves to the front; the oldest falls off a full list */
    for (i = 0; i < e->n_nodes && e->nodes[i] != node_index; i++)
        ;
    if (i == e->n_nodes)
        i = e->n_nodes < FARM_WARM_NODES ? e->n_nodes++ : FARM_WARM_NODES - 1;
    memmove(&e->nodes[1], &e->nodes[0], i * sizeof e->nodes[0]);
    e->nodes[0] = node_index;
    self->dirty = 1;
    return 0;
}

size_t farm_warm_nodes(farm_warm_t *self, const char *key, size_t key_len,
                       size_t out[FARM_WARM_NODES])
{
    entry_t *e = s_get(self, key, key_len);
    if (!e)
        return 0;
    memcpy(out, e->nodes, e->n_nodes * sizeof e->nodes[0]);
    return e->n_nodes;
}

size_t farm_warm_forget(farm_warm_t *self, size_t node_index, const char *scope,
                        const char *platform)
{
    size_t ls = strlen(scope), lp = strlen(platform), count = 0;
    farm_link_t *l = self->lru.next;

    while (l != &self->lru) {
        entry_t *e = FARM_LINK_OWNER(l, entry_t, lru);
        const char *repo = e->key + ls + 1, *plat;
        size_t i, k = 0;

        l = l->next;
        /* scope NUL registry/repository NUL platform NUL dockerfile */
        if (e->key_len <= ls || memcmp(e->key, scope, ls) != 0 || e->key[ls] != '\0')
            continue;
        plat = repo + strnlen(repo, (size_t)(e->key + e->key_len - repo)) + 1;
        if (plat + lp >= e->key + e->key_len || memcmp(plat, platform, lp) != 0 || plat[lp])
            continue;
        for (i = 0; i < e->n_nodes; i++)
            if (e->nodes[i] != node_index)
                e->nodes[k++] = e->nodes[i];
        if (k == e->n_nodes)
            continue;
        e->n_nodes = k;
        count++;
        self->dirty = 1;
        if (k == 0) {
            farm_hmap_del(self->by_key, e->key, e->key_len);
            farm_link_remove(&e->lru);
            free(e);
        }
    }
    return count;
}

size_t farm_warm_size(const farm_warm_t *self)
{
    return farm_hmap_size(self->by_key);
}

int farm_warm_dirty(const farm_warm_t *self)
{
    return self->dirty;
}

/* ------------------------------------------------------------------ warm.json */

static const char *const s_parts[] = {"client", "repository", "platform", "dockerfile"};

/* {"client":..,"repository":..,"platform":..,"dockerfile":..,"nodes":[..]} of e; NULL out
 * of memory, or when a part is not UTF-8 (a Dockerfile path may be any bytes: that key is
 * not kept across a restart) */
static json_t *s_entry_json(const entry_t *e, const char *const *names, size_t n_names)
{
    json_t *o = json_object(), *nodes = json_array();
    const char *p = e->key, *end = e->key + e->key_len;

    if (!o || !nodes)
        goto fail;
    for (size_t i = 0; i < 4; i++) {
        size_t n = i < 3 ? strnlen(p, (size_t)(end - p)) : (size_t)(end - p);
        if (json_object_set_new(o, s_parts[i], json_stringn(p, n)) < 0)
            goto fail;
        p += n + (i < 3);
        if (p > end)
            goto fail;
    }
    for (size_t i = 0; i < e->n_nodes; i++)
        if (e->nodes[i] < n_names && json_array_append_new(nodes, json_string(names[e->nodes[i]])) < 0)
            goto fail;
    if (json_object_set_new(o, "nodes", nodes) < 0) {
        nodes = NULL;
        goto fail;
    }
    return o;
fail:
    json_decref(nodes);
    json_decref(o);
    return NULL;
}

int farm_warm_save(farm_warm_t *self, const char *path, const char *const *names,
                   size_t n_names)
{
    json_t *root = json_pack("{s:i, s:[]}", "version", 1, "entries"), *list;
    char *text = NULL;
    int rc;

    if (!root)
        return farm_error_set(FARM_ERROR, "out of memory");
    list = json_object_get(root, "entries");
    /* least recently used first: a load records them in this order, so the LRU order and
     * the bound come back as they were */
    for (farm_link_t *l = self->lru.prev; l != &self->lru; l = l->prev) {
        json_t *o = s_entry_json(FARM_LINK_OWNER(l, entry_t, lru), names, n_names);
        if (o && json_array_append_new(list, o) < 0) {
            json_decref(root);
            return farm_error_set(FARM_ERROR, "out of memory");
        }
    }
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text)
        return farm_error_set(FARM_ERROR, "out of memory");
    rc = farm_fs_write_atomic(path, text, strlen(text));
    free(text);
    if (rc == 0)
        self->dirty = 0;
    return rc;
}

/* A string member of at most WARM_PART_MAX bytes without NUL; NULL if not. */
static const char *s_part(json_t *o, const char *name, size_t *len)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_string(v) || json_string_length(v) > WARM_PART_MAX ||
        strlen(json_string_value(v)) != json_string_length(v))
        return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

/* Checks entry i (record: 0) or records it (1). */
static int s_entry_load(farm_warm_t *self, json_t *o, size_t i, const char *path,
                        const char *const *names, size_t n_names, int record)
{
    const char *part[4];
    size_t len[4], key_len = 3, n;
    json_t *nodes = json_object_get(o, "nodes");
    char *key, *p;

    if (!json_is_object(o))
        return farm_error_set(FARM_EINVALID, "%s: entries[%zu] is not an object", path, i);
    for (size_t k = 0; k < 4; k++) {
        if (!(part[k] = s_part(o, s_parts[k], &len[k])))
            return farm_error_set(FARM_EINVALID, "%s: entries[%zu].%s is not a string of at "
                                  "most %d bytes without NUL", path, i, s_parts[k],
                                  WARM_PART_MAX);
        key_len += len[k];
    }
    if (!json_is_array(nodes) || json_array_size(nodes) > FARM_WARM_NODES)
        return farm_error_set(FARM_EINVALID, "%s: entries[%zu].nodes is not a list of at most "
                              "%d node names", path, i, FARM_WARM_NODES);
    for (size_t k = 0; k < json_array_size(nodes); k++)
        if (!json_is_string(json_array_get(nodes, k)))
            return farm_error_set(FARM_EINVALID, "%s: entries[%zu].nodes[%zu] is not a name",
                                  path, i, k);
    if (!record)
        return 0;
    if (!(key = p = malloc(key_len + 1)))
        return farm_error_set(FARM_ERROR, "out of memory");
    for (size_t k = 0; k < 4; k++) {
        memcpy(p, part[k], len[k]);
        p += len[k];
        *p++ = '\0';
    }
    /* the oldest node first, so the first named ends up the most recent */
    n = json_array_size(nodes);
    for (size_t k = n; k-- > 0;) {
        const char *name = json_string_value(json_array_get(nodes, k));
        for (size_t x = 0; x < n_names; x++)
            if (strcmp(names[x], name) == 0 && farm_warm_record(self, key, key_len, x) < 0) {
                free(key);
                return farm_error_set(FARM_ERROR, "out of memory");
            }
    }
    free(key);
    return 0;
}

int farm_warm_load(farm_warm_t *self, const char *path, const char *const *names,
                   size_t n_names)
{
    json_error_t jerr;
    json_t *root = NULL, *list;
    char *text = NULL;
    size_t before = farm_warm_size(self), got = 0;
    int rc = 0;

    if ((rc = farm_fs_read_file(&text, &got, path, WARM_FILE_MAX)) < 0)
        return rc == FARM_ENOTFOUND ? 0 : rc;
    root = json_loadb(text, got, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root)
        return farm_error_set(FARM_EINVALID, "%s:%d:%d: %s", path, jerr.line, jerr.column,
                              jerr.text);
    list = json_object_get(root, "entries");
    if (!json_is_object(root) || json_integer_value(json_object_get(root, "version")) != 1 ||
        !json_is_array(list)) {
        json_decref(root);
        return farm_error_set(FARM_EINVALID, "%s: not a warm-node file of version 1 (an object "
                              "with \"version\": 1 and an \"entries\" list)", path);
    }
    /* all checked before any is recorded: a bad file adds nothing */
    for (int record = 0; record < 2 && rc == 0; record++)
        for (size_t i = 0; i < json_array_size(list) && rc == 0; i++)
            rc = s_entry_load(self, json_array_get(list, i), i, path, names, n_names, record);
    json_decref(root);
    if (rc < 0)
        return rc;
    self->dirty = 0;
    /* keys held now that were not before (the bound may have pushed some out) */
    return farm_warm_size(self) > before ? (int)(farm_warm_size(self) - before) : 0;
}
