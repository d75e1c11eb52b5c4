/* SPDX-License-Identifier: Apache-2.0 */
/* farm.yaml: farm_config_parse (common/config.h) over arbitrary bytes. A refused file
 * must come with at least one located problem; an accepted one must be self-consistent
 * (every node a platform names is defined, every platform canonical and found again). */
#include "fuzz.h"

#include "common/config.h"
#include "common/error.h"
#include "common/platform.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

static void s_check_names(const farm_config_t *cfg, char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(farm_config_node(cfg, names[i]) != NULL, "platform names undefined node %s",
                   names[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    farm_config_t *cfg = NULL;
    farm_diag_t diags = {0};
    int rc;

    rc = farm_config_parse(&cfg, "fuzz.yaml", (const char *)data, size, &diags);
    if (rc < 0) {
        FUZZ_CHECK(cfg == NULL, "refused file left *out set");
        FUZZ_CHECK(rc == FARM_ERROR || diags.n > 0, "refused (%d) without a problem", rc);
        FUZZ_CHECK(diags.n <= 101, "%zu problems, at most 100 + a summary", diags.n);
        for (size_t i = 0; i < diags.n; i++)
            FUZZ_CHECK(diags.items[i] != NULL, "NULL problem %zu", i);
        farm_diag_clear(&diags);
        return 0;
    }
    FUZZ_CHECK(cfg != NULL && diags.n == 0, "accepted with %zu problems", diags.n);
    for (size_t i = 0; i < cfg->n_platforms; i++) {
        const farm_config_platform_t *p = &cfg->platforms[i];
        farm_platform_t pp;
        char canon[FARM_PLATFORM_STRLEN];
        FUZZ_CHECK(farm_platform_parse(&pp, p->platform) == 0, "bad platform %s", p->platform);
        farm_platform_format(canon, sizeof canon, &pp);
        FUZZ_CHECK(strcmp(canon, p->platform) == 0, "platform %s not canonical", p->platform);
        FUZZ_CHECK(farm_config_platform(cfg, p->platform) != NULL, "lookup of %s failed",
                   p->platform);
        s_check_names(cfg, p->native, p->n_native);
        s_check_names(cfg, p->emulated, p->n_emulated);
    }
    for (size_t i = 0; i < cfg->n_nodes; i++)
        FUZZ_CHECK(cfg->nodes[i].slots >= 1, "node %s has %d slots", cfg->nodes[i].name,
                   cfg->nodes[i].slots);
    for (size_t i = 0; i < cfg->n_registries; i++)
        (void)farm_config_registry_insecure(cfg, cfg->registries[i].host);
    FUZZ_CHECK(cfg->heartbeat_ms > 0 && cfg->liveness > 0, "heartbeat %d, liveness %d",
               cfg->heartbeat_ms, cfg->liveness);
    farm_config_destroy(&cfg);
    FUZZ_CHECK(cfg == NULL, "destroy did not clear the pointer");
    farm_diag_clear(&diags);
    return 0;
}
