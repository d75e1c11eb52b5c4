/* SPDX-License-Identifier: Apache-2.0 */
#include "common/hmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    void *key; /* NULL: empty slot */
    size_t key_len;
    uint64_t hash;
    void *value;
} slot_t;

struct farm_hmap {
    slot_t *slots;
    size_t cap; /* power of two */
    size_t size;
};

/* FNV-1a, 64-bit: keys are short names and ids. */
static uint64_t s_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

farm_hmap_t *farm_hmap_new(void)
{
    farm_hmap_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cap = 16;
    self->slots = calloc(self->cap, sizeof *self->slots);
    if (!self->slots) {
        free(self);
        return NULL;
    }
    return self;
}

void farm_hmap_destroy(farm_hmap_t **self_p)
{
    farm_hmap_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (size_t i = 0; i < self->cap; i++)
        free(self->slots[i].key);
    free(self->slots);
    free(self);
    *self_p = NULL;
}

static size_t s_find(const farm_hmap_t *self, const void *key, size_t len, uint64_t h)
{
    size_t mask = self->cap - 1, i = (size_t)h & mask;
    for (;; i = (i + 1) & mask) {
        const slot_t *s = &self->slots[i];
        if (!s->key || (s->hash == h && s->key_len == len && memcmp(s->key, key, len) == 0))
            return i;
    }
}

static int s_grow(farm_hmap_t *self)
{
    size_t cap = self->cap * 2;
    slot_t *old = self->slots, *slots = calloc(cap, sizeof *slots);
    size_t old_cap = self->cap;

    if (!slots)
        return -1;
    self->slots = slots;
    self->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key)
            self->slots[s_find(self, old[i].key, old[i].key_len, old[i].hash)] = old[i];
    free(old);
    return 0;
}

int farm_hmap_put(farm_hmap_t *self, const void *key, size_t len, void *value)
{
    uint64_t h = s_hash(key, len);
    size_t i;
    void *copy;

    if ((self->size + 1) * 4 > self->cap * 3 && s_grow(self) < 0)
        return -1;
    i = s_find(self, key, len, h);
    if (self->slots[i].key) {
        self->slots[i].value = value;
        return 0;
    }
    copy = malloc(len ? len : 1);
    if (!copy)
        return -1;
    memcpy(copy, key, len);
    self->slots[i] = (slot_t){.key = copy, .key_len = len, .hash = h, .value = value};
    self->size++;
    return 0;
}

void *farm_hmap_get(const farm_hmap_t *self, const void *key, size_t len)
{
    size_t i = s_find(self, key, len, s_hash(key, len));
    return self->slots[i].key ? self->slots[i].value : NULL;
}

void *farm_hmap_del(farm_hmap_t *self, const void *key, size_t len)
{
    size_t mask = self->cap - 1, i = s_find(self, key, len, s_hash(key, len)), j;
    void *value;

    if (!self->slots[i].key)
        return NULL;
    value = self->slots[i].value;
    free(self->slots[i].key);
    self->slots[i].key = NULL;
    self->size--;
    /* backward shift: move later entries of the probe run into the hole */
    for (j = (i + 1) & mask; self->slots[j].key; j = (j + 1) & mask) {
        size_t home = (size_t)self->slots[j].hash & mask;
        /* the entry at j may move to i when i lies cyclically in [home, j) */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            self->slots[i] = self->slots[j];
            self->slots[j].key = NULL;
            i = j;
        }
    }
    return value;
}

size_t farm_hmap_size(const farm_hmap_t *self)
{
    return self->size;
}
