/* SPDX-License-Identifier: Apache-2.0 */
/* The journal: what is written comes back after a reopen (and after the writer was killed
 * between writing and acting), an older schema is migrated and a newer one refused, a
 * damaged or foreign file and unsafe modes are refused with the file and the fix, finished
 * builds are pruned after the retention, build ids stay unique across restarts, and no
 * login or secret reaches the files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "coordinator/journal.h"

#define DIGEST "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define IMAGE "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define INDEX "sha256:aaaabbbbccccddddaaaabbbbccccddddaaaabbbbccccddddaaaabbbbccccdddd"

static char s_dir[] = "/tmp/farm-journal-XXXXXX";
static char s_db[256];

static int s_setup(void **state)
{
    strcpy(s_dir, "/tmp/farm-journal-XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    snprintf(s_db, sizeof s_db, "%s/journal.db", s_dir);
    return 0;
}

static int s_teardown(void **state)
{
    farm_fs_rmtree(s_dir);
    return 0;
}

/* ------------------------------------------------------------------ fixtures */

static char *s_tags[] = {"registry.example:5000/app:1.0", "registry.example:5000/app:latest"};
static char *s_plats[] = {"linux/amd64", "linux/arm64/v8"};
/* tags in two repositories: each in full */
static char *s_refs[] = {"registry.example:5000/app:1.0", "mirror.example/team/app:latest"};
static farm_kv_t s_args[] = {{"VERSION", "1.0"}, {"FLAVOUR", "slim"}};
static farm_kv_t s_labels[] = {{"org.opencontainers.image.source", "https://example/app"}};

/* what the second job's node reported for its provenance */
static farm_job_prov_t s_prov = {
    .started_ms = 1700000001000ULL,
    .finished_ms = 1700000002000ULL,
    .dockerfile_digest = DIGEST,
    .emulated = 1,
    .bases = {{"r.example/base:1", DIGEST, 1}},
    .n_bases = 1,
};

static void s_build(farm_journal_build_t *b, const char *id, uint64_t seq)
{
    memset(b, 0, sizeof *b);
    snprintf(b->id, sizeof b->id, "%s", id);
    b->seq = seq;
    snprintf(b->owner, sizeof b->owner, "alice");
    snprintf(b->registry, sizeof b->registry, "registry.example:5000");
    snprintf(b->repository, sizeof b->repository, "app");
    b->tags = s_tags;
    b->n_tags = 2;
    b->platforms = s_plats;
    b->n_platforms = 2;
    snprintf(b->context_digest, sizeof b->context_digest, DIGEST);
    b->context_size = 12345;
    b->dockerfile = "docker/Dockerfile.prod";
    b->args = s_args;
    b->n_args = 2;
    b->flags.target = "runtime";
    b->flags.pull = 1;
    b->flags.provenance = FARM_PROVENANCE_MAX; /* a restart attests as the submit chose */
    b->flags.labels = s_labels;
    b->flags.n_labels = 1;
    b->flags.cache_from = "registry.example:5000/cache";
    b->allow_partial = 1;
    b->network_none = 1;
    b->needs_submitter = 1;
    b->tag_refs = s_refs;
    b->n_tag_refs = 2;
    b->amend = 1;
    b->state = FARM_JOURNAL_BUILD_RUNNING;
    b->created = b->updated = 1700000000000LL;
}

static void s_job(farm_journal_job_t *j, const char *build_id, unsigned n, const char *plat)
{
    memset(j, 0, sizeof *j);
    snprintf(j->build_id, sizeof j->build_id, "%s", build_id);
    snprintf(j->id, sizeof j->id, "%s.%u", build_id, n);
    snprintf(j->platform, sizeof j->platform, "%s", plat);
    j->state = FARM_JOURNAL_JOB_QUEUED;
    j->queued_at = 1700000000000LL;
}

static farm_journal_t *s_open(void)
{
    farm_journal_t *j = farm_journal_open(s_dir, NULL);
    if (!j)
        fail_msg("farm_journal_open: %s", farm_error_last());
    return j;
}

/* Writes build id with two queued jobs. */
static void s_put_queued(farm_journal_t *j, const char *id, uint64_t seq)
{
    farm_journal_build_t b;
    farm_journal_job_t jobs[2];
    s_build(&b, id, seq);
    s_job(&jobs[0], id, 1, s_plats[0]);
    s_job(&jobs[1], id, 2, s_plats[1]);
    assert_int_equal(farm_journal_put_build(j, &b, jobs, 2), 0);
}

