/* Build contexts: .dockerignore matching, deterministic packing, confined extraction. */
#include "common/context.h"

#include "common/error.h"
#include "common/log.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_IGNORE_FILE_MAX (1u << 20) /* a .dockerignore larger than 1 MiB is a mistake */
#define S_WALK_DEPTH_MAX 256         /* one open fd per level */
#define S_IO_CHUNK (64u << 10)

/* ---------------------------------------------------------------------------------
 * .dockerignore: the rules of moby/patternmatcher (ignorefile.ReadAll + New +
 * MatchesOrParentMatches). A pattern is cleaned (filepath.Clean, leading "/" dropped),
 * "*" and "?" never match "/", "**" matches any number of directories, "!" makes an
 * exception, the last matching pattern wins, and a pattern that matches a parent
 * directory matches everything under it. Matching is per rune (UTF-8), like Go. */

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

struct farm_ignore {
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

/* Go's path/filepath.Clean for "/"-separated paths. Returns a malloc'd string. */
static char *s_clean(const char *path)
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

/* Adds one .dockerignore line (already known not to be a comment). */
static int s_add_line(farm_ignore_t *self, const char *line, size_t lineno)
{
    const char *b = line, *e = line + strlen(line);
    char *tmp = NULL, *clean = NULL;
    s_pattern_t pat = {0};
    int invert, rc = 0;

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
    if (!(tmp = strndup(b, (size_t)(e - b)))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    if (!tmp[0]) {
        rc = farm_error_set(FARM_EINVALID, ".dockerignore line %zu: illegal exclusion pattern \"!\"",
                            lineno);
        goto done;
    }
    if (!(clean = s_clean(tmp))) {
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

farm_ignore_t *farm_ignore_parse(const char *text)
{
    farm_ignore_t *self = calloc(1, sizeof *self);
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
                farm_ignore_destroy(&self);
                return NULL;
            }
        }
        p += len + (nl ? 1 : 0);
    }
    return self;
}

farm_ignore_t *farm_ignore_load(const char *dockerignore_path)
{
    farm_ignore_t *self = NULL;
    struct stat st;
    char *text = NULL;
    ssize_t n;
    size_t got = 0;
    int fd = open(dockerignore_path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        if (errno == ENOENT)
            return farm_ignore_parse("");
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
    if (!(self = farm_ignore_parse(text)))
        farm_error_wrap(FARM_EINVALID, "%s", dockerignore_path);
done:
    close(fd);
    free(text);
    return self;
}

int farm_ignore_match(const farm_ignore_t *self, const char *rel_path)
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

void farm_ignore_destroy(farm_ignore_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    for (size_t i = 0; i < (*self_p)->n; i++)
        s_pattern_free(&(*self_p)->pats[i]);
    free((*self_p)->pats);
    free(*self_p);
    *self_p = NULL;
}

/* Must the walk enter excluded directory `dir`, because an exception may bring back
 * something inside it? (BuildKit fsutil: always when an exception has a wildcard,
 * else when an exception names a path under dir.) */
static int s_may_descend(const farm_ignore_t *self, const char *dir)
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

/* ---------------------------------------------------------------------------------
 * Packing. */

typedef struct {
    int fd;
    farm_sha256_t *sha;
    uint64_t size;
    int err;
} s_sink_t;

static la_ssize_t s_sink_write(struct archive *a, void *ud, const void *buf, size_t len)
{
    s_sink_t *s = ud;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(s->fd, (const char *)buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            s->err = errno;
            archive_set_error(a, errno, "write: %s", strerror(errno));
            return -1;
        }
        done += (size_t)n;
    }
    farm_sha256_update(s->sha, buf, len);
    s->size += len;
    return (la_ssize_t)len;
}

typedef struct {
    char *rel;
    struct stat st;
    int emitted;
} s_pending_t;

typedef struct {
    struct archive *ar;
    farm_ignore_t *ignore;
    dev_t out_dev;
    ino_t out_ino;
    s_pending_t stack[S_WALK_DEPTH_MAX];
    size_t depth;
    const char *root;
} s_packer_t;

static int s_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int s_write_header(s_packer_t *pk, const char *rel, const struct stat *st,
                          const char *link_target)
{
    struct archive_entry *e = NULL;
    int rc = 0;

    if (!(e = archive_entry_new()))
        return farm_error_set(FARM_ERROR, "out of memory");
    /* Names as raw bytes. In the C locale (farm never calls setlocale) libarchive cannot
     * convert non-ASCII bytes to UTF-8 and writes them raw under hdrcharset=BINARY
     * (ARCHIVE_WARN), so names that are not UTF-8 still pack and readers in any locale
     * get the same bytes back. (The _utf8 setters crash libarchive 3.6 in the C locale.) */
    archive_entry_copy_pathname(e, rel);
    archive_entry_set_mode(e, (st->st_mode & S_IFMT) | (st->st_mode & 07777));
    /* Owner normalised (the builder decides ownership), mtime kept in whole seconds:
     * COPY preserves it, and the same tree still packs to the same bytes. */
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_mtime(e, st->st_mtim.tv_sec, 0);
    if (S_ISREG(st->st_mode))
        archive_entry_set_size(e, st->st_size);
    else
        archive_entry_set_size(e, 0);
    if (link_target)
        archive_entry_copy_symlink(e, link_target);
    if (archive_write_header(pk->ar, e) < ARCHIVE_WARN)
        rc = farm_error_set(FARM_EIO, "context %s: %s: %s", pk->root, rel,
                            archive_error_string(pk->ar));
    archive_entry_free(e);
    return rc;
}

/* Writes the excluded-but-entered parent directories that now have a child to carry. */
static int s_emit_parents(s_packer_t *pk)
{
    int rc;
    for (size_t i = 0; i < pk->depth; i++) {
        if (pk->stack[i].emitted)
            continue;
        if ((rc = s_write_header(pk, pk->stack[i].rel, &pk->stack[i].st, NULL)) < 0)
            return rc;
        pk->stack[i].emitted = 1;
    }
    return 0;
}

static int s_pack_file(s_packer_t *pk, int dirfd, const char *name, const char *rel,
                       const struct stat *lst)
{
    struct stat st;
    char *buf = NULL;
    uint64_t left;
    int fd, rc = 0;

    /* O_NONBLOCK: a file swapped for a fifo since the lstat must not hang the pack. */
    fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        rc = farm_error_set(FARM_EIO, "context %s: cannot read %s: %s", pk->root, rel,
                            strerror(errno));
        goto done;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_ino != lst->st_ino) {
        rc = farm_error_set(FARM_EIO, "context %s: %s changed while packing", pk->root, rel);
        goto done;
    }
    if ((rc = s_write_header(pk, rel, &st, NULL)) < 0)
        goto done;
    if (!(buf = malloc(S_IO_CHUNK))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    for (left = (uint64_t)st.st_size; left > 0;) {
        ssize_t n = read(fd, buf, left < S_IO_CHUNK ? (size_t)left : S_IO_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = farm_error_set(FARM_EIO, "context %s: %s %s while packing", pk->root, rel,
                                n < 0 ? strerror(errno) : "shrank");
            goto done;
        }
        if (archive_write_data(pk->ar, buf, (size_t)n) != n) {
            rc = farm_error_set(FARM_EIO, "context %s: %s: %s", pk->root, rel,
                                archive_error_string(pk->ar));
            goto done;
        }
        left -= (uint64_t)n;
    }
done:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

static int s_walk(s_packer_t *pk, int dirfd, const char *prefix)
{
    DIR *d = NULL;
    struct dirent *de;
    char **names = NULL, rel[PATH_MAX];
    size_t n = 0, cap = 0;
    int dup_fd, rc = 0;

    if ((dup_fd = dup(dirfd)) < 0 || !(d = fdopendir(dup_fd))) {
        if (dup_fd >= 0)
            close(dup_fd);
        rc = farm_error_set(FARM_EIO, "context %s: cannot list %s: %s", pk->root,
                            prefix[0] ? prefix : ".", strerror(errno));
        goto done;
    }
    /* Sorted walk: readdir order is the file system's, not ours. */
    while ((errno = 0, de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            char **nn = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *nn);
            if (!nn) {
                rc = farm_error_set(FARM_ERROR, "out of memory");
                goto done;
            }
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = farm_error_set(FARM_ERROR, "out of memory");
            goto done;
        }
        n++;
    }
    if (errno) {
        rc = farm_error_set(FARM_EIO, "context %s: reading %s: %s", pk->root,
                            prefix[0] ? prefix : ".", strerror(errno));
        goto done;
    }
    if (n)
        qsort(names, n, sizeof *names, s_cmp_names);

    for (size_t i = 0; i < n; i++) {
        struct stat st;
        int excluded, len;

        len = snprintf(rel, sizeof rel, "%s%s%s", prefix, prefix[0] ? "/" : "", names[i]);
        if (len < 0 || (size_t)len >= sizeof rel) {
            rc = farm_error_set(FARM_EINVALID, "context %s: path too long under %s", pk->root,
                                prefix);
            goto done;
        }
        if (fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
            rc = farm_error_set(FARM_EIO, "context %s: %s: %s", pk->root, rel, strerror(errno));
            goto done;
        }
        if (st.st_dev == pk->out_dev && st.st_ino == pk->out_ino)
            continue; /* the tar being written, when it lives inside the context */
        excluded = farm_ignore_match(pk->ignore, rel);
        if (excluded && !(S_ISDIR(st.st_mode) && s_may_descend(pk->ignore, rel)))
            continue;
        if (!excluded && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
            farm_log_warn("context %s: skipping %s: not a regular file, directory or symlink",
                          pk->root, rel);
            continue;
        }
        if (!excluded && (rc = s_emit_parents(pk)) < 0)
            goto done;
        if (S_ISDIR(st.st_mode)) {
            int sub;
            if (pk->depth == S_WALK_DEPTH_MAX) {
                rc = farm_error_set(FARM_EINVALID, "context %s: %s is nested more than %d "
                                    "directories deep", pk->root, rel, S_WALK_DEPTH_MAX);
                goto done;
            }
            if (!excluded && (rc = s_write_header(pk, rel, &st, NULL)) < 0)
                goto done;
            sub = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                rc = farm_error_set(FARM_EIO, "context %s: cannot enter %s: %s", pk->root, rel,
                                    strerror(errno));
                goto done;
            }
            pk->stack[pk->depth].rel = rel;
            pk->stack[pk->depth].st = st;
            pk->stack[pk->depth].emitted = !excluded;
            pk->depth++;
            rc = s_walk(pk, sub, rel);
            pk->depth--;
            close(sub);
            if (rc < 0)
                goto done;
        } else if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t tl = readlinkat(dirfd, names[i], target, sizeof target - 1);
            if (tl < 0) {
                rc = farm_error_set(FARM_EIO, "context %s: %s: %s", pk->root, rel,
                                    strerror(errno));
                goto done;
            }
            target[tl] = '\0';
            if ((rc = s_write_header(pk, rel, &st, target)) < 0)
                goto done;
        } else if ((rc = s_pack_file(pk, dirfd, names[i], rel, &st)) < 0) {
            goto done;
        }
    }
