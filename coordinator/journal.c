/* SPDX-License-Identifier: Apache-2.0 */
/* The journal: checks and the generic front (journal.h), then the SQLite backend.
 *
 * SQLite runs in WAL mode with synchronous=FULL: a write returns only once its commit is
 * on disk, so what the coordinator told a client or an agent after writing it survives a
 * power cut, not only a crash of the process (NORMAL+WAL may lose the last commits on
 * power loss: an accepted build, or a submit number handed out twice). The cost is one
 * fsync of the WAL per event; docs/benchmarks.md has the numbers. locking_mode=EXCLUSIVE
 * keeps the file locked while the coordinator runs (a second coordinator on the same
 * state_dir is refused) and needs no -shm file. */
#include "coordinator/journal.h"
#include "coordinator/attest.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/hmap.h"
#include "common/log.h"

struct farm_journal {
    const farm_journal_ops_t *ops;
    void *impl;
    long long retention_ms;
    size_t max_builds, log_limit;
    size_t finished;  /* builds finished since the last prune by count */
    char path[FARM_PATH_MAX];
};

/* ------------------------------------------------------------------ records */

static const char *const s_build_states[] = {NULL, "running", "stitching", "done"};
static const char *const s_job_states[] = {NULL, "queued", "running", "done", "failed",
                                           "cancelled"};

static int s_str_ok(const char *what, const char *id, const char *field, const char *s,
                    size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n > max)
        return farm_error_set(FARM_EINVALID, "%s %s: %s is %zu bytes, over its ceiling of %zu",
                              what, id, field, n, max);
    return 0;
}

static int s_kvs_ok(const char *id, const char *field, const farm_kv_t *kv, size_t n,
                    size_t max_n, size_t max_key, size_t max_value)
{
    char f[64];
    if (n > max_n)
        return farm_error_set(FARM_EINVALID, "journal: build %s: %zu %s, over the ceiling of %zu",
                              id, n, field, max_n);
    for (size_t i = 0; i < n; i++) {
        snprintf(f, sizeof f, "%s[%zu]", field, i);
        if (!kv[i].key || !kv[i].value)
            return farm_error_set(FARM_EINVALID, "journal: build %s: %s has no key or value",
                                  id, f);
        if (s_str_ok("journal: build", id, f, kv[i].key, max_key) < 0 ||
            s_str_ok("journal: build", id, f, kv[i].value, max_value) < 0)
            return FARM_EINVALID;
    }
    return 0;
}

static int s_strv_ok(const char *id, const char *field, char *const *v, size_t n,
                     size_t max_n, size_t max_len)
{
    char f[64];
    if (n > max_n)
        return farm_error_set(FARM_EINVALID, "journal: build %s: %zu %s, over the ceiling of %zu",
                              id, n, field, max_n);
    for (size_t i = 0; i < n; i++) {
        snprintf(f, sizeof f, "%s[%zu]", field, i);
        if (!v[i] || !*v[i])
            return farm_error_set(FARM_EINVALID, "journal: build %s: %s is empty", id, f);
        if (s_str_ok("journal: build", id, f, v[i], max_len) < 0)
            return FARM_EINVALID;
    }
    return 0;
}

/* Every string of b within its ceiling (the fixed arrays are NUL-terminated within
 * theirs by construction, but a record can come from anywhere: check them too). */
static int s_build_ok(const farm_journal_build_t *b)
{
    const char *id = b->id;
    const char *w = "journal: build";

    if (!memchr(b->id, 0, sizeof b->id) || !b->id[0])
        return farm_error_set(FARM_EINVALID, "journal: a build without an id");
    if (!memchr(b->owner, 0, sizeof b->owner) || !memchr(b->registry, 0, sizeof b->registry) ||
        !memchr(b->repository, 0, sizeof b->repository) ||
        !memchr(b->context_digest, 0, sizeof b->context_digest) ||
        !memchr(b->index_digest, 0, sizeof b->index_digest))
        return farm_error_set(FARM_EINVALID, "journal: build %s: a name over its ceiling", id);
    if (b->state < FARM_JOURNAL_BUILD_RUNNING || b->state > FARM_JOURNAL_BUILD_DONE)
        return farm_error_set(FARM_EINVALID, "journal: build %s: state %d is none of running, "
                              "stitching, done", id, (int)b->state);
    if (b->seq == 0 || b->seq > INT64_MAX)
        return farm_error_set(FARM_EINVALID, "journal: build %s: submit number %" PRIu64
                              " out of range", id, b->seq);
    if (s_strv_ok(id, "tags", b->tags, b->n_tags, FARM_TAGS_MAX, FARM_REFERENCE_MAX) < 0 ||
        s_strv_ok(id, "tags in full", b->tag_refs, b->n_tag_refs, FARM_TAGS_MAX,
                  FARM_REFERENCE_MAX) < 0 ||
        s_strv_ok(id, "platforms", b->platforms, b->n_platforms, FARM_PLATFORMS_MAX,
                  FARM_PLATFORM_STRLEN - 1) < 0 ||
        s_str_ok(w, id, "dockerfile", b->dockerfile, FARM_DOCKERFILE_PATH_MAX) < 0 ||
        s_kvs_ok(id, "build args", b->args, b->n_args, FARM_BUILD_ARGS_MAX,
                 FARM_BUILD_ARG_NAME_MAX, FARM_BUILD_ARG_VALUE_MAX) < 0 ||
        s_str_ok(w, id, "target", b->flags.target, FARM_TARGET_MAX) < 0 ||
        s_str_ok(w, id, "cache_from", b->flags.cache_from, FARM_REFERENCE_MAX) < 0 ||
        s_str_ok(w, id, "cache_to", b->flags.cache_to, FARM_REFERENCE_MAX) < 0 ||
        s_kvs_ok(id, "labels", b->flags.labels, b->flags.n_labels, FARM_LABELS_MAX,
                 FARM_META_KEY_MAX, FARM_META_VALUE_MAX) < 0 ||
        s_kvs_ok(id, "annotations", b->flags.annotations, b->flags.n_annotations,
                 FARM_ANNOTATIONS_MAX, FARM_META_KEY_MAX, FARM_META_VALUE_MAX) < 0 ||
        s_kvs_ok(id, "index annotations", b->flags.index_annotations,
                 b->flags.n_index_annotations, FARM_ANNOTATIONS_MAX, FARM_META_KEY_MAX,
                 FARM_META_VALUE_MAX) < 0 ||
        s_str_ok(w, id, "reason", b->reason, FARM_JOURNAL_REASON_MAX) < 0)
        return FARM_EINVALID;
    return 0;
}

static int s_job_ok(const farm_journal_job_t *j)
{
    if (!memchr(j->build_id, 0, sizeof j->build_id) || !j->build_id[0] ||
        !memchr(j->id, 0, sizeof j->id) || !memchr(j->platform, 0, sizeof j->platform) ||
        !j->platform[0] || !memchr(j->node, 0, sizeof j->node) ||
        !memchr(j->image_digest, 0, sizeof j->image_digest) ||
        !memchr(j->image_media_type, 0, sizeof j->image_media_type))
        return farm_error_set(FARM_EINVALID, "journal: a job without a build id or platform, "
                              "or with a name over its ceiling");
    if (j->state < FARM_JOURNAL_JOB_QUEUED || j->state > FARM_JOURNAL_JOB_CANCELLED)
        return farm_error_set(FARM_EINVALID, "journal: job %s: state %d is not a job state",
                              j->id, (int)j->state);
    return s_str_ok("journal: job", j->id, "error", j->error, FARM_JOURNAL_REASON_MAX);
}

/* ------------------------------------------------------------------ options as JSON */

