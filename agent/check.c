/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/check.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/str.h"
#include "common/wire.h"

#define S_CGROUP2_MAGIC 0x63677270L   /* linux/magic.h CGROUP2_SUPER_MAGIC */
#define S_TMPFS_MAGIC 0x01021994L     /* TMPFS_MAGIC */
#define S_BINFMT_MAGIC 0x42494e4dL    /* BINFMTFS_MAGIC */
#define S_TOOL_TIMEOUT_MS 10000       /* a --version that takes longer is broken */
#define S_CLOCK_TIMEOUT_MS 5000
#define S_GIB (1ULL << 30)
#define S_SUBIDS_WANTED 65536UL       /* uids 0..65535: what images use */
#define S_BUILDAH_MIN "1.28"          /* Debian 12's; older ones lack what the worker uses */
#define S_OVERLAY_ROOTLESS_KERNEL "5.13" /* unprivileged overlay mounts in a user namespace */
#define S_SKEW_WARN_MS 2000
#define S_SKEW_FAIL_MS 30000

/* ------------------------------------------------------------------ the pure parts */

int farm_check_subid_find(farm_subid_range_t *out, const char *path, const char *user,
                          unsigned long id)
{
    int rc;

    /* the sandbox's own parser (agent/sandbox.h), so both see the same range */
    memset(out, 0, sizeof *out);
    if (access(path, F_OK) != 0 && errno == ENOENT)
        return farm_error_set(FARM_ENOTFOUND, "%s does not exist", path);
    rc = farm_subid_find(out, path, user, id, S_SUBIDS_WANTED);
    if (rc == FARM_ENOTFOUND) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    return rc < 0 ? rc : 1;
}

unsigned long farm_check_subid_free(const char *const *paths, size_t n_paths,
                                    unsigned long count)
{
    unsigned long start = 100000;

    /* each pass moves start past one range it overlaps; it ends when none does */
    for (int moved = 1, passes = 0; moved && passes < 10000; passes++) {
        moved = 0;
        for (size_t i = 0; i < n_paths && !moved; i++) {
            FILE *f = fopen(paths[i], "re");
            char line[512];
            while (f && !moved && fgets(line, sizeof line, f)) {
                unsigned long s, c;
                if (line[0] == '#' || sscanf(line, "%*[^:]:%lu:%lu", &s, &c) != 2)
                    continue;
                if (start < s + c && s < start + count) {
                    start = s + c;
                    moved = 1;
                }
            }
            if (f)
                fclose(f);
        }
    }
    return start;
}

int farm_check_binfmt_parse(farm_binfmt_t *out, const char *text)
{
    const char *p = text;
    int seen = 0;

    memset(out, 0, sizeof *out);
    while (*p) {
        size_t n = strcspn(p, "\n");
        char line[512];

        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line - 1 ? n : sizeof line - 1), p);
        if (strcmp(line, "enabled") == 0) {
            out->enabled = 1;
            seen = 1;
        } else if (strcmp(line, "disabled") == 0) {
            out->enabled = 0;
            seen = 1;
        } else if (strncmp(line, "interpreter ", 12) == 0) {
            snprintf(out->interpreter, sizeof out->interpreter, "%.255s", line + 12);
        } else if (strncmp(line, "flags:", 6) == 0) {
            const char *f = line + 6;
            while (*f == ' ')
                f++;
            snprintf(out->flags, sizeof out->flags, "%.15s", f);
        }
        p += n;
        if (*p == '\n')
            p++;
    }
    if (!seen)
        return farm_error_set(FARM_EINVALID, "not a binfmt_misc entry (no enabled/disabled line)");
    return 0;
}

const char *farm_check_qemu_arch(const farm_platform_t *p)
{
    static const struct {
        const char *arch, *qemu;
    } map[] = {{"amd64", "x86_64"}, {"arm64", "aarch64"}, {"arm", "arm"},
               {"386", "i386"},     {"riscv64", "riscv64"}, {"s390x", "s390x"},
               {"ppc64le", "ppc64le"}, {"ppc64", "ppc64"}, {"mips64le", "mips64el"},
               {"mips64", "mips64"}, {"mipsle", "mipsel"}, {"mips", "mips"},
               {"loong64", "loongarch64"}};

    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(p->architecture, map[i].arch) == 0)
            return map[i].qemu;
    return NULL;
}

farm_cgroup_mode_t farm_check_cgroup_mode_of(long fs_magic, int has_unified)
{
    if (fs_magic == S_CGROUP2_MAGIC)
        return FARM_CGROUP_V2;
    if (fs_magic == S_TMPFS_MAGIC && has_unified)
        return FARM_CGROUP_HYBRID;
    return FARM_CGROUP_V1;
}

int farm_check_cgroup_mode(farm_cgroup_mode_t *out, const char *dir)
{
    struct statfs sf;
    struct stat st;
    char unified[FARM_PATH_MAX];

    if (statfs(dir, &sf) != 0)
        return farm_error_set(FARM_EIO, "statfs %s: %s", dir, strerror(errno));
    if (farm_path_join(unified, sizeof unified, dir, "unified") < 0)
        return FARM_ETOOBIG;
    *out = farm_check_cgroup_mode_of((long)sf.f_type,
                                     stat(unified, &st) == 0 && S_ISDIR(st.st_mode));
    return 0;
}

const char *farm_check_cgroup_mode_name(farm_cgroup_mode_t m)
{
    return m == FARM_CGROUP_V2 ? "cgroup v2" : m == FARM_CGROUP_HYBRID ? "cgroup v1 (hybrid)"
                                                                       : "cgroup v1";
}

int farm_check_version_find(char *out, size_t len, const char *text)
{
    for (const char *p = text; *p; p++) {
        size_t n = 0;
        int dots = 0;

        if (!isdigit((unsigned char)*p) || (p > text && (isalnum((unsigned char)p[-1]) ||
                                                         p[-1] == '.')))
            continue;
        while (isdigit((unsigned char)p[n]) || (p[n] == '.' && isdigit((unsigned char)p[n + 1])))
            dots += p[n++] == '.';
        if (dots == 0)
            continue;
        if (n >= len)
            return farm_error_set(FARM_ETOOBIG, "version too long");
        memcpy(out, p, n);
        out[n] = '\0';
        return 0;
    }
    if (len)
        out[0] = '\0';
    return farm_error_set(FARM_ENOTFOUND, "no version number in \"%.64s\"", text);
}

int farm_check_version_cmp(const char *a, const char *b)
{
    while (*a || *b) {
        unsigned long x = strtoul(a, (char **)&a, 10), y = strtoul(b, (char **)&b, 10);
        if (x != y)
            return x < y ? -1 : 1;
        if (*a == '.')
            a++;
        else if (*a)
            a = "";
        if (*b == '.')
            b++;
        else if (*b)
            b = "";
    }
    return 0;
}

long long farm_check_skew_ms(long long coordinator_ms, long long t_send, long long t_recv)
{
    return coordinator_ms - (t_send + t_recv) / 2;
}

