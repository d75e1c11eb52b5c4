/* SPDX-License-Identifier: Apache-2.0 */
/* `farm-agent worker`: one job, in a program of its own (exec'd by the agent through
 * common/child.h, never a bare fork of the agent that runs ZeroMQ threads). It reads a
 * packed farm.WorkerRequest from fd 3, extracts the context safely into the job
 * directory, runs the builder for exactly one platform into an OCI layout, checks the
 * image's platform, pushes blobs and manifest by digest, and writes a packed
 * farm.WorkerResult to fd 4. stdout/stderr are the job's log and nothing else: the
 * builder and the Dockerfile's RUN steps write there, and fds 3 and 4 are close-on-exec so
 * no builder process can reach the result.
 *
 * It leads its own session (setsid by common/child.c) and is a child subreaper, so every
 * process the build starts stays below it; on SIGTERM (the agent's cancel, or PDEATHSIG
 * when the agent dies) it ends that whole tree and exits. */
#ifndef FARM_AGENT_WORKER_H
#define FARM_AGENT_WORKER_H

/* The program: returns the exit status (0: a result was written, even a failure). */
int farm_worker_main(void);

/* The Dockerfile path stays inside the context: relative, no "..", at most
 * FARM_DOCKERFILE_PATH_MAX bytes. */
int farm_worker_dockerfile_ok(const char *path);

#endif
