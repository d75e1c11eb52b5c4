/* SPDX-License-Identifier: Apache-2.0 */
/* Registry authentication: WWW-Authenticate challenges, docker config.json credentials,
 * and the per-registry state machine (anonymous -> Basic or Bearer, tokens per scope)
 * the registry client asks for an Authorization header before each request. */
#ifndef FARM_REGISTRY_AUTH_H
#define FARM_REGISTRY_AUTH_H

#include <stddef.h>

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

/* --- The state machine --- */

typedef struct farm_registry_auth farm_registry_auth_t;

/* One request to the token server, which the registry client sends for the state
 * machine (it owns the connection, the retries and the registry's error text). */
typedef struct {
    const char *method;       /* "GET" or "POST" */
    const char *url;
    const char *authz;        /* "Authorization: Basic ..." line, or NULL */
    const char *content_type; /* POST only */
    const void *body;         /* POST only */
    size_t body_len;
} farm_registry_token_req_t;

/* Sends req. 0 with *out_status 200, 401 or 403 and the body (malloc'd, NUL-terminated;
 * the caller wipes and frees it); < 0 with the error set for a failed exchange or any
 * other status. */
typedef int (*farm_registry_token_send_fn)(void *arg, const farm_registry_token_req_t *req,
                                           long *out_status, char **out_body, size_t *out_len);

/* host as the caller named it ("docker.io"), api_host what is connected to
 * ("registry-1.docker.io"); insecure allows an http:// token realm; docker_config as for
 * farm_registry_credentials_lookup (NULL: the default places). Credentials are looked
 * up on the first challenge, not before. */
farm_registry_auth_t *farm_registry_auth_new(const char *host, const char *api_host,
                                             int insecure, const char *docker_config,
                                             farm_registry_token_send_fn send, void *send_arg);
/* Wipes credentials and tokens. */
void farm_registry_auth_destroy(farm_registry_auth_t **self_p);
/* Use creds (copied; NULL: anonymous) and never look in a docker config. Call before
 * the first request. */
int farm_registry_auth_set_creds(farm_registry_auth_t *self, const farm_registry_creds_t *creds);

/* The "Authorization: ..." line for a request to url about repository repo (NULL for
 * /v2/) needing push if push, fetching a Bearer token for that scope when none is
 * cached or it expired. *out is NULL when no header is due (anonymous, or url is not on
 * api_host: credentials never go to another host). The caller wipes and frees *out. */
int farm_registry_auth_header(farm_registry_auth_t *self, char **out, const char *url,
                              const char *repo, int push);

/* A 401 with WWW-Authenticate value www_auth answered a request about repo: learns the
 * scheme (Basic needs credentials; Bearer drops the token that was refused). 0 means
 * retry the request once; FARM_EAUTH with a message saying what to do otherwise. */
int farm_registry_auth_challenge(farm_registry_auth_t *self, const char *www_auth,
                                 const char *repo, int push);

#endif
