/* SPDX-License-Identifier: Apache-2.0 */
/* A hash map from byte-string keys to pointers (open addressing, linear probing,
 * backward-shift deletion): node by name or routing id, job and build by id. Keys are
 * copied; values are borrowed. Lookups cost O(1) whatever the number of entries. */
#ifndef FARM_HMAP_H
#define FARM_HMAP_H

#include <stddef.h>
#include <string.h>

typedef struct farm_hmap farm_hmap_t;

farm_hmap_t *farm_hmap_new(void);
void farm_hmap_destroy(farm_hmap_t **self_p);

/* Adds or replaces. < 0 when out of memory (the map is unchanged). */
int farm_hmap_put(farm_hmap_t *self, const void *key, size_t key_len, void *value);
void *farm_hmap_get(const farm_hmap_t *self, const void *key, size_t key_len);
/* Removes the key if present; returns its value (or NULL). */
void *farm_hmap_del(farm_hmap_t *self, const void *key, size_t key_len);
size_t farm_hmap_size(const farm_hmap_t *self);

/* String keys. */
#define farm_hmap_puts(m, k, v) farm_hmap_put((m), (k), strlen(k), (v))
#define farm_hmap_gets(m, k) farm_hmap_get((m), (k), strlen(k))
#define farm_hmap_dels(m, k) farm_hmap_del((m), (k), strlen(k))

#endif
