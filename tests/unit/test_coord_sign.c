/* SPDX-License-Identifier: Apache-2.0 */
/* What the index push's helper says it signed is kept on the build for BuildDone, and a
 * helper that was given the signing key but reports no signature fails the build rather
 * than have an unsigned index reported as done (farm_sign_keep). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/error.h"
#include "coordinator/job.h"
#include "coordinator/sign.h"

#define KEYID "sha256:aa9be534819f430565fe3c797ea34c55ef07cc099ad5ab29c7980e4fe0b78fe8"

static void test_keep(void **state)
{
    farm_build_t *b = calloc(1, sizeof *b);
    Farm__StitchResult r = FARM__STITCH_RESULT__INIT;
    char *ids[] = {"r:5000/a/b:1", "r:5000/a/b:stable"};

    assert_non_null(b);
    r.ok = 1;
    r.n_signed_identities = 2;
    r.signed_identities = ids;
    r.signing_key_id = KEYID;
    r.signed_manifests = 4;
    r.sign_ms = 321;
    assert_int_equal(farm_sign_keep(b, &r), 0);
    assert_int_equal(b->signed_info.n_identities, 2);
    assert_string_equal(b->signed_info.identities[1], "r:5000/a/b:stable");
    assert_ptr_not_equal(b->signed_info.identities[1], ids[1]); /* a copy */
    assert_string_equal(b->signed_info.key_id, KEYID);
    assert_int_equal(b->signed_info.manifests, 4);
    assert_int_equal(b->signed_info.ms, 321);
    /* kept again (a stitch redone): replaced, not appended */
    r.n_signed_identities = 1;
    assert_int_equal(farm_sign_keep(b, &r), 0);
    assert_int_equal(b->signed_info.n_identities, 1);
    farm_sign_out_clear(&b->signed_info);
    free(b);
}

static void test_ok_without_signature_is_refused(void **state)
{
    farm_build_t *b = calloc(1, sizeof *b);
    Farm__StitchResult r = FARM__STITCH_RESULT__INIT;
    char *ids[] = {"r:5000/a/b:1"};

    assert_non_null(b);
    r.ok = 1;
    r.signing_key_id = KEYID;
    assert_int_equal(farm_sign_keep(b, &r), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "the index is not signed"));
    assert_int_equal(b->signed_info.n_identities, 0);
    /* identities without a key id: refused too */
    r.n_signed_identities = 1;
    r.signed_identities = ids;
    r.signing_key_id = "";
    assert_int_equal(farm_sign_keep(b, &r), FARM_EINVALID);
    assert_int_equal(b->signed_info.n_identities, 0);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep),
        cmocka_unit_test(test_ok_without_signature_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
