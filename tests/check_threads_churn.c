/* SPDX-License-Identifier: MIT */
/*
 * check_threads_churn.c - many threads allocating, reallocating and
 * freeing their own and each other's blocks at random, and the
 * introspection calls (verify, stats, dump) while they do.
 *
 * Concurrent mode, through <pallocator.h> only; the helpers and the
 * fixture are in thread_helpers.h.
 */
#include "thread_helpers.h"
#include "check_main.h"

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

static Suite *threads_churn_suite(void)
{
    Suite *s = suite_create("threads_churn");
    TCase *tc;

    tc = tcase_create("concurrent");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_many_threads);
    tcase_add_test(tc, test_verify_during_churn);
    tcase_add_test(tc, test_stats_dump_during_churn);
    suite_add_tcase(s, tc);
    return s;
}

PA_CHECK_MAIN(threads_churn_suite)
