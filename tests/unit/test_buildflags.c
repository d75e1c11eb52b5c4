/* SPDX-License-Identifier: Apache-2.0 */
/* Build flags with buildx's meaning: --label/--annotation/--secret specs as a person
 * writes them, the limits, and the wire round trip a hostile peer cannot stretch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/buildflags.h"
#include "common/error.h"

static void s_refused(int rc, const char *needle)
{
    assert_int_equal(rc, FARM_EINVALID);
    if (!strstr(farm_error_last(), needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, farm_error_last());
}

static void test_labels(void **state)
{
    farm_buildflags_t f = {0};

    assert_int_equal(farm_buildflags_label_spec(&f, "org.example.team=farm"), 0);
    assert_int_equal(farm_buildflags_label_spec(&f, "empty="), 0);
    assert_int_equal(farm_buildflags_label_spec(&f, "eq=a=b"), 0);
    assert_int_equal(farm_buildflags_label_spec(&f, "org.example.team=later"), 0);
    assert_int_equal(f.n_labels, 3); /* a later value replaces an earlier one */
    assert_string_equal(f.labels[0].value, "later");
    assert_string_equal(f.labels[1].value, "");
    assert_string_equal(f.labels[2].value, "a=b");
    s_refused(farm_buildflags_label_spec(&f, "novalue"), "--label wants KEY=VALUE");
    s_refused(farm_buildflags_label_spec(&f, "=v"), "--label wants KEY=VALUE");
    s_refused(farm_buildflags_label_spec(&f, "a b=v"), "label key \"a b\" is not valid");
    s_refused(farm_buildflags_set_label(&f, "k", "\xff"), "not UTF-8");
    {
        char *big = malloc(FARM_META_VALUE_MAX + 2);
        memset(big, 'x', FARM_META_VALUE_MAX + 1);
        big[FARM_META_VALUE_MAX + 1] = '\0';
        s_refused(farm_buildflags_set_label(&f, "k", big), "longer than 4096 bytes");
        free(big);
    }
    for (int i = (int)f.n_labels; i < FARM_LABELS_MAX; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(farm_buildflags_set_label(&f, k, "v"), 0);
    }
    s_refused(farm_buildflags_set_label(&f, "one.more", "v"), "too many labels (at most 128)");
    assert_int_equal(farm_buildflags_set_label(&f, "k5", "replaced"), 0); /* not one more */
    farm_buildflags_clear(&f);
    assert_int_equal(f.n_labels, 0);
}

static void test_annotations(void **state)
{
    farm_buildflags_t f = {0};

    assert_int_equal(farm_buildflags_annotation_spec(&f, "org.example.plain=p"), 0);
    assert_int_equal(farm_buildflags_annotation_spec(&f, "manifest:org.example.m=m"), 0);
    assert_int_equal(farm_buildflags_annotation_spec(&f, "index:org.example.i=i=j"), 0);
    /* a key with a ':' that is no buildx type prefix is a key */
    assert_int_equal(farm_buildflags_annotation_spec(&f, "com.example:x=y"), 0);
    assert_int_equal(f.n_annotations, 3);
    assert_int_equal(f.n_index_annotations, 1);
    assert_string_equal(f.annotations[1].key, "org.example.m");
    assert_string_equal(f.annotations[2].key, "com.example:x");
    assert_string_equal(f.index_annotations[0].key, "org.example.i");
    assert_string_equal(f.index_annotations[0].value, "i=j");
    s_refused(farm_buildflags_annotation_spec(&f, "manifest-descriptor:k=v"),
              "manifest-descriptor: annotations are not supported");
    s_refused(farm_buildflags_annotation_spec(&f, "index-descriptor:k=v"),
              "index-descriptor: annotations are not supported");
    s_refused(farm_buildflags_annotation_spec(&f, "manifest[linux/amd64]:k=v"),
              "per-platform annotations");
    s_refused(farm_buildflags_annotation_spec(&f, "foo:k=v"), "unknown type \"foo\"");
    s_refused(farm_buildflags_annotation_spec(&f, "index:=v"), "annotation key \"\" is not valid");
    s_refused(farm_buildflags_annotation_spec(&f, "index:k"), "wants KEY=VALUE");
    s_refused(farm_buildflags_set_annotation(&f, "index:", "v"), "annotation key \"\" is not valid");
    for (int i = 4; i < FARM_ANNOTATIONS_MAX; i++) {
        char k[24];
        snprintf(k, sizeof k, "%sk%d", i % 2 ? "index:" : "", i);
        assert_int_equal(farm_buildflags_set_annotation(&f, k, "v"), 0);
    }
    /* manifest and index annotations count together */
    s_refused(farm_buildflags_set_annotation(&f, "index:last", "v"), "too many annotations");
    farm_buildflags_clear(&f);
}

