/* SPDX-License-Identifier: Apache-2.0 */
/* The reactor: readers on real ZeroMQ sockets and pipes, timers in deadline order and with
 * their counts, cancel/remove from inside handlers (the removed entry is never called),
 * errors and *stop ending the run, the turn-end hook, timer_reset.
 * Timings are loose on purpose: the machine is shared. Assertions are about order and
 * counts, and "within 2 s" at most. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>
#include <zmq.h>

#include "common/reactor.h"
#include "common/wire.h"

#define GUARD_RC (-99)

/* A run that hangs fails instead: the guard ends it with GUARD_RC after 5 s. */
static int s_guard(farm_reactor_t *r, void *arg)
{
    return GUARD_RC;
}

static int s_set_stop(farm_reactor_t *r, void *arg)
{
    *(volatile int *)arg = 1;
    return 0;
}

static farm_reactor_t *s_reactor(void)
{
    farm_reactor_t *r = farm_reactor_new();
    assert_non_null(r);
    assert_true(farm_reactor_timer_add(r, "guard", 5000, 1, s_guard, NULL) > 0);
    return r;
}

/* ---- readers ---- */

typedef struct {
    volatile int *stop;
    void *sock;
    int fd;
    int sock_calls, pipe_calls;
    char sock_msg[16], pipe_msg[16];
} io_t;

static int s_on_sock(farm_reactor_t *r, int revents, void *arg)
{
    io_t *io = arg;
    int n;

    assert_true(revents & ZMQ_POLLIN);
    n = zmq_recv(io->sock, io->sock_msg, sizeof io->sock_msg - 1, ZMQ_DONTWAIT);
    assert_true(n > 0);
    io->sock_msg[n] = '\0';
    io->sock_calls++;
    *io->stop = io->sock_calls && io->pipe_calls;
    return 0;
}

static int s_on_pipe(farm_reactor_t *r, int revents, void *arg)
{
    io_t *io = arg;
    ssize_t n;

    assert_true(revents & ZMQ_POLLIN);
    n = read(io->fd, io->pipe_msg, sizeof io->pipe_msg - 1);
    assert_true(n > 0);
    io->pipe_msg[n] = '\0';
    io->pipe_calls++;
    *io->stop = io->sock_calls && io->pipe_calls;
    return 0;
}

static void test_readers_socket_and_fd(void **state)
{
    volatile int stop = 0;
    void *zctx = zmq_ctx_new(), *a = zmq_socket(zctx, ZMQ_PAIR), *b = zmq_socket(zctx, ZMQ_PAIR);
    int fds[2];
    io_t io = {.stop = &stop, .sock = b};
    farm_reactor_t *r = s_reactor();

    assert_int_equal(zmq_bind(a, "inproc://reactor-test"), 0);
    assert_int_equal(zmq_connect(b, "inproc://reactor-test"), 0);
    assert_int_equal(pipe(fds), 0);
    io.fd = fds[0];
    assert_true(farm_reactor_add_socket(r, b, ZMQ_POLLIN, s_on_sock, &io) > 0);
    assert_true(farm_reactor_add_fd(r, fds[0], ZMQ_POLLIN, s_on_pipe, &io) > 0);
    assert_int_equal(zmq_send(a, "hello", 5, 0), 5);
    assert_int_equal(write(fds[1], "x", 1), 1);

    assert_int_equal(farm_reactor_run(r, &stop), 0);
    assert_int_equal(io.sock_calls, 1);
    assert_int_equal(io.pipe_calls, 1);
    assert_string_equal(io.sock_msg, "hello");
    assert_string_equal(io.pipe_msg, "x");

    farm_reactor_destroy(&r);
    assert_null(r);
    close(fds[0]);
    close(fds[1]);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(zctx);
}

/* Two readers, both ready in the same turn; whichever runs first removes the other and
 * frees its state (as a daemon drops a peer). The removed one must never be called:
 * under ASan that call would be a use-after-free, here it would also count. */
typedef struct peer {
    farm_reactor_t *r;
    int fd, id, calls;
    struct peer **other;   /* the other's slot: NULL once freed */
    int *removed_calls;    /* calls made on a peer after it was removed */
} peer_t;

static int s_on_peer(farm_reactor_t *r, int revents, void *arg)
{
    peer_t *p = arg;
    char c;

    p->calls++;
    assert_int_equal(read(p->fd, &c, 1), 1);
    if (*p->other) {
        farm_reactor_remove(r, (*p->other)->id);
        farm_reactor_remove(r, (*p->other)->id); /* twice: ignored */
        free(*p->other);
        *p->other = NULL;
    }
    return 0;
}

