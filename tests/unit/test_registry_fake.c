/* SPDX-License-Identifier: Apache-2.0 */
/* common/registry against tests/data/registry/fake_registry.py: Bearer tokens from a token
 * server (Basic credentials from a docker config), 503 + Retry-After, a relative upload
 * Location with its own query, an upload PUT that fails once (restart from POST), a lying
 * Docker-Content-Digest, HEAD without a digest, an oversized manifest. And a plain HTTP
 * server met with TLS: refused at the first answer, with the insecure: hint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/registry.h"

#define FAKE FARM_TEST_DATA "/registry/fake_registry.py"
#define REPO "fake/repo"

typedef struct {
    char dir[64];
    char host[64];
    char log[128];
    pid_t pid;
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    char portfile[128], cfg[160];
    struct timespec t0, now;
    FILE *f;

    if (!fx)
        return -1;
    *state = fx;
    fx->pid = -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/farm-test-fakereg-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(portfile, sizeof portfile, "%s/port", fx->dir);
    snprintf(fx->log, sizeof fx->log, "%s/requests.log", fx->dir);
    fx->pid = fork();
    if (fx->pid < 0)
        return -1;
    if (fx->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execlp("python3", "python3", FAKE, portfile, fx->log, (char *)NULL);
        fprintf(stderr, "cannot run python3 %s: %s\n", FAKE, strerror(errno));
        _exit(127);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (access(portfile, R_OK) != 0) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (waitpid(fx->pid, NULL, WNOHANG) == fx->pid || now.tv_sec - t0.tv_sec > 20) {
            fprintf(stderr, "fake registry (python3 %s) did not start\n", FAKE);
            return -1;
        }
        usleep(20 * 1000);
    }
    f = fopen(portfile, "r");
    if (!f)
        return -1;
    {
        int port = 0;
        if (fscanf(f, "%d", &port) != 1)
            port = 0;
        fclose(f);
        snprintf(fx->host, sizeof fx->host, "127.0.0.1:%d", port);
    }
    /* "tokuser:tok pass:1" */
    snprintf(cfg, sizeof cfg, "%s/config.json", fx->dir);
    f = fopen(cfg, "w");
    if (!f)
        return -1;
    fprintf(f, "{\"auths\":{\"http://%s/v1/\":{\"auth\":\"dG9rdXNlcjp0b2sgcGFzczox\"}}}",
            fx->host);
    fclose(f);
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    if (!fx)
        return 0;
    if (fx->pid > 0) {
        kill(fx->pid, SIGTERM);
        waitpid(fx->pid, NULL, 0);
    }
    farm_fs_rmtree(fx->dir);
    free(fx);
    return 0;
}

/* Lines of the request log that contain every one of the given strings. */
static int s_count(const fixture_t *fx, const char *a, const char *b)
{
    char line[2048];
    int n = 0;
    FILE *f = fopen(fx->log, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, a) && (!b || strstr(line, b)))
            n++;
    fclose(f);
    return n;
}