farm_check_level_t farm_check_skew_level(long long skew_ms)
{
    long long a = skew_ms < 0 ? -skew_ms : skew_ms;
    return a > S_SKEW_FAIL_MS ? FARM_CHECK_FAIL : a > S_SKEW_WARN_MS ? FARM_CHECK_WARN
                                                                     : FARM_CHECK_OK;
}

farm_check_level_t farm_check_disk_level(unsigned long long free_bytes, unsigned long long want)
{
    return farm_check_disk_level_min(free_bytes, want, S_GIB);
}

farm_check_level_t farm_check_disk_level_min(unsigned long long free_bytes,
                                             unsigned long long want, unsigned long long min)
{
    if (free_bytes < min)
        return FARM_CHECK_FAIL;
    if (free_bytes < want || free_bytes < 10 * S_GIB)
        return FARM_CHECK_WARN;
    return FARM_CHECK_OK;
}

/* the capabilities newuidmap/newgidmap may need (linux/capability.h numbers) */
static const struct {
    int cap;
    const char *name;
} s_idmap_caps[] = {
    {CAP_SETUID, "CAP_SETUID"},
    {CAP_SETGID, "CAP_SETGID"},
    {CAP_DAC_OVERRIDE, "CAP_DAC_OVERRIDE"},
    {CAP_SYS_ADMIN, "CAP_SYS_ADMIN"},
};

#define S_CAP(c) ((uint64_t)1 << (c))

/* "Name:\tVALUE" of a status line: VALUE's start, or NULL when there is no such line */
static const char *s_status_field(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == ':')
            return p + n + 1;
    return NULL;
}

int farm_check_status_parse(uint64_t *out_capbnd, int *out_nnp, const char *text)
{
    const char *bnd = s_status_field(text, "CapBnd"), *nnp = s_status_field(text, "NoNewPrivs");
    char *end;
    unsigned long long v;

    if (!bnd || !nnp)
        return farm_error_set(FARM_EINVALID, "no %s line in the process status",
                              !bnd ? "CapBnd" : "NoNewPrivs");
    while (*bnd == ' ' || *bnd == '\t')
        bnd++;
    errno = 0;
    v = strtoull(bnd, &end, 16);
    if (end == bnd || errno || (*end != '\n' && *end != '\0'))
        return farm_error_set(FARM_EINVALID, "CapBnd is not a hex mask");
    while (*nnp == ' ' || *nnp == '\t')
        nnp++;
    if ((*nnp != '0' && *nnp != '1') || (nnp[1] != '\n' && nnp[1] != '\0'))
        return farm_error_set(FARM_EINVALID, "NoNewPrivs is not 0 or 1");
    *out_capbnd = (uint64_t)v;
    *out_nnp = *nnp == '1';
    return 0;
}

uint64_t farm_check_idmap_caps_missing(uint64_t capbnd, int setuid_root)
{
    uint64_t need = S_CAP(CAP_SETUID) | S_CAP(CAP_SETGID);
    if (setuid_root)
        need |= S_CAP(CAP_DAC_OVERRIDE) | S_CAP(CAP_SYS_ADMIN);
    return need & ~capbnd;
}

void farm_check_caps_text(char *out, size_t len, uint64_t mask)
{
    size_t used = 0;

    if (len)
        out[0] = '\0';
    for (size_t i = 0; i < sizeof s_idmap_caps / sizeof s_idmap_caps[0]; i++) {
        if (!(mask & S_CAP(s_idmap_caps[i].cap)))
            continue;
        if (used + 1 >= len || farm_str_fmt_cut(out + used, len - used, "%s%s",
                                                used ? " " : "", s_idmap_caps[i].name))
            return;
        used += strlen(out + used);
    }
}

/* ------------------------------------------------------------------ the report */

static farm_check_item_t s_spare; /* where items go once the report is full */

static farm_check_item_t *s_item(farm_check_report_t *r, farm_check_level_t level,
                                 int essential, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static farm_check_item_t *s_item(farm_check_report_t *r, farm_check_level_t level,
                                 int essential, const char *what, const char *fmt, ...)
{
    farm_check_item_t *it = r->n < FARM_CHECK_ITEMS_MAX ? &r->items[r->n++] : &s_spare;
    va_list ap;

    memset(it, 0, sizeof *it);
    it->level = level;
    it->essential = essential && level == FARM_CHECK_FAIL;
    snprintf(it->what, sizeof it->what, "%.47s", what);
    va_start(ap, fmt);
    if (vsnprintf(it->detail, sizeof it->detail, fmt, ap) >= (int)sizeof it->detail)
        memcpy(it->detail + sizeof it->detail - 4, "...", 4);
    va_end(ap);
    return it;
}

static void s_fix(farm_check_item_t *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_fix(farm_check_item_t *it, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(it->fix, sizeof it->fix, fmt, ap) >= (int)sizeof it->fix)
        memcpy(it->fix + sizeof it->fix - 4, "...", 4);
    va_end(ap);
}

static const char *s_level_name(farm_check_level_t l)
{
    return l == FARM_CHECK_FAIL ? "FAIL" : l == FARM_CHECK_WARN ? "WARN" : "ok";
}

void farm_check_print(FILE *f, const farm_check_report_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        const farm_check_item_t *it = &r->items[i];
        fprintf(f, "%-5s %s: %s\n", s_level_name(it->level), it->what, it->detail);
        if (it->fix[0] && it->level != FARM_CHECK_OK)
            fprintf(f, "      fix: %s\n", it->fix);
    }
}

size_t farm_check_log(const farm_check_report_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        const farm_check_item_t *it = &r->items[i];
        if (it->level == FARM_CHECK_OK)
            continue;
        farm_log(it->level == FARM_CHECK_FAIL ? FARM_LOG_ERROR : FARM_LOG_WARN,
                 "check %s %s: %s%s%s", s_level_name(it->level), it->what, it->detail,
                 it->fix[0] ? "; fix: " : "", it->fix);
    }
    return farm_check_failures(r, 1);
}

size_t farm_check_failures(const farm_check_report_t *r, int essential_only)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += r->items[i].level == FARM_CHECK_FAIL && (!essential_only || r->items[i].essential);
    return n;
}

/* ------------------------------------------------------------------ host helpers */

/* The line of text worth showing: the first when the tool worked (a --version), else the
 * last that says "error" (Go tools warn first and fail last), else the last one. */
static void s_pick_line(char *out, size_t len, char *text, int failed)
{
    char *pick = NULL, *save = NULL;

    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (!failed) {
            pick = l;
            break;
        }
        if (!pick || strcasestr(pick, "error") == NULL || strcasestr(l, "error") != NULL)
            pick = l;
    }
    farm_str_fmt_cut(out, len, "%s", pick ? pick : "");
}

