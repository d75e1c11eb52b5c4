/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/amend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/error.h"
#include "common/limits.h"
#include "coordinator/sign.h"

#define S_REF_DIGEST "vnd.docker.reference.digest"

static int s_is_index_type(const char *mt)
{
    return !strcmp(mt, FARM_MEDIA_OCI_INDEX) || !strcmp(mt, FARM_MEDIA_DOCKER_LIST);
}

static int s_str(const json_t *o, const char *key, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = json_is_string(v) ? json_string_value(v) : NULL;
    return v && !json_is_string(v) ? -1 : 0;
}

/* An entry's descriptor and platform; *attestation when it is one (unknown/unknown). */
static int s_entry(farm_amend_kept_t *out, const char *ref, const json_t *e, size_t i)
{
    const char *mt, *dg, *os = NULL, *arch = NULL, *var = NULL;
    json_t *size = json_object_get(e, "size"), *p = json_object_get(e, "platform");

    memset(out, 0, sizeof *out);
    out->entry = i;
    if (!json_is_object(e) || s_str(e, "mediaType", &mt) < 0 || s_str(e, "digest", &dg) < 0 ||
        !mt || !dg || !farm_digest_valid(dg) || !json_is_integer(size) ||
        json_integer_value(size) < 0 || (p && !json_is_object(p)) ||
        strlen(mt) >= sizeof out->d.media_type)
        return farm_error_set(FARM_EINVALID, "%s: index entry %zu is not a descriptor with a "
                              "media type, a sha256 digest and a size", ref, i + 1);
    snprintf(out->d.media_type, sizeof out->d.media_type, "%s", mt);
    snprintf(out->d.digest, sizeof out->d.digest, "%s", dg);
    out->d.size = (uint64_t)json_integer_value(size);
    if (p && (s_str(p, "os", &os) < 0 || s_str(p, "architecture", &arch) < 0 ||
              s_str(p, "variant", &var) < 0))
        return farm_error_set(FARM_EINVALID, "%s: index entry %zu (%s): its platform's "
                              "fields are not strings", ref, i + 1, dg);
    if (os && arch && !strcmp(os, "unknown") && !strcmp(arch, "unknown")) {
        out->attestation = 1;
        return 0;
    }
    if (!os || !arch)
        return farm_error_set(FARM_EINVALID, "%s: index entry %zu (%s) names no platform "
                              "(os and architecture): farm cannot tell whether --amend "
                              "replaces or keeps it", ref, i + 1, dg);
    if (s_is_index_type(mt))
        return farm_error_set(FARM_EINVALID, "%s: index entry %zu (%s) is itself an index "
                              "(%s); farm keeps only single-platform images", ref, i + 1, dg,
                              mt);
    if (farm_platform_from_config(&out->d.platform, os, arch, var) < 0)
        return farm_error_wrap(FARM_EINVALID, "%s: index entry %zu (%s)", ref, i + 1, dg);
    return 0;
}

