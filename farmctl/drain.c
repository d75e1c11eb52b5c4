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
    enum { O_FARM = 256, O_COORD, O_UNDO };
    static const struct option opts[] = {{"farm", required_argument, NULL, O_FARM},
                                         {"coordinator", required_argument, NULL, O_COORD},
                                         {"undo", no_argument, NULL, O_UNDO},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *farm = NULL, *coord = NULL;
    farm_config_t *cfg = NULL;
    farmctl_client_t *cl = NULL;
    Farm__Envelope env = FARM__ENVELOPE__INIT, *reply = NULL;
    Farm__Drain d = FARM__DRAIN__INIT;
    char endpoint[512], text[1024];
    int c, rc = 1, undo = 0;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_FARM: farm = optarg; break;
        case O_COORD: coord = optarg; break;
        case O_UNDO: undo = 1; break;
        case 'h':
            printf("usage: farmctl drain NODE [--undo] [--farm FILE] [--coordinator ENDPOINT]\n"
                   "  takes NODE out of scheduling (running jobs finish); --undo puts it back\n");
            return 0;
        default: return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "usage: farmctl drain NODE [--undo]\n");
        return 2;
    }
    if (!farm && !coord && !getenv("FARM_COORDINATOR") && access("farm.yaml", R_OK) == 0)
        farm = "farm.yaml";
    if (farm && farm_config_load(&cfg, farm, NULL) < 0) {
        fprintf(stderr, "farmctl drain: %s\n", farm_error_last());
        return 1;
    }
    if (farmctl_endpoint(endpoint, sizeof endpoint, coord, cfg) < 0 ||
        !(cl = farmctl_client_new_for(endpoint, cfg))) {
        fprintf(stderr, "farmctl drain: %s\n", farm_error_last());
        goto done;
    }
    d.node = argv[optind];
    d.undo = undo;
    env.body_case = FARM__ENVELOPE__BODY_DRAIN;
    env.drain = &d;
    if (farmctl_client_send(cl, &env) < 0) {
        fprintf(stderr, "farmctl drain: %s\n", farm_error_last());
        goto done;
    }
    for (;;) {
        int r = farmctl_client_recv(cl, &reply, 5000);
        if (r == FARM_ERETRY) {
            fprintf(stderr, "farmctl drain: no answer from %s\n", endpoint);
            goto done;
        }
        if (r < 0) {
            fprintf(stderr, "farmctl drain: %s\n", farm_error_last());
            goto done;
        }
        if (reply->body_case == FARM__ENVELOPE__BODY_REFUSED) {
            farm_text_inert(text, sizeof text, reply->refused->reason);
            fprintf(stderr, "farmctl drain: refused: %s\n", text);
            goto done;
        }
        if (reply->body_case == FARM__ENVELOPE__BODY_NODES_REPLY)
            break;
        farm_wire_free(&reply);
    }
    printf("node %s %s\n", argv[optind], undo ? "is back in service" : "is draining: it takes "
                                                "no new job; running jobs finish");
    rc = 0;
done:
    farm_wire_free(&reply);
    farmctl_client_destroy(&cl);
    farm_config_destroy(&cfg);
    return rc;
}
