/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/cachecmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "coordinator/warm.h"

typedef struct {
    size_t node;                /* index in the node table */
    uint64_t session;           /* the session asked: another one is not the same answer */
    Farm__CacheReport *report;  /* NULL until it answered */
    char why[160];              /* set when it will not answer */
} slot_t;

typedef struct pending {
    struct pending *next;
    uint64_t id;
    char rid[256];
    size_t rid_len;
    int prune;
    long long deadline;
    slot_t *slots;
    size_t n;
} pending_t;

struct farm_cachecmd {
    farm_nodes_t *nodes;
    farm_scheduler_t *sched;
    farm_cachecmd_send_fn to_client, to_agent;
    void *arg;
    long long wait_ms;
    uint64_t next_id;
    pending_t *pending;
};

farm_cachecmd_t *farm_cachecmd_new(farm_nodes_t *nodes, farm_scheduler_t *sched,
                                   farm_cachecmd_send_fn to_client, farm_cachecmd_send_fn to_agent,
                                   void *arg, long long wait_ms)
{
    farm_cachecmd_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->nodes = nodes;
    self->sched = sched;
    self->to_client = to_client;
    self->to_agent = to_agent;
    self->arg = arg;
    self->wait_ms = wait_ms > 0 ? wait_ms : FARM_CACHECMD_WAIT_MS;
    self->next_id = 1;
    return self;
}

static void s_pending_free(pending_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->slots[i].report)
            farm__cache_report__free_unpacked(p->slots[i].report, NULL);
    free(p->slots);
    free(p);
}

void farm_cachecmd_destroy(farm_cachecmd_t **self_p)
{
    farm_cachecmd_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    while (self->pending) {
        pending_t *p = self->pending;
        self->pending = p->next;
        s_pending_free(p);
    }
    free(self);
    *self_p = NULL;
}

size_t farm_cachecmd_pending(const farm_cachecmd_t *self)
{
    size_t n = 0;
    for (const pending_t *p = self->pending; p; p = p->next)
        n++;
    return n;
}

/* Why node n cannot be asked now ("" when it can). */
static void s_unreachable(char *why, size_t cap, const farm_node_t *n, long long now)
{
    why[0] = '\0';
    (void)now;
    if (n->state == FARM_NODE_LOST)
        snprintf(why, cap, "lost: its agent stopped answering; start it again, or leave the "
                 "node out with --node");
    else if (n->state == FARM_NODE_UNKNOWN)
        snprintf(why, cap, "never connected since the coordinator started; start its agent");
}

int farm_cachecmd_request(farm_cachecmd_t *self, char *reason, size_t reason_len,
                          const void *rid, size_t rid_len, const Farm__CacheQuery *q,
                          long long now)
{
    size_t total = farm_nodes_count(self->nodes), n = 0;
    pending_t *p;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__CacheQuery ask = FARM__CACHE_QUERY__INIT;

    if (farm_cachecmd_pending(self) >= FARM_CACHECMD_PENDING_MAX) {
        snprintf(reason, reason_len, "%d du or prune requests already wait for their nodes; "
                 "try again in a minute", FARM_CACHECMD_PENDING_MAX);
        return FARM_ERETRY;
    }
    if (rid_len > sizeof p->rid) {
        snprintf(reason, reason_len, "client routing id too long");
        return FARM_EINVALID;
    }
    for (size_t i = 0; i < q->n_nodes; i++)
        if (!farm_nodes_by_name(self->nodes, q->nodes[i])) {
            char known[512] = "";
            size_t off = 0;
            for (size_t k = 0; k < total && off + 2 < sizeof known; k++) {
                int w = snprintf(known + off, sizeof known - off, "%s%s", off ? ", " : "",
                                 farm_nodes_at(self->nodes, k)->cfg->name);
                if (w < 0)
                    break;
                off += (size_t)w < sizeof known - off ? (size_t)w : sizeof known - off - 1;
            }
            snprintf(reason, reason_len, "no node \"%.64s\" in farm.yaml; its nodes are: %s",
                     q->nodes[i], known[0] ? known : "(none)");
            return FARM_ENOTFOUND;
        }
    if (!(p = calloc(1, sizeof *p)) || !(p->slots = calloc(total + 1, sizeof *p->slots))) {
        free(p);
        snprintf(reason, reason_len, "coordinator out of memory");
        return FARM_ERROR;
    }
    p->id = self->next_id++;
    memcpy(p->rid, rid, rid_len);
    p->rid_len = rid_len;
    p->prune = q->prune;
    p->deadline = now + self->wait_ms;
    ask.request_id = p->id;
    ask.prune = q->prune;
    ask.until_s = q->until_s;
    ask.all = q->all;
    env.body_case = FARM__ENVELOPE__BODY_CACHE_QUERY;
    env.cache_query = &ask;
    for (size_t i = 0; i < total; i++) {
        farm_node_t *node = farm_nodes_at(self->nodes, i);
        slot_t *s = &p->slots[n];
        int named = q->n_nodes == 0;

        for (size_t k = 0; k < q->n_nodes && !named; k++)
            named = strcmp(q->nodes[k], node->cfg->name) == 0;
        if (!named || (node->removed && node->state != FARM_NODE_READY))
            continue;
        s->node = i;
        s->session = node->session;
        s_unreachable(s->why, sizeof s->why, node, now);
        if (!s->why[0] && self->to_agent(self->arg, node->rid, node->rid_len, &env) < 0)
            snprintf(s->why, sizeof s->why, "its connection is gone");
        n++;
    }
    p->n = n;
    p->next = self->pending;
    self->pending = p;
    farm_log_info("cache %s request %llu sent to %zu node(s)", q->prune ? "prune" : "du",
                  (unsigned long long)p->id, n);
    farm_cachecmd_tick(self, now); /* nothing to wait for: answered now */
    return 0;
}

