#include "common/fs.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"

int farm_fs_mkdirs(const char *path)
{
    char tmp[4096];

    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return farm_error_set(FARM_EINVALID, "path too long: %.100s...", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return farm_error_set(FARM_EIO, "cannot create %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return farm_error_set(FARM_EIO, "cannot create %s: %s", tmp, strerror(errno));
    return 0;
}

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void farm_fs_rmtree(const char *path)
{
    nftw(path, s_rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}
