/* SPDX-License-Identifier: Apache-2.0 */
#include "common/reference.h"

#include "common/digest.h"
#include "common/error.h"
#include "common/str.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Grammar: github.com/distribution/reference regexp.go.
 *   reference        := name [ ":" tag ] [ "@" digest ]
 *   name             := [domain '/'] path-component ['/' path-component]*
 *   domain           := host [':' port-number]
 *   host             := domain-name | '[' IPv6 ']'
 *   domain-name      := domain-component ['.' domain-component]*
 *   domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
 *   path-component   := alpha-numeric [separator alpha-numeric]*
 *   alpha-numeric    := /[a-z0-9]+/
 *   separator        := /[_.]|__|[-]+/
 *   tag              := /[\w][\w.-]{0,127}/
 * A name is at most 255 characters. */

#define S_NAME_MAX 255

static int s_bad(const char *ref, const char *why)
{
    return farm_error_set(FARM_EINVALID, "invalid image reference \"%s\": %s", ref, why);
}

static int s_alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* docker treats an upper-case first component as a host, not a repository path */
static int s_has_upper(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] >= 'A' && p[i] <= 'Z')
            return 1;
    return 0;
}

static int s_alnum(char c)
{
    return isascii((unsigned char)c) && isalnum((unsigned char)c);
}

/* One path component, [p, p+n). 1 if valid. */
static int s_path_component_valid(const char *p, size_t n)
{
    size_t i = 0;
    if (n == 0 || !s_alnum_lower(p[0]) || !s_alnum_lower(p[n - 1]))
        return 0;
    while (i < n) {
        if (s_alnum_lower(p[i])) {
            i++;
            continue;
        }
        /* a separator: ".", "_", "__" or a run of "-" */
        size_t j = i;
        if (p[i] == '.') {
            j = i + 1;
        } else if (p[i] == '_') {
            j = i + 1;
            if (j < n && p[j] == '_')
                j++;
        } else if (p[i] == '-') {
            while (j < n && p[j] == '-')
                j++;
        } else {
            return 0;
        }
        if (j >= n || !s_alnum_lower(p[j]))
            return 0;
        i = j;
    }
    return 1;
}

static int s_domain_valid(const char *p, size_t n)
{
    size_t i = 0;
    if (n == 0)
        return 0;
    if (p[0] == '[') {
        /* IPv6 literal: hex digits and colons (and dots for v4-mapped) */
        i = 1;
        while (i < n && p[i] != ']') {
            if (!isxdigit((unsigned char)p[i]) && p[i] != ':' && p[i] != '.')
                return 0;
            i++;
        }
        if (i >= n || i == 1)
            return 0;
        i++;
    } else {
        for (;;) {
            size_t start = i;
            while (i < n && (s_alnum(p[i]) || p[i] == '-'))
                i++;
            if (i == start || p[start] == '-' || p[i - 1] == '-')
                return 0;
            if (i < n && p[i] == '.') {
                i++;
                continue;
            }
            break;
        }
    }
    if (i == n)
        return 1;
    if (p[i] != ':' || i + 1 == n)
        return 0;
    for (i++; i < n; i++)
        if (!isdigit((unsigned char)p[i]))
            return 0;
    return 1;
}

static int s_tag_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        int word = s_alnum(c) || c == '_';
        if (!word && (i == 0 || (c != '.' && c != '-')))
            return 0;
    }
    return 1;
}

