/* SPDX-License-Identifier: Apache-2.0 */
/* Builds: what a submit may ask for, how a build ends (failure with the log tail,
 * stitch when every job is done, allow_partial, cancel by its own client only), that
 * finished builds are freed later while their jobs stop counting, the bounded follower
 * list, and a build waiting for its submitter's logins (back, or failed after
 * queue_timeout). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/config.h"
#include "common/buildflags.h"
#include "common/error.h"
#include "coordinator/builds.h"
#include "coordinator/targets.h"
#include "coordinator/journal.h"
#include "coordinator/nodes.h"
#include "coordinator/scheduler.h"

#define DIGEST "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

typedef struct {
    farm_config_t *cfg;
    farm_nodes_t *nodes;
    farm_scheduler_t *s;
    farm_builds_t *b;
    int stitched, done, done_ok, cancels, assigns;
    char done_error[8192];
    char kinds[256]; /* one letter per event */
} fx_t;

/* as the coordinator does: the assignment is journaled before the node hears of it */
static void cb_assign(void *a, farm_job_t *j, farm_node_t *n)
{
    ((fx_t *)a)->assigns++;
    farm_builds_job_journal(((fx_t *)a)->b, j);
}
static void cb_cancel(void *a, farm_job_t *j, farm_node_t *n, const char *r) { ((fx_t *)a)->cancels++; }
static void cb_requeued(void *a, farm_job_t *j, const char *why)
{
    farm_builds_job_requeued(((fx_t *)a)->b, j, why);
}

static void cb_event(void *a, farm_build_t *b, const farm_job_t *j, farm_event_kind_t k,
                     const char *msg)
{
    fx_t *fx = a;
    size_t n = strlen(fx->kinds);
    if (n + 1 < sizeof fx->kinds)
        fx->kinds[n] = "?qwdlpLfvc"[k];
}
static void cb_stitch(void *a, farm_build_t *b) { ((fx_t *)a)->stitched++; }
static void cb_done(void *a, farm_build_t *b, int ok, const char *d, uint64_t size, const char *err)
{
    fx_t *fx = a;
    fx->done++;
    fx->done_ok = ok;
    snprintf(fx->done_error, sizeof fx->done_error, "%s", err ? err : "");
}

static const char *Y =
    "coordinator: {agents: 'tcp://127.0.0.1:1', clients: 'tcp://127.0.0.1:2'}\n"
    "platforms:\n  linux/amd64: [a]\n  linux/arm64: [b]\n"
    "nodes:\n  a: {slots: 2}\n  b: {slots: 2}\n"
    "registries:\n  'reg.local:5000': {insecure: true}\n";

static int s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    farm_scheduler_cbs_t scbs = {.assign = cb_assign, .cancel = cb_cancel};
    farm_builds_cbs_t bcbs = {cb_event, cb_stitch, cb_done};
    assert_int_equal(farm_config_parse(&fx->cfg, "t.yaml", Y, strlen(Y), NULL), 0);
    fx->nodes = farm_nodes_new(fx->cfg);
    fx->s = farm_scheduler_new(fx->cfg, &scbs, fx);
    fx->b = farm_builds_new(fx->cfg, fx->s, &bcbs, fx);
    assert_non_null(fx->b);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *fx = *state;
    farm_builds_destroy(&fx->b);
    farm_scheduler_destroy(&fx->s);
    farm_nodes_destroy(&fx->nodes);
    farm_config_destroy(&fx->cfg);
    free(fx);
    return 0;
}

static void s_up(fx_t *fx, const char *name, const char *plat)
{
    char *plats[] = {(char *)plat};
    farm_hello_t h = {.name = name, .platforms = plats, .n_platforms = 1, .version = FARM_VERSION,
                      .session = 7, .builder = "t"};
    farm_node_t *n;
    char reason[256];
    assert_true(farm_nodes_hello(fx->nodes, &n, &h, name, strlen(name), 0, reason, sizeof reason) >= 0);
    assert_int_equal(farm_scheduler_node_up(fx->s, n, 0), 0);
}

static int s_submit(fx_t *fx, farm_build_t **out, char *const *tags, size_t n_tags,
                    char *const *plats, size_t n_plats, const char *key, const char *client,
                    char *reason)
{
    const char *keys[] = {key}, *values[] = {"1"};
    farm_submit_t s = {.tags = tags, .n_tags = n_tags, .platforms = plats, .n_platforms = n_plats,
                       .arg_keys = keys, .arg_values = values, .n_args = key ? 1 : 0,
                       .context_digest = DIGEST, .context_stored = 1, .context_size = 10, .client = client,
                       .client_len = strlen(client)};
    return farm_builds_submit(fx->b, out, &s, 0, reason, 2048);
}

/* Tags in several repositories: one build, each tag's repository kept, the first tag's
 * the build's own; a tag named twice counts once; farm.yaml's insecure per registry. */
