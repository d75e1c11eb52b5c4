/* SPDX-License-Identifier: Apache-2.0 */
/* The coordinator's answers to `farm-agent check`'s clock question (TimeRequest): which
 * requests are answered. A peer (its authenticated node name, "" in a farm without keys)
 * gets at most per_peer answers a second and the whole endpoint at most total: a flood
 * of questions cannot take the loop from the nodes' heartbeats. */
#ifndef FARM_COORD_TIMESERVE_H
#define FARM_COORD_TIMESERVE_H

#include <stdint.h>

#define FARM_TIMESERVE_PER_PEER 5   /* answers a second to one peer */
#define FARM_TIMESERVE_TOTAL 200    /* answers a second in all */

typedef struct farm_timeserve farm_timeserve_t;

farm_timeserve_t *farm_timeserve_new(unsigned per_peer, unsigned total);
void farm_timeserve_destroy(farm_timeserve_t **self_p);

/* 0: answer it; FARM_EINVALID: malformed (nonce 0, or a farm with keys and no
 * authenticated peer); FARM_ERETRY: over a budget this second (drop it silently). The
 * error slot says why for the first two. now_ms is monotonic. */
int farm_timeserve_admit(farm_timeserve_t *self, const char *peer, int secure, uint64_t nonce,
                         long long now_ms);

#endif
