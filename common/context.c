/* SPDX-License-Identifier: Apache-2.0 */
/* Build contexts: deterministic packing (honouring .dockerignore), confined extraction. */
#include "common/context.h"

#include "common/dockerignore.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_WALK_DEPTH_MAX 256         /* one open fd per level */
#define S_IO_CHUNK (64u << 10)

/* ---------------------------------------------------------------------------------
 * Packing. */

typedef struct {
    int fd;
    farm_sha256_t *sha;
    uint64_t size;
    int err;
} s_sink_t;

static la_ssize_t s_sink_write(struct archive *a, void *ud, const void *buf, size_t len)
{
    s_sink_t *s = ud;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(s->fd, (const char *)buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            s->err = errno;
            archive_set_error(a, errno, "write: %s", strerror(errno));
            return -1;
        }
        done += (size_t)n;
    }
    farm_sha256_update(s->sha, buf, len);
    s->size += len;
    return (la_ssize_t)len;
}

typedef struct {
    char *rel;
    struct stat st;
    int emitted;
} s_pending_t;

typedef struct {
    struct archive *ar;
    farm_dockerignore_t *ignore;
    dev_t out_dev;
    ino_t out_ino;
    s_pending_t stack[S_WALK_DEPTH_MAX];
    size_t depth;
    const char *root;
} s_packer_t;

static int s_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int s_write_header(s_packer_t *pk, const char *rel, const struct stat *st,
                          const char *link_target)
{
    struct archive_entry *e = NULL;
    int rc = 0;

    if (!(e = archive_entry_new()))
        return farm_error_set(FARM_ERROR, "out of memory");
    /* Names as raw bytes. In the C locale (farm never calls setlocale) libarchive cannot
     * convert non-ASCII bytes to UTF-8 and writes them raw under hdrcharset=BINARY
     * (ARCHIVE_WARN), so names that are not UTF-8 still pack and readers in any locale
     * get the same bytes back. (The _utf8 setters crash libarchive 3.6 in the C locale.) */
    archive_entry_copy_pathname(e, rel);
    archive_entry_set_mode(e, (st->st_mode & S_IFMT) | (st->st_mode & 07777));
    /* Owner normalised (the builder decides ownership), mtime kept in whole seconds:
     * COPY preserves it, and the same tree still packs to the same bytes. */
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_mtime(e, st->st_mtim.tv_sec, 0);
    if (S_ISREG(st->st_mode))
        archive_entry_set_size(e, st->st_size);
    else
        archive_entry_set_size(e, 0);
    if (link_target)
        archive_entry_copy_symlink(e, link_target);
    if (archive_write_header(pk->ar, e) < ARCHIVE_WARN)
        rc = farm_error_set(FARM_EIO, "context %s: %s: %s", pk->root, rel,
                            archive_error_string(pk->ar));
    archive_entry_free(e);
    return rc;
}

/* Writes the excluded-but-entered parent directories that now have a child to carry. */
static int s_emit_parents(s_packer_t *pk)
{
    int rc;
    for (size_t i = 0; i < pk->depth; i++) {
        if (pk->stack[i].emitted)
            continue;
        if ((rc = s_write_header(pk, pk->stack[i].rel, &pk->stack[i].st, NULL)) < 0)
            return rc;
        pk->stack[i].emitted = 1;
    }
    return 0;
}

