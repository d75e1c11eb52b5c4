/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/sign.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/error.h"
#include "common/limits.h"
#include "common/proc.h"
#include "common/sigstore.h"
#include "coordinator/job.h"

#define S_MEDIA_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define S_CREATOR "farm " FARM_VERSION

void farm_sign_out_clear(farm_sign_out_t *out)
{
    for (size_t i = 0; i < out->n_identities; i++)
        free(out->identities[i]);
    free(out->identities);
    memset(out, 0, sizeof *out);
}

int farm_sign_keep(struct farm_build *b, const Farm__StitchResult *r)
{
    farm_sign_out_t *o = &b->signed_info;

    farm_sign_out_clear(o);
    if (!r->n_signed_identities || !farm_digest_valid(r->signing_key_id) ||
        r->n_signed_identities > FARM_SIGSTORE_LAYERS_MAX)
        return farm_error_set(FARM_EINVALID, "the index push was to sign the index but its "
                              "helper reports no signature; the index is not signed");
    if (!(o->identities = calloc(r->n_signed_identities, sizeof *o->identities)))
        return farm_error_set(FARM_ERROR, "coordinator out of memory");
    for (size_t i = 0; i < r->n_signed_identities; i++) {
        if (!(o->identities[i] = strdup(r->signed_identities[i]))) {
            farm_sign_out_clear(o);
            return farm_error_set(FARM_ERROR, "coordinator out of memory");
        }
        o->n_identities++;
    }
    snprintf(o->key_id, sizeof o->key_id, "%s", r->signing_key_id);
    o->manifests = r->signed_manifests;
    o->ms = (long long)r->sign_ms;
    return 0;
}

/* Pushes bytes as a blob; out_digest is theirs. */
static int s_push_bytes(farm_registry_t *reg, const char *repo, const void *data, size_t len,
                        char out_digest[FARM_DIGEST_STRLEN])
{
    farm_digest_buffer(out_digest, data, len);
    return farm_registry_blob_push_mem(reg, NULL, repo, out_digest, data, len);
}

/* The layers of the .sig manifest there now: a new array of copies, or an empty one when
 * there is none. A manifest that is not one (junk under the tag) holds no signature any
 * verifier accepts: it is replaced, and said so. */
static int s_existing_layers(json_t **out, farm_registry_t *reg, const char *repo,
                             const char *tag)
{
    char media[128] = "", *body = NULL;
    size_t len = 0;
    json_t *root = NULL, *layers;
    int rc;

    *out = NULL;
    rc = farm_registry_manifest_get(reg, &body, &len, media, sizeof media, repo, tag);
    if (rc == FARM_ENOTFOUND) {
        *out = json_array();
        return *out ? 0 : farm_error_set(FARM_ERROR, "out of memory");
    }
    if (rc < 0)
        return farm_error_wrap(rc, "reading %s:%s", repo, tag);
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    free(body);
    layers = json_object_get(root, "layers");
    if (!json_is_array(layers) || strcmp(media, FARM_MEDIA_OCI_MANIFEST) != 0) {
        printf("%s:%s is not an OCI manifest with layers (%s): replaced by farm's signatures\n",
               repo, tag, media);
        layers = NULL;
    }
    *out = layers ? json_deep_copy(layers) : json_array();
    json_decref(root);
    return *out ? 0 : farm_error_set(FARM_ERROR, "out of memory");
}

/* 1 when layers hold payload (by digest) with a signature key makes valid. */
static int s_already_signed(const json_t *layers, const char *payload_digest,
                            const char *payload, size_t payload_len, EVP_PKEY *key)
{
    size_t i;
    json_t *l;

    json_array_foreach(layers, i, l) {
        const char *d = json_string_value(json_object_get(l, "digest"));
        const char *s = json_string_value(
            json_object_get(json_object_get(l, "annotations"), FARM_SIGSTORE_ANNOTATION));
        if (d && s && strcmp(d, payload_digest) == 0 &&
            farm_sigstore_verify(key, payload, payload_len, s) == 0)
            return 1;
    }
    return 0;
}

/* Puts the .sig manifest with these layers under tag: a config naming them (as cosign
 * writes it; containers/image does not read it), then the manifest. */
