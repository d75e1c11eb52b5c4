/* SPDX-License-Identifier: Apache-2.0 */
#include "common/prunefilter.h"

#include <stdio.h>
#include <string.h>

#include "common/error.h"

#define UNTIL_MAX_S (100ULL * 365 * 24 * 3600) /* a century: anything longer is a typo */

int farm_prunefilter_parse(uint64_t *out_until_s, const char *arg)
{
    const char *p;
    uint64_t total = 0;

    *out_until_s = 0;
    if (!arg || strncmp(arg, "until=", 6) != 0)
        return farm_error_set(FARM_EINVALID, "--filter \"%.64s\": the one filter is "
                              "until=DURATION (e.g. until=24h)", arg ? arg : "");
    p = arg + 6;
    if (!*p)
        return farm_error_set(FARM_EINVALID, "--filter until=: no duration; write e.g. "
                              "until=24h, until=90m or until=1h30m");
    while (*p) {
        uint64_t v = 0, unit;
        const char *start = p;

        while (*p >= '0' && *p <= '9') {
            if (v > UNTIL_MAX_S)
                break;
            v = v * 10 + (uint64_t)(*p++ - '0');
        }
        if (p == start || v > UNTIL_MAX_S)
            return farm_error_set(FARM_EINVALID, "--filter \"%.64s\": \"%.16s\" is not a "
                                  "number of h, m or s (write e.g. until=24h or until=1h30m)",
                                  arg, start);
        switch (*p) {
        case 'h': unit = 3600; break;
        case 'm': unit = 60; break;
        case 's': unit = 1; break;
        default:
            return farm_error_set(FARM_EINVALID, "--filter \"%.64s\": %s after %llu; the "
                                  "units are h, m and s (e.g. until=24h or until=1h30m)", arg,
                                  *p ? "unknown unit" : "no unit", (unsigned long long)v);
        }
        p++;
        total += v * unit;
        if (total > UNTIL_MAX_S)
            return farm_error_set(FARM_EINVALID, "--filter \"%.64s\": longer than a century",
                                  arg);
    }
    *out_until_s = total;
    return 0;
}

void farm_prunefilter_age(char *out, size_t cap, uint64_t s)
{
    unsigned long long d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60, sec = s % 60;

    if (d)
        snprintf(out, cap, h ? "%llud%lluh" : "%llud", d, h);
    else if (h)
        snprintf(out, cap, m ? "%lluh%llum" : "%lluh", h, m);
    else if (m)
        snprintf(out, cap, sec ? "%llum%llus" : "%llum", m, sec);
    else
        snprintf(out, cap, "%llus", sec);
}
