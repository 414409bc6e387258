/* SPDX-License-Identifier: MIT */
/*
 * introspect.h - what introspect.c offers the rest of the library besides
 * the public calls: the NUMA page census that allocator_dump prints and the
 * malloc override reports at exit.
 */
#ifndef PA_INTROSPECT_H
#define PA_INTROSPECT_H

#include "numa.h"

/* Adds the resident pages of every segment and large block to pages[n]
 * for the node n they are on. The caller holds every heap paused
 * (pa_heap_pause_all) and the large-block lock. */
void pa_pages_by_node(size_t pages[NUMA_MAX_NODES]);

#endif /* PA_INTROSPECT_H */
