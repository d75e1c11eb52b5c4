/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's Prometheus metrics (farm-agent --metrics ADDR:PORT serves /metrics only):
 * one registry for the process, made only when asked for; hooks are one line each and
 * do nothing without it (every handle NULL). */
#ifndef FARM_AGENT_STATS_H
#define FARM_AGENT_STATS_H

#include <stdint.h>

#include "common/metrics.h"

typedef struct {
    farm_metrics_t *reg;
    farm_metric_t *jobs_running;   /* gauge */
    farm_metric_t *slots;          /* gauge */
    farm_metric_t *job_duration;   /* histogram {platform,result} */
    farm_metric_t *jobs_finished;  /* counter {platform,result} */
    farm_metric_t *cache_bytes;    /* gauge: builder storage, as the last job measured it */
    farm_metric_t *cache_steps;    /* counter {platform} */
    farm_metric_t *cache_hits;     /* counter {platform} */
    farm_metric_t *healthy;        /* gauge: 1 healthy, 0 not */
    farm_metric_t *connected;      /* gauge: 1 while the coordinator answers */
    farm_metric_t *rss;            /* gauge: process_resident_memory_bytes */
} farm_astats_t;

extern farm_astats_t farm_astats;

/* What the gauges read when scraped. */
typedef struct {
    void (*read)(void *arg, double *jobs_running, double *slots, double *cache_bytes,
                 double *healthy, double *connected);
    void *arg;
} farm_astats_source_t;

int farm_astats_init(const farm_astats_source_t *src);
void farm_astats_fini(void);
/* A job's attempt ended after ms: result done, failed or cancelled. */
void farm_astats_job(const char *platform, const char *result, long long ms);

#endif
