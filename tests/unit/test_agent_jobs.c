/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's jobs (agent/jobs.h): duplicates refused, ended jobs freed only at the end
 * of a turn (the use-after-free a REJECT with rehello caused), cancel ending the worker's
 * whole process group (SIGKILL after the grace period for one that ignores SIGTERM), a
 * finished worker's status, and job dirs of an earlier agent run removed with their
 * still-running worker. Real processes (/bin/sh) stand in for the worker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/jobs.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/wire.h"

#define CTX "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char s_dir[256];
static int s_freed;

static void s_free_user(void *user)
{
    s_freed++;
    free(user);
}

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/farm-test-jobs.%d", (int)getpid());
    farm_fs_rmtree(s_dir);
    s_freed = 0;
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    farm_fs_rmtree(s_dir);
    return 0;
}

static int s_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void s_nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* 1 while a process of group pgid runs (zombies waiting for init do not count). */
static int s_group_alive(pid_t pgid)
{
    char path[300], buf[512], *p;
    int alive = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    assert_non_null(d);
    while (!alive && (e = readdir(d))) {
        FILE *f;
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        if (fgets(buf, sizeof buf, f) && (p = strrchr(buf, ')')) && p[1] == ' ') {
            char st = p[2];
            int ppid = 0, pgrp = 0;
            if (sscanf(p + 4, "%d %d", &ppid, &pgrp) == 2 && pgrp == pgid && st != 'Z')
                alive = 1;
        }
        fclose(f);
    }
    closedir(d);
    return alive;
}

static void s_ignore_line(void *arg, const char *line)
{
    (void)arg;
    (void)line;
}

/* Reads the worker's streams and polls until it is reaped (at most ~10 s). */
static void s_run_until_exit(farm_jobs_t *jobs, farm_agent_job_t *job, long long now)
{
    for (int i = 0; i < 1000 && !job->child_exited; i++) {
        if (farm_child_log_fd(job->child) >= 0)
            farm_child_read_log(job->child, s_ignore_line, NULL);
        if (farm_child_result_fd(job->child) >= 0)
            farm_child_read_result(job->child);
        farm_jobs_poll(jobs, now);
        if (!job->child_exited)
            s_nap(10);
    }
    assert_true(job->child_exited);
}

static void s_spawn_sh(farm_jobs_t *jobs, farm_agent_job_t *job, const char *script)
{
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    farm_child_opts_t o = {.argv = argv};
    assert_int_equal(farm_jobs_prepare(jobs, job), 0);
    assert_int_equal(farm_jobs_spawn(jobs, job, &o, 0), 0);
    assert_int_equal(job->state, FARM_AGENT_JOB_RUNNING);
}

static void test_add_find_dup(void **state)
{
    farm_jobs_t *jobs = farm_jobs_new(s_dir, s_free_user);
    char long_id[FARM_ID_MAX + 2];
    int dup = 0;
    farm_agent_job_t *a;
    (void)state;

    assert_non_null(jobs);
    a = farm_jobs_add(jobs, &dup, "b1-aa.1", 1, "linux/amd64", CTX, malloc(1));
    assert_non_null(a);
    assert_ptr_equal(farm_jobs_find(jobs, "b1-aa.1", 1), a);
    assert_null(farm_jobs_find(jobs, "b1-aa.1", 2));
    assert_null(farm_jobs_add(jobs, &dup, "b1-aa.1", 1, "linux/amd64", CTX, NULL));
    assert_int_equal(dup, 1);
    assert_non_null(farm_jobs_add(jobs, &dup, "b1-aa.1", 2, "linux/amd64", CTX, malloc(1)));
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_null(farm_jobs_add(jobs, &dup, long_id, 1, "linux/amd64", CTX, NULL));
    assert_int_equal(dup, 0);
    assert_int_equal(farm_jobs_count(jobs), 2);
    assert_true(farm_jobs_need_context(jobs, CTX));
    farm_jobs_destroy(&jobs);
    assert_null(jobs);
    assert_int_equal(s_freed, 2);
}

/* The UAF: a handler holds job pointers (the reactor's fd readers); a REJECT with
 * rehello read earlier in the same turn drops every job. The jobs stay valid, dead, until
 * farm_jobs_reap at the end of the turn. (Under ASan a free in drop_all fails here.) */
