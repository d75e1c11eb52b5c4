/* SPDX-License-Identifier: Apache-2.0 */
/* The page's files (coordinator/web/), built into the binary at build time
 * (coordinator/web/embed.cmake): the page works with no network and no file to install. */
#ifndef FARM_COORD_WEBFILES_H
#define FARM_COORD_WEBFILES_H

#include <stddef.h>

typedef struct {
    const char *path; /* as requested: "/", "/app.js" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
} farm_webfile_t;

/* The file served at path, or NULL. */
const farm_webfile_t *farm_webfile_get(const char *path);

#endif
