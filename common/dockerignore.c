/* SPDX-License-Identifier: Apache-2.0 */
/* .dockerignore: the rules of moby/patternmatcher (ignorefile.ReadAll + New +
 * MatchesOrParentMatches). A pattern is cleaned (filepath.Clean, leading "/" dropped),
 * "*" and "?" never match "/", "**" matches any number of directories, "!" makes an
 * exception, the last matching pattern wins, and a pattern that matches a parent
 * directory matches everything under it. Matching is per rune (UTF-8), like Go. */
#include "common/dockerignore.h"

#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_IGNORE_FILE_MAX (1u << 20) /* a .dockerignore larger than 1 MiB is a mistake */

typedef enum { S_T_LIT, S_T_ANY, S_T_STAR, S_T_DSTAR, S_T_DSTAR_END, S_T_CLASS } s_tok_kind_t;

typedef struct {
    s_tok_kind_t kind;
    uint32_t lit;       /* S_T_LIT */
    int negated;        /* S_T_CLASS */
    uint32_t (*ranges)[2];
    size_t n_ranges;
} s_tok_t;

/* Same shortcuts as patternmatcher's matchType: they change what matches. */
typedef enum { S_M_EXACT, S_M_PREFIX, S_M_SUFFIX, S_M_GLOB } s_match_kind_t;

typedef struct {
    char *text; /* cleaned, without the "!" */
    int exclusion;
    s_match_kind_t kind;
    s_tok_t *toks;
    size_t n_toks;
} s_pattern_t;

struct farm_dockerignore {
    s_pattern_t *pats;
    size_t n;
    int exclusions;      /* any "!" pattern */
    int wild_exclusions; /* any "!" pattern with a wildcard: excluded dirs must be walked */
};

/* Decodes one UTF-8 rune; invalid bytes decode as themselves (width 1), as Go does. */
static size_t s_rune(uint32_t *out, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) {
        *out = u[0];
        return 1;
    }
    if ((u[0] & 0xe0) == 0xc0 && (u[1] & 0xc0) == 0x80) {
        *out = ((uint32_t)(u[0] & 0x1f) << 6) | (u[1] & 0x3f);
        return 2;
    }
    if ((u[0] & 0xf0) == 0xe0 && (u[1] & 0xc0) == 0x80 && (u[2] & 0xc0) == 0x80) {
        *out = ((uint32_t)(u[0] & 0x0f) << 12) | ((uint32_t)(u[1] & 0x3f) << 6) | (u[2] & 0x3f);
        return 3;
    }
    if ((u[0] & 0xf8) == 0xf0 && (u[1] & 0xc0) == 0x80 && (u[2] & 0xc0) == 0x80 &&
        (u[3] & 0xc0) == 0x80) {
        *out = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3f) << 12) |
               ((uint32_t)(u[2] & 0x3f) << 6) | (u[3] & 0x3f);
        return 4;
    }
    *out = 0xFFFD0000u | u[0]; /* distinct from every valid rune */
    return 1;
}

