/* SPDX-License-Identifier: Apache-2.0 */
/* OCI distribution client: one libcurl easy handle per farm_registry_t (connections are
 * reused), blocking calls, retries with backoff, Basic and Bearer-token auth. */
#include "common/registry.h"

#include "common/error.h"
#include "common/registry_auth.h"
#include "common/str.h"
#include "common/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_DEFAULT_RETRIES 5
#define S_DEFAULT_TIMEOUT 300
#define S_BACKOFF_BASE_MS 200
#define S_BACKOFF_CAP_MS 10000
#define S_RETRY_AFTER_CAP_S 60
#define S_ERRBODY_MAX (64u << 10) /* error bodies are kept up to this, then dropped */
#define S_TOKEN_BODY_MAX (1u << 20)
#define S_HDR_MAX 8192

static const char s_accept_manifests[] =
    "Accept: " FARM_MEDIA_OCI_INDEX ", " FARM_MEDIA_OCI_MANIFEST ", " FARM_MEDIA_DOCKER_LIST
    ", " FARM_MEDIA_DOCKER_MANIFEST;

struct farm_registry {
    char host[256];     /* as the caller named it: "docker.io", "localhost:5000" */
    char api_host[256]; /* what we connect to */
    char base[300];     /* "https://api_host" */
    int insecure;
    int max_retries;
    long timeout_s;
    CURL *curl;
    unsigned int seed;
    farm_registry_auth_t *auth;
    char *ca_pem; /* farm.yaml's ca: for this registry, or NULL: the system's roots */
    size_t ca_pem_len;
};

typedef struct {
    const char *method; /* GET HEAD PUT POST */
    const char *url;
    const char *repo;   /* auth scope; NULL for /v2/ and token requests */
    int push;           /* scope needs push */
    const char *accept; /* full header line or NULL */
    const char *content_type;
    const void *body; /* PUT/POST body in memory ... */
    size_t body_len;
    FILE *file; /* ... or from a file */
    uint64_t file_len;
    size_t max_body; /* bound for a 2xx body */
    int discard;     /* ignore any 2xx body */
    int no_retry;    /* upload PUT: the outer loop restarts from POST instead */
    int stream;      /* long transfer: stall timeout instead of a total timeout */
    int token_req;   /* to the token server: no registry auth, no challenge handling */
    const char *authz; /* token_req: fixed "Authorization: ..." line, or NULL */
} s_req_t;

typedef struct {
    long status;
    char *body;
    size_t len;
    size_t max;
    int discard;
    int toobig;
    char location[4096];
    int location_cut; /* Location did not fit: refuse it rather than follow a cut URL */
    char digest[FARM_DIGEST_STRLEN + 8];
    char content_type[256];
    uint64_t content_length;
    int has_length;
    char www_auth[S_HDR_MAX];
    long retry_after; /* seconds, -1 if none */
} s_resp_t;

/* ------------------------------------------------------------------------------ */
/* small helpers */

static void s_wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void s_resp_reset(s_resp_t *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
    r->retry_after = -1;
}

static void s_resp_free(s_resp_t *r)
{
    free(r->body);
    r->body = NULL;
}

/* URL for the request log: no userinfo, no query (upload state, tokens). */
static void s_loggable_url(char *buf, size_t n, const char *url)
{
    const char *p = strstr(url, "://");
    const char *host = p ? p + 3 : url;
    size_t hostpart = strcspn(host, "/?#");
    const char *at = memchr(host, '@', hostpart);
    const char *rest = at ? at + 1 : host;
    size_t restlen = strcspn(rest, "?#");

    farm_str_fmt_cut(buf, n, "%.*s%.*s%s", (int)(host - url), url, (int)restlen, rest,
                     rest[restlen] ? "?..." : "");
}

