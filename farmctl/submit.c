/* SPDX-License-Identifier: Apache-2.0 */
/* farmctl submit: pack the context, send it once by digest, submit, stream progress,
 * print the index digest last on stdout. */
#include "farmctl/submit.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buildflags.h"
#include "common/config.h"
#include "common/context.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/keys.h"
#include "common/limits.h"
#include "common/platform.h"
#include "common/reference.h"
#include "common/registry_auth.h"
#include "common/str.h"
#include "common/text.h"
#include "common/wire.h"
#include "farmctl/client.h"
#include "farmctl/follow.h"
#include "farmctl/probe.h"
#include "farmctl/progress.h"

#define REPLY_TIMEOUT_MS 15000
#define UPLOAD_OFFERS 10         /* offers of one context before farmctl gives up */
#define UPLOAD_PAUSE_MS 100      /* the first pause before offering again; doubles */

typedef struct {
    const char *tags[FARM_TAGS_MAX];
    size_t n_tags;
    char *platforms[FARM_PLATFORMS_MAX];
    size_t n_platforms;
    const char *dockerfile;
    int dockerfile_cli;          /* -f given: relative to the working directory */
    farm_kv_t args[FARM_BUILD_ARGS_MAX];
    size_t n_args;
    const char *farm_file;
    const char *coordinator;
    const char *metadata_file;
    const char *context;
    int allow_partial;
    int amend;                  /* --amend: rebuild --platform, keep the index's others */
    int target_plain_http; /* the tags' registry answered plain HTTP (farmctl/probe.h) */
    const char *network; /* NULL: farm.yaml build.network, else the node's */
    farmctl_progress_mode_t progress;
    farmctl_progress_t *pg;
    char build_id[FARM_ID_MAX + 1];
    /* the submitter's own registry logins, sent with the Submit and wiped after it */
    char *cred_hosts[FARM_CREDENTIALS_MAX];
    farm_registry_creds_t creds[FARM_CREDENTIALS_MAX];
    size_t n_creds;
    /* buildx's flags: farm.yaml's build: first, then the command line's (later wins) */
    farm_buildflags_t flags;
    const char *target;          /* --target */
    const char *cache_from, *cache_to; /* --cache-from, --cache-to */
    int no_cache, pull;          /* --no-cache, --pull */
    const char *labels[FARM_LABELS_MAX];
    size_t n_labels;
    const char *annotations[FARM_ANNOTATIONS_MAX];
    size_t n_annotations;
    farm_secret_spec_t secrets[FARM_SECRETS_MAX];
    size_t n_secrets;
    const char *iidfile;
    int trust_repo_coordinator; /* farm.yaml's coordinator.public_key serves without yours */
    int detach;                 /* --detach: print the build id once accepted and leave */
    long long give_up_ms;       /* --give-up-after */
    /* 32 random bytes, in this process's memory only: the Submit carries them, and a
     * Follow carrying them after a coordinator restart is this submit, which may send
     * the build's logins and secrets again */
    unsigned char token[32];
    int heartbeat_ms;           /* the coordinator's (Accepted) */
} submit_opts_t;

/* Looks host up in the submitter's docker config (auths, credHelpers, credsStore) and
 * keeps what it finds. A host named twice is looked up once. A helper that fails is an
 * error for the target registry (the push would fail later, less clearly), a warning for
 * a base-image registry. */
static int s_add_creds(submit_opts_t *o, const char *host, int target)
{
    int rc;

    for (size_t i = 0; i < o->n_creds; i++)
        if (strcmp(o->cred_hosts[i], host) == 0)
            return 0;
    if (o->n_creds == FARM_CREDENTIALS_MAX)
        return 0;
    rc = farm_registry_credentials_lookup(&o->creds[o->n_creds], NULL, host);
    if (rc == FARM_ENOTFOUND)
        return 0; /* anonymous for this host */
    if (rc < 0 && !target) {
        fprintf(stderr, "warning: %s; builds pull from %s anonymously\n", farm_error_last(), host);
        return 0;
    }
    if (rc < 0)
        return farm_error_wrap(rc, "your login for %s", host);
    if (!(o->cred_hosts[o->n_creds] = strdup(host))) {
        farm_registry_creds_clear(&o->creds[o->n_creds]);
        return farm_error_set(FARM_ERROR, "out of memory");
    }
    o->n_creds++;
    return 0;
}

/* Which logins go with the build: the target registries', the registry caches', and those
 * of the registries farm.yaml lists (where base images come from; farmctl cannot know a
 * Dockerfile's FROM registries in general). Nothing else in the docker config leaves this
 * machine. */
static int s_collect_creds(submit_opts_t *o, const farm_config_t *cfg)
{
    farm_reference_t ref;
    int rc;

    /* every registry the tags name: the images and the index are pushed to each */
    for (size_t i = 0; i < o->n_tags; i++) {
        if (farm_reference_parse(&ref, o->tags[i]) < 0)
            return FARM_EINVALID;
        if ((rc = s_add_creds(o, ref.registry, 1)) < 0)
            return rc;
    }
    const char *caches[] = {o->flags.cache_to, o->flags.cache_from};
    for (size_t i = 0; i < 2; i++) {
        const char *c = caches[i];
        char host[FARM_REGISTRY_HOST_MAX + 1];
        size_t n = c ? strcspn(c, "/") : FARM_REGISTRY_HOST_MAX + 1;
        if (n <= FARM_REGISTRY_HOST_MAX) {
            memcpy(host, c, n);
            host[n] = 0;
            if ((rc = s_add_creds(o, host, 0)) < 0)
                return rc;
        }
    }
    for (size_t i = 0; cfg && i < cfg->n_registries; i++)
        if ((rc = s_add_creds(o, cfg->registries[i].host, 0)) < 0)
            return rc;
    return 0;
}

