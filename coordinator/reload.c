/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/reload.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"

static volatile sig_atomic_t s_hup;

static void s_on_hup(int sig)
{
    (void)sig;
    s_hup = 1;
}

void farm_reload_catch_sighup(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = s_on_hup;
    sigaction(SIGHUP, &sa, NULL);
}

int farm_reload_requested(void)
{
    if (!s_hup)
        return 0;
    s_hup = 0;
    return 1;
}

/* Appends ", name" (or "name" first) to buf, "..." once it is full. */
static void s_list_add(char *buf, size_t len, const char *name)
{
    size_t off = strlen(buf);
    if (off + strlen(name) + 6 >= len) {
        if (off + 4 < len && (off < 3 || strcmp(buf + off - 3, "...") != 0))
            snprintf(buf + off, len - off, "...");
        return;
    }
    snprintf(buf + off, len - off, "%s%s", off ? ", " : "", name);
}

/* What changed between old and neu, for the log line that says the reload was applied. */
static void s_summary(char *out, size_t len, const farm_config_t *old, const farm_config_t *neu)
{
    char added[512] = "", removed[512] = "", padded[512] = "", premoved[512] = "";

    for (size_t i = 0; i < neu->n_nodes; i++)
        if (!farm_config_node(old, neu->nodes[i].name))
            s_list_add(added, sizeof added, neu->nodes[i].name);
    for (size_t i = 0; i < old->n_nodes; i++)
        if (!farm_config_node(neu, old->nodes[i].name))
            s_list_add(removed, sizeof removed, old->nodes[i].name);
    for (size_t i = 0; i < neu->n_platforms; i++)
        if (!farm_config_platform(old, neu->platforms[i].platform))
            s_list_add(padded, sizeof padded, neu->platforms[i].platform);
    for (size_t i = 0; i < old->n_platforms; i++)
        if (!farm_config_platform(neu, old->platforms[i].platform))
            s_list_add(premoved, sizeof premoved, old->platforms[i].platform);
    snprintf(out, len, "%zu node(s) (added: %s; removed: %s), %zu platform(s) (added: %s; "
             "removed: %s), %zu client(s), %zu registr%s", neu->n_nodes,
             added[0] ? added : "none", removed[0] ? removed : "none", neu->n_platforms,
             padded[0] ? padded : "none", premoved[0] ? premoved : "none", neu->n_clients,
             neu->n_registries, neu->n_registries == 1 ? "y" : "ies");
}

/* The jobs of every platform neu lacks fail now, their reason naming the reload. */
static int s_fail_removed_platforms(const farm_reload_parts_t *p, const farm_config_t *old,
                                    const long *map, long long now)
{
    for (size_t pi = 0; pi < old->n_platforms; pi++) {
        size_t n = map[pi] < 0 ? farm_scheduler_platform_jobs(p->sched, pi, NULL, 0) : 0;
        farm_job_t **jobs;
        char why[512];

        if (!n)
            continue;
        if (!(jobs = calloc(n, sizeof *jobs)))
            return farm_error_set(FARM_ERROR, "out of memory");
        farm_scheduler_platform_jobs(p->sched, pi, jobs, n);
        snprintf(why, sizeof why, "platform %s was removed from %s (reload)",
                 old->platforms[pi].platform, old->path);
        farm_log_warn("reload: %s; its %zu queued or running job(s) fail", why, n);
        for (size_t i = 0; i < n; i++) {
            /* failing one may end its build, which withdraws the others of that build */
            if (jobs[i]->state != FARM_JOB_QUEUED && jobs[i]->state != FARM_JOB_RUNNING)
                continue;
            farm_scheduler_withdraw(p->sched, jobs[i], why);
            farm_builds_job_failed(p->builds, jobs[i], now, "%s", why);
        }
        free(jobs);
    }
    return 0;
}

/* A connected node whose key neu replaced: its session was let in with the old key, which
 * farm.yaml no longer trusts, so it ends now (its jobs go to other nodes) and its agent is
 * told why. */
static void s_drop_rekeyed(const farm_reload_parts_t *p, const farm_config_t *neu)
{
    for (size_t i = 0; i < farm_nodes_count(p->nodes); i++) {
        farm_node_t *node = farm_nodes_at(p->nodes, i);
        const farm_config_node_t *c = farm_config_node(neu, node->cfg->name);
        char why[512];

        if (!c || node->state != FARM_NODE_READY || !c->key || !node->cfg->key ||
            strcmp(c->key, node->cfg->key) == 0)
            continue;
        snprintf(why, sizeof why, "node \"%s\"'s key changed in %s (reload) and this "
                 "connection was made with the old one; restart the agent with the key now "
                 "enrolled", node->cfg->name, neu->path);
        farm_log_warn("node=%s: its key changed in farm.yaml; its session ends", node->cfg->name);
        farm_agents_forget(p->ag, node, why);
    }
}

/* The parts move to neu (the node table first: the scheduler reads its platforms).
 * *moved is set once some part points into neu. */
