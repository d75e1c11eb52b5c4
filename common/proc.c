/* SPDX-License-Identifier: Apache-2.0 */
#include "common/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"

static volatile int *s_stop_flag;

static void s_on_stop_signal(int sig)
{
    (void)sig;
    if (s_stop_flag)
        *s_stop_flag = 1;
}

long farm_proc_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur;
}

void farm_proc_stop_on_signals(volatile int *stop)
{
    struct sigaction sa;

    s_stop_flag = stop;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_stop_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int farm_proc_run(char *const argv[], const char *cwd)
{
    return farm_proc_run_env(argv, cwd, NULL);
}

/* fork + exec; out >= 0 becomes the child's stdout and stderr. The child's pid, or < 0. */
static pid_t s_start(char *const argv[], const char *cwd, char *const envp[], int out)
{
    pid_t pid, parent = getpid();

    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return farm_error_set(FARM_EIO, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (out >= 0 && (dup2(out, 1) < 0 || dup2(out, 2) < 0))
            _exit(127);
        if (cwd && chdir(cwd) != 0) {
            fprintf(stderr, "cannot enter %s: %s\n", cwd, strerror(errno));
            _exit(127);
        }
        if (envp)
            execvpe(argv[0], argv, envp);
        else
            execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

static int s_wait(pid_t pid)
{
    int status;

    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return farm_error_set(FARM_EIO, "waitpid: %s", strerror(errno));
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

int farm_proc_run_env(char *const argv[], const char *cwd, char *const envp[])
{
    pid_t pid = s_start(argv, cwd, envp, -1);
    return pid < 0 ? (int)pid : s_wait(pid);
}

int farm_proc_run_lines(char *const argv[], const char *cwd, char *const envp[],
                        void (*fn)(void *arg, const char *line), void *arg)
{
    farm_linebuf_t lb = {.len = 0};
    int p[2], rc;
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) != 0)
        return farm_error_set(FARM_EIO, "pipe: %s", strerror(errno));
    pid = s_start(argv, cwd, envp, p[1]);
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return (int)pid;
    }
    /* blocking: returns at EOF, every line passed on */
    while ((rc = farm_linebuf_read(&lb, p[0], fn, arg)) == 0)
        ;
    close(p[0]);
    return s_wait(pid);
}

int farm_linebuf_read(farm_linebuf_t *lb, int fd, void (*fn)(void *arg, const char *line),
                      void *arg)
{
    return farm_linebuf_read_max(lb, fd, SIZE_MAX, fn, arg);
}

int farm_linebuf_read_max(farm_linebuf_t *lb, int fd, size_t max,
                          void (*fn)(void *arg, const char *line), void *arg)
{
    char chunk[8192];
    size_t total = 0;

    for (;;) {
        ssize_t n;

        if (total >= max)
            return 0; /* budget spent: a level-triggered poll calls again */
        n = read(fd, chunk, max - total < sizeof chunk ? max - total : sizeof chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return farm_error_set(FARM_EIO, "read: %s", strerror(errno));
        }
        if (n == 0) {
            if (lb->len) {
                lb->buf[lb->len] = '\0';
                fn(arg, lb->buf);
                lb->len = 0;
            }
            return 1;
        }
        total += (size_t)n;
        for (ssize_t i = 0; i < n; i++) {
            char c = chunk[i];
            if (c == '\n' || lb->len == sizeof lb->buf - 1) {
                lb->buf[lb->len] = '\0';
                if (lb->len && lb->buf[lb->len - 1] == '\r')
                    lb->buf[lb->len - 1] = '\0';
                fn(arg, lb->buf);
                lb->len = 0;
                if (c == '\n')
                    continue;
            }
            lb->buf[lb->len++] = c;
        }
    }
}

long long farm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int farm_proc_capture(const farm_proc_capture_t *o, char *out, size_t cap, size_t *out_len)
{
    const char *prog = o->argv[0];
    int in[2] = {-1, -1}, outp[2] = {-1, -1}, status = 0, rc;
    posix_spawn_file_actions_t fa;
    long long deadline = farm_now_ms() + o->timeout_ms;
    size_t len = 0;
    pid_t pid = -1;

    if (out_len)
        *out_len = 0;
    if (cap == 0 || o->input_len > 4096)
        return farm_error_set(FARM_EINVALID, "%s: no room for its output or input too long",
                              prog);
    out[0] = '\0';
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0) {
        rc = farm_error_set(FARM_EIO, "%s: pipe: %s", prog, strerror(errno));
        goto done;
    }
    /* the input fits the pipe's buffer: written before the child exists, so one that
     * exits early cannot SIGPIPE us */
    if (o->input_len && write(in[1], o->input, o->input_len) != (ssize_t)o->input_len) {
        rc = farm_error_set(FARM_EIO, "%s: writing to pipe: %s", prog, strerror(errno));
        goto done;
    }
    close(in[1]);
    in[1] = -1;
    posix_spawn_file_actions_init(&fa);
    if (o->input)
        posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    if (o->with_stderr)
        posix_spawn_file_actions_adddup2(&fa, outp[1], 2);
    /* in our process group, not its own: a credential helper may ask on the terminal
     * (pinentry), which a background group cannot */
    rc = posix_spawnp(&pid, prog, &fa, NULL, o->argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        pid = -1;
        rc = farm_error_set(FARM_ENOTFOUND, "cannot run %s: %s", prog, strerror(rc));
        goto done;
    }
    close(outp[1]);
    outp[1] = -1;
    for (;;) {
        struct pollfd pfd = {.fd = outp[0], .events = POLLIN};
        long long left = deadline - farm_now_ms();
        char spill[1];
        ssize_t n;
        int ready;

        if (left <= 0) {
            rc = farm_error_set(FARM_ERETRY, "%s timed out after %d ms", prog, o->timeout_ms);
            goto done;
        }
        if ((ready = poll(&pfd, 1, (int)left)) < 0) {
            if (errno == EINTR)
                continue;
            rc = farm_error_set(FARM_EIO, "%s: poll: %s", prog, strerror(errno));
            goto done;
        }
        if (ready == 0)
            continue; /* the deadline, checked above (a read now would block) */
        /* out full: one more byte (into spill) tells EOF, output that just fits, from more */
        if (len < cap - 1)
            n = read(outp[0], out + len, cap - 1 - len);
        else
            n = read(outp[0], spill, sizeof spill);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0) {
            rc = farm_error_set(FARM_EIO, "%s: read: %s", prog, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        if (len >= cap - 1) {
            rc = farm_error_set(FARM_ETOOBIG, "%s wrote more than %zu bytes", prog, cap - 1);
            goto done;
        }
        len += (size_t)n;
    }
    out[len] = '\0';
    /* its output closed; the exit is waited for within the same deadline (a program that
     * closes stdout and lingers is killed like one that never finishes), and a moment
     * more: one that closed it just before the deadline is still exiting */
    if (deadline < farm_now_ms() + 200)
        deadline = farm_now_ms() + 200;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        struct timespec nap = {0, 5 * 1000 * 1000};

        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            rc = farm_error_set(FARM_EIO, "%s: waitpid: %s", prog, strerror(errno));
            goto done;
        }
        if (farm_now_ms() >= deadline) {
            rc = farm_error_set(FARM_ERETRY, "%s timed out after %d ms", prog, o->timeout_ms);
            goto done;
        }
        nanosleep(&nap, NULL);
    }
    pid = -1;
    rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
done:
    if (pid > 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (outp[i] >= 0)
            close(outp[i]);
    }
    out[len < cap ? len : cap - 1] = '\0';
    if (out_len)
        *out_len = len;
    return rc;
}
