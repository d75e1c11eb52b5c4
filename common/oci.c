/* SPDX-License-Identifier: Apache-2.0 */
/* OCI image layouts (read what the builder wrote, push it by digest) and image indexes.
 * image-spec: image-layout.md, manifest.md, config.md, image-index.md. */
#include "common/oci.h"

#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_LAYOUT_MAX (64u << 10)  /* oci-layout: a one-line JSON file */
#define S_INDEX_MAX (4u << 20)    /* index.json: same ceiling as any manifest */
#define S_CONFIG_MAX (8u << 20)   /* image config: history + env can be large, not huge */
#define OCI_BLOB_UNKNOWN_RETRIES 3 /* manifest puts again after MANIFEST_BLOB_UNKNOWN */
#define S_LAYERS_MAX 4096         /* far above the 127 layers overlayfs can stack */

#define S_MEDIA_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define S_MEDIA_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"

/* Reads a whole regular file (not through a final symlink) into a NUL-terminated
 * buffer. expect >= 0: the file must be exactly that many bytes. */
static int s_read_file(char **out, size_t *out_len, const char *path, size_t max, int64_t expect)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int fd = -1, rc = 0;

    *out = NULL;
    *out_len = 0;
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        rc = farm_error_set(errno == ENOENT ? FARM_ENOTFOUND : FARM_EIO, "%s: cannot open: %s",
                            path, strerror(errno));
        goto done;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = farm_error_set(FARM_EINVALID, "%s: not a regular file", path);
        goto done;
    }
    if ((uint64_t)st.st_size > max) {
        rc = farm_error_set(FARM_ETOOBIG, "%s: %" PRIu64 " bytes, more than the %zu allowed",
                            path, (uint64_t)st.st_size, max);
        goto done;
    }
    if (expect >= 0 && st.st_size != expect) {
        rc = farm_error_set(FARM_EINVALID, "%s: %" PRIu64 " bytes but its descriptor says %" PRId64,
                            path, (uint64_t)st.st_size, expect);
        goto done;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = farm_error_set(FARM_ERROR, "%s: out of memory", path);
        goto done;
    }
    /* Read one byte past the stat size so a file that grew is noticed. */
    while (got <= (size_t)st.st_size) {
        char extra;
        ssize_t n = got < (size_t)st.st_size
                        ? read(fd, buf + got, (size_t)st.st_size - got)
                        : read(fd, &extra, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = farm_error_set(FARM_EIO, "%s: read: %s", path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got != (size_t)st.st_size) {
        rc = farm_error_set(FARM_EIO, "%s: changed while being read", path);
        goto done;
    }
    buf[got] = '\0';
    *out = buf;
    *out_len = got;
    buf = NULL;
done:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

static int s_blob_path(char *buf, size_t len, const char *layout_dir, const char *digest)
{
    /* The hex part becomes a file name: only a strictly valid digest may get there. */
    if (!farm_digest_valid(digest))
        return farm_error_set(FARM_EINVALID, "\"%.80s\" is not a sha256 digest", digest);
    return farm_path_fmt(buf, len, "%s/blobs/sha256/%s", layout_dir, digest + 7);
}

void farm_oci_blob_path(char *buf, size_t len, const char *layout_dir, const char *digest)
{
    if (len && s_blob_path(buf, len, layout_dir, digest) < 0)
        buf[0] = '\0';
}

/* Reads blob `digest` of exactly `size` bytes (<= max) and checks its sha256. */
static int s_read_blob(char **out, size_t *out_len, const char *layout_dir, const char *digest,
                       int64_t size, size_t max)
{
    char path[FARM_PATH_MAX], got[FARM_DIGEST_STRLEN];
    int rc;

    if ((rc = s_blob_path(path, sizeof path, layout_dir, digest)) < 0)
        return rc;
    if ((rc = s_read_file(out, out_len, path, max, size)) < 0)
        return rc;
    farm_digest_buffer(got, *out, *out_len);
    if (strcmp(got, digest) != 0) {
        free(*out);
        *out = NULL;
        *out_len = 0;
        return farm_error_set(FARM_EINVALID, "%s: content digest is %s, expected %s", path, got,
                              digest);
    }
    return 0;
}

static int s_parse(json_t **out, const char *buf, size_t len, const char *what)
{
    json_error_t jerr;
    *out = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*out)
        return farm_error_set(FARM_EINVALID, "%s: invalid JSON at line %d: %s", what, jerr.line,
                              jerr.text);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return farm_error_set(FARM_EINVALID, "%s: not a JSON object", what);
    }
    return 0;
}

