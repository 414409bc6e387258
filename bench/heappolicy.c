/* SPDX-License-Identifier: MIT */
/*
 * heappolicy.c - what each private-heap policy for giving memory back
 * (myheap_create(3), "Giving memory back") costs in time and keeps in
 * memory, on one workload: BURSTS bursts, each allocating about MIB MiB of
 * blocks of mixed sizes (seeded: 90% of 16 B..1 KiB, 9% of 1..64 KiB, 1%
 * of 64 KiB..1 MiB), writing every byte, then freeing 15/16 of them in
 * random order; the survivors stay until the run ends, then are freed.
 * Between bursts the program sleeps 5 ms (outside the timings), so that a
 * 1 ms release delay passes and the next call releases.
 *
 * Per policy it prints the medians of RUNS runs, the policies taking
 * turns: ns per malloc/free pair (the myheap_alloc and myheap_free calls
 * only, every block freed once); ms per burst with the writes, where the
 * page faults on memory given back and touched again land; then twice,
 * once with the survivors live after the last burst and once with every
 * block freed, each after a 5 ms pause and one more call on the heap: the
 * resident bytes the process gained since before the heap was made
 * (/proc/self/statm) and the bytes the heap has mapped (allocator_dump);
 * last the heap's peak (myheap_stats). A locked heap gets a limit of
 * twice a burst plus the survivors, mapped and locked up front; it is
 * skipped, with the reason, when myheap_create refuses it (mlock needs
 * RLIMIT_MEMLOCK or CAP_IPC_LOCK). Not part of make bench:
 *
 *   make bench/heappolicy && bench/heappolicy [--policy NAME] [--runs N]
 *       [--bursts N] [--mib N]
 *
 * NAME is delayed, delayed-1ms, immediate, never or locked; the system
 * calls of one policy: strace -c -f bench/heappolicy --policy NAME --runs 1
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pallocator.h>

#include "heaps_mapped.h"

#define MAX_RUNS 25
#define PAUSE_NS 5000000L /* between bursts: more than a 1 ms delay */

struct policy {
    const char *name;
    unsigned flags, release, delay_ms;
};

static const struct policy policies[] = {
    {"delayed", 0, MYHEAP_RELEASE_DELAYED, 0},
    {"delayed-1ms", 0, MYHEAP_RELEASE_DELAYED, 1},
    {"immediate", 0, MYHEAP_RELEASE_IMMEDIATE, 0},
    {"never", 0, MYHEAP_RELEASE_NEVER, 0},
    {"locked", MYHEAP_LOCKED, MYHEAP_RELEASE_DELAYED, 0},
};

/* Memory in the two states measured. */
struct memory {
    size_t rss, mapped;
};

struct result {
    double ns_pair, ms_burst;
    struct memory live, empty; /* survivors live; all freed */
    size_t peak;
};

static int bursts = 4, runs = 5;
static size_t burst_bytes = (size_t)128 << 20;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void pause_between_bursts(void)
{
    struct timespec ts = {0, PAUSE_NS};
    nanosleep(&ts, NULL);
}

/* xorshift64*: the same sizes and orders on every run and policy. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static size_t rng_below(uint64_t *s, size_t lo, size_t hi)
{
    return lo + (size_t)(rng_next(s) % (hi - lo + 1));
}

static size_t block_size(uint64_t *s)
{
    unsigned pick = (unsigned)(rng_next(s) % 100);
    if (pick < 90)
        return rng_below(s, 16, 1024);
    if (pick < 99)
        return rng_below(s, 1025, 64 << 10);
    return rng_below(s, (64 << 10) + 1, 1 << 20);
}

/* The resident bytes of the process. */
static size_t resident(void)
{
    unsigned long size = 0, pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &pages) != 2)
            pages = 0;
        fclose(f);
    }
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* Room for one burst's blocks and all survivors, made before the baseline
 * is read so that they do not count as the heap's. */
static void **burst_ptrs, **kept;
static size_t burst_cap, kept_cap;

static void shuffle(void **p, size_t n, uint64_t *s)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_next(s) % i);
        void *t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
}

/* One burst; adds the nanoseconds in myheap_alloc/myheap_free to *calls
 * and the allocations to *pairs. False when the heap ran out. */
static bool burst(myheap_t *h, uint64_t *s, size_t *nkept, double *calls, size_t *pairs)
{
    size_t n = 0, bytes = 0;
    double t0 = now_ns();
    while (bytes < burst_bytes && n < burst_cap) {
        size_t size = block_size(s);
        burst_ptrs[n] = myheap_alloc(h, size);
        if (!burst_ptrs[n])
            return false;
        bytes += size;
        n++;
    }
    *calls += now_ns() - t0;
    /* The writes are outside the call timings but inside the burst's. */
    for (size_t i = 0; i < n; i++)
        memset(burst_ptrs[i], (int)i, myheap_usable_size(h, burst_ptrs[i]));
    shuffle(burst_ptrs, n, s);
    size_t keep = n / 16;
    memcpy(kept + *nkept, burst_ptrs, keep * sizeof *kept);
    *nkept += keep;
    t0 = now_ns();
    for (size_t i = keep; i < n; i++)
        myheap_free(h, burst_ptrs[i]);
    *calls += now_ns() - t0;
    *pairs += n;
    return true;
}

/* A pause long enough for a 1 ms delay, then a call on the heap: the
 * delayed releases due happen in it. */
static void pause_and_call(myheap_t *h)
{
    pause_between_bursts();
    myheap_free(h, myheap_alloc(h, 16));
}

