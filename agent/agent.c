/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/agent.h"

#include <errno.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "agent/cache.h"
#include "agent/health.h"
#include "agent/held.h"
#include "agent/inventory.h"
#include "agent/jobs.h"
#include "agent/session.h"
#include "agent/stats.h"
#include "agent/steps.h"
#include "common/child.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/http.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/reactor.h"
#include "common/str.h"
#include "common/wire.h"

#define MSG_BUDGET 1000          /* coordinator messages read per turn */
#define FETCH_IDLE_MS 10000      /* a fetch with nothing received this long asks again */
#define JOBS_POLL_MS 200         /* reap workers, enforce kill deadlines */
#define PROBE_MS 2000            /* a registry's connection, from this node */

struct farm_agent {
    farm_agent_opts_t opts;
    void *zctx;
    void *sock;
    int sock_reader;
    farm_reactor_t *reactor;
    farm_session_t *session;
    farm_cache_t *cache;
    farm_jobs_t *jobs;
    farm_held_t *held;           /* finished results the coordinator has not taken */
    int t_heartbeat;
    int orphan_said;             /* "no coordinator; jobs go on" said for this outage */
    int fatal;
    char builder_root[FARM_PATH_MAX]; /* --builder-root, else WORK_DIR/builder */
    uint64_t builder_cache_bytes;     /* as the last job measured it */
    uint64_t cache_hits;              /* build steps from the cache, all jobs */
    char unhealthy[FARM_HEALTH_CAUSE_MAX]; /* "" healthy; else the failing health check,
                                            * said in HELLO and every heartbeat */
    char probe_registry[FARM_REFERENCE_MAX]; /* a registry a job could not reach: checked
                                              * with the others until it answers */
    /* farmctl du / prune: one at a time, its builder part in `farm-agent cache` */
    farm_child_t *inv_child;
    int inv_reader_log, inv_reader_result;
    uint64_t inv_request;
    farm_inventory_ask_t inv_ask;
    char inv_home[FARM_PATH_MAX];
    farm_http_t *http;           /* --metrics: /metrics (NULL: off) */
};

/* ------------------------------------------------------------------ sending */

static void s_send(farm_agent_t *self, Farm__Envelope *env)
{
    env->version = FARM_WIRE_VERSION;
    if (farm_wire_send(self->sock, NULL, 0, env) < 0)
        farm_log_debug("send failed: %s", farm_error_last());
}

/* HELLO, listing what this agent still holds from earlier sessions: attempts that run
 * (or fetch their context) and finished results not yet taken. */
static void s_hello(farm_agent_t *self)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Hello h = FARM__HELLO__INIT;
    size_t max = farm_jobs_count(self->jobs) + farm_held_count(self->held), n = 0;
    Farm__HeldJob *held = calloc(max + 1, sizeof *held);
    Farm__HeldJob **held_p = calloc(max + 1, sizeof *held_p);

    for (farm_agent_job_t *j = farm_jobs_first(self->jobs); held && held_p && j; j = j->next) {
        if (j->state == FARM_AGENT_JOB_DEAD || j->cancelled || n == max)
            continue;
        farm__held_job__init(&held[n]);
        held[n].job_id = j->id;
        held[n].attempt = j->attempt;
        held_p[n] = &held[n];
        n++;
    }
    for (size_t i = 0; held && held_p && i < farm_held_count(self->held) && n < max; i++) {
        const Farm__JobResult *r = farm_held_at(self->held, i);
        farm__held_job__init(&held[n]);
        held[n].job_id = r->job_id;
        held[n].attempt = r->attempt;
        held[n].finished = 1;
        held_p[n] = &held[n];
        n++;
    }
    h.n_jobs = held && held_p ? n : 0;
    h.jobs = held_p;
    h.name = (char *)self->opts.name;
    h.n_platforms = self->opts.n_platforms;
    h.platforms = self->opts.platforms;
    h.slots = (uint32_t)self->opts.slots;
    h.builder = (char *)self->opts.builder.builder;
    h.version = FARM_VERSION;
    h.session = farm_session_id(self->session);
    h.unhealthy = self->unhealthy;
    env.body_case = FARM__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    s_send(self, &env);
    free(held);
    free(held_p);
    farm_log_debug("HELLO sent to %s (%zu job(s) held)", self->opts.coordinator, h.n_jobs);
}

static void s_heartbeat(farm_agent_t *self)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Heartbeat hb = FARM__HEARTBEAT__INIT;
    hb.jobs_running = (uint32_t)farm_jobs_count(self->jobs);
    hb.builder_cache_bytes = self->builder_cache_bytes;
    hb.cache_hits = self->cache_hits;
    hb.unhealthy = self->unhealthy;
    env.body_case = FARM__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    s_send(self, &env);
}

/* Runs the health checks and records their verdict; says when it changes (a node that
 * is healthy again tells the coordinator at once). 1 when unhealthy. */
static int s_health_update(farm_agent_t *self)
{
    char cause[FARM_HEALTH_CAUSE_MAX];
    int sick = farm_health_check(cause, sizeof cause, &self->opts);

    if (!sick && self->probe_registry[0])
        sick = farm_health_probe(cause, sizeof cause, self->probe_registry, PROBE_MS);
    if (!sick)
        self->probe_registry[0] = '\0';

    if (sick && strcmp(cause, self->unhealthy) != 0)
        farm_log_warn("this node is unhealthy: %s; it takes no job until its health checks "
                      "pass (checked again every %d s)", cause, FARM_AGENT_RECHECK_MS / 1000);
    else if (!sick && self->unhealthy[0])
        farm_log_info("this node is healthy again (it was: %s); it takes jobs", self->unhealthy);
    if (!sick && self->unhealthy[0] && farm_session_ready(self->session)) {
        self->unhealthy[0] = '\0';
        s_heartbeat(self);
    }
    snprintf(self->unhealthy, sizeof self->unhealthy, "%s", sick ? cause : "");
    return sick;
}

static void s_request_chunk(void *arg, const char *digest, uint64_t offset)
{
    farm_agent_t *self = arg;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__ContextGet g = FARM__CONTEXT_GET__INIT;
    g.digest = (char *)digest;
    g.offset = offset;
    env.body_case = FARM__ENVELOPE__BODY_CONTEXT_GET;
    env.context_get = &g;
    s_send(self, &env);
}

