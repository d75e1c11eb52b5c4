#include "common/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
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