static void test_bearer_and_quirks(void **state)
{
    fixture_t *fx = *state;
    char cfg[160], path[160], d[FARM_DIGEST_STRLEN], md[FARM_DIGEST_STRLEN], mt[128];
    const char blob[] = "some layer bytes";
    const char manifest[] = "{\"schemaVersion\":2}";
    farm_registry_opts_t opts = {.insecure = 1, .max_retries = 3, .timeout_s = 20};
    farm_registry_t *reg;
    struct timespec t0, t1;
    char *body = NULL;
    size_t len = 0;
    uint64_t size = 0;
    int skipped = -1, rc;
    FILE *f;

    snprintf(cfg, sizeof cfg, "%s/config.json", fx->dir);
    opts.docker_config = cfg;
    reg = farm_registry_new(fx->host, &opts);
    assert_non_null(reg);

    /* ping: 401 Bearer -> token (Basic creds) -> 503 Retry-After: 1 -> 200 */
    unsigned long retries0 = farm_registry_retries_total();
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = farm_registry_ping(reg);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc != 0)
        fail_msg("ping: %s", farm_error_last());
    assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 950);
    assert_int_equal(s_count(fx, "GET /token", " 200 token"), 1);
    assert_int_equal(s_count(fx, "GET /v2/ ", " 503 "), 1);
    assert_int_equal(s_count(fx, "GET /v2/ ", " 200 bearer farm/"), 1);
    /* the 503 retried is counted (the index-push helper reports it as a metric) */
    assert_int_equal(farm_registry_retries_total() - retries0, 1);

    /* push: HEAD 404, POST 503 (retried), 202 relative Location with ?state=, PUT 500
     * (upload restarted from a fresh POST), PUT 201 */
    snprintf(path, sizeof path, "%s/blob", fx->dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fwrite(blob, 1, strlen(blob), f);
    fclose(f);
    farm_digest_buffer(d, blob, strlen(blob));
    rc = farm_registry_blob_push_file(reg, &skipped, REPO, d, path);
    if (rc != 0)
        fail_msg("blob push: %s", farm_error_last());
    assert_int_equal(skipped, 0);
    assert_int_equal(s_count(fx, "POST /v2/fake/repo/blobs/uploads/", " 202 "), 2);
    assert_int_equal(s_count(fx, "PUT /upload/abc?state=xyz&digest=sha256", " 500 "), 1);
    assert_int_equal(s_count(fx, "PUT /upload/abc?state=xyz&digest=sha256", " 201 "), 1);
    /* one token for the push scope, reused for every request of the push */
    assert_int_equal(s_count(fx, "GET /token", "pull%2Cpush"), 1);
    assert_int_equal(farm_registry_blob_push_file(reg, &skipped, REPO, d, path), 0);
    assert_int_equal(skipped, 1);
    assert_int_equal(farm_registry_blob_exists(reg, &size, REPO, d), 0);
    assert_int_equal(size, strlen(blob));
    assert_int_equal(s_count(fx, "GET /token", "pull "), 1); /* pull-only scope token */

    /* manifest put; HEAD answers without Docker-Content-Digest: client GETs and hashes */
    assert_int_equal(farm_registry_manifest_put(reg, md, REPO, "t1", FARM_MEDIA_OCI_MANIFEST,
                                                manifest, strlen(manifest)), 0);
    memset(d, 0, sizeof d);
    assert_int_equal(farm_registry_manifest_head(reg, d, &size, mt, sizeof mt, REPO, "t1"), 0);
    assert_string_equal(d, md);
    assert_int_equal(size, strlen(manifest));
    assert_string_equal(mt, FARM_MEDIA_OCI_MANIFEST);

    /* a registry that reports another digest than the bytes have is caught */
    assert_true(farm_registry_manifest_put(reg, NULL, REPO, "lying", FARM_MEDIA_OCI_MANIFEST,
                                           manifest, strlen(manifest)) < 0);
    assert_non_null(strstr(farm_error_last(), "sha256:0000"));
    assert_non_null(strstr(farm_error_last(), md));

    /* manifests are bounded at 4 MiB */
    assert_int_equal(farm_registry_manifest_get(reg, &body, &len, NULL, 0, REPO, "big"),
                     FARM_ETOOBIG);
    assert_null(body);
    assert_int_equal(farm_registry_manifest_get(reg, &body, &len, NULL, 0, REPO, "absent"),
                     FARM_ENOTFOUND);
    farm_registry_destroy(&reg);
}

