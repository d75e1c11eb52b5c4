/* SPDX-License-Identifier: Apache-2.0 */
/* common/registry against a real registry: Debian's docker-registry (CNCF distribution
 * 2.8) on a free 127.0.0.1 port with a temp storage dir, anonymous and htpasswd Basic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/proc.h"
#include "common/log.h"
#include "common/registry.h"

#define REGISTRY_BIN "/usr/bin/docker-registry"
#define USER "farmuser"
#define PASS "farm-s3cret"
#define REPO "team/app"

typedef struct {
    char dir[64];   /* mkdtemp: config, storage, log, htpasswd, docker config */
    char host[64];  /* "127.0.0.1:PORT" */
    int port;
    pid_t pid;
    int auth;       /* htpasswd variant */
} fixture_t;

/* ------------------------------------------------------------------------------ */
/* fixture */

static int s_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int s_can_connect(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;
    if (fd < 0)
        return 0;
    ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void s_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "we");
    if (!f)
        fail_msg("cannot create %s: %s", path, strerror(errno));
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void s_print_log_tail(const fixture_t *fx)
{
    char path[128], buf[4096];
    FILE *f;
    size_t n;
    snprintf(path, sizeof path, "%s/registry.log", fx->dir);
    f = fopen(path, "re");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    if (ftell(f) > (long)sizeof buf - 1)
        fseek(f, -(long)sizeof buf + 1, SEEK_END);
    else
        fseek(f, 0, SEEK_SET);
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "--- docker-registry log tail ---\n%s\n---\n", buf);
}

static int s_start(void **state, int auth)
{
    fixture_t *fx = calloc(1, sizeof *fx);

    if (!fx)
        return -1;
    *state = fx;
    fx->pid = -1;
    fx->auth = auth;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/farm-test-registry-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

/* Starts the registry (fails the test, never skips, if docker-registry is missing). */
static void s_launch(fixture_t *fx)
{
    char cfg[128], yml[2048], logp[128], htp[128];
    struct timespec t0, now;
    int n;

    if (access(REGISTRY_BIN, X_OK) != 0)
        fail_msg("%s is missing: install Debian's docker-registry package (apt-get install "
                 "docker-registry); the registry tests need a real registry",
                 REGISTRY_BIN);
    if (fx->auth) {
        char *argv[] = {"htpasswd", "-Bbc", htp, USER, PASS, NULL};
        snprintf(htp, sizeof htp, "%s/htpasswd", fx->dir);
        if (farm_proc_run(argv, NULL) != 0)
            fail_msg("htpasswd -Bbc %s failed (test_basic_auth fails earlier when it is missing)", htp);
    }
    fx->port = s_free_port();
    assert_true(fx->port > 0);
    snprintf(fx->host, sizeof fx->host, "127.0.0.1:%d", fx->port);
    n = snprintf(yml, sizeof yml,
                 "version: 0.1\n"
                 "log:\n  level: info\n"
                 "storage:\n  filesystem:\n    rootdirectory: %s/data\n"
                 "  delete:\n    enabled: true\n"
                 "http:\n  addr: 127.0.0.1:%d\n  secret: farm-test-only\n"
                 "%s%s%s%s",
                 fx->dir, fx->port,
                 fx->auth ? "auth:\n  htpasswd:\n    realm: farm-test\n    path: " : "",
                 fx->auth ? fx->dir : "", fx->auth ? "/htpasswd" : "", fx->auth ? "\n" : "");
    assert_true(n > 0 && (size_t)n < sizeof yml);
    snprintf(cfg, sizeof cfg, "%s/config.yml", fx->dir);
    s_write_file(cfg, yml, (size_t)n);
    snprintf(logp, sizeof logp, "%s/registry.log", fx->dir);

    fx->pid = fork();
    assert_true(fx->pid >= 0);
    if (fx->pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(REGISTRY_BIN, "docker-registry", "serve", cfg, (char *)NULL);
        _exit(127);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int status;
        if (waitpid(fx->pid, &status, WNOHANG) == fx->pid) {
            fx->pid = -1;
            s_print_log_tail(fx);
            fail_msg("docker-registry exited at start (status %d); log above", status);
        }
        if (s_can_connect(fx->port))
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > 20) {
            s_print_log_tail(fx);
            fail_msg("docker-registry did not listen on %s within 20 s", fx->host);
        }
        usleep(50 * 1000);
    }
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    if (!fx)
        return 0;
    if (fx->pid > 0) {
        kill(fx->pid, SIGTERM);
        for (int i = 0; i < 50; i++) {
            if (waitpid(fx->pid, NULL, WNOHANG) == fx->pid) {
                fx->pid = -1;
                break;
            }
            usleep(100 * 1000);
        }
        if (fx->pid > 0) {
            kill(fx->pid, SIGKILL);
            waitpid(fx->pid, NULL, 0);
        }
    }
    if (fx->dir[0])
        farm_fs_rmtree(fx->dir);
    unsetenv("DOCKER_CONFIG");
    free(fx);
    *state = NULL;
    return 0;
}

