/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/layers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/buildflags.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"

int farm_layers_slug(char *out, size_t cap, const farm_platform_t *p)
{
    char s[FARM_PLATFORM_STRLEN];

    farm_platform_format(s, sizeof s, p);
    for (char *c = s; *c; c++)
        if (*c == '/')
            *c = '-';
    return farm_path_fmt(out, cap, "%s", s);
}

int farm_layers_lock(const char *root, const char *slug, int exclusive, int nonblock)
{
    char path[FARM_PATH_MAX];
    int fd;

    if (farm_path_fmt(path, sizeof path, "%s/%s.lock", root, slug) < 0)
        return FARM_ETOOBIG;
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return farm_error_set(FARM_EIO, "builder cache lock %s: %s", path, strerror(errno));
    while (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | (nonblock ? LOCK_NB : 0)) != 0) {
        int e = errno;
        if (e == EINTR)
            continue;
        close(fd);
        if (e == EWOULDBLOCK)
            return farm_error_set(FARM_ERETRY, "builder cache %s is in use", slug);
        return farm_error_set(FARM_EIO, "builder cache lock %s: %s", path, strerror(e));
    }
    return fd;
}

int farm_layers_cache_ref(char *out, size_t cap, const char *repo, const char *slug)
{
    if (!farm_cache_repo_ok(repo))
        return farm_error_set(FARM_EINVALID, "cache repository \"%.100s\" must be "
                              "REGISTRY/REPOSITORY (no tag, digest or scheme)", repo ? repo : "");
    return farm_path_fmt(out, cap, "%s/%s", repo, slug);
}

/* " FROM NAME [AS ALIAS]": a stage's first step. A name that does not fit is dropped,
 * never cut: a cut name would resolve to another image. */
static void s_scan_from(farm_layers_stats_t *st, const char *s, unsigned stage, unsigned stages)
{
    farm_layers_from_t *f;
    size_t nl, al = 0;
    const char *name, *alias = NULL;

    if (strncmp(s, " FROM ", 6) != 0)
        return;
    if (!st->stages)
        st->stages = stages;
    if (stages != st->stages || stage < 1 || stage > stages)
        return;
    for (size_t i = 0; i < st->n_froms; i++)
        if (st->froms[i].stage == stage) {
            st->froms[i].doubted = 1;
            return;
        }
    if (st->n_froms >= FARM_LAYERS_FROMS_MAX)
        return;
    name = s + 6;
    nl = strcspn(name, " \t");
    if (nl == 0 || nl > FARM_REFERENCE_MAX)
        return;
    if (name[nl] && (strncmp(name + nl, " AS ", 4) == 0 || strncmp(name + nl, " as ", 4) == 0)) {
        alias = name + nl + 4;
        al = strcspn(alias, " \t");
        if (al >= sizeof f->alias)
            return;
    }
    f = &st->froms[st->n_froms++];
    f->stage = stage;
    f->doubted = 0;
    memcpy(f->name, name, nl);
    f->name[nl] = '\0';
    if (alias)
        memcpy(f->alias, alias, al);
    f->alias[al] = '\0';
}

void farm_layers_scan(farm_layers_stats_t *st, const char *line)
{
    const char *s;

    /* "STEP 3/5: RUN ..." or, in multi-stage builds, "[2/2] STEP 1/4: FROM ..." */
    if ((s = strstr(line, "STEP ")) && (s == line || (s >= line + 2 && s[-1] == ' ' &&
                                                      s[-2] == ']'))) {
        unsigned a, b, stage = 1, stages = 1;
        char colon;
        if (sscanf(s, "STEP %u/%u%c", &a, &b, &colon) == 3 && colon == ':') {
            st->steps++;
            st->step_open = 1;
            if (s != line && (sscanf(line, "[%u/%u]", &stage, &stages) != 2 ||
                              line[strcspn(line, "]") + 1] != ' ' ||
                              line + strcspn(line, "]") + 2 != s))
                return;
            if (a == 1)
                s_scan_from(st, strchr(s, ':') + 1, stage, stages);
        }
    } else if (strncmp(line, "--> Using cache ", 16) == 0 && st->step_open) {
        st->cache_hits++;
        st->step_open = 0;
    } else if (strncmp(line, "Error: failed pushing cache to ", 31) == 0) {
        st->cache_push_failed = 1;
    }
}
