/* SPDX-License-Identifier: Apache-2.0 */
/* The coordinator's top file: the two ROUTER sockets, the reactor's timers. The rules
 * live in nodes, scheduler, builds and ctxstore, which take plain values; agents speaks
 * protobuf with the nodes and clients with farmctl, each through a send function given
 * here; pushes supervises the index-push helpers; warmfile keeps warm.json. */
#include "coordinator/coordinator.h"

#include <errno.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/keys.h"
#include "common/zap.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/reactor.h"
#include "common/sigstore.h"
#include "common/wire.h"
#include "coordinator/agents.h"
#include "coordinator/builds.h"
#include "coordinator/cachecmd.h"
#include "coordinator/clients.h"
#include "coordinator/ctxstore.h"
#include "coordinator/enrolled.h"
#include "coordinator/journal.h"
#include "coordinator/nodes.h"
#include "coordinator/peerwarn.h"
#include "coordinator/history.h"
#include "coordinator/pushes.h"
#include "coordinator/reload.h"
#include "coordinator/scheduler.h"
#include "coordinator/stats.h"
#include "coordinator/timeserve.h"
#include "coordinator/web.h"
#include "coordinator/warmfile.h"

#define DONE_KEEP_MS 60000     /* finished builds linger so late results are recognised */
#define UPLOAD_IDLE_MS 120000  /* abandoned uploads are dropped */
#define RECV_BUDGET 1000       /* messages read from one socket per turn */
#define CLIENT_TURN_MS 20      /* and at most this long on client messages per turn */
#define STITCH_TIMEOUT_MS 600000 /* an index push that takes longer is stopped */
#define STITCH_PARALLEL 8        /* index pushes at once; the others wait their turn */
#define PRUNE_EVERY_MS 600000    /* the journal drops builds past their retention */
#define PARK_MIN_MS 10000        /* a restored running job waits at least this for its node */
#define COMMIT_EVERY_MS 10       /* the journal's group commit: at most one fsync this often */

struct farm_coordinator {
    farm_config_t *cfg;
    void *zctx;
    void *agents;
    void *clients;
    farm_reactor_t *reactor;
    farm_nodes_t *nodes;
    farm_timeserve_t *timeserve;
    farm_scheduler_t *sched;
    farm_builds_t *builds;
    farm_ctxstore_t *ctx;
    char state_dir[FARM_PATH_MAX];
    farm_warmfile_t *warmfile; /* which nodes hold which caches, across restarts */
    /* with keys (cfg->secure): CURVE on both endpoints, peers known by their keys */
    farm_zap_t *zap;
    farm_keypair_t keys;
    /* coordinator.signing_key_file's PEM, checked at start; the index pushes get it */
    char *signing_key_pem;
    size_t signing_key_len;
    farm_enrolled_t *enrolled; /* which node or client each key is */
    int cache_wait_timer;      /* wakes the dispatch when a job's cache wait ends */
    long long cache_wait_at;   /* ... at this time */
    int sched_broken;          /* -v's self-check failed and said so (until it passes) */
    farm_pushes_t *pushes;     /* the index-push helpers */
    farm_clients_t *cl;        /* farmctl's requests, and what builds' clients hear */
    farm_agents_t *ag;         /* what the nodes hear and say */
    farm_web_t *web;           /* coordinator.http: metrics, the page and its API (or NULL) */
    farm_cachecmd_t *cachecmd; /* farmctl du and prune, waiting for the nodes */
    farm_journal_t *journal;   /* builds and jobs, across restarts: committed each turn */
    farm_wire_outbox_t *outbox; /* what waits for that commit (see s_send_client) */
    int clients_held;          /* the outbox holds a client's message: the rest follow it */
    long long committed_at;    /* the last commit */
    int commit_timer;          /* a turn at the next commit's time */
    farm_reload_parts_t reload; /* what a reload of farm.yaml (SIGHUP) touches */
    farm_history_watches_t *watches; /* live log lines for readers other than farmctl */
    long long pruned_at;
    int stopping;              /* shutting down: the nodes keep what they run */
};

/* ------------------------------------------------------------------ sending */

/* The clients' and agents' modules' way out (farm_clients_send_fn, farm_agents_send_fn). */
/* The journal commits once per turn (s_commit). What must not be said before that
 * commit waits for it in the outbox: a build's Accepted (a client must not hold an id a
 * crash would forget) and a result's JobAck (the node must keep the result until its
 * record is durable). A client's later messages of the turn queue behind its Accepted. */
