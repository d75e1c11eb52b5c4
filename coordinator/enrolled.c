/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/enrolled.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/hmap.h"
#include "common/keys.h"

struct farm_enrolled {
    farm_hmap_t *node_keys;   /* 32-byte public key -> node name */
    farm_hmap_t *client_keys; /* 32-byte public key -> farm_config_client_t */
    farm_hmap_t *clients_by_name;
};

farm_enrolled_t *farm_enrolled_new(const farm_config_t *cfg)
{
    farm_enrolled_t *self = calloc(1, sizeof *self);
    uint8_t raw[32];

    if (!self || !(self->node_keys = farm_hmap_new()) || !(self->client_keys = farm_hmap_new()) ||
        !(self->clients_by_name = farm_hmap_new())) {
        farm_error_set(FARM_ERROR, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_nodes; i++) {
        if (farm_key_decode(raw, cfg->nodes[i].key) < 0 ||
            farm_hmap_put(self->node_keys, raw, 32, cfg->nodes[i].name) < 0) {
            farm_error_set(FARM_ERROR, "node %s: cannot index its key", cfg->nodes[i].name);
            goto fail;
        }
    }
    for (size_t i = 0; i < cfg->n_clients; i++) {
        if (farm_key_decode(raw, cfg->clients[i].key) < 0 ||
            farm_hmap_put(self->client_keys, raw, 32, &cfg->clients[i]) < 0 ||
            farm_hmap_puts(self->clients_by_name, cfg->clients[i].name, &cfg->clients[i]) < 0) {
            farm_error_set(FARM_ERROR, "client %s: cannot index its key", cfg->clients[i].name);
            goto fail;
        }
    }
    return self;
fail:
    farm_enrolled_destroy(&self);
    return NULL;
}

void farm_enrolled_destroy(farm_enrolled_t **self_p)
{
    farm_enrolled_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    farm_hmap_destroy(&self->node_keys);
    farm_hmap_destroy(&self->client_keys);
    farm_hmap_destroy(&self->clients_by_name);
    free(self);
    *self_p = NULL;
}

const char *farm_enrolled_lookup(const farm_enrolled_t *self, const char *domain,
                                 const uint8_t key[32], int *other)
{
    const char *user = NULL;

    if (strcmp(domain, "agents") == 0) {
        user = farm_hmap_get(self->node_keys, key, 32);
        *other = !user && farm_hmap_get(self->client_keys, key, 32) != NULL;
    } else if (strcmp(domain, "clients") == 0) {
        const farm_config_client_t *c = farm_hmap_get(self->client_keys, key, 32);
        user = c ? c->key : NULL;
        *other = !user && farm_hmap_get(self->node_keys, key, 32) != NULL;
    }
    return user;
}

const farm_config_client_t *farm_enrolled_client(const farm_enrolled_t *self, const char *name)
{
    return farm_hmap_gets(self->clients_by_name, name);
}

const farm_config_client_t *farm_enrolled_client_by_key(const farm_enrolled_t *self,
                                                        const char *key_z85)
{
    uint8_t raw[32];

    if (!key_z85 || farm_key_decode(raw, key_z85) < 0)
        return NULL;
    return farm_hmap_get(self->client_keys, raw, 32);
}