char *farm_dockerignore_clean(const char *path)
{
    size_t n = strlen(path), w = 0, r = 0, dotdot = 0;
    int rooted = n > 0 && path[0] == '/';
    char *out = malloc(n + 2);

    if (!out)
        return NULL;
    if (rooted) {
        out[w++] = '/';
        r = dotdot = 1;
    }
    while (r < n) {
        if (path[r] == '/') {
            r++;
        } else if (path[r] == '.' && (r + 1 == n || path[r + 1] == '/')) {
            r++;
        } else if (path[r] == '.' && path[r + 1] == '.' && (r + 2 == n || path[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                w--;
                while (w > dotdot && out[w] != '/')
                    w--;
            } else if (!rooted) {
                if (w > 0)
                    out[w++] = '/';
                out[w++] = '.';
                out[w++] = '.';
                dotdot = w;
            }
        } else {
            if ((rooted && w != 1) || (!rooted && w != 0))
                out[w++] = '/';
            for (; r < n && path[r] != '/'; r++)
                out[w++] = path[r];
        }
    }
    if (w == 0)
        out[w++] = '.';
    out[w] = '\0';
    return out;
}

/* Parses a filepath.Match character class starting after '['; *pp is advanced past
 * the closing ']'. */
static int s_parse_class(s_tok_t *t, const char **pp)
{
    const char *p = *pp;
    uint32_t lo, hi;

    t->kind = S_T_CLASS;
    if (*p == '^') {
        t->negated = 1;
        p++;
    }
    for (int first = 1;; first = 0) {
        if (!*p)
            return -1;
        if (*p == ']' && !first)
            break;
        if (*p == '\\')
            p++;
        if (!*p || ((*p == '-' || *p == ']') && p[-1] != '\\'))
            return -1;
        p += s_rune(&lo, p);
        hi = lo;
        if (*p == '-') {
            p++;
            if (*p == '\\')
                p++;
            if (!*p || (*p == ']' && p[-1] != '\\'))
                return -1;
            p += s_rune(&hi, p);
            if (hi < lo)
                return -1;
        }
        uint32_t (*nr)[2] = realloc(t->ranges, (t->n_ranges + 1) * sizeof *nr);
        if (!nr)
            return -1;
        t->ranges = nr;
        t->ranges[t->n_ranges][0] = lo;
        t->ranges[t->n_ranges][1] = hi;
        t->n_ranges++;
    }
    *pp = p + 1;
    return 0;
}

static void s_pattern_free(s_pattern_t *p)
{
    for (size_t i = 0; i < p->n_toks; i++)
        free(p->toks[i].ranges);
    free(p->toks);
    free(p->text);
}

/* Compiles p->text the way patternmatcher's Pattern.compile does (same shortcuts). */
static int s_compile(s_pattern_t *p)
{
    const char *s = p->text;
    size_t cap = strlen(s) + 1;
    int i = 0;

    p->kind = S_M_EXACT;
    if (!(p->toks = calloc(cap, sizeof *p->toks)))
        return -1;
    for (; *s; i++) {
        s_tok_t *t = &p->toks[p->n_toks];
        if (*s == '*') {
            s++;
            if (*s == '*') {
                s++;
                if (*s == '/') /* "**" + "/" is one token */
                    s++;
                if (!*s) {
                    if (p->kind == S_M_EXACT) {
                        p->kind = S_M_PREFIX;
                    } else {
                        t->kind = S_T_DSTAR_END;
                        p->n_toks++;
                        p->kind = S_M_GLOB;
                    }
                } else {
                    t->kind = S_T_DSTAR;
                    p->n_toks++;
                    p->kind = S_M_GLOB;
                }
                if (i == 0)
                    p->kind = S_M_SUFFIX;
            } else {
                t->kind = S_T_STAR;
                p->n_toks++;
                p->kind = S_M_GLOB;
            }
        } else if (*s == '?') {
            s++;
            t->kind = S_T_ANY;
            p->n_toks++;
            p->kind = S_M_GLOB;
        } else if (*s == '\\') {
            s++;
            t->kind = S_T_LIT;
            if (*s) {
                s += s_rune(&t->lit, s);
                p->kind = S_M_GLOB;
            } else {
                t->lit = '\\';
            }
            p->n_toks++;
        } else if (*s == '[') {
            s++;
            if (s_parse_class(t, &s) < 0) {
                p->n_toks++; /* so its ranges are freed */
                return -1;
            }
            p->n_toks++;
            p->kind = S_M_GLOB;
        } else {
            t->kind = S_T_LIT;
            s += s_rune(&t->lit, s);
            p->n_toks++;
            if (t->lit == ']')
                p->kind = S_M_GLOB;
        }
    }
    return 0;
}

static int s_class_has(const s_tok_t *t, uint32_t c)
{
    int in = 0;
    for (size_t i = 0; i < t->n_ranges && !in; i++)
        in = c >= t->ranges[i][0] && c <= t->ranges[i][1];
    return in != t->negated;
}

/* Runs the pattern's token NFA over `path`. State i = "before token i"; an extra
 * state per "**" token means "inside the group of
 * any characters ending in a slash", which may only be left after a "/". Linear in the path length times the pattern length. */
static int s_glob(const s_pattern_t *p, const char *path)
{
    size_t n = p->n_toks, i;
    unsigned char stack_buf[256];
    unsigned char *buf = 4 * (n + 1) <= sizeof stack_buf ? stack_buf : malloc(4 * (n + 1));
    unsigned char *act, *ins, *nact, *nins;
    int ok;

    if (!buf)
        return 0;
    act = buf;
    ins = act + (n + 1);
    nact = ins + (n + 1);
    nins = nact + (n + 1);
    memset(buf, 0, 4 * (n + 1));
    act[0] = 1;
    for (;;) {
        uint32_t c;
        /* epsilon moves: "*", "**" (with or without its slash) may match nothing */
        for (i = 0; i < n; i++)
            if (act[i] && (p->toks[i].kind == S_T_STAR || p->toks[i].kind == S_T_DSTAR ||
                           p->toks[i].kind == S_T_DSTAR_END))
                act[i + 1] = 1;
        if (!*path)
            break;
        path += s_rune(&c, path);
        memset(nact, 0, 2 * (n + 1));
        int any = 0;
        for (i = 0; i < n; i++) {
            const s_tok_t *t = &p->toks[i];
            if (!act[i] && !(t->kind == S_T_DSTAR && ins[i]))
                continue;
            switch (t->kind) {
            case S_T_LIT:
                if (c == t->lit)
                    nact[i + 1] = 1;
                break;
            case S_T_ANY:
                if (c != '/')
                    nact[i + 1] = 1;
                break;
            case S_T_CLASS:
                if (s_class_has(t, c))
                    nact[i + 1] = 1;
                break;
            case S_T_STAR:
                if (c != '/')
                    nact[i] = 1;
                break;
            case S_T_DSTAR_END:
                nact[i] = 1;
                break;
            case S_T_DSTAR:
                nins[i] = 1;
                if (c == '/')
                    nact[i + 1] = 1;
                break;
            }
        }
        memcpy(act, nact, 2 * (n + 1));
        for (i = 0; i <= n; i++)
            any |= act[i] | ins[i];
        if (!any)
            break;
    }
    ok = !*path && act[n];
    if (buf != stack_buf)
        free(buf);
    return ok;
}

static int s_pattern_match(const s_pattern_t *p, const char *path)
{
    size_t pl, tl;
    switch (p->kind) {
    case S_M_EXACT:
        return strcmp(path, p->text) == 0;
    case S_M_PREFIX: /* "foo**": strip the trailing "**" */
        return strncmp(path, p->text, strlen(p->text) - 2) == 0;
    case S_M_SUFFIX: { /* "**foo" / "**" + "/foo" */
        const char *suffix = p->text + 2;
        pl = strlen(path);
        tl = strlen(suffix);
        if (pl >= tl && strcmp(path + pl - tl, suffix) == 0)
            return 1;
        return suffix[0] == '/' && strcmp(path, suffix + 1) == 0;
    }
    case S_M_GLOB:
        return s_glob(p, path);
    }
    return 0;
}

/* Adds the pattern [b, e) (already trimmed, "!" already taken off into `invert`). */
static int s_add_pattern(farm_dockerignore_t *self, const char *b, const char *e, int invert,
                         size_t lineno)
{
    char *tmp = NULL, *clean = NULL;
    s_pattern_t pat = {0};
    int rc = 0;

    if (!(tmp = strndup(b, (size_t)(e - b)))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    if (!tmp[0]) {
        rc = farm_error_set(FARM_EINVALID,
                            ".dockerignore line %zu: illegal exclusion pattern \"!\"", lineno);
        goto done;
    }
    if (!(clean = farm_dockerignore_clean(tmp))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    /* Absolute patterns are relative to the context root. */
    if (clean[0] == '/' && clean[1])
        memmove(clean, clean + 1, strlen(clean));
    pat.text = clean;
    clean = NULL;
    pat.exclusion = invert;
    if (s_compile(&pat) < 0) {
        rc = farm_error_set(FARM_EINVALID, ".dockerignore line %zu: bad pattern \"%s\" (unclosed "
                            "or malformed [...] class)", lineno, pat.text);
        goto done;
    }
    s_pattern_t *np = realloc(self->pats, (self->n + 1) * sizeof *np);
    if (!np) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    self->pats = np;
    if (invert) {
        self->exclusions = 1;
        if (strpbrk(pat.text, "*?[\\"))
            self->wild_exclusions = 1;
    }
    self->pats[self->n++] = pat;
    memset(&pat, 0, sizeof pat);
done:
    s_pattern_free(&pat);
    free(tmp);
    free(clean);
    return rc;
}

/* Adds one .dockerignore line (already known not to be a comment): ignorefile.ReadAll
 * trims it, and "!" (itself followed by optional blanks) makes an exception. */
static int s_add_line(farm_dockerignore_t *self, const char *line, size_t lineno)
{
    const char *b = line, *e = line + strlen(line);
    int invert;

    while (b < e && strchr(" \t\r\n\v\f", *b))
        b++;
    while (e > b && strchr(" \t\r\n\v\f", e[-1]))
        e--;
    if (b == e)
        return 0;
    invert = *b == '!';
    if (invert) {
        b++;
        while (b < e && strchr(" \t\r\n\v\f", *b))
            b++;
    }
    return s_add_pattern(self, b, e, invert, lineno);
}

farm_dockerignore_t *farm_dockerignore_parse(const char *text)
{
    farm_dockerignore_t *self = calloc(1, sizeof *self);
    const char *p = text ? text : "";
    size_t lineno = 0;

    if (!self) {
        farm_error_set(FARM_ERROR, "out of memory");
        return NULL;
    }
    if (!strncmp(p, "\xef\xbb\xbf", 3)) /* UTF-8 BOM */
        p += 3;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        lineno++;
        /* "#" starts a comment only in the first column, before any trimming. */
        if (p[0] != '#') {
            char *line = strndup(p, len);
            int rc = line ? s_add_line(self, line, lineno)
                          : farm_error_set(FARM_ERROR, "out of memory");
            free(line);
            if (rc < 0) {
                farm_dockerignore_destroy(&self);
                return NULL;
            }
        }
        p += len + (nl ? 1 : 0);
    }
    return self;
}

farm_dockerignore_t *farm_dockerignore_load(const char *dockerignore_path)
{
    farm_dockerignore_t *self = NULL;
    struct stat st;
    char *text = NULL;
    ssize_t n;
    size_t got = 0;
    int fd = open(dockerignore_path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        if (errno == ENOENT)
            return farm_dockerignore_parse("");
        farm_error_set(FARM_EIO, "%s: %s", dockerignore_path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > S_IGNORE_FILE_MAX) {
        farm_error_set(FARM_EINVALID, "%s: not a regular file of at most 1 MiB",
                       dockerignore_path);
        goto done;
    }
    if (!(text = malloc((size_t)st.st_size + 1))) {
        farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    while (got < (size_t)st.st_size) {
        n = read(fd, text + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) { /* a partial read would silently drop patterns */
            farm_error_set(FARM_EIO, "%s: %s", dockerignore_path,
                           n < 0 ? strerror(errno) : "shrank while being read");
            goto done;
        }
        got += (size_t)n;
    }
    text[got] = '\0';
    if (strlen(text) != got) {
        farm_error_set(FARM_EINVALID, "%s: contains a NUL byte", dockerignore_path);
        goto done;
    }
    if (!(self = farm_dockerignore_parse(text)))
        farm_error_wrap(FARM_EINVALID, "%s", dockerignore_path);
done:
    close(fd);
    free(text);
    return self;
}

int farm_dockerignore_match(const farm_dockerignore_t *self, const char *rel_path)
{
    int matched = 0;
    size_t plen = strlen(rel_path);
    char *parent = NULL;

    if (!self || !self->n || !strcmp(rel_path, "."))
        return 0;
    for (size_t i = 0; i < self->n; i++) {
        const s_pattern_t *p = &self->pats[i];
        int m;
        /* An inclusion cannot change a match, an exclusion cannot change a non-match. */
        if (p->exclusion != matched)
            continue;
        m = s_pattern_match(p, rel_path);
        /* Otherwise: does it match a parent directory ("build" covers "build/x/y")? */
        for (size_t k = 0; !m && k < plen; k++) {
            if (rel_path[k] != '/')
                continue;
            if (!parent && !(parent = strdup(rel_path)))
                break;
            parent[k] = '\0';
            m = s_pattern_match(p, parent);
            parent[k] = '/';
        }
        if (m)
            matched = !p->exclusion;
    }
    free(parent);
    return matched;
}

void farm_dockerignore_destroy(farm_dockerignore_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    for (size_t i = 0; i < (*self_p)->n; i++)
        s_pattern_free(&(*self_p)->pats[i]);
    free((*self_p)->pats);
    free(*self_p);
    *self_p = NULL;
}

/* BuildKit fsutil: always when an exception has a wildcard, else when an exception
 * names a path under dir. */
int farm_dockerignore_may_descend(const farm_dockerignore_t *self, const char *dir)
{
    size_t dl = strlen(dir);
    if (!self->exclusions)
        return 0;
    if (self->wild_exclusions)
        return 1;
    for (size_t i = 0; i < self->n; i++) {
        const char *t = self->pats[i].text;
        if (self->pats[i].exclusion && !strncmp(t, dir, dl) && (t[dl] == '/' || !t[dl]))
            return 1;
    }
    return 0;
}

/* Docker (cli/command/image/build TrimBuildFilesFromExcludes) appends "!" + the file to
 * the patterns as they are, untrimmed; no copy into a fixed buffer, so no length limit. */
int farm_dockerignore_keep(farm_dockerignore_t *self, const char *rel)
{
    if (!farm_dockerignore_match(self, rel))
        return 0;
    return s_add_pattern(self, rel, rel + strlen(rel), 1, 0);
}