static json_t *s_kv_json(const farm_kv_t *kv, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_pack("[ss]", kv[i].key, kv[i].value)) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *s_strv_json(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(v[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static char *s_dump(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

/* The options a build can be run again with, secrets left out: flags.secrets and the
 * logins are not read here. */
static char *s_options_json(const farm_journal_build_t *b)
{
    const farm_buildflags_t *f = &b->flags;
    json_t *o = json_pack("{s:s?, s:o, s:s?, s:b, s:b, s:o, s:o, s:o, s:s?, s:s?, s:s?, s:s?}",
                          "dockerfile", b->dockerfile, "args", s_kv_json(b->args, b->n_args),
                          "target", f->target, "no_cache", f->no_cache, "pull", f->pull,
                          "labels", s_kv_json(f->labels, f->n_labels),
                          "annotations", s_kv_json(f->annotations, f->n_annotations),
                          "index_annotations",
                          s_kv_json(f->index_annotations, f->n_index_annotations),
                          "cache_from", f->cache_from, "cache_to", f->cache_to,
                          "submit_token_sha256", b->token_digest[0] ? b->token_digest : NULL,
                          /* the submit's choice: a restarted coordinator attests the same */
                          "provenance", f->provenance ? farm_provenance_name(f->provenance)
                                                      : NULL);
    json_t *jobs = NULL;
    if (o && b->amend && json_object_set_new(o, "amend", json_true()) < 0)
        goto oom;
    /* tags in several repositories: each tag's repository (absent: all the build's) */
    if (o && b->n_tag_refs > 0 &&
        json_object_set_new(o, "tag_refs", s_strv_json(b->tag_refs, b->n_tag_refs)) < 0)
        goto oom;
    for (size_t i = 0; o && i < b->n_platforms && i < FARM_PLATFORMS_MAX; i++) {
        if (!b->prov[i])
            continue;
        if ((!jobs && (!(jobs = json_array()) || json_object_set_new(o, "provenance_jobs",
                                                                     jobs) < 0)))
            goto oom;
        while (json_array_size(jobs) < i)
            if (json_array_append_new(jobs, json_null()) < 0)
                goto oom;
        if (json_array_append_new(jobs, farm_attest_prov_json(b->prov[i])) < 0)
            goto oom;
    }
    return s_dump(o);
oom:
    json_decref(o);
    return NULL;
}

static int s_kv_from(farm_kv_t **out, size_t *n, json_t *a)
{
    size_t i;
    json_t *e;
    *out = NULL;
    *n = 0;
    if (!json_is_array(a))
        return -1;
    if (json_array_size(a) == 0)
        return 0;
    if (!(*out = calloc(json_array_size(a), sizeof **out)))
        return -1;
    json_array_foreach(a, i, e) {
        const char *k, *v;
        if (json_unpack(e, "[ss]", &k, &v) < 0)
            return -1;
        if (!((*out)[i].key = strdup(k)) || !((*out)[i].value = strdup(v)))
            return -1;
        (*n)++;
    }
    return 0;
}

static int s_strv_from(char ***out, size_t *n, const char *text)
{
    json_t *a = json_loads(text, 0, NULL), *e;
    size_t i;
    int rc = -1;
    *out = NULL;
    *n = 0;
    if (!json_is_array(a))
        goto done;
    if (!(*out = calloc(json_array_size(a) + 1, sizeof **out)))
        goto done;
    json_array_foreach(a, i, e) {
        if (!json_is_string(e) || !((*out)[i] = strdup(json_string_value(e))))
            goto done;
        (*n)++;
    }
    rc = 0;
done:
    json_decref(a);
    return rc;
}

static int s_dup_opt(char **out, json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || !(*out = strdup(json_string_value(v))))
        return -1;
    return 0;
}

static int s_options_from(farm_journal_build_t *b, const char *text)
{
    json_t *o = json_loads(text, 0, NULL);
    int rc = -1;
    if (!json_is_object(o))
        goto done;
    if (s_dup_opt(&b->dockerfile, o, "dockerfile") < 0 ||
        s_dup_opt(&b->flags.target, o, "target") < 0 ||
        s_dup_opt(&b->flags.cache_from, o, "cache_from") < 0 ||
        s_dup_opt(&b->flags.cache_to, o, "cache_to") < 0 ||
        s_kv_from(&b->args, &b->n_args, json_object_get(o, "args")) < 0 ||
        s_kv_from(&b->flags.labels, &b->flags.n_labels, json_object_get(o, "labels")) < 0 ||
        s_kv_from(&b->flags.annotations, &b->flags.n_annotations,
                  json_object_get(o, "annotations")) < 0 ||
        s_kv_from(&b->flags.index_annotations, &b->flags.n_index_annotations,
                  json_object_get(o, "index_annotations")) < 0)
        goto done;
    if (json_object_get(o, "tag_refs")) {
        char *text = json_dumps(json_object_get(o, "tag_refs"), JSON_COMPACT);
        int bad = !text || s_strv_from(&b->tag_refs, &b->n_tag_refs, text) < 0;
        free(text);
        if (bad)
            goto done;
    }
    {
        const char *t = json_string_value(json_object_get(o, "submit_token_sha256"));
        if (t && !farm_digest_valid(t))
            goto done;
        snprintf(b->token_digest, sizeof b->token_digest, "%s", t ? t : "");
    }
    {
        json_t *p = json_object_get(o, "provenance"); /* null or absent: the default */
        int m = json_is_string(p) ? farm_provenance_parse(json_string_value(p))
                                  : FARM_PROVENANCE_DEFAULT;
        if (m < 0 || (p && !json_is_string(p) && !json_is_null(p)))
            goto done;
        b->flags.provenance = m;
    }
    {
        json_t *jobs = json_object_get(o, "provenance_jobs"), *e;
        size_t i;
        if (jobs && (!json_is_array(jobs) || json_array_size(jobs) > FARM_PLATFORMS_MAX))
            goto done;
        json_array_foreach(jobs, i, e)
            if (!json_is_null(e) && !(b->prov[i] = farm_attest_prov_from_json(e)))
                goto done;
    }
    b->flags.no_cache = json_is_true(json_object_get(o, "no_cache"));
    b->flags.pull = json_is_true(json_object_get(o, "pull"));
    b->amend = json_is_true(json_object_get(o, "amend"));
    rc = 0;
done:
    json_decref(o);
    return rc;
}

/* ------------------------------------------------------------------ SQLite backend */

#define S_STMTS_MAX 64

typedef struct {
    sqlite3 *db;
    char path[FARM_PATH_MAX];
    int batch;  /* writes join one transaction until s_commit (each in a savepoint) */
    struct {
        const char *sql; /* a literal: known by its address */
        sqlite3_stmt *st;
    } stmts[S_STMTS_MAX]; /* prepared once, reset after each use */
    size_t n_stmts;
    int in_tx;  /* ... which is open */
    farm_hmap_t *logs; /* build id -> s_logstate_t of the builds whose log grew this run */
    farm_link_t log_states; /* the same, to free them */
} s_sql_t;

/* Where a running build's log stands against its bound: read from the file the first time
 * a line comes after a start, then kept here (dropped when the build finishes). */
typedef struct {
    farm_link_t link;
    uint64_t next;                    /* the next line's number */
    uint64_t first_tail;              /* the last half's oldest line (its lines are
                                       * numbered on from it: no index needed) */
    uint64_t head_bytes, tail_bytes;  /* kept in the first half, and in the last */
    uint64_t cut_lines, cut_bytes;    /* dropped from the last half's start */
    int tail;                         /* the first half is full: lines go to the last */
} s_logstate_t;

/* Each version's step, applied in order from the file's user_version. A step only adds:
 * an older coordinator's journal opens in a newer one, never the other way round. */
static const char *const s_migrations[FARM_JOURNAL_SCHEMA] = {
    /* 1: builds and their jobs, and the next submit number */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta VALUES('next_seq', 1);"
    "CREATE TABLE builds(id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE,"
    " owner TEXT NOT NULL, registry TEXT NOT NULL, repository TEXT NOT NULL,"
    " tags TEXT NOT NULL, platforms TEXT NOT NULL, context_digest TEXT NOT NULL,"
    " context_size INTEGER NOT NULL, options TEXT NOT NULL, insecure INTEGER NOT NULL,"
    " allow_partial INTEGER NOT NULL, network_none INTEGER NOT NULL, state TEXT NOT NULL,"
    " created INTEGER NOT NULL, updated INTEGER NOT NULL, done_at INTEGER NOT NULL,"
    " ok INTEGER NOT NULL, reason TEXT, index_digest TEXT NOT NULL,"
    " index_size INTEGER NOT NULL);"
    "CREATE INDEX builds_state ON builds(state, done_at);"
    "CREATE TABLE jobs(build_id TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,"
    " id TEXT NOT NULL, platform TEXT NOT NULL, state TEXT NOT NULL,"
    " attempt INTEGER NOT NULL, node TEXT NOT NULL, queued_at INTEGER NOT NULL,"
    " started_at INTEGER NOT NULL, finished_at INTEGER NOT NULL,"
    " image_digest TEXT NOT NULL, image_size INTEGER NOT NULL,"
    " image_media_type TEXT NOT NULL, error TEXT, PRIMARY KEY(build_id, platform));",
    /* 2: every attempt of a job (which node, how it ended), and whether a build needs its
     * submitter to come back (logins or secrets): a build from version 1 is assumed to */
    "ALTER TABLE builds ADD COLUMN needs_submitter INTEGER NOT NULL DEFAULT 1;"
    "CREATE TABLE attempts(build_id TEXT NOT NULL, platform TEXT NOT NULL,"
    " attempt INTEGER NOT NULL, node TEXT NOT NULL, outcome TEXT NOT NULL,"
    " started_at INTEGER NOT NULL, finished_at INTEGER NOT NULL,"
    " PRIMARY KEY(build_id, platform, attempt),"
    " FOREIGN KEY(build_id, platform) REFERENCES jobs(build_id, platform) ON DELETE CASCADE);"
    "INSERT INTO attempts SELECT build_id, platform, attempt, node,"
    " CASE state WHEN 'running' THEN 'running' WHEN 'done' THEN 'done'"
    " WHEN 'failed' THEN 'failed' WHEN 'cancelled' THEN 'cancelled' ELSE 'lost' END,"
    " started_at, finished_at FROM jobs WHERE attempt > 0;",
    /* 3: per tag, the build whose index push last took it (submit order wins a tag); not
     * tied to builds: the order outlives the pruned builds */
    "CREATE TABLE tags(registry TEXT NOT NULL, repository TEXT NOT NULL, tag TEXT NOT NULL,"
    " seq INTEGER NOT NULL, build_id TEXT NOT NULL, at INTEGER NOT NULL,"
    " PRIMARY KEY(registry, repository, tag));",
    /* 4: build records: why each attempt ended, a job's cache hits and steps, its last
     * attempt's timed steps, and the build's log within its bound (head: in the first
     * half kept; the last half loses its oldest lines, counted in log_cut_*) */
    "ALTER TABLE attempts ADD COLUMN reason TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN cache_hits INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN steps INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE builds ADD COLUMN log_cut_lines INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE builds ADD COLUMN log_cut_bytes INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE steps(build_id TEXT NOT NULL, platform TEXT NOT NULL, n INTEGER NOT NULL,"
    " number INTEGER NOT NULL, text TEXT NOT NULL, ms INTEGER NOT NULL,"
    " cached INTEGER NOT NULL, PRIMARY KEY(build_id, platform, n),"
    " FOREIGN KEY(build_id, platform) REFERENCES jobs(build_id, platform) ON DELETE CASCADE);"
    "CREATE TABLE logs(build_id TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,"
    " n INTEGER NOT NULL, platform TEXT NOT NULL, node TEXT NOT NULL, line TEXT NOT NULL,"
    " head INTEGER NOT NULL,"
    " bytes INTEGER NOT NULL, PRIMARY KEY(build_id, n)) WITHOUT ROWID;",
};

#define S_APPLICATION_ID 0x6661726d /* "farm" */

static int s_fix_hint(char *buf, size_t len, const char *path)
{
    return snprintf(buf, len,
                    "farm-coordinator does not start over it, so nothing in it is overwritten: "
                    "move it aside (mv %s %s.bad; and %s-wal if present) to start with an "
                    "empty journal (the builds it held are forgotten), or restore it from a "
                    "backup", path, path, path);
}

static int s_sqlerr(s_sql_t *s, int rc, const char *what)
{
    char hint[3 * FARM_PATH_MAX + 256];
    int prim = rc & 0xff;
    if (prim == SQLITE_NOTADB || prim == SQLITE_CORRUPT) {
        s_fix_hint(hint, sizeof hint, s->path);
        return farm_error_set(FARM_EIO, "journal %s cannot be read (%s: %s): it is damaged or "
                              "not a farm journal; %s", s->path, what, sqlite3_errstr(rc), hint);
    }
    if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
        return farm_error_set(FARM_EIO, "journal %s is held by another process (another "
                              "farm-coordinator with the same coordinator.state_dir?): stop "
                              "it, or give each coordinator its own state_dir", s->path);
    if (prim == SQLITE_FULL)
        return farm_error_set(FARM_EIO, "journal %s: %s: the disk is full; free space on it",
                              s->path, what);
    return farm_error_set(FARM_EIO, "journal %s: %s: %s", s->path, what,
                          s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

static int s_exec(s_sql_t *s, const char *sql, const char *what)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : s_sqlerr(s, rc, what);
}

/* A statement of sql, a string literal: prepared on first use and kept (a write costs
 * its steps, not its parsing), reset by s_unprep. */
static int s_prepare(s_sql_t *s, sqlite3_stmt **out, const char *sql)
{
    int rc;
    for (size_t i = 0; i < s->n_stmts; i++)
        if (s->stmts[i].sql == sql) {
            *out = s->stmts[i].st;
            return 0;
        }
    rc = sqlite3_prepare_v3(s->db, sql, -1, s->n_stmts < S_STMTS_MAX ? SQLITE_PREPARE_PERSISTENT : 0,
                            out, NULL);
    if (rc != SQLITE_OK)
        return s_sqlerr(s, rc, "preparing a statement");
    if (s->n_stmts < S_STMTS_MAX) {
        s->stmts[s->n_stmts].sql = sql;
        s->stmts[s->n_stmts++].st = *out;
    }
    return 0;
}

/* Done with a statement from s_prepare: reset for its next use (finalized when not kept). */
static void s_unprep(s_sql_t *s, sqlite3_stmt *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < s->n_stmts; i++)
        if (s->stmts[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return;
        }
    s_unprep(s, st);
}

/* A statement without parameters or rows, kept prepared. */
static int s_run(s_sql_t *s, const char *sql, const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(s, &st, sql), r;
    if (rc < 0)
        return rc;
    r = sqlite3_step(st);
    s_unprep(s, st);
    return r == SQLITE_DONE || r == SQLITE_ROW ? 0 : s_sqlerr(s, r, what);
}

/* One statement run to its end (no rows wanted). */
static int s_step_done(s_sql_t *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : s_sqlerr(s, rc, what);
}

/* A write's transaction; in batch mode a savepoint in the batch's one (so a write that
 * fails takes back only itself). */
static int s_begin(s_sql_t *s)
{
    int rc;
    if (!s->batch)
        return s_exec(s, "BEGIN IMMEDIATE", "starting a transaction");
    if (!s->in_tx) {
        if ((rc = s_exec(s, "BEGIN IMMEDIATE", "starting a transaction")) < 0)
            return rc;
        s->in_tx = 1;
    }
    return s_run(s, "SAVEPOINT w", "starting a write");
}

/* The batch's transaction open, without a savepoint: for a write of one statement. */
static int s_begin_batch(s_sql_t *s)
{
    int rc;
    if (!s->in_tx) {
        if ((rc = s_exec(s, "BEGIN IMMEDIATE", "starting a transaction")) < 0)
            return rc;
        s->in_tx = 1;
    }
    return 0;
}

static int s_end(s_sql_t *s, int rc)
{
    if (s->batch && s->in_tx) {
        if (rc < 0) {
            sqlite3_exec(s->db, "ROLLBACK TO w; RELEASE w", NULL, NULL, NULL);
            return rc;
        }
        return s_run(s, "RELEASE w", "ending a write");
    }
    if (rc < 0) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return s_exec(s, "COMMIT", "committing");
}

static int s_commit(void *impl)
{
    s_sql_t *s = impl;
    if (!s->in_tx)
        return 0;
    s->in_tx = 0;
    return s_exec(s, "COMMIT", "committing");
}

static int s_pending(void *impl)
{
    return ((s_sql_t *)impl)->in_tx;
}

static void s_set_batch(void *impl, int on)
{
    s_sql_t *s = impl;
    if (!on)
        s_commit(s);
    s->batch = !!on;
}

static int s_int(s_sql_t *s, long long *out, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(s, &st, sql);
    if (rc == 0) {
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW)
            *out = sqlite3_column_int64(st, 0);
        else
            rc = s_sqlerr(s, r, sql);
    }
    s_unprep(s, st);
    return rc;
}

/* path, when it exists, is a regular file of this user that no one else may read: the
 * journal holds who built what, and which registries. */
static int s_file_ok(const char *path)
{
    struct stat st;
    uid_t me = geteuid();
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0
                               : farm_error_set(FARM_EIO, "journal %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return farm_error_set(FARM_EINVALID, "journal %s is not a regular file (a symlink or "
                              "other); remove it, farm-coordinator makes its own", path);
    if (st.st_uid != me)
        return farm_error_set(FARM_EINVALID, "journal %s is owned by uid %u, not by this user "
                              "(uid %u); run: chown %u %s", path, (unsigned)st.st_uid,
                              (unsigned)me, (unsigned)me, path);
    if (st.st_mode & 077)
        return farm_error_set(FARM_EINVALID, "journal %s may be read or written by group or "
                              "others (mode %04o); run: chmod 600 %s", path,
                              (unsigned)(st.st_mode & 07777), path);
    return 0;
}

static int s_files_ok(const char *path)
{
    char side[FARM_PATH_MAX];
    int rc = s_file_ok(path);
    if (rc == 0 && (rc = farm_path_fmt(side, sizeof side, "%s-wal", path)) == 0)
        rc = s_file_ok(side);
    if (rc == 0 && (rc = farm_path_fmt(side, sizeof side, "%s-shm", path)) == 0)
        rc = s_file_ok(side);
    return rc;
}

/* The first column for a message, "?" when there is none. */
static const char *s_text0(sqlite3_stmt *st)
{
    const char *v = (const char *)sqlite3_column_text(st, 0);
    return v ? v : "?";
}

static int s_schema(s_sql_t *s)
{
    long long version = 0, app = 0, tables = 0;
    char check[64] = "";
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = s_int(s, &app, "PRAGMA application_id")) < 0 ||
        (rc = s_int(s, &version, "PRAGMA user_version")) < 0 ||
        (rc = s_int(s, &tables, "SELECT count(*) FROM sqlite_schema")) < 0)
        return rc;
    if (app != S_APPLICATION_ID && (app != 0 || version != 0 || tables != 0)) {
        char hint[3 * FARM_PATH_MAX + 256];
        s_fix_hint(hint, sizeof hint, s->path);
        return farm_error_set(FARM_EINVALID, "journal %s is an SQLite database, but not a farm "
                              "journal; %s", s->path, hint);
    }
    if (version > FARM_JOURNAL_SCHEMA)
        return farm_error_set(FARM_EINVALID,
                              "journal %s has schema version %lld, newer than this "
                              "farm-coordinator " FARM_VERSION " knows (%d): a newer farm wrote "
                              "it; install that farm-coordinator again (or move the file aside "
                              "to start with an empty journal, forgetting its builds)",
                              s->path, version, FARM_JOURNAL_SCHEMA);
    /* a damaged page is found now, at start, not in the middle of serving */
    if ((rc = s_prepare(s, &st, "PRAGMA quick_check(1)")) < 0)
        return rc;
    if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
        rc = s_sqlerr(s, rc, "checking it");
        s_unprep(s, st);
        return rc;
    }
    snprintf(check, sizeof check, "%s", s_text0(st));
    s_unprep(s, st);
    if (strcmp(check, "ok") != 0)
        return s_sqlerr(s, SQLITE_CORRUPT, check);
    for (long long v = version; v < FARM_JOURNAL_SCHEMA; v++) {
        char what[64];
        snprintf(what, sizeof what, "migrating to schema version %lld", v + 1);
        if ((rc = s_exec(s, s_migrations[v], what)) < 0)
            return rc;
    }
    if (version < FARM_JOURNAL_SCHEMA) {
        char sql[96];
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d; PRAGMA application_id=%d",
                 FARM_JOURNAL_SCHEMA, S_APPLICATION_ID);
        if ((rc = s_exec(s, sql, "recording the schema version")) < 0)
            return rc;
        if (version > 0)
            farm_log_info("journal %s: schema version %lld migrated to %d", s->path, version,
                          FARM_JOURNAL_SCHEMA);
    }
    return 0;
}

