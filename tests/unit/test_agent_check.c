/* SPDX-License-Identifier: Apache-2.0 */
/* farm-agent check's pure parts: /etc/subuid parsing (several users, numeric names,
 * comments, junk), the free range to suggest, binfmt_misc entries, the cgroup mode,
 * version numbers, clock skew and disk levels, the capability bounding set newuidmap
 * needs; and the report with made-up host files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent/args.h"
#include "agent/check.h"
#include "common/error.h"

static char s_dir[] = "/tmp/farm-test-check.XXXXXX";

static const char *s_file(const char *name, const char *text)
{
    static char path[8][256];
    static int next;
    char *p = path[next++ % 8];
    FILE *f;

    snprintf(p, 256, "%s/%s", s_dir, name);
    f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static int s_setup(void **state)
{
    (void)state;
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_subid_find(void **state)
{
    farm_subid_range_t r;
    const char *p = s_file("subuid",
                           "# comment line\n"
                           "alice:100000:65536\n"
                           "  \n"
                           "bob:165536:1000\n"
                           "999:300000:65536\n"
                           "bob:400000:70000\n"
                           "broken line\n"
                           "carol:x:65536\n"
                           "dave:500000:0\n"
                           "eve:-5:10\n");
    (void)state;
    assert_int_equal(farm_check_subid_find(&r, p, "alice", 1000), 1);
    assert_int_equal(r.start, 100000);
    assert_int_equal(r.count, 65536);
    /* several ranges: the largest */
    assert_int_equal(farm_check_subid_find(&r, p, "bob", 1001), 1);
    assert_int_equal(r.start, 400000);
    assert_int_equal(r.count, 70000);
    /* by uid number, with or without a name */
    assert_int_equal(farm_check_subid_find(&r, p, "farm", 999), 1);
    assert_int_equal(r.start, 300000);
    assert_int_equal(farm_check_subid_find(&r, p, NULL, 999), 1);
    /* absent, malformed, zero-sized or negative entries are no range */
    assert_int_equal(farm_check_subid_find(&r, p, "nobody", 4242), 0);
    assert_int_equal(farm_check_subid_find(&r, p, "carol", 4243), 0);
    assert_int_equal(farm_check_subid_find(&r, p, "dave", 4244), 0);
    assert_int_equal(farm_check_subid_find(&r, p, "eve", 4245), 0);
    /* a name is not a prefix match */
    assert_int_equal(farm_check_subid_find(&r, p, "ali", 4246), 0);
    assert_int_equal(farm_check_subid_find(&r, "/nonexistent/subuid", "alice", 1),
                     FARM_ENOTFOUND);
    assert_non_null(strstr(farm_error_last(), "/nonexistent/subuid"));
}

static void test_subid_free(void **state)
{
    const char *a = s_file("a", "alice:100000:65536\nbob:165536:65536\n");
    const char *b = s_file("b", "# x\ncarol:231072:10\n");
    const char *paths[] = {a, b};
    const char *none[] = {"/nonexistent"};
    (void)state;
    assert_int_equal(farm_check_subid_free(none, 1, 65536), 100000);
    assert_int_equal(farm_check_subid_free(paths, 1, 65536), 231072);
    assert_int_equal(farm_check_subid_free(paths, 2, 65536), 231082);
    /* a gap that fits is used */
    b = s_file("c", "x:300000:5\n");
    paths[1] = b;
    assert_int_equal(farm_check_subid_free(paths, 2, 1000), 231072);
}

static void test_binfmt(void **state)
{
    farm_binfmt_t b;
    (void)state;
    assert_int_equal(farm_check_binfmt_parse(&b,
                                             "enabled\n"
                                             "interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"
                                             "flags: PF\n"
                                             "offset 0\n"
                                             "magic 7f454c46\n"
                                             "mask ffffffff\n"), 0);
    assert_true(b.enabled);
    assert_string_equal(b.interpreter, "/usr/libexec/qemu-binfmt/aarch64-binfmt-P");
    assert_non_null(strchr(b.flags, 'F'));
    /* qemu-user-binfmt's entries: no F */
    assert_int_equal(farm_check_binfmt_parse(&b, "disabled\ninterpreter /usr/bin/qemu-arm\n"
                                                 "flags: OC\n"), 0);
    assert_false(b.enabled);
    assert_null(strchr(b.flags, 'F'));
    assert_int_equal(farm_check_binfmt_parse(&b, "enabled\ninterpreter /x\nflags: \n"), 0);
    assert_string_equal(b.flags, "");
    assert_int_equal(farm_check_binfmt_parse(&b, "garbage\n"), FARM_EINVALID);
    assert_int_equal(farm_check_binfmt_parse(&b, ""), FARM_EINVALID);
}

