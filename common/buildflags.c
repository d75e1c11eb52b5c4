/* SPDX-License-Identifier: Apache-2.0 */
#include "common/buildflags.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/str.h"
#include "common/text.h"

/* ------------------------------------------------------------------ memory */

static void s_kv_free(farm_kv_t **kv, size_t *n)
{
    for (size_t i = 0; *kv && i < *n; i++) {
        free((*kv)[i].key);
        free((*kv)[i].value);
    }
    free(*kv);
    *kv = NULL;
    *n = 0;
}

void farm_buildflags_wipe_secrets(farm_buildflags_t *f)
{
    for (size_t i = 0; f->secrets && i < f->n_secrets; i++) {
        farm_secret_t *s = &f->secrets[i];
        if (s->value)
            explicit_bzero(s->value, s->len);
        free(s->value);
        free(s->id);
    }
    free(f->secrets);
    f->secrets = NULL;
    f->n_secrets = 0;
}

int farm_buildflags_empty(const farm_buildflags_t *f)
{
    return !f->target && !f->no_cache && !f->pull && !f->n_labels && !f->n_annotations &&
           !f->n_index_annotations && !f->n_secrets && !f->cache_from && !f->cache_to &&
           !f->provenance;
}

const char *farm_provenance_name(int p)
{
    return p == FARM_PROVENANCE_OFF   ? "off"
           : p == FARM_PROVENANCE_MIN ? "min"
           : p == FARM_PROVENANCE_MAX ? "max"
                                      : "";
}

int farm_provenance_parse(const char *s)
{
    if (!s || !s[0])
        return FARM_PROVENANCE_DEFAULT;
    if (!strcmp(s, "off"))
        return FARM_PROVENANCE_OFF;
    if (!strcmp(s, "min"))
        return FARM_PROVENANCE_MIN;
    if (!strcmp(s, "max"))
        return FARM_PROVENANCE_MAX;
    return -1;
}

/* KEY=VALUE,... of --provenance and --attest. type: the --attest's type= ("" for
 * --provenance, which may also be a bare true/false/min/max). */
static int s_attest_keys(farm_buildflags_t *f, const char *spec, const char *flag, int attest)
{
    char buf[256], *save = NULL, *tok;
    int mode = FARM_PROVENANCE_MIN, off = 0, typed = 0;

    if (!spec || strlen(spec) >= sizeof buf)
        return farm_error_set(FARM_EINVALID, "%s: write e.g. %s", flag,
                              attest ? "type=provenance,mode=max" : "mode=max or false");
    if (!attest && (!strcmp(spec, "false") || !strcmp(spec, "0") || !strcmp(spec, "off"))) {
        f->provenance = FARM_PROVENANCE_OFF;
        return 0;
    }
    if (!attest && (!strcmp(spec, "true") || !strcmp(spec, "1") || !strcmp(spec, "min"))) {
        f->provenance = FARM_PROVENANCE_MIN;
        return 0;
    }
    if (!attest && !strcmp(spec, "max")) {
        f->provenance = FARM_PROVENANCE_MAX;
        return 0;
    }
    strcpy(buf, spec);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        const char *k = tok, *v = eq ? eq + 1 : "";
        if (eq)
            *eq = '\0';
        if (!strcmp(k, "type") && attest) {
            if (strcmp(v, "provenance") != 0)
                return farm_error_set(FARM_EINVALID, "%s %s: farm attaches provenance "
                                      "attestations only (type=provenance); \"%.32s\" is not "
                                      "supported", flag, spec, v);
            typed = 1;
        } else if (!strcmp(k, "mode") && (!strcmp(v, "min") || !strcmp(v, "max"))) {
            mode = !strcmp(v, "max") ? FARM_PROVENANCE_MAX : FARM_PROVENANCE_MIN;
        } else if (!strcmp(k, "disabled") && (!strcmp(v, "true") || !strcmp(v, "false"))) {
            off = !strcmp(v, "true");
        } else {
            return farm_error_set(FARM_EINVALID, "%s %s: \"%.32s\" is not understood; write "
                                  "mode=min or mode=max, or disabled=true%s", flag, spec, tok,
                                  attest ? ", after type=provenance" : " (or false)");
        }
    }
    if (attest && !typed)
        return farm_error_set(FARM_EINVALID, "%s %s: name the type first: "
                              "type=provenance,mode=max", flag, spec);
    f->provenance = off ? FARM_PROVENANCE_OFF : mode;
    return 0;
}