static void test_submit_several_repositories(void **state)
{
    fx_t *fx = *state;
    farm_build_t *b = NULL;
    char reason[2048];
    char *tags[] = {"reg.local:5000/team/app:1", "other.example:5001/b/c:1",
                    "reg.local:5000/team/app:latest", "reg.local:5000/team/mirror:1",
                    "other.example:5001/b/c:1"};

    assert_int_equal(s_submit(fx, &b, tags, 5, (char *[]){"linux/amd64"}, 1, NULL, "c1", reason),
                     0);
    assert_non_null(b);
    assert_string_equal(b->registry, "reg.local:5000");
    assert_string_equal(b->repository, "team/app");
    assert_int_equal(b->n_tags, 4);
    assert_int_equal(b->n_targets, 3);
    assert_string_equal(b->targets[1].registry, "other.example:5001");
    assert_string_equal(b->targets[1].repository, "b/c");
    assert_string_equal(b->targets[2].repository, "team/mirror");
    assert_int_equal(b->tag_target[0], 0);
    assert_int_equal(b->tag_target[1], 1);
    assert_int_equal(b->tag_target[2], 0);
    assert_int_equal(b->tag_target[3], 2);
    assert_string_equal(b->tags[1], "1");
    assert_string_equal(b->tag_refs[1], "other.example:5001/b/c:1");
    assert_string_equal(b->tag_refs[2], "reg.local:5000/team/app:latest");
    assert_string_equal(farm_targets_of(b, 3)->repository, "team/mirror");
}

static void test_submit_refusals(void **state)
{
    fx_t *fx = *state;
    farm_build_t *b = NULL;
    char reason[2048];
    char *tag[] = {"reg.local:5000/team/app:1"}, *two[] = {"reg.local:5000/team/app:1", "reg.local:5000/other/app:1"};
    char *amd[] = {"linux/amd64"}, *ppc[] = {"linux/ppc64le"};

    assert_int_equal(s_submit(fx, &b, tag, 0, amd, 1, NULL, "c1", reason), FARM_EINVALID);
    assert_non_null(strstr(reason, "no tag"));
    assert_int_equal(s_submit(fx, &b, tag, 1, amd, 1, "TARGETARCH", "c1", reason), FARM_EINVALID);
    assert_non_null(strstr(reason, "TARGETARCH is set by farm"));
    assert_int_equal(s_submit(fx, &b, tag, 1, amd, 1, "A=B", "c1", reason), FARM_EINVALID);
    {
        char *digest[] = {"reg.local:5000/team/app:1", "other.local/b@" DIGEST};
        assert_int_equal(s_submit(fx, &b, digest, 2, amd, 1, NULL, "c1", reason),
                         FARM_EINVALID);
        assert_non_null(strstr(reason, "must name a tag, not a digest"));
    }
    (void)two;
    {
        farm_submit_t s = {.tags = tag, .n_tags = 1, .platforms = amd, .n_platforms = 1,
                           .context_digest = DIGEST, .context_stored = 1, .context_size = 10,
                           .client = "c1", .client_len = 2, .network = "host"};
        assert_int_equal(farm_builds_submit(fx->b, &b, &s, 0, reason, sizeof reason),
                         FARM_EINVALID);
        assert_non_null(strstr(reason, "network \"host\" is not offered"));
    }
    assert_int_equal(s_submit(fx, &b, tag, 1, ppc, 1, NULL, "c1", reason), FARM_EINVALID);
    assert_non_null(strstr(reason, "linux/ppc64le is not served"));
    assert_non_null(strstr(reason, "linux/amd64, linux/arm64"));
    assert_null(b);
    assert_int_equal(farm_builds_active(fx->b), 0);
}

static void test_submit_records_jobs_and_insecure(void **state)
{
    fx_t *fx = *state;
    farm_build_t *b = NULL;
    char reason[2048];
    char *tag[] = {"reg.local:5000/team/app:1", "reg.local:5000/team/app:1", "reg.local:5000/team/app:latest"};
    char *plats[] = {"linux/amd64", "x86_64", "aarch64"};

    assert_int_equal(s_submit(fx, &b, tag, 3, plats, 3, "VERSION", "c1", reason), 0);
    assert_int_equal(b->n_jobs, 2); /* x86_64 is linux/amd64 again */
    assert_int_equal(b->n_tags, 2);
    assert_string_equal(b->jobs[1].platform, "linux/arm64");
    assert_string_equal(b->repository, "team/app");
    assert_true(b->insecure);
    assert_string_equal(b->dockerfile, "Dockerfile");
    assert_false(b->network_none);
    assert_true(farm_builds_context_in_use(fx->b, DIGEST));
    assert_ptr_equal(farm_builds_get(fx->b, b->id), b);
    {
        char *amd[] = {"linux/amd64"};
        farm_submit_t s = {.tags = tag, .n_tags = 1, .platforms = amd, .n_platforms = 1,
                           .context_digest = DIGEST, .context_stored = 1, .context_size = 10,
                           .client = "c2", .client_len = 2, .network = "none"};
        assert_int_equal(farm_builds_submit(fx->b, &b, &s, 0, reason, sizeof reason), 0);
        assert_true(b->network_none); /* sent to the agent in JobAssign.network_none */
    }
}

/* A registry the submitter found speaking plain HTTP: refused at once, with the farm.yaml
 * line to add, unless farm.yaml lists it insecure. */
