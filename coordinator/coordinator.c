#include "coordinator/coordinator.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/oci.h"
#include "common/platform.h"
#include "common/proc.h"
#include "common/reference.h"
#include "common/wire.h"
#include "coordinator/stitch.h"

#define TAIL_LINES 30
#define CONTEXT_MAX (4ULL << 30)  /* largest build context accepted */
#define DONE_KEEP_MS 60000        /* finished builds linger so late results are recognised */
#define UPLOAD_IDLE_MS 120000     /* abandoned uploads are dropped */

typedef enum { NODE_UNKNOWN, NODE_READY, NODE_LOST } node_state_t;
typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED } job_state_t;
typedef enum { BUILD_RUNNING, BUILD_STITCHING, BUILD_DONE } build_state_t;

typedef struct {
    const farm_config_node_t *cfg;
    char rid[FARM_WIRE_ROUTING_MAX];
    size_t rid_len;
    node_state_t state;
    uint64_t session;
    long long last_seen;
    int slots;
    char **platforms; /* offered and accepted, canonical */
    size_t n_platforms;
} node_t;

struct build;

typedef struct {
    struct build *build;
    char id[64];
    char platform[FARM_PLATFORM_STRLEN];
    farm_platform_t plat;
    job_state_t state;
    unsigned attempt;
    node_t *node;
    char node_name[128]; /* last node that ran it */
    long long queued_at;
    long long started_at;
    int waiting_said;
    farm_descriptor_t image;
    char error[1024];
    char *tail[TAIL_LINES];
    unsigned tail_pos;
} job_t;

typedef struct build {
    struct build *next;
    char id[32];
    char client[FARM_WIRE_ROUTING_MAX];
    size_t client_len;
    int client_gone;
    char registry[256];
    char repository[256];
    char **tags; /* tag names */
    size_t n_tags;
    int insecure;
    int allow_partial;
    char context_digest[FARM_DIGEST_STRLEN];
    uint64_t context_size;
    char *dockerfile;
    farm_kv_t *args;
    size_t n_args;
    job_t *jobs;
    size_t n_jobs;
    build_state_t state;
    long long created, last_result_at, done_at;
    pid_t stitch_pid;
    int stitch_fd;
    farm_linebuf_t stitch_lb;
    char stitch_result[1024];
} build_t;

typedef struct upload {
    struct upload *next;
    char client[FARM_WIRE_ROUTING_MAX];
    size_t client_len;
    char digest[FARM_DIGEST_STRLEN];
    uint64_t size, offset;
    int fd;
    farm_sha256_t *sha;
    long long last_activity;
} upload_t;

struct farm_coordinator {
    farm_config_t *cfg;
    void *zctx;
    void *agents;
    void *clients;
    node_t *nodes;
    size_t n_nodes;
    build_t *builds; /* oldest first */
    upload_t *uploads;
    char contexts_dir[1024];
    unsigned build_seq;
    long long next_beat;
    long long next_sweep;
};

/* ------------------------------------------------------------------ helpers */

static void s_free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void s_context_path(const farm_coordinator_t *self, char *buf, size_t len,
                           const char *digest, const char *suffix)
{
    snprintf(buf, len, "%s/%s%s", self->contexts_dir, digest + strlen("sha256:"), suffix);
}

/* A context's mtime is its last use: the sweep deletes what nobody used for context_ttl. */
static void s_context_touch(const farm_coordinator_t *self, const char *digest)
{
    char path[1200];
    s_context_path(self, path, sizeof path, digest, ".tar");
    utimensat(AT_FDCWD, path, NULL, 0);
}

static int s_context_in_use(const farm_coordinator_t *self, const char *hex)
{
    for (const build_t *b = self->builds; b; b = b->next)
        if (b->state != BUILD_DONE && strcmp(b->context_digest + strlen("sha256:"), hex) == 0)
            return 1;
    return 0;
}

static void s_contexts_sweep(farm_coordinator_t *self)
{
    DIR *d = opendir(self->contexts_dir);
    struct dirent *e;
    time_t now = time(NULL);

    if (!d)
        return;
    while ((e = readdir(d))) {
        char hex[65], path[1400];
        struct stat st;
        size_t len = strlen(e->d_name);
        if (len != 64 + 4 || strcmp(e->d_name + 64, ".tar") != 0)
            continue;
        memcpy(hex, e->d_name, 64);
        hex[64] = '\0';
        snprintf(path, sizeof path, "%s/%s", self->contexts_dir, e->d_name);
        if (stat(path, &st) != 0 || (long long)(now - st.st_mtime) * 1000 <= self->cfg->context_ttl_ms ||
            s_context_in_use(self, hex))
            continue;
        if (unlink(path) == 0)
            farm_log_info("removed context sha256:%s (%lld bytes), unused for %lld s", hex,
                          (long long)st.st_size, (long long)(now - st.st_mtime));
    }
    closedir(d);
}

static node_t *s_node_by_name(farm_coordinator_t *self, const char *name)
{
    for (size_t i = 0; i < self->n_nodes; i++)
        if (strcmp(self->nodes[i].cfg->name, name) == 0)
            return &self->nodes[i];
    return NULL;
}

static node_t *s_node_by_rid(farm_coordinator_t *self, const void *rid, size_t len)
{
    for (size_t i = 0; i < self->n_nodes; i++) {
        node_t *n = &self->nodes[i];
        if (n->state == NODE_READY && n->rid_len == len && memcmp(n->rid, rid, len) == 0)
            return n;
    }
    return NULL;
}

/* Slots in use: the running jobs that name the node (one source of truth). */
static int s_node_used(const farm_coordinator_t *self, const node_t *n)
{
    int used = 0;
    for (const build_t *b = self->builds; b; b = b->next)
        for (size_t i = 0; i < b->n_jobs; i++)
            used += b->jobs[i].state == JOB_RUNNING && b->jobs[i].node == n;
    return used;
}

static int s_node_offers(const node_t *n, const char *platform)
{
    for (size_t i = 0; i < n->n_platforms; i++)
        if (strcmp(n->platforms[i], platform) == 0)
            return 1;
    return 0;
}

