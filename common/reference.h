/* SPDX-License-Identifier: Apache-2.0 */
/* Image references, normalised as docker/distribution does:
 * "alpine" -> docker.io/library/alpine:latest; "localhost:5000/a/b:t";
 * "r.io/a/b@sha256:..."; a first component with '.' or ':' or "localhost" is a registry. */
#ifndef FARM_REFERENCE_H
#define FARM_REFERENCE_H

#include <stddef.h>

typedef struct {
    char registry[256];   /* "docker.io", "localhost:5000" */
    char repository[256]; /* "library/alpine", "team/app" */
    char tag[129];        /* "" when only a digest was given; "latest" when neither */
    char digest[80];      /* "" or "sha256:..." */
} farm_reference_t;

int farm_reference_parse(farm_reference_t *out, const char *s);
/* "registry/repository[:tag][@digest]"; FARM_ETOOBIG (buf "") if it does not fit.
 * FARM_REFERENCE_MAX (common/limits.h) holds every parsed reference. */
int farm_reference_format(char *buf, size_t len, const farm_reference_t *r);
/* The host to talk HTTP to: "registry-1.docker.io" for docker.io, else registry. */
const char *farm_reference_api_host(const farm_reference_t *r);

#endif
