/* SPDX-License-Identifier: Apache-2.0 */
#include "common/endpoint.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"

/* The address is judged by parsing it: "127.attacker.example" or "127.0.0.1;host" is a
 * name (or a ZeroMQ source;destination pair) that inet_pton refuses, not loopback. */
static void s_judge(farm_endpoint_t *ep)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (strcmp(ep->host, "*") == 0) {
        ep->wildcard = 1;
        return;
    }
    if (inet_pton(AF_INET, ep->host, &a4) == 1) {
        uint32_t a = ntohl(a4.s_addr);
        ep->loopback = (a >> 24) == 127;
        ep->wildcard = a == 0;
        return;
    }
    if (inet_pton(AF_INET6, ep->host, &a6) == 1) {
        ep->loopback = IN6_IS_ADDR_LOOPBACK(&a6) ||
                       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
        ep->wildcard = IN6_IS_ADDR_UNSPECIFIED(&a6);
    }
}

int farm_endpoint_parse(farm_endpoint_t *out, const char *e)
{
    const char *host, *colon, *end;
    size_t n;
    long port = 0;

    memset(out, 0, sizeof *out);
    if (!e || !*e)
        return farm_error_set(FARM_EINVALID, "it is empty; use tcp://host:port, ipc://path or "
                              "inproc://name");
    if (!strncmp(e, "ipc://", 6) || !strncmp(e, "inproc://", 9)) {
        out->kind = e[1] == 'p' ? FARM_ENDPOINT_IPC : FARM_ENDPOINT_INPROC;
        if (!e[out->kind == FARM_ENDPOINT_IPC ? 6 : 9])
            return farm_error_set(FARM_EINVALID, "it needs a path (ipc://) or a name "
                                  "(inproc://) after the scheme");
        out->loopback = 1;
        return 0;
    }
    if (strncmp(e, "tcp://", 6) != 0)
        return farm_error_set(FARM_EINVALID, "use tcp://host:port, ipc://path or inproc://name");
    out->kind = FARM_ENDPOINT_TCP;
    host = e + 6;
    colon = strrchr(host, ':');
    if (!colon || colon == host)
        return farm_error_set(FARM_EINVALID, "it needs a host and a port, e.g. "
                              "tcp://127.0.0.1:7701");
    end = colon;
    if (host[0] == '[') {
        if (colon[-1] != ']' || colon - host < 3)
            return farm_error_set(FARM_EINVALID, "an IPv6 host goes in brackets, e.g. "
                                  "tcp://[::1]:7701");
        host++;
        end = colon - 1;
    }
    for (const char *p = host; p < end; p++)
        if (isspace((unsigned char)*p) || *p == '/' || !isprint((unsigned char)*p))
            return farm_error_set(FARM_EINVALID, "the host contains a space, a slash or a "
                                  "control character");
    n = (size_t)(end - host);
    if (n >= sizeof out->host)
        return farm_error_set(FARM_EINVALID, "the host is %zu bytes; at most %zu", n,
                              sizeof out->host - 1);
    memcpy(out->host, host, n);
    out->host[n] = '\0';
    if (!colon[1] || strlen(colon + 1) > 5)
        return farm_error_set(FARM_EINVALID, "the port must be a number from 1 to 65535");
    for (const char *p = colon + 1; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return farm_error_set(FARM_EINVALID, "the port must be a number from 1 to 65535");
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535)
        return farm_error_set(FARM_EINVALID, "the port must be a number from 1 to 65535");
    out->port = (int)port;
    s_judge(out);
    return 0;
}

int farm_endpoint_loopback(const char *e)
{
    farm_endpoint_t ep;
    return farm_endpoint_parse(&ep, e) == 0 && ep.loopback;
}

int farm_endpoint_parse_addr(char *host_out, size_t host_cap, int *port_out,
                              int *loopback_out, const char *s)
{
    farm_endpoint_t ep;
    char e[300];

    if (!s || !*s)
        return farm_error_set(FARM_EINVALID, "it is empty; write ADDR:PORT, e.g. "
                                             "127.0.0.1:9100");
    if (strstr(s, "://"))
        return farm_error_set(FARM_EINVALID, "write ADDR:PORT without a scheme, e.g. "
                                             "127.0.0.1:9100");
    if (snprintf(e, sizeof e, "tcp://%s", s) >= (int)sizeof e)
        return farm_error_set(FARM_EINVALID, "it is too long");
    if (farm_endpoint_parse(&ep, e) < 0)
        return FARM_EINVALID;
    /* MHD binds an address, not a name: a name would bind whatever it resolves to */
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(ep.host, "*") && inet_pton(AF_INET, ep.host, &a4) != 1 &&
        inet_pton(AF_INET6, ep.host, &a6) != 1)
        return farm_error_set(FARM_EINVALID, "\"%s\" is not an IP address; write one, e.g. "
                                             "127.0.0.1:9100 or 0.0.0.0:9100", ep.host);
    if (host_out) {
        if (strlen(ep.host) >= host_cap)
            return farm_error_set(FARM_EINVALID, "the address is too long");
        strcpy(host_out, strcmp(ep.host, "*") ? ep.host : "0.0.0.0");
    }
    if (port_out)
        *port_out = ep.port;
    if (loopback_out)
        *loopback_out = ep.loopback;
    return 0;
}