static void test_remove_other_ready_reader(void **state)
{
    volatile int stop = 0;
    int f1[2], f2[2];
    peer_t *p1 = calloc(1, sizeof *p1), *p2 = calloc(1, sizeof *p2);
    peer_t *slot1 = p1, *slot2 = p2;
    farm_reactor_t *r = s_reactor();

    assert_int_equal(pipe(f1), 0);
    assert_int_equal(pipe(f2), 0);
    *p1 = (peer_t){.r = r, .fd = f1[0], .other = &slot2};
    *p2 = (peer_t){.r = r, .fd = f2[0], .other = &slot1};
    p1->id = farm_reactor_add_fd(r, f1[0], ZMQ_POLLIN, s_on_peer, p1);
    p2->id = farm_reactor_add_fd(r, f2[0], ZMQ_POLLIN, s_on_peer, p2);
    assert_true(p1->id > 0 && p2->id > 0 && p1->id != p2->id);
    /* two bytes each: a reader still polled would be called again */
    assert_int_equal(write(f1[1], "ab", 2), 2);
    assert_int_equal(write(f2[1], "ab", 2), 2);
    assert_true(farm_reactor_timer_add(r, "stop", 200, 1, s_set_stop, (void *)&stop) > 0);

    assert_int_equal(farm_reactor_run(r, &stop), 0);
    /* exactly one survived, it was called for both its bytes, the other never */
    assert_true((slot1 == NULL) != (slot2 == NULL));
    assert_int_equal((slot1 ? slot1 : slot2)->calls, 2);

    farm_reactor_remove(r, 12345); /* unknown: ignored */
    farm_reactor_destroy(&r);
    free(slot1 ? slot1 : slot2);
    close(f1[0]);
    close(f1[1]);
    close(f2[0]);
    close(f2[1]);
}

/* Adding many entries from a handler grows the arrays mid-turn (realloc): the dispatch
 * in progress must not use stale pointers, and the new entries work. */
typedef struct {
    int trigger_fd, quiet_fd, ready_fd, fired, read_calls;
    volatile int *stop;
} grow_t;

static void s_grow_check(grow_t *g)
{
    *g->stop = g->fired == 100 && g->read_calls == 1;
}

static int s_grow_timer(farm_reactor_t *r, void *arg)
{
    ((grow_t *)arg)->fired++;
    s_grow_check(arg);
    return 0;
}

static int s_grow_read(farm_reactor_t *r, int revents, void *arg)
{
    grow_t *g = arg;
    char c;

    assert_int_equal(read(g->ready_fd, &c, 1), 1);
    g->read_calls++;
    s_grow_check(g);
    return 0;
}

static int s_never_io(farm_reactor_t *r, int revents, void *arg)
{
    fail_msg("a reader on a quiet fd was called");
    return -1;
}

static int s_grow_adder(farm_reactor_t *r, int revents, void *arg)
{
    grow_t *g = arg;
    char c;

    assert_int_equal(read(g->trigger_fd, &c, 1), 1);
    for (int i = 0; i < 100; i++)
        assert_true(farm_reactor_timer_add(r, "many", 0, 1, s_grow_timer, g) > 0);
    for (int i = 0; i < 20; i++)
        assert_true(farm_reactor_add_fd(r, g->quiet_fd, ZMQ_POLLIN, s_never_io, g) > 0);
    assert_true(farm_reactor_add_fd(r, g->ready_fd, ZMQ_POLLIN, s_grow_read, g) > 0);
    return 0;
}

static void test_add_inside_handler(void **state)
{
    volatile int stop = 0;
    int trigger[2], quiet[2], ready[2], id;
    grow_t g = {.stop = &stop};
    farm_reactor_t *r = s_reactor();

    assert_int_equal(pipe(trigger), 0);
    assert_int_equal(pipe(quiet), 0);
    assert_int_equal(pipe(ready), 0);
    g.trigger_fd = trigger[0];
    g.quiet_fd = quiet[0];
    g.ready_fd = ready[0];
    id = farm_reactor_add_fd(r, trigger[0], ZMQ_POLLIN, s_grow_adder, &g);
    assert_true(id > 0);
    assert_int_equal(write(trigger[1], "a", 1), 1);
    assert_int_equal(write(ready[1], "b", 1), 1);
    assert_int_equal(farm_reactor_run(r, &stop), 0);
    assert_int_equal(g.fired, 100);
    assert_int_equal(g.read_calls, 1);

    farm_reactor_destroy(&r);
    for (int i = 0; i < 2; i++) {
        close(trigger[i]);
        close(quiet[i]);
        close(ready[i]);
    }
}

/* ---- timers ---- */

