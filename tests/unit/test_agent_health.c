/* SPDX-License-Identifier: Apache-2.0 */
/* Whose fault a failed job is (agent/health.h): a node-local cause in the log or the
 * error, a Dockerfile's failing step or syntax error, or nothing recognisable; the error
 * line a person reads; and which failing health checks make a node unhealthy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "agent/health.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_disk_full_is_the_node(void **state)
{
    /* buildah (Go) says it in lower case, a RUN step's C tool capitalised */
    const char *go[] = {
        "STEP 1/3: FROM busybox",
        "Copying blob sha256:abc",
        "Error: writing blob: storing blob to file \"/b/storage/x\": write /b/storage/x: "
        "no space left on device",
    };
    const char *c[] = {
        "STEP 2/2: RUN dd if=/dev/zero of=/big bs=1M count=50",
        "dd: error writing '/big': No space left on device",
        "error building at STEP \"RUN dd if=/dev/zero of=/big bs=1M count=50\": error while "
        "running runtime: exit status 1",
    };
    char cause[FARM_HEALTH_CAUSE_MAX];
    (void)state;
    assert_int_equal(farm_health_classify(cause, sizeof cause,
                                          "buildah build for linux/amd64 exited with status 125",
                                          go, N(go)),
                     FARM_FAULT_NODE);
    assert_string_equal(cause, "No space left on device");
    /* a RUN step that died of a full disk: the node's cause wins over the step's */
    assert_int_equal(farm_health_classify(cause, sizeof cause, "x", c, N(c)), FARM_FAULT_NODE);
    assert_string_equal(cause, "No space left on device");
    /* the agent's own error (no log at all) */
    assert_int_equal(farm_health_classify(cause, sizeof cause,
                                          "job directory: mkdir /w/jobs/job-1: No space left "
                                          "on device", NULL, 0),
                     FARM_FAULT_NODE);
    assert_int_equal(farm_health_classify(cause, sizeof cause, "quota: Disk quota exceeded",
                                          NULL, 0),
                     FARM_FAULT_NODE);
    assert_string_equal(cause, "Disk quota exceeded");
}

static void test_storage_and_sandbox_are_the_node(void **state)
{
    const char *storage[] = {"Error: creating build container: layer not known"};
    const char *userns[] = {"error running container: cannot set up namespace using "
                            "\"/usr/bin/newuidmap\": exit status 1"};
    char cause[FARM_HEALTH_CAUSE_MAX];
    (void)state;
    assert_int_equal(farm_health_classify(cause, sizeof cause, "e", storage, 1), FARM_FAULT_NODE);
    assert_string_equal(cause, "builder storage is broken (layer not known)");
    assert_int_equal(farm_health_classify(cause, sizeof cause, "e", userns, 1), FARM_FAULT_NODE);
    assert_string_equal(cause, "the sandbox could not be set up (user namespace)");
}

static void test_dockerfile_failures_are_the_build(void **state)
{
    const char *run[] = {
        "STEP 2/2: RUN false",
        "error building at STEP \"RUN false\": error while running runtime: exit status 1",
        "Error: error building at STEP \"RUN false\": error while running runtime: exit status 1",
    };
    const char *syntax[] = {
        "Error: error parsing Dockerfile: Dockerfile parse error line 3: unknown instruction: "
        "FORM",
    };
    const char *quiet[] = {"farm: building linux/amd64 with buildah", "something else"};
    char cause[FARM_HEALTH_CAUSE_MAX];
    (void)state;
    assert_int_equal(farm_health_classify(cause, sizeof cause,
                                          "buildah build for linux/amd64 exited with status 1",
                                          run, N(run)),
                     FARM_FAULT_BUILD);
    assert_string_equal(cause, "step \"RUN false\" failed (exit status 1)");
    assert_int_equal(farm_health_classify(cause, sizeof cause, "e", syntax, N(syntax)),
                     FARM_FAULT_BUILD);
    assert_string_equal(cause, "Dockerfile syntax error: Dockerfile parse error line 3: unknown "
                               "instruction: FORM");
    /* nothing recognisable: no cause, not the node's */
    assert_int_equal(farm_health_classify(cause, sizeof cause, "e", quiet, N(quiet)),
                     FARM_FAULT_UNKNOWN);
    assert_string_equal(cause, "");
    assert_int_equal(farm_health_classify(cause, sizeof cause, "e", NULL, 0), FARM_FAULT_UNKNOWN);
}

