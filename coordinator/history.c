/* SPDX-License-Identifier: Apache-2.0 */
/* Build records as clients read them: replies built from the journal for a caller. Every
 * string in a reply is allocated (or protobuf-c's empty string), so one
 * protobuf_c_message_free_unpacked frees a reply whole. */
#include "coordinator/history.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/text.h"

#define S_LIST_DEFAULT 100
#define S_LIST_MAX 1000 /* a reply stays under the wire's 4096 entries per field */
#define S_LOGS_CHUNK (256 * 1024)

/* ------------------------------------------------------------------ rules */

int farm_history_may_list(const farm_history_caller_t *caller, const char *owner)
{
    if (caller->role == FARM_ROLE_ADMIN || caller->role == FARM_ROLE_READ)
        return 1;
    return caller->role == FARM_ROLE_SUBMIT && owner && owner[0] &&
           strcmp(owner, caller->name) == 0;
}

int farm_history_may_read(const farm_history_caller_t *caller, const char *owner)
{
    if (caller->role == FARM_ROLE_ADMIN)
        return 1;
    return caller->role >= FARM_ROLE_READ && owner && owner[0] && caller->name &&
           strcmp(owner, caller->name) == 0;
}

/* A person's name for what happened to a build. */
static const char *s_status(const farm_journal_build_t *b)
{
    if (b->state == FARM_JOURNAL_BUILD_RUNNING)
        return "running";
    if (b->state == FARM_JOURNAL_BUILD_STITCHING)
        return "stitching";
    if (b->ok)
        return "completed";
    return b->reason && strncmp(b->reason, "cancelled", 9) == 0 ? "cancelled" : "failed";
}

static int s_refuse_read(const farm_history_caller_t *caller, const char *id, const char *owner,
                         const char *what)
{
    if (caller->role == FARM_ROLE_READ)
        return farm_error_set(FARM_EAUTH, "client %s has role read, which lists builds but "
                              "may not %s: build %s is client %s's; its owner or an admin may "
                              "(an admin gives a client role admin under clients: in "
                              "farm.yaml)", caller->name, what, id, owner);
    return farm_error_set(FARM_EAUTH, "build %s belongs to client %s; client %s (role %s) may "
                          "%s only its own builds, an admin any: ask %s or an admin",
                          id, owner, caller->name, farm_role_name(caller->role), what, owner);
}

/* ------------------------------------------------------------------ allocation */

typedef struct {
    int oom;
} s_alloc_t;

static char *s_str(s_alloc_t *a, const char *s)
{
    char *d;
    if (!s || !*s)
        return (char *)protobuf_c_empty_string;
    if (!(d = strdup(s)))
        a->oom = 1;
    return d ? d : (char *)protobuf_c_empty_string;
}

static void *s_calloc(s_alloc_t *a, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        a->oom = 1;
    return p;
}

static Farm__KeyValue **s_kvs(s_alloc_t *a, size_t *out_n, const farm_kv_t *kv, size_t n)
{
    Farm__KeyValue **v;
    *out_n = 0;
    if (!n || !(v = s_calloc(a, n, sizeof *v)))
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!(v[i] = s_calloc(a, 1, sizeof *v[i])))
            break;
        farm__key_value__init(v[i]);
        v[i]->key = s_str(a, kv[i].key);
        v[i]->value = s_str(a, kv[i].value);
        (*out_n)++;
    }
    return v;
}

static char **s_strv(s_alloc_t *a, size_t *out_n, char *const *s, size_t n)
{
    char **v;
    *out_n = 0;
    if (!n || !(v = s_calloc(a, n, sizeof *v)))
        return NULL;
    for (size_t i = 0; i < n; i++)
        v[(*out_n)++] = s_str(a, s[i]);
    return v;
}

