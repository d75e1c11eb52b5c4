/* SPDX-License-Identifier: Apache-2.0 */
/* Index pushes: one `farm-coordinator stitch` helper per build, supervised on the
 * coordinator's reactor. The helper speaks common/child.h's contract: a StitchRequest in,
 * a StitchResult out, log lines between. */
#include "coordinator/pushes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "common/buildflags.h"
#include "common/child.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/log.h"
#include "coordinator/attest.h"
#include "coordinator/sign.h"
#include "coordinator/amend.h"
#include "coordinator/sign.h"
#include "coordinator/stats.h"
#include "coordinator/tagorder.h"
#include "coordinator/targets.h"

/* The index push of one build: a helper process. */
typedef struct {
    farm_pushes_t *owner;
    farm_build_t *build;
    farm_child_t *child;
    int log_id, result_id; /* reactor readers, 0 once at EOF */
    int timer_id;          /* the deadline */
    int failed_read;
    int tags_taken;        /* its tags are busy in the tag order */
} push_t;

/* Builds whose index push waits for a free helper slot, oldest first. */
typedef struct push_wait {
    struct push_wait *next;
    farm_build_t *build;
} push_wait_t;

struct farm_pushes {
    farm_reactor_t *reactor;
    farm_builds_t *builds;
    const farm_config_t *cfg;
    size_t parallel;
    long long timeout_ms;
    char *const *argv;
    size_t n_running;
    size_t n_waiting;
    push_wait_t *head, *tail;
    farm_tagorder_t *order; /* per tag: one push at a time, the submit order wins */
    const char *signing_key_pem; /* borrowed; NULL: indexes are not signed */
    size_t signing_key_len;
};

static char *s_default_argv[] = {"/proc/self/exe", "stitch", NULL};

/* Wall-clock ms: a tag's record must mean the same after a restart. */
static long long s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

farm_pushes_t *farm_pushes_new(farm_reactor_t *reactor, farm_builds_t *builds,
                               const farm_config_t *cfg, const farm_pushes_opts_t *opts)
{
    farm_pushes_t *self = calloc(1, sizeof *self);
    if (!self) {
        farm_error_set(FARM_ERROR, "out of memory");
        return NULL;
    }
    self->reactor = reactor;
    self->builds = builds;
    self->cfg = cfg;
    self->parallel = opts->parallel;
    self->timeout_ms = opts->timeout_ms;
    self->argv = opts->argv ? opts->argv : s_default_argv;
    self->signing_key_pem = opts->signing_key_pem;
    self->signing_key_len = opts->signing_key_len;
    if (!(self->order = farm_tagorder_new(opts->journal))) {
        free(self);
        return NULL;
    }
    return self;
}

size_t farm_pushes_children(Farm__Descriptor *descs, Farm__Descriptor **dptrs,
                            char (*plats)[FARM_PLATFORM_STRLEN], const farm_build_t *b,
                            const farm_children_extra_t *extra)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n_jobs; i++) {
        const farm_job_t *j = &b->jobs[i];
        if (j->state != FARM_JOB_DONE || !j->image)
            continue;
        farm__descriptor__init(&descs[n]);
        descs[n].media_type = (char *)j->image->media_type;
        descs[n].digest = (char *)j->image->digest;
        descs[n].size = j->image->size;
        farm_platform_format(plats[n], sizeof plats[n], &j->image->platform);
        descs[n].platform = plats[n];
        dptrs[n] = &descs[n];
        if (extra) {
            extra->nodes[n] = (char *)j->node_name;
            extra->warm[n] = j->warm;
            extra->cache_hits[n] = j->cache_hits;
            extra->steps[n] = j->steps;
        }
        n++;
    }
    return n;
}

static void s_push_free(push_t **st_p)
{
    push_t *st = *st_p;
    if (!st)
        return;
    if (st->log_id)
        farm_reactor_remove(st->owner->reactor, st->log_id);
    if (st->result_id)
        farm_reactor_remove(st->owner->reactor, st->result_id);
    if (st->timer_id > 0)
        farm_reactor_timer_cancel(st->owner->reactor, st->timer_id);
    if (st->child)
        st->owner->n_running--;
    farm_child_destroy(&st->child);
    if (st->build && st->tags_taken)
        farm_tagorder_release(st->owner->order, st->build);
    if (st->build)
        st->build->stitch = NULL;
    free(st);
    *st_p = NULL;
}

