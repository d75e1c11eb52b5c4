/* SPDX-License-Identifier: Apache-2.0 */
/* farm-loadgen: N simulated agents and M simulated clients in one process, speaking the
 * real wire protocol to a real farm-coordinator, to measure it under load (dispatch,
 * RSS, builds/s). bench/loadgen.sh sets up the registry and the coordinator and runs this.
 *
 * Agents: one DEALER each, routing id = node name, HELLO (name, one platform, slots,
 * FARM_VERSION, session), heartbeats every WELCOME.heartbeat_ms, and every JobAssign
 * answered at once with JobResult ok naming an image that really exists in the registry
 * for that platform (pushed here at start, so the coordinator's stitch finds it).
 * Clients: one DEALER each; offer/upload one tiny context once, then Submit builds and
 * read Events and BuildDone.
 *
 * Plans:
 *   queue   agents connect and hold every job they are given; clients submit enough
 *           builds to fill every slot plus --jobs queued jobs; the coordinator's RSS is
 *           read; then the agents answer everything at once and JobAssigns per second
 *           are measured until the queue is empty (dispatch rate), then the builds finish.
 *   builds  clients keep --in-flight builds each in flight for --duration seconds; no-op
 *           builds per second end to end, dispatches per second, latency, and the same
 *           rates in the first and the last window (decay check).
 *
 * Results go to stdout as KEY=VALUE lines (prefixed with --prefix), progress to stderr.
 * Every wait has a deadline: a stalled coordinator ends the run at --deadline with what
 * was measured, never a hang. This is a benchmark: targets are printed, not asserted. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <curl/curl.h>
#include <zmq.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"
#include "common/platform.h"
#include "common/registry.h"
#include "common/wire.h"

/* The scale targets, printed next to the figures (a benchmark, not a test). */
#define S_TARGET_DISPATCH_PER_S 20000 /* 500 agents, 10,000 queued jobs, this 2-core box */
#define S_TARGET_RSS_MIB 64           /* 1,000 agents, 10,000 queued jobs */

#define S_MAX_PLATFORMS 16
#define S_SUBMIT_WINDOW 64     /* submits awaiting Accepted per client */
#define S_RECV_BUDGET 256      /* messages read from one socket per turn */
#define S_LAT_MAX_MS 120000    /* latency histogram range, 1 ms buckets */
#define S_EVENT_KINDS 16

typedef enum { PLAN_QUEUE, PLAN_BUILDS } s_plan_t;
typedef enum { AG_IDLE, AG_HELLO, AG_READY, AG_REFUSED } s_agent_state_t;
typedef enum { CTX_NONE, CTX_OFFERED, CTX_UPLOADING, CTX_HAVE, CTX_ERROR } s_ctx_state_t;

typedef struct {
    char *job_id;
    uint32_t attempt;
} s_held_t;

typedef struct {
    char name[FARM_NAME_MAX + 1];
    size_t plat;
    size_t idx; /* in lg->socks */
    void *sock;
    uint64_t session;
    s_agent_state_t state;
    long long hello_at, next_hb, last_rx, next_retry;
    int got_rehello, went_silent, backoff_ms;
    s_held_t *held;
    size_t n_held, cap_held;
} s_agent_t;

typedef struct {
    char id[FARM_ID_MAX + 1];
    long long t_submit;
} s_flight_t;

typedef struct {
    char name[32];
    size_t idx; /* in lg->socks */
    void *sock;
    s_ctx_state_t ctx;
    long long pending[S_SUBMIT_WINDOW]; /* submit times awaiting Accepted/Refused, FIFO */
    size_t pend_head, n_pend;
    s_flight_t *flights;
    size_t n_flights, cap_flights;
    long long to_submit; /* queue plan: builds left to submit */
    unsigned seq;
} s_client_t;

typedef struct {
    char media_type[128];
    char digest[FARM_DIGEST_STRLEN];
    uint64_t size;
    char platform[FARM_PLATFORM_STRLEN];
} s_image_t;

typedef struct {
    /* options */
    const char *agents_ep, *clients_ep, *registry, *repository, *prefix, *node_prefix;
    char *platforms[S_MAX_PLATFORMS];
    size_t n_platforms, build_platforms;
    size_t n_agents, n_clients;
    int slots, in_flight, io_threads, use_zmq_poll;
    long long jobs;
    s_plan_t plan;
    int duration_s, window_s, deadline_s, connect_timeout_s, fill_timeout_s, drain_timeout_s,
        finish_timeout_s;
    pid_t coord_pid;

    /* runtime */
    void *zctx;
    s_agent_t *agents;
    s_client_t *clients;
    void **socks;          /* agents first, then clients */
    size_t n_socks;
    zmq_pollitem_t *items; /* --reactor zmq_poll */
    int epfd;              /* --reactor epoll: the sockets' ZMQ_FDs */
    unsigned char *dirty;  /* per socket: to be read this turn */
    size_t *dirty_list, n_dirty;
    s_image_t images[S_MAX_PLATFORMS];
    unsigned char ctx_tar[2048];
    size_t ctx_len;
    char ctx_digest[FARM_DIGEST_STRLEN];
    int hold, submitting, fatal, coord_gone;
    int log_lines;            /* JobLog lines each agent sends before a job's result */
    int hb_ms, liveness;
    long long t_start, hard_deadline, next_scan, next_rss, next_progress;

    /* counters */
    long long assigns, first_assigns, results, heartbeats, send_failures, bad_messages;
    long long rehello_rejects, agents_rehello, agents_silent, agents_refused, welcomes,
        rehellos_sent, hello_resends, reconnects, cancels;
    long long submits, accepted_builds, accepted_jobs, refused, builds_ok, builds_failed;
    long long accepted_per_plat[S_MAX_PLATFORMS];
    long long events[S_EVENT_KINDS];
    long long max_silence_ms, last_assign_at, last_done_at;
    long rss_kib_max;
    char first_refusal[512], first_failure[512], first_reject[512];
    int nodes_reply, nodes_ready, nodes_lost, nodes_unknown, nodes_other;

    /* time series: one bucket per second since bucket_t0 */
    long long bucket_t0;
    size_t n_buckets;
    long long *b_assigns, *b_builds;
    uint32_t *lat_ms; /* S_LAT_MAX_MS + 1 buckets, the last one is "longer" */
    long long lat_n;
} s_lg_t;

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* ------------------------------------------------------------------ output */

