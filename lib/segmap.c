/*
 * segmap.c - the global segment map: a two-level radix table indexed by the
 * segment number of an address (address >> PA_SEGMENT_SHIFT). The root is a
 * static array; leaves are mapped on demand and published with a CAS, so
 * lookups take no lock and never read memory the caller handed us.
 */
#include "segmap.h"

#include "os.h"

#define SEGMAP_LEAF_BYTES (SEGMAP_LEAF_ENTRIES * sizeof(uintptr_t))

_Static_assert(SEGMAP_ROOT_BITS > 0, "segment map root has entries");

uintptr_t *segmap_root[SEGMAP_ROOT_ENTRIES];

static uintptr_t *segmap_leaf(size_t index, bool create)
{
    uintptr_t **slot = &segmap_root[index >> SEGMAP_LEAF_BITS];
    uintptr_t *leaf = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (leaf || !create)
        return leaf;
    uintptr_t *fresh = os_map(SEGMAP_LEAF_BYTES);
    if (!fresh)
        return NULL;
    uintptr_t *expected = NULL;
    if (__atomic_compare_exchange_n(slot, &expected, fresh, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return fresh;
    os_unmap(fresh, SEGMAP_LEAF_BYTES);
    return expected;
}

static void segmap_store(uintptr_t base, size_t size, uintptr_t value)
{
    size_t first = segmap_index(base);
    size_t last = segmap_index(base + size - 1);
    for (size_t i = first; i <= last; i++) {
        uintptr_t *leaf = segmap_leaf(i, false);
        pa_assert(leaf != NULL);
        __atomic_store_n(&leaf[i & (SEGMAP_LEAF_ENTRIES - 1)], value,
                         __ATOMIC_RELEASE);
    }
}

bool segmap_register(uintptr_t base, size_t size, uintptr_t entry)
{
    pa_assert((base & PA_SEGMENT_MASK) == 0 && size > 0);
    if (segmap_index(base + size - 1) >= SEGMAP_ROOT_ENTRIES * SEGMAP_LEAF_ENTRIES)
        return false;
    /* Create every leaf first so a failure leaves no half-registered range. */
    for (size_t i = segmap_index(base); i <= segmap_index(base + size - 1); i++)
        if (!segmap_leaf(i, true))
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
    size_t used = 0;
    for (size_t r = 0; r < SEGMAP_ROOT_ENTRIES; r++) {
        const uintptr_t *leaf = __atomic_load_n(&segmap_root[r], __ATOMIC_ACQUIRE);
        for (size_t i = 0; leaf && i < SEGMAP_LEAF_ENTRIES; i++)
            used += __atomic_load_n(&leaf[i], __ATOMIC_RELAXED) != 0;
    }
    return used;
}

void segmap_reset(void)
{
    for (size_t r = 0; r < SEGMAP_ROOT_ENTRIES; r++) {
        if (segmap_root[r]) {
            os_unmap(segmap_root[r], SEGMAP_LEAF_BYTES);
            segmap_root[r] = NULL;
        }
    }
}
