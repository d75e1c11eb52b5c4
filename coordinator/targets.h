/* SPDX-License-Identifier: Apache-2.0 */
/* The repositories a build's tags name. `farmctl submit -t reg1/a:1 -t reg2/b:1` pushes
 * every platform image to each repository and puts the index under each tag there; the
 * first tag's repository is the build's own (b->registry/b->repository, targets[0]).
 * Plain values: the submit's references in, b->tags (names), b->tag_target, b->tag_refs
 * and b->targets out. */
#ifndef FARM_COORD_TARGETS_H
#define FARM_COORD_TARGETS_H

#include <stddef.h>

#include "common/config.h"
#include "common/wire.h"
#include "coordinator/job.h"
#include "coordinator/stitch.h"

/* Fills the build's tags and repositories from references ("registry/repository:tag").
 * A reference given twice counts once; a digest, an over-long or unparsable one is
 * refused with the reference named (FARM_EINVALID; the message in err). The build must
 * have no tags yet. */
int farm_targets_fill(farm_build_t *b, char *const *refs, size_t n, char *err, size_t len);
/* A build with its tag names filled and b->registry/b->repository set (a journal record
 * of one repository): one target, every tag in it. */
int farm_targets_single(farm_build_t *b);
/* The repository of tag i. */
const farm_target_t *farm_targets_of(const farm_build_t *b, size_t i);
/* Frees what the two above allocated, tags included. */
void farm_targets_free(farm_build_t *b);

/* The build's other repositories (targets 1...) as the wire carries them: JobAssign's
 * (registry, repository, insecure), or with for_stitch the StitchRequest's, which add
 * the submitter's login for each registry and farm.yaml's settings. Pointers borrow from
 * b and cfg; farm_targets_wire_free frees only the arrays. */
typedef struct {
    Farm__MultirepoTarget *t;
    Farm__MultirepoTarget **ptrs;
    Farm__RegistryCredential *creds;
    size_t n;
} farm_targets_wire_t;
int farm_targets_to_wire(farm_targets_wire_t *out, const farm_build_t *b,
                         const farm_config_t *cfg, int for_stitch);
void farm_targets_wire_free(farm_targets_wire_t *w);

/* The stitch helper's side: req's targets and tag_targets into sr (checked: as many
 * tag_targets as tags, or none; each names a repository of the request). *out and
 * *out_creds are allocated (free them); strings are borrowed from req. */
int farm_targets_from_stitch(farm_stitch_target_t **out, farm_registry_creds_t **out_creds,
                             farm_stitch_req_t *sr, const Farm__StitchRequest *req);

#endif
