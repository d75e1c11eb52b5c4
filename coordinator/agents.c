/* SPDX-License-Identifier: Apache-2.0 */
/* The agents' side of the coordinator: protobuf to and from the nodes, read into plain
 * values for nodes, scheduler and builds; replies go out through the coordinator's send. */
#include "coordinator/agents.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buildflags.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/log.h"
#include "common/oci.h"
#include "common/platform.h"
#include "coordinator/cachecmd.h"
#include "coordinator/clients.h"
#include "coordinator/peerwarn.h"
#include "coordinator/stats.h"
#include "coordinator/targets.h"

struct farm_agents {
    farm_coord_parts_t p;
    farm_timeserve_t *timeserve;
    farm_agents_send_fn send;
    void *arg;
    char *chunk; /* FARM_WIRE_CHUNK bytes for context reads */
};

farm_agents_t *farm_agents_new(const farm_coord_parts_t *parts, farm_timeserve_t *timeserve,
                               farm_agents_send_fn send, void *arg)
{
    farm_agents_t *self = calloc(1, sizeof *self);
    if (!self || !(self->chunk = malloc(FARM_WIRE_CHUNK))) {
        free(self);
        farm_error_set(FARM_ERROR, "out of memory");
        return NULL;
    }
    self->p = *parts;
    self->timeserve = timeserve;
    self->send = send;
    self->arg = arg;
    return self;
}

void farm_agents_destroy(farm_agents_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->chunk);
    free(*self_p);
    *self_p = NULL;
}

/* ------------------------------------------------------------------ sending */

static void s_send(farm_agents_t *self, const void *rid, size_t rid_len, Farm__Envelope *env)
{
    env->version = FARM_WIRE_VERSION;
    if (self->send(self->arg, rid, rid_len, env) < 0)
        farm_log_debug("send to a peer failed: %s", farm_error_last());
}

static int s_send_node(farm_agents_t *self, farm_node_t *n, Farm__Envelope *env)
{
    int rc;
    env->version = FARM_WIRE_VERSION;
    if ((rc = self->send(self->arg, n->rid, n->rid_len, env)) < 0)
        farm_log_warn("node=%s send failed: %s", n->cfg->name, farm_error_last());
    return rc;
}

/* ------------------------------------------------------------------ jobs out */

static void s_node_lost(farm_agents_t *self, farm_node_t *node, const char *why)
{
    char msg[256];
    farm_log_warn("node=%s lost: %s", node->cfg->name, why);
    snprintf(msg, sizeof msg, "node %s lost (%s)", node->cfg->name, why);
    farm_nodes_lose(self->p.nodes, node);
    farm_scheduler_node_down(self->p.sched, node, msg, farm_now_ms());
}

/* A JobAssign's registry part: the submitter's logins (all of the build's: the push and
 * the base images), and farm.yaml's settings for every registry it names plus the target. */
typedef struct {
    Farm__RegistryCredential *creds, **cred_ptrs;
    Farm__RegistrySettings *sets, **set_ptrs;
} assign_regs_t;

static void s_assign_registries_free(assign_regs_t *r)
{
    free(r->creds);
    free(r->cred_ptrs);
    free(r->sets);
    free(r->set_ptrs);
    memset(r, 0, sizeof *r);
}

