/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/stitch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/child.h"
#include "common/error.h"
#include "common/log.h"
#include "common/sigstore.h"
#include "common/wire.h"
#include "coordinator/amend.h"
#include "coordinator/targets.h"

/* ------------------------------------------------------------------ child checks */

/* A child is judged only on what the registry serves: the descriptor the coordinator
 * holds says which digest the node reported and which platform its job was for; the
 * manifest and config bytes say what that digest really is. */

#define S_MEDIA_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define S_MEDIA_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"

static int s_is_index_type(const char *mt)
{
    return !strcmp(mt, FARM_MEDIA_OCI_INDEX) || !strcmp(mt, FARM_MEDIA_DOCKER_LIST);
}

static int s_is_manifest_type(const char *mt)
{
    return !strcmp(mt, FARM_MEDIA_OCI_MANIFEST) || !strcmp(mt, FARM_MEDIA_DOCKER_MANIFEST);
}

/* Parses bytes that are not NUL-terminated C strings as one JSON object. */
static int s_parse_object(json_t **out, const char *buf, size_t len, const char *what)
{
    json_error_t jerr;

    *out = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*out)
        return farm_error_set(FARM_EINVALID, "%s is not valid JSON (line %d: %s)", what,
                              jerr.line, jerr.text);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return farm_error_set(FARM_EINVALID, "%s is not a JSON object", what);
    }
    return 0;
}

