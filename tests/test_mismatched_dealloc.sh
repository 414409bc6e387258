#!/bin/sh
# SPDX-License-Identifier: MIT
# The attributes of <pallocator.h> reach the compiler: GCC 11 and later
# must reject (with -Wmismatched-dealloc -Werror) a program that hands a
# myalloc block to free(), and accept the same program using myfree; and
# alloc_size must let it see a write past the end of a block.
# Other compilers lack the first check: skipped.
set -u
cc_cmd="${CC:-cc}"
include="${top_srcdir:-.}/include"
tmp="${TMPDIR:-/tmp}/pa_mismatch.$$"
mkdir "$tmp" || exit 99
trap 'rm -rf "$tmp"' EXIT

# GCC proper, version 11 or later (clang also defines __GNUC__).
cat > "$tmp/version.c" <<'SRC'
#if !defined(__GNUC__) || defined(__clang__) || __GNUC__ < 11
#error not GCC 11 or later
#endif
int main(void) { return 0; }
SRC
if ! $cc_cmd -c "$tmp/version.c" -o "$tmp/version.o" 2>/dev/null; then
    echo "test_mismatched_dealloc: $cc_cmd is not GCC 11 or later: skipped"
    exit 77
fi

# $1: the deallocator the program calls.
write_program() {
    cat > "$tmp/prog.c" <<SRC
#include <stdlib.h>
#include <string.h>
#include <pallocator.h>

int main(void)
{
    char *a = myalloc(32);
    char *c = mycalloc(4, 8);
    char *r = myrealloc(NULL, 64);

    if (a == NULL || c == NULL || r == NULL)
        return 1;
    memset(a, 1, 32);
    $1(a);
    $1(c);
    $1(r);
    return 0;
}
SRC
}

compile() {
    LC_ALL=C $cc_cmd -std=gnu11 -O2 -Wall -Wmismatched-dealloc -Werror -I"$include" \
        -c "$tmp/prog.c" -o "$tmp/prog.o" > "$tmp/out" 2>&1
}

write_program myfree
if ! compile; then
    echo "test_mismatched_dealloc: the correct program does not compile:"
    cat "$tmp/out"
    exit 1
fi

write_program free
if compile; then
    echo "test_mismatched_dealloc: free() of a myalloc block compiled without a warning"
    exit 1
fi
# One warning for each of the three blocks, naming its allocation call.
n=$(grep -c "mismatched allocation function.*mismatched-dealloc\]" "$tmp/out")
for call in myalloc mycalloc myrealloc; do
    grep -q "returned from '$call'" "$tmp/out" || n=0
done
if [ "$n" -ne 3 ]; then
    echo "test_mismatched_dealloc: expected a -Wmismatched-dealloc warning for each block:"
    cat "$tmp/out"
    exit 1
fi

# alloc_size: the compiler knows the block has 4 bytes.
cat > "$tmp/prog.c" <<'SRC'
#include <string.h>
#include <pallocator.h>

int main(void)
{
    char *a = myalloc(4);

    if (a == NULL)
        return 1;
    memset(a, 0, 8);
    myfree(a);
    return 0;
}
SRC
if compile || ! grep -Eq "region of size 4|bounds \[0, 4\]" "$tmp/out"; then
    echo "test_mismatched_dealloc: an 8-byte write into myalloc(4) went unnoticed:"
    cat "$tmp/out"
    exit 1
fi
echo "test_mismatched_dealloc: free() of myalloc, mycalloc and myrealloc blocks and an overflow rejected"
exit 0