static int s_assign_registries(farm_agents_t *self, const farm_build_t *b,
                               Farm__JobAssign *ja, assign_regs_t *r)
{
    const farm_config_t *cfg = self->p.cfg;
    size_t n = 0;

    memset(r, 0, sizeof *r);
    r->creds = calloc(b->n_creds + 1, sizeof *r->creds);
    r->cred_ptrs = calloc(b->n_creds + 1, sizeof *r->cred_ptrs);
    r->sets = calloc(cfg->n_registries + b->n_targets + 1, sizeof *r->sets);
    r->set_ptrs = calloc(cfg->n_registries + b->n_targets + 1, sizeof *r->set_ptrs);
    if (!r->creds || !r->cred_ptrs || !r->sets || !r->set_ptrs)
        return FARM_ERROR;
    for (size_t i = 0; i < b->n_creds; i++) {
        farm__registry_credential__init(&r->creds[i]);
        r->creds[i].registry = b->creds[i].registry;
        r->creds[i].username = b->creds[i].username;
        r->creds[i].secret = b->creds[i].secret;
        r->creds[i].identity_token = b->creds[i].identity_token;
        r->cred_ptrs[i] = &r->creds[i];
    }
    ja->n_credentials = b->n_creds;
    ja->credentials = r->cred_ptrs;
    for (size_t i = 0; i < cfg->n_registries; i++) {
        const farm_config_registry_t *c = &cfg->registries[i];
        Farm__RegistrySettings *s = &r->sets[n];
        farm__registry_settings__init(s);
        s->registry = c->host;
        s->insecure = c->insecure;
        s->ca_pem.data = (uint8_t *)c->ca_pem;
        s->ca_pem.len = c->ca_pem ? c->ca_pem_len : 0;
        s->farm_credentials = farm_config_registry_grants(c, b->owner);
        r->set_ptrs[n++] = s;
    }
    /* every repository the build pushes to (coordinator/targets.h), each host once */
    for (size_t k = 0; k < b->n_targets || k == 0; k++) {
        const char *host = b->n_targets ? b->targets[k].registry : b->registry;
        int seen = farm_config_registry(cfg, host) != NULL;
        for (size_t j = 0; j < k && !seen; j++)
            seen = strcmp(b->targets[j].registry, host) == 0;
        if (seen)
            continue;
        farm__registry_settings__init(&r->sets[n]);
        r->sets[n].registry = (char *)host;
        r->set_ptrs[n] = &r->sets[n];
        n++;
    }
    ja->n_registries = n;
    ja->registries = r->set_ptrs;
    return 0;
}

void farm_agents_assign(farm_agents_t *self, farm_job_t *job, farm_node_t *node)
{
    farm_build_t *b = job->build;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__JobAssign ja = FARM__JOB_ASSIGN__INIT;
    assign_regs_t regs = {0};
    farm_targets_wire_t tw = {0};
    Farm__BuildFlags fl;
    farm_buildflags_wire_t fw = {0};
    Farm__KeyValue *kvs = calloc(b->n_args + 1, sizeof *kvs);
    Farm__KeyValue **kvp = calloc(b->n_args + 1, sizeof *kvp);
    long long now = farm_now_ms();
    int rc;

    if (!kvs || !kvp) {
        free(kvs);
        free(kvp);
        farm_scheduler_release(self->p.sched, job);
        farm_builds_job_failed(self->p.builds, job, now,
                               "coordinator out of memory sending the job");
        return;
    }
    for (size_t i = 0; i < b->n_args; i++) {
        farm__key_value__init(&kvs[i]);
        kvs[i].key = b->args[i].key;
        kvs[i].value = b->args[i].value;
        kvp[i] = &kvs[i];
    }
    ja.build_id = b->id;
    ja.job_id = job->id;
    ja.attempt = job->attempt;
    ja.platform = job->platform;
    ja.context_digest = b->context_digest;
    ja.context_size = b->context_size;
    ja.dockerfile = b->dockerfile;
    ja.n_build_args = b->n_args;
    ja.build_args = kvp;
    ja.registry = b->registry;
    ja.repository = b->repository;
    ja.insecure = b->insecure;
    ja.emulated = job->emulated;
    ja.network_none = b->network_none;
    ja.warm = job->warm;
    ja.timeout_ms = (uint32_t)self->p.cfg->job_timeout_ms; /* bounds it without us too */
    ja.cache_scope = b->owner; /* nodes keep a layer cache per client: no client reuses,
                                * or poisons, another's steps */
    /* most builds ask for no flags: then none is built, sent or unpacked */
    ja.flags = farm_buildflags_empty(&b->flags) ? NULL : &fl;
    if (s_assign_registries(self, b, &ja, &regs) < 0 ||
        farm_targets_to_wire(&tw, b, self->p.cfg, 0) < 0 ||
        (ja.flags && farm_buildflags_to_wire(&fl, &fw, &b->flags) < 0)) {
        farm_scheduler_release(self->p.sched, job);
        farm_builds_job_failed(self->p.builds, job, now,
                               "coordinator out of memory sending the job");
        goto done;
    }
    ja.n_targets = tw.n; /* the build's other repositories: the image goes there too */
    ja.targets = tw.ptrs;
    env.body_case = FARM__ENVELOPE__BODY_JOB_ASSIGN;
    env.job_assign = &ja;
    if ((rc = s_send_node(self, node, &env)) == FARM_ENOTFOUND) {
        /* the agent's connection is gone: the node is lost now (not in liveness beats,
         * where it would look idle and swallow every job), and this job with its others
         * goes back to the front of its queue as a new attempt */
        s_node_lost(self, node, "unreachable when sent a job");
    } else if (rc < 0) {
        char why[512];
        snprintf(why, sizeof why, "could not send the job to node %s: %s", node->cfg->name,
                 farm_error_last());
        farm_scheduler_release(self->p.sched, job);
        farm_builds_job_failed(self->p.builds, job, now, "%s", why);
    } else {
        farm_builds_event(self->p.builds, b, job, FARM_EVENT_DISPATCHED,
                          "attempt %u on %s%s%s (%d/%d slots)", job->attempt, node->cfg->name,
                          job->emulated ? " (emulated)" : "",
                          job->warm ? " (warm: it built this recently)" : "",
                          farm_scheduler_node_used(self->p.sched, node), node->slots);
    }
done:
    s_assign_registries_free(&regs);
    farm_targets_wire_free(&tw);
    farm_buildflags_wire_free(&fw);
    free(kvs);
    free(kvp);
}

