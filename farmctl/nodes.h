/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FARMCTL_NODES_H
#define FARMCTL_NODES_H

/* `farmctl nodes [--farm FILE] [--coordinator E]`: the farm's nodes, their platforms,
 * state, slots in use and current jobs. */
int farmctl_nodes_main(int argc, char **argv);

#endif
