/* SPDX-License-Identifier: Apache-2.0 */
/* Build contexts: deterministic packing honouring .dockerignore (the exact entry list is
 * checked by reading the tar back; the matcher's own rules are in test_dockerignore.c),
 * and extraction that refuses every way out of dest a hostile tar can try, naming the
 * entry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/context.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"

#define MTIME 1764324000 /* 2025-11-28T10:00:00Z */

static char s_base[256];

static int s_setup(void **state)
{
    snprintf(s_base, sizeof s_base, "/tmp/farm-test-ctx-XXXXXX");
    assert_non_null(mkdtemp(s_base));
    return 0;
}

static int s_teardown(void **state)
{
    farm_fs_rmtree(s_base);
    return 0;
}

static const char *s_path(const char *rel)
{
    static char buf[4][1024];
    static int n;
    char *b = buf[n++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", s_base, rel);
    return b;
}

static void s_file(const char *rel, const char *content, mode_t mode)
{
    const char *p = s_path(rel);
    struct timespec ts[2] = {{MTIME, 0}, {MTIME, 0}};
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(futimens(fd, ts), 0);
    close(fd);
}

static void s_dir(const char *rel)
{
    assert_int_equal(mkdir(s_path(rel), 0755), 0);
}

static char *s_read(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "rb");
    size_t n;
    if (!f)
        return NULL;
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---- packing ---- */

typedef struct {
    char name[256];
    mode_t type;
    char link[256];
    int64_t size;
    int64_t uid, gid;
    int has_uname;
    time_t mtime;
} seen_t;

static size_t s_list_tar(const char *tar, seen_t *out, size_t max)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    size_t n = 0;
    archive_read_support_format_tar(a);
    assert_int_equal(archive_read_open_filename(a, tar, 10240), ARCHIVE_OK);
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        assert_true(n < max);
        seen_t *s = &out[n++];
        snprintf(s->name, sizeof s->name, "%s", archive_entry_pathname(e));
        size_t l = strlen(s->name);
        if (l > 1 && s->name[l - 1] == '/')
            s->name[l - 1] = '\0';
        s->type = archive_entry_filetype(e);
        snprintf(s->link, sizeof s->link, "%s",
                 archive_entry_symlink(e) ? archive_entry_symlink(e) : "");
        s->size = archive_entry_size(e);
        s->uid = archive_entry_uid(e);
        s->gid = archive_entry_gid(e);
        s->has_uname = (archive_entry_uname(e) && archive_entry_uname(e)[0]) ||
                      (archive_entry_gname(e) && archive_entry_gname(e)[0]);
        s->mtime = archive_entry_mtime(e);
    }
    archive_read_free(a);
    return n;
}

/* A tree with logs, build output, secrets, a symlink, a fifo and an empty dir. */
static void s_make_tree(void)
{
    s_dir("ctx");
    s_file("ctx/.dockerignore", "# logs are local\n*.log\nbuild/\n!build/keep.txt\n**/secret\n"
                                "# these are sent anyway\nDockerfile\n.dockerignore\n",
           0644);
    s_file("ctx/Dockerfile", "FROM scratch\nCOPY . /\n", 0644);
    s_file("ctx/app.log", "log\n", 0644);
    s_dir("ctx/src");
    s_file("ctx/src/main.c", "int main(void) { return 0; }\n", 0640);
    s_file("ctx/src/debug.log", "kept: *.log is top-level only\n", 0644);
    s_file("ctx/src/secret", "s3cr3t\n", 0600);
    s_dir("ctx/src/deep");
    s_dir("ctx/src/deep/secret");
    s_file("ctx/src/deep/secret/key", "k\n", 0600);
    s_file("ctx/secret", "s3cr3t\n", 0600);
    s_dir("ctx/build");
    s_file("ctx/build/out.o", "obj\n", 0644);
    s_file("ctx/build/keep.txt", "keep me\n", 0644);
    s_dir("ctx/build/sub");
    s_file("ctx/build/sub/other", "x\n", 0644);
    s_dir("ctx/emptydir");
    assert_int_equal(symlink("src/main.c", s_path("ctx/link")), 0);
    assert_int_equal(mkfifo(s_path("ctx/fifo"), 0644), 0); /* skipped with a warning */
    s_file("ctx/run.sh", "#!/bin/sh\n", 0755);
}

