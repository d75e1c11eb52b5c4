/* SPDX-License-Identifier: Apache-2.0 */
/* farmctl's requests and what a build's client hears. Protobuf is read into plain
 * values at the top of each handler; replies go out through the coordinator's send. */
#include "coordinator/clients.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buildflags.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/log.h"
#include "common/platform.h"
#include "common/text.h"
#include "coordinator/cachecmd.h"
#include "coordinator/history.h"
#include "coordinator/journal.h"
#include "coordinator/peerwarn.h"
#include "coordinator/pushes.h"

struct farm_clients {
    farm_coord_parts_t p;
    farm_clients_send_fn send;
    void *arg;
};

farm_clients_t *farm_clients_new(const farm_coord_parts_t *parts, farm_clients_send_fn send,
                                 void *arg)
{
    farm_clients_t *self = calloc(1, sizeof *self);
    if (!self) {
        farm_error_set(FARM_ERROR, "out of memory");
        return NULL;
    }
    self->p = *parts;
    self->send = send;
    self->arg = arg;
    return self;
}

void farm_clients_destroy(farm_clients_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

static void s_send_via(farm_clients_send_fn send, void *arg, const void *rid, size_t rid_len,
                       Farm__Envelope *env)
{
    env->version = FARM_WIRE_VERSION;
    if (send(arg, rid, rid_len, env) < 0)
        farm_log_debug("send to a peer failed: %s", farm_error_last());
}

static void s_send(farm_clients_t *self, const void *rid, size_t rid_len, Farm__Envelope *env)
{
    s_send_via(self->send, self->arg, rid, rid_len, env);
}

void farm_clients_refuse_via(farm_clients_send_fn send, void *arg, const void *rid,
                             size_t rid_len, const char *reason)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Refused rf = FARM__REFUSED__INIT;
    rf.reason = (char *)reason;
    env.body_case = FARM__ENVELOPE__BODY_REFUSED;
    env.refused = &rf;
    farm_log_info("refused a client: %s", reason);
    s_send_via(send, arg, rid, rid_len, &env);
}

void farm_clients_refuse(farm_clients_t *self, const void *rid, size_t rid_len,
                         const char *reason)
{
    farm_clients_refuse_via(self->send, self->arg, rid, rid_len, reason);
}

void farm_clients_refuse_unenrolled(farm_clients_t *self, const void *rid, size_t rid_len,
                                    const char *key_z85)
{
    char why[512];
    snprintf(why, sizeof why, "key %.40s is no longer enrolled under clients: in %s (farm.yaml "
             "was reloaded without it); ask the farm's admin to enrol it again, or use the key "
             "that is enrolled", key_z85, self->p.cfg->path);
    farm_clients_refuse(self, rid, rid_len, why);
}

int farm_client_sees(const farm_client_t *c, const farm_build_t *b)
{
    return c->role >= FARM_ROLE_ADMIN || farm_build_owned_by(b, c->rid, c->rid_len, c->name);
}

_Static_assert((int)FARM_EVENT_QUEUED == (int)FARM__EVENT_KIND__EVENT_QUEUED &&
                   (int)FARM_EVENT_CANCEL == (int)FARM__EVENT_KIND__EVENT_CANCEL &&
                   (int)FARM_EVENT_LOG == (int)FARM__EVENT_KIND__EVENT_LOG,
               "builds.h event kinds follow farm.proto");

/* ------------------------------------------------------------------ what a build's client hears */

/* Sends env to every follower of b; one whose connection is gone stops following (the
 * build goes on and its result is still pushed). */
static void s_send_followers(farm_clients_t *self, farm_build_t *b, Farm__Envelope *env)
{
    env->version = FARM_WIRE_VERSION;
    for (size_t i = b->n_followers; i-- > 0;) {
        farm_follower_t *f = &b->followers[i];
        if (self->send(self->arg, f->rid, f->rid_len, env) < 0) {
            farm_log_warn("build=%s a follower is gone (%s); continuing without it", b->id,
                          farm_error_last());
            farm_build_unfollow(b, f->rid, f->rid_len);
        }
    }
}

void farm_clients_event(farm_clients_t *self, farm_build_t *b, const farm_job_t *job,
                        farm_event_kind_t kind, const char *msg)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Event ev = FARM__EVENT__INIT;

    /* a build's routine per-job steps are debug lines (at thousands of jobs a second
     * they would cost more than the scheduling); what a person acts on stays info */
    if (kind != FARM_EVENT_LOG)
        farm_log(kind == FARM_EVENT_QUEUED || kind == FARM_EVENT_DISPATCHED ||
                         kind == FARM_EVENT_PUSHED ? FARM_LOG_DEBUG : FARM_LOG_INFO,
                 "build=%s%s%s %s: %s", b->id, job ? " platform=" : "", job ? job->platform : "",
                 farm_wire_event_kind_name((Farm__EventKind)kind), msg);
    if (!b->n_followers)
        return;
    ev.build_id = b->id;
    ev.kind = (Farm__EventKind)kind;
    ev.platform = job ? (char *)job->platform : "";
    ev.node = job ? (char *)job->node_name : "";
    ev.attempt = job ? job->attempt : 0;
    ev.message = (char *)msg;
    env.body_case = FARM__ENVELOPE__BODY_EVENT;
    env.event = &ev;
    s_send_followers(self, b, &env);
}

