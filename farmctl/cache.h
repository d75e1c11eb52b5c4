/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FARMCTL_CACHE_H
#define FARMCTL_CACHE_H

/* `farmctl du [--node N]... [--verbose] [--format json]`: what each node's caches take
 * (builder caches per client and platform, cached contexts), last use, in use. Admin. */
int farmctl_du_main(int argc, char **argv);
/* `farmctl prune [--node N]... [--filter until=24h] [--all] [-f]`: removes what no
 * running job uses; asks first on a terminal, refuses without one unless -f. Admin. */
int farmctl_prune_main(int argc, char **argv);

#endif
