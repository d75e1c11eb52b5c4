/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/builder.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/layers.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/proc.h"

#define RUN_ARGV_MAX (FARM_BUILDER_PREFIX_MAX + 16)

/* A cache scope is a client's name (farm.yaml's rule: [A-Za-z0-9._-]), used as one path
 * component: never "." or "..". A farm without keys uses "@keyless", which no client name
 * can be. */
static int s_scope_ok(const char *s)
{
    size_t n = strlen(s);
    return n <= FARM_NAME_MAX && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

int farm_builder_init(farm_builder_t *b, const Farm__BuilderOptions *opts, const char *scope,
                      const farm_platform_t *p)
{
    memset(b, 0, sizeof *b);
    b->opts = opts;
    b->lock = -1;
    if (!s_scope_ok(scope))
        return farm_error_set(FARM_EINVALID, "cache scope \"%.40s\" is not a client name",
                              scope);
    if (farm_layers_slug(b->slug, sizeof b->slug, p) < 0)
        return FARM_ERROR;
    if (opts->root[0] &&
        (farm_path_fmt(b->scope, sizeof b->scope, "%s/%s", opts->root,
                       scope[0] ? scope : "@keyless") < 0 ||
         farm_path_fmt(b->root, sizeof b->root, "%s/%s/storage", b->scope, b->slug) < 0 ||
         farm_path_fmt(b->runroot, sizeof b->runroot, "%s/%s/run", b->scope, b->slug) < 0))
        return farm_error_wrap(FARM_ETOOBIG, "--builder-root");
    return 0;
}

int farm_builder_prefix(char **argv, const farm_builder_t *b)
{
    int n = b->sb ? farm_sandbox_prefix(b->sb, argv) : 0;
    argv[n++] = b->opts->builder;
    if (b->root[0]) {
        argv[n++] = "--root";
        argv[n++] = (char *)b->root;
        argv[n++] = "--runroot";
        argv[n++] = (char *)b->runroot;
    }
    if (b->opts->storage_driver[0]) {
        argv[n++] = "--storage-driver";
        argv[n++] = b->opts->storage_driver;
    }
    return n;
}

static void s_on_nothing(void *arg, const char *line)
{
    (void)arg;
    (void)line;
}

int farm_builder_run(const farm_builder_t *b, void (*fn)(void *, const char *), void *arg,
                     const char *const *words)
{
    char *argv[RUN_ARGV_MAX];
    int n = farm_builder_prefix(argv, b);

    for (; *words && n < RUN_ARGV_MAX - 1; words++)
        argv[n++] = (char *)*words;
    argv[n] = NULL;
    return farm_proc_run_lines(argv, NULL, b->envp, fn ? fn : s_on_nothing, arg);
}

static void s_on_first_number(void *arg, const char *line)
{
    uint64_t *v = arg;
    if (!*v)
        *v = strtoull(line, NULL, 10);
}

uint64_t farm_builder_bytes(const farm_builder_t *b, const char *dir)
{
    char *argv[FARM_SANDBOX_PREFIX_MAX + 4];
    int n = b->sb ? farm_sandbox_prefix(b->sb, argv) : 0;
    uint64_t v = 0;

    argv[n++] = "du";
    argv[n++] = "-sb";
    argv[n++] = (char *)dir;
    argv[n] = NULL;
    farm_proc_run_lines(argv, NULL, b->envp, s_on_first_number, &v);
    return v;
}

/* The oldest image (by creation) in builder storage: "buildah images" lists the tagged
 * ones, each job's final image, whose untagged parents are the steps only it uses. */
typedef struct {
    char created[64], id[80];
} oldest_t;

static void s_on_image(void *arg, const char *line)
{
    oldest_t *o = arg;
    const char *bar = strchr(line, '|');
    size_t n = bar ? (size_t)(bar - line) : 0;

    if (!bar || n >= sizeof o->created || strlen(bar + 1) >= sizeof o->id ||
        strspn(bar + 1, "0123456789abcdef") != strlen(bar + 1) || !bar[1])
        return;
    if (!o->id[0] || strncmp(line, o->created, n) < 0) {
        memcpy(o->created, line, n);
        o->created[n] = 0;
        strcpy(o->id, bar + 1);
    }
}

int farm_builder_enter(farm_builder_t *b)
{
    static const char *const rm_all[] = {"rm", "--all", NULL};
    int fd;

    if (!b->scope[0])
        return 0;
    if (mkdir(b->scope, 0700) != 0 && errno != EEXIST)
        return farm_error_set(FARM_EIO, "builder storage %s: %s", b->scope, strerror(errno));
    if ((fd = farm_layers_lock(b->scope, b->slug, 1, 1)) >= 0) {
        farm_builder_run(b, NULL, NULL, rm_all);
        close(fd);
    }
    if ((b->lock = farm_layers_lock(b->scope, b->slug, 0, 0)) < 0)
        return b->lock;
    futimens(b->lock, NULL); /* last used now: the node-wide bound empties the oldest first */
    return 0;
}

void farm_builder_tidy(farm_builder_t *b)
{
    static const char *const rm_all[] = {"rm", "--all", NULL};
    int fd;

    if (!b->scope[0] || (fd = farm_layers_lock(b->scope, b->slug, 1, 1)) < 0)
        return;
    farm_builder_run(b, NULL, NULL, rm_all);
    close(fd);
}

void farm_builder_leave(farm_builder_t *b)
{
    if (b->lock >= 0)
        close(b->lock);
    b->lock = -1;
}

/* ------------------------------------------------------------------ the node-wide bound */

typedef farm_builder_cache_t s_cache_t;

static int s_by_use(const void *a, const void *b)
{
    const struct timespec *x = &((const s_cache_t *)a)->used, *y = &((const s_cache_t *)b)->used;
    if (x->tv_sec != y->tv_sec)
        return x->tv_sec < y->tv_sec ? -1 : 1;
    return x->tv_nsec < y->tv_nsec ? -1 : x->tv_nsec > y->tv_nsec;
}

/* strspn over the first n bytes of s only */
static size_t s_span(const char *s, const char *accept, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] && strchr(accept, s[i]))
        i++;
    return i;
}

