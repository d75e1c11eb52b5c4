/* SPDX-License-Identifier: Apache-2.0 */
/* Content-addressed store: round trips, and the attacks it must withstand: planted files,
 * symlinks and FIFOs under an object's or a temp file's name, concurrent uploads of one
 * digest with one corrupt, oversize and short uploads, unsafe directories; sweeping by
 * age and size with in-use objects protected. Each test works in its own mkdtemp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/store.h"

/* getrandom, replaced for this executable so a test can predict the store's next temp
 * name: while s_fake_random is set, the first call returns 0xab bytes and later calls
 * other bytes. Otherwise it is the real system call. */
static int s_fake_random;
static int s_random_calls;

ssize_t getrandom(void *buf, size_t len, unsigned int flags);
ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
    if (s_fake_random) {
        s_random_calls++;
        memset(buf, s_random_calls == 1 ? 0xab : 0x10 + s_random_calls, len);
        return (ssize_t)len;
    }
    return syscall(SYS_getrandom, buf, len, flags);
}

typedef struct {
    char root[64];   /* mkdtemp; removed at teardown */
    char dir[128];   /* root/store: the store's directory */
    char out[128];   /* root/outside: where planted symlinks point */
} fx_t;

static int s_setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->root, "/tmp/farm-test-store-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    assert_int_equal(farm_path_join(f->dir, sizeof f->dir, f->root, "store"), 0);
    assert_int_equal(farm_path_join(f->out, sizeof f->out, f->root, "outside"), 0);
    assert_int_equal(mkdir(f->out, 0700), 0);
    s_fake_random = 0;
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *f = *state;
    farm_fs_rmtree(f->root);
    free(f);
    return 0;
}

static void s_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static size_t s_read_fd(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n < cap && (r = read(fd, buf + n, cap - n)) > 0)
        n += (size_t)r;
    return n;
}

static size_t s_read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t n;
    assert_true(fd >= 0);
    n = s_read_fd(fd, buf, cap);
    close(fd);
    return n;
}

