#!/bin/sh
# SPDX-License-Identifier: MIT
# The shared library exports exactly the calls declared in the public
# header, and the static archive defines no global symbol outside the
# library's namespaces (my*, allocator_*, pa_*): a program linked
# statically with it can use any other name. (AddressSanitizer adds an
# __odr_asan. twin of each global, named after it.)
set -eu
libs="${top_builddir:-.}/.libs"
so="$libs/libpallocator.so"
archive="$libs/libpallocator.a"
header="${top_srcdir:-.}/include/pallocator.h"
nm_cmd="${NM:-nm}"
status=77

expected=$(sed -n 's/^PALLOCATOR_API[^(]*[ *]\([a-z_][a-z_0-9]*\)(.*/\1/p' "$header" | sort)
[ -n "$expected" ] || { echo "test_exports: no API found in $header"; exit 1; }

if [ -f "$so" ]; then
    exported=$($nm_cmd -D --defined-only "$so" | awk '$2 ~ /^[TWDBRV]$/ {print $3}' | sort)
    if [ "$expected" != "$exported" ]; then
        echo "test_exports: exported symbols differ from the public API"
        echo "expected:"; echo "$expected"
        echo "exported:"; echo "$exported"
        exit 1
    fi
    echo "test_exports: $(echo "$exported" | wc -l) public symbols, nothing else"
    status=0
fi

if [ -f "$archive" ]; then
    stray=$($nm_cmd -g --defined-only "$archive" |
        awk 'NF == 3 && $2 ~ /^[TWDBRVC]$/ {print $3}' |
        sed 's/^__odr_asan\.//' | sort -u |
        grep -vE '^(my|allocator_|pa_)' || true)
    if [ -n "$stray" ]; then
        echo "test_exports: the static archive defines names outside the library's namespaces:"
        echo "$stray"
        exit 1
    fi
    echo "test_exports: every global of the static archive is namespaced"
    status=0
fi
[ "$status" = 77 ] && echo "test_exports: no library built"
exit "$status"
