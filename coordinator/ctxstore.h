/* SPDX-License-Identifier: Apache-2.0 */
/* Build contexts the coordinator holds: uploads from clients (by digest, in order,
 * verified before they count), reads for agents, and the clean-up of contexts nobody
 * used for context_ttl. Storage is a common/store.h content-addressed store. */
#ifndef FARM_COORD_CTXSTORE_H
#define FARM_COORD_CTXSTORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct farm_ctxstore farm_ctxstore_t;

/* What to answer a client after an offer or a chunk. */
typedef struct {
    int have;          /* the context is stored: nothing more to send */
    uint64_t offset;   /* else: send from here */
    int retry;         /* with error: offer again after a pause (upload gone, or busy) */
    char error[512];   /* "" when fine */
} farm_ctx_status_t;

/* quota: bytes of contexts kept (0: no bound); the sweep removes the least recently used
 * beyond it, and an offer larger than it is refused. Uploads at once: max_uploads in all,
 * max_per_client per client (a client's next one replaces its oldest). in_use says which
 * contexts running builds need: never evicted. One upload per client and digest: a client
 * is its key (all its connections share the upload), or without keys its connection. */
farm_ctxstore_t *farm_ctxstore_new(const char *dir, uint64_t quota, size_t max_uploads,
                                   size_t max_per_client,
                                   int (*in_use)(void *arg, const char *digest), void *arg);
void farm_ctxstore_destroy(farm_ctxstore_t **self_p);

/* A client (routing id; owner: its CURVE key, "" without keys) offers `size` bytes
 * hashing to digest. The answer is "have" only when this owner uploaded those bytes
 * itself; for anyone else the offer is answered and taken as if the context were absent
 * (its age unchanged), so a digest reveals nothing of what others sent. A completed
 * upload makes its owner one of the context's owners (kept in DIR/owners.json). An offer
 * of a digest the same client is already uploading joins that upload (no second slot,
 * answered with its offset): every connection of that key may send its next bytes. */
void farm_ctxstore_offer(farm_ctxstore_t *self, farm_ctx_status_t *out, const void *client,
                         size_t client_len, const char *owner, const char *digest,
                         uint64_t size, long long now);
/* The refusal of an offer of size bytes that does not fit in quota (both in bytes): the
 * context alone is larger, or kept bytes (contexts running builds need) and inflight
 * (uploads in progress) leave no room; names coordinator.context_quota and what to do. */
void farm_ctxstore_quota_text(char *out, size_t cap, uint64_t size, uint64_t quota,
                              uint64_t kept, uint64_t inflight);
/* The next chunk of that client's upload. A chunk overlapping bytes already received
 * (another connection of the client sent them) adds only what is new; the answer's offset
 * says where the upload is. A chunk for no upload, or past a gap, is answered with retry
 * set: offer again. owner as in farm_ctxstore_offer. */
void farm_ctxstore_chunk(farm_ctxstore_t *self, farm_ctx_status_t *out, const void *client,
                         size_t client_len, const char *owner, const char *digest,
                         uint64_t offset,
                         const void *data, size_t len, long long now);
/* 1 and *out_size when the context is stored (verified): for agents, which fetch what
 * the coordinator dispatched. */
int farm_ctxstore_has(farm_ctxstore_t *self, const char *digest, uint64_t *out_size);
/* The same, for a build of owner: 1 only when that owner uploaded the bytes itself. */
int farm_ctxstore_has_for(farm_ctxstore_t *self, const char *digest, const char *owner,
                          uint64_t *out_size);
/* Marks a use (a build accepted): the context stays at least context_ttl from now. */
void farm_ctxstore_touch(farm_ctxstore_t *self, const char *digest);
/* Reads up to cap bytes at offset for an agent. 0 with *out_len (0 at the end) and
 * *out_total; < 0 with the error slot naming what is wrong. */
int farm_ctxstore_read(farm_ctxstore_t *self, const char *digest, uint64_t offset, void *buf,
                       size_t cap, size_t *out_len, uint64_t *out_total);
/* Drops uploads idle for longer than idle_ms. */
void farm_ctxstore_expire(farm_ctxstore_t *self, long long now, long long idle_ms);
/* Deletes contexts unused for ttl_ms, then the least recently used beyond the quota,
 * never one in_use claims; forgets the owners of what is gone. */
/* Bytes stored on disk now (a directory scan) and the uploads in progress, for metrics. */
void farm_ctxstore_usage(farm_ctxstore_t *self, uint64_t *bytes_out, size_t *uploads_out);
void farm_ctxstore_sweep(farm_ctxstore_t *self, long long ttl_ms,
                         int (*in_use)(void *arg, const char *digest), void *arg);

#endif
