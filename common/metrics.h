/* SPDX-License-Identifier: Apache-2.0 */
/* A small metrics registry in Prometheus' text format 0.0.4: counters, gauges and
 * histograms with fixed buckets, each with up to two labels. One registry per process
 * (the daemons are single-threaded); a metric handle that is NULL (metrics off) makes
 * every update a no-op, so a hook costs nothing when nobody scrapes.
 *
 * Names follow Prometheus' conventions: farm_ prefix, _total for counters, base units
 * (_seconds, _bytes). Label values are bounded input (a platform, a state, a cause): a
 * family keeps at most FARM_METRICS_MAX_SERIES of them and drops the rest. */
#ifndef FARM_METRICS_H
#define FARM_METRICS_H

#include <stddef.h>

#define FARM_METRICS_MAX_SERIES 256
#define FARM_METRICS_MAX_BUCKETS 16

typedef struct farm_metrics farm_metrics_t;
typedef struct farm_metric farm_metric_t;

/* Called before each rendering, to set the gauges that are read rather than counted. */
typedef void (*farm_metrics_collect_fn)(void *arg, farm_metrics_t *m);

farm_metrics_t *farm_metrics_new(void);
void farm_metrics_destroy(farm_metrics_t **self_p);
void farm_metrics_on_collect(farm_metrics_t *self, farm_metrics_collect_fn fn, void *arg);

/* A family. label1/label2: label names or NULL. The handle is owned by the registry.
 * NULL on failure (a bad name, out of memory), which makes its updates no-ops. */
farm_metric_t *farm_metrics_counter(farm_metrics_t *self, const char *name, const char *help,
                                    const char *label1, const char *label2);
farm_metric_t *farm_metrics_gauge(farm_metrics_t *self, const char *name, const char *help,
                                  const char *label1, const char *label2);
/* buckets: upper bounds, increasing (+Inf is added). */
farm_metric_t *farm_metrics_histogram(farm_metrics_t *self, const char *name,
                                      const char *help, const char *label1,
                                      const char *label2, const double *buckets,
                                      size_t n_buckets);

/* Updates; v1/v2 are the label values in the order declared (NULL for a label not
 * declared). m may be NULL. */
void farm_metric_add(farm_metric_t *m, const char *v1, const char *v2, double v);
void farm_metric_inc(farm_metric_t *m, const char *v1, const char *v2);
void farm_metric_set(farm_metric_t *m, const char *v1, const char *v2, double v);
void farm_metric_observe(farm_metric_t *m, const char *v1, const char *v2, double v);
/* Gauges set at collect time: zero every series first, so a label that is gone reads 0. */
void farm_metric_zero(farm_metric_t *m);

/* The text format (runs the collect callback first). Caller frees. NULL on OOM. */
char *farm_metrics_render(farm_metrics_t *self, size_t *len_out);

/* This process' resident memory in bytes (/proc/self/statm), 0 if unknown. */
double farm_metrics_resident_bytes(void);

#endif