static void s_note(const s_lg_t *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_note(const s_lg_t *lg, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "[loadgen %6.1fs] ", (double)(farm_now_ms() - lg->t_start) / 1000.0);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* One result line: PREFIXkey=value (a "# ..." comment may follow the value). */
static void s_out(const s_lg_t *lg, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_out(const s_lg_t *lg, const char *key, const char *fmt, ...)
{
    va_list ap;
    printf("%s%s=", lg->prefix, key);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* ------------------------------------------------------------------ the coordinator's /proc */

static long s_rss_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    size_t flen = strlen(field);
    long kib = -1;
    FILE *f;

    if (pid <= 0 || snprintf(path, sizeof path, "/proc/%d/status", (int)pid) >= (int)sizeof path)
        return -1;
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            kib = strtol(line + flen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

/* utime + stime of the process, in seconds; -1 when it is gone. */
static double s_cpu_s(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut = 0, st = 0;
    size_t n;
    FILE *f;

    if (pid <= 0 || snprintf(path, sizeof path, "/proc/%d/stat", (int)pid) >= (int)sizeof path)
        return -1;
    if (!(f = fopen(path, "r")))
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* fields after "(comm)": state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime (proc(5)) */
    if (!(p = strrchr(buf, ')')) ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double s_self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

typedef struct {
    long long t;
    double coord_cpu, self_cpu;
} s_mark_t;

static s_mark_t s_mark(const s_lg_t *lg)
{
    s_mark_t m = {farm_now_ms(), s_cpu_s(lg->coord_pid), s_self_cpu_s()};
    return m;
}

/* CPU use of the coordinator and of the loadgen since m, in % of one core. */
static void s_out_cpu(const s_lg_t *lg, const char *what, const s_mark_t *m)
{
    s_mark_t now = s_mark(lg);
    double secs = (double)(now.t - m->t) / 1000.0;
    char key[128];

    if (secs <= 0)
        return;
    if (m->coord_cpu >= 0 && now.coord_cpu >= 0 &&
        snprintf(key, sizeof key, "%s_coordinator_cpu_pct", what) < (int)sizeof key)
        s_out(lg, key, "%.0f", (now.coord_cpu - m->coord_cpu) / secs * 100.0);
    if (snprintf(key, sizeof key, "%s_loadgen_cpu_pct", what) < (int)sizeof key)
        s_out(lg, key, "%.0f", (now.self_cpu - m->self_cpu) / secs * 100.0);
}

/* ------------------------------------------------------------------ registry images */

static int s_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f)
        return farm_error_set(FARM_EIO, "cannot create %s: %s", path, strerror(errno));
    ok = fwrite(data, 1, len, f) == len;
    if (fclose(f) != 0 || !ok)
        return farm_error_set(FARM_EIO, "cannot write %s", path);
    return 0;
}

/* One tiny OCI image per platform in REGISTRY/REPOSITORY, pushed by digest (no tag): an
 * empty tar layer and a config with the platform's os/architecture/variant. The bytes
 * are deterministic, so every run names the same digests and a re-push is a no-op. */
static int s_push_images(s_lg_t *lg)
{
    farm_registry_opts_t opts = {.insecure = 1};
    farm_registry_t *reg = NULL;
    char dir[] = "/tmp/farm-loadgen-XXXXXX", layer_path[256], config_path[256];
    char layer_digest[FARM_DIGEST_STRLEN], config_digest[FARM_DIGEST_STRLEN];
    static const unsigned char empty_tar[1024];
    char config[1024], manifest[2048];
    int rc = 0, made_dir = 0;

    if (!mkdtemp(dir)) {
        rc = farm_error_set(FARM_EIO, "mkdtemp %s: %s", dir, strerror(errno));
        goto done;
    }
    made_dir = 1;
    if ((rc = farm_path_join(layer_path, sizeof layer_path, dir, "layer")) < 0 ||
        (rc = farm_path_join(config_path, sizeof config_path, dir, "config")) < 0)
        goto done;
    if (!(reg = farm_registry_new(lg->registry, &opts))) {
        rc = FARM_ERROR;
        goto done;
    }
    if ((rc = s_write_file(layer_path, empty_tar, sizeof empty_tar)) < 0)
        goto done;
    farm_digest_buffer(layer_digest, empty_tar, sizeof empty_tar);
    if ((rc = farm_registry_blob_push_file(reg, NULL, lg->repository, layer_digest,
                                           layer_path)) < 0)
        goto done;
    for (size_t i = 0; i < lg->n_platforms; i++) {
        farm_platform_t p;
        s_image_t *img = &lg->images[i];
        int n;

        if ((rc = farm_platform_parse(&p, lg->platforms[i])) < 0)
            goto done;
        n = snprintf(config, sizeof config,
                     "{\"architecture\":\"%s\",\"os\":\"%s\"%s%s%s,\"config\":{},"
                     "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
                     p.architecture, p.os, p.variant[0] ? ",\"variant\":\"" : "", p.variant,
                     p.variant[0] ? "\"" : "", layer_digest);
        if (n < 0 || (size_t)n >= sizeof config) {
            rc = farm_error_set(FARM_ETOOBIG, "image config for %s does not fit", lg->platforms[i]);
            goto done;
        }
        if ((rc = s_write_file(config_path, config, (size_t)n)) < 0)
            goto done;
        farm_digest_buffer(config_digest, config, (size_t)n);
        if ((rc = farm_registry_blob_push_file(reg, NULL, lg->repository, config_digest,
                                               config_path)) < 0)
            goto done;
        n = snprintf(manifest, sizeof manifest,
                     "{\"schemaVersion\":2,\"mediaType\":\"%s\","
                     "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
                     "\"digest\":\"%s\",\"size\":%d},"
                     "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
                     "\"digest\":\"%s\",\"size\":%zu}]}",
                     FARM_MEDIA_OCI_MANIFEST, config_digest, (int)strlen(config), layer_digest,
                     sizeof empty_tar);
        if (n < 0 || (size_t)n >= sizeof manifest) {
            rc = farm_error_set(FARM_ETOOBIG, "image manifest for %s does not fit",
                                lg->platforms[i]);
            goto done;
        }
        farm_digest_buffer(img->digest, manifest, (size_t)n);
        if ((rc = farm_registry_manifest_put(reg, NULL, lg->repository, img->digest,
                                             FARM_MEDIA_OCI_MANIFEST, manifest, (size_t)n)) < 0)
            goto done;
        snprintf(img->media_type, sizeof img->media_type, "%s", FARM_MEDIA_OCI_MANIFEST);
        img->size = (uint64_t)n;
        farm_platform_format(img->platform, sizeof img->platform, &p);
        s_note(lg, "image for %s: %s/%s@%s (%d bytes)", img->platform, lg->registry,
               lg->repository, img->digest, n);
    }
done:
    if (made_dir) {
        unlink(layer_path);
        unlink(config_path);
        rmdir(dir);
    }
    farm_registry_destroy(&reg);
    return rc;
}

/* ------------------------------------------------------------------ the context */

/* A one-file ustar archive (a Dockerfile), made by hand: the coordinator only stores and
 * hashes it, and nobody extracts it, but it is a valid tar all the same. */
static void s_make_context(s_lg_t *lg)
{
    static const char body[] = "FROM scratch\nLABEL farm.loadgen=1\n";
    unsigned char *h = lg->ctx_tar;
    unsigned sum = 0;

    memset(lg->ctx_tar, 0, sizeof lg->ctx_tar);
    memcpy(h, "Dockerfile", 10);
    memcpy(h + 100, "0000644", 7);
    memcpy(h + 108, "0000000", 7);
    memcpy(h + 116, "0000000", 7);
    snprintf((char *)h + 124, 12, "%011o", (unsigned)(sizeof body - 1));
    memcpy(h + 136, "00000000000", 11);
    memset(h + 148, ' ', 8);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    memcpy(h + 512, body, sizeof body - 1);
    lg->ctx_len = sizeof lg->ctx_tar; /* header, one data block, two zero blocks */
    farm_digest_buffer(lg->ctx_digest, lg->ctx_tar, lg->ctx_len);
}

/* ------------------------------------------------------------------ sending */

static void s_mark_dirty(s_lg_t *lg, size_t idx)
{
    if (lg->dirty[idx])
        return;
    lg->dirty[idx] = 1;
    lg->dirty_list[lg->n_dirty++] = idx;
}

static int s_send(s_lg_t *lg, size_t idx, Farm__Envelope *env)
{
    int rc = 0;
    env->version = FARM_WIRE_VERSION;
    if (farm_wire_send(lg->socks[idx], NULL, 0, env) < 0) {
        lg->send_failures++;
        rc = -1;
    }
    /* a send may consume the edge on ZMQ_FD that announced an incoming message (zmq_getsockopt(3),
     * ZMQ_FD): read the socket this turn whatever its fd says */
    if (!lg->use_zmq_poll)
        s_mark_dirty(lg, idx);
    return rc;
}

static uint64_t s_new_session(void)
{
    return ((uint64_t)random() << 33) ^ ((uint64_t)random() << 2) ^ (uint64_t)farm_now_ms();
}

static void s_bucket_add(s_lg_t *lg, long long *b)
{
    long long i = (farm_now_ms() - lg->bucket_t0) / 1000;
    if (i >= 0 && (size_t)i < lg->n_buckets)
        b[i]++;
}

/* ------------------------------------------------------------------ simulated agents */

static void s_agent_hello(s_lg_t *lg, s_agent_t *a, int new_session)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Hello h = FARM__HELLO__INIT;
    char *plats[1] = {lg->platforms[a->plat]};

    if (new_session)
        a->session = s_new_session();
    h.name = a->name;
    h.n_platforms = 1;
    h.platforms = plats;
    h.slots = (uint32_t)lg->slots;
    h.builder = "loadgen";
    h.version = FARM_VERSION;
    h.session = a->session;
    env.body_case = FARM__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    s_send(lg, a->idx, &env);
    a->state = AG_HELLO;
    a->hello_at = farm_now_ms();
}

static void s_agent_result(s_lg_t *lg, s_agent_t *a, const char *job_id, uint32_t attempt)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__JobResult r = FARM__JOB_RESULT__INIT;
    Farm__Descriptor d = FARM__DESCRIPTOR__INIT;
    s_image_t *img = &lg->images[a->plat];

    /* a chatty build: its lines reach the coordinator's journal (the build's record) */
    for (int i = 0; i < lg->log_lines; i++) {
        Farm__Envelope le = FARM__ENVELOPE__INIT;
        Farm__JobLog l = FARM__JOB_LOG__INIT;
        char line[128];
        snprintf(line, sizeof line, "STEP %d/%d: RUN echo loadgen line %d of job %.40s", i + 1,
                 lg->log_lines, i, job_id);
        l.job_id = (char *)job_id;
        l.attempt = attempt;
        l.line = line;
        le.body_case = FARM__ENVELOPE__BODY_JOB_LOG;
        le.job_log = &l;
        s_send(lg, a->idx, &le);
    }
    d.media_type = img->media_type;
    d.digest = img->digest;
    d.size = img->size;
    d.platform = img->platform;
    r.job_id = (char *)job_id;
    r.attempt = attempt;
    r.ok = 1;
    r.image = &d;
    env.body_case = FARM__ENVELOPE__BODY_JOB_RESULT;
    env.job_result = &r;
    if (s_send(lg, a->idx, &env) == 0)
        lg->results++;
}

static void s_agent_drop_held(s_agent_t *a)
{
    for (size_t i = 0; i < a->n_held; i++)
        free(a->held[i].job_id);
    a->n_held = 0;
}

/* Holds a job to answer later; answers at once if it cannot be held (out of memory). */
static void s_agent_hold(s_lg_t *lg, s_agent_t *a, const char *job_id, uint32_t attempt)
{
    char *id = NULL;

    if (a->n_held == a->cap_held) {
        size_t cap = a->cap_held ? a->cap_held * 2 : 4;
        s_held_t *h = realloc(a->held, cap * sizeof *h);
        if (!h)
            goto now;
        a->held = h;
        a->cap_held = cap;
    }
    if (!(id = strdup(job_id)))
        goto now;
    a->held[a->n_held].job_id = id;
    a->held[a->n_held++].attempt = attempt;
    return;
now:
    s_agent_result(lg, a, job_id, attempt);
}

static void s_agent_release(s_lg_t *lg, s_agent_t *a)
{
    for (size_t i = 0; i < a->n_held; i++)
        s_agent_result(lg, a, a->held[i].job_id, a->held[i].attempt);
    s_agent_drop_held(a);
}

static void s_agent_cancel(s_agent_t *a, const char *job_id)
{
    for (size_t i = 0; i < a->n_held; i++) {
        if (strcmp(a->held[i].job_id, job_id) != 0)
            continue;
        free(a->held[i].job_id);
        a->held[i] = a->held[--a->n_held];
        return;
    }
}

static void s_agent_message(s_lg_t *lg, s_agent_t *a, const Farm__Envelope *env)
{
    long long now = farm_now_ms();

    if (a->state != AG_REFUSED && now - a->last_rx > lg->max_silence_ms)
        lg->max_silence_ms = now - a->last_rx;
    a->last_rx = now;
    switch (env->body_case) {
    case FARM__ENVELOPE__BODY_WELCOME:
        if (a->state == AG_READY)
            break;
        lg->welcomes++;
        if (env->welcome->heartbeat_ms >= 10 && env->welcome->heartbeat_ms <= 600000)
            lg->hb_ms = (int)env->welcome->heartbeat_ms;
        if (env->welcome->liveness >= 1 && env->welcome->liveness <= 100)
            lg->liveness = (int)env->welcome->liveness;
        a->state = AG_READY;
        a->backoff_ms = 1000;
        /* spread the agents' beats over the interval */
        a->next_hb = now + 1 + random() % lg->hb_ms;
        break;
    case FARM__ENVELOPE__BODY_REJECT:
        if (env->reject->rehello) {
            /* the coordinator declared this node lost (or forgot it): what it held is
             * void; one new session, as farm-agent does */
            lg->rehello_rejects++;
            if (!a->got_rehello) {
                a->got_rehello = 1;
                lg->agents_rehello++;
            }
            if (a->state == AG_READY) {
                s_agent_drop_held(a);
                s_agent_hello(lg, a, 1);
                lg->rehellos_sent++;
            }
        } else if (a->state != AG_REFUSED) {
            a->state = AG_REFUSED;
            lg->agents_refused++;
            if (!lg->first_reject[0])
                snprintf(lg->first_reject, sizeof lg->first_reject, "node %s: %.400s", a->name,
                         env->reject->reason);
        }
        break;
    case FARM__ENVELOPE__BODY_JOB_ASSIGN:
        lg->assigns++;
        /* a job given again after a loss is one more dispatch, not one more job */
        lg->first_assigns += env->job_assign->attempt <= 1;
        lg->last_assign_at = now;
        s_bucket_add(lg, lg->b_assigns);
        if (lg->hold)
            s_agent_hold(lg, a, env->job_assign->job_id, env->job_assign->attempt);
        else
            s_agent_result(lg, a, env->job_assign->job_id, env->job_assign->attempt);
        break;
    case FARM__ENVELOPE__BODY_JOB_CANCEL:
        lg->cancels++;
        s_agent_cancel(a, env->job_cancel->job_id);
        break;
    default: break; /* heartbeats: last_rx above is all they do */
    }
}

/* Reads what waits on the agent's socket; 1 when the budget ran out first. */
static int s_agent_readable(s_lg_t *lg, s_agent_t *a)
{
    for (int i = 0; i < S_RECV_BUDGET; i++) {
        Farm__Envelope *env = NULL;
        int rc = farm_wire_recv(a->sock, NULL, NULL, &env);
        if (rc == FARM_ERETRY)
            return 0;
        if (rc < 0) {
            lg->bad_messages++;
            continue;
        }
        s_agent_message(lg, a, env);
        farm_wire_free(&env);
    }
    return 1;
}

/* farm-agent's session rules: HELLO again every beat until WELCOME; a coordinator silent
 * for `liveness` beats is gone: drop what it gave, HELLO with a new session, backoff 1 s
 * doubling to 32 s, no heartbeats meanwhile (the socket is kept, not reconnected). */
static void s_agent_timers(s_lg_t *lg, s_agent_t *a, long long now)
{
    int silent = now - a->last_rx > (long long)lg->hb_ms * lg->liveness;

    if (a->state == AG_REFUSED || a->state == AG_IDLE)
        return;
    /* the gap so far counts too: a coordinator that never speaks again must show */
    if (now - a->last_rx > lg->max_silence_ms)
        lg->max_silence_ms = now - a->last_rx;
    if (silent && a->state == AG_READY && !a->went_silent) {
        a->went_silent = 1;
        lg->agents_silent++;
    }
    if (silent) {
        if (now < a->next_retry)
            return;
        s_agent_drop_held(a);
        s_agent_hello(lg, a, 1);
        lg->reconnects++;
        a->next_retry = now + a->backoff_ms;
        if (a->backoff_ms < 32000)
            a->backoff_ms *= 2;
        return;
    }
    if (a->state == AG_HELLO) {
        if (now - a->hello_at >= lg->hb_ms) {
            lg->hello_resends++;
            s_agent_hello(lg, a, 0);
        }
        return;
    }
    if (now >= a->next_hb) {
        Farm__Envelope env = FARM__ENVELOPE__INIT;
        Farm__Heartbeat hb = FARM__HEARTBEAT__INIT;
        hb.jobs_running = (uint32_t)a->n_held;
        env.body_case = FARM__ENVELOPE__BODY_HEARTBEAT;
        env.heartbeat = &hb;
        if (s_send(lg, a->idx, &env) == 0)
            lg->heartbeats++;
        a->next_hb += lg->hb_ms;
        if (a->next_hb <= now)
            a->next_hb = now + lg->hb_ms;
    }
}

/* ------------------------------------------------------------------ simulated clients */

static void s_client_offer(s_lg_t *lg, s_client_t *c)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__ContextOffer o = FARM__CONTEXT_OFFER__INIT;
    o.digest = lg->ctx_digest;
    o.size = lg->ctx_len;
    env.body_case = FARM__ENVELOPE__BODY_CONTEXT_OFFER;
    env.context_offer = &o;
    s_send(lg, c->idx, &env);
    c->ctx = CTX_OFFERED;
}

static void s_client_chunk(s_lg_t *lg, s_client_t *c, uint64_t offset)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__ContextChunk ch = FARM__CONTEXT_CHUNK__INIT;
    if (offset > lg->ctx_len)
        offset = 0;
    ch.digest = lg->ctx_digest;
    ch.offset = offset;
    ch.total = lg->ctx_len;
    ch.data.data = lg->ctx_tar + offset;
    ch.data.len = lg->ctx_len - offset;
    env.body_case = FARM__ENVELOPE__BODY_CONTEXT_CHUNK;
    env.context_chunk = &ch;
    s_send(lg, c->idx, &env);
    c->ctx = CTX_UPLOADING;
}