static void s_log_line(void *arg, const char *line)
{
    push_t *st = arg;
    farm_log_debug("build=%s stitch: %s", st->build->id, line);
}

/* The result stream ended: it decides (a helper that died says nothing). The log is not
 * waited for: a process the helper started may hold it open; the group is killed. */
static void s_maybe_done(push_t *st)
{
    farm_pushes_t *self = st->owner;
    farm_build_t *b = st->build;
    Farm__StitchResult *r = NULL;
    const void *data;
    size_t len = 0;

    if (st->result_id)
        return;
    if (st->log_id)
        farm_child_read_log(st->child, s_log_line, st); /* what is there now */
    data = farm_child_result(st->child, &len);
    if (!st->failed_read && len)
        r = farm__stitch_result__unpack(NULL, len, data);
    /* a failure the helper could tell: the tags it sent nothing to go back */
    if (r && !r->ok)
        farm_tagorder_undo(self->order, b, r->tags_tried, s_wall_ms());
    if (r)
        farm_metric_add(farm_cstats.registry_retries, NULL, NULL, r->registry_retries);
    /* --amend: the images kept from the amended index, for BuildDone */
    free(b->amend_kept);
    b->amend_kept = NULL;
    b->n_amend_kept = 0;
    if (r && r->ok && r->n_kept && r->n_kept <= FARM_AMEND_ENTRIES_MAX &&
        (b->amend_kept = calloc(r->n_kept, sizeof *b->amend_kept))) {
        for (size_t i = 0; i < r->n_kept; i++) {
            farm_descriptor_t *d = &b->amend_kept[b->n_amend_kept];
            const Farm__Descriptor *w = r->kept[i];
            if (!farm_digest_valid(w->digest) || farm_platform_parse(&d->platform, w->platform) < 0)
                continue;
            snprintf(d->media_type, sizeof d->media_type, "%s", w->media_type);
            snprintf(d->digest, sizeof d->digest, "%s", w->digest);
            d->size = w->size;
            b->n_amend_kept++;
        }
    }
    if (r && r->ok && farm_digest_valid(r->index_digest) && self->signing_key_pem &&
        farm_sign_keep(b, r) < 0)
        farm_builds_finish(self->builds, b, 0, NULL, 0, farm_error_last(), farm_now_ms());
    else if (r && r->ok && farm_digest_valid(r->index_digest))
        farm_builds_finish(self->builds, b, 1, r->index_digest, r->index_size, NULL,
                           farm_now_ms());
    else if (r && !r->ok && r->error && r->error[0])
        farm_builds_finish(self->builds, b, 0, NULL, 0, r->error, farm_now_ms());
    else
        farm_builds_finish(self->builds, b, 0, NULL, 0,
                           "index push process died without a result", farm_now_ms());
    if (r)
        farm__stitch_result__free_unpacked(r, NULL);
    s_push_free(&st);
}

static int s_on_log(farm_reactor_t *r, int revents, void *arg)
{
    push_t *st = arg;
    if (farm_child_read_log(st->child, s_log_line, st) == 0)
        return 0;
    farm_reactor_remove(r, st->log_id);
    st->log_id = 0;
    s_maybe_done(st);
    return 0;
}

static int s_on_deadline(farm_reactor_t *r, void *arg)
{
    push_t *st = arg;
    farm_build_t *b = st->build;
    char msg[1024];

    st->timer_id = 0; /* a one-shot: spent */
    snprintf(msg, sizeof msg, "the index push to %s/%s took longer than %lld s and was stopped; "
             "check the registry (some tags may already name the new index)", b->registry,
             b->repository, st->owner->timeout_ms / 1000);
    farm_builds_finish(st->owner->builds, b, 0, NULL, 0, msg, farm_now_ms());
    s_push_free(&st);
    return 0;
}

static int s_on_result(farm_reactor_t *r, int revents, void *arg)
{
    push_t *st = arg;
    int rc = farm_child_read_result(st->child);
    if (rc == 0)
        return 0;
    st->failed_read = rc < 0;
    farm_reactor_remove(r, st->result_id);
    st->result_id = 0;
    s_maybe_done(st);
    return 0;
}

