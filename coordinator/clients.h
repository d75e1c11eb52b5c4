/* SPDX-License-Identifier: Apache-2.0 */
/* What farmctl asks of the coordinator (submit, cancel, nodes, builds, drain, context
 * offers and uploads) and what a build's client hears (events, BuildDone, heartbeats).
 * Each request is read into plain values at its top and answered through a send
 * function the coordinator gives (the socket stays there); the rules a request meets
 * (the role it needs, which builds a client sees) are functions of plain values. */
#ifndef FARM_COORD_CLIENTS_H
#define FARM_COORD_CLIENTS_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/wire.h"
#include "coordinator/builds.h"
#include "coordinator/ctxstore.h"
#include "coordinator/nodes.h"
#include "coordinator/parts.h"
#include "coordinator/scheduler.h"

/* Who sent a client message, and what it may do. */
typedef struct {
    const char *rid;
    size_t rid_len;
    const char *name;  /* "" without keys */
    const char *key;   /* its CURVE public key (Z85), "" without keys */
    farm_role_t role;  /* without keys: admin (the endpoints are loopback-only then) */
} farm_client_t;

/* Sends env (its version set) to the client at rid; < 0 (FARM_ENOTFOUND: the connection
 * is gone) with the error slot set when it could not. */
typedef int (*farm_clients_send_fn)(void *arg, const void *rid, size_t rid_len,
                                    Farm__Envelope *env);

typedef struct farm_clients farm_clients_t;

/* The parts (copied) and what they point to are borrowed and must outlive the object. */
farm_clients_t *farm_clients_new(const farm_coord_parts_t *parts, farm_clients_send_fn send,
                                 void *arg);
void farm_clients_destroy(farm_clients_t **self_p);

/* One message from client c (authenticated as c says): refused unless c's role may,
 * else answered. */
void farm_clients_message(farm_clients_t *self, const farm_client_t *c,
                          const Farm__Envelope *env);
/* A Refused with reason, logged as "refused a client"; _via sends it with send (farmctl
 * at the agents' endpoint is told where to go). */
void farm_clients_refuse(farm_clients_t *self, const void *rid, size_t rid_len,
                         const char *reason);
/* A message over a connection let in with a key a reload has since removed or replaced
 * (key_z85, its User-Id): refused, naming the key and the fix. */
void farm_clients_refuse_unenrolled(farm_clients_t *self, const void *rid, size_t rid_len,
                                    const char *key_z85);
void farm_clients_refuse_via(farm_clients_send_fn send, void *arg, const void *rid,
                             size_t rid_len, const char *reason);

/* farm.yaml was reloaded: cfg replaces the parts' config (borrowed likewise). */
void farm_clients_reload(farm_clients_t *self, const farm_config_t *cfg);

/* The builds' callbacks: one event of b for its client and the log; b finished; and a
 * heartbeat to the client of every running build. */
void farm_clients_event(farm_clients_t *self, farm_build_t *b, const farm_job_t *job,
                        farm_event_kind_t kind, const char *msg);
void farm_clients_done(farm_clients_t *self, farm_build_t *b, int ok, const char *index_digest,
                       uint64_t index_size, const char *error);
void farm_clients_beat(farm_clients_t *self);

/* The role a message needs, and what it is called in a refusal. */
farm_role_t farm_clients_needs(Farm__Envelope__BodyCase body, const char **what);
/* 1 when c may see build b and its job ids: its own builds (as for cancel), or any for
 * an admin. */
int farm_client_sees(const farm_client_t *c, const farm_build_t *b);
/* 1 when c is b's submitting farmctl (a Follow or Logins carrying token): the one that may
 * send b's logins and secrets again. Its owner (with keys) with the Submit's token; for a
 * build that has no token kept, any submit process of its owner (a Follow without a
 * token is farmctl wait). */
int farm_client_is_submitter(const farm_client_t *c, const farm_build_t *b, const void *token,
                             size_t token_len);

#endif
