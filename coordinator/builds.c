/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/builds.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/hmap.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/reference.h"
#include "coordinator/journal.h"
#include "coordinator/stats.h"
#include "coordinator/targets.h"
#include "coordinator/warm.h"

struct farm_builds {
    const farm_config_t *cfg;
    farm_scheduler_t *sched;
    farm_builds_cbs_t cbs;
    void *arg;
    farm_hmap_t *by_id;
    farm_hmap_t *by_token; /* token digest -> build (a Submit sent again finds its build) */
    farm_hmap_t *contexts; /* context digest -> builds not DONE that use it (count) */
    farm_hmap_t *per_client; /* client name (or routing id without keys) -> builds not DONE */
    farm_link_t active;    /* RUNNING and STITCHING builds, oldest first */
    farm_link_t done;      /* DONE builds, by done_at */
    size_t n_active;
    uint64_t seq;          /* without a journal: the last submit number handed out */
    farm_journal_t *journal; /* borrowed; NULL: nothing is written (unit tests) */
    long long wall_offset; /* wall-clock ms minus farm_now_ms(): the journal's times */
};

static const char *const s_automatic_args[] = {"TARGETPLATFORM", "TARGETOS",  "TARGETARCH",
                                               "TARGETVARIANT",  "BUILDPLATFORM", "BUILDOS",
                                               "BUILDARCH",      "BUILDVARIANT"};

farm_builds_t *farm_builds_new(const farm_config_t *cfg, farm_scheduler_t *sched,
                               const farm_builds_cbs_t *cbs, void *arg)
{
    farm_builds_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->sched = sched;
    self->cbs = *cbs;
    self->arg = arg;
    self->by_id = farm_hmap_new();
    self->by_token = farm_hmap_new();
    self->contexts = farm_hmap_new();
    self->per_client = farm_hmap_new();
    farm_link_init(&self->active);
    farm_link_init(&self->done);
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        self->wall_offset = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - farm_now_ms();
    }
    if (!self->by_id || !self->by_token || !self->contexts || !self->per_client) {
        farm_builds_destroy(&self);
        return NULL;
    }
    return self;
}