static void s_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int s_status_retryable(long s)
{
    return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

/* Repository names go into URL paths: hold them to the distribution grammar's alphabet. */
static int s_repo_valid(const char *repo)
{
    size_t n = repo ? strlen(repo) : 0;
    if (n == 0 || n > 255 || repo[0] == '/' || repo[n - 1] == '/')
        return 0;
    if (strspn(repo, "abcdefghijklmnopqrstuvwxyz0123456789._-/") != n)
        return 0;
    return strstr(repo, "..") == NULL && strstr(repo, "//") == NULL;
}

static int s_ref_valid(const char *ref)
{
    size_t n = ref ? strlen(ref) : 0;
    if (farm_digest_valid(ref))
        return 1;
    if (n == 0 || n > 128 || ref[0] == '.' || ref[0] == '-')
        return 0;
    return strspn(ref, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static int s_check_repo(const farm_registry_t *self, const char *repo)
{
    if (!s_repo_valid(repo))
        return farm_error_set(FARM_EINVALID, "registry %s: invalid repository name \"%.300s\"",
                              self->host, repo ? repo : "");
    return 0;
}

/* The registry's JSON error ({"errors":[{code,message,detail}]}) as one line. */
static void s_registry_error_text(char *buf, size_t n, const s_resp_t *resp)
{
    json_t *root, *errs, *e;
    size_t i, off = 0;

    buf[0] = '\0';
    if (!resp->body || resp->len == 0)
        return;
    root = json_loadb(resp->body, resp->len, 0, NULL);
    errs = json_object_get(root, "errors");
    if (json_is_array(errs)) {
        json_array_foreach(errs, i, e) {
            json_t *code = json_object_get(e, "code"), *msg = json_object_get(e, "message");
            json_t *detail = json_object_get(e, "detail");
            char dbuf[256] = "";
            if (i >= 3 || off >= n)
                break;
            if (json_is_string(detail)) {
                farm_str_fmt_cut(dbuf, sizeof dbuf, " (%s)", json_string_value(detail));
            } else if (detail && !json_is_null(detail)) {
                char *d = json_dumps(detail, JSON_COMPACT);
                if (d)
                    farm_str_fmt_cut(dbuf, sizeof dbuf, " (%s)", d);
                free(d);
            }
            if (farm_str_fmt_cut(buf + off, n - off, "%s%s: %s%s", i ? "; " : "",
                                 json_is_string(code) ? json_string_value(code) : "UNKNOWN",
                                 json_is_string(msg) ? json_string_value(msg) : "", dbuf))
                break;
            off += strlen(buf + off);
        }
    }
    json_decref(root);
}

/* 1 when the registry's JSON error names code ({"errors":[{"code":...}]}). */
static int s_error_has_code(const s_resp_t *resp, const char *code)
{
    json_t *root, *errs, *e;
    size_t i;
    int found = 0;

    if (!resp->body || resp->len == 0)
        return 0;
    root = json_loadb(resp->body, resp->len, 0, NULL);
    errs = json_object_get(root, "errors");
    if (json_is_array(errs))
        json_array_foreach(errs, i, e) {
            json_t *c = json_object_get(e, "code");
            found |= json_is_string(c) && strcmp(json_string_value(c), code) == 0;
        }
    json_decref(root);
    return found;
}

/* Sets the error for an unexpected HTTP status: "registry H: WHAT: HTTP 400: CODE: msg". */
static int s_http_error(farm_registry_t *self, const s_resp_t *resp, const char *what)
{
    char detail[1024];
    int code = FARM_ERROR;

    s_registry_error_text(detail, sizeof detail, resp);
    if (resp->status == 404)
        code = FARM_ENOTFOUND;
    else if (resp->status == 401 || resp->status == 403) {
        return farm_error_set(
            FARM_EAUTH,
            "registry %s: %s: access denied (HTTP %ld%s%s); check that the credentials for %s "
            "allow this repository (docker login %s)",
            self->host, what, resp->status, detail[0] ? ": " : "", detail, self->host,
            self->host);
    } else if (s_status_retryable(resp->status))
        code = FARM_ERETRY;
    return farm_error_set(code, "registry %s: %s: HTTP %ld%s%s", self->host, what,
                          resp->status, detail[0] ? ": " : "", detail);
}

/* ------------------------------------------------------------------------------ */
/* libcurl callbacks */

typedef struct {
    const s_req_t *req;
    size_t off;
} s_upload_t;

static size_t s_read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    s_upload_t *u = arg;
    size_t want = size * nitems;
    if (u->req->file) {
        size_t n = fread(buf, 1, want, u->req->file);
        if (n == 0 && ferror(u->req->file))
            return CURL_READFUNC_ABORT;
        return n;
    }
    if (u->off >= u->req->body_len)
        return 0;
    if (want > u->req->body_len - u->off)
        want = u->req->body_len - u->off;
    memcpy(buf, (const char *)u->req->body + u->off, want);
    u->off += want;
    return want;
}

static int s_seek_cb(void *arg, curl_off_t offset, int origin)
{
    s_upload_t *u = arg;
    if (origin != SEEK_SET || offset < 0)
        return CURL_SEEKFUNC_CANTSEEK;
    if (u->req->file)
        return fseeko(u->req->file, (off_t)offset, SEEK_SET) == 0 ? CURL_SEEKFUNC_OK
                                                                  : CURL_SEEKFUNC_FAIL;
    if ((size_t)offset > u->req->body_len)
        return CURL_SEEKFUNC_FAIL;
    u->off = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static size_t s_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    s_resp_t *r = arg;
    size_t n = size * nmemb;
    int ok = r->status >= 200 && r->status < 300;
    size_t cap = ok ? r->max : S_ERRBODY_MAX;

    if (ok && r->discard)
        return n;
    if (r->toobig)
        return ok ? 0 : n;
    if (n > cap || r->len > cap - n) {
        r->toobig = 1;
        return ok ? 0 : n; /* abort a 2xx body over the bound; an error body is cut */
    }
    {
        char *nb = realloc(r->body, r->len + n + 1);
        if (!nb)
            return 0;
        r->body = nb;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

/* 1 if the value was cut to fit */
static int s_copy_header_value(char *dst, size_t cap, const char *v, size_t n)
{
    int cut = n >= cap;
    if (cut)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
    return cut;
}

static size_t s_header_cb(char *data, size_t size, size_t nitems, void *arg)
{
    s_resp_t *r = arg;
    size_t n = size * nitems, nlen;
    const char *colon, *v;

    while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
        n--;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* a new response (after a redirect or 100 Continue): forget earlier headers */
        char *body = r->body;
        size_t max = r->max;
        int discard = r->discard;
        const char *sp = memchr(data, ' ', n);
        memset(r, 0, sizeof *r);
        r->body = body;
        r->max = max;
        r->discard = discard;
        r->retry_after = -1;
        if (body) {
            r->body[0] = '\0';
        }
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        return size * nitems;
    }
    colon = memchr(data, ':', n);
    if (!colon)
        return size * nitems;
    nlen = (size_t)(colon - data);
    v = colon + 1;
    while (v < data + n && (*v == ' ' || *v == '\t'))
        v++;
    n = (size_t)(data + n - v);
#define S_IS(name) (nlen == sizeof(name) - 1 && strncasecmp(data, name, nlen) == 0)
    if (S_IS("Location"))
        r->location_cut = s_copy_header_value(r->location, sizeof r->location, v, n);
    else if (S_IS("Docker-Content-Digest"))
        s_copy_header_value(r->digest, sizeof r->digest, v, n);
    else if (S_IS("Content-Type"))
        s_copy_header_value(r->content_type, sizeof r->content_type, v, n);
    else if (S_IS("Content-Length")) {
        char tmp[32], *end;
        s_copy_header_value(tmp, sizeof tmp, v, n);
        errno = 0;
        r->content_length = strtoull(tmp, &end, 10);
        /* a garbled length counts as none (HEAD manifest then GETs the bytes) */
        r->has_length = tmp[0] >= '0' && tmp[0] <= '9' && *end == '\0' && errno == 0;
    } else if (S_IS("Retry-After")) {
        char tmp[64];
        s_copy_header_value(tmp, sizeof tmp, v, n);
        if (tmp[0] >= '0' && tmp[0] <= '9') {
            r->retry_after = strtol(tmp, NULL, 10);
        } else {
            time_t when = curl_getdate(tmp, NULL);
            if (when > 0)
                r->retry_after = when > time(NULL) ? (long)(when - time(NULL)) : 0;
        }
    } else if (S_IS("WWW-Authenticate")) {
        /* several challenge headers are the same as one comma-joined list */
        size_t cur = strlen(r->www_auth);
        if (cur + n + 3 < sizeof r->www_auth) {
            if (cur)
                memcpy(r->www_auth + cur, ", ", 2), cur += 2;
            memcpy(r->www_auth + cur, v, n);
            r->www_auth[cur + n] = '\0';
        }
    }
#undef S_IS
    return size * nitems;
}

/* ------------------------------------------------------------------------------ */
/* one transfer */

/* 1 when OpenSSL's error says the server answered the TLS handshake in plain HTTP: the
 * first bytes ("HTTP/1.1 400") read as a record of an unknown version, or of a length no
 * TLS record has, depending on the version. */
static int s_plain_http_answer(const char *errbuf)
{
    return strstr(errbuf, "wrong version number") || strstr(errbuf, "packet length too long");
}

/* One HTTP exchange. 0 with resp->status set; FARM_ERETRY for a connection-level failure
 * (worth another try); other < 0 for errors that will not get better. */
static int s_transfer(farm_registry_t *self, const s_req_t *req, s_resp_t *resp,
                      const char *authz)
{
    CURL *c = self->curl;
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE] = "", logurl[1024], ua[64], ctype[300];
    s_upload_t up = {.req = req, .off = 0};
    CURLcode cc;
    int rc = 0;

    s_resp_reset(resp);
    resp->max = req->max_body;
    resp->discard = req->discard;
    curl_easy_reset(c);
    s_loggable_url(logurl, sizeof logurl, req->url);

    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, self->insecure ? "http,https" : "https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, self->insecure ? "http,https" : "https");
    snprintf(ua, sizeof ua, "farm/%s", FARM_VERSION);
    curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    if (self->ca_pem) {
        struct curl_blob ca = {.data = self->ca_pem, .len = self->ca_pem_len,
                               .flags = CURL_BLOB_NOCOPY};
        curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
    }
    if (req->stream) {
        /* a big blob may take longer than any fixed total: fail on a stall instead */
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, self->timeout_s);
    } else {
        curl_easy_setopt(c, CURLOPT_TIMEOUT, self->timeout_s);
    }
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, s_header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    /* blob GETs are commonly redirected to storage; curl drops our Authorization header
     * when the redirect leaves the host */
    if (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    }
    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, s_read_cb);
        curl_easy_setopt(c, CURLOPT_READDATA, &up);
        curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, s_seek_cb);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, &up);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)(req->file ? req->file_len : req->body_len));
        if (req->file && fseeko(req->file, 0, SEEK_SET) != 0)
            return farm_error_set(FARM_EIO, "rewinding upload file: %s", strerror(errno));
    } else if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
    }

    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
    if (req->accept)
        hdrs = curl_slist_append(hdrs, req->accept);
    if (req->content_type) {
        if ((rc = farm_str_fmt(ctype, sizeof ctype, "the Content-Type header", "Content-Type: %s",
                               req->content_type)) < 0)
            goto done;
        hdrs = curl_slist_append(hdrs, ctype);
    }
    if (authz)
        hdrs = curl_slist_append(hdrs, authz);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);

    cc = curl_easy_perform(c);
    if (cc == CURLE_OK || (cc == CURLE_WRITE_ERROR && resp->toobig)) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
        farm_log_debug("registry %s %s -> %ld", req->method, logurl, resp->status);
        if (resp->toobig && resp->status >= 200 && resp->status < 300)
            rc = farm_error_set(FARM_ETOOBIG, "registry %s: %s %s: response is larger than %zu "
                                "bytes", self->host, req->method, logurl, req->max_body);
        goto done;
    }
    farm_log_debug("registry %s %s -> %s", req->method, logurl, curl_easy_strerror(cc));
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        rc = FARM_ERETRY;
        break;
    default:
        rc = FARM_ERROR;
        break;
    }
    /* OpenSSL's words for a plain HTTP answer to its ClientHello: asking again gets the
     * same answer, so it fails at once, saying what to do */
    if (cc == CURLE_SSL_CONNECT_ERROR && s_plain_http_answer(errbuf))
        rc = farm_error_set(FARM_ERROR, "registry %s: %s %s: %s (it answers plain HTTP, not "
                            "TLS: if that is meant, list it in farm.yaml as registries: "
                            "\"%s\": {insecure: true})", self->host, req->method, logurl,
                            errbuf, self->host);
    else
        rc = farm_error_set(rc, "registry %s: %s %s: %s", self->host, req->method, logurl,
                            errbuf[0] ? errbuf : curl_easy_strerror(cc));
