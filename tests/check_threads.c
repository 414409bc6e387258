/*
 * check_threads.c - libpallocator with concurrency enabled: many threads,
 * blocks freed by other threads, concurrent double frees, threads that exit
 * with live blocks, many short threads, fork() from a threaded parent, and
 * the introspection calls while other threads allocate.
 *
 * Only <pallocator.h> is used.  Helper threads never call ck_assert (Check
 * assertions are only safe in the test's own thread): they record the first
 * failure, and the test asserts after joining them.  Every test leaves the
 * allocator cleaned up, so the suite also passes with CK_FORK=no.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pallocator.h>

#define TEST_FULL_FILL_LIMIT ((size_t)16 << 10)
#define TEST_EDGE_FILL ((size_t)2048)
#include "testutil.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)


/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

/* The first failure seen by a helper thread, asserted by the test later. */
struct failure {
    atomic_ulong count;
    pthread_mutex_t mu;
    char msg[256];
};

#define FAILURE_INIT { 0, PTHREAD_MUTEX_INITIALIZER, "" }

static void fail_note(struct failure *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fail_note(struct failure *f, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&f->mu);
    if (atomic_fetch_add(&f->count, 1) == 0) {
        va_start(ap, fmt);
        vsnprintf(f->msg, sizeof f->msg, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&f->mu);
}

static void assert_no_failure(struct failure *f)
{
    ck_assert_msg(atomic_load(&f->count) == 0, "%lu failure(s) in threads, first: %s",
                  (unsigned long)atomic_load(&f->count), f->msg);
}

/* Mostly small, some medium, rarely large (own mapping). */
static size_t random_size(uint64_t *rng)
{
    size_t r = test_rand_below(rng, 1000);
    if (r < 850)
        return test_rand_below(rng, 257);
    if (r < 998)
        return 257 + test_rand_below(rng, 16 * KiB);
    return MiB + test_rand_below(rng, MiB / 2);
}

static size_t stats_allocated(void)
{
    size_t a = SIZE_MAX;
    ck_assert_int_eq(allocator_stats(&a, NULL, NULL), 0);
    return a;
}

/*
 * Blocks passed between threads through a shared array: each begins with
 * its requested size, and the rest holds the address pattern.
 */
#define XSLOTS 64
static _Atomic(unsigned char *) xslots[XSLOTS];

static unsigned char *xblock_new(size_t n)
{
    unsigned char *p = myalloc(n);
    if (p) {
        memcpy(p, &n, sizeof n);
        block_fill(p + 16, n - 16);
    }
    return p;
}

/* Checks and frees a block made by xblock_new in any thread. */
static void xblock_release(unsigned char *p, struct failure *f)
{
    size_t n;
    int r, e;
    memcpy(&n, p, sizeof n);
    if (n < 32 || n > 64 * KiB) {
        fail_note(f, "shared block %p has a corrupt size word %zu", (void *)p, n);
        return;
    }
    if (myalloc_usable_size(p) < n)
        fail_note(f, "shared block %p: usable %zu < %zu", (void *)p, myalloc_usable_size(p), n);
    if (!block_ok(p + 16, n - 16))
        fail_note(f, "shared block %p (%zu bytes) overwritten", (void *)p, n);
    errno = 0;
    r = myfree(p);
    e = errno;
    if (r != 0)
        fail_note(f, "myfree(shared block %p) = %d errno %d", (void *)p, r, e);
}

static void xslots_drain(struct failure *f)
{
    for (int i = 0; i < XSLOTS; i++) {
        unsigned char *p = atomic_exchange(&xslots[i], NULL);
        if (p)
            xblock_release(p, f);
    }
}

/* A thread that allocates, checks, reallocates and frees at random. */
struct churn {
    pthread_t tid;
    uint64_t seed;
    size_t max_ops;     /* 0: run until *stop */
    atomic_int *stop;
    int cross;          /* also trade blocks with other threads */
    size_t ops;
    atomic_int running; /* set once the thread has done its first operation */
    struct failure *fail;
};

#define LSLOTS 96

static void *churn_main(void *arg)
{
    struct churn *w = arg;
    struct {
        unsigned char *p;
        size_t n;
    } b[LSLOTS];
    uint64_t rng = w->seed;

    memset(b, 0, sizeof b);
    for (w->ops = 0; w->max_ops ? w->ops < w->max_ops : !atomic_load(w->stop); w->ops++) {
        size_t k = test_rand_below(&rng, LSLOTS), r = test_rand_below(&rng, 100);
        if (w->ops == 1)
            atomic_store(&w->running, 1);
        if (atomic_load(&w->fail->count))
            break;
        if (w->cross && r < 12) {
            unsigned char *q = xblock_new(32 + test_rand_below(&rng, 4000)), *old;
            if (!q) {
                fail_note(w->fail, "myalloc for a shared block failed");
                break;
            }
            old = atomic_exchange(&xslots[test_rand_below(&rng, XSLOTS)], q);
            if (old)
                xblock_release(old, w->fail);
        } else if (!b[k].p) {
            size_t s = random_size(&rng);
            b[k].p = myalloc(s);
            if (!b[k].p || !is_aligned(b[k].p) || myalloc_usable_size(b[k].p) < s) {
                fail_note(w->fail, "myalloc(%zu) = %p (usable %zu)", s, (void *)b[k].p,
                          b[k].p ? myalloc_usable_size(b[k].p) : 0);
                b[k].p = NULL;
                break;
            }
            b[k].n = s;
            block_fill(b[k].p, s);
        } else if (r < 60) {
            int rc;
            if (!block_ok(b[k].p, b[k].n))
                fail_note(w->fail, "block %p (%zu bytes) overwritten", (void *)b[k].p, b[k].n);
            rc = myfree(b[k].p);
            if (rc != 0)
                fail_note(w->fail, "myfree(own block %p) = %d", (void *)b[k].p, rc);
            b[k].p = NULL;
        } else {
            size_t s = random_size(&rng), keep = s < b[k].n ? s : b[k].n;
            unsigned char *q;
            if (!block_ok(b[k].p, b[k].n))
                fail_note(w->fail, "block %p (%zu bytes) overwritten", (void *)b[k].p, b[k].n);
            q = myrealloc(b[k].p, s);
            if (!q || !is_aligned(q) || myalloc_usable_size(q) < s) {
                fail_note(w->fail, "myrealloc(%p, %zu) = %p", (void *)b[k].p, s, (void *)q);
                if (!q)
                    continue;
            } else if (!moved_ok(q, b[k].p, b[k].n, keep)) {
                fail_note(w->fail, "myrealloc(%zu -> %zu) lost contents", b[k].n, s);
            }
            b[k].p = q;
            b[k].n = s;
            block_fill(q, s);
        }
    }
    for (int k = 0; k < LSLOTS; k++) {
        if (!b[k].p)
            continue;
        if (!block_ok(b[k].p, b[k].n))
            fail_note(w->fail, "block %p (%zu bytes) overwritten", (void *)b[k].p, b[k].n);
        if (myfree(b[k].p) != 0)
            fail_note(w->fail, "final myfree(%p) failed", (void *)b[k].p);
    }
    return NULL;
}

static void churn_start(struct churn *w, int n, size_t max_ops, int cross, atomic_int *stop,
                        struct failure *f)
{
    for (int i = 0; i < n; i++) {
        w[i].seed = 0x1000 + 7919 * (uint64_t)i;
        w[i].max_ops = max_ops;
        w[i].stop = stop;
        w[i].cross = cross;
        w[i].fail = f;
        ck_assert_int_eq(pthread_create(&w[i].tid, NULL, churn_main, &w[i]), 0);
    }
}

static void churn_join(struct churn *w, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(pthread_join(w[i].tid, NULL), 0);
}

/* All allocated blocks are gone: nothing is counted and the heap is sound. */
static void assert_heap_empty(void)
{
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_uint_eq(stats_allocated(), 0);
}

static long read_vmrss_kb(void)
{
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY);
    ssize_t n;
    const char *s;
    ck_assert(fd >= 0);
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    ck_assert(n > 0);
    buf[n] = '\0';
    s = strstr(buf, "VmRSS:");
    ck_assert_ptr_nonnull(s);
    return strtol(s + 6, NULL, 10);
}

