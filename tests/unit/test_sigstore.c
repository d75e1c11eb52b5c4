/* SPDX-License-Identifier: Apache-2.0 */
/* Sigstore payloads and signatures: the payload has the fields containers/image reads and
 * no others, a signature verifies with the public key (here and with the openssl command,
 * which shares no code with farm's), and fails with another key or another payload; key
 * files are refused when readable by others, not P-256, or encrypted; identities match as
 * containers/image's matchRepoDigestOrExact does. */
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

#include <jansson.h>
#include <openssl/pem.h>

#include "common/error.h"
#include "common/sigstore.h"

#define D1 "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define D2 "sha256:1111111111111111111111111111111111111111111111111111111111111111"

static char s_dir[64];

static int s_setup(void **state)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/farm-sigstore.XXXXXX");
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

static EVP_PKEY *s_key(const char *name)
{
    char key[256], pub[256], *pem = NULL;
    size_t len = 0;
    EVP_PKEY *k = NULL;

    s_path(key, sizeof key, name);
    strcat(key, ".key");
    s_path(pub, sizeof pub, name);
    strcat(pub, ".pub");
    assert_int_equal(farm_sigstore_keygen(key, pub), 0);
    assert_int_equal(farm_sigstore_key_read(&pem, &len, key), 0);
    assert_int_equal(farm_sigstore_key_parse(&k, pem, len, key), 0);
    free(pem);
    return k;
}

static void test_payload_fields(void **state)
{
    char *p = NULL, ident[FARM_SIGSTORE_IDENTITY_MAX], dig[FARM_DIGEST_STRLEN];
    size_t len = 0;
    json_t *root, *c;

    assert_int_equal(farm_sigstore_payload(&p, &len, "127.0.0.1:5000/team/app:1", D1, "farm"), 0);
    /* deterministic: the same pair gives the same bytes */
    {
        char *q = NULL;
        size_t qlen = 0;
        assert_int_equal(farm_sigstore_payload(&q, &qlen, "127.0.0.1:5000/team/app:1", D1, "farm"),
                         0);
        assert_int_equal(qlen, len);
        assert_memory_equal(p, q, len);
        free(q);
    }
    root = json_loadb(p, len, 0, NULL);
    assert_non_null(root);
    assert_int_equal(json_object_size(root), 2);
    c = json_object_get(root, "critical");
    assert_int_equal(json_object_size(c), 3);
    assert_string_equal(json_string_value(json_object_get(c, "type")),
                        "cosign container image signature");
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "image"),
                                                          "docker-manifest-digest")), D1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "identity"),
                                                          "docker-reference")),
                        "127.0.0.1:5000/team/app:1");
    json_decref(root);
    assert_int_equal(farm_sigstore_payload_parse(ident, dig, p, len), 0);
    assert_string_equal(ident, "127.0.0.1:5000/team/app:1");
    assert_string_equal(dig, D1);
    free(p);
    /* containers/image refuses extra critical fields, another type, a bad digest */
    {
        const char *bad[] = {
            "{\"critical\":{\"identity\":{\"docker-reference\":\"r/a:1\"},\"image\":{\"docker-"
            "manifest-digest\":\"" D1 "\"},\"type\":\"cosign container image signature\","
            "\"extra\":1},\"optional\":{}}",
            "{\"critical\":{\"identity\":{\"docker-reference\":\"r/a:1\"},\"image\":{\"docker-"
            "manifest-digest\":\"" D1 "\"},\"type\":\"atomic container signature\"},"
            "\"optional\":{}}",
            "{\"critical\":{\"identity\":{\"docker-reference\":\"r/a:1\"},\"image\":{\"docker-"
            "manifest-digest\":\"md5:00\"},\"type\":\"cosign container image signature\"},"
            "\"optional\":{}}",
            "{\"critical\":{\"identity\":{},\"image\":{\"docker-manifest-digest\":\"" D1 "\"},"
            "\"type\":\"cosign container image signature\"},\"optional\":{}}",
            "[1]",
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
            assert_int_equal(farm_sigstore_payload_parse(ident, dig, bad[i], strlen(bad[i])),
                             FARM_EINVALID);
    }
    assert_int_equal(farm_sigstore_payload(&p, &len, "r/a:1", "sha256:00", NULL), FARM_EINVALID);
}

