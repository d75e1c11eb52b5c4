/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FARMCTL_HISTORY_H
#define FARMCTL_HISTORY_H

#include "common/config.h"
#include "farmctl/client.h"

/* `farmctl history [ls] [--filter K=V]... [--limit N] [--format json]`: the builds the
 * coordinator keeps records of, newest first (a submit client its own; read and admin
 * clients every one). `farmctl history inspect BUILD [--format json]`: one build's record
 * (BUILD: an id, or ^N, the Nth before the newest, as buildx has it). */
int farmctl_history_main(int argc, char **argv);

/* `farmctl logs [-f] BUILD [--platform P]`: the build's kept log, the lines farmctl
 * submit printed; -f follows a running build to its end (exit status as farmctl wait). */
int farmctl_logs_main(int argc, char **argv);

/* `farmctl cancel BUILD`: stops a running build (its own for a submit client; any for an
 * admin); nothing is pushed under its tags. */
int farmctl_cancel_main(int argc, char **argv);

/* The coordinator connection of a command that reads more than one answer (--farm,
 * --coordinator as the short commands); NULL having said why. *out_cfg: the farm.yaml
 * read, if any (farm_config_destroy it). */
farmctl_client_t *farmctl_connect(const char *cmd, const farmctl_target_t *t,
                                  farm_config_t **out_cfg);

#endif
