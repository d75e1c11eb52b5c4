/* SPDX-License-Identifier: Apache-2.0 */
/* Registry authentication: WWW-Authenticate parsing, docker config.json credential
 * lookup (auths, credHelpers, credsStore), and the state machine that turns challenges
 * into Basic or Bearer Authorization headers, with tokens cached per scope. */
#include "common/registry_auth.h"

#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/proc.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define S_CONFIG_MAX (1u << 20)   /* config.json larger than this is refused */
#define S_HELPER_OUT_MAX (64u << 10)
#define S_HELPER_TIMEOUT_MS 30000
#define S_TOKENS_MAX 16
#define S_SCOPE_MAX 320 /* "repository:" + a name of at most 255 + ":pull,push" */

/* ------------------------------------------------------------------------------ */
/* WWW-Authenticate (RFC 7235 2.1: challenges and auth-params share ',' as separator) */

static int s_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *s_skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static size_t s_token_len(const char *p)
{
    size_t n = 0;
    while (s_tchar(p[n]))
        n++;
    return n;
}

/* Reads a token or quoted-string value at *pp into dst (NUL-terminated). */
static int s_read_value(char *dst, size_t cap, const char **pp)
{
    const char *p = *pp;
    size_t n = 0;

    if (*p == '"') {
        p++;
        while (*p && *p != '"') {
            if (*p == '\\' && p[1])
                p++;
            if (n + 1 >= cap)
                return -1;
            dst[n++] = *p++;
        }
        if (*p != '"')
            return -1; /* unterminated */
        p++;
    } else {
        /* token; be lenient about '/' and ':' which some servers leave unquoted */
        while (*p && *p != ',' && *p != ' ' && *p != '\t') {
            if (n + 1 >= cap)
                return -1;
            dst[n++] = *p++;
        }
    }
    dst[n] = '\0';
    *pp = p;
    return 0;
}

static int s_scheme_rank(const char *scheme)
{
    if (strcasecmp(scheme, "Bearer") == 0)
        return 3;
    if (strcasecmp(scheme, "Basic") == 0)
        return 2;
    return 1;
}

int farm_registry_parse_challenge(farm_auth_challenge_t *out, const char *header)
{
    farm_auth_challenge_t cur;
    const char *p = header;
    int best = 0;

    memset(out, 0, sizeof *out);
    if (!header)
        return farm_error_set(FARM_EINVALID, "no WWW-Authenticate challenge");
    for (;;) {
        size_t n;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        n = s_token_len(p);
        if (n == 0 || n >= sizeof cur.scheme)
            return farm_error_set(FARM_EINVALID,
                                  "malformed WWW-Authenticate challenge \"%.200s\"", header);
        memset(&cur, 0, sizeof cur);
        memcpy(cur.scheme, p, n);
        p += n;
        /* auth-params until a token that is not followed by '=' (the next scheme) */
        for (;;) {
            char name[64], value[1024];
            const char *q;
            p = s_skip_ws(p);
            while (*p == ',' || *p == ' ' || *p == '\t')
                p++;
            n = s_token_len(p);
            q = s_skip_ws(p + n);
            if (n == 0 || *q != '=')
                break;
            if (q[1] == '=' || q[1] == '\0' || q[1] == ',') {
                /* token68 ("abc==") or empty value: nothing we use */
                while (*q == '=')
                    q++;
                p = q;
                continue;
            }
            if (n >= sizeof name)
                return farm_error_set(FARM_EINVALID,
                                      "malformed WWW-Authenticate challenge \"%.200s\"", header);
            memcpy(name, p, n);
            name[n] = '\0';
            q = s_skip_ws(q + 1);
            if (s_read_value(value, sizeof value, &q) < 0)
                return farm_error_set(FARM_EINVALID,
                                      "malformed or over-long value for %s in WWW-Authenticate "
                                      "challenge \"%.200s\"",
                                      name, header);
            p = q;
            {
                char *dst = NULL;
                size_t cap = 0;
                if (strcasecmp(name, "realm") == 0)
                    dst = cur.realm, cap = sizeof cur.realm;
                else if (strcasecmp(name, "service") == 0)
                    dst = cur.service, cap = sizeof cur.service;
                else if (strcasecmp(name, "scope") == 0)
                    dst = cur.scope, cap = sizeof cur.scope;
                else if (strcasecmp(name, "error") == 0)
                    dst = cur.error, cap = sizeof cur.error;
                if (dst) {
                    if (strlen(value) >= cap)
                        return farm_error_set(FARM_EINVALID,
                                              "WWW-Authenticate %s value is too long", name);
                    memcpy(dst, value, strlen(value) + 1);
                }
            }
        }
        if (s_scheme_rank(cur.scheme) > best) {
            best = s_scheme_rank(cur.scheme);
            *out = cur;
        }
    }
    if (best < 2)
        return farm_error_set(FARM_EINVALID,
                              "no Bearer or Basic challenge in WWW-Authenticate \"%.200s\"",
                              header);
    if (best == 3 && !out->realm[0])
        return farm_error_set(FARM_EINVALID,
                              "Bearer challenge without a realm in WWW-Authenticate \"%.200s\"",
                              header);
    return 0;
}

