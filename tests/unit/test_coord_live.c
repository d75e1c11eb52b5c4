/* SPDX-License-Identifier: Apache-2.0 */
/* The coordinator over real ZeroMQ sockets, with test peers for agents and a client (no
 * builder, no registry): a node whose connection is gone must not swallow jobs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <zmq.h>

#include "common/config.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/wire.h"
#include "coordinator/coordinator.h"
#include "coordinator/stitch.h"

/* Every wait for the coordinator: generous, as the machine may be loaded. */
#define WAIT_MS 30000

typedef struct {
    farm_coordinator_t *coord;
    volatile int stop;
    pthread_t thread;
    char agents[64], clients[64], dir[64];
    void *zctx;
    /* the test's peers: closed by the teardown when a failed assertion skipped the test's
     * own close, since zmq_ctx_term waits for every socket of its context to be closed */
    void *a, *b, *c;
} fx_t;

static long long s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *s_run(void *arg)
{
    fx_t *fx = arg;
    farm_coordinator_run(fx->coord, &fx->stop);
    return NULL;
}

static int s_free_port(void)
{
    void *z = zmq_ctx_new(), *s = zmq_socket(z, ZMQ_ROUTER);
    char ep[64];
    size_t len = sizeof ep;
    int port = 0;
    if (zmq_bind(s, "tcp://127.0.0.1:*") == 0 && zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len) == 0)
        port = atoi(strrchr(ep, ':') + 1);
    zmq_close(s);
    zmq_ctx_term(z);
    return port;
}

static int s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    char yaml[1024];
    farm_config_t *cfg = NULL;

    snprintf(fx->dir, sizeof fx->dir, "/tmp/farm-coord-live.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    /* a port found free may be taken by another process before the coordinator binds it
     * (other tests run on this machine): try fresh ports a few times */
    for (int tries = 0; tries < 5 && !fx->coord; tries++) {
        snprintf(fx->agents, sizeof fx->agents, "tcp://127.0.0.1:%d", s_free_port());
        snprintf(fx->clients, sizeof fx->clients, "tcp://127.0.0.1:%d", s_free_port());
        /* heartbeats far apart: only the send itself can reveal the dead node */
        snprintf(yaml, sizeof yaml,
                 "coordinator: {agents: '%s', clients: '%s', heartbeat: 20s, state_dir: '%s'}\n"
                 "platforms:\n  linux/amd64: [a, b]\n"
                 "nodes:\n  a: {slots: 1}\n  b: {slots: 1}\n", fx->agents, fx->clients, fx->dir);
        assert_int_equal(farm_config_parse(&cfg, "live.yaml", yaml, strlen(yaml), NULL), 0);
        fx->coord = farm_coordinator_new(&cfg);
    }
    assert_non_null(fx->coord);
    assert_int_equal(pthread_create(&fx->thread, NULL, s_run, fx), 0);
    fx->zctx = zmq_ctx_new();
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *fx = *state;
    char cmd[128];
    fx->stop = 1;
    pthread_join(fx->thread, NULL);
    farm_coordinator_destroy(&fx->coord);
    if (fx->a)
        zmq_close(fx->a);
    if (fx->b)
        zmq_close(fx->b);
    if (fx->c)
        zmq_close(fx->c);
    zmq_ctx_term(fx->zctx);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

/* The next message of type `want` within WAIT_MS (others are skipped); NULL if none. */
static Farm__Envelope *s_expect(void *sock, Farm__Envelope__BodyCase want)
{
    long long deadline = s_now_ms() + WAIT_MS, left;
    while ((left = deadline - s_now_ms()) > 0) {
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        Farm__Envelope *env = NULL;
        if (zmq_poll(&it, 1, left) <= 0)
            return NULL;
        if (farm_wire_recv(sock, NULL, NULL, &env) < 0)
            continue;
        if (env->body_case == want)
            return env;
        farm_wire_free(&env);
    }
    return NULL;
}

/* 1 if socket inode ino is one of this process's fds (the coordinator runs in it). */
static int s_own_socket(unsigned long ino)
{
    char path[300], link[64], want[64];
    struct dirent *e;
    int found = 0;
    DIR *d = opendir("/proc/self/fd");

    assert_non_null(d);
    snprintf(want, sizeof want, "socket:[%lu]", ino);
    while (!found && (e = readdir(d))) {
        ssize_t n;
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        n = readlink(path, link, sizeof link - 1);
        found = n > 0 && (link[n] = '\0', strcmp(link, want) == 0);
    }
    closedir(d);
    return found;
}

/* The coordinator's connections on its agents port that it has not closed yet
 * (ESTABLISHED, or CLOSE_WAIT: the peer's FIN not yet acted on), from /proc/net/tcp;
 * only our own sockets count, not another process's that shares the port number. */
static int s_agent_conns(const fx_t *fx)
{
    unsigned port = (unsigned)atoi(strrchr(fx->agents, ':') + 1), lport, st;
    unsigned long ino;
    char line[512];
    int n = 0;
    FILE *f = fopen("/proc/net/tcp", "r");

    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, " %*u: %*x:%x %*x:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &lport,
                   &st, &ino) == 3 && lport == port && (st == 0x01 || st == 0x08) &&
            s_own_socket(ino))
            n++;
    fclose(f);
    return n;
}