done:
    if (d)
        closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* Docker (cli/command/image/build TrimBuildFilesFromExcludes): the Dockerfile and
 * .dockerignore are sent even when a pattern excludes them. */
static int s_keep(farm_ignore_t *ig, const char *rel)
{
    char line[PATH_MAX + 2];
    if (!farm_ignore_match(ig, rel))
        return 0;
    snprintf(line, sizeof line, "!%s", rel);
    return s_add_line(ig, line, 0);
}

int farm_context_pack(char out_digest[FARM_DIGEST_STRLEN], uint64_t *out_size, const char *dir,
                      const char *dockerfile, const char *out_path)
{
    s_packer_t pk = {0};
    s_sink_t sink = {.fd = -1};
    char path[PATH_MAX], *df = NULL;
    struct stat st;
    int rootfd = -1, rc = 0, opened = 0;

    out_digest[0] = '\0';
    if (out_size)
        *out_size = 0;
    pk.root = dir;

    if (!(df = s_clean(dockerfile && dockerfile[0] ? dockerfile : "Dockerfile"))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    if (df[0] == '/' || !strcmp(df, "..") || !strncmp(df, "../", 3)) {
        rc = farm_error_set(FARM_EINVALID, "Dockerfile %s is outside the context %s; farm sends "
                            "only the context: move it inside", dockerfile, dir);
        goto done;
    }
    rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        rc = farm_error_set(FARM_EIO, "context %s: %s", dir, strerror(errno));
        goto done;
    }
    snprintf(path, sizeof path, "%s/.dockerignore", dir);
    if (!(pk.ignore = farm_ignore_load(path))) {
        rc = FARM_EINVALID;
        goto done;
    }
    if ((rc = s_keep(pk.ignore, ".dockerignore")) < 0 || (rc = s_keep(pk.ignore, df)) < 0)
        goto done;

    sink.fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (sink.fd < 0 || fstat(sink.fd, &st) < 0) {
        rc = farm_error_set(FARM_EIO, "%s: %s", out_path, strerror(errno));
        goto done;
    }
    opened = 1;
    pk.out_dev = st.st_dev;
    pk.out_ino = st.st_ino;
    if (!(sink.sha = farm_sha256_new()) || !(pk.ar = archive_write_new())) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    /* pax_restricted: plain ustar unless a name or size needs a pax record. */
    if (archive_write_set_format_pax_restricted(pk.ar) != ARCHIVE_OK ||
        archive_write_add_filter_none(pk.ar) != ARCHIVE_OK ||
        archive_write_open2(pk.ar, &sink, NULL, s_sink_write, NULL, NULL) != ARCHIVE_OK) {
        rc = farm_error_set(FARM_EIO, "%s: %s", out_path, archive_error_string(pk.ar));
        goto done;
    }
    if ((rc = s_walk(&pk, rootfd, "")) < 0)
        goto done;
    if (archive_write_close(pk.ar) != ARCHIVE_OK) {
        rc = farm_error_set(FARM_EIO, "%s: %s", out_path, archive_error_string(pk.ar));
        goto done;
    }
    if (fsync(sink.fd) < 0 && errno != EINVAL) {
        rc = farm_error_set(FARM_EIO, "%s: %s", out_path, strerror(errno));
        goto done;
    }
    farm_sha256_final(sink.sha, out_digest);
    if (out_size)
        *out_size = sink.size;
done:
    if (pk.ar)
        archive_write_free(pk.ar);
    if (sink.fd >= 0)
        close(sink.fd);
    if (rc < 0 && opened)
        unlink(out_path); /* never leave a truncated context behind */
    if (rootfd >= 0)
        close(rootfd);
    farm_sha256_destroy(&sink.sha);
    farm_ignore_destroy(&pk.ignore);
    free(df);
    return rc;
}