int farm_buildflags_provenance_spec(farm_buildflags_t *f, const char *spec)
{
    return s_attest_keys(f, spec, "--provenance", 0);
}

int farm_buildflags_attest_spec(farm_buildflags_t *f, const char *spec)
{
    return s_attest_keys(f, spec, "--attest", 1);
}

void farm_buildflags_clear(farm_buildflags_t *f)
{
    if (!f)
        return;
    farm_buildflags_wipe_secrets(f);
    free(f->target);
    free(f->cache_from);
    free(f->cache_to);
    s_kv_free(&f->labels, &f->n_labels);
    s_kv_free(&f->annotations, &f->n_annotations);
    s_kv_free(&f->index_annotations, &f->n_index_annotations);
    memset(f, 0, sizeof *f);
}

/* ------------------------------------------------------------------ what is well-formed */

/* A label or annotation key: one word, no '=' (the builder's KEY=VALUE). */
static int s_key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > FARM_META_KEY_MAX || !farm_utf8_valid(k))
        return 0;
    for (const unsigned char *p = (const unsigned char *)k; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == '=')
            return 0;
    return 1;
}

static int s_value_ok(const char *v)
{
    return strlen(v) <= FARM_META_VALUE_MAX && farm_utf8_valid(v);
}

/* A stage name or a secret id: it becomes part of the builder's argv and of
 * /run/secrets/ID, so letters, digits, '.', '_', '-' only, not starting with '.' or '-'. */
static int s_name_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || s[0] == '.' || s[0] == '-')
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static farm_kv_t *s_kv_find(farm_kv_t *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0)
            return &kv[i];
    return NULL;
}

/* Sets key to value in the list (a later one replaces an earlier one); the caller has
 * checked the count. */
static int s_kv_set(farm_kv_t **kv, size_t *n, const char *key, const char *value)
{
    farm_kv_t *hit = s_kv_find(*kv, *n, key), *grown;
    char *k = NULL, *v = strdup(value);

    if (!v)
        return farm_error_set(FARM_ERROR, "out of memory");
    if (hit) {
        free(hit->value);
        hit->value = v;
        return 0;
    }
    if (!(k = strdup(key)) || !(grown = realloc(*kv, (*n + 1) * sizeof **kv))) {
        free(k);
        free(v);
        return farm_error_set(FARM_ERROR, "out of memory");
    }
    *kv = grown;
    grown[*n].key = k;
    grown[*n].value = v;
    (*n)++;
    return 0;
}

/* ------------------------------------------------------------------ person's input */

int farm_build_network_parse(const char *s, int *none)
{
    *none = 0;
    if (!s || strcmp(s, "default") == 0)
        return 0;
    if (!*s)
        return farm_error_set(FARM_EINVALID, "it is empty; write default or none");
    if (strcmp(s, "none") == 0) {
        *none = 1;
        return 0;
    }
    return farm_error_set(FARM_EINVALID, "\"%.32s\" is not offered: RUN steps get "
                          "the node's network (default: outbound only) or none; never the "
                          "agent's host network", s);
}

int farm_buildflags_set_target(farm_buildflags_t *f, const char *stage)
{
    char *t;
    if (!s_name_ok(stage, FARM_TARGET_MAX))
        return farm_error_set(FARM_EINVALID, "target \"%.64s\" is not a stage name (letters, "
                              "digits, '.', '_', '-', at most %d bytes)", stage, FARM_TARGET_MAX);
    if (!(t = strdup(stage)))
        return farm_error_set(FARM_ERROR, "out of memory");
    free(f->target);
    f->target = t;
    return 0;
}

