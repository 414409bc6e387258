/* SPDX-License-Identifier: MIT */
/*
 * private_heaps.c - two uses of libpallocator's private heaps (myheap_*):
 *
 * 1. A heap per request: a server loop parses each request into small
 *    objects and builds its response in one heap, then frees all of it with
 *    one myheap_reset(), however many blocks the request made. Nothing a
 *    request allocates can leak into the next, and a pointer kept by mistake
 *    past the reset is refused by myheap_free() with EINVAL.
 *
 * 2. A real-time heap over a fixed budget: myheap_size_for() gives the size
 *    in which a MYHEAP_POW2_FIT heap never fails for fragmentation, given
 *    the most bytes live at once and the largest request; MYHEAP_LOCKED maps,
 *    touches and locks all of it up front, so the control loop that follows
 *    makes no system call and takes no page fault in the allocator. Where
 *    the process may not lock that much (RLIMIT_MEMLOCK, `ulimit -l`), it
 *    says so and falls back to a heap in a buffer of its own, touched up
 *    front but not locked.
 *
 * Build against an installed library:
 *     cc private_heaps.c -o private_heaps -lpallocator
 * Exits 0 when everything behaved as documented.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <pallocator.h>

static int failures;

static void check(int ok, const char *what)
{
    printf("  [%s] %s\n", ok ? "ok" : "FAILED", what);
    if (!ok)
        failures++;
}

/* ---- 1. a heap per request ------------------------------------------- */

struct param {
    char *key, *value;
    struct param *next;
};