void farm_agents_cancel(farm_agents_t *self, farm_job_t *job, farm_node_t *node,
                        const char *reason)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__JobCancel jc = FARM__JOB_CANCEL__INIT;

    if (node->state != FARM_NODE_READY)
        return;
    jc.job_id = job->id;
    jc.attempt = job->attempt;
    jc.reason = (char *)reason;
    env.body_case = FARM__ENVELOPE__BODY_JOB_CANCEL;
    env.job_cancel = &jc;
    s_send_node(self, node, &env);
}

/* ------------------------------------------------------------------ node health */

/* What the agent says of its health (HELLO, heartbeat, a node-fault result): an unhealthy
 * node takes no job until it says it is healthy again (farm_scheduler_node_health). */
static void s_set_health(farm_agents_t *self, farm_node_t *node, const char *cause)
{
    if (!farm_nodes_health(self->p.nodes, node, cause))
        return;
    farm_scheduler_node_health(self->p.sched, node, node->unhealthy[0] != '\0');
    if (node->unhealthy[0])
        farm_log_warn("node=%s unhealthy: %s; it takes no job until its agent's re-check "
                      "passes", node->cfg->name, node->unhealthy);
    else
        farm_log_info("node=%s healthy again: it takes jobs", node->cfg->name);
}

/* ------------------------------------------------------------------ HELLO, results, reads */

/* rehello: the session is unknown and the agent should introduce itself again (sent
 * once per message in flight, so logged quietly); otherwise a person must act. */
static void s_reject(farm_agents_t *self, const void *rid, size_t rid_len,
                     const char *reason, int rehello)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Reject rj = FARM__REJECT__INIT;
    rj.reason = (char *)reason;
    rj.rehello = rehello;
    env.body_case = FARM__ENVELOPE__BODY_REJECT;
    env.reject = &rj;
    farm_log(rehello ? FARM_LOG_DEBUG : FARM_LOG_WARN, "rejecting agent %.*s: %s",
             (int)(rid_len > 64 ? 64 : rid_len), (const char *)rid, reason);
    s_send(self, rid, rid_len, &env);
}

/* A new session of the node (HELLO, not resent): the attempts it says it holds and this
 * coordinator runs there are adopted (farm_scheduler_node_rejoin: no re-dispatch, no
 * second copy), its other jobs queued again, and each held attempt not adopted is
 * cancelled on the node (before the WELCOME, so it does not send that result again). */