static long long s_sql_int(const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -1;
    assert_int_equal(sqlite3_open_v2(s_db, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void s_sql_exec(const char *sql)
{
    sqlite3 *db = NULL;
    char *err = NULL;
    assert_int_equal(sqlite3_open_v2(s_db, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
    sqlite3_close(db);
}

/* ------------------------------------------------------------------ tests */

static void test_round_trip(void **state)
{
    farm_journal_t *j = s_open();
    farm_journal_loaded_t l;
    farm_journal_job_t job;
    farm_journal_build_t got;

    s_put_queued(j, "b1-00112233445566778899aabbccddeeff", 1);
    {   /* a job's result came: the build is written again, its options with what the
         * node said for provenance (a restart attests as the first stitch would have) */
        farm_journal_build_t again;
        s_build(&again, "b1-00112233445566778899aabbccddeeff", 1);
        again.prov[1] = &s_prov;
        assert_int_equal(farm_journal_put_build(j, &again, NULL, 0), 0);
    }
    s_job(&job, "b1-00112233445566778899aabbccddeeff", 1, s_plats[0]);
    job.state = FARM_JOURNAL_JOB_RUNNING;
    job.attempt = 1;
    snprintf(job.node, sizeof job.node, "x86-1");
    job.started_at = 1700000001000LL;
    assert_int_equal(farm_journal_put_job(j, &job), 0);
    s_job(&job, "b1-00112233445566778899aabbccddeeff", 2, s_plats[1]);
    job.state = FARM_JOURNAL_JOB_DONE;
    job.attempt = 2;
    snprintf(job.node, sizeof job.node, "pi-4");
    snprintf(job.image_digest, sizeof job.image_digest, IMAGE);
    snprintf(job.image_media_type, sizeof job.image_media_type,
             "application/vnd.oci.image.manifest.v1+json");
    job.image_size = 987;
    job.finished_at = 1700000009000LL;
    assert_int_equal(farm_journal_put_job(j, &job), 0);
    farm_journal_destroy(&j);
    assert_null(j);

    j = s_open();
    if (farm_journal_load_unfinished(j, &l) < 0)
        fail_msg("load: %s", farm_error_last());
    assert_int_equal(l.n_builds, 1);
    farm_journal_build_t *b = &l.builds[0];
    assert_string_equal(b->id, "b1-00112233445566778899aabbccddeeff");
    assert_int_equal(b->seq, 1);
    assert_string_equal(b->owner, "alice");
    assert_string_equal(b->registry, "registry.example:5000");
    assert_string_equal(b->repository, "app");
    assert_int_equal(b->n_tags, 2);
    assert_string_equal(b->tags[1], s_tags[1]);
    assert_int_equal(b->n_platforms, 2);
    assert_string_equal(b->platforms[1], "linux/arm64/v8");
    assert_string_equal(b->context_digest, DIGEST);
    assert_int_equal(b->context_size, 12345);
    assert_string_equal(b->dockerfile, "docker/Dockerfile.prod");
    assert_int_equal(b->n_args, 2);
    assert_string_equal(b->args[1].key, "FLAVOUR");
    assert_string_equal(b->args[1].value, "slim");
    assert_string_equal(b->flags.target, "runtime");
    assert_int_equal(b->flags.pull, 1);
    assert_int_equal(b->flags.provenance, FARM_PROVENANCE_MAX);
    assert_null(b->prov[0]);
    assert_non_null(b->prov[1]);
    assert_memory_equal(b->prov[1], &s_prov, sizeof s_prov);
    assert_int_equal(b->flags.no_cache, 0);
    assert_int_equal(b->flags.n_labels, 1);
    assert_string_equal(b->flags.labels[0].value, "https://example/app");
    assert_string_equal(b->flags.cache_from, "registry.example:5000/cache");
    assert_null(b->flags.cache_to);
    assert_int_equal(b->flags.n_secrets, 0);
    assert_int_equal(b->allow_partial, 1);
    assert_int_equal(b->network_none, 1);
    assert_int_equal(b->insecure, 0);
    assert_int_equal(b->needs_submitter, 1);
    assert_int_equal(b->n_tag_refs, 2);
    assert_string_equal(b->tag_refs[1], "mirror.example/team/app:latest");
    assert_int_equal(b->amend, 1);
    assert_int_equal(b->state, FARM_JOURNAL_BUILD_RUNNING);
    assert_int_equal(b->created, 1700000000000LL);
    assert_null(b->reason);

    assert_int_equal(l.n_jobs, 2);
    assert_string_equal(l.jobs[0].id, "b1-00112233445566778899aabbccddeeff.1");
    assert_int_equal(l.jobs[0].state, FARM_JOURNAL_JOB_RUNNING);
    assert_string_equal(l.jobs[0].node, "x86-1");
    assert_int_equal(l.jobs[0].attempt, 1);
    assert_int_equal(l.jobs[0].started_at, 1700000001000LL);
    assert_int_equal(l.jobs[1].state, FARM_JOURNAL_JOB_DONE);
    assert_string_equal(l.jobs[1].image_digest, IMAGE);
    assert_int_equal(l.jobs[1].image_size, 987);
    assert_string_equal(l.jobs[1].image_media_type, "application/vnd.oci.image.manifest.v1+json");
    assert_int_equal(l.jobs[1].attempt, 2);
    farm_journal_loaded_free(&l);

    /* stitching, then done: it leaves what load returns, and reads back with its result */
    farm_journal_build_t st;
    s_build(&st, "b1-00112233445566778899aabbccddeeff", 1);
    st.state = FARM_JOURNAL_BUILD_STITCHING;
    assert_int_equal(farm_journal_put_build(j, &st, NULL, 0), 0);
    assert_int_equal(farm_journal_get_build(j, &got, st.id), 0);
    assert_int_equal(got.state, FARM_JOURNAL_BUILD_STITCHING);
    farm_journal_build_clear(&got);
    assert_int_equal(farm_journal_finish(j, st.id, 1, NULL, INDEX, 555, 1700000010000LL), 0);
    assert_int_equal(farm_journal_load_unfinished(j, &l), 0);
    assert_int_equal(l.n_builds, 0);
    assert_int_equal(l.n_jobs, 0);
    farm_journal_loaded_free(&l);
    assert_int_equal(farm_journal_get_build(j, &got, st.id), 0);
    assert_int_equal(got.state, FARM_JOURNAL_BUILD_DONE);
    assert_int_equal(got.ok, 1);
    assert_string_equal(got.index_digest, INDEX);
    assert_int_equal(got.index_size, 555);
    assert_int_equal(got.done_at, 1700000010000LL);
    farm_journal_build_clear(&got);
    assert_int_equal(farm_journal_get_build(j, &got, "b9-nope"), FARM_ENOTFOUND);
    assert_int_equal(farm_journal_finish(j, "b9-nope", 0, "x", NULL, 0, 1), FARM_ENOTFOUND);
    /* a job of a build the journal does not hold is refused */
    s_job(&job, "b9-nope", 1, s_plats[0]);
    assert_int_equal(farm_journal_put_job(j, &job), FARM_ENOTFOUND);
    farm_journal_destroy(&j);

    /* the attempts: the running one of the first job, the second of the other */
    assert_int_equal(s_sql_int("SELECT count(*) FROM attempts"), 2);
    assert_int_equal(s_sql_int("SELECT count(*) FROM attempts WHERE outcome='cancelled'"
                               " AND platform='linux/amd64'"), 1);
    assert_int_equal(s_sql_int("SELECT count(*) FROM jobs WHERE state='cancelled'"), 1);
}

/* A failed build keeps its reason; a lost attempt (the job went back to the queue) is
 * recorded as lost, and the next attempt beside it. */
static void test_failure_and_lost_attempt(void **state)
{
    farm_journal_t *j = s_open();
    farm_journal_job_t job;
    farm_journal_build_t got;
    const char *id = "b2-0123456789abcdef0123456789abcdef";

    s_put_queued(j, id, 2);
    s_job(&job, id, 1, s_plats[0]);
    job.state = FARM_JOURNAL_JOB_RUNNING;
    job.attempt = 1;
    snprintf(job.node, sizeof job.node, "x86-1");
    assert_int_equal(farm_journal_put_job(j, &job), 0);
    job.state = FARM_JOURNAL_JOB_QUEUED; /* node x86-1 lost */
    assert_int_equal(farm_journal_put_job(j, &job), 0);
    job.state = FARM_JOURNAL_JOB_FAILED;
    job.attempt = 2;
    snprintf(job.node, sizeof job.node, "x86-2");
    job.error = "RUN make exited with status 2";
    assert_int_equal(farm_journal_put_job(j, &job), 0);
    assert_int_equal(farm_journal_finish(j, id, 0, "linux/amd64 failed on node x86-2: RUN make "
                                         "exited with status 2", NULL, 0, 1700000020000LL), 0);
    assert_int_equal(farm_journal_get_build(j, &got, id), 0);
    assert_int_equal(got.ok, 0);
    assert_string_equal(got.reason, "linux/amd64 failed on node x86-2: RUN make exited with status 2");
    farm_journal_build_clear(&got);
    farm_journal_destroy(&j);
    assert_int_equal(s_sql_int("SELECT count(*) FROM attempts WHERE attempt=1 AND"
                               " outcome='lost' AND node='x86-1'"), 1);
    assert_int_equal(s_sql_int("SELECT count(*) FROM attempts WHERE attempt=2 AND"
                               " outcome='failed' AND node='x86-2'"), 1);
    assert_int_equal(s_sql_int("SELECT count(*) FROM jobs WHERE state='failed' AND"
                               " error='RUN make exited with status 2'"), 1);
}

/* The coordinator writes, then dies before it acts (SIGKILL, nothing closed or flushed by
 * it): a new coordinator finds the record. */
static void test_crash_between_write_and_act(void **state)
{
    const char *id = "b7-ffeeddccbbaa99887766554433221100";
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        farm_journal_t *j = farm_journal_open(s_dir, NULL);
        farm_journal_job_t job;
        if (!j)
            _exit(2);
        farm_journal_build_t b;
        farm_journal_job_t jobs[2];
        s_build(&b, id, 7);
        s_job(&jobs[0], id, 1, s_plats[0]);
        s_job(&jobs[1], id, 2, s_plats[1]);
        if (farm_journal_put_build(j, &b, jobs, 2) < 0)
            _exit(3);
        s_job(&job, id, 2, s_plats[1]);
        job.state = FARM_JOURNAL_JOB_RUNNING;
        job.attempt = 1;
        snprintf(job.node, sizeof job.node, "pi-4");
        if (farm_journal_put_job(j, &job) < 0)
            _exit(4);
        raise(SIGKILL); /* ... and the job was never sent */
        _exit(5);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    farm_journal_t *j = s_open(); /* the dead process's lock went with it */
    farm_journal_loaded_t l;
    assert_int_equal(farm_journal_load_unfinished(j, &l), 0);
    assert_int_equal(l.n_builds, 1);
    assert_string_equal(l.builds[0].id, id);
    assert_int_equal(l.n_jobs, 2);
    assert_int_equal(l.jobs[0].state, FARM_JOURNAL_JOB_QUEUED);
    assert_int_equal(l.jobs[1].state, FARM_JOURNAL_JOB_RUNNING);
    assert_string_equal(l.jobs[1].node, "pi-4");
    farm_journal_loaded_free(&l);
    /* the submit number it wrote is not handed out again */
    uint64_t seq;
    char bid[FARM_ID_MAX + 1];
    assert_int_equal(farm_journal_next_build_id(j, bid, sizeof bid, &seq), 0);
    assert_true(seq > 7);
    farm_journal_destroy(&j);
}

/* Group commit: in batch mode what was committed survives the writer's SIGKILL, what was
 * written after the last commit does not (the coordinator holds back what it would say
 * about those writes until the commit), a write that fails takes back only itself, and
 * a submit number is handed out again only if its batch was lost with it. */
static void test_batch_commit(void **state)
{
    const char *a = "b7-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", *b = "b8-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        farm_journal_t *j = farm_journal_open(s_dir, NULL);
        farm_journal_build_t rec;
        farm_journal_job_t jobs[1], bad;
        char bid[FARM_ID_MAX + 1];
        if (!j)
            _exit(2);
        farm_journal_set_batch(j, 1);
        s_build(&rec, a, 7);
        s_job(&jobs[0], a, 1, s_plats[0]);
        if (farm_journal_put_build(j, &rec, jobs, 1) < 0)
            _exit(3);
        /* a job of no build: refused, the build before it stays in the batch */
        s_job(&bad, "b99-00000000000000000000000000000000", 1, s_plats[0]);
        if (farm_journal_put_job(j, &bad) == 0)
            _exit(4);
        if (!farm_journal_pending(j) || farm_journal_commit(j) < 0 || farm_journal_pending(j))
            _exit(5);
        if (farm_journal_next_build_id(j, bid, sizeof bid, NULL) < 0)
            _exit(6);
        s_build(&rec, b, 8);
        s_job(&jobs[0], b, 1, s_plats[0]);
        if (farm_journal_put_build(j, &rec, jobs, 1) < 0)
            _exit(7);
        raise(SIGKILL); /* no commit: b is not said to anyone */
        _exit(8);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    farm_journal_t *j = s_open();
    farm_journal_loaded_t l;
    farm_journal_build_t got;
    assert_int_equal(farm_journal_load_unfinished(j, &l), 0);
    assert_int_equal(l.n_builds, 1);
    assert_string_equal(l.builds[0].id, a);
    assert_int_equal(l.n_jobs, 1);
    farm_journal_loaded_free(&l);
    assert_int_equal(farm_journal_get_build(j, &got, b), FARM_ENOTFOUND);
    /* with the batch off again, a write is durable on its own; turning it off commits */
    farm_journal_set_batch(j, 1);
    {
        farm_journal_build_t rec;
        farm_journal_job_t jobs[1];
        s_build(&rec, b, 8);
        s_job(&jobs[0], b, 1, s_plats[0]);
        assert_int_equal(farm_journal_put_build(j, &rec, jobs, 1), 0);
    }
    farm_journal_set_batch(j, 0);
    farm_journal_destroy(&j);
    j = s_open();
    assert_int_equal(farm_journal_get_build(j, &got, b), 0);
    farm_journal_build_clear(&got);
    farm_journal_destroy(&j);
}

/* The schema as version 1 wrote it (before attempts and needs_submitter), kept here as an
 * older coordinator left it on disk. */
static const char s_v1[] =
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
    " image_media_type TEXT NOT NULL, error TEXT, PRIMARY KEY(build_id, platform));"
    "UPDATE meta SET value=43;"
    "INSERT INTO builds VALUES('b42-0000000000000000000000000000002a', 42, 'bob',"
    " 'registry.example:5000', 'svc', '[\"registry.example:5000/svc:2\"]',"
    " '[\"linux/amd64\",\"linux/arm/v7\"]', '" DIGEST "', 99, '{\"dockerfile\":null,"
    "\"args\":[],\"target\":null,\"no_cache\":true,\"pull\":false,\"labels\":[],"
    "\"annotations\":[],\"index_annotations\":[],\"cache_from\":null,\"cache_to\":null}',"
    " 0, 0, 0, 'running', 1600000000000, 1600000000000, 0, 0, NULL, '', 0);"
    "INSERT INTO jobs VALUES('b42-0000000000000000000000000000002a',"
    " 'b42-0000000000000000000000000000002a.1', 'linux/amd64', 'running', 2, 'x86-9',"
    " 1600000000000, 1600000005000, 0, '', 0, '', NULL);"
    "INSERT INTO jobs VALUES('b42-0000000000000000000000000000002a',"
    " 'b42-0000000000000000000000000000002a.2', 'linux/arm/v7', 'queued', 0, '',"
    " 1600000000000, 0, 0, '', 0, '', NULL);"
    "PRAGMA application_id=1717662317; PRAGMA user_version=1;";

static void test_migrates_version_1(void **state)
{
    s_sql_exec(s_v1);
    assert_int_equal(chmod(s_db, 0600), 0);

    farm_journal_t *j = s_open();
    farm_journal_loaded_t l;
    assert_int_equal(farm_journal_load_unfinished(j, &l), 0);
    assert_int_equal(l.n_builds, 1);
    assert_string_equal(l.builds[0].id, "b42-0000000000000000000000000000002a");
    assert_string_equal(l.builds[0].owner, "bob");
    assert_int_equal(l.builds[0].flags.no_cache, 1);
    /* an older journal's build chose nothing: buildx's default */
    assert_int_equal(l.builds[0].flags.provenance, FARM_PROVENANCE_DEFAULT);
    assert_string_equal(l.builds[0].platforms[1], "linux/arm/v7");
    /* nothing was known of its logins: it waits for its submitter */
    assert_int_equal(l.builds[0].needs_submitter, 1);
    assert_int_equal(l.n_jobs, 2);
    assert_string_equal(l.jobs[0].node, "x86-9");
    assert_int_equal(l.jobs[0].attempt, 2);
    farm_journal_loaded_free(&l);
    uint64_t seq;
    char id[FARM_ID_MAX + 1];
    assert_int_equal(farm_journal_next_build_id(j, id, sizeof id, &seq), 0);
    assert_int_equal(seq, 43);
    farm_journal_destroy(&j);

    assert_int_equal(s_sql_int("PRAGMA user_version"), FARM_JOURNAL_SCHEMA);
    /* the running attempt was carried into the attempts table */
    assert_int_equal(s_sql_int("SELECT count(*) FROM attempts WHERE attempt=2 AND"
                               " node='x86-9' AND outcome='running'"), 1);
    assert_int_equal(s_sql_int("SELECT count(*) FROM attempts"), 1);
    /* and opening it again changes nothing */
    j = s_open();
    farm_journal_destroy(&j);
    assert_int_equal(s_sql_int("SELECT count(*) FROM attempts"), 1);
}

static void test_newer_schema_refused(void **state)
{
    farm_journal_t *j = s_open();
    s_put_queued(j, "b1-00000000000000000000000000000001", 1);
    farm_journal_destroy(&j);
    s_sql_exec("PRAGMA user_version=99");

    assert_null(farm_journal_open(s_dir, NULL));
    const char *e = farm_error_last();
    assert_non_null(strstr(e, s_db));
    assert_non_null(strstr(e, "schema version 99"));
    assert_non_null(strstr(e, "newer"));
    assert_non_null(strstr(e, "install that farm-coordinator"));
    /* refused, not changed: the newer coordinator finds its journal as it left it */
    assert_int_equal(s_sql_int("PRAGMA user_version"), 99);
    assert_int_equal(s_sql_int("SELECT count(*) FROM builds"), 1);
}

static void s_write_file(const char *path, const char *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_damaged_or_foreign_refused(void **state)
{
    char junk[8192];
    struct stat st;

    /* not a database at all */
    memset(junk, 'x', sizeof junk);
    s_write_file(s_db, junk, sizeof junk, 0600);
    assert_null(farm_journal_open(s_dir, NULL));
    const char *e = farm_error_last();
    assert_non_null(strstr(e, s_db));
    assert_non_null(strstr(e, "cannot be read"));
    assert_non_null(strstr(e, "move it aside"));
    /* left alone for the operator */
    assert_int_equal(stat(s_db, &st), 0);
    assert_int_equal(st.st_size, sizeof junk);

    /* a database, but someone else's */
    unlink(s_db);
    s_sql_exec("CREATE TABLE songs(title TEXT)");
    assert_int_equal(chmod(s_db, 0600), 0);
    assert_null(farm_journal_open(s_dir, NULL));
    assert_non_null(strstr(farm_error_last(), "not a farm journal"));
    assert_non_null(strstr(farm_error_last(), s_db));

    /* a farm journal whose pages were overwritten in the middle */
    unlink(s_db);
    farm_journal_t *j = s_open();
    for (unsigned i = 1; i <= 200; i++) {
        char id[64];
        snprintf(id, sizeof id, "b%u-000000000000000000000000000000%02x", i, i & 0xff);
        s_put_queued(j, id, i);
    }
    farm_journal_destroy(&j);
    assert_int_equal(stat(s_db, &st), 0);
    assert_true(st.st_size > 16384);
    int fd = open(s_db, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, junk, 4096, 8192), 4096);
    close(fd);
    assert_null(farm_journal_open(s_dir, NULL));
    assert_non_null(strstr(farm_error_last(), "damaged"));
    assert_non_null(strstr(farm_error_last(), s_db));
}

static void test_unsafe_files_refused(void **state)
{
    char other[300];

    farm_journal_t *j = s_open();
    farm_journal_destroy(&j);
    struct stat st;
    assert_int_equal(stat(s_db, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    assert_int_equal(chmod(s_db, 0644), 0);
    assert_null(farm_journal_open(s_dir, NULL));
    assert_non_null(strstr(farm_error_last(), "chmod 600"));
    assert_non_null(strstr(farm_error_last(), s_db));
    assert_int_equal(chmod(s_db, 0600), 0);

    /* a symlink in its place (to a file someone else chose) */
    snprintf(other, sizeof other, "%s/elsewhere.db", s_dir);
    assert_int_equal(rename(s_db, other), 0);
    assert_int_equal(symlink(other, s_db), 0);
    assert_null(farm_journal_open(s_dir, NULL));
    assert_non_null(strstr(farm_error_last(), "not a regular file"));
    unlink(s_db);

    /* a -wal beside it that others may write */
    assert_int_equal(rename(other, s_db), 0);
    snprintf(other, sizeof other, "%s-wal", s_db);
    s_write_file(other, "", 0, 0666);
    assert_null(farm_journal_open(s_dir, NULL));
    assert_non_null(strstr(farm_error_last(), "-wal"));
    unlink(other);

    /* the state dir itself, writable by others */
    assert_int_equal(chmod(s_dir, 0777), 0);
    assert_null(farm_journal_open(s_dir, NULL));
    assert_non_null(strstr(farm_error_last(), "coordinator.state_dir"));
    assert_int_equal(chmod(s_dir, 0700), 0);
    j = s_open();
    farm_journal_destroy(&j);
}

static void test_second_coordinator_refused(void **state)
{
    farm_journal_t *j = s_open();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        farm_journal_t *k = farm_journal_open(s_dir, NULL);
        _exit(!k && strstr(farm_error_last(), "held by another process") ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    farm_journal_destroy(&j);
    j = s_open();
    farm_journal_destroy(&j);
}

static void test_prune(void **state)
{
    farm_journal_opts_t o = {.retention_ms = 60000};
    farm_journal_t *j = farm_journal_open(s_dir, &o);
    const long long now = 1800000000000LL;
    size_t removed = 99;
    farm_journal_build_t got;
    farm_journal_loaded_t l;

    assert_non_null(j);
    s_put_queued(j, "b1-old-done", 1);
    assert_int_equal(farm_journal_finish(j, "b1-old-done", 1, NULL, INDEX, 1, now - 61000), 0);
    s_put_queued(j, "b2-recent-done", 2);
    assert_int_equal(farm_journal_finish(j, "b2-recent-done", 0, "failed", NULL, 0, now - 59000), 0);
    s_put_queued(j, "b3-old-running", 3); /* unfinished: kept whatever its age */
    assert_int_equal(farm_journal_prune(j, &removed, now), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(farm_journal_get_build(j, &got, "b1-old-done"), FARM_ENOTFOUND);
    assert_int_equal(farm_journal_get_build(j, &got, "b2-recent-done"), 0);
    farm_journal_build_clear(&got);
    assert_int_equal(farm_journal_load_unfinished(j, &l), 0);
    assert_int_equal(l.n_builds, 1);
    assert_string_equal(l.builds[0].id, "b3-old-running");
    farm_journal_loaded_free(&l);
    assert_int_equal(farm_journal_prune(j, &removed, now + 2000), 0);
    assert_int_equal(removed, 1);
    /* the ids of pruned builds are still not handed out again */
    uint64_t seq;
    char id[FARM_ID_MAX + 1];
    assert_int_equal(farm_journal_next_build_id(j, id, sizeof id, &seq), 0);
    assert_int_equal(seq, 4);
    farm_journal_destroy(&j);
    /* their jobs and attempts went with them */
    assert_int_equal(s_sql_int("SELECT count(*) FROM jobs"), 2);
    assert_int_equal(s_sql_int("SELECT count(*) FROM jobs WHERE build_id != 'b3-old-running'"), 0);
    assert_int_equal(s_sql_int("SELECT count(*) FROM attempts WHERE build_id != 'b3-old-running'"), 0);
}

static void test_build_ids_unique_across_reopen(void **state)
{
    enum { N = 40 };
    char ids[3 * N][FARM_ID_MAX + 1];
    uint64_t seqs[3 * N];
    regex_t re;
    assert_int_equal(regcomp(&re, "^b[0-9]+-[0-9a-f]{32}$", REG_EXTENDED | REG_NOSUB), 0);

    for (int round = 0; round < 2; round++) {
        farm_journal_t *j = s_open();
        for (int i = 0; i < N; i++) {
            int k = round * N + i;
            assert_int_equal(farm_journal_next_build_id(j, ids[k], sizeof ids[k], &seqs[k]), 0);
            assert_int_equal(regexec(&re, ids[k], 0, NULL, 0), 0);
        }
        farm_journal_destroy(&j);
    }
    /* a coordinator killed right after taking ids */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        farm_journal_t *j = farm_journal_open(s_dir, NULL);
        char id[FARM_ID_MAX + 1];
        for (int i = 0; j && i < N; i++)
            if (farm_journal_next_build_id(j, id, sizeof id, NULL) < 0)
                _exit(2);
        raise(SIGKILL);
        _exit(3);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    farm_journal_t *j = s_open();
    for (int i = 0; i < N; i++) {
        int k = 2 * N + i;
        assert_int_equal(farm_journal_next_build_id(j, ids[k], sizeof ids[k], &seqs[k]), 0);
    }
    farm_journal_destroy(&j);
    for (int k = 1; k < 3 * N; k++)
        assert_true(seqs[k] > seqs[k - 1]);
    assert_int_equal(seqs[0], 1);
    assert_int_equal(seqs[2 * N], 3 * N + 1); /* after the killed process's N */
    for (int a = 0; a < 3 * N; a++)
        for (int b = a + 1; b < 3 * N; b++)
            assert_string_not_equal(ids[a], ids[b]);
    /* the number is the id's: b<seq>- */
    char want[32];
    snprintf(want, sizeof want, "b%llu-", (unsigned long long)seqs[5]);
    assert_int_equal(strncmp(ids[5], want, strlen(want)), 0);
    regfree(&re);
}

static void test_ceilings(void **state)
{
    farm_journal_t *j = s_open();
    farm_journal_build_t b;
    farm_journal_job_t job;
    farm_journal_loaded_t l;
    enum { BIG = FARM_BUILD_ARG_VALUE_MAX + FARM_JOURNAL_REASON_MAX };
    char *big = malloc(BIG + 1);
    char *tags[FARM_TAGS_MAX + 1];
    assert_non_null(big);
    memset(big, 'a', BIG);
    big[BIG] = 0;

    s_build(&b, "b1-x", 1);
    char *longtag[] = {big};
    b.tags = longtag;
    b.n_tags = 1;
    assert_int_equal(farm_journal_put_build(j, &b, NULL, 0), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "tags[0]"));
    assert_non_null(strstr(farm_error_last(), "b1-x"));

    s_build(&b, "b1-x", 1);
    for (int i = 0; i <= FARM_TAGS_MAX; i++)
        tags[i] = "r/a:1";
    b.tags = tags;
    b.n_tags = FARM_TAGS_MAX + 1;
    assert_int_equal(farm_journal_put_build(j, &b, NULL, 0), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "tags"));

    s_build(&b, "b1-x", 1);
    farm_kv_t arg = {"K", big};
    big[FARM_BUILD_ARG_VALUE_MAX + 1] = 0;
    b.args = &arg;
    b.n_args = 1;
    assert_int_equal(farm_journal_put_build(j, &b, NULL, 0), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "build args[0]"));
    big[FARM_BUILD_ARG_VALUE_MAX + 1] = 'a';
    big[FARM_JOURNAL_REASON_MAX + 1] = 0;

    s_build(&b, "b1-x", 1);
    b.reason = big;
    assert_int_equal(farm_journal_put_build(j, &b, NULL, 0), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "reason"));
    assert_int_equal(farm_journal_finish(j, "b1-x", 0, big, NULL, 0, 1), FARM_EINVALID);

    s_build(&b, "b1-x", 1);
    assert_int_equal(farm_journal_put_build(j, &b, NULL, 0), 0);
    s_job(&job, "b1-x", 1, s_plats[0]);
    job.state = FARM_JOURNAL_JOB_FAILED;
    job.error = big;
    assert_int_equal(farm_journal_put_job(j, &job), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "error"));
    /* exactly at the ceiling is fine */
    big[FARM_JOURNAL_REASON_MAX] = 0;
    assert_int_equal(farm_journal_put_job(j, &job), 0);

    /* nothing of the refused writes was stored */
    assert_int_equal(farm_journal_load_unfinished(j, &l), 0);
    assert_int_equal(l.n_builds, 1);
    assert_int_equal(l.builds[0].n_tags, 2);
    assert_int_equal(l.builds[0].n_args, 2);
    assert_null(l.builds[0].reason);
    farm_journal_loaded_free(&l);
    farm_journal_destroy(&j);

    /* a row over its ceiling in the file (changed by hand) is refused when read back */
    s_sql_exec("UPDATE builds SET owner='" /* 64 characters: one over FARM_NAME_MAX */
               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'");
    j = s_open();
    assert_int_equal(farm_journal_load_unfinished(j, &l), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "b1-x"));
    assert_non_null(strstr(farm_error_last(), "cannot be read back"));
    assert_int_equal(l.n_builds, 0);
    farm_journal_destroy(&j);
    free(big);
}

/* Every column the journal has, each with what it holds: a new column fails here until it
 * is added, so no one adds a place for a login or a secret without a reviewer seeing it. */
static const char *const s_columns[] = {
    "meta.key", "meta.value",
    "builds.id", "builds.seq", "builds.owner", "builds.registry", "builds.repository",
    "builds.tags", "builds.platforms", "builds.context_digest", "builds.context_size",
    "builds.options", /* JSON: dockerfile, args, target, no_cache, pull, labels, annotations,
                       * index_annotations, cache_from, cache_to (test_secrets_never_stored) */
    "builds.insecure", "builds.allow_partial", "builds.network_none", "builds.state",
    "builds.created", "builds.updated", "builds.done_at", "builds.ok", "builds.reason",
    "builds.index_digest", "builds.index_size", "builds.needs_submitter",
    "jobs.build_id", "jobs.id", "jobs.platform", "jobs.state", "jobs.attempt", "jobs.node",
    "jobs.queued_at", "jobs.started_at", "jobs.finished_at", "jobs.image_digest",
    "jobs.image_size", "jobs.image_media_type", "jobs.error",
    "attempts.build_id", "attempts.platform", "attempts.attempt", "attempts.node",
    "attempts.outcome", "attempts.started_at", "attempts.finished_at", "attempts.reason",
    "jobs.cache_hits", "jobs.steps", "builds.log_cut_lines", "builds.log_cut_bytes",
    /* build records: timed steps and the log (what RUN printed, never a login) */
    "steps.build_id", "steps.platform", "steps.n", "steps.number", "steps.text", "steps.ms",
    "steps.cached", "logs.build_id", "logs.n", "logs.platform", "logs.node", "logs.line", "logs.head",
    "logs.bytes",
    /* a tag's name and the build that last took it: no login */
    "tags.registry", "tags.repository", "tags.tag", "tags.seq", "tags.build_id", "tags.at",
};

static void test_schema_has_no_secret_column(void **state)
{
    static const char *const forbidden[] = {"secret", "password", "passwd", "token", "cred",
                                            "login", "user", "auth", "key_"};
    sqlite3 *db = NULL;
    sqlite3_stmt *t = NULL, *c = NULL;
    size_t seen = 0;

    farm_journal_t *j = s_open();
    farm_journal_destroy(&j);
    assert_int_equal(sqlite3_open_v2(s_db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT name FROM sqlite_schema WHERE type='table'",
                                        -1, &t, NULL), SQLITE_OK);
    while (sqlite3_step(t) == SQLITE_ROW) {
        char table[64], sql[128];
        snprintf(table, sizeof table, "%s", (const char *)sqlite3_column_text(t, 0));
        snprintf(sql, sizeof sql, "SELECT name FROM pragma_table_info('%s')", table);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &c, NULL), SQLITE_OK);
        while (sqlite3_step(c) == SQLITE_ROW) {
            char col[160];
            int known = 0;
            snprintf(col, sizeof col, "%s.%s", table, (const char *)sqlite3_column_text(c, 0));
            for (size_t f = 0; f < sizeof forbidden / sizeof *forbidden; f++)
                if (strcasestr(col, forbidden[f]))
                    fail_msg("journal column %s could hold a login or secret", col);
            for (size_t k = 0; k < sizeof s_columns / sizeof *s_columns; k++)
                known |= strcmp(col, s_columns[k]) == 0;
            if (!known)
                fail_msg("journal column %s is not in this test's list of what each column "
                         "holds: add it there once it is sure to hold no login or secret", col);
            seen++;
        }
        sqlite3_finalize(c);
    }
    sqlite3_finalize(t);
    sqlite3_close(db);
    assert_int_equal(seen, sizeof s_columns / sizeof *s_columns);
}

/* Reads path whole; NULL (and *len 0) when it does not exist. */
static char *s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    *len = 0;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n)
        *len = (size_t)n;
    fclose(f);
    return buf;
}