/* The BuildDone of a DONE build b: to rid, or (rid NULL) to all its followers. */
static void s_send_done(farm_clients_t *self, farm_build_t *b, const void *rid, size_t rid_len)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__BuildDone done = FARM__BUILD_DONE__INIT;
    Farm__Descriptor *descs = calloc(b->n_jobs + 1, sizeof *descs);
    Farm__Descriptor **dptrs = calloc(b->n_jobs + 1, sizeof *dptrs);
    char (*plats)[FARM_PLATFORM_STRLEN] = calloc(b->n_jobs + 1, sizeof *plats);
    char repo[sizeof b->registry + sizeof b->repository + 1];
    farm_children_extra_t x = {.nodes = calloc(b->n_jobs + 1, sizeof *x.nodes),
                               .warm = calloc(b->n_jobs + 1, sizeof *x.warm),
                               .cache_hits = calloc(b->n_jobs + 1, sizeof *x.cache_hits),
                               .steps = calloc(b->n_jobs + 1, sizeof *x.steps)};
    Farm__TagKept *kept = calloc(b->n_tags + 1, sizeof *kept);
    Farm__TagKept **kptrs = calloc(b->n_tags + 1, sizeof *kptrs);
    char (*repos)[sizeof repo] = calloc(b->n_targets + 1, sizeof *repos);
    char **rptrs = calloc(b->n_targets + 1, sizeof *rptrs);
    Farm__Descriptor *kdesc = calloc(b->n_amend_kept + 1, sizeof *kdesc);
    Farm__Descriptor **kdptr = calloc(b->n_amend_kept + 1, sizeof *kdptr);
    char (*kplat)[FARM_PLATFORM_STRLEN] = calloc(b->n_amend_kept + 1, sizeof *kplat);
    size_t n = 0;

    snprintf(repo, sizeof repo, "%s/%s", b->registry, b->repository);
    /* every repository and each tag in full: the tags may name several (targets.h) */
    for (size_t k = 0; repos && rptrs && k < b->n_targets; k++) {
        snprintf(repos[k], sizeof repos[k], "%s/%s", b->targets[k].registry,
                 b->targets[k].repository);
        rptrs[k] = repos[k];
        done.n_repositories++;
    }
    done.repositories = rptrs;
    /* --amend: the images kept from the index amended */
    for (size_t i = 0; kdesc && kdptr && kplat && i < b->n_amend_kept; i++) {
        farm__descriptor__init(&kdesc[i]);
        kdesc[i].media_type = b->amend_kept[i].media_type;
        kdesc[i].digest = b->amend_kept[i].digest;
        kdesc[i].size = b->amend_kept[i].size;
        farm_platform_format(kplat[i], sizeof kplat[i], &b->amend_kept[i].platform);
        kdesc[i].platform = kplat[i];
        kdptr[done.n_kept_children++] = &kdesc[i];
    }
    done.kept_children = kdptr;
    /* one repository: the tags' names say it all (and farmctl names them with its own) */
    done.n_tag_refs = b->tag_refs && b->n_targets > 1 ? b->n_tags : 0;
    done.tag_refs = b->tag_refs;
    done.build_id = b->id;
    done.ok = b->ok;
    done.error = b->error ? b->error : "";
    done.index_digest = b->index_digest;
    done.index_size = b->index_size;
    done.n_tags = b->n_tags;
    done.tags = b->tags;
    done.repository = repo;
    done.stitch_ms = b->ok ? (uint64_t)(b->done_at - b->last_result_at) : 0;
    if (!descs || !dptrs || !plats || !x.nodes || !x.warm || !x.cache_hits || !x.steps ||
        !kept || !kptrs) {
        /* still answer: the client must not wait forever */
        done.ok = 0;
        done.error = "coordinator out of memory while reporting the result";
        goto send;
    }
    n = farm_pushes_children(descs, dptrs, plats, b, &x);
    done.n_children = n;
    done.children = dptrs;
    done.n_child_nodes = n;
    done.child_nodes = x.nodes;
    done.n_child_warm = n;
    done.child_warm = x.warm;
    done.n_child_cache_hits = n;
    done.child_cache_hits = x.cache_hits;
    done.n_child_steps = n;
    done.child_steps = x.steps;
    /* the tags a build submitted later kept (coordinator/tagorder.h) */
    for (size_t i = 0; b->ok && b->kept_by && i < b->n_tags; i++) {
        if (!b->kept_by[i][0])
            continue;
        farm__tag_kept__init(&kept[done.n_tags_kept]);
        kept[done.n_tags_kept].tag = b->tags[i];
        kept[done.n_tags_kept].build_id = b->kept_by[i];
        kept[done.n_tags_kept].ref = b->tag_refs ? b->tag_refs[i] : "";
        kptrs[done.n_tags_kept] = &kept[done.n_tags_kept];
        done.n_tags_kept++;
    }
    done.tags_kept = kptrs;
    if (b->ok && b->signed_info.n_identities) {
        done.n_signed_identities = b->signed_info.n_identities;
        done.signed_identities = b->signed_info.identities;
        done.signing_key_id = b->signed_info.key_id;
        done.signed_manifests = b->signed_info.manifests;
        done.sign_ms = (uint64_t)b->signed_info.ms;
    }
send:
    env.body_case = FARM__ENVELOPE__BODY_BUILD_DONE;
    env.build_done = &done;
    if (rid)
        s_send(self, rid, rid_len, &env);
    else
        s_send_followers(self, b, &env);
    free(descs);
    free(dptrs);
    free(plats);
    free(x.nodes);
    free(x.warm);
    free(x.cache_hits);
    free(x.steps);
    free(kept);
    free(kptrs);
    free(repos);
    free(rptrs);
    free(kdesc);
    free(kdptr);
    free(kplat);
}

void farm_clients_done(farm_clients_t *self, farm_build_t *b, int ok, const char *index_digest,
                       uint64_t index_size, const char *error)
{
    /* kept for a follower that comes after the end */
    b->ok = ok;
    snprintf(b->index_digest, sizeof b->index_digest, "%s", index_digest ? index_digest : "");
    b->index_size = index_size;
    free(b->error);
    b->error = !ok ? strdup(error ? error : "failed") : NULL;
    if (!ok && !b->error)
        farm_log_warn("build=%s out of memory keeping its error for later followers", b->id);
    s_send_done(self, b, NULL, 0);
}

/* ------------------------------------------------------------------ requests */

