#include "coordinator/warm.h"

#include <stdlib.h>
#include <string.h>

#include "common/hmap.h"
#include "coordinator/job.h"

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

size_t farm_warm_size(const farm_warm_t *self)
{
    return farm_hmap_size(self->by_key);
}