static void s_send(void *sock, Farm__Envelope *env)
{
    env->version = FARM_WIRE_VERSION;
    assert_int_equal(farm_wire_send(sock, NULL, 0, env), 0);
}

/* Agent `name`'s socket, kept in *out (for the teardown), once the coordinator welcomed it. */
static void *s_agent(void **out, fx_t *fx, const char *name)
{
    void *s = *out = farm_wire_socket(fx->zctx, FARM_WIRE_DEALER_CLIENT, fx->agents, name);
    Farm__Envelope env = FARM__ENVELOPE__INIT, *got;
    Farm__Hello h = FARM__HELLO__INIT;
    char *plats[] = {"linux/amd64"};
    h.name = (char *)name;
    h.platforms = plats;
    h.n_platforms = 1;
    h.slots = 1;
    h.builder = "test";
    h.version = FARM_VERSION;
    h.session = 42;
    env.body_case = FARM__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    s_send(s, &env);
    got = s_expect(s, FARM__ENVELOPE__BODY_WELCOME);
    assert_non_null(got);
    farm_wire_free(&got);
    return s;
}

/* Until the coordinator holds `want` agent connections, at most WAIT_MS; the count. */
static int s_wait_conns(const fx_t *fx, int want)
{
    long long deadline = s_now_ms() + WAIT_MS;
    int n;
    while ((n = s_agent_conns(fx)) != want && s_now_ms() < deadline)
        usleep(10 * 1000);
    return n;
}

static void test_unreachable_node_does_not_swallow_jobs(void **state)
{
    fx_t *fx = *state;
    void *a = s_agent(&fx->a, fx, "a"), *b = s_agent(&fx->b, fx, "b");
    void *c = fx->c = farm_wire_socket(fx->zctx, FARM_WIRE_DEALER_CLIENT, fx->clients, NULL);
    Farm__Envelope env = FARM__ENVELOPE__INIT, *got;
    Farm__ContextOffer offer = FARM__CONTEXT_OFFER__INIT;
    Farm__ContextChunk chunk = FARM__CONTEXT_CHUNK__INIT;
    Farm__Submit sub = FARM__SUBMIT__INIT;
    char digest[FARM_DIGEST_STRLEN], *tags[] = {"127.0.0.1:1/t/app:1"}, *plats[] = {"linux/amd64"};
    const char ctx[] = "not really a tar";
    int lost_said = 0;

    /* node a goes away without a word: the coordinator still counts it ready. Wait (not
     * a fixed nap) until the coordinator's I/O thread has closed a's connection: by then
     * the pipe's end is queued to its ROUTER, so the send to a fails at its next poll */
    assert_int_equal(s_wait_conns(fx, 2), 2);
    zmq_close(a);
    fx->a = NULL;
    assert_int_equal(s_wait_conns(fx, 1), 1);

    farm_digest_buffer(digest, ctx, sizeof ctx);
    offer.digest = digest;
    offer.size = sizeof ctx;
    env.body_case = FARM__ENVELOPE__BODY_CONTEXT_OFFER;
    env.context_offer = &offer;
    s_send(c, &env);
    got = s_expect(c, FARM__ENVELOPE__BODY_CONTEXT_STATUS);
    assert_non_null(got);
    farm_wire_free(&got);
    chunk.digest = digest;
    chunk.data.data = (uint8_t *)ctx;
    chunk.data.len = sizeof ctx;
    env.body_case = FARM__ENVELOPE__BODY_CONTEXT_CHUNK;
    env.context_chunk = &chunk;
    s_send(c, &env);
    got = s_expect(c, FARM__ENVELOPE__BODY_CONTEXT_STATUS);
    assert_non_null(got);
    assert_true(got->context_status->have);
    farm_wire_free(&got);

    sub.n_tags = 1;
    sub.tags = tags;
    sub.n_platforms = 1;
    sub.platforms = plats;
    sub.context_digest = digest;
    env.body_case = FARM__ENVELOPE__BODY_SUBMIT;
    env.submit = &sub;
    s_send(c, &env);
    got = s_expect(c, FARM__ENVELOPE__BODY_ACCEPTED);
    assert_non_null(got);
    farm_wire_free(&got);

    /* a (first in farm.yaml, idle) was picked, found unreachable, lost; the job went to b
     * as attempt 2 instead of failing the build */
    got = s_expect(b, FARM__ENVELOPE__BODY_JOB_ASSIGN);
    assert_non_null(got);
    assert_int_equal(got->job_assign->attempt, 2);
    farm_wire_free(&got);
    for (int i = 0; i < 10 && !lost_said; i++) {
        got = s_expect(c, FARM__ENVELOPE__BODY_EVENT);
        assert_non_null(got);
        assert_int_not_equal(got->event->kind, FARM__EVENT_KIND__EVENT_FAILED);
        lost_said = got->event->kind == FARM__EVENT_KIND__EVENT_LOST &&
                    strstr(got->event->message, "node a lost (unreachable") != NULL;
        farm_wire_free(&got);
    }
    assert_true(lost_said);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unreachable_node_does_not_swallow_jobs, s_setup,
                                        s_teardown),
    };
    /* the coordinator runs its index push as /proc/self/exe stitch: that is us */
    if (argc == 2 && strcmp(argv[1], "stitch") == 0)
        return farm_stitch_main();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
