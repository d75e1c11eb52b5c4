#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/wire.h"

#define TAIL_LINES 30
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 32000
#define LOG_BATCH_MAX 200 /* log lines forwarded per job per reactor turn */

typedef enum { JOB_FETCHING, JOB_RUNNING } job_state_t;

struct farm_agent;

typedef struct job {
    struct job *next;
    struct farm_agent *agent; /* owner: log lines go out on its socket */
    Farm__Envelope *assign_env; /* owns the JobAssign */
    const Farm__JobAssign *a;
    job_state_t state;
    pid_t pid;
    int fd;
    farm_linebuf_t lb;
    char dir[1100];
    char result[2200];
    char *tail[TAIL_LINES];
    unsigned tail_pos;
    int cancelled;
    long long started;
} job_t;

typedef struct fetch {
    struct fetch *next;
    char digest[FARM_DIGEST_STRLEN];
    int fd;
    uint64_t offset;    /* bytes received and written, in order */
    uint64_t requested; /* bytes asked for (requests in flight: requested - offset) */
    uint64_t total;     /* 0 until known */
    farm_sha256_t *sha;
    long long last_activity;
} fetch_t;

struct farm_agent {
    farm_agent_opts_t opts;
    void *zctx;
    void *sock;
    int ready;              /* WELCOME received */
    uint64_t session;       /* new for every session: a resent HELLO is not a restart */
    long long last_recv;    /* any message from the coordinator */
    long long next_beat;
    long long next_reconnect;
    int backoff_ms;
    int heartbeat_ms;
    int liveness;
    int fatal;
    job_t *jobs;
    fetch_t *fetches;
    char cache_dir[1024];
    char jobs_dir[1024];
    unsigned seq;
};

/* ------------------------------------------------------------------ helpers */

static void s_send(farm_agent_t *self, Farm__Envelope *env)
{
    env->version = FARM_WIRE_VERSION;
    if (farm_wire_send(self->sock, NULL, 0, env) < 0)
        farm_log_debug("send failed: %s", farm_error_last());
}

static void s_cache_path(const farm_agent_t *self, char *buf, size_t len, const char *digest,
                         const char *suffix)
{
    snprintf(buf, len, "%s/%s%s", self->cache_dir, digest + strlen("sha256:"), suffix);
}

static int s_jobs_running(const farm_agent_t *self)
{
    int n = 0;
    for (const job_t *j = self->jobs; j; j = j->next)
        n++;
    return n;
}

/* ------------------------------------------------------------------ jobs */

static void s_job_free(job_t *job)
{
    if (job->pid > 0) {
        kill(job->pid, SIGKILL);
        waitpid(job->pid, NULL, 0);
    }
    if (job->fd >= 0)
        close(job->fd);
    if (job->dir[0])
        farm_fs_rmtree(job->dir);
    for (int i = 0; i < TAIL_LINES; i++)
        free(job->tail[i]);
    farm_wire_free(&job->assign_env);
    free(job);
}

static void s_job_unlink(farm_agent_t *self, job_t *job)
{
    for (job_t **pp = &self->jobs; *pp; pp = &(*pp)->next) {
        if (*pp == job) {
            *pp = job->next;
            return;
        }
    }
}

static void s_job_report(farm_agent_t *self, job_t *job, int ok, const char *error,
                         const char *media, const char *digest, uint64_t size,
                         uint64_t build_ms, uint64_t push_ms)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__JobResult r = FARM__JOB_RESULT__INIT;
    Farm__Descriptor d = FARM__DESCRIPTOR__INIT;
    char *tail[TAIL_LINES];
    unsigned n = job->tail_pos < TAIL_LINES ? job->tail_pos : TAIL_LINES;
    size_t nt = 0;

    for (unsigned i = job->tail_pos - n; i < job->tail_pos; i++)
        if (job->tail[i % TAIL_LINES])
            tail[nt++] = job->tail[i % TAIL_LINES];
    r.job_id = job->a->job_id;
    r.attempt = job->a->attempt;
    r.ok = ok;
    r.error = (char *)(error ? error : "");
    if (ok) {
        d.media_type = (char *)media;
        d.digest = (char *)digest;
        d.size = size;
        d.platform = job->a->platform;
        r.image = &d;
    } else {
        r.n_log_tail = nt;
        r.log_tail = tail;
    }
    r.build_ms = build_ms;
    r.push_ms = push_ms;
    env.body_case = FARM__ENVELOPE__BODY_JOB_RESULT;
    env.job_result = &r;
    s_send(self, &env);
    farm_log_info("job=%s attempt=%u platform=%s %s%s%s", job->a->job_id, job->a->attempt,
                  job->a->platform, ok ? "pushed " : "failed: ", ok ? digest : error,
                  ok ? "" : "");
}