static Farm__HistoryEntry *s_entry(s_alloc_t *a, const farm_journal_build_t *b)
{
    Farm__HistoryEntry *e = s_calloc(a, 1, sizeof *e);
    char repo[FARM_REGISTRY_HOST_MAX + 1 + sizeof b->repository + 1];

    if (!e)
        return NULL;
    farm__history_entry__init(e);
    snprintf(repo, sizeof repo, "%s/%s", b->registry, b->repository);
    e->build_id = s_str(a, b->id);
    e->owner = s_str(a, b->owner);
    e->repository = s_str(a, repo);
    e->status = s_str(a, s_status(b));
    e->created_unix_ms = (uint64_t)b->created;
    e->done_unix_ms = b->state == FARM_JOURNAL_BUILD_DONE ? (uint64_t)b->done_at : 0;
    e->platforms = s_strv(a, &e->n_platforms, b->platforms, b->n_platforms);
    e->index_digest = s_str(a, b->ok ? b->index_digest : "");
    e->tags = s_strv(a, &e->n_tags, b->tags, b->n_tags);
    e->error = s_str(a, b->ok ? "" : b->reason);
    return e;
}

/* ------------------------------------------------------------------ filters */

/* since= / until=: a duration ago (24h, 30m) or an RFC 3339 time in UTC. */
static int s_time(long long *out, const char *v, long long now)
{
    struct tm tm;
    const char *end;
    long ms = farm_config_parse_duration_ms(v);

    if (ms >= 0) {
        *out = now - ms;
        return 0;
    }
    if (v[0] && v[strlen(v) - 1] == 'd') { /* days, as history.keep says them */
        char *e;
        long long d = strtoll(v, &e, 10);
        if (e != v && *e == 'd' && !e[1] && d >= 0 && d <= 36500) {
            *out = now - d * 86400000LL;
            return 0;
        }
    }
    memset(&tm, 0, sizeof tm);
    if ((end = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm)) && (!*end || !strcmp(end, "Z"))) {
        *out = (long long)timegm(&tm) * 1000;
        return 0;
    }
    memset(&tm, 0, sizeof tm);
    if ((end = strptime(v, "%Y-%m-%d", &tm)) && !*end) {
        *out = (long long)timegm(&tm) * 1000;
        return 0;
    }
    return -1;
}

static int s_filters(farm_journal_filter_t *f, char *const *filters, size_t n, long long now)
{
    static const char *const statuses[] = {"running", "stitching", "completed", "failed",
                                           "cancelled", NULL};
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(filters[i], '='), *v;
        char key[32], shown[128];
        size_t klen;
        int neg;

        farm_text_inert(shown, sizeof shown, filters[i]);
        if (!eq || eq == filters[i])
            return farm_error_set(FARM_EINVALID, "filter \"%s\": write KEY=VALUE or "
                                  "KEY!=VALUE, e.g. status=failed or since=24h", shown);
        neg = eq[-1] == '!';
        klen = (size_t)(eq - filters[i]) - (size_t)neg;
        v = eq + 1;
        if (klen == 0 || klen >= sizeof key)
            goto unknown;
        memcpy(key, filters[i], klen);
        key[klen] = 0;
        if (!strcmp(key, "status")) {
            int known = 0;
            for (size_t k = 0; statuses[k]; k++)
                known |= !strcmp(v, statuses[k]);
            if (!known)
                return farm_error_set(FARM_EINVALID, "filter \"%s\": status is one of running, "
                                      "stitching, completed, failed, cancelled", shown);
            f->status = v;
            f->status_not = neg;
        } else if (!strcmp(key, "repository") || !strcmp(key, "repo")) {
            f->repository = v;
            f->repository_not = neg;
        } else if (!strcmp(key, "owner") || !strcmp(key, "client")) {
            f->owner = v;
            f->owner_not = neg;
        } else if (!strcmp(key, "since") || !strcmp(key, "until")) {
            long long t;
            if (neg || s_time(&t, v, now) < 0)
                return farm_error_set(FARM_EINVALID, "filter \"%s\": %s= takes a duration ago "
                                      "(e.g. 24h, 7d) or a time (2026-12-01T08:00:00Z)", shown,
                                      key);
            if (!strcmp(key, "since"))
                f->since = t;
            else
                f->until = t;
        } else {
            goto unknown;
        }
        continue;
    unknown:
        return farm_error_set(FARM_EINVALID, "filter \"%s\": unknown key; use status=, "
                              "repository=, owner=, since= or until=", shown);
    }
    return 0;
}

static long long s_wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_journal(const farm_coord_parts_t *parts)
{
    if (!parts->journal)
        return farm_error_set(FARM_ENOTFOUND, "this coordinator keeps no build records (it "
                              "runs without a journal: set coordinator.state_dir in farm.yaml)");
    return 0;
}

/* ------------------------------------------------------------------ list */