static int s_in_list(char **list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

static void s_send(farm_coordinator_t *self, void *sock, const void *rid, size_t rid_len,
                   Farm__Envelope *env)
{
    env->version = FARM_WIRE_VERSION;
    if (farm_wire_send(sock, rid, rid_len, env) < 0)
        farm_log_debug("send to %.*s failed: %s", (int)rid_len, (const char *)rid,
                       farm_error_last());
    (void)self;
}

static void s_send_to_node(farm_coordinator_t *self, node_t *n, Farm__Envelope *env)
{
    env->version = FARM_WIRE_VERSION;
    if (farm_wire_send(self->agents, n->rid, n->rid_len, env) < 0)
        farm_log_warn("node=%s send failed: %s", n->cfg->name, farm_error_last());
}

static void s_event(farm_coordinator_t *self, build_t *b, const char *kind, const job_t *job,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void s_event(farm_coordinator_t *self, build_t *b, const char *kind, const job_t *job,
                    const char *fmt, ...)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Event ev = FARM__EVENT__INIT;
    char msg[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (strcmp(kind, "log") != 0)
        farm_log_info("build=%s%s%s %s: %s", b->id, job ? " platform=" : "",
                      job ? job->platform : "", kind, msg);
    if (b->client_gone)
        return;
    ev.build_id = b->id;
    for (int k = 0; k < 16; k++)
        if (strcmp(farm_wire_event_kind_name((Farm__EventKind)k), kind) == 0)
            ev.kind = (Farm__EventKind)k;
    ev.platform = job ? (char *)job->platform : "";
    ev.node = job ? (char *)job->node_name : "";
    ev.attempt = job ? job->attempt : 0;
    ev.message = msg;
    env.version = FARM_WIRE_VERSION;
    env.body_case = FARM__ENVELOPE__BODY_EVENT;
    env.event = &ev;
    if (farm_wire_send(self->clients, b->client, b->client_len, &env) < 0) {
        /* farmctl went away: the build goes on and its result is still pushed */
        farm_log_warn("build=%s client gone (%s); continuing without it", b->id,
                      farm_error_last());
        b->client_gone = 1;
    }
}

static void s_tail_add(job_t *job, const char *line)
{
    unsigned slot = job->tail_pos++ % TAIL_LINES;
    free(job->tail[slot]);
    job->tail[slot] = strdup(line);
}

/* The last lines of a job's log, oldest first, joined with newlines. */
static void s_tail_format(const job_t *job, char *buf, size_t len)
{
    unsigned n = job->tail_pos < TAIL_LINES ? job->tail_pos : TAIL_LINES;
    size_t off = 0;
    buf[0] = '\0';
    for (unsigned i = job->tail_pos - n; i < job->tail_pos && off < len; i++) {
        const char *l = job->tail[i % TAIL_LINES];
        int w = snprintf(buf + off, len - off, "  | %s\n", l ? l : "");
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

/* ------------------------------------------------------------------ builds */

static void s_build_destroy(build_t *b)
{
    if (b->stitch_pid > 0) {
        kill(b->stitch_pid, SIGKILL);
        waitpid(b->stitch_pid, NULL, 0);
    }
    if (b->stitch_fd >= 0)
        close(b->stitch_fd);
    for (size_t i = 0; i < b->n_jobs; i++)
        for (int t = 0; t < TAIL_LINES; t++)
            free(b->jobs[i].tail[t]);
    free(b->jobs);
    s_free_strv(b->tags, b->n_tags);
    free(b->dockerfile);
    for (size_t i = 0; i < b->n_args; i++) {
        free(b->args[i].key);
        free(b->args[i].value);
    }
    free(b->args);
    free(b);
}

static job_t *s_job_by_id(farm_coordinator_t *self, const char *id)
{
    for (build_t *b = self->builds; b; b = b->next)
        for (size_t i = 0; i < b->n_jobs; i++)
            if (strcmp(b->jobs[i].id, id) == 0)
                return &b->jobs[i];
    return NULL;
}

static void s_job_cancel(farm_coordinator_t *self, job_t *job, const char *reason)
{
    if (job->state == JOB_RUNNING && job->node && job->node->state == NODE_READY) {
        Farm__Envelope env = FARM__ENVELOPE__INIT;
        Farm__JobCancel jc = FARM__JOB_CANCEL__INIT;
        jc.job_id = job->id;
        jc.attempt = job->attempt;
        jc.reason = (char *)reason;
        env.body_case = FARM__ENVELOPE__BODY_JOB_CANCEL;
        env.job_cancel = &jc;
        s_send_to_node(self, job->node, &env);
    }
    job->node = NULL;
    if (job->state == JOB_QUEUED || job->state == JOB_RUNNING)
        job->state = JOB_CANCELLED;
}

/* The job failed: record why and tell farmctl. The caller then runs s_build_check. */
static void s_job_fail(farm_coordinator_t *self, job_t *job, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_job_fail(farm_coordinator_t *self, job_t *job, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->error, sizeof job->error, fmt, ap);
    va_end(ap);
    job->state = JOB_FAILED;
    s_event(self, job->build, "failed", job, "%s", job->error);
}

static void s_build_finish(farm_coordinator_t *self, build_t *b, int ok, const char *index_digest,
                           uint64_t index_size, const char *error)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__BuildDone done = FARM__BUILD_DONE__INIT;
    Farm__Descriptor *descs = calloc(b->n_jobs, sizeof *descs);
    Farm__Descriptor **dptrs = calloc(b->n_jobs, sizeof *dptrs);
    char **nodes = calloc(b->n_jobs, sizeof *nodes);
    char (*plats)[FARM_PLATFORM_STRLEN] = calloc(b->n_jobs, sizeof *plats);
    size_t n = 0;

    for (size_t i = 0; i < b->n_jobs; i++)
        if (b->jobs[i].state == JOB_RUNNING || b->jobs[i].state == JOB_QUEUED)
            s_job_cancel(self, &b->jobs[i], ok ? "build finished" : "build failed");
    b->state = BUILD_DONE;
    b->done_at = farm_now_ms();
    if (ok)
        farm_log_info("build=%s pushed index %s (%llu bytes) to %s/%s, stitch %lld ms", b->id,
                      index_digest, (unsigned long long)index_size, b->registry, b->repository,
                      b->done_at - b->last_result_at);
    else
        farm_log_warn("build=%s failed: %s", b->id, error);
    if (b->client_gone || !descs || !dptrs || !nodes || !plats)
        goto done;
    for (size_t i = 0; i < b->n_jobs; i++) {
        job_t *j = &b->jobs[i];
        if (j->state != JOB_DONE)
            continue;
        farm__descriptor__init(&descs[n]);
        descs[n].media_type = j->image.media_type;
        descs[n].digest = j->image.digest;
        descs[n].size = j->image.size;
        farm_platform_format(plats[n], sizeof plats[n], &j->image.platform);
        descs[n].platform = plats[n];
        dptrs[n] = &descs[n];
        nodes[n] = j->node_name;
        n++;
    }
    done.build_id = b->id;
    done.ok = ok;
    done.error = (char *)(error ? error : "");
    done.index_digest = (char *)(index_digest ? index_digest : "");
    done.index_size = index_size;
    done.n_children = n;
    done.children = dptrs;
    done.n_child_nodes = n;
    done.child_nodes = nodes;
    done.n_tags = b->n_tags;
    done.tags = b->tags;
    done.stitch_ms = ok ? (uint64_t)(b->done_at - b->last_result_at) : 0;
    env.body_case = FARM__ENVELOPE__BODY_BUILD_DONE;
    env.build_done = &done;
    s_send(self, self->clients, b->client, b->client_len, &env);
done:
    free(descs);
    free(dptrs);
    free(nodes);
    free(plats);
}

typedef struct {
    build_t *build;
    farm_descriptor_t *children;
    size_t n;
} stitch_arg_t;

static int s_stitch_child(void *arg)
{
    stitch_arg_t *sa = arg;
    build_t *b = sa->build;
    farm_stitch_req_t req = {.registry = b->registry,
                             .repository = b->repository,
                             .insecure = b->insecure,
                             .children = sa->children,
                             .n_children = sa->n,
                             .tags = b->tags,
                             .n_tags = b->n_tags};
    char digest[FARM_DIGEST_STRLEN];
    uint64_t size = 0;

    if (farm_stitch_run(digest, &size, &req) < 0) {
        printf("@@result error %s\n", farm_error_last());
        return 1;
    }
    printf("@@result ok %s %llu\n", digest, (unsigned long long)size);
    return 0;
}

static void s_build_stitch(farm_coordinator_t *self, build_t *b)
{
    stitch_arg_t sa = {.build = b};
    farm_descriptor_t *children = calloc(b->n_jobs, sizeof *children);
    int fd = -1;

    if (!children) {
        s_build_finish(self, b, 0, NULL, 0, "out of memory");
        return;
    }
    for (size_t i = 0; i < b->n_jobs; i++)
        if (b->jobs[i].state == JOB_DONE)
            children[sa.n++] = b->jobs[i].image;
    sa.children = children;
    b->state = BUILD_STITCHING;
    s_event(self, b, "verifying", NULL, "all %zu platform(s) built; verifying children in %s/%s",
            sa.n, b->registry, b->repository);
    b->stitch_pid = farm_proc_fork(&fd, s_stitch_child, &sa);
    free(children);
    if (b->stitch_pid < 0) {
        s_build_finish(self, b, 0, NULL, 0, farm_error_last());
        return;
    }
    b->stitch_fd = fd;
    b->stitch_lb.len = 0;
    b->stitch_result[0] = '\0';
}

static void s_build_check(farm_coordinator_t *self, build_t *b)
{
    size_t done = 0, failed = 0, pending = 0;
    char msg[8192], tail[6144];

    if (b->state != BUILD_RUNNING)
        return;
    for (size_t i = 0; i < b->n_jobs; i++) {
        switch (b->jobs[i].state) {
        case JOB_DONE: done++; break;
        case JOB_FAILED:
        case JOB_CANCELLED: failed++; break;
        default: pending++;
        }
    }
    if (failed && !b->allow_partial) {
        for (size_t i = 0; i < b->n_jobs; i++) {
            job_t *j = &b->jobs[i];
            if (j->state != JOB_FAILED)
                continue;
            s_tail_format(j, tail, sizeof tail);
            snprintf(msg, sizeof msg, "%s failed on node %s: %s%s%s", j->platform,
                     j->node_name[0] ? j->node_name : "-", j->error,
                     tail[0] ? "\nlast log lines:\n" : "", tail);
            break;
        }
        s_build_finish(self, b, 0, NULL, 0, msg);
        return;
    }
    if (pending)
        return;
    if (!done) {
        s_build_finish(self, b, 0, NULL, 0, "no platform succeeded");
        return;
    }
    s_build_stitch(self, b);
}

static void s_stitch_line(void *arg, const char *line)
{
    build_t *b = arg;
    if (strncmp(line, "@@result ", 9) == 0)
        snprintf(b->stitch_result, sizeof b->stitch_result, "%s", line + 9);
    else
        farm_log_debug("build=%s stitch: %s", b->id, line);
}

static void s_stitch_readable(farm_coordinator_t *self, build_t *b)
{
    int rc = farm_linebuf_read(&b->stitch_lb, b->stitch_fd, s_stitch_line, b);
    char digest[FARM_DIGEST_STRLEN];
    unsigned long long size = 0;

    if (rc == 0)
        return;
    close(b->stitch_fd);
    b->stitch_fd = -1;
    waitpid(b->stitch_pid, NULL, 0);
    b->stitch_pid = 0;
    if (sscanf(b->stitch_result, "ok %71s %llu", digest, &size) == 2)
        s_build_finish(self, b, 1, digest, size, NULL);
    else if (strncmp(b->stitch_result, "error ", 6) == 0)
        s_build_finish(self, b, 0, NULL, 0, b->stitch_result + 6);
    else
        s_build_finish(self, b, 0, NULL, 0, "index push process died without a result");
}

/* ------------------------------------------------------------------ scheduling */

static int s_platform_has_live(farm_coordinator_t *self, char **names, size_t n,
                               const char *platform)
{
    for (size_t i = 0; i < n; i++) {
        node_t *node = s_node_by_name(self, names[i]);
        if (node && node->state == NODE_READY && s_node_offers(node, platform))
            return 1;
    }
    return 0;
}

/* Least loaded first among the live nodes of `names` that offer the platform. */
static node_t *s_pick(farm_coordinator_t *self, char **names, size_t n, const char *platform)
{
    node_t *best = NULL;
    int best_used = 0;
    for (size_t i = 0; i < n; i++) {
        node_t *node = s_node_by_name(self, names[i]);
        int used;
        if (!node || node->state != NODE_READY || !s_node_offers(node, platform))
            continue;
        used = s_node_used(self, node);
        if (used >= node->slots)
            continue;
        if (!best || (long)used * best->slots < (long)best_used * node->slots) {
            best = node;
            best_used = used;
        }
    }
    return best;
}

static void s_assign(farm_coordinator_t *self, job_t *job, node_t *node, int emulated)
{
    build_t *b = job->build;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__JobAssign ja = FARM__JOB_ASSIGN__INIT;
    Farm__KeyValue *kvs = calloc(b->n_args ? b->n_args : 1, sizeof *kvs);
    Farm__KeyValue **kvp = calloc(b->n_args ? b->n_args : 1, sizeof *kvp);

    if (!kvs || !kvp) {
        free(kvs);
        free(kvp);
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
    ja.emulated = emulated;
    env.body_case = FARM__ENVELOPE__BODY_JOB_ASSIGN;
    env.job_assign = &ja;
    job->state = JOB_RUNNING;
    job->started_at = farm_now_ms();
    job->node = node;
    snprintf(job->node_name, sizeof job->node_name, "%s", node->cfg->name);
    s_send_to_node(self, node, &env);
    s_event(self, b, "dispatched", job, "attempt %u on %s%s (%d/%d slots)", job->attempt,
            node->cfg->name, emulated ? " (emulated)" : "", s_node_used(self, node), node->slots);
    free(kvs);
    free(kvp);
}

static void s_dispatch(farm_coordinator_t *self)
{
    for (build_t *b = self->builds; b; b = b->next) {
        if (b->state != BUILD_RUNNING)
            continue;
        for (size_t i = 0; i < b->n_jobs; i++) {
            job_t *job = &b->jobs[i];
            const farm_config_platform_t *p;
            node_t *node;
            int emulated = 0;

            if (job->state != JOB_QUEUED)
                continue;
            p = farm_config_platform(self->cfg, job->platform);
            if (!p)
                continue;
            node = s_pick(self, p->native, p->n_native, job->platform);
            /* emulated nodes only while no native node of the platform is alive */
            if (!node && !s_platform_has_live(self, p->native, p->n_native, job->platform)) {
                node = s_pick(self, p->emulated, p->n_emulated, job->platform);
                emulated = node != NULL;
            }
            if (node) {
                s_assign(self, job, node, emulated);
                continue;
            }
            if (!job->waiting_said &&
                !s_platform_has_live(self, p->native, p->n_native, job->platform) &&
                !s_platform_has_live(self, p->emulated, p->n_emulated, job->platform)) {
                job->waiting_said = 1;
                s_event(self, b, "waiting", job,
                        "no live node serves %s yet; waiting up to %d s for one",
                        job->platform, self->cfg->queue_timeout_ms / 1000);
            }
        }
    }
}

static void s_job_requeue(farm_coordinator_t *self, job_t *job, const char *why)
{
    job->node = NULL;
    job->state = JOB_QUEUED;
    job->attempt++;
    job->queued_at = farm_now_ms();
    job->waiting_said = 0;
    s_event(self, job->build, "lost", job, "%s; re-dispatching as attempt %u", why,
            job->attempt);
}

static void s_node_lost(farm_coordinator_t *self, node_t *node, const char *why)
{
    char msg[256];
    farm_log_warn("node=%s lost: %s", node->cfg->name, why);
    node->state = NODE_LOST;
    snprintf(msg, sizeof msg, "node %s lost (%s)", node->cfg->name, why);
    for (build_t *b = self->builds; b; b = b->next)
        for (size_t i = 0; i < b->n_jobs; i++)
            if (b->jobs[i].state == JOB_RUNNING && b->jobs[i].node == node)
                s_job_requeue(self, &b->jobs[i], msg);
}

/* ------------------------------------------------------------------ agent messages */

/* rehello: the session is unknown and the agent should introduce itself again (sent
 * once per message in flight, so logged quietly); otherwise a person must act. */
static void s_reject(farm_coordinator_t *self, const void *rid, size_t rid_len,
                     const char *reason, int rehello)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Reject rj = FARM__REJECT__INIT;
    rj.reason = (char *)reason;
    rj.rehello = rehello;
    env.body_case = FARM__ENVELOPE__BODY_REJECT;
    env.reject = &rj;
    farm_log(rehello ? FARM_LOG_DEBUG : FARM_LOG_WARN, "rejecting agent %.*s: %s", (int)rid_len,
             (const char *)rid, reason);
    s_send(self, self->agents, rid, rid_len, &env);
}

static void s_on_hello(farm_coordinator_t *self, const void *rid, size_t rid_len,
                       const Farm__Hello *h)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Welcome w = FARM__WELCOME__INIT;
    char reason[1024], **plats = NULL, **emu = NULL;
    size_t n_emu = 0;
    node_t *node = s_node_by_name(self, h->name);
    int major = 0, mine = 0;

    if (!node) {
        snprintf(reason, sizeof reason,
                 "node \"%s\" is not defined under nodes: in %s; add it there or start the "
                 "agent with --name set to a configured node", h->name, self->cfg->path);
        s_reject(self, rid, rid_len, reason, 0);
        return;
    }
    sscanf(h->version, "%d", &major);
    sscanf(FARM_VERSION, "%d", &mine);
    if (major != mine) {
        snprintf(reason, sizeof reason, "agent version %s is incompatible with coordinator %s; "
                 "run the same major version", h->version, FARM_VERSION);
        s_reject(self, rid, rid_len, reason, 0);
        return;
    }
    if (h->n_platforms == 0) {
        s_reject(self, rid, rid_len, "the agent offers no platform; pass --platform", 0);
        return;
    }
    plats = calloc(h->n_platforms, sizeof *plats);
    emu = calloc(h->n_platforms, sizeof *emu);
    if (!plats || !emu)
        goto done;
    for (size_t i = 0; i < h->n_platforms; i++) {
        farm_platform_t p;
        char canon[FARM_PLATFORM_STRLEN];
        const farm_config_platform_t *cp;
        if (farm_platform_parse(&p, h->platforms[i]) < 0) {
            snprintf(reason, sizeof reason, "bad platform from agent: %s", farm_error_last());
            goto reject;
        }
        farm_platform_format(canon, sizeof canon, &p);
        cp = farm_config_platform(self->cfg, canon);
        if (!cp || (!s_in_list(cp->native, cp->n_native, h->name) &&
                    !s_in_list(cp->emulated, cp->n_emulated, h->name))) {
            snprintf(reason, sizeof reason,
                     "platform %s is not mapped to node \"%s\" in %s (platforms:); map it or "
                     "drop it from the agent's --platform", canon, h->name, self->cfg->path);
            goto reject;
        }
        if (!s_in_list(cp->native, cp->n_native, h->name))
            emu[n_emu++] = cp->platform;
        plats[i] = strdup(canon);
    }
    if (node->state == NODE_READY && node->session == h->session) {
        /* the same session again (a HELLO resent before our WELCOME arrived): not a
         * restart, nothing it runs is lost */
        memcpy(node->rid, rid, rid_len);
        node->rid_len = rid_len;
        node->last_seen = farm_now_ms();
        s_free_strv(plats, h->n_platforms);
        plats = NULL;
        goto welcome;
    }
    if (node->state == NODE_READY) {
        /* a new session under a known name: the agent restarted or reconnected, and what
         * it ran is gone */
        s_node_lost(self, node, "it said HELLO again (restarted)");
    }
    s_free_strv(node->platforms, node->n_platforms);
    node->platforms = plats;
    node->n_platforms = h->n_platforms;
    plats = NULL;
    memcpy(node->rid, rid, rid_len);
    node->rid_len = rid_len;
    node->state = NODE_READY;
    node->session = h->session;
    node->last_seen = farm_now_ms();
    node->slots = node->cfg->slots;
    if (h->slots > 0 && (int)h->slots < node->slots)
        node->slots = (int)h->slots;
welcome:
    w.heartbeat_ms = (uint32_t)self->cfg->heartbeat_ms;
    w.liveness = (uint32_t)self->cfg->liveness;
    w.n_emulated = n_emu;
    w.emulated = emu;
    env.body_case = FARM__ENVELOPE__BODY_WELCOME;
    env.welcome = &w;
    s_send_to_node(self, node, &env);
    farm_log_info("node=%s ready: %zu platform(s), %d slot(s), builder %s, version %s",
                  node->cfg->name, node->n_platforms, node->slots, h->builder, h->version);
    s_dispatch(self);
    goto done;
reject:
    s_reject(self, rid, rid_len, reason, 0);
done:
    if (plats)
        s_free_strv(plats, h->n_platforms);
    free(emu);
}

static void s_on_job_log(farm_coordinator_t *self, node_t *node, const Farm__JobLog *m)
{
    job_t *job = s_job_by_id(self, m->job_id);
    if (!job || job->state != JOB_RUNNING || job->attempt != m->attempt || job->node != node)
        return;
    s_tail_add(job, m->line);
    s_event(self, job->build, "log", job, "%s", m->line);
}

static void s_on_job_result(farm_coordinator_t *self, node_t *node, const Farm__JobResult *r)
{
    job_t *job = s_job_by_id(self, r->job_id);
    build_t *b;
    farm_platform_t p;

    if (!job || job->state != JOB_RUNNING || job->attempt != r->attempt || job->node != node) {
        farm_log_info("node=%s ignoring late result for job %s attempt %u", node->cfg->name,
                      r->job_id, r->attempt);
        return;
    }
    b = job->build;
    job->node = NULL;
    b->last_result_at = farm_now_ms();
    for (size_t i = 0; i < r->n_log_tail; i++)
        s_tail_add(job, r->log_tail[i]);
    if (!r->ok) {
        s_job_fail(self, job, "%s", r->error[0] ? r->error : "build failed");
        goto check;
    }
    if (!r->image || !farm_digest_valid(r->image->digest) ||
        farm_platform_parse(&p, r->image->platform) < 0 || !farm_platform_equal(&p, &job->plat) ||
        (strcmp(r->image->media_type, FARM_MEDIA_OCI_MANIFEST) != 0 &&
         strcmp(r->image->media_type, FARM_MEDIA_DOCKER_MANIFEST) != 0)) {
        s_job_fail(self, job,
                   "node %s reported an unusable image descriptor (platform %s, media type %s)",
                   node->cfg->name, r->image ? r->image->platform : "-",
                   r->image ? r->image->media_type : "-");
        goto check;
    }
    job->state = JOB_DONE;
    snprintf(job->image.media_type, sizeof job->image.media_type, "%s", r->image->media_type);
    snprintf(job->image.digest, sizeof job->image.digest, "%s", r->image->digest);
    job->image.size = r->image->size;
    job->image.platform = job->plat;
    s_event(self, b, "pushed", job, "%s (%llu bytes) built in %.1f s, pushed in %.1f s",
            job->image.digest, (unsigned long long)job->image.size, r->build_ms / 1000.0,
            r->push_ms / 1000.0);
check:
    s_build_check(self, b);
    s_dispatch(self);
}

static void s_on_context_get(farm_coordinator_t *self, const void *rid, size_t rid_len,
                             const Farm__ContextGet *g)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__ContextChunk ch = FARM__CONTEXT_CHUNK__INIT;
    char path[1200], *buf = NULL;
    struct stat st;
    int fd = -1;
    ssize_t n = 0;

    ch.digest = g->digest;
    ch.offset = g->offset;
    ch.error = "";
    if (!farm_digest_valid(g->digest)) {
        ch.error = "not a sha256 digest";
        goto send;
    }
    s_context_path(self, path, sizeof path, g->digest, ".tar");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        ch.error = "the coordinator does not hold this context";
        goto send;
    }
    ch.total = (uint64_t)st.st_size;
    if (g->offset == 0)
        s_context_touch(self, g->digest);
    if (g->offset > ch.total) {
        ch.error = "offset beyond the end of the context";
        goto send;
    }
    buf = malloc(FARM_WIRE_CHUNK);
    if (!buf) {
        ch.error = "out of memory";
        goto send;
    }
    n = pread(fd, buf, FARM_WIRE_CHUNK, (off_t)g->offset);
    if (n < 0) {
        ch.error = "read error";
        n = 0;
    }
    ch.data.data = (uint8_t *)buf;
    ch.data.len = (size_t)n;
send:
    env.body_case = FARM__ENVELOPE__BODY_CONTEXT_CHUNK;
    env.context_chunk = &ch;
    s_send(self, self->agents, rid, rid_len, &env);
    if (fd >= 0)
        close(fd);
    free(buf);
}

