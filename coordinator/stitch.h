/* Verifies every child image in the registry and pushes the image index under each
 * tag. Blocking (HTTP): the coordinator runs it in a forked child. */
#ifndef FARM_STITCH_H
#define FARM_STITCH_H

#include <stddef.h>
#include <stdint.h>

#include "common/oci.h"

typedef struct {
    const char *registry;   /* host[:port] */
    const char *repository;
    int insecure;
    const farm_descriptor_t *children;
    size_t n_children;
    char *const *tags;      /* tag names only (no repository) */
    size_t n_tags;
} farm_stitch_req_t;

/* HEADs each child (digest, size and media type must match the report), composes
 * the OCI index and PUTs it under every tag. */
int farm_stitch_run(char out_digest[FARM_DIGEST_STRLEN], uint64_t *out_size,
                    const farm_stitch_req_t *req);

#endif
