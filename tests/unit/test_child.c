/* SPDX-License-Identifier: Apache-2.0 */
/* Child processes: this binary re-runs itself ("/proc/self/exe MODE") as the child, so
 * both sides of the contract are real: the request on fd 3, the result on fd 4, the log
 * on 1+2 never taken for a result, the refused oversized result, the environment, the
 * process group (a grandchild dies with it), and no fd of ours leaking in. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/child.h"
#include "common/error.h"
#include "common/limits.h"
#include "common/proc.h"
#include "common/wire.h"

/* ======== the child's side: argv[1] says what to do ======== */

static int s_child_echo(void)
{
    void *req;
    size_t len;
    unsigned char *out;

    if (farm_child_request_read(&req, &len, FARM_CHILD_RESULT_MAX) < 0)
        return 2;
    printf("request %zu bytes\n", len);
    if (!(out = malloc(len ? len : 1)))
        return 2;
    for (size_t i = 0; i < len; i++) /* reversed */
        out[i] = ((unsigned char *)req)[len - 1 - i];
    if (farm_child_result_write(out, len) < 0)
        return 3;
    free(out);
    free(req);
    return 0;
}

static int s_child_logs(void)
{
    char longline[5001];

    memset(longline, 'x', sizeof longline - 1);
    longline[sizeof longline - 1] = '\0';
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("out line 1\n");
    fprintf(stderr, "err line 2\r\n");
    printf("@@result ok {\"fake\":true}\n");
    printf("%s\n", longline);
    if (farm_child_result_write("real", 4) < 0)
        return 3;
    printf("last line without newline");
    return 0;
}

static int s_child_noresult(void)
{
    printf("@@result ok fake\n");
    fflush(stdout);
    return 0;
}

static int s_child_big(const char *size)
{
    size_t len = strtoul(size, NULL, 10);
    char *buf = calloc(1, len);
    int rc;

    if (!buf)
        return 2;
    signal(SIGPIPE, SIG_IGN); /* a refused result is an error return here, not a death */
    rc = farm_child_result_write(buf, len);
    free(buf);
    return rc < 0 ? 4 : 0;
}

/* Starts `sleep 100` (a grandchild in our group), says its pid, reports whether we lead
 * our own process group and session, then waits to be killed. */
static int s_child_grandchild(void)
{
    void *req;
    size_t len;
    char res[64];
    pid_t pid;
    int n;

    /* first: it marks fd 4 close-on-exec, so sleep does not hold the result pipe open */
    if (farm_child_request_read(&req, &len, 16) < 0)
        return 2;
    free(req);
    if ((pid = fork()) == 0) {
        execlp("sleep", "sleep", "100", (char *)NULL);
        _exit(127);
    }
    printf("sleep-pid %d\n", (int)pid);
    fflush(stdout);
    n = snprintf(res, sizeof res, "leader=%d",
                 getpgrp() == getpid() && getsid(0) == getpid());
    if (n < 0 || (size_t)n >= sizeof res || farm_child_result_write(res, (size_t)n) < 0)
        return 3;
    for (;;)
        pause();
}

static int s_child_env(void)
{
    extern char **environ;
    const char *extra = getenv("FARM_TEST_EXTRA"), *repl = getenv("FARM_TEST_REPLACED");
    char res[256];
    int count = 0, n;

    for (char **e = environ; *e; e++)
        count += strncmp(*e, "FARM_TEST_REPLACED=", 19) == 0;
    n = snprintf(res, sizeof res, "extra=%s replaced=%s count=%d path=%d",
                 extra ? extra : "(none)", repl ? repl : "(none)", count, getenv("PATH") != NULL);
    if (n < 0 || (size_t)n >= sizeof res)
        return 2;
    return farm_child_result_write(res, (size_t)n) < 0 ? 3 : 0;
}

/* Lists our open fds (without the one opendir uses), what fd 0 and fd 3 are, fd 3's
 * seals, and the signal state we were started with. */