/* Valgrind and the sanitizers keep their own per-thread and shadow memory,
 * so the process's RSS says nothing about the allocator there. */
static int rss_meaningful(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return 0;
#else
    const char *pre = getenv("LD_PRELOAD");
    return !(pre && strstr(pre, "vgpreload"));
#endif
}

static size_t count_maps(void)
{
    static char buf[4 << 20];
    int fd = open("/proc/self/maps", O_RDONLY);
    size_t n = 0, lines = 0;
    ssize_t r;
    ck_assert(fd >= 0);
    while (n < sizeof buf && (r = read(fd, buf + n, sizeof buf - n)) > 0)
        n += (size_t)r;
    close(fd);
    for (size_t i = 0; i < n; i++)
        lines += buf[i] == '\n';
    return lines;
}

static void setup(void)
{
    allocator_cleanup();
    ck_assert_int_eq(allocator_init(1), 0);
    for (int i = 0; i < XSLOTS; i++)
        atomic_store(&xslots[i], NULL);
}

static void teardown(void)
{
    allocator_cleanup();
}

/* ------------------------------------------------------------------ */
/* Many threads on their own blocks                                     */
/* ------------------------------------------------------------------ */

START_TEST(test_many_threads)
{
    enum { NT = 8 };
    struct churn w[NT];
    struct failure fail = FAILURE_INIT;
    atomic_int stop = 0;

    memset(w, 0, sizeof w);
    churn_start(w, NT, test_scale(60000), 0, &stop, &fail);
    churn_join(w, NT);
    assert_no_failure(&fail);
    for (int i = 0; i < NT; i++)
        ck_assert_uint_eq(w[i].ops, test_scale(60000));
    assert_heap_empty();

    /* Again, this time trading blocks between the threads as well. */
    churn_start(w, NT, test_scale(60000), 1, &stop, &fail);
    churn_join(w, NT);
    xslots_drain(&fail);
    assert_no_failure(&fail);
    assert_heap_empty();
}
END_TEST

/* ------------------------------------------------------------------ */
/* Producers and consumers                                              */
/* ------------------------------------------------------------------ */

#define QCAP 256

struct item {
    unsigned char *p;
    size_t n;
};

struct pc_queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    struct item buf[QCAP];
    size_t head, count;
    size_t per_producer;
    atomic_size_t produced, consumed;
    struct failure *fail;
};

static void queue_push(struct pc_queue *q, struct item it)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == QCAP)
        pthread_cond_wait(&q->not_full, &q->mu);
    q->buf[(q->head + q->count) % QCAP] = it;
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

static struct item queue_pop(struct pc_queue *q)
{
    struct item it;
    pthread_mutex_lock(&q->mu);
    while (q->count == 0)
        pthread_cond_wait(&q->not_empty, &q->mu);
    it = q->buf[q->head];
    q->head = (q->head + 1) % QCAP;
    q->count--;
    pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->mu);
    return it;
}

struct pc_arg {
    struct pc_queue *q;
    uint64_t seed;
};

static void *producer_main(void *arg)
{
    struct pc_arg *a = arg;
    uint64_t rng = a->seed;
    for (size_t i = 0; i < a->q->per_producer; i++) {
        struct item it;
        it.n = random_size(&rng);
        it.p = myalloc(it.n);
        if (!it.p) {
            fail_note(a->q->fail, "producer: myalloc(%zu) failed", it.n);
            break;
        }
        block_fill(it.p, it.n);
        queue_push(a->q, it);
        atomic_fetch_add(&a->q->produced, 1);
    }
    return NULL;
}

static void *consumer_main(void *arg)
{
    struct pc_arg *a = arg;
    for (;;) {
        struct item it = queue_pop(a->q);
        int r, e;
        if (!it.p)
            break;
        if (myalloc_usable_size(it.p) < it.n)
            fail_note(a->q->fail, "consumer: usable size of %p < %zu", (void *)it.p, it.n);
        if (!block_ok(it.p, it.n))
            fail_note(a->q->fail, "consumer: block %p (%zu bytes) overwritten",
                      (void *)it.p, it.n);
        errno = 0;
        r = myfree(it.p);
        e = errno;
        if (r != 0)
            fail_note(a->q->fail, "consumer: remote myfree(%p) = %d errno %d",
                      (void *)it.p, r, e);
        atomic_fetch_add(&a->q->consumed, 1);
    }
    return NULL;
}

