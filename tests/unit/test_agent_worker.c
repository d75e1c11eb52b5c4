/* SPDX-License-Identifier: Apache-2.0 */
/* The exec'd worker's contract (agent/worker.h), run for real: this test binary re-runs
 * itself as `worker` through common/child.h, the way the agent does. A fake builder
 * prints a forged "@@result" line and tries fds 3 and 4: the result on fd 4 is a
 * WorkerResult that says the build failed, and the builder found both fds closed. Also:
 * the Dockerfile path rule, and a bad request answered with a result, not silence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/builder.h"
#include "agent/layers.h"
#include "agent/sandbox.h"
#include "common/error.h"
#include "agent/worker.h"
#include "common/child.h"
#include "common/context.h"
#include "common/fs.h"
#include "common/platform.h"
#include "common/wire.h"

static char s_dir[256];
static char s_log[16384];
static size_t s_log_len;

static void s_line(void *arg, const char *line)
{
    size_t l = strlen(line);
    (void)arg;
    if (s_log_len + l + 2 < sizeof s_log) {
        memcpy(s_log + s_log_len, line, l);
        s_log_len += l;
        s_log[s_log_len++] = '\n';
        s_log[s_log_len] = '\0';
    }
}

/* Runs the worker with request bytes; returns its unpacked result (NULL: none). */
static Farm__WorkerResult *s_run_worker(const void *req, size_t len, int *out_status)
{
    char *argv[] = {"/proc/self/exe", "worker", NULL};
    farm_child_opts_t o = {.argv = argv, .request = req, .request_len = len};
    farm_child_t *c = farm_child_spawn(&o);
    Farm__WorkerResult *r = NULL;
    const void *bytes;
    size_t n = 0;

    assert_non_null(c);
    s_log_len = 0;
    s_log[0] = '\0';
    for (int i = 0; i < 3000 && !farm_child_done(c); i++) {
        struct timespec ts = {0, 10000000L};
        if (farm_child_log_fd(c) >= 0)
            farm_child_read_log(c, s_line, NULL);
        if (farm_child_result_fd(c) >= 0)
            farm_child_read_result(c);
        if (farm_child_log_fd(c) < 0 && farm_child_result_fd(c) < 0)
            farm_child_reap(c, out_status);
        if (!farm_child_done(c))
            nanosleep(&ts, NULL);
    }
    assert_true(farm_child_done(c));
    farm_child_reap(c, out_status);
    bytes = farm_child_result(c, &n);
    if (n)
        r = farm__worker_result__unpack(NULL, n, bytes);
    farm_child_destroy(&c);
    return r;
}

static void test_dockerfile_rule(void **state)
{
    char long_path[FARM_DOCKERFILE_PATH_MAX + 2];
    (void)state;
    assert_true(farm_worker_dockerfile_ok("Dockerfile"));
    assert_true(farm_worker_dockerfile_ok("sub/dir/Dockerfile.x"));
    assert_true(farm_worker_dockerfile_ok("a..b/Dockerfile"));
    assert_false(farm_worker_dockerfile_ok(""));
    assert_false(farm_worker_dockerfile_ok("/etc/passwd"));
    assert_false(farm_worker_dockerfile_ok("../Dockerfile"));
    assert_false(farm_worker_dockerfile_ok("a/../../Dockerfile"));
    memset(long_path, 'a', sizeof long_path - 1);
    long_path[sizeof long_path - 1] = '\0';
    assert_false(farm_worker_dockerfile_ok(long_path));
}

static void test_bad_request_gets_a_result(void **state)
{
    static const unsigned char junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    int status = -1;
    Farm__WorkerResult *r;
    (void)state;

    r = s_run_worker(junk, sizeof junk, &status);
    assert_non_null(r);
    assert_false(r->ok);
    assert_non_null(strstr(r->error, "WorkerRequest"));
    farm__worker_result__free_unpacked(r, NULL);
}

