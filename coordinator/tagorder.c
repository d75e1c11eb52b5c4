/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/tagorder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/hmap.h"
#include "common/log.h"
#include "coordinator/targets.h"

/* One tag: who pushes it now, who asked for it in this pass, whose index it names. */
typedef struct tag_entry {
    farm_link_t link;        /* every entry, for destroy */
    const farm_build_t *busy; /* the build whose push holds it, NULL when none */
    unsigned wanted_pass;    /* a waiting build asked for it in this pass */
    int known;               /* seq and build_id were read (journal) or set */
    uint64_t seq;            /* 0: no build took it yet */
    char build_id[FARM_ID_MAX + 1];
    uint64_t prev_seq;       /* what the last claim replaced, for farm_tagorder_undo */
    char prev_id[FARM_ID_MAX + 1];
} tag_entry_t;

struct farm_tagorder {
    farm_journal_t *journal;
    farm_hmap_t *by_key;
    farm_link_t all;
    unsigned pass;
};

/* "registry/repository:tag": the tag's name across the farm. */
#define S_KEY_MAX (FARM_REGISTRY_HOST_MAX + 256 + FARM_JOURNAL_TAG_MAX + 3)

static int s_key(char out[S_KEY_MAX], const farm_build_t *b, size_t i)
{
    const farm_target_t *t = farm_targets_of(b, i);
    int n = snprintf(out, S_KEY_MAX, "%s/%s:%s", t->registry, t->repository, b->tags[i]);
    if (n < 0 || n >= S_KEY_MAX)
        return farm_error_set(FARM_EINVALID, "build %s: tag %s/%s:%s is too long", b->id,
                              t->registry, t->repository, b->tags[i]);
    return 0;
}

static tag_entry_t *s_find(const farm_tagorder_t *self, const farm_build_t *b, size_t i)
{
    char key[S_KEY_MAX];
    return s_key(key, b, i) == 0 ? farm_hmap_gets(self->by_key, key) : NULL;
}

static tag_entry_t *s_entry(farm_tagorder_t *self, const farm_build_t *b, size_t i)
{
    char key[S_KEY_MAX];
    tag_entry_t *e;

    if (s_key(key, b, i) < 0)
        return NULL;
    if ((e = farm_hmap_gets(self->by_key, key)))
        return e;
    if (!(e = calloc(1, sizeof *e)) || farm_hmap_puts(self->by_key, key, e) < 0) {
        free(e);
        farm_error_set(FARM_ERROR, "coordinator out of memory");
        return NULL;
    }
    farm_link_push_back(&self->all, &e->link);
    return e;
}

farm_tagorder_t *farm_tagorder_new(farm_journal_t *journal)
{
    farm_tagorder_t *self = calloc(1, sizeof *self);
    if (!self || !(self->by_key = farm_hmap_new())) {
        free(self);
        farm_error_set(FARM_ERROR, "out of memory");
        return NULL;
    }
    self->journal = journal;
    farm_link_init(&self->all);
    return self;
}

void farm_tagorder_destroy(farm_tagorder_t **self_p)
{
    farm_tagorder_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    while (!farm_link_empty(&self->all)) {
        tag_entry_t *e = FARM_LINK_OWNER(self->all.next, tag_entry_t, link);
        farm_link_remove(&e->link);
        free(e);
    }
    farm_hmap_destroy(&self->by_key);
    free(self);
    *self_p = NULL;
}

void farm_tagorder_pass_begin(farm_tagorder_t *self)
{
    /* 0 is never a pass: a fresh entry is wanted in none */
    if (++self->pass == 0)
        self->pass = 1;
}

int farm_tagorder_may_start(farm_tagorder_t *self, const farm_build_t *b)
{
    int free_all = 1;
    for (size_t i = 0; i < b->n_tags; i++) {
        const tag_entry_t *e = s_find(self, b, i);
        if (e && (e->busy || e->wanted_pass == self->pass))
            free_all = 0;
    }
    if (free_all)
        return 1;
    /* b waits: the builds after it in this pass must not take its tags first */
    for (size_t i = 0; i < b->n_tags; i++) {
        tag_entry_t *e = s_entry(self, b, i);
        if (!e)
            return FARM_ERROR;
        e->wanted_pass = self->pass;
    }
    return 0;
}

int farm_tagorder_take(farm_tagorder_t *self, const farm_build_t *b)
{
    for (size_t i = 0; i < b->n_tags; i++) {
        tag_entry_t *e = s_entry(self, b, i);
        if (!e) {
            farm_tagorder_release(self, b);
            return FARM_ERROR;
        }
        /* the turn rule was asked first: a busy tag here is a programming error */
        if (e->busy && e->busy != b)
            farm_log_error("build=%s tag %s taken while build %s pushes it: report this",
                           b->id, b->tag_refs[i], e->busy->id);
        e->busy = b;
    }
    return 0;
}

