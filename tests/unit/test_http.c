/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP server over real sockets, driven by a real reactor in this thread while a
 * client thread talks to it: the address rule (no non-loopback bind without a token), the
 * Host rule that stops a DNS name rebound to 127.0.0.1, the bearer token, read-only
 * methods, a streamed answer that waits and is woken, and 200 silent connections that do
 * not keep a real client from being answered. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/http.h"
#include "common/proc.h"
#include "common/reactor.h"

static void test_addr_parse(void **state)
{
    (void)state;
    char host[64];
    int port = 0, lo = 0;

    assert_int_equal(farm_endpoint_parse_addr(host, sizeof host, &port, &lo, "127.0.0.1:9180"), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9180);
    assert_int_equal(lo, 1);
    assert_int_equal(farm_endpoint_parse_addr(host, sizeof host, &port, &lo, "[::1]:80"), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(lo, 1);
    assert_int_equal(farm_endpoint_parse_addr(host, sizeof host, &port, &lo, "0.0.0.0:9180"), 0);
    assert_int_equal(lo, 0);
    const char *bad[] = {"", "127.0.0.1", "localhost:9180", "127.0.0.1.nip.io:9180",
                         "http://127.0.0.1:9180", "127.0.0.1:0x50", "127.0.0.1:70000",
                         "127.0.0.1:9180/metrics"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (farm_endpoint_parse_addr(host, sizeof host, &port, &lo, bad[i]) == 0)
            fail_msg("\"%s\" was taken for ADDR:PORT", bad[i]);
}

static void test_token_equal(void **state)
{
    (void)state;
    assert_true(farm_http_token_equal("s3cret", "s3cret"));
    assert_false(farm_http_token_equal("s3cre", "s3cret"));
    assert_false(farm_http_token_equal("s3cret ", "s3cret"));
    assert_false(farm_http_token_equal("", "s3cret"));
}

/* -- a live server ----------------------------------------------------------------------- */

typedef struct {
    farm_reactor_t *r;
    farm_http_t *http;
    farm_http_stream_t *stream;
    int stream_step; /* 0 nothing yet, 1 one chunk, 2 end */
    volatile int stop;
    int port;
    void (*client)(void *arg);
} fx_t;

static ssize_t s_fill(void *arg, char *buf, size_t max)
{
    fx_t *fx = arg;
    static int sent;
    if (fx->stream_step == 0)
        return 0;
    if (fx->stream_step == 1 && !sent) {
        sent = 1;
        memcpy(buf, "first\n", 6);
        return 6;
    }
    if (fx->stream_step == 2) {
        if (sent == 1) {
            sent = 2;
            memcpy(buf, "last\n", 5);
            return 5;
        }
        return -1;
    }
    return 0;
}

static void s_done(void *arg)
{
    ((fx_t *)arg)->stream = NULL;
}

static int s_step(farm_reactor_t *r, void *arg)
{
    fx_t *fx = arg;
    fx->stream_step++;
    farm_http_stream_wake(fx->stream);
    return 0;
}

static void s_handler(void *arg, farm_http_req_t *req)
{
    fx_t *fx = arg;
    const char *q = farm_http_req_query(req, "q");
    if (!strcmp(farm_http_req_path(req), "/stream")) {
        fx->stream = farm_http_reply_stream(req, "text/plain", s_fill, s_done, fx);
        /* the stream waits (nothing to send) until these wake it */
        farm_reactor_timer_add(fx->r, "step", 300, 2, s_step, fx);
        return;
    }
    farm_http_reply_error(req, 200, "path=%s q=%s", farm_http_req_path(req), q ? q : "-");
}

static int s_connect(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 5};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        fail_msg("connect to 127.0.0.1:%d failed", port);
    return fd;
}

/* Sends raw, reads the whole answer; returns the status code, body into out. */
static int s_request(int port, const char *raw, char *out, size_t cap)
{
    int fd = s_connect(port), status = 0;
    size_t len = 0;
    ssize_t n;
    char *body;
    assert_int_equal(write(fd, raw, strlen(raw)), (ssize_t)strlen(raw));
    while (len + 1 < cap && (n = read(fd, out + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(fd);
    sscanf(out, "HTTP/1.%*d %d", &status);
    if ((body = strstr(out, "\r\n\r\n")))
        memmove(out, body + 4, strlen(body + 4) + 1);
    return status;
}

static void *s_client_thread(void *arg)
{
    fx_t *fx = arg;
    fx->client(fx);
    fx->stop = 1;
    return NULL;
}

static int s_guard(farm_reactor_t *r, void *arg)
{
    return -99;
}

static void s_run(fx_t *fx, const char *token, void (*client)(void *))
{
    pthread_t t;
    fx->r = farm_reactor_new();
    fx->http = farm_http_new(fx->r, "127.0.0.1:0", token, 0, s_handler, fx);
    if (!fx->http)
        fail_msg("farm_http_new: %s", farm_error_last());
    fx->port = farm_http_port(fx->http);
    assert_true(fx->port > 0);
    fx->client = client;
    farm_reactor_timer_add(fx->r, "guard", 30000, 1, s_guard, NULL);
    pthread_create(&t, NULL, s_client_thread, fx);
    assert_int_equal(farm_reactor_run(fx->r, &fx->stop), 0);
    pthread_join(t, NULL);
    farm_http_destroy(&fx->http);
    assert_null(fx->http);
    farm_reactor_destroy(&fx->r);
}

static void s_loopback_client(void *arg)
{
    fx_t *fx = arg;
    char buf[8192], req[512];

    snprintf(req, sizeof req, "GET /a/b?q=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", fx->port);
    assert_int_equal(s_request(fx->port, req, buf, sizeof buf), 200);
    assert_string_equal(buf, "path=/a/b q=1\n");
    assert_int_equal(s_request(fx->port, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", buf, sizeof buf), 200);
    assert_int_equal(s_request(fx->port, "GET / HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\n\r\n", buf, sizeof buf), 200);
    /* the DNS rebinding attack: another site's name, resolved to 127.0.0.1 */
    const char *hosts[] = {"evil.example", "127.0.0.1.nip.io:8080", "localhost.evil.example", "10.0.0.1"};
    for (size_t i = 0; i < sizeof hosts / sizeof *hosts; i++) {
        snprintf(req, sizeof req, "GET /api/nodes HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", hosts[i]);
        if (s_request(fx->port, req, buf, sizeof buf) != 403)
            fail_msg("Host %s was answered: %s", hosts[i], buf);
        assert_non_null(strstr(buf, "Host must be a loopback address"));
    }
    snprintf(req, sizeof req, "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
    assert_int_equal(s_request(fx->port, req, buf, sizeof buf), 405);
    assert_non_null(strstr(buf, "read-only"));
    snprintf(req, sizeof req, "DELETE /x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert_int_equal(s_request(fx->port, req, buf, sizeof buf), 405);

    /* a stream that has nothing at first: parked, then woken twice, then over */
    long long t0 = farm_now_ms();
    assert_int_equal(s_request(fx->port, "GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", buf, sizeof buf), 200);
    assert_true(farm_now_ms() - t0 >= 500);
    assert_non_null(strstr(buf, "first\n"));
    assert_non_null(strstr(buf, "last\n"));
    assert_true(strstr(buf, "first") < strstr(buf, "last"));

    /* 200 connections that send nothing: a real request is still answered at once */
    int silent[200];
    for (int i = 0; i < 200; i++)
        silent[i] = s_connect(fx->port);
    t0 = farm_now_ms();
    snprintf(req, sizeof req, "GET /still HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert_int_equal(s_request(fx->port, req, buf, sizeof buf), 200);
    assert_string_equal(buf, "path=/still q=-\n");
    if (farm_now_ms() - t0 > 2000)
        fail_msg("answered after %lld ms with 200 silent connections open", farm_now_ms() - t0);
    /* and one that sends a header past the per-connection memory is cut off, not served */
    {
        int fd = s_connect(fx->port);
        char big[FARM_HTTP_CONNECTION_MEMORY + 1024];
        memset(big, 'a', sizeof big);
        const char *head = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ";
        memcpy(big, head, strlen(head));
        ssize_t w = write(fd, big, sizeof big);
        (void)w;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
        assert_null(strstr(buf, "HTTP/1.1 200"));
        close(fd);
    }
    for (int i = 0; i < 200; i++)
        close(silent[i]);
}

static void test_loopback_server(void **state)
{
    (void)state;
    fx_t fx = {0};
    s_run(&fx, NULL, s_loopback_client);
}

static void s_token_client(void *arg)
{
    fx_t *fx = arg;
    char buf[8192];
    assert_int_equal(s_request(fx->port, "GET /m HTTP/1.1\r\nHost: farm.example\r\nConnection: close\r\n\r\n", buf, sizeof buf), 401);
    assert_non_null(strstr(buf, "needs a token"));
    assert_int_equal(s_request(fx->port, "GET /m HTTP/1.1\r\nHost: farm.example\r\nAuthorization: Bearer wrong\r\nConnection: close\r\n\r\n", buf, sizeof buf), 401);
    assert_non_null(strstr(buf, "token is wrong"));
    assert_int_equal(s_request(fx->port, "GET /m HTTP/1.1\r\nHost: farm.example\r\nAuthorization: Basic dG9rZW4=\r\nConnection: close\r\n\r\n", buf, sizeof buf), 401);
    /* with a token any Host is fine: the token is what a rebinding page cannot send */
    assert_int_equal(s_request(fx->port, "GET /m HTTP/1.1\r\nHost: farm.example\r\nAuthorization: Bearer t0ken-x\r\nConnection: close\r\n\r\n", buf, sizeof buf), 200);
    assert_string_equal(buf, "path=/m q=-\n");
}

static void test_token_server(void **state)
{
    (void)state;
    fx_t fx = {0};
    s_run(&fx, "t0ken-x", s_token_client);
}

static void test_refuses_open_bind_without_token(void **state)
{
    (void)state;
    farm_reactor_t *r = farm_reactor_new();
    assert_null(farm_http_new(r, "0.0.0.0:0", NULL, 0, s_handler, NULL));
    assert_non_null(strstr(farm_error_last(), "not a loopback address and no token"));
    assert_null(farm_http_new(r, "0.0.0.0:0", "", 0, s_handler, NULL));
    farm_reactor_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse),
        cmocka_unit_test(test_token_equal),
        cmocka_unit_test(test_loopback_server),
        cmocka_unit_test(test_token_server),
        cmocka_unit_test(test_refuses_open_bind_without_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
