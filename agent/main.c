/* farm-agent --coordinator ENDPOINT --name NAME [--platform P,...] [--slots N]
 *            [--work-dir DIR] [--builder buildah] [--storage-driver D]
 *            [--isolation I] [--builder-root DIR] [-v]
 * farm-agent worker   (started by the agent itself for each job: agent/worker.h) */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "common/keys.h"
#include "agent/worker.h"
#include "common/error.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/platform.h"

static volatile int s_stop;

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: farm-agent --coordinator ENDPOINT --name NAME [options]\n"
            "  --coordinator E     the coordinator's agent endpoint, e.g. tcp://farm:7700\n"
            "  --name NAME         this node's name as farm.yaml lists it under nodes:\n"
            "  --platform P,...    platforms to build (default: this host's)\n"
            "  --slots N           concurrent jobs (default 1)\n"
            "  --work-dir DIR      context cache and job dirs (default /var/tmp/farm-agent)\n"
            "  --cache-max SIZE    context cache size, e.g. 500M, 20G (default 10G)\n"
            "  --builder NAME      builder program (default buildah)\n"
            "  --storage-driver D  builder storage driver (e.g. vfs, overlay)\n"
            "  --isolation I       oci: RUN steps in the sandbox (user, pid, mount, ipc and\n"
            "                      network namespaces; the default); chroot: no sandbox,\n"
            "                      RUN steps run as this user on the host (opt-in, warned)\n"
            "  --runtime R         OCI runtime for the sandbox (default runc)\n"
            "  --network N         RUN steps' network: slirp4netns (outbound only, the\n"
            "                      default) or none\n"
            "  --builder-root DIR  builder storage, one per platform (DIR/PLATFORM/storage);\n"
            "                      default WORK_DIR/builder\n"
            "  --builder-cache-max SIZE  bound of builder storage, the layer cache (default\n"
            "                      20G; least recently built images out first; 0: none)\n"
            "  --key FILE          this node's CURVE key pair (farmctl keygen NAME)\n"
            "  --coordinator-key K the coordinator's public key, or its .pub file\n"
            "  -v, --verbose       debug logging\n");
}

