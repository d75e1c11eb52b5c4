/* SPDX-License-Identifier: Apache-2.0 */
/* One line per event to stderr: "2026-11-28T10:00:00.123Z coordinator INFO build=b1 ..."
 * Never pass secrets to these functions. */
#ifndef FARM_LOG_H
#define FARM_LOG_H

typedef enum { FARM_LOG_ERROR, FARM_LOG_WARN, FARM_LOG_INFO, FARM_LOG_DEBUG } farm_log_level_t;

void farm_log_init(const char *ident, farm_log_level_t level);
void farm_log_set_level(farm_log_level_t level);
int farm_log_enabled(farm_log_level_t level);
void farm_log(farm_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define farm_log_error(...) farm_log(FARM_LOG_ERROR, __VA_ARGS__)
#define farm_log_warn(...) farm_log(FARM_LOG_WARN, __VA_ARGS__)
#define farm_log_info(...) farm_log(FARM_LOG_INFO, __VA_ARGS__)
#define farm_log_debug(...) farm_log(FARM_LOG_DEBUG, __VA_ARGS__)

#endif
