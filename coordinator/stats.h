/* SPDX-License-Identifier: Apache-2.0 */
/* The coordinator's Prometheus metrics (common/metrics.h): one registry for the process,
 * made only when coordinator.http is set. Hooks elsewhere are one line each, e.g.
 * farm_metric_inc(farm_cstats.builds_finished, "ok", NULL); with metrics off every handle
 * is NULL and the hook does nothing. The gauges (queues, running jobs, nodes per state,
 * context store, memory) are read from the parts when scraped. */
#ifndef FARM_COORD_STATS_H
#define FARM_COORD_STATS_H

#include "common/metrics.h"
#include "coordinator/parts.h"

typedef struct {
    farm_metrics_t *reg;
    farm_metric_t *queue_length;      /* gauge {platform} */
    farm_metric_t *queue_wait;        /* histogram {platform}: queued to dispatched */
    farm_metric_t *jobs_running;      /* gauge {platform} */
    farm_metric_t *nodes;             /* gauge {state} */
    farm_metric_t *node_slots;        /* gauge {state}: slots of the nodes in that state */
    farm_metric_t *builds_active;     /* gauge */
    farm_metric_t *builds_finished;   /* counter {result} */
    farm_metric_t *build_duration;    /* histogram {result}: submit to end */
    farm_metric_t *job_duration;      /* histogram {platform,result}: one attempt on a node */
    farm_metric_t *job_failures;      /* counter {platform,cause}: attempts that failed */
    farm_metric_t *cache_steps;       /* counter {platform}: builder steps of pushed jobs */
    farm_metric_t *cache_hits;        /* counter {platform}: ... taken from the cache */
    farm_metric_t *index_push;        /* histogram: last job's result to the index pushed */
    farm_metric_t *registry_retries;  /* counter: index pushes' registry requests retried */
    farm_metric_t *uploads;           /* counter {result}: context uploads finished */
    farm_metric_t *uploads_active;    /* gauge */
    farm_metric_t *context_bytes;     /* gauge: the context store on disk */
    farm_metric_t *http_requests;     /* counter {path}: what the HTTP endpoint answered */
    farm_metric_t *rss;               /* gauge: process_resident_memory_bytes */
} farm_cstats_t;

extern farm_cstats_t farm_cstats;

/* Makes the registry and every handle; parts (copied) feed the gauges, with *cfg_p the
 * config in force (a reload replaces it). */
int farm_cstats_init(const farm_coord_parts_t *parts, farm_config_t *const *cfg_p);
void farm_cstats_fini(void);

/* b ended (farm_builds_finish): its duration, result and index push time. */
void farm_cstats_build_done(const farm_build_t *b, int ok, long long now);

#endif