static void s_sql_close(void *impl)
{
    s_sql_t *s = impl;
    if (!s)
        return;
    if (s->in_tx && s_commit(s) < 0)
        farm_log_error("%s", farm_error_last());
    for (size_t i = 0; i < s->n_stmts; i++)
        sqlite3_finalize(s->stmts[i].st);
    sqlite3_close_v2(s->db);
    while (s->log_states.next && !farm_link_empty(&s->log_states)) {
        farm_link_t *l = s->log_states.next;
        farm_link_remove(l);
        free(FARM_LINK_OWNER(l, s_logstate_t, link));
    }
    farm_hmap_destroy(&s->logs);
    free(s);
}

static s_sql_t *s_sql_open(const char *state_dir)
{
    s_sql_t *s = calloc(1, sizeof *s);
    struct stat st;
    const char *mode = NULL;
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (!s || !(s->logs = farm_hmap_new())) {
        free(s);
        farm_error_set(FARM_ERROR, "journal: out of memory");
        return NULL;
    }
    farm_link_init(&s->log_states);
    if (farm_path_join(s->path, sizeof s->path, state_dir, "journal.db") < 0)
        goto fail;
    /* RETURNING (3.35) and SQLITE_OPEN_NOFOLLOW (3.31): features, not symbols, so the
     * package's Depends does not catch an older library */
    if (sqlite3_libversion_number() < 3035000) {
        farm_error_set(FARM_EINVALID, "journal %s: libsqlite3 %s is older than 3.35, which the "
                       "journal needs; upgrade libsqlite3-0", s->path, sqlite3_libversion());
        goto fail;
    }
    if (lstat(state_dir, &st) < 0) {
        farm_error_set(FARM_EIO, "coordinator.state_dir %s: %s", state_dir, strerror(errno));
        goto fail;
    }
    if (farm_fs_check_owned("coordinator.state_dir", state_dir, &st) < 0 || s_files_ok(s->path) < 0)
        goto fail;
    /* made here, mode 0600, so SQLite's -wal (which takes the file's mode) is private too */
    int fd = open(s->path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        farm_error_set(FARM_EIO, "journal %s: %s", s->path, strerror(errno));
        goto fail;
    }
    close(fd);
    rc = sqlite3_open_v2(s->path, &s->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        s_sqlerr(s, rc, "opening");
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    /* a changed file must not run code of its own (triggers, views) or corrupt on purpose */
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
    if (s_exec(s, "PRAGMA locking_mode=EXCLUSIVE", "setting its locking mode") < 0)
        goto fail;
    if (s_prepare(s, &stmt, "PRAGMA journal_mode=WAL") < 0)
        goto fail;
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        mode = (const char *)sqlite3_column_text(stmt, 0);
    if (!mode || strcmp(mode, "wal") != 0) {
        if (rc == SQLITE_ROW)
            farm_error_set(FARM_EIO, "journal %s: SQLite would not use write-ahead logging "
                           "(journal_mode %s)", s->path, mode ? mode : "?");
        else
            s_sqlerr(s, rc, "turning write-ahead logging on");
        s_unprep(s, stmt);
        goto fail;
    }
    s_unprep(s, stmt);
    if (s_exec(s, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", "setting it up") < 0 ||
        s_begin(s) < 0)
        goto fail;
    if (s_end(s, s_schema(s)) < 0 || s_files_ok(s->path) < 0)
        goto fail;
    return s;
fail:
    s_sql_close(s);
    return NULL;
}

static void s_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static int s_put_job_rows(s_sql_t *s, const farm_journal_job_t *j)
{
    static const char *const outcome[] = {NULL, "lost", "running", "done", "failed",
                                          "cancelled"};
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(s, &st,
        "INSERT INTO jobs(build_id, id, platform, state, attempt, node, queued_at, started_at,"
        " finished_at, image_digest, image_size, image_media_type, error, cache_hits, steps)"
        " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)"
        " ON CONFLICT(build_id, platform) DO UPDATE SET id=?2, state=?4, attempt=?5, node=?6,"
        " queued_at=?7, started_at=?8, finished_at=?9, image_digest=?10, image_size=?11,"
        " image_media_type=?12, error=?13, cache_hits=?14, steps=?15");
    if (rc < 0)
        return rc;
    s_bind_text(st, 1, j->build_id);
    s_bind_text(st, 2, j->id);
    s_bind_text(st, 3, j->platform);
    s_bind_text(st, 4, s_job_states[j->state]);
    sqlite3_bind_int64(st, 5, j->attempt);
    s_bind_text(st, 6, j->node);
    sqlite3_bind_int64(st, 7, j->queued_at);
    sqlite3_bind_int64(st, 8, j->started_at);
    sqlite3_bind_int64(st, 9, j->finished_at);
    s_bind_text(st, 10, j->image_digest);
    sqlite3_bind_int64(st, 11, (sqlite3_int64)j->image_size);
    s_bind_text(st, 12, j->image_media_type);
    s_bind_text(st, 13, j->error);
    sqlite3_bind_int64(st, 14, j->cache_hits);
    sqlite3_bind_int64(st, 15, j->steps);
    rc = sqlite3_step(st);
    s_unprep(s, st);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return farm_error_set(FARM_ENOTFOUND, "journal %s: job %s of build %s, which the "
                              "journal does not hold", s->path, j->id, j->build_id);
    if (rc != SQLITE_DONE)
        return s_sqlerr(s, rc, "writing a job");
    if (j->attempt == 0)
        return 0;
    if (j->state == FARM_JOURNAL_JOB_QUEUED) {
        /* back in the queue: the attempt that ran is lost (the coordinator numbers the
         * next one before it says so: that one has not started) */
        if ((rc = s_prepare(s, &st,
            "UPDATE attempts SET outcome='lost', reason=?4, finished_at=?5 WHERE build_id=?1"
            " AND platform=?2 AND attempt<=?3 AND outcome='running'")) < 0)
            return rc;
        s_bind_text(st, 1, j->build_id);
        s_bind_text(st, 2, j->platform);
        sqlite3_bind_int64(st, 3, j->attempt);
        s_bind_text(st, 4, j->reason ? j->reason : "");
        sqlite3_bind_int64(st, 5, j->queued_at);
        rc = s_step_done(s, st, "writing a lost attempt");
        s_unprep(s, st);
        return rc;
    }
    if ((rc = s_prepare(s, &st,
        "INSERT INTO attempts(build_id, platform, attempt, node, outcome, started_at,"
        " finished_at, reason) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)"
        " ON CONFLICT(build_id, platform, attempt)"
        " DO UPDATE SET node=?4, outcome=?5, started_at=?6, finished_at=?7, reason=?8")) < 0)
        return rc;
    s_bind_text(st, 1, j->build_id);
    s_bind_text(st, 2, j->platform);
    sqlite3_bind_int64(st, 3, j->attempt);
    s_bind_text(st, 4, j->node);
    s_bind_text(st, 5, outcome[j->state]);
    sqlite3_bind_int64(st, 6, j->started_at);
    sqlite3_bind_int64(st, 7, j->finished_at);
    s_bind_text(st, 8, j->reason ? j->reason : j->error ? j->error : "");
    rc = s_step_done(s, st, "writing an attempt");
    s_unprep(s, st);
    return rc;
}

static int s_put_build(void *impl, const farm_journal_build_t *b, const farm_journal_job_t *jobs,
                       size_t n_jobs)
{
    s_sql_t *s = impl;
    sqlite3_stmt *st = NULL;
    char *tags = s_dump(s_strv_json(b->tags, b->n_tags));
    char *plats = s_dump(s_strv_json(b->platforms, b->n_platforms));
    char *opts = s_options_json(b);
    int rc;

    if (!tags || !plats || !opts) {
        rc = farm_error_set(FARM_ERROR, "journal: out of memory encoding build %s", b->id);
        goto done;
    }
    if ((rc = s_begin(s)) < 0)
        goto done;
    rc = s_prepare(s, &st,
        "INSERT INTO builds(id, seq, owner, registry, repository, tags, platforms,"
        " context_digest, context_size, options, insecure, allow_partial, network_none, state,"
        " created, updated, done_at, ok, reason, index_digest, index_size, needs_submitter)"
        " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22)"
        " ON CONFLICT(id) DO UPDATE SET state=?14, updated=?16, done_at=?17, ok=?18,"
        " reason=?19, index_digest=?20, index_size=?21, needs_submitter=?22,"
        /* the options grow the jobs' provenance as their results come */
        " options=?10");
    if (rc == 0) {
        s_bind_text(st, 1, b->id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)b->seq);
        s_bind_text(st, 3, b->owner);
        s_bind_text(st, 4, b->registry);
        s_bind_text(st, 5, b->repository);
        s_bind_text(st, 6, tags);
        s_bind_text(st, 7, plats);
        s_bind_text(st, 8, b->context_digest);
        sqlite3_bind_int64(st, 9, (sqlite3_int64)b->context_size);
        s_bind_text(st, 10, opts);
        sqlite3_bind_int(st, 11, !!b->insecure);
        sqlite3_bind_int(st, 12, !!b->allow_partial);
        sqlite3_bind_int(st, 13, !!b->network_none);
        s_bind_text(st, 14, s_build_states[b->state]);
        sqlite3_bind_int64(st, 15, b->created);
        sqlite3_bind_int64(st, 16, b->updated);
        sqlite3_bind_int64(st, 17, b->done_at);
        sqlite3_bind_int(st, 18, !!b->ok);
        s_bind_text(st, 19, b->reason);
        s_bind_text(st, 20, b->index_digest);
        sqlite3_bind_int64(st, 21, (sqlite3_int64)b->index_size);
        sqlite3_bind_int(st, 22, !!b->needs_submitter);
        int r = sqlite3_step(st);
        if (r == SQLITE_CONSTRAINT_UNIQUE)
            rc = farm_error_set(FARM_EINVALID, "journal %s: build %s has submit number %" PRIu64
                                ", which another build holds", s->path, b->id, b->seq);
        else if (r != SQLITE_DONE)
            rc = s_sqlerr(s, r, "writing a build");
        s_unprep(s, st);
        st = NULL;
    }
    /* a submit number given by another journal (or by hand) is never handed out again */
    if (rc == 0 && (rc = s_prepare(s, &st, "UPDATE meta SET value=max(value, ?1 + 1)"
                                           " WHERE key='next_seq'")) == 0) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)b->seq);
        rc = s_step_done(s, st, "recording the submit number");
        s_unprep(s, st);
    }
    for (size_t i = 0; rc == 0 && i < n_jobs; i++)
        rc = s_put_job_rows(s, &jobs[i]);
    rc = s_end(s, rc);