Farm__HistoryReply *farm_history_list(const farm_coord_parts_t *parts,
                                      const farm_history_caller_t *caller,
                                      const Farm__HistoryRequest *req)
{
    farm_journal_filter_t f = {0};
    farm_journal_build_t *bs = NULL;
    Farm__HistoryReply *rep = NULL;
    s_alloc_t a = {0};
    size_t n = 0;

    if (s_journal(parts) < 0 ||
        s_filters(&f, req->filters, req->n_filters, s_wall_now()) < 0)
        return NULL;
    if (caller->role < FARM_ROLE_READ) {
        farm_error_set(FARM_EAUTH, "client %s has no role that lists builds; an admin gives it "
                       "role read, submit or admin under clients: in farm.yaml", caller->name);
        return NULL;
    }
    if (!farm_history_may_list(caller, "")) { /* only its own */
        if (f.owner && (f.owner_not ? !strcmp(f.owner, caller->name)
                                    : strcmp(f.owner, caller->name) != 0)) {
            farm_error_set(FARM_EAUTH, "client %s (role submit) lists only its own builds; a "
                           "read or admin client lists every one", caller->name);
            return NULL;
        }
        f.owner = caller->name;
        f.owner_not = 0;
    }
    f.limit = req->limit ? (req->limit < S_LIST_MAX ? req->limit : S_LIST_MAX) : S_LIST_DEFAULT;
    if (farm_journal_list(parts->journal, &bs, &n, &f) < 0)
        return NULL;
    if (!(rep = s_calloc(&a, 1, sizeof *rep)))
        goto done;
    farm__history_reply__init(rep);
    if (n && !(rep->builds = s_calloc(&a, n, sizeof *rep->builds)))
        goto done;
    for (size_t i = 0; i < n; i++) {
        Farm__HistoryEntry *e = s_entry(&a, &bs[i]);
        if (!e)
            break;
        rep->builds[rep->n_builds++] = e;
    }
done:
    farm_journal_builds_free(bs, n);
    if (a.oom) {
        if (rep)
            protobuf_c_message_free_unpacked(&rep->base, NULL);
        farm_error_set(FARM_ERROR, "coordinator out of memory listing builds");
        return NULL;
    }
    return rep;
}

/* ------------------------------------------------------------------ one build */

int farm_history_resolve(char out[FARM_ID_MAX + 1], const farm_coord_parts_t *parts,
                         const farm_history_caller_t *caller, const char *ref)
{
    char shown[FARM_ID_MAX + 1];
    int rc;

    out[0] = 0;
    if ((rc = s_journal(parts)) < 0)
        return rc;
    if (!ref || !*ref)
        return farm_error_set(FARM_EINVALID, "no build named: give a build id (farmctl history "
                              "lists them) or ^N, the Nth before the newest");
    if (ref[0] == '^') {
        farm_journal_filter_t f = {0};
        farm_journal_build_t *bs = NULL;
        size_t n = 0;
        char *end;
        unsigned long k = strtoul(ref + 1, &end, 10);
        if (!isdigit((unsigned char)ref[1]) || *end || k > 1000000)
            return farm_error_set(FARM_EINVALID, "\"%.32s\" is not a build: write ^N, e.g. ^1 "
                                  "for the one before the newest", ref);
        if (!farm_history_may_list(caller, "")) {
            f.owner = caller->name;
        }
        f.offset = k;
        f.limit = 1;
        if ((rc = farm_journal_list(parts->journal, &bs, &n, &f)) < 0)
            return rc;
        if (n == 1)
            snprintf(out, FARM_ID_MAX + 1, "%s", bs[0].id);
        farm_journal_builds_free(bs, n);
        if (!out[0])
            return farm_error_set(FARM_ENOTFOUND, "no build %s: the history you may see holds "
                                  "fewer than %lu builds", ref, k + 1);
        return 0;
    }
    farm_text_inert(shown, sizeof shown, ref);
    if (strlen(ref) > FARM_ID_MAX)
        return farm_error_set(FARM_ENOTFOUND, "no build %s...: a build id has at most %d "
                              "characters", shown, FARM_ID_MAX);
    snprintf(out, FARM_ID_MAX + 1, "%s", ref);
    return 0;
}

