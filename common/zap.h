/* SPDX-License-Identifier: Apache-2.0 */
/* The ZAP handler (ZeroMQ RFC 27) that makes CURVE mean something: without one, CURVE
 * encrypts but admits any key. It binds inproc://zeromq.zap.01 in the daemon's context
 * (before any server socket) and answers each handshake from a lookup: the client's
 * public key -> a user id (a node or client name), or refusal. The socket is read from
 * the daemon's reactor. An unknown key is logged once, in Z85, so it can be enrolled. */
#ifndef FARM_ZAP_H
#define FARM_ZAP_H

#include <stdint.h>

typedef struct farm_zap farm_zap_t;

/* The ZAP status for a key enrolled for the other endpoint (a client's key at the
 * agents' endpoint, a node's at the clients'): the peer sees it in its handshake-failed
 * event (libzmq passes 300, 400 or 500 on; 300 would be a silent disconnect) and can
 * say it dialled the wrong port, where 400 means "not enrolled". */
#define FARM_ZAP_OTHER_ENDPOINT 500

/* The user id for (domain, key), or NULL to refuse; when refusing, *other = 1 says the
 * key is enrolled for the other endpoint. The string must live until the next call. */
typedef const char *(*farm_zap_lookup_fn)(void *arg, const char *domain, const uint8_t key[32],
                                          int *other);

farm_zap_t *farm_zap_new(void *zctx, farm_zap_lookup_fn fn, void *arg);
void farm_zap_destroy(farm_zap_t **self_p);
void *farm_zap_socket(farm_zap_t *self);
/* Answers every request waiting (non-blocking). Returns how many were answered. */
int farm_zap_handle(farm_zap_t *self);

#endif
