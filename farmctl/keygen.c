/* SPDX-License-Identifier: Apache-2.0 */
/* farmctl keygen NAME [--dir DIR]: a CURVE key pair for a node, a client or the
 * coordinator; with --signing, the coordinator's EC P-256 key that signs every index. */
#include "farmctl/keygen.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/keys.h"
#include "common/limits.h"
#include "common/sigstore.h"

/* NAME.key (PEM EC P-256 private key, 0600) and NAME.pub (PEM public key). */
static int s_signing(const char *path, const char *pub)
{
    char *real;

    if (farm_sigstore_keygen(path, pub) < 0) {
        fprintf(stderr, "farmctl keygen --signing: %s\n", farm_error_last());
        return 1;
    }
    if (!(real = realpath(path, NULL)))
        real = strdup(path);
    printf("wrote %s (the signing key: keep it secret, on the coordinator's host only) and %s\n"
           "in farm.yaml: coordinator: signing_key_file: %s\n"
           "to verify: farmctl verify REF --key %s, or a sigstoreSigned policy.json with\n"
           "          \"keyPath\": \"%s\" (README: Signed images)\n",
           path, pub, real ? real : path, pub, pub);
    free(real);
    return 0;
}

int farmctl_keygen_main(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"signing", no_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *dir = ".", *name;
    char path[FARM_PATH_MAX], pub[FARM_PATH_MAX];
    farm_keypair_t kp;
    char *real;
    int c, signing = 0;

    optind = 1;
    while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 's': signing = 1; break;
        case 'h':
            printf("usage: farmctl keygen [--signing] NAME [--dir DIR]\n"
                   "  writes DIR/NAME.key (the key pair: keep it secret, mode 0600) and\n"
                   "  DIR/NAME.pub (the public key, for farm.yaml); never overwrites a key.\n"
                   "  farmctl uses $FARM_KEY, else ~/.config/farm/key (a symlink to your own\n"
                   "  0600 NAME.key is fine), and the coordinator's key from\n"
                   "  $FARM_COORDINATOR_KEY, farm.yaml, else ~/.config/farm/coordinator.pub\n"
                   "  --signing: DIR/NAME.key is a PEM EC P-256 private key (0600) for\n"
                   "  coordinator.signing_key_file and DIR/NAME.pub its PEM public key, for\n"
                   "  farmctl verify --key and a sigstoreSigned policy's keyPath\n");
            return 0;
        default: return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "usage: farmctl keygen [--signing] NAME [--dir DIR]\n");
        return 2;
    }
    name = argv[optind];
    if (!*name || strlen(name) > FARM_NAME_MAX || strpbrk(name, "/ \t\n")) {
        fprintf(stderr, "farmctl keygen: NAME must be 1 to %d characters without '/' or spaces "
                        "(the node or client name in farm.yaml)\n", FARM_NAME_MAX);
        return 2;
    }
    if (signing && (farm_path_fmt(path, sizeof path, "%s/%s.key", dir, name) < 0 ||
                    farm_path_fmt(pub, sizeof pub, "%s/%s.pub", dir, name) < 0)) {
        fprintf(stderr, "farmctl keygen: %s\n", farm_error_last());
        return 1;
    }
    if (signing)
        return s_signing(path, pub);
    if (farm_path_fmt(path, sizeof path, "%s/%s.key", dir, name) < 0 ||
        farm_path_fmt(pub, sizeof pub, "%s/%s.pub", dir, name) < 0 ||
        farm_key_generate(&kp) < 0 || farm_key_write(path, pub, &kp, name) < 0) {
        fprintf(stderr, "farmctl keygen: %s\n", farm_error_last());
        farm_key_wipe(&kp);
        return 1;
    }
    /* farmctl looks for its own key at one place: say where, with the absolute path */
    if (!(real = realpath(path, NULL)))
        real = strdup(path);
    printf("wrote %s (the key pair: keep it secret) and %s\n"
           "public key: %s\n"
           "in farm.yaml: nodes:   %s: {key: \"%s\"}\n"
           "          or clients: %s: {key: \"%s\", role: submit}\n"
           "          or coordinator: public_key: \"%s\"  secret_key_file: %s\n"
           "for farmctl (a client's key): mkdir -p ~/.config/farm && "
           "ln -s \"%s\" ~/.config/farm/key\n"
           "          (or FARM_KEY=%s); the coordinator's .pub goes to "
           "~/.config/farm/coordinator.pub\n",
           path, pub, kp.public_key, name, kp.public_key, name, kp.public_key, kp.public_key,
           path, real ? real : path, real ? real : path);
    free(real);
    farm_key_wipe(&kp);
    return 0;
}