/* Submits one build (platforms rotate so every platform gets its share when a build
 * names fewer than all of them). */
static int s_client_submit(s_lg_t *lg, s_client_t *c)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Submit s = FARM__SUBMIT__INIT;
    char tag[FARM_REFERENCE_MAX], *tags[1] = {tag}, *plats[S_MAX_PLATFORMS];
    size_t first = (size_t)c->seq++ % lg->n_platforms;

    if (c->n_pend == S_SUBMIT_WINDOW)
        return -1;
    if (snprintf(tag, sizeof tag, "%s/%s:lg-%s", lg->registry, lg->repository, c->name) >=
        (int)sizeof tag)
        return -1;
    for (size_t i = 0; i < lg->build_platforms; i++)
        plats[i] = lg->platforms[(first + i) % lg->n_platforms];
    s.n_tags = 1;
    s.tags = tags;
    s.n_platforms = lg->build_platforms;
    s.platforms = plats;
    s.dockerfile = "Dockerfile";
    s.context_digest = lg->ctx_digest;
    s.context_size = lg->ctx_len;
    env.body_case = FARM__ENVELOPE__BODY_SUBMIT;
    env.submit = &s;
    if (s_send(lg, c->idx, &env) < 0)
        return -1;
    c->pending[(c->pend_head + c->n_pend++) % S_SUBMIT_WINDOW] = farm_now_ms();
    lg->submits++;
    return 0;
}

