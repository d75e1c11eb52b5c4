/* SPDX-License-Identifier: Apache-2.0 */
/* Verifies every child image in the registry and pushes the image index under each
 * tag. Blocking (HTTP): it runs in the helper program `farm-coordinator stitch`, which
 * the coordinator starts with fork+exec (common/child.h). */
#ifndef FARM_STITCH_H
#define FARM_STITCH_H

#include <stddef.h>
#include <stdint.h>

#include "common/oci.h"
#include "common/registry_auth.h"
#include "coordinator/sign.h"

/* One more repository the index goes to (the build's tags name several). */
typedef struct {
    const char *registry;
    const char *repository;
    int insecure;
    const farm_registry_creds_t *creds;
    int farm_credentials;
    const char *ca_pem;
    size_t ca_pem_len;
} farm_stitch_target_t;

typedef struct {
    const char *registry;   /* host[:port] */
    const char *repository;
    int insecure;
    const farm_descriptor_t *children;
    size_t n_children;
    char *const *tags;      /* tag names only (no repository); none: pushed by digest */
    size_t n_tags;
    const farm_registry_creds_t *creds; /* the submitter's login for registry, or NULL */
    int farm_credentials;   /* no creds: may use the coordinator's docker config (farm.yaml) */
    const char *ca_pem;     /* registries.HOST.ca bytes, or NULL */
    size_t ca_pem_len;
    const char *const *ann_keys;   /* the index's annotations (--annotation index:K=V) */
    const char *const *ann_values;
    size_t n_ann;
    EVP_PKEY *signing_key;        /* sign the pushed index (coordinator/sign.h), or NULL */
    farm_sign_out_t *signed_out;  /* with signing_key: what was signed */
    /* the other repositories: tags[i] goes to targets[tag_targets[i] - 1], or to
     * registry/repository above when tag_targets is NULL or tag_targets[i] is 0 */
    const farm_stitch_target_t *targets;
    size_t n_targets;
    const uint32_t *tag_targets;
    /* --amend: the tag in registry/repository whose index this one amends (NULL: none) */
    const char *amend_tag;
} farm_stitch_req_t;

/* out_kept (--amend; malloc'd, may be NULL with 0): the images kept from the amended
 * index. */
/* Reads each child's manifest (by digest) and image config from the build's repository
 * and checks them (farm_stitch_check_child), composes the OCI index and PUTs it under
 * every tag, or by its digest when there is no tag (the tag order kept them all).
 * With other repositories: the children are checked in each and the index PUT by digest
 * to each before any tag moves, so a repository that fails moves no tag anywhere. Then,
 * with a signing key, it signs the index in each repository (farm_sign_repository):
 * only an index whose every child was verified is signed, and a failure before the push
 * signs nothing.
 * out_tried: how many of req->tags, in order, a PUT was sent for, so a failure says
 * which tags it cannot have moved. */
int farm_stitch_run(char out_digest[FARM_DIGEST_STRLEN], uint64_t *out_size,
                    size_t *out_tried, farm_descriptor_t **out_kept, size_t *out_n_kept,
                    const farm_stitch_req_t *req);
/* The check of one child in one repository (registry, repository of t): the manifest by
 * digest and its config, against what expect says (farm_stitch_check_child). */
int farm_stitch_verify_child(farm_registry_t *reg, const farm_stitch_target_t *t,
                             const farm_descriptor_t *expect);

/* Image configs are read into memory for the check: bounded like the agent's. */
#define FARM_STITCH_CONFIG_MAX (8u << 20)

/* What the registry serves for one child, against the descriptor the coordinator holds
 * (the digest, size and media type the node reported; the platform of its job). Messages
 * name the platform, the digest and what differed; FARM_ETOOBIG over a bound.
 *
 * farm_stitch_check_manifest: man is the manifest's exact bytes (served_type: the
 * Content-Type it came with, may be NULL). Its sha256 must be the digest, its length the
 * size, its media type the reported one, and it must be an image manifest, not an index.
 * Gives the config descriptor's digest and size. */
int farm_stitch_check_manifest(char out_cfg_digest[FARM_DIGEST_STRLEN], uint64_t *out_cfg_size,
                               const farm_descriptor_t *expect, const char *served_type,
                               const char *man, size_t man_len);
/* cfg is the config blob's exact bytes: sha256 and length must match the manifest's
 * config descriptor, and its os/architecture/variant must normalise to expect->platform. */
int farm_stitch_check_config(const farm_descriptor_t *expect, const char *cfg_digest,
                             uint64_t cfg_size, const char *cfg, size_t cfg_len);
/* Both of the above, for a manifest and the config it names. */
int farm_stitch_check_child(const farm_descriptor_t *expect, const char *served_type,
                            const char *man, size_t man_len, const char *cfg, size_t cfg_len);

/* The helper program: a Farm__StitchRequest on fd 3, a Farm__StitchResult on fd 4.
 * Returns the exit status. */
int farm_stitch_main(void);

#endif
