/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FARMCTL_VERIFY_H
#define FARMCTL_VERIFY_H

/* `farmctl verify REF [--key PUB]` (alias inspect): the index under REF, its platforms,
 * which node built each (from its provenance attestations), and with --key whether its
 * sigstore signatures verify. Exit 0 only when every check asked for passed. */
int farmctl_verify_main(int argc, char **argv);

#endif
