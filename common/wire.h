/* Wire framing: one protobuf-c Envelope per ZeroMQ message, after the routing-id frame
 * on ROUTER sockets. Sizes are bounded before unpacking; packed bytes are never treated
 * as C strings. Socket options live here so CURVE/ZAP can be added in one place. */
#ifndef FARM_WIRE_H
#define FARM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "common/limits.h"
#include "farm.pb-c.h"

#define FARM_WIRE_VERSION 1
#define FARM_WIRE_MAXMSG (8 << 20)     /* ZMQ_MAXMSGSIZE on every socket */
#define FARM_WIRE_CHUNK (1 << 20)      /* context transfer chunk */
#define FARM_WIRE_WINDOW (8ULL << 20)  /* context bytes in flight, unacknowledged */
#define FARM_WIRE_ROUTING_MAX 255

typedef enum { FARM_WIRE_ROUTER_SERVER, FARM_WIRE_DEALER_CLIENT } farm_wire_role_t;

/* Creates a socket of the role's type with farm's options; binds (server) or connects
 * (client). identity (clients, may be NULL) becomes a stable ZMQ_ROUTING_ID. */
void *farm_wire_socket(void *zctx, farm_wire_role_t role, const char *endpoint,
                       const char *identity);

/* Packs env and sends it, preceded by the routing id when rid != NULL. */
int farm_wire_send(void *sock, const void *rid, size_t rid_len, const Farm__Envelope *env);

/* Receives one message (non-blocking: FARM_ERETRY when none is waiting). On ROUTER
 * sockets rid/rid_len receive the routing id. Malformed input returns FARM_EINVALID
 * (message consumed, error says why). Free *out with farm_wire_free. */
int farm_wire_recv(void *sock, void *rid, size_t *rid_len, Farm__Envelope **out);
void farm_wire_free(Farm__Envelope **env_p);

/* Packs any protobuf message (a helper's request or result) into a malloc'd buffer. */
int farm_wire_pack(uint8_t **out, size_t *out_len, const ProtobufCMessage *msg);
/* In a helper program: packs msg and writes it as the result (fd 4, common/child.h). */
int farm_wire_result(const ProtobufCMessage *msg);

/* Unpacks and validates bytes (exposed for tests and fuzzing). */
int farm_wire_unpack(Farm__Envelope **out, const void *data, size_t len);

/* "queued", "dispatched", ... as farmctl prints them; "event" for unknown kinds. */
const char *farm_wire_event_kind_name(Farm__EventKind kind);

/* Monotonic milliseconds. */
long long farm_now_ms(void);

#endif