static int s_node_rejoin(farm_agents_t *self, farm_node_t *node, const Farm__Hello *h,
                         long long now)
{
    farm_sched_held_t *held = calloc(h->n_jobs + 1, sizeof *held);
    int *adopted = calloc(h->n_jobs + 1, sizeof *adopted), rc = FARM_ERROR;
    char msg[256];

    for (size_t i = 0; held && i < h->n_jobs; i++)
        held[i] = (farm_sched_held_t){h->jobs[i]->job_id, h->jobs[i]->attempt};
    snprintf(msg, sizeof msg, "node %s lost (it said HELLO again without this attempt)",
             node->cfg->name);
    if (held && adopted)
        rc = farm_scheduler_node_rejoin(self->p.sched, node, held, h->n_jobs, adopted, msg, now);
    for (size_t i = 0; rc == 0 && i < h->n_jobs; i++) {
        Farm__Envelope env = FARM__ENVELOPE__INIT;
        Farm__JobCancel jc = FARM__JOB_CANCEL__INIT;
        farm_job_t *job = adopted[i] ? farm_scheduler_job(self->p.sched, held[i].job_id) : NULL;
        if (job) {
            farm_log_info("node=%s job=%s attempt=%u adopted: the node kept it %s",
                          node->cfg->name, job->id, job->attempt,
                          h->jobs[i]->finished ? "and finished it" : "running");
            farm_builds_event(self->p.builds, job->build, job, FARM_EVENT_DISPATCHED,
                              "attempt %u on %s kept through the outage", job->attempt,
                              node->cfg->name);
            continue;
        }
        farm_log_info("node=%s job=%.64s attempt=%u: not a job this coordinator runs there; "
                      "cancelled", node->cfg->name, held[i].job_id, held[i].attempt);
        jc.job_id = h->jobs[i]->job_id;
        jc.attempt = h->jobs[i]->attempt;
        jc.reason = "the coordinator does not run this attempt on this node (it restarted, "
                    "or the job ended or went to another node meanwhile)";
        env.body_case = FARM__ENVELOPE__BODY_JOB_CANCEL;
        env.job_cancel = &jc;
        s_send_node(self, node, &env);
    }
    free(held);
    free(adopted);
    return rc;
}

static void s_on_hello(farm_agents_t *self, const void *rid, size_t rid_len,
                       const Farm__Hello *h)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Welcome w = FARM__WELCOME__INIT;
    farm_hello_t hello = {.name = h->name, .platforms = h->platforms,
                          .n_platforms = h->n_platforms, .slots = h->slots,
                          .builder = h->builder, .version = h->version, .session = h->session};
    char reason[1024], **emu = NULL;
    farm_node_t *node = NULL;
    farm_hello_outcome_t outcome;
    long long now = farm_now_ms();

    if (h->n_jobs > FARM_HELD_JOBS_MAX) { /* an agent holds its slots and 256 results */
        snprintf(reason, sizeof reason, "HELLO lists %zu held jobs (at most %d)", h->n_jobs,
                 FARM_HELD_JOBS_MAX);
        s_reject(self, rid, rid_len, reason, 0);
        return;
    }
    outcome = farm_nodes_hello(self->p.nodes, &node, &hello, rid, rid_len, now, reason,
                               sizeof reason);
    if (outcome == FARM_HELLO_REJECTED) {
        s_reject(self, rid, rid_len, reason, 0);
        return;
    }
    if (outcome == FARM_HELLO_RESTARTED)
        farm_log_warn("node=%s said HELLO with a new session (it reconnected or restarted), "
                      "holding %zu attempt(s)", node->cfg->name, h->n_jobs);
    if (outcome != FARM_HELLO_RESENT && s_node_rejoin(self, node, h, now) < 0) {
        farm_nodes_lose(self->p.nodes, node);
        farm_scheduler_node_down(self->p.sched, node, "coordinator out of memory", now);
        s_reject(self, rid, rid_len, "coordinator out of memory; try again", 1);
        return;
    }
    s_set_health(self, node, h->unhealthy);
    emu = calloc(node->n_platforms + 1, sizeof *emu);
    for (size_t i = 0; emu && i < node->n_platforms; i++)
        if (node->platforms[i].emulated)
            emu[w.n_emulated++] =
                self->p.cfg->platforms[node->platforms[i].platform_index].platform;
    w.heartbeat_ms = (uint32_t)self->p.cfg->heartbeat_ms;
    w.liveness = (uint32_t)self->p.cfg->liveness;
    w.emulated = emu;
    env.body_case = FARM__ENVELOPE__BODY_WELCOME;
    env.welcome = &w;
    s_send_node(self, node, &env);
    free(emu);
    farm_log_info("node=%s ready: %zu platform(s), %d slot(s), builder %s, version %.32s",
                  node->cfg->name, node->n_platforms, node->slots, node->builder, h->version);
}