/* One repository path component as the distribution spec has it: lower-case letters and
 * digits, joined by one separator run of ".", "_", "__" or "-"s; n bytes at p. */
static int s_repo_component_ok(const char *p, size_t n)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    size_t i = 0, run;

    while (i < n) {
        if ((run = strspn(p + i, alnum)) == 0 || i + run > n)
            return 0;
        if ((i += run) == n)
            return 1;
        run = strspn(p + i, "._-");
        if (i + run >= n || !((run == 1) || (run == 2 && p[i] == '_' && p[i + 1] == '_') ||
                              strspn(p + i, "-") == run))
            return 0;
        i += run;
    }
    return 0;
}

int farm_cache_repo_ok(const char *repo)
{
    const char *path = repo ? strchr(repo, '/') : NULL, *c;
    size_t n = repo ? strlen(repo) : 0;

    if (!path || path == repo || n > FARM_REFERENCE_MAX || strlen(path + 1) > 255 ||
        strspn(repo, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") !=
            (size_t)(path - repo))
        return 0;
    for (c = path + 1;; c += strcspn(c, "/") + 1) {
        if (!s_repo_component_ok(c, strcspn(c, "/")))
            return 0;
        if (!c[strcspn(c, "/")])
            return 1;
    }
}

int farm_buildflags_cache_spec(farm_buildflags_t *f, int to, const char *spec)
{
    const char *flag = to ? "--cache-to" : "--cache-from";
    char *copy = strdup(spec), *ref = NULL, *save = NULL, **slot = to ? &f->cache_to : &f->cache_from;

    if (!copy)
        return farm_error_set(FARM_ERROR, "out of memory");
    if (!strchr(spec, '=')) {
        ref = copy;
    } else {
        /* buildx's type=registry,ref=R[,mode=min|max]: the registry kind only */
        for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
            if (strncmp(kv, "ref=", 4) == 0) {
                ref = kv + 4;
            } else if (strcmp(kv, "type=registry") != 0 && strcmp(kv, "mode=min") != 0 &&
                       strcmp(kv, "mode=max") != 0) {
                farm_error_set(FARM_EINVALID, "%s \"%.100s\": \"%.40s\" is not offered: farm "
                               "keeps a registry cache only (REGISTRY/REPOSITORY or "
                               "type=registry,ref=REGISTRY/REPOSITORY)", flag, spec, kv);
                free(copy);
                return FARM_EINVALID;
            }
        }
    }
    if (!ref || !farm_cache_repo_ok(ref)) {
        farm_error_set(FARM_EINVALID, "%s: \"%.100s\" is not REGISTRY/REPOSITORY (no tag or "
                       "digest: each platform's cache is REPOSITORY/OS-ARCH[-VARIANT])", flag,
                       ref ? ref : spec);
        free(copy);
        return FARM_EINVALID;
    }
    memmove(copy, ref, strlen(ref) + 1);
    free(*slot);
    *slot = copy;
    return 0;
}

static int s_meta_check(const char *what, const char *key, const char *value)
{
    if (!s_key_ok(key))
        return farm_error_set(FARM_EINVALID, "%s key \"%.64s\" is not valid: it must be 1 to %d "
                              "bytes of UTF-8 without spaces, control characters or '='", what,
                              key, FARM_META_KEY_MAX);
    if (!s_value_ok(value))
        return farm_error_set(FARM_EINVALID, "%s %.64s: the value is not UTF-8 or longer than "
                              "%d bytes", what, key, FARM_META_VALUE_MAX);
    return 0;
}