static long long s_client_pop_pending(s_client_t *c)
{
    long long t;
    if (!c->n_pend)
        return 0;
    t = c->pending[c->pend_head];
    c->pend_head = (c->pend_head + 1) % S_SUBMIT_WINDOW;
    c->n_pend--;
    return t;
}

static void s_client_accepted(s_lg_t *lg, s_client_t *c, const Farm__Accepted *acc)
{
    long long t = s_client_pop_pending(c);

    lg->accepted_builds++;
    lg->accepted_jobs += (long long)acc->n_platforms;
    for (size_t i = 0; i < acc->n_platforms; i++)
        for (size_t p = 0; p < lg->n_platforms; p++)
            if (strcmp(acc->platforms[i], lg->images[p].platform) == 0)
                lg->accepted_per_plat[p]++;
    if (c->n_flights == c->cap_flights) {
        size_t cap = c->cap_flights ? c->cap_flights * 2 : 16;
        s_flight_t *f = realloc(c->flights, cap * sizeof *f);
        if (!f)
            return; /* its BuildDone is still counted, without a latency */
        c->flights = f;
        c->cap_flights = cap;
    }
    snprintf(c->flights[c->n_flights].id, sizeof c->flights[0].id, "%s", acc->build_id);
    c->flights[c->n_flights++].t_submit = t;
}

static void s_client_done(s_lg_t *lg, s_client_t *c, const Farm__BuildDone *d)
{
    long long now = farm_now_ms();

    for (size_t i = 0; i < c->n_flights; i++) {
        if (strcmp(c->flights[i].id, d->build_id) != 0)
            continue;
        long long ms = now - c->flights[i].t_submit;
        lg->lat_ms[ms < 0 ? 0 : ms > S_LAT_MAX_MS ? S_LAT_MAX_MS : ms]++;
        lg->lat_n++;
        c->flights[i] = c->flights[--c->n_flights];
        break;
    }
    lg->last_done_at = now;
    if (d->ok) {
        lg->builds_ok++;
        s_bucket_add(lg, lg->b_builds);
    } else {
        lg->builds_failed++;
        if (!lg->first_failure[0])
            snprintf(lg->first_failure, sizeof lg->first_failure, "build %s: %.400s",
                     d->build_id, d->error);
    }
    if (lg->submitting && lg->plan == PLAN_BUILDS)
        s_client_submit(lg, c);
}

static void s_client_nodes(s_lg_t *lg, const Farm__NodesReply *r)
{
    lg->nodes_reply = 1;
    for (size_t i = 0; i < r->n_nodes; i++) {
        const char *st = r->nodes[i]->state;
        if (strcmp(st, "ready") == 0)
            lg->nodes_ready++;
        else if (strcmp(st, "lost") == 0)
            lg->nodes_lost++;
        else if (strcmp(st, "unknown") == 0)
            lg->nodes_unknown++;
        else
            lg->nodes_other++;
    }
}

static void s_client_message(s_lg_t *lg, s_client_t *c, const Farm__Envelope *env)
{
    switch (env->body_case) {
    case FARM__ENVELOPE__BODY_CONTEXT_STATUS: {
        const Farm__ContextStatus *st = env->context_status;
        if (st->error[0]) {
            c->ctx = CTX_ERROR;
            if (!lg->first_refusal[0])
                snprintf(lg->first_refusal, sizeof lg->first_refusal, "context: %.400s",
                         st->error);
        } else if (st->have) {
            c->ctx = CTX_HAVE;
        } else if (c->ctx == CTX_OFFERED) {
            s_client_chunk(lg, c, st->offset);
        }
        break;
    }
    case FARM__ENVELOPE__BODY_ACCEPTED: s_client_accepted(lg, c, env->accepted); break;
    case FARM__ENVELOPE__BODY_REFUSED:
        s_client_pop_pending(c);
        lg->refused++;
        if (!lg->first_refusal[0])
            snprintf(lg->first_refusal, sizeof lg->first_refusal, "submit: %.400s",
                     env->refused->reason);
        break;
    case FARM__ENVELOPE__BODY_EVENT:
        if ((unsigned)env->event->kind < S_EVENT_KINDS)
            lg->events[env->event->kind]++;
        break;
    case FARM__ENVELOPE__BODY_BUILD_DONE: s_client_done(lg, c, env->build_done); break;
    case FARM__ENVELOPE__BODY_NODES_REPLY: s_client_nodes(lg, env->nodes_reply); break;
    default: break;
    }
}

static int s_client_readable(s_lg_t *lg, s_client_t *c)
{
    for (int i = 0; i < S_RECV_BUDGET; i++) {
        Farm__Envelope *env = NULL;
        int rc = farm_wire_recv(c->sock, NULL, NULL, &env);
        if (rc == FARM_ERETRY)
            return 0;
        if (rc < 0) {
            lg->bad_messages++;
            continue;
        }
        s_client_message(lg, c, env);
        farm_wire_free(&env);
    }
    return 1;
}

/* ------------------------------------------------------------------ the reactor */

static size_t s_agents_in(const s_lg_t *lg, s_agent_state_t st);

static void s_timers(s_lg_t *lg)
{
    long long now = farm_now_ms();

    if (now >= lg->next_scan) {
        for (size_t i = 0; i < lg->n_agents; i++)
            s_agent_timers(lg, &lg->agents[i], now);
        lg->next_scan = now + 10;
    }
    if (now >= lg->next_rss && lg->coord_pid > 0) {
        long kib = s_rss_kib(lg->coord_pid, "VmRSS");
        if (kib > lg->rss_kib_max)
            lg->rss_kib_max = kib;
        if (kib < 0 && !lg->coord_gone) {
            /* gone, or a zombie (no VmRSS): nothing more will be measured */
            lg->coord_gone = 1;
            lg->fatal = 1;
            s_note(lg, "the coordinator (pid %d) has exited", (int)lg->coord_pid);
        }
        lg->next_rss = now + 250;
    }
    if (now >= lg->next_progress) {
        if (lg->next_progress)
            s_note(lg, "progress: %zu agents ready, %lld builds accepted, %lld jobs dispatched, "
                   "%lld builds done, %lld agents declared lost, %lld dropped",
                   s_agents_in(lg, AG_READY), lg->accepted_builds, lg->assigns,
                   lg->builds_ok + lg->builds_failed, lg->agents_rehello, lg->agents_silent);
        lg->next_progress = now + 10000;
    }
    /* queue plan: feed submits as Accepted come back (a window per client) */
    for (size_t i = 0; lg->submitting && lg->plan == PLAN_QUEUE && i < lg->n_clients; i++) {
        s_client_t *c = &lg->clients[i];
        while (c->to_submit > 0 && c->n_pend < S_SUBMIT_WINDOW && s_client_submit(lg, c) == 0)
            c->to_submit--;
    }
}

static int s_readable(s_lg_t *lg, size_t idx)
{
    return idx < lg->n_agents ? s_agent_readable(lg, &lg->agents[idx])
                              : s_client_readable(lg, &lg->clients[idx - lg->n_agents]);
}

/* One turn with zmq_poll: every socket is asked every turn. Simple, but each call costs
 * a system call per socket (about 2 ms for 1,000 sockets here), so it is the fallback. */
static void s_turn_zmq_poll(s_lg_t *lg, long timeout_ms)
{
    int n = zmq_poll(lg->items, (int)lg->n_socks, timeout_ms);

    if (n < 0) {
        if (errno != EINTR) {
            s_note(lg, "zmq_poll: %s", zmq_strerror(errno));
            lg->fatal = 1;
        }
        return;
    }
    for (size_t i = 0; n > 0 && i < lg->n_socks; i++)
        if (lg->items[i].revents & ZMQ_POLLIN)
            s_readable(lg, i);
}

/* One turn with epoll over the sockets' ZMQ_FDs: only sockets whose fd fired, or that
 * were sent on (a send can eat the fd's edge), or that had more than a budget waiting,
 * are read; each is read until it says EAGAIN, which re-arms its fd. */
