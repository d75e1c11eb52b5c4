/* SPDX-License-Identifier: Apache-2.0 */
/* What a node keeps that grows, for `farmctl du` and `farmctl prune`: its builder caches
 * (one per client and platform, BUILDER_ROOT/SCOPE/SLUG, agent/builder.h) and its cached
 * build contexts (agent/cache.h). Each entry has a size, a last use and whether a running
 * job uses it; a prune removes the entries not in use (and, with until, not used for that
 * long) and says, for every one it keeps, why.
 *
 * The builder caches are measured and emptied by `farm-agent cache` (farm_inventory_main),
 * a program the agent execs as it does a job's worker: du and buildah run inside the
 * sandbox (the storage belongs to the agent's subordinate ids) and may take long, and the
 * agent's reactor must keep its heartbeats. A cache a job builds in is never touched: the
 * prune takes the cache's lock exclusively (agent/layers.h) or leaves the cache alone; a
 * job that starts meanwhile waits for the lock, then builds without that cache. */
#ifndef FARM_AGENT_INVENTORY_H
#define FARM_AGENT_INVENTORY_H

#include <stddef.h>
#include <stdint.h>

/* What was asked. */
typedef struct {
    int prune;       /* 0: only list (du) */
    uint64_t until_s;/* prune only what was not used for this long (0: any age) */
    int all;         /* also the base images builds pulled (else only their steps) */
    long long now_s; /* the wall clock, seconds since the epoch */
} farm_inventory_ask_t;

/* 1 when an entry used at used_s (0: unknown) goes, else 0 with why (a du: "").
 * in_use: a running job uses it. */
int farm_inventory_decide(char *why, size_t cap, const farm_inventory_ask_t *ask, int in_use,
                          long long used_s);

/* "linux-arm-v7" (a cache's directory name) -> "linux/arm/v7"; -1 if slug is not one. */
int farm_inventory_platform(char *out, size_t cap, const char *slug);

/* `farm-agent cache`: reads a packed farm.CacheJobRequest from fd 3, writes a packed
 * farm.CacheJobResult to fd 4 (common/child.h); stdout is log text. The exit status. */
int farm_inventory_main(void);

#endif