/* Counts the files among journal.db, -wal and -shm that contain needle. */
static int s_grep(const char *needle)
{
    static const char *const sfx[] = {"", "-wal", "-shm"};
    int found = 0;
    for (size_t i = 0; i < 3; i++) {
        char path[300];
        size_t len;
        snprintf(path, sizeof path, "%s%s", s_db, sfx[i]);
        char *data = s_slurp(path, &len);
        if (data && memmem(data, len, needle, strlen(needle)))
            found++;
        free(data);
    }
    return found;
}

/* A build as the coordinator holds it, with the submitter's registry login and a build
 * secret in memory, goes through the journal: neither reaches its files, while the
 * options beside them do (so the search would find them). */
static void test_secrets_never_stored(void **state)
{
    static const char *const secrets[] = {"LOGIN-USER-7f3a9c", "LOGIN-PASSWORD-2b8e41",
                                          "BUILD-SECRET-VALUE-c0ffee", "SECRET-ID-npmrc-91"};
    farm_build_t b;
    farm_job_t jobs[2];
    farm_cred_t cred = {.registry = "registry.example:5000", .username = "LOGIN-USER-7f3a9c",
                        .secret = "LOGIN-PASSWORD-2b8e41"};
    farm_secret_t secret = {.id = "SECRET-ID-npmrc-91", .value = "BUILD-SECRET-VALUE-c0ffee",
                            .len = strlen("BUILD-SECRET-VALUE-c0ffee")};
    farm_kv_t label = {"LABEL-KEY-visible", "LABEL-VALUE-visible-5e5e"};
    char *tags[] = {"registry.example:5000/app:1"};

    memset(&b, 0, sizeof b);
    memset(jobs, 0, sizeof jobs);
    snprintf(b.id, sizeof b.id, "b5-5555aaaa5555aaaa5555aaaa5555aaaa");
    snprintf(b.owner, sizeof b.owner, "alice");
    snprintf(b.registry, sizeof b.registry, "registry.example:5000");
    snprintf(b.repository, sizeof b.repository, "app");
    snprintf(b.context_digest, sizeof b.context_digest, DIGEST);
    b.tags = tags;
    b.n_tags = 1;
    b.creds = &cred;
    b.n_creds = 1;
    b.flags.secrets = &secret;
    b.flags.n_secrets = 1;
    b.flags.labels = &label;
    b.flags.n_labels = 1;
    b.jobs = jobs;
    b.n_jobs = 2;
    b.state = FARM_BUILD_RUNNING;
    for (int i = 0; i < 2; i++) {
        jobs[i].build = &b;
        snprintf(jobs[i].id, sizeof jobs[i].id, "%.48s.%d", b.id, i + 1);
        snprintf(jobs[i].platform, sizeof jobs[i].platform, "%s", s_plats[i]);
        jobs[i].state = FARM_JOB_QUEUED;
    }

    farm_journal_t *j = s_open();
    farm_journal_build_t rec;
    farm_journal_job_t jrec[2];
    char *plats[FARM_PLATFORMS_MAX];
    assert_int_equal(farm_journal_build_from(&rec, plats, &b, 5), 0);
    assert_int_equal(rec.needs_submitter, 1);
    assert_int_equal(rec.n_platforms, 2);
    farm_journal_job_from(&jrec[0], &jobs[0]);
    farm_journal_job_from(&jrec[1], &jobs[1]);
    assert_int_equal(farm_journal_put_build(j, &rec, jrec, 2), 0);
    jobs[0].state = FARM_JOB_RUNNING;
    jobs[0].attempt = 1;
    snprintf(jobs[0].node_name, sizeof jobs[0].node_name, "x86-1");
    farm_journal_job_from(&jrec[0], &jobs[0]);
    assert_int_equal(farm_journal_put_job(j, &jrec[0]), 0);

    /* while it is open (the WAL holds the commits) ... */
    assert_true(s_grep("LABEL-VALUE-visible-5e5e") > 0);
    for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++)
        if (s_grep(secrets[i]))
            fail_msg("%s reached the journal's files", secrets[i]);
    assert_int_equal(farm_journal_finish(j, b.id, 1, NULL, INDEX, 1, 1700000000000LL), 0);
    farm_journal_destroy(&j);
    /* ... and after it was checkpointed and closed */
    assert_true(s_grep("LABEL-VALUE-visible-5e5e") > 0);
    for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++)
        if (s_grep(secrets[i]))
            fail_msg("%s reached the journal's files", secrets[i]);
    /* and the in-memory build still has them (the journal took nothing away) */
    assert_string_equal(b.flags.secrets[0].value, "BUILD-SECRET-VALUE-c0ffee");
    assert_int_equal(b.flags.n_secrets, 1);

    /* read back, the build has no secrets */
    j = s_open();
    farm_journal_build_t got;
    assert_int_equal(farm_journal_get_build(j, &got, b.id), 0);
    assert_int_equal(got.flags.n_secrets, 0);
    assert_null(got.flags.secrets);
    assert_string_equal(got.flags.labels[0].value, "LABEL-VALUE-visible-5e5e");
    farm_journal_build_clear(&got);
    farm_journal_destroy(&j);
}