typedef struct {
    char order[16];
    int n;
    volatile int *stop;
} seq_t;

typedef struct {
    seq_t *seq;
    char tag;
} seq_timer_t;

static int s_seq_fire(farm_reactor_t *r, void *arg)
{
    seq_timer_t *t = arg;
    t->seq->order[t->seq->n++] = t->tag;
    return 0;
}

static void s_seq_end(farm_reactor_t *r, void *arg)
{
    seq_t *s = arg;
    if (s->n >= 3)
        *s->stop = 1;
}

/* Three one-shots created latest-deadline first, all overdue when the run starts, so
 * they are due in the same turn: they fire by deadline, not by creation. */
static void test_timers_fire_in_deadline_order(void **state)
{
    volatile int stop = 0;
    seq_t seq = {.stop = &stop};
    seq_timer_t c = {&seq, 'c'}, b = {&seq, 'b'}, a = {&seq, 'a'};
    farm_reactor_t *r = s_reactor();

    assert_true(farm_reactor_timer_add(r, "c", 90, 1, s_seq_fire, &c) > 0);
    assert_true(farm_reactor_timer_add(r, "b", 60, 1, s_seq_fire, &b) > 0);
    assert_true(farm_reactor_timer_add(r, "a", 30, 1, s_seq_fire, &a) > 0);
    farm_reactor_set_turn_end(r, s_seq_end, &seq);
    usleep(150 * 1000);
    assert_int_equal(farm_reactor_run(r, &stop), 0);
    assert_int_equal(seq.n, 3);
    assert_memory_equal(seq.order, "abc", 3);
    assert_int_equal(farm_reactor_turns(r), 1);
    farm_reactor_destroy(&r);
}

typedef struct {
    int a, b, c;
    volatile int *stop;
} counts_t;

static int s_count_a(farm_reactor_t *r, void *arg)
{
    ((counts_t *)arg)->a++;
    return 0;
}

static int s_count_b(farm_reactor_t *r, void *arg)
{
    ((counts_t *)arg)->b++;
    return 0;
}

static int s_count_c(farm_reactor_t *r, void *arg)
{
    ((counts_t *)arg)->c++;
    return 0;
}

/* Every 400 ms: ends the run once the limited timers had their chances. A timer fires
 * at most once per turn, so after a stall (a loaded machine) a fixed 400 ms stop could
 * come before "three" had three turns; the counts are judged exactly afterwards. */
static int s_stop_when_counted(farm_reactor_t *r, void *arg)
{
    counts_t *n = arg;
    if (n->a >= 3 && n->b >= 2 && n->c >= 2)
        *n->stop = 1;
    return 0;
}

/* `times` is honoured: over 400 ms or more, a 10 ms timer limited to 3 fires exactly 3
 * times. */
static void test_timer_counts(void **state)
{
    volatile int stop = 0;
    counts_t n = {.stop = &stop};
    farm_reactor_t *r = s_reactor();
    long long t0;

    assert_true(farm_reactor_timer_add(r, "three", 10, 3, s_count_a, &n) > 0);
    assert_true(farm_reactor_timer_add(r, "two", 25, 2, s_count_b, &n) > 0);
    assert_true(farm_reactor_timer_add(r, "forever", 20, 0, s_count_c, &n) > 0);
    assert_true(farm_reactor_timer_add(r, "stop", 400, 0, s_stop_when_counted, &n) > 0);
    assert_true(farm_reactor_timer_add(r, "bad", -1, 1, s_count_c, &n) < 0);
    t0 = farm_now_ms();
    assert_int_equal(farm_reactor_run(r, &stop), 0);
    assert_true(farm_now_ms() - t0 < 2000);
    assert_int_equal(n.a, 3);
    assert_int_equal(n.b, 2);
    assert_true(n.c >= 2); /* about 20 on a quiet machine */
    farm_reactor_destroy(&r);
}

/* A timer cancels itself and another one due in the same turn: the other is not called,
 * and neither fires again. */
typedef struct {
    int x_id, y_id, x_calls, y_calls;
} cancel_t;

static int s_cancel_x(farm_reactor_t *r, void *arg)
{
    cancel_t *c = arg;
    c->x_calls++;
    farm_reactor_timer_cancel(r, c->x_id);
    farm_reactor_timer_cancel(r, c->y_id);
    farm_reactor_timer_cancel(r, c->y_id); /* twice: ignored */
    return 0;
}

static int s_cancel_y(farm_reactor_t *r, void *arg)
{
    ((cancel_t *)arg)->y_calls++;
    return 0;
}