static int s_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int s_count_prefix(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

/* Sets path's mtime (not following a symlink) to secs_ago seconds before now. */
static void s_age(const char *path, long secs_ago)
{
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= secs_ago;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* Uploads data in one piece; digest out. */
static int s_put(farm_store_t *s, const void *data, size_t len, char digest[FARM_DIGEST_STRLEN])
{
    farm_store_upload_t *u;
    int rc;

    farm_digest_buffer(digest, data, len);
    u = farm_store_upload_new(s, digest, len);
    assert_non_null(u);
    if ((rc = farm_store_upload_write(u, data, len)) < 0) {
        farm_store_upload_abort(&u);
        return rc;
    }
    return farm_store_upload_commit(&u);
}

static void s_fill(char *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)((i * 131 + seed * 7919 + (i >> 8)) & 0xff);
}

static void test_round_trip(void **state)
{
    fx_t *f = *state;
    farm_store_t *s = farm_store_new(f->dir);
    static char data[200000], back[200001];
    char digest[FARM_DIGEST_STRLEN], path[256], want[256];
    farm_store_upload_t *u;
    uint64_t size = 0;
    struct stat st;
    int fd;

    assert_non_null(s);
    assert_string_equal(farm_store_dir(s), f->dir);
    /* created missing, private */
    assert_int_equal(lstat(f->dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);

    s_fill(data, sizeof data, 1);
    farm_digest_buffer(digest, data, sizeof data);
    assert_int_equal(farm_store_has(s, digest, &size), 0);
    assert_int_equal(farm_store_open(s, digest, &size), FARM_ENOTFOUND);

    u = farm_store_upload_new(s, digest, sizeof data);
    assert_non_null(u);
    assert_string_equal(farm_store_upload_digest(u), digest);
    assert_int_equal(farm_store_upload_size(u), sizeof data);
    assert_int_equal(farm_store_upload_write(u, data, 1000), 0);
    assert_int_equal(farm_store_upload_write(u, data + 1000, 99000), 0);
    assert_int_equal(farm_store_upload_offset(u), 100000);
    /* nothing is visible under the object's name before commit */
    assert_int_equal(farm_store_has(s, digest, NULL), 0);
    assert_int_equal(s_count_prefix(f->dir, ".tmp-"), 1);
    assert_int_equal(farm_store_upload_write(u, data + 100000, sizeof data - 100000), 0);
    assert_int_equal(farm_store_upload_commit(&u), 0);
    assert_null(u);
    assert_int_equal(s_count_prefix(f->dir, ".tmp-"), 0);

    assert_int_equal(farm_store_has(s, digest, &size), 1);
    assert_int_equal(size, sizeof data);
    fd = farm_store_open(s, digest, &size);
    assert_true(fd >= 0);
    assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
    assert_int_equal(s_read_fd(fd, back, sizeof back), sizeof data);
    assert_memory_equal(back, data, sizeof data);
    close(fd);

    snprintf(want, sizeof want, "%s/%s.tar", f->dir, digest + 7);
    assert_int_equal(farm_store_path(s, path, sizeof path, digest), 0);
    assert_string_equal(path, want);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(farm_store_path(s, path, 20, digest), FARM_ETOOBIG);

    /* a fresh store (a new process) hashes the file and accepts it */
    farm_store_destroy(&s);
    assert_null(s);
    s = farm_store_new(f->dir);
    assert_non_null(s);
    assert_int_equal(farm_store_has(s, digest, &size), 1);

    /* remove */
    farm_store_remove(s, digest);
    assert_false(s_exists(path));
    assert_int_equal(farm_store_has(s, digest, NULL), 0);
    farm_store_destroy(&s);
}

static void test_bad_digests(void **state)
{
    fx_t *f = *state;
    farm_store_t *s = farm_store_new(f->dir);
    char path[256];
    const char *bad[] = {"sha256:../../../../etc/passwd", "md5:0123",
                         "sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
                         "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
                         ""};

    assert_non_null(s);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(farm_store_has(s, bad[i], NULL), FARM_EINVALID);
        assert_int_equal(farm_store_open(s, bad[i], NULL), FARM_EINVALID);
        assert_int_equal(farm_store_path(s, path, sizeof path, bad[i]), FARM_EINVALID);
        assert_null(farm_store_upload_new(s, bad[i], 10));
    }
    assert_int_equal(s_count_prefix(f->dir, ".tmp-"), 0);
    farm_store_destroy(&s);
}

static void test_planted_file(void **state)
{
    fx_t *f = *state;
    farm_store_t *s = farm_store_new(f->dir);
    char data[5000], digest[FARM_DIGEST_STRLEN], path[256], other[256];
    int fd;

    assert_non_null(s);
    s_fill(data, sizeof data, 2);
    farm_digest_buffer(digest, data, sizeof data);
    assert_int_equal(farm_store_path(s, path, sizeof path, digest), 0);

    /* wrong bytes under the digest's name: absent, and removed */
    s_write_file(path, "not the context", 15);
    assert_int_equal(farm_store_has(s, digest, NULL), 0);
    assert_false(s_exists(path));
    s_write_file(path, "not the context", 15);
    assert_int_equal(farm_store_open(s, digest, NULL), FARM_ENOTFOUND);
    assert_false(s_exists(path));

    /* right bytes put there by hand: accepted (they hash to the name) */
    s_write_file(path, data, sizeof data);
    assert_int_equal(farm_store_has(s, digest, NULL), 1);

    /* replaced after verification by another file of the same size: hashed again, refused */
    data[17] ^= 1;
    snprintf(other, sizeof other, "%s/other", f->out);
    s_write_file(other, data, sizeof data);
    assert_int_equal(rename(other, path), 0);
    assert_int_equal(farm_store_has(s, digest, NULL), 0);
    assert_false(s_exists(path));

    /* verified, then grown in place: the size no longer matches, hashed again, refused */
    data[17] ^= 1;
    assert_int_equal(s_put(s, data, sizeof data, digest), 0);
    assert_int_equal(farm_store_has(s, digest, NULL), 1);
    fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
    assert_int_equal(farm_store_has(s, digest, NULL), 0);
    assert_false(s_exists(path));

    /* a FIFO under the name: no hang in open, not an object, removed */
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(20);
    assert_int_equal(farm_store_has(s, digest, NULL), 0);
    alarm(0);
    assert_false(s_exists(path));

    /* a directory under the name: absent, not an error */
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(farm_store_has(s, digest, NULL), 0);
    assert_int_equal(farm_store_open(s, digest, NULL), FARM_ENOTFOUND);
    farm_store_destroy(&s);
}

static void test_planted_symlink(void **state)
{
    fx_t *f = *state;
    farm_store_t *s = farm_store_new(f->dir);
    char data[3000], digest[FARM_DIGEST_STRLEN], path[256], target[256], back[4000];
    struct stat st, before;

    assert_non_null(s);
    s_fill(data, sizeof data, 3);
    farm_digest_buffer(digest, data, sizeof data);
    assert_int_equal(farm_store_path(s, path, sizeof path, digest), 0);
    /* the target even holds the right bytes: following the link would "verify" */
    snprintf(target, sizeof target, "%s/elsewhere", f->out);
    s_write_file(target, data, sizeof data);
    s_age(target, 1000);
    assert_int_equal(stat(target, &before), 0);
    assert_int_equal(symlink(target, path), 0);

    assert_int_equal(farm_store_has(s, digest, NULL), 0);
    assert_int_equal(farm_store_open(s, digest, NULL), FARM_ENOTFOUND);
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_mtime, before.st_mtime);
    assert_int_equal(st.st_size, sizeof data);

    /* planted again, then an upload commits: it replaces the link, not the target */
    if (!s_exists(path))
        assert_int_equal(symlink(target, path), 0);
    data[0] ^= 1; /* the target differs from the upload now */
    s_write_file(target, data, sizeof data);
    s_age(target, 1000);
    assert_int_equal(stat(target, &before), 0);
    data[0] ^= 1;
    assert_int_equal(s_put(s, data, sizeof data, digest), 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(farm_store_has(s, digest, NULL), 1);
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_mtime, before.st_mtime);
    assert_int_equal(st.st_ino, before.st_ino);
    assert_int_equal(s_read_file(target, back, sizeof back), sizeof data);
    assert_int_equal((unsigned char)back[0], (unsigned char)(data[0] ^ 1));
    farm_store_destroy(&s);
}