/* registry: the job's push target ("" or NULL when not known), probed from here when
 * the error says it could not be reached. */
static void s_send_result(farm_agent_t *self, const char *job_id, unsigned attempt,
                          const char *platform, const char *registry, const farm_tail_t *tail,
                          const char *error, const Farm__WorkerResult *ok, farm_steps_t *steps)
{
    Farm__BuildStep bs[FARM_STEPS_MAX], *bsp[FARM_STEPS_MAX];
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__JobResult r = FARM__JOB_RESULT__INIT;
    Farm__Descriptor d = FARM__DESCRIPTOR__INIT;
    const char *lines[FARM_TAIL_LINES];
    char cause[FARM_HEALTH_CAUSE_MAX], line[FARM_HEALTH_CAUSE_MAX + 1024];

    r.job_id = (char *)job_id;
    r.attempt = attempt;
    r.ok = ok != NULL;
    if (steps) { /* the build's record keeps them, ok or not */
        farm_steps_end(steps, farm_now_ms());
        for (size_t i = 0; i < steps->n; i++) {
            farm__build_step__init(&bs[i]);
            bs[i].number = steps->steps[i].number;
            bs[i].text = steps->steps[i].text;
            bs[i].ms = steps->steps[i].ms;
            bs[i].cached = steps->steps[i].cached;
            bsp[i] = &bs[i];
        }
        r.n_build_steps = steps->n;
        r.build_steps = bsp;
    }
    r.error = (char *)(error ? error : "");
    if (ok) {
        d.media_type = ok->image->media_type;
        d.digest = ok->image->digest;
        d.size = ok->image->size;
        d.platform = (char *)platform;
        r.image = &d;
        r.build_ms = ok->build_ms;
        r.push_ms = ok->push_ms;
        r.cache_hits = ok->cache_hits;
        r.steps = ok->steps;
        r.provenance = ok->provenance; /* what the worker saw of its build */
        self->cache_hits += ok->cache_hits;
        farm_metric_add(farm_astats.cache_steps, platform, NULL, ok->steps);
        farm_metric_add(farm_astats.cache_hits, platform, NULL, ok->cache_hits);
        if (ok->builder_cache_bytes)
            self->builder_cache_bytes = ok->builder_cache_bytes;
    } else if (tail) {
        r.n_log_tail = farm_tail_lines(tail, lines);
        r.log_tail = (char **)lines;
    }
    if (!ok) {
        /* the error names the cause the log shows; a node-local one counts as the node's
         * fault only when its own health checks confirm it (the log is the build's) */
        farm_fault_t fault = farm_health_classify(cause, sizeof cause, error, lines,
                                                  r.n_log_tail);
        if (fault != FARM_FAULT_NODE && farm_health_registry(error, registry)) {
            /* the push target did not answer at all: this node's network, if a connection
             * from here fails now too (the re-checks try it again) */
            snprintf(self->probe_registry, sizeof self->probe_registry, "%s", registry);
            farm_str_fmt_cut(cause, sizeof cause, "registry %s unreachable", registry);
            fault = FARM_FAULT_NODE;
        }
        if (fault == FARM_FAULT_NODE && s_health_update(self)) {
            r.node_fault = self->unhealthy;
            farm_log_warn("job=%s attempt=%u failed for this node's reason (%s): the "
                          "coordinator runs it elsewhere", job_id, attempt, self->unhealthy);
        } else if (fault == FARM_FAULT_NODE) {
            farm_log_info("job=%s attempt=%u: its log says %s, but this node's health checks "
                          "pass: the failure counts as the build's", job_id, attempt, cause);
            farm_health_classify_build(cause, sizeof cause, error, lines, r.n_log_tail);
        }
        farm_health_error(line, sizeof line, cause, self->opts.name, error);
        r.error = line;
    }
    /* kept until the coordinator takes it: it may be away now, or go away before this
     * reaches it */
    if (farm_held_put(self->held, &r) < 0)
        farm_log_warn("job=%s attempt=%u: %s", job_id, attempt, farm_error_last());
    env.body_case = FARM__ENVELOPE__BODY_JOB_RESULT;
    env.job_result = &r;
    if (farm_session_ready(self->session))
        s_send(self, &env);
    else
        farm_log_info("job=%s attempt=%u finished while no coordinator answers; its result is "
                      "kept until one does", job_id, attempt);
    if (ok)
        farm_log_info("job=%s attempt=%u platform=%s pushed %s (%u of %u steps cached)", job_id,
                      attempt, platform, ok->image->digest, ok->cache_hits, ok->steps);
    else
        farm_log_info("job=%s attempt=%u platform=%s failed: %s", job_id, attempt, platform,
                      r.error);
}

/* After a WELCOME: every result the coordinator has not taken yet, oldest first. */
static void s_send_held(farm_agent_t *self)
{
    for (size_t i = 0; i < farm_held_count(self->held); i++) {
        Farm__Envelope env = FARM__ENVELOPE__INIT;
        env.body_case = FARM__ENVELOPE__BODY_JOB_RESULT;
        env.job_result = (Farm__JobResult *)farm_held_at(self->held, i);
        s_send(self, &env);
        farm_log_info("job=%s attempt=%u: its result, kept through the outage, sent",
                      env.job_result->job_id, env.job_result->attempt);
    }
}

/* ------------------------------------------------------------------ jobs */

/* farm_agent_job_t.user: what the agent keeps with a job. */
typedef struct {
    farm_agent_t *agent;
    Farm__Envelope *assign; /* owns the JobAssign */
    long long assigned_ms;  /* its timeout_ms counts from here */
    farm_steps_t steps;     /* its build steps, timed as their lines come */
} job_user_t;

static void s_free_user(void *user)
{
    job_user_t *u = user;
    farm_wire_free(&u->assign);
    free(u);
}

static farm_steps_t *s_steps_of(farm_agent_job_t *job)
{
    return &((job_user_t *)job->user)->steps;
}

static farm_agent_t *s_agent_of(const farm_agent_job_t *job)
{
    return ((const job_user_t *)job->user)->agent;
}

static const Farm__JobAssign *s_assign_of(const farm_agent_job_t *job)
{
    return ((const job_user_t *)job->user)->assign->job_assign;
}

