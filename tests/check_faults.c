/* SPDX-License-Identifier: MIT */
/*
 * check_faults.c - the allocator when the kernel refuses: every call that
 * maps, unmaps or advises pages fails in turn (this program defines mmap,
 * munmap, madvise and mremap, which the statically linked library calls,
 * and passes the others on to the real ones), and the address space runs
 * out under RLIMIT_AS. Every request must then fail with ENOMEM or succeed,
 * nothing may crash, and allocator_verify must pass afterwards.
 *
 * Every test leaves the allocator cleaned up, so the suite also passes with
 * CK_FORK=no.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mremap */
#endif
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pallocator.h>

#include "testutil.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* ------------------------------------------------------------------ */
/* The interposed page calls                                            */
/* ------------------------------------------------------------------ */

enum fault_mode {
    FAULT_ONCE, /* only call number fault_at fails */
    FAULT_FROM  /* every call from number fault_at on fails */
};

/* ThreadSanitizer's runtime maps memory through these functions while it
 * starts, before it can run instrumented code: they and what they call are
 * left uninstrumented, and use the system call itself until the real
 * functions are known. */
#if defined(__SANITIZE_THREAD__)
#define NO_TSAN __attribute__((no_sanitize_thread))
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NO_TSAN __attribute__((no_sanitize("thread")))
#endif
#endif
#ifndef NO_TSAN
#define NO_TSAN
#endif

static int fault_armed;
static long fault_calls; /* calls counted while armed */
static long fault_hits;  /* calls made to fail */
static long fault_at;
static enum fault_mode fault_kind;

NO_TSAN static bool fault_now(void)
{
    if (!__atomic_load_n(&fault_armed, __ATOMIC_ACQUIRE))
        return false;
    long n = __atomic_add_fetch(&fault_calls, 1, __ATOMIC_RELAXED);
    bool hit = fault_kind == FAULT_ONCE ? n == fault_at : fault_at > 0 && n >= fault_at;
    if (hit)
        __atomic_add_fetch(&fault_hits, 1, __ATOMIC_RELAXED);
    return hit;
}

NO_TSAN static void fault_arm(long at, enum fault_mode kind)
{
    fault_at = at;
    fault_kind = kind;
    __atomic_store_n(&fault_calls, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fault_hits, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fault_armed, 1, __ATOMIC_RELEASE);
}

NO_TSAN static void fault_disarm(void)
{
    __atomic_store_n(&fault_armed, 0, __ATOMIC_RELEASE);
}

NO_TSAN static long fault_count(const long *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);
typedef int (*madvise_fn)(void *, size_t, int);
typedef void *(*mremap_fn)(void *, size_t, size_t, int, ...);

/* The next definitions: libc's, or a sanitizer's wrappers around them. */
static mmap_fn real_mmap;
static munmap_fn real_munmap;
static madvise_fn real_madvise;
static mremap_fn real_mremap;

__attribute__((constructor)) static void find_real_functions(void)
{
    real_mmap = (mmap_fn)dlsym(RTLD_NEXT, "mmap");
    real_munmap = (munmap_fn)dlsym(RTLD_NEXT, "munmap");
    real_madvise = (madvise_fn)dlsym(RTLD_NEXT, "madvise");
    real_mremap = (mremap_fn)dlsym(RTLD_NEXT, "mremap");
    if (!real_mmap || !real_munmap || !real_madvise || !real_mremap)
        abort();
}

NO_TSAN void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
    if (!real_mmap)
        return (void *)syscall(SYS_mmap, addr, length, prot, flags, fd, offset);
    if (fault_now()) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return real_mmap(addr, length, prot, flags, fd, offset);
}

NO_TSAN int munmap(void *addr, size_t length)
{
    if (!real_munmap)
        return (int)syscall(SYS_munmap, addr, length);
    if (fault_now()) {
        errno = ENOMEM; /* splitting a mapping past the map count */
        return -1;
    }
    return real_munmap(addr, length);
}

NO_TSAN int madvise(void *addr, size_t length, int advice)
{
    if (!real_madvise)
        return (int)syscall(SYS_madvise, addr, length, advice);
    if (fault_now()) {
        errno = EAGAIN;
        return -1;
    }
    return real_madvise(addr, length, advice);
}

NO_TSAN void *mremap(void *old_address, size_t old_size, size_t new_size, int flags, ...)
{
    void *new_address = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        new_address = va_arg(ap, void *);
        va_end(ap);
    }
    if (!real_mremap)
        return (void *)syscall(SYS_mremap, old_address, old_size, new_size, flags, new_address);
    if (fault_now()) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return real_mremap(old_address, old_size, new_size, flags, new_address);
}

/* ------------------------------------------------------------------ */
/* The workload                                                         */
/* ------------------------------------------------------------------ */

/* From a slab block to a large block of several segments. */
static const size_t sizes[] = {16,      100,      1000,    8192,    8200,    64 * KiB,
                               300 * KiB, 1 * MiB, 1 * MiB + 1, 2 * MiB, 4 * MiB};
