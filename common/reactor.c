/* SPDX-License-Identifier: Apache-2.0 */
#include "common/reactor.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/error.h"
#include "common/log.h"
#include "common/wire.h"

/* The longest poll, so *stop is seen even if a signal arrives just before zmq_poll. */
#define REACTOR_POLL_MAX_MS 1000
/* A timer this late means something blocked the loop: worth a debug line. */
#define REACTOR_LATE_MS 500

typedef struct {
    int id;
    int removed;
    void *sock; /* NULL: fd */
    int fd;
    short events;
    farm_reactor_io_fn fn;
    void *arg;
} s_reader_t;

typedef struct {
    int id;
    int removed;
    char *name;
    long long interval_ms;
    long long when; /* next firing, farm_now_ms() */
    unsigned times; /* firings left; 0: until cancelled */
    farm_reactor_timer_fn fn;
    void *arg;
} s_timer_t;

struct farm_reactor {
    /* Entries are only appended while a turn runs and only compacted at its end (s_reap),
     * so an index taken at the start of a turn stays valid for the whole turn; pointers
     * into the arrays do not (an add may realloc). */
    s_reader_t *readers;
    size_t nreaders, readers_cap;
    s_timer_t *timers;
    size_t ntimers, timers_cap;
    zmq_pollitem_t *items; /* scratch, rebuilt every turn */
    size_t items_cap;
    size_t *item_reader;   /* items[k] polls readers[item_reader[k]] */
    size_t item_reader_cap;
    size_t *due;           /* scratch: timers due this turn */
    size_t due_cap;
    int next_id;
    int in_turn;   /* entries are being dispatched: removals wait for s_reap */
    int garbage;   /* some entry is marked removed */
    farm_reactor_turn_fn turn_fn;
    void *turn_arg;
    unsigned long long turns;
};

/* Grows the array at arr_p (a T **, *cap elements of size elem) to hold at least want
 * elements. The pointer is copied with memcpy: T ** cannot be aliased as void **. */
static int s_grow(void *arr_p, size_t *cap, size_t want, size_t elem)
{
    size_t ncap = *cap ? *cap : 8;
    void *arr, *p;

    if (want <= *cap)
        return 0;
    while (ncap < want)
        ncap *= 2;
    memcpy(&arr, arr_p, sizeof arr);
    if (ncap > SIZE_MAX / elem || !(p = realloc(arr, ncap * elem)))
        return farm_error_set(FARM_ERROR, "reactor: out of memory");
    memcpy(arr_p, &p, sizeof p);
    *cap = ncap;
    return 0;
}

static int s_new_id(farm_reactor_t *self)
{
    if (self->next_id == INT_MAX)
        return farm_error_set(FARM_ERROR, "reactor: out of ids");
    return self->next_id++;
}

/* Drops entries marked removed. Only outside dispatch. */
static void s_reap(farm_reactor_t *self)
{
    size_t i, n;

    if (!self->garbage)
        return;
    for (i = n = 0; i < self->nreaders; i++)
        if (!self->readers[i].removed)
            self->readers[n++] = self->readers[i];
    self->nreaders = n;
    for (i = n = 0; i < self->ntimers; i++) {
        if (self->timers[i].removed)
            free(self->timers[i].name);
        else
            self->timers[n++] = self->timers[i];
    }
    self->ntimers = n;
    self->garbage = 0;
}

farm_reactor_t *farm_reactor_new(void)
{
    farm_reactor_t *self = calloc(1, sizeof *self);

    if (!self) {
        farm_error_set(FARM_ERROR, "reactor: out of memory");
        return NULL;
    }
    self->next_id = 1;
    return self;
}

void farm_reactor_destroy(farm_reactor_t **self_p)
{
    farm_reactor_t *self = self_p ? *self_p : NULL;

    if (!self)
        return;
    assert(!self->in_turn); /* not from a handler */
    for (size_t i = 0; i < self->ntimers; i++)
        free(self->timers[i].name);
    free(self->readers);
    free(self->timers);
    free(self->items);
    free(self->item_reader);
    free(self->due);
    free(self);
    *self_p = NULL;
}

