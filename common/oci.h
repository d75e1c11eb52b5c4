/* SPDX-License-Identifier: Apache-2.0 */
/* OCI image layouts (what the builder writes) and image indexes (what farm pushes). */
#ifndef FARM_OCI_H
#define FARM_OCI_H

#include <stddef.h>
#include <stdint.h>

#include "common/digest.h"
#include "common/platform.h"
#include "common/registry.h"

typedef struct {
    char media_type[128];
    char digest[FARM_DIGEST_STRLEN];
    uint64_t size;
    farm_platform_t platform;
} farm_descriptor_t;

typedef struct {
    farm_descriptor_t manifest;   /* the image manifest; platform = the config's */
    char *manifest_json;          /* exact bytes of the manifest blob */
    size_t manifest_len;
    char config_digest[FARM_DIGEST_STRLEN];
    char **blobs;                 /* config first, then layers: digests */
    size_t n_blobs;
} farm_oci_image_t;

/* Reads an OCI layout directory holding ONE image: oci-layout, index.json -> manifest
 * -> config (os/architecture/variant). Every size and digest is checked against the
 * files; sizes are bounded. */
int farm_oci_layout_read(farm_oci_image_t **out, const char *layout_dir);
void farm_oci_image_destroy(farm_oci_image_t **self_p);
/* Path of blob `digest` inside the layout: DIR/blobs/sha256/<hex>. */
void farm_oci_blob_path(char *buf, size_t len, const char *layout_dir, const char *digest);

/* Called once per blob pushed or skipped, for progress lines. May be NULL. skipped: 0
 * uploaded, 1 already there, 2 mounted from another repository. */
typedef void (*farm_oci_progress_fn)(void *arg, const char *digest, uint64_t size, int skipped);

/* Pushes every blob (HEAD first, skip what exists) and then the manifest BY DIGEST
 * into repo. */
int farm_oci_push_image(farm_registry_t *reg, const char *repo, const char *layout_dir,
                        const farm_oci_image_t *img, farm_oci_progress_fn fn, void *arg);
/* The same into another repository of a registry that already holds the image in from
 * (the same registry, the same login): each blob missing in repo is mounted from there,
 * and uploaded only where the registry declines. from NULL: farm_oci_push_image. */
int farm_oci_push_image_from(farm_registry_t *reg, const char *repo, const char *from,
                             const char *layout_dir, const farm_oci_image_t *img,
                             farm_oci_progress_fn fn, void *arg);

/* Composes an OCI image index (schemaVersion 2, mediaType index) naming the children
 * in order, with explicit variants (arm64 -> v8, arm -> v7). annotations may be NULL
 * (pairs: keys[i] = values[i]). The JSON is compact and deterministic. */
int farm_oci_index_compose(char **out_json, size_t *out_len, const farm_descriptor_t *children,
                           size_t n, const char *const *ann_keys, const char *const *ann_values,
                           size_t n_ann);

#endif
