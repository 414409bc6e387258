/* SPDX-License-Identifier: MIT */
/*
 * mistakes.c - makes one memory mistake with blocks from myalloc, named by
 * its argument, for test_mistakes.sh to run under a memory checker
 * (valgrind's memcheck, ASan, or the hardened build's canaries) and check
 * that exactly that mistake is reported:
 *
 *   leak             a 100-byte slab block is lost
 *   use-after-free   a freed 40-byte slab block is read
 *   past-end-slab    the byte after a 40-byte slab block is read
 *   past-end-arena   the byte after a 10000-byte TLSF block is read
 *   leak-large, use-after-free-large, past-end-large
 *                    the same with a large block (over 1 MiB) that the
 *                    cache of freed mappings hands out again
 *   past-end-aligned the byte after a large block of myalloc_aligned, its
 *                    payload further into a reused mapping
 *   overflow-slab    (hardened) a slab block is written a few bytes past
 *                    its usable size, into its canary
 *   overflow-arena   (hardened) the same with a TLSF block
 *   overflow-free-neighbour  (hardened) a slab block is written through
 *                    its canary into the free-list link of the free
 *                    block after it
 *   none             no mistake: every path of the allocator that touches
 *                    free memory (remote frees in batches, realloc in
 *                    place both ways, large blocks fresh and reused, by
 *                    myalloc, mycalloc and myalloc_aligned, verify) runs
 *                    cleanly
 *
 * The overflow modes print what verify and free said, then check that the
 * neighbours of the damaged block and further allocations work.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pallocator.h"

/* Offsets through a volatile, so the compiler sees no out-of-bounds
 * access to warn about or optimise. */
static volatile size_t offset_of_mistake;

static void *checked_alloc(size_t n)
{
    void *p = myalloc(n);
    if (!p) {
        fprintf(stderr, "mistakes: myalloc(%zu) failed\n", n);
        exit(2);
    }
    memset(p, 0x5a, n);
    return p;
}

static void *dummy;

static __attribute__((noinline)) void leak(void)
{
    dummy = checked_alloc(100); /* the slab's first block: its record points there */
    char *lost = checked_alloc(100);
    lost[0] = 1;
}

static int read_byte(const char *p, size_t at)
{
    offset_of_mistake = at;
    return ((const volatile char *)p)[offset_of_mistake];
}

#define MiB ((size_t)1 << 20)

/* Leaves a freed 3 MiB mapping in the cache, for the next large request
 * of between 1.5 and 3 MiB. */
static void prime_mapping_cache(void)
{
    if (myfree(checked_alloc(3 * MiB)) != 0)
        exit(3);
}

/* A large block of n bytes from a reused mapping. */
static char *reused_large(size_t n)
{
    prime_mapping_cache();
    return checked_alloc(n);
}

static __attribute__((noinline)) void leak_large(void)
{
    char *lost = reused_large(2 * MiB);
    lost[0] = 1;
}

static void *remote_free(void *arg)
{
    void **blocks = arg;
    for (int i = 0; i < 200; i++)
        if (myfree(blocks[i]) != 0)
            exit(3);
    return NULL;
}

/* Every path that touches free memory, without a mistake. */
static int no_mistake(void)
{
    static void *blocks[200];
    for (int i = 0; i < 200; i++)
        blocks[i] = checked_alloc(i % 2 ? 24 + (size_t)i : 9000 + 40 * (size_t)i);
    pthread_t t;
    if (pthread_create(&t, NULL, remote_free, blocks) != 0 || pthread_join(t, NULL) != 0)
        return 4;
    /* The blocks come back to this heap through its hand-over list. */
    for (int i = 0; i < 200; i++)
        blocks[i] = checked_alloc(i % 2 ? 24 : 12000);
    char *r = checked_alloc(10000);
    r = myrealloc(r, 20000);  /* grows in place or moves */
    if (!r || read_byte(r, 9999) != 0x5a)
        return 5;
    memset(r, 1, 20000);
    r = myrealloc(r, 9000);   /* shrinks in place */
    if (!r || read_byte(r, 8999) != 1)
        return 6;
    char *s = checked_alloc(30);
    s = myrealloc(s, 40);     /* stays in its 48-byte slab block */
    if (!s || read_byte(s, 29) != 0x5a)
        return 7;
    s[39] = 2;
    char *big = mycalloc(1, 3 << 20);
    if (!big || read_byte(big, (3 << 20) - 1) != 0)
        return 8;
    big = myrealloc(big, 2 << 20);
    if (!big || myalloc_usable_size(big) < (2 << 20))
        return 9;
    /* Large blocks from the cache of freed mappings, by myalloc and by
     * myalloc_aligned, whose payload starts further in; and one of
     * mycalloc whose request ends where its mapping does (a hardened
     * build's canary must not be among its bytes). */
    char *reused = reused_large(2 * MiB + 10);
    reused = myrealloc(reused, 2 * MiB + 20);
    if (!reused || read_byte(reused, 2 * MiB + 9) != 0x5a)
        return 18;
    memset(reused, 3, 2 * MiB + 20);
    if (myfree(reused) != 0)
        return 19;
    /* Larger than any mapping cached: a fresh one, with the header five
     * whole MiB. */
    const size_t whole = 5 * MiB - 32;
    char *zeroed = mycalloc(1, whole);
    if (!zeroed || read_byte(zeroed, whole - 1) != 0 || read_byte(zeroed, 0) != 0)
        return 20;
    memset(zeroed, 4, whole);
    if (myfree(zeroed) != 0)
        return 21;
    prime_mapping_cache();
    char *aligned = myalloc_aligned(64 << 10, 2 * MiB);
    if (!aligned || ((uintptr_t)aligned & ((64 << 10) - 1)) != 0)
        return 22;
    memset(aligned, 5, 2 * MiB);
    aligned = myrealloc(aligned, 2 * MiB + 4096);
    if (!aligned || read_byte(aligned, 2 * MiB - 1) != 5)
        return 23;
    if (myfree(aligned) != 0)
        return 24;
    if (allocator_verify() != 0)
        return 10;
    for (int i = 0; i < 200; i++)
        myfree(blocks[i]);
    myfree(r);
    myfree(s);
    myfree(big);
    return allocator_verify() == 0 ? 0 : 11;
}

