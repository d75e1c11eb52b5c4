/* SPDX-License-Identifier: Apache-2.0 */
/* common/registry auth building blocks: WWW-Authenticate parsing and docker config.json
 * credential lookup (auths, credHelpers, credsStore through a real helper process). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/registry_auth.h"

/* ------------------------------------------------------------------------------ */
/* challenges */

static void test_challenge_bearer(void **state)
{
    farm_auth_challenge_t c;
    assert_int_equal(farm_registry_parse_challenge(
                         &c, "Bearer realm=\"https://auth.docker.io/token\",service=\"registry."
                             "docker.io\",scope=\"repository:library/alpine:pull,push\""),
                     0);
    assert_string_equal(c.scheme, "Bearer");
    assert_string_equal(c.realm, "https://auth.docker.io/token");
    assert_string_equal(c.service, "registry.docker.io");
    /* the comma inside the quoted scope does not split it */
    assert_string_equal(c.scope, "repository:library/alpine:pull,push");
    assert_string_equal(c.error, "");
}

static void test_challenge_forms(void **state)
{
    farm_auth_challenge_t c;
    /* case-insensitive scheme and names, spaces around '=', unquoted token values */
    assert_int_equal(farm_registry_parse_challenge(
                         &c, "bearer  REALM = https://r.example/token , Service=r.example"), 0);
    assert_string_equal(c.scheme, "bearer");
    assert_string_equal(c.realm, "https://r.example/token");
    assert_string_equal(c.service, "r.example");
    /* escapes in quoted strings; unknown params ignored; error param kept */
    assert_int_equal(farm_registry_parse_challenge(
                         &c, "Bearer realm=\"https://a/t?x=\\\"y\\\"\", foo=\"a,b\", "
                             "error=\"insufficient_scope\", scope=\"repository:a:pull\""),
                     0);
    assert_string_equal(c.realm, "https://a/t?x=\"y\"");
    assert_string_equal(c.error, "insufficient_scope");
    assert_string_equal(c.scope, "repository:a:pull");
    /* Basic */
    assert_int_equal(farm_registry_parse_challenge(&c, "Basic realm=\"farm, test\""), 0);
    assert_string_equal(c.scheme, "Basic");
    assert_string_equal(c.realm, "farm, test");
    /* several challenges in one value: Bearer wins wherever it is */
    assert_int_equal(farm_registry_parse_challenge(
                         &c, "Basic realm=\"x\", Negotiate, Bearer realm=\"https://t/\","
                             "service=\"s\""),
                     0);
    assert_string_equal(c.scheme, "Bearer");
    assert_string_equal(c.realm, "https://t/");
    assert_string_equal(c.service, "s");
    assert_int_equal(farm_registry_parse_challenge(&c, "Negotiate abc==, Basic realm=r"), 0);
    assert_string_equal(c.scheme, "Basic");
}

static void test_challenge_bad(void **state)
{
    farm_auth_challenge_t c;
    char big[3000];
    assert_int_equal(farm_registry_parse_challenge(&c, NULL), FARM_EINVALID);
    assert_int_equal(farm_registry_parse_challenge(&c, ""), FARM_EINVALID);
    assert_int_equal(farm_registry_parse_challenge(&c, "Negotiate"), FARM_EINVALID);
    assert_int_equal(farm_registry_parse_challenge(&c, "Bearer service=\"x\""), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "realm"));
    assert_int_equal(farm_registry_parse_challenge(&c, "Bearer realm=\"unterminated"),
                     FARM_EINVALID);
    assert_int_equal(farm_registry_parse_challenge(&c, "=oops"), FARM_EINVALID);
    /* a realm that does not fit is refused, not cut */
    memset(big, 'a', sizeof big);
    memcpy(big, "Bearer realm=\"", 14);
    big[sizeof big - 2] = '"';
    big[sizeof big - 1] = '\0';
    assert_int_equal(farm_registry_parse_challenge(&c, big), FARM_EINVALID);
}

/* ------------------------------------------------------------------------------ */
/* credentials */

typedef struct {
    char dir[64];
    char cfg[128];
    char *old_path;
} cfg_fixture_t;

