/* SPDX-License-Identifier: Apache-2.0 */
/* The coordinator's journal: builds, their jobs and each job's attempts, written before
 * the coordinator acts on them and read back when it starts, so a restart loses nothing
 * it had accepted. Plain records in, plain records out; the storage is behind
 * farm_journal_ops_t (SQLite in state_dir is the one backend; a networked database for
 * a standby coordinator can be another).
 *
 * Never stored: registry logins and build secrets. A record has no field for them, and
 * farm_journal_build_from() does not read a build's creds or flags.secrets; they stay in
 * the coordinator's memory and the submitter sends them again after a restart
 * (needs_submitter says a build had some). */
#ifndef FARM_COORD_JOURNAL_H
#define FARM_COORD_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/buildflags.h"
#include "common/config.h"
#include "common/digest.h"
#include "common/limits.h"
#include "common/platform.h"
#include "coordinator/job.h"

/* The schema this code writes; a journal with a higher version is refused. */
#define FARM_JOURNAL_SCHEMA 4
/* Ceilings of the strings only the journal bounds (the others are in common/limits.h). */
#define FARM_JOURNAL_REASON_MAX 8192    /* bytes in a build's reason or a job's error */
#define FARM_JOURNAL_MEDIA_TYPE_MAX 127 /* bytes in a result's media type */
#define FARM_JOURNAL_TAG_MAX 128        /* bytes in a tag name (the distribution spec's) */
/* Finished builds are kept this long (farm.yaml history.keep), and at most this many
 * (history.max_builds), then pruned; each build's log is kept up to this many bytes
 * (history.log_limit): its first half and its last, with what was cut between counted. */
#define FARM_JOURNAL_RETENTION_MS (7LL * 24 * 3600 * 1000)
#define FARM_JOURNAL_MAX_BUILDS 10000
#define FARM_JOURNAL_LOG_LIMIT (1024 * 1024)
#define FARM_JOURNAL_STEPS_MAX 512      /* timed steps kept per attempt */
#define FARM_JOURNAL_STEP_TEXT_MAX 256  /* bytes of a step's text kept */
#define FARM_JOURNAL_LINE_MAX 8192      /* bytes of a log line kept (cut beyond) */

typedef enum {
    FARM_JOURNAL_BUILD_RUNNING = 1, /* accepted: jobs queued or running */
    FARM_JOURNAL_BUILD_STITCHING,   /* every job done: the index is being pushed */
    FARM_JOURNAL_BUILD_DONE         /* pushed or failed (ok, reason) */
} farm_journal_build_state_t;

typedef enum {
    FARM_JOURNAL_JOB_QUEUED = 1,
    FARM_JOURNAL_JOB_RUNNING,
    FARM_JOURNAL_JOB_DONE,
    FARM_JOURNAL_JOB_FAILED,
    FARM_JOURNAL_JOB_CANCELLED
} farm_journal_job_state_t;

/* A build. Times are wall-clock milliseconds since the epoch (they must mean the same
 * after a restart). Pointers are borrowed when the record is written; records the journal
 * returns own them (farm_journal_loaded_free). */
typedef struct {
    char id[FARM_ID_MAX + 1];
    uint64_t seq;                     /* submit order: the number in the id */
    char owner[FARM_NAME_MAX + 1];    /* the client's name, "" without keys */
    char registry[FARM_REGISTRY_HOST_MAX + 1];
    char repository[256];
    char **tags;
    size_t n_tags;
    /* parallel to tags, in full (registry/repository:tag), kept in the options only when
     * the tags name more than one repository; else none (every tag is registry/repository's) */
    char **tag_refs;
    size_t n_tag_refs;
    char **platforms;                 /* canonical, one per job, in job order */
    size_t n_platforms;
    char context_digest[FARM_DIGEST_STRLEN];
    uint64_t context_size;
    /* options that are not secrets */
    char *dockerfile;                 /* NULL: Dockerfile */
    farm_kv_t *args;
    size_t n_args;
    farm_buildflags_t flags;          /* flags.secrets is never written, and empty when read */
    int insecure, allow_partial, network_none;
    int amend;                        /* farmctl submit --amend (kept in the options) */
    char token_digest[FARM_DIGEST_STRLEN]; /* SHA-256 of the submitting farmctl's random
                                       * token ("" none): the token itself is never stored */
    int needs_submitter;              /* the build had logins or secrets: only its submitter
                                       * can give them back after a restart */
    farm_journal_build_state_t state;
    long long created, updated, done_at;
    int ok;                           /* DONE: 1 pushed, 0 failed */
    char *reason;                     /* DONE and failed: why (NULL otherwise) */
    char index_digest[FARM_DIGEST_STRLEN]; /* DONE and ok */
    uint64_t index_size;
} farm_journal_build_t;