static void s_turn_epoll(s_lg_t *lg, long timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(lg->epfd, evs, 512, lg->n_dirty ? 0 : (int)timeout_ms);
    size_t n0;

    if (n < 0 && errno != EINTR) {
        s_note(lg, "epoll_wait: %s", strerror(errno));
        lg->fatal = 1;
        return;
    }
    for (int i = 0; i < n; i++)
        s_mark_dirty(lg, evs[i].data.u32);
    /* sockets marked while these are read wait for the next turn */
    n0 = lg->n_dirty;
    for (size_t k = 0; k < n0; k++) {
        size_t idx = lg->dirty_list[k];
        lg->dirty[idx] = 0;
        if (s_readable(lg, idx))
            s_mark_dirty(lg, idx);
    }
    memmove(lg->dirty_list, lg->dirty_list + n0, (lg->n_dirty - n0) * sizeof *lg->dirty_list);
    lg->n_dirty -= n0;
}

/* One turn: read what is waiting on any socket, run the timers. */
static void s_turn(s_lg_t *lg, long timeout_ms)
{
    if (lg->use_zmq_poll)
        s_turn_zmq_poll(lg, timeout_ms);
    else
        s_turn_epoll(lg, timeout_ms);
    s_timers(lg);
}

typedef int (*s_done_fn)(s_lg_t *lg);

/* Runs turns until done(lg), the deadline (ms, absolute), the run's hard deadline or a
 * signal. 1 when done, 0 otherwise. */
static int s_run_until(s_lg_t *lg, long long deadline, s_done_fn done)
{
    for (;;) {
        long long now = farm_now_ms();
        if (done && done(lg))
            return 1;
        if (s_stop || lg->fatal || now >= deadline || now >= lg->hard_deadline)
            return 0;
        long long left = deadline < lg->hard_deadline ? deadline - now : lg->hard_deadline - now;
        s_turn(lg, left < 10 ? (long)left : 10);
    }
}

/* ------------------------------------------------------------------ set-up */

static int s_add_socket(s_lg_t *lg, void *sock)
{
    size_t idx = lg->n_socks++;

    lg->socks[idx] = sock;
    lg->items[idx] = (zmq_pollitem_t){.socket = sock, .events = ZMQ_POLLIN};
    if (!lg->use_zmq_poll) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)idx};
        int fd;
        size_t len = sizeof fd;
        if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) != 0)
            return farm_error_set(FARM_ERROR, "zmq_getsockopt ZMQ_FD: %s", zmq_strerror(errno));
        if (epoll_ctl(lg->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
            return farm_error_set(FARM_ERROR, "epoll_ctl: %s", strerror(errno));
        s_mark_dirty(lg, idx); /* whatever came before the fd was watched */
    }
    return 0;
}

