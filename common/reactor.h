/* SPDX-License-Identifier: Apache-2.0 */
/* The event loop both daemons run (after czmq's zloop and redis' ae): ZeroMQ sockets and
 * plain fds polled with zmq_poll, several named timers on the monotonic clock, and a hook
 * at the end of every turn. The poll timeout is the earliest timer, never infinite.
 *
 * Handlers may add and remove readers and timers (their own included) while the reactor
 * runs: a removed reader or timer is never called again, and its slot is reclaimed at
 * the end of the turn, so no handler sees a freed entry. A handler that returns < 0 ends
 * farm_reactor_run with that value.
 *
 * One turn, in order: poll; the ready readers, in the order they were added; the timers
 * that are due, earliest deadline first (ties: in the order added), each at most once per
 * turn; the turn-end hook. A handler that returns < 0 skips the rest of the turn, hook
 * included. An entry added from a handler takes part from the next turn at the latest.
 * Remove a reader before closing its fd or socket: a closed fd is reported as ZMQ_POLLERR
 * every turn, and its number may be reused by an unrelated fd. */
#ifndef FARM_REACTOR_H
#define FARM_REACTOR_H

typedef struct farm_reactor farm_reactor_t;

/* revents: ZMQ_POLLIN / ZMQ_POLLOUT / ZMQ_POLLERR as zmq_poll reported them. */
typedef int (*farm_reactor_io_fn)(farm_reactor_t *reactor, int revents, void *arg);
typedef int (*farm_reactor_timer_fn)(farm_reactor_t *reactor, void *arg);
typedef void (*farm_reactor_turn_fn)(farm_reactor_t *reactor, void *arg);

farm_reactor_t *farm_reactor_new(void);
void farm_reactor_destroy(farm_reactor_t **self_p);

/* Readers: a ZeroMQ socket or a plain fd, with the events to wait for (ZMQ_POLLIN...).
 * Return an id > 0, or < 0 on failure. */
int farm_reactor_add_socket(farm_reactor_t *self, void *sock, short events,
                            farm_reactor_io_fn fn, void *arg);
int farm_reactor_add_fd(farm_reactor_t *self, int fd, short events, farm_reactor_io_fn fn,
                        void *arg);
/* Stops polling a reader (id from add_*). Unknown or already removed ids are ignored. */
void farm_reactor_remove(farm_reactor_t *self, int id);

/* A timer that fires every interval_ms (first after interval_ms), `times` times
 * (0: until cancelled). name appears in debug logs. Returns an id > 0, or < 0.
 * The next firing is interval_ms after this one ran (a late timer does not catch up in a
 * burst); interval 0 fires every turn. On its last firing the timer is already spent
 * when its handler runs: reset/cancel of it are then ignored. */
int farm_reactor_timer_add(farm_reactor_t *self, const char *name, long long interval_ms,
                           unsigned times, farm_reactor_timer_fn fn, void *arg);
/* New interval; the next firing is interval_ms from now. */
void farm_reactor_timer_reset(farm_reactor_t *self, int id, long long interval_ms);
void farm_reactor_timer_cancel(farm_reactor_t *self, int id);

/* Called once at the end of every turn, after the handlers and timers that were due
 * (redis beforesleep): reaping freed peers, dispatching queued work. One hook. */
void farm_reactor_set_turn_end(farm_reactor_t *self, farm_reactor_turn_fn fn, void *arg);

/* Runs until *stop becomes non-zero (checked every turn; signals interrupt the poll) or
 * a handler returns < 0. Returns 0, or the handler's negative value. */
int farm_reactor_run(farm_reactor_t *self, volatile int *stop);

/* Turns run so far, and the time now as the reactor sees it (farm_now_ms). */
unsigned long long farm_reactor_turns(const farm_reactor_t *self);

#endif