/* Runs a tool; out gets the line worth showing (stdout and stderr). The status, or < 0. */
static int s_tool(char *out, size_t len, char *const argv[])
{
    farm_proc_capture_t pc = {.argv = argv, .with_stderr = 1, .timeout_ms = S_TOOL_TIMEOUT_MS};
    char buf[4096];
    int rc = farm_proc_capture(&pc, buf, sizeof buf, NULL);

    if (rc == FARM_ETOOBIG)
        rc = 0; /* a chatty --version: the first line is what we want */
    else if (rc < 0)
        snprintf(buf, sizeof buf, "%s", farm_error_last());
    s_pick_line(out, len, buf, rc != 0);
    return rc;
}

/* The program's path on PATH (or prog itself when it names a path); 0, or FARM_ENOTFOUND. */
static int s_which(char *out, size_t len, const char *prog)
{
    const char *path = getenv("PATH");
    char dirs[4096];
    char *save = NULL;

    if (strchr(prog, '/'))
        return farm_str_fmt(out, len, "path", "%s", prog) == 0 && access(out, X_OK) == 0
                   ? 0 : FARM_ENOTFOUND;
    snprintf(dirs, sizeof dirs, "%s", path ? path : "/usr/local/bin:/usr/bin:/bin");
    for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save))
        if (farm_path_join(out, len, d, prog) == 0 && access(out, X_OK) == 0)
            return 0;
    out[0] = '\0';
    return FARM_ENOTFOUND;
}

static const char *s_base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* A small text file (a sysctl, a binfmt entry) into buf; < 0 if it cannot be read. */
static int s_read_text(char *buf, size_t len, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return errno == ENOENT ? FARM_ENOTFOUND : FARM_EIO;
    n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return FARM_EIO;
    buf[n] = '\0';
    return 0;
}

/* A sysctl under host->proc_sys as a number: 0, FARM_ENOTFOUND (no such file), < 0. */
static int s_sysctl(long *out, const farm_check_host_t *h, const char *name)
{
    char path[FARM_PATH_MAX], buf[64], *end;
    int rc;

    if (farm_path_join(path, sizeof path, h->proc_sys, name) < 0)
        return FARM_ETOOBIG;
    if ((rc = s_read_text(buf, sizeof buf, path)) < 0)
        return rc;
    *out = strtol(buf, &end, 10);
    return end == buf ? FARM_EINVALID : 0;
}

static int s_is_root(const farm_check_host_t *h)
{
    return h->uid == 0;
}

static const char *s_who(char *buf, size_t len, const farm_check_host_t *h)
{
    if (h->user)
        farm_str_fmt_cut(buf, len, "%s (uid %lu)", h->user, (unsigned long)h->uid);
    else
        farm_str_fmt_cut(buf, len, "uid %lu", (unsigned long)h->uid);
    return buf;
}

static const char *s_uid_text(char *buf, size_t len, const farm_check_host_t *h)
{
    farm_str_fmt_cut(buf, len, "%lu", (unsigned long)h->uid);
    return buf;
}

/* ------------------------------------------------------------------ the checks */

static void s_isolation(farm_check_report_t *r, const farm_agent_opts_t *o,
                        const farm_check_host_t *h)
{
    char who[128];

    if (strcmp(o->builder.isolation, "chroot") == 0)
        s_fix(s_item(r, FARM_CHECK_WARN, 0, "isolation",
                     "--isolation chroot: RUN steps are NOT sandboxed; any Dockerfile built here "
                     "runs its commands as %s on this host, with its network and its files",
                     s_who(who, sizeof who, h)),
              "drop --isolation chroot (oci, the sandbox, is the default) once farm-agent "
              "check shows no FAIL");
    else
        s_item(r, FARM_CHECK_OK, 0, "isolation", "oci: RUN steps run in the sandbox (%s)",
               o->builder.network);
}

static void s_builder(farm_check_report_t *r, const farm_agent_opts_t *o,
                      const farm_check_host_t *h)
{
    const char *b = o->builder.builder;
    char *argv[] = {(char *)b, "--version", NULL};
    char line[256], v[32];
    farm_check_item_t *it;
    int rc = s_tool(line, sizeof line, argv);

    if (rc == FARM_ENOTFOUND) {
        s_fix(s_item(r, FARM_CHECK_FAIL, 0, "builder", "%s not found (%s)", b, line),
              "apt-get install buildah, or --builder PATH");
        return;
    }
    if (rc != 0) {
        it = s_item(r, FARM_CHECK_FAIL, 0, "builder", "`%s --version` failed (%s %d): %s", b,
                    rc < 0 ? "error" : "exit", rc, line);
        if (strstr(line, "rundir") || strstr(line, "XDG_RUNTIME_DIR"))
            s_fix(it, "set XDG_RUNTIME_DIR to a directory this user owns (mode 0700; systemd: "
                  "RuntimeDirectory=), and TMPDIR (now %s) to one it can write",
                  h->tmpdir ? h->tmpdir : "unset");
        else if (strstr(line, "permission denied"))
            s_fix(it, "HOME (%s) must be this user's own: run the agent with its user's HOME "
                  "(and XDG_RUNTIME_DIR)", h->home ? h->home : "unset");
        else
            s_fix(it, "run `%s --version` as this user and fix what it says", b);
        return;
    }
    if (strstr(s_base(b), "buildah") && farm_check_version_find(v, sizeof v, line) == 0 &&
        farm_check_version_cmp(v, S_BUILDAH_MIN) < 0) {
        s_fix(s_item(r, FARM_CHECK_WARN, 0, "builder", "%s is older than " S_BUILDAH_MIN, line),
              "upgrade buildah to " S_BUILDAH_MIN " or newer (Debian 12's)");
        return;
    }
    s_item(r, FARM_CHECK_OK, 0, "builder", "%s", line);
}

static void s_runtime(farm_check_report_t *r, const farm_agent_opts_t *o,
                      const farm_check_host_t *h)
{
    const char *rt = o->builder.runtime;
    char *argv[] = {(char *)rt, "--version", NULL};
    char line[256];
    farm_cgroup_mode_t mode = FARM_CGROUP_V2;
    int have_mode = farm_check_cgroup_mode(&mode, h->cgroup_dir) == 0;
    int rc;

    if (strcmp(o->builder.isolation, "oci") != 0) {
        s_item(r, FARM_CHECK_OK, 0, "runtime", "not used with --isolation %s",
               o->builder.isolation);
        return;
    }
    rc = s_tool(line, sizeof line, argv);
    if (rc == FARM_ENOTFOUND) {
        s_fix(s_item(r, FARM_CHECK_FAIL, 1, "runtime", "%s not found (%s)", rt, line),
              "apt-get install %s, or --runtime runc", strcmp(s_base(rt), "crun") == 0 ? "crun"
                                                                                    : "runc");
        return;
    }
    if (rc != 0) {
        s_fix(s_item(r, FARM_CHECK_FAIL, 1, "runtime", "`%s --version` failed: %s", rt, line),
              "reinstall it (apt-get install --reinstall runc), or --runtime runc");
        return;
    }
    if (strcmp(s_base(rt), "crun") == 0 && have_mode && mode != FARM_CGROUP_V2) {
        s_fix(s_item(r, FARM_CHECK_FAIL, 1, "runtime",
                     "%s on a %s host: crun refuses it (\"cgroups in hybrid mode not "
                     "supported\")", line, farm_check_cgroup_mode_name(mode)),
              "use --runtime runc (apt-get install runc); or boot with cgroup v2 "
              "(systemd.unified_cgroup_hierarchy=1 on the kernel command line; older Raspberry "
              "Pi OS images default to cgroup v1: add it to /boot/firmware/cmdline.txt)");
        return;
    }
    s_item(r, FARM_CHECK_OK, 0, "runtime", "%s (%s)", line,
           have_mode ? farm_check_cgroup_mode_name(mode) : "cgroup mode unknown");
}