static void test_pack_entries(void **state)
{
    char digest[FARM_DIGEST_STRLEN], fdigest[FARM_DIGEST_STRLEN];
    uint64_t size = 0, fsize = 0;
    seen_t seen[64];
    size_t n;
    static const struct {
        const char *name;
        mode_t type;
    } want[] = {
        {".dockerignore", AE_IFREG}, {"Dockerfile", AE_IFREG},  {"build", AE_IFDIR},
        {"build/keep.txt", AE_IFREG}, {"emptydir", AE_IFDIR},   {"link", AE_IFLNK},
        {"run.sh", AE_IFREG},        {"src", AE_IFDIR},         {"src/debug.log", AE_IFREG},
        {"src/deep", AE_IFDIR},      {"src/main.c", AE_IFREG},
    };

    s_make_tree();
    assert_int_equal(farm_context_pack(digest, &size, s_path("ctx"), NULL, s_path("ctx.tar")), 0);
    assert_true(farm_digest_valid(digest));
    assert_int_equal(farm_digest_file(fdigest, &fsize, s_path("ctx.tar")), 0);
    assert_string_equal(digest, fdigest);
    assert_int_equal(size, fsize);

    n = s_list_tar(s_path("ctx.tar"), seen, 64);
    for (size_t i = 0; i < n && i < sizeof want / sizeof *want; i++) {
        if (strcmp(seen[i].name, want[i].name) || seen[i].type != want[i].type)
            fail_msg("entry %zu: got %s (type %o), want %s (type %o)", i, seen[i].name,
                     seen[i].type, want[i].name, want[i].type);
    }
    assert_int_equal(n, sizeof want / sizeof *want);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(seen[i].uid, 0);
        assert_int_equal(seen[i].gid, 0);
        assert_false(seen[i].has_uname);
        if (!strcmp(seen[i].name, "link"))
            assert_string_equal(seen[i].link, "src/main.c");
        if (!strcmp(seen[i].name, "src/main.c")) {
            assert_int_equal(seen[i].size, strlen("int main(void) { return 0; }\n"));
            assert_int_equal(seen[i].mtime, MTIME); /* kept: COPY preserves it */
        }
    }
}

static void test_pack_deterministic(void **state)
{
    char d1[FARM_DIGEST_STRLEN], d2[FARM_DIGEST_STRLEN], d3[FARM_DIGEST_STRLEN];
    uint64_t s1, s2;
    struct timespec ts[2] = {{MTIME + 60, 0}, {MTIME + 60, 0}};

    s_make_tree();
    assert_int_equal(farm_context_pack(d1, &s1, s_path("ctx"), "Dockerfile", s_path("a.tar")), 0);
    /* written inside the context itself: the tar being written is not packed into itself */
    assert_int_equal(farm_context_pack(d2, &s2, s_path("ctx"), NULL, s_path("ctx/b.tar")), 0);
    assert_string_equal(d1, d2);
    assert_int_equal(s1, s2);
    /* an mtime is content: changing one changes the digest */
    assert_int_equal(utimensat(AT_FDCWD, s_path("ctx/src/main.c"), ts, 0), 0);
    assert_int_equal(farm_context_pack(d3, NULL, s_path("ctx"), NULL, s_path("c.tar")), 0);
    assert_string_not_equal(d1, d3);
}

