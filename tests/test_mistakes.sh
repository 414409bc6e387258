#!/bin/sh
# SPDX-License-Identifier: MIT
# test_mistakes.sh - runs tests/mistakes under the memory checker this build
# was made for (PA_TOOL: memcheck, asan, hardened; anything else runs only
# the program without a mistake) and checks that each mistake is reported
# as exactly that mistake, and that correct use reports nothing.
set -u
prog=${top_builddir:-.}/tests/mistakes
tool=${PA_TOOL:-none}
out=${TMPDIR:-/tmp}/mistakes.$$
trap 'rm -f "$out"' EXIT
failures=0

fail() {
    echo "FAIL: $*"
    sed 's/^/    /' "$out"
    failures=$((failures + 1))
}

# run MODE: runs the program under the tool; sets rc, output in $out.
run() {
    case $tool in
    memcheck)
        ${LIBTOOL:-libtool} --mode=execute ${VALGRIND:-valgrind} --error-exitcode=99 \
            --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
            "$prog" "$1" >"$out" 2>&1 ;;
    asan)
        ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:detect_leaks=0 "$prog" "$1" >"$out" 2>&1 ;;
    *)
        "$prog" "$1" >"$out" 2>&1 ;;
    esac
    rc=$?
}

# expect MODE PATTERN...: the run fails and its output holds every pattern.
expect() {
    mode=$1
    shift
    run "$mode"
    [ "$rc" -ne 0 ] || { fail "$mode: not reported (exit 0)"; return; }
    for pattern in "$@"; do
        grep -q -- "$pattern" "$out" || { fail "$mode: no '$pattern' (exit $rc)"; return; }
    done
    echo "PASS: $mode reported"
}

run none
[ "$rc" -eq 0 ] && echo "PASS: no mistake, nothing reported" || fail "none: exit $rc"

case $tool in
memcheck)
    expect leak "ERROR SUMMARY: 1 errors from 1 contexts" \
        "100 bytes in 1 blocks are definitely lost"
    expect use-after-free "ERROR SUMMARY: 1 errors from 1 contexts" "Invalid read of size 1" \
        "is 0 bytes inside a block of size 40 free'd"
    expect past-end-slab "ERROR SUMMARY: 1 errors from 1 contexts" "Invalid read of size 1" \
        "is 0 bytes after a block of size 40 alloc'd"
    expect past-end-arena "ERROR SUMMARY: 1 errors from 1 contexts" "Invalid read of size 1" \
        "is 0 bytes after a block of size 10,000 alloc'd"
    expect leak-large "ERROR SUMMARY: 1 errors from 1 contexts" \
        "2,097,152 bytes in 1 blocks are definitely lost"
    # A reused mapping's address was another block's before: memcheck may
    # name either (the 3 MiB block freed there first, or a block "recently
    # re-allocated"), as it would for malloc's blocks at one address.
    expect use-after-free-large "ERROR SUMMARY: 1 errors from 1 contexts" \
        "Invalid read of size 1" "is 0 bytes inside a block of size [0-9,]* free'd"
    for mode in past-end-large past-end-aligned; do
        expect "$mode" "ERROR SUMMARY: 1 errors from 1 contexts" "Invalid read of size 1" \
            "is 0 bytes after a .*block of size 2,097,162 alloc'd"
    done
    ;;
asan)
    for mode in use-after-free past-end-slab past-end-arena use-after-free-large \
        past-end-large past-end-aligned; do
        expect "$mode" "ERROR: AddressSanitizer: use-after-poison" "READ of size 1" \
            "main .*mistakes.c"
    done
    ;;
hardened)
    for mode in overflow-slab overflow-arena overflow-free-neighbour; do
        run "$mode"
        victim=$(sed -n 's/^victim //p' "$out")
        if [ "$rc" -ne 0 ]; then
            fail "$mode: exit $rc"
        elif ! grep -q "^pallocator: verify: block $victim: canary overwritten" "$out" ||
            ! grep -q "^pallocator: verify: in heap [0-9]" "$out"; then
            fail "$mode: verify does not name block $victim"
        elif ! grep -q "^pallocator: myfree: block $victim: canary overwritten" "$out"; then
            fail "$mode: free does not name block $victim"
        elif [ "$mode" = overflow-free-neighbour ] &&
            ! grep -q "^pallocator: slab .*: free block .* has a broken link" "$out"; then
            fail "$mode: the broken link was not reported"
        else
            echo "PASS: $mode reported by verify and free, the heap works on"
        fi
    done
    ;;
esac
[ "$failures" -eq 0 ]