static void s_context_status(farm_clients_t *self, const void *rid, size_t rid_len,
                             const char *digest, const farm_ctx_status_t *st)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__ContextStatus cs = FARM__CONTEXT_STATUS__INIT;
    cs.digest = (char *)digest;
    cs.have = st->have;
    cs.offset = st->offset;
    cs.error = (char *)st->error;
    cs.retry = st->error[0] && st->retry;
    env.body_case = FARM__ENVELOPE__BODY_CONTEXT_STATUS;
    env.context_status = &cs;
    s_send(self, rid, rid_len, &env);
}

static void s_on_submit(farm_clients_t *self, const farm_client_t *c, const Farm__Submit *s)
{
    const void *rid = c->rid;
    size_t rid_len = c->rid_len;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Accepted acc = FARM__ACCEPTED__INIT;
    const char **keys = NULL, **values = NULL;
    farm_cred_t *creds = NULL;
    farm_buildflags_t flags = {0};
    char reason[2048];
    farm_build_t *b = NULL;
    uint64_t size = 0;
    long long now = farm_now_ms();
    int fresh = 0;
    farm_submit_t sub = {.tags = s->tags, .n_tags = s->n_tags, .platforms = s->platforms,
                         .n_platforms = s->n_platforms, .dockerfile = s->dockerfile,
                         .n_args = s->n_build_args, .context_digest = s->context_digest,
                         .allow_partial = s->allow_partial, .network = s->network,
                         .target_plain_http = s->target_plain_http,
                         .client = rid,
                         .client_len = rid_len, .owner = c->name,
                         .token = s->submit_token.data, .token_len = s->submit_token.len,
                         .amend = s->amend};

    if (s->submit_token.len > FARM_SUBMIT_TOKEN_MAX) {
        snprintf(reason, sizeof reason, "submit_token is %zu bytes; at most %d",
                 s->submit_token.len, FARM_SUBMIT_TOKEN_MAX);
        farm_clients_refuse(self, rid, rid_len, reason);
        return;
    }
    if (s->n_build_args > FARM_BUILD_ARGS_MAX) {
        snprintf(reason, sizeof reason, "too many build args (%zu; at most %d)",
                 s->n_build_args, FARM_BUILD_ARGS_MAX);
        farm_clients_refuse(self, rid, rid_len, reason);
        return;
    }
    keys = calloc(s->n_build_args + 1, sizeof *keys);
    values = calloc(s->n_build_args + 1, sizeof *values);
    if (!keys || !values) {
        farm_clients_refuse(self, rid, rid_len, "coordinator out of memory");
        goto done;
    }
    for (size_t i = 0; i < s->n_build_args; i++) {
        keys[i] = s->build_args[i]->key;
        values[i] = s->build_args[i]->value;
    }
    sub.arg_keys = keys;
    sub.arg_values = values;
    if (s->n_credentials > FARM_CREDENTIALS_MAX) {
        snprintf(reason, sizeof reason, "too many registry credentials (%zu; at most %d)",
                 s->n_credentials, FARM_CREDENTIALS_MAX);
        farm_clients_refuse(self, rid, rid_len, reason);
        goto done;
    }
    if (s->n_credentials && !(creds = calloc(s->n_credentials, sizeof *creds))) {
        farm_clients_refuse(self, rid, rid_len, "coordinator out of memory");
        goto done;
    }
    for (size_t i = 0; i < s->n_credentials; i++) {
        creds[i].registry = s->credentials[i]->registry;
        creds[i].username = s->credentials[i]->username;
        creds[i].secret = s->credentials[i]->secret;
        creds[i].identity_token = s->credentials[i]->identity_token;
    }
    sub.creds = creds;
    sub.n_creds = s->n_credentials;
    /* a checked copy, bounded before anything is copied (a hostile client) */
    if (farm_buildflags_from_wire(&flags, s->flags) < 0) {
        snprintf(reason, sizeof reason, "build flags: %s", farm_error_last());
        farm_clients_refuse(self, rid, rid_len, reason);
        goto done;
    }
    sub.flags = &flags;
    if (farm_digest_valid(s->context_digest))
        sub.context_stored = farm_ctxstore_has_for(self->p.ctx, s->context_digest, c->key,
                                                   &size);
    sub.context_size = size;
    /* the same Submit again (its farmctl lost the coordinator before the answer, perhaps
     * to a restart): the build it made, never a second one */
    b = farm_builds_by_token(self->p.builds, s->submit_token.data, s->submit_token.len);
    if (b && (!b->owner[0] || strcmp(b->owner, c->name) == 0)) {
        if (b->awaiting_submitter &&
            farm_builds_submitter_back(self->p.builds, b, creds, s->n_credentials, &flags, now,
                                       reason, sizeof reason) < 0) {
            farm_clients_refuse(self, rid, rid_len, reason);
            goto done;
        }
        farm_build_follow(b, NULL, rid, rid_len);
        farm_log_info("build=%s: its Submit came again (its farmctl reconnected); answered "
                      "with this build", b->id);
    } else if (farm_builds_submit(self->p.builds, &b, &sub, now, reason, sizeof reason) < 0) {
        farm_clients_refuse(self, rid, rid_len, reason);
        goto done;
    } else {
        fresh = 1; /* started below, once the client was told */
    }
    farm_ctxstore_touch(self->p.ctx, b->context_digest);
    acc.build_id = b->id;
    acc.platforms = calloc(b->n_jobs + 1, sizeof *acc.platforms);
    for (size_t i = 0; acc.platforms && i < b->n_jobs; i++)
        acc.platforms[acc.n_platforms++] = b->jobs[i].platform;
    acc.heartbeat_ms = (uint32_t)self->p.cfg->heartbeat_ms;
    env.body_case = FARM__ENVELOPE__BODY_ACCEPTED;
    env.accepted = &acc;
    s_send(self, rid, rid_len, &env);
    free(acc.platforms);
    if (fresh)
        farm_builds_start(self->p.builds, b, now);
    else if (b->state == FARM_BUILD_DONE)
        s_send_done(self, b, rid, rid_len);
done:
    free(creds); /* borrowed pointers: the envelope's strings are wiped with it */
    farm_buildflags_clear(&flags); /* a refused build's secrets (an accepted one took them) */
    free(keys);
    free(values);
}

