/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/attest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/limits.h"
#include "common/platform.h"

#define S_MEDIA_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define S_REF_TYPE "vnd.docker.reference.type"
#define S_REF_DIGEST "vnd.docker.reference.digest"
#define S_PREDICATE_ANN "in-toto.io/predicate-type"

int farm_attest_mode_parse(const char *s)
{
    if (!s || !s[0] || !strcmp(s, "min"))
        return FARM_ATTEST_MIN;
    if (!strcmp(s, "max"))
        return FARM_ATTEST_MAX;
    if (!strcmp(s, "off"))
        return FARM_ATTEST_OFF;
    return -1;
}

const char *farm_attest_mode_name(farm_attest_mode_t m)
{
    return m == FARM_ATTEST_MAX ? "max" : m == FARM_ATTEST_MIN ? "min" : "off";
}

/* ------------------------------------------------------------------ the statement */

/* Adds a new reference to v under key; a NULL v (out of memory, or a string that is not
 * UTF-8) fails. */
static int s_set(json_t *o, const char *key, json_t *v)
{
    if (!v || json_object_set_new(o, key, v) < 0)
        return farm_error_set(FARM_EINVALID, "provenance: %s: out of memory or not UTF-8",
                              key);
    return 0;
}

static int s_append(json_t *a, json_t *v)
{
    if (!v || json_array_append_new(a, v) < 0)
        return farm_error_set(FARM_EINVALID, "provenance: out of memory or not UTF-8");
    return 0;
}

/* {"sha256": HEX} for "sha256:HEX" (DigestSet: the algorithm is the key). */
static json_t *s_digest_set(const char *digest)
{
    if (!digest || !farm_digest_valid(digest))
        return NULL;
    return json_pack("{s:s}", "sha256", digest + 7);
}

/* RFC 3339 in UTC with milliseconds, as SLSA's timestamps are written. */
static json_t *s_time(uint64_t unix_ms)
{
    char buf[40];
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;

    if (!gmtime_r(&t, &tm) || !strftime(buf, 24, "%Y-%m-%dT%H:%M:%S", &tm))
        return NULL;
    snprintf(buf + strlen(buf), sizeof buf - strlen(buf), ".%03uZ", (unsigned)(unix_ms % 1000));
    return json_string(buf);
}

/* Percent-encodes for a purl qualifier value ('/' in platforms). */
static void s_pct(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '-' || c == '_' || c == '~')
            out[n++] = (char)c;
        else
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", c);
    }
    out[n] = '\0';
}

/* BuildKit's name for an image: a docker purl, pkg:docker/REPO[@VERSION]?platform=P, where
 * VERSION is the tag (or the digest) of REF ("host/repo:tag", "host/repo@sha256:..."). */
static json_t *s_purl(const char *ref, const char *platform)
{
    char repo[FARM_REFERENCE_MAX + 1], plat[FARM_PLATFORM_STRLEN * 3 + 1];
    const char *at = strchr(ref, '@'), *slash = strrchr(ref, '/'), *colon, *version = NULL;
    size_t rl = strlen(ref);
    json_t *j;
    char *s;

    if (at) {
        rl = (size_t)(at - ref);
        version = at + 1;
    } else if ((colon = strrchr(ref, ':')) && (!slash || colon > slash)) {
        rl = (size_t)(colon - ref);
        version = colon + 1;
    }
    if (rl == 0 || rl > FARM_REFERENCE_MAX)
        return NULL;
    memcpy(repo, ref, rl);
    repo[rl] = '\0';
    s_pct(plat, sizeof plat, platform);
    if (asprintf(&s, "pkg:docker/%s%s%s?platform=%s", repo, version ? "@" : "",
                 version ? version : "", plat) < 0)
        return NULL;
    j = json_string(s);
    free(s);
    return j;
}