/* A job (one platform of a build) as of its latest attempt. Writing one also records
 * that attempt (attempt > 0): running while the job runs, then done, failed, cancelled,
 * or lost when the job went back to QUEUED. */
typedef struct {
    char build_id[FARM_ID_MAX + 1];
    char id[FARM_ID_MAX + 1];
    char platform[FARM_PLATFORM_STRLEN];
    farm_journal_job_state_t state;
    unsigned attempt;                 /* 0: never dispatched */
    char node[FARM_NAME_MAX + 1];     /* the node of that attempt ("" before one) */
    long long queued_at, started_at, finished_at;
    /* DONE: the image the attempt pushed */
    char image_digest[FARM_DIGEST_STRLEN];
    uint64_t image_size;
    char image_media_type[FARM_JOURNAL_MEDIA_TYPE_MAX + 1];
    char *error;                      /* FAILED: why (NULL otherwise) */
    unsigned cache_hits, steps;       /* DONE: the builder's, from the result */
    /* written, not read back: why the attempt ended (QUEUED: why it was lost; FAILED:
     * error is used when NULL). Kept with the attempt (farm_journal_attempt_t). */
    const char *reason;
} farm_journal_job_t;

/* An attempt of a job as the journal keeps it. */
typedef struct {
    char platform[FARM_PLATFORM_STRLEN];
    unsigned attempt;
    char node[FARM_NAME_MAX + 1];
    char outcome[16];                 /* running, done, failed, cancelled, lost */
    char *reason;                     /* owned; "" when none */
    long long started_at, finished_at;
} farm_journal_attempt_t;

/* A build step an agent timed (JobResult.build_steps). text is borrowed when written,
 * owned when read. */
typedef struct {
    char platform[FARM_PLATFORM_STRLEN];
    unsigned number;
    char *text;
    uint64_t ms;
    int cached;
} farm_journal_step_t;

/* A build's whole record (farmctl history inspect): the build, its jobs in job order, its
 * attempts and its last attempts' steps (each naming its platform), and what its log
 * bound cut. Owned: farm_journal_record_clear. */
typedef struct {
    farm_journal_build_t build;
    farm_journal_job_t *jobs;
    size_t n_jobs;
    farm_journal_attempt_t *attempts;
    size_t n_attempts;
    farm_journal_step_t *steps;
    size_t n_steps;
    uint64_t log_cut_lines, log_cut_bytes;
} farm_journal_record_t;

/* Which builds farm_journal_list returns, newest (highest seq) first. NULL/0: any. Each
 * string filter with its negation (1: != instead of =). */
typedef struct {
    const char *owner;
    int owner_not;
    const char *repository;           /* registry/repository */
    int repository_not;
    const char *status;               /* running, stitching, completed, failed, cancelled */
    int status_not;
    long long since, until;           /* created within (wall-clock ms; 0: open) */
    size_t offset, limit;             /* limit 0: FARM_JOURNAL_MAX_BUILDS */
} farm_journal_filter_t;

/* A kept line of a build's log; platform "" for the line saying what the bound cut. */
typedef struct {
    char platform[FARM_PLATFORM_STRLEN];
    char node[FARM_NAME_MAX + 1];     /* whose builder printed it */
    char *line;
} farm_journal_line_t;

/* A tag (registry/repository:tag) and the build whose index push last took it: the
 * per-tag order rule (coordinator/tagorder.h) lets no build submitted earlier put its
 * index there afterwards, across restarts. */
typedef struct {
    char registry[FARM_REGISTRY_HOST_MAX + 1];
    char repository[256];
    char tag[FARM_JOURNAL_TAG_MAX + 1];
    uint64_t seq;                     /* that build's submit number; 0: none (a claim
                                       * undone), build_id "" */
    char build_id[FARM_ID_MAX + 1];
    long long at;                     /* wall-clock ms when it took the tag */
} farm_journal_tag_t;

/* What a starting coordinator reconciles: every build not DONE, oldest submit first, and
 * their jobs, build by build in job order (job.build_id says whose). */
typedef struct farm_journal_loaded {
    farm_journal_build_t *builds;
    size_t n_builds;
    farm_journal_job_t *jobs;
    size_t n_jobs;
} farm_journal_loaded_t;

