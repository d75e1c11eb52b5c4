/* SPDX-License-Identifier: Apache-2.0 */
#include "farmctl/client.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "common/endpoint.h"
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
    unsigned disconnects; /* connections lost since it was made */
    char public_key[FARM_KEY_Z85_LEN + 1]; /* farmctl's own, shown when it is refused */
    char key_from[FARM_PATH_MAX + 32];     /* where farmctl's key pair came from */
    char server_key[FARM_KEY_Z85_LEN + 1];
    char server_key_from[FARM_PATH_MAX + 48]; /* where the coordinator's key came from */
};

int farmctl_endpoint(char *buf, size_t len, const char *explicit_endpoint,
                     const farm_config_t *cfg)
{
    const char *e = explicit_endpoint;
    farm_endpoint_t ep;

    if (len)
        buf[0] = '\0';
    if (!e || !*e)
        e = getenv("FARM_COORDINATOR");
    if ((!e || !*e) && cfg)
        e = cfg->clients_endpoint;
    if (!e || !*e)
        return farm_error_set(FARM_ENOTFOUND, "no coordinator endpoint given");
    /* a bind address (0.0.0.0, ::, *) is not a connect address: this machine's is */
    if (farm_endpoint_parse(&ep, e) == 0 && ep.wildcard)
        return farm_str_fmt(buf, len, "the coordinator endpoint", "tcp://127.0.0.1:%d",
                            ep.port);
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

int farmctl_own_coordinator_key(char out[FARM_KEY_Z85_LEN + 1], char *from, size_t from_len,
                                int with_file)
{
    const char *env = getenv("FARM_COORDINATOR_KEY");
    char path[FARM_PATH_MAX];
    int rc;

    if (env && *env) {
        snprintf(from, from_len, "$FARM_COORDINATOR_KEY");
        return farm_key_load_public(out, env) < 0 ? -1 : 1;
    }
    if (!with_file || (rc = s_config_file(path, sizeof path, "coordinator.pub")) <= 0)
        return with_file ? rc : 0;
    snprintf(from, from_len, "%s", path);
    return farm_key_load_public(out, path) < 0 ? -1 : 1;
}

int farmctl_coordinator_key(char out[FARM_KEY_Z85_LEN + 1], char *from, size_t from_len,
                            const farm_config_t *cfg, int trust_repo)
{
    const char *env = getenv("FARM_COORDINATOR_KEY");
    int rc;

    if (cfg && cfg->public_key && trust_repo && !(env && *env)) {
        snprintf(from, from_len, "coordinator.public_key in %s", cfg->path);
        snprintf(out, FARM_KEY_Z85_LEN + 1, "%s", cfg->public_key);
        return 1;
    }
    if ((rc = farmctl_own_coordinator_key(out, from, from_len, 1)) < 0)
        return rc;
    if (!cfg || !cfg->public_key || trust_repo)
        return rc;
    if (rc == 0)
        return farm_error_set(FARM_EINVALID, "%s:%d:%d: coordinator.public_key chooses the "
                              "coordinator farmctl trusts (it receives your registry logins "
                              "and secrets and answers for the farm), and this file is written "
                              "by whoever can change the repository; farmctl takes that key "
                              "only from you: set FARM_COORDINATOR_KEY to your farm's "
                              "coordinator key (the key or its coordinator.pub, from the farm's "
                              "admin) or copy that file to ~/.config/farm/coordinator.pub, or "
                              "pass --trust-repo-coordinator if you trust this file's "
                              "coordinator", cfg->path, cfg->public_key_line,
                              cfg->public_key_column);
    if (strcmp(out, cfg->public_key) != 0)
        return farm_error_set(FARM_EINVALID, "%s:%d:%d: coordinator.public_key names a "
                              "different coordinator than yours (%s); farmctl does not trust "
                              "a coordinator a repository chose with your registry logins, "
                              "secrets or the farm's state. Remove coordinator.public_key from "
                              "this farm.yaml (or make it your farm's key), or pass "
                              "--trust-repo-coordinator if you trust this file's coordinator",
                              cfg->path, cfg->public_key_line, cfg->public_key_column, from);
    return 1;
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

farmctl_client_t *farmctl_client_new_for(const char *endpoint, const farm_config_t *cfg,
                                         int trust_repo)
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
    if ((secure = farmctl_coordinator_key(server_key, self->server_key_from,
                                          sizeof self->server_key_from, cfg, trust_repo)) < 0 ||
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

/* What is at the endpoint, asked on a connection of farmctl's own: a ZeroMQ server
 * and the security mechanism it asks for (its ZMTP 3 greeting, RFC 23: a 10-byte
 * signature, the version, a 20-byte mechanism name), or why there is none. Only the
 * signature and major version are sent, which is when a server sends the rest of its
 * greeting; a mechanism of ours would let it close before its greeting is out. */
typedef enum {
    PEER_UNKNOWN,     /* not asked (not tcp:// or ipc://) or nothing clear */
    PEER_UNREACHABLE, /* the connection failed: why says how */
    PEER_NOT_ZMTP,    /* something answered, not in ZeroMQ's protocol: why says how */
    PEER_CURVE,
    PEER_NULL,
} peer_kind_t;

#define PROBE_MS 2000

static int s_probe_connect(const char *endpoint, char *why, size_t why_len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    farm_endpoint_t ep;
    char port[8];
    int fd = -1, err = 0, gai;

    if (strncmp(endpoint, "ipc://", 6) == 0) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        if (strlen(endpoint + 6) >= sizeof un.sun_path ||
            (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
            return -1;
        memcpy(un.sun_path, endpoint + 6, strlen(endpoint + 6) + 1);
        if (connect(fd, (struct sockaddr *)&un, sizeof un) != 0) {
            snprintf(why, why_len, "%s", errno == ECONNREFUSED || errno == ENOENT
                                             ? "nothing listens there"
                                             : strerror(errno));
            close(fd);
            return -2;
        }
        return fd;
    }
    /* the one endpoint parser: host without its IPv6 brackets, port checked */
    if (farm_endpoint_parse(&ep, endpoint) < 0 || ep.kind != FARM_ENDPOINT_TCP)
        return -1;
    snprintf(port, sizeof port, "%d", ep.port);
    if ((gai = getaddrinfo(ep.host, port, &hints, &ai)) != 0) {
        snprintf(why, why_len, "cannot resolve %.120s: %s", ep.host, gai_strerror(gai));
        return -2;
    }
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        struct pollfd pfd = {.events = POLLOUT};
        socklen_t elen = sizeof err;
        if ((fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
            continue;
        pfd.fd = fd;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        err = errno;
        if (err == EINPROGRESS) {
            err = ETIMEDOUT;
            if (poll(&pfd, 1, PROBE_MS) == 1 &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0)
                break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0)
        snprintf(why, why_len, "%s", err == ECONNREFUSED ? "nothing listens there (connection "
                                                           "refused)"
                                     : err ? strerror(err) : "no address to connect to");
    return fd < 0 ? -2 : fd;
}

static peer_kind_t s_probe(const char *endpoint, char *why, size_t why_len)
{
    /* signature, major version 3 */
    const unsigned char greeting[11] = {0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3};
    unsigned char got[32];
    size_t n = 0;
    long long until = farm_now_ms() + PROBE_MS;
    peer_kind_t kind = PEER_UNKNOWN;
    int fd;

    why[0] = '\0';
    if ((fd = s_probe_connect(endpoint, why, why_len)) < 0)
        return fd == -2 ? PEER_UNREACHABLE : PEER_UNKNOWN;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (send(fd, greeting, sizeof greeting, MSG_NOSIGNAL) != (ssize_t)sizeof greeting)
        goto done;
    while (n < sizeof got && farm_now_ms() < until) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t r;
        if (poll(&pfd, 1, (int)(until - farm_now_ms())) <= 0)
            break;
        if ((r = recv(fd, got + n, sizeof got - n, 0)) <= 0) {
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            break;
        }
        n += (size_t)r;
    }
    if (n == 0) {
        snprintf(why, why_len, "it took the connection and %s without a word",
                 farm_now_ms() < until ? "closed it" : "stayed silent");
        kind = PEER_NOT_ZMTP;
    } else if (got[0] != 0xff || (n >= 10 && !(got[9] & 1))) {
        snprintf(why, why_len, "it answered, but not in ZeroMQ's protocol");
        kind = PEER_NOT_ZMTP;
    } else if (n == sizeof got && got[10] >= 3) {
        kind = !memcmp(got + 12, "CURVE\0", 6) ? PEER_CURVE
             : !memcmp(got + 12, "NULL\0", 5) ? PEER_NULL : PEER_UNKNOWN;
    }
done:
    close(fd);
    return kind;
}

static int s_uses_keys(farmctl_client_t *self)
{
    return farm_error_set(FARM_EAUTH, "the coordinator at %s uses keys (CURVE) but farmctl has no "
                          "coordinator key: set FARM_COORDINATOR_KEY to the head's coordinator.pub "
                          "(or copy it to ~/.config/farm/coordinator.pub), or run where farm.yaml "
                          "gives coordinator.public_key", self->endpoint);
}

static int s_uses_no_keys(farmctl_client_t *self)
{
    return farm_error_set(FARM_EAUTH, "the coordinator at %s uses no keys (a farm.yaml without "
                          "keys serves this machine only) but farmctl was given a coordinator key "
                          "(%s): drop that key, or connect to the farm that uses it",
                          self->endpoint, self->server_key_from);
}

/* What one refused handshake means, said in the user's terms (the coordinator logs its
 * side: the key it refused, the endpoint). Sets the error and returns FARM_EAUTH. */
static int s_refused(farmctl_client_t *self, uint16_t event, uint32_t value)
{
    const char *e = self->endpoint;
    char why[256];

    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && value == FARM_ZAP_OTHER_ENDPOINT)
        return farm_error_set(FARM_EAUTH, "%s is the coordinator's agents endpoint, where nodes "
                              "connect (coordinator.agents in farm.yaml); farmctl connects to its "
                              "clients endpoint (coordinator.clients, e.g. tcp://HEAD:7701): fix "
                              "--coordinator or $FARM_COORDINATOR", e);
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        return farm_error_set(FARM_EAUTH, "the coordinator at %s refused farmctl's key %s (from "
                              "%s): it is not enrolled under clients: in the coordinator's "
                              "farm.yaml. Have the farm's admin add `clients: NAME: {key: \"%s\", "
                              "role: submit}` and reload farm-coordinator, or use the key that "
                              "is enrolled", e, self->public_key, self->key_from, self->public_key);
    /* the server's greeting named another mechanism than ours */
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
        value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        return self->secure ? s_uses_no_keys(self) : s_uses_keys(self);
    /* the connection closed mid-handshake: a CURVE server drops a HELLO it cannot decrypt
     * without a word, and whichever side reads the other's greeting first may close
     * first. Its greeting says which it was. */
    switch (s_probe(e, why, sizeof why)) {
    case PEER_CURVE:
        if (!self->secure)
            return s_uses_keys(self);
        return farm_error_set(FARM_EAUTH, "%s dropped the CURVE handshake: the coordinator key "
                              "farmctl used (%s, from %s) is not that coordinator's. Compare it "
                              "with coordinator.pub on the head host", e, self->server_key,
                              self->server_key_from);
    case PEER_NULL:
        if (self->secure)
            return s_uses_no_keys(self);
        break;
    case PEER_NOT_ZMTP:
    case PEER_UNREACHABLE:
        return farm_error_set(FARM_EAUTH, "%s is not a farm coordinator's clients endpoint (%s); "
                              "check --coordinator, $FARM_COORDINATOR or coordinator.clients in "
                              "farm.yaml", e, why);
    default: break;
    }
    return farm_error_set(FARM_EAUTH, "%s ended the connection during the ZeroMQ handshake "
                          "(%s 0x%x); is it the coordinator's clients endpoint "
                          "(coordinator.clients in farm.yaml)?", e,
                          event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error"
                                                                      : "errno",
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
        case ZMQ_EVENT_DISCONNECTED: self->disconnects++; break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            /* after a handshake that worked, a failure is a restarted coordinator's: the
             * next connection says what it says */
            if (!self->handshaken)
                return s_refused(self, event, value);
            break;
        case ZMQ_EVENT_CONNECT_RETRIED: {
            /* a retry before any connection: the connect itself failed at once (the event
             * has no errno: a connection of our own asks why); a host that does not
             * answer is silence instead */
            char why[256];
            if (!self->connected && s_probe(self->endpoint, why, sizeof why) == PEER_UNREACHABLE)
                return farm_error_set(FARM_EIO, "cannot connect to %s: %s. Is farm-coordinator "
                                      "running on that host, and is this its clients endpoint "
                                      "(coordinator.clients in farm.yaml)?", self->endpoint, why);
            break;
        }
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

unsigned farmctl_client_disconnects(farmctl_client_t *self)
{
    s_monitor_read(self); /* a refusal is reported by the next recv */
    return self->disconnects;
}

int farmctl_client_private(const farmctl_client_t *self)
{
    return self->secure || farm_endpoint_loopback(self->endpoint);
}

const char *farmctl_client_endpoint(const farmctl_client_t *self)
{
    return self->endpoint;
}

int farmctl_request(Farm__Envelope **out, const char *cmd, const farmctl_target_t *t,
                    Farm__Envelope *env, Farm__Envelope__BodyCase want)
{
    return farmctl_request_wait(out, cmd, t, env, want, 5000);
}

int farmctl_request_wait(Farm__Envelope **out, const char *cmd, const farmctl_target_t *t,
                         Farm__Envelope *env, Farm__Envelope__BodyCase want, int wait_ms)
{
    const char *farm = t->farm, *coord = t->coord;
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
    if (!endpoint[0] || !(cl = farmctl_client_new_for(endpoint, cfg, t->trust_repo_coordinator)) ||
        farmctl_client_send(cl, env) < 0) {
        fprintf(stderr, "farmctl %s: %s\n", cmd, farm_error_last());
        goto done;
    }
    for (;;) {
        int r = farmctl_client_recv(cl, &reply, wait_ms);
        if (r == FARM_ERETRY)
            r = farmctl_client_silent(cl, wait_ms);
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

int farmctl_short_args(int argc, char **argv, const char *cmd, farmctl_target_t *out)
{
    return farmctl_short_args_json(argc, argv, cmd, out, NULL);
}

int farmctl_format_option(int *json, const char *cmd, const char *arg)
{
    if (strcmp(arg, "json") && strcmp(arg, "table")) {
        fprintf(stderr, "farmctl %s: --format is json or table, not \"%.40s\"\n", cmd, arg);
        return -1;
    }
    *json = !strcmp(arg, "json");
    return 0;
}

int farmctl_short_args_json(int argc, char **argv, const char *cmd, farmctl_target_t *out,
                            int *json)
{
    static const struct option opts[] = {FARMCTL_TARGET_OPTIONS, {"help", no_argument, NULL, 'h'},
                                         {"format", required_argument, NULL, 'F'},
                                         {NULL, 0, NULL, 0}};
    int c;

    memset(out, 0, sizeof *out);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if ((c = farmctl_target_option(out, c, optarg)) == 0)
            continue;
        if (c == 'F' && json) {
            if (farmctl_format_option(json, cmd, optarg) < 0)
                return 2;
            continue;
        }
        if (c == 'h') {
            printf("usage: farmctl %s " FARMCTL_TARGET_USAGE "%s\n", cmd,
                   json ? " [--format json|table]" : "");
            return 0;
        }
        if (c == 'F')
            fprintf(stderr, "farmctl %s: takes no --format\n", cmd);
        return 2;
    }
    if (optind != argc) {
        fprintf(stderr, "farmctl %s: unexpected argument \"%s\"\n", cmd, argv[optind]);
        return 2;
    }
    return -1;
}

int farmctl_target_option(farmctl_target_t *t, int c, const char *arg)
{
    switch (c) {
    case FARMCTL_O_FARM: t->farm = arg; return 0;
    case FARMCTL_O_COORD: t->coord = arg; return 0;
    case FARMCTL_O_TRUST: t->trust_repo_coordinator = 1; return 0;
    default: return c;
    }
}
