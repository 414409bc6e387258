/* SPDX-License-Identifier: MIT */
/*
 * check_lifecycle_hardening.c - the allocator across a thread's and a
 * process's life cycle: destructors that allocate after the library's exit
 * hook has run, fork handlers that allocate while every heap is paused, no
 * thread key left at first use, and the free bytes allocator_stats counts.
 *
 * pthread_setspecific is interposed (but under ThreadSanitizer), so that a
 * test can make the one that arms the library's exit hook fail.
 *
 * Reads the heap registry (internal headers) to count heaps. Every test
 * leaves the allocator cleaned up, so the suite also passes with CK_FORK=no.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pallocator.h>

#include "heap.h"
#include "testutil.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* Sizes a destructor or fork handler allocates: a slab block, a block of
 * the TLSF heap and a large block. */
static const size_t late_sizes[] = {24, 20 * KiB, 2 * MiB};
#define LATE_SIZES (sizeof late_sizes / sizeof late_sizes[0])

/* Allocates, writes, checks and frees one block of each size; 0 on success. */
static int alloc_round(void)
{
    for (size_t i = 0; i < LATE_SIZES; i++) {
        unsigned char *p = myalloc(late_sizes[i]);
        if (!p)
            return -1;
        block_fill(p, late_sizes[i]);
        if (!block_ok(p, late_sizes[i]) || myfree(p) != 0)
            return -1;
    }
    return 0;
}

/* Heaps in the registry, and how many of them wait for adoption. */
static size_t count_heaps(size_t *abandoned)
{
    size_t n = 0, a = 0;
    pa_heap_registry_lock();
    for (const heap_t *h = pa_heap_registry_first(); h; h = h->next_all) {
        n++;
        a += h->state == HEAP_ABANDONED;
    }
    pa_heap_registry_unlock();
    if (abandoned)
        *abandoned = a;
    return n;
}

static size_t stats_allocated(void)
{
    size_t allocated = SIZE_MAX;
    ck_assert_int_eq(allocator_stats(&allocated, NULL, NULL), 0);
    return allocated;
}

static void setup_concurrent(void)
{
    allocator_cleanup();
    ck_assert_int_eq(allocator_init(1), 0);
}

static void teardown(void)
{
    allocator_cleanup();
}

/* ------------------------------------------------------------------ */
/* Destructors that allocate after the exit hook                       */
/* ------------------------------------------------------------------ */

/* Keys of the program: one created before the library's own key (in
 * main), one after it (in the tests), so that their destructors run on
 * either side of the library's in each round. */
static pthread_key_t key_before_library;
static pthread_key_t key_after_library;
static bool key_after_created;

/* What a thread's destructors do, chosen per test. */
enum late_kind {
    LATE_LAST_ROUND,   /* allocate and free in the last round of key destructors */
    LATE_FREE_ONLY,    /* free a block of the thread's life in the last round */
    LATE_FIRST_USE,    /* the thread's first allocation, in a key destructor */
    LATE_FIRST_USE_LAST_ROUND, /* the same, in the last round of key destructors */
    LATE_THREAD_ATEXIT /* allocate in a C++-style thread_local destructor */
};

struct late_thread {
    enum late_kind kind;
    pthread_key_t key;
    void *kept;     /* allocated in the thread's life, freed late */
    int failed;
};

/* The round the destructors allocate in: the last one, but under
 * ThreadSanitizer the one before, since its own key's destructor ends the
 * thread's instrumentation in the last round. A thread's first heap comes
 * a round earlier still there: the library's exit hook, armed by it, must
 * run before that last round (so the test only sees the thread's mark of
 * life freed when it is gone). */
#if defined(__SANITIZE_THREAD__)
#define LATE_ROUND (PTHREAD_DESTRUCTOR_ITERATIONS - 1)
#define LATE_FIRST_ROUND (PTHREAD_DESTRUCTOR_ITERATIONS - 2)
#else
#define LATE_ROUND PTHREAD_DESTRUCTOR_ITERATIONS
#define LATE_FIRST_ROUND PTHREAD_DESTRUCTOR_ITERATIONS
#endif