static void s_tag(farm_journal_tag_t *t, const char *tag, uint64_t seq, const char *id)
{
    memset(t, 0, sizeof *t);
    snprintf(t->registry, sizeof t->registry, "registry.example:5000");
    snprintf(t->repository, sizeof t->repository, "team/app");
    snprintf(t->tag, sizeof t->tag, "%s", tag);
    t->seq = seq;
    snprintf(t->build_id, sizeof t->build_id, "%s", id);
    t->at = 1700000000000LL + (long long)seq;
}

/* A tag's build: written, replaced, read back after a reopen, kept when its build is
 * pruned, and one tag is not another (registry, repository and tag all count). */
static void test_tags_round_trip(void **state)
{
    farm_journal_opts_t o = {.retention_ms = 1000};
    farm_journal_t *j = farm_journal_open(s_dir, &o);
    farm_journal_tag_t t, got;

    assert_non_null(j);
    assert_int_equal(farm_journal_get_tag(j, &got, "registry.example:5000", "team/app", "1.0"),
                     FARM_ENOTFOUND);
    assert_non_null(strstr(farm_error_last(), "no record of tag"));
    s_put_queued(j, "b5-five", 5);
    s_tag(&t, "1.0", 5, "b5-five");
    assert_int_equal(farm_journal_put_tag(j, &t), 0);
    s_tag(&t, "latest", 5, "b5-five");
    assert_int_equal(farm_journal_put_tag(j, &t), 0);
    s_tag(&t, "1.0", 7, "b7-seven");
    assert_int_equal(farm_journal_put_tag(j, &t), 0);
    assert_int_equal(farm_journal_finish(j, "b5-five", 1, NULL, INDEX, 1, 1700000000000LL), 0);
    assert_int_equal(farm_journal_prune(j, NULL, 1800000000000LL), 0);
    farm_journal_destroy(&j);

    j = s_open();
    assert_int_equal(farm_journal_get_build(j, &(farm_journal_build_t){0}, "b5-five"),
                     FARM_ENOTFOUND);
    assert_int_equal(farm_journal_get_tag(j, &got, "registry.example:5000", "team/app", "1.0"),
                     0);
    assert_int_equal(got.seq, 7);
    assert_string_equal(got.build_id, "b7-seven");
    assert_string_equal(got.tag, "1.0");
    assert_int_equal(got.at, 1700000000007LL);
    assert_int_equal(farm_journal_get_tag(j, &got, "registry.example:5000", "team/app",
                                          "latest"), 0);
    assert_int_equal(got.seq, 5);
    assert_string_equal(got.build_id, "b5-five");
    assert_int_equal(farm_journal_get_tag(j, &got, "registry.example:5000", "team/other", "1.0"),
                     FARM_ENOTFOUND);
    assert_int_equal(farm_journal_get_tag(j, &got, "other.example", "team/app", "1.0"),
                     FARM_ENOTFOUND);
    /* ceilings and empty fields are the front's, naming what was wrong */
    char longtag[FARM_JOURNAL_TAG_MAX + 2];
    memset(longtag, 'x', sizeof longtag - 1);
    longtag[sizeof longtag - 1] = 0;
    assert_int_equal(farm_journal_get_tag(j, &got, "registry.example:5000", "team/app", longtag),
                     FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "longer than 128 bytes"));
    s_tag(&t, "", 9, "b9-nine");
    assert_int_equal(farm_journal_put_tag(j, &t), FARM_EINVALID);
    s_tag(&t, "2.0", 9, "");
    assert_int_equal(farm_journal_put_tag(j, &t), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "has no build id"));
    farm_journal_destroy(&j);
    assert_int_equal(s_sql_int("SELECT count(*) FROM tags"), 2);
}