/* The attempt's timed steps into the build's record (statistics from the builder's
 * output: kept, never acted on). */
static void s_record_steps(farm_agents_t *self, const farm_job_t *job, const Farm__JobResult *r)
{
    farm_journal_step_t steps[FARM_JOURNAL_STEPS_MAX];
    size_t n = 0;

    if (!self->p.journal || !r->n_build_steps)
        return;
    for (size_t i = 0; i < r->n_build_steps && n < FARM_JOURNAL_STEPS_MAX; i++) {
        const Farm__BuildStep *bs = r->build_steps[i];
        if (!bs)
            continue;
        steps[n].number = bs->number;
        steps[n].text = bs->text;
        steps[n].ms = bs->ms;
        steps[n].cached = bs->cached;
        n++;
    }
    if (farm_journal_put_steps(self->p.journal, job->build->id, job->platform, steps, n) < 0)
        farm_log_warn("journal: the steps of job %s not written: %s", job->id,
                      farm_error_last());
}

static void s_on_job_log(farm_agents_t *self, farm_node_t *node, const Farm__JobLog *m)
{
    farm_job_t *job = farm_scheduler_running(self->p.sched, node, m->job_id, m->attempt);
    if (job)
        farm_builds_job_log(self->p.builds, job, m->line);
}

/* A printable name of at most FARM_REFERENCE_MAX bytes (it goes into JSON and logs). */
static int s_base_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > FARM_REFERENCE_MAX)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return 0;
    return 1;
}

/* Keeps what the node said of its build for the platform's provenance: a base image
 * with a bad name or digest is left out with a warning, never the build. */
static void s_job_prov(farm_job_t *job, const farm_node_t *node, const Farm__ProvenanceJob *p)
{
    free(job->prov);
    job->prov = NULL;
    if (!p || !(job->prov = calloc(1, sizeof *job->prov)))
        return;
    job->prov->started_ms = p->started_ms;
    job->prov->finished_ms = p->finished_ms >= p->started_ms ? p->finished_ms : p->started_ms;
    if (farm_digest_valid(p->dockerfile_digest))
        snprintf(job->prov->dockerfile_digest, sizeof job->prov->dockerfile_digest, "%s",
                 p->dockerfile_digest);
    job->prov->emulated = p->emulated;
    for (size_t i = 0; i < p->n_bases; i++) {
        const Farm__ProvenanceBase *b = p->bases[i];
        if (job->prov->n_bases == FARM_JOB_PROV_BASES || !s_base_name_ok(b->name) ||
            !farm_digest_valid(b->digest)) {
            farm_log_warn("node=%s job=%s: base image %zu of its provenance is left out (more "
                          "than %d, or a bad name or digest)", node->cfg->name, job->id, i,
                          FARM_JOB_PROV_BASES);
            continue;
        }
        snprintf(job->prov->bases[job->prov->n_bases].name, sizeof job->prov->bases[0].name,
                 "%s", b->name);
        snprintf(job->prov->bases[job->prov->n_bases].digest, sizeof job->prov->bases[0].digest,
                 "%s", b->digest);
        job->prov->bases[job->prov->n_bases++].final_stage = b->final_stage;
    }
}

