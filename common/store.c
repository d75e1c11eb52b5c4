/* SPDX-License-Identifier: Apache-2.0 */
#include "common/store.h"
#include "common/wire.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"
#include "common/log.h"

#define HEX_LEN 64
#define OBJ_NAME_MAX 80          /* "<64 hex>.tar" and ".tmp-<16 hex>" fit */
#define TMP_PREFIX ".tmp-"
#define TMP_TRIES 16             /* fresh random names tried when one exists */
#define SEEN_MIN 64              /* initial slots of the verified table */

/* A file already hashed by this process: the same (dev, ino, size) is not hashed again. */
typedef struct {
    char hex[HEX_LEN + 1]; /* "" when the slot is empty */
    dev_t dev;
    ino_t ino;
    off_t size;
} s_seen_t;

struct farm_store {
    char *dir;
    int dirfd;        /* every access goes through it: the path is resolved once, at new */
    s_seen_t *seen;   /* open addressing, linear probing; capacity is a power of two */
    size_t seen_cap, seen_n;
    size_t uploads;   /* live uploads (they point at the store) */
};

struct farm_store_upload {
    farm_store_t *store;
    char digest[FARM_DIGEST_STRLEN];
    char tmp[OBJ_NAME_MAX];
    int fd;
    farm_sha256_t *sha;
    uint64_t size, offset;
    char err[512]; /* non-empty once the upload cannot succeed (write error, bad size) */
};

/* ---- verified table -------------------------------------------------------------- */

/* Keys are sha256 digests of bytes we hashed ourselves, so their leading bits are uniform
 * and a peer cannot choose colliding keys. */