static void test_pack_custom_dockerfile(void **state)
{
    char d[FARM_DIGEST_STRLEN];
    seen_t seen[16];
    size_t n;

    s_dir("ctx");
    s_dir("ctx/docker");
    s_file("ctx/docker/app.Dockerfile", "FROM scratch\n", 0644);
    s_file("ctx/docker/notes", "n\n", 0644);
    s_file("ctx/.dockerignore", "docker\n", 0644);
    assert_int_equal(
        farm_context_pack(d, NULL, s_path("ctx"), "./docker/app.Dockerfile", s_path("x.tar")), 0);
    n = s_list_tar(s_path("x.tar"), seen, 16);
    assert_int_equal(n, 3);
    assert_string_equal(seen[0].name, ".dockerignore");
    assert_string_equal(seen[1].name, "docker");
    assert_string_equal(seen[2].name, "docker/app.Dockerfile");

    assert_true(farm_context_pack(d, NULL, s_path("ctx"), "../Dockerfile", s_path("y.tar")) < 0);
    assert_non_null(strstr(farm_error_last(), "outside the context"));
    assert_int_equal(access(s_path("y.tar"), F_OK), -1);
}

static void test_extract_roundtrip(void **state)
{
    char d[FARM_DIGEST_STRLEN], buf[256];
    struct stat st;
    ssize_t n;

    s_make_tree();
    assert_int_equal(farm_context_pack(d, NULL, s_path("ctx"), NULL, s_path("ctx.tar")), 0);
    s_dir("dest");
    /* dest given through a symlink: still extracted, into the real directory */
    assert_int_equal(symlink(s_path("dest"), s_path("dest-link")), 0);
    assert_int_equal(farm_context_extract(s_path("ctx.tar"), s_path("dest-link"), 1 << 20, 100),
                     0);
    assert_string_equal(s_read(s_path("dest/src/main.c")), "int main(void) { return 0; }\n");
    assert_string_equal(s_read(s_path("dest/build/keep.txt")), "keep me\n");
    assert_null(s_read(s_path("dest/app.log")));
    assert_null(s_read(s_path("dest/src/secret")));
    assert_int_equal(stat(s_path("dest/src/main.c"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(st.st_mtime, MTIME);
    assert_int_equal(stat(s_path("dest/run.sh"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    n = readlink(s_path("dest/link"), buf, sizeof buf - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "src/main.c");
    /* dest must be empty */
    assert_true(farm_context_extract(s_path("ctx.tar"), s_path("dest"), 1 << 20, 100) < 0);
    assert_non_null(strstr(farm_error_last(), "not an empty directory"));
}

/* Long, non-ASCII and non-UTF-8 names survive pack + extract byte for byte. */
static void test_odd_names(void **state)
{
    char d[FARM_DIGEST_STRLEN], d2[FARM_DIGEST_STRLEN], longname[200], rel[300];
    const char *names[] = {"\xc3\xa9-\xc3\xbc.txt", "bad\xffname", longname};

    memset(longname, 'n', 150);
    longname[150] = '\0';
    s_dir("ctx");
    for (size_t i = 0; i < 3; i++) {
        snprintf(rel, sizeof rel, "ctx/%s", names[i]);
        s_file(rel, names[i], 0644);
    }
    assert_int_equal(farm_context_pack(d, NULL, s_path("ctx"), NULL, s_path("o.tar")), 0);
    assert_int_equal(farm_context_pack(d2, NULL, s_path("ctx"), NULL, s_path("o2.tar")), 0);
    assert_string_equal(d, d2);
    s_dir("dest");
    assert_int_equal(farm_context_extract(s_path("o.tar"), s_path("dest"), 1 << 20, 100), 0);
    for (size_t i = 0; i < 3; i++) {
        snprintf(rel, sizeof rel, "dest/%s", names[i]);
        char *got = s_read(s_path(rel));
        if (!got || strcmp(got, names[i]))
            fail_msg("%s did not survive the round trip", names[i]);
    }
}

/* ---- hostile tars ---- */

typedef struct {
    const char *name;
    char type; /* f file, d dir, l symlink, h hardlink, c char device, p fifo */
    const char *arg; /* content or link target */
} ent_t;

static void s_tar(const char *path, const ent_t *ents, size_t n)
{
    struct archive *a = archive_write_new();
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        size_t len = 0;
        archive_entry_set_pathname(e, ents[i].name);
        archive_entry_set_mtime(e, MTIME, 0);
        switch (ents[i].type) {
        case 'f':
            len = strlen(ents[i].arg);
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 06755); /* set-id bits must be dropped */
            archive_entry_set_size(e, (la_int64_t)len);
            break;
        case 'd':
            archive_entry_set_filetype(e, AE_IFDIR);
            archive_entry_set_perm(e, 0755);
            break;
        case 'l':
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_perm(e, 0777);
            archive_entry_set_symlink(e, ents[i].arg);
            break;
        case 'h':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 0644);
            archive_entry_set_hardlink(e, ents[i].arg);
            archive_entry_set_size(e, 0);
            break;
        case 'c':
            archive_entry_set_filetype(e, AE_IFCHR);
            archive_entry_set_perm(e, 0666);
            archive_entry_set_rdev(e, makedev(1, 3));
            break;
        case 'p':
            archive_entry_set_filetype(e, AE_IFIFO);
            archive_entry_set_perm(e, 0644);
            break;
        }
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (len)
            assert_int_equal(archive_write_data(a, ents[i].arg, len), (la_ssize_t)len);
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

/* Victim outside dest that a hostile tar tries to reach. */
static void s_outside(void)
{
    s_dir("outside");
    s_file("outside/victim", "original\n", 0644);
}

static void s_assert_outside_intact(void)
{
    DIR *d;
    struct dirent *de;
    assert_string_equal(s_read(s_path("outside/victim")), "original\n");
    d = opendir(s_path("outside"));
    assert_non_null(d);
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "victim"))
            fail_msg("something was written outside dest: outside/%s", de->d_name);
    closedir(d);
    /* next to dest, in the test's base dir: only what the test made */
    d = opendir(s_base);
    assert_non_null(d);
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "outside") &&
            strcmp(de->d_name, "dest") && strcmp(de->d_name, "t.tar"))
            fail_msg("something was written outside dest: %s", de->d_name);
    closedir(d);
}

/* Extraction of ents into a fresh dest must fail naming `entry`. */
static void s_refused(const ent_t *ents, size_t n, const char *entry, uint64_t max_bytes,
                      uint64_t max_entries)
{
    char want[300];
    s_tar(s_path("t.tar"), ents, n);
    s_dir("dest");
    farm_error_clear();
    assert_true(farm_context_extract(s_path("t.tar"), s_path("dest"), max_bytes, max_entries) < 0);
    snprintf(want, sizeof want, "entry \"%s\"", entry);
    if (!strstr(farm_error_last(), want))
        fail_msg("error \"%s\" does not name %s", farm_error_last(), want);
    if (getenv("FARM_TEST_VERBOSE"))
        print_message("refused: %s\n", farm_error_last());
    s_assert_outside_intact();
    farm_fs_rmtree(s_path("dest"));
    unlink(s_path("t.tar"));
}

#define REFUSED(entry, ...)                                                                   \
    do {                                                                                       \
        const ent_t e_[] = {__VA_ARGS__};                                                      \
        s_refused(e_, sizeof e_ / sizeof *e_, entry, 1 << 20, 100);                            \
    } while (0)

static void test_extract_hostile(void **state)
{
    char abs_victim[512], abs_new[512];

    s_outside();
    snprintf(abs_victim, sizeof abs_victim, "%s", s_path("outside/victim"));
    snprintf(abs_new, sizeof abs_new, "%s", s_path("outside/new"));

    REFUSED("../evil", {"ok", 'f', "fine\n"}, {"../evil", 'f', "x\n"});
    REFUSED("a/../../evil", {"a", 'd', NULL}, {"a/../../evil", 'f', "x\n"});
    REFUSED(abs_new, {abs_new, 'f', "x\n"});
    REFUSED("/abs/", {"/abs", 'd', NULL}); /* the tar writer adds the "/" of a directory */
    /* absolute symlink, then a file through it */
    REFUSED("l", {"l", 'l', s_path("outside")}, {"l/victim", 'f', "pwned\n"});
    REFUSED("l", {"l", 'l', "/etc"}, {"l/farm-test-must-not-exist", 'f', "pwned\n"});
    assert_int_equal(access("/etc/farm-test-must-not-exist", F_OK), -1);
    /* relative symlink climbing out, then a file through it */
    REFUSED("up", {"up", 'l', "../outside"}, {"up/victim", 'f', "pwned\n"});
    REFUSED("a/up", {"a", 'd', NULL}, {"a/up", 'l', "../../outside"}, {"a/up/victim", 'f', "p"});
    /* ".." after a name: resolved after following a possible symlink */
    REFUSED("a/x", {"a", 'd', NULL}, {"a/b", 'd', NULL}, {"a/x", 'l', "b/../../.."});
    /* a symlink inside dest is fine, writing through it is not */
    REFUSED("l/file", {"sub", 'd', NULL}, {"l", 'l', "sub"}, {"l/file", 'f', "x\n"});
    /* devices and fifos */
    REFUSED("dev/null2", {"dev", 'd', NULL}, {"dev/null2", 'c', NULL});
    REFUSED("pipe", {"pipe", 'p', NULL});
    /* hardlinks out of dest, or to a symlink that would change depth */
    REFUSED("h", {"h", 'h', abs_victim});
    REFUSED("h", {"h", 'h', "/etc/passwd"});
    REFUSED("h", {"h", 'h', "../outside/victim"});
    REFUSED("h", {"f", 'f', "x\n"}, {"d", 'd', NULL}, {"d/s", 'l', "../f"}, {"h", 'h', "d/s"});
    REFUSED("h", {"h", 'h', "missing"});

    /* bounds */
    {
        const ent_t many[] = {{"1", 'f', "a"}, {"2", 'f', "b"}, {"3", 'f', "c"}, {"4", 'f', "d"},
                              {"5", 'f', "e"}};
        s_refused(many, 5, "4", 1 << 20, 3);
    }
    {
        char big[61];
        memset(big, 'x', 60);
        big[60] = '\0';
        const ent_t two[] = {{"one", 'f', big}, {"two", 'f', big}};
        s_refused(two, 2, "two", 100, 100);
    }
}

/* A name longer than PATH_MAX is refused whole, not extracted under a truncated copy. */
static void test_extract_long_name(void **state)
{
    static char name[5000];
    ent_t ent = {name, 'f', "x\n"};

    for (size_t i = 0; i + 2 < sizeof name; i += 2)
        memcpy(name + i, "d/", 2);
    name[sizeof name - 2] = 'f';
    s_tar(s_path("t.tar"), &ent, 1);
    s_dir("dest");
    assert_int_equal(farm_context_extract(s_path("t.tar"), s_path("dest"), 1 << 20, 100),
                     FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "entry \"d/d/d/"));
    assert_non_null(strstr(farm_error_last(), "name is longer than"));
    assert_int_equal(rmdir(s_path("dest")), 0); /* nothing was written */
}

