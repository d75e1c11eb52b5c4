/* SPDX-License-Identifier: Apache-2.0 */
/* farmctl validate: reads a farm.yaml and reports every problem in it at once. */
#include "farmctl/validate.h"

#include <getopt.h>
#include <stdio.h>

#include "common/config.h"
#include "common/error.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: farmctl validate [-q] [FILE]\n\n"
               "Checks FILE (default farm.yaml) and prints every problem as\n"
               "FILE:LINE:COLUMN: what is wrong; what to do.\n\n"
               "  -q, --quiet   print nothing when the file is valid\n"
               "exit status: 0 valid, 1 problems found, 2 usage error\n");
}

int farmctl_validate_main(int argc, char **argv)
{
    static const struct option opts[] = {{"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = "farm.yaml";
    farm_config_t *cfg = NULL;
    farm_diag_t diags = {0};
    int c, quiet = 0, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case 'q': quiet = 1; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "farmctl validate: one FILE at most\n");
        s_usage(stderr);
        return 2;
    }
    if (optind < argc)
        path = argv[optind];

    if (farm_config_load(&cfg, path, &diags) < 0) {
        for (size_t i = 0; i < diags.n; i++)
            fprintf(stderr, "%s\n", diags.items[i]);
        if (!diags.n)
            fprintf(stderr, "%s\n", farm_error_last());
        fprintf(stderr, "%s: %zu problem(s)\n", path, diags.n ? diags.n : 1);
        rc = 1;
        goto done;
    }
    if (!quiet)
        printf("%s: ok (%zu nodes, %zu platforms)\n", path, cfg->n_nodes, cfg->n_platforms);
    rc = 0;
done:
    farm_diag_clear(&diags);
    farm_config_destroy(&cfg);
    return rc;
}
