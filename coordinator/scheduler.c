/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/hmap.h"
#include "common/log.h"
#include "coordinator/warm.h"

struct snode;

/* A node's place in one platform's heap of nodes with free slots. */
typedef struct {
    struct snode *sn;
    size_t platform;
    int emulated;
    size_t rank; /* position in farm.yaml's list for the platform: ties go to the first */
    long pos;    /* in the heap, -1 when absent */
} member_t;

typedef struct snode {
    farm_node_t *node; /* NULL until the node first says HELLO */
    int live;
    int drained;       /* an admin took it out of scheduling: counts as not live */
    int sick;          /* its agent says it is unhealthy: counts as not live either */
    int used;
    farm_link_t running; /* farm_job_t.node_link */
    member_t *members;
    size_t n_members;
} snode_t;

typedef struct {
    member_t **a;
    size_t n, cap;
} heap_t;

typedef struct {
    farm_link_t queue; /* farm_job_t.queue_link, front = next to go */
    size_t queued;     /* in queue and waits */
    farm_link_t waits; /* farm_job_t.queue_link: waiting for a busy warm node, by warm_until */
    size_t n_waits;
    heap_t free[2];    /* [0] native, [1] emulated nodes with a free slot */
    int live[2];       /* live nodes, native and emulated */
    int dirty;         /* something changed since the last dispatch */
} splat_t;

struct farm_scheduler {
    const farm_config_t *cfg;
    farm_scheduler_cbs_t cbs;
    void *arg;
    farm_hmap_t *jobs; /* id -> farm_job_t */
    snode_t *nodes;    /* by farm_node_t.index */
    size_t n_nodes;
    splat_t *plats;    /* by config platform index */
    size_t n_plats;
    size_t *dirty;     /* platform indexes with dirty set */
    size_t n_dirty;
    farm_link_t queued_order;  /* farm_job_t.timer_link of QUEUED jobs, by queued_at */
    farm_link_t running_order; /* ... of RUNNING jobs, by started_at */
    size_t queued;
    farm_link_t parked_order;  /* ... of parked jobs (restored), by park_until */
    size_t n_parked;
    farm_warm_t *warm;         /* which nodes built what recently */
    long long wake_at;         /* the next end of a cache wait; -1: none */
};

/* ------------------------------------------------------------------ heaps */

static int s_less(const member_t *x, const member_t *y)
{
    long long lx = (long long)x->sn->used * y->sn->node->slots;
    long long ly = (long long)y->sn->used * x->sn->node->slots;
    if (lx != ly)
        return lx < ly;
    return x->rank < y->rank;
}

static void s_heap_set(heap_t *h, size_t i, member_t *m)
{
    h->a[i] = m;
    m->pos = (long)i;
}

static void s_sift_up(heap_t *h, size_t i)
{
    member_t *m = h->a[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!s_less(m, h->a[parent]))
            break;
        s_heap_set(h, i, h->a[parent]);
        i = parent;
    }
    s_heap_set(h, i, m);
}

static void s_sift_down(heap_t *h, size_t i)
{
    member_t *m = h->a[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        member_t *bm = m;
        if (l < h->n && s_less(h->a[l], bm)) {
            best = l;
            bm = h->a[l];
        }
        if (r < h->n && s_less(h->a[r], bm))
            best = r;
        if (best == i)
            break;
        s_heap_set(h, i, h->a[best]);
        i = best;
    }
    s_heap_set(h, i, m);
}

static int s_heap_push(heap_t *h, member_t *m)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        member_t **a = realloc(h->a, cap * sizeof *a);
        if (!a)
            return -1;
        h->a = a;
        h->cap = cap;
    }
    s_heap_set(h, h->n++, m);
    s_sift_up(h, h->n - 1);
    return 0;
}

static void s_heap_remove(heap_t *h, member_t *m)
{
    size_t i = (size_t)m->pos;
    member_t *last = h->a[--h->n];
    m->pos = -1;
    if (i == h->n)
        return;
    s_heap_set(h, i, last);
    s_sift_up(h, i);
    s_sift_down(h, (size_t)last->pos);
}

/* ------------------------------------------------------------------ helpers */

/* Out of scheduling (drained or unhealthy): takes no job and counts as not live, so
 * emulated nodes may step in and jobs with no other node wait for one. */
static int s_out(const snode_t *sn)
{
    return sn->drained || sn->sick;
}

static void s_mark_dirty(farm_scheduler_t *self, size_t p)
{
    if (self->plats[p].dirty)
        return;
    self->plats[p].dirty = 1;
    self->dirty[self->n_dirty++] = p;
}

/* The node's load changed: move it in (or out of) every heap it belongs to. */
static void s_node_reheap(farm_scheduler_t *self, snode_t *sn)
{
    int has_free = sn->live && !s_out(sn) && sn->used < sn->node->slots;
    for (size_t i = 0; i < sn->n_members; i++) {
        member_t *m = &sn->members[i];
        heap_t *h = &self->plats[m->platform].free[m->emulated];
        if (!has_free) {
            if (m->pos >= 0)
                s_heap_remove(h, m);
            continue;
        }
        if (m->pos < 0) {
            /* out of memory: the node takes no new job of this platform for now */
            if (s_heap_push(h, m) < 0)
                continue;
        } else {
            s_sift_up(h, (size_t)m->pos);
            s_sift_down(h, (size_t)m->pos);
        }
        s_mark_dirty(self, m->platform);
    }
}

static void s_say_waiting(farm_scheduler_t *self, farm_job_t *job)
{
    splat_t *p = &self->plats[job->platform_index];
    if (job->waiting_said || p->live[0] + p->live[1] > 0)
        return;
    job->waiting_said = 1;
    if (self->cbs.waiting)
        self->cbs.waiting(self->arg, job);
}