/* Stops reading a job's streams (it is ending; freed at the end of the turn). */
static void s_job_detach(farm_agent_t *self, farm_agent_job_t *job)
{
    if (job->reader_log)
        farm_reactor_remove(self->reactor, job->reader_log);
    if (job->reader_result)
        farm_reactor_remove(self->reactor, job->reader_result);
    job->reader_log = job->reader_result = 0;
}

static void s_job_fail(farm_agent_t *self, farm_agent_job_t *job, const char *error)
{
    farm_astats_job(job->platform, "failed", job->started_ms ? farm_now_ms() - job->started_ms : -1);
    s_send_result(self, job->id, job->attempt, job->platform, s_assign_of(job)->registry,
                  &job->tail, error, NULL, s_steps_of(job));
    s_job_detach(self, job);
    farm_jobs_drop(self->jobs, job, farm_now_ms());
}

static void s_job_line(void *arg, const char *line)
{
    farm_agent_job_t *job = arg;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__JobLog l = FARM__JOB_LOG__INIT;

    farm_tail_add(&job->tail, line);
    if (job->cancelled || job->state == FARM_AGENT_JOB_DEAD)
        return;
    farm_steps_line(s_steps_of(job), line, farm_now_ms());
    l.job_id = job->id;
    l.attempt = job->attempt;
    l.line = (char *)line;
    env.body_case = FARM__ENVELOPE__BODY_JOB_LOG;
    env.job_log = &l;
    s_send(s_agent_of(job), &env);
}

static int s_on_job_log(farm_reactor_t *reactor, int revents, void *arg)
{
    farm_agent_job_t *job = arg;
    int rc = farm_child_read_log(job->child, s_job_line, job);

    (void)revents;
    if (rc != 0) {
        if (rc < 0)
            farm_log_warn("job=%s: reading its log: %s", job->id, farm_error_last());
        farm_reactor_remove(reactor, job->reader_log);
        job->reader_log = 0;
    }
    return 0;
}

static int s_on_job_result(farm_reactor_t *reactor, int revents, void *arg)
{
    farm_agent_job_t *job = arg;
    int rc = farm_child_read_result(job->child);

    (void)revents;
    if (rc != 0) {
        if (rc < 0)
            farm_log_warn("job=%s: its worker's result: %s", job->id, farm_error_last());
        farm_reactor_remove(reactor, job->reader_result);
        job->reader_result = 0;
    }
    return 0;
}

/* The packed farm.WorkerRequest for the job's worker (fd 3). */
static int s_job_request(farm_agent_t *self, farm_agent_job_t *job, uint8_t **out, size_t *out_len)
{
    const Farm__JobAssign *a = s_assign_of(job);
    const farm_builder_opts_t *bo = &self->opts.builder;
    Farm__WorkerRequest rq = FARM__WORKER_REQUEST__INIT;
    Farm__BuilderOptions b = FARM__BUILDER_OPTIONS__INIT;
    char tar[FARM_PATH_MAX];
    int rc;

    if ((rc = farm_cache_path(self->cache, tar, sizeof tar, a->context_digest)) < 0)
        return rc;
    b.builder = (char *)bo->builder;
    b.storage_driver = (char *)(bo->storage_driver ? bo->storage_driver : "");
    b.isolation = (char *)(bo->isolation ? bo->isolation : "oci");
    b.runtime = (char *)(bo->runtime ? bo->runtime : "runc");
    b.network = (char *)(bo->network ? bo->network : "slirp4netns");
    b.root = self->builder_root;
    b.cache_max = bo->cache_max;
    rq.job_id = job->id;
    rq.platform = job->platform;
    rq.context_tar = tar;
    rq.job_dir = job->dir;
    rq.dockerfile = a->dockerfile;
    rq.network_none = a->network_none;
    rq.cache_scope = a->cache_scope;
    rq.n_build_args = a->n_build_args;
    rq.build_args = a->build_args;
    rq.registry = a->registry;
    rq.repository = a->repository;
    rq.insecure = a->insecure;
    rq.n_targets = a->n_targets; /* the build's other repositories */
    rq.targets = a->targets;
    /* the submitter's logins and farm.yaml's registry settings, on the sealed memfd only */
    rq.n_credentials = a->n_credentials;
    rq.credentials = a->credentials;
    rq.n_registries = a->n_registries;
    rq.registries = a->registries;
    rq.flags = a->flags; /* build secrets too: the sealed memfd only */
    rq.builder = &b;
    return farm_wire_pack(out, out_len, &rq.base);
}

static void s_job_start(farm_agent_t *self, farm_agent_job_t *job)
{
    char *argv[] = {(char *)self->opts.worker_exe, "worker", NULL};
    /* niced: a build must not take the CPU from the agent's heartbeats */
    farm_child_opts_t o = {.argv = argv, .nice = 10};
    uint8_t *req = NULL;
    size_t req_len = 0;
    int id;

    if (farm_jobs_prepare(self->jobs, job) < 0 || s_job_request(self, job, &req, &req_len) < 0 ||
        (o.request = req, o.request_len = req_len,
         farm_jobs_spawn(self->jobs, job, &o, farm_now_ms()) < 0)) {
        if (req)
            explicit_bzero(req, req_len);
        free(req);
        s_job_fail(self, job, farm_error_last());
        return;
    }
    explicit_bzero(req, req_len); /* it may hold the submitter's registry login */
    free(req);
    if ((id = farm_reactor_add_fd(self->reactor, farm_child_log_fd(job->child), ZMQ_POLLIN,
                                  s_on_job_log, job)) > 0)
        job->reader_log = id;
    if ((id = farm_reactor_add_fd(self->reactor, farm_child_result_fd(job->child), ZMQ_POLLIN,
                                  s_on_job_result, job)) > 0)
        job->reader_result = id;
    if (!job->reader_log || !job->reader_result) {
        farm_jobs_cancel(self->jobs, job, farm_now_ms());
        s_job_fail(self, job, "agent cannot watch the job's worker (out of memory)");
        return;
    }
    farm_log_info("job=%s attempt=%u platform=%s started (worker pid %d, dir %s)", job->id,
                  job->attempt, job->platform, (int)farm_child_pid(job->child), job->dir);
}

