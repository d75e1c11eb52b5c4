/* SPDX-License-Identifier: Apache-2.0 */
/* Helper programs started with fork+exec (never a bare fork of a process that runs
 * ZeroMQ threads: the child only rewires fds and execs, czmq zproc style).
 *
 * The contract, both sides:
 *   fd 3  the request: one packed protobuf message, read until EOF (a sealed memfd)
 *   fd 4  the result: one packed protobuf message, written once, then closed
 *   fd 1, fd 2  log text only, one pipe; never parsed for results
 * The child leads a new process group (setsid) and dies with the parent (PDEATHSIG
 * SIGTERM, so it can end its own children first). */
#ifndef FARM_CHILD_H
#define FARM_CHILD_H

#include <stddef.h>
#include <sys/types.h>

#define FARM_CHILD_REQUEST_FD 3
#define FARM_CHILD_RESULT_FD 4
#define FARM_CHILD_RESULT_MAX (1u << 20) /* a result larger than this is refused */

typedef struct farm_child farm_child_t;

typedef struct {
    char *const *argv;          /* argv[0] is the program; "/proc/self/exe" re-runs ours */
    const char *cwd;            /* NULL: the parent's */
    const void *request;        /* packed request for fd 3 (may be NULL: empty) */
    size_t request_len;
    char *const *env_extra;     /* "K=V" added to the environment (NULL-terminated, or NULL) */
    int nice;                   /* added to the child's nice value (up to 19) right after its
                                 * exec: a helper's work must not take the CPU from the
                                 * daemon's loop */
} farm_child_opts_t;

/* Starts the child. NULL on failure (error slot says why). Returns once the exec has
 * happened, so a missing program or cwd is reported here, not as exit status 127.
 * argv[0] without a '/' is looked up on the parent's PATH. The child gets /dev/null on
 * fd 0, default signal dispositions, an empty signal mask, and no other fd of ours.
 * PDEATHSIG follows the thread that called spawn: call it from a long-lived thread. */
farm_child_t *farm_child_spawn(const farm_child_opts_t *opts);
/* Kills the child's process group with SIGKILL if it still runs, reaps it, closes fds. */
void farm_child_destroy(farm_child_t **self_p);

pid_t farm_child_pid(const farm_child_t *self);
/* Non-blocking read ends, for the reactor; -1 once that stream reached EOF. */
int farm_child_log_fd(const farm_child_t *self);
int farm_child_result_fd(const farm_child_t *self);

/* Reads what the log pipe holds and calls fn per complete line (no newline; lines over
 * FARM_LINE_MAX are cut). Returns 1 at EOF (fd closed), 0 if more may come, < 0 on error.
 * At most 64 KiB per call, so a chatty child cannot hold the reactor. */
int farm_child_read_log(farm_child_t *self, void (*fn)(void *arg, const char *line), void *arg);
/* Reads what the result pipe holds. 1 at EOF (fd closed), 0 if more may come, < 0 when
 * the result exceeds FARM_CHILD_RESULT_MAX (the stream is then closed). */
int farm_child_read_result(farm_child_t *self);
/* The result bytes read so far (complete once read_result returned 1); never NULL,
 * empty if the child wrote none or the result was refused. */
const void *farm_child_result(const farm_child_t *self, size_t *out_len);

/* Signals the whole process group (cancel: SIGTERM, then SIGKILL). */
int farm_child_kill(farm_child_t *self, int sig);
/* Non-blocking reap: 1 when the child has exited (*out_status as waitpid gives it),
 * 0 while it runs. Whatever the child left running in its process group is killed
 * (SIGKILL) before the reap, while the group id cannot yet be reused. */
int farm_child_reap(farm_child_t *self, int *out_status);
/* Both streams at EOF and the child reaped. */
int farm_child_done(const farm_child_t *self);

/* ---- the child's side ---- */

/* Reads the request from fd 3 (at most max bytes, else FARM_ETOOBIG). *out is malloc'd.
 * Then closes fd 3 and marks fd 4 close-on-exec, so programs the child runs later do not
 * hold the result pipe open: call it before starting any. */
int farm_child_request_read(void **out, size_t *out_len, size_t max);
/* Writes the result to fd 4 and closes it. Call once. */
int farm_child_result_write(const void *data, size_t len);

#endif
