/* SPDX-License-Identifier: Apache-2.0 */
#include "common/child.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"
#include "common/proc.h"

/* Log bytes read per farm_child_read_log call, so a chatty child cannot hold the reactor. */
#define CHILD_LOG_BUDGET (64u * 1024)

extern char **environ;

struct farm_child {
    pid_t pid;
    int log_fd, result_fd; /* -1 once at EOF */
    int reaped, status;
    int refused;           /* the result outgrew FARM_CHILD_RESULT_MAX */
    unsigned char *result;
    size_t result_len, result_cap;
    farm_linebuf_t lb;
};

/* What the child reports on the exec-status pipe when it cannot exec. */
enum { STAGE_SETUP = 1, STAGE_CHDIR, STAGE_EXEC };
typedef struct {
    int stage, err;
} s_failure_t;

/* Everything the child needs, prepared before vfork: in the child (which shares the
 * parent's memory until it execs) only system calls are made, nothing is written. */
typedef struct {
    const char *path;
    char *const *argv;
    char **envp;
    const char *cwd;
    pid_t parent;
    int fd_in, fd_log, fd_req, fd_result, fd_status; /* all >= 5, so dup2 to 0..4 is safe */
} s_plan_t;

static void s_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Moves *fd to a number >= 5 (close-on-exec), out of the way of the child's 0..4. */
static int s_fd_high(int *fd)
{
    int nfd;

    if (*fd >= 5)
        return 0;
    if ((nfd = fcntl(*fd, F_DUPFD_CLOEXEC, 5)) < 0)
        return farm_error_set(FARM_EIO, "child: fcntl F_DUPFD: %s", strerror(errno));
    close(*fd);
    *fd = nfd;
    return 0;
}

/* Key length of "K=V" (up to '='), or 0 if there is no '='. */
static size_t s_key_len(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq && eq != kv ? (size_t)(eq - kv) : 0;
}

static int s_same_key(const char *a, const char *b, size_t klen)
{
    return strncmp(a, b, klen) == 0 && b[klen] == '=';
}

/* environ plus extra (an extra replaces a same-name variable; a later extra wins).
 * The strings are borrowed: the array is only used up to execve. */
static int s_build_env(char ***out, char *const *extra)
{
    size_t nenv = 0, nextra = 0, n = 0;
    char **envp;

    while (environ && environ[nenv])
        nenv++;
    while (extra && extra[nextra]) {
        if (!s_key_len(extra[nextra]))
            return farm_error_set(FARM_EINVALID, "child: environment entry \"%s\" is not K=V",
                                  extra[nextra]);
        nextra++;
    }
    if (!(envp = calloc(nenv + nextra + 1, sizeof *envp)))
        return farm_error_set(FARM_ERROR, "child: out of memory");
    for (size_t i = 0; i < nenv; i++) {
        size_t j, klen = s_key_len(environ[i]);
        for (j = 0; klen && j < nextra && !s_same_key(environ[i], extra[j], klen); j++)
            ;
        if (!klen || j == nextra)
            envp[n++] = environ[i];
    }
    for (size_t i = 0; i < nextra; i++) {
        size_t j, klen = s_key_len(extra[i]);
        for (j = i + 1; j < nextra && !s_same_key(extra[i], extra[j], klen); j++)
            ;
        if (j == nextra)
            envp[n++] = extra[i];
    }
    envp[n] = NULL;
    *out = envp;
    return 0;
}

/* out = program as given if it has a '/', else its first executable match on PATH. */
static int s_resolve(char *out, size_t len, const char *prog)
{
    const char *path = getenv("PATH"), *seg, *end;
    struct stat st;
    int rc;

    if (strchr(prog, '/'))
        return farm_path_fmt(out, len, "%s", prog);
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (seg = path; seg; seg = *end ? end + 1 : NULL) {
        end = strchrnul(seg, ':');
        if (end == seg)
            continue;
        if ((rc = farm_path_fmt(out, len, "%.*s/%s", (int)(end - seg), seg, prog)) < 0)
            return rc;
        if (access(out, X_OK) == 0 && stat(out, &st) == 0 && S_ISREG(st.st_mode))
            return 0;
    }
    out[0] = '\0';
    return farm_error_set(FARM_ENOTFOUND, "cannot run %s: not found on PATH (%s)", prog, path);
}

/* A sealed memfd holding the request, positioned at 0. */
static int s_request_fd(int *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    int fd = memfd_create("farm-request", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (fd < 0)
        return farm_error_set(FARM_EIO, "child: memfd_create: %s", strerror(errno));
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int err = errno;
            close(fd);
            return farm_error_set(FARM_EIO, "child: writing the request: %s", strerror(err));
        }
        p += n;
        len -= (size_t)n;
    }
    /* the child can neither change nor grow what it was asked */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0 ||
        lseek(fd, 0, SEEK_SET) < 0) {
        int err = errno;
        close(fd);
        return farm_error_set(FARM_EIO, "child: sealing the request: %s", strerror(err));
    }
    *out = fd;
    return 0;
}

