/* SPDX-License-Identifier: Apache-2.0 */
/* OCI platforms, normalised the way containerd/platforms does. */
#ifndef FARM_PLATFORM_H
#define FARM_PLATFORM_H

#include <stddef.h>

typedef struct {
    char os[32];           /* "linux" */
    char architecture[32]; /* "amd64", "arm64", "arm", "386", ... */
    char variant[16];      /* "" or "v7", "v6", "v8" (arm64's v8 is stored as "") */
} farm_platform_t;

#define FARM_PLATFORM_STRLEN 96

/* Parses and normalises "os/arch[/variant]" or a bare arch ("aarch64", "armhf",
 * "x86_64", "arm64/v8" ...; a bare arch means os "linux"). x86_64/x86-64 -> amd64,
 * aarch64 -> arm64, arm64/v8 -> arm64, armhf -> arm/v7, armel -> arm/v6,
 * arm -> arm/v7, i386/i686 -> 386. Case-insensitive. Returns FARM_EINVALID with a
 * message naming the string on junk. */
int farm_platform_parse(farm_platform_t *out, const char *s);

/* Canonical short form: "linux/amd64", "linux/arm64", "linux/arm/v7". A buffer of
 * FARM_PLATFORM_STRLEN always holds it. */
void farm_platform_format(char *buf, size_t len, const farm_platform_t *p);
/* A comma list ("linux/amd64,arm64"): each platform in canonical form, malloc'd
 * FARM_PLATFORM_STRLEN strings appended to out[*n] (at most max in all). FARM_EINVALID
 * (and what is wrong) for a bad platform or too many; out keeps what was added. */
int farm_platform_list(char **out, size_t *n, size_t max, const char *list);

/* 1 when both name the same platform after normalisation. */
int farm_platform_equal(const farm_platform_t *a, const farm_platform_t *b);

/* The variant to write in an image index, explicit as official images do:
 * arm64 -> "v8", arm -> its variant (default "v7"); NULL when none. */
const char *farm_platform_index_variant(const farm_platform_t *p);

/* Builds the platform from an image config's os/architecture/variant (variant may be
 * NULL or "") and normalises it. */
int farm_platform_from_config(farm_platform_t *out, const char *os, const char *arch,
                              const char *variant);

/* The platform of this host (uname). */
int farm_platform_host(farm_platform_t *out);

/* The values buildx sets for TARGETPLATFORM / TARGETOS / TARGETARCH / TARGETVARIANT
 * (TARGETVARIANT is "" for amd64 and arm64, "v7" for arm/v7). Buffers of
 * FARM_PLATFORM_STRLEN and of the farm_platform_t fields' sizes always hold them. */
void farm_platform_target_args(const farm_platform_t *p, char *platform, size_t plen,
                               char *os, size_t olen, char *arch, size_t alen,
                               char *variant, size_t vlen);

#endif
