/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/web.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/http.h"
#include "common/log.h"
#include "common/pbjson.h"
#include "coordinator/clients.h"
#include "coordinator/history.h"
#include "coordinator/stats.h"
#include "coordinator/webfiles.h"

/* What one follower of a log may have waiting to be sent; past it lines are dropped
 * (and said), so a reader that does not read costs a bounded buffer. */
#define S_FOLLOW_BUF (256 * 1024)
#define S_TOKEN_MAX 4096
/* Followed logs at once: a follow holds its connection until its build ends (the idle
 * timeout does not close it), so they get a quarter of the server's connections and
 * the page and /metrics always have the rest. */
#define S_FOLLOWS_MAX 64

typedef struct s_follow {
    farm_web_t *web;
    farm_http_stream_t *stream;
    int watch; /* farm_history_watch's id while the build runs, else 0 */
    char build_id[FARM_ID_MAX + 1];
    char platform[FARM_PLATFORM_STRLEN]; /* "" every platform */
    char *buf;
    size_t len, sent;
    unsigned long dropped;
    int ended; /* the build ended: send what is left, then end */
    struct s_follow *prev, *next;
} s_follow_t;

struct farm_web {
    farm_config_t *const *cfg_p;
    const farm_config_t *cfg_seen; /* the config the clients instance holds */
    farm_coord_parts_t parts;
    farm_http_t *http;
    farm_clients_t *cl;  /* its own: answers go to s_capture, never to a socket */
    json_t *captured;    /* the last reply the clients module sent us */
    farm_history_watches_t *watches; /* the builds' live log lines */
    s_follow_t *follows; /* at most S_FOLLOWS_MAX: the rest of the connections stay free */
};

static int s_capture(void *arg, const void *rid, size_t rid_len, Farm__Envelope *env)
{
    farm_web_t *self = arg;
    const ProtobufCMessage *m = NULL;

    switch (env->body_case) {
    case FARM__ENVELOPE__BODY_NODES_REPLY: m = &env->nodes_reply->base; break;
    case FARM__ENVELOPE__BODY_BUILDS_REPLY: m = &env->builds_reply->base; break;
    case FARM__ENVELOPE__BODY_REFUSED: m = &env->refused->base; break;
    default: break;
    }
    json_decref(self->captured);
    self->captured = m ? farm_pbjson(m) : NULL;
    return 0;
}

/* The reply farmctl would get for a request of this kind (an admin's view). */
static json_t *s_ask(farm_web_t *self, Farm__Envelope__BodyCase body)
{
    farm_client_t admin = {.rid = "http", .rid_len = 4, .name = "", .key = "",
                           .role = FARM_ROLE_ADMIN};
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__NodesRequest nr = FARM__NODES_REQUEST__INIT;
    Farm__BuildsRequest br = FARM__BUILDS_REQUEST__INIT;
    json_t *out;

    env.body_case = body;
    if (body == FARM__ENVELOPE__BODY_NODES_REQUEST)
        env.nodes_request = &nr;
    else
        env.builds_request = &br;
    farm_clients_message(self->cl, &admin, &env);
    out = self->captured;
    self->captured = NULL;
    return out;
}

static void s_reply_json(farm_http_req_t *req, int status, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) {
        farm_http_reply_error(req, 500, "out of memory");
        return;
    }
    farm_http_reply_take(req, status, "application/json", text, strlen(text));
}

/* -- logs ------------------------------------------------------------------------------ */

static void s_follow_put(s_follow_t *f, const char *platform, const char *line)
{
    Farm__LogLine ll = FARM__LOG_LINE__INIT;
    char *text;
    size_t n;

    ll.platform = (char *)platform;
    ll.line = (char *)line;
    if (!(text = farm_pbjson_dumps(&ll.base, 0)))
        return;
    n = strlen(text);
    if (f->sent) { /* what the client took makes room */
        memmove(f->buf, f->buf + f->sent, f->len - f->sent);
        f->len -= f->sent;
        f->sent = 0;
    }
    if (f->len + n + 1 > S_FOLLOW_BUF) {
        f->dropped++;
        free(text);
        return;
    }
    if (!f->buf && !(f->buf = malloc(S_FOLLOW_BUF))) {
        free(text);
        return;
    }
    if (f->dropped) {
        /* said once room is back, so the reader knows lines are missing */
        char note[128];
        int k = snprintf(note, sizeof note,
                         "{\"platform\":\"\",\"line\":\"... %lu line(s) dropped: the reader "
                         "was slow\"}\n", f->dropped);
        if (k > 0 && f->len + (size_t)k + n + 1 <= S_FOLLOW_BUF) {
            memcpy(f->buf + f->len, note, (size_t)k);
            f->len += (size_t)k;
            f->dropped = 0;
        }
    }
    memcpy(f->buf + f->len, text, n);
    f->buf[f->len + n] = '\n';
    f->len += n + 1;
    free(text);
    farm_http_stream_wake(f->stream);
}

