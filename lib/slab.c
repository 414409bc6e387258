/* SPDX-License-Identifier: MIT */
/*
 * slab.c - the rare steps of slabs: choosing a new current slab, giving a
 * class to a free slab, mapping and retiring slab segments, and moving a
 * slab between the lists as its blocks come back.
 */
#include "slab.h"

#include "numa.h"

/* Four classes per doubling up to 4 KiB, eight from there: the pages of
 * databases and file buffers (a 4 KiB page plus a small header) would
 * otherwise waste a fifth of a 5 KiB block. */
const uint16_t pa_slab_class_size[SLAB_CLASSES] = {
    16,   32,   48,   64,   80,   96,   112,  128,  160,  192,  224,  256,
    320,  384,  448,  512,  640,  768,  896,  1024, 1280, 1536, 1792, 2048,
    2560, 3072, 3584, 4096, 4608, 5120, 5632, 6144, 6656, 7168, 7680, 8192};
uint8_t pa_slab_request_class[(SLAB_REQUEST_MAX >> PA_GRANULE_SHIFT) + 1];
slab_t pa_slab_none = {.state = SLAB_CURRENT};

_Static_assert(SLAB_REQUEST_MAX == 8192, "the last class serves the largest request");
_Static_assert(SLAB_SIZE / 16 <= UINT32_MAX, "block counts fit the records");

void pa_slab_tables_init(void)
{
    unsigned c = 0;
    for (size_t g = 0; g <= SLAB_REQUEST_MAX >> PA_GRANULE_SHIFT; g++) {
        while (pa_slab_class_size[c] < g << PA_GRANULE_SHIFT)
            c++;
        pa_slab_request_class[g] = (uint8_t)c;
    }
}

void pa_slab_set_init(slab_set_t *set, struct heap *owner, pa_stats_t *held)
{
    for (unsigned c = 0; c < SLAB_CLASSES; c++) {
        set->current[c] = &pa_slab_none;
        set->partial[c] = set->partial_last[c] = NULL;
    }
    set->free = NULL;
    set->segments = set->spare = NULL;
    set->segment_count = set->assigned = 0;
    set->owner = owner;
    set->held = held;
    set->numa_node = NULL;
}

/* ---- lists ------------------------------------------------------------ */

static void slab_list_push(slab_t **head, slab_t *sl)
{
    sl->prev = NULL;
    sl->next = *head;
    if (*head)
        (*head)->prev = sl;
    *head = sl;
}

static void slab_list_remove(slab_t **head, slab_t *sl)
{
    if (sl->prev)
        sl->prev->next = sl->next;
    else
        *head = sl->next;
    if (sl->next)
        sl->next->prev = sl->prev;
}

static slab_t *slab_list_pop(slab_t **head)
{
    slab_t *sl = *head;
    if (sl)
        slab_list_remove(head, sl);
    return sl;
}

/* A class's partial slabs queue oldest first: a slab that has waited
 * longest since its first free has had the most frees since, so the next
 * current slab has more blocks to give before it runs dry again. */
static void slab_partial_append(slab_set_t *set, slab_t *sl)
{
    slab_t *last = set->partial_last[sl->cls];
    sl->next = NULL;
    sl->prev = last;
    if (last)
        last->next = sl;
    else
        set->partial[sl->cls] = sl;
    set->partial_last[sl->cls] = sl;
}

static void slab_partial_remove(slab_set_t *set, slab_t *sl)
{
    if (set->partial_last[sl->cls] == sl)
        set->partial_last[sl->cls] = sl->prev;
    slab_list_remove(&set->partial[sl->cls], sl);
}

/* ---- segments --------------------------------------------------------- */

static bool slab_grow(slab_set_t *set)
{
    segment_t *s = pa_segment_acquire(set->owner, NULL, numa_node_refresh(set->numa_node));
    if (!s)
        return false;
    s->slabs_in_use = 0;
    segment_list_push(&set->segments, &set->segment_count, s);
    /* Uncarved and free slab memory is off limits until handed out. */
    pa_mem_close((char *)s + SEGMENT_HEADER_SLABS * SLAB_SIZE, SEGMENT_BLOCK_SLABS * SLAB_SIZE);
    /* The first slabs hold the header; the others start out free. */
    for (size_t k = SEGMENT_SLABS; k-- > SEGMENT_HEADER_SLABS;) {
        slab_t *sl = &s->slabs[k];
        sl->start = (char *)s + k * SLAB_SIZE;
        sl->live_bias = (uintptr_t)s->live.mark - ((uintptr_t)s >> PA_GRANULE_SHIFT);
        sl->state = SLAB_FREE;
        slab_list_push(&set->free, sl);
    }
    pa_assert(pa_slab_set_verify(set, NULL) == 0);
    return true;
}

