/* SPDX-License-Identifier: Apache-2.0 */
#include "farmctl/client.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/keys.h"
#include "common/text.h"
#include "common/str.h"

struct farmctl_client {
    void *zctx;
    void *sock;
    char endpoint[512];
    int secure; /* CURVE */
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

/* The coordinator's public key: $FARM_COORDINATOR_KEY (a key or a .pub file), else
 * farm.yaml's coordinator.public_key. 1 when there is one (the farm uses CURVE). */
static int s_coordinator_key(char out[FARM_KEY_Z85_LEN + 1], const farm_config_t *cfg)
{
    const char *env = getenv("FARM_COORDINATOR_KEY");
    if (env && *env)
        return farm_key_load_public(out, env) < 0 ? -1 : 1;
    if (cfg && cfg->public_key) {
        snprintf(out, FARM_KEY_Z85_LEN + 1, "%s", cfg->public_key);
        return 1;
    }
    return 0;
}

/* farmctl's own key pair: $FARM_KEY, else ~/.config/farm/key. */
static int s_client_key(farm_keypair_t *out)
{
    const char *env = getenv("FARM_KEY"), *home = getenv("HOME");
    char path[FARM_PATH_MAX];

    if (env && *env)
        return farm_key_load(out, env);
    if (!home || farm_path_fmt(path, sizeof path, "%s/.config/farm/key", home) < 0 ||
        access(path, F_OK) != 0)
        return farm_error_set(FARM_ENOTFOUND,
                              "the farm uses keys but farmctl has none: run `farmctl keygen NAME`, "
                              "have the farm's admin add NAME.pub under clients: in farm.yaml, and "
                              "set FARM_KEY=NAME.key (or put it at ~/.config/farm/key)");
    return farm_key_load(out, path);
}

farmctl_client_t *farmctl_client_new_for(const char *endpoint, const farm_config_t *cfg)
{
    farmctl_client_t *self = calloc(1, sizeof *self);
    char server_key[FARM_KEY_Z85_LEN + 1];
    farm_keypair_t keys;
    farm_wire_curve_t curve = {.keys = &keys, .server_key = server_key};
    int secure;

    if (!self) {
        farm_error_set(FARM_ERROR, "out of memory");
        return NULL;
    }
    memset(&keys, 0, sizeof keys);
    if ((secure = s_coordinator_key(server_key, cfg)) < 0 ||
        (secure && s_client_key(&keys) < 0)) {
        free(self);
        return NULL;
    }
    if (farm_str_fmt(self->endpoint, sizeof self->endpoint, "the coordinator endpoint", "%s",
                     endpoint) < 0) {
        free(self);
        return NULL;
    }
    self->zctx = zmq_ctx_new();
    self->sock = farm_wire_socket_secure(self->zctx, FARM_WIRE_DEALER_CLIENT, endpoint, NULL,
                                         secure ? &curve : NULL);
    farm_key_wipe(&keys);
    self->secure = secure;
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

int farmctl_client_private(const farmctl_client_t *self)
{
    const char *e = self->endpoint;
    if (self->secure)
        return 1;
    return strncmp(e, "ipc://", 6) == 0 || strncmp(e, "inproc://", 9) == 0 ||
           strncmp(e, "tcp://127.", 10) == 0 || strncmp(e, "tcp://localhost:", 16) == 0 ||
           strncmp(e, "tcp://[::1]:", 12) == 0;
}

const char *farmctl_client_endpoint(const farmctl_client_t *self)
{
    return self->endpoint;
}

int farmctl_request(Farm__Envelope **out, const char *cmd, const char *farm, const char *coord,
                    Farm__Envelope *env, Farm__Envelope__BodyCase want)
{
    farm_config_t *cfg = NULL;
    farmctl_client_t *cl = NULL;
    Farm__Envelope *reply = NULL;
    char endpoint[512], why[1024];
    int rc = 1;

    *out = NULL;
    if (!farm && !coord && !getenv("FARM_COORDINATOR") && access("farm.yaml", R_OK) == 0)
        farm = "farm.yaml";
    if (farm && farm_config_load(&cfg, farm, NULL) < 0) {
        fprintf(stderr, "farmctl %s: %s\n", cmd, farm_error_last());
        return 1;
    }
    if (farmctl_endpoint(endpoint, sizeof endpoint, coord, cfg) == FARM_ENOTFOUND) {
        fprintf(stderr, "farmctl %s: no coordinator: pass --coordinator, set FARM_COORDINATOR, "
                        "or run where farm.yaml names coordinator.clients\n", cmd);
        goto done;
    }
    if (!endpoint[0] || !(cl = farmctl_client_new_for(endpoint, cfg)) ||
        farmctl_client_send(cl, env) < 0) {
        fprintf(stderr, "farmctl %s: %s\n", cmd, farm_error_last());
        goto done;
    }
    for (;;) {
        int r = farmctl_client_recv(cl, &reply, 5000);
        if (r == FARM_ERETRY) {
            fprintf(stderr, "farmctl %s: no answer from %s; is farm-coordinator running?\n", cmd,
                    endpoint);
            goto done;
        }
        if (r < 0) {
            fprintf(stderr, "farmctl %s: %s\n", cmd, farm_error_last());
            goto done;
        }
        if (reply->body_case == want)
            break;
        if (reply->body_case == FARM__ENVELOPE__BODY_REFUSED) {
            farm_text_inert(why, sizeof why, reply->refused->reason);
            fprintf(stderr, "farmctl %s: refused: %s\n", cmd, why);
            farm_wire_free(&reply);
            goto done;
        }
        farm_wire_free(&reply);
    }
    *out = reply;
    rc = 0;
done:
    farmctl_client_destroy(&cl);
    farm_config_destroy(&cfg);
    return rc;
}

int farmctl_short_args(int argc, char **argv, const char *cmd, const char **farm,
                       const char **coord)
{
    enum { O_FARM = 256, O_COORD };
    static const struct option opts[] = {{"farm", required_argument, NULL, O_FARM},
                                         {"coordinator", required_argument, NULL, O_COORD},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;

    *farm = *coord = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_FARM: *farm = optarg; break;
        case O_COORD: *coord = optarg; break;
        case 'h':
            printf("usage: farmctl %s [--farm FILE] [--coordinator ENDPOINT]\n", cmd);
            return 0;
        default: return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "farmctl %s: unexpected argument \"%s\"\n", cmd, argv[optind]);
        return 2;
    }
    return -1;
}
