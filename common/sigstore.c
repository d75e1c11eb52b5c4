/* SPDX-License-Identifier: Apache-2.0 */
#include "common/sigstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/error.h"
#include "common/reference.h"

/* ------------------------------------------------------------------ keys */

/* 1 when key is an EC key on P-256 (prime256v1), the only curve sigstore's keyPath
 * verification and this code agree on. */
static int s_is_p256(EVP_PKEY *key)
{
    char group[64] = "";
    size_t glen = 0;

    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
        return 0;
    if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                        &glen))
        return 0;
    return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

static int s_read(char **out, size_t *out_len, const char *path, int secret)
{
    struct stat st;
    char *buf = NULL;
    ssize_t n;
    /* O_NONBLOCK: a FIFO planted at the path must not hang us */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

    *out = NULL;
    *out_len = 0;
    if (fd < 0)
        return farm_error_set(errno == ENOENT ? FARM_ENOTFOUND : FARM_EIO, "cannot open %s key "
                              "file %s: %s%s", secret ? "signing" : "public", path,
                              strerror(errno), secret ? " (make one with farmctl keygen "
                              "--signing NAME)" : "");
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return farm_error_set(FARM_EINVALID, "key file %s is not a regular file", path);
    }
    if (secret && (st.st_mode & 077)) {
        close(fd);
        return farm_error_set(FARM_EINVALID, "signing key file %s may be read by group or "
                              "others (mode %03o); run chmod 600 %s", path,
                              (unsigned)(st.st_mode & 0777), path);
    }
    if (secret && st.st_uid != geteuid()) {
        close(fd);
        return farm_error_set(FARM_EINVALID, "signing key file %s belongs to uid %u, not to "
                              "this user (uid %u); chown it to the user the coordinator runs "
                              "as", path, (unsigned)st.st_uid, (unsigned)geteuid());
    }
    if (st.st_size > FARM_SIGSTORE_KEY_MAX || !(buf = malloc(FARM_SIGSTORE_KEY_MAX + 1))) {
        close(fd);
        return farm_error_set(FARM_ETOOBIG, "key file %s is over %u bytes: not a PEM key",
                              path, FARM_SIGSTORE_KEY_MAX);
    }
    n = read(fd, buf, FARM_SIGSTORE_KEY_MAX + 1);
    close(fd);
    if (n < 0 || n > (ssize_t)FARM_SIGSTORE_KEY_MAX) {
        explicit_bzero(buf, FARM_SIGSTORE_KEY_MAX + 1);
        free(buf);
        return farm_error_set(FARM_EIO, "reading key file %s: %s", path,
                              n < 0 ? strerror(errno) : "too large");
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = (size_t)n;
    return 0;
}

int farm_sigstore_key_parse(EVP_PKEY **out, const void *pem, size_t len, const char *what)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *key = NULL;

    *out = NULL;
    if (!bio || len > FARM_SIGSTORE_KEY_MAX) {
        BIO_free(bio);
        return farm_error_set(FARM_EINVALID, "%s: not a PEM private key", what);
    }
    /* no passphrase callback: an encrypted key is refused, never prompted for */
    key = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
    BIO_free(bio);
    if (!key)
        return farm_error_set(FARM_EINVALID, "%s holds no unencrypted PEM private key; make "
                              "one with farmctl keygen --signing NAME", what);
    if (!s_is_p256(key)) {
        EVP_PKEY_free(key);
        return farm_error_set(FARM_EINVALID, "%s is not an EC P-256 key (sigstore signatures "
                              "here are ECDSA P-256); make one with farmctl keygen --signing "
                              "NAME", what);
    }
    *out = key;
    return 0;
}