static void test_plain_http_registry(void **state)
{
    fx_t *fx = *state;
    farm_build_t *b = NULL;
    char reason[2048];
    char *tls[] = {"tls.example:5000/team/app:1"}, *listed[] = {"reg.local:5000/team/app:1"};
    char *amd[] = {"linux/amd64"};
    farm_submit_t s = {.tags = tls, .n_tags = 1, .platforms = amd, .n_platforms = 1,
                       .context_digest = DIGEST, .context_stored = 1, .context_size = 10,
                       .client = "c1", .client_len = 2, .target_plain_http = 1};

    assert_int_equal(farm_builds_submit(fx->b, &b, &s, 0, reason, sizeof reason), FARM_EINVALID);
    assert_non_null(strstr(reason, "registry tls.example:5000 answers plain HTTP"));
    assert_non_null(strstr(reason, "registries: \"tls.example:5000\": {insecure: true}"));
    assert_null(b);
    assert_int_equal(farm_builds_active(fx->b), 0);
    s.tags = listed;
    assert_int_equal(farm_builds_submit(fx->b, &b, &s, 0, reason, sizeof reason), 0);
    assert_true(b->insecure);
}

static void test_failure_ends_build_with_tail(void **state)
{
    fx_t *fx = *state;
    farm_build_t *b = NULL;
    char reason[2048];
    char *tag[] = {"reg.local:5000/team/app:1"}, *plats[] = {"linux/amd64", "linux/arm64"};

    s_up(fx, "a", "linux/amd64");
    s_up(fx, "b", "linux/arm64");
    assert_int_equal(s_submit(fx, &b, tag, 1, plats, 2, NULL, "c1", reason), 0);
    farm_builds_start(fx->b, b, 0);
    assert_int_equal(farm_scheduler_dispatch(fx->s, 0), 2);
    farm_builds_job_log(fx->b, &b->jobs[1], "step 3: exit 1");
    farm_scheduler_release(fx->s, &b->jobs[1]);
    farm_builds_job_failed(fx->b, &b->jobs[1], 10, "RUN failed");
    assert_int_equal(fx->done, 1);
    assert_false(fx->done_ok);
    assert_non_null(strstr(fx->done_error, "linux/arm64 failed on node b: RUN failed"));
    assert_non_null(strstr(fx->done_error, "| step 3: exit 1"));
    /* the other platform is cancelled on its node, and nothing is stitched */
    assert_int_equal(fx->cancels, 1);
    assert_int_equal(b->jobs[0].state, FARM_JOB_CANCELLED);
    assert_int_equal(fx->stitched, 0);
    assert_false(farm_builds_context_in_use(fx->b, DIGEST));
    /* events: queued x2, dispatched is the coordinator's, log, failed */
    assert_string_equal(fx->kinds, "qqlf");
    /* kept a while for late results, then freed with its jobs */
    char id[64], job_id[64];
    snprintf(id, sizeof id, "%s", b->id);
    snprintf(job_id, sizeof job_id, "%s", b->jobs[0].id);
    farm_builds_reap(fx->b, 10 + 1000, 60000, NULL, NULL);
    assert_non_null(farm_builds_get(fx->b, id));
    assert_non_null(farm_scheduler_job(fx->s, job_id));
    farm_builds_reap(fx->b, 10 + 60001, 60000, NULL, NULL);
    assert_null(farm_builds_get(fx->b, id));
    assert_null(farm_scheduler_job(fx->s, job_id));
}

static void s_pushed(fx_t *fx, farm_job_t *j)
{
    farm_descriptor_t d = {.size = 5};
    snprintf(d.digest, sizeof d.digest, "%s", DIGEST);
    d.platform = j->plat;
    farm_scheduler_release(fx->s, j);
    farm_builds_job_pushed(fx->b, j, &d, 1, 1, 5);
}

static void test_all_pushed_stitches_then_finishes(void **state)
{
    fx_t *fx = *state;
    farm_build_t *b = NULL;
    char reason[2048];
    char *tag[] = {"reg.local:5000/team/app:1"}, *plats[] = {"linux/amd64", "linux/arm64"};

    s_up(fx, "a", "linux/amd64");
    s_up(fx, "b", "linux/arm64");
    assert_int_equal(s_submit(fx, &b, tag, 1, plats, 2, NULL, "c1", reason), 0);
    farm_builds_start(fx->b, b, 0);
    farm_scheduler_dispatch(fx->s, 0);
    s_pushed(fx, &b->jobs[0]);
    assert_int_equal(fx->stitched, 0);
    s_pushed(fx, &b->jobs[1]);
    assert_int_equal(fx->stitched, 1);
    assert_int_equal(b->state, FARM_BUILD_STITCHING);
    /* too late to cancel now */
    assert_int_equal(farm_builds_cancel(fx->b, b->id, "c1", 2, "", 0, 6), 0);
    assert_int_equal(b->state, FARM_BUILD_STITCHING);
    farm_builds_finish(fx->b, b, 1, DIGEST, 100, NULL, 7);
    assert_int_equal(fx->done, 1);
    assert_true(fx->done_ok);
    assert_int_equal(farm_builds_active(fx->b), 0);
    assert_string_equal(fx->kinds, "qqppvc");
}