/* Reads the mediaType / digest / size of descriptor `d`; media_type may be NULL when
 * the descriptor need not carry one. */
static int s_descriptor(const json_t *d, const char **media_type, const char **digest,
                        int64_t *size, const char *what)
{
    json_t *mt = json_object_get(d, "mediaType"), *dg = json_object_get(d, "digest"),
           *sz = json_object_get(d, "size");
    if (!json_is_object(d))
        return farm_error_set(FARM_EINVALID, "%s: descriptor is not an object", what);
    if (mt && !json_is_string(mt))
        return farm_error_set(FARM_EINVALID, "%s: mediaType is not a string", what);
    if (media_type)
        *media_type = mt ? json_string_value(mt) : NULL;
    if (!json_is_string(dg) || !farm_digest_valid(json_string_value(dg)))
        return farm_error_set(FARM_EINVALID, "%s: digest \"%.80s\" is not a valid sha256 digest",
                              what, json_is_string(dg) ? json_string_value(dg) : "(missing)");
    *digest = json_string_value(dg);
    if (!json_is_integer(sz) || json_integer_value(sz) < 0)
        return farm_error_set(FARM_EINVALID, "%s: size of %s is missing or negative", what,
                              *digest);
    *size = (int64_t)json_integer_value(sz);
    return 0;
}

static int s_is_index_type(const char *mt)
{
    return mt && (!strcmp(mt, FARM_MEDIA_OCI_INDEX) || !strcmp(mt, FARM_MEDIA_DOCKER_LIST));
}

static int s_add_blob(farm_oci_image_t *img, const char *digest)
{
    for (size_t i = 0; i < img->n_blobs; i++)
        if (!strcmp(img->blobs[i], digest))
            return 0; /* a layer listed twice is pushed once */
    char **nb = realloc(img->blobs, (img->n_blobs + 1) * sizeof *nb);
    if (!nb)
        return farm_error_set(FARM_ERROR, "out of memory");
    img->blobs = nb;
    if (!(img->blobs[img->n_blobs] = strdup(digest)))
        return farm_error_set(FARM_ERROR, "out of memory");
    img->n_blobs++;
    return 0;
}

static int s_check_layout_file(const char *dir)
{
    char path[FARM_PATH_MAX], *buf = NULL;
    size_t len;
    json_t *root = NULL, *v;
    int rc;

    if ((rc = farm_path_join(path, sizeof path, dir, "oci-layout")) < 0)
        return rc;
    if ((rc = s_read_file(&buf, &len, path, S_LAYOUT_MAX, -1)) < 0) {
        if (rc == FARM_ENOTFOUND)
            rc = farm_error_set(FARM_EINVALID, "%s is not an OCI image layout (no oci-layout file)",
                                dir);
        goto done;
    }
    if ((rc = s_parse(&root, buf, len, path)) < 0)
        goto done;
    v = json_object_get(root, "imageLayoutVersion");
    if (!json_is_string(v) || strcmp(json_string_value(v), "1.0.0") != 0) {
        rc = farm_error_set(FARM_EINVALID, "%s: imageLayoutVersion %s is not supported (want 1.0.0)",
                            path, json_is_string(v) ? json_string_value(v) : "(missing)");
        goto done;
    }
done:
    json_decref(root);
    free(buf);
    return rc;
}