int farm_sigstore_key_read(char **out_pem, size_t *out_len, const char *path)
{
    EVP_PKEY *key = NULL;
    int rc;

    if ((rc = s_read(out_pem, out_len, path, 1)) < 0)
        return rc;
    if ((rc = farm_sigstore_key_parse(&key, *out_pem, *out_len, path)) < 0) {
        explicit_bzero(*out_pem, *out_len);
        free(*out_pem);
        *out_pem = NULL;
        *out_len = 0;
        return rc;
    }
    EVP_PKEY_free(key);
    return 0;
}

int farm_sigstore_pub_load(EVP_PKEY **out, const char *path)
{
    char *pem = NULL;
    size_t len = 0;
    BIO *bio;
    int rc;

    *out = NULL;
    if ((rc = s_read(&pem, &len, path, 0)) < 0)
        return rc;
    bio = BIO_new_mem_buf(pem, (int)len);
    *out = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    free(pem);
    if (!*out)
        return farm_error_set(FARM_EINVALID, "%s holds no PEM public key (\"-----BEGIN PUBLIC "
                              "KEY-----\"); use the NAME.pub farmctl keygen --signing wrote",
                              path);
    if (!s_is_p256(*out)) {
        EVP_PKEY_free(*out);
        *out = NULL;
        return farm_error_set(FARM_EINVALID, "%s is not an EC P-256 public key", path);
    }
    return 0;
}

int farm_sigstore_pub_pem(char **out, size_t *out_len, EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long n;

    *out = NULL;
    *out_len = 0;
    if (!bio || !PEM_write_bio_PUBKEY(bio, key) || (n = BIO_get_mem_data(bio, &data)) <= 0 ||
        !(*out = malloc((size_t)n + 1))) {
        BIO_free(bio);
        return farm_error_set(FARM_ERROR, "cannot write the public key as PEM");
    }
    memcpy(*out, data, (size_t)n);
    (*out)[n] = '\0';
    *out_len = (size_t)n;
    BIO_free(bio);
    return 0;
}

int farm_sigstore_key_id(char out[FARM_DIGEST_STRLEN], EVP_PKEY *key)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);

    out[0] = '\0';
    if (n <= 0)
        return farm_error_set(FARM_ERROR, "cannot encode the public key");
    farm_digest_buffer(out, der, (size_t)n);
    OPENSSL_free(der);
    return 0;
}

/* Writes data to a new file (O_EXCL) with mode. */
static int s_write_new(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    ssize_t n;

    if (fd < 0)
        return farm_error_set(FARM_EIO, "cannot create %s: %s%s", path, strerror(errno),
                              errno == EEXIST ? " (a key is never overwritten: remove it or "
                              "pick another NAME)" : "");
    n = write(fd, data, len);
    if (n != (ssize_t)len || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        return farm_error_set(FARM_EIO, "writing %s: %s", path, strerror(e));
    }
    close(fd);
    return 0;
}

int farm_sigstore_keygen(const char *key_path, const char *pub_path)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIO *bio = NULL;
    char *data, *pub = NULL;
    size_t pub_len = 0;
    long n;
    int rc = 0;

    if (!key)
        return farm_error_set(FARM_ERROR, "EC P-256 key generation failed");
    if ((rc = farm_sigstore_pub_pem(&pub, &pub_len, key)) < 0)
        goto done;
    if (!(bio = BIO_new(BIO_s_secmem())) ||
        !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) ||
        (n = BIO_get_mem_data(bio, &data)) <= 0) {
        rc = farm_error_set(FARM_ERROR, "cannot write the private key as PEM");
        goto done;
    }
    if ((rc = s_write_new(key_path, data, (size_t)n, 0600)) < 0)
        goto done;
    if ((rc = s_write_new(pub_path, pub, pub_len, 0644)) < 0) {
        unlink(key_path); /* half a pair is no use */
        goto done;
    }
done:
    BIO_free(bio); /* secure heap: cleared on free */
    free(pub);
    EVP_PKEY_free(key);
    return rc;
}

/* ------------------------------------------------------------------ payloads */