/* ---------------------------------------------------------------------------------
 * Extraction. The tar comes from another machine: every entry is checked before
 * anything is written.
 *
 * Confinement does not rest on a string-prefix test of resolved paths (that kind of
 * check was bypassed in moby's archive code, GHSA-hfg8-hc9c-6c3h). Instead:
 *  - each entry name is checked component by component: relative, no "..";
 *  - dest is resolved once with realpath(), so it has no symlink in it, and the entry
 *    is written at <realdest>/<name>: no chdir, which would be process-wide;
 *  - libarchive's ARCHIVE_EXTRACT_SECURE_SYMLINKS then refuses, at write time, any
 *    entry (or hardlink target) whose path crosses a symlink on disk, and
 *    ARCHIVE_EXTRACT_SECURE_NODOTDOT refuses ".." in the final path.
 *    (ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS cannot be set since the final path is
 *    absolute by construction; s_check_name refuses absolute entry names instead.)
 *  - symlinks may only point inside dest (see s_check_symlink); hardlinks only to a
 *    regular file already extracted inside dest;
 *  - devices, fifos and sockets are refused; owners are not restored; set-id bits are
 *    dropped; entries and bytes are bounded. */

/* Cleans a relative entry name: "./a//b/" -> "a/b". Refuses "", absolute and "..";
 * *why says which. */
