/* SPDX-License-Identifier: Apache-2.0 */
/* farmctl logs [-f] BUILD [--platform P]: a build's kept log as farmctl submit printed it
 * ([platform node] line); with -f, a running build's lines as they come, to its end
 * (farmctl/follow.c's machinery: outages, heartbeats, the result). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/error.h"
#include "common/limits.h"
#include "common/platform.h"
#include "common/text.h"
#include "farmctl/client.h"
#include "farmctl/follow.h"
#include "farmctl/history.h"
#include "farmctl/progress.h"

#define S_REPLY_TIMEOUT_MS 5000

static void s_usage(FILE *f)
{
    fprintf(f, "usage: farmctl logs [-f] BUILD [--platform P] [options]\n"
               "  prints build BUILD's log (an id, or ^N: the Nth before the newest) as farmctl\n"
               "  submit printed it; the coordinator keeps history.log_limit bytes of it\n"
               "  -f, --follow            a running build: go on printing its lines to its end\n"
               "                          (exit status as farmctl wait: 0 pushed, 1 failed)\n"
               "      --platform P        only that platform's lines\n"
               "      --farm FILE, --coordinator E, --trust-repo-coordinator   as farmctl builds\n");
}

/* The connection the short commands make, kept open: farmctl logs reads many replies. */
farmctl_client_t *farmctl_connect(const char *cmd, const farmctl_target_t *t,
                                  farm_config_t **out_cfg)
{
    const char *farm = t->farm;
    char endpoint[512];
    farmctl_client_t *cl;

    *out_cfg = NULL;
    if (!farm && !t->coord && !getenv("FARM_COORDINATOR") && access("farm.yaml", R_OK) == 0)
        farm = "farm.yaml";
    if (farm && farm_config_load(out_cfg, farm, NULL) < 0) {
        fprintf(stderr, "farmctl %s: %s\n", cmd, farm_error_last());
        return NULL;
    }
    if (farmctl_endpoint(endpoint, sizeof endpoint, t->coord, *out_cfg) == FARM_ENOTFOUND) {
        fprintf(stderr, "farmctl %s: no coordinator: pass --coordinator, set "
                        "FARM_COORDINATOR, or run where farm.yaml names coordinator.clients\n",
                cmd);
        return NULL;
    }
    if (!endpoint[0] || !(cl = farmctl_client_new_for(endpoint, *out_cfg,
                                                      t->trust_repo_coordinator))) {
        fprintf(stderr, "farmctl %s: %s\n", cmd, farm_error_last());
        return NULL;
    }
    return cl;
}

int farmctl_logs_main(int argc, char **argv)
{
    enum { O_PLATFORM = FARMCTL_O_NEXT };
    static const struct option opts[] = {FARMCTL_TARGET_OPTIONS,
                                         {"platform", required_argument, NULL, O_PLATFORM},
                                         {"follow", no_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    farmctl_target_t t = {0};
    farmctl_follow_t f = {.cmd = "logs", .give_up_ms = FARMCTL_GIVE_UP_MS, .attached = 1};
    Farm__Envelope env = FARM__ENVELOPE__INIT, *msg = NULL;
    Farm__LogsRequest req = FARM__LOGS_REQUEST__INIT;
    farm_config_t *cfg = NULL;
    const char *platform = NULL;
    char id[FARM_ID_MAX + 1] = "", plat[FARM_PLATFORM_STRLEN];
    int c, rc = 1, follow = 0;

    optind = 1;
    while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
        if ((c = farmctl_target_option(&t, c, optarg)) == 0)
            continue;
        switch (c) {
        case O_PLATFORM: platform = optarg; break;
        case 'f': follow = 1; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "farmctl logs: name one build: its id (farmctl history lists them) "
                        "or ^N\n");
        return 2;
    }
    if (strlen(argv[optind]) > FARM_ID_MAX) {
        fprintf(stderr, "farmctl logs: \"%.40s...\" is not a build id\n", argv[optind]);
        return 2;
    }
    if (platform) {
        farm_platform_t p;
        if (farm_platform_parse(&p, platform) < 0) {
            fprintf(stderr, "farmctl logs: --platform: %s\n", farm_error_last());
            return 2;
        }
        farm_platform_format(plat, sizeof plat, &p);
        platform = plat;
    }
    if (!(f.cl = farmctl_connect("logs", &t, &cfg)))
        goto done;
    setvbuf(stdout, NULL, _IOLBF, 0); /* -f: each line as it comes, into a pipe too */
    if (!(f.pg = farmctl_progress_new(FARMCTL_PROGRESS_PLAIN, stdout))) {
        fprintf(stderr, "farmctl logs: out of memory\n");
        goto done;
    }
    req.build = argv[optind];
    req.platform = (char *)(platform ? platform : "");
    req.follow = follow;
    env.body_case = FARM__ENVELOPE__BODY_LOGS_REQUEST;
    env.logs_request = &req;
    if (farmctl_client_send(f.cl, &env) < 0) {
        fprintf(stderr, "farmctl logs: %s\n", farm_error_last());
        goto done;
    }
    for (;;) {
        const Farm__LogsReply *lr;
        int r = farmctl_client_recv(f.cl, &msg, S_REPLY_TIMEOUT_MS);
        if (r == FARM_ERETRY)
            r = farmctl_client_silent(f.cl, S_REPLY_TIMEOUT_MS);
        if (r < 0) {
            fprintf(stderr, "farmctl logs: %s\n", farm_error_last());
            goto done;
        }
        if (msg->body_case == FARM__ENVELOPE__BODY_REFUSED) {
            char why[1024];
            farm_text_inert(why, sizeof why, msg->refused->reason);
            fprintf(stderr, "farmctl logs: %s\n", why);
            goto done;
        }
        if (msg->body_case != FARM__ENVELOPE__BODY_LOGS_REPLY) {
            farm_wire_free(&msg);
            continue; /* a heartbeat */
        }
        lr = msg->logs_reply;
        farm_text_inert(id, sizeof id, lr->build_id);
        for (size_t i = 0; i < lr->n_lines; i++) {
            Farm__Event ev = FARM__EVENT__INIT;
            ev.kind = FARM__EVENT_KIND__EVENT_LOG;
            ev.build_id = lr->build_id;
            ev.platform = lr->lines[i]->platform;
            ev.node = lr->lines[i]->node;
            ev.message = lr->lines[i]->line;
            if (!lr->lines[i]->platform[0]) /* what the bound cut */
                fprintf(stdout, "#%s\n", lr->lines[i]->line);
            else
                farmctl_progress_event(f.pg, &ev);
        }
        if (lr->more) {
            farm_wire_free(&msg);
            continue;
        }
        if (!lr->following) {
            if (follow)
                fprintf(stderr, "#build %s is not running: its log is whole\n", id);
            rc = 0;
            goto done;
        }
        break;
    }
    fflush(stdout);
    f.build_id = id;
    f.only_platform = platform;
    rc = farmctl_follow(&f);
done:
    farm_wire_free(&msg);
    farmctl_progress_destroy(&f.pg);
    farmctl_client_destroy(&f.cl);
    farm_config_destroy(&cfg);
    return rc;
}
