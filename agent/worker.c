/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/worker.h"
#include "agent/builder.h"
#include "agent/layers.h"
#include "agent/sandbox.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buildflags.h"
#include "common/child.h"
#include "common/context.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/oci.h"
#include "common/platform.h"
#include "common/proc.h"
#include "common/registry.h"
#include "common/reference.h"
#include "common/registry_auth.h"
#include "common/wire.h"

#define REQUEST_MAX FARM_WIRE_MAXMSG /* what a JobAssign may hold (build args, secrets) */
#define ENV_EXTRA_ROOM 4        /* environment entries s_env_add may append */
#define ARGV_FIXED 48          /* builder argv besides the build args */
#define STD_ARGS 8             /* TARGET* and BUILD* */
#define TERM_GRACE_MS 2000     /* SIGTERM to the tree, then SIGKILL (the agent waits 5 s) */
#define TAG_PREFIX "localhost/farm-job:"
#define REGISTRIES_MAX 64      /* registry settings in one request */
#define AUTHFILE_MAX (1u << 20)

extern char **environ;

/* ------------------------------------------------------------------ the process tree */

/* Everything below is async-signal-safe (raw syscalls): it runs in the SIGTERM handler. */

struct s_dirent64 {
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static int s_parse_int(const char *s, const char **end)
{
    int v = 0;
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (*s++ - '0');
    if (end)
        *end = s;
    return v;
}

/* ppid of pid from /proc/PID/stat ("pid (comm) S ppid ..."), or -1. */
static int s_ppid(const char *pid_name)
{
    char path[64] = "/proc/", buf[512];
    size_t l = 6, k;
    ssize_t n;
    int fd;

    for (k = 0; pid_name[k] && l < sizeof path - 6; k++)
        path[l++] = pid_name[k];
    memcpy(path + l, "/stat", 6);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    for (ssize_t i = n - 1; i > 0; i--) {
        if (buf[i] == ')' && buf[i + 1] == ' ' && buf[i + 2] && buf[i + 3] == ' ')
            return s_parse_int(buf + i + 4, NULL);
    }
    return -1;
}

/* Sends sig to every child of ours (a subreaper: orphans of the build are ours too).
 * Returns how many it found. */
static int s_signal_children(int sig)
{
    char buf[4096];
    int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC), found = 0;
    pid_t self = getpid();
    long n;

    if (fd < 0)
        return 0;
    while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < n;) {
            struct s_dirent64 *d = (struct s_dirent64 *)(buf + off);
            const char *end;
            int pid = s_parse_int(d->d_name, &end);
            off += d->d_reclen;
            if (pid <= 0 || *end || pid == self)
                continue;
            if (s_ppid(d->d_name) == self) {
                kill(pid, sig);
                found++;
            }
        }
    }
    close(fd);
    return found;
}

static void s_nap_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Ends every process the build started: SIGTERM to our group and children, a grace
 * period, then SIGKILL to each child until none is left (orphans reparent to us as their
 * parents die, so repeat until ECHILD). */
static void s_end_tree(int grace_ms)
{
    pid_t pgrp = getpgrp();
    int waited = 0;

    if (grace_ms > 0) {
        if (pgrp == getpid()) {
            signal(SIGTERM, SIG_IGN); /* the group's SIGTERM is for the builders */
            kill(-pgrp, SIGTERM);
        }
        s_signal_children(SIGTERM);
        while (waited < grace_ms) {
            while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
            if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD)
                return;
            s_nap_ms(20);
            waited += 20;
        }
    }
    for (int round = 0; round < 1000; round++) {
        int found = s_signal_children(SIGKILL);
        pid_t r;
        while ((r = waitpid(-1, NULL, WNOHANG)) > 0)
            ;
        if (r < 0 && errno == ECHILD && !found)
            return;
        s_nap_ms(10);
    }
}

static void s_on_term(int sig)
{
    static const char msg[] = "farm: worker ending: the job was cancelled or the agent stopped\n";
    (void)sig;
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
        /* nobody reads the log any more */
    }
    s_end_tree(TERM_GRACE_MS);
    _exit(143);
}

static void s_on_pipe(int sig)
{
    (void)sig; /* the agent stopped reading: writes fail with EPIPE instead */
}

/* ------------------------------------------------------------------ the job */

/* A base image the build used: the manifest the registry serves for its name whose
 * config is the image the builder used (s_resolve_bases). */
typedef struct {
    char name[FARM_REFERENCE_MAX + 1];
    char digest[FARM_DIGEST_STRLEN];
    int final_stage;
} base_t;

typedef struct {
    char *error; /* malloc'd; NULL on success */
    char media_type[128];
    char digest[FARM_DIGEST_STRLEN];
    uint64_t size;
    uint64_t build_ms, push_ms;
    farm_layers_stats_t layers;  /* steps and cache hits, as the builder reported them */
    uint64_t cache_bytes;        /* builder storage after the job (0: not measured) */
    /* for the platform's provenance (coordinator/attest.h) */
    uint64_t started_ms, finished_ms; /* unix ms */
    char dockerfile_digest[FARM_DIGEST_STRLEN];
    base_t bases[FARM_LAYERS_FROMS_MAX + 1];
    size_t n_bases;
    int emulated;
} outcome_t;

static int s_fail(outcome_t *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_fail(outcome_t *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&out->error, fmt, ap) < 0)
        out->error = NULL;
    va_end(ap);
    if (!out->error)
        out->error = strdup("out of memory");
    return FARM_ERROR;
}

int farm_worker_dockerfile_ok(const char *f)
{
    if (!f || !*f || f[0] == '/' || strlen(f) > FARM_DOCKERFILE_PATH_MAX)
        return 0;
    for (const char *p = f; *p;) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 2 && p[0] == '.' && p[1] == '.')
            return 0;
        p += l + (e ? 1 : 0);
    }
    return 1;
}

/* How the builder reaches registries for base images: the submitter's logins (and the
 * farm's own where farm.yaml grants them) in an auth file that lives only in a sealed
 * memfd of ours, which buildah opens as /proc/OURPID/fd/N (no fd of ours is inherited by
 * buildah, so none reaches a RUN step; a RUN step in its own PID namespace cannot name
 * us); farm.yaml's private CAs in a cert dir and insecure hosts in a registries.conf (not
 * secret: files in the job dir); and a private HOME so buildah reads no docker or
 * containers auth file of the agent's. */
