/* SPDX-License-Identifier: Apache-2.0 */
/* farmctl cancel BUILD: the Cancel farmctl submit sends on Ctrl-C, from anywhere, with
 * the coordinator's answer. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/limits.h"
#include "common/text.h"
#include "farmctl/client.h"
#include "farmctl/history.h"

int farmctl_cancel_main(int argc, char **argv)
{
    static const struct option opts[] = {FARMCTL_TARGET_OPTIONS,
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    farmctl_target_t t = {0};
    Farm__Envelope env = FARM__ENVELOPE__INIT, *reply = NULL;
    Farm__Cancel req = FARM__CANCEL__INIT;
    char msg[1024];
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if ((c = farmctl_target_option(&t, c, optarg)) == 0)
            continue;
        if (c == 'h') {
            printf("usage: farmctl cancel BUILD " FARMCTL_TARGET_USAGE "\n"
                   "  stops build BUILD (an id, or ^N); nothing is pushed under its tags. A\n"
                   "  submit client cancels its own builds, an admin any.\n");
            return 0;
        }
        return 2;
    }
    if (optind + 1 != argc || strlen(argv[optind]) > FARM_ID_MAX || !argv[optind][0]) {
        fprintf(stderr, "farmctl cancel: name one build: its id (farmctl builds lists the "
                        "running ones) or ^N\n");
        return 2;
    }
    req.build_id = argv[optind];
    req.reply = 1;
    env.body_case = FARM__ENVELOPE__BODY_CANCEL;
    env.cancel = &req;
    if (farmctl_request(&reply, "cancel", &t, &env, FARM__ENVELOPE__BODY_CANCEL_REPLY) != 0)
        return 1;
    farm_text_inert(msg, sizeof msg, reply->cancel_reply->message);
    /* too late (the index is being pushed) is not a cancel: say so in the status */
    rc = strcmp(reply->cancel_reply->state, "stitching") == 0;
    fprintf(rc ? stderr : stdout, "%s\n", msg);
    farm_wire_free(&reply);
    return rc;
}