static void s_job_fail(farm_agent_t *self, job_t *job, const char *error)
{
    s_job_report(self, job, 0, error, NULL, NULL, 0, 0, 0);
    s_job_unlink(self, job);
    s_job_free(job);
}

static void s_job_line(void *arg, const char *line)
{
    job_t *job = arg;
    farm_agent_t *self = job->agent;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__JobLog l = FARM__JOB_LOG__INIT;
    unsigned slot;

    if (strncmp(line, "@@result ", 9) == 0) {
        snprintf(job->result, sizeof job->result, "%s", line + 9);
        return;
    }
    slot = job->tail_pos++ % TAIL_LINES;
    free(job->tail[slot]);
    job->tail[slot] = strdup(line);
    if (job->cancelled)
        return;
    l.job_id = job->a->job_id;
    l.attempt = job->a->attempt;
    l.line = (char *)line;
    env.body_case = FARM__ENVELOPE__BODY_JOB_LOG;
    env.job_log = &l;
    s_send(self, &env);
}

static int s_worker_main(void *arg)
{
    return farm_worker_run(arg);
}

static void s_job_start(farm_agent_t *self, job_t *job)
{
    const Farm__JobAssign *a = job->a;
    farm_worker_job_t w = {0};
    farm_kv_t *kv = calloc(a->n_build_args + 1, sizeof *kv);
    char tar[1200];

    if (!kv) {
        s_job_fail(self, job, "agent out of memory");
        return;
    }
    snprintf(job->dir, sizeof job->dir, "%s/job-%u-%d", self->jobs_dir, ++self->seq, (int)getpid());
    if (farm_fs_mkdirs(job->dir) < 0) {
        free(kv);
        job->dir[0] = '\0';
        s_job_fail(self, job, farm_error_last());
        return;
    }
    for (size_t i = 0; i < a->n_build_args; i++) {
        kv[i].key = a->build_args[i]->key;
        kv[i].value = a->build_args[i]->value;
    }
    s_cache_path(self, tar, sizeof tar, a->context_digest, ".tar");
    w.job_id = a->job_id;
    w.platform = a->platform;
    w.context_tar = tar;
    w.job_dir = job->dir;
    w.dockerfile = a->dockerfile;
    w.args = kv;
    w.n_args = a->n_build_args;
    w.registry = a->registry;
    w.repository = a->repository;
    w.insecure = a->insecure;
    w.builder = &self->opts.builder;
    job->pid = farm_proc_fork(&job->fd, s_worker_main, &w);
    free(kv);
    if (job->pid < 0) {
        job->pid = 0;
        s_job_fail(self, job, farm_error_last());
        return;
    }
    job->state = JOB_RUNNING;
    job->started = farm_now_ms();
    farm_log_info("job=%s attempt=%u platform=%s started (worker pid %d)", a->job_id, a->attempt,
                  a->platform, (int)job->pid);
}

static void s_job_readable(farm_agent_t *self, job_t *job)
{
    int rc = farm_linebuf_read(&job->lb, job->fd, s_job_line, job);
    int status = 0;
    char media[128], digest[FARM_DIGEST_STRLEN];
    unsigned long long size, bms, pms;

    if (rc == 0)
        return;
    close(job->fd);
    job->fd = -1;
    waitpid(job->pid, &status, 0);
    job->pid = 0;
    if (job->cancelled) {
        farm_log_info("job=%s cancelled", job->a->job_id);
    } else if (sscanf(job->result, "ok %127s %71s %llu %llu %llu", media, digest, &size, &bms,
                      &pms) == 5) {
        s_job_report(self, job, 1, NULL, media, digest, size, bms, pms);
    } else if (strncmp(job->result, "error ", 6) == 0) {
        s_job_report(self, job, 0, job->result + 6, NULL, NULL, 0, 0, 0);
    } else {
        char msg[128];
        snprintf(msg, sizeof msg, "job worker died (status %d) without a result", status);
        s_job_report(self, job, 0, msg, NULL, NULL, 0, 0, 0);
    }
    s_job_unlink(self, job);
    s_job_free(job);
}

