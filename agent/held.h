/* SPDX-License-Identifier: Apache-2.0 */
/* Finished results the coordinator has not taken yet. A job's JobResult is kept here
 * from the moment its worker ends until the coordinator acknowledges it (JobAck) or says
 * it does not know the attempt (JobCancel); the agent sends it again after every WELCOME
 * and lists it in its HELLO. Each result is also a file in the agent's work dir
 * (WORK_DIR/results, 0700, one packed farm.JobResult per file, written atomically), so a
 * restarted agent still delivers what it finished. At most FARM_HELD_MAX are kept: the
 * oldest goes first. */
#ifndef FARM_AGENT_HELD_H
#define FARM_AGENT_HELD_H

#include <stddef.h>
#include <stdint.h>

#include "farm.pb-c.h"

#define FARM_HELD_MAX 256

typedef struct farm_held farm_held_t;

/* dir: where the result files go (created 0700); the files found there are loaded (one
 * that does not parse is removed with a warning). dir NULL: in memory only. */
farm_held_t *farm_held_new(const char *dir);
void farm_held_destroy(farm_held_t **self_p);

/* Keeps a copy of r (replacing one of the same job and attempt). A file that cannot be
 * written is warned about; the result stays in memory. */
int farm_held_put(farm_held_t *self, const Farm__JobResult *r);
/* Forgets (job_id, attempt) and its file; 1 when it was held. */
int farm_held_drop(farm_held_t *self, const char *job_id, unsigned attempt);
size_t farm_held_count(const farm_held_t *self);
/* The i-th held result, oldest first (borrowed; valid until the next put or drop). */
const Farm__JobResult *farm_held_at(const farm_held_t *self, size_t i);

#endif
