/* SPDX-License-Identifier: Apache-2.0 */
/* The per-tag order of index pushes. Per tag (registry/repository:tag) the submit order
 * wins, whichever build finishes first:
 * - turn: two index pushes of one tag never run at once; a build waiting for one of its
 *   tags is not overtaken on it by a build that asked later (a build waits for all its
 *   tags);
 * - order: when its turn comes, a build's index goes under a tag only if no build
 *   submitted later took that tag already; a tag it takes is recorded before the push
 *   (in the journal when there is one, else in memory), so a restart keeps the order and
 *   a redone push of the same build takes its tags again.
 * A tag the order keeps from a build is named in its result (b->kept_by); its index is
 * still pushed by digest. */
#ifndef FARM_COORD_TAGORDER_H
#define FARM_COORD_TAGORDER_H

#include <stddef.h>
#include <stdint.h>

#include "coordinator/job.h"
#include "coordinator/journal.h"

typedef struct farm_tagorder farm_tagorder_t;

/* journal is borrowed (NULL: the tags' builds are kept in memory only). */
farm_tagorder_t *farm_tagorder_new(farm_journal_t *journal);
void farm_tagorder_destroy(farm_tagorder_t **self_p);

/* The turn rule, asked for the waiting builds oldest first within one pass:
 * farm_tagorder_may_start says 1 when none of b's tags is being pushed or wanted by a
 * build asked about earlier in this pass and still waiting, else 0 (b's tags are then
 * wanted for the rest of the pass); < 0 out of memory. */
void farm_tagorder_pass_begin(farm_tagorder_t *self);
int farm_tagorder_may_start(farm_tagorder_t *self, const farm_build_t *b);
/* b's push starts: its tags are busy until farm_tagorder_release. < 0 out of memory. */
int farm_tagorder_take(farm_tagorder_t *self, const farm_build_t *b);
void farm_tagorder_release(farm_tagorder_t *self, const farm_build_t *b);
/* How many tags are in memory: with a journal, those being pushed or waited for; without,
 * every tag a build took. */
size_t farm_tagorder_size(const farm_tagorder_t *self);
/* How many of its tags b holds now (busy). */
size_t farm_tagorder_busy(const farm_tagorder_t *self, const farm_build_t *b);

/* The order rule, when b's turn came (after farm_tagorder_take): fills b->kept_by, and
 * records b as the build of each tag it may move (a later push of the same build may
 * move it again). at: wall-clock ms for the record. Returns how many tags b moves, or
 * < 0 when the record could not be read or written (b's push must not go on: the error
 * names the journal and the tag). */
int farm_tagorder_claim(farm_tagorder_t *self, farm_build_t *b, long long at);
/* b's push failed and its helper said it sent a PUT for the first `tried` of the tags it
 * was to move (in b's order): the others cannot name its index, so they go back to the
 * build they had before the claim. Without such word (the helper died, or ran out of
 * time) nothing is undone: a tag may have moved. A record that cannot be written back
 * leaves the claim (said in the log). */
void farm_tagorder_undo(farm_tagorder_t *self, const farm_build_t *b, size_t tried,
                        long long at);

#endif
