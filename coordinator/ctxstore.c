/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/ctxstore.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/hmap.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/store.h"
#include "common/wire.h"
#include "coordinator/stats.h"

#define OWNER_MAX 63           /* a client's key (Z85, 40) or name */
#define OWNERS_PER_CONTEXT 256 /* beyond it the earliest uploader must send it again */
#define OWNERS_FILE "owners.json"
#define OWNERS_FILE_MAX (16u << 20)
#define KEY_MAX (1 + 256 + FARM_DIGEST_STRLEN)

/* Who uploaded a stored context's bytes: a build is served a context only for one of
 * them (a digest is printed and logged, so knowing it proves nothing). */
typedef struct owners {
    struct owners *next;
    char digest[FARM_DIGEST_STRLEN];
    char (*keys)[OWNER_MAX + 1];
    size_t n;
} owners_t;

typedef struct upload {
    struct upload *next;
    char owner[OWNER_MAX + 1]; /* the client's key, "" without keys */
    char key[KEY_MAX];         /* s_key: the client (key, or connection) + digest */
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
    farm_hmap_t *owners; /* digest -> owners_t, each also on owners_list */
    owners_t *owners_list;
    char owners_path[FARM_PATH_MAX];
};

static void s_owners_free(owners_t *o)
{
    if (o) {
        free(o->keys);
        free(o);
    }
}

static int s_owns(const farm_ctxstore_t *self, const char *digest, const char *owner)
{
    const owners_t *o = farm_hmap_gets(self->owners, digest);
    for (size_t i = 0; o && i < o->n; i++)
        if (strcmp(o->keys[i], owner) == 0)
            return 1;
    return 0;
}

/* 1 when added, 0 when it was there, < 0 out of memory. */
static int s_own(farm_ctxstore_t *self, const char *digest, const char *owner)
{
    owners_t *o = farm_hmap_gets(self->owners, digest);
    void *grown;

    if (strlen(owner) > OWNER_MAX)
        return farm_error_set(FARM_EINVALID, "owner too long");
    if (s_owns(self, digest, owner))
        return 0;
    if (!o) {
        if (!(o = calloc(1, sizeof *o)))
            return farm_error_set(FARM_ERROR, "out of memory");
        snprintf(o->digest, sizeof o->digest, "%s", digest);
        if (farm_hmap_puts(self->owners, o->digest, o) < 0) {
            free(o);
            return farm_error_set(FARM_ERROR, "out of memory");
        }
        o->next = self->owners_list;
        self->owners_list = o;
    }
    if (o->n == OWNERS_PER_CONTEXT) {
        memmove(o->keys, o->keys + 1, (o->n - 1) * sizeof *o->keys);
        o->n--;
    }
    if (!(grown = realloc(o->keys, (o->n + 1) * sizeof *o->keys)))
        return farm_error_set(FARM_ERROR, "out of memory");
    o->keys = grown;
    snprintf(o->keys[o->n++], OWNER_MAX + 1, "%s", owner);
    return 1;
}

/* Writes owners.json (all or nothing) with the contexts the store still holds. */
static void s_owners_save(farm_ctxstore_t *self)
{
    json_t *root = json_object(), *map = json_object();
    char *text = NULL;
    int bad = !root || !map || json_object_set_new(root, "version", json_integer(1)) < 0;

    for (const owners_t *o = self->owners_list; o && !bad; o = o->next) {
        json_t *list = json_array();
        if (!list) {
            bad = 1;
            break;
        }
        for (size_t k = 0; !bad && k < o->n; k++)
            bad = json_array_append_new(list, json_string(o->keys[k])) < 0;
        bad |= json_object_set_new(map, o->digest, list) < 0; /* takes list either way */
    }
    bad |= json_object_set_new(root, "owners", map) < 0; /* takes map either way */
    if (!bad && !(text = json_dumps(root, JSON_COMPACT)))
        bad = 1;
    if (bad)
        farm_log_warn("%s: out of memory; who uploaded which context is not saved (after a "
                      "restart clients send their contexts again)", self->owners_path);
    else if (farm_fs_write_atomic(self->owners_path, text, strlen(text)) < 0)
        farm_log_warn("%s; after a restart clients send their contexts again",
                      farm_error_last());
    free(text);
    json_decref(root);
}

/* Forgets the owners of contexts the store no longer holds (evicted, expired, corrupt).
 * 1 if any were forgotten. */
