/* SPDX-License-Identifier: Apache-2.0 */
/* Is a failed job the node's fault or the build's, and is the node healthy?
 *
 * A failed job's error and log tail are read for a recognisable cause: a node-local one
 * (the disk full, builder storage broken, the sandbox not set up; the registry not
 * reached, from the worker's own error only) or the Dockerfile's (a step that exited
 * non-zero, a syntax error). The log is the build's output, which a
 * Dockerfile controls, so a node-local cause found there is only a suspicion: the node's
 * own health checks (`farm-agent check`'s, agent/check.h) must confirm it before the
 * node calls itself unhealthy and the job is run elsewhere. A build cannot make a healthy
 * node unhealthy by printing "No space left on device".
 *
 * The parsing and the verdicts are plain functions of strings and reports (unit-tested);
 * farm_health_check reads the real host. */
#ifndef FARM_AGENT_HEALTH_H
#define FARM_AGENT_HEALTH_H

#include <stddef.h>

#include "agent/agent.h"
#include "agent/check.h"

#define FARM_HEALTH_CAUSE_MAX 512

typedef enum {
    FARM_FAULT_UNKNOWN, /* no recognisable cause */
    FARM_FAULT_BUILD,   /* the Dockerfile's: not retried, the node stays ready */
    FARM_FAULT_NODE,    /* suspected the node's: confirm with farm_health_check */
} farm_fault_t;

/* The cause of a failure from the error and the log lines (oldest first): a node-local
 * one wins over the Dockerfile's (a RUN step may die of a full disk). cause ("" when
 * UNKNOWN) is one line, e.g. "No space left on device" or
 * "step \"RUN false\" failed (exit status 1)". */
farm_fault_t farm_health_classify(char *cause, size_t len, const char *error,
                                  const char *const *lines, size_t n);

/* The Dockerfile's cause alone (FARM_FAULT_BUILD or UNKNOWN): what the error names when
 * the node's checks did not confirm a node-local cause the log claimed. */
farm_fault_t farm_health_classify_build(char *cause, size_t len, const char *error,
                                        const char *const *lines, size_t n);

/* The error line a person reads: "CAUSE on node NAME (ERROR)", or ERROR alone when there
 * is no cause. */
void farm_health_error(char *out, size_t len, const char *cause, const char *node,
                       const char *error);

/* From a check report: 1 unhealthy, cause "WHAT: DETAIL; fix: FIX" of the first failing
 * finding that stops builds here (a disk under --min-free or unusable, the builder, or,
 * for an agent that sandboxes its RUN steps (sandbox 1), the sandbox's essentials);
 * 0 healthy (cause ""). */
int farm_health_verdict(char *cause, size_t len, const farm_check_report_t *r, int sandbox);

/* 1 when error (the worker's own, never the build's log) says the registry (host[:port])
 * could not be reached at all: not resolved, no connection, timed out. A node-local cause
 * only if farm_health_probe confirms it from this node. */
int farm_health_registry(const char *error, const char *registry);
/* Connects to the registry (host[:port], port 443 when none) within timeout_ms: 0 when it
 * answers, 1 with cause "registry HOST unreachable from this node: ..." when not. */
int farm_health_probe(char *cause, size_t len, const char *registry, int timeout_ms);

/* Runs the checks for an agent with opts (no clock question) and gives their verdict. */
int farm_health_check(char *cause, size_t len, const farm_agent_opts_t *opts);

#endif
