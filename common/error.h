/* SPDX-License-Identifier: Apache-2.0 */
/* farm error slot: functions return 0 ok / negative on failure and leave a
 * message a person can read in a per-thread slot (libgit2 style). */
#ifndef FARM_ERROR_H
#define FARM_ERROR_H

#include <stddef.h>

/* The exit status of a daemon that refuses to start because of how it was set up (bad
 * options, an invalid farm.yaml, a missing key, a host that cannot sandbox): sysexits.h's
 * EX_CONFIG. The systemd units do not restart on it (RestartPreventExitStatus=), since
 * starting again cannot help until a person changes something. */
#define FARM_EXIT_CONFIG 78

enum {
    FARM_OK = 0,
    FARM_ERROR = -1,    /* generic failure */
    FARM_ENOTFOUND = -2,
    FARM_ETOOBIG = -3,
    FARM_EAUTH = -4,
    FARM_EINVALID = -5, /* bad input: file, message, user */
    FARM_EIO = -6,
    FARM_ERETRY = -7,   /* transient: worth retrying */
};

/* Sets the message (printf-style) and returns FARM_ERROR-or-given code via the
 * helper below. Always returns `code` so callers can `return farm_error_set(...)`. */
int farm_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with more context: "ctx: old message". */
int farm_error_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *farm_error_last(void);
/* The code the last farm_error_set or farm_error_wrap returned (FARM_ERROR when none
 * since farm_error_clear): lets a program's top tell bad input from the rest. */
int farm_error_last_code(void);
void farm_error_clear(void);

#endif