static void test_planted_temp_symlink(void **state)
{
    fx_t *f = *state;
    farm_store_t *s = farm_store_new(f->dir);
    char data[4096], digest[FARM_DIGEST_STRLEN], tmpname[256] = "", link[512], target[256],
        back[64], path[256];
    farm_store_upload_t *u;
    struct dirent *e;
    struct stat st;
    DIR *d;

    assert_non_null(s);
    s_fill(data, sizeof data, 4);
    farm_digest_buffer(digest, data, sizeof data);
    snprintf(target, sizeof target, "%s/precious", f->out);
    s_write_file(target, "precious", 8);

    /* learn the temp name the store makes from the first random bytes */
    s_fake_random = 1;
    s_random_calls = 0;
    u = farm_store_upload_new(s, digest, sizeof data);
    assert_non_null(u);
    d = opendir(f->dir);
    assert_non_null(d);
    while ((e = readdir(d)))
        if (strncmp(e->d_name, ".tmp-", 5) == 0)
            snprintf(tmpname, sizeof tmpname, "%s", e->d_name);
    closedir(d);
    assert_true(tmpname[0]);
    farm_store_upload_abort(&u);
    assert_null(u);
    assert_int_equal(s_count_prefix(f->dir, ".tmp-"), 0);

    /* plant a symlink under exactly that name; the next upload draws the same bytes */
    snprintf(link, sizeof link, "%s/%s", f->dir, tmpname);
    assert_int_equal(symlink(target, link), 0);
    s_random_calls = 0;
    u = farm_store_upload_new(s, digest, sizeof data);
    assert_non_null(u);
    /* the name was taken: the store drew a new one instead of opening the link */
    assert_int_equal(s_random_calls, 2);
    s_fake_random = 0;
    assert_int_equal(farm_store_upload_write(u, data, sizeof data), 0);
    assert_int_equal(s_read_file(target, back, sizeof back), 8);
    assert_memory_equal(back, "precious", 8);
    assert_int_equal(farm_store_upload_commit(&u), 0);

    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_size, 8);
    assert_int_equal(s_read_file(target, back, sizeof back), 8);
    assert_memory_equal(back, "precious", 8);
    assert_int_equal(farm_store_has(s, digest, NULL), 1);
    assert_int_equal(farm_store_path(s, path, sizeof path, digest), 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    farm_store_destroy(&s);
}

