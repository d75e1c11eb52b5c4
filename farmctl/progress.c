/* SPDX-License-Identifier: Apache-2.0 */
#include "farmctl/progress.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/limits.h"
#include "common/platform.h"
#include "common/str.h"
#include "common/text.h"

#define ROWS_MAX FARM_PLATFORMS_MAX /* one row per platform of a submit */
#define REDRAW_MS 100 /* log lines redraw at most this often */

typedef struct {
    char platform[FARM_PLATFORM_STRLEN];
    char node[FARM_NAME_MAX + 1];
    char state[32];
    char line[512];
    long long started;
    long long ended;
} row_t;

struct farmctl_progress {
    farmctl_progress_mode_t mode;
    FILE *out;
    row_t rows[ROWS_MAX];
    int n_rows;
    int drawn;     /* lines of the block currently on screen */
    int finished;  /* the block is final: later lines go below it */
    long long last_draw;
    long long t0;
};

farmctl_progress_t *farmctl_progress_new(farmctl_progress_mode_t mode, FILE *out)
{
    farmctl_progress_t *self = calloc(1, sizeof *self);
    const char *term = getenv("TERM");

    if (!self)
        return NULL;
    if (mode == FARMCTL_PROGRESS_AUTO)
        mode = isatty(fileno(out)) && term && strcmp(term, "dumb") != 0 ? FARMCTL_PROGRESS_TTY
                                                                       : FARMCTL_PROGRESS_PLAIN;
    self->mode = mode;
    self->out = out;
    self->t0 = farm_now_ms();
    return self;
}

void farmctl_progress_destroy(farmctl_progress_t **self_p)
{
    if (self_p && *self_p) {
        free(*self_p);
        *self_p = NULL;
    }
}

int farmctl_progress_quiet(const farmctl_progress_t *self)
{
    return self->mode == FARMCTL_PROGRESS_QUIET;
}

static int s_width(const farmctl_progress_t *self)
{
    struct winsize ws;
    if (ioctl(fileno(self->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 100;
}

/* Moves the cursor to the top of the block and clears it. */
static void s_erase(farmctl_progress_t *self)
{
    if (self->drawn)
        fprintf(self->out, "\033[%dA", self->drawn);
    fputs("\r\033[J", self->out);
    self->drawn = 0;
}

static void s_draw(farmctl_progress_t *self)
{
    int width = s_width(self);
    long long now = farm_now_ms();
    char buf[1024];

    s_erase(self);
    for (int i = 0; i < self->n_rows; i++) {
        const row_t *r = &self->rows[i];
        long long end = r->ended ? r->ended : now;
        double secs = r->started ? (end - r->started) / 1000.0 : 0;
        farm_str_fmt_cut(buf, sizeof buf, "[%c] %-14s %-12s %-9s %6.1fs  %s",
                         r->ended ? '+' : ' ', r->platform, r->node[0] ? r->node : "-", r->state,
                         secs, r->line);
        /* one terminal line per row, or the redraw's cursor arithmetic goes wrong (bytes
         * are at least columns in UTF-8); the cut falls between characters */
        if (width > 0 && (size_t)width <= sizeof buf && strlen(buf) > (size_t)width - 1) {
            size_t cut = (size_t)width - 1;
            while (cut > 0 && ((unsigned char)buf[cut] & 0xc0) == 0x80)
                cut--;
            buf[cut] = '\0';
        }
        fprintf(self->out, "%s\n", buf);
        self->drawn++;
    }
    fflush(self->out);
    self->last_draw = now;
}

void farmctl_progress_note(farmctl_progress_t *self, const char *fmt, ...)
{
    va_list ap;
    char *text = NULL, *inert = NULL;

    if (self->mode == FARMCTL_PROGRESS_QUIET)
        return;
    int live = self->mode == FARMCTL_PROGRESS_TTY && !self->finished;

    va_start(ap, fmt);
    if (vasprintf(&text, fmt, ap) < 0)
        text = NULL;
    va_end(ap);
    /* notes carry what the coordinator sent (ids, nodes, tags, messages): shown, not obeyed */
    if (text)
        inert = farm_text_inert_dup(text);
    if (live)
        s_erase(self);
    fprintf(self->out, "%s\n", inert ? inert : "farmctl: out of memory formatting a note");
    free(text);
    free(inert);
    if (live)
        s_draw(self);
}

static row_t *s_row(farmctl_progress_t *self, const char *platform)
{
    for (int i = 0; i < self->n_rows; i++)
        if (strcmp(self->rows[i].platform, platform) == 0)
            return &self->rows[i];
    /* a platform too long to be a row's key is shown as a plain note instead */
    if (self->n_rows == ROWS_MAX || strlen(platform) >= sizeof self->rows[0].platform)
        return NULL;
    row_t *r = &self->rows[self->n_rows++];
    memset(r, 0, sizeof *r);
    memcpy(r->platform, platform, strlen(platform) + 1);
    snprintf(r->state, sizeof r->state, "queued");
    return r;
}

void farmctl_progress_event(farmctl_progress_t *self, const Farm__Event *e)
{
    const char *kind = farm_wire_event_kind_name(e->kind);
    int is_log = e->kind == FARM__EVENT_KIND__EVENT_LOG;
    /* everything in an event is the peers' (build output above all): made inert first;
     * the platform keeps room to be too long for a row, so a cut one is no row's key */
    char platform[256], node[FARM_NAME_MAX + 1], message[2 * FARM_LINE_MAX];
    row_t *r;

    if (self->mode == FARMCTL_PROGRESS_QUIET)
        return;
    farm_text_inert(platform, sizeof platform, e->platform);
    farm_text_inert(node, sizeof node, e->node);
    farm_text_inert(message, sizeof message, e->message);
    if (self->mode == FARMCTL_PROGRESS_PLAIN) {
        if (platform[0])
            fprintf(self->out, "[%s %s] %s%s%s\n", platform, node[0] ? node : "-",
                    is_log ? "" : kind, is_log ? "" : ": ", message);
        else
            fprintf(self->out, "#%s %s\n", kind, message);
        return;
    }
    if (self->finished || !platform[0] || !(r = s_row(self, platform))) {
        farmctl_progress_note(self, "#%s %s", kind, message);
        return;
    }
    if (node[0])
        farm_text_inert(r->node, sizeof r->node, node);
    if (!is_log) {
        if (e->kind == FARM__EVENT_KIND__EVENT_DISPATCHED) {
            snprintf(r->state, sizeof r->state, "building");
            r->started = farm_now_ms();
            r->ended = 0;
        } else if (e->kind == FARM__EVENT_KIND__EVENT_PUSHED) {
            snprintf(r->state, sizeof r->state, "pushed");
            r->ended = farm_now_ms();
        } else if (e->kind == FARM__EVENT_KIND__EVENT_LOST) {
            snprintf(r->state, sizeof r->state, "retrying");
        } else {
            snprintf(r->state, sizeof r->state, "%.31s", kind);
            if (e->kind == FARM__EVENT_KIND__EVENT_FAILED)
                r->ended = farm_now_ms();
        }
    }
    if (!is_log || !strcmp(r->state, "building"))
        farm_text_inert(r->line, sizeof r->line, message); /* inert: cut between characters */
    if (!is_log || farm_now_ms() - self->last_draw >= REDRAW_MS)
        s_draw(self);
}

void farmctl_progress_finish(farmctl_progress_t *self)
{
    if (self->mode == FARMCTL_PROGRESS_TTY && self->n_rows && !self->finished)
        s_draw(self);
    self->drawn = 0; /* what follows goes below the block */
    self->finished = 1;
}