static void s_start(farm_pushes_t *self, farm_build_t *b)
{
    Farm__StitchRequest req = FARM__STITCH_REQUEST__INIT;
    Farm__RegistryCredential rc = FARM__REGISTRY_CREDENTIAL__INIT;
    const farm_cred_t *cred;
    const farm_config_registry_t *rcfg;
    Farm__Descriptor *descs = calloc(b->n_jobs + 1, sizeof *descs);
    Farm__Descriptor **dptrs = calloc(b->n_jobs + 1, sizeof *dptrs);
    char (*plats)[FARM_PLATFORM_STRLEN] = calloc(b->n_jobs + 1, sizeof *plats);
    /* niced: the index push must not take the CPU from dispatch and heartbeats */
    farm_child_opts_t opts = {.argv = self->argv, .nice = 10};
    push_t *st = calloc(1, sizeof *st);
    char **tags = calloc(b->n_tags + 1, sizeof *tags);
    uint32_t *tag_targets = calloc(b->n_tags + 1, sizeof *tag_targets);
    farm_targets_wire_t tw = {0};
    uint8_t *packed = NULL;
    size_t n = 0, len, n_tags = 0;
    int moved;
    Farm__BuildFlags fl;
    farm_buildflags_wire_t fw = {0};
    farm_attest_req_t prov = {0};

    if (!descs || !dptrs || !plats || !st || !tags || !tag_targets ||
        farm_buildflags_to_wire(&fl, &fw, &b->flags) < 0 ||
        farm_targets_to_wire(&tw, b, self->cfg, 1) < 0 ||
        farm_attest_request(&req.provenance, &prov, b, self->cfg) < 0) {
        farm_builds_finish(self->builds, b, 0, NULL, 0, "coordinator out of memory",
                           farm_now_ms());
        goto done;
    }
    st->owner = self;
    st->build = b;
    /* its turn: the tags are its own until the push ends; those a build submitted later
     * already took stay with it */
    if (farm_tagorder_take(self->order, b) < 0) {
        farm_builds_finish(self->builds, b, 0, NULL, 0, farm_error_last(), farm_now_ms());
        goto done;
    }
    st->tags_taken = 1;
    if ((moved = farm_tagorder_claim(self->order, b, s_wall_ms())) < 0) {
        farm_builds_finish(self->builds, b, 0, NULL, 0, farm_error_last(), farm_now_ms());
        farm_tagorder_undo(self->order, b, 0, s_wall_ms()); /* nothing was sent */
        goto done;
    }
    for (size_t i = 0; i < b->n_tags; i++)
        if (!b->kept_by[i][0]) {
            tag_targets[n_tags] = b->tag_target[i];
            tags[n_tags++] = b->tags[i];
        }
    if (moved == 0)
        farm_log_info("build=%s every tag was taken by a build submitted later: its index "
                      "is pushed by digest only", b->id);
    n = farm_pushes_children(descs, dptrs, plats, b, NULL);
    req.registry = b->registry;
    req.repository = b->repository;
    req.insecure = b->insecure;
    /* the target's login only: the stitch touches no other registry */
    if ((cred = farm_build_cred(b, b->registry))) {
        rc.registry = cred->registry;
        rc.username = cred->username;
        rc.secret = cred->secret;
        rc.identity_token = cred->identity_token;
        req.credential = &rc;
    }
    if ((rcfg = farm_config_registry(self->cfg, b->registry))) {
        req.ca_pem.data = (uint8_t *)rcfg->ca_pem;
        req.ca_pem.len = rcfg->ca_pem ? rcfg->ca_pem_len : 0;
        req.farm_credentials = farm_config_registry_grants(rcfg, b->owner);
    }
    req.n_children = n;
    req.children = dptrs;
    req.n_tags = n_tags;
    req.tags = tags;
    /* --amend: the index under the first tag is the one amended */
    req.amend_tag = b->amend && b->n_tags ? b->tags[0] : "";
    req.n_targets = tw.n;
    req.targets = tw.ptrs;
    req.n_tag_targets = tw.n ? n_tags : 0;
    req.tag_targets = tag_targets;
    req.n_index_annotations = fl.n_index_annotations;
    req.index_annotations = fl.index_annotations;
    req.signing_secret_key_pem.data = (uint8_t *)self->signing_key_pem;
    req.signing_secret_key_pem.len = self->signing_key_pem ? self->signing_key_len : 0;
    if (farm_wire_pack(&packed, &len, &req.base) < 0) {
        farm_builds_finish(self->builds, b, 0, NULL, 0, farm_error_last(), farm_now_ms());
        goto done;
    }
    opts.request = packed;
    opts.request_len = len;
    st->child = farm_child_spawn(&opts);
    explicit_bzero(packed, len); /* the login is in the child's sealed memfd now */
    if (!st->child) {
        farm_builds_finish(self->builds, b, 0, NULL, 0, farm_error_last(), farm_now_ms());
        goto done;
    }
    self->n_running++;
    st->log_id = farm_reactor_add_fd(self->reactor, farm_child_log_fd(st->child), ZMQ_POLLIN,
                                     s_on_log, st);
    st->result_id = farm_reactor_add_fd(self->reactor, farm_child_result_fd(st->child),
                                        ZMQ_POLLIN, s_on_result, st);
    st->timer_id = farm_reactor_timer_add(self->reactor, "stitch-deadline", self->timeout_ms,
                                          1, s_on_deadline, st);
    if (st->log_id < 0 || st->result_id < 0 || st->timer_id < 0) {
        st->log_id = st->log_id < 0 ? 0 : st->log_id;
        st->result_id = st->result_id < 0 ? 0 : st->result_id;
        s_push_free(&st);
        farm_builds_finish(self->builds, b, 0, NULL, 0, "coordinator out of memory",
                           farm_now_ms());
        goto done;
    }
    b->stitch = st;
    farm_log_debug("build=%s index push started (pid %d)", b->id,
                   (int)farm_child_pid(st->child));
    st = NULL;
done:
    if (st)
        s_push_free(&st);
    free(packed);
    free(tags);
    free(tag_targets);
    farm_targets_wire_free(&tw);
    free(descs);
    free(dptrs);
    free(plats);
    farm_buildflags_wire_free(&fw);
    farm_attest_request_free(&prov);
}