static void measure(struct memory *m, size_t rss0)
{
    size_t rss = resident();
    m->rss = rss > rss0 ? rss - rss0 : 0;
    m->mapped = heaps_mapped();
}

/* One run of the workload on a new heap; false (errno set) when the heap
 * cannot be made or runs out, with *why saying which. */
static bool run_once(const char **why, const struct policy *p, struct result *r)
{
    size_t rss0 = resident();
    struct myheap_options o = {.size = sizeof o, .flags = p->flags, .release = p->release,
                               .release_delay_ms = p->delay_ms};
    /* Locked: the whole limit is mapped and locked up front, so it must
     * hold the peak with room for fragmentation. */
    if (p->flags & MYHEAP_LOCKED)
        o.limit = 2 * burst_bytes + (burst_bytes / 16) * (size_t)bursts;
    myheap_t *h = myheap_create(&o);
    *why = "myheap_create";
    if (!h)
        return false;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    size_t nkept = 0, pairs = 0;
    double calls = 0, t0 = now_ns(), paused = 0;
    bool ok = true;
    for (int b = 0; b < bursts && ok; b++) {
        ok = burst(h, &s, &nkept, &calls, &pairs);
        double t1 = now_ns();
        pause_and_call(h);
        paused += now_ns() - t1;
    }
    r->ms_burst = (now_ns() - t0 - paused) / 1e6 / bursts;
    measure(&r->live, rss0);
    size_t allocated, freed;
    myheap_stats(h, &allocated, &freed, &r->peak);
    t0 = now_ns();
    for (size_t i = 0; i < nkept; i++)
        myheap_free(h, kept[i]);
    calls += now_ns() - t0;
    pause_and_call(h);
    measure(&r->empty, rss0);
    r->ns_pair = pairs ? calls / (double)pairs : 0;
    myheap_destroy(h);
    *why = "the heap ran out";
    if (!ok)
        errno = ENOMEM;
    return ok;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

#define NPOLICIES (sizeof policies / sizeof *policies)

/* Run i of every policy in turn, so that a slow moment of a loaded
 * machine touches all of them alike. */
static struct result results[NPOLICIES][MAX_RUNS];
static bool skipped[NPOLICIES];

static void print_policy(size_t k)
{
    if (skipped[k])
        return;
    double v[6][MAX_RUNS];
    for (int i = 0; i < runs; i++) {
        const struct result *r = &results[k][i];
        v[0][i] = r->ns_pair;
        v[1][i] = r->ms_burst;
        v[2][i] = (double)r->live.rss;
        v[3][i] = (double)r->live.mapped;
        v[4][i] = (double)r->empty.rss;
        v[5][i] = (double)r->empty.mapped;
    }
    const double mib = 1 << 20;
    printf("%-12s %8.0f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", policies[k].name,
           median(v[0], runs), median(v[1], runs), median(v[2], runs) / mib,
           median(v[3], runs) / mib, median(v[4], runs) / mib, median(v[5], runs) / mib,
           (double)results[k][0].peak / mib);
}

static void usage(void)
{
    fprintf(stderr, "usage: heappolicy [--policy delayed|delayed-1ms|immediate|never|locked]"
                    " [--runs N] [--bursts N] [--mib N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--policy"))
            only = argv[++i];
        else if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bursts"))
            bursts = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mib"))
            burst_bytes = strtoul(argv[++i], NULL, 10) << 20;
        else
            usage();
    }
    if (runs < 1 || runs > MAX_RUNS || bursts < 1 || bursts > 64 || burst_bytes == 0)
        usage();
    /* Blocks average about 9 KiB: room for 35 times more than a burst
     * takes on average; a burst that fills it stops early. */
    burst_cap = burst_bytes / 256 + 1024;
    kept_cap = burst_cap / 16 * (size_t)bursts + 1;
    burst_ptrs = calloc(burst_cap, sizeof *burst_ptrs);
    kept = calloc(kept_cap, sizeof *kept);
    if (!burst_ptrs || !kept) {
        perror("calloc");
        return 1;
    }
    /* Touched now, so that the baseline holds them. */
    memset(burst_ptrs, 0, burst_cap * sizeof *burst_ptrs);
    memset(kept, 0, kept_cap * sizeof *kept);
    printf("%d bursts of %zu MiB, 15/16 freed each burst; medians of %d runs\n", bursts,
           burst_bytes >> 20, runs);
    printf("%-12s %8s %9s %19s %19s %9s\n", "", "", "", "1/16 live, MiB", "all freed, MiB", "");
    printf("%-12s %8s %9s %9s %9s %9s %9s %9s\n", "policy", "ns/pair", "ms/burst", "resident",
           "mapped", "resident", "mapped", "peak MiB");
    /* Library start-up and the dump's buffers before any baseline. */
    myheap_destroy(myheap_create(NULL));
    heaps_mapped();
    bool chosen[NPOLICIES];
    int done = 0;
    for (size_t k = 0; k < NPOLICIES; k++) {
        chosen[k] = !only || !strcmp(only, policies[k].name);
        done += chosen[k];
    }
    if (!done)
        usage();
    for (int i = 0; i < runs; i++)
        for (size_t k = 0; k < NPOLICIES; k++) {
            const char *why;
            if (!chosen[k] || skipped[k] || run_once(&why, &policies[k], &results[k][i]))
                continue;
            printf("%-12s skipped: %s: %s\n", policies[k].name, why, strerror(errno));
            skipped[k] = true;
        }
    for (size_t k = 0; k < NPOLICIES; k++)
        if (chosen[k])
            print_policy(k);
    return 0;
}
