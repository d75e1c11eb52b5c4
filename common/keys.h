/* SPDX-License-Identifier: Apache-2.0 */
/* CURVE key pairs (ZeroMQ's Z85 text form, 40 characters per key) and the files that hold
 * them. A key file is what `farmctl keygen` writes:
 *     # farm CURVE key pair ... keep this file secret
 *     public-key = <40 characters>
 *     secret-key = <40 characters>
 * and NAME.pub beside it holds only the public-key line, for farm.yaml. A secret key file
 * that group or others may read is refused (ssh does the same). */
#ifndef FARM_KEYS_H
#define FARM_KEYS_H

#include <stdint.h>

#define FARM_KEY_Z85_LEN 40

typedef struct {
    char public_key[FARM_KEY_Z85_LEN + 1];
    char secret_key[FARM_KEY_Z85_LEN + 1];
} farm_keypair_t;

/* 1 when s is a well-formed Z85 key (40 characters that decode to 32 bytes). */
int farm_key_valid(const char *s);
/* Decodes a Z85 key into its 32 bytes. */
int farm_key_decode(uint8_t out[32], const char *z85);
/* Encodes 32 bytes as Z85. */
void farm_key_encode(char out[FARM_KEY_Z85_LEN + 1], const uint8_t key[32]);

int farm_key_generate(farm_keypair_t *out);
/* Writes the key pair to secret_path (mode 0600) and the public key to public_path,
 * both created exclusively: an existing key is never overwritten. comment names the
 * owner in the files. */
int farm_key_write(const char *secret_path, const char *public_path, const farm_keypair_t *kp,
                   const char *comment);
/* Reads a key pair file; refuses one group or others may read, or whose public and
 * secret keys do not belong together. */
int farm_key_load(farm_keypair_t *out, const char *path);
/* A public key given as Z85 text or as a file holding a "public-key =" line. */
int farm_key_load_public(char out[FARM_KEY_Z85_LEN + 1], const char *text_or_path);
/* Overwrites the secret key in memory. */
void farm_key_wipe(farm_keypair_t *kp);

#endif
