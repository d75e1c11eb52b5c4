/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FARMCTL_SUBMIT_H
#define FARMCTL_SUBMIT_H

/* `farmctl submit ...`: argv[0] is "submit". Returns the process exit status. */
int farmctl_submit_main(int argc, char **argv);

#endif