/* Two uploads of one digest, written chunk by chunk in turn; the second carries one
 * flipped byte. good_first: which one commits first. */
static void s_concurrent(fx_t *f, farm_store_t *s, int good_first)
{
    static char good[300000], bad[300000];
    char digest[FARM_DIGEST_STRLEN], got[FARM_DIGEST_STRLEN], path[256];
    farm_store_upload_t *a, *b;
    size_t chunk = 65536;

    s_fill(good, sizeof good, 5);
    memcpy(bad, good, sizeof bad);
    bad[123457] ^= 0x40;
    farm_digest_buffer(digest, good, sizeof good);
    a = farm_store_upload_new(s, digest, sizeof good);
    b = farm_store_upload_new(s, digest, sizeof bad);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(s_count_prefix(f->dir, ".tmp-"), 2);
    for (size_t off = 0; off < sizeof good; off += chunk) {
        size_t n = sizeof good - off < chunk ? sizeof good - off : chunk;
        assert_int_equal(farm_store_upload_write(a, good + off, n), 0);
        assert_int_equal(farm_store_upload_write(b, bad + off, n), 0);
    }
    if (good_first) {
        assert_int_equal(farm_store_upload_commit(&a), 0);
        assert_int_equal(farm_store_upload_commit(&b), FARM_EINVALID);
    } else {
        assert_int_equal(farm_store_upload_commit(&b), FARM_EINVALID);
        assert_int_equal(farm_store_has(s, digest, NULL), 0);
        assert_int_equal(farm_store_upload_commit(&a), 0);
    }
    assert_null(a);
    assert_null(b);
    assert_int_equal(s_count_prefix(f->dir, ".tmp-"), 0);
    assert_int_equal(farm_store_path(s, path, sizeof path, digest), 0);
    assert_int_equal(farm_digest_file(got, NULL, path), 0);
    assert_string_equal(got, digest);
    assert_int_equal(farm_store_has(s, digest, NULL), 1);
    farm_store_remove(s, digest);
}

static void test_concurrent_uploads(void **state)
{
    fx_t *f = *state;
    farm_store_t *s = farm_store_new(f->dir);
    char data[10000], digest[FARM_DIGEST_STRLEN], path[256];
    farm_store_upload_t *a, *b;
    struct stat st1, st2;

    assert_non_null(s);
    s_concurrent(f, s, 0);
    s_concurrent(f, s, 1);

    /* two good uploads: the second finds a verified object and discards its own file */
    s_fill(data, sizeof data, 6);
    farm_digest_buffer(digest, data, sizeof data);
    a = farm_store_upload_new(s, digest, sizeof data);
    b = farm_store_upload_new(s, digest, sizeof data);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(farm_store_upload_write(a, data, sizeof data), 0);
    assert_int_equal(farm_store_upload_write(b, data, sizeof data), 0);
    assert_int_equal(farm_store_upload_commit(&a), 0);
    assert_int_equal(farm_store_path(s, path, sizeof path, digest), 0);
    assert_int_equal(lstat(path, &st1), 0);
    assert_int_equal(farm_store_upload_commit(&b), 0);
    assert_int_equal(lstat(path, &st2), 0);
    assert_int_equal(st1.st_ino, st2.st_ino);
    assert_int_equal(s_count_prefix(f->dir, ".tmp-"), 0);

    /* the object was corrupted meanwhile: a new upload replaces it */
    s_write_file(path, "junk", 4);
    assert_int_equal(s_put(s, data, sizeof data, digest), 0);
    farm_store_destroy(&s);
    s = farm_store_new(f->dir);
    assert_non_null(s);
    assert_int_equal(farm_store_has(s, digest, NULL), 1);
    farm_store_destroy(&s);
}