static void s_on_job_result(farm_agents_t *self, farm_node_t *node, const Farm__JobResult *r)
{
    farm_job_t *job = farm_scheduler_running(self->p.sched, node, r->job_id, r->attempt);
    long long now = farm_now_ms();
    farm_descriptor_t image;
    farm_platform_t p;
    Farm__Envelope ack_env = FARM__ENVELOPE__INIT;
    Farm__JobAck ack = FARM__JOB_ACK__INIT;

    /* taken, used or not: the node stops keeping it */
    ack.job_id = r->job_id;
    ack.attempt = r->attempt;
    ack_env.body_case = FARM__ENVELOPE__BODY_JOB_ACK;
    ack_env.job_ack = &ack;
    s_send_node(self, node, &ack_env);
    if (!job) {
        farm_log_info("node=%s ignoring late result for job %.64s attempt %u", node->cfg->name,
                      r->job_id, r->attempt);
        return;
    }
    s_record_steps(self, job, r);
    /* the agent's tail holds the lines it streamed as JobLogs too: it replaces ours, or
     * a failure would show each line twice */
    if (r->n_log_tail)
        farm_tail_clear(&job->tail);
    for (size_t i = r->n_log_tail > FARM_TAIL_LINES ? r->n_log_tail - FARM_TAIL_LINES : 0;
         i < r->n_log_tail; i++)
        farm_tail_add(&job->tail, r->log_tail[i]);
    if (!r->ok && r->node_fault[0]) {
        /* the node's own fault, which its health check confirmed: it takes nothing until
         * healthy again, and the job runs once more elsewhere (a new attempt) */
        s_set_health(self, node, r->node_fault);
        if (!job->node_retried) {
            char why[FARM_NODE_CAUSE_MAX + 640];
            job->node_retried = 1;
            snprintf(why, sizeof why, "%.512s", r->error[0] ? r->error : r->node_fault);
            farm_log_warn("job=%s attempt=%u failed for node %s's reason (%s); it runs again "
                          "on another node", job->id, job->attempt, node->cfg->name,
                          node->unhealthy);
            farm_metric_inc(farm_cstats.job_failures, job->platform, "node_fault");
            /* the job is still RUNNING here: retry releases its slot and queues it */
            farm_scheduler_retry(self->p.sched, job, why, now);
            return;
        }
    }
    farm_scheduler_release(self->p.sched, job);
    if (!r->ok) {
        farm_metric_inc(farm_cstats.job_failures, job->platform, "build");
        farm_builds_job_failed(self->p.builds, job, now, "%s",
                               r->error[0] ? r->error : "build failed");
        return;
    }
    if (!r->image || !farm_digest_valid(r->image->digest) ||
        farm_platform_parse(&p, r->image->platform) < 0 || !farm_platform_equal(&p, &job->plat) ||
        (strcmp(r->image->media_type, FARM_MEDIA_OCI_MANIFEST) != 0 &&
         strcmp(r->image->media_type, FARM_MEDIA_DOCKER_MANIFEST) != 0)) {
        farm_metric_inc(farm_cstats.job_failures, job->platform, "bad_result");
        farm_builds_job_failed(self->p.builds, job, now,
                               "node %s reported an unusable image descriptor (platform %.96s, "
                               "media type %.128s)", node->cfg->name,
                               r->image ? r->image->platform : "-",
                               r->image ? r->image->media_type : "-");
        return;
    }
    memset(&image, 0, sizeof image);
    snprintf(image.media_type, sizeof image.media_type, "%s", r->image->media_type);
    snprintf(image.digest, sizeof image.digest, "%s", r->image->digest);
    image.size = r->image->size;
    image.platform = job->plat;
    /* statistics from the builder's output: never more hits than steps */
    job->steps = r->steps;
    job->cache_hits = r->cache_hits <= r->steps ? r->cache_hits : r->steps;
    s_job_prov(job, node, r->provenance);
    farm_metric_add(farm_cstats.cache_steps, job->platform, NULL, job->steps);
    farm_metric_add(farm_cstats.cache_hits, job->platform, NULL, job->cache_hits);
    farm_scheduler_job_built(self->p.sched, job, node);
    farm_builds_job_pushed(self->p.builds, job, &image, r->build_ms, r->push_ms, now);
}

/* A node may read a context only while it runs a job that needs it. */
static int s_node_needs_context(farm_agents_t *self, const farm_node_t *node,
                                const char *digest)
{
    size_t n = farm_scheduler_node_jobs(self->p.sched, node, NULL, 0);
    farm_job_t **jobs = calloc(n + 1, sizeof *jobs);
    int needed = 0;

    if (!jobs)
        return 0;
    farm_scheduler_node_jobs(self->p.sched, node, jobs, n);
    for (size_t i = 0; i < n && !needed; i++)
        needed = strcmp(jobs[i]->build->context_digest, digest) == 0;
    free(jobs);
    return needed;
}