static void s_enqueue(farm_scheduler_t *self, farm_job_t *job, int front, long long now)
{
    splat_t *p = &self->plats[job->platform_index];
    job->state = FARM_JOB_QUEUED;
    job->node = NULL;
    job->queued_at = now;
    job->waiting_said = 0;
    job->warm_waiting = 0;
    if (front)
        farm_link_push_front(&p->queue, &job->queue_link);
    else
        farm_link_push_back(&p->queue, &job->queue_link);
    farm_link_push_back(&self->queued_order, &job->timer_link);
    p->queued++;
    self->queued++;
    s_mark_dirty(self, job->platform_index);
}

static void s_unqueue(farm_scheduler_t *self, farm_job_t *job)
{
    if (job->parked) {
        farm_link_remove(&job->timer_link);
        job->parked = 0;
        self->n_parked--;
        return;
    }
    if (!farm_link_linked(&job->queue_link))
        return;
    farm_link_remove(&job->queue_link);
    farm_link_remove(&job->timer_link);
    self->plats[job->platform_index].queued--;
    self->queued--;
    if (job->warm_waiting) {
        self->plats[job->platform_index].n_waits--;
        job->warm_waiting = 0;
    }
}

/* The jobs waiting for a warm node go back to the front of the queue, in their order. */
static void s_unwait_all(splat_t *p)
{
    while (!farm_link_empty(&p->waits)) {
        farm_job_t *job = FARM_LINK_OWNER(p->waits.prev, farm_job_t, queue_link);
        farm_link_remove(&job->queue_link);
        farm_link_push_front(&p->queue, &job->queue_link);
        job->warm_waiting = 0;
        p->n_waits--;
    }
}

/* ------------------------------------------------------------------ lifecycle */