static int s_check_name(char *out, size_t len, const char *name, const char **why)
{
    size_t w = 0;
    const char *p = name;

    *why = "is empty";
    if (!name || !name[0])
        return -1;
    *why = "is an absolute path";
    if (name[0] == '/')
        return -1;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t cl = e ? (size_t)(e - p) : strlen(p);
        *why = "contains \"..\"";
        if (cl == 2 && p[0] == '.' && p[1] == '.')
            return -1;
        *why = "is too long";
        if (cl && !(cl == 1 && p[0] == '.')) {
            if (w + cl + 2 > len)
                return -1;
            if (w)
                out[w++] = '/';
            memcpy(out + w, p, cl);
            w += cl;
        }
        p += cl + (e ? 1 : 0);
    }
    out[w] = '\0';
    return 0;
}

/* A symlink's target must stay inside dest: relative, and its ".." components only
 * leading and no more than the link's depth. A ".." after a named component is
 * refused because the kernel resolves it after following that component, which may
 * itself be a symlink (so the lexical result would be wrong). */
static int s_check_symlink(const char *clean_name, const char *target)
{
    int depth = 0, seen_name = 0;
    const char *p = target;

    if (!target[0] || target[0] == '/')
        return -1;
    for (const char *c = clean_name; *c; c++)
        depth += *c == '/';
    while (*p) {
        const char *e = strchr(p, '/');
        size_t cl = e ? (size_t)(e - p) : strlen(p);
        if (cl == 2 && p[0] == '.' && p[1] == '.') {
            if (seen_name || --depth < 0)
                return -1;
        } else if (cl && !(cl == 1 && p[0] == '.')) {
            seen_name = 1;
        }
        p += cl + (e ? 1 : 0);
    }
    return 0;
}