/* A step that prints a node-local cause is suspected (the checks decide); without the
 * node's cause the build's is what the error names. */
static void test_build_cause_alone(void **state)
{
    const char *liar[] = {
        "STEP 2/2: RUN echo 'No space left on device' >&2; false",
        "No space left on device",
        "Error: building at STEP \"RUN echo 'No space left on device' >&2; false\": while "
        "running runtime: exit status 1",
    };
    char cause[FARM_HEALTH_CAUSE_MAX];
    (void)state;
    assert_int_equal(farm_health_classify(cause, sizeof cause, "e", liar, N(liar)),
                     FARM_FAULT_NODE);
    assert_int_equal(farm_health_classify_build(cause, sizeof cause, "e", liar, N(liar)),
                     FARM_FAULT_BUILD);
    assert_string_equal(cause, "step \"RUN echo 'No space left on device' >&2; false\" failed "
                               "(exit status 1)");
    {
        const char *quoted[] = {"Error: building at STEP \"RUN echo \"a: b\" && false\": while "
                                "running runtime: exit status 3"};
        assert_int_equal(farm_health_classify_build(cause, sizeof cause, "e", quoted, 1),
                         FARM_FAULT_BUILD);
        assert_string_equal(cause, "step \"RUN echo \"a: b\" && false\" failed (exit status 3)");
    }
    assert_int_equal(farm_health_classify_build(cause, sizeof cause, "e", liar, 2),
                     FARM_FAULT_UNKNOWN);
    assert_string_equal(cause, "");
}

static void test_error_line_names_cause_and_node(void **state)
{
    char out[512], small[24];
    (void)state;
    farm_health_error(out, sizeof out, "No space left on device", "x86-1",
                      "buildah build for linux/amd64 exited with status 1");
    assert_string_equal(out, "No space left on device on node x86-1 (buildah build for "
                             "linux/amd64 exited with status 1)");
    farm_health_error(out, sizeof out, "", "x86-1", "the worker failed");
    assert_string_equal(out, "the worker failed");
    farm_health_error(small, sizeof small, "No space left on device", "x86-1", "long");
    assert_int_equal(strlen(small), sizeof small - 1); /* cut, and says so */
    assert_string_equal(small + strlen(small) - 3, "...");
}

static farm_check_item_t *s_add(farm_check_report_t *r, farm_check_level_t level, int essential,
                                const char *what, const char *detail)
{
    farm_check_item_t *it = &r->items[r->n++];
    memset(it, 0, sizeof *it);
    it->level = level;
    it->essential = essential;
    snprintf(it->what, sizeof it->what, "%s", what);
    snprintf(it->detail, sizeof it->detail, "%s", detail);
    return it;
}

static void test_verdict(void **state)
{
    static farm_check_report_t r;
    char cause[FARM_HEALTH_CAUSE_MAX];
    (void)state;
    r.n = 0;
    s_add(&r, FARM_CHECK_OK, 0, "builder", "buildah version 1.28.2");
    s_add(&r, FARM_CHECK_WARN, 0, "storage driver", "vfs copies every layer");
    s_add(&r, FARM_CHECK_FAIL, 0, "emulation linux/arm64", "qemu missing"); /* not this */
    s_add(&r, FARM_CHECK_FAIL, 0, "clock", "no answer");                    /* nor this */
    assert_int_equal(farm_health_verdict(cause, sizeof cause, &r, 1), 0);
    assert_string_equal(cause, "");
    snprintf(s_add(&r, FARM_CHECK_FAIL, 0, "disk (builder storage)",
                   "/b: 0.0 GiB free (under --min-free)")->fix,
             FARM_CHECK_TEXT, "free space on that filesystem");
    assert_int_equal(farm_health_verdict(cause, sizeof cause, &r, 1), 1);
    assert_string_equal(cause, "disk (builder storage): /b: 0.0 GiB free (under --min-free); "
                               "fix: free space on that filesystem");
    r.n = 0;
    s_add(&r, FARM_CHECK_FAIL, 1, "user namespaces", "unshare --user failed");
    assert_int_equal(farm_health_verdict(cause, sizeof cause, &r, 1), 1);
    assert_string_equal(cause, "user namespaces: unshare --user failed");
    /* without the sandbox (--isolation chroot) its essentials do not stop builds */
    assert_int_equal(farm_health_verdict(cause, sizeof cause, &r, 0), 0);
    r.n = 0;
    s_add(&r, FARM_CHECK_FAIL, 0, "builder", "buildah not found");
    assert_int_equal(farm_health_verdict(cause, sizeof cause, &r, 1), 1);
}