static void s_creds_clear(submit_opts_t *o)
{
    for (size_t i = 0; i < o->n_creds; i++) {
        farm_registry_creds_clear(&o->creds[i]);
        free(o->cred_hosts[i]);
    }
    o->n_creds = 0;
}

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: farmctl submit [options] [CONTEXT]\n"
            "  -t, --tag REF           image reference to push the index to (repeatable;\n"
            "                          tags may name several repositories: each gets\n"
            "                          every image, and no tag moves unless all can)\n"
            "      --platform P,...    platforms to build (default: farm.yaml build.platforms)\n"
            "  -f, --file PATH         Dockerfile (default: CONTEXT/Dockerfile)\n"
            "      --build-arg K=V     build argument (repeatable)\n"
            "      --farm FILE         farm.yaml (default: ./farm.yaml, then CONTEXT/farm.yaml)\n"
            "      --coordinator E     coordinator client endpoint (else $FARM_COORDINATOR,\n"
            "                          else farm.yaml coordinator.clients)\n"
            "      --trust-repo-coordinator\n"
            "                          without $FARM_COORDINATOR_KEY, use farm.yaml's\n"
            "                          coordinator.public_key (it gets your logins)\n"
            "      --metadata-file F   write build metadata as JSON to F\n"
            "      --progress MODE     auto, plain, tty or quiet (default auto)\n"
            "      --allow-partial     push an index of the platforms that succeeded\n"
            "      --amend             rebuild only --platform's platforms; the new index\n"
            "                          keeps the other platforms of the index under the\n"
            "                          first -t (each checked in the registry)\n"
            "      --network MODE      RUN steps' network: default (the node's: outbound\n"
            "                          only) or none (default: farm.yaml build.network)\n"
            "      --target STAGE      build the Dockerfile's stage STAGE\n"
            "      --no-cache          build every step anew (no layer cache)\n"
            "      --cache-from REPO   start from the registry cache REPO/OS-ARCH[-VARIANT]\n"
            "      --cache-to REPO     push each platform's build cache there (never fails\n"
            "                          the build); REPO or type=registry,ref=REPO;\n"
            "                          farm.yaml build.cache sets both\n"
            "      --pull              always pull base images\n"
            "      --label K=V         image config label (repeatable)\n"
            "      --annotation [manifest:|index:]K=V\n"
            "                          annotation of each image manifest, or of the index\n"
            "      --secret id=ID,src=FILE|env=VAR\n"
            "                          secret for RUN --mount=type=secret,id=ID (repeatable)\n"
            "      --iidfile FILE      write the index digest to FILE\n"
            "      --detach            print the build id once accepted and exit 0; follow it\n"
            "                          with farmctl wait BUILD\n"
            "      --give-up-after D   how long the coordinator may be unreachable while\n"
            "                          farmctl follows the build (default 15m); then it\n"
            "                          prints the build id and exits 3\n"
            "  -q, --quiet             no progress; only the digest on stdout\n");
}

static int s_add_platforms(submit_opts_t *o, const char *list)
{
    return farm_platform_list(o->platforms, &o->n_platforms, FARM_PLATFORMS_MAX, list);
}

/* Sets a build arg; a later --build-arg of the same name wins, a farm.yaml default
 * (override = 0) never replaces one given on the command line. */
static int s_set_arg(submit_opts_t *o, const char *key, const char *value, int override)
{
    char *k = NULL, *v = NULL;

    if (strlen(key) > FARM_BUILD_ARG_NAME_MAX)
        return farm_error_set(FARM_EINVALID, "build arg name \"%.40s...\" is %zu bytes; farm "
                              "accepts names of at most %d bytes", key, strlen(key),
                              FARM_BUILD_ARG_NAME_MAX);
    if (strlen(value) > FARM_BUILD_ARG_VALUE_MAX)
        return farm_error_set(FARM_EINVALID, "build arg %s: the value is %zu bytes; farm accepts "
                              "values of at most %d bytes (put larger data in the context)",
                              key, strlen(value), FARM_BUILD_ARG_VALUE_MAX);
    for (size_t i = 0; i < o->n_args; i++) {
        if (strcmp(o->args[i].key, key) == 0) {
            if (override) {
                if (!(v = strdup(value)))
                    return farm_error_set(FARM_ERROR, "out of memory");
                free(o->args[i].value);
                o->args[i].value = v;
            }
            return 0;
        }
    }
    if (o->n_args == FARM_BUILD_ARGS_MAX)
        return farm_error_set(FARM_EINVALID, "too many build args (at most %d)",
                              FARM_BUILD_ARGS_MAX);
    if (!(k = strdup(key)) || !(v = strdup(value))) {
        free(k);
        return farm_error_set(FARM_ERROR, "out of memory");
    }
    o->args[o->n_args].key = k;
    o->args[o->n_args++].value = v;
    return 0;
}

/* --build-arg KEY=VALUE */
static int s_cli_arg(submit_opts_t *o, char *kv)
{
    char *eq = strchr(kv, '=');
    int rc;

    if (!eq || eq == kv)
        return farm_error_set(FARM_EINVALID, "--build-arg wants KEY=VALUE, not \"%s\"", kv);
    *eq = '\0';
    rc = s_set_arg(o, kv, eq + 1, 1);
    *eq = '=';
    return rc;
}

/* Options that repeat: the spec is checked now (a usage error), applied in s_flags. */
static int s_cli_spec(const char **list, size_t *n, size_t max, const char *spec,
                      const char *flag, int (*check)(farm_buildflags_t *, const char *))
{
    farm_buildflags_t scratch = {0};
    int rc = check(&scratch, spec);

    farm_buildflags_clear(&scratch);
    if (rc < 0)
        return rc;
    if (*n == max)
        return farm_error_set(FARM_EINVALID, "too many %s (at most %zu)", flag, max);
    list[(*n)++] = spec;
    return 0;
}

static int s_cli_secret(submit_opts_t *o, const char *spec)
{
    if (o->n_secrets == FARM_SECRETS_MAX)
        return farm_error_set(FARM_EINVALID, "too many --secret (at most %d)", FARM_SECRETS_MAX);
    if (farm_secret_spec_parse(&o->secrets[o->n_secrets], spec) < 0)
        return FARM_EINVALID;
    o->n_secrets++;
    return 0;
}

/* A farm.yaml secret (src= relative to farm.yaml's directory, dir): the file, symlinks
 * resolved, must lie inside that directory. farm.yaml is written by whoever can change
 * the repository; a file elsewhere (a key in ~/.ssh) is the user's to send, by --secret. */
static int s_repo_secret(farm_buildflags_t *f, const farm_secret_spec_t *spec, const char *dir)
{
    char root[PATH_MAX], joined[PATH_MAX], real[PATH_MAX];
    farm_secret_spec_t inside = *spec;
    size_t n;
    int rc;

    if (spec->kind != FARM_SECRET_FILE) /* farm_config_load refuses these */
        return farm_error_set(FARM_EINVALID, "secret %s: a checked-in farm.yaml may name only "
                              "files inside the repository; pass --secret instead", spec->id);
    if (!realpath(dir, root))
        return farm_error_set(FARM_EINVALID, "secret %s: cannot resolve %s: %s", spec->id, dir,
                              strerror(errno));
    if ((rc = farm_path_join(joined, sizeof joined, root, spec->source)) < 0)
        return farm_error_wrap(rc, "secret %s", spec->id);
    if (!realpath(joined, real))
        return farm_error_set(FARM_EINVALID, "secret %s: cannot read %s: %s", spec->id, joined,
                              strerror(errno));
    n = strlen(root);
    if (strcmp(root, "/") != 0 && (strncmp(real, root, n) != 0 || real[n] != '/'))
        return farm_error_set(FARM_EINVALID, "secret %s: src=%s resolves to %s, outside the "
                              "repository (%s); a checked-in farm.yaml may send only files "
                              "inside it: pass --secret id=%s,src=FILE to farmctl submit "
                              "instead", spec->id, spec->source, real, root, spec->id);
    if ((rc = farm_str_fmt(inside.source, sizeof inside.source, "the secret's path", "%s",
                           real)) < 0)
        return farm_error_wrap(rc, "secret %s", spec->id);
    return farm_buildflags_add_secret(f, &inside, NULL);
}