static void test_short_and_oversize(void **state)
{
    fx_t *f = *state;
    farm_store_t *s = farm_store_new(f->dir);
    char data[1000], digest[FARM_DIGEST_STRLEN], empty[FARM_DIGEST_STRLEN],
        prefix[FARM_DIGEST_STRLEN];
    farm_store_upload_t *u;

    assert_non_null(s);
    s_fill(data, sizeof data, 7);
    farm_digest_buffer(digest, data, sizeof data);

    /* short: commit refuses, nothing stays behind */
    u = farm_store_upload_new(s, digest, sizeof data);
    assert_non_null(u);
    assert_int_equal(farm_store_upload_write(u, data, 500), 0);
    assert_int_equal(farm_store_upload_commit(&u), FARM_EINVALID);
    assert_null(u);
    assert_int_equal(farm_store_has(s, digest, NULL), 0);
    assert_int_equal(s_count_prefix(f->dir, ".tmp-"), 0);

    /* short, though the bytes so far are exactly what the digest names: still refused */
    farm_digest_buffer(prefix, data, 500);
    u = farm_store_upload_new(s, prefix, sizeof data);
    assert_non_null(u);
    assert_int_equal(farm_store_upload_write(u, data, 500), 0);
    assert_int_equal(farm_store_upload_commit(&u), FARM_EINVALID);
    assert_int_equal(farm_store_has(s, prefix, NULL), 0);

    /* past the size: the chunk is refused whole, the upload stays usable */
    u = farm_store_upload_new(s, digest, sizeof data);
    assert_non_null(u);
    assert_int_equal(farm_store_upload_write(u, data, 900), 0);
    assert_int_equal(farm_store_upload_write(u, data + 900, 101), FARM_EINVALID);
    assert_int_equal(farm_store_upload_offset(u), 900);
    assert_int_equal(farm_store_upload_write(u, data + 900, 100), 0);
    assert_int_equal(farm_store_upload_write(u, "x", 1), FARM_EINVALID);
    assert_int_equal(farm_store_upload_commit(&u), 0);
    assert_int_equal(farm_store_has(s, digest, NULL), 1);
    farm_store_remove(s, digest);

    /* size unknown (0) until set: nothing is accepted before */
    u = farm_store_upload_new(s, digest, 0);
    assert_non_null(u);
    assert_int_equal(farm_store_upload_write(u, data, 1), FARM_EINVALID);
    farm_store_upload_set_size(u, sizeof data);
    assert_int_equal(farm_store_upload_size(u), sizeof data);
    assert_int_equal(farm_store_upload_write(u, data, sizeof data), 0);
    assert_int_equal(farm_store_upload_commit(&u), 0);
    assert_int_equal(farm_store_has(s, digest, NULL), 1);
    farm_store_remove(s, digest);

    /* a known size cannot be changed afterwards */
    u = farm_store_upload_new(s, digest, sizeof data);
    assert_non_null(u);
    farm_store_upload_set_size(u, sizeof data + 100);
    assert_int_equal(farm_store_upload_write(u, data, sizeof data), FARM_EINVALID);
    assert_int_equal(farm_store_upload_commit(&u), FARM_EINVALID);
    assert_int_equal(farm_store_has(s, digest, NULL), 0);

    /* more than a context may hold */
    assert_null(farm_store_upload_new(s, digest, FARM_CONTEXT_MAX + 1));
    u = farm_store_upload_new(s, digest, 0);
    assert_non_null(u);
    farm_store_upload_set_size(u, FARM_CONTEXT_MAX + 1);
    assert_int_equal(farm_store_upload_write(u, data, 1), FARM_EINVALID);
    farm_store_upload_abort(&u);
    assert_null(u);

    /* the wrong bytes of the right length */
    u = farm_store_upload_new(s, digest, sizeof data);
    assert_non_null(u);
    data[999] ^= 1;
    assert_int_equal(farm_store_upload_write(u, data, sizeof data), 0);
    assert_int_equal(farm_store_upload_commit(&u), FARM_EINVALID);
    assert_int_equal(farm_store_has(s, digest, NULL), 0);

    /* an empty object is an object */
    farm_digest_buffer(empty, "", 0);
    u = farm_store_upload_new(s, empty, 0);
    assert_non_null(u);
    assert_int_equal(farm_store_upload_commit(&u), 0);
    assert_int_equal(farm_store_has(s, empty, NULL), 1);
    assert_int_equal(s_count_prefix(f->dir, ".tmp-"), 0);
    farm_store_destroy(&s);
}

