/* SPDX-License-Identifier: Apache-2.0 */
/* Builds: what a client submitted, its jobs (one per platform), their log tails and
 * outcomes, and when a build is finished. Events go out through a callback; the index
 * push is asked for through another (the coordinator runs it as a helper process). */
#ifndef FARM_COORD_BUILDS_H
#define FARM_COORD_BUILDS_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "coordinator/job.h"
#include "coordinator/scheduler.h"

/* Same numbers as farm.proto's EventKind (coordinator.c checks). */
typedef enum {
    FARM_EVENT_QUEUED = 1,
    FARM_EVENT_WAITING = 2,
    FARM_EVENT_DISPATCHED = 3,
    FARM_EVENT_LOG = 4,
    FARM_EVENT_PUSHED = 5,
    FARM_EVENT_LOST = 6,
    FARM_EVENT_FAILED = 7,
    FARM_EVENT_VERIFYING = 8,
    FARM_EVENT_CANCEL = 9
} farm_event_kind_t;

typedef struct {
    /* One event of build b (job may be NULL): for the client, and the log. */
    void (*event)(void *arg, farm_build_t *b, const farm_job_t *job, farm_event_kind_t kind,
                  const char *message);
    /* Every job of b is done (or done enough, with allow_partial): verify the children
     * and push the index, then call farm_builds_finish. b is STITCHING. */
    void (*stitch)(void *arg, farm_build_t *b);
    /* b finished: tell its client (BuildDone). */
    void (*done)(void *arg, farm_build_t *b, int ok, const char *index_digest,
                 uint64_t index_size, const char *error);
} farm_builds_cbs_t;

/* A submit, as plain values (the coordinator unpacked it). */
typedef struct {
    char *const *tags;
    size_t n_tags;
    char *const *platforms;
    size_t n_platforms;
    const char *dockerfile;         /* NULL or "": Dockerfile */
    const char *const *arg_keys;    /* build args: keys[i] = values[i] */
    const char *const *arg_values;
    size_t n_args;
    const char *context_digest;
    int context_stored;             /* the coordinator holds the context (checked last) */
    uint64_t context_size;          /* as stored by the coordinator */
    int allow_partial;
    int target_plain_http;          /* the submitter found the registry speaking plain HTTP */
    const char *network;            /* NULL, "" or "default": the node's; "none" */
    const void *client;             /* the client's routing id */
    size_t client_len;
    const char *owner;              /* the client's authenticated name ("" without keys) */
    const farm_cred_t *creds;       /* the submitter's registry logins (copied) */
    size_t n_creds;
    farm_buildflags_t *flags;       /* NULL: none; checked, and moved into the build (then
                                     * zeroed) when it is accepted */
    const void *token;              /* Submit.submit_token (kept as its SHA-256) */
    size_t token_len;
    int amend;                      /* rebuild these platforms, keep the index's others */
} farm_submit_t;

typedef struct farm_builds farm_builds_t;
struct farm_journal;
struct farm_journal_loaded;

farm_builds_t *farm_builds_new(const farm_config_t *cfg, farm_scheduler_t *sched,
                               const farm_builds_cbs_t *cbs, void *arg);
/* Frees every build (their helper handles must be gone: see farm_builds_each). */
void farm_builds_destroy(farm_builds_t **self_p);
/* farm.yaml was reloaded: new builds are checked against cfg (borrowed likewise). */
void farm_builds_reload(farm_builds_t *self, const farm_config_t *cfg);

/* The journal (coordinator/journal.h) every build and job change is written to before the
 * coordinator acts on it; build ids then come from it (unique across restarts). NULL,
 * the default: nothing is written (the unit tests). Set before the first submit. */
void farm_builds_set_journal(farm_builds_t *self, struct farm_journal *journal);
/* Restores the journal's unfinished builds at start: each job queued again, or (running
 * on a node when the coordinator stopped) parked park_ms for that node to say it still
 * holds it (farm_scheduler_park); a finished set of jobs is stitched, a stitch in flight
 * redone. A build that had logins or secrets (never journaled) is awaiting_submitter:
 * only its parked jobs go on until farm_builds_resume. The records' strings are moved
 * out; the caller frees loaded. */
int farm_builds_restore(farm_builds_t *self, struct farm_journal_loaded *loaded,
                        long long park_ms, long long now);
/* Puts a restored build's jobs in the scheduler (as restore does; again for one whose
 * submitter sent its logins back) and stitches it when every job is done. */
void farm_builds_resume(farm_builds_t *self, farm_build_t *b, long long park_ms, long long now);
/* The scheduler changed the job (assigned it, or queued it again): written to the
 * journal before the node or client hears of it. */
void farm_builds_job_journal(farm_builds_t *self, const farm_job_t *job);
/* The job's node was lost or came back without it: journaled, and its client told; a
 * build awaiting its submitter keeps the job out of the queue. */
void farm_builds_job_requeued(farm_builds_t *self, farm_job_t *job, const char *why);

