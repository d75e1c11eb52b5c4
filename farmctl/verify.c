/* SPDX-License-Identifier: Apache-2.0 */
/* farmctl verify REF [--key PUB] [--insecure] [--ca FILE]: reads the index under REF from
 * the registry (common/registry.c, the user's docker logins), shows its platforms and
 * digests, the node that built each and whether natively or under emulation (from the
 * index's provenance attestations: builder.id "urn:farm:node:NODE",
 * internalParameters.emulated), and with --key checks the sigstore signatures as
 * containers/image does with a sigstoreSigned policy: for the index and for every manifest
 * it lists, a payload naming that digest and an identity REF matches
 * (farm_sigstore_identity_matches), signed by the key. */
#include "farmctl/verify.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"
#include "common/platform.h"
#include "common/reference.h"
#include "common/registry.h"
#include "common/sigstore.h"
#include "common/text.h"

#define S_ATTEST_MAX (4u << 20)
#define S_NODE_PREFIX "urn:farm:node:"

typedef struct {
    char digest[FARM_DIGEST_STRLEN];
    char platform[FARM_PLATFORM_STRLEN];
    char node[FARM_NAME_MAX + 1]; /* "-" without provenance */
    char built[16];               /* native, emulated, "-" */
    int attestation;              /* an attestation manifest, not a platform image */
    char subject[FARM_DIGEST_STRLEN]; /* attestation: the image it is about */
    char sig[512];                /* the signature check's verdict */
    int sig_ok;
} s_entry_t;

static void s_usage(FILE *f)
{
    fprintf(f, "usage: farmctl verify REF [--key PUB] [--insecure] [--ca FILE]\n"
               "  shows the index under REF: each platform, its digest, the node that built\n"
               "  it and whether natively or emulated (from the index's provenance; \"-\"\n"
               "  without it). With --key PUB (the NAME.pub of farmctl keygen --signing),\n"
               "  checks the sigstore signature of the index and of every manifest it lists\n"
               "  (identity REF, as a sigstoreSigned policy does) and exits 0 only when all\n"
               "  verify. --insecure: the registry speaks plain HTTP; --ca: its CA bundle.\n"
               "  Registry logins come from your docker config. Alias: farmctl inspect.\n");
}

static void s_platform(char *out, size_t len, const json_t *p)
{
    const char *os = json_string_value(json_object_get(p, "os"));
    const char *arch = json_string_value(json_object_get(p, "architecture"));
    const char *var = json_string_value(json_object_get(p, "variant"));
    char raw[256];

    snprintf(raw, sizeof raw, "%s/%s%s%s", os ? os : "?", arch ? arch : "?", var ? "/" : "",
             var ? var : "");
    farm_text_inert(out, len, raw);
}

/* Reads a provenance attestation manifest: the in-toto statements in its layers name the
 * node (builder.id) and whether it emulated; applied to the entry of its subject. */
static void s_read_provenance(farm_registry_t *reg, const char *repo, s_entry_t *att,
                              s_entry_t *entries, size_t n)
{
    char media[128], *man = NULL;
    size_t len = 0, i;
    json_t *root = NULL, *l;
    s_entry_t *subj = NULL;

    for (size_t k = 0; k < n; k++)
        if (!entries[k].attestation && strcmp(entries[k].digest, att->subject) == 0)
            subj = &entries[k];
    if (!subj || farm_registry_manifest_get(reg, &man, &len, media, sizeof media, repo,
                                            att->digest) < 0)
        goto done;
    root = json_loadb(man, len, 0, NULL);
    json_array_foreach(json_object_get(root, "layers"), i, l) {
        const char *d = json_string_value(json_object_get(l, "digest"));
        json_t *size = json_object_get(l, "size"), *st, *pred, *id, *emu;
        char *blob = NULL;
        size_t blen = 0;
        if (!d || !farm_digest_valid(d) || !json_is_integer(size) ||
            json_integer_value(size) > S_ATTEST_MAX)
            continue;
        if (farm_registry_blob_get(reg, &blob, &blen, repo, d, S_ATTEST_MAX) < 0)
            continue;
        st = json_loadb(blob, blen, 0, NULL);
        free(blob);
        pred = json_object_get(st, "predicate");
        id = json_object_get(json_object_get(json_object_get(pred, "runDetails"), "builder"),
                             "id");
        emu = json_object_get(json_object_get(json_object_get(pred, "buildDefinition"),
                                              "internalParameters"), "emulated");
        if (json_is_string(id) && !strncmp(json_string_value(id), S_NODE_PREFIX,
                                           strlen(S_NODE_PREFIX)))
            farm_text_inert(subj->node, sizeof subj->node,
                            json_string_value(id) + strlen(S_NODE_PREFIX));
        if (json_is_boolean(emu))
            snprintf(subj->built, sizeof subj->built, "%s",
                     json_is_true(emu) ? "emulated" : "native");
        json_decref(st);
    }
done:
    json_decref(root);
    free(man);
}

