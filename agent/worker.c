#include "agent/worker.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/context.h"
#include "common/error.h"
#include "common/oci.h"
#include "common/platform.h"
#include "common/proc.h"
#include "common/registry.h"
#include "common/wire.h"

#define CONTEXT_MAX_BYTES (16ULL << 30)
#define CONTEXT_MAX_ENTRIES 1000000ULL
#define ARGV_FIXED 32 /* builder argv besides the build args */

static long long s_ms_since(long long t0)
{
    return farm_now_ms() - t0;
}

/* Builder argv prefix: "buildah [--root R --runroot R/run] [--storage-driver D]". */
static int s_builder_prefix(char **argv, char *root, char *runroot, size_t len,
                            const farm_builder_opts_t *b)
{
    int n = 0;
    argv[n++] = (char *)b->builder;
    if (b->builder_root) {
        snprintf(root, len, "%s/storage", b->builder_root);
        snprintf(runroot, len, "%s/run", b->builder_root);
        argv[n++] = "--root";
        argv[n++] = root;
        argv[n++] = "--runroot";
        argv[n++] = runroot;
    }
    if (b->storage_driver) {
        argv[n++] = "--storage-driver";
        argv[n++] = (char *)b->storage_driver;
    }
    return n;
}

/* The Dockerfile path stays inside the context: no absolute path, no "..". */
static int s_dockerfile_ok(const char *f)
{
    if (!f || !*f || f[0] == '/')
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

static void s_progress(void *arg, const char *digest, uint64_t size, int skipped)
{
    (void)arg;
    printf("farm: %s %s (%llu bytes)\n", skipped ? "exists " : "pushed ", digest,
           (unsigned long long)size);
}

static int s_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int s_fail(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n')
            *p = ' ';
    printf("@@result error %s\n", msg);
    fflush(stdout);
    return 1;
}

int farm_worker_run(const farm_worker_job_t *job)
{
    char ctx[1200], layout[1200], dockerfile[1400], tag[256], dest[1400];
    char root[1200], runroot[1200], plat_s[FARM_PLATFORM_STRLEN], got_s[FARM_PLATFORM_STRLEN];
    char t_plat[FARM_PLATFORM_STRLEN], t_os[32], t_arch[32], t_var[16];
    char b_plat[FARM_PLATFORM_STRLEN], b_os[32], b_arch[32], b_var[16];
    char **argv = NULL, **kv = NULL;
    farm_platform_t plat, host;
    farm_oci_image_t *img = NULL;
    farm_registry_t *reg = NULL;
    farm_registry_opts_t ropts = {0};
    long long t0 = farm_now_ms(), t_push;
    int n, rc;
    size_t nkv = 0;

    if (farm_platform_parse(&plat, job->platform) < 0)
        return s_fail("%s", farm_error_last());
    farm_platform_format(plat_s, sizeof plat_s, &plat);
    if (!s_dockerfile_ok(job->dockerfile))
        return s_fail("Dockerfile path \"%s\" must be relative and inside the context",
                      job->dockerfile);
    snprintf(ctx, sizeof ctx, "%s/context", job->job_dir);
    snprintf(layout, sizeof layout, "%s/oci", job->job_dir);
    snprintf(dockerfile, sizeof dockerfile, "%s/%s", ctx, job->dockerfile);
    snprintf(tag, sizeof tag, "localhost/farm-job:%s", job->job_id);
    for (char *p = tag + strlen("localhost/farm-job:"); *p; p++)
        if (*p != '-' && *p != '_' && *p != '.' && !(*p >= 'a' && *p <= 'z') &&
            !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9'))
            *p = '_';
    if (mkdir(ctx, 0700) != 0)
        return s_fail("cannot create %s", ctx);
    printf("farm: extracting context\n");
    if (farm_context_extract(job->context_tar, ctx, CONTEXT_MAX_BYTES, CONTEXT_MAX_ENTRIES) < 0)
        return s_fail("context: %s", farm_error_last());

    /* build args exactly as buildx sets them, plus the user's (the coordinator refuses
     * user args that name these) */
    farm_platform_target_args(&plat, t_plat, sizeof t_plat, t_os, sizeof t_os, t_arch,
                              sizeof t_arch, t_var, sizeof t_var);
    if (farm_platform_host(&host) < 0)
        return s_fail("%s", farm_error_last());
    farm_platform_target_args(&host, b_plat, sizeof b_plat, b_os, sizeof b_os, b_arch,
                              sizeof b_arch, b_var, sizeof b_var);
    nkv = job->n_args + 8;
    kv = calloc(nkv, sizeof *kv);
    argv = calloc(ARGV_FIXED + 2 * nkv + 1, sizeof *argv);
    if (!kv || !argv)
        return s_fail("out of memory");
    {
        const char *std[][2] = {{"TARGETPLATFORM", t_plat}, {"TARGETOS", t_os},
                                {"TARGETARCH", t_arch},     {"TARGETVARIANT", t_var},
                                {"BUILDPLATFORM", b_plat},  {"BUILDOS", b_os},
                                {"BUILDARCH", b_arch},      {"BUILDVARIANT", b_var}};
        for (size_t i = 0; i < 8; i++)
            if (asprintf(&kv[i], "%s=%s", std[i][0], std[i][1]) < 0)
                return s_fail("out of memory");
        for (size_t i = 0; i < job->n_args; i++)
            if (asprintf(&kv[8 + i], "%s=%s", job->args[i].key, job->args[i].value) < 0)
                return s_fail("out of memory");
    }
    n = s_builder_prefix(argv, root, runroot, sizeof root, job->builder);
    argv[n++] = "build";
    if (job->builder->isolation) {
        argv[n++] = "--isolation";
        argv[n++] = (char *)job->builder->isolation;
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
    argv[n++] = ctx;
    argv[n] = NULL;
    printf("farm: building %s with %s\n", plat_s, job->builder->builder);
    fflush(stdout);
    rc = farm_proc_run(argv, ctx);
    if (rc != 0)
        return s_fail("%s build for %s exited with status %d", job->builder->builder, plat_s, rc);

    n = s_builder_prefix(argv, root, runroot, sizeof root, job->builder);
    snprintf(dest, sizeof dest, "oci:%s", layout);
    argv[n++] = "push";
    argv[n++] = "--quiet";
    argv[n++] = tag;
    argv[n++] = dest;
    argv[n] = NULL;
    rc = farm_proc_run(argv, NULL);
    /* the image now lives in the layout; drop it from builder storage either way */
    {
        char *rm[16];
        int m = s_builder_prefix(rm, root, runroot, sizeof root, job->builder);
        rm[m++] = "rmi";
        rm[m++] = "--force";
        rm[m++] = tag;
        rm[m] = NULL;
        farm_proc_run(rm, NULL);
    }
    if (rc != 0)
        return s_fail("%s push to an OCI layout exited with status %d", job->builder->builder, rc);
    long long build_ms = s_ms_since(t0);

    if (farm_oci_layout_read(&img, layout) < 0)
        return s_fail("builder output: %s", farm_error_last());
    farm_platform_format(got_s, sizeof got_s, &img->manifest.platform);
    if (!farm_platform_equal(&img->manifest.platform, &plat)) {
        rc = s_fail("the built image's config says %s but the job is for %s; refusing to push it",
                    got_s, plat_s);
        goto done;
    }
    printf("farm: image %s for %s; pushing to %s/%s\n", img->manifest.digest, got_s,
           job->registry, job->repository);
    fflush(stdout);
    t_push = farm_now_ms();
    ropts.insecure = job->insecure;
    reg = farm_registry_new(job->registry, &ropts);
    if (!reg) {
        rc = s_fail("registry %s: %s", job->registry, farm_error_last());
        goto done;
    }
    if (farm_oci_push_image(reg, job->repository, layout, img, s_progress, NULL) < 0) {
        rc = s_fail("push to %s/%s: %s", job->registry, job->repository, farm_error_last());
        goto done;
    }
    printf("@@result ok %s %s %llu %lld %lld\n", img->manifest.media_type, img->manifest.digest,
           (unsigned long long)img->manifest.size, build_ms, s_ms_since(t_push));
    fflush(stdout);
    rc = 0;
done:
    farm_registry_destroy(&reg);
    farm_oci_image_destroy(&img);
    return rc;
}
