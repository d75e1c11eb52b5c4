/* SPDX-License-Identifier: Apache-2.0 */
/* Build contexts: packed as a tar by farmctl (honouring .dockerignore), sent once by
 * digest, extracted safely by the agent. */
#ifndef FARM_CONTEXT_H
#define FARM_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "common/digest.h"

/* Packs directory `dir` into a tar file at `out_path`, honouring dir/.dockerignore
 * (Docker's rules: filepath.Match patterns, "**", "!" exceptions, last match wins;
 * the Dockerfile and .dockerignore are always sent). Entries are sorted and the owner
 * normalised (uid/gid 0, no names) so the same tree gives the same digest; mtimes are
 * kept in whole seconds, as COPY preserves them. Regular files, directories and
 * symlinks only (others are skipped with a warning). The Dockerfile path
 * `dockerfile` (relative to dir, may be NULL) is included even if ignored.
 * Returns digest and size of the tar. */
int farm_context_pack(char out_digest[FARM_DIGEST_STRLEN], uint64_t *out_size, const char *dir,
                      const char *dockerfile, const char *out_path);

/* Extracts tar `tar_path` into the existing, empty directory `dest`, refusing absolute
 * paths, "..", device nodes/fifos, and links that leave dest (kernel-enforced where
 * possible). Bounds: total bytes and entry count. A clear error names the entry. */
int farm_context_extract(const char *tar_path, const char *dest, uint64_t max_bytes,
                         uint64_t max_entries);

#endif