int farm_stitch_check_manifest(char out_cfg_digest[FARM_DIGEST_STRLEN], uint64_t *out_cfg_size,
                               const farm_descriptor_t *expect, const char *served_type,
                               const char *man, size_t man_len)
{
    char plat[FARM_PLATFORM_STRLEN], got[FARM_DIGEST_STRLEN];
    json_t *root = NULL, *v, *cfg, *cd, *cs, *cm;
    const char *mt;
    int rc = 0;

    out_cfg_digest[0] = '\0';
    *out_cfg_size = 0;
    farm_platform_format(plat, sizeof plat, &expect->platform);
    if (man_len > FARM_MANIFEST_MAX) {
        rc = farm_error_set(FARM_ETOOBIG, "%s child %s: the manifest is %zu bytes, over the "
                            "%u byte limit", plat, expect->digest, man_len, FARM_MANIFEST_MAX);
        goto done;
    }
    /* sha256 over the exact bytes served: neither the reported digest nor the
     * registry's Docker-Content-Digest is taken on trust. */
    farm_digest_buffer(got, man, man_len);
    if (strcmp(got, expect->digest) != 0) {
        rc = farm_error_set(FARM_EINVALID, "%s child %s: the registry served a manifest whose "
                            "bytes hash to %s", plat, expect->digest, got);
        goto done;
    }
    if (man_len != expect->size) {
        rc = farm_error_set(FARM_EINVALID, "%s child %s: the manifest is %zu bytes but the "
                            "node reported %llu", plat, expect->digest, man_len,
                            (unsigned long long)expect->size);
        goto done;
    }
    if ((rc = s_parse_object(&root, man, man_len, "the manifest")) < 0) {
        rc = farm_error_wrap(rc, "%s child %s", plat, expect->digest);
        goto done;
    }
    v = json_object_get(root, "mediaType");
    if (v && !json_is_string(v)) {
        rc = farm_error_set(FARM_EINVALID, "%s child %s: mediaType is not a string", plat,
                            expect->digest);
        goto done;
    }
    /* An OCI manifest may leave mediaType out; the type it was pushed with then rules. */
    mt = v ? json_string_value(v) : served_type && served_type[0] ? served_type : "";
    if (s_is_index_type(mt) || (served_type && s_is_index_type(served_type)) ||
        json_object_get(root, "manifests")) {
        rc = farm_error_set(FARM_EINVALID, "%s child %s is an image index (%s), not an image "
                            "manifest: a child must be a single-platform image", plat,
                            expect->digest, mt[0] ? mt : "it lists manifests");
        goto done;
    }
    if (!s_is_manifest_type(mt)) {
        rc = farm_error_set(FARM_EINVALID, "%s child %s: media type \"%.100s\" is not an OCI or "
                            "Docker v2 image manifest", plat, expect->digest, mt);
        goto done;
    }
    if (served_type && served_type[0] && strcmp(served_type, mt) != 0) {
        rc = farm_error_set(FARM_EINVALID, "%s child %s: the registry serves it as %.100s but "
                            "the manifest says %s", plat, expect->digest, served_type, mt);
        goto done;
    }
    if (strcmp(mt, expect->media_type) != 0) {
        rc = farm_error_set(FARM_EINVALID, "%s child %s: the manifest's media type is %s but "
                            "the node reported %s", plat, expect->digest, mt,
                            expect->media_type);
        goto done;
    }
    v = json_object_get(root, "schemaVersion");
    if (!json_is_integer(v) || json_integer_value(v) != 2) {
        rc = farm_error_set(FARM_EINVALID, "%s child %s: schemaVersion must be 2", plat,
                            expect->digest);
        goto done;
    }
    if (!json_is_array(json_object_get(root, "layers"))) {
        rc = farm_error_set(FARM_EINVALID, "%s child %s: the manifest has no layers array",
                            plat, expect->digest);
        goto done;
    }
    cfg = json_object_get(root, "config");
    cd = json_object_get(cfg, "digest");
    cs = json_object_get(cfg, "size");
    cm = json_object_get(cfg, "mediaType");
    if (!json_is_object(cfg) || !json_is_string(cd) || !farm_digest_valid(json_string_value(cd)) ||
        !json_is_integer(cs) || json_integer_value(cs) < 0 || (cm && !json_is_string(cm))) {
        rc = farm_error_set(FARM_EINVALID, "%s child %s: the manifest's config descriptor is "
                            "missing or malformed (needs a sha256 digest and a size)", plat,
                            expect->digest);
        goto done;
    }
    if (cm && strcmp(json_string_value(cm), S_MEDIA_OCI_CONFIG) &&
        strcmp(json_string_value(cm), S_MEDIA_DOCKER_CONFIG)) {
        rc = farm_error_set(FARM_EINVALID, "%s child %s: config media type %.100s is not an "
                            "image config", plat, expect->digest, json_string_value(cm));
        goto done;
    }
    memcpy(out_cfg_digest, json_string_value(cd), FARM_DIGEST_STRLEN); /* valid: that long */
    *out_cfg_size = (uint64_t)json_integer_value(cs);
done:
    json_decref(root);
    return rc;
}

