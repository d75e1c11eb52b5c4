/* SPDX-License-Identifier: Apache-2.0 */
/* Index pushes: the `farm-coordinator stitch` helper processes that verify a build's
 * children and push its image index, supervised here (their log and result pipes and a
 * deadline on the reactor), at most `parallel` at once, the others waiting their turn
 * oldest first. Per tag the submit order wins (coordinator/tagorder.h): two pushes of one
 * tag never run at once, and a tag a build submitted later already took is left to it
 * (the index is pushed by digest only, b->kept_by says which). Each ends in
 * farm_builds_finish. */
#ifndef FARM_COORD_PUSHES_H
#define FARM_COORD_PUSHES_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/platform.h"
#include "common/reactor.h"
#include "common/wire.h"
#include "coordinator/builds.h"
#include "coordinator/journal.h"

typedef struct farm_pushes farm_pushes_t;

typedef struct {
    size_t parallel;         /* helpers at once */
    long long timeout_ms;    /* a push that takes longer is stopped and the build fails */
    char *const *argv;       /* the helper; NULL: {"/proc/self/exe", "stitch"} */
    farm_journal_t *journal; /* keeps each tag's last build (borrowed); NULL: memory */
    /* coordinator.signing_key_file's PEM, read and checked at start (borrowed): every
     * index is signed with it (coordinator/sign.h); NULL: none */
    const char *signing_key_pem;
    size_t signing_key_len;
} farm_pushes_opts_t;

/* reactor, builds and cfg are borrowed and must outlive the object. */
farm_pushes_t *farm_pushes_new(farm_reactor_t *reactor, farm_builds_t *builds,
                               const farm_config_t *cfg, const farm_pushes_opts_t *opts);
/* Stops every helper (their builds are left as they are) and forgets the waiting ones. */
void farm_pushes_destroy(farm_pushes_t **self_p);
/* farm.yaml was reloaded: pushes started from now on use cfg's registries: settings. */
void farm_pushes_reload(farm_pushes_t *self, const farm_config_t *cfg);

/* Every job of b is done (the builds stitch callback): its push starts now, or when a
 * helper slot frees and no push of one of its tags runs (farm_pushes_start_waiting), so a
 * burst of finished builds never forks a burst of processes. */
void farm_pushes_request(farm_pushes_t *self, farm_build_t *b);
/* Starts waiting pushes, oldest first, while slots are free and their tags are not being
 * pushed (the turn-end hook). */
void farm_pushes_start_waiting(farm_pushes_t *self);
/* b is being freed: its helper, if any, is stopped (farm_builds_reap's free_fn). */
void farm_pushes_drop(farm_pushes_t *self, farm_build_t *b);
size_t farm_pushes_running(const farm_pushes_t *self);
size_t farm_pushes_waiting(const farm_pushes_t *self);

/* What BuildDone says of each child besides its descriptor, parallel to it. */
typedef struct {
    char **nodes;
    protobuf_c_boolean *warm;
    uint32_t *cache_hits, *steps;
} farm_children_extra_t;

/* The build's pushed images as wire descriptors (platform strings in plats, the rest in
 * extra if not NULL), for the helper's request and for BuildDone. Returns how many; the
 * arrays hold b->n_jobs entries. */
size_t farm_pushes_children(Farm__Descriptor *descs, Farm__Descriptor **dptrs,
                            char (*plats)[FARM_PLATFORM_STRLEN], const farm_build_t *b,
                            const farm_children_extra_t *extra);

#endif