/* Writes a few bytes (reach) past the usable size of the middle of three
 * blocks of n bytes (the last one freed first when after_free), then
 * checks what verify and free say and that the neighbours and further
 * allocations work. */
static int overflow(size_t n, size_t reach, bool after_free)
{
    char *before = checked_alloc(n), *victim = checked_alloc(n), *after = checked_alloc(n);
    size_t usable = myalloc_usable_size(victim);
    printf("victim %p\n", (void *)victim);
    if (after_free) {
        if ((size_t)(after - victim) != usable + 8 || myfree(after) != 0)
            return 17; /* the neighbour must follow the canary */
        after = NULL;
    }
    offset_of_mistake = usable;
    for (size_t i = 0; i < reach; i++)
        victim[offset_of_mistake + i] = 0x77;
    int verified = allocator_verify();
    errno = 0;
    int freed = myfree(victim);
    printf("verify %d, free %d errno %d\n", verified, freed, errno);
    fflush(stdout);
    if (verified != -1 || freed != -1 || errno != EINVAL)
        return 12;
    /* The neighbours are intact and free normally; the heap keeps working. */
    if (read_byte(before, n - 1) != 0x5a || (after && read_byte(after, n - 1) != 0x5a))
        return 13;
    if (myfree(before) != 0 || (after && myfree(after) != 0))
        return 14;
    for (int round = 0; round < 3; round++) {
        void *p[64];
        for (int i = 0; i < 64; i++)
            p[i] = checked_alloc(n);
        for (int i = 0; i < 64; i++)
            if (myfree(p[i]) != 0)
                return 15;
    }
    /* The damaged block stays out of use: every later free refuses it. */
    if (myfree(victim) != -1)
        return 16;
    printf("neighbours and later calls work\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "none";
    if (!strcmp(mode, "leak")) {
        leak();
        return 0;
    }
    if (!strcmp(mode, "use-after-free")) {
        char *p = checked_alloc(40);
        dummy = checked_alloc(40); /* keeps the slab from being emptied */
        myfree(p);
        int r = read_byte(p, 0) == 0x42;
        return myfree(dummy) != 0 || r;
    }
    if (!strcmp(mode, "past-end-slab") || !strcmp(mode, "past-end-arena")) {
        size_t n = !strcmp(mode, "past-end-slab") ? 40 : 10000;
        char *p = checked_alloc(n);
        int r = read_byte(p, n) == 0x42;
        return myfree(p) != 0 || r;
    }
    if (!strcmp(mode, "leak-large")) {
        leak_large();
        return 0;
    }
    if (!strcmp(mode, "use-after-free-large")) {
        char *p = reused_large(2 * MiB);
        myfree(p);
        return read_byte(p, 0) == 0x42;
    }
    if (!strcmp(mode, "past-end-large") || !strcmp(mode, "past-end-aligned")) {
        size_t n = 2 * MiB + 10;
        prime_mapping_cache();
        char *p = !strcmp(mode, "past-end-large") ? myalloc(n) : myalloc_aligned(64 << 10, n);
        if (!p)
            return 2;
        memset(p, 0x5a, n);
        int r = read_byte(p, n) == 0x42;
        return myfree(p) != 0 || r;
    }
    if (!strcmp(mode, "overflow-slab"))
        return overflow(40, 4, false);
    if (!strcmp(mode, "overflow-arena"))
        return overflow(10000, 4, false);
    if (!strcmp(mode, "overflow-free-neighbour"))
        return overflow(40, 16, true);
    if (!strcmp(mode, "none"))
        return no_mistake();
    fprintf(stderr, "mistakes: unknown mistake %s\n", mode);
    return 2;
}
