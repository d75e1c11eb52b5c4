/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/targets.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/reference.h"
#include "coordinator/builds.h"

static int s_err(char *err, size_t len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int s_err(char *err, size_t len, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return farm_error_set(rc, "%s", err);
}

static int s_alloc(farm_build_t *b, size_t n)
{
    b->tags = calloc(n + 1, sizeof *b->tags);
    b->tag_refs = calloc(n + 1, sizeof *b->tag_refs);
    b->tag_target = calloc(n + 1, sizeof *b->tag_target);
    b->targets = calloc(n + 1, sizeof *b->targets);
    return b->tags && b->tag_refs && b->tag_target && b->targets ? 0 : FARM_ERROR;
}

static int s_target(farm_build_t *b, const char *registry, const char *repository)
{
    for (size_t k = 0; k < b->n_targets; k++)
        if (!strcmp(b->targets[k].registry, registry) &&
            !strcmp(b->targets[k].repository, repository))
            return (int)k;
    /* the references were parsed into fields of these sizes */
    snprintf(b->targets[b->n_targets].registry, sizeof b->targets[0].registry, "%s", registry);
    snprintf(b->targets[b->n_targets].repository, sizeof b->targets[0].repository, "%s",
             repository);
    return (int)b->n_targets++;
}

int farm_targets_fill(farm_build_t *b, char *const *refs, size_t n, char *err, size_t len)
{
    if (b->tags || b->n_tags)
        return s_err(err, len, FARM_EINVALID, "coordinator error: tags filled twice");
    if (s_alloc(b, n) < 0)
        return s_err(err, len, FARM_ERROR, "coordinator out of memory");
    for (size_t i = 0; i < n; i++) {
        farm_reference_t ref;
        char full[FARM_REFERENCE_MAX + 1];
        int dup = 0, k;

        if (!refs[i] || strlen(refs[i]) > FARM_REFERENCE_MAX)
            return s_err(err, len, FARM_EINVALID, "tag %zu is longer than %d bytes", i + 1,
                         FARM_REFERENCE_MAX);
        if (farm_reference_parse(&ref, refs[i]) < 0)
            return s_err(err, len, FARM_EINVALID, "bad tag: %s", farm_error_last());
        if (!ref.tag[0] || ref.digest[0])
            return s_err(err, len, FARM_EINVALID, "tag %s must name a tag, not a digest",
                         refs[i]);
        if (strlen(ref.registry) > FARM_REGISTRY_HOST_MAX ||
            farm_reference_format(full, sizeof full, &ref) < 0)
            return s_err(err, len, FARM_EINVALID, "tag %s: registry or repository name too long",
                         refs[i]);
        for (size_t j = 0; j < b->n_tags; j++)
            dup |= strcmp(b->tag_refs[j], full) == 0;
        if (dup)
            continue;
        k = s_target(b, ref.registry, ref.repository);
        if (!(b->tags[b->n_tags] = strdup(ref.tag)) || !(b->tag_refs[b->n_tags] = strdup(full))) {
            free(b->tags[b->n_tags]);
            b->tags[b->n_tags] = NULL;
            return s_err(err, len, FARM_ERROR, "coordinator out of memory");
        }
        b->tag_target[b->n_tags++] = (uint32_t)k;
    }
    if (b->n_targets > 0) {
        snprintf(b->registry, sizeof b->registry, "%s", b->targets[0].registry);
        snprintf(b->repository, sizeof b->repository, "%s", b->targets[0].repository);
    }
    return 0;
}

int farm_targets_single(farm_build_t *b)
{
    char **names = b->tags;
    size_t n = b->n_tags;
    int rc = 0;

    b->tags = NULL;
    b->n_tags = 0;
    if (s_alloc(b, n) < 0) {
        rc = farm_error_set(FARM_ERROR, "out of memory");
        goto done;
    }
    s_target(b, b->registry, b->repository);
    for (size_t i = 0; i < n; i++) {
        b->tags[i] = names[i];
        names[i] = NULL;
        b->n_tags++;
        if (asprintf(&b->tag_refs[i], "%s/%s:%s", b->registry, b->repository, b->tags[i]) < 0) {
            b->tag_refs[i] = NULL;
            rc = farm_error_set(FARM_ERROR, "out of memory");
            goto done;
        }
    }
done:
    for (size_t i = 0; i < n; i++)
        free(names ? names[i] : NULL);
    free(names);
    return rc;
}

const farm_target_t *farm_targets_of(const farm_build_t *b, size_t i)
{
    return &b->targets[b->tag_target[i]];
}

void farm_targets_free(farm_build_t *b)
{
    for (size_t i = 0; i < b->n_tags; i++) {
        free(b->tags ? b->tags[i] : NULL);
        free(b->tag_refs ? b->tag_refs[i] : NULL);
    }
    free(b->tags);
    free(b->tag_refs);
    free(b->tag_target);
    free(b->targets);
    b->tags = b->tag_refs = NULL;
    b->tag_target = NULL;
    b->targets = NULL;
    b->n_tags = b->n_targets = 0;
}

int farm_targets_to_wire(farm_targets_wire_t *out, const farm_build_t *b,
                         const farm_config_t *cfg, int for_stitch)
{
    size_t n = b->n_targets > 1 ? b->n_targets - 1 : 0;

    memset(out, 0, sizeof *out);
    if (n == 0)
        return 0;
    out->t = calloc(n, sizeof *out->t);
    out->ptrs = calloc(n, sizeof *out->ptrs);
    out->creds = calloc(n, sizeof *out->creds);
    if (!out->t || !out->ptrs || !out->creds) {
        farm_targets_wire_free(out);
        return farm_error_set(FARM_ERROR, "out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        const farm_target_t *tg = &b->targets[k + 1];
        Farm__MultirepoTarget *t = &out->t[k];
        farm__multirepo_target__init(t);
        t->registry = (char *)tg->registry;
        t->repository = (char *)tg->repository;
        t->insecure = tg->insecure;
        out->ptrs[k] = t;
        if (for_stitch) {
            const farm_cred_t *c = farm_build_cred(b, tg->registry);
            const farm_config_registry_t *rc = farm_config_registry(cfg, tg->registry);
            if (c) {
                Farm__RegistryCredential *w = &out->creds[k];
                farm__registry_credential__init(w);
                w->registry = c->registry;
                w->username = c->username;
                w->secret = c->secret;
                w->identity_token = c->identity_token;
                t->credential = w;
            }
            if (rc) {
                t->ca_pem.data = (uint8_t *)rc->ca_pem;
                t->ca_pem.len = rc->ca_pem ? rc->ca_pem_len : 0;
                t->farm_credentials = farm_config_registry_grants(rc, b->owner);
            }
        }
    }
    out->n = n;
    return 0;
}

void farm_targets_wire_free(farm_targets_wire_t *w)
{
    free(w->t);
    free(w->ptrs);
    free(w->creds);
    memset(w, 0, sizeof *w);
}

int farm_targets_from_stitch(farm_stitch_target_t **out, farm_registry_creds_t **out_creds,
                             farm_stitch_req_t *sr, const Farm__StitchRequest *req)
{
    farm_stitch_target_t *t;
    farm_registry_creds_t *c;

    *out = NULL;
    *out_creds = NULL;
    if (req->n_tag_targets != 0 && req->n_tag_targets != req->n_tags)
        return farm_error_set(FARM_EINVALID, "stitch request: %zu tag repositories for %zu "
                              "tags", req->n_tag_targets, req->n_tags);
    if (req->n_targets > FARM_TAGS_MAX)
        return farm_error_set(FARM_EINVALID, "stitch request: %zu repositories (at most %d)",
                              req->n_targets, FARM_TAGS_MAX);
    for (size_t i = 0; i < req->n_tag_targets; i++)
        if (req->tag_targets[i] > req->n_targets)
            return farm_error_set(FARM_EINVALID, "stitch request: tag %s names repository %u "
                                  "of %zu", req->tags[i], (unsigned)req->tag_targets[i],
                                  req->n_targets + 1);
    t = calloc(req->n_targets + 1, sizeof *t);
    c = calloc(req->n_targets + 1, sizeof *c);
    if (!t || !c) {
        free(t);
        free(c);
        return farm_error_set(FARM_ERROR, "out of memory");
    }
    for (size_t k = 0; k < req->n_targets; k++) {
        const Farm__MultirepoTarget *w = req->targets[k];
        t[k].registry = w->registry;
        t[k].repository = w->repository;
        t[k].insecure = w->insecure;
        t[k].farm_credentials = w->farm_credentials;
        t[k].ca_pem = w->ca_pem.len ? (const char *)w->ca_pem.data : NULL;
        t[k].ca_pem_len = w->ca_pem.len;
        /* the login goes only to the registry it was given for */
        if (w->credential && w->credential->secret[0] &&
            strcmp(w->credential->registry, w->registry) == 0) {
            c[k].username = w->credential->username;
            c[k].secret = w->credential->secret;
            c[k].identity_token = w->credential->identity_token;
            t[k].creds = &c[k];
        }
    }
    sr->targets = t;
    sr->n_targets = req->n_targets;
    sr->tag_targets = req->n_tag_targets ? req->tag_targets : NULL;
    *out = t;
    *out_creds = c;
    return 0;
}