int farm_sigstore_tag(char out[FARM_SIGSTORE_TAG_LEN], const char *digest)
{
    if (!farm_digest_valid(digest))
        return farm_error_set(FARM_EINVALID, "not a sha256 digest: %.80s", digest);
    snprintf(out, FARM_SIGSTORE_TAG_LEN, "sha256-%.64s.sig", digest + 7);
    return 0;
}

int farm_sigstore_payload(char **out, size_t *out_len, const char *identity,
                          const char *digest, const char *creator)
{
    json_t *root;

    *out = NULL;
    *out_len = 0;
    if (!farm_digest_valid(digest) || !identity[0] ||
        strlen(identity) >= FARM_SIGSTORE_IDENTITY_MAX)
        return farm_error_set(FARM_EINVALID, "a signature needs an identity and a sha256 digest");
    root = json_pack("{s:{s:{s:s},s:{s:s},s:s},s:o}", "critical", "identity",
                     "docker-reference", identity, "image", "docker-manifest-digest", digest,
                     "type", FARM_SIGSTORE_SIG_TYPE, "optional",
                     creator ? json_pack("{s:s}", "creator", creator) : json_object());
    if (!root || !(*out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS))) {
        json_decref(root);
        return farm_error_set(FARM_ERROR, "out of memory");
    }
    json_decref(root);
    *out_len = strlen(*out);
    return 0;
}

/* A JSON object with exactly the keys given (NULL-terminated). */
static int s_exact(const json_t *o, const char *what, const char *const *keys)
{
    size_t n = 0;

    if (!json_is_object(o))
        return farm_error_set(FARM_EINVALID, "signature payload: %s is not an object", what);
    for (; keys[n]; n++)
        if (!json_object_get(o, keys[n]))
            return farm_error_set(FARM_EINVALID, "signature payload: %s has no \"%s\"", what,
                                  keys[n]);
    if (json_object_size(o) != n)
        return farm_error_set(FARM_EINVALID, "signature payload: %s has fields besides the "
                              "%zu it may have", what, n);
    return 0;
}

int farm_sigstore_payload_parse(char out_identity[FARM_SIGSTORE_IDENTITY_MAX],
                                char out_digest[FARM_DIGEST_STRLEN], const void *payload,
                                size_t len)
{
    static const char *const top[] = {"critical", "optional", NULL};
    static const char *const crit[] = {"type", "image", "identity", NULL};
    static const char *const image[] = {"docker-manifest-digest", NULL};
    static const char *const ident[] = {"docker-reference", NULL};
    json_error_t jerr;
    json_t *root, *c, *t, *d, *r;
    int rc;

    out_identity[0] = out_digest[0] = '\0';
    if (len > FARM_SIGSTORE_PAYLOAD_MAX)
        return farm_error_set(FARM_ETOOBIG, "signature payload of %zu bytes is over %u", len,
                              FARM_SIGSTORE_PAYLOAD_MAX);
    if (!(root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr)))
        return farm_error_set(FARM_EINVALID, "signature payload is not JSON (%s)", jerr.text);
    c = json_object_get(root, "critical");
    if ((rc = s_exact(root, "the payload", top)) < 0 ||
        (rc = s_exact(c, "critical", crit)) < 0 ||
        (rc = s_exact(json_object_get(c, "image"), "critical.image", image)) < 0 ||
        (rc = s_exact(json_object_get(c, "identity"), "critical.identity", ident)) < 0)
        goto done;
    t = json_object_get(c, "type");
    d = json_object_get(json_object_get(c, "image"), "docker-manifest-digest");
    r = json_object_get(json_object_get(c, "identity"), "docker-reference");
    if (!json_is_string(t) || strcmp(json_string_value(t), FARM_SIGSTORE_SIG_TYPE) != 0) {
        rc = farm_error_set(FARM_EINVALID, "signature payload: type is not \"%s\"",
                            FARM_SIGSTORE_SIG_TYPE);
        goto done;
    }
    if (!json_is_string(d) || !farm_digest_valid(json_string_value(d))) {
        rc = farm_error_set(FARM_EINVALID, "signature payload: docker-manifest-digest is not a "
                            "sha256 digest");
        goto done;
    }
    if (!json_is_string(r) || !json_string_length(r) ||
        json_string_length(r) >= FARM_SIGSTORE_IDENTITY_MAX) {
        rc = farm_error_set(FARM_EINVALID, "signature payload: docker-reference is not a "
                            "reference");
        goto done;
    }
    snprintf(out_digest, FARM_DIGEST_STRLEN, "%s", json_string_value(d));
    snprintf(out_identity, FARM_SIGSTORE_IDENTITY_MAX, "%s", json_string_value(r));