/* The real checks on a made-up agent: a work dir on this host's disk passes with a small
 * --min-free and fails when --min-free asks for more than any disk holds. */
static void test_check_on_this_host(void **state)
{
    char dir[] = "/tmp/farm-health-XXXXXX", cause[FARM_HEALTH_CAUSE_MAX];
    char *plats[] = {"linux/amd64"};
    farm_agent_opts_t o = {.name = "n", .platforms = plats, .n_platforms = 1, .slots = 1,
                           .builder = {.builder = "buildah", .isolation = "chroot"}};
    (void)state;
    assert_non_null(mkdtemp(dir));
    o.work_dir = dir;
    o.min_free = 1ULL << 60; /* an exabyte: no disk has it */
    assert_int_equal(farm_health_check(cause, sizeof cause, &o), 1);
    assert_non_null(strstr(cause, "disk (work dir): "));
    assert_non_null(strstr(cause, dir));
    o.min_free = 1;
    assert_int_equal(farm_health_check(cause, sizeof cause, &o), 0);
    assert_string_equal(cause, "");
    rmdir(dir);
}

/* The worker's own error that the push target could not be reached at all, told apart
 * from answers it did not like and from other registries. */
static void test_registry_unreachable_in_the_error(void **state)
{
    (void)state;
    assert_true(farm_health_registry("push to 127.0.0.1:5000/team/app: registry 127.0.0.1:5000: "
                                     "HEAD http://127.0.0.1:5000/v2/: Failed to connect to "
                                     "127.0.0.1 port 5000 after 0 ms: Couldn't connect to server",
                                     "127.0.0.1:5000"));
    assert_true(farm_health_registry("registry reg.example:443: GET https://reg.example/v2/: "
                                     "Could not resolve host: reg.example", "reg.example:443"));
    assert_false(farm_health_registry("push to r/x: registry r: PUT https://r/v2/x: 401 "
                                      "Unauthorized", "r"));
    assert_false(farm_health_registry("registry other:5000: Couldn't connect to server",
                                      "127.0.0.1:5000"));
    assert_false(farm_health_registry("Couldn't connect to server", "127.0.0.1:5000"));
    assert_false(farm_health_registry("registry r: Couldn't connect", NULL));
}

/* The probe from this node: a port that listens answers, a closed one does not. */
static void test_registry_probe(void **state)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char reg[64], cause[FARM_HEALTH_CAUSE_MAX];
    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    snprintf(reg, sizeof reg, "127.0.0.1:%d", ntohs(a.sin_port));
    assert_int_equal(farm_health_probe(cause, sizeof cause, reg, 2000), 0);
    assert_string_equal(cause, "");
    close(fd); /* nothing listens there now */
    assert_int_equal(farm_health_probe(cause, sizeof cause, reg, 2000), 1);
    assert_non_null(strstr(cause, "unreachable from this node: connect: Connection refused"));
    assert_non_null(strstr(cause, reg));
    assert_int_equal(farm_health_probe(cause, sizeof cause, "bad host:x:y", 100), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disk_full_is_the_node),
        cmocka_unit_test(test_storage_and_sandbox_are_the_node),
        cmocka_unit_test(test_dockerfile_failures_are_the_build),
        cmocka_unit_test(test_build_cause_alone),
        cmocka_unit_test(test_error_line_names_cause_and_node),
        cmocka_unit_test(test_verdict),
        cmocka_unit_test(test_check_on_this_host),
        cmocka_unit_test(test_registry_unreachable_in_the_error),
        cmocka_unit_test(test_registry_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
