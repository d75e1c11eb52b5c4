#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char s_msg[2048];

int farm_error_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s_msg, sizeof s_msg, fmt, ap);
    va_end(ap);
    return code;
}

int farm_error_wrap(int code, const char *fmt, ...)
{
    char prefix[1024], old[sizeof s_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, s_msg, sizeof old);
    if (old[0])
        snprintf(s_msg, sizeof s_msg, "%s: %s", prefix, old);
    else
        snprintf(s_msg, sizeof s_msg, "%s", prefix);
    return code;
}

const char *farm_error_last(void)
{
    return s_msg[0] ? s_msg : "unknown error";
}

void farm_error_clear(void)
{
    s_msg[0] = '\0';
}
