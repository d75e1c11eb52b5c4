/* SPDX-License-Identifier: Apache-2.0 */
/* farmctl history [ls], farmctl history inspect: build records, as the coordinator's
 * journal keeps them. Everything printed comes from the coordinator and is made inert. */
#include "farmctl/history.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/limits.h"
#include "common/pbjson.h"
#include "common/text.h"
#include "farmctl/client.h"

#define S_FILTERS_MAX 16

static void s_when(char *out, size_t len, uint64_t unix_ms)
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    if (!unix_ms || !gmtime_r(&t, &tm) || !strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, len, "-");
}

static void s_took(char *out, size_t len, uint64_t from, uint64_t to)
{
    if (!from || !to || to < from)
        snprintf(out, len, "-");
    else if (to - from < 600000)
        snprintf(out, len, "%.1fs", (double)(to - from) / 1000);
    else
        snprintf(out, len, "%llum", (unsigned long long)((to - from) / 60000));
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: farmctl history [ls] [options]        recent builds, newest first\n"
               "       farmctl history inspect BUILD [options]  one build's record\n"
               "  BUILD is a build id, or ^N: the Nth before the newest (^0 the newest)\n"
               "      --filter K=V        status=running|stitching|completed|failed|cancelled,\n"
               "                          repository=REGISTRY/REPO, owner=CLIENT, since=24h,\n"
               "                          until=2026-12-01T08:00:00Z; K!=V negates; repeatable\n"
               "      --limit N           at most N builds (default 100)\n"
               "      --format json       the reply as JSON (the schema of the HTTP API)\n"
               "      --farm FILE, --coordinator E, --trust-repo-coordinator   as farmctl builds\n");
}

static int s_ls(const farmctl_target_t *t, char **filters, size_t n_filters, unsigned limit,
                int json)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT, *reply = NULL;
    Farm__HistoryRequest req = FARM__HISTORY_REQUEST__INIT;
    int rc;

    req.filters = filters;
    req.n_filters = n_filters;
    req.limit = limit;
    env.body_case = FARM__ENVELOPE__BODY_HISTORY_REQUEST;
    env.history_request = &req;
    if (farmctl_request(&reply, "history", t, &env, FARM__ENVELOPE__BODY_HISTORY_REPLY) != 0)
        return 1;
    if (json) {
        rc = farm_pbjson_print(stdout, &reply->history_reply->base) < 0;
        farm_wire_free(&reply);
        return rc;
    }
    printf("%-44s %-10s %-10s %-20s %-8s %s\n", "BUILD", "OWNER", "STATUS", "CREATED",
           "DURATION", "REPOSITORY");
    for (size_t i = 0; i < reply->history_reply->n_builds; i++) {
        const Farm__HistoryEntry *e = reply->history_reply->builds[i];
        char id[128], owner[128], status[32], repo[512], when[32], took[32];
        farm_text_inert(id, sizeof id, e->build_id);
        farm_text_inert(owner, sizeof owner, e->owner[0] ? e->owner : "-");
        farm_text_inert(status, sizeof status, e->status);
        farm_text_inert(repo, sizeof repo, e->repository);
        s_when(when, sizeof when, e->created_unix_ms);
        s_took(took, sizeof took, e->created_unix_ms, e->done_unix_ms);
        printf("%-44s %-10s %-10s %-20s %-8s %s\n", id, owner, status, when, took, repo);
    }
    farm_wire_free(&reply);
    return 0;
}

static void s_kvs(const char *label, Farm__KeyValue **kv, size_t n)
{
    char k[256], v[1024];
    for (size_t i = 0; i < n; i++) {
        farm_text_inert(k, sizeof k, kv[i]->key);
        farm_text_inert(v, sizeof v, kv[i]->value);
        printf("%-14s%s=%s\n", i ? "" : label, k, v);
    }
}

static void s_line(const char *label, const char *value)
{
    char v[4096];
    if (!value || !value[0])
        return;
    farm_text_inert(v, sizeof v, value);
    printf("%-14s%s\n", label, v);
}