farm_scheduler_t *farm_scheduler_new(const farm_config_t *cfg, const farm_scheduler_cbs_t *cbs,
                                     void *arg)
{
    farm_scheduler_t *self = calloc(1, sizeof *self);

    if (!self)
        return NULL;
    self->cfg = cfg;
    self->cbs = *cbs;
    self->arg = arg;
    self->n_nodes = cfg->n_nodes;
    self->n_plats = cfg->n_platforms;
    self->jobs = farm_hmap_new();
    self->nodes = calloc(cfg->n_nodes + 1, sizeof *self->nodes);
    self->plats = calloc(cfg->n_platforms + 1, sizeof *self->plats);
    self->dirty = calloc(cfg->n_platforms + 1, sizeof *self->dirty);
    self->warm = farm_warm_new(FARM_WARM_KEYS_MAX);
    self->wake_at = -1;
    if (!self->jobs || !self->nodes || !self->plats || !self->dirty || !self->warm) {
        farm_scheduler_destroy(&self);
        farm_error_set(FARM_ERROR, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < self->n_nodes; i++)
        farm_link_init(&self->nodes[i].running);
    for (size_t i = 0; i < self->n_plats; i++) {
        farm_link_init(&self->plats[i].queue);
        farm_link_init(&self->plats[i].waits);
    }
    farm_link_init(&self->queued_order);
    farm_link_init(&self->running_order);
    farm_link_init(&self->parked_order);
    return self;
}

void farm_scheduler_destroy(farm_scheduler_t **self_p)
{
    farm_scheduler_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (size_t i = 0; self->nodes && i < self->n_nodes; i++)
        free(self->nodes[i].members);
    for (size_t i = 0; self->plats && i < self->n_plats; i++) {
        free(self->plats[i].free[0].a);
        free(self->plats[i].free[1].a);
    }
    free(self->nodes);
    free(self->plats);
    free(self->dirty);
    farm_hmap_destroy(&self->jobs);
    farm_warm_destroy(&self->warm);
    free(self);
    *self_p = NULL;
}

/* ------------------------------------------------------------------ jobs */

int farm_scheduler_add(farm_scheduler_t *self, farm_job_t *job, long long now)
{
    if (job->platform_index >= self->n_plats)
        return farm_error_set(FARM_EINVALID, "job %s: platform not in the farm", job->id);
    if (farm_hmap_puts(self->jobs, job->id, job) < 0)
        return farm_error_set(FARM_ERROR, "out of memory");
    if (!job->attempt)
        job->attempt = 1;
    s_enqueue(self, job, 0, now);
    s_say_waiting(self, job);
    return 0;
}

int farm_scheduler_park(farm_scheduler_t *self, farm_job_t *job, long long until)
{
    farm_link_t *pos = &self->parked_order;

    if (job->platform_index >= self->n_plats)
        return farm_error_set(FARM_EINVALID, "job %s: platform not in the farm", job->id);
    if (!job->attempt || !job->node_name[0])
        return farm_error_set(FARM_EINVALID, "job %s: no attempt or node to wait for", job->id);
    if (farm_hmap_puts(self->jobs, job->id, job) < 0)
        return farm_error_set(FARM_ERROR, "out of memory");
    job->state = FARM_JOB_QUEUED;
    job->node = NULL;
    job->parked = 1;
    job->park_until = until;
    while (pos->prev != &self->parked_order &&
           FARM_LINK_OWNER(pos->prev, farm_job_t, timer_link)->park_until > until)
        pos = pos->prev;
    farm_link_insert_before(pos, &job->timer_link);
    self->n_parked++;
    return 0;
}

/* A parked job goes to the front of its queue as a new attempt (its node did not bring
 * it back). */
static void s_unpark_requeue(farm_scheduler_t *self, farm_job_t *job, const char *why,
                             long long now)
{
    s_unqueue(self, job);
    job->attempt++;
    s_enqueue(self, job, 1, now);
    if (self->cbs.requeued)
        self->cbs.requeued(self->arg, job, why);
    s_say_waiting(self, job);
}

void farm_scheduler_forget(farm_scheduler_t *self, farm_job_t *job)
{
    if (job->state == FARM_JOB_QUEUED || job->state == FARM_JOB_RUNNING)
        farm_scheduler_withdraw(self, job, "forgotten");
    if (farm_hmap_gets(self->jobs, job->id) == job)
        farm_hmap_dels(self->jobs, job->id);
}

farm_job_t *farm_scheduler_job(farm_scheduler_t *self, const char *id)
{
    return farm_hmap_gets(self->jobs, id);
}

/* ------------------------------------------------------------------ nodes */

static size_t s_rank(char *const *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return i;
    return n;
}

int farm_scheduler_node_up(farm_scheduler_t *self, farm_node_t *node, long long now)
{
    snode_t *sn = &self->nodes[node->index];
    member_t *members;

    if (sn->live)
        farm_scheduler_node_down(self, node, "it said HELLO again", now);
    members = calloc(node->n_platforms + 1, sizeof *members);
    if (!members)
        return farm_error_set(FARM_ERROR, "out of memory");
    free(sn->members);
    sn->members = members;
    sn->n_members = node->n_platforms;
    sn->node = node;
    for (size_t i = 0; i < node->n_platforms; i++) {
        const farm_config_platform_t *cp = &self->cfg->platforms[node->platforms[i].platform_index];
        member_t *m = &members[i];
        m->sn = sn;
        m->platform = node->platforms[i].platform_index;
        m->emulated = node->platforms[i].emulated;
        m->rank = m->emulated ? s_rank(cp->emulated, cp->n_emulated, node->cfg->name)
                              : s_rank(cp->native, cp->n_native, node->cfg->name);
        m->pos = -1;
        if (!s_out(sn))
            self->plats[m->platform].live[m->emulated]++;
    }
    sn->live = 1;
    s_node_reheap(self, sn);
    for (size_t i = 0; i < sn->n_members; i++)
        s_mark_dirty(self, members[i].platform);
    return 0;
}

void farm_scheduler_node_down(farm_scheduler_t *self, farm_node_t *node, const char *why,
                              long long now)
{
    snode_t *sn = &self->nodes[node->index];

    if (!sn->live)
        return;
    sn->live = 0;
    s_node_reheap(self, sn); /* out of every heap */
    for (size_t i = 0; i < sn->n_members && !s_out(sn); i++)
        self->plats[sn->members[i].platform].live[sn->members[i].emulated]--;
    /* from the newest: each goes to the front, so they keep their order there */
    while (!farm_link_empty(&sn->running)) {
        farm_job_t *job = FARM_LINK_OWNER(sn->running.prev, farm_job_t, node_link);
        farm_link_remove(&job->node_link);
        farm_link_remove(&job->timer_link);
        sn->used--;
        job->attempt++;
        s_enqueue(self, job, 1, now);
        if (self->cbs.requeued)
            self->cbs.requeued(self->arg, job, why);
        s_say_waiting(self, job);
    }
    /* the platform may have lost its last native node (emulated ones may take its jobs
     * now) or its last node of all (the jobs waiting there say so) */
    for (size_t i = 0; i < sn->n_members; i++) {
        splat_t *p = &self->plats[sn->members[i].platform];
        s_mark_dirty(self, sn->members[i].platform);
        if (p->live[0] + p->live[1] > 0)
            continue;
        s_unwait_all(p); /* no warm node to wait for: they wait for any node, and say so */
        for (farm_link_t *l = p->queue.next; l != &p->queue; l = l->next)
            s_say_waiting(self, FARM_LINK_OWNER(l, farm_job_t, queue_link));
    }
}

static long s_held_index(const farm_sched_held_t *held, size_t n, const farm_job_t *job)
{
    for (size_t i = 0; i < n; i++)
        if (held[i].attempt == job->attempt && strcmp(held[i].job_id, job->id) == 0)
            return (long)i;
    return -1;
}

/* job_timeout still counts from the attempt's first start: running_order stays sorted. */
static void s_running_insert(farm_scheduler_t *self, farm_job_t *job)
{
    farm_link_t *pos = &self->running_order;
    while (pos->prev != &self->running_order &&
           FARM_LINK_OWNER(pos->prev, farm_job_t, timer_link)->started_at > job->started_at)
        pos = pos->prev;
    farm_link_insert_before(pos, &job->timer_link);
}

int farm_scheduler_node_rejoin(farm_scheduler_t *self, farm_node_t *node,
                               const farm_sched_held_t *held, size_t n, int *adopted,
                               const char *why, long long now)
{
    snode_t *sn = &self->nodes[node->index];
    farm_link_t keep;
    int rc;

    farm_link_init(&keep);
    for (size_t i = 0; i < n; i++)
        adopted[i] = 0;
    /* what it still runs stays out of the requeue below (timer links untouched) */
    if (sn->live) {
        for (farm_link_t *l = sn->running.next, *next; l != &sn->running; l = next) {
            farm_job_t *job = FARM_LINK_OWNER(l, farm_job_t, node_link);
            long i = s_held_index(held, n, job);
            next = l->next;
            if (i < 0)
                continue;
            farm_link_remove(&job->node_link);
            farm_link_push_back(&keep, &job->node_link);
            sn->used--;
            adopted[i] = 1;
        }
        farm_scheduler_node_down(self, node, why, now);
    }
    rc = farm_scheduler_node_up(self, node, now);
    while (!farm_link_empty(&keep)) {
        farm_job_t *job = FARM_LINK_OWNER(keep.next, farm_job_t, node_link);
        farm_link_remove(&job->node_link);
        if (rc < 0) {
            /* out of memory taking the node up: these go back to their queues instead */
            farm_link_remove(&job->timer_link);
            job->attempt++;
            s_enqueue(self, job, 1, now);
            if (self->cbs.requeued)
                self->cbs.requeued(self->arg, job, why);
            continue;
        }
        farm_link_push_back(&sn->running, &job->node_link);
        sn->used++;
    }
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            adopted[i] = 0;
        return rc;
    }
    /* queued again when the node was lost, and not sent anywhere since, or parked for
     * this node at a restart: take it back */
    for (size_t i = 0; i < n; i++) {
        farm_job_t *job = adopted[i] ? NULL : farm_hmap_gets(self->jobs, held[i].job_id);
        int emulated = 0;
        if (!job || job->state != FARM_JOB_QUEUED ||
            job->attempt != held[i].attempt + (job->parked ? 0 : 1) ||
            strcmp(job->node_name, node->cfg->name) != 0 ||
            !farm_node_serves(node, job->platform_index, &emulated))
            continue;
        s_unqueue(self, job);
        job->state = FARM_JOB_RUNNING;
        job->attempt = held[i].attempt;
        job->node = node;
        job->emulated = emulated;
        farm_link_push_back(&sn->running, &job->node_link);
        s_running_insert(self, job);
        sn->used++;
        adopted[i] = 1;
    }
    /* parked for this node, which came back without them: run them elsewhere now */
    for (farm_link_t *l = self->parked_order.next, *next; l != &self->parked_order; l = next) {
        farm_job_t *job = FARM_LINK_OWNER(l, farm_job_t, timer_link);
        next = l->next;
        if (strcmp(job->node_name, node->cfg->name) == 0)
            s_unpark_requeue(self, job, why, now);
    }
    s_node_reheap(self, sn);
    return 0;
}