/* ------------------------------------------------------------------ contexts */

static int s_cache_needed(const farm_agent_t *self, const char *hex)
{
    for (const job_t *j = self->jobs; j; j = j->next)
        if (strcmp(j->a->context_digest + strlen("sha256:"), hex) == 0)
            return 1;
    return 0;
}

/* Keeps the context cache under --cache-max: least recently used first (mtime is the
 * last use), never a context a current job needs. */
static void s_cache_trim(farm_agent_t *self)
{
    typedef struct {
        char hex[65];
        time_t mtime;
        unsigned long long size;
    } entry_t;
    entry_t *ents = NULL;
    size_t n = 0, cap = 0;
    unsigned long long total = 0, max = self->opts.cache_max ? self->opts.cache_max : 10ULL << 30;
    DIR *d = opendir(self->cache_dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d))) {
        char path[1400];
        struct stat st;
        if (strlen(e->d_name) != 68 || strcmp(e->d_name + 64, ".tar") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", self->cache_dir, e->d_name);
        if (stat(path, &st) != 0)
            continue;
        if (n == cap) {
            entry_t *grown = realloc(ents, (cap = cap ? cap * 2 : 16) * sizeof *ents);
            if (!grown)
                break;
            ents = grown;
        }
        memcpy(ents[n].hex, e->d_name, 64);
        ents[n].hex[64] = '\0';
        ents[n].mtime = st.st_mtime;
        ents[n].size = (unsigned long long)st.st_size;
        total += ents[n++].size;
    }
    closedir(d);
    while (total > max) {
        size_t oldest = n;
        for (size_t i = 0; i < n; i++)
            if (ents[i].size && !s_cache_needed(self, ents[i].hex) &&
                (oldest == n || ents[i].mtime < ents[oldest].mtime))
                oldest = i;
        if (oldest == n)
            break; /* all in use */
        {
            char path[1400];
            snprintf(path, sizeof path, "%s/%s.tar", self->cache_dir, ents[oldest].hex);
            if (unlink(path) == 0)
                farm_log_info("evicted context sha256:%s (%llu bytes) from the cache",
                              ents[oldest].hex, ents[oldest].size);
        }
        total -= ents[oldest].size;
        ents[oldest].size = 0;
    }
    free(ents);
}

static fetch_t *s_fetch_find(farm_agent_t *self, const char *digest)
{
    for (fetch_t *f = self->fetches; f; f = f->next)
        if (strcmp(f->digest, digest) == 0)
            return f;
    return NULL;
}

/* Keeps up to FARM_WIRE_WINDOW bytes of chunk requests in flight (no stop-and-wait). */
static void s_fetch_pump(farm_agent_t *self, fetch_t *f)
{
    do {
        Farm__Envelope env = FARM__ENVELOPE__INIT;
        Farm__ContextGet g = FARM__CONTEXT_GET__INIT;
        if (f->total && f->requested >= f->total)
            break;
        if (!f->total && f->requested > f->offset)
            break; /* size unknown: one request until the first chunk says it */
        g.digest = f->digest;
        g.offset = f->requested;
        env.body_case = FARM__ENVELOPE__BODY_CONTEXT_GET;
        env.context_get = &g;
        s_send(self, &env);
        f->requested += FARM_WIRE_CHUNK;
    } while (f->requested - f->offset < FARM_WIRE_WINDOW);
    f->last_activity = farm_now_ms();
}

/* Nothing arrived for a while (a request lost with a connection): ask again from here. */
static void s_fetch_request(farm_agent_t *self, fetch_t *f)
{
    f->requested = f->offset;
    s_fetch_pump(self, f);
}