static void test_allow_partial_stitches_what_built(void **state)
{
    fx_t *fx = *state;
    farm_build_t *b = NULL;
    char reason[2048];
    char *tag[] = {"reg.local:5000/team/app:1"}, *plats[] = {"linux/amd64", "linux/arm64"};
    const char *k[1];
    farm_submit_t s = {.tags = tag, .n_tags = 1, .platforms = plats, .n_platforms = 2,
                       .arg_keys = k, .arg_values = k, .context_digest = DIGEST, .context_stored = 1,
                       .allow_partial = 1, .client = "c1", .client_len = 2};

    s_up(fx, "a", "linux/amd64");
    assert_int_equal(farm_builds_submit(fx->b, &b, &s, 0, reason, sizeof reason), 0);
    farm_builds_start(fx->b, b, 0);
    farm_scheduler_dispatch(fx->s, 0);
    s_pushed(fx, &b->jobs[0]);
    assert_int_equal(fx->stitched, 0); /* arm64 still queued */
    farm_builds_job_failed(fx->b, &b->jobs[1], 9, "no node of linux/arm64 became available");
    assert_int_equal(fx->stitched, 1);
    assert_int_equal(fx->done, 0);
}

static void test_cancel_only_by_its_client(void **state)
{
    fx_t *fx = *state;
    farm_build_t *b = NULL;
    char reason[2048];
    char *tag[] = {"reg.local:5000/team/app:1"}, *plats[] = {"linux/amd64"};

    s_up(fx, "a", "linux/amd64");
    assert_int_equal(s_submit(fx, &b, tag, 1, plats, 1, NULL, "c1", reason), 0);
    farm_builds_start(fx->b, b, 0);
    farm_scheduler_dispatch(fx->s, 0);
    assert_int_equal(farm_builds_cancel(fx->b, b->id, "c2", 2, "", 0, 1), FARM_EAUTH);
    assert_int_equal(b->state, FARM_BUILD_RUNNING);
    assert_int_equal(farm_builds_cancel(fx->b, "nope", "c1", 2, "", 0, 1), FARM_ENOTFOUND);
    assert_int_equal(farm_builds_cancel(fx->b, b->id, "c1", 2, "", 0, 1), 0);
    assert_int_equal(b->state, FARM_BUILD_DONE);
    assert_int_equal(fx->cancels, 1);
    assert_non_null(strstr(fx->done_error, "cancelled by farmctl"));
    /* the late result of the cancelled attempt does not count */
    assert_null(farm_scheduler_running(fx->s, farm_nodes_by_name(fx->nodes, "a"), b->jobs[0].id, 1));
}

/* With keys, a build belongs to its client's name (any connection of it) and an admin
 * may cancel any build; build ids carry 128 random bits. */
static void test_owner_and_admin(void **state)
{
    fx_t *fx = *state;
    farm_build_t *b = NULL, *b2 = NULL;
    char reason[2048];
    char *tag[] = {"reg.local:5000/team/app:1"}, *plats[] = {"linux/amd64"};
    const char *k[1];
    farm_submit_t s = {.tags = tag, .n_tags = 1, .platforms = plats, .n_platforms = 1,
                       .arg_keys = k, .arg_values = k, .context_digest = DIGEST, .context_stored = 1,
                       .client = "r1", .client_len = 2, .owner = "alice"};

    assert_int_equal(farm_builds_submit(fx->b, &b, &s, 0, reason, sizeof reason), 0);
    assert_int_equal(farm_builds_submit(fx->b, &b2, &s, 0, reason, sizeof reason), 0);
    assert_int_equal(strlen(strchr(b->id, '-') + 1), 32);
    assert_string_not_equal(strchr(b->id, '-'), strchr(b2->id, '-'));
    assert_true(farm_build_owned_by(b, "other-connection", 16, "alice"));
    assert_false(farm_build_owned_by(b, "r1", 2, "bob"));
    assert_int_equal(farm_builds_cancel(fx->b, b->id, "r1", 2, "bob", 0, 1), FARM_EAUTH);
    assert_int_equal(farm_builds_cancel(fx->b, b->id, "rx", 2, "alice", 0, 1), 0);
    assert_int_equal(b->state, FARM_BUILD_DONE);
    assert_int_equal(farm_builds_cancel(fx->b, b2->id, "ry", 2, "root", 1, 1), 0);
    assert_int_equal(b2->state, FARM_BUILD_DONE);
}

/* coordinator.max_builds_per_client: a client's builds beyond it are refused; another
 * client is not affected, and a finished build frees its place. */
static void test_builds_per_client(void **state)
{
    fx_t *fx = *state;
    farm_build_t *b[3] = {NULL};
    char reason[2048];
    char *tag[] = {"reg.local:5000/team/app:1"}, *plats[] = {"linux/amd64"};
    const char *k[1];
    farm_submit_t s = {.tags = tag, .n_tags = 1, .platforms = plats, .n_platforms = 1,
                       .arg_keys = k, .arg_values = k, .context_digest = DIGEST, .context_stored = 1,
                       .client = "r1", .client_len = 2, .owner = "ci"};

    fx->cfg->max_builds_per_client = 2;
    assert_int_equal(farm_builds_submit(fx->b, &b[0], &s, 0, reason, sizeof reason), 0);
    assert_int_equal(farm_builds_submit(fx->b, &b[1], &s, 0, reason, sizeof reason), 0);
    assert_int_equal(farm_builds_submit(fx->b, &b[2], &s, 0, reason, sizeof reason), FARM_EINVALID);
    assert_non_null(strstr(reason, "client ci already has 2 builds running"));
    s.owner = "alice";
    assert_int_equal(farm_builds_submit(fx->b, &b[2], &s, 0, reason, sizeof reason), 0);
    farm_builds_finish(fx->b, b[0], 0, NULL, 0, "done", 1);
    s.owner = "ci";
    assert_int_equal(farm_builds_submit(fx->b, &b[0], &s, 2, reason, sizeof reason), 0);
}