/* Adds SCOPE's caches (its *.lock files whose name is a platform slug) to *list. */
static void s_scan_scope(s_cache_t **list, size_t *n, size_t *cap, const char *root,
                         const char *scope)
{
    char dir[FARM_PATH_MAX], path[FARM_PATH_MAX];
    struct dirent *e;
    DIR *d;

    if (strlen(scope) > FARM_NAME_MAX ||
        farm_path_fmt(dir, sizeof dir, "%s/%s", root, scope) < 0 || !(d = opendir(dir)))
        return;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        struct stat st;
        s_cache_t *c;

        if (len <= 5 || len - 5 >= FARM_PLATFORM_STRLEN ||
            strcmp(e->d_name + len - 5, ".lock") != 0 ||
            /* SLUG.lock, in farm_layers_slug's alphabet (a variant may hold '.' or '_'),
             * never . or .. */
            s_span(e->d_name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
                   len - 5) != len - 5 ||
            strcmp(e->d_name, "..lock") == 0 || strcmp(e->d_name, "...lock") == 0 ||
            farm_path_fmt(path, sizeof path, "%s/%s", dir, e->d_name) < 0 ||
            lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (*n == *cap) {
            s_cache_t *grown = realloc(*list, (*cap ? *cap * 2 : 16) * sizeof **list);
            if (!grown)
                break;
            *list = grown;
            *cap = *cap ? *cap * 2 : 16;
        }
        c = &(*list)[(*n)++];
        memcpy(c->scope, scope, strlen(scope) + 1);
        memcpy(c->slug, e->d_name, len - 5);
        c->slug[len - 5] = '\0';
        c->used = st.st_mtim;
    }
    closedir(d);
}

farm_builder_cache_t *farm_builder_caches(const char *root, size_t *out_n)
{
    s_cache_t *list = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    DIR *d = opendir(root);

    while (d && (e = readdir(d)))
        if (s_scope_ok(e->d_name) || strcmp(e->d_name, "@keyless") == 0)
            s_scan_scope(&list, &n, &cap, root, e->d_name);
    if (d)
        closedir(d);
    if (n)
        qsort(list, n, sizeof *list, s_by_use);
    *out_n = n;
    return list;
}

int farm_builder_open(farm_builder_t *b, const Farm__BuilderOptions *opts,
                      const farm_builder_cache_t *c)
{
    memset(b, 0, sizeof *b);
    b->opts = opts;
    b->lock = -1;
    if (strlen(c->slug) >= sizeof b->slug ||
        farm_path_fmt(b->scope, sizeof b->scope, "%s/%s", opts->root, c->scope) < 0 ||
        farm_path_fmt(b->root, sizeof b->root, "%s/%s/storage", b->scope, c->slug) < 0 ||
        farm_path_fmt(b->runroot, sizeof b->runroot, "%s/%s/run", b->scope, c->slug) < 0)
        return farm_error_set(FARM_ETOOBIG, "builder cache %s/%s: path too long", c->scope,
                              c->slug);
    memcpy(b->slug, c->slug, strlen(c->slug) + 1);
    return 0;
}

/* Every cache under the builder root but b's own, least recently used first. */
static s_cache_t *s_other_caches(const farm_builder_t *b, size_t *out_n)
{
    size_t n = 0, k = 0;
    const char *own = strrchr(b->scope, '/') + 1;
    s_cache_t *list = farm_builder_caches(b->opts->root, &n);

    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].scope, own) != 0 || strcmp(list[i].slug, b->slug) != 0)
            list[k++] = list[i];
    *out_n = k;
    return list;
}