done:
    free(tags);
    free(plats);
    free(opts);
    return rc;
}

static int s_put_job(void *impl, const farm_journal_job_t *job)
{
    s_sql_t *s = impl;
    int rc = s_begin(s);
    if (rc < 0)
        return rc;
    return s_end(s, s_put_job_rows(s, job));
}

/* One statement over a build's rows: ?1 the build id, ?2 a time; what names it in errors. */
static int s_exec_build_at(s_sql_t *s, const char *sql, const char *id, int64_t at,
                           const char *what)
{
    sqlite3_stmt *st;
    int rc;

    if ((rc = s_prepare(s, &st, sql)) < 0)
        return rc;
    s_bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, at);
    rc = s_step_done(s, st, what);
    s_unprep(s, st);
    return rc;
}

static int s_finish(void *impl, const char *id, int ok, const char *reason,
                    const char *index_digest, uint64_t index_size, long long at)
{
    s_sql_t *s = impl;
    sqlite3_stmt *st = NULL;
    int rc = s_begin(s);
    if (rc < 0)
        return rc;
    if ((rc = s_prepare(s, &st, "UPDATE builds SET state='done', ok=?2, reason=?3,"
                                " index_digest=?4, index_size=?5, done_at=?6, updated=?6"
                                " WHERE id=?1")) < 0)
        return s_end(s, rc);
    s_bind_text(st, 1, id);
    sqlite3_bind_int(st, 2, !!ok);
    s_bind_text(st, 3, reason);
    s_bind_text(st, 4, index_digest ? index_digest : "");
    sqlite3_bind_int64(st, 5, (sqlite3_int64)index_size);
    sqlite3_bind_int64(st, 6, at);
    rc = s_step_done(s, st, "finishing a build");
    s_unprep(s, st);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = farm_error_set(FARM_ENOTFOUND, "journal %s: no build %s to finish", s->path, id);
    if (rc == 0 && (rc = s_prepare(s, &st, "UPDATE attempts SET outcome='cancelled',"
                                           " finished_at=?2, reason=?3 WHERE build_id=?1 AND"
                                           " outcome='running'")) == 0) {
        s_bind_text(st, 1, id);
        sqlite3_bind_int64(st, 2, at);
        s_bind_text(st, 3, ok ? "the build finished" : reason ? reason : "the build failed");
        rc = s_step_done(s, st, "cancelling attempts");
        s_unprep(s, st);
    }
    s_logstate_t *ls = farm_hmap_dels(s->logs, id);
    if (ls) {
        farm_link_remove(&ls->link);
        free(ls);
    }
    if (rc == 0)
        rc = s_exec_build_at(s, "UPDATE jobs SET state='cancelled', finished_at=?2"
                                " WHERE build_id=?1 AND state IN ('queued','running')",
                             id, at, "cancelling jobs");
    return s_end(s, rc);
}

/* A text column into a fixed array: longer than it (a file changed by hand) is refused. */
static int s_col_fixed(char *out, size_t size, sqlite3_stmt *st, int i)
{
    const unsigned char *v = sqlite3_column_text(st, i);
    int n = sqlite3_column_bytes(st, i);
    if (!v || (size_t)n >= size || memchr(v, 0, (size_t)n))
        return -1;
    memcpy(out, v, (size_t)n + 1);
    return 0;
}

/* A text column, NULL allowed, at most max bytes, allocated. */
static int s_col_dup(char **out, sqlite3_stmt *st, int i, size_t max)
{
    const unsigned char *v = sqlite3_column_text(st, i);
    int n = sqlite3_column_bytes(st, i);
    *out = NULL;
    if (!v)
        return sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : -1;
    if ((size_t)n > max || !(*out = strndup((const char *)v, (size_t)n)))
        return -1;
    return 0;
}

static int s_state_of(const char *const *names, size_t n, const unsigned char *v)
{
    for (size_t i = 1; v && i < n; i++)
        if (strcmp(names[i], (const char *)v) == 0)
            return (int)i;
    return 0;
}

#define S_BUILD_COLS                                                                          \
    "id, seq, owner, registry, repository, tags, platforms, context_digest, context_size,"   \
    " options, insecure, allow_partial, network_none, state, created, updated, done_at, ok," \
    " reason, index_digest, index_size, needs_submitter"

static int s_row_build(s_sql_t *s, farm_journal_build_t *b, sqlite3_stmt *st)
{
    memset(b, 0, sizeof *b);
    if (s_col_fixed(b->id, sizeof b->id, st, 0) < 0 || !b->id[0])
        goto bad;
    b->seq = (uint64_t)sqlite3_column_int64(st, 1);
    if (s_col_fixed(b->owner, sizeof b->owner, st, 2) < 0 ||
        s_col_fixed(b->registry, sizeof b->registry, st, 3) < 0 ||
        s_col_fixed(b->repository, sizeof b->repository, st, 4) < 0 ||
        s_strv_from(&b->tags, &b->n_tags, (const char *)sqlite3_column_text(st, 5)) < 0 ||
        s_strv_from(&b->platforms, &b->n_platforms, (const char *)sqlite3_column_text(st, 6)) < 0 ||
        s_col_fixed(b->context_digest, sizeof b->context_digest, st, 7) < 0 ||
        s_options_from(b, (const char *)sqlite3_column_text(st, 9)) < 0 ||
        s_col_dup(&b->reason, st, 18, FARM_JOURNAL_REASON_MAX) < 0 ||
        s_col_fixed(b->index_digest, sizeof b->index_digest, st, 19) < 0)
        goto bad;
    b->context_size = (uint64_t)sqlite3_column_int64(st, 8);
    b->insecure = sqlite3_column_int(st, 10);
    b->allow_partial = sqlite3_column_int(st, 11);
    b->network_none = sqlite3_column_int(st, 12);
    b->state = s_state_of(s_build_states, 4, sqlite3_column_text(st, 13));
    b->created = sqlite3_column_int64(st, 14);
    b->updated = sqlite3_column_int64(st, 15);
    b->done_at = sqlite3_column_int64(st, 16);
    b->ok = sqlite3_column_int(st, 17);
    b->index_size = (uint64_t)sqlite3_column_int64(st, 20);
    b->needs_submitter = sqlite3_column_int(st, 21);
    if (s_build_ok(b) < 0)
        goto bad;
    return 0;
bad:
    farm_journal_build_clear(b);
    return farm_error_set(FARM_EINVALID, "journal %s: build %.*s cannot be read back (a field "
                          "is missing, malformed or over its ceiling: was the file changed "
                          "outside farm?); move the file aside to start with an empty journal",
                          s->path, FARM_ID_MAX, s_text0(st));
}