static int s_child_fds(void)
{
    char res[1024] = "", target[256];
    size_t used = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    struct sigaction sa;
    sigset_t mask;
    ssize_t n;
    int seals, k;

    if (!d)
        return 2;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || atoi(de->d_name) == dirfd(d))
            continue;
        k = snprintf(res + used, sizeof res - used, "%s ", de->d_name);
        if (k < 0 || (size_t)k >= sizeof res - used)
            return 2;
        used += (size_t)k;
    }
    closedir(d);
    n = readlink("/proc/self/fd/0", target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    k = snprintf(res + used, sizeof res - used, "| stdin=%s", target);
    if (k < 0 || (size_t)k >= sizeof res - used)
        return 2;
    used += (size_t)k;
    n = readlink("/proc/self/fd/3", target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    seals = fcntl(FARM_CHILD_REQUEST_FD, F_GET_SEALS);
    sigaction(SIGPIPE, NULL, &sa);
    sigprocmask(SIG_SETMASK, NULL, &mask);
    k = snprintf(res + used, sizeof res - used, " | fd3=%.13s sealed=%d | sigpipe=%s usr1=%s",
                 target, seals >= 0 && (seals & F_SEAL_WRITE) && (seals & F_SEAL_GROW),
                 sa.sa_handler == SIG_DFL ? "default" : "changed",
                 sigismember(&mask, SIGUSR1) ? "blocked" : "open");
    if (k < 0 || (size_t)k >= sizeof res - used)
        return 2;
    used += (size_t)k;
    return farm_child_result_write(res, used) < 0 ? 3 : 0;
}

static int s_child_cwd(void)
{
    char cwd[FARM_PATH_MAX];

    if (!getcwd(cwd, sizeof cwd))
        return 2;
    return farm_child_result_write(cwd, strlen(cwd)) < 0 ? 3 : 0;
}

static int s_child_reqmax(void)
{
    void *req = NULL;
    size_t len = 0;
    int rc = farm_child_request_read(&req, &len, 10);
    const char *res = rc == FARM_ETOOBIG && !req && !len ? "toobig" : "accepted";

    free(req);
    return farm_child_result_write(res, strlen(res)) < 0 ? 3 : 0;
}

/* The child answers its nice value once the parent has lowered it (the parent does so
 * right after the exec: waited for up to 5 s). */
static int s_child_nice(const char *want)
{
    void *req = NULL;
    size_t len = 0;
    char res[32];

    if (farm_child_request_read(&req, &len, 1024) < 0)
        return 2;
    free(req);
    for (int i = 0; i < 500 && getpriority(PRIO_PROCESS, 0) != atoi(want); i++)
        usleep(10000);
    snprintf(res, sizeof res, "%d", getpriority(PRIO_PROCESS, 0));
    return farm_child_result_write(res, strlen(res)) < 0 ? 3 : 0;
}

static int s_child_main(int argc, char **argv, int *out)
{
    const char *mode = argv[1];

    if (!strcmp(mode, "child-echo"))
        *out = s_child_echo();
    else if (!strcmp(mode, "child-logs"))
        *out = s_child_logs();
    else if (!strcmp(mode, "child-noresult"))
        *out = s_child_noresult();
    else if (!strcmp(mode, "child-big") && argc > 2)
        *out = s_child_big(argv[2]);
    else if (!strcmp(mode, "child-grandchild"))
        *out = s_child_grandchild();
    else if (!strcmp(mode, "child-env"))
        *out = s_child_env();
    else if (!strcmp(mode, "child-fds"))
        *out = s_child_fds();
    else if (!strcmp(mode, "child-cwd"))
        *out = s_child_cwd();
    else if (!strcmp(mode, "child-reqmax"))
        *out = s_child_reqmax();
    else if (!strcmp(mode, "child-nice") && argc > 2)
        *out = s_child_nice(argv[2]);
    else
        return 0;
    return 1;
}

/* ======== the parent's side ======== */

typedef struct {
    char *lines[64];
    int n;
} lines_t;

static void s_collect(void *arg, const char *line)
{
    lines_t *l = arg;
    assert_true(l->n < 64);
    l->lines[l->n] = strdup(line);
    assert_non_null(l->lines[l->n]);
    l->n++;
}

static void s_lines_free(lines_t *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->lines[i]);
    l->n = 0;
}

static int s_has_line(const lines_t *l, const char *line)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->lines[i], line))
            return 1;
    return 0;
}

/* Reads both streams as a reactor would (non-blocking, on poll) until the child is done
 * or timeout_ms passed. *out_result_rc: the last read_result return. Returns done. */
