/* SPDX-License-Identifier: Apache-2.0 */
/* A build's flags with buildx's meaning (farmctl submit --target, --no-cache, --pull,
 * --label, --annotation, --secret; farm.yaml build:): parsed from what a person writes,
 * checked again on every hop (the coordinator trusts no client, the worker no agent),
 * and carried as farm.BuildFlags. Secrets' values are wiped (explicit_bzero) whenever
 * a copy is freed. */
#ifndef FARM_BUILDFLAGS_H
#define FARM_BUILDFLAGS_H

#include <stddef.h>

#include "common/config.h"
#include "common/limits.h"
#include "farm.pb-c.h"

typedef struct {
    char *id;    /* mounted at /run/secrets/ID */
    char *value; /* len bytes (NUL-terminated as well) */
    size_t len;
} farm_secret_t;

typedef struct {
    char *target;                 /* NULL: the last stage */
    int no_cache;
    int pull;                     /* always pull base images */
    farm_kv_t *labels;            /* image config labels */
    size_t n_labels;
    farm_kv_t *annotations;       /* each platform's image manifest */
    size_t n_annotations;
    farm_kv_t *index_annotations; /* the image index */
    size_t n_index_annotations;
    farm_secret_t *secrets;
    size_t n_secrets;
    char *cache_from, *cache_to;  /* registry cache repositories (one per platform below) */
    int provenance;               /* FARM_PROVENANCE_*: attestations on the index */
} farm_buildflags_t;

/* Provenance attestations as buildx names them; DEFAULT is buildx's default, min. */
enum {
    FARM_PROVENANCE_DEFAULT = 0,
    FARM_PROVENANCE_OFF,
    FARM_PROVENANCE_MIN,
    FARM_PROVENANCE_MAX
};

/* 1 when f asks for nothing (a build without flags sends none). */
int farm_buildflags_empty(const farm_buildflags_t *f);
/* Frees everything; secrets are wiped first. f itself is not freed. */
void farm_buildflags_clear(farm_buildflags_t *f);
/* Wipes and frees the secrets only (a build that ended keeps its other flags). */
void farm_buildflags_wipe_secrets(farm_buildflags_t *f);

/* --- what a person writes (a later key or secret id replaces an earlier one) --- */

/* --network / build.network: default (NULL too, not given: the node's network, outbound
 * only) or none; *none says which. "" is refused. Anything else, the agent's host network above all, is refused
 * with the reason. */
int farm_build_network_parse(const char *s, int *none);

/* --target STAGE. */
int farm_buildflags_set_target(farm_buildflags_t *f, const char *stage);
/* --cache-from / --cache-to (to: 1) as buildx writes them for a registry cache:
 * REGISTRY/REPOSITORY or type=registry,ref=REGISTRY/REPOSITORY. Each platform's cache is
 * REGISTRY/REPOSITORY/OS-ARCH[-VARIANT] (agent/layers.h), so no tag or digest. */
int farm_buildflags_cache_spec(farm_buildflags_t *f, int to, const char *spec);
/* REGISTRY[:PORT]/REPOSITORY with no tag, digest or scheme: 1, else 0. */
int farm_cache_repo_ok(const char *repo);
/* --label KEY=VALUE, or key and value apart (farm.yaml build.labels). */
int farm_buildflags_label_spec(farm_buildflags_t *f, const char *spec);
int farm_buildflags_set_label(farm_buildflags_t *f, const char *key, const char *value);
/* --annotation [manifest:|index:]KEY=VALUE as buildx writes it (no prefix: manifest), or
 * the prefixed key and the value apart (farm.yaml build.annotations). Other buildx
 * prefixes (manifest-descriptor:, index-descriptor:, TYPE[PLATFORM]:) are refused. */
int farm_buildflags_annotation_spec(farm_buildflags_t *f, const char *spec);
int farm_buildflags_set_annotation(farm_buildflags_t *f, const char *key, const char *value);

/* --provenance as buildx writes it: true, false (or 1, 0), mode=min|max, disabled=true,
 * or min, max (farm.yaml build.provenance); keys joined by ','. */
int farm_buildflags_provenance_spec(farm_buildflags_t *f, const char *spec);
/* --attest as buildx writes it: type=provenance[,mode=min|max][,disabled=true]. Other
 * attestation types (sbom) are refused with the reason. */
int farm_buildflags_attest_spec(farm_buildflags_t *f, const char *spec);
/* "", "off", "min", "max" for a FARM_PROVENANCE_* (the wire's and the journal's words);
 * farm_provenance_parse is the inverse, -1 for another word. */
const char *farm_provenance_name(int p);
int farm_provenance_parse(const char *s);

/* --secret as buildx writes it: id=ID[,src=PATH|,env=VAR][,type=file|env]. */
typedef enum {
    FARM_SECRET_AUTO, /* neither src= nor env=: the variable ID if set, else the file ID */
    FARM_SECRET_FILE,
    FARM_SECRET_ENV
} farm_secret_kind_t;

typedef struct {
    char id[FARM_SECRET_ID_MAX + 1];
    farm_secret_kind_t kind;
    char source[4096]; /* the file or the variable ("" for AUTO) */
} farm_secret_spec_t;

/* Parses a spec (reads nothing). FARM_EINVALID with what is wrong. */
int farm_secret_spec_parse(farm_secret_spec_t *out, const char *spec);
/* Reads the value the spec names (a relative src is taken from base_dir if not NULL)
 * and adds it, replacing a secret of the same id. At most FARM_SECRETS_MAX secrets of
 * FARM_SECRET_MAX bytes. */
int farm_buildflags_add_secret(farm_buildflags_t *f, const farm_secret_spec_t *spec,
                               const char *base_dir);

/* --- on the wire --- */

/* Everything within the limits, keys and ids well-formed, no key or id twice. The first
 * problem in farm_error_last(), FARM_EINVALID. */
int farm_buildflags_check(const farm_buildflags_t *f);
/* A checked, owned copy of w (NULL: no flags). Counts are checked before anything is
 * copied. On failure *out is cleared and the reason is in farm_error_last(). */
int farm_buildflags_from_wire(farm_buildflags_t *out, const Farm__BuildFlags *w);

/* The wire form of f, pointing into f and into store (free with farm_buildflags_wire_free
 * once sent; f must outlive it). */
typedef struct {
    Farm__KeyValue *kv, **labels, **annotations, **index_annotations;
    Farm__Secret *sec, **secrets;
} farm_buildflags_wire_t;
int farm_buildflags_to_wire(Farm__BuildFlags *out, farm_buildflags_wire_t *store,
                            const farm_buildflags_t *f);
void farm_buildflags_wire_free(farm_buildflags_wire_t *store);
/* Wipes the secrets' values of an unpacked message (before it is freed). */
void farm_buildflags_wire_wipe(Farm__BuildFlags *w);

#endif
