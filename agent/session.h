/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's session with the coordinator, as a state machine over plain values (no
 * socket here: agent.c sends what the returned action says). Paranoid Pirate (zguide
 * ch. 4): HELLO until WELCOME, heartbeats both ways, a coordinator silent for `liveness`
 * beats is lost and the agent reconnects with backoff 1 s doubling to 32 s. Every new
 * connection (and every REJECT with rehello) starts a new session id; a HELLO resent
 * while waiting for WELCOME keeps it, so the coordinator does not take it for a restart.
 * Losing the coordinator does not end the agent's jobs: they go on, and the next HELLO
 * lists them for the coordinator to adopt or cancel; only a coordinator unheard of for
 * the orphan timeout (farm-agent --orphan-timeout) makes the agent give them up. */
#ifndef FARM_AGENT_SESSION_H
#define FARM_AGENT_SESSION_H

#include <stdint.h>

#define FARM_SESSION_BACKOFF_MIN_MS 1000
#define FARM_SESSION_BACKOFF_MAX_MS 32000

typedef enum {
    FARM_SESSION_NONE,      /* nothing to send */
    FARM_SESSION_HEARTBEAT, /* send a HEARTBEAT */
    FARM_SESSION_HELLO,     /* send HELLO (again: same session, WELCOME not seen yet) */
    FARM_SESSION_REHELLO,   /* the coordinator forgot this session: HELLO with the new
                             * session id (and the jobs still held) on the same socket */
    FARM_SESSION_RECONNECT, /* the coordinator is silent: new socket, then
                             * farm_session_connected and HELLO (jobs go on) */
    FARM_SESSION_FATAL,     /* rejected for a reason the agent cannot fix */
} farm_session_action_t;

typedef struct farm_session farm_session_t;

farm_session_t *farm_session_new(void);
void farm_session_destroy(farm_session_t **self_p);

/* A new connection was made at now: new session id, not ready, silence counted from now.
 * The caller sends HELLO. */
void farm_session_connected(farm_session_t *self, long long now);
/* Any message from the coordinator counts as a heartbeat. */
void farm_session_on_message(farm_session_t *self, long long now);
/* WELCOME: ready, backoff back to 1 s; heartbeat/liveness taken when in range
 * (50 ms..600 s, 1..100), else the current ones stay. */
void farm_session_on_welcome(farm_session_t *self, uint32_t heartbeat_ms, uint32_t liveness);
/* REJECT: REHELLO (once per session: the REJECTs of messages already in flight change
 * nothing), NONE, or FATAL when rehello is not set. */
farm_session_action_t farm_session_on_reject(farm_session_t *self, int rehello);
/* Called every heartbeat interval: what to send now. */
farm_session_action_t farm_session_tick(farm_session_t *self, long long now);

int farm_session_ready(const farm_session_t *self);
uint64_t farm_session_id(const farm_session_t *self);
int farm_session_heartbeat_ms(const farm_session_t *self);
int farm_session_liveness(const farm_session_t *self);
/* How long no coordinator has said anything at all, across reconnects (from the first
 * connection when none ever answered): what the orphan timeout is measured against. */
long long farm_session_orphaned_ms(const farm_session_t *self, long long now);
/* How long the coordinator has been silent at now (this connection). */
long long farm_session_silent_ms(const farm_session_t *self, long long now);
/* The wait after the next reconnect (1 s, 2 s, ... 32 s). */
int farm_session_backoff_ms(const farm_session_t *self);
/* Time left at now before a reconnect may happen (0: may happen now). */
long long farm_session_retry_in_ms(const farm_session_t *self, long long now);

#endif