int farm_oci_layout_read(farm_oci_image_t **out, const char *layout_dir)
{
    farm_oci_image_t *img = NULL;
    char path[FARM_PATH_MAX], *buf = NULL, *cfg_buf = NULL;
    size_t len, cfg_len;
    json_t *index = NULL, *man = NULL, *cfg = NULL, *v, *mans, *layers;
    const char *desc_mt, *man_digest, *mt, *cfg_digest, *cfg_mt;
    int64_t man_size, cfg_size;
    int rc = 0;

    *out = NULL;
    /* Room for "/blobs/sha256/<64 hex>", so no path below is ever truncated. */
    if (strlen(layout_dir) > sizeof path - 96) {
        rc = farm_error_set(FARM_EINVALID, "path too long");
        goto done;
    }
    if ((rc = s_check_layout_file(layout_dir)) < 0)
        goto done;

    /* index.json: exactly one image. */
    if ((rc = farm_path_join(path, sizeof path, layout_dir, "index.json")) < 0)
        goto done;
    if ((rc = s_read_file(&buf, &len, path, S_INDEX_MAX, -1)) < 0)
        goto done;
    if ((rc = s_parse(&index, buf, len, path)) < 0)
        goto done;
    free(buf);
    buf = NULL;
    v = json_object_get(index, "schemaVersion");
    if (!json_is_integer(v) || json_integer_value(v) != 2) {
        rc = farm_error_set(FARM_EINVALID, "%s: schemaVersion must be 2", path);
        goto done;
    }
    mans = json_object_get(index, "manifests");
    if (!json_is_array(mans) || json_array_size(mans) != 1) {
        rc = farm_error_set(FARM_EINVALID,
                            "%s: holds %zu manifests; farm expects exactly one image (one "
                            "platform) per build",
                            path, json_is_array(mans) ? json_array_size(mans) : (size_t)0);
        goto done;
    }
    if ((rc = s_descriptor(json_array_get(mans, 0), &desc_mt, &man_digest, &man_size, path)) < 0)
        goto done;
    if (s_is_index_type(desc_mt)) {
        rc = farm_error_set(FARM_EINVALID,
                            "%s: %s is an image index (%s), not an image manifest; the builder "
                            "must write a single-platform image",
                            path, man_digest, desc_mt);
        goto done;
    }
    if ((uint64_t)man_size > FARM_MANIFEST_MAX) {
        rc = farm_error_set(FARM_ETOOBIG, "%s: manifest %s is %" PRId64 " bytes, over the 4 MiB limit",
                            path, man_digest, man_size);
        goto done;
    }

    /* The manifest, verified over its exact bytes. */
    if (!(img = calloc(1, sizeof *img))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    if ((rc = s_read_blob(&img->manifest_json, &img->manifest_len, layout_dir, man_digest,
                          man_size, FARM_MANIFEST_MAX)) < 0)
        goto done;
    if ((rc = s_parse(&man, img->manifest_json, img->manifest_len, man_digest)) < 0)
        goto done;
    v = json_object_get(man, "mediaType");
    mt = json_is_string(v) ? json_string_value(v) : desc_mt;
    if (s_is_index_type(mt)) {
        rc = farm_error_set(FARM_EINVALID,
                            "manifest %s is an image index (%s); the builder must write a "
                            "single-platform image",
                            man_digest, mt);
        goto done;
    }
    if (!mt || (strcmp(mt, FARM_MEDIA_OCI_MANIFEST) && strcmp(mt, FARM_MEDIA_DOCKER_MANIFEST))) {
        rc = farm_error_set(FARM_EINVALID, "manifest %s: media type %.100s is not an OCI or "
                            "Docker v2 image manifest", man_digest, mt ? mt : "(missing)");
        goto done;
    }
    if (desc_mt && strcmp(desc_mt, mt) != 0) {
        rc = farm_error_set(FARM_EINVALID, "manifest %s says mediaType %s but index.json says "
                            "%.100s", man_digest, mt, desc_mt);
        goto done;
    }
    v = json_object_get(man, "schemaVersion");
    if (!json_is_integer(v) || json_integer_value(v) != 2) {
        rc = farm_error_set(FARM_EINVALID, "manifest %s: schemaVersion must be 2", man_digest);
        goto done;
    }
    /* mt is one of the two manifest types above; the digest was validated by s_read_blob */
    snprintf(img->manifest.media_type, sizeof img->manifest.media_type, "%s", mt);
    snprintf(img->manifest.digest, sizeof img->manifest.digest, "%s", man_digest);
    img->manifest.size = (uint64_t)man_size;

    /* The config: os / architecture / variant. */
    if ((rc = s_descriptor(json_object_get(man, "config"), &cfg_mt, &cfg_digest, &cfg_size,
                           "manifest config")) < 0) {
        rc = farm_error_wrap(rc, "manifest %s", man_digest);
        goto done;
    }
    if (cfg_mt && strcmp(cfg_mt, S_MEDIA_OCI_CONFIG) && strcmp(cfg_mt, S_MEDIA_DOCKER_CONFIG)) {
        rc = farm_error_set(FARM_EINVALID, "manifest %s: config media type %.100s is not an image "
                            "config", man_digest, cfg_mt);
        goto done;
    }
    if ((rc = s_read_blob(&cfg_buf, &cfg_len, layout_dir, cfg_digest, cfg_size, S_CONFIG_MAX)) < 0)
        goto done;
    if ((rc = s_parse(&cfg, cfg_buf, cfg_len, cfg_digest)) < 0)
        goto done;
    {
        json_t *os = json_object_get(cfg, "os"), *arch = json_object_get(cfg, "architecture"),
               *var = json_object_get(cfg, "variant");
        if (!json_is_string(os) || !json_is_string(arch) || (var && !json_is_string(var))) {
            rc = farm_error_set(FARM_EINVALID, "image config %s: os and architecture must be "
                                "strings", cfg_digest);
            goto done;
        }
        if ((rc = farm_platform_from_config(&img->manifest.platform, json_string_value(os),
                                            json_string_value(arch),
                                            var ? json_string_value(var) : NULL)) < 0) {
            rc = farm_error_wrap(rc, "image config %s", cfg_digest);
            goto done;
        }
    }
    snprintf(img->config_digest, sizeof img->config_digest, "%s", cfg_digest); /* validated */
    if ((rc = s_add_blob(img, cfg_digest)) < 0)
        goto done;

    /* Layers: present with the right size. Their digests are recomputed by the registry
     * push (farm_registry_blob_push_file), so big files are not read twice here. */
    layers = json_object_get(man, "layers");
    if (!json_is_array(layers) || json_array_size(layers) > S_LAYERS_MAX) {
        rc = farm_error_set(FARM_EINVALID, "manifest %s: layers is missing or has more than %d "
                            "entries", man_digest, S_LAYERS_MAX);
        goto done;
    }
    for (size_t i = 0; i < json_array_size(layers); i++) {
        const char *ld;
        int64_t lsize;
        struct stat st;
        if ((rc = s_descriptor(json_array_get(layers, i), NULL, &ld, &lsize, "layer")) < 0) {
            rc = farm_error_wrap(rc, "manifest %s: layer %zu", man_digest, i);
            goto done;
        }
        if ((rc = s_blob_path(path, sizeof path, layout_dir, ld)) < 0)
            goto done;
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
            rc = farm_error_set(FARM_ENOTFOUND, "layer %s of manifest %s: %s is missing or not a "
                                "regular file", ld, man_digest, path);
            goto done;
        }
        if (st.st_size != lsize) {
            rc = farm_error_set(FARM_EINVALID, "layer %s: %s is %" PRIu64 " bytes but the "
                                "manifest says %" PRId64, ld, path, (uint64_t)st.st_size, lsize);
            goto done;
        }
        if ((rc = s_add_blob(img, ld)) < 0)
            goto done;
    }

    *out = img;
    img = NULL;
done:
    if (rc < 0 && !strstr(farm_error_last(), layout_dir))
        farm_error_wrap(rc, "OCI layout %s", layout_dir);
    farm_oci_image_destroy(&img);
    json_decref(index);
    json_decref(man);
    json_decref(cfg);
    free(buf);
    free(cfg_buf);
    return rc;
}