/* The build's journal row for caller, checked: FARM_ENOTFOUND or FARM_EAUTH otherwise. */
static int s_readable(farm_journal_record_t *out, const farm_coord_parts_t *parts,
                      const farm_history_caller_t *caller, const char *ref, const char *what)
{
    char id[FARM_ID_MAX + 1], shown[FARM_ID_MAX + 1];
    int rc;

    memset(out, 0, sizeof *out);
    if ((rc = farm_history_resolve(id, parts, caller, ref)) < 0)
        return rc;
    if ((rc = farm_journal_get_record(parts->journal, out, id)) < 0) {
        if (rc != FARM_ENOTFOUND)
            return rc;
        farm_text_inert(shown, sizeof shown, id);
        return farm_error_set(FARM_ENOTFOUND, "no build %s on this coordinator: it was pruned "
                              "(history.keep, history.max_builds), or submitted to another "
                              "farm; farmctl history lists the builds kept", shown);
    }
    if (!farm_history_may_read(caller, out->build.owner)) {
        rc = s_refuse_read(caller, out->build.id, out->build.owner, what);
        farm_journal_record_clear(out);
        return rc;
    }
    return 0;
}

static Farm__HistoryPlatform *s_platform(s_alloc_t *a, const farm_journal_record_t *r,
                                         const farm_journal_job_t *j)
{
    static const char *const states[] = {"", "queued", "running", "done", "failed",
                                         "cancelled"};
    Farm__HistoryPlatform *p = s_calloc(a, 1, sizeof *p);
    size_t na = 0, ns = 0;

    if (!p)
        return NULL;
    farm__history_platform__init(p);
    p->platform = s_str(a, j->platform);
    p->state = s_str(a, j->state <= FARM_JOURNAL_JOB_CANCELLED ? states[j->state] : "");
    p->node = s_str(a, j->node);
    p->cache_hits = j->cache_hits;
    p->steps = j->steps;
    p->error = s_str(a, j->error);
    if (j->image_digest[0] && (p->image = s_calloc(a, 1, sizeof *p->image))) {
        farm__descriptor__init(p->image);
        p->image->media_type = s_str(a, j->image_media_type);
        p->image->digest = s_str(a, j->image_digest);
        p->image->size = j->image_size;
        p->image->platform = s_str(a, j->platform);
    }
    for (size_t i = 0; i < r->n_attempts; i++)
        na += !strcmp(r->attempts[i].platform, j->platform);
    for (size_t i = 0; i < r->n_steps; i++)
        ns += !strcmp(r->steps[i].platform, j->platform);
    if (na && (p->attempts = s_calloc(a, na, sizeof *p->attempts)))
        for (size_t i = 0; i < r->n_attempts; i++) {
            const farm_journal_attempt_t *at = &r->attempts[i];
            Farm__HistoryAttempt *h;
            if (strcmp(at->platform, j->platform) != 0 || !(h = s_calloc(a, 1, sizeof *h)))
                continue;
            farm__history_attempt__init(h);
            h->attempt = at->attempt;
            h->node = s_str(a, at->node);
            h->outcome = s_str(a, at->outcome);
            h->reason = s_str(a, at->reason);
            h->started_unix_ms = (uint64_t)at->started_at;
            h->finished_unix_ms = (uint64_t)at->finished_at;
            p->attempts[p->n_attempts++] = h;
        }
    if (ns && (p->build_steps = s_calloc(a, ns, sizeof *p->build_steps)))
        for (size_t i = 0; i < r->n_steps; i++) {
            const farm_journal_step_t *st = &r->steps[i];
            Farm__BuildStep *b;
            if (strcmp(st->platform, j->platform) != 0 || !(b = s_calloc(a, 1, sizeof *b)))
                continue;
            farm__build_step__init(b);
            b->number = st->number;
            b->text = s_str(a, st->text);
            b->ms = st->ms;
            b->cached = st->cached;
            p->build_steps[p->n_build_steps++] = b;
        }
    return p;
}