static int s_subjects(json_t *subj, const farm_attest_build_t *b, const farm_descriptor_t *img,
                      const char *plat)
{
    char ref[FARM_REFERENCE_MAX * 2 + 4];
    int rc;

    for (size_t i = 0; i < b->n_tags || (i == 0 && b->n_tags == 0); i++) {
        const char *reg = b->n_tags && b->tag_registries ? b->tag_registries[i] : b->registry;
        const char *repo = b->n_tags && b->tag_repositories ? b->tag_repositories[i]
                                                            : b->repository;
        snprintf(ref, sizeof ref, "%s/%s%s%s", reg, repo, b->n_tags ? ":" : "",
                 b->n_tags ? b->tags[i] : "");
        json_t *s = json_object();
        if (!s || (rc = s_set(s, "name", s_purl(ref, plat))) < 0 ||
            (rc = s_set(s, "digest", s_digest_set(img->digest))) < 0) {
            json_decref(s);
            return s ? rc : farm_error_set(FARM_ERROR, "out of memory");
        }
        if ((rc = s_append(subj, s)) < 0)
            return rc;
    }
    return 0;
}

static json_t *s_external(const farm_attest_build_t *b, const farm_attest_child_t *c,
                          const char *plat)
{
    json_t *e = json_object(), *df = json_object(), *args = NULL;

    if (!e || !df)
        goto fail;
    if (s_set(e, "context", json_string(b->context_digest)) < 0 ||
        s_set(df, "path", json_string(b->dockerfile)) < 0 ||
        (c->dockerfile_digest && c->dockerfile_digest[0] &&
         s_set(df, "digest", s_digest_set(c->dockerfile_digest)) < 0))
        goto fail;
    if (s_set(e, "dockerfile", df) < 0) {
        df = NULL;
        goto fail;
    }
    df = NULL;
    /* build args in max mode only: buildx's min leaves them out */
    if (b->mode == FARM_ATTEST_MAX) {
        if (!(args = json_object()))
            goto fail;
        for (size_t i = 0; i < b->n_args; i++)
            if (s_set(args, b->args[i].key, json_string(b->args[i].value)) < 0)
                goto fail;
        if (s_set(e, "args", args) < 0) {
            args = NULL;
            goto fail;
        }
        args = NULL;
    }
    if (s_set(e, "target", json_string(b->target ? b->target : "")) < 0 ||
        s_set(e, "platform", json_string(plat)) < 0)
        goto fail;
    return e;
fail:
    json_decref(e);
    json_decref(df);
    json_decref(args);
    return NULL;
}

static json_t *s_dependencies(const farm_attest_build_t *b, const farm_attest_child_t *c,
                              const char *plat)
{
    json_t *deps = json_array(), *ctx = json_object();

    if (!deps || !ctx || s_set(ctx, "name", json_string("context")) < 0 ||
        s_set(ctx, "digest", s_digest_set(b->context_digest)) < 0 || s_append(deps, ctx) < 0) {
        json_decref(deps);
        return NULL;
    }
    for (size_t i = 0; i < c->n_bases; i++) {
        const farm_attest_base_t *bs = &c->bases[i];
        json_t *d;
        if (b->mode != FARM_ATTEST_MAX && !bs->final_stage)
            continue;
        if (!(d = json_object()) || s_set(d, "uri", s_purl(bs->name, plat)) < 0 ||
            s_set(d, "name", json_string(bs->name)) < 0 ||
            s_set(d, "digest", s_digest_set(bs->digest)) < 0 ||
            s_set(d, "annotations",
                  json_pack("{s:s}", "stage", bs->final_stage ? "final" : "intermediate")) < 0 ||
            s_append(deps, d) < 0) {
            json_decref(deps);
            return NULL;
        }
    }
    return deps;
}