/* unshare ARGS... true: 0 when it works, else the first line it printed in why. */
static int s_unshare(char *why, size_t len, char *const argv[])
{
    int rc = s_tool(why, len, argv);
    if (rc == 0)
        return 0;
    if (!why[0])
        farm_str_fmt_cut(why, len, "exit status %d", rc);
    return rc < 0 ? rc : FARM_ERROR;
}

static void s_userns(farm_check_report_t *r, const farm_agent_opts_t *o,
                     const farm_check_host_t *h, unsigned flags)
{
    int essential = strcmp(o->builder.isolation, "oci") == 0;
    long max = 0, clone = 1, apparmor = 0;
    int rc = s_sysctl(&max, h, "user/max_user_namespaces");
    char why[256], path[FARM_PATH_MAX];
    const char *sysfix = "sysctl -w user.max_user_namespaces=15000 (and put "
                         "user.max_user_namespaces=15000 in /etc/sysctl.d/farm.conf)";

    if (rc == FARM_ENOTFOUND) {
        s_fix(s_item(r, FARM_CHECK_FAIL, essential, "user namespaces",
                     "this kernel has no user namespaces (no %s/user/max_user_namespaces)",
                     h->proc_sys),
              "a kernel built with CONFIG_USER_NS=y");
        return;
    }
    if (rc == 0 && max <= 0)
        s_fix(s_item(r, FARM_CHECK_FAIL, essential, "user namespaces", "max_user_namespaces=%ld",
                     max), "%s", sysfix);
    else
        s_item(r, FARM_CHECK_OK, 0, "user namespaces", "max_user_namespaces=%ld", max);
    /* Debian's kernels before 5.10 had their own switch, off for unprivileged users */
    if (s_sysctl(&clone, h, "kernel/unprivileged_userns_clone") == 0 && !s_is_root(h)) {
        if (clone != 1)
            s_fix(s_item(r, FARM_CHECK_FAIL, essential, "user namespaces",
                         "kernel.unprivileged_userns_clone=%ld", clone),
                  "sysctl -w kernel.unprivileged_userns_clone=1 (and in /etc/sysctl.d/farm.conf)");
        else
            s_item(r, FARM_CHECK_OK, 0, "user namespaces", "kernel.unprivileged_userns_clone=1");
    }
    /* Ubuntu 23.10+: namespaces are created but without capabilities unless AppArmor allows */
    if (s_sysctl(&apparmor, h, "kernel/apparmor_restrict_unprivileged_userns") == 0 &&
        apparmor != 0 && !s_is_root(h))
        s_fix(s_item(r, FARM_CHECK_WARN, 0, "user namespaces",
                     "kernel.apparmor_restrict_unprivileged_userns=%ld: AppArmor lets only "
                     "programs with a profile use user namespaces fully", apparmor),
              "an AppArmor profile allowing userns for buildah and farm-agent, or sysctl -w "
              "kernel.apparmor_restrict_unprivileged_userns=0");
    if (!(flags & FARM_CHECK_PROBE))
        return;
    {
        char *argv[] = {"unshare", "--user", "--map-root-user", "true", NULL};
        farm_check_item_t *it;
        rc = s_unshare(why, sizeof why, argv);
        if (rc == 0) {
            s_item(r, FARM_CHECK_OK, 0, "user namespaces", "unshare --user --map-root-user works");
        } else {
            it = s_item(r, FARM_CHECK_FAIL, essential, "user namespaces",
                        "unshare --user --map-root-user failed: %s", why);
            if (rc == FARM_ENOTFOUND)
                s_fix(it, "apt-get install util-linux");
            else if (apparmor != 0)
                s_fix(it, "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an "
                      "AppArmor profile allowing userns");
            else if (clone != 1)
                s_fix(it, "sysctl -w kernel.unprivileged_userns_clone=1");
            else
                s_fix(it, "%s; inside a container: allow unshare(CLONE_NEWUSER) in its "
                      "seccomp profile", sysfix);
        }
    }
    /* the sandbox's other tools */
    if (essential) {
        int ok = s_which(path, sizeof path, "nsenter") == 0;
        if (ok)
            s_item(r, FARM_CHECK_OK, 0, "sandbox tools", "unshare, nsenter (util-linux)");
        else
            s_fix(s_item(r, FARM_CHECK_FAIL, 1, "sandbox tools", "nsenter not found"),
                  "apt-get install util-linux");
    }
}

/* newuidmap/newgidmap: installed, and setuid root (1) or with file capabilities (2); 0 if
 * neither. */
static int s_idmap_tool(farm_check_report_t *r, const char *prog, int essential)
{
    char path[FARM_PATH_MAX];
    struct stat st;

    if (s_which(path, sizeof path, prog) < 0 || stat(path, &st) != 0) {
        s_fix(s_item(r, FARM_CHECK_FAIL, essential, prog, "%s not found", prog),
              "apt-get install uidmap");
        return 0;
    }
    if ((st.st_uid == 0 && (st.st_mode & S_ISUID)) ||
        getxattr(path, "security.capability", NULL, 0) > 0) {
        s_item(r, FARM_CHECK_OK, 0, prog, "%s (%s)", path,
               st.st_mode & S_ISUID ? "setuid root" : "file capabilities");
        return st.st_mode & S_ISUID ? 1 : 2;
    }
    s_fix(s_item(r, FARM_CHECK_FAIL, essential, prog,
                 "%s is neither setuid root nor has file capabilities: it cannot map the range",
                 path),
          "apt-get install --reinstall uidmap (or chmod u+s %s)", path);
    return 0;
}

/* What this process passes on to the setuid newuidmap/newgidmap: a bounding set without
 * the capabilities they need, or no_new_privs, makes them fail ("open of uid_map failed:
 * Permission denied") however right /etc/subuid is. Under systemd both come from the
 * unit (CapabilityBoundingSet=, NoNewPrivileges= and the settings that imply it). 1 when
 * nothing is in the way (or it cannot be told). */