START_TEST(test_producer_consumer)
{
    enum { NP = 4, NC = 4 };
    struct failure fail = FAILURE_INIT;
    struct pc_queue q;
    struct pc_arg pa[NP], ca[NC];
    pthread_t pt[NP], ct[NC];
    void *x;

    memset(&q, 0, sizeof q);
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.not_empty, NULL);
    pthread_cond_init(&q.not_full, NULL);
    q.per_producer = test_scale(30000);
    q.fail = &fail;
    for (int i = 0; i < NC; i++) {
        ca[i].q = &q;
        ca[i].seed = 0;
        ck_assert_int_eq(pthread_create(&ct[i], NULL, consumer_main, &ca[i]), 0);
    }
    for (int i = 0; i < NP; i++) {
        pa[i].q = &q;
        pa[i].seed = 31337 + (uint64_t)i;
        ck_assert_int_eq(pthread_create(&pt[i], NULL, producer_main, &pa[i]), 0);
    }
    for (int i = 0; i < NP; i++)
        ck_assert_int_eq(pthread_join(pt[i], NULL), 0);
    for (int i = 0; i < NC; i++)
        queue_push(&q, (struct item){ NULL, 0 });
    for (int i = 0; i < NC; i++)
        ck_assert_int_eq(pthread_join(ct[i], NULL), 0);
    assert_no_failure(&fail);
    ck_assert_uint_eq(atomic_load(&q.produced), NP * q.per_producer);
    ck_assert_uint_eq(atomic_load(&q.consumed), NP * q.per_producer);

    /* Remote frees not yet taken back do not count as allocated. */
    x = myalloc(64);
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(myfree(x), 0);
    assert_heap_empty();
    pthread_mutex_destroy(&q.mu);
    pthread_cond_destroy(&q.not_empty);
    pthread_cond_destroy(&q.not_full);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Remote frees while the owner is alive                                */
/* ------------------------------------------------------------------ */

struct owner_arg {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int phase; /* 0: allocate, 1: allocated, 2: take back and exit */
    size_t n;
    unsigned char **blocks;
    size_t usable;
    struct failure *fail;
};

static void *owner_main(void *arg)
{
    struct owner_arg *o = arg;
    void *x;
    for (size_t i = 0; i < o->n; i++) {
        size_t s = 16 + (i * 37) % 3000;
        o->blocks[i] = myalloc(s);
        if (!o->blocks[i]) {
            fail_note(o->fail, "owner: myalloc failed");
            continue;
        }
        test_fill(o->blocks[i], s);
        o->usable += myalloc_usable_size(o->blocks[i]);
    }
    pthread_mutex_lock(&o->mu);
    o->phase = 1;
    pthread_cond_broadcast(&o->cv);
    while (o->phase != 2)
        pthread_cond_wait(&o->cv, &o->mu);
    pthread_mutex_unlock(&o->mu);
    /* The owner allocates again: it may take the remote frees back now. */
    for (int i = 0; i < 100; i++) {
        x = myalloc(16 + (size_t)i * 8);
        if (!x || myfree(x) != 0)
            fail_note(o->fail, "owner: alloc/free after remote frees failed");
    }
    return NULL;
}