static void slab_retire_segment(slab_set_t *set, segment_t *s)
{
    for (size_t k = SEGMENT_HEADER_SLABS; k < SEGMENT_SLABS; k++)
        slab_list_remove(&set->free, &s->slabs[k]);
    if (set->spare == s)
        set->spare = NULL;
    segment_list_remove(&set->segments, &set->segment_count, s);
    pa_segment_retire(s);
    pa_assert(pa_slab_set_verify(set, NULL) == 0);
}

/* Keeps one wholly free segment mapped, so a heap whose use swings around
 * a segment boundary does not map and unmap on every swing. */
static void slab_segment_emptied(slab_set_t *set, segment_t *s)
{
    if (!set->spare || set->spare == s || set->spare->slabs_in_use != 0)
        set->spare = s;
    else if (pa_segment_may_retire())
        slab_retire_segment(set, s);
}

/* ---- slabs ------------------------------------------------------------ */

static size_t slab_index(const slab_t *sl)
{
    return (size_t)(sl - segment_of(sl)->slabs);
}

/* The first byte of slab sl's piece of its segment. */
static char *slab_base(const slab_t *sl)
{
    return (char *)segment_of(sl) + slab_index(sl) * SLAB_SIZE;
}

static slab_t *slab_assign(slab_set_t *set, unsigned c)
{
    if (!set->free && !slab_grow(set))
        return NULL;
    slab_t *sl = slab_list_pop(&set->free);
    segment_of(sl)->slabs_in_use++;
    set->assigned++;
    sl->cls = (uint8_t)c;
    sl->block_size = pa_slab_class_size[c];
    sl->start = slab_base(sl) + slab_class_offset(c);
    sl->capacity = (uint32_t)((SLAB_SIZE - slab_class_offset(c)) / sl->block_size);
    sl->free = NULL;
    sl->used = sl->bump = 0;
    stats_add(set->held, SLAB_SIZE); /* the peak counts whole slabs */
    return sl;
}

static void slab_release(slab_set_t *set, slab_t *sl)
{
    pa_assert(sl->used == 0);
    sl->state = SLAB_FREE;
    slab_list_push(&set->free, sl);
    set->assigned--;
    stats_sub(set->held, SLAB_SIZE);
    segment_t *s = segment_of(sl);
    if (--s->slabs_in_use == 0)
        slab_segment_emptied(set, s);
}

/* Which of the n blocks of a slab's first carve its free list starts at.
 * Slabs start on SLAB_SIZE boundaries, so if every slab handed out its
 * first block first, the first objects of all classes would fall in one
 * set of every cache level, and a program whose hot objects of different
 * sizes are each among the first of their class would evict its own
 * data: the sqlite job of bench/run-programs missed the L1 data cache 11
 * times as often in its interpreter loop as on glibc, which packs sizes
 * side by side (cachegrind). So the slab at index k of its segment starts
 * with the block nearest to cache line k of the first page. This changes
 * only the order of the free list: the blocks carved are the same. */
static uint32_t slab_first_carve_start(const slab_t *sl, uint32_t n)
{
    size_t line = slab_index(sl) % (SLAB_CARVE_BYTES / PA_CACHE_LINE);
    return (uint32_t)((line * PA_CACHE_LINE + sl->block_size - 1) / sl->block_size % n);
}

/* Links the next blocks of sl's untouched end into its (empty) free list,
 * in address order from block r of the run, wrapping round to the run's
 * first; false when none are left. */
