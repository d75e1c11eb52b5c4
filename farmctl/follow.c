/* SPDX-License-Identifier: Apache-2.0 */
/* Following a build: its events shown as they come; a coordinator that goes silent or
 * drops the connection is followed again by build id (Follow) with backoff, until it
 * answers or --give-up-after passes; the BuildDone printed and written as asked. */
#include "farmctl/follow.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/limits.h"
#include "common/text.h"
#include "common/wire.h"

#define FOLLOW_PAUSE_MS 500      /* the first pause between Follows in an outage; doubles */
#define FOLLOW_PAUSE_MAX_MS 10000
#define REPLY_TIMEOUT_MS 15000   /* farmctl wait's first answer */

static volatile sig_atomic_t s_interrupted;

static void s_on_interrupt(int sig)
{
    (void)sig;
    s_interrupted++;
}

/* ------------------------------------------------------------------ the result */

/* Tags in several repositories: the coordinator names each tag in full. */
static int s_has_refs(const Farm__BuildDone *d)
{
    return d->n_tag_refs > 0 && d->n_tag_refs == d->n_tags;
}

/* The build that kept tag i from this one (a build submitted later pushed it), or NULL. */
static const char *s_kept_by(const Farm__BuildDone *d, size_t i)
{
    for (size_t k = 0; k < d->n_tags_kept; k++) {
        const Farm__TagKept *t = d->tags_kept[k];
        int same = s_has_refs(d) && t->ref && t->ref[0]
                       ? strcmp(t->ref, d->tag_refs[i]) == 0
                       : t->tag && strcmp(t->tag, d->tags[i]) == 0;
        if (same)
            return t->build_id ? t->build_id : "";
    }
    return NULL;
}

/* The image references the index was put under, "registry/repo:tag" joined by sep (with
 * none, "registry/repo@digest" for each repository); malloc'd, NULL when out of memory. */
