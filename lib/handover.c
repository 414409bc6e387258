/* SPDX-License-Identifier: MIT */
/*
 * handover.c - the lock-free hand-over of blocks freed by other threads:
 * each heap's hand-over list (push only; the owner takes the whole list),
 * the outbox in which a thread gathers the blocks it frees for one other
 * heap into a batch, and the owner taking blocks and batches back, a
 * bounded number per call.
 */
#include "heap.h"

/* Pushes one entry (a single block, or a batch block tagged) onto h's
 * hand-over list. */
static void heap_handover_push_entry(heap_t *h, block_t *b, uintptr_t tag)
{
    block_t *head = __atomic_load_n(&h->handover, __ATOMIC_RELAXED);
    do {
        PA_LINK_STORE(b->next_free, head);
    } while (!__atomic_compare_exchange_n(&h->handover, &head,
                                          (block_t *)((uintptr_t)b | tag), /*weak=*/true,
                                          __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

void pa_heap_handover_push(heap_t *h, block_t *b)
{
    heap_handover_push_entry(h, b, 0);
}

static handover_batch_t *batch_of(block_t *b)
{
    return block_payload(b);
}

void pa_heap_outbox_flush(heap_t *h)
{
    block_t *b = h->outbox;
    if (b) {
        h->outbox = NULL;
        heap_handover_push_entry(h->outbox_owner, b, HEAP_HANDOVER_BATCH_TAG);
    }
}

void pa_heap_outbox_add(heap_t *h, heap_t *owner, block_t *b, size_t size)
{
    if (h->outbox && h->outbox_owner != owner)
        pa_heap_outbox_flush(h);
    if (!h->outbox) {
        /* A slab block (its handle, like a single handed-over slab
         * block's), never marked live. */
        void *p = slab_take(&h->slabs, slab_class_of(sizeof(handover_batch_t)));
        if (!p) {
            pa_heap_handover_push(owner, b);
            return;
        }
        block_t *nb = block_from_payload(p);
        batch_of(nb)->count = 0;
        h->outbox = nb;
        h->outbox_owner = owner;
    }
    handover_batch_t *batch = batch_of(h->outbox);
    batch->sizes[batch->count] = (uint32_t)size;
    batch->blocks[batch->count++] = b;
    if (batch->count == HEAP_OUTBOX_SLOTS)
        pa_heap_outbox_flush(h);
}

/* Frees a handed-over block of known size (0: a slab block) into h. */
static void heap_take_back_block(heap_t *h, block_t *b, size_t size)
{
    if (size == 0) {
        void *p = block_payload(b);
        slab_give(&h->slabs, slab_of(segment_of(p), p), p);
    } else {
        pa_heap_give(h, b);
    }
}

/* Frees every block of a batch into h, then sends the batch's own block
 * home to the heap that made it (never in a new batch). Returns the number
 * of blocks freed. */
static size_t heap_take_back_batch(heap_t *h, block_t *batch_block)
{
    handover_batch_t *batch = batch_of(batch_block);
    uint32_t n = batch->count;
    for (uint32_t i = 0; i < n; i++) {
        /* Independent addresses: let several misses run at once. */
        if (i + 4 < n)
            __builtin_prefetch(batch->blocks[i + 4], 1);
        heap_take_back_block(h, batch->blocks[i], batch->sizes[i]);
    }
    heap_t *maker = __atomic_load_n(&segment_of(batch_block)->owner, __ATOMIC_ACQUIRE);
    heap_handover_push_entry(maker, batch_block, HEAP_HANDOVER_RETURN_TAG);
    return n;
}

/* Frees up to about limit blocks of the owner-private pending list,
 * refilling it from the shared hand-over list when it runs dry. */
static void heap_take_back(heap_t *h, size_t limit)
{
    for (size_t n = 0; n < limit;) {
        if (!h->pending) {
            h->pending = __atomic_exchange_n(&h->handover, NULL, __ATOMIC_ACQUIRE);
            if (!h->pending)
                return;
        }
        handover_entry_t entry = handover_decode(h->pending);
        h->pending = PA_LINK_LOAD(entry.block->next_free);
        if (entry.tag & HEAP_HANDOVER_BATCH_TAG) {
            n += heap_take_back_batch(h, entry.block);
        } else {
            heap_take_back_block(h, entry.block, heap_handed_size(entry.block));
            n++;
        }
    }
}

void pa_heap_drain_handover_some(heap_t *h)
{
    heap_take_back(h, HEAP_TAKE_BACK_LIMIT);
}

void pa_heap_poll_handover(heap_t *h)
{
    h->poll_countdown = HEAP_POLL_INTERVAL;
    pa_heap_outbox_flush(h);
    if (heap_has_handover(h))
        pa_heap_drain_handover_some(h);
}

void pa_heap_drain_handover(heap_t *h)
{
    heap_take_back(h, SIZE_MAX);
}