int farm_attest_statement(char **out_json, size_t *out_len, const farm_attest_build_t *b,
                          const farm_descriptor_t *image, const farm_attest_child_t *c)
{
    char plat[FARM_PLATFORM_STRLEN], builder[sizeof FARM_ATTEST_BUILDER_PREFIX + FARM_NAME_MAX];
    json_t *st = NULL, *subj = NULL, *pred = NULL, *def = NULL, *run = NULL, *meta = NULL;
    int rc = 0;

    *out_json = NULL;
    *out_len = 0;
    farm_platform_format(plat, sizeof plat, &image->platform);
    if (!farm_digest_valid(image->digest) || !farm_digest_valid(b->context_digest) ||
        !b->build_id || !b->build_id[0] || !b->dockerfile || !b->registry || !b->repository ||
        !c->node || !c->node[0] || strlen(c->node) > FARM_NAME_MAX) {
        rc = farm_error_set(FARM_EINVALID, "provenance for %s: the image digest, context "
                            "digest, build id, Dockerfile path, repository and node are all "
                            "needed", plat);
        goto done;
    }
    for (size_t i = 0; i < c->n_bases; i++)
        if (!c->bases[i].name || !c->bases[i].name[0] || !farm_digest_valid(c->bases[i].digest)) {
            rc = farm_error_set(FARM_EINVALID, "provenance for %s: base image %zu has no name "
                                "or no sha256 digest", plat, i);
            goto done;
        }
    snprintf(builder, sizeof builder, FARM_ATTEST_BUILDER_PREFIX "%s", c->node);
    if (!(st = json_object()) || !(subj = json_array()) || !(pred = json_object()) ||
        !(def = json_object()) || !(run = json_object()) || !(meta = json_object())) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    if ((rc = s_subjects(subj, b, image, plat)) < 0)
        goto done;
    /* each value is made only when its turn comes: s_set takes it, set or not */
    if ((rc = s_set(def, "buildType", json_string(FARM_ATTEST_BUILD_TYPE))) < 0 ||
        (rc = s_set(def, "externalParameters", s_external(b, c, plat))) < 0 ||
        (rc = s_set(def, "internalParameters",
                    json_pack("{s:b, s:s}", "emulated", c->emulated, "node_key_sha256",
                              c->node_key_sha256 ? c->node_key_sha256 : ""))) < 0 ||
        (rc = s_set(def, "resolvedDependencies", s_dependencies(b, c, plat))) < 0)
        goto done;
    if ((rc = s_set(meta, "invocationId", json_string(b->build_id))) < 0 ||
        (c->have_job && c->started_ms &&
         (rc = s_set(meta, "startedOn", s_time(c->started_ms))) < 0) ||
        (c->have_job && c->finished_ms &&
         (rc = s_set(meta, "finishedOn", s_time(c->finished_ms))) < 0))
        goto done;
    rc = s_set(run, "builder", json_pack("{s:s}", "id", builder));
    if (rc < 0)
        goto done;
    rc = s_set(run, "metadata", meta);
    meta = NULL;
    if (rc < 0)
        goto done;
    rc = s_set(pred, "buildDefinition", def);
    def = NULL;
    if (rc < 0)
        goto done;
    rc = s_set(pred, "runDetails", run);
    run = NULL;
    if (rc < 0)
        goto done;
    if ((rc = s_set(st, "_type", json_string(FARM_ATTEST_STATEMENT_TYPE))) < 0)
        goto done;
    rc = s_set(st, "subject", subj);
    subj = NULL;
    if (rc < 0 || (rc = s_set(st, "predicateType", json_string(FARM_ATTEST_PREDICATE_TYPE))) < 0)
        goto done;
    rc = s_set(st, "predicate", pred);
    pred = NULL;
    if (rc < 0)
        goto done;
    if (!(*out_json = json_dumps(st, JSON_PRESERVE_ORDER | JSON_COMPACT))) {
        rc = farm_error_set(FARM_ERROR, "cannot serialise the provenance statement");
        goto done;
    }
    *out_len = strlen(*out_json);
done:
    json_decref(st);
    json_decref(subj);
    json_decref(pred);
    json_decref(def);
    json_decref(run);
    json_decref(meta);
    return rc;
}

/* ------------------------------------------------------------------ manifests */

static char *s_dump(json_t *j, size_t *len)
{
    char *s = j ? json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT) : NULL;
    json_decref(j);
    *len = s ? strlen(s) : 0;
    return s;
}

