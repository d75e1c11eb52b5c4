/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/held.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"
#include "common/log.h"

#define FILE_MAX (4u << 20) /* a JobResult is a descriptor and a log tail: far below */

typedef struct {
    Farm__JobResult *r;   /* unpacked copy (owned) */
    unsigned long seq;    /* its file: DIR/result-SEQ */
} entry_t;

struct farm_held {
    char dir[FARM_PATH_MAX]; /* "" : in memory only */
    entry_t e[FARM_HELD_MAX];
    size_t n;
    unsigned long seq;
};

static int s_file(char *out, size_t len, const farm_held_t *self, unsigned long seq)
{
    return farm_path_fmt(out, len, "%s/result-%lu", self->dir, seq);
}

static void s_remove_at(farm_held_t *self, size_t i)
{
    char path[FARM_PATH_MAX];

    if (self->dir[0] && s_file(path, sizeof path, self, self->e[i].seq) == 0)
        unlink(path);
    farm__job_result__free_unpacked(self->e[i].r, NULL);
    memmove(&self->e[i], &self->e[i + 1], (self->n - i - 1) * sizeof self->e[0]);
    self->n--;
}

static long s_find(const farm_held_t *self, const char *job_id, unsigned attempt)
{
    for (size_t i = 0; i < self->n; i++)
        if (self->e[i].r->attempt == attempt && strcmp(self->e[i].r->job_id, job_id) == 0)
            return (long)i;
    return -1;
}

/* Loads DIR/result-N files, oldest (lowest N) first. */
static void s_load(farm_held_t *self)
{
    DIR *d = opendir(self->dir);
    struct dirent *de;

    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        char path[FARM_PATH_MAX], *end;
        unsigned long seq;
        size_t at;
        uint8_t *buf = NULL;
        ssize_t n = -1;
        struct stat st = {0};
        Farm__JobResult *r = NULL;
        int fd;

        if (strncmp(de->d_name, "result-", 7) != 0)
            continue;
        seq = strtoul(de->d_name + 7, &end, 10);
        if (*end || s_file(path, sizeof path, self, seq) < 0)
            continue;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
            (size_t)st.st_size <= FILE_MAX && (buf = malloc((size_t)st.st_size)))
            n = read(fd, buf, (size_t)st.st_size);
        if (fd >= 0)
            close(fd);
        if (n > 0 && n == st.st_size)
            r = farm__job_result__unpack(NULL, (size_t)n, buf);
        free(buf);
        if (!r || !r->job_id[0] || strlen(r->job_id) > FARM_ID_MAX || self->n == FARM_HELD_MAX ||
            s_find(self, r->job_id, r->attempt) >= 0) {
            farm_log_warn("finished result %s: unreadable or one too many; removed", path);
            if (r)
                farm__job_result__free_unpacked(r, NULL);
            unlink(path);
            continue;
        }
        /* insertion by seq keeps them oldest first */
        at = self->n;
        while (at > 0 && self->e[at - 1].seq > seq)
            at--;
        memmove(&self->e[at + 1], &self->e[at], (self->n - at) * sizeof self->e[0]);
        self->e[at].r = r;
        self->e[at].seq = seq;
        self->n++;
        if (seq >= self->seq)
            self->seq = seq + 1;
    }
    closedir(d);
}

farm_held_t *farm_held_new(const char *dir)
{
    farm_held_t *self = calloc(1, sizeof *self);

    if (!self) {
        farm_error_set(FARM_ERROR, "out of memory");
        return NULL;
    }
    if (dir) {
        if (farm_path_fmt(self->dir, sizeof self->dir, "%s", dir) < 0 ||
            farm_fs_mkdirs(dir) < 0) {
            farm_error_wrap(FARM_EIO, "finished results directory %s", dir);
            free(self);
            return NULL;
        }
        farm_fs_remove_atomic_temps(dir);
        s_load(self);
    }
    return self;
}

void farm_held_destroy(farm_held_t **self_p)
{
    farm_held_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++)
        farm__job_result__free_unpacked(self->e[i].r, NULL);
    free(self);
    *self_p = NULL;
}

int farm_held_put(farm_held_t *self, const Farm__JobResult *r)
{
    size_t len = farm__job_result__get_packed_size(r);
    uint8_t *buf = malloc(len ? len : 1);
    Farm__JobResult *copy;
    char path[FARM_PATH_MAX];
    long old;

    if (!buf)
        return farm_error_set(FARM_ERROR, "out of memory keeping a result");
    farm__job_result__pack(r, buf);
    copy = farm__job_result__unpack(NULL, len, buf);
    if (!copy) {
        free(buf);
        return farm_error_set(FARM_ERROR, "out of memory keeping a result");
    }
    if ((old = s_find(self, r->job_id, r->attempt)) >= 0)
        s_remove_at(self, (size_t)old);
    if (self->n == FARM_HELD_MAX) {
        farm_log_warn("job=%s attempt=%u: %d finished results wait for the coordinator; "
                      "the oldest is dropped", self->e[0].r->job_id, self->e[0].r->attempt,
                      FARM_HELD_MAX);
        s_remove_at(self, 0);
    }
    self->e[self->n].r = copy;
    self->e[self->n].seq = self->seq++;
    if (self->dir[0] &&
        (s_file(path, sizeof path, self, self->e[self->n].seq) < 0 ||
         farm_fs_write_atomic(path, buf, len) < 0))
        farm_log_warn("job=%s attempt=%u: cannot keep its result on disk (%s); it is kept in "
                      "memory only", r->job_id, r->attempt, farm_error_last());
    self->n++;
    free(buf);
    return 0;
}

int farm_held_drop(farm_held_t *self, const char *job_id, unsigned attempt)
{
    long i = s_find(self, job_id, attempt);
    if (i < 0)
        return 0;
    s_remove_at(self, (size_t)i);
    return 1;
}

size_t farm_held_count(const farm_held_t *self)
{
    return self->n;
}

const Farm__JobResult *farm_held_at(const farm_held_t *self, size_t i)
{
    return i < self->n ? self->e[i].r : NULL;
}
