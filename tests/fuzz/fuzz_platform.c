/* SPDX-License-Identifier: Apache-2.0 */
/* Platforms (common/platform.h): "os/arch[/variant]" from farm.yaml, --platform and a
 * HELLO; and os/architecture/variant from an image config. Normalisation must be
 * idempotent and every output must fit the buffers the header promises. */
#include "fuzz.h"

#include "common/platform.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

static void s_check(const farm_platform_t *p, const char *input)
{
    farm_platform_t p2;
    char canon[FARM_PLATFORM_STRLEN], plat[FARM_PLATFORM_STRLEN];
    char os[sizeof p->os], arch[sizeof p->architecture], variant[sizeof p->variant];

    farm_platform_format(canon, sizeof canon, p);
    FUZZ_CHECK(canon[0] != '\0', "empty canonical form for \"%s\"", input);
    FUZZ_CHECK(farm_platform_parse(&p2, canon) == 0, "\"%s\" normalised to \"%s\", refused",
               input, canon);
    FUZZ_CHECK(farm_platform_equal(p, &p2), "\"%s\" -> \"%s\" is another platform", input, canon);
    (void)farm_platform_index_variant(p);
    farm_platform_target_args(p, plat, sizeof plat, os, sizeof os, arch, sizeof arch, variant,
                              sizeof variant);
    FUZZ_CHECK(!strcmp(plat, canon), "TARGETPLATFORM \"%s\" for \"%s\"", plat, canon);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    farm_platform_t p;
    char *s = fuzz_cstr(data, size), *f[3] = {0}, *save = NULL;

    if (!s)
        return 0;
    if (farm_platform_parse(&p, s) == 0)
        s_check(&p, s);
    /* The same bytes as an image config's os, architecture and variant, '\n'-separated. */
    f[0] = strtok_r(s, "\n", &save);
    f[1] = f[0] ? strtok_r(NULL, "\n", &save) : NULL;
    f[2] = f[1] ? strtok_r(NULL, "\n", &save) : NULL;
    if (f[0] && f[1] && farm_platform_from_config(&p, f[0], f[1], f[2]) == 0)
        s_check(&p, f[0]);
    free(s);
    return 0;
}
