/* SPDX-License-Identifier: Apache-2.0 */
#include "farmctl/client.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/keys.h"
#include "common/text.h"
#include "common/str.h"
#include "common/zap.h"

struct farmctl_client {
    void *zctx;
    void *sock;
    void *monitor; /* the socket's events: what the handshake said */
    char endpoint[512];
    int secure; /* CURVE */
    int connected;  /* a connection was made at least once */
    int handshaken; /* ... and its ZMTP handshake succeeded */
    char public_key[FARM_KEY_Z85_LEN + 1]; /* farmctl's own, shown when it is refused */
    char key_from[FARM_PATH_MAX + 32];     /* where farmctl's key pair came from */
    char server_key[FARM_KEY_Z85_LEN + 1];
    char server_key_from[FARM_PATH_MAX + 48]; /* where the coordinator's key came from */
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

/* ~/.config/farm/NAME, resolved when it is a symlink (the file it names is then judged
 * as the key file: owner and mode), into out; 0 when there is no such file. */
static int s_config_file(char *out, size_t len, const char *name)
{
    const char *home = getenv("HOME");
    char path[FARM_PATH_MAX], *real;
    struct stat st;

    if (!home || !*home || farm_path_fmt(path, sizeof path, "%s/.config/farm/%s", home, name) < 0 ||
        lstat(path, &st) != 0)
        return 0;
    if (!S_ISLNK(st.st_mode))
        return farm_str_fmt(out, len, "a key path", "%s", path) < 0 ? -1 : 1;
    if (!(real = realpath(path, NULL)))
        return farm_error_set(FARM_EINVALID, "%s is a symlink to a file that cannot be reached "
                              "(%s); point it at your key file", path, strerror(errno));
    int rc = farm_str_fmt(out, len, "a key path", "%s", real) < 0 ? -1 : 1;
    free(real);
    return rc;
}

/* The coordinator's public key: $FARM_COORDINATOR_KEY (a key or a .pub file), else
 * farm.yaml's coordinator.public_key, else ~/.config/farm/coordinator.pub. 1 when there
 * is one (the farm uses CURVE); from says where it came from. */
static int s_coordinator_key(char out[FARM_KEY_Z85_LEN + 1], char *from, size_t from_len,
                             const farm_config_t *cfg)
{
    const char *env = getenv("FARM_COORDINATOR_KEY");
    char path[FARM_PATH_MAX];
    int rc;

    if (env && *env) {
        snprintf(from, from_len, "$FARM_COORDINATOR_KEY");
        return farm_key_load_public(out, env) < 0 ? -1 : 1;
    }
    if (cfg && cfg->public_key) {
        snprintf(from, from_len, "coordinator.public_key in %s", cfg->path);
        snprintf(out, FARM_KEY_Z85_LEN + 1, "%s", cfg->public_key);
        return 1;
    }
    if ((rc = s_config_file(path, sizeof path, "coordinator.pub")) <= 0)
        return rc;
    snprintf(from, from_len, "%s", path);
    return farm_key_load_public(out, path) < 0 ? -1 : 1;
}

/* farmctl's own key pair: $FARM_KEY, else ~/.config/farm/key (a symlink to the user's
 * own 0600 key file is fine: farmctl keygen writes NAME.key where it runs). */
static int s_client_key(farm_keypair_t *out, char *from, size_t from_len)
{
    const char *env = getenv("FARM_KEY");
    char path[FARM_PATH_MAX];
    int rc;

    if (env && *env) {
        snprintf(from, from_len, "$FARM_KEY (%s)", env);
        return farm_key_load(out, env);
    }
    if ((rc = s_config_file(path, sizeof path, "key")) < 0)
        return rc;
    if (rc == 0)
        return farm_error_set(FARM_ENOTFOUND,
                              "the farm uses keys but farmctl has none: run `farmctl keygen NAME`, "
                              "have the farm's admin add NAME.pub under clients: in farm.yaml, and "
                              "link it as farmctl's key: mkdir -p ~/.config/farm && ln -s "
                              "\"$PWD/NAME.key\" ~/.config/farm/key (or set FARM_KEY=NAME.key)");
    snprintf(from, from_len, "%s", path);
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
    if ((secure = s_coordinator_key(server_key, self->server_key_from,
                                    sizeof self->server_key_from, cfg)) < 0 ||
        (secure && s_client_key(&keys, self->key_from, sizeof self->key_from) < 0)) {
        free(self);
        return NULL;
    }
    if (secure) {
        memcpy(self->server_key, server_key, sizeof self->server_key);
        memcpy(self->public_key, keys.public_key, sizeof self->public_key);
    }
    if (farm_str_fmt(self->endpoint, sizeof self->endpoint, "the coordinator endpoint", "%s",
                     endpoint) < 0) {
        free(self);
        return NULL;
    }
    self->zctx = zmq_ctx_new();
    self->sock = farm_wire_socket_monitored(self->zctx, FARM_WIRE_DEALER_CLIENT, endpoint, NULL,
                                            secure ? &curve : NULL, &self->monitor);
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
    if (self->monitor)
        zmq_close(self->monitor);
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

/* Whether endpoint completes a handshake without keys (a keyless coordinator): a plain
 * connection that sends nothing, to tell a CURVE handshake the server dropped for the
 * wrong server key from one it dropped for having no keys at all. */
static int s_speaks_plain(farmctl_client_t *self)
{
    void *mon = NULL;
    void *sock = farm_wire_socket_monitored(self->zctx, FARM_WIRE_DEALER_CLIENT, self->endpoint,
                                            NULL, NULL, &mon);
    zmq_pollitem_t item = {.events = ZMQ_POLLIN};
    long long until = farm_now_ms() + 2000;
    int plain = 0, done = 0;

    if (!sock)
        return 0;
    item.socket = mon;
    while (!done && farm_now_ms() < until) {
        zmq_msg_t ev;
        uint16_t event = 0;
        if (zmq_poll(&item, 1, until - farm_now_ms()) <= 0)
            break;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, mon, 0) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        if (zmq_msg_size(&ev) >= 2)
            memcpy(&event, zmq_msg_data(&ev), 2);
        while (zmq_msg_more(&ev)) {
            zmq_msg_close(&ev);
            zmq_msg_init(&ev);
            if (zmq_msg_recv(&ev, mon, 0) < 0)
                break;
        }
        zmq_msg_close(&ev);
        plain = event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
        done = plain || event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
               event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
               event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH || event == ZMQ_EVENT_CONNECT_RETRIED;
    }
    zmq_close(mon);
    zmq_close(sock);
    return plain;
}

/* What one refused handshake means, said in the user's terms (the coordinator logs its
 * side: the key it refused, the endpoint). Sets the error and returns FARM_EAUTH. */
static int s_refused(farmctl_client_t *self, uint16_t event, uint32_t value)
{
    const char *e = self->endpoint;

    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && value == FARM_ZAP_OTHER_ENDPOINT)
        return farm_error_set(FARM_EAUTH, "%s is the coordinator's agents endpoint, where nodes "
                              "connect (coordinator.agents in farm.yaml); farmctl connects to its "
                              "clients endpoint (coordinator.clients, e.g. tcp://HEAD:7701): fix "
                              "--coordinator or $FARM_COORDINATOR", e);
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        return farm_error_set(FARM_EAUTH, "the coordinator at %s refused farmctl's key %s (from "
                              "%s): it is not enrolled under clients: in the coordinator's "
                              "farm.yaml. Have the farm's admin add `clients: NAME: {key: \"%s\", "
                              "role: submit}` and restart farm-coordinator, or use the key that "
                              "is enrolled", e, self->public_key, self->key_from, self->public_key);
    /* keys on one side only: whichever side reads the other's greeting first says
     * so, or the connection just closes (the server saw it first) */
    if ((event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
         value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) ||
        (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL &&
         (!self->secure || s_speaks_plain(self)))) {
        if (self->secure)
            return farm_error_set(FARM_EAUTH, "the coordinator at %s uses no keys (a farm.yaml "
                                  "without keys serves this machine only) but farmctl was given "
                                  "a coordinator key (%s): drop that key, or connect to the "
                                  "farm that uses it", e, self->server_key_from);
        return farm_error_set(FARM_EAUTH, "the coordinator at %s uses keys (CURVE) but farmctl "
                              "has no coordinator key: set FARM_COORDINATOR_KEY to the head's "
                              "coordinator.pub (or copy it to ~/.config/farm/coordinator.pub), "
                              "or run where farm.yaml gives coordinator.public_key", e);
    }
    if (self->secure && (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
                         (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
                          value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)))
        /* a CURVE server drops a HELLO it cannot decrypt without a word */
        return farm_error_set(FARM_EAUTH, "%s closed the connection during the CURVE handshake: "
                              "the coordinator key farmctl used (%s, from %s) is not that "
                              "coordinator's. Compare it with coordinator.pub on the head host "
                              "(or the coordinator's log: \"refused ... key\" means the other "
                              "cause, an unenrolled client key)", e, self->server_key,
                              self->server_key_from);
    return farm_error_set(FARM_EAUTH, "%s does not speak farm's protocol (the ZeroMQ handshake "
                          "failed: %s 0x%x); is it the coordinator's clients endpoint "
                          "(coordinator.clients in farm.yaml)?", e,
                          event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error"
                                                                      : "closed, errno",
                          (unsigned)value);
}