static __thread unsigned destructor_rounds;

static void late_key_destructor(void *arg)
{
    struct late_thread *t = arg;
    destructor_rounds++;
    bool last = destructor_rounds ==
                (t->kind == LATE_FIRST_USE_LAST_ROUND ? LATE_FIRST_ROUND : LATE_ROUND);
    if (t->kind == LATE_FIRST_USE) {
        if (alloc_round() != 0)
            t->failed = 1;
        return;
    }
    if (!last) {
        /* Set again: glibc runs the destructor in the next round. */
        if (pthread_setspecific(t->key, t) != 0)
            t->failed = 1;
        return;
    }
    if ((t->kind == LATE_LAST_ROUND || t->kind == LATE_FIRST_USE_LAST_ROUND) &&
        alloc_round() != 0)
        t->failed = 1;
    if (t->kept && myfree(t->kept) != 0)
        t->failed = 1;
    t->kept = NULL;
}

/* glibc's registration of thread_local destructors (what C++ uses). */
extern int __cxa_thread_atexit_impl(void (*func)(void *), void *obj, void *dso);
extern void *__dso_handle;

static void late_tls_destructor(void *arg)
{
    struct late_thread *t = arg;
    if (alloc_round() != 0)
        t->failed = 1;
    if (t->kept && myfree(t->kept) != 0)
        t->failed = 1;
    t->kept = NULL;
}

static void *late_thread_main(void *arg)
{
    struct late_thread *t = arg;
    destructor_rounds = 0;
    if (t->kind != LATE_FIRST_USE && t->kind != LATE_FIRST_USE_LAST_ROUND) {
        /* The thread has a heap, so the library's exit hook is armed. */
        t->kept = myalloc(100);
        if (!t->kept || alloc_round() != 0)
            t->failed = 1;
    }
    if (t->kind == LATE_THREAD_ATEXIT) {
        if (__cxa_thread_atexit_impl(late_tls_destructor, t, &__dso_handle) != 0)
            t->failed = 1;
    } else if (pthread_setspecific(t->key, t) != 0) {
        t->failed = 1;
    }
    return NULL;
}

#define LATE_BATCH 4

/* Runs threads of the given kind, LATE_BATCH at a time, half of them on
 * each program key; then no heap may be left to a thread that is gone. */
static void run_late_threads(enum late_kind kind)
{
    if (!key_after_created) {
        ck_assert_int_eq(pthread_key_create(&key_after_library, late_key_destructor), 0);
        key_after_created = true;
    }
    const size_t total = test_scale(300);
    size_t failed = 0, most_heaps = 0;
    for (size_t done = 0; done < total; done += LATE_BATCH) {
        pthread_t tid[LATE_BATCH];
        struct late_thread t[LATE_BATCH];
        for (size_t i = 0; i < LATE_BATCH; i++) {
            t[i] = (struct late_thread){.kind = kind,
                                        .key = (done / LATE_BATCH + i) % 2 ? key_after_library
                                                                           : key_before_library};
            ck_assert_int_eq(pthread_create(&tid[i], NULL, late_thread_main, &t[i]), 0);
        }
        for (size_t i = 0; i < LATE_BATCH; i++) {
            ck_assert_int_eq(pthread_join(tid[i], NULL), 0);
            failed += t[i].failed != 0 || t[i].kept != NULL;
        }
        size_t heaps = count_heaps(NULL);
        if (heaps > most_heaps)
            most_heaps = heaps;
    }
    ck_assert_msg(failed == 0, "%zu of %zu threads failed an allocation or free", failed, total);
    /* Verify pauses every heap, and so finds those of threads gone without
     * the library's exit hook. */
    ck_assert_int_eq(allocator_verify(), 0);
    size_t abandoned, heaps = count_heaps(&abandoned);
    /* The main thread holds no heap: every heap waits for adoption, and
     * there are no more than threads ran at once. */
    ck_assert_msg(heaps == abandoned, "%zu heaps, %zu abandoned", heaps, abandoned);
    ck_assert_msg(most_heaps <= LATE_BATCH + 1,
                  "%zu threads with late destructors left %zu heaps (at most %d expected)",
                  total, most_heaps, LATE_BATCH + 1);
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_uint_eq(stats_allocated(), 0);
}

