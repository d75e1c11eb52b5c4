/* SPDX-License-Identifier: Apache-2.0 */
/* What the agents hear and say: the JobAssign a job becomes (the build's logins and
 * farm.yaml's registry settings in it), JobCancel, a node's HELLO and the adoption of the
 * attempts it held through an outage, its results, logs, context reads and clock
 * questions, and the heartbeats that find a node lost. Each message is read into plain
 * values at its top and answered through a send function the coordinator gives (the
 * socket stays there), so the unit tests need no sockets. */
#ifndef FARM_COORD_AGENTS_H
#define FARM_COORD_AGENTS_H

#include <stddef.h>

#include "common/config.h"
#include "common/wire.h"
#include "coordinator/builds.h"
#include "coordinator/ctxstore.h"
#include "coordinator/nodes.h"
#include "coordinator/parts.h"
#include "coordinator/scheduler.h"
#include "coordinator/timeserve.h"

/* Sends env (its version set) to the peer at rid on the agents' endpoint; < 0
 * (FARM_ENOTFOUND: the connection is gone) with the error slot set when it could not. */
typedef int (*farm_agents_send_fn)(void *arg, const void *rid, size_t rid_len,
                                   Farm__Envelope *env);

typedef struct farm_agents farm_agents_t;

/* The parts (copied), timeserve and what they point to are borrowed and must outlive the
 * object. */
farm_agents_t *farm_agents_new(const farm_coord_parts_t *parts, farm_timeserve_t *timeserve,
                               farm_agents_send_fn send, void *arg);
void farm_agents_destroy(farm_agents_t **self_p);

/* One message from the connection rid at the agents' endpoint, authenticated as user
 * ("" without keys). */
void farm_agents_message(farm_agents_t *self, const void *rid, size_t rid_len,
                         const char *user, const Farm__Envelope *env);

/* The scheduler's callbacks: send job to node (a node found gone is lost, its jobs
 * queued again); cancel job's attempt on node. */
void farm_agents_assign(farm_agents_t *self, farm_job_t *job, farm_node_t *node);
void farm_agents_cancel(farm_agents_t *self, farm_job_t *job, farm_node_t *node,
                        const char *reason);

/* farm.yaml was reloaded: cfg replaces the parts' config (borrowed likewise). */
void farm_agents_reload(farm_agents_t *self, const farm_config_t *cfg);
/* A node a reload removed has finished what it ran: its agent is told why (a Reject, as
 * an unknown node's HELLO is) and the node is lost, its session forgotten. */
void farm_agents_forget(farm_agents_t *self, farm_node_t *node, const char *reason);

/* The heartbeat: nodes silent for `liveness` beats are lost, the others hear from us. */
void farm_agents_beat(farm_agents_t *self, long long now);

#endif