void farm_pushes_request(farm_pushes_t *self, farm_build_t *b)
{
    push_wait_t *w;

    if (self->n_running < self->parallel && !self->head) {
        farm_tagorder_pass_begin(self->order);
        if (farm_tagorder_may_start(self->order, b) == 1) {
            s_start(self, b);
            return;
        }
    }
    if (!(w = calloc(1, sizeof *w))) {
        farm_builds_finish(self->builds, b, 0, NULL, 0, "coordinator out of memory",
                           farm_now_ms());
        return;
    }
    w->build = b;
    if (self->tail)
        self->tail->next = w;
    else
        self->head = w;
    self->tail = w;
    self->n_waiting++;
}

void farm_pushes_start_waiting(farm_pushes_t *self)
{
    push_wait_t **pp = &self->head, *prev = NULL;

    /* oldest first; one waiting for a tag being pushed lets the others by, but not on
     * that tag (the pass) */
    farm_tagorder_pass_begin(self->order);
    while (*pp && self->n_running < self->parallel) {
        push_wait_t *w = *pp;
        int r = farm_tagorder_may_start(self->order, w->build);
        if (r == 0) {
            prev = w;
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        if (self->tail == w)
            self->tail = prev;
        self->n_waiting--;
        if (r == 1)
            s_start(self, w->build);
        else
            farm_builds_finish(self->builds, w->build, 0, NULL, 0, "coordinator out of memory",
                               farm_now_ms());
        free(w);
    }
}

void farm_pushes_drop(farm_pushes_t *self, farm_build_t *b)
{
    push_t *st = b->stitch;
    (void)self;
    if (st)
        s_push_free(&st); /* releases b's tags and clears b->stitch */
}

static void s_drop(void *arg, farm_build_t *b)
{
    farm_pushes_drop(arg, b);
}

size_t farm_pushes_running(const farm_pushes_t *self)
{
    return self->n_running;
}

size_t farm_pushes_waiting(const farm_pushes_t *self)
{
    return self->n_waiting;
}

void farm_pushes_destroy(farm_pushes_t **self_p)
{
    farm_pushes_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    while (self->head) {
        push_wait_t *w = self->head;
        self->head = w->next;
        free(w);
    }
    if (self->builds)
        farm_builds_each(self->builds, s_drop, self);
    farm_tagorder_destroy(&self->order);
    free(self);
    *self_p = NULL;
}

void farm_pushes_reload(farm_pushes_t *self, const farm_config_t *cfg)
{
    self->cfg = cfg;
}