static void s_print_record(const Farm__HistoryRecord *r)
{
    const Farm__HistoryEntry *e = r->build;
    const Farm__BuildFlags *fl = r->flags;
    char a[256], b[256], buf[4096];

    if (!e)
        return;
    s_line("Build:", e->build_id);
    s_line("Owner:", e->owner[0] ? e->owner : "-");
    s_line("Status:", e->status);
    s_line("Repository:", e->repository);
    buf[0] = 0;
    for (size_t i = 0; i < e->n_tags; i++) {
        size_t off = strlen(buf);
        snprintf(buf + off, sizeof buf - off, "%s%s", i ? ", " : "", e->tags[i]);
    }
    s_line("Tags:", buf);
    s_when(a, sizeof a, e->created_unix_ms);
    s_line("Created:", a);
    if (e->done_unix_ms) {
        s_when(a, sizeof a, e->done_unix_ms);
        s_took(b, sizeof b, e->created_unix_ms, e->done_unix_ms);
        snprintf(buf, sizeof buf, "%s (took %s)", a, b);
        s_line("Finished:", buf);
    }
    snprintf(buf, sizeof buf, "%s (%llu bytes)", r->context_digest,
             (unsigned long long)r->context_size);
    s_line("Context:", buf);
    s_line("Dockerfile:", r->dockerfile);
    s_kvs("Build args:", r->build_args, r->n_build_args);
    if (fl) {
        s_line("Target:", fl->target);
        if (fl->no_cache)
            s_line("No cache:", "yes");
        if (fl->pull)
            s_line("Pull:", "yes");
        s_kvs("Labels:", fl->labels, fl->n_labels);
        s_kvs("Annotations:", fl->annotations, fl->n_annotations);
        s_kvs("Index annot.:", fl->index_annotations, fl->n_index_annotations);
        s_line("Cache from:", fl->cache_from);
        s_line("Cache to:", fl->cache_to);
    }
    s_line("Network:", r->network);
    s_line("Index:", e->index_digest);
    s_line("Error:", e->error);
    if (r->log_cut_lines) {
        snprintf(buf, sizeof buf, "%llu lines (%llu bytes) cut: the log was over "
                 "history.log_limit", (unsigned long long)r->log_cut_lines,
                 (unsigned long long)r->log_cut_bytes);
        s_line("Log:", buf);
    }
    for (size_t i = 0; i < r->n_platforms; i++) {
        const Farm__HistoryPlatform *p = r->platforms[i];
        char plat[128], node[128], state[32];
        farm_text_inert(plat, sizeof plat, p->platform);
        farm_text_inert(node, sizeof node, p->node[0] ? p->node : "-");
        farm_text_inert(state, sizeof state, p->state);
        printf("\nPlatform %s: %s on node %s", plat, state, node);
        if (p->steps)
            printf(", %u steps, %u from the cache", p->steps, p->cache_hits);
        printf("\n");
        if (p->image) {
            farm_text_inert(a, sizeof a, p->image->digest);
            printf("  Image:      %s (%llu bytes)\n", a, (unsigned long long)p->image->size);
        }
        if (p->error[0]) {
            farm_text_inert(buf, sizeof buf, p->error);
            printf("  Error:      %s\n", buf);
        }
        for (size_t k = 0; k < p->n_attempts; k++) {
            const Farm__HistoryAttempt *at = p->attempts[k];
            farm_text_inert(a, sizeof a, at->node);
            farm_text_inert(b, sizeof b, at->outcome);
            s_took(state, sizeof state, at->started_unix_ms, at->finished_unix_ms);
            printf("  Attempt %u:  node %s, %s%s%s", at->attempt, a, b,
                   at->finished_unix_ms ? " after " : "", at->finished_unix_ms ? state : "");
            if (at->reason[0]) {
                farm_text_inert(buf, sizeof buf, at->reason);
                printf(": %s", buf);
            }
            printf("\n");
        }
        if (p->n_build_steps)
            printf("  Steps:\n");
        for (size_t k = 0; k < p->n_build_steps; k++) {
            const Farm__BuildStep *s = p->build_steps[k];
            farm_text_inert(buf, sizeof buf, s->text);
            printf("    #%-3u %8.1fs %-7s %s\n", s->number, (double)s->ms / 1000,
                   s->cached ? "CACHED" : "", buf);
        }
    }
}

static int s_inspect(const farmctl_target_t *t, const char *build, int json)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT, *reply = NULL;
    Farm__HistoryGet req = FARM__HISTORY_GET__INIT;
    int rc = 0;

    req.build = (char *)build;
    env.body_case = FARM__ENVELOPE__BODY_HISTORY_GET;
    env.history_get = &req;
    if (farmctl_request(&reply, "history inspect", t, &env,
                        FARM__ENVELOPE__BODY_HISTORY_RECORD) != 0)
        return 1;
    if (json)
        rc = farm_pbjson_print(stdout, &reply->history_record->base) < 0;
    else
        s_print_record(reply->history_record);
    farm_wire_free(&reply);
    return rc;
}

int farmctl_history_main(int argc, char **argv)
{
    enum { O_FILTER = FARMCTL_O_NEXT, O_LIMIT, O_FORMAT };
    static const struct option opts[] = {FARMCTL_TARGET_OPTIONS,
                                         {"filter", required_argument, NULL, O_FILTER},
                                         {"limit", required_argument, NULL, O_LIMIT},
                                         {"format", required_argument, NULL, O_FORMAT},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    farmctl_target_t t = {0};
    char *filters[S_FILTERS_MAX];
    size_t n_filters = 0;
    unsigned long limit = 0;
    int c, json = 0, inspect = 0;
    char *end;

    /* the subcommand first (ls is the default), then the options */
    if (argc > 1 && (!strcmp(argv[1], "ls") || !strcmp(argv[1], "inspect"))) {
        inspect = !strcmp(argv[1], "inspect");
        argc--;
        argv++;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if ((c = farmctl_target_option(&t, c, optarg)) == 0)
            continue;
        switch (c) {
        case O_FILTER:
            if (n_filters == S_FILTERS_MAX) {
                fprintf(stderr, "farmctl history: at most %d --filter\n", S_FILTERS_MAX);
                return 2;
            }
            filters[n_filters++] = optarg;
            break;
        case O_LIMIT:
            limit = strtoul(optarg, &end, 10);
            if (!*optarg || *end || limit == 0 || limit > 1000) {
                fprintf(stderr, "farmctl history: --limit is a number from 1 to 1000\n");
                return 2;
            }
            break;
        case O_FORMAT:
            if (farmctl_format_option(&json, "history", optarg) < 0)
                return 2;
            break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (inspect) {
        if (optind + 1 != argc || n_filters || limit) {
            fprintf(stderr, "farmctl history inspect: name one build: its id (farmctl history "
                            "lists them) or ^N\n");
            return 2;
        }
        if (strlen(argv[optind]) > FARM_ID_MAX) {
            fprintf(stderr, "farmctl history inspect: \"%.40s...\" is not a build id\n",
                    argv[optind]);
            return 2;
        }
        return s_inspect(&t, argv[optind], json);
    }
    if (optind != argc) {
        fprintf(stderr, "farmctl history: unexpected argument \"%.64s\" (history inspect "
                        "BUILD shows one build)\n", argv[optind]);
        return 2;
    }
    return s_ls(&t, filters, n_filters, (unsigned)limit, json);
}
