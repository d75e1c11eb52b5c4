/* SPDX-License-Identifier: Apache-2.0 */
/* One line per event to stderr: "2026-11-28T10:00:00.123Z coordinator INFO build=b1 ..."
 * When stderr is systemd's journal ($JOURNAL_STREAM names it), each line starts with its
 * syslog priority, <3> error, <4> warning, <6> info, <7> debug, so `journalctl -p err`
 * finds the errors. Never pass secrets to these functions. */
#ifndef FARM_LOG_H
#define FARM_LOG_H

typedef enum { FARM_LOG_ERROR, FARM_LOG_WARN, FARM_LOG_INFO, FARM_LOG_DEBUG } farm_log_level_t;

/* Also looks whether stderr is the journal: call again after redirecting fd 2. */
void farm_log_init(const char *ident, farm_log_level_t level);
void farm_log_set_level(farm_log_level_t level);
int farm_log_enabled(farm_log_level_t level);
void farm_log(farm_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A message for the person who started the program (a refusal, a usage error): fmt's
 * text as it is, without time stamp, and with the journal's priority prefix on each line
 * when stderr is the journal. Ends with a newline; fmt need not. */
void farm_log_say(farm_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define farm_log_error(...) farm_log(FARM_LOG_ERROR, __VA_ARGS__)
#define farm_log_warn(...) farm_log(FARM_LOG_WARN, __VA_ARGS__)
#define farm_log_info(...) farm_log(FARM_LOG_INFO, __VA_ARGS__)
#define farm_log_debug(...) farm_log(FARM_LOG_DEBUG, __VA_ARGS__)

#endif
