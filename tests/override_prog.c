/* SPDX-License-Identifier: MIT */
/*
 * override_prog.c - a program that knows nothing of libpallocator and uses
 * the C library's allocation calls the way programs do, for
 * test_override.sh to run with libpallocator-malloc preloaded: every call,
 * threads that start and exit, a thread destructor and an atexit handler
 * that allocate, fork with and without exec. It checks its own results and
 * exits non-zero on the first wrong one; with an argument it makes one
 * deliberate mistake instead.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "override_prog: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                            \
        }                                                                       \
    } while (0)

static void fill_check(unsigned char *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i);
    for (size_t i = 0; i < n; i++)
        CHECK(p[i] == (unsigned char)(seed + i));
}

static void calls(void)
{
    static const size_t sizes[] = {0, 1, 24, 100, 4096, 9000, 70000, 1 << 20, 3 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = malloc(sizes[i]);
        CHECK(p && ((uintptr_t)p & 15) == 0);
        CHECK(malloc_usable_size(p) >= sizes[i]);
        fill_check(p, sizes[i], (unsigned char)i);
        p = realloc(p, sizes[i] * 2 + 10);
        CHECK(p);
        for (size_t k = 0; k < sizes[i]; k++)
            CHECK(p[k] == (unsigned char)(i + k));
        free(p);
        unsigned char *z = calloc(sizes[i] + 1, 3);
        CHECK(z);
        for (size_t k = 0; k < 3 * (sizes[i] + 1); k++)
            CHECK(z[k] == 0);
        free(z);
    }
    /* Sizes the compiler cannot see, so it lets the calls through. */
    volatile size_t half = SIZE_MAX / 2, most = SIZE_MAX - 10;
    errno = 0;
    CHECK(calloc(half, 4) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(most) == NULL && errno == ENOMEM);
    CHECK(reallocarray(NULL, half, 4) == NULL && errno == ENOMEM);
    int *arr = reallocarray(NULL, 100, sizeof(int));
    CHECK(arr);
    free(arr);
    /* glibc's realloc(p, 0) frees p. */
    CHECK(realloc(malloc(10), 0) == NULL);

    for (size_t a = sizeof(void *); a <= ((size_t)4 << 20); a <<= 1) {
        void *p = NULL;
        CHECK(posix_memalign(&p, a, 1000) == 0 && ((uintptr_t)p & (a - 1)) == 0);
        fill_check(p, 1000, 7);
        free(p);
        p = aligned_alloc(a, 3 * a);
        CHECK(p && ((uintptr_t)p & (a - 1)) == 0);
        free(p);
        p = memalign(a, 50);
        CHECK(p && ((uintptr_t)p & (a - 1)) == 0);
        free(p);
    }
    void *p = (void *)1;
    CHECK(posix_memalign(&p, 24, 10) == EINVAL && p == (void *)1);
    CHECK(posix_memalign(&p, 4, 10) == EINVAL);
    p = memalign(48, 10); /* rounded up to 64 */
    CHECK(p && ((uintptr_t)p & 63) == 0);
    free(p);
    long page = sysconf(_SC_PAGESIZE);
    p = valloc(10);
    CHECK(p && ((uintptr_t)p & (uintptr_t)(page - 1)) == 0);
    free(p);
    p = pvalloc(10);
    CHECK(p && ((uintptr_t)p & (uintptr_t)(page - 1)) == 0);
    CHECK(malloc_usable_size(p) >= (size_t)page);
    free(p);
    CHECK(malloc_usable_size(NULL) == 0);
    free(NULL);
    char *s = strdup("a string from the C library");
    CHECK(s && strcmp(s, "a string from the C library") == 0);
    free(s);
}

static pthread_key_t key;

static void destructor(void *v)
{
    free(v);
    /* Allocating in a thread destructor, after the allocator's own. */
    void *late = malloc(500);
    CHECK(late);
    free(late);
}

static void *worker(void *arg)
{
    void **shared = arg;
    pthread_setspecific(key, malloc(64));
    for (int r = 0; r < 2000; r++) {
        void *p = malloc((size_t)(r * 37) % 20000);
        CHECK(p);
        free(p);
    }
    *shared = malloc(1000); /* freed by the main thread */
    return NULL;
}

static void threads(void)
{
    CHECK(pthread_key_create(&key, destructor) == 0);
    for (int round = 0; round < 20; round++) {
        pthread_t t[4];
        void *out[4];
        for (int i = 0; i < 4; i++)
            CHECK(pthread_create(&t[i], NULL, worker, &out[i]) == 0);
        for (int i = 0; i < 4; i++) {
            CHECK(pthread_join(t[i], NULL) == 0);
            free(out[i]);
        }
    }
}

static void forks(const char *self)
{
    void *before = malloc(5000);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* The child allocates and frees what its parent had. */
        free(before);
        void *q = malloc(100);
        free(q);
        execl(self, self, "child", (char *)NULL);
        _exit(127);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    pid = fork();
    if (pid == 0) {
        free(malloc(77));
        _exit(0);
    }
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    free(before);
}

static void *at_exit_block;

static void at_exit(void)
{
    free(at_exit_block);
    char *p = malloc(1234);
    CHECK(p);
    free(p);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        calls();
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "bad-free") == 0) {
        /* Through a volatile, so the compiler does not see the mistakes. */
        volatile uintptr_t p = (uintptr_t)malloc(100);
        free((void *)(p + 16));
        puts("after bad free");
        free((void *)p);
        free((void *)p); /* a double free */
        puts("after double free");
        return 0;
    }
    at_exit_block = malloc(300);
    CHECK(atexit(at_exit) == 0);
    calls();
    threads();
    forks(argv[0]);
    puts("override_prog: all calls behaved");
    return 0;
}