typedef struct {
    int authfd;
    char authfile[64];
    /* build secrets the same way: one sealed memfd each, opened by buildah by path */
    int secret_fds[FARM_SECRETS_MAX];
    char secret_paths[FARM_SECRETS_MAX][64];
    size_t n_secrets;
    char certs[FARM_PATH_MAX];
    char regconf[FARM_PATH_MAX];
    char **envp;
} access_t;

/* The builder as this job uses it: in its storage (agent/builder.h), with the
 * registry access and the checked flags. */
typedef struct {
    farm_builder_t bl;
    const access_t *acc;
    const farm_buildflags_t *flags; /* checked again here: the agent is not trusted */
} builder_t;

/* Registry hosts go into JSON and TOML strings and paths: hold them to host[:port]. */
static int s_host_ok(const char *h)
{
    size_t n = h ? strlen(h) : 0;
    return n > 0 && n <= FARM_REGISTRY_HOST_MAX &&
           strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") == n;
}

static const Farm__RegistryCredential *s_cred(const Farm__WorkerRequest *rq, const char *host)
{
    for (size_t i = 0; i < rq->n_credentials; i++)
        if (strcmp(rq->credentials[i]->registry, host) == 0 && rq->credentials[i]->secret[0])
            return rq->credentials[i];
    return NULL;
}

static const Farm__RegistrySettings *s_settings(const Farm__WorkerRequest *rq, const char *host)
{
    for (size_t i = 0; i < rq->n_registries; i++)
        if (strcmp(rq->registries[i]->registry, host) == 0)
            return rq->registries[i];
    return NULL;
}

/* Appends to a bounded buffer; -1 when it would not fit. */
static int s_cat(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
    if (n >= cap - *len)
        return -1;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
    return 0;
}

/* One "HOST": {"auth": base64(user:secret)} entry (identity tokens as docker writes them). */
static int s_auth_entry(char *buf, size_t cap, size_t *len, const char *host, const char *user,
                        const char *secret, int identity)
{
    size_t ul = strlen(user), sl = identity ? 0 : strlen(secret), plen = ul + 1 + sl;
    char *plain = malloc(plen + 1), *b64 = malloc(4 * ((plen + 2) / 3) + 1);
    int rc = -1;

    if (!plain || !b64)
        goto done;
    memcpy(plain, user, ul);
    plain[ul] = ':';
    memcpy(plain + ul + 1, secret, sl);
    EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)plain, (int)plen);
    if (identity && strpbrk(secret, "\"\\\r\n"))
        goto done; /* not JSON-safe: skipped (the pull goes anonymous) */
    if (s_cat(buf, cap, len, *len > 11 ? ",\"" : "\"", *len > 11 ? 2 : 1) < 0 ||
        s_cat(buf, cap, len, host, strlen(host)) < 0 ||
        s_cat(buf, cap, len, "\":{\"auth\":\"", 11) < 0 || s_cat(buf, cap, len, b64, strlen(b64)) < 0 ||
        (identity && (s_cat(buf, cap, len, "\",\"identitytoken\":\"", 19) < 0 ||
                      s_cat(buf, cap, len, secret, strlen(secret)) < 0)) ||
        s_cat(buf, cap, len, "\"}", 2) < 0)
        goto done;
    rc = 0;
done:
    if (plain)
        explicit_bzero(plain, plen);
    if (b64)
        explicit_bzero(b64, strlen(b64));
    free(plain);
    free(b64);
    return rc;
}

/* A sealed memfd holding data (nobody can change it), close-on-exec; -1 on failure. */
static int s_sealed_memfd(outcome_t *out, const char *name, const void *data, size_t len)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (fd < 0)
        return s_fail(out, "memfd_create: %s", strerror(errno));
    if ((len && write(fd, data, len) != (ssize_t)len) ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        close(fd);
        return s_fail(out, "writing %s: %s", name, strerror(errno));
    }
    return fd;
}

/* The auth file, in a sealed memfd that only we hold. */
static int s_authfile(outcome_t *out, access_t *acc, const Farm__WorkerRequest *rq)
{
    char *buf = malloc(AUTHFILE_MAX);
    size_t len = 0;
    int fd, rc = FARM_ERROR;

    if (!buf)
        return s_fail(out, "out of memory");
    strcpy(buf, "{\"auths\":{");
    len = strlen(buf);
    for (size_t i = 0; i < rq->n_credentials; i++) {
        const Farm__RegistryCredential *c = rq->credentials[i];
        if (!c->secret[0])
            continue;
        if (s_auth_entry(buf, AUTHFILE_MAX - 4, &len, c->registry, c->username, c->secret,
                         c->identity_token) < 0)
            printf("farm: the login for %s does not fit the builder's auth file; pulls from it "
                   "go anonymous\n", c->registry);
    }
    /* the farm's own login only where farm.yaml grants it to this build's client */
    for (size_t i = 0; i < rq->n_registries; i++) {
        const Farm__RegistrySettings *r = rq->registries[i];
        farm_registry_creds_t own = {0};
        if (!r->farm_credentials || s_cred(rq, r->registry))
            continue;
        if (farm_registry_credentials_lookup(&own, NULL, r->registry) == 0 &&
            s_auth_entry(buf, AUTHFILE_MAX - 4, &len, r->registry, own.username, own.secret,
                         own.identity_token) < 0)
            printf("farm: the farm's login for %s does not fit the builder's auth file\n",
                   r->registry);
        farm_registry_creds_clear(&own);
    }
    s_cat(buf, AUTHFILE_MAX, &len, "}}\n", 3);
    if ((fd = s_sealed_memfd(out, "farm-authfile", buf, len)) < 0) {
        rc = fd;
        goto done;
    }
    snprintf(acc->authfile, sizeof acc->authfile, "/proc/%d/fd/%d", (int)getpid(), fd);
    acc->authfd = fd;
    rc = 0;
done:
    explicit_bzero(buf, AUTHFILE_MAX);
    free(buf);
    return rc;
}

static int s_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    int ok;
    if (fd < 0)
        return -1;
    ok = write(fd, data, len) == (ssize_t)len;
    return close(fd) == 0 && ok ? 0 : -1;
}

/* "K=V" environment for the builder: ours without the variables that point at auth files
 * or registry settings, plus our own. */
