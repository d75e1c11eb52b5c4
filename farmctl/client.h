/* SPDX-License-Identifier: Apache-2.0 */
/* farmctl's connection to the coordinator's client endpoint. */
#ifndef FARMCTL_CLIENT_H
#define FARMCTL_CLIENT_H

#include <getopt.h>

#include "common/config.h"
#include "common/keys.h"
#include "common/wire.h"

typedef struct farmctl_client farmctl_client_t;

/* Endpoint order: explicit, then $FARM_COORDINATOR, then cfg's coordinator.clients
 * (a wildcard bind address is reached on 127.0.0.1). FARM_ENOTFOUND when none is given,
 * FARM_ETOOBIG (buf "") when it does not fit buf. */
int farmctl_endpoint(char *buf, size_t len, const char *explicit_endpoint,
                     const farm_config_t *cfg);

/* The coordinator key every farmctl command uses, the one rule for it: CURVE
 * authenticates the coordinator by this key, so it decides who receives the user's
 * registry logins and secrets and whose answers farmctl shows. The user's own key
 * (farmctl_own_coordinator_key) serves; a farm.yaml's coordinator.public_key (cfg, NULL
 * for none), written by whoever can change the repository, must be that key, else
 * FARM_EINVALID naming its line and the fix. With trust_repo (--trust-repo-coordinator)
 * the file's key serves while $FARM_COORDINATOR_KEY is unset. 1 with out and from (where
 * it came from), 0 when there is none (a plain connection), < 0 refused or unreadable. */
int farmctl_coordinator_key(char out[FARM_KEY_Z85_LEN + 1], char *from, size_t from_len,
                            const farm_config_t *cfg, int trust_repo);

/* Connects to the coordinator. With a coordinator key (farmctl_coordinator_key) the
 * connection uses CURVE with farmctl's own key pair ($FARM_KEY, else ~/.config/farm/key,
 * which may be a symlink to the user's own 0600 key file); without one, plain (loopback
 * farms). */
farmctl_client_t *farmctl_client_new_for(const char *endpoint, const farm_config_t *cfg,
                                         int trust_repo);

/* Where the short commands (nodes, builds, drain) go: --farm FILE, --coordinator
 * ENDPOINT, --trust-repo-coordinator. */
typedef struct {
    const char *farm;
    const char *coord;
    int trust_repo_coordinator;
} farmctl_target_t;
enum { FARMCTL_O_FARM = 256, FARMCTL_O_COORD, FARMCTL_O_TRUST, FARMCTL_O_NEXT };
/* getopt_long entries for them (a command's own options take codes from FARMCTL_O_NEXT) */
#define FARMCTL_TARGET_OPTIONS                                                                \
    {"farm", required_argument, NULL, FARMCTL_O_FARM},                                         \
        {"coordinator", required_argument, NULL, FARMCTL_O_COORD},                             \
        {"trust-repo-coordinator", no_argument, NULL, FARMCTL_O_TRUST}
#define FARMCTL_TARGET_USAGE "[--farm FILE] [--coordinator ENDPOINT] [--trust-repo-coordinator]"
/* Takes getopt_long's c (with its optarg) when it is one of those: 0, else c. */
int farmctl_target_option(farmctl_target_t *t, int c, const char *arg);

/* One request, one answer, for the short commands: farm.yaml is t->farm, else ./farm.yaml
 * when no endpoint is given otherwise; connects, sends env and waits up to 5 s for a
 * message of type want. A Refused, a timeout or any failure is printed as
 * "farmctl CMD: ..." and gives 1; else 0 and *out (farm_wire_free it). */
int farmctl_request(Farm__Envelope **out, const char *cmd, const farmctl_target_t *t,
                    Farm__Envelope *env, Farm__Envelope__BodyCase want);
/* The same, waiting up to wait_ms for the answer (farmctl du and prune: the nodes'). */
int farmctl_request_wait(Farm__Envelope **out, const char *cmd, const farmctl_target_t *t,
                         Farm__Envelope *env, Farm__Envelope__BodyCase want, int wait_ms);
/* The short commands' arguments, "farmctl CMD " FARMCTL_TARGET_USAGE: -1 to go on with
 * *out set, else the exit status (0 after --help, 2). */
int farmctl_short_args(int argc, char **argv, const char *cmd, farmctl_target_t *out);
/* The same, and --format json|table into *json (1: print the reply through common/pbjson,
 * the schema the coordinator's HTTP API serves too). */
int farmctl_short_args_json(int argc, char **argv, const char *cmd, farmctl_target_t *out,
                            int *json);
/* --format's value: 0, or -1 having said what is wrong. */
int farmctl_format_option(int *json, const char *cmd, const char *arg);
void farmctl_client_destroy(farmctl_client_t **self_p);
int farmctl_client_send(farmctl_client_t *self, Farm__Envelope *env);
/* Waits up to timeout_ms for one message: FARM_ERETRY on timeout. A connection that
 * cannot work fails at once, with what to fix in the error: FARM_EAUTH when the
 * handshake was refused (an unenrolled key, the wrong coordinator key, keys on one side
 * only, the agents' endpoint), FARM_EIO when nothing listens at the endpoint. */
int farmctl_client_recv(farmctl_client_t *self, Farm__Envelope **out, int timeout_ms);
/* After waited_ms without an answer: sets the error to what the silence means (nothing
 * answered the connection, a handshake that never finished, or a coordinator that took
 * the request and said nothing) and returns FARM_EIO (or a refusal seen meanwhile). */
int farmctl_client_silent(farmctl_client_t *self, int waited_ms);
const char *farmctl_client_endpoint(const farmctl_client_t *self);
/* How many times the connection was lost (the socket connects again by itself: a
 * restarted coordinator does not know it until farmctl says who it is). */
unsigned farmctl_client_disconnects(farmctl_client_t *self);
/* 1 if what is sent cannot be read on the way: CURVE, or a plain connection that stays
 * on this machine (farm_endpoint_loopback: a literal loopback address, ipc://). Registry
 * logins and build secrets go only then. */
int farmctl_client_private(const farmctl_client_t *self);
/* The user's own coordinator key (not a farm.yaml's): $FARM_COORDINATOR_KEY, else (with
 * with_file) ~/.config/farm/coordinator.pub. 1 with out and from (where it came from),
 * 0 when there is none, < 0 when the one named cannot be read. */
int farmctl_own_coordinator_key(char out[FARM_KEY_Z85_LEN + 1], char *from, size_t from_len,
                                int with_file);

#endif
