/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/jobs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"

#define RECORD_NAME "worker" /* "PID STARTTIME\n" of the job's worker */

struct farm_jobs {
    char dir[FARM_PATH_MAX];
    farm_agent_job_t *jobs;
    void (*free_user)(void *user);
    unsigned seq;
};

/* ---- processes by pid and start time (pids get reused) */

/* Start time (field 22 of /proc/PID/stat) and whether it is a zombie; < 0 when gone. */
static int s_proc_stat(pid_t pid, unsigned long long *out_start, int *out_zombie)
{
    char path[64], buf[1024], *p;
    ssize_t n;
    int fd;

    if (farm_path_fmt(path, sizeof path, "/proc/%d/stat", (int)pid) < 0)
        return -1;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return -1;
    p += 2;
    if (out_zombie)
        *out_zombie = *p == 'Z' || *p == 'X';
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    if (out_start)
        *out_start = strtoull(p, NULL, 10);
    return 0;
}

static int s_same_alive(pid_t pid, unsigned long long start)
{
    unsigned long long got;
    int zombie;
    return pid > 0 && s_proc_stat(pid, &got, &zombie) == 0 && !zombie && got == start;
}

static void s_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Kills a recorded worker that still runs: SIGTERM to its group (it ends its own tree),
 * SIGKILL after the grace period. */
static void s_kill_recorded(const char *dir)
{
    char path[FARM_PATH_MAX];
    FILE *f;
    int pid = 0;
    unsigned long long start = 0;

    if (farm_path_join(path, sizeof path, dir, RECORD_NAME) < 0 || !(f = fopen(path, "re")))
        return;
    if (fscanf(f, "%d %llu", &pid, &start) != 2)
        pid = 0;
    fclose(f);
    if (!s_same_alive(pid, start))
        return;
    farm_log_warn("job dir %s: its worker (pid %d) still runs; ending it", dir, pid);
    kill(-pid, SIGTERM);
    kill(pid, SIGTERM);
    for (int waited = 0; waited < FARM_JOBS_KILL_GRACE_MS && s_same_alive(pid, start); waited += 50)
        s_sleep_ms(50);
    if (s_same_alive(pid, start)) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
}

/* /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo. */
static void s_unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

static int s_by_length_desc(const void *a, const void *b)
{
    size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

/* Detaches every mount at or under dir (deepest first): the builder can leave some. */
static void s_unmount_under(const char *dir)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL, **mnts = NULL;
    size_t cap = 0, n = 0, ncap = 0, dl = strlen(dir);

    if (!f)
        return;
    while (getline(&line, &cap, f) > 0) {
        char *save = NULL, *tok = strtok_r(line, " ", &save);
        for (int i = 1; tok && i < 5; i++)
            tok = strtok_r(NULL, " ", &save);
        if (!tok)
            continue;
        s_unescape(tok);
        if (strncmp(tok, dir, dl) != 0 || (tok[dl] != '\0' && tok[dl] != '/'))
            continue;
        if (n == ncap) {
            char **grown = realloc(mnts, (ncap = ncap ? ncap * 2 : 8) * sizeof *mnts);
            if (!grown)
                break;
            mnts = grown;
        }
        if (!(mnts[n] = strdup(tok)))
            break;
        n++;
    }
    free(line);
    fclose(f);
    if (n)
        qsort(mnts, n, sizeof *mnts, s_by_length_desc);
    for (size_t i = 0; i < n; i++) {
        if (umount2(mnts[i], MNT_DETACH) != 0)
            farm_log_warn("cannot unmount %s (left under a job dir): %s", mnts[i], strerror(errno));
        free(mnts[i]);
    }
    free(mnts);
}

void farm_jobs_remove_dir(const char *dir)
{
    s_kill_recorded(dir);
    s_unmount_under(dir);
    farm_fs_rmtree(dir);
}

/* Job directories of an earlier agent run: end their workers, remove them. */
static void s_remove_stale(farm_jobs_t *self)
{
    DIR *d = opendir(self->dir);
    struct dirent *e;
    int n = 0;

    if (!d)
        return;
    while ((e = readdir(d))) {
        char path[FARM_PATH_MAX];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (farm_path_join(path, sizeof path, self->dir, e->d_name) < 0) {
            farm_log_warn("jobs dir %s: %s", self->dir, farm_error_last());
            continue;
        }
        farm_jobs_remove_dir(path);
        n++;
    }
    closedir(d);
    if (n)
        farm_log_info("removed %d job dir(s) left by an earlier agent run in %s", n, self->dir);
}

/* ---- the job table */