int farm_buildflags_set_label(farm_buildflags_t *f, const char *key, const char *value)
{
    int rc;
    if ((rc = s_meta_check("label", key, value)) < 0)
        return rc;
    if (!s_kv_find(f->labels, f->n_labels, key) && f->n_labels >= FARM_LABELS_MAX)
        return farm_error_set(FARM_EINVALID, "too many labels (at most %d)", FARM_LABELS_MAX);
    return s_kv_set(&f->labels, &f->n_labels, key, value);
}

/* Splits "KEY=VALUE" and calls set(f, KEY, VALUE). */
static int s_spec(farm_buildflags_t *f, const char *spec, const char *flag,
                  int (*set)(farm_buildflags_t *, const char *, const char *))
{
    const char *eq = strchr(spec, '=');
    char *key;
    int rc;

    if (!eq || eq == spec)
        return farm_error_set(FARM_EINVALID, "%s wants KEY=VALUE, not \"%.80s\"", flag, spec);
    if (!(key = strndup(spec, (size_t)(eq - spec))))
        return farm_error_set(FARM_ERROR, "out of memory");
    rc = set(f, key, eq + 1);
    free(key);
    return rc;
}

int farm_buildflags_label_spec(farm_buildflags_t *f, const char *spec)
{
    return s_spec(f, spec, "--label", farm_buildflags_set_label);
}

int farm_buildflags_set_annotation(farm_buildflags_t *f, const char *key, const char *value)
{
    /* buildx's TYPE: or TYPE[PLATFORM]: before the key; a key such as com.example:x has
     * no such prefix (a type is lower-case letters and '-') */
    size_t t = strspn(key, "abcdefghijklmnopqrstuvwxyz-");
    int index = 0, rc;
    farm_kv_t **list;
    size_t *n;

    if (t > 0 && key[t] == '[' && strstr(key + t, "]:"))
        return farm_error_set(FARM_EINVALID, "annotation \"%.80s\": per-platform annotations "
                              "(TYPE[PLATFORM]:KEY) are not supported; write manifest:KEY "
                              "(every platform) or index:KEY", key);
    if (t > 0 && key[t] == ':') {
        if (t == 8 && strncmp(key, "manifest", 8) == 0) {
            key += 9;
        } else if (t == 5 && strncmp(key, "index", 5) == 0) {
            key += 6;
            index = 1;
        } else if ((t == 19 && strncmp(key, "manifest-descriptor", 19) == 0) ||
                   (t == 16 && strncmp(key, "index-descriptor", 16) == 0)) {
            return farm_error_set(FARM_EINVALID, "annotation \"%.80s\": %.*s: annotations are "
                                  "not supported; write manifest:KEY=VALUE (each platform's "
                                  "image manifest) or index:KEY=VALUE (the image index)", key,
                                  (int)t, key);
        } else {
            return farm_error_set(FARM_EINVALID, "annotation \"%.80s\": unknown type \"%.*s\"; "
                                  "write manifest:KEY=VALUE, index:KEY=VALUE or KEY=VALUE", key,
                                  (int)t, key);
        }
    }
    if ((rc = s_meta_check("annotation", key, value)) < 0)
        return rc;
    list = index ? &f->index_annotations : &f->annotations;
    n = index ? &f->n_index_annotations : &f->n_annotations;
    if (!s_kv_find(*list, *n, key) &&
        f->n_annotations + f->n_index_annotations >= FARM_ANNOTATIONS_MAX)
        return farm_error_set(FARM_EINVALID, "too many annotations (at most %d)",
                              FARM_ANNOTATIONS_MAX);
    return s_kv_set(list, n, key, value);
}

int farm_buildflags_annotation_spec(farm_buildflags_t *f, const char *spec)
{
    return s_spec(f, spec, "--annotation", farm_buildflags_set_annotation);
}