static int s_env(outcome_t *out, access_t *acc, const char *job_dir)
{
    static const char *const drop[] = {"HOME=", "XDG_CONFIG_HOME=", "XDG_RUNTIME_DIR=",
                                       "_CONTAINERS_", /* the sandbox sets its own */
                                       "DOCKER_CONFIG=", "REGISTRY_AUTH_FILE=",
                                       "CONTAINERS_REGISTRIES_CONF=", NULL};
    char home[FARM_PATH_MAX], dir[FARM_PATH_MAX];
    size_t n = 0, k = 0;

    while (environ[n])
        n++;
    if (!(acc->envp = calloc(n + 6 + ENV_EXTRA_ROOM, sizeof *acc->envp)))
        return s_fail(out, "out of memory");
    for (size_t i = 0; i < n; i++) {
        int skip = 0;
        for (size_t d = 0; drop[d] && !skip; d++)
            skip = strncmp(environ[i], drop[d], strlen(drop[d])) == 0;
        if (!skip && !(acc->envp[k++] = strdup(environ[i])))
            return s_fail(out, "out of memory");
    }
    if (farm_path_join(home, sizeof home, job_dir, "home") < 0 || mkdir(home, 0700) != 0 ||
        farm_path_join(dir, sizeof dir, home, ".docker") < 0 || mkdir(dir, 0700) != 0)
        return s_fail(out, "job directory: cannot make the builder's home: %s",
                      farm_error_last());
    if (asprintf(&acc->envp[k++], "HOME=%s", home) < 0 ||
        asprintf(&acc->envp[k++], "XDG_CONFIG_HOME=%s/.config", home) < 0 ||
        asprintf(&acc->envp[k++], "DOCKER_CONFIG=%s", dir) < 0 ||
        asprintf(&acc->envp[k++], "REGISTRY_AUTH_FILE=%s", acc->authfile) < 0 ||
        (acc->regconf[0] &&
         asprintf(&acc->envp[k++], "CONTAINERS_REGISTRIES_CONF=%s", acc->regconf) < 0))
        return s_fail(out, "out of memory");
    return 0;
}

/* Appends NULL-terminated entries to acc->envp (s_env left room for a few). */
static int s_env_add(outcome_t *out, access_t *acc, char *const *add)
{
    size_t k = 0, room = ENV_EXTRA_ROOM;

    while (acc->envp[k])
        k++;
    for (; *add; add++, k++) {
        if (room-- == 0 || !(acc->envp[k] = strdup(*add)))
            return s_fail(out, "out of memory");
    }
    return 0;
}

/* Everything the builder needs to reach registries as this build's submitter, and with
 * isolation oci the sandbox it runs in (*sb): its namespace holder keeps the auth file's
 * memfd, which the builder, inside the holder's user namespace, opens through the holder
 * (a process outside that namespace, such as this worker, is not readable from in it). */
static int s_access(outcome_t *out, access_t *acc, const Farm__WorkerRequest *rq,
                    const farm_buildflags_t *flags, farm_sandbox_t **sb)
{
    char *conf = NULL;
    size_t conf_len = 0;
    FILE *f = NULL;
    int rc, keep[1 + FARM_SECRETS_MAX];

    acc->authfd = -1;
    if ((rc = s_authfile(out, acc, rq)) < 0)
        return rc;
    keep[0] = acc->authfd;
    /* each secret: a sealed memfd, named for buildah by /proc path (never argv or disk) */
    for (size_t i = 0; i < flags->n_secrets && i < FARM_SECRETS_MAX; i++) {
        int fd = s_sealed_memfd(out, "farm-secret", flags->secrets[i].value,
                                flags->secrets[i].len);
        if (fd < 0)
            return fd;
        acc->secret_fds[acc->n_secrets++] = keep[1 + i] = fd;
        snprintf(acc->secret_paths[i], sizeof acc->secret_paths[i], "/proc/%d/fd/%d",
                 (int)getpid(), fd);
    }
    if (strcmp(rq->builder->isolation, "chroot") != 0) {
        /* the node's network, unless the node or this build says none */
        const char *net = rq->network_none ? "none"
                          : rq->builder->network[0] ? rq->builder->network : "slirp4netns";
        if (!(*sb = farm_sandbox_start(net, keep, 1 + acc->n_secrets)) ||
            farm_sandbox_fd_path(*sb, acc->authfd, acc->authfile, sizeof acc->authfile) < 0)
            return s_fail(out, "%s", farm_error_last());
        for (size_t i = 0; i < acc->n_secrets; i++)
            if (farm_sandbox_fd_path(*sb, acc->secret_fds[i], acc->secret_paths[i],
                                     sizeof acc->secret_paths[i]) < 0)
                return s_fail(out, "%s", farm_error_last());
    }
    for (size_t i = 0; i < rq->n_registries; i++) {
        const Farm__RegistrySettings *r = rq->registries[i];
        char path[FARM_PATH_MAX], name[32];
        if (r->ca_pem.len) {
            if (!acc->certs[0] &&
                (farm_path_join(acc->certs, sizeof acc->certs, rq->job_dir, "certs") < 0 ||
                 mkdir(acc->certs, 0700) != 0))
                return s_fail(out, "job directory: cannot make the cert dir");
            /* buildah's --cert-dir adds every *.crt in it to the system's roots */
            snprintf(name, sizeof name, "ca-%zu.crt", i);
            if (farm_path_join(path, sizeof path, acc->certs, name) < 0 ||
                s_write_file(path, r->ca_pem.data, r->ca_pem.len) < 0)
                return s_fail(out, "job directory: cannot write %s", name);
        }
        if (r->insecure) {
            if (!f && !(f = open_memstream(&conf, &conf_len)))
                return s_fail(out, "out of memory");
            fprintf(f, "[[registry]]\nlocation = \"%s\"\ninsecure = true\n\n", r->registry);
        }
    }
    if (f) {
        if (fclose(f) != 0) {
            free(conf);
            return s_fail(out, "out of memory");
        }
        if (farm_path_join(acc->regconf, sizeof acc->regconf, rq->job_dir, "registries.conf") < 0 ||
            s_write_file(acc->regconf, conf, conf_len) < 0) {
            free(conf);
            return s_fail(out, "job directory: cannot write registries.conf");
        }
        free(conf);
    }
    return s_env(out, acc, rq->job_dir);
}