static void s_on_nodes(farm_clients_t *self, const farm_client_t *c)
{
    static char *states[] = {"unknown", "ready", "lost"};
    const void *rid = c->rid;
    size_t rid_len = c->rid_len;
    size_t n_nodes = farm_nodes_count(self->p.nodes);
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__NodesReply rep = FARM__NODES_REPLY__INIT;
    Farm__NodeInfo *infos = calloc(n_nodes + 1, sizeof *infos);
    Farm__NodeInfo **ptrs = calloc(n_nodes + 1, sizeof *ptrs);
    farm_job_t **jobs = NULL;
    size_t shown = 0;

    if (!infos || !ptrs)
        goto send; /* an empty answer rather than none */
    for (size_t i = 0; i < n_nodes; i++) {
        farm_node_t *n = farm_nodes_at(self->p.nodes, i);
        Farm__NodeInfo *ni = &infos[i];
        size_t nj = farm_scheduler_node_jobs(self->p.sched, n, NULL, 0);
        if (n->removed && n->state != FARM_NODE_READY)
            continue; /* removed from farm.yaml and gone: forgotten */
        farm__node_info__init(ni);
        ni->name = n->cfg->name;
        /* removed: a reload dropped it from farm.yaml; it finishes what it runs */
        ni->state = n->removed && n->state == FARM_NODE_READY ? "removed"
                    : farm_scheduler_node_drained(self->p.sched, n) ? "draining"
                    : n->state == FARM_NODE_READY && n->unhealthy[0] ? "unhealthy"
                                                                    : states[n->state];
        ni->cause = n->unhealthy;
        ni->slots = (uint32_t)n->slots;
        ni->used = (uint32_t)farm_scheduler_node_used(self->p.sched, n);
        ni->builder_cache_bytes = n->builder_cache_bytes;
        ni->cache_hits = n->cache_hits;
        ni->version = n->version;
        /* platforms: what farm.yaml maps to this node, native and emulated */
        ni->platforms = calloc(self->p.cfg->n_platforms + 1, sizeof *ni->platforms);
        ni->emulated = calloc(self->p.cfg->n_platforms + 1, sizeof *ni->emulated);
        for (size_t p = 0; ni->platforms && ni->emulated && p < self->p.cfg->n_platforms; p++) {
            const farm_config_platform_t *cp = &self->p.cfg->platforms[p];
            for (size_t k = 0; k < cp->n_native; k++)
                if (strcmp(cp->native[k], n->cfg->name) == 0)
                    ni->platforms[ni->n_platforms++] = cp->platform;
            for (size_t k = 0; k < cp->n_emulated; k++)
                if (strcmp(cp->emulated[k], n->cfg->name) == 0)
                    ni->emulated[ni->n_emulated++] = cp->platform;
        }
        free(jobs);
        jobs = calloc(nj + 1, sizeof *jobs);
        ni->jobs = calloc(nj + 1, sizeof *ni->jobs);
        ni->job_warm = calloc(nj + 1, sizeof *ni->job_warm);
        if (jobs && ni->jobs && ni->job_warm) {
            farm_scheduler_node_jobs(self->p.sched, n, jobs, nj);
            /* other clients' job ids are theirs: only an admin sees every one */
            for (size_t j = 0; j < nj; j++)
                if (farm_client_sees(c, jobs[j]->build)) {
                    ni->job_warm[ni->n_jobs] = jobs[j]->warm;
                    ni->jobs[ni->n_jobs++] = jobs[j]->id;
                }
            ni->n_job_warm = ni->n_jobs;
        }
        ptrs[shown++] = ni;
    }
    rep.n_nodes = shown;
    rep.nodes = ptrs;
send:
    env.body_case = FARM__ENVELOPE__BODY_NODES_REPLY;
    env.nodes_reply = &rep;
    s_send(self, rid, rid_len, &env);
    for (size_t i = 0; infos && i < n_nodes; i++) {
        free(infos[i].platforms);
        free(infos[i].emulated);
        free(infos[i].jobs);
        free(infos[i].job_warm);
    }
    free(jobs);
    free(infos);
    free(ptrs);
}

/* The role a message needs, and what it is called in a refusal. */
farm_role_t farm_clients_needs(Farm__Envelope__BodyCase body, const char **what)
{
    switch (body) {
    case FARM__ENVELOPE__BODY_NODES_REQUEST: *what = "list nodes"; return FARM_ROLE_READ;
    case FARM__ENVELOPE__BODY_BUILDS_REQUEST: *what = "list builds"; return FARM_ROLE_READ;
    case FARM__ENVELOPE__BODY_CONTEXT_OFFER:
    case FARM__ENVELOPE__BODY_CONTEXT_CHUNK:
    case FARM__ENVELOPE__BODY_SUBMIT: *what = "submit"; return FARM_ROLE_SUBMIT;
    case FARM__ENVELOPE__BODY_CANCEL: *what = "cancel builds"; return FARM_ROLE_SUBMIT;
    case FARM__ENVELOPE__BODY_FOLLOW: *what = "follow builds"; return FARM_ROLE_READ;
    case FARM__ENVELOPE__BODY_LOGINS: *what = "send a build's logins"; return FARM_ROLE_SUBMIT;
    case FARM__ENVELOPE__BODY_DRAIN: *what = "drain nodes"; return FARM_ROLE_ADMIN;
    /* which builds: farm_history_may_list and farm_history_may_read */
    case FARM__ENVELOPE__BODY_HISTORY_REQUEST: *what = "list build history"; return FARM_ROLE_READ;
    case FARM__ENVELOPE__BODY_HISTORY_GET: *what = "inspect builds"; return FARM_ROLE_READ;
    case FARM__ENVELOPE__BODY_LOGS_REQUEST: *what = "read build logs"; return FARM_ROLE_READ;
    case FARM__ENVELOPE__BODY_CACHE_QUERY:
        *what = "list or prune node caches (farmctl du, prune)";
        return FARM_ROLE_ADMIN;
    default: *what = "do this"; return FARM_ROLE_NONE;
    }
}

