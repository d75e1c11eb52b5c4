/* SPDX-License-Identifier: Apache-2.0 */
/* farm-agent --coordinator ENDPOINT --name NAME [options]   (agent/args.h)
 *   exits FARM_EXIT_CONFIG (78) when it refuses to start: bad options, a key it cannot
 *   load, no keys for a coordinator off this machine, a sandbox that cannot work here;
 *   systemd then leaves it stopped (the unit's RestartPreventExitStatus=) instead of
 *   restarting it every few seconds
 * farm-agent check [the same options]   what this host lacks for that agent (agent/check.h)
 * farm-agent worker   (started by the agent itself for each job: agent/worker.h)
 * farm-agent cache    (started by the agent for farmctl du and prune: agent/inventory.h) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/args.h"
#include "agent/check.h"
#include "agent/inventory.h"
#include "agent/worker.h"
#include "common/endpoint.h"
#include "common/error.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/proc.h"

static volatile int s_stop;

/* The checks for an agent started with a's options; NULL when out of memory. */
static farm_check_report_t *s_checks(const farm_agent_args_t *a, unsigned flags)
{
    farm_check_report_t *r = calloc(1, sizeof *r);
    farm_check_host_t host;

    if (r) {
        farm_check_host_default(&host);
        farm_check_run(r, &a->opts, a->key_file, a->coordinator_key, &host, flags);
    }
    return r;
}

/* farm-agent check: every finding with its fix; 1 when something FAILs. */
static int s_check(const farm_agent_args_t *a)
{
    farm_check_report_t *r = s_checks(a, FARM_CHECK_CLOCK | FARM_CHECK_PROBE);
    int rc;

    if (!r)
        return 1;
    farm_check_print(stdout, r);
    rc = farm_check_failures(r, 0) ? 1 : 0;
    printf("%s\n", rc ? "farm-agent check: FAIL (fix the lines marked FAIL)"
                      : "farm-agent check: ok");
    free(r);
    return rc;
}

/* At start-up: the cheap checks (no clock), logged; a sandbox that cannot work refuses
 * to start. */
static int s_preflight(const farm_agent_args_t *a)
{
    farm_check_report_t *r = s_checks(a, FARM_CHECK_PROBE);
    int refuse;

    if (!r)
        return 0;
    refuse = farm_check_log(r) && strcmp(a->opts.builder.isolation, "oci") == 0;
    for (size_t i = 0; refuse && i < r->n; i++)
        if (r->items[i].essential)
            farm_log_say(FARM_LOG_ERROR, "farm-agent: the sandbox cannot work here: %s: %s",
                         r->items[i].what, r->items[i].detail);
    if (refuse)
        farm_log_say(FARM_LOG_ERROR, "farm-agent: refusing to start. Run `farm-agent check` "
                     "with the same options for every finding and its fix. (--isolation "
                     "chroot starts without the sandbox: RUN steps then run unsandboxed on "
                     "this host, unsafe for Dockerfiles you do not trust.)");
    free(r);
    return refuse;
}

/* --coordinator by the one endpoint rule: a valid endpoint, and without keys one on this
 * machine (the coordinator puts registry logins in the jobs it sends). 0 when fine. */
static int s_endpoint_refused(const farm_agent_args_t *a)
{
    farm_endpoint_t ep;

    if (farm_endpoint_parse(&ep, a->opts.coordinator) < 0) {
        farm_log_say(FARM_LOG_ERROR, "farm-agent: --coordinator \"%s\": %s; write the "
                     "coordinator's coordinator.agents endpoint", a->opts.coordinator,
                     farm_error_last());
        return 1;
    }
    if (a->key_file || ep.loopback)
        return 0;
    farm_log_say(FARM_LOG_ERROR, "farm-agent: refusing to start: --coordinator %s is not on "
                 "this machine (only a literal loopback address or ipc:// is) and the agent "
                 "has no keys, so its jobs, with the registry logins the coordinator puts in "
                 "them, would cross the network unencrypted to whatever answers there. Enrol "
                 "this node with keys: `farmctl keygen NAME` on it, NAME.pub's key under "
                 "nodes: in the coordinator's farm.yaml, then --key NAME.key --coordinator-key "
                 "coordinator.pub (README: \"A real fleet, step by step\")", a->opts.coordinator);
    return 1;
}

int main(int argc, char **argv)
{
    farm_agent_args_t a;
    farm_keypair_t keys;
    char ckey[FARM_KEY_Z85_LEN + 1];
    farm_agent_t *agent;
    int check, rc;

    /* the agent re-runs itself as each job's worker: nothing else may run first */
    if (argc == 2 && strcmp(argv[1], "worker") == 0)
        return farm_worker_main();
    if (argc == 2 && strcmp(argv[1], "cache") == 0)
        return farm_inventory_main();
    check = argc >= 2 && strcmp(argv[1], "check") == 0;
    memset(&keys, 0, sizeof keys);
    if ((rc = check ? farm_agent_args_parse(&a, argc - 1, argv + 1, 1)
                    : farm_agent_args_parse(&a, argc, argv, 0)) != 0 || a.help) {
        if (rc == 2 && !check)
            rc = FARM_EXIT_CONFIG; /* the usage error is printed; the unit's options are wrong */
        goto done;
    }
    farm_log_init("agent", a.verbose ? FARM_LOG_DEBUG : FARM_LOG_INFO);
    if (check) {
        rc = s_check(&a);
        goto done;
    }
    if (s_endpoint_refused(&a)) {
        rc = FARM_EXIT_CONFIG;
        goto done;
    }
    if (a.key_file) {
        if (farm_key_load(&keys, a.key_file) < 0 ||
            farm_key_load_public(ckey, a.coordinator_key) < 0) {
            farm_log_say(FARM_LOG_ERROR, "farm-agent: %s", farm_error_last());
            rc = FARM_EXIT_CONFIG;
            goto done;
        }
        a.opts.keys = &keys;
        a.opts.coordinator_key = ckey;
    }
    if (s_preflight(&a)) {
        rc = FARM_EXIT_CONFIG;
        goto done;
    }
    farm_proc_stop_on_signals(&s_stop);
    farm_proc_raise_nofile();

    if (!(agent = farm_agent_new(&a.opts))) {
        farm_log_say(FARM_LOG_ERROR, "farm-agent: %s", farm_error_last());
        /* a path or endpoint it cannot use stays so; out of memory may pass */
        rc = farm_error_last_code() == FARM_ERROR ? 1 : FARM_EXIT_CONFIG;
        goto done;
    }
    farm_log_info("node %s: %zu platform(s) (%s%s), %d slot(s), builder %s, coordinator %s",
                  a.opts.name, a.opts.n_platforms, a.opts.platforms[0],
                  a.opts.n_platforms > 1 ? ", ..." : "", a.opts.slots, a.opts.builder.builder,
                  a.opts.coordinator);
    rc = farm_agent_run(agent, &s_stop) < 0 ? 1 : 0;
    farm_agent_destroy(&agent);
done:
    farm_key_wipe(&keys);
    farm_agent_args_free(&a);
    return rc;
}
