/* SPDX-License-Identifier: Apache-2.0 */
/* farm.yaml re-read without a restart (SIGHUP, systemctl reload). The file is checked
 * whole first: an invalid one, or one that changes a setting only a restart can take
 * (farm_config_reload_check), is refused and logged, and the config in force stays.
 * Otherwise every part that borrows the config moves to the new one in one turn, and
 * the old one is freed: nothing keeps pointing into it (the node table holds its own
 * copy of each node's entry, jobs and nodes hold platform indexes that are mapped by the
 * platform's name, the key index is rebuilt). What running builds do goes on; nodes,
 * clients, keys, roles, registries and timeouts apply to the next request, job or push.
 *   - a node removed finishes what it runs, takes nothing new, and is forgotten once
 *     idle: its agent is told why (as an unknown node is); a node added may say HELLO;
 *     a connected node whose key changed is lost at once (its session was made with the
 *     old key; its jobs go elsewhere) and its agent told why;
 *   - a platform removed: its queued and running jobs fail, the reason naming the
 *     reload (their nodes are told to stop); a platform added starts with an empty
 *     queue and takes nodes at their next HELLO. */
#ifndef FARM_COORD_RELOAD_H
#define FARM_COORD_RELOAD_H

#include "common/config.h"
#include "coordinator/agents.h"
#include "coordinator/builds.h"
#include "coordinator/clients.h"
#include "coordinator/enrolled.h"
#include "coordinator/nodes.h"
#include "coordinator/pushes.h"
#include "coordinator/scheduler.h"
#include "coordinator/warmfile.h"

/* The coordinator's parts a reload touches (borrowed; cfg and enrolled are replaced). */
typedef struct {
    farm_config_t **cfg;        /* the config in force */
    farm_enrolled_t **enrolled; /* the key index (NULL without keys) */
    farm_nodes_t *nodes;
    farm_scheduler_t *sched;
    farm_builds_t *builds;
    farm_pushes_t *pushes;
    farm_clients_t *cl;
    farm_agents_t *ag;
    farm_warmfile_t *warmfile;
} farm_reload_parts_t;

/* SIGHUP asks for a reload (instead of ending the process, its default). */
void farm_reload_catch_sighup(void);
/* 1 once after one or more SIGHUPs since the last call. */
int farm_reload_requested(void);

/* Re-reads (*p->cfg)->path and applies it, or refuses it; both are logged. 0 applied,
 * FARM_EINVALID refused (the error slot says why), FARM_ERROR out of memory part way. */
int farm_reload(const farm_reload_parts_t *p, long long now);
/* Removed nodes that run nothing any more are forgotten (their agents told why). */
void farm_reload_forget_idle(const farm_reload_parts_t *p);

#endif
