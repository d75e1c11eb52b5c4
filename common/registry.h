/* SPDX-License-Identifier: Apache-2.0 */
/* OCI distribution client (libcurl + OpenSSL + jansson).
 * Auth (common/registry_auth.h): anonymous, Basic, Bearer tokens from WWW-Authenticate
 * challenges; credentials from the docker config.json (auths, credHelpers, credsStore).
 * Retries 408/429/5xx and connection errors with exponential backoff + jitter
 * (Retry-After honoured, capped).
 * Blocking calls: run them in a child process or thread, never in a reactor. */
#ifndef FARM_REGISTRY_H
#define FARM_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "common/digest.h"
#include "common/registry_auth.h"

#define FARM_MEDIA_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define FARM_MEDIA_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define FARM_MEDIA_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define FARM_MEDIA_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define FARM_MANIFEST_MAX (4u << 20) /* 4 MiB */

typedef struct farm_registry farm_registry_t;

typedef struct {
    int insecure;              /* allow plain HTTP (only for hosts farm.yaml marks insecure) */
    const char *docker_config; /* path to config.json; NULL: $DOCKER_CONFIG/config.json, then ~/.docker/config.json */
    int max_retries;           /* 0: default (5) */
    long timeout_s;            /* per request; 0: default (300) */
    /* Whose login: with explicit set, creds (may be NULL: anonymous) and never a docker
     * config (a build pushes with its submitter's login, not the host's); otherwise the
     * docker config above. creds are copied. */
    int explicit_creds;
    const farm_registry_creds_t *creds;
    const char *ca_pem;        /* private CA bundle (PEM) trusted instead of the system's */
    size_t ca_pem_len;
} farm_registry_opts_t;

/* host is "localhost:5000" or "docker.io" (mapped to registry-1.docker.io). opts may be NULL. */
farm_registry_t *farm_registry_new(const char *host, const farm_registry_opts_t *opts);
void farm_registry_destroy(farm_registry_t **self_p);
/* Requests retried (a transfer error or a retryable status) by every registry client of
 * this process so far: the index-push helper reports it for the coordinator's metrics. */
unsigned long farm_registry_retries_total(void);

/* GET /v2/ and run the auth dance if challenged. */
int farm_registry_ping(farm_registry_t *self);

/* 0 if the blob exists (size set if not NULL), FARM_ENOTFOUND if not, < 0 on error. */
int farm_registry_blob_exists(farm_registry_t *self, uint64_t *out_size, const char *repo,
                              const char *digest);

/* Uploads a file as the blob `digest` (HEAD first: skips what exists; POST + PUT
 * ?digest=). The digest is recomputed over the file's bytes and must match. *out_skipped
 * (may be NULL) is set to 1 if the blob was already there. */
int farm_registry_blob_push_file(farm_registry_t *self, int *out_skipped, const char *repo,
                                 const char *digest, const char *path);

/* The same for bytes in memory (a signature, an attestation): through a memfd, which
 * the upload reads as a file. */
int farm_registry_blob_push_mem(farm_registry_t *self, int *out_skipped, const char *repo,
                                const char *digest, const void *data, size_t len);

/* Cross-repository mount (POST /v2/repo/blobs/uploads/?mount=digest&from=from): the
 * registry links a blob it holds in from into repo without the bytes travelling again.
 * 0 with *out_mounted 1 when it did, 0 with 0 when it declined (push the blob instead),
 * < 0 on error. */
int farm_registry_blob_mount(farm_registry_t *self, int *out_mounted, const char *repo,
                            const char *digest, const char *from);

/* Downloads a blob into memory (bounded by max bytes); digest verified. */
int farm_registry_blob_get(farm_registry_t *self, char **out_body, size_t *out_len,
                           const char *repo, const char *digest, size_t max);

/* PUT /v2/<repo>/manifests/<ref> with Content-Type media_type. out_digest (may be
 * NULL) receives sha256 over the exact bytes. ref is a tag or a digest. FARM_ENOTFOUND
 * when the registry says a blob the manifest names is unknown (MANIFEST_BLOB_UNKNOWN). */
int farm_registry_manifest_put(farm_registry_t *self, char out_digest[FARM_DIGEST_STRLEN],
                               const char *repo, const char *ref, const char *media_type,
                               const void *body, size_t len);

/* HEAD /v2/<repo>/manifests/<ref>; FARM_ENOTFOUND if absent. Each out may be NULL. */
int farm_registry_manifest_head(farm_registry_t *self, char out_digest[FARM_DIGEST_STRLEN],
                                uint64_t *out_size, char *out_media_type, size_t mt_len,
                                const char *repo, const char *ref);

/* GET with every manifest type in Accept; body is NUL-terminated, bounded by 4 MiB. */
int farm_registry_manifest_get(farm_registry_t *self, char **out_body, size_t *out_len,
                               char *out_media_type, size_t mt_len, const char *repo,
                               const char *ref);

#endif
