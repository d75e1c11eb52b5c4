/* SPDX-License-Identifier: Apache-2.0 */
/* farm-coordinator: the farm (nodes, liveness, slots), the job queue per platform and
 * the builds. One reactor: zmq_poll over the agent and client ROUTERs and the stitch
 * children's pipes, timers on the monotonic clock. Never builds anything itself. */
#ifndef FARM_COORDINATOR_H
#define FARM_COORDINATOR_H

#include "common/config.h"

typedef struct farm_coordinator farm_coordinator_t;

/* Takes ownership of *cfg_p. Binds both endpoints; NULL with farm_error_last() set. */
farm_coordinator_t *farm_coordinator_new(farm_config_t **cfg_p);
void farm_coordinator_destroy(farm_coordinator_t **self_p);

/* Runs the reactor until *stop becomes non-zero (set from a signal handler). */
int farm_coordinator_run(farm_coordinator_t *self, volatile int *stop);

#endif