/* ------------------------------------------------------------------------------ */
/* Credentials */

static void s_wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void farm_registry_creds_clear(farm_registry_creds_t *creds)
{
    if (!creds)
        return;
    free(creds->username);
    s_wipe_free(creds->secret);
    memset(creds, 0, sizeof *creds);
}

/* docker.io, index.docker.io and registry-1.docker.io are one registry */
static const char *s_canon_host(const char *h)
{
    if (strcasecmp(h, "index.docker.io") == 0 || strcasecmp(h, "registry-1.docker.io") == 0)
        return "docker.io";
    return h;
}

/* A config key ("https://host/v1/", "host", "http://host") names host? */
static int s_key_matches(const char *key, const char *host)
{
    char k[512];
    const char *p = key;
    size_t n;

    if (strncasecmp(p, "https://", 8) == 0)
        p += 8;
    else if (strncasecmp(p, "http://", 7) == 0)
        p += 7;
    n = strcspn(p, "/");
    if (n == 0 || n >= sizeof k)
        return 0;
    memcpy(k, p, n);
    k[n] = '\0';
    return strcasecmp(s_canon_host(k), s_canon_host(host)) == 0;
}

static json_t *s_object_lookup_host(json_t *obj, const char *host)
{
    const char *key;
    json_t *v;
    if (!json_is_object(obj))
        return NULL;
    json_object_foreach(obj, key, v) {
        if (s_key_matches(key, host))
            return v;
    }
    return NULL;
}

/* Server address a helper knows the registry by: docker stores Hub as its v1 URL. */
static const char *s_helper_server(const char *host)
{
    if (strcmp(s_canon_host(host), "docker.io") == 0)
        return "https://index.docker.io/v1/";
    return host;
}

static int s_creds_set(farm_registry_creds_t *out, const char *user, size_t ulen,
                       const char *secret, size_t slen, int identity)
{
    out->username = strndup(user ? user : "", user ? ulen : 0);
    out->secret = strndup(secret, slen);
    out->identity_token = identity;
    if (!out->username || !out->secret) {
        farm_registry_creds_clear(out);
        return farm_error_set(FARM_ERROR, "out of memory");
    }
    return 0;
}

/* Runs docker-credential-NAME get. *out_missing (may be NULL) is set to 1 if the helper
 * could not be started at all. */
