/* SPDX-License-Identifier: Apache-2.0 */
#include "common/metrics.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

typedef enum { S_COUNTER, S_GAUGE, S_HISTOGRAM } s_kind_t;

typedef struct {
    char *v[2];
    double value;                               /* counter, gauge */
    double sum;                                 /* histogram */
    unsigned long long counts[FARM_METRICS_MAX_BUCKETS + 1]; /* per bucket, not cumulative */
    unsigned long long count;
} s_series_t;

struct farm_metric {
    s_kind_t kind;
    char *name, *help;
    char *label[2];
    int n_labels;
    double buckets[FARM_METRICS_MAX_BUCKETS];
    size_t n_buckets;
    s_series_t *series;
    size_t n_series, cap_series;
    int warned;
};

struct farm_metrics {
    farm_metric_t **fams;
    size_t n;
    farm_metrics_collect_fn collect;
    void *collect_arg;
};

farm_metrics_t *farm_metrics_new(void)
{
    return calloc(1, sizeof(farm_metrics_t));
}

static void s_family_free(farm_metric_t *m)
{
    for (size_t i = 0; i < m->n_series; i++) {
        free(m->series[i].v[0]);
        free(m->series[i].v[1]);
    }
    free(m->series);
    free(m->name);
    free(m->help);
    free(m->label[0]);
    free(m->label[1]);
    free(m);
}

void farm_metrics_destroy(farm_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    for (size_t i = 0; i < (*self_p)->n; i++)
        s_family_free((*self_p)->fams[i]);
    free((*self_p)->fams);
    free(*self_p);
    *self_p = NULL;
}

void farm_metrics_on_collect(farm_metrics_t *self, farm_metrics_collect_fn fn, void *arg)
{
    self->collect = fn;
    self->collect_arg = arg;
}

static int s_name_ok(const char *s)
{
    if (!s || !*s || isdigit((unsigned char)*s))
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

static farm_metric_t *s_family(farm_metrics_t *self, s_kind_t kind, const char *name,
                               const char *help, const char *l1, const char *l2)
{
    farm_metric_t *m, **fams;

    if (!self || !s_name_ok(name) || (l1 && !s_name_ok(l1)) || (l2 && (!l1 || !s_name_ok(l2))))
        return NULL;
    if (!(fams = realloc(self->fams, (self->n + 1) * sizeof *fams)))
        return NULL;
    self->fams = fams;
    if (!(m = calloc(1, sizeof *m)))
        return NULL;
    m->kind = kind;
    m->name = strdup(name);
    m->help = strdup(help ? help : "");
    m->label[0] = l1 ? strdup(l1) : NULL;
    m->label[1] = l2 ? strdup(l2) : NULL;
    m->n_labels = l2 ? 2 : l1 ? 1 : 0;
    if (!m->name || !m->help || (l1 && !m->label[0]) || (l2 && !m->label[1])) {
        s_family_free(m);
        return NULL;
    }
    self->fams[self->n++] = m;
    return m;
}

farm_metric_t *farm_metrics_counter(farm_metrics_t *self, const char *name, const char *help,
                                    const char *label1, const char *label2)
{
    return s_family(self, S_COUNTER, name, help, label1, label2);
}

farm_metric_t *farm_metrics_gauge(farm_metrics_t *self, const char *name, const char *help,
                                  const char *label1, const char *label2)
{
    return s_family(self, S_GAUGE, name, help, label1, label2);
}

farm_metric_t *farm_metrics_histogram(farm_metrics_t *self, const char *name,
                                      const char *help, const char *label1,
                                      const char *label2, const double *buckets,
                                      size_t n_buckets)
{
    farm_metric_t *m;
    if (n_buckets > FARM_METRICS_MAX_BUCKETS)
        return NULL;
    for (size_t i = 1; i < n_buckets; i++)
        if (!(buckets[i] > buckets[i - 1]))
            return NULL;
    if (!(m = s_family(self, S_HISTOGRAM, name, help, label1, label2)))
        return NULL;
    memcpy(m->buckets, buckets, n_buckets * sizeof *buckets);
    m->n_buckets = n_buckets;
    return m;
}

static int s_same(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static s_series_t *s_series(farm_metric_t *m, const char *v1, const char *v2)
{
    s_series_t *s;
    const char *v[2] = {m->n_labels > 0 ? v1 : NULL, m->n_labels > 1 ? v2 : NULL};

    for (size_t i = 0; i < m->n_series; i++)
        if (s_same(m->series[i].v[0], v[0]) && s_same(m->series[i].v[1], v[1]))
            return &m->series[i];
    if (m->n_series == FARM_METRICS_MAX_SERIES) {
        if (!m->warned++)
            farm_log_warn("metrics: %s has %d series already; dropping new label values",
                          m->name, FARM_METRICS_MAX_SERIES);
        return NULL;
    }
    if (m->n_series == m->cap_series) {
        size_t cap = m->cap_series ? m->cap_series * 2 : 4;
        s_series_t *ns = realloc(m->series, cap * sizeof *ns);
        if (!ns)
            return NULL;
        m->series = ns;
        m->cap_series = cap;
    }
    s = &m->series[m->n_series];
    memset(s, 0, sizeof *s);
    for (int i = 0; i < 2; i++)
        if (v[i] && !(s->v[i] = strdup(v[i]))) {
            free(s->v[0]);
            return NULL;
        }
    m->n_series++;
    return s;
}

void farm_metric_add(farm_metric_t *m, const char *v1, const char *v2, double v)
{
    s_series_t *s;
    /* a counter only goes up */
    if (!m || m->kind == S_HISTOGRAM || (m->kind == S_COUNTER && !(v >= 0)))
        return;
    if ((s = s_series(m, v1, v2)))
        s->value += v;
}

void farm_metric_inc(farm_metric_t *m, const char *v1, const char *v2)
{
    farm_metric_add(m, v1, v2, 1);
}

void farm_metric_set(farm_metric_t *m, const char *v1, const char *v2, double v)
{
    s_series_t *s;
    if (!m || m->kind != S_GAUGE)
        return;
    if ((s = s_series(m, v1, v2)))
        s->value = v;
}

void farm_metric_zero(farm_metric_t *m)
{
    if (!m || m->kind != S_GAUGE)
        return;
    for (size_t i = 0; i < m->n_series; i++)
        m->series[i].value = 0;
}

void farm_metric_observe(farm_metric_t *m, const char *v1, const char *v2, double v)
{
    s_series_t *s;
    size_t b;
    if (!m || m->kind != S_HISTOGRAM || isnan(v) || !(s = s_series(m, v1, v2)))
        return;
    for (b = 0; b < m->n_buckets && v > m->buckets[b]; b++)
        ;
    s->counts[b]++;
    s->count++;
    s->sum += v;
}

/* -- rendering --------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} s_out_t;

static void s_put(s_out_t *o, const char *s, size_t n)
{
    if (o->oom)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        char *nb;
        while (cap < o->len + n + 1)
            cap *= 2;
        if (!(nb = realloc(o->buf, cap))) {
            o->oom = 1;
            return;
        }
        o->buf = nb;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void s_puts(s_out_t *o, const char *s)
{
    s_put(o, s, strlen(s));
}

/* Escapes as the text format asks: backslash and newline, and " in label values. */
static void s_escaped(s_out_t *o, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            s_puts(o, "\\\\");
        else if (*s == '\n')
            s_puts(o, "\\n");
        else if (quote && *s == '"')
            s_puts(o, "\\\"");
        else
            s_put(o, s, 1);
    }
}

static void s_number(s_out_t *o, double v)
{
    char b[64];
    if (isinf(v))
        s_puts(o, v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v))
        s_puts(o, "NaN");
    else {
        snprintf(b, sizeof b, "%.17g", v);
        s_puts(o, b);
    }
}