static void test_timer_cancels_itself_and_another(void **state)
{
    volatile int stop = 0;
    cancel_t c = {0};
    farm_reactor_t *r = s_reactor();

    c.x_id = farm_reactor_timer_add(r, "x", 10, 0, s_cancel_x, &c);
    c.y_id = farm_reactor_timer_add(r, "y", 20, 0, s_cancel_y, &c);
    assert_true(c.x_id > 0 && c.y_id > 0);
    assert_true(farm_reactor_timer_add(r, "stop", 300, 1, s_set_stop, (void *)&stop) > 0);
    usleep(60 * 1000); /* both overdue: the same turn, x (earlier deadline) first */
    assert_int_equal(farm_reactor_run(r, &stop), 0);
    assert_int_equal(c.x_calls, 1);
    assert_int_equal(c.y_calls, 0);
    farm_reactor_timer_cancel(r, c.x_id); /* long gone: ignored */
    farm_reactor_timer_reset(r, c.y_id, 10);
    farm_reactor_destroy(&r);
}

/* ---- ending the run ---- */

static int s_fail_io(farm_reactor_t *r, int revents, void *arg)
{
    (*(int *)arg)++;
    return -7;
}

static int s_fail_timer(farm_reactor_t *r, void *arg)
{
    (*(int *)arg)++;
    return -3;
}

static void test_handler_error_ends_run(void **state)
{
    volatile int stop = 0;
    int fds[2], calls = 0;
    farm_reactor_t *r = s_reactor();

    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "x", 1), 1);
    assert_true(farm_reactor_add_fd(r, fds[0], ZMQ_POLLIN, s_fail_io, &calls) > 0);
    assert_int_equal(farm_reactor_run(r, &stop), -7);
    assert_int_equal(calls, 1);
    farm_reactor_destroy(&r);

    calls = 0;
    r = s_reactor();
    assert_true(farm_reactor_timer_add(r, "fails", 10, 0, s_fail_timer, &calls) > 0);
    assert_int_equal(farm_reactor_run(r, &stop), -3);
    assert_int_equal(calls, 1);
    farm_reactor_destroy(&r);
    close(fds[0]);
    close(fds[1]);
}

static void test_stop_from_timer(void **state)
{
    volatile int stop = 0;
    farm_reactor_t *r = s_reactor();
    long long t0 = farm_now_ms();

    assert_true(farm_reactor_timer_add(r, "stop", 20, 1, s_set_stop, (void *)&stop) > 0);
    assert_int_equal(farm_reactor_run(r, &stop), 0);
    assert_int_equal(stop, 1);
    assert_true(farm_now_ms() - t0 < 2000);
    /* *stop already set: returns at once, no turn */
    {
        unsigned long long turns = farm_reactor_turns(r);
        assert_int_equal(farm_reactor_run(r, &stop), 0);
        assert_int_equal(farm_reactor_turns(r), turns);
    }
    farm_reactor_destroy(&r);
}

static volatile int s_sig_stop;

static void s_on_alarm(int sig)
{
    s_sig_stop = 1;
}