static void s_access_clear(access_t *acc)
{
    if (acc->authfd >= 0)
        close(acc->authfd);
    acc->authfd = -1;
    for (size_t i = 0; i < acc->n_secrets; i++)
        close(acc->secret_fds[i]);
    acc->n_secrets = 0;
    for (size_t i = 0; acc->envp && acc->envp[i]; i++)
        free(acc->envp[i]);
    free(acc->envp);
    acc->envp = NULL;
}

static void s_progress(void *arg, const char *digest, uint64_t size, int skipped)
{
    (void)arg;
    printf("farm: %s %s (%llu bytes)\n",
           skipped == 2 ? "mounted" : skipped ? "exists " : "pushed ", digest,
           (unsigned long long)size);
}

/* "K=V" for every build arg: TARGET* and BUILD* exactly as buildx sets them, then the
 * user's (the coordinator refuses user args that name those). *out has nkv entries. */
static int s_build_args(outcome_t *out, char ***out_kv, const Farm__WorkerRequest *rq,
                        const farm_platform_t *plat)
{
    char t_plat[FARM_PLATFORM_STRLEN], t_os[32], t_arch[32], t_var[16];
    char b_plat[FARM_PLATFORM_STRLEN], b_os[32], b_arch[32], b_var[16];
    size_t nkv = rq->n_build_args + STD_ARGS;
    char **kv = calloc(nkv, sizeof *kv);
    farm_platform_t host;

    *out_kv = kv;
    if (!kv)
        return s_fail(out, "out of memory");
    if (farm_platform_host(&host) < 0)
        return s_fail(out, "%s", farm_error_last());
    farm_platform_target_args(plat, t_plat, sizeof t_plat, t_os, sizeof t_os, t_arch,
                              sizeof t_arch, t_var, sizeof t_var);
    farm_platform_target_args(&host, b_plat, sizeof b_plat, b_os, sizeof b_os, b_arch,
                              sizeof b_arch, b_var, sizeof b_var);
    {
        const char *std[STD_ARGS][2] = {
            {"TARGETPLATFORM", t_plat}, {"TARGETOS", t_os}, {"TARGETARCH", t_arch},
            {"TARGETVARIANT", t_var},   {"BUILDPLATFORM", b_plat}, {"BUILDOS", b_os},
            {"BUILDARCH", b_arch},      {"BUILDVARIANT", b_var}};
        for (size_t i = 0; i < STD_ARGS; i++)
            if (asprintf(&kv[i], "%s=%s", std[i][0], std[i][1]) < 0) {
                kv[i] = NULL;
                return s_fail(out, "out of memory");
            }
    }
    for (size_t i = 0; i < rq->n_build_args; i++)
        if (asprintf(&kv[STD_ARGS + i], "%s=%s", rq->build_args[i]->key,
                     rq->build_args[i]->value) < 0) {
            kv[STD_ARGS + i] = NULL;
            return s_fail(out, "out of memory");
        }
    return 0;
}

/* Builder output: into the job's log, and counted (steps, cache hits). */
static void s_on_builder_line(void *arg, const char *line)
{
    printf("%s\n", line);
    farm_layers_scan(arg, line);
}

/* The index of the last argument (the context) in a NULL-terminated argv. */
static int s_last_arg(char **argv)
{
    int i = 0;
    while (argv[i])
        i++;
    return i - 1;
}

/* --cache-from/--cache-to of this build, per platform (REPO/SLUG); "" when not asked. */
static int s_cache_refs(outcome_t *out, const builder_t *b, char *from, size_t from_cap,
                        char *to, size_t to_cap)
{
    const farm_buildflags_t *f = b->flags; /* checked (farm_buildflags_from_wire) */

    from[0] = to[0] = 0;
    if (f->cache_from && farm_layers_cache_ref(from, from_cap, f->cache_from, b->bl.slug) < 0)
        return s_fail(out, "--cache-from: %s", farm_error_last());
    if (f->cache_to && farm_layers_cache_ref(to, to_cap, f->cache_to, b->bl.slug) < 0)
        return s_fail(out, "--cache-to: %s", farm_error_last());
    return 0;
}

