/* SPDX-License-Identifier: MIT */
/*
 * check_race.c - frees that race with the reuse of their segments, and the
 * single-threaded mode called from two threads at once.
 *
 * Two threads allocate and free blocks that fill whole segments (1 MiB
 * blocks of the TLSF arena, and 8 KiB slab blocks), so emptied segments go
 * back to the pool and come out again in the other thread's heap at the
 * same addresses. A third thread keeps freeing every address it has seen:
 * most of its frees name a block that is gone or that another heap now
 * owns. Every call must answer 0 or -1 with EINVAL, and afterwards the
 * heaps must verify and every block the threads kept must hold its fill.
 * Variants: a timer delays the third thread at random instructions, so a
 * free that read a segment's owner sees the segment change hands before it
 * claims; the test's thread verifies and takes statistics throughout; and
 * every thread runs on one CPU, where preemption does the delaying.
 *
 * Only <pallocator.h> is used. Helper threads never call ck_assert: they
 * record the first failure, and the test asserts after joining them.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pallocator.h>

#include "testutil.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* Four blocks of the largest heap size take two segments; freeing them
 * empties both, and the second one goes back to the pool. */
#define BIG_BLOCKS 8
#define BIG_SIZE MiB
/* 8 KiB slab blocks for a little more than one slab segment. */
#define SLAB_BLOCKS 1000
#define SLAB_BLOCK_SIZE (8 * KiB)
#define TARGETS (BIG_BLOCKS + SLAB_BLOCKS)
#define KEEPERS 16
#define OWNERS 2

struct failure {
    atomic_ulong count;
    pthread_mutex_t mu;
    char msg[256];
};

static struct failure fail = {0, PTHREAD_MUTEX_INITIALIZER, ""};

static void fail_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail_note(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&fail.mu);
    if (atomic_fetch_add(&fail.count, 1) == 0) {
        va_start(ap, fmt);
        vsnprintf(fail.msg, sizeof fail.msg, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&fail.mu);
}

/* Addresses the owners handed out, for the stale frees. */
static _Atomic(void *) seen[OWNERS][TARGETS];
static atomic_int stop;
static atomic_int owners_done;
static atomic_size_t rounds_done;
/* Every owner's keepers exist before any target does: a keeper placed
 * where the other owner's target was (its segment having changed hands)
 * would be a live block at an address the stale frees name, which a
 * free may then rightly free. */
static pthread_barrier_t keepers_ready;

/* A free of a pointer that may be stale: 0, or -1 with EINVAL. */
static void free_any(void *p, const char *who)
{
    errno = 0;
    int rc = myfree(p);
    if (rc != 0 && (rc != -1 || errno != EINVAL))
        fail_note("%s: myfree(%p) returned %d, errno %d", who, p, rc, errno);
}

struct owner {
    int index;
    size_t rounds;
};

/* Blocks an owner keeps through the run, filled: nothing the race does
 * may touch them. */
static size_t keeper_size(int i)
{
    static const size_t sizes[] = {24, 200, 3000, 40 * KiB, 300 * KiB};
    return sizes[i % 5];
}

static void *owner_main(void *arg)
{
    struct owner *o = arg;
    void *keep[KEEPERS];
    void *target[TARGETS];
    for (int i = 0; i < KEEPERS; i++) {
        keep[i] = myalloc(keeper_size(i));
        if (!keep[i]) {
            fail_note("owner %d: keeper allocation failed", o->index);
            pthread_barrier_wait(&keepers_ready);
            return NULL;
        }
        block_fill(keep[i], keeper_size(i));
    }
    pthread_barrier_wait(&keepers_ready);
    for (size_t r = 0; r < o->rounds && !atomic_load(&stop); r++) {
        /* The targets are never written: the stale frees may free them
         * under the owner at any moment. */
        /* The slab blocks every 16th round: the big blocks' rounds are
         * short, so their segments change hands often. */
        int n = r % 16 == 0 ? TARGETS : BIG_BLOCKS;
        for (int i = 0; i < n; i++) {
            target[i] = myalloc(i < BIG_BLOCKS ? BIG_SIZE : SLAB_BLOCK_SIZE);
            if (!target[i]) {
                fail_note("owner %d: allocation failed in round %zu", o->index, r);
                atomic_store(&stop, 1);
                break;
            }
            atomic_store(&seen[o->index][i], target[i]);
        }
        for (int i = 0; i < n && target[i]; i++)
            free_any(target[i], "owner");
        atomic_fetch_add(&rounds_done, 1);
        if (r % 64 == 0)
            for (int i = 0; i < KEEPERS; i++)
                if (!block_ok(keep[i], keeper_size(i)))
                    fail_note("owner %d: kept block %p lost its fill", o->index, keep[i]);
    }
    for (int i = 0; i < KEEPERS; i++) {
        if (!block_ok(keep[i], keeper_size(i)))
            fail_note("owner %d: kept block %p lost its fill", o->index, keep[i]);
        if (myfree(keep[i]) != 0)
            fail_note("owner %d: kept block %p could not be freed", o->index, keep[i]);
    }
    atomic_fetch_add(&owners_done, 1);
    return NULL;
}