static int s_send_client(void *arg, const void *rid, size_t rid_len, Farm__Envelope *env)
{
    farm_coordinator_t *self = arg;
    env->version = FARM_WIRE_VERSION;
    if (env->body_case == FARM__ENVELOPE__BODY_ACCEPTED || self->clients_held) {
        self->clients_held = 1;
        return farm_wire_outbox_add(self->outbox, self->clients, rid, rid_len, env);
    }
    return farm_wire_send(self->clients, rid, rid_len, env);
}

static int s_send_agent(void *arg, const void *rid, size_t rid_len, Farm__Envelope *env)
{
    farm_coordinator_t *self = arg;
    env->version = FARM_WIRE_VERSION;
    if (env->body_case == FARM__ENVELOPE__BODY_JOB_ACK)
        return farm_wire_outbox_add(self->outbox, self->agents, rid, rid_len, env);
    return farm_wire_send(self->agents, rid, rid_len, env);
}

static int s_on_commit_timer(farm_reactor_t *r, void *arg)
{
    farm_coordinator_t *self = arg;
    self->commit_timer = 0; /* a one-shot: spent; the turn's end commits */
    return 0;
}

/* The journal's writes made durable (one fsync for all of them), then what waited for
 * them sent; at most every COMMIT_EVERY_MS, so a busy coordinator's turns share a commit
 * (what they sent meanwhile, a JobAssign say, costs at most its work again after a crash:
 * the node's HELLO lists it, and the coordinator cancels what it does not know). A
 * commit that fails is said; the coordinator goes on from memory. */
static void s_commit(farm_coordinator_t *self, long long now)
{
    if (!farm_journal_pending(self->journal) && !farm_wire_outbox_size(self->outbox))
        return;
    if (now - self->committed_at < COMMIT_EVERY_MS) {
        if (!self->commit_timer)
            self->commit_timer = farm_reactor_timer_add(self->reactor, "commit",
                                                        self->committed_at + COMMIT_EVERY_MS - now,
                                                        1, s_on_commit_timer, self);
        if (self->commit_timer > 0)
            return; /* out of memory for a timer: commit now */
        self->commit_timer = 0;
    }
    if (farm_journal_commit(self->journal) < 0)
        farm_log_error("%s; what this turn changed is lost if the coordinator restarts",
                       farm_error_last());
    self->committed_at = now;
    farm_wire_outbox_flush(self->outbox);
    self->clients_held = 0;
}

/* ------------------------------------------------------------------ events (builds) */

static void s_on_event(void *arg, farm_build_t *b, const farm_job_t *job, farm_event_kind_t kind,
                       const char *msg)
{
    farm_coordinator_t *self = arg;
    farm_clients_event(self->cl, b, job, kind, msg);
    if (kind == FARM_EVENT_LOG && job)
        farm_history_line(self->watches, b->id, job->platform, msg);
}

static void s_on_done(void *arg, farm_build_t *b, int ok, const char *index_digest,
                      uint64_t index_size, const char *error)
{
    farm_coordinator_t *self = arg;
    farm_clients_done(self->cl, b, ok, index_digest, index_size, error);
    farm_history_ended(self->watches, b->id);
}

static void s_on_stitch(void *arg, farm_build_t *b)
{
    farm_coordinator_t *self = arg;
    farm_pushes_request(self->pushes, b);
}

/* ------------------------------------------------------------------ scheduler callbacks */

static void s_on_assign(void *arg, farm_job_t *job, farm_node_t *node)
{
    farm_coordinator_t *self = arg;
    farm_builds_job_journal(self->builds, job); /* before the node hears of it */
    farm_metric_observe(farm_cstats.queue_wait, job->platform, NULL, (farm_now_ms() - job->queued_at) / 1000.0);
    farm_agents_assign(self->ag, job, node);
}

static void s_on_cancel_job(void *arg, farm_job_t *job, farm_node_t *node, const char *reason)
{
    farm_coordinator_t *self = arg;
    /* a stop or restart withdraws every job from the scheduler: the nodes go on building
     * and deliver to the coordinator that comes back */
    if (!self->stopping)
        farm_agents_cancel(self->ag, job, node, reason);
}