static char *s_full_tags(const Farm__BuildDone *d, const char *repository, const char *sep)
{
    char *out = NULL;
    size_t len = 0, n = 0;
    FILE *f = open_memstream(&out, &len);

    if (!f)
        return NULL;
    for (size_t i = 0; i < d->n_tags; i++) {
        if (s_kept_by(d, i))
            continue;
        if (s_has_refs(d))
            fprintf(f, "%s%s", n++ ? sep : "", d->tag_refs[i]);
        else
            fprintf(f, "%s%s:%s", n++ ? sep : "", repository, d->tags[i]);
    }
    for (size_t k = 0; n == 0 && d->n_repositories > 1 && k < d->n_repositories; k++)
        fprintf(f, "%s%s@%s", k ? sep : "", d->repositories[k], d->index_digest);
    if (n == 0 && d->n_repositories <= 1)
        fprintf(f, "%s@%s", repository, d->index_digest);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static int s_write_metadata(const char *path, const Farm__BuildDone *d, const char *repository)
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
    if (d->n_repositories > 0) {
        json_t *repos = json_array();
        for (size_t i = 0; i < d->n_repositories; i++)
            json_array_append_new(repos, json_string(d->repositories[i]));
        json_object_set_new(root, "farm.repositories", repos);
    }
    /* as buildx writes it: the full references, comma-separated */
    if (!(full = s_full_tags(d, repository, ","))) {
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
    /* --amend: the images kept from the index amended, by platform */
    if (d->n_kept_children > 0) {
        json_t *kp = json_object();
        for (size_t i = 0; i < d->n_kept_children; i++)
            json_object_set_new(kp, d->kept_children[i]->platform,
                                json_string(d->kept_children[i]->digest));
        json_object_set_new(root, "farm.kept_platforms", kp);
    }
    json_object_set_new(root, "farm.platforms", plats);
    json_object_set_new(root, "farm.stitch_ms", json_integer((json_int_t)d->stitch_ms));
    /* tags left to a build submitted later: the index is there by digest only */
    json_t *kept = json_array();
    for (size_t i = 0; i < d->n_tags_kept; i++) {
        json_t *k = json_object();
        json_object_set_new(k, "tag", json_string(d->tags_kept[i]->tag));
        /* several repositories: which one's tag */
        if (d->n_repositories > 1 && d->tags_kept[i]->ref && d->tags_kept[i]->ref[0])
            json_object_set_new(k, "ref", json_string(d->tags_kept[i]->ref));
        json_object_set_new(k, "pushed_by", json_string(d->tags_kept[i]->build_id));
        json_array_append_new(kept, k);
    }
    json_object_set_new(root, "farm.tags_not_moved", kept);
    if (d->n_signed_identities) {
        json_t *ids = json_array();
        for (size_t i = 0; i < d->n_signed_identities; i++)
            json_array_append_new(ids, json_string(d->signed_identities[i]));
        json_object_set_new(root, "farm.signed_identities", ids);
        json_object_set_new(root, "farm.signing_key_id", json_string(d->signing_key_id));
        json_object_set_new(root, "farm.sign_ms", json_integer((json_int_t)d->sign_ms));
    }
    /* jansson escapes C0 controls; ENSURE_ASCII also writes C1 and all non-ASCII as \uXXXX,
     * so a `cat` of the file cannot drive a terminal either */
    rc = json_dump_file(root, path, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(root);
    return rc == 0 ? 0 : farm_error_set(FARM_EIO, "cannot write metadata file %s", path);
}

/* The tags a build submitted later had already pushed: not moved, and why. */
static void s_say_kept(const Farm__BuildDone *d)
{
    for (size_t i = 0; i < d->n_tags_kept; i++) {
        char tag[FARM_REFERENCE_MAX + 1], id[FARM_ID_MAX + 1];
        const char *ref = d->tags_kept[i]->ref;
        farm_text_inert(tag, sizeof tag,
                        d->n_repositories > 1 && ref && ref[0] ? ref : d->tags_kept[i]->tag);
        farm_text_inert(id, sizeof id, d->tags_kept[i]->build_id);
        fprintf(stderr, "tag %s not moved: build %s (submitted later) already pushed it (this "
                "build's index is still in the repository, by digest)\n", tag, id);
    }
}

/* The sigstore signatures the coordinator pushed beside the index (its signing key). */
static void s_say_signed(const farmctl_follow_t *f, const Farm__BuildDone *d)
{
    char key[FARM_DIGEST_STRLEN];

    if (!d->n_signed_identities)
        return;
    farm_text_inert(key, sizeof key, d->signing_key_id);
    for (size_t i = 0; i < d->n_signed_identities; i++) {
        char *id = farm_text_inert_dup(d->signed_identities[i]);
        farmctl_progress_note(f->pg, "#signed %s (the index and %u manifest(s) it lists) with "
                              "key %s, in %llu ms", id ? id : "?",
                              d->signed_manifests ? d->signed_manifests - 1 : 0, key,
                              (unsigned long long)d->sign_ms);
        free(id);
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

/* The build's end: what it pushed (or why it failed), the files asked for, the digest on
 * stdout. The exit status. */
static int s_done(const farmctl_follow_t *f, const Farm__BuildDone *d)
{
    char repo[512], *tags, *shown;

    farmctl_progress_finish(f->pg);
    if (!d->ok || !farm_digest_valid(d->index_digest)) {
        /* the coordinator's words are shown inert; stdout gets only a real digest */
        char id[FARM_ID_MAX + 1], *why = farm_text_inert_lines_dup(d->error);
        farm_text_inert(id, sizeof id, d->build_id);
        fprintf(stderr, "error: build %s failed: %s\n", id,
                d->ok ? "the coordinator reported an index digest that is not "
                        "sha256:<64 hex>"
                      : why ? why : "(out of memory)");
        free(why);
        return 1;
    }
    /* the user's own tags name the repository; farmctl wait has the coordinator's word */
    snprintf(repo, sizeof repo, "%s", f->repository ? f->repository : d->repository);
    tags = s_full_tags(d, repo, ", ");
    /* each peer field inert on its own: a trailing ESC cannot join what follows */
    for (size_t i = 0; i < d->n_children; i++) {
        char plat[128], node[FARM_NAME_MAX + 1], digest[FARM_DIGEST_STRLEN];
        farm_text_inert(plat, sizeof plat, d->children[i]->platform);
        farm_text_inert(node, sizeof node, i < d->n_child_nodes ? d->child_nodes[i] : "-");
        farm_text_inert(digest, sizeof digest, d->children[i]->digest);
        farmctl_progress_note(f->pg, "[%s %s] %s%s", plat, node, digest,
                              i < d->n_child_warm && d->child_warm[i] ? " (warm)" : "");
    }
    /* --amend: the platforms kept from the index amended */
    for (size_t i = 0; i < d->n_kept_children; i++) {
        char plat[128], digest[FARM_DIGEST_STRLEN];
        farm_text_inert(plat, sizeof plat, d->kept_children[i]->platform);
        farm_text_inert(digest, sizeof digest, d->kept_children[i]->digest);
        farmctl_progress_note(f->pg, "[%s kept] %s", plat, digest);
    }
    shown = tags ? farm_text_inert_dup(tags) : NULL;
    farmctl_progress_note(f->pg, "#index pushed to %s (stitched in %llu ms)",
                          shown ? shown : "(out of memory)", (unsigned long long)d->stitch_ms);
    free(shown);
    free(tags);
    if (d->n_repositories > 1) {
        farmctl_progress_note(f->pg, "#in %zu repositories:", d->n_repositories);
        for (size_t i = 0; i < d->n_repositories; i++) {
            char r[FARM_REFERENCE_MAX + 1];
            farm_text_inert(r, sizeof r, d->repositories[i]);
            farmctl_progress_note(f->pg, "#  %s@%s", r, d->index_digest);
        }
    }
    s_say_kept(d);
    s_say_signed(f, d);
    /* --allow-partial: say plainly which platforms the index lacks */
    for (size_t i = 0; i < f->n_platforms; i++) {
        int found = 0;
        for (size_t k = 0; k < d->n_children; k++)
            found |= strcmp(d->children[k]->platform, f->platforms[i]) == 0;
        if (!found)
            fprintf(stderr, "warning: the index lacks %s: it failed (--allow-partial)\n",
                    f->platforms[i]);
    }
    if (f->metadata_file && s_write_metadata(f->metadata_file, d, repo) < 0) {
        fprintf(stderr, "error: %s\n", farm_error_last());
        return 1;
    }
    if (f->iidfile && s_write_iidfile(f->iidfile, d->index_digest) < 0) {
        fprintf(stderr, "error: %s\n", farm_error_last());
        return 1;
    }
    printf("%s\n", d->index_digest);
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------ following */

static int s_send_follow(const farmctl_follow_t *f)
{
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    Farm__Follow fo = FARM__FOLLOW__INIT;

    fo.build_id = (char *)f->build_id;
    fo.submit_token.data = (uint8_t *)f->token;
    fo.submit_token.len = f->token ? f->token_len : 0;
    env.body_case = FARM__ENVELOPE__BODY_FOLLOW;
    env.follow = &fo;
    return farmctl_client_send(f->cl, &env);
}

/* Ctrl-C once: submit asks the coordinator to cancel and waits for its answer (at most
 * REPLY_TIMEOUT_MS: a coordinator that is gone cannot answer); wait leaves (the build
 * goes on). Twice: leave. 1 to leave now. */
static int s_interrupt(const farmctl_follow_t *f, long long *cancel_sent)
{
    if (!s_interrupted)
        return 0;
    if (*cancel_sent && farm_now_ms() - *cancel_sent > REPLY_TIMEOUT_MS) {
        fprintf(stderr, "farmctl %s: the coordinator at %s did not answer the cancel of build "
                        "%s within %d s; the build may go on there: `farmctl wait %s` follows "
                        "it\n", f->cmd, farmctl_client_endpoint(f->cl), f->build_id,
                REPLY_TIMEOUT_MS / 1000, f->build_id);
        return 1;
    }
    if (s_interrupted > 1 || !f->cancel_on_interrupt) {
        fprintf(stderr, "farmctl %s: interrupted; build %s goes on on the farm: `farmctl wait "
                        "%s` follows it\n", f->cmd, f->build_id, f->build_id);
        return 1;
    }
    if (!*cancel_sent) {
        Farm__Envelope env = FARM__ENVELOPE__INIT;
        Farm__Cancel c = FARM__CANCEL__INIT;
        c.build_id = (char *)f->build_id;
        env.body_case = FARM__ENVELOPE__BODY_CANCEL;
        env.cancel = &c;
        farmctl_progress_note(f->pg, "#cancelling build %s (Ctrl-C again to leave it running)",
                              f->build_id);
        farmctl_client_send(f->cl, &env);
        *cancel_sent = farm_now_ms();
    }
    return 0;
}

static void s_duration(char *out, size_t len, long long ms)
{
    if (ms >= 60000 && ms % 60000 == 0)
        snprintf(out, len, "%lld min", ms / 60000);
    else
        snprintf(out, len, "%lld s", ms / 1000);
}

/* What the coordinator says of the build now: its state, and whether it waits for
 * logins (sent when asked and farmctl has them). 0, or the exit status. */
static int s_following(const farmctl_follow_t *f, const Farm__Following *fo, int *waiting_said)
{
    if (fo->send_logins) {
        if (!f->send_logins) {
            fprintf(stderr, "farmctl %s: the coordinator asked for build %s's logins, which "
                            "only its farmctl submit holds\n", f->cmd, f->build_id);
            return 1;
        }
        farmctl_progress_note(f->pg, "#sending your registry logins and secrets for build %s "
                              "again (the coordinator restarted without them)", f->build_id);
        if (f->send_logins(f->arg, f->cl, f->build_id) < 0) {
            fprintf(stderr, "farmctl %s: %s\n", f->cmd, farm_error_last());
            return 1;
        }
    } else if (fo->waiting[0] && !*waiting_said) {
        char why[1024];
        farm_text_inert(why, sizeof why, fo->waiting);
        farmctl_progress_note(f->pg, "#%s", why);
        *waiting_said = 1;
    }
    return 0;
}

int farmctl_follow(const farmctl_follow_t *f)
{
    struct sigaction sa;
    Farm__Envelope *msg = NULL;
    const char *e = farmctl_client_endpoint(f->cl);
    long long now = farm_now_ms(), heard = now, lost_since = 0, next_follow = 0;
    long long pause = FOLLOW_PAUSE_MS, quiet, cancel_sent = 0;
    unsigned drops = farmctl_client_disconnects(f->cl);
    int rc = 1, attached = f->attached, lost = 0, waiting_said = 0;
    int heartbeat_ms = f->heartbeat_ms > 0 ? f->heartbeat_ms : 1000;
    char bound[32];

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    s_duration(bound, sizeof bound, f->give_up_ms);
    if (!attached && s_send_follow(f) < 0) {
        fprintf(stderr, "farmctl %s: %s\n", f->cmd, farm_error_last());
        return 1;
    }
    for (;;) {
        if (s_interrupt(f, &cancel_sent)) {
            rc = 1;
            goto done;
        }
        farm_wire_free(&msg);
        rc = farmctl_client_recv(f->cl, &msg, 250);
        now = farm_now_ms();
        if (rc == FARM_ERETRY) {
            unsigned d = farmctl_client_disconnects(f->cl);
            if (!attached) {
                /* the first answer: nothing answering is said as for any request */
                if (now - heard < REPLY_TIMEOUT_MS)
                    continue;
                farmctl_client_silent(f->cl, REPLY_TIMEOUT_MS);
                fprintf(stderr, "farmctl %s: %s\n", f->cmd, farm_error_last());
                rc = 1;
                goto done;
            }
            /* the coordinator beats every heartbeat while the build runs: three missed
             * (or a dropped connection) and farmctl says who it is again */
            quiet = 3LL * heartbeat_ms + 2000;
            if (!lost && (now - heard > quiet || d != drops)) {
                lost = 1;
                lost_since = now;
                next_follow = now;
                pause = FOLLOW_PAUSE_MS;
                farmctl_progress_note(f->pg, "#lost the coordinator at %s; reconnecting to "
                                      "follow build %s", e, f->build_id);
            }
            drops = d;
            if (lost && now - lost_since > f->give_up_ms) {
                farmctl_progress_finish(f->pg);
                fprintf(stderr, "farmctl %s: no answer from the coordinator at %s for %s "
                                "(--give-up-after); build %s may still be running there: "
                                "`farmctl wait %s` follows it\n", f->cmd, e, bound,
                        f->build_id, f->build_id);
                rc = FARMCTL_EXIT_UNKNOWN;
                goto done;
            }
            if (lost && now >= next_follow) {
                s_send_follow(f); /* a send that fails is tried again after the pause */
                next_follow = now + pause;
                pause = pause * 2 > FOLLOW_PAUSE_MAX_MS ? FOLLOW_PAUSE_MAX_MS : pause * 2;
            }
            continue;
        }
        if (rc < 0) {
            fprintf(stderr, "farmctl %s: %s\n", f->cmd, farm_error_last());
            rc = 1;
            goto done;
        }
        heard = now;
        switch (msg->body_case) {
        /* this connection follows one build: what comes is that build's (its id as the
         * coordinator spells it; farmctl holds an inert copy) */
        case FARM__ENVELOPE__BODY_EVENT:
            if (!f->only_platform || msg->event->kind != FARM__EVENT_KIND__EVENT_LOG ||
                !strcmp(msg->event->platform, f->only_platform))
                farmctl_progress_event(f->pg, msg->event);
            break;
        case FARM__ENVELOPE__BODY_FOLLOWING:
            if (msg->following->heartbeat_ms)
                heartbeat_ms = (int)msg->following->heartbeat_ms;
            if (!attached) {
                char st[32];
                farm_text_inert(st, sizeof st, msg->following->state);
                farmctl_progress_note(f->pg, "#following build %s (%s)", f->build_id, st);
            } else if (lost) {
                farmctl_progress_note(f->pg, "#following build %s again", f->build_id);
            }
            attached = 1;
            lost = 0;
            if ((rc = s_following(f, msg->following, &waiting_said)) != 0)
                goto done;
            break;
        case FARM__ENVELOPE__BODY_BUILD_DONE:
            rc = s_done(f, msg->build_done);
            goto done;
        case FARM__ENVELOPE__BODY_REFUSED: {
            /* an unknown build (a coordinator that restarted without it), another client's,
             * or this follower dropped: the coordinator's words, shown inert */
            char why[1024];
            farm_text_inert(why, sizeof why, msg->refused->reason);
            farmctl_progress_finish(f->pg);
            fprintf(stderr, "farmctl %s: the coordinator at %s refused to follow build %s: %s\n",
                    f->cmd, e, f->build_id, why);
            rc = 1;
            goto done;
        }
        default: break; /* heartbeats, answers to earlier requests */
        }
    }
done:
    farm_wire_free(&msg);
    return rc;
}

/* ------------------------------------------------------------------ farmctl wait */

static void s_wait_usage(FILE *f)
{
    fprintf(f, "usage: farmctl wait BUILD [options]   (alias: farmctl attach)\n"
               "  follows build BUILD (its id, from farmctl submit or farmctl builds) to its end,\n"
               "  prints its progress and the index digest, and exits as farmctl submit would:\n"
               "  0 pushed, 1 failed, 3 the coordinator was unreachable for --give-up-after\n"
               "      --farm FILE, --coordinator E, --trust-repo-coordinator   as farmctl builds\n"
               "      --progress MODE     auto, plain, tty or quiet (default auto)\n"
               "      --metadata-file F   write build metadata as JSON to F\n"
               "      --iidfile FILE      write the index digest to FILE\n"
               "      --give-up-after D   how long the coordinator may be unreachable (default\n"
               "                          15m; e.g. 90s, 1h)\n"
               "  -q, --quiet             no progress; only the digest on stdout\n");
}

int farmctl_parse_give_up(long long *out, const char *cmd, const char *arg)
{
    long ms = farm_config_parse_duration_ms(arg);
    if (ms <= 0) {
        fprintf(stderr, "farmctl %s: --give-up-after wants a duration such as 90s, 15m or 1h, "
                        "not \"%s\"\n", cmd, arg);
        return -1;
    }
    *out = ms;
    return 0;
}

int farmctl_parse_progress(farmctl_progress_mode_t *out, const char *cmd, const char *arg)
{
    static const struct {
        const char *name;
        farmctl_progress_mode_t mode;
    } modes[] = {{"auto", FARMCTL_PROGRESS_AUTO}, {"plain", FARMCTL_PROGRESS_PLAIN},
                 {"tty", FARMCTL_PROGRESS_TTY}, {"quiet", FARMCTL_PROGRESS_QUIET}};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(arg, modes[i].name) == 0) {
            *out = modes[i].mode;
            return 0;
        }
    fprintf(stderr, "farmctl %s: --progress wants auto, plain, tty or quiet\n", cmd);
    return -1;
}

int farmctl_wait_main(int argc, char **argv)
{
    enum { O_PROGRESS = FARMCTL_O_NEXT, O_META, O_IIDFILE, O_GIVE_UP };
    static const struct option opts[] = {FARMCTL_TARGET_OPTIONS,
                                         {"progress", required_argument, NULL, O_PROGRESS},
                                         {"metadata-file", required_argument, NULL, O_META},
                                         {"iidfile", required_argument, NULL, O_IIDFILE},
                                         {"give-up-after", required_argument, NULL, O_GIVE_UP},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    farmctl_target_t t = {0};
    farmctl_follow_t f = {.cmd = "wait", .give_up_ms = FARMCTL_GIVE_UP_MS};
    farmctl_progress_mode_t mode = FARMCTL_PROGRESS_AUTO;
    farm_config_t *cfg = NULL;
    const char *farm;
    char endpoint[512], id[FARM_ID_MAX + 1];
    int c, rc = 1;

    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        if ((c = farmctl_target_option(&t, c, optarg)) == 0)
            continue;
        switch (c) {
        case O_PROGRESS:
            if (farmctl_parse_progress(&mode, "wait", optarg) < 0)
                return 2;
            break;
        case O_META: f.metadata_file = optarg; break;
        case O_IIDFILE: f.iidfile = optarg; break;
        case O_GIVE_UP:
            if (farmctl_parse_give_up(&f.give_up_ms, "wait", optarg) < 0)
                return 2;
            break;
        case 'q': mode = FARMCTL_PROGRESS_QUIET; break;
        case 'h': s_wait_usage(stdout); return 0;
        default: s_wait_usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "farmctl wait: name one build id (farmctl builds lists them)\n");
        s_wait_usage(stderr);
        return 2;
    }
    if (strlen(argv[optind]) > FARM_ID_MAX || !argv[optind][0]) {
        fprintf(stderr, "farmctl wait: \"%.40s\" is not a build id (b<number>-<32 hex>, as "
                        "farmctl submit and farmctl builds print them)\n", argv[optind]);
        return 2;
    }
    farm_text_inert(id, sizeof id, argv[optind]);
    f.build_id = id;
    farm = t.farm;
    if (!farm && !t.coord && !getenv("FARM_COORDINATOR") && access("farm.yaml", R_OK) == 0)
        farm = "farm.yaml";
    if (farm && farm_config_load(&cfg, farm, NULL) < 0) {
        fprintf(stderr, "farmctl wait: %s\n", farm_error_last());
        return 1;
    }
    if (farmctl_endpoint(endpoint, sizeof endpoint, t.coord, cfg) == FARM_ENOTFOUND) {
        fprintf(stderr, "farmctl wait: no coordinator: pass --coordinator, set "
                        "FARM_COORDINATOR, or run where farm.yaml names coordinator.clients\n");
        goto done;
    }
    if (!endpoint[0] || !(f.cl = farmctl_client_new_for(endpoint, cfg, t.trust_repo_coordinator))) {
        fprintf(stderr, "farmctl wait: %s\n", farm_error_last());
        goto done;
    }
    if (!(f.pg = farmctl_progress_new(mode, stderr))) {
        fprintf(stderr, "farmctl wait: out of memory\n");
        goto done;
    }
    rc = farmctl_follow(&f);
done:
    farmctl_progress_destroy(&f.pg);
    farmctl_client_destroy(&f.cl);
    farm_config_destroy(&cfg);
    return rc;
}
