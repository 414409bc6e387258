/* SPDX-License-Identifier: MIT */
/*
 * simple_alloc.c - a tour of libpallocator: allocate, use, resize, look at
 * the statistics, check the heap, see an invalid free rejected, clean up.
 *
 * Build against an installed library:  cc simple_alloc.c -o simple_alloc -lpallocator
 * Exits 0 when everything behaved as documented.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Step 5 frees invalid pointers on purpose: without the header's attributes
 * that would have the compiler flag them. */
#define PALLOCATOR_NO_CHECK_ATTRIBUTES 1
#include <pallocator.h>

static int failures;

static void check(int ok, const char *what)
{
    printf("  [%s] %s\n", ok ? "ok" : "FAILED", what);
    if (!ok)
        failures++;
}

static void show_stats(const char *when)
{
    size_t allocated = 0, freed = 0, peak = 0;
    allocator_stats(&allocated, &freed, &peak);
    printf("  stats %s: allocated %zu bytes, free in heaps %zu bytes, peak %zu bytes\n",
           when, allocated, freed, peak);
}

int main(void)
{
    char *greeting, *bigger;
    int *numbers, local = 0, r, e;
    size_t i;

    printf("libpallocator %d.%d.%d simple demo\n", PALLOCATOR_VERSION_MAJOR,
           PALLOCATOR_VERSION_MINOR, PALLOCATOR_VERSION_PATCH);

    /* Single-threaded mode: one heap, no locks.  allocator_init(1), or no
     * call at all, gives the thread-parallel mode instead. */
    printf("\n1. initialise\n");
    check(allocator_init(0) == 0, "allocator_init(0) selects the single-threaded mode");

    printf("\n2. allocate and use memory\n");
    greeting = myalloc(32);
    check(greeting != NULL, "myalloc(32) returned a block");
    if (greeting == NULL)
        return 1;
    strcpy(greeting, "hello, allocator");
    printf("  block %p holds \"%s\" (%zu usable bytes)\n", (void *)greeting, greeting,
           myalloc_usable_size(greeting));
    check(((size_t)greeting % PALLOCATOR_ALIGNMENT) == 0, "the block is 16-byte aligned");

    numbers = mycalloc(100, sizeof *numbers);
    check(numbers != NULL, "mycalloc(100, sizeof(int)) returned a block");
    if (numbers == NULL)
        return 1;
    r = 1;
    for (i = 0; i < 100; i++)
        r &= numbers[i] == 0;
    check(r, "mycalloc memory is zeroed");
    for (i = 0; i < 100; i++)
        numbers[i] = (int)(i * i);
    show_stats("with two blocks");

    printf("\n3. resize\n");
    bigger = myrealloc(greeting, 4096);
    check(bigger != NULL, "myrealloc grew the block to 4096 bytes");
    if (bigger == NULL)
        return 1;
    check(strcmp(bigger, "hello, allocator") == 0, "the contents survived the move");
    printf("  block is now at %p (%s)\n", (void *)bigger,
           bigger == greeting ? "grown in place" : "moved");
    greeting = bigger;
    show_stats("after growing");

    printf("\n4. check the heap\n");
    check(allocator_verify() == 0, "allocator_verify() finds every invariant intact");

    printf("\n5. free, and see invalid frees rejected\n");
    check(myfree(greeting) == 0, "myfree(greeting) succeeds");
    errno = 0;
    r = myfree(greeting);
    e = errno;
    printf("  second myfree(greeting) returned %d, errno %d (%s)\n", r, e, strerror(e));
    check(r == -1 && e == EINVAL, "the double free is detected: -1 with EINVAL");
    errno = 0;
    r = myfree(&local);
    e = errno;
    check(r == -1 && e == EINVAL, "freeing a stack address is rejected too");
    errno = 0;
    r = myfree((char *)numbers + 8);
    e = errno;
    check(r == -1 && e == EINVAL, "so is a pointer into the middle of a block");
    check(numbers[99] == 99 * 99, "and the block it pointed into is untouched");
    check(myfree(numbers) == 0, "myfree(numbers) succeeds");
    check(allocator_verify() == 0, "the heap is still sound");
    show_stats("after freeing everything");

    printf("\n6. clean up\n");
    check(allocator_cleanup() == 0, "allocator_cleanup() gives every mapping back");
    show_stats("after cleanup");

    printf("\n%s\n", failures ? "SOME CHECKS FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