static size_t s_seen_home(const farm_store_t *self, const char *hex)
{
    uint64_t h = 0;
    for (int i = 0; i < 16; i++) {
        char c = hex[i];
        h = (h << 4) | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return (size_t)h & (self->seen_cap - 1);
}

static s_seen_t *s_seen_get(farm_store_t *self, const char *hex)
{
    if (!self->seen_cap)
        return NULL;
    for (size_t i = s_seen_home(self, hex);; i = (i + 1) & (self->seen_cap - 1)) {
        if (!self->seen[i].hex[0])
            return NULL;
        if (memcmp(self->seen[i].hex, hex, HEX_LEN) == 0)
            return &self->seen[i];
    }
}

static void s_seen_del(farm_store_t *self, const char *hex)
{
    s_seen_t *e = s_seen_get(self, hex);
    size_t mask = self->seen_cap - 1, i, j;

    if (!e)
        return;
    /* backward-shift deletion (Knuth 6.4 algorithm R): no tombstones */
    i = (size_t)(e - self->seen);
    for (j = i;;) {
        size_t k;
        j = (j + 1) & mask;
        if (!self->seen[j].hex[0])
            break;
        k = s_seen_home(self, self->seen[j].hex);
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
            continue;
        self->seen[i] = self->seen[j];
        i = j;
    }
    memset(&self->seen[i], 0, sizeof self->seen[i]);
    self->seen_n--;
}

static int s_seen_put(farm_store_t *self, const char *hex, const struct stat *st)
{
    s_seen_t *e = s_seen_get(self, hex);

    if (!e && (self->seen_n + 1) * 2 > self->seen_cap) {
        size_t cap = self->seen_cap ? self->seen_cap * 2 : SEEN_MIN;
        s_seen_t *old = self->seen, *grown = calloc(cap, sizeof *grown);
        size_t old_cap = self->seen_cap;

        if (!grown)
            return farm_error_set(FARM_ERROR, "store %s: out of memory", self->dir);
        self->seen = grown;
        self->seen_cap = cap;
        self->seen_n = 0;
        for (size_t i = 0; i < old_cap; i++) {
            if (!old[i].hex[0])
                continue;
            size_t k = s_seen_home(self, old[i].hex);
            while (self->seen[k].hex[0])
                k = (k + 1) & (cap - 1);
            self->seen[k] = old[i];
            self->seen_n++;
        }
        free(old);
    }
    if (!e) {
        size_t k = s_seen_home(self, hex);
        while (self->seen[k].hex[0])
            k = (k + 1) & (self->seen_cap - 1);
        e = &self->seen[k];
        memcpy(e->hex, hex, HEX_LEN);
        e->hex[HEX_LEN] = '\0';
        self->seen_n++;
    }
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->size = st->st_size;
    return 0;
}

/* ---- helpers --------------------------------------------------------------------- */

static int s_object_name(char out[OBJ_NAME_MAX], const char *digest)
{
    if (!farm_digest_valid(digest))
        return farm_error_set(FARM_EINVALID, "not a sha256 digest: \"%.80s\"", digest ? digest : "");
    return farm_path_fmt(out, OBJ_NAME_MAX, "%s.tar", digest + strlen("sha256:"));
}

static int s_is_object_name(const char *name)
{
    if (strlen(name) != HEX_LEN + 4 || strcmp(name + HEX_LEN, ".tar") != 0)
        return 0;
    for (int i = 0; i < HEX_LEN; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
            return 0;
    return 1;
}

/* Unlinks name only if it is still the file we examined (st), never through a symlink. */
static void s_unlink_same(farm_store_t *self, const char *name, const struct stat *st)
{
    struct stat now;
    if (fstatat(self->dirfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_dev == st->st_dev &&
        now.st_ino == st->st_ino && unlinkat(self->dirfd, name, 0) != 0 && errno != ENOENT)
        farm_log_warn("store %s: cannot remove %s: %s", self->dir, name, strerror(errno));
}

/* 1 and *out_fd (offset 0) when DIR/<hex>.tar is a regular file whose bytes hash to
 * digest; 0 when absent (whatever stood there instead is removed); < 0 on error. */
static int s_open_verified(farm_store_t *self, const char *digest, int *out_fd,
                           uint64_t *out_size)
{
    const char *hex = digest + strlen("sha256:");
    char name[OBJ_NAME_MAX], got[FARM_DIGEST_STRLEN];
    uint64_t hashed = 0;
    struct stat st;
    s_seen_t *seen;
    int rc, fd = -1;

    *out_fd = -1;
    if ((rc = s_object_name(name, digest)) < 0)
        return rc;
    /* O_NONBLOCK: a FIFO planted under the name must not hang us in open */
    fd = openat(self->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        s_seen_del(self, hex);
        if (errno == ENOENT)
            return 0;
        if (errno == ELOOP) {
            farm_log_warn("store %s: %s is a symlink, not an object; removed it (not followed)",
                          self->dir, digest);
            if (unlinkat(self->dirfd, name, 0) != 0 && errno != ENOENT)
                farm_log_warn("store %s: cannot remove %s: %s", self->dir, name, strerror(errno));
            return 0;
        }
        return farm_error_set(FARM_EIO, "store %s: cannot open %s: %s", self->dir, name,
                              strerror(errno));
    }
    if (fstat(fd, &st) != 0) {
        rc = farm_error_set(FARM_EIO, "store %s: cannot stat %s: %s", self->dir, name,
                            strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        s_seen_del(self, hex);
        farm_log_warn("store %s: %s is not a regular file; removed it", self->dir, digest);
        s_unlink_same(self, name, &st);
        rc = 0;
        goto done;
    }
    if (fcntl(fd, F_SETFL, 0) != 0) {
        rc = farm_error_set(FARM_EIO, "store %s: fcntl %s: %s", self->dir, name, strerror(errno));
        goto done;
    }
    seen = s_seen_get(self, hex);
    if (seen && seen->dev == st.st_dev && seen->ino == st.st_ino && seen->size == st.st_size) {
        rc = 1;
        goto done;
    }
    s_seen_del(self, hex);
    /* no upload can produce more than a context's limit: do not spend time hashing it */
    if ((uint64_t)st.st_size > FARM_CONTEXT_MAX) {
        farm_log_warn("store %s: %s is %lld bytes, more than any context (%s); removed it",
                      self->dir, digest, (long long)st.st_size, FARM_CONTEXT_MAX_TEXT);
        s_unlink_same(self, name, &st);
        rc = 0;
        goto done;
    }
    if ((rc = farm_digest_fd(got, &hashed, fd, name)) < 0) {
        farm_error_wrap(rc, "store %s", self->dir);
        goto done;
    }
    if (strcmp(got, digest) != 0 || hashed != (uint64_t)st.st_size) {
        farm_log_warn("store %s: object %s does not match its name (its %llu bytes hash to %s); "
                      "removed it", self->dir, digest, (unsigned long long)hashed, got);
        s_unlink_same(self, name, &st);
        rc = 0;
        goto done;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        rc = farm_error_set(FARM_EIO, "store %s: cannot seek %s: %s", self->dir, name,
                            strerror(errno));
        goto done;
    }
    /* remembering is an optimisation: without memory the file is hashed again next time */
    (void)s_seen_put(self, hex, &st);
    rc = 1;
done:
    if (rc == 1) {
        *out_fd = fd;
        if (out_size)
            *out_size = (uint64_t)st.st_size;
    } else {
        close(fd);
    }
    return rc;
}

/* Removes temp files an earlier process left (its uploads died with it). */
static int s_remove_temps(farm_store_t *self)
{
    int fd = openat(self->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), n = 0;
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return farm_error_set(FARM_EIO, "store %s: cannot list it: %s", self->dir, strerror(errno));
    }
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
            continue;
        /* unlinkat removes a symlink itself, never its target */
        if (unlinkat(self->dirfd, e->d_name, 0) == 0)
            n++;
        else if (errno != ENOENT)
            farm_log_warn("store %s: cannot remove leftover %s: %s", self->dir, e->d_name,
                          strerror(errno));
    }
    closedir(d);
    if (n)
        farm_log_info("store %s: removed %d temp file(s) left by an earlier process", self->dir, n);
    return 0;
}

/* ---- store ----------------------------------------------------------------------- */

farm_store_t *farm_store_new(const char *dir)
{
    farm_store_t *self = NULL;
    struct stat lst, st;
    int fd = -1;

    if (!dir || !*dir) {
        farm_error_set(FARM_EINVALID, "store: no directory given");
        return NULL;
    }
    if (lstat(dir, &lst) != 0) {
        if (errno != ENOENT) {
            farm_error_set(FARM_EIO, "store directory %s: %s", dir, strerror(errno));
            return NULL;
        }
        if (farm_fs_mkdirs(dir) < 0) {
            farm_error_wrap(FARM_EIO, "store directory %s", dir);
            return NULL;
        }
        if (lstat(dir, &lst) != 0) {
            farm_error_set(FARM_EIO, "store directory %s: %s", dir, strerror(errno));
            return NULL;
        }
    }
    if (farm_fs_check_owned("store directory", dir, &lst) < 0)
        return NULL;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        farm_error_set(FARM_EIO, "store directory %s: cannot open it: %s", dir, strerror(errno));
        return NULL;
    }
    /* judge what we opened, not what the name pointed at a moment ago */
    if (fstat(fd, &st) != 0) {
        farm_error_set(FARM_EIO, "store directory %s: %s", dir, strerror(errno));
        goto fail;
    }
    if (farm_fs_check_owned("store directory", dir, &st) < 0)
        goto fail;
    if (st.st_dev != lst.st_dev || st.st_ino != lst.st_ino) {
        farm_error_set(FARM_EINVALID, "store directory %s changed while being opened; retry", dir);
        goto fail;
    }
    /* One process per directory: a second one would delete the first's temp files. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            farm_error_set(FARM_EINVALID,
                           "store directory %s is in use by another process (or another store "
                           "in this one); give each its own directory", dir);
        else
            farm_error_set(FARM_EIO, "store directory %s: cannot lock it: %s", dir,
                           strerror(errno));
        goto fail;
    }
    self = calloc(1, sizeof *self);
    if (!self) {
        farm_error_set(FARM_ERROR, "store directory %s: out of memory", dir);
        goto fail;
    }
    self->dirfd = -1;
    if (!(self->dir = strdup(dir))) {
        farm_error_set(FARM_ERROR, "store directory %s: out of memory", dir);
        goto fail;
    }
    self->dirfd = fd;
    fd = -1;
    if (s_remove_temps(self) < 0)
        goto fail;
    return self;
fail:
    if (fd >= 0)
        close(fd);
    farm_store_destroy(&self);
    return NULL;
}

void farm_store_destroy(farm_store_t **self_p)
{
    farm_store_t *self;

    if (!self_p || !*self_p)
        return;
    self = *self_p;
    /* uploads point at their store: abort or commit them first */
    assert(self->uploads == 0);
    if (self->dirfd >= 0)
        close(self->dirfd);
    free(self->seen);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

const char *farm_store_dir(const farm_store_t *self)
{
    return self->dir;
}

int farm_store_path(const farm_store_t *self, char *out, size_t len, const char *digest)
{
    char name[OBJ_NAME_MAX];
    int rc;

    if ((rc = s_object_name(name, digest)) < 0) {
        if (len)
            out[0] = '\0';
        return rc;
    }
    return farm_path_join(out, len, self->dir, name);
}

int farm_store_has(farm_store_t *self, const char *digest, uint64_t *out_size)
{
    int fd, rc = s_open_verified(self, digest, &fd, out_size);
    if (rc == 1)
        close(fd);
    return rc;
}

int farm_store_open(farm_store_t *self, const char *digest, uint64_t *out_size)
{
    int fd, rc = s_open_verified(self, digest, &fd, out_size);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return farm_error_set(FARM_ENOTFOUND, "store %s: no object %s", self->dir, digest);
    return fd;
}

void farm_store_touch(farm_store_t *self, const char *digest)
{
    char name[OBJ_NAME_MAX];

    if (s_object_name(name, digest) < 0)
        return;
    if (utimensat(self->dirfd, name, NULL, AT_SYMLINK_NOFOLLOW) != 0 && errno != ENOENT)
        farm_log_warn("store %s: cannot touch %s: %s", self->dir, digest, strerror(errno));
}

void farm_store_remove(farm_store_t *self, const char *digest)
{
    char name[OBJ_NAME_MAX];

    if (s_object_name(name, digest) < 0)
        return;
    s_seen_del(self, digest + strlen("sha256:"));
    if (unlinkat(self->dirfd, name, 0) != 0 && errno != ENOENT)
        farm_log_warn("store %s: cannot remove %s: %s", self->dir, digest, strerror(errno));
}

/* ---- uploads --------------------------------------------------------------------- */

farm_store_upload_t *farm_store_upload_new(farm_store_t *self, const char *digest, uint64_t size)
{
    farm_store_upload_t *u = NULL;

    if (!farm_digest_valid(digest)) {
        farm_error_set(FARM_EINVALID, "store %s: upload of \"%.80s\": not a sha256 digest",
                       self->dir, digest ? digest : "");
        return NULL;
    }
    if (size > FARM_CONTEXT_MAX) {
        farm_error_set(FARM_ETOOBIG, "store %s: upload of %s: %llu bytes is more than a context "
                       "may hold (%s)", self->dir, digest, (unsigned long long)size,
                       FARM_CONTEXT_MAX_TEXT);
        return NULL;
    }
    u = calloc(1, sizeof *u);
    if (!u || !(u->sha = farm_sha256_new())) {
        farm_error_set(FARM_ERROR, "store %s: upload of %s: out of memory", self->dir, digest);
        goto fail;
    }
    u->fd = -1;
    memcpy(u->digest, digest, FARM_DIGEST_STRLEN);
    u->size = size;
    /* a fresh name per upload; O_EXCL|O_NOFOLLOW: whatever already has the name (a
     * planted symlink, another upload) is never opened, we pick another name */
    for (int i = 0; i < TMP_TRIES && u->fd < 0; i++) {
        unsigned char r[8];
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
            farm_error_set(FARM_EIO, "store %s: getrandom: %s", self->dir, strerror(errno));
            goto fail;
        }
        if (farm_path_fmt(u->tmp, sizeof u->tmp, TMP_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x",
                          r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]) < 0)
            goto fail;
        u->fd = openat(self->dirfd, u->tmp,
                       O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0600);
        if (u->fd < 0 && errno != EEXIST) {
            farm_error_set(FARM_EIO, "store %s: cannot create %s: %s", self->dir, u->tmp,
                           strerror(errno));
            goto fail;
        }
    }
    if (u->fd < 0) {
        farm_error_set(FARM_EIO, "store %s: no free temp name after %d tries", self->dir,
                       TMP_TRIES);
        goto fail;
    }
    u->store = self;
    self->uploads++;
    return u;
fail:
    if (u)
        farm_sha256_destroy(&u->sha);
    free(u);
    return NULL;
}

