/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/cache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/inventory.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/store.h"
#include "common/wire.h"

#define CACHE_MAX_DEFAULT (10ULL << 30)

typedef struct fetch {
    struct fetch *next;
    char digest[FARM_DIGEST_STRLEN];
    farm_store_upload_t *upload;
    uint64_t requested;    /* bytes asked for (in flight: requested - offset) */
    uint64_t total;        /* 0 until known: plans the window only */
    long long last_activity;
} fetch_t;

struct farm_cache {
    farm_store_t *store;
    uint64_t max_bytes;
    farm_cache_request_fn request;
    void *arg;
    fetch_t *fetches;
};

farm_cache_t *farm_cache_new(const char *dir, uint64_t max_bytes, farm_cache_request_fn fn,
                             void *arg)
{
    farm_cache_t *self = calloc(1, sizeof *self);
    if (!self) {
        farm_error_set(FARM_ERROR, "context cache: out of memory");
        return NULL;
    }
    self->store = farm_store_new(dir);
    if (!self->store) {
        free(self);
        return NULL;
    }
    /* hashed once now, before the reactor runs: no turn later stalls on a large file */
    farm_store_verify_logged(self->store, "context cache");
    self->max_bytes = max_bytes ? max_bytes : CACHE_MAX_DEFAULT;
    self->request = fn;
    self->arg = arg;
    return self;
}