done:
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    for (struct curl_slist *h = hdrs; h; h = h->next) /* the Authorization line is secret */
        explicit_bzero(h->data, strlen(h->data));
    curl_slist_free_all(hdrs);
    return rc;
}

/* ------------------------------------------------------------------------------ */
/* auth (the state machine is in registry_auth.c; this is its way to the token server) */

static int s_send(farm_registry_t *self, const s_req_t *req, s_resp_t *resp);

static int s_token_send(void *arg, const farm_registry_token_req_t *treq, long *out_status,
                        char **out_body, size_t *out_len)
{
    farm_registry_t *self = arg;
    s_req_t req = {.token_req = 1,
                   .method = treq->method,
                   .url = treq->url,
                   .authz = treq->authz,
                   .content_type = treq->content_type,
                   .body = treq->body,
                   .body_len = treq->body_len,
                   .max_body = S_TOKEN_BODY_MAX};
    s_resp_t resp = {0};
    int rc;

    *out_status = 0;
    *out_body = NULL;
    *out_len = 0;
    if ((rc = s_send(self, &req, &resp)) < 0) {
        rc = farm_error_wrap(rc, "registry %s: fetching a token", self->host);
        goto done;
    }
    *out_status = resp.status;
    if (resp.status != 200 && resp.status != 401 && resp.status != 403) {
        rc = s_http_error(self, &resp, "fetching a token");
        goto done;
    }
    *out_body = resp.body;
    *out_len = resp.len;
    resp.body = NULL;
done:
    if (resp.body)
        explicit_bzero(resp.body, resp.len);
    s_resp_free(&resp);
    return rc;
}