static void s_on_waiting(void *arg, farm_job_t *job)
{
    farm_coordinator_t *self = arg;
    farm_builds_event(self->builds, job->build, job, FARM_EVENT_WAITING,
                      "no live node serves %s yet; waiting up to %d s for one", job->platform,
                      self->cfg->queue_timeout_ms / 1000);
}

static void s_on_requeued(void *arg, farm_job_t *job, const char *why)
{
    farm_coordinator_t *self = arg;
    farm_metric_inc(farm_cstats.job_failures, job->platform, "node_lost");
    farm_builds_job_requeued(self->builds, job, why);
}

static void s_on_expired(void *arg, farm_job_t *job, int was_running)
{
    farm_coordinator_t *self = arg;
    long long now = farm_now_ms();
    farm_metric_inc(farm_cstats.job_failures, job->platform, was_running ? "job_timeout" : "queue_timeout");
    if (was_running)
        farm_builds_job_failed(self->builds, job, now,
                               "attempt %u on node %s ran longer than %d s (coordinator.job_timeout)",
                               job->attempt, job->node_name, self->cfg->job_timeout_ms / 1000);
    else
        farm_builds_job_failed(self->builds, job, now,
                               "no node of %s became available within %d s (queue_timeout)",
                               job->platform, self->cfg->queue_timeout_ms / 1000);
}

/* ------------------------------------------------------------------ sockets */

static int s_agents_readable(farm_reactor_t *r, int revents, void *arg)
{
    farm_coordinator_t *self = arg;

    for (int budget = 0; budget < RECV_BUDGET; budget++) {
        char rid[FARM_WIRE_ROUTING_MAX], user[FARM_NAME_MAX + 1];
        size_t rid_len = 0;
        Farm__Envelope *env = NULL;
        int rc = farm_wire_recv_user(self->agents, rid, &rid_len, user, sizeof user, &env);

        if (rc == FARM_ERETRY)
            break;
        if (rc < 0) {
            farm_peer_warn("bad message from agent: %s", farm_error_last());
            continue;
        }
        farm_agents_message(self->ag, rid, rid_len, user, env);
        farm_wire_free(&env);
    }
    return 0;
}

static int s_clients_readable(farm_reactor_t *r, int revents, void *arg)
{
    farm_coordinator_t *self = arg;
    long long until = farm_now_ms() + CLIENT_TURN_MS;

    /* the rest waits for the next turn: the agents' socket and the timers come first */
    for (int budget = 0; budget < RECV_BUDGET && farm_now_ms() < until; budget++) {
        char rid[FARM_WIRE_ROUTING_MAX], user[FARM_NAME_MAX + 1];
        size_t rid_len = 0;
        Farm__Envelope *env = NULL;
        farm_client_t c = {.rid = rid, .name = "", .key = "", .role = FARM_ROLE_ADMIN};
        int rc = farm_wire_recv_user(self->clients, rid, &rid_len, user, sizeof user, &env);

        if (rc == FARM_ERETRY)
            break;
        if (rc < 0) {
            farm_peer_warn("bad message from a client: %s", farm_error_last());
            continue;
        }
        c.rid_len = rid_len;
        if (self->cfg->secure) {
            /* the ZAP handler let in only listed keys; User-Id is the client's key */
            const farm_config_client_t *cl = farm_enrolled_client_by_key(self->enrolled, user);
            if (!cl) {
                farm_clients_refuse_unenrolled(self->cl, rid, rid_len, user);
                farm_wire_free(&env);
                continue;
            }
            c.name = cl->name;
            c.key = cl->key ? cl->key : "";
            c.role = cl->role;
        }
        farm_clients_message(self->cl, &c, env);
        farm_wire_free(&env);
    }
    return 0;
}

/* ------------------------------------------------------------------ timers */

/* Heartbeats both ways: nodes silent for `liveness` beats are lost; the others and the
 * clients of running builds hear from us. */
static int s_on_heartbeat(farm_reactor_t *r, void *arg)
{
    farm_coordinator_t *self = arg;
    farm_agents_beat(self->ag, farm_now_ms());
    farm_clients_beat(self->cl);
    return 0;
}

static void s_reap_stitch(void *arg, farm_build_t *b)
{
    farm_coordinator_t *self = arg;
    farm_pushes_drop(self->pushes, b);
}

/* farm.yaml's history: into the journal (retention by time and count, the log bound). */
static void s_history_opts(farm_coordinator_t *self)
{
    farm_journal_opts_t o = {.retention_ms = self->cfg->history_keep_ms,
                             .max_builds = (size_t)self->cfg->history_max_builds,
                             .log_limit = (size_t)self->cfg->history_log_limit};
    if (self->journal)
        farm_journal_set_opts(self->journal, &o);
}

