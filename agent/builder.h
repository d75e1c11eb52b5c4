/* SPDX-License-Identifier: Apache-2.0 */
/* The builder in its storage, for one job (used by agent/worker.c): buildah with this
 * client's and platform's layer cache (BUILDER_ROOT/SCOPE/SLUG/storage, agent/layers.h),
 * run inside the job's sandbox when there is one (agent/sandbox.h); the cache's lock,
 * its leftovers and its bound (--builder-cache-max). */
#ifndef FARM_AGENT_BUILDER_H
#define FARM_AGENT_BUILDER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "agent/sandbox.h"
#include "common/limits.h"
#include "common/platform.h"
#include "farm.pb-c.h"

typedef struct {
    const Farm__BuilderOptions *opts;
    char scope[FARM_PATH_MAX];                        /* ROOT/SCOPE: one client's caches */
    char root[FARM_PATH_MAX], runroot[FARM_PATH_MAX]; /* SCOPE/SLUG/storage, SCOPE/SLUG/run */
    char slug[FARM_PLATFORM_STRLEN];                  /* the platform, one path component */
    int lock;                                         /* the cache's lock while we build */
    farm_sandbox_t *sb;                               /* NULL: isolation chroot */
    char *const *envp;                                /* the builder's environment */
} farm_builder_t;

/* The paths of scope's (a client's name, "" without keys: "@keyless") cache of platform p
 * under opts->root (none when opts->root is ""). FARM_EINVALID for a scope that is not one
 * path component of [A-Za-z0-9._-]. */
int farm_builder_init(farm_builder_t *b, const Farm__BuilderOptions *opts, const char *scope,
                      const farm_platform_t *p);

/* argv prefix "[sandbox entry] buildah [--root R --runroot RR] [--storage-driver D]";
 * returns how many entries it wrote (at most FARM_BUILDER_PREFIX_MAX). */
#define FARM_BUILDER_PREFIX_MAX (FARM_SANDBOX_PREFIX_MAX + 8)
int farm_builder_prefix(char **argv, const farm_builder_t *b);
/* Runs "PREFIX WORDS..." (NULL-terminated words) with its output given to fn (NULL:
 * dropped); its exit status. */
int farm_builder_run(const farm_builder_t *b, void (*fn)(void *, const char *), void *arg,
                     const char *const *words);

/* Takes the cache's lock shared (other jobs of this client and platform build beside us,
 * a prune may not). When nobody else holds it, first removes working containers an
 * earlier run left (an agent killed mid-build leaves them, with a RUN step's secret
 * mounts). No-op without a builder root. */
int farm_builder_enter(farm_builder_t *b);
/* --builder-cache-max (max, 0: none) bounds the node's whole builder root, after every
 * job, built or failed. First this cache: once it is over max and no other job of it runs
 * (its lock, exclusively), drops dangling images, then jobs' images oldest first, then the
 * whole cache. Then, while the root is over max, empties the other caches (clients',
 * platforms') that no job uses, least recently entered first. Never an image a running
 * job uses. Releases the lock. Returns the bytes of the whole builder root (0: unknown). */
uint64_t farm_builder_bound(farm_builder_t *b, uint64_t max);
/* Bytes under dir ("du -sb DIR" inside the sandbox when b has one: builder storage
 * belongs to the agent's subordinate ids); 0 when it cannot be measured. */
uint64_t farm_builder_bytes(const farm_builder_t *b, const char *dir);

/* One cache of the node: ROOT/SCOPE/SLUG.lock, last used (a job entered it) at mtime. */
typedef struct {
    char scope[FARM_NAME_MAX + 1], slug[FARM_PLATFORM_STRLEN];
    struct timespec used;
} farm_builder_cache_t;
/* Every cache under root, least recently used first (malloc'd; NULL when none). */
farm_builder_cache_t *farm_builder_caches(const char *root, size_t *out_n);
/* b for an existing cache c under opts->root (as farm_builder_init for a job). */
int farm_builder_open(farm_builder_t *b, const Farm__BuilderOptions *opts,
                      const farm_builder_cache_t *c);

/* Releases the cache's lock. */
void farm_builder_leave(farm_builder_t *b);
/* After a failed build, the lock released: removes the working containers the build left
 * (buildah keeps a failed step's) when no other job of this cache runs, so a full disk
 * does not stay full; the steps it committed stay as cache. */
void farm_builder_tidy(farm_builder_t *b);

#endif