#define SIZES (sizeof sizes / sizeof sizes[0])
#define SLOTS 16

struct workload {
    void *block[SLOTS];
    size_t size[SLOTS];
    size_t refused; /* requests answered NULL/ENOMEM */
    char error[160];
};

static int workload_fail(struct workload *w, const char *what, size_t size, int err)
{
    snprintf(w->error, sizeof w->error, "%s of %zu bytes: errno %d", what, size, err);
    return -1;
}

/* NULL is right only with ENOMEM. */
static int check_refusal(struct workload *w, const void *p, const char *what, size_t size)
{
    int err = errno;
    if (p)
        return 0;
    if (err != ENOMEM)
        return workload_fail(w, what, size, err);
    w->refused++;
    return 0;
}

static int workload_free(struct workload *w, size_t i)
{
    if (!w->block[i])
        return 0;
    if (!block_ok(w->block[i], w->size[i]))
        return workload_fail(w, "a block changed", w->size[i], 0);
    if (myfree(w->block[i]) != 0)
        return workload_fail(w, "myfree", w->size[i], errno);
    w->block[i] = NULL;
    return 0;
}

/* One step on slot i: a block for an empty slot (myalloc or mycalloc), else
 * a free or a realloc to another size. */
static int workload_step(struct workload *w, size_t i, uint64_t *rng)
{
    size_t size = sizes[test_rand_below(rng, SIZES)];
    unsigned op = (unsigned)test_rand_below(rng, 4);
    if (!w->block[i]) {
        errno = 0;
        void *p = op & 1 ? mycalloc(1, size) : myalloc(size);
        if (check_refusal(w, p, op & 1 ? "mycalloc" : "myalloc", size))
            return -1;
        if (p && (op & 1) && !test_all_bytes(p, size < 4096 ? size : 4096, 0))
            return workload_fail(w, "mycalloc gave non-zero bytes", size, 0);
        if (p)
            block_fill(p, size);
        w->block[i] = p;
        w->size[i] = size;
        return 0;
    }
    if (op < 2)
        return workload_free(w, i);
    errno = 0;
    void *q = myrealloc(w->block[i], size);
    if (check_refusal(w, q, "myrealloc", size))
        return -1;
    if (!q)
        return block_ok(w->block[i], w->size[i]) ? 0
               : workload_fail(w, "a block refused a realloc changed", w->size[i], 0);
    size_t keep = w->size[i] < size ? w->size[i] : size;
    if (!moved_ok(q, w->block[i], w->size[i], keep))
        return workload_fail(w, "myrealloc lost the contents", size, 0);
    block_fill(q, size);
    w->block[i] = q;
    w->size[i] = size;
    return 0;
}

static size_t workload_steps(void)
{
    return test_scale(160);
}

/* Runs the steps; 0, or -1 with w->error set. */
static int workload_run(struct workload *w)
{
    uint64_t rng = 0x5eed;
    for (size_t k = 0; k < workload_steps(); k++)
        if (workload_step(w, k % SLOTS, &rng))
            return -1;
    return 0;
}

static int workload_free_all(struct workload *w)
{
    for (size_t i = 0; i < SLOTS; i++)
        if (workload_free(w, i))
            return -1;
    return 0;
}

/* One run with the page calls failing as armed: the allocator is set up in
 * the given mode (which may fail too), the workload runs, then with nothing
 * failing any more the heap must verify, every block be intact and freed,
 * and a new request succeed. Returns the number of page calls the run made. */
static long faulty_run(int concurrent, long at, enum fault_mode kind, long *hits)
{
    struct workload w = {0};
    allocator_cleanup();
    fault_arm(at, kind);
    errno = 0;
    if (allocator_init(concurrent) != 0)
        ck_assert_msg(errno == ENOMEM, "allocator_init(%d) with call %ld failing: errno %d",
                      concurrent, at, errno);
    int rc = workload_run(&w);
    fault_disarm();
    long calls = fault_count(&fault_calls);
    *hits = fault_count(&fault_hits);
    ck_assert_msg(rc == 0, "mode %d, page call %ld failing (%s): %s", concurrent, at,
                  kind == FAULT_ONCE ? "once" : "from then on", w.error);
    ck_assert_msg(allocator_verify() == 0, "mode %d, page call %ld failing: verify failed",
                  concurrent, at);
    ck_assert_msg(workload_free_all(&w) == 0, "mode %d, page call %ld failing: %s", concurrent,
                  at, w.error);
    ck_assert_msg(allocator_verify() == 0,
                  "mode %d, page call %ld failing: verify failed after freeing", concurrent, at);
    for (size_t i = 0; i < SIZES; i++) {
        void *p = myalloc(sizes[i]);
        ck_assert_msg(p != NULL, "mode %d, page call %ld failed: %zu bytes refused afterwards",
                      concurrent, at, sizes[i]);
        ck_assert_int_eq(myfree(p), 0);
    }
    ck_assert_int_eq(allocator_verify(), 0);
    allocator_cleanup();
    return calls;
}

