/* farm-agent: connects out to the coordinator, says HELLO, heartbeats, fetches
 * contexts by digest into a content-addressed cache, runs each job in a forked worker
 * (agent/worker.h) and reports. Reconnects with backoff (1 s doubling to 32 s). */
#ifndef FARM_AGENT_H
#define FARM_AGENT_H

#include <stddef.h>

#include "agent/worker.h"

typedef struct {
    const char *coordinator; /* endpoint */
    const char *name;
    char **platforms;        /* canonical */
    size_t n_platforms;
    int slots;
    const char *work_dir;
    unsigned long long cache_max; /* bytes of cached contexts kept (LRU); 0: 10 GiB */
    farm_builder_opts_t builder;
} farm_agent_opts_t;

typedef struct farm_agent farm_agent_t;

farm_agent_t *farm_agent_new(const farm_agent_opts_t *opts);
void farm_agent_destroy(farm_agent_t **self_p);
/* Runs until *stop or a REJECT the agent cannot fix by itself (returns < 0). */
int farm_agent_run(farm_agent_t *self, volatile int *stop);

#endif
