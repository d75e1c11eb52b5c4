/* SPDX-License-Identifier: Apache-2.0 */
/* .dockerignore matcher with Docker's rules (moby/patternmatcher): filepath.Match
 * patterns, "**", "!" exceptions, last match wins, a match on a parent directory covers
 * everything under it. */
#ifndef FARM_DOCKERIGNORE_H
#define FARM_DOCKERIGNORE_H

typedef struct farm_dockerignore farm_dockerignore_t;

/* Reads a .dockerignore file (at most 1 MiB); a missing file gives an empty matcher.
 * NULL (message names the file) when it cannot be read or a pattern is malformed. */
farm_dockerignore_t *farm_dockerignore_load(const char *path);
/* NULL (message names the line) on a malformed pattern: "[abc", a lone "!". */
farm_dockerignore_t *farm_dockerignore_parse(const char *text);
void farm_dockerignore_destroy(farm_dockerignore_t **self_p);

/* 1 if relative path (forward slashes, no leading "./") is excluded. */
int farm_dockerignore_match(const farm_dockerignore_t *self, const char *rel_path);
/* Must a walk enter excluded directory `dir`, because an exception may bring back
 * something inside it? */
int farm_dockerignore_may_descend(const farm_dockerignore_t *self, const char *dir);
/* Makes sure rel_path is sent even if a pattern excludes it (Docker does this for the
 * Dockerfile and .dockerignore): adds the exception "!rel_path" when needed. */
int farm_dockerignore_keep(farm_dockerignore_t *self, const char *rel_path);

/* Go's path/filepath.Clean for "/"-separated paths, as Docker applies it to patterns and
 * the Dockerfile path: "./a//b/../c" -> "a/c". Returns a malloc'd string, NULL on OOM. */
char *farm_dockerignore_clean(const char *path);

#endif
