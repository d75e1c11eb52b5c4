/* SPDX-License-Identifier: Apache-2.0 */
/* Sigstore signatures of images, as cosign stores them and containers/image (podman,
 * skopeo) verifies them with a `sigstoreSigned` policy and a public key:
 *  - the payload is "simple signing" JSON whose critical part names the manifest digest
 *    and the identity (a docker reference with a tag or a digest);
 *  - the signature is ECDSA P-256 over SHA-256 of the payload's exact bytes, DER, base64;
 *  - both live in the image's repository under the tag `sha256-<hex>.sig`: an OCI image
 *    manifest whose layers are the payloads (media type FARM_SIGSTORE_PAYLOAD_TYPE), each
 *    with its signature in the annotation FARM_SIGSTORE_ANNOTATION.
 * Keys are PEM: the private key PKCS#8 or SEC1, mode 0600 and the user's own; the public
 * key SubjectPublicKeyInfo ("PUBLIC KEY"), as cosign's and containers/image's keyPath. */
#ifndef FARM_SIGSTORE_H
#define FARM_SIGSTORE_H

#include <stddef.h>

#include <openssl/evp.h>

#include "common/digest.h"
#include "common/limits.h" /* FARM_SIGSTORE_PAYLOAD_MAX, _KEY_MAX, _LAYERS_MAX */

#define FARM_SIGSTORE_PAYLOAD_TYPE "application/vnd.dev.cosign.simplesigning.v1+json"
#define FARM_SIGSTORE_ANNOTATION "dev.cosignproject.cosign/signature"
#define FARM_SIGSTORE_SIG_TYPE "cosign container image signature"
/* "sha256-" + 64 hex + ".sig" */
#define FARM_SIGSTORE_TAG_LEN (7 + 64 + 4 + 1)
/* the longest identity: a reference with a tag and a digest */
#define FARM_SIGSTORE_IDENTITY_MAX 1024

/* Reads a private key file: a regular file of this user's, not readable by group or
 * others, holding a PEM EC P-256 key. *out_pem gets its bytes (the caller wipes and frees
 * them) so that a helper can be handed the key without reading the file. Every refusal
 * names the file and the fix. */
int farm_sigstore_key_read(char **out_pem, size_t *out_len, const char *path);
/* A PEM private key from memory; must be EC P-256. what names it in messages. */
int farm_sigstore_key_parse(EVP_PKEY **out, const void *pem, size_t len, const char *what);
/* A PEM public key ("PUBLIC KEY") from a file; must be EC P-256. */
int farm_sigstore_pub_load(EVP_PKEY **out, const char *path);
/* The public half of key as PEM (SubjectPublicKeyInfo), NUL-terminated. */
int farm_sigstore_pub_pem(char **out, size_t *out_len, EVP_PKEY *key);
/* "sha256:<hex>" over the public key's DER SubjectPublicKeyInfo: names the key. */
int farm_sigstore_key_id(char out[FARM_DIGEST_STRLEN], EVP_PKEY *key);
/* A new EC P-256 key written to key_path (PKCS#8 PEM, mode 0600) and its public key to
 * pub_path; both created exclusively: an existing file is never overwritten. */
int farm_sigstore_keygen(const char *key_path, const char *pub_path);

/* The tag the signatures of digest live under: "sha256-<hex>.sig". */
int farm_sigstore_tag(char out[FARM_SIGSTORE_TAG_LEN], const char *digest);
/* The payload for (identity, manifest digest): compact JSON, keys sorted, so the same
 * pair always gives the same bytes. creator may be NULL. */
int farm_sigstore_payload(char **out, size_t *out_len, const char *identity,
                          const char *digest, const char *creator);
/* Parses a payload as containers/image does (exactly the critical fields it names, the
 * type, a sha256 digest); gives the identity and the digest. */
int farm_sigstore_payload_parse(char out_identity[FARM_SIGSTORE_IDENTITY_MAX],
                                char out_digest[FARM_DIGEST_STRLEN], const void *payload,
                                size_t len);
/* base64 of the ECDSA-SHA256 DER signature of the payload's bytes, NUL-terminated. */
int farm_sigstore_sign(char **out_b64, EVP_PKEY *key, const void *payload, size_t len);
/* 0 when b64 is pub's signature of the payload; FARM_EAUTH when it is not. */
int farm_sigstore_verify(EVP_PKEY *pub, const void *payload, size_t len, const char *b64);
/* containers/image's default signedIdentity, matchRepoDigestOrExact: ref (what the user
 * asked for) with a tag needs an identity equal to it; with only a digest, an identity
 * of the same repository. Both are normalised (docker.io/library/...). An identity with
 * neither tag nor digest never matches. 1 match, 0 not. */
int farm_sigstore_identity_matches(const char *identity, const char *ref);

#endif