static void s_status_text(char *buf, size_t len, int status)
{
    int rc;
    if (WIFSIGNALED(status))
        rc = snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
    else
        rc = snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
    if (rc < 0 || (size_t)rc >= len)
        buf[0] = '\0';
}

/* The worker is done: report what its result says (fd 4; never its log). */
static void s_job_finish(farm_agent_t *self, farm_agent_job_t *job)
{
    size_t len = 0;
    const void *bytes = farm_child_result(job->child, &len);
    Farm__WorkerResult *r = NULL;
    char status[64], *msg = NULL;
    const char *reg = s_assign_of(job)->registry;
    const char *result = job->cancelled ? "cancelled" : "failed";

    s_job_detach(self, job);
    if (job->cancelled) {
        farm_log_info("job=%s attempt=%u cancelled", job->id, job->attempt);
    } else if (farm_child_result_fd(job->child) < 0 && len > 0 &&
               (r = farm__worker_result__unpack(NULL, len, bytes)) != NULL) {
        if (r->ok && (!r->image || !farm_digest_valid(r->image->digest) ||
                      !r->image->media_type[0]))
            s_send_result(self, job->id, job->attempt, job->platform, reg, &job->tail,
                          "the worker reported success without a valid image descriptor", NULL,
                          s_steps_of(job));
        else if (r->ok) {
            result = "done";
            s_send_result(self, job->id, job->attempt, job->platform, reg, NULL, NULL, r,
                          s_steps_of(job));
        } else
            s_send_result(self, job->id, job->attempt, job->platform, reg, &job->tail,
                          r->error[0] ? r->error : "the worker failed without saying why", NULL,
                          s_steps_of(job));
        farm__worker_result__free_unpacked(r, NULL);
    } else {
        s_status_text(status, sizeof status, job->exit_status);
        if (asprintf(&msg, "job worker ended (%s) without a result", status) < 0)
            msg = NULL;
        s_send_result(self, job->id, job->attempt, job->platform, reg, &job->tail,
                      msg ? msg : "job worker ended without a result", NULL, s_steps_of(job));
        free(msg);
    }
    farm_astats_job(job->platform, result,
                    job->started_ms ? farm_now_ms() - job->started_ms : -1);
    farm_jobs_drop(self->jobs, job, farm_now_ms());
}

static void s_drop_all(farm_agent_t *self, const char *why)
{
    size_t n = farm_jobs_count(self->jobs), k = farm_held_count(self->held);
    if (n || k)
        farm_log_warn("dropping %zu job(s) and %zu finished result(s): %s", n, k, why);
    while (farm_held_count(self->held)) {
        const Farm__JobResult *r = farm_held_at(self->held, 0);
        farm_held_drop(self->held, r->job_id, r->attempt);
    }
    for (farm_agent_job_t *j = farm_jobs_first(self->jobs); j; j = j->next)
        s_job_detach(self, j);
    farm_jobs_drop_all(self->jobs, farm_now_ms());
    farm_cache_abort_all(self->cache);
}

static void s_inv_finish(farm_agent_t *self);

/* End of every turn: finished workers are reported, dead jobs freed. Only here, so no
 * handler of this turn holds a freed job (a REJECT read before a job's log). */
static void s_turn_end(farm_reactor_t *reactor, void *arg)
{
    farm_agent_t *self = arg;
    long long now = farm_now_ms();

    (void)reactor;
    farm_jobs_poll(self->jobs, now);
    for (farm_agent_job_t *j = farm_jobs_first(self->jobs); j; j = j->next)
        if (farm_jobs_finished(j, now))
            s_job_finish(self, j);
    farm_jobs_reap(self->jobs);
    if (self->inv_child) {
        int status;
        farm_child_reap(self->inv_child, &status);
        if (farm_child_done(self->inv_child))
            s_inv_finish(self);
    }
}

/* ------------------------------------------------------------------ contexts */

static int s_context_in_use(void *arg, const char *digest)
{
    return farm_jobs_need_context(arg, digest);
}

static void s_on_chunk(farm_agent_t *self, const Farm__ContextChunk *c)
{
    farm_cache_chunk_t chunk = {.digest = c->digest, .offset = c->offset, .total = c->total,
                                .data = c->data.data, .len = c->data.len, .error = c->error};
    farm_cache_status_t st = farm_cache_on_chunk(self->cache, &chunk, farm_now_ms());

    if (st != FARM_CACHE_STORED && st != FARM_CACHE_FAILED)
        return;
    for (farm_agent_job_t *j = farm_jobs_first(self->jobs); j; j = j->next) {
        if (j->state != FARM_AGENT_JOB_FETCHING || strcmp(j->context, c->digest) != 0)
            continue;
        if (st == FARM_CACHE_STORED)
            s_job_start(self, j);
        else
            s_job_fail(self, j, farm_error_last());
    }
    if (st == FARM_CACHE_STORED)
        farm_cache_trim(self->cache, s_context_in_use, self->jobs);
}

/* ------------------------------------------------------------------ du and prune */

static void s_cache_report(farm_agent_t *self, uint64_t request, Farm__CacheEntry **entries,
                           size_t n, uint64_t freed, const char *error)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__CacheReport r = FARM__CACHE_REPORT__INIT;

    r.request_id = request;
    r.node = (char *)self->opts.name;
    r.entries = entries;
    r.n_entries = n;
    r.freed = freed;
    r.error = (char *)(error ? error : "");
    env.body_case = FARM__ENVELOPE__BODY_CACHE_REPORT;
    env.cache_report = &r;
    s_send(self, &env);
}

typedef struct {
    Farm__CacheEntry **ptrs;
    size_t n, cap;
    uint64_t freed;
} inv_list_t;

static Farm__CacheEntry *s_inv_add(inv_list_t *l)
{
    Farm__CacheEntry *e;
    if (l->n == l->cap) {
        Farm__CacheEntry **grown = realloc(l->ptrs, (l->cap ? l->cap * 2 : 32) * sizeof *grown);
        if (!grown)
            return NULL;
        l->ptrs = grown;
        l->cap = l->cap ? l->cap * 2 : 32;
    }
    if (!(e = calloc(1, sizeof *e)))
        return NULL;
    farm__cache_entry__init(e);
    return l->ptrs[l->n++] = e;
}