START_TEST(test_alloc_in_last_destructor_round)
{
    run_late_threads(LATE_LAST_ROUND);
}
END_TEST

START_TEST(test_free_in_last_destructor_round)
{
    run_late_threads(LATE_FREE_ONLY);
}
END_TEST

START_TEST(test_first_alloc_in_destructor)
{
    run_late_threads(LATE_FIRST_USE);
}
END_TEST

/* A thread's first heap, attached in the last round: on a key created
 * after the library's, no round follows to run the library's exit hook. */
START_TEST(test_first_alloc_in_last_destructor_round)
{
    run_late_threads(LATE_FIRST_USE_LAST_ROUND);
}
END_TEST

START_TEST(test_alloc_in_thread_local_destructor)
{
    run_late_threads(LATE_THREAD_ATEXIT);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The exit hook cannot be armed                                        */
/* ------------------------------------------------------------------ */

/* ThreadSanitizer's runtime calls pthread_setspecific as it starts and
 * ends threads, where an interposed one cannot run: not tested there. */
#if !defined(__SANITIZE_THREAD__)
/* Set in a thread whose pthread_setspecific calls fail, but for the
 * program's own keys: the library's exit hook cannot be armed there. */
static __thread bool setspecific_fails;

typedef int (*setspecific_fn)(pthread_key_t, const void *);
static setspecific_fn real_setspecific;

/* Found before any thread starts. */
__attribute__((constructor)) static void find_setspecific(void)
{
    real_setspecific = (setspecific_fn)dlsym(RTLD_NEXT, "pthread_setspecific");
}

/* glibc declares the value unread (access none), so GCC takes passing it
 * on for a read of something uninitialised. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
int pthread_setspecific(pthread_key_t key, const void *value)
{
    if (setspecific_fails && key != key_before_library &&
        !(key_after_created && key == key_after_library))
        return ENOMEM;
    if (!real_setspecific) /* a sanitizer's runtime, before the constructor */
        find_setspecific();
    return real_setspecific ? real_setspecific(key, value) : ENOSYS;
}
#pragma GCC diagnostic pop

enum unarmed_call { UNARMED_FREE_REMOTE, UNARMED_ALLOC };

struct unarmed_thread {
    enum unarmed_call call;
    void *block;      /* UNARMED_FREE_REMOTE: a block of the test's heap */
    int failed;
};

static void *unarmed_thread_main(void *arg)
{
    struct unarmed_thread *t = arg;
    setspecific_fails = true;
    if (t->call == UNARMED_FREE_REMOTE)
        t->failed = myfree(t->block) != 0;
    else
        t->failed = alloc_round() != 0;
    setspecific_fails = false;
    return NULL;
}

/* A thread whose first call (a free of another heap's block, or an
 * allocation) attaches a heap but cannot arm the exit hook: the call
 * abandons the heap again at its end, so no heap is left to the thread. */
static void check_unarmed_thread(enum unarmed_call call, const char *what)
{
    void *own = myalloc(100); /* the test's thread holds a heap */
    ck_assert_ptr_nonnull(own);
    for (size_t round = 0; round < 8; round++) {
        struct unarmed_thread t = {call, myalloc(200), 0};
        ck_assert_ptr_nonnull(t.block);
        pthread_t tid;
        ck_assert_int_eq(pthread_create(&tid, NULL, unarmed_thread_main, &t), 0);
        ck_assert_int_eq(pthread_join(tid, NULL), 0);
        ck_assert_msg(!t.failed, "%s: the thread's call failed", what);
        if (call != UNARMED_FREE_REMOTE)
            ck_assert_int_eq(myfree(t.block), 0);
        size_t abandoned, heaps = count_heaps(&abandoned);
        ck_assert_msg(heaps == abandoned + 1,
                      "%s, round %zu: %zu heaps, %zu abandoned (only the test's may be owned)",
                      what, round, heaps, abandoned);
    }
    ck_assert_int_eq(myfree(own), 0);
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_uint_eq(stats_allocated(), 0);
}