static void test_drop_all_frees_at_turn_end(void **state)
{
    farm_jobs_t *jobs = farm_jobs_new(s_dir, s_free_user);
    farm_agent_job_t *held[3];
    (void)state;

    held[0] = farm_jobs_add(jobs, NULL, "j.1", 1, "linux/amd64", CTX, malloc(1));
    held[1] = farm_jobs_add(jobs, NULL, "j.2", 1, "linux/amd64", CTX, malloc(1));
    held[2] = farm_jobs_add(jobs, NULL, "j.3", 1, "linux/amd64", CTX, malloc(1));
    s_spawn_sh(jobs, held[1], "while :; do echo output; sleep 0.05; done");
    farm_jobs_drop_all(jobs, 0); /* the REJECT */
    assert_int_equal(farm_jobs_count(jobs), 0);
    assert_null(farm_jobs_find(jobs, "j.2", 1));
    /* later in the same turn: the readers' pointers still work */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(held[i]->state, FARM_AGENT_JOB_DEAD);
        assert_int_equal(held[i]->attempt, 1);
        assert_string_equal(held[i]->platform, "linux/amd64");
    }
    assert_true(farm_child_log_fd(held[1]->child) >= 0);
    farm_child_read_log(held[1]->child, s_ignore_line, NULL);
    assert_int_equal(s_freed, 0);
    /* end of turn: those without a worker go now; the one whose worker still ends, once
     * it has (SIGTERM was sent by drop) */
    assert_int_equal(farm_jobs_reap(jobs), 2);
    assert_int_equal(s_freed, 2);
    s_run_until_exit(jobs, held[1], 0);
    assert_true(WIFSIGNALED(held[1]->exit_status));
    assert_int_equal(WTERMSIG(held[1]->exit_status), SIGTERM);
    assert_int_equal(farm_jobs_reap(jobs), 1);
    assert_int_equal(s_freed, 3);
    farm_jobs_destroy(&jobs);
}

/* Cancel: SIGTERM to the worker's group; one that ignores it (and its children) gets
 * SIGKILL when the grace period ends. Nothing of the group survives. */
static void test_cancel_kills_group(void **state)
{
    farm_jobs_t *jobs = farm_jobs_new(s_dir, s_free_user);
    farm_agent_job_t *job = farm_jobs_add(jobs, NULL, "c.1", 1, "linux/amd64", CTX, NULL);
    char dir[FARM_PATH_MAX], ready[FARM_PATH_MAX + 16];
    pid_t pgid;
    (void)state;

    /* "ready" once TERM is ignored and both sleeps are forked: a SIGTERM before the trap
     * (a fixed nap is not enough on a loaded machine) would end the shell at once */
    s_spawn_sh(jobs, job, "trap '' TERM; sleep 3600 & sleep 3601 & touch \"$TMPDIR/ready\"; "
                          "wait; wait");
    pgid = farm_child_pid(job->child);
    memcpy(dir, job->dir, sizeof dir);
    assert_true(s_exists(dir));
    snprintf(ready, sizeof ready, "%s/tmp/ready", dir);
    for (int i = 0; i < 1000 && !s_exists(ready); i++)
        s_nap(10);
    assert_true(s_exists(ready));
    farm_jobs_cancel(jobs, job, 1000);
    assert_true(job->cancelled);
    assert_int_equal(job->state, FARM_AGENT_JOB_RUNNING); /* until its worker is reaped */
    farm_jobs_poll(jobs, 1000 + FARM_JOBS_KILL_GRACE_MS - 1);
    s_nap(300);
    farm_jobs_poll(jobs, 1000 + FARM_JOBS_KILL_GRACE_MS - 1);
    assert_false(job->child_exited); /* ignores SIGTERM: still there */
    assert_int_equal(kill(-pgid, 0), 0);
    s_run_until_exit(jobs, job, 1000 + FARM_JOBS_KILL_GRACE_MS);
    assert_true(WIFSIGNALED(job->exit_status));
    assert_int_equal(WTERMSIG(job->exit_status), SIGKILL);
    /* SIGKILL reached the whole group; its other members may take a moment to die
     * (reaped by init, not by us), so wait for them, generously */
    for (int i = 0; i < 500 && s_group_alive(pgid); i++)
        s_nap(10);
    assert_false(s_group_alive(pgid));
    for (int i = 0; i < 300 && !farm_jobs_finished(job, 1000 + FARM_JOBS_KILL_GRACE_MS); i++) {
        if (farm_child_log_fd(job->child) >= 0)
            farm_child_read_log(job->child, s_ignore_line, NULL);
        if (farm_child_result_fd(job->child) >= 0)
            farm_child_read_result(job->child);
        s_nap(10);
    }
    assert_true(farm_jobs_finished(job, 1000 + FARM_JOBS_KILL_GRACE_MS));
    farm_jobs_drop(jobs, job, 0);
    assert_int_equal(farm_jobs_reap(jobs), 1);
    assert_false(s_exists(dir)); /* the job dir goes with the job */
    farm_jobs_destroy(&jobs);
}

