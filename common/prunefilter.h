/* SPDX-License-Identifier: Apache-2.0 */
/* farmctl prune's --filter, as buildx writes it: "until=DURATION", DURATION a Go
 * duration of hours, minutes and seconds ("24h", "90m", "1h30m", "45s"): prune only what
 * was not used for that long. */
#ifndef FARM_PRUNEFILTER_H
#define FARM_PRUNEFILTER_H

#include <stddef.h>
#include <stdint.h>

/* Parses one --filter value into *out_until_s (seconds). FARM_EINVALID with an error
 * that names the part that is wrong and what is accepted. */
int farm_prunefilter_parse(uint64_t *out_until_s, const char *arg);

/* "3d4h", "1h30m", "45s", "0s": an age as a person reads it, at most two units. */
void farm_prunefilter_age(char *out, size_t cap, uint64_t seconds);

#endif
