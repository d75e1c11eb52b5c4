/* SPDX-License-Identifier: Apache-2.0 */
/* farm-agent: connects out to the coordinator, says HELLO, heartbeats, fetches contexts
 * by digest into a content-addressed cache, runs each job in an exec'd worker
 * (`farm-agent worker`, agent/worker.h) and reports. One reactor (common/reactor.h);
 * the rules live in session.h, cache.h, jobs.h and held.h, the sockets and protobuf here.
 * Jobs outlive the connection: a lost coordinator is reconnected to while they run, a
 * finished result is kept (held.h) until the coordinator takes it, and the next HELLO
 * lists both; only the coordinator's word (JobCancel, or a HELLO it answers without
 * knowing the job) or the orphan timeout ends them. */
#ifndef FARM_AGENT_H
#define FARM_AGENT_H

#include <stddef.h>

#include "common/keys.h"

typedef struct {
    const char *builder;        /* "buildah" */
    const char *storage_driver; /* NULL: builder default */
    const char *isolation;      /* "oci" (the sandbox, default) or "chroot" (opt-in) */
    const char *runtime;        /* OCI runtime for the sandbox: "runc" (default) or "crun" */
    const char *network;        /* RUN steps' network: "slirp4netns" (default) or "none" */
    const char *builder_root;   /* NULL: WORK_DIR/builder */
    unsigned long long cache_max; /* --builder-cache-max: builder storage bytes (0: no bound) */
} farm_builder_opts_t;

#define FARM_AGENT_ORPHAN_TIMEOUT_MS (10LL * 60 * 1000)
#define FARM_AGENT_MIN_FREE (1ULL << 30) /* --min-free: `farm-agent check` FAILs under it */
#define FARM_AGENT_RECHECK_MS 15000      /* an unhealthy node's health checks, again */

typedef struct {
    const char *coordinator; /* endpoint */
    const char *name;
    char **platforms;        /* canonical */
    size_t n_platforms;
    int slots;
    const char *work_dir;
    unsigned long long cache_max; /* bytes of cached contexts kept (LRU); 0: 10 GiB */
    farm_builder_opts_t builder;
    const char *worker_exe;  /* NULL: /proc/self/exe (run with argv[1] = "worker") */
    const farm_keypair_t *keys;  /* CURVE: this node's key pair (NULL: plain, loopback farms) */
    const char *coordinator_key; /* CURVE: the coordinator's public key (Z85) */
    long long orphan_timeout_ms; /* jobs given up after this long with no coordinator
                                  * answering (0: FARM_AGENT_ORPHAN_TIMEOUT_MS) */
    unsigned long long min_free; /* --min-free: free disk below which the node is
                                  * unhealthy (0: FARM_AGENT_MIN_FREE) */
    const char *metrics;         /* --metrics ADDR:PORT: serve /metrics there (NULL: off) */
} farm_agent_opts_t;

typedef struct farm_agent farm_agent_t;

farm_agent_t *farm_agent_new(const farm_agent_opts_t *opts);
void farm_agent_destroy(farm_agent_t **self_p);
/* Runs until *stop or a REJECT the agent cannot fix by itself (returns < 0). */
int farm_agent_run(farm_agent_t *self, volatile int *stop);

#endif