static ssize_t s_follow_fill(void *arg, char *buf, size_t max)
{
    s_follow_t *f = arg;
    size_t n = f->len - f->sent;
    if (!n)
        return f->ended ? -1 : 0;
    if (n > max)
        n = max;
    memcpy(buf, f->buf + f->sent, n);
    f->sent += n;
    return (ssize_t)n;
}

static void s_follow_done(void *arg)
{
    s_follow_t *f = arg;
    farm_web_t *self = f->web;
    if (self && f->watch > 0)
        farm_history_unwatch(self->watches, f->watch);
    if (f->prev)
        f->prev->next = f->next;
    else if (self)
        self->follows = f->next;
    if (f->next)
        f->next->prev = f->prev;
    free(f->buf);
    free(f);
}

/* A live line of the followed build (platform NULL: the build ended, the watch is gone). */
static void s_follow_line(void *arg, const char *build_id, const char *platform,
                          const char *line)
{
    s_follow_t *f = arg;
    if (!platform) {
        f->watch = 0;
        f->ended = 1;
        farm_http_stream_wake(f->stream);
        return;
    }
    if (!f->platform[0] || !strcmp(f->platform, platform))
        s_follow_put(f, platform, line);
}

/* An HTTP status for the history module's refusal (its message names the cause). */
static int s_status_of(int code)
{
    return code == FARM_ENOTFOUND ? 404 : code == FARM_EINVALID ? 400 : code == FARM_EAUTH ? 403
                                                                                         : 500;
}

static const farm_history_caller_t s_admin = {.name = "", .role = FARM_ROLE_ADMIN};

/* The build's kept log (farm_history_logs: what farmctl logs prints), as one LogsReply;
 * follow=1: those lines, then the live ones until the build ends, as NDJSON LogLines. */
static void s_logs(farm_web_t *self, farm_http_req_t *req, const char *id)
{
    const char *platform = farm_http_req_query(req, "platform");
    const char *follow = farm_http_req_query(req, "follow");
    Farm__LogsRequest lr = FARM__LOGS_REQUEST__INIT;
    Farm__LogsReply **reps;
    farm_build_t *b;
    size_t n = 0;
    s_follow_t *f;

    lr.build = (char *)id;
    lr.platform = (char *)(platform ? platform : "");
    if (strlen(lr.platform) >= FARM_PLATFORM_STRLEN) {
        farm_http_reply_error(req, 400, "platform=: too long");
        return;
    }
    if (!(reps = farm_history_logs(&n, &self->parts, &s_admin, &lr, 0))) {
        farm_http_reply_error(req, s_status_of(farm_error_last_code()), "%s", farm_error_last());
        return;
    }
    if (!follow || strcmp(follow, "1")) {
        json_t *all = n ? farm_pbjson(&reps[0]->base) : NULL, *lines;
        lines = json_object_get(all, "lines");
        for (size_t i = 1; all && i < n; i++) {
            json_t *more = farm_pbjson(&reps[i]->base);
            json_array_extend(lines, json_object_get(more, "lines"));
            json_decref(more);
        }
        json_object_set_new(all, "more", json_false());
        farm_history_logs_free(reps, n);
        s_reply_json(req, 200, all);
        return;
    }
    size_t n_follows = 0;
    for (const s_follow_t *g = self->follows; g; g = g->next)
        n_follows++;
    if (n_follows >= S_FOLLOWS_MAX) {
        farm_history_logs_free(reps, n);
        farm_http_reply_error(req, 503, "%d logs are followed already: read it without "
                              "follow=1, or later", S_FOLLOWS_MAX);
        return;
    }
    if (!(f = calloc(1, sizeof *f))) {
        farm_history_logs_free(reps, n);
        farm_http_reply_error(req, 500, "out of memory");
        return;
    }
    f->web = self;
    snprintf(f->build_id, sizeof f->build_id, "%s", n ? reps[0]->build_id : id);
    snprintf(f->platform, sizeof f->platform, "%s", lr.platform);
    f->next = self->follows;
    if (f->next)
        f->next->prev = f;
    self->follows = f;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < reps[i]->n_lines; k++)
            s_follow_put(f, reps[i]->lines[k]->platform, reps[i]->lines[k]->line);
    farm_history_logs_free(reps, n);
    /* in the same turn as the kept lines: no line falls between */
    b = farm_builds_get(self->parts.builds, f->build_id);
    if (b && b->state != FARM_BUILD_DONE)
        f->watch = farm_history_watch(self->watches, f->build_id, s_follow_line, f);
    f->ended = f->watch <= 0;
    f->stream = farm_http_reply_stream(req, "application/x-ndjson", s_follow_fill,
                                       s_follow_done, f);
    if (!f->stream)
        s_follow_done(f); /* no stream: the request is answered with an error, or closed */
}

