/* SPDX-License-Identifier: Apache-2.0 */
/* The repositories a build's tags name (coordinator/targets.h): references into tags,
 * repositories and each tag's full name; a journal record of one repository; what the
 * nodes and the stitch are sent for the other repositories (the login and farm.yaml's
 * settings only to the stitch, each for its own registry); and the stitch's checks of
 * such a request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/error.h"
#include "coordinator/targets.h"

static void test_fill(void **state)
{
    farm_build_t b = {0};
    char err[512];
    char *refs[] = {"reg.local:5000/team/app:1", "mirror.example/app:1",
                    "reg.local:5000/team/app:1", "reg.local:5000/team/app:2", "alpine:3"};

    (void)state;
    assert_int_equal(farm_targets_fill(&b, refs, 5, err, sizeof err), 0);
    assert_int_equal(b.n_tags, 4);
    assert_int_equal(b.n_targets, 3);
    assert_string_equal(b.registry, "reg.local:5000");
    assert_string_equal(b.repository, "team/app");
    assert_string_equal(b.tag_refs[1], "mirror.example/app:1");
    assert_string_equal(farm_targets_of(&b, 2)->repository, "team/app");
    assert_int_equal(b.tag_target[2], 0);
    /* a short name is docker.io's library/ */
    assert_string_equal(farm_targets_of(&b, 3)->registry, "docker.io");
    assert_string_equal(farm_targets_of(&b, 3)->repository, "library/alpine");
    assert_string_equal(b.tag_refs[3], "docker.io/library/alpine:3");
    /* filled once */
    assert_int_equal(farm_targets_fill(&b, refs, 1, err, sizeof err), FARM_EINVALID);
    farm_targets_free(&b);
    assert_null(b.tags);
    assert_int_equal(b.n_targets, 0);
}