static int s_idmap_privs(farm_check_report_t *r, const farm_check_host_t *h, int setuid_root,
                         int essential)
{
    char text[4096], names[128], want[128];
    uint64_t capbnd, missing;
    int nnp, ok = 1;

    if (!h->status || s_read_text(text, sizeof text, h->status) < 0 ||
        farm_check_status_parse(&capbnd, &nnp, text) < 0)
        return 1;
    if (nnp) {
        s_fix(s_item(r, FARM_CHECK_FAIL, essential, "id-map privileges",
                     "no_new_privs is set (NoNewPrivs: 1 in %s): newuidmap and newgidmap "
                     "run without their setuid bit or file capabilities and cannot map the "
                     "range", h->status),
              "under systemd: NoNewPrivileges=no in farm-agent.service and none of the "
              "settings that turn it on (SystemCallFilter=, RestrictNamespaces=, "
              "ProtectKernelTunables=, PrivateDevices=... : see the packaged unit's "
              "comments); elsewhere, start the agent without no_new_privs (setpriv "
              "--no-new-privs, docker's no-new-privileges)");
        ok = 0;
    }
    missing = farm_check_idmap_caps_missing(capbnd, setuid_root);
    if (missing) {
        farm_check_caps_text(names, sizeof names, missing);
        farm_check_caps_text(want, sizeof want, farm_check_idmap_caps_missing(0, setuid_root));
        s_fix(s_item(r, FARM_CHECK_FAIL, essential, "id-map privileges",
                     "the capability bounding set (CapBnd %016llx in %s) lacks %s, which "
                     "%s newuidmap and newgidmap need to open and write the sandbox's "
                     "uid_map and gid_map", (unsigned long long)capbnd, h->status, names,
                     setuid_root ? "the setuid-root" : "the file-capability"),
              "under systemd: CapabilityBoundingSet=%s in farm-agent.service (the packaged "
              "unit's; `systemctl edit farm-agent` to see an override that narrows it), "
              "then systemctl restart farm-agent; elsewhere, start the agent with those in "
              "its bounding set (capsh --drop / setpriv --bounding-set removed them)", want);
        ok = 0;
    }
    if (ok)
        s_item(r, FARM_CHECK_OK, 0, "id-map privileges",
               "the bounding set holds what %s newuidmap needs; no_new_privs is off",
               setuid_root ? "a setuid-root" : "a file-capability");
    return ok;
}

static void s_subids(farm_check_report_t *r, const farm_agent_opts_t *o,
                     const farm_check_host_t *h, unsigned flags)
{
    int oci = strcmp(o->builder.isolation, "oci") == 0;
    const char *paths[] = {h->subuid, h->subgid};
    const char *kinds[] = {"subordinate uids", "subordinate gids"};
    unsigned long free_start = farm_check_subid_free(paths, 2, S_SUBIDS_WANTED);
    char who[128], usermod[256];
    int ranges_ok = 1; /* and the id-map tools usable: worth the real try */
    int uidmap, gidmap;

    s_who(who, sizeof who, h);
    if (s_is_root(h))
        s_fix(s_item(r, FARM_CHECK_WARN, 0, "user",
                     "%s", oci ? "the agent runs as root: a RUN step's root is then the "
                                 "host's root (uid 0) inside a user namespace"
                               : "the agent runs as root: RUN steps run as the host's root"),
              "run the agent as an unprivileged user: useradd --system --create-home farm && "
              "usermod --add-subuids %lu-%lu --add-subgids %lu-%lu farm", free_start,
              free_start + S_SUBIDS_WANTED - 1, free_start, free_start + S_SUBIDS_WANTED - 1);
    if (s_is_root(h) && !oci) {
        s_item(r, FARM_CHECK_OK, 0, "subordinate ids", "not needed (root, --isolation chroot)");
        return;
    }
    farm_str_fmt_cut(usermod, sizeof usermod, "usermod --add-subuids %lu-%lu --add-subgids "
                     "%lu-%lu %s", free_start, free_start + S_SUBIDS_WANTED - 1, free_start,
                     free_start + S_SUBIDS_WANTED - 1, h->user ? h->user : "farm");
    for (int i = 0; i < 2; i++) {
        farm_subid_range_t range;
        int rc = farm_check_subid_find(&range, paths[i], h->user, (unsigned long)h->uid);
        farm_check_item_t *it;

        if (rc <= 0) {
            ranges_ok = 0;
            if (rc < 0)
                it = s_item(r, FARM_CHECK_FAIL, oci, kinds[i], "%s", farm_error_last());
            else
                it = s_item(r, FARM_CHECK_FAIL, oci, kinds[i], "no range for %s in %s", who,
                            paths[i]);
            if (h->user)
                s_fix(it, "%s", usermod);
            else
                s_fix(it, "uid %lu has no /etc/passwd entry (newuidmap needs one): run the agent "
                      "as a real user, e.g. useradd --system --create-home farm && %s",
                      (unsigned long)h->uid, usermod);
        } else if (range.count < S_SUBIDS_WANTED) {
            s_fix(s_item(r, FARM_CHECK_WARN, 0, kinds[i],
                         "%s has only %lu ids (%lu-%lu) in %s: images with ids above %lu "
                         "fail to unpack", who, range.count, range.start,
                         range.start + range.count - 1, paths[i], range.count - 1),
                  "give it 65536: %s", usermod);
        } else {
            s_item(r, FARM_CHECK_OK, 0, kinds[i], "%s: %lu-%lu (%lu ids) in %s", who,
                   range.start, range.start + range.count - 1, range.count, paths[i]);
        }
    }
    uidmap = s_idmap_tool(r, "newuidmap", oci);
    gidmap = s_idmap_tool(r, "newgidmap", oci);
    if (!uidmap || !gidmap)
        ranges_ok = 0;
    /* (as root, newuidmap needs nothing passed on: root owns the namespace and keeps its
     * own capabilities); a missing tool is judged as Debian's, setuid */
    if (!s_is_root(h) && !s_idmap_privs(r, h, uidmap != 2 || gidmap != 2, oci))
        ranges_ok = 0;
    if ((flags & FARM_CHECK_PROBE) && ranges_ok) {
        /* what the sandbox does: uid 0 = ours, 1.. = the range, through newuidmap */
        char *argv[] = {"unshare", "--user", "--map-auto", "--map-root-user", "true", NULL};
        char why[256];
        if (s_unshare(why, sizeof why, argv) == 0)
            s_item(r, FARM_CHECK_OK, 0, "subordinate ids",
                   "a user namespace with the range maps (unshare --map-auto)");
        else
            s_fix(s_item(r, FARM_CHECK_FAIL, oci, "subordinate ids",
                         "unshare --user --map-auto --map-root-user failed: %s", why),
                  "check /etc/subuid and /etc/subgid for %s, and that newuidmap/newgidmap "
                  "are setuid root (apt-get install --reinstall uidmap)", who);
    }
}

