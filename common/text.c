/* SPDX-License-Identifier: Apache-2.0 */
#include "common/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ESC 0x1b
#define BEL 0x07

/* Length of the complete ESC sequence at p (p[0] == ESC), or 0 if it is unfinished or
 * not one (ECMA-48 5.3/5.4/5.6; xterm ctlseqs). */
static size_t s_esc_len(const unsigned char *p)
{
    size_t i = 1;

    if (p[1] == '[') { /* CSI: parameters 0x30-0x3f, intermediates 0x20-0x2f, final */
        for (i = 2; p[i] >= 0x30 && p[i] <= 0x3f; i++)
            ;
        for (; p[i] >= 0x20 && p[i] <= 0x2f; i++)
            ;
        return p[i] >= 0x40 && p[i] <= 0x7e ? i + 1 : 0;
    }
    if (p[1] == ']' || p[1] == 'P' || p[1] == 'X' || p[1] == '^' || p[1] == '_') {
        /* a control string: OSC ends at BEL or ST, the others at ST (ESC \) */
        for (i = 2; p[i]; i++) {
            if (p[i] == BEL && p[1] == ']')
                return i + 1;
            if (p[i] == ESC && p[i + 1] == '\\')
                return i + 2;
        }
        return 0;
    }
    for (; p[i] >= 0x20 && p[i] <= 0x2f; i++) /* nF: ESC ( B, ESC # 8, ... */
        ;
    /* Fp, Fe, Fs: ESC 7, ESC M, ESC c (reset), and the final of an nF */
    return p[i] >= 0x30 && p[i] <= 0x7e ? i + 1 : 0;
}

/* no overlong forms, no surrogates, nothing above U+10FFFF (RFC 3629 section 4) */
size_t farm_utf8_char(const unsigned char *p, unsigned *cp)
{
    size_t n;
    unsigned c, min;

    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2, c = p[0] & 0x1f, min = 0x80;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3, c = p[0] & 0x0f, min = 0x800;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4, c = p[0] & 0x07, min = 0x10000;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL */
            return 0;
        c = c << 6 | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

int farm_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned cp;
    size_t n;

    while (*p) {
        if (*p < 0x80)
            n = 1;
        else if (!(n = farm_utf8_char(p, &cp)))
            return 0;
        p += n;
    }
    return 1;
}

/* Writes the inert text into out (cap bytes with the NUL; out may be NULL when cap is 0)
 * and returns the length of the whole inert text; *cut says whether out holds less.
 * keep_lf: LF stays a line break. */
static size_t s_inert(char *out, size_t cap, const char *in, int keep_lf, int *cut)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)in;
    size_t total = 0, o = 0, mark = 0;

    *cut = 0;
    while (*p) {
        char piece[8];
        size_t n = 0, adv = 1, len;
        unsigned cp = 0;

        if (*p == ESC && (len = s_esc_len(p)) > 0) {
            adv = len; /* removed */
        } else if (*p == '\t') {
            piece[n++] = ' ';
        } else if (*p == '\r' && (p[1] == '\0' || p[1] == '\n')) {
            ; /* CRLF: the LF says it all */
        } else if (*p == '\n' && keep_lf) {
            piece[n++] = '\n';
        } else if (*p == '\n' || *p == '\r') {
            piece[n++] = '\\';
            piece[n++] = *p == '\n' ? 'n' : 'r';
        } else if (*p >= 0x20 && *p < 0x7f) {
            piece[n++] = (char)*p;
        } else if (*p < 0x80 || !(len = farm_utf8_char(p, &cp))) {
            /* C0, DEL, lone ESC, and bytes that are not UTF-8 (raw C1 among them) */
            piece[n++] = '\\';
            piece[n++] = 'x';
            piece[n++] = hex[*p >> 4];
            piece[n++] = hex[*p & 15];
        } else if (cp <= 0x9f || (cp >= 0x202a && cp <= 0x202e) ||
                   (cp >= 0x2066 && cp <= 0x2069)) {
            /* C1 controls in UTF-8, and overrides that reorder what the reader sees */
            piece[n++] = '\\';
            piece[n++] = 'u';
            for (int shift = 12; shift >= 0; shift -= 4)
                piece[n++] = hex[(cp >> shift) & 15];
            adv = len;
        } else {
            memcpy(piece, p, len);
            n = len;
            adv = len;
        }
        p += adv;
        total += n;
        if (*cut || n == 0)
            continue;
        if (o + n < cap) {
            memcpy(out + o, piece, n);
            o += n;
            if (o + 3 < cap) /* room left here for "..." */
                mark = o;
        } else {
            *cut = 1;
        }
    }
    if (*cut) {
        o = mark;
        if (o + 3 < cap) { /* else too small to say so: "" as farm_str_fmt_cut */
            memcpy(out + o, "...", 3);
            o += 3;
        }
    }
    if (cap)
        out[o] = '\0';
    return total;
}

int farm_text_inert(char *out, size_t len, const char *in)
{
    int cut;
    s_inert(out, len, in, 0, &cut);
    return cut;
}

static char *s_dup(const char *in, int keep_lf)
{
    int cut;
    size_t need = s_inert(NULL, 0, in, keep_lf, &cut) + 1;
    char *out = malloc(need);

    if (out)
        s_inert(out, need, in, keep_lf, &cut);
    return out;
}

char *farm_text_inert_dup(const char *in)
{
    return s_dup(in, 0);
}

char *farm_text_inert_lines_dup(const char *in)
{
    return s_dup(in, 1);
}

void farm_text_bytes(char *out, size_t len, unsigned long long bytes)
{
    static const char units[] = "KMGTP";
    double v = (double)bytes;
    int u = -1;

    while (v >= 1024 && u < (int)sizeof units - 2) {
        v /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(out, len, "%llu", bytes);
    else
        snprintf(out, len, v < 10 ? "%.1f%c" : "%.0f%c", v, units[u]);
}