void farm_store_upload_set_size(farm_store_upload_t *u, uint64_t size)
{
    if (u->err[0] || size == u->size)
        return;
    if (u->size != 0) {
        snprintf(u->err, sizeof u->err, "upload of %s: size changed from %llu to %llu bytes",
                      u->digest, (unsigned long long)u->size, (unsigned long long)size);
        return;
    }
    if (size < u->offset) {
        snprintf(u->err, sizeof u->err,
                      "upload of %s: size %llu is less than the %llu bytes already received",
                      u->digest, (unsigned long long)size, (unsigned long long)u->offset);
        return;
    }
    if (size > FARM_CONTEXT_MAX) {
        snprintf(u->err, sizeof u->err,
                 "upload of %s: %llu bytes is more than a context may hold (%s)", u->digest,
                 (unsigned long long)size, FARM_CONTEXT_MAX_TEXT);
        return;
    }
    u->size = size;
}

int farm_store_upload_write(farm_store_upload_t *u, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t left = len;

    if (u->err[0])
        return farm_error_set(FARM_EINVALID, "store %s: %s", u->store->dir, u->err);
    if (len > u->size - u->offset)
        return farm_error_set(FARM_EINVALID,
                              "store %s: upload of %s: %zu bytes at offset %llu go past the "
                              "announced size of %llu bytes", u->store->dir, u->digest, len,
                              (unsigned long long)u->offset, (unsigned long long)u->size);
    while (left) {
        ssize_t n = write(u->fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int code = errno;
            /* the temp file's content is unknown now: the upload cannot succeed */
            snprintf(u->err, sizeof u->err, "upload of %s: cannot write %s: %s", u->digest,
                          u->tmp, n < 0 ? strerror(code) : "no progress");
            return farm_error_set(FARM_EIO, "store %s: %s", u->store->dir, u->err);
        }
        p += n;
        left -= (size_t)n;
    }
    farm_sha256_update(u->sha, data, len);
    u->offset += len;
    return 0;
}