static void s_on_drain(farm_clients_t *self, const farm_client_t *c, const Farm__Drain *d)
{
    farm_node_t *n = farm_nodes_by_name(self->p.nodes, d->node);
    char reason[256];

    if (!n) {
        snprintf(reason, sizeof reason, "no node \"%.64s\" in %s", d->node, self->p.cfg->path);
        farm_clients_refuse(self, c->rid, c->rid_len, reason);
        return;
    }
    farm_scheduler_node_drain(self->p.sched, n, !d->undo);
    farm_log_info("node=%s %s by %s", n->cfg->name, d->undo ? "back in service" : "draining",
                  c->name[0] ? c->name : "a local client");
    s_on_nodes(self, c);
}

typedef struct {
    const farm_client_t *client;
    Farm__BuildInfo *infos;
    Farm__BuildInfo **ptrs;
    char **texts; /* every string made here, freed after the send */
    size_t n, cap, n_texts, cap_texts;
    long long now;
} builds_list_t;

static char *s_dup_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *s_dup_fmt(const char *fmt, ...)
{
    char *out = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&out, fmt, ap) < 0)
        out = NULL;
    va_end(ap);
    return out;
}

static char *s_keep(builds_list_t *l, char *text)
{
    if (!text || l->n_texts == l->cap_texts)
        return free(text), (char *)"";
    return l->texts[l->n_texts++] = text;
}

static void s_list_build(void *arg, farm_build_t *b)
{
    static const char *jstates[] = {"queued", "running", "done", "failed", "cancelled"};
    builds_list_t *l = arg;
    Farm__BuildInfo *bi;

    if (l->n == l->cap || !farm_client_sees(l->client, b))
        return;
    bi = &l->infos[l->n];
    farm__build_info__init(bi);
    bi->build_id = b->id;
    bi->owner = b->owner;
    bi->repository = s_keep(l, s_dup_fmt("%s/%s", b->registry, b->repository));
    /* waiting: restored after a restart, for its submitter to send its logins again */
    bi->state = b->state == FARM_BUILD_STITCHING ? "stitching"
                : b->awaiting_submitter          ? "waiting"
                                                 : "running";
    bi->age_ms = (uint64_t)(l->now - b->created);
    bi->jobs = calloc(b->n_jobs + 1, sizeof *bi->jobs);
    for (size_t i = 0; bi->jobs && i < b->n_jobs; i++) {
        const farm_job_t *j = &b->jobs[i];
        bi->jobs[bi->n_jobs++] = s_keep(l, s_dup_fmt("%s %s %s", j->platform,
                                                            jstates[j->state],
                                                            j->node_name[0] ? j->node_name : "-"));
    }
    l->ptrs[l->n++] = bi;
}

static void s_on_builds(farm_clients_t *self, const farm_client_t *c)
{
    size_t cap = farm_builds_active(self->p.builds);
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__BuildsReply rep = FARM__BUILDS_REPLY__INIT;
    builds_list_t l = {.client = c, .cap = cap, .now = farm_now_ms()};

    l.infos = calloc(cap + 1, sizeof *l.infos);
    l.ptrs = calloc(cap + 1, sizeof *l.ptrs);
    l.cap_texts = cap * (FARM_PLATFORMS_MAX + 1);
    l.texts = calloc(l.cap_texts + 1, sizeof *l.texts);
    if (l.infos && l.ptrs && l.texts)
        farm_builds_each_active(self->p.builds, s_list_build, &l);
    rep.n_builds = l.n;
    rep.builds = l.ptrs;
    env.body_case = FARM__ENVELOPE__BODY_BUILDS_REPLY;
    env.builds_reply = &rep;
    s_send(self, c->rid, c->rid_len, &env);
    for (size_t i = 0; i < l.n; i++)
        free(l.infos[i].jobs);
    for (size_t i = 0; i < l.n_texts; i++)
        free(l.texts[i]);
    free(l.texts);
    free(l.infos);
    free(l.ptrs);
}

/* ------------------------------------------------------------------ following a build */

int farm_client_is_submitter(const farm_client_t *c, const farm_build_t *b, const void *token,
                             size_t token_len)
{
    if (b->owner[0] && strcmp(b->owner, c->name) != 0)
        return 0;
    if (b->token_digest[0])
        return farm_build_token_is(b, token, token_len);
    /* a build whose token was not kept: a submit process of its owner (keys), or of
     * this machine (a keyless farm serves loopback only) */
    return token_len > 0;
}

/* A build the coordinator no longer holds in memory but its journal has, finished:
 * BuildDone from the record. 1 when answered. */
static int s_follow_journal(farm_clients_t *self, const farm_client_t *c, const char *id)
{
    farm_journal_build_t jb;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__BuildDone done = FARM__BUILD_DONE__INIT;
    char repo[FARM_REGISTRY_HOST_MAX + 1 + 256 + 1];
    int answered = 0;

    if (!self->p.journal || farm_journal_get_build(self->p.journal, &jb, id) < 0)
        return 0;
    if (jb.state == FARM_JOURNAL_BUILD_DONE &&
        (c->role >= FARM_ROLE_ADMIN || !jb.owner[0] || strcmp(jb.owner, c->name) == 0)) {
        snprintf(repo, sizeof repo, "%s/%s", jb.registry, jb.repository);
        done.build_id = jb.id;
        done.ok = jb.ok;
        done.error = jb.reason ? jb.reason : "";
        done.index_digest = jb.index_digest;
        done.index_size = jb.index_size;
        done.n_tags = jb.n_tags;
        done.tags = jb.tags;
        done.repository = repo;
        /* tags in several repositories: each in full (the repositories follow from them) */
        if (jb.n_tag_refs == jb.n_tags) {
            done.n_tag_refs = jb.n_tag_refs;
            done.tag_refs = jb.tag_refs;
        }
        env.body_case = FARM__ENVELOPE__BODY_BUILD_DONE;
        env.build_done = &done;
        s_send(self, c->rid, c->rid_len, &env);
        answered = 1;
    }
    farm_journal_build_clear(&jb);
    return answered;
}

