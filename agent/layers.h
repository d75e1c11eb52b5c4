/* SPDX-License-Identifier: Apache-2.0 */
/* The node's layer cache: buildah --layers keeps every step's image in builder storage, one
 * storage per platform (ROOT/<os-arch-variant>/storage), so jobs of different platforms
 * never race on a base image's name, and a prune never runs while a job of that platform
 * does (a lock file per platform: builds hold it shared, the prune exclusively).
 * The pure parts live here; agent/worker.c runs the builder. */
#ifndef FARM_AGENT_LAYERS_H
#define FARM_AGENT_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "common/limits.h"
#include "common/platform.h"

/* "linux-arm-v7": a platform as one path component. */
int farm_layers_slug(char *out, size_t cap, const farm_platform_t *p);

/* Opens (creating) ROOT/SLUG.lock and takes it shared or exclusive; nonblock: fail at
 * once if taken. The fd (close it to release), or < 0 (FARM_ERETRY when taken). */
int farm_layers_lock(const char *root, const char *slug, int exclusive, int nonblock);

/* The registry cache of one platform: REPO/SLUG, where repo is "host[:port]/path" as the
 * user gave it (farmctl --cache-to/--cache-from, farm.yaml build.cache), so platforms
 * never overwrite each other's cache. -1 if repo is not such a repository (no tag, no
 * digest, no scheme). */
int farm_layers_cache_ref(char *out, size_t cap, const char *repo, const char *slug);

/* What the builder's output said, line by line: STEP lines, the ones taken from the cache
 * ("--> Using cache ID"), and a failed cache push. Builder output is partly the
 * Dockerfile's: these numbers are statistics, never decisions about trust. */
/* One stage's FROM as buildah printed it ("[2/3] STEP 1/4: FROM NAME [AS ALIAS]", ARGs
 * expanded): for provenance, resolved to a digest afterwards (agent/worker.c). */
#define FARM_LAYERS_FROMS_MAX 16
typedef struct {
    char name[FARM_REFERENCE_MAX + 1];
    char alias[128];
    unsigned stage;  /* 1-based, of `stages` ("[2/3]"; 1 of 1 without the prefix) */
    int doubted;     /* a second FROM line came for this stage: a RUN step printed one */
} farm_layers_from_t;

typedef struct {
    uint32_t steps, cache_hits; /* at most one hit per step: never more hits than steps */
    int cache_push_failed;
    int step_open;              /* a STEP line came, and no hit for it yet */
    /* Each stage's FROM line, in the order the stages ran. A RUN step can print lines
     * like buildah's: the first FROM line's stage count holds (lines with another are
     * ignored), and a stage that gets two FROM lines is doubted: its base is left out,
     * never guessed (a RUN step's output comes after its own stage's FROM line, so a
     * forged one either repeats a stage or comes before the real line of a later one). */
    farm_layers_from_t froms[FARM_LAYERS_FROMS_MAX];
    size_t n_froms;
    unsigned stages;
} farm_layers_stats_t;
void farm_layers_scan(farm_layers_stats_t *st, const char *line);

#endif
