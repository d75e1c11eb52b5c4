/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FARMCTL_BUILDS_H
#define FARMCTL_BUILDS_H

/* `farmctl builds [--farm FILE] [--coordinator E]`: the builds the farm runs now (a
 * client's own; every one for an admin), with each job's platform, state and node. */
int farmctl_builds_main(int argc, char **argv);

#endif
