/* SPDX-License-Identifier: Apache-2.0 */
/* A content-addressed store of files named by their sha256 digest: the coordinator's
 * received contexts and the agent's context cache.
 *
 * It trusts nothing it finds on disk: its directory must be owned by this user and not
 * writable by group or others (created 0700 if missing); an object is used or counted as
 * present only after its bytes hash to its name (checked once per file per process, then
 * remembered by device, inode and size; a file that fails is removed). Each upload
 * writes its own private temp file (O_EXCL, O_NOFOLLOW, 0600) and is renamed into place
 * only after its digest verified, so two uploads of one digest never write through the
 * same path and a planted symlink is never followed. mtime is an object's last use. */
#ifndef FARM_STORE_H
#define FARM_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/digest.h"

typedef struct farm_store farm_store_t;
typedef struct farm_store_upload farm_store_upload_t;

/* dir: the store's directory; objects are DIR/HEX.tar, temp files DIR/.tmp-*. Temp
 * files left by an earlier process are removed. NULL (error slot) when dir is unsafe. */
farm_store_t *farm_store_new(const char *dir);
void farm_store_destroy(farm_store_t **self_p);
const char *farm_store_dir(const farm_store_t *self);

/* The object's path, whether or not it exists (FARM_ETOOBIG if it does not fit). */
int farm_store_path(const farm_store_t *self, char *out, size_t len, const char *digest);

/* 1 and *out_size when a verified object is present, 0 when it is not (a corrupt or
 * planted file is removed and counts as absent), < 0 on error. Hashes the file the first
 * time this process sees it. */
int farm_store_has(farm_store_t *self, const char *digest, uint64_t *out_size);
/* Checks every object now (start-up, before serving), so that later has()/open() answer
 * from memory instead of hashing a large file inside a reactor turn. Returns how many
 * objects verified (*out_bytes their size); the others are removed. */
int farm_store_verify_all(farm_store_t *self, uint64_t *out_bytes);
/* The same, at start-up, with one log line naming `what` (how many, how long). */
int farm_store_verify_logged(farm_store_t *self, const char *what);
/* Bytes the objects take on disk now (a directory scan); returns how many objects. */
int farm_store_usage(farm_store_t *self, uint64_t *out_bytes);
/* Calls fn for every object on disk (not hashed here: what takes space), with its size
 * and last use (mtime, seconds since the epoch). fn may remove the object. Returns how
 * many, or < 0 when the directory cannot be listed. */
typedef void (*farm_store_each_fn)(void *arg, const char *digest, uint64_t size,
                                   long long used_s);
int farm_store_each(farm_store_t *self, farm_store_each_fn fn, void *arg);
/* Opens a verified object read-only (O_NOFOLLOW): an fd, or FARM_ENOTFOUND. */
int farm_store_open(farm_store_t *self, const char *digest, uint64_t *out_size);
/* Marks a use now (mtime): the last to be evicted. */
void farm_store_touch(farm_store_t *self, const char *digest);
/* Removes the object (e.g. evicted). */
void farm_store_remove(farm_store_t *self, const char *digest);

/* Starts receiving `size` bytes that must hash to `digest` (size may be 0 when unknown
 * until the first chunk: then farm_store_upload_set_size). NULL on failure. */
farm_store_upload_t *farm_store_upload_new(farm_store_t *self, const char *digest,
                                           uint64_t size);
void farm_store_upload_set_size(farm_store_upload_t *u, uint64_t size);
/* Appends bytes in order; FARM_EINVALID past the announced size, FARM_EIO on disk error. */
int farm_store_upload_write(farm_store_upload_t *u, const void *data, size_t len);
uint64_t farm_store_upload_offset(const farm_store_upload_t *u);
uint64_t farm_store_upload_size(const farm_store_upload_t *u);
const char *farm_store_upload_digest(const farm_store_upload_t *u);
/* All bytes arrived: verifies the digest and renames into place (an object that is
 * already present and verified is kept and ours discarded). Frees u either way.
 * FARM_EINVALID when the bytes do not match the digest or the size is short. */
int farm_store_upload_commit(farm_store_upload_t **u_p);
/* Drops an upload and its temp file. */
void farm_store_upload_abort(farm_store_upload_t **u_p);

/* Sweep: removes objects not used for ttl_ms (ttl_ms <= 0: no age limit), then the least
 * recently used until the store holds at most max_bytes (0: no size limit). Objects for
 * which in_use(arg, digest) returns non-zero are never removed. Returns the number
 * removed; each removal is logged with its size. */
int farm_store_sweep(farm_store_t *self, long long ttl_ms, uint64_t max_bytes,
                     int (*in_use)(void *arg, const char *digest), void *arg);

#endif