/* The signature check of one digest: any layer of its .sig manifest that is a payload
 * naming digest, with an identity ref matches, signed by pub. */
static void s_check_sig(farm_registry_t *reg, const char *repo, const char *ref,
                        const char *digest, EVP_PKEY *pub, char *verdict, size_t vlen, int *ok)
{
    char tag[FARM_SIGSTORE_TAG_LEN], media[128], *man = NULL;
    char ident[FARM_SIGSTORE_IDENTITY_MAX], said[FARM_DIGEST_STRLEN], why[400] = "";
    size_t len = 0, i;
    json_t *root = NULL, *layers, *l;
    int rc;

    *ok = 0;
    if (farm_sigstore_tag(tag, digest) < 0) {
        snprintf(verdict, vlen, "no: not a sha256 digest");
        return;
    }
    rc = farm_registry_manifest_get(reg, &man, &len, media, sizeof media, repo, tag);
    if (rc == FARM_ENOTFOUND) {
        snprintf(verdict, vlen, "no: no signature (%s is not in the repository)", tag);
        return;
    }
    if (rc < 0) {
        snprintf(verdict, vlen, "no: reading %s: %.150s", tag, farm_error_last());
        return;
    }
    root = json_loadb(man, len, 0, NULL);
    layers = json_object_get(root, "layers");
    if (!json_is_array(layers) || json_array_size(layers) > FARM_SIGSTORE_LAYERS_MAX) {
        snprintf(verdict, vlen, "no: %s is not a signature manifest", tag);
        goto done;
    }
    snprintf(why, sizeof why, "no signature layer");
    json_array_foreach(layers, i, l) {
        const char *mt = json_string_value(json_object_get(l, "mediaType"));
        const char *d = json_string_value(json_object_get(l, "digest"));
        const char *sig = json_string_value(
            json_object_get(json_object_get(l, "annotations"), FARM_SIGSTORE_ANNOTATION));
        char *payload = NULL;
        size_t plen = 0;
        if (!mt || strcmp(mt, FARM_SIGSTORE_PAYLOAD_TYPE) || !d || !farm_digest_valid(d))
            continue;
        if (!sig) {
            snprintf(why, sizeof why, "a signature layer without its signature annotation");
            continue;
        }
        if (farm_registry_blob_get(reg, &payload, &plen, repo, d, FARM_SIGSTORE_PAYLOAD_MAX) < 0) {
            snprintf(why, sizeof why, "payload %.80s: %.100s", d, farm_error_last());
            continue;
        }
        if (farm_sigstore_verify(pub, payload, plen, sig) < 0) {
            snprintf(why, sizeof why, "not signed by this key");
        } else if (farm_sigstore_payload_parse(ident, said, payload, plen) < 0) {
            snprintf(why, sizeof why, "%.150s", farm_error_last());
        } else if (strcmp(said, digest) != 0) {
            snprintf(why, sizeof why, "the payload signs %s, not this manifest", said);
        } else if (!farm_sigstore_identity_matches(ident, ref)) {
            char shown[160];
            farm_text_inert(shown, sizeof shown, ident);
            snprintf(why, sizeof why, "signed for %s, which %.100s does not match", shown, ref);
        } else {
            char shown[200];
            farm_text_inert(shown, sizeof shown, ident);
            snprintf(verdict, vlen, "ok (%s)", shown);
            *ok = 1;
            free(payload);
            goto done;
        }
        free(payload);
    }
    snprintf(verdict, vlen, "no: %s", why);
done:
    json_decref(root);
    free(man);
}