static void s_fetch_drop(farm_agent_t *self, fetch_t *f, int keep_partial)
{
    char path[1200];
    for (fetch_t **pp = &self->fetches; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    if (f->fd >= 0)
        close(f->fd);
    if (!keep_partial) {
        s_cache_path(self, path, sizeof path, f->digest, ".partial");
        unlink(path);
    }
    farm_sha256_destroy(&f->sha);
    free(f);
}

/* Every job waiting on `digest` starts, or fails with `error`. */
static void s_fetch_done(farm_agent_t *self, const char *digest, const char *error)
{
    for (job_t *j = self->jobs, *next; j; j = next) {
        next = j->next;
        if (j->state != JOB_FETCHING || strcmp(j->a->context_digest, digest) != 0)
            continue;
        if (error) {
            char msg[1024];
            snprintf(msg, sizeof msg, "fetching context %s: %s", digest, error);
            s_job_fail(self, j, msg);
        } else {
            s_job_start(self, j);
        }
    }
}

static void s_fetch_start(farm_agent_t *self, const char *digest, uint64_t total)
{
    char path[1200];
    fetch_t *f;

    if (s_fetch_find(self, digest))
        return;
    f = calloc(1, sizeof *f);
    if (!f) {
        s_fetch_done(self, digest, "out of memory");
        return;
    }
    snprintf(f->digest, sizeof f->digest, "%s", digest);
    f->total = total;
    s_cache_path(self, path, sizeof path, digest, ".partial");
    f->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    f->sha = farm_sha256_new();
    f->next = self->fetches;
    self->fetches = f;
    if (f->fd < 0 || !f->sha) {
        char msg[1400];
        snprintf(msg, sizeof msg, "cannot write %s: %s", path, strerror(errno));
        s_fetch_drop(self, f, 0);
        s_fetch_done(self, digest, msg);
        return;
    }
    s_fetch_request(self, f);
}

static void s_on_chunk(farm_agent_t *self, const Farm__ContextChunk *c)
{
    fetch_t *f = s_fetch_find(self, c->digest);
    char digest[FARM_DIGEST_STRLEN], got[FARM_DIGEST_STRLEN], partial[1200], final[1200];

    if (!f)
        return;
    snprintf(digest, sizeof digest, "%s", f->digest);
    if (c->error && c->error[0]) {
        s_fetch_drop(self, f, 0);
        s_fetch_done(self, digest, c->error);
        return;
    }
    if (c->offset != f->offset)
        return; /* a duplicate of a re-requested chunk */
    if (c->total > (16ULL << 30) || f->offset + c->data.len > c->total ||
        (c->data.len == 0 && f->offset < c->total)) {
        s_fetch_drop(self, f, 0);
        s_fetch_done(self, digest, "coordinator sent a chunk out of order");
        return;
    }
    if (write(f->fd, c->data.data, c->data.len) != (ssize_t)c->data.len) {
        s_fetch_drop(self, f, 0);
        s_fetch_done(self, digest, "write to the context cache failed");
        return;
    }
    farm_sha256_update(f->sha, c->data.data, c->data.len);
    f->offset += c->data.len;
    if (f->total != c->total) {
        f->total = c->total;
        f->requested = f->offset; /* the size we were told was wrong: re-plan */
    }
    if (f->offset < c->total) {
        s_fetch_pump(self, f);
        return;
    }
    farm_sha256_final(f->sha, got);
    s_cache_path(self, partial, sizeof partial, digest, ".partial");
    s_cache_path(self, final, sizeof final, digest, ".tar");
    if (strcmp(got, digest) != 0) {
        s_fetch_drop(self, f, 0);
        s_fetch_done(self, digest, "received bytes do not match the digest");
        return;
    }
    close(f->fd);
    f->fd = -1;
    if (rename(partial, final) != 0) {
        s_fetch_drop(self, f, 0);
        s_fetch_done(self, digest, "cannot store the context in the cache");
        return;
    }
    farm_log_info("cached context %s (%llu bytes)", digest, (unsigned long long)f->offset);
    s_fetch_drop(self, f, 1);
    s_fetch_done(self, digest, NULL);
    s_cache_trim(self);
}

/* ------------------------------------------------------------------ messages */

static void s_on_assign(farm_agent_t *self, Farm__Envelope **env_p)
{
    const Farm__JobAssign *a = (*env_p)->job_assign;
    char path[1200];
    struct stat st;
    job_t *job;

    for (job_t *j = self->jobs; j; j = j->next)
        if (strcmp(j->a->job_id, a->job_id) == 0 && j->a->attempt == a->attempt)
            return; /* duplicate */
    job = calloc(1, sizeof *job);
    if (!job)
        return;
    job->fd = -1;
    job->agent = self;
    job->assign_env = *env_p;
    *env_p = NULL;
    job->a = job->assign_env->job_assign;
    job->next = self->jobs;
    self->jobs = job;
    farm_log_info("job=%s attempt=%u platform=%s assigned (build %s)", a->job_id, a->attempt,
                  a->platform, a->build_id);
    if (!farm_digest_valid(a->context_digest)) {
        s_job_fail(self, job, "job names no valid context digest");
        return;
    }
    job->state = JOB_FETCHING;
    s_cache_path(self, path, sizeof path, a->context_digest, ".tar");
    if (stat(path, &st) == 0) {
        utimensat(AT_FDCWD, path, NULL, 0); /* used now: last to be evicted */
        s_job_start(self, job);
    }
    else
        s_fetch_start(self, a->context_digest, a->context_size);
}

static void s_on_cancel(farm_agent_t *self, const Farm__JobCancel *c)
{
    for (job_t *j = self->jobs; j; j = j->next) {
        if (strcmp(j->a->job_id, c->job_id) != 0 || j->a->attempt != c->attempt)
            continue;
        farm_log_info("job=%s cancelling: %s", c->job_id, c->reason);
        j->cancelled = 1;
        if (j->pid > 0)
            kill(j->pid, SIGKILL); /* the builder dies with it (PDEATHSIG) */
        else {
            s_job_unlink(self, j);
            s_job_free(j);
        }
        return;
    }
}

static void s_drop_all_jobs(farm_agent_t *self, const char *why)
{
    if (self->jobs)
        farm_log_warn("dropping %d job(s): %s", s_jobs_running(self), why);
    while (self->jobs) {
        job_t *j = self->jobs;
        self->jobs = j->next;
        s_job_free(j);
    }
    while (self->fetches)
        s_fetch_drop(self, self->fetches, 0);
}

static void s_hello(farm_agent_t *self)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Hello h = FARM__HELLO__INIT;
    h.name = (char *)self->opts.name;
    h.n_platforms = self->opts.n_platforms;
    h.platforms = self->opts.platforms;
    h.slots = (uint32_t)self->opts.slots;
    h.builder = (char *)self->opts.builder.builder;
    h.version = FARM_VERSION;
    h.session = self->session;
    env.body_case = FARM__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    s_send(self, &env);
    farm_log_debug("HELLO sent to %s", self->opts.coordinator);
}

