/* SPDX-License-Identifier: Apache-2.0 */
/* The node table: every node farm.yaml names, its session, liveness and the platforms it
 * was accepted for. HELLO is checked here; the scheduler keeps the node's load. */
#ifndef FARM_COORD_NODES_H
#define FARM_COORD_NODES_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/limits.h"

#define FARM_NODE_CAUSE_MAX 600 /* an unhealthy node's cause, bytes kept */

typedef enum { FARM_NODE_UNKNOWN, FARM_NODE_READY, FARM_NODE_LOST } farm_node_state_t;

typedef struct {
    size_t platform_index; /* into the config's platforms */
    int emulated;          /* listed under emulated: for this node */
} farm_node_platform_t;

typedef struct farm_node {
    const farm_config_node_t *cfg; /* = &conf */
    farm_config_node_t conf; /* its farm.yaml entry, copied: a reload frees the old file */
    size_t index;          /* in the table, stable (a reload appends, never moves) */
    int removed;           /* a reload dropped it from farm.yaml: it finishes what it runs,
                            * takes nothing new, and is forgotten then */
    int hello_slots;       /* the agent's own bound from HELLO (0: none) */
    farm_node_state_t state;
    char rid[256];         /* routing id of the current session */
    size_t rid_len;
    uint64_t session;
    long long last_seen;
    int slots;             /* the smaller of farm.yaml's and the agent's */
    farm_node_platform_t *platforms; /* accepted at HELLO */
    size_t n_platforms;
    char builder[64];
    char version[33];      /* the agent's, from HELLO; "" if it sent none */
    uint64_t builder_cache_bytes; /* from its heartbeats: builder storage in use */
    uint64_t cache_hits;          /* build steps from its cache since the agent started */
    char unhealthy[FARM_NODE_CAUSE_MAX + 1]; /* "" healthy; else why it takes no job (the
                                              * agent's word: HELLO, heartbeat, result) */
} farm_node_t;

typedef struct farm_nodes farm_nodes_t;

/* What an agent says in HELLO, as plain values. */
typedef struct {
    const char *name;
    char *const *platforms;
    size_t n_platforms;
    uint32_t slots;
    const char *builder;
    const char *version;
    uint64_t session;
} farm_hello_t;

typedef enum {
    FARM_HELLO_REJECTED = -1, /* reason says why and what to do */
    FARM_HELLO_NEW = 0,       /* the node is READY with a new session */
    FARM_HELLO_RESENT = 1,    /* the same session again: nothing it runs is lost */
    FARM_HELLO_RESTARTED = 2  /* a new session of a READY node: what it ran is gone */
} farm_hello_outcome_t;

farm_nodes_t *farm_nodes_new(const farm_config_t *cfg);
void farm_nodes_destroy(farm_nodes_t **self_p);

size_t farm_nodes_count(const farm_nodes_t *self);
farm_node_t *farm_nodes_at(farm_nodes_t *self, size_t i);
farm_node_t *farm_nodes_by_name(farm_nodes_t *self, const char *name);
/* The READY node whose session uses this routing id. */
farm_node_t *farm_nodes_by_rid(farm_nodes_t *self, const void *rid, size_t rid_len);

/* Checks a HELLO from routing id rid and, unless rejected, records the session (the node
 * becomes READY, last_seen = now). For RESTARTED the caller first treats the node's old
 * work as lost (the node is READY again when this returns). *out is the node. */
farm_hello_outcome_t farm_nodes_hello(farm_nodes_t *self, farm_node_t **out,
                                      const farm_hello_t *h, const void *rid, size_t rid_len,
                                      long long now, char *reason, size_t reason_len);
/* Any message from the node's session. */
void farm_nodes_seen(farm_nodes_t *self, farm_node_t *node, long long now);
/* The node is LOST (silent, or gone); its routing id no longer maps to it. */
void farm_nodes_lose(farm_nodes_t *self, farm_node_t *node);

/* Called before every liveness check. When the coordinator itself did not run for more
 * than two heartbeats since the last call (SIGSTOP, a stalled host), the pause is not the
 * nodes' silence: every READY node's silence is counted from now, a fresh grace period.
 * Returns the length of that gap in ms (0: none). */
long long farm_nodes_gap_check(farm_nodes_t *self, long long now, int heartbeat_ms);

/* Records what the agent says of its health: cause "" (healthy) or why it takes no job,
 * kept printable and cut to FARM_NODE_CAUSE_MAX. 1 when the node's health changed
 * (healthy to unhealthy or back), else 0. */
int farm_nodes_health(farm_nodes_t *self, farm_node_t *node, const char *cause);

/* farm.yaml was reloaded (cfg replaces the one in force; plat_map from
 * farm_config_platform_map): a node still listed takes its new slots and key, one no longer
 * listed is marked removed (no longer found by name, so its HELLO is refused as an unknown
 * node's; its session still delivers the results of what it runs), a node new in cfg is
 * appended (it can say HELLO at once). Every node's accepted platforms follow the new
 * mapping: a platform gone or no longer mapped to it is dropped (a newly mapped one is
 * taken at its next HELLO); a removed node keeps those still in cfg, so that listed again
 * while connected it serves them at once. On failure (out of memory) nothing changed. */
int farm_nodes_reload(farm_nodes_t *self, const farm_config_t *cfg, const long *plat_map);

/* 1 when the node was accepted for the platform (config index); *emulated set. */
int farm_node_serves(const farm_node_t *node, size_t platform_index, int *emulated);

#endif