int farm_secret_spec_parse(farm_secret_spec_t *out, const char *spec)
{
    char *copy = strdup(spec), *save = NULL;
    const char *type = NULL, *id = NULL, *src = NULL, *env = NULL, *source;
    int rc = FARM_EINVALID;

    memset(out, 0, sizeof *out);
    if (!copy)
        return farm_error_set(FARM_ERROR, "out of memory");
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            farm_error_set(rc, "--secret %.200s: \"%.64s\" is not KEY=VALUE", spec, tok);
            goto done;
        }
        *eq = '\0';
        if (!strcasecmp(tok, "type"))
            type = eq + 1;
        else if (!strcasecmp(tok, "id"))
            id = eq + 1;
        else if (!strcasecmp(tok, "src") || !strcasecmp(tok, "source"))
            src = eq + 1;
        else if (!strcasecmp(tok, "env"))
            env = eq + 1;
        else {
            farm_error_set(rc, "--secret %.200s: unknown key \"%.64s\"; the keys are id, src "
                           "(or source), env and type", spec, tok);
            goto done;
        }
    }
    if (!id || !s_name_ok(id, FARM_SECRET_ID_MAX)) {
        farm_error_set(rc, "--secret %.200s: %s; write e.g. id=token,src=FILE (an id is "
                       "letters, digits, '.', '_', '-', at most %d bytes)", spec,
                       id ? "the id is not valid" : "no id=", FARM_SECRET_ID_MAX);
        goto done;
    }
    if (type && strcmp(type, "file") != 0 && strcmp(type, "env") != 0) {
        farm_error_set(rc, "--secret %.200s: type=%.32s; write type=file or type=env", spec, type);
        goto done;
    }
    if (src && env) {
        farm_error_set(rc, "--secret %.200s: give src= or env=, not both", spec);
        goto done;
    }
    if (type && !strcmp(type, "file") && env) {
        farm_error_set(rc, "--secret %.200s: type=file reads src=, not env=", spec);
        goto done;
    }
    if (type && !strcmp(type, "env")) {
        out->kind = FARM_SECRET_ENV; /* buildx: type=env,src=VAR names the variable too */
        source = env ? env : src ? src : id;
    } else if (env) {
        out->kind = FARM_SECRET_ENV;
        source = env;
    } else if (src || type) {
        out->kind = FARM_SECRET_FILE;
        source = src ? src : id;
    } else {
        out->kind = FARM_SECRET_AUTO;
        source = id;
    }
    if (!source[0]) {
        farm_error_set(rc, "--secret %.200s: src= or env= is empty", spec);
        goto done;
    }
    if (farm_str_fmt(out->id, sizeof out->id, "the secret id", "%s", id) < 0 ||
        farm_str_fmt(out->source, sizeof out->source, "the secret's source", "%s", source) < 0) {
        farm_error_wrap(rc, "--secret %.200s", spec);
        goto done;
    }
    rc = 0;
done:
    free(copy);
    return rc;
}