static void s_fetch_free(farm_cache_t *self, fetch_t *f)
{
    for (fetch_t **pp = &self->fetches; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    farm_store_upload_abort(&f->upload);
    free(f);
}

void farm_cache_abort_all(farm_cache_t *self)
{
    while (self->fetches)
        s_fetch_free(self, self->fetches);
}

void farm_cache_destroy(farm_cache_t **self_p)
{
    farm_cache_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    farm_cache_abort_all(self);
    farm_store_destroy(&self->store);
    free(self);
    *self_p = NULL;
}

int farm_cache_has(farm_cache_t *self, const char *digest)
{
    int rc = farm_store_has(self->store, digest, NULL);
    if (rc == 1)
        farm_store_touch(self->store, digest); /* used now: the last to be evicted */
    return rc;
}

int farm_cache_path(const farm_cache_t *self, char *out, size_t len, const char *digest)
{
    return farm_store_path(self->store, out, len, digest);
}

size_t farm_cache_fetching(const farm_cache_t *self)
{
    size_t n = 0;
    for (const fetch_t *f = self->fetches; f; f = f->next)
        n++;
    return n;
}

static fetch_t *s_find(farm_cache_t *self, const char *digest)
{
    for (fetch_t *f = self->fetches; f; f = f->next)
        if (strcmp(f->digest, digest) == 0)
            return f;
    return NULL;
}

/* Keeps up to FARM_WIRE_WINDOW bytes of chunk requests in flight (no stop-and-wait). */
static void s_pump(farm_cache_t *self, fetch_t *f, long long now)
{
    uint64_t offset = farm_store_upload_offset(f->upload);
    do {
        if (f->total && f->requested >= f->total)
            break;
        if (!f->total && f->requested > offset)
            break; /* size unknown: one request until the first chunk says it */
        self->request(self->arg, f->digest, f->requested);
        f->requested += FARM_WIRE_CHUNK;
    } while (f->requested - offset < FARM_WIRE_WINDOW);
    f->last_activity = now;
}

int farm_cache_fetch(farm_cache_t *self, const char *digest, uint64_t size_hint, long long now)
{
    fetch_t *f;

    if (!farm_digest_valid(digest))
        return farm_error_set(FARM_EINVALID, "not a valid context digest");
    if (s_find(self, digest))
        return 0;
    f = calloc(1, sizeof *f);
    if (!f)
        return farm_error_set(FARM_ERROR, "fetching context %s: out of memory", digest);
    memcpy(f->digest, digest, strlen(digest) + 1);
    f->total = size_hint <= FARM_CONTEXT_MAX ? size_hint : 0;
    f->upload = farm_store_upload_new(self->store, digest, 0);
    if (!f->upload) {
        free(f);
        return farm_error_wrap(FARM_EIO, "fetching context %s", digest);
    }
    f->next = self->fetches;
    self->fetches = f;
    s_pump(self, f, now);
    return 0;
}

static farm_cache_status_t s_fail(farm_cache_t *self, fetch_t *f, const char *why)
{
    farm_error_set(FARM_EINVALID, "fetching context %s: %s", f->digest, why);
    s_fetch_free(self, f);
    return FARM_CACHE_FAILED;
}

farm_cache_status_t farm_cache_on_chunk(farm_cache_t *self, const farm_cache_chunk_t *c,
                                        long long now)
{
    fetch_t *f = c->digest ? s_find(self, c->digest) : NULL;
    uint64_t offset, size;

    if (!f)
        return FARM_CACHE_IGNORED;
    if (c->error && c->error[0])
        return s_fail(self, f, c->error);
    offset = farm_store_upload_offset(f->upload);
    if (c->offset != offset)
        return FARM_CACHE_IGNORED; /* a duplicate of a re-requested chunk */
    if (c->total == 0 || c->total > FARM_CONTEXT_MAX || c->len > c->total - offset ||
        (c->len == 0 && offset < c->total))
        return s_fail(self, f, "the coordinator sent a chunk that does not fit the context");
    size = farm_store_upload_size(f->upload);
    if (size == 0)
        farm_store_upload_set_size(f->upload, c->total);
    else if (size != c->total)
        return s_fail(self, f, "the coordinator changed the context's size mid-transfer");
    if (c->len && farm_store_upload_write(f->upload, c->data, c->len) < 0)
        return s_fail(self, f, farm_error_last());
    offset += c->len;
    if (f->total != c->total) {
        f->total = c->total;
        f->requested = offset; /* the size we were told was wrong: re-plan */
    }
    if (offset < c->total) {
        s_pump(self, f, now);
        return FARM_CACHE_PENDING;
    }
    {
        char digest[FARM_DIGEST_STRLEN];
        int rc;

        memcpy(digest, f->digest, sizeof digest);
        rc = farm_store_upload_commit(&f->upload);
        s_fetch_free(self, f);
        if (rc < 0) {
            farm_error_wrap(rc, "fetching context %s", digest);
            return FARM_CACHE_FAILED;
        }
        farm_log_info("cached context %s (%llu bytes)", digest, (unsigned long long)offset);
    }
    return FARM_CACHE_STORED;
}

void farm_cache_retry(farm_cache_t *self, long long now, long long idle_ms)
{
    for (fetch_t *f = self->fetches; f; f = f->next) {
        if (now - f->last_activity <= idle_ms)
            continue;
        f->requested = farm_store_upload_offset(f->upload);
        s_pump(self, f, now);
    }
}

/* ---- trim: the store sweeps (and logs each "evicted context"); we say which contexts
 * jobs and fetches need */

typedef struct {
    farm_cache_t *cache;
    int (*in_use)(void *arg, const char *digest);
    void *arg;
} trim_t;

static int s_trim_in_use(void *arg, const char *digest)
{
    trim_t *t = arg;
    return (t->in_use && t->in_use(t->arg, digest)) || s_find(t->cache, digest);
}

int farm_cache_trim(farm_cache_t *self, int (*in_use)(void *arg, const char *digest), void *arg)
{
    trim_t t = {.cache = self, .in_use = in_use, .arg = arg};
    return farm_store_sweep(self->store, 0, self->max_bytes, s_trim_in_use, &t);
}

/* ---- inventory: farmctl du and prune */

typedef struct {
    farm_cache_t *cache;
    const farm_inventory_ask_t *ask;
    int (*in_use)(void *arg, const char *digest);
    void *arg;
    void (*fn)(void *fn_arg, const farm_cache_item_t *item);
    void *fn_arg;
} inventory_t;

static void s_inventory_one(void *arg, const char *digest, uint64_t size, long long used_s)
{
    inventory_t *v = arg;
    char why[128];
    farm_cache_item_t it = {.digest = digest, .size = size, .used_s = used_s, .kept = why};

    it.in_use = (v->in_use && v->in_use(v->arg, digest)) || s_find(v->cache, digest);
    if (farm_inventory_decide(why, sizeof why, v->ask, it.in_use, used_s)) {
        farm_store_remove(v->cache->store, digest);
        farm_log_info("pruned context %s (%llu bytes)", digest, (unsigned long long)size);
        it.freed = size;
        it.size = 0;
    }
    v->fn(v->fn_arg, &it);
}

int farm_cache_inventory(farm_cache_t *self, const farm_inventory_ask_t *ask,
                         int (*in_use)(void *arg, const char *digest), void *arg,
                         void (*fn)(void *fn_arg, const farm_cache_item_t *item), void *fn_arg)
{
    inventory_t v = {.cache = self, .ask = ask, .in_use = in_use, .arg = arg, .fn = fn,
                     .fn_arg = fn_arg};
    return farm_store_each(self->store, s_inventory_one, &v);
}