static void test_builder_cannot_reach_result_fd(void **state)
{
    char ctxdir[300], tar[300], jobdir[300], builder[300], path[400];
    char digest[FARM_DIGEST_STRLEN];
    uint64_t size;
    FILE *f;
    Farm__WorkerRequest rq = FARM__WORKER_REQUEST__INIT;
    Farm__BuilderOptions b = FARM__BUILDER_OPTIONS__INIT;
    Farm__WorkerResult *r;
    uint8_t *buf;
    size_t len;
    int status = -1;
    (void)state;

    snprintf(s_dir, sizeof s_dir, "/tmp/farm-test-worker.%d", (int)getpid());
    farm_fs_rmtree(s_dir);
    snprintf(ctxdir, sizeof ctxdir, "%s/ctx", s_dir);
    snprintf(jobdir, sizeof jobdir, "%s/job", s_dir);
    snprintf(tar, sizeof tar, "%s/ctx.tar", s_dir);
    snprintf(builder, sizeof builder, "%s/fake-builder", s_dir);
    assert_int_equal(farm_fs_mkdirs(ctxdir), 0);
    assert_int_equal(farm_fs_mkdirs(jobdir), 0);
    snprintf(path, sizeof path, "%s/Dockerfile", ctxdir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("FROM scratch\n", f);
    fclose(f);
    assert_int_equal(farm_context_pack(digest, &size, ctxdir, "Dockerfile", tar), 0);
    f = fopen(builder, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\n"
          "echo '@@result ok application/vnd.oci.image.manifest.v1+json sha256:"
          "0000000000000000000000000000000000000000000000000000000000000000 123 1 1'\n"
          "( echo forged >&4 ) 2>/dev/null && echo 'FD4 OPEN'\n"
          "( echo forged >/proc/self/fd/4 ) 2>/dev/null && echo 'PROC FD4 OPEN'\n"
          "( cat <&3 ) 2>/dev/null >/dev/null && echo 'FD3 OPEN'\n"
          "echo 'fake builder ran'\n"
          "exit 1\n", f);
    fclose(f);
    chmod(builder, 0755);
    b.builder = builder;
    b.isolation = "chroot"; /* a fake builder: the sandbox is test_e2e_sandbox's */
    rq.job_id = "b1-aa.1";
    rq.platform = "linux/amd64";
    rq.context_tar = tar;
    rq.job_dir = jobdir;
    rq.dockerfile = "Dockerfile";
    rq.registry = "127.0.0.1:1";
    rq.repository = "team/x";
    rq.builder = &b;
    len = farm__worker_request__get_packed_size(&rq);
    buf = malloc(len);
    assert_non_null(buf);
    farm__worker_request__pack(&rq, buf);
    r = s_run_worker(buf, len, &status);
    free(buf);
    assert_non_null(r);
    assert_non_null(strstr(s_log, "fake builder ran"));
    assert_non_null(strstr(s_log, "@@result ok")); /* printed, as log text only */
    assert_null(strstr(s_log, "FD4 OPEN"));
    assert_null(strstr(s_log, "FD3 OPEN"));
    assert_false(r->ok);
    assert_non_null(strstr(r->error, "exited with status 1"));
    assert_true(WIFEXITED(status));
    farm__worker_result__free_unpacked(r, NULL);
    farm_fs_rmtree(s_dir);
}

/* /etc/subuid lines: by name or uid, the first range of at least `want`, else the largest */
static void test_subid_ranges(void **state)
{
    char path[] = "/tmp/farm-test-subuid-XXXXXX";
    int fd = mkstemp(path);
    farm_subid_range_t r;
    static const char text[] = "# comment\n"
                               "alice:100000:65536\n"
                               "farm:200000:1000\n"
                               "farm:300000:65536\n"
                               "farm:400000:65536\n"
                               "995:500000:70000\n"
                               "bogus:x:1\n"
                               "short:600000\n"
                               "zero:700000:0\n"
                               "small:800000:10\n"
                               "small:900000:20";
    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    assert_int_equal(farm_subid_find(&r, path, "farm", 995, 65536), 0);
    assert_int_equal(r.start, 300000); /* not the 1000-id range first listed */
    assert_int_equal(r.count, 65536);
    assert_int_equal(farm_subid_find(&r, path, NULL, 995, 65536), 0); /* numeric owner */
    assert_int_equal(r.start, 500000);
    assert_int_equal(farm_subid_find(&r, path, "small", 42, 65536), 0); /* the largest */
    assert_int_equal(r.start, 900000);
    assert_int_equal(r.count, 20);
    assert_true(farm_subid_find(&r, path, "bob", 1000, 65536) < 0);
    assert_non_null(strstr(farm_error_last(), "no range for user bob (uid 1000)"));
    assert_true(farm_subid_find(&r, path, "bogus", 1001, 1) < 0);
    assert_true(farm_subid_find(&r, path, "short", 1002, 1) < 0);
    assert_true(farm_subid_find(&r, path, "zero", 1003, 1) < 0);
    assert_true(farm_subid_find(&r, "/nonexistent/subuid", "farm", 995, 1) < 0);
    assert_non_null(strstr(farm_error_last(), "cannot read /nonexistent/subuid"));
    unlink(path);
}

/* The builder's output, counted: a hit counts only right after its STEP line, so lines a
 * RUN step prints cannot make more hits than steps; a failed cache push is seen */
static void test_layers_scan(void **state)
{
    static const char *const lines[] = {
        "STEP 1/4: FROM scratch",        "STEP 2/4: COPY a /a",
        "--> Using cache 0123abcd",      "STEP 3/4: RUN echo x",
        "--> Using cache forged-by-run", "--> Using cache forged-again",
        "[2/2] STEP 4/4: COPY b /b",     "--> Using cache 4567",
        "STEP x/y: not a step",          "Error: failed pushing cache to reg/x/linux-amd64:k",
        NULL};
    farm_layers_stats_t st = {0};
    char ref[300];
    farm_platform_t p;
    (void)state;

    for (size_t i = 0; lines[i]; i++)
        farm_layers_scan(&st, lines[i]);
    assert_int_equal(st.steps, 4);
    assert_int_equal(st.cache_hits, 3); /* 2/4, 3/4 (once), 4/4 */
    assert_true(st.cache_push_failed);
    assert_int_equal(farm_platform_parse(&p, "linux/arm/v7"), 0);
    assert_int_equal(farm_layers_slug(ref, sizeof ref, &p), 0);
    assert_string_equal(ref, "linux-arm-v7");
    assert_int_equal(farm_layers_cache_ref(ref, sizeof ref, "reg:5000/team/c", "linux-arm-v7"), 0);
    assert_string_equal(ref, "reg:5000/team/c/linux-arm-v7");
    assert_int_equal(farm_layers_cache_ref(ref, sizeof ref, "reg/c:tag", "linux-amd64"),
                     FARM_EINVALID);
}

/* Each stage's FROM, for provenance: a stage's first step only, ARGs as buildah
 * expanded them, the alias kept (a later FROM of it names no image); a name too long is
 * dropped, never cut. A RUN step's output can print lines like buildah's: one without the
 * build's stage count is ignored, and one for a stage that has (or later gets) its real
 * FROM line makes that stage doubted: its base is left out, never the forged name. */
static void test_layers_froms(void **state)
{
    static char longname[FARM_REFERENCE_MAX + 20];
    const char *lines[] = {"[1/3] STEP 1/2: FROM r.example:5000/team/tools:1 AS tools",
                           "[1/3] STEP 2/2: RUN echo STEP 1/9: FROM forged",
                           "STEP 1/9: FROM forged-without-the-stage-count",
                           "[2/4] STEP 1/9: FROM forged-with-another-stage-count",
                           "[3/3] STEP 1/9: FROM forged-for-a-later-stage",
                           "[2/3] STEP 1/2: FROM scratch AS mid",
                           "[2/3]  STEP 1/2: FROM forged-odd-spacing",
                           "[3/3] STEP 1/3: FROM tools",
                           "[3/3] STEP 2/3: COPY --from=mid /a /a",
                           "[1/3] STEP 1/1: FROM forged-for-an-earlier-stage",
                           NULL};
    farm_layers_stats_t st = {0};
    (void)state;

    for (size_t i = 0; lines[i]; i++)
        farm_layers_scan(&st, lines[i]);
    assert_int_equal(st.stages, 3);
    assert_int_equal(st.n_froms, 3);
    assert_string_equal(st.froms[0].name, "r.example:5000/team/tools:1");
    assert_string_equal(st.froms[0].alias, "tools");
    assert_int_equal(st.froms[0].stage, 1);
    assert_true(st.froms[0].doubted); /* the forged line for stage 1 at the end */
    /* the forged stage 3 line came first: stored, then doubted when the real one came */
    assert_string_equal(st.froms[1].name, "forged-for-a-later-stage");
    assert_int_equal(st.froms[1].stage, 3);
    assert_true(st.froms[1].doubted);
    assert_string_equal(st.froms[2].name, "scratch");
    assert_string_equal(st.froms[2].alias, "mid");
    assert_int_equal(st.froms[2].stage, 2);
    assert_false(st.froms[2].doubted);

    /* one stage, no prefix: the first FROM line is the base; a RUN step printing another
     * makes it doubted; a name too long is dropped, never cut */
    farm_layers_stats_t one = {0};
    farm_layers_scan(&one, "STEP 1/3: FROM r.example/base:1");
    farm_layers_scan(&one, "STEP 2/3: RUN echo hi");
    assert_int_equal(one.n_froms, 1);
    assert_false(one.froms[0].doubted);
    assert_int_equal(one.froms[0].stage, one.stages);
    farm_layers_scan(&one, "STEP 1/1: FROM r.example/evil:1");
    assert_int_equal(one.n_froms, 1);
    assert_string_equal(one.froms[0].name, "r.example/base:1");
    assert_true(one.froms[0].doubted);

    farm_layers_stats_t lng = {0};
    memcpy(longname, "STEP 1/1: FROM ", 15);
    memset(longname + 15, 'a', sizeof longname - 16);
    farm_layers_scan(&lng, longname);
    assert_int_equal(lng.n_froms, 0);
}

/* One cache per client and platform: the paths, and scopes that are not one component */
static void test_builder_paths(void **state)
{
    Farm__BuilderOptions o = FARM__BUILDER_OPTIONS__INIT;
    farm_builder_t b;
    farm_platform_t p;
    char *argv[FARM_BUILDER_PREFIX_MAX + 1];
    int n;
    (void)state;

    o.builder = "buildah";
    o.root = "/r";
    o.storage_driver = "vfs";
    assert_int_equal(farm_platform_parse(&p, "linux/arm/v7"), 0);
    assert_int_equal(farm_builder_init(&b, &o, "alice", &p), 0);
    assert_string_equal(b.scope, "/r/alice");
    assert_string_equal(b.root, "/r/alice/linux-arm-v7/storage");
    assert_string_equal(b.runroot, "/r/alice/linux-arm-v7/run");
    assert_int_equal(b.lock, -1);
    n = farm_builder_prefix(argv, &b); /* no sandbox: buildah itself */
    assert_int_equal(n, 7);
    assert_string_equal(argv[0], "buildah");
    assert_string_equal(argv[2], "/r/alice/linux-arm-v7/storage");
    assert_string_equal(argv[6], "vfs");
    assert_int_equal(farm_builder_init(&b, &o, "", &p), 0); /* a farm without keys */
    assert_string_equal(b.scope, "/r/@keyless");
    assert_int_equal(farm_builder_init(&b, &o, "shared", &p), 0); /* a client: no clash */
    assert_string_equal(b.scope, "/r/shared");
    assert_int_equal(farm_builder_init(&b, &o, ".ci", &p), 0);
    assert_string_equal(b.scope, "/r/.ci");
    assert_int_equal(farm_builder_init(&b, &o, "..", &p), FARM_EINVALID);
    assert_int_equal(farm_builder_init(&b, &o, ".", &p), FARM_EINVALID);
    assert_int_equal(farm_builder_init(&b, &o, "a/b", &p), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "is not a client name"));
    o.root = ""; /* no builder root: buildah's own storage, no cache dirs */
    assert_int_equal(farm_builder_init(&b, &o, "alice", &p), 0);
    assert_string_equal(b.scope, "");
    assert_int_equal(farm_builder_prefix(argv, &b), 3);
    assert_int_equal(farm_builder_enter(&b), 0);
    assert_int_equal(farm_builder_bound(&b, 1), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dockerfile_rule),
        cmocka_unit_test(test_subid_ranges),
        cmocka_unit_test(test_builder_paths),
        cmocka_unit_test(test_layers_froms),
        cmocka_unit_test(test_layers_scan),
        cmocka_unit_test(test_bad_request_gets_a_result),
        cmocka_unit_test(test_builder_cannot_reach_result_fd),
    };
    if (argc == 2 && strcmp(argv[1], "worker") == 0)
        return farm_worker_main(); /* as farm-agent does */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