static int s_in_use(void *arg, const char *digest)
{
    const char *const *busy = arg;
    for (; *busy; busy++)
        if (strcmp(*busy, digest) == 0)
            return 1;
    return 0;
}

/* Four 1000-byte objects, aged 400, 300, 200 and 100 s. */
static void s_four(farm_store_t *s, char d[4][FARM_DIGEST_STRLEN], char p[4][256])
{
    char data[1000];
    for (int i = 0; i < 4; i++) {
        s_fill(data, sizeof data, 100 + (unsigned)i);
        assert_int_equal(s_put(s, data, sizeof data, d[i]), 0);
        assert_int_equal(farm_store_path(s, p[i], 256, d[i]), 0);
        s_age(p[i], 400 - 100 * i);
    }
}

static void test_sweep_ttl(void **state)
{
    fx_t *f = *state;
    farm_store_t *s = farm_store_new(f->dir);
    char d[4][FARM_DIGEST_STRLEN], p[4][256];
    const char *busy[] = {NULL, NULL};

    assert_non_null(s);
    s_four(s, d, p);
    /* no limits: nothing goes */
    assert_int_equal(farm_store_sweep(s, 0, 0, NULL, NULL), 0);
    for (int i = 0; i < 4; i++)
        assert_true(s_exists(p[i]));
    /* older than 250 s: the first two, except the one in use */
    busy[0] = d[0];
    assert_int_equal(farm_store_sweep(s, 250000, 0, s_in_use, busy), 1);
    assert_true(s_exists(p[0]));
    assert_false(s_exists(p[1]));
    assert_true(s_exists(p[2]));
    assert_true(s_exists(p[3]));
    assert_int_equal(farm_store_has(s, d[1], NULL), 0);
    /* no longer in use: it goes too */
    assert_int_equal(farm_store_sweep(s, 250000, 0, NULL, NULL), 1);
    assert_false(s_exists(p[0]));
    /* a touched object is young again */
    farm_store_touch(s, d[2]);
    assert_int_equal(farm_store_sweep(s, 50000, 0, NULL, NULL), 1);
    assert_true(s_exists(p[2]));
    assert_false(s_exists(p[3]));
    assert_int_equal(farm_store_has(s, d[2], NULL), 1);
    farm_store_destroy(&s);
}

static void test_sweep_size(void **state)
{
    fx_t *f = *state;
    farm_store_t *s = farm_store_new(f->dir);
    char d[4][FARM_DIGEST_STRLEN], p[4][256];
    const char *busy[] = {NULL, NULL};
    struct stat st;

    assert_non_null(s);
    s_four(s, d, p);
    /* the oldest (0) was used just now: LRU then takes 1 and 2 to get to 2500 bytes */
    farm_store_touch(s, d[0]);
    assert_int_equal(lstat(p[0], &st), 0);
    assert_true(time(NULL) - st.st_mtime < 60);
    assert_int_equal(farm_store_sweep(s, 0, 2500, NULL, NULL), 2);
    assert_true(s_exists(p[0]));
    assert_false(s_exists(p[1]));
    assert_false(s_exists(p[2]));
    assert_true(s_exists(p[3]));
    /* already under the limit: nothing */
    assert_int_equal(farm_store_sweep(s, 0, 2000, NULL, NULL), 0);
    /* the older (3) is in use: the newer (0) goes instead */
    busy[0] = d[3];
    assert_int_equal(farm_store_sweep(s, 0, 1000, s_in_use, busy), 1);
    assert_false(s_exists(p[0]));
    assert_true(s_exists(p[3]));
    /* over the limit but in use: kept */
    assert_int_equal(farm_store_sweep(s, 0, 1, s_in_use, busy), 0);
    assert_true(s_exists(p[3]));
    assert_int_equal(farm_store_has(s, d[3], NULL), 1);
    farm_store_destroy(&s);
}

