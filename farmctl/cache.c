/* SPDX-License-Identifier: Apache-2.0 */
#include "farmctl/cache.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/limits.h"
#include "common/pbjson.h"
#include "common/prunefilter.h"
#include "common/text.h"
#include "farmctl/client.h"

#define NODES_MAX 256

typedef struct {
    farmctl_target_t t;
    char *nodes[NODES_MAX];
    size_t n_nodes;
    int verbose, json, all, force;
    uint64_t until_s;
} args_t;

static void s_ago(char *out, size_t len, long long used_s, long long now_s)
{
    char age[32];
    if (used_s <= 0) {
        snprintf(out, len, "-");
        return;
    }
    farm_prunefilter_age(age, sizeof age, now_s > used_s ? (uint64_t)(now_s - used_s) : 0);
    snprintf(out, len, "%s ago", age);
}

/* "builder alice linux/amd64", "context sha256:0123456789ab" or "job ID" (inert: the
 * node's words) */
static void s_what(char *out, size_t len, const Farm__CacheEntry *e)
{
    char a[128], b[128];
    if (strcmp(e->kind, "builder") == 0) {
        farm_text_inert(a, sizeof a, e->scope);
        farm_text_inert(b, sizeof b, e->platform);
        snprintf(out, len, "builder %s %s", a, b);
    } else if (strcmp(e->kind, "job") == 0) {
        farm_text_inert(a, sizeof a, e->id);
        snprintf(out, len, "job %.60s", a);
    } else {
        farm_text_inert(a, sizeof a, e->id);
        snprintf(out, len, "context %.19s", a);
    }
}

/* The nodes that did not answer, and a node's own error: on stderr; 1 if any. */
static int s_missing(const Farm__CacheReply *r, const char *cmd)
{
    int bad = 0;
    for (size_t i = 0; i < r->n_missing; i++) {
        char node[128], why[512];
        farm_text_inert(node, sizeof node, r->missing[i]->node);
        farm_text_inert(why, sizeof why, r->missing[i]->why);
        fprintf(stderr, "farmctl %s: node %s did not answer: %s\n", cmd, node, why);
        bad = 1;
    }
    for (size_t i = 0; i < r->n_reports; i++) {
        char node[128], why[512];
        if (!r->reports[i]->error[0])
            continue;
        farm_text_inert(node, sizeof node, r->reports[i]->node);
        farm_text_inert(why, sizeof why, r->reports[i]->error);
        fprintf(stderr, "farmctl %s: node %s: %s\n", cmd, node, why);
        bad = 1;
    }
    return bad;
}