static void s_network(farm_check_report_t *r, const farm_agent_opts_t *o,
                      const farm_check_host_t *h)
{
    char *argv[] = {"slirp4netns", "--version", NULL};
    char line[256], who[128];
    int rc, fd;

    if (strcmp(o->builder.isolation, "oci") != 0) {
        s_item(r, FARM_CHECK_OK, 0, "network", "RUN steps use the host's network (--isolation "
               "%s)", o->builder.isolation);
        return;
    }
    if (strcmp(o->builder.network, "slirp4netns") != 0) {
        s_item(r, FARM_CHECK_OK, 0, "network", "--network %s: RUN steps have no network",
               o->builder.network);
        return;
    }
    rc = s_tool(line, sizeof line, argv);
    if (rc != 0)
        s_fix(s_item(r, FARM_CHECK_FAIL, 1, "network", "slirp4netns: %s", line),
              "apt-get install slirp4netns, or --network none (RUN steps without network)");
    else
        s_item(r, FARM_CHECK_OK, 0, "network", "%s", line);
    fd = open(h->tun, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        s_item(r, FARM_CHECK_OK, 0, "network", "%s opens read-write", h->tun);
        return;
    }
    rc = errno;
    s_fix(s_item(r, FARM_CHECK_FAIL, 1, "network", "cannot open %s read-write as %s: %s",
                 h->tun, s_who(who, sizeof who, h), strerror(rc)),
          rc == ENOENT ? "modprobe tun (and tun in /etc/modules), or --network none"
                       : "chmod 0666 %s (Debian's udev default; keep it with a udev rule "
                         "KERNEL==\"tun\", MODE=\"0666\"), or --network none", h->tun);
}

/* Does rootless overlay work: the kernel's own (5.13+), or fuse-overlayfs. */
static int s_overlay_works(char *how, size_t len, const farm_check_host_t *h)
{
    struct utsname u;
    char kv[32] = "", path[FARM_PATH_MAX];
    int fd;

    if (uname(&u) == 0)
        farm_check_version_find(kv, sizeof kv, u.release);
    if (s_is_root(h) || (kv[0] && farm_check_version_cmp(kv, S_OVERLAY_ROOTLESS_KERNEL) >= 0)) {
        farm_str_fmt_cut(how, len, "kernel %s%s", kv, s_is_root(h) ? " as root" : " >= "
                         S_OVERLAY_ROOTLESS_KERNEL);
        return 1;
    }
    if (s_which(path, sizeof path, "fuse-overlayfs") == 0 &&
        (fd = open(h->fuse, O_RDWR | O_CLOEXEC)) >= 0) {
        close(fd);
        farm_str_fmt_cut(how, len, "fuse-overlayfs with %s", h->fuse);
        return 1;
    }
    farm_str_fmt_cut(how, len, "kernel %s < " S_OVERLAY_ROOTLESS_KERNEL ", and no usable "
                     "fuse-overlayfs", kv[0] ? kv : "?");
    return 0;
}

static void s_storage(farm_check_report_t *r, const farm_agent_opts_t *o,
                      const farm_check_host_t *h)
{
    const char *d = o->builder.storage_driver;
    char how[128];
    int overlay = s_overlay_works(how, sizeof how, h);
    const char *fuse_fix = "apt-get install fuse-overlayfs (and /dev/fuse read-write for this "
                           "user), or a kernel >= " S_OVERLAY_ROOTLESS_KERNEL;

    if (!d || !*d) {
        if (overlay)
            s_item(r, FARM_CHECK_OK, 0, "storage driver", "not set: buildah picks one "
                   "(overlay works here: %s; --storage-driver overlay makes it certain)", how);
        else
            s_fix(s_item(r, FARM_CHECK_WARN, 0, "storage driver", "not set: buildah will fall "
                         "back to vfs (%s): slow, and every layer is a full copy", how),
                  "%s", fuse_fix);
    } else if (strcmp(d, "vfs") == 0) {
        farm_check_item_t *it = s_item(r, FARM_CHECK_WARN, 0, "storage driver",
                                       "vfs works everywhere but copies every layer: slower "
                                       "builds, more disk");
        if (overlay)
            s_fix(it, "--storage-driver overlay (works here: %s)", how);
        else
            s_fix(it, "%s; then --storage-driver overlay", fuse_fix);
    } else if (strcmp(d, "overlay") == 0) {
        if (overlay)
            s_item(r, FARM_CHECK_OK, 0, "storage driver", "overlay (%s)", how);
        else
            s_fix(s_item(r, FARM_CHECK_FAIL, 0, "storage driver", "overlay cannot work: %s",
                         how), "--storage-driver vfs; or %s", fuse_fix);
    } else {
        s_fix(s_item(r, FARM_CHECK_WARN, 0, "storage driver", "%s: not one farm-agent check "
                     "knows (vfs, overlay); not checked", d),
              "--storage-driver overlay or vfs");
    }
}

/* Can this host run p without emulation? */
static int s_native(const farm_platform_t *host, const farm_platform_t *p, const char **why)
{
    *why = "native";
    if (farm_platform_equal(host, p))
        return 1;
    if (strcmp(host->os, p->os) != 0)
        return 0;
    if (strcmp(host->architecture, "amd64") == 0 && strcmp(p->architecture, "386") == 0) {
        *why = "native (32-bit x86 on an amd64 kernel)";
        return 1;
    }
    if (strcmp(host->architecture, "arm") == 0 && strcmp(p->architecture, "arm") == 0) {
        *why = "native (32-bit arm)";
        return 1;
    }
    if (strcmp(host->architecture, "arm64") == 0 && strcmp(p->architecture, "arm") == 0) {
        /* arm64 kernels refuse PER_LINUX32 when the CPU has no AArch32 at EL0 */
        int old = personality(0xffffffff), ok = personality(PER_LINUX32) != -1;
        if (old != -1)
            personality((unsigned long)old);
        *why = "native (this CPU runs 32-bit arm code)";
        return ok;
    }
    return 0;
}