static void test_qemu_arch(void **state)
{
    farm_platform_t p;
    (void)state;
    assert_int_equal(farm_platform_parse(&p, "linux/arm64"), 0);
    assert_string_equal(farm_check_qemu_arch(&p), "aarch64");
    assert_int_equal(farm_platform_parse(&p, "linux/arm/v7"), 0);
    assert_string_equal(farm_check_qemu_arch(&p), "arm");
    assert_int_equal(farm_platform_parse(&p, "linux/amd64"), 0);
    assert_string_equal(farm_check_qemu_arch(&p), "x86_64");
    assert_int_equal(farm_platform_parse(&p, "linux/riscv64"), 0);
    assert_string_equal(farm_check_qemu_arch(&p), "riscv64");
}

static void test_cgroup_mode(void **state)
{
    farm_cgroup_mode_t m;
    (void)state;
    assert_int_equal(farm_check_cgroup_mode_of(0x63677270L, 0), FARM_CGROUP_V2);
    assert_int_equal(farm_check_cgroup_mode_of(0x63677270L, 1), FARM_CGROUP_V2);
    assert_int_equal(farm_check_cgroup_mode_of(0x01021994L, 1), FARM_CGROUP_HYBRID);
    assert_int_equal(farm_check_cgroup_mode_of(0x01021994L, 0), FARM_CGROUP_V1);
    assert_int_equal(farm_check_cgroup_mode_of(0x27e0ebL, 0), FARM_CGROUP_V1);
    assert_non_null(strstr(farm_check_cgroup_mode_name(FARM_CGROUP_HYBRID), "hybrid"));
    /* the real one reads; a missing directory is an error, not a guess */
    assert_int_equal(farm_check_cgroup_mode(&m, "/sys/fs/cgroup"), 0);
    assert_true(farm_check_cgroup_mode(&m, "/nonexistent/cgroup") < 0);
}

static void test_versions(void **state)
{
    char v[32];
    (void)state;
    assert_int_equal(farm_check_version_find(v, sizeof v, "buildah version 1.28.2 (image-spec "
                                                          "1.1.0-rc2, runtime-spec 1.0.2-dev)"), 0);
    assert_string_equal(v, "1.28.2");
    assert_int_equal(farm_check_version_find(v, sizeof v, "runc version 1.1.5+ds1"), 0);
    assert_string_equal(v, "1.1.5");
    assert_int_equal(farm_check_version_find(v, sizeof v, "6.1.0-13-amd64"), 0);
    assert_string_equal(v, "6.1.0");
    assert_int_equal(farm_check_version_find(v, sizeof v, "x86_64 v2 build 7"), FARM_ENOTFOUND);
    assert_int_equal(farm_check_version_find(v, 4, "1.28.2"), FARM_ETOOBIG);
    assert_true(farm_check_version_cmp("1.27.9", "1.28") < 0);
    assert_true(farm_check_version_cmp("1.28", "1.28.0") == 0);
    assert_true(farm_check_version_cmp("1.28.2", "1.28") > 0);
    assert_true(farm_check_version_cmp("1.100", "1.28") > 0); /* numeric, not text */
    assert_true(farm_check_version_cmp("5.10.0", "5.13") < 0);
    assert_true(farm_check_version_cmp("6.18.44", "5.13") > 0);
}

static void test_skew_and_disk(void **state)
{
    const unsigned long long G = 1ULL << 30;
    (void)state;
    assert_int_equal(farm_check_skew_ms(10500, 10000, 10200), 400);
    assert_int_equal(farm_check_skew_ms(9000, 10000, 10200), -1100);
    assert_int_equal(farm_check_skew_level(1999), FARM_CHECK_OK);
    assert_int_equal(farm_check_skew_level(-2001), FARM_CHECK_WARN);
    assert_int_equal(farm_check_skew_level(30001), FARM_CHECK_FAIL);
    assert_int_equal(farm_check_skew_level(-30001), FARM_CHECK_FAIL);
    assert_int_equal(farm_check_disk_level(G - 1, 0), FARM_CHECK_FAIL);
    assert_int_equal(farm_check_disk_level(5 * G, 1 * G), FARM_CHECK_WARN);  /* under 10 GiB */
    assert_int_equal(farm_check_disk_level(15 * G, 20 * G), FARM_CHECK_WARN); /* under the cache */
    assert_int_equal(farm_check_disk_level(25 * G, 20 * G), FARM_CHECK_OK);
}