/* A schema-2 journal (before tags) opens: its builds stay, the tags table is added, and
 * tags are kept from then on. */
/* Schema 4's additions taken back: the file a schema-3 coordinator left. */
#define S_UNDO_V4                                                                          \
    "DROP TABLE logs; DROP TABLE steps; ALTER TABLE attempts DROP COLUMN reason;"          \
    "ALTER TABLE jobs DROP COLUMN cache_hits; ALTER TABLE jobs DROP COLUMN steps;"         \
    "ALTER TABLE builds DROP COLUMN log_cut_lines; ALTER TABLE builds DROP COLUMN"         \
    " log_cut_bytes;"

static void test_migrates_version_2(void **state)
{
    farm_journal_t *j = s_open();
    farm_journal_tag_t t, got;
    farm_journal_loaded_t l;

    s_put_queued(j, "b3-three", 3);
    farm_journal_destroy(&j);
    /* what a schema-2 coordinator left: no tags table, no build records, user_version 2 */
    s_sql_exec(S_UNDO_V4 "DROP TABLE tags; PRAGMA user_version=2;");
    assert_int_equal(s_sql_int("SELECT count(*) FROM sqlite_schema WHERE name='tags'"), 0);

    j = s_open();
    assert_int_equal(farm_journal_load_unfinished(j, &l), 0);
    assert_int_equal(l.n_builds, 1);
    assert_string_equal(l.builds[0].id, "b3-three");
    farm_journal_loaded_free(&l);
    assert_int_equal(farm_journal_get_tag(j, &got, "registry.example:5000", "team/app", "1.0"),
                     FARM_ENOTFOUND);
    s_tag(&t, "1.0", 3, "b3-three");
    assert_int_equal(farm_journal_put_tag(j, &t), 0);
    farm_journal_destroy(&j);
    j = s_open();
    assert_int_equal(farm_journal_get_tag(j, &got, "registry.example:5000", "team/app", "1.0"),
                     0);
    assert_string_equal(got.build_id, "b3-three");
    farm_journal_destroy(&j);
    assert_int_equal(s_sql_int("PRAGMA user_version"), FARM_JOURNAL_SCHEMA);
    assert_int_equal(s_sql_int("SELECT count(*) FROM tags"), 1);
}


