/* SPDX-License-Identifier: MIT */
/*
 * block.h - block metadata: the 16-byte header in front of every heap block,
 * boundary tags, and the split/merge steps the TLSF layer is built from.
 *
 * A block's size counts its header and is a multiple of the granule. The
 * header holds the size with two flags in its low bits, and a pointer to the
 * physically previous block, valid only while that block is free. Free blocks
 * keep their free-list links in the payload. Every heap area ends with a
 * zero-sized, used sentinel header so merging stops at the area's end.
 */
#ifndef PA_BLOCK_H
#define PA_BLOCK_H

#include "annotate.h"
#include "internal.h"

typedef struct block {
    struct block *prev_phys;
    size_t size_flags;
    /* Only while the block is free (or waiting in a hand-over list). */
    struct block *next_free;
    struct block *prev_free;
} block_t;

#define BLOCK_HEADER_SIZE ((size_t)offsetof(block_t, next_free))
#define BLOCK_MIN_SIZE ((size_t)sizeof(block_t))
#define BLOCK_FREE ((size_t)1)
#define BLOCK_PREV_FREE ((size_t)2)
#define BLOCK_FLAGS (BLOCK_FREE | BLOCK_PREV_FREE)

_Static_assert(BLOCK_HEADER_SIZE == PA_GRANULE, "header keeps payloads granule-aligned");
_Static_assert(BLOCK_MIN_SIZE % PA_GRANULE == 0, "minimum block is whole granules");

/* The header word is written only by the heap's owner, but another thread
 * may read the size of a live block (myalloc_usable_size, myrealloc), so
 * every write is one whole-word store. */
static inline void block_store(block_t *b, size_t size_flags)
{
    __atomic_store_n(&b->size_flags, size_flags, __ATOMIC_RELAXED);
}

static inline size_t block_size(const block_t *b)
{
    return b->size_flags & ~BLOCK_FLAGS;
}

/* block_size for a block another thread may own. */
static inline size_t block_size_shared(const block_t *b)
{
    return __atomic_load_n(&b->size_flags, __ATOMIC_RELAXED) & ~BLOCK_FLAGS;
}

static inline void block_set_size(block_t *b, size_t size)
{
    block_store(b, size | (b->size_flags & BLOCK_FLAGS));
}

static inline bool block_is_free(const block_t *b)
{
    return (b->size_flags & BLOCK_FREE) != 0;
}

static inline bool block_prev_is_free(const block_t *b)
{
    return (b->size_flags & BLOCK_PREV_FREE) != 0;
}

static inline bool block_is_sentinel(const block_t *b)
{
    return block_size(b) == 0;
}

static inline void *block_payload(const block_t *b)
{
    return (char *)b + BLOCK_HEADER_SIZE;
}

static inline block_t *block_from_payload(const void *p)
{
    return (block_t *)((char *)p - BLOCK_HEADER_SIZE);
}

static inline size_t block_usable(const block_t *b)
{
    return block_size(b) - BLOCK_HEADER_SIZE;
}

/* What statistics count of used block b: the bytes its program may use
 * (a hardened build's canary excluded). */
static inline size_t block_counted(const block_t *b)
{
    return block_usable(b) - PA_CANARY_SIZE;
}

static inline block_t *block_next(const block_t *b)
{
    return (block_t *)((char *)b + block_size(b));
}

/* Boundary tag upkeep: a block's state is mirrored in its successor. */
static inline void block_mark_free(block_t *b)
{
    block_store(b, b->size_flags | BLOCK_FREE);
    block_t *next = block_next(b);
    next->prev_phys = b;
    block_store(next, next->size_flags | BLOCK_PREV_FREE);
}

static inline void block_mark_used(block_t *b)
{
    block_store(b, b->size_flags & ~BLOCK_FREE);
    block_t *next = block_next(b);
    block_store(next, next->size_flags & ~BLOCK_PREV_FREE);
}

/* Cuts b down to size and returns the rest as a used block that follows it;
 * the caller decides what becomes of the rest. */
static inline block_t *block_split(block_t *b, size_t size)
{
    pa_assert(block_size(b) >= size + BLOCK_MIN_SIZE);
    block_t *rest = (block_t *)((char *)b + size);
    pa_mem_open(rest, BLOCK_HEADER_SIZE); /* it lay in b's payload */
    block_store(rest, block_size(b) - size); /* used, predecessor used */
    block_set_size(b, size);
    return rest;
}

/* Joins b into its physical predecessor prev; prev keeps its flags. */
static inline block_t *block_absorb(block_t *prev, block_t *b)
{
    pa_assert(block_next(prev) == b);
    block_set_size(prev, block_size(prev) + block_size(b));
    return prev;
}

/* Lays out one used block over [start, start + size) plus its sentinel. */
static inline block_t *block_make_area(void *start, size_t size)
{
    pa_assert(size >= BLOCK_MIN_SIZE + BLOCK_HEADER_SIZE);
    block_t *b = start;
    b->prev_phys = NULL;
    b->size_flags = size - BLOCK_HEADER_SIZE;
    block_t *sentinel = block_next(b);
    sentinel->prev_phys = NULL;
    sentinel->size_flags = 0;
    return b;
}

#endif /* PA_BLOCK_H */
