/* SPDX-License-Identifier: Apache-2.0 */
/* farm_text_inert: what a hostile build prints to retitle, clear or forge the user's
 * terminal comes out with no ESC, no C0/C1 control and no invalid UTF-8, while plain text
 * and UTF-8 come out as they went in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"

/* farm_text_inert into a roomy buffer, not cut, and the _dup variant agrees. */
static const char *s_inert(const char *in)
{
    static char out[4096];
    char *dup = farm_text_inert_dup(in);

    assert_int_equal(farm_text_inert(out, sizeof out, in), 0);
    assert_non_null(dup);
    assert_string_equal(dup, out);
    free(dup);
    return out;
}

/* No byte a terminal would act on: C0 (but none at all: \n is shown as text), DEL, and
 * nothing outside printable ASCII that is not valid UTF-8 of a printable character. */
static void s_assert_inert(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        assert_true(*p >= 0x20 && *p != 0x7f);
        if (*p == 0xc2) /* U+0080..U+009F are C1 controls */
            assert_true(p[1] >= 0xa0);
    }
}

static void test_plain_text_unchanged(void **state)
{
    assert_string_equal(s_inert(""), "");
    assert_string_equal(s_inert("Step 3/7 : RUN make -j4 && echo \"ok\" \\ 100%"),
                        "Step 3/7 : RUN make -j4 && echo \"ok\" \\ 100%");
}

static void test_clear_screen_removed(void **state)
{
    assert_string_equal(s_inert("a\x1b[2Jb"), "ab");
    assert_string_equal(s_inert("\x1b[H\x1b[2J\x1b[3Jcleared"), "cleared");
    assert_string_equal(s_inert("\x1b" "c" "reset"), "reset"); /* RIS, two bytes */
}

static void test_osc_title_removed(void **state)
{
    /* ended by BEL (xterm) and by ST = ESC \ (ECMA-48) */
    assert_string_equal(s_inert("x\x1b]0;PWNED-TITLE\x07y"), "xy");
    assert_string_equal(s_inert("x\x1b]2;PWNED-TITLE\x1b\\y"), "xy");
    /* a hyperlink (OSC 8) and a DCS string go whole */
    assert_string_equal(s_inert("\x1b]8;;http://evil/\x1b\\link\x1b]8;;\x1b\\"), "link");
    assert_string_equal(s_inert("a\x1bP+q544e\x1b\\b"), "ab");
    /* unfinished: the ESC is shown and the rest is text a person reads */
    assert_string_equal(s_inert("t\x1b]0;half"), "t\\x1b]0;half");
}

static void test_csi_with_params(void **state)
{
    assert_string_equal(s_inert("\x1b[1;31mred\x1b[0m"), "red");
    assert_string_equal(s_inert("up\x1b[10A\x1b[2K\x1b[?25l\x1b[38;5;196mX"), "upX");
    assert_string_equal(s_inert("\x1b[>0;1 qz"), "z"); /* private marker, intermediate */
    /* a control inside a CSI breaks it: shown, not obeyed */
    assert_string_equal(s_inert("\x1b[1\n2J"), "\\x1b[1\\n2J");
}

static void test_lone_esc(void **state)
{
    assert_string_equal(s_inert("end\x1b"), "end\\x1b");
    assert_string_equal(s_inert("\x1b[12"), "\\x1b[12");
    assert_string_equal(s_inert("\x1b\x1b[2J"), "\\x1b");
    assert_string_equal(s_inert("\x1b\xc3\xa9"), "\\x1b\xc3\xa9");
}

static void test_c1_csi(void **state)
{
    /* raw 0x9b is CSI to an 8-bit terminal and is not UTF-8: shown as a byte */
    assert_string_equal(s_inert("a\x9b" "2Jb"), "a\\x9b2Jb");
    /* U+009B in UTF-8 (C2 9B), and U+009D (OSC), U+0085 (NEL) */
    assert_string_equal(s_inert("a\xc2\x9b" "2Jb"), "a\\u009b2Jb");
    assert_string_equal(s_inert("\xc2\x9d" "0;t\xc2\x9c"), "\\u009d0;t\\u009c");
    assert_string_equal(s_inert("\xc2\x85"), "\\u0085");
    /* U+00A0 (no-break space) is the first that is not C1 */
    assert_string_equal(s_inert("\xc2\xa0"), "\xc2\xa0");
    /* an overlong ESC is not UTF-8 either */
    assert_string_equal(s_inert("\xc0\x9b"), "\\xc0\\x9b");
}