static int s_on_chores(farm_reactor_t *r, void *arg)
{
    farm_coordinator_t *self = arg;
    long long now = farm_now_ms();
    farm_reload_forget_idle(&self->reload);
    farm_cachecmd_tick(self->cachecmd, now);
    farm_scheduler_tick(self->sched, now);
    farm_builds_submitter_overdue(self->builds, now);
    farm_warmfile_save(self->warmfile, now, 0);
    farm_builds_reap(self->builds, now, DONE_KEEP_MS, s_reap_stitch, self);
    farm_ctxstore_expire(self->ctx, now, UPLOAD_IDLE_MS);
    s_history_opts(self); /* a reload may have changed them */
    if (now - self->pruned_at >= PRUNE_EVERY_MS) {
        struct timespec ts;
        self->pruned_at = now;
        clock_gettime(CLOCK_REALTIME, &ts);
        if (farm_journal_prune(self->journal, NULL, (long long)ts.tv_sec * 1000 +
                                                        ts.tv_nsec / 1000000) < 0)
            farm_log_warn("%s", farm_error_last());
    }
    return 0;
}

static int s_context_in_use(void *arg, const char *digest)
{
    farm_coordinator_t *self = arg;
    return farm_builds_context_in_use(self->builds, digest);
}

static int s_on_sweep(farm_reactor_t *r, void *arg)
{
    farm_coordinator_t *self = arg;
    farm_ctxstore_sweep(self->ctx, self->cfg->context_ttl_ms, s_context_in_use, self);
    return 0;
}

/* ZAP: which enrolled node or client a CURVE key is, per endpoint. */
static const char *s_zap_lookup(void *arg, const char *domain, const uint8_t key[32],
                                int *other)
{
    farm_coordinator_t *self = arg;
    return farm_enrolled_lookup(self->enrolled, domain, key, other);
}

static int s_on_zap(farm_reactor_t *r, int revents, void *arg)
{
    farm_coordinator_t *self = arg;
    farm_zap_handle(self->zap);
    return 0;
}

/* Loads the coordinator's key pair and indexes every enrolled key. */
static int s_security(farm_coordinator_t *self)
{
    const farm_config_t *cfg = self->cfg;

    if (farm_key_load(&self->keys, cfg->secret_key_file) < 0)
        return farm_error_wrap(FARM_EINVALID, "coordinator.secret_key_file");
    if (strcmp(self->keys.public_key, cfg->public_key) != 0)
        return farm_error_set(FARM_EINVALID, "%s holds the key pair of %s, not of "
                              "coordinator.public_key %s in %s; fix one of them",
                              cfg->secret_key_file, self->keys.public_key, cfg->public_key,
                              cfg->path);
    if (!(self->enrolled = farm_enrolled_new(cfg)))
        return FARM_ERROR;
    /* before any server socket: a CURVE handshake with no handler would admit anyone */
    if (!(self->zap = farm_zap_new(self->zctx, s_zap_lookup, self)))
        return FARM_ERROR;
    return 0;
}

/* A job's wait for a busy warm node ended: the turn-end hook dispatches it. */
static int s_on_cache_wait(farm_reactor_t *r, void *arg)
{
    farm_coordinator_t *self = arg;
    self->cache_wait_timer = 0; /* a one-shot: spent */
    self->cache_wait_at = -1;
    return 0;
}

/* End of every turn: whatever arrived may have freed slots or queued jobs. */
static void s_on_turn_end(farm_reactor_t *r, void *arg)
{
    farm_coordinator_t *self = arg;
    long long now = farm_now_ms(), wake;

    if (farm_reload_requested())
        farm_reload(&self->reload, now);
    farm_scheduler_dispatch(self->sched, now);
    /* -v: the bookkeeping's self-check, said once until it holds again */
    if (farm_log_enabled(FARM_LOG_DEBUG)) {
        int broken = farm_scheduler_check(self->sched) < 0;
        if (broken && !self->sched_broken)
            farm_log_error("%s; please report this with the log", farm_error_last());
        self->sched_broken = broken;
    }
    wake = farm_scheduler_wake_at(self->sched);
    if (wake != self->cache_wait_at) {
        if (self->cache_wait_timer > 0)
            farm_reactor_timer_cancel(r, self->cache_wait_timer);
        self->cache_wait_timer = 0;
        self->cache_wait_at = -1;
        /* out of memory: the chores timer dispatches within a second instead */
        if (wake >= 0 && (self->cache_wait_timer = farm_reactor_timer_add(
                              r, "cache-wait", wake > now ? wake - now : 0, 1,
                              s_on_cache_wait, self)) > 0)
            self->cache_wait_at = wake;
    }
    farm_pushes_start_waiting(self->pushes);
    s_commit(self, farm_now_ms());
}