static void test_target(void **state)
{
    farm_buildflags_t f = {0};
    assert_int_equal(farm_buildflags_set_target(&f, "build-stage_1.x"), 0);
    assert_string_equal(f.target, "build-stage_1.x");
    s_refused(farm_buildflags_set_target(&f, "-x"), "is not a stage name");
    s_refused(farm_buildflags_set_target(&f, "a b"), "is not a stage name");
    s_refused(farm_buildflags_set_target(&f, ""), "is not a stage name");
    farm_buildflags_clear(&f);
}

/* --cache-from/--cache-to: a registry repository (each platform's cache goes below it) */
static void test_cache_specs(void **state)
{
    farm_buildflags_t f = {0};
    Farm__BuildFlags w = FARM__BUILD_FLAGS__INIT;
    farm_buildflags_wire_t store;
    farm_buildflags_t back = {0};
    (void)state;

    assert_int_equal(farm_buildflags_cache_spec(&f, 0, "reg.local:5000/team/app-cache"), 0);
    assert_string_equal(f.cache_from, "reg.local:5000/team/app-cache");
    assert_int_equal(farm_buildflags_cache_spec(&f, 1, "type=registry,ref=reg.local/c,mode=max"), 0);
    assert_string_equal(f.cache_to, "reg.local/c");
    assert_int_equal(farm_buildflags_cache_spec(&f, 1, "ref=reg.local/d"), 0);
    assert_string_equal(f.cache_to, "reg.local/d");
    assert_int_equal(farm_buildflags_cache_spec(&f, 1, "type=local,dest=/tmp/x"), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "registry cache only"));
    assert_int_equal(farm_buildflags_cache_spec(&f, 0, "reg.local/app:tag"), FARM_EINVALID);
    assert_int_equal(farm_buildflags_cache_spec(&f, 0, "reg.local/app@sha256:00"), FARM_EINVALID);
    assert_int_equal(farm_buildflags_cache_spec(&f, 0, "app-cache"), FARM_EINVALID);
    assert_int_equal(farm_buildflags_cache_spec(&f, 0, "https://reg.local/app"), FARM_EINVALID);
    assert_int_equal(farm_buildflags_cache_spec(&f, 0, "reg.local/../etc"), FARM_EINVALID);
    assert_int_equal(farm_buildflags_cache_spec(&f, 0, "reg.local/App"), FARM_EINVALID);
    assert_int_equal(farm_buildflags_cache_spec(&f, 0, "reg.local/a..b"), FARM_EINVALID);
    assert_int_equal(farm_buildflags_cache_spec(&f, 0, "reg.local/a-"), FARM_EINVALID);
    assert_int_equal(farm_buildflags_cache_spec(&f, 0, "type=registryX,ref=reg.local/c"),
                     FARM_EINVALID);
    assert_int_equal(farm_buildflags_cache_spec(&f, 0, "type=registry,ref=reg.local/c,x=1"),
                     FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "\"x=1\" is not offered"));
    assert_int_equal(farm_buildflags_cache_spec(&f, 0, "type=registry"), FARM_EINVALID);
    assert_int_equal(farm_buildflags_cache_spec(&f, 1, "reg.local/my__app--x/c.d_e"), 0);
    assert_int_equal(farm_buildflags_cache_spec(&f, 1, "ref=reg.local/d"), 0);
    assert_string_equal(f.cache_from, "reg.local:5000/team/app-cache"); /* unchanged */
    /* on the wire and back, checked again */
    assert_int_equal(farm_buildflags_to_wire(&w, &store, &f), 0);
    assert_string_equal(w.cache_to, "reg.local/d");
    assert_int_equal(farm_buildflags_from_wire(&back, &w), 0);
    assert_string_equal(back.cache_from, "reg.local:5000/team/app-cache");
    farm_buildflags_wire_free(&store);
    farm_buildflags_clear(&back);
    w.cache_to = "reg.local/x:latest"; /* a hostile peer's */
    assert_int_equal(farm_buildflags_from_wire(&back, &w), FARM_EINVALID);
    farm_buildflags_clear(&f);
}