/* Sets one of the node's out-of-scheduling flags; the live counts change only when the
 * node goes out (first flag) or comes back (last flag). */
static void s_set_out(farm_scheduler_t *self, snode_t *sn, int *flag, int on)
{
    int was_out = s_out(sn);

    if (!!on == *flag)
        return;
    *flag = !!on;
    if (sn->live && was_out != s_out(sn)) {
        for (size_t i = 0; i < sn->n_members; i++) {
            splat_t *p = &self->plats[sn->members[i].platform];
            p->live[sn->members[i].emulated] += s_out(sn) ? -1 : 1;
            s_mark_dirty(self, sn->members[i].platform);
            if (p->live[0] + p->live[1] > 0)
                continue;
            /* its last node went out: no warm node to wait for, the queue says it waits */
            s_unwait_all(p);
            for (farm_link_t *l = p->queue.next; l != &p->queue; l = l->next)
                s_say_waiting(self, FARM_LINK_OWNER(l, farm_job_t, queue_link));
        }
        s_node_reheap(self, sn);
    }
}

void farm_scheduler_node_drain(farm_scheduler_t *self, farm_node_t *node, int on)
{
    snode_t *sn = &self->nodes[node->index];
    s_set_out(self, sn, &sn->drained, on);
}

void farm_scheduler_node_health(farm_scheduler_t *self, farm_node_t *node, int sick)
{
    snode_t *sn = &self->nodes[node->index];
    s_set_out(self, sn, &sn->sick, sick);
}

int farm_scheduler_node_sick(const farm_scheduler_t *self, const farm_node_t *node)
{
    return self->nodes[node->index].sick;
}

int farm_scheduler_node_drained(const farm_scheduler_t *self, const farm_node_t *node)
{
    return self->nodes[node->index].drained;
}

/* ------------------------------------------------------------------ dispatch */

static member_t *s_pick(splat_t *p)
{
    if (p->free[0].n)
        return p->free[0].a[0];
    /* emulated nodes only while no native node of the platform is alive */
    if (p->live[0] == 0 && p->free[1].n)
        return p->free[1].a[0];
    return NULL;
}

/* The job's warm nodes (those that built its key recently, native for its platform,
 * live and not drained): the most recent one with a free slot, or NULL; *busy_slots is
 * the slots of the others, which the job may wait for. */
static member_t *s_warm_member(farm_scheduler_t *self, const farm_job_t *job, int *busy_slots)
{
    size_t idx[FARM_WARM_NODES], n;

    *busy_slots = 0;
    if (!job->cache_key)
        return NULL;
    n = farm_warm_nodes(self->warm, job->cache_key, job->cache_key_len, idx);
    for (size_t i = 0; i < n; i++) {
        snode_t *sn = idx[i] < self->n_nodes ? &self->nodes[idx[i]] : NULL;
        if (!sn || !sn->live || s_out(sn))
            continue;
        for (size_t k = 0; k < sn->n_members; k++) {
            member_t *m = &sn->members[k];
            if (m->platform != job->platform_index || m->emulated)
                continue;
            if (m->pos >= 0) /* in the free heap: a free slot */
                return m;
            *busy_slots += sn->node->slots;
        }
    }
    return NULL;
}

static void s_assign(farm_scheduler_t *self, farm_job_t *job, member_t *m, int warm,
                     long long now)
{
    snode_t *sn = m->sn;

    s_unqueue(self, job);
    job->state = FARM_JOB_RUNNING;
    job->node = sn->node;
    job->emulated = m->emulated;
    job->warm = warm;
    job->started_at = now;
    snprintf(job->node_name, sizeof job->node_name, "%s", sn->node->cfg->name);
    farm_link_push_back(&sn->running, &job->node_link);
    farm_link_push_back(&self->running_order, &job->timer_link);
    sn->used++;
    s_node_reheap(self, sn);
    if (self->cbs.assign)
        self->cbs.assign(self->arg, job, sn->node);
}

/* The next job of the platform and its node, while some node has a free slot:
 *   - a job waiting for a warm node goes there once it is free; to the least loaded node
 *     when its cache_wait is over or no warm node of it is left alive (lost, drained,
 *     unhealthy);
 *   - the queue's head goes to a free warm node; if its warm nodes are all busy it waits
 *     for them (out of the queue, so the jobs behind it take the free nodes meanwhile;
 *     at most as many jobs of the platform wait as those nodes have slots); else it goes
 *     to the least loaded node.
 * A cold node thus idles at most cache_wait while a job waits for a warm one. NULL when
 * nothing can go now. *scan_waits is cleared once no waiting job can go: within one
 * pass only a node that frees or dies (which marks the platform dirty: another pass)
 * or the clock changes that, so the waits are not looked through for every job. */
