/* SPDX-License-Identifier: Apache-2.0 */
#include "common/wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "common/buildflags.h"
#include "common/child.h"
#include "common/error.h"
#include "common/keys.h"
#include "common/log.h"

const char *farm_wire_event_kind_name(Farm__EventKind kind)
{
    switch (kind) {
    case FARM__EVENT_KIND__EVENT_QUEUED: return "queued";
    case FARM__EVENT_KIND__EVENT_WAITING: return "waiting";
    case FARM__EVENT_KIND__EVENT_DISPATCHED: return "dispatched";
    case FARM__EVENT_KIND__EVENT_LOG: return "log";
    case FARM__EVENT_KIND__EVENT_PUSHED: return "pushed";
    case FARM__EVENT_KIND__EVENT_LOST: return "lost";
    case FARM__EVENT_KIND__EVENT_FAILED: return "failed";
    case FARM__EVENT_KIND__EVENT_VERIFYING: return "verifying";
    case FARM__EVENT_KIND__EVENT_CANCEL: return "cancel";
    default: return "event";
    }
}

void *farm_wire_socket(void *zctx, farm_wire_role_t role, const char *endpoint,
                       const char *identity)
{
    return farm_wire_socket_secure(zctx, role, endpoint, identity, NULL);
}

/* CURVE options, all set before bind/connect (RFC 26; libzmq tests/testutil_security). */
static int s_curve(void *sock, farm_wire_role_t role, const farm_wire_curve_t *c)
{
    int one = 1;
    size_t klen = FARM_KEY_Z85_LEN + 1; /* Z85 text with its terminating NUL */

    if (role == FARM_WIRE_ROUTER_SERVER) {
        if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
            zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->keys->secret_key, klen) != 0 ||
            /* without a ZAP domain CURVE authenticates nobody */
            zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, c->zap_domain, strlen(c->zap_domain)) != 0)
            return farm_error_set(FARM_ERROR, "CURVE setup: %s", zmq_strerror(errno));
        return 0;
    }
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c->server_key, klen) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c->keys->public_key, klen) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->keys->secret_key, klen) != 0)
        return farm_error_set(FARM_ERROR, "CURVE setup: %s", zmq_strerror(errno));
    return 0;
}

void *farm_wire_socket_secure(void *zctx, farm_wire_role_t role, const char *endpoint,
                              const char *identity, const farm_wire_curve_t *curve)
{
    return farm_wire_socket_monitored(zctx, role, endpoint, identity, curve, NULL);
}