static void test_sign_verify(void **state)
{
    EVP_PKEY *k = s_key("a"), *other = s_key("b"), *pub = NULL;
    char *p = NULL, *sig = NULL, pubpath[256];
    size_t len = 0;

    s_path(pubpath, sizeof pubpath, "a.pub");
    assert_int_equal(farm_sigstore_pub_load(&pub, pubpath), 0);
    assert_int_equal(farm_sigstore_payload(&p, &len, "r.io/a:1", D1, NULL), 0);
    assert_int_equal(farm_sigstore_sign(&sig, k, p, len), 0);
    assert_int_equal(farm_sigstore_verify(pub, p, len, sig), 0);
    assert_int_equal(farm_sigstore_verify(k, p, len, sig), 0);
    /* another key, another payload, a damaged signature: refused */
    assert_int_equal(farm_sigstore_verify(other, p, len, sig), FARM_EAUTH);
    {
        char *q = NULL;
        size_t qlen = 0;
        assert_int_equal(farm_sigstore_payload(&q, &qlen, "r.io/a:1", D2, NULL), 0);
        assert_int_equal(farm_sigstore_verify(pub, q, qlen, sig), FARM_EAUTH);
        free(q);
    }
    sig[10] = sig[10] == 'A' ? 'B' : 'A';
    assert_int_equal(farm_sigstore_verify(pub, p, len, sig), FARM_EAUTH);
    assert_int_equal(farm_sigstore_verify(pub, p, len, "not base64!"), FARM_EAUTH);
    free(sig);
    /* the openssl command agrees: the DER signature over the payload's bytes */
    {
        char cmd[2048], pf[256], sf[256], bf[256];
        FILE *f;
        assert_int_equal(farm_sigstore_sign(&sig, k, p, len), 0);
        s_path(pf, sizeof pf, "payload");
        s_path(bf, sizeof bf, "sig.b64");
        s_path(sf, sizeof sf, "sig.der");
        assert_non_null(f = fopen(pf, "w"));
        assert_int_equal(fwrite(p, 1, len, f), len);
        fclose(f);
        assert_non_null(f = fopen(bf, "w"));
        fprintf(f, "%s\n", sig);
        fclose(f);
        snprintf(cmd, sizeof cmd, "openssl base64 -d -A -in %s -out %s && openssl dgst -sha256 "
                 "-verify %s -signature %s %s >/dev/null", bf, sf, pubpath, sf, pf);
        assert_int_equal(system(cmd), 0);
        /* and refuses another payload with it */
        assert_non_null(f = fopen(pf, "a"));
        fputc(' ', f);
        fclose(f);
        assert_int_not_equal(system(cmd), 0);
        free(sig);
    }
    free(p);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
    EVP_PKEY_free(pub);
}