/* The report over made-up host files: the fixes a person reads. */
/* /proc/self/status's CapBnd and NoNewPrivs, and what newuidmap needs of the bounding set */
static void test_caps(void **state)
{
    uint64_t bnd = 0;
    int nnp = -1;
    char names[128];
    /* as a systemd unit's CapabilityBoundingSet=CAP_SETUID CAP_SETGID leaves it */
    const char *unit = "Name:\tfarm-agent\nUmask:\t0022\nCapInh:\t0000000000000000\n"
                       "CapBnd:\t00000000000000c0\nCapAmb:\t0000000000000000\n"
                       "NoNewPrivs:\t0\nSeccomp:\t0\n";

    (void)state;
    assert_int_equal(farm_check_status_parse(&bnd, &nnp, unit), 0);
    assert_int_equal(bnd, 0xc0);
    assert_int_equal(nnp, 0);
    assert_int_equal(farm_check_status_parse(&bnd, &nnp,
                                             "CapBnd:\t000001ffffffffff\nNoNewPrivs:\t1\n"), 0);
    assert_int_equal(bnd, 0x1ffffffffffULL);
    assert_int_equal(nnp, 1);
    /* a missing or garbled line is an error, not an empty set */
    assert_true(farm_check_status_parse(&bnd, &nnp, "NoNewPrivs:\t0\n") < 0);
    assert_true(farm_check_status_parse(&bnd, &nnp, "CapBnd:\t00c0\n") < 0);
    assert_true(farm_check_status_parse(&bnd, &nnp, "CapBnd:\tzz\nNoNewPrivs:\t0\n") < 0);
    assert_true(farm_check_status_parse(&bnd, &nnp, "CapBnd:\t00c0\nNoNewPrivs:\t2\n") < 0);
    /* "CapBndX:" is another field */
    assert_true(farm_check_status_parse(&bnd, &nnp, "CapBndX:\t00c0\nNoNewPrivs:\t0\n") < 0);

    /* setuid-root newuidmap: CAP_SETUID and CAP_SETGID are not enough */
    farm_check_caps_text(names, sizeof names, farm_check_idmap_caps_missing(0xc0, 1));
    assert_string_equal(names, "CAP_DAC_OVERRIDE CAP_SYS_ADMIN");
    assert_int_equal(farm_check_idmap_caps_missing(0xc0 | (1 << 1) | (1 << 21), 1), 0);
    assert_int_equal(farm_check_idmap_caps_missing(0x1ffffffffffULL, 1), 0);
    /* with file capabilities the agent's user stays the namespace's owner */
    assert_int_equal(farm_check_idmap_caps_missing(0xc0, 0), 0);
    farm_check_caps_text(names, sizeof names, farm_check_idmap_caps_missing(0x80, 0));
    assert_string_equal(names, "CAP_SETGID");
    farm_check_caps_text(names, sizeof names, farm_check_idmap_caps_missing(0, 1));
    assert_string_equal(names, "CAP_SETUID CAP_SETGID CAP_DAC_OVERRIDE CAP_SYS_ADMIN");
    /* a short buffer is cut, never overrun */
    farm_check_caps_text(names, 12, farm_check_idmap_caps_missing(0, 1));
    assert_true(strlen(names) < 12);
}