static int s_pack_file(s_packer_t *pk, int dirfd, const char *name, const char *rel,
                       const struct stat *lst)
{
    struct stat st;
    char *buf = NULL;
    uint64_t left;
    int fd, rc = 0;

    /* O_NONBLOCK: a file swapped for a fifo since the lstat must not hang the pack. */
    fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        rc = farm_error_set(FARM_EIO, "context %s: cannot read %s: %s", pk->root, rel,
                            strerror(errno));
        goto done;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_ino != lst->st_ino) {
        rc = farm_error_set(FARM_EIO, "context %s: %s changed while packing", pk->root, rel);
        goto done;
    }
    if ((rc = s_write_header(pk, rel, &st, NULL)) < 0)
        goto done;
    if (!(buf = malloc(S_IO_CHUNK))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    for (left = (uint64_t)st.st_size; left > 0;) {
        ssize_t n = read(fd, buf, left < S_IO_CHUNK ? (size_t)left : S_IO_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = farm_error_set(FARM_EIO, "context %s: %s %s while packing", pk->root, rel,
                                n < 0 ? strerror(errno) : "shrank");
            goto done;
        }
        if (archive_write_data(pk->ar, buf, (size_t)n) != n) {
            rc = farm_error_set(FARM_EIO, "context %s: %s: %s", pk->root, rel,
                                archive_error_string(pk->ar));
            goto done;
        }
        left -= (uint64_t)n;
    }
done:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

static int s_walk(s_packer_t *pk, int dirfd, const char *prefix)
{
    DIR *d = NULL;
    struct dirent *de;
    char **names = NULL, rel[PATH_MAX];
    size_t n = 0, cap = 0;
    int dup_fd, rc = 0;

    if ((dup_fd = dup(dirfd)) < 0 || !(d = fdopendir(dup_fd))) {
        if (dup_fd >= 0)
            close(dup_fd);
        rc = farm_error_set(FARM_EIO, "context %s: cannot list %s: %s", pk->root,
                            prefix[0] ? prefix : ".", strerror(errno));
        goto done;
    }
    /* Sorted walk: readdir order is the file system's, not ours. */
    while ((errno = 0, de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            char **nn = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *nn);
            if (!nn) {
                rc = farm_error_set(FARM_ERROR, "out of memory");
                goto done;
            }
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = farm_error_set(FARM_ERROR, "out of memory");
            goto done;
        }
        n++;
    }
    if (errno) {
        rc = farm_error_set(FARM_EIO, "context %s: reading %s: %s", pk->root,
                            prefix[0] ? prefix : ".", strerror(errno));
        goto done;
    }
    if (n)
        qsort(names, n, sizeof *names, s_cmp_names);

    for (size_t i = 0; i < n; i++) {
        struct stat st;
        int excluded, len;

        len = snprintf(rel, sizeof rel, "%s%s%s", prefix, prefix[0] ? "/" : "", names[i]);
        if (len < 0 || (size_t)len >= sizeof rel) {
            rc = farm_error_set(FARM_EINVALID, "context %s: path too long under %s", pk->root,
                                prefix);
            goto done;
        }
        if (fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
            rc = farm_error_set(FARM_EIO, "context %s: %s: %s", pk->root, rel, strerror(errno));
            goto done;
        }
        if (st.st_dev == pk->out_dev && st.st_ino == pk->out_ino)
            continue; /* the tar being written, when it lives inside the context */
        excluded = farm_dockerignore_match(pk->ignore, rel);
        if (excluded && !(S_ISDIR(st.st_mode) && farm_dockerignore_may_descend(pk->ignore, rel)))
            continue;
        if (!excluded && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
            farm_log_warn("context %s: skipping %s: not a regular file, directory or symlink",
                          pk->root, rel);
            continue;
        }
        if (!excluded && (rc = s_emit_parents(pk)) < 0)
            goto done;
        if (S_ISDIR(st.st_mode)) {
            int sub;
            if (pk->depth == S_WALK_DEPTH_MAX) {
                rc = farm_error_set(FARM_EINVALID, "context %s: %s is nested more than %d "
                                    "directories deep", pk->root, rel, S_WALK_DEPTH_MAX);
                goto done;
            }
            if (!excluded && (rc = s_write_header(pk, rel, &st, NULL)) < 0)
                goto done;
            sub = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                rc = farm_error_set(FARM_EIO, "context %s: cannot enter %s: %s", pk->root, rel,
                                    strerror(errno));
                goto done;
            }
            pk->stack[pk->depth].rel = rel;
            pk->stack[pk->depth].st = st;
            pk->stack[pk->depth].emitted = !excluded;
            pk->depth++;
            rc = s_walk(pk, sub, rel);
            pk->depth--;
            close(sub);
            if (rc < 0)
                goto done;
        } else if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t tl = readlinkat(dirfd, names[i], target, sizeof target - 1);
            if (tl < 0) {
                rc = farm_error_set(FARM_EIO, "context %s: %s: %s", pk->root, rel,
                                    strerror(errno));
                goto done;
            }
            target[tl] = '\0';
            if ((rc = s_write_header(pk, rel, &st, target)) < 0)
                goto done;
        } else if ((rc = s_pack_file(pk, dirfd, names[i], rel, &st)) < 0) {
            goto done;
        }
    }
done:
    if (d)
        closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