/* Delays the stale frees at whatever instruction the timer finds them: a
 * free that read a segment's owner and is held up before it claims its
 * block sees the segment change hands in the meantime. The handler yields
 * for 0.3 ms, about an owner's round. */
static void delay_handler(int sig)
{
    (void)sig;
    int saved = errno;
    struct timespec pause = {0, 1500000};
    nanosleep(&pause, NULL);
    errno = saved;
}

/* Frees every address the owners have handed out, over and over. SIGALRM
 * is blocked in every other thread, so the delays land here. */
static void *stale_main(void *arg)
{
    (void)arg;
    sigset_t alarm;
    sigemptyset(&alarm);
    sigaddset(&alarm, SIGALRM);
    pthread_sigmask(SIG_UNBLOCK, &alarm, NULL);
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    while (!atomic_load(&stop)) {
        /* Mostly the big blocks, whose addresses repeat in every heap. */
        size_t i = test_rand_below(&rng, 8) ? test_rand_below(&rng, BIG_BLOCKS)
                                            : test_rand_below(&rng, TARGETS);
        void *p = atomic_load(&seen[test_rand_below(&rng, OWNERS)][i]);
        if (p)
            free_any(p, "stale");
    }
    return NULL;
}

static void check_after_race(void)
{
    ck_assert_msg(atomic_load(&fail.count) == 0, "%lu failures, first: %s",
                  (unsigned long)atomic_load(&fail.count), fail.msg);
    ck_assert_int_eq(allocator_verify(), 0);
    /* Blocks handed out now must not overlap one another. */
    void *p[256];
    for (int i = 0; i < 256; i++) {
        size_t n = i % 2 ? BIG_SIZE : SLAB_BLOCK_SIZE;
        p[i] = myalloc(n);
        ck_assert_ptr_nonnull(p[i]);
        block_fill(p[i], n);
    }
    for (int i = 0; i < 256; i++) {
        ck_assert(block_ok(p[i], i % 2 ? BIG_SIZE : SLAB_BLOCK_SIZE));
        ck_assert_int_eq(myfree(p[i]), 0);
    }
    ck_assert_int_eq(allocator_verify(), 0);
}

/* Runs the owners and the stale freer; with delays, a timer interrupts the
 * stale freer every 2.5 ms; with inspect, the test's thread verifies the
 * heaps and takes statistics meanwhile (both take handed-over blocks back
 * into heaps whose owners may be about to free). */