void farm_oci_image_destroy(farm_oci_image_t **self_p)
{
    farm_oci_image_t *self;
    if (!self_p || !(self = *self_p))
        return;
    for (size_t i = 0; i < self->n_blobs; i++)
        free(self->blobs[i]);
    free(self->blobs);
    free(self->manifest_json);
    free(self);
    *self_p = NULL;
}

int farm_oci_push_image(farm_registry_t *reg, const char *repo, const char *layout_dir,
                        const farm_oci_image_t *img, farm_oci_progress_fn fn, void *arg)
{
    return farm_oci_push_image_from(reg, repo, NULL, layout_dir, img, fn, arg);
}

int farm_oci_push_image_from(farm_registry_t *reg, const char *repo, const char *from,
                             const char *layout_dir, const farm_oci_image_t *img,
                             farm_oci_progress_fn fn, void *arg)
{
    char path[FARM_PATH_MAX], got[FARM_DIGEST_STRLEN] = "";
    int rc = 0, attempt = 0;

again:
    /* Children before the manifest: a registry may refuse a manifest whose blobs are
     * unknown (distribution-spec, MANIFEST_BLOB_UNKNOWN). */
    for (size_t i = 0; i < img->n_blobs; i++) {
        struct stat st;
        int skipped = 0;
        if ((rc = s_blob_path(path, sizeof path, layout_dir, img->blobs[i])) < 0)
            goto done;
        if (stat(path, &st) < 0) {
            rc = farm_error_set(FARM_ENOTFOUND, "%s: %s", path, strerror(errno));
            goto done;
        }
        if (from && (rc = farm_registry_blob_exists(reg, NULL, repo, img->blobs[i])) < 0) {
            if (rc != FARM_ENOTFOUND) {
                rc = farm_error_wrap(rc, "looking for blob %s in %s", img->blobs[i], repo);
                goto done;
            }
            if ((rc = farm_registry_blob_mount(reg, &skipped, repo, img->blobs[i], from)) < 0) {
                rc = farm_error_wrap(rc, "mounting blob %s into %s", img->blobs[i], repo);
                goto done;
            }
            skipped *= 2;
        } else if (from) {
            skipped = 1;
        }
        if (!skipped &&
            (rc = farm_registry_blob_push_file(reg, &skipped, repo, img->blobs[i], path)) < 0) {
            rc = farm_error_wrap(rc, "pushing blob %s to %s", img->blobs[i], repo);
            goto done;
        }
        if (fn)
            fn(arg, img->blobs[i], (uint64_t)st.st_size, skipped);
    }
    rc = farm_registry_manifest_put(reg, got, repo, img->manifest.digest,
                                    img->manifest.media_type, img->manifest_json,
                                    img->manifest_len);
    /* The registry says a blob we just pushed or found there is unknown. Pushes of the
     * same blob to one repository at once (platforms sharing an empty layer) can make
     * docker-registry's link to it unreadable for a moment: look again, push what is
     * missing, and put the manifest again, a few times. */
    if (rc == FARM_ENOTFOUND && attempt < OCI_BLOB_UNKNOWN_RETRIES) {
        struct timespec nap = {0, 250L * 1000 * 1000 * (attempt + 1)};
        farm_log_info("registry says a blob of %s is unknown in %s (%s); checking the blobs "
                      "again (%d/%d)", img->manifest.digest, repo, farm_error_last(), attempt + 1,
                      OCI_BLOB_UNKNOWN_RETRIES);
        attempt++;
        nanosleep(&nap, NULL);
        goto again;
    }
    if (rc < 0) {
        rc = farm_error_wrap(rc, "pushing manifest %s to %s", img->manifest.digest, repo);
        goto done;
    }
    if (got[0] && strcmp(got, img->manifest.digest) != 0) {
        rc = farm_error_set(FARM_EINVALID, "pushed manifest to %s as %s but it hashes to %s", repo,
                            img->manifest.digest, got);
        goto done;
    }
done:
    return rc;
}

