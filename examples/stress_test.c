/* SPDX-License-Identifier: MIT */
/*
 * stress_test.c - single-threaded stress of libpallocator: a long seeded
 * random sequence of myalloc / myfree / myrealloc over a table of blocks,
 * every block filled with a pattern derived from its address and checked
 * before it is freed or resized.  Prints the operations per second.
 *
 * Usage: stress_test [operations] [seed]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pallocator.h>

#define SLOTS 4096

struct slot {
    unsigned char *p;
    size_t n;
};

static uint64_t rng_state;

static uint64_t next_rand(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static unsigned char pattern(const void *base, size_t i)
{
    uintptr_t a = (uintptr_t)base;
    return (unsigned char)((a >> 4) ^ (a >> 12) ^ (i * 31u) ^ 0x5a);
}

/* Only the first and last 256 bytes are patterned, so big blocks stay cheap. */
static void fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i == 256 && n > 512)
            i = n - 256;
        p[i] = pattern(p, i);
    }
}

static int intact(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i == 256 && n > 512)
            i = n - 256;
        if (p[i] != pattern(p, i))
            return 0;
    }
    return 1;
}

/* After a move, the first keep bytes must match what fill(old, old_n) wrote. */
static int kept(const unsigned char *q, const unsigned char *old, size_t old_n, size_t keep)
{
    for (size_t i = 0; i < keep; i++) {
        if (old_n > 512 && i >= 256 && i < old_n - 256)
            continue;
        if (q[i] != pattern(old, i))
            return 0;
    }
    return 1;
}

static size_t random_size(void)
{
    uint64_t r = next_rand() % 1000;
    if (r < 800)
        return (size_t)(next_rand() % 257);
    if (r < 995)
        return 257 + (size_t)(next_rand() % 65536);
    return 65536 + (size_t)(next_rand() % (2u << 20));
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    static struct slot slots[SLOTS];
    unsigned long ops = argc > 1 ? strtoul(argv[1], NULL, 0) : 1000000;
    unsigned long allocs = 0, frees = 0, reallocs = 0;
    size_t allocated, freed, peak;
    double t0, dt;

    rng_state = argc > 2 ? strtoull(argv[2], NULL, 0) : 0x5eed;
    if (rng_state == 0)
        rng_state = 1;
    if (allocator_init(0) != 0) {
        perror("allocator_init");
        return 1;
    }

    t0 = now();
    for (unsigned long op = 0; op < ops; op++) {
        struct slot *s = &slots[next_rand() % SLOTS];
        unsigned r = (unsigned)(next_rand() % 100);
        if (s->p == NULL) {
            s->n = random_size();
            s->p = myalloc(s->n);
            if (s->p == NULL) {
                fprintf(stderr, "op %lu: myalloc(%zu) failed: %s\n", op, s->n, strerror(errno));
                return 1;
            }
            fill(s->p, s->n);
            allocs++;
        } else if (r < 50) {
            if (!intact(s->p, s->n)) {
                fprintf(stderr, "op %lu: block %p of %zu bytes was overwritten\n", op,
                        (void *)s->p, s->n);
                return 1;
            }
            if (myfree(s->p) != 0) {
                fprintf(stderr, "op %lu: myfree(%p) failed\n", op, (void *)s->p);
                return 1;
            }
            s->p = NULL;
            frees++;
        } else {
            size_t n = random_size(), keep = n < s->n ? n : s->n;
            unsigned char *q;
            if (!intact(s->p, s->n)) {
                fprintf(stderr, "op %lu: block %p was overwritten\n", op, (void *)s->p);
                return 1;
            }
            q = myrealloc(s->p, n);
            if (q == NULL) {
                fprintf(stderr, "op %lu: myrealloc(%zu) failed: %s\n", op, n, strerror(errno));
                return 1;
            }
            if (!kept(q, s->p, s->n, keep)) {
                fprintf(stderr, "op %lu: myrealloc %zu -> %zu lost data\n", op, s->n, n);
                return 1;
            }
            s->p = q;
            s->n = n;
            fill(q, n);
            reallocs++;
        }
    }
    dt = now() - t0;

    allocator_stats(&allocated, &freed, &peak);
    printf("stress_test: %lu ops (%lu alloc, %lu free, %lu realloc) in %.3f s: %.0f ops/s\n",
           ops, allocs, frees, reallocs, dt, dt > 0 ? (double)ops / dt : 0.0);
    printf("stress_test: live %zu bytes, free in heaps %zu bytes, peak %zu bytes\n",
           allocated, freed, peak);
    if (allocator_verify() != 0) {
        fprintf(stderr, "stress_test: allocator_verify failed\n");
        return 1;
    }
    for (size_t i = 0; i < SLOTS; i++) {
        if (slots[i].p == NULL)
            continue;
        if (!intact(slots[i].p, slots[i].n) || myfree(slots[i].p) != 0) {
            fprintf(stderr, "stress_test: final check of block %zu failed\n", i);
            return 1;
        }
    }
    allocator_stats(&allocated, NULL, NULL);
    if (allocated != 0 || allocator_verify() != 0) {
        fprintf(stderr, "stress_test: %zu bytes still allocated after freeing all\n", allocated);
        return 1;
    }
    allocator_cleanup();
    printf("stress_test: ok\n");
    return 0;
}
