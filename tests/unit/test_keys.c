/* SPDX-License-Identifier: Apache-2.0 */
/* CURVE key files: written 0600 and never over an existing file, read back only when
 * private and consistent; public keys from text or a .pub file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/keys.h"

static char s_dir[64];

static int s_setup(void **state)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/farm-keys.XXXXXX");
    assert_non_null(mkdtemp(s_dir));
    return 0;
}

static int s_teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void s_path(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", s_dir, name);
}

static void test_round_trip(void **state)
{
    farm_keypair_t kp, back;
    char sec[128], pub[128], text[64];
    struct stat st;

    s_path(sec, sizeof sec, "n.key");
    s_path(pub, sizeof pub, "n.pub");
    assert_int_equal(farm_key_generate(&kp), 0);
    assert_true(farm_key_valid(kp.public_key));
    assert_int_equal(farm_key_write(sec, pub, &kp, "n"), 0);
    assert_int_equal(stat(sec, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(farm_key_load(&back, sec), 0);
    assert_string_equal(back.public_key, kp.public_key);
    assert_string_equal(back.secret_key, kp.secret_key);
    assert_int_equal(farm_key_load_public(text, pub), 0);
    assert_string_equal(text, kp.public_key);
    assert_int_equal(farm_key_load_public(text, kp.public_key), 0);
    assert_string_equal(text, kp.public_key);
    /* never over an existing key */
    assert_int_equal(farm_key_write(sec, pub, &kp, "n"), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "never overwrites"));
    farm_key_wipe(&back);
    assert_int_equal(back.secret_key[0], 0);
}

/* A .pub file whose path is 40 Z85 characters is read, not taken for the key itself. */
static void test_public_key_path_like_a_key(void **state)
{
    farm_keypair_t kp;
    char sec[160], pub[128], text[64];
    size_t len;

    s_path(pub, sizeof pub, "");
    len = strlen(pub);
    assert_true(len < FARM_KEY_Z85_LEN - 4);
    memset(pub + len, 'k', FARM_KEY_Z85_LEN - 4 - len);
    memcpy(pub + FARM_KEY_Z85_LEN - 4, ".pub", 5);
    assert_true(farm_key_valid(pub)); /* the trap: the path decodes as Z85 */
    snprintf(sec, sizeof sec, "%s.key", pub);
    assert_int_equal(farm_key_generate(&kp), 0);
    assert_int_equal(farm_key_write(sec, pub, &kp, "c"), 0);
    assert_int_equal(farm_key_load_public(text, pub), 0);
    assert_string_equal(text, kp.public_key);
    farm_key_wipe(&kp);
}

static void test_refusals(void **state)
{
    farm_keypair_t kp, other, back;
    char sec[128], pub[128], text[64];
    FILE *f;

    s_path(sec, sizeof sec, "r.key");
    s_path(pub, sizeof pub, "r.pub");
    assert_int_equal(farm_key_generate(&kp), 0);
    assert_int_equal(farm_key_write(sec, pub, &kp, "r"), 0);
    /* readable by others: refused, with the fix */
    assert_int_equal(chmod(sec, 0640), 0);
    assert_int_equal(farm_key_load(&back, sec), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "chmod 600"));
    /* a public key that does not belong to the secret key */
    assert_int_equal(farm_key_generate(&other), 0);
    s_path(sec, sizeof sec, "mixed.key");
    assert_non_null(f = fopen(sec, "w"));
    fprintf(f, "public-key = %s\nsecret-key = %s\n", other.public_key, kp.secret_key);
    fclose(f);
    assert_int_equal(chmod(sec, 0600), 0);
    assert_int_equal(farm_key_load(&back, sec), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "does not belong"));
    /* junk */
    assert_false(farm_key_valid("short"));
    assert_false(farm_key_valid("0123456789012345678901234567890123456789x"));
    assert_int_equal(farm_key_load_public(text, "/nonexistent/key.pub"), FARM_ENOTFOUND);
    s_path(sec, sizeof sec, "nothing.key");
    assert_int_equal(farm_key_load(&back, sec), FARM_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_public_key_path_like_a_key, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