int farm_attest_manifest(char **out_manifest, size_t *out_man_len, char **out_config,
                         size_t *out_cfg_len, const char *stmt_digest, size_t stmt_len)
{
    char cfg_digest[FARM_DIGEST_STRLEN];

    *out_manifest = NULL;
    *out_config = NULL;
    /* BuildKit's: the config is there for registries that want one, and says nothing */
    *out_config = s_dump(json_pack("{s:s, s:s, s:{}, s:{s:s, s:[s]}}", "architecture",
                                   "unknown", "os", "unknown", "config", "rootfs", "type",
                                   "layers", "diff_ids", stmt_digest),
                         out_cfg_len);
    if (!*out_config)
        return farm_error_set(FARM_ERROR, "cannot compose the attestation's config");
    farm_digest_buffer(cfg_digest, *out_config, *out_cfg_len);
    *out_manifest = s_dump(
        json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:[{s:s, s:s, s:I, s:{s:s}}]}",
                  "schemaVersion", 2, "mediaType", FARM_MEDIA_OCI_MANIFEST, "config",
                  "mediaType", S_MEDIA_OCI_CONFIG, "digest", cfg_digest, "size",
                  (json_int_t)*out_cfg_len, "layers", "mediaType", FARM_MEDIA_IN_TOTO,
                  "digest", stmt_digest, "size", (json_int_t)stmt_len, "annotations",
                  S_PREDICATE_ANN, FARM_ATTEST_PREDICATE_TYPE),
        out_man_len);
    if (!*out_manifest) {
        free(*out_config);
        *out_config = NULL;
        return farm_error_set(FARM_ERROR, "cannot compose the attestation manifest");
    }
    return 0;
}

json_t *farm_attest_index_entry(const char *man_digest, size_t man_len, const char *child)
{
    return json_pack("{s:s, s:s, s:I, s:{s:s, s:s}, s:{s:s, s:s}}", "mediaType",
                     FARM_MEDIA_OCI_MANIFEST, "digest", man_digest, "size", (json_int_t)man_len,
                     "annotations", S_REF_DIGEST, child, S_REF_TYPE, "attestation-manifest",
                     "platform", "architecture", "unknown", "os", "unknown");
}