static int s_owners_prune(farm_ctxstore_t *self)
{
    int changed = 0;

    for (owners_t **pp = &self->owners_list; *pp;) {
        owners_t *o = *pp;
        uint64_t size;
        if (farm_store_has(self->store, o->digest, &size) == 1) {
            pp = &o->next;
            continue;
        }
        *pp = o->next;
        farm_hmap_dels(self->owners, o->digest);
        s_owners_free(o);
        changed = 1;
    }
    return changed;
}

/* Reads owners.json. A missing file is no owners; a bad one is a warning (clients send
 * their contexts again), never a failed start. Entries for contexts the store does not
 * hold are dropped. */
static void s_owners_load(farm_ctxstore_t *self)
{
    json_error_t jerr;
    json_t *root = NULL, *map, *list;
    const char *digest;
    char *text = NULL;
    size_t got = 0, loaded = 0;
    int rc;

    if ((rc = farm_fs_read_file(&text, &got, self->owners_path, OWNERS_FILE_MAX)) < 0) {
        if (rc != FARM_ENOTFOUND)
            farm_log_warn("%s; clients send their stored contexts again", farm_error_last());
        return;
    }
    root = json_loadb(text, got, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    map = json_object_get(root, "owners");
    if (!json_is_object(root) || json_integer_value(json_object_get(root, "version")) != 1 ||
        !json_is_object(map)) {
        farm_log_warn("%s: not a context-owners file of version 1 (an object with \"version\": "
                      "1 and an \"owners\" map); clients send their stored contexts again",
                      self->owners_path);
        json_decref(root);
        return;
    }
    json_object_foreach(map, digest, list) {
        uint64_t size;
        size_t k;
        if (!farm_digest_valid(digest) || !json_is_array(list) ||
            farm_store_has(self->store, digest, &size) != 1)
            continue;
        for (k = 0; k < json_array_size(list) && k < OWNERS_PER_CONTEXT; k++) {
            json_t *v = json_array_get(list, k);
            if (json_is_string(v) && json_string_length(v) <= OWNER_MAX &&
                strlen(json_string_value(v)) == json_string_length(v) &&
                s_own(self, digest, json_string_value(v)) < 0)
                break;
        }
        loaded++;
    }
    json_decref(root);
    farm_log_info("who uploaded which context: %zu context(s) restored from %s", loaded,
                  self->owners_path);
}

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
    self->owners = farm_hmap_new();
    if (!self->store || !self->by_key || !self->owners ||
        farm_path_join(self->owners_path, sizeof self->owners_path, dir, OWNERS_FILE) < 0) {
        farm_ctxstore_destroy(&self);
        return NULL;
    }
    /* hashed once now, before the reactor runs: no turn later stalls on a large file */
    farm_store_verify_logged(self->store, "stored contexts");
    farm_fs_remove_atomic_temps(self->owners_path);
    s_owners_load(self);
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
    while (self->owners_list) {
        owners_t *o = self->owners_list;
        self->owners_list = o->next;
        s_owners_free(o);
    }
    farm_hmap_destroy(&self->owners);
    farm_store_destroy(&self->store);
    free(self);
    *self_p = NULL;
}

/* An upload's key: 'k', the client's key and the digest, so that every connection of a
 * keyed client shares one upload of a digest; without keys ('c') the connection's routing
 * id, as a client is then its connection. */
static size_t s_key(char *key, const void *client, size_t client_len, const char *owner,
                    const char *digest)
{
    size_t dl = strlen(digest);
    if (owner && owner[0]) {
        client = owner;
        client_len = strlen(owner);
        key[0] = 'k';
    } else {
        key[0] = 'c';
    }
    if (client_len > 256)
        client_len = 256;
    memcpy(key + 1, client, client_len);
    memcpy(key + 1 + client_len, digest, dl);
    return 1 + client_len + dl;
}

static void s_status(farm_ctx_status_t *out, int have, uint64_t offset, const char *error)
{
    out->have = have;
    out->offset = offset;
    out->retry = 0;
    snprintf(out->error, sizeof out->error, "%s", error ? error : "");
}

/* A refusal that another offer after a pause gets past. */
static void s_status_retry(farm_ctx_status_t *out, uint64_t offset, const char *error)
{
    s_status(out, 0, offset, error);
    out->retry = 1;
}

/* One client cannot hold every upload slot: at its limit, its oldest upload makes room.
 * A client is its name (all its connections), or without keys its connection. */