/* {a="x",b="y",le="0.5"} (nothing when there are no labels) */
static void s_labels(s_out_t *o, const farm_metric_t *m, const s_series_t *s, const char *le)
{
    int any = 0;
    if (!m->n_labels && !le)
        return;
    s_puts(o, "{");
    for (int i = 0; i < m->n_labels; i++) {
        s_puts(o, any++ ? "," : "");
        s_puts(o, m->label[i]);
        s_puts(o, "=\"");
        s_escaped(o, s->v[i] ? s->v[i] : "", 1);
        s_puts(o, "\"");
    }
    if (le) {
        s_puts(o, any ? ",le=\"" : "le=\"");
        s_puts(o, le);
        s_puts(o, "\"");
    }
    s_puts(o, "}");
}

static void s_sample(s_out_t *o, const farm_metric_t *m, const char *suffix,
                     const s_series_t *s, const char *le, double v)
{
    s_puts(o, m->name);
    s_puts(o, suffix);
    s_labels(o, m, s, le);
    s_puts(o, " ");
    s_number(o, v);
    s_puts(o, "\n");
}

char *farm_metrics_render(farm_metrics_t *self, size_t *len_out)
{
    static const char *types[] = {"counter", "gauge", "histogram"};
    s_out_t o = {0};

    if (self->collect)
        self->collect(self->collect_arg, self);
    s_puts(&o, "");
    for (size_t f = 0; f < self->n; f++) {
        const farm_metric_t *m = self->fams[f];
        s_puts(&o, "# HELP ");
        s_puts(&o, m->name);
        s_puts(&o, " ");
        s_escaped(&o, m->help, 0);
        s_puts(&o, "\n# TYPE ");
        s_puts(&o, m->name);
        s_puts(&o, " ");
        s_puts(&o, types[m->kind]);
        s_puts(&o, "\n");
        for (size_t i = 0; i < m->n_series; i++) {
            const s_series_t *s = &m->series[i];
            if (m->kind != S_HISTOGRAM) {
                s_sample(&o, m, "", s, NULL, s->value);
                continue;
            }
            unsigned long long cum = 0;
            for (size_t b = 0; b <= m->n_buckets; b++) {
                char le[64];
                cum += s->counts[b];
                if (b == m->n_buckets)
                    snprintf(le, sizeof le, "+Inf");
                else
                    snprintf(le, sizeof le, "%.17g", m->buckets[b]);
                s_sample(&o, m, "_bucket", s, le, (double)cum);
            }
            s_sample(&o, m, "_sum", s, NULL, s->sum);
            s_sample(&o, m, "_count", s, NULL, (double)s->count);
        }
    }
    if (o.oom) {
        free(o.buf);
        return NULL;
    }
    if (len_out)
        *len_out = o.len;
    return o.buf;
}

double farm_metrics_resident_bytes(void)
{
    unsigned long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    int ok;
    if (!f)
        return 0;
    ok = fscanf(f, "%llu %llu", &size, &resident) == 2;
    fclose(f);
    return ok ? (double)resident * (double)sysconf(_SC_PAGESIZE) : 0;
}