static int s_setup_sockets(s_lg_t *lg)
{
    size_t total = lg->n_agents + lg->n_clients;

    if (!(lg->zctx = zmq_ctx_new()))
        return farm_error_set(FARM_ERROR, "zmq_ctx_new: %s", zmq_strerror(errno));
    /* libzmq's default is 1023 sockets per context */
    if (zmq_ctx_set(lg->zctx, ZMQ_MAX_SOCKETS, (int)total + 16) != 0 ||
        zmq_ctx_set(lg->zctx, ZMQ_IO_THREADS, lg->io_threads) != 0)
        return farm_error_set(FARM_ERROR, "zmq_ctx_set: %s", zmq_strerror(errno));
    lg->agents = calloc(lg->n_agents ? lg->n_agents : 1, sizeof *lg->agents);
    lg->clients = calloc(lg->n_clients, sizeof *lg->clients);
    lg->socks = calloc(total, sizeof *lg->socks);
    lg->items = calloc(total, sizeof *lg->items);
    lg->dirty = calloc(total, sizeof *lg->dirty);
    /* an index is listed once while marked, and once more if marked again mid-turn */
    lg->dirty_list = calloc(2 * total, sizeof *lg->dirty_list);
    if (!lg->agents || !lg->clients || !lg->socks || !lg->items || !lg->dirty || !lg->dirty_list)
        return farm_error_set(FARM_ERROR, "out of memory for %zu sockets", total);
    if (!lg->use_zmq_poll && (lg->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        return farm_error_set(FARM_ERROR, "epoll_create1: %s", strerror(errno));
    for (size_t i = 0; i < lg->n_agents; i++) {
        s_agent_t *a = &lg->agents[i];
        int n = snprintf(a->name, sizeof a->name, "%s%04zu", lg->node_prefix, i);
        if (n < 0 || (size_t)n >= sizeof a->name)
            return farm_error_set(FARM_ETOOBIG, "node name %s%04zu is longer than %d characters",
                                  lg->node_prefix, i, FARM_NAME_MAX);
        a->plat = i % lg->n_platforms;
        if (!(a->sock = farm_wire_socket(lg->zctx, FARM_WIRE_DEALER_CLIENT, lg->agents_ep,
                                         a->name)))
            return farm_error_wrap(FARM_ERROR, "agent %s (raise ulimit -n?)", a->name);
        a->idx = lg->n_socks;
        if (s_add_socket(lg, a->sock) < 0)
            return FARM_ERROR;
    }
    for (size_t i = 0; i < lg->n_clients; i++) {
        s_client_t *c = &lg->clients[i];
        snprintf(c->name, sizeof c->name, "c%03zu", i % 1000);
        if (!(c->sock = farm_wire_socket(lg->zctx, FARM_WIRE_DEALER_CLIENT, lg->clients_ep,
                                         NULL)))
            return farm_error_wrap(FARM_ERROR, "client %s (raise ulimit -n?)", c->name);
        c->idx = lg->n_socks;
        if (s_add_socket(lg, c->sock) < 0)
            return FARM_ERROR;
    }
    return 0;
}

static void s_teardown(s_lg_t *lg)
{
    for (size_t i = 0; lg->agents && i < lg->n_agents; i++) {
        s_agent_drop_held(&lg->agents[i]);
        free(lg->agents[i].held);
        if (lg->agents[i].sock)
            zmq_close(lg->agents[i].sock);
    }
    for (size_t i = 0; lg->clients && i < lg->n_clients; i++) {
        free(lg->clients[i].flights);
        if (lg->clients[i].sock)
            zmq_close(lg->clients[i].sock);
    }
    if (lg->zctx)
        zmq_ctx_term(lg->zctx);
    if (lg->epfd > 0)
        close(lg->epfd);
    free(lg->agents);
    free(lg->clients);
    free(lg->socks);
    free(lg->items);
    free(lg->dirty);
    free(lg->dirty_list);
    free(lg->b_assigns);
    free(lg->b_builds);
    free(lg->lat_ms);
    for (size_t i = 0; i < lg->n_platforms; i++)
        free(lg->platforms[i]);
}

static size_t s_agents_in(const s_lg_t *lg, s_agent_state_t st)
{
    size_t n = 0;
    for (size_t i = 0; i < lg->n_agents; i++)
        n += lg->agents[i].state == st;
    return n;
}

static int s_all_answered(s_lg_t *lg)
{
    return s_agents_in(lg, AG_READY) + s_agents_in(lg, AG_REFUSED) == lg->n_agents;
}

static int s_connect_agents(s_lg_t *lg)
{
    long long t0 = farm_now_ms();
    int done;

    for (size_t i = 0; i < lg->n_agents; i++) {
        lg->agents[i].last_rx = t0;
        lg->agents[i].backoff_ms = 1000;
        s_agent_hello(lg, &lg->agents[i], 1);
    }
    done = s_run_until(lg, t0 + lg->connect_timeout_s * 1000LL, s_all_answered);
    s_out(lg, "agents", "%zu", lg->n_agents);
    s_out(lg, "agents_ready", "%zu", s_agents_in(lg, AG_READY));
    s_out(lg, "agents_connect_s", "%.2f", (double)(farm_now_ms() - t0) / 1000.0);
    if (lg->agents_refused)
        s_out(lg, "agents_refused", "%lld  # first: %s", lg->agents_refused, lg->first_reject);
    if (!done)
        s_note(lg, "only %zu of %zu agents welcomed within %d s", s_agents_in(lg, AG_READY),
               lg->n_agents, lg->connect_timeout_s);
    return s_agents_in(lg, AG_READY) > 0 ? 0 : -1;
}

static int s_first_has_context(s_lg_t *lg)
{
    return lg->clients[0].ctx == CTX_HAVE || lg->clients[0].ctx == CTX_ERROR;
}

static int s_all_have_context(s_lg_t *lg)
{
    for (size_t i = 0; i < lg->n_clients; i++)
        if (lg->clients[i].ctx != CTX_HAVE && lg->clients[i].ctx != CTX_ERROR)
            return 0;
    return 1;
}

/* The first client uploads; the others offer afterwards and are told "have" (two
 * uploads of one digest at once are not what this measures). */
static int s_upload_context(s_lg_t *lg)
{
    long long deadline = farm_now_ms() + 30000;

    s_client_offer(lg, &lg->clients[0]);
    if (!s_run_until(lg, deadline, s_first_has_context) || lg->clients[0].ctx != CTX_HAVE) {
        s_note(lg, "the context upload did not complete: %s",
               lg->first_refusal[0] ? lg->first_refusal : "no answer");
        return -1;
    }
    for (size_t i = 1; i < lg->n_clients; i++)
        s_client_offer(lg, &lg->clients[i]);
    if (!s_run_until(lg, deadline, s_all_have_context)) {
        s_note(lg, "not every client was told the context is there");
        return -1;
    }
    s_note(lg, "context %s (%zu bytes) on the coordinator", lg->ctx_digest, lg->ctx_len);
    return 0;
}

static void s_check_nodes(s_lg_t *lg)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__NodesRequest nr = FARM__NODES_REQUEST__INIT;
    long long t0 = farm_now_ms();

    if (lg->coord_gone)
        return;
    env.body_case = FARM__ENVELOPE__BODY_NODES_REQUEST;
    env.nodes_request = &nr;
    lg->nodes_reply = 0;
    lg->nodes_ready = lg->nodes_lost = lg->nodes_unknown = lg->nodes_other = 0;
    s_send(lg, lg->clients[0].idx, &env);
    /* a moment past the hard deadline, so a run that used its time still asks */
    lg->hard_deadline += 5000;
    while (!lg->nodes_reply && farm_now_ms() - t0 < 5000 && !s_stop)
        s_turn(lg, 10);
    lg->hard_deadline -= 5000;
    if (!lg->nodes_reply) {
        s_out(lg, "nodes_reply", "none  # the coordinator did not answer NodesRequest in 5 s");
        return;
    }
    s_out(lg, "nodes_ready_at_end", "%d", lg->nodes_ready);
    s_out(lg, "nodes_lost_at_end", "%d", lg->nodes_lost);
    if (lg->nodes_unknown || lg->nodes_other)
        s_out(lg, "nodes_other_at_end", "%d", lg->nodes_unknown + lg->nodes_other);
}

/* ------------------------------------------------------------------ reporting */

static double s_rate(long long n, long long ms)
{
    return ms > 0 ? (double)n * 1000.0 / (double)ms : 0.0;
}

static long long s_bucket_sum(const long long *b, size_t from, size_t to, size_t n)
{
    long long s = 0;
    for (size_t i = from; i < to && i < n; i++)
        s += b[i];
    return s;
}

static long long s_lat_pct(const s_lg_t *lg, double pct)
{
    long long want = (long long)((double)lg->lat_n * pct / 100.0 + 0.5), seen = 0;
    if (want < 1)
        want = 1;
    for (long long ms = 0; ms <= S_LAT_MAX_MS; ms++) {
        seen += lg->lat_ms[ms];
        if (seen >= want)
            return ms;
    }
    return S_LAT_MAX_MS;
}

/* The losses a coordinator under load must not cause. */
static void s_report_health(s_lg_t *lg)
{
    long long missed = 0;
    for (size_t i = 0; i < lg->n_agents; i++)
        missed += lg->agents[i].got_rehello || lg->agents[i].went_silent;
    s_out(lg, "agents_missed", "%lld  # of %zu: declared lost (REJECT rehello) or dropped "
          "(silent); want 0", missed, lg->n_agents);
    s_out(lg, "agents_rehello", "%lld  # agents that got REJECT rehello (declared lost); "
          "want 0", lg->agents_rehello);
    s_out(lg, "agents_dropped", "%lld  # agents that heard nothing for %d beats of %d ms; "
          "want 0", lg->agents_silent, lg->liveness, lg->hb_ms);
    s_out(lg, "coordinator_max_silence_ms", "%lld  # longest gap between messages to one "
          "ready agent (heartbeat %d ms)", lg->max_silence_ms, lg->hb_ms);
    s_out(lg, "events_lost", "%lld", lg->events[FARM__EVENT_KIND__EVENT_LOST]);
    if (lg->rehello_rejects)
        s_out(lg, "reject_rehello_messages", "%lld", lg->rehello_rejects);
    if (lg->hello_resends)
        s_out(lg, "hello_resends", "%lld", lg->hello_resends);
    if (lg->reconnects)
        s_out(lg, "agent_session_restarts", "%lld  # HELLO with a new session after silence",
              lg->reconnects);
    if (lg->send_failures)
        s_out(lg, "loadgen_send_failures", "%lld", lg->send_failures);
    if (lg->bad_messages)
        s_out(lg, "loadgen_bad_messages", "%lld", lg->bad_messages);
    if (lg->refused)
        s_out(lg, "submits_refused", "%lld  # first: %s", lg->refused, lg->first_refusal);
    if (lg->builds_failed)
        s_out(lg, "builds_failed", "%lld  # first: %s", lg->builds_failed, lg->first_failure);
    if (s_stop)
        s_out(lg, "interrupted", "1");
    if (lg->coord_gone)
        s_out(lg, "coordinator_exited", "1  # it died during the run");
}

static void s_report_rss(s_lg_t *lg, const char *key)
{
    long kib = s_rss_kib(lg->coord_pid, "VmRSS");
    if (kib > lg->rss_kib_max)
        lg->rss_kib_max = kib;
    s_out(lg, key, "%ld  # %.1f MiB", kib, kib / 1024.0);
}

/* ------------------------------------------------------------------ plan: queue */

static long long s_expected_running(const s_lg_t *lg)
{
    long long slots_per_plat[S_MAX_PLATFORMS] = {0}, n = 0;
    for (size_t i = 0; i < lg->n_agents; i++)
        if (lg->agents[i].state == AG_READY)
            slots_per_plat[lg->agents[i].plat] += lg->slots;
    for (size_t p = 0; p < lg->n_platforms; p++)
        n += lg->accepted_per_plat[p] < slots_per_plat[p] ? lg->accepted_per_plat[p]
                                                          : slots_per_plat[p];
    return n;
}

static int s_submits_answered(const s_lg_t *lg)
{
    for (size_t i = 0; i < lg->n_clients; i++)
        if (lg->clients[i].to_submit > 0 || lg->clients[i].n_pend > 0)
            return 0;
    return 1;
}

static int s_queue_filled(s_lg_t *lg)
{
    return s_submits_answered(lg) && lg->first_assigns >= s_expected_running(lg);
}

static int s_queue_drained(s_lg_t *lg)
{
    return s_submits_answered(lg) && lg->first_assigns >= lg->accepted_jobs;
}

static int s_builds_finished(s_lg_t *lg)
{
    return s_submits_answered(lg) && lg->builds_ok + lg->builds_failed >= lg->accepted_builds;
}

static void s_plan_queue(s_lg_t *lg)
{
    long long slots = (long long)s_agents_in(lg, AG_READY) * lg->slots;
    long long builds = (slots + lg->jobs + (long long)lg->build_platforms - 1) /
                       (long long)lg->build_platforms;
    long long assigns0, t_release, settle, drain_ms;
    s_mark_t m;
    int filled, drained;

    s_report_rss(lg, "rss_kib_idle");
    s_out(lg, "slots", "%lld", slots);
    /* every slot busy with a held job, and --jobs more waiting behind them */
    lg->hold = 1;
    for (size_t i = 0; i < lg->n_clients; i++)
        lg->clients[i].to_submit = builds / (long long)lg->n_clients +
                                   ((long long)i < builds % (long long)lg->n_clients);
    s_note(lg, "queueing: %lld builds of %zu platform(s) = %lld jobs for %lld busy slots",
           builds, lg->build_platforms, builds * (long long)lg->build_platforms, slots);
    m = s_mark(lg);
    lg->submitting = 1;
    filled = s_run_until(lg, farm_now_ms() + lg->fill_timeout_s * 1000LL, s_queue_filled);
    lg->submitting = 0;
    for (size_t i = 0; i < lg->n_clients; i++)
        lg->clients[i].to_submit = 0;
    s_out(lg, "queue_fill_complete", "%d%s", filled,
          filled ? "" : "  # the coordinator did not take every submit in time");
    s_out(lg, "queue_fill_s", "%.2f", (double)(farm_now_ms() - m.t) / 1000.0);
    s_out(lg, "submits_accepted", "%lld", lg->accepted_builds);
    s_out(lg, "submit_rate_builds_per_s", "%.1f", s_rate(lg->accepted_builds, farm_now_ms() - m.t));
    s_out_cpu(lg, "fill", &m);
    /* a moment for the coordinator to settle before its RSS is read */
    settle = farm_now_ms() + 500;
    s_run_until(lg, settle, NULL);
    s_out(lg, "queued_jobs", "%lld  # accepted jobs not yet dispatched",
          lg->accepted_jobs - lg->first_assigns);
    s_report_rss(lg, "rss_kib_queued");
    s_out(lg, "rss_target_mib", "%d  # target: <= %d MiB with 1,000 agents and 10,000 queued jobs",
          S_TARGET_RSS_MIB, S_TARGET_RSS_MIB);

    /* release: every held job is answered now, every new one at once */
    m = s_mark(lg);
    t_release = m.t;
    assigns0 = lg->assigns;
    lg->last_assign_at = t_release;
    lg->hold = 0;
    for (size_t i = 0; i < lg->n_agents; i++)
        s_agent_release(lg, &lg->agents[i]);
    drained = s_run_until(lg, t_release + lg->drain_timeout_s * 1000LL, s_queue_drained);
    s_out(lg, "drain_complete", "%d%s", drained,
          drained ? "" : "  # jobs still queued at the deadline");
    /* drained: up to the last JobAssign; not drained: the whole wait */
    drain_ms = (drained ? lg->last_assign_at : farm_now_ms()) - t_release;
    s_out(lg, "dispatched_after_release", "%lld", lg->assigns - assigns0);
    s_out(lg, "drain_s", "%.3f", (double)drain_ms / 1000.0);
    s_out(lg, "dispatch_rate_jobs_per_s",
          "%.1f  # target >= %d with 500 agents and 10,000 queued",
          s_rate(lg->assigns - assigns0, drain_ms), S_TARGET_DISPATCH_PER_S);
    s_out_cpu(lg, "drain", &m);

    /* and the builds those jobs belong to, to the index */
    m = s_mark(lg);
    s_run_until(lg, farm_now_ms() + lg->finish_timeout_s * 1000LL, s_builds_finished);
    s_out(lg, "builds_done", "%lld  # of %lld accepted", lg->builds_ok + lg->builds_failed,
          lg->accepted_builds);
    s_out(lg, "builds_after_release_per_s", "%.1f",
          s_rate(lg->builds_ok, (lg->last_done_at > t_release ? lg->last_done_at : farm_now_ms()) -
                                    t_release));
    s_out(lg, "rss_kib_max", "%ld  # %.1f MiB, sampled every 250 ms", lg->rss_kib_max,
          lg->rss_kib_max / 1024.0);
}

/* ------------------------------------------------------------------ plan: builds */

static void s_plan_builds(s_lg_t *lg)
{
    long long t0, t_end, dur_ms;
    size_t secs, w, last0;
    long long fb, lb, fa, la;
    s_mark_t m;

    s_report_rss(lg, "rss_kib_start");
    memset(lg->b_assigns, 0, lg->n_buckets * sizeof *lg->b_assigns);
    memset(lg->b_builds, 0, lg->n_buckets * sizeof *lg->b_builds);
    m = s_mark(lg);
    t0 = lg->bucket_t0 = m.t;
    long long builds0 = lg->builds_ok, assigns0 = lg->assigns;
    lg->submitting = 1;
    for (size_t i = 0; i < lg->n_clients; i++)
        for (int k = 0; k < lg->in_flight; k++)
            s_client_submit(lg, &lg->clients[i]);
    s_note(lg, "builds: %zu clients x %d in flight, %zu platform(s) each, for %d s",
           lg->n_clients, lg->in_flight, lg->build_platforms, lg->duration_s);
    s_run_until(lg, t0 + lg->duration_s * 1000LL, NULL);
    lg->submitting = 0;
    t_end = farm_now_ms();
    dur_ms = t_end - t0;
    s_out(lg, "measured_s", "%.1f", (double)dur_ms / 1000.0);
    s_out(lg, "builds_ok", "%lld", lg->builds_ok - builds0);
    s_out(lg, "builds_per_s", "%.1f", s_rate(lg->builds_ok - builds0, dur_ms));
    s_out(lg, "dispatch_per_s", "%.1f", s_rate(lg->assigns - assigns0, dur_ms));
    if (lg->lat_n) {
        s_out(lg, "build_latency_ms_p50", "%lld", s_lat_pct(lg, 50));
        s_out(lg, "build_latency_ms_p99", "%lld", s_lat_pct(lg, 99));
    }
    s_out_cpu(lg, "builds", &m);
    /* decay: the first window against the last (whole seconds only) */
    secs = (size_t)(dur_ms / 1000);
    w = (size_t)lg->window_s;
    if (w * 2 > secs)
        w = secs / 2;
    if (w > 0) {
        last0 = secs - w;
        fb = s_bucket_sum(lg->b_builds, 0, w, lg->n_buckets);
        lb = s_bucket_sum(lg->b_builds, last0, secs, lg->n_buckets);
        fa = s_bucket_sum(lg->b_assigns, 0, w, lg->n_buckets);
        la = s_bucket_sum(lg->b_assigns, last0, secs, lg->n_buckets);
        s_out(lg, "window_s", "%zu", w);
        s_out(lg, "builds_per_s_first_window", "%.1f", (double)fb / (double)w);
        s_out(lg, "builds_per_s_last_window", "%.1f", (double)lb / (double)w);
        s_out(lg, "dispatch_per_s_first_window", "%.1f", (double)fa / (double)w);
        s_out(lg, "dispatch_per_s_last_window", "%.1f", (double)la / (double)w);
        if (fb > 0)
            s_out(lg, "builds_rate_change_pct", "%+.1f  # last window vs first; want ~0 (no decay)",
                  ((double)lb / (double)fb - 1.0) * 100.0);
    }
    s_report_rss(lg, "rss_kib_end");
    s_out(lg, "rss_kib_max", "%ld  # %.1f MiB, sampled every 250 ms", lg->rss_kib_max,
          lg->rss_kib_max / 1024.0);
}

/* ------------------------------------------------------------------ main */

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: farm-loadgen --agents-endpoint E --clients-endpoint E --registry HOST:PORT\n"
            "                    --platforms P,... [options]\n"
            "  --plan queue|builds      what to measure (default builds)\n"
            "  --agents N               simulated agents PREFIX0000.. (default 30); agent i\n"
            "                           serves platform i %% (number of platforms)\n"
            "  --node-prefix S          node name prefix (default n)\n"
            "  --slots N                slots each agent offers (default 2)\n"
            "  --clients N              simulated clients (default 8)\n"
            "  --build-platforms N      platforms per build (default: all)\n"
            "  --repository R           repository for images and indexes (default loadgen)\n"
            "  --jobs N                 queue plan: jobs queued behind the busy slots\n"
            "                           (default 10000)\n"
            "  --in-flight N            builds plan: builds in flight per client (default 4)\n"
            "  --duration S             builds plan: seconds to run (default 60)\n"
            "  --window S               builds plan: first/last window for the decay check\n"
            "                           (default 60)\n"
            "  --coordinator-pid PID    read the coordinator's RSS and CPU from /proc\n"
            "  --deadline S             end the run after S seconds whatever happens\n"
            "                           (default 600)\n"
            "  --connect-timeout S, --fill-timeout S, --drain-timeout S, --finish-timeout S\n"
            "                           phase limits (default 60, 120, 120, 60)\n"
            "  --io-threads N           ZeroMQ I/O threads (default 1)\n"
            "  --log-lines N            log lines each agent sends before a result (default 0)\n"
            "  --reactor epoll|zmq_poll how the sockets are watched (default epoll over their\n"
            "                           ZMQ_FDs: zmq_poll asks all of them every turn)\n"
            "  --prefix S               prefix of every result key\n");
}