int farm_stitch_check_config(const farm_descriptor_t *expect, const char *cfg_digest,
                             uint64_t cfg_size, const char *cfg, size_t cfg_len)
{
    char plat[FARM_PLATFORM_STRLEN], said[FARM_PLATFORM_STRLEN], got[FARM_DIGEST_STRLEN];
    farm_platform_t p;
    json_t *root = NULL, *os, *arch, *var;
    int rc = 0;

    farm_platform_format(plat, sizeof plat, &expect->platform);
    if (cfg_len > FARM_STITCH_CONFIG_MAX) {
        rc = farm_error_set(FARM_ETOOBIG, "%s child %s: image config %s is %zu bytes, over the "
                            "%u byte limit", plat, expect->digest, cfg_digest, cfg_len,
                            FARM_STITCH_CONFIG_MAX);
        goto done;
    }
    farm_digest_buffer(got, cfg, cfg_len);
    if (strcmp(got, cfg_digest) != 0) {
        rc = farm_error_set(FARM_EINVALID, "%s child %s: the registry served image config %s "
                            "with bytes that hash to %s", plat, expect->digest, cfg_digest, got);
        goto done;
    }
    if (cfg_len != cfg_size) {
        rc = farm_error_set(FARM_EINVALID, "%s child %s: image config %s is %zu bytes but the "
                            "manifest says %llu", plat, expect->digest, cfg_digest, cfg_len,
                            (unsigned long long)cfg_size);
        goto done;
    }
    if ((rc = s_parse_object(&root, cfg, cfg_len, "the image config")) < 0) {
        rc = farm_error_wrap(rc, "%s child %s", plat, expect->digest);
        goto done;
    }
    os = json_object_get(root, "os");
    arch = json_object_get(root, "architecture");
    var = json_object_get(root, "variant");
    if (!json_is_string(os) || !json_is_string(arch) || (var && !json_is_string(var))) {
        rc = farm_error_set(FARM_EINVALID, "%s child %s: image config %s has no os and "
                            "architecture strings", plat, expect->digest, cfg_digest);
        goto done;
    }
    if ((rc = farm_platform_from_config(&p, json_string_value(os), json_string_value(arch),
                                        var ? json_string_value(var) : NULL)) < 0) {
        rc = farm_error_wrap(rc, "%s child %s: image config %s", plat, expect->digest,
                             cfg_digest);
        goto done;
    }
    if (!farm_platform_equal(&p, &expect->platform)) {
        farm_platform_format(said, sizeof said, &p);
        rc = farm_error_set(FARM_EINVALID, "%s child %s: its image config %s says %s, not %s; "
                            "refusing to put it in the index", plat, expect->digest, cfg_digest,
                            said, plat);
        goto done;
    }
done:
    json_decref(root);
    return rc;
}

int farm_stitch_check_child(const farm_descriptor_t *expect, const char *served_type,
                            const char *man, size_t man_len, const char *cfg, size_t cfg_len)
{
    char cfg_digest[FARM_DIGEST_STRLEN];
    uint64_t cfg_size;
    int rc;

    if ((rc = farm_stitch_check_manifest(cfg_digest, &cfg_size, expect, served_type, man,
                                         man_len)) < 0)
        return rc;
    return farm_stitch_check_config(expect, cfg_digest, cfg_size, cfg, cfg_len);
}

/* Reads the child from the build's repository, and nowhere else: a digest that lives
 * only in another repository is not found here and is refused. */
int farm_stitch_verify_child(farm_registry_t *reg, const farm_stitch_target_t *req,
                             const farm_descriptor_t *child)
{
    char media[128] = "", plat[FARM_PLATFORM_STRLEN], cfg_digest[FARM_DIGEST_STRLEN];
    char *man = NULL, *cfg = NULL;
    size_t man_len = 0, cfg_len = 0;
    uint64_t cfg_size = 0;
    int rc;

    farm_platform_format(plat, sizeof plat, &child->platform);
    rc = farm_registry_manifest_get(reg, &man, &man_len, media, sizeof media, req->repository,
                                    child->digest);
    if (rc == FARM_ENOTFOUND) {
        rc = farm_error_set(FARM_ENOTFOUND, "%s child %s is not in %s/%s: a node must push its "
                            "image to the build's repository", plat, child->digest,
                            req->registry, req->repository);
        goto done;
    }
    if (rc < 0) {
        rc = farm_error_wrap(rc, "%s child %s: reading its manifest from %s/%s", plat,
                             child->digest, req->registry, req->repository);
        goto done;
    }
    if ((rc = farm_stitch_check_manifest(cfg_digest, &cfg_size, child, media, man,
                                         man_len)) < 0)
        goto done;
    if (cfg_size > FARM_STITCH_CONFIG_MAX) {
        rc = farm_error_set(FARM_ETOOBIG, "%s child %s: image config %s is %llu bytes, over "
                            "the %u byte limit", plat, child->digest, cfg_digest,
                            (unsigned long long)cfg_size, FARM_STITCH_CONFIG_MAX);
        goto done;
    }
    rc = farm_registry_blob_get(reg, &cfg, &cfg_len, req->repository, cfg_digest,
                                (size_t)cfg_size);
    if (rc == FARM_ENOTFOUND) {
        rc = farm_error_set(FARM_ENOTFOUND, "%s child %s: its image config %s is not in %s/%s",
                            plat, child->digest, cfg_digest, req->registry, req->repository);
        goto done;
    }
    if (rc < 0) {
        rc = farm_error_wrap(rc, "%s child %s: reading image config %s", plat, child->digest,
                             cfg_digest);
        goto done;
    }
    rc = farm_stitch_check_config(child, cfg_digest, cfg_size, cfg, cfg_len);
done:
    free(man);
    free(cfg);
    return rc;
}