/* The build's flags: farm.yaml's build: section (cfg may be NULL), then the command line's,
 * a later label, annotation or secret id replacing an earlier one. Secrets are read here:
 * a farm.yaml src= is relative to farm.yaml's directory and must stay inside it. */
static int s_flags(submit_opts_t *o, const farm_config_t *cfg, const char *farm_path)
{
    farm_buildflags_t *f = &o->flags;
    const farm_config_build_t *b = cfg ? &cfg->build : NULL;
    char dir[PATH_MAX];
    int rc;

    if (b && b->target && (rc = farm_buildflags_set_target(f, b->target)) < 0)
        return farm_error_wrap(rc, "%s: build.target", farm_path);
    if (o->target && (rc = farm_buildflags_set_target(f, o->target)) < 0)
        return farm_error_wrap(rc, "--target");
    if (b && b->cache && ((rc = farm_buildflags_cache_spec(f, 0, b->cache)) < 0 ||
                          (rc = farm_buildflags_cache_spec(f, 1, b->cache)) < 0))
        return farm_error_wrap(rc, "%s: build.cache", farm_path);
    if ((o->cache_from && (rc = farm_buildflags_cache_spec(f, 0, o->cache_from)) < 0) ||
        (o->cache_to && (rc = farm_buildflags_cache_spec(f, 1, o->cache_to)) < 0))
        return rc;
    f->no_cache = o->no_cache || (b && b->no_cache);
    f->pull = o->pull || (b && b->pull);
    for (size_t i = 0; b && i < b->n_labels; i++)
        if ((rc = farm_buildflags_set_label(f, b->labels[i].key, b->labels[i].value)) < 0)
            return farm_error_wrap(rc, "%s: build.labels", farm_path);
    for (size_t i = 0; b && i < b->n_annotations; i++)
        if ((rc = farm_buildflags_set_annotation(f, b->annotations[i].key,
                                                 b->annotations[i].value)) < 0)
            return farm_error_wrap(rc, "%s: build.annotations", farm_path);
    for (size_t i = 0; i < o->n_labels; i++)
        if ((rc = farm_buildflags_label_spec(f, o->labels[i])) < 0)
            return rc;
    for (size_t i = 0; i < o->n_annotations; i++)
        if ((rc = farm_buildflags_annotation_spec(f, o->annotations[i])) < 0)
            return rc;
    snprintf(dir, sizeof dir, "%s", farm_path ? farm_path : ".");
    if (strrchr(dir, '/'))
        *strrchr(dir, '/') = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    for (size_t i = 0; b && i < b->n_secrets; i++) {
        farm_secret_spec_t spec;
        int on_cli = 0;
        if ((rc = farm_secret_spec_parse(&spec, b->secrets[i])) < 0)
            return farm_error_wrap(rc, "%s: build.secrets", farm_path);
        for (size_t k = 0; k < o->n_secrets; k++)
            on_cli |= strcmp(o->secrets[k].id, spec.id) == 0;
        if (!on_cli && (rc = s_repo_secret(f, &spec, dir)) < 0)
            return farm_error_wrap(rc, "%s: build.secrets", farm_path);
    }
    for (size_t i = 0; i < o->n_secrets; i++)
        if ((rc = farm_buildflags_add_secret(f, &o->secrets[i], NULL)) < 0)
            return farm_error_wrap(rc, "--secret");
    return 0;
}

/* The Dockerfile as a path relative to the context (it must live inside it). */
static int s_dockerfile_rel(char *out, size_t len, const char *context, const char *file,
                            int from_cli)
{
    char ctx_real[PATH_MAX], file_real[PATH_MAX], joined[PATH_MAX * 2];
    size_t cl;
    int rc;

    if (!file)
        file = "Dockerfile";
    if (!realpath(context, ctx_real))
        return farm_error_set(FARM_EINVALID, "context %s: no such directory", context);
    /* -f is relative to the working directory (as with docker build); farm.yaml's
     * build.dockerfile is relative to the context */
    if ((rc = farm_path_join(joined, sizeof joined, from_cli || file[0] == '/' ? file : ctx_real,
                             from_cli || file[0] == '/' ? NULL : file)) < 0)
        return farm_error_wrap(rc, "Dockerfile");
    if (!realpath(joined, file_real))
        return farm_error_set(FARM_EINVALID, "Dockerfile %s not found", joined);
    cl = strlen(ctx_real);
    if (strncmp(file_real, ctx_real, cl) != 0 || file_real[cl] != '/')
        return farm_error_set(FARM_EINVALID,
                              "Dockerfile %s is outside the context %s; move it into the context",
                              file_real, ctx_real);
    if (strlen(file_real + cl + 1) > FARM_DOCKERFILE_PATH_MAX)
        return farm_error_set(FARM_EINVALID, "the Dockerfile path %.60s... is %zu bytes inside "
                              "the context; farm accepts at most %d: move or rename it",
                              file_real + cl + 1, strlen(file_real + cl + 1),
                              FARM_DOCKERFILE_PATH_MAX);
    return farm_str_fmt(out, len, "the Dockerfile path", "%s", file_real + cl + 1);
}

/* A wait for the coordinator's answers that outlives a restart of it (the upload, the
 * submit): the connection's drops are watched, and silence is bounded by
 * REPLY_TIMEOUT_MS while connected, by --give-up-after once the connection dropped. */
typedef struct {
    unsigned drops;
    long long heard, lost_at;
} s_wait_t;

enum { S_WAIT_GOT = 0, S_WAIT_MORE = 1, S_WAIT_RESEND = 2 };

static void s_wait_init(s_wait_t *w, farmctl_client_t *cl)
{
    w->drops = farmctl_client_disconnects(cl);
    w->heard = farm_now_ms();
    w->lost_at = 0;
}

/* Receives for up to a second: S_WAIT_GOT with a message in *reply, S_WAIT_MORE to call
 * again, S_WAIT_RESEND when the connection dropped (said once, as "lost the coordinator
 * at E <what>"): what was in flight is gone with it, the caller sends again (ZeroMQ holds
 * it until the connection is back); < 0 with the error set. */
