/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's session state machine (agent/session.h): HELLO until WELCOME, a resent
 * HELLO keeps the session id, heartbeats, loss after `liveness` silent beats, reconnect
 * backoff 1 s doubling to 32 s and back to 1 s on WELCOME, rehello handled once per
 * session, a REJECT without rehello fatal, a stalled agent not mistaking its own stall
 * for the coordinator's silence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "agent/session.h"

static farm_session_t *s_welcomed(long long now)
{
    farm_session_t *s = farm_session_new();
    assert_non_null(s);
    farm_session_connected(s, now);
    farm_session_on_message(s, now);
    farm_session_on_welcome(s, 500, 3);
    return s;
}

static void test_hello_until_welcome_keeps_session(void **state)
{
    farm_session_t *s = farm_session_new();
    uint64_t id;
    (void)state;

    farm_session_connected(s, 0);
    id = farm_session_id(s);
    assert_true(id != 0);
    assert_false(farm_session_ready(s));
    /* no answer yet, still within liveness: HELLO again, same session */
    assert_int_equal(farm_session_tick(s, 1000), FARM_SESSION_HELLO);
    assert_int_equal(farm_session_tick(s, 2000), FARM_SESSION_HELLO);
    assert_true(farm_session_id(s) == id);
    farm_session_on_message(s, 2500);
    farm_session_on_welcome(s, 500, 3);
    assert_true(farm_session_ready(s));
    assert_true(farm_session_id(s) == id);
    assert_int_equal(farm_session_heartbeat_ms(s), 500);
    assert_int_equal(farm_session_tick(s, 3000), FARM_SESSION_HEARTBEAT);
    farm_session_destroy(&s);
    assert_null(s);
    farm_session_destroy(&s); /* NULL is fine */
}

static void test_welcome_bounds(void **state)
{
    farm_session_t *s = farm_session_new();
    (void)state;
    farm_session_connected(s, 0);
    farm_session_on_welcome(s, 10, 0);           /* out of range: defaults stay */
    assert_int_equal(farm_session_heartbeat_ms(s), 1000);
    assert_int_equal(farm_session_liveness(s), 3);
    farm_session_on_welcome(s, 700000, 1000);
    assert_int_equal(farm_session_heartbeat_ms(s), 1000);
    assert_int_equal(farm_session_liveness(s), 3);
    farm_session_on_welcome(s, 250, 5);
    assert_int_equal(farm_session_heartbeat_ms(s), 250);
    assert_int_equal(farm_session_liveness(s), 5);
    farm_session_destroy(&s);
}

/* The coordinator goes silent for good: reconnects come 1, 2, 4, ... 32, 32 s apart
 * (never sooner than the liveness window after each new connection). */
static void test_backoff_sequence(void **state)
{
    farm_session_t *s = s_welcomed(0);
    long long now = 0, last = -1;
    long long want[] = {0, 1000, 2000, 4000, 8000, 16000, 32000, 32000, 32000};
    size_t k = 0;
    uint64_t id = farm_session_id(s);
    (void)state;

    /* beats every 100 ms (finer than the real 500 ms, to see exact reconnect times) */
    for (now = 100; now <= 200000 && k < sizeof want / sizeof want[0]; now += 100) {
        farm_session_action_t a = farm_session_tick(s, now);
        if (a != FARM_SESSION_RECONNECT)
            continue;
        if (k == 0)
            assert_true(now > 1500 && now <= 1600); /* lost after 3 x 500 ms */
        else {
            /* gap = max(backoff, liveness window after the reconnect) */
            long long gap = want[k] > 1500 ? want[k] : 1500;
            assert_true(now - last >= gap);
            assert_true(now - last <= gap + 100);
        }
        last = now;
        k++;
        farm_session_connected(s, now); /* new socket: new session id */
        assert_true(farm_session_id(s) != id);
        id = farm_session_id(s);
        assert_false(farm_session_ready(s));
    }
    assert_int_equal(k, sizeof want / sizeof want[0]);
    assert_int_equal(farm_session_backoff_ms(s), FARM_SESSION_BACKOFF_MAX_MS);
    /* WELCOME: back to 1 s */
    farm_session_on_message(s, now);
    farm_session_on_welcome(s, 500, 3);
    assert_int_equal(farm_session_backoff_ms(s), FARM_SESSION_BACKOFF_MIN_MS);
    assert_int_equal(farm_session_retry_in_ms(s, now), 0);
    farm_session_destroy(&s);
}

