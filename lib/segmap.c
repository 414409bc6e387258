/* SPDX-License-Identifier: MIT */
/*
 * segmap.c - the global segment map: a flat table indexed by the segment
 * number of an address (address >> PA_SEGMENT_SHIFT), reserved without
 * backing store, so lookups take no lock and never read memory the caller
 * handed us. It covers a window of the address space and moves to a table
 * for the whole of it when a mapping falls outside (segmap.h).
 *
 * Writers hold segmap_mutex (the innermost lock: fork handlers take it
 * last), so a table being copied into its successor changes under nobody. A replaced table stays mapped until pa_segmap_reset:
 * a lookup may still read it, and finds what it held when replaced.
 */
#include "segmap.h"

#include <pthread.h>
#include <string.h>

#include "os.h"

segmap_t pa_segmap;

static pthread_mutex_t segmap_mutex = PTHREAD_MUTEX_INITIALIZER;

/* The window's table and the whole address space's, for pa_segmap_reset. */
static uintptr_t *tables[2];
static size_t table_entries[2];
static int table_count;

/* Entries in use, kept as they change: counting them would read the whole
 * table. */
static size_t segmap_used;

void pa_segmap_lock(void)
{
    pa_mutex_lock(&segmap_mutex);
}

void pa_segmap_unlock(void)
{
    pa_mutex_unlock(&segmap_mutex);
}

uintptr_t *pa_segmap_table(void)
{
    return table_count ? tables[table_count - 1] : NULL;
}

/* A new table for the segment numbers [base, base + limit), holding what
 * the current one holds, published in the order segmap_lookup relies on.
 * Caller holds segmap_mutex. */
static bool segmap_replace(size_t base, size_t limit)
{
    uintptr_t *fresh = pa_os_map_sparse(limit * sizeof(uintptr_t));
    if (!fresh)
        return false;
    size_t old_base = segmap_bounds_base(pa_segmap.bounds), old_limit = segmap_bounds_limit(pa_segmap.bounds);
    if (old_limit)
        memcpy(fresh + (old_base - base), pa_segmap_table(), old_limit * sizeof(uintptr_t));
    tables[table_count] = fresh;
    table_entries[table_count++] = limit;
    __atomic_store_n(&pa_segmap.entries, (uintptr_t)(fresh - base), __ATOMIC_RELEASE);
    __atomic_store_n(&pa_segmap.bounds, segmap_bounds(base, limit), __ATOMIC_RELEASE);
    return true;
}

/* Makes the table cover segment numbers [first, last] (last below
 * SEGMAP_ENTRIES); caller holds segmap_mutex. */
static bool segmap_cover(size_t first, size_t last)
{
    size_t cur_base = segmap_bounds_base(pa_segmap.bounds), cur_limit = segmap_bounds_limit(pa_segmap.bounds);
    if (cur_limit && first >= cur_base && last < cur_base + cur_limit)
        return true;
    if (!cur_limit) {
        size_t base = first > SEGMAP_WINDOW_ENTRIES / 2 ? first - SEGMAP_WINDOW_ENTRIES / 2 : 0;
        if (base > SEGMAP_ENTRIES - SEGMAP_WINDOW_ENTRIES)
            base = SEGMAP_ENTRIES - SEGMAP_WINDOW_ENTRIES;
        if (last < base + SEGMAP_WINDOW_ENTRIES)
            return segmap_replace(base, SEGMAP_WINDOW_ENTRIES);
    }
    return table_count < 2 && segmap_replace(0, SEGMAP_ENTRIES);
}

static bool segmap_range_ok(uintptr_t base, size_t size)
{
    return size > 0 && base + size - 1 >= base && segmap_index(base + size - 1) < SEGMAP_ENTRIES;
}

bool pa_segmap_covers(uintptr_t base, size_t size)
{
    if (!segmap_range_ok(base, size))
        return false;
    pa_segmap_lock();
    bool ok = segmap_cover(segmap_index(base), segmap_index(base + size - 1));
    pa_segmap_unlock();
    return ok;
}

/* Caller holds segmap_mutex; the table covers the range. */
static void segmap_store(uintptr_t base, size_t size, uintptr_t value)
{
    uintptr_t *entries = (uintptr_t *)pa_segmap.entries;
    for (size_t i = segmap_index(base); i <= segmap_index(base + size - 1); i++) {
        uintptr_t old = __atomic_exchange_n(&entries[i], value, __ATOMIC_ACQ_REL);
        if ((old != 0) != (value != 0))
            __atomic_fetch_add(&segmap_used, value ? 1 : (size_t)-1, __ATOMIC_RELAXED);
    }
}

bool pa_segmap_register(uintptr_t base, size_t size, uintptr_t entry)
{
    pa_assert((base & PA_SEGMENT_MASK) == 0 && size > 0);
    if (!segmap_range_ok(base, size))
        return false;
    pa_segmap_lock();
    bool ok = segmap_cover(segmap_index(base), segmap_index(base + size - 1));
    if (ok)
        segmap_store(base, size, entry);
    pa_segmap_unlock();
    return ok;
}

void pa_segmap_update(uintptr_t base, size_t size, uintptr_t entry)
{
    pa_segmap_lock();
    segmap_store(base, size, entry);
    pa_segmap_unlock();
}

void pa_segmap_unregister(uintptr_t base, size_t size)
{
    pa_segmap_update(base, size, 0);
}

size_t pa_segmap_count(void)
{
    return __atomic_load_n(&segmap_used, __ATOMIC_RELAXED);
}

void pa_segmap_reset(void)
{
    pa_segmap_lock();
    __atomic_store_n(&pa_segmap.bounds, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&pa_segmap.entries, 0, __ATOMIC_RELAXED);
    for (int i = 0; i < table_count; i++)
        pa_os_unmap(tables[i], table_entries[i] * sizeof(uintptr_t));
    table_count = 0;
    segmap_used = 0;
    pa_segmap_unlock();
}
