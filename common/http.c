/* SPDX-License-Identifier: Apache-2.0 */
#include "common/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zmq.h>

#include "common/endpoint.h"
#include "common/error.h"
#include "common/log.h"

/* The longest wait between two MHD_run calls when MHD names no deadline. */
#define S_IDLE_RUN_MS 1000

struct farm_http_stream {
    farm_http_t *http;
    struct MHD_Connection *conn;
    farm_http_fill_fn fill;
    farm_http_done_fn done;
    void *arg;
    int suspended;
    int over; /* the server is going away: end at the next fill */
    farm_http_stream_t *prev, *next;
};

struct farm_http {
    farm_reactor_t *reactor;
    struct MHD_Daemon *d;
    int reader, timer;
    int open; /* no token, no Host rule: see farm_http_new */
    char *token; /* NULL: none (loopback only) */
    farm_http_handler_fn fn;
    void *arg;
    farm_http_stream_t *streams; /* every live stream, for wake-up at destroy */
    int port;
};

struct farm_http_req {
    farm_http_t *http;
    struct MHD_Connection *conn;
    const char *path;
    int head;
    int answered;
};

static void s_schedule(farm_http_t *self)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;
    long long next = S_IDLE_RUN_MS;

    if (MHD_get_timeout(self->d, &ms) == MHD_YES && ms < (MHD_UNSIGNED_LONG_LONG)next)
        next = (long long)ms;
    farm_reactor_timer_reset(self->reactor, self->timer, next);
}

static int s_on_ready(farm_reactor_t *reactor, int revents, void *arg)
{
    farm_http_t *self = arg;
    MHD_run(self->d);
    s_schedule(self);
    return 0;
}

static int s_on_timer(farm_reactor_t *reactor, void *arg)
{
    farm_http_t *self = arg;
    MHD_run(self->d);
    s_schedule(self);
    return 0;
}

static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    farm_log_debug("http: %s", line);
}

int farm_http_token_equal(const char *token, const char *want)
{
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    /* digests first: the comparison then takes the same time whatever the lengths */
    SHA256((const unsigned char *)token, strlen(token), a);
    SHA256((const unsigned char *)want, strlen(want), b);
    return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

/* Host: a loopback address or localhost, with or without a port. */
static int s_host_loopback(const char *host)
{
    char e[300];
    const char *end;
    size_t n;

    if (!host || !*host || strlen(host) > 255)
        return 0;
    if (host[0] == '[') {
        end = strchr(host, ']');
        if (!end)
            return 0;
        n = (size_t)(end - host) + 1;
    } else {
        end = strchr(host, ':');
        n = end ? (size_t)(end - host) : strlen(host);
    }
    if (n == 9 && strncasecmp(host, "localhost", 9) == 0)
        return 1;
    snprintf(e, sizeof e, "tcp://%.*s:1", (int)n, host);
    return farm_endpoint_loopback(e);
}

static enum MHD_Result s_queue(farm_http_req_t *req, int status, struct MHD_Response *r,
                               const char *content_type)
{
    enum MHD_Result ok;
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    /* the page loads only its own files, and no other site may frame it */
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; frame-ancestors 'none'");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    ok = MHD_queue_response(req->conn, (unsigned)status, r);
    MHD_destroy_response(r);
    req->answered = 1;
    return ok;
}

int farm_http_reply(farm_http_req_t *req, int status, const char *content_type,
                    const void *body, size_t len)
{
    struct MHD_Response *r;
    if (req->answered)
        return FARM_ERROR;
    r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    return s_queue(req, status, r, content_type) == MHD_YES ? 0 : FARM_ERROR;
}

int farm_http_reply_take(farm_http_req_t *req, int status, const char *content_type,
                         char *body, size_t len)
{
    struct MHD_Response *r;
    if (req->answered || !body) {
        free(body);
        return req->answered ? FARM_ERROR : farm_http_reply_error(req, 500, "out of memory");
    }
    r = MHD_create_response_from_buffer_with_free_callback(len, body, free);
    if (!r)
        free(body);
    return s_queue(req, status, r, content_type) == MHD_YES ? 0 : FARM_ERROR;
}

int farm_http_reply_error(farm_http_req_t *req, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof msg - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof msg - 2)
        n = (int)sizeof msg - 2;
    msg[n++] = '\n';
    return farm_http_reply(req, status, "text/plain; charset=utf-8", msg, (size_t)n);
}

