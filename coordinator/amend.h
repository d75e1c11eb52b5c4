/* SPDX-License-Identifier: Apache-2.0 */
/* `farmctl submit --amend --platform P -t REF`: rebuild only P and push a new index that
 * keeps every other platform of the index now under REF. Plain values: the old index's
 * bytes and the new children's index in, the merged index and what it keeps out. The
 * stitch (coordinator/stitch.c) reads the old index from the registry and checks every
 * kept child there as it checks new ones, before anything is pushed. */
#ifndef FARM_COORD_AMEND_H
#define FARM_COORD_AMEND_H

#include <stddef.h>

#include <openssl/evp.h>

#include "common/oci.h"
#include "coordinator/stitch.h"

/* An entry of the old index the new one keeps: an image of a platform not rebuilt, or an
 * attestation manifest (platform unknown/unknown, annotation
 * vnd.docker.reference.digest) that names a kept image. */
typedef struct {
    farm_descriptor_t d;   /* attestation: platform empty */
    int attestation;
    size_t entry;          /* its place in the old index (0-based), for messages */
} farm_amend_kept_t;

#define FARM_AMEND_ENTRIES_MAX 256 /* entries of an index to amend */

/* Merges: every entry of the old index (old, old_len: the bytes served for REF, served
 * its Content-Type) whose platform none of the new index's images has is kept in its
 * place, an image of a rebuilt platform is replaced there by the new one, new platforms
 * follow; attestation entries are kept when they reference a kept image and dropped when
 * they referenced a replaced one (the new index's own come with it). The old index's
 * annotations are kept, the new index's override them. ref names REF in messages.
 * FARM_ENOTFOUND-free: refuses (FARM_EINVALID, the message names REF and the entry) a
 * single image, bytes that are no index, an entry without a platform, over
 * FARM_AMEND_ENTRIES_MAX entries. out_kept (malloc'd, *out_n_kept entries): what to
 * check in the registry. */
int farm_amend_merge(char **out_json, size_t *out_len, farm_amend_kept_t **out_kept,
                     size_t *out_n_kept, const char *ref, const char *served_type,
                     const char *old, size_t old_len, const char *new_json, size_t new_len);

/* In the stitch, after the new children were checked and composed (json, len): reads the
 * index under tag in the build's repository (regs[0], t[0]; FARM_ENOTFOUND: nothing
 * there), merges (farm_amend_merge), checks every kept image in each repository with
 * farm_stitch_verify_child against what its index entry claims (digest, size, media type,
 * the config's platform) and every kept attestation manifest by digest, size and media
 * type; a lying entry is refused, named. With signing_key (the index will be signed),
 * every kept manifest must carry this farm's signature (farm_sign_check_kept): a kept
 * entry someone else pushed would otherwise be signed as farm's. Then json is the merged
 * index and out_kept (malloc'd) the images kept. */
int farm_amend_stitch(char **json, size_t *len, farm_descriptor_t **out_kept,
                      size_t *out_n_kept, farm_registry_t *const *regs,
                      const farm_stitch_target_t *t, size_t n_repos, const char *tag,
                      EVP_PKEY *signing_key);

#endif
