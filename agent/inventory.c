/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/inventory.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/builder.h"
#include "agent/layers.h"
#include "agent/sandbox.h"
#include "common/child.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/platform.h"
#include "common/prunefilter.h"
#include "common/wire.h"
#include "farm.pb-c.h"

#define REQUEST_MAX (64u << 10)
#define JOB_TAG_PREFIX "localhost/farm-job:" /* agent/worker.c tags each job's image so */
#define PRUNE_PASSES 256  /* rmi --prune rounds: each removes the steps no image needs now */
#define ENTRIES_MAX 4096  /* caches listed (clients x platforms): the result's bound */

int farm_inventory_decide(char *why, size_t cap, const farm_inventory_ask_t *ask, int in_use,
                          long long used_s)
{
    char age[32], until[32];

    if (cap)
        why[0] = '\0';
    if (!ask->prune)
        return 0;
    if (in_use) {
        snprintf(why, cap, "in use by a running job");
        return 0;
    }
    if (ask->until_s && used_s > 0 && ask->now_s - used_s < (long long)ask->until_s) {
        farm_prunefilter_age(age, sizeof age,
                             ask->now_s > used_s ? (uint64_t)(ask->now_s - used_s) : 0);
        farm_prunefilter_age(until, sizeof until, ask->until_s);
        snprintf(why, cap, "used %s ago, within until=%s", age, until);
        return 0;
    }
    return 1;
}

