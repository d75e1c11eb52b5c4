/* SPDX-License-Identifier: Apache-2.0 */
/* Contexts are served only to clients that uploaded their bytes: a digest is printed and
 * logged, so knowing it proves nothing. Another client's offer is answered as if the
 * context were absent (no oracle), does not refresh its age, and is taken as an upload;
 * who uploaded what outlives a restart and is forgotten with the context. An offer the
 * quota cannot hold is refused naming coordinator.context_quota and what to do.
 * Concurrent submits of one context by one client share one upload: none replaces
 * another, and an upload that is gone is answered "offer again" (retry), not a failure. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "coordinator/ctxstore.h"

#define ALICE "6Nv).=U@Q.6g:P{e@rvS=3&7za+7XZf<D{CbgErO"
#define BOB "S.5KNl4+5+pc=yvcWB=ePs//lK-Zm+pVc&)VGZQ4"
#define CAROL "0:2!mJo:y#t7mTNro92/<IFW^FS7R44fE-Ob!766"

static char s_dir[] = "/tmp/farm-test-ctxstore.XXXXXX";
static char s_store[sizeof s_dir + 16];
static const char s_bytes[] = "alice's sources: a tar of her build context";
static char s_digest[FARM_DIGEST_STRLEN];

static int s_setup(void **state)
{
    (void)state;
    memcpy(s_dir + sizeof s_dir - 7, "XXXXXX", 6); /* a fresh directory per test */
    if (!mkdtemp(s_dir))
        return -1;
    snprintf(s_store, sizeof s_store, "%s/contexts", s_dir);
    farm_digest_buffer(s_digest, s_bytes, sizeof s_bytes - 1);
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    farm_fs_rmtree(s_dir);
    return 0;
}

static farm_ctxstore_t *s_new(void)
{
    farm_ctxstore_t *cs = farm_ctxstore_new(s_store, 0, 0, 0, NULL, NULL);
    assert_non_null(cs);
    return cs;
}

/* owner offers and, unless told "have", sends the bytes: the final status */
static farm_ctx_status_t s_send(farm_ctxstore_t *cs, const char *rid, const char *owner,
                                const void *bytes, size_t len)
{
    farm_ctx_status_t st;
    farm_ctxstore_offer(cs, &st, rid, strlen(rid), owner, s_digest, len, 1000);
    assert_string_equal(st.error, "");
    if (st.have)
        return st;
    assert_int_equal(st.offset, 0);
    farm_ctxstore_chunk(cs, &st, rid, strlen(rid), owner, s_digest, 0, bytes, len, 1001);
    return st;
}

static time_t s_mtime(void)
{
    char hex_path[512];
    struct stat st;
    snprintf(hex_path, sizeof hex_path, "%s/%s.tar", s_store, s_digest + strlen("sha256:"));
    assert_int_equal(stat(hex_path, &st), 0);
    return st.st_mtime;
}