START_TEST(test_unarmed_hook_free_remote)
{
    check_unarmed_thread(UNARMED_FREE_REMOTE, "free of another heap's block");
}
END_TEST

START_TEST(test_unarmed_hook_alloc)
{
    check_unarmed_thread(UNARMED_ALLOC, "allocation");
}
END_TEST
#endif

/* ------------------------------------------------------------------ */
/* Fork handlers that allocate                                          */
/* ------------------------------------------------------------------ */

/* Handlers registered before the library's (a constructor that runs before
 * the library's own): their prepare half runs after the library's, with
 * every heap paused, and their parent and child halves before the
 * library's. Handlers registered in a test run on the other side. */
#define HANDLERS_BEFORE 1 /* the set registered before the library */
#define HANDLERS_AFTER 2  /* the set registered after it */
static int fork_alloc_on;  /* which sets allocate */
static int prepare_failures, parent_failures, child_failures;
static int prepare_calls, parent_calls, child_calls;

static void handler_run(int set, int *calls, int *failures)
{
    if (fork_alloc_on & set) {
        ++*calls;
        *failures += alloc_round() != 0;
    }
}

static void before_prepare(void)
{
    handler_run(HANDLERS_BEFORE, &prepare_calls, &prepare_failures);
}

static void before_parent(void)
{
    handler_run(HANDLERS_BEFORE, &parent_calls, &parent_failures);
}

static void before_child(void)
{
    handler_run(HANDLERS_BEFORE, &child_calls, &child_failures);
}

static void after_prepare(void)
{
    handler_run(HANDLERS_AFTER, &prepare_calls, &prepare_failures);
}

static void after_parent(void)
{
    handler_run(HANDLERS_AFTER, &parent_calls, &parent_failures);
}

static void after_child(void)
{
    handler_run(HANDLERS_AFTER, &child_calls, &child_failures);
}

__attribute__((constructor(101))) static void register_handlers_before_library(void)
{
    pthread_atfork(before_prepare, before_parent, before_child);
}

static bool handlers_after_registered;

static void register_handlers_after_library(void)
{
    if (!handlers_after_registered)
        ck_assert_int_eq(pthread_atfork(after_prepare, after_parent, after_child), 0);
    handlers_after_registered = true;
}

/* Waits up to a few seconds for pid; a child that hangs is killed. Returns
 * its exit status, or -1 when it did not exit by itself. */
