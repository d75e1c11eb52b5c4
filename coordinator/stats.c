/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/stats.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

farm_cstats_t farm_cstats;
static farm_coord_parts_t s_parts;
static farm_config_t *const *s_cfg_p;

/* queue waits and index pushes: seconds to an hour; builds and jobs: to six hours */
static const double s_wait_buckets[] = {0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600};
static const double s_run_buckets[] = {1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600,
                                       7200, 21600};

static void s_collect(void *arg, farm_metrics_t *m)
{
    const farm_config_t *cfg = *s_cfg_p;
    farm_job_t **jobs = NULL;
    size_t cap = 0;
    uint64_t bytes = 0;
    size_t uploads = 0;

    farm_metric_zero(farm_cstats.queue_length);
    farm_metric_zero(farm_cstats.jobs_running);
    for (size_t p = 0; p < cfg->n_platforms; p++) {
        size_t n = farm_scheduler_platform_jobs(s_parts.sched, p, NULL, 0), queued = 0, running = 0;
        if (n > cap) {
            farm_job_t **nj = realloc(jobs, n * sizeof *nj);
            if (!nj)
                break;
            jobs = nj;
            cap = n;
        }
        n = farm_scheduler_platform_jobs(s_parts.sched, p, jobs, cap);
        for (size_t i = 0; i < n && i < cap; i++)
            jobs[i]->state == FARM_JOB_RUNNING ? running++ : queued++;
        farm_metric_set(farm_cstats.queue_length, cfg->platforms[p].platform, NULL, (double)queued);
        farm_metric_set(farm_cstats.jobs_running, cfg->platforms[p].platform, NULL, (double)running);
    }
    free(jobs);
    farm_metric_zero(farm_cstats.nodes);
    farm_metric_zero(farm_cstats.node_slots);
    /* every state present, so an alert on "lost > 0" has a series at 0 */
    static const char *states[] = {"ready", "unhealthy", "draining", "lost", "unknown"};
    for (size_t i = 0; i < sizeof states / sizeof *states; i++)
        farm_metric_add(farm_cstats.nodes, states[i], NULL, 0);
    for (size_t i = 0; i < farm_nodes_count(s_parts.nodes); i++) {
        farm_node_t *n = farm_nodes_at(s_parts.nodes, i);
        const char *st = n->state == FARM_NODE_LOST        ? "lost"
                         : n->state != FARM_NODE_READY     ? "unknown"
                         : n->removed                      ? "removed"
                         : farm_scheduler_node_drained(s_parts.sched, n) ? "draining"
                         : n->unhealthy[0]                 ? "unhealthy"
                                                           : "ready";
        if (n->removed && n->state != FARM_NODE_READY)
            continue;
        farm_metric_add(farm_cstats.nodes, st, NULL, 1);
        farm_metric_add(farm_cstats.node_slots, st, NULL, n->slots);
    }
    farm_metric_set(farm_cstats.builds_active, NULL, NULL,
                    (double)farm_builds_active(s_parts.builds));
    farm_ctxstore_usage(s_parts.ctx, &bytes, &uploads);
    farm_metric_set(farm_cstats.context_bytes, NULL, NULL, (double)bytes);
    farm_metric_set(farm_cstats.uploads_active, NULL, NULL, (double)uploads);
    farm_metric_set(farm_cstats.rss, NULL, NULL, farm_metrics_resident_bytes());
}

int farm_cstats_init(const farm_coord_parts_t *parts, farm_config_t *const *cfg_p)
{
    farm_cstats_t *s = &farm_cstats;
    farm_metrics_t *r;

    if (s->reg)
        return 0;
    if (!(r = s->reg = farm_metrics_new()))
        return farm_error_set(FARM_ERROR, "out of memory");
    s_parts = *parts;
    s_cfg_p = cfg_p;
#define W s_wait_buckets, sizeof s_wait_buckets / sizeof *s_wait_buckets
#define R s_run_buckets, sizeof s_run_buckets / sizeof *s_run_buckets
    s->queue_length = farm_metrics_gauge(r, "farm_queue_length", "Jobs waiting for a node, per platform.", "platform", NULL);
    s->queue_wait = farm_metrics_histogram(r, "farm_queue_wait_seconds", "Time a job waited in the queue before a node took it.", "platform", NULL, W);
    s->jobs_running = farm_metrics_gauge(r, "farm_jobs_running", "Jobs running on nodes, per platform.", "platform", NULL);
    s->nodes = farm_metrics_gauge(r, "farm_nodes", "Nodes per state (ready, unhealthy, draining, removed, lost, unknown).", "state", NULL);
    s->node_slots = farm_metrics_gauge(r, "farm_node_slots", "Job slots of the nodes in each state.", "state", NULL);
    s->builds_active = farm_metrics_gauge(r, "farm_builds_active", "Builds running or pushing their index.", NULL, NULL);
    s->builds_finished = farm_metrics_counter(r, "farm_builds_finished_total", "Builds that ended, by result (ok, failed).", "result", NULL);
    s->build_duration = farm_metrics_histogram(r, "farm_build_duration_seconds", "Time from submit to the build's end.", "result", NULL, R);
    s->job_duration = farm_metrics_histogram(r, "farm_job_duration_seconds", "Time one attempt of a job ran on a node.", "platform", "result", R);
    s->job_failures = farm_metrics_counter(r, "farm_job_failures_total", "Job attempts that failed, by cause (build, bad_result, node_fault, node_lost, job_timeout, queue_timeout, send).", "platform", "cause");
    s->cache_steps = farm_metrics_counter(r, "farm_build_steps_total", "Builder steps of the jobs pushed.", "platform", NULL);
    s->cache_hits = farm_metrics_counter(r, "farm_cache_hits_total", "Builder steps taken from a node's layer cache.", "platform", NULL);
    s->index_push = farm_metrics_histogram(r, "farm_index_push_seconds", "Time from a build's last job result to its index pushed.", NULL, NULL, W);
    s->registry_retries = farm_metrics_counter(r, "farm_registry_retries_total", "Registry requests of index pushes that were retried.", NULL, NULL);
    s->uploads = farm_metrics_counter(r, "farm_context_uploads_total", "Context uploads that ended, by result (stored, refused).", "result", NULL);
    s->uploads_active = farm_metrics_gauge(r, "farm_context_uploads_active", "Context uploads in progress.", NULL, NULL);
    s->context_bytes = farm_metrics_gauge(r, "farm_context_store_bytes", "Bytes of build contexts stored on disk.", NULL, NULL);
    s->http_requests = farm_metrics_counter(r, "farm_http_requests_total", "HTTP requests answered, by route.", "route", NULL);
    s->rss = farm_metrics_gauge(r, "process_resident_memory_bytes", "Resident memory of the coordinator process.", NULL, NULL);
#undef W
#undef R
    farm_metrics_on_collect(r, s_collect, NULL);
    return 0;
}

void farm_cstats_fini(void)
{
    farm_metrics_destroy(&farm_cstats.reg);
    memset(&farm_cstats, 0, sizeof farm_cstats);
}

void farm_cstats_build_done(const farm_build_t *b, int ok, long long now)
{
    const char *result = ok ? "ok" : "failed";
    if (!farm_cstats.reg)
        return;
    farm_metric_inc(farm_cstats.builds_finished, result, NULL);
    farm_metric_observe(farm_cstats.build_duration, result, NULL, (now - b->created) / 1000.0);
    if (ok)
        farm_metric_observe(farm_cstats.index_push, NULL, NULL, (now - b->last_result_at) / 1000.0);
}
