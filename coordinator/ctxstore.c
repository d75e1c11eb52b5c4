/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/ctxstore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/hmap.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/store.h"
#include "common/wire.h"

typedef struct upload {
    struct upload *next;
    char owner[FARM_NAME_MAX + 1]; /* the client's name, "" without keys */
    char key[256 + FARM_DIGEST_STRLEN]; /* client routing id + digest */
    size_t key_len;
    farm_store_upload_t *u;
    long long last_activity;
} upload_t;

struct farm_ctxstore {
    farm_store_t *store;
    uint64_t quota; /* bytes the store may hold (least recently used out first) */
    size_t max_uploads, max_per_client;
    int (*in_use)(void *arg, const char *digest); /* contexts running builds need */
    void *in_use_arg;
    farm_hmap_t *by_key;
    upload_t *uploads;
    size_t n_uploads;
};

farm_ctxstore_t *farm_ctxstore_new(const char *dir, uint64_t quota, size_t max_uploads,
                                   size_t max_per_client,
                                   int (*in_use)(void *arg, const char *digest), void *arg)
{
    farm_ctxstore_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->quota = quota;
    self->max_uploads = max_uploads ? max_uploads : FARM_UPLOADS_MAX;
    self->max_per_client = max_per_client ? max_per_client : FARM_UPLOADS_PER_CLIENT_MAX;
    self->in_use = in_use;
    self->in_use_arg = arg;
    self->store = farm_store_new(dir);
    self->by_key = farm_hmap_new();
    if (!self->store || !self->by_key) {
        farm_ctxstore_destroy(&self);
        return NULL;
    }
    /* hashed once now, before the reactor runs: no turn later stalls on a large file */
    farm_store_verify_logged(self->store, "stored contexts");
    return self;
}

static void s_drop(farm_ctxstore_t *self, upload_t *up)
{
    for (upload_t **pp = &self->uploads; *pp; pp = &(*pp)->next) {
        if (*pp == up) {
            *pp = up->next;
            break;
        }
    }
    farm_hmap_del(self->by_key, up->key, up->key_len);
    farm_store_upload_abort(&up->u);
    self->n_uploads--;
    free(up);
}

void farm_ctxstore_destroy(farm_ctxstore_t **self_p)
{
    farm_ctxstore_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    while (self->uploads)
        s_drop(self, self->uploads);
    farm_hmap_destroy(&self->by_key);
    farm_store_destroy(&self->store);
    free(self);
    *self_p = NULL;
}

static size_t s_key(char *key, const void *client, size_t client_len, const char *digest)
{
    size_t dl = strlen(digest);
    if (client_len > 256)
        client_len = 256;
    memcpy(key, client, client_len);
    memcpy(key + client_len, digest, dl);
    return client_len + dl;
}

static void s_status(farm_ctx_status_t *out, int have, uint64_t offset, const char *error)
{
    out->have = have;
    out->offset = offset;
    snprintf(out->error, sizeof out->error, "%s", error ? error : "");
}

/* One client cannot hold every upload slot: at its limit, its oldest upload makes room.
 * A client is its name (all its connections), or without keys its connection. */
static void s_client_room(farm_ctxstore_t *self, const void *client, size_t client_len,
                          const char *owner, const char *digest)
{
    upload_t *oldest = NULL;
    size_t mine = 0;

    for (upload_t *o = self->uploads; o; o = o->next) {
        if (owner && owner[0] ? strcmp(o->owner, owner) != 0
                              : (o->key_len - strlen(digest) != client_len ||
                                 memcmp(o->key, client, client_len) != 0))
            continue;
        mine++;
        if (!oldest || o->last_activity < oldest->last_activity)
            oldest = o;
    }
    if (mine >= self->max_per_client && oldest) {
        farm_log_info("dropping upload of %s: its client started more than %zu at once "
                      "(coordinator.max_uploads_per_client)",
                      farm_store_upload_digest(oldest->u), self->max_per_client);
        s_drop(self, oldest);
    }
}

