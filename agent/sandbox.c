/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"
#include "common/proc.h"

#define SUBID_WANT 65536UL
#define HOLDER_WAIT_MS 5000
#define SLIRP_WAIT_MS 10000

struct farm_sandbox {
    pid_t holder, slirp;
    int slirp_exit; /* write end: closing it ends slirp4netns */
    char userns[48], netns[48], network[56], user_arg[64];
    char env_uid[48], env_gid[48];
    char *env[4];
};

/* ------------------------------------------------------------------ /etc/subuid */

static int s_parse_ul(const char *s, size_t n, unsigned long *out)
{
    unsigned long v = 0;
    if (n == 0 || n > 10)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    *out = v;
    return 0;
}

int farm_subid_find(farm_subid_range_t *out, const char *path, const char *user, unsigned long id,
                    unsigned long want)
{
    char line[512], idstr[24];
    FILE *f = fopen(path, "re");
    int found = 0;

    if (!f)
        return farm_error_set(FARM_EIO, "cannot read %s: %s", path, strerror(errno));
    snprintf(idstr, sizeof idstr, "%lu", id);
    while (fgets(line, sizeof line, f)) {
        char *name = line + strspn(line, " \t");
        char *c1 = strchr(name, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        farm_subid_range_t r;
        size_t owner_len, n3;

        if (name[0] == '#' || !c2)
            continue;
        owner_len = (size_t)(c1 - name);
        n3 = strcspn(c2 + 1, "\r\n");
        if (s_parse_ul(c1 + 1, (size_t)(c2 - c1 - 1), &r.start) < 0 ||
            s_parse_ul(c2 + 1, n3, &r.count) < 0 || r.count == 0)
            continue;
        if (!((user && strlen(user) == owner_len && memcmp(name, user, owner_len) == 0) ||
              (strlen(idstr) == owner_len && memcmp(name, idstr, owner_len) == 0)))
            continue;
        if (!found || (out->count < want && r.count > out->count))
            *out = r;
        found = 1;
        if (out->count >= want)
            break;
    }
    fclose(f);
    if (!found)
        return farm_error_set(FARM_ENOTFOUND, "%s has no range for user %s (uid %lu)", path, user ? user : "?",
                              id);
    return 0;
}

/* ------------------------------------------------------------------ processes */

/* fork + exec argv with stdin and stdout on /dev/null, and stderr too when quiet (else
 * it stays: the build log), keeping only the fds in keep[] (cleared of close-on-exec). */
static pid_t s_spawn(char *const argv[], const int *keep, size_t nkeep, int quiet)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0) {
        dup2(nul, 0);
        dup2(nul, 1);
        if (quiet)
            dup2(nul, 2);
        if (nul > 2)
            close(nul);
    }
    for (size_t i = 0; i < nkeep; i++)
        fcntl(keep[i], F_SETFD, 0);
    execvp(argv[0], argv);
    fprintf(stderr, "farm: sandbox: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static void s_reap(pid_t *pid, int sig)
{
    if (*pid <= 0)
        return;
    kill(*pid, sig);
    while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
        ;
    *pid = -1;
}

/* The holder has unshared once its user namespace is not ours. */
static int s_holder_wait(farm_sandbox_t *sb)
{
    char mine[64], path[48], theirs[64];
    ssize_t n = readlink("/proc/self/ns/user", mine, sizeof mine - 1);
    long long end = farm_now_ms() + HOLDER_WAIT_MS;

    if (n < 0)
        return farm_error_set(FARM_ERROR, "sandbox: cannot read /proc/self/ns/user: %s", strerror(errno));
    mine[n] = 0;
    snprintf(path, sizeof path, "/proc/%d/ns/user", (int)sb->holder);
    for (;;) {
        int st;
        n = readlink(path, theirs, sizeof theirs - 1);
        if (n > 0) {
            theirs[n] = 0;
            if (strcmp(theirs, mine) != 0)
                return 0;
        }
        if (waitpid(sb->holder, &st, WNOHANG) == sb->holder) {
            sb->holder = -1;
            return farm_error_set(FARM_ERROR, "sandbox: `unshare --user --net` exited (status %d): user "
                                  "namespaces may be disabled here (run farm-agent check)",
                                  WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        }
        if (farm_now_ms() > end)
            return farm_error_set(FARM_ERROR, "sandbox: the namespace holder did not start in %d ms",
                                  HOLDER_WAIT_MS);
        usleep(2000);
    }
}

/* newuidmap/newgidmap PID 0 OURID 1 START COUNT: RUN steps' root is the agent's user,
 * every other id one of its subordinate ids. */
static int s_map(const farm_sandbox_t *sb, const char *prog, const char *file, const char *name,
                 unsigned long id)
{
    farm_subid_range_t r;
    char pid[16], our[24], start[24], count[24];
    char *argv[] = {(char *)prog, pid, "0", our, "1", "1", start, count, NULL};
    int rc;

    if (farm_subid_find(&r, file, name, id, SUBID_WANT) < 0)
        return farm_error_wrap(FARM_ERROR, "sandbox (run farm-agent check for the fix)");
    snprintf(pid, sizeof pid, "%d", (int)sb->holder);
    snprintf(our, sizeof our, "%lu", id);
    snprintf(start, sizeof start, "%lu", r.start);
    snprintf(count, sizeof count, "%lu", r.count);
    if ((rc = farm_proc_run(argv, NULL)) != 0)
        return farm_error_set(FARM_ERROR, "sandbox: %s exited with status %d (is uidmap installed and is "
                              "the range in %s free for this user? run farm-agent check)",
                              prog, rc, file);
    return 0;
}

static int s_slirp(farm_sandbox_t *sb)
{
    int ready[2] = {-1, -1}, ex[2] = {-1, -1}, rc = 0;
    char ready_arg[32], exit_arg[32];
    /* run as root of the sandbox's user namespace (not as us on the host), so that
     * --enable-sandbox can give slirp4netns its own mount namespace without capabilities */
    char *argv[] = {"nsenter", sb->user_arg, "--", "slirp4netns", "--configure",
                    "--mtu=65520", "--disable-host-loopback", "--enable-sandbox",
                    "--enable-seccomp", ready_arg, exit_arg, "--netns-type=path", sb->netns,
                    "tap0", NULL};

    if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(ex, O_CLOEXEC) != 0) {
        rc = farm_error_set(FARM_ERROR, "sandbox: pipe: %s", strerror(errno));
        goto done;
    }
    snprintf(ready_arg, sizeof ready_arg, "--ready-fd=%d", ready[1]);
    snprintf(exit_arg, sizeof exit_arg, "--exit-fd=%d", ex[0]);
    {
        int keep[] = {ready[1], ex[0]};
        if ((sb->slirp = s_spawn(argv, keep, 2, 1)) < 0) {
            rc = farm_error_set(FARM_ERROR, "sandbox: fork: %s", strerror(errno));
            goto done;
        }
    }
    close(ready[1]);
    close(ex[0]);
    ready[1] = ex[0] = -1;
    sb->slirp_exit = ex[1];
    ex[1] = -1;
    {
        struct pollfd p = {.fd = ready[0], .events = POLLIN};
        char c = 0;
        int n = poll(&p, 1, SLIRP_WAIT_MS);
        if (n <= 0 || read(ready[0], &c, 1) != 1 || c != '1')
            rc = farm_error_set(FARM_ERROR, "sandbox: slirp4netns did not bring the network up (is it "
                                "installed, and can this user open /dev/net/tun? run "
                                "farm-agent check, or use --network none)");
    }
done:
    for (int i = 0; i < 2; i++) {
        if (ready[i] >= 0)
            close(ready[i]);
        if (ex[i] >= 0)
            close(ex[i]);
    }
    return rc;
}

farm_sandbox_t *farm_sandbox_start(const char *network, const int *keep, size_t n_keep)
{
    char *holder_argv[] = {"unshare", "--user", "--net", "--", "sleep", "infinity", NULL};
    struct passwd *pw = getpwuid(geteuid());
    const char *name = pw ? pw->pw_name : NULL;
    farm_sandbox_t *sb = calloc(1, sizeof *sb);

    if (!sb) {
        farm_error_set(FARM_ERROR, "out of memory");
        return NULL;
    }
    sb->holder = sb->slirp = -1;
    sb->slirp_exit = -1;
    if ((sb->holder = s_spawn(holder_argv, keep, n_keep, 0)) < 0) {
        farm_error_set(FARM_ERROR, "sandbox: fork: %s", strerror(errno));
        goto fail;
    }
    snprintf(sb->userns, sizeof sb->userns, "/proc/%d/ns/user", (int)sb->holder);
    snprintf(sb->netns, sizeof sb->netns, "/proc/%d/ns/net", (int)sb->holder);
    snprintf(sb->user_arg, sizeof sb->user_arg, "--user=%s", sb->userns);
    if (s_holder_wait(sb) < 0 ||
        s_map(sb, "newuidmap", "/etc/subuid", name, (unsigned long)geteuid()) < 0 ||
        s_map(sb, "newgidmap", "/etc/subgid", name, (unsigned long)getegid()) < 0)
        goto fail;
    if (strcmp(network, "none") == 0) {
        snprintf(sb->network, sizeof sb->network, "none");
    } else {
        if (s_slirp(sb) < 0)
            goto fail;
        snprintf(sb->network, sizeof sb->network, "ns:%s", sb->netns);
    }
    snprintf(sb->env_uid, sizeof sb->env_uid, "_CONTAINERS_ROOTLESS_UID=%lu",
             (unsigned long)geteuid());
    snprintf(sb->env_gid, sizeof sb->env_gid, "_CONTAINERS_ROOTLESS_GID=%lu",
             (unsigned long)getegid());
    sb->env[0] = "_CONTAINERS_USERNS_CONFIGURED=done";
    sb->env[1] = sb->env_uid;
    sb->env[2] = sb->env_gid;
    sb->env[3] = NULL;
    return sb;
fail:
    farm_sandbox_stop(&sb);
    return NULL;
}

int farm_sandbox_prefix(const farm_sandbox_t *sb, char **argv)
{
    static char nsenter[] = "nsenter", unshare[] = "unshare", mount[] = "--mount",
                dashes[] = "--";

    argv[0] = nsenter;
    argv[1] = (char *)sb->user_arg;
    argv[2] = dashes;
    argv[3] = unshare;
    argv[4] = mount;
    argv[5] = dashes;
    return 6;
}

int farm_sandbox_fd_path(const farm_sandbox_t *sb, int fd, char *buf, size_t cap)
{
    return farm_path_fmt(buf, cap, "/proc/%d/fd/%d", (int)sb->holder, fd);
}

const char *farm_sandbox_network(const farm_sandbox_t *sb)
{
    return sb->network;
}

char *const *farm_sandbox_env(const farm_sandbox_t *sb)
{
    return sb->env;
}

void farm_sandbox_stop(farm_sandbox_t **sb_p)
{
    farm_sandbox_t *sb = sb_p ? *sb_p : NULL;
    if (!sb)
        return;
    if (sb->slirp_exit >= 0)
        close(sb->slirp_exit);
    s_reap(&sb->slirp, SIGTERM);
    s_reap(&sb->holder, SIGKILL);
    free(sb);
    *sb_p = NULL;
}