static uint64_t s_new_session(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, 0) != sizeof s)
        s = (uint64_t)farm_now_ms() ^ ((uint64_t)getpid() << 32);
    return s ? s : 1;
}

static int s_connect(farm_agent_t *self)
{
    if (self->sock)
        zmq_close(self->sock);
    self->sock = farm_wire_socket(self->zctx, FARM_WIRE_DEALER_CLIENT, self->opts.coordinator,
                                  self->opts.name);
    if (!self->sock)
        return FARM_ERROR;
    self->ready = 0;
    self->session = s_new_session();
    self->last_recv = farm_now_ms();
    s_hello(self);
    return 0;
}

static void s_on_message(farm_agent_t *self, Farm__Envelope **env_p)
{
    Farm__Envelope *env = *env_p;

    self->last_recv = farm_now_ms();
    switch (env->body_case) {
    case FARM__ENVELOPE__BODY_WELCOME:
        self->ready = 1;
        self->backoff_ms = BACKOFF_MIN_MS;
        if (env->welcome->heartbeat_ms >= 50 && env->welcome->heartbeat_ms <= 600000)
            self->heartbeat_ms = (int)env->welcome->heartbeat_ms;
        if (env->welcome->liveness >= 1 && env->welcome->liveness <= 100)
            self->liveness = (int)env->welcome->liveness;
        farm_log_info("welcomed by %s as %s (heartbeat %d ms)", self->opts.coordinator,
                      self->opts.name, self->heartbeat_ms);
        break;
    case FARM__ENVELOPE__BODY_REJECT:
        if (env->reject->rehello) {
            /* the coordinator restarted or declared us lost: what we ran is void. One
             * new session; the REJECTs of messages already in flight change nothing. */
            if (self->ready) {
                s_drop_all_jobs(self, "the coordinator forgot this session");
                self->ready = 0;
                self->session = s_new_session();
                s_hello(self);
            }
        } else {
            farm_log_error("rejected by %s: %s", self->opts.coordinator, env->reject->reason);
            self->fatal = 1;
        }
        break;
    case FARM__ENVELOPE__BODY_HEARTBEAT: break;
    case FARM__ENVELOPE__BODY_JOB_ASSIGN:
        if (self->ready)
            s_on_assign(self, env_p);
        break;
    case FARM__ENVELOPE__BODY_JOB_CANCEL: s_on_cancel(self, env->job_cancel); break;
    case FARM__ENVELOPE__BODY_CONTEXT_CHUNK: s_on_chunk(self, env->context_chunk); break;
    default:
        farm_log_warn("unexpected message type %d from the coordinator; ignored",
                      (int)env->body_case);
    }
}

