/* SPDX-License-Identifier: MIT */
/*
 * stats.h - a byte count that keeps its own peak. Each layer that counts
 * bytes owns one and charges it itself, so no layer reaches up into
 * another's counters; introspect.c sums them.
 */
#ifndef PA_STATS_H
#define PA_STATS_H

#include <stddef.h>

typedef struct pa_stats {
    size_t allocated; /* bytes counted now */
    size_t peak;      /* the highest allocated has been */
} pa_stats_t;

static inline void stats_add(pa_stats_t *s, size_t n)
{
    s->allocated += n;
    if (s->allocated > s->peak)
        s->peak = s->allocated;
}

static inline void stats_sub(pa_stats_t *s, size_t n)
{
    s->allocated -= n;
}

#endif /* PA_STATS_H */