static int s_apply(const farm_reload_parts_t *p, farm_config_t *neu, const long *map,
                   long long now, int *moved)
{
    size_t n = farm_nodes_count(p->nodes);
    int *was_removed = calloc(n + 1, sizeof *was_removed);
    const char **names = NULL;
    int rc;

    *moved = 0;
    if (!was_removed)
        return farm_error_set(FARM_ERROR, "out of memory");
    for (size_t i = 0; i < n; i++)
        was_removed[i] = farm_nodes_at(p->nodes, i)->removed;
    if ((rc = s_fail_removed_platforms(p, *p->cfg, map, now)) < 0)
        goto done;
    s_drop_rekeyed(p, neu);
    if ((rc = farm_nodes_reload(p->nodes, neu, map)) < 0)
        goto done;
    *moved = 1;
    if ((rc = farm_scheduler_reload(p->sched, neu, map, farm_nodes_count(p->nodes))) < 0)
        goto done;
    /* removed nodes take nothing new (as drained); one listed again takes work again */
    for (size_t i = 0; i < farm_nodes_count(p->nodes); i++) {
        farm_node_t *node = farm_nodes_at(p->nodes, i);
        if (node->removed)
            farm_scheduler_node_drain(p->sched, node, 1);
        else if (i < n && was_removed[i])
            farm_scheduler_node_drain(p->sched, node, 0);
    }
    n = farm_nodes_count(p->nodes);
    if ((names = calloc(n + 1, sizeof *names))) {
        for (size_t i = 0; i < n; i++)
            names[i] = farm_nodes_at(p->nodes, i)->cfg->name;
        farm_warmfile_names(p->warmfile, names, n);
    }
    farm_builds_reload(p->builds, neu);
    farm_pushes_reload(p->pushes, neu);
    farm_clients_reload(p->cl, neu);
    farm_agents_reload(p->ag, neu);
done:
    free(was_removed);
    free(names);
    return rc;
}

int farm_reload(const farm_reload_parts_t *p, long long now)
{
    farm_config_t *old = *p->cfg, *neu = NULL;
    farm_enrolled_t *enrolled = NULL;
    farm_diag_t diags = {0};
    long *map = NULL;
    char summary[2048];
    int rc, moved = 0;

    farm_log_info("reload: reading %s (SIGHUP)", old->path);
    if ((rc = farm_config_load(&neu, old->path, &diags)) < 0) {
        for (size_t i = 0; i < diags.n; i++)
            farm_log_error("%s", diags.items[i]);
        farm_diag_clear(&diags);
        rc = farm_error_set(FARM_EINVALID, "%s is not valid (the problems are logged above); "
                            "fix it (farmctl validate %s) and reload again", old->path,
                            old->path);
        goto refused;
    }
    if ((rc = farm_config_reload_check(old, neu)) < 0 || (rc = farm_config_load_cas(neu)) < 0)
        goto refused;
    if (neu->secure && !(enrolled = farm_enrolled_new(neu))) {
        rc = farm_error_wrap(FARM_EINVALID, "%s", neu->path);
        goto refused;
    }
    if ((rc = farm_config_platform_map(&map, old, neu)) < 0)
        goto refused;
    s_summary(summary, sizeof summary, old, neu);
    if ((rc = s_apply(p, neu, map, now, &moved)) < 0) {
        free(map);
        if (!moved)
            goto refused;
        /* out of memory part way: some parts point into neu, others into old, so both
         * stay allocated (old is let go unfreed) until the restart this asks for */
        farm_enrolled_destroy(&enrolled);
        *p->cfg = neu;
        farm_log_error("reload of %s failed part way: %s; restart the coordinator",
                       neu->path, farm_error_last());
        return rc;
    }
    free(map);
    if (p->enrolled) {
        farm_enrolled_destroy(p->enrolled);
        *p->enrolled = enrolled;
    }
    *p->cfg = neu;
    farm_config_destroy(&old);
    farm_log_info("reload: %s applied: %s; running builds go on", neu->path, summary);
    return 0;
refused:
    farm_enrolled_destroy(&enrolled);
    farm_config_destroy(&neu);
    farm_log_error("reload refused: %s; the farm.yaml loaded before stays in force",
                   farm_error_last());
    return rc;
}

void farm_reload_forget_idle(const farm_reload_parts_t *p)
{
    for (size_t i = 0; i < farm_nodes_count(p->nodes); i++) {
        farm_node_t *node = farm_nodes_at(p->nodes, i);
        char why[512];

        if (!node->removed || node->state != FARM_NODE_READY ||
            farm_scheduler_node_used(p->sched, node) > 0)
            continue;
        snprintf(why, sizeof why, "node \"%s\" was removed from %s (reload) and takes no "
                 "more jobs; add it under nodes: again, or stop this agent",
                 node->cfg->name, (*p->cfg)->path);
        farm_log_info("node=%s removed from farm.yaml and idle: forgotten", node->cfg->name);
        farm_agents_forget(p->ag, node, why);
    }
}