static int s_add_reader(farm_reactor_t *self, void *sock, int fd, short events,
                        farm_reactor_io_fn fn, void *arg)
{
    s_reader_t *r;
    int id;

    assert(fn);
    if (s_grow(&self->readers, &self->readers_cap, self->nreaders + 1,
               sizeof *self->readers) < 0)
        return FARM_ERROR;
    if ((id = s_new_id(self)) < 0)
        return id;
    r = &self->readers[self->nreaders++];
    *r = (s_reader_t){.id = id, .sock = sock, .fd = fd, .events = events, .fn = fn, .arg = arg};
    return id;
}

int farm_reactor_add_socket(farm_reactor_t *self, void *sock, short events,
                            farm_reactor_io_fn fn, void *arg)
{
    assert(sock);
    return s_add_reader(self, sock, -1, events, fn, arg);
}

int farm_reactor_add_fd(farm_reactor_t *self, int fd, short events, farm_reactor_io_fn fn,
                        void *arg)
{
    assert(fd >= 0);
    return s_add_reader(self, NULL, fd, events, fn, arg);
}

void farm_reactor_remove(farm_reactor_t *self, int id)
{
    for (size_t i = 0; i < self->nreaders; i++) {
        if (self->readers[i].id == id && !self->readers[i].removed) {
            self->readers[i].removed = 1;
            self->garbage = 1;
            break;
        }
    }
    if (!self->in_turn)
        s_reap(self);
}

static s_timer_t *s_timer_find(farm_reactor_t *self, int id)
{
    for (size_t i = 0; i < self->ntimers; i++)
        if (self->timers[i].id == id && !self->timers[i].removed)
            return &self->timers[i];
    return NULL;
}

int farm_reactor_timer_add(farm_reactor_t *self, const char *name, long long interval_ms,
                           unsigned times, farm_reactor_timer_fn fn, void *arg)
{
    s_timer_t *t;
    char *copy;
    int id;

    assert(fn);
    if (interval_ms < 0)
        return farm_error_set(FARM_EINVALID, "reactor: timer %s: negative interval %lld ms",
                              name ? name : "?", interval_ms);
    if (s_grow(&self->timers, &self->timers_cap, self->ntimers + 1,
               sizeof *self->timers) < 0)
        return FARM_ERROR;
    if (!(copy = strdup(name ? name : "timer")))
        return farm_error_set(FARM_ERROR, "reactor: out of memory");
    if ((id = s_new_id(self)) < 0) {
        free(copy);
        return id;
    }
    t = &self->timers[self->ntimers++];
    *t = (s_timer_t){.id = id, .name = copy, .interval_ms = interval_ms,
                     .when = farm_now_ms() + interval_ms, .times = times, .fn = fn,
                     .arg = arg};
    return id;
}

void farm_reactor_timer_reset(farm_reactor_t *self, int id, long long interval_ms)
{
    s_timer_t *t = s_timer_find(self, id);

    if (!t || interval_ms < 0)
        return;
    t->interval_ms = interval_ms;
    t->when = farm_now_ms() + interval_ms;
}

void farm_reactor_timer_cancel(farm_reactor_t *self, int id)
{
    s_timer_t *t = s_timer_find(self, id);

    if (t) {
        t->removed = 1;
        self->garbage = 1;
    }
    if (!self->in_turn)
        s_reap(self);
}

void farm_reactor_set_turn_end(farm_reactor_t *self, farm_reactor_turn_fn fn, void *arg)
{
    self->turn_fn = fn;
    self->turn_arg = arg;
}

unsigned long long farm_reactor_turns(const farm_reactor_t *self)
{
    return self->turns;
}

/* Milliseconds until the earliest live timer, within [0, REACTOR_POLL_MAX_MS]. */
static long s_timeout(const farm_reactor_t *self, long long now)
{
    long long wait = REACTOR_POLL_MAX_MS;

    for (size_t i = 0; i < self->ntimers; i++) {
        const s_timer_t *t = &self->timers[i];
        if (!t->removed && t->when - now < wait)
            wait = t->when - now;
    }
    return wait < 0 ? 0 : (long)wait;
}