static int s_drive(farm_child_t *c, lines_t *lines, int *out_result_rc, int *out_status,
                   int timeout_ms)
{
    long long end = farm_now_ms() + timeout_ms;

    *out_result_rc = 0;
    while (!farm_child_done(c) && farm_now_ms() < end) {
        struct pollfd p[2];
        int n = 0;

        if (farm_child_log_fd(c) >= 0)
            p[n++] = (struct pollfd){.fd = farm_child_log_fd(c), .events = POLLIN};
        if (farm_child_result_fd(c) >= 0)
            p[n++] = (struct pollfd){.fd = farm_child_result_fd(c), .events = POLLIN};
        if (n == 0) {
            if (farm_child_reap(c, out_status) == 0)
                usleep(10 * 1000);
            continue;
        }
        assert_true(poll(p, (nfds_t)n, 100) >= 0);
        if (farm_child_log_fd(c) >= 0)
            assert_true(farm_child_read_log(c, s_collect, lines) >= 0);
        if (farm_child_result_fd(c) >= 0)
            *out_result_rc = farm_child_read_result(c);
    }
    return farm_child_done(c);
}

static farm_child_t *s_spawn(const char *mode, const char *arg, const void *req, size_t len)
{
    char *argv[] = {"/proc/self/exe", (char *)mode, (char *)arg, NULL};
    farm_child_opts_t o = {.argv = argv, .request = req, .request_len = len};
    farm_child_t *c = farm_child_spawn(&o);

    if (!c)
        fail_msg("spawn %s: %s", mode, farm_error_last());
    return c;
}

static void test_request_round_trip(void **state)
{
    size_t len = 200 * 1024; /* more than a pipe holds: both sides must stream */
    unsigned char *req = malloc(len);
    const unsigned char *res;
    size_t res_len;
    lines_t lines = {0};
    int rrc, status = -1;
    farm_child_t *c;
    char want[64];

    assert_non_null(req);
    for (size_t i = 0; i < len; i++)
        req[i] = (unsigned char)(i * 7 + i / 251); /* includes NULs */
    c = s_spawn("child-echo", NULL, req, len);
    assert_true(farm_child_pid(c) > 0);
    assert_true(s_drive(c, &lines, &rrc, &status, 20000));
    assert_int_equal(rrc, 1);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    res = farm_child_result(c, &res_len);
    assert_int_equal(res_len, len);
    for (size_t i = 0; i < len; i++)
        if (res[i] != req[len - 1 - i])
            fail_msg("result byte %zu differs", i);
    snprintf(want, sizeof want, "request %zu bytes", len);
    assert_true(s_has_line(&lines, want));
    assert_int_equal(farm_child_log_fd(c), -1);
    assert_int_equal(farm_child_result_fd(c), -1);
    s_lines_free(&lines);
    farm_child_destroy(&c);
    assert_null(c);
    farm_child_destroy(&c);
    free(req);
}

/* Log lines from stdout and stderr arrive (\r stripped, long lines cut, the last partial
 * line at EOF), and "@@result ok ..." on stdout stays a log line. */
static void test_log_lines_never_the_result(void **state)
{
    lines_t lines = {0};
    const char *res;
    size_t res_len;
    int rrc, status = -1, cut = 0;
    farm_child_t *c = s_spawn("child-logs", NULL, NULL, 0);

    assert_true(s_drive(c, &lines, &rrc, &status, 20000));
    assert_int_equal(rrc, 1);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    res = farm_child_result(c, &res_len);
    assert_int_equal(res_len, 4);
    assert_memory_equal(res, "real", 4);
    assert_true(s_has_line(&lines, "out line 1"));
    assert_true(s_has_line(&lines, "err line 2"));
    assert_true(s_has_line(&lines, "@@result ok {\"fake\":true}"));
    assert_true(s_has_line(&lines, "last line without newline"));
    for (int i = 0; i < lines.n; i++) {
        assert_true(strlen(lines.lines[i]) < FARM_LINE_MAX);
        cut += strlen(lines.lines[i]) == FARM_LINE_MAX - 1 && lines.lines[i][0] == 'x';
    }
    assert_int_equal(cut, 1);
    s_lines_free(&lines);
    farm_child_destroy(&c);
}

static void test_no_result_is_empty(void **state)
{
    lines_t lines = {0};
    size_t res_len = 99;
    int rrc, status = -1;
    farm_child_t *c = s_spawn("child-noresult", NULL, "ignored", 7);

    assert_true(s_drive(c, &lines, &rrc, &status, 20000));
    assert_int_equal(rrc, 1);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_non_null(farm_child_result(c, &res_len));
    assert_int_equal(res_len, 0);
    assert_true(s_has_line(&lines, "@@result ok fake"));
    s_lines_free(&lines);
    farm_child_destroy(&c);
}

