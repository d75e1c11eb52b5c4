/* SPDX-License-Identifier: Apache-2.0 */
#include "common/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *s_ident = "farm";
static farm_log_level_t s_level = FARM_LOG_INFO;
static int s_journal = -1; /* stderr is systemd's journal: lines carry a priority prefix;
                              * -1: not looked at yet */
static const char *s_prios[] = {"<3>", "<4>", "<6>", "<7>"};

/* systemd sets $JOURNAL_STREAM to "DEV:INODE" of the stream it connects to stdout and
 * stderr (systemd.exec(5)); it only counts while fd 2 is still that stream, not a file or
 * pipe it was redirected to since. */
static int s_stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    uintmax_t dev, ino;
    struct stat st;
    int end = 0;

    if (!js || sscanf(js, "%ju:%ju%n", &dev, &ino, &end) != 2 || js[end] != '\0')
        return 0;
    if (fstat(STDERR_FILENO, &st) < 0)
        return 0;
    return (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}

static const char *s_journal_prefix(farm_log_level_t level)
{
    if (s_journal < 0)
        s_journal = s_stderr_is_journal();
    return s_journal ? s_prios[level] : "";
}

void farm_log_init(const char *ident, farm_log_level_t level)
{
    s_ident = ident;
    s_level = level;
    s_journal = s_stderr_is_journal();
}

void farm_log_set_level(farm_log_level_t level)
{
    s_level = level;
}

int farm_log_enabled(farm_log_level_t level)
{
    return level <= s_level;
}

/* Text from peers (node names, registry errors, build output) is inert here: control
 * characters are escaped, so one event stays one line and cannot forge another. */
static size_t s_escape(char *out, size_t cap, const char *in)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 5 < cap; p++) {
        if (*p >= 0x20 && *p != 0x7f) {
            out[o++] = (char)*p;
        } else if (*p == '\n' || *p == '\t' || *p == '\r') {
            out[o++] = '\\';
            out[o++] = *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r';
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return o;
}

void farm_log(farm_log_level_t level, const char *fmt, ...)
{
    static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    char msg[4096], line[4096 + 128];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    int n, cut;

    if (level > s_level)
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    va_start(ap, fmt);
    cut = vsnprintf(msg, sizeof msg, fmt, ap) >= (int)sizeof msg;
    va_end(ap);
    /* for the journal the line starts with its syslog priority, as sd-daemon.h's SD_ERR,
     * SD_WARNING, SD_INFO, SD_DEBUG: systemd takes it off (SyslogLevelPrefix=yes) */
    n = snprintf(line, sizeof line, "%s%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s ",
                 s_journal_prefix(level), tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000), s_ident,
                 (int)getpid(), names[level]);
    if (n < 0 || (size_t)n >= sizeof line)
        n = 0;
    /* escaping can grow the text: a line too long for the buffer is cut and says so */
    if (s_escape(line + n, sizeof line - (size_t)n - 4, msg) + (size_t)n + 5 >= sizeof line - 4 ||
        cut)
        strcat(line, "...");
    /* one write per line so concurrent processes do not interleave mid-line */
    fprintf(stderr, "%s\n", line);
}

void farm_log_say(farm_log_level_t level, const char *fmt, ...)
{
    char msg[4096];
    const char *p = msg, *nl;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* every line of it carries the priority: the journal judges lines, not messages */
    do {
        nl = strchr(p, '\n');
        fprintf(stderr, "%s%.*s\n", s_journal_prefix(level),
                nl ? (int)(nl - p) : (int)strlen(p), p);
        p = nl ? nl + 1 : NULL;
    } while (p && *p);
}