static void s_emulation(farm_check_report_t *r, const farm_agent_opts_t *o,
                        const farm_check_host_t *h)
{
    farm_platform_t host, p;
    struct statfs sf;
    int mounted = statfs(h->binfmt_dir, &sf) == 0 && (long)sf.f_type == S_BINFMT_MAGIC;
    const char *install = "apt-get install qemu-user-static binfmt-support";

    if (farm_platform_host(&host) < 0) {
        s_item(r, FARM_CHECK_WARN, 0, "emulation", "%s", farm_error_last());
        return;
    }
    for (size_t i = 0; i < o->n_platforms; i++) {
        const char *why, *arch;
        char what[48], path[FARM_PATH_MAX], text[2048], conf[FARM_PATH_MAX];
        farm_binfmt_t b;
        struct stat st;

        snprintf(what, sizeof what, "emulation %.37s", o->platforms[i]);
        if (farm_platform_parse(&p, o->platforms[i]) < 0)
            continue; /* the options were parsed already */
        if (s_native(&host, &p, &why)) {
            s_item(r, FARM_CHECK_OK, 0, what, "%s", why);
            continue;
        }
        if (!(arch = farm_check_qemu_arch(&p))) {
            s_fix(s_item(r, FARM_CHECK_FAIL, 0, what, "qemu does not emulate %s",
                         o->platforms[i]), "a native node for %s", o->platforms[i]);
            continue;
        }
        if (!mounted) {
            s_fix(s_item(r, FARM_CHECK_FAIL, 0, what, "binfmt_misc is not mounted at %s",
                         h->binfmt_dir),
                  "mount -t binfmt_misc binfmt_misc %s (systemd: systemctl start "
                  "proc-sys-fs-binfmt_misc.mount); then %s", h->binfmt_dir, install);
            continue;
        }
        if (farm_path_fmt(path, sizeof path, "%s/qemu-%s", h->binfmt_dir, arch) < 0)
            continue;
        if (s_read_text(text, sizeof text, path) < 0 || farm_check_binfmt_parse(&b, text) < 0) {
            farm_check_item_t *it = s_item(r, FARM_CHECK_FAIL, 0, what,
                                           "this %s host needs qemu for it, and %s has no "
                                           "qemu-%s entry", host.architecture, h->binfmt_dir,
                                           arch);
            /* installed but not registered (a container, a reboot without binfmt-support) */
            if (farm_path_fmt(conf, sizeof conf, "/usr/lib/binfmt.d/qemu-%s.conf", arch) == 0 &&
                stat(conf, &st) == 0)
                s_fix(it, "update-binfmts --enable qemu-%s (or systemctl restart "
                      "systemd-binfmt)", arch);
            else
                s_fix(it, "%s", install);
            continue;
        }
        if (!b.enabled)
            s_fix(s_item(r, FARM_CHECK_FAIL, 0, what, "%s is disabled", path),
                  "update-binfmts --enable qemu-%s", arch);
        else if (!strchr(b.flags, 'F'))
            s_fix(s_item(r, FARM_CHECK_FAIL, 0, what, "%s lacks the F flag (flags: %s): the "
                         "interpreter is not found inside a build's root", path,
                         b.flags[0] ? b.flags : "none"),
                  "%s (its entries carry F; qemu-user-binfmt's do not), then update-binfmts "
                  "--disable qemu-%s && update-binfmts --enable qemu-%s", install, arch, arch);
        else
            s_item(r, FARM_CHECK_OK, 0, what, "emulated by %s (flags %s)", b.interpreter,
                   b.flags);
    }
}

/* The nearest existing directory of path (path itself, or a parent). */
static int s_existing(char *out, size_t len, const char *path, int *out_err)
{
    struct stat st;

    if (farm_str_fmt(out, len, "path", "%s", path) < 0)
        return FARM_ETOOBIG;
    for (;;) {
        char *slash;
        if (stat(out, &st) == 0)
            return 0;
        *out_err = errno;
        if (errno != ENOENT)
            return FARM_EIO;
        if (!(slash = strrchr(out, '/')))
            return farm_str_fmt(out, len, "path", ".") < 0 ? FARM_ETOOBIG : 0;
        if (slash == out) {
            out[1] = '\0';
            return 0;
        }
        *slash = '\0';
    }
}

static void s_disk(farm_check_report_t *r, const farm_check_host_t *h, const char *what,
                   const char *dir, const char *flag, unsigned long long want,
                   unsigned long long min_free)
{
    char near[FARM_PATH_MAX], who[128];
    struct statvfs sv;
    unsigned long long free_bytes;
    farm_check_level_t level;
    int err = 0;

    if (s_existing(near, sizeof near, dir, &err) < 0) {
        s_fix(s_item(r, FARM_CHECK_FAIL, 0, what, "cannot reach %s as %s: %s", dir,
                     s_who(who, sizeof who, h), strerror(err)),
              "let this user reach it (chown/chmod its parents), or %s elsewhere", flag);
        return;
    }
    if (access(near, W_OK | X_OK) != 0) {
        s_fix(s_item(r, FARM_CHECK_FAIL, 0, what, "%s is not writable by %s", near,
                     s_who(who, sizeof who, h)),
              "chown %s %s, or %s elsewhere", h->user ? h->user : s_uid_text(who, sizeof who, h),
              near, flag);
        return;
    }
    if (statvfs(near, &sv) != 0) {
        s_item(r, FARM_CHECK_WARN, 0, what, "statvfs %s: %s", near, strerror(errno));
        return;
    }
    free_bytes = (unsigned long long)sv.f_bavail * sv.f_frsize;
    level = farm_check_disk_level_min(free_bytes, want, min_free);
    {
        char under[64];
        if (min_free >= S_GIB)
            snprintf(under, sizeof under, " (under --min-free %.1f GiB)",
                     (double)min_free / (double)S_GIB);
        else
            snprintf(under, sizeof under, " (under --min-free %.0f MiB)",
                     (double)min_free / (1024.0 * 1024.0));
        farm_check_item_t *it = s_item(r, level, 0, what, "%s%s%s%s: %.1f GiB free%s", dir,
                                       strcmp(near, dir) ? " (on " : "",
                                       strcmp(near, dir) ? near : "",
                                       strcmp(near, dir) ? ")" : "",
                                       (double)free_bytes / (double)S_GIB,
                                       level == FARM_CHECK_FAIL ? under
                                       : level == FARM_CHECK_WARN ? " (under what it may use)"
                                                                  : "");
        s_fix(it, "free space on that filesystem, or %s on a larger disk%s", flag,
              strcmp(flag, "--work-dir") == 0      ? " (--cache-max SIZE bounds the context cache)"
              : strcmp(flag, "--builder-root") == 0 ? " (--builder-cache-max SIZE bounds the layer "
                                                      "caches)"
                                                    : "");
    }
}

static void s_disks(farm_check_report_t *r, const farm_agent_opts_t *o,
                    const farm_check_host_t *h)
{
    unsigned long long cache = o->cache_max ? o->cache_max : 10 * S_GIB;
    unsigned long long layers = o->builder.cache_max ? o->builder.cache_max : 10 * S_GIB;
    char storage[FARM_PATH_MAX];

    unsigned long long min = o->min_free ? o->min_free : FARM_AGENT_MIN_FREE;

    s_disk(r, h, "disk (work dir)", o->work_dir, "--work-dir", cache, min);
    /* the builder's storage where the agent puts it: --builder-root, else WORK_DIR/builder;
     * it may grow to --builder-cache-max */
    if (o->builder.builder_root && *o->builder.builder_root)
        farm_str_fmt_cut(storage, sizeof storage, "%s", o->builder.builder_root);
    else
        farm_str_fmt_cut(storage, sizeof storage, "%s/builder", o->work_dir);
    s_disk(r, h, "disk (builder storage)", storage, "--builder-root", layers, min);
    /* buildah writes layers being committed or pulled under TMPDIR (default /var/tmp) */
    s_disk(r, h, "disk (temp dir)", h->tmpdir ? h->tmpdir : "/var/tmp", "TMPDIR=DIR", 10 * S_GIB,
           min);
}

static long long s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Asks the coordinator's clock on a connection of our own (never a node session). 0 with
 * *out_skew and *out_rtt, or < 0 with the reason in the error slot. */