const char *farm_http_req_path(const farm_http_req_t *req)
{
    return req->path;
}

const char *farm_http_req_query(const farm_http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* -- streams ----------------------------------------------------------------------- */

static ssize_t s_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    farm_http_stream_t *s = cls;
    ssize_t n;

    if (s->over)
        return MHD_CONTENT_READER_END_OF_STREAM;
    n = s->fill(s->arg, buf, max);
    if (n < 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n == 0) {
        /* nothing yet: park the connection (MHD would otherwise ask again every run) */
        MHD_suspend_connection(s->conn);
        s->suspended = 1;
    }
    return n;
}

static void s_stream_free(void *cls)
{
    farm_http_stream_t *s = cls;
    farm_http_t *http = s->http;

    if (s->prev)
        s->prev->next = s->next;
    else
        http->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (s->done)
        s->done(s->arg);
    free(s);
}

farm_http_stream_t *farm_http_reply_stream(farm_http_req_t *req, const char *content_type,
                                           farm_http_fill_fn fill, farm_http_done_fn done,
                                           void *arg)
{
    farm_http_stream_t *s = calloc(1, sizeof *s);
    struct MHD_Response *r;

    if (!s || req->answered) {
        free(s);
        return NULL;
    }
    /* done stays unset until the answer is queued: a failure leaves arg to the caller */
    *s = (farm_http_stream_t){.http = req->http, .conn = req->conn, .fill = fill,
                              .arg = arg, .next = req->http->streams};
    if (s->next)
        s->next->prev = s;
    req->http->streams = s;
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, s_stream_read, s,
                                          s_stream_free);
    if (!r) {
        s_stream_free(s);
        return NULL;
    }
    /* s_queue destroys our reference: the connection keeps the response (and s) alive;
     * when it could not queue, s is freed with the response */
    if (s_queue(req, MHD_HTTP_OK, r, content_type) != MHD_YES)
        return NULL;
    s->done = done;
    return s;
}

void farm_http_stream_wake(farm_http_stream_t *s)
{
    if (!s || !s->suspended)
        return;
    s->suspended = 0;
    MHD_resume_connection(s->conn);
    farm_reactor_timer_reset(s->http->reactor, s->http->timer, 0);
}

/* -- requests ---------------------------------------------------------------------- */

static enum MHD_Result s_access(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **con_cls)
{
    static int seen;
    farm_http_t *self = cls;
    farm_http_req_t req = {.http = self, .conn = conn, .path = url};

    if (*con_cls) {
        *upload_data_size = 0; /* a body sent anyway is read and dropped */
        return MHD_YES;
    }
    *con_cls = &seen;
    req.head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (strcmp(method, MHD_HTTP_METHOD_GET) && !req.head)
        return farm_http_reply_error(&req, MHD_HTTP_METHOD_NOT_ALLOWED,
                                     "%s: this endpoint is read-only; use GET", method) == 0
                   ? MHD_YES
                   : MHD_NO;
    if (self->token) {
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_AUTHORIZATION);
        if (!auth || strncasecmp(auth, "Bearer ", 7) ||
            !farm_http_token_equal(auth + 7, self->token)) {
            farm_http_reply_error(&req, MHD_HTTP_UNAUTHORIZED,
                                  "%s: send \"Authorization: Bearer TOKEN\" with the token "
                                  "in the file that coordinator.http_token_file names",
                                  auth ? "the token is wrong" : "this endpoint needs a token");
            return MHD_YES;
        }
    } else if (!self->open && !s_host_loopback(MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                            MHD_HTTP_HEADER_HOST))) {
        /* a DNS name rebound to 127.0.0.1 must not let another site's page read this */
        farm_http_reply_error(&req, MHD_HTTP_FORBIDDEN,
                              "Host must be a loopback address or localhost (this endpoint "
                              "has no token); open it as http://127.0.0.1:PORT/");
        return MHD_YES;
    }
    self->fn(self->arg, &req);
    if (!req.answered)
        farm_http_reply_error(&req, MHD_HTTP_INTERNAL_SERVER_ERROR, "no answer for %s", url);
    return MHD_YES;
}

