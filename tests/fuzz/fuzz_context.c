/* SPDX-License-Identifier: Apache-2.0 */
/* Context extraction (common/context.h): the tar comes from another machine. Each input
 * is written as a tar in a private temp dir and extracted into a fresh subdirectory with
 * small limits. After each run nothing outside that subdirectory may have changed (a
 * sentinel file next to the work dir is checked), no symlink inside may resolve outside
 * it, and no device, fifo or set-id file may exist. Then both are removed.
 *
 *   $TMPDIR/farm-fuzz-ctx.XXXXXX/sentinel     must stay as written
 *   $TMPDIR/farm-fuzz-ctx.XXXXXX/work/in.tar  the input
 *   $TMPDIR/farm-fuzz-ctx.XXXXXX/work/out/    extraction target */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/context.h"
#include "common/error.h"

#define S_MAX_BYTES (1u << 20)
#define S_MAX_ENTRIES 64
#define S_SENTINEL "farm fuzz sentinel: extraction must never reach this file\n"

static char s_base[PATH_MAX], s_work[PATH_MAX], s_tar[PATH_MAX], s_out[PATH_MAX];
static char s_sentinel[PATH_MAX];
static struct stat s_sentinel_st;

static void s_cleanup_base(void)
{
    unlink(s_sentinel);
    rmdir(s_work);
    rmdir(s_base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    int fd;

    fuzz_quiet();
    snprintf(s_base, sizeof s_base, "%s/farm-fuzz-ctx.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(s_base) != NULL, "mkdtemp %s: %s", s_base, strerror(errno));
    snprintf(s_work, sizeof s_work, "%s/work", s_base);
    snprintf(s_tar, sizeof s_tar, "%s/in.tar", s_work);
    snprintf(s_out, sizeof s_out, "%s/out", s_work);
    snprintf(s_sentinel, sizeof s_sentinel, "%s/sentinel", s_base);
    FUZZ_CHECK(mkdir(s_work, 0700) == 0, "mkdir %s: %s", s_work, strerror(errno));
    fd = open(s_sentinel, O_WRONLY | O_CREAT | O_EXCL, 0600);
    FUZZ_CHECK(fd >= 0 && write(fd, S_SENTINEL, strlen(S_SENTINEL)) == (ssize_t)strlen(S_SENTINEL),
               "cannot write %s", s_sentinel);
    close(fd);
    FUZZ_CHECK(lstat(s_sentinel, &s_sentinel_st) == 0, "lstat %s", s_sentinel);
    atexit(s_cleanup_base);
    return 0;
}

/* Removes what extraction made, whatever its modes: directories are opened 0700 first
 * (a tar may hand them mode 000), symlinks are never followed. */
static void s_rmtree_at(int dirfd, const char *name)
{
    struct stat st;
    DIR *d;
    struct dirent *de;
    int fd;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        FUZZ_CHECK(unlinkat(dirfd, name, 0) == 0, "cannot remove %s: %s", name, strerror(errno));
        return;
    }
    fchmodat(dirfd, name, 0700, 0);
    fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    FUZZ_CHECK(fd >= 0 && (d = fdopendir(fd)) != NULL, "cannot open %s: %s", name, strerror(errno));
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            s_rmtree_at(fd, de->d_name);
    closedir(d);
    FUZZ_CHECK(unlinkat(dirfd, name, AT_REMOVEDIR) == 0, "cannot remove %s: %s", name,
               strerror(errno));
}

/* Everything extraction made must lie under root (the resolved out dir). */
static void s_audit(const char *root, const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *de;

    FUZZ_CHECK(lstat(path, &st) == 0, "lstat %s: %s", path, strerror(errno));
    FUZZ_CHECK(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode),
               "%s has file type %o", path, (unsigned)(st.st_mode & S_IFMT));
    FUZZ_CHECK(!(st.st_mode & (S_ISUID | S_ISGID)) || S_ISDIR(st.st_mode),
               "%s kept a set-id bit (mode %o)", path, (unsigned)st.st_mode);
    if (S_ISLNK(st.st_mode)) {
        char *real = realpath(path, NULL);
        size_t n = strlen(root);
        /* A dangling link is harmless here; a resolvable one must stay inside. */
        if (real)
            FUZZ_CHECK(!strncmp(real, root, n) && (real[n] == '\0' || real[n] == '/'),
                       "symlink %s resolves to %s, outside %s", path, real, root);
        free(real);
        return;
    }
    if (!S_ISDIR(st.st_mode))
        return;
    chmod(path, 0700);
    FUZZ_CHECK((d = opendir(path)) != NULL, "opendir %s: %s", path, strerror(errno));
    while ((de = readdir(d))) {
        char sub[PATH_MAX];
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (snprintf(sub, sizeof sub, "%s/%s", path, de->d_name) >= (int)sizeof sub)
            continue; /* too deep to name; removal still reaches it by fd */
        s_audit(root, sub);
    }
    closedir(d);
}