static void test_messages_keep_alive(void **state)
{
    farm_session_t *s = s_welcomed(0);
    (void)state;
    for (long long now = 500; now < 20000; now += 500) {
        farm_session_on_message(s, now - 100);
        assert_int_equal(farm_session_tick(s, now), FARM_SESSION_HEARTBEAT);
    }
    farm_session_destroy(&s);
}

/* REJECT rehello: one new session (drop jobs, HELLO); the REJECTs of messages already
 * in flight change nothing until WELCOME. */
static void test_rehello_once(void **state)
{
    farm_session_t *s = s_welcomed(0);
    uint64_t id = farm_session_id(s), id2;
    (void)state;

    assert_int_equal(farm_session_on_reject(s, 1), FARM_SESSION_REHELLO);
    id2 = farm_session_id(s);
    assert_true(id2 != id);
    assert_false(farm_session_ready(s));
    assert_int_equal(farm_session_on_reject(s, 1), FARM_SESSION_NONE);
    assert_int_equal(farm_session_on_reject(s, 1), FARM_SESSION_NONE);
    assert_true(farm_session_id(s) == id2);
    assert_int_equal(farm_session_tick(s, 500), FARM_SESSION_HELLO);
    assert_true(farm_session_id(s) == id2);
    farm_session_on_message(s, 600);
    farm_session_on_welcome(s, 500, 3);
    assert_true(farm_session_ready(s));
    assert_int_equal(farm_session_on_reject(s, 1), FARM_SESSION_REHELLO);
    farm_session_destroy(&s);
}

static void test_reject_fatal(void **state)
{
    farm_session_t *s = farm_session_new();
    (void)state;
    farm_session_connected(s, 0);
    assert_int_equal(farm_session_on_reject(s, 0), FARM_SESSION_FATAL);
    farm_session_destroy(&s);
}

/* The agent was stopped for 20 s (SIGSTOP): the first beat after it is not a loss (the
 * coordinator's messages may wait unread); a real silence after that still is. */
static void test_own_stall_is_not_loss(void **state)
{
    farm_session_t *s = s_welcomed(0);
    (void)state;
    assert_int_equal(farm_session_tick(s, 500), FARM_SESSION_HEARTBEAT);
    assert_int_equal(farm_session_tick(s, 20500), FARM_SESSION_HEARTBEAT);
    assert_int_equal(farm_session_tick(s, 21000), FARM_SESSION_HEARTBEAT);
    assert_int_equal(farm_session_tick(s, 21500), FARM_SESSION_HEARTBEAT);
    assert_int_equal(farm_session_tick(s, 22000), FARM_SESSION_RECONNECT);
    farm_session_destroy(&s);
}

/* The orphan time runs across reconnects (each resets the connection's silence, not
 * this), is reset by any message, and does not count the agent's own stall. */
static void test_orphan_time_spans_reconnects(void **state)
{
    farm_session_t *s = s_welcomed(0);
    (void)state;
    assert_int_equal(farm_session_tick(s, 500), FARM_SESSION_HEARTBEAT);
    assert_int_equal(farm_session_tick(s, 1000), FARM_SESSION_HEARTBEAT);
    assert_int_equal(farm_session_tick(s, 1500), FARM_SESSION_HEARTBEAT);
    assert_int_equal(farm_session_tick(s, 2000), FARM_SESSION_RECONNECT);
    farm_session_connected(s, 2000);
    assert_true(farm_session_silent_ms(s, 2500) == 500);
    assert_true(farm_session_orphaned_ms(s, 2500) == 2500);
    for (long long t = 2500; t <= 60000; t += 500)
        if (farm_session_tick(s, t) == FARM_SESSION_RECONNECT)
            farm_session_connected(s, t);
    assert_true(farm_session_orphaned_ms(s, 60000) == 60000);
    farm_session_on_message(s, 61000); /* a coordinator answers (even a REJECT) */
    assert_true(farm_session_orphaned_ms(s, 61000) == 0);
    /* the agent itself stopped 30 s: not counted as time without a coordinator */
    assert_int_equal(farm_session_tick(s, 61500), FARM_SESSION_HELLO);
    farm_session_tick(s, 91500);
    assert_true(farm_session_orphaned_ms(s, 91500) < 2000);
    farm_session_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_until_welcome_keeps_session),
        cmocka_unit_test(test_welcome_bounds),
        cmocka_unit_test(test_backoff_sequence),
        cmocka_unit_test(test_messages_keep_alive),
        cmocka_unit_test(test_rehello_once),
        cmocka_unit_test(test_reject_fatal),
        cmocka_unit_test(test_own_stall_is_not_loss),
        cmocka_unit_test(test_orphan_time_spans_reconnects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
