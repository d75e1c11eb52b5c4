/* SPDX-License-Identifier: Apache-2.0 */
/* The coordinator's parts that its message handlers (clients, agents) borrow: one value
 * record, so each handler module holds the same set and the coordinator fills it once. */
#ifndef FARM_COORD_PARTS_H
#define FARM_COORD_PARTS_H

#include "common/config.h"
#include "coordinator/builds.h"
#include "coordinator/ctxstore.h"
#include "coordinator/journal.h"
#include "coordinator/nodes.h"
#include "coordinator/scheduler.h"

typedef struct {
    const farm_config_t *cfg;
    farm_nodes_t *nodes;
    farm_scheduler_t *sched;
    farm_builds_t *builds;
    farm_ctxstore_t *ctx;
    farm_journal_t *journal; /* NULL in unit tests: nothing written */
    struct farm_cachecmd *cachecmd; /* farmctl du and prune (NULL: refused) */
} farm_coord_parts_t;

#endif