static void test_sweep_ignores_strangers(void **state)
{
    fx_t *f = *state;
    farm_store_t *s = farm_store_new(f->dir);
    char path[256], target[256], dirobj[256], upper[256], hex[65];
    struct stat st, before;

    assert_non_null(s);
    memset(hex, 'a', 64);
    hex[64] = '\0';
    snprintf(target, sizeof target, "%s/big", f->out);
    s_write_file(target, "0123456789", 10);
    s_age(target, 5000);
    assert_int_equal(stat(target, &before), 0);
    snprintf(path, sizeof path, "%s/%s.tar", f->dir, hex);
    assert_int_equal(symlink(target, path), 0);
    s_age(path, 5000);
    hex[0] = 'b';
    snprintf(dirobj, sizeof dirobj, "%s/%s.tar", f->dir, hex);
    assert_int_equal(mkdir(dirobj, 0700), 0);
    s_age(dirobj, 5000);
    hex[0] = 'C';
    snprintf(upper, sizeof upper, "%s/%s.tar", f->dir, hex);
    s_write_file(upper, "x", 1);
    s_age(upper, 5000);

    assert_int_equal(farm_store_sweep(s, 1000, 1, NULL, NULL), 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_true(s_exists(dirobj));
    assert_true(s_exists(upper));
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_size, 10);
    assert_int_equal(st.st_mtime, before.st_mtime);
    farm_store_destroy(&s);
}

