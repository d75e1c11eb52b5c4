/* SPDX-License-Identifier: Apache-2.0 */
/* `farm-agent check`: what this host lacks for an agent configured by the same options,
 * one finding per line with the fix for each. The agent runs the cheap checks at start-up
 * and refuses to start a sandbox (--isolation oci) that cannot work.
 *
 * The parsing and the decisions are plain functions of paths and strings (unit-tested
 * with made-up files); farm_check_run reads the real host. */
#ifndef FARM_AGENT_CHECK_H
#define FARM_AGENT_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "agent/agent.h"
#include "agent/sandbox.h"
#include "common/platform.h"

typedef enum { FARM_CHECK_OK, FARM_CHECK_WARN, FARM_CHECK_FAIL } farm_check_level_t;

#define FARM_CHECK_TEXT 512
#define FARM_CHECK_ITEMS_MAX 96

typedef struct {
    farm_check_level_t level;
    int essential;                /* the sandbox cannot work without it */
    char what[48];                /* "user namespaces" */
    char detail[FARM_CHECK_TEXT]; /* what was found */
    char fix[FARM_CHECK_TEXT];    /* what to do; "" when nothing */
} farm_check_item_t;

typedef struct {
    farm_check_item_t items[FARM_CHECK_ITEMS_MAX];
    size_t n;
} farm_check_report_t;

/* Where the host's facts are read (tests point them at made-up files). */
typedef struct {
    const char *subuid, *subgid;   /* /etc/subuid, /etc/subgid */
    const char *binfmt_dir;        /* /proc/sys/fs/binfmt_misc */
    const char *cgroup_dir;        /* /sys/fs/cgroup */
    const char *proc_sys;          /* /proc/sys */
    const char *tun;               /* /dev/net/tun */
    const char *fuse;              /* /dev/fuse */
    uid_t uid;                     /* the user the agent runs as */
    const char *user;              /* its name; NULL when /etc/passwd has none */
    const char *home;              /* its home (rootless builder storage) */
    const char *tmpdir;            /* TMPDIR (the builder's temp files); NULL: /var/tmp */
    const char *status;            /* /proc/self/status (CapBnd, NoNewPrivs); NULL: unknown */
} farm_check_host_t;

/* The running process's host: the real paths, getuid() and its passwd entry. */
void farm_check_host_default(farm_check_host_t *out);

enum {
    FARM_CHECK_CLOCK = 1, /* ask the coordinator's clock (needs --coordinator) */
    FARM_CHECK_PROBE = 2, /* actually create user namespaces (unshare) */
};

/* Every check for an agent started with opts. key_file / coordinator_key: --key and
 * --coordinator-key (the clock check connects as the agent would). */
void farm_check_run(farm_check_report_t *out, const farm_agent_opts_t *opts,
                    const char *key_file, const char *coordinator_key,
                    const farm_check_host_t *host, unsigned flags);
/* "ok    what: detail", "FAIL  what: detail" + "      fix: ..." lines. */
void farm_check_print(FILE *f, const farm_check_report_t *r);
/* Logs every WARN and FAIL with its fix; returns how many essential items FAILed. */
size_t farm_check_log(const farm_check_report_t *r);
/* FAIL items (all of them, or only the sandbox's essentials). */
size_t farm_check_failures(const farm_check_report_t *r, int essential_only);

/* ---- the pure parts ---- */

/* The range of user (by name; may be NULL) or of id (by number) in path that the sandbox
 * maps (farm_subid_find, agent/sandbox.h: the first of 65536 ids or more, else the
 * largest). 1 found, 0 none, FARM_ENOTFOUND when the file does not exist, < 0 unreadable. */
int farm_check_subid_find(farm_subid_range_t *out, const char *path, const char *user,
                          unsigned long id);
/* The lowest start >= 100000 where count ids overlap no range of any of the files (the
 * start to suggest in `usermod --add-subuids`). */
unsigned long farm_check_subid_free(const char *const *paths, size_t n_paths,
                                    unsigned long count);

/* A binfmt_misc entry (/proc/sys/fs/binfmt_misc/qemu-aarch64 as text). */
typedef struct {
    int enabled;
    char interpreter[256];
    char flags[16];
} farm_binfmt_t;
int farm_check_binfmt_parse(farm_binfmt_t *out, const char *text);
/* The binfmt entry's architecture name for a platform ("aarch64" for linux/arm64,
 * "arm" for linux/arm/v7); NULL for one qemu does not emulate. */
const char *farm_check_qemu_arch(const farm_platform_t *p);

typedef enum { FARM_CGROUP_V1, FARM_CGROUP_HYBRID, FARM_CGROUP_V2 } farm_cgroup_mode_t;
/* From /sys/fs/cgroup's filesystem magic and whether it holds a "unified" directory. */
farm_cgroup_mode_t farm_check_cgroup_mode_of(long fs_magic, int has_unified);
/* statfs of dir; < 0 when it cannot be read. */
int farm_check_cgroup_mode(farm_cgroup_mode_t *out, const char *dir);
const char *farm_check_cgroup_mode_name(farm_cgroup_mode_t m);

/* The first "N.N[.N...]" in text ("buildah version 1.28.2 (image-spec ...)" -> "1.28.2",
 * "6.1.0-13-amd64" -> "6.1.0"); FARM_ENOTFOUND without one. */
int farm_check_version_find(char *out, size_t len, const char *text);
/* <0, 0, >0 as version a is older, the same, newer than b (numeric, dot by dot; missing
 * parts count 0). */
int farm_check_version_cmp(const char *a, const char *b);

/* Clock skew: the coordinator's time against the middle of our round trip (all ms). */
long long farm_check_skew_ms(long long coordinator_ms, long long t_send, long long t_recv);
farm_check_level_t farm_check_skew_level(long long skew_ms);
/* Free bytes of a disk the agent writes: FAIL under 1 GiB, WARN under want (the cache
 * size) or 10 GiB. */
farm_check_level_t farm_check_disk_level(unsigned long long free_bytes,
                                         unsigned long long want);
/* The same with the FAIL line at min (--min-free) instead of 1 GiB. */
farm_check_level_t farm_check_disk_level_min(unsigned long long free_bytes,
                                             unsigned long long want, unsigned long long min);

/* From /proc/PID/status text: the capability bounding set (CapBnd, a mask of 1 << CAP_*)
 * and the no_new_privs flag (NoNewPrivs). 0, or FARM_EINVALID when a line is missing. */
int farm_check_status_parse(uint64_t *out_capbnd, int *out_nnp, const char *text);
/* The capabilities newuidmap and newgidmap need that a bounding set lacks (a mask).
 * Setuid root (Debian's), they run as root with only the bounding set's capabilities:
 * CAP_DAC_OVERRIDE to open the agent's /proc/PID/uid_map, CAP_SYS_ADMIN to write a map
 * into a namespace root does not own, CAP_SETUID / CAP_SETGID for the ranges. With file
 * capabilities (setuid_root 0) they stay the agent's user, who owns the namespace: only
 * CAP_SETUID and CAP_SETGID. */
uint64_t farm_check_idmap_caps_missing(uint64_t capbnd, int setuid_root);
/* "CAP_SETUID CAP_SETGID CAP_DAC_OVERRIDE CAP_SYS_ADMIN" for the bits of mask those are. */
void farm_check_caps_text(char *out, size_t len, uint64_t mask);

#endif