int farm_stitch_run(char out_digest[FARM_DIGEST_STRLEN], uint64_t *out_size,
                    size_t *out_tried, farm_descriptor_t **out_kept, size_t *out_n_kept,
                    const farm_stitch_req_t *req)
{
    /* the submitter's login, else the farm's own only where farm.yaml grants it, else
     * anonymous: never the coordinator's login on a client's behalf by default */
    farm_registry_opts_t opts = {.insecure = req->insecure,
                                 .explicit_creds = req->creds || !req->farm_credentials,
                                 .creds = req->creds,
                                 .ca_pem = req->ca_pem,
                                 .ca_pem_len = req->ca_pem_len};
    farm_stitch_target_t *tg = calloc(req->n_targets + 1, sizeof *tg);
    farm_registry_t **regs = calloc(req->n_targets + 1, sizeof *regs);
    char **rtags = calloc(req->n_tags + 1, sizeof *rtags);
    char *json = NULL, pushed[FARM_DIGEST_STRLEN];
    size_t len = 0, n_repos = req->n_targets + 1;
    int rc = 0;

    *out_tried = 0;
    *out_kept = NULL;
    *out_n_kept = 0;
    if (!tg || !regs || !rtags || !(regs[0] = farm_registry_new(req->registry, &opts))) {
        rc = FARM_ERROR;
        goto done;
    }
    /* repository 0 is the build's own; the others are coordinator/targets.h's */
    tg[0] = (farm_stitch_target_t){.registry = req->registry, .repository = req->repository};
    for (size_t k = 1; k < n_repos; k++) {
        const farm_stitch_target_t *t = &req->targets[k - 1];
        farm_registry_opts_t o = {.insecure = t->insecure,
                                  .explicit_creds = t->creds || !t->farm_credentials,
                                  .creds = t->creds, .ca_pem = t->ca_pem,
                                  .ca_pem_len = t->ca_pem_len};
        tg[k] = *t;
        if (!(regs[k] = farm_registry_new(t->registry, &o))) {
            rc = FARM_ERROR;
            goto done;
        }
    }
    for (size_t i = 0; req->tag_targets && i < req->n_tags; i++)
        if (req->tag_targets[i] >= n_repos) {
            rc = farm_error_set(FARM_EINVALID, "stitch request: tag %s names repository %u of "
                                "%zu", req->tags[i], (unsigned)req->tag_targets[i], n_repos);
            goto done;
        }
    for (size_t k = 0; k < n_repos; k++)
        for (size_t i = 0; i < req->n_children; i++)
            if ((rc = farm_stitch_verify_child(regs[k], &tg[k], &req->children[i])) < 0)
                goto done;
    if ((rc = farm_oci_index_compose(&json, &len, req->children, req->n_children, req->ann_keys,
                                     req->ann_values, req->n_ann)) < 0)
        goto done;
    /* after the children's checks (only verified images are attested) and before the
     * amend's merge (which puts the new attestations, then the kept ones): the same
     * attestation manifests in every repository, the index's entries once */
    for (size_t k = 0; req->attest && k < n_repos; k++) {
        json_t *extra = NULL;
        rc = farm_attest_push(&extra, regs[k], tg[k].registry, tg[k].repository, req->attest,
                              req->children, req->attest_children, req->n_children);
        if (rc == 0 && k == 0)
            rc = farm_attest_index_append(&json, &len, extra);
        json_decref(extra);
        if (rc < 0)
            goto done;
    }
    /* --amend: the other platforms of the index under the tag, each checked as above */
    if (req->amend_tag && req->amend_tag[0] &&
        (rc = farm_amend_stitch(&json, &len, out_kept, out_n_kept, regs, tg, n_repos,
                                req->amend_tag, req->signing_key)) < 0)
        goto done;
    farm_digest_buffer(out_digest, json, len);
    *out_size = len;
    /* no tag to move (builds submitted later took them all): the index is still pushed,
     * by digest, so the build's result names something the registry holds; with several
     * repositories the index is in each before any tag moves (all or nothing) */
    for (size_t k = 0; (req->n_tags == 0 || n_repos > 1) && k < n_repos; k++) {
        rc = farm_registry_manifest_put(regs[k], pushed, tg[k].repository, out_digest,
                                        FARM_MEDIA_OCI_INDEX, json, len);
        if (rc < 0) {
            farm_error_wrap(rc, "pushing the index to %s/%s@%s (no tag was moved)",
                            tg[k].registry, tg[k].repository, out_digest);
            goto done;
        }
    }
    for (size_t i = 0; i < req->n_tags; i++) {
        uint32_t k = req->tag_targets ? req->tag_targets[i] : 0;
        *out_tried = i + 1;
        rc = farm_registry_manifest_put(regs[k], pushed, tg[k].repository, req->tags[i],
                                        FARM_MEDIA_OCI_INDEX, json, len);
        if (rc < 0) {
            farm_error_wrap(rc, "pushing the index to %s/%s:%s", tg[k].registry,
                            tg[k].repository, req->tags[i]);
            goto done;
        }
        if (strcmp(pushed, out_digest) != 0) {
            rc = farm_error_set(FARM_EINVALID, "index digest mismatch after push: %s vs %s",
                                pushed, out_digest);
            goto done;
        }
    }
    /* signed in each repository, under the tags that went there (none: by digest) */
    for (size_t k = 0; req->signing_key && k < n_repos; k++) {
        size_t n = 0;
        for (size_t i = 0; i < req->n_tags; i++)
            if ((req->tag_targets ? req->tag_targets[i] : 0) == k)
                rtags[n++] = req->tags[i];
        rc = farm_sign_repository(req->signed_out, regs[k], tg[k].registry, tg[k].repository,
                                  json, len, rtags, n, req->signing_key);
        if (rc < 0) {
            farm_error_wrap(rc, "the index %s was pushed to %s/%s but not signed", out_digest,
                            tg[k].registry, tg[k].repository);
            goto done;
        }
    }
done:
    free(rtags);
    free(json);
    for (size_t k = 0; regs && k < n_repos; k++)
        farm_registry_destroy(&regs[k]);
    free(regs);
    free(tg);
    return rc;
}