/* ------------------------------------------------------------------------------ */
static unsigned long s_retries; /* farm_registry_retries_total */

unsigned long farm_registry_retries_total(void)
{
    return s_retries;
}

/* request with retries and auth */

static long s_backoff_ms(farm_registry_t *self, int attempt, long retry_after)
{
    long d = S_BACKOFF_BASE_MS;
    for (int i = 0; i < attempt && d < S_BACKOFF_CAP_MS; i++)
        d *= 2;
    if (d > S_BACKOFF_CAP_MS)
        d = S_BACKOFF_CAP_MS;
    d = d / 2 + (long)(rand_r(&self->seed) % (unsigned)(d / 2 + 1)); /* equal jitter */
    if (retry_after >= 0) {
        long ra = (retry_after > S_RETRY_AFTER_CAP_S ? S_RETRY_AFTER_CAP_S : retry_after) * 1000;
        if (ra > d)
            d = ra;
    }
    return d;
}

static int s_send(farm_registry_t *self, const s_req_t *req, s_resp_t *resp)
{
    int attempt = 0, reauthed = 0, rc;

    for (;;) {
        char *authz = NULL;
        if (!req->token_req &&
            (rc = farm_registry_auth_header(self->auth, &authz, req->url, req->repo,
                                            req->push)) < 0)
            return rc;
        rc = s_transfer(self, req, resp, req->token_req ? req->authz : authz);
        s_wipe_free(authz);
        if (rc == FARM_ERETRY) {
            if (req->no_retry || attempt >= self->max_retries)
                return rc;
            s_retries++;
            farm_log_debug("registry %s: retrying (%d/%d) after: %s", self->host, attempt + 1,
                           self->max_retries, farm_error_last());
            s_sleep_ms(s_backoff_ms(self, attempt++, -1));
            continue;
        }
        if (rc < 0)
            return rc;
        if (resp->status == 401 && !req->token_req && !reauthed) {
            reauthed = 1;
            if (!resp->www_auth[0])
                return 0; /* nothing to learn; the 401 stands */
            if ((rc = farm_registry_auth_challenge(self->auth, resp->www_auth, req->repo,
                                                   req->push)) < 0)
                return rc;
            continue;
        }
        if (s_status_retryable(resp->status) && !req->no_retry &&
            attempt < self->max_retries) {
            long ms = s_backoff_ms(self, attempt++, resp->retry_after);
            s_retries++;
            farm_log_debug("registry %s: HTTP %ld, retrying (%d/%d) in %ld ms", self->host,
                           resp->status, attempt, self->max_retries, ms);
            s_sleep_ms(ms);
            continue;
        }
        return 0;
    }
}

/* ------------------------------------------------------------------------------ */
/* public API */