static void run_race(size_t rounds, int delays, int inspect)
{
    pthread_t owners[OWNERS], stale;
    struct owner o[OWNERS];
    atomic_store(&stop, 0);
    atomic_store(&owners_done, 0);
    atomic_store(&rounds_done, 0);
    ck_assert_int_eq(pthread_barrier_init(&keepers_ready, NULL, OWNERS), 0);
    for (int i = 0; i < OWNERS; i++)
        for (int j = 0; j < TARGETS; j++)
            atomic_store(&seen[i][j], NULL);
    sigset_t alarm, old_mask;
    sigemptyset(&alarm);
    sigaddset(&alarm, SIGALRM);
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &alarm, &old_mask), 0);
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = delay_handler;
    sa.sa_flags = SA_RESTART;
    ck_assert_int_eq(sigaction(SIGALRM, &sa, &old_sa), 0);
    ck_assert_int_eq(pthread_create(&stale, NULL, stale_main, NULL), 0);
    for (int i = 0; i < OWNERS; i++) {
        o[i].index = i;
        o[i].rounds = rounds;
        ck_assert_int_eq(pthread_create(&owners[i], NULL, owner_main, &o[i]), 0);
    }
    struct itimerval every = {{0, 2500}, {0, 2500}}, off = {{0, 0}, {0, 0}};
    if (delays)
        ck_assert_int_eq(setitimer(ITIMER_REAL, &every, NULL), 0);
    /* An inspection every 64 rounds: each pauses every heap. */
    for (size_t next = 64; inspect && atomic_load(&owners_done) < OWNERS;) {
        if (atomic_load(&rounds_done) < next) {
            sched_yield();
            continue;
        }
        size_t allocated, freed, peak;
        ck_assert_int_eq(allocator_verify(), 0);
        ck_assert_int_eq(allocator_stats(&allocated, &freed, &peak), 0);
        next = atomic_load(&rounds_done) + 64;
    }
    for (int i = 0; i < OWNERS; i++)
        pthread_join(owners[i], NULL);
    pthread_barrier_destroy(&keepers_ready);
    ck_assert_int_eq(setitimer(ITIMER_REAL, &off, NULL), 0);
    atomic_store(&stop, 1);
    pthread_join(stale, NULL);
    ck_assert_int_eq(sigaction(SIGALRM, &old_sa, NULL), 0);
    ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, &old_mask, NULL), 0);
    check_after_race();
}

static void setup(void)
{
    allocator_cleanup();
    ck_assert_int_eq(allocator_init(1), 0);
    atomic_store(&fail.count, 0);
}

static void teardown(void)
{
    allocator_cleanup();
}

/* Without and with delays, without and with inspection. */
START_TEST(test_stale_frees_parallel)
{
    run_race(test_scale(10000), _i & 1, _i & 2);
}
END_TEST

/* Every thread on the CPU the test runs on: the threads that created them
 * inherit the mask. */
START_TEST(test_stale_frees_one_cpu)
{
    cpu_set_t all, one;
    ck_assert_int_eq(sched_getaffinity(0, sizeof all, &all), 0);
    int cpu = sched_getcpu();
    ck_assert_int_ge(cpu, 0);
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
    run_race(test_scale(10000), 1, 1);
    ck_assert_int_eq(sched_setaffinity(0, sizeof all, &all), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The single-threaded mode from two threads                            */
/* ------------------------------------------------------------------ */

#if defined(PA_DEBUG) && PA_DEBUG
static void *single_churn(void *arg)
{
    (void)arg;
    for (;;) {
        void *p = myalloc(64);
        void *q = myalloc(20000);
        myfree(p);
        myfree(q);
    }
    return NULL;
}

/* A debug build stops a program that calls the single-threaded mode from
 * two threads at once, and says why; the two threads run until it does. */
START_TEST(test_single_mode_two_threads)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        allocator_cleanup();
        if (allocator_init(0) != 0)
            _exit(3);
        pthread_t t;
        if (pthread_create(&t, NULL, single_churn, NULL) != 0)
            _exit(4);
        single_churn(NULL);
        _exit(5);
    }
    close(fds[1]);
    /* Read to the end (a debug build logs as it goes), keeping the last
     * lines, where the message is. */
    char out[8192];
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], out + n, sizeof out - 1 - n)) > 0) {
        n += (size_t)r;
        if (n == sizeof out - 1) {
            memmove(out, out + n - 1024, 1024);
            n = 1024;
        }
    }
    out[n] = '\0';
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "child status %#x, said: %.200s", status, n > 200 ? out + n - 200 : out);
    ck_assert_msg(strstr(out, "single-threaded mode called from two threads") != NULL,
                  "child said: %.200s", n > 200 ? out + n - 200 : out);
}
END_TEST
#endif

static Suite *race_suite(void)
{
    Suite *s = suite_create("race");
    TCase *tc = tcase_create("stale frees");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_stale_frees_parallel, 0, 4);
    tcase_add_test(tc, test_stale_frees_one_cpu);
    suite_add_tcase(s, tc);
#if defined(PA_DEBUG) && PA_DEBUG
    TCase *single = tcase_create("single-threaded mode misuse");
    tcase_set_timeout(single, 300);
    tcase_add_test(single, test_single_mode_two_threads);
    suite_add_tcase(s, single);
#endif
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(race_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
