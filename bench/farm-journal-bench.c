/* SPDX-License-Identifier: Apache-2.0 */
/* The coordinator journal's cost, on the disk of --dir (default: a new directory under
 * /var/tmp): journal writes per second for a typical build's events (a build id, the
 * accepted build with two queued jobs, each job dispatched and then pushed, stitching,
 * done: 8 transactions, each synced), and the start-up cost with --unfinished jobs not
 * finished (open + load). Prints KEY=VALUE figures; a benchmark, not a test.
 *
 * With --records N: fills DIR/state with N finished builds' records (two platforms, five
 * timed steps each, --log-lines lines of log) in batches as the coordinator commits them,
 * and times history's reads (the newest 100, one record, one log); a coordinator started
 * on DIR/state then serves them (bench/history-rss.sh reads its RSS).
 *
 * usage: farm-journal-bench [--dir DIR] [--builds N] [--unfinished JOBS] [--loads N]
 *                           [--records N [--log-lines L]] */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/fs.h"
#include "coordinator/journal.h"

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char *s_tags[] = {"registry.example:5000/team/app:1.4.2",
                         "registry.example:5000/team/app:latest"};
static char *s_plats[] = {"linux/amd64", "linux/arm64/v8"};
static farm_kv_t s_args[] = {{"VERSION", "1.4.2"}};
static farm_kv_t s_labels[] = {{"org.opencontainers.image.source", "https://example/app"}};