static void test_token_denied(void **state)
{
    fixture_t *fx = *state;
    char cfg[160];
    farm_registry_opts_t opts = {.insecure = 1, .max_retries = 1, .timeout_s = 20};
    farm_registry_t *reg;
    FILE *f;

    snprintf(cfg, sizeof cfg, "%s/wrong.json", fx->dir);
    f = fopen(cfg, "w");
    assert_non_null(f);
    /* "tokuser:wrong" */
    fprintf(f, "{\"auths\":{\"%s\":{\"auth\":\"dG9rdXNlcjp3cm9uZw==\"}}}", fx->host);
    fclose(f);
    opts.docker_config = cfg;
    reg = farm_registry_new(fx->host, &opts);
    assert_non_null(reg);
    assert_int_equal(farm_registry_blob_exists(reg, NULL, REPO, "sha256:" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
                     FARM_EAUTH);
    fprintf(stderr, "expected refusal: %s\n", farm_error_last());
    assert_non_null(strstr(farm_error_last(), "docker login"));
    assert_non_null(strstr(farm_error_last(), fx->host));
    assert_null(strstr(farm_error_last(), "wrong"));
    farm_registry_destroy(&reg);
}

/* A build's login (explicit_creds): the docker config is never consulted, whatever it
 * holds; the given login is used, and without one the client goes anonymous. */
static void test_explicit_creds(void **state)
{
    fixture_t *fx = *state;
    char good[160], wrong[160];
    const char *d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    farm_registry_creds_t ok = {.username = "tokuser", .secret = "tok pass:1"};
    farm_registry_creds_t bad = {.username = "tokuser", .secret = "wrong"};
    farm_registry_opts_t opts = {.insecure = 1, .max_retries = 1, .timeout_s = 20,
                                 .explicit_creds = 1};
    farm_registry_t *reg;
    FILE *f;
    int rc;

    snprintf(good, sizeof good, "%s/config.json", fx->dir);
    snprintf(wrong, sizeof wrong, "%s/wrong2.json", fx->dir);
    f = fopen(wrong, "w");
    assert_non_null(f);
    fprintf(f, "{\"auths\":{\"%s\":{\"auth\":\"dG9rdXNlcjp3cm9uZw==\"}}}", fx->host);
    fclose(f);
    /* the host's config has the right login, the build's is wrong: refused */
    opts.docker_config = good;
    opts.creds = &bad;
    reg = farm_registry_new(fx->host, &opts);
    assert_non_null(reg);
    assert_int_equal(farm_registry_blob_exists(reg, NULL, REPO, d), FARM_EAUTH);
    assert_null(strstr(farm_error_last(), "wrong"));
    farm_registry_destroy(&reg);
    /* no login for the build: anonymous, even though the host's config has one */
    opts.creds = NULL;
    reg = farm_registry_new(fx->host, &opts);
    assert_non_null(reg);
    assert_int_equal(farm_registry_blob_exists(reg, NULL, REPO, d), FARM_EAUTH);
    farm_registry_destroy(&reg);
    /* the build's right login works with a wrong host config */
    opts.docker_config = wrong;
    opts.creds = &ok;
    reg = farm_registry_new(fx->host, &opts);
    assert_non_null(reg);
    rc = farm_registry_blob_exists(reg, NULL, REPO, d);
    if (rc == FARM_EAUTH)
        fail_msg("explicit login refused: %s", farm_error_last());
    farm_registry_destroy(&reg);
}

/* A plain HTTP server in a child: answers 400 to whatever arrives, writes a byte to
 * count_fd per connection. Its port, or -1. */
static int s_plain_server(pid_t *out_pid, int count_fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int s = socket(AF_INET, SOCK_STREAM, 0);

    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    if ((*out_pid = fork()) < 0)
        return -1;
    if (*out_pid == 0) {
        static const char answer[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                     "Connection: close\r\n\r\n";
        char buf[4096];
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;) {
            int c = accept(s, NULL, NULL);
            if (c < 0)
                continue;
            if (write(count_fd, "c", 1) != 1 || read(c, buf, sizeof buf) < 0 ||
                write(c, answer, sizeof answer - 1) < 0) {
                /* the client went: it counted anyway */
            }
            close(c);
        }
    }
    close(s);
    return ntohs(a.sin_port);
}

/* TLS to a registry that speaks plain HTTP: OpenSSL reads "HTTP/1.1 400" as a broken
 * record. Asking again gets the same answer, so the push fails at its first connection
 * (not after max_retries backed-off tries) with the farm.yaml line that fixes it. */
static void test_plain_http_is_not_retried(void **state)
{
    farm_registry_opts_t opts = {.insecure = 0, .max_retries = 4, .timeout_s = 20};
    char dir[] = "/tmp/farm-test-plainreg-XXXXXX", path[64], host[64], hint[128], digest[72];
    char counted[16];
    int fds[2], port, rc;
    ssize_t n;
    pid_t pid = -1;
    farm_registry_t *reg;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/blob", dir);
    assert_int_equal(farm_fs_write_atomic(path, "layer bytes", 11), 0);
    farm_digest_buffer(digest, "layer bytes", 11);
    assert_int_equal(pipe(fds), 0);
    port = s_plain_server(&pid, fds[1]);
    assert_true(port > 0);
    close(fds[1]);
    snprintf(host, sizeof host, "127.0.0.1:%d", port);
    reg = farm_registry_new(host, &opts);
    assert_non_null(reg);
    rc = farm_registry_blob_push_file(reg, NULL, REPO, digest, path);
    farm_registry_destroy(&reg);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    n = read(fds[0], counted, sizeof counted);
    close(fds[0]);
    farm_fs_rmtree(dir);
    assert_true(rc < 0);
    assert_int_not_equal(rc, FARM_ERETRY);
    snprintf(hint, sizeof hint, "list it in farm.yaml as registries: \"%s\": {insecure: true}",
             host);
    if (!strstr(farm_error_last(), "answers plain HTTP, not TLS") || !strstr(farm_error_last(), hint))
        fail_msg("no plain-HTTP hint in: %s", farm_error_last());
    assert_int_equal(n, 1); /* one connection: no retry */
}

/* Bad names are refused before anything is sent (no server listens on port 1). */
static void test_bad_arguments(void **state)
{
    farm_registry_t *reg = farm_registry_new("127.0.0.1:1", NULL);
    char *body = NULL;
    (void)state;
    assert_non_null(reg);
    assert_int_equal(farm_registry_manifest_head(reg, NULL, NULL, NULL, 0, REPO, NULL),
                     FARM_EINVALID);
    assert_int_equal(farm_registry_manifest_get(reg, &body, NULL, NULL, 0, REPO, "a/b"),
                     FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "a/b"));
    assert_int_equal(farm_registry_manifest_put(reg, NULL, "../etc", "t", FARM_MEDIA_OCI_MANIFEST,
                                                "{}", 2), FARM_EINVALID);
    assert_int_equal(farm_registry_blob_exists(reg, NULL, REPO, "sha256:abc"), FARM_EINVALID);
    assert_int_equal(farm_registry_blob_push_file(reg, NULL, REPO, NULL, "/dev/null"),
                     FARM_EINVALID);
    farm_registry_destroy(&reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bearer_and_quirks, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_token_denied, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_explicit_creds, s_setup, s_teardown),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_plain_http_is_not_retried),
    };
    if (getenv("FARM_TEST_VERBOSE"))
        farm_log_init("test", FARM_LOG_DEBUG);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