static void s_inv_context(void *arg, const farm_cache_item_t *it)
{
    inv_list_t *l = arg;
    Farm__CacheEntry *e = s_inv_add(l);

    if (!e)
        return;
    e->kind = "context";
    e->id = strdup(it->digest);
    e->kept = strdup(it->kept);
    if (!e->id || !e->kept) { /* out of memory: the entry is left out */
        free(e->id);
        free(e->kept);
        free(e);
        l->n--;
        return;
    }
    e->size = it->size;
    e->last_used_unix = it->used_s;
    e->in_use = it->in_use;
    e->freed = it->freed;
    l->freed += it->freed;
}

static void s_inv_detach(farm_agent_t *self)
{
    if (self->inv_reader_log)
        farm_reactor_remove(self->reactor, self->inv_reader_log);
    if (self->inv_reader_result)
        farm_reactor_remove(self->reactor, self->inv_reader_result);
    self->inv_reader_log = self->inv_reader_result = 0;
}

/* `farm-agent cache` is done: its builder caches, then the contexts (listed, pruned here:
 * only this process knows which a job needs), in one report. */
static void s_inv_finish(farm_agent_t *self)
{
    size_t len = 0;
    const void *bytes = farm_child_result(self->inv_child, &len);
    Farm__CacheJobResult *r = len ? farm__cache_job_result__unpack(NULL, len, bytes) : NULL;
    inv_list_t l = {0};
    size_t n_builder;
    uint64_t builder_bytes = 0;
    const char *error = r ? r->error : "farm-agent cache ended without a result";

    s_inv_detach(self);
    for (size_t i = 0; r && i < r->n_entries; i++) {
        Farm__CacheEntry *e = s_inv_add(&l);
        if (!e)
            break;
        *e = *r->entries[i]; /* its strings stay r's until the report is sent */
        l.freed += e->freed;
        builder_bytes += e->size;
    }
    n_builder = l.n;
    if (farm_cache_inventory(self->cache, &self->inv_ask, s_context_in_use, self->jobs,
                             s_inv_context, &l) < 0 && !error[0])
        error = farm_error_last();
    if (r && !r->error[0])
        self->builder_cache_bytes = builder_bytes; /* what `farmctl nodes` shows, now */
    s_cache_report(self, self->inv_request, l.ptrs, l.n, l.freed, error);
    farm_log_info("%s answered: %zu entries, %llu bytes freed%s%s",
                  self->inv_ask.prune ? "prune" : "du", l.n, (unsigned long long)l.freed,
                  error[0] ? "; " : "", error);
    for (size_t i = 0; i < l.n; i++) {
        if (i >= n_builder) { /* the contexts' strings are ours; the caches' are r's */
            free(l.ptrs[i]->id);
            free(l.ptrs[i]->kept);
        }
        free(l.ptrs[i]);
    }
    free(l.ptrs);
    if (r)
        farm__cache_job_result__free_unpacked(r, NULL);
    farm_child_destroy(&self->inv_child);
}

static void s_inv_line(void *arg, const char *line)
{
    (void)arg;
    farm_log_info("cache: %s", line);
}

static int s_on_inv_log(farm_reactor_t *reactor, int revents, void *arg)
{
    farm_agent_t *self = arg;
    (void)revents;
    if (farm_child_read_log(self->inv_child, s_inv_line, NULL) != 0) {
        farm_reactor_remove(reactor, self->inv_reader_log);
        self->inv_reader_log = 0;
    }
    return 0;
}

static int s_on_inv_result(farm_reactor_t *reactor, int revents, void *arg)
{
    farm_agent_t *self = arg;
    (void)revents;
    if (farm_child_read_result(self->inv_child) != 0) {
        farm_reactor_remove(reactor, self->inv_reader_result);
        self->inv_reader_result = 0;
    }
    return 0;
}

static void s_on_cache_query(farm_agent_t *self, const Farm__CacheQuery *q)
{
    const farm_builder_opts_t *bo = &self->opts.builder;
    Farm__CacheJobRequest rq = FARM__CACHE_JOB_REQUEST__INIT;
    Farm__BuilderOptions b = FARM__BUILDER_OPTIONS__INIT;
    char *argv[] = {(char *)self->opts.worker_exe, "cache", NULL};
    farm_child_opts_t o = {.argv = argv, .nice = 10};
    uint8_t *req = NULL;
    size_t req_len = 0;
    char **dirs = NULL, **ids = NULL;
    int id, rc;

    if (self->inv_child) {
        s_cache_report(self, q->request_id, NULL, 0, 0, "a du or prune already runs on this "
                       "node; ask again when it has answered");
        return;
    }
    self->inv_request = q->request_id;
    self->inv_ask = (farm_inventory_ask_t){.prune = q->prune, .until_s = q->until_s,
                                           .all = q->all, .now_s = (long long)time(NULL)};
    b.builder = (char *)bo->builder;
    b.storage_driver = (char *)(bo->storage_driver ? bo->storage_driver : "");
    b.isolation = (char *)(bo->isolation ? bo->isolation : "oci");
    b.runtime = (char *)(bo->runtime ? bo->runtime : "runc");
    b.network = "none";
    b.root = self->builder_root;
    rq.builder = &b;
    rq.prune = q->prune;
    rq.until_s = q->until_s;
    rq.all = q->all;
    rq.home = self->inv_home;
    /* the running jobs' directories are measured too (kind "job", always in use) */
    {
        size_t n = 0;
        for (farm_agent_job_t *j = farm_jobs_first(self->jobs); j; j = j->next)
            n++;
        dirs = calloc(n + 1, sizeof *dirs);
        ids = calloc(n + 1, sizeof *ids);
        for (farm_agent_job_t *j = farm_jobs_first(self->jobs); dirs && ids && j; j = j->next)
            if (j->state != FARM_AGENT_JOB_DEAD && j->dir[0]) {
                dirs[rq.n_job_dirs++] = j->dir;
                ids[rq.n_job_ids++] = j->id;
            }
        rq.job_dirs = dirs;
        rq.job_ids = ids;
    }
    rc = farm_wire_pack(&req, &req_len, &rq.base);
    free(dirs);
    free(ids);
    if (rc < 0 ||
        (o.request = req, o.request_len = req_len, !(self->inv_child = farm_child_spawn(&o)))) {
        free(req);
        s_cache_report(self, q->request_id, NULL, 0, 0, farm_error_last());
        return;
    }
    free(req);
    if ((id = farm_reactor_add_fd(self->reactor, farm_child_log_fd(self->inv_child), ZMQ_POLLIN,
                                  s_on_inv_log, self)) > 0)
        self->inv_reader_log = id;
    if ((id = farm_reactor_add_fd(self->reactor, farm_child_result_fd(self->inv_child),
                                  ZMQ_POLLIN, s_on_inv_result, self)) > 0)
        self->inv_reader_result = id;
    if (!self->inv_reader_log || !self->inv_reader_result) {
        s_inv_detach(self);
        farm_child_destroy(&self->inv_child);
        s_cache_report(self, q->request_id, NULL, 0, 0, "agent cannot watch farm-agent cache "
                       "(out of memory)");
        return;
    }
    farm_log_info("%s asked by the coordinator%s (farm-agent cache pid %d)",
                  q->prune ? "prune" : "du", q->prune && q->all ? " with --all" : "",
                  (int)farm_child_pid(self->inv_child));
}

