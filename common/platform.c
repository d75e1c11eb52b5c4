/* SPDX-License-Identifier: Apache-2.0 */
/* OCI platforms, normalised the way containerd/platforms does (platforms.go
 * Normalize/normalizeArch), plus the Debian and uname spellings a farm meets. */
#include "common/platform.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "common/error.h"

#define S_INPUT_MAX 256 /* longer strings are junk, not platforms */

static const char *const s_known_os[] = {
    "aix",   "android", "darwin",  "dragonfly", "freebsd", "hurd",    "illumos", "ios",
    "js",    "linux",   "nacl",    "netbsd",    "openbsd", "plan9",   "solaris", "wasip1",
    "windows", "zos",   NULL,
};

/* Architectures that take any well-formed variant as written. */
static const char *const s_passthrough_arch[] = {
    "386",    "ppc64le",  "ppc64", "s390x", "riscv64", "mips", "mipsle", "mips64",
    "mips64le", "loong64", "wasm", "sparc64", NULL,
};

static int s_in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

/* Lower-cases and trims `in` into buf; 0 ok, -1 when it does not fit. */
static int s_lower_trim(char *buf, size_t len, const char *in)
{
    size_t n;
    while (*in && isspace((unsigned char)*in))
        in++;
    n = strlen(in);
    while (n && isspace((unsigned char)in[n - 1]))
        n--;
    if (n >= len)
        return -1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)tolower((unsigned char)in[i]);
    buf[n] = '\0';
    return 0;
}

/* A variant may hold only [a-z0-9._-]. */
static int s_token_ok(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '.' &&
            *s != '_' && *s != '-')
            return 0;
    return 1;
}

/* Copies the input for a message: bounded, control characters shown as '?'. */
static void s_show(char *buf, size_t len, const char *s)
{
    size_t i = 0;
    for (; *s && i + 4 < len; s++)
        buf[i++] = isprint((unsigned char)*s) ? *s : '?';
    if (*s && len > 4) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
}

/* Normalises lower-cased os/arch/variant in place into out. `what` is the input, for
 * messages. */
static int s_normalise(farm_platform_t *out, const char *os, const char *arch,
                       const char *variant, const char *what)
{
    char shown[96], a[sizeof out->architecture], v[sizeof out->variant];

    s_show(shown, sizeof shown, what);
    memset(out, 0, sizeof *out);
    if (!*os || !s_in_list(s_known_os, os))
        return farm_error_set(FARM_EINVALID,
                              "platform \"%s\": unknown operating system \"%s\"; write "
                              "os/arch[/variant], e.g. linux/arm64", shown, os);
    if (strlen(arch) >= sizeof a || strlen(variant) >= sizeof v)
        return farm_error_set(FARM_EINVALID, "platform \"%s\" is too long; write "
                                             "os/arch[/variant], e.g. linux/arm/v7", shown);
    snprintf(a, sizeof a, "%s", arch);
    snprintf(v, sizeof v, "%s", variant);
    if (*v && !s_token_ok(v))
        return farm_error_set(FARM_EINVALID,
                              "platform \"%s\": variant \"%s\" is not valid; use a variant "
                              "like v7", shown, v);

    if (!strcmp(a, "x86_64") || !strcmp(a, "x86-64") || !strcmp(a, "amd64")) {
        snprintf(a, sizeof a, "amd64");
        if (!strcmp(v, "v1") || !strcmp(v, "1"))
            v[0] = '\0';
        else if (*v && strcmp(v, "v2") && strcmp(v, "v3") && strcmp(v, "v4"))
            goto bad_variant;
    } else if (!strcmp(a, "aarch64") || !strcmp(a, "arm64")) {
        snprintf(a, sizeof a, "arm64");
        if (!strcmp(v, "8") || !strcmp(v, "v8") || !strcmp(v, "8.0") || !strcmp(v, "v8.0"))
            v[0] = '\0'; /* arm64/v8 == arm64 */
        else if (!strcmp(v, "9") || !strcmp(v, "9.0") || !strcmp(v, "v9.0"))
            snprintf(v, sizeof v, "v9");
        else if (*v) {
            const char *d = v[0] == 'v' ? v + 1 : v;
            if ((d[0] != '8' && d[0] != '9') || (d[1] && (d[1] != '.' || !isdigit((unsigned char)d[2]) || d[3])))
                goto bad_variant;
            memmove(v + 1, d, strlen(d) + 1);
            v[0] = 'v';
        }
    } else if (!strcmp(a, "armhf") || !strcmp(a, "armel") || !strcmp(a, "arm") ||
               !strncmp(a, "armv", 4)) {
        /* armhf/armel are Debian's names; armv7l/armv6l come from uname. */
        const char *implied = NULL;
        if (!strcmp(a, "armhf"))
            implied = "v7";
        else if (!strcmp(a, "armel"))
            implied = "v6";
        else if (!strcmp(a, "armv5") || !strcmp(a, "armv5l") || !strcmp(a, "armv5tel"))
            implied = "v5";
        else if (!strcmp(a, "armv6") || !strcmp(a, "armv6l"))
            implied = "v6";
        else if (!strcmp(a, "armv7") || !strcmp(a, "armv7l") || !strcmp(a, "armv8l"))
            implied = "v7"; /* armv8l is 32-bit userland on a v8 core: it runs v7 images */
        else if (strcmp(a, "arm"))
            goto bad_arch;
        if (implied && *v && strcmp(v, implied) && strcmp(v, implied + 1))
            return farm_error_set(FARM_EINVALID,
                                  "platform \"%s\": %s means arm/%s but variant \"%s\" was "
                                  "given; write linux/arm/%s or drop the variant",
                                  shown, a, implied, v, v[0] == 'v' ? v + 1 : v);
        snprintf(a, sizeof a, "arm");
        if (implied)
            snprintf(v, sizeof v, "%s", implied);
        else if (!*v)
            snprintf(v, sizeof v, "v7");
        else if (!strcmp(v, "5") || !strcmp(v, "6") || !strcmp(v, "7") || !strcmp(v, "8")) {
            v[1] = v[0];
            v[2] = '\0';
            v[0] = 'v';
        } else if (strcmp(v, "v5") && strcmp(v, "v6") && strcmp(v, "v7") && strcmp(v, "v8"))
            goto bad_variant;
    } else if (!strcmp(a, "i386") || !strcmp(a, "i486") || !strcmp(a, "i586") ||
               !strcmp(a, "i686") || !strcmp(a, "386")) {
        snprintf(a, sizeof a, "386");
    } else if (!strcmp(a, "ppc64el")) {
        snprintf(a, sizeof a, "ppc64le"); /* Debian's name */
    } else if (!strcmp(a, "mips64el")) {
        snprintf(a, sizeof a, "mips64le");
    } else if (!s_in_list(s_passthrough_arch, a)) {
        goto bad_arch;
    }
    snprintf(out->os, sizeof out->os, "%s", os);
    snprintf(out->architecture, sizeof out->architecture, "%s", a);
    snprintf(out->variant, sizeof out->variant, "%s", v);
    return 0;

bad_arch:
    return farm_error_set(FARM_EINVALID,
                          "platform \"%s\": unknown architecture \"%s\"; use amd64, arm64, "
                          "arm/v7, arm/v6, 386, ppc64le, s390x or riscv64", shown, a);
bad_variant:
    return farm_error_set(FARM_EINVALID,
                          "platform \"%s\": variant \"%s\" does not exist for %s; e.g. "
                          "linux/arm/v7, linux/arm64 (v8), linux/amd64", shown, v, a);
}