static void test_result_size_limit(void **state)
{
    lines_t lines = {0};
    size_t res_len;
    int rrc, status = -1;
    char size[32];
    farm_child_t *c;

    /* exactly the maximum: accepted */
    snprintf(size, sizeof size, "%u", FARM_CHILD_RESULT_MAX);
    c = s_spawn("child-big", size, NULL, 0);
    assert_true(s_drive(c, &lines, &rrc, &status, 20000));
    assert_int_equal(rrc, 1);
    farm_child_result(c, &res_len);
    assert_int_equal(res_len, FARM_CHILD_RESULT_MAX);
    farm_child_destroy(&c);

    /* one byte more: refused, the stream closed, nothing kept */
    snprintf(size, sizeof size, "%u", FARM_CHILD_RESULT_MAX + 1);
    c = s_spawn("child-big", size, NULL, 0);
    assert_true(s_drive(c, &lines, &rrc, &status, 20000));
    assert_int_equal(rrc, FARM_ETOOBIG);
    assert_non_null(strstr(farm_error_last(), "refused"));
    assert_int_equal(farm_child_read_result(c), FARM_ETOOBIG); /* stays refused */
    assert_int_equal(farm_child_result_fd(c), -1);
    farm_child_result(c, &res_len);
    assert_int_equal(res_len, 0);
    /* the child saw its write fail (EPIPE), or had finished writing into the pipe */
    assert_true(WIFEXITED(status));
    s_lines_free(&lines);
    farm_child_destroy(&c);
}

/* The child's side refuses a request over its max. */
static void test_request_max(void **state)
{
    char req[100] = {0};
    lines_t lines = {0};
    const char *res;
    size_t res_len;
    int rrc, status;
    farm_child_t *c = s_spawn("child-reqmax", NULL, req, sizeof req);

    assert_true(s_drive(c, &lines, &rrc, &status, 20000));
    res = farm_child_result(c, &res_len);
    assert_int_equal(res_len, 6);
    assert_memory_equal(res, "toobig", 6);
    s_lines_free(&lines);
    farm_child_destroy(&c);
}

/* State of pid from /proc: 0 gone (or a zombie: dead, waiting for init), 1 running.
 * *out_pgid is its process group. */
static int s_proc_alive(pid_t pid, pid_t *out_pgid)
{
    char path[64], buf[512], *p;
    FILE *f;
    int pgid = 0;
    char st = 0;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (!(f = fopen(path, "r")))
        return 0;
    p = fgets(buf, sizeof buf, f);
    fclose(f);
    /* "pid (comm) S ppid pgrp ...": comm may hold spaces, so parse after the last ')' */
    if (!p || !(p = strrchr(buf, ')')) || sscanf(p + 1, " %c %*d %d", &st, &pgid) != 2)
        return 0;
    if (out_pgid)
        *out_pgid = pgid;
    return st != 'Z' && st != 'X';
}

static int s_wait_gone(pid_t pid, int timeout_ms)
{
    long long end = farm_now_ms() + timeout_ms;

    while (s_proc_alive(pid, NULL)) {
        if (farm_now_ms() > end)
            return 0;
        usleep(20 * 1000);
    }
    return 1;
}

/* Starts child-grandchild and reads until it reported sleep's pid and its result. */
static farm_child_t *s_spawn_grandchild(pid_t *out_sleep)
{
    farm_child_t *c = s_spawn("child-grandchild", NULL, "x", 1);
    long long end = farm_now_ms() + 20000;
    lines_t lines = {0};
    int rrc = 0, status, sleeper = 0;
    const char *res;
    size_t res_len;
    pid_t pgid = 0;

    *out_sleep = 0;
    while ((!*out_sleep || farm_child_result_fd(c) >= 0) && farm_now_ms() < end) {
        s_drive(c, &lines, &rrc, &status, 100);
        assert_true(rrc >= 0);
        for (int i = 0; i < lines.n; i++)
            if (sscanf(lines.lines[i], "sleep-pid %d", &sleeper) == 1)
                *out_sleep = sleeper;
    }
    /* the result arrived (EOF on fd 4) although sleep still runs: it did not inherit fd 4 */
    assert_int_equal(farm_child_result_fd(c), -1);
    assert_true(*out_sleep > 0);
    res = farm_child_result(c, &res_len);
    assert_int_equal(res_len, 8);
    assert_memory_equal(res, "leader=1", 8);
    assert_true(s_proc_alive(*out_sleep, &pgid));
    assert_int_equal(pgid, farm_child_pid(c));
    assert_int_equal(farm_child_reap(c, &status), 0); /* still running */
    s_lines_free(&lines);
    return c;
}