/* Build flags from a client are checked again (a hostile client skips farmctl's checks);
 * an accepted build takes them over, and its secrets are wiped when it ends. */
static void test_flags_checked_and_secrets_wiped(void **state)
{
    fx_t *fx = *state;
    farm_build_t *b = NULL;
    char reason[2048], *tag[] = {"reg.local:5000/team/app:1"}, *plats[] = {"linux/amd64"};
    farm_secret_t sec[FARM_SECRETS_MAX + 1];
    farm_kv_t kv = {"a", "1"};
    char *big = calloc(1, FARM_SECRET_MAX + 1);
    farm_buildflags_t f = {0};
    farm_submit_t s = {.tags = tag, .n_tags = 1, .platforms = plats, .n_platforms = 1,
                       .context_digest = DIGEST, .context_stored = 1, .client = "c1",
                       .client_len = 2, .flags = &f};

    for (size_t i = 0; i <= FARM_SECRETS_MAX; i++) {
        static char ids[FARM_SECRETS_MAX + 1][8];
        snprintf(ids[i], sizeof ids[i], "s%zu", i);
        sec[i] = (farm_secret_t){ids[i], "v", 1};
    }
    f.secrets = sec;
    f.n_secrets = FARM_SECRETS_MAX + 1;
    assert_int_equal(farm_builds_submit(fx->b, &b, &s, 0, reason, sizeof reason), FARM_EINVALID);
    assert_non_null(strstr(reason, "too many secrets (17; at most 16)"));
    f.n_secrets = 1;
    sec[0] = (farm_secret_t){"s0", big, FARM_SECRET_MAX + 1};
    assert_int_equal(farm_builds_submit(fx->b, &b, &s, 0, reason, sizeof reason), FARM_EINVALID);
    assert_non_null(strstr(reason, "secret s0 is 65537 bytes; at most 64 KiB"));
    f.n_secrets = 0;
    f.labels = &kv;
    f.n_labels = FARM_LABELS_MAX + 1;
    assert_int_equal(farm_builds_submit(fx->b, &b, &s, 0, reason, sizeof reason), FARM_EINVALID);
    assert_non_null(strstr(reason, "too many labels"));
    f.n_labels = 0;
    f.index_annotations = &kv;
    f.n_index_annotations = FARM_ANNOTATIONS_MAX + 1;
    assert_int_equal(farm_builds_submit(fx->b, &b, &s, 0, reason, sizeof reason), FARM_EINVALID);
    assert_non_null(strstr(reason, "too many annotations"));
    f.n_index_annotations = 0;
    f.target = "--rm";
    assert_int_equal(farm_builds_submit(fx->b, &b, &s, 0, reason, sizeof reason), FARM_EINVALID);
    assert_non_null(strstr(reason, "the target is not a stage name"));
    assert_null(b);
    free(big);

    /* accepted: the build owns the flags, the secrets go when it ends */
    memset(&f, 0, sizeof f);
    assert_int_equal(farm_buildflags_set_target(&f, "release"), 0);
    assert_int_equal(farm_buildflags_annotation_spec(&f, "index:org.example.i=1"), 0);
    setenv("FARM_TEST_TOKEN", "env-value", 1);
    {
        farm_secret_spec_t spec;
        assert_int_equal(farm_secret_spec_parse(&spec, "id=tok,env=FARM_TEST_TOKEN"), 0);
        assert_int_equal(farm_buildflags_add_secret(&f, &spec, NULL), 0);
    }
    assert_int_equal(farm_builds_submit(fx->b, &b, &s, 0, reason, sizeof reason), 0);
    assert_null(f.target); /* moved */
    assert_int_equal(f.n_secrets, 0);
    assert_string_equal(b->flags.target, "release");
    assert_int_equal(b->flags.n_secrets, 1);
    assert_string_equal(b->flags.secrets[0].value, "env-value");
    farm_builds_finish(fx->b, b, 0, NULL, 0, "done", 1);
    assert_int_equal(b->flags.n_secrets, 0);
    assert_null(b->flags.secrets);
    assert_string_equal(b->flags.index_annotations[0].key, "org.example.i"); /* kept */
}

/* A build's followers: the submit's connection first, each other once, at most
 * FARM_FOLLOWERS_MAX (a new one beyond drops the oldest, returned to be told), and one
 * whose connection is gone leaves the list. */
