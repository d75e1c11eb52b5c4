/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/peerwarn.h"

#include <stdarg.h>
#include <stdio.h>

#include "common/log.h"
#include "common/proc.h"

static struct {
    long long second;
    unsigned logged, suppressed;
} s_warns;

void farm_peer_warn(const char *fmt, ...)
{
    long long second = farm_now_ms() / 1000;
    char msg[1024];
    va_list ap;

    if (second != s_warns.second) {
        if (s_warns.suppressed)
            farm_log_warn("%u more warnings about peers' messages in the last second were not "
                          "logged", s_warns.suppressed);
        s_warns.second = second;
        s_warns.logged = s_warns.suppressed = 0;
    }
    if (s_warns.logged >= FARM_PEER_WARNS_PER_S) {
        s_warns.suppressed++;
        return;
    }
    s_warns.logged++;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    farm_log_warn("%s", msg);
}
