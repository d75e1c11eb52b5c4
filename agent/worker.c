#include "agent/worker.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
#include "common/wire.h"

#define REQUEST_MAX (1u << 20)
#define ARGV_FIXED 32          /* builder argv besides the build args */
#define STD_ARGS 8             /* TARGET* and BUILD* */
#define TERM_GRACE_MS 2000     /* SIGTERM to the tree, then SIGKILL (the agent waits 5 s) */
#define TAG_PREFIX "localhost/farm-job:"

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

typedef struct {
    char *error; /* malloc'd; NULL on success */
    char media_type[128];
    char digest[FARM_DIGEST_STRLEN];
    uint64_t size;
    uint64_t build_ms, push_ms;
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

typedef struct {
    const Farm__BuilderOptions *b;
    char root[FARM_PATH_MAX], runroot[FARM_PATH_MAX];
} builder_t;

/* Builder argv prefix: "buildah [--root R/storage --runroot R/run] [--storage-driver D]". */
static int s_builder_prefix(char **argv, const builder_t *b)
{
    int n = 0;
    argv[n++] = b->b->builder;
    if (b->root[0]) {
        argv[n++] = "--root";
        argv[n++] = (char *)b->root;
        argv[n++] = "--runroot";
        argv[n++] = (char *)b->runroot;
    }
    if (b->b->storage_driver[0]) {
        argv[n++] = "--storage-driver";
        argv[n++] = b->b->storage_driver;
    }
    return n;
}

static void s_progress(void *arg, const char *digest, uint64_t size, int skipped)
{
    (void)arg;
    printf("farm: %s %s (%llu bytes)\n", skipped ? "exists " : "pushed ", digest,
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

/* Builds into job_dir/oci with the builder; the image is dropped from builder storage. */
static int s_build(outcome_t *out, const Farm__WorkerRequest *rq, const builder_t *b,
                   const char *ctx, const char *layout, const farm_platform_t *plat)
{
    char dockerfile[FARM_PATH_MAX], tag[sizeof TAG_PREFIX + FARM_ID_MAX], dest[FARM_PATH_MAX + 8];
    char plat_s[FARM_PLATFORM_STRLEN];
    size_t nkv = rq->n_build_args + STD_ARGS;
    char **kv = NULL, **argv = NULL, *rm[16];
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
    if ((rc = s_build_args(out, &kv, rq, plat)) < 0)
        goto done;
    if (!(argv = calloc(ARGV_FIXED + 2 * nkv + 1, sizeof *argv))) {
        rc = s_fail(out, "out of memory");
        goto done;
    }
    n = s_builder_prefix(argv, b);
    argv[n++] = "build";
    if (b->b->isolation[0]) {
        argv[n++] = "--isolation";
        argv[n++] = b->b->isolation;
    }
    argv[n++] = "--platform";
    argv[n++] = plat_s;
    argv[n++] = "-f";
    argv[n++] = dockerfile;
    argv[n++] = "-t";
    argv[n++] = tag;
    for (size_t i = 0; i < nkv; i++) {
        argv[n++] = "--build-arg";
        argv[n++] = kv[i];
    }
    argv[n++] = (char *)ctx;
    argv[n] = NULL;
    printf("farm: building %s with %s\n", plat_s, b->b->builder);
    fflush(stdout);
    if ((n = farm_proc_run(argv, ctx)) != 0) {
        rc = s_fail(out, "%s build for %s exited with status %d", b->b->builder, plat_s, n);
        goto done;
    }
    n = s_builder_prefix(argv, b);
    argv[n++] = "push";
    argv[n++] = "--quiet";
    argv[n++] = tag;
    argv[n++] = dest;
    argv[n] = NULL;
    rc = farm_proc_run(argv, NULL);
    /* the image now lives in the layout; drop it from builder storage either way */
    n = s_builder_prefix(rm, b);
    rm[n++] = "rmi";
    rm[n++] = "--force";
    rm[n++] = tag;
    rm[n] = NULL;
    farm_proc_run(rm, NULL);
    if (rc != 0) {
        rc = s_fail(out, "%s push to an OCI layout exited with status %d", b->b->builder, rc);
        goto done;
    }
    rc = 0;
done:
    for (size_t i = 0; kv && i < nkv; i++)
        free(kv[i]);
    free(kv);
    free(argv);
    return rc;
}

static int s_push(outcome_t *out, const Farm__WorkerRequest *rq, const char *layout,
                  const farm_platform_t *plat)
{
    char plat_s[FARM_PLATFORM_STRLEN], got_s[FARM_PLATFORM_STRLEN];
    farm_oci_image_t *img = NULL;
    farm_registry_t *reg = NULL;
    farm_registry_opts_t ropts = {0};
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
    ropts.insecure = rq->insecure;
    reg = farm_registry_new(rq->registry, &ropts);
    if (!reg) {
        rc = s_fail(out, "registry %s: %s", rq->registry, farm_error_last());
        goto done;
    }
    if (farm_oci_push_image(reg, rq->repository, layout, img, s_progress, NULL) < 0) {
        rc = s_fail(out, "push to %s/%s: %s", rq->registry, rq->repository, farm_error_last());
        goto done;
    }
    memcpy(out->media_type, img->manifest.media_type, sizeof out->media_type);
    memcpy(out->digest, img->manifest.digest, sizeof out->digest);
    out->size = img->manifest.size;
    out->push_ms = (uint64_t)(farm_now_ms() - t0);
    rc = 0;
done:
    farm_registry_destroy(&reg);
    farm_oci_image_destroy(&img);
    return rc;
}

static int s_run(outcome_t *out, const Farm__WorkerRequest *rq)
{
    char ctx[FARM_PATH_MAX], layout[FARM_PATH_MAX];
    builder_t b = {0};
    farm_platform_t plat;
    long long t0 = farm_now_ms();
    int rc;

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
    b.b = rq->builder;
    if (rq->builder->root[0] &&
        (farm_path_join(b.root, sizeof b.root, rq->builder->root, "storage") < 0 ||
         farm_path_join(b.runroot, sizeof b.runroot, rq->builder->root, "run") < 0))
        return s_fail(out, "--builder-root: %s", farm_error_last());
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
    if ((rc = s_build(out, rq, &b, ctx, layout, &plat)) < 0)
        return rc;
    out->build_ms = (uint64_t)(farm_now_ms() - t0);
    return s_push(out, rq, layout, &plat);
}

/* ------------------------------------------------------------------ the program */

static int s_write_result(const outcome_t *out, const Farm__WorkerRequest *rq)
{
    Farm__WorkerResult r = FARM__WORKER_RESULT__INIT;
    Farm__Descriptor d = FARM__DESCRIPTOR__INIT;

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
        s_fail(&out, "the job request is not a valid farm.WorkerRequest");
    } else {
        s_run(&out, rq);
    }
    fflush(stdout);
    rc = s_write_result(&out, rq) < 0 ? 1 : 0;
    s_end_tree(0); /* nothing the build started outlives the job */
    free(out.error);
    if (rq)
        farm__worker_request__free_unpacked(rq, NULL);
    free(req);
    curl_global_cleanup();
    return rc;
}