/* The quota counts what is stored and what uploads in progress announced: room for
 * `size` more is made by evicting the least recently used contexts no build needs. */
static int s_make_room(farm_ctxstore_t *self, uint64_t size)
{
    uint64_t used = 0, inflight = 0;

    for (upload_t *u = self->uploads; u; u = u->next)
        inflight += farm_store_upload_size(u->u);
    if (farm_store_usage(self->store, &used) < 0)
        return FARM_EIO;
    if (used + inflight + size <= self->quota)
        return 0;
    if (inflight + size > self->quota)
        return FARM_ETOOBIG;
    farm_store_sweep(self->store, 0, self->quota - inflight - size, self->in_use,
                     self->in_use_arg);
    if (farm_store_usage(self->store, &used) < 0 || used + inflight + size > self->quota)
        return FARM_ETOOBIG;
    return 0;
}

void farm_ctxstore_offer(farm_ctxstore_t *self, farm_ctx_status_t *out, const void *client,
                         size_t client_len, const char *owner, const char *digest,
                         uint64_t size, long long now)
{
    char key[256 + FARM_DIGEST_STRLEN];
    size_t key_len;
    uint64_t have_size = 0;
    upload_t *up;

    if (!farm_digest_valid(digest)) {
        s_status(out, 0, 0, "not a sha256 digest");
        return;
    }
    if (size > FARM_CONTEXT_MAX) {
        s_status(out, 0, 0, "context too large (limit " FARM_CONTEXT_MAX_TEXT
                            "); trim it with .dockerignore");
        return;
    }
    if (self->quota && size > self->quota) {
        char err[256];
        snprintf(err, sizeof err, "context of %llu bytes is larger than the coordinator's "
                 "context store (coordinator.context_quota: %llu bytes)",
                 (unsigned long long)size, (unsigned long long)self->quota);
        s_status(out, 0, 0, err);
        return;
    }
    if (farm_store_has(self->store, digest, &have_size) == 1 && have_size == size) {
        farm_store_touch(self->store, digest);
        s_status(out, 1, size, NULL);
        return;
    }
    key_len = s_key(key, client, client_len, digest);
    if ((up = farm_hmap_get(self->by_key, key, key_len)))
        s_drop(self, up); /* offered again: start over */
    if (self->quota && s_make_room(self, size) < 0) {
        char err[256];
        snprintf(err, sizeof err, "the coordinator's context store is full (coordinator."
                 "context_quota: %llu bytes, most of it for running builds); try again later",
                 (unsigned long long)self->quota);
        s_status(out, 0, 0, err);
        return;
    }
    s_client_room(self, client, client_len, owner, digest);
    if (self->n_uploads >= self->max_uploads) {
        s_status(out, 0, 0, "the coordinator is receiving too many contexts at once "
                            "(coordinator.max_uploads); try again shortly");
        return;
    }
    up = calloc(1, sizeof *up);
    if (!up) {
        s_status(out, 0, 0, "coordinator out of memory");
        return;
    }
    memcpy(up->key, key, key_len);
    up->key_len = key_len;
    snprintf(up->owner, sizeof up->owner, "%.*s", FARM_NAME_MAX, owner ? owner : "");
    up->last_activity = now;
    up->u = farm_store_upload_new(self->store, digest, size);
    if (!up->u || farm_hmap_put(self->by_key, up->key, up->key_len, up) < 0) {
        char err[512];
        snprintf(err, sizeof err, "coordinator cannot store the context: %s",
                 up->u ? "out of memory" : farm_error_last());
        farm_store_upload_abort(&up->u);
        free(up);
        s_status(out, 0, 0, err);
        return;
    }
    up->next = self->uploads;
    self->uploads = up;
    self->n_uploads++;
    s_status(out, 0, 0, NULL);
}