/* json_object_set_new that reports allocation failure instead of ignoring it. */
static int s_set(json_t *obj, const char *key, json_t *value)
{
    if (!value || json_object_set_new(obj, key, value) < 0)
        return farm_error_set(FARM_ERROR, "out of memory composing JSON");
    return 0;
}

static int s_child(json_t **out, const farm_descriptor_t *c, size_t i)
{
    json_t *d = NULL, *p = NULL;
    const char *variant;
    int rc = 0;

    *out = NULL;
    if (!c->media_type[0] || s_is_index_type(c->media_type)) {
        rc = farm_error_set(FARM_EINVALID, "index child %zu (%s): media type \"%s\" is not an "
                            "image manifest", i, c->digest, c->media_type);
        goto done;
    }
    if (!farm_digest_valid(c->digest)) {
        rc = farm_error_set(FARM_EINVALID, "index child %zu: \"%.80s\" is not a sha256 digest", i,
                            c->digest);
        goto done;
    }
    if (c->size > (uint64_t)INT64_MAX || !c->platform.os[0] || !c->platform.architecture[0]) {
        rc = farm_error_set(FARM_EINVALID, "index child %zu (%s): size or platform missing", i,
                            c->digest);
        goto done;
    }
    if (!(d = json_object()) || !(p = json_object())) {
        rc = farm_error_set(FARM_ERROR, "out of memory composing JSON");
        goto done;
    }
    /* Key order is part of the bytes, hence of the index digest: keep it fixed. */
    if ((rc = s_set(p, "architecture", json_string(c->platform.architecture))) < 0 ||
        (rc = s_set(p, "os", json_string(c->platform.os))) < 0)
        goto done;
    if ((variant = farm_platform_index_variant(&c->platform)) &&
        (rc = s_set(p, "variant", json_string(variant))) < 0)
        goto done;
    if ((rc = s_set(d, "mediaType", json_string(c->media_type))) < 0 ||
        (rc = s_set(d, "digest", json_string(c->digest))) < 0 ||
        (rc = s_set(d, "size", json_integer((json_int_t)c->size))) < 0)
        goto done;
    rc = s_set(d, "platform", p);
    p = NULL;
    if (rc < 0)
        goto done;
    *out = d;
    d = NULL;
done:
    json_decref(d);
    json_decref(p);
    return rc;
}