static void test_secret_specs(void **state)
{
    farm_secret_spec_t s;

    assert_int_equal(farm_secret_spec_parse(&s, "id=tok,src=/run/tok"), 0);
    assert_string_equal(s.id, "tok");
    assert_int_equal(s.kind, FARM_SECRET_FILE);
    assert_string_equal(s.source, "/run/tok");
    assert_int_equal(farm_secret_spec_parse(&s, "type=file,id=tok,source=rel/tok"), 0);
    assert_int_equal(s.kind, FARM_SECRET_FILE);
    assert_string_equal(s.source, "rel/tok");
    assert_int_equal(farm_secret_spec_parse(&s, "id=tok,env=TOKEN"), 0);
    assert_int_equal(s.kind, FARM_SECRET_ENV);
    assert_string_equal(s.source, "TOKEN");
    /* buildx: type=env with src= names the variable; with neither, the id */
    assert_int_equal(farm_secret_spec_parse(&s, "type=env,id=tok,src=TOKEN"), 0);
    assert_int_equal(s.kind, FARM_SECRET_ENV);
    assert_string_equal(s.source, "TOKEN");
    assert_int_equal(farm_secret_spec_parse(&s, "type=env,id=TOK"), 0);
    assert_string_equal(s.source, "TOK");
    assert_int_equal(farm_secret_spec_parse(&s, "type=file,id=tok"), 0);
    assert_int_equal(s.kind, FARM_SECRET_FILE);
    assert_string_equal(s.source, "tok");
    assert_int_equal(farm_secret_spec_parse(&s, "ID=tok"), 0);
    assert_int_equal(s.kind, FARM_SECRET_AUTO);

    s_refused(farm_secret_spec_parse(&s, "id=tok,foo=bar"), "unknown key \"foo\"");
    s_refused(farm_secret_spec_parse(&s, "id=tok,src"), "\"src\" is not KEY=VALUE");
    s_refused(farm_secret_spec_parse(&s, "src=/x"), "no id=");
    s_refused(farm_secret_spec_parse(&s, "id=../x,src=/x"), "the id is not valid");
    s_refused(farm_secret_spec_parse(&s, "id=a/b,src=/x"), "the id is not valid");
    s_refused(farm_secret_spec_parse(&s, "id=tok,type=ssh"), "type=ssh");
    s_refused(farm_secret_spec_parse(&s, "id=tok,src=/x,env=Y"), "not both");
    s_refused(farm_secret_spec_parse(&s, "id=tok,type=file,env=Y"), "type=file reads src=");
    s_refused(farm_secret_spec_parse(&s, "id=tok,src="), "is empty");
}