static void s_agents_readable(farm_coordinator_t *self)
{
    for (int budget = 0; budget < 1000; budget++) {
        char rid[FARM_WIRE_ROUTING_MAX];
        size_t rid_len = 0;
        Farm__Envelope *env = NULL;
        node_t *node;
        int rc = farm_wire_recv(self->agents, rid, &rid_len, &env);

        if (rc == FARM_ERETRY)
            return;
        if (rc < 0) {
            farm_log_warn("bad message from agent %.*s: %s", (int)rid_len, rid, farm_error_last());
            continue;
        }
        if (env->body_case == FARM__ENVELOPE__BODY_HELLO) {
            s_on_hello(self, rid, rid_len, env->hello);
            farm_wire_free(&env);
            continue;
        }
        node = s_node_by_rid(self, rid, rid_len);
        if (!node) {
            /* e.g. the coordinator restarted: tell the agent to introduce itself again */
            s_reject(self, rid, rid_len, "unknown session; say HELLO again", 1);
            farm_wire_free(&env);
            continue;
        }
        node->last_seen = farm_now_ms();
        switch (env->body_case) {
        case FARM__ENVELOPE__BODY_HEARTBEAT: break;
        case FARM__ENVELOPE__BODY_JOB_LOG: s_on_job_log(self, node, env->job_log); break;
        case FARM__ENVELOPE__BODY_JOB_RESULT: s_on_job_result(self, node, env->job_result); break;
        case FARM__ENVELOPE__BODY_CONTEXT_GET:
            s_on_context_get(self, rid, rid_len, env->context_get);
            break;
        default:
            farm_log_warn("node=%s sent an unexpected message (type %d); ignored",
                          node->cfg->name, (int)env->body_case);
        }
        farm_wire_free(&env);
    }
}