static void test_followers_bounded(void **state)
{
    fx_t *fx = *state;
    farm_build_t *b = NULL;
    farm_follower_t dropped;
    char reason[2048], rid[16];
    char *tag[] = {"reg.local:5000/team/app:1"}, *plats[] = {"linux/amd64"};

    assert_int_equal(s_submit(fx, &b, tag, 1, plats, 1, NULL, "c1", reason), 0);
    assert_int_equal(b->n_followers, 1);
    assert_memory_equal(b->followers[0].rid, "c1", 2);
    assert_int_equal(farm_build_follow(b, &dropped, "c1", 2), 0); /* once */
    assert_int_equal(b->n_followers, 1);
    for (int i = 2; i <= FARM_FOLLOWERS_MAX; i++) {
        snprintf(rid, sizeof rid, "c%d", i);
        assert_int_equal(farm_build_follow(b, &dropped, rid, strlen(rid)), 0);
    }
    assert_int_equal(b->n_followers, FARM_FOLLOWERS_MAX);
    /* one more: the oldest (the submit's) goes, and is named */
    assert_int_equal(farm_build_follow(b, &dropped, "new", 3), 1);
    assert_int_equal(dropped.rid_len, 2);
    assert_memory_equal(dropped.rid, "c1", 2);
    assert_int_equal(b->n_followers, FARM_FOLLOWERS_MAX);
    assert_memory_equal(b->followers[0].rid, "c2", 2);
    assert_memory_equal(b->followers[FARM_FOLLOWERS_MAX - 1].rid, "new", 3);
    /* gone from the middle: the others keep their order */
    farm_build_unfollow(b, "c4", 2);
    farm_build_unfollow(b, "zz", 2); /* not a follower: nothing */
    assert_int_equal(b->n_followers, FARM_FOLLOWERS_MAX - 1);
    assert_memory_equal(b->followers[1].rid, "c3", 2);
    assert_memory_equal(b->followers[2].rid, "c5", 2);
    /* still the submitter's build without keys, whoever follows it */
    assert_true(farm_build_owned_by(b, "c1", 2, ""));
    assert_false(farm_build_owned_by(b, "new", 3, ""));
}

/* A build that lost its logins with a restart: its queued jobs leave the scheduler until
 * the submitter sends them again; then it takes them (secrets too) and its jobs run. */
static void test_submitter_back(void **state)
{
    fx_t *fx = *state;
    farm_build_t *b = NULL;
    char reason[2048];
    char *tag[] = {"reg.local:5000/team/app:1"}, *plats[] = {"linux/amd64", "linux/arm64"};
    farm_cred_t creds[] = {{.registry = "reg.local:5000", .username = "u", .secret = "pw"}};
    farm_cred_t bad[] = {{.registry = "reg.local:5000", .username = "u", .secret = ""}};
    farm_buildflags_t sec = {0};
    farm_secret_spec_t spec = {.kind = FARM_SECRET_ENV};

    s_up(fx, "a", "linux/amd64");
    assert_int_equal(s_submit(fx, &b, tag, 1, plats, 2, NULL, "c1", reason), 0);
    farm_builds_start(fx->b, b, 0);
    assert_int_equal(farm_scheduler_queued(fx->s), 2);
    /* as the restore does: the flag set by hand */
    farm_builds_await_submitter(fx->b, b, 100);
    assert_true(b->awaiting_submitter);
    assert_int_equal(farm_scheduler_queued(fx->s), 0);
    assert_int_equal(farm_scheduler_check(fx->s), 0);
    assert_int_equal(farm_scheduler_dispatch(fx->s, 200), 0);
    assert_int_equal(fx->assigns, 0);
    assert_int_equal(b->jobs[0].state, FARM_JOB_QUEUED);
    /* the queue_timeout does not fail it yet: a build waiting for its submitter is not
     * a queued job */
    farm_scheduler_tick(fx->s, 100 + fx->cfg->queue_timeout_ms);
    farm_builds_submitter_overdue(fx->b, 100 + fx->cfg->queue_timeout_ms);
    assert_int_equal(b->state, FARM_BUILD_RUNNING);

    /* bad logins are refused and change nothing */
    assert_int_equal(farm_builds_submitter_back(fx->b, b, bad, 1, NULL, 300, reason,
                                                sizeof reason), FARM_EINVALID);
    assert_non_null(strstr(reason, "registry credentials for reg.local:5000"));
    assert_null(strstr(reason, "pw"));
    assert_true(b->awaiting_submitter);
    assert_int_equal(farm_scheduler_queued(fx->s), 0);

    setenv("FARM_TEST_SECRET", "s3cret", 1);
    snprintf(spec.id, sizeof spec.id, "tok");
    snprintf(spec.source, sizeof spec.source, "FARM_TEST_SECRET");
    assert_int_equal(farm_buildflags_add_secret(&sec, &spec, NULL), 0);
    assert_int_equal(farm_builds_submitter_back(fx->b, b, creds, 1, &sec, 400, reason,
                                                sizeof reason), 0);
    assert_false(b->awaiting_submitter);
    assert_int_equal(sec.n_secrets, 0); /* moved into the build */
    assert_int_equal(b->flags.n_secrets, 1);
    assert_string_equal(farm_build_cred(b, "reg.local:5000")->secret, "pw");
    assert_int_equal(farm_scheduler_queued(fx->s), 2);
    assert_int_equal(farm_scheduler_check(fx->s), 0);
    assert_int_equal(farm_scheduler_dispatch(fx->s, 500), 1); /* amd64 on node a */
    assert_int_equal(fx->assigns, 1);
    /* a second time: the build no longer waits */
    assert_int_equal(farm_builds_submitter_back(fx->b, b, creds, 1, NULL, 600, reason,
                                                sizeof reason), FARM_EINVALID);
    farm_buildflags_clear(&sec);
    unsetenv("FARM_TEST_SECRET");
}

/* A build whose submitter never comes back fails after coordinator.queue_timeout,
 * saying why and what to do. */
