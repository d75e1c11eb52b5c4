/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/args.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "common/endpoint.h"
#include "common/error.h"
#include "common/limits.h"
#include "common/platform.h"

void farm_agent_args_usage(FILE *f)
{
    fprintf(f,
            "usage: farm-agent --coordinator ENDPOINT --name NAME [options]\n"
            "       farm-agent check [options]   what this host lacks for an agent started\n"
            "                                    with these options, and the fix for each\n"
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
            "  --builder-root DIR  builder storage, one per client and platform\n"
            "                      (DIR/CLIENT/PLATFORM/storage); default WORK_DIR/builder\n"
            "  --builder-cache-max SIZE  bound of all builder storage, the layer caches\n"
            "                      (default 20G; the oldest images, then the least recently\n"
            "                      used idle caches go first; 0: none)\n"
            "  --min-free SIZE     free disk the work dir, builder storage and temp dir\n"
            "                      need (default 1G); under it the node is unhealthy and\n"
            "                      takes no job until the space is back\n"
            "  --orphan-timeout T  how long jobs go on with no coordinator answering, e.g.\n"
            "                      90s, 10m, 1h (default 10m); they are kept through shorter\n"
            "                      outages and handed to the coordinator when it answers\n"
            "  --metrics ADDR:PORT serve Prometheus metrics at http://ADDR:PORT/metrics\n"
            "                      (e.g. 127.0.0.1:9101; counters only, no token: bind an\n"
            "                      address only your Prometheus reaches)\n"
            "  --key FILE          this node's CURVE key pair (farmctl keygen NAME)\n"
            "  --coordinator-key K the coordinator's public key, or its .pub file\n"
            "  -v, --verbose       debug logging\n"
            "  --version           print the version and exit\n");
}

/* --platform P,... (canonical forms), or this host's platform. 0, or an exit status. */
static int s_platforms(farm_agent_opts_t *o, const char *list)
{
    farm_platform_t p;

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
    if (farm_platform_list(o->platforms, &o->n_platforms, FARM_PLATFORMS_MAX, list) < 0) {
        fprintf(stderr, "farm-agent: --platform: %s\n", farm_error_last());
        return 2;
    }
    if (!o->n_platforms) {
        fprintf(stderr, "farm-agent: --platform names no platform\n");
        return 2;
    }
    return 0;
}

/* "500M", "20G": bytes, or 0 when it is no size. */
static unsigned long long s_size(const char *text)
{
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : *end == 'T' ? 40 : 0;

    if (shift)
        end++;
    if (end == text || *end || text[0] == '-' || v == 0 || v > (1ULL << 50) >> shift)
        return 0;
    return v << shift;
}

/* "90s", "10m", "1h", "600" (seconds): milliseconds, or 0 when it is no duration. */
static long long s_duration_ms(const char *text)
{
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    long long unit = *end == 'h' ? 3600000 : *end == 'm' ? 60000 : 1000;

    if (*end == 'h' || *end == 'm' || *end == 's')
        end++;
    if (end == text || *end || text[0] == '-' || v == 0 || v > 7ULL * 24 * 3600)
        return 0;
    return (long long)v * unit;
}

static int s_one_of(const char *flag, const char *value, const char *a, const char *b)
{
    if (strcmp(value, a) == 0 || strcmp(value, b) == 0)
        return 0;
    fprintf(stderr, "farm-agent: %s wants %s or %s, not \"%s\"\n", flag, a, b, value);
    return 2;
}