static int s_args(args_t *a, int argc, char **argv, const char *cmd)
{
    enum { O_NODE = FARMCTL_O_NEXT, O_VERBOSE, O_FORMAT, O_FILTER, O_ALL, O_FORCE };
    static const struct option opts[] = {FARMCTL_TARGET_OPTIONS,
                                         {"node", required_argument, NULL, O_NODE},
                                         {"verbose", no_argument, NULL, O_VERBOSE},
                                         {"format", required_argument, NULL, O_FORMAT},
                                         {"filter", required_argument, NULL, O_FILTER},
                                         {"all", no_argument, NULL, O_ALL},
                                         {"force", no_argument, NULL, O_FORCE},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int prune = strcmp(cmd, "prune") == 0, c;

    memset(a, 0, sizeof *a);
    optind = 1;
    while ((c = getopt_long(argc, argv, prune ? "hfa" : "hv", opts, NULL)) != -1) {
        switch (farmctl_target_option(&a->t, c, optarg)) {
        case 0: break;
        case O_NODE:
            for (char *save = NULL, *n = strtok_r(optarg, ",", &save); n;
                 n = strtok_r(NULL, ",", &save)) {
                if (a->n_nodes == NODES_MAX) {
                    fprintf(stderr, "farmctl %s: at most %d --node\n", cmd, NODES_MAX);
                    return 2;
                }
                a->nodes[a->n_nodes++] = n;
            }
            break;
        case 'v':
        case O_VERBOSE: a->verbose = 1; break;
        case O_FORMAT:
            if (strcmp(optarg, "json") == 0) {
                a->json = 1;
            } else if (strcmp(optarg, "table") != 0) {
                fprintf(stderr, "farmctl %s: --format %s: use json or table\n", cmd, optarg);
                return 2;
            }
            break;
        case O_FILTER:
            if (!prune) {
                fprintf(stderr, "farmctl du: --filter is prune's option\n");
                return 2;
            }
            if (farm_prunefilter_parse(&a->until_s, optarg) < 0) {
                fprintf(stderr, "farmctl prune: %s\n", farm_error_last());
                return 2;
            }
            break;
        case 'a':
        case O_ALL: a->all = 1; break;
        case 'f':
        case O_FORCE: a->force = 1; break;
        case 'h':
            if (prune)
                printf("usage: farmctl prune [--node N]... [--filter until=DURATION] [--all] "
                       "[-f] [--format json] " FARMCTL_TARGET_USAGE "\n"
                       "  removes each node's builder caches and cached contexts that no "
                       "running job uses\n"
                       "  --filter until=24h  only what was not used for that long (h, m, s)\n"
                       "  --all               the base images builds pulled too (else only "
                       "the build steps)\n"
                       "  -f, --force         do not ask (needed without a terminal)\n"
                       "  (admin)\n");
            else
                printf("usage: farmctl du [--node N]... [--verbose] [--format json] "
                       FARMCTL_TARGET_USAGE "\n"
                       "  what each node's builder caches and cached contexts take (admin)\n");
            return 0;
        default: return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "farmctl %s: unexpected argument \"%s\"\n", cmd, argv[optind]);
        return 2;
    }
    return -1;
}

static int s_ask(Farm__Envelope **out, const args_t *a, const char *cmd, int prune)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__CacheQuery q = FARM__CACHE_QUERY__INIT;

    q.prune = prune;
    q.until_s = a->until_s;
    q.all = a->all;
    q.nodes = (char **)a->nodes;
    q.n_nodes = a->n_nodes;
    env.body_case = FARM__ENVELOPE__BODY_CACHE_QUERY;
    env.cache_query = &q;
    /* the coordinator answers within its own wait for the nodes */
    return farmctl_request_wait(out, cmd, &a->t, &env, FARM__ENVELOPE__BODY_CACHE_REPLY,
                                FARM_CACHE_CLIENT_WAIT_MS);
}

int farmctl_du_main(int argc, char **argv)
{
    args_t a;
    Farm__Envelope *reply = NULL;
    const Farm__CacheReply *r;
    unsigned long long total = 0, reclaim = 0;
    long long now = (long long)time(NULL);
    int rc;

    if ((rc = s_args(&a, argc, argv, "du")) >= 0)
        return rc;
    if (s_ask(&reply, &a, "du", 0) != 0)
        return 1;
    r = reply->cache_reply;
    if (a.json) {
        farm_pbjson_print(stdout, &r->base);
        rc = s_missing(r, "du");
        farm_wire_free(&reply);
        return rc;
    }
    if (!a.verbose)
        printf("%-16s %-44s %-8s %-12s %s\n", "NODE", "ENTRY", "SIZE", "LAST USED",
               "RECLAIMABLE");
    for (size_t i = 0; i < r->n_reports; i++) {
        const Farm__CacheReport *rep = r->reports[i];
        char node[128];
        farm_text_inert(node, sizeof node, rep->node);
        for (size_t k = 0; k < rep->n_entries; k++) {
            const Farm__CacheEntry *e = rep->entries[k];
            char what[300], size[16], ago[48];
            s_what(what, sizeof what, e);
            farm_text_bytes(size, sizeof size, (unsigned long long)e->size);
            s_ago(ago, sizeof ago, e->last_used_unix, now);
            total += e->size;
            if (!e->in_use)
                reclaim += e->size;
            if (a.verbose) {
                char id[128];
                farm_text_inert(id, sizeof id, strcmp(e->kind, "builder") == 0 ? e->platform
                                                                               : e->id);
                printf("Node:\t\t%s\nKind:\t\t%s\n", node, e->kind);
                if (strcmp(e->kind, "builder") == 0) {
                    char scope[128];
                    farm_text_inert(scope, sizeof scope, e->scope);
                    printf("Client:\t\t%s\nPlatform:\t%s\n", scope, id);
                } else {
                    printf("%s\t\t%s\n", strcmp(e->kind, "job") == 0 ? "Job:" : "Digest:", id);
                }
                printf("Size:\t\t%s (%llu bytes)\nLast used:\t%s\nIn use:\t\t%s\n"
                       "Reclaimable:\t%s\n\n", size, (unsigned long long)e->size, ago,
                       e->in_use ? "true" : "false", e->in_use ? "false" : "true");
            } else {
                printf("%-16s %-44s %-8s %-12s %s\n", node, what, size, ago,
                       e->in_use ? "false (in use)" : "true");
            }
        }
    }
    {
        char t[16], rcl[16];
        farm_text_bytes(t, sizeof t, total);
        farm_text_bytes(rcl, sizeof rcl, reclaim);
        printf("Reclaimable:\t%s\nTotal:\t\t%s (%llu bytes)\n", rcl, t, total);
    }
    rc = s_missing(r, "du");
    farm_wire_free(&reply);
    return rc;
}

