/* SPDX-License-Identifier: Apache-2.0 */
/* Provenance attestations, attached to the index as BuildKit attaches them: per platform
 * image an OCI image manifest whose one layer is an in-toto Statement v1
 * (application/vnd.in-toto+json) with an SLSA Provenance v1 predicate, referenced from
 * the index with platform unknown/unknown and the annotations
 * vnd.docker.reference.type: attestation-manifest, vnd.docker.reference.digest: CHILD.
 * The statement builders are pure; farm_attest_push runs in the stitch helper (blocking
 * HTTP) after the children were verified. */
#ifndef FARM_ATTEST_H
#define FARM_ATTEST_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/config.h"
#include "common/oci.h"
#include "common/registry.h"
#include "coordinator/job.h"
#include "farm.pb-c.h"

#define FARM_ATTEST_BUILD_TYPE "urn:farm:build-type:dockerfile:v1"
#define FARM_ATTEST_BUILDER_PREFIX "urn:farm:node:" /* + the node's name */
#define FARM_ATTEST_PREDICATE_TYPE "https://slsa.dev/provenance/v1"
#define FARM_ATTEST_STATEMENT_TYPE "https://in-toto.io/Statement/v1"
#define FARM_MEDIA_IN_TOTO "application/vnd.in-toto+json"
#define FARM_ATTEST_BASES_MAX 17 /* a job's FROMs (agent/layers.h) and the final stage's */

/* The modes buildx names: min leaves out the build args and every base image but the
 * final stage's; max has them all. */
typedef enum { FARM_ATTEST_OFF = 0, FARM_ATTEST_MIN = 1, FARM_ATTEST_MAX = 2 } farm_attest_mode_t;

/* "min", "max", "off"; "" is buildx's default, min. -1 for anything else. */
int farm_attest_mode_parse(const char *s);
const char *farm_attest_mode_name(farm_attest_mode_t m);

typedef struct {
    const char *name;    /* as the builder resolved it */
    const char *digest;  /* sha256:... */
    int final_stage;
} farm_attest_base_t;

/* What one platform's statement says of its build: the node, and what the node measured
 * (have_job 0: the coordinator lost it with a restart; times and bases are then left
 * out rather than guessed). */
typedef struct {
    const char *node;
    const char *node_key_sha256; /* hex, "" without keys */
    int emulated;
    int have_job;
    uint64_t started_ms, finished_ms; /* unix ms, 0: unknown */
    const char *dockerfile_digest;    /* "" or NULL: unknown */
    const farm_attest_base_t *bases;
    size_t n_bases;
} farm_attest_child_t;

typedef struct {
    farm_attest_mode_t mode;
    const char *build_id;
    const char *context_digest;
    const char *dockerfile;      /* path in the context */
    const char *target;          /* "" or NULL: the last stage */
    const farm_kv_t *args;       /* the submitter's build args (never secrets) */
    size_t n_args;
    const char *registry;        /* host[:port]: the subject's name */
    const char *repository;
    char *const *tags;           /* tag names; none: the subject names the repository */
    size_t n_tags;
    /* parallel to tags, each tag's registry and repository (a submit to several
     * repositories); NULL: registry and repository above for every tag */
    const char *const *tag_registries;
    const char *const *tag_repositories;
} farm_attest_build_t;

/* The in-toto Statement v1 for one platform image (compact JSON, keys in a fixed
 * order). FARM_EINVALID on input that would make an invalid statement. */
int farm_attest_statement(char **out_json, size_t *out_len, const farm_attest_build_t *b,
                          const farm_descriptor_t *image, const farm_attest_child_t *c);

/* The attestation manifest for a statement of stmt_len bytes with digest stmt_digest,
 * and its image config (BuildKit's: unknown/unknown, one diff_id). */
int farm_attest_manifest(char **out_manifest, size_t *out_man_len, char **out_config,
                         size_t *out_cfg_len, const char *stmt_digest, size_t stmt_len);

/* The index entry that references attestation manifest (digest, size) for child. */
json_t *farm_attest_index_entry(const char *man_digest, size_t man_len, const char *child);

/* Pushes, to repository (in reg's registry, named registry in messages), each child's statement and config blobs and
 * its attestation manifest (by digest), then reads each manifest back and checks its
 * bytes, and that its blobs are there with their sizes. *out_entries: a JSON array of
 * index entries, one per child, in order. Nothing is pushed under a tag. The statements
 * name b's registry, repository and tags as their subjects. */
int farm_attest_push(json_t **out_entries, farm_registry_t *reg, const char *registry,
                     const char *repository, const farm_attest_build_t *b,
                     const farm_descriptor_t *children, const farm_attest_child_t *cc,
                     size_t n);

/* Appends entries to the "manifests" of the index *json (its bytes replaced). */
int farm_attest_index_append(char **json, size_t *len, const json_t *entries);

/* The coordinator's side of the wire: StitchRequest.provenance for b (NULL in *out when
 * b asked for none), its children in farm_pushes_children's order; each node's key
 * fingerprint from cfg. Points into b and store (free with farm_attest_request_free). */
typedef struct {
    Farm__ProvenanceStitch ps;
    Farm__ProvenanceChild *pc, **pcp;
    Farm__ProvenanceJob *pj;
    Farm__ProvenanceBase *pb, **pbp;
    Farm__KeyValue *kv, **kvp;
    char (*fp)[65];
} farm_attest_req_t;
int farm_attest_request(Farm__ProvenanceStitch **out, farm_attest_req_t *store,
                        const farm_build_t *b, const farm_config_t *cfg);
void farm_attest_request_free(farm_attest_req_t *store);

/* sha256 (hex) of a CURVE public key's 32 bytes, given in Z85; "" when z85 is NULL or
 * not a key. */
void farm_attest_key_fingerprint(char out[65], const char *z85);

/* A job's provenance record as JSON (the journal keeps it in the build's options), and
 * back: NULL (FARM_EINVALID) for one that is malformed or over a bound. */
json_t *farm_attest_prov_json(const farm_job_prov_t *p);
farm_job_prov_t *farm_attest_prov_from_json(const json_t *j);

/* The stitch helper's side of the wire: a checked StitchRequest.provenance as plain
 * records pointing into w (and into store: free with farm_attest_wire_free). */
typedef struct {
    farm_attest_build_t build;
    farm_attest_child_t *children;
    farm_attest_base_t *bases;
    farm_kv_t *args;
    const char **tag_where;  /* the caller's: 2 x n_tags for tag_registries, _repositories */
} farm_attest_wire_t;
int farm_attest_from_wire(farm_attest_wire_t *out, const Farm__ProvenanceStitch *w,
                          size_t n_children);
void farm_attest_wire_free(farm_attest_wire_t *store);

#endif
