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
#include "farmctl/probe.h"
#include "farmctl/progress.h"

#define REPLY_TIMEOUT_MS 15000
#define SILENCE_TIMEOUT_MS 60000 /* the coordinator heartbeats running builds */
#define UPLOAD_OFFERS 10         /* offers of one context before farmctl gives up */
#define UPLOAD_PAUSE_MS 100      /* the first pause before offering again; doubles */

static volatile sig_atomic_t s_interrupted;

static void s_on_interrupt(int sig)
{
    (void)sig;
    s_interrupted++;
}

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

/* Which logins go with the build: the target registry's, the registry caches', and those
 * of the registries farm.yaml lists (where base images come from; farmctl cannot know a
 * Dockerfile's FROM registries in general). Nothing else in the docker config leaves this
 * machine. */
static int s_collect_creds(submit_opts_t *o, const farm_config_t *cfg)
{
    farm_reference_t ref;
    int rc;

    if (farm_reference_parse(&ref, o->tags[0]) < 0)
        return FARM_EINVALID;
    if ((rc = s_add_creds(o, ref.registry, 1)) < 0)
        return rc;
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
            "  -t, --tag REF           image reference to push the index to (repeatable)\n"
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

    if ((rc = s_offer(cl, digest, size)) < 0)
        return rc;
    for (;;) {
        const Farm__ContextStatus *st;

        farm_wire_free(&reply);
        rc = farmctl_client_recv(cl, &reply, REPLY_TIMEOUT_MS);
        if (rc == FARM_ERETRY) {
            rc = farmctl_client_silent(cl, REPLY_TIMEOUT_MS);
            goto done;
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

static char *s_full_tags(const Farm__BuildDone *d, const char *first_tag, const char *sep);

/* The build that kept tag from this one (a build submitted later pushed it), or NULL. */
static const char *s_kept_by(const Farm__BuildDone *d, const char *tag)
{
    for (size_t i = 0; i < d->n_tags_kept; i++)
        if (d->tags_kept[i]->tag && strcmp(d->tags_kept[i]->tag, tag) == 0)
            return d->tags_kept[i]->build_id ? d->tags_kept[i]->build_id : "";
    return NULL;
}

static int s_write_metadata(const char *path, const Farm__BuildDone *d, const char *first_tag)
{
    char *full = NULL;
    json_t *root = json_object(), *desc = json_object(), *plats = json_object();
    json_t *names = json_array();
    int rc;

    json_object_set_new(root, "containerimage.digest", json_string(d->index_digest));
    json_object_set_new(desc, "mediaType", json_string("application/vnd.oci.image.index.v1+json"));
    json_object_set_new(desc, "digest", json_string(d->index_digest));
    json_object_set_new(desc, "size", json_integer((json_int_t)d->index_size));
    json_object_set_new(root, "containerimage.descriptor", desc);
    for (size_t i = 0; i < d->n_tags; i++)
        json_array_append_new(names, json_string(d->tags[i]));
    json_object_set_new(root, "farm.tags", names);
    /* as buildx writes it: the full references, comma-separated */
    if (!(full = s_full_tags(d, first_tag, ","))) {
        json_decref(root);
        return farm_error_set(FARM_ERROR, "out of memory");
    }
    json_object_set_new(root, "image.name", json_string(full));
    free(full);
    json_object_set_new(root, "farm.build_id", json_string(d->build_id));
    for (size_t i = 0; i < d->n_children; i++) {
        json_t *p = json_object();
        json_object_set_new(p, "digest", json_string(d->children[i]->digest));
        json_object_set_new(p, "mediaType", json_string(d->children[i]->media_type));
        json_object_set_new(p, "size", json_integer((json_int_t)d->children[i]->size));
        json_object_set_new(p, "node",
                            json_string(i < d->n_child_nodes ? d->child_nodes[i] : ""));
        /* placed on a node that had built it (its layer cache), and what the cache gave */
        json_object_set_new(p, "warm", json_boolean(i < d->n_child_warm && d->child_warm[i]));
        json_object_set_new(p, "cache_hits", json_integer(i < d->n_child_cache_hits
                                                              ? d->child_cache_hits[i] : 0));
        json_object_set_new(p, "steps", json_integer(i < d->n_child_steps ? d->child_steps[i]
                                                                            : 0));
        json_object_set_new(plats, d->children[i]->platform, p);
    }
    json_object_set_new(root, "farm.platforms", plats);
    json_object_set_new(root, "farm.stitch_ms", json_integer((json_int_t)d->stitch_ms));
    /* tags left to a build submitted later: the index is there by digest only */
    json_t *kept = json_array();
    for (size_t i = 0; i < d->n_tags_kept; i++) {
        json_t *k = json_object();
        json_object_set_new(k, "tag", json_string(d->tags_kept[i]->tag));
        json_object_set_new(k, "pushed_by", json_string(d->tags_kept[i]->build_id));
        json_array_append_new(kept, k);
    }
    json_object_set_new(root, "farm.tags_not_moved", kept);
    /* jansson escapes C0 controls; ENSURE_ASCII also writes C1 and all non-ASCII as \uXXXX,
     * so a `cat` of the file cannot drive a terminal either */
    rc = json_dump_file(root, path, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(root);
    return rc == 0 ? 0 : farm_error_set(FARM_EIO, "cannot write metadata file %s", path);
}

/* Builds' image references are full: "registry/repo:tag", joined by sep; malloc'd
 * (every tag the index was put under, whatever their number and length; with none,
 * "registry/repo@digest"), NULL on out of memory. */
static char *s_full_tags(const Farm__BuildDone *d, const char *first_tag, const char *sep)
{
    farm_reference_t ref;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);

    if (!f)
        return NULL;
    if (farm_reference_parse(&ref, first_tag) == 0) {
        size_t n = 0;
        for (size_t i = 0; i < d->n_tags; i++)
            if (!s_kept_by(d, d->tags[i]))
                fprintf(f, "%s%s/%s:%s", n++ ? sep : "", ref.registry, ref.repository,
                        d->tags[i]);
        if (n == 0)
            fprintf(f, "%s/%s@%s", ref.registry, ref.repository, d->index_digest);
    }
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* The tags a build submitted later had already pushed: not moved, and why. */
static void s_say_kept(const Farm__BuildDone *d)
{
    for (size_t i = 0; i < d->n_tags_kept; i++) {
        char tag[FARM_REFERENCE_MAX + 1], id[FARM_ID_MAX + 1];
        farm_text_inert(tag, sizeof tag, d->tags_kept[i]->tag);
        farm_text_inert(id, sizeof id, d->tags_kept[i]->build_id);
        fprintf(stderr, "tag %s not moved: build %s (submitted later) already pushed it (this "
                "build's index is still in the repository, by digest)\n", tag, id);
    }
}

/* --iidfile: the index digest, as buildx writes an image id (no newline). */
static int s_write_iidfile(const char *path, const char *digest)
{
    FILE *f = fopen(path, "we");
    int ok = f && fputs(digest, f) >= 0;

    if (f && fclose(f) != 0)
        ok = 0;
    return ok ? 0 : farm_error_set(FARM_EIO, "cannot write --iidfile %s: %s", path,
                                   strerror(errno));
}

/* Ctrl-C once: ask the coordinator to cancel and wait for its answer; twice: leave. */
static int s_check_interrupt(farmctl_client_t *cl, const submit_opts_t *o, int *cancel_sent)
{
    if (!s_interrupted)
        return 0;
    if (s_interrupted > 1)
        return farm_error_set(FARM_ERROR, "interrupted; build %s may go on on the farm",
                              o->build_id);
    if (!*cancel_sent) {
        Farm__Envelope env = FARM__ENVELOPE__INIT;
        Farm__Cancel c = FARM__CANCEL__INIT;
        c.build_id = (char *)o->build_id;
        env.body_case = FARM__ENVELOPE__BODY_CANCEL;
        env.cancel = &c;
        farmctl_progress_note(o->pg, "#cancelling build %s (Ctrl-C again to leave it running)",
                              o->build_id);
        farmctl_client_send(cl, &env);
        *cancel_sent = 1;
    }
    return 0;
}

static int s_follow(farmctl_client_t *cl, const submit_opts_t *o)
{
    Farm__Envelope *msg = NULL;
    char *tags;
    long long last = farm_now_ms();
    int rc, cancel_sent = 0;

    for (;;) {
        if ((rc = s_check_interrupt(cl, o, &cancel_sent)) < 0)
            return rc;
        rc = farmctl_client_recv(cl, &msg, 250);
        if (rc == FARM_ERETRY) {
            /* until a client can reattach, say only what is known: a paused coordinator
             * may still finish the build, a restarted one has lost it */
            if (farm_now_ms() - last > SILENCE_TIMEOUT_MS)
                return farm_error_set(FARM_EIO, "no word from the coordinator at %s for %d s; "
                                      "build %s may still be running there or may have been "
                                      "lost with a restart; `farmctl builds` shows whether it "
                                      "is there", farmctl_client_endpoint(cl),
                                      SILENCE_TIMEOUT_MS / 1000, o->build_id);
            continue;
        }
        if (rc < 0)
            return rc;
        last = farm_now_ms();
        switch (msg->body_case) {
        case FARM__ENVELOPE__BODY_EVENT: farmctl_progress_event(o->pg, msg->event); break;
        case FARM__ENVELOPE__BODY_BUILD_DONE: {
            const Farm__BuildDone *d = msg->build_done;
            farmctl_progress_finish(o->pg);
            if (!d->ok || !farm_digest_valid(d->index_digest)) {
                /* the coordinator's words are shown inert; stdout gets only a real digest */
                char id[FARM_ID_MAX + 1], *why = farm_text_inert_lines_dup(d->error);
                farm_text_inert(id, sizeof id, d->build_id);
                fprintf(stderr, "error: build %s failed: %s\n", id,
                        d->ok ? "the coordinator reported an index digest that is not "
                                "sha256:<64 hex>"
                              : why ? why : "(out of memory)");
                free(why);
                farm_wire_free(&msg);
                return 1;
            }
            tags = s_full_tags(d, o->tags[0], ", ");
            /* each peer field inert on its own: a trailing ESC cannot join what follows */
            for (size_t i = 0; i < d->n_children; i++) {
                char plat[128], node[FARM_NAME_MAX + 1], digest[FARM_DIGEST_STRLEN];
                farm_text_inert(plat, sizeof plat, d->children[i]->platform);
                farm_text_inert(node, sizeof node,
                                i < d->n_child_nodes ? d->child_nodes[i] : "-");
                farm_text_inert(digest, sizeof digest, d->children[i]->digest);
                farmctl_progress_note(o->pg, "[%s %s] %s%s", plat, node, digest,
                                      i < d->n_child_warm && d->child_warm[i] ? " (warm)" : "");
            }
            char *shown = tags ? farm_text_inert_dup(tags) : NULL;
            farmctl_progress_note(o->pg, "#index pushed to %s (stitched in %llu ms)",
                                  shown ? shown : "(out of memory)",
                                  (unsigned long long)d->stitch_ms);
            free(shown);
            free(tags);
            s_say_kept(d);
            /* --allow-partial: say plainly which platforms the index lacks */
            for (size_t i = 0; i < o->n_platforms; i++) {
                int found = 0;
                for (size_t k = 0; k < d->n_children; k++)
                    found |= strcmp(d->children[k]->platform, o->platforms[i]) == 0;
                if (!found)
                    fprintf(stderr, "warning: the index lacks %s: it failed (--allow-partial)\n",
                            o->platforms[i]);
            }
            if (o->metadata_file && s_write_metadata(o->metadata_file, d, o->tags[0]) < 0) {
                fprintf(stderr, "error: %s\n", farm_error_last());
                farm_wire_free(&msg);
                return 1;
            }
            if (o->iidfile && s_write_iidfile(o->iidfile, d->index_digest) < 0) {
                fprintf(stderr, "error: %s\n", farm_error_last());
                farm_wire_free(&msg);
                return 1;
            }
            printf("%s\n", d->index_digest);
            fflush(stdout);
            farm_wire_free(&msg);
            return 0;
        }
        default: break;
        }
        farm_wire_free(&msg);
    }
}

static int s_submit(farmctl_client_t *cl, submit_opts_t *o, const char *digest,
                    uint64_t size, const char *dockerfile)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT, *reply = NULL;
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
    env.body_case = FARM__ENVELOPE__BODY_SUBMIT;
    env.submit = &s;
    rc = farmctl_client_send(cl, &env);
    farm_buildflags_wire_free(&fw);
    s_creds_clear(o); /* sent (over CURVE on a keyed farm): farmctl needs them no more */
    farm_buildflags_wipe_secrets(&o->flags); /* likewise the build's secrets */
    if (rc < 0)
        return rc;
    for (;;) {
        rc = farmctl_client_recv(cl, &reply, REPLY_TIMEOUT_MS);
        if (rc == FARM_ERETRY)
            return farmctl_client_silent(cl, REPLY_TIMEOUT_MS);
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
           O_CACHE_FROM, O_CACHE_TO, O_TRUST_COORD };
    static const struct option opts[] = {{"tag", required_argument, NULL, 't'},
                                         {"platform", required_argument, NULL, O_PLATFORM},
                                         {"file", required_argument, NULL, 'f'},
                                         {"build-arg", required_argument, NULL, O_BUILD_ARG},
                                         {"farm", required_argument, NULL, O_FARM},
                                         {"coordinator", required_argument, NULL, O_COORD},
                                         {"metadata-file", required_argument, NULL, O_META},
                                         {"progress", required_argument, NULL, O_PROGRESS},
                                         {"allow-partial", no_argument, NULL, O_PARTIAL},
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
        case O_NETWORK:
            if (farm_build_network_parse(optarg, &none) < 0) {
                fprintf(stderr, "farmctl submit: --network wants default or none: %s\n",
                        farm_error_last());
                return 2;
            }
            o->network = optarg;
            break;
        case O_PROGRESS:
            if (strcmp(optarg, "quiet") == 0)
                o->progress = FARMCTL_PROGRESS_QUIET;
            else if (strcmp(optarg, "plain") == 0)
                o->progress = FARMCTL_PROGRESS_PLAIN;
            else if (strcmp(optarg, "tty") == 0)
                o->progress = FARMCTL_PROGRESS_TTY;
            else if (strcmp(optarg, "auto") == 0)
                o->progress = FARMCTL_PROGRESS_AUTO;
            else {
                fprintf(stderr, "farmctl submit: --progress wants auto, plain, tty or quiet\n");
                return 2;
            }
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

/* Upload, submit, and follow the build to its end. */
static int s_run_build(submit_run_t *r, submit_opts_t *o)
{
    struct sigaction sa;
    int rc;

    if (s_upload(r->cl, r->tar, r->digest, r->size, o) < 0 ||
        s_submit(r->cl, o, r->digest, r->size, r->dockerfile) < 0) {
        fprintf(stderr, "farmctl submit: %s\n", farm_error_last());
        return 1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = s_follow(r->cl, o);
    if (rc < 0) {
        fprintf(stderr, "farmctl submit: %s\n", farm_error_last());
        rc = 1;
    }
    return rc;
}

int farmctl_submit_main(int argc, char **argv)
{
    submit_opts_t o = {.context = "."};
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