uint64_t farm_store_upload_offset(const farm_store_upload_t *u)
{
    return u->offset;
}

uint64_t farm_store_upload_size(const farm_store_upload_t *u)
{
    return u->size;
}

const char *farm_store_upload_digest(const farm_store_upload_t *u)
{
    return u->digest;
}

static void s_upload_free(farm_store_upload_t *u, int unlink_tmp)
{
    if (u->fd >= 0)
        close(u->fd);
    if (unlink_tmp && unlinkat(u->store->dirfd, u->tmp, 0) != 0 && errno != ENOENT)
        farm_log_warn("store %s: cannot remove %s: %s", u->store->dir, u->tmp, strerror(errno));
    farm_sha256_destroy(&u->sha);
    u->store->uploads--;
    free(u);
}

int farm_store_upload_commit(farm_store_upload_t **u_p)
{
    farm_store_upload_t *u = *u_p;
    farm_store_t *self;
    char got[FARM_DIGEST_STRLEN], name[OBJ_NAME_MAX];
    struct stat st;
    int rc, fd = -1, placed = 0;

    *u_p = NULL;
    self = u->store;
    if (u->err[0]) {
        rc = farm_error_set(FARM_EINVALID, "store %s: %s", self->dir, u->err);
        goto done;
    }
    if (u->offset != u->size) {
        rc = farm_error_set(FARM_EINVALID, "store %s: upload of %s is short: %llu of %llu bytes",
                            self->dir, u->digest, (unsigned long long)u->offset,
                            (unsigned long long)u->size);
        goto done;
    }
    farm_sha256_final(u->sha, got);
    if (strcmp(got, u->digest) != 0) {
        rc = farm_error_set(FARM_EINVALID,
                            "store %s: uploaded bytes hash to %s, not the announced %s",
                            self->dir, got, u->digest);
        goto done;
    }
    if (fstat(u->fd, &st) != 0 || (uint64_t)st.st_size != u->size) {
        rc = farm_error_set(FARM_EIO, "store %s: %s is not the %llu bytes written to it", self->dir,
                            u->tmp, (unsigned long long)u->size);
        goto done;
    }
    /* A verified object already in place wins; ours is discarded. No fsync: a file torn
     * by a crash fails verification in the next process and is removed. */
    if ((rc = s_open_verified(self, u->digest, &fd, NULL)) < 0)
        goto done;
    if (rc == 1) {
        rc = 0;
        goto done;
    }
    if ((rc = s_object_name(name, u->digest)) < 0)
        goto done;
    /* rename replaces a symlink or file at name itself; it never writes through it */
    if (renameat(self->dirfd, u->tmp, self->dirfd, name) != 0) {
        rc = farm_error_set(FARM_EIO, "store %s: cannot rename %s to %s: %s", self->dir, u->tmp,
                            name, strerror(errno));
        goto done;
    }
    placed = 1;
    /* we hashed these bytes as they were written: no need to hash them again */
    (void)s_seen_put(self, u->digest + strlen("sha256:"), &st);
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    s_upload_free(u, !placed);
    return rc;
}