/* --platform P,... (canonical forms), or this host's platform. 0, or an exit status. */
static int s_platforms(farm_agent_opts_t *o, const char *list)
{
    farm_platform_t p;
    char *copy, *save = NULL;

    if (!(o->platforms = calloc(FARM_PLATFORMS_MAX, sizeof *o->platforms)))
        return 1;
    if (!list) {
        if (farm_platform_host(&p) < 0) {
            fprintf(stderr, "farm-agent: %s\n", farm_error_last());
            return 1;
        }
        if (!(o->platforms[0] = malloc(FARM_PLATFORM_STRLEN)))
            return 1;
        farm_platform_format(o->platforms[o->n_platforms++], FARM_PLATFORM_STRLEN, &p);
        return 0;
    }
    if (!(copy = strdup(list)))
        return 1;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (o->n_platforms == FARM_PLATFORMS_MAX || farm_platform_parse(&p, tok) < 0) {
            fprintf(stderr, "farm-agent: --platform: %s\n", o->n_platforms == FARM_PLATFORMS_MAX
                                                              ? "too many platforms"
                                                              : farm_error_last());
            free(copy);
            return 2;
        }
        if (!(o->platforms[o->n_platforms] = malloc(FARM_PLATFORM_STRLEN))) {
            free(copy);
            return 1;
        }
        farm_platform_format(o->platforms[o->n_platforms++], FARM_PLATFORM_STRLEN, &p);
    }
    free(copy);
    if (!o->n_platforms) {
        fprintf(stderr, "farm-agent: --platform names no platform\n");
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    enum { O_STORAGE = 256, O_ISOLATION, O_ROOT, O_BUILDER, O_WORK, O_CACHE, O_KEY, O_CKEY,
           O_RUNTIME, O_NETWORK, O_BCACHE };
    static const struct option opts[] = {
        {"coordinator", required_argument, NULL, 'c'},
        {"name", required_argument, NULL, 'n'},
        {"platform", required_argument, NULL, 'p'},
        {"slots", required_argument, NULL, 's'},
        {"work-dir", required_argument, NULL, O_WORK},
        {"cache-max", required_argument, NULL, O_CACHE},
        {"builder", required_argument, NULL, O_BUILDER},
        {"storage-driver", required_argument, NULL, O_STORAGE},
        {"isolation", required_argument, NULL, O_ISOLATION},
        {"builder-root", required_argument, NULL, O_ROOT},
        {"runtime", required_argument, NULL, O_RUNTIME},
        {"network", required_argument, NULL, O_NETWORK},
        {"builder-cache-max", required_argument, NULL, O_BCACHE},
        {"key", required_argument, NULL, O_KEY},
        {"coordinator-key", required_argument, NULL, O_CKEY},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    farm_agent_opts_t o = {.slots = 1, .work_dir = "/var/tmp/farm-agent"};
    const char *platforms = NULL, *key_file = NULL, *coordinator_key = NULL;
    farm_keypair_t keys;
    char ckey[FARM_KEY_Z85_LEN + 1];

    memset(&keys, 0, sizeof keys);
    farm_agent_t *agent;
    int c, verbose = 0, rc;
    char *end;

    /* the agent re-runs itself as each job's worker: nothing else may run first */
    if (argc == 2 && strcmp(argv[1], "worker") == 0)
        return farm_worker_main();
    o.builder.builder = "buildah";
    o.builder.isolation = "oci";
    o.builder.runtime = "runc";
    o.builder.network = "slirp4netns";
    o.builder.cache_max = 20ULL << 30;
    while ((c = getopt_long(argc, argv, "c:n:p:s:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o.coordinator = optarg; break;
        case 'n': o.name = optarg; break;
        case 'p': platforms = optarg; break;
        case 's':
            o.slots = (int)strtol(optarg, &end, 10);
            if (*end || o.slots < 1 || o.slots > 1024) {
                fprintf(stderr, "farm-agent: --slots wants a number from 1 to 1024, not \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case O_WORK: o.work_dir = optarg; break;
        case O_CACHE:
        case O_BCACHE: {
            unsigned long long v = strtoull(optarg, &end, 10);
            int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : *end == 'T' ? 40 : 0;
            if (shift)
                end++;
            if (end == optarg || *end || (v == 0 && c == O_CACHE) || v > (1ULL << 50) >> shift) {
                fprintf(stderr, "farm-agent: --%s wants a size like 500M or 20G%s, not \"%s\"\n",
                        c == O_CACHE ? "cache-max" : "builder-cache-max",
                        c == O_CACHE ? "" : " (0: no bound)", optarg);
                return 2;
            }
            if (c == O_CACHE)
                o.cache_max = v << shift;
            else
                o.builder.cache_max = v << shift;
            break;
        }
        case O_BUILDER: o.builder.builder = optarg; break;
        case O_STORAGE: o.builder.storage_driver = optarg; break;
        case O_ISOLATION:
            if (strcmp(optarg, "oci") != 0 && strcmp(optarg, "chroot") != 0) {
                fprintf(stderr, "farm-agent: --isolation wants oci or chroot, not \"%s\"\n",
                        optarg);
                return 2;
            }
            o.builder.isolation = optarg;
            break;
        case O_RUNTIME: o.builder.runtime = optarg; break;
        case O_NETWORK:
            if (strcmp(optarg, "slirp4netns") != 0 && strcmp(optarg, "none") != 0) {
                fprintf(stderr, "farm-agent: --network wants slirp4netns or none, not \"%s\"\n",
                        optarg);
                return 2;
            }
            o.builder.network = optarg;
            break;
        case O_ROOT: o.builder.builder_root = optarg; break;
        case O_KEY: key_file = optarg; break;
        case O_CKEY: coordinator_key = optarg; break;
        case 'v': verbose = 1; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (!o.coordinator || !o.name || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    if (!*o.name || strlen(o.name) > FARM_NAME_MAX) {
        fprintf(stderr, "farm-agent: --name must have 1 to " FARM_STR(FARM_NAME_MAX)
                        " characters (farm.yaml node names are no longer)\n");
        return 2;
    }
    farm_log_init("agent", verbose ? FARM_LOG_DEBUG : FARM_LOG_INFO);
    if ((rc = s_platforms(&o, platforms)) != 0)
        return rc;
    if (!key_file != !coordinator_key) {
        fprintf(stderr, "farm-agent: --key and --coordinator-key go together (CURVE needs this "
                        "node's key pair and the coordinator's public key)\n");
        return 2;
    }
    if (key_file) {
        if (farm_key_load(&keys, key_file) < 0 ||
            farm_key_load_public(ckey, coordinator_key) < 0) {
            fprintf(stderr, "farm-agent: %s\n", farm_error_last());
            return 2;
        }
        o.keys = &keys;
        o.coordinator_key = ckey;
    }
    farm_proc_stop_on_signals(&s_stop);
    farm_proc_raise_nofile();

    agent = farm_agent_new(&o);
    if (!agent) {
        fprintf(stderr, "farm-agent: %s\n", farm_error_last());
        return 1;
    }
    farm_log_info("node %s: %zu platform(s) (%s%s), %d slot(s), builder %s, coordinator %s",
                  o.name, o.n_platforms, o.platforms[0], o.n_platforms > 1 ? ", ..." : "",
                  o.slots, o.builder.builder, o.coordinator);
    if (strcmp(o.builder.isolation, "chroot") == 0)
        farm_log_warn("--isolation chroot: RUN steps are NOT sandboxed; they run on this host "
                      "with this agent's user and network (its files, keys and loopback "
                      "services); use it only for Dockerfiles you trust");
    rc = farm_agent_run(agent, &s_stop);
    farm_agent_destroy(&agent);
    farm_key_wipe(&keys);
    for (size_t i = 0; i < o.n_platforms; i++)
        free(o.platforms[i]);
    free(o.platforms);
    return rc < 0 ? 1 : 0;
}