/* ------------------------------------------------------------------ build records */

/* A record holds each attempt and why it ended (lost: the requeue's reason, on the
 * attempt that ran, not the one the coordinator numbered next), a job's cache counts and
 * its timed steps, and reads back whole after a reopen. */
static void test_record_attempts_steps(void **state)
{
    farm_journal_t *j = s_open();
    farm_journal_job_t job;
    farm_journal_record_t r;
    farm_journal_step_t steps[3] = {{"", 1, "FROM alpine", 120, 1},
                                    {"", 2, "RUN make", 4500, 0},
                                    {"", 3, "COPY . /app", 30, 0}};
    const char *id = "b5-0123456789abcdef0123456789abcdef";

    s_put_queued(j, id, 5);
    s_job(&job, id, 1, s_plats[0]);
    job.state = FARM_JOURNAL_JOB_RUNNING;
    job.attempt = 1;
    job.started_at = 1700000001000LL;
    snprintf(job.node, sizeof job.node, "x86-1");
    assert_int_equal(farm_journal_put_job(j, &job), 0);
    /* as the scheduler does it: attempt numbered 2, then requeued with the reason */
    job.state = FARM_JOURNAL_JOB_QUEUED;
    job.attempt = 2;
    job.queued_at = 1700000002000LL;
    job.reason = "node x86-1 lost (no heartbeat for 3 s)";
    assert_int_equal(farm_journal_put_job(j, &job), 0);
    job.reason = NULL;
    job.state = FARM_JOURNAL_JOB_DONE;
    snprintf(job.node, sizeof job.node, "x86-2");
    job.started_at = 1700000003000LL;
    job.finished_at = 1700000009000LL;
    job.cache_hits = 1;
    job.steps = 3;
    snprintf(job.image_digest, sizeof job.image_digest, IMAGE);
    snprintf(job.image_media_type, sizeof job.image_media_type,
             "application/vnd.oci.image.manifest.v1+json");
    assert_int_equal(farm_journal_put_job(j, &job), 0);
    assert_int_equal(farm_journal_put_steps(j, id, s_plats[0], steps, 3), 0);
    assert_int_equal(farm_journal_finish(j, id, 0, "cancelled by farmctl", NULL, 0,
                                         1700000010000LL), 0);
    farm_journal_destroy(&j);

    j = s_open();
    assert_int_equal(farm_journal_get_record(j, &r, id), 0);
    assert_string_equal(r.build.id, id);
    assert_string_equal(r.build.owner, "alice");
    assert_string_equal(r.build.dockerfile, "docker/Dockerfile.prod");
    assert_int_equal(r.n_jobs, 2);
    assert_int_equal(r.jobs[0].cache_hits, 1);
    assert_int_equal(r.jobs[0].steps, 3);
    assert_int_equal(r.n_attempts, 2); /* no phantom attempt 2 "lost" */
    assert_int_equal(r.attempts[0].attempt, 1);
    assert_string_equal(r.attempts[0].outcome, "lost");
    assert_string_equal(r.attempts[0].node, "x86-1");
    assert_string_equal(r.attempts[0].reason, "node x86-1 lost (no heartbeat for 3 s)");
    assert_int_equal(r.attempts[0].finished_at, 1700000002000LL);
    assert_int_equal(r.attempts[1].attempt, 2);
    assert_string_equal(r.attempts[1].outcome, "done");
    assert_string_equal(r.attempts[1].node, "x86-2");
    assert_int_equal(r.n_steps, 3);
    assert_string_equal(r.steps[1].text, "RUN make");
    assert_int_equal(r.steps[1].ms, 4500);
    assert_true(r.steps[0].cached);
    assert_false(r.steps[1].cached);
    assert_string_equal(r.steps[2].platform, s_plats[0]);
    farm_journal_record_clear(&r);
    assert_int_equal(farm_journal_get_record(j, &r, "b9-none"), FARM_ENOTFOUND);
    farm_journal_destroy(&j);
}