static int s_setup(void **state)
{
    cfg_fixture_t *fx = calloc(1, sizeof *fx);
    const char *path = getenv("PATH");
    char newpath[4096];
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/farm-test-creds-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->cfg, sizeof fx->cfg, "%s/config.json", fx->dir);
    fx->old_path = strdup(path ? path : "/usr/bin:/bin");
    /* the helpers live in the temp dir, found through PATH like docker finds them */
    snprintf(newpath, sizeof newpath, "%s:%s", fx->dir, fx->old_path);
    setenv("PATH", newpath, 1);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    cfg_fixture_t *fx = *state;
    setenv("PATH", fx->old_path, 1);
    free(fx->old_path);
    farm_fs_rmtree(fx->dir);
    unsetenv("DOCKER_CONFIG");
    free(fx);
    return 0;
}

static void s_write(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

/* docker-credential-test: records its argv and stdin, answers from a table. The secret
 * must arrive on stdin, never on the command line. */
static void s_helper(const cfg_fixture_t *fx, const char *name)
{
    char path[160], script[2048];
    snprintf(path, sizeof path, "%s/docker-credential-%s", fx->dir, name);
    snprintf(script, sizeof script,
             "#!/bin/sh\n"
             "echo \"$@\" > '%s/argv-%s'\n"
             "server=$(cat)\n"
             "printf '%%s' \"$server\" > '%s/stdin-%s'\n"
             "case \"$server\" in\n"
             "  helper.example) echo '{\"ServerURL\":\"helper.example\",\"Username\":\"hu\","
             "\"Secret\":\"hs3cret\"}' ;;\n"
             "  https://index.docker.io/v1/) echo '{\"Username\":\"<token>\","
             "\"Secret\":\"refresh-tok\"}' ;;\n"
             "  broken.example) echo 'not json' ;;\n"
             "  fail.example) echo 'keychain locked' ; exit 3 ;;\n"
             "  *) echo 'credentials not found in native keychain'; exit 1 ;;\n"
             "esac\n",
             fx->dir, name, fx->dir, name);
    s_write(path, script, 0755);
}

static void s_expect(const char *cfg, const char *host, const char *user, const char *secret,
                     int identity)
{
    farm_registry_creds_t c;
    int rc = farm_registry_credentials_lookup(&c, cfg, host);
    if (rc != 0)
        fail_msg("lookup %s: rc %d: %s", host, rc, farm_error_last());
    assert_string_equal(c.username, user);
    assert_string_equal(c.secret, secret);
    assert_int_equal(c.identity_token, identity);
    farm_registry_creds_clear(&c);
    assert_null(c.username);
    assert_null(c.secret);
    farm_registry_creds_clear(&c);
}

static void test_auths(void **state)
{
    cfg_fixture_t *fx = *state;
    farm_registry_creds_t c;
    /* dXNlcjpwYTpzcw== is "user:pa:ss" (the password may hold ':'); Hub under its v1 URL */
    s_write(fx->cfg,
            "{\"auths\":{"
            "\"https://index.docker.io/v1/\":{\"auth\":\"aHViOmh1YnB3\"},"
            "\"localhost:5000\":{\"auth\":\"dXNlcjpwYTpzcw==\"},"
            "\"https://reg.example/v1/\":{\"auth\":\"YTpi\"},"
            "\"http://plain.example\":{\"username\":\"pu\",\"password\":\"pp\"},"
            "\"idt.example\":{\"auth\":\"aWQ6\",\"identitytoken\":\"itok\"},"
            "\"empty.example\":{},"
            "\"bad.example\":{\"auth\":\"!!!!\"}"
            "}}",
            0600);
    s_expect(fx->cfg, "docker.io", "hub", "hubpw", 0);
    s_expect(fx->cfg, "registry-1.docker.io", "hub", "hubpw", 0);
    s_expect(fx->cfg, "localhost:5000", "user", "pa:ss", 0);
    s_expect(fx->cfg, "reg.example", "a", "b", 0);
    s_expect(fx->cfg, "REG.example", "a", "b", 0);
    s_expect(fx->cfg, "plain.example", "pu", "pp", 0);
    s_expect(fx->cfg, "idt.example", "id", "itok", 1);
    /* a port is part of the host */
    assert_int_equal(farm_registry_credentials_lookup(&c, fx->cfg, "localhost:5001"),
                     FARM_ENOTFOUND);
    assert_int_equal(farm_registry_credentials_lookup(&c, fx->cfg, "localhost"),
                     FARM_ENOTFOUND);
    assert_int_equal(farm_registry_credentials_lookup(&c, fx->cfg, "empty.example"),
                     FARM_ENOTFOUND);
    assert_int_equal(farm_registry_credentials_lookup(&c, fx->cfg, "bad.example"),
                     FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), fx->cfg));
    assert_null(c.secret);

    /* no file: not an error, just nobody to log in as */
    assert_int_equal(farm_registry_credentials_lookup(&c, "/nonexistent/config.json", "x.io"),
                     FARM_ENOTFOUND);
    /* a broken file is an error that names it */
    s_write(fx->cfg, "{\"auths\": {", 0600);
    assert_int_equal(farm_registry_credentials_lookup(&c, fx->cfg, "x.io"), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), fx->cfg));
}

