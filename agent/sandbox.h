/* SPDX-License-Identifier: Apache-2.0 */
/* The sandbox RUN steps run in (isolation "oci"), one per job, made of host tools so it
 * works the same when the agent itself runs under qemu-user (where a multi-threaded
 * emulator cannot unshare a user namespace):
 *
 *   holder     `unshare --user --net -- sleep` : a user namespace in which container uid 0
 *              is the agent's own uid and 1..N its subordinate range (newuidmap and
 *              newgidmap, /etc/subuid and /etc/subgid), and a network namespace it owns;
 *   network    `slirp4netns --disable-host-loopback` on that netns: outbound TCP/UDP
 *              through the host's stack, nothing of the host's 127.0.0.1 (none: lo only);
 *   builder    `nsenter --user=... -- unshare --mount -- buildah ...` with
 *              `--isolation oci --network ns:...`: the OCI runtime gives each RUN step
 *              its own PID, mount, IPC and UTS namespaces, pivot_root into the image, and
 *              capabilities only inside the user namespace (none on the host).
 *
 * The builder's storage is written with the mapped ids, so the agent's user (not root)
 * owns it all; nothing of the agent's (work dir, keys, config) is mounted in a RUN step. */
#ifndef FARM_AGENT_SANDBOX_H
#define FARM_AGENT_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
    unsigned long start, count;
} farm_subid_range_t;

/* The first range of at least `want` ids (else the largest) for the user `name` or
 * numeric `id` in a subuid/subgid file. 0 found, -1 none (farm_error says why). */
int farm_subid_find(farm_subid_range_t *out, const char *path, const char *name, unsigned long id,
                    unsigned long want);

typedef struct farm_sandbox farm_sandbox_t;

/* network: "slirp4netns" or "none". Starts the holder (and slirp4netns); the holder keeps
 * the n_keep fds of keep (the builder's auth file, build secrets) open under the same
 * numbers, for farm_sandbox_fd_path. */
farm_sandbox_t *farm_sandbox_start(const char *network, const int *keep, size_t n_keep);
/* "/proc/HOLDER/fd/FD": how a program inside the sandbox's user namespace opens a file the
 * holder keeps (RUN steps, in their own PID namespace, cannot name the holder). */
int farm_sandbox_fd_path(const farm_sandbox_t *sb, int fd, char *buf, size_t cap);
/* argv prefix that runs a program inside the sandbox's user namespace and a private mount
 * namespace; returns how many entries it wrote (at most FARM_SANDBOX_PREFIX_MAX). */
#define FARM_SANDBOX_PREFIX_MAX 8
int farm_sandbox_prefix(const farm_sandbox_t *sb, char **argv);
/* The builder's --network value: "ns:/proc/H/ns/net" or "none". */
const char *farm_sandbox_network(const farm_sandbox_t *sb);
/* Environment entries the builder needs inside ("_CONTAINERS_USERNS_CONFIGURED=done", the
 * rootless uid and gid), NULL-terminated, owned by the sandbox. */
char *const *farm_sandbox_env(const farm_sandbox_t *sb);
/* Ends slirp4netns and the holder. */
void farm_sandbox_stop(farm_sandbox_t **sb);

#endif