static void test_carriage_return_and_backspace(void **state)
{
    /* "\r" would let the rest overwrite what came before on the same line */
    assert_string_equal(s_inert("harmless\rFORGED"), "harmless\\rFORGED");
    assert_string_equal(s_inert("rm -rf /tmp/x\b\b\b\b\b\b\b\b\b\b\b\b\bls"),
                        "rm -rf /tmp/x\\x08\\x08\\x08\\x08\\x08\\x08\\x08\\x08\\x08\\x08"
                        "\\x08\\x08\\x08ls");
    /* CRLF line ends, and a CR at the very end, are dropped */
    assert_string_equal(s_inert("line\r"), "line");
    assert_string_equal(s_inert("a\r\nb"), "a\\nb");
    /* newlines would forge a line of farmctl's own ("[linux/amd64 n1] ...", a digest) */
    assert_string_equal(s_inert("x\n[linux/amd64 n1] pushed\nsha256:00"),
                        "x\\n[linux/amd64 n1] pushed\\nsha256:00");
}

static void test_lines_keep_line_breaks(void **state)
{
    char *out = farm_text_inert_lines_dup("arm64 failed:\r\nlast log lines:\n  | \x1b[2Jx\ry\n");
    assert_non_null(out);
    assert_string_equal(out, "arm64 failed:\nlast log lines:\n  | x\\ry\n");
    free(out);
}

static void test_other_controls(void **state)
{
    assert_string_equal(s_inert("a\tb"), "a b");
    assert_string_equal(s_inert("bell\x07 del\x7f so\x0e"), "bell\\x07 del\\x7f so\\x0e");
    char all[32];
    for (int i = 1; i < 32; i++)
        all[i - 1] = (char)i;
    all[31] = '\0';
    s_assert_inert(s_inert(all));
}

static void test_utf8_kept(void **state)
{
    const char *s = "caf\xc3\xa9 \xe2\x9c\x93 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x90\xb3 "
                    "\xef\xbf\xbd \xf4\x8f\xbf\xbf";
    assert_string_equal(s_inert(s), s);
    /* overrides that reorder the line on screen (Trojan Source) are shown */
    assert_string_equal(s_inert("a\xe2\x80\xae" "b\xe2\x81\xa6"), "a\\u202eb\\u2066");
}

static void test_invalid_utf8_visible(void **state)
{
    assert_string_equal(s_inert("\xff\xfe"), "\\xff\\xfe");
    assert_string_equal(s_inert("a\xc3"), "a\\xc3");                /* cut at the end */
    assert_string_equal(s_inert("\xe2\x9c" "x"), "\\xe2\\x9cx");     /* cut in the middle */
    assert_string_equal(s_inert("\xed\xa0\x80"), "\\xed\\xa0\\x80"); /* surrogate */
    assert_string_equal(s_inert("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80"); /* > U+10FFFF */
    assert_string_equal(s_inert("\xe0\x80\xaf"), "\\xe0\\x80\\xaf"); /* overlong "/" */
    assert_string_equal(s_inert("\x80\xbf"), "\\x80\\xbf");          /* lone continuation */
}

/* the same rules say yes or no to a whole string (labels, annotations: common/buildflags) */
static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(farm_utf8_valid(""));
    assert_true(farm_utf8_valid("plain"));
    assert_true(farm_utf8_valid("caf\xc3\xa9 \xf0\x9f\x90\xb3 \xf4\x8f\xbf\xbf"));
    assert_false(farm_utf8_valid("a\xc3"));
    assert_false(farm_utf8_valid("\xed\xa0\x80"));
    assert_false(farm_utf8_valid("\xf4\x90\x80\x80"));
    assert_false(farm_utf8_valid("\xe0\x80\xaf"));
    assert_false(farm_utf8_valid("\xc1\xbf"));
    assert_false(farm_utf8_valid("ok\x80"));
}

