/* SPDX-License-Identifier: Apache-2.0 */
/* .dockerignore (common/dockerignore.h): the input is a .dockerignore, then a NUL byte,
 * then '\n'-separated paths to match against it. Checked properties: Clean is
 * idempotent, and a plain path that keep() brought back is no longer excluded (that is
 * how the Dockerfile always reaches the builder). */
#include "fuzz.h"

#include "common/dockerignore.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

/* Clean, relative and free of pattern syntax: keep() adds it as a literal pattern. */
static int s_plain(const char *p, const char *clean)
{
    return p[0] && strcmp(p, clean) == 0 && p[0] != '/' && strcmp(p, ".") != 0 &&
           strcmp(p, "..") != 0 && strncmp(p, "../", 3) != 0 && !strpbrk(p, "*?[\\");
}

static void s_paths(farm_dockerignore_t *di, char *paths)
{
    char *save = NULL;
    for (char *p = strtok_r(paths, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
        char *c = farm_dockerignore_clean(p), *cc;
        if (!c)
            return;
        cc = farm_dockerignore_clean(c);
        FUZZ_CHECK(cc && !strcmp(c, cc), "Clean(\"%s\") = \"%s\" but Clean of that is \"%s\"", p,
                   c, cc ? cc : "(null)");
        free(cc);
        (void)farm_dockerignore_match(di, p);
        (void)farm_dockerignore_may_descend(di, p);
        if (s_plain(p, c) && farm_dockerignore_keep(di, p) == 0)
            FUZZ_CHECK(!farm_dockerignore_match(di, p), "\"%s\" excluded after keep()", p);
        free(c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    char *text = fuzz_cstr(data, tlen), *paths = NULL;
    farm_dockerignore_t *di;

    if (!text)
        return 0;
    di = farm_dockerignore_parse(text);
    if (di && nul && (paths = fuzz_cstr(nul + 1, size - tlen - 1)))
        s_paths(di, paths);
    farm_dockerignore_destroy(&di);
    FUZZ_CHECK(di == NULL, "destroy did not clear the pointer");
    free(paths);
    free(text);
    return 0;
}