/* The whole builder root over max: other caches that no job uses (their lock, exclusively)
 * are emptied, least recently used first, until it fits. Their names stay out of this
 * build's log: they may be other clients'. Returns the root's bytes. */
static uint64_t s_bound_node(const farm_builder_t *b, uint64_t max)
{
    static const char *const rm_all[] = {"rm", "--all", NULL};
    static const char *const wipe[] = {"rmi", "--all", "--force", NULL};
    uint64_t size = farm_builder_bytes(b, b->opts->root), before = size;
    size_t n = 0, emptied = 0, busy = 0;
    s_cache_t *list;

    if (max == 0 || size <= max)
        return size;
    list = s_other_caches(b, &n);
    for (size_t i = 0; i < n && size > max; i++) {
        farm_builder_t o = *b;
        int x;

        o.lock = -1;
        if (farm_path_fmt(o.scope, sizeof o.scope, "%s/%s", b->opts->root, list[i].scope) < 0 ||
            farm_path_fmt(o.root, sizeof o.root, "%s/%s/storage", o.scope, list[i].slug) < 0 ||
            farm_path_fmt(o.runroot, sizeof o.runroot, "%s/%s/run", o.scope, list[i].slug) < 0)
            continue;
        memcpy(o.slug, list[i].slug, sizeof o.slug);
        if ((x = farm_layers_lock(o.scope, o.slug, 1, 1)) < 0) {
            busy++; /* a job builds in it: never emptied under a running job */
            continue;
        }
        farm_builder_run(&o, NULL, NULL, rm_all);
        farm_builder_run(&o, NULL, NULL, wipe);
        futimens(x, NULL); /* empty now: the last to try next time, not the first */
        close(x);
        emptied++;
        size = farm_builder_bytes(b, b->opts->root);
    }
    free(list);
    if (emptied)
        printf("farm: this node's builder storage %.1f MiB > --builder-cache-max %.1f MiB: "
               "emptied %zu idle cache(s) of other clients or platforms, least recently used "
               "first, to %.1f MiB\n", before / 1048576.0, max / 1048576.0, emptied,
               size / 1048576.0);
    if (size > max)
        printf("farm: this node's builder storage %.1f MiB is over --builder-cache-max "
               "%.1f MiB; %zu cache(s) in use by running jobs: a later job prunes them\n",
               size / 1048576.0, max / 1048576.0, busy);
    return size;
}

uint64_t farm_builder_bound(farm_builder_t *b, uint64_t max)
{
    static const char *const prune[] = {"rmi", "--prune", NULL};
    static const char *const list[] = {"images", "--format", "{{.CreatedAtRaw}}|{{.ID}}", NULL};
    static const char *const wipe[] = {"rmi", "--all", "--force", NULL};
    char mine[FARM_PATH_MAX + FARM_PLATFORM_STRLEN + 2];
    uint64_t size = 0, before = 0;
    int x, removed = 0;

    if (!b->scope[0])
        return 0;
    if (farm_path_fmt(mine, sizeof mine, "%s/%s", b->scope, b->slug) < 0)
        return 0;
    farm_builder_leave(b);
    if (max && (size = before = farm_builder_bytes(b, mine)) == 0) {
        /* a cache a job just used is never empty: du failed, and saying so beats a bound
         * that quietly does nothing */
        printf("farm: cannot measure builder storage %s (du); --builder-cache-max is not "
               "applied after this job\n", mine);
        return 0;
    }
    if (max == 0 || size <= max)
        return s_bound_node(b, max);
    if ((x = farm_layers_lock(b->scope, b->slug, 1, 1)) < 0) {
        printf("farm: builder cache over --builder-cache-max; other jobs of it run, so a "
               "later job prunes it\n");
        return s_bound_node(b, max);
    }
    farm_builder_run(b, NULL, NULL, prune);
    while ((size = farm_builder_bytes(b, mine)) > max && removed < 10000) {
        oldest_t o = {{0}, {0}};
        const char *rmi[] = {"rmi", "--force", o.id, NULL};
        if (farm_builder_run(b, s_on_image, &o, list) != 0 || !o.id[0] ||
            farm_builder_run(b, NULL, NULL, rmi) != 0)
            break;
        removed++;
    }
    if (size > max) {
        farm_builder_run(b, NULL, NULL, wipe);
        size = farm_builder_bytes(b, mine);
    }
    close(x);
    printf("farm: builder cache %.1f MiB > --builder-cache-max %.1f MiB: pruned %s (%d job "
           "images) to %.1f MiB\n", before / 1048576.0, max / 1048576.0, b->slug, removed,
           size / 1048576.0);
    return s_bound_node(b, max);
}