int farm_platform_parse(farm_platform_t *out, const char *s)
{
    char buf[S_INPUT_MAX], shown[96];
    char *parts[4] = {0}, *p;
    int n = 0;

    memset(out, 0, sizeof *out);
    if (!s)
        return farm_error_set(FARM_EINVALID, "no platform given; write os/arch[/variant], "
                                             "e.g. linux/amd64");
    s_show(shown, sizeof shown, s);
    if (s_lower_trim(buf, sizeof buf, s) < 0)
        return farm_error_set(FARM_EINVALID, "platform \"%s\" is too long; write "
                                             "os/arch[/variant], e.g. linux/arm/v7", shown);
    if (!buf[0])
        return farm_error_set(FARM_EINVALID, "empty platform; write os/arch[/variant], "
                                             "e.g. linux/amd64");
    p = buf;
    for (;;) {
        if (n == 3)
            return farm_error_set(FARM_EINVALID,
                                  "platform \"%s\" has too many parts; write os/arch[/variant], "
                                  "e.g. linux/arm/v7", shown);
        parts[n++] = p;
        p = strchr(p, '/');
        if (!p)
            break;
        *p++ = '\0';
    }
    for (int i = 0; i < n; i++)
        if (!parts[i][0])
            return farm_error_set(FARM_EINVALID,
                                  "platform \"%s\" has an empty part; write os/arch[/variant], "
                                  "e.g. linux/arm64", shown);
    if (n == 1) {
        if (s_in_list(s_known_os, parts[0]))
            return farm_error_set(FARM_EINVALID,
                                  "platform \"%s\" names no architecture; write e.g. %s/amd64",
                                  shown, parts[0]);
        return s_normalise(out, "linux", parts[0], "", s);
    }
    if (n == 2) {
        if (s_in_list(s_known_os, parts[0]))
            return s_normalise(out, parts[0], parts[1], "", s);
        if (s_normalise(out, "linux", parts[0], parts[1], s) == 0) /* "arm64/v8", "arm/v7" */
            return 0;
        if (s_normalise(out, "linux", parts[1], "", s) == 0) {
            memset(out, 0, sizeof *out);
            return farm_error_set(FARM_EINVALID,
                                  "platform \"%s\": unknown operating system \"%s\"; write "
                                  "os/arch[/variant], e.g. linux/%s", shown, parts[0], parts[1]);
        }
        return s_normalise(out, "linux", parts[0], parts[1], s);
    }
    return s_normalise(out, parts[0], parts[1], parts[2], s);
}

