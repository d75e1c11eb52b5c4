/* SPDX-License-Identifier: Apache-2.0 */
#include "farmctl/builds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/error.h"
#include "common/pbjson.h"
#include "common/text.h"
#include "farmctl/client.h"

int farmctl_builds_main(int argc, char **argv)
{
    farmctl_target_t t;
    Farm__Envelope env = FARM__ENVELOPE__INIT, *reply = NULL;
    Farm__BuildsRequest req = FARM__BUILDS_REQUEST__INIT;
    char a[512], b[512], c[512];
    int rc, json = 0;

    if ((rc = farmctl_short_args_json(argc, argv, "builds", &t, &json)) >= 0)
        return rc;
    env.body_case = FARM__ENVELOPE__BODY_BUILDS_REQUEST;
    env.builds_request = &req;
    if (farmctl_request(&reply, "builds", &t, &env, FARM__ENVELOPE__BODY_BUILDS_REPLY) != 0)
        return 1;
    if (json) {
        rc = farm_pbjson_print(stdout, &reply->builds_reply->base) < 0;
        farm_wire_free(&reply);
        return rc;
    }
    printf("%-44s %-10s %-9s %-8s %s\n", "BUILD", "OWNER", "STATE", "AGE", "REPOSITORY");
    for (size_t i = 0; i < reply->builds_reply->n_builds; i++) {
        const Farm__BuildInfo *bi = reply->builds_reply->builds[i];
        farm_text_inert(a, sizeof a, bi->build_id);
        farm_text_inert(b, sizeof b, bi->owner[0] ? bi->owner : "-");
        farm_text_inert(c, sizeof c, bi->repository);
        printf("%-44s %-10s %-9s %-8llu %s\n", a, b, bi->state[0] ? bi->state : "-",
               (unsigned long long)(bi->age_ms / 1000), c);
        for (size_t j = 0; j < bi->n_jobs; j++) {
            farm_text_inert(a, sizeof a, bi->jobs[j]);
            printf("    %s\n", a);
        }
    }
    farm_wire_free(&reply);
    return 0;
}
