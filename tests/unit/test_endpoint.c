/* SPDX-License-Identifier: Apache-2.0 */
/* The one endpoint rule: loopback is a literal 127.0.0.0/8 or ::1 address, ipc:// or
 * inproc://, judged by parsing the address, never by how the host name is spelt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/endpoint.h"
#include "common/error.h"

static void test_loopback_literals(void **state)
{
    (void)state;
    const char *yes[] = {"tcp://127.0.0.1:7701", "tcp://127.255.3.4:1", "tcp://[::1]:7701",
                         "tcp://[::ffff:127.0.0.1]:7701", "ipc:///run/farm/clients.sock",
                         "inproc://x"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (!farm_endpoint_loopback(yes[i]))
            fail_msg("%s is loopback but was not taken for it", yes[i]);
}

/* Names and prefixes that merely look local: each resolves to whatever DNS or the
 * resolver says, or is not the address it starts with. */
static void test_not_loopback(void **state)
{
    (void)state;
    const char *no[] = {"tcp://127.attacker.example:7701", "tcp://127.0.0.1.nip.io:7701",
                        "tcp://localhost:7701", "tcp://127.1:7701", "tcp://127.0.0.01:7701",
                        "tcp://0x7f.0.0.1:7701", "tcp://127.0.0.1;10.0.0.5:7701",
                        "tcp://10.0.0.5;127.0.0.1:7701", "tcp://eth0:7701",
                        "tcp://[::1%lo]:7701", "tcp://[::2]:7701", "tcp://128.0.0.1:7701",
                        "tcp://0.0.0.0:7701", "tcp://*:7701", "tcp://[::]:7701",
                        "tcp://10.0.0.10:7701", "tcp://127.0.0.1:", "tcp://127.0.0.1",
                        "udp://127.0.0.1:7701", "ipc://", "", "127.0.0.1:7701"};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (farm_endpoint_loopback(no[i]))
            fail_msg("%s was taken for loopback", no[i]);
    assert_int_equal(farm_endpoint_loopback(NULL), 0);
}

static void test_parse_fields(void **state)
{
    farm_endpoint_t ep;
    (void)state;

    assert_int_equal(farm_endpoint_parse(&ep, "tcp://[::1]:7701"), 0);
    assert_int_equal(ep.kind, FARM_ENDPOINT_TCP);
    assert_string_equal(ep.host, "::1");
    assert_int_equal(ep.port, 7701);
    assert_true(ep.loopback);
    assert_false(ep.wildcard);

    assert_int_equal(farm_endpoint_parse(&ep, "tcp://farm.example.com:65535"), 0);
    assert_string_equal(ep.host, "farm.example.com");
    assert_int_equal(ep.port, 65535);
    assert_false(ep.loopback);

    assert_int_equal(farm_endpoint_parse(&ep, "tcp://0.0.0.0:7700"), 0);
    assert_true(ep.wildcard);
    assert_int_equal(farm_endpoint_parse(&ep, "tcp://*:7700"), 0);
    assert_true(ep.wildcard);
    assert_int_equal(farm_endpoint_parse(&ep, "tcp://[::]:7700"), 0);
    assert_true(ep.wildcard);

    assert_int_equal(farm_endpoint_parse(&ep, "ipc:///tmp/x"), 0);
    assert_int_equal(ep.kind, FARM_ENDPOINT_IPC);
    assert_int_equal(farm_endpoint_parse(&ep, "inproc://y"), 0);
    assert_int_equal(ep.kind, FARM_ENDPOINT_INPROC);
}

/* Each refusal says what is wrong, in words a person can act on. */
static void test_parse_errors(void **state)
{
    static const struct {
        const char *e, *why;
    } bad[] = {{"", "it is empty"},
               {"http://x:1", "use tcp://host:port, ipc://path or inproc://name"},
               {"tcp://x", "it needs a host and a port"},
               {"tcp://:7701", "it needs a host and a port"},
               {"tcp://[::1:7701", "an IPv6 host goes in brackets"},
               {"tcp://[]:7701", "an IPv6 host goes in brackets"},
               {"tcp://a b:1", "the host contains a space"},
               {"tcp://a/b:1", "a slash"},
               {"tcp://a:0", "the port must be a number from 1 to 65535"},
               {"tcp://a:65536", "the port must be a number from 1 to 65535"},
               {"tcp://a:12x", "the port must be a number from 1 to 65535"},
               {"tcp://a:123456", "the port must be a number from 1 to 65535"},
               {"ipc://", "it needs a path"},
               {"inproc://", "or a name"}};
    farm_endpoint_t ep;
    char host[300];
    (void)state;

    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(farm_endpoint_parse(&ep, bad[i].e), FARM_EINVALID);
        if (!strstr(farm_error_last(), bad[i].why))
            fail_msg("%s: expected \"%s\", got \"%s\"", bad[i].e, bad[i].why, farm_error_last());
    }
    memset(host, 'a', sizeof host);
    memcpy(host, "tcp://", 6);
    memcpy(host + 280, ":1", 3);
    assert_int_equal(farm_endpoint_parse(&ep, host), FARM_EINVALID);
    assert_non_null(strstr(farm_error_last(), "the host is 274 bytes"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_literals),
        cmocka_unit_test(test_not_loopback),
        cmocka_unit_test(test_parse_fields),
        cmocka_unit_test(test_parse_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
