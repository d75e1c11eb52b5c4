/* SPDX-License-Identifier: Apache-2.0 */
/* .dockerignore matcher: Docker's rules (patternmatcher) line by line, malformed
 * patterns, the file reader's bounds, exceptions for the Dockerfile, and the walk's
 * "must I enter this excluded directory" question. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/dockerignore.h"
#include "common/error.h"
#include "common/fs.h"

static char s_base[64];

static int s_setup(void **state)
{
    memcpy(s_base, "/tmp/farm-test-di-XXXXXX", sizeof "/tmp/farm-test-di-XXXXXX");
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
    assert_int_equal(farm_path_join(b, sizeof buf[0], s_base, rel), 0);
    return b;
}

static void s_write(const char *rel, const void *content, size_t len)
{
    int fd = open(s_path(rel), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
}

static void s_expect(const farm_dockerignore_t *ig, const char *path, int excluded)
{
    if (farm_dockerignore_match(ig, path) != excluded)
        fail_msg("%s: expected %s", path, excluded ? "excluded" : "included");
}

static void test_rules(void **state)
{
    farm_dockerignore_t *ig = farm_dockerignore_parse("\xef\xbb\xbf# comment line\r\n"
                                                      "*.log\r\n"
                                                      "build/\n"
                                                      "!build/keep.txt\n"
                                                      "  **/secret  \n"
                                                      "\n"
                                                      "/abs.txt\n"
                                                      "docs/**/*.md\n"
                                                      "?.tmp\n"
                                                      "[a-c]x\n"
                                                      "vendor/**\n"
                                                      "./x/../cleaned\n"
                                                      "*.md\n"
                                                      "!README.md\n"
                                                      "README.md\n"
                                                      " # not a comment: leading space\n");
    assert_non_null(ig);
    s_expect(ig, "app.log", 1);
    s_expect(ig, "src/app.log", 0); /* "*" never crosses "/" */
    s_expect(ig, "build", 1);
    s_expect(ig, "build/out.o", 1); /* the parent matches */
    s_expect(ig, "build/sub/deep.o", 1);
    s_expect(ig, "build/keep.txt", 0); /* exception, later line wins */
    s_expect(ig, "secret", 1);         /* double-star matches zero directories */
    s_expect(ig, "a/b/secret", 1);
    s_expect(ig, "a/secret/inside", 1);
    s_expect(ig, "a/mysecret", 0);
    s_expect(ig, "abs.txt", 1); /* leading "/" is the context root */
    s_expect(ig, "sub/abs.txt", 0);
    s_expect(ig, "docs/a.md", 1);
    s_expect(ig, "docs/x/y/a.md", 1);
    s_expect(ig, "docs/a.txt", 0);
    s_expect(ig, "a.tmp", 1);
    s_expect(ig, "ab.tmp", 0);
    s_expect(ig, "\xc3\xa9.tmp", 1); /* "?" is one rune, not one byte */
    s_expect(ig, "bx", 1);
    s_expect(ig, "dx", 0);
    s_expect(ig, "vendor/lib/a.c", 1);
    s_expect(ig, "vendor", 0); /* vendor + double-star needs something under vendor */
    s_expect(ig, "cleaned", 1);
    s_expect(ig, "x/cleaned", 0);
    s_expect(ig, "README.md", 1); /* excluded, re-included, excluded again */
    s_expect(ig, "CHANGES.md", 1);
    s_expect(ig, "# comment line", 0);
    s_expect(ig, "# not a comment: leading space", 1);
    s_expect(ig, "Dockerfile", 0);
    s_expect(ig, ".", 0); /* the root itself is never excluded */
    farm_dockerignore_destroy(&ig);
    assert_null(ig);
    farm_dockerignore_destroy(&ig);
    farm_dockerignore_destroy(NULL);
}

static void test_classes_and_escapes(void **state)
{
    farm_dockerignore_t *ig = farm_dockerignore_parse("[^a-c]y\n"
                                                      "[!x]w\n"
                                                      "lit\\*star\n"
                                                      "[\xc3\xa9]z\n");
    assert_non_null(ig);
    s_expect(ig, "dy", 1);
    s_expect(ig, "ay", 0); /* negated class */
    s_expect(ig, "!w", 1); /* Go negates with "^" only: "!" is a member */
    s_expect(ig, "aw", 0);
    s_expect(ig, "lit*star", 1);
    s_expect(ig, "litXstar", 0); /* "\*" is a literal star */
    s_expect(ig, "\xc3\xa9z", 1); /* a class holds runes, not bytes */
    s_expect(ig, "\xc3z", 0);
    farm_dockerignore_destroy(&ig);
}

static void test_bad_patterns(void **state)
{
    farm_dockerignore_t *ig;

    assert_null(ig = farm_dockerignore_parse("ok\n[abc\n"));
    assert_non_null(strstr(farm_error_last(), "line 2"));
    assert_null(ig = farm_dockerignore_parse("!\n"));
    assert_non_null(strstr(farm_error_last(), "\"!\""));
    assert_null(ig = farm_dockerignore_parse("#fine\n\n!   \n"));
    assert_non_null(strstr(farm_error_last(), "line 3"));
    ig = farm_dockerignore_parse(""); /* empty: nothing excluded */
    assert_non_null(ig);
    s_expect(ig, "anything", 0);
    farm_dockerignore_destroy(&ig);
    ig = farm_dockerignore_parse(NULL);
    assert_non_null(ig);
    s_expect(ig, "anything", 0);
    farm_dockerignore_destroy(&ig);
}

