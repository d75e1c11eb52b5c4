/* SPDX-License-Identifier: Apache-2.0 */
/* Sigstore signatures of the indexes farm pushes (common/sigstore.h has the payload, the
 * signature and the keys). Run in the `farm-coordinator stitch` helper, after the stitch
 * verified every child and pushed the index, once per repository the index went to:
 * for each identity (each tag: "registry/repository:tag"; with no tag, the index by
 * digest) the index and every manifest it lists are signed, as `cosign sign --recursive`
 * does, so that containers/image's policy check passes for the index and for each
 * platform image it copies or pulls. A signature goes into the `sha256-<hex>.sig`
 * manifest of the signed digest in the same repository, appended to the layers already
 * there (signatures made earlier, under other tags or by other keys, are kept); one that
 * is already there, with this key, is not added again. Blocking (HTTP). */
#ifndef FARM_COORD_SIGN_H
#define FARM_COORD_SIGN_H

#include <stddef.h>

#include <openssl/evp.h>

#include "common/digest.h"
#include "common/registry.h"
#include "common/wire.h"

/* What was signed, over every repository signed so far. */
typedef struct {
    char **identities;   /* allocated */
    size_t n_identities;
    unsigned manifests;  /* manifests signed per identity: the index and each it lists */
    char key_id[FARM_DIGEST_STRLEN];
    long long ms;        /* time spent signing */
} farm_sign_out_t;

void farm_sign_out_clear(farm_sign_out_t *out);

struct farm_build;
/* The coordinator's side: keeps what a helper given the signing key says it signed on the
 * build (b->signed_info), for BuildDone. A result that is ok but signed nothing, or not
 * with a sha256 key id, is refused (FARM_EINVALID): the build fails rather than report
 * an unsigned index as done. */
int farm_sign_keep(struct farm_build *b, const Farm__StitchResult *r);

/* Signs the index whose exact bytes are index_json, pushed to registry/repository under
 * tags (tag names; none: by digest only). Adds what it signed to out. */
int farm_sign_repository(farm_sign_out_t *out, farm_registry_t *reg, const char *registry,
                         const char *repository, const char *index_json, size_t index_len,
                         char *const *tags, size_t n_tags, EVP_PKEY *key);

/* --amend with a signing key: 0 when the image or attestation manifest digest, kept from
 * the index amended, carries a signature by key in registry/repository (a valid layer of
 * its sha256-<hex>.sig whose payload names digest and an identity in that repository):
 * farm signed it when it pushed it. Otherwise FARM_EAUTH, naming it: whoever put it
 * there, it was not this farm, and signing the amended index would vouch for it. */
int farm_sign_check_kept(farm_registry_t *reg, const char *registry, const char *repository,
                         const char *digest, EVP_PKEY *key);

#endif
