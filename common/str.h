/* SPDX-License-Identifier: Apache-2.0 */
/* Bounded formatting into fixed arrays: nothing is cut silently. Paths go through
 * farm_path_join / farm_path_fmt (common/fs.h); other strings through these. */
#ifndef FARM_STR_H
#define FARM_STR_H

#include <stddef.h>

/* out = printf(fmt, ...), or FARM_ETOOBIG (out "") with "WHAT is too long (N bytes, at
 * most M)" when it does not fit. For values that must be whole: names, URLs, headers. */
int farm_str_fmt(char *out, size_t len, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* out = printf(fmt, ...) for text a person reads (log lines, messages): when it does not
 * fit it is cut and ends in "...", so the reader knows. Returns 1 if cut, else 0. */
int farm_str_fmt_cut(char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