static int s_helper_get(farm_registry_creds_t *out, int *out_missing, const char *name,
                        const char *host)
{
    char prog[128], *buf = NULL;
    const char *server = s_helper_server(host);
    char *argv[3];
    farm_proc_capture_t pc = {.argv = argv, .input = server, .input_len = strlen(server),
                              .timeout_ms = S_HELPER_TIMEOUT_MS};
    int status, rc = 0;
    size_t len = 0;
    json_t *root = NULL;

    if (!*name || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
                      strlen(name) || strlen(name) > 64)
        return farm_error_set(FARM_EINVALID, "credential helper name \"%.64s\" is not valid",
                              name);
    snprintf(prog, sizeof prog, "docker-credential-%s", name);
    argv[0] = prog;
    argv[1] = "get";
    argv[2] = NULL;

    buf = malloc(S_HELPER_OUT_MAX + 1);
    if (!buf)
        return farm_error_set(FARM_ERROR, "out of memory");
    status = farm_proc_capture(&pc, buf, S_HELPER_OUT_MAX + 1, &len);
    if (status == FARM_ENOTFOUND) {
        if (out_missing)
            *out_missing = 1;
        rc = farm_error_wrap(FARM_ERROR, "credential helper %s for %s (is it on PATH?)", prog,
                             host);
        goto done;
    }
    if (status == FARM_ERETRY) {
        rc = farm_error_set(FARM_ERROR, "credential helper %s for %s timed out after %d s",
                            prog, host, S_HELPER_TIMEOUT_MS / 1000);
        goto done;
    }
    if (status < 0) {
        rc = status;
        goto done;
    }
    if (status != 0) {
        /* helpers report "credentials not found in native keychain" on stdout */
        if (strstr(buf, "credentials not found")) {
            rc = farm_error_set(FARM_ENOTFOUND, "credential helper %s has no entry for %s",
                                prog, server);
        } else {
            buf[strcspn(buf, "\r\n")] = '\0';
            rc = farm_error_set(FARM_ERROR, "credential helper %s failed for %s (%s %d)%s%.200s",
                                prog, server, status < 128 ? "exit" : "signal",
                                status < 128 ? status : status - 128, buf[0] ? ": " : "", buf);
        }
        goto done;
    }
    {
        json_error_t jerr;
        json_t *u, *sec;
        root = json_loadb(buf, len, 0, &jerr);
        u = json_object_get(root, "Username");
        sec = json_object_get(root, "Secret");
        if (!json_is_object(root) || !json_is_string(sec)) {
            rc = farm_error_set(FARM_EINVALID,
                                "credential helper %s gave no JSON {Username, Secret} for %s",
                                prog, server);
            goto done;
        }
        if (json_string_length(sec) == 0) {
            rc = farm_error_set(FARM_ENOTFOUND, "credential helper %s has no entry for %s",
                                prog, server);
            goto done;
        }
        /* Username "<token>" marks the secret as an identity (refresh) token */
        rc = s_creds_set(out, json_is_string(u) ? json_string_value(u) : "",
                         json_is_string(u) ? json_string_length(u) : 0,
                         json_string_value(sec), json_string_length(sec),
                         json_is_string(u) && strcmp(json_string_value(u), "<token>") == 0);
    }
done:
    if (root) {
        /* jansson holds copies of the secret; wipe the string before freeing */
        json_t *sec = json_object_get(root, "Secret");
        if (json_is_string(sec))
            explicit_bzero((char *)json_string_value(sec), json_string_length(sec));
        json_decref(root);
    }
    explicit_bzero(buf, len);
    free(buf);
    return rc;
}