int farm_context_pack(char out_digest[FARM_DIGEST_STRLEN], uint64_t *out_size, const char *dir,
                      const char *dockerfile, const char *out_path)
{
    s_packer_t pk = {0};
    s_sink_t sink = {.fd = -1};
    char path[PATH_MAX], *df = NULL;
    struct stat st;
    int rootfd = -1, rc = 0, opened = 0;

    out_digest[0] = '\0';
    if (out_size)
        *out_size = 0;
    pk.root = dir;

    if (!(df = farm_dockerignore_clean(dockerfile && dockerfile[0] ? dockerfile : "Dockerfile"))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    if (df[0] == '/' || !strcmp(df, "..") || !strncmp(df, "../", 3)) {
        rc = farm_error_set(FARM_EINVALID, "Dockerfile %s is outside the context %s; farm sends "
                            "only the context: move it inside", dockerfile, dir);
        goto done;
    }
    rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        rc = farm_error_set(FARM_EIO, "context %s: %s", dir, strerror(errno));
        goto done;
    }
    if ((rc = farm_path_join(path, sizeof path, dir, ".dockerignore")) < 0) {
        rc = farm_error_wrap(rc, "context %s", dir);
        goto done;
    }
    if (!(pk.ignore = farm_dockerignore_load(path))) {
        rc = FARM_EINVALID;
        goto done;
    }
    if ((rc = farm_dockerignore_keep(pk.ignore, ".dockerignore")) < 0 ||
        (rc = farm_dockerignore_keep(pk.ignore, df)) < 0)
        goto done;

    sink.fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (sink.fd < 0 || fstat(sink.fd, &st) < 0) {
        rc = farm_error_set(FARM_EIO, "%s: %s", out_path, strerror(errno));
        goto done;
    }
    opened = 1;
    pk.out_dev = st.st_dev;
    pk.out_ino = st.st_ino;
    if (!(sink.sha = farm_sha256_new()) || !(pk.ar = archive_write_new())) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    /* pax_restricted: plain ustar unless a name or size needs a pax record. */
    if (archive_write_set_format_pax_restricted(pk.ar) != ARCHIVE_OK ||
        archive_write_add_filter_none(pk.ar) != ARCHIVE_OK ||
        archive_write_open2(pk.ar, &sink, NULL, s_sink_write, NULL, NULL) != ARCHIVE_OK) {
        rc = farm_error_set(FARM_EIO, "%s: %s", out_path, archive_error_string(pk.ar));
        goto done;
    }
    if ((rc = s_walk(&pk, rootfd, "")) < 0)
        goto done;
    if (archive_write_close(pk.ar) != ARCHIVE_OK) {
        rc = farm_error_set(FARM_EIO, "%s: %s", out_path, archive_error_string(pk.ar));
        goto done;
    }
    if (fsync(sink.fd) < 0 && errno != EINVAL) {
        rc = farm_error_set(FARM_EIO, "%s: %s", out_path, strerror(errno));
        goto done;
    }
    farm_sha256_final(sink.sha, out_digest);
    if (out_size)
        *out_size = sink.size;
done:
    if (pk.ar)
        archive_write_free(pk.ar);
    if (sink.fd >= 0)
        close(sink.fd);
    if (rc < 0 && opened)
        unlink(out_path); /* never leave a truncated context behind */
    if (rootfd >= 0)
        close(rootfd);
    farm_sha256_destroy(&sink.sha);
    farm_dockerignore_destroy(&pk.ignore);
    free(df);
    return rc;
}

/* ---------------------------------------------------------------------------------
 * Extraction. The tar comes from another machine: every entry is checked before
 * anything is written.
 *
 * Confinement does not rest on a string-prefix test of resolved paths (that kind of
 * check was bypassed in moby's archive code, GHSA-hfg8-hc9c-6c3h). Instead:
 *  - each entry name is checked component by component: relative, no "..";
 *  - dest is resolved once with realpath(), so it has no symlink in it, and the entry
 *    is written at <realdest>/<name>: no chdir, which would be process-wide;
 *  - libarchive's ARCHIVE_EXTRACT_SECURE_SYMLINKS then refuses, at write time, any
 *    entry (or hardlink target) whose path crosses a symlink on disk, and
 *    ARCHIVE_EXTRACT_SECURE_NODOTDOT refuses ".." in the final path.
 *    (ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS cannot be set since the final path is
 *    absolute by construction; s_check_name refuses absolute entry names instead.)
 *  - symlinks may only point inside dest (see s_check_symlink); hardlinks only to a
 *    regular file already extracted inside dest;
 *  - devices, fifos and sockets are refused; owners are not restored; set-id bits are
 *    dropped; entries and bytes are bounded. */