static int s_row_job(s_sql_t *s, farm_journal_job_t *j, sqlite3_stmt *st)
{
    memset(j, 0, sizeof *j);
    if (s_col_fixed(j->build_id, sizeof j->build_id, st, 0) < 0 ||
        s_col_fixed(j->id, sizeof j->id, st, 1) < 0 ||
        s_col_fixed(j->platform, sizeof j->platform, st, 2) < 0 ||
        s_col_fixed(j->node, sizeof j->node, st, 5) < 0 ||
        s_col_fixed(j->image_digest, sizeof j->image_digest, st, 9) < 0 ||
        s_col_fixed(j->image_media_type, sizeof j->image_media_type, st, 11) < 0 ||
        s_col_dup(&j->error, st, 12, FARM_JOURNAL_REASON_MAX) < 0)
        goto bad;
    j->state = s_state_of(s_job_states, 6, sqlite3_column_text(st, 3));
    j->attempt = (unsigned)sqlite3_column_int64(st, 4);
    j->queued_at = sqlite3_column_int64(st, 6);
    j->started_at = sqlite3_column_int64(st, 7);
    j->finished_at = sqlite3_column_int64(st, 8);
    j->image_size = (uint64_t)sqlite3_column_int64(st, 10);
    j->cache_hits = (unsigned)sqlite3_column_int64(st, 13);
    j->steps = (unsigned)sqlite3_column_int64(st, 14);
    if (s_job_ok(j) < 0)
        goto bad;
    return 0;
bad:
    free(j->error);
    j->error = NULL;
    return farm_error_set(FARM_EINVALID, "journal %s: a job of build %.*s cannot be read back "
                          "(was the file changed outside farm?); move the file aside to start "
                          "with an empty journal", s->path, FARM_ID_MAX, s_text0(st));
}

static int s_grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = reallocarray(*v, c, size);
    if (!p)
        return farm_error_set(FARM_ERROR, "journal: out of memory loading");
    *v = p;
    *cap = c;
    return 0;
}

static int s_load_unfinished(void *impl, farm_journal_loaded_t *out)
{
    s_sql_t *s = impl;
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc, r;

    memset(out, 0, sizeof *out);
    if ((rc = s_prepare(s, &st, "SELECT " S_BUILD_COLS " FROM builds WHERE state != 'done'"
                                " ORDER BY seq")) < 0)
        return rc;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = s_grow((void **)&out->builds, &cap, out->n_builds, sizeof *out->builds)) < 0 ||
            (rc = s_row_build(s, &out->builds[out->n_builds], st)) < 0)
            goto done;
        out->n_builds++;
    }
    if (r != SQLITE_DONE && (rc = s_sqlerr(s, r, "reading builds")) < 0)
        goto done;
    s_unprep(s, st);
    cap = 0;
    if ((rc = s_prepare(s, &st, "SELECT j.build_id, j.id, j.platform, j.state, j.attempt,"
                                " j.node, j.queued_at, j.started_at, j.finished_at,"
                                " j.image_digest, j.image_size, j.image_media_type, j.error,"
                                " j.cache_hits, j.steps"
                                " FROM jobs j JOIN builds b ON b.id = j.build_id"
                                " WHERE b.state != 'done' ORDER BY b.seq, j.rowid")) < 0)
        goto done;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = s_grow((void **)&out->jobs, &cap, out->n_jobs, sizeof *out->jobs)) < 0 ||
            (rc = s_row_job(s, &out->jobs[out->n_jobs], st)) < 0)
            goto done;
        out->n_jobs++;
    }
    if (r != SQLITE_DONE)
        rc = s_sqlerr(s, r, "reading jobs");
done:
    s_unprep(s, st);
    if (rc < 0)
        farm_journal_loaded_free(out);
    return rc;
}

static int s_get_build(void *impl, farm_journal_build_t *out, const char *id)
{
    s_sql_t *s = impl;
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(s, &st, "SELECT " S_BUILD_COLS " FROM builds WHERE id=?1"), r;
    memset(out, 0, sizeof *out);
    if (rc < 0)
        return rc;
    s_bind_text(st, 1, id);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        rc = s_row_build(s, out, st);
    else if (r == SQLITE_DONE)
        rc = farm_error_set(FARM_ENOTFOUND, "journal %s: no build %s", s->path, id);
    else
        rc = s_sqlerr(s, r, "reading a build");
    s_unprep(s, st);
    return rc;
}

static int s_prune(void *impl, size_t *out_removed, long long before)
{
    s_sql_t *s = impl;
    sqlite3_stmt *st = NULL;
    int rc = s_begin(s);
    if (rc < 0)
        return rc;
    if ((rc = s_prepare(s, &st, "DELETE FROM builds WHERE state='done' AND done_at < ?1")) == 0) {
        sqlite3_bind_int64(st, 1, before);
        rc = s_step_done(s, st, "pruning finished builds");
        s_unprep(s, st);
    }
    if (rc == 0 && out_removed)
        *out_removed = (size_t)sqlite3_changes(s->db);
    return s_end(s, rc);
}

static int s_next_seq(void *impl, uint64_t *out)
{
    s_sql_t *s = impl;
    sqlite3_stmt *st = NULL;
    int rc = s_begin(s), r;
    if (rc < 0)
        return rc;
    if ((rc = s_prepare(s, &st, "UPDATE meta SET value = value + 1 WHERE key='next_seq'"
                                " RETURNING value - 1")) < 0)
        return s_end(s, rc);
    /* durable (synchronous=FULL) before the number is handed out, or with the batch */
    r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(st, 0);
    else
        rc = s_sqlerr(s, r == SQLITE_DONE ? SQLITE_CORRUPT : r, "taking a submit number");
    if (rc == 0 && (r = sqlite3_step(st)) != SQLITE_DONE)
        rc = s_sqlerr(s, r, "taking a submit number");
    s_unprep(s, st);
    return s_end(s, rc);
}

static int s_put_tag(void *impl, const farm_journal_tag_t *t)
{
    s_sql_t *s = impl;
    sqlite3_stmt *st = NULL;
    int rc = s_begin(s);
    if (rc < 0)
        return rc;
    if ((rc = s_prepare(s, &st, "INSERT OR REPLACE INTO tags(registry, repository, tag, seq,"
                                " build_id, at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)")) == 0) {
        s_bind_text(st, 1, t->registry);
        s_bind_text(st, 2, t->repository);
        s_bind_text(st, 3, t->tag);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)t->seq);
        s_bind_text(st, 5, t->build_id);
        sqlite3_bind_int64(st, 6, t->at);
        rc = s_step_done(s, st, "recording a tag's build");
        s_unprep(s, st);
    }
    return s_end(s, rc);
}

static int s_get_tag(void *impl, farm_journal_tag_t *out, const char *registry,
                     const char *repository, const char *tag)
{
    s_sql_t *s = impl;
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(s, &st, "SELECT registry, repository, tag, seq, build_id, at FROM tags"
                               " WHERE registry=?1 AND repository=?2 AND tag=?3"), r;
    memset(out, 0, sizeof *out);
    if (rc < 0)
        return rc;
    s_bind_text(st, 1, registry);
    s_bind_text(st, 2, repository);
    s_bind_text(st, 3, tag);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        if (s_col_fixed(out->registry, sizeof out->registry, st, 0) < 0 ||
            s_col_fixed(out->repository, sizeof out->repository, st, 1) < 0 ||
            s_col_fixed(out->tag, sizeof out->tag, st, 2) < 0 ||
            s_col_fixed(out->build_id, sizeof out->build_id, st, 4) < 0 ||
            sqlite3_column_int64(st, 3) < 0)
            rc = farm_error_set(FARM_EINVALID, "journal %s: the record of tag %s/%s:%s is "
                                "malformed (changed by hand?)", s->path, registry, repository,
                                tag);
        out->seq = (uint64_t)sqlite3_column_int64(st, 3);
        out->at = sqlite3_column_int64(st, 5);
    } else if (r == SQLITE_DONE) {
        rc = farm_error_set(FARM_ENOTFOUND, "journal %s: no record of tag %s/%s:%s", s->path,
                            registry, repository, tag);
    } else {
        rc = s_sqlerr(s, r, "reading a tag's build");
    }
    s_unprep(s, st);
    return rc;
}

/* ---- build records (schema 4) */

static int s_put_steps(void *impl, const char *build_id, const char *platform,
                       const farm_journal_step_t *steps, size_t n)
{
    s_sql_t *s = impl;
    sqlite3_stmt *st = NULL;
    int rc = s_begin(s);
    if (rc < 0)
        return rc;
    if ((rc = s_prepare(s, &st, "DELETE FROM steps WHERE build_id=?1 AND platform=?2")) == 0) {
        s_bind_text(st, 1, build_id);
        s_bind_text(st, 2, platform);
        rc = s_step_done(s, st, "replacing steps");
        s_unprep(s, st);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if ((rc = s_prepare(s, &st, "INSERT INTO steps(build_id, platform, n, number, text, ms,"
                                    " cached) VALUES(?1,?2,?3,?4,substr(?5,1,?8),?6,?7)")) < 0)
            break;
        s_bind_text(st, 1, build_id);
        s_bind_text(st, 2, platform);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)i);
        sqlite3_bind_int64(st, 4, steps[i].number);
        s_bind_text(st, 5, steps[i].text ? steps[i].text : "");
        sqlite3_bind_int64(st, 6, (sqlite3_int64)steps[i].ms);
        sqlite3_bind_int(st, 7, !!steps[i].cached);
        sqlite3_bind_int(st, 8, FARM_JOURNAL_STEP_TEXT_MAX);
        int r = sqlite3_step(st);
        if (r == SQLITE_CONSTRAINT_FOREIGNKEY)
            rc = farm_error_set(FARM_ENOTFOUND, "journal %s: steps of %s of build %s, which the "
                                "journal does not hold", s->path, platform, build_id);
        else if (r != SQLITE_DONE)
            rc = s_sqlerr(s, r, "writing a step");
        s_unprep(s, st);
    }
    return s_end(s, rc);
}

/* The build's log state: kept, or read from the file (the first line after a start). */
static s_logstate_t *s_logstate(s_sql_t *s, const char *id)
{
    s_logstate_t *ls = farm_hmap_gets(s->logs, id);
    sqlite3_stmt *st = NULL;

    if (ls)
        return ls;
    if (!(ls = calloc(1, sizeof *ls))) {
        farm_error_set(FARM_ERROR, "journal: out of memory");
        return NULL;
    }
    if (s_prepare(s, &st, "SELECT coalesce(max(n) + 1, 0),"
                          " coalesce(sum(CASE WHEN head THEN bytes END), 0),"
                          " coalesce(sum(CASE WHEN head THEN 0 ELSE bytes END), 0),"
                          " (SELECT log_cut_lines FROM builds WHERE id=?1),"
                          " (SELECT log_cut_bytes FROM builds WHERE id=?1),"
                          " coalesce(min(CASE WHEN head THEN NULL ELSE n END), 0)"
                          " FROM logs WHERE build_id=?1") < 0)
        goto fail;
    s_bind_text(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        s_sqlerr(s, sqlite3_errcode(s->db), "reading a log's state");
        goto fail;
    }
    ls->next = (uint64_t)sqlite3_column_int64(st, 0);
    ls->head_bytes = (uint64_t)sqlite3_column_int64(st, 1);
    ls->tail_bytes = (uint64_t)sqlite3_column_int64(st, 2);
    ls->cut_lines = (uint64_t)sqlite3_column_int64(st, 3);
    ls->cut_bytes = (uint64_t)sqlite3_column_int64(st, 4);
    ls->first_tail = (uint64_t)sqlite3_column_int64(st, 5);
    ls->tail = ls->tail_bytes > 0 || ls->cut_lines > 0;
    s_unprep(s, st);
    if (farm_hmap_puts(s->logs, id, ls) < 0) {
        farm_error_set(FARM_ERROR, "journal: out of memory");
        free(ls);
        return NULL;
    }
    farm_link_push_back(&s->log_states, &ls->link);
    return ls;
fail:
    s_unprep(s, st);
    free(ls);
    return NULL;
}