/* buildx's rule: ask on a terminal; without one, only -f prunes. 1 to go on. */
static int s_confirm(const args_t *a)
{
    char line[16];
    if (a->force)
        return 1;
    if (!isatty(STDIN_FILENO)) {
        fprintf(stderr, "farmctl prune: refusing to prune without confirmation: stdin is not "
                        "a terminal; pass -f (--force) to prune without asking\n");
        return 0;
    }
    fprintf(stderr, "WARNING! This removes the builder caches and cached contexts no running "
                    "job uses%s on %s%s.\nAre you sure you want to continue? [y/N] ",
            a->all ? ", base images included," : "", a->n_nodes ? "the nodes named" : "every "
            "connected node", a->until_s ? " (only what the filter selects)" : "");
    fflush(stderr);
    if (!fgets(line, sizeof line, stdin) || (line[0] != 'y' && line[0] != 'Y')) {
        fprintf(stderr, "farmctl prune: nothing pruned\n");
        return 0;
    }
    return 1;
}

int farmctl_prune_main(int argc, char **argv)
{
    args_t a;
    Farm__Envelope *reply = NULL;
    const Farm__CacheReply *r;
    unsigned long long freed = 0;
    int rc;

    if ((rc = s_args(&a, argc, argv, "prune")) >= 0)
        return rc;
    if (!s_confirm(&a))
        return 1;
    if (s_ask(&reply, &a, "prune", 1) != 0)
        return 1;
    r = reply->cache_reply;
    if (a.json) {
        farm_pbjson_print(stdout, &r->base);
        rc = s_missing(r, "prune");
        farm_wire_free(&reply);
        return rc;
    }
    for (size_t i = 0; i < r->n_reports; i++) {
        const Farm__CacheReport *rep = r->reports[i];
        char node[128];
        farm_text_inert(node, sizeof node, rep->node);
        for (size_t k = 0; k < rep->n_entries; k++) {
            const Farm__CacheEntry *e = rep->entries[k];
            char what[300], size[16];
            s_what(what, sizeof what, e);
            if (e->kept[0]) {
                char why[256];
                farm_text_inert(why, sizeof why, e->kept);
                printf("%-16s kept   %-44s %s\n", node, what, why);
            } else {
                farm_text_bytes(size, sizeof size, (unsigned long long)e->freed);
                printf("%-16s pruned %-44s %s freed\n", node, what, size);
            }
        }
        freed += rep->freed;
    }
    {
        char f[16];
        farm_text_bytes(f, sizeof f, freed);
        printf("Total:\t%s reclaimed (%llu bytes)\n", f, freed);
    }
    rc = s_missing(r, "prune");
    farm_wire_free(&reply);
    return rc;
}