void *farm_wire_socket_monitored(void *zctx, farm_wire_role_t role, const char *endpoint,
                                 const char *identity, const farm_wire_curve_t *curve,
                                 void **monitor_out)
{
    int64_t maxmsg = FARM_WIRE_MAXMSG;
    int linger = 0, one = 1, hwm = 10000, handshake_ms = 5000;
    void *sock = zmq_socket(zctx, role == FARM_WIRE_ROUTER_SERVER ? ZMQ_ROUTER : ZMQ_DEALER);
    int rc;

    if (!sock) {
        farm_error_set(FARM_ERROR, "zmq_socket: %s", zmq_strerror(errno));
        return NULL;
    }
    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (curve && s_curve(sock, role, curve) < 0) {
        zmq_close(sock);
        return NULL;
    }
    /* the monitor's reader is connected before bind/connect: an event sent while no
     * reader is there is dropped, and a refused loopback connect is quick */
    if (monitor_out) {
        char name[64];
        void *mon = NULL;
        snprintf(name, sizeof name, "inproc://farm-monitor-%p", sock);
        if (zmq_socket_monitor(sock, name, ZMQ_EVENT_ALL) != 0 ||
            !(mon = zmq_socket(zctx, ZMQ_PAIR)) ||
            zmq_setsockopt(mon, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
            zmq_connect(mon, name) != 0) {
            farm_error_set(FARM_ERROR, "cannot monitor a socket on %s: %s", name,
                           zmq_strerror(errno));
            if (mon)
                zmq_close(mon);
            zmq_close(sock);
            return NULL;
        }
        *monitor_out = mon;
    }
    if (role == FARM_WIRE_ROUTER_SERVER) {
        /* unroutable sends fail loudly instead of vanishing. Without CURVE (loopback
         * only) a restarted agent takes its routing id back from the dead connection;
         * with CURVE no peer may take over another's route: identity is the key. */
        zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
        /* a connection that has not finished its handshake in 5 s is dropped: idle
         * sockets must not hold the daemon's file descriptors */
        zmq_setsockopt(sock, ZMQ_HANDSHAKE_IVL, &handshake_ms, sizeof handshake_ms);
        if (!curve)
            zmq_setsockopt(sock, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
        rc = zmq_bind(sock, endpoint);
    } else {
        if (identity && *identity)
            zmq_setsockopt(sock, ZMQ_ROUTING_ID, identity, strlen(identity));
        rc = zmq_connect(sock, endpoint);
    }
    if (rc != 0) {
        farm_error_set(FARM_ERROR, "cannot %s %s: %s",
                       role == FARM_WIRE_ROUTER_SERVER ? "bind" : "connect to", endpoint,
                       zmq_strerror(errno));
        if (monitor_out) {
            zmq_close(*monitor_out);
            *monitor_out = NULL;
        }
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

/* ZeroMQ frees a sent message's buffer when it is on the wire: wiped first for messages
 * that carry secrets (hint: the length). */
static void s_wipe_free(void *data, void *hint)
{
    explicit_bzero(data, (size_t)(uintptr_t)hint);
    free(data);
}

int farm_wire_send(void *sock, const void *rid, size_t rid_len, const Farm__Envelope *env)
{
    size_t len = farm__envelope__get_packed_size(env);
    /* a Submit and a JobAssign may hold registry logins and build secrets */
    int secret = env->body_case == FARM__ENVELOPE__BODY_SUBMIT ||
                 env->body_case == FARM__ENVELOPE__BODY_JOB_ASSIGN;
    zmq_msg_t msg;

    if (len > FARM_WIRE_MAXMSG)
        return farm_error_set(FARM_ETOOBIG, "message of %zu bytes exceeds %d", len,
                              FARM_WIRE_MAXMSG);
    if (rid && zmq_send(sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return farm_error_set(errno == EHOSTUNREACH ? FARM_ENOTFOUND : FARM_EIO,
                              "send: %s", zmq_strerror(errno));
    if (secret) {
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf)
            return farm_error_set(FARM_ERROR, "out of memory");
        farm__envelope__pack(env, buf);
        if (zmq_msg_init_data(&msg, buf, len, s_wipe_free, (void *)(uintptr_t)len) != 0) {
            s_wipe_free(buf, (void *)(uintptr_t)len);
            return farm_error_set(FARM_ERROR, "out of memory");
        }
    } else {
        zmq_msg_init_size(&msg, len);
        farm__envelope__pack(env, zmq_msg_data(&msg));
    }
    if (zmq_msg_send(&msg, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return farm_error_set(FARM_EIO, "send: %s", zmq_strerror(errno));
    }
    return 0;
}

/* ------------------------------------------------------------------ outbox */

typedef struct {
    void *sock;
    uint8_t rid[FARM_WIRE_ROUTING_MAX];
    size_t rid_len; /* 0: no routing frame */
    uint8_t *data;
    size_t len;
} held_t;

struct farm_wire_outbox {
    held_t *a;
    size_t n, cap;
};

farm_wire_outbox_t *farm_wire_outbox_new(void)
{
    return calloc(1, sizeof(farm_wire_outbox_t));
}

static void s_held_clear(farm_wire_outbox_t *self)
{
    for (size_t i = 0; i < self->n; i++) {
        explicit_bzero(self->a[i].data, self->a[i].len);
        free(self->a[i].data);
    }
    self->n = 0;
}

void farm_wire_outbox_destroy(farm_wire_outbox_t **self_p)
{
    farm_wire_outbox_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    s_held_clear(self);
    free(self->a);
    free(self);
    *self_p = NULL;
}

int farm_wire_outbox_add(farm_wire_outbox_t *self, void *sock, const void *rid, size_t rid_len,
                         const Farm__Envelope *env)
{
    size_t len = farm__envelope__get_packed_size(env);
    held_t *h;

    if (len > FARM_WIRE_MAXMSG)
        return farm_error_set(FARM_ETOOBIG, "message of %zu bytes exceeds %d", len,
                              FARM_WIRE_MAXMSG);
    if (rid_len > FARM_WIRE_ROUTING_MAX)
        return farm_error_set(FARM_EINVALID, "routing id of %zu bytes", rid_len);
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 64;
        held_t *a = realloc(self->a, cap * sizeof *a);
        if (!a)
            return farm_error_set(FARM_ERROR, "out of memory");
        self->a = a;
        self->cap = cap;
    }
    h = &self->a[self->n];
    if (!(h->data = malloc(len ? len : 1)))
        return farm_error_set(FARM_ERROR, "out of memory");
    farm__envelope__pack(env, h->data);
    h->len = len;
    h->sock = sock;
    h->rid_len = rid ? rid_len : 0;
    if (rid)
        memcpy(h->rid, rid, rid_len);
    self->n++;
    return 0;
}

size_t farm_wire_outbox_size(const farm_wire_outbox_t *self)
{
    return self->n;
}

size_t farm_wire_outbox_flush(farm_wire_outbox_t *self)
{
    size_t failed = 0;
    for (size_t i = 0; i < self->n; i++) {
        held_t *h = &self->a[i];
        if ((h->rid_len && zmq_send(h->sock, h->rid, h->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) ||
            zmq_send(h->sock, h->data, h->len, ZMQ_DONTWAIT) < 0)
            failed++;
    }
    s_held_clear(self);
    return failed;
}

/* Reads a varint at *i (< len); -1 when cut or over 10 bytes. */
static int s_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70 && *i < len; shift += 7) {
        uint8_t b = p[(*i)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* Walks the bytes with the schema before protobuf-c unpacks them: protobuf-c allocates
 * every element of a repeated field before anyone can check its count, so a message of a
 * few MiB made of millions of empty entries would cost hundreds of MiB and seconds. Counts
 * every field (at most FARM_WIRE_FIELDS_MAX in all) and the elements of each repeated field
 * (at most FARM_WIRE_REPEATED_MAX), descending only into fields the schema says are
 * messages (strings and bytes are never guessed at). Malformed bytes are left for
 * protobuf-c to refuse. */
static int s_check_fields(const uint8_t *p, size_t len, const ProtobufCMessageDescriptor *d,
                          int depth, long *total)
{
    uint32_t counts[128] = {0};
    size_t i = 0;

    while (i < len) {
        const ProtobufCFieldDescriptor *f;
        uint64_t key, v = 0;
        int rc;

        if (s_varint(p, len, &i, &key) < 0 || (key >> 3) == 0 || (key >> 3) > UINT32_MAX)
            return 0;
        if (++*total > FARM_WIRE_FIELDS_MAX)
            return farm_error_set(FARM_ETOOBIG, "more than %d fields", FARM_WIRE_FIELDS_MAX);
        f = protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3));
        if (f && f->label == PROTOBUF_C_LABEL_REPEATED && (size_t)(f - d->fields) < 128 &&
            ++counts[f - d->fields] > FARM_WIRE_REPEATED_MAX)
            return farm_error_set(FARM_ETOOBIG, "more than %d entries in %s.%s",
                                  FARM_WIRE_REPEATED_MAX, d->short_name, f->name);
        switch (key & 7) {
        case 0:
            if (s_varint(p, len, &i, &v) < 0)
                return 0;
            break;
        case 1: i += 8; break;
        case 5: i += 4; break;
        case 2:
            if (s_varint(p, len, &i, &v) < 0 || v > len - i)
                return 0;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < 8 &&
                (rc = s_check_fields(p + i, (size_t)v, f->descriptor, depth + 1, total)) < 0)
                return rc;
            i += (size_t)v;
            break;
        default: return 0;
        }
    }
    return 0;
}

int farm_wire_unpack(Farm__Envelope **out, const void *data, size_t len)
{
    Farm__Envelope *env;
    long fields = 0;
    int rc;

    *out = NULL;
    if (len > FARM_WIRE_MAXMSG)
        return farm_error_set(FARM_ETOOBIG, "message of %zu bytes exceeds %d", len,
                              FARM_WIRE_MAXMSG);
    if ((rc = s_check_fields(data, len, &farm__envelope__descriptor, 0, &fields)) < 0)
        return farm_error_wrap(rc, "message of %zu bytes refused before unpacking", len);
    env = farm__envelope__unpack(NULL, len, data);
    if (!env)
        return farm_error_set(FARM_EINVALID, "malformed message (%zu bytes): not a farm Envelope",
                              len);
    if (env->version != FARM_WIRE_VERSION) {
        int v = (int)env->version;
        farm__envelope__free_unpacked(env, NULL);
        return farm_error_set(FARM_EINVALID, "wire version %d, expected %d", v,
                              FARM_WIRE_VERSION);
    }
    if (env->body_case == FARM__ENVELOPE__BODY__NOT_SET) {
        farm__envelope__free_unpacked(env, NULL);
        return farm_error_set(FARM_EINVALID, "message has no body (unknown type?)");
    }
    *out = env;
    return 0;
}

int farm_wire_recv(void *sock, void *rid, size_t *rid_len, Farm__Envelope **out)
{
    return farm_wire_recv_user(sock, rid, rid_len, NULL, 0, out);
}

int farm_wire_recv_user(void *sock, void *rid, size_t *rid_len, char *user, size_t user_cap,
                        Farm__Envelope **out)
{
    zmq_msg_t part;
    int more, nparts = 0, rc = 0, got_body = 0;

    *out = NULL;
    if (user && user_cap)
        user[0] = '\0';
    for (;;) {
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, nparts == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&part);
            if (nparts == 0 && errno == EAGAIN)
                return FARM_ERETRY;
            return farm_error_set(FARM_EIO, "recv: %s", zmq_strerror(errno));
        }
        more = zmq_msg_more(&part);
        if (user && user_cap && !(rid && nparts == 0) && !got_body) {
            /* who the ZAP handler said this peer is (its CURVE key): "" without CURVE. On
             * the body frame: a ROUTER makes the routing-id frame itself, without metadata */
            const char *u = zmq_msg_gets(&part, "User-Id");
            if (u && strlen(u) < user_cap)
                memcpy(user, u, strlen(u) + 1);
        }
        if (rid && nparts == 0) {
            size_t n = zmq_msg_size(&part);
            if (n > FARM_WIRE_ROUTING_MAX)
                n = FARM_WIRE_ROUTING_MAX;
            memcpy(rid, zmq_msg_data(&part), n);
            *rid_len = n;
        } else if (!got_body) {
            got_body = 1;
            rc = farm_wire_unpack(out, zmq_msg_data(&part), zmq_msg_size(&part));
            /* the packed bytes may hold a registry login (Submit, JobAssign) */
            explicit_bzero(zmq_msg_data(&part), zmq_msg_size(&part));
        } else {
            /* extra frames: drain and refuse the whole message */
            if (*out)
                farm_wire_free(out);
            rc = farm_error_set(FARM_EINVALID, "unexpected extra frame in message");
        }
        zmq_msg_close(&part);
        nparts++;
        if (!more)
            break;
    }
    if (!got_body)
        return farm_error_set(FARM_EINVALID, "message without body frame");
    return rc;
}

static void s_wipe_creds(Farm__RegistryCredential **c, size_t n)
{
    for (size_t i = 0; c && i < n; i++) {
        if (c[i] && c[i]->secret)
            explicit_bzero(c[i]->secret, strlen(c[i]->secret));
        if (c[i] && c[i]->username)
            explicit_bzero(c[i]->username, strlen(c[i]->username));
    }
}

void farm_wire_free(Farm__Envelope **env_p)
{
    if (env_p && *env_p) {
        /* registry logins a Submit or JobAssign carried leave no copy behind */
        /* and so do build secrets (Submit.flags, JobAssign.flags) */
        if ((*env_p)->body_case == FARM__ENVELOPE__BODY_SUBMIT && (*env_p)->submit) {
            s_wipe_creds((*env_p)->submit->credentials, (*env_p)->submit->n_credentials);
            farm_buildflags_wire_wipe((*env_p)->submit->flags);
        }
        if ((*env_p)->body_case == FARM__ENVELOPE__BODY_JOB_ASSIGN && (*env_p)->job_assign) {
            s_wipe_creds((*env_p)->job_assign->credentials, (*env_p)->job_assign->n_credentials);
            farm_buildflags_wire_wipe((*env_p)->job_assign->flags);
        }
        farm__envelope__free_unpacked(*env_p, NULL);
        *env_p = NULL;
    }
}

int farm_wire_pack(uint8_t **out, size_t *out_len, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    *out = malloc(len ? len : 1);
    *out_len = 0;
    if (!*out)
        return farm_error_set(FARM_ERROR, "out of memory packing a %zu-byte message", len);
    *out_len = protobuf_c_message_pack(msg, *out);
    return 0;
}

int farm_wire_result(const ProtobufCMessage *msg)
{
    uint8_t *buf;
    size_t len;
    int rc = farm_wire_pack(&buf, &len, msg);
    if (rc < 0)
        return rc;
    rc = farm_child_result_write(buf, len);
    free(buf);
    return rc;
}