static int wait_child(pid_t pid)
{
    for (int i = 0; i < 2000; i++) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        ck_assert_int_eq(r, 0);
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* The child's side: every handler allocated, and the heap is whole. */
static int fork_child_status(int handlers)
{
    if (child_calls != handlers || child_failures != 0)
        return 1;
    if (alloc_round() != 0 || allocator_verify() != 0)
        return 2;
    return 0;
}

/* Forks with the handler sets in sets allocating; a hang ends the test by
 * SIGALRM. */
static void fork_with_allocating_handlers(int sets, const char *what)
{
    int handlers = __builtin_popcount((unsigned)sets);
    prepare_calls = parent_calls = child_calls = 0;
    prepare_failures = parent_failures = child_failures = 0;
    fork_alloc_on = sets;
    alarm(30);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(fork_child_status(handlers));
    alarm(0);
    fork_alloc_on = 0;
    int status = wait_child(pid);
    ck_assert_msg(prepare_calls == handlers && prepare_failures == 0,
                  "%s: %d prepare handlers ran, %d failed", what, (int)prepare_calls,
                  (int)prepare_failures);
    ck_assert_msg(parent_calls == handlers && parent_failures == 0,
                  "%s: %d parent handlers ran, %d failed", what, (int)parent_calls,
                  (int)parent_failures);
    ck_assert_msg(status == 0, "%s: child exit status %d", what, status);
    ck_assert_int_eq(allocator_verify(), 0);
}

START_TEST(test_fork_handler_before_library)
{
    void *p = myalloc(100);
    ck_assert_ptr_nonnull(p);
    fork_with_allocating_handlers(HANDLERS_BEFORE, "registered before");
    ck_assert_int_eq(myfree(p), 0);
}
END_TEST

START_TEST(test_fork_handlers_both_sides)
{
    register_handlers_after_library();
    void *p = myalloc(100);
    ck_assert_ptr_nonnull(p);
    fork_with_allocating_handlers(HANDLERS_BEFORE | HANDLERS_AFTER, "registered before and after");
    ck_assert_int_eq(myfree(p), 0);
}
END_TEST

/* The first use of the library is in a fork handler: one that runs while
 * the library's handler holds its locks, or one before it; then the same
 * in the single-threaded mode. */
START_TEST(test_fork_handler_first_use)
{
    register_handlers_after_library();
    allocator_cleanup();
    fork_with_allocating_handlers(HANDLERS_BEFORE, "first use while paused");
    allocator_cleanup();
    fork_with_allocating_handlers(HANDLERS_AFTER | HANDLERS_BEFORE, "first use before the pause");
    allocator_cleanup();
    ck_assert_int_eq(allocator_init(0), 0);
    fork_with_allocating_handlers(HANDLERS_AFTER | HANDLERS_BEFORE, "single-threaded mode");
}
END_TEST

#if !defined(__SANITIZE_THREAD__)
/* ThreadSanitizer does not support fork() in a threaded process. */
static atomic_int busy_stop;

static void *busy_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&busy_stop))
        if (alloc_round() != 0)
            return (void *)1;
    return NULL;
}

START_TEST(test_fork_handlers_threaded_parent)
{
    register_handlers_after_library();
    pthread_t t[2];
    atomic_store(&busy_stop, 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, busy_main, NULL), 0);
    for (size_t k = 0; k < test_scale(20); k++)
        fork_with_allocating_handlers(HANDLERS_BEFORE | HANDLERS_AFTER, "threaded parent");
    atomic_store(&busy_stop, 1);
    for (int i = 0; i < 2; i++) {
        void *r;
        ck_assert_int_eq(pthread_join(t[i], &r), 0);
        ck_assert_ptr_null(r);
    }
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST
#endif

/* ------------------------------------------------------------------ */
/* No thread key left at first use                                      */
/* ------------------------------------------------------------------ */

#define KEYS_CHILD_ARG "--no-thread-key-left"

/* Runs in a fresh process (the library has created no key yet): fills the
 * key table, then checks each call's result. Returns the number of the
 * first check that failed, 0 when all held. */
static int no_key_left_checks(void)
{
    static pthread_key_t keys[PTHREAD_KEYS_MAX + 1];
    size_t n = 0;
    while (n < PTHREAD_KEYS_MAX + 1 && pthread_key_create(&keys[n], NULL) == 0)
        n++;
    if (n == 0 || n > PTHREAD_KEYS_MAX)
        return 1;
    static const size_t sizes[] = {16, 20 * KiB, 2 * MiB};
    for (size_t i = 0; i < 3; i++) {
        errno = 0;
        if (myalloc(sizes[i]) != NULL || errno != ENOMEM)
            return 10 + (int)i;
        errno = 0;
        if (mycalloc(1, sizes[i]) != NULL || errno != ENOMEM)
            return 20 + (int)i;
        errno = 0;
        if (myrealloc(NULL, sizes[i]) != NULL || errno != ENOMEM)
            return 30 + (int)i;
    }
    errno = 0;
    if (allocator_init(1) != -1 || errno != EAGAIN)
        return 40;
    /* One key back, and the library initialises on the next request. */
    pthread_key_delete(keys[--n]);
    for (size_t i = 0; i < 3; i++) {
        void *p = myalloc(sizes[i]);
        if (!p || myfree(p) != 0)
            return 50 + (int)i;
    }
    return allocator_verify() == 0 ? 0 : 60;
}

