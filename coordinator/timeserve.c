/* SPDX-License-Identifier: Apache-2.0 */
#include "coordinator/timeserve.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/hmap.h"
#include "common/limits.h"

struct farm_timeserve {
    unsigned per_peer, total;
    long long second;   /* the window the counts belong to */
    unsigned answered;  /* in this second, in all */
    farm_hmap_t *peers; /* peer name -> answers this second (the count is the pointer
                         * value: nothing to free; the map is emptied every second) */
};

farm_timeserve_t *farm_timeserve_new(unsigned per_peer, unsigned total)
{
    farm_timeserve_t *self = calloc(1, sizeof *self);

    if (!self || !(self->peers = farm_hmap_new())) {
        free(self);
        return NULL;
    }
    self->per_peer = per_peer;
    self->total = total;
    self->second = -1;
    return self;
}

void farm_timeserve_destroy(farm_timeserve_t **self_p)
{
    farm_timeserve_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    farm_hmap_destroy(&self->peers);
    free(self);
    *self_p = NULL;
}

int farm_timeserve_admit(farm_timeserve_t *self, const char *peer, int secure, uint64_t nonce,
                         long long now_ms)
{
    long long second = now_ms / 1000;
    uintptr_t n;

    if (nonce == 0)
        return farm_error_set(FARM_EINVALID, "time request without a nonce");
    if (secure && (!peer || !*peer))
        return farm_error_set(FARM_EINVALID, "time request from an unauthenticated peer");
    if (!peer || strlen(peer) > FARM_NAME_MAX)
        return farm_error_set(FARM_EINVALID, "time request from an unnamed peer");
    if (second != self->second) {
        /* a new window: at most per-second peers were ever held */
        farm_hmap_t *fresh = farm_hmap_new();
        if (!fresh)
            return FARM_ERETRY;
        farm_hmap_destroy(&self->peers);
        self->peers = fresh;
        self->second = second;
        self->answered = 0;
    }
    if (self->answered >= self->total)
        return FARM_ERETRY;
    n = (uintptr_t)farm_hmap_gets(self->peers, peer);
    if (n >= self->per_peer || farm_hmap_puts(self->peers, peer, (void *)(n + 1)) < 0)
        return FARM_ERETRY;
    self->answered++;
    return 0;
}