/* What a log line costs against history.log_limit beyond its text: about what its row
 * takes in the journal, so that a flood of empty lines is bounded like a long one. */
#define S_LOG_ROW_COST 64

/* The first half of the bound keeps the build's first lines; past it every line joins the
 * last half, which drops its oldest lines to stay within the bound. */
static int s_put_line(void *impl, const char *build_id, const char *platform, const char *node,
                      const char *line, size_t limit)
{
    s_sql_t *s = impl;
    sqlite3_stmt *st = NULL;
    s_logstate_t *ls = s_logstate(s, build_id), n;
    uint64_t bytes = strlen(line) + 1 + S_LOG_ROW_COST;
    int rc, head, sp;

    if (!ls)
        return FARM_ERROR;
    n = *ls; /* taken only once written */
    head = !n.tail && n.head_bytes + bytes <= limit / 2;
    if (head) {
        n.head_bytes += bytes;
    } else {
        if (n.tail_bytes == 0) /* the last half starts (again) with this line */
            n.first_tail = n.next;
        n.tail = 1;
        n.tail_bytes += bytes;
    }
    /* a line that cuts nothing is one INSERT, all or nothing by itself: in a batch it
     * needs no savepoint of its own (a chatty build's lines cost their inserts) */
    sp = !s->batch || n.head_bytes + n.tail_bytes > limit;
    if ((rc = sp ? s_begin(s) : s_begin_batch(s)) < 0)
        return rc;
    if ((rc = s_prepare(s, &st, "INSERT INTO logs(build_id, n, platform, line, head, bytes,"
                                " node) VALUES(?1,?2,?3,?4,?5,?6,?7)")) < 0)
        return sp ? s_end(s, rc) : rc;
    s_bind_text(st, 1, build_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)n.next++);
    s_bind_text(st, 3, platform);
    s_bind_text(st, 4, line);
    sqlite3_bind_int(st, 5, head);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)bytes);
    s_bind_text(st, 7, node ? node : "");
    int r = sqlite3_step(st);
    s_unprep(s, st);
    if (r == SQLITE_CONSTRAINT_FOREIGNKEY)
        rc = farm_error_set(FARM_ENOTFOUND, "journal %s: a log line of build %s, which the "
                            "journal does not hold", s->path, build_id);
    else if (r != SQLITE_DONE)
        rc = s_sqlerr(s, r, "writing a log line");
    if (rc < 0)
        return sp ? s_end(s, rc) : rc;
    while (rc == 0 && n.tail_bytes > 0 && n.head_bytes + n.tail_bytes > limit) {
        if ((rc = s_prepare(s, &st, "DELETE FROM logs WHERE build_id=?1 AND n=?2 AND head=0"
                                    " RETURNING bytes")) < 0)
            break;
        s_bind_text(st, 1, build_id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)n.first_tail++);
        r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            uint64_t gone = (uint64_t)sqlite3_column_int64(st, 0);
            n.tail_bytes -= gone < n.tail_bytes ? gone : n.tail_bytes;
            n.cut_lines++;
            n.cut_bytes += gone > S_LOG_ROW_COST ? gone - S_LOG_ROW_COST : 0; /* the text's */
            while ((r = sqlite3_step(st)) == SQLITE_ROW)
                ;
        }
        else
            n.tail_bytes = 0; /* the file has none left: nothing more to cut */
        if (r != SQLITE_DONE)
            rc = s_sqlerr(s, r, "cutting a log");
        s_unprep(s, st);
    }
    if (rc == 0 && n.cut_lines != ls->cut_lines &&
        (rc = s_prepare(s, &st, "UPDATE builds SET log_cut_lines=?2, log_cut_bytes=?3"
                                " WHERE id=?1")) == 0) {
        s_bind_text(st, 1, build_id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)n.cut_lines);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)n.cut_bytes);
        rc = s_step_done(s, st, "counting a log's cut");
        s_unprep(s, st);
    }
    if (sp)
        rc = s_end(s, rc);
    if (rc == 0) {
        n.link = ls->link;
        *ls = n;
    }
    return rc;
}

/* The status a person reads: running, stitching, completed, failed, cancelled. */
#define S_STATUS_SQL                                                                   \
    "CASE WHEN state='running' THEN 'running' WHEN state='stitching' THEN 'stitching'" \
    " WHEN ok THEN 'completed' WHEN reason LIKE 'cancelled%' THEN 'cancelled'"         \
    " ELSE 'failed' END"

static int s_list(void *impl, farm_journal_build_t **out, size_t *out_n,
                  const farm_journal_filter_t *f)
{
    s_sql_t *s = impl;
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc, r;

    *out = NULL;
    *out_n = 0;
    if ((rc = s_prepare(s, &st,
        "SELECT " S_BUILD_COLS " FROM builds WHERE"
        " (?1 IS NULL OR (owner=?1) != ?2) AND"
        " (?3 IS NULL OR (registry || '/' || repository = ?3) != ?4) AND"
        " (?5 IS NULL OR (" S_STATUS_SQL " = ?5) != ?6) AND"
        " (?7 = 0 OR created >= ?7) AND (?8 = 0 OR created <= ?8)"
        " ORDER BY seq DESC LIMIT ?9 OFFSET ?10")) < 0)
        return rc;
    s_bind_text(st, 1, f->owner);
    sqlite3_bind_int(st, 2, !!f->owner_not);
    s_bind_text(st, 3, f->repository);
    sqlite3_bind_int(st, 4, !!f->repository_not);
    s_bind_text(st, 5, f->status);
    sqlite3_bind_int(st, 6, !!f->status_not);
    sqlite3_bind_int64(st, 7, f->since);
    sqlite3_bind_int64(st, 8, f->until);
    sqlite3_bind_int64(st, 9, (sqlite3_int64)(f->limit ? f->limit : FARM_JOURNAL_MAX_BUILDS));
    sqlite3_bind_int64(st, 10, (sqlite3_int64)f->offset);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = s_grow((void **)out, &cap, *out_n, sizeof **out)) < 0 ||
            (rc = s_row_build(s, &(*out)[*out_n], st)) < 0)
            goto done;
        (*out_n)++;
    }
    if (r != SQLITE_DONE)
        rc = s_sqlerr(s, r, "listing builds");
done:
    s_unprep(s, st);
    if (rc < 0) {
        farm_journal_builds_free(*out, *out_n);
        *out = NULL;
        *out_n = 0;
    }
    return rc;
}

static int s_get_build(void *impl, farm_journal_build_t *out, const char *id);

static int s_get_record(void *impl, farm_journal_record_t *out, const char *id)
{
    s_sql_t *s = impl;
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc, r;

    memset(out, 0, sizeof *out);
    if ((rc = s_get_build(impl, &out->build, id)) < 0)
        return rc;
    if ((rc = s_prepare(s, &st, "SELECT build_id, id, platform, state, attempt, node, queued_at,"
                                " started_at, finished_at, image_digest, image_size,"
                                " image_media_type, error, cache_hits, steps FROM jobs"
                                " WHERE build_id=?1 ORDER BY rowid")) < 0)
        goto done;
    s_bind_text(st, 1, id);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = s_grow((void **)&out->jobs, &cap, out->n_jobs, sizeof *out->jobs)) < 0 ||
            (rc = s_row_job(s, &out->jobs[out->n_jobs], st)) < 0)
            goto done;
        out->n_jobs++;
    }
    if (r != SQLITE_DONE && (rc = s_sqlerr(s, r, "reading jobs")) < 0)
        goto done;
    s_unprep(s, st);
    cap = 0;
    if ((rc = s_prepare(s, &st, "SELECT a.platform, a.attempt, a.node, a.outcome, a.reason,"
                                " a.started_at, a.finished_at FROM attempts a JOIN jobs j ON"
                                " j.build_id=a.build_id AND j.platform=a.platform"
                                " WHERE a.build_id=?1 ORDER BY j.rowid, a.attempt")) < 0)
        goto done;
    s_bind_text(st, 1, id);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        farm_journal_attempt_t *a;
        if ((rc = s_grow((void **)&out->attempts, &cap, out->n_attempts,
                         sizeof *out->attempts)) < 0)
            goto done;
        a = &out->attempts[out->n_attempts];
        memset(a, 0, sizeof *a);
        if (s_col_fixed(a->platform, sizeof a->platform, st, 0) < 0 ||
            s_col_fixed(a->node, sizeof a->node, st, 2) < 0 ||
            s_col_fixed(a->outcome, sizeof a->outcome, st, 3) < 0 ||
            s_col_dup(&a->reason, st, 4, FARM_JOURNAL_REASON_MAX) < 0) {
            free(a->reason);
            rc = farm_error_set(FARM_EINVALID, "journal %s: an attempt of build %s cannot be "
                                "read back (was the file changed outside farm?)", s->path, id);
            goto done;
        }
        a->attempt = (unsigned)sqlite3_column_int64(st, 1);
        a->started_at = sqlite3_column_int64(st, 5);
        a->finished_at = sqlite3_column_int64(st, 6);
        out->n_attempts++;
    }
    if (r != SQLITE_DONE && (rc = s_sqlerr(s, r, "reading attempts")) < 0)
        goto done;
    s_unprep(s, st);
    cap = 0;
    if ((rc = s_prepare(s, &st, "SELECT s.platform, s.number, s.text, s.ms, s.cached FROM steps"
                                " s JOIN jobs j ON j.build_id=s.build_id AND"
                                " j.platform=s.platform WHERE s.build_id=?1"
                                " ORDER BY j.rowid, s.n")) < 0)
        goto done;
    s_bind_text(st, 1, id);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        farm_journal_step_t *p;
        if ((rc = s_grow((void **)&out->steps, &cap, out->n_steps, sizeof *out->steps)) < 0)
            goto done;
        p = &out->steps[out->n_steps];
        memset(p, 0, sizeof *p);
        if (s_col_fixed(p->platform, sizeof p->platform, st, 0) < 0 ||
            s_col_dup(&p->text, st, 2, FARM_JOURNAL_STEP_TEXT_MAX) < 0) {
            free(p->text);
            rc = farm_error_set(FARM_EINVALID, "journal %s: a step of build %s cannot be read "
                                "back (was the file changed outside farm?)", s->path, id);
            goto done;
        }
        p->number = (unsigned)sqlite3_column_int64(st, 1);
        p->ms = (uint64_t)sqlite3_column_int64(st, 3);
        p->cached = sqlite3_column_int(st, 4);
        out->n_steps++;
    }
    if (r != SQLITE_DONE && (rc = s_sqlerr(s, r, "reading steps")) < 0)
        goto done;
    s_unprep(s, st);
    if ((rc = s_prepare(s, &st, "SELECT log_cut_lines, log_cut_bytes FROM builds"
                                " WHERE id=?1")) < 0)
        goto done;
    s_bind_text(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        out->log_cut_lines = (uint64_t)sqlite3_column_int64(st, 0);
        out->log_cut_bytes = (uint64_t)sqlite3_column_int64(st, 1);
    }
