/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/nodes.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/hmap.h"
#include "common/log.h"
#include "common/platform.h"

struct farm_nodes {
    const farm_config_t *cfg;
    farm_node_t **nodes; /* each its own allocation: jobs point at them across reloads */
    size_t n;
    farm_hmap_t *by_name;
    farm_hmap_t *by_rid; /* READY sessions only */
    long long last_check; /* farm_nodes_gap_check's last call (0: none yet) */
};

/* A node record holding its own copy of its farm.yaml entry. */
static farm_node_t *s_node_new(const farm_config_node_t *c, size_t index)
{
    farm_node_t *n = calloc(1, sizeof *n);

    if (!n)
        return NULL;
    n->conf = *c;
    n->conf.name = strdup(c->name);
    n->conf.key = c->key ? strdup(c->key) : NULL;
    if (!n->conf.name || (c->key && !n->conf.key)) {
        free(n->conf.name);
        free(n->conf.key);
        free(n);
        return NULL;
    }
    n->cfg = &n->conf;
    n->index = index;
    n->slots = c->slots;
    return n;
}

static void s_node_free(farm_node_t *n)
{
    if (!n)
        return;
    free(n->platforms);
    free(n->conf.name);
    free(n->conf.key);
    free(n);
}

farm_nodes_t *farm_nodes_new(const farm_config_t *cfg)
{
    farm_nodes_t *self = calloc(1, sizeof *self);

    if (!self)
        return NULL;
    self->cfg = cfg;
    self->nodes = calloc(cfg->n_nodes + 1, sizeof *self->nodes);
    self->by_name = farm_hmap_new();
    self->by_rid = farm_hmap_new();
    if (!self->nodes || !self->by_name || !self->by_rid)
        goto fail;
    for (size_t i = 0; i < cfg->n_nodes; i++) {
        farm_node_t *n = s_node_new(&cfg->nodes[i], i);
        if (!n)
            goto fail;
        self->nodes[self->n++] = n;
        if (farm_hmap_puts(self->by_name, n->cfg->name, n) < 0)
            goto fail;
    }
    return self;
fail:
    farm_error_set(FARM_ERROR, "out of memory for %zu nodes", cfg->n_nodes);
    farm_nodes_destroy(&self);
    return NULL;
}

void farm_nodes_destroy(farm_nodes_t **self_p)
{
    farm_nodes_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (size_t i = 0; self->nodes && i < self->n; i++)
        s_node_free(self->nodes[i]);
    free(self->nodes);
    farm_hmap_destroy(&self->by_name);
    farm_hmap_destroy(&self->by_rid);
    free(self);
    *self_p = NULL;
}

size_t farm_nodes_count(const farm_nodes_t *self)
{
    return self->n;
}

farm_node_t *farm_nodes_at(farm_nodes_t *self, size_t i)
{
    return i < self->n ? self->nodes[i] : NULL;
}

farm_node_t *farm_nodes_by_name(farm_nodes_t *self, const char *name)
{
    return farm_hmap_gets(self->by_name, name);
}

farm_node_t *farm_nodes_by_rid(farm_nodes_t *self, const void *rid, size_t rid_len)
{
    return farm_hmap_get(self->by_rid, rid, rid_len);
}