/* ------------------------------------------------------------------ lifecycle */

/* libzmq draws routing ids from rand(): a guessable seed would let a peer claim the next
 * id first, which libzmq 4.3 answers with an abort. */
static void s_seed_random(void)
{
    unsigned seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = (unsigned)(getpid() ^ farm_now_ms());
    srandom(seed);
    srand(seed);
}

/* The two ROUTER sockets (CURVE when farm.yaml has keys; the ZAP handler is bound
 * first) and the reactor's readers and timers. */
static int s_listen(farm_coordinator_t *self)
{
    const farm_config_t *cfg = self->cfg;
    farm_wire_curve_t ca = {.keys = &self->keys, .zap_domain = "agents"};
    farm_wire_curve_t cc = {.keys = &self->keys, .zap_domain = "clients"};
    /* what one client connection may have queued here: 64 messages of at most 4 MiB (a
     * context chunk is 1 MiB, a submit at the limits about 2 MiB) */
    int hwm = 64;
    int64_t max = 4 << 20;
    long long sweep_ms = cfg->context_ttl_ms / 2 < 60000 ? cfg->context_ttl_ms / 2 : 60000;

    self->zctx = zmq_ctx_new();
    if (cfg->secure && s_security(self) < 0)
        return FARM_ERROR;
    self->agents = farm_wire_socket_secure(self->zctx, FARM_WIRE_ROUTER_SERVER,
                                           cfg->agents_endpoint, NULL, cfg->secure ? &ca : NULL);
    if (!self->agents)
        return FARM_ERROR;
    self->clients = farm_wire_socket_secure(self->zctx, FARM_WIRE_ROUTER_SERVER,
                                            cfg->clients_endpoint, NULL, cfg->secure ? &cc : NULL);
    if (!self->clients)
        return FARM_ERROR;
    zmq_setsockopt(self->clients, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->clients, ZMQ_MAXMSGSIZE, &max, sizeof max);
    if (sweep_ms < 100)
        sweep_ms = 100;
    if ((self->zap && farm_reactor_add_socket(self->reactor, farm_zap_socket(self->zap),
                                              ZMQ_POLLIN, s_on_zap, self) < 0) ||
        farm_reactor_add_socket(self->reactor, self->agents, ZMQ_POLLIN, s_agents_readable, self) < 0 ||
        farm_reactor_add_socket(self->reactor, self->clients, ZMQ_POLLIN, s_clients_readable, self) < 0 ||
        farm_reactor_timer_add(self->reactor, "heartbeat", cfg->heartbeat_ms, 0, s_on_heartbeat, self) < 0 ||
        farm_reactor_timer_add(self->reactor, "chores", cfg->heartbeat_ms < 1000 ? cfg->heartbeat_ms : 1000,
                               0, s_on_chores, self) < 0 ||
        farm_reactor_timer_add(self->reactor, "contexts", sweep_ms, 0, s_on_sweep, self) < 0)
        return farm_error_set(FARM_ERROR, "out of memory");
    farm_reactor_set_turn_end(self->reactor, s_on_turn_end, self);
    return 0;
}

/* The state dir is ours alone (a directory another user made first, under /var/tmp say,
 * would let them plant warm.json or swap what is in it). */
static int s_state_dir_ok(const char *state)
{
    struct stat st;

    if (lstat(state, &st) != 0)
        return farm_error_set(FARM_EIO, "coordinator.state_dir %s: %s", state, strerror(errno));
    if (farm_fs_check_owned("coordinator.state_dir", state, &st) < 0)
        return FARM_EINVALID;
    return 0;
}

/* What the journal holds unfinished comes back before any agent or client is heard: the
 * agents' HELLOs then find their jobs (parked for them), the clients their builds. */
