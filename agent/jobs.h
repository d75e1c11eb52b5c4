/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's jobs: each assigned job from the context fetch to its worker's end, the
 * worker process (an exec'd `farm-agent worker`, common/child.h), its log tail, cancel
 * with a grace period, and its private directory. No socket or protobuf here.
 *
 * A job that ends (finished, cancelled, dropped with its session) is marked dead and freed
 * only by farm_jobs_reap, which the agent calls at the end of a reactor turn: a pointer a
 * handler holds stays valid for the rest of the turn.
 *
 * Each job directory records its worker's pid and start time (file "worker"), so an agent
 * started after a crash can end a worker that still runs and remove what it left. */
#ifndef FARM_AGENT_JOBS_H
#define FARM_AGENT_JOBS_H

#include <stddef.h>

#include "common/child.h"
#include "common/digest.h"
#include "common/limits.h"
#include "common/platform.h"
#include "common/tail.h"

#define FARM_JOBS_KILL_GRACE_MS 5000 /* SIGTERM to SIGKILL of the worker's group */

typedef enum {
    FARM_AGENT_JOB_FETCHING, /* waiting for its context */
    FARM_AGENT_JOB_RUNNING,  /* its worker runs */
    FARM_AGENT_JOB_DEAD,     /* ended: no more reports; freed by farm_jobs_reap */
} farm_agent_job_state_t;

typedef struct farm_agent_job {
    struct farm_agent_job *next;
    char id[FARM_ID_MAX + 1];
    unsigned attempt;
    char platform[FARM_PLATFORM_STRLEN];
    char context[FARM_DIGEST_STRLEN];
    farm_agent_job_state_t state;
    int cancelled;
    char dir[FARM_PATH_MAX];   /* "" until farm_jobs_prepare */
    farm_child_t *child;       /* NULL until spawned */
    int child_exited;          /* reaped; status in exit_status */
    int exit_status;
    long long exited_ms;
    farm_tail_t tail;
    long long started_ms;
    long long kill_at;         /* SIGKILL of the group due (0: none) */
    int reader_log, reader_result; /* the agent's reactor ids (0: none) */
    void *user;                /* the agent's (freed with free_user) */
} farm_agent_job_t;

typedef struct farm_jobs farm_jobs_t;

/* dir: where job directories go (created 0700). Ends and removes what an earlier agent
 * run left there first. free_user frees farm_agent_job_t.user (may be NULL). */
farm_jobs_t *farm_jobs_new(const char *dir, void (*free_user)(void *user));
/* Ends every worker (SIGTERM, then SIGKILL after the grace period) and frees all. */
void farm_jobs_destroy(farm_jobs_t **self_p);

/* A new job; NULL when (id, attempt) is already live (*out_dup set), an argument is out
 * of bounds, or out of memory (error slot). */
farm_agent_job_t *farm_jobs_add(farm_jobs_t *self, int *out_dup, const char *id, unsigned attempt,
                          const char *platform, const char *context, void *user);
/* A live (not dead) job, or NULL. */
farm_agent_job_t *farm_jobs_find(farm_jobs_t *self, const char *id, unsigned attempt);
farm_agent_job_t *farm_jobs_first(farm_jobs_t *self);
/* Jobs not dead. */
size_t farm_jobs_count(const farm_jobs_t *self);
/* 1 when a live job needs context digest. */
int farm_jobs_need_context(const farm_jobs_t *self, const char *digest);

/* Creates the job's private directory (DIR/job-N-PID) with DIR/tmp for the builder. */
int farm_jobs_prepare(farm_jobs_t *self, farm_agent_job_t *job);
/* Starts the worker and records it in the job directory; the job is RUNNING after. */
int farm_jobs_spawn(farm_jobs_t *self, farm_agent_job_t *job, const farm_child_opts_t *opts,
                    long long now);

/* Cancel: SIGTERM to the worker's group (SIGKILL after the grace period); a job without
 * a worker is dead at once. The job stays RUNNING until its worker is reaped. */
void farm_jobs_cancel(farm_jobs_t *self, farm_agent_job_t *job, long long now);
/* Ends a job without a report: dead now, its worker ended as on cancel. */
void farm_jobs_drop(farm_jobs_t *self, farm_agent_job_t *job, long long now);
void farm_jobs_drop_all(farm_jobs_t *self, long long now);

/* Reaps exited workers and sends SIGKILL where the grace period ran out. */
void farm_jobs_poll(farm_jobs_t *self, long long now);
/* 1 when a RUNNING job's worker is done: reaped and both streams at EOF (or the log still
 * open 2 s after the worker exited: an escaped process holds it; it is not waited for). */
int farm_jobs_finished(const farm_agent_job_t *job, long long now);
/* Frees dead jobs whose worker has exited (or never ran): directory removed (mounts
 * under it detached first). Call at the end of a turn. Returns how many were freed. */
size_t farm_jobs_reap(farm_jobs_t *self);

/* Ends and removes what a job directory holds: a recorded worker that still runs (same
 * pid and start time) is killed with its group, mounts under dir are detached lazily,
 * the tree is removed. Used at start-up and when a job is freed. */
void farm_jobs_remove_dir(const char *dir);

#endif
