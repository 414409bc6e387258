/* SPDX-License-Identifier: MIT */
/*
 * verify.c - the one report every layer's verifier makes when it finds a
 * structure broken (allocator_verify, and the assertions of debug builds).
 */
#include <stdarg.h>

#include "internal.h"

int pa_verify_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pallocator: verify: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return -1;
}
