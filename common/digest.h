/* SPDX-License-Identifier: Apache-2.0 */
/* sha256 content digests (OpenSSL 3 EVP), "sha256:<64 hex>". */
#ifndef FARM_DIGEST_H
#define FARM_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define FARM_DIGEST_STRLEN 72 /* "sha256:" + 64 hex + NUL */

typedef struct farm_sha256 farm_sha256_t;

farm_sha256_t *farm_sha256_new(void);
void farm_sha256_update(farm_sha256_t *self, const void *data, size_t len);
/* Writes "sha256:<hex>" into out. The object may not be updated afterwards. */
void farm_sha256_final(farm_sha256_t *self, char out[FARM_DIGEST_STRLEN]);
void farm_sha256_destroy(farm_sha256_t **self_p);

void farm_digest_buffer(char out[FARM_DIGEST_STRLEN], const void *data, size_t len);
/* Digest of a file's exact bytes; size optional. */
int farm_digest_file(char out[FARM_DIGEST_STRLEN], uint64_t *out_size, const char *path);
/* Digest of what is left to read on fd (read to EOF); name is for messages. */
int farm_digest_fd(char out[FARM_DIGEST_STRLEN], uint64_t *out_size, int fd, const char *name);
/* 1 if s is "sha256:" followed by exactly 64 lowercase hex digits. */
int farm_digest_valid(const char *s);

#endif