/* A backend. Each write is one transaction, durable when it returns 0 (or, in batch
 * mode, when commit returns 0). Errors go to the error slot, naming the journal. */
typedef struct farm_journal_ops {
    const char *name;
    /* the build inserted, or its state, times, result and needs_submitter updated (what
     * the submit fixed stays as first written); and (n_jobs > 0) these jobs of it,
     * inserted or updated */
    int (*put_build)(void *impl, const farm_journal_build_t *b, const farm_journal_job_t *jobs,
                     size_t n_jobs);
    int (*put_job)(void *impl, const farm_journal_job_t *job);
    /* build id DONE at `at`; its jobs still QUEUED or RUNNING become CANCELLED */
    int (*finish)(void *impl, const char *id, int ok, const char *reason,
                  const char *index_digest, uint64_t index_size, long long at);
    int (*load_unfinished)(void *impl, farm_journal_loaded_t *out);
    /* one build, finished or not: FARM_ENOTFOUND when the journal has none by that id */
    int (*get_build)(void *impl, farm_journal_build_t *out, const char *id);
    /* removes DONE builds (and their jobs and attempts) done before `before` */
    int (*prune)(void *impl, size_t *out_removed, long long before);
    /* the next submit number, never handed out before by this journal */
    int (*next_seq)(void *impl, uint64_t *out);
    /* optional (NULL: every write is durable when it returns): on, the writes join one
     * transaction until commit (each still all or nothing); off commits what is open */
    void (*set_batch)(void *impl, int on);
    int (*commit)(void *impl);
    int (*pending)(void *impl); /* 1 while a batch holds writes not committed */
    /* commits what a batch holds */
    void (*close)(void *impl);
    /* the tag's record inserted or replaced (schema 3; a backend without them: NULL) */
    int (*put_tag)(void *impl, const farm_journal_tag_t *t);
    /* the tag's record: FARM_ENOTFOUND when no build took it yet */
    int (*get_tag)(void *impl, farm_journal_tag_t *out, const char *registry,
                   const char *repository, const char *tag);
    /* schema 4, build records (a backend without them: NULL) */
    int (*put_steps)(void *impl, const char *build_id, const char *platform,
                     const farm_journal_step_t *steps, size_t n);
    /* one line of the build's log, the bound applied (limit: bytes kept per build) */
    int (*put_line)(void *impl, const char *build_id, const char *platform, const char *node,
                    const char *line, size_t limit);
    int (*list)(void *impl, farm_journal_build_t **out, size_t *out_n,
                const farm_journal_filter_t *f);
    int (*get_record)(void *impl, farm_journal_record_t *out, const char *id);
    int (*get_lines)(void *impl, farm_journal_line_t **out, size_t *out_n, const char *id,
                     const char *platform);
    /* removes DONE builds beyond the newest keep (by submit order) */
    int (*prune_count)(void *impl, size_t *out_removed, size_t keep);
} farm_journal_ops_t;

typedef struct farm_journal farm_journal_t;

typedef struct {
    long long retention_ms;           /* 0: FARM_JOURNAL_RETENTION_MS (history.keep) */
    size_t max_builds;                /* 0: FARM_JOURNAL_MAX_BUILDS (history.max_builds) */
    size_t log_limit;                 /* 0: FARM_JOURNAL_LOG_LIMIT (history.log_limit) */
} farm_journal_opts_t;

/* Opens (creates, or migrates to FARM_JOURNAL_SCHEMA) the SQLite journal state_dir/
 * journal.db. state_dir must pass farm_fs_check_owned; the file and its -wal are the
 * user's own, mode 0600. Refused, with the file named and what to do: a journal of a
 * newer schema, one that is corrupt or not a farm journal, one another process holds
 * open. opts may be NULL. */
farm_journal_t *farm_journal_open(const char *state_dir, const farm_journal_opts_t *opts);
/* Another backend: impl is owned (ops->close frees it). */
farm_journal_t *farm_journal_new(const farm_journal_ops_t *ops, void *impl,
                                 const farm_journal_opts_t *opts);
void farm_journal_destroy(farm_journal_t **self_p);
/* The file the journal lives in ("" for other backends), for messages. */
const char *farm_journal_path(const farm_journal_t *self);

/* Checks every string against its ceiling, then writes: FARM_EINVALID names the field. */
int farm_journal_put_build(farm_journal_t *self, const farm_journal_build_t *b,
                           const farm_journal_job_t *jobs, size_t n_jobs);