static bool slab_carve(slab_t *sl)
{
    uint32_t n = sl->capacity - sl->bump;
    uint32_t most = (uint32_t)(SLAB_CARVE_BYTES / sl->block_size);
    if (most < SLAB_CARVE_MIN_BLOCKS)
        most = SLAB_CARVE_MIN_BLOCKS; /* large blocks: a few at a time */
    if (n == 0)
        return false;
    if (n > most)
        n = most;
    uint32_t r = sl->bump == 0 ? slab_first_carve_start(sl, n) : 0;
    char *first = sl->start + (size_t)sl->bump * sl->block_size;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t next = i + 1 == n ? 0 : i + 1;
        void *to = next == r ? sl->free : first + (size_t)next * sl->block_size;
        PA_LINK_STORE(*(void **)(first + (size_t)i * sl->block_size), to);
    }
    sl->free = first + (size_t)r * sl->block_size;
    sl->bump += n;
    return true;
}

void *pa_slab_take_slow(slab_set_t *set, unsigned c)
{
    slab_t *old = set->current[c];
    if (old != &pa_slab_none && slab_carve(old))
        return slab_pop(old);
    slab_t *sl = set->partial[c];
    if (sl)
        slab_partial_remove(set, sl);
    else
        sl = slab_assign(set, c);
    if (!sl)
        return NULL;
    if (old != &pa_slab_none) {
        /* Nothing left to give: its free list and end are spent. */
        old->state = SLAB_FULL;
        old->full_used = old->used;
        old->used = 1;
    }
    sl->state = SLAB_CURRENT;
    set->current[c] = sl;
    if (!sl->free)
        slab_carve(sl);
    return slab_pop(sl);
}

void *pa_slab_free_list_broken(slab_t *sl, const void *p)
{
    fprintf(stderr, "pallocator: slab %p: free block %p has a broken link; "
            "the blocks after it stay out of use\n", (void *)sl->start, p);
    return NULL;
}

void pa_slab_give_slow(slab_set_t *set, slab_t *sl)
{
    if (sl->state == SLAB_FULL) {
        sl->used = sl->full_used - 1; /* the block slab_push took back */
        sl->state = SLAB_PARTIAL;
        slab_partial_append(set, sl);
    }
    if (sl->used == 0 && sl->state == SLAB_PARTIAL) {
        slab_partial_remove(set, sl);
        slab_release(set, sl);
    }
}

void pa_slab_shrink(slab_set_t *set)
{
    for (unsigned c = 0; c < SLAB_CLASSES; c++) {
        slab_t *sl = set->current[c];
        if (sl != &pa_slab_none && sl->used == 0) {
            set->current[c] = &pa_slab_none;
            slab_release(set, sl);
        }
    }
    segment_t *s = set->segments;
    while (s) {
        segment_t *next = s->next;
        if (s->slabs_in_use == 0)
            slab_retire_segment(set, s);
        s = next;
    }
}

void pa_slab_release_all(slab_set_t *set)
{
    segment_t *s = set->segments;
    while (s) {
        segment_t *next = s->next;
        pa_segment_unmap(s);
        s = next;
    }
    pa_slab_set_init(set, set->owner, set->held);
}

/* ---- verification ----------------------------------------------------- */

typedef struct slab_tally {
    size_t free, partial, assigned, live_bytes;
} slab_tally_t;

/* A slab with a class: its counts, its free list and its state. */
static int slab_verify(const slab_set_t *set, const segment_t *s, const slab_t *sl,
                       slab_tally_t *tally)
{
    unsigned c = sl->cls;
    if (c >= SLAB_CLASSES || sl->block_size != pa_slab_class_size[c] ||
        sl->capacity != (SLAB_SIZE - slab_class_offset(c)) / sl->block_size ||
        sl->bump > sl->capacity || slab_used(sl) > sl->bump ||
        sl->start != (const char *)s + (size_t)(sl - s->slabs) * SLAB_SIZE + slab_class_offset(c))
        return pa_verify_fail("slab %p has a broken record", (const void *)sl->start);
    size_t listed = 0;
    /* Canaries first: an overflow that reached a free neighbour's link
     * is named by the block it came from. */
    if (PA_GUARDED)
        for (uint32_t i = 0; i < sl->bump; i++) {
            const char *p = sl->start + (size_t)i * sl->block_size;
            if (segment_live_test(s, p) && !pa_canary_ok(p, sl->block_size))
                return pa_verify_fail("block %p: canary overwritten", (const void *)p);
        }
    for (const void *p = sl->free; p; p = PA_LINK_LOAD(*(void *const *)p))
        if (++listed > sl->bump || !slab_holds_block(sl, p) || segment_live_test(s, p))
            return pa_verify_fail("slab %p: bad free list at %p", (const void *)sl->start, p);
    if (slab_used(sl) + listed != sl->bump)
        return pa_verify_fail("slab %p: %u used and %zu free of %u carved",
                           (const void *)sl->start, slab_used(sl), listed, sl->bump);
    bool current = set->current[c] == sl;
    if (current != (sl->state == SLAB_CURRENT) ||
        (sl->state == SLAB_FULL && (listed || sl->bump != sl->capacity)) ||
        (sl->state == SLAB_PARTIAL && (!listed || !sl->used)) ||
        (sl->state == SLAB_FULL && sl->used != 1))
        return pa_verify_fail("slab %p is in the wrong state", (const void *)sl->start);
    tally->partial += sl->state == SLAB_PARTIAL;
    tally->assigned++;
    tally->live_bytes += (size_t)slab_used(sl) * (sl->block_size - PA_CANARY_SIZE);
    return 0;
}