/* Checks a submit and records the build with one QUEUED job per distinct platform.
 * FARM_EINVALID with reason (a person can act on it) when refused. */
int farm_builds_submit(farm_builds_t *self, farm_build_t **out, const farm_submit_t *s,
                       long long now, char *reason, size_t reason_len);
/* After the client was told the build is accepted: each job says "queued" and goes to
 * the scheduler. */
void farm_builds_start(farm_builds_t *self, farm_build_t *b, long long now);
farm_build_t *farm_builds_get(farm_builds_t *self, const char *id);
/* The submitter's login for registry host, NULL if none was sent (or the build is DONE). */
const farm_cred_t *farm_build_cred(const farm_build_t *b, const char *host);

void farm_builds_event(farm_builds_t *self, farm_build_t *b, const farm_job_t *job,
                       farm_event_kind_t kind, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* A line of the job's build output. */
void farm_builds_job_log(farm_builds_t *self, farm_job_t *job, const char *line);
/* The job's attempt succeeded with image (already checked against the job's platform);
 * the scheduler has released it. The caller set job->cache_hits and steps. */
void farm_builds_job_pushed(farm_builds_t *self, farm_job_t *job, const farm_descriptor_t *image,
                            uint64_t build_ms, uint64_t push_ms, long long now);
/* The job failed (the scheduler no longer holds it): FAILED, event, build checked. */
void farm_builds_job_failed(farm_builds_t *self, farm_job_t *job, long long now,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Ends the build: unfinished jobs are withdrawn (CANCELLED), the build is DONE and its
 * client is told. A DONE build is freed by farm_builds_reap a while later, so late
 * results are still recognised. */
void farm_builds_finish(farm_builds_t *self, farm_build_t *b, int ok, const char *index_digest,
                        uint64_t index_size, const char *error, long long now);
/* A client asked to cancel. Its own builds (same name, or without keys the same
 * connection) or, for an admin, any. 0 ok, FARM_ENOTFOUND, FARM_EAUTH. */
int farm_builds_cancel(farm_builds_t *self, const char *id, const void *client,
                       size_t client_len, const char *owner, int admin, long long now);
/* 1 when the build belongs to the client (as for cancel). */
int farm_build_owned_by(const farm_build_t *b, const void *client, size_t client_len,
                        const char *owner);

/* Adds connection rid to b's followers (its events and BuildDone go there too), once.
 * With FARM_FOLLOWERS_MAX already, the oldest is dropped: 1 and *out_dropped (may be
 * NULL) is it; else 0. */
int farm_build_follow(farm_build_t *b, farm_follower_t *out_dropped, const void *rid,
                      size_t rid_len);
/* Removes rid from b's followers (its connection is gone). */
void farm_build_unfollow(farm_build_t *b, const void *rid, size_t rid_len);
/* The build (in memory: not DONE, or DONE less than a minute ago) whose Submit carried
 * token, or NULL: a farmctl that lost the coordinator before its answer sends the same
 * Submit again, and must get that build, not a second one. */
farm_build_t *farm_builds_by_token(farm_builds_t *self, const void *token, size_t len);
/* 1 when token is the one the build's Submit carried (its submitting farmctl). */
int farm_build_token_is(const farm_build_t *b, const void *token, size_t len);

/* b lost its submitter's logins and secrets (a coordinator restart: they are never
 * written down): awaiting_submitter, and its QUEUED jobs leave the scheduler. */
void farm_builds_await_submitter(farm_builds_t *self, farm_build_t *b, long long now);
/* The submitter sent them again: b takes copies of creds and the secrets of *secrets
 * (moved; may be NULL), the flag is cleared and its QUEUED jobs go to the scheduler.
 * FARM_EINVALID with reason when refused (b does not wait, bad logins). */
int farm_builds_submitter_back(farm_builds_t *self, farm_build_t *b, const farm_cred_t *creds,
                               size_t n_creds, farm_buildflags_t *secrets, long long now,
                               char *reason, size_t len);
/* Fails each build that waited for its submitter longer than coordinator.queue_timeout,
 * saying so. */
void farm_builds_submitter_overdue(farm_builds_t *self, long long now);

/* Frees builds DONE for longer than keep_ms; before each, free_fn (may be NULL) lets
 * the caller drop what it attached (b->stitch). */
void farm_builds_reap(farm_builds_t *self, long long now, long long keep_ms,
                      void (*free_fn)(void *arg, farm_build_t *b), void *arg);
/* Calls fn for every build not DONE (running or stitching), oldest first. */
void farm_builds_each_active(farm_builds_t *self, void (*fn)(void *arg, farm_build_t *b),
                             void *arg);
/* Calls fn for every build, active or DONE (shutdown). */
void farm_builds_each(farm_builds_t *self, void (*fn)(void *arg, farm_build_t *b), void *arg);
/* 1 while a build that is not DONE needs the context. */
int farm_builds_context_in_use(const farm_builds_t *self, const char *digest);
size_t farm_builds_active(const farm_builds_t *self);

#endif