static int s_argf(char **v, size_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int s_argf(char **v, size_t *n, const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = vasprintf(&v[*n], fmt, ap);
    va_end(ap);
    if (rc < 0) {
        v[*n] = NULL;
        return -1;
    }
    (*n)++;
    return 0;
}

/* The build's flags as buildah spells them, each one argv entry "--opt=value" (so no
 * value is ever read as an option); *out_v holds *out_n malloc'd strings. A secret is
 * named by its memfd's /proc path, type=file (without a type buildah would take an
 * environment variable named like the id). */
static int s_flag_args(outcome_t *out, char ***out_v, size_t *out_n, const farm_buildflags_t *f,
                       const access_t *acc)
{
    size_t n = 0;
    char **v = calloc(4 + f->n_labels + f->n_annotations + f->n_secrets, sizeof *v);
    int bad = !v;

    *out_v = v;
    *out_n = 0;
    if (!bad && f->target)
        bad |= s_argf(v, &n, "--target=%s", f->target);
    if (!bad && f->no_cache)
        bad |= s_argf(v, &n, "--no-cache");
    if (!bad && f->pull)
        bad |= s_argf(v, &n, "--pull=always");
    for (size_t i = 0; !bad && i < f->n_labels; i++)
        bad |= s_argf(v, &n, "--label=%s=%s", f->labels[i].key, f->labels[i].value);
    for (size_t i = 0; !bad && i < f->n_annotations; i++)
        bad |= s_argf(v, &n, "--annotation=%s=%s", f->annotations[i].key,
                      f->annotations[i].value);
    for (size_t i = 0; !bad && i < f->n_secrets && i < acc->n_secrets; i++)
        bad |= s_argf(v, &n, "--secret=id=%s,src=%s,type=file", f->secrets[i].id,
                      acc->secret_paths[i]);
    *out_n = n;
    if (bad)
        return s_fail(out, "out of memory");
    if (f->n_secrets)
        printf("farm: %zu build secret(s) mounted for RUN --mount=type=secret\n", f->n_secrets);
    return 0;
}

static void s_on_first_line(void *arg, const char *line)
{
    char *d = arg;
    if (!d[0] && strlen(line) < 72)
        snprintf(d, 72, "%s", line);
}

/* A registry client for host as this build's submitter (defined below, by the push). */
static farm_registry_t *s_registry_open(const Farm__WorkerRequest *rq, const char *host,
                                        int insecure);

/* The manifest digest that ref names in reg (for an index: its child for plat), if that
 * manifest's config is image_id (sha256:...): the image the builder used. */
static int s_base_digest(char out[FARM_DIGEST_STRLEN], farm_registry_t *reg,
                         const farm_reference_t *ref, const farm_platform_t *plat,
                         const char *image_id)
{
    char media[128], d[FARM_DIGEST_STRLEN] = "", child[FARM_DIGEST_STRLEN];
    const char *at = ref->digest[0] ? ref->digest : ref->tag;
    json_t *root = NULL, *mans, *m;
    char *body = NULL;
    size_t len = 0, i;
    int rc = -1;

    out[0] = '\0';
    for (int hop = 0; hop < 2; hop++) {
        if (farm_registry_manifest_get(reg, &body, &len, media, sizeof media, ref->repository,
                                       at) < 0)
            goto done;
        farm_digest_buffer(d, body, len);
        if ((!strncmp(at, "sha256:", 7) && strcmp(at, d) != 0) ||
            !(root = json_loadb(body, len, 0, NULL)))
            goto done;
        free(body);
        body = NULL;
        if (!json_is_array(mans = json_object_get(root, "manifests")))
            break;
        at = NULL; /* an index: the child for our platform */
        json_array_foreach(mans, i, m) {
            json_t *p = json_object_get(m, "platform");
            const char *os = json_string_value(json_object_get(p, "os"));
            const char *arch = json_string_value(json_object_get(p, "architecture"));
            const char *var = json_string_value(json_object_get(p, "variant"));
            const char *md = json_string_value(json_object_get(m, "digest"));
            farm_platform_t got;
            if (os && arch && md && farm_digest_valid(md) &&
                farm_platform_from_config(&got, os, arch, var) == 0 &&
                farm_platform_equal(&got, plat)) {
                snprintf(child, sizeof child, "%s", md);
                at = child;
                break;
            }
        }
        if (!at || hop == 1)
            goto done;
        json_decref(root);
        root = NULL;
    }
    if (root && !strcmp(json_string_value(json_object_get(json_object_get(root, "config"),
                                                           "digest")) ?: "", image_id)) {
        memcpy(out, d, FARM_DIGEST_STRLEN);
        rc = 0;
    }
done:
    free(body);
    json_decref(root);
    return rc;
}

/* Each stage's FROM, as the builder printed it, to the manifest digest of the image it
 * used. The builder's storage knows the image by its config digest only (a node that
 * built the base itself holds it under its own manifest), so the registry is asked what
 * the name is, and the answer counts only if its config is the one the build used.
 * FROM scratch and FROM an earlier stage name no image; a base that cannot be tied is
 * left out, said in the log: provenance names only what it can show. None without
 * provenance; the final stage's only in min mode (the statement has no others). */
static void s_resolve_bases(outcome_t *out, const builder_t *b, const Farm__WorkerRequest *rq,
                            const farm_platform_t *plat)
{
    const farm_layers_stats_t *st = &out->layers;

    for (size_t i = 0; i < st->n_froms && b->flags->provenance != FARM_PROVENANCE_OFF; i++) {
        const char *name = st->froms[i].name;
        char id[72] = "", image_id[FARM_DIGEST_STRLEN + 8], digest[FARM_DIGEST_STRLEN];
        const char *words[] = {"inspect", "--type", "image", "--format", "{{.FromImageID}}",
                               name, NULL};
        int stage = !strcasecmp(name, "scratch");
        farm_reference_t ref;
        farm_registry_t *reg = NULL;
        base_t *bs;

        const Farm__RegistrySettings *set;

        int final = st->froms[i].stage == st->stages;

        for (size_t j = 0; j < i && !stage; j++)
            stage = st->froms[j].alias[0] && !strcasecmp(st->froms[j].alias, name);
        if (stage || (b->flags->provenance != FARM_PROVENANCE_MAX && !final))
            continue;
        if (st->froms[i].doubted) {
            printf("farm: provenance: the base of stage %u left out: the build printed more "
                   "than one FROM line for it (a RUN step's output?)\n", st->froms[i].stage);
            continue;
        }
        /* a name is parsed before it goes to buildah's argv (never an option) */
        if (farm_reference_parse(&ref, name) < 0 || name[0] == '-' ||
            farm_builder_run(&b->bl, s_on_first_line, id, words) != 0 || !id[0] ||
            (snprintf(image_id, sizeof image_id, "%s%s",
                      strncmp(id, "sha256:", 7) ? "sha256:" : "", id),
             !farm_digest_valid(image_id)) ||
            !(reg = s_registry_open(rq, ref.registry,
                               (set = s_settings(rq, ref.registry)) && set->insecure)) ||
            s_base_digest(digest, reg, &ref, plat, image_id) < 0) {
            printf("farm: provenance: base image %s left out: %s\n", name,
                   !id[0] ? "not in the builder's storage"
                          : "the registry does not serve the image the build used under "
                            "that name now");
            farm_registry_destroy(&reg);
            continue;
        }
        farm_registry_destroy(&reg);
        bs = &out->bases[out->n_bases++];
        farm_reference_format(bs->name, sizeof bs->name, &ref);
        memcpy(bs->digest, digest, sizeof bs->digest);
        bs->final_stage = final;
    }
}

static uint64_t s_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Builds into job_dir/oci with the builder (--layers: the steps stay cached). */
static int s_build(outcome_t *out, const Farm__WorkerRequest *rq, const builder_t *b,
                   const char *ctx, const char *layout, const farm_platform_t *plat)
{
    char dockerfile[FARM_PATH_MAX], tag[sizeof TAG_PREFIX + FARM_ID_MAX], dest[FARM_PATH_MAX + 8];
    char plat_s[FARM_PLATFORM_STRLEN];
    size_t nkv = rq->n_build_args + STD_ARGS, nfl = 0;
    char cache_from[FARM_REFERENCE_MAX + FARM_PLATFORM_STRLEN + 2];
    char cache_to[sizeof cache_from];
    char **kv = NULL, **argv = NULL, **fl = NULL;
    int n, rc = FARM_ERROR;

    farm_platform_format(plat_s, sizeof plat_s, plat);
    if (farm_path_join(dockerfile, sizeof dockerfile, ctx, rq->dockerfile) < 0)
        return s_fail(out, "Dockerfile path: %s", farm_error_last());
    if (farm_path_fmt(tag, sizeof tag, TAG_PREFIX "%s", rq->job_id) < 0 ||
        farm_path_fmt(dest, sizeof dest, "oci:%s", layout) < 0)
        return s_fail(out, "%s", farm_error_last());
    for (char *p = tag + strlen(TAG_PREFIX); *p; p++)
        if (*p != '-' && *p != '_' && *p != '.' && !(*p >= 'a' && *p <= 'z') &&
            !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9'))
            *p = '_';
    if ((rc = s_build_args(out, &kv, rq, plat)) < 0 ||
        (rc = s_flag_args(out, &fl, &nfl, b->flags, b->acc)) < 0)
        goto done;
    if (!(argv = calloc(ARGV_FIXED + FARM_BUILDER_PREFIX_MAX + 2 * nkv + nfl + 1,
                        sizeof *argv))) {
        rc = s_fail(out, "out of memory");
        goto done;
    }
    n = farm_builder_prefix(argv, &b->bl);
    argv[n++] = "build";
    argv[n++] = "--isolation";
    argv[n++] = b->bl.sb ? "oci" : "chroot";
    if (b->bl.sb) {
        argv[n++] = "--runtime";
        argv[n++] = b->bl.opts->runtime[0] ? b->bl.opts->runtime : "runc";
        argv[n++] = "--network";
        argv[n++] = (char *)farm_sandbox_network(b->bl.sb);
    }
    argv[n++] = "--platform";
    argv[n++] = plat_s;
    argv[n++] = "--authfile";
    argv[n++] = (char *)b->acc->authfile;
    if (b->acc->certs[0]) {
        argv[n++] = "--cert-dir";
        argv[n++] = (char *)b->acc->certs;
    }
    argv[n++] = "-f";
    argv[n++] = dockerfile;
    argv[n++] = "-t";
    argv[n++] = tag;
    /* every step's image stays in this platform's storage: the node's layer cache */
    argv[n++] = "--layers";
    for (size_t i = 0; i < nkv; i++) {
        argv[n++] = "--build-arg";
        argv[n++] = kv[i];
    }
    for (size_t i = 0; i < nfl; i++)
        argv[n++] = fl[i];
    if ((rc = s_cache_refs(out, b, cache_from, sizeof cache_from, cache_to,
                           sizeof cache_to)) < 0)
        goto done;
    if (cache_from[0]) {
        argv[n++] = "--cache-from";
        argv[n++] = cache_from;
    }
    argv[n++] = (char *)ctx;
    argv[n] = NULL;
    if (cache_to[0]) { /* last before the context: a retry drops it */
        argv[n - 1] = "--cache-to";
        argv[n++] = cache_to;
        argv[n++] = (char *)ctx;
        argv[n] = NULL;
    }
    printf("farm: building %s with %s%s\n", plat_s, b->bl.opts->builder,
           b->bl.sb ? " in the sandbox" : ", RUN steps NOT sandboxed (this node uses "
                                       "--isolation chroot)");
    fflush(stdout);
    n = farm_proc_run_lines(argv, ctx, b->acc->envp, s_on_builder_line, &out->layers);
    if (n != 0 && cache_to[0] && out->layers.cache_push_failed) {
        /* a cache push never fails the build: the layers are local now, so again
         * without --cache-to is quick */
        printf("farm: pushing the build cache to %s failed; building again without "
               "--cache-to\n", cache_to);
        fflush(stdout);
        int last = s_last_arg(argv);
        argv[last - 2] = (char *)ctx;
        argv[last - 1] = NULL;
        memset(&out->layers, 0, sizeof out->layers);
        n = farm_proc_run_lines(argv, ctx, b->acc->envp, s_on_builder_line, &out->layers);
    }
    if (n != 0) {
        rc = s_fail(out, "%s build for %s exited with status %d", b->bl.opts->builder, plat_s, n);
        goto done;
    }
    printf("farm: %u of %u build steps from the cache\n", out->layers.cache_hits,
           out->layers.steps);
    n = farm_builder_prefix(argv, &b->bl);
    argv[n++] = "push";
    argv[n++] = "--quiet";
    argv[n++] = tag;
    argv[n++] = dest;
    argv[n] = NULL;
    /* the image stays in builder storage under its job tag (the last step's cache);
     * --builder-cache-max evicts the least recently built */
    rc = farm_proc_run_env(argv, NULL, b->acc->envp);
    if (rc != 0) {
        rc = s_fail(out, "%s push to an OCI layout exited with status %d", b->bl.opts->builder, rc);
        goto done;
    }
    s_resolve_bases(out, b, rq, plat);
    rc = 0;
done:
    for (size_t i = 0; kv && i < nkv; i++)
        free(kv[i]);
    free(kv);
    for (size_t i = 0; i < nfl; i++)
        free(fl[i]);
    free(fl);
    free(argv);
    return rc;
}

/* A client for host with the submitter's login; the agent's own only where farm.yaml
 * grants it to this build's client; else anonymous (the registry's 401 says what is
 * missing). */
static farm_registry_t *s_registry_open(const Farm__WorkerRequest *rq, const char *host,
                                        int insecure)
{
    const Farm__RegistryCredential *c = s_cred(rq, host);
    const Farm__RegistrySettings *set = s_settings(rq, host);
    farm_registry_creds_t creds = {0};
    farm_registry_opts_t ropts = {.insecure = insecure};

    if (c) {
        creds.username = c->username;
        creds.secret = c->secret;
        creds.identity_token = c->identity_token;
    }
    ropts.explicit_creds = c || !(set && set->farm_credentials);
    ropts.creds = c ? &creds : NULL; /* copied by farm_registry_new */
    if (set && set->ca_pem.len) {
        ropts.ca_pem = (const char *)set->ca_pem.data;
        ropts.ca_pem_len = set->ca_pem.len;
    }
    return farm_registry_new(host, &ropts);
}

static int s_push(outcome_t *out, const Farm__WorkerRequest *rq, const char *layout,
                  const farm_platform_t *plat)
{
    char plat_s[FARM_PLATFORM_STRLEN], got_s[FARM_PLATFORM_STRLEN];
    farm_oci_image_t *img = NULL;
    farm_registry_t *reg = NULL;
    long long t0 = farm_now_ms();
    int rc;

    if (farm_oci_layout_read(&img, layout) < 0)
        return s_fail(out, "builder output: %s", farm_error_last());
    farm_platform_format(plat_s, sizeof plat_s, plat);
    farm_platform_format(got_s, sizeof got_s, &img->manifest.platform);
    if (!farm_platform_equal(&img->manifest.platform, plat)) {
        rc = s_fail(out, "the built image's config says %s but the job is for %s; refusing to "
                         "push it", got_s, plat_s);
        goto done;
    }
    printf("farm: image %s for %s; pushing to %s/%s\n", img->manifest.digest, got_s,
           rq->registry, rq->repository);
    fflush(stdout);
    reg = s_registry_open(rq, rq->registry, rq->insecure);
    if (!reg) {
        rc = s_fail(out, "registry %s: %s", rq->registry, farm_error_last());
        goto done;
    }
    if (farm_oci_push_image(reg, rq->repository, layout, img, s_progress, NULL) < 0) {
        rc = s_fail(out, "push to %s/%s: %s", rq->registry, rq->repository, farm_error_last());
        goto done;
    }
    /* the same bytes to each of the build's other repositories: one digest to report */
    for (size_t k = 0; k < rq->n_targets; k++) {
        const Farm__MultirepoTarget *t = rq->targets[k];
        int same = strcmp(t->registry, rq->registry) == 0;
        farm_registry_t *other = same ? NULL : s_registry_open(rq, t->registry, t->insecure);

        printf("farm: image %s for %s; %s to %s/%s\n", img->manifest.digest, got_s,
               same ? "mounting" : "pushing", t->registry, t->repository);
        fflush(stdout);
        if (!same && !other) {
            rc = s_fail(out, "registry %s: %s", t->registry, farm_error_last());
            goto done;
        }
        /* on the same registry the blobs are mounted from the first repository */
        rc = farm_oci_push_image_from(same ? reg : other, t->repository,
                                      same ? rq->repository : NULL, layout, img, s_progress,
                                      NULL);
        farm_registry_destroy(&other);
        if (rc < 0) {
            rc = s_fail(out, "push to %s/%s: %s", t->registry, t->repository,
                        farm_error_last());
            goto done;
        }
    }
    memcpy(out->media_type, img->manifest.media_type, sizeof out->media_type);
    memcpy(out->digest, img->manifest.digest, sizeof out->digest);
    out->size = img->manifest.size;
    out->push_ms = (uint64_t)(farm_now_ms() - t0);
    out->finished_ms = s_unix_ms();
    rc = 0;
done:
    farm_registry_destroy(&reg);
    farm_oci_image_destroy(&img);
    return rc;
}

/* sha256 of the Dockerfile as the context holds it: a regular file only (a symlink in
 * the context is not followed out of it). Left "" when it is not one. */
static void s_dockerfile_digest(outcome_t *out, const char *ctx, const char *dockerfile)
{
    char path[FARM_PATH_MAX];
    struct stat st;
    uint64_t size;
    int fd;

    if (farm_path_join(path, sizeof path, ctx, dockerfile) < 0 || lstat(path, &st) != 0 ||
        !S_ISREG(st.st_mode) || (fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return;
    if (farm_digest_fd(out->dockerfile_digest, &size, fd, dockerfile) < 0)
        out->dockerfile_digest[0] = '\0';
    close(fd);
}

static int s_run(outcome_t *out, const Farm__WorkerRequest *rq)
{
    char ctx[FARM_PATH_MAX], layout[FARM_PATH_MAX];
    builder_t b = {0};
    access_t acc = {.authfd = -1};
    farm_buildflags_t flags = {0};
    farm_platform_t plat, host;
    long long t0 = farm_now_ms();
    int rc;

    out->started_ms = s_unix_ms();
    if (!rq->builder || !rq->builder->builder[0])
        return s_fail(out, "the worker request names no builder");
    if (!rq->job_id[0] || strlen(rq->job_id) > FARM_ID_MAX)
        return s_fail(out, "job id missing or longer than %d characters", FARM_ID_MAX);
    if (rq->n_build_args > FARM_BUILD_ARGS_MAX)
        return s_fail(out, "%zu build args; at most %d", rq->n_build_args, FARM_BUILD_ARGS_MAX);
    if (farm_platform_parse(&plat, rq->platform) < 0)
        return s_fail(out, "%s", farm_error_last());
    if (!farm_worker_dockerfile_ok(rq->dockerfile))
        return s_fail(out, "Dockerfile path \"%.100s%s\" must be relative, inside the context "
                           "and at most %d bytes", rq->dockerfile,
                      strlen(rq->dockerfile) > 100 ? "..." : "", FARM_DOCKERFILE_PATH_MAX);
    if (rq->n_targets > FARM_TAGS_MAX)
        return s_fail(out, "%zu other repositories to push to; at most %d", rq->n_targets,
                      FARM_TAGS_MAX);
    for (size_t i = 0; i < rq->n_targets; i++)
        if (!s_host_ok(rq->targets[i]->registry))
            return s_fail(out, "another repository to push to names an invalid host");
    if (rq->n_credentials > FARM_CREDENTIALS_MAX || rq->n_registries > REGISTRIES_MAX)
        return s_fail(out, "%zu registry logins and %zu registry settings; at most %d and %d",
                      rq->n_credentials, rq->n_registries, FARM_CREDENTIALS_MAX, REGISTRIES_MAX);
    for (size_t i = 0; i < rq->n_credentials; i++)
        if (!s_host_ok(rq->credentials[i]->registry))
            return s_fail(out, "a registry login names an invalid host");
    for (size_t i = 0; i < rq->n_registries; i++)
        if (!s_host_ok(rq->registries[i]->registry) ||
            rq->registries[i]->ca_pem.len > FARM_CA_PEM_MAX)
            return s_fail(out, "registry settings name an invalid host or an over-long CA");
    /* each client's layer cache is its own: no build reuses, or is poisoned by, another
     * client's steps (buildah's cache key does not cover secret or bind mounts) */
    if (farm_builder_init(&b.bl, rq->builder, rq->cache_scope, &plat) < 0)
        return s_fail(out, "%s", farm_error_last());
    if (farm_path_join(ctx, sizeof ctx, rq->job_dir, "context") < 0 ||
        farm_path_join(layout, sizeof layout, rq->job_dir, "oci") < 0)
        return s_fail(out, "job directory: %s", farm_error_last());
    if (mkdir(ctx, 0700) != 0)
        return s_fail(out, "cannot create %s: %s", ctx, strerror(errno));
    printf("farm: extracting context\n");
    fflush(stdout);
    if (farm_context_extract(rq->context_tar, ctx, FARM_CONTEXT_EXTRACT_MAX,
                             FARM_CONTEXT_ENTRIES_MAX) < 0)
        return s_fail(out, "context: %s", farm_error_last());
    s_dockerfile_digest(out, ctx, rq->dockerfile);
    out->emulated = farm_platform_host(&host) == 0 && !farm_platform_equal(&host, &plat);
    if (farm_buildflags_from_wire(&flags, rq->flags) < 0)
        return s_fail(out, "build flags: %s", farm_error_last());
    b.flags = &flags;
    if ((rc = s_access(out, &acc, rq, &flags, &b.bl.sb)) < 0 ||
        (b.bl.sb && (rc = s_env_add(out, &acc, farm_sandbox_env(b.bl.sb))) < 0))
        goto done;
    b.acc = &acc;
    b.bl.envp = acc.envp;
    if (farm_builder_enter(&b.bl) < 0) {
        rc = s_fail(out, "%s", farm_error_last());
        goto done;
    }
    rc = s_build(out, rq, &b, ctx, layout, &plat);
    if (rc < 0) { /* what the failed build left goes first, so the bound counts without it */
        farm_builder_leave(&b.bl);
        farm_builder_tidy(&b.bl);
    }
    /* failed builds too: they keep the steps they committed */
    out->cache_bytes = farm_builder_bound(&b.bl, rq->builder->cache_max);
    if (rc < 0)
        goto done;
    farm_sandbox_stop(&b.bl.sb);
    s_access_clear(&acc); /* the push is ours, not the builder's */
    farm_buildflags_wipe_secrets(&flags);
    out->build_ms = (uint64_t)(farm_now_ms() - t0);
    rc = s_push(out, rq, layout, &plat);
done:
    farm_builder_leave(&b.bl);
    farm_sandbox_stop(&b.bl.sb);
    s_access_clear(&acc);
    farm_buildflags_clear(&flags); /* secrets wiped */
    return rc;
}

/* ------------------------------------------------------------------ the program */

static int s_write_result(const outcome_t *out, const Farm__WorkerRequest *rq)
{
    Farm__WorkerResult r = FARM__WORKER_RESULT__INIT;
    Farm__Descriptor d = FARM__DESCRIPTOR__INIT;
    Farm__ProvenanceJob pj = FARM__PROVENANCE_JOB__INIT;
    Farm__ProvenanceBase bases[FARM_LAYERS_FROMS_MAX + 1], *pbp[FARM_LAYERS_FROMS_MAX + 1];

    r.ok = out->error == NULL;
    r.error = out->error ? out->error : "";
    if (r.ok) {
        d.media_type = (char *)out->media_type;
        d.digest = (char *)out->digest;
        d.size = out->size;
        d.platform = rq ? rq->platform : "";
        r.image = &d;
    }
    r.build_ms = out->build_ms;
    r.push_ms = out->push_ms;
    r.cache_hits = out->layers.cache_hits;
    r.steps = out->layers.steps;
    r.builder_cache_bytes = out->cache_bytes;
    if (r.ok) {
        pj.started_ms = out->started_ms;
        pj.finished_ms = out->finished_ms;
        pj.dockerfile_digest = (char *)out->dockerfile_digest;
        pj.emulated = out->emulated;
        for (size_t i = 0; i < out->n_bases; i++) {
            Farm__ProvenanceBase *pb = &bases[i];
            farm__provenance_base__init(pb);
            pb->name = (char *)out->bases[i].name;
            pb->digest = (char *)out->bases[i].digest;
            pb->final_stage = out->bases[i].final_stage;
            pbp[i] = pb;
        }
        pj.n_bases = out->n_bases;
        pj.bases = pbp;
        r.provenance = &pj;
    }
    return farm_wire_result(&r.base);
}

int farm_worker_main(void)
{
    struct sigaction sa;
    Farm__WorkerRequest *rq = NULL;
    outcome_t out = {0};
    void *req = NULL;
    size_t req_len = 0;
    int rc;

    /* dup2 cleared close-on-exec on the request and result fds: set it before anything
     * runs, so the builder and its RUN steps never hold the result fd */
    if (fcntl(FARM_CHILD_REQUEST_FD, F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(FARM_CHILD_RESULT_FD, F_SETFD, FD_CLOEXEC) != 0) {
        fprintf(stderr, "farm-agent worker: fds 3 and 4 must be open (the agent starts this)\n");
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_term;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGHUP);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = s_on_pipe;
    sigaction(SIGPIPE, &sa, NULL);
    /* orphaned RUN steps reparent to us, not to init: we can end them */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* set by common/child.c already; kept across exec */
    setvbuf(stdout, NULL, _IOLBF, 0);
    farm_log_init("worker", FARM_LOG_INFO);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    if (farm_child_request_read(&req, &req_len, REQUEST_MAX) < 0) {
        s_fail(&out, "reading the job: %s", farm_error_last());
    } else if (!(rq = farm__worker_request__unpack(NULL, req_len, req))) {
        explicit_bzero(req, req_len);
        s_fail(&out, "the job request is not a valid farm.WorkerRequest");
    } else {
        s_run(&out, rq);
    }
    fflush(stdout);
    rc = s_write_result(&out, rq) < 0 ? 1 : 0;
    s_end_tree(0); /* nothing the build started outlives the job */
    free(out.error);
    if (rq) {
        for (size_t i = 0; i < rq->n_credentials; i++) {
            explicit_bzero(rq->credentials[i]->secret, strlen(rq->credentials[i]->secret));
            explicit_bzero(rq->credentials[i]->username, strlen(rq->credentials[i]->username));
        }
        farm_buildflags_wire_wipe(rq->flags);
        farm__worker_request__free_unpacked(rq, NULL);
    }
    if (req)
        explicit_bzero(req, req_len);
    free(req);
    curl_global_cleanup();
    return rc;
}