/* Closes every fd >= low except keep (>= low). close_range is a syscall: safe after fork. */
static void s_close_from(unsigned low, unsigned keep)
{
    struct rlimit rl;

#ifdef SYS_close_range
    if ((keep == low || syscall(SYS_close_range, low, keep - 1, 0) == 0) &&
        syscall(SYS_close_range, keep + 1, ~0U, 0) == 0)
        return;
#endif
    /* kernels before 5.9 */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        rl.rlim_cur = 65536;
    for (unsigned fd = low; fd < rl.rlim_cur; fd++)
        if (fd != keep)
            close((int)fd);
}

static void s_child_fail(int fd, int stage) __attribute__((noreturn));
static void s_child_fail(int fd, int stage)
{
    s_failure_t f = {stage, errno};

    if (write(fd, &f, sizeof f) < 0) {
        /* nothing left to tell: the parent sees exit status 127 */
    }
    _exit(127);
}

/* Between fork and exec. */
static void s_child(const s_plan_t *p) __attribute__((noreturn));
static void s_child(const s_plan_t *p)
{
    struct sigaction dfl;
    sigset_t none;

    /* the parent's handlers must not run here, and ignored signals (SIGPIPE) and the
     * blocked mask would survive exec */
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
        s_child_fail(p->fd_status, STAGE_SETUP);
    if (getppid() != p->parent) /* the parent died before prctl: nobody to report to */
        _exit(127);
    if (setsid() < 0)
        s_child_fail(p->fd_status, STAGE_SETUP);
    /* dup2 clears close-on-exec on the new fd; the sources are >= 5 */
    if (dup2(p->fd_in, 0) < 0 || dup2(p->fd_log, 1) < 0 || dup2(p->fd_log, 2) < 0 ||
        dup2(p->fd_req, FARM_CHILD_REQUEST_FD) < 0 || dup2(p->fd_result, FARM_CHILD_RESULT_FD) < 0)
        s_child_fail(p->fd_status, STAGE_SETUP);
    /* whatever a library opened without O_CLOEXEC stays behind too */
    s_close_from(5, (unsigned)p->fd_status);
    if (p->cwd && chdir(p->cwd) != 0)
        s_child_fail(p->fd_status, STAGE_CHDIR);
    execve(p->path, p->argv, p->envp);
    s_child_fail(p->fd_status, STAGE_EXEC);
}

/* vfork: no copy of the parent's page tables and no copy-on-write faults after it,
 * which a daemon with many builds in memory would pay per helper; the parent waits only
 * until the exec. Signals stay blocked until the child has reset its handlers (they would
 * run on the parent's memory), as glibc's posix_spawn does. A function of its own, so no
 * local of the caller lives across the vfork. */
static pid_t s_vfork(const s_plan_t *plan)
{
    sigset_t all, old;
    pid_t pid;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = vfork();
    if (pid == 0)
        s_child(plan);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return pid;
}

