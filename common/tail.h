/* SPDX-License-Identifier: Apache-2.0 */
/* The last FARM_TAIL_LINES lines of a log, kept to explain a failure. */
#ifndef FARM_TAIL_H
#define FARM_TAIL_H

#include <stddef.h>

#include "common/limits.h"

typedef struct {
    char *lines[FARM_TAIL_LINES];
    unsigned pos; /* lines ever added */
} farm_tail_t;

/* Keeps a copy of line (cut at FARM_LINE_MAX); out of memory drops the line. */
void farm_tail_add(farm_tail_t *self, const char *line);
/* The kept lines, oldest first: out[i] borrowed until the next add. Returns the count. */
size_t farm_tail_lines(const farm_tail_t *self, const char *out[FARM_TAIL_LINES]);
/* "  | line\n" per kept line into buf (cut at len, always terminated). */
void farm_tail_format(const farm_tail_t *self, char *buf, size_t len);
void farm_tail_clear(farm_tail_t *self);

#endif
