/* Verifies every child image in the registry and pushes the image index under each
 * tag. Blocking (HTTP): it runs in the helper program `farm-coordinator stitch`, which
 * the coordinator starts with fork+exec (common/child.h). */
#ifndef FARM_STITCH_H
#define FARM_STITCH_H

#include <stddef.h>
#include <stdint.h>

#include "common/oci.h"
#include "common/registry_auth.h"

typedef struct {
    const char *registry;   /* host[:port] */
    const char *repository;
    int insecure;
    const farm_descriptor_t *children;
    size_t n_children;
    char *const *tags;      /* tag names only (no repository) */
    size_t n_tags;
    const farm_registry_creds_t *creds; /* the submitter's login for registry, or NULL */
    int farm_credentials;   /* no creds: may use the coordinator's docker config (farm.yaml) */
    const char *ca_pem;     /* registries.HOST.ca bytes, or NULL */
    size_t ca_pem_len;
} farm_stitch_req_t;

/* HEADs each child (digest, size and media type must match the report), composes
 * the OCI index and PUTs it under every tag. */
int farm_stitch_run(char out_digest[FARM_DIGEST_STRLEN], uint64_t *out_size,
                    const farm_stitch_req_t *req);

/* The helper program: a Farm__StitchRequest on fd 3, a Farm__StitchResult on fd 4.
 * Returns the exit status. */
int farm_stitch_main(void);

#endif