done:
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------ signatures */

int farm_sigstore_sign(char **out_b64, EVP_PKEY *key, const void *payload, size_t len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    int rc = 0;

    *out_b64 = NULL;
    if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, NULL, &sig_len, payload, len) != 1 ||
        !(sig = malloc(sig_len)) || EVP_DigestSign(md, sig, &sig_len, payload, len) != 1) {
        rc = farm_error_set(FARM_ERROR, "ECDSA signing failed");
        goto done;
    }
    /* base64 without newlines: 4 characters per 3 bytes, plus the NUL */
    if (!(*out_b64 = malloc(4 * ((sig_len + 2) / 3) + 1))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    EVP_EncodeBlock((unsigned char *)*out_b64, sig, (int)sig_len);
done:
    free(sig);
    EVP_MD_CTX_free(md);
    return rc;
}

int farm_sigstore_verify(EVP_PKEY *pub, const void *payload, size_t len, const char *b64)
{
    size_t blen = strlen(b64), pad = 0;
    unsigned char *sig = NULL;
    EVP_MD_CTX *md = NULL;
    int n, rc = 0;

    /* a DER ECDSA P-256 signature is at most 72 bytes: 96 base64 characters */
    if (blen == 0 || blen % 4 || blen > 256)
        return farm_error_set(FARM_EAUTH, "the signature is not base64 of an ECDSA signature");
    if (!(sig = malloc(blen)))
        return farm_error_set(FARM_ERROR, "out of memory");
    n = EVP_DecodeBlock(sig, (const unsigned char *)b64, (int)blen);
    pad = (b64[blen - 1] == '=') + (b64[blen - 2] == '=');
    if (n < 0 || (size_t)n < pad) {
        rc = farm_error_set(FARM_EAUTH, "the signature is not base64");
        goto done;
    }
    if (!(md = EVP_MD_CTX_new()) || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) != 1) {
        rc = farm_error_set(FARM_ERROR, "ECDSA verification could not start");
        goto done;
    }
    if (EVP_DigestVerify(md, sig, (size_t)n - pad, payload, len) != 1)
        rc = farm_error_set(FARM_EAUTH, "the signature does not verify with this public key");
done:
    EVP_MD_CTX_free(md);
    free(sig);
    return rc;
}

/* 1 when s names a tag or a digest after its repository (a name alone does not). */
static int s_has_tag_or_digest(const char *s)
{
    const char *slash = strrchr(s, '/');
    return strchr(s, '@') || strchr(slash ? slash : s, ':');
}

int farm_sigstore_identity_matches(const char *identity, const char *ref)
{
    farm_reference_t si, ri;

    if (!s_has_tag_or_digest(identity) || farm_reference_parse(&si, identity) < 0 ||
        farm_reference_parse(&ri, ref) < 0)
        return 0;
    if (strcmp(si.registry, ri.registry) != 0 || strcmp(si.repository, ri.repository) != 0)
        return 0;
    /* a reference by digest only: the repository is enough (the digest is checked
     * against the manifest apart) */
    if (!ri.tag[0])
        return 1;
    /* by tag (with or without a digest): the same tag and digest */
    return strcmp(si.tag, ri.tag) == 0 && strcmp(si.digest, ri.digest) == 0;
}