static void test_extract_links_inside(void **state)
{
    const ent_t ents[] = {
        {"./", 'd', NULL},     {"./f", 'f', "data\n"}, {"d", 'd', NULL},
        {"d/s", 'l', "../f"},  {"d/e", 'l', "./x/y"},  {"hl", 'h', "f"},
        {"d/deep/", 'd', NULL}, {"d/deep/up", 'l', "../../f"},
    };
    struct stat a, b;

    s_tar(s_path("t.tar"), ents, sizeof ents / sizeof *ents);
    s_dir("dest");
    assert_int_equal(farm_context_extract(s_path("t.tar"), s_path("dest"), 1 << 20, 100), 0);
    assert_string_equal(s_read(s_path("dest/d/s")), "data\n");
    assert_string_equal(s_read(s_path("dest/d/deep/up")), "data\n");
    assert_int_equal(stat(s_path("dest/f"), &a), 0);
    assert_int_equal(stat(s_path("dest/hl"), &b), 0);
    assert_int_equal(a.st_ino, b.st_ino);
    assert_int_equal(a.st_mode & 07777, 0755); /* 06755 without the set-id bits */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pack_entries, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_pack_deterministic, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_pack_custom_dockerfile, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_extract_roundtrip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_odd_names, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_extract_hostile, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_extract_long_name, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_extract_links_inside, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
