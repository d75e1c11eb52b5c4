/* SPDX-License-Identifier: Apache-2.0 */
/* The warm-node memory across restarts: STATE_DIR/warm.json, restored at start and
 * rewritten when it changed, at most every FARM_WARMFILE_SAVE_MS while running (and once
 * more at shutdown). A file that cannot be read or written costs warm placement, never
 * the coordinator: it is logged (a failing save once, until one works again). */
#ifndef FARM_COORD_WARMFILE_H
#define FARM_COORD_WARMFILE_H

#include "common/config.h"
#include "coordinator/warm.h"

#define FARM_WARMFILE_SAVE_MS 5000

typedef struct farm_warmfile farm_warmfile_t;

/* path: the file; warm and cfg (its nodes name the indexes) are borrowed. */
farm_warmfile_t *farm_warmfile_new(const char *path, farm_warm_t *warm,
                                   const farm_config_t *cfg);
void farm_warmfile_destroy(farm_warmfile_t **self_p);
/* The node names by node index from now on (the node table's, after a reload appended
 * to it): names are borrowed, the array copied. */
int farm_warmfile_names(farm_warmfile_t *self, const char *const *names, size_t n);

/* Removes temp files an earlier run left and adds what the file holds to warm. Returns
 * the keys restored, or < 0 when the file could not be read (logged; warm unchanged). */
int farm_warmfile_restore(farm_warmfile_t *self);
/* Saves when warm changed since the last save and, unless force, the last save is
 * FARM_WARMFILE_SAVE_MS before now. 1 saved, 0 nothing to do, < 0 failed (logged). */
int farm_warmfile_save(farm_warmfile_t *self, long long now, int force);

#endif
