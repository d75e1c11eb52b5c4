/* SPDX-License-Identifier: Apache-2.0 */
/* The metrics registry: Prometheus text format 0.0.4 as Prometheus parses it (HELP/TYPE,
 * label escaping, cumulative histogram buckets with +Inf, _sum and _count), counters that
 * only go up, NULL handles as no-ops, and the bound on a family's series. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/metrics.h"

static char *s_render(farm_metrics_t *m)
{
    size_t len = 0;
    char *t = farm_metrics_render(m, &len);
    assert_non_null(t);
    assert_int_equal(strlen(t), len);
    return t;
}

static void s_has(const char *text, const char *line)
{
    if (!strstr(text, line))
        fail_msg("missing \"%s\" in:\n%s", line, text);
}

static void test_counter_gauge(void **state)
{
    (void)state;
    farm_metrics_t *m = farm_metrics_new();
    farm_metric_t *c = farm_metrics_counter(m, "farm_builds_finished_total", "Builds.", "result", NULL);
    farm_metric_t *g = farm_metrics_gauge(m, "farm_queue_length", "Queue.", "platform", NULL);
    farm_metric_t *n = farm_metrics_gauge(m, "farm_builds_active", "Active.", NULL, NULL);
    char *t;

    farm_metric_inc(c, "ok", NULL);
    farm_metric_inc(c, "ok", NULL);
    farm_metric_inc(c, "failed", NULL);
    farm_metric_add(c, "ok", NULL, -5); /* a counter never goes down */
    farm_metric_set(c, "ok", NULL, 0);  /* nor is it set */
    farm_metric_set(g, "linux/arm/v7", NULL, 3);
    farm_metric_set(g, "linux/arm/v7", NULL, 2);
    farm_metric_set(n, NULL, NULL, 7);
    t = s_render(m);
    s_has(t, "# HELP farm_builds_finished_total Builds.\n# TYPE farm_builds_finished_total counter\n");
    s_has(t, "farm_builds_finished_total{result=\"ok\"} 2\n");
    s_has(t, "farm_builds_finished_total{result=\"failed\"} 1\n");
    s_has(t, "# TYPE farm_queue_length gauge\nfarm_queue_length{platform=\"linux/arm/v7\"} 2\n");
    s_has(t, "\nfarm_builds_active 7\n");
    free(t);
    farm_metric_zero(g);
    t = s_render(m);
    s_has(t, "farm_queue_length{platform=\"linux/arm/v7\"} 0\n");
    free(t);
    farm_metrics_destroy(&m);
    assert_null(m);
}

static void test_histogram(void **state)
{
    (void)state;
    static const double b[] = {0.5, 1, 5};
    farm_metrics_t *m = farm_metrics_new();
    farm_metric_t *h = farm_metrics_histogram(m, "farm_job_duration_seconds", "Jobs.", "platform",
                                              "result", b, 3);
    char *t;

    assert_non_null(h);
    farm_metric_observe(h, "linux/amd64", "done", 0.2);
    farm_metric_observe(h, "linux/amd64", "done", 1);   /* le is inclusive */
    farm_metric_observe(h, "linux/amd64", "done", 30);
    t = s_render(m);
    s_has(t, "# TYPE farm_job_duration_seconds histogram\n");
    s_has(t, "farm_job_duration_seconds_bucket{platform=\"linux/amd64\",result=\"done\",le=\"0.5\"} 1\n");
    s_has(t, "farm_job_duration_seconds_bucket{platform=\"linux/amd64\",result=\"done\",le=\"1\"} 2\n");
    s_has(t, "farm_job_duration_seconds_bucket{platform=\"linux/amd64\",result=\"done\",le=\"5\"} 2\n");
    s_has(t, "farm_job_duration_seconds_bucket{platform=\"linux/amd64\",result=\"done\",le=\"+Inf\"} 3\n");
    s_has(t, "farm_job_duration_seconds_sum{platform=\"linux/amd64\",result=\"done\"} 31.199999999999999\n");
    s_has(t, "farm_job_duration_seconds_count{platform=\"linux/amd64\",result=\"done\"} 3\n");
    free(t);
    /* buckets must increase */
    static const double bad[] = {1, 1};
    assert_null(farm_metrics_histogram(m, "farm_bad_seconds", "x", NULL, NULL, bad, 2));
    farm_metrics_destroy(&m);
}

static void test_escaping_and_names(void **state)
{
    (void)state;
    farm_metrics_t *m = farm_metrics_new();
    farm_metric_t *g = farm_metrics_gauge(m, "farm_x", "a \\ help\nline", "cause", NULL);
    char *t;

    farm_metric_set(g, "say \"no\"\\\n", NULL, 1);
    t = s_render(m);
    s_has(t, "# HELP farm_x a \\\\ help\\nline\n");
    s_has(t, "farm_x{cause=\"say \\\"no\\\"\\\\\\n\"} 1\n");
    free(t);
    /* a name Prometheus would not parse is refused, and its NULL handle does nothing */
    assert_null(farm_metrics_gauge(m, "farm-bad", "x", NULL, NULL));
    assert_null(farm_metrics_gauge(m, "9farm", "x", NULL, NULL));
    assert_null(farm_metrics_gauge(m, "farm_y", "x", "bad label", NULL));
    assert_null(farm_metrics_gauge(m, "farm_y", "x", NULL, "second_without_first"));
    farm_metric_inc(NULL, "a", "b");
    farm_metric_set(NULL, NULL, NULL, 1);
    farm_metric_observe(NULL, NULL, NULL, 1);
    farm_metric_zero(NULL);
    farm_metrics_destroy(&m);
}

static void test_series_bound(void **state)
{
    (void)state;
    farm_metrics_t *m = farm_metrics_new();
    farm_metric_t *c = farm_metrics_counter(m, "farm_c_total", "x", "v", NULL);
    char v[32], *t, *p;
    size_t n = 0;

    for (int i = 0; i < FARM_METRICS_MAX_SERIES + 50; i++) {
        snprintf(v, sizeof v, "v%d", i);
        farm_metric_inc(c, v, NULL);
    }
    t = s_render(m);
    for (p = t; (p = strstr(p, "farm_c_total{")); p++)
        n++;
    assert_int_equal(n, FARM_METRICS_MAX_SERIES);
    free(t);
    farm_metrics_destroy(&m);
}

static int s_collected;
static void s_collect(void *arg, farm_metrics_t *m)
{
    farm_metric_set(arg, NULL, NULL, ++s_collected);
}

static void test_collect_and_memory(void **state)
{
    (void)state;
    farm_metrics_t *m = farm_metrics_new();
    farm_metric_t *g = farm_metrics_gauge(m, "farm_scrapes", "x", NULL, NULL);
    char *t;

    farm_metrics_on_collect(m, s_collect, g);
    free(s_render(m));
    t = s_render(m);
    s_has(t, "farm_scrapes 2\n");
    free(t);
    assert_true(farm_metrics_resident_bytes() > 1024 * 1024);
    farm_metrics_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_gauge),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_escaping_and_names),
        cmocka_unit_test(test_series_bound),
        cmocka_unit_test(test_collect_and_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
