/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FARMCTL_DRAIN_H
#define FARMCTL_DRAIN_H

/* `farmctl drain NODE [--undo] [--farm FILE] [--coordinator E]`: an admin takes a node out
 * of scheduling (its running jobs finish) or puts it back. */
int farmctl_drain_main(int argc, char **argv);

#endif
