/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's context cache (agent/cache.h): the credit window of chunk requests, a
 * fetch stored and verified by digest, duplicates ignored, bytes that do not hash to the
 * digest refused, a sender's error ending the fetch, stalled fetches asked again, and
 * eviction that spares contexts in use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/cache.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/wire.h"

static char s_dir[256];
static uint64_t s_req[64];
static size_t s_nreq;

static void s_request(void *arg, const char *digest, uint64_t offset)
{
    (void)arg;
    (void)digest;
    if (s_nreq < 64)
        s_req[s_nreq] = offset;
    s_nreq++;
}

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/farm-test-cache.%d", (int)getpid());
    farm_fs_rmtree(s_dir);
    s_nreq = 0;
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    farm_fs_rmtree(s_dir);
    return 0;
}

static unsigned char *s_data(size_t len, char digest[FARM_DIGEST_STRLEN])
{
    unsigned char *d = malloc(len);
    assert_non_null(d);
    for (size_t i = 0; i < len; i++)
        d[i] = (unsigned char)(i * 7 + len);
    farm_digest_buffer(digest, d, len);
    return d;
}

static farm_cache_status_t s_chunk(farm_cache_t *c, const char *digest, const unsigned char *d,
                                   uint64_t total, uint64_t off)
{
    uint64_t len = total - off < FARM_WIRE_CHUNK ? total - off : FARM_WIRE_CHUNK;
    farm_cache_chunk_t ch = {.digest = digest, .offset = off, .total = total,
                             .data = d + off, .len = (size_t)len};
    return farm_cache_on_chunk(c, &ch, 0);
}

/* 20 MiB with a known size: 8 chunk requests in flight at once, then one more per chunk
 * received; the object is stored, present, and its path is the store's. */