/* ------------------------------------------------------------------ client messages */

static void s_context_status(farm_coordinator_t *self, const void *rid, size_t rid_len,
                             const char *digest, int have, uint64_t offset, const char *error)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__ContextStatus st = FARM__CONTEXT_STATUS__INIT;
    st.digest = (char *)digest;
    st.have = have;
    st.offset = offset;
    st.error = (char *)(error ? error : "");
    env.body_case = FARM__ENVELOPE__BODY_CONTEXT_STATUS;
    env.context_status = &st;
    s_send(self, self->clients, rid, rid_len, &env);
}

static void s_upload_drop(farm_coordinator_t *self, upload_t *u)
{
    char path[1200];
    for (upload_t **pp = &self->uploads; *pp; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    }
    if (u->fd >= 0) {
        close(u->fd);
        s_context_path(self, path, sizeof path, u->digest, ".partial");
        unlink(path);
    }
    farm_sha256_destroy(&u->sha);
    free(u);
}

static upload_t *s_upload_find(farm_coordinator_t *self, const void *rid, size_t rid_len,
                               const char *digest)
{
    for (upload_t *u = self->uploads; u; u = u->next)
        if (u->client_len == rid_len && memcmp(u->client, rid, rid_len) == 0 &&
            strcmp(u->digest, digest) == 0)
            return u;
    return NULL;
}

