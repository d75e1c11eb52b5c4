/* SPDX-License-Identifier: Apache-2.0 */
#include "common/zap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/error.h"
#include "common/hmap.h"
#include "common/keys.h"
#include "common/log.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_FRAMES_MAX 8
#define ZAP_LOGGED_MAX 1024 /* distinct refused keys logged; later new ones are refused silently */

struct farm_zap {
    void *sock;
    farm_zap_lookup_fn fn;
    void *arg;
    farm_hmap_t *logged;
};

farm_zap_t *farm_zap_new(void *zctx, farm_zap_lookup_fn fn, void *arg)
{
    farm_zap_t *self = calloc(1, sizeof *self);
    int linger = 0;

    if (!self) {
        farm_error_set(FARM_ERROR, "out of memory");
        return NULL;
    }
    self->fn = fn;
    self->arg = arg;
    self->logged = farm_hmap_new();
    self->sock = zmq_socket(zctx, ZMQ_REP);
    if (!self->logged || !self->sock) {
        farm_error_set(FARM_ERROR, "ZAP handler: %s", zmq_strerror(errno));
        farm_zap_destroy(&self);
        return NULL;
    }
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(self->sock, ZAP_ENDPOINT) != 0) {
        farm_error_set(FARM_ERROR, "ZAP handler: cannot bind %s: %s", ZAP_ENDPOINT,
                       zmq_strerror(errno));
        farm_zap_destroy(&self);
        return NULL;
    }
    return self;
}

void farm_zap_destroy(farm_zap_t **self_p)
{
    farm_zap_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    if (self->sock)
        zmq_close(self->sock);
    farm_hmap_destroy(&self->logged);
    free(self);
    *self_p = NULL;
}

void *farm_zap_socket(farm_zap_t *self)
{
    return self->sock;
}

static void s_reply(farm_zap_t *self, const zmq_msg_t *request_id, const char *code,
                    const char *text, const char *user)
{
    zmq_msg_t id;
    zmq_msg_init(&id);
    zmq_msg_copy(&id, (zmq_msg_t *)request_id);
    zmq_send(self->sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_msg_send(&id, self->sock, ZMQ_SNDMORE);
    zmq_msg_close(&id);
    zmq_send(self->sock, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(self->sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(self->sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(self->sock, "", 0, 0);
}

/* One request: version, request id, domain, address, identity, mechanism, credentials. */
static int s_one(farm_zap_t *self)
{
    zmq_msg_t f[ZAP_FRAMES_MAX];
    int n = 0, more = 1, rc = 0;
    char domain[256] = "", address[64] = "", mechanism[16] = "";

    while (more) {
        zmq_msg_t *m = &f[n < ZAP_FRAMES_MAX ? n : ZAP_FRAMES_MAX - 1];
        if (n >= ZAP_FRAMES_MAX)
            zmq_msg_close(m); /* extra frames: keep reading, keep nothing */
        zmq_msg_init(m);
        if (zmq_msg_recv(m, self->sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(m);
            rc = errno == EAGAIN ? 0 : -1;
            goto done;
        }
        more = zmq_msg_more(m);
        n++;
    }
    if (n < 6) {
        rc = 1; /* malformed: REP still owes an answer */
        s_reply(self, &f[1 < n ? 1 : 0], "500", "malformed ZAP request", "");
        goto done;
    }
#define S_COPY(buf, i)                                                                      \
    snprintf(buf, sizeof buf, "%.*s", (int)zmq_msg_size(&f[i]), (const char *)zmq_msg_data(&f[i]))
    S_COPY(domain, 2);
    S_COPY(address, 3);
    S_COPY(mechanism, 5);
#undef S_COPY
    rc = 1;
    if (strcmp(mechanism, "CURVE") != 0 || n < 7 || zmq_msg_size(&f[6]) != 32) {
        farm_log_warn("refused a %s connection from %s on %s: only CURVE with an enrolled key "
                      "is accepted", mechanism[0] ? mechanism : "?", address, domain);
        s_reply(self, &f[1], "400", "CURVE required", "");
        goto done;
    }
    {
        const uint8_t *key = zmq_msg_data(&f[6]);
        int other = 0;
        const char *user = self->fn(self->arg, domain, key, &other);
        if (user) {
            s_reply(self, &f[1], "200", "OK", user);
            goto done;
        }
        if (other) {
            char code[8];
            farm_log_warn("refused a %s key from %s on the %s endpoint: it is enrolled for the "
                          "%s endpoint (a peer dialled the wrong port)",
                          strcmp(domain, "agents") == 0 ? "client" : "node", address, domain,
                          strcmp(domain, "agents") == 0 ? "clients" : "agents");
            snprintf(code, sizeof code, "%d", FARM_ZAP_OTHER_ENDPOINT);
            s_reply(self, &f[1], code, "enrolled for the other endpoint", "");
            goto done;
        }
        /* logged once per key (bounded), so an operator can enrol it */
        if (!farm_hmap_get(self->logged, key, 32) && farm_hmap_size(self->logged) < ZAP_LOGGED_MAX) {
            char z85[FARM_KEY_Z85_LEN + 1];
            farm_key_encode(z85, key);
            farm_hmap_put(self->logged, key, 32, self);
            farm_log_warn("refused unknown key %s from %s on the %s endpoint; to let it in, add "
                          "it to farm.yaml (%s)", z85, address, domain,
                          strcmp(domain, "agents") == 0 ? "nodes: NAME: {key: ...}"
                                                        : "clients: NAME: {key: ..., role: ...}");
        }
        s_reply(self, &f[1], "400", "unknown key", "");
    }
done:
    for (int i = 0; i < n && i < ZAP_FRAMES_MAX; i++)
        zmq_msg_close(&f[i]);
    return rc;
}

int farm_zap_handle(farm_zap_t *self)
{
    int n = 0, rc;
    while ((rc = s_one(self)) > 0)
        n++;
    return n;
}
