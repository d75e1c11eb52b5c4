/* SPDX-License-Identifier: Apache-2.0 */
#include "common/str.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"

int farm_str_fmt(char *out, size_t len, const char *what, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len) {
        if (len)
            out[0] = '\0';
        return farm_error_set(FARM_ETOOBIG, "%s is too long (%d bytes, at most %zu)", what, n,
                              len ? len - 1 : 0);
    }
    return 0;
}

int farm_str_fmt_cut(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < len)
        return 0;
    if (len >= 4)
        memcpy(out + len - 4, "...", 4);
    else if (len)
        out[0] = '\0';
    return 1;
}