/* ------------------------------------------------------------------ the helper program */

static int s_result_tried(int ok, const char *error, const char *digest, uint64_t size,
                          size_t tried, const farm_descriptor_t *kept, size_t n_kept,
                          const farm_sign_out_t *sig)
{
    Farm__StitchResult r = FARM__STITCH_RESULT__INIT;
    Farm__Descriptor *kd = calloc(n_kept + 1, sizeof *kd);
    Farm__Descriptor **kp = calloc(n_kept + 1, sizeof *kp);
    char (*plats)[FARM_PLATFORM_STRLEN] = calloc(n_kept + 1, sizeof *plats);
    int rc;

    /* --amend: the images kept from the amended index */
    for (size_t i = 0; kd && kp && plats && i < n_kept; i++) {
        farm__descriptor__init(&kd[i]);
        kd[i].media_type = (char *)kept[i].media_type;
        kd[i].digest = (char *)kept[i].digest;
        kd[i].size = kept[i].size;
        farm_platform_format(plats[i], sizeof plats[i], &kept[i].platform);
        kd[i].platform = plats[i];
        kp[i] = &kd[i];
        r.n_kept++;
    }
    r.kept = kp;

    r.tags_tried = (uint32_t)tried;
    r.registry_retries = (uint32_t)farm_registry_retries_total();
    if (ok && sig && sig->n_identities) {
        r.n_signed_identities = sig->n_identities;
        r.signed_identities = sig->identities;
        r.signing_key_id = (char *)sig->key_id;
        r.signed_manifests = sig->manifests;
        r.sign_ms = (uint64_t)sig->ms;
    }

    r.ok = ok;
    r.error = (char *)(error ? error : "");
    r.index_digest = (char *)(digest ? digest : "");
    r.index_size = size;
    rc = farm_wire_result(&r.base) < 0 || !ok;
    free(kd);
    free(kp);
    free(plats);
    return rc;
}