farm_registry_t *farm_registry_new(const char *host, const farm_registry_opts_t *opts)
{
    farm_registry_t *self;

    if (!host || !*host || strlen(host) >= sizeof self->host ||
        strpbrk(host, "/?#@ \t\r\n")) {
        farm_error_set(FARM_EINVALID, "invalid registry host \"%.200s\"", host ? host : "");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        farm_error_set(FARM_ERROR, "libcurl initialisation failed");
        return NULL;
    }
    self = calloc(1, sizeof *self);
    if (!self) {
        curl_global_cleanup();
        farm_error_set(FARM_ERROR, "out of memory");
        return NULL;
    }
    /* host is shorter than host[] (checked above), so it and api_host fit, and base[]
     * holds "https://" + api_host */
    snprintf(self->host, sizeof self->host, "%s", host);
    snprintf(self->api_host, sizeof self->api_host, "%s",
             strcmp(host, "docker.io") == 0 || strcmp(host, "index.docker.io") == 0
                 ? "registry-1.docker.io"
                 : host);
    self->insecure = opts ? opts->insecure : 0;
    snprintf(self->base, sizeof self->base, "%s://%s", self->insecure ? "http" : "https",
             self->api_host);
    self->max_retries = opts && opts->max_retries > 0 ? opts->max_retries : S_DEFAULT_RETRIES;
    self->timeout_s = opts && opts->timeout_s > 0 ? opts->timeout_s : S_DEFAULT_TIMEOUT;
    self->seed = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)self;
    self->auth = farm_registry_auth_new(self->host, self->api_host, self->insecure,
                                        opts ? opts->docker_config : NULL, s_token_send, self);
    self->curl = curl_easy_init();
    if (!self->auth || !self->curl)
        goto fail;
    if (opts && opts->explicit_creds && farm_registry_auth_set_creds(self->auth, opts->creds) < 0)
        goto fail;
    if (opts && opts->ca_pem && opts->ca_pem_len) {
        if (!(self->ca_pem = malloc(opts->ca_pem_len)))
            goto fail;
        memcpy(self->ca_pem, opts->ca_pem, opts->ca_pem_len);
        self->ca_pem_len = opts->ca_pem_len;
    }
    return self;
fail:
    farm_error_set(FARM_ERROR, "registry %s: out of memory", host);
    farm_registry_destroy(&self);
    return NULL;
}

void farm_registry_destroy(farm_registry_t **self_p)
{
    farm_registry_t *self;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    if (self->curl)
        curl_easy_cleanup(self->curl);
    farm_registry_auth_destroy(&self->auth);
    free(self->ca_pem);
    free(self);
    curl_global_cleanup();
    *self_p = NULL;
}

int farm_registry_ping(farm_registry_t *self)
{
    char url[sizeof self->base + 8]; /* base + "/v2/" */
    s_req_t req = {.method = "GET", .url = url, .max_body = 64 << 10};
    s_resp_t resp = {0};
    int rc;

    snprintf(url, sizeof url, "%s/v2/", self->base);
    if ((rc = s_send(self, &req, &resp)) < 0)
        goto done;
    if (resp.status != 200)
        rc = s_http_error(self, &resp, "GET /v2/");
done:
    s_resp_free(&resp);
    return rc;
}

/* What one request is about: its URL and "METHOD blob repo@sha256:..." or
 * "METHOD manifest repo:tag" for messages; name is that label without the method. */
typedef struct {
    char url[1024];
    char what[400];
    const char *name;
} s_target_t;

static int s_target_set(farm_registry_t *self, s_target_t *t, const char *method,
                        const char *repo, const char *kind, const char *ref)
{
    int digest = farm_digest_valid(ref), rc;
    if ((rc = farm_str_fmt(t->url, sizeof t->url, "the request URL", "%s/v2/%s/%ss/%s",
                           self->base, repo, kind, ref)) < 0 ||
        (rc = farm_str_fmt(t->what, sizeof t->what, "the request label", "%s %s %s%s%s", method,
                           kind, repo, digest ? "@" : ":", ref)) < 0)
        return farm_error_wrap(rc, "registry %s: %s", self->host, repo);
    t->name = t->what + strlen(method) + 1;
    return 0;
}

static int s_check_blob(farm_registry_t *self, const char *repo, const char *digest)
{
    int rc;
    if ((rc = s_check_repo(self, repo)) < 0)
        return rc;
    if (!farm_digest_valid(digest))
        return farm_error_set(FARM_EINVALID, "registry %s: %s: invalid blob digest \"%.100s\"",
                              self->host, repo, digest ? digest : "");
    return 0;
}

static int s_blob_target(farm_registry_t *self, s_target_t *t, const char *method,
                         const char *repo, const char *digest)
{
    int rc = s_check_blob(self, repo, digest);
    if (rc == 0)
        rc = s_target_set(self, t, method, repo, "blob", digest);
    return rc;
}

static int s_manifest_target(farm_registry_t *self, s_target_t *t, const char *method,
                             const char *repo, const char *ref)
{
    int rc;
    if ((rc = s_check_repo(self, repo)) < 0)
        return rc;
    if (!s_ref_valid(ref))
        return farm_error_set(FARM_EINVALID, "registry %s: %s: invalid tag or digest \"%.200s\"",
                              self->host, repo, ref ? ref : "");
    return s_target_set(self, t, method, repo, "manifest", ref);
}

/* 0 for a 200, FARM_ENOTFOUND for a 404, else the registry's error. */
static int s_expect_200(farm_registry_t *self, const s_resp_t *resp, const s_target_t *t)
{
    if (resp->status == 200)
        return 0;
    if (resp->status == 404)
        return farm_error_set(FARM_ENOTFOUND, "registry %s: %s not found", self->host, t->name);
    return s_http_error(self, resp, t->what);
}

static int s_blob_head(farm_registry_t *self, uint64_t *out_size, const char *repo,
                       const char *digest, int push)
{
    s_target_t t;
    s_req_t req = {.method = "HEAD", .url = t.url, .repo = repo, .push = push};
    s_resp_t resp = {0};
    int rc;

    if ((rc = s_blob_target(self, &t, "HEAD", repo, digest)) < 0)
        return rc;
    if ((rc = s_send(self, &req, &resp)) < 0 || (rc = s_expect_200(self, &resp, &t)) < 0)
        goto done;
    if (out_size)
        *out_size = resp.content_length;
done:
    s_resp_free(&resp);
    return rc;
}

