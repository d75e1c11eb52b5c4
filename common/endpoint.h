/* SPDX-License-Identifier: Apache-2.0 */
/* ZeroMQ endpoints as farm reads them (tcp://HOST:PORT, ipc://PATH, inproc://NAME), and
 * the one rule that decides whether an endpoint stays on this machine. Logins, secrets
 * and a keyless farm's traffic go only over CURVE or to such an endpoint. */
#ifndef FARM_ENDPOINT_H
#define FARM_ENDPOINT_H

#include <stddef.h>

typedef enum {
    FARM_ENDPOINT_TCP,
    FARM_ENDPOINT_IPC,
    FARM_ENDPOINT_INPROC
} farm_endpoint_kind_t;

typedef struct {
    farm_endpoint_kind_t kind;
    char host[256]; /* tcp: as written, an IPv6 address without its brackets */
    int port;       /* tcp: 1..65535 */
    int loopback;   /* stays on this machine: a literal 127.0.0.0/8 or ::1 address, ipc://,
                     * inproc:// (never a host name: a name resolves to whatever DNS says) */
    int wildcard;   /* tcp: a bind-any address (0.0.0.0, ::, *) */
} farm_endpoint_t;

/* Parses e. FARM_EINVALID with the error slot saying what is wrong in the user's terms
 * ("the port must be a number from 1 to 65535"), without repeating e. */
int farm_endpoint_parse(farm_endpoint_t *out, const char *e);
/* 1 when e is a valid endpoint that stays on this machine (see loopback above), else 0. */
int farm_endpoint_loopback(const char *e);

/* An HTTP listen address, ADDR:PORT as farm.yaml's coordinator.http and farm-agent
 * --metrics take it: 127.0.0.1:9180, [::1]:9180, 0.0.0.0:9180 (an IP address, never a
 * name: a name binds whatever it resolves to). *loopback_out as for endpoints above.
 * FARM_EINVALID saying what is wrong, without repeating s. Out-parameters may be NULL. */
int farm_endpoint_parse_addr(char *host_out, size_t host_cap, int *port_out,
                             int *loopback_out, const char *s);

#endif