/* Cleans a relative entry name: "./a//b/" -> "a/b". Refuses "", absolute and "..";
 * *why says which. */
static int s_check_name(char *out, size_t len, const char *name, const char **why)
{
    size_t w = 0;
    const char *p = name;

    *why = "is empty";
    if (!name || !name[0])
        return -1;
    *why = "is an absolute path";
    if (name[0] == '/')
        return -1;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t cl = e ? (size_t)(e - p) : strlen(p);
        *why = "contains \"..\"";
        if (cl == 2 && p[0] == '.' && p[1] == '.')
            return -1;
        *why = "is too long";
        if (cl && !(cl == 1 && p[0] == '.')) {
            if (w + cl + 2 > len)
                return -1;
            if (w)
                out[w++] = '/';
            memcpy(out + w, p, cl);
            w += cl;
        }
        p += cl + (e ? 1 : 0);
    }
    out[w] = '\0';
    return 0;
}

/* A symlink's target must stay inside dest: relative, and its ".." components only
 * leading and no more than the link's depth. A ".." after a named component is
 * refused because the kernel resolves it after following that component, which may
 * itself be a symlink (so the lexical result would be wrong). */
static int s_check_symlink(const char *clean_name, const char *target)
{
    int depth = 0, seen_name = 0;
    const char *p = target;

    if (!target[0] || target[0] == '/')
        return -1;
    for (const char *c = clean_name; *c; c++)
        depth += *c == '/';
    while (*p) {
        const char *e = strchr(p, '/');
        size_t cl = e ? (size_t)(e - p) : strlen(p);
        if (cl == 2 && p[0] == '.' && p[1] == '.') {
            if (seen_name || --depth < 0)
                return -1;
        } else if (cl && !(cl == 1 && p[0] == '.')) {
            seen_name = 1;
        }
        p += cl + (e ? 1 : 0);
    }
    return 0;
}

static const char *s_type_name(mode_t t)
{
    switch (t) {
    case AE_IFCHR:
        return "character device";
    case AE_IFBLK:
        return "block device";
    case AE_IFIFO:
        return "fifo";
    case AE_IFSOCK:
        return "socket";
    default:
        return "unknown entry type";
    }
}

static int s_dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int empty = 1;
    if (!d)
        return -1;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            empty = 0;
    closedir(d);
    return empty;
}