int farm_registry_blob_exists(farm_registry_t *self, uint64_t *out_size, const char *repo,
                              const char *digest)
{
    return s_blob_head(self, out_size, repo, digest, 0);
}

/* Location of an upload session made absolute, with digest=<d> appended to its query. */
static int s_upload_url(farm_registry_t *self, char **out, const char *post_url,
                        const char *location, const char *digest)
{
    CURLU *u = curl_url();
    char q[100], *scheme = NULL;
    int rc = 0;

    *out = NULL;
    if (!u)
        return farm_error_set(FARM_ERROR, "out of memory");
    /* Location is opaque and may be relative: resolve it against the POST URL */
    if (curl_url_set(u, CURLUPART_URL, post_url, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_URL, location, 0) != CURLUE_OK) {
        rc = farm_error_set(FARM_ERROR, "registry %s: upload Location \"%.300s\" is not a URL",
                            self->host, location);
        goto done;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "https") != 0 && !(self->insecure && strcmp(scheme, "http") == 0))) {
        rc = farm_error_set(FARM_ERROR, "registry %s: upload Location \"%.300s\" is not https",
                            self->host, location);
        goto done;
    }
    /* digest was checked by farm_digest_valid: fixed length */
    snprintf(q, sizeof q, "digest=%s", digest);
    if (curl_url_set(u, CURLUPART_QUERY, q, CURLU_APPENDQUERY) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, out, 0) != CURLUE_OK) {
        rc = farm_error_set(FARM_ERROR, "registry %s: cannot build the upload URL", self->host);
        goto done;
    }
done:
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

/* One upload: POST a session, PUT the whole file. FARM_ERETRY if worth restarting. */
static int s_blob_upload_once(farm_registry_t *self, long *out_retry_after, const char *repo,
                              const char *digest, FILE *f, uint64_t size)
{
    char post_url[1024], what[400];
    char *put_url = NULL;
    /* no retries inside: a failure anywhere restarts from a fresh POST (the caller) */
    s_req_t post = {.method = "POST", .url = post_url, .repo = repo, .push = 1,
                    .no_retry = 1, .discard = 1};
    s_req_t put = {.method = "PUT", .repo = repo, .push = 1,
                   .content_type = "application/octet-stream", .file = f, .file_len = size,
                   .no_retry = 1, .stream = 1, .max_body = 64 << 10};
    s_resp_t resp = {0};
    int rc;

    *out_retry_after = -1;
    if ((rc = farm_str_fmt(post_url, sizeof post_url, "the upload URL", "%s/v2/%s/blobs/uploads/",
                           self->base, repo)) < 0 ||
        (rc = farm_str_fmt(what, sizeof what, "the request label",
                           "starting the upload of blob %s to %s", digest, repo)) < 0)
        return farm_error_wrap(rc, "registry %s: %s", self->host, repo);
    if ((rc = s_send(self, &post, &resp)) < 0)
        goto done;
    if (resp.status != 202) {
        *out_retry_after = resp.retry_after;
        rc = s_http_error(self, &resp, what);
        goto done;
    }
    if (!resp.location[0]) {
        rc = farm_error_set(FARM_ERETRY, "registry %s: %s: 202 without a Location", self->host,
                            what);
        goto done;
    }
    if (resp.location_cut) {
        rc = farm_error_set(FARM_ERROR, "registry %s: %s: upload Location is longer than %zu "
                            "bytes", self->host, what, sizeof resp.location - 1);
        goto done;
    }
    if ((rc = s_upload_url(self, &put_url, post_url, resp.location, digest)) < 0)
        goto done;
    put.url = put_url;
    if ((rc = farm_str_fmt(what, sizeof what, "the request label",
                           "uploading blob %s (%llu bytes) to %s", digest,
                           (unsigned long long)size, repo)) < 0)
        goto done;
    if ((rc = s_send(self, &put, &resp)) < 0)
        goto done;
    if (resp.status != 201) {
        *out_retry_after = resp.retry_after;
        rc = s_http_error(self, &resp, what);
        goto done;
    }
    if (resp.digest[0] && strcmp(resp.digest, digest) != 0)
        rc = farm_error_set(FARM_ERROR, "registry %s: %s: registry stored it as %s", self->host,
                            what, resp.digest);
done:
    curl_free(put_url);
    s_resp_free(&resp);
    return rc;
}

int farm_registry_blob_push_file(farm_registry_t *self, int *out_skipped, const char *repo,
                                 const char *digest, const char *path)
{
    char actual[FARM_DIGEST_STRLEN];
    uint64_t size = 0;
    struct stat st;
    FILE *f = NULL;
    int rc, attempt, fd;

    if (out_skipped)
        *out_skipped = 0;
    if ((rc = s_check_blob(self, repo, digest)) < 0)
        return rc;
    /* hash the open file so what we check is what we send */
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return farm_error_set(errno == ENOENT ? FARM_ENOTFOUND : FARM_EIO,
                              "blob %s: cannot open %s: %s", digest, path, strerror(errno));
    if (!(f = fdopen(fd, "rb"))) {
        rc = farm_error_set(FARM_ERROR, "blob %s: %s: %s", digest, path, strerror(errno));
        close(fd);
        goto done;
    }
    if ((rc = farm_digest_fd(actual, &size, fd, path)) < 0)
        goto done;
    if (strcmp(actual, digest) != 0) {
        rc = farm_error_set(FARM_EINVALID, "blob %s: %s has digest %s; refusing to upload it",
                            digest, path, actual);
        goto done;
    }
    if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size) {
        rc = farm_error_set(FARM_EIO, "blob %s: %s changed while it was being hashed", digest,
                            path);
        goto done;
    }
    rc = s_blob_head(self, NULL, repo, digest, 1);
    if (rc == 0) {
        farm_log_debug("registry %s: blob %s already in %s, skipped", self->host, digest, repo);
        if (out_skipped)
            *out_skipped = 1;
        goto done;
    }
    if (rc != FARM_ENOTFOUND)
        goto done;
    for (attempt = 0;; attempt++) {
        long retry_after = -1;
        rc = s_blob_upload_once(self, &retry_after, repo, digest, f, size);
        if (rc != FARM_ERETRY || attempt >= self->max_retries)
            break;
        farm_log_debug("registry %s: upload of %s failed (%s); restarting (%d/%d)", self->host,
                       digest, farm_error_last(), attempt + 1, self->max_retries);
        s_sleep_ms(s_backoff_ms(self, attempt, retry_after));
    }