static farm_job_t *s_next(farm_scheduler_t *self, splat_t *p, long long now, member_t **m_out,
                          int *warm, int *scan_waits)
{
    member_t *m;
    int busy;

    *warm = 0;
    for (farm_link_t *l = *scan_waits ? p->waits.next : &p->waits; l != &p->waits;
         l = l->next) {
        farm_job_t *job = FARM_LINK_OWNER(l, farm_job_t, queue_link);
        if ((m = s_warm_member(self, job, &busy))) {
            *warm = 1;
            *m_out = m;
            return job;
        }
        if (now >= job->warm_until || busy == 0) {
            *m_out = s_pick(p);
            return job;
        }
    }
    *scan_waits = 0;
    while (!farm_link_empty(&p->queue)) {
        farm_job_t *job = FARM_LINK_OWNER(p->queue.next, farm_job_t, queue_link);
        if ((m = s_warm_member(self, job, &busy))) {
            *warm = 1;
            *m_out = m;
            return job;
        }
        if (self->cfg->cache_wait_ms <= 0 || (size_t)busy <= p->n_waits) {
            *m_out = s_pick(p);
            return job;
        }
        farm_link_remove(&job->queue_link);
        farm_link_push_back(&p->waits, &job->queue_link);
        job->warm_waiting = 1;
        job->warm_until = now + self->cfg->cache_wait_ms;
        p->n_waits++;
    }
    return NULL;
}

size_t farm_scheduler_dispatch(farm_scheduler_t *self, long long now)
{
    size_t assigned = 0;

    /* a cache wait ended: its platform is looked at again */
    if (self->wake_at >= 0 && now >= self->wake_at)
        for (size_t i = 0; i < self->n_plats; i++)
            if (self->plats[i].n_waits)
                s_mark_dirty(self, i);
    while (self->n_dirty) {
        size_t pi = self->dirty[--self->n_dirty];
        splat_t *p = &self->plats[pi];
        farm_job_t *job;
        member_t *m;
        int warm, scan_waits = 1;

        p->dirty = 0;
        /* the assign callback may withdraw or fail other jobs: re-read the queue, the
         * waits and the heaps every time round */
        while (s_pick(p) && (job = s_next(self, p, now, &m, &warm, &scan_waits))) {
            s_assign(self, job, m, warm, now);
            assigned++;
        }
    }
    /* the earliest cache wait still to end (one that ended waits for any free slot) */
    self->wake_at = -1;
    for (size_t i = 0; i < self->n_plats; i++) {
        const splat_t *p = &self->plats[i];
        for (const farm_link_t *l = p->waits.next; l != &p->waits; l = l->next) {
            const farm_job_t *job = FARM_LINK_OWNER(l, farm_job_t, queue_link);
            if (job->warm_until <= now)
                continue;
            if (self->wake_at < 0 || job->warm_until < self->wake_at)
                self->wake_at = job->warm_until;
            break; /* waits are in warm_until order */
        }
    }
    return assigned;
}

long long farm_scheduler_wake_at(const farm_scheduler_t *self)
{
    return self->wake_at;
}

void farm_scheduler_job_built(farm_scheduler_t *self, const farm_job_t *job,
                              const farm_node_t *node)
{
    /* a native build only: an emulated node takes the platform only while no native one
     * lives, and is never preferred for it */
    if (!job->cache_key || job->emulated)
        return;
    if (farm_warm_record(self->warm, job->cache_key, job->cache_key_len, node->index) < 0)
        farm_log_debug("job=%s: out of memory remembering that node %s built it", job->id,
                       node->cfg->name);
}

size_t farm_scheduler_warm_keys(const farm_scheduler_t *self)
{
    return farm_warm_size(self->warm);
}

farm_warm_t *farm_scheduler_warm(farm_scheduler_t *self)
{
    return self->warm;
}

farm_job_t *farm_scheduler_running(farm_scheduler_t *self, const farm_node_t *node,
                                   const char *job_id, unsigned attempt)
{
    farm_job_t *job = farm_hmap_gets(self->jobs, job_id);
    if (!job || job->state != FARM_JOB_RUNNING || job->node != node || job->attempt != attempt)
        return NULL;
    return job;
}

void farm_scheduler_release(farm_scheduler_t *self, farm_job_t *job)
{
    snode_t *sn;

    if (job->state != FARM_JOB_RUNNING || !job->node)
        return;
    sn = &self->nodes[job->node->index];
    farm_link_remove(&job->node_link);
    farm_link_remove(&job->timer_link);
    sn->used--;
    job->node = NULL;
    s_node_reheap(self, sn);
}

int farm_scheduler_retry(farm_scheduler_t *self, farm_job_t *job, const char *why, long long now)
{
    if (job->state != FARM_JOB_RUNNING || !job->node)
        return farm_error_set(FARM_EINVALID, "job %s does not run on a node", job->id);
    farm_scheduler_release(self, job);
    job->attempt++;
    s_enqueue(self, job, 1, now);
    if (self->cbs.requeued)
        self->cbs.requeued(self->arg, job, why);
    s_say_waiting(self, job);
    return 0;
}

void farm_scheduler_withdraw(farm_scheduler_t *self, farm_job_t *job, const char *reason)
{
    if (job->state == FARM_JOB_QUEUED) {
        s_unqueue(self, job);
    } else if (job->state == FARM_JOB_RUNNING && job->node) {
        farm_node_t *node = job->node;
        farm_scheduler_release(self, job);
        if (self->cbs.cancel)
            self->cbs.cancel(self->arg, job, node, reason);
    }
}

