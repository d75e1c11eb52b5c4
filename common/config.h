/* SPDX-License-Identifier: Apache-2.0 */
/* farm.yaml (libyaml). One file serves the coordinator (which nodes serve which
 * platform) and the repository that checks it in (build: defaults for farmctl). */
#ifndef FARM_CONFIG_H
#define FARM_CONFIG_H

#include <stddef.h>

#include "common/yamltree.h"

typedef struct {
    char *key;
    char *value;
} farm_kv_t;

typedef struct {
    char *name;
    int slots; /* concurrent jobs, >= 1, default 1 */
    char *key; /* its CURVE public key (Z85), NULL without keys */
    int key_given; /* a key: entry was written (valid or not) */
    int line, column;
} farm_config_node_t;

/* What a client may do (clients: NAME: {key, role}). Each includes the ones before. */
typedef enum {
    FARM_ROLE_NONE = 0,
    FARM_ROLE_READ = 1,   /* farmctl nodes, builds */
    FARM_ROLE_SUBMIT = 2, /* submit, cancel its own builds */
    FARM_ROLE_ADMIN = 3   /* cancel any build, drain a node, see every job */
} farm_role_t;

typedef struct {
    char *name;
    char *key;       /* CURVE public key (Z85) */
    farm_role_t role;
    int line, column;
} farm_config_client_t;

typedef struct {
    char *platform; /* normalised, canonical string: "linux/arm/v7" */
    char **native;  /* node names that build it natively */
    size_t n_native;
    char **emulated; /* node names that build it under emulation (used only while no native node is alive) */
    size_t n_emulated;
    int line, column;
} farm_config_platform_t;

typedef struct {
    char *host; /* "registry.local:5000" as written in image references */
    int insecure; /* plain HTTP allowed */
    char *ca;     /* registries.HOST.ca: a private CA bundle (PEM file), NULL if none */
    char *ca_pem; /* its bytes, once farm_config_load_cas read them (coordinator only) */
    size_t ca_pem_len;
    char **credentials_for; /* clients whose builds may use the farm's own login ("*": all) */
    size_t n_credentials_for;
    int line, column;
} farm_config_registry_t;

typedef struct {
    int present;       /* a build: section was given */
    char **tags;
    size_t n_tags;
    char **platforms;  /* normalised canonical strings */
    size_t n_platforms;
    char *dockerfile;  /* NULL: "Dockerfile" */
    int network_none;  /* build.network: none (RUN steps without network) */
    farm_kv_t *args;
    size_t n_args;
    char *target;      /* build.target: the stage to build, NULL: the last */
    char *cache;       /* build.cache: registry cache repository (--cache-from and -to) */
    int no_cache;      /* build.no_cache: true */
    int pull;          /* build.pull: true (always pull base images) */
    int provenance;    /* build.provenance: false|min|max, FARM_PROVENANCE_* (buildflags.h) */
    farm_kv_t *labels; /* build.labels: {KEY: VALUE} */
    size_t n_labels;
    farm_kv_t *annotations; /* build.annotations: {[manifest:|index:]KEY: VALUE} as written */
    size_t n_annotations;
    char **secrets;    /* build.secrets: farmctl --secret specs: id=ID,src=FILE with FILE
                        * relative to farm.yaml's directory and inside it (no env=, no
                        * absolute path, no ".."); farmctl checks the resolved path */
    size_t n_secrets;
} farm_config_build_t;