done:
    if (f)
        fclose(f);
    return rc;
}

int farm_registry_blob_push_mem(farm_registry_t *self, int *out_skipped, const char *repo,
                                const char *digest, const void *data, size_t len)
{
    char path[64];
    int fd = memfd_create("farm-blob", MFD_CLOEXEC), rc;

    if (fd < 0)
        return farm_error_set(FARM_EIO, "memfd_create: %s", strerror(errno));
    if (write(fd, data, len) != (ssize_t)len) {
        close(fd);
        return farm_error_set(FARM_EIO, "writing the blob %s to a memfd: %s", digest,
                              strerror(errno));
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    rc = farm_registry_blob_push_file(self, out_skipped, repo, digest, path);
    close(fd);
    return rc;
}

int farm_registry_blob_mount(farm_registry_t *self, int *out_mounted, const char *repo,
                            const char *digest, const char *from)
{
    char url[1024], what[600];
    s_req_t post = {.method = "POST", .url = url, .repo = repo, .push = 1, .discard = 1};
    s_resp_t resp = {0};
    int rc;

    *out_mounted = 0;
    if ((rc = s_check_blob(self, repo, digest)) < 0 || (rc = s_check_repo(self, from)) < 0)
        return rc;
    if ((rc = farm_str_fmt(url, sizeof url, "the mount URL", "%s/v2/%s/blobs/uploads/?mount=%s"
                           "&from=%s", self->base, repo, digest, from)) < 0 ||
        (rc = farm_str_fmt(what, sizeof what, "the request label",
                           "mounting blob %s from %s into %s", digest, from, repo)) < 0)
        return farm_error_wrap(rc, "registry %s: %s", self->host, repo);
    if ((rc = s_send(self, &post, &resp)) < 0)
        goto done;
    /* 201: mounted; 202: the registry would not (another login's repository, or it does
     * not mount) and opened an upload instead, which it expires by itself */
    if (resp.status == 201)
        *out_mounted = 1;
    else if (resp.status != 202)
        rc = s_http_error(self, &resp, what);
done:
    s_resp_free(&resp);
    return rc;
}

int farm_registry_blob_get(farm_registry_t *self, char **out_body, size_t *out_len,
                           const char *repo, const char *digest, size_t max)
{
    char actual[FARM_DIGEST_STRLEN];
    s_target_t t;
    s_req_t req = {.method = "GET", .url = t.url, .repo = repo, .max_body = max, .stream = 1};
    s_resp_t resp = {0};
    int rc;

    *out_body = NULL;
    if (out_len)
        *out_len = 0;
    if ((rc = s_blob_target(self, &t, "GET", repo, digest)) < 0)
        return rc;
    if ((rc = s_send(self, &req, &resp)) < 0 || (rc = s_expect_200(self, &resp, &t)) < 0)
        goto done;
    farm_digest_buffer(actual, resp.body, resp.len);
    if (strcmp(actual, digest) != 0) {
        rc = farm_error_set(FARM_ERROR, "registry %s: %s: content has digest %s", self->host,
                            t.what, actual);
        goto done;
    }
    if (!resp.body && !(resp.body = calloc(1, 1))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    *out_body = resp.body;
    resp.body = NULL;
    if (out_len)
        *out_len = resp.len;
done:
    s_resp_free(&resp);
    return rc;
}

int farm_registry_manifest_put(farm_registry_t *self, char out_digest[FARM_DIGEST_STRLEN],
                               const char *repo, const char *ref, const char *media_type,
                               const void *body, size_t len)
{
    char digest[FARM_DIGEST_STRLEN];
    s_target_t t;
    s_req_t req = {.method = "PUT", .url = t.url, .repo = repo, .push = 1,
                   .content_type = media_type, .body = body, .body_len = len,
                   .max_body = 64 << 10};
    s_resp_t resp = {0};
    int rc;

    if ((rc = s_manifest_target(self, &t, "PUT", repo, ref)) < 0)
        return rc;
    if (!media_type || !*media_type || strpbrk(media_type, "\r\n") || strlen(media_type) > 255)
        return farm_error_set(FARM_EINVALID, "registry %s: %s: invalid manifest media type",
                              self->host, t.what);
    if (len > FARM_MANIFEST_MAX)
        return farm_error_set(FARM_ETOOBIG, "registry %s: %s: manifest is %zu bytes, over "
                              "the %u byte limit", self->host, t.what, len, FARM_MANIFEST_MAX);
    farm_digest_buffer(digest, body, len);
    if (farm_digest_valid(ref) && strcmp(ref, digest) != 0)
        return farm_error_set(FARM_EINVALID, "registry %s: %s: the manifest bytes have "
                              "digest %s", self->host, t.what, digest);
    if ((rc = s_send(self, &req, &resp)) < 0)
        goto done;
    if (resp.status != 201 && resp.status != 200) {
        rc = s_http_error(self, &resp, t.what);
        /* a blob it names is not (or not yet) known there: the caller may push it again */
        if (resp.status == 400 && s_error_has_code(&resp, "MANIFEST_BLOB_UNKNOWN"))
            rc = FARM_ENOTFOUND;
        goto done;
    }
    if (resp.digest[0] && strcmp(resp.digest, digest) != 0) {
        rc = farm_error_set(FARM_ERROR, "registry %s: %s: registry reports digest %s but the "
                            "bytes sent have %s", self->host, t.what, resp.digest, digest);
        goto done;
    }
    if (out_digest)
        memcpy(out_digest, digest, FARM_DIGEST_STRLEN);
done:
    s_resp_free(&resp);
    return rc;
}

/* Content-Type without parameters ("; charset=..."); a media type that does not fit
 * the caller's buffer is an error, not a shorter (other) media type. */
static int s_media_type_out(farm_registry_t *self, char *out, size_t n, const char *ct)
{
    size_t l = strcspn(ct, "; \t");
    if (!out)
        return 0;
    if (farm_str_fmt(out, n, "the media type", "%.*s", (int)l, ct) < 0)
        return farm_error_wrap(FARM_ETOOBIG, "registry %s", self->host);
    return 0;
}

int farm_registry_manifest_get(farm_registry_t *self, char **out_body, size_t *out_len,
                               char *out_media_type, size_t mt_len, const char *repo,
                               const char *ref)
{
    char digest[FARM_DIGEST_STRLEN];
    s_target_t t;
    s_req_t req = {.method = "GET", .url = t.url, .repo = repo, .accept = s_accept_manifests,
                   .max_body = FARM_MANIFEST_MAX};
    s_resp_t resp = {0};
    int rc;

    *out_body = NULL;
    if (out_len)
        *out_len = 0;
    if ((rc = s_manifest_target(self, &t, "GET", repo, ref)) < 0)
        return rc;
    if ((rc = s_send(self, &req, &resp)) < 0) {
        if (rc == FARM_ETOOBIG)
            rc = farm_error_set(FARM_ETOOBIG, "registry %s: %s: manifest is over %u bytes",
                                self->host, t.what, FARM_MANIFEST_MAX);
        goto done;
    }
    if ((rc = s_expect_200(self, &resp, &t)) < 0)
        goto done;
    if (!resp.body && !(resp.body = calloc(1, 1))) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    farm_digest_buffer(digest, resp.body, resp.len);
    if (farm_digest_valid(ref) && strcmp(ref, digest) != 0) {
        rc = farm_error_set(FARM_ERROR, "registry %s: %s: content has digest %s", self->host,
                            t.what, digest);
        goto done;
    }
    if (resp.digest[0] && strcmp(resp.digest, digest) != 0) {
        rc = farm_error_set(FARM_ERROR, "registry %s: %s: Docker-Content-Digest %s does not "
                            "match the content (%s)", self->host, t.what, resp.digest, digest);
        goto done;
    }
    if ((rc = s_media_type_out(self, out_media_type, mt_len, resp.content_type)) < 0)
        goto done;
    *out_body = resp.body;
    resp.body = NULL;
    if (out_len)
        *out_len = resp.len;
done:
    s_resp_free(&resp);
    return rc;
}

int farm_registry_manifest_head(farm_registry_t *self, char out_digest[FARM_DIGEST_STRLEN],
                                uint64_t *out_size, char *out_media_type, size_t mt_len,
                                const char *repo, const char *ref)
{
    s_target_t t;
    s_req_t req = {.method = "HEAD", .url = t.url, .repo = repo, .accept = s_accept_manifests};
    s_resp_t resp = {0};
    char *body = NULL;
    size_t len = 0;
    int rc;

    if ((rc = s_manifest_target(self, &t, "HEAD", repo, ref)) < 0)
        return rc;
    if ((rc = s_send(self, &req, &resp)) < 0 || (rc = s_expect_200(self, &resp, &t)) < 0)
        goto done;
    if (resp.digest[0] && !farm_digest_valid(resp.digest)) {
        rc = farm_error_set(FARM_ERROR, "registry %s: %s: invalid Docker-Content-Digest "
                            "\"%.100s\"", self->host, t.what, resp.digest);
        goto done;
    }
    if (farm_digest_valid(ref) && resp.digest[0] && strcmp(resp.digest, ref) != 0) {
        rc = farm_error_set(FARM_ERROR, "registry %s: %s: registry reports digest %s",
                            self->host, t.what, resp.digest);
        goto done;
    }
    if (!resp.digest[0] || !resp.has_length) {
        /* HEAD without the facts: GET the bytes and compute them ourselves */
        if ((rc = farm_registry_manifest_get(self, &body, &len, out_media_type, mt_len, repo,
                                             ref)) < 0)
            goto done;
        if (out_digest)
            farm_digest_buffer(out_digest, body, len);
        if (out_size)
            *out_size = len;
        goto done;
    }
    if (out_digest)
        memcpy(out_digest, resp.digest, FARM_DIGEST_STRLEN); /* valid: exactly that long */
    if (out_size)
        *out_size = resp.content_length;
    rc = s_media_type_out(self, out_media_type, mt_len, resp.content_type);
done:
    free(body);
    s_resp_free(&resp);
    return rc;
}
