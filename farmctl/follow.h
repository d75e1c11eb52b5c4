/* SPDX-License-Identifier: Apache-2.0 */
/* Following a build to its end, through coordinator outages: farmctl submit after the
 * build is accepted, farmctl wait (attach) for any build the caller may see. Progress
 * on stderr, the index digest last on stdout; the same exit status either way. */
#ifndef FARMCTL_FOLLOW_H
#define FARMCTL_FOLLOW_H

#include <stddef.h>

#include "farmctl/client.h"
#include "farmctl/progress.h"

/* Exit status when farmctl stops following without knowing how the build ends (the
 * coordinator could not be reached within --give-up-after): it printed the build id and
 * the command that follows it. 0 is pushed, 1 failed (or refused), 2 a usage error. */
#define FARMCTL_EXIT_UNKNOWN 3
#define FARMCTL_GIVE_UP_MS (15LL * 60 * 1000) /* --give-up-after's default */

typedef struct {
    farmctl_client_t *cl;
    farmctl_progress_t *pg;
    const char *cmd;                /* "submit" or "wait": messages say farmctl CMD */
    const char *build_id;
    const void *token;              /* the Submit's submit_token (submit only) */
    size_t token_len;
    int attached;                   /* already hears the build (Accepted); else Follow first */
    int heartbeat_ms;               /* the coordinator's (Accepted, Following); 0: not known */
    long long give_up_ms;           /* how long an outage may last before farmctl leaves */
    int cancel_on_interrupt;        /* Ctrl-C asks to cancel (submit); else it only leaves */
    const char *repository;         /* "registry/repository" for full tag names; NULL: the
                                     * coordinator's word (BuildDone.repository) */
    char *const *platforms;         /* asked for: an index without one is warned about */
    size_t n_platforms;
    const char *metadata_file, *iidfile;
    /* The coordinator asks for the build's logins and secrets (after a restart): send a
     * Logins. NULL: this follower has none (farmctl wait). */
    int (*send_logins)(void *arg, farmctl_client_t *cl, const char *build_id);
    void *arg;
    const char *only_platform;      /* farmctl logs --platform: other platforms' log lines
                                     * are not shown; NULL: all */
} farmctl_follow_t;

/* Follows f->build_id until its BuildDone; returns the exit status (having said why). */
int farmctl_follow(const farmctl_follow_t *f);

/* --give-up-after D and --progress MODE as submit and wait take them: 0, or -1 having
 * said what is wrong. */
int farmctl_parse_give_up(long long *out, const char *cmd, const char *arg);
int farmctl_parse_progress(farmctl_progress_mode_t *out, const char *cmd, const char *arg);

/* farmctl wait BUILD (alias attach). */
int farmctl_wait_main(int argc, char **argv);

#endif
