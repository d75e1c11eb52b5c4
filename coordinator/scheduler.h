/* SPDX-License-Identifier: Apache-2.0 */
/* The scheduler owns where every unfinished job is: in its platform's queue, or running
 * on a node. The rules (ARCHITECTURE.md, "One build, step by step"):
 *   - a job goes to a live node that farm.yaml maps to its platform and that has a free
 *     slot, least loaded first (used/slots; ties: farm.yaml's order);
 *   - nodes listed under emulated: only while no native node of the platform is alive;
 *   - cache-aware: a native node that recently built the job's key (repository, platform,
 *     Dockerfile) goes first while it has a free slot ("warm"); when all such nodes are
 *     busy the job waits for one at most coordinator.cache_wait, counted from when a
 *     cold node was free for it, and meanwhile the jobs behind it take the free nodes;
 *     lost, drained and unhealthy nodes are never waited for;
 *   - an unhealthy node (its agent says so) takes no job until it is healthy again; a job
 *     that failed for its node's reason runs once more as a new attempt (retry);
 *   - no live node for the platform: the job waits (said once per attempt), up to
 *     queue_timeout; an attempt runs at most job_timeout;
 *   - a lost node's jobs go back to the front of their queue as a new attempt, and a
 *     result counts only from the node running that attempt.
 * Dispatch costs O(log nodes) per job and never scans builds: a FIFO per platform, a
 * heap per platform of the nodes with free slots, an index of jobs by id, timeouts
 * kept in time order, one lookup of the job's warm nodes (coordinator/warm.h); the jobs
 * waiting for a warm node (a few: their slots) are looked through once per pass. */
#ifndef FARM_COORD_SCHEDULER_H
#define FARM_COORD_SCHEDULER_H

#include <stddef.h>

#include "common/config.h"
#include "coordinator/job.h"
#include "coordinator/nodes.h"

typedef struct farm_scheduler farm_scheduler_t;

typedef struct {
    /* The job is now RUNNING on node as job->attempt: send it. If it cannot be sent,
     * call farm_scheduler_release and fail the job. */
    void (*assign)(void *arg, farm_job_t *job, farm_node_t *node);
    /* The attempt no longer runs on node (withdrawn, timed out): tell the node to stop. */
    void (*cancel)(void *arg, farm_job_t *job, farm_node_t *node, const char *reason);
    /* No live node serves the job's platform: it waits. */
    void (*waiting)(void *arg, farm_job_t *job);
    /* The job's node was lost: it is queued again as job->attempt. */
    void (*requeued)(void *arg, farm_job_t *job, const char *why);
    /* queue_timeout (was_running 0) or job_timeout (1): the job is out of the scheduler;
     * the callee fails it. */
    void (*expired)(void *arg, farm_job_t *job, int was_running);
} farm_scheduler_cbs_t;

farm_scheduler_t *farm_scheduler_new(const farm_config_t *cfg, const farm_scheduler_cbs_t *cbs,
                                     void *arg);
void farm_scheduler_destroy(farm_scheduler_t **self_p);

/* A new job (QUEUED, attempt 1, platform_index set): indexed by id and queued. */
int farm_scheduler_add(farm_scheduler_t *self, farm_job_t *job, long long now);
/* A job the journal says ran as job->attempt on node job->node_name when the coordinator
 * stopped (restored at start; job->started_at set): it waits, QUEUED but not
 * dispatched ("parked"), for that node's HELLO, which adopts it when the node still holds
 * the attempt (farm_scheduler_node_rejoin). At `until`, or when the node comes back
 * without it, it goes to the front of its queue as a new attempt (requeued). */
int farm_scheduler_park(farm_scheduler_t *self, farm_job_t *job, long long until);
/* Forgets a job that is neither queued nor running (its build is being freed). */
void farm_scheduler_forget(farm_scheduler_t *self, farm_job_t *job);
farm_job_t *farm_scheduler_job(farm_scheduler_t *self, const char *id);

/* The node is READY (a new session): its slots are free. */
int farm_scheduler_node_up(farm_scheduler_t *self, farm_node_t *node, long long now);
/* The node is gone: its running jobs are queued again as new attempts. */
void farm_scheduler_node_down(farm_scheduler_t *self, farm_node_t *node, const char *why,
                              long long now);

/* An attempt a reconnecting node says it still holds (HELLO's jobs). */
typedef struct {
    const char *job_id;
    unsigned attempt;
} farm_sched_held_t;

/* The node said HELLO with a new session (it reconnected after a network cut, a pause of
 * either side, or an agent restart) and holds these attempts. Each that runs on it here
 * stays assigned (no re-dispatch, no second copy); one queued again when the node was
 * lost, and not yet sent elsewhere, is taken back as that attempt; the node's other
 * running jobs are queued again as new attempts (why). adopted[i] (n of them) is 1 for
 * each held attempt now running on the node, 0 for those it must not run (the caller
 * cancels them). The node is up after, as with farm_scheduler_node_up. */
int farm_scheduler_node_rejoin(farm_scheduler_t *self, farm_node_t *node,
                               const farm_sched_held_t *held, size_t n, int *adopted,
                               const char *why, long long now);