static void s_age(void)
{
    char hex_path[512];
    struct timeval old[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    snprintf(hex_path, sizeof hex_path, "%s/%s.tar", s_store, s_digest + strlen("sha256:"));
    assert_int_equal(utimes(hex_path, old), 0);
}

static void test_only_uploaders_are_served(void **state)
{
    farm_ctxstore_t *cs = s_new();
    farm_ctx_status_t st;
    uint64_t size = 0;
    char forged[sizeof s_bytes];
    (void)state;

    st = s_send(cs, "alice-conn", ALICE, s_bytes, sizeof s_bytes - 1);
    assert_true(st.have);
    assert_true(farm_ctxstore_has_for(cs, s_digest, ALICE, &size));
    assert_int_equal(size, sizeof s_bytes - 1);
    /* bob only names the digest: no build of his is served it */
    assert_false(farm_ctxstore_has_for(cs, s_digest, BOB, &size));
    assert_int_equal(size, 0);
    /* agents fetch what was dispatched */
    assert_true(farm_ctxstore_has(cs, s_digest, &size));

    /* bob's offer is answered as for an absent context, and leaves its age alone */
    s_age();
    farm_ctxstore_offer(cs, &st, "bob-conn", 8, BOB, s_digest, sizeof s_bytes - 1, 2000);
    assert_false(st.have);
    assert_int_equal(st.offset, 0);
    assert_string_equal(st.error, "");
    assert_int_equal(s_mtime(), 1000000000);
    /* bytes that are not the context's make him no owner */
    memcpy(forged, s_bytes, sizeof forged);
    forged[0] = 'A';
    farm_ctxstore_chunk(cs, &st, "bob-conn", 8, BOB, s_digest, 0, forged, sizeof s_bytes - 1,
                        2001);
    assert_false(st.have);
    assert_string_equal(st.error, "uploaded bytes do not match the offered digest");
    assert_false(farm_ctxstore_has_for(cs, s_digest, BOB, &size));
    assert_int_equal(s_mtime(), 1000000000);
    /* alice's own offer: "have", and it counts as a use */
    farm_ctxstore_offer(cs, &st, "alice-conn", 10, ALICE, s_digest, sizeof s_bytes - 1, 3000);
    assert_true(st.have);
    assert_true(s_mtime() > 1000000000);

    /* bob who has the bytes and sends them becomes an owner (stored once) */
    st = s_send(cs, "bob-conn", BOB, s_bytes, sizeof s_bytes - 1);
    assert_true(st.have);
    assert_true(farm_ctxstore_has_for(cs, s_digest, BOB, &size));
    st = s_send(cs, "bob-conn", BOB, s_bytes, sizeof s_bytes - 1);
    assert_true(st.have); /* now "have" at once: no chunk was needed */
    assert_false(farm_ctxstore_has_for(cs, s_digest, CAROL, &size));
    /* on a keyless farm every (local) client is one owner, "" */
    assert_false(farm_ctxstore_has_for(cs, s_digest, "", &size));
    farm_ctxstore_destroy(&cs);

    /* a restart keeps who uploaded what */
    cs = s_new();
    assert_true(farm_ctxstore_has_for(cs, s_digest, ALICE, &size));
    assert_true(farm_ctxstore_has_for(cs, s_digest, BOB, &size));
    assert_false(farm_ctxstore_has_for(cs, s_digest, CAROL, &size));
    farm_ctxstore_offer(cs, &st, "carol-conn", 10, CAROL, s_digest, sizeof s_bytes - 1, 4000);
    assert_false(st.have);

    /* an evicted context's owners are forgotten: it must be sent again, by anyone */
    s_age();
    farm_ctxstore_sweep(cs, 1000, NULL, NULL);
    assert_false(farm_ctxstore_has(cs, s_digest, &size));
    assert_false(farm_ctxstore_has_for(cs, s_digest, ALICE, &size));
    farm_ctxstore_destroy(&cs);
    cs = s_new();
    farm_ctxstore_offer(cs, &st, "alice-conn", 10, ALICE, s_digest, sizeof s_bytes - 1, 5000);
    assert_false(st.have);
    farm_ctxstore_destroy(&cs);
}

/* A broken owners file costs re-uploads, never the start or a wrong owner. */
static void test_bad_owners_file(void **state)
{
    farm_ctxstore_t *cs = s_new();
    char path[512];
    uint64_t size;
    (void)state;

    assert_true(s_send(cs, "alice-conn", ALICE, s_bytes, sizeof s_bytes - 1).have);
    farm_ctxstore_destroy(&cs);
    snprintf(path, sizeof path, "%s/owners.json", s_store);
    const char *bad[] = {"{", "[]", "{\"version\": 2, \"owners\": {}}",
                         "{\"version\": 1, \"owners\": {\"sha256:zz\": [\"x\"]}}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(farm_fs_write_atomic(path, bad[i], strlen(bad[i])), 0);
        cs = s_new();
        assert_false(farm_ctxstore_has_for(cs, s_digest, ALICE, &size));
        assert_true(farm_ctxstore_has(cs, s_digest, &size));
        farm_ctxstore_destroy(&cs);
    }
    /* an owner planted for a digest: only what the file says, for stored contexts */
    char planted[512];
    snprintf(planted, sizeof planted, "{\"version\": 1, \"owners\": {\"%s\": [\"%s\", 7]}}",
             s_digest, CAROL);
    assert_int_equal(farm_fs_write_atomic(path, planted, strlen(planted)), 0);
    cs = s_new();
    assert_true(farm_ctxstore_has_for(cs, s_digest, CAROL, &size));
    assert_false(farm_ctxstore_has_for(cs, s_digest, ALICE, &size));
    farm_ctxstore_destroy(&cs);
}

static int s_all_in_use(void *arg, const char *digest)
{
    (void)arg;
    (void)digest;
    return 1;
}

/* The text alone: sizes as a person reads them, the limit, where it is set, the fix. */
static void test_quota_text(void **state)
{
    char t[512];
    (void)state;

    farm_ctxstore_quota_text(t, sizeof t, 5ULL << 30, 1 << 20, 0, 0);
    assert_string_equal(t, "the context is 5 GiB, more than the coordinator keeps for all "
                        "contexts (coordinator.context_quota: 1 MiB, set in the "
                        "coordinator's farm.yaml): make it smaller (.dockerignore leaves "
                        "files out), or ask the farm's admin to raise "
                        "coordinator.context_quota");
    farm_ctxstore_quota_text(t, sizeof t, 3ULL << 29, 20ULL << 30, 18ULL << 30, 700);
    assert_string_equal(t, "the coordinator's context store is full: this context needs "
                        "1.5 GiB of coordinator.context_quota's 20 GiB, and 18 GiB are "
                        "contexts that running builds need and 700 bytes uploads in "
                        "progress (the rest was freed): submit again when builds have "
                        "finished, or ask the farm's admin to raise "
                        "coordinator.context_quota in the coordinator's farm.yaml");
}

/* Through the store: an offer over the quota, and one that fits the quota but not beside
 * a context a running build holds (so nothing can be evicted). */
static void test_quota_refusals(void **state)
{
    farm_ctxstore_t *cs = farm_ctxstore_new(s_store, 50, 0, 0, s_all_in_use, NULL);
    farm_ctx_status_t st;
    char other[FARM_DIGEST_STRLEN];
    uint64_t size;
    (void)state;

    assert_non_null(cs);
    farm_ctxstore_offer(cs, &st, "c1", 2, ALICE, s_digest, 51, 1000);
    assert_false(st.have);
    assert_non_null(strstr(st.error, "the context is 51 bytes, more than the coordinator "
                                     "keeps for all contexts (coordinator.context_quota: "
                                     "50 bytes, set in the coordinator's farm.yaml)"));
    st = s_send(cs, "c1", ALICE, s_bytes, sizeof s_bytes - 1);
    assert_string_equal(st.error, "");
    assert_int_equal(farm_ctxstore_has(cs, s_digest, &size), 1);
    assert_int_equal(size, sizeof s_bytes - 1);
    farm_digest_buffer(other, "more", 4);
    farm_ctxstore_offer(cs, &st, "c2", 2, BOB, other, 20, 1002);
    assert_false(st.have);
    assert_non_null(strstr(st.error, "store is full: this context needs 20 bytes of "
                                     "coordinator.context_quota's 50 bytes, and 43 bytes "
                                     "are contexts that running builds need and 0 bytes "
                                     "uploads in progress"));
    assert_non_null(strstr(st.error, "submit again when builds have finished, or ask the "
                                     "farm's admin to raise coordinator.context_quota"));
    /* what fits is taken */
    farm_ctxstore_offer(cs, &st, "c2", 2, BOB, other, 4, 1003);
    assert_string_equal(st.error, "");
    farm_ctxstore_destroy(&cs);
}

static void s_offer(farm_ctxstore_t *cs, farm_ctx_status_t *st, const char *rid,
                    const char *owner, const char *digest, uint64_t size)
{
    farm_ctxstore_offer(cs, st, rid, strlen(rid), owner, digest, size, 1000);
}

static void s_chunk(farm_ctxstore_t *cs, farm_ctx_status_t *st, const char *rid,
                    const char *owner, uint64_t offset, size_t len)
{
    farm_ctxstore_chunk(cs, st, rid, strlen(rid), owner, s_digest, offset, s_bytes + offset, len,
                        1001);
}

/* One client's connections share its upload of a digest; other clients never do. */
static void test_concurrent_uploads_join(void **state)
{
    /* one upload per client at once: a second upload slot would replace the first */
    farm_ctxstore_t *cs = farm_ctxstore_new(s_store, 0, 0, 1, NULL, NULL);
    const size_t len = sizeof s_bytes - 1, half = len / 2;
    farm_ctx_status_t st;
    char other[FARM_DIGEST_STRLEN];
    uint64_t size;
    (void)state;

    assert_non_null(cs);
    s_offer(cs, &st, "alice-1", ALICE, s_digest, len);
    assert_string_equal(st.error, "");
    s_chunk(cs, &st, "alice-1", ALICE, 0, half);
    assert_string_equal(st.error, "");
    assert_int_equal(st.offset, half);
    /* her second submit joins: answered with the upload's offset, nothing replaced */
    s_offer(cs, &st, "alice-2", ALICE, s_digest, len);
    assert_string_equal(st.error, "");
    assert_false(st.have);
    assert_int_equal(st.offset, half);
    /* bob's offer of the same digest is his own upload, from 0: hers is not his */
    s_offer(cs, &st, "bob-1", BOB, s_digest, len);
    assert_string_equal(st.error, "");
    assert_int_equal(st.offset, 0);
    /* the same digest with another size is refused, not joined, not retried */
    s_offer(cs, &st, "alice-3", ALICE, s_digest, len + 1);
    assert_non_null(strstr(st.error, "the same digest cannot have two sizes"));
    assert_false(st.retry);
    /* alice-2 sends from 0 (a chunk overlapping what alice-1 sent): only the rest is new */
    s_chunk(cs, &st, "alice-2", ALICE, 0, len);
    assert_string_equal(st.error, "");
    assert_true(st.have);
    assert_true(farm_ctxstore_has_for(cs, s_digest, ALICE, &size));
    assert_false(farm_ctxstore_has_for(cs, s_digest, BOB, &size));
    /* alice-1's next chunk finds the upload finished: offer again, which says "have" */
    s_chunk(cs, &st, "alice-1", ALICE, half, len - half);
    assert_string_equal(st.error, "no upload in progress; offer first");
    assert_true(st.retry);
    s_offer(cs, &st, "alice-1", ALICE, s_digest, len);
    assert_string_equal(st.error, "");
    assert_true(st.have);
    /* bob's upload went on beside hers, and a chunk past its offset is a gap: retry */
    s_chunk(cs, &st, "bob-1", BOB, half, len - half);
    assert_true(st.retry);
    assert_int_equal(st.offset, 0);
    assert_false(farm_ctxstore_has_for(cs, s_digest, BOB, &size));

    /* the bound per client holds: bob's upload of another digest replaces this one, and
     * the replaced upload's sender is told to offer again */
    farm_digest_buffer(other, "more", 4);
    s_offer(cs, &st, "bob-2", BOB, other, 4);
    assert_string_equal(st.error, "");
    s_chunk(cs, &st, "bob-1", BOB, 0, len);
    assert_string_equal(st.error, "no upload in progress; offer first");
    assert_true(st.retry);
    farm_ctxstore_destroy(&cs);

    /* without keys a client is its connection: two connections do not share an upload */
    cs = farm_ctxstore_new(s_store, 0, 0, 1, NULL, NULL);
    farm_digest_buffer(s_digest, "keyless", 7);
    assert_non_null(cs);
    s_offer(cs, &st, "conn-a", "", s_digest, 7);
    farm_ctxstore_chunk(cs, &st, "conn-a", 6, "", s_digest, 0, "key", 3, 1001);
    assert_int_equal(st.offset, 3);
    s_offer(cs, &st, "conn-b", "", s_digest, 7);
    assert_string_equal(st.error, "");
    assert_int_equal(st.offset, 0);
    farm_ctxstore_destroy(&cs);
}

/* Uploads in all are bounded; the refusal asks for another offer (farmctl waits and
 * offers again) and names coordinator.max_uploads. */
static void test_uploads_in_all(void **state)
{
    farm_ctxstore_t *cs = farm_ctxstore_new(s_store, 0, 2, 0, NULL, NULL);
    farm_ctx_status_t st;
    (void)state;

    assert_non_null(cs);
    s_offer(cs, &st, "a", ALICE, s_digest, 10);
    s_offer(cs, &st, "b", BOB, s_digest, 10);
    assert_string_equal(st.error, "");
    s_offer(cs, &st, "c", CAROL, s_digest, 10);
    assert_non_null(strstr(st.error, "(coordinator.max_uploads); try again shortly"));
    assert_true(st.retry);
    /* a client joining its own upload needs no slot */
    s_offer(cs, &st, "a2", ALICE, s_digest, 10);
    assert_string_equal(st.error, "");
    farm_ctxstore_destroy(&cs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_only_uploaders_are_served, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_owners_file, s_setup, s_teardown),
        cmocka_unit_test(test_quota_text),
        cmocka_unit_test_setup_teardown(test_quota_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_uploads_join, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_uploads_in_all, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