void farm_store_upload_abort(farm_store_upload_t **u_p)
{
    if (!u_p || !*u_p)
        return;
    s_upload_free(*u_p, 1);
    *u_p = NULL;
}

/* ---- sweep ----------------------------------------------------------------------- */

typedef struct {
    char hex[HEX_LEN + 1];
    struct timespec mtime;
    uint64_t size;
    int busy; /* in_use said so: counted, never removed */
} s_entry_t;

static int s_by_mtime(const void *a, const void *b)
{
    const s_entry_t *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->hex, y->hex);
}

static long long s_age_ms(const struct timespec *now, const struct timespec *t)
{
    return (long long)(now->tv_sec - t->tv_sec) * 1000 + (now->tv_nsec - t->tv_nsec) / 1000000;
}

/* 1 when removed (and logged), 0 when it was gone already or could not be removed. */
static int s_evict(farm_store_t *self, const s_entry_t *e, const char *why)
{
    char name[OBJ_NAME_MAX];

    if (farm_path_fmt(name, sizeof name, "%s.tar", e->hex) < 0)
        return 0;
    s_seen_del(self, e->hex);
    if (unlinkat(self->dirfd, name, 0) != 0) {
        if (errno != ENOENT)
            farm_log_warn("store %s: cannot remove sha256:%s: %s", self->dir, e->hex,
                          strerror(errno));
        return 0;
    }
    /* "removed context" (age) and "evicted context" (size) are what operators grep for */
    farm_log_info("%s context sha256:%s (%llu bytes) from %s: %s",
                  strncmp(why, "unused", 6) == 0 ? "removed" : "evicted", e->hex,
                  (unsigned long long)e->size, self->dir, why);
    return 1;
}