static void test_window_and_store(void **state)
{
    size_t total = 20u << 20;
    char digest[FARM_DIGEST_STRLEN], path[4096];
    unsigned char *d = s_data(total, digest);
    farm_cache_t *c = farm_cache_new(s_dir, 0, s_request, NULL);
    struct stat st;
    (void)state;

    assert_non_null(c);
    assert_int_equal(farm_cache_has(c, digest), 0);
    assert_int_equal(farm_cache_fetch(c, digest, total, 0), 0);
    assert_int_equal(s_nreq, FARM_WIRE_WINDOW / FARM_WIRE_CHUNK);
    for (size_t i = 0; i < s_nreq; i++)
        assert_true(s_req[i] == i * FARM_WIRE_CHUNK);
    assert_int_equal(farm_cache_fetch(c, digest, total, 0), 0); /* already fetching */
    assert_int_equal(s_nreq, 8);
    assert_int_equal(farm_cache_fetching(c), 1);
    for (uint64_t off = 0; off < total; off += FARM_WIRE_CHUNK) {
        farm_cache_status_t st_ = s_chunk(c, digest, d, total, off);
        assert_int_equal(st_, off + FARM_WIRE_CHUNK >= total ? FARM_CACHE_STORED : FARM_CACHE_PENDING);
        /* a duplicate of what already arrived changes nothing */
        if (off + FARM_WIRE_CHUNK < total)
            assert_int_equal(s_chunk(c, digest, d, total, off), FARM_CACHE_IGNORED);
    }
    assert_int_equal(s_nreq, 20); /* every chunk asked for exactly once */
    assert_int_equal(farm_cache_fetching(c), 0);
    assert_int_equal(farm_cache_has(c, digest), 1);
    assert_int_equal(farm_cache_path(c, path, sizeof path, digest), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true((size_t)st.st_size == total);
    assert_ptr_equal(strstr(path, s_dir), path);
    farm_cache_destroy(&c);
    assert_null(c);
    free(d);
}

/* Unknown size: one request until the first chunk tells it. */
static void test_unknown_size(void **state)
{
    size_t total = 3u << 20;
    char digest[FARM_DIGEST_STRLEN];
    unsigned char *d = s_data(total, digest);
    farm_cache_t *c = farm_cache_new(s_dir, 0, s_request, NULL);
    (void)state;

    assert_int_equal(farm_cache_fetch(c, digest, 0, 0), 0);
    assert_int_equal(s_nreq, 1);
    assert_int_equal(s_chunk(c, digest, d, total, 0), FARM_CACHE_PENDING);
    assert_int_equal(s_nreq, 3);
    assert_int_equal(s_chunk(c, digest, d, total, 1u << 20), FARM_CACHE_PENDING);
    assert_int_equal(s_chunk(c, digest, d, total, 2u << 20), FARM_CACHE_STORED);
    farm_cache_destroy(&c);
    free(d);
}

static void test_wrong_bytes_refused(void **state)
{
    size_t total = 1000;
    char digest[FARM_DIGEST_STRLEN];
    unsigned char *d = s_data(total, digest);
    farm_cache_t *c = farm_cache_new(s_dir, 0, s_request, NULL);
    (void)state;

    assert_int_equal(farm_cache_fetch(c, digest, total, 0), 0);
    d[10] ^= 1;
    assert_int_equal(s_chunk(c, digest, d, total, 0), FARM_CACHE_FAILED);
    assert_non_null(strstr(farm_error_last(), digest + 7));
    assert_int_equal(farm_cache_has(c, digest), 0);
    assert_int_equal(farm_cache_fetching(c), 0);
    farm_cache_destroy(&c);
    free(d);
}

static void test_sender_error_and_bad_chunks(void **state)
{
    size_t total = 1000;
    char digest[FARM_DIGEST_STRLEN];
    unsigned char *d = s_data(total, digest);
    farm_cache_t *c = farm_cache_new(s_dir, 0, s_request, NULL);
    farm_cache_chunk_t err = {.digest = digest, .error = "context not found"};
    farm_cache_chunk_t big = {.digest = digest, .total = 500, .data = d, .len = 600};
    (void)state;

    assert_int_equal(farm_cache_fetch(c, digest, total, 0), 0);
    assert_int_equal(farm_cache_on_chunk(c, &err, 0), FARM_CACHE_FAILED);
    assert_non_null(strstr(farm_error_last(), "context not found"));
    assert_int_equal(farm_cache_on_chunk(c, &err, 0), FARM_CACHE_IGNORED); /* not ours now */
    assert_int_equal(farm_cache_fetch(c, digest, total, 0), 0);
    assert_int_equal(farm_cache_on_chunk(c, &big, 0), FARM_CACHE_FAILED); /* more than total */
    assert_true(farm_cache_fetch(c, "sha256:xyz", 1, 0) < 0);
    farm_cache_destroy(&c);
    free(d);
}

static void test_retry_stalled(void **state)
{
    size_t total = 2u << 20;
    char digest[FARM_DIGEST_STRLEN];
    unsigned char *d = s_data(total, digest);
    farm_cache_t *c = farm_cache_new(s_dir, 0, s_request, NULL);
    (void)state;

    assert_int_equal(farm_cache_fetch(c, digest, total, 0), 0);
    assert_int_equal(s_nreq, 2);
    farm_cache_retry(c, 5000, 10000);
    assert_int_equal(s_nreq, 2);
    farm_cache_retry(c, 10001, 10000); /* nothing for 10 s: ask again from offset 0 */
    assert_int_equal(s_nreq, 4);
    assert_true(s_req[2] == 0);
    farm_cache_abort_all(c);
    assert_int_equal(farm_cache_fetching(c), 0);
    farm_cache_destroy(&c);
    free(d);
}

static int s_in_use(void *arg, const char *digest)
{
    return strcmp(arg, digest) == 0;
}

static void test_trim_spares_in_use(void **state)
{
    char da[FARM_DIGEST_STRLEN], db[FARM_DIGEST_STRLEN], dc[FARM_DIGEST_STRLEN];
    unsigned char *a = s_data(3000, da), *b = s_data(3001, db), *cc = s_data(3002, dc);
    farm_cache_t *c = farm_cache_new(s_dir, 4000, s_request, NULL);
    (void)state;

    assert_int_equal(farm_cache_fetch(c, da, 3000, 0), 0);
    assert_int_equal(s_chunk(c, da, a, 3000, 0), FARM_CACHE_STORED);
    assert_int_equal(farm_cache_fetch(c, db, 3001, 0), 0);
    assert_int_equal(s_chunk(c, db, b, 3001, 0), FARM_CACHE_STORED);
    assert_int_equal(farm_cache_fetch(c, dc, 3002, 0), 0);
    assert_int_equal(s_chunk(c, dc, cc, 3002, 0), FARM_CACHE_STORED);
    /* a is needed by a job: b and c go (the bound holds one) */
    assert_int_equal(farm_cache_trim(c, s_in_use, da), 2);
    assert_int_equal(farm_cache_has(c, da), 1);
    assert_int_equal(farm_cache_has(c, db), 0);
    assert_int_equal(farm_cache_has(c, dc), 0);
    farm_cache_destroy(&c);
    free(a);
    free(b);
    free(cc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_window_and_store, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_size, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_bytes_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sender_error_and_bad_chunks, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_retry_stalled, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_trim_spares_in_use, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