static void s_on_context_offer(farm_coordinator_t *self, const void *rid, size_t rid_len,
                               const Farm__ContextOffer *o)
{
    char path[1200];
    struct stat st;
    upload_t *u;

    if (!farm_digest_valid(o->digest)) {
        s_context_status(self, rid, rid_len, o->digest, 0, 0, "not a sha256 digest");
        return;
    }
    if (o->size > CONTEXT_MAX) {
        s_context_status(self, rid, rid_len, o->digest, 0, 0,
                         "context too large (limit 4 GiB); trim it with .dockerignore");
        return;
    }
    s_context_path(self, path, sizeof path, o->digest, ".tar");
    if (stat(path, &st) == 0 && (uint64_t)st.st_size == o->size) {
        s_context_touch(self, o->digest);
        s_context_status(self, rid, rid_len, o->digest, 1, o->size, NULL);
        return;
    }
    if ((u = s_upload_find(self, rid, rid_len, o->digest)))
        s_upload_drop(self, u);
    u = calloc(1, sizeof *u);
    if (!u)
        return;
    memcpy(u->client, rid, rid_len);
    u->client_len = rid_len;
    snprintf(u->digest, sizeof u->digest, "%s", o->digest);
    u->size = o->size;
    u->sha = farm_sha256_new();
    s_context_path(self, path, sizeof path, o->digest, ".partial");
    u->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    u->last_activity = farm_now_ms();
    u->next = self->uploads;
    self->uploads = u;
    if (u->fd < 0 || !u->sha) {
        char err[1400];
        snprintf(err, sizeof err, "coordinator cannot store the context in %s: %s",
                 self->contexts_dir, strerror(errno));
        s_context_status(self, rid, rid_len, o->digest, 0, 0, err);
        s_upload_drop(self, u);
        return;
    }
    s_context_status(self, rid, rid_len, o->digest, 0, 0, NULL);
}