/* A result before any tag was tried. */
static int s_result(int ok, const char *error, const char *digest, uint64_t size)
{
    return s_result_tried(ok, error, digest, size, 0, NULL, 0, NULL);
}

int farm_stitch_main(void)
{
    Farm__StitchRequest *req = NULL;
    farm_descriptor_t *children = NULL;
    farm_stitch_req_t sr = {0};
    farm_registry_creds_t creds = {0}, *tcreds = NULL;
    farm_attest_wire_t aw = {0};
    farm_stitch_target_t *targets = NULL;
    farm_descriptor_t *kept = NULL;
    size_t n_kept = 0;
    farm_sign_out_t sig = {0};
    EVP_PKEY *key = NULL;
    const char **ann = NULL;
    char digest[FARM_DIGEST_STRLEN];
    uint64_t size = 0;
    void *raw = NULL;
    size_t len = 0;
    int rc;

    if (farm_child_request_read(&raw, &len, FARM_WIRE_MAXMSG) < 0)
        return s_result(0, farm_error_last(), NULL, 0);
    req = farm__stitch_request__unpack(NULL, len, raw);
    explicit_bzero(raw, len);
    free(raw);
    if (!req)
        return s_result(0, "malformed stitch request", NULL, 0);
    if (req->n_index_annotations > FARM_ANNOTATIONS_MAX) {
        farm__stitch_request__free_unpacked(req, NULL);
        return s_result(0, "too many index annotations in the stitch request", NULL, 0);
    }
    children = calloc(req->n_children + 1, sizeof *children);
    ann = calloc(2 * req->n_index_annotations + 1, sizeof *ann);
    if (!children || !ann) {
        free(children);
        free(ann);
        farm__stitch_request__free_unpacked(req, NULL);
        return s_result(0, "out of memory", NULL, 0);
    }
    for (size_t i = 0; i < req->n_children; i++) {
        const Farm__Descriptor *d = req->children[i];
        farm_descriptor_t *c = &children[i];
        if (snprintf(c->media_type, sizeof c->media_type, "%s", d->media_type) >=
                (int)sizeof c->media_type ||
            !farm_digest_valid(d->digest) || farm_platform_parse(&c->platform, d->platform) < 0) {
            rc = s_result(0, "bad child descriptor in the stitch request", NULL, 0);
            goto done;
        }
        snprintf(c->digest, sizeof c->digest, "%s", d->digest);
        c->size = d->size;
    }
    sr.registry = req->registry;
    sr.repository = req->repository;
    sr.insecure = req->insecure;
    sr.children = children;
    sr.n_children = req->n_children;
    sr.tags = req->tags;
    sr.n_tags = req->n_tags;
    if (req->credential && req->credential->secret[0] &&
        strcmp(req->credential->registry, req->registry) == 0) {
        creds.username = req->credential->username;
        creds.secret = req->credential->secret;
        creds.identity_token = req->credential->identity_token;
        sr.creds = &creds;
    }
    sr.farm_credentials = req->farm_credentials;
    for (size_t i = 0; i < req->n_index_annotations; i++) {
        ann[i] = req->index_annotations[i]->key;
        ann[req->n_index_annotations + i] = req->index_annotations[i]->value;
    }
    sr.ann_keys = ann;
    sr.ann_values = ann + req->n_index_annotations;
    sr.n_ann = req->n_index_annotations;
    sr.ca_pem = req->ca_pem.len ? (const char *)req->ca_pem.data : NULL;
    sr.ca_pem_len = req->ca_pem.len;
    if (farm_targets_from_stitch(&targets, &tcreds, &sr, req) < 0) {
        rc = s_result(0, farm_error_last(), NULL, 0);
        goto done;
    }
    sr.amend_tag = req->amend_tag[0] ? req->amend_tag : NULL;
    if (req->signing_secret_key_pem.len) {
        int krc = farm_sigstore_key_parse(&key, req->signing_secret_key_pem.data,
                                          req->signing_secret_key_pem.len, "the signing key");
        explicit_bzero(req->signing_secret_key_pem.data, req->signing_secret_key_pem.len);
        if (krc < 0) {
            rc = s_result(0, farm_error_last(), NULL, 0);
            goto done;
        }
        sr.signing_key = key;
        sr.signed_out = &sig;
    }
    if (req->provenance) {
        if (farm_attest_from_wire(&aw, req->provenance, req->n_children) < 0) {
            rc = s_result(0, farm_error_last(), NULL, 0);
            goto done;
        }
        aw.build.registry = req->registry;
        aw.build.repository = req->repository;
        aw.build.tags = req->tags;
        aw.build.n_tags = req->n_tags;
        /* each tag's subject names the repository the tag goes to */
        if (!(aw.tag_where = calloc(2 * req->n_tags + 1, sizeof *aw.tag_where))) {
            rc = s_result(0, "out of memory", NULL, 0);
            goto done;
        }
        for (size_t i = 0; i < req->n_tags; i++) {
            uint32_t k = sr.tag_targets ? sr.tag_targets[i] : 0;
            int other = k > 0 && k <= sr.n_targets;
            aw.tag_where[i] = other ? sr.targets[k - 1].registry : req->registry;
            aw.tag_where[req->n_tags + i] = other ? sr.targets[k - 1].repository
                                                  : req->repository;
        }
        aw.build.tag_registries = aw.tag_where;
        aw.build.tag_repositories = aw.tag_where + req->n_tags;
        sr.attest = &aw.build;
        sr.attest_children = aw.children;
    }
    size_t tried = 0;
    if (farm_stitch_run(digest, &size, &tried, &kept, &n_kept, &sr) < 0)
        rc = s_result_tried(0, farm_error_last(), NULL, 0, tried, NULL, 0, NULL);
    else
        rc = s_result_tried(1, NULL, digest, size, tried, kept, n_kept, &sig);
done:
    farm_attest_wire_free(&aw);
    EVP_PKEY_free(key);
    farm_sign_out_clear(&sig);
    free(children);
    free(ann);
    free(targets);
    free(tcreds);
    free(kept);
    if (req->credential) {
        explicit_bzero(req->credential->secret, strlen(req->credential->secret));
        explicit_bzero(req->credential->username, strlen(req->credential->username));
    }
    for (size_t k = 0; k < req->n_targets; k++)
        if (req->targets[k]->credential) {
            Farm__RegistryCredential *c = req->targets[k]->credential;
            explicit_bzero(c->secret, strlen(c->secret));
            explicit_bzero(c->username, strlen(c->username));
        }
    farm__stitch_request__free_unpacked(req, NULL);
    return rc;
}
