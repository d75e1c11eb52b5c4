/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/warmfile.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"
#include "common/log.h"

struct farm_warmfile {
    char path[FARM_PATH_MAX];
    farm_warm_t *warm;
    const char **node_names; /* farm.yaml's, by node index */
    size_t n_nodes;
    long long saved_at;
    int save_failed;         /* said once until a save works again */
};

farm_warmfile_t *farm_warmfile_new(const char *path, farm_warm_t *warm,
                                   const farm_config_t *cfg)
{
    farm_warmfile_t *self = calloc(1, sizeof *self);

    if (!self || !(self->node_names = calloc(cfg->n_nodes + 1, sizeof *self->node_names))) {
        farm_error_set(FARM_ERROR, "out of memory");
        goto fail;
    }
    if (farm_path_fmt(self->path, sizeof self->path, "%s", path) < 0)
        goto fail;
    self->warm = warm;
    self->n_nodes = cfg->n_nodes;
    for (size_t i = 0; i < cfg->n_nodes; i++)
        self->node_names[i] = cfg->nodes[i].name;
    return self;
fail:
    farm_warmfile_destroy(&self);
    return NULL;
}

void farm_warmfile_destroy(farm_warmfile_t **self_p)
{
    farm_warmfile_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    free(self->node_names);
    free(self);
    *self_p = NULL;
}

int farm_warmfile_names(farm_warmfile_t *self, const char *const *names, size_t n)
{
    const char **copy = calloc(n + 1, sizeof *copy);

    if (!copy)
        return farm_error_set(FARM_ERROR, "out of memory");
    for (size_t i = 0; i < n; i++)
        copy[i] = names[i];
    free(self->node_names);
    self->node_names = copy;
    self->n_nodes = n;
    return 0;
}

int farm_warmfile_restore(farm_warmfile_t *self)
{
    int rc;

    if ((rc = farm_fs_remove_atomic_temps(self->path)) > 0)
        farm_log_info("removed %d temp file(s) of %s left by an earlier run", rc, self->path);
    if ((rc = farm_warm_load(self->warm, self->path, self->node_names, self->n_nodes)) < 0)
        farm_log_warn("%s; starting without knowing which nodes hold which caches",
                      farm_error_last());
    else if (rc > 0)
        farm_log_info("warm placement: %d repositories' cache nodes restored from %s", rc,
                      self->path);
    return rc;
}

int farm_warmfile_save(farm_warmfile_t *self, long long now, int force)
{
    if (!farm_warm_dirty(self->warm) || (!force && now - self->saved_at < FARM_WARMFILE_SAVE_MS))
        return 0;
    self->saved_at = now;
    if (farm_warm_save(self->warm, self->path, self->node_names, self->n_nodes) < 0) {
        if (!self->save_failed)
            farm_log_warn("cannot save which nodes hold which caches: %s (warm placement is "
                          "lost if the coordinator restarts)", farm_error_last());
        self->save_failed = 1;
        return FARM_EIO;
    }
    self->save_failed = 0;
    return 1;
}
