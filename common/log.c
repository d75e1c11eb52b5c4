#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *s_ident = "farm";
static farm_log_level_t s_level = FARM_LOG_INFO;

void farm_log_init(const char *ident, farm_log_level_t level)
{
    s_ident = ident;
    s_level = level;
}

void farm_log_set_level(farm_log_level_t level)
{
    s_level = level;
}

int farm_log_enabled(farm_log_level_t level)
{
    return level <= s_level;
}

void farm_log(farm_log_level_t level, const char *fmt, ...)
{
    static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    char line[4096];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    int n;

    if (level > s_level)
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                 tm.tm_sec, (long)(tv.tv_usec / 1000), s_ident, (int)getpid(), names[level]);
    va_start(ap, fmt);
    /* a line too long for the buffer is cut and says so */
    if (n > 0 && (size_t)n < sizeof line &&
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap) >= (int)(sizeof line - (size_t)n))
        memcpy(line + sizeof line - 4, "...", 4);
    va_end(ap);
    /* one write per line so concurrent processes do not interleave mid-line */
    fprintf(stderr, "%s\n", line);
}