/* ------------------------------------------------------------------ messages */

static void s_on_assign(farm_agent_t *self, Farm__Envelope **env_p)
{
    const Farm__JobAssign *a = (*env_p)->job_assign;
    job_user_t *u = calloc(1, sizeof *u);
    farm_agent_job_t *job;
    int dup = 0, has;

    job = u ? farm_jobs_add(self->jobs, &dup, a->job_id, a->attempt, a->platform,
                            a->context_digest, u)
            : (farm_error_set(FARM_ERROR, "agent out of memory"), NULL);
    if (!job) {
        free(u);
        if (!dup) {
            farm_log_warn("job=%.64s attempt=%u refused: %s", a->job_id, a->attempt,
                          farm_error_last());
            s_send_result(self, a->job_id, a->attempt, a->platform, NULL, NULL,
                          farm_error_last(), NULL, NULL);
        }
        return;
    }
    u->agent = self;
    u->assigned_ms = farm_now_ms();
    u->assign = *env_p;
    *env_p = NULL;
    farm_log_info("job=%s attempt=%u platform=%s assigned (build %s)", a->job_id, a->attempt,
                  a->platform, a->build_id);
    if (!farm_digest_valid(a->context_digest)) {
        s_job_fail(self, job, "job names no valid context digest");
        return;
    }
    has = farm_cache_has(self->cache, a->context_digest);
    if (has == 1)
        s_job_start(self, job);
    else if (has < 0 || farm_cache_fetch(self->cache, a->context_digest, a->context_size,
                                         farm_now_ms()) < 0)
        s_job_fail(self, job, farm_error_last());
}

static void s_on_cancel(farm_agent_t *self, const Farm__JobCancel *c)
{
    farm_agent_job_t *job = farm_jobs_find(self->jobs, c->job_id, c->attempt);

    if (farm_held_drop(self->held, c->job_id, c->attempt))
        farm_log_info("job=%.64s attempt=%u: its finished result is dropped: %.256s", c->job_id,
                      c->attempt, c->reason);
    if (!job)
        return;
    farm_log_info("job=%s cancelling: %s", c->job_id, c->reason);
    farm_jobs_cancel(self->jobs, job, farm_now_ms());
    if (job->state == FARM_AGENT_JOB_DEAD)
        s_job_detach(self, job);
}

static void s_on_message(farm_agent_t *self, Farm__Envelope **env_p)
{
    Farm__Envelope *env = *env_p;

    farm_session_on_message(self->session, farm_now_ms());
    switch (env->body_case) {
    case FARM__ENVELOPE__BODY_WELCOME: {
        int before = farm_session_heartbeat_ms(self->session);
        int was_ready = farm_session_ready(self->session); /* a resent HELLO's WELCOME */
        farm_session_on_welcome(self->session, env->welcome->heartbeat_ms, env->welcome->liveness);
        if (farm_session_heartbeat_ms(self->session) != before)
            farm_reactor_timer_reset(self->reactor, self->t_heartbeat,
                                     farm_session_heartbeat_ms(self->session));
        farm_log_info("welcomed by %s as %s (heartbeat %d ms)", self->opts.coordinator,
                      self->opts.name, farm_session_heartbeat_ms(self->session));
        self->orphan_said = 0;
        if (!was_ready)
            s_send_held(self);
        break;
    }
    case FARM__ENVELOPE__BODY_REJECT:
        switch (farm_session_on_reject(self->session, env->reject->rehello)) {
        case FARM_SESSION_REHELLO:
            /* the coordinator restarted or declared us lost: our jobs go on, and the HELLO
             * lists them; it adopts those it knows and cancels the others */
            farm_log_info("the coordinator does not know this session; saying HELLO again "
                          "with %zu job(s) and %zu result(s) held", farm_jobs_count(self->jobs),
                          farm_held_count(self->held));
            s_hello(self);
            break;
        case FARM_SESSION_FATAL:
            farm_log_error("rejected by %s: %s", self->opts.coordinator, env->reject->reason);
            self->fatal = 1;
            break;
        default: break;
        }
        break;
    case FARM__ENVELOPE__BODY_HEARTBEAT: break;
    case FARM__ENVELOPE__BODY_JOB_ASSIGN:
        if (farm_session_ready(self->session))
            s_on_assign(self, env_p);
        break;
    case FARM__ENVELOPE__BODY_JOB_CANCEL: s_on_cancel(self, env->job_cancel); break;
    case FARM__ENVELOPE__BODY_JOB_ACK:
        if (farm_held_drop(self->held, env->job_ack->job_id, env->job_ack->attempt))
            farm_log_debug("job=%.64s attempt=%u: the coordinator took its result",
                           env->job_ack->job_id, env->job_ack->attempt);
        break;
    case FARM__ENVELOPE__BODY_CONTEXT_CHUNK: s_on_chunk(self, env->context_chunk); break;
    case FARM__ENVELOPE__BODY_CACHE_QUERY:
        if (farm_session_ready(self->session))
            s_on_cache_query(self, env->cache_query);
        break;
    default:
        farm_log_warn("unexpected message type %d from the coordinator; ignored",
                      (int)env->body_case);
    }
}