static int s_ask_clock(long long *out_skew, long long *out_rtt, const char *endpoint,
                       const farm_keypair_t *keys, const char *server_key)
{
    void *zctx = zmq_ctx_new(), *sock = NULL;
    farm_wire_curve_t curve = {.keys = keys, .server_key = server_key};
    Farm__Envelope env = FARM__ENVELOPE__INIT, *in = NULL;
    Farm__TimeRequest q = FARM__TIME_REQUEST__INIT;
    long long t_send, deadline;
    uint64_t nonce = 0;
    int rc = FARM_ERETRY;

    if (!zctx)
        return farm_error_set(FARM_ERROR, "zmq_ctx_new: %s", zmq_strerror(errno));
    while (nonce == 0)
        if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
            nonce = (uint64_t)s_wall_ms();
    sock = farm_wire_socket_secure(zctx, FARM_WIRE_DEALER_CLIENT, endpoint, NULL,
                                   keys ? &curve : NULL);
    if (!sock) {
        rc = farm_error_wrap(FARM_ERROR, "connecting to %s", endpoint);
        goto done;
    }
    q.nonce = nonce;
    env.version = FARM_WIRE_VERSION;
    env.body_case = FARM__ENVELOPE__BODY_TIME_REQUEST;
    env.time_request = &q;
    t_send = s_wall_ms();
    deadline = farm_now_ms() + S_CLOCK_TIMEOUT_MS;
    if (farm_wire_send(sock, NULL, 0, &env) < 0) {
        rc = FARM_ERROR;
        goto done;
    }
    while (rc == FARM_ERETRY) {
        zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
        long long left = deadline - farm_now_ms();
        int got;

        if (left <= 0 || (got = zmq_poll(&item, 1, (long)left)) == 0) {
            rc = farm_error_set(FARM_ERETRY, "no answer from %s within %d s", endpoint,
                                S_CLOCK_TIMEOUT_MS / 1000);
            break;
        }
        if (got < 0) {
            if (errno == EINTR)
                continue;
            rc = farm_error_set(FARM_EIO, "zmq_poll: %s", zmq_strerror(errno));
            break;
        }
        if (farm_wire_recv(sock, NULL, NULL, &in) < 0)
            continue;
        if (in->body_case == FARM__ENVELOPE__BODY_TIME_REPLY && in->time_reply->nonce == nonce) {
            long long t_recv = s_wall_ms();
            *out_skew = farm_check_skew_ms((long long)in->time_reply->unix_ms, t_send, t_recv);
            *out_rtt = t_recv - t_send;
            rc = 0;
        } else if (in->body_case == FARM__ENVELOPE__BODY_REJECT) {
            rc = farm_error_set(FARM_EAUTH, "%s rejected the question: %.200s", endpoint,
                                in->reject->reason);
        }
        farm_wire_free(&in);
    }
done:
    if (sock)
        zmq_close(sock);
    zmq_ctx_term(zctx);
    return rc;
}

static void s_clock(farm_check_report_t *r, const farm_agent_opts_t *o, const char *key_file,
                    const char *coordinator_key, unsigned flags)
{
    farm_keypair_t keys;
    char ckey[FARM_KEY_Z85_LEN + 1];
    long long skew = 0, rtt = 0;
    farm_check_level_t level;
    int have_keys = 0, rc;

    memset(&keys, 0, sizeof keys);
    if (key_file) {
        if (farm_key_load(&keys, key_file) < 0 || farm_key_load_public(ckey, coordinator_key) < 0) {
            s_fix(s_item(r, FARM_CHECK_FAIL, 0, "keys", "%s", farm_error_last()),
                  "--key FILE holds this node's key pair (farmctl keygen NAME, mode 0600) and "
                  "--coordinator-key the coordinator's public key or its .pub file");
            farm_key_wipe(&keys);
            return;
        }
        have_keys = 1;
        s_item(r, FARM_CHECK_OK, 0, "keys", "%s (public key %s)", key_file, keys.public_key);
    }
    if (!(flags & FARM_CHECK_CLOCK))
        goto done;
    if (!o->coordinator) {
        s_item(r, FARM_CHECK_OK, 0, "clock", "not checked (no --coordinator)");
        goto done;
    }
    rc = s_ask_clock(&skew, &rtt, o->coordinator, have_keys ? &keys : NULL,
                     have_keys ? ckey : NULL);
    if (rc < 0) {
        s_fix(s_item(r, FARM_CHECK_FAIL, 0, "clock", "%s", farm_error_last()),
              rc == FARM_EAUTH ? "a coordinator older than this agent does not answer: "
                                 "upgrade it"
              : have_keys ? "is farm-coordinator running and listening there (coordinator.agents "
                            "in farm.yaml)? --key must be a node key farm.yaml enrols and "
                            "--coordinator-key the coordinator's public key"
                          : "is farm-coordinator running and listening there (coordinator.agents "
                            "in farm.yaml)? a farm with keys answers only --key/--coordinator-key");
        goto done;
    }
    level = farm_check_skew_level(skew);
    s_fix(s_item(r, level, 0, "clock", "the coordinator at %s is %lld ms %s of this host "
                 "(round trip %lld ms)", o->coordinator, skew < 0 ? -skew : skew,
                 skew < 0 ? "behind" : "ahead", rtt),
          "enable time sync on this host and the coordinator's (systemd-timesyncd or chrony): "
          "heartbeats, timeouts and TLS certificate validity depend on it");
done:
    farm_key_wipe(&keys);
}

/* ------------------------------------------------------------------ the run */

void farm_check_host_default(farm_check_host_t *out)
{
    struct passwd *pw;

    memset(out, 0, sizeof *out);
    out->subuid = "/etc/subuid";
    out->subgid = "/etc/subgid";
    out->binfmt_dir = "/proc/sys/fs/binfmt_misc";
    out->cgroup_dir = "/sys/fs/cgroup";
    out->proc_sys = "/proc/sys";
    out->tun = "/dev/net/tun";
    out->fuse = "/dev/fuse";
    out->uid = getuid();
    out->home = getenv("HOME");
    out->tmpdir = getenv("TMPDIR");
    out->status = "/proc/self/status";
    if ((pw = getpwuid(out->uid)) != NULL) {
        out->user = pw->pw_name; /* getpwuid's static storage: good until the next call */
        if (!out->home)
            out->home = pw->pw_dir;
    }
}

void farm_check_run(farm_check_report_t *out, const farm_agent_opts_t *opts,
                    const char *key_file, const char *coordinator_key,
                    const farm_check_host_t *host, unsigned flags)
{
    out->n = 0;
    s_isolation(out, opts, host);
    s_builder(out, opts, host);
    s_runtime(out, opts, host);
    s_userns(out, opts, host, flags);
    s_subids(out, opts, host, flags);
    s_network(out, opts, host);
    s_storage(out, opts, host);
    s_emulation(out, opts, host);
    s_disks(out, opts, host);
    s_clock(out, opts, key_file, coordinator_key, flags);
}
