/* SPDX-License-Identifier: MIT */
/*
 * test_binding.c - the library's own calls of its public functions bind
 * inside the library: a program that defines its own myalloc and myfree
 * (a common name for a wrapper) must not see mycalloc, myrealloc or the
 * library's internals call them. Linked against the shared library, where
 * interposition would otherwise happen through the PLT.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pallocator.h"

static int program_alloc_calls, program_free_calls;
static char program_arena[256];

/* The program's own wrappers, deliberately named like the library's calls. */
void *myalloc(size_t size)
{
    program_alloc_calls++;
    return size <= sizeof(program_arena) ? program_arena : NULL;
}

int myfree(void *ptr)
{
    (void)ptr;
    program_free_calls++;
    return 0;
}

static int failures;

static void expect(int cond, const char *what)
{
    printf("%s: %s\n", cond ? "PASS" : "FAIL", what);
    failures += !cond;
}

int main(void)
{
    unsigned char *z = mycalloc(4, 16);
    expect(z != NULL && z != (unsigned char *)program_arena, "mycalloc returns a block of its own");
    expect(z != NULL && myalloc_usable_size(z) >= 64, "the library knows mycalloc's block");

    char *r = myrealloc(NULL, 32);
    expect(r != NULL && r != program_arena, "myrealloc(NULL) allocates inside the library");
    if (r)
        strcpy(r, "kept");
    char *grown = r ? myrealloc(r, 100000) : NULL;
    expect(grown != NULL && strcmp(grown, "kept") == 0, "myrealloc moves a block inside the library");
    expect(grown == NULL || myalloc_usable_size(r) == 0 || r == grown,
           "myrealloc freed the old block inside the library");

    expect(program_alloc_calls == 0, "the program's myalloc was never called by the library");
    expect(program_free_calls == 0, "the program's myfree was never called by the library");
    expect(allocator_verify() == 0, "the heap verifies");
    allocator_cleanup();
    printf("%d passed, %d failed\n", 7 - failures, failures);
    return failures ? 1 : 0;
}