done:
    s_unprep(s, st);
    if (rc < 0)
        farm_journal_record_clear(out);
    return rc;
}

static int s_get_lines(void *impl, farm_journal_line_t **out, size_t *out_n, const char *id,
                       const char *platform)
{
    s_sql_t *s = impl;
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    long long cut_lines = 0, cut_bytes = 0;
    int rc, r, said = 0;

    *out = NULL;
    *out_n = 0;
    if ((rc = s_prepare(s, &st, "SELECT log_cut_lines, log_cut_bytes FROM builds"
                                " WHERE id=?1")) < 0)
        return rc;
    s_bind_text(st, 1, id);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        cut_lines = sqlite3_column_int64(st, 0);
        cut_bytes = sqlite3_column_int64(st, 1);
    }
    s_unprep(s, st);
    if (r == SQLITE_DONE)
        return farm_error_set(FARM_ENOTFOUND, "journal %s: no build %s", s->path, id);
    if (r != SQLITE_ROW)
        return s_sqlerr(s, r, "reading a build");
    if ((rc = s_prepare(s, &st, "SELECT platform, line, head, node FROM logs WHERE build_id=?1 AND"
                                " (?2 IS NULL OR platform=?2) ORDER BY n")) < 0)
        return rc;
    s_bind_text(st, 1, id);
    s_bind_text(st, 2, platform);
    for (;;) {
        int row = (r = sqlite3_step(st)) == SQLITE_ROW;
        int marker = cut_lines > 0 && !said && (!row || !sqlite3_column_int(st, 2));
        for (int k = 0; k < marker + row; k++) {
            farm_journal_line_t *l;
            if ((rc = s_grow((void **)out, &cap, *out_n, sizeof **out)) < 0)
                goto done;
            l = &(*out)[*out_n];
            memset(l, 0, sizeof *l);
            if (k == 0 && marker) {
                said = 1;
                if (asprintf(&l->line, "... %lld lines (%lld bytes) cut: the log is over "
                             "history.log_limit; its first and last lines are kept ...",
                             cut_lines, cut_bytes) < 0)
                    l->line = NULL;
            } else if (s_col_fixed(l->platform, sizeof l->platform, st, 0) < 0 ||
                       s_col_fixed(l->node, sizeof l->node, st, 3) < 0) {
                rc = farm_error_set(FARM_EINVALID, "journal %s: a log line of build %s cannot "
                                    "be read back", s->path, id);
                goto done;
            } else {
                l->line = strdup((const char *)sqlite3_column_text(st, 1));
            }
            if (!l->line) {
                rc = farm_error_set(FARM_ERROR, "journal: out of memory reading a log");
                goto done;
            }
            (*out_n)++;
        }
        if (!row)
            break;
    }
    if (r != SQLITE_DONE)
        rc = s_sqlerr(s, r, "reading a log");
done:
    s_unprep(s, st);
    if (rc < 0) {
        farm_journal_lines_free(*out, *out_n);
        *out = NULL;
        *out_n = 0;
    }
    return rc;
}

static int s_prune_count(void *impl, size_t *out_removed, size_t keep)
{
    s_sql_t *s = impl;
    sqlite3_stmt *st = NULL;
    int rc = s_begin(s);
    if (rc < 0)
        return rc;
    if ((rc = s_prepare(s, &st, "DELETE FROM builds WHERE state='done' AND seq < (SELECT seq"
                                " FROM builds WHERE state='done' ORDER BY seq DESC LIMIT 1"
                                " OFFSET ?1)")) == 0) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)(keep ? keep - 1 : 0));
        rc = s_step_done(s, st, "pruning the oldest finished builds");
        s_unprep(s, st);
    }
    if (rc == 0 && out_removed)
        *out_removed = (size_t)sqlite3_changes(s->db);
    return s_end(s, rc);
}

static const farm_journal_ops_t s_sqlite_ops = {
    .name = "sqlite",
    .put_build = s_put_build,
    .put_job = s_put_job,
    .finish = s_finish,
    .load_unfinished = s_load_unfinished,
    .get_build = s_get_build,
    .prune = s_prune,
    .next_seq = s_next_seq,
    .set_batch = s_set_batch,
    .commit = s_commit,
    .pending = s_pending,
    .close = s_sql_close,
    .put_tag = s_put_tag,
    .get_tag = s_get_tag,
    .put_steps = s_put_steps,
    .put_line = s_put_line,
    .list = s_list,
    .get_record = s_get_record,
    .get_lines = s_get_lines,
    .prune_count = s_prune_count,
};

/* ------------------------------------------------------------------ front */

farm_journal_t *farm_journal_new(const farm_journal_ops_t *ops, void *impl,
                                 const farm_journal_opts_t *opts)
{
    farm_journal_t *self = calloc(1, sizeof *self);
    if (!self) {
        if (ops && ops->close)
            ops->close(impl);
        farm_error_set(FARM_ERROR, "journal: out of memory");
        return NULL;
    }
    self->ops = ops;
    self->impl = impl;
    farm_journal_set_opts(self, opts);
    return self;
}

void farm_journal_set_opts(farm_journal_t *self, const farm_journal_opts_t *opts)
{
    self->retention_ms = opts && opts->retention_ms > 0 ? opts->retention_ms
                                                        : FARM_JOURNAL_RETENTION_MS;
    self->max_builds = opts && opts->max_builds > 0 ? opts->max_builds : FARM_JOURNAL_MAX_BUILDS;
    self->log_limit = opts && opts->log_limit > 0 ? opts->log_limit : FARM_JOURNAL_LOG_LIMIT;
}

farm_journal_t *farm_journal_open(const char *state_dir, const farm_journal_opts_t *opts)
{
    s_sql_t *s = s_sql_open(state_dir);
    farm_journal_t *self;
    if (!s)
        return NULL;
    char path[FARM_PATH_MAX];
    memcpy(path, s->path, sizeof path);
    if (!(self = farm_journal_new(&s_sqlite_ops, s, opts)))
        return NULL;
    memcpy(self->path, path, sizeof path);
    return self;
}

void farm_journal_destroy(farm_journal_t **self_p)
{
    farm_journal_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    if (self->ops->close)
        self->ops->close(self->impl);
    free(self);
    *self_p = NULL;
}

const char *farm_journal_path(const farm_journal_t *self)
{
    return self->path;
}

int farm_journal_put_build(farm_journal_t *self, const farm_journal_build_t *b,
                           const farm_journal_job_t *jobs, size_t n_jobs)
{
    if (s_build_ok(b) < 0)
        return FARM_EINVALID;
    for (size_t i = 0; i < n_jobs; i++) {
        if (s_job_ok(&jobs[i]) < 0)
            return FARM_EINVALID;
        if (strcmp(jobs[i].build_id, b->id) != 0)
            return farm_error_set(FARM_EINVALID, "journal: job %s is not build %s's",
                                  jobs[i].id, b->id);
    }
    return self->ops->put_build(self->impl, b, jobs, n_jobs);
}

void farm_journal_set_batch(farm_journal_t *self, int on)
{
    if (self->ops->set_batch)
        self->ops->set_batch(self->impl, on);
}

int farm_journal_commit(farm_journal_t *self)
{
    return self->ops->commit ? self->ops->commit(self->impl) : 0;
}

int farm_journal_pending(const farm_journal_t *self)
{
    return self->ops->pending ? self->ops->pending(self->impl) : 0;
}

int farm_journal_put_job(farm_journal_t *self, const farm_journal_job_t *job)
{
    if (s_job_ok(job) < 0)
        return FARM_EINVALID;
    return self->ops->put_job(self->impl, job);
}

int farm_journal_finish(farm_journal_t *self, const char *id, int ok, const char *reason,
                        const char *index_digest, uint64_t index_size, long long at)
{
    if (!id || !*id || strlen(id) > FARM_ID_MAX)
        return farm_error_set(FARM_EINVALID, "journal: finishing a build without a valid id");
    if (s_str_ok("journal: build", id, "reason", reason, FARM_JOURNAL_REASON_MAX) < 0 ||
        s_str_ok("journal: build", id, "index digest", index_digest, FARM_DIGEST_STRLEN - 1) < 0)
        return FARM_EINVALID;
    int rc = self->ops->finish(self->impl, id, ok, reason, index_digest, index_size, at);
    size_t n = 0;
    /* the count's query walks max_builds rows: run once per 1% of them (a history may
     * hold up to 1% more for a while), and at the first finish after a start */
    if (rc == 0 && self->finished++ % (self->max_builds / 100 + 1) == 0 &&
        self->ops->prune_count &&
        self->ops->prune_count(self->impl, &n, self->max_builds) == 0 && n > 0)
        farm_log_info("journal: %zu finished build(s) beyond history.max_builds (%zu) pruned",
                      n, self->max_builds);
    return rc; /* a prune that failed is tried again at the next build's end */
}

int farm_journal_load_unfinished(farm_journal_t *self, farm_journal_loaded_t *out)
{
    return self->ops->load_unfinished(self->impl, out);
}

void farm_journal_build_clear(farm_journal_build_t *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n_tags; i++)
        free(b->tags[i]);
    free(b->tags);
    for (size_t i = 0; i < b->n_tag_refs; i++)
        free(b->tag_refs[i]);
    free(b->tag_refs);
    for (size_t i = 0; i < b->n_platforms; i++)
        free(b->platforms[i]);
    free(b->platforms);
    free(b->dockerfile);
    for (size_t i = 0; i < b->n_args; i++) {
        free(b->args[i].key);
        free(b->args[i].value);
    }
    free(b->args);
    farm_buildflags_clear(&b->flags);
    free(b->reason);
    for (size_t i = 0; i < FARM_PLATFORMS_MAX; i++)
        free(b->prov[i]);
    memset(b, 0, sizeof *b);
}

void farm_journal_loaded_free(farm_journal_loaded_t *loaded)
{
    if (!loaded)
        return;
    for (size_t i = 0; i < loaded->n_builds; i++)
        farm_journal_build_clear(&loaded->builds[i]);
    free(loaded->builds);
    for (size_t i = 0; i < loaded->n_jobs; i++)
        free(loaded->jobs[i].error);
    free(loaded->jobs);
    memset(loaded, 0, sizeof *loaded);
}

int farm_journal_get_build(farm_journal_t *self, farm_journal_build_t *out, const char *id)
{
    if (!id || !*id || strlen(id) > FARM_ID_MAX) {
        memset(out, 0, sizeof *out);
        return farm_error_set(FARM_ENOTFOUND, "journal: no build with that id");
    }
    return self->ops->get_build(self->impl, out, id);
}

static int s_tag_ok(const char *registry, const char *repository, const char *tag)
{
    if (!registry || !*registry || strlen(registry) > FARM_REGISTRY_HOST_MAX)
        return farm_error_set(FARM_EINVALID, "journal: a tag's registry is empty or longer "
                              "than %d bytes", FARM_REGISTRY_HOST_MAX);
    if (!repository || !*repository || strlen(repository) > 255)
        return farm_error_set(FARM_EINVALID, "journal: a tag's repository is empty or longer "
                              "than 255 bytes");
    if (!tag || !*tag || strlen(tag) > FARM_JOURNAL_TAG_MAX)
        return farm_error_set(FARM_EINVALID, "journal: tag of %s/%s is empty or longer than "
                              "%d bytes", registry, repository, FARM_JOURNAL_TAG_MAX);
    return 0;
}

static int s_tags_kept(const farm_journal_t *self)
{
    if (self->ops->put_tag && self->ops->get_tag)
        return 0;
    return farm_error_set(FARM_EINVALID, "journal backend %s keeps no tags (it is older than "
                          "schema 3)", self->ops->name ? self->ops->name : "?");
}