/* Drain (on) takes the node out of scheduling: its running jobs finish, it takes no new
 * one, and it counts as not live (emulated nodes may step in). It lasts across the
 * node's reconnects until undone. */
void farm_scheduler_node_drain(farm_scheduler_t *self, farm_node_t *node, int on);
int farm_scheduler_node_drained(const farm_scheduler_t *self, const farm_node_t *node);

/* The node's agent says it is unhealthy (sick 1: a health check fails, e.g. its disk is
 * full) or healthy again (0). Like a drain, an unhealthy node takes no new job and counts
 * as not live (emulated nodes may step in; a job no other node serves waits, within
 * queue_timeout); its running jobs go on. It lasts across reconnects until the agent
 * says otherwise. */
void farm_scheduler_node_health(farm_scheduler_t *self, farm_node_t *node, int sick);
int farm_scheduler_node_sick(const farm_scheduler_t *self, const farm_node_t *node);

/* Assigns queued jobs to free nodes, as many as possible. Returns how many. */
size_t farm_scheduler_dispatch(farm_scheduler_t *self, long long now);
/* When the next cache wait ends (dispatch again then), -1 if no job waits for one. */
long long farm_scheduler_wake_at(const farm_scheduler_t *self);
/* The job's attempt built successfully on node: node becomes warm for its key. */
void farm_scheduler_job_built(farm_scheduler_t *self, const farm_job_t *job,
                              const farm_node_t *node);
size_t farm_scheduler_warm_keys(const farm_scheduler_t *self);
/* The warm-node memory itself (saved and restored across restarts by the coordinator). */
struct farm_warm *farm_scheduler_warm(farm_scheduler_t *self);

/* The job when `attempt` of it runs on `node`, else NULL (late or foreign). */
farm_job_t *farm_scheduler_running(farm_scheduler_t *self, const farm_node_t *node,
                                   const char *job_id, unsigned attempt);
/* Ends a running attempt (its result arrived, or it could not be sent): the slot is
 * free, job->node NULL. The caller sets the job's new state. */
void farm_scheduler_release(farm_scheduler_t *self, farm_job_t *job);
/* The running attempt failed for its node's own reason (the node is unhealthy now): the
 * job goes back to the front of its queue as a new attempt (requeued callback, why), for
 * another node. FARM_EINVALID when it does not run. */
int farm_scheduler_retry(farm_scheduler_t *self, farm_job_t *job, const char *why, long long now);
/* Takes a queued or running job out (build finished or cancelled): a running attempt is
 * cancelled on its node. The caller sets the job's new state. */
void farm_scheduler_withdraw(farm_scheduler_t *self, farm_job_t *job, const char *reason);

/* The coordinator itself did not run for gap ms (SIGSTOP, a stalled host): every timeout
 * and wait of the jobs moves gap later, so the pause costs no job its time. */
void farm_scheduler_pause_gap(farm_scheduler_t *self, long long gap);
/* Applies queue_timeout and job_timeout, and ends the parked jobs' waits. */
void farm_scheduler_tick(farm_scheduler_t *self, long long now);

int farm_scheduler_node_used(const farm_scheduler_t *self, const farm_node_t *node);
/* Up to max of the node's running jobs into out; returns how many it runs. */
size_t farm_scheduler_node_jobs(const farm_scheduler_t *self, const farm_node_t *node,
                                farm_job_t **out, size_t max);
size_t farm_scheduler_queued(const farm_scheduler_t *self);
size_t farm_scheduler_parked(const farm_scheduler_t *self);

/* The self-check of the bookkeeping: every queued job in its platform's queue or waits
 * once, every running job on its node's list once, the counts (queued, waits, used slots,
 * live nodes) equal to what the lists hold, a node in a platform's heap of free nodes
 * only when it is live, neither drained nor unhealthy, and has a free slot. 0, or
 * FARM_ERROR naming the first broken rule ("scheduler error: ..."). The unit tests call
 * it after every step; the coordinator with -v at every turn's end. */
int farm_scheduler_check(const farm_scheduler_t *self);

/* farm.yaml was reloaded. Before: every job of a platform cfg lacks (plat_map[i] < 0)
 * is out of the scheduler (the caller fails them: farm_scheduler_platform_jobs lists
 * them), else FARM_EINVALID and nothing changes. The node table was reloaded first
 * (farm_nodes_reload): n_nodes is its size now (it only grows), and the live nodes'
 * platforms index cfg. The queues follow their platforms into cfg's order in their own
 * order (a platform added starts empty), running jobs stay where they run, the nodes'
 * heaps are rebuilt from their platforms and slots now. On failure (out of memory)
 * nothing changed. */
int farm_scheduler_reload(farm_scheduler_t *self, const farm_config_t *cfg,
                          const long *plat_map, size_t n_nodes);
/* The queued (parked too) and running jobs of the platform (config index), at most max
 * into out; returns how many there are. */
size_t farm_scheduler_platform_jobs(const farm_scheduler_t *self, size_t platform_index,
                                    farm_job_t **out, size_t max);

#endif