/* Reads at most FARM_SECRET_MAX bytes of path into a malloc'd buffer. */
static int s_read_secret(char **out, size_t *out_len, const char *id, const char *path)
{
    char *buf = malloc(FARM_SECRET_MAX + 2);
    size_t len = 0;
    int fd = -1, rc = FARM_EINVALID;

    *out = NULL;
    if (!buf)
        return farm_error_set(FARM_ERROR, "out of memory");
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        farm_error_set(rc, "secret %s: cannot read %s: %s", id, path, strerror(errno));
        goto done;
    }
    while (len <= FARM_SECRET_MAX) {
        ssize_t n = read(fd, buf + len, FARM_SECRET_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            farm_error_set(rc, "secret %s: cannot read %s: %s", id, path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > FARM_SECRET_MAX) {
        farm_error_set(rc, "secret %s: %s is larger than " FARM_SECRET_MAX_TEXT ", the most "
                       "farm sends", id, path);
        goto done;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    if (buf)
        explicit_bzero(buf, FARM_SECRET_MAX + 2);
    free(buf);
    return rc;
}

int farm_buildflags_add_secret(farm_buildflags_t *f, const farm_secret_spec_t *spec,
                               const char *base_dir)
{
    farm_secret_kind_t kind = spec->kind;
    farm_secret_t *grown, *slot = NULL;
    char *value = NULL, *id = NULL, path[4096];
    size_t len = 0;
    int rc;

    if (kind == FARM_SECRET_AUTO)
        kind = getenv(spec->id) ? FARM_SECRET_ENV : FARM_SECRET_FILE;
    for (size_t i = 0; i < f->n_secrets; i++)
        if (strcmp(f->secrets[i].id, spec->id) == 0)
            slot = &f->secrets[i];
    if (!slot && f->n_secrets >= FARM_SECRETS_MAX)
        return farm_error_set(FARM_EINVALID, "too many secrets (at most %d)", FARM_SECRETS_MAX);
    if (kind == FARM_SECRET_ENV) {
        const char *v = getenv(spec->source);
        if (!v)
            return farm_error_set(FARM_EINVALID, "secret %s: the environment variable %s is not "
                                  "set", spec->id, spec->source);
        if ((len = strlen(v)) > FARM_SECRET_MAX)
            return farm_error_set(FARM_EINVALID, "secret %s: $%s is larger than "
                                  FARM_SECRET_MAX_TEXT ", the most farm sends", spec->id,
                                  spec->source);
        if (!(value = strdup(v)))
            return farm_error_set(FARM_ERROR, "out of memory");
    } else {
        if ((rc = farm_path_join(path, sizeof path,
                                 base_dir && spec->source[0] != '/' ? base_dir : spec->source,
                                 base_dir && spec->source[0] != '/' ? spec->source : NULL)) < 0)
            return farm_error_wrap(rc, "secret %s", spec->id);
        if ((rc = s_read_secret(&value, &len, spec->id, path)) < 0)
            return rc;
    }
    if (!slot && (!(id = strdup(spec->id)) ||
                  !(grown = realloc(f->secrets, (f->n_secrets + 1) * sizeof *grown)))) {
        free(id);
        explicit_bzero(value, len);
        free(value);
        return farm_error_set(FARM_ERROR, "out of memory");
    }
    if (slot) {
        explicit_bzero(slot->value, slot->len);
        free(slot->value);
    } else {
        f->secrets = grown;
        slot = &grown[f->n_secrets++];
        slot->id = id;
    }
    slot->value = value;
    slot->len = len;
    return 0;
}

/* ------------------------------------------------------------------ checks and the wire */

static int s_kv_check(const farm_kv_t *kv, size_t n, const char *what)
{
    int rc;
    for (size_t i = 0; i < n; i++) {
        if ((rc = s_meta_check(what, kv[i].key, kv[i].value)) < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(kv[i].key, kv[j].key) == 0)
                return farm_error_set(FARM_EINVALID, "%s %.64s is given twice", what, kv[i].key);
    }
    return 0;
}

/* The counts, checked before anything else (on the wire: before anything is copied). */
static int s_counts(size_t labels, size_t annotations, size_t secrets)
{
    if (labels > FARM_LABELS_MAX)
        return farm_error_set(FARM_EINVALID, "too many labels (%zu; at most %d)", labels,
                              FARM_LABELS_MAX);
    if (annotations > FARM_ANNOTATIONS_MAX)
        return farm_error_set(FARM_EINVALID, "too many annotations (%zu; at most %d)",
                              annotations, FARM_ANNOTATIONS_MAX);
    if (secrets > FARM_SECRETS_MAX)
        return farm_error_set(FARM_EINVALID, "too many secrets (%zu; at most %d)", secrets,
                              FARM_SECRETS_MAX);
    return 0;
}

int farm_buildflags_check(const farm_buildflags_t *f)
{
    int rc;

    if (f->target && !s_name_ok(f->target, FARM_TARGET_MAX))
        return farm_error_set(FARM_EINVALID, "the target is not a stage name (letters, digits, "
                              "'.', '_', '-', at most %d bytes)", FARM_TARGET_MAX);
    if ((f->cache_from && !farm_cache_repo_ok(f->cache_from)) ||
        (f->cache_to && !farm_cache_repo_ok(f->cache_to)))
        return farm_error_set(FARM_EINVALID, "a cache repository is not REGISTRY/REPOSITORY");
    if ((rc = s_counts(f->n_labels, f->n_annotations + f->n_index_annotations,
                       f->n_secrets)) < 0 ||
        (rc = s_kv_check(f->labels, f->n_labels, "label")) < 0 ||
        (rc = s_kv_check(f->annotations, f->n_annotations, "annotation")) < 0 ||
        (rc = s_kv_check(f->index_annotations, f->n_index_annotations, "index annotation")) < 0)
        return rc;
    for (size_t i = 0; i < f->n_secrets; i++) {
        const farm_secret_t *s = &f->secrets[i];
        if (!s_name_ok(s->id, FARM_SECRET_ID_MAX))
            return farm_error_set(FARM_EINVALID, "secret %zu: the id is not valid (letters, "
                                  "digits, '.', '_', '-', at most %d bytes)", i + 1,
                                  FARM_SECRET_ID_MAX);
        if (s->len > FARM_SECRET_MAX)
            return farm_error_set(FARM_EINVALID, "secret %s is %zu bytes; at most "
                                  FARM_SECRET_MAX_TEXT, s->id, s->len);
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->id, f->secrets[j].id) == 0)
                return farm_error_set(FARM_EINVALID, "secret %s is given twice", s->id);
    }
    return 0;
}