static void test_fill_refusals(void **state)
{
    char err[512], longref[FARM_REFERENCE_MAX + 8];
    char *digest[] = {"reg.local:5000/a:1", "reg.local:5000/b@sha256:"
                      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"};
    char *bad[] = {"reg.local:5000/UPPER:1"}, *lng[] = {longref};

    (void)state;
    {
        farm_build_t b = {0};
        assert_int_equal(farm_targets_fill(&b, digest, 2, err, sizeof err), FARM_EINVALID);
        assert_non_null(strstr(err, "reg.local:5000/b@sha256:"));
        assert_non_null(strstr(err, "must name a tag, not a digest"));
        farm_targets_free(&b);
    }
    {
        farm_build_t b = {0};
        assert_int_equal(farm_targets_fill(&b, bad, 1, err, sizeof err), FARM_EINVALID);
        assert_non_null(strstr(err, "bad tag"));
        farm_targets_free(&b);
    }
    {
        farm_build_t b = {0};
        memset(longref, 'a', sizeof longref - 1);
        longref[sizeof longref - 1] = '\0';
        assert_int_equal(farm_targets_fill(&b, lng, 1, err, sizeof err), FARM_EINVALID);
        assert_non_null(strstr(err, "tag 1 is longer than"));
        farm_targets_free(&b);
    }
}

static void test_single(void **state)
{
    farm_build_t b = {0};

    (void)state;
    snprintf(b.registry, sizeof b.registry, "reg.local:5000");
    snprintf(b.repository, sizeof b.repository, "team/app");
    b.tags = calloc(3, sizeof *b.tags);
    assert_non_null(b.tags);
    b.tags[0] = strdup("1.0");
    b.tags[1] = strdup("latest");
    b.n_tags = 2;
    assert_int_equal(farm_targets_single(&b), 0);
    assert_int_equal(b.n_targets, 1);
    assert_int_equal(b.n_tags, 2);
    assert_string_equal(b.tags[1], "latest");
    assert_string_equal(b.tag_refs[1], "reg.local:5000/team/app:latest");
    assert_string_equal(farm_targets_of(&b, 1)->registry, "reg.local:5000");
    farm_targets_free(&b);
}

static const char *Y =
    "coordinator: {agents: 'tcp://127.0.0.1:1', clients: 'tcp://127.0.0.1:2'}\n"
    "platforms:\n  linux/amd64: [a]\n"
    "nodes:\n  a: {slots: 1}\n"
    "registries:\n  'mirror.example': {insecure: true}\n";

static void test_wire(void **state)
{
    farm_config_t *cfg = NULL;
    farm_build_t b = {0};
    farm_targets_wire_t w;
    farm_cred_t creds[] = {{.registry = "reg.local:5000", .username = "u1", .secret = "s1"},
                           {.registry = "mirror.example", .username = "u2", .secret = "s2"}};
    char err[512], *refs[] = {"reg.local:5000/team/app:1", "mirror.example/app:1",
                              "other.example/x:1"};

    (void)state;
    assert_int_equal(farm_config_parse(&cfg, "t.yaml", Y, strlen(Y), NULL), 0);
    /* one repository: nothing more to send */
    assert_int_equal(farm_targets_fill(&b, refs, 1, err, sizeof err), 0);
    assert_int_equal(farm_targets_to_wire(&w, &b, cfg, 1), 0);
    assert_int_equal(w.n, 0);
    farm_targets_wire_free(&w);
    farm_targets_free(&b);

    assert_int_equal(farm_targets_fill(&b, refs, 3, err, sizeof err), 0);
    b.creds = creds;
    b.n_creds = 2;
    b.targets[1].insecure = 1;
    /* the nodes: registry, repository, insecure; no login (JobAssign has them per host) */
    assert_int_equal(farm_targets_to_wire(&w, &b, cfg, 0), 0);
    assert_int_equal(w.n, 2);
    assert_string_equal(w.ptrs[0]->registry, "mirror.example");
    assert_string_equal(w.ptrs[0]->repository, "app");
    assert_true(w.ptrs[0]->insecure);
    assert_null(w.ptrs[0]->credential);
    farm_targets_wire_free(&w);
    /* the stitch: each registry's own login, and none where the submitter sent none */
    assert_int_equal(farm_targets_to_wire(&w, &b, cfg, 1), 0);
    assert_non_null(w.ptrs[0]->credential);
    assert_string_equal(w.ptrs[0]->credential->registry, "mirror.example");
    assert_string_equal(w.ptrs[0]->credential->secret, "s2");
    assert_string_equal(w.ptrs[1]->registry, "other.example");
    assert_null(w.ptrs[1]->credential);
    farm_targets_wire_free(&w);
    b.creds = NULL;
    b.n_creds = 0;
    farm_targets_free(&b);
    farm_config_destroy(&cfg);
}

static void test_from_stitch(void **state)
{
    Farm__StitchRequest req = FARM__STITCH_REQUEST__INIT;
    Farm__MultirepoTarget t = FARM__MULTIREPO_TARGET__INIT, *tp[] = {&t};
    Farm__RegistryCredential c = FARM__REGISTRY_CREDENTIAL__INIT;
    char *tags[] = {"1", "1"};
    uint32_t tt[] = {0, 1}, bad[] = {0, 2};
    farm_stitch_req_t sr = {0};
    farm_stitch_target_t *out = NULL;
    farm_registry_creds_t *cr = NULL;

    (void)state;
    t.registry = "mirror.example";
    t.repository = "app";
    c.registry = "mirror.example";
    c.username = "u";
    c.secret = "s";
    t.credential = &c;
    req.tags = tags;
    req.n_tags = 2;
    req.targets = tp;
    req.n_targets = 1;
    req.tag_targets = tt;
    req.n_tag_targets = 2;
    assert_int_equal(farm_targets_from_stitch(&out, &cr, &sr, &req), 0);
    assert_int_equal(sr.n_targets, 1);
    assert_ptr_equal(sr.tag_targets, tt);
    assert_string_equal(sr.targets[0].registry, "mirror.example");
    assert_non_null(sr.targets[0].creds);
    assert_string_equal(sr.targets[0].creds->secret, "s");
    free(out);
    free(cr);
    /* a login for another registry is not used there */
    c.registry = "reg.local:5000";
    memset(&sr, 0, sizeof sr);
    assert_int_equal(farm_targets_from_stitch(&out, &cr, &sr, &req), 0);
    assert_null(sr.targets[0].creds);
    free(out);
    free(cr);
    /* a tag naming no repository of the request, or counts that differ */
    req.tag_targets = bad;
    assert_int_equal(farm_targets_from_stitch(&out, &cr, &sr, &req), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "names repository 2"));
    assert_null(out);
    req.tag_targets = tt;
    req.n_tag_targets = 1;
    assert_int_equal(farm_targets_from_stitch(&out, &cr, &sr, &req), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "1 tag repositories for 2 tags"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fill),
        cmocka_unit_test(test_fill_refusals),
        cmocka_unit_test(test_single),
        cmocka_unit_test(test_wire),
        cmocka_unit_test(test_from_stitch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