Farm__HistoryRecord *farm_history_get(const farm_coord_parts_t *parts,
                                      const farm_history_caller_t *caller,
                                      const Farm__HistoryGet *req)
{
    farm_journal_record_t r;
    Farm__HistoryRecord *rec = NULL;
    Farm__BuildFlags *fl;
    s_alloc_t a = {0};

    if (s_readable(&r, parts, caller, req->build, "inspect") < 0)
        return NULL;
    if (!(rec = s_calloc(&a, 1, sizeof *rec)))
        goto done;
    farm__history_record__init(rec);
    rec->build = s_entry(&a, &r.build);
    rec->context_digest = s_str(&a, r.build.context_digest);
    rec->context_size = r.build.context_size;
    rec->dockerfile = s_str(&a, r.build.dockerfile ? r.build.dockerfile : "Dockerfile");
    rec->build_args = s_kvs(&a, &rec->n_build_args, r.build.args, r.build.n_args);
    rec->network = s_str(&a, r.build.network_none ? "none" : "default");
    rec->log_cut_lines = r.log_cut_lines;
    rec->log_cut_bytes = r.log_cut_bytes;
    if ((fl = rec->flags = s_calloc(&a, 1, sizeof *fl))) {
        const farm_buildflags_t *f = &r.build.flags;
        farm__build_flags__init(fl);
        fl->target = s_str(&a, f->target);
        fl->no_cache = f->no_cache;
        fl->pull = f->pull;
        fl->labels = s_kvs(&a, &fl->n_labels, f->labels, f->n_labels);
        fl->annotations = s_kvs(&a, &fl->n_annotations, f->annotations, f->n_annotations);
        fl->index_annotations = s_kvs(&a, &fl->n_index_annotations, f->index_annotations,
                                      f->n_index_annotations);
        fl->cache_from = s_str(&a, f->cache_from);
        fl->cache_to = s_str(&a, f->cache_to);
    }
    if (r.n_jobs && (rec->platforms = s_calloc(&a, r.n_jobs, sizeof *rec->platforms)))
        for (size_t i = 0; i < r.n_jobs; i++) {
            Farm__HistoryPlatform *p = s_platform(&a, &r, &r.jobs[i]);
            if (p)
                rec->platforms[rec->n_platforms++] = p;
        }
done:
    farm_journal_record_clear(&r);
    if (a.oom) {
        if (rec)
            protobuf_c_message_free_unpacked(&rec->base, NULL);
        farm_error_set(FARM_ERROR, "coordinator out of memory reading a build's record");
        return NULL;
    }
    return rec;
}

/* ------------------------------------------------------------------ logs */

void farm_history_logs_free(Farm__LogsReply **replies, size_t n)
{
    for (size_t i = 0; replies && i < n; i++)
        if (replies[i])
            protobuf_c_message_free_unpacked(&replies[i]->base, NULL);
    free(replies);
}

Farm__LogsReply **farm_history_logs(size_t *out_n, const farm_coord_parts_t *parts,
                                    const farm_history_caller_t *caller,
                                    const Farm__LogsRequest *req, size_t max_bytes)
{
    farm_journal_record_t r;
    farm_journal_line_t *lines = NULL;
    Farm__LogsReply **reps = NULL;
    s_alloc_t a = {0};
    size_t n = 0, n_reps = 0, cap = 0;
    char id[FARM_ID_MAX + 1];

    *out_n = 0;
    if (s_readable(&r, parts, caller, req->build, "read the logs of") < 0)
        return NULL;
    snprintf(id, sizeof id, "%s", r.build.id);
    if (req->platform && req->platform[0]) {
        int known = 0;
        for (size_t i = 0; i < r.build.n_platforms; i++)
            known |= !strcmp(r.build.platforms[i], req->platform);
        if (!known) {
            char shown[FARM_PLATFORM_STRLEN];
            farm_text_inert(shown, sizeof shown, req->platform);
            farm_error_set(FARM_EINVALID, "build %s has no platform %s; it built %s%s%s", id,
                           shown, r.build.n_platforms ? r.build.platforms[0] : "none",
                           r.build.n_platforms > 1 ? " and " : "",
                           r.build.n_platforms > 1 ? "others (farmctl history inspect)" : "");
            farm_journal_record_clear(&r);
            return NULL;
        }
    }
    farm_journal_record_clear(&r);
    if (farm_journal_get_lines(parts->journal, &lines, &n, id, req->platform) < 0)
        return NULL;
    max_bytes = max_bytes ? max_bytes : S_LOGS_CHUNK;
    for (size_t i = 0; i == 0 || i < n;) {
        Farm__LogsReply *rep;
        size_t bytes = 0, first = i;
        if (n_reps == cap) {
            size_t c = cap ? cap * 2 : 4;
            Farm__LogsReply **p = realloc(reps, c * sizeof *p);
            if (!p) {
                a.oom = 1;
                break;
            }
            reps = p;
            cap = c;
        }
        if (!(rep = reps[n_reps] = s_calloc(&a, 1, sizeof *rep)))
            break;
        n_reps++;
        farm__logs_reply__init(rep);
        rep->build_id = s_str(&a, id);
        while (i < n && (i == first || bytes + strlen(lines[i].line) + 64 <= max_bytes))
            bytes += strlen(lines[i++].line) + 64;
        if (i > first && (rep->lines = s_calloc(&a, i - first, sizeof *rep->lines)))
            for (size_t k = first; k < i; k++) {
                Farm__LogLine *l = s_calloc(&a, 1, sizeof *l);
                if (!l)
                    break;
                farm__log_line__init(l);
                l->platform = s_str(&a, lines[k].platform);
                l->node = s_str(&a, lines[k].node);
                l->line = s_str(&a, lines[k].line);
                rep->lines[rep->n_lines++] = l;
            }
        rep->more = i < n;
        if (n == 0)
            break;
    }
    farm_journal_lines_free(lines, n);
    if (a.oom) {
        farm_history_logs_free(reps, n_reps);
        farm_error_set(FARM_ERROR, "coordinator out of memory reading a build's log");
        return NULL;
    }
    *out_n = n_reps;
    return reps;
}

