/* SPDX-License-Identifier: Apache-2.0 */
/* Small filesystem helpers shared by the coordinator and the agent. */
#ifndef FARM_FS_H
#define FARM_FS_H

#include <stddef.h>

/* mkdir -p with mode 0700 for every directory it creates. */
int farm_fs_mkdirs(const char *path);
/* rm -rf without following symlinks (nftw FTW_PHYS). */
void farm_fs_rmtree(const char *path);

/* Removes the temp files farm_fs_write_atomic(path) left when a process died between
 * write and rename; returns how many. */
int farm_fs_remove_atomic_temps(const char *path);

/* A directory only this user may change: not a symlink, a directory, owned by the
 * effective uid, not writable by group or others (another user who made it first, e.g.
 * under /var/tmp, could otherwise swap what is in it). st: its lstat. The error names
 * what (e.g. "store directory") and dir, and says how to fix it. */
struct stat;
int farm_fs_check_owned(const char *what, const char *dir, const struct stat *st);

/* Replaces path with len bytes of data, mode 0600, all or nothing: a new file beside it
 * (O_EXCL), written, synced and renamed over it; the directory synced. The error names
 * the path. */
int farm_fs_write_atomic(const char *path, const void *data, size_t len);

/* Reads a whole state file this process wrote (warm.json, owners.json) into *out (malloc'd,
 * NUL-terminated; *out_len bytes): a regular file, not a symlink (O_NOFOLLOW), not a FIFO
 * (opened O_NONBLOCK, so one planted there cannot hang a start), at most max bytes.
 * FARM_ENOTFOUND when there is none; otherwise the error names path and what is wrong. */
int farm_fs_read_file(char **out, size_t *out_len, const char *path, size_t max);

/* out = "a/b" (one slash between them; b may be NULL or ""). Fails with FARM_ETOOBIG,
 * naming the path, rather than cut it; out is "" then. */
int farm_path_join(char *out, size_t len, const char *a, const char *b);
/* out = printf(fmt, ...), or FARM_ETOOBIG (out "") when it does not fit. */
int farm_path_fmt(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
