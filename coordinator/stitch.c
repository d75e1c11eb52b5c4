#include "coordinator/stitch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/child.h"
#include "common/error.h"
#include "common/log.h"
#include "common/wire.h"

static int s_verify_child(farm_registry_t *reg, const farm_stitch_req_t *req,
                          const farm_descriptor_t *child)
{
    char digest[FARM_DIGEST_STRLEN] = "", media[128] = "", plat[FARM_PLATFORM_STRLEN];
    uint64_t size = 0;
    int rc;

    farm_platform_format(plat, sizeof plat, &child->platform);
    rc = farm_registry_manifest_head(reg, digest, &size, media, sizeof media, req->repository,
                                     child->digest);
    if (rc < 0)
        return farm_error_wrap(rc, "%s child %s not found in %s/%s", plat, child->digest,
                               req->registry, req->repository);
    if (digest[0] && strcmp(digest, child->digest) != 0)
        return farm_error_set(FARM_EINVALID, "%s child: registry answers digest %s for %s", plat,
                              digest, child->digest);
    if (size != child->size)
        return farm_error_set(FARM_EINVALID,
                              "%s child %s: registry says %llu bytes, agent reported %llu", plat,
                              child->digest, (unsigned long long)size,
                              (unsigned long long)child->size);
    if (media[0] && strcmp(media, child->media_type) != 0)
        return farm_error_set(FARM_EINVALID, "%s child %s: registry says media type %s, agent "
                              "reported %s", plat, child->digest, media, child->media_type);
    return 0;
}

int farm_stitch_run(char out_digest[FARM_DIGEST_STRLEN], uint64_t *out_size,
                    const farm_stitch_req_t *req)
{
    /* the submitter's login, else the farm's own only where farm.yaml grants it, else
     * anonymous: never the coordinator's login on a client's behalf by default */
    farm_registry_opts_t opts = {.insecure = req->insecure,
                                 .explicit_creds = req->creds || !req->farm_credentials,
                                 .creds = req->creds,
                                 .ca_pem = req->ca_pem,
                                 .ca_pem_len = req->ca_pem_len};
    farm_registry_t *reg = farm_registry_new(req->registry, &opts);
    char *json = NULL, pushed[FARM_DIGEST_STRLEN];
    size_t len = 0;
    int rc = 0;

    if (!reg)
        return FARM_ERROR;
    for (size_t i = 0; i < req->n_children; i++)
        if ((rc = s_verify_child(reg, req, &req->children[i])) < 0)
            goto done;
    if ((rc = farm_oci_index_compose(&json, &len, req->children, req->n_children, NULL, NULL,
                                     0)) < 0)
        goto done;
    farm_digest_buffer(out_digest, json, len);
    *out_size = len;
    for (size_t i = 0; i < req->n_tags; i++) {
        rc = farm_registry_manifest_put(reg, pushed, req->repository, req->tags[i],
                                        FARM_MEDIA_OCI_INDEX, json, len);
        if (rc < 0) {
            farm_error_wrap(rc, "pushing the index to %s/%s:%s", req->registry, req->repository,
                            req->tags[i]);
            goto done;
        }
        if (strcmp(pushed, out_digest) != 0) {
            rc = farm_error_set(FARM_EINVALID, "index digest mismatch after push: %s vs %s",
                                pushed, out_digest);
            goto done;
        }
    }
done:
    free(json);
    farm_registry_destroy(&reg);
    return rc;
}

/* ------------------------------------------------------------------ the helper program */

static int s_result(int ok, const char *error, const char *digest, uint64_t size)
{
    Farm__StitchResult r = FARM__STITCH_RESULT__INIT;

    r.ok = ok;
    r.error = (char *)(error ? error : "");
    r.index_digest = (char *)(digest ? digest : "");
    r.index_size = size;
    return farm_wire_result(&r.base) < 0 || !ok;
}

int farm_stitch_main(void)
{
    Farm__StitchRequest *req = NULL;
    farm_descriptor_t *children = NULL;
    farm_stitch_req_t sr = {0};
    farm_registry_creds_t creds = {0};
    char digest[FARM_DIGEST_STRLEN];
    uint64_t size = 0;
    void *raw = NULL;
    size_t len = 0;
    int rc;

    if (farm_child_request_read(&raw, &len, FARM_WIRE_MAXMSG) < 0)
        return s_result(0, farm_error_last(), NULL, 0);
    req = farm__stitch_request__unpack(NULL, len, raw);
    explicit_bzero(raw, len);
    free(raw);
    if (!req)
        return s_result(0, "malformed stitch request", NULL, 0);
    children = calloc(req->n_children + 1, sizeof *children);
    if (!children) {
        farm__stitch_request__free_unpacked(req, NULL);
        return s_result(0, "out of memory", NULL, 0);
    }
    for (size_t i = 0; i < req->n_children; i++) {
        const Farm__Descriptor *d = req->children[i];
        farm_descriptor_t *c = &children[i];
        if (snprintf(c->media_type, sizeof c->media_type, "%s", d->media_type) >=
                (int)sizeof c->media_type ||
            !farm_digest_valid(d->digest) || farm_platform_parse(&c->platform, d->platform) < 0) {
            rc = s_result(0, "bad child descriptor in the stitch request", NULL, 0);
            goto done;
        }
        snprintf(c->digest, sizeof c->digest, "%s", d->digest);
        c->size = d->size;
    }
    sr.registry = req->registry;
    sr.repository = req->repository;
    sr.insecure = req->insecure;
    sr.children = children;
    sr.n_children = req->n_children;
    sr.tags = req->tags;
    sr.n_tags = req->n_tags;
    if (req->credential && req->credential->secret[0] &&
        strcmp(req->credential->registry, req->registry) == 0) {
        creds.username = req->credential->username;
        creds.secret = req->credential->secret;
        creds.identity_token = req->credential->identity_token;
        sr.creds = &creds;
    }
    sr.farm_credentials = req->farm_credentials;
    sr.ca_pem = req->ca_pem.len ? (const char *)req->ca_pem.data : NULL;
    sr.ca_pem_len = req->ca_pem.len;
    if (farm_stitch_run(digest, &size, &sr) < 0)
        rc = s_result(0, farm_error_last(), NULL, 0);
    else
        rc = s_result(1, NULL, digest, size);
done:
    free(children);
    if (req->credential) {
        explicit_bzero(req->credential->secret, strlen(req->credential->secret));
        explicit_bzero(req->credential->username, strlen(req->credential->username));
    }
    farm__stitch_request__free_unpacked(req, NULL);
    return rc;
}
