/* SPDX-License-Identifier: Apache-2.0 */
/* Wire unpacking: any bytes a peer sends reach farm_wire_unpack (common/wire.h). An
 * accepted Envelope must pack again and survive a second round trip unchanged.
 *
 * Except with unknown fields: libprotobuf-c (1.4) keeps them raw, and accepts field
 * number 0 when its tag is an overlong varint ("80 00") but refuses it when it re-packs
 * it canonically ("00"). farm never forwards unknown fields, so such messages are only
 * checked to pack. */
#include "fuzz.h"

#include "common/error.h"
#include "common/wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

/* Unknown fields anywhere in m (the schema is not recursive: depth is small). */
static int s_has_unknown(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;

    if (m->n_unknown_fields)
        return 1;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m;
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t j = 0; j < n; j++)
                if (s_has_unknown(v[j]))
                    return 1;
        } else {
            const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(base + f->offset);
            if (sub && s_has_unknown(sub))
                return 1;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Farm__Envelope *env = NULL, *env2 = NULL;
    uint8_t *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;

    if (farm_wire_unpack(&env, data, size) < 0) {
        FUZZ_CHECK(env == NULL, "a refused message left *out set");
        return 0;
    }
    FUZZ_CHECK(env && env->version == FARM_WIRE_VERSION &&
               env->body_case != FARM__ENVELOPE__BODY__NOT_SET, "accepted a bad envelope");
    if (env->body_case == FARM__ENVELOPE__BODY_EVENT)
        FUZZ_CHECK(farm_wire_event_kind_name(env->event->kind) != NULL, "no event kind name");

    FUZZ_CHECK(farm_wire_pack(&buf, &len, &env->base) == 0, "cannot pack an accepted message");
    if (s_has_unknown(&env->base))
        goto done;
    FUZZ_CHECK(farm_wire_unpack(&env2, buf, len) == 0, "repacked message (%zu bytes) refused: %s",
               len, farm_error_last());
    FUZZ_CHECK(env2->body_case == env->body_case, "body changed in a round trip");
    FUZZ_CHECK(farm_wire_pack(&buf2, &len2, &env2->base) == 0, "cannot pack twice");
    FUZZ_CHECK(len2 == len && memcmp(buf, buf2, len) == 0, "second round trip changed the bytes");
done:
    free(buf);
    free(buf2);
    farm_wire_free(&env2);
    farm_wire_free(&env);
    FUZZ_CHECK(env == NULL, "farm_wire_free did not clear the pointer");
    return 0;
}
