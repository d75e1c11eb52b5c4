/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FARMCTL_KEYGEN_H
#define FARMCTL_KEYGEN_H

/* `farmctl keygen NAME [--dir DIR]`: writes NAME.key (0600) and NAME.pub. */
int farmctl_keygen_main(int argc, char **argv);

#endif