static int s_setup_anon(void **state)
{
    return s_start(state, 0);
}

static int s_setup_auth(void **state)
{
    return s_start(state, 1);
}

/* ------------------------------------------------------------------------------ */
/* content */

typedef struct {
    char path[160];
    char digest[FARM_DIGEST_STRLEN];
    size_t size;
    char *data;
} blob_t;

static void s_blob(blob_t *b, const fixture_t *fx, const char *name, const void *data,
                   size_t len)
{
    snprintf(b->path, sizeof b->path, "%s/%s", fx->dir, name);
    s_write_file(b->path, data, len);
    farm_digest_buffer(b->digest, data, len);
    b->size = len;
    b->data = malloc(len + 1);
    assert_non_null(b->data);
    memcpy(b->data, data, len);
}

static char *s_manifest(const blob_t *config, const char *layer_digest, size_t layer_size)
{
    char *m = NULL;
    int n = asprintf(&m,
                     "{\"schemaVersion\":2,\"mediaType\":\"%s\","
                     "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
                     "\"digest\":\"%s\",\"size\":%zu},"
                     "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
                     "\"digest\":\"%s\",\"size\":%zu}]}",
                     FARM_MEDIA_OCI_MANIFEST, config->digest, config->size, layer_digest,
                     layer_size);
    assert_true(n > 0);
    return m;
}