static void test_long_line_cut_between_characters(void **state)
{
    char big[20000], out[64];
    size_t n = 0;

    /* 2000 x "é\x1b[31m" + "\x07": only the visible part counts, and a cut never splits
     * a character or an escape */
    for (int i = 0; i < 2000; i++) {
        memcpy(big + n, "\xc3\xa9\x1b[31m", 7);
        n += 7;
    }
    big[n++] = '\x07';
    big[n] = '\0';
    assert_int_equal(farm_text_inert(out, sizeof out, big), 1);
    assert_true(strlen(out) < sizeof out);
    assert_string_equal(out + strlen(out) - 3, "...");
    for (size_t i = 0; i + 3 < strlen(out); i += 2)
        assert_memory_equal(out + i, "\xc3\xa9", 2);
    char *dup = farm_text_inert_dup(big);
    assert_non_null(dup);
    assert_int_equal(strlen(dup), 2000 * 2 + 4); /* and the BEL as "\x07" */
    assert_string_equal(dup + 4000, "\\x07");
    free(dup);

    /* an escape that would straddle the end is left out whole */
    assert_int_equal(farm_text_inert(out, 9, "abcd\x01zzzzzz"), 1);
    assert_string_equal(out, "abcd...");
    /* exactly fits: not cut; one more: cut */
    assert_int_equal(farm_text_inert(out, 6, "a\x01"), 0);
    assert_string_equal(out, "a\\x01");
    assert_int_equal(farm_text_inert(out, 6, "ab\x01"), 1);
    assert_string_equal(out, "ab...");
    /* too small to say "...": empty, as farm_str_fmt_cut */
    assert_int_equal(farm_text_inert(out, 3, "abcdef"), 1);
    assert_string_equal(out, "");
}

static void test_nul_ends_the_text(void **state)
{
    /* C strings: a peer's NUL can only end the text early (protobuf-c strings are NUL
     * terminated), so nothing after it reaches the screen */
    char buf[] = "visible\0\x1b[2Jhidden";
    assert_string_equal(s_inert(buf), "visible");
}

static void test_attack_line_is_inert(void **state)
{
    const char *attack = "MARKER-1\x1b]0;PWNED\x07\x1b[2J\x1b[H\x1b[5A\x9b" "2J\xc2\x9b" "2J"
                         "\rFORGED\x1b" "7\x1b[?1049h\x1b";
    const char *out = s_inert(attack);
    s_assert_inert(out);
    assert_non_null(strstr(out, "MARKER-1"));
    assert_null(strstr(out, "PWNED"));
    assert_null(strchr(out, '\x1b'));
}

/* Sizes in farmctl nodes and du: a plain number under 1 KiB, one decimal under 10 */
static void test_bytes(void **state)
{
    char b[16];
    (void)state;
    farm_text_bytes(b, sizeof b, 0);
    assert_string_equal(b, "0");
    farm_text_bytes(b, sizeof b, 1023);
    assert_string_equal(b, "1023");
    farm_text_bytes(b, sizeof b, 1536);
    assert_string_equal(b, "1.5K");
    farm_text_bytes(b, sizeof b, 20ull << 20);
    assert_string_equal(b, "20M");
    farm_text_bytes(b, sizeof b, 3ull << 50);
    assert_string_equal(b, "3.0P");
    farm_text_bytes(b, sizeof b, ~0ull); /* past P stays in P */
    assert_string_equal(b, "16384P");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_plain_text_unchanged),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_clear_screen_removed),
        cmocka_unit_test(test_osc_title_removed),
        cmocka_unit_test(test_csi_with_params),
        cmocka_unit_test(test_lone_esc),
        cmocka_unit_test(test_c1_csi),
        cmocka_unit_test(test_carriage_return_and_backspace),
        cmocka_unit_test(test_lines_keep_line_breaks),
        cmocka_unit_test(test_other_controls),
        cmocka_unit_test(test_utf8_kept),
        cmocka_unit_test(test_invalid_utf8_visible),
        cmocka_unit_test(test_long_line_cut_between_characters),
        cmocka_unit_test(test_nul_ends_the_text),
        cmocka_unit_test(test_attack_line_is_inert),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
