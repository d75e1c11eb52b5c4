/* SPDX-License-Identifier: Apache-2.0 */
/* Warnings a peer can cause (bad or refused messages), agents' and clients' alike: at
 * most FARM_PEER_WARNS_PER_S are logged a second; the rest are counted and the count is
 * logged, so a flood cannot fill the disk or drown the log. */
#ifndef FARM_COORD_PEERWARN_H
#define FARM_COORD_PEERWARN_H

#define FARM_PEER_WARNS_PER_S 20

void farm_peer_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
