/* SPDX-License-Identifier: MIT */
/*
 * check_threads_lifetime.c - threads that end or outlive the
 * allocator: threads that exit with live blocks, threads that outlive
 * allocator_cleanup(), many short threads, and fork() from a threaded
 * parent.
 *
 * Concurrent mode, through <pallocator.h> only; the helpers and the
 * fixture are in thread_helpers.h.
 */
#include "thread_helpers.h"
#include "check_main.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

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

static Suite *threads_lifetime_suite(void)
{
    Suite *s = suite_create("threads_lifetime");
    TCase *tc;

    tc = tcase_create("concurrent");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_thread_exit_live_blocks);
    tcase_add_test(tc, test_threads_outlive_cleanup);
    tcase_add_test(tc, test_many_short_threads);
#if !defined(__SANITIZE_THREAD__)
    tcase_add_test(tc, test_fork_threaded_parent);
#endif
    suite_add_tcase(s, tc);
    return s;
}

PA_CHECK_MAIN(threads_lifetime_suite)