void farm_cachecmd_report(farm_cachecmd_t *self, farm_node_t *node, const Farm__CacheReport *r,
                          long long now)
{
    for (pending_t *p = self->pending; p; p = p->next) {
        if (p->id != r->request_id)
            continue;
        for (size_t i = 0; i < p->n; i++) {
            slot_t *s = &p->slots[i];
            uint8_t *buf = NULL;
            size_t len = 0;

            if (s->node != node->index || s->report || s->why[0])
                continue;
            if (farm_wire_pack(&buf, &len, &r->base) < 0 ||
                !(s->report = farm__cache_report__unpack(NULL, len, buf))) {
                snprintf(s->why, sizeof s->why, "its answer could not be kept (out of memory)");
            } else {
                free(s->report->node);
                s->report->node = strdup(node->cfg->name); /* the session's, not its word */
                if (!s->report->node)
                    s->report->node = calloc(1, 1);
            }
            free(buf);
            if (s->report && p->prune) {
                /* what was emptied is not warm there any more */
                farm_warm_t *warm = farm_scheduler_warm(self->sched);
                for (size_t k = 0; k < s->report->n_entries; k++) {
                    const Farm__CacheEntry *e = s->report->entries[k];
                    if (strcmp(e->kind, "builder") != 0 || e->in_use || e->kept[0])
                        continue;
                    farm_warm_forget(warm, node->index,
                                     strcmp(e->scope, "@keyless") == 0 ? "" : e->scope,
                                     e->platform);
                }
            }
        }
    }
    farm_cachecmd_tick(self, now);
}

static void s_answer(farm_cachecmd_t *self, pending_t *p)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__CacheReply rep = FARM__CACHE_REPLY__INIT;
    Farm__CacheReport **reports = calloc(p->n + 1, sizeof *reports);
    Farm__CacheMissing *miss = calloc(p->n + 1, sizeof *miss);
    Farm__CacheMissing **miss_p = calloc(p->n + 1, sizeof *miss_p);

    for (size_t i = 0; reports && miss && miss_p && i < p->n; i++) {
        slot_t *s = &p->slots[i];
        if (s->report) {
            reports[rep.n_reports++] = s->report;
            continue;
        }
        farm__cache_missing__init(&miss[rep.n_missing]);
        miss[rep.n_missing].node = (char *)farm_nodes_at(self->nodes, s->node)->cfg->name;
        miss[rep.n_missing].why = s->why;
        miss_p[rep.n_missing] = &miss[rep.n_missing];
        rep.n_missing++;
    }
    rep.reports = reports;
    rep.missing = miss_p;
    rep.prune = p->prune;
    env.body_case = FARM__ENVELOPE__BODY_CACHE_REPLY;
    env.cache_reply = &rep;
    if (self->to_client(self->arg, p->rid, p->rid_len, &env) < 0)
        farm_log_info("cache request %llu: its client is gone: %s", (unsigned long long)p->id,
                      farm_error_last());
    else
        farm_log_info("cache request %llu answered: %zu node(s), %zu missing",
                      (unsigned long long)p->id, rep.n_reports, rep.n_missing);
    free(reports);
    free(miss);
    free(miss_p);
}

void farm_cachecmd_tick(farm_cachecmd_t *self, long long now)
{
    pending_t **pp = &self->pending;

    while (*pp) {
        pending_t *p = *pp;
        int waiting = 0;

        for (size_t i = 0; i < p->n; i++) {
            slot_t *s = &p->slots[i];
            const farm_node_t *node = farm_nodes_at(self->nodes, s->node);
            if (s->report || s->why[0])
                continue;
            if (node->state != FARM_NODE_READY || node->session != s->session)
                snprintf(s->why, sizeof s->why, "lost while answering (its session ended); "
                         "ask again once it is back");
            else if (now >= p->deadline)
                snprintf(s->why, sizeof s->why, "did not answer within %lld s (a large prune "
                         "may still run there; farmctl du shows what is left)",
                         self->wait_ms / 1000);
            else
                waiting = 1;
        }
        if (waiting) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        s_answer(self, p);
        s_pending_free(p);
    }
}