START_TEST(test_no_thread_key_left)
{
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(len, 0);
    self[len] = '\0';
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execl(self, self, KEYS_CHILD_ARG, (char *)NULL);
        _exit(127);
    }
    int status = wait_child(pid);
    ck_assert_msg(status == 0, "fresh process without a thread key: check %d failed", status);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Free bytes in allocator_stats                                        */
/* ------------------------------------------------------------------ */

/* Fills one slab of a class whose block size leaves an unusable end, block
 * by block: the free bytes are the other slabs plus the blocks not handed
 * out, never the end. */
static void check_slab_free_bytes(int concurrent)
{
    allocator_cleanup();
    ck_assert_int_eq(allocator_init(concurrent), 0);
    /* The 48-byte class (a hardened build's canary takes 8 of them). */
    const size_t size = 48 - PA_CANARY_SIZE;
    const size_t capacity = SLAB_SIZE / 48;
    ck_assert_uint_ne(SLAB_SIZE % 48, 0);
    const size_t other_slabs = (SEGMENT_BLOCK_SLABS - 1) * SLAB_SIZE;
    void **blocks = calloc(capacity, sizeof *blocks);
    ck_assert_ptr_nonnull(blocks);
    for (size_t k = 0; k < capacity; k++) {
        blocks[k] = myalloc(size);
        ck_assert_ptr_nonnull(blocks[k]);
        if (k % 97 != 0 && k != capacity - 1)
            continue;
        size_t allocated, freed;
        ck_assert_int_eq(allocator_stats(&allocated, &freed, NULL), 0);
        ck_assert_uint_eq(allocated, (k + 1) * size);
        ck_assert_msg(freed == other_slabs + (capacity - k - 1) * size,
                      "%zu blocks of %zu bytes: %zu bytes free, %zu expected", k + 1, size,
                      freed, other_slabs + (capacity - k - 1) * size);
    }
    for (size_t k = 0; k < capacity; k++)
        ck_assert_int_eq(myfree(blocks[k]), 0);
    free(blocks);
    /* Empty, the slab counts whole: it can go back to the free slabs. */
    size_t freed;
    ck_assert_int_eq(allocator_stats(NULL, &freed, NULL), 0);
    ck_assert_uint_eq(freed, SEGMENT_BLOCK_SLABS * SLAB_SIZE);
    ck_assert_int_eq(allocator_verify(), 0);
}

START_TEST(test_stats_free_excludes_slab_ends)
{
    check_slab_free_bytes(0);
    check_slab_free_bytes(1);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *lifecycle_suite(void)
{
    Suite *s = suite_create("lifecycle hardening");
    TCase *tc = tcase_create("destructors");
    tcase_add_checked_fixture(tc, setup_concurrent, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_alloc_in_last_destructor_round);
    tcase_add_test(tc, test_free_in_last_destructor_round);
    tcase_add_test(tc, test_first_alloc_in_destructor);
    tcase_add_test(tc, test_first_alloc_in_last_destructor_round);
    tcase_add_test(tc, test_alloc_in_thread_local_destructor);
#if !defined(__SANITIZE_THREAD__)
    tcase_add_test(tc, test_unarmed_hook_free_remote);
    tcase_add_test(tc, test_unarmed_hook_alloc);
#endif
    suite_add_tcase(s, tc);

    tc = tcase_create("fork");
    tcase_add_checked_fixture(tc, setup_concurrent, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_fork_handler_before_library);
    tcase_add_test(tc, test_fork_handlers_both_sides);
    tcase_add_test(tc, test_fork_handler_first_use);
#if !defined(__SANITIZE_THREAD__)
    tcase_add_test(tc, test_fork_handlers_threaded_parent);
#endif
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_no_thread_key_left);
    tcase_add_test(tc, test_stats_free_excludes_slab_ends);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], KEYS_CHILD_ARG) == 0)
        return no_key_left_checks();
    if (pthread_key_create(&key_before_library, late_key_destructor) != 0)
        return EXIT_FAILURE;
    SRunner *sr = srunner_create(lifecycle_suite());
    int failed;
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
