/* SPDX-License-Identifier: Apache-2.0 */
#include "farmctl/drain.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/error.h"
#include "common/text.h"
#include "farmctl/client.h"

int farmctl_drain_main(int argc, char **argv)
{
    enum { O_UNDO = FARMCTL_O_NEXT };
    static const struct option opts[] = {FARMCTL_TARGET_OPTIONS,
                                         {"undo", no_argument, NULL, O_UNDO},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    farmctl_target_t t = {0};
    Farm__Envelope env = FARM__ENVELOPE__INIT, *reply = NULL;
    Farm__Drain d = FARM__DRAIN__INIT;
    int c, undo = 0;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (farmctl_target_option(&t, c, optarg)) {
        case 0: break;
        case O_UNDO: undo = 1; break;
        case 'h':
            printf("usage: farmctl drain NODE [--undo] " FARMCTL_TARGET_USAGE "\n"
                   "  takes NODE out of scheduling (running jobs finish); --undo puts it back\n");
            return 0;
        default: return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "usage: farmctl drain NODE [--undo]\n");
        return 2;
    }
    d.node = argv[optind];
    d.undo = undo;
    env.body_case = FARM__ENVELOPE__BODY_DRAIN;
    env.drain = &d;
    if (farmctl_request(&reply, "drain", &t, &env, FARM__ENVELOPE__BODY_NODES_REPLY) != 0)
        return 1;
    printf("node %s %s\n", argv[optind], undo ? "is back in service" : "is draining: it takes "
                                                "no new job; running jobs finish");
    farm_wire_free(&reply);
    return 0;
}