int farm_journal_put_tag(farm_journal_t *self, const farm_journal_tag_t *t)
{
    int rc;
    if ((rc = s_tags_kept(self)) < 0 || (rc = s_tag_ok(t->registry, t->repository, t->tag)) < 0)
        return rc;
    /* seq 0 with no id: no build holds the tag (a claim undone) */
    if ((t->seq > 0 && !t->build_id[0]) || memchr(t->build_id, 0, sizeof t->build_id) == NULL)
        return farm_error_set(FARM_EINVALID, "journal: tag %s/%s:%s has no build id",
                              t->registry, t->repository, t->tag);
    return self->ops->put_tag(self->impl, t);
}

int farm_journal_get_tag(farm_journal_t *self, farm_journal_tag_t *out, const char *registry,
                         const char *repository, const char *tag)
{
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = s_tags_kept(self)) < 0 || (rc = s_tag_ok(registry, repository, tag)) < 0)
        return rc;
    return self->ops->get_tag(self->impl, out, registry, repository, tag);
}

int farm_journal_prune(farm_journal_t *self, size_t *out_removed, long long now)
{
    size_t n = 0, by_count = 0;
    int rc = self->ops->prune(self->impl, &n, now - self->retention_ms);
    if (rc == 0 && self->ops->prune_count &&
        (rc = self->ops->prune_count(self->impl, &by_count, self->max_builds)) == 0 && by_count)
        farm_log_info("journal: %zu finished build(s) beyond history.max_builds (%zu) pruned",
                      by_count, self->max_builds);
    if (rc == 0 && n > 0)
        farm_log_info("journal: %zu finished build(s) older than %lld s pruned", n,
                      self->retention_ms / 1000);
    if (out_removed)
        *out_removed = n + by_count;
    return rc;
}

/* ------------------------------------------------------------------ build records */

static int s_records_kept(const farm_journal_t *self)
{
    if (!self->ops->list || !self->ops->get_record || !self->ops->put_line)
        return farm_error_set(FARM_EINVALID, "journal backend %s keeps no build records",
                              self->ops->name ? self->ops->name : "?");
    return 0;
}

static int s_ids_ok(const char *build_id, const char *platform)
{
    if (!build_id || !*build_id || strlen(build_id) > FARM_ID_MAX)
        return farm_error_set(FARM_EINVALID, "journal: a record without a valid build id");
    if (!platform || !*platform || strlen(platform) >= FARM_PLATFORM_STRLEN)
        return farm_error_set(FARM_EINVALID, "journal: build %s: a record without a valid "
                              "platform", build_id);
    return 0;
}

int farm_journal_put_steps(farm_journal_t *self, const char *build_id, const char *platform,
                           const farm_journal_step_t *steps, size_t n)
{
    int rc;
    if ((rc = s_records_kept(self)) < 0 || (rc = s_ids_ok(build_id, platform)) < 0)
        return rc;
    if (n > FARM_JOURNAL_STEPS_MAX)
        n = FARM_JOURNAL_STEPS_MAX; /* statistics: the first ones are kept */
    return self->ops->put_steps(self->impl, build_id, platform, steps, n);
}

int farm_journal_put_line(farm_journal_t *self, const char *build_id, const char *platform,
                          const char *node, const char *line)
{
    char cut[FARM_JOURNAL_LINE_MAX + 1];
    int rc;
    if ((rc = s_records_kept(self)) < 0 || (rc = s_ids_ok(build_id, platform)) < 0)
        return rc;
    if (strlen(line) > FARM_JOURNAL_LINE_MAX) { /* a line is text for a person: cut, kept */
        memcpy(cut, line, FARM_JOURNAL_LINE_MAX);
        cut[FARM_JOURNAL_LINE_MAX] = 0;
        line = cut;
    }
    if (node && strlen(node) > FARM_NAME_MAX)
        return farm_error_set(FARM_EINVALID, "journal: build %s: a log line's node name is over "
                              "%d bytes", build_id, FARM_NAME_MAX);
    return self->ops->put_line(self->impl, build_id, platform, node, line, self->log_limit);
}

int farm_journal_list(farm_journal_t *self, farm_journal_build_t **out, size_t *out_n,
                      const farm_journal_filter_t *f)
{
    farm_journal_filter_t none = {0};
    int rc;
    *out = NULL;
    *out_n = 0;
    if ((rc = s_records_kept(self)) < 0)
        return rc;
    return self->ops->list(self->impl, out, out_n, f ? f : &none);
}

void farm_journal_builds_free(farm_journal_build_t *builds, size_t n)
{
    for (size_t i = 0; builds && i < n; i++)
        farm_journal_build_clear(&builds[i]);
    free(builds);
}

int farm_journal_get_record(farm_journal_t *self, farm_journal_record_t *out, const char *id)
{
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = s_records_kept(self)) < 0)
        return rc;
    if (!id || !*id || strlen(id) > FARM_ID_MAX)
        return farm_error_set(FARM_ENOTFOUND, "journal: no build with that id");
    return self->ops->get_record(self->impl, out, id);
}

void farm_journal_record_clear(farm_journal_record_t *r)
{
    if (!r)
        return;
    farm_journal_build_clear(&r->build);
    for (size_t i = 0; i < r->n_jobs; i++)
        free(r->jobs[i].error);
    free(r->jobs);
    for (size_t i = 0; i < r->n_attempts; i++)
        free(r->attempts[i].reason);
    free(r->attempts);
    for (size_t i = 0; i < r->n_steps; i++)
        free(r->steps[i].text);
    free(r->steps);
    memset(r, 0, sizeof *r);
}

int farm_journal_get_lines(farm_journal_t *self, farm_journal_line_t **out, size_t *out_n,
                           const char *id, const char *platform)
{
    int rc;
    *out = NULL;
    *out_n = 0;
    if ((rc = s_records_kept(self)) < 0)
        return rc;
    if (!id || !*id || strlen(id) > FARM_ID_MAX)
        return farm_error_set(FARM_ENOTFOUND, "journal: no build with that id");
    return self->ops->get_lines(self->impl, out, out_n, id, platform && *platform ? platform
                                                                                  : NULL);
}

void farm_journal_lines_free(farm_journal_line_t *lines, size_t n)
{
    for (size_t i = 0; lines && i < n; i++)
        free(lines[i].line);
    free(lines);
}

int farm_journal_next_build_id(farm_journal_t *self, char *out, size_t len, uint64_t *out_seq)
{
    unsigned char r[16];
    char hex[33];
    uint64_t seq;
    int rc;

    if (len)
        out[0] = 0;
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return farm_error_set(FARM_EIO, "coordinator cannot make a build id: no randomness");
    if ((rc = self->ops->next_seq(self->impl, &seq)) < 0)
        return rc;
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(hex + 2 * i, 3, "%02x", r[i]);
    if (farm_path_fmt(out, len, "b%" PRIu64 "-%s", seq, hex) < 0)
        return FARM_ETOOBIG;
    if (out_seq)
        *out_seq = seq;
    return 0;
}

int farm_journal_build_from(farm_journal_build_t *out, char *plats[FARM_PLATFORMS_MAX],
                            const farm_build_t *b, uint64_t seq)
{
    memset(out, 0, sizeof *out);
    if (b->n_jobs > FARM_PLATFORMS_MAX)
        return farm_error_set(FARM_EINVALID, "journal: build %s has %zu jobs, over the ceiling "
                              "of %d", b->id, b->n_jobs, FARM_PLATFORMS_MAX);
    for (size_t i = 0; i < b->n_jobs; i++) {
        plats[i] = b->jobs[i].platform;
        out->prov[i] = b->jobs[i].prov; /* borrowed, as the rest */
    }
    out->platforms = plats;
    out->n_platforms = b->n_jobs;
    if (farm_path_fmt(out->id, sizeof out->id, "%s", b->id) < 0 ||
        farm_path_fmt(out->owner, sizeof out->owner, "%s", b->owner) < 0 ||
        farm_path_fmt(out->registry, sizeof out->registry, "%s", b->registry) < 0 ||
        farm_path_fmt(out->repository, sizeof out->repository, "%s", b->repository) < 0 ||
        farm_path_fmt(out->context_digest, sizeof out->context_digest, "%s",
                      b->context_digest) < 0)
        return farm_error_wrap(FARM_EINVALID, "journal: build %s", b->id);
    out->seq = seq;
    out->tags = b->tags;
    out->n_tags = b->n_tags;
    if (b->n_targets > 1) {
        out->tag_refs = b->tag_refs;
        out->n_tag_refs = b->n_tags;
    }
    out->context_size = b->context_size;
    out->dockerfile = b->dockerfile;
    out->args = b->args;
    out->n_args = b->n_args;
    /* the flags but not their secrets: a copy of the struct with the secrets left out */
    out->flags = b->flags;
    out->flags.secrets = NULL;
    out->flags.n_secrets = 0;
    out->insecure = b->insecure;
    out->allow_partial = b->allow_partial;
    out->amend = b->amend;
    out->network_none = b->network_none;
    out->needs_submitter = b->n_creds > 0 || b->flags.n_secrets > 0;
    snprintf(out->token_digest, sizeof out->token_digest, "%s", b->token_digest);
    out->state = b->state == FARM_BUILD_RUNNING     ? FARM_JOURNAL_BUILD_RUNNING
                 : b->state == FARM_BUILD_STITCHING ? FARM_JOURNAL_BUILD_STITCHING
                                                    : FARM_JOURNAL_BUILD_DONE;
    return 0;
}

/* A job's state and its journal record's, one table both ways. */
static const farm_journal_job_state_t s_job_record_states[] = {
    [FARM_JOB_QUEUED] = FARM_JOURNAL_JOB_QUEUED,   [FARM_JOB_RUNNING] = FARM_JOURNAL_JOB_RUNNING,
    [FARM_JOB_DONE] = FARM_JOURNAL_JOB_DONE,       [FARM_JOB_FAILED] = FARM_JOURNAL_JOB_FAILED,
    [FARM_JOB_CANCELLED] = FARM_JOURNAL_JOB_CANCELLED,
};

farm_job_state_t farm_journal_job_state(farm_journal_job_state_t s)
{
    for (size_t i = 0; i < sizeof s_job_record_states / sizeof *s_job_record_states; i++)
        if (s_job_record_states[i] == s)
            return (farm_job_state_t)i;
    return FARM_JOB_FAILED; /* not a state this code writes */
}

void farm_journal_job_from(farm_journal_job_t *out, const farm_job_t *job)
{
    const farm_journal_job_state_t *map = s_job_record_states;
    memset(out, 0, sizeof *out);
    snprintf(out->build_id, sizeof out->build_id, "%s", job->build ? job->build->id : "");
    snprintf(out->id, sizeof out->id, "%s", job->id);
    snprintf(out->platform, sizeof out->platform, "%s", job->platform);
    out->state = map[job->state];
    out->attempt = job->attempt;
    snprintf(out->node, sizeof out->node, "%s", job->node_name);
    if (job->state == FARM_JOB_DONE && job->image) {
        snprintf(out->image_digest, sizeof out->image_digest, "%s", job->image->digest);
        snprintf(out->image_media_type, sizeof out->image_media_type, "%s",
                 job->image->media_type);
        out->image_size = job->image->size;
    }
    out->error = job->state == FARM_JOB_FAILED ? job->error : NULL;
    out->cache_hits = job->cache_hits;
    out->steps = job->steps;
}