farm_child_t *farm_child_spawn(const farm_child_opts_t *opts)
{
    farm_child_t *self = NULL;
    char path[FARM_PATH_MAX];
    char **envp = NULL;
    int req = -1, devnull = -1, logp[2] = {-1, -1}, resp[2] = {-1, -1}, statp[2] = {-1, -1};
    s_plan_t plan;
    s_failure_t f;
    ssize_t n;
    pid_t pid;

    if (!opts || !opts->argv || !opts->argv[0]) {
        farm_error_set(FARM_EINVALID, "child: no program to run");
        return NULL;
    }
    if (s_resolve(path, sizeof path, opts->argv[0]) < 0 || s_build_env(&envp, opts->env_extra) < 0)
        goto fail;
    if (!(self = calloc(1, sizeof *self))) {
        farm_error_set(FARM_ERROR, "child: out of memory");
        goto fail;
    }
    self->pid = -1;
    self->log_fd = self->result_fd = -1;
    if (s_request_fd(&req, opts->request, opts->request ? opts->request_len : 0) < 0)
        goto fail;
    if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        farm_error_set(FARM_EIO, "child: /dev/null: %s", strerror(errno));
        goto fail;
    }
    if (pipe2(logp, O_CLOEXEC) != 0 || pipe2(resp, O_CLOEXEC) != 0 || pipe2(statp, O_CLOEXEC) != 0) {
        farm_error_set(FARM_EIO, "child: pipe: %s", strerror(errno));
        goto fail;
    }
    if (s_fd_high(&req) < 0 || s_fd_high(&devnull) < 0 || s_fd_high(&logp[1]) < 0 ||
        s_fd_high(&resp[1]) < 0 || s_fd_high(&statp[1]) < 0)
        goto fail;
    if (fcntl(logp[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(resp[0], F_SETFL, O_NONBLOCK) < 0) {
        farm_error_set(FARM_EIO, "child: fcntl O_NONBLOCK: %s", strerror(errno));
        goto fail;
    }
    plan = (s_plan_t){.path = path, .argv = opts->argv, .envp = envp, .cwd = opts->cwd,
                      .parent = getpid(), .fd_in = devnull, .fd_log = logp[1], .fd_req = req,
                      .fd_result = resp[1], .fd_status = statp[1]};

    if ((pid = s_vfork(&plan)) < 0) {
        farm_error_set(FARM_EIO, "child: vfork: %s", strerror(errno));
        goto fail;
    }

    self->pid = pid;
    self->log_fd = logp[0];
    self->result_fd = resp[0];
    logp[0] = resp[0] = -1;
    s_close(&req);
    s_close(&devnull);
    s_close(&logp[1]);
    s_close(&resp[1]);
    s_close(&statp[1]);
    /* EOF: the exec happened (the status pipe is close-on-exec); else why it did not */
    while ((n = read(statp[0], &f, sizeof f)) < 0 && errno == EINTR)
        ;
    if (n != 0) {
        if (n != (ssize_t)sizeof f)
            farm_error_set(FARM_EIO, "cannot run %s: the child failed before exec", path);
        else if (f.stage == STAGE_CHDIR)
            farm_error_set(FARM_EIO, "cannot run %s: cannot enter %s: %s", path, opts->cwd,
                           strerror(f.err));
        else if (f.stage == STAGE_EXEC)
            farm_error_set(FARM_EIO, "cannot run %s: %s", path, strerror(f.err));
        else
            farm_error_set(FARM_EIO, "cannot run %s: setting up the child: %s", path,
                           strerror(f.err));
        goto fail; /* destroy reaps it */
    }
    s_close(&statp[0]);
    /* lowered from here, after the exec: lowered inside the vforked child, the parent
     * (suspended until the exec) would wait behind a low-priority process. What the
     * helper starts later inherits it. */
    if (opts->nice > 0) {
        int cur;
        errno = 0;
        cur = getpriority(PRIO_PROCESS, pid);
        if (errno == 0)
            setpriority(PRIO_PROCESS, pid, cur + opts->nice > 19 ? 19 : cur + opts->nice);
    }
    free(envp);
    return self;

fail:
    s_close(&req);
    s_close(&devnull);
    for (int i = 0; i < 2; i++) {
        s_close(&logp[i]);
        s_close(&resp[i]);
        s_close(&statp[i]);
    }
    free(envp);
    farm_child_destroy(&self);
    return NULL;
}

void farm_child_destroy(farm_child_t **self_p)
{
    farm_child_t *self = self_p ? *self_p : NULL;

    if (!self)
        return;
    if (self->pid > 0 && !self->reaped) {
        kill(-self->pid, SIGKILL);
        kill(self->pid, SIGKILL); /* not yet a group leader if it failed before setsid */
        while (waitpid(self->pid, &self->status, 0) < 0 && errno == EINTR)
            ;
    }
    s_close(&self->log_fd);
    s_close(&self->result_fd);
    free(self->result);
    free(self);
    *self_p = NULL;
}

pid_t farm_child_pid(const farm_child_t *self)
{
    return self->pid;
}

int farm_child_log_fd(const farm_child_t *self)
{
    return self->log_fd;
}

int farm_child_result_fd(const farm_child_t *self)
{
    return self->result_fd;
}

int farm_child_read_log(farm_child_t *self, void (*fn)(void *arg, const char *line), void *arg)
{
    int rc;

    if (self->log_fd < 0)
        return 1;
    rc = farm_linebuf_read_max(&self->lb, self->log_fd, CHILD_LOG_BUDGET, fn, arg);
    if (rc < 0)
        return farm_error_wrap(rc, "child %d: log", (int)self->pid);
    if (rc == 1)
        s_close(&self->log_fd);
    return rc;
}

static int s_refused(const farm_child_t *self)
{
    return farm_error_set(FARM_ETOOBIG, "child %d: result larger than %u bytes refused",
                          (int)self->pid, FARM_CHILD_RESULT_MAX);
}

int farm_child_read_result(farm_child_t *self)
{
    if (self->refused)
        return s_refused(self);
    while (self->result_fd >= 0) {
        ssize_t n;

        /* one byte past the maximum, to notice a result that is too big */
        if (self->result_len == self->result_cap) {
            size_t cap = self->result_cap ? self->result_cap * 2 : 4096;
            unsigned char *p;
            if (cap > (size_t)FARM_CHILD_RESULT_MAX + 1)
                cap = (size_t)FARM_CHILD_RESULT_MAX + 1;
            if (!(p = realloc(self->result, cap)))
                return farm_error_set(FARM_ERROR, "child %d: out of memory", (int)self->pid);
            self->result = p;
            self->result_cap = cap;
        }
        n = read(self->result_fd, self->result + self->result_len,
                 self->result_cap - self->result_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return farm_error_set(FARM_EIO, "child %d: result: %s", (int)self->pid,
                                  strerror(errno));
        }
        if (n == 0) {
            s_close(&self->result_fd);
            break;
        }
        self->result_len += (size_t)n;
        if (self->result_len > FARM_CHILD_RESULT_MAX) {
            s_close(&self->result_fd);
            free(self->result);
            self->result = NULL;
            self->result_len = self->result_cap = 0;
            self->refused = 1;
            return s_refused(self);
        }
    }
    return 1;
}

const void *farm_child_result(const farm_child_t *self, size_t *out_len)
{
    static const unsigned char empty[1];

    *out_len = self->result_len;
    return self->result_len ? self->result : empty; /* never NULL */
}

int farm_child_kill(farm_child_t *self, int sig)
{
    if (self->reaped)
        return 0;
    if (kill(-self->pid, sig) != 0)
        return farm_error_set(FARM_EIO, "child %d: kill: %s", (int)self->pid, strerror(errno));
    return 0;
}

int farm_child_reap(farm_child_t *self, int *out_status)
{
    siginfo_t si;

    if (!self->reaped) {
        memset(&si, 0, sizeof si);
        /* look without reaping: while it is a zombie its pid, and so its process group id,
         * cannot be reused, and what it left behind in the group can be killed safely */
        if (waitid(P_PID, (id_t)self->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
            return farm_error_set(FARM_EIO, "child %d: waitid: %s", (int)self->pid,
                                  strerror(errno));
        if (si.si_pid == 0)
            return 0;
        kill(-self->pid, SIGKILL);
        while (waitpid(self->pid, &self->status, 0) < 0) {
            if (errno != EINTR)
                return farm_error_set(FARM_EIO, "child %d: waitpid: %s", (int)self->pid,
                                      strerror(errno));
        }
        self->reaped = 1;
    }
    if (out_status)
        *out_status = self->status;
    return 1;
}

int farm_child_done(const farm_child_t *self)
{
    return self->log_fd < 0 && self->result_fd < 0 && self->reaped;
}

/* ---- the child's side ---- */

int farm_child_request_read(void **out, size_t *out_len, size_t max)
{
    unsigned char *buf = NULL, *p;
    size_t len = 0, cap = 0;
    /* one byte past max, to notice a request that is too big */
    size_t limit = max < SIZE_MAX ? max + 1 : SIZE_MAX;
    int rc = 0;

    *out = NULL;
    *out_len = 0;
    for (;;) {
        ssize_t n;
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            if (cap > limit)
                cap = limit;
            if (!(p = realloc(buf, cap))) {
                rc = farm_error_set(FARM_ERROR, "request: out of memory");
                goto done;
            }
            buf = p;
        }
        n = read(FARM_CHILD_REQUEST_FD, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = farm_error_set(FARM_EIO, "request: reading fd %d: %s", FARM_CHILD_REQUEST_FD,
                                strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            rc = farm_error_set(FARM_ETOOBIG, "request: larger than %zu bytes", max);
            goto done;
        }
    }
    *out = buf;
    *out_len = len;
    buf = NULL;
done:
    free(buf);
    /* programs this one runs must not hold the request or, worse, the result pipe open */
    close(FARM_CHILD_REQUEST_FD);
    fcntl(FARM_CHILD_RESULT_FD, F_SETFD, FD_CLOEXEC);
    return rc;
}

int farm_child_result_write(const void *data, size_t len)
{
    const unsigned char *p = data;
    int rc = 0;

    while (len > 0) {
        ssize_t n = write(FARM_CHILD_RESULT_FD, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = farm_error_set(FARM_EIO, "result: writing fd %d: %s", FARM_CHILD_RESULT_FD,
                                strerror(errno));
            break;
        }
        p += n;
        len -= (size_t)n;
    }
    if (close(FARM_CHILD_RESULT_FD) != 0 && rc == 0)
        rc = farm_error_set(FARM_EIO, "result: closing fd %d: %s", FARM_CHILD_RESULT_FD,
                            strerror(errno));
    return rc;
}
