/* SPDX-License-Identifier: Apache-2.0 */
/* The peers farm.yaml enrols by key (nodes: and clients:), indexed for the ZAP handler
 * and for the names the clients' messages carry as their User-Id. */
#ifndef FARM_COORD_ENROLLED_H
#define FARM_COORD_ENROLLED_H

#include <stdint.h>

#include "common/config.h"

typedef struct farm_enrolled farm_enrolled_t;

/* Indexes every node's and client's key; cfg is borrowed and must outlive the object.
 * NULL on failure (the error slot names the node or client). */
farm_enrolled_t *farm_enrolled_new(const farm_config_t *cfg);
void farm_enrolled_destroy(farm_enrolled_t **self_p);

/* Which enrolled peer key is at an endpoint (domain "agents": a node's name; "clients":
 * the client's key itself, in Z85, so that each message is judged by the key that sent it
 * against the index in force: a reload that removes or changes a client's key shuts out
 * connections made with the old one, whatever its name), or NULL to refuse; then
 * *other = 1 when the key is enrolled for the other endpoint (a node dialling the
 * clients' port, or the reverse). A farm_zap_lookup_fn. */
const char *farm_enrolled_lookup(const farm_enrolled_t *self, const char *domain,
                                 const uint8_t key[32], int *other);
/* The enrolled client called name, or NULL. */
const farm_config_client_t *farm_enrolled_client(const farm_enrolled_t *self, const char *name);
/* The enrolled client whose public key is key_z85 (the clients' User-Id), or NULL. */
const farm_config_client_t *farm_enrolled_client_by_key(const farm_enrolled_t *self,
                                                        const char *key_z85);

#endif