static void s_client_room(farm_ctxstore_t *self, const void *client, size_t client_len,
                          const char *owner, const char *digest)
{
    upload_t *oldest = NULL;
    size_t mine = 0;

    if (client_len > 256)
        client_len = 256;
    for (upload_t *o = self->uploads; o; o = o->next) {
        if (owner && owner[0] ? strcmp(o->owner, owner) != 0
                              : (o->key[0] != 'c' ||
                                 o->key_len - 1 - strlen(digest) != client_len ||
                                 memcmp(o->key + 1, client, client_len) != 0))
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

/* "512 bytes", "1 MiB", "2.5 GiB": a size as a person reads it in a refusal. */
static const char *s_size_text(char *buf, size_t cap, uint64_t bytes)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    size_t u = 0;

    if (bytes < 1024) {
        snprintf(buf, cap, "%llu bytes", (unsigned long long)bytes);
        return buf;
    }
    for (v /= 1024; v >= 1024 && u + 1 < sizeof units / sizeof *units; v /= 1024)
        u++;
    snprintf(buf, cap, v == (double)(uint64_t)v ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

/* The quota counts what is stored and what uploads in progress announced: room for
 * `size` more is made by evicting the least recently used contexts no build needs.
 * FARM_ETOOBIG when there is none, with *out_kept (stored contexts left, those running
 * builds need) and *out_inflight (announced by uploads in progress) for the refusal. */
static int s_make_room(farm_ctxstore_t *self, uint64_t size, uint64_t *out_kept,
                       uint64_t *out_inflight)
{
    uint64_t used = 0, inflight = 0;

    for (upload_t *u = self->uploads; u; u = u->next)
        inflight += farm_store_upload_size(u->u);
    *out_inflight = inflight;
    *out_kept = 0;
    if (farm_store_usage(self->store, &used) < 0)
        return FARM_EIO;
    *out_kept = used;
    if (used + inflight + size <= self->quota)
        return 0;
    if (inflight + size <= self->quota)
        farm_store_sweep(self->store, 0, self->quota - inflight - size, self->in_use,
                         self->in_use_arg);
    if (farm_store_usage(self->store, &used) < 0)
        return FARM_EIO;
    *out_kept = used;
    return used + inflight + size > self->quota ? FARM_ETOOBIG : 0;
}

/* Why an offer of `size` bytes does not fit in the context store, and what to do. */
void farm_ctxstore_quota_text(char *out, size_t cap, uint64_t size, uint64_t quota,
                              uint64_t kept, uint64_t inflight)
{
    char s[32], q[32], k[32], i[32];

    s_size_text(s, sizeof s, size);
    s_size_text(q, sizeof q, quota);
    if (size > quota) {
        snprintf(out, cap, "the context is %s, more than the coordinator keeps for all "
                 "contexts (coordinator.context_quota: %s, set in the coordinator's "
                 "farm.yaml): make it smaller (.dockerignore leaves files out), or ask the "
                 "farm's admin to raise coordinator.context_quota", s, q);
        return;
    }
    s_size_text(k, sizeof k, kept);
    s_size_text(i, sizeof i, inflight);
    snprintf(out, cap, "the coordinator's context store is full: this context needs %s of "
             "coordinator.context_quota's %s, and %s are contexts that running builds "
             "need and %s uploads in progress (the rest was freed): submit again when "
             "builds have finished, or ask the farm's admin to raise "
             "coordinator.context_quota in the coordinator's farm.yaml", s, q, k, i);
}

void farm_ctxstore_offer(farm_ctxstore_t *self, farm_ctx_status_t *out, const void *client,
                         size_t client_len, const char *owner, const char *digest,
                         uint64_t size, long long now)
{
    char key[KEY_MAX];
    size_t key_len;
    uint64_t have_size = 0, kept = 0, inflight = 0;
    char err[sizeof out->error];
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
        farm_ctxstore_quota_text(err, sizeof err, size, self->quota, 0, 0);
        s_status(out, 0, 0, err);
        return;
    }
    /* held for this client only if it sent these bytes itself; to anyone else the answer
     * and the context's age are as if it were absent (no oracle of what others sent) */
    if (s_owns(self, digest, owner ? owner : "") &&
        farm_store_has(self->store, digest, &have_size) == 1 && have_size == size) {
        farm_store_touch(self->store, digest);
        s_status(out, 1, size, NULL);
        return;
    }
    key_len = s_key(key, client, client_len, owner, digest);
    if ((up = farm_hmap_get(self->by_key, key, key_len))) {
        /* this client is uploading it already (another submit, or this one again): join
         * that upload, so concurrent submits of one context take one slot and none is
         * replaced; the bytes are the client's own, whoever of its connections sends them */
        if (farm_store_upload_size(up->u) != size) {
            snprintf(err, sizeof err, "this client is already uploading %s with a size of "
                     "%llu bytes, not %llu: the same digest cannot have two sizes (is the "
                     "context file changing while farmctl reads it?)", digest,
                     (unsigned long long)farm_store_upload_size(up->u),
                     (unsigned long long)size);
            s_status(out, 0, 0, err);
            return;
        }
        up->last_activity = now;
        farm_log_debug("an offer of %s joins its client's upload in progress (at %llu of "
                       "%llu bytes)", digest,
                       (unsigned long long)farm_store_upload_offset(up->u),
                       (unsigned long long)size);
        s_status(out, 0, farm_store_upload_offset(up->u), NULL);
        return;
    }
    if (self->quota && s_make_room(self, size, &kept, &inflight) < 0) {
        farm_ctxstore_quota_text(err, sizeof err, size, self->quota, kept, inflight);
        s_status(out, 0, 0, err);
        return;
    }
    s_client_room(self, client, client_len, owner, digest);
    if (self->n_uploads >= self->max_uploads) {
        s_status_retry(out, 0, "the coordinator is receiving too many contexts at once "
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
    snprintf(up->owner, sizeof up->owner, "%.*s", OWNER_MAX, owner ? owner : "");
    up->last_activity = now;
    up->u = farm_store_upload_new(self->store, digest, size);
    if (!up->u || farm_hmap_put(self->by_key, up->key, up->key_len, up) < 0) {
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
                         size_t client_len, const char *owner_in, const char *digest,
                         uint64_t offset, const void *data, size_t len, long long now)
{
    char key[KEY_MAX], owner[OWNER_MAX + 1];
    size_t key_len;
    upload_t *up;
    uint64_t size, at;

    if (!farm_digest_valid(digest)) {
        s_status(out, 0, 0, "not a sha256 digest");
        return;
    }
    key_len = s_key(key, client, client_len, owner_in, digest);
    up = farm_hmap_get(self->by_key, key, key_len);
    if (!up) {
        /* replaced, expired, or finished by another connection of this client */
        s_status_retry(out, 0, "no upload in progress; offer first");
        return;
    }
    at = farm_store_upload_offset(up->u);
    if (offset + len > farm_store_upload_size(up->u) || offset + len < offset) {
        s_status(out, 0, at, "chunk beyond the offered size");
        return;
    }
    if (offset > at) {
        /* a gap: the upload started over after this sender's offer */
        s_status_retry(out, at, "chunk out of order (the upload is at an earlier offset); "
                                "offer again");
        return;
    }
    /* bytes before `at` came from another connection of this client: only the rest is new */
    if (offset + len < at || (len > 0 && offset + len == at)) {
        up->last_activity = now;
        s_status(out, 0, at, NULL);
        return;
    }
    if (farm_store_upload_write(up->u, (const char *)data + (at - offset),
                                len - (size_t)(at - offset)) < 0) {
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
    snprintf(owner, sizeof owner, "%s", up->owner);
    {
        int rc = farm_store_upload_commit(&up->u);
        char err[512];
        if (rc < 0)
            snprintf(err, sizeof err, "%s", rc == FARM_EINVALID
                                                ? "uploaded bytes do not match the offered digest"
                                                : farm_error_last());
        s_drop(self, up);
        if (rc < 0) {
            farm_metric_inc(farm_cstats.uploads, "refused", NULL);
            s_status(out, 0, 0, err);
            return;
        }
    }
    /* the bytes verified: this client may build from them (saved, so a restart keeps it) */
    if (s_own(self, digest, owner) > 0)
        s_owners_save(self);
    farm_log_info("stored context %s (%llu bytes)", digest, (unsigned long long)size);
    farm_metric_inc(farm_cstats.uploads, "stored", NULL);
    s_status(out, 1, size, NULL);
}

int farm_ctxstore_has(farm_ctxstore_t *self, const char *digest, uint64_t *out_size)
{
    return farm_store_has(self->store, digest, out_size) == 1;
}

int farm_ctxstore_has_for(farm_ctxstore_t *self, const char *digest, const char *owner,
                          uint64_t *out_size)
{
    *out_size = 0;
    return s_owns(self, digest, owner ? owner : "") &&
           farm_store_has(self->store, digest, out_size) == 1;
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
    if (s_owners_prune(self))
        s_owners_save(self);
}


void farm_ctxstore_usage(farm_ctxstore_t *self, uint64_t *bytes_out, size_t *uploads_out)
{
    *bytes_out = 0;
    farm_store_usage(self->store, bytes_out);
    *uploads_out = self->n_uploads;
}
