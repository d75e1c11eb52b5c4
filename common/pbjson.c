/* SPDX-License-Identifier: Apache-2.0 */
#include "common/pbjson.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/* The schema is not recursive (farm.proto), so the walk is as deep as the schema. */

static int s_hidden(const ProtobufCFieldDescriptor *f)
{
    if (strstr(f->name, "secret") || strstr(f->name, "token"))
        return 1;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        const ProtobufCMessageDescriptor *d = f->descriptor;
        if (strcmp(d->name, "farm.RegistryCredential") == 0 || strcmp(d->name, "farm.Secret") == 0)
            return 1;
    }
    return 0;
}

static json_t *s_u64(uint64_t v)
{
    /* JSON has one number type; past 2^63 (no count or size of farm's gets there) a
     * real keeps the order of magnitude rather than wrapping negative */
    return v <= (uint64_t)INT64_MAX ? json_integer((json_int_t)v) : json_real((double)v);
}

static json_t *s_base64(const ProtobufCBinaryData *b)
{
    if (b->len > (SIZE_MAX / 4) * 3 - 3)
        return NULL;
    size_t n = 4 * ((b->len + 2) / 3);
    char *text = malloc(n + 1);
    if (!text)
        return NULL;
    EVP_EncodeBlock((unsigned char *)text, b->data, (int)b->len);
    json_t *j = json_stringn(text, n);
    free(text);
    return j;
}

static json_t *s_message(const ProtobufCMessage *msg);

/* Length of the valid UTF-8 sequence at s (1-4), or 0 (RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF). */
static size_t s_utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
             : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
        return 0;
    return n;
}

/* A string as JSON. proto3 strings should be UTF-8, but a build's log line is whatever a
 * RUN step printed: each byte that is not part of valid UTF-8 becomes U+FFFD rather
 * than failing the whole reply. */
static json_t *s_string(const char *s)
{
    if (!s)
        return json_string("");
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t len = strlen(s);
    if (len > SIZE_MAX / 3 - 1)
        return NULL;
    char *fixed = malloc(3 * len + 1), *w = fixed;
    if (!fixed)
        return NULL;
    for (const unsigned char *r = (const unsigned char *)s; *r;) {
        size_t n = s_utf8_len(r);
        if (n) {
            memcpy(w, r, n);
            w += n, r += n;
        } else {
            memcpy(w, "\xef\xbf\xbd", 3);
            w += 3, r++;
        }
    }
    j = json_stringn(fixed, (size_t)(w - fixed));
    free(fixed);
    return j;
}

/* One value of field f at p (an element of a repeated field, or the field itself). */
static json_t *s_value(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: return json_integer((json_int_t) * (const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return s_u64(*(const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT: return json_real(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE: return json_real(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL: return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        /* a number this build does not know (a newer peer's): the number itself */
        return ev ? json_string(ev->name) : json_integer(v);
    }
    case PROTOBUF_C_TYPE_STRING: return s_string(*(char *const *)p);
    case PROTOBUF_C_TYPE_BYTES: return s_base64(p);
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        return m ? s_message(m) : json_null();
    }
    }
    return NULL;
}

static size_t s_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return 8;
    case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM: return sizeof(int);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* The field as JSON; *absent set for a oneof member that is not the one set, or an
 * optional without a value (proto2 or proto3 `optional`). */
static json_t *s_field(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, int *absent)
{
    const char *base = (const char *)msg;
    const void *p = base + f->offset;
    *absent = 0;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = *(const size_t *)(base + f->quantifier_offset);
        const char *items = *(char *const *)p;
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++) {
            json_t *v = s_value(f, items + i * s_size(f->type));
            if (!v || json_array_append_new(arr, v) < 0)
                json_decref(arr), arr = NULL;
        }
        return arr;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        if (*(const uint32_t *)(base + f->quantifier_offset) != f->id) {
            *absent = 1;
            return NULL;
        }
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
               f->type != PROTOBUF_C_TYPE_STRING) {
        if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset)) {
            *absent = 1;
            return NULL;
        }
    }
    return s_value(f, p);
}

static json_t *s_message(const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    json_t *obj = json_object();
    for (unsigned i = 0; obj && i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (s_hidden(f))
            continue;
        int absent;
        json_t *v = s_field(msg, f, &absent);
        if (absent)
            continue;
        if (!v || json_object_set_new(obj, f->name, v) < 0)
            json_decref(obj), obj = NULL;
    }
    return obj;
}

json_t *farm_pbjson(const ProtobufCMessage *msg)
{
    return s_message(msg);
}

char *farm_pbjson_dumps(const ProtobufCMessage *msg, int pretty)
{
    json_t *j = s_message(msg);
    if (!j)
        return NULL;
    char *text = json_dumps(j, pretty ? JSON_INDENT(2) | JSON_PRESERVE_ORDER
                                      : JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return text;
}

int farm_pbjson_print(FILE *out, const ProtobufCMessage *msg)
{
    char *text = farm_pbjson_dumps(msg, 1);
    if (!text)
        return -1;
    int rc = fputs(text, out) < 0 || fputc('\n', out) == EOF ? -1 : 0;
    free(text);
    return rc;
}
