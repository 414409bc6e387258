/* SPDX-License-Identifier: MIT */
/*
 * check_threads_remote.c - blocks freed by a thread other than the
 * one that allocated them: producers and consumers, remote frees while the
 * owner is alive, freed blocks going home, concurrent double frees and the
 * first remote free racing the owner.
 *
 * Concurrent mode, through <pallocator.h> only; the helpers and the
 * fixture are in thread_helpers.h.
 */
#include "thread_helpers.h"
#include "check_main.h"

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
 * to rest before it claims a live byte, and from then on the owner's updates are
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

static Suite *threads_remote_suite(void)
{
    Suite *s = suite_create("threads_remote");
    TCase *tc;

    tc = tcase_create("concurrent");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_producer_consumer);
    tcase_add_test(tc, test_remote_free_owner_alive);
    tcase_add_test(tc, test_remote_freed_blocks_go_home);
    tcase_add_test(tc, test_concurrent_double_free);
    tcase_add_test(tc, test_first_remote_free_races_owner);
    suite_add_tcase(s, tc);
    return s;
}

PA_CHECK_MAIN(threads_remote_suite)
