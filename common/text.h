/* SPDX-License-Identifier: Apache-2.0 */
/* Text a peer sent (build output, node names, error texts), made inert before a terminal
 * or a log shows it: it can no longer move the cursor, clear or retitle the screen, or
 * start a line that looks like ours. The rules, in the order they are tried:
 *  - complete ESC sequences are removed: CSI (ESC [ params final), OSC/DCS/SOS/PM/APC
 *    strings (ESC ] ... BEL or ESC \), ESC + intermediates + final, two-byte ESC x;
 *    they color or move, none carries text to read
 *  - TAB becomes one space; CR at the end or before LF (CRLF) is dropped
 *  - what is left is shown, not obeyed: LF as "\n", CR as "\r", a lone or unfinished ESC
 *    and every other C0 control and DEL as "\xHH", a byte that is not valid UTF-8 (so also
 *    a raw C1 control such as 0x9b) as "\xHH", C1 controls written in UTF-8 (U+0080..
 *    U+009F) and bidi overrides (U+202A..U+202E, U+2066..U+2069) as "\uHHHH"
 *  - valid UTF-8 and printable ASCII stay as they are; a backslash is not doubled (what
 *    looks like an escape may be the peer's own text: it is inert either way). */
#ifndef FARM_TEXT_H
#define FARM_TEXT_H

#include <stddef.h>

/* out = in made inert, for a person to read. When it does not fit in len bytes it is cut
 * between characters (never inside one or inside an escape) and ends in "...". Returns 1
 * if cut, else 0. */
int farm_text_inert(char *out, size_t len, const char *in);

/* Bytes as a person reads them, in powers of 1024: 900 (under 1 KiB, a plain number),
 * 1.5K, 20M, 3.2G. */
void farm_text_bytes(char *out, size_t len, unsigned long long bytes);

/* The same, whole and malloc'd; NULL when out of memory. */
char *farm_text_inert_dup(const char *in);

/* The same, but LF (and CRLF) stays a line break: for a text made of lines, such as a
 * failure with its log tail. Each line is inert; the caller trusts the sender's line
 * breaks (build output cannot add one: it arrives a line at a time). */
char *farm_text_inert_lines_dup(const char *in);

/* Length of the valid UTF-8 character at p (p[0] >= 0x80) and its code point in *cp, or 0
 * when it is not one: no overlong forms, no surrogates, nothing above U+10FFFF. */
size_t farm_utf8_char(const unsigned char *p, unsigned *cp);
/* 1 when the NUL-terminated s is valid UTF-8 by the same rules, else 0. */
int farm_utf8_valid(const char *s);

#endif
