/* SPDX-License-Identifier: Apache-2.0 */
/* Messages as JSON (farmctl --format json, the HTTP API): every field under its .proto
 * name, defaults present, repeated as arrays, enums by name, bytes base64, big numbers
 * kept, only the set member of a oneof, and never a credential or token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/pbjson.h"
#include "farm.pb-c.h"

static void test_nodes_reply(void **state)
{
    (void)state;
    Farm__NodeInfo n1 = FARM__NODE_INFO__INIT, n2 = FARM__NODE_INFO__INIT;
    char *plats[] = {"linux/amd64", "linux/386"};
    char *jobs[] = {"j1", "j2"};
    protobuf_c_boolean warm[] = {1, 0};
    n1.name = "amd64-1";
    n1.platforms = plats;
    n1.n_platforms = 2;
    n1.state = "ready";
    n1.slots = 2;
    n1.used = 1;
    n1.jobs = jobs;
    n1.n_jobs = 2;
    n1.job_warm = warm;
    n1.n_job_warm = 2;
    n1.builder_cache_bytes = UINT64_C(5000000000); /* past 32 bits */
    n2.name = "arm64-1";
    Farm__NodeInfo *nodes[] = {&n1, &n2};
    Farm__NodesReply r = FARM__NODES_REPLY__INIT;
    r.nodes = nodes;
    r.n_nodes = 2;

    json_t *j = farm_pbjson(&r.base);
    assert_non_null(j);
    json_t *arr = json_object_get(j, "nodes");
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), 2);
    json_t *a = json_array_get(arr, 0), *b = json_array_get(arr, 1);
    assert_string_equal(json_string_value(json_object_get(a, "name")), "amd64-1");
    assert_string_equal(json_string_value(json_array_get(json_object_get(a, "platforms"), 1)),
                        "linux/386");
    assert_int_equal(json_integer_value(json_object_get(a, "slots")), 2);
    assert_int_equal(json_integer_value(json_object_get(a, "builder_cache_bytes")), 5000000000LL);
    assert_true(json_is_true(json_array_get(json_object_get(a, "job_warm"), 0)));
    assert_true(json_is_false(json_array_get(json_object_get(a, "job_warm"), 1)));
    /* defaults are there, with their type: a script never meets a missing key */
    assert_string_equal(json_string_value(json_object_get(b, "state")), "");
    assert_int_equal(json_array_size(json_object_get(b, "platforms")), 0);
    assert_true(json_is_integer(json_object_get(b, "used")));
    assert_int_equal(json_object_size(b), json_object_size(a));
    json_decref(j);
}

static void test_enum_bytes_oneof(void **state)
{
    (void)state;
    Farm__Event ev = FARM__EVENT__INIT;
    ev.build_id = "b1-aa";
    ev.kind = FARM__EVENT_KIND__EVENT_PUSHED;
    Farm__Envelope env = FARM__ENVELOPE__INIT;
    env.version = 1;
    env.body_case = FARM__ENVELOPE__BODY_EVENT;
    env.event = &ev;
    json_t *j = farm_pbjson(&env.base);
    assert_non_null(j);
    /* only the oneof member that is set */
    assert_non_null(json_object_get(j, "event"));
    assert_null(json_object_get(j, "submit"));
    assert_null(json_object_get(j, "hello"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "event"), "kind")),
                        "EVENT_PUSHED");
    json_decref(j);

    /* an enum number this build does not know stays a number */
    ev.kind = (Farm__EventKind)77;
    j = farm_pbjson(&ev.base);
    assert_int_equal(json_integer_value(json_object_get(j, "kind")), 77);
    json_decref(j);

    Farm__ContextChunk c = FARM__CONTEXT_CHUNK__INIT;
    c.data.data = (uint8_t *)"farm!";
    c.data.len = 5;
    char *text = farm_pbjson_dumps(&c.base, 0);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"data\":\"ZmFybSE=\""));
    free(text);
}

static void test_never_a_credential(void **state)
{
    (void)state;
    Farm__RegistryCredential cred = FARM__REGISTRY_CREDENTIAL__INIT;
    cred.registry = "reg.example";
    cred.username = "alice";
    cred.secret = "hunter2-password";
    Farm__RegistryCredential *creds[] = {&cred};
    Farm__Secret sec = FARM__SECRET__INIT;
    sec.id = "npmrc";
    sec.value.data = (uint8_t *)"npm-token-value";
    sec.value.len = 15;
    Farm__Secret *secs[] = {&sec};
    Farm__BuildFlags fl = FARM__BUILD_FLAGS__INIT;
    fl.target = "release";
    fl.secrets = secs;
    fl.n_secrets = 1;
    Farm__Submit s = FARM__SUBMIT__INIT;
    char *tags[] = {"reg.example/app:1"};
    s.tags = tags;
    s.n_tags = 1;
    s.credentials = creds;
    s.n_credentials = 1;
    s.flags = &fl;
    s.submit_token.data = (uint8_t *)"0123456789abcdef0123456789abcdef";
    s.submit_token.len = 32;

    char *text = farm_pbjson_dumps(&s.base, 1);
    assert_non_null(text);
    assert_non_null(strstr(text, "reg.example/app:1"));
    assert_non_null(strstr(text, "\"target\": \"release\""));
    assert_null(strstr(text, "hunter2"));
    assert_null(strstr(text, "alice"));
    assert_null(strstr(text, "credentials"));
    assert_null(strstr(text, "secrets"));
    assert_null(strstr(text, "npm"));
    assert_null(strstr(text, "token"));
    assert_null(strstr(text, "MDEyMzQ1")); /* the token's base64 */
    free(text);

    /* the same rule when the credential is printed on its own */
    text = farm_pbjson_dumps(&cred.base, 0);
    assert_non_null(text);
    assert_null(strstr(text, "hunter2"));
    free(text);
}

static void test_print(void **state)
{
    (void)state;
    Farm__Refused r = FARM__REFUSED__INIT;
    r.reason = "client ci has role read";
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(farm_pbjson_print(f, &r.base), 0);
    rewind(f);
    char buf[256] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    assert_true(n > 0);
    assert_string_equal(buf, "{\n  \"reason\": \"client ci has role read\"\n}\n");

    /* a string that is not UTF-8 (a RUN step's output in a log line): each bad byte is
     * U+FFFD, the valid characters around it are kept, the JSON stays valid */
    r.reason = "ok \xff\xfe caf\xc3\xa9 \xe0\x80\x80 \xf0\x9f\x90\x84";
    char *text = farm_pbjson_dumps(&r.base, 0);
    assert_non_null(text);
    assert_string_equal(text, "{\"reason\":\"ok \xef\xbf\xbd\xef\xbf\xbd caf\xc3\xa9 "
                              "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xf0\x9f\x90\x84\"}");
    json_t *back = json_loads(text, 0, NULL);
    assert_non_null(back);
    json_decref(back);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nodes_reply),
        cmocka_unit_test(test_enum_bytes_oneof),
        cmocka_unit_test(test_never_a_credential),
        cmocka_unit_test(test_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