int farm_reference_parse(farm_reference_t *out, const char *s)
{
    char name[S_NAME_MAX + 1];
    const char *at, *slash, *colon, *remainder;
    size_t name_len, dom_len;
    int rc = 0;

    memset(out, 0, sizeof *out);
    if (!s || !*s)
        return farm_error_set(FARM_EINVALID, "invalid image reference \"\": empty");
    if (strlen(s) > 512)
        return farm_error_set(FARM_EINVALID, "invalid image reference \"%.64s...\": too long",
                              s);
    for (const char *c = s; *c; c++)
        if (!isgraph((unsigned char)*c))
            return s_bad(s, "contains a space or control character");

    /* digest: everything after the first '@' */
    at = strchr(s, '@');
    if (at) {
        if (strncmp(at + 1, "sha256:", 7) != 0)
            return s_bad(s, "only sha256 digests are supported (expected @sha256:<64 hex>)");
        if (!farm_digest_valid(at + 1))
            return s_bad(s, "digest must be sha256: followed by 64 lowercase hex digits");
        snprintf(out->digest, sizeof out->digest, "%s", at + 1); /* valid: 71 bytes */
        name_len = (size_t)(at - s);
    } else {
        name_len = strlen(s);
    }

    /* tag: after the last ':' that follows the last '/' */
    slash = memrchr(s, '/', name_len);
    colon = memrchr(slash ? slash : s, ':', name_len - (size_t)((slash ? slash : s) - s));
    if (colon) {
        size_t tlen = name_len - (size_t)(colon - s) - 1;
        if (tlen >= sizeof out->tag)
            return s_bad(s, "tag is longer than 128 characters");
        memcpy(out->tag, colon + 1, tlen);
        out->tag[tlen] = '\0';
        if (!s_tag_valid(out->tag))
            return s_bad(s, "tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
        name_len = (size_t)(colon - s);
    }
    if (name_len == 0)
        return s_bad(s, "repository name is empty");
    if (name_len > S_NAME_MAX)
        return s_bad(s, "repository name is longer than 255 characters");
    memcpy(name, s, name_len);
    name[name_len] = '\0';

    /* domain: the first component, if it looks like a host (docker's splitDockerDomain) */
    slash = strchr(name, '/');
    dom_len = slash ? (size_t)(slash - name) : 0;
    if (slash && (memchr(name, '.', dom_len) || memchr(name, ':', dom_len) ||
                  (dom_len == 9 && memcmp(name, "localhost", 9) == 0) ||
                  s_has_upper(name, dom_len))) {
        if (!s_domain_valid(name, dom_len))
            return s_bad(s, "registry host is not a valid host[:port]");
        memcpy(out->registry, name, dom_len); /* fits: dom_len < name_len <= 255 */
        out->registry[dom_len] = '\0';
        remainder = slash + 1;
    } else {
        snprintf(out->registry, sizeof out->registry, "docker.io");
        remainder = name;
    }
    if (strcmp(out->registry, "index.docker.io") == 0)
        snprintf(out->registry, sizeof out->registry, "docker.io");

    if (*remainder == '\0')
        return s_bad(s, "repository name is empty");
    for (const char *c = remainder; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            return s_bad(s, "repository name must be lowercase");
    if (strcmp(out->registry, "docker.io") == 0 && !slash && !strchr(remainder, '/') &&
        strlen(remainder) == 64 && strspn(remainder, "0123456789abcdef") == 64)
        return s_bad(s, "a 64-character hexadecimal string is an image ID, not a name");

    {
        const char *p = remainder;
        for (;;) {
            const char *e = strchr(p, '/');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            if (!s_path_component_valid(p, n))
                return s_bad(s, "repository path components must be lowercase letters and "
                                "digits separated by '.', '_', '__' or '-'");
            if (!e)
                break;
            p = e + 1;
        }
    }

    if (strcmp(out->registry, "docker.io") == 0 && !strchr(remainder, '/'))
        rc = snprintf(out->repository, sizeof out->repository, "library/%s", remainder);
    else
        rc = snprintf(out->repository, sizeof out->repository, "%s", remainder);
    if (rc < 0 || (size_t)rc >= sizeof out->repository)
        return s_bad(s, "repository name is too long");
    if (strlen(out->registry) + 1 + strlen(out->repository) > S_NAME_MAX)
        return s_bad(s, "repository name is longer than 255 characters");

    if (!out->tag[0] && !out->digest[0])
        snprintf(out->tag, sizeof out->tag, "latest");
    return 0;
}

int farm_reference_format(char *buf, size_t len, const farm_reference_t *r)
{
    return farm_str_fmt(buf, len, "image reference", "%s/%s%s%s%s%s", r->registry,
                        r->repository, r->tag[0] ? ":" : "", r->tag, r->digest[0] ? "@" : "",
                        r->digest);
}

const char *farm_reference_api_host(const farm_reference_t *r)
{
    if (strcmp(r->registry, "docker.io") == 0)
        return "registry-1.docker.io";
    return r->registry;
}
