/* SPDX-License-Identifier: Apache-2.0 */
#include "farmctl/nodes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/error.h"
#include "common/pbjson.h"
#include "common/str.h"
#include "common/text.h"
#include "farmctl/client.h"

/* Appends items (the coordinator's, so made inert) to a display column; a list too long
 * ends in "..." */
static void s_join(char *out, size_t len, char **items, size_t n, const char *suffix)
{
    size_t off = strlen(out);
    for (size_t i = 0; i < n && off + 1 < len; i++) {
        char item[256];
        farm_text_inert(item, sizeof item, items[i]);
        if (farm_str_fmt_cut(out + off, len - off, "%s%s%s", off ? "," : "", item, suffix))
            break;
        off += strlen(out + off);
    }
}

int farmctl_nodes_main(int argc, char **argv)
{
    farmctl_target_t t;
    Farm__Envelope env = FARM__ENVELOPE__INIT, *reply = NULL;
    Farm__NodesRequest req = FARM__NODES_REQUEST__INIT;
    int rc, json = 0;

    if ((rc = farmctl_short_args_json(argc, argv, "nodes", &t, &json)) >= 0)
        return rc;
    env.body_case = FARM__ENVELOPE__BODY_NODES_REQUEST;
    env.nodes_request = &req;
    if (farmctl_request(&reply, "nodes", &t, &env, FARM__ENVELOPE__BODY_NODES_REPLY) != 0)
        return 1;
    if (json) {
        rc = farm_pbjson_print(stdout, &reply->nodes_reply->base) < 0;
        farm_wire_free(&reply);
        return rc;
    }
    /* CACHE: the node's builder storage (its layer cache); HITS: build steps it took from
     * it since the agent started; VERSION: its agent's ("?": an agent too old to say, "-":
     * never seen); a job placed there because the node built the same repository,
     * platform and Dockerfile recently is marked (warm); an unhealthy node's cause (its
     * agent's failing health check) follows on a line of its own */
    printf("%-16s %-40s %-9s %-6s %-7s %-7s %-9s %s\n", "NAME", "PLATFORMS", "STATE", "SLOTS",
           "CACHE", "HITS", "VERSION", "JOBS");
    for (size_t i = 0; i < reply->nodes_reply->n_nodes; i++) {
        const Farm__NodeInfo *n = reply->nodes_reply->nodes[i];
        char plats[1024] = "", slots[32], jobs[1024] = "", name[256], state[64], cache[16];
        char version[64];
        s_join(plats, sizeof plats, n->platforms, n->n_platforms, "");
        s_join(plats, sizeof plats, n->emulated, n->n_emulated, "(emulated)");
        for (size_t j = 0; j < n->n_jobs; j++)
            s_join(jobs, sizeof jobs, &n->jobs[j], 1,
                   j < n->n_job_warm && n->job_warm[j] ? "(warm)" : "");
        snprintf(slots, sizeof slots, "%u/%u", n->used, n->slots);
        farm_text_bytes(cache, sizeof cache, (unsigned long long)n->builder_cache_bytes);
        farm_text_inert(name, sizeof name, n->name);
        farm_text_inert(state, sizeof state, n->state);
        if (n->version[0])
            farm_text_inert(version, sizeof version, n->version);
        else
            snprintf(version, sizeof version, "%s", strcmp(n->state, "unknown") ? "?" : "-");
        printf("%-16s %-40s %-9s %-6s %-7s %-7llu %-9s %s\n", name, plats, state, slots, cache,
               (unsigned long long)n->cache_hits, version, jobs[0] ? jobs : "-");
        if (n->cause[0]) {
            char cause[1024];
            farm_text_inert(cause, sizeof cause, n->cause);
            printf("%-16s unhealthy: %s\n", "", cause);
        }
    }
    farm_wire_free(&reply);
    return 0;
}
