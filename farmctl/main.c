/* SPDX-License-Identifier: Apache-2.0 */
/* farmctl: the user's CLI to the farm. */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "farmctl/builds.h"
#include "farmctl/cache.h"
#include "farmctl/drain.h"
#include "farmctl/follow.h"
#include "farmctl/history.h"
#include "farmctl/keygen.h"
#include "farmctl/verify.h"
#include "farmctl/nodes.h"
#include "farmctl/submit.h"
#include "farmctl/validate.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: farmctl COMMAND [options]\n\n"
               "commands:\n"
               "  submit [-t REF]... [--platform P,...] [CONTEXT]  build on the farm, push one index\n"
               "  validate [FILE]                                   check a farm.yaml\n"
               "  nodes                                             list the farm's nodes\n"
               "  builds                                            list the builds running now\n"
               "  wait BUILD (alias attach)                         follow a build to its end\n"
               "  history [ls] [--filter K=V]                       builds kept, newest first\n"
               "  history inspect BUILD                             a build's record (^1: the one before last)\n"
               "  logs [-f] BUILD [--platform P]                    a build's log; -f follows it\n"
               "  cancel BUILD                                      stop a running build\n"
               "  drain NODE [--undo]                               (admin) no new jobs for NODE\n"
               "  du [--node N] [--verbose]                         (admin) what the nodes' caches take\n"
               "  prune [--node N] [--filter until=24h] [--all] [-f] (admin) empty the nodes' caches\n"
               "  keygen NAME [--dir DIR]                           write a CURVE key pair\n"
               "  keygen --signing NAME [--dir DIR]                 write an index signing key pair\n"
               "  verify REF [--key PUB]                            show an index's platforms and\n"
               "                                                    check its signatures\n"
               "  version                                           print the version\n\n"
               "Run `farmctl COMMAND --help` for a command's options.\n");
}

int main(int argc, char **argv)
{
    farm_log_init("farmctl", FARM_LOG_WARN);
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "submit") == 0 || strcmp(argv[1], "build") == 0)
        return farmctl_submit_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "validate") == 0)
        return farmctl_validate_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "nodes") == 0)
        return farmctl_nodes_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "builds") == 0)
        return farmctl_builds_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "wait") == 0 || strcmp(argv[1], "attach") == 0)
        return farmctl_wait_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "history") == 0)
        return farmctl_history_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "logs") == 0)
        return farmctl_logs_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "cancel") == 0)
        return farmctl_cancel_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "drain") == 0)
        return farmctl_drain_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "du") == 0)
        return farmctl_du_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "prune") == 0)
        return farmctl_prune_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "verify") == 0 || strcmp(argv[1], "inspect") == 0)
        return farmctl_verify_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "keygen") == 0)
        return farmctl_keygen_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("farmctl %s\n", FARM_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        s_usage(stdout);
        return 0;
    }
    fprintf(stderr, "farmctl: unknown command \"%s\"\n", argv[1]);
    s_usage(stderr);
    return 2;
}