farm_jobs_t *farm_jobs_new(const char *dir, void (*free_user)(void *user))
{
    farm_jobs_t *self = calloc(1, sizeof *self);

    if (!self) {
        farm_error_set(FARM_ERROR, "jobs: out of memory");
        return NULL;
    }
    self->free_user = free_user;
    if (farm_path_join(self->dir, sizeof self->dir, dir, NULL) < 0 || farm_fs_mkdirs(dir) < 0) {
        free(self);
        return NULL;
    }
    s_remove_stale(self);
    return self;
}

static void s_job_free(farm_jobs_t *self, farm_agent_job_t *job)
{
    farm_child_destroy(&job->child);
    if (job->dir[0])
        farm_jobs_remove_dir(job->dir);
    farm_tail_clear(&job->tail);
    if (self->free_user && job->user)
        self->free_user(job->user);
    free(job);
}

void farm_jobs_destroy(farm_jobs_t **self_p)
{
    farm_jobs_t *self = self_p ? *self_p : NULL;
    int running = 0;

    if (!self)
        return;
    for (farm_agent_job_t *j = self->jobs; j; j = j->next) {
        if (j->child && !j->child_exited) {
            farm_child_kill(j->child, SIGTERM);
            running++;
        }
    }
    /* workers end their builders' trees on SIGTERM: give them the grace period */
    for (int waited = 0; running && waited < FARM_JOBS_KILL_GRACE_MS; waited += 50) {
        running = 0;
        for (farm_agent_job_t *j = self->jobs; j; j = j->next) {
            if (j->child && !j->child_exited) {
                if (farm_child_reap(j->child, &j->exit_status) == 1)
                    j->child_exited = 1;
                else
                    running++;
            }
        }
        if (running)
            s_sleep_ms(50);
    }
    while (self->jobs) {
        farm_agent_job_t *j = self->jobs;
        self->jobs = j->next;
        s_job_free(self, j);
    }
    free(self);
    *self_p = NULL;
}

