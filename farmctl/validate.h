/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FARMCTL_VALIDATE_H
#define FARMCTL_VALIDATE_H

/* `farmctl validate [-q] [FILE]`: argv[0] is "validate"; FILE defaults to farm.yaml.
 * Prints every problem to stderr, one per line, then "FILE: N problem(s)"; on success
 * prints "FILE: ok (N nodes, M platforms)" (not with -q). Returns 0 when valid, 1 when
 * not, 2 on a usage error. */
int farmctl_validate_main(int argc, char **argv);

#endif
