/* SPDX-License-Identifier: Apache-2.0 */
/* Every bound farm places on input, in one place: farmctl checks them before it sends,
 * the coordinator before it accepts, the agent before it builds. A change here changes
 * all three. */
#ifndef FARM_LIMITS_H
#define FARM_LIMITS_H

#define FARM_STR_(x) #x
#define FARM_STR(x) FARM_STR_(x)

/* Build contexts: the packed tar, and what extracting it may produce. */
#define FARM_CONTEXT_MAX (4ULL << 30)            /* bytes of the tar (4 GiB) */
#define FARM_CONTEXT_MAX_TEXT "4 GiB"
#define FARM_CONTEXT_EXTRACT_MAX (16ULL << 30)   /* bytes written when extracting */
#define FARM_CONTEXT_ENTRIES_MAX 1000000ULL      /* entries in one context */

/* Names: node names become log fields (and, until CURVE, routing ids). */
#define FARM_NAME_MAX 63                         /* characters in a node or client name */
#define FARM_ID_MAX 63                           /* build and job ids */

/* One submit. */
#define FARM_TAGS_MAX 64                         /* -t per submit */
#define FARM_PLATFORMS_MAX 64                    /* platforms per submit */
#define FARM_HELD_JOBS_MAX 2048 /* attempts an agent lists in HELLO (its slots and kept results) */
#define FARM_BUILD_ARGS_MAX 128                  /* --build-arg per submit */
#define FARM_BUILD_ARG_NAME_MAX 256              /* bytes in a build arg's name */
#define FARM_BUILD_ARG_VALUE_MAX 16384           /* bytes in a build arg's value */
#define FARM_DOCKERFILE_PATH_MAX 1024            /* bytes in the Dockerfile path */
#define FARM_REFERENCE_MAX 512                   /* bytes in one image reference */
#define FARM_CREDENTIALS_MAX 16                  /* registry logins per submit */
#define FARM_SUBMIT_TOKEN_MAX 64                 /* bytes of Submit.submit_token */
#define FARM_CRED_USER_MAX 256                   /* bytes in a registry username */
#define FARM_CRED_SECRET_MAX 16384               /* bytes in a password or identity token */
#define FARM_REGISTRY_HOST_MAX 255               /* bytes in a registry host[:port] */
#define FARM_CA_PEM_MAX (256u << 10)             /* bytes in a registries.*.ca bundle */

/* One submit's build flags (farmctl submit --target, --label, --annotation, --secret;
 * farm.yaml build:). A JobAssign holds them all: at most 2 x 128 x 4 KiB of metadata and
 * 16 x 64 KiB of secrets, well under one wire message. */
#define FARM_TARGET_MAX 128                      /* bytes in a --target stage name */
#define FARM_LABELS_MAX 128                      /* --label per submit */
#define FARM_ANNOTATIONS_MAX 128                 /* --annotation per submit, all kinds */
#define FARM_META_KEY_MAX 256                    /* bytes in a label or annotation key */
#define FARM_META_VALUE_MAX 4096                 /* bytes in a label or annotation value */
#define FARM_SECRETS_MAX 16                      /* --secret per submit */
#define FARM_SECRET_ID_MAX 128                   /* bytes in a secret id */
#define FARM_SECRET_MAX (64u << 10)              /* bytes in one secret's value */
#define FARM_SECRET_MAX_TEXT "64 KiB"

/* Uploads in progress at once on one coordinator (each holds a file open): defaults of
 * coordinator.max_uploads and coordinator.max_uploads_per_client. */
#define FARM_UPLOADS_MAX 64
#define FARM_UPLOADS_PER_CLIENT_MAX 4   /* a client's fifth replaces its oldest */

/* Logs: lines kept per job to explain a failure, and the longest line forwarded. */
#define FARM_TAIL_LINES 30
#define FARM_LINE_MAX 4096

/* Paths farm builds from configured directories (state_dir, --work-dir). */
#define FARM_PATH_MAX 4096

/* farmctl du and prune: the coordinator waits this long for the nodes' answers; farmctl
 * waits a little longer for the coordinator's */
#define FARM_CACHE_ANSWER_MS 120000
#define FARM_CACHE_CLIENT_WAIT_MS (FARM_CACHE_ANSWER_MS + 15000)
/* Sigstore signatures (common/sigstore.h): a payload read back, a PEM key file, and the
 * signatures one sha256-<hex>.sig manifest may hold (about 1.4 MB of manifest; past it
 * farm drops the oldest when it adds one). */
#define FARM_SIGSTORE_PAYLOAD_MAX (64u << 10)
#define FARM_SIGSTORE_KEY_MAX (16u << 10)
#define FARM_SIGSTORE_LAYERS_MAX 4096

#endif