static void s_following(farm_clients_t *self, const farm_client_t *c, farm_build_t *b,
                        int send_logins)
{
    static const char *jstates[] = {"queued", "running", "done", "failed", "cancelled"};
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Following fo = FARM__FOLLOWING__INIT;
    char repo[sizeof b->registry + sizeof b->repository + 1];
    char jobs[FARM_PLATFORMS_MAX][FARM_PLATFORM_STRLEN + FARM_NAME_MAX + 16];
    char *jptrs[FARM_PLATFORMS_MAX], waiting[1024] = "";
    int queued = 1;

    snprintf(repo, sizeof repo, "%s/%s", b->registry, b->repository);
    for (size_t i = 0; i < b->n_jobs && i < FARM_PLATFORMS_MAX; i++) {
        const farm_job_t *j = &b->jobs[i];
        snprintf(jobs[i], sizeof jobs[i], "%s %s %s", j->platform, jstates[j->state],
                 j->node_name[0] ? j->node_name : "-");
        jptrs[fo.n_jobs++] = jobs[i];
        queued &= j->state == FARM_JOB_QUEUED;
    }
    if (b->awaiting_submitter && !send_logins)
        snprintf(waiting, sizeof waiting, "build %s waits for its submitter (the farmctl submit "
                 "that sent it) to send its registry logins and secrets again: they were lost "
                 "with a coordinator restart; it fails if the submitter does not come back "
                 "within coordinator.queue_timeout", b->id);
    fo.build_id = b->id;
    fo.state = b->state == FARM_BUILD_STITCHING ? "stitching" : queued ? "queued" : "running";
    fo.jobs = jptrs;
    fo.repository = repo;
    fo.heartbeat_ms = (uint32_t)self->p.cfg->heartbeat_ms;
    fo.send_logins = send_logins;
    fo.waiting = waiting;
    env.body_case = FARM__ENVELOPE__BODY_FOLLOWING;
    env.following = &fo;
    s_send(self, c->rid, c->rid_len, &env);
}

/* The build c may follow, or NULL once answered: refused (unknown, not c's), or the
 * journal's BuildDone of a build finished and gone from memory. */
static farm_build_t *s_followed(farm_clients_t *self, const farm_client_t *c, const char *id)
{
    farm_build_t *b = farm_builds_get(self->p.builds, id);
    char reason[512];

    if (!b && s_follow_journal(self, c, id))
        return NULL;
    if (!b) {
        char shown[FARM_ID_MAX + 1]; /* the client's words, in the log too: inert */
        farm_text_inert(shown, sizeof shown, id);
        snprintf(reason, sizeof reason, "no build %s on this coordinator: it was pruned, or "
                 "submitted to another farm", shown);
        farm_clients_refuse(self, c->rid, c->rid_len, reason);
        return NULL;
    }
    if (!farm_client_sees(c, b)) {
        /* the one rule of `farmctl builds` and cancel: its owner's, or an admin's */
        snprintf(reason, sizeof reason, "build %s belongs to client %s; client %s may follow "
                 "only its own builds (an admin may follow any): ask %s or an admin", b->id,
                 b->owner, c->name, b->owner);
        farm_peer_warn("%s", reason);
        farm_clients_refuse(self, c->rid, c->rid_len, reason);
        return NULL;
    }
    return b;
}

static void s_on_follow(farm_clients_t *self, const farm_client_t *c, const Farm__Follow *f)
{
    farm_follower_t old;
    farm_build_t *b = s_followed(self, c, f->build_id);
    char reason[512];

    if (!b)
        return;
    if (b->state == FARM_BUILD_DONE) {
        s_send_done(self, b, c->rid, c->rid_len);
        return;
    }
    if (farm_build_follow(b, &old, c->rid, c->rid_len)) {
        snprintf(reason, sizeof reason, "build %s has %d followers; this one, the oldest, no "
                 "longer hears it: `farmctl wait %s` follows it again", b->id, FARM_FOLLOWERS_MAX,
                 b->id);
        farm_clients_refuse(self, old.rid, old.rid_len, reason);
    }
    farm_log_info("build=%s followed by %s (%zu follower(s))", b->id,
                  c->name[0] ? c->name : "a local client", b->n_followers);
    s_following(self, c, b,
                b->awaiting_submitter &&
                    farm_client_is_submitter(c, b, f->submit_token.data, f->submit_token.len));
}

static void s_on_logins(farm_clients_t *self, const farm_client_t *c, const Farm__Logins *l)
{
    Farm__BuildFlags only = FARM__BUILD_FLAGS__INIT;
    farm_buildflags_t secrets = {0};
    farm_cred_t *creds = NULL;
    farm_build_t *b = s_followed(self, c, l->build_id);
    char reason[1024];

    if (!b)
        return;
    if (!farm_client_is_submitter(c, b, l->submit_token.data, l->submit_token.len)) {
        snprintf(reason, sizeof reason, "only the farmctl submit that sent build %s may send "
                 "its registry logins and secrets", b->id);
        farm_clients_refuse(self, c->rid, c->rid_len, reason);
        return;
    }
    if (!b->awaiting_submitter) { /* sent twice, or the build ended meanwhile */
        if (b->state == FARM_BUILD_DONE)
            s_send_done(self, b, c->rid, c->rid_len);
        else
            s_following(self, c, b, 0);
        return;
    }
    if (l->n_credentials > FARM_CREDENTIALS_MAX) {
        snprintf(reason, sizeof reason, "too many registry credentials (%zu; at most %d)",
                 l->n_credentials, FARM_CREDENTIALS_MAX);
        farm_clients_refuse(self, c->rid, c->rid_len, reason);
        return;
    }
    only.n_secrets = l->n_secrets;
    only.secrets = l->secrets;
    if (farm_buildflags_from_wire(&secrets, &only) < 0) {
        snprintf(reason, sizeof reason, "build %s: secrets: %s", b->id, farm_error_last());
        farm_clients_refuse(self, c->rid, c->rid_len, reason);
        return;
    }
    if (l->n_credentials && !(creds = calloc(l->n_credentials, sizeof *creds))) {
        farm_clients_refuse(self, c->rid, c->rid_len, "coordinator out of memory");
        goto done;
    }
    for (size_t i = 0; i < l->n_credentials; i++) {
        creds[i].registry = l->credentials[i]->registry;
        creds[i].username = l->credentials[i]->username;
        creds[i].secret = l->credentials[i]->secret;
        creds[i].identity_token = l->credentials[i]->identity_token;
    }
    if (farm_builds_submitter_back(self->p.builds, b, creds, l->n_credentials, &secrets,
                                   farm_now_ms(), reason, sizeof reason) < 0) {
        farm_clients_refuse(self, c->rid, c->rid_len, reason);
        goto done;
    }
    farm_build_follow(b, NULL, c->rid, c->rid_len);
    if (b->state == FARM_BUILD_DONE) /* a job could not be queued */
        s_send_done(self, b, c->rid, c->rid_len);
    else
        s_following(self, c, b, 0);
done:
    free(creds); /* borrowed pointers: the envelope's strings are wiped with it */
    farm_buildflags_clear(&secrets);
}

