/* SPDX-License-Identifier: Apache-2.0 */
/* The coordinator's plain records: a build and its jobs (one per platform). `builds`
 * owns their memory and life; `scheduler` owns a job's place in the queues and on its
 * node (the links below), and its QUEUED/RUNNING transitions and attempts. */
#ifndef FARM_COORD_JOB_H
#define FARM_COORD_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "common/buildflags.h"
#include "common/config.h"
#include "common/digest.h"
#include "common/limits.h"
#include "common/oci.h"
#include "common/platform.h"
#include "common/tail.h"
#include "coordinator/sign.h"

struct farm_node;
struct farm_build;

typedef enum {
    FARM_JOB_QUEUED,
    FARM_JOB_RUNNING,
    FARM_JOB_DONE,
    FARM_JOB_FAILED,
    FARM_JOB_CANCELLED
} farm_job_state_t;

/* Intrusive doubly linked list membership. */
typedef struct farm_link {
    struct farm_link *prev, *next;
} farm_link_t;

typedef struct farm_job {
    struct farm_build *build;
    char id[FARM_ID_MAX + 1];
    char platform[FARM_PLATFORM_STRLEN]; /* canonical */
    farm_platform_t plat;
    size_t platform_index;               /* into the config's platforms */
    farm_job_state_t state;
    unsigned attempt;
    struct farm_node *node;              /* while RUNNING */
    char node_name[FARM_NAME_MAX + 1];   /* the last node that ran it */
    int emulated;                        /* the last attempt ran under emulation */
    long long queued_at, started_at;
    int waiting_said;                    /* "no live node" told once per attempt */
    int parked;                          /* QUEUED, restored from the journal as running on
                                          * node_name: waits for that node's HELLO ... */
    long long park_until;                /* ... until then, then queued as a new attempt */
    char *cache_key;                     /* what a node's layer cache holds for it: see */
    size_t cache_key_len;                /* coordinator/warm.h (owned by the build) */
    int warm;                            /* the last attempt went to a node that built it */
    int node_retried;                    /* ran again after its node's own fault (once) */
    int warm_waiting;                    /* QUEUED, waiting for a busy warm node ... */
    long long warm_until;                /* ... until then (coordinator.cache_wait) */
    unsigned cache_hits, steps;          /* the builder's, from the result (DONE) */
    farm_descriptor_t *image;            /* when DONE (allocated: most jobs are queued) */
    char *error;                         /* when FAILED (allocated) */
    farm_tail_t tail;
    /* scheduler-owned links */
    farm_link_t queue_link;   /* the platform's queue or its warm waits (QUEUED) */
    farm_link_t timer_link;   /* queued-since or running-since order (QUEUED, RUNNING) */
    farm_link_t node_link;    /* the node's running jobs (RUNNING) */
} farm_job_t;

/* A submitter's login for one registry, held for its build only (wiped when the build
 * ends, never logged or written anywhere). */
typedef struct {
    char *registry;
    char *username;
    char *secret;
    int identity_token;
} farm_cred_t;

/* A repository a build's tags name (coordinator/targets.h). */
typedef struct {
    char registry[FARM_REGISTRY_HOST_MAX + 1];
    char repository[256];
    int insecure;                   /* farm.yaml allows plain HTTP for registry */
} farm_target_t;

typedef enum { FARM_BUILD_RUNNING, FARM_BUILD_STITCHING, FARM_BUILD_DONE } farm_build_state_t;

/* The connections that hear a build's events and its BuildDone: the submit's, and each
 * that follows it by id (farmctl submit after an outage, farmctl wait). Bounded: a new
 * follower beyond it replaces the oldest, which is told. */
#define FARM_FOLLOWERS_MAX 8
typedef struct {
    char rid[256];     /* routing id */
    size_t rid_len;
} farm_follower_t;