static void test_new_refuses_unsafe_dirs(void **state)
{
    fx_t *f = *state;
    char dir[256], file[256], link[256];

    /* group- and other-writable */
    snprintf(dir, sizeof dir, "%s/gw", f->root);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(chmod(dir, 0770), 0);
    assert_null(farm_store_new(dir));
    assert_non_null(strstr(farm_error_last(), dir));
    assert_non_null(strstr(farm_error_last(), "chmod go-w"));
    assert_int_equal(chmod(dir, 0702), 0);
    assert_null(farm_store_new(dir));
    assert_non_null(strstr(farm_error_last(), "writable by group or others"));
    /* fixed: accepted */
    assert_int_equal(chmod(dir, 0755), 0);
    farm_store_t *s = farm_store_new(dir);
    assert_non_null(s);
    farm_store_destroy(&s);

    /* a symlink to a good directory */
    snprintf(link, sizeof link, "%s/link", f->root);
    assert_int_equal(symlink(dir, link), 0);
    assert_null(farm_store_new(link));
    assert_non_null(strstr(farm_error_last(), "symlink"));

    /* not a directory */
    snprintf(file, sizeof file, "%s/file", f->root);
    s_write_file(file, "x", 1);
    assert_null(farm_store_new(file));
    assert_non_null(strstr(farm_error_last(), "not a directory"));

    /* owned by someone else: needs root to arrange; not root is a failure, not a skip */
    if (geteuid() != 0)
        fail_msg("test_new_refuses_unsafe_dirs must run as root (it chowns a directory to uid 1)");
    snprintf(dir, sizeof dir, "%s/theirs", f->root);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(chown(dir, 1, 1), 0);
    assert_null(farm_store_new(dir));
    assert_non_null(strstr(farm_error_last(), dir));
    assert_non_null(strstr(farm_error_last(), "owned by uid 1"));

    /* missing with missing parents: created 0700 */
    snprintf(dir, sizeof dir, "%s/a/b/c", f->root);
    s = farm_store_new(dir);
    assert_non_null(s);
    struct stat st;
    assert_int_equal(lstat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    farm_store_destroy(&s);
}

static void test_one_store_per_dir(void **state)
{
    fx_t *f = *state;
    farm_store_t *a = farm_store_new(f->dir), *b;

    assert_non_null(a);
    b = farm_store_new(f->dir);
    assert_null(b);
    assert_non_null(strstr(farm_error_last(), "in use"));
    farm_store_destroy(&a);
    b = farm_store_new(f->dir);
    assert_non_null(b);
    farm_store_destroy(&b);
}

static void test_leftover_temps_removed(void **state)
{
    fx_t *f = *state;
    char data[100], digest[FARM_DIGEST_STRLEN], path[256], tmp[256], link[256], keep[256],
        target[256], back[16];
    farm_store_t *s = farm_store_new(f->dir);

    assert_non_null(s);
    s_fill(data, sizeof data, 9);
    assert_int_equal(s_put(s, data, sizeof data, digest), 0);
    assert_int_equal(farm_store_path(s, path, sizeof path, digest), 0);
    farm_store_destroy(&s);

    snprintf(tmp, sizeof tmp, "%s/.tmp-0123456789abcdef", f->dir);
    s_write_file(tmp, "half an upload", 14);
    snprintf(target, sizeof target, "%s/target", f->out);
    s_write_file(target, "keep me", 7);
    snprintf(link, sizeof link, "%s/.tmp-link", f->dir);
    assert_int_equal(symlink(target, link), 0);
    snprintf(keep, sizeof keep, "%s/notes.txt", f->dir);
    s_write_file(keep, "x", 1);

    s = farm_store_new(f->dir);
    assert_non_null(s);
    assert_false(s_exists(tmp));
    assert_false(s_exists(link));
    assert_int_equal(s_count_prefix(f->dir, ".tmp-"), 0);
    assert_int_equal(s_read_file(target, back, sizeof back), 7);
    assert_memory_equal(back, "keep me", 7);
    assert_true(s_exists(keep));
    assert_true(s_exists(path));
    assert_int_equal(farm_store_has(s, digest, NULL), 1);
    farm_store_destroy(&s);
}

/* Many objects: the verified table grows and deletes without losing entries. A verified
 * file is not read again while its (dev, ino, size) stay the same; an in-place edit that
 * keeps all three shows whether has() answered from the table or hashed the file. */
static void test_many_objects(void **state)
{
    fx_t *f = *state;
    farm_store_t *s = farm_store_new(f->dir);
    static char d[300][FARM_DIGEST_STRLEN];
    char data[64], path[256];
    int fd;

    farm_log_set_level(FARM_LOG_ERROR); /* hundreds of removals */
    assert_non_null(s);
    for (int i = 0; i < 300; i++) {
        snprintf(data, sizeof data, "object %d", i);
        assert_int_equal(s_put(s, data, strlen(data), d[i]), 0);
    }
    for (int i = 0; i < 300; i += 3)
        farm_store_remove(s, d[i]);
    for (int i = 1; i < 300; i += 3) {
        assert_int_equal(farm_store_path(s, path, sizeof path, d[i]), 0);
        fd = open(path, O_WRONLY);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, "O", 1, 0), 1);
        close(fd);
    }
    for (int i = 0; i < 300; i++)
        assert_int_equal(farm_store_has(s, d[i], NULL), i % 3 ? 1 : 0);
    /* a new process hashes again: the edited ones are refused and removed */
    farm_store_destroy(&s);
    s = farm_store_new(f->dir);
    assert_non_null(s);
    for (int i = 0; i < 300; i++)
        assert_int_equal(farm_store_has(s, d[i], NULL), i % 3 == 2 ? 1 : 0);
    /* hashed once in this process, then remembered */
    assert_int_equal(farm_store_path(s, path, sizeof path, d[2]), 0);
    fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "O", 1, 0), 1);
    close(fd);
    assert_int_equal(farm_store_has(s, d[2], NULL), 1);
    for (int i = 1; i < 300; i += 3) {
        snprintf(data, sizeof data, "object %d", i);
        assert_int_equal(s_put(s, data, strlen(data), d[i]), 0);
    }
    assert_int_equal(farm_store_sweep(s, 0, 1, NULL, NULL), 200);
    for (int i = 0; i < 300; i++)
        assert_int_equal(farm_store_has(s, d[i], NULL), 0);
    farm_store_destroy(&s);
    farm_log_set_level(FARM_LOG_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_digests, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_planted_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_planted_symlink, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_planted_temp_symlink, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_uploads, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_short_and_oversize, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sweep_ttl, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sweep_size, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sweep_ignores_strangers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_new_refuses_unsafe_dirs, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_one_store_per_dir, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_leftover_temps_removed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_many_objects, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