int farm_attest_index_append(char **json, size_t *len, const json_t *entries)
{
    json_error_t jerr;
    json_t *root = json_loadb(*json, *len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *mans = json_object_get(root, "manifests");
    char *s;
    size_t n;

    if (!json_is_array(mans) || json_array_extend(mans, (json_t *)entries) < 0) {
        json_decref(root);
        return farm_error_set(FARM_ERROR, "cannot add the attestations to the index");
    }
    if (!(s = s_dump(root, &n)))
        return farm_error_set(FARM_ERROR, "cannot serialise the image index");
    free(*json);
    *json = s;
    *len = n;
    return 0;
}

/* ------------------------------------------------------------------ the push */

/* What the registry now holds under the manifest's digest is these bytes, and its blobs
 * are there with the sizes it names: an index never references an attestation that is
 * not whole. */
static int s_check(farm_registry_t *reg, const char *repo, const char *man_digest,
                   const char *man, size_t man_len, const char *cfg_digest, size_t cfg_len,
                   const char *stmt_digest, size_t stmt_len)
{
    char media[128] = "", got[FARM_DIGEST_STRLEN];
    char *body = NULL;
    size_t blen = 0;
    uint64_t size = 0;
    int rc;

    if ((rc = farm_registry_manifest_get(reg, &body, &blen, media, sizeof media, repo,
                                         man_digest)) < 0)
        return farm_error_wrap(rc, "reading attestation manifest %s back", man_digest);
    farm_digest_buffer(got, body, blen);
    rc = blen != man_len || memcmp(body, man, man_len) != 0 || strcmp(got, man_digest) != 0;
    free(body);
    if (rc)
        return farm_error_set(FARM_EINVALID, "attestation manifest %s: the registry serves "
                              "other bytes (sha256 %s)", man_digest, got);
    if ((rc = farm_registry_blob_exists(reg, &size, repo, cfg_digest)) < 0 || size != cfg_len)
        return farm_error_set(rc < 0 ? rc : FARM_EINVALID, "attestation manifest %s: its "
                              "config %s is not in the repository with %zu bytes", man_digest,
                              cfg_digest, cfg_len);
    if ((rc = farm_registry_blob_exists(reg, &size, repo, stmt_digest)) < 0 || size != stmt_len)
        return farm_error_set(rc < 0 ? rc : FARM_EINVALID, "attestation manifest %s: its "
                              "statement %s is not in the repository with %zu bytes",
                              man_digest, stmt_digest, stmt_len);
    return 0;
}

int farm_attest_push(json_t **out_entries, farm_registry_t *reg, const char *registry,
                     const char *repository, const farm_attest_build_t *b,
                     const farm_descriptor_t *children, const farm_attest_child_t *cc,
                     size_t n)
{
    json_t *entries = json_array();
    int rc = 0;

    *out_entries = NULL;
    if (!entries)
        return farm_error_set(FARM_ERROR, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char plat[FARM_PLATFORM_STRLEN], sd[FARM_DIGEST_STRLEN], cd[FARM_DIGEST_STRLEN];
        char md[FARM_DIGEST_STRLEN], pushed[FARM_DIGEST_STRLEN];
        char *stmt = NULL, *man = NULL, *cfg = NULL;
        size_t sl = 0, ml = 0, cl = 0;

        farm_platform_format(plat, sizeof plat, &children[i].platform);
        if ((rc = farm_attest_statement(&stmt, &sl, b, &children[i], &cc[i])) < 0 ||
            (farm_digest_buffer(sd, stmt, sl),
             (rc = farm_attest_manifest(&man, &ml, &cfg, &cl, sd, sl)) < 0)) {
            free(stmt);
            goto done;
        }
        farm_digest_buffer(cd, cfg, cl);
        farm_digest_buffer(md, man, ml);
        if ((rc = farm_registry_blob_push_mem(reg, NULL, repository, sd, stmt, sl)) < 0 ||
            (rc = farm_registry_blob_push_mem(reg, NULL, repository, cd, cfg, cl)) < 0 ||
            (rc = farm_registry_manifest_put(reg, pushed, repository, md,
                                             FARM_MEDIA_OCI_MANIFEST, man, ml)) < 0 ||
            (rc = strcmp(pushed, md) ? farm_error_set(FARM_EINVALID, "digest %s after the "
                                                      "push, not %s", pushed, md)
                                     : 0) < 0 ||
            (rc = s_check(reg, repository, md, man, ml, cd, cl, sd, sl)) < 0) {
            rc = farm_error_wrap(rc, "%s provenance for child %s, in %s/%s", plat,
                                 children[i].digest, registry, repository);
        } else if ((rc = s_append(entries, farm_attest_index_entry(md, ml,
                                                                   children[i].digest))) < 0) {
            /* the message says it */
        }
        free(stmt);
        free(man);
        free(cfg);
        if (rc < 0)
            goto done;
    }
    *out_entries = entries;
    entries = NULL;
done:
    json_decref(entries);
    return rc;
}

/* ------------------------------------------------------------------ the wire */

void farm_attest_wire_free(farm_attest_wire_t *store)
{
    free(store->children);
    free(store->bases);
    free(store->args);
    free(store->tag_where);
    memset(store, 0, sizeof *store);
}

int farm_attest_from_wire(farm_attest_wire_t *out, const Farm__ProvenanceStitch *w,
                          size_t n_children)
{
    size_t n_bases = 0, k = 0;
    int mode = farm_attest_mode_parse(w->mode);

    memset(out, 0, sizeof *out);
    if (mode <= 0)
        return farm_error_set(FARM_EINVALID, "provenance mode \"%.16s\" is not min or max",
                              w->mode);
    if (w->n_children != n_children)
        return farm_error_set(FARM_EINVALID, "provenance for %zu children, the index has %zu",
                              w->n_children, n_children);
    if (w->n_build_args > FARM_BUILD_ARGS_MAX)
        return farm_error_set(FARM_EINVALID, "provenance: %zu build args", w->n_build_args);
    for (size_t i = 0; i < w->n_children; i++) {
        const Farm__ProvenanceJob *j = w->children[i]->job;
        if (j && j->n_bases > FARM_ATTEST_BASES_MAX)
            return farm_error_set(FARM_EINVALID, "provenance: %zu base images for one child",
                                  j->n_bases);
        n_bases += j ? j->n_bases : 0;
    }
    out->children = calloc(n_children + 1, sizeof *out->children);
    out->bases = calloc(n_bases + 1, sizeof *out->bases);
    out->args = calloc(w->n_build_args + 1, sizeof *out->args);
    if (!out->children || !out->bases || !out->args) {
        farm_attest_wire_free(out);
        return farm_error_set(FARM_ERROR, "out of memory");
    }
    for (size_t i = 0; i < w->n_build_args; i++) {
        out->args[i].key = w->build_args[i]->key;
        out->args[i].value = w->build_args[i]->value;
    }
    out->build.mode = (farm_attest_mode_t)mode;
    out->build.build_id = w->build_id;
    out->build.context_digest = w->context_digest;
    out->build.dockerfile = w->dockerfile;
    out->build.target = w->target;
    out->build.args = out->args;
    out->build.n_args = w->n_build_args;
    for (size_t i = 0; i < n_children; i++) {
        const Farm__ProvenanceChild *wc = w->children[i];
        farm_attest_child_t *c = &out->children[i];
        c->node = wc->node;
        c->node_key_sha256 = wc->node_key_sha256;
        c->emulated = wc->emulated;
        if (!wc->job)
            continue;
        c->have_job = 1;
        c->emulated |= wc->job->emulated;
        c->started_ms = wc->job->started_ms;
        c->finished_ms = wc->job->finished_ms;
        c->dockerfile_digest = wc->job->dockerfile_digest;
        c->bases = &out->bases[k];
        for (size_t j = 0; j < wc->job->n_bases; j++) {
            out->bases[k].name = wc->job->bases[j]->name;
            out->bases[k].digest = wc->job->bases[j]->digest;
            out->bases[k].final_stage = wc->job->bases[j]->final_stage;
            k++;
        }
        c->n_bases = wc->job->n_bases;
    }
    return 0;
}

/* ------------------------------------------------------------------ the request */

void farm_attest_key_fingerprint(char out[65], const char *z85)
{
    uint8_t raw[32];
    char d[FARM_DIGEST_STRLEN];

    out[0] = '\0';
    if (!z85 || strlen(z85) != 40 || !zmq_z85_decode(raw, z85))
        return;
    farm_digest_buffer(d, raw, sizeof raw);
    memcpy(out, d + 7, 65);
}

void farm_attest_request_free(farm_attest_req_t *st)
{
    free(st->pc);
    free(st->pcp);
    free(st->pj);
    free(st->pb);
    free(st->pbp);
    free(st->kv);
    free(st->kvp);
    free(st->fp);
    memset(st, 0, sizeof *st);
}

int farm_attest_request(Farm__ProvenanceStitch **out, farm_attest_req_t *st,
                        const farm_build_t *b, const farm_config_t *cfg)
{
    size_t n = 0, nb = 0;

    *out = NULL;
    memset(st, 0, sizeof *st);
    if (b->flags.provenance == FARM_PROVENANCE_OFF)
        return 0;
    st->pc = calloc(b->n_jobs + 1, sizeof *st->pc);
    st->pcp = calloc(b->n_jobs + 1, sizeof *st->pcp);
    st->pj = calloc(b->n_jobs + 1, sizeof *st->pj);
    st->pb = calloc(b->n_jobs * FARM_JOB_PROV_BASES + 1, sizeof *st->pb);
    st->pbp = calloc(b->n_jobs * FARM_JOB_PROV_BASES + 1, sizeof *st->pbp);
    st->kv = calloc(b->n_args + 1, sizeof *st->kv);
    st->kvp = calloc(b->n_args + 1, sizeof *st->kvp);
    st->fp = calloc(b->n_jobs + 1, sizeof *st->fp);
    if (!st->pc || !st->pcp || !st->pj || !st->pb || !st->pbp || !st->kv || !st->kvp || !st->fp) {
        farm_attest_request_free(st);
        return farm_error_set(FARM_ERROR, "out of memory");
    }
    farm__provenance_stitch__init(&st->ps);
    st->ps.mode = b->flags.provenance == FARM_PROVENANCE_MAX ? "max" : "min";
    st->ps.build_id = (char *)b->id;
    st->ps.context_digest = (char *)b->context_digest;
    st->ps.dockerfile = b->dockerfile ? b->dockerfile : "Dockerfile";
    st->ps.target = b->flags.target ? b->flags.target : "";
    for (size_t i = 0; i < b->n_args; i++) {
        farm__key_value__init(&st->kv[i]);
        st->kv[i].key = b->args[i].key;
        st->kv[i].value = b->args[i].value;
        st->kvp[i] = &st->kv[i];
    }
    st->ps.n_build_args = b->n_args;
    st->ps.build_args = st->kvp;
    for (size_t i = 0; i < b->n_jobs; i++) {
        const farm_job_t *j = &b->jobs[i];
        const farm_config_node_t *node;
        Farm__ProvenanceChild *c = &st->pc[n];
        if (j->state != FARM_JOB_DONE || !j->image)
            continue; /* as farm_pushes_children */
        farm__provenance_child__init(c);
        node = farm_config_node(cfg, j->node_name);
        farm_attest_key_fingerprint(st->fp[n], node ? node->key : NULL);
        c->node = (char *)j->node_name;
        c->node_key_sha256 = st->fp[n];
        c->emulated = j->emulated;
        if (j->prov) {
            Farm__ProvenanceJob *pj = &st->pj[n];
            farm__provenance_job__init(pj);
            pj->started_ms = j->prov->started_ms;
            pj->finished_ms = j->prov->finished_ms;
            pj->dockerfile_digest = (char *)j->prov->dockerfile_digest;
            pj->emulated = j->prov->emulated;
            pj->bases = &st->pbp[nb];
            for (size_t k = 0; k < j->prov->n_bases; k++, nb++) {
                farm__provenance_base__init(&st->pb[nb]);
                st->pb[nb].name = (char *)j->prov->bases[k].name;
                st->pb[nb].digest = (char *)j->prov->bases[k].digest;
                st->pb[nb].final_stage = j->prov->bases[k].final_stage;
                st->pbp[nb] = &st->pb[nb];
            }
            pj->n_bases = j->prov->n_bases;
            c->job = pj;
        }
        st->pcp[n++] = c;
    }
    st->ps.n_children = n;
    st->ps.children = st->pcp;
    *out = &st->ps;
    return 0;
}

/* ------------------------------------------------------------------ the journal's form */

json_t *farm_attest_prov_json(const farm_job_prov_t *p)
{
    json_t *bases = json_array(), *o;

    for (size_t i = 0; bases && i < p->n_bases; i++)
        if (json_array_append_new(bases, json_pack("[ssb]", p->bases[i].name,
                                                   p->bases[i].digest,
                                                   p->bases[i].final_stage)) < 0) {
            json_decref(bases);
            return NULL;
        }
    o = json_pack("{s:I, s:I, s:s, s:b, s:o}", "started_ms", (json_int_t)p->started_ms,
                  "finished_ms", (json_int_t)p->finished_ms, "dockerfile_digest",
                  p->dockerfile_digest, "emulated", p->emulated, "bases", bases);
    return o;
}

farm_job_prov_t *farm_attest_prov_from_json(const json_t *j)
{
    farm_job_prov_t *p = calloc(1, sizeof *p);
    json_int_t t0 = 0, t1 = 0;
    const char *df = "";
    int emu = 0;
    json_t *bases = NULL, *e;
    size_t i;

    if (!p)
        return NULL;
    if (json_unpack((json_t *)j, "{s:I, s:I, s:s, s:b, s:o}", "started_ms", &t0, "finished_ms",
                    &t1, "dockerfile_digest", &df, "emulated", &emu, "bases", &bases) < 0 ||
        t0 < 0 || t1 < 0 || (df[0] && !farm_digest_valid(df)) || !json_is_array(bases) ||
        json_array_size(bases) > FARM_JOB_PROV_BASES)
        goto bad;
    p->started_ms = (uint64_t)t0;
    p->finished_ms = (uint64_t)t1;
    snprintf(p->dockerfile_digest, sizeof p->dockerfile_digest, "%s", df);
    p->emulated = emu;
    json_array_foreach(bases, i, e) {
        const char *name, *dg;
        int fin;
        if (json_unpack(e, "[ssb]", &name, &dg, &fin) < 0 || !name[0] ||
            strlen(name) > FARM_REFERENCE_MAX || !farm_digest_valid(dg))
            goto bad;
        snprintf(p->bases[i].name, sizeof p->bases[i].name, "%s", name);
        snprintf(p->bases[i].digest, sizeof p->bases[i].digest, "%s", dg);
        p->bases[i].final_stage = fin;
        p->n_bases++;
    }
    return p;
bad:
    free(p);
    farm_error_set(FARM_EINVALID, "a job's provenance record is malformed");
    return NULL;
}
