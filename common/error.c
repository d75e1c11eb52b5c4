/* SPDX-License-Identifier: Apache-2.0 */
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char s_msg[2048];
static _Thread_local int s_code = FARM_ERROR;

/* Messages are bounded by the slot; one that did not fit ends in "..." so a reader
 * knows it was cut. */
static void s_mark_cut(int n)
{
    if (n >= (int)sizeof s_msg)
        memcpy(s_msg + sizeof s_msg - 4, "...", 4);
}

int farm_error_set(int code, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(s_msg, sizeof s_msg, fmt, ap);
    va_end(ap);
    s_mark_cut(n);
    s_code = code;
    return code;
}

int farm_error_wrap(int code, const char *fmt, ...)
{
    char prefix[1024], old[sizeof s_msg];
    size_t lp;
    va_list ap;
    s_code = code;
    va_start(ap, fmt);
    if (vsnprintf(prefix, sizeof prefix, fmt, ap) >= (int)sizeof prefix)
        memcpy(prefix + sizeof prefix - 4, "...", 4);
    va_end(ap);
    lp = strlen(prefix);
    memcpy(old, s_msg, sizeof old);
    if (!old[0]) {
        memcpy(s_msg, prefix, lp + 1);
        return code;
    }
    /* prefix (< 1 KiB) + ": " + old (< 2 KiB) may exceed the slot: old is cut, marked */
    snprintf(s_msg, sizeof s_msg, "%s: %.*s", prefix, (int)(sizeof s_msg - 3 - lp), old);
    s_mark_cut((int)(lp + 2 + strlen(old)));
    return code;
}

const char *farm_error_last(void)
{
    return s_msg[0] ? s_msg : "unknown error";
}

int farm_error_last_code(void)
{
    return s_code;
}

void farm_error_clear(void)
{
    s_msg[0] = '\0';
    s_code = FARM_ERROR;
}