/* /api/history[?filter=KEY=VALUE][&limit=N]: HistoryReply, newest first */
static void s_history(farm_web_t *self, farm_http_req_t *req)
{
    const char *filter = farm_http_req_query(req, "filter");
    const char *limit = farm_http_req_query(req, "limit");
    Farm__HistoryRequest hr = FARM__HISTORY_REQUEST__INIT;
    Farm__HistoryReply *rep;
    char *filters[1] = {(char *)filter};
    char *end = NULL;

    if (filter) {
        hr.n_filters = 1;
        hr.filters = filters;
    }
    if (limit) {
        unsigned long v = strtoul(limit, &end, 10);
        if (!*limit || *end || v > 10000) {
            farm_http_reply_error(req, 400, "limit=%s: write a number from 1 to 10000", limit);
            return;
        }
        hr.limit = (uint32_t)v;
    }
    if (!(rep = farm_history_list(&self->parts, &s_admin, &hr))) {
        farm_http_reply_error(req, s_status_of(farm_error_last_code()), "%s", farm_error_last());
        return;
    }
    s_reply_json(req, 200, farm_pbjson(&rep->base));
    protobuf_c_message_free_unpacked(&rep->base, NULL);
}

/* /api/builds/ID (an id, or ^N): its HistoryRecord */
static void s_record(farm_web_t *self, farm_http_req_t *req, const char *id)
{
    Farm__HistoryGet hg = FARM__HISTORY_GET__INIT;
    Farm__HistoryRecord *rec;

    hg.build = (char *)id;
    if (!(rec = farm_history_get(&self->parts, &s_admin, &hg))) {
        farm_http_reply_error(req, s_status_of(farm_error_last_code()), "%s", farm_error_last());
        return;
    }
    s_reply_json(req, 200, farm_pbjson(&rec->base));
    protobuf_c_message_free_unpacked(&rec->base, NULL);
}

/* -- routes ---------------------------------------------------------------------------- */