static const char *s_attests(const json_t *e)
{
    json_t *a = json_object_get(e, "annotations");
    json_t *v = json_is_object(a) ? json_object_get(a, S_REF_DIGEST) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int s_append(json_t *arr, json_t *e)
{
    if (json_array_append(arr, e) < 0)
        return farm_error_set(FARM_ERROR, "out of memory composing the index");
    return 0;
}

int farm_amend_merge(char **out_json, size_t *out_len, farm_amend_kept_t **out_kept,
                     size_t *out_n_kept, const char *ref, const char *served_type,
                     const char *old, size_t old_len, const char *new_json, size_t new_len)
{
    json_t *o = NULL, *n = NULL, *om, *nm, *mans = NULL, *root = NULL, *ann = NULL, *v;
    farm_amend_kept_t *kept = NULL, *nd = NULL;
    unsigned char *used = NULL, *keep_img = NULL;
    size_t n_kept = 0, i;
    json_error_t jerr;
    const char *mt;
    int rc = 0;

    *out_json = NULL;
    *out_len = 0;
    *out_kept = NULL;
    *out_n_kept = 0;
    if (!(o = json_loadb(old, old_len, JSON_REJECT_DUPLICATES, &jerr)) || !json_is_object(o)) {
        rc = farm_error_set(FARM_EINVALID, "%s is not a JSON object (%s); nothing to amend",
                            ref, o ? "another JSON value" : jerr.text);
        goto done;
    }
    if (s_str(o, "mediaType", &mt) < 0) {
        rc = farm_error_set(FARM_EINVALID, "%s: mediaType is not a string", ref);
        goto done;
    }
    if (!mt)
        mt = served_type ? served_type : "";
    om = json_object_get(o, "manifests");
    if (!s_is_index_type(mt) || !json_is_array(om)) {
        rc = farm_error_set(FARM_EINVALID, "%s is a single image (%s), not a multi-platform "
                            "index: --amend keeps the other platforms of an index; submit "
                            "every platform without --amend instead", ref,
                            mt[0] ? mt : "no manifests list");
        goto done;
    }
    if (json_array_size(om) > FARM_AMEND_ENTRIES_MAX) {
        rc = farm_error_set(FARM_EINVALID, "%s has %zu entries, over the %d farm amends", ref,
                            json_array_size(om), FARM_AMEND_ENTRIES_MAX);
        goto done;
    }
    if (!(n = json_loadb(new_json, new_len, 0, &jerr)) ||
        !json_is_array(nm = json_object_get(n, "manifests"))) {
        rc = farm_error_set(FARM_EINVALID, "the new index is not an index (%s)", jerr.text);
        goto done;
    }
    kept = calloc(json_array_size(om) + 1, sizeof *kept);
    nd = calloc(json_array_size(nm) + 1, sizeof *nd);
    used = calloc(json_array_size(nm) + 1, 1);
    keep_img = calloc(json_array_size(om) + 1, 1);
    if (!kept || !nd || !used || !keep_img || !(mans = json_array()) || !(root = json_object())) {
        rc = farm_error_set(FARM_ERROR, "out of memory composing the index");
        goto done;
    }
    json_array_foreach(nm, i, v)
        if ((rc = s_entry(&nd[i], "the new index", v, i)) < 0)
            goto done;
    /* images: kept in place, or replaced there by the new image of their platform */
    json_array_foreach(om, i, v) {
        farm_amend_kept_t e;
        size_t k, found = (size_t)-1;
        if ((rc = s_entry(&e, ref, v, i)) < 0)
            goto done;
        if (e.attestation)
            continue;
        for (k = 0; k < json_array_size(nm) && found == (size_t)-1; k++)
            if (!nd[k].attestation && farm_platform_equal(&nd[k].d.platform, &e.d.platform))
                found = k;
        if (found != (size_t)-1) {
            if (!used[found] && (rc = s_append(mans, json_array_get(nm, found))) < 0)
                goto done;
            used[found] = 1;
            continue;
        }
        for (k = 0; k < n_kept; k++)
            if (!kept[k].attestation && farm_platform_equal(&kept[k].d.platform, &e.d.platform)) {
                char pf[FARM_PLATFORM_STRLEN];
                farm_platform_format(pf, sizeof pf, &e.d.platform);
                rc = farm_error_set(FARM_EINVALID, "%s: index entries %zu and %zu both claim "
                                    "%s", ref, kept[k].entry + 1, i + 1, pf);
                goto done;
            }
        kept[n_kept++] = e;
        keep_img[i] = 1;
        if ((rc = s_append(mans, v)) < 0)
            goto done;
    }
    json_array_foreach(nm, i, v)
        if (!used[i] && !nd[i].attestation && (rc = s_append(mans, v)) < 0)
            goto done;
    /* attestations: the new index's, then the old ones of the images kept */
    json_array_foreach(nm, i, v)
        if (nd[i].attestation && (rc = s_append(mans, v)) < 0)
            goto done;
    json_array_foreach(om, i, v) {
        farm_amend_kept_t e;
        const char *of;
        int keep = 0;
        if ((rc = s_entry(&e, ref, v, i)) < 0)
            goto done;
        if (!e.attestation)
            continue;
        of = s_attests(v);
        for (size_t k = 0; of && k < json_array_size(om); k++)
            keep |= keep_img[k] && strcmp(of, json_string_value(json_object_get(
                                                   json_array_get(om, k), "digest"))) == 0;
        if (!keep)
            continue; /* of a rebuilt platform, or of nothing the index keeps */
        kept[n_kept++] = e;
        if ((rc = s_append(mans, v)) < 0)
            goto done;
    }
    /* the old index's annotations, the new one's over them */
    v = json_object_get(o, "annotations");
    if (v && !json_is_object(v)) {
        rc = farm_error_set(FARM_EINVALID, "%s: annotations is not an object", ref);
        goto done;
    }
    ann = v ? json_deep_copy(v) : json_object();
    if (!ann || (json_is_object(json_object_get(n, "annotations")) &&
                 json_object_update(ann, json_object_get(n, "annotations")) < 0)) {
        rc = farm_error_set(FARM_ERROR, "out of memory composing the index");
        goto done;
    }
    if (json_object_set_new(root, "schemaVersion", json_integer(2)) < 0 ||
        json_object_set_new(root, "mediaType", json_string(FARM_MEDIA_OCI_INDEX)) < 0 ||
        json_object_set(root, "manifests", mans) < 0 ||
        (json_object_size(ann) && json_object_set(root, "annotations", ann) < 0) ||
        !(*out_json = json_dumps(root, JSON_PRESERVE_ORDER | JSON_COMPACT))) {
        rc = farm_error_set(FARM_ERROR, "out of memory composing the index");
        goto done;
    }
    *out_len = strlen(*out_json);
    *out_kept = kept;
    *out_n_kept = n_kept;
    kept = NULL;
done:
    json_decref(o);
    json_decref(n);
    json_decref(mans);
    json_decref(root);
    json_decref(ann);
    free(kept);
    free(nd);
    free(used);
    free(keep_img);
    return rc;
}

/* A kept attestation manifest: there by digest, with the size and type its entry says. */
static int s_check_attestation(farm_registry_t *reg, const farm_stitch_target_t *t,
                               const farm_amend_kept_t *k, const char *ref)
{
    char got[FARM_DIGEST_STRLEN] = "", mt[128] = "";
    uint64_t size = 0;
    int rc = farm_registry_manifest_head(reg, got, &size, mt, sizeof mt, t->repository,
                                         k->d.digest);

    if (rc == FARM_ENOTFOUND)
        return farm_error_set(FARM_ENOTFOUND, "%s: kept index entry %zu, attestation %s, is "
                              "not in %s/%s", ref, k->entry + 1, k->d.digest, t->registry,
                              t->repository);
    if (rc < 0)
        return farm_error_wrap(rc, "%s: kept index entry %zu, attestation %s", ref,
                               k->entry + 1, k->d.digest);
    if ((got[0] && strcmp(got, k->d.digest) != 0) || size != k->d.size ||
        strcmp(mt, k->d.media_type) != 0)
        return farm_error_set(FARM_EINVALID, "%s: kept index entry %zu, attestation %s: %s/%s "
                              "serves %s, %llu bytes of %s; the entry says %llu bytes of %s",
                              ref, k->entry + 1, k->d.digest, t->registry, t->repository,
                              got[0] ? got : "(no digest)", (unsigned long long)size, mt,
                              (unsigned long long)k->d.size, k->d.media_type);
    return 0;
}

/* A kept manifest (checked in the first repository, from) that repository t of the same
 * registry lacks: its blobs mounted from there, then the manifest put by digest, so the
 * check in t that follows finds it. Another registry is not copied to (its check then
 * says the image is not there). */
static int s_mount_kept(farm_registry_t *reg, const farm_stitch_target_t *t,
                        const farm_stitch_target_t *from, const farm_amend_kept_t *k)
{
    char mt[128] = "", got[FARM_DIGEST_STRLEN], *man = NULL;
    json_t *root = NULL, *layers;
    size_t len = 0, i;
    int rc = farm_registry_manifest_head(reg, NULL, NULL, NULL, 0, t->repository, k->d.digest);

    if (rc != FARM_ENOTFOUND)
        return rc;
    if ((rc = farm_registry_manifest_get(reg, &man, &len, mt, sizeof mt, from->repository,
                                         k->d.digest)) < 0)
        goto done;
    farm_digest_buffer(got, man, len);
    if (strcmp(got, k->d.digest) != 0 ||
        !(root = json_loadb(man, len, JSON_REJECT_DUPLICATES, NULL)) || !json_is_object(root)) {
        rc = farm_error_set(FARM_EINVALID, "%s/%s@%s is not the manifest its digest names",
                            from->registry, from->repository, k->d.digest);
        goto done;
    }
    layers = json_object_get(root, "layers");
    for (i = 0; i <= json_array_size(layers); i++) {
        json_t *d = i == 0 ? json_object_get(root, "config") : json_array_get(layers, i - 1);
        const char *dg = json_string_value(json_object_get(d, "digest"));
        int mounted = 0;
        if (!dg || !farm_digest_valid(dg)) {
            rc = farm_error_set(FARM_EINVALID, "%s/%s@%s names a blob without a sha256 digest",
                                from->registry, from->repository, k->d.digest);
            goto done;
        }
        if ((rc = farm_registry_blob_exists(reg, NULL, t->repository, dg)) == 0)
            continue;
        if (rc != FARM_ENOTFOUND ||
            (rc = farm_registry_blob_mount(reg, &mounted, t->repository, dg,
                                           from->repository)) < 0)
            goto done;
        if (!mounted) {
            rc = farm_error_set(FARM_ERROR, "registry %s would not mount blob %s from %s into "
                                "%s", t->registry, dg, from->repository, t->repository);
            goto done;
        }
    }
    rc = farm_registry_manifest_put(reg, got, t->repository, k->d.digest,
                                    mt[0] ? mt : k->d.media_type, man, len);
done:
    if (rc < 0)
        rc = farm_error_wrap(rc, "copying kept %s into %s/%s", k->d.digest, t->registry,
                             t->repository);
    json_decref(root);
    free(man);
    return rc;
}

int farm_amend_stitch(char **json, size_t *len, farm_descriptor_t **out_kept,
                      size_t *out_n_kept, farm_registry_t *const *regs,
                      const farm_stitch_target_t *t, size_t n_repos, const char *tag,
                      EVP_PKEY *signing_key)
{
    char ref[FARM_REGISTRY_HOST_MAX + 256 + 160], mt[128] = "", *old = NULL, *merged = NULL;
    farm_amend_kept_t *kept = NULL;
    farm_descriptor_t *imgs = NULL;
    size_t old_len = 0, merged_len = 0, n_kept = 0, n_imgs = 0;
    int rc;

    snprintf(ref, sizeof ref, "%s/%s:%s", t[0].registry, t[0].repository, tag);
    rc = farm_registry_manifest_get(regs[0], &old, &old_len, mt, sizeof mt, t[0].repository,
                                    tag);
    if (rc == FARM_ENOTFOUND) {
        rc = farm_error_set(FARM_ENOTFOUND, "%s names no image: --amend keeps the other "
                            "platforms of the index there, and there is none; submit every "
                            "platform without --amend first", ref);
        goto done;
    }
    if (rc < 0) {
        rc = farm_error_wrap(rc, "reading %s, the index to amend", ref);
        goto done;
    }
    if ((rc = farm_amend_merge(&merged, &merged_len, &kept, &n_kept, ref, mt, old, old_len,
                               *json, *len)) < 0)
        goto done;
    if (!(imgs = calloc(n_kept + 1, sizeof *imgs))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    for (size_t k = 0; k < n_repos; k++)
        for (size_t i = 0; i < n_kept; i++) {
            char plat[FARM_PLATFORM_STRLEN];
            /* checked in the first repository already: mounted where another of the same
             * registry lacks it */
            if (k > 0 && strcmp(t[k].registry, t[0].registry) == 0 &&
                (rc = s_mount_kept(regs[k], &t[k], &t[0], &kept[i])) < 0)
                goto done;
            /* signed now, so signed before: farm pushed it (in the first repository,
             * where the amended index is; the others got the same bytes from there) */
            if (k == 0 && signing_key &&
                (rc = farm_sign_check_kept(regs[0], t[0].registry, t[0].repository,
                                           kept[i].d.digest, signing_key)) < 0) {
                rc = farm_error_wrap(rc, "%s: kept index entry %zu refused: --amend signs "
                                     "only what this farm signed before; rebuild that platform "
                                     "too (--platform), or submit every platform without "
                                     "--amend", ref, kept[i].entry + 1);
                goto done;
            }
            if (kept[i].attestation) {
                if ((rc = s_check_attestation(regs[k], &t[k], &kept[i], ref)) < 0)
                    goto done;
                continue;
            }
            farm_platform_format(plat, sizeof plat, &kept[i].d.platform);
            if ((rc = farm_stitch_verify_child(regs[k], &t[k], &kept[i].d)) < 0) {
                rc = farm_error_wrap(rc, "%s: kept index entry %zu (%s, %s) refused", ref,
                                     kept[i].entry + 1, plat, kept[i].d.digest);
                goto done;
            }
            if (k == 0)
                imgs[n_imgs++] = kept[i].d;
        }
    free(*json);
    *json = merged;
    *len = merged_len;
    merged = NULL;
    *out_kept = imgs;
    *out_n_kept = n_imgs;
    imgs = NULL;
done:
    free(old);
    free(merged);
    free(kept);
    free(imgs);
    return rc;
}
