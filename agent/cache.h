/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's context cache: contexts by digest in a content-addressed store
 * (common/store.h), fetched from the coordinator in chunks with up to FARM_WIRE_WINDOW
 * bytes of requests in flight, kept under a size bound (least recently used out first,
 * never one a job needs). No socket here: chunk requests go out through a callback. */
#ifndef FARM_AGENT_CACHE_H
#define FARM_AGENT_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "agent/inventory.h"

typedef struct farm_cache farm_cache_t;

/* Asks the coordinator for the bytes of digest from offset (one ContextGet). */
typedef void (*farm_cache_request_fn)(void *arg, const char *digest, uint64_t offset);

typedef struct {
    const char *digest;
    uint64_t offset;
    uint64_t total;
    const void *data;
    size_t len;
    const char *error; /* NULL or "": the sender serves this digest */
} farm_cache_chunk_t;

typedef enum {
    FARM_CACHE_IGNORED, /* not a fetch of ours, or a duplicate */
    FARM_CACHE_PENDING, /* more to come */
    FARM_CACHE_STORED,  /* complete and verified: jobs waiting on it can start */
    FARM_CACHE_FAILED,  /* the fetch ended; the error slot says why */
} farm_cache_status_t;

/* dir: the store's directory; max_bytes: cache bound (0: 10 GiB). */
farm_cache_t *farm_cache_new(const char *dir, uint64_t max_bytes, farm_cache_request_fn fn,
                             void *arg);
void farm_cache_destroy(farm_cache_t **self_p);

/* 1 when a verified copy is present (and marked used now), 0 when not, < 0 on error. */
int farm_cache_has(farm_cache_t *self, const char *digest);
/* The cached tar's path (what the worker extracts). */
int farm_cache_path(const farm_cache_t *self, char *out, size_t len, const char *digest);

/* Starts fetching digest (no-op while it is being fetched); size_hint may be 0. */
int farm_cache_fetch(farm_cache_t *self, const char *digest, uint64_t size_hint, long long now);
/* A chunk arrived. FARM_CACHE_FAILED leaves the reason in farm_error_last(). */
farm_cache_status_t farm_cache_on_chunk(farm_cache_t *self, const farm_cache_chunk_t *c,
                                        long long now);
/* Fetches with nothing received for idle_ms (a request lost with a connection) ask again
 * from where they are. */
void farm_cache_retry(farm_cache_t *self, long long now, long long idle_ms);
/* Drops every fetch in progress (the session ended). */
void farm_cache_abort_all(farm_cache_t *self);
size_t farm_cache_fetching(const farm_cache_t *self);

/* Evicts least recently used contexts until the cache fits its bound; never one for which
 * in_use(arg, digest) is non-zero. Logs "evicted context DIGEST". Returns the count. */
int farm_cache_trim(farm_cache_t *self, int (*in_use)(void *arg, const char *digest), void *arg);

/* One cached context, for farmctl du and prune (agent/inventory.h). */
typedef struct {
    const char *digest;
    uint64_t size;     /* bytes now (0 once pruned) */
    long long used_s;  /* last use, seconds since the epoch */
    int in_use;        /* a job needs it or it is being fetched */
    uint64_t freed;
    const char *kept;  /* why it stays when a prune was asked ("" otherwise) */
} farm_cache_item_t;
/* Lists every cached context to fn and, when ask->prune, removes those it may
 * (farm_inventory_decide): never one for which in_use(arg, digest) is non-zero or that is
 * being fetched. Returns how many it listed, < 0 when the cache cannot be read. */
int farm_cache_inventory(farm_cache_t *self, const farm_inventory_ask_t *ask,
                         int (*in_use)(void *arg, const char *digest), void *arg,
                         void (*fn)(void *fn_arg, const farm_cache_item_t *item), void *fn_arg);

#endif