void farm_tagorder_release(farm_tagorder_t *self, const farm_build_t *b)
{
    for (size_t i = 0; i < b->n_tags; i++) {
        char key[S_KEY_MAX];
        tag_entry_t *e;
        if (s_key(key, b, i) < 0 || !(e = farm_hmap_gets(self->by_key, key)) || e->busy != b)
            continue;
        e->busy = NULL;
        /* with a journal the record is there, read again when needed: memory stays
         * bounded by the tags in flight (unless a waiting build wants it in this pass) */
        if (self->journal && e->wanted_pass != self->pass) {
            farm_hmap_dels(self->by_key, key);
            farm_link_remove(&e->link);
            free(e);
        }
    }
}

size_t farm_tagorder_size(const farm_tagorder_t *self)
{
    return farm_hmap_size(self->by_key);
}

size_t farm_tagorder_busy(const farm_tagorder_t *self, const farm_build_t *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n_tags; i++) {
        const tag_entry_t *e = s_find(self, b, i);
        n += e && e->busy == b;
    }
    return n;
}

/* The tag's last build, from memory or (once) the journal. */
static int s_known(farm_tagorder_t *self, tag_entry_t *e, const farm_build_t *b, size_t i)
{
    farm_journal_tag_t t;
    int rc;

    if (e->known)
        return 0;
    if (self->journal) {
        const farm_target_t *tg = farm_targets_of(b, i);
        rc = farm_journal_get_tag(self->journal, &t, tg->registry, tg->repository, b->tags[i]);
        if (rc < 0 && rc != FARM_ENOTFOUND)
            return farm_error_wrap(rc, "build %s: reading which build last pushed tag %s",
                                   b->id, b->tag_refs[i]);
        if (rc == 0) {
            e->seq = t.seq;
            snprintf(e->build_id, sizeof e->build_id, "%s", t.build_id);
        }
    }
    e->known = 1;
    return 0;
}

/* The journal record of b's tag i naming build id (seq and at set by the caller). */
static void s_record(farm_journal_tag_t *t, const farm_build_t *b, size_t i, const char *id)
{
    const farm_target_t *tg = farm_targets_of(b, i);
    snprintf(t->registry, sizeof t->registry, "%s", tg->registry);
    snprintf(t->repository, sizeof t->repository, "%s", tg->repository);
    snprintf(t->tag, sizeof t->tag, "%s", b->tags[i]);
    snprintf(t->build_id, sizeof t->build_id, "%s", id);
}

int farm_tagorder_claim(farm_tagorder_t *self, farm_build_t *b, long long at)
{
    int moved = 0, rc;

    free(b->kept_by);
    if (!(b->kept_by = calloc(b->n_tags + 1, sizeof *b->kept_by)))
        return farm_error_set(FARM_ERROR, "coordinator out of memory");
    for (size_t i = 0; i < b->n_tags; i++) {
        tag_entry_t *e = s_entry(self, b, i);
        farm_journal_tag_t t = {.seq = b->seq, .at = at};

        if (!e)
            return FARM_ERROR;
        if ((rc = s_known(self, e, b, i)) < 0)
            return rc;
        /* equal: this build took it before (a push redone after a restart) */
        if (e->seq > b->seq) {
            snprintf(b->kept_by[i], sizeof b->kept_by[i], "%s", e->build_id);
            farm_log_info("build=%s tag %s not moved: build %s (submitted later) already "
                          "pushed it", b->id, b->tag_refs[i], e->build_id);
            continue;
        }
        /* recorded before the push: a push that fails half-way may have moved it */
        if (self->journal) {
            s_record(&t, b, i, b->id);
            if ((rc = farm_journal_put_tag(self->journal, &t)) < 0)
                return farm_error_wrap(rc, "build %s: recording that it pushes tag %s", b->id,
                                       b->tag_refs[i]);
        }
        e->prev_seq = e->seq;
        memcpy(e->prev_id, e->build_id, sizeof e->prev_id);
        e->seq = b->seq;
        snprintf(e->build_id, sizeof e->build_id, "%s", b->id);
        moved++;
    }
    /* durable before the push starts, also when the journal commits once per turn */
    if (moved > 0 && self->journal && (rc = farm_journal_commit(self->journal)) < 0)
        return farm_error_wrap(rc, "build %s: recording the tags it pushes", b->id);
    return moved;
}

void farm_tagorder_undo(farm_tagorder_t *self, const farm_build_t *b, size_t tried,
                        long long at)
{
    size_t k = 0;

    for (size_t i = 0; b->kept_by && i < b->n_tags; i++) {
        tag_entry_t *e;
        farm_journal_tag_t t = {.at = at};

        if (b->kept_by[i][0] || k++ < tried)
            continue; /* not its to move, or a PUT went out for it */
        e = s_find(self, b, i);
        if (!e || e->seq != b->seq || strcmp(e->build_id, b->id) != 0)
            continue;
        if (self->journal) {
            s_record(&t, b, i, e->prev_id);
            t.seq = e->prev_seq;
            if (farm_journal_put_tag(self->journal, &t) < 0) {
                farm_log_warn("build=%s tag %s stays recorded as this build's: %s", b->id,
                              b->tag_refs[i], farm_error_last());
                continue;
            }
        }
        e->seq = e->prev_seq;
        memcpy(e->build_id, e->prev_id, sizeof e->build_id);
        farm_log_info("build=%s tag %s given back to %s: the index push failed before it "
                      "was sent there", b->id, b->tag_refs[i],
                      e->build_id[0] ? e->build_id : "no build");
    }
}
