/* SPDX-License-Identifier: Apache-2.0 */
/* The timing of a build's steps, from the builder's output as the agent relays it: a
 * step runs from its "STEP n/m: ..." line to the next step's (or the commit, or the
 * build's end); "--> Using cache ID" says the builder took it from its cache. Builder
 * output is partly the Dockerfile's: these are statistics for the build's record, never
 * decisions. Pure: lines and times in, steps out. */
#ifndef FARM_AGENT_STEPS_H
#define FARM_AGENT_STEPS_H

#include <stddef.h>
#include <stdint.h>

#define FARM_STEPS_MAX 256       /* steps timed per job; later ones are not */
#define FARM_STEP_TEXT_MAX 255   /* bytes of a step's line kept */

typedef struct {
    unsigned number;             /* n of "STEP n/m" */
    char text[FARM_STEP_TEXT_MAX + 1];
    long long start_ms;
    uint64_t ms;                 /* 0 while open */
    int cached;
} farm_step_t;

typedef struct {
    farm_step_t steps[FARM_STEPS_MAX];
    size_t n;
    int open;                    /* the last step has not ended yet */
} farm_steps_t;

/* One line of builder output, seen at now_ms (a monotonic clock). */
void farm_steps_line(farm_steps_t *st, const char *line, long long now_ms);
/* The build ended at now_ms: the open step ends there. */
void farm_steps_end(farm_steps_t *st, long long now_ms);

#endif