/* Fails each page call of the workload in turn. The number of calls varies
 * a little from run to run (an aligned mapping trims one end or both, as
 * the kernel places it), so N goes up to the most calls any run made. */
static void fail_each_call(int concurrent, enum fault_mode kind)
{
    long hits, total = faulty_run(concurrent, 0, kind, &hits);
    ck_assert_int_eq(hits, 0);
    ck_assert_int_gt(total, 0);
    long tried = 0, failed_calls = 0, most = total;
    for (long at = 1; at <= most; at++) {
        long calls = faulty_run(concurrent, at, kind, &hits);
        if (kind == FAULT_ONCE && calls > most)
            most = calls;
        tried += hits > 0;
        failed_calls += hits;
    }
    ck_assert_int_ge(tried, total / 2);
    printf("check_faults: mode %s, %s: %ld page calls in the workload, %ld runs with call N "
           "failing, %ld calls failed in all\n", concurrent ? "concurrent" : "single-threaded",
           kind == FAULT_ONCE ? "call N fails" : "every call from N on fails", total, tried,
           failed_calls);
    fflush(stdout);
}

START_TEST(test_each_page_call_fails_once)
{
    fail_each_call(_i, FAULT_ONCE);
}
END_TEST

START_TEST(test_page_calls_fail_from_then_on)
{
    fail_each_call(_i, FAULT_FROM);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Address space limit                                                  */
/* ------------------------------------------------------------------ */

/* The sanitizers reserve terabytes of shadow memory and valgrind maps its
 * own tools into the address space: under a limit they fail themselves. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PA_TEST_NO_ADDRESS_LIMIT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PA_TEST_NO_ADDRESS_LIMIT 1
#endif
#endif

static bool under_valgrind(void)
{
    const char *preload = getenv("LD_PRELOAD");
    return preload && strstr(preload, "vgpreload") != NULL;
}

static size_t address_space_used(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

#define LIMIT_BLOCKS 4096

/* In the child: fills the address space left under the limit, frees it
 * all, and fills it again. Returns 0, or the number of the check that
 * failed. */
static int address_limit_child(int concurrent)
{
    static void *blocks[LIMIT_BLOCKS];
    allocator_cleanup();
    if (allocator_init(concurrent) != 0)
        return 1;
    void *first = myalloc(16); /* the segment map is reserved on first use */
    if (!first)
        return 2;
    struct rlimit lim = {.rlim_cur = address_space_used() + 64 * MiB};
    lim.rlim_max = lim.rlim_cur;
    if (setrlimit(RLIMIT_AS, &lim) != 0)
        return 3;
    for (int round = 0; round < 2; round++) {
        size_t n = 0, refused = 0;
        for (size_t k = 0; n < LIMIT_BLOCKS && refused < 3 * SIZES; k++) {
            size_t size = sizes[k % SIZES];
            errno = 0;
            void *p = myalloc(size);
            if (!p) {
                if (errno != ENOMEM)
                    return 10;
                refused++;
                continue;
            }
            memset(p, 1, size < 4096 ? size : 4096);
            blocks[n++] = p;
        }
        if (refused == 0 || n == 0)
            return 11; /* the limit was never reached, or nothing fitted */
        if (allocator_verify() != 0)
            return 12;
        for (size_t i = 0; i < n; i++)
            if (myfree(blocks[i]) != 0)
                return 13;
        if (allocator_verify() != 0)
            return 14;
        /* Everything given back: each size fits again. */
        for (size_t i = 0; i < SIZES; i++) {
            void *p = myalloc(sizes[i]);
            if (!p)
                return 20 + (int)i;
            myfree(p);
        }
    }
    return myfree(first) == 0 && allocator_verify() == 0 ? 0 : 40;
}

START_TEST(test_address_space_limit)
{
#ifdef PA_TEST_NO_ADDRESS_LIMIT
    return;
#endif
    if (under_valgrind())
        return;
    allocator_cleanup();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(address_limit_child(_i));
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "child ended by signal %d", WTERMSIG(status));
    ck_assert_msg(WEXITSTATUS(status) == 0, "mode %d under RLIMIT_AS: check %d failed", _i,
                  WEXITSTATUS(status));
}
END_TEST

/* ------------------------------------------------------------------ */

static void teardown(void)
{
    fault_disarm();
    allocator_cleanup();
}

static Suite *faults_suite(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("page calls fail");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_each_page_call_fails_once, 0, 2);
    tcase_add_loop_test(tc, test_page_calls_fail_from_then_on, 0, 2);
    suite_add_tcase(s, tc);
    tc = tcase_create("address space limit");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_address_space_limit, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(faults_suite());
    int failed;
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