void farm_scheduler_pause_gap(farm_scheduler_t *self, long long gap)
{
    /* the same shift for all: every list keeps its order */
    for (farm_link_t *l = self->running_order.next; l != &self->running_order; l = l->next)
        FARM_LINK_OWNER(l, farm_job_t, timer_link)->started_at += gap;
    for (farm_link_t *l = self->queued_order.next; l != &self->queued_order; l = l->next) {
        farm_job_t *job = FARM_LINK_OWNER(l, farm_job_t, timer_link);
        job->queued_at += gap;
        if (job->warm_waiting)
            job->warm_until += gap;
    }
    for (farm_link_t *l = self->parked_order.next; l != &self->parked_order; l = l->next)
        FARM_LINK_OWNER(l, farm_job_t, timer_link)->park_until += gap;
    if (self->wake_at >= 0)
        self->wake_at += gap;
}

void farm_scheduler_tick(farm_scheduler_t *self, long long now)
{
    while (!farm_link_empty(&self->parked_order)) {
        farm_job_t *job = FARM_LINK_OWNER(self->parked_order.next, farm_job_t, timer_link);
        char why[FARM_NAME_MAX + 128];
        if (now < job->park_until)
            break;
        snprintf(why, sizeof why, "node %s did not come back with attempt %u after the "
                 "coordinator restarted", job->node_name, job->attempt);
        s_unpark_requeue(self, job, why, now);
    }
    while (!farm_link_empty(&self->running_order)) {
        farm_job_t *job = FARM_LINK_OWNER(self->running_order.next, farm_job_t, timer_link);
        if (now - job->started_at <= self->cfg->job_timeout_ms)
            break;
        farm_scheduler_withdraw(self, job, "job_timeout");
        if (self->cbs.expired)
            self->cbs.expired(self->arg, job, 1);
    }
    while (!farm_link_empty(&self->queued_order)) {
        farm_job_t *job = FARM_LINK_OWNER(self->queued_order.next, farm_job_t, timer_link);
        if (now - job->queued_at <= self->cfg->queue_timeout_ms)
            break;
        s_unqueue(self, job);
        if (self->cbs.expired)
            self->cbs.expired(self->arg, job, 0);
    }
}

int farm_scheduler_node_used(const farm_scheduler_t *self, const farm_node_t *node)
{
    return self->nodes[node->index].used;
}

size_t farm_scheduler_node_jobs(const farm_scheduler_t *self, const farm_node_t *node,
                                farm_job_t **out, size_t max)
{
    const snode_t *sn = &self->nodes[node->index];
    size_t n = 0;
    for (const farm_link_t *l = sn->running.next; l != &sn->running; l = l->next, n++)
        if (n < max)
            out[n] = FARM_LINK_OWNER(l, farm_job_t, node_link);
    return n;
}

size_t farm_scheduler_queued(const farm_scheduler_t *self)
{
    return self->queued;
}

size_t farm_scheduler_parked(const farm_scheduler_t *self)
{
    return self->n_parked;
}

/* ------------------------------------------------------------------ self-check */

#define S_BROKEN(...) farm_error_set(FARM_ERROR, "scheduler error: " __VA_ARGS__)

static int s_check_queue(const farm_scheduler_t *self, size_t pi, const farm_link_t *list,
                         int waiting, size_t *count)
{
    for (const farm_link_t *l = list->next; l != list; l = l->next) {
        const farm_job_t *job = FARM_LINK_OWNER(l, farm_job_t, queue_link);
        if (job->state != FARM_JOB_QUEUED || job->node || job->platform_index != pi ||
            !!job->warm_waiting != waiting || !farm_link_linked(&job->timer_link) ||
            farm_link_linked(&job->node_link))
            return S_BROKEN("job %s in %s's %s is not a queued job of that platform "
                            "(state %d, warm_waiting %d)", job->id, self->cfg->platforms[pi].platform,
                            waiting ? "warm waits" : "queue", (int)job->state, job->warm_waiting);
        if (++*count > self->queued)
            return S_BROKEN("%s's queue holds more jobs than are queued (%zu)",
                            self->cfg->platforms[pi].platform, self->queued);
    }
    return 0;
}

static int s_check_node(const farm_scheduler_t *self, size_t ni, size_t *running)
{
    const snode_t *sn = &self->nodes[ni];
    /* node indexes are the node table's, not farm.yaml's (a reload appends) */
    const char *name = sn->node ? sn->node->cfg->name : "(not connected yet)";
    int n = 0;

    for (const farm_link_t *l = sn->running.next; l != &sn->running; l = l->next) {
        const farm_job_t *job = FARM_LINK_OWNER(l, farm_job_t, node_link);
        if (job->state != FARM_JOB_RUNNING || !job->node || job->node->index != ni ||
            farm_link_linked(&job->queue_link) || !farm_link_linked(&job->timer_link))
            return S_BROKEN("job %s on node %s's running list is not running there (state "
                            "%d)", job->id, name, (int)job->state);
        if (++n > sn->used)
            break;
    }
    if (n != sn->used)
        return S_BROKEN("node %s counts %d used slot(s) but runs %d job(s)", name, sn->used, n);
    if (!sn->live && n)
        return S_BROKEN("node %s is not live but runs %d job(s)", name, n);
    for (size_t i = 0; i < sn->n_members; i++) {
        const member_t *m = &sn->members[i];
        const heap_t *h = &self->plats[m->platform].free[m->emulated];
        int has_free = sn->live && !s_out(sn) && sn->node && sn->used < sn->node->slots;
        if (m->pos >= 0 && ((size_t)m->pos >= h->n || h->a[m->pos] != m))
            return S_BROKEN("node %s's place in %s's heap is wrong", name,
                            self->cfg->platforms[m->platform].platform);
        /* absent with a free slot is allowed: a push that ran out of memory */
        if (m->pos >= 0 && !has_free)
            return S_BROKEN("node %s is offered for %s with no free slot (live %d, drained "
                            "%d, unhealthy %d, used %d)", name,
                            self->cfg->platforms[m->platform].platform, sn->live, sn->drained,
                            sn->sick, sn->used);
    }
    *running += (size_t)n;
    return 0;
}