static int s_refuse(char *reason, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Wipes and frees the submitter's logins: a build keeps them only while it runs. */
static void s_creds_wipe(farm_build_t *b)
{
    for (size_t i = 0; i < b->n_creds; i++) {
        farm_cred_t *c = &b->creds[i];
        if (c->secret) {
            explicit_bzero(c->secret, strlen(c->secret));
            free(c->secret);
        }
        if (c->username) {
            explicit_bzero(c->username, strlen(c->username));
            free(c->username);
        }
        free(c->registry);
    }
    free(b->creds);
    b->creds = NULL;
    b->n_creds = 0;
}

const farm_cred_t *farm_build_cred(const farm_build_t *b, const char *host)
{
    for (size_t i = 0; b && host && i < b->n_creds; i++)
        if (strcmp(b->creds[i].registry, host) == 0)
            return &b->creds[i];
    return NULL;
}

/* Bounded, one per registry host, each with a secret; never echoes a secret. */
static int s_copy_creds(farm_build_t *b, const farm_cred_t *creds, size_t n_creds,
                        char *reason, size_t len)
{
    if (n_creds > FARM_CREDENTIALS_MAX)
        return s_refuse(reason, len, "too many registry credentials (%zu; at most %d)",
                        n_creds, FARM_CREDENTIALS_MAX);
    if (!n_creds)
        return 0;
    if (!(b->creds = calloc(n_creds, sizeof *b->creds)))
        return s_refuse(reason, len, "coordinator out of memory");
    for (size_t i = 0; i < n_creds; i++) {
        const farm_cred_t *c = &creds[i];
        const char *r = c->registry ? c->registry : "";
        if (!r[0] || strlen(r) > FARM_REGISTRY_HOST_MAX || strpbrk(r, "/?#@ \t\r\n"))
            return s_refuse(reason, len, "registry credentials for an invalid host");
        if (!c->secret || !c->secret[0] || strlen(c->secret) > FARM_CRED_SECRET_MAX ||
            (c->username && strlen(c->username) > FARM_CRED_USER_MAX))
            return s_refuse(reason, len, "registry credentials for %s: empty or over-long "
                            "username or secret (at most %d and %d bytes)", r,
                            FARM_CRED_USER_MAX, FARM_CRED_SECRET_MAX);
        if (farm_build_cred(b, r))
            return s_refuse(reason, len, "registry credentials for %s sent twice", r);
        b->creds[i].registry = strdup(r);
        b->creds[i].username = strdup(c->username ? c->username : "");
        b->creds[i].secret = strdup(c->secret);
        b->creds[i].identity_token = c->identity_token;
        b->n_creds++;
        if (!b->creds[i].registry || !b->creds[i].username || !b->creds[i].secret)
            return s_refuse(reason, len, "coordinator out of memory");
    }
    return 0;
}

static void s_build_free(farm_builds_t *self, farm_build_t *b)
{
    if (!b)
        return;
    s_creds_wipe(b);
    farm_buildflags_clear(&b->flags);
    free(b->error);
    for (size_t i = 0; i < b->n_jobs; i++) {
        farm_scheduler_forget(self->sched, &b->jobs[i]);
        farm_tail_clear(&b->jobs[i].tail);
        free(b->jobs[i].cache_key);
        free(b->jobs[i].image);
        free(b->jobs[i].prov);
        free(b->jobs[i].error);
    }
    free(b->jobs);
    farm_targets_free(b);
    free(b->kept_by);
    farm_sign_out_clear(&b->signed_info);
    free(b->amend_kept);
    free(b->dockerfile);
    for (size_t i = 0; i < b->n_args; i++) {
        free(b->args[i].key);
        free(b->args[i].value);
    }
    free(b->args);
    free(b);
}

void farm_builds_destroy(farm_builds_t **self_p)
{
    farm_builds_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (farm_link_t *heads[] = {&self->active, &self->done, NULL}, **h = heads; *h; h++) {
        while ((*h)->next && !farm_link_empty(*h)) {
            farm_build_t *b = FARM_LINK_OWNER((*h)->next, farm_build_t, link);
            farm_link_remove(&b->link);
            s_build_free(self, b);
        }
    }
    farm_hmap_destroy(&self->by_id);
    farm_hmap_destroy(&self->by_token);
    farm_hmap_destroy(&self->contexts);
    farm_hmap_destroy(&self->per_client);
    free(self);
    *self_p = NULL;
}

/* ------------------------------------------------------------------ events */

void farm_builds_event(farm_builds_t *self, farm_build_t *b, const farm_job_t *job,
                       farm_event_kind_t kind, const char *fmt, ...)
{
    char msg[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap); /* a message is cut for display only */
    va_end(ap);
    if (self->cbs.event)
        self->cbs.event(self->arg, b, job, kind, msg);
}

/* ------------------------------------------------------------------ context use */

static void s_context_ref(farm_builds_t *self, const char *digest, int delta)
{
    uintptr_t n = (uintptr_t)farm_hmap_gets(self->contexts, digest);
    if (delta > 0) {
        if (farm_hmap_puts(self->contexts, digest, (void *)(n + 1)) < 0)
            farm_log_warn("out of memory counting uses of context %s", digest);
    } else if (n <= 1) {
        farm_hmap_dels(self->contexts, digest);
    } else {
        farm_hmap_puts(self->contexts, digest, (void *)(n - 1)); /* replaces: no allocation */
    }
}

/* The key a client's builds are counted under: its name, or without keys its routing id. */
static size_t s_client_key(const void **key, const char *owner, const void *client,
                           size_t client_len)
{
    if (owner && owner[0]) {
        *key = owner;
        return strlen(owner);
    }
    *key = client;
    return client_len;
}

static uintptr_t s_client_builds(const farm_builds_t *self, const char *owner,
                                 const void *client, size_t client_len)
{
    const void *k;
    size_t kl = s_client_key(&k, owner, client, client_len);
    return (uintptr_t)farm_hmap_get(self->per_client, k, kl);
}

static void s_client_ref(farm_builds_t *self, const farm_build_t *b, int delta)
{
    const void *k;
    size_t kl = s_client_key(&k, b->owner, b->client, b->client_len);
    uintptr_t n = (uintptr_t)farm_hmap_get(self->per_client, k, kl);
    if (delta < 0 && n <= 1)
        farm_hmap_del(self->per_client, k, kl);
    else if (farm_hmap_put(self->per_client, k, kl, (void *)(delta > 0 ? n + 1 : n - 1)) < 0)
        farm_log_warn("out of memory counting a client's builds");
}

int farm_builds_context_in_use(const farm_builds_t *self, const char *digest)
{
    return farm_hmap_gets(self->contexts, digest) != NULL;
}

/* ------------------------------------------------------------------ journal */

void farm_builds_set_journal(farm_builds_t *self, farm_journal_t *journal)
{
    self->journal = journal;
}

static long long s_wall(const farm_builds_t *self, long long t)
{
    return t ? t + self->wall_offset : 0;
}

static long long s_mono(const farm_builds_t *self, long long wall)
{
    return wall ? wall - self->wall_offset : 0;
}

static void s_job_record(const farm_builds_t *self, farm_journal_job_t *out,
                         const farm_job_t *job, long long now)
{
    farm_journal_job_from(out, job);
    out->queued_at = s_wall(self, job->queued_at);
    out->started_at = job->state == FARM_JOB_QUEUED ? 0 : s_wall(self, job->started_at);
    if (job->state != FARM_JOB_QUEUED && job->state != FARM_JOB_RUNNING)
        out->finished_at = s_wall(self, now);
}

/* What the journal could not take costs that record after a restart, not the build: the
 * error is said (the file and why) and the coordinator goes on. */
static int s_journal_failed(const char *what, const char *id)
{
    farm_log_error("journal: %s of %s not written: %s", what, id, farm_error_last());
    return FARM_EIO;
}

/* why: how its last attempt ended, when the job went back to the queue (its record) */
static void s_job_journal_why(farm_builds_t *self, const farm_job_t *job, const char *why)
{
    farm_journal_job_t rec;
    long long now = farm_now_ms();

    if (!self->journal || !job->build || job->build->state == FARM_BUILD_DONE)
        return;
    s_job_record(self, &rec, job, now);
    rec.reason = why;
    if (farm_journal_put_job(self->journal, &rec) < 0)
        s_journal_failed("a job's state", job->id);
}

void farm_builds_job_journal(farm_builds_t *self, const farm_job_t *job)
{
    s_job_journal_why(self, job, NULL);
}

void farm_builds_job_requeued(farm_builds_t *self, farm_job_t *job, const char *why)
{
    farm_build_t *b = job->build;

    if (b->awaiting_submitter) {
        /* nothing of it runs anew without the logins: out of the queue until they come */
        farm_scheduler_withdraw(self->sched, job, why);
        job->state = FARM_JOB_QUEUED;
    }
    s_job_journal_why(self, job, why);
    if (b->awaiting_submitter)
        farm_builds_event(self, b, job, FARM_EVENT_LOST, "%s; attempt %u waits for the build's "
                          "submitter to send its registry logins again", why, job->attempt);
    else
        farm_builds_event(self, b, job, FARM_EVENT_LOST, "%s; re-dispatching as attempt %u",
                          why, job->attempt);
}

/* The build as it is now, with its jobs when with_jobs. */
static int s_journal_build(farm_builds_t *self, const farm_build_t *b, int with_jobs,
                           long long now)
{
    farm_journal_build_t rec;
    farm_journal_job_t *jobs = NULL;
    char *plats[FARM_PLATFORMS_MAX];
    int rc;

    if (!self->journal)
        return 0;
    if (farm_journal_build_from(&rec, plats, b, b->seq) < 0)
        return s_journal_failed("the build", b->id);
    /* a restored build keeps needing its submitter until it has the logins back */
    rec.needs_submitter |= b->awaiting_submitter;
    rec.created = s_wall(self, b->created);
    rec.updated = s_wall(self, now);
    if (with_jobs && !(jobs = calloc(b->n_jobs + 1, sizeof *jobs)))
        return farm_error_set(FARM_ERROR, "out of memory");
    for (size_t i = 0; with_jobs && i < b->n_jobs; i++)
        s_job_record(self, &jobs[i], &b->jobs[i], now);
    rc = farm_journal_put_build(self->journal, &rec, jobs, with_jobs ? b->n_jobs : 0);
    free(jobs);
    return rc < 0 ? s_journal_failed("the build", b->id) : 0;
}

/* ------------------------------------------------------------------ submit */

/* A Submit sent again (its farmctl lost the coordinator before the answer) is known by
 * its token: out of memory only costs that (a second build). */
static void s_token_index(farm_builds_t *self, farm_build_t *b)
{
    if (b->token_digest[0] && farm_hmap_puts(self->by_token, b->token_digest, b) < 0)
        farm_log_warn("build=%s: out of memory indexing its submit token", b->id);
}

farm_build_t *farm_builds_by_token(farm_builds_t *self, const void *token, size_t len)
{
    char digest[FARM_DIGEST_STRLEN];
    farm_build_t *b;

    if (!len)
        return NULL;
    farm_digest_buffer(digest, token, len);
    b = farm_hmap_gets(self->by_token, digest);
    return b && farm_build_token_is(b, token, len) ? b : NULL;
}

static int s_refuse(char *reason, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_refuse(char *reason, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, len, fmt, ap);
    va_end(ap);
    return FARM_EINVALID;
}

static int s_check_args(const farm_submit_t *s, char *reason, size_t len)
{
    if (s->n_args > FARM_BUILD_ARGS_MAX)
        return s_refuse(reason, len, "too many build args (%zu; at most %d)", s->n_args,
                        FARM_BUILD_ARGS_MAX);
    for (size_t i = 0; i < s->n_args; i++) {
        const char *k = s->arg_keys[i], *v = s->arg_values[i];
        if (!k[0] || strchr(k, '=') || strlen(k) > FARM_BUILD_ARG_NAME_MAX)
            return s_refuse(reason, len, "build arg %zu: the name is empty, longer than %d "
                            "bytes or contains '='", i + 1, FARM_BUILD_ARG_NAME_MAX);
        if (strlen(v) > FARM_BUILD_ARG_VALUE_MAX)
            return s_refuse(reason, len, "build arg %.64s: the value is longer than %d bytes",
                            k, FARM_BUILD_ARG_VALUE_MAX);
        for (size_t a = 0; a < sizeof s_automatic_args / sizeof s_automatic_args[0]; a++)
            if (strcmp(k, s_automatic_args[a]) == 0)
                return s_refuse(reason, len, "build arg %s is set by farm for each platform, "
                                "as buildx does; drop it from --build-arg / build.args", k);
    }
    return 0;
}

/* Tags may name several repositories (coordinator/targets.h); each target's registry
 * is judged by farm.yaml like the first's. */
static int s_fill_tags(farm_builds_t *self, farm_build_t *b, const farm_submit_t *s,
                       char *reason, size_t len)
{
    if (farm_targets_fill(b, s->tags, s->n_tags, reason, len) < 0)
        return FARM_EINVALID;
    for (size_t k = 0; k < b->n_targets; k++)
        b->targets[k].insecure = farm_config_registry_insecure(self->cfg, b->targets[k].registry);
    return 0;
}

static void s_served(const farm_config_t *cfg, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < cfg->n_platforms && off < len; i++) {
        int w = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", cfg->platforms[i].platform);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

static int s_fill_jobs(farm_builds_t *self, farm_build_t *b, const farm_submit_t *s,
                       char *reason, size_t len)
{
    for (size_t i = 0; i < s->n_platforms; i++) {
        farm_job_t *job = &b->jobs[b->n_jobs];
        const farm_config_platform_t *cp;
        int dup = 0;

        if (farm_platform_parse(&job->plat, s->platforms[i]) < 0)
            return s_refuse(reason, len, "%s", farm_error_last());
        farm_platform_format(job->platform, sizeof job->platform, &job->plat);
        for (size_t k = 0; k < b->n_jobs; k++)
            dup |= strcmp(b->jobs[k].platform, job->platform) == 0;
        if (dup)
            continue;
        cp = farm_config_platform(self->cfg, job->platform);
        if (!cp || cp->n_native + cp->n_emulated == 0) {
            char served[1024];
            s_served(self->cfg, served, sizeof served);
            return s_refuse(reason, len,
                            "platform %s is not served by this farm (%s serves: %s); add nodes "
                            "for it under platforms: or drop it from --platform", job->platform,
                            self->cfg->path, served);
        }
        job->build = b;
        job->platform_index = (size_t)(cp - self->cfg->platforms);
        snprintf(job->id, sizeof job->id, "%.48s.%u", b->id, (unsigned)(b->n_jobs + 1));
        job->attempt = 1;
        job->state = FARM_JOB_QUEUED;
        b->n_jobs++;
        if (farm_warm_key(&job->cache_key, &job->cache_key_len, b->owner, b->registry,
                          b->repository, job->platform, b->dockerfile) < 0)
            return s_refuse(reason, len, "coordinator out of memory");
    }
    return 0;
}

/* "b<seq>-<128 random bits in hex>": a build id cannot be guessed from another. The
 * journal hands out seq (unique across restarts); without one, a counter. */
static int s_new_id(farm_builds_t *self, farm_build_t *b)
{
    unsigned char r[16];
    char hex[33];

    if (self->journal)
        return farm_journal_next_build_id(self->journal, b->id, sizeof b->id, &b->seq);
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return farm_error_set(FARM_EIO, "no randomness");
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", r[i]);
    b->seq = ++self->seq;
    snprintf(b->id, sizeof b->id, "b%llu-%s", (unsigned long long)b->seq, hex);
    return 0;
}

int farm_builds_submit(farm_builds_t *self, farm_build_t **out, const farm_submit_t *s,
                       long long now, char *reason, size_t len)
{
    farm_build_t *b = NULL;
    const char *dockerfile = s->dockerfile && *s->dockerfile ? s->dockerfile : "Dockerfile";
    int rc, network_none = 0;

    *out = NULL;
    if (s->n_tags == 0)
        return s_refuse(reason, len, "no tag given: pass -t REGISTRY/REPO:TAG or set build.tags");
    if (s->n_tags > FARM_TAGS_MAX)
        return s_refuse(reason, len, "too many tags (%zu; at most %d)", s->n_tags, FARM_TAGS_MAX);
    if (s->n_platforms == 0 || s->n_platforms > FARM_PLATFORMS_MAX)
        return s_refuse(reason, len, "between 1 and %d platforms are needed", FARM_PLATFORMS_MAX);
    if (!s->context_digest || !farm_digest_valid(s->context_digest))
        return s_refuse(reason, len, "no valid context digest");
    if (strlen(dockerfile) > FARM_DOCKERFILE_PATH_MAX)
        return s_refuse(reason, len, "the Dockerfile path is longer than %d bytes",
                        FARM_DOCKERFILE_PATH_MAX);
    if ((rc = s_check_args(s, reason, len)) < 0)
        return rc;
    /* what a client sent is checked again here: counts, sizes, keys, ids */
    if (s->flags && farm_buildflags_check(s->flags) < 0)
        return s_refuse(reason, len, "%s", farm_error_last());
    /* the wire's unset string is "": not given */
    if (farm_build_network_parse(s->network && *s->network ? s->network : NULL,
                                 &network_none) < 0)
        return s_refuse(reason, len, "network %s", farm_error_last());
    if (s_client_builds(self, s->owner, s->client, s->client_len) >=
        (uintptr_t)self->cfg->max_builds_per_client)
        return s_refuse(reason, len, "client %s already has %d builds running "
                        "(coordinator.max_builds_per_client in %s); wait for some to finish "
                        "(`farmctl builds` lists them, `farmctl cancel BUILD` stops one) or "
                        "ask an admin to raise it",
                        s->owner && s->owner[0] ? s->owner : "(this connection)",
                        self->cfg->max_builds_per_client, self->cfg->path);

    b = calloc(1, sizeof *b);
    if (!b)
        return s_refuse(reason, len, "coordinator out of memory");
    b->jobs = calloc(s->n_platforms, sizeof *b->jobs);
    b->dockerfile = strdup(dockerfile);
    b->network_none = network_none;
    b->args = calloc(s->n_args + 1, sizeof *b->args);
    if (!b->jobs || !b->dockerfile || !b->args) {
        rc = s_refuse(reason, len, "coordinator out of memory");
        goto fail;
    }
    for (size_t i = 0; i < s->n_args; i++) {
        b->args[i].key = strdup(s->arg_keys[i]);
        b->args[i].value = strdup(s->arg_values[i]);
        b->n_args++;
        if (!b->args[i].key || !b->args[i].value) {
            rc = s_refuse(reason, len, "coordinator out of memory");
            goto fail;
        }
    }
    if ((rc = s_fill_tags(self, b, s, reason, len)) < 0 ||
        (rc = s_copy_creds(b, s->creds, s->n_creds, reason, len)) < 0)
        goto fail;
    if (s_new_id(self, b) < 0) {
        rc = s_refuse(reason, len, "coordinator cannot make a build id: %s", farm_error_last());
        goto fail;
    }
    /* before the jobs: their warm-cache keys hold the owner (nodes cache per client) */
    snprintf(b->owner, sizeof b->owner, "%.*s", FARM_NAME_MAX, s->owner ? s->owner : "");
    if ((rc = s_fill_jobs(self, b, s, reason, len)) < 0)
        goto fail;
    if (!s->context_stored) {
        rc = s_refuse(reason, len, "the coordinator does not hold this context; upload it first");
        goto fail;
    }
    if (s->client_len > sizeof b->client) {
        rc = s_refuse(reason, len, "client routing id too long");
        goto fail;
    }
    memcpy(b->client, s->client, s->client_len);
    b->client_len = s->client_len;
    farm_build_follow(b, NULL, s->client, s->client_len);
    if (s->token_len)
        farm_digest_buffer(b->token_digest, s->token, s->token_len);
    b->insecure = farm_config_registry_insecure(self->cfg, b->registry);
    /* said now, before any build work, not by the push after the whole build */
    if (s->target_plain_http && !b->insecure) {
        rc = s_refuse(reason, len, "registry %s answers plain HTTP, not TLS, and %s does not "
                      "allow that for it: add `registries: \"%s\": {insecure: true}` there "
                      "and reload farm-coordinator (or tag for the registry's TLS address)",
                      b->registry, self->cfg->path, b->registry);
        goto fail;
    }
    b->allow_partial = s->allow_partial;
    /* an amend keeps the other platforms only when every rebuilt one is there */
    if (s->amend && s->allow_partial) {
        rc = s_refuse(reason, len, "--amend and --allow-partial together would drop a "
                      "platform that failed from the amended index; drop one of them");
        goto fail;
    }
    b->amend = s->amend;
    snprintf(b->context_digest, sizeof b->context_digest, "%s", s->context_digest);
    b->context_size = s->context_size;
    b->created = b->last_result_at = now;
    b->state = FARM_BUILD_RUNNING;
    for (size_t i = 0; i < b->n_jobs; i++)
        b->jobs[i].queued_at = now;
    if (s->flags) {
        b->flags = *s->flags;
        memset(s->flags, 0, sizeof *s->flags);
    }
    /* written before the client hears "accepted": a restart after that keeps it */
    if (s_journal_build(self, b, 1, now) < 0) {
        rc = s_refuse(reason, len, "the coordinator cannot record the build in its journal "
                      "(%s): %s; nothing was started", farm_journal_path(self->journal),
                      farm_error_last());
        goto fail;
    }
    if (farm_hmap_puts(self->by_id, b->id, b) < 0) {
        rc = s_refuse(reason, len, "coordinator out of memory");
        if (self->journal)
            farm_journal_finish(self->journal, b->id, 0, reason, NULL, 0, s_wall(self, now));
        goto fail;
    }
    s_token_index(self, b);
    farm_link_push_back(&self->active, &b->link);
    self->n_active++;
    s_context_ref(self, b->context_digest, +1);
    s_client_ref(self, b, +1);
    farm_log_info("build=%s accepted: %zu platform(s) -> %s/%s%s, context %s%s", b->id,
                  b->n_jobs, b->registry, b->repository,
                  b->n_targets > 1 ? " and other repositories" : "", b->context_digest,
                  b->amend ? ", amending the index under the first tag" : "");
    *out = b;
    return 0;
fail:
    s_build_free(self, b);
    return rc;
}

void farm_builds_start(farm_builds_t *self, farm_build_t *b, long long now)
{
    /* every "queued" first, then whatever the scheduler says ("waiting") */
    for (size_t i = 0; i < b->n_jobs; i++)
        farm_builds_event(self, b, &b->jobs[i], FARM_EVENT_QUEUED, "queued");
    for (size_t i = 0; i < b->n_jobs && b->state == FARM_BUILD_RUNNING && !b->awaiting_submitter;
         i++) {
        farm_job_t *job = &b->jobs[i];
        if (farm_scheduler_add(self->sched, job, now) < 0)
            farm_builds_job_failed(self, job, now, "cannot queue: %s", farm_error_last());
    }
}

farm_build_t *farm_builds_get(farm_builds_t *self, const char *id)
{
    return farm_hmap_gets(self->by_id, id);
}

/* ------------------------------------------------------------------ outcomes */

static void s_check(farm_builds_t *self, farm_build_t *b, long long now)
{
    size_t done = 0, failed = 0, pending = 0;

    if (b->state != FARM_BUILD_RUNNING)
        return;
    for (size_t i = 0; i < b->n_jobs; i++) {
        switch (b->jobs[i].state) {
        case FARM_JOB_DONE: done++; break;
        case FARM_JOB_FAILED:
        case FARM_JOB_CANCELLED: failed++; break;
        default: pending++;
        }
    }
    if (failed && !b->allow_partial) {
        char msg[8192], tail[6144];
        msg[0] = '\0';
        for (size_t i = 0; i < b->n_jobs; i++) {
            farm_job_t *j = &b->jobs[i];
            if (j->state != FARM_JOB_FAILED)
                continue;
            farm_tail_format(&j->tail, tail, sizeof tail);
            snprintf(msg, sizeof msg, "%s failed on node %s: %s%s%s", j->platform,
                     j->node_name[0] ? j->node_name : "-", j->error ? j->error : "failed",
                     tail[0] ? "\nlast log lines:\n" : "", tail);
            break;
        }
        farm_builds_finish(self, b, 0, NULL, 0, msg[0] ? msg : "a platform was cancelled", now);
        return;
    }
    if (pending)
        return;
    if (!done) {
        farm_builds_finish(self, b, 0, NULL, 0, "no platform succeeded", now);
        return;
    }
    b->state = FARM_BUILD_STITCHING;
    s_journal_build(self, b, 0, now); /* a restart redoes the stitch */
    farm_builds_event(self, b, NULL, FARM_EVENT_VERIFYING,
                      "all %zu platform(s) built; verifying children in %s/%s%s", done,
                      b->registry, b->repository,
                      b->n_targets > 1 ? " and the build's other repositories" : "");
    if (self->cbs.stitch)
        self->cbs.stitch(self->arg, b);
}

void farm_builds_job_log(farm_builds_t *self, farm_job_t *job, const char *line)
{
    farm_tail_add(&job->tail, line);
    /* the build's record: in the turn's one transaction with everything else */
    if (self->journal && farm_journal_put_line(self->journal, job->build->id, job->platform,
                                               job->node_name, line) < 0)
        s_journal_failed("a log line", job->build->id);
    farm_builds_event(self, job->build, job, FARM_EVENT_LOG, "%s", line);
}

void farm_builds_job_pushed(farm_builds_t *self, farm_job_t *job, const farm_descriptor_t *image,
                            uint64_t build_ms, uint64_t push_ms, long long now)
{
    farm_build_t *b = job->build;
    char cached[64] = "";

    job->state = FARM_JOB_DONE;
    free(job->image);
    if (!(job->image = malloc(sizeof *job->image))) {
        farm_builds_job_failed(self, job, now, "coordinator out of memory");
        return;
    }
    *job->image = *image;
    farm_metric_observe(farm_cstats.job_duration, job->platform, "done", (now - job->started_at) / 1000.0);
    b->last_result_at = now;
    farm_builds_job_journal(self, job);
    if (job->prov) /* the build's options keep it (coordinator/attest.h) */
        s_journal_build(self, b, 0, now);
    if (job->steps)
        snprintf(cached, sizeof cached, "; %u of %u steps from the cache", job->cache_hits,
                 job->steps);
    farm_builds_event(self, b, job, FARM_EVENT_PUSHED,
                      "%s (%llu bytes) built in %.1f s%s, pushed in %.1f s%s", image->digest,
                      (unsigned long long)image->size, build_ms / 1000.0,
                      job->warm ? " on a warm node" : "", push_ms / 1000.0, cached);
    s_check(self, b, now);
}

void farm_builds_job_failed(farm_builds_t *self, farm_job_t *job, long long now,
                            const char *fmt, ...)
{
    farm_build_t *b = job->build;
    va_list ap;

    if (job->state == FARM_JOB_RUNNING && job->started_at)
        farm_metric_observe(farm_cstats.job_duration, job->platform, "failed", (now - job->started_at) / 1000.0);
    if (job->state == FARM_JOB_QUEUED || job->state == FARM_JOB_RUNNING)
        farm_scheduler_withdraw(self->sched, job, "failed");
    va_start(ap, fmt);
    free(job->error);
    if (vasprintf(&job->error, fmt, ap) < 0)
        job->error = NULL;
    va_end(ap);
    job->state = FARM_JOB_FAILED;
    b->last_result_at = now;
    farm_builds_job_journal(self, job);
    farm_builds_event(self, b, job, FARM_EVENT_FAILED, "%s", job->error ? job->error : "failed");
    s_check(self, b, now);
}

void farm_builds_finish(farm_builds_t *self, farm_build_t *b, int ok, const char *index_digest,
                        uint64_t index_size, const char *error, long long now)
{
    if (b->state == FARM_BUILD_DONE)
        return;
    b->state = FARM_BUILD_DONE; /* first: a callback below cannot finish it twice */
    for (size_t i = 0; i < b->n_jobs; i++) {
        farm_job_t *j = &b->jobs[i];
        if (j->state != FARM_JOB_QUEUED && j->state != FARM_JOB_RUNNING)
            continue;
        farm_scheduler_withdraw(self->sched, j, ok ? "build finished" : "build failed");
        j->state = FARM_JOB_CANCELLED;
    }
    b->done_at = now;
    farm_cstats_build_done(b, ok, now);
    /* before the client hears it: a restart does not run a finished build again */
    if (self->journal &&
        farm_journal_finish(self->journal, b->id, ok, ok ? NULL : error, ok ? index_digest : NULL,
                            ok ? index_size : 0, s_wall(self, now)) < 0)
        s_journal_failed("the build's end", b->id);
    s_creds_wipe(b); /* the stitch has its own copy; nothing else needs them now */
    farm_buildflags_wipe_secrets(&b->flags); /* only jobs needed them */
    farm_link_remove(&b->link);
    farm_link_push_back(&self->done, &b->link);
    self->n_active--;
    s_context_ref(self, b->context_digest, -1);
    s_client_ref(self, b, -1);
    if (ok)
        farm_log_info("build=%s pushed index %s (%llu bytes) to %s/%s, stitch %lld ms", b->id,
                      index_digest, (unsigned long long)index_size, b->registry, b->repository,
                      now - b->last_result_at);
    else
        farm_log_warn("build=%s failed: %s", b->id, error ? error : "?");
    if (self->cbs.done)
        self->cbs.done(self->arg, b, ok, index_digest, index_size, error);
}

int farm_build_owned_by(const farm_build_t *b, const void *client, size_t client_len,
                        const char *owner)
{
    if (b->owner[0])
        return owner && strcmp(b->owner, owner) == 0;
    return b->client_len == client_len && memcmp(b->client, client, client_len) == 0;
}

int farm_builds_cancel(farm_builds_t *self, const char *id, const void *client,
                       size_t client_len, const char *owner, int admin, long long now)
{
    farm_build_t *b = farm_builds_get(self, id);

    if (!b)
        return FARM_ENOTFOUND;
    if (!admin && !farm_build_owned_by(b, client, client_len, owner)) {
        farm_log_warn("build=%s cancel from another client%s%s ignored", b->id,
                      owner && owner[0] ? " " : "", owner ? owner : "");
        return FARM_EAUTH;
    }
    if (b->state == FARM_BUILD_RUNNING)
        farm_builds_finish(self, b, 0, NULL, 0,
                           "cancelled by farmctl; nothing was pushed under the tags", now);
    else if (b->state == FARM_BUILD_STITCHING)
        farm_builds_event(self, b, NULL, FARM_EVENT_CANCEL,
                          "too late to cancel: the index is being pushed");
    return 0;
}

/* ------------------------------------------------------------------ followers */

static int s_follower_at(const farm_build_t *b, const void *rid, size_t rid_len)
{
    for (size_t i = 0; i < b->n_followers; i++)
        if (b->followers[i].rid_len == rid_len && memcmp(b->followers[i].rid, rid, rid_len) == 0)
            return (int)i;
    return -1;
}

int farm_build_follow(farm_build_t *b, farm_follower_t *out_dropped, const void *rid,
                      size_t rid_len)
{
    int dropped = 0;

    if (!rid_len || rid_len > sizeof b->followers[0].rid || s_follower_at(b, rid, rid_len) >= 0)
        return 0;
    if (b->n_followers == FARM_FOLLOWERS_MAX) {
        if (out_dropped)
            *out_dropped = b->followers[0];
        memmove(&b->followers[0], &b->followers[1],
                (FARM_FOLLOWERS_MAX - 1) * sizeof b->followers[0]);
        b->n_followers--;
        dropped = 1;
    }
    memcpy(b->followers[b->n_followers].rid, rid, rid_len);
    b->followers[b->n_followers++].rid_len = rid_len;
    return dropped;
}

void farm_build_unfollow(farm_build_t *b, const void *rid, size_t rid_len)
{
    int i = s_follower_at(b, rid, rid_len);
    if (i < 0)
        return;
    memmove(&b->followers[i], &b->followers[i + 1],
            (b->n_followers - (size_t)i - 1) * sizeof b->followers[0]);
    b->n_followers--;
}

/* ------------------------------------------------------------------ the submitter */

int farm_build_token_is(const farm_build_t *b, const void *token, size_t len)
{
    char digest[FARM_DIGEST_STRLEN];
    if (!b->token_digest[0] || !len)
        return 0;
    farm_digest_buffer(digest, token, len);
    return strcmp(digest, b->token_digest) == 0;
}

void farm_builds_await_submitter(farm_builds_t *self, farm_build_t *b, long long now)
{
    if (b->state == FARM_BUILD_DONE || b->awaiting_submitter)
        return;
    b->awaiting_submitter = 1;
    b->awaiting_since = now;
    /* a queued job with no logins would fail its pull or push: keep it out of reach (a
     * parked one runs on its node with the logins it was given) */
    for (size_t i = 0; i < b->n_jobs; i++)
        if (b->jobs[i].state == FARM_JOB_QUEUED && !b->jobs[i].parked &&
            farm_scheduler_job(self->sched, b->jobs[i].id) == &b->jobs[i])
            farm_scheduler_forget(self->sched, &b->jobs[i]);
    farm_log_info("build=%s waits for its submitter to send its registry logins and secrets "
                  "again", b->id);
}

int farm_builds_submitter_back(farm_builds_t *self, farm_build_t *b, const farm_cred_t *creds,
                               size_t n_creds, farm_buildflags_t *secrets, long long now,
                               char *reason, size_t len)
{
    int rc;

    if (!b->awaiting_submitter)
        return s_refuse(reason, len, "build %s does not wait for its logins", b->id);
    s_creds_wipe(b);
    if ((rc = s_copy_creds(b, creds, n_creds, reason, len)) < 0) {
        s_creds_wipe(b);
        return rc;
    }
    if (secrets) {
        farm_buildflags_wipe_secrets(&b->flags);
        b->flags.secrets = secrets->secrets;
        b->flags.n_secrets = secrets->n_secrets;
        secrets->secrets = NULL;
        secrets->n_secrets = 0;
    }
    b->awaiting_submitter = 0;
    farm_log_info("build=%s its submitter is back with %zu login(s) and %zu secret(s); its "
                  "jobs are queued again", b->id, b->n_creds, b->flags.n_secrets);
    /* its queued jobs to the scheduler, as for a build restored with its logins (parked
     * ones already wait for their node) */
    farm_builds_resume(self, b, 0, now);
    return 0;
}

void farm_builds_submitter_overdue(farm_builds_t *self, long long now)
{
    long long bound = self->cfg->queue_timeout_ms;

    for (farm_link_t *l = self->active.next, *next; l != &self->active; l = next) {
        farm_build_t *b = FARM_LINK_OWNER(l, farm_build_t, link);
        char msg[1024], within[32];
        next = l->next;
        if (!b->awaiting_submitter || now - b->awaiting_since <= bound)
            continue;
        if (bound % 60000 == 0)
            snprintf(within, sizeof within, "%lldm", bound / 60000);
        else
            snprintf(within, sizeof within, "%lld s", bound / 1000);
        snprintf(msg, sizeof msg, "its registry logins and secrets were lost with a coordinator "
                 "restart and its submitter did not reattach within %s (coordinator.queue_timeout "
                 "in %s); submit it again", within, self->cfg->path);
        b->awaiting_submitter = 0;
        farm_builds_finish(self, b, 0, NULL, 0, msg, now);
    }
}

/* ------------------------------------------------------------------ restore */

/* One job of a restored build from its record; a platform farm.yaml no longer serves
 * fails it (said). */
static int s_restore_job(farm_builds_t *self, farm_build_t *b, farm_job_t *job,
                         const farm_journal_job_t *rec)
{
    const farm_config_platform_t *cp;

    job->build = b;
    snprintf(job->id, sizeof job->id, "%s", rec->id);
    snprintf(job->node_name, sizeof job->node_name, "%s", rec->node);
    job->attempt = rec->attempt;
    job->state = farm_journal_job_state(rec->state);
    job->queued_at = s_mono(self, rec->queued_at);
    job->started_at = s_mono(self, rec->started_at);
    if (farm_platform_parse(&job->plat, rec->platform) < 0)
        return farm_error_wrap(FARM_EINVALID, "journal: job %s", rec->id);
    farm_platform_format(job->platform, sizeof job->platform, &job->plat);
    if (farm_warm_key(&job->cache_key, &job->cache_key_len, b->owner, b->registry,
                      b->repository, job->platform, b->dockerfile) < 0)
        return farm_error_set(FARM_ERROR, "out of memory");
    if (job->state == FARM_JOB_DONE) {
        if (!(job->image = calloc(1, sizeof *job->image)))
            return farm_error_set(FARM_ERROR, "out of memory");
        snprintf(job->image->media_type, sizeof job->image->media_type, "%s",
                 rec->image_media_type);
        snprintf(job->image->digest, sizeof job->image->digest, "%s", rec->image_digest);
        job->image->platform = job->plat;
        job->image->size = rec->image_size;
    } else if (job->state == FARM_JOB_FAILED && rec->error &&
               !(job->error = strdup(rec->error))) {
        return farm_error_set(FARM_ERROR, "out of memory");
    }
    cp = farm_config_platform(self->cfg, job->platform);
    if (cp) {
        job->platform_index = (size_t)(cp - self->cfg->platforms);
    } else if (job->state == FARM_JOB_QUEUED || job->state == FARM_JOB_RUNNING) {
        job->state = FARM_JOB_FAILED;
        if (asprintf(&job->error, "platform %s is no longer served by %s (changed while the "
                     "coordinator was down)", job->platform, self->cfg->path) < 0)
            job->error = NULL;
    }
    return 0;
}

/* A build record's fields, moved out of rec (which the caller frees). */
static farm_build_t *s_restore_build(farm_builds_t *self, farm_journal_build_t *rec,
                                     const farm_journal_job_t *jobs, size_t n_jobs)
{
    farm_build_t *b = calloc(1, sizeof *b);

    if (!b || !(b->jobs = calloc(n_jobs + 1, sizeof *b->jobs)))
        goto oom;
    snprintf(b->id, sizeof b->id, "%s", rec->id);
    snprintf(b->owner, sizeof b->owner, "%s", rec->owner);
    snprintf(b->registry, sizeof b->registry, "%s", rec->registry);
    snprintf(b->repository, sizeof b->repository, "%s", rec->repository);
    snprintf(b->context_digest, sizeof b->context_digest, "%s", rec->context_digest);
    b->seq = rec->seq;
    b->context_size = rec->context_size;
    b->args = rec->args;
    b->n_args = rec->n_args;
    b->flags = rec->flags;
    /* the tags' repositories: in full when the build named several, else all the first */
    if (rec->n_tag_refs > 0) {
        char why[512];
        if (farm_targets_fill(b, rec->tag_refs, rec->n_tag_refs, why, sizeof why) < 0 ||
            b->n_tags == 0 || strcmp(b->registry, rec->registry) != 0 ||
            strcmp(b->repository, rec->repository) != 0) {
            farm_error_set(FARM_EINVALID, "journal: build %s: its tags in full do not name its "
                           "repository %s/%s", rec->id, rec->registry, rec->repository);
            goto fail;
        }
    } else {
        b->tags = rec->tags;
        b->n_tags = rec->n_tags;
        rec->tags = NULL;
        rec->n_tags = 0;
        if (farm_targets_single(b) < 0)
            goto oom;
    }
    for (size_t k = 1; k < b->n_targets; k++)
        b->targets[k].insecure = farm_config_registry_insecure(self->cfg, b->targets[k].registry);
    rec->args = NULL;
    rec->n_args = 0;
    memset(&rec->flags, 0, sizeof rec->flags);
    if (!(b->dockerfile = strdup(rec->dockerfile ? rec->dockerfile : "Dockerfile")))
        goto oom;
    b->insecure = rec->insecure;
    b->allow_partial = rec->allow_partial;
    b->amend = rec->amend;
    b->network_none = rec->network_none;
    b->awaiting_submitter = rec->needs_submitter;
    snprintf(b->token_digest, sizeof b->token_digest, "%s", rec->token_digest);
    b->state = rec->state == FARM_JOURNAL_BUILD_STITCHING ? FARM_BUILD_STITCHING
                                                          : FARM_BUILD_RUNNING;
    b->created = s_mono(self, rec->created);
    for (size_t i = 0; i < n_jobs; i++, b->n_jobs++)
        if (s_restore_job(self, b, &b->jobs[i], &jobs[i]) < 0)
            goto fail;
    /* what the done jobs' nodes reported for provenance: the stitch attests the same */
    for (size_t i = 0; i < b->n_jobs && i < FARM_PLATFORMS_MAX; i++)
        if (b->jobs[i].state == FARM_JOB_DONE) {
            b->jobs[i].prov = rec->prov[i];
            rec->prov[i] = NULL;
        }
    return b;
oom:
    farm_error_set(FARM_ERROR, "out of memory");
fail:
    s_build_free(self, b);
    return NULL;
}

/* A job the journal says runs on a node waits for that node to say it still does; one
 * that never reached a node is queued. */
static int s_park(farm_builds_t *self, farm_job_t *job, long long park_ms, long long now)
{
    if (!job->node_name[0] || !job->attempt) {
        job->state = FARM_JOB_QUEUED;
        return farm_scheduler_add(self->sched, job, now);
    }
    return farm_scheduler_park(self->sched, job, now + park_ms);
}

void farm_builds_resume(farm_builds_t *self, farm_build_t *b, long long park_ms, long long now)
{
    if (b->state == FARM_BUILD_DONE)
        return;
    for (size_t i = 0; i < b->n_jobs && b->state == FARM_BUILD_RUNNING; i++) {
        farm_job_t *job = &b->jobs[i];
        int rc = 0;
        if (job->state == FARM_JOB_RUNNING && !job->node)
            rc = s_park(self, job, park_ms, now);
        else if (job->state == FARM_JOB_QUEUED && !job->parked &&
                 !farm_link_linked(&job->queue_link))
            rc = farm_scheduler_add(self->sched, job, now);
        if (rc < 0)
            farm_builds_job_failed(self, job, now, "cannot queue: %s", farm_error_last());
    }
    if (b->state == FARM_BUILD_RUNNING)
        s_check(self, b, now);
    else if (b->state == FARM_BUILD_STITCHING && self->cbs.stitch)
        self->cbs.stitch(self->arg, b); /* the same children: the same index */
}

int farm_builds_restore(farm_builds_t *self, farm_journal_loaded_t *loaded, long long park_ms,
                        long long now)
{
    size_t j = 0, restored = 0, waiting = 0;

    for (size_t i = 0; i < loaded->n_builds; i++) {
        farm_journal_build_t *rec = &loaded->builds[i];
        size_t first = j;
        farm_build_t *b;

        while (j < loaded->n_jobs && strcmp(loaded->jobs[j].build_id, rec->id) == 0)
            j++;
        if (rec->seq > self->seq)
            self->seq = rec->seq;
        if (!(b = s_restore_build(self, rec, loaded->jobs + first, j - first))) {
            farm_log_error("journal: build %s cannot be restored: %s", rec->id,
                           farm_error_last());
            continue;
        }
        if (farm_hmap_puts(self->by_id, b->id, b) < 0) {
            s_build_free(self, b);
            return farm_error_set(FARM_ERROR, "out of memory");
        }
        b->last_result_at = now;
        s_token_index(self, b);
        farm_link_push_back(&self->active, &b->link);
        self->n_active++;
        s_context_ref(self, b->context_digest, +1);
        s_client_ref(self, b, +1);
        restored++;
        if (!b->awaiting_submitter) {
            farm_builds_resume(self, b, park_ms, now);
            continue;
        }
        b->awaiting_since = now; /* coordinator.queue_timeout counts from the start */
        /* what its nodes still run (with the logins they were given) is theirs to finish;
         * the rest waits for the submitter (farm_builds_resume then) */
        waiting++;
        for (size_t k = 0; k < b->n_jobs; k++) {
            farm_job_t *job = &b->jobs[k];
            if (job->state == FARM_JOB_RUNNING && job->node_name[0] && job->attempt &&
                farm_scheduler_park(self->sched, job, now + park_ms) < 0)
                farm_builds_job_failed(self, job, now, "cannot queue: %s", farm_error_last());
            else if (job->state == FARM_JOB_RUNNING)
                job->state = FARM_JOB_QUEUED;
        }
    }
    if (restored)
        farm_log_info("journal: %zu unfinished build(s) restored from %s, %zu of them waiting "
                      "for their submitter to send its registry logins or secrets again",
                      restored, farm_journal_path(self->journal), waiting);
    return 0;
}

/* ------------------------------------------------------------------ walking */

void farm_builds_reap(farm_builds_t *self, long long now, long long keep_ms,
                      void (*free_fn)(void *arg, farm_build_t *b), void *arg)
{
    while (!farm_link_empty(&self->done)) {
        farm_build_t *b = FARM_LINK_OWNER(self->done.next, farm_build_t, link);
        if (now - b->done_at <= keep_ms)
            break;
        farm_link_remove(&b->link);
        farm_hmap_dels(self->by_id, b->id);
        if (b->token_digest[0] && farm_hmap_gets(self->by_token, b->token_digest) == b)
            farm_hmap_dels(self->by_token, b->token_digest);
        if (free_fn)
            free_fn(arg, b);
        s_build_free(self, b);
    }
}

void farm_builds_each_active(farm_builds_t *self, void (*fn)(void *arg, farm_build_t *b),
                             void *arg)
{
    for (farm_link_t *l = self->active.next, *next; l != &self->active; l = next) {
        next = l->next;
        fn(arg, FARM_LINK_OWNER(l, farm_build_t, link));
    }
}

void farm_builds_each(farm_builds_t *self, void (*fn)(void *arg, farm_build_t *b), void *arg)
{
    farm_builds_each_active(self, fn, arg);
    for (farm_link_t *l = self->done.next, *next; l != &self->done; l = next) {
        next = l->next;
        fn(arg, FARM_LINK_OWNER(l, farm_build_t, link));
    }
}

size_t farm_builds_active(const farm_builds_t *self)
{
    return self->n_active;
}

void farm_builds_reload(farm_builds_t *self, const farm_config_t *cfg)
{
    self->cfg = cfg;
}
