/* SPDX-License-Identifier: Apache-2.0 */
/* Prints the image index farm_oci_index_compose makes, for tests that judge it with
 * real tools (the official JSON schema, skopeo, a registry).
 *
 *   farm-oci-compose [-a KEY=VALUE]... PLATFORM=DIGEST:SIZE...
 *   farm-oci-compose linux/amd64=sha256:<hex>:1234 linux/arm/v7=sha256:<hex>:567
 *
 * Children are OCI image manifests. Exit status 0 with the JSON (no newline) on stdout,
 * 2 with the error on stderr. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/oci.h"

#define MAX_ARGS 64

static int s_usage(const char *msg, const char *arg)
{
    fprintf(stderr, "farm-oci-compose: %s%s%s\nusage: farm-oci-compose [-a KEY=VALUE]... "
                    "PLATFORM=DIGEST:SIZE...\n",
            msg, arg ? ": " : "", arg ? arg : "");
    return 2;
}

int main(int argc, char **argv)
{
    static farm_descriptor_t kids[MAX_ARGS];
    const char *keys[MAX_ARGS], *vals[MAX_ARGS];
    char *json = NULL;
    size_t n = 0, n_ann = 0, len = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-a")) {
            char *eq;
            if (++i >= argc || !(eq = strchr(argv[i], '=')) || n_ann == MAX_ARGS)
                return s_usage("-a needs KEY=VALUE", NULL);
            *eq = '\0';
            keys[n_ann] = argv[i];
            vals[n_ann++] = eq + 1;
            continue;
        }
        char *eq = strchr(argv[i], '='), *colon, *end;
        if (!eq || n == MAX_ARGS)
            return s_usage("expected PLATFORM=DIGEST:SIZE", argv[i]);
        colon = strrchr(eq + 1, ':');
        if (!colon || colon == eq + 1)
            return s_usage("expected PLATFORM=DIGEST:SIZE", argv[i]);
        *eq = *colon = '\0';
        errno = 0;
        uint64_t size = strtoull(colon + 1, &end, 10);
        if (errno || *end || end == colon + 1)
            return s_usage("bad size", colon + 1);
        farm_descriptor_t *d = &kids[n++];
        snprintf(d->media_type, sizeof d->media_type, "%s", FARM_MEDIA_OCI_MANIFEST);
        if (strlen(eq + 1) >= sizeof d->digest)
            return s_usage("bad digest", eq + 1);
        snprintf(d->digest, sizeof d->digest, "%s", eq + 1);
        d->size = size;
        if (farm_platform_parse(&d->platform, argv[i]) < 0) {
            fprintf(stderr, "farm-oci-compose: %s\n", farm_error_last());
            return 2;
        }
    }
    if (farm_oci_index_compose(&json, &len, kids, n, keys, vals, n_ann) < 0) {
        fprintf(stderr, "farm-oci-compose: %s\n", farm_error_last());
        return 2;
    }
    fwrite(json, 1, len, stdout);
    free(json);
    return fflush(stdout) == 0 ? 0 : 2;
}
