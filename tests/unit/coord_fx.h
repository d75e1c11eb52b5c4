/* SPDX-License-Identifier: Apache-2.0 */
/* The coordinator's modules over one farm.yaml, without sockets, for the unit tests of
 * the modules on top of them: config, nodes, scheduler and builds, and node "a" up. */
#ifndef FARM_TEST_COORD_FX_H
#define FARM_TEST_COORD_FX_H

#include <string.h>

#include "common/config.h"
#include "coordinator/builds.h"
#include "coordinator/nodes.h"
#include "coordinator/scheduler.h"

#define COORD_FX_YAML                                                                      \
    "coordinator: {agents: 'tcp://127.0.0.1:1', clients: 'tcp://127.0.0.1:2'}\n"          \
    "platforms:\n  linux/amd64: [a]\n"                                                    \
    "nodes:\n  a: {slots: 4}\n"                                                           \
    "registries:\n  'reg.local:5000': {insecure: true}\n"

typedef struct {
    farm_config_t *cfg;
    farm_nodes_t *nodes;
    farm_scheduler_t *s;
    farm_builds_t *b;
} coord_fx_t;

static inline void coord_fx_nop_assign(void *a, farm_job_t *j, farm_node_t *n) {}
static inline void coord_fx_nop_cancel(void *a, farm_job_t *j, farm_node_t *n, const char *r) {}
static inline void coord_fx_nop_event(void *a, farm_build_t *b, const farm_job_t *j,
                               farm_event_kind_t k, const char *msg) {}
static inline void coord_fx_nop_stitch(void *a, farm_build_t *b) {}
static inline void coord_fx_nop_done(void *a, farm_build_t *b, int ok, const char *d, uint64_t size,
                              const char *err) {}

/* bcbs: the builds' callbacks (NULL: none do anything); arg goes to them. */
static inline void coord_fx_init(coord_fx_t *fx, const farm_builds_cbs_t *bcbs, void *arg)
{
    static const char y[] = COORD_FX_YAML;
    farm_scheduler_cbs_t scbs = {.assign = coord_fx_nop_assign, .cancel = coord_fx_nop_cancel};
    farm_builds_cbs_t nops = {coord_fx_nop_event, coord_fx_nop_stitch, coord_fx_nop_done};
    char *plats[] = {"linux/amd64"};
    farm_hello_t h = {.name = "a", .platforms = plats, .n_platforms = 1,
                      .version = FARM_VERSION, .session = 7, .builder = "t"};
    farm_node_t *n;
    char reason[256];

    memset(fx, 0, sizeof *fx);
    assert_int_equal(farm_config_parse(&fx->cfg, "t.yaml", y, strlen(y), NULL), 0);
    fx->nodes = farm_nodes_new(fx->cfg);
    fx->s = farm_scheduler_new(fx->cfg, &scbs, arg);
    fx->b = farm_builds_new(fx->cfg, fx->s, bcbs ? bcbs : &nops, arg);
    assert_non_null(fx->b);
    assert_true(farm_nodes_hello(fx->nodes, &n, &h, "a", 1, 0, reason, sizeof reason) >= 0);
    assert_int_equal(farm_scheduler_node_up(fx->s, n, 0), 0);
}

static inline void coord_fx_fini(coord_fx_t *fx)
{
    farm_builds_destroy(&fx->b);
    farm_scheduler_destroy(&fx->s);
    farm_nodes_destroy(&fx->nodes);
    farm_config_destroy(&fx->cfg);
}

#endif