int farm_context_extract(const char *tar_path, const char *dest, uint64_t max_bytes,
                         uint64_t max_entries)
{
    struct archive *ar = NULL, *aw = NULL;
    struct archive_entry *e;
    char *root = NULL, clean[PATH_MAX], full[PATH_MAX + 1], link_full[PATH_MAX + 1];
    char name[PATH_MAX] = ""; /* the entry named in errors; libarchive reuses its buffer */
    uint64_t n_entries = 0, total = 0;
    int rc = 0, r;

    if (!(root = realpath(dest, NULL))) {
        rc = farm_error_set(FARM_EIO, "extract context: %s: %s", dest, strerror(errno));
        goto done;
    }
    if (s_dir_empty(root) != 1) {
        rc = farm_error_set(FARM_EINVALID, "extract context: %s is not an empty directory", dest);
        goto done;
    }
    if (!(ar = archive_read_new()) || !(aw = archive_write_disk_new())) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    archive_read_support_format_tar(ar);
    archive_read_support_filter_none(ar);
    archive_write_disk_set_options(aw, ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                           ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                           ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM);
    if (archive_read_open_filename(ar, tar_path, S_IO_CHUNK) != ARCHIVE_OK) {
        rc = farm_error_set(FARM_EIO, "context tar %s: %s", tar_path, archive_error_string(ar));
        goto done;
    }
    for (;;) {
        const char *hl, *sl, *why, *pathname;
        mode_t type;

        r = archive_read_next_header(ar, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            rc = farm_error_set(FARM_EINVALID, "context tar %s: after entry \"%s\": %s", tar_path,
                                name, archive_error_string(ar));
            goto done;
        }
        pathname = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
        /* Checked whole, not as a truncated copy that would name another file. */
        if (snprintf(name, sizeof name, "%s", pathname) >= (int)sizeof name) {
            rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%.200s...\": refused: the "
                                "name is longer than %d bytes", tar_path, pathname, PATH_MAX - 1);
            goto done;
        }
        if (++n_entries > max_entries) {
            rc = farm_error_set(FARM_ETOOBIG, "context tar %s: entry \"%s\": more than %" PRIu64
                                " entries", tar_path, name, max_entries);
            goto done;
        }
        if (s_check_name(clean, sizeof clean, name, &why) < 0) {
            rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": refused: the name %s",
                                tar_path, name, why);
            goto done;
        }
        if (!clean[0])
            continue; /* "./": dest itself */
        type = archive_entry_filetype(e);
        hl = archive_entry_hardlink(e);
        sl = type == AE_IFLNK ? archive_entry_symlink(e) : NULL;
        if (hl) {
            char hclean[PATH_MAX];
            struct stat st;
            if (s_check_name(hclean, sizeof hclean, hl, &why) < 0 || !hclean[0]) {
                rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": hardlink "
                                    "target \"%s\" is outside the context", tar_path, name, hl);
                goto done;
            }
            if (farm_path_join(link_full, sizeof link_full, root, hclean) < 0) {
                rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": hardlink "
                                    "target path too long", tar_path, name);
                goto done;
            }
            /* A hardlink to a symlink would move the symlink to another depth, where
             * its relative target could point outside. */
            if (lstat(link_full, &st) < 0 || !S_ISREG(st.st_mode)) {
                rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": hardlink "
                                    "target \"%s\" is not a regular file extracted before it",
                                    tar_path, name, hl);
                goto done;
            }
            archive_entry_set_hardlink(e, link_full);
        } else if (type == AE_IFLNK) {
            if (!sl || s_check_symlink(clean, sl) < 0) {
                rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": symlink to "
                                    "\"%s\" points outside the context", tar_path, name,
                                    sl ? sl : "");
                goto done;
            }
        } else if (type != AE_IFREG && type != AE_IFDIR) {
            rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": %s not allowed "
                                "(only files, directories and links)", tar_path, name,
                                s_type_name(type));
            goto done;
        }
        if (type == AE_IFREG || hl) {
            int64_t sz = archive_entry_size(e);
            if (sz < 0 || (uint64_t)sz > max_bytes || total + (uint64_t)sz > max_bytes) {
                rc = farm_error_set(FARM_ETOOBIG, "context tar %s: entry \"%s\": contents exceed "
                                    "%" PRIu64 " bytes", tar_path, name, max_bytes);
                goto done;
            }
            total += (uint64_t)sz;
        }
        if (farm_path_join(full, sizeof full, root, clean) < 0) {
            rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": path too long",
                                tar_path, name);
            goto done;
        }
        archive_entry_set_pathname(e, full);
        archive_entry_set_perm(e, archive_entry_perm(e) & ~(mode_t)(S_ISUID | S_ISGID));
        if (archive_write_header(aw, e) < ARCHIVE_WARN) {
            rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": %s", tar_path,
                                name, archive_error_string(aw));
            goto done;
        }
        if (type == AE_IFREG && archive_entry_size(e) > 0) {
            const void *buf;
            size_t len;
            la_int64_t off;
            while ((r = archive_read_data_block(ar, &buf, &len, &off)) == ARCHIVE_OK) {
                if (archive_write_data_block(aw, buf, len, off) < ARCHIVE_WARN) {
                    rc = farm_error_set(FARM_EIO, "context tar %s: entry \"%s\": %s", tar_path,
                                        name, archive_error_string(aw));
                    goto done;
                }
            }
            if (r != ARCHIVE_EOF) {
                rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": %s", tar_path,
                                    name, archive_error_string(ar));
                goto done;
            }
        }
        if (archive_write_finish_entry(aw) < ARCHIVE_WARN) {
            rc = farm_error_set(FARM_EIO, "context tar %s: entry \"%s\": %s", tar_path, name,
                                archive_error_string(aw));
            goto done;
        }
    }
    /* Directory modes and times are applied here, after their contents. */
    if (archive_write_close(aw) != ARCHIVE_OK) {
        rc = farm_error_set(FARM_EIO, "context tar %s: finishing %s: %s", tar_path, dest,
                            archive_error_string(aw));
        goto done;
    }
done:
    if (ar)
        archive_read_free(ar);
    if (aw)
        archive_write_free(aw); /* also closes (and fixes up) after an error */
    free(root);
    return rc;
}