static const char *s_type_name(mode_t t)
{
    switch (t) {
    case AE_IFCHR:
        return "character device";
    case AE_IFBLK:
        return "block device";
    case AE_IFIFO:
        return "fifo";
    case AE_IFSOCK:
        return "socket";
    default:
        return "unknown entry type";
    }
}

static int s_dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int empty = 1;
    if (!d)
        return -1;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            empty = 0;
    closedir(d);
    return empty;
}

int farm_context_extract(const char *tar_path, const char *dest, uint64_t max_bytes,
                         uint64_t max_entries)
{
    struct archive *ar = NULL, *aw = NULL;
    struct archive_entry *e;
    char *root = NULL, clean[PATH_MAX], full[PATH_MAX + 1], link_full[PATH_MAX + 1];
    char name[PATH_MAX] = ""; /* the entry named in errors; libarchive reuses its buffer */
    uint64_t n_entries = 0, total = 0;
    size_t rootlen;
    int rc = 0, r;

    if (!(root = realpath(dest, NULL))) {
        rc = farm_error_set(FARM_EIO, "extract context: %s: %s", dest, strerror(errno));
        goto done;
    }
    if (s_dir_empty(root) != 1) {
        rc = farm_error_set(FARM_EINVALID, "extract context: %s is not an empty directory", dest);
        goto done;
    }
    rootlen = strlen(root);
    if (!(ar = archive_read_new()) || !(aw = archive_write_disk_new())) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    archive_read_support_format_tar(ar);
    archive_read_support_filter_none(ar);
    archive_write_disk_set_options(aw, ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                           ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                           ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM);
    if (archive_read_open_filename(ar, tar_path, S_IO_CHUNK) != ARCHIVE_OK) {
        rc = farm_error_set(FARM_EIO, "context tar %s: %s", tar_path, archive_error_string(ar));
        goto done;
    }
    for (;;) {
        const char *hl, *sl, *why, *pathname;
        mode_t type;

        r = archive_read_next_header(ar, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            rc = farm_error_set(FARM_EINVALID, "context tar %s: after entry \"%s\": %s", tar_path,
                                name, archive_error_string(ar));
            goto done;
        }
        pathname = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
        /* Checked whole, not as a truncated copy that would name another file. */
        if (snprintf(name, sizeof name, "%s", pathname) >= (int)sizeof name) {
            rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%.200s...\": refused: the "
                                "name is longer than %d bytes", tar_path, pathname, PATH_MAX - 1);
            goto done;
        }
        if (++n_entries > max_entries) {
            rc = farm_error_set(FARM_ETOOBIG, "context tar %s: entry \"%s\": more than %" PRIu64
                                " entries", tar_path, name, max_entries);
            goto done;
        }
        if (s_check_name(clean, sizeof clean, name, &why) < 0) {
            rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": refused: the name %s",
                                tar_path, name, why);
            goto done;
        }
        if (!clean[0])
            continue; /* "./": dest itself */
        type = archive_entry_filetype(e);
        hl = archive_entry_hardlink(e);
        sl = type == AE_IFLNK ? archive_entry_symlink(e) : NULL;
        if (hl) {
            char hclean[PATH_MAX];
            struct stat st;
            if (s_check_name(hclean, sizeof hclean, hl, &why) < 0 || !hclean[0]) {
                rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": hardlink "
                                    "target \"%s\" is outside the context", tar_path, name, hl);
                goto done;
            }
            snprintf(link_full, sizeof link_full, "%s/%s", root, hclean);
            /* A hardlink to a symlink would move the symlink to another depth, where
             * its relative target could point outside. */
            if (lstat(link_full, &st) < 0 || !S_ISREG(st.st_mode)) {
                rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": hardlink "
                                    "target \"%s\" is not a regular file extracted before it",
                                    tar_path, name, hl);
                goto done;
            }
            archive_entry_set_hardlink(e, link_full);
        } else if (type == AE_IFLNK) {
            if (!sl || s_check_symlink(clean, sl) < 0) {
                rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": symlink to "
                                    "\"%s\" points outside the context", tar_path, name,
                                    sl ? sl : "");
                goto done;
            }
        } else if (type != AE_IFREG && type != AE_IFDIR) {
            rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": %s not allowed "
                                "(only files, directories and links)", tar_path, name,
                                s_type_name(type));
            goto done;
        }
        if (type == AE_IFREG || hl) {
            int64_t sz = archive_entry_size(e);
            if (sz < 0 || (uint64_t)sz > max_bytes || total + (uint64_t)sz > max_bytes) {
                rc = farm_error_set(FARM_ETOOBIG, "context tar %s: entry \"%s\": contents exceed "
                                    "%" PRIu64 " bytes", tar_path, name, max_bytes);
                goto done;
            }
            total += (uint64_t)sz;
        }
        if (rootlen + 1 + strlen(clean) >= sizeof full) {
            rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": path too long",
                                tar_path, name);
            goto done;
        }
        snprintf(full, sizeof full, "%s/%s", root, clean);
        archive_entry_set_pathname(e, full);
        archive_entry_set_perm(e, archive_entry_perm(e) & ~(mode_t)(S_ISUID | S_ISGID));
        if (archive_write_header(aw, e) < ARCHIVE_WARN) {
            rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": %s", tar_path,
                                name, archive_error_string(aw));
            goto done;
        }
        if (type == AE_IFREG && archive_entry_size(e) > 0) {
            const void *buf;
            size_t len;
            la_int64_t off;
            while ((r = archive_read_data_block(ar, &buf, &len, &off)) == ARCHIVE_OK) {
                if (archive_write_data_block(aw, buf, len, off) < ARCHIVE_WARN) {
                    rc = farm_error_set(FARM_EIO, "context tar %s: entry \"%s\": %s", tar_path,
                                        name, archive_error_string(aw));
                    goto done;
                }
            }
            if (r != ARCHIVE_EOF) {
                rc = farm_error_set(FARM_EINVALID, "context tar %s: entry \"%s\": %s", tar_path,
                                    name, archive_error_string(ar));
                goto done;
            }
        }
        if (archive_write_finish_entry(aw) < ARCHIVE_WARN) {
            rc = farm_error_set(FARM_EIO, "context tar %s: entry \"%s\": %s", tar_path, name,
                                archive_error_string(aw));
            goto done;
        }
    }
    /* Directory modes and times are applied here, after their contents. */
    if (archive_write_close(aw) != ARCHIVE_OK) {
        rc = farm_error_set(FARM_EIO, "context tar %s: finishing %s: %s", tar_path, dest,
                            archive_error_string(aw));
        goto done;
    }
done:
    if (ar)
        archive_read_free(ar);
    if (aw)
        archive_write_free(aw); /* also closes (and fixes up) after an error */
    free(root);
    return rc;
}