/* The log keeps its first half and its last within history.log_limit and says what it cut
 * between them, counted exactly; the state survives a reopen. */
static void test_log_bound(void **state)
{
    /* each line costs its text, its newline and 64 bytes for its row: 74 here */
    farm_journal_opts_t o = {.log_limit = 7400};
    farm_journal_t *j;
    farm_journal_line_t *lines = NULL;
    size_t n = 0;
    char line[64];
    const char *id = "b6-0123456789abcdef0123456789abcdef";
    uint64_t cut_bytes = 0;

    j = farm_journal_open(s_dir, &o);
    assert_non_null(j);
    s_put_queued(j, id, 6);
    /* 100 lines of 10 bytes with their newline ("line 000N\n" stored as 9 + 1) */
    for (int i = 0; i < 60; i++) {
        snprintf(line, sizeof line, "line %04d", i);
        assert_int_equal(farm_journal_put_line(j, id, i % 2 ? s_plats[1] : s_plats[0], "x86-1", line), 0);
    }
    farm_journal_destroy(&j); /* a restart mid-log */
    j = farm_journal_open(s_dir, &o);
    for (int i = 60; i < 100; i++) {
        snprintf(line, sizeof line, "line %04d", i);
        assert_int_equal(farm_journal_put_line(j, id, i % 2 ? s_plats[1] : s_plats[0], "x86-1", line), 0);
    }
    assert_int_equal(farm_journal_get_lines(j, &lines, &n, id, NULL), 0);
    /* 50 in the first half (3,700 bytes of cost), 50 in the last, 0 cut: exactly the bound */
    assert_int_equal(n, 100);
    farm_journal_lines_free(lines, n);
    for (int i = 100; i < 130; i++) {
        snprintf(line, sizeof line, "line %04d", i);
        assert_int_equal(farm_journal_put_line(j, id, i % 2 ? s_plats[1] : s_plats[0], "x86-1", line), 0);
        cut_bytes += 10;
    }
    assert_int_equal(farm_journal_get_lines(j, &lines, &n, id, NULL), 0);
    assert_int_equal(n, 101); /* 50 + the cut line + 50 */
    assert_string_equal(lines[0].line, "line 0000");
    assert_string_equal(lines[0].node, "x86-1");
    assert_string_equal(lines[49].line, "line 0049");
    assert_string_equal(lines[50].platform, "");
    assert_non_null(strstr(lines[50].line, "... 30 lines (300 bytes) cut"));
    assert_string_equal(lines[51].line, "line 0080");
    assert_string_equal(lines[100].line, "line 0129");
    farm_journal_lines_free(lines, n);
    assert_int_equal(cut_bytes, 300);
    /* one platform's lines, the cut said where it was */
    assert_int_equal(farm_journal_get_lines(j, &lines, &n, id, s_plats[1]), 0);
    assert_int_equal(n, 51);
    assert_string_equal(lines[0].line, "line 0001");
    assert_non_null(strstr(lines[25].line, "30 lines"));
    assert_string_equal(lines[26].line, "line 0081");
    farm_journal_lines_free(lines, n);
    assert_int_equal(farm_journal_get_lines(j, &lines, &n, "b7-none", NULL), FARM_ENOTFOUND);
    assert_int_equal(farm_journal_put_line(j, "b7-none", s_plats[0], "x86-1", "x"), FARM_ENOTFOUND);
    farm_journal_destroy(&j);
    assert_int_equal(s_sql_int("SELECT sum(bytes) FROM logs"), 7400);
    /* what the cut line says is the text's bytes, not the rows' cost */
    assert_int_equal(s_sql_int("SELECT log_cut_bytes FROM builds"), 300);

    /* a flood of empty lines (a RUN step's `yes ''`) is bounded as well: each costs 65 */
    const char *id2 = "b8-0123456789abcdef0123456789abcdef";
    j = farm_journal_open(s_dir, &o);
    s_put_queued(j, id2, 8);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(farm_journal_put_line(j, id2, s_plats[0], "x86-1", ""), 0);
    farm_journal_destroy(&j);
    assert_true(s_sql_int("SELECT count(*) FROM logs WHERE build_id='b8-0123456789abcdef0123456789abcdef'") <= 7400 / 65);
    assert_int_equal(s_sql_int("SELECT log_cut_bytes FROM builds WHERE id='b8-0123456789abcdef0123456789abcdef'"),
                     5000 - 7400 / 65);
}

