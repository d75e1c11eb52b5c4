/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/steps.h"

#include <stdio.h>
#include <string.h>

/* "STEP 3/5: RUN ..." or, in multi-stage builds, "[2/2] STEP 1/4: FROM ...": the number,
 * or 0 when line is no step line (the same reading as agent/layers.c's count). */
static unsigned s_step_number(const char *line)
{
    const char *s = strstr(line, "STEP ");
    unsigned a, b;
    char colon;

    if (!s || !(s == line || (s >= line + 2 && s[-1] == ' ' && s[-2] == ']')))
        return 0;
    if (sscanf(s, "STEP %u/%u%c", &a, &b, &colon) != 3 || colon != ':')
        return 0;
    return a ? a : 0;
}

static void s_close(farm_steps_t *st, long long now_ms)
{
    farm_step_t *p;
    if (!st->open || st->n == 0)
        return;
    p = &st->steps[st->n - 1];
    p->ms = now_ms > p->start_ms ? (uint64_t)(now_ms - p->start_ms) : 0;
    st->open = 0;
}

void farm_steps_line(farm_steps_t *st, const char *line, long long now_ms)
{
    unsigned n = s_step_number(line);

    if (n) {
        farm_step_t *p;
        s_close(st, now_ms);
        if (st->n == FARM_STEPS_MAX)
            return;
        p = &st->steps[st->n++];
        memset(p, 0, sizeof *p);
        p->number = n;
        snprintf(p->text, sizeof p->text, "%s", line);
        p->start_ms = now_ms;
        st->open = 1;
    } else if (strncmp(line, "--> Using cache ", 16) == 0 && st->open) {
        st->steps[st->n - 1].cached = 1;
    } else if (strncmp(line, "COMMIT", 6) == 0 && (line[6] == ' ' || !line[6])) {
        s_close(st, now_ms); /* the image's commit is no step's time */
    }
}

void farm_steps_end(farm_steps_t *st, long long now_ms)
{
    s_close(st, now_ms);
}