/* ------------------------------------------------------------------ lifecycle */

farm_agent_t *farm_agent_new(const farm_agent_opts_t *opts)
{
    farm_agent_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->opts = *opts;
    self->heartbeat_ms = 1000;
    self->liveness = 3;
    self->backoff_ms = BACKOFF_MIN_MS;
    snprintf(self->cache_dir, sizeof self->cache_dir, "%s/cache", opts->work_dir);
    snprintf(self->jobs_dir, sizeof self->jobs_dir, "%s/jobs", opts->work_dir);
    if (farm_fs_mkdirs(self->cache_dir) < 0 || farm_fs_mkdirs(self->jobs_dir) < 0) {
        free(self);
        return NULL;
    }
    self->zctx = zmq_ctx_new();
    if (s_connect(self) < 0) {
        farm_agent_destroy(&self);
        return NULL;
    }
    return self;
}

void farm_agent_destroy(farm_agent_t **self_p)
{
    farm_agent_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    s_drop_all_jobs(self, "agent stopping");
    if (self->sock)
        zmq_close(self->sock);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    free(self);
    *self_p = NULL;
}

int farm_agent_run(farm_agent_t *self, volatile int *stop)
{
    zmq_pollitem_t items[1 + 256];
    job_t *polled[256];

    self->next_beat = farm_now_ms() + self->heartbeat_ms;
    while (!*stop && !self->fatal) {
        int n = 1;
        long long now = farm_now_ms();
        long timeout = self->next_beat > now ? (long)(self->next_beat - now) : 0;

        items[0] = (zmq_pollitem_t){.socket = self->sock, .events = ZMQ_POLLIN};
        for (job_t *j = self->jobs; j && n < (int)(sizeof items / sizeof items[0]); j = j->next) {
            if (j->fd < 0)
                continue;
            polled[n - 1] = j;
            items[n++] = (zmq_pollitem_t){.fd = j->fd, .events = ZMQ_POLLIN};
        }
        if (zmq_poll(items, n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            return farm_error_set(FARM_ERROR, "zmq_poll: %s", zmq_strerror(errno));
        }
        if (items[0].revents & ZMQ_POLLIN) {
            for (int budget = 0; budget < 1000; budget++) {
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
        }
        for (int i = 1; i < n; i++)
            if (items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR))
                s_job_readable(self, polled[i - 1]);

        now = farm_now_ms();
        if (now < self->next_beat)
            continue;
        self->next_beat = now + self->heartbeat_ms;
        if (now - self->last_recv > (long long)self->heartbeat_ms * self->liveness) {
            /* Paranoid Pirate: the coordinator is gone; reconnect with backoff */
            if (now < self->next_reconnect)
                continue;
            farm_log_warn("coordinator %s silent for %lld ms; reconnecting (next try in %d ms)",
                          self->opts.coordinator, now - self->last_recv, self->backoff_ms);
            s_drop_all_jobs(self, "lost the coordinator");
            s_connect(self);
            self->next_reconnect = now + self->backoff_ms;
            if (self->backoff_ms < BACKOFF_MAX_MS)
                self->backoff_ms *= 2;
            continue;
        }
        if (self->ready) {
            Farm__Envelope env = FARM__ENVELOPE__INIT;
            Farm__Heartbeat hb = FARM__HEARTBEAT__INIT;
            hb.jobs_running = (uint32_t)s_jobs_running(self);
            env.body_case = FARM__ENVELOPE__BODY_HEARTBEAT;
            env.heartbeat = &hb;
            s_send(self, &env);
        } else {
            s_hello(self); /* WELCOME not seen yet: ask again */
        }
        for (fetch_t *f = self->fetches; f; f = f->next)
            if (now - f->last_activity > 10000LL)
                s_fetch_request(self, f); /* a lost chunk request: ask again */
    }
    return self->fatal ? FARM_EAUTH : 0;
}
