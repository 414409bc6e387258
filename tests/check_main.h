/* SPDX-License-Identifier: MIT */
/*
 * check_main.h - the main() of the Check programs split by area: it runs the
 * program's one suite and exits non-zero when a test failed.
 *
 * Check reads its settings from the environment (CK_ENV): CK_FORK=no runs
 * every test in this process (valgrind needs that; the fixtures clean the
 * allocator up so that tests still start from scratch), CK_RUN_CASE and
 * CK_RUN_SUITE pick tests, CK_TIMEOUT_MULTIPLIER stretches the timeouts
 * for slow runners.  PA_TEST_SCALE=small shrinks the loop counts (see
 * test_scale() in testutil.h).
 */
#ifndef PA_CHECK_MAIN_H
#define PA_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

/* Expands to main(), running the Suite that make_suite() returns. */
#define PA_CHECK_MAIN(make_suite)                               \
    int main(void)                                              \
    {                                                           \
        SRunner *sr = srunner_create(make_suite());             \
        int failed;                                             \
        srunner_run_all(sr, CK_ENV);                            \
        failed = srunner_ntests_failed(sr);                     \
        srunner_free(sr);                                       \
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;       \
    }

#endif /* PA_CHECK_MAIN_H */