/* The fields are NUL-terminated within their arrays, so FARM_PLATFORM_STRLEN always
 * holds the result; only a caller's smaller buffer cuts it. */
_Static_assert(FARM_PLATFORM_STRLEN >= sizeof ((farm_platform_t *)0)->os +
                                           sizeof ((farm_platform_t *)0)->architecture +
                                           sizeof ((farm_platform_t *)0)->variant,
               "FARM_PLATFORM_STRLEN holds os/architecture/variant");

void farm_platform_format(char *buf, size_t len, const farm_platform_t *p)
{
    if (!len)
        return;
    if (p->variant[0])
        snprintf(buf, len, "%s/%s/%s", p->os, p->architecture, p->variant);
    else
        snprintf(buf, len, "%s/%s", p->os, p->architecture);
}

/* Normalised copy; a platform that does not normalise is kept as it is. */
static void s_canon(farm_platform_t *out, const farm_platform_t *p)
{
    if (farm_platform_from_config(out, p->os, p->architecture, p->variant) < 0)
        *out = *p;
}

int farm_platform_equal(const farm_platform_t *a, const farm_platform_t *b)
{
    farm_platform_t x, y;
    s_canon(&x, a);
    s_canon(&y, b);
    return strcmp(x.os, y.os) == 0 && strcmp(x.architecture, y.architecture) == 0 &&
           strcmp(x.variant, y.variant) == 0;
}

const char *farm_platform_index_variant(const farm_platform_t *p)
{
    if (strcmp(p->architecture, "arm64") == 0)
        return p->variant[0] ? p->variant : "v8";
    if (strcmp(p->architecture, "arm") == 0)
        return p->variant[0] ? p->variant : "v7";
    return p->variant[0] ? p->variant : NULL;
}

int farm_platform_from_config(farm_platform_t *out, const char *os, const char *arch,
                              const char *variant)
{
    char o[S_INPUT_MAX], a[S_INPUT_MAX], v[S_INPUT_MAX], what[3 * S_INPUT_MAX + 3];

    memset(out, 0, sizeof *out);
    if (!os || !arch || s_lower_trim(o, sizeof o, os) < 0 ||
        s_lower_trim(a, sizeof a, arch) < 0 ||
        s_lower_trim(v, sizeof v, variant ? variant : "") < 0 || !o[0] || !a[0])
        return farm_error_set(FARM_EINVALID, "image config platform is incomplete or too "
                                             "long: it needs os and architecture");
    snprintf(what, sizeof what, "%s/%s%s%s", o, a, v[0] ? "/" : "", v);
    return s_normalise(out, o, a, v, what);
}

int farm_platform_host(farm_platform_t *out)
{
    struct utsname u;
    char os[sizeof u.sysname];

    memset(out, 0, sizeof *out);
    if (uname(&u) < 0)
        return farm_error_set(FARM_ERROR, "uname failed; cannot tell this host's platform, "
                                          "pass it explicitly");
    if (s_lower_trim(os, sizeof os, u.sysname) < 0)
        os[0] = '\0';
    if (farm_platform_from_config(out, os, u.machine, NULL) < 0)
        return farm_error_wrap(FARM_EINVALID, "this host (uname %s %s)", u.sysname, u.machine);
    return 0;
}

void farm_platform_target_args(const farm_platform_t *p, char *platform, size_t plen,
                               char *os, size_t olen, char *arch, size_t alen,
                               char *variant, size_t vlen)
{
    farm_platform_t c;
    s_canon(&c, p);
    if (platform)
        farm_platform_format(platform, plen, &c);
    if (os && olen)
        snprintf(os, olen, "%s", c.os);
    if (arch && alen)
        snprintf(arch, alen, "%s", c.architecture);
    if (variant && vlen)
        snprintf(variant, vlen, "%s", c.variant);
}

int farm_platform_list(char **out, size_t *n, size_t max, const char *list)
{
    char *copy = strdup(list), *save = NULL;
    int rc = 0;

    if (!copy)
        return farm_error_set(FARM_ERROR, "out of memory");
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        farm_platform_t p;
        if (*n == max) {
            rc = farm_error_set(FARM_EINVALID, "too many platforms (at most %zu)", max);
            break;
        }
        if ((rc = farm_platform_parse(&p, tok)) < 0)
            break;
        if (!(out[*n] = malloc(FARM_PLATFORM_STRLEN))) {
            rc = farm_error_set(FARM_ERROR, "out of memory");
            break;
        }
        farm_platform_format(out[(*n)++], FARM_PLATFORM_STRLEN, &p);
    }
    free(copy);
    return rc;
}
