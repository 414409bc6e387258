/* SPDX-License-Identifier: MIT */
/*
 * strdup.c - mystrdup and mystrndup: copies of strings in blocks of the
 * allocator, which every user would otherwise write by hand.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "pallocator.h"

static char *strdup_copy(const char *s, size_t len)
{
    /* len < SIZE_MAX: it counts bytes of an object in memory. */
    char *copy = myalloc(len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

PALLOCATOR_API char *mystrdup(const char *s)
{
    return strdup_copy(s, strlen(s));
}

PALLOCATOR_API char *mystrndup(const char *s, size_t n)
{
    return strdup_copy(s, strnlen(s, n));
}