static int s_parse_platforms(s_lg_t *lg, const char *list)
{
    return farm_platform_list(lg->platforms, &lg->n_platforms, S_MAX_PLATFORMS, list);
}

static int s_int_arg(const char *name, const char *v, long long min, long long max, long long *out)
{
    char *end;
    long long n;
    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno || *end || end == v || n < min || n > max) {
        fprintf(stderr, "farm-loadgen: %s wants a number from %lld to %lld, not \"%s\"\n", name,
                min, max, v);
        return -1;
    }
    *out = n;
    return 0;
}

int main(int argc, char **argv)
{
    enum {
        O_AEP = 256, O_CEP, O_REG, O_REPO, O_PLATS, O_PLAN, O_AGENTS, O_PREFIX_NODE, O_SLOTS,
        O_CLIENTS, O_BPLATS, O_JOBS, O_INFLIGHT, O_DURATION, O_WINDOW, O_PID, O_DEADLINE,
        O_CONNECT, O_FILL, O_DRAIN, O_FINISH, O_IO, O_PREFIX, O_REACTOR, O_LOGLINES
    };
    static const struct option opts[] = {
        {"agents-endpoint", required_argument, NULL, O_AEP},
        {"clients-endpoint", required_argument, NULL, O_CEP},
        {"registry", required_argument, NULL, O_REG},
        {"repository", required_argument, NULL, O_REPO},
        {"platforms", required_argument, NULL, O_PLATS},
        {"plan", required_argument, NULL, O_PLAN},
        {"agents", required_argument, NULL, O_AGENTS},
        {"node-prefix", required_argument, NULL, O_PREFIX_NODE},
        {"slots", required_argument, NULL, O_SLOTS},
        {"clients", required_argument, NULL, O_CLIENTS},
        {"build-platforms", required_argument, NULL, O_BPLATS},
        {"jobs", required_argument, NULL, O_JOBS},
        {"in-flight", required_argument, NULL, O_INFLIGHT},
        {"duration", required_argument, NULL, O_DURATION},
        {"window", required_argument, NULL, O_WINDOW},
        {"coordinator-pid", required_argument, NULL, O_PID},
        {"deadline", required_argument, NULL, O_DEADLINE},
        {"connect-timeout", required_argument, NULL, O_CONNECT},
        {"fill-timeout", required_argument, NULL, O_FILL},
        {"drain-timeout", required_argument, NULL, O_DRAIN},
        {"finish-timeout", required_argument, NULL, O_FINISH},
        {"io-threads", required_argument, NULL, O_IO},
        {"log-lines", required_argument, NULL, O_LOGLINES},
        {"prefix", required_argument, NULL, O_PREFIX},
        {"reactor", required_argument, NULL, O_REACTOR},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static s_lg_t lg_storage;
    s_lg_t *lg = &lg_storage;
    long long v;
    int c, rc = 1;
    struct sigaction sa;

    lg->repository = "loadgen";
    lg->prefix = "";
    lg->node_prefix = "n";
    lg->n_agents = 30;
    lg->n_clients = 8;
    lg->slots = 2;
    lg->in_flight = 4;
    lg->io_threads = 1;
    lg->jobs = 10000;
    lg->plan = PLAN_BUILDS;
    lg->duration_s = 60;
    lg->window_s = 60;
    lg->deadline_s = 600;
    lg->connect_timeout_s = 60;
    lg->fill_timeout_s = 120;
    lg->drain_timeout_s = 120;
    lg->finish_timeout_s = 60;
    lg->hb_ms = 1000;
    lg->liveness = 3;
    lg->t_start = farm_now_ms();

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_AEP: lg->agents_ep = optarg; break;
        case O_CEP: lg->clients_ep = optarg; break;
        case O_REG: lg->registry = optarg; break;
        case O_REPO: lg->repository = optarg; break;
        case O_PREFIX: lg->prefix = optarg; break;
        case O_PREFIX_NODE: lg->node_prefix = optarg; break;
        case O_PLATS:
            if (s_parse_platforms(lg, optarg) < 0) {
                fprintf(stderr, "farm-loadgen: --platforms: %s\n", farm_error_last());
                goto done;
            }
            break;
        case O_PLAN:
            if (strcmp(optarg, "queue") == 0)
                lg->plan = PLAN_QUEUE;
            else if (strcmp(optarg, "builds") == 0)
                lg->plan = PLAN_BUILDS;
            else {
                fprintf(stderr, "farm-loadgen: --plan wants queue or builds\n");
                goto done;
            }
            break;
        case O_REACTOR:
            if (strcmp(optarg, "epoll") == 0)
                lg->use_zmq_poll = 0;
            else if (strcmp(optarg, "zmq_poll") == 0)
                lg->use_zmq_poll = 1;
            else {
                fprintf(stderr, "farm-loadgen: --reactor wants epoll or zmq_poll\n");
                goto done;
            }
            break;
        case 'h': s_usage(stdout); rc = 0; goto done;
        case '?': s_usage(stderr); goto done;
        default: {
            static const struct {
                int opt;
                const char *name;
                long long min, max;
            } nums[] = {
                {O_AGENTS, "--agents", 0, 100000},
                {O_SLOTS, "--slots", 1, 1024},
                {O_CLIENTS, "--clients", 1, 10000},
                {O_BPLATS, "--build-platforms", 1, S_MAX_PLATFORMS},
                {O_JOBS, "--jobs", 0, 10000000},
                {O_INFLIGHT, "--in-flight", 1, S_SUBMIT_WINDOW},
                {O_DURATION, "--duration", 1, 86400},
                {O_WINDOW, "--window", 1, 86400},
                {O_PID, "--coordinator-pid", 1, 1 << 30},
                {O_DEADLINE, "--deadline", 1, 172800},
                {O_CONNECT, "--connect-timeout", 1, 86400},
                {O_FILL, "--fill-timeout", 1, 86400},
                {O_DRAIN, "--drain-timeout", 1, 86400},
                {O_FINISH, "--finish-timeout", 0, 86400},
                {O_IO, "--io-threads", 1, 64},
                {O_LOGLINES, "--log-lines", 0, 100000}};
            size_t k;
            for (k = 0; k < sizeof nums / sizeof nums[0] && nums[k].opt != c; k++)
                ;
            if (k == sizeof nums / sizeof nums[0] ||
                s_int_arg(nums[k].name, optarg, nums[k].min, nums[k].max, &v) < 0)
                goto done;
            switch (c) {
            case O_AGENTS: lg->n_agents = (size_t)v; break;
            case O_SLOTS: lg->slots = (int)v; break;
            case O_CLIENTS: lg->n_clients = (size_t)v; break;
            case O_BPLATS: lg->build_platforms = (size_t)v; break;
            case O_JOBS: lg->jobs = v; break;
            case O_INFLIGHT: lg->in_flight = (int)v; break;
            case O_DURATION: lg->duration_s = (int)v; break;
            case O_WINDOW: lg->window_s = (int)v; break;
            case O_PID: lg->coord_pid = (pid_t)v; break;
            case O_DEADLINE: lg->deadline_s = (int)v; break;
            case O_CONNECT: lg->connect_timeout_s = (int)v; break;
            case O_FILL: lg->fill_timeout_s = (int)v; break;
            case O_DRAIN: lg->drain_timeout_s = (int)v; break;
            case O_FINISH: lg->finish_timeout_s = (int)v; break;
            case O_IO: lg->io_threads = (int)v; break;
            case O_LOGLINES: lg->log_lines = (int)v; break;
            }
        }
        }
    }
    if (optind != argc || !lg->agents_ep || !lg->clients_ep || !lg->registry ||
        !lg->n_platforms) {
        s_usage(stderr);
        goto done;
    }
    if (!lg->build_platforms || lg->build_platforms > lg->n_platforms)
        lg->build_platforms = lg->n_platforms;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)(getpid() ^ farm_now_ms()));
    lg->hard_deadline = lg->t_start + lg->deadline_s * 1000LL;
    lg->n_buckets = (size_t)lg->deadline_s + 16;
    lg->b_assigns = calloc(lg->n_buckets, sizeof *lg->b_assigns);
    lg->b_builds = calloc(lg->n_buckets, sizeof *lg->b_builds);
    lg->lat_ms = calloc(S_LAT_MAX_MS + 1, sizeof *lg->lat_ms);
    if (!lg->b_assigns || !lg->b_builds || !lg->lat_ms) {
        fprintf(stderr, "farm-loadgen: out of memory\n");
        goto done;
    }
    lg->bucket_t0 = lg->t_start;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (s_push_images(lg) < 0) {
        fprintf(stderr, "farm-loadgen: pushing the images to %s/%s: %s\n", lg->registry,
                lg->repository, farm_error_last());
        goto done;
    }
    s_make_context(lg);
    if (s_setup_sockets(lg) < 0) {
        fprintf(stderr, "farm-loadgen: %s\n", farm_error_last());
        goto done;
    }
    s_out(lg, "plan", "%s", lg->plan == PLAN_QUEUE ? "queue" : "builds");
    s_out(lg, "platforms", "%zu", lg->n_platforms);
    s_out(lg, "build_platforms", "%zu", lg->build_platforms);
    s_out(lg, "clients", "%zu", lg->n_clients);
    if (s_connect_agents(lg) < 0 || s_upload_context(lg) < 0) {
        s_report_health(lg);
        goto done;
    }
    if (lg->plan == PLAN_QUEUE) {
        s_out(lg, "jobs_to_queue", "%lld", lg->jobs);
        s_plan_queue(lg);
    } else {
        s_out(lg, "in_flight_per_client", "%d", lg->in_flight);
        s_plan_builds(lg);
    }
    s_check_nodes(lg);
    s_report_health(lg);
    rc = 0;
done:
    s_teardown(lg);
    curl_global_cleanup();
    return rc;
}