void farm_ctxstore_chunk(farm_ctxstore_t *self, farm_ctx_status_t *out, const void *client,
                         size_t client_len, const char *digest, uint64_t offset,
                         const void *data, size_t len, long long now)
{
    char key[256 + FARM_DIGEST_STRLEN];
    size_t key_len;
    upload_t *up;
    uint64_t size;

    if (!farm_digest_valid(digest)) {
        s_status(out, 0, 0, "not a sha256 digest");
        return;
    }
    key_len = s_key(key, client, client_len, digest);
    up = farm_hmap_get(self->by_key, key, key_len);
    if (!up) {
        s_status(out, 0, 0, "no upload in progress; offer first");
        return;
    }
    if (offset != farm_store_upload_offset(up->u) ||
        offset + len > farm_store_upload_size(up->u)) {
        s_status(out, 0, farm_store_upload_offset(up->u),
                 "chunk out of order or beyond the offered size");
        return;
    }
    if (farm_store_upload_write(up->u, data, len) < 0) {
        char err[512];
        snprintf(err, sizeof err, "coordinator cannot store the context: %s", farm_error_last());
        s_drop(self, up);
        s_status(out, 0, 0, err);
        return;
    }
    up->last_activity = now;
    size = farm_store_upload_size(up->u);
    if (farm_store_upload_offset(up->u) < size) {
        s_status(out, 0, farm_store_upload_offset(up->u), NULL);
        return;
    }
    /* complete: commit frees the upload either way */
    {
        int rc = farm_store_upload_commit(&up->u);
        char err[512];
        if (rc < 0)
            snprintf(err, sizeof err, "%s", rc == FARM_EINVALID
                                                ? "uploaded bytes do not match the offered digest"
                                                : farm_error_last());
        s_drop(self, up);
        if (rc < 0) {
            s_status(out, 0, 0, err);
            return;
        }
    }
    farm_log_info("stored context %s (%llu bytes)", digest, (unsigned long long)size);
    s_status(out, 1, size, NULL);
}

int farm_ctxstore_has(farm_ctxstore_t *self, const char *digest, uint64_t *out_size)
{
    return farm_store_has(self->store, digest, out_size) == 1;
}

void farm_ctxstore_touch(farm_ctxstore_t *self, const char *digest)
{
    farm_store_touch(self->store, digest);
}

int farm_ctxstore_read(farm_ctxstore_t *self, const char *digest, uint64_t offset, void *buf,
                       size_t cap, size_t *out_len, uint64_t *out_total)
{
    uint64_t total = 0;
    ssize_t n;
    int fd;

    *out_len = 0;
    *out_total = 0;
    if (!farm_digest_valid(digest))
        return farm_error_set(FARM_EINVALID, "not a sha256 digest");
    fd = farm_store_open(self->store, digest, &total);
    if (fd < 0)
        return farm_error_set(FARM_ENOTFOUND, "the coordinator does not hold this context");
    *out_total = total;
    if (offset == 0)
        farm_store_touch(self->store, digest);
    if (offset > total) {
        close(fd);
        return farm_error_set(FARM_EINVALID, "offset beyond the end of the context");
    }
    n = pread(fd, buf, cap, (off_t)offset);
    close(fd);
    if (n < 0)
        return farm_error_set(FARM_EIO, "read error: %s", strerror(errno));
    *out_len = (size_t)n;
    return 0;
}

void farm_ctxstore_expire(farm_ctxstore_t *self, long long now, long long idle_ms)
{
    for (upload_t *up = self->uploads, *next; up; up = next) {
        next = up->next;
        if (now - up->last_activity > idle_ms) {
            farm_log_info("dropping upload of %s: idle for %lld s",
                          farm_store_upload_digest(up->u), (now - up->last_activity) / 1000);
            s_drop(self, up);
        }
    }
}

void farm_ctxstore_sweep(farm_ctxstore_t *self, long long ttl_ms,
                         int (*in_use)(void *arg, const char *digest), void *arg)
{
    farm_store_sweep(self->store, ttl_ms, self->quota, in_use, arg);
}