int farm_oci_index_compose(char **out_json, size_t *out_len, const farm_descriptor_t *children,
                           size_t n, const char *const *ann_keys, const char *const *ann_values,
                           size_t n_ann)
{
    json_t *root = NULL, *mans = NULL, *ann = NULL;
    char *s = NULL;
    int rc = 0;

    *out_json = NULL;
    if (out_len)
        *out_len = 0;
    if (n == 0) {
        rc = farm_error_set(FARM_EINVALID, "an image index needs at least one child manifest");
        goto done;
    }
    if (!(root = json_object()) || !(mans = json_array())) {
        rc = farm_error_set(FARM_ERROR, "out of memory composing JSON");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *d;
        for (size_t j = 0; j < i; j++) {
            if (farm_platform_equal(&children[i].platform, &children[j].platform)) {
                char pf[FARM_PLATFORM_STRLEN];
                farm_platform_format(pf, sizeof pf, &children[i].platform);
                rc = farm_error_set(FARM_EINVALID, "index children %zu and %zu both claim %s", j,
                                    i, pf);
                goto done;
            }
        }
        if ((rc = s_child(&d, &children[i], i)) < 0)
            goto done;
        if (json_array_append_new(mans, d) < 0) {
            rc = farm_error_set(FARM_ERROR, "out of memory composing JSON");
            goto done;
        }
    }
    if ((rc = s_set(root, "schemaVersion", json_integer(2))) < 0 ||
        (rc = s_set(root, "mediaType", json_string(FARM_MEDIA_OCI_INDEX))) < 0)
        goto done;
    rc = s_set(root, "manifests", mans);
    mans = NULL;
    if (rc < 0)
        goto done;
    if (n_ann) {
        if (!(ann = json_object())) {
            rc = farm_error_set(FARM_ERROR, "out of memory composing JSON");
            goto done;
        }
        for (size_t i = 0; i < n_ann; i++) {
            if (!ann_keys || !ann_values || !ann_keys[i] || !ann_keys[i][0] || !ann_values[i]) {
                rc = farm_error_set(FARM_EINVALID, "index annotation %zu: empty key or value", i);
                goto done;
            }
            if (json_object_get(ann, ann_keys[i])) {
                rc = farm_error_set(FARM_EINVALID, "index annotation \"%s\" given twice",
                                    ann_keys[i]);
                goto done;
            }
            if ((rc = s_set(ann, ann_keys[i], json_string(ann_values[i]))) < 0) {
                /* json_string returns NULL for invalid UTF-8 as well. */
                rc = farm_error_set(FARM_EINVALID, "index annotation \"%s\": key or value is "
                                    "not UTF-8", ann_keys[i]);
                goto done;
            }
        }
        rc = s_set(root, "annotations", ann);
        ann = NULL;
        if (rc < 0)
            goto done;
    }
    if (!(s = json_dumps(root, JSON_PRESERVE_ORDER | JSON_COMPACT))) {
        rc = farm_error_set(FARM_ERROR, "cannot serialise the image index");
        goto done;
    }
    if (out_len)
        *out_len = strlen(s);
    *out_json = s;
done:
    json_decref(root);
    json_decref(mans);
    json_decref(ann);
    return rc;
}
