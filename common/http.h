/* SPDX-License-Identifier: Apache-2.0 */
/* A small read-only HTTP server (libmicrohttpd) that a daemon's reactor drives: MHD runs
 * in external mode on its epoll fd, which the reactor polls like any other fd, so there
 * is no thread and a handler may read the daemon's state directly. Only GET and HEAD are
 * answered. Every client is bounded: connections at once, memory per connection (which
 * bounds the request line and headers) and an idle timeout, so a slow or silent client
 * holds a little memory for a while and never the reactor.
 *
 * Who may read: with a token, every request must carry "Authorization: Bearer TOKEN"
 * (compared in constant time); without one, the server binds to a loopback address only
 * (farm_http_addr_parse says which) and answers only requests whose Host is a loopback
 * address or "localhost", so a web page from elsewhere cannot read it through a DNS name
 * rebound to 127.0.0.1. */
#ifndef FARM_HTTP_H
#define FARM_HTTP_H

#include <stddef.h>
#include <sys/types.h>

#include "common/endpoint.h" /* farm_endpoint_parse_addr: ADDR:PORT */
#include "common/reactor.h"

/* Bounds on clients (see above). */
#define FARM_HTTP_MAX_CONNECTIONS 256
#define FARM_HTTP_CONNECTION_MEMORY (32 * 1024)
#define FARM_HTTP_IDLE_TIMEOUT_S 10

typedef struct farm_http farm_http_t;
typedef struct farm_http_req farm_http_req_t;
typedef struct farm_http_stream farm_http_stream_t;

/* Handles one request (GET or HEAD, authorised): answers with farm_http_reply* exactly
 * once. A handler that answers nothing gets a 500. */
typedef void (*farm_http_handler_fn)(void *arg, farm_http_req_t *req);

/* Listens on addr (ADDR:PORT; port 0 picks one, see farm_http_port) and serves through
 * fn. token: NULL or "" for none; then addr must be loopback (refused otherwise), unless
 * open: what fn serves may be read by anyone who reaches addr (an agent's counters), so
 * no token and no Host rule apply. NULL with the error slot set when it cannot listen. */
farm_http_t *farm_http_new(farm_reactor_t *reactor, const char *addr, const char *token,
                           int open, farm_http_handler_fn fn, void *arg);
void farm_http_destroy(farm_http_t **self_p);
int farm_http_port(const farm_http_t *self);

/* The request: its path (without the query) and a query argument (NULL if absent). */
const char *farm_http_req_path(const farm_http_req_t *req);
const char *farm_http_req_query(const farm_http_req_t *req, const char *name);

/* Answers with body (copied). content_type e.g. "application/json". */
int farm_http_reply(farm_http_req_t *req, int status, const char *content_type,
                    const void *body, size_t len);
/* Answers with body (taken: freed by the server with free()). */
int farm_http_reply_take(farm_http_req_t *req, int status, const char *content_type,
                         char *body, size_t len);
/* A plain-text error: "message\n". */
int farm_http_reply_error(farm_http_req_t *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A streamed answer (chunked): fill writes up to max bytes to buf and returns how many,
 * 0 when it has nothing yet (the connection then waits, costing nothing, until
 * farm_http_stream_wake), or -1 when the stream is over. done is called once when the
 * stream ends for any reason (over, client gone, server destroyed): after it, the
 * stream pointer is invalid and wake must not be called with it. NULL when the answer
 * could not be made: done is not called, arg is still the caller's. */
typedef ssize_t (*farm_http_fill_fn)(void *arg, char *buf, size_t max);
typedef void (*farm_http_done_fn)(void *arg);
farm_http_stream_t *farm_http_reply_stream(farm_http_req_t *req, const char *content_type,
                                           farm_http_fill_fn fill, farm_http_done_fn done,
                                           void *arg);
/* More to send (or the end): the waiting connection calls fill again. */
void farm_http_stream_wake(farm_http_stream_t *s);

/* 1 when token matches want, in time that does not depend on where they differ. */
int farm_http_token_equal(const char *token, const char *want);

#endif