static int s_kv_copy(farm_kv_t **out, size_t *out_n, Farm__KeyValue *const *in, size_t n)
{
    if (!(*out = calloc(n + 1, sizeof **out)))
        return farm_error_set(FARM_ERROR, "out of memory");
    for (size_t i = 0; i < n; i++) {
        (*out)[i].key = strdup(in[i]->key);
        (*out)[i].value = strdup(in[i]->value);
        (*out_n)++;
        if (!(*out)[i].key || !(*out)[i].value)
            return farm_error_set(FARM_ERROR, "out of memory");
    }
    return 0;
}

int farm_buildflags_from_wire(farm_buildflags_t *out, const Farm__BuildFlags *w)
{
    int rc;

    memset(out, 0, sizeof *out);
    if (!w)
        return 0;
    /* counts and sizes first: nothing is copied for a hostile message */
    if ((rc = s_counts(w->n_labels, w->n_annotations + w->n_index_annotations,
                       w->n_secrets)) < 0)
        return rc;
    for (size_t i = 0; i < w->n_secrets; i++)
        if (w->secrets[i]->value.len > FARM_SECRET_MAX)
            return farm_error_set(FARM_EINVALID, "secret %zu is %zu bytes; at most "
                                  FARM_SECRET_MAX_TEXT, i + 1, w->secrets[i]->value.len);
    out->no_cache = w->no_cache;
    out->pull = w->pull;
    if ((out->provenance = farm_provenance_parse(w->provenance)) < 0) {
        out->provenance = 0;
        return farm_error_set(FARM_EINVALID, "provenance \"%.16s\" is not off, min or max",
                              w->provenance);
    }
    if ((w->target[0] && !(out->target = strdup(w->target))) ||
        (w->cache_from[0] && !(out->cache_from = strdup(w->cache_from))) ||
        (w->cache_to[0] && !(out->cache_to = strdup(w->cache_to))) ||
        (rc = s_kv_copy(&out->labels, &out->n_labels, w->labels, w->n_labels)) < 0 ||
        (rc = s_kv_copy(&out->annotations, &out->n_annotations, w->annotations,
                        w->n_annotations)) < 0 ||
        (rc = s_kv_copy(&out->index_annotations, &out->n_index_annotations,
                        w->index_annotations, w->n_index_annotations)) < 0 ||
        !(out->secrets = calloc(w->n_secrets + 1, sizeof *out->secrets))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < w->n_secrets; i++) {
        const Farm__Secret *s = w->secrets[i];
        farm_secret_t *d = &out->secrets[i];
        d->id = strdup(s->id);
        d->value = malloc(s->value.len + 1);
        out->n_secrets++;
        if (!d->id || !d->value) {
            rc = farm_error_set(FARM_ERROR, "out of memory");
            goto fail;
        }
        if (s->value.len)
            memcpy(d->value, s->value.data, s->value.len);
        d->value[s->value.len] = '\0';
        d->len = s->value.len;
    }
    if ((rc = farm_buildflags_check(out)) < 0)
        goto fail;
    return 0;
fail:
    farm_buildflags_clear(out);
    return rc;
}