static char *heap_strndup(myheap_t *h, const char *s, size_t n)
{
    char *d = myheap_alloc(h, n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* "k1=v1&k2=v2..." into a list, every node and string in h. */
static struct param *parse_query(myheap_t *h, const char *q)
{
    struct param *head = NULL, **tail = &head;

    while (*q != '\0') {
        size_t len = strcspn(q, "&"), klen = strcspn(q, "=");
        struct param *p = myheap_alloc(h, sizeof(*p));

        if (p == NULL)
            return NULL;
        if (klen > len)
            klen = len;
        p->key = heap_strndup(h, q, klen);
        p->value = heap_strndup(h, q + klen + (klen < len), len - klen - (klen < len));
        if (p->key == NULL || p->value == NULL)
            return NULL;
        p->next = NULL;
        *tail = p;
        tail = &p->next;
        q += len + (q[len] == '&');
    }
    return head;
}

/* Appends to a response that grows with myheap_realloc. */
static int append(myheap_t *h, char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);

    if (*len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap : 64;
        char *nb;

        while (*len + n + 1 > ncap)
            ncap *= 2;
        nb = myheap_realloc(h, *buf, ncap);
        if (nb == NULL)
            return -1; /* *buf is still valid, and still in h */
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
    return 0;
}

/* Handles one request entirely in h and frees nothing itself. */
static char *handle_request(myheap_t *h, const char *query)
{
    struct param *params = parse_query(h, query), *p;
    char *resp = NULL;
    size_t len = 0, cap = 0;

    if (params == NULL && *query != '\0')
        return NULL;
    if (append(h, &resp, &len, &cap, "params:") != 0)
        return NULL;
    for (p = params; p != NULL; p = p->next)
        if (append(h, &resp, &len, &cap, " ") != 0 ||
            append(h, &resp, &len, &cap, p->key) != 0 ||
            append(h, &resp, &len, &cap, "=") != 0 ||
            append(h, &resp, &len, &cap, p->value) != 0)
            return NULL;
    return resp;
}

static void per_request_heap(void)
{
    static const char *const requests[] = {
        "user=ada&lang=en",
        "q=allocators&page=2&per_page=50&sort=recent",
        "",
        "id=42",
    };
    size_t allocated = 0, freed = 0, peak = 0;
    unsigned i, round;
    int reset_ok = 1, stale_refused = 1, emptied = 1;
    /* One thread uses this heap: it needs no lock. */
    struct myheap_options o = { .size = sizeof(o), .flags = MYHEAP_SINGLE_THREAD };
    myheap_t *h = myheap_create(&o);

    printf("\n1. a heap per request, reset after each\n");
    check(h != NULL, "myheap_create made the request heap");
    if (h == NULL) {
        perror("  myheap_create");
        return;
    }
    for (round = 0; round < 250; round++) {
        for (i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
            char *resp = handle_request(h, requests[i]);

            if (resp == NULL) {
                perror("  handle_request");
                failures++;
                break;
            }
            if (round == 0)
                printf("  request \"%s\" -> \"%s\"\n", requests[i], resp);
            /* Every block of the request goes at once, however many. */
            reset_ok &= myheap_reset(h) == 0;
            /* Until the heap hands the address out again, the old
             * response is refused, not freed a second time. */
            errno = 0;
            stale_refused &= myheap_free(h, resp) == -1 && errno == EINVAL;
            myheap_stats(h, &allocated, &freed, &peak);
            emptied &= allocated == 0;
        }
    }
    check(reset_ok, "myheap_reset freed every request's blocks in one call");
    check(emptied, "nothing stayed allocated after a reset");
    check(stale_refused, "a response kept past its reset is refused with EINVAL");
    printf("  peak of the heap over 1000 requests: %zu bytes; free now: %zu bytes\n",
           peak, freed);
    check(myheap_verify(h) == 0, "myheap_verify finds the heap sound");
    check(myheap_destroy(h) == 0, "myheap_destroy gave the heap's memory back");
}

/* ---- 2. a real-time heap over a fixed budget ---------------------------- */

#define RT_PEAK (64 * 1024) /* most bytes live at once, each request >= 16 */
#define RT_LARGEST 1024     /* largest request */
#define RT_SLOTS 4096
#define RT_STEPS 200000

struct rt_msg {
    unsigned char *p;
    size_t size;
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

static long minor_faults(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_minflt : -1;
}

/* The budget as the heap counts it: requests under 16 bytes count as 16. */
static size_t counted(size_t size)
{
    return size < 16 ? 16 : size;
}

/* A control loop's traffic: messages of 1 to RT_LARGEST bytes, the oldest
 * freed while a new one would take the live bytes past RT_PEAK. Each message
 * carries a pattern checked before it is freed. Returns the failed requests
 * (none, by myheap_size_for's bound) and counts damaged messages. */
static unsigned long rt_loop(myheap_t *h, unsigned long steps, unsigned long *damaged)
{
    static struct rt_msg ring[RT_SLOTS];
    size_t head = 0, tail = 0, live = 0, k;
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    unsigned long step, failed = 0;

    for (step = 0; step < steps; step++) {
        size_t size = 1 + (size_t)(next_rand(&rng) % RT_LARGEST);
        unsigned char *p;

        while (live + counted(size) > RT_PEAK || head - tail == RT_SLOTS) {
            struct rt_msg *m = &ring[tail++ % RT_SLOTS];
            for (k = 0; k < m->size; k++)
                if (m->p[k] != (unsigned char)(m->size + k)) {
                    ++*damaged;
                    break;
                }
            if (myheap_free(h, m->p) != 0)
                ++*damaged;
            live -= counted(m->size);
        }
        p = myheap_alloc(h, size);
        if (p == NULL) {
            failed++;
            continue;
        }
        for (k = 0; k < size; k++)
            p[k] = (unsigned char)(size + k);
        ring[head % RT_SLOTS] = (struct rt_msg){ p, size };
        head++;
        live += counted(size);
    }
    while (tail != head) {
        if (myheap_free(h, ring[tail++ % RT_SLOTS].p) != 0)
            ++*damaged;
    }
    return failed;
}

static void realtime_heap(void)
{
    size_t budget = myheap_size_for(RT_PEAK, RT_LARGEST);
    struct myheap_options o = { .size = sizeof(o) };
    unsigned long failed, damaged = 0;
    void *buf = NULL;
    myheap_t *h;
    long faults;
    int locked = 1;

    printf("\n2. a real-time heap over a fixed budget\n");
    check(budget != 0, "myheap_size_for gave a budget");
    if (budget == 0)
        return;
    printf("  %d bytes live at most, requests up to %d bytes: a budget of %zu bytes\n",
           RT_PEAK, RT_LARGEST, budget);

    o.limit = budget;
    o.flags = MYHEAP_LOCKED | MYHEAP_POW2_FIT;
    h = myheap_create(&o);
    if (h == NULL && (errno == EPERM || errno == ENOMEM || errno == EAGAIN)) {
        struct rlimit rl;
        int e = errno;

        locked = 0;
        printf("  no locked heap: mlock refused %zu bytes (%s)", budget, strerror(e));
        if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
            printf("; RLIMIT_MEMLOCK is %llu bytes (ulimit -l)",
                   (unsigned long long)rl.rlim_cur);
        printf(".\n  Falling back to a heap in a buffer of our own, touched now but"
               " not locked:\n  its calls make no system call, but the kernel may"
               " page the buffer out.\n");
        buf = mmap(NULL, budget, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (buf == MAP_FAILED) {
            perror("  mmap");
            failures++;
            return;
        }
        memset(buf, 0, budget); /* every page touched before the loop */
        h = myheap_create_in(buf, budget, MYHEAP_POW2_FIT);
    }
    check(h != NULL, locked ? "myheap_create made a locked heap of that budget"
                            : "myheap_create_in made a heap in the buffer");
    if (h == NULL) {
        perror("  creating the heap");
        if (buf != NULL)
            munmap(buf, budget);
        return;
    }

    /* A first pass brings the loop's own code and stack in; the timed pass
     * then counts what the heap costs. */
    failed = rt_loop(h, RT_STEPS / 10, &damaged);
    faults = minor_faults();
    failed += rt_loop(h, RT_STEPS, &damaged);
    faults = minor_faults() - faults;

    check(failed == 0, "no request failed: the budget cannot fragment");
    check(damaged == 0, "every message kept its contents and was freed");
    printf("  page faults in %d allocations and frees: %ld\n", RT_STEPS, faults);
    if (faults != 0)
        printf("  (the process counts them all: the heap's are the ones the heap\n"
               "  promises to spare; lock the rest with mlockall(2))\n");
    check(myheap_verify(h) == 0, "myheap_verify finds the heap sound");
    check(myheap_destroy(h) == 0, "myheap_destroy ended the heap");
    if (buf != NULL)
        munmap(buf, budget); /* after the destroy: the buffer is ours again */
}

int main(void)
{
    printf("libpallocator %d.%d.%d private heaps demo\n", PALLOCATOR_VERSION_MAJOR,
           PALLOCATOR_VERSION_MINOR, PALLOCATOR_VERSION_PATCH);
    per_request_heap();
    realtime_heap();
    printf("\n%s\n", failures ? "SOME CHECKS FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