/* ------------------------------------------------------------------ build records */

static farm_history_caller_t s_caller(const farm_client_t *c)
{
    return (farm_history_caller_t){c->name, c->role};
}

static void s_on_history(farm_clients_t *self, const farm_client_t *c,
                         const Farm__HistoryRequest *req)
{
    farm_history_caller_t caller = s_caller(c);
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__HistoryReply *rep = farm_history_list(&self->p, &caller, req);

    if (!rep) {
        farm_clients_refuse(self, c->rid, c->rid_len, farm_error_last());
        return;
    }
    env.body_case = FARM__ENVELOPE__BODY_HISTORY_REPLY;
    env.history_reply = rep;
    s_send(self, c->rid, c->rid_len, &env);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
}

static void s_on_history_get(farm_clients_t *self, const farm_client_t *c,
                             const Farm__HistoryGet *req)
{
    farm_history_caller_t caller = s_caller(c);
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__HistoryRecord *rec = farm_history_get(&self->p, &caller, req);

    if (!rec) {
        farm_clients_refuse(self, c->rid, c->rid_len, farm_error_last());
        return;
    }
    env.body_case = FARM__ENVELOPE__BODY_HISTORY_RECORD;
    env.history_record = rec;
    s_send(self, c->rid, c->rid_len, &env);
    protobuf_c_message_free_unpacked(&rec->base, NULL);
}

/* The kept lines, then (follow, the build still running) its events as to a follower: in
 * one turn, so that no line falls between the two. */
static void s_on_logs(farm_clients_t *self, const farm_client_t *c, const Farm__LogsRequest *req)
{
    farm_history_caller_t caller = s_caller(c);
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    size_t n = 0;
    Farm__LogsReply **reps = farm_history_logs(&n, &self->p, &caller, req, 0);
    farm_build_t *b;
    farm_follower_t old;

    if (!reps || !n) {
        farm_clients_refuse(self, c->rid, c->rid_len, reps ? "no log" : farm_error_last());
        farm_history_logs_free(reps, n);
        return;
    }
    b = req->follow ? farm_builds_get(self->p.builds, reps[0]->build_id) : NULL;
    if (b && b->state != FARM_BUILD_DONE) {
        reps[n - 1]->following = 1;
        if (farm_build_follow(b, &old, c->rid, c->rid_len)) {
            char reason[512];
            snprintf(reason, sizeof reason, "build %s has %d followers; this one, the oldest, "
                     "no longer hears it: `farmctl logs -f %s` follows it again", b->id,
                     FARM_FOLLOWERS_MAX, b->id);
            farm_clients_refuse(self, old.rid, old.rid_len, reason);
        }
    }
    env.body_case = FARM__ENVELOPE__BODY_LOGS_REPLY;
    for (size_t i = 0; i < n; i++) {
        env.logs_reply = reps[i];
        s_send(self, c->rid, c->rid_len, &env);
    }
    farm_history_logs_free(reps, n);
}

