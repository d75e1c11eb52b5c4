/* SPDX-License-Identifier: Apache-2.0 */
/* farm-coordinator --config farm.yaml [-v]
 *   exits FARM_EXIT_CONFIG (78) when it refuses to start: bad options, an invalid
 *   farm.yaml, a key it cannot load, a state dir it may not use; systemd then leaves it
 *   stopped (the unit's RestartPreventExitStatus=) instead of restarting it */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "common/config.h"
#include "common/error.h"
#include "common/log.h"
#include "common/proc.h"
#include "coordinator/coordinator.h"
#include "coordinator/stitch.h"

static volatile int s_stop;

static void s_usage(FILE *f)
{
    fprintf(f, "usage: farm-coordinator --config FILE [-v]\n"
               "  -c, --config FILE   farm.yaml naming endpoints, platforms and nodes\n"
               "  -v, --verbose       debug logging (wire-level)\n"
               "  --version           print the version and exit\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    farm_config_t *cfg = NULL;
    farm_coordinator_t *coord;
    farm_diag_t diags = {0};
    int c, verbose = 0, rc;

    if (argc == 2 && strcmp(argv[1], "stitch") == 0) {
        /* the index-push helper (coordinator.c starts it): log lines on stderr */
        farm_log_init("stitch", FARM_LOG_DEBUG);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = farm_stitch_main();
        curl_global_cleanup();
        return rc;
    }
    while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'v': verbose = 1; break;
        case 'h': s_usage(stdout); return 0;
        case 'V': printf("farm-coordinator %s\n", FARM_VERSION); return 0;
        default: s_usage(stderr); return FARM_EXIT_CONFIG;
        }
    }
    if (!path || optind != argc) {
        s_usage(stderr);
        return FARM_EXIT_CONFIG;
    }
    farm_log_init("coordinator", verbose ? FARM_LOG_DEBUG : FARM_LOG_INFO);
    if (farm_config_load(&cfg, path, &diags) < 0) {
        for (size_t i = 0; i < diags.n; i++)
            farm_log_say(FARM_LOG_ERROR, "%s", diags.items[i]);
        if (!diags.n)
            farm_log_say(FARM_LOG_ERROR, "%s", farm_error_last());
        farm_log_say(FARM_LOG_ERROR, "farm-coordinator: %s is not valid; fix it (farmctl "
                     "validate %s)", path, path);
        farm_diag_clear(&diags);
        return FARM_EXIT_CONFIG;
    }
    if (!cfg->agents_endpoint || !cfg->clients_endpoint || cfg->n_platforms == 0) {
        farm_log_say(FARM_LOG_ERROR, "%s: the coordinator needs coordinator.agents, "
                     "coordinator.clients and at least one entry under platforms:", path);
        farm_config_destroy(&cfg);
        return FARM_EXIT_CONFIG;
    }
    if (farm_config_load_cas(cfg) < 0) {
        farm_log_say(FARM_LOG_ERROR, "%s", farm_error_last());
        farm_config_destroy(&cfg);
        return FARM_EXIT_CONFIG;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    farm_proc_stop_on_signals(&s_stop);
    farm_proc_raise_nofile();

    coord = farm_coordinator_new(&cfg);
    if (!coord) {
        /* a key or state dir it may not use (FARM_EINVALID, FARM_EIO) stays so until a
         * person acts; a bind or out of memory may pass, so systemd tries again */
        rc = farm_error_last_code();
        farm_log_error("%s", farm_error_last());
        farm_config_destroy(&cfg);
        curl_global_cleanup();
        return rc == FARM_EINVALID || rc == FARM_EIO ? FARM_EXIT_CONFIG : 1;
    }
    rc = farm_coordinator_run(coord, &s_stop);
    farm_coordinator_destroy(&coord);
    curl_global_cleanup();
    return rc < 0 ? 1 : 0;
}