static int s_wait_next(farmctl_client_t *cl, const submit_opts_t *o, s_wait_t *w,
                       Farm__Envelope **reply, const char *what)
{
    int rc = farmctl_client_recv(cl, reply, 1000);
    unsigned d = farmctl_client_disconnects(cl);
    long long quiet;

    if (d != w->drops) {
        w->drops = d;
        if (!w->lost_at)
            farmctl_progress_note(o->pg, "#lost the coordinator at %s %s",
                                  farmctl_client_endpoint(cl), what);
        w->lost_at = farm_now_ms();
        farm_wire_free(reply);
        return S_WAIT_RESEND;
    }
    if (rc == FARM_ERETRY) {
        quiet = farm_now_ms() - w->heard;
        if (w->lost_at ? quiet < o->give_up_ms : quiet < REPLY_TIMEOUT_MS)
            return S_WAIT_MORE;
        return farmctl_client_silent(cl, (int)(quiet < INT32_MAX ? quiet : INT32_MAX));
    }
    if (rc < 0)
        return rc;
    w->heard = farm_now_ms();
    if (w->lost_at) {
        farmctl_progress_note(o->pg, "#the coordinator answers again");
        w->lost_at = 0;
    }
    return S_WAIT_GOT;
}

/* Sends the chunks from `from` while fewer than FARM_WIRE_WINDOW bytes are unacknowledged
 * (a credit window, zguide ch. 7 "file transfer": no stop-and-wait per chunk). Each chunk
 * is answered once: *unanswered counts them. */
static int s_upload_pump(farmctl_client_t *cl, int fd, char *buf, const char *tar,
                         const char *digest, uint64_t size, uint64_t *sent, uint64_t acked,
                         unsigned *unanswered)
{
    while (*sent < size && *sent - acked < FARM_WIRE_WINDOW) {
        Farm__Envelope env = FARM__ENVELOPE__INIT;
        Farm__ContextChunk chunk = FARM__CONTEXT_CHUNK__INIT;
        ssize_t n = pread(fd, buf, FARM_WIRE_CHUNK, (off_t)*sent);
        int rc;

        if (n <= 0)
            return farm_error_set(FARM_EIO, "cannot read %s at %llu", tar,
                                  (unsigned long long)*sent);
        chunk.digest = (char *)digest;
        chunk.offset = *sent;
        chunk.total = size;
        chunk.data.data = (uint8_t *)buf;
        chunk.data.len = (size_t)n;
        env.body_case = FARM__ENVELOPE__BODY_CONTEXT_CHUNK;
        env.context_chunk = &chunk;
        if ((rc = farmctl_client_send(cl, &env)) < 0)
            return rc;
        *sent += (uint64_t)n;
        (*unanswered)++;
    }
    return 0;
}

static int s_offer(farmctl_client_t *cl, const char *digest, uint64_t size)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__ContextOffer offer = FARM__CONTEXT_OFFER__INIT;

    offer.digest = (char *)digest;
    offer.size = size;
    env.body_case = FARM__ENVELOPE__BODY_CONTEXT_OFFER;
    env.context_offer = &offer;
    return farmctl_client_send(cl, &env);
}

/* Before offering again: 100 ms doubling up to 3.2 s, each between half and all of it so
 * that clients told at once do not offer again in step. */
