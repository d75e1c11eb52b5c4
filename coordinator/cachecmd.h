/* SPDX-License-Identifier: Apache-2.0 */
/* farmctl du and farmctl prune (admin): a client's CacheQuery goes to each node it names
 * (none: every node connected now) as a CacheQuery of its own request id; the nodes'
 * CacheReports are gathered and the client gets one CacheReply when every node answered,
 * or when the wait ran out, naming each node that did not answer and why (lost, never
 * connected, silent past the wait). After a prune, a node whose builder cache of a client
 * and platform was emptied is no longer warm for that client's builds of that platform
 * (coordinator/warm.h). No socket here: both ways out are send functions. */
#ifndef FARM_COORD_CACHECMD_H
#define FARM_COORD_CACHECMD_H

#include <stddef.h>
#include <stdint.h>

#include "common/limits.h"
#include "common/wire.h"
#include "coordinator/nodes.h"
#include "coordinator/scheduler.h"

#define FARM_CACHECMD_WAIT_MS FARM_CACHE_ANSWER_MS /* a node's answer, at most */
#define FARM_CACHECMD_PENDING_MAX 64 /* requests waiting for nodes at once */

typedef int (*farm_cachecmd_send_fn)(void *arg, const void *rid, size_t rid_len,
                                     Farm__Envelope *env);

typedef struct farm_cachecmd farm_cachecmd_t;

/* nodes and sched are borrowed. to_client and to_agent send to the clients' and the
 * agents' endpoint. wait_ms: 0 for FARM_CACHECMD_WAIT_MS. */
farm_cachecmd_t *farm_cachecmd_new(farm_nodes_t *nodes, farm_scheduler_t *sched,
                                   farm_cachecmd_send_fn to_client, farm_cachecmd_send_fn to_agent,
                                   void *arg, long long wait_ms);
void farm_cachecmd_destroy(farm_cachecmd_t **self_p);

/* A client's query (its role already checked). Refusals (an unknown node, too many
 * requests at once) are written to reason and returned as < 0; else 0. */
int farm_cachecmd_request(farm_cachecmd_t *self, char *reason, size_t reason_len,
                          const void *rid, size_t rid_len, const Farm__CacheQuery *q,
                          long long now);
/* A node's report. */
void farm_cachecmd_report(farm_cachecmd_t *self, farm_node_t *node, const Farm__CacheReport *r,
                          long long now);
/* Answers every request whose nodes all answered, were lost, or whose wait ran out. */
void farm_cachecmd_tick(farm_cachecmd_t *self, long long now);
size_t farm_cachecmd_pending(const farm_cachecmd_t *self);

#endif