static void s_handle(void *arg, farm_http_req_t *req)
{
    farm_web_t *self = arg;
    const char *path = farm_http_req_path(req);
    const farm_webfile_t *file;

    if (self->cfg_seen != *self->cfg_p) { /* farm.yaml was reloaded */
        self->cfg_seen = *self->cfg_p;
        self->parts.cfg = self->cfg_seen;
        farm_clients_reload(self->cl, self->cfg_seen);
    }

    if (!strcmp(path, "/metrics")) {
        size_t len = 0;
        char *text;
        farm_metric_inc(farm_cstats.http_requests, "/metrics", NULL);
        text = farm_metrics_render(farm_cstats.reg, &len);
        farm_http_reply_take(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
        return;
    }
    if ((file = farm_webfile_get(path))) {
        farm_metric_inc(farm_cstats.http_requests, "page", NULL);
        farm_http_reply(req, 200, file->content_type, file->data, file->len);
        return;
    }
    if (!strcmp(path, "/api/nodes")) {
        farm_metric_inc(farm_cstats.http_requests, "/api/nodes", NULL);
        s_reply_json(req, 200, s_ask(self, FARM__ENVELOPE__BODY_NODES_REQUEST));
        return;
    }
    if (!strcmp(path, "/api/builds")) {
        farm_metric_inc(farm_cstats.http_requests, "/api/builds", NULL);
        s_reply_json(req, 200, s_ask(self, FARM__ENVELOPE__BODY_BUILDS_REQUEST));
        return;
    }
    if (!strcmp(path, "/api/history")) {
        farm_metric_inc(farm_cstats.http_requests, "/api/history", NULL);
        s_history(self, req);
        return;
    }
    if (!strncmp(path, "/api/builds/", 12)) {
        char id[FARM_ID_MAX + 1];
        const char *rest = path + 12, *slash = strchr(rest, '/');
        size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
        if (!n || n > FARM_ID_MAX) {
            farm_http_reply_error(req, 404, "no such build id");
            return;
        }
        memcpy(id, rest, n);
        id[n] = '\0';
        if (slash && !strcmp(slash, "/logs")) {
            farm_metric_inc(farm_cstats.http_requests, "/api/builds/ID/logs", NULL);
            s_logs(self, req, id);
            return;
        }
        if (!slash) {
            farm_metric_inc(farm_cstats.http_requests, "/api/builds/ID", NULL);
            s_record(self, req, id);
            return;
        }
    }
    farm_metric_inc(farm_cstats.http_requests, "other", NULL);
    farm_http_reply_error(req, 404, "%s: not here; the page is at /, the API under /api/ "
                          "(nodes, builds, history, builds/ID, builds/ID/logs), metrics at /metrics",
                          path);
}

/* The token: the file's first line, without surrounding blanks. */
static char *s_read_token(const char *path)
{
    char *text = NULL, *s, *e;
    size_t len = 0;

    struct stat st;
    /* a secret like a key file: this user's own regular file that nobody else may read
     * (a token others can read is anyone's on this host) */
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
        ((st.st_mode & 077) || st.st_uid != geteuid())) {
        farm_error_set(FARM_EINVALID, "coordinator.http_token_file %s may be read by group or "
                       "others, or is not this user's (mode %03o, uid %u): run chmod 600 %s "
                       "(and chown it to the coordinator's user)", path,
                       (unsigned)(st.st_mode & 0777), (unsigned)st.st_uid, path);
        return NULL;
    }
    if (farm_fs_read_file(&text, &len, path, S_TOKEN_MAX) < 0) {
        farm_error_wrap(FARM_EINVALID, "coordinator.http_token_file %s", path);
        return NULL;
    }
    for (s = text; *s == ' ' || *s == '\t'; s++)
        ;
    e = s + strcspn(s, "\r\n");
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *e = '\0';
    if (!*s) {
        free(text);
        farm_error_set(FARM_EINVALID, "coordinator.http_token_file %s is empty; write a "
                       "token in it (e.g. openssl rand -hex 32 > %s)", path, path);
        return NULL;
    }
    memmove(text, s, strlen(s) + 1);
    return text;
}

farm_web_t *farm_web_new(farm_reactor_t *reactor, farm_config_t *const *cfg_p,
                         const farm_coord_parts_t *parts, farm_history_watches_t *watches)
{
    const farm_config_t *cfg = *cfg_p;
    farm_web_t *self = calloc(1, sizeof *self);
    char *token = NULL;

    if (!self) {
        farm_error_set(FARM_ERROR, "out of memory");
        return NULL;
    }
    self->cfg_p = cfg_p;
    self->cfg_seen = cfg;
    self->parts = *parts;
    self->watches = watches;
    if (cfg->http_token_file && !(token = s_read_token(cfg->http_token_file)))
        goto fail;
    if (farm_cstats_init(parts, cfg_p) < 0 ||
        !(self->cl = farm_clients_new(&self->parts, s_capture, self))) {
        farm_error_set(FARM_ERROR, "out of memory");
        goto fail;
    }
    if (!(self->http = farm_http_new(reactor, cfg->http, token, 0, s_handle, self))) {
        farm_error_wrap(farm_error_last_code(), "coordinator.http");
        goto fail;
    }
    if (token)
        farm_log_info("http: /metrics, the page and /api/ on http://%s/ (port %d), every "
                      "request needs the bearer token of %s%s", cfg->http,
                      farm_http_port(self->http), cfg->http_token_file,
                      cfg->http_loopback ? "" : "; the address is not loopback: anyone who "
                                                "reaches it and holds the token reads every "
                                                "build, and the token travels in clear HTTP");
    else
        farm_log_info("http: /metrics, the page and /api/ on http://%s/ (port %d), loopback "
                      "only, no token", cfg->http, farm_http_port(self->http));
    free(token);
    return self;
fail:
    free(token);
    farm_web_destroy(&self);
    return NULL;
}

int farm_web_port(const farm_web_t *self)
{
    return self ? farm_http_port(self->http) : 0;
}

void farm_web_destroy(farm_web_t **self_p)
{
    farm_web_t *self;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    farm_http_destroy(&self->http); /* ends the streams: their follows are freed */
    for (s_follow_t *f = self->follows; f; f = f->next)
        f->web = NULL;
    farm_clients_destroy(&self->cl);
    json_decref(self->captured);
    farm_cstats_fini();
    free(self);
    *self_p = NULL;
}