static int s_restore(farm_coordinator_t *self)
{
    farm_journal_loaded_t loaded;
    long long park = 3LL * self->cfg->heartbeat_ms * self->cfg->liveness;
    int rc;

    if (park < PARK_MIN_MS)
        park = PARK_MIN_MS;
    if ((rc = farm_journal_load_unfinished(self->journal, &loaded)) < 0)
        return rc;
    rc = farm_builds_restore(self->builds, &loaded, park, farm_now_ms());
    farm_journal_loaded_free(&loaded);
    if (rc == 0)
        rc = farm_journal_commit(self->journal);
    if (rc == 0 && farm_scheduler_parked(self->sched))
        farm_log_info("journal: %zu job(s) ran on nodes when the coordinator stopped; each "
                      "waits up to %lld s for its node to say it still runs it",
                      farm_scheduler_parked(self->sched), park / 1000);
    return rc;
}

farm_coordinator_t *farm_coordinator_new(farm_config_t **cfg_p)
{
    farm_coordinator_t *self = calloc(1, sizeof *self);
    farm_config_t *cfg = *cfg_p;
    const char *state = cfg->state_dir ? cfg->state_dir : "/var/tmp/farm-coordinator";
    char contexts[FARM_PATH_MAX], warm_path[FARM_PATH_MAX];
    farm_scheduler_cbs_t scbs = {.assign = s_on_assign, .cancel = s_on_cancel_job,
                                 .waiting = s_on_waiting, .requeued = s_on_requeued,
                                 .expired = s_on_expired};
    farm_builds_cbs_t bcbs = {.event = s_on_event, .stitch = s_on_stitch, .done = s_on_done};
    farm_pushes_opts_t popts = {.parallel = STITCH_PARALLEL, .timeout_ms = STITCH_TIMEOUT_MS};
    farm_coord_parts_t parts;

    if (!self)
        return NULL;
    self->cfg = cfg;
    self->cache_wait_at = -1;
    *cfg_p = NULL;
    s_seed_random();
    if (farm_path_fmt(self->state_dir, sizeof self->state_dir, "%s", state) < 0 ||
        farm_path_join(contexts, sizeof contexts, state, "contexts") < 0 ||
        farm_path_join(warm_path, sizeof warm_path, state, "warm.json") < 0) {
        farm_error_wrap(FARM_EINVALID, "coordinator.state_dir");
        goto fail;
    }
    if (farm_fs_mkdirs(state) < 0 || s_state_dir_ok(state) < 0)
        goto fail;
    /* its refusal names the file and what to do (another coordinator holds it, ...) */
    if (!(self->journal = farm_journal_open(state, NULL)))
        goto fail;
    s_history_opts(self);
    if (!(self->outbox = farm_wire_outbox_new())) {
        farm_error_set(FARM_ERROR, "out of memory");
        goto fail;
    }
    farm_journal_set_batch(self->journal, 1);
    self->pruned_at = farm_now_ms() - PRUNE_EVERY_MS; /* the first chores prune */
    self->nodes = farm_nodes_new(cfg);
    self->timeserve = farm_timeserve_new(FARM_TIMESERVE_PER_PEER, FARM_TIMESERVE_TOTAL);
    self->sched = farm_scheduler_new(cfg, &scbs, self);
    self->builds = self->sched ? farm_builds_new(cfg, self->sched, &bcbs, self) : NULL;
    if (self->builds)
        farm_builds_set_journal(self->builds, self->journal);
    self->ctx = farm_ctxstore_new(contexts, cfg->context_quota, (size_t)cfg->max_uploads,
                                  (size_t)cfg->max_uploads_per_client, s_context_in_use, self);
    self->reactor = farm_reactor_new();
    popts.journal = self->journal; /* each tag's last build, across restarts */
    /* a key that cannot sign stops the start: a farm meant to sign never pushes an
     * unsigned index */
    if (cfg->signing_key_file) {
        if (farm_sigstore_key_read(&self->signing_key_pem, &self->signing_key_len,
                                   cfg->signing_key_file) < 0) {
            farm_error_wrap(FARM_EINVALID, "%s:%d:%d: coordinator.signing_key_file", cfg->path,
                            cfg->signing_key_line, cfg->signing_key_column);
            goto fail;
        }
        popts.signing_key_pem = self->signing_key_pem;
        popts.signing_key_len = self->signing_key_len;
        farm_log_info("signing every pushed index with %s", cfg->signing_key_file);
    }
    self->pushes = self->builds && self->reactor
                       ? farm_pushes_new(self->reactor, self->builds, cfg, &popts) : NULL;
    self->cachecmd = self->nodes && self->sched
                         ? farm_cachecmd_new(self->nodes, self->sched, s_send_client,
                                             s_send_agent, self, 0) : NULL;
    parts = (farm_coord_parts_t){cfg, self->nodes, self->sched, self->builds, self->ctx,
                                 self->journal, self->cachecmd};
    self->cl = self->builds && self->ctx ? farm_clients_new(&parts, s_send_client, self) : NULL;
    self->watches = farm_history_watches_new();
    self->ag = self->builds && self->ctx && self->timeserve
                   ? farm_agents_new(&parts, self->timeserve, s_send_agent, self) : NULL;
    if (!self->ctx)
        goto fail; /* its error names the directory */
    if (!self->ag || !self->nodes || !self->timeserve || !self->sched || !self->builds ||
        !self->reactor || !self->pushes || !self->cl || !self->cachecmd || !self->watches) {
        farm_error_set(FARM_ERROR, "out of memory");
        goto fail;
    }
    if (!(self->warmfile = farm_warmfile_new(warm_path, farm_scheduler_warm(self->sched), cfg)))
        goto fail;
    /* a file that cannot be read costs warm placement, not the start */
    farm_warmfile_restore(self->warmfile);
    if (s_restore(self) < 0)
        goto fail;
    if (s_listen(self) < 0)
        goto fail;
    if (cfg->http && !(self->web = farm_web_new(self->reactor, &self->cfg, &parts, self->watches)))
        goto fail;
    self->reload = (farm_reload_parts_t){&self->cfg, &self->enrolled, self->nodes, self->sched,
                                         self->builds, self->pushes, self->cl, self->ag,
                                         self->warmfile};
    farm_reload_catch_sighup();
    farm_log_info("listening: agents on %s, clients on %s; %zu node(s), %zu platform(s), "
                  "heartbeat %d ms, state in %s", cfg->agents_endpoint, cfg->clients_endpoint,
                  cfg->n_nodes, cfg->n_platforms, cfg->heartbeat_ms, state);
    if (cfg->secure)
        farm_log_info("CURVE on both endpoints: %zu node key(s), %zu client key(s); coordinator "
                      "key %s", cfg->n_nodes, cfg->n_clients, cfg->public_key);
    else
        farm_log_warn("no keys in %s: the endpoints are loopback-only and every local process "
                      "is trusted (fine for one machine; see farmctl keygen for a fleet)",
                      cfg->path);
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
    self->stopping = 1;
    farm_web_destroy(&self->web); /* its streams end while their builds exist */
    farm_pushes_destroy(&self->pushes); /* stops the helpers while their builds exist */
    farm_clients_destroy(&self->cl);
    farm_history_watches_destroy(&self->watches);
    farm_builds_destroy(&self->builds);
    farm_scheduler_destroy(&self->sched);
    farm_agents_destroy(&self->ag); /* the scheduler cancels through it to the end */
    farm_cachecmd_destroy(&self->cachecmd);
    farm_nodes_destroy(&self->nodes);
    farm_timeserve_destroy(&self->timeserve);
    farm_ctxstore_destroy(&self->ctx);
    farm_reactor_destroy(&self->reactor);
    if (self->agents)
        zmq_close(self->agents);
    if (self->clients)
        zmq_close(self->clients);
    farm_zap_destroy(&self->zap);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    farm_enrolled_destroy(&self->enrolled);
    farm_key_wipe(&self->keys);
    if (self->signing_key_pem)
        explicit_bzero(self->signing_key_pem, self->signing_key_len);
    free(self->signing_key_pem);
    farm_warmfile_destroy(&self->warmfile);
    farm_journal_destroy(&self->journal); /* commits what the last turn wrote */
    farm_wire_outbox_destroy(&self->outbox);
    farm_config_destroy(&self->cfg);
    free(self);
    *self_p = NULL;
}

int farm_coordinator_run(farm_coordinator_t *self, volatile int *stop)
{
    int rc = farm_reactor_run(self->reactor, stop);
    farm_log_info("shutting down");
    self->committed_at = farm_now_ms() - COMMIT_EVERY_MS; /* the last turn's, now */
    s_commit(self, farm_now_ms());
    farm_warmfile_save(self->warmfile, farm_now_ms(), 1);
    return rc;
}