START_TEST(test_remote_free_owner_alive)
{
    struct failure fail = FAILURE_INIT;
    struct owner_arg o;
    pthread_t t;
    size_t a0, a1;
    unsigned char *moved;

    memset(&o, 0, sizeof o);
    pthread_mutex_init(&o.mu, NULL);
    pthread_cond_init(&o.cv, NULL);
    o.n = test_scale(2000);
    o.blocks = calloc(o.n, sizeof *o.blocks);
    o.fail = &fail;
    ck_assert_ptr_nonnull(o.blocks);
    ck_assert_int_eq(pthread_create(&t, NULL, owner_main, &o), 0);
    pthread_mutex_lock(&o.mu);
    while (o.phase != 1)
        pthread_cond_wait(&o.cv, &o.mu);
    pthread_mutex_unlock(&o.mu);
    assert_no_failure(&fail);

    a0 = stats_allocated();
    ck_assert_uint_eq(a0, o.usable);
    /* Block 0 is resized by this thread (not its owner), contents kept. */
    moved = myrealloc(o.blocks[0], 100000);
    ck_assert_ptr_nonnull(moved);
    ck_assert(moved_ok(moved, o.blocks[0], 16, 16));
    ck_assert_int_eq(myfree(moved), 0);
    /* Free the rest remotely: allocated drops at once. */
    for (size_t i = 1; i < o.n; i++) {
        size_t s = 16 + (i * 37) % 3000;
        ck_assert_msg(test_check_fill(o.blocks[i], s), "block %zu overwritten", i);
        ck_assert_int_eq(myfree(o.blocks[i]), 0);
    }
    a1 = stats_allocated();
    ck_assert_msg(a1 == 0, "after freeing every block remotely, allocated = %zu (was %zu)",
                  a1, a0);
    /* Double frees of blocks waiting in the owner's hand-over list. */
    for (size_t i = 1; i < o.n; i += 97) {
        errno = 0;
        ck_assert_msg(myfree(o.blocks[i]) == -1 && errno == EINVAL,
                      "second free of remotely freed block %zu not rejected", i);
        errno = 0;
        ck_assert_msg(myalloc_usable_size(o.blocks[i]) == 0 && errno == EINVAL,
                      "usable size of remotely freed block %zu not rejected", i);
    }
    ck_assert_int_eq(allocator_verify(), 0);

    pthread_mutex_lock(&o.mu);
    o.phase = 2;
    pthread_cond_broadcast(&o.cv);
    pthread_mutex_unlock(&o.mu);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    assert_no_failure(&fail);
    assert_heap_empty();
    for (size_t i = 1; i < o.n; i += 97) {
        errno = 0;
        ck_assert(myfree(o.blocks[i]) == -1 && errno == EINVAL);
    }
    free(o.blocks);
    pthread_mutex_destroy(&o.mu);
    pthread_cond_destroy(&o.cv);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Blocks freed by another thread go home                               */
/* ------------------------------------------------------------------ */

#define REUSE_BLOCKS 200
#define REUSE_SIZE ((size_t)40)

struct reuse_arg {
    pthread_barrier_t allocated, freed;
    unsigned char *blocks[REUSE_BLOCKS]; /* the owner's first blocks */
    unsigned char *again[REUSE_BLOCKS];  /* its blocks after the remote frees */
    int reused;                          /* how many of again[] are in blocks[] */
    struct failure *fail;
};

static bool reuse_is_first(const struct reuse_arg *r, const void *p)
{
    for (int i = 0; i < REUSE_BLOCKS; i++)
        if (r->blocks[i] == p)
            return true;
    return false;
}

/* Fills blocks[] with REUSE_SIZE-byte blocks set to fill; false (noted)
 * when an allocation fails. */
static bool reuse_alloc_all(struct reuse_arg *r, unsigned char **blocks, unsigned char fill)
{
    for (int i = 0; i < REUSE_BLOCKS; i++) {
        blocks[i] = myalloc(REUSE_SIZE);
        if (!blocks[i]) {
            fail_note(r->fail, "owner: myalloc(%zu) failed", REUSE_SIZE);
            return false;
        }
        memset(blocks[i], fill, REUSE_SIZE);
    }
    return true;
}

/* Allocates blocks, lets the main thread free them, allocates the same
 * sizes again (leaving them live) and exits. */
static void *reuse_owner(void *arg)
{
    struct reuse_arg *r = arg;
    if (!reuse_alloc_all(r, r->blocks, 0x11))
        return NULL;
    pthread_barrier_wait(&r->allocated);
    pthread_barrier_wait(&r->freed);
    if (!reuse_alloc_all(r, r->again, 0x44))
        return NULL;
    for (int i = 0; i < REUSE_BLOCKS; i++)
        r->reused += reuse_is_first(r, r->again[i]);
    return NULL;
}

/* A thread that frees another thread's small blocks is never handed them
 * for its own requests (their cache lines hold the owner's objects: that
 * would be passive false sharing); the owner takes them back and serves
 * its next requests with them. Counts stay exact throughout, and the
 * owner's blocks stay valid after it exits. */
START_TEST(test_remote_freed_blocks_go_home)
{
    struct failure fail = FAILURE_INIT;
    struct reuse_arg r;
    unsigned char *mine[REUSE_BLOCKS];
    pthread_t t;
    size_t usable;

    memset(&r, 0, sizeof r);
    r.fail = &fail;
    pthread_barrier_init(&r.allocated, NULL, 2);
    pthread_barrier_init(&r.freed, NULL, 2);
    ck_assert_int_eq(pthread_create(&t, NULL, reuse_owner, &r), 0);
    pthread_barrier_wait(&r.allocated);
    assert_no_failure(&fail);
    usable = myalloc_usable_size(r.blocks[0]);
    ck_assert_uint_ge(usable, REUSE_SIZE);
    for (int i = 0; i < REUSE_BLOCKS; i++) {
        ck_assert(test_all_bytes(r.blocks[i], REUSE_SIZE, 0x11));
        ck_assert_int_eq(myfree(r.blocks[i]), 0);
    }
    for (int i = 0; i < REUSE_BLOCKS; i++) {
        mine[i] = myalloc(REUSE_SIZE);
        ck_assert_ptr_nonnull(mine[i]);
        ck_assert_msg(!reuse_is_first(&r, mine[i]),
                      "block %p freed for its owner was handed to the freeing thread",
                      (void *)mine[i]);
        memset(mine[i], 0x22, REUSE_SIZE);
    }
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_uint_eq(stats_allocated(), REUSE_BLOCKS * usable);

    pthread_barrier_wait(&r.freed);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    assert_no_failure(&fail);
    ck_assert_msg(r.reused >= REUSE_BLOCKS / 2,
                  "the owner got only %d of its %d freed blocks back", r.reused, REUSE_BLOCKS);
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_uint_eq(stats_allocated(), 2 * REUSE_BLOCKS * usable);
    for (int i = 0; i < REUSE_BLOCKS; i++) {
        ck_assert_msg(test_all_bytes(mine[i], REUSE_SIZE, 0x22), "block %d overwritten", i);
        ck_assert_msg(test_all_bytes(r.again[i], REUSE_SIZE, 0x44),
                      "block %d of the exited owner overwritten", i);
        ck_assert_int_eq(myfree(mine[i]), 0);
        ck_assert_int_eq(myfree(r.again[i]), 0);
        errno = 0;
        ck_assert_msg(myfree(r.again[i]) == -1 && errno == EINVAL,
                      "double free of block %d of the exited owner accepted", i);
    }
    assert_heap_empty();
    pthread_barrier_destroy(&r.allocated);
    pthread_barrier_destroy(&r.freed);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Concurrent double free                                               */
/* ------------------------------------------------------------------ */

#define DF_THREADS 7

struct df_shared {
    pthread_barrier_t start, done;
    _Atomic(void *) ptr;
    atomic_int quit;
    int result[DF_THREADS + 1];
    int err[DF_THREADS + 1];
};

struct df_arg {
    struct df_shared *sh;
    int idx;
};

static void *df_main(void *arg)
{
    struct df_arg *a = arg;
    struct df_shared *sh = a->sh;
    for (;;) {
        pthread_barrier_wait(&sh->start);
        if (atomic_load(&sh->quit))
            break;
        errno = 0;
        sh->result[a->idx] = myfree(atomic_load(&sh->ptr));
        sh->err[a->idx] = errno;
        pthread_barrier_wait(&sh->done);
    }
    return NULL;
}

START_TEST(test_concurrent_double_free)
{
    struct df_shared sh;
    struct df_arg args[DF_THREADS];
    pthread_t t[DF_THREADS];
    const size_t rounds = test_scale(3000);
    uint64_t rng = 99;
    char msg[256] = "";
    size_t bad_rounds = 0;

    memset(&sh, 0, sizeof sh);
    ck_assert_int_eq(pthread_barrier_init(&sh.start, NULL, DF_THREADS + 1), 0);
    ck_assert_int_eq(pthread_barrier_init(&sh.done, NULL, DF_THREADS + 1), 0);
    for (int i = 0; i < DF_THREADS; i++) {
        args[i].sh = &sh;
        args[i].idx = i;
        ck_assert_int_eq(pthread_create(&t[i], NULL, df_main, &args[i]), 0);
    }
    for (size_t r = 0; r < rounds; r++) {
        size_t s = (r % 25 == 0) ? MiB + 4096 : test_rand_below(&rng, 2000);
        void *p = myalloc(s);
        int zeros = 0, others_ok = 1;
        if (!p) {
            snprintf(msg, sizeof msg, "round %zu: myalloc(%zu) failed", r, s);
            bad_rounds++;
            break;
        }
        atomic_store(&sh.ptr, p);
        pthread_barrier_wait(&sh.start);
        errno = 0;
        sh.result[DF_THREADS] = myfree(p); /* the owner joins in */
        sh.err[DF_THREADS] = errno;
        pthread_barrier_wait(&sh.done);
        for (int i = 0; i <= DF_THREADS; i++) {
            if (sh.result[i] == 0)
                zeros++;
            else if (sh.result[i] != -1 || sh.err[i] != EINVAL)
                others_ok = 0;
        }
        if (zeros != 1 || !others_ok) {
            if (!bad_rounds)
                snprintf(msg, sizeof msg,
                         "round %zu (size %zu): %d frees succeeded, others ok %d",
                         r, s, zeros, others_ok);
            bad_rounds++;
        }
    }
    atomic_store(&sh.quit, 1);
    pthread_barrier_wait(&sh.start);
    for (int i = 0; i < DF_THREADS; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&sh.start);
    pthread_barrier_destroy(&sh.done);
    ck_assert_msg(bad_rounds == 0, "%zu bad rounds, first: %s", bad_rounds, msg);
    assert_heap_empty();
}
END_TEST

/* ------------------------------------------------------------------ */
/* The first free from another thread                                   */
/* ------------------------------------------------------------------ */

/*
 * Until another thread frees one of its blocks, a heap's owner updates the
 * live marks without atomic operations; the first such free brings the owner
 * to rest before it claims a bit, and from then on the owner's updates are
 * atomic too. Each round starts a fresh allocator, so the owner's heap is
 * private again, and races that first remote free and a few more against
 * the owner. In even rounds the owner keeps freeing and allocating blocks
 * whose live marks share words with the victims': a lost update would leave
 * a victim live, or one of the owner's blocks dead. In odd rounds the owner
 * frees the victims itself at the same time, and for each victim exactly
 * one of the two frees may succeed.
 */
#define FR_BLOCKS 64
#define FR_VICTIMS (FR_BLOCKS / 4)
#define FR_SIZE 16

struct fr_round {
    pthread_barrier_t go;
    unsigned char *blocks[FR_BLOCKS]; /* the owner's live blocks */
    unsigned char *victims[FR_VICTIMS];
    int both_free;
    int owner_result[FR_VICTIMS], owner_err[FR_VICTIMS];
    int remote_result[FR_VICTIMS], remote_err[FR_VICTIMS];
    struct failure *fail;
};

static unsigned char *fr_new_block(struct fr_round *r)
{
    unsigned char *p = myalloc(FR_SIZE);
    if (p)
        test_fill(p, FR_SIZE);
    else
        fail_note(r->fail, "myalloc(%d) failed", FR_SIZE);
    return p;
}

static void fr_owner_churn(struct fr_round *r)
{
    for (int k = 0; k < 16 * FR_BLOCKS; k++) {
        int i = k % FR_BLOCKS;
        if (!r->blocks[i])
            continue;
        if (!test_check_fill(r->blocks[i], FR_SIZE))
            fail_note(r->fail, "owner's block %p overwritten", (void *)r->blocks[i]);
        if (myfree(r->blocks[i]) != 0)
            fail_note(r->fail, "owner's free of its live block %p failed", (void *)r->blocks[i]);
        r->blocks[i] = fr_new_block(r);
    }
}

static void fr_free_victims(struct fr_round *r, int *result, int *err)
{
    for (int v = 0; v < FR_VICTIMS; v++) {
        errno = 0;
        result[v] = myfree(r->victims[v]);
        err[v] = errno;
    }
}

static void *fr_owner(void *arg)
{
    struct fr_round *r = arg;
    /* Blocks of one fresh slab, side by side: their bits share words. */
    for (int i = 0; i < FR_BLOCKS; i++)
        r->blocks[i] = fr_new_block(r);
    for (int v = 0; v < FR_VICTIMS; v++) {
        r->victims[v] = r->blocks[4 * v + 2];
        r->blocks[4 * v + 2] = NULL;
    }
    pthread_barrier_wait(&r->go);
    if (r->both_free)
        fr_free_victims(r, r->owner_result, r->owner_err);
    else
        fr_owner_churn(r);
    return NULL;
}

static void *fr_remote(void *arg)
{
    struct fr_round *r = arg;
    pthread_barrier_wait(&r->go);
    fr_free_victims(r, r->remote_result, r->remote_err);
    return NULL;
}

/* After the round: the owner's blocks are intact and live, a victim is live
 * only where the owner was handed its memory again, and the frees of the
 * victims gave the answers the round allows. */
static void fr_check_round(const struct fr_round *r, size_t round)
{
    for (int i = 0; i < FR_BLOCKS; i++) {
        if (!r->blocks[i])
            continue;
        ck_assert_msg(myalloc_usable_size(r->blocks[i]) >= FR_SIZE,
                      "round %zu: owner's block %p is not live", round, (void *)r->blocks[i]);
        ck_assert_msg(test_check_fill(r->blocks[i], FR_SIZE), "round %zu: block %p overwritten",
                      round, (void *)r->blocks[i]);
    }
    for (int v = 0; v < FR_VICTIMS; v++) {
        int reused = 0;
        for (int i = 0; i < FR_BLOCKS; i++)
            reused |= r->blocks[i] == r->victims[v];
        if (!reused)
            ck_assert_msg(myalloc_usable_size(r->victims[v]) == 0,
                          "round %zu: freed victim %p is still live", round,
                          (void *)r->victims[v]);
        if (r->both_free) {
            int winners = (r->owner_result[v] == 0) + (r->remote_result[v] == 0);
            int loser_err = r->owner_result[v] == 0 ? r->remote_err[v] : r->owner_err[v];
            ck_assert_msg(winners == 1 && loser_err == EINVAL,
                          "round %zu: %d of two frees of victim %d succeeded", round, winners, v);
        } else {
            ck_assert_msg(r->remote_result[v] == 0, "round %zu: remote free %d failed (errno %d)",
                          round, v, r->remote_err[v]);
        }
    }
    ck_assert_int_eq(allocator_verify(), 0);
}

START_TEST(test_first_remote_free_races_owner)
{
    const size_t rounds = test_scale(400);
    struct failure fail = FAILURE_INIT;
    for (size_t round = 0; round < rounds; round++) {
        struct fr_round r;
        pthread_t owner, remote;
        memset(&r, 0, sizeof r);
        r.both_free = (int)(round & 1);
        r.fail = &fail;
        allocator_cleanup();
        ck_assert_int_eq(allocator_init(1), 0);
        ck_assert_int_eq(pthread_barrier_init(&r.go, NULL, 2), 0);
        ck_assert_int_eq(pthread_create(&owner, NULL, fr_owner, &r), 0);
        ck_assert_int_eq(pthread_create(&remote, NULL, fr_remote, &r), 0);
        ck_assert_int_eq(pthread_join(owner, NULL), 0);
        ck_assert_int_eq(pthread_join(remote, NULL), 0);
        pthread_barrier_destroy(&r.go);
        assert_no_failure(&fail);
        fr_check_round(&r, round);
        for (int i = 0; i < FR_BLOCKS; i++)
            ck_assert_int_eq(myfree(r.blocks[i]), 0);
    }
    assert_heap_empty();
}
END_TEST

/* ------------------------------------------------------------------ */
/* Threads that exit with live blocks                                   */
/* ------------------------------------------------------------------ */

struct exit_arg {
    unsigned char **blocks;
    size_t *sizes;
    size_t n;
    size_t from, to;        /* blocks to check and free */
    unsigned char *left[10]; /* blocks left live at exit */
    struct failure *fail;
};

static void *alloc_and_exit(void *arg)
{
    struct exit_arg *a = arg;
    uint64_t rng = 555;
    for (size_t i = 0; i < a->n; i++) {
        a->sizes[i] = random_size(&rng);
        a->blocks[i] = myalloc(a->sizes[i]);
        if (!a->blocks[i]) {
            fail_note(a->fail, "myalloc(%zu) failed", a->sizes[i]);
            continue;
        }
        block_fill(a->blocks[i], a->sizes[i]);
    }
    return NULL;
}

/* Allocates size bytes, fills and checks them and frees them again,
 * noting any failure (what names the caller's step). */
static void use_block(struct failure *fail, size_t size, const char *what)
{
    unsigned char *p = myalloc(size);
    if (!p) {
        fail_note(fail, "%s: myalloc(%zu) failed", what, size);
        return;
    }
    block_fill(p, size);
    if (!block_ok(p, size) || myfree(p) != 0)
        fail_note(fail, "%s: block of %zu bytes broken", what, size);
}
static void *free_others_and_exit(void *arg)
{
    struct exit_arg *a = arg;
    uint64_t rng = 777;
    for (size_t i = a->from; i < a->to; i++) {
        if (!block_ok(a->blocks[i], a->sizes[i]))
            fail_note(a->fail, "block %zu overwritten", i);
        if (myfree(a->blocks[i]) != 0)
            fail_note(a->fail, "myfree(block %zu of an exited thread) failed", i);
    }
    /* Some work of its own (possibly in the adopted heap). */
    for (int i = 0; i < 1000; i++)
        use_block(a->fail, random_size(&rng), "own block");
    for (int i = 0; i < 10; i++) {
        a->left[i] = myalloc(100 + (size_t)i);
        if (a->left[i])
            test_fill(a->left[i], 100 + (size_t)i);
    }
    return NULL;
}

START_TEST(test_thread_exit_live_blocks)
{
    struct failure fail = FAILURE_INIT;
    struct exit_arg a;
    pthread_t t;
    size_t half;

    memset(&a, 0, sizeof a);
    a.n = test_scale(4000);
    a.blocks = calloc(a.n, sizeof *a.blocks);
    a.sizes = calloc(a.n, sizeof *a.sizes);
    a.fail = &fail;
    ck_assert(a.blocks && a.sizes);
    ck_assert_int_eq(pthread_create(&t, NULL, alloc_and_exit, &a), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    assert_no_failure(&fail);
    ck_assert_int_eq(allocator_verify(), 0);

    /* The main thread frees the first half. */
    half = a.n / 2;
    for (size_t i = 0; i < half; i++) {
        ck_assert_msg(block_ok(a.blocks[i], a.sizes[i]), "block %zu overwritten", i);
        ck_assert_int_eq(myfree(a.blocks[i]), 0);
    }
    ck_assert_int_eq(allocator_verify(), 0);

    /* A new thread frees the second half, works, and leaves blocks behind. */
    a.from = half;
    a.to = a.n;
    ck_assert_int_eq(pthread_create(&t, NULL, free_others_and_exit, &a), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    assert_no_failure(&fail);
    ck_assert_int_eq(allocator_verify(), 0);

    /* Double frees of blocks of exited threads are still caught. */
    for (size_t i = 0; i < a.n; i += a.n / 7 + 1) {
        errno = 0;
        ck_assert_msg(myfree(a.blocks[i]) == -1 && errno == EINVAL,
                      "double free of block %zu of an exited thread accepted", i);
    }
    for (int i = 0; i < 10; i++) {
        ck_assert_ptr_nonnull(a.left[i]);
        ck_assert(test_check_fill(a.left[i], 100 + (size_t)i));
        ck_assert_int_eq(myfree(a.left[i]), 0);
    }
    assert_heap_empty();
    free(a.blocks);
    free(a.sizes);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Threads that outlive allocator_cleanup                               */
/* ------------------------------------------------------------------ */

struct outlive_arg {
    pthread_barrier_t *attached, *cleaned, *refused;
    bool allocate_after;
    struct failure *fail;
};

/* Allocates (so the thread has a heap), waits out the main thread's
 * cleanup and re-initialisation, then either works again or just exits:
 * neither may touch the heap the cleanup unmapped. The block from before
 * the cleanup is refused only until its address is handed out again, so
 * every thread tries it before any thread allocates anew. */
static void *outlive_cleanup(void *arg)
{
    struct outlive_arg *a = arg;
    unsigned char *before = myalloc(300);
    if (!before)
        fail_note(a->fail, "no block before the cleanup");
    pthread_barrier_wait(a->attached);
    pthread_barrier_wait(a->cleaned);
    if (a->allocate_after) {
        errno = 0;
        if (myfree(before) != -1 || errno != EINVAL)
            fail_note(a->fail, "a block from before the cleanup was freed");
    }
    pthread_barrier_wait(a->refused);
    if (!a->allocate_after)
        return NULL;
    for (size_t size = 16; size <= 64 * KiB; size *= 4)
        use_block(a->fail, size, "after the cleanup");
    return NULL;
}

START_TEST(test_threads_outlive_cleanup)
{
    enum { THREADS = 4 };
    struct failure fail = FAILURE_INIT;
    pthread_barrier_t attached, cleaned, refused;
    struct outlive_arg args[THREADS];
    pthread_t t[THREADS];
    ck_assert_int_eq(pthread_barrier_init(&attached, NULL, THREADS + 1), 0);
    ck_assert_int_eq(pthread_barrier_init(&cleaned, NULL, THREADS + 1), 0);
    ck_assert_int_eq(pthread_barrier_init(&refused, NULL, THREADS), 0);
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct outlive_arg){ &attached, &cleaned, &refused, i % 2 == 0, &fail };
        ck_assert_int_eq(pthread_create(&t[i], NULL, outlive_cleanup, &args[i]), 0);
    }
    pthread_barrier_wait(&attached);
    /* Every heap is unmapped here; the threads still hold their slots. */
    ck_assert_int_eq(allocator_cleanup(), 0);
    ck_assert_int_eq(allocator_init(1), 0);
    pthread_barrier_wait(&cleaned);
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    assert_no_failure(&fail);
    ck_assert_int_eq(allocator_verify(), 0);
    assert_heap_empty();
    pthread_barrier_destroy(&attached);
    pthread_barrier_destroy(&cleaned);
    pthread_barrier_destroy(&refused);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Many short threads                                                   */
/* ------------------------------------------------------------------ */

static void *short_thread(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    size_t sizes[4] = { 24, 200 + id % 800, 5000 + id % 20000, 0 };
    unsigned char *p[4];
    int n = (id % 97 == 0) ? 4 : 3;
    uintptr_t bad = 0;
    if (n == 4)
        sizes[3] = MiB + 100;
    for (int i = 0; i < n; i++) {
        p[i] = myalloc(sizes[i]);
        if (!p[i])
            return (void *)1;
        block_fill(p[i], sizes[i]);
    }
    for (int i = 0; i < n; i++) {
        if (!block_ok(p[i], sizes[i]))
            bad = 2;
        if (myfree(p[i]) != 0)
            bad = 3;
    }
    return (void *)bad;
}

START_TEST(test_many_short_threads)
{
    enum { BATCH = 4 };
    const size_t total = test_scale(100000);
    /* The baseline is taken once the segment pool has grown to what four
     * threads at a time can need at once (each heap has slab, small and
     * medium segments), which rare combinations of sizes reach only after
     * a few thousand threads; from there on nothing may grow. */
    const size_t warm = total >= 50000 ? 5000 : total / 10;
    long rss0 = 0, rss1;
    size_t foot0 = 0, foot1, maps0 = 0, maps1, a, f;
    size_t errors = 0;
    uintptr_t first_err = 0;

    for (size_t done = 0; done < total; done += BATCH) {
        pthread_t t[BATCH];
        for (int i = 0; i < BATCH; i++)
            ck_assert_int_eq(pthread_create(&t[i], NULL, short_thread,
                                            (void *)(uintptr_t)(done + (size_t)i)), 0);
        for (int i = 0; i < BATCH; i++) {
            void *rv;
            ck_assert_int_eq(pthread_join(t[i], &rv), 0);
            if (rv) {
                if (!errors)
                    first_err = (uintptr_t)rv;
                errors++;
            }
        }
        if (done < warm && done + BATCH >= warm) {
            rss0 = read_vmrss_kb();
            ck_assert_int_eq(allocator_stats(&a, &f, NULL), 0);
            foot0 = a + f;
            maps0 = count_maps();
        }
    }
    ck_assert_msg(errors == 0, "%zu threads failed, first with code %lu", errors,
                  (unsigned long)first_err);
    rss1 = read_vmrss_kb();
    ck_assert_int_eq(allocator_stats(&a, &f, NULL), 0);
    foot1 = a + f;
    maps1 = count_maps();
    ck_assert_msg(!rss_meaningful() || rss1 <= rss0 + 4096, "VmRSS grew from %ld kB to %ld kB over %zu threads",
                  rss0, rss1, total - warm);
    ck_assert_msg(foot1 <= foot0 + 4 * MiB,
                  "allocated+freed grew from %zu to %zu over %zu threads", foot0, foot1,
                  total - warm);
    /* The sanitizers map memory of their own per thread; count only natively. */
    ck_assert_msg(!rss_meaningful() || maps1 <= maps0 + 8, "mappings grew from %zu to %zu over %zu threads",
                  maps0, maps1, total - warm);
    assert_heap_empty();
}
END_TEST

/* ------------------------------------------------------------------ */
/* fork() from a threaded parent                                        */
/* ------------------------------------------------------------------ */

/* ThreadSanitizer does not support fork() in a threaded process (its child
 * dies reusing thread ids), so this part runs natively, under ASan and under
 * valgrind only. */
#if !defined(__SANITIZE_THREAD__)
static void *child_thread(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg;
    for (int i = 0; i < 2000; i++) {
        size_t s = random_size(&rng);
        unsigned char *p = myalloc(s);
        if (!p)
            return (void *)1;
        block_fill(p, s);
        if (!block_ok(p, s) || myfree(p) != 0)
            return (void *)1;
    }
    return NULL;
}

/* Runs in the child; returns its exit status. */
static int fork_child_body(unsigned char *small, unsigned char *large)
{
    struct failure fail = FAILURE_INIT;
    uint64_t rng = 2024;
    pthread_t t;
    void *rv;

    if (!test_check_fill(small, 5000) || !block_ok(large, 2 * MiB))
        return 2;
    if (myfree(small) != 0 || myfree(large) != 0)
        return 3;
    errno = 0;
    if (myfree(small) != -1 || errno != EINVAL)
        return 4;
    for (int i = 0; i < 2000; i++) {
        size_t s = random_size(&rng);
        unsigned char *p = myalloc(s);
        if (!p)
            return 5;
        block_fill(p, s);
        if (!block_ok(p, s) || myfree(p) != 0)
            return 5;
    }
    /* Blocks of parent threads that do not exist here. */
    xslots_drain(&fail);
    if (atomic_load(&fail.count))
        return 6;
    if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)7) != 0 ||
        pthread_join(t, &rv) != 0 || rv != NULL)
        return 7;
    if (allocator_verify() != 0)
        return 8;
    return 0;
}

START_TEST(test_fork_threaded_parent)
{
    enum { NT = 4 };
    struct churn w[NT];
    struct failure fail = FAILURE_INIT;
    atomic_int stop = 0;
    const size_t forks = test_scale(20);
    char msg[128] = "";
    size_t bad = 0;

    memset(w, 0, sizeof w);
    churn_start(w, NT, 0, 1, &stop, &fail);
    usleep(20000);
    for (size_t k = 0; k < forks; k++) {
        unsigned char *small = myalloc(5000), *large = myalloc(2 * MiB);
        pid_t pid;
        int status = 0;
        ck_assert(small && large);
        test_fill(small, 5000);
        block_fill(large, 2 * MiB);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            alarm(60); /* a deadlocked child dies instead of hanging the test */
            _exit(fork_child_body(small, large));
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (!bad)
                snprintf(msg, sizeof msg, "fork %zu: child %s %d", k,
                         WIFEXITED(status) ? "exited with" : "killed by signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            bad++;
        }
        /* The parent's copies are untouched by the child. */
        ck_assert(test_check_fill(small, 5000));
        ck_assert(block_ok(large, 2 * MiB));
        ck_assert_int_eq(myfree(small), 0);
        ck_assert_int_eq(myfree(large), 0);
        usleep(2000);
    }
    atomic_store(&stop, 1);
    churn_join(w, NT);
    xslots_drain(&fail);
    ck_assert_msg(bad == 0, "%zu of %zu children failed, first: %s", bad, forks, msg);
    assert_no_failure(&fail);
    assert_heap_empty();
}
END_TEST
#endif /* !__SANITIZE_THREAD__ */

/* ------------------------------------------------------------------ */
/* Introspection while other threads allocate                           */
/* ------------------------------------------------------------------ */

START_TEST(test_verify_during_churn)
{
    enum { NT = 4 };
    struct churn w[NT];
    struct failure fail = FAILURE_INIT;
    atomic_int stop = 0;
    const size_t checks = test_scale(300);
    size_t bad = 0;

    memset(w, 0, sizeof w);
    churn_start(w, NT, 0, 1, &stop, &fail);
    /* Verify only once every thread is allocating, so it really overlaps. */
    for (int i = 0; i < NT; i++)
        while (!atomic_load(&w[i].running) && !atomic_load(&fail.count))
            usleep(100);
    for (size_t i = 0; i < checks; i++) {
        if (allocator_verify() != 0)
            bad++;
        if (i % 16 == 0)
            usleep(100);
    }
    atomic_store(&stop, 1);
    churn_join(w, NT);
    xslots_drain(&fail);
    ck_assert_msg(bad == 0, "allocator_verify failed %zu of %zu times while threads ran",
                  bad, checks);
    for (int i = 0; i < NT; i++)
        ck_assert_msg(w[i].ops > 0, "thread %d made no progress during verify", i);
    assert_no_failure(&fail);
    assert_heap_empty();
}
END_TEST

START_TEST(test_stats_dump_during_churn)
{
    enum { NT = 4 };
    struct churn w[NT];
    struct failure fail = FAILURE_INIT;
    atomic_int stop = 0;
    const size_t dumps = test_scale(30);
    char path[] = "/tmp/pa_check_threads_dumpXXXXXX";
    int fd = mkstemp(path), saved;
    off_t len;

    ck_assert(fd >= 0);
    unlink(path);
    memset(w, 0, sizeof w);
    churn_start(w, NT, 0, 1, &stop, &fail);
    for (size_t i = 0; i < dumps; i++) {
        for (int k = 0; k < 200; k++) {
            size_t a = 1, f = 1, pk = 0;
            ck_assert_int_eq(allocator_stats(&a, &f, &pk), 0);
            ck_assert_int_eq(allocator_stats(NULL, NULL, NULL), 0);
        }
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        ck_assert(saved >= 0);
        ck_assert(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
        allocator_dump();
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
    }
    atomic_store(&stop, 1);
    churn_join(w, NT);
    xslots_drain(&fail);
    len = lseek(fd, 0, SEEK_END);
    close(fd);
    ck_assert_msg(len > 0, "allocator_dump printed nothing");
    assert_no_failure(&fail);
    assert_heap_empty();
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *threads_suite(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("concurrent");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_many_threads);
    tcase_add_test(tc, test_producer_consumer);
    tcase_add_test(tc, test_remote_free_owner_alive);
    tcase_add_test(tc, test_remote_freed_blocks_go_home);
    tcase_add_test(tc, test_concurrent_double_free);
    tcase_add_test(tc, test_first_remote_free_races_owner);
    tcase_add_test(tc, test_thread_exit_live_blocks);
    tcase_add_test(tc, test_many_short_threads);
    tcase_add_test(tc, test_threads_outlive_cleanup);
#if !defined(__SANITIZE_THREAD__)
    tcase_add_test(tc, test_fork_threaded_parent);
#endif
    tcase_add_test(tc, test_verify_during_churn);
    tcase_add_test(tc, test_stats_dump_during_churn);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(threads_suite());
    int failed;
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