static int s_auths_entry(farm_registry_creds_t *out, json_t *entry, const char *host,
                         const char *path)
{
    json_t *auth = json_object_get(entry, "auth");
    json_t *user = json_object_get(entry, "username");
    json_t *pass = json_object_get(entry, "password");
    json_t *idt = json_object_get(entry, "identitytoken");
    unsigned char *dec = NULL;
    int rc = FARM_ENOTFOUND;

    if (json_is_string(auth) && json_string_length(auth) > 0) {
        const char *b64 = json_string_value(auth);
        size_t blen = json_string_length(auth);
        int dlen;
        char *colon;
        if (blen > 8192 || blen % 4 != 0) {
            rc = farm_error_set(FARM_EINVALID, "%s: auths entry for %s: \"auth\" is not valid "
                                "base64 of user:password", path, host);
            goto done;
        }
        dec = malloc(blen / 4 * 3 + 1);
        if (!dec) {
            rc = farm_error_set(FARM_ERROR, "out of memory");
            goto done;
        }
        dlen = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)blen);
        if (dlen < 0) {
            rc = farm_error_set(FARM_EINVALID, "%s: auths entry for %s: \"auth\" is not valid "
                                "base64 of user:password", path, host);
            goto done;
        }
        /* EVP_DecodeBlock counts the padding as output bytes */
        for (size_t i = blen; i > 0 && b64[i - 1] == '='; i--)
            dlen--;
        dec[dlen] = '\0';
        colon = memchr(dec, ':', (size_t)dlen);
        if (!colon) {
            rc = farm_error_set(FARM_EINVALID, "%s: auths entry for %s: \"auth\" does not "
                                "decode to user:password", path, host);
            goto done;
        }
        if (json_is_string(idt) && json_string_length(idt) > 0)
            rc = s_creds_set(out, (char *)dec, (size_t)(colon - (char *)dec),
                             json_string_value(idt), json_string_length(idt), 1);
        else
            rc = s_creds_set(out, (char *)dec, (size_t)(colon - (char *)dec), colon + 1,
                             (size_t)dlen - (size_t)(colon + 1 - (char *)dec), 0);
        explicit_bzero(dec, (size_t)dlen);
        goto done;
    }
    if (json_is_string(idt) && json_string_length(idt) > 0) {
        rc = s_creds_set(out, json_is_string(user) ? json_string_value(user) : "",
                         json_is_string(user) ? json_string_length(user) : 0,
                         json_string_value(idt), json_string_length(idt), 1);
        goto done;
    }
    if (json_is_string(user) && json_is_string(pass) && json_string_length(pass) > 0) {
        rc = s_creds_set(out, json_string_value(user), json_string_length(user),
                         json_string_value(pass), json_string_length(pass), 0);
        goto done;
    }
    rc = farm_error_set(FARM_ENOTFOUND, "%s: auths entry for %s holds no credentials", path,
                        host);
done:
    free(dec);
    return rc;
}

static char *s_read_config(const char *path, int *out_rc)
{
    struct stat st;
    char *buf = NULL;
    FILE *f = fopen(path, "re");

    *out_rc = 0;
    if (!f) {
        *out_rc = errno == ENOENT
                      ? farm_error_set(FARM_ENOTFOUND, "no docker config at %s", path)
                      : farm_error_set(FARM_EIO, "cannot open docker config %s: %s", path,
                                       strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) < 0 || st.st_size < 0 || (uint64_t)st.st_size > S_CONFIG_MAX) {
        *out_rc = farm_error_set(FARM_ETOOBIG, "docker config %s is larger than %u bytes", path,
                                 S_CONFIG_MAX);
        goto done;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        *out_rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        *out_rc = farm_error_set(FARM_EIO, "cannot read docker config %s", path);
        free(buf);
        buf = NULL;
        goto done;
    }
    buf[st.st_size] = '\0';
done:
    fclose(f);
    return buf;
}

