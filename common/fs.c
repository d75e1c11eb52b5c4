/* SPDX-License-Identifier: Apache-2.0 */
#include "common/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/limits.h"

int farm_fs_mkdirs(const char *path)
{
    char tmp[FARM_PATH_MAX];
    int rc;

    if ((rc = farm_path_join(tmp, sizeof tmp, path, NULL)) < 0)
        return rc;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return farm_error_set(FARM_EIO, "cannot create %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return farm_error_set(FARM_EIO, "cannot create %s: %s", tmp, strerror(errno));
    return 0;
}

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void farm_fs_rmtree(const char *path)
{
    nftw(path, s_rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

int farm_path_fmt(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len) {
        /* name the path by its (cut) beginning, then leave nothing usable behind */
        farm_error_set(FARM_ETOOBIG, "path too long (%d bytes, at most %zu): %.100s...", n,
                       len ? len - 1 : 0, len ? out : "");
        if (len)
            out[0] = '\0';
        return FARM_ETOOBIG;
    }
    return 0;
}

int farm_path_join(char *out, size_t len, const char *a, const char *b)
{
    size_t la = strlen(a);
    int n;

    if (!b || !*b)
        n = snprintf(out, len, "%s", a);
    else if (la && a[la - 1] == '/')
        n = snprintf(out, len, "%s%s", a, b);
    else
        n = snprintf(out, len, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= len) {
        if (len)
            out[0] = '\0';
        return farm_error_set(FARM_ETOOBIG, "path too long (%d bytes, at most %zu): %.100s/%.60s",
                              n, len ? len - 1 : 0, a, b ? b : "");
    }
    return 0;
}

int farm_fs_read_file(char **out, size_t *out_len, const char *path, size_t max)
{
    struct stat st;
    char *text = NULL;
    size_t got = 0;
    int fd, rc = 0;

    *out = NULL;
    *out_len = 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) < 0)
        return errno == ENOENT ? farm_error_set(FARM_ENOTFOUND, "%s: no such file", path)
                               : farm_error_set(FARM_EIO, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
        rc = farm_error_set(FARM_EINVALID, "%s: not a regular file of at most %zu bytes", path,
                            max);
        goto done;
    }
    if (!(text = malloc((size_t)st.st_size + 1))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got != (size_t)st.st_size) {
        rc = farm_error_set(FARM_EIO, "%s: short read (%zu of %lld bytes)", path, got,
                            (long long)st.st_size);
        goto done;
    }
    text[got] = '\0';
    *out = text;
    *out_len = got;
    text = NULL;
done:
    free(text);
    close(fd);
    return rc;
}

int farm_fs_write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[FARM_PATH_MAX], dir[FARM_PATH_MAX];
    const char *p = data;
    size_t done = 0;
    int fd, dfd, rc = 0;

    if (farm_path_fmt(tmp, sizeof tmp, "%s.new-XXXXXX", path) < 0 ||
        farm_path_fmt(dir, sizeof dir, "%s", path) < 0)
        return farm_error_set(FARM_ETOOBIG, "%s: path too long", path);
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) /* 0600, O_EXCL */
        return farm_error_set(FARM_EIO, "cannot create %s: %s", tmp, strerror(errno));
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = farm_error_set(FARM_EIO, "cannot write %s: %s", tmp,
                                n < 0 ? strerror(errno) : "no progress");
            break;
        }
        done += (size_t)n;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = farm_error_set(FARM_EIO, "cannot sync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = farm_error_set(FARM_EIO, "cannot write %s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = farm_error_set(FARM_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    /* the rename itself is durable once the directory is */
    if (strrchr(dir, '/'))
        *(strrchr(dir, '/') == dir ? dir + 1 : strrchr(dir, '/')) = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int farm_fs_check_owned(const char *what, const char *dir, const struct stat *st)
{
    uid_t me = geteuid();

    if (S_ISLNK(st->st_mode))
        return farm_error_set(FARM_EINVALID,
                              "%s %s is a symlink; configure the real directory "
                              "instead (owned by uid %u, mode 0700)", what, dir, (unsigned)me);
    if (!S_ISDIR(st->st_mode))
        return farm_error_set(FARM_EINVALID,
                              "%s %s exists but is not a directory; remove it or "
                              "choose another directory", what, dir);
    if (st->st_uid != me)
        return farm_error_set(FARM_EINVALID,
                              "%s %s is owned by uid %u, not by this user (uid %u); "
                              "run: chown %u %s (or choose another directory)", what, dir,
                              (unsigned)st->st_uid, (unsigned)me, (unsigned)me, dir);
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return farm_error_set(FARM_EINVALID,
                              "%s %s is writable by group or others (mode %04o); "
                              "run: chmod go-w %s", what, dir, (unsigned)(st->st_mode & 07777), dir);
    return 0;
}

int farm_fs_remove_atomic_temps(const char *path)
{
    char dir[FARM_PATH_MAX], prefix[FARM_PATH_MAX];
    const char *base = strrchr(path, '/');
    struct dirent *e;
    int n = 0;
    DIR *d;

    if (farm_path_fmt(dir, sizeof dir, "%.*s", base ? (int)(base - path) : 1,
                      base ? path : ".") < 0 ||
        farm_path_fmt(prefix, sizeof prefix, "%s.new-", base ? base + 1 : path) < 0 ||
        !(d = opendir(dir[0] ? dir : "/")))
        return 0;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 &&
            unlinkat(dirfd(d), e->d_name, 0) == 0)
            n++;
    closedir(d);
    return n;
}
