/* One job, run in a forked child so the agent's reactor keeps heartbeating: extract
 * the context safely, run the builder for exactly one platform into an OCI layout,
 * check the image's platform, push blobs and manifest by digest. Its stdout is the
 * job's log; the last line "@@result ..." carries the outcome. */
#ifndef FARM_AGENT_WORKER_H
#define FARM_AGENT_WORKER_H

#include <stddef.h>

#include "common/config.h"

typedef struct {
    const char *builder;        /* "buildah" */
    const char *storage_driver; /* NULL: builder default */
    const char *isolation;      /* NULL: builder default */
    const char *builder_root;   /* NULL: builder default storage */
} farm_builder_opts_t;

typedef struct {
    const char *job_id;
    const char *platform;       /* canonical */
    const char *context_tar;    /* cached context */
    const char *job_dir;        /* private, empty, removed by the agent afterwards */
    const char *dockerfile;     /* relative to the context */
    const farm_kv_t *args;
    size_t n_args;
    const char *registry;
    const char *repository;
    int insecure;
    const farm_builder_opts_t *builder;
} farm_worker_job_t;

/* Runs in the child: returns the exit status; prints "@@result ok MEDIATYPE DIGEST SIZE
 * BUILD_MS PUSH_MS" or "@@result error MESSAGE" as its last line. */
int farm_worker_run(const farm_worker_job_t *job);

#endif