/* Reads the socket's events: FARM_EAUTH (error set) when the connection cannot work,
 * FARM_EIO when nothing listens at the endpoint, else 0. */
static int s_monitor_read(farmctl_client_t *self)
{
    for (;;) {
        zmq_msg_t ev, addr;
        uint16_t event;
        uint32_t value;
        int more;

        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, self->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return 0;
        }
        more = zmq_msg_more(&ev);
        if (zmq_msg_size(&ev) < 6) { /* libzmq 4.x: event (16 bits), value (32 bits) */
            zmq_msg_close(&ev);
            event = 0;
            value = 0;
        } else {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (const char *)zmq_msg_data(&ev) + 2, 4);
            zmq_msg_close(&ev);
        }
        while (more) { /* the endpoint */
            zmq_msg_init(&addr);
            if (zmq_msg_recv(&addr, self->monitor, 0) < 0) {
                zmq_msg_close(&addr);
                break;
            }
            more = zmq_msg_more(&addr);
            zmq_msg_close(&addr);
        }
        switch (event) {
        case ZMQ_EVENT_CONNECTED: self->connected = 1; break;
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: self->handshaken = 1; break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            /* after a handshake that worked, a failure is a restarted coordinator's: the
             * next connection says what it says */
            if (!self->handshaken)
                return s_refused(self, event, value);
            break;
        case ZMQ_EVENT_CONNECT_RETRIED:
            /* a retry before any connection: the connect itself failed (refused), which
             * the system says at once; a host that does not answer is silence instead */
            if (!self->connected)
                return farm_error_set(FARM_EIO, "cannot connect to %s: nothing listens there "
                                      "(connection refused). Is farm-coordinator running on that "
                                      "host, and is this its clients endpoint (coordinator.clients "
                                      "in farm.yaml)?", self->endpoint);
            break;
        default: break;
        }
    }
}

