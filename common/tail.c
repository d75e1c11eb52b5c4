/* SPDX-License-Identifier: Apache-2.0 */
#include "common/tail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void farm_tail_add(farm_tail_t *self, const char *line)
{
    unsigned slot = self->pos++ % FARM_TAIL_LINES;
    free(self->lines[slot]);
    self->lines[slot] = strndup(line, FARM_LINE_MAX);
}

size_t farm_tail_lines(const farm_tail_t *self, const char *out[FARM_TAIL_LINES])
{
    unsigned n = self->pos < FARM_TAIL_LINES ? self->pos : FARM_TAIL_LINES;
    size_t k = 0;
    for (unsigned i = self->pos - n; i < self->pos; i++)
        if (self->lines[i % FARM_TAIL_LINES])
            out[k++] = self->lines[i % FARM_TAIL_LINES];
    return k;
}

void farm_tail_format(const farm_tail_t *self, char *buf, size_t len)
{
    const char *lines[FARM_TAIL_LINES];
    size_t n = farm_tail_lines(self, lines), off = 0;

    if (!len)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < n && off < len; i++) {
        int w = snprintf(buf + off, len - off, "  | %s\n", lines[i]);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

void farm_tail_clear(farm_tail_t *self)
{
    for (unsigned i = 0; i < FARM_TAIL_LINES; i++) {
        free(self->lines[i]);
        self->lines[i] = NULL;
    }
    self->pos = 0;
}