static void test_finished_status_and_tmpdir(void **state)
{
    farm_jobs_t *jobs = farm_jobs_new(s_dir, s_free_user);
    farm_agent_job_t *job = farm_jobs_add(jobs, NULL, "f.1", 1, "linux/amd64", CTX, NULL);
    char want[FARM_PATH_MAX + 8];
    (void)state;

    /* the builder's temp files go to JOBDIR/tmp */
    s_spawn_sh(jobs, job, "test -d \"$TMPDIR\" && touch \"$TMPDIR/x\" && exit 3; exit 9");
    snprintf(want, sizeof want, "%s/tmp/x", job->dir);
    s_run_until_exit(jobs, job, 0);
    assert_true(WIFEXITED(job->exit_status));
    assert_int_equal(WEXITSTATUS(job->exit_status), 3);
    assert_true(s_exists(want));
    farm_jobs_destroy(&jobs);
    assert_false(s_exists(want));
}

/* A job dir left by an agent killed with SIGKILL, its worker still running in its own
 * session: the next agent ends the worker and removes the dir. */
static void test_stale_dirs_removed(void **state)
{
    char jd[512], rec[600], file[600], stat_path[64], buf[1024], *p;
    unsigned long long start;
    FILE *f;
    pid_t pid;
    int status;
    farm_jobs_t *jobs;
    (void)state;

    snprintf(jd, sizeof jd, "%s/job-7-12345", s_dir);
    assert_int_equal(farm_fs_mkdirs(jd), 0);
    snprintf(file, sizeof file, "%s/tmp", jd);
    assert_int_equal(mkdir(file, 0700), 0);
    snprintf(file, sizeof file, "%s/tmp/leftover", jd);
    f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setsid();
        execl("/bin/sleep", "sleep", "3600", (char *)NULL);
        _exit(127);
    }
    s_nap(100);
    snprintf(stat_path, sizeof stat_path, "/proc/%d/stat", (int)pid);
    f = fopen(stat_path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    p = strrchr(buf, ')') + 2;
    for (int field = 3; field < 22; field++)
        p = strchr(p, ' ') + 1;
    start = strtoull(p, NULL, 10);
    snprintf(rec, sizeof rec, "%s/worker", jd);
    f = fopen(rec, "w");
    assert_non_null(f);
    fprintf(f, "%d %llu\n", (int)pid, start);
    fclose(f);

    jobs = farm_jobs_new(s_dir, s_free_user);
    assert_non_null(jobs);
    assert_false(s_exists(jd));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGTERM);
    farm_jobs_destroy(&jobs);
}

/* A record naming a pid that now belongs to another process (different start time) is
 * not killed. */
static void test_stale_record_pid_reused(void **state)
{
    char jd[512], rec[600];
    FILE *f;
    pid_t pid;
    int status;
    farm_jobs_t *jobs;
    (void)state;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sleep", "sleep", "3", (char *)NULL);
        _exit(127);
    }
    snprintf(jd, sizeof jd, "%s/job-8-12345", s_dir);
    assert_int_equal(farm_fs_mkdirs(jd), 0);
    snprintf(rec, sizeof rec, "%s/worker", jd);
    f = fopen(rec, "w");
    assert_non_null(f);
    fprintf(f, "%d %llu\n", (int)pid, 1ULL); /* wrong start time */
    fclose(f);
    jobs = farm_jobs_new(s_dir, s_free_user);
    assert_false(s_exists(jd));
    assert_int_equal(kill(pid, 0), 0); /* still running */
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    farm_jobs_destroy(&jobs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_find_dup, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_drop_all_frees_at_turn_end, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_kills_group, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_finished_status_and_tmpdir, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_stale_dirs_removed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_stale_record_pid_reused, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
