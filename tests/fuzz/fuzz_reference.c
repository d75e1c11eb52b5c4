/* SPDX-License-Identifier: Apache-2.0 */
/* Image references (common/reference.h): what a user types after -t and what a
 * Dockerfile's FROM names. A parsed reference must format into FARM_REFERENCE_MAX
 * bytes and parse back to itself. */
#include "fuzz.h"

#include "common/limits.h"
#include "common/reference.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    farm_reference_t r, r2;
    char buf[FARM_REFERENCE_MAX], buf2[FARM_REFERENCE_MAX];
    char *s = fuzz_cstr(data, size);

    if (!s)
        return 0;
    if (farm_reference_parse(&r, s) == 0) {
        FUZZ_CHECK(r.registry[0] && r.repository[0], "empty registry or repository in \"%s\"", s);
        FUZZ_CHECK(r.tag[0] || r.digest[0], "neither tag nor digest in \"%s\"", s);
        FUZZ_CHECK(farm_reference_api_host(&r) != NULL, "no API host");
        FUZZ_CHECK(farm_reference_format(buf, sizeof buf, &r) == 0,
                   "a parsed reference does not fit FARM_REFERENCE_MAX: \"%s\"", s);
        FUZZ_CHECK(farm_reference_parse(&r2, buf) == 0, "\"%s\" formatted as \"%s\", refused", s,
                   buf);
        FUZZ_CHECK(farm_reference_format(buf2, sizeof buf2, &r2) == 0 && !strcmp(buf, buf2),
                   "\"%s\" -> \"%s\" -> \"%s\"", s, buf, buf2);
        FUZZ_CHECK(!strcmp(r.registry, r2.registry) && !strcmp(r.repository, r2.repository) &&
                       !strcmp(r.tag, r2.tag) && !strcmp(r.digest, r2.digest),
                   "\"%s\" changed when parsed again as \"%s\"", s, buf);
    }
    free(s);
    return 0;
}
