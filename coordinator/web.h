/* SPDX-License-Identifier: Apache-2.0 */
/* The coordinator's HTTP endpoint (farm.yaml coordinator.http): /metrics for Prometheus,
 * a read-only JSON API and the page that reads it. The API answers with the very reply
 * messages farmctl gets (the clients module builds them; common/pbjson prints them), as
 * an admin's farmctl would see them: who may read is decided by the endpoint itself
 * (loopback, or the bearer token of coordinator.http_token_file). Nothing here starts,
 * cancels or changes a build.
 *   /metrics                         Prometheus text format
 *   /  /app.js  /style.css           the page (built into the binary)
 *   /api/nodes  /api/builds          NodesReply, BuildsReply
 *   /api/builds/ID                   that build's BuildInfo
 *   /api/builds/ID/logs[?platform=P][&follow=1]
 *                                    the lines the coordinator keeps of each running job
 *                                    (LogsReply); follow=1 streams LogLine objects, one
 *                                    JSON object a line, until the build ends */
#ifndef FARM_COORD_WEB_H
#define FARM_COORD_WEB_H

#include "common/reactor.h"
#include "coordinator/builds.h"
#include "coordinator/parts.h"

typedef struct farm_web farm_web_t;

/* Listens on (*cfg_p)->http. cfg_p: the coordinator's config in force (a reload replaces
 * *cfg_p; the web follows). parts are copied. NULL with the error slot set: the token
 * file cannot be read or is empty, or the address cannot be bound. */
farm_web_t *farm_web_new(farm_reactor_t *reactor, farm_config_t *const *cfg_p,
                         const farm_coord_parts_t *parts);
void farm_web_destroy(farm_web_t **self_p);
int farm_web_port(const farm_web_t *self);

/* The builds' events (for the followed logs) and ends. self may be NULL (HTTP off). */
void farm_web_event(farm_web_t *self, const farm_build_t *b, const farm_job_t *job,
                    farm_event_kind_t kind, const char *msg);
void farm_web_done(farm_web_t *self, const farm_build_t *b);

#endif