static void test_submitter_overdue(void **state)
{
    fx_t *fx = *state;
    farm_build_t *b = NULL, *other = NULL;
    char reason[2048];
    char *tag[] = {"reg.local:5000/team/app:1"}, *plats[] = {"linux/amd64"};
    long long bound = fx->cfg->queue_timeout_ms;

    assert_int_equal(s_submit(fx, &b, tag, 1, plats, 1, NULL, "c1", reason), 0);
    assert_int_equal(s_submit(fx, &other, tag, 1, plats, 1, NULL, "c2", reason), 0);
    farm_builds_await_submitter(fx->b, b, 1000);
    farm_builds_start(fx->b, b, 1000); /* "queued" said, nothing scheduled */
    assert_int_equal(farm_scheduler_queued(fx->s), 0);
    farm_builds_submitter_overdue(fx->b, 1000 + bound);
    assert_int_equal(b->state, FARM_BUILD_RUNNING);
    farm_builds_submitter_overdue(fx->b, 1001 + bound);
    assert_int_equal(b->state, FARM_BUILD_DONE);
    assert_int_equal(fx->done, 1);
    assert_false(fx->done_ok);
    assert_string_equal(fx->done_error,
                        "its registry logins and secrets were lost with a coordinator restart "
                        "and its submitter did not reattach within 10m "
                        "(coordinator.queue_timeout in t.yaml); submit it again");
    assert_int_equal(other->state, FARM_BUILD_RUNNING); /* not waiting: untouched */
    assert_int_equal(b->jobs[0].state, FARM_JOB_CANCELLED);
    assert_int_equal(farm_scheduler_check(fx->s), 0);
}

static void s_fx_restart(fx_t *fx, farm_journal_t *j)
{
    farm_scheduler_cbs_t scbs = {.assign = cb_assign, .cancel = cb_cancel,
                                 .requeued = cb_requeued};
    farm_builds_cbs_t bcbs = {cb_event, cb_stitch, cb_done};
    farm_builds_destroy(&fx->b);
    farm_scheduler_destroy(&fx->s);
    farm_nodes_destroy(&fx->nodes);
    fx->nodes = farm_nodes_new(fx->cfg);
    fx->s = farm_scheduler_new(fx->cfg, &scbs, fx);
    fx->b = farm_builds_new(fx->cfg, fx->s, &bcbs, fx);
    assert_non_null(fx->b);
    farm_builds_set_journal(fx->b, j);
}

/* With a journal, what a coordinator accepted comes back after it is gone: a pushed
 * platform keeps its image, a running one waits (parked) for its node, a queued one is
 * queued, a build that had logins waits for its submitter (its running jobs still
 * parked, nothing queued anew), and new ids follow the old ones. */