int farm_registry_credentials_lookup(farm_registry_creds_t *out, const char *config_path,
                                     const char *host)
{
    char pathbuf[FARM_PATH_MAX];
    char *text = NULL;
    json_t *root = NULL, *v;
    json_error_t jerr;
    int rc = 0;

    memset(out, 0, sizeof *out);
    if (!config_path) {
        const char *dc = getenv("DOCKER_CONFIG"), *home = getenv("HOME");
        if (dc && *dc)
            rc = farm_path_join(pathbuf, sizeof pathbuf, dc, "config.json");
        else if (home && *home)
            rc = farm_path_join(pathbuf, sizeof pathbuf, home, ".docker/config.json");
        else
            return farm_error_set(FARM_ENOTFOUND, "no docker config (neither DOCKER_CONFIG "
                                  "nor HOME is set)");
        if (rc < 0)
            return farm_error_wrap(rc, "docker config");
        config_path = pathbuf;
    }
    text = s_read_config(config_path, &rc);
    if (!text)
        goto done;
    root = json_loads(text, 0, &jerr);
    if (!json_is_object(root)) {
        rc = farm_error_set(FARM_EINVALID, "%s:%d:%d: not a JSON object: %s", config_path,
                            jerr.line, jerr.column, root ? "wrong type" : jerr.text);
        goto done;
    }

    v = s_object_lookup_host(json_object_get(root, "credHelpers"), host);
    if (json_is_string(v)) {
        rc = s_helper_get(out, NULL, json_string_value(v), host);
        goto done; /* docker does not fall back from a per-host helper */
    }
    v = json_object_get(root, "credsStore");
    if (json_is_string(v) && json_string_length(v) > 0) {
        int missing = 0;
        rc = s_helper_get(out, &missing, json_string_value(v), host);
        /* a config copied from a desktop names a store this host lacks: use auths */
        if (missing)
            farm_log_warn("registry %s: %s; trying auths in %s", host, farm_error_last(),
                          config_path);
        else if (rc != FARM_ENOTFOUND)
            goto done;
    }
    v = s_object_lookup_host(json_object_get(root, "auths"), host);
    if (!json_is_object(v)) {
        rc = farm_error_set(FARM_ENOTFOUND, "no credentials for %s in %s", host, config_path);
        goto done;
    }
    rc = s_auths_entry(out, v, host, config_path);
done:
    json_decref(root);
    if (text) {
        explicit_bzero(text, strlen(text));
        free(text);
    }
    return rc;
}

/* ------------------------------------------------------------------------------ */
/* The state machine: anonymous until a 401 says Basic or Bearer. */

typedef enum { S_AUTH_NONE, S_AUTH_BASIC, S_AUTH_BEARER } s_auth_mode_t;

typedef struct {
    char scope[S_SCOPE_MAX]; /* "" (ping) or "repository:NAME:pull[,push]" */
    char *token;
    struct timespec expires;
} s_token_t;

struct farm_registry_auth {
    char *host;     /* for messages and the credential lookup */
    char *api_host; /* the only host that gets our credentials */
    int insecure;
    char *docker_config;
    farm_registry_token_send_fn send;
    void *send_arg;

    int creds_loaded;
    int creds_explicit; /* given by the caller (a build's submitter), not a docker config */
    farm_registry_creds_t creds;

    s_auth_mode_t mode;
    char realm[sizeof ((farm_auth_challenge_t *)0)->realm];
    char service[sizeof ((farm_auth_challenge_t *)0)->service];
    s_token_t tokens[S_TOKENS_MAX];
};

