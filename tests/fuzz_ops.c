/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ops.c - drives the public API from a byte string: each byte pair is
 * an operation (allocate, free, reallocate, free a pointer that is not a
 * live block) and its argument. Whatever the bytes, valid operations must
 * succeed with their contents intact, invalid frees must fail with EINVAL,
 * and allocator_verify() must find the heap sound.
 *
 * Built two ways: as a libFuzzer target (make fuzz, with clang), and as a
 * plain program run by make check that feeds it seeded random inputs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pallocator.h>

#include "testutil.h"

#define SLOTS 64

struct slot {
    unsigned char *p;
    size_t n;
};

static void fuzz_fail(const char *what, size_t op)
{
    fprintf(stderr, "fuzz_ops: %s at operation %zu\n", what, op);
    abort();
}

static size_t size_from(uint8_t a, uint8_t b)
{
    /* Mostly small, sometimes up to 2 MiB (past the large threshold). */
    switch (a & 3) {
    case 0:
    case 1:
        return b;
    case 2:
        return (size_t)b << 6;
    default:
        return (size_t)b << 13;
    }
}

static void check_and_free(struct slot *s, size_t op)
{
    if (!test_check_fill(s->p, s->n < 256 ? s->n : 256))
        fuzz_fail("block contents changed", op);
    if (myfree(s->p) != 0)
        fuzz_fail("valid free refused", op);
    s->p = NULL;
}

/* A pointer that is certainly not a live block start. */
static void free_invalid(struct slot *slots, uint8_t arg, size_t op)
{
    static int not_heap;
    struct slot *s = &slots[arg % SLOTS];
    unsigned char *bad;
    if (s->p)
        bad = s->p + 1 + (arg % (myalloc_usable_size(s->p) - 1)); /* interior or misaligned */
    else
        bad = (unsigned char *)&not_heap;
    errno = 0;
    if (myfree(bad) != -1 || errno != EINVAL)
        fuzz_fail("invalid free accepted", op);
}

static void run_ops(const uint8_t *data, size_t size)
{
    struct slot slots[SLOTS] = {{0}};
    for (size_t i = 0; i + 2 < size; i += 3) {
        size_t op = i / 3;
        struct slot *s = &slots[data[i + 1] % SLOTS];
        switch (data[i] % 5) {
        case 0: /* allocate */
        case 1:
            if (s->p)
                check_and_free(s, op);
            s->n = size_from(data[i], data[i + 2]);
            s->p = myalloc(s->n);
            if (!s->p || ((uintptr_t)s->p & 15))
                fuzz_fail("allocation failed or misaligned", op);
            test_fill(s->p, s->n < 256 ? s->n : 256);
            break;
        case 2: /* free, remembering the pointer for a double free */
            if (s->p) {
                unsigned char *stale = s->p;
                check_and_free(s, op);
                errno = 0;
                if (myfree(stale) != -1 || errno != EINVAL)
                    fuzz_fail("double free accepted", op);
            }
            break;
        case 3: /* reallocate */
            if (s->p) {
                size_t n = size_from(data[i], data[i + 2]);
                size_t keep = n < s->n ? n : s->n;
                unsigned char *q = myrealloc(s->p, n);
                if (!q)
                    fuzz_fail("reallocation failed", op);
                if (keep > 256)
                    keep = 256;
                for (size_t k = 0; k < keep; k++)
                    if (q[k] != test_pattern_byte(s->p, k))
                        fuzz_fail("reallocation lost contents", op);
                s->p = q;
                s->n = n;
                test_fill(q, n < 256 ? n : 256);
            }
            break;
        default:
            free_invalid(slots, data[i + 2], op);
            break;
        }
        if (op % 64 == 63 && allocator_verify() != 0)
            fuzz_fail("allocator_verify failed", op);
    }
    for (int k = 0; k < SLOTS; k++)
        if (slots[k].p)
            check_and_free(&slots[k], size / 3);
    if (allocator_verify() != 0)
        fuzz_fail("allocator_verify failed at the end", size / 3);
    size_t allocated = 1;
    allocator_stats(&allocated, NULL, NULL);
    if (allocated != 0)
        fuzz_fail("bytes still allocated after freeing everything", size / 3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_ops(data, size);
    return 0;
}

#ifndef PA_LIBFUZZER
/* Standalone: seeded random inputs, in both modes. */
int main(void)
{
    size_t rounds = test_scale(400);
    uint64_t seed = 0x2545f4914f6cdd1dULL;
    static uint8_t input[3 * 4096];
    for (size_t r = 0; r < rounds; r++) {
        size_t len = 3 * (1 + test_rand_below(&seed, 4096));
        for (size_t i = 0; i < len; i++)
            input[i] = (uint8_t)test_rand(&seed);
        if (allocator_init(r & 1) != 0)
            fuzz_fail("allocator_init failed", 0);
        run_ops(input, len);
        allocator_cleanup();
    }
    printf("fuzz_ops: %zu random inputs passed\n", rounds);
    return 0;
}
#endif