static void test_default_path(void **state)
{
    cfg_fixture_t *fx = *state;
    s_write(fx->cfg, "{\"auths\":{\"env.example\":{\"auth\":\"ZTpm\"}}}", 0600);
    setenv("DOCKER_CONFIG", fx->dir, 1);
    s_expect(NULL, "env.example", "e", "f", 0);
}

static void test_helpers(void **state)
{
    cfg_fixture_t *fx = *state;
    farm_registry_creds_t c;
    char path[160], buf[256] = "";
    FILE *f;

    s_helper(fx, "test");
    s_write(fx->cfg,
            "{\"auths\":{\"helper.example\":{},\"fallback.example\":{\"auth\":\"Zjpn\"}},"
            "\"credHelpers\":{\"helper.example\":\"test\",\"fail.example\":\"test\","
            "\"broken.example\":\"test\",\"nohelper.example\":\"absent\","
            "\"evil.example\":\"../x\"},"
            "\"credsStore\":\"test\"}",
            0600);
    s_expect(fx->cfg, "helper.example", "hu", "hs3cret", 0);
    /* the helper got "get" as its only argument and the server on stdin */
    snprintf(path, sizeof path, "%s/argv-test", fx->dir);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "get\n");
    snprintf(path, sizeof path, "%s/stdin-test", fx->dir);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "helper.example");

    /* credsStore for Hub: asked with docker's v1 URL; "<token>" marks an identity token */
    s_expect(fx->cfg, "docker.io", "<token>", "refresh-tok", 1);
    /* credsStore says "not found": auths still answers */
    s_expect(fx->cfg, "fallback.example", "f", "g", 0);
    /* nothing anywhere */
    assert_int_equal(farm_registry_credentials_lookup(&c, fx->cfg, "none.example"),
                     FARM_ENOTFOUND);
    /* a failing helper is an error naming it; its output is shown */
    assert_int_equal(farm_registry_credentials_lookup(&c, fx->cfg, "fail.example"), FARM_ERROR);
    assert_non_null(strstr(farm_error_last(), "docker-credential-test"));
    assert_non_null(strstr(farm_error_last(), "keychain locked"));
    assert_int_equal(farm_registry_credentials_lookup(&c, fx->cfg, "broken.example"),
                     FARM_EINVALID);
    /* a helper that is not installed */
    assert_true(farm_registry_credentials_lookup(&c, fx->cfg, "nohelper.example") < 0);
    assert_non_null(strstr(farm_error_last(), "docker-credential-absent"));
    /* helper names are names, not paths */
    assert_int_equal(farm_registry_credentials_lookup(&c, fx->cfg, "evil.example"),
                     FARM_EINVALID);
    assert_null(c.secret);

    /* a credsStore this host does not have installed: auths still answers; a helper that
     * runs and fails does not fall back (fail.example above) */
    s_write(fx->cfg,
            "{\"auths\":{\"fallback.example\":{\"auth\":\"Zjpn\"}},\"credsStore\":\"absent\"}",
            0600);
    s_expect(fx->cfg, "fallback.example", "f", "g", 0);
    assert_int_equal(farm_registry_credentials_lookup(&c, fx->cfg, "none.example"),
                     FARM_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_challenge_bearer),
        cmocka_unit_test(test_challenge_forms),
        cmocka_unit_test(test_challenge_bad),
        cmocka_unit_test_setup_teardown(test_auths, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_default_path, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_helpers, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