/* The whole push path a farm agent and coordinator take, judged by the registry. */
static void s_push_image(fixture_t *fx, farm_registry_t *reg)
{
    blob_t layer, config;
    unsigned char payload[200000];
    const char cfg_json[] =
        "{\"architecture\":\"arm64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
        "\"diff_ids\":[]}}";
    char digest[FARM_DIGEST_STRLEN], head_digest[FARM_DIGEST_STRLEN], mt[256];
    char idx_digest[FARM_DIGEST_STRLEN], missing[FARM_DIGEST_STRLEN];
    char *manifest, *index = NULL, *body = NULL, *bad;
    uint64_t size = 0;
    size_t len = 0;
    int skipped = -1, rc;

    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (unsigned char)((i * 7919u) >> 3 ^ (unsigned)fx->port);
    s_blob(&layer, fx, "layer.tar", payload, sizeof payload);
    s_blob(&config, fx, "config.json", cfg_json, strlen(cfg_json));

    assert_int_equal(farm_registry_ping(reg), 0);

    /* blobs: first push uploads, second is skipped after HEAD */
    assert_int_equal(farm_registry_blob_exists(reg, NULL, REPO, layer.digest), FARM_ENOTFOUND);
    rc = farm_registry_blob_push_file(reg, &skipped, REPO, layer.digest, layer.path);
    if (rc != 0)
        fail_msg("blob push: %s", farm_error_last());
    assert_int_equal(skipped, 0);
    rc = farm_registry_blob_push_file(reg, &skipped, REPO, layer.digest, layer.path);
    if (rc != 0)
        fail_msg("second blob push: %s", farm_error_last());
    assert_int_equal(skipped, 1);
    assert_int_equal(farm_registry_blob_push_file(reg, &skipped, REPO, config.digest,
                                                  config.path), 0);
    assert_int_equal(skipped, 0);
    assert_int_equal(farm_registry_blob_exists(reg, &size, REPO, layer.digest), 0);
    assert_int_equal(size, layer.size);

    /* a file whose bytes do not match the claimed digest is refused before upload */
    assert_int_equal(farm_registry_blob_push_file(reg, &skipped, REPO, config.digest,
                                                  layer.path), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), layer.digest));

    /* blob GET returns the bytes, bounded */
    assert_int_equal(farm_registry_blob_get(reg, &body, &len, REPO, layer.digest, 1 << 20), 0);
    assert_int_equal(len, layer.size);
    assert_memory_equal(body, layer.data, len);
    free(body);
    body = NULL;
    assert_int_equal(farm_registry_blob_get(reg, &body, &len, REPO, layer.digest, 1000),
                     FARM_ETOOBIG);
    assert_null(body);

    /* manifest by digest: no tag created */
    manifest = s_manifest(&config, layer.digest, layer.size);
    farm_digest_buffer(digest, manifest, strlen(manifest));
    rc = farm_registry_manifest_put(reg, head_digest, REPO, digest, FARM_MEDIA_OCI_MANIFEST,
                                    manifest, strlen(manifest));
    if (rc != 0)
        fail_msg("manifest put: %s", farm_error_last());
    assert_string_equal(head_digest, digest);

    memset(head_digest, 0, sizeof head_digest);
    assert_int_equal(farm_registry_manifest_head(reg, head_digest, &size, mt, sizeof mt, REPO,
                                                 digest), 0);
    assert_string_equal(head_digest, digest);
    assert_int_equal(size, strlen(manifest));
    assert_string_equal(mt, FARM_MEDIA_OCI_MANIFEST);

    mt[0] = '\0';
    assert_int_equal(farm_registry_manifest_get(reg, &body, &len, mt, sizeof mt, REPO, digest),
                     0);
    assert_int_equal(len, strlen(manifest));
    assert_memory_equal(body, manifest, len);
    assert_int_equal(body[len], '\0');
    assert_string_equal(mt, FARM_MEDIA_OCI_MANIFEST);
    free(body);
    body = NULL;

    /* the index, by tag, naming the child pushed by digest */
    assert_true(asprintf(&index,
                         "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[{"
                         "\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,"
                         "\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\","
                         "\"variant\":\"v8\"}}]}",
                         FARM_MEDIA_OCI_INDEX, FARM_MEDIA_OCI_MANIFEST, digest,
                         strlen(manifest)) > 0);
    rc = farm_registry_manifest_put(reg, idx_digest, REPO, "v1", FARM_MEDIA_OCI_INDEX, index,
                                    strlen(index));
    if (rc != 0)
        fail_msg("index put: %s", farm_error_last());
    {
        char want[FARM_DIGEST_STRLEN];
        farm_digest_buffer(want, index, strlen(index));
        assert_string_equal(idx_digest, want);
    }
    assert_int_equal(farm_registry_manifest_head(reg, head_digest, &size, mt, sizeof mt, REPO,
                                                 "v1"), 0);
    assert_string_equal(head_digest, idx_digest);
    assert_int_equal(size, strlen(index));
    assert_string_equal(mt, FARM_MEDIA_OCI_INDEX);
    assert_int_equal(farm_registry_manifest_get(reg, &body, &len, mt, sizeof mt, REPO, "v1"), 0);
    assert_memory_equal(body, index, len);
    free(body);
    body = NULL;

    /* absent things */
    assert_int_equal(farm_registry_manifest_head(reg, NULL, NULL, NULL, 0, REPO, "nope"),
                     FARM_ENOTFOUND);
    assert_int_equal(farm_registry_manifest_get(reg, &body, &len, NULL, 0, "team/other", "v1"),
                     FARM_ENOTFOUND);

    /* a digest ref that is not the bytes' digest is refused locally */
    assert_int_equal(farm_registry_manifest_put(reg, NULL, REPO, layer.digest,
                                                FARM_MEDIA_OCI_MANIFEST, manifest,
                                                strlen(manifest)), FARM_EINVALID);

    /* a manifest naming a blob the registry lacks: refused, the error names the blob */
    farm_digest_buffer(missing, "not uploaded", 12);
    bad = s_manifest(&config, missing, 12);
    rc = farm_registry_manifest_put(reg, NULL, REPO, "broken", FARM_MEDIA_OCI_MANIFEST, bad,
                                    strlen(bad));
    assert_true(rc < 0);
    fprintf(stderr, "expected refusal: %s\n", farm_error_last());
    assert_non_null(strstr(farm_error_last(), missing));
    assert_non_null(strstr(farm_error_last(), "MANIFEST_BLOB_UNKNOWN"));
    assert_int_equal(farm_registry_manifest_head(reg, NULL, NULL, NULL, 0, REPO, "broken"),
                     FARM_ENOTFOUND);

    free(bad);
    free(index);
    free(manifest);
    free(layer.data);
    free(config.data);
}

/* ------------------------------------------------------------------------------ */
/* tests */

