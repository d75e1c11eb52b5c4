/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the fuzz targets: libFuzzer's entry points and small input helpers. */
#ifndef FARM_FUZZ_H
#define FARM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property the code under test promised and broke: reported like a crash, with the
 * input saved by libFuzzer. (Not assert(): it must hold in every build type.) */
#define FUZZ_CHECK(cond, ...)                                                            \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz check failed: %s (%s:%d): ", #cond, __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* The input as a C string (the parsers under test take one): a malloc'd copy that
 * ends at the first NUL byte or at size. NULL on out of memory. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

/* Error messages of rejected inputs would drown libFuzzer's own output. */
static inline void fuzz_quiet(void)
{
    farm_log_init("fuzz", FARM_LOG_ERROR);
    farm_log_set_level(FARM_LOG_ERROR);
}

#endif
