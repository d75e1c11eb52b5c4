/* Small filesystem helpers shared by the coordinator and the agent. */
#ifndef FARM_FS_H
#define FARM_FS_H

/* mkdir -p with mode 0700 for every directory it creates. */
int farm_fs_mkdirs(const char *path);
/* rm -rf without following symlinks (nftw FTW_PHYS). */
void farm_fs_rmtree(const char *path);

#endif