static void s_on_context_get(farm_agents_t *self, farm_node_t *node, const void *rid,
                             size_t rid_len, const Farm__ContextGet *g)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__ContextChunk ch = FARM__CONTEXT_CHUNK__INIT;
    size_t n = 0;
    uint64_t total = 0;

    ch.digest = g->digest;
    ch.offset = g->offset;
    ch.error = "";
    /* a bad digest, then an unknown one, then one this node has no business reading */
    if (farm_digest_valid(g->digest) && farm_ctxstore_has(self->p.ctx, g->digest, &total) &&
        !s_node_needs_context(self, node, g->digest)) {
        ch.error = "no job of this node needs that context";
        total = 0;
    } else if (farm_ctxstore_read(self->p.ctx, g->digest, g->offset, self->chunk,
                                  FARM_WIRE_CHUNK, &n, &total) < 0) {
        ch.error = (char *)farm_error_last();
    }
    ch.total = total;
    ch.data.data = (uint8_t *)self->chunk;
    ch.data.len = n;
    env.body_case = FARM__ENVELOPE__BODY_CONTEXT_CHUNK;
    env.context_chunk = &ch;
    s_send(self, rid, rid_len, &env);
}

/* farm-agent check's clock question: answered on its own connection, never touching a
 * node's session (the asker need not have said HELLO); budgets in timeserve.h. */
static void s_on_time_request(farm_agents_t *self, const void *rid, size_t rid_len,
                              const char *user, const Farm__TimeRequest *q)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__TimeReply t = FARM__TIME_REPLY__INIT;
    struct timespec now;
    int rc = farm_timeserve_admit(self->timeserve, user, self->p.cfg->secure, q->nonce,
                                  farm_now_ms());

    if (rc == FARM_EINVALID)
        farm_peer_warn("time request from %s ignored: %s", user[0] ? user : "an agent",
                    farm_error_last());
    if (rc < 0)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    t.nonce = q->nonce;
    t.unix_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    env.body_case = FARM__ENVELOPE__BODY_TIME_REPLY;
    env.time_reply = &t;
    s_send(self, rid, rid_len, &env);
    farm_log_debug("answered a time request from %s", user[0] ? user : "an agent");
}

/* What only farmctl sends. */
static int s_client_body(Farm__Envelope__BodyCase body)
{
    switch (body) {
    case FARM__ENVELOPE__BODY_NODES_REQUEST:
    case FARM__ENVELOPE__BODY_BUILDS_REQUEST:
    case FARM__ENVELOPE__BODY_CONTEXT_OFFER:
    case FARM__ENVELOPE__BODY_CONTEXT_CHUNK:
    case FARM__ENVELOPE__BODY_SUBMIT:
    case FARM__ENVELOPE__BODY_CANCEL:
    case FARM__ENVELOPE__BODY_DRAIN:
    case FARM__ENVELOPE__BODY_CACHE_QUERY: return 1;
    default: return 0;
    }
}

static const char *s_wrong_port_reason(farm_agents_t *self)
{
    static char reason[1024];
    snprintf(reason, sizeof reason, "this is the coordinator's agents endpoint (%s), where nodes "
             "connect; farmctl connects to its clients endpoint, coordinator.clients in farm.yaml "
             "(%s): fix --coordinator or $FARM_COORDINATOR",
             self->p.cfg->agents_endpoint ? self->p.cfg->agents_endpoint : "coordinator.agents",
             self->p.cfg->clients_endpoint ? self->p.cfg->clients_endpoint : "not set");
    return reason;
}

/* ------------------------------------------------------------------ messages in */

