#include "common/wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "common/child.h"
#include "common/error.h"
#include "common/log.h"

long long farm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
    int64_t maxmsg = FARM_WIRE_MAXMSG;
    int linger = 0, one = 1, hwm = 10000;
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
    if (role == FARM_WIRE_ROUTER_SERVER) {
        /* unroutable sends fail loudly instead of vanishing; a restarted agent takes
         * its routing id back from the dead connection */
        zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
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
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

int farm_wire_send(void *sock, const void *rid, size_t rid_len, const Farm__Envelope *env)
{
    size_t len = farm__envelope__get_packed_size(env);
    zmq_msg_t msg;

    if (len > FARM_WIRE_MAXMSG)
        return farm_error_set(FARM_ETOOBIG, "message of %zu bytes exceeds %d", len,
                              FARM_WIRE_MAXMSG);
    if (rid && zmq_send(sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return farm_error_set(errno == EHOSTUNREACH ? FARM_ENOTFOUND : FARM_EIO,
                              "send: %s", zmq_strerror(errno));
    zmq_msg_init_size(&msg, len);
    farm__envelope__pack(env, zmq_msg_data(&msg));
    if (zmq_msg_send(&msg, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return farm_error_set(FARM_EIO, "send: %s", zmq_strerror(errno));
    }
    return 0;
}

int farm_wire_unpack(Farm__Envelope **out, const void *data, size_t len)
{
    Farm__Envelope *env;

    *out = NULL;
    if (len > FARM_WIRE_MAXMSG)
        return farm_error_set(FARM_ETOOBIG, "message of %zu bytes exceeds %d", len,
                              FARM_WIRE_MAXMSG);
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
    zmq_msg_t part;
    int more, nparts = 0, rc = 0, got_body = 0;

    *out = NULL;
    for (;;) {
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, nparts == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&part);
            if (nparts == 0 && errno == EAGAIN)
                return FARM_ERETRY;
            return farm_error_set(FARM_EIO, "recv: %s", zmq_strerror(errno));
        }
        more = zmq_msg_more(&part);
        if (rid && nparts == 0) {
            size_t n = zmq_msg_size(&part);
            if (n > FARM_WIRE_ROUTING_MAX)
                n = FARM_WIRE_ROUTING_MAX;
            memcpy(rid, zmq_msg_data(&part), n);
            *rid_len = n;
        } else if (!got_body) {
            got_body = 1;
            rc = farm_wire_unpack(out, zmq_msg_data(&part), zmq_msg_size(&part));
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

void farm_wire_free(Farm__Envelope **env_p)
{
    if (env_p && *env_p) {
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