static void s_records(farm_journal_build_t *b, farm_journal_job_t jobs[2], const char *id,
                      uint64_t seq, long long now)
{
    memset(b, 0, sizeof *b);
    snprintf(b->id, sizeof b->id, "%s", id);
    b->seq = seq;
    snprintf(b->owner, sizeof b->owner, "ci-runner-3");
    snprintf(b->registry, sizeof b->registry, "registry.example:5000");
    snprintf(b->repository, sizeof b->repository, "team/app");
    b->tags = s_tags;
    b->n_tags = 2;
    b->platforms = s_plats;
    b->n_platforms = 2;
    snprintf(b->context_digest, sizeof b->context_digest,
             "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    b->context_size = 1 << 20;
    b->args = s_args;
    b->n_args = 1;
    b->flags.labels = s_labels;
    b->flags.n_labels = 1;
    b->needs_submitter = 1;
    b->state = FARM_JOURNAL_BUILD_RUNNING;
    b->created = b->updated = now;
    for (int i = 0; i < 2; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        snprintf(jobs[i].build_id, sizeof jobs[i].build_id, "%s", id);
        snprintf(jobs[i].id, sizeof jobs[i].id, "%.48s.%d", id, i + 1);
        snprintf(jobs[i].platform, sizeof jobs[i].platform, "%s", s_plats[i]);
        jobs[i].state = FARM_JOURNAL_JOB_QUEUED;
        jobs[i].queued_at = now;
    }
}

/* One build's life, as the coordinator would journal it: 8 transactions. */
static int s_one_build(farm_journal_t *j, double *lat, size_t *n_lat, long long now)
{
    farm_journal_build_t b;
    farm_journal_job_t jobs[2];
    char id[FARM_ID_MAX + 1];
    uint64_t seq;
    double t = s_now();
#define STEP(call)                                                                           \
    do {                                                                                     \
        if ((call) < 0)                                                                      \
            return -1;                                                                       \
        double t2 = s_now();                                                                 \
        lat[(*n_lat)++] = t2 - t;                                                            \
        t = t2;                                                                              \
    } while (0)
    STEP(farm_journal_next_build_id(j, id, sizeof id, &seq));
    s_records(&b, jobs, id, seq, now);
    STEP(farm_journal_put_build(j, &b, jobs, 2));
    for (int i = 0; i < 2; i++) {
        jobs[i].state = FARM_JOURNAL_JOB_RUNNING;
        jobs[i].attempt = 1;
        snprintf(jobs[i].node, sizeof jobs[i].node, "node-%d", i);
        jobs[i].started_at = now;
        STEP(farm_journal_put_job(j, &jobs[i]));
    }
    for (int i = 0; i < 2; i++) {
        jobs[i].state = FARM_JOURNAL_JOB_DONE;
        snprintf(jobs[i].image_digest, sizeof jobs[i].image_digest,
                 "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210");
        snprintf(jobs[i].image_media_type, sizeof jobs[i].image_media_type,
                 "application/vnd.oci.image.manifest.v1+json");
        jobs[i].image_size = 1234;
        jobs[i].finished_at = now;
        STEP(farm_journal_put_job(j, &jobs[i]));
    }
    b.state = FARM_JOURNAL_BUILD_STITCHING;
    STEP(farm_journal_put_build(j, &b, NULL, 0));
    STEP(farm_journal_finish(j, id, 1, NULL,
                             "sha256:aaaabbbbccccddddaaaabbbbccccddddaaaabbbbccccddddaaaabbbbccccdddd",
                             700, now));
#undef STEP
    return 0;
}

/* N finished builds with their records, then history's reads timed. */
static int s_records_mode(const char *dir, long n, long log_lines)
{
    char sub[FARM_PATH_MAX], id[FARM_ID_MAX + 1], first[FARM_ID_MAX + 1] = "", line[160];
    farm_journal_opts_t o = {.max_builds = (size_t)n};
    farm_journal_t *j;
    long long now = (long long)time(NULL) * 1000;
    static const char *const texts[] = {"FROM scratch", "COPY busybox /bin/busybox",
                                        "RUN busybox --install -s /bin", "RUN make",
                                        "LABEL a=b"};
    double t0;

    if (farm_path_join(sub, sizeof sub, dir, "state") < 0 || farm_fs_mkdirs(sub) < 0 ||
        !(j = farm_journal_open(sub, &o)))
        return -1;
    farm_journal_set_batch(j, 1);
    t0 = s_now();
    for (long i = 0; i < n; i++) {
        farm_journal_build_t b;
        farm_journal_job_t jobs[2];
        farm_journal_step_t steps[5];
        uint64_t seq;
        if (farm_journal_next_build_id(j, id, sizeof id, &seq) < 0)
            return -1;
        if (!first[0])
            snprintf(first, sizeof first, "%s", id);
        s_records(&b, jobs, id, seq, now - (n - i) * 1000);
        if (farm_journal_put_build(j, &b, jobs, 2) < 0)
            return -1;
        for (int k = 0; k < 2; k++) {
            jobs[k].state = FARM_JOURNAL_JOB_DONE;
            jobs[k].attempt = 1;
            snprintf(jobs[k].node, sizeof jobs[k].node, "node-%ld", i % 50);
            snprintf(jobs[k].image_digest, sizeof jobs[k].image_digest,
                     "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210");
            snprintf(jobs[k].image_media_type, sizeof jobs[k].image_media_type,
                     "application/vnd.oci.image.manifest.v1+json");
            jobs[k].cache_hits = 2;
            jobs[k].steps = 5;
            for (int t = 0; t < 5; t++)
                steps[t] = (farm_journal_step_t){"", (unsigned)t + 1, (char *)texts[t],
                                                 100 * (uint64_t)t, t < 2};
            for (long l = 0; l < log_lines / 2; l++) {
                snprintf(line, sizeof line, "#%ld 0.%03ld compiling module %ld of the app, "
                         "warnings: none", l, l % 1000, l);
                if (farm_journal_put_line(j, id, jobs[k].platform, jobs[k].node, line) < 0)
                    return -1;
            }
            if (farm_journal_put_job(j, &jobs[k]) < 0 ||
                farm_journal_put_steps(j, id, jobs[k].platform, steps, 5) < 0)
                return -1;
        }
        if (farm_journal_finish(j, id, 1, NULL, "sha256:aaaabbbbccccddddaaaabbbbccccddddaaaabbbb"
                                "ccccddddaaaabbbbccccdddd", 700, now) < 0)
            return -1;
        if (i % 100 == 99 && farm_journal_commit(j) < 0)
            return -1;
    }
    if (farm_journal_commit(j) < 0)
        return -1;
    printf("HISTORY_RECORDS=%ld\nHISTORY_LOG_LINES_PER_BUILD=%ld\nHISTORY_FILL_S=%.1f\n", n,
           log_lines, s_now() - t0);
    {
        farm_journal_build_t *bs = NULL;
        farm_journal_filter_t f = {.limit = 100};
        farm_journal_record_t r;
        farm_journal_line_t *lines = NULL;
        size_t nb = 0, nl = 0;
        t0 = s_now();
        if (farm_journal_list(j, &bs, &nb, &f) < 0)
            return -1;
        printf("HISTORY_LIST_100_MS=%.2f\n", (s_now() - t0) * 1e3);
        farm_journal_builds_free(bs, nb);
        f.status = "failed"; /* none: the whole table scanned */
        t0 = s_now();
        if (farm_journal_list(j, &bs, &nb, &f) < 0)
            return -1;
        printf("HISTORY_LIST_FILTER_MISS_MS=%.2f\n", (s_now() - t0) * 1e3);
        farm_journal_builds_free(bs, nb);
        t0 = s_now();
        if (farm_journal_get_record(j, &r, first) < 0)
            return -1;
        printf("HISTORY_RECORD_MS=%.2f\n", (s_now() - t0) * 1e3);
        farm_journal_record_clear(&r);
        t0 = s_now();
        if (farm_journal_get_lines(j, &lines, &nl, first, NULL) < 0)
            return -1;
        printf("HISTORY_LOG_MS=%.2f\nHISTORY_LOG_LINES=%zu\n", (s_now() - t0) * 1e3, nl);
        farm_journal_lines_free(lines, nl);
    }
    farm_journal_destroy(&j);
    printf("HISTORY_STATE_DIR=%s\n", sub);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    long builds = 200, unfinished = 10000, loads = 5, records = 0, log_lines = 100;
    char tmp[] = "/var/tmp/farm-journal-bench-XXXXXX", sub[FARM_PATH_MAX];
    farm_journal_t *j = NULL;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--dir") == 0)
            dir = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--builds") == 0)
            builds = strtol(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--unfinished") == 0)
            unfinished = strtol(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--loads") == 0)
            loads = strtol(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--records") == 0)
            records = strtol(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--log-lines") == 0)
            log_lines = strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--dir DIR] [--builds N] [--unfinished JOBS] "
                            "[--loads N] [--records N [--log-lines L]]\n", argv[0]);
            return 2;
        }
    }
    if (builds < 1 || unfinished < 2 || loads < 1) {
        fprintf(stderr, "farm-journal-bench: --builds, --loads >= 1, --unfinished >= 2\n");
        return 2;
    }
    if (!dir && !(dir = mkdtemp(tmp))) {
        perror("farm-journal-bench: mkdtemp");
        return 1;
    }
    if (records > 0) {
        if (log_lines < 0 || s_records_mode(dir, records, log_lines) < 0) {
            fprintf(stderr, "farm-journal-bench: %s\n", farm_error_last());
            return 1;
        }
        return 0;
    }
    long long now = (long long)time(NULL) * 1000;
    size_t n_lat = 0;
    double *lat = calloc((size_t)builds * 8, sizeof *lat);

    /* 1: a typical build's events, one synced transaction each */
    if (farm_path_join(sub, sizeof sub, dir, "writes") < 0 || farm_fs_mkdirs(sub) < 0)
        goto done;
    if (!lat || !(j = farm_journal_open(sub, NULL)))
        goto fail;
    double t0 = s_now();
    for (long i = 0; i < builds; i++)
        if (s_one_build(j, lat, &n_lat, now) < 0)
            goto fail;
    double dt = s_now() - t0;
    farm_journal_destroy(&j);
    qsort(lat, n_lat, sizeof *lat, s_cmp);
    printf("JOURNAL_BUILDS=%ld\nJOURNAL_EVENTS=%zu\n", builds, n_lat);
    printf("JOURNAL_WRITES_PER_S=%.0f\nJOURNAL_BUILDS_PER_S=%.1f\n", n_lat / dt, builds / dt);
    printf("JOURNAL_WRITE_MS_P50=%.2f\nJOURNAL_WRITE_MS_P99=%.2f\nJOURNAL_WRITE_MS_MAX=%.2f\n",
           lat[n_lat / 2] * 1e3, lat[n_lat * 99 / 100] * 1e3, lat[n_lat - 1] * 1e3);

    /* 2: start-up with `unfinished` jobs (two per build) not finished */
    if (farm_path_join(sub, sizeof sub, dir, "load") < 0 || farm_fs_mkdirs(sub) < 0)
        goto done;
    if (!(j = farm_journal_open(sub, NULL)))
        goto fail;
    t0 = s_now();
    for (long i = 0; i < unfinished / 2; i++) {
        farm_journal_build_t b;
        farm_journal_job_t jobs[2];
        char id[FARM_ID_MAX + 1];
        uint64_t seq;
        if (farm_journal_next_build_id(j, id, sizeof id, &seq) < 0)
            goto fail;
        s_records(&b, jobs, id, seq, now);
        if (i % 2) { /* half of them running somewhere */
            jobs[0].state = FARM_JOURNAL_JOB_RUNNING;
            jobs[0].attempt = 1;
            snprintf(jobs[0].node, sizeof jobs[0].node, "node-%ld", i % 50);
        }
        if (farm_journal_put_build(j, &b, jobs, 2) < 0)
            goto fail;
    }
    printf("JOURNAL_FILL_S=%.1f\n", s_now() - t0);
    farm_journal_destroy(&j);
    double best = 1e9, worst = 0, sum = 0;
    size_t got_jobs = 0;
    for (long r = 0; r < loads; r++) {
        farm_journal_loaded_t l;
        t0 = s_now();
        if (!(j = farm_journal_open(sub, NULL)) || farm_journal_load_unfinished(j, &l) < 0)
            goto fail;
        dt = s_now() - t0;
        got_jobs = l.n_jobs;
        farm_journal_loaded_free(&l);
        farm_journal_destroy(&j);
        sum += dt;
        best = dt < best ? dt : best;
        worst = dt > worst ? dt : worst;
    }
    printf("JOURNAL_UNFINISHED_JOBS=%zu\n", got_jobs);
    printf("JOURNAL_START_LOAD_MS_MIN=%.1f\nJOURNAL_START_LOAD_MS_MEAN=%.1f\n"
           "JOURNAL_START_LOAD_MS_MAX=%.1f\n", best * 1e3, sum / loads * 1e3, worst * 1e3);
    rc = got_jobs == (size_t)(unfinished / 2 * 2) ? 0 : 1;
    goto done;
fail:
    fprintf(stderr, "farm-journal-bench: %s\n", farm_error_last());
    farm_journal_destroy(&j);
done:
    free(lat);
    if (dir == tmp)
        farm_fs_rmtree(tmp);
    return rc;
}