farm_agent_job_t *farm_jobs_find(farm_jobs_t *self, const char *id, unsigned attempt)
{
    for (farm_agent_job_t *j = self->jobs; j; j = j->next)
        if (j->state != FARM_AGENT_JOB_DEAD && j->attempt == attempt && strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

farm_agent_job_t *farm_jobs_add(farm_jobs_t *self, int *out_dup, const char *id, unsigned attempt,
                          const char *platform, const char *context, void *user)
{
    farm_agent_job_t *job;

    if (out_dup)
        *out_dup = 0;
    if (!id || !platform || !context || !*id)
        return farm_error_set(FARM_EINVALID, "job without id, platform or context"), NULL;
    if (strlen(id) > FARM_ID_MAX || strlen(platform) >= FARM_PLATFORM_STRLEN ||
        strlen(context) >= FARM_DIGEST_STRLEN)
        return farm_error_set(FARM_EINVALID, "job id, platform or context digest too long"), NULL;
    if (farm_jobs_find(self, id, attempt)) {
        if (out_dup)
            *out_dup = 1;
        return farm_error_set(FARM_EINVALID, "job %s attempt %u is already here", id, attempt),
               NULL;
    }
    job = calloc(1, sizeof *job);
    if (!job)
        return farm_error_set(FARM_ERROR, "job %s: out of memory", id), NULL;
    memcpy(job->id, id, strlen(id) + 1);
    memcpy(job->platform, platform, strlen(platform) + 1);
    memcpy(job->context, context, strlen(context) + 1);
    job->attempt = attempt;
    job->state = FARM_AGENT_JOB_FETCHING;
    job->user = user;
    job->next = self->jobs;
    self->jobs = job;
    return job;
}

farm_agent_job_t *farm_jobs_first(farm_jobs_t *self)
{
    return self->jobs;
}

size_t farm_jobs_count(const farm_jobs_t *self)
{
    size_t n = 0;
    for (const farm_agent_job_t *j = self->jobs; j; j = j->next)
        n += j->state != FARM_AGENT_JOB_DEAD;
    return n;
}

int farm_jobs_need_context(const farm_jobs_t *self, const char *digest)
{
    for (const farm_agent_job_t *j = self->jobs; j; j = j->next)
        if (j->state != FARM_AGENT_JOB_DEAD && strcmp(j->context, digest) == 0)
            return 1;
    return 0;
}

int farm_jobs_prepare(farm_jobs_t *self, farm_agent_job_t *job)
{
    char tmp[FARM_PATH_MAX];
    int rc;

    rc = farm_path_fmt(job->dir, sizeof job->dir, "%s/job-%u-%d", self->dir, ++self->seq,
                       (int)getpid());
    if (rc < 0)
        return farm_error_wrap(rc, "--work-dir is too long for job directories");
    if (mkdir(job->dir, 0700) != 0) {
        rc = farm_error_set(FARM_EIO, "cannot create %s: %s", job->dir, strerror(errno));
        job->dir[0] = '\0';
        return rc;
    }
    if ((rc = farm_path_join(tmp, sizeof tmp, job->dir, "tmp")) < 0)
        return rc;
    if (mkdir(tmp, 0700) != 0)
        return farm_error_set(FARM_EIO, "cannot create %s: %s", tmp, strerror(errno));
    return 0;
}

static void s_record(const farm_agent_job_t *job)
{
    char path[FARM_PATH_MAX];
    unsigned long long start = 0;
    pid_t pid = farm_child_pid(job->child);
    FILE *f;

    if (s_proc_stat(pid, &start, NULL) < 0)
        return; /* gone already: nothing to end later */
    if (farm_path_join(path, sizeof path, job->dir, RECORD_NAME) < 0 ||
        !(f = fopen(path, "wxe"))) {
        farm_log_warn("job=%s: cannot record its worker in %s", job->id, job->dir);
        return;
    }
    fprintf(f, "%d %llu\n", (int)pid, start);
    fclose(f);
}

int farm_jobs_spawn(farm_jobs_t *self, farm_agent_job_t *job, const farm_child_opts_t *opts,
                    long long now)
{
    farm_child_opts_t o = *opts;
    char tmpdir[FARM_PATH_MAX + 16];
    char *env[] = {tmpdir, NULL};
    int rc;

    (void)self;
    /* the builder's temporary files go to the job dir, removed with it */
    if ((rc = farm_path_fmt(tmpdir, sizeof tmpdir, "TMPDIR=%s/tmp", job->dir)) < 0)
        return rc;
    o.env_extra = env;
    job->child = farm_child_spawn(&o);
    if (!job->child)
        return FARM_ERROR;
    s_record(job);
    job->state = FARM_AGENT_JOB_RUNNING;
    job->started_ms = now;
    return 0;
}

static void s_terminate(farm_agent_job_t *job, long long now)
{
    if (!job->child || job->child_exited || job->kill_at)
        return;
    farm_child_kill(job->child, SIGTERM);
    job->kill_at = now + FARM_JOBS_KILL_GRACE_MS;
}

void farm_jobs_cancel(farm_jobs_t *self, farm_agent_job_t *job, long long now)
{
    (void)self;
    job->cancelled = 1;
    if (!job->child)
        job->state = FARM_AGENT_JOB_DEAD;
    else
        s_terminate(job, now);
}

void farm_jobs_drop(farm_jobs_t *self, farm_agent_job_t *job, long long now)
{
    (void)self;
    job->state = FARM_AGENT_JOB_DEAD;
    s_terminate(job, now);
}

void farm_jobs_drop_all(farm_jobs_t *self, long long now)
{
    for (farm_agent_job_t *j = self->jobs; j; j = j->next)
        farm_jobs_drop(self, j, now);
}

void farm_jobs_poll(farm_jobs_t *self, long long now)
{
    for (farm_agent_job_t *j = self->jobs; j; j = j->next) {
        if (!j->child || j->child_exited)
            continue;
        if (j->kill_at && now >= j->kill_at) {
            farm_log_warn("job=%s attempt=%u: worker still running %d ms after SIGTERM; SIGKILL",
                          j->id, j->attempt, FARM_JOBS_KILL_GRACE_MS);
            farm_child_kill(j->child, SIGKILL);
            j->kill_at = 0;
        }
        if (farm_child_reap(j->child, &j->exit_status) == 1) {
            j->child_exited = 1;
            j->exited_ms = now;
        }
    }
}

int farm_jobs_finished(const farm_agent_job_t *job, long long now)
{
    return job->state == FARM_AGENT_JOB_RUNNING && job->child && job->child_exited &&
           (farm_child_done(job->child) ||
            (farm_child_result_fd(job->child) < 0 && now - job->exited_ms > 2000));
}

size_t farm_jobs_reap(farm_jobs_t *self)
{
    size_t n = 0;
    for (farm_agent_job_t **pp = &self->jobs; *pp;) {
        farm_agent_job_t *j = *pp;
        if (j->state != FARM_AGENT_JOB_DEAD || (j->child && !j->child_exited)) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        s_job_free(self, j);
        n++;
    }
    return n;
}
