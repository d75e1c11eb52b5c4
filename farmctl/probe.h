/* SPDX-License-Identifier: Apache-2.0 */
/* What the target registry speaks, asked before a build is sent: a registry that answers
 * plain HTTP where the farm expects TLS fails only at the push, after the whole build. */
#ifndef FARMCTL_PROBE_H
#define FARMCTL_PROBE_H

/* 1 when registry_host ("host[:port]") answers plain HTTP and not TLS at /v2/ (sends
 * nothing but the requests: no login), 0 otherwise: TLS, or no answer within a few
 * seconds (the farm may reach what this machine cannot; the push then says). */
int farmctl_probe_plain_http(const char *registry_host);

#endif