/* ------------------------------------------------------------------ live lines */

#define S_WATCHES_MAX 1024

typedef struct {
    int id;
    char build_id[FARM_ID_MAX + 1];
    farm_history_line_fn fn;
    void *arg;
} s_watch_t;

struct farm_history_watches {
    s_watch_t *w;
    size_t n, cap;
    int next_id;
};

farm_history_watches_t *farm_history_watches_new(void)
{
    farm_history_watches_t *self = calloc(1, sizeof *self);
    if (!self)
        farm_error_set(FARM_ERROR, "out of memory");
    return self;
}

void farm_history_watches_destroy(farm_history_watches_t **self_p)
{
    farm_history_watches_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    free(self->w);
    free(self);
    *self_p = NULL;
}

int farm_history_watch(farm_history_watches_t *self, const char *build_id,
                       farm_history_line_fn fn, void *arg)
{
    if (!build_id || strlen(build_id) > FARM_ID_MAX || !fn)
        return farm_error_set(FARM_EINVALID, "watching a build's log: no valid build id");
    if (self->n == S_WATCHES_MAX)
        return farm_error_set(FARM_ETOOBIG, "%d live logs are watched already; close some",
                              S_WATCHES_MAX);
    if (self->n == self->cap) {
        size_t c = self->cap ? self->cap * 2 : 8;
        s_watch_t *w = realloc(self->w, c * sizeof *w);
        if (!w)
            return farm_error_set(FARM_ERROR, "out of memory");
        self->w = w;
        self->cap = c;
    }
    if (++self->next_id <= 0)
        self->next_id = 1;
    self->w[self->n] = (s_watch_t){.id = self->next_id, .fn = fn, .arg = arg};
    snprintf(self->w[self->n].build_id, sizeof self->w[self->n].build_id, "%s", build_id);
    self->n++;
    return self->next_id;
}

void farm_history_unwatch(farm_history_watches_t *self, int id)
{
    for (size_t i = 0; i < self->n; i++)
        if (self->w[i].id == id) {
            self->w[i] = self->w[--self->n];
            return;
        }
}

void farm_history_line(farm_history_watches_t *self, const char *build_id,
                       const char *platform, const char *line)
{
    for (size_t i = 0; self && i < self->n; i++)
        if (!strcmp(self->w[i].build_id, build_id))
            self->w[i].fn(self->w[i].arg, build_id, platform, line);
}

void farm_history_ended(farm_history_watches_t *self, const char *build_id)
{
    for (size_t i = 0; self && i < self->n;) {
        if (strcmp(self->w[i].build_id, build_id) != 0) {
            i++;
            continue;
        }
        s_watch_t w = self->w[i];
        self->w[i] = self->w[--self->n]; /* gone before the call: it may watch again */
        w.fn(w.arg, build_id, NULL, NULL);
    }
}
