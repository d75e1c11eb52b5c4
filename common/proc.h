/* SPDX-License-Identifier: Apache-2.0 */
/* Running a program and waiting for it (inside helper programs only: the daemons start
 * helpers with common/child.h), the daemons' signal set-up, and the non-blocking line reader. */
#ifndef FARM_PROC_H
#define FARM_PROC_H

#include <stddef.h>
#include <sys/types.h>

#include "common/limits.h"

/* Runs argv synchronously with the caller's stdout/stderr, in cwd (may be NULL).
 * Returns the exit status (0..255), 128+signal, or < 0 if it could not start. */
int farm_proc_run(char *const argv[], const char *cwd);
/* The same with envp (NULL: the caller's environment) as the whole environment. */
int farm_proc_run_env(char *const argv[], const char *cwd, char *const envp[]);
/* The same with the program's stdout and stderr read line by line and given to fn (lines
 * longer than FARM_LINE_MAX are cut), until it closes them; then its status. */
int farm_proc_run_lines(char *const argv[], const char *cwd, char *const envp[],
                        void (*fn)(void *arg, const char *line), void *arg);

/* Runs a program and collects what it prints (a helper's answer, a tool's --version). */
typedef struct {
    char *const *argv;      /* argv[0] without a '/' is looked up on PATH */
    const void *input;      /* its stdin (at most 4096 bytes, written before it starts);
                             * NULL: /dev/null */
    size_t input_len;
    int with_stderr;        /* stderr into the output too (else it is the caller's) */
    int timeout_ms;         /* killed after this long */
} farm_proc_capture_t;

/* Output goes to out (NUL-terminated; at most cap - 1 bytes). Returns the exit status
 * (0..255) or 128+signal; FARM_ENOTFOUND when the program cannot be started, FARM_ERETRY
 * when it ran out of time, FARM_ETOOBIG when it printed cap bytes or more (both killed);
 * the error slot names the program. *out_len (may be NULL) gets the bytes kept. */
int farm_proc_capture(const farm_proc_capture_t *opts, char *out, size_t cap, size_t *out_len);

/* Monotonic milliseconds. */
long long farm_now_ms(void);

/* Daemon start-up: SIGINT/SIGTERM set *stop (the reactor then ends cleanly), SIGPIPE is
 * ignored (a dead peer is an error return, not a death). */
void farm_proc_stop_on_signals(volatile int *stop);
/* Raises the open-file soft limit to the hard limit (a daemon with many peers needs
 * descriptors; the hard limit is the operator's). Returns the new soft limit. */
long farm_proc_raise_nofile(void);

/* Reads everything available on a non-blocking fd and calls fn once per complete
 * line (without the newline; over-long lines are cut at FARM_LINE_MAX). Returns 1 at
 * EOF (remaining partial line flushed), 0 when more may come, < 0 on error. */
typedef struct {
    char buf[FARM_LINE_MAX];
    size_t len;
} farm_linebuf_t;
int farm_linebuf_read(farm_linebuf_t *lb, int fd, void (*fn)(void *arg, const char *line),
                      void *arg);
/* The same, reading at most max bytes per call (a budget, so one chatty child cannot hold
 * the reactor): returns 0 once max bytes were read, even if more is waiting. */
int farm_linebuf_read_max(farm_linebuf_t *lb, int fd, size_t max,
                          void (*fn)(void *arg, const char *line), void *arg);

#endif