int farm_inventory_platform(char *out, size_t cap, const char *slug)
{
    farm_platform_t p;
    char s[FARM_PLATFORM_STRLEN];
    size_t n = strlen(slug);

    if (n == 0 || n >= sizeof s)
        return -1;
    for (size_t i = 0; i <= n; i++)
        s[i] = slug[i] == '-' ? '/' : slug[i];
    if (farm_platform_parse(&p, s) < 0)
        return -1;
    farm_platform_format(out, cap, &p);
    /* the round trip must give the slug back: nothing else names a cache */
    {
        char back[FARM_PLATFORM_STRLEN];
        if (farm_layers_slug(back, sizeof back, &p) < 0 || strcmp(back, slug) != 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ the program */

static void s_count_line(void *arg, const char *line)
{
    if (line[0])
        (*(int *)arg)++;
}

typedef struct {
    char **names;
    size_t n, cap;
} names_t;

static void s_on_name(void *arg, const char *line)
{
    names_t *l = arg;
    char **grown;

    if (strncmp(line, JOB_TAG_PREFIX, strlen(JOB_TAG_PREFIX)) != 0 || l->n >= 100000)
        return;
    if (l->n == l->cap) {
        if (!(grown = realloc(l->names, (l->cap ? l->cap * 2 : 16) * sizeof *grown)))
            return;
        l->names = grown;
        l->cap = l->cap ? l->cap * 2 : 16;
    }
    if ((l->names[l->n] = strdup(line)))
        l->n++;
}

/* Empties one cache (its lock held exclusively): the working containers, then every
 * job's image and the steps only they need; with all, the base images too. */
static void s_empty(const farm_builder_t *b, int all)
{
    static const char *const rm_all[] = {"rm", "--all", NULL};
    static const char *const wipe[] = {"rmi", "--all", "--force", NULL};
    static const char *const names[] = {"images", "--format", "{{.Name}}:{{.Tag}}", NULL};
    static const char *const prune[] = {"rmi", "--prune", NULL};
    names_t l = {0};

    farm_builder_run(b, NULL, NULL, rm_all);
    if (all) {
        farm_builder_run(b, NULL, NULL, wipe);
        return;
    }
    farm_builder_run(b, s_on_name, &l, names);
    for (size_t i = 0; i < l.n; i++) {
        const char *rmi[] = {"rmi", "--force", l.names[i], NULL};
        farm_builder_run(b, NULL, NULL, rmi);
        free(l.names[i]);
    }
    free(l.names);
    /* a step's image is dangling once nothing is built on it: one layer per round */
    for (int pass = 0; pass < PRUNE_PASSES; pass++) {
        int removed = 0;
        if (farm_builder_run(b, s_count_line, &removed, prune) != 0 || removed == 0)
            break;
    }
}

/* The builder's environment: ours without what points at the user's config, a private
 * HOME, and the sandbox's own variables. NULL-terminated, malloc'd. */
static char **s_env(const char *home, farm_sandbox_t *sb)
{
    static const char *const drop[] = {"HOME=", "XDG_CONFIG_HOME=", "XDG_RUNTIME_DIR=",
                                       "_CONTAINERS_", "DOCKER_CONFIG=", "REGISTRY_AUTH_FILE=",
                                       "CONTAINERS_REGISTRIES_CONF=", NULL};
    char *const *add = sb ? farm_sandbox_env(sb) : NULL;
    size_t n = 0, k = 0, m = 0;
    char **envp;

    while (environ[n])
        n++;
    while (add && add[m])
        m++;
    if (!(envp = calloc(n + m + 3, sizeof *envp)))
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int skip = 0;
        for (size_t d = 0; drop[d] && !skip; d++)
            skip = strncmp(environ[i], drop[d], strlen(drop[d])) == 0;
        if (!skip)
            envp[k++] = strdup(environ[i]);
    }
    if (asprintf(&envp[k], "HOME=%s", home) < 0)
        envp[k] = NULL;
    k++;
    for (size_t i = 0; i < m; i++)
        envp[k++] = strdup(add[i]);
    return envp;
}

static void s_env_free(char **envp, size_t cap)
{
    for (size_t i = 0; envp && i < cap; i++)
        free(envp[i]);
    free(envp);
}

/* Fills res->entries (the array *out_ents, its strings malloc'd) per builder cache. */
static int s_run(Farm__CacheJobResult *res, Farm__CacheEntry **out_ents,
                 const Farm__CacheJobRequest *rq)
{
    farm_inventory_ask_t ask = {.prune = rq->prune, .until_s = rq->until_s, .all = rq->all,
                                .now_s = (long long)time(NULL)};
    farm_sandbox_t *sb = NULL;
    farm_builder_cache_t *list = NULL;
    Farm__CacheEntry *ents = NULL, **ptrs = NULL;
    char **envp = NULL;
    size_t n = 0, envc = 0;

    if (!rq->builder || !rq->builder->builder[0] || !rq->builder->root[0] || !rq->home[0])
        return farm_error_set(FARM_EINVALID, "the request names no builder, root or home");
    if (mkdir(rq->home, 0700) != 0 && errno != EEXIST)
        return farm_error_set(FARM_EIO, "%s: %s", rq->home, strerror(errno));
    if (strcmp(rq->builder->isolation, "chroot") != 0 &&
        !(sb = farm_sandbox_start("none", NULL, 0)))
        return farm_error_wrap(FARM_ERROR, "the sandbox du and buildah run in");
    if (!(envp = s_env(rq->home, sb))) {
        farm_sandbox_stop(&sb);
        return farm_error_set(FARM_ERROR, "out of memory");
    }
    while (envp[envc])
        envc++;
    list = farm_builder_caches(rq->builder->root, &n);
    if (n > ENTRIES_MAX)
        n = ENTRIES_MAX;
    ents = calloc(n + 1, sizeof *ents);
    ptrs = calloc(n + 1, sizeof *ptrs);
    for (size_t i = 0; ents && ptrs && i < n; i++) {
        Farm__CacheEntry *e = &ents[res->n_entries];
        farm_builder_t b;
        char dir[FARM_PATH_MAX + FARM_PLATFORM_STRLEN + 2], plat[FARM_PLATFORM_STRLEN], why[128];
        char lock_err[128];
        int lock, go;

        if (farm_inventory_platform(plat, sizeof plat, list[i].slug) < 0 ||
            farm_builder_open(&b, rq->builder, &list[i]) < 0 ||
            farm_path_fmt(dir, sizeof dir, "%s/%s", b.scope, b.slug) < 0)
            continue;
        b.sb = sb;
        b.envp = envp;
        farm__cache_entry__init(e);
        e->kind = "builder";
        e->last_used_unix = list[i].used.tv_sec;
        /* a job holds its cache's lock shared while it builds */
        lock = farm_layers_lock(b.scope, b.slug, 1, 1);
        snprintf(lock_err, sizeof lock_err, "%.120s", lock < 0 ? farm_error_last() : "");
        e->in_use = lock == FARM_ERETRY;
        e->size = farm_builder_bytes(&b, dir);
        go = farm_inventory_decide(why, sizeof why, &ask, e->in_use, e->last_used_unix);
        if (lock < 0 && !e->in_use) { /* never emptied without its lock */
            snprintf(why, sizeof why, "%s", lock_err);
            go = 0;
        }
        e->scope = strdup(list[i].scope);
        e->platform = strdup(plat);
        e->kept = strdup(why);
        if (!e->scope || !e->platform || !e->kept) {
            free(e->scope);
            free(e->platform);
            free(e->kept);
            if (lock >= 0)
                close(lock);
            continue; /* out of memory: left out of the answer, untouched */
        }
        if (go) {
            uint64_t before = e->size;
            s_empty(&b, rq->all);
            e->size = farm_builder_bytes(&b, dir);
            e->freed = before > e->size ? before - e->size : 0;
            printf("farm: builder cache %s %s: %.1f MiB freed, %.1f MiB left\n", list[i].scope,
                   plat, e->freed / 1048576.0, e->size / 1048576.0);
        }
        if (lock >= 0)
            close(lock);
        ptrs[res->n_entries++] = e;
    }
    free(list);
    /* the running jobs' directories (extracted context, OCI layout, builder temp): in use
     * while they exist, removed by the agent when each job ends */
    if (ents && ptrs && rq->n_job_dirs == rq->n_job_ids && rq->n_job_dirs <= ENTRIES_MAX) {
        Farm__CacheEntry *grown_e = realloc(ents, (res->n_entries + rq->n_job_dirs + 1) *
                                                      sizeof *ents);
        Farm__CacheEntry **grown_p = grown_e ? realloc(ptrs, (res->n_entries + rq->n_job_dirs + 1) *
                                                                 sizeof *ptrs) : NULL;
        if (grown_e)
            ents = grown_e;
        if (grown_p)
            ptrs = grown_p;
        for (size_t i = 0; grown_e && grown_p && i < rq->n_job_dirs; i++) {
            Farm__CacheEntry *e = &ents[res->n_entries];
            farm_builder_t b = {.opts = rq->builder, .sb = sb, .envp = envp, .lock = -1};
            char why[128];

            farm__cache_entry__init(e);
            e->kind = "job";
            e->in_use = 1;
            e->last_used_unix = ask.now_s;
            e->size = farm_builder_bytes(&b, rq->job_dirs[i]);
            farm_inventory_decide(why, sizeof why, &ask, 1, ask.now_s);
            e->id = strdup(rq->job_ids[i]);
            e->kept = strdup(why);
            if (!e->id || !e->kept) {
                free(e->id);
                free(e->kept);
                continue;
            }
            ptrs[res->n_entries++] = e;
        }
        /* the pointers into ents moved with it */
        for (size_t i = 0; i < res->n_entries; i++)
            ptrs[i] = &ents[i];
    }
    s_env_free(envp, envc);
    farm_sandbox_stop(&sb);
    if (!ents || !ptrs) {
        free(ents);
        free(ptrs);
        return farm_error_set(FARM_ERROR, "out of memory");
    }
    res->entries = ptrs;
    *out_ents = ents;
    return 0;
}

/* An entry's string: ours (malloc'd) or protobuf-c's shared empty default. */
static void s_free_str(char *str)
{
    if (str != protobuf_c_empty_string)
        free(str);
}

int farm_inventory_main(void)
{
    Farm__CacheJobRequest *rq = NULL;
    Farm__CacheJobResult res = FARM__CACHE_JOB_RESULT__INIT;
    Farm__CacheEntry *ents = NULL;
    void *req = NULL;
    size_t req_len = 0;
    int rc;

    if (fcntl(FARM_CHILD_REQUEST_FD, F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(FARM_CHILD_RESULT_FD, F_SETFD, FD_CLOEXEC) != 0) {
        fprintf(stderr, "farm-agent cache: fds 3 and 4 must be open (the agent starts this)\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    farm_log_init("cache", FARM_LOG_INFO);
    res.error = "";
    if (farm_child_request_read(&req, &req_len, REQUEST_MAX) < 0 ||
        !(rq = farm__cache_job_request__unpack(NULL, req_len, req)))
        res.error = "the request is not a valid farm.CacheJobRequest";
    else if (s_run(&res, &ents, rq) < 0)
        res.error = (char *)farm_error_last();
    rc = farm_wire_result(&res.base) < 0 ? 1 : 0;
    for (size_t i = 0; i < res.n_entries; i++) {
        s_free_str(ents[i].scope);
        s_free_str(ents[i].platform);
        s_free_str(ents[i].id);
        s_free_str(ents[i].kept);
    }
    free(ents);
    free(res.entries);
    if (rq)
        farm__cache_job_request__free_unpacked(rq, NULL);
    free(req);
    return rc;
}
