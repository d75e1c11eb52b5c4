/* OCI distribution client (libcurl + OpenSSL + jansson).
 * Auth: anonymous, Basic, Bearer tokens from WWW-Authenticate challenges; credentials
 * from the docker config.json (auths, credHelpers, credsStore). Retries 408/429/5xx and
 * connection errors with exponential backoff + jitter (Retry-After honoured, capped).
 * Blocking calls: run them in a child process or thread, never in a reactor. */
#ifndef FARM_REGISTRY_H
#define FARM_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "common/digest.h"

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
} farm_registry_opts_t;

/* host is "localhost:5000" or "docker.io" (mapped to registry-1.docker.io). opts may be NULL. */
farm_registry_t *farm_registry_new(const char *host, const farm_registry_opts_t *opts);
void farm_registry_destroy(farm_registry_t **self_p);

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

/* Downloads a blob into memory (bounded by max bytes); digest verified. */
int farm_registry_blob_get(farm_registry_t *self, char **out_body, size_t *out_len,
                           const char *repo, const char *digest, size_t max);

/* PUT /v2/<repo>/manifests/<ref> with Content-Type media_type. out_digest (may be
 * NULL) receives sha256 over the exact bytes. ref is a tag or a digest. */
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

/* --- Auth building blocks (exposed so they can be tested on their own) --- */

/* One parsed WWW-Authenticate challenge (RFC 7235; distribution token spec). */
typedef struct {
    char scheme[16];   /* "Bearer" or "Basic" (as sent; compare case-insensitively) */
    char realm[1024];  /* token endpoint for Bearer, a label for Basic */
    char service[256];
    char scope[1024];  /* may be "" */
    char error[64];    /* e.g. "insufficient_scope", may be "" */
} farm_auth_challenge_t;

/* Parses a WWW-Authenticate value (possibly several challenges, comma separated;
 * quoted values may hold commas and \-escapes). Picks Bearer over Basic over others.
 * FARM_EINVALID if nothing usable is in it or a value does not fit. */
int farm_registry_parse_challenge(farm_auth_challenge_t *out, const char *header);

/* Credentials for one registry host. secret is a password or, when identity_token is
 * set, an OAuth2 refresh token (docker's "identitytoken" / helper Username "<token>"). */
typedef struct {
    char *username;
    char *secret;
    int identity_token;
} farm_registry_creds_t;

/* Looks host ("localhost:5000", "docker.io", ...) up in a docker config.json:
 * credHelpers[host], then credsStore, then auths (keys may carry https:// and /v1/).
 * Helpers run as `docker-credential-NAME get` (server on stdin, never in argv).
 * config_path NULL: $DOCKER_CONFIG/config.json, then ~/.docker/config.json.
 * 0 found, FARM_ENOTFOUND if there is no file or no entry, < 0 on error. */
int farm_registry_credentials_lookup(farm_registry_creds_t *out, const char *config_path,
                                     const char *host);
/* Wipes and frees what lookup filled in; safe on a zeroed or cleared struct. */
void farm_registry_creds_clear(farm_registry_creds_t *creds);

#endif
