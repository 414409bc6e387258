/*
 * segmap.c - the global segment map: a flat table indexed by the segment
 * number of an address (address >> PA_SEGMENT_SHIFT), reserved once without
 * backing store and published with a CAS, so lookups take no lock and never
 * read memory the caller handed us.
 */
#include "segmap.h"

#include "os.h"

#define SEGMAP_BYTES (SEGMAP_ENTRIES * sizeof(uintptr_t))

segmap_t segmap;

/* Entries in use, kept as they change: counting them would read the whole
 * table. */
static size_t segmap_used;

static bool segmap_create(void)
{
    if (__atomic_load_n(&segmap.limit, __ATOMIC_ACQUIRE))
        return true;
    uintptr_t *fresh = os_map(SEGMAP_BYTES);
    if (!fresh)
        return false;
    uintptr_t *expected = NULL;
    if (!__atomic_compare_exchange_n(&segmap.entries, &expected, fresh, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        os_unmap(fresh, SEGMAP_BYTES); /* another thread's table won */
    __atomic_store_n(&segmap.limit, SEGMAP_ENTRIES, __ATOMIC_RELEASE);
    return true;
}

static void segmap_store(uintptr_t base, size_t size, uintptr_t value)
{
    /* Another thread may be racing to create the table (and lose). */
    uintptr_t *entries = __atomic_load_n(&segmap.entries, __ATOMIC_ACQUIRE);
    for (size_t i = segmap_index(base); i <= segmap_index(base + size - 1); i++) {
        uintptr_t old = __atomic_exchange_n(&entries[i], value, __ATOMIC_ACQ_REL);
        if ((old != 0) != (value != 0))
            __atomic_fetch_add(&segmap_used, value ? 1 : (size_t)-1, __ATOMIC_RELAXED);
    }
}

bool segmap_register(uintptr_t base, size_t size, uintptr_t entry)
{
    pa_assert((base & PA_SEGMENT_MASK) == 0 && size > 0);
    if (segmap_index(base + size - 1) >= SEGMAP_ENTRIES || !segmap_create())
        return false;
    segmap_store(base, size, entry);
    return true;
}

void segmap_update(uintptr_t base, size_t size, uintptr_t entry)
{
    segmap_store(base, size, entry);
}

void segmap_unregister(uintptr_t base, size_t size)
{
    segmap_store(base, size, 0);
}

size_t segmap_count(void)
{
    return __atomic_load_n(&segmap_used, __ATOMIC_RELAXED);
}

void segmap_reset(void)
{
    __atomic_store_n(&segmap.limit, 0, __ATOMIC_RELEASE);
    os_unmap(segmap.entries, SEGMAP_BYTES);
    __atomic_store_n(&segmap.entries, NULL, __ATOMIC_RELAXED);
    segmap_used = 0;
}
