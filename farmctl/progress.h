/* SPDX-License-Identifier: Apache-2.0 */
/* farmctl's build progress on stderr: plain lines tagged [platform node] (CI logs), a
 * live block with one line per platform (terminals), or nothing (quiet). */
#ifndef FARMCTL_PROGRESS_H
#define FARMCTL_PROGRESS_H

#include <stdio.h>

#include "common/wire.h"

typedef enum {
    FARMCTL_PROGRESS_AUTO,
    FARMCTL_PROGRESS_PLAIN,
    FARMCTL_PROGRESS_TTY,
    FARMCTL_PROGRESS_QUIET,
} farmctl_progress_mode_t;

typedef struct farmctl_progress farmctl_progress_t;

/* AUTO is TTY when `out` is a terminal (and TERM is not "dumb"), else PLAIN. */
farmctl_progress_t *farmctl_progress_new(farmctl_progress_mode_t mode, FILE *out);
void farmctl_progress_destroy(farmctl_progress_t **self_p);

/* A line about the whole build ("#context ... uploaded"). */
void farmctl_progress_note(farmctl_progress_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void farmctl_progress_event(farmctl_progress_t *self, const Farm__Event *e);
/* Draws the final state and leaves the cursor below it. */
void farmctl_progress_finish(farmctl_progress_t *self);
int farmctl_progress_quiet(const farmctl_progress_t *self);

#endif