static void s_on_context_chunk(farm_coordinator_t *self, const void *rid, size_t rid_len,
                               const Farm__ContextChunk *c)
{
    upload_t *u = s_upload_find(self, rid, rid_len, c->digest);
    char got[FARM_DIGEST_STRLEN], partial[1200], final[1200];

    if (!u) {
        s_context_status(self, rid, rid_len, c->digest, 0, 0, "no upload in progress; offer first");
        return;
    }
    if (c->offset != u->offset || u->offset + c->data.len > u->size) {
        s_context_status(self, rid, rid_len, c->digest, 0, u->offset,
                         "chunk out of order or beyond the offered size");
        return;
    }
    if (write(u->fd, c->data.data, c->data.len) != (ssize_t)c->data.len) {
        s_context_status(self, rid, rid_len, c->digest, 0, 0, "coordinator disk write failed");
        s_upload_drop(self, u);
        return;
    }
    farm_sha256_update(u->sha, c->data.data, c->data.len);
    u->offset += c->data.len;
    u->last_activity = farm_now_ms();
    if (u->offset < u->size) {
        s_context_status(self, rid, rid_len, c->digest, 0, u->offset, NULL);
        return;
    }
    farm_sha256_final(u->sha, got);
    if (strcmp(got, u->digest) != 0) {
        s_context_status(self, rid, rid_len, c->digest, 0, 0,
                         "uploaded bytes do not match the offered digest");
        s_upload_drop(self, u);
        return;
    }
    close(u->fd);
    u->fd = -1;
    s_context_path(self, partial, sizeof partial, u->digest, ".partial");
    s_context_path(self, final, sizeof final, u->digest, ".tar");
    if (rename(partial, final) != 0) {
        s_context_status(self, rid, rid_len, c->digest, 0, 0, "coordinator cannot store context");
        unlink(partial);
    } else {
        farm_log_info("stored context %s (%llu bytes)", u->digest, (unsigned long long)u->size);
        s_context_status(self, rid, rid_len, c->digest, 1, u->size, NULL);
    }
    s_upload_drop(self, u);
}

static void s_refuse(farm_coordinator_t *self, const void *rid, size_t rid_len,
                     const char *reason)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Refused rf = FARM__REFUSED__INIT;
    rf.reason = (char *)reason;
    env.body_case = FARM__ENVELOPE__BODY_REFUSED;
    env.refused = &rf;
    farm_log_info("submit refused: %s", reason);
    s_send(self, self->clients, rid, rid_len, &env);
}

static void s_on_submit(farm_coordinator_t *self, const void *rid, size_t rid_len,
                        const Farm__Submit *s)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Accepted acc = FARM__ACCEPTED__INIT;
    char reason[2048], path[1200], served[1024] = "";
    farm_reference_t ref;
    build_t *b = NULL, **tail;
    struct stat st;

    if (s->n_tags > FARM_TAGS_MAX) {
        s_refuse(self, rid, rid_len, "too many tags (at most " FARM_STR(FARM_TAGS_MAX) ")");
        return;
    }
    if (s->n_tags == 0) {
        s_refuse(self, rid, rid_len, "no tag given: pass -t REGISTRY/REPO:TAG or set build.tags");
        return;
    }
    if (s->n_platforms == 0 || s->n_platforms > FARM_PLATFORMS_MAX) {
        s_refuse(self, rid, rid_len,
                 "between 1 and " FARM_STR(FARM_PLATFORMS_MAX) " platforms are needed");
        return;
    }
    if (!farm_digest_valid(s->context_digest)) {
        s_refuse(self, rid, rid_len, "no valid context digest");
        return;
    }
    if (s->n_build_args > FARM_BUILD_ARGS_MAX) {
        s_refuse(self, rid, rid_len, "too many build args (at most " FARM_STR(FARM_BUILD_ARGS_MAX) ")");
        return;
    }
    for (size_t i = 0; i < s->n_build_args; i++) {
        static const char *const automatic[] = {"TARGETPLATFORM", "TARGETOS", "TARGETARCH",
                                                "TARGETVARIANT", "BUILDPLATFORM", "BUILDOS",
                                                "BUILDARCH", "BUILDVARIANT"};
        const char *k = s->build_args[i]->key;
        if (!k[0] || strchr(k, '=') || strlen(k) > 256) {
            s_refuse(self, rid, rid_len, "a build arg name is empty, too long or contains '='");
            return;
        }
        for (size_t a = 0; a < sizeof automatic / sizeof automatic[0]; a++) {
            if (strcmp(k, automatic[a]) == 0) {
                snprintf(reason, sizeof reason, "build arg %s is set by farm for each platform, "
                         "as buildx does; drop it from --build-arg / build.args", k);
                s_refuse(self, rid, rid_len, reason);
                return;
            }
        }
    }
    b = calloc(1, sizeof *b);
    if (!b)
        return;
    b->stitch_fd = -1;
    b->tags = calloc(s->n_tags, sizeof *b->tags);
    b->jobs = calloc(s->n_platforms, sizeof *b->jobs);
    if (!b->tags || !b->jobs)
        goto fail_mem;
    for (size_t i = 0; i < s->n_tags; i++) {
        if (farm_reference_parse(&ref, s->tags[i]) < 0) {
            snprintf(reason, sizeof reason, "bad tag: %s", farm_error_last());
            goto refuse;
        }
        if (!ref.tag[0] || ref.digest[0]) {
            snprintf(reason, sizeof reason, "tag %s must name a tag, not a digest", s->tags[i]);
            goto refuse;
        }
        if (i == 0) {
            snprintf(b->registry, sizeof b->registry, "%s", ref.registry);
            snprintf(b->repository, sizeof b->repository, "%s", ref.repository);
        } else if (strcmp(b->registry, ref.registry) != 0 ||
                   strcmp(b->repository, ref.repository) != 0) {
            snprintf(reason, sizeof reason,
                     "tags must all name the same repository (%s/%s vs %s); push other "
                     "repositories with a separate submit", b->registry, b->repository,
                     s->tags[i]);
            goto refuse;
        }
        if (!s_in_list(b->tags, b->n_tags, ref.tag))
            b->tags[b->n_tags++] = strdup(ref.tag);
    }
    s_context_path(self, path, sizeof path, s->context_digest, ".tar");
    if (stat(path, &st) != 0) {
        snprintf(reason, sizeof reason, "the coordinator does not hold this context; upload it first");
        goto refuse;
    }
    for (size_t i = 0; i < self->cfg->n_platforms; i++) {
        size_t l = strlen(served);
        snprintf(served + l, sizeof served - l, "%s%s", l ? ", " : "",
                 self->cfg->platforms[i].platform);
    }
    snprintf(b->id, sizeof b->id, "b%u-%04x", ++self->build_seq, (unsigned)(random() & 0xffff));
    for (size_t i = 0; i < s->n_platforms; i++) {
        job_t *job = &b->jobs[b->n_jobs];
        const farm_config_platform_t *cp;
        int dup = 0;
        if (farm_platform_parse(&job->plat, s->platforms[i]) < 0) {
            snprintf(reason, sizeof reason, "%s", farm_error_last());
            goto refuse;
        }
        farm_platform_format(job->platform, sizeof job->platform, &job->plat);
        for (size_t k = 0; k < b->n_jobs; k++)
            dup |= strcmp(b->jobs[k].platform, job->platform) == 0;
        if (dup)
            continue;
        cp = farm_config_platform(self->cfg, job->platform);
        if (!cp || cp->n_native + cp->n_emulated == 0) {
            snprintf(reason, sizeof reason,
                     "platform %s is not served by this farm (%s serves: %s); add nodes for "
                     "it under platforms: or drop it from --platform", job->platform,
                     self->cfg->path, served);
            goto refuse;
        }
        job->build = b;
        snprintf(job->id, sizeof job->id, "%s.%zu", b->id, b->n_jobs + 1);
        job->attempt = 1;
        job->state = JOB_QUEUED;
        job->queued_at = farm_now_ms();
        b->n_jobs++;
    }
    memcpy(b->client, rid, rid_len);
    b->client_len = rid_len;
    b->insecure = farm_config_registry_insecure(self->cfg, b->registry);
    b->allow_partial = s->allow_partial;
    snprintf(b->context_digest, sizeof b->context_digest, "%s", s->context_digest);
    b->context_size = (uint64_t)st.st_size;
    s_context_touch(self, b->context_digest);
    b->dockerfile = strdup(s->dockerfile && *s->dockerfile ? s->dockerfile : "Dockerfile");
    if (s->n_build_args) {
        b->args = calloc(s->n_build_args, sizeof *b->args);
        if (!b->args)
            goto fail_mem;
        for (size_t i = 0; i < s->n_build_args; i++) {
            b->args[i].key = strdup(s->build_args[i]->key);
            b->args[i].value = strdup(s->build_args[i]->value);
        }
        b->n_args = s->n_build_args;
    }
    b->created = b->last_result_at = farm_now_ms();
    b->state = BUILD_RUNNING;
    for (tail = &self->builds; *tail; tail = &(*tail)->next)
        ;
    *tail = b;

    acc.build_id = b->id;
    acc.n_platforms = 0;
    acc.platforms = calloc(b->n_jobs, sizeof *acc.platforms);
    for (size_t i = 0; acc.platforms && i < b->n_jobs; i++)
        acc.platforms[acc.n_platforms++] = b->jobs[i].platform;
    env.body_case = FARM__ENVELOPE__BODY_ACCEPTED;
    env.accepted = &acc;
    s_send(self, self->clients, rid, rid_len, &env);
    free(acc.platforms);
    farm_log_info("build=%s accepted: %zu platform(s) -> %s/%s, context %s", b->id, b->n_jobs,
                  b->registry, b->repository, b->context_digest);
    for (size_t i = 0; i < b->n_jobs; i++)
        s_event(self, b, "queued", &b->jobs[i], "queued");
    s_dispatch(self);
    return;