static void test_destroy_kills_grandchild(void **state)
{
    pid_t sleeper, pid;
    farm_child_t *c = s_spawn_grandchild(&sleeper);

    pid = farm_child_pid(c);
    farm_child_destroy(&c);
    assert_null(c);
    assert_true(s_wait_gone(sleeper, 10000));
    assert_false(s_proc_alive(pid, NULL));
}

static void test_kill_signals_the_group(void **state)
{
    pid_t sleeper;
    farm_child_t *c = s_spawn_grandchild(&sleeper);
    long long end = farm_now_ms() + 10000;
    int status = 0, rc;

    assert_int_equal(farm_child_kill(c, SIGTERM), 0);
    while ((rc = farm_child_reap(c, &status)) == 0 && farm_now_ms() < end)
        usleep(10 * 1000);
    assert_int_equal(rc, 1);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    assert_true(s_wait_gone(sleeper, 10000));
    assert_int_equal(farm_child_reap(c, &status), 1); /* reaped once, answers again */
    assert_int_equal(farm_child_kill(c, SIGKILL), 0); /* reaped: nothing to signal */
    farm_child_destroy(&c);
}

static void test_env_extra(void **state)
{
    char *argv[] = {"/proc/self/exe", "child-env", NULL};
    char *extra[] = {"FARM_TEST_EXTRA=hello world", "FARM_TEST_REPLACED=new", NULL};
    char *bad[] = {"NOEQUALS", NULL};
    farm_child_opts_t o = {.argv = argv, .env_extra = extra};
    const char *want = "extra=hello world replaced=new count=1 path=1";
    lines_t lines = {0};
    const char *res;
    size_t res_len;
    int rrc, status;
    farm_child_t *c;

    assert_int_equal(setenv("FARM_TEST_REPLACED", "old", 1), 0);
    c = farm_child_spawn(&o);
    assert_non_null(c);
    assert_true(s_drive(c, &lines, &rrc, &status, 20000));
    res = farm_child_result(c, &res_len);
    assert_int_equal(res_len, strlen(want));
    assert_memory_equal(res, want, res_len);
    assert_string_equal(getenv("FARM_TEST_REPLACED"), "old"); /* ours is untouched */
    farm_child_destroy(&c);

    o.env_extra = bad;
    assert_null(farm_child_spawn(&o));
    assert_non_null(strstr(farm_error_last(), "NOEQUALS"));
    unsetenv("FARM_TEST_REPLACED");
    s_lines_free(&lines);
}

/* fds we open without O_CLOEXEC, an ignored SIGPIPE and a blocked signal: none of it
 * reaches the child. */
static void test_no_fd_leaks_and_clean_signals(void **state)
{
    const char *want = "0 1 2 3 4 | stdin=/dev/null | fd3=/memfd:farm-r sealed=1 | "
                       "sigpipe=default usr1=open";
    int leak = open("/dev/null", O_RDONLY), lp[2];
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigset_t usr1, oldmask;
    lines_t lines = {0};
    const char *res;
    size_t res_len;
    int rrc, status;
    farm_child_t *c;

    assert_true(leak >= 0);
    assert_int_equal(pipe(lp), 0);
    assert_int_equal(sigaction(SIGPIPE, &ign, &old), 0);
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    assert_int_equal(sigprocmask(SIG_BLOCK, &usr1, &oldmask), 0);
    c = s_spawn("child-fds", NULL, "req", 3);
    sigprocmask(SIG_SETMASK, &oldmask, NULL);
    sigaction(SIGPIPE, &old, NULL);

    assert_true(s_drive(c, &lines, &rrc, &status, 20000));
    res = farm_child_result(c, &res_len);
    if (res_len != strlen(want) || memcmp(res, want, res_len))
        fail_msg("child saw: %.*s", (int)res_len, res);
    farm_child_destroy(&c);
    close(leak);
    close(lp[0]);
    close(lp[1]);
    s_lines_free(&lines);
}

/* A helper lowers its priority by opts.nice once it runs (not before its exec, when the
 * parent still waits for it), so its work yields to the daemon's loop. */
