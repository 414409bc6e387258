#!/bin/sh
# The shared library exports exactly the calls declared in the public
# header: nothing internal leaks out.
set -eu
so="${top_builddir:-.}/.libs/libpallocator.so"
header="${top_srcdir:-.}/include/pallocator.h"
[ -f "$so" ] || { echo "test_exports: $so not built (static-only build?)"; exit 77; }
nm_cmd="${NM:-nm}"
expected=$(sed -n 's/^PALLOCATOR_API[^(]*[ *]\([a-z_][a-z_0-9]*\)(.*/\1/p' "$header" | sort)
exported=$($nm_cmd -D --defined-only "$so" | awk '$2 ~ /^[TWDBRV]$/ {print $3}' | sort)
[ -n "$expected" ] || { echo "test_exports: no API found in $header"; exit 1; }
if [ "$expected" != "$exported" ]; then
    echo "test_exports: exported symbols differ from the public API"
    echo "expected:"; echo "$expected"
    echo "exported:"; echo "$exported"
    exit 1
fi
echo "test_exports: $(echo "$exported" | wc -l) public symbols, nothing else"