fail_mem:
    snprintf(reason, sizeof reason, "coordinator out of memory");
refuse:
    s_refuse(self, rid, rid_len, reason);
    s_build_destroy(b);
}

static void s_on_nodes(farm_coordinator_t *self, const void *rid, size_t rid_len)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__NodesReply rep = FARM__NODES_REPLY__INIT;
    Farm__NodeInfo *infos = calloc(self->n_nodes + 1, sizeof *infos);
    Farm__NodeInfo **ptrs = calloc(self->n_nodes + 1, sizeof *ptrs);
    static char *states[] = {"unknown", "ready", "lost"};

    if (!infos || !ptrs)
        goto done;
    for (size_t i = 0; i < self->n_nodes; i++) {
        node_t *n = &self->nodes[i];
        Farm__NodeInfo *ni = &infos[i];
        size_t nj = 0;
        farm__node_info__init(ni);
        ni->name = n->cfg->name;
        ni->state = states[n->state];
        ni->slots = (uint32_t)(n->slots ? n->slots : n->cfg->slots);
        ni->used = (uint32_t)s_node_used(self, n);
        /* platforms: what farm.yaml maps to this node, native and emulated */
        ni->platforms = calloc(self->cfg->n_platforms + 1, sizeof *ni->platforms);
        ni->emulated = calloc(self->cfg->n_platforms + 1, sizeof *ni->emulated);
        for (size_t p = 0; ni->platforms && ni->emulated && p < self->cfg->n_platforms; p++) {
            const farm_config_platform_t *cp = &self->cfg->platforms[p];
            if (s_in_list(cp->native, cp->n_native, n->cfg->name))
                ni->platforms[ni->n_platforms++] = cp->platform;
            else if (s_in_list(cp->emulated, cp->n_emulated, n->cfg->name))
                ni->emulated[ni->n_emulated++] = cp->platform;
        }
        for (build_t *b = self->builds; b; b = b->next)
            for (size_t j = 0; j < b->n_jobs; j++)
                nj += b->jobs[j].state == JOB_RUNNING && b->jobs[j].node == n;
        ni->jobs = calloc(nj + 1, sizeof *ni->jobs);
        for (build_t *b = self->builds; ni->jobs && b; b = b->next)
            for (size_t j = 0; j < b->n_jobs; j++)
                if (b->jobs[j].state == JOB_RUNNING && b->jobs[j].node == n)
                    ni->jobs[ni->n_jobs++] = b->jobs[j].id;
        ptrs[i] = ni;
    }
    rep.n_nodes = self->n_nodes;
    rep.nodes = ptrs;
    env.body_case = FARM__ENVELOPE__BODY_NODES_REPLY;
    env.nodes_reply = &rep;
    s_send(self, self->clients, rid, rid_len, &env);
    for (size_t i = 0; i < self->n_nodes; i++) {
        free(infos[i].platforms);
        free(infos[i].emulated);
        free(infos[i].jobs);
    }
done:
    free(infos);
    free(ptrs);
}

static void s_on_cancel(farm_coordinator_t *self, const void *rid, size_t rid_len,
                        const Farm__Cancel *c)
{
    for (build_t *b = self->builds; b; b = b->next) {
        if (strcmp(b->id, c->build_id) != 0)
            continue;
        /* only the client that submitted a build may cancel it */
        if (b->client_len != rid_len || memcmp(b->client, rid, rid_len) != 0) {
            farm_log_warn("build=%s cancel from another client ignored", b->id);
            return;
        }
        if (b->state == BUILD_RUNNING)
            s_build_finish(self, b, 0, NULL, 0, "cancelled by farmctl; nothing was pushed under "
                                                "the tags");
        else if (b->state == BUILD_STITCHING)
            s_event(self, b, "cancel", NULL, "too late to cancel: the index is being pushed");
        return;
    }
}

static void s_clients_readable(farm_coordinator_t *self)
{
    for (int budget = 0; budget < 1000; budget++) {
        char rid[FARM_WIRE_ROUTING_MAX];
        size_t rid_len = 0;
        Farm__Envelope *env = NULL;
        int rc = farm_wire_recv(self->clients, rid, &rid_len, &env);

        if (rc == FARM_ERETRY)
            return;
        if (rc < 0) {
            farm_log_warn("bad message from a client: %s", farm_error_last());
            continue;
        }
        switch (env->body_case) {
        case FARM__ENVELOPE__BODY_CONTEXT_OFFER:
            s_on_context_offer(self, rid, rid_len, env->context_offer);
            break;
        case FARM__ENVELOPE__BODY_CONTEXT_CHUNK:
            s_on_context_chunk(self, rid, rid_len, env->context_chunk);
            break;
        case FARM__ENVELOPE__BODY_SUBMIT: s_on_submit(self, rid, rid_len, env->submit); break;
        case FARM__ENVELOPE__BODY_NODES_REQUEST: s_on_nodes(self, rid, rid_len); break;
        case FARM__ENVELOPE__BODY_CANCEL: s_on_cancel(self, rid, rid_len, env->cancel); break;
        case FARM__ENVELOPE__BODY_HEARTBEAT: break;
        default:
            farm_log_warn("client sent an unexpected message (type %d); ignored",
                          (int)env->body_case);
        }
        farm_wire_free(&env);
    }
}