static void test_secret_values(void **state)
{
    farm_buildflags_t f = {0};
    farm_secret_spec_t s;
    char dir[] = "/tmp/farm-test-secrets-XXXXXX", path[256];
    FILE *fp;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tok", dir);
    fp = fopen(path, "w");
    fputs("file-value", fp);
    fclose(fp);
    setenv("FARM_TEST_TOKEN", "env-value", 1);

    assert_int_equal(farm_secret_spec_parse(&s, "id=tok,src=tok"), 0);
    assert_int_equal(farm_buildflags_add_secret(&f, &s, dir), 0); /* relative to base_dir */
    assert_int_equal(farm_secret_spec_parse(&s, "id=e,env=FARM_TEST_TOKEN"), 0);
    assert_int_equal(farm_buildflags_add_secret(&f, &s, NULL), 0);
    assert_int_equal(f.n_secrets, 2);
    assert_int_equal(f.secrets[0].len, 10);
    assert_memory_equal(f.secrets[0].value, "file-value", 10);
    assert_string_equal(f.secrets[1].value, "env-value");
    /* auto: the variable named like the id, if set */
    assert_int_equal(farm_secret_spec_parse(&s, "id=FARM_TEST_TOKEN"), 0);
    assert_int_equal(farm_buildflags_add_secret(&f, &s, NULL), 0);
    assert_string_equal(f.secrets[2].value, "env-value");
    /* the same id again replaces */
    assert_int_equal(farm_secret_spec_parse(&s, "id=tok,env=FARM_TEST_TOKEN"), 0);
    assert_int_equal(farm_buildflags_add_secret(&f, &s, NULL), 0);
    assert_int_equal(f.n_secrets, 3);
    assert_string_equal(f.secrets[0].value, "env-value");

    assert_int_equal(farm_secret_spec_parse(&s, "id=x,src=/nonexistent/farm-secret"), 0);
    s_refused(farm_buildflags_add_secret(&f, &s, NULL),
              "secret x: cannot read /nonexistent/farm-secret");
    assert_int_equal(farm_secret_spec_parse(&s, "id=x,env=FARM_TEST_UNSET_VARIABLE"), 0);
    unsetenv("FARM_TEST_UNSET_VARIABLE");
    s_refused(farm_buildflags_add_secret(&f, &s, NULL),
              "environment variable FARM_TEST_UNSET_VARIABLE is not set");
    fp = fopen(path, "w");
    for (unsigned i = 0; i <= FARM_SECRET_MAX; i++)
        fputc('x', fp);
    fclose(fp);
    assert_int_equal(farm_secret_spec_parse(&s, "id=big,src=tok"), 0);
    s_refused(farm_buildflags_add_secret(&f, &s, dir), "larger than 64 KiB");
    for (size_t i = f.n_secrets; i < FARM_SECRETS_MAX; i++) {
        char spec[64];
        snprintf(spec, sizeof spec, "id=s%zu,env=FARM_TEST_TOKEN", i);
        assert_int_equal(farm_secret_spec_parse(&s, spec), 0);
        assert_int_equal(farm_buildflags_add_secret(&f, &s, NULL), 0);
    }
    assert_int_equal(farm_secret_spec_parse(&s, "id=one-more,env=FARM_TEST_TOKEN"), 0);
    s_refused(farm_buildflags_add_secret(&f, &s, NULL), "too many secrets (at most 16)");
    farm_buildflags_clear(&f);
    assert_null(f.secrets);
    unlink(path);
    rmdir(dir);
}

