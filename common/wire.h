/* SPDX-License-Identifier: Apache-2.0 */
/* Wire framing: one protobuf-c Envelope per ZeroMQ message, after the routing-id frame
 * on ROUTER sockets. Sizes are bounded before unpacking; packed bytes are never treated
 * as C strings. Socket options live here so CURVE/ZAP can be added in one place. */
#ifndef FARM_WIRE_H
#define FARM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "common/keys.h"
#include "common/limits.h"
#include "common/proc.h" /* farm_now_ms, which the wire users time with */
#include "farm.pb-c.h"

#define FARM_WIRE_VERSION 1
#define FARM_WIRE_MAXMSG (8 << 20)     /* ZMQ_MAXMSGSIZE on every socket */
#define FARM_WIRE_CHUNK (1 << 20)      /* context transfer chunk */
#define FARM_WIRE_WINDOW (8ULL << 20)  /* context bytes in flight, unacknowledged */
#define FARM_WIRE_ROUTING_MAX 255
#define FARM_WIRE_FIELDS_MAX 65536     /* protobuf fields in one message, counted before unpack */
#define FARM_WIRE_REPEATED_MAX 4096    /* entries of one repeated field (nodes in a reply, ...) */

typedef enum { FARM_WIRE_ROUTER_SERVER, FARM_WIRE_DEALER_CLIENT } farm_wire_role_t;

/* Creates a socket of the role's type with farm's options; binds (server) or connects
 * (client). identity (clients, may be NULL) becomes a stable ZMQ_ROUTING_ID. */
void *farm_wire_socket(void *zctx, farm_wire_role_t role, const char *endpoint,
                       const char *identity);

/* CURVE on a socket: a server (ROUTER) needs its key pair and a ZAP domain ("agents",
 * "clients": a ZAP handler must be bound, common/zap.h); a client (DEALER) its key pair
 * and the server's public key. Keys are Z85 (common/keys.h). */
typedef struct {
    const farm_keypair_t *keys;
    const char *server_key;
    const char *zap_domain;
} farm_wire_curve_t;

/* farm_wire_socket with CURVE when curve is not NULL. */
void *farm_wire_socket_secure(void *zctx, farm_wire_role_t role, const char *endpoint,
                              const char *identity, const farm_wire_curve_t *curve);
/* farm_wire_socket_secure that also reports the socket's events (zmq_socket_monitor:
 * connects, handshake failures) to *monitor_out, a ZMQ_PAIR socket the caller reads and
 * closes (before the socket), set up before the connection is made. */
void *farm_wire_socket_monitored(void *zctx, farm_wire_role_t role, const char *endpoint,
                                 const char *identity, const farm_wire_curve_t *curve,
                                 void **monitor_out);

/* Packs env and sends it, preceded by the routing id when rid != NULL. */
int farm_wire_send(void *sock, const void *rid, size_t rid_len, const Farm__Envelope *env);

/* Messages held back until a moment the caller chooses (the coordinator: until its
 * journal committed what they say), then sent in the order they were added. */
typedef struct farm_wire_outbox farm_wire_outbox_t;
farm_wire_outbox_t *farm_wire_outbox_new(void);
/* Wipes what is still held (never sent) and frees the box. */
void farm_wire_outbox_destroy(farm_wire_outbox_t **self_p);
/* Packs env now (the caller may free it) for sock, after the routing id when rid. */
int farm_wire_outbox_add(farm_wire_outbox_t *self, void *sock, const void *rid, size_t rid_len,
                         const Farm__Envelope *env);
size_t farm_wire_outbox_size(const farm_wire_outbox_t *self);
/* Sends everything held; returns how many sends failed (a peer gone: as farm_wire_send,
 * nothing else is done about it). */
size_t farm_wire_outbox_flush(farm_wire_outbox_t *self);

/* Receives one message (non-blocking: FARM_ERETRY when none is waiting). On ROUTER
 * sockets rid/rid_len receive the routing id. Malformed input returns FARM_EINVALID
 * (message consumed, error says why). Free *out with farm_wire_free. */
int farm_wire_recv(void *sock, void *rid, size_t *rid_len, Farm__Envelope **out);
void farm_wire_free(Farm__Envelope **env_p);
/* farm_wire_recv that also gives the peer's authenticated name (ZAP User-Id) in user
 * ("" without CURVE or when it does not fit user_cap). */
int farm_wire_recv_user(void *sock, void *rid, size_t *rid_len, char *user, size_t user_cap,
                        Farm__Envelope **out);

/* Packs any protobuf message (a helper's request or result) into a malloc'd buffer. */
int farm_wire_pack(uint8_t **out, size_t *out_len, const ProtobufCMessage *msg);
/* In a helper program: packs msg and writes it as the result (fd 4, common/child.h). */
int farm_wire_result(const ProtobufCMessage *msg);

/* Unpacks and validates bytes (exposed for tests and fuzzing). */
int farm_wire_unpack(Farm__Envelope **out, const void *data, size_t len);

/* "queued", "dispatched", ... as farmctl prints them; "event" for unknown kinds. */
const char *farm_wire_event_kind_name(Farm__EventKind kind);

#endif