typedef struct {
    char *path;              /* the file read, for messages */
    char *agents_endpoint;   /* coordinator.agents, e.g. "tcp://0.0.0.0:7700" (NULL if absent) */
    char *clients_endpoint;  /* coordinator.clients, e.g. "tcp://127.0.0.1:7701" (NULL if absent) */
    int heartbeat_ms;        /* coordinator.heartbeat, default 1000 */
    int liveness;            /* coordinator.liveness, beats of silence before a node is lost, default 3 */
    int queue_timeout_ms;    /* coordinator.queue_timeout: how long a job may wait for a live node, default 600000 */
    int job_timeout_ms;      /* coordinator.job_timeout: how long one attempt may run on a node, default 2 h */
    int context_ttl_ms;      /* coordinator.context_ttl: unused contexts are deleted after this, default 24 h */
    int cache_wait_ms;       /* coordinator.cache_wait: how long a job waits for a busy node that built it recently, default 3 s, 0 never */
    char *state_dir;         /* coordinator.state_dir, NULL if absent */
    char *public_key;        /* coordinator.public_key (Z85): farmctl and agents need it */
    int public_key_line, public_key_column; /* where it was written, for messages */
    char *secret_key_file;   /* coordinator.secret_key_file: the coordinator's key pair */
    /* coordinator.signing_key_file: the PEM EC P-256 key every pushed index is signed
     * with (sigstore), NULL: indexes are not signed */
    char *signing_key_file;
    int signing_key_line, signing_key_column;
    int secure;              /* keys are configured: CURVE on both endpoints */
    int max_builds_per_client;        /* coordinator.max_builds_per_client: running at once, default 64 */
    int max_uploads;                  /* coordinator.max_uploads: context uploads at once, default 64 */
    int max_uploads_per_client;       /* coordinator.max_uploads_per_client: default 4 */
    unsigned long long context_quota; /* coordinator.context_quota: bytes of stored contexts, default 20 GiB */
    char *http;                       /* coordinator.http: ADDR:PORT of /metrics, the page and API, NULL: off */
    int http_loopback;                /* it is a loopback address */
    int http_line, http_column;
    char *http_token_file;            /* coordinator.http_token_file: the bearer token's file, NULL: none */
    farm_config_client_t *clients;
    size_t n_clients;
    farm_config_platform_t *platforms;
    size_t n_platforms;
    farm_config_node_t *nodes;
    size_t n_nodes;
    farm_config_registry_t *registries;
    size_t n_registries;
    farm_config_build_t build;
    /* history: the coordinator's build records (its journal) */
    long long history_keep_ms;        /* history.keep: finished builds kept this long, default 7d */
    int history_max_builds;           /* history.max_builds: and at most this many, default 10000 */
    unsigned long long history_log_limit; /* history.log_limit: bytes of log per build, default 1M */
} farm_config_t;

/* farm_diag_t (every problem found in a file) comes from common/yamltree.h. */

/* Parses a farm.yaml. On success returns 0 and *out. On any problem returns
 * FARM_EINVALID, *out = NULL, and diags (if not NULL) holds every problem found
 * (not just the first); farm_error_last() holds the first. Problems are appended to
 * diags in document order (at most 100, then one "N more problems" line). A file that
 * cannot be read gives FARM_ENOTFOUND (missing), FARM_ETOOBIG (over 1 MiB) or FARM_EIO,
 * with the same single message in diags. */
int farm_config_load(farm_config_t **out, const char *path, farm_diag_t *diags);
/* Same from memory; `name` is used in messages in place of a path. */
int farm_config_parse(farm_config_t **out, const char *name, const char *yaml, size_t len,
                      farm_diag_t *diags);
void farm_config_destroy(farm_config_t **self_p);

const farm_config_node_t *farm_config_node(const farm_config_t *cfg, const char *name);
const char *farm_role_name(farm_role_t role);
/* The platform entry for a (normalised or not) platform string, NULL if the farm lacks it. */
const farm_config_platform_t *farm_config_platform(const farm_config_t *cfg, const char *platform);
/* 1 if `registry_host` is marked insecure (plain HTTP allowed). */
int farm_config_registry_insecure(const farm_config_t *cfg, const char *registry_host);
/* The registries: entry for host, NULL if farm.yaml has none. */
const farm_config_registry_t *farm_config_registry(const farm_config_t *cfg, const char *host);
/* 1 if farm.yaml lets builds of client (its key's name; "" on a keyless farm) use the
 * farm's own credentials (the daemons' docker config) for registry r. */
int farm_config_registry_grants(const farm_config_registry_t *r, const char *client);
/* Reads every registries.*.ca file into ca_pem (at most FARM_CA_PEM_MAX bytes, must hold
 * a PEM certificate). The coordinator calls it at start-up; farmctl never needs it. */
int farm_config_load_cas(farm_config_t *cfg);

/* Reload (the coordinator re-reads farm.yaml on SIGHUP). 0 when neu may replace old in a
 * running coordinator; FARM_EINVALID naming the first setting that needs a restart
 * (coordinator.agents, .clients, .state_dir, .public_key, .secret_key_file,
 * .signing_key_file, .heartbeat,
 * .max_uploads, .max_uploads_per_client, .context_quota) with both values, or a farm
 * without platforms. Nodes, clients, keys, roles, registries, platforms and the timeouts
 * may change. */
int farm_config_reload_check(const farm_config_t *old, const farm_config_t *neu);
/* *out[i] = the index in neu of old's platform i (matched by its canonical string), -1
 * when neu lacks it. The caller frees *out. */
int farm_config_platform_map(long **out, const farm_config_t *old, const farm_config_t *neu);

/* Parses a duration "500ms", "1s", "2m", "1h" into milliseconds; -1 on junk. */
long farm_config_parse_duration_ms(const char *s);

#endif