static void s_upload_pause(unsigned attempt)
{
    long ms = (long)UPLOAD_PAUSE_MS << (attempt <= 6 ? attempt - 1 : 5);
    struct timespec ts;

    ms = ms / 2 + (long)(((unsigned)getpid() * 2654435761u + attempt * 40503u) %
                         (unsigned)(ms / 2 + 1));
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Offers the context and sends what the coordinator lacks. An answer with retry set (the
 * upload was replaced or expired, another submit of this client finished it, the
 * coordinator receives too many at once) is not a failure: once the chunks in flight are
 * answered, farmctl pauses and offers again, at most UPLOAD_OFFERS times. */
static int s_upload(farmctl_client_t *cl, const char *tar, const char *digest, uint64_t size,
                    const submit_opts_t *o)
{
    Farm__Envelope *reply = NULL;
    char *buf = NULL;
    int fd = -1, rc, uploading = 0, again = 0, sent_any = 0;
    unsigned offers = 1, unanswered = 1;
    uint64_t sent = 0, acked = 0;
    s_wait_t w;

    s_wait_init(&w, cl);
    if ((rc = s_offer(cl, digest, size)) < 0)
        return rc;
    for (;;) {
        const Farm__ContextStatus *st;

        farm_wire_free(&reply);
        rc = s_wait_next(cl, o, &w, &reply, "during the upload; offering the context again "
                         "when it is back");
        if (rc == S_WAIT_MORE)
            continue;
        if (rc == S_WAIT_RESEND) {
            if ((rc = s_offer(cl, digest, size)) < 0)
                goto done;
            unanswered = 1;
            again = uploading = 0;
            continue;
        }
        if (rc < 0)
            goto done;
        if (reply->body_case == FARM__ENVELOPE__BODY_HEARTBEAT)
            continue;
        if (reply->body_case == FARM__ENVELOPE__BODY_REFUSED) {
            /* a role or quota refusal: the coordinator's words, shown inert */
            char why[1024];
            farm_text_inert(why, sizeof why, reply->refused->reason);
            rc = farm_error_set(FARM_EAUTH, "refused: %s", why);
            goto done;
        }
        if (reply->body_case != FARM__ENVELOPE__BODY_CONTEXT_STATUS) {
            rc = farm_error_set(FARM_EINVALID, "unexpected answer to a context upload");
            goto done;
        }
        st = reply->context_status;
        if (unanswered)
            unanswered--;
        if (st->have) {
            farmctl_progress_note(o->pg, "#context %s %s", digest,
                                  sent_any ? "uploaded"
                                           : "already on the coordinator (not sent again)");
            rc = 0;
            goto done;
        }
        if (st->error[0] && !again) {
            char why[1024];
            farm_text_inert(why, sizeof why, st->error);
            if (!st->retry) {
                rc = farm_error_set(FARM_ERROR, "context upload refused: %s", why);
                goto done;
            }
            if (offers >= UPLOAD_OFFERS) {
                rc = farm_error_set(FARM_ERROR, "context upload refused: %s (offered %u "
                                    "times; submit again later)", why, offers);
                goto done;
            }
            farmctl_progress_note(o->pg, "#context %s offered again: %s", digest, why);
            again = 1;
        }
        if (again) {
            /* the answers to chunks still in flight are of the upload that is gone */
            if (unanswered)
                continue;
            s_upload_pause(offers);
            if ((rc = s_offer(cl, digest, size)) < 0)
                goto done;
            offers++;
            unanswered = 1;
            again = uploading = 0;
            continue;
        }
        if (!uploading) {
            /* the coordinator lacks it: start where it says */
            if (fd < 0 && (fd = open(tar, O_RDONLY | O_CLOEXEC)) < 0) {
                rc = farm_error_set(FARM_EIO, "cannot read %s", tar);
                goto done;
            }
            if (!buf && !(buf = malloc(FARM_WIRE_CHUNK))) {
                rc = farm_error_set(FARM_ERROR, "out of memory");
                goto done;
            }
            uploading = 1;
            sent = acked = st->offset;
            if (!sent_any)
                farmctl_progress_note(o->pg, "#context %s uploading %llu bytes", digest,
                                      (unsigned long long)size);
            sent_any = 1;
        } else if (st->offset > acked) {
            /* another submit of this client sends the same upload: skip what it sent */
            acked = st->offset;
            if (sent < acked)
                sent = acked;
        }
        if ((rc = s_upload_pump(cl, fd, buf, tar, digest, size, &sent, acked, &unanswered)) < 0)
            goto done;
    }
done:
    farm_wire_free(&reply);
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

static int s_submit_answer(farmctl_client_t *cl, submit_opts_t *o, Farm__Envelope *env);

static int s_submit(farmctl_client_t *cl, submit_opts_t *o, const char *digest,
                    uint64_t size, const char *dockerfile)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Submit s = FARM__SUBMIT__INIT;
    Farm__KeyValue kvs[FARM_BUILD_ARGS_MAX], *kvp[FARM_BUILD_ARGS_MAX];
    Farm__RegistryCredential creds[FARM_CREDENTIALS_MAX], *credp[FARM_CREDENTIALS_MAX];
    Farm__BuildFlags flags;
    farm_buildflags_wire_t fw;
    int rc;

    for (size_t i = 0; i < o->n_args; i++) {
        farm__key_value__init(&kvs[i]);
        kvs[i].key = o->args[i].key;
        kvs[i].value = o->args[i].value;
        kvp[i] = &kvs[i];
    }
    s.n_tags = o->n_tags;
    s.tags = (char **)o->tags;
    s.n_platforms = o->n_platforms;
    s.platforms = (char **)o->platforms;
    s.dockerfile = (char *)dockerfile;
    s.n_build_args = o->n_args;
    s.build_args = kvp;
    s.context_digest = (char *)digest;
    s.context_size = size;
    s.allow_partial = o->allow_partial;
    s.amend = o->amend;
    s.target_plain_http = o->target_plain_http;
    s.network = (char *)(o->network ? o->network : "");
    for (size_t i = 0; i < o->n_creds; i++) {
        farm__registry_credential__init(&creds[i]);
        creds[i].registry = o->cred_hosts[i];
        creds[i].username = o->creds[i].username;
        creds[i].secret = o->creds[i].secret;
        creds[i].identity_token = o->creds[i].identity_token;
        credp[i] = &creds[i];
    }
    s.n_credentials = o->n_creds;
    s.credentials = credp;
    if ((rc = farm_buildflags_to_wire(&flags, &fw, &o->flags)) < 0)
        return rc;
    s.flags = &flags;
    if (getrandom(o->token, sizeof o->token, 0) != (ssize_t)sizeof o->token)
        return farm_error_set(FARM_ERROR, "no randomness for the submit's token");
    s.submit_token.data = o->token;
    s.submit_token.len = sizeof o->token;
    env.body_case = FARM__ENVELOPE__BODY_SUBMIT;
    env.submit = &s;
    rc = s_submit_answer(cl, o, &env);
    farm_buildflags_wire_free(&fw);
    /* the logins and secrets stay in this process's memory only while it follows the
     * build: a coordinator that restarts asks for them again */
    if (rc < 0 || o->detach) {
        s_creds_clear(o);
        farm_buildflags_wipe_secrets(&o->flags);
    }
    return rc;
}

/* Sends the Submit and waits for its answer. A connection that drops meanwhile (a
 * coordinator restart) gets the same Submit again once it is back, up to --give-up-after:
 * its token makes a coordinator that took the first one answer with that build. */
static int s_submit_answer(farmctl_client_t *cl, submit_opts_t *o, Farm__Envelope *env)
{
    Farm__Envelope *reply = NULL;
    s_wait_t w;
    int rc;

    s_wait_init(&w, cl);
    if ((rc = farmctl_client_send(cl, env)) < 0)
        return rc;
    for (;;) {
        rc = s_wait_next(cl, o, &w, &reply, "before it answered the submit; sending it again "
                         "when it is back");
        if (rc == S_WAIT_MORE)
            continue;
        if (rc == S_WAIT_RESEND) {
            if ((rc = farmctl_client_send(cl, env)) < 0)
                return rc;
            continue;
        }
        if (rc < 0)
            return rc;
        if (reply->body_case == FARM__ENVELOPE__BODY_REFUSED) {
            char why[1024];
            farm_text_inert(why, sizeof why, reply->refused->reason);
            farm_error_set(FARM_EINVALID, "submit refused: %s", why);
            farm_wire_free(&reply);
            return FARM_EINVALID;
        }
        if (reply->body_case == FARM__ENVELOPE__BODY_ACCEPTED) {
            if (farm_str_fmt(o->build_id, sizeof o->build_id, "the build id",
                             "%s", reply->accepted->build_id) < 0) {
                farm_error_wrap(FARM_EINVALID, "the coordinator accepted the build with an id "
                                "farmctl cannot hold (at most %d bytes)", FARM_ID_MAX);
                farm_wire_free(&reply);
                return FARM_EINVALID;
            }
            /* shown and sent back in a Cancel: plain text only (an honest id is hex) */
            farm_text_inert(o->build_id, sizeof o->build_id, reply->accepted->build_id);
            farmctl_progress_note(o->pg, "#build %s accepted: %zu platform(s)", o->build_id,
                                  reply->accepted->n_platforms);
            o->heartbeat_ms = (int)reply->accepted->heartbeat_ms;
            farm_wire_free(&reply);
            return 0;
        }
        farm_wire_free(&reply);
    }
}

/* What one run of farmctl submit holds between its steps. */
typedef struct {
    farm_config_t *cfg;      /* farm.yaml, or NULL without one */
    char farm_path[PATH_MAX]; /* "" without one */
    char endpoint[512];
    char tar[32];            /* the packed context, a temporary file ... */
    int tar_made;            /* ... once created */
    char digest[FARM_DIGEST_STRLEN];
    uint64_t size;
    char dockerfile[PATH_MAX]; /* relative to the context */
    farmctl_client_t *cl;
} submit_run_t;

/* Each step returns GO_ON, or the exit status farmctl submit ends with (it said why):
 * 0 after --help, 2 for a usage error, 1 for anything else. */
#define GO_ON (-1)

/* The command line into o. */
static int s_parse_args(submit_opts_t *o, int argc, char **argv)
{
    enum { O_PLATFORM = 256, O_BUILD_ARG, O_FARM, O_COORD, O_META, O_PROGRESS, O_PARTIAL,
           O_NETWORK, O_TARGET, O_NO_CACHE, O_PULL, O_LABEL, O_ANNOTATION, O_SECRET, O_IIDFILE,
           O_CACHE_FROM, O_CACHE_TO, O_TRUST_COORD, O_DETACH, O_GIVE_UP, O_AMEND };
    static const struct option opts[] = {{"tag", required_argument, NULL, 't'},
                                         {"platform", required_argument, NULL, O_PLATFORM},
                                         {"file", required_argument, NULL, 'f'},
                                         {"build-arg", required_argument, NULL, O_BUILD_ARG},
                                         {"farm", required_argument, NULL, O_FARM},
                                         {"coordinator", required_argument, NULL, O_COORD},
                                         {"metadata-file", required_argument, NULL, O_META},
                                         {"progress", required_argument, NULL, O_PROGRESS},
                                         {"allow-partial", no_argument, NULL, O_PARTIAL},
                                         {"amend", no_argument, NULL, O_AMEND},
                                         {"network", required_argument, NULL, O_NETWORK},
                                         {"target", required_argument, NULL, O_TARGET},
                                         {"no-cache", no_argument, NULL, O_NO_CACHE},
                                         {"cache-from", required_argument, NULL, O_CACHE_FROM},
                                         {"cache-to", required_argument, NULL, O_CACHE_TO},
                                         {"pull", no_argument, NULL, O_PULL},
                                         {"label", required_argument, NULL, O_LABEL},
                                         {"annotation", required_argument, NULL, O_ANNOTATION},
                                         {"secret", required_argument, NULL, O_SECRET},
                                         {"iidfile", required_argument, NULL, O_IIDFILE},
                                         {"trust-repo-coordinator", no_argument, NULL,
                                          O_TRUST_COORD},
                                         {"detach", no_argument, NULL, O_DETACH},
                                         {"give-up-after", required_argument, NULL, O_GIVE_UP},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c, none = 0;
    struct stat st;

    optind = 1;
    while ((c = getopt_long(argc, argv, "t:f:qh", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (o->n_tags == FARM_TAGS_MAX) {
                fprintf(stderr, "farmctl submit: too many -t (at most %d)\n", FARM_TAGS_MAX);
                return 2;
            }
            o->tags[o->n_tags++] = optarg;
            break;
        case 'f': o->dockerfile = optarg; o->dockerfile_cli = 1; break;
        case O_PLATFORM:
            if (s_add_platforms(o, optarg) < 0) {
                fprintf(stderr, "farmctl submit: --platform: %s\n", farm_error_last());
                return 2;
            }
            break;
        case O_BUILD_ARG:
            if (s_cli_arg(o, optarg) < 0) {
                fprintf(stderr, "farmctl submit: %s\n", farm_error_last());
                return 2;
            }
            break;
        case O_FARM: o->farm_file = optarg; break;
        case O_COORD: o->coordinator = optarg; break;
        case O_META: o->metadata_file = optarg; break;
        case O_PARTIAL: o->allow_partial = 1; break;
        case O_AMEND: o->amend = 1; break;
        case O_NETWORK:
            if (farm_build_network_parse(optarg, &none) < 0) {
                fprintf(stderr, "farmctl submit: --network wants default or none: %s\n",
                        farm_error_last());
                return 2;
            }
            o->network = optarg;
            break;
        case O_PROGRESS:
            if (farmctl_parse_progress(&o->progress, "submit", optarg) < 0)
                return 2;
            break;
        case O_DETACH: o->detach = 1; break;
        case O_GIVE_UP:
            if (farmctl_parse_give_up(&o->give_up_ms, "submit", optarg) < 0)
                return 2;
            break;
        case O_TARGET: o->target = optarg; break;
        case O_NO_CACHE: o->no_cache = 1; break;
        case O_CACHE_FROM: o->cache_from = optarg; break;
        case O_CACHE_TO: o->cache_to = optarg; break;
        case O_PULL: o->pull = 1; break;
        case O_IIDFILE: o->iidfile = optarg; break;
        case O_TRUST_COORD: o->trust_repo_coordinator = 1; break;
        case 'q': o->progress = FARMCTL_PROGRESS_QUIET; break;
        case O_LABEL:
        case O_ANNOTATION:
        case O_SECRET:
            if ((c == O_LABEL && s_cli_spec(o->labels, &o->n_labels, FARM_LABELS_MAX, optarg,
                                            "--label", farm_buildflags_label_spec) < 0) ||
                (c == O_ANNOTATION &&
                 s_cli_spec(o->annotations, &o->n_annotations, FARM_ANNOTATIONS_MAX, optarg,
                            "--annotation", farm_buildflags_annotation_spec) < 0) ||
                (c == O_SECRET && s_cli_secret(o, optarg) < 0)) {
                fprintf(stderr, "farmctl submit: %s\n", farm_error_last());
                return 2;
            }
            break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind < argc)
        o->context = argv[optind++];
    if (optind < argc) {
        s_usage(stderr);
        return 2;
    }
    /* the platforms to rebuild are the user's word, never farm.yaml's default list */
    if (o->amend && o->n_platforms == 0) {
        fprintf(stderr, "farmctl submit: --amend rebuilds only the platforms you name and "
                        "keeps the others of the index under the first -t: pass --platform P\n");
        return 2;
    }
    if (o->amend && o->allow_partial) {
        fprintf(stderr, "farmctl submit: --amend and --allow-partial together would drop a "
                        "platform that failed from the amended index; drop one of them\n");
        return 2;
    }
    if (stat(o->context, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "farmctl submit: context %s is not a directory\n", o->context);
        return 2;
    }
    return GO_ON;
}

/* farm.yaml: --farm, else ./farm.yaml, else CONTEXT/farm.yaml; none is fine. */
static int s_load_farm(submit_run_t *r, const submit_opts_t *o)
{
    farm_diag_t diags = {0};
    int rc = 0;

    r->farm_path[0] = '\0';
    if (o->farm_file)
        rc = farm_path_join(r->farm_path, sizeof r->farm_path, o->farm_file, NULL);
    else if (access("farm.yaml", R_OK) == 0)
        rc = farm_path_join(r->farm_path, sizeof r->farm_path, "farm.yaml", NULL);
    else if ((rc = farm_path_join(r->farm_path, sizeof r->farm_path, o->context,
                                  "farm.yaml")) == 0 &&
             access(r->farm_path, R_OK) != 0)
        r->farm_path[0] = '\0';
    if (rc < 0) {
        fprintf(stderr, "farmctl submit: farm.yaml: %s\n", farm_error_last());
        return 2;
    }
    if (r->farm_path[0] && farm_config_load(&r->cfg, r->farm_path, &diags) < 0) {
        for (size_t i = 0; i < diags.n; i++)
            fprintf(stderr, "%s\n", diags.items[i]);
        if (!diags.n)
            fprintf(stderr, "%s\n", farm_error_last());
        fprintf(stderr, "farmctl submit: fix %s first (farmctl validate %s)\n", r->farm_path,
                r->farm_path);
        farm_diag_clear(&diags);
        return 1;
    }
    return GO_ON;
}

/* farm.yaml's build: section fills in what the command line did not give. */
static int s_apply_build_section(submit_opts_t *o, const submit_run_t *r)
{
    const farm_config_t *cfg = r->cfg;
    size_t n_cli_platforms = o->n_platforms;

    if (cfg && cfg->build.present) {
        if (o->n_tags == 0 && cfg->build.n_tags > FARM_TAGS_MAX) {
            fprintf(stderr, "farmctl submit: %s: too many build.tags (at most %d)\n",
                    r->farm_path, FARM_TAGS_MAX);
            return 2;
        }
        if (o->n_tags == 0)
            for (size_t i = 0; i < cfg->build.n_tags; i++)
                o->tags[o->n_tags++] = cfg->build.tags[i];
        for (size_t i = 0; n_cli_platforms == 0 && i < cfg->build.n_platforms; i++)
            if (s_add_platforms(o, cfg->build.platforms[i]) < 0) {
                fprintf(stderr, "farmctl submit: %s: build.platforms: %s\n", r->farm_path,
                        farm_error_last());
                return 2;
            }
        if (!o->dockerfile)
            o->dockerfile = cfg->build.dockerfile;
        if (!o->network && cfg->build.network_none)
            o->network = "none";
        for (size_t i = 0; i < cfg->build.n_args; i++)
            if (s_set_arg(o, cfg->build.args[i].key, cfg->build.args[i].value, 0) < 0) {
                fprintf(stderr, "farmctl submit: %s: build.args: %s\n", r->farm_path,
                        farm_error_last());
                return 2;
            }
    }
    if (s_flags(o, cfg, r->farm_path[0] ? r->farm_path : NULL) < 0) {
        fprintf(stderr, "farmctl submit: %s\n", farm_error_last());
        return 2;
    }
    return GO_ON;
}

/* What the build asks for, judged before anything is packed or sent: its tags and
 * platforms, the Dockerfile, and the coordinator that would get the logins. */
static int s_check_request(submit_run_t *r, const submit_opts_t *o)
{
    const farm_config_t *cfg = r->cfg;
    char ckey[FARM_KEY_Z85_LEN + 1], ckey_from[FARM_PATH_MAX + 64];

    if (o->n_tags == 0) {
        fprintf(stderr, "farmctl submit: no tag: pass -t REGISTRY/REPO:TAG or set build.tags in "
                        "farm.yaml\n");
        return 2;
    }
    for (size_t i = 0; i < o->n_tags; i++) {
        farm_reference_t ref;
        char full[FARM_REFERENCE_MAX + 1];
        if (strlen(o->tags[i]) > FARM_REFERENCE_MAX) {
            fprintf(stderr, "farmctl submit: -t: the reference \"%.60s...\" is %zu bytes; farm "
                            "accepts at most %d\n", o->tags[i], strlen(o->tags[i]),
                    FARM_REFERENCE_MAX);
            return 2;
        }
        if (farm_reference_parse(&ref, o->tags[i]) < 0 ||
            farm_reference_format(full, sizeof full, &ref) < 0) {
            fprintf(stderr, "farmctl submit: -t: %s\n", farm_error_last());
            return 2;
        }
    }
    if (o->n_platforms == 0) {
        fprintf(stderr, "farmctl submit: no platform: pass --platform or set build.platforms in "
                        "farm.yaml\n");
        return 2;
    }
    /* refuse what the farm cannot build before anything is packed or sent */
    for (size_t i = 0; cfg && cfg->n_platforms && i < o->n_platforms; i++) {
        if (!farm_config_platform(cfg, o->platforms[i])) {
            fprintf(stderr, "farmctl submit: platform %s is not served by this farm (%s maps "
                            "no nodes to it)\n", o->platforms[i], r->farm_path);
            return 1;
        }
    }
    if (s_dockerfile_rel(r->dockerfile, sizeof r->dockerfile, o->context, o->dockerfile,
                         o->dockerfile_cli) < 0) {
        fprintf(stderr, "farmctl submit: %s\n", farm_error_last());
        return 2;
    }
    /* refused here, before anything is packed, by the rule every command follows */
    if (cfg && farmctl_coordinator_key(ckey, ckey_from, sizeof ckey_from, cfg,
                                       o->trust_repo_coordinator) < 0) {
        fprintf(stderr, "farmctl submit: %s\n", farm_error_last());
        return 1;
    }
    if (farmctl_endpoint(r->endpoint, sizeof r->endpoint, o->coordinator, cfg) ==
        FARM_ENOTFOUND) {
        fprintf(stderr, "farmctl submit: no coordinator: pass --coordinator, set "
                        "FARM_COORDINATOR, or set coordinator.clients in farm.yaml\n");
        return 2;
    } else if (!r->endpoint[0]) {
        fprintf(stderr, "farmctl submit: %s\n", farm_error_last());
        return 2;
    }
    return GO_ON;
}

/* The context packed into a temporary tar (its digest and size), within farm's limit;
 * the progress display starts here. */
static int s_pack(submit_run_t *r, submit_opts_t *o)
{
    int fd;

    snprintf(r->tar, sizeof r->tar, "/tmp/farmctl-context-XXXXXX");
    if ((fd = mkstemp(r->tar)) < 0) {
        fprintf(stderr, "farmctl submit: cannot create a temporary file in /tmp\n");
        return 1;
    }
    close(fd);
    r->tar_made = 1;
    if (farm_context_pack(r->digest, &r->size, o->context, r->dockerfile, r->tar) < 0) {
        fprintf(stderr, "farmctl submit: packing %s: %s\n", o->context, farm_error_last());
        return 1;
    }
    o->pg = farmctl_progress_new(o->progress, stderr);
    if (!o->pg) {
        fprintf(stderr, "farmctl submit: out of memory\n");
        return 1;
    }
    farmctl_progress_note(o->pg, "#context %s packed: %s (%llu bytes)", o->context, r->digest,
                          (unsigned long long)r->size);
    /* refused here, before a byte is sent, rather than by the coordinator mid-upload */
    if (r->size > FARM_CONTEXT_MAX) {
        fprintf(stderr, "farmctl submit: the context %s packs to %llu bytes (%.1f GiB); farm "
                        "accepts at most " FARM_CONTEXT_MAX_TEXT ": leave out what the build "
                        "does not need with a .dockerignore in %s\n", o->context,
                (unsigned long long)r->size, (double)r->size / (1u << 30), o->context);
        return 1;
    }
    return GO_ON;
}

/* The connection, and what may go over it: logins and secrets only over a private one
 * (CURVE, or this machine); whether the target registry answers plain HTTP. */
static int s_connect(submit_run_t *r, submit_opts_t *o)
{
    farm_reference_t ref;

    r->cl = farmctl_client_new_for(r->endpoint, r->cfg, o->trust_repo_coordinator);
    if (!r->cl) {
        fprintf(stderr, "farmctl submit: %s\n", farm_error_last());
        return 1;
    }
    if (!farmctl_client_private(r->cl) && o->flags.n_secrets) {
        fprintf(stderr, "farmctl submit: %s is a plain (unencrypted) connection off this "
                        "machine, and build secrets are never sent over one: set "
                        "FARM_COORDINATOR_KEY (and FARM_KEY) for the farm's keys, use a "
                        "loopback address (tcp://127.0.0.1:PORT, ipc://PATH), or drop the "
                        "secrets\n", r->endpoint);
        return 1;
    } else if (!farmctl_client_private(r->cl))
        fprintf(stderr, "warning: %s is a plain (unencrypted) connection off this machine: "
                        "your registry logins are not sent; the build pushes anonymously\n",
                r->endpoint);
    else if (s_collect_creds(o, r->cfg) < 0) {
        fprintf(stderr, "farmctl submit: %s\n", farm_error_last());
        return 1;
    }
    for (size_t i = 0; i < o->n_creds; i++)
        farmctl_progress_note(o->pg, "#sending your login for %s with this build",
                              o->cred_hosts[i]);
    /* the coordinator judges it against its registries: (farmctl's farm.yaml may not be
     * the farm's) when the build is submitted, before any build work */
    if (o->n_tags && farm_reference_parse(&ref, o->tags[0]) == 0 &&
        farmctl_probe_plain_http(ref.registry)) {
        o->target_plain_http = 1;
        farmctl_progress_note(o->pg, "#registry %s answers plain HTTP (not TLS)", ref.registry);
    }
    return GO_ON;
}

/* The coordinator restarted without the build's logins and secrets: send them again,
 * as the Submit carried them. */
static int s_send_logins(void *arg, farmctl_client_t *cl, const char *build_id)
{
    submit_opts_t *o = arg;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Logins l = FARM__LOGINS__INIT;
    Farm__RegistryCredential creds[FARM_CREDENTIALS_MAX], *credp[FARM_CREDENTIALS_MAX];
    Farm__BuildFlags flags;
    farm_buildflags_wire_t fw;
    int rc;

    for (size_t i = 0; i < o->n_creds; i++) {
        farm__registry_credential__init(&creds[i]);
        creds[i].registry = o->cred_hosts[i];
        creds[i].username = o->creds[i].username;
        creds[i].secret = o->creds[i].secret;
        creds[i].identity_token = o->creds[i].identity_token;
        credp[i] = &creds[i];
    }
    if ((rc = farm_buildflags_to_wire(&flags, &fw, &o->flags)) < 0)
        return rc;
    l.build_id = (char *)build_id;
    l.submit_token.data = o->token;
    l.submit_token.len = sizeof o->token;
    l.n_credentials = o->n_creds;
    l.credentials = credp;
    l.n_secrets = flags.n_secrets;
    l.secrets = flags.secrets;
    env.body_case = FARM__ENVELOPE__BODY_LOGINS;
    env.logins = &l;
    rc = farmctl_client_send(cl, &env);
    farm_buildflags_wire_free(&fw);
    return rc;
}

/* Upload, submit, and follow the build to its end (or, --detach, say its id). */
static int s_run_build(submit_run_t *r, submit_opts_t *o)
{
    farm_reference_t ref;
    char repo[FARM_REFERENCE_MAX + 1];

    if (s_upload(r->cl, r->tar, r->digest, r->size, o) < 0 ||
        s_submit(r->cl, o, r->digest, r->size, r->dockerfile) < 0) {
        fprintf(stderr, "farmctl submit: %s\n", farm_error_last());
        return 1;
    }
    if (o->detach) {
        farmctl_progress_note(o->pg, "#detached: `farmctl wait %s` follows build %s",
                              o->build_id, o->build_id);
        printf("%s\n", o->build_id);
        fflush(stdout);
        return 0;
    }
    /* the user's own tag names the repository (checked by s_check_request) */
    if (farm_reference_parse(&ref, o->tags[0]) < 0)
        return 1;
    snprintf(repo, sizeof repo, "%s/%s", ref.registry, ref.repository);
    return farmctl_follow(&(farmctl_follow_t){
        .cl = r->cl, .pg = o->pg, .cmd = "submit", .build_id = o->build_id,
        .token = o->token, .token_len = sizeof o->token, .attached = 1,
        .heartbeat_ms = o->heartbeat_ms, .give_up_ms = o->give_up_ms,
        .cancel_on_interrupt = 1, .repository = repo, .platforms = o->platforms,
        .n_platforms = o->n_platforms, .metadata_file = o->metadata_file,
        .iidfile = o->iidfile, .send_logins = s_send_logins, .arg = o});
}

int farmctl_submit_main(int argc, char **argv)
{
    submit_opts_t o = {.context = ".", .give_up_ms = FARMCTL_GIVE_UP_MS};
    submit_run_t r = {0};
    int rc;

    if ((rc = s_parse_args(&o, argc, argv)) == GO_ON &&
        (rc = s_load_farm(&r, &o)) == GO_ON &&
        (rc = s_apply_build_section(&o, &r)) == GO_ON &&
        (rc = s_check_request(&r, &o)) == GO_ON &&
        (rc = s_pack(&r, &o)) == GO_ON &&
        (rc = s_connect(&r, &o)) == GO_ON)
        rc = s_run_build(&r, &o);
    s_creds_clear(&o);
    farm_buildflags_clear(&o.flags);
    explicit_bzero(o.token, sizeof o.token);
    if (r.tar_made)
        unlink(r.tar);
    farmctl_client_destroy(&r.cl);
    farmctl_progress_destroy(&o.pg);
    for (size_t i = 0; i < o.n_platforms; i++)
        free(o.platforms[i]);
    for (size_t i = 0; i < o.n_args; i++) {
        free(o.args[i].key);
        free(o.args[i].value);
    }
    farm_config_destroy(&r.cfg);
    return rc;
}