int farm_store_sweep(farm_store_t *self, long long ttl_ms, uint64_t max_bytes,
                     int (*in_use)(void *arg, const char *digest), void *arg)
{
    int fd = openat(self->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    s_entry_t *ents = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    struct timespec now;
    struct dirent *de;
    char digest[FARM_DIGEST_STRLEN], why[128];

    if (!d) {
        if (fd >= 0)
            close(fd);
        return farm_error_set(FARM_EIO, "store %s: cannot list it: %s", self->dir, strerror(errno));
    }
    clock_gettime(CLOCK_REALTIME, &now);
    while ((de = readdir(d))) {
        struct stat st;
        s_entry_t e;

        if (!s_is_object_name(de->d_name))
            continue;
        /* a symlink or anything but a regular file is not an object: left alone */
        if (fstatat(self->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        memcpy(e.hex, de->d_name, HEX_LEN);
        e.hex[HEX_LEN] = '\0';
        e.mtime = st.st_mtim;
        e.size = (uint64_t)st.st_size;
        memcpy(digest, "sha256:", 7);
        memcpy(digest + 7, e.hex, HEX_LEN + 1);
        e.busy = in_use && in_use(arg, digest);
        if (!e.busy && ttl_ms > 0 && s_age_ms(&now, &e.mtime) > ttl_ms) {
            snprintf(why, sizeof why, "unused for %lld s (ttl %lld s)",
                     s_age_ms(&now, &e.mtime) / 1000, ttl_ms / 1000);
            rc += s_evict(self, &e, why);
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            s_entry_t *grown = ncap > SIZE_MAX / sizeof *grown ? NULL
                                                               : realloc(ents, ncap * sizeof *grown);
            if (!grown) {
                rc = farm_error_set(FARM_ERROR, "store %s: sweep: out of memory", self->dir);
                goto done;
            }
            ents = grown;
            cap = ncap;
        }
        ents[n++] = e;
        total += e.size;
    }
    if (max_bytes == 0 || total <= max_bytes)
        goto done;
    qsort(ents, n, sizeof *ents, s_by_mtime);
    for (size_t i = 0; i < n && total > max_bytes; i++) {
        if (ents[i].busy)
            continue;
        snprintf(why, sizeof why, "least recently used; store over %llu bytes",
                 (unsigned long long)max_bytes);
        rc += s_evict(self, &ents[i], why);
        total -= ents[i].size;
    }
done:
    closedir(d);
    free(ents);
    return rc;
}

int farm_store_verify_all(farm_store_t *self, uint64_t *out_bytes)
{
    int fd = openat(self->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), n = 0;
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    char digest[FARM_DIGEST_STRLEN];

    if (out_bytes)
        *out_bytes = 0;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return farm_error_set(FARM_EIO, "store %s: cannot list it: %s", self->dir, strerror(errno));
    }
    while ((de = readdir(d))) {
        uint64_t size = 0;
        if (!s_is_object_name(de->d_name))
            continue;
        memcpy(digest, "sha256:", 7);
        memcpy(digest + 7, de->d_name, HEX_LEN);
        digest[7 + HEX_LEN] = '\0';
        /* has() hashes what it has not seen and removes what does not match */
        if (farm_store_has(self, digest, &size) == 1) {
            n++;
            if (out_bytes)
                *out_bytes += size;
        }
    }
    closedir(d);
    return n;
}

int farm_store_verify_logged(farm_store_t *self, const char *what)
{
    long long t0 = farm_now_ms();
    uint64_t bytes = 0;
    int n = farm_store_verify_all(self, &bytes);
    if (n < 0)
        farm_log_warn("%s: %s", what, farm_error_last());
    else if (n > 0)
        farm_log_info("%s: verified %d context(s), %llu bytes, in %lld ms", what, n,
                      (unsigned long long)bytes, farm_now_ms() - t0);
    return n;
}

int farm_store_each(farm_store_t *self, farm_store_each_fn fn, void *arg)
{
    int fd = openat(self->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), n = 0;
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    char digest[FARM_DIGEST_STRLEN];

    if (!d) {
        if (fd >= 0)
            close(fd);
        return farm_error_set(FARM_EIO, "store %s: cannot list it: %s", self->dir, strerror(errno));
    }
    while ((de = readdir(d))) {
        struct stat st;

        if (!s_is_object_name(de->d_name) ||
            fstatat(self->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        memcpy(digest, "sha256:", 7);
        memcpy(digest + 7, de->d_name, HEX_LEN);
        digest[7 + HEX_LEN] = '\0';
        fn(arg, digest, (uint64_t)st.st_size, (long long)st.st_mtim.tv_sec);
        n++;
    }
    closedir(d);
    return n;
}

static void s_add_size(void *arg, const char *digest, uint64_t size, long long mtime)
{
    (void)digest;
    (void)mtime;
    *(uint64_t *)arg += size;
}

int farm_store_usage(farm_store_t *self, uint64_t *out_bytes)
{
    *out_bytes = 0;
    return farm_store_each(self, s_add_size, out_bytes);
}