static Farm__KeyValue **s_kv_wire(Farm__KeyValue *kv, const farm_kv_t *in, size_t n,
                                  Farm__KeyValue **ptrs)
{
    for (size_t i = 0; i < n; i++) {
        farm__key_value__init(&kv[i]);
        kv[i].key = in[i].key;
        kv[i].value = in[i].value;
        ptrs[i] = &kv[i];
    }
    return ptrs;
}

int farm_buildflags_to_wire(Farm__BuildFlags *out, farm_buildflags_wire_t *store,
                            const farm_buildflags_t *f)
{
    size_t nl = f->n_labels, na = f->n_annotations, ni = f->n_index_annotations;

    farm__build_flags__init(out);
    memset(store, 0, sizeof *store);
    store->kv = calloc(nl + na + ni + 1, sizeof *store->kv);
    store->labels = calloc(nl + 1, sizeof *store->labels);
    store->annotations = calloc(na + 1, sizeof *store->annotations);
    store->index_annotations = calloc(ni + 1, sizeof *store->index_annotations);
    store->sec = calloc(f->n_secrets + 1, sizeof *store->sec);
    store->secrets = calloc(f->n_secrets + 1, sizeof *store->secrets);
    if (!store->kv || !store->labels || !store->annotations || !store->index_annotations ||
        !store->sec || !store->secrets) {
        farm_buildflags_wire_free(store);
        return farm_error_set(FARM_ERROR, "out of memory");
    }
    out->target = f->target ? f->target : "";
    out->cache_from = f->cache_from ? f->cache_from : "";
    out->cache_to = f->cache_to ? f->cache_to : "";
    out->no_cache = f->no_cache;
    out->pull = f->pull;
    out->provenance = (char *)farm_provenance_name(f->provenance);
    out->n_labels = nl;
    out->labels = s_kv_wire(store->kv, f->labels, nl, store->labels);
    out->n_annotations = na;
    out->annotations = s_kv_wire(store->kv + nl, f->annotations, na, store->annotations);
    out->n_index_annotations = ni;
    out->index_annotations = s_kv_wire(store->kv + nl + na, f->index_annotations, ni,
                                       store->index_annotations);
    for (size_t i = 0; i < f->n_secrets; i++) {
        farm__secret__init(&store->sec[i]);
        store->sec[i].id = f->secrets[i].id;
        store->sec[i].value.data = (uint8_t *)f->secrets[i].value;
        store->sec[i].value.len = f->secrets[i].len;
        store->secrets[i] = &store->sec[i];
    }
    out->n_secrets = f->n_secrets;
    out->secrets = store->secrets;
    return 0;
}

void farm_buildflags_wire_free(farm_buildflags_wire_t *store)
{
    free(store->kv);
    free(store->labels);
    free(store->annotations);
    free(store->index_annotations);
    free(store->sec);
    free(store->secrets);
    memset(store, 0, sizeof *store);
}

void farm_buildflags_wire_wipe(Farm__BuildFlags *w)
{
    for (size_t i = 0; w && w->secrets && i < w->n_secrets; i++)
        if (w->secrets[i] && w->secrets[i]->value.data)
            explicit_bzero(w->secrets[i]->value.data, w->secrets[i]->value.len);
}