/* Finished builds beyond history.max_builds go, oldest first, when another finishes;
 * running ones stay whatever their number. */
static void test_retention_by_count(void **state)
{
    farm_journal_opts_t o = {.max_builds = 3};
    farm_journal_t *j = farm_journal_open(s_dir, &o);
    farm_journal_build_t *bs = NULL;
    farm_journal_filter_t f = {0};
    size_t n = 0;
    char id[64];

    assert_non_null(j);
    s_put_queued(j, "b1-running", 1);
    for (int i = 2; i <= 7; i++) {
        snprintf(id, sizeof id, "b%d-done", i);
        s_put_queued(j, id, (uint64_t)i);
        assert_int_equal(farm_journal_put_line(j, id, s_plats[0], "x86-1", "hello"), 0);
        assert_int_equal(farm_journal_finish(j, id, i % 2, i % 2 ? NULL : "failed: RUN false",
                                             i % 2 ? INDEX : NULL, 0, 1700000000000LL + i), 0);
    }
    assert_int_equal(farm_journal_list(j, &bs, &n, NULL), 0);
    assert_int_equal(n, 4);
    assert_string_equal(bs[0].id, "b7-done"); /* newest first */
    assert_string_equal(bs[2].id, "b5-done");
    assert_string_equal(bs[3].id, "b1-running");
    farm_journal_builds_free(bs, n);
    f.status = "failed";
    assert_int_equal(farm_journal_list(j, &bs, &n, &f), 0);
    assert_int_equal(n, 1);
    assert_string_equal(bs[0].id, "b6-done");
    farm_journal_builds_free(bs, n);
    f.status_not = 1;
    f.limit = 1;
    f.offset = 1;
    assert_int_equal(farm_journal_list(j, &bs, &n, &f), 0);
    assert_int_equal(n, 1);
    assert_string_equal(bs[0].id, "b5-done");
    farm_journal_builds_free(bs, n);
    memset(&f, 0, sizeof f);
    f.owner = "bob";
    assert_int_equal(farm_journal_list(j, &bs, &n, &f), 0);
    assert_int_equal(n, 0);
    farm_journal_builds_free(bs, n);
    f.owner = NULL;
    f.repository = "registry.example:5000/app";
    f.since = 1700000000000LL;
    assert_int_equal(farm_journal_list(j, &bs, &n, &f), 0);
    assert_int_equal(n, 4);
    farm_journal_builds_free(bs, n);
    farm_journal_destroy(&j);
    assert_int_equal(s_sql_int("SELECT count(*) FROM logs"), 3); /* theirs went with them */
}

/* The vtable is the only way in: a backend of the test's own sees every call. */
typedef struct {
    int puts, jobs, finishes, loads, prunes, seqs, closed;
    long long prune_before;
    uint64_t seq;
} fake_t;

static int f_put_build(void *i, const farm_journal_build_t *b, const farm_journal_job_t *j,
                       size_t n) { ((fake_t *)i)->puts++; return 0; }
static int f_put_job(void *i, const farm_journal_job_t *j) { ((fake_t *)i)->jobs++; return 0; }
static int f_finish(void *i, const char *id, int ok, const char *r, const char *d, uint64_t s,
                    long long at) { ((fake_t *)i)->finishes++; return 0; }
static int f_load(void *i, farm_journal_loaded_t *out)
{
    memset(out, 0, sizeof *out);
    ((fake_t *)i)->loads++;
    return 0;
}
static int f_get(void *i, farm_journal_build_t *out, const char *id)
{
    memset(out, 0, sizeof *out);
    return FARM_ENOTFOUND;
}
static int f_prune(void *i, size_t *n, long long before)
{
    ((fake_t *)i)->prunes++;
    ((fake_t *)i)->prune_before = before;
    *n = 0;
    return 0;
}
static int f_seq(void *i, uint64_t *out) { *out = ++((fake_t *)i)->seq; ((fake_t *)i)->seqs++; return 0; }
static void f_close(void *i) { ((fake_t *)i)->closed++; }

static void test_other_backend(void **state)
{
    /* a backend written before schema 3: no tag ops */
    static const farm_journal_ops_t ops = {"fake", f_put_build, f_put_job, f_finish, f_load,
                                           f_get, f_prune, f_seq, NULL, NULL, NULL, f_close,
                                           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    fake_t f = {.seq = 100};
    farm_journal_opts_t o = {.retention_ms = 5000};
    farm_journal_t *j = farm_journal_new(&ops, &f, &o);
    farm_journal_build_t b;
    farm_journal_loaded_t l;
    char id[FARM_ID_MAX + 1];

    assert_non_null(j);
    assert_string_equal(farm_journal_path(j), "");
    s_build(&b, "b1-x", 1);
    assert_int_equal(farm_journal_put_build(j, &b, NULL, 0), 0);
    /* the checks are the front's, whatever the backend */
    b.n_tags = FARM_TAGS_MAX + 1;
    assert_int_equal(farm_journal_put_build(j, &b, NULL, 0), FARM_EINVALID);
    assert_int_equal(farm_journal_load_unfinished(j, &l), 0);
    assert_int_equal(farm_journal_prune(j, NULL, 100000), 0);
    assert_int_equal(f.prune_before, 95000);
    assert_int_equal(farm_journal_next_build_id(j, id, sizeof id, NULL), 0);
    assert_int_equal(strncmp(id, "b101-", 5), 0);
    /* it keeps no tags: said, not a crash */
    farm_journal_tag_t t = {.registry = "r", .repository = "a", .tag = "1", .seq = 1,
                            .build_id = "b1-x"};
    assert_int_equal(farm_journal_put_tag(j, &t), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "journal backend fake keeps no tags"));
    assert_int_equal(farm_journal_get_tag(j, &t, "r", "a", "1"), FARM_EINVALID);
    farm_journal_destroy(&j);
    assert_int_equal(f.puts, 1);
    assert_int_equal(f.loads, 1);
    assert_int_equal(f.prunes, 1);
    assert_int_equal(f.closed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_failure_and_lost_attempt, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_crash_between_write_and_act, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_batch_commit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_migrates_version_1, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_or_foreign_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unsafe_files_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_second_coordinator_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_prune, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_build_ids_unique_across_reopen, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ceilings, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_schema_has_no_secret_column, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_secrets_never_stored, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_other_backend, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_tags_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_migrates_version_2, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_record_attempts_steps, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_log_bound, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_count, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