int farm_agent_args_parse(farm_agent_args_t *out, int argc, char **argv, int check)
{
    enum { O_STORAGE = 256, O_ISOLATION, O_ROOT, O_BUILDER, O_WORK, O_CACHE, O_KEY, O_CKEY,
           O_RUNTIME, O_NETWORK, O_BCACHE, O_VERSION, O_ORPHAN, O_MINFREE, O_METRICS };
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
        {"orphan-timeout", required_argument, NULL, O_ORPHAN},
        {"min-free", required_argument, NULL, O_MINFREE},
        {"key", required_argument, NULL, O_KEY},
        {"metrics", required_argument, NULL, O_METRICS},
        {"coordinator-key", required_argument, NULL, O_CKEY},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0}};
    farm_agent_opts_t *o = &out->opts;
    const char *platforms = NULL;
    int c, rc;
    char *end;

    memset(out, 0, sizeof *out);
    o->slots = 1;
    o->work_dir = "/var/tmp/farm-agent";
    o->builder.builder = "buildah";
    o->builder.isolation = "oci";
    o->builder.runtime = "runc";
    o->builder.network = "slirp4netns";
    o->builder.cache_max = 20ULL << 30;
    o->orphan_timeout_ms = FARM_AGENT_ORPHAN_TIMEOUT_MS;
    o->min_free = FARM_AGENT_MIN_FREE;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:n:p:s:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o->coordinator = optarg; break;
        case 'n': o->name = optarg; break;
        case 'p': platforms = optarg; break;
        case 's':
            o->slots = (int)strtol(optarg, &end, 10);
            if (*end || o->slots < 1 || o->slots > 1024) {
                fprintf(stderr, "farm-agent: --slots wants a number from 1 to 1024, not \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case O_WORK: o->work_dir = optarg; break;
        case O_CACHE:
            if (!(o->cache_max = s_size(optarg))) {
                fprintf(stderr, "farm-agent: --cache-max wants a size like 500M or 20G, not "
                                "\"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_BCACHE:
            if (strcmp(optarg, "0") == 0) {
                o->builder.cache_max = 0;
            } else if (!(o->builder.cache_max = s_size(optarg))) {
                fprintf(stderr, "farm-agent: --builder-cache-max wants a size like 500M or "
                                "20G (0: no bound), not \"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_MINFREE:
            if (!(o->min_free = s_size(optarg))) {
                fprintf(stderr, "farm-agent: --min-free wants a size like 500M or 2G, not "
                                "\"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_ORPHAN:
            if (!(o->orphan_timeout_ms = s_duration_ms(optarg))) {
                fprintf(stderr, "farm-agent: --orphan-timeout wants a duration like 90s, 10m "
                                "or 1h (at most a week), not \"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_BUILDER: o->builder.builder = optarg; break;
        case O_STORAGE: o->builder.storage_driver = optarg; break;
        case O_ISOLATION:
            if ((rc = s_one_of("--isolation", optarg, "oci", "chroot")) != 0)
                return rc;
            o->builder.isolation = optarg;
            break;
        case O_RUNTIME: o->builder.runtime = optarg; break;
        case O_NETWORK:
            if ((rc = s_one_of("--network", optarg, "slirp4netns", "none")) != 0)
                return rc;
            o->builder.network = optarg;
            break;
        case O_ROOT: o->builder.builder_root = optarg; break;
        case O_KEY: out->key_file = optarg; break;
        case O_METRICS:
            if (farm_endpoint_parse_addr(NULL, 0, NULL, NULL, optarg) < 0) {
                fprintf(stderr, "farm-agent: --metrics %s: %s\n", optarg, farm_error_last());
                return 2;
            }
            o->metrics = optarg;
            break;
        case O_CKEY: out->coordinator_key = optarg; break;
        case 'v': out->verbose = 1; break;
        case 'h':
            farm_agent_args_usage(stdout);
            out->help = 1;
            return 0;
        case O_VERSION:
            printf("farm-agent %s\n", FARM_VERSION);
            out->help = 1;
            return 0;
        default: farm_agent_args_usage(stderr); return 2;
        }
    }
    if ((!check && (!o->coordinator || !o->name)) || optind != argc) {
        farm_agent_args_usage(stderr);
        return 2;
    }
    if (o->name && (!*o->name || strlen(o->name) > FARM_NAME_MAX)) {
        fprintf(stderr, "farm-agent: --name must have 1 to " FARM_STR(FARM_NAME_MAX)
                        " characters (farm.yaml node names are no longer)\n");
        return 2;
    }
    /* the build runs in the context dir and the rest does not: a relative path would name
     * two places */
    if (o->work_dir[0] != '/' ||
        (o->builder.builder_root && o->builder.builder_root[0] != '/')) {
        fprintf(stderr, "farm-agent: %s wants an absolute path, not \"%s\"\n",
                o->work_dir[0] != '/' ? "--work-dir" : "--builder-root",
                o->work_dir[0] != '/' ? o->work_dir : o->builder.builder_root);
        return 2;
    }
    if (!out->key_file != !out->coordinator_key) {
        fprintf(stderr, "farm-agent: --key and --coordinator-key go together (CURVE needs this "
                        "node's key pair and the coordinator's public key)\n");
        return 2;
    }
    return s_platforms(o, platforms);
}

void farm_agent_args_free(farm_agent_args_t *a)
{
    for (size_t i = 0; a->opts.platforms && i < a->opts.n_platforms; i++)
        free(a->opts.platforms[i]);
    free(a->opts.platforms);
    a->opts.platforms = NULL;
    a->opts.n_platforms = 0;
}