static int slab_verify_segment(const slab_set_t *set, const segment_t *s, slab_tally_t *tally)
{
    if (!segment_has_slabs(s))
        return pa_verify_fail("segment %p in a slab set has no slabs", (const void *)s);
    size_t in_use = 0, used = 0;
    for (size_t k = SEGMENT_HEADER_SLABS; k < SEGMENT_SLABS; k++) {
        const slab_t *sl = &s->slabs[k];
        if (sl->state == SLAB_FREE) {
            tally->free++;
            continue;
        }
        if (slab_verify(set, s, sl, tally))
            return -1;
        in_use++;
        used += slab_used(sl);
    }
    if (in_use != s->slabs_in_use)
        return pa_verify_fail("slab segment %p: %zu slabs in use, counts %zu", (const void *)s,
                           in_use, s->slabs_in_use);
    /* Blocks being freed by other threads are counted used but not live. */
    return pa_segment_verify(s, set->owner, used);
}

/* The length of the list from sl, or SIZE_MAX when a slab in it is not in
 * state (of class cls) or its back link is wrong; *last (unless NULL) is
 * its last slab. */
static size_t slab_list_length(const slab_t *sl, unsigned state, unsigned cls,
                               const slab_t **last)
{
    size_t n = 0;
    const slab_t *prev = NULL;
    for (; sl; prev = sl, sl = sl->next, n++)
        if (sl->state != state || (state != SLAB_FREE && sl->cls != cls) || sl->prev != prev)
            return SIZE_MAX;
    if (last)
        *last = prev;
    return n;
}

int pa_slab_set_verify(const slab_set_t *set, size_t *live_bytes)
{
    slab_tally_t tally = {0};
    size_t count = 0;
    for (const segment_t *s = set->segments; s; s = s->next, count++)
        if (slab_verify_segment(set, s, &tally))
            return -1;
    if (count != set->segment_count)
        return pa_verify_fail("slab set %p lists %zu segments, counts %zu", (const void *)set,
                           count, set->segment_count);
    size_t partial = 0;
    for (unsigned c = 0; c < SLAB_CLASSES; c++) {
        const slab_t *last = NULL;
        size_t n = slab_list_length(set->partial[c], SLAB_PARTIAL, c, &last);
        const slab_t *cur = set->current[c];
        if (n == SIZE_MAX || last != set->partial_last[c] ||
            (cur != &pa_slab_none && cur->cls != c))
            return pa_verify_fail("slab set %p: lists of class %u are broken", (const void *)set, c);
        partial += n;
    }
    if (partial != tally.partial || tally.assigned != set->assigned ||
        slab_list_length(set->free, SLAB_FREE, 0, NULL) != tally.free)
        return pa_verify_fail("slab set %p: lists disagree with the slabs", (const void *)set);
    if (set->held->allocated < set->assigned * SLAB_SIZE)
        return pa_verify_fail("slab set %p: %zu slabs with a class, %zu bytes charged",
                           (const void *)set, set->assigned, set->held->allocated);
    if (live_bytes)
        *live_bytes = tally.live_bytes;
    return 0;
}