static void test_anonymous_push(void **state)
{
    fixture_t *fx = *state;
    farm_registry_opts_t opts = {.insecure = 1, .max_retries = 2, .timeout_s = 30};
    farm_registry_t *reg;

    s_launch(fx);
    reg = farm_registry_new(fx->host, &opts);
    assert_non_null(reg);
    s_push_image(fx, reg);
    farm_registry_destroy(&reg);
    assert_null(reg);

    /* without insecure, the client speaks https only and the plain-HTTP registry fails */
    opts.insecure = 0;
    opts.max_retries = 1;
    reg = farm_registry_new(fx->host, &opts);
    assert_non_null(reg);
    assert_true(farm_registry_ping(reg) < 0);
    assert_non_null(strstr(farm_error_last(), "https://"));
    farm_registry_destroy(&reg);
}

static void s_docker_config(const fixture_t *fx, const char *sub, const char *user,
                            const char *pass)
{
    char dir[160], path[200], json[512], plain[128], b64[200];
    FILE *p;
    int n;

    snprintf(dir, sizeof dir, "%s/%s", fx->dir, sub);
    assert_int_equal(mkdir(dir, 0700), 0);
    if (user) {
        /* base64 via OpenSSL's CLI would add a dependency: encode by hand */
        static const char tbl[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t len = (size_t)snprintf(plain, sizeof plain, "%s:%s", user, pass), o = 0;
        for (size_t i = 0; i < len; i += 3) {
            unsigned v = (unsigned char)plain[i] << 16;
            if (i + 1 < len)
                v |= (unsigned char)plain[i + 1] << 8;
            if (i + 2 < len)
                v |= (unsigned char)plain[i + 2];
            b64[o++] = tbl[v >> 18 & 63];
            b64[o++] = tbl[v >> 12 & 63];
            b64[o++] = i + 1 < len ? tbl[v >> 6 & 63] : '=';
            b64[o++] = i + 2 < len ? tbl[v & 63] : '=';
        }
        b64[o] = '\0';
        /* key in the form `docker login` writes for a non-Hub registry */
        n = snprintf(json, sizeof json, "{\"auths\":{\"%s\":{\"auth\":\"%s\"}}}", fx->host, b64);
    } else {
        n = snprintf(json, sizeof json, "{\"auths\":{}}");
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    p = fopen(path, "we");
    assert_non_null(p);
    fwrite(json, 1, (size_t)n, p);
    fclose(p);
    assert_int_equal(setenv("DOCKER_CONFIG", dir, 1), 0);
}

static void test_basic_auth(void **state)
{
    fixture_t *fx = *state;
    farm_registry_opts_t opts = {.insecure = 1, .max_retries = 2, .timeout_s = 30};
    farm_registry_t *reg;
    char want[128];

    /* a test that cannot run fails: ctest counts a cmocka skip() as passed */
    if (farm_proc_run((char *[]){"sh", "-c", "command -v htpasswd >/dev/null", NULL}, NULL) != 0) {
        fail_msg("htpasswd is not installed (apt-get install apache2-utils); it makes the "
                 "registry's bcrypt htpasswd file, so the Basic auth test cannot run");
    }
    s_launch(fx);
    snprintf(want, sizeof want, "docker login %s", fx->host);

    /* no credentials at all */
    s_docker_config(fx, "empty", NULL, NULL);
    reg = farm_registry_new(fx->host, &opts);
    assert_non_null(reg);
    assert_int_equal(farm_registry_ping(reg), FARM_EAUTH);
    fprintf(stderr, "expected refusal: %s\n", farm_error_last());
    assert_non_null(strstr(farm_error_last(), want));
    farm_registry_destroy(&reg);

    /* wrong password: EAUTH naming host, repo and what to do; the password is not echoed */
    s_docker_config(fx, "wrong", USER, "not-the-password");
    reg = farm_registry_new(fx->host, &opts);
    assert_non_null(reg);
    assert_int_equal(farm_registry_manifest_head(reg, NULL, NULL, NULL, 0, REPO, "v1"),
                     FARM_EAUTH);
    fprintf(stderr, "expected refusal: %s\n", farm_error_last());
    assert_non_null(strstr(farm_error_last(), want));
    assert_non_null(strstr(farm_error_last(), REPO));
    assert_null(strstr(farm_error_last(), "not-the-password"));
    farm_registry_destroy(&reg);

    /* right credentials from $DOCKER_CONFIG: the full push path */
    s_docker_config(fx, "good", USER, PASS);
    reg = farm_registry_new(fx->host, &opts);
    assert_non_null(reg);
    s_push_image(fx, reg);
    farm_registry_destroy(&reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_anonymous_push, s_setup_anon, s_teardown),
        cmocka_unit_test_setup_teardown(test_basic_auth, s_setup_auth, s_teardown),
    };
    if (getenv("FARM_TEST_VERBOSE"))
        farm_log_init("test", FARM_LOG_DEBUG);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