/* ------------------------------------------------------------------ timers */

/* queue_timeout: a job that found no live node; job_timeout: a hung attempt. */
static void s_build_timeouts(farm_coordinator_t *self, build_t *b, long long now)
{
    for (size_t i = 0; i < b->n_jobs; i++) {
        job_t *j = &b->jobs[i];
        if (j->state == JOB_RUNNING && now - j->started_at > self->cfg->job_timeout_ms) {
            s_job_cancel(self, j, "job_timeout");
            s_job_fail(self, j, "attempt %u on node %s ran longer than %d s (coordinator.job_timeout)",
                       j->attempt, j->node_name, self->cfg->job_timeout_ms / 1000);
        } else if (j->state == JOB_QUEUED && now - j->queued_at > self->cfg->queue_timeout_ms) {
            s_job_fail(self, j, "no node of %s became available within %d s (queue_timeout)",
                       j->platform, self->cfg->queue_timeout_ms / 1000);
        }
    }
    s_build_check(self, b);
}

static void s_on_timer(farm_coordinator_t *self)
{
    long long now = farm_now_ms();
    long long silence = (long long)self->cfg->heartbeat_ms * self->cfg->liveness;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Heartbeat hb = FARM__HEARTBEAT__INIT;

    env.body_case = FARM__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    for (size_t i = 0; i < self->n_nodes; i++) {
        node_t *n = &self->nodes[i];
        if (n->state != NODE_READY)
            continue;
        if (now - n->last_seen > silence) {
            char why[128];
            snprintf(why, sizeof why, "silent for %lld ms", now - n->last_seen);
            s_node_lost(self, n, why);
            continue;
        }
        s_send_to_node(self, n, &env);
    }
    for (build_t **pp = &self->builds; *pp;) {
        build_t *b = *pp;
        if (b->state == BUILD_DONE && now - b->done_at > DONE_KEEP_MS) {
            *pp = b->next;
            s_build_destroy(b);
            continue;
        }
        if (b->state != BUILD_DONE && !b->client_gone)
            s_send(self, self->clients, b->client, b->client_len, &env);
        if (b->state == BUILD_RUNNING)
            s_build_timeouts(self, b, now);
        pp = &b->next;
    }
    if (now >= self->next_sweep) {
        s_contexts_sweep(self);
        self->next_sweep = now + (self->cfg->context_ttl_ms / 2 < 60000 ? self->cfg->context_ttl_ms / 2
                                                                         : 60000);
    }
    for (upload_t *u = self->uploads, *next; u; u = next) {
        next = u->next;
        if (now - u->last_activity > UPLOAD_IDLE_MS)
            s_upload_drop(self, u);
    }
    s_dispatch(self);
}

/* ------------------------------------------------------------------ lifecycle */

farm_coordinator_t *farm_coordinator_new(farm_config_t **cfg_p)
{
    farm_coordinator_t *self = calloc(1, sizeof *self);
    farm_config_t *cfg = *cfg_p;
    const char *state = cfg->state_dir ? cfg->state_dir : "/var/tmp/farm-coordinator";

    if (!self)
        return NULL;
    self->cfg = cfg;
    *cfg_p = NULL;
    srandom((unsigned)(getpid() ^ farm_now_ms()));
    snprintf(self->contexts_dir, sizeof self->contexts_dir, "%s/contexts", state);
    if (farm_fs_mkdirs(self->contexts_dir) < 0)
        goto fail;
    self->n_nodes = cfg->n_nodes;
    self->nodes = calloc(cfg->n_nodes + 1, sizeof *self->nodes);
    if (!self->nodes)
        goto fail;
    for (size_t i = 0; i < cfg->n_nodes; i++) {
        self->nodes[i].cfg = &cfg->nodes[i];
        self->nodes[i].slots = cfg->nodes[i].slots;
    }
    self->zctx = zmq_ctx_new();
    self->agents = farm_wire_socket(self->zctx, FARM_WIRE_ROUTER_SERVER, cfg->agents_endpoint, NULL);
    if (!self->agents)
        goto fail;
    self->clients =
        farm_wire_socket(self->zctx, FARM_WIRE_ROUTER_SERVER, cfg->clients_endpoint, NULL);
    if (!self->clients)
        goto fail;
    farm_log_info("listening: agents on %s, clients on %s; %zu node(s), %zu platform(s), "
                  "heartbeat %d ms, state in %s", cfg->agents_endpoint, cfg->clients_endpoint,
                  cfg->n_nodes, cfg->n_platforms, cfg->heartbeat_ms, state);
    return self;
fail:
    farm_coordinator_destroy(&self);
    return NULL;
}

void farm_coordinator_destroy(farm_coordinator_t **self_p)
{
    farm_coordinator_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    while (self->builds) {
        build_t *b = self->builds;
        self->builds = b->next;
        s_build_destroy(b);
    }
    while (self->uploads)
        s_upload_drop(self, self->uploads);
    for (size_t i = 0; i < self->n_nodes; i++)
        s_free_strv(self->nodes[i].platforms, self->nodes[i].n_platforms);
    free(self->nodes);
    if (self->agents)
        zmq_close(self->agents);
    if (self->clients)
        zmq_close(self->clients);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    farm_config_destroy(&self->cfg);
    free(self);
    *self_p = NULL;
}

int farm_coordinator_run(farm_coordinator_t *self, volatile int *stop)
{
    zmq_pollitem_t items[2 + 64];
    build_t *stitching[64];

    self->next_beat = farm_now_ms() + self->cfg->heartbeat_ms;
    while (!*stop) {
        int n = 2;
        long long now = farm_now_ms();
        long timeout = self->next_beat > now ? (long)(self->next_beat - now) : 0;

        items[0] = (zmq_pollitem_t){.socket = self->agents, .events = ZMQ_POLLIN};
        items[1] = (zmq_pollitem_t){.socket = self->clients, .events = ZMQ_POLLIN};
        for (build_t *b = self->builds; b && n < (int)(sizeof items / sizeof items[0]); b = b->next) {
            if (b->stitch_fd < 0)
                continue;
            stitching[n - 2] = b;
            items[n++] = (zmq_pollitem_t){.fd = b->stitch_fd, .events = ZMQ_POLLIN};
        }
        if (zmq_poll(items, n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            farm_log_error("zmq_poll: %s", zmq_strerror(errno));
            return FARM_ERROR;
        }
        if (items[0].revents & ZMQ_POLLIN)
            s_agents_readable(self);
        if (items[1].revents & ZMQ_POLLIN)
            s_clients_readable(self);
        for (int i = 2; i < n; i++)
            if (items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR))
                s_stitch_readable(self, stitching[i - 2]);
        if (farm_now_ms() >= self->next_beat) {
            s_on_timer(self);
            self->next_beat = farm_now_ms() + self->cfg->heartbeat_ms;
        }
    }
    farm_log_info("shutting down");
    return 0;
}
