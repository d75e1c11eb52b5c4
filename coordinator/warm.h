/* SPDX-License-Identifier: Apache-2.0 */
/* Which nodes built what recently: per key (registry/repository, platform, Dockerfile
 * path) the last FARM_WARM_NODES nodes that built it successfully, most recent first.
 * Their builder's layer cache likely holds its steps, so the scheduler prefers them
 * (ARCHITECTURE.md, "Caching"). Memory is bounded: at most max_keys keys, the least
 * recently used (recorded or looked up) forgotten first. */
#ifndef FARM_COORD_WARM_H
#define FARM_COORD_WARM_H

#include <stddef.h>

#define FARM_WARM_NODES 4        /* nodes remembered per key */
#define FARM_WARM_KEYS_MAX 4096  /* keys remembered by the coordinator */

typedef struct farm_warm farm_warm_t;

farm_warm_t *farm_warm_new(size_t max_keys);
void farm_warm_destroy(farm_warm_t **self_p);

/* The key of a job: the client (whose layer cache it is: nodes keep one per client),
 * "registry/repository", platform and Dockerfile path joined by NUL bytes (none of them
 * holds one), malloc'd into *out with its length. < 0 out of memory. */
int farm_warm_key(char **out, size_t *out_len, const char *scope, const char *registry,
                  const char *repository, const char *platform, const char *dockerfile);

/* node_index built key: it becomes the most recent of the key's nodes. < 0 out of
 * memory (nothing is remembered then). */
int farm_warm_record(farm_warm_t *self, const char *key, size_t key_len, size_t node_index);
/* The key's nodes, most recent first, into out; returns how many (0: none). A use of the
 * key for the LRU order. */
size_t farm_warm_nodes(farm_warm_t *self, const char *key, size_t key_len,
                       size_t out[FARM_WARM_NODES]);
/* node_index's builder cache of scope (a client's name, "" without keys) and platform was
 * emptied (farmctl prune): it is no longer warm for any key of theirs. Returns how many
 * keys forgot it (a key left with no node is dropped). */
size_t farm_warm_forget(farm_warm_t *self, size_t node_index, const char *scope,
                        const char *platform);
size_t farm_warm_size(const farm_warm_t *self);

/* --- across restarts: STATE_DIR/warm.json, nodes by name (the indexes are farm.yaml's
 * order, which may change) --- */

/* 1 when a node was recorded since the last farm_warm_save (or load). */
int farm_warm_dirty(const farm_warm_t *self);
/* Writes what is remembered to path, all or nothing (farm_fs_write_atomic), least recently
 * used first; node i is names[i] (n_names of them). */
int farm_warm_save(farm_warm_t *self, const char *path, const char *const *names,
                   size_t n_names);
/* Adds what path holds: a missing file is nothing to add (0). Nodes not in names (no
 * longer in farm.yaml) are skipped; past max_keys the oldest go. Returns the keys
 * restored, or < 0 with an error naming the file and what is wrong with it (nothing is
 * added then). */
int farm_warm_load(farm_warm_t *self, const char *path, const char *const *names,
                   size_t n_names);

#endif