/* Fills items from the live readers; *out_n says how many. */
static int s_build_items(farm_reactor_t *self, size_t *out_n)
{
    size_t n = 0;

    if (s_grow(&self->items, &self->items_cap, self->nreaders,
               sizeof *self->items) < 0 ||
        s_grow(&self->item_reader, &self->item_reader_cap, self->nreaders,
               sizeof *self->item_reader) < 0)
        return FARM_ERROR;
    for (size_t i = 0; i < self->nreaders; i++) {
        const s_reader_t *r = &self->readers[i];
        if (r->removed)
            continue;
        self->items[n] = (zmq_pollitem_t){.socket = r->sock, .fd = r->sock ? 0 : r->fd,
                                          .events = r->events};
        self->item_reader[n++] = i;
    }
    *out_n = n;
    return 0;
}

static int s_due_cmp(const void *a, const void *b, void *arg)
{
    const s_timer_t *timers = arg;
    const s_timer_t *x = &timers[*(const size_t *)a], *y = &timers[*(const size_t *)b];

    if (x->when != y->when)
        return x->when < y->when ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Fires the timers due at now, earliest deadline first. Returns < 0 if one did. */
static int s_fire_timers(farm_reactor_t *self, long long now)
{
    size_t ndue = 0;

    if (s_grow(&self->due, &self->due_cap, self->ntimers, sizeof *self->due) < 0)
        return FARM_ERROR;
    for (size_t i = 0; i < self->ntimers; i++)
        if (!self->timers[i].removed && self->timers[i].when <= now)
            self->due[ndue++] = i;
    if (ndue > 1)
        qsort_r(self->due, ndue, sizeof *self->due, s_due_cmp, self->timers);

    for (size_t k = 0; k < ndue; k++) {
        s_timer_t *t = &self->timers[self->due[k]];
        farm_reactor_timer_fn fn = t->fn;
        void *arg = t->arg;
        int rc;

        /* an earlier handler this turn may have cancelled or reset it */
        if (t->removed || t->when > now)
            continue;
        if (now - t->when > REACTOR_LATE_MS)
            farm_log_debug("reactor: timer %s fired %lld ms late", t->name, now - t->when);
        /* schedule before the call, so a reset or cancel inside the handler wins */
        t->when = now + t->interval_ms;
        if (t->times && --t->times == 0) {
            t->removed = 1;
            self->garbage = 1;
        }
        if ((rc = fn(self, arg)) < 0) {
            farm_log_debug("reactor: timer %s ended the loop (%d)",
                           self->timers[self->due[k]].name, rc);
            return rc;
        }
    }
    return 0;
}

/* One turn: poll, readers, timers, turn-end hook. Returns < 0 to end the run. */
static int s_turn(farm_reactor_t *self)
{
    size_t n;
    int rc;

    if ((rc = s_build_items(self, &n)) < 0)
        return rc;
    rc = zmq_poll(self->items, (int)n, s_timeout(self, farm_now_ms()));
    if (rc < 0) {
        if (errno == EINTR)
            return 0; /* a signal: the caller re-checks *stop */
        return farm_error_set(FARM_EIO, "reactor: zmq_poll: %s", zmq_strerror(errno));
    }
    for (size_t k = 0; rc > 0 && k < n; k++) {
        s_reader_t *r = &self->readers[self->item_reader[k]];
        short revents = self->items[k].revents;
        int hrc;

        /* removed by an earlier handler in this turn: its owner may have freed arg */
        if (!revents || r->removed)
            continue;
        if ((hrc = r->fn(self, revents, r->arg)) < 0)
            return hrc;
    }
    if ((rc = s_fire_timers(self, farm_now_ms())) < 0)
        return rc;
    if (self->turn_fn)
        self->turn_fn(self, self->turn_arg);
    self->turns++;
    return 0;
}

int farm_reactor_run(farm_reactor_t *self, volatile int *stop)
{
    int rc = 0;

    assert(!self->in_turn); /* not re-entrant */
    while (!*stop) {
        self->in_turn = 1;
        rc = s_turn(self);
        self->in_turn = 0;
        s_reap(self);
        if (rc < 0)
            break;
    }
    return rc;
}