int farmctl_client_recv(farmctl_client_t *self, Farm__Envelope **out, int timeout_ms)
{
    zmq_pollitem_t items[2] = {{.socket = self->sock, .events = ZMQ_POLLIN},
                               {.socket = self->monitor, .events = ZMQ_POLLIN}};
    long long until = farm_now_ms() + timeout_ms;
    int rc;

    *out = NULL;
    for (;;) {
        long long left = until - farm_now_ms();
        if ((rc = s_monitor_read(self)) < 0)
            return rc;
        rc = zmq_poll(items, self->monitor ? 2 : 1, left > 0 ? left : 0);
        /* a signal (Ctrl-C) is the caller's to handle: report "nothing yet" */
        if (rc < 0)
            return FARM_ERETRY;
        if ((items[0].revents & ZMQ_POLLIN) &&
            (rc = farm_wire_recv(self->sock, NULL, NULL, out)) != FARM_ERETRY)
            return rc;
        if (left <= 0)
            return FARM_ERETRY;
    }
}

int farmctl_client_silent(farmctl_client_t *self, int waited_ms)
{
    int rc = s_monitor_read(self);
    if (rc < 0)
        return rc;
    if (!self->connected)
        return farm_error_set(FARM_EIO, "no answer from %s within %d s: nothing answered the "
                              "connection (a host that is down or a firewall that drops it); "
                              "check the address and port", self->endpoint, waited_ms / 1000);
    if (!self->handshaken)
        return farm_error_set(FARM_EIO, "%s took the connection but did not finish the ZeroMQ "
                              "handshake within %d s: it is not a farm coordinator's clients "
                              "endpoint (coordinator.clients in farm.yaml)?", self->endpoint,
                              waited_ms / 1000);
    return farm_error_set(FARM_EIO, "the coordinator at %s took the connection but did not "
                          "answer within %d s; is it overloaded or stuck? (its log says)",
                          self->endpoint, waited_ms / 1000);
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
        if (r == FARM_ERETRY)
            r = farmctl_client_silent(cl, 5000);
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