/* Exactly the names given, nothing else, in dir. */
static void s_only(const char *dir, const char *a, const char *b)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    FUZZ_CHECK(d != NULL, "opendir %s: %s", dir, strerror(errno));
    while ((de = readdir(d)))
        FUZZ_CHECK(!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
                       !strcmp(de->d_name, a) || (b && !strcmp(de->d_name, b)),
                   "extraction created %s/%s outside its directory", dir, de->d_name);
    closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[sizeof S_SENTINEL], *root;
    struct stat st;
    int fd, rc;
    ssize_t n;

    fd = open(s_tar, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0 && write(fd, data, size) == (ssize_t)size, "cannot write %s", s_tar);
    close(fd);
    FUZZ_CHECK(mkdir(s_out, 0700) == 0, "mkdir %s: %s", s_out, strerror(errno));

    rc = farm_context_extract(s_tar, s_out, S_MAX_BYTES, S_MAX_ENTRIES);
    FUZZ_CHECK(rc == 0 || farm_error_last()[0], "failed (%d) without a message", rc);
    if (getenv("FARM_FUZZ_VERBOSE")) /* to see what each seed does: -runs=0 */
        fprintf(stderr, "extract: %s\n", rc == 0 ? "ok" : farm_error_last());

    /* Nothing outside out/ changed: the sentinel, and the names in base and work. */
    FUZZ_CHECK(lstat(s_sentinel, &st) == 0 && S_ISREG(st.st_mode) &&
                   st.st_ino == s_sentinel_st.st_ino && st.st_size == s_sentinel_st.st_size &&
                   st.st_mode == s_sentinel_st.st_mode &&
                   st.st_mtim.tv_sec == s_sentinel_st.st_mtim.tv_sec &&
                   st.st_mtim.tv_nsec == s_sentinel_st.st_mtim.tv_nsec,
               "the sentinel %s was replaced or touched", s_sentinel);
    fd = open(s_sentinel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
    FUZZ_CHECK(n == (ssize_t)strlen(S_SENTINEL) && !memcmp(buf, S_SENTINEL, (size_t)n),
               "the sentinel %s was rewritten", s_sentinel);
    close(fd);
    s_only(s_base, "sentinel", "work");
    s_only(s_work, "in.tar", "out");
    FUZZ_CHECK(lstat(s_out, &st) == 0 && S_ISDIR(st.st_mode), "%s is no longer a directory",
               s_out);

    root = realpath(s_out, NULL);
    FUZZ_CHECK(root != NULL, "realpath %s: %s", s_out, strerror(errno));
    s_audit(root, root);
    free(root);

    s_rmtree_at(AT_FDCWD, s_out);
    FUZZ_CHECK(unlink(s_tar) == 0, "unlink %s: %s", s_tar, strerror(errno));
    return 0;
}