static int s_now_after(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static int s_url_host_is_api(const farm_registry_auth_t *self, const char *url)
{
    const char *p = strstr(url, "://");
    size_t n;
    if (!p)
        return 0;
    p += 3;
    n = strcspn(p, "/?#");
    return n == strlen(self->api_host) && strncasecmp(p, self->api_host, n) == 0;
}

static int s_load_creds(farm_registry_auth_t *self)
{
    int rc;
    if (self->creds_loaded)
        return 0;
    rc = farm_registry_credentials_lookup(&self->creds, self->docker_config, self->host);
    if (rc == FARM_ENOTFOUND) {
        farm_log_debug("registry %s: %s; going anonymous", self->host, farm_error_last());
        rc = 0;
    } else if (rc < 0) {
        return farm_error_wrap(rc, "registry %s: looking up credentials", self->host);
    }
    self->creds_loaded = 1;
    return rc;
}

static int s_have_creds(const farm_registry_auth_t *self)
{
    return self->creds.secret != NULL;
}

static char *s_basic_header(const farm_registry_auth_t *self)
{
    size_t ul = strlen(self->creds.username), sl = strlen(self->creds.secret);
    size_t plen = ul + 1 + sl;
    char *plain = malloc(plen + 1);
    char *hdr = malloc(sizeof "Authorization: Basic " + 4 * ((plen + 2) / 3) + 1);
    if (!plain || !hdr) {
        free(plain);
        free(hdr);
        return NULL;
    }
    memcpy(plain, self->creds.username, ul);
    plain[ul] = ':';
    memcpy(plain + ul + 1, self->creds.secret, sl);
    strcpy(hdr, "Authorization: Basic ");
    EVP_EncodeBlock((unsigned char *)hdr + strlen(hdr), (unsigned char *)plain, (int)plen);
    explicit_bzero(plain, plen);
    free(plain);
    return hdr;
}

static int s_scope_of(const farm_registry_auth_t *self, char *buf, size_t n, const char *repo,
                      int push)
{
    int w;
    if (!repo) {
        buf[0] = '\0';
        return 0;
    }
    w = snprintf(buf, n, "repository:%s:%s", repo, push ? "pull,push" : "pull");
    if (w < 0 || (size_t)w >= n)
        return farm_error_set(FARM_EINVALID, "registry %s: repository name \"%.100s...\" is too "
                              "long for a token scope", self->host, repo);
    return 0;
}

static s_token_t *s_token_find(farm_registry_auth_t *self, const char *scope)
{
    for (int i = 0; i < S_TOKENS_MAX; i++)
        if (self->tokens[i].token && strcmp(self->tokens[i].scope, scope) == 0)
            return &self->tokens[i];
    return NULL;
}

static void s_token_drop(s_token_t *t)
{
    s_wipe_free(t->token);
    memset(t, 0, sizeof *t);
}

/* GET realm?service=&scope= (with Basic credentials if we have them) or, for an identity
 * token, the OAuth2 refresh-token POST; caches the token for expires_in in *out. */
static int s_token_fetch(farm_registry_auth_t *self, s_token_t **out, const char *scope)
{
    farm_registry_token_req_t treq = {0};
    char *url = NULL, *esc_service = NULL, *esc_scope = NULL, *basic = NULL, *form = NULL;
    char *body = NULL;
    size_t body_len = 0;
    long status = 0;
    json_t *root = NULL, *tok, *exp;
    s_token_t *slot = NULL;
    long expires_in = 60;
    int rc = 0;

    if (strncmp(self->realm, "https://", 8) != 0 &&
        !(self->insecure && strncmp(self->realm, "http://", 7) == 0)) {
        return farm_error_set(FARM_EAUTH, "registry %s: token realm \"%.300s\" is not an https "
                              "URL; refusing to send credentials there", self->host, self->realm);
    }
    /* curl_easy_escape ignores its handle since 7.82 */
    esc_service = curl_easy_escape(NULL, self->service, 0);
    esc_scope = curl_easy_escape(NULL, scope, 0);
    if (!esc_service || !esc_scope) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    if (s_have_creds(self) && self->creds.identity_token) {
        /* docker's OAuth2 flow for identity tokens (distribution token spec, oauth.md) */
        char *esc_rt = curl_easy_escape(NULL, self->creds.secret, 0);
        int n;
        if (!esc_rt) {
            rc = farm_error_set(FARM_ERROR, "out of memory");
            goto done;
        }
        n = asprintf(&form, "grant_type=refresh_token&client_id=farm&service=%s&scope=%s&"
                     "refresh_token=%s", esc_service, esc_scope, esc_rt);
        explicit_bzero(esc_rt, strlen(esc_rt));
        curl_free(esc_rt);
        if (n < 0 || !(url = strdup(self->realm))) {
            form = n < 0 ? NULL : form;
            rc = farm_error_set(FARM_ERROR, "out of memory");
            goto done;
        }
        treq.method = "POST";
        treq.body = form;
        treq.body_len = strlen(form);
        treq.content_type = "application/x-www-form-urlencoded";
    } else {
        if (asprintf(&url, "%s%sservice=%s%s%s", self->realm,
                     strchr(self->realm, '?') ? "&" : "?", esc_service,
                     scope[0] ? "&scope=" : "", esc_scope) < 0) {
            url = NULL;
            rc = farm_error_set(FARM_ERROR, "out of memory");
            goto done;
        }
        treq.method = "GET";
        if (s_have_creds(self)) {
            basic = s_basic_header(self);
            if (!basic) {
                rc = farm_error_set(FARM_ERROR, "out of memory");
                goto done;
            }
            treq.authz = basic;
        }
    }
    treq.url = url;
    if ((rc = self->send(self->send_arg, &treq, &status, &body, &body_len)) < 0)
        goto done;
    if (status == 401 || status == 403) {
        rc = farm_error_set(FARM_EAUTH, "registry %s: the token server refused %s (HTTP %ld); "
                            "check the credentials for %s (docker login %s)",
                            self->host,
                            s_have_creds(self) ? "the configured credentials" : "anonymous access",
                            status, self->host, self->host);
        goto done;
    }
    root = json_loadb(body ? body : "", body_len, 0, NULL);
    tok = json_object_get(root, "token");
    if (!json_is_string(tok) || json_string_length(tok) == 0)
        tok = json_object_get(root, "access_token");
    if (!json_is_string(tok) || json_string_length(tok) == 0 ||
        strpbrk(json_string_value(tok), "\r\n")) {
        rc = farm_error_set(FARM_EAUTH, "registry %s: token server answered without a usable "
                            "token or access_token", self->host);
        goto done;
    }
    exp = json_object_get(root, "expires_in");
    if (json_is_integer(exp) && json_integer_value(exp) > 0 &&
        json_integer_value(exp) < 366L * 86400)
        expires_in = (long)json_integer_value(exp);
    if (expires_in < 60)
        expires_in = 60; /* the spec's minimum lifetime */

    slot = s_token_find(self, scope);
    for (int i = 0; !slot && i < S_TOKENS_MAX; i++)
        if (!self->tokens[i].token)
            slot = &self->tokens[i];
    if (!slot)
        slot = &self->tokens[0];
    s_token_drop(slot);
    slot->token = strdup(json_string_value(tok));
    if (!slot->token) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    /* scope came from s_scope_of, into a buffer of the same size */
    memcpy(slot->scope, scope, strlen(scope) + 1);
    clock_gettime(CLOCK_MONOTONIC, &slot->expires);
    /* renew a little early so a token does not lapse mid-request */
    slot->expires.tv_sec += expires_in > 30 ? expires_in - 10 : expires_in;
    farm_log_debug("registry %s: got a token for scope \"%s\" (expires in %ld s)", self->host,
                   scope, expires_in);
    *out = slot;
done:
    if (root) {
        json_t *t = json_object_get(root, "token"), *a = json_object_get(root, "access_token");
        if (json_is_string(t))
            explicit_bzero((char *)json_string_value(t), json_string_length(t));
        if (json_is_string(a))
            explicit_bzero((char *)json_string_value(a), json_string_length(a));
        json_decref(root);
    }
    if (body)
        explicit_bzero(body, body_len);
    free(body);
    s_wipe_free(basic);
    s_wipe_free(form);
    free(url);
    curl_free(esc_service);
    curl_free(esc_scope);
    return rc;
}

farm_registry_auth_t *farm_registry_auth_new(const char *host, const char *api_host,
                                             int insecure, const char *docker_config,
                                             farm_registry_token_send_fn send, void *send_arg)
{
    farm_registry_auth_t *self = calloc(1, sizeof *self);

    if (!self || !(self->host = strdup(host)) || !(self->api_host = strdup(api_host)) ||
        (docker_config && !(self->docker_config = strdup(docker_config)))) {
        farm_registry_auth_destroy(&self);
        farm_error_set(FARM_ERROR, "registry %s: out of memory", host);
        return NULL;
    }
    self->insecure = insecure;
    self->send = send;
    self->send_arg = send_arg;
    return self;
}

int farm_registry_auth_set_creds(farm_registry_auth_t *self, const farm_registry_creds_t *creds)
{
    farm_registry_creds_clear(&self->creds);
    self->creds_loaded = 1;
    self->creds_explicit = 1;
    if (!creds || !creds->secret || !creds->secret[0])
        return 0;
    return s_creds_set(&self->creds, creds->username,
                       creds->username ? strlen(creds->username) : 0, creds->secret,
                       strlen(creds->secret), creds->identity_token);
}

void farm_registry_auth_destroy(farm_registry_auth_t **self_p)
{
    farm_registry_auth_t *self;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    for (int i = 0; i < S_TOKENS_MAX; i++)
        s_token_drop(&self->tokens[i]);
    farm_registry_creds_clear(&self->creds);
    free(self->host);
    free(self->api_host);
    free(self->docker_config);
    free(self);
    *self_p = NULL;
}

int farm_registry_auth_header(farm_registry_auth_t *self, char **out, const char *url,
                              const char *repo, int push)
{
    char scope[S_SCOPE_MAX];
    s_token_t *t;
    int rc;

    *out = NULL;
    if (!s_url_host_is_api(self, url))
        return 0; /* never hand our credentials to another host */
    if (self->mode == S_AUTH_BASIC && s_have_creds(self)) {
        *out = s_basic_header(self);
        return *out ? 0 : farm_error_set(FARM_ERROR, "out of memory");
    }
    if (self->mode != S_AUTH_BEARER)
        return 0;
    if ((rc = s_scope_of(self, scope, sizeof scope, repo, push)) < 0)
        return rc;
    t = s_token_find(self, scope);
    if (t && s_now_after(&t->expires)) {
        s_token_drop(t);
        t = NULL;
    }
    if (!t && (rc = s_token_fetch(self, &t, scope)) < 0)
        return rc;
    if (asprintf(out, "Authorization: Bearer %s", t->token) < 0) {
        *out = NULL;
        return farm_error_set(FARM_ERROR, "out of memory");
    }
    return 0;
}

int farm_registry_auth_challenge(farm_registry_auth_t *self, const char *www_auth,
                                 const char *repo, int push)
{
    farm_auth_challenge_t ch;
    char scope[S_SCOPE_MAX];
    s_token_t *t;
    int rc;

    if ((rc = farm_registry_parse_challenge(&ch, www_auth)) < 0)
        return farm_error_wrap(FARM_EAUTH, "registry %s", self->host);
    if ((rc = s_load_creds(self)) < 0)
        return rc;
    if (strcasecmp(ch.scheme, "Basic") == 0) {
        if (!s_have_creds(self) && self->creds_explicit)
            return farm_error_set(FARM_EAUTH,
                                  "registry %s%s%s answered HTTP 401: it requires a login (Basic auth) and the build "
                                  "carries none for it: run docker login %s where farmctl "
                                  "runs (farmctl sends the submitter's credentials), or have "
                                  "farm.yaml grant the farm's own (registries.%s.credentials_for)",
                                  self->host, repo ? ": " : "", repo ? repo : "", self->host,
                                  self->host);
        if (!s_have_creds(self))
            return farm_error_set(FARM_EAUTH,
                                  "registry %s%s%s requires a login (Basic auth) and no "
                                  "credentials for it were found in the docker config; run: "
                                  "docker login %s",
                                  self->host, repo ? ": " : "", repo ? repo : "", self->host);
        if (self->creds.identity_token)
            return farm_error_set(FARM_EAUTH, "registry %s wants Basic auth but the docker "
                                  "config holds only an identity token for it; run: docker "
                                  "login %s", self->host, self->host);
        self->mode = S_AUTH_BASIC;
        return 0;
    }
    /* same sizes as the challenge's fields: copied whole, never cut */
    memcpy(self->realm, ch.realm, sizeof self->realm);
    memcpy(self->service, ch.service, sizeof self->service);
    self->mode = S_AUTH_BEARER;
    /* the token we sent (if any) was not good enough: fetch afresh */
    if ((rc = s_scope_of(self, scope, sizeof scope, repo, push)) < 0)
        return rc;
    if ((t = s_token_find(self, scope)))
        s_token_drop(t);
    return 0;
}
