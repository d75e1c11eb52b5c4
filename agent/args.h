/* SPDX-License-Identifier: Apache-2.0 */
/* farm-agent's command line, shared by the agent and `farm-agent check` (which checks
 * what an agent started with the same options would need). */
#ifndef FARM_AGENT_ARGS_H
#define FARM_AGENT_ARGS_H

#include <stdio.h>

#include "agent/agent.h"

typedef struct {
    farm_agent_opts_t opts;      /* opts.platforms are owned (farm_agent_args_free) */
    const char *key_file;        /* --key: loaded by the caller */
    const char *coordinator_key; /* --coordinator-key */
    int verbose;
    int help;                    /* --help or --version was printed: end with status 0 */
} farm_agent_args_t;

/* Parses argv (argv[0] is the program, or "check"). The agent needs --coordinator and
 * --name; check (check != 0) needs neither. Returns 0, or the exit status after printing
 * why to stderr (2: a usage error, 1: out of memory). Call farm_agent_args_free either way. */
int farm_agent_args_parse(farm_agent_args_t *out, int argc, char **argv, int check);
void farm_agent_args_usage(FILE *f);
void farm_agent_args_free(farm_agent_args_t *a);

#endif