/* What a hostile peer sends: over the counts, over the sizes, bad ids, twice the same. */
static void test_wire(void **state)
{
    farm_buildflags_t f = {0}, back;
    farm_buildflags_wire_t store;
    Farm__BuildFlags w;
    farm_secret_spec_t s;
    uint8_t *buf;
    size_t len;
    Farm__BuildFlags *un;

    setenv("FARM_TEST_TOKEN", "env-value", 1);
    assert_int_equal(farm_buildflags_set_target(&f, "stage"), 0);
    f.no_cache = f.pull = 1;
    assert_int_equal(farm_buildflags_label_spec(&f, "a=1"), 0);
    assert_int_equal(farm_buildflags_annotation_spec(&f, "b=2"), 0);
    assert_int_equal(farm_buildflags_annotation_spec(&f, "index:c=3"), 0);
    assert_int_equal(farm_secret_spec_parse(&s, "id=tok,env=FARM_TEST_TOKEN"), 0);
    assert_int_equal(farm_buildflags_add_secret(&f, &s, NULL), 0);
    assert_int_equal(farm_buildflags_to_wire(&w, &store, &f), 0);
    len = farm__build_flags__get_packed_size(&w);
    buf = malloc(len);
    farm__build_flags__pack(&w, buf);
    farm_buildflags_wire_free(&store);
    un = farm__build_flags__unpack(NULL, len, buf);
    assert_non_null(un);
    assert_int_equal(farm_buildflags_from_wire(&back, un), 0);
    assert_string_equal(back.target, "stage");
    assert_true(back.no_cache && back.pull);
    assert_string_equal(back.labels[0].key, "a");
    assert_string_equal(back.annotations[0].value, "2");
    assert_string_equal(back.index_annotations[0].key, "c");
    assert_int_equal(back.secrets[0].len, 9);
    assert_memory_equal(back.secrets[0].value, "env-value", 9);
    farm_buildflags_wire_wipe(un);
    assert_int_equal(un->secrets[0]->value.data[0], 0);
    farm__build_flags__free_unpacked(un, NULL);
    free(buf);
    farm_buildflags_clear(&back);
    farm_buildflags_clear(&f);

    /* hand-made hostile messages */
    {
        Farm__Secret sec[FARM_SECRETS_MAX + 1], *secp[FARM_SECRETS_MAX + 1];
        Farm__KeyValue kv[FARM_LABELS_MAX + 1], *kvp[FARM_LABELS_MAX + 1];
        static uint8_t big[FARM_SECRET_MAX + 1];
        for (size_t i = 0; i <= FARM_SECRETS_MAX; i++) {
            farm__secret__init(&sec[i]);
            sec[i].id = "s";
            secp[i] = &sec[i];
        }
        for (size_t i = 0; i <= FARM_LABELS_MAX; i++) {
            farm__key_value__init(&kv[i]);
            kv[i].key = "k";
            kv[i].value = "v";
            kvp[i] = &kv[i];
        }
        farm__build_flags__init(&w);
        w.n_secrets = FARM_SECRETS_MAX + 1;
        w.secrets = secp;
        s_refused(farm_buildflags_from_wire(&back, &w), "too many secrets (17; at most 16)");
        w.n_secrets = 1;
        sec[0].value.data = big;
        sec[0].value.len = sizeof big;
        s_refused(farm_buildflags_from_wire(&back, &w), "secret 1 is 65537 bytes");
        sec[0].value.len = 1;
        sec[0].id = "../../etc/x";
        s_refused(farm_buildflags_from_wire(&back, &w), "the id is not valid");
        sec[0].id = "s";
        w.n_secrets = 2;
        s_refused(farm_buildflags_from_wire(&back, &w), "secret s is given twice");
        w.n_secrets = 0;
        w.n_labels = FARM_LABELS_MAX + 1;
        w.labels = kvp;
        s_refused(farm_buildflags_from_wire(&back, &w), "too many labels");
        w.n_labels = 2;
        s_refused(farm_buildflags_from_wire(&back, &w), "label k is given twice");
        w.n_labels = 0;
        w.n_annotations = FARM_ANNOTATIONS_MAX;
        w.annotations = kvp;
        w.n_index_annotations = 1;
        w.index_annotations = kvp;
        s_refused(farm_buildflags_from_wire(&back, &w), "too many annotations");
        w.n_annotations = 0;
        w.n_index_annotations = 1;
        kv[0].key = "a=b";
        s_refused(farm_buildflags_from_wire(&back, &w), "index annotation key \"a=b\" is not valid");
        kv[0].key = "k";
        w.target = "--rm";
        s_refused(farm_buildflags_from_wire(&back, &w), "the target is not a stage name");
        assert_null(back.labels); /* cleared on failure */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels),       cmocka_unit_test(test_annotations),
        cmocka_unit_test(test_target),       cmocka_unit_test(test_secret_specs),
        cmocka_unit_test(test_cache_specs),
        cmocka_unit_test(test_secret_values), cmocka_unit_test(test_wire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