static int s_listed(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

/* Moves the node's routing-id entry to rid (a session may reconnect from a new one). */
static int s_set_rid(farm_nodes_t *self, farm_node_t *node, const void *rid, size_t rid_len)
{
    if (rid_len > sizeof node->rid)
        return farm_error_set(FARM_EINVALID, "routing id too long");
    if (node->rid_len && farm_hmap_get(self->by_rid, node->rid, node->rid_len) == node)
        farm_hmap_del(self->by_rid, node->rid, node->rid_len);
    memcpy(node->rid, rid, rid_len);
    node->rid_len = rid_len;
    /* a node that held this routing id before no longer hears from it: it goes silent
     * and is lost through liveness like any other */
    return farm_hmap_put(self->by_rid, rid, rid_len, node) < 0
               ? farm_error_set(FARM_ERROR, "out of memory")
               : 0;
}

/* Each platform the agent offers must be mapped to the node (native or emulated);
 * "linux/arm" and "linux/arm/v7" are one platform, counted once. */
static int s_accept_platforms(farm_nodes_t *self, const farm_node_t *node, const farm_hello_t *h,
                              farm_node_platform_t **out, size_t *out_n, char *reason,
                              size_t reason_len)
{
    farm_node_platform_t *plats;
    size_t n = 0;

    if (h->n_platforms > FARM_PLATFORMS_MAX) {
        snprintf(reason, reason_len, "the agent offers %zu platforms (at most %d)",
                 h->n_platforms, FARM_PLATFORMS_MAX);
        return FARM_EINVALID;
    }
    if (!(plats = calloc(h->n_platforms, sizeof *plats))) {
        snprintf(reason, reason_len, "coordinator out of memory; try again");
        return FARM_ERROR;
    }
    for (size_t i = 0; i < h->n_platforms; i++) {
        farm_platform_t p;
        char canon[FARM_PLATFORM_STRLEN];
        const farm_config_platform_t *cp;
        size_t index;
        int dup = 0;

        if (farm_platform_parse(&p, h->platforms[i]) < 0) {
            snprintf(reason, reason_len, "bad platform from agent: %s", farm_error_last());
            free(plats);
            return FARM_EINVALID;
        }
        farm_platform_format(canon, sizeof canon, &p);
        cp = farm_config_platform(self->cfg, canon);
        if (!cp || (!s_listed(cp->native, cp->n_native, node->cfg->name) &&
                    !s_listed(cp->emulated, cp->n_emulated, node->cfg->name))) {
            snprintf(reason, reason_len,
                     "platform %s is not mapped to node \"%s\" in %s (platforms:); map it or "
                     "drop it from the agent's --platform", canon, node->cfg->name,
                     self->cfg->path);
            free(plats);
            return FARM_EINVALID;
        }
        index = (size_t)(cp - self->cfg->platforms);
        for (size_t k = 0; k < n; k++)
            dup |= plats[k].platform_index == index;
        if (dup)
            continue;
        plats[n].platform_index = index;
        plats[n].emulated = !s_listed(cp->native, cp->n_native, node->cfg->name);
        n++;
    }
    *out = plats;
    *out_n = n;
    return 0;
}

farm_hello_outcome_t farm_nodes_hello(farm_nodes_t *self, farm_node_t **out,
                                      const farm_hello_t *h, const void *rid, size_t rid_len,
                                      long long now, char *reason, size_t reason_len)
{
    farm_node_t *node = farm_nodes_by_name(self, h->name);
    farm_node_platform_t *plats = NULL;
    size_t n_plats = 0;
    int major = 0, mine = 0;
    farm_hello_outcome_t outcome;

    *out = node;
    reason[0] = '\0';
    if (!node) {
        snprintf(reason, reason_len,
                 "node \"%.*s\" is not defined under nodes: in %s; add it there or start the "
                 "agent with --name set to a configured node", FARM_NAME_MAX + 1, h->name,
                 self->cfg->path);
        return FARM_HELLO_REJECTED;
    }
    /* bounded before anything is kept or logged */
    if (strlen(h->version) > 32 || (h->builder && strlen(h->builder) > 63)) {
        snprintf(reason, reason_len, "HELLO fields too long (version at most 32, builder at "
                 "most 63 characters)");
        return FARM_HELLO_REJECTED;
    }
    sscanf(h->version, "%d", &major);
    sscanf(FARM_VERSION, "%d", &mine);
    if (major != mine) {
        snprintf(reason, reason_len, "agent version %.32s is incompatible with coordinator %s; "
                 "run the same major version", h->version, FARM_VERSION);
        return FARM_HELLO_REJECTED;
    }
    if (h->n_platforms == 0) {
        snprintf(reason, reason_len, "the agent offers no platform; pass --platform");
        return FARM_HELLO_REJECTED;
    }
    if (s_accept_platforms(self, node, h, &plats, &n_plats, reason, reason_len) < 0)
        return FARM_HELLO_REJECTED;
    if (node->state == FARM_NODE_READY && node->session == h->session) {
        /* a HELLO resent before our WELCOME arrived: not a restart */
        free(plats);
        if (s_set_rid(self, node, rid, rid_len) < 0)
            goto oom;
        node->last_seen = now;
        return FARM_HELLO_RESENT;
    }
    outcome = node->state == FARM_NODE_READY ? FARM_HELLO_RESTARTED : FARM_HELLO_NEW;
    if (s_set_rid(self, node, rid, rid_len) < 0) {
        free(plats);
        goto oom;
    }
    free(node->platforms);
    node->platforms = plats;
    node->n_platforms = n_plats;
    node->state = FARM_NODE_READY;
    node->session = h->session;
    node->last_seen = now;
    node->slots = node->cfg->slots;
    node->hello_slots = h->slots < (uint32_t)INT_MAX ? (int)h->slots : INT_MAX;
    /* compared unsigned: a huge value must not wrap to a negative int */
    if (h->slots > 0 && h->slots < (uint32_t)node->slots)
        node->slots = (int)h->slots;
    snprintf(node->builder, sizeof node->builder, "%.63s", h->builder ? h->builder : "");
    snprintf(node->version, sizeof node->version, "%.32s", h->version); /* bounded above */
    node->builder_cache_bytes = node->cache_hits = 0; /* until its first heartbeat */
    return outcome;
oom:
    snprintf(reason, reason_len, "coordinator out of memory; try again");
    return FARM_HELLO_REJECTED;
}

void farm_nodes_seen(farm_nodes_t *self, farm_node_t *node, long long now)
{
    (void)self;
    node->last_seen = now;
}

void farm_nodes_lose(farm_nodes_t *self, farm_node_t *node)
{
    if (node->rid_len && farm_hmap_get(self->by_rid, node->rid, node->rid_len) == node)
        farm_hmap_del(self->by_rid, node->rid, node->rid_len);
    node->state = FARM_NODE_LOST;
}

long long farm_nodes_gap_check(farm_nodes_t *self, long long now, int heartbeat_ms)
{
    long long gap = self->last_check ? now - self->last_check : 0;

    self->last_check = now;
    if (gap <= 2LL * heartbeat_ms)
        return 0;
    farm_log_warn("the coordinator did not run for %lld ms (stopped or stalled); every node "
                  "gets a fresh liveness period to be heard from", gap);
    for (size_t i = 0; i < self->n; i++)
        if (self->nodes[i]->state == FARM_NODE_READY && self->nodes[i]->last_seen < now)
            self->nodes[i]->last_seen = now;
    return gap;
}

int farm_nodes_health(farm_nodes_t *self, farm_node_t *node, const char *cause)
{
    int was = node->unhealthy[0] != '\0';
    size_t n = 0;

    (void)self;
    /* the agent's text, shown by farmctl and logged: control bytes become '?' */
    for (const char *c = cause ? cause : ""; *c && n < FARM_NODE_CAUSE_MAX; c++)
        node->unhealthy[n++] = (unsigned char)*c < 0x20 || *c == 0x7f ? '?' : *c;
    node->unhealthy[n] = '\0';
    return was != (n > 0);
}

/* The node's accepted platforms after a reload: indexes into cfg, those gone or no longer
 * mapped to it dropped, native or emulated as cfg now says. A removed node keeps those
 * still in cfg (it takes no job anyway), so that listed again it serves them at once. */
static void s_remap_platforms(farm_node_t *node, const farm_config_t *cfg, const long *plat_map)
{
    size_t n = 0;

    for (size_t i = 0; i < node->n_platforms; i++) {
        long to = plat_map[node->platforms[i].platform_index];
        const farm_config_platform_t *cp = to >= 0 ? &cfg->platforms[to] : NULL;
        int native = cp && s_listed(cp->native, cp->n_native, node->cfg->name);
        int listed = native || (cp && s_listed(cp->emulated, cp->n_emulated, node->cfg->name));
        if (!cp || (!listed && !node->removed))
            continue;
        node->platforms[n].platform_index = (size_t)to;
        if (listed)
            node->platforms[n].emulated = !native;
        else
            node->platforms[n].emulated = node->platforms[i].emulated;
        n++;
    }
    node->n_platforms = n;
}

/* The record named name among the first n of the table, or NULL. */
static farm_node_t *s_find(farm_nodes_t *self, const char *name)
{
    for (size_t k = 0; k < self->n; k++)
        if (strcmp(self->nodes[k]->cfg->name, name) == 0)
            return self->nodes[k];
    return NULL;
}

int farm_nodes_reload(farm_nodes_t *self, const farm_config_t *cfg, const long *plat_map)
{
    farm_node_t **table = NULL, **added = calloc(cfg->n_nodes + 1, sizeof *added);
    farm_node_t **rec = calloc(cfg->n_nodes + 1, sizeof *rec); /* cfg's i-th node's record */
    char **keys = calloc(cfg->n_nodes + 1, sizeof *keys);
    size_t n_added = 0, n_put = 0;
    int rc = farm_error_set(FARM_ERROR, "out of memory reloading the node table");

    /* everything that can fail first: the new records, the kept ones' new keys, the
     * by-name entries of nodes (new or listed again) not yet found by name */
    if (!added || !rec || !keys)
        goto done;
    for (size_t i = 0; i < cfg->n_nodes; i++) {
        const farm_config_node_t *c = &cfg->nodes[i];
        farm_node_t *old = s_find(self, c->name);
        if (old && c->key && !(keys[i] = strdup(c->key)))
            goto done;
        if (!old && !(added[n_added] = s_node_new(c, self->n + n_added)))
            goto done;
        rec[i] = old ? old : added[n_added++];
    }
    if (n_added && !(table = realloc(self->nodes, (self->n + n_added + 1) * sizeof *table)))
        goto done;
    if (table)
        self->nodes = table;
    for (; n_put < cfg->n_nodes; n_put++) {
        if (farm_hmap_gets(self->by_name, cfg->nodes[n_put].name) == rec[n_put])
            continue;
        if (farm_hmap_puts(self->by_name, cfg->nodes[n_put].name, rec[n_put]) < 0) {
            while (n_put-- > 0)
                if (rec[n_put]->removed || rec[n_put]->index >= self->n)
                    farm_hmap_dels(self->by_name, cfg->nodes[n_put].name);
            goto done;
        }
    }
    /* committed: nothing below fails */
    for (size_t k = 0; k < n_added; k++) {
        self->nodes[self->n++] = added[k];
        added[k] = NULL;
    }
    for (size_t k = 0; k < self->n; k++) {
        farm_node_t *node = self->nodes[k];
        const farm_config_node_t *c = farm_config_node(cfg, node->cfg->name);
        node->removed = !c;
        if (!c) {
            if (farm_hmap_gets(self->by_name, node->cfg->name) == node)
                farm_hmap_dels(self->by_name, node->cfg->name);
        } else {
            size_t ci = (size_t)(c - cfg->nodes);
            free(node->conf.key);
            node->conf.key = keys[ci];
            keys[ci] = NULL;
            node->conf.slots = c->slots;
            node->conf.key_given = c->key_given;
            node->conf.line = c->line;
            node->conf.column = c->column;
            if (node->state == FARM_NODE_READY)
                node->slots = node->hello_slots > 0 && node->hello_slots < c->slots
                                  ? node->hello_slots : c->slots; /* as at HELLO */
        }
        s_remap_platforms(node, cfg, plat_map);
    }
    self->cfg = cfg;
    rc = 0;
done:
    for (size_t i = 0; added && i < n_added; i++)
        s_node_free(added[i]);
    for (size_t i = 0; keys && i < cfg->n_nodes; i++)
        free(keys[i]);
    free(added);
    free(rec);
    free(keys);
    return rc;
}

int farm_node_serves(const farm_node_t *node, size_t platform_index, int *emulated)
{
    for (size_t i = 0; i < node->n_platforms; i++) {
        if (node->platforms[i].platform_index == platform_index) {
            if (emulated)
                *emulated = node->platforms[i].emulated;
            return 1;
        }
    }
    return 0;
}
