/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/stats.h"

#include <string.h>

#include "common/error.h"

farm_astats_t farm_astats;
static farm_astats_source_t s_src;

static const double s_run_buckets[] = {1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600,
                                       7200, 21600};

static void s_collect(void *arg, farm_metrics_t *m)
{
    double running = 0, slots = 0, bytes = 0, healthy = 0, connected = 0;
    if (s_src.read)
        s_src.read(s_src.arg, &running, &slots, &bytes, &healthy, &connected);
    farm_metric_set(farm_astats.jobs_running, NULL, NULL, running);
    farm_metric_set(farm_astats.slots, NULL, NULL, slots);
    farm_metric_set(farm_astats.cache_bytes, NULL, NULL, bytes);
    farm_metric_set(farm_astats.healthy, NULL, NULL, healthy);
    farm_metric_set(farm_astats.connected, NULL, NULL, connected);
    farm_metric_set(farm_astats.rss, NULL, NULL, farm_metrics_resident_bytes());
}

int farm_astats_init(const farm_astats_source_t *src)
{
    farm_astats_t *s = &farm_astats;
    farm_metrics_t *r;

    if (!(r = s->reg = farm_metrics_new()))
        return farm_error_set(FARM_ERROR, "out of memory");
    s_src = *src;
    s->jobs_running = farm_metrics_gauge(r, "farm_agent_jobs_running", "Jobs this node runs now.", NULL, NULL);
    s->slots = farm_metrics_gauge(r, "farm_agent_slots", "Jobs this node runs at once (--slots).", NULL, NULL);
    s->job_duration = farm_metrics_histogram(r, "farm_agent_job_duration_seconds", "Time a job's attempt ran on this node.", "platform", "result", s_run_buckets, sizeof s_run_buckets / sizeof *s_run_buckets);
    s->jobs_finished = farm_metrics_counter(r, "farm_agent_jobs_finished_total", "Job attempts that ended on this node, by result (done, failed, cancelled).", "platform", "result");
    s->cache_bytes = farm_metrics_gauge(r, "farm_agent_builder_cache_bytes", "Bytes of builder storage (the layer caches), as the last job measured them.", NULL, NULL);
    s->cache_steps = farm_metrics_counter(r, "farm_agent_build_steps_total", "Builder steps of the jobs that pushed their image.", "platform", NULL);
    s->cache_hits = farm_metrics_counter(r, "farm_agent_cache_hits_total", "Builder steps taken from the layer cache.", "platform", NULL);
    s->healthy = farm_metrics_gauge(r, "farm_agent_healthy", "1 while this node's health checks pass, else 0 (it takes no job).", NULL, NULL);
    s->connected = farm_metrics_gauge(r, "farm_agent_connected", "1 while the coordinator answers, else 0.", NULL, NULL);
    s->rss = farm_metrics_gauge(r, "process_resident_memory_bytes", "Resident memory of the agent process.", NULL, NULL);
    farm_metrics_on_collect(r, s_collect, NULL);
    return 0;
}

void farm_astats_fini(void)
{
    farm_metrics_destroy(&farm_astats.reg);
    memset(&farm_astats, 0, sizeof farm_astats);
}

void farm_astats_job(const char *platform, const char *result, long long ms)
{
    if (!farm_astats.reg)
        return;
    farm_metric_inc(farm_astats.jobs_finished, platform, result);
    if (ms >= 0)
        farm_metric_observe(farm_astats.job_duration, platform, result, ms / 1000.0);
}
