#include "farmctl/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/error.h"
#include "common/str.h"

struct farmctl_client {
    void *zctx;
    void *sock;
    char endpoint[512];
};

int farmctl_endpoint(char *buf, size_t len, const char *explicit_endpoint,
                     const farm_config_t *cfg)
{
    const char *e = explicit_endpoint, *star;

    if (len)
        buf[0] = '\0';
    if (!e || !*e)
        e = getenv("FARM_COORDINATOR");
    if ((!e || !*e) && cfg)
        e = cfg->clients_endpoint;
    if (!e || !*e)
        return farm_error_set(FARM_ENOTFOUND, "no coordinator endpoint given");
    /* a bind address is not a connect address */
    if ((star = strstr(e, "://0.0.0.0:")) || (star = strstr(e, "://*:")))
        return farm_str_fmt(buf, len, "the coordinator endpoint", "%.*s://127.0.0.1%s",
                            (int)(star - e), e, strrchr(star, ':'));
    return farm_str_fmt(buf, len, "the coordinator endpoint", "%s", e);
}

farmctl_client_t *farmctl_client_new(const char *endpoint)
{
    farmctl_client_t *self = calloc(1, sizeof *self);
    if (!self) {
        farm_error_set(FARM_ERROR, "out of memory");
        return NULL;
    }
    if (farm_str_fmt(self->endpoint, sizeof self->endpoint, "the coordinator endpoint", "%s",
                     endpoint) < 0) {
        free(self);
        return NULL;
    }
    self->zctx = zmq_ctx_new();
    self->sock = farm_wire_socket(self->zctx, FARM_WIRE_DEALER_CLIENT, endpoint, NULL);
    if (!self->sock) {
        farmctl_client_destroy(&self);
        return NULL;
    }
    return self;
}

void farmctl_client_destroy(farmctl_client_t **self_p)
{
    farmctl_client_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    if (self->sock)
        zmq_close(self->sock);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    free(self);
    *self_p = NULL;
}

int farmctl_client_send(farmctl_client_t *self, Farm__Envelope *env)
{
    zmq_pollitem_t item = {.socket = self->sock, .events = ZMQ_POLLOUT};
    env->version = FARM_WIRE_VERSION;
    /* DEALER queues until connected; wait a little for room rather than failing */
    if (zmq_poll(&item, 1, 10000) <= 0)
        return farm_error_set(FARM_EIO, "cannot send to the coordinator at %s", self->endpoint);
    return farm_wire_send(self->sock, NULL, 0, env);
}

int farmctl_client_recv(farmctl_client_t *self, Farm__Envelope **out, int timeout_ms)
{
    zmq_pollitem_t item = {.socket = self->sock, .events = ZMQ_POLLIN};
    int rc;

    *out = NULL;
    for (;;) {
        rc = zmq_poll(&item, 1, timeout_ms);
        /* a signal (Ctrl-C) is the caller's to handle: report "nothing yet" */
        if (rc <= 0)
            return FARM_ERETRY;
        rc = farm_wire_recv(self->sock, NULL, NULL, out);
        if (rc != FARM_ERETRY)
            return rc;
    }
}

const char *farmctl_client_endpoint(const farmctl_client_t *self)
{
    return self->endpoint;
}