static int s_on_socket(farm_reactor_t *reactor, int revents, void *arg)
{
    farm_agent_t *self = arg;

    (void)reactor;
    (void)revents;
    for (int budget = 0; budget < MSG_BUDGET && !self->fatal; budget++) {
        Farm__Envelope *env = NULL;
        int rc = farm_wire_recv(self->sock, NULL, NULL, &env);
        if (rc == FARM_ERETRY)
            break;
        if (rc < 0) {
            farm_log_warn("bad message from the coordinator: %s", farm_error_last());
            continue;
        }
        s_on_message(self, &env);
        farm_wire_free(&env);
    }
    return self->fatal ? FARM_EAUTH : 0;
}

/* ------------------------------------------------------------------ connection, timers */

static int s_connect(farm_agent_t *self)
{
    if (self->sock_reader)
        farm_reactor_remove(self->reactor, self->sock_reader);
    self->sock_reader = 0;
    if (self->sock)
        zmq_close(self->sock);
    if (self->opts.keys) {
        /* identity is the key; the routing id is whatever ZeroMQ picks, never a name */
        farm_wire_curve_t curve = {.keys = self->opts.keys,
                                   .server_key = self->opts.coordinator_key};
        self->sock = farm_wire_socket_secure(self->zctx, FARM_WIRE_DEALER_CLIENT,
                                             self->opts.coordinator, NULL, &curve);
    } else {
        self->sock = farm_wire_socket(self->zctx, FARM_WIRE_DEALER_CLIENT, self->opts.coordinator,
                                      self->opts.name);
    }
    if (!self->sock)
        return FARM_ERROR;
    self->sock_reader = farm_reactor_add_socket(self->reactor, self->sock, ZMQ_POLLIN,
                                                s_on_socket, self);
    if (self->sock_reader < 0) {
        self->sock_reader = 0;
        return farm_error_set(FARM_ERROR, "agent: cannot watch the coordinator socket");
    }
    farm_session_connected(self->session, farm_now_ms());
    s_hello(self);
    return 0;
}

/* The bounds that hold without a coordinator: an attempt ends after the job_timeout its
 * assignment carried, and everything is given up after --orphan-timeout with no
 * coordinator answering at all. */
static void s_bounds(farm_agent_t *self, long long now)
{
    long long orphaned = farm_session_orphaned_ms(self->session, now);

    for (farm_agent_job_t *j = farm_jobs_first(self->jobs); j; j = j->next) {
        const job_user_t *u = j->user;
        uint32_t limit = s_assign_of(j)->timeout_ms;
        if (j->state == FARM_AGENT_JOB_DEAD || j->cancelled || !limit ||
            now - u->assigned_ms <= (long long)limit)
            continue;
        farm_log_warn("job=%s attempt=%u ran longer than its job_timeout (%u s); ending it",
                      j->id, j->attempt, limit / 1000);
        farm_jobs_cancel(self->jobs, j, now);
        if (j->state == FARM_AGENT_JOB_DEAD)
            s_job_detach(self, j);
    }
    if (orphaned > self->opts.orphan_timeout_ms &&
        (farm_jobs_count(self->jobs) || farm_held_count(self->held))) {
        char why[160];
        snprintf(why, sizeof why, "no coordinator answered for %lld s (--orphan-timeout %lld s)",
                 orphaned / 1000, self->opts.orphan_timeout_ms / 1000);
        s_drop_all(self, why);
    }
}

static int s_on_heartbeat(farm_reactor_t *reactor, void *arg)
{
    farm_agent_t *self = arg;
    long long now = farm_now_ms();
    long long silent = farm_session_silent_ms(self->session, now);

    (void)reactor;
    s_bounds(self, now);
    switch (farm_session_tick(self->session, now)) {
    case FARM_SESSION_HEARTBEAT: s_heartbeat(self); break;
    case FARM_SESSION_HELLO: s_hello(self); break; /* WELCOME not seen yet: ask again */
    case FARM_SESSION_RECONNECT:
        /* Paranoid Pirate: the coordinator is gone; reconnect with backoff */
        farm_log_warn("coordinator %s silent for %lld ms; reconnecting (next try in %d ms)",
                      self->opts.coordinator, silent,
                      (int)farm_session_retry_in_ms(self->session, now));
        if (!self->orphan_said && (farm_jobs_count(self->jobs) || farm_held_count(self->held)))
            farm_log_warn("%zu job(s) go on and %zu finished result(s) are kept while the "
                          "coordinator is away (given up after %lld s without it: "
                          "--orphan-timeout)", farm_jobs_count(self->jobs),
                          farm_held_count(self->held), self->opts.orphan_timeout_ms / 1000);
        self->orphan_said = 1;
        if (s_connect(self) < 0)
            farm_log_error("reconnecting to %s: %s", self->opts.coordinator, farm_error_last());
        break;
    default: break;
    }
    return 0;
}

/* An unhealthy node checks itself again until the checks pass (the disk freed, ...). */
static int s_on_recheck(farm_reactor_t *reactor, void *arg)
{
    farm_agent_t *self = arg;
    (void)reactor;
    if (self->unhealthy[0])
        s_health_update(self);
    return 0;
}

static int s_on_fetch_retry(farm_reactor_t *reactor, void *arg)
{
    farm_agent_t *self = arg;
    (void)reactor;
    farm_cache_retry(self->cache, farm_now_ms(), FETCH_IDLE_MS); /* a lost chunk request */
    return 0;
}

static int s_on_jobs_poll(farm_reactor_t *reactor, void *arg)
{
    (void)reactor;
    (void)arg;
    return 0; /* the turn it makes runs s_turn_end, which reaps */
}

/* ------------------------------------------------------------------ lifecycle */

static void s_metrics_read(void *arg, double *running, double *slots, double *cache_bytes,
                           double *healthy, double *connected)
{
    farm_agent_t *self = arg;
    *running = (double)farm_jobs_count(self->jobs);
    *slots = self->opts.slots;
    *cache_bytes = (double)self->builder_cache_bytes;
    *healthy = !self->unhealthy[0];
    *connected = farm_session_ready(self->session);
}