void farm_agents_message(farm_agents_t *self, const void *rid, size_t rid_len,
                         const char *user, const Farm__Envelope *env)
{
    farm_node_t *node;

    if (env->body_case == FARM__ENVELOPE__BODY_TIME_REQUEST) {
        s_on_time_request(self, rid, rid_len, user, env->time_request);
        return;
    }
    if (env->body_case == FARM__ENVELOPE__BODY_HELLO) {
        /* a node's identity is its key: a HELLO counts only from that key */
        if (self->p.cfg->secure && strcmp(env->hello->name, user) != 0) {
            char reason[512];
            snprintf(reason, sizeof reason, "this connection is authenticated as node %s, "
                     "not %.64s; start the agent with --name %s", user, env->hello->name,
                     user);
            s_reject(self, rid, rid_len, reason, 0);
        } else {
            s_on_hello(self, rid, rid_len, env->hello);
        }
        return;
    }
    if (s_client_body(env->body_case)) {
        /* farmctl pointed at this port (a keyless farm; with keys ZAP refuses a
         * client's key here): say where it should go */
        farm_clients_refuse_via(self->send, self->arg, rid, rid_len, s_wrong_port_reason(self));
        return;
    }
    node = farm_nodes_by_rid(self->p.nodes, rid, rid_len);
    if (node && self->p.cfg->secure && strcmp(node->cfg->name, user) != 0) {
        farm_peer_warn("a connection authenticated as %s used the session of node %s; ignored",
                      user, node->cfg->name);
        node = NULL;
    }
    if (!node || node->state != FARM_NODE_READY) {
        /* e.g. the coordinator restarted: tell the agent to introduce itself again */
        s_reject(self, rid, rid_len, "unknown session; say HELLO again", 1);
        return;
    }
    farm_nodes_seen(self->p.nodes, node, farm_now_ms());
    switch (env->body_case) {
    case FARM__ENVELOPE__BODY_HEARTBEAT:
        node->builder_cache_bytes = env->heartbeat->builder_cache_bytes;
        node->cache_hits = env->heartbeat->cache_hits;
        s_set_health(self, node, env->heartbeat->unhealthy);
        break;
    case FARM__ENVELOPE__BODY_JOB_LOG: s_on_job_log(self, node, env->job_log); break;
    case FARM__ENVELOPE__BODY_JOB_RESULT: s_on_job_result(self, node, env->job_result); break;
    case FARM__ENVELOPE__BODY_CONTEXT_GET:
        s_on_context_get(self, node, rid, rid_len, env->context_get);
        break;
    case FARM__ENVELOPE__BODY_CACHE_REPORT:
        if (self->p.cachecmd)
            farm_cachecmd_report(self->p.cachecmd, node, env->cache_report, farm_now_ms());
        break;
    default:
        farm_peer_warn("node=%s sent an unexpected message (type %d); ignored",
                      node->cfg->name, (int)env->body_case);
    }
}

void farm_agents_beat(farm_agents_t *self, long long now)
{
    long long silence = (long long)self->p.cfg->heartbeat_ms * self->p.cfg->liveness;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Heartbeat hb = FARM__HEARTBEAT__INIT;
    long long gap = farm_nodes_gap_check(self->p.nodes, now, self->p.cfg->heartbeat_ms);

    /* the coordinator's own pause is no job's time either: job_timeout, queue_timeout
     * and the waits are counted without it */
    if (gap > 0)
        farm_scheduler_pause_gap(self->p.sched, gap);

    env.body_case = FARM__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    for (size_t i = 0; i < farm_nodes_count(self->p.nodes); i++) {
        farm_node_t *n = farm_nodes_at(self->p.nodes, i);
        if (n->state != FARM_NODE_READY)
            continue;
        if (now - n->last_seen > silence) {
            char why[128];
            snprintf(why, sizeof why, "silent for %lld ms", now - n->last_seen);
            s_node_lost(self, n, why);
            continue;
        }
        /* after our own pause a node's old connection may be gone while its HELLO on a
         * new one waits unread: that is not a loss */
        if (s_send_node(self, n, &env) == FARM_ENOTFOUND && !gap)
            s_node_lost(self, n, "its connection is gone");
    }
}

void farm_agents_reload(farm_agents_t *self, const farm_config_t *cfg)
{
    self->p.cfg = cfg;
}

void farm_agents_forget(farm_agents_t *self, farm_node_t *node, const char *reason)
{
    if (node->state == FARM_NODE_READY)
        s_reject(self, node->rid, node->rid_len, reason, 0);
    farm_nodes_lose(self->p.nodes, node);
    farm_scheduler_node_down(self->p.sched, node, reason, farm_now_ms());
}