farm_http_t *farm_http_new(farm_reactor_t *reactor, const char *addr, const char *token,
                           int open, farm_http_handler_fn fn, void *arg)
{
    farm_http_t *self = NULL;
    char host[256];
    int port, loopback;
    struct sockaddr_storage ss;
    socklen_t sslen;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *info;

    size_t alen = strlen(addr);
    char probe[300];
    int any_port = alen > 2 && strcmp(addr + alen - 2, ":0") == 0;

    /* ADDR:0 (tests): any free port, read back with farm_http_port */
    if (any_port && snprintf(probe, sizeof probe, "%.*s:1", (int)(alen - 2), addr) >=
                        (int)sizeof probe)
        any_port = 0;
    if (farm_endpoint_parse_addr(host, sizeof host, &port, &loopback, any_port ? probe : addr) < 0)
        return farm_error_wrap(FARM_EINVALID, "%s", addr), NULL;
    if (any_port)
        port = 0;
    if (!loopback && !open && (!token || !*token)) {
        farm_error_set(FARM_EINVALID, "%s is not a loopback address and no token is set: "
                                      "anyone who reaches it could read the farm; give a "
                                      "token or bind 127.0.0.1", addr);
        return NULL;
    }
    memset(&ss, 0, sizeof ss);
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, host, &a->sin6_addr);
        sslen = sizeof *a;
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, host, &a->sin_addr);
        sslen = sizeof *a;
    }
    (void)sslen;
    if (!(self = calloc(1, sizeof *self)))
        goto oom;
    self->reactor = reactor;
    self->fn = fn;
    self->arg = arg;
    self->reader = self->timer = -1;
    self->open = open;
    if (token && *token && !(self->token = strdup(token)))
        goto oom;
    self->d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, s_access, self, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)FARM_HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)FARM_HTTP_CONNECTION_MEMORY, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)FARM_HTTP_IDLE_TIMEOUT_S, MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, NULL,
        MHD_OPTION_END);
    if (!self->d) {
        farm_error_set(FARM_EIO, "cannot listen on %s for HTTP (is the port in use, or the "
                                 "address not this machine's?)", addr);
        goto fail;
    }
    info = MHD_get_daemon_info(self->d, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : port;
    info = MHD_get_daemon_info(self->d, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info || (self->reader = farm_reactor_add_fd(reactor, info->epoll_fd, ZMQ_POLLIN,
                                                     s_on_ready, self)) < 0 ||
        (self->timer = farm_reactor_timer_add(reactor, "http", S_IDLE_RUN_MS, 0, s_on_timer,
                                              self)) < 0) {
        farm_error_set(FARM_ERROR, "cannot poll the HTTP server on %s", addr);
        goto fail;
    }
    return self;
oom:
    farm_error_set(FARM_ERROR, "out of memory");
fail:
    farm_http_destroy(&self);
    return NULL;
}

int farm_http_port(const farm_http_t *self)
{
    return self->port;
}

void farm_http_destroy(farm_http_t **self_p)
{
    farm_http_t *self;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    if (self->reader > 0)
        farm_reactor_remove(self->reactor, self->reader);
    if (self->timer > 0)
        farm_reactor_timer_cancel(self->reactor, self->timer);
    if (self->d) {
        /* a parked stream is resumed to end: MHD stops only with none suspended */
        for (farm_http_stream_t *s = self->streams; s; s = s->next) {
            s->over = 1;
            if (s->suspended) {
                s->suspended = 0;
                MHD_resume_connection(s->conn);
            }
        }
        MHD_run(self->d);
        MHD_stop_daemon(self->d);
    }
    free(self->token);
    free(self);
    *self_p = NULL;
}
