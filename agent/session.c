/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/session.h"

#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>

struct farm_session {
    uint64_t id;
    int ready;             /* WELCOME received in this session */
    int heartbeat_ms;
    int liveness;
    int backoff_ms;        /* wait after the next reconnect */
    long long last_recv;   /* any message from the coordinator */
    long long last_heard;  /* the same, never reset by a reconnect */
    int connected_once;
    long long last_tick;
    long long next_reconnect;
};

static uint64_t s_new_id(const farm_session_t *self)
{
    uint64_t id = 0;
    if (getrandom(&id, sizeof id, 0) != sizeof id)
        id = ((uint64_t)getpid() << 32) ^ (uint64_t)self->last_recv ^ (self->id * 31u);
    if (id == 0 || id == self->id)
        id = self->id + 1;
    return id ? id : 1;
}

farm_session_t *farm_session_new(void)
{
    farm_session_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->heartbeat_ms = 1000;
    self->liveness = 3;
    self->backoff_ms = FARM_SESSION_BACKOFF_MIN_MS;
    return self;
}

void farm_session_destroy(farm_session_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

void farm_session_connected(farm_session_t *self, long long now)
{
    self->id = s_new_id(self);
    self->ready = 0;
    self->last_recv = now;
    self->last_tick = now;
    if (!self->connected_once)
        self->last_heard = now;
    self->connected_once = 1;
}

void farm_session_on_message(farm_session_t *self, long long now)
{
    self->last_recv = now;
    self->last_heard = now;
}

void farm_session_on_welcome(farm_session_t *self, uint32_t heartbeat_ms, uint32_t liveness)
{
    self->ready = 1;
    self->backoff_ms = FARM_SESSION_BACKOFF_MIN_MS;
    self->next_reconnect = 0;
    if (heartbeat_ms >= 50 && heartbeat_ms <= 600000)
        self->heartbeat_ms = (int)heartbeat_ms;
    if (liveness >= 1 && liveness <= 100)
        self->liveness = (int)liveness;
}

farm_session_action_t farm_session_on_reject(farm_session_t *self, int rehello)
{
    if (!rehello)
        return FARM_SESSION_FATAL;
    if (!self->ready)
        return FARM_SESSION_NONE; /* our HELLO is in flight: its answer decides */
    self->ready = 0;
    self->id = s_new_id(self);
    return FARM_SESSION_REHELLO;
}

farm_session_action_t farm_session_tick(farm_session_t *self, long long now)
{
    long long hb = self->heartbeat_ms;

    /* We did not run for several beats (SIGSTOP, an overloaded host): what the
     * coordinator sent meanwhile may be unread yet, so its silence is not its fault. */
    if (self->last_tick && now - self->last_tick > 3 * hb && now - self->last_recv > hb) {
        self->last_recv = now - hb;
        self->last_heard += now - self->last_tick; /* nor is the orphan time */
    }
    self->last_tick = now;
    if (now - self->last_recv > hb * self->liveness) {
        if (now < self->next_reconnect)
            return FARM_SESSION_NONE;
        self->next_reconnect = now + self->backoff_ms;
        if (self->backoff_ms < FARM_SESSION_BACKOFF_MAX_MS)
            self->backoff_ms *= 2;
        if (self->backoff_ms > FARM_SESSION_BACKOFF_MAX_MS)
            self->backoff_ms = FARM_SESSION_BACKOFF_MAX_MS;
        return FARM_SESSION_RECONNECT;
    }
    return self->ready ? FARM_SESSION_HEARTBEAT : FARM_SESSION_HELLO;
}

int farm_session_ready(const farm_session_t *self) { return self->ready; }
uint64_t farm_session_id(const farm_session_t *self) { return self->id; }
int farm_session_heartbeat_ms(const farm_session_t *self) { return self->heartbeat_ms; }
int farm_session_liveness(const farm_session_t *self) { return self->liveness; }
int farm_session_backoff_ms(const farm_session_t *self) { return self->backoff_ms; }
long long farm_session_silent_ms(const farm_session_t *self, long long now)
{
    return now - self->last_recv;
}

long long farm_session_orphaned_ms(const farm_session_t *self, long long now)
{
    return now - self->last_heard;
}

long long farm_session_retry_in_ms(const farm_session_t *self, long long now)
{
    return self->next_reconnect > now ? self->next_reconnect - now : 0;
}