int farmctl_verify_main(int argc, char **argv)
{
    static const struct option opts[] = {{"key", required_argument, NULL, 'k'},
                                         {"insecure", no_argument, NULL, 'i'},
                                         {"ca", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *key_path = NULL, *ca_path = NULL, *ref_s;
    farm_registry_opts_t ropts = {0};
    farm_registry_t *reg = NULL;
    farm_reference_t ref;
    EVP_PKEY *pub = NULL;
    char media[128] = "", *man = NULL, *ca = NULL, digest[FARM_DIGEST_STRLEN];
    char keyid[FARM_DIGEST_STRLEN] = "", idx_verdict[512] = "", shown[FARM_REFERENCE_MAX + 1];
    s_entry_t *e = NULL;
    size_t len = 0, ca_len = 0, n = 0, i;
    json_t *root = NULL, *ms, *m;
    int c, rc = 1, idx_ok = 0, all_ok = 1, platforms = 0;

    optind = 1;
    while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k': key_path = optarg; break;
        case 'i': ropts.insecure = 1; break;
        case 'c': ca_path = optarg; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc) {
        s_usage(stderr);
        return 2;
    }
    ref_s = argv[optind];
    farm_text_inert(shown, sizeof shown, ref_s);
    if (farm_reference_parse(&ref, ref_s) < 0) {
        fprintf(stderr, "farmctl verify: %s: %s\n", shown, farm_error_last());
        return 2;
    }
    if (key_path && farm_sigstore_pub_load(&pub, key_path) < 0) {
        fprintf(stderr, "farmctl verify: --key: %s\n", farm_error_last());
        return 2;
    }
    if (pub)
        farm_sigstore_key_id(keyid, pub);
    if (ca_path) {
        if (farm_fs_read_file(&ca, &ca_len, ca_path, FARM_CA_PEM_MAX) < 0) {
            fprintf(stderr, "farmctl verify: --ca: %s\n", farm_error_last());
            goto done;
        }
        ropts.ca_pem = ca;
        ropts.ca_pem_len = ca_len;
    }
    if (!(reg = farm_registry_new(farm_reference_api_host(&ref), &ropts))) {
        fprintf(stderr, "farmctl verify: %s\n", farm_error_last());
        goto done;
    }
    if (farm_registry_manifest_get(reg, &man, &len, media, sizeof media, ref.repository,
                                   ref.digest[0] ? ref.digest : ref.tag) < 0) {
        fprintf(stderr, "farmctl verify: reading %s: %s\n", shown, farm_error_last());
        goto done;
    }
    farm_digest_buffer(digest, man, len);
    if (ref.digest[0] && strcmp(digest, ref.digest) != 0) {
        fprintf(stderr, "farmctl verify: the registry served %s for %s\n", digest, shown);
        goto done;
    }
    root = json_loadb(man, len, 0, NULL);
    ms = json_object_get(root, "manifests");
    if (!json_is_array(ms)) {
        fprintf(stderr, "farmctl verify: %s is not an image index (%s): farm pushes an index "
                "per build\n", shown, media);
        goto done;
    }
    if (!(e = calloc(json_array_size(ms) + 1, sizeof *e))) {
        fprintf(stderr, "farmctl verify: out of memory\n");
        goto done;
    }
    json_array_foreach(ms, i, m) {
        const char *d = json_string_value(json_object_get(m, "digest"));
        json_t *ann = json_object_get(m, "annotations");
        const char *rt = json_string_value(json_object_get(ann, "vnd.docker.reference.type"));
        const char *rd = json_string_value(json_object_get(ann, "vnd.docker.reference.digest"));
        if (!d || !farm_digest_valid(d))
            continue;
        snprintf(e[n].digest, sizeof e[n].digest, "%s", d);
        s_platform(e[n].platform, sizeof e[n].platform, json_object_get(m, "platform"));
        snprintf(e[n].node, sizeof e[n].node, "-");
        snprintf(e[n].built, sizeof e[n].built, "-");
        if (rt && strcmp(rt, "attestation-manifest") == 0 && rd && farm_digest_valid(rd)) {
            e[n].attestation = 1;
            snprintf(e[n].subject, sizeof e[n].subject, "%s", rd);
        } else {
            platforms++;
        }
        n++;
    }
    for (i = 0; i < n; i++)
        if (e[i].attestation)
            s_read_provenance(reg, ref.repository, &e[i], e, n);
    if (pub) {
        s_check_sig(reg, ref.repository, ref_s, digest, pub, idx_verdict, sizeof idx_verdict,
                    &idx_ok);
        all_ok = idx_ok;
        for (i = 0; i < n; i++) {
            s_check_sig(reg, ref.repository, ref_s, e[i].digest, pub, e[i].sig,
                        sizeof e[i].sig, &e[i].sig_ok);
            all_ok &= e[i].sig_ok;
        }
    }
    printf("index %s@%s: %d platform(s)\n", shown, digest, platforms);
    printf("%-16s %-71s %-16s %-8s%s\n", "PLATFORM", "DIGEST", "NODE", "BUILT",
           pub ? " SIGNATURE" : "");
    for (i = 0; i < n; i++) {
        char label[FARM_PLATFORM_STRLEN + 16];
        if (e[i].attestation)
            snprintf(label, sizeof label, "(attestation)");
        else
            snprintf(label, sizeof label, "%s", e[i].platform);
        printf("%-16s %-71s %-16s %-8s%s%s\n", label, e[i].digest, e[i].node, e[i].built,
               pub ? " " : "", pub ? e[i].sig : "");
    }
    if (!pub) {
        printf("signature: not checked (give --key PUB, the signing key's NAME.pub)\n");
        rc = 0;
    } else {
        printf("index signature: %s\n", idx_verdict);
        printf("key %s: %s\n", keyid, all_ok ? "VERIFIED: the index and every manifest it "
               "lists are signed for this reference" : "NOT VERIFIED");
        rc = all_ok ? 0 : 1;
    }
done:
    json_decref(root);
    free(man);
    free(e);
    free(ca);
    EVP_PKEY_free(pub);
    farm_registry_destroy(&reg);
    return rc;
}