int farm_scheduler_check(const farm_scheduler_t *self)
{
    size_t queued = 0, running = 0, order = 0;
    int rc;

    for (size_t pi = 0; pi < self->n_plats; pi++) {
        const splat_t *p = &self->plats[pi];
        size_t in_queue = 0, in_waits = 0;
        int live[2] = {0, 0};
        if ((rc = s_check_queue(self, pi, &p->queue, 0, &in_queue)) < 0 ||
            (rc = s_check_queue(self, pi, &p->waits, 1, &in_waits)) < 0)
            return rc;
        if (in_waits != p->n_waits || in_queue + in_waits != p->queued)
            return S_BROKEN("%s counts %zu queued and %zu waiting, its lists hold %zu and %zu",
                            self->cfg->platforms[pi].platform, p->queued, p->n_waits,
                            in_queue + in_waits, in_waits);
        queued += p->queued;
        for (size_t ni = 0; ni < self->n_nodes; ni++) {
            const snode_t *sn = &self->nodes[ni];
            for (size_t k = 0; sn->live && !s_out(sn) && k < sn->n_members; k++)
                if (sn->members[k].platform == pi)
                    live[sn->members[k].emulated]++;
        }
        if (live[0] != p->live[0] || live[1] != p->live[1])
            return S_BROKEN("%s counts %d native and %d emulated live node(s), there are %d "
                            "and %d", self->cfg->platforms[pi].platform, p->live[0], p->live[1],
                            live[0], live[1]);
    }
    if (queued != self->queued)
        return S_BROKEN("%zu job(s) counted queued, the platforms hold %zu", self->queued,
                        queued);
    for (const farm_link_t *l = self->queued_order.next; l != &self->queued_order; l = l->next)
        if (++order > queued)
            break;
    if (order != queued)
        return S_BROKEN("the queue-timeout order holds %zu job(s), %zu are queued", order,
                        queued);
    order = 0;
    for (const farm_link_t *l = self->parked_order.next; l != &self->parked_order;
         l = l->next) {
        const farm_job_t *job = FARM_LINK_OWNER(l, farm_job_t, timer_link);
        if (job->state != FARM_JOB_QUEUED || !job->parked || job->node ||
            farm_link_linked(&job->queue_link) || farm_link_linked(&job->node_link))
            return S_BROKEN("job %s is parked but not a parked queued job (state %d)", job->id,
                            (int)job->state);
        if (l->next != &self->parked_order &&
            FARM_LINK_OWNER(l->next, farm_job_t, timer_link)->park_until < job->park_until)
            return S_BROKEN("the parked jobs are out of park_until order at %s", job->id);
        if (++order > self->n_parked)
            break;
    }
    if (order != self->n_parked)
        return S_BROKEN("%zu job(s) counted parked, the list holds %zu", self->n_parked, order);
    for (size_t ni = 0; ni < self->n_nodes; ni++)
        if ((rc = s_check_node(self, ni, &running)) < 0)
            return rc;
    order = 0;
    for (const farm_link_t *l = self->running_order.next; l != &self->running_order;
         l = l->next)
        if (++order > running)
            break;
    if (order != running)
        return S_BROKEN("the job-timeout order holds %zu job(s), nodes run %zu", order,
                        running);
    return 0;
}

/* ------------------------------------------------------------------ reload */

size_t farm_scheduler_platform_jobs(const farm_scheduler_t *self, size_t platform_index,
                                    farm_job_t **out, size_t max)
{
    const splat_t *p = platform_index < self->n_plats ? &self->plats[platform_index] : NULL;
    const farm_link_t *lists[2] = {p ? &p->queue : NULL, p ? &p->waits : NULL};
    size_t n = 0, k;

    for (k = 0; k < 2; k++)
        for (const farm_link_t *l = lists[k] ? lists[k]->next : NULL; l && l != lists[k];
             l = l->next, n++)
            if (n < max)
                out[n] = FARM_LINK_OWNER(l, farm_job_t, queue_link);
    for (k = 0; k < 2; k++) {
        const farm_link_t *order = k ? &self->parked_order : &self->running_order;
        for (const farm_link_t *l = order->next; l != order; l = l->next) {
            farm_job_t *job = FARM_LINK_OWNER(l, farm_job_t, timer_link);
            if (job->platform_index != platform_index)
                continue;
            if (n < max)
                out[n] = job;
            n++;
        }
    }
    return n;
}

/* The snode array moved (realloc): the members' back pointers follow. */
static void s_nodes_moved(snode_t *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < nodes[i].n_members; k++)
            nodes[i].members[k].sn = &nodes[i];
}

/* Moves every job of list from onto the back of list to, renumbered to platform pi. */
static void s_move_jobs(farm_link_t *from, farm_link_t *to, size_t pi)
{
    while (from->next != from) {
        farm_job_t *job = FARM_LINK_OWNER(from->next, farm_job_t, queue_link);
        farm_link_remove(&job->queue_link);
        farm_link_push_back(to, &job->queue_link);
        job->platform_index = pi;
    }
}