typedef struct farm_build {
    char id[FARM_ID_MAX + 1];   /* "b<seq>-<32 hex>" */
    uint64_t seq;               /* submit order (the journal's: unique across restarts) */
    char client[256];  /* the submitter's routing id: without keys, whose build it is */
    size_t client_len;
    char owner[FARM_NAME_MAX + 1]; /* the client's name (its key), "" without keys */
    farm_follower_t followers[FARM_FOLLOWERS_MAX]; /* oldest first */
    size_t n_followers;
    /* SHA-256 of the submitting farmctl's Submit.submit_token ("" if it sent none): a
     * Follow or Logins carrying that token comes from the submitter itself */
    char token_digest[FARM_DIGEST_STRLEN];
    /* restored after a restart without the logins or secrets it had (never journaled):
     * its QUEUED jobs stay out of the scheduler (parked ones go on) until the submitter
     * sends them again, or the queue_timeout, counted from awaiting_since, fails it */
    int awaiting_submitter;
    long long awaiting_since;
    /* DONE: the outcome, for a follower that comes after the end */
    int ok;
    char index_digest[FARM_DIGEST_STRLEN];
    uint64_t index_size;
    char *error;       /* allocated; NULL when ok */
    char registry[256];
    char repository[256];
    char **tags;       /* tag names */
    size_t n_tags;
    /* the repositories the tags name, the first tag's first (= registry/repository
     * above); parallel to tags: each tag's repository and the tag in full. A build with
     * one repository has n_targets 1 (coordinator/targets.h). */
    farm_target_t *targets;
    size_t n_targets;
    uint32_t *tag_target;
    char **tag_refs;
    int insecure;
    int allow_partial;
    int network_none;               /* RUN steps without network (farmctl --network none) */
    char context_digest[FARM_DIGEST_STRLEN];
    uint64_t context_size;
    char *dockerfile;
    farm_kv_t *args;
    size_t n_args;
    farm_cred_t *creds;  /* the submitter's, until the build is DONE */
    size_t n_creds;
    farm_buildflags_t flags; /* --target, --label, ...; its secrets only until DONE */
    farm_job_t *jobs;
    size_t n_jobs;
    farm_build_state_t state;
    long long created, last_result_at, done_at;
    void *stitch;      /* the coordinator's handle on the index push (a helper process) */
    /* parallel to tags once the index push had its turn (coordinator/tagorder.h): the id
     * of the build submitted later that already put its index under that tag, so this
     * build's index was not put there; "" where the tag was moved. NULL before. */
    char (*kept_by)[FARM_ID_MAX + 1];
    /* DONE and ok with a signing key: what the index push signed, for BuildDone */
    farm_sign_out_t signed_info;
    /* farmctl submit --amend: the platforms built are replaced in the index now under the
     * first tag, its others kept (coordinator/amend.h); once pushed, the images kept */
    int amend;
    farm_descriptor_t *amend_kept;
    size_t n_amend_kept;
    farm_link_t link;  /* builds' running or done list */
} farm_build_t;

/* container_of for the links */
#define FARM_LINK_OWNER(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static inline void farm_link_init(farm_link_t *head)
{
    head->prev = head->next = head;
}
static inline int farm_link_empty(const farm_link_t *head)
{
    return head->next == head;
}
/* For a member (not a head): 1 while it is in a list. Members start zeroed. */
static inline int farm_link_linked(const farm_link_t *l)
{
    return l->next != NULL;
}
static inline void farm_link_insert_before(farm_link_t *pos, farm_link_t *l)
{
    l->next = pos;
    l->prev = pos->prev;
    pos->prev->next = l;
    pos->prev = l;
}
static inline void farm_link_push_back(farm_link_t *head, farm_link_t *l)
{
    farm_link_insert_before(head, l);
}
static inline void farm_link_push_front(farm_link_t *head, farm_link_t *l)
{
    farm_link_insert_before(head->next, l);
}
static inline void farm_link_remove(farm_link_t *l)
{
    if (!l->next)
        return;
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = NULL;
}

#endif