static int s_put_sig_manifest(farm_registry_t *reg, const char *repo, const char *tag,
                              json_t *layers)
{
    json_t *diff = json_array(), *cfg = NULL, *man = NULL, *l;
    char *cfg_s = NULL, *man_s = NULL, cfg_digest[FARM_DIGEST_STRLEN];
    size_t i;
    int rc = 0;

    json_array_foreach(layers, i, l)
        json_array_append(diff, json_object_get(l, "digest"));
    cfg = json_pack("{s:s,s:{},s:s,s:[{s:s}],s:s,s:{s:s,s:o}}", "architecture", "", "config",
                    "created", "0001-01-01T00:00:00Z", "history", "created",
                    "0001-01-01T00:00:00Z", "os", "", "rootfs", "type", "layers", "diff_ids",
                    diff);
    if (!cfg || !(cfg_s = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    if ((rc = s_push_bytes(reg, repo, cfg_s, strlen(cfg_s), cfg_digest)) < 0)
        goto done;
    man = json_pack("{s:i,s:s,s:{s:s,s:I,s:s},s:O}", "schemaVersion", 2, "mediaType",
                    FARM_MEDIA_OCI_MANIFEST, "config", "mediaType", S_MEDIA_OCI_CONFIG, "size",
                    (json_int_t)strlen(cfg_s), "digest", cfg_digest, "layers", layers);
    if (!man || !(man_s = json_dumps(man, JSON_COMPACT))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    rc = farm_registry_manifest_put(reg, NULL, repo, tag, FARM_MEDIA_OCI_MANIFEST, man_s,
                                    strlen(man_s));
done:
    json_decref(cfg);
    json_decref(man);
    free(cfg_s);
    free(man_s);
    return rc;
}

/* Signs one manifest digest for every identity, in repo's .sig manifest of it. */
static int s_sign_digest(farm_registry_t *reg, const char *repo, const char *digest,
                         char *const *identities, size_t n_identities, EVP_PKEY *key)
{
    char tag[FARM_SIGSTORE_TAG_LEN], pd[FARM_DIGEST_STRLEN];
    json_t *layers = NULL, *layer;
    size_t added = 0;
    int rc;

    if ((rc = farm_sigstore_tag(tag, digest)) < 0 ||
        (rc = s_existing_layers(&layers, reg, repo, tag)) < 0)
        return rc;
    for (size_t i = 0; i < n_identities; i++) {
        char *payload = NULL, *sig = NULL;
        size_t plen = 0;
        if ((rc = farm_sigstore_payload(&payload, &plen, identities[i], digest, S_CREATOR)) < 0)
            goto next;
        farm_digest_buffer(pd, payload, plen);
        if (s_already_signed(layers, pd, payload, plen, key))
            goto next;
        if ((rc = farm_sigstore_sign(&sig, key, payload, plen)) < 0 ||
            (rc = s_push_bytes(reg, repo, payload, plen, pd)) < 0)
            goto next;
        layer = json_pack("{s:s,s:I,s:s,s:{s:s}}", "mediaType", FARM_SIGSTORE_PAYLOAD_TYPE,
                          "size", (json_int_t)plen, "digest", pd, "annotations",
                          FARM_SIGSTORE_ANNOTATION, sig);
        if (!layer || json_array_append_new(layers, layer) < 0)
            rc = farm_error_set(FARM_ERROR, "out of memory");
        added++;
    next:
        free(payload);
        free(sig);
        if (rc < 0)
            goto done;
    }
    /* an image rebuilt unchanged under a new tag each time (a tag per commit) gains a
     * signature each time: past the bound the oldest go, rather than fail the build */
    if (json_array_size(layers) > FARM_SIGSTORE_LAYERS_MAX) {
        size_t drop = json_array_size(layers) - FARM_SIGSTORE_LAYERS_MAX;
        for (size_t i = 0; i < drop; i++)
            json_array_remove(layers, 0);
        printf("%s:%s: the %zu oldest signature(s) dropped to stay within %u\n", repo, tag,
               drop, FARM_SIGSTORE_LAYERS_MAX);
    }
    if (added)
        rc = s_put_sig_manifest(reg, repo, tag, layers);
done:
    json_decref(layers);
    return rc < 0 ? farm_error_wrap(rc, "signing %s in %s", digest, repo) : 0;
}

/* The index's digest and the digests it lists, index first. */
static int s_digests(char ***out, size_t *out_n, const char *index_json, size_t index_len)
{
    json_t *root = json_loadb(index_json, index_len, 0, NULL), *m;
    json_t *ms = json_object_get(root, "manifests");
    char **d = NULL, idx[FARM_DIGEST_STRLEN];
    size_t n = 0, i;
    int rc = 0;

    *out = NULL;
    *out_n = 0;
    if (!json_is_array(ms) || !(d = calloc(json_array_size(ms) + 1, sizeof *d))) {
        json_decref(root);
        return farm_error_set(FARM_EINVALID, "the index to sign lists no manifests");
    }
    farm_digest_buffer(idx, index_json, index_len);
    if (!(d[n++] = strdup(idx)))
        rc = farm_error_set(FARM_ERROR, "out of memory");
    json_array_foreach(ms, i, m) {
        const char *s = json_string_value(json_object_get(m, "digest"));
        if (rc < 0)
            break;
        if (!s || !farm_digest_valid(s)) {
            rc = farm_error_set(FARM_EINVALID, "the index to sign lists a manifest without a "
                                "sha256 digest");
            break;
        }
        if (!(d[n++] = strdup(s)))
            rc = farm_error_set(FARM_ERROR, "out of memory");
    }
    json_decref(root);
    if (rc < 0) {
        for (i = 0; i < n; i++)
            free(d[i]);
        free(d);
        return rc;
    }
    *out = d;
    *out_n = n;
    return 0;
}

int farm_sign_repository(farm_sign_out_t *out, farm_registry_t *reg, const char *registry,
                         const char *repository, const char *index_json, size_t index_len,
                         char *const *tags, size_t n_tags, EVP_PKEY *key)
{
    long long t0 = farm_now_ms();
    size_t n_ids = n_tags ? n_tags : 1, n_digests = 0, made = 0;
    char **ids = calloc(n_ids, sizeof *ids), **digests = NULL, **grown;
    int rc;

    if (!ids)
        return farm_error_set(FARM_ERROR, "out of memory");
    if ((rc = s_digests(&digests, &n_digests, index_json, index_len)) < 0)
        goto done;
    if (!out->key_id[0] && (rc = farm_sigstore_key_id(out->key_id, key)) < 0)
        goto done;
    for (made = 0; made < n_ids; made++) {
        int n = n_tags ? asprintf(&ids[made], "%s/%s:%s", registry, repository, tags[made])
                       : asprintf(&ids[made], "%s/%s@%s", registry, repository, digests[0]);
        if (n < 0) {
            ids[made] = NULL;
            rc = farm_error_set(FARM_ERROR, "out of memory");
            goto done;
        }
    }
    for (size_t i = 0; i < n_digests; i++)
        if ((rc = s_sign_digest(reg, repository, digests[i], ids, n_ids, key)) < 0)
            goto done;
    if (!(grown = realloc(out->identities, (out->n_identities + n_ids) * sizeof *grown))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    out->identities = grown;
    for (size_t i = 0; i < n_ids; i++) {
        out->identities[out->n_identities++] = ids[i];
        ids[i] = NULL;
    }
    out->manifests = (unsigned)n_digests;
    printf("signed %s/%s@%s and the %zu manifest(s) it lists for %zu identit%s with key %s\n",
           registry, repository, digests[0], n_digests - 1, n_ids, n_ids == 1 ? "y" : "ies",
           out->key_id);
done:
    out->ms += farm_now_ms() - t0;
    for (size_t i = 0; i < made; i++)
        free(ids[i]);
    free(ids);
    for (size_t i = 0; i < n_digests; i++)
        free(digests[i]);
    free(digests);
    return rc;
}

/* The identity names registry/repository (with a tag or a digest after it). */
static int s_identity_in(const char *identity, const char *registry, const char *repository)
{
    size_t r = strlen(registry), p = strlen(repository);
    return strncmp(identity, registry, r) == 0 && identity[r] == '/' &&
           strncmp(identity + r + 1, repository, p) == 0 &&
           (identity[r + 1 + p] == ':' || identity[r + 1 + p] == '@');
}

int farm_sign_check_kept(farm_registry_t *reg, const char *registry, const char *repository,
                         const char *digest, EVP_PKEY *key)
{
    char tag[FARM_SIGSTORE_TAG_LEN], mt[128] = "";
    char *body = NULL;
    size_t len = 0, i;
    json_t *root = NULL, *l;
    int rc, found = 0;

    if ((rc = farm_sigstore_tag(tag, digest)) < 0)
        return rc;
    rc = farm_registry_manifest_get(reg, &body, &len, mt, sizeof mt, repository, tag);
    if (rc == FARM_ENOTFOUND)
        return farm_error_set(FARM_EAUTH, "%s/%s@%s has no signature: this farm did not push "
                              "it", registry, repository, digest);
    if (rc < 0)
        return farm_error_wrap(rc, "reading the signatures of %s/%s@%s", registry, repository,
                               digest);
    root = json_loadb(body, len, 0, NULL);
    json_array_foreach(json_object_get(root, "layers"), i, l) {
        const char *d = json_string_value(json_object_get(l, "digest"));
        const char *sig = json_string_value(
            json_object_get(json_object_get(l, "annotations"), FARM_SIGSTORE_ANNOTATION));
        char *payload = NULL, identity[FARM_SIGSTORE_IDENTITY_MAX], signs[FARM_DIGEST_STRLEN];
        size_t plen = 0;
        if (i >= FARM_SIGSTORE_LAYERS_MAX)
            break;
        if (!d || !sig || !farm_digest_valid(d) ||
            farm_registry_blob_get(reg, &payload, &plen, repository, d,
                                   FARM_SIGSTORE_PAYLOAD_MAX) < 0)
            continue;
        found = farm_sigstore_verify(key, payload, plen, sig) == 0 &&
                farm_sigstore_payload_parse(identity, signs, payload, plen) == 0 &&
                strcmp(signs, digest) == 0 && s_identity_in(identity, registry, repository);
        free(payload);
        if (found)
            break;
    }
    json_decref(root);
    free(body);
    if (!found)
        return farm_error_set(FARM_EAUTH, "%s/%s@%s is not signed by this farm's key (its "
                              "signatures are another key's, or name another image)", registry,
                              repository, digest);
    return 0;
}
