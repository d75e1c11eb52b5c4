/* SPDX-License-Identifier: Apache-2.0 */
/* The coordinator's HTTP endpoint (farm.yaml coordinator.http): /metrics for Prometheus,
 * a read-only JSON API and the page that reads it. The API answers with the very reply
 * messages farmctl gets (the clients module builds them; common/pbjson prints them), as
 * an admin's farmctl would see them: who may read is decided by the endpoint itself
 * (loopback, or the bearer token of coordinator.http_token_file). Nothing here starts,
 * cancels or changes a build.
 *   /metrics                         Prometheus text format
 *   /  /app.js  /style.css           the page (built into the binary)
 *   /api/nodes  /api/builds          NodesReply, BuildsReply (farmctl nodes, builds)
 *   /api/history[?filter=K=V][&limit=N]  HistoryReply (farmctl history ls)
 *   /api/builds/ID                   HistoryRecord (farmctl history inspect ID; ^N too)
 *   /api/builds/ID/logs[?platform=P][&follow=1]
 *                                    LogsReply (farmctl logs); follow=1 streams LogLine
 *                                    objects, one JSON object a line, until the build ends
 * The history and logs come from coordinator/history.c with an admin as the caller. */
#ifndef FARM_COORD_WEB_H
#define FARM_COORD_WEB_H

#include "common/reactor.h"
#include "coordinator/history.h"
#include "coordinator/parts.h"

typedef struct farm_web farm_web_t;

/* Listens on (*cfg_p)->http. cfg_p: the coordinator's config in force (a reload replaces
 * *cfg_p; the web follows). parts are copied; watches (borrowed) carries the builds' live
 * log lines. NULL with the error slot set: the token file cannot be read or is empty, or
 * the address cannot be bound. */
farm_web_t *farm_web_new(farm_reactor_t *reactor, farm_config_t *const *cfg_p,
                         const farm_coord_parts_t *parts, farm_history_watches_t *watches);
void farm_web_destroy(farm_web_t **self_p);
int farm_web_port(const farm_web_t *self);

#endif