static void s_metrics_serve(void *arg, farm_http_req_t *req)
{
    size_t len = 0;
    char *text;
    if (strcmp(farm_http_req_path(req), "/metrics")) {
        farm_http_reply_error(req, 404, "%s: not here; this agent serves /metrics only",
                              farm_http_req_path(req));
        return;
    }
    text = farm_metrics_render(farm_astats.reg, &len);
    farm_http_reply_take(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

/* --metrics: the registry and its endpoint (counters only: open to whoever reaches it) */
static int s_metrics_start(farm_agent_t *self)
{
    farm_astats_source_t src = {s_metrics_read, self};
    if (farm_astats_init(&src) < 0)
        return FARM_ERROR;
    if (!(self->http = farm_http_new(self->reactor, self->opts.metrics, NULL, 1,
                                     s_metrics_serve, self)))
        return farm_error_wrap(FARM_EINVALID, "--metrics");
    farm_log_info("metrics on http://%s/metrics (port %d)", self->opts.metrics,
                  farm_http_port(self->http));
    return 0;
}

farm_agent_t *farm_agent_new(const farm_agent_opts_t *opts)
{
    farm_agent_t *self = calloc(1, sizeof *self);
    char cache_dir[FARM_PATH_MAX], jobs_dir[FARM_PATH_MAX], probe[FARM_PATH_MAX];
    char held_dir[FARM_PATH_MAX];

    if (!self) {
        farm_error_set(FARM_ERROR, "out of memory");
        return NULL;
    }
    self->opts = *opts;
    if (!self->opts.worker_exe)
        self->opts.worker_exe = "/proc/self/exe";
    if (self->opts.orphan_timeout_ms <= 0)
        self->opts.orphan_timeout_ms = FARM_AGENT_ORPHAN_TIMEOUT_MS;
    /* every path a job needs must fit: say so now, not in the middle of a build */
    if (farm_path_join(cache_dir, sizeof cache_dir, opts->work_dir, "cache") < 0 ||
        farm_path_join(jobs_dir, sizeof jobs_dir, opts->work_dir, "jobs") < 0 ||
        farm_path_join(held_dir, sizeof held_dir, opts->work_dir, "results") < 0 ||
        farm_path_join(self->inv_home, sizeof self->inv_home, opts->work_dir, "cache-home") < 0 ||
        farm_path_fmt(probe, sizeof probe, "%s/job-4294967295-4294967295/context/%0*d", jobs_dir,
                      64, 0) < 0) {
        farm_error_wrap(FARM_ETOOBIG, "--work-dir is too long");
        goto fail;
    }
    /* the builder's storage: the agent's own (the sandbox writes it with the agent's
     * subordinate ids), not the user's default ~/.local/share/containers */
    if (opts->builder.builder_root && *opts->builder.builder_root) {
        if (farm_path_fmt(self->builder_root, sizeof self->builder_root, "%s",
                          opts->builder.builder_root) < 0) {
            farm_error_wrap(FARM_ETOOBIG, "--builder-root is too long");
            goto fail;
        }
    } else if (farm_path_join(self->builder_root, sizeof self->builder_root, opts->work_dir,
                              "builder") < 0) {
        farm_error_wrap(FARM_ETOOBIG, "--work-dir is too long");
        goto fail;
    }
    if (farm_fs_mkdirs(self->builder_root) < 0) {
        farm_error_wrap(FARM_EIO, "builder storage %s", self->builder_root);
        goto fail;
    }
    if (!(self->session = farm_session_new()) || !(self->reactor = farm_reactor_new())) {
        farm_error_set(FARM_ERROR, "out of memory");
        goto fail;
    }
    /* first: end and remove what an earlier run of this agent left */
    if (!(self->jobs = farm_jobs_new(jobs_dir, s_free_user)))
        goto fail;
    /* results an earlier run finished and no coordinator took: delivered at WELCOME */
    if (!(self->held = farm_held_new(held_dir)))
        goto fail;
    if (farm_held_count(self->held))
        farm_log_info("%zu finished result(s) from an earlier run wait for the coordinator",
                      farm_held_count(self->held));
    if (!(self->cache = farm_cache_new(cache_dir, opts->cache_max, s_request_chunk, self)))
        goto fail;
    if (!(self->zctx = zmq_ctx_new())) {
        farm_error_set(FARM_ERROR, "zmq_ctx_new: %s", zmq_strerror(errno));
        goto fail;
    }
    self->t_heartbeat = farm_reactor_timer_add(self->reactor, "heartbeat",
                                               farm_session_heartbeat_ms(self->session), 0,
                                               s_on_heartbeat, self);
    if (self->t_heartbeat < 0 ||
        farm_reactor_timer_add(self->reactor, "fetch-retry", 1000, 0, s_on_fetch_retry, self) < 0 ||
        farm_reactor_timer_add(self->reactor, "jobs", JOBS_POLL_MS, 0, s_on_jobs_poll, self) < 0 ||
        farm_reactor_timer_add(self->reactor, "health", FARM_AGENT_RECHECK_MS, 0, s_on_recheck,
                               self) < 0)
        goto fail;
    if (self->opts.metrics && s_metrics_start(self) < 0)
        goto fail;
    /* a node unhealthy at start says so in its HELLO and runs, rather than refusing */
    s_health_update(self);
    farm_reactor_set_turn_end(self->reactor, s_turn_end, self);
    if (s_connect(self) < 0)
        goto fail;
    return self;
fail:
    farm_agent_destroy(&self);
    return NULL;
}

void farm_agent_destroy(farm_agent_t **self_p)
{
    farm_agent_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    if (self->jobs && farm_jobs_count(self->jobs))
        farm_log_warn("agent stopping: ending %zu job(s)", farm_jobs_count(self->jobs));
    farm_http_destroy(&self->http);
    farm_astats_fini();
    farm_jobs_destroy(&self->jobs);
    farm_child_destroy(&self->inv_child);
    farm_held_destroy(&self->held);
    farm_cache_destroy(&self->cache);
    farm_reactor_destroy(&self->reactor);
    if (self->sock)
        zmq_close(self->sock);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    farm_session_destroy(&self->session);
    free(self);
    *self_p = NULL;
}

int farm_agent_run(farm_agent_t *self, volatile int *stop)
{
    int rc = farm_reactor_run(self->reactor, stop);
    if (self->fatal)
        return FARM_EAUTH;
    if (rc < 0)
        farm_log_error("agent loop: %s", farm_error_last());
    return rc;
}