/* farmctl cancel BUILD: answered. (The submit's Ctrl-C is not: its build's end is.) */
static void s_on_cancel(farm_clients_t *self, const farm_client_t *c, const Farm__Cancel *m)
{
    farm_history_caller_t caller = s_caller(c);
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__CancelReply cr = FARM__CANCEL_REPLY__INIT;
    char id[FARM_ID_MAX + 1], msg[1024], reason[1024];
    farm_build_t *b;
    int rc, was_done;

    if (!m->reply) {
        farm_builds_cancel(self->p.builds, m->build_id, c->rid, c->rid_len, c->name,
                           c->role >= FARM_ROLE_ADMIN, farm_now_ms());
        return;
    }
    if (farm_history_resolve(id, &self->p, &caller, m->build_id) < 0 &&
        !(m->build_id[0] != '^' && farm_builds_get(self->p.builds, m->build_id))) {
        farm_clients_refuse(self, c->rid, c->rid_len, farm_error_last());
        return;
    }
    if (m->build_id[0] != '^')
        snprintf(id, sizeof id, "%s", m->build_id);
    b = farm_builds_get(self->p.builds, id);
    was_done = b && b->state == FARM_BUILD_DONE;
    rc = farm_builds_cancel(self->p.builds, id, c->rid, c->rid_len, c->name,
                            c->role >= FARM_ROLE_ADMIN, farm_now_ms());
    if (rc == FARM_EAUTH) {
        snprintf(reason, sizeof reason, "build %s belongs to client %s; client %s (role %s) may "
                 "cancel only its own builds, an admin any: ask %s or an admin", id, b->owner,
                 c->name, farm_role_name(c->role), b->owner);
        farm_peer_warn("%s", reason);
        farm_clients_refuse(self, c->rid, c->rid_len, reason);
        return;
    }
    if (rc == FARM_ENOTFOUND || was_done) {
        /* gone from memory or ended: its record says how */
        Farm__HistoryGet get = FARM__HISTORY_GET__INIT;
        Farm__HistoryRecord *rec;
        get.build = id;
        if (!(rec = farm_history_get(&self->p, &caller, &get))) {
            snprintf(reason, sizeof reason, "%s", farm_error_last());
            if (strstr(reason, "may inspect only its own"))
                snprintf(reason, sizeof reason, "build %s is not client %s's; a submit client "
                         "may cancel only its own builds, an admin any", id, c->name);
            farm_clients_refuse(self, c->rid, c->rid_len, reason);
            return;
        }
        snprintf(msg, sizeof msg, "build %s had already ended (%s): nothing to cancel", id,
                 rec->build ? rec->build->status : "done");
        cr.state = "done";
        cr.message = msg;
        cr.build_id = id;
        env.body_case = FARM__ENVELOPE__BODY_CANCEL_REPLY;
        env.cancel_reply = &cr;
        s_send(self, c->rid, c->rid_len, &env);
        protobuf_c_message_free_unpacked(&rec->base, NULL);
        return;
    }
    b = farm_builds_get(self->p.builds, id);
    cr.build_id = id;
    if (b && b->state == FARM_BUILD_STITCHING) {
        cr.state = "stitching";
        snprintf(msg, sizeof msg, "too late to cancel build %s: its index is being pushed",
                 id);
    } else {
        cr.state = "cancelled";
        snprintf(msg, sizeof msg, "build %s cancelled; nothing was pushed under its tags", id);
        farm_log_info("build=%s cancelled by %s", id, c->name[0] ? c->name : "a local client");
    }
    cr.message = msg;
    env.body_case = FARM__ENVELOPE__BODY_CANCEL_REPLY;
    env.cancel_reply = &cr;
    s_send(self, c->rid, c->rid_len, &env);
}

void farm_clients_message(farm_clients_t *self, const farm_client_t *c,
                          const Farm__Envelope *env)
{
    farm_ctx_status_t st;
    const char *what;
    farm_role_t need = farm_clients_needs(env->body_case, &what);

    if (c->role < need) {
        char reason[512];
        snprintf(reason, sizeof reason, "client %s has role %s; to %s it needs role %s: an "
                 "admin changes clients: %s: role: in %s and reloads farm-coordinator", c->name,
                 farm_role_name(c->role), what, farm_role_name(need), c->name, self->p.cfg->path);
        farm_peer_warn("%s", reason);
        farm_clients_refuse(self, c->rid, c->rid_len, reason);
        return;
    }
    switch (env->body_case) {
    case FARM__ENVELOPE__BODY_CONTEXT_OFFER:
        farm_ctxstore_offer(self->p.ctx, &st, c->rid, c->rid_len, c->key,
                            env->context_offer->digest, env->context_offer->size, farm_now_ms());
        s_context_status(self, c->rid, c->rid_len, env->context_offer->digest, &st);
        break;
    case FARM__ENVELOPE__BODY_CONTEXT_CHUNK: {
        const Farm__ContextChunk *ch = env->context_chunk;
        farm_ctxstore_chunk(self->p.ctx, &st, c->rid, c->rid_len, c->key, ch->digest,
                            ch->offset, ch->data.data, ch->data.len, farm_now_ms());
        s_context_status(self, c->rid, c->rid_len, ch->digest, &st);
        break;
    }
    case FARM__ENVELOPE__BODY_SUBMIT: s_on_submit(self, c, env->submit); break;
    case FARM__ENVELOPE__BODY_NODES_REQUEST: s_on_nodes(self, c); break;
    case FARM__ENVELOPE__BODY_DRAIN: s_on_drain(self, c, env->drain); break;
    case FARM__ENVELOPE__BODY_BUILDS_REQUEST: s_on_builds(self, c); break;
    case FARM__ENVELOPE__BODY_CANCEL: s_on_cancel(self, c, env->cancel); break;
    case FARM__ENVELOPE__BODY_HISTORY_REQUEST: s_on_history(self, c, env->history_request); break;
    case FARM__ENVELOPE__BODY_HISTORY_GET: s_on_history_get(self, c, env->history_get); break;
    case FARM__ENVELOPE__BODY_LOGS_REQUEST: s_on_logs(self, c, env->logs_request); break;
    case FARM__ENVELOPE__BODY_FOLLOW: s_on_follow(self, c, env->follow); break;
    case FARM__ENVELOPE__BODY_LOGINS: s_on_logins(self, c, env->logins); break;
    case FARM__ENVELOPE__BODY_CACHE_QUERY: {
        char reason[768];
        if (!self->p.cachecmd)
            farm_clients_refuse(self, c->rid, c->rid_len, "this coordinator does not serve "
                                "du or prune");
        else if (farm_cachecmd_request(self->p.cachecmd, reason, sizeof reason, c->rid,
                                       c->rid_len, env->cache_query, farm_now_ms()) < 0)
            farm_clients_refuse(self, c->rid, c->rid_len, reason);
        else
            farm_log_info("%s of node caches asked by %s", env->cache_query->prune ? "prune"
                          : "du", c->name[0] ? c->name : "a local client");
        break;
    }
    case FARM__ENVELOPE__BODY_HEARTBEAT: break;
    default:
        farm_peer_warn("client sent an unexpected message (type %d); ignored",
                       (int)env->body_case);
    }
}

static void s_client_beat(void *arg, farm_build_t *b)
{
    farm_clients_t *self = arg;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Heartbeat hb = FARM__HEARTBEAT__INIT;
    env.body_case = FARM__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    s_send_followers(self, b, &env);
}

void farm_clients_beat(farm_clients_t *self)
{
    farm_builds_each_active(self->p.builds, s_client_beat, self);
}

void farm_clients_reload(farm_clients_t *self, const farm_config_t *cfg)
{
    self->p.cfg = cfg;
}
