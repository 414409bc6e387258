/* SPDX-License-Identifier: MIT */
/*
 * concurrent_stress.c - thread-parallel stress of libpallocator.  Each thread
 * allocates, checks, resizes and frees its own blocks, and also trades blocks
 * with the other threads through a shared table, so that many blocks are
 * freed by a thread other than the one that allocated them.  Every block
 * carries a pattern derived from its address, checked before it is freed.
 *
 * Usage: concurrent_stress [threads (default 4)] [operations per thread]
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pallocator.h>

#define LOCAL_SLOTS 512
#define SHARED_SLOTS 256
#define HEADER 16 /* a shared block starts with its size */

static _Atomic(unsigned char *) shared[SHARED_SLOTS];
static atomic_ulong errors;
static atomic_ulong remote_frees;

struct worker {
    pthread_t tid;
    uint64_t rng;
    unsigned long ops;
};

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static unsigned char pattern(const void *base, size_t i)
{
    uintptr_t a = (uintptr_t)base;
    return (unsigned char)((a >> 4) ^ (a >> 12) ^ (i * 31u) ^ 0x5a);
}

/* The first and last 256 bytes carry the pattern. */
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

static void report(const char *what, const void *p)
{
    if (atomic_fetch_add(&errors, 1) < 10)
        fprintf(stderr, "concurrent_stress: %s (%p)\n", what, p);
}

static size_t random_size(uint64_t *rng)
{
    uint64_t r = next_rand(rng) % 1000;
    if (r < 850)
        return (size_t)(next_rand(rng) % 257);
    if (r < 998)
        return 257 + (size_t)(next_rand(rng) % 32768);
    return (1u << 20) + (size_t)(next_rand(rng) % (1u << 20));
}

/* Checks and frees a block from the shared table, whoever allocated it. */
static void release_shared(unsigned char *p)
{
    size_t n;
    memcpy(&n, p, sizeof n);
    if (n < HEADER || !intact(p + HEADER, n - HEADER))
        report("shared block overwritten", p);
    if (myfree(p) != 0)
        report("myfree of a shared block failed", p);
    atomic_fetch_add(&remote_frees, 1);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct {
        unsigned char *p;
        size_t n;
    } b[LOCAL_SLOTS];

    memset(b, 0, sizeof b);
    for (unsigned long op = 0; op < w->ops; op++) {
        size_t k = (size_t)(next_rand(&w->rng) % LOCAL_SLOTS);
        unsigned r = (unsigned)(next_rand(&w->rng) % 100);
        if (r < 15) {
            /* Trade: put a new block in a shared slot, free what was there. */
            size_t n = HEADER + (size_t)(next_rand(&w->rng) % 2048);
            unsigned char *p = myalloc(n), *old;
            if (p == NULL) {
                report("myalloc failed", NULL);
                break;
            }
            memcpy(p, &n, sizeof n);
            fill(p + HEADER, n - HEADER);
            old = atomic_exchange(&shared[next_rand(&w->rng) % SHARED_SLOTS], p);
            if (old != NULL)
                release_shared(old);
        } else if (b[k].p == NULL) {
            b[k].n = random_size(&w->rng);
            b[k].p = myalloc(b[k].n);
            if (b[k].p == NULL) {
                report("myalloc failed", NULL);
                break;
            }
            fill(b[k].p, b[k].n);
        } else if (r < 65) {
            if (!intact(b[k].p, b[k].n))
                report("block overwritten", b[k].p);
            if (myfree(b[k].p) != 0)
                report("myfree failed", b[k].p);
            b[k].p = NULL;
        } else {
            size_t n = random_size(&w->rng);
            size_t keep = n < b[k].n ? n : b[k].n;
            unsigned char *q;
            if (keep > 256)
                keep = 256;
            if (!intact(b[k].p, b[k].n))
                report("block overwritten", b[k].p);
            q = myrealloc(b[k].p, n);
            if (q == NULL) {
                report("myrealloc failed", b[k].p);
                break;
            }
            for (size_t i = 0; i < keep; i++)
                if (q[i] != pattern(b[k].p, i)) {
                    report("myrealloc lost data", q);
                    break;
                }
            b[k].p = q;
            b[k].n = n;
            fill(q, n);
        }
    }
    for (size_t k = 0; k < LOCAL_SLOTS; k++) {
        if (b[k].p == NULL)
            continue;
        if (!intact(b[k].p, b[k].n) || myfree(b[k].p) != 0)
            report("final free failed", b[k].p);
    }
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long nthreads = argc > 1 ? strtol(argv[1], NULL, 0) : 4;
    unsigned long ops = argc > 2 ? strtoul(argv[2], NULL, 0) : 200000;
    struct worker *w;
    size_t allocated, freed, peak;
    double t0, dt;

    if (nthreads < 1 || nthreads > 1024) {
        fprintf(stderr, "usage: %s [threads 1..1024] [operations per thread]\n", argv[0]);
        return 2;
    }
    if (allocator_init(1) != 0) {
        perror("allocator_init");
        return 1;
    }
    w = calloc((size_t)nthreads, sizeof *w);
    if (w == NULL)
        return 1;

    t0 = now();
    for (long i = 0; i < nthreads; i++) {
        w[i].rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(i + 1) * 0x100000001b3ULL;
        w[i].ops = ops;
        if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    for (long i = 0; i < nthreads; i++)
        pthread_join(w[i].tid, NULL);
    dt = now() - t0;

    printf("concurrent_stress: %ld threads x %lu ops in %.3f s: %.0f ops/s, %lu cross-thread frees\n",
           nthreads, ops, dt, dt > 0 ? (double)nthreads * (double)ops / dt : 0.0,
           (unsigned long)atomic_load(&remote_frees));
    if (allocator_verify() != 0)
        report("allocator_verify failed with blocks in the shared table", NULL);
    for (size_t i = 0; i < SHARED_SLOTS; i++) {
        unsigned char *p = atomic_exchange(&shared[i], NULL);
        if (p != NULL)
            release_shared(p);
    }
    allocator_stats(&allocated, &freed, &peak);
    printf("concurrent_stress: after freeing all: allocated %zu, free in heaps %zu, peak %zu\n",
           allocated, freed, peak);
    if (allocated != 0)
        report("bytes still counted as allocated", NULL);
    if (allocator_verify() != 0)
        report("allocator_verify failed at the end", NULL);
    allocator_cleanup();
    free(w);
    if (atomic_load(&errors) != 0) {
        printf("concurrent_stress: %lu errors\n", (unsigned long)atomic_load(&errors));
        return 1;
    }
    printf("concurrent_stress: ok\n");
    return 0;
}