static void test_load(void **state)
{
    farm_dockerignore_t *ig;
    char *big;

    ig = farm_dockerignore_load(s_path("does-not-exist"));
    assert_non_null(ig); /* no file: nothing excluded */
    s_expect(ig, "anything", 0);
    farm_dockerignore_destroy(&ig);

    s_write("ok", "*.o\n!keep.o\n", 12);
    assert_non_null(ig = farm_dockerignore_load(s_path("ok")));
    s_expect(ig, "a.o", 1);
    s_expect(ig, "keep.o", 0);
    farm_dockerignore_destroy(&ig);

    /* a NUL byte would silently end the patterns early */
    s_write("nul", "a\0b\n", 4);
    assert_null(farm_dockerignore_load(s_path("nul")));
    assert_non_null(strstr(farm_error_last(), "NUL"));

    /* a malformed pattern is reported with the file's name */
    s_write("bad", "[x\n", 3);
    assert_null(farm_dockerignore_load(s_path("bad")));
    assert_non_null(strstr(farm_error_last(), s_path("bad")));

    /* more than 1 MiB is refused, not read in part */
    assert_non_null(big = malloc((1u << 20) + 2));
    memset(big, 'a', (1u << 20) + 1);
    big[(1u << 20) + 1] = '\n';
    s_write("big", big, (1u << 20) + 2);
    free(big);
    assert_null(farm_dockerignore_load(s_path("big")));
    assert_non_null(strstr(farm_error_last(), "1 MiB"));

    /* a directory is not a .dockerignore */
    assert_null(farm_dockerignore_load(s_base));
}

static void test_keep(void **state)
{
    farm_dockerignore_t *ig = farm_dockerignore_parse("*\n");
    char *longname;

    assert_non_null(ig);
    s_expect(ig, "Dockerfile", 1);
    assert_int_equal(farm_dockerignore_keep(ig, "Dockerfile"), 0);
    s_expect(ig, "Dockerfile", 0);
    s_expect(ig, "other", 1); /* only the kept file comes back */
    /* a name longer than PATH_MAX is kept whole, not cut into another name */
    assert_non_null(longname = malloc(5001));
    memset(longname, 'd', 5000);
    longname[5000] = '\0';
    s_expect(ig, longname, 1);
    assert_int_equal(farm_dockerignore_keep(ig, longname), 0);
    s_expect(ig, longname, 0);
    longname[4999] = 'e';
    s_expect(ig, longname, 1);
    free(longname);
    /* kept as written: a name with blanks at its ends is not trimmed to another one */
    assert_int_equal(farm_dockerignore_keep(ig, " sp "), 0);
    s_expect(ig, " sp ", 0);
    s_expect(ig, "sp", 1);
    farm_dockerignore_destroy(&ig);
}

static void test_may_descend(void **state)
{
    farm_dockerignore_t *ig;

    assert_non_null(ig = farm_dockerignore_parse("build\n"));
    assert_false(farm_dockerignore_may_descend(ig, "build")); /* no exception at all */
    farm_dockerignore_destroy(&ig);

    assert_non_null(ig = farm_dockerignore_parse("build\n!build/keep/x.txt\n"));
    assert_true(farm_dockerignore_may_descend(ig, "build"));
    assert_true(farm_dockerignore_may_descend(ig, "build/keep"));
    assert_false(farm_dockerignore_may_descend(ig, "buildx"));
    assert_false(farm_dockerignore_may_descend(ig, "other"));
    farm_dockerignore_destroy(&ig);

    /* an exception with a wildcard may bring back anything: every directory is entered */
    assert_non_null(ig = farm_dockerignore_parse("*\n!**/*.go\n"));
    assert_true(farm_dockerignore_may_descend(ig, "any/dir"));
    farm_dockerignore_destroy(&ig);
}

static void s_clean_is(const char *in, const char *want)
{
    char *got = farm_dockerignore_clean(in);
    assert_non_null(got);
    if (strcmp(got, want))
        fail_msg("clean(\"%s\") = \"%s\", want \"%s\"", in, got, want);
    free(got);
}

static void test_clean(void **state)
{
    /* Go's filepath.Clean */
    s_clean_is("", ".");
    s_clean_is("./a//b/", "a/b");
    s_clean_is("a/../../b", "../b");
    s_clean_is("/../a", "/a");
    s_clean_is("a/./b/../c", "a/c");
    s_clean_is("..", "..");
    s_clean_is("/", "/");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_classes_and_escapes),
        cmocka_unit_test(test_bad_patterns),
        cmocka_unit_test_setup_teardown(test_load, s_setup, s_teardown),
        cmocka_unit_test(test_keep),
        cmocka_unit_test(test_may_descend),
        cmocka_unit_test(test_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
