/* SPDX-License-Identifier: Apache-2.0 */
/* common/digest: sha256 of buffers, streams and files; digest string validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/error.h"

#define EMPTY_SHA "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC_SHA "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void test_buffer_known_vectors(void **state)
{
    char d[FARM_DIGEST_STRLEN];
    farm_digest_buffer(d, "", 0);
    assert_string_equal(d, EMPTY_SHA);
    farm_digest_buffer(d, NULL, 0);
    assert_string_equal(d, EMPTY_SHA);
    farm_digest_buffer(d, "abc", 3);
    assert_string_equal(d, ABC_SHA);
    /* NUL bytes are content, not terminators */
    {
        char d2[FARM_DIGEST_STRLEN];
        farm_digest_buffer(d2, "abc\0", 4);
        assert_string_not_equal(d, d2);
    }
}

static void test_stream_matches_buffer(void **state)
{
    char a[FARM_DIGEST_STRLEN], b[FARM_DIGEST_STRLEN];
    const char *msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    farm_sha256_t *h = farm_sha256_new();
    assert_non_null(h);
    for (size_t i = 0; msg[i]; i++)
        farm_sha256_update(h, msg + i, 1);
    farm_sha256_update(h, "x", 0);
    farm_sha256_final(h, a);
    farm_sha256_destroy(&h);
    assert_null(h);
    farm_sha256_destroy(&h); /* NULL-safe */
    farm_digest_buffer(b, msg, strlen(msg));
    assert_string_equal(a, b);
    assert_string_equal(a, "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_file(void **state)
{
    char path[] = "/tmp/farm-test-digest-XXXXXX";
    char d[FARM_DIGEST_STRLEN], want[FARM_DIGEST_STRLEN];
    uint64_t size = 0;
    size_t n = 3 * 65536 + 17; /* crosses the read buffer several times */
    unsigned char *buf = malloc(n);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 31 + 7);
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
    close(fd);
    farm_digest_buffer(want, buf, n);
    assert_int_equal(farm_digest_file(d, &size, path), 0);
    assert_string_equal(d, want);
    assert_int_equal(size, n);
    assert_int_equal(farm_digest_file(d, NULL, path), 0);
    assert_string_equal(d, want);
    unlink(path);
    free(buf);

    assert_int_equal(farm_digest_file(d, &size, "/nonexistent/farm/file"), FARM_ENOTFOUND);
    assert_non_null(strstr(farm_error_last(), "/nonexistent/farm/file"));
}

static void test_empty_file(void **state)
{
    char path[] = "/tmp/farm-test-digest-XXXXXX";
    char d[FARM_DIGEST_STRLEN];
    uint64_t size = 99;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(farm_digest_file(d, &size, path), 0);
    assert_string_equal(d, EMPTY_SHA);
    assert_int_equal(size, 0);
    unlink(path);
}

static void test_valid(void **state)
{
    assert_true(farm_digest_valid(EMPTY_SHA));
    assert_true(farm_digest_valid(ABC_SHA));
    assert_false(farm_digest_valid(NULL));
    assert_false(farm_digest_valid(""));
    assert_false(farm_digest_valid("sha256:"));
    assert_false(farm_digest_valid(EMPTY_SHA "0"));            /* too long */
    assert_false(farm_digest_valid(EMPTY_SHA + 1));            /* no "s" */
    assert_false(farm_digest_valid("sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    assert_false(farm_digest_valid("sha256:E3B0C44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    assert_false(farm_digest_valid("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85"));
    assert_false(farm_digest_valid("sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buffer_known_vectors), cmocka_unit_test(test_stream_matches_buffer),
        cmocka_unit_test(test_file),                 cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
