/* SPDX-License-Identifier: Apache-2.0 */
/* Build records as clients read them: `farmctl history [ls]`, `history inspect`, `logs`,
 * and the web page over HTTP. Each reply is built by a function of (caller, request) that
 * fills the reply message from the journal, bound to no transport: clients.c sends them
 * over ZeroMQ, the HTTP server prints them as JSON (common/pbjson).
 *
 * Rights, one rule each (farm_history_may_list, farm_history_may_read):
 *   - list: an admin and a read client every build (a read client is for dashboards and
 *     monitoring: it sees who built what, when and how it ended), a submit client its own;
 *   - read (inspect a record, its logs): an admin every build, a submit or read client its
 *     own only (a read client has none). A log is what the build's RUN steps printed and
 *     a record holds its build args: either may carry what only the submitter should see.
 * In a farm without keys every caller is an admin (the endpoints are loopback-only). */
#ifndef FARM_COORD_HISTORY_H
#define FARM_COORD_HISTORY_H

#include <stddef.h>

#include "common/config.h"
#include "common/limits.h"
#include "coordinator/parts.h"
#include "farm.pb-c.h"

/* Who asks: the client's name ("" without keys) and its role. */
typedef struct {
    const char *name;
    farm_role_t role;
} farm_history_caller_t;

/* Replies the farm_history_* functions return are allocated whole: free them with
 * protobuf_c_message_free_unpacked(&reply->base, NULL). */

/* The records caller may list, newest first, filtered as req says. NULL with the error
 * slot set (FARM_EINVALID: a filter, named, with what it accepts). */
Farm__HistoryReply *farm_history_list(const farm_coord_parts_t *parts,
                                      const farm_history_caller_t *caller,
                                      const Farm__HistoryRequest *req);
/* One build's record (req->build: an id, or ^N). NULL with the error slot set:
 * FARM_ENOTFOUND (no such build, or pruned), FARM_EAUTH (not the caller's: the message
 * names the role needed and the fix), FARM_EINVALID. */
Farm__HistoryRecord *farm_history_get(const farm_coord_parts_t *parts,
                                      const farm_history_caller_t *caller,
                                      const Farm__HistoryGet *req);
/* The build's kept log lines (req->platform: those of one platform), at most max_bytes
 * of lines per reply (0: 256 KiB): *out_n replies, each but the last with more set.
 * req->follow is not acted on here: the caller subscribes (farm_history_watch) in the
 * same reactor turn so that no line falls between. NULL with the error slot set, as
 * farm_history_get. */
Farm__LogsReply **farm_history_logs(size_t *out_n, const farm_coord_parts_t *parts,
                                    const farm_history_caller_t *caller,
                                    const Farm__LogsRequest *req, size_t max_bytes);
void farm_history_logs_free(Farm__LogsReply **replies, size_t n);

/* The rules. owner: the build's ("" without keys). */
int farm_history_may_list(const farm_history_caller_t *caller, const char *owner);
int farm_history_may_read(const farm_history_caller_t *caller, const char *owner);

/* Resolves a build reference (an id, or ^N: the Nth before the newest build the caller
 * may list) into out. FARM_ENOTFOUND / FARM_EINVALID with the error slot set. */
int farm_history_resolve(char out[FARM_ID_MAX + 1], const farm_coord_parts_t *parts,
                         const farm_history_caller_t *caller, const char *ref);

/* Live log lines of running builds, for a page that shows them as they come: fn is called
 * for each line of the build (platform, line), and once with platform and line NULL when
 * the build ends; then the watch is gone. The watch id (> 0), or < 0. fn may not watch or
 * unwatch while the lines are being handed out (the end call excepted). */
typedef void (*farm_history_line_fn)(void *arg, const char *build_id, const char *platform,
                                     const char *line);
typedef struct farm_history_watches farm_history_watches_t;
farm_history_watches_t *farm_history_watches_new(void);
void farm_history_watches_destroy(farm_history_watches_t **self_p);
int farm_history_watch(farm_history_watches_t *self, const char *build_id,
                       farm_history_line_fn fn, void *arg);
void farm_history_unwatch(farm_history_watches_t *self, int id);
/* The coordinator's calls: a line of a build's log; the build ended. */
void farm_history_line(farm_history_watches_t *self, const char *build_id,
                       const char *platform, const char *line);
void farm_history_ended(farm_history_watches_t *self, const char *build_id);

#endif