/* A signal interrupts zmq_poll (EINTR): the reactor sees *stop long before the guard. */
static void test_stop_from_signal(void **state)
{
    struct sigaction sa, old;
    struct itimerval it = {.it_value = {.tv_usec = 100 * 1000}};
    farm_reactor_t *r = s_reactor();
    long long t0;
    int fds[2];

    /* a reader that never fires, so zmq_poll really waits on something */
    assert_int_equal(pipe(fds), 0);
    assert_true(farm_reactor_add_fd(r, fds[0], ZMQ_POLLIN, s_never_io, NULL) > 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_alarm; /* no SA_RESTART */
    assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
    s_sig_stop = 0;
    t0 = farm_now_ms();
    assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
    assert_int_equal(farm_reactor_run(r, &s_sig_stop), 0);
    assert_int_equal(s_sig_stop, 1);
    assert_true(farm_now_ms() - t0 < 2000);
    sigaction(SIGALRM, &old, NULL);
    farm_reactor_destroy(&r);
    close(fds[0]);
    close(fds[1]);
}

static void *s_stop_later(void *arg)
{
    usleep(100 * 1000);
    *(volatile int *)arg = 1;
    return NULL;
}

/* No timer and no signal: the poll is still bounded, so a *stop set by another thread is
 * seen (never an infinite wait). */
static void test_poll_never_infinite(void **state)
{
    volatile int stop = 0;
    farm_reactor_t *r = farm_reactor_new(); /* no guard timer: nothing to wake it */
    pthread_t th;
    long long t0 = farm_now_ms();

    assert_non_null(r);
    assert_int_equal(pthread_create(&th, NULL, s_stop_later, (void *)&stop), 0);
    assert_int_equal(farm_reactor_run(r, &stop), 0);
    assert_true(farm_now_ms() - t0 < 3000);
    pthread_join(th, NULL);
    farm_reactor_destroy(&r);
    farm_reactor_destroy(&r); /* NULL: ignored */
    farm_reactor_destroy(NULL);
}

/* ---- the turn-end hook ---- */

typedef struct {
    farm_reactor_t *r;
    volatile int *stop;
    int timer_calls, hook_calls, timer_calls_seen_by_hook;
} hook_t;

static int s_hook_timer(farm_reactor_t *r, void *arg)
{
    hook_t *h = arg;
    if (++h->timer_calls == 10)
        *h->stop = 1;
    return 0;
}

static void s_hook(farm_reactor_t *r, void *arg)
{
    hook_t *h = arg;
    assert_ptr_equal(r, h->r);
    h->hook_calls++;
    h->timer_calls_seen_by_hook = h->timer_calls;
}

static void test_turn_end_hook(void **state)
{
    volatile int stop = 0;
    farm_reactor_t *r = s_reactor();
    hook_t h = {.r = r, .stop = &stop};

    farm_reactor_set_turn_end(r, s_hook, &h);
    assert_true(farm_reactor_timer_add(r, "tick", 5, 0, s_hook_timer, &h) > 0);
    assert_int_equal(farm_reactor_run(r, &stop), 0);
    assert_int_equal(h.timer_calls, 10);
    /* once per turn, and after the turn's timers (it saw the 10th call) */
    assert_int_equal((unsigned long long)h.hook_calls, farm_reactor_turns(r));
    assert_true(h.hook_calls >= 10);
    assert_int_equal(h.timer_calls_seen_by_hook, 10);
    farm_reactor_destroy(&r);
}

/* ---- timer_reset ---- */

typedef struct {
    int u_id, u_calls, v_calls, v_calls_when_u_fired, t_id, t_calls;
    long long t_fired_at;
    volatile int *stop;
} reset_t;

static int s_reset_u(farm_reactor_t *r, void *arg)
{
    reset_t *s = arg;
    s->u_calls++;
    s->v_calls_when_u_fired = s->v_calls;
    *s->stop = 1;
    return 0;
}

static int s_reset_v(farm_reactor_t *r, void *arg)
{
    reset_t *s = arg;
    s->v_calls++;
    farm_reactor_timer_reset(r, s->u_id, 1000); /* keeps pushing u back */
    return 0;
}

static int s_reset_t(farm_reactor_t *r, void *arg)
{
    reset_t *s = arg;
    s->t_calls++;
    s->t_fired_at = farm_now_ms();
    farm_reactor_timer_reset(r, s->t_id, 60000); /* from its own handler: not again soon */
    return 0;
}

static void test_timer_reset(void **state)
{
    volatile int stop = 0;
    reset_t s = {.stop = &stop};
    farm_reactor_t *r = s_reactor();
    long long t0 = farm_now_ms();

    /* t: 60 s, reset to 20 ms before the run: fires early, once */
    s.t_id = farm_reactor_timer_add(r, "t", 60000, 0, s_reset_t, &s);
    assert_true(s.t_id > 0);
    farm_reactor_timer_reset(r, s.t_id, 20);
    /* u: 1 s, pushed back by v on each of v's 5 calls: u fires only after v is done */
    s.u_id = farm_reactor_timer_add(r, "u", 1000, 1, s_reset_u, &s);
    assert_true(farm_reactor_timer_add(r, "v", 10, 5, s_reset_v, &s) > 0);
    assert_int_equal(farm_reactor_run(r, &stop), 0);
    assert_int_equal(s.t_calls, 1);
    assert_true(s.t_fired_at - t0 < 2000);
    assert_int_equal(s.u_calls, 1);
    assert_int_equal(s.v_calls, 5);
    assert_int_equal(s.v_calls_when_u_fired, 5);
    farm_reactor_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readers_socket_and_fd),
        cmocka_unit_test(test_remove_other_ready_reader),
        cmocka_unit_test(test_add_inside_handler),
        cmocka_unit_test(test_timers_fire_in_deadline_order),
        cmocka_unit_test(test_timer_counts),
        cmocka_unit_test(test_timer_cancels_itself_and_another),
        cmocka_unit_test(test_handler_error_ends_run),
        cmocka_unit_test(test_stop_from_timer),
        cmocka_unit_test(test_stop_from_signal),
        cmocka_unit_test(test_poll_never_infinite),
        cmocka_unit_test(test_turn_end_hook),
        cmocka_unit_test(test_timer_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