int farm_scheduler_reload(farm_scheduler_t *self, const farm_config_t *cfg,
                          const long *plat_map, size_t n_nodes)
{
    size_t np = cfg->n_platforms, n_old = self->n_nodes;
    splat_t *plats = NULL;
    size_t *dirty = NULL;
    member_t **members = NULL; /* the live nodes' new members, by node index */
    int rc = FARM_ERROR;

    for (size_t pi = 0; pi < self->n_plats; pi++)
        if (plat_map[pi] < 0 && farm_scheduler_platform_jobs(self, pi, NULL, 0) > 0)
            return farm_error_set(FARM_EINVALID, "scheduler: %s is gone from farm.yaml but "
                                  "still has jobs", self->cfg->platforms[pi].platform);
    if (n_nodes < n_old)
        return farm_error_set(FARM_EINVALID, "scheduler: the node table shrank");
    plats = calloc(np + 1, sizeof *plats);
    dirty = calloc(np + 1, sizeof *dirty);
    members = calloc(n_nodes + 1, sizeof *members);
    if (!plats || !dirty || !members)
        goto oom;
    for (size_t ni = 0; ni < n_old; ni++) {
        const snode_t *sn = &self->nodes[ni];
        if (sn->live && sn->node && !(members[ni] = calloc(sn->node->n_platforms + 1,
                                                          sizeof *members[ni])))
            goto oom;
    }
    if (n_nodes > n_old) {
        /* the list heads inside move with the array: unlink, grow, link again */
        snode_t *nodes;
        farm_link_t *tmp = calloc(n_old + 1, sizeof *tmp);
        if (!tmp)
            goto oom;
        for (size_t ni = 0; ni < n_old; ni++) {
            farm_link_init(&tmp[ni]);
            while (!farm_link_empty(&self->nodes[ni].running)) {
                farm_link_t *l = self->nodes[ni].running.next;
                farm_link_remove(l);
                farm_link_push_back(&tmp[ni], l);
            }
        }
        nodes = realloc(self->nodes, (n_nodes + 1) * sizeof *nodes);
        if (nodes)
            self->nodes = nodes;
        for (size_t ni = 0; ni < (nodes ? n_nodes : n_old); ni++) {
            if (ni >= n_old)
                memset(&self->nodes[ni], 0, sizeof self->nodes[ni]);
            farm_link_init(&self->nodes[ni].running);
            while (ni < n_old && !farm_link_empty(&tmp[ni])) {
                farm_link_t *l = tmp[ni].next;
                farm_link_remove(l);
                farm_link_push_back(&self->nodes[ni].running, l);
            }
        }
        free(tmp);
        if (!nodes)
            goto oom;
        s_nodes_moved(self->nodes, n_old);
        self->n_nodes = n_nodes;
    }
    /* committed: nothing below fails */
    for (size_t pi = 0; pi < np; pi++) {
        farm_link_init(&plats[pi].queue);
        farm_link_init(&plats[pi].waits);
    }
    for (size_t pi = 0; pi < self->n_plats; pi++) {
        splat_t *old = &self->plats[pi];
        if (plat_map[pi] >= 0) {
            splat_t *p = &plats[plat_map[pi]];
            s_move_jobs(&old->queue, &p->queue, (size_t)plat_map[pi]);
            s_move_jobs(&old->waits, &p->waits, (size_t)plat_map[pi]);
            p->queued = old->queued;
            p->n_waits = old->n_waits;
        }
        free(old->free[0].a);
        free(old->free[1].a);
    }
    for (farm_link_t *l = self->running_order.next; l != &self->running_order; l = l->next) {
        farm_job_t *job = FARM_LINK_OWNER(l, farm_job_t, timer_link);
        job->platform_index = (size_t)plat_map[job->platform_index];
    }
    for (farm_link_t *l = self->parked_order.next; l != &self->parked_order; l = l->next) {
        farm_job_t *job = FARM_LINK_OWNER(l, farm_job_t, timer_link);
        job->platform_index = (size_t)plat_map[job->platform_index];
    }
    free(self->plats);
    free(self->dirty);
    self->plats = plats;
    self->dirty = dirty;
    self->n_plats = np;
    self->n_dirty = 0;
    self->cfg = cfg;
    for (size_t ni = 0; ni < self->n_nodes; ni++) {
        snode_t *sn = &self->nodes[ni];
        free(sn->members);
        sn->members = NULL;
        sn->n_members = 0;
        if (!sn->live || !sn->node)
            continue; /* a node's members are made again at its next HELLO */
        sn->members = members[ni];
        members[ni] = NULL;
        sn->n_members = sn->node->n_platforms;
        for (size_t i = 0; i < sn->n_members; i++) {
            const farm_node_platform_t *np_ = &sn->node->platforms[i];
            const farm_config_platform_t *cp = &cfg->platforms[np_->platform_index];
            member_t *m = &sn->members[i];
            m->sn = sn;
            m->platform = np_->platform_index;
            m->emulated = np_->emulated;
            m->rank = m->emulated ? s_rank(cp->emulated, cp->n_emulated, sn->node->cfg->name)
                                  : s_rank(cp->native, cp->n_native, sn->node->cfg->name);
            m->pos = -1;
            if (!s_out(sn))
                self->plats[m->platform].live[m->emulated]++;
        }
        s_node_reheap(self, sn);
    }
    for (size_t pi = 0; pi < np; pi++) {
        s_mark_dirty(self, pi);
        /* a platform with no live node left: its jobs wait for any node, and say so */
        if (self->plats[pi].live[0] + self->plats[pi].live[1] == 0) {
            s_unwait_all(&self->plats[pi]);
            for (farm_link_t *l = self->plats[pi].queue.next; l != &self->plats[pi].queue;
                 l = l->next)
                s_say_waiting(self, FARM_LINK_OWNER(l, farm_job_t, queue_link));
        }
    }
    rc = 0;
    goto done;
oom:
    rc = farm_error_set(FARM_ERROR, "out of memory reloading the scheduler");
done:
    for (size_t ni = 0; members && ni < n_nodes; ni++)
        free(members[ni]);
    free(members);
    if (rc < 0) {
        free(plats);
        free(dirty);
    }
    return rc;
}