int farm_journal_put_job(farm_journal_t *self, const farm_journal_job_t *job);
/* Group commit. In batch mode a write is durable only once farm_journal_commit returns 0:
 * the coordinator commits at the end of each reactor turn and holds back what must not
 * be said before (a build's Accepted, a result's JobAck) until then. One fsync per turn
 * instead of one per write: 500-4,000 writes/s become one turn's worth each. */
void farm_journal_set_batch(farm_journal_t *self, int on);
int farm_journal_commit(farm_journal_t *self);
int farm_journal_pending(const farm_journal_t *self);
int farm_journal_finish(farm_journal_t *self, const char *id, int ok, const char *reason,
                        const char *index_digest, uint64_t index_size, long long at);
int farm_journal_load_unfinished(farm_journal_t *self, farm_journal_loaded_t *out);
void farm_journal_loaded_free(farm_journal_loaded_t *loaded);
int farm_journal_get_build(farm_journal_t *self, farm_journal_build_t *out, const char *id);
/* Frees what a record the journal returned owns; the record itself is not freed. */
void farm_journal_build_clear(farm_journal_build_t *b);
/* The tags' records: checked against their ceilings (FARM_EINVALID names the field);
 * FARM_EINVALID too from a backend that keeps no tags. get: FARM_ENOTFOUND when the tag
 * was never taken. Records are kept when their builds are pruned: the order outlives
 * them. */
int farm_journal_put_tag(farm_journal_t *self, const farm_journal_tag_t *t);
int farm_journal_get_tag(farm_journal_t *self, farm_journal_tag_t *out, const char *registry,
                         const char *repository, const char *tag);
/* Prunes builds DONE longer than the retention before now, and the oldest finished ones
 * beyond max_builds (also when builds finish: every max_builds/100 + 1 of them, so a
 * history may hold up to 1% more for a while). */
int farm_journal_prune(farm_journal_t *self, size_t *out_removed, long long now);
/* farm.yaml was reloaded: the history settings change (0: the default). */
void farm_journal_set_opts(farm_journal_t *self, const farm_journal_opts_t *opts);

/* Build records (schema 4). steps: the last attempt's timed steps of the platform
 * (replacing earlier ones); line: one line of the build's log, kept within log_limit
 * (the first half and the last; what falls between is counted and said when read). */
int farm_journal_put_steps(farm_journal_t *self, const char *build_id, const char *platform,
                           const farm_journal_step_t *steps, size_t n);
int farm_journal_put_line(farm_journal_t *self, const char *build_id, const char *platform,
                          const char *node, const char *line);
/* The builds f selects, newest first: *out owned (farm_journal_builds_free). */
int farm_journal_list(farm_journal_t *self, farm_journal_build_t **out, size_t *out_n,
                      const farm_journal_filter_t *f);
void farm_journal_builds_free(farm_journal_build_t *builds, size_t n);
/* One build's record: FARM_ENOTFOUND when none. */
int farm_journal_get_record(farm_journal_t *self, farm_journal_record_t *out, const char *id);
void farm_journal_record_clear(farm_journal_record_t *r);
/* The build's kept log lines in order (platform: one platform's, NULL: all), with a line
 * "... N lines (M bytes) cut ..." (platform "") where the bound cut. */
int farm_journal_get_lines(farm_journal_t *self, farm_journal_line_t **out, size_t *out_n,
                           const char *id, const char *platform);
void farm_journal_lines_free(farm_journal_line_t *lines, size_t n);

/* A new build id, "b<seq>-<32 hex>" as builds have always been named: seq is the journal's
 * next submit number (so ids and submit order hold across restarts), the hex 128 random
 * bits (an id cannot be guessed from another). */
int farm_journal_next_build_id(farm_journal_t *self, char *out, size_t len, uint64_t *out_seq);

/* The records of an in-memory build and job. Borrows b's strings (platforms: pointers to
 * its jobs' put in plats); never reads b->creds or b->flags.secrets. created/updated/
 * done_at are left 0 for the caller (the build's own times are monotonic). */
int farm_journal_build_from(farm_journal_build_t *out, char *plats[FARM_PLATFORMS_MAX],
                            const farm_build_t *b, uint64_t seq);
void farm_journal_job_from(farm_journal_job_t *out, const farm_job_t *job);
/* The in-memory state of a job record's state (FARM_JOB_FAILED for one this code does
 * not write). */
farm_job_state_t farm_journal_job_state(farm_journal_job_state_t s);

#endif