static void test_restore_from_journal(void **state)
{
    fx_t *fx = *state;
    farm_build_t *b1 = NULL, *b2 = NULL, *b3 = NULL, *b4 = NULL, *r;
    char reason[2048], dir[] = "/tmp/farm-builds-XXXXXX", ids[4][FARM_ID_MAX + 1];
    char *tag[] = {"reg.local:5000/team/app:1"}, *both[] = {"linux/amd64", "linux/arm64"};
    char *amd[] = {"linux/amd64"}, *arm[] = {"linux/arm64"};
    farm_cred_t cred = {.registry = "reg.local:5000", .username = "u", .secret = "s3cret"};
    farm_journal_loaded_t loaded;
    farm_journal_t *j;
    uint64_t seq4;

    assert_non_null(mkdtemp(dir));
    assert_non_null(j = farm_journal_open(dir, NULL));
    farm_builds_set_journal(fx->b, j);
    s_up(fx, "a", "linux/amd64");
    s_up(fx, "b", "linux/arm64");
    assert_int_equal(s_submit(fx, &b1, tag, 1, both, 2, NULL, "c1", reason), 0);
    farm_builds_start(fx->b, b1, 0);
    farm_scheduler_dispatch(fx->s, 0);
    s_pushed(fx, &b1->jobs[0]); /* amd64 pushed, arm64 runs on b */
    {
        farm_submit_t sub = {.tags = tag, .n_tags = 1, .platforms = amd, .n_platforms = 1,
                             .context_digest = DIGEST, .context_stored = 1, .context_size = 10,
                             .client = "c2", .client_len = 2, .creds = &cred, .n_creds = 1,
                             .token = "tok-of-c2", .token_len = 9};
        assert_int_equal(farm_builds_submit(fx->b, &b2, &sub, 0, reason, sizeof reason), 0);
    }
    farm_builds_start(fx->b, b2, 0);
    assert_int_equal(s_submit(fx, &b3, tag, 1, both, 2, NULL, "c1", reason), 0);
    farm_builds_start(fx->b, b3, 0);
    /* b4's tags name two repositories: both come back */
    assert_int_equal(s_submit(fx, &b4, (char *[]){"reg.local:5000/team/app:1",
                                                  "other.example:5001/b/c:2"}, 2, arm, 1, NULL,
                              "c1", reason), 0);
    farm_builds_start(fx->b, b4, 0);
    farm_scheduler_dispatch(fx->s, 0); /* a: b2, b3 amd64; b: b1 and b3 arm64; b4 queued */
    assert_int_equal(farm_scheduler_queued(fx->s), 1);
    assert_true(b1->seq < b2->seq && b2->seq < b3->seq && b3->seq < b4->seq);
    snprintf(ids[0], sizeof ids[0], "%s", b1->id);
    snprintf(ids[1], sizeof ids[1], "%s", b2->id);
    snprintf(ids[3], sizeof ids[3], "%s", b4->id);
    seq4 = b4->seq;

    /* the coordinator is gone (nothing more written); another starts on the journal */
    s_fx_restart(fx, j);
    assert_int_equal(farm_journal_load_unfinished(j, &loaded), 0);
    assert_int_equal(loaded.n_builds, 4);
    assert_int_equal(farm_builds_restore(fx->b, &loaded, 10000, 100), 0);
    farm_journal_loaded_free(&loaded);
    assert_int_equal(farm_builds_active(fx->b), 4);
    assert_non_null(r = farm_builds_get(fx->b, ids[0]));
    assert_int_equal(r->jobs[0].state, FARM_JOB_DONE);
    assert_string_equal(r->jobs[0].image->digest, DIGEST);
    assert_int_equal(r->jobs[1].state, FARM_JOB_QUEUED);
    assert_true(r->jobs[1].parked);
    assert_string_equal(r->jobs[1].node_name, "b");
    assert_int_equal(r->jobs[1].attempt, 1);
    assert_int_equal(r->n_creds, 0);
    assert_false(r->awaiting_submitter);
    assert_non_null(r = farm_builds_get(fx->b, ids[3]));
    assert_int_equal(r->n_targets, 2);
    assert_int_equal(r->n_tags, 2);
    assert_string_equal(r->repository, "team/app");
    assert_string_equal(farm_targets_of(r, 1)->registry, "other.example:5001");
    assert_string_equal(farm_targets_of(r, 1)->repository, "b/c");
    assert_string_equal(r->tags[1], "2");
    assert_string_equal(r->tag_refs[1], "other.example:5001/b/c:2");
    assert_non_null(r = farm_builds_get(fx->b, ids[0]));
    assert_int_equal(r->n_targets, 1);
    assert_string_equal(r->tag_refs[0], "reg.local:5000/team/app:1");
    assert_non_null(r = farm_builds_get(fx->b, ids[1]));
    assert_true(r->awaiting_submitter); /* the login was never written */
    assert_true(farm_build_token_is(r, "tok-of-c2", 9)); /* its digest was: the same farmctl */
    assert_false(farm_build_token_is(r, "tok-of-c3", 9));
    /* the same Submit sent again finds it (and only the same token does) */
    assert_ptr_equal(farm_builds_by_token(fx->b, "tok-of-c2", 9), r);
    assert_null(farm_builds_by_token(fx->b, "tok-of-c3", 9));
    assert_null(farm_builds_by_token(fx->b, "", 0));
    assert_true(r->jobs[0].parked);
    assert_int_equal(farm_scheduler_parked(fx->s), 4);
    assert_int_equal(farm_scheduler_queued(fx->s), 1); /* b4 */
    assert_int_equal(farm_scheduler_check(fx->s), 0);
    assert_int_equal(fx->stitched, 0);
    /* no node comes back: each parked job is queued anew, but b2's waits for its
     * submitter outside the queue */
    farm_scheduler_tick(fx->s, 10101);
    assert_int_equal(farm_scheduler_parked(fx->s), 0);
    assert_int_equal(farm_scheduler_queued(fx->s), 4);
    assert_int_equal(farm_scheduler_check(fx->s), 0);
    assert_non_null(r = farm_builds_get(fx->b, ids[1]));
    assert_int_equal(r->jobs[0].state, FARM_JOB_QUEUED);
    assert_int_equal(r->jobs[0].attempt, 2);
    /* its submitter back: resumed, queued */
    r->awaiting_submitter = 0;
    farm_builds_resume(fx->b, r, 10000, 10200);
    assert_int_equal(farm_scheduler_queued(fx->s), 5);
    assert_int_equal(farm_scheduler_check(fx->s), 0);
    /* a new submit's id follows the old ones */
    assert_int_equal(s_submit(fx, &b1, tag, 1, amd, 1, NULL, "c1", reason), 0);
    assert_true(b1->seq > seq4);
    /* b4 ends: after another restart only three come back */
    assert_non_null(r = farm_builds_get(fx->b, ids[3]));
    assert_int_equal(farm_builds_cancel(fx->b, ids[3], "c9", 2, "", 1, 10300), 0); /* an admin */
    s_fx_restart(fx, j);
    assert_int_equal(farm_journal_load_unfinished(j, &loaded), 0);
    assert_int_equal(loaded.n_builds, 4); /* b1, b2, b3 and the new one */
    for (size_t i = 0; i < loaded.n_builds; i++)
        assert_string_not_equal(loaded.builds[i].id, ids[3]);
    farm_journal_loaded_free(&loaded);
    farm_journal_destroy(&j);
    {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_submit_several_repositories, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_submit_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_submit_records_jobs_and_insecure, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_plain_http_registry, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_failure_ends_build_with_tail, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_all_pushed_stitches_then_finishes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_allow_partial_stitches_what_built, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_only_by_its_client, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_owner_and_admin, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_builds_per_client, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_flags_checked_and_secrets_wiped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_followers_bounded, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_submitter_back, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_submitter_overdue, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_restore_from_journal, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