static void test_report(void **state)
{
    farm_check_report_t *r = calloc(1, sizeof *r);
    farm_check_host_t h;
    farm_agent_args_t a;
    char *argv[] = {"check", "--isolation", "oci", "--platform", "linux/amd64", "--work-dir",
                    s_dir, "--builder", "/nonexistent/buildah", NULL};
    char *text = NULL;
    size_t len = 0;
    FILE *f;

    (void)state;
    assert_non_null(r);
    assert_int_equal(farm_agent_args_parse(&a, 9, argv, 1), 0);
    farm_check_host_default(&h);
    h.subuid = s_file("rsubuid", "farm:100000:1000\n");
    h.subgid = s_file("rsubgid", "other:100000:65536\n");
    h.proc_sys = s_dir; /* no user/max_user_namespaces here */
    h.tun = "/nonexistent/tun";
    h.uid = 999;
    h.user = "farm";
    h.tmpdir = s_dir;
    /* under a unit whose bounding set keeps only CAP_SETUID and CAP_SETGID */
    h.status = s_file("status", "CapBnd:\t00000000000000c0\nNoNewPrivs:\t0\n");
    farm_check_run(r, &a.opts, NULL, NULL, &h, 0);
    f = open_memstream(&text, &len);
    farm_check_print(f, r);
    fclose(f);
    print_message("%s", text);
    assert_non_null(strstr(text, "FAIL  builder: /nonexistent/buildah not found"));
    assert_non_null(strstr(text, "FAIL  user namespaces: this kernel has no user namespaces"));
    assert_non_null(strstr(text, "WARN  subordinate uids: farm (uid 999) has only 1000 ids"));
    assert_non_null(strstr(text, "FAIL  subordinate gids: no range for farm (uid 999)"));
    assert_non_null(strstr(text, "fix: usermod --add-subuids 165536-231071 --add-subgids "
                                 "165536-231071 farm"));
    /* the id-map tools' real cause and the unit setting to change (on a host with
     * Debian's setuid-root newuidmap, as the lab's) */
    assert_non_null(strstr(text, "FAIL  id-map privileges: the capability bounding set "
                                 "(CapBnd 00000000000000c0"));
    assert_non_null(strstr(text, "lacks CAP_DAC_OVERRIDE CAP_SYS_ADMIN"));
    assert_non_null(strstr(text, "fix: under systemd: CapabilityBoundingSet=CAP_SETUID "
                                 "CAP_SETGID CAP_DAC_OVERRIDE CAP_SYS_ADMIN in farm-agent.service"));
    assert_non_null(strstr(text, "FAIL  network: cannot open /nonexistent/tun read-write"));
    assert_non_null(strstr(text, "--network none"));
    /* builder storage is judged where the agent puts it (WORK_DIR/builder by default), not
     * at buildah's own default */
    {
        char want[2 * sizeof s_dir + 64];
        snprintf(want, sizeof want, "disk (builder storage): %s/builder (on %s)", s_dir, s_dir);
        assert_non_null(strstr(text, want));
        assert_null(strstr(text, "containers/storage"));
    }
    /* no_new_privs (which systemd sets for a User= unit with any seccomp option) makes
     * the setuid bit inert whatever the bounding set */
    {
        char *t2 = NULL;
        size_t l2 = 0;
        FILE *f2;
        h.status = s_file("status-nnp", "CapBnd:\t000001ffffffffff\nNoNewPrivs:\t1\n");
        farm_check_run(r, &a.opts, NULL, NULL, &h, 0);
        f2 = open_memstream(&t2, &l2);
        farm_check_print(f2, r);
        fclose(f2);
        assert_non_null(strstr(t2, "FAIL  id-map privileges: no_new_privs is set"));
        assert_non_null(strstr(t2, "NoNewPrivileges=no in farm-agent.service"));
        assert_null(strstr(t2, "lacks CAP_"));
        free(t2);
    }
    /* the sandbox's essentials are told apart from the rest */
    assert_true(farm_check_failures(r, 1) >= 3);
    assert_true(farm_check_failures(r, 0) > farm_check_failures(r, 1));
    free(text);
    farm_agent_args_free(&a);
    free(r);
}

/* farm_agent_args_parse's answer for a 3-word argv (what it parsed is freed) */
static int s_args_rc(char **argv, int check)
{
    farm_agent_args_t a;
    int rc = farm_agent_args_parse(&a, 3, argv, check);
    farm_agent_args_free(&a);
    return rc;
}

static void test_args(void **state)
{
    farm_agent_args_t a;
    char *ok[] = {"farm-agent", "--coordinator", "tcp://x:1", "--name", "n1", "--cache-max",
                  "20G", "--platform", "arm64,armhf", NULL};
    char *noname[] = {"farm-agent", "--coordinator", "tcp://x:1", NULL};
    char *bad[] = {"check", "--network", "host", NULL};
    char *neg[] = {"check", "--cache-max", "-5G", NULL};
    char *relwork[] = {"check", "--work-dir", "work", NULL};
    char *relroot[] = {"check", "--builder-root", "./b", NULL};
    (void)state;
    assert_int_equal(farm_agent_args_parse(&a, 9, ok, 0), 0);
    assert_int_equal(a.opts.cache_max, 20ULL << 30);
    assert_int_equal(a.opts.n_platforms, 2);
    assert_string_equal(a.opts.platforms[1], "linux/arm/v7");
    assert_string_equal(a.opts.builder.isolation, "oci");
    assert_string_equal(a.opts.builder.runtime, "runc");
    farm_agent_args_free(&a);
    /* the agent needs --name; check does not */
    assert_int_equal(s_args_rc(noname, 0), 2);
    assert_int_equal(s_args_rc(noname, 1), 0);
    assert_int_equal(s_args_rc(bad, 1), 2);
    assert_int_equal(s_args_rc(neg, 1), 2);
    /* relative dirs would name one place for the build (run in the context) and another
     * for the rest */
    assert_int_equal(s_args_rc(relwork, 1), 2);
    assert_int_equal(s_args_rc(relroot, 1), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subid_find),  cmocka_unit_test(test_subid_free),
        cmocka_unit_test(test_binfmt),      cmocka_unit_test(test_qemu_arch),
        cmocka_unit_test(test_cgroup_mode), cmocka_unit_test(test_versions),
        cmocka_unit_test(test_skew_and_disk), cmocka_unit_test(test_caps),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_args),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
