/* SPDX-License-Identifier: Apache-2.0 */
/* WWW-Authenticate values come from any registry a build talks to:
 * farm_registry_parse_challenge (common/registry_auth.h). An accepted challenge is
 * Bearer (with a realm) or Basic, every field NUL-terminated inside its array. */
#include "fuzz.h"

#include <strings.h>

#include "common/registry_auth.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

#define S_TERMINATED(f) (memchr((f), '\0', sizeof(f)) != NULL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    farm_auth_challenge_t c;
    char *s = fuzz_cstr(data, size);

    if (!s)
        return 0;
    if (farm_registry_parse_challenge(&c, s) == 0) {
        FUZZ_CHECK(S_TERMINATED(c.scheme) && S_TERMINATED(c.realm) && S_TERMINATED(c.service) &&
                       S_TERMINATED(c.scope) && S_TERMINATED(c.error),
                   "unterminated field");
        FUZZ_CHECK(!strcasecmp(c.scheme, "Bearer") || !strcasecmp(c.scheme, "Basic"),
                   "accepted scheme \"%s\"", c.scheme);
        if (!strcasecmp(c.scheme, "Bearer"))
            FUZZ_CHECK(c.realm[0], "Bearer without a realm");
    }
    free(s);
    return 0;
}