static void test_nice(void **state)
{
    char want[32];
    char *argv[] = {"/proc/self/exe", "child-nice", want, NULL};
    farm_child_opts_t o = {.argv = argv, .request = "x", .request_len = 1, .nice = 7};
    lines_t lines = {0};
    const char *res;
    size_t res_len;
    int rrc, status = -1;
    farm_child_t *c;

    snprintf(want, sizeof want, "%d", getpriority(PRIO_PROCESS, 0) + 7 > 19
                                          ? 19 : getpriority(PRIO_PROCESS, 0) + 7);
    c = farm_child_spawn(&o);
    assert_non_null(c);
    assert_true(s_drive(c, &lines, &rrc, &status, 20000));
    res = farm_child_result(c, &res_len);
    assert_int_equal(res_len, strlen(want));
    assert_memory_equal(res, want, res_len);
    farm_child_destroy(&c);
    s_lines_free(&lines);
}

static void test_cwd_and_start_failures(void **state)
{
    char dir[] = "/tmp/farm-child-XXXXXX", real[FARM_PATH_MAX];
    char *argv[] = {"/proc/self/exe", "child-cwd", NULL};
    char *missing[] = {"/nonexistent/farm-prog", NULL};
    char *onpath[] = {"true", NULL};
    char *notonpath[] = {"farm-no-such-program-xyz", NULL};
    farm_child_opts_t o = {.argv = argv};
    lines_t lines = {0};
    const char *res;
    size_t res_len;
    int rrc, status = -1;
    farm_child_t *c;

    assert_non_null(mkdtemp(dir));
    assert_non_null(realpath(dir, real));
    o.cwd = dir;
    c = farm_child_spawn(&o);
    assert_non_null(c);
    assert_true(s_drive(c, &lines, &rrc, &status, 20000));
    res = farm_child_result(c, &res_len);
    assert_int_equal(res_len, strlen(real));
    assert_memory_equal(res, real, res_len);
    farm_child_destroy(&c);
    assert_int_equal(rmdir(dir), 0);

    /* the directory is gone now: the spawn fails and says why */
    assert_null(farm_child_spawn(&o));
    assert_non_null(strstr(farm_error_last(), "cannot enter"));
    assert_non_null(strstr(farm_error_last(), dir));

    o = (farm_child_opts_t){.argv = missing};
    assert_null(farm_child_spawn(&o));
    assert_non_null(strstr(farm_error_last(), "/nonexistent/farm-prog"));

    o = (farm_child_opts_t){.argv = notonpath};
    assert_null(farm_child_spawn(&o));
    assert_non_null(strstr(farm_error_last(), "not found on PATH"));

    /* a bare name is looked up on PATH */
    o = (farm_child_opts_t){.argv = onpath};
    c = farm_child_spawn(&o);
    assert_non_null(c);
    assert_true(s_drive(c, &lines, &rrc, &status, 20000));
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    farm_child_destroy(&c);
    s_lines_free(&lines);
}

/* The log reader takes a byte budget per call (so one chatty child cannot hold the
 * reactor): it stops at the budget with lines still waiting, and the rest comes next. */
static void test_log_read_budget(void **state)
{
    farm_linebuf_t lb = {.len = 0};
    lines_t lines = {0};
    char line[101];
    int fds[2];

    assert_int_equal(pipe2(fds, O_NONBLOCK), 0);
    memset(line, 'a', 99);
    line[99] = '\n';
    for (int i = 0; i < 10; i++)
        assert_int_equal(write(fds[1], line, 100), 100);
    assert_int_equal(farm_linebuf_read_max(&lb, fds[0], 250, s_collect, &lines), 0);
    assert_int_equal(lines.n, 2); /* 250 bytes: two lines and half of the third */
    assert_int_equal(farm_linebuf_read_max(&lb, fds[0], 10000, s_collect, &lines), 0);
    assert_int_equal(lines.n, 10);
    close(fds[1]);
    assert_int_equal(farm_linebuf_read_max(&lb, fds[0], 10000, s_collect, &lines), 1);
    for (int i = 0; i < lines.n; i++)
        assert_int_equal(strlen(lines.lines[i]), 99);
    close(fds[0]);
    s_lines_free(&lines);
}

int main(int argc, char **argv)
{
    int rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_log_lines_never_the_result),
        cmocka_unit_test(test_no_result_is_empty),
        cmocka_unit_test(test_log_read_budget),
        cmocka_unit_test(test_result_size_limit),
        cmocka_unit_test(test_request_max),
        cmocka_unit_test(test_destroy_kills_grandchild),
        cmocka_unit_test(test_kill_signals_the_group),
        cmocka_unit_test(test_env_extra),
        cmocka_unit_test(test_no_fd_leaks_and_clean_signals),
        cmocka_unit_test(test_cwd_and_start_failures),
        cmocka_unit_test(test_nice),
    };

    if (argc > 1 && s_child_main(argc, argv, &rc))
        return rc;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
