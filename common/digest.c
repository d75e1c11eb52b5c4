/* SPDX-License-Identifier: Apache-2.0 */
#include "common/digest.h"

#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct farm_sha256 {
    EVP_MD_CTX *ctx;
};

static void s_hex(char out[FARM_DIGEST_STRLEN], const unsigned char md[32])
{
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[7 + 2 * i + 1] = hex[md[i] & 0xf];
    }
    out[71] = '\0';
}

farm_sha256_t *farm_sha256_new(void)
{
    farm_sha256_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->ctx = EVP_MD_CTX_new();
    if (!self->ctx || EVP_DigestInit_ex(self->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(self->ctx);
        free(self);
        return NULL;
    }
    return self;
}

void farm_sha256_update(farm_sha256_t *self, const void *data, size_t len)
{
    if (len)
        EVP_DigestUpdate(self->ctx, data, len);
}

void farm_sha256_final(farm_sha256_t *self, char out[FARM_DIGEST_STRLEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(self->ctx, md, &mdlen);
    s_hex(out, md);
}

void farm_sha256_destroy(farm_sha256_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    EVP_MD_CTX_free((*self_p)->ctx);
    free(*self_p);
    *self_p = NULL;
}

void farm_digest_buffer(char out[FARM_DIGEST_STRLEN], const void *data, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(len ? data : "", len, md, &mdlen, EVP_sha256(), NULL);
    s_hex(out, md);
}

int farm_digest_fd(char out[FARM_DIGEST_STRLEN], uint64_t *out_size, int fd, const char *name)
{
    farm_sha256_t *h = farm_sha256_new();
    unsigned char *buf = malloc(1 << 16);
    uint64_t total = 0;
    int rc = 0;

    if (!h || !buf) {
        rc = farm_error_set(FARM_ERROR, "digest of %s: out of memory", name);
        goto done;
    }
    for (;;) {
        ssize_t n = read(fd, buf, 1 << 16);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = farm_error_set(FARM_EIO, "cannot read %s: %s", name, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        farm_sha256_update(h, buf, (size_t)n);
        total += (uint64_t)n;
    }
    farm_sha256_final(h, out);
    if (out_size)
        *out_size = total;
done:
    farm_sha256_destroy(&h);
    free(buf);
    return rc;
}

int farm_digest_file(char out[FARM_DIGEST_STRLEN], uint64_t *out_size, const char *path)
{
    int rc, fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return farm_error_set(errno == ENOENT ? FARM_ENOTFOUND : FARM_EIO, "cannot open %s: %s",
                              path, strerror(errno));
    rc = farm_digest_fd(out, out_size, fd, path);
    close(fd);
    return rc;
}

int farm_digest_valid(const char *s)
{
    if (!s || strncmp(s, "sha256:", 7) != 0)
        return 0;
    for (int i = 0; i < 64; i++) {
        char c = s[7 + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return s[71] == '\0';
}