static void test_key_files(void **state)
{
    char key[256], pub[256], path[256], cmd[768], *pem = NULL;
    char id1[FARM_DIGEST_STRLEN], id2[FARM_DIGEST_STRLEN];
    size_t len = 0;
    struct stat st;
    EVP_PKEY *k = NULL, *p = NULL;

    s_path(key, sizeof key, "c.key");
    s_path(pub, sizeof pub, "c.pub");
    assert_int_equal(farm_sigstore_keygen(key, pub), 0);
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* never overwritten */
    assert_int_equal(farm_sigstore_keygen(key, pub), FARM_EIO);
    assert_non_null(strstr(farm_error_last(), "never overwritten"));
    /* the key id is the public key's, from either half */
    assert_int_equal(farm_sigstore_key_read(&pem, &len, key), 0);
    assert_int_equal(farm_sigstore_key_parse(&k, pem, len, key), 0);
    assert_int_equal(farm_sigstore_pub_load(&p, pub), 0);
    assert_int_equal(farm_sigstore_key_id(id1, k), 0);
    assert_int_equal(farm_sigstore_key_id(id2, p), 0);
    assert_string_equal(id1, id2);
    free(pem);
    EVP_PKEY_free(k);
    EVP_PKEY_free(p);
    /* group-readable: refused, naming the fix */
    assert_int_equal(chmod(key, 0640), 0);
    assert_int_equal(farm_sigstore_key_read(&pem, &len, key), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "chmod 600"));
    assert_null(pem);
    /* missing */
    s_path(path, sizeof path, "none.key");
    assert_int_equal(farm_sigstore_key_read(&pem, &len, path), FARM_ENOTFOUND);
    assert_non_null(strstr(farm_error_last(), "farmctl keygen --signing"));
    /* not P-256 (P-384, RSA), encrypted, a CURVE key file: refused */
    {
        const char *gen[] = {
            "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out %s",
            "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out %s",
            "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 "
            "-pass pass:x -out %s",
        };
        const char *want[] = {"not an EC P-256", "not an EC P-256", "no unencrypted"};
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/bad%d.key", s_dir, i);
            snprintf(cmd, sizeof cmd, gen[i], path);
            strcat(cmd, " 2>/dev/null");
            assert_int_equal(system(cmd), 0);
            assert_int_equal(chmod(path, 0600), 0);
            assert_int_equal(farm_sigstore_key_read(&pem, &len, path), FARM_EINVALID);
            assert_non_null(strstr(farm_error_last(), want[i]));
        }
        /* a P-256 key openssl made (SEC1) is taken */
        snprintf(path, sizeof path, "%s/ossl.key", s_dir);
        snprintf(cmd, sizeof cmd, "openssl ecparam -name prime256v1 -genkey -noout -out %s", path);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(chmod(path, 0600), 0);
        assert_int_equal(farm_sigstore_key_read(&pem, &len, path), 0);
        free(pem);
    }
    /* a private key is not a public key file */
    assert_int_equal(chmod(key, 0600), 0);
    assert_int_equal(farm_sigstore_pub_load(&p, key), FARM_EINVALID);
}

static void test_identity(void **state)
{
    char tag[FARM_SIGSTORE_TAG_LEN];

    assert_int_equal(farm_sigstore_tag(tag, D1), 0);
    assert_string_equal(tag, "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.sig");
    assert_int_equal(farm_sigstore_tag(tag, "sha256:xyz"), FARM_EINVALID);
    /* by tag: exact */
    assert_true(farm_sigstore_identity_matches("127.0.0.1:5000/a/b:1", "127.0.0.1:5000/a/b:1"));
    assert_false(farm_sigstore_identity_matches("127.0.0.1:5000/a/b:1", "127.0.0.1:5000/a/b:2"));
    assert_false(farm_sigstore_identity_matches("127.0.0.1:5000/a/c:1", "127.0.0.1:5000/a/b:1"));
    assert_false(farm_sigstore_identity_matches("127.0.0.1:5001/a/b:1", "127.0.0.1:5000/a/b:1"));
    /* normalised: docker.io/library */
    assert_true(farm_sigstore_identity_matches("docker.io/library/alpine:3", "alpine:3"));
    /* by digest: the repository */
    assert_true(farm_sigstore_identity_matches("127.0.0.1:5000/a/b:1", "127.0.0.1:5000/a/b@" D1));
    assert_false(farm_sigstore_identity_matches("127.0.0.1:5000/a/x:1", "127.0.0.1:5000/a/b@" D1));
    /* a name alone never matches */
    assert_false(farm_sigstore_identity_matches("127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b@" D1));
    assert_false(farm_sigstore_identity_matches("127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payload_fields),
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_key_files),
        cmocka_unit_test(test_identity),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
