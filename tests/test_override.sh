#!/bin/sh
# SPDX-License-Identifier: MIT
# libpallocator-malloc preloaded into programs that know nothing of it:
# every allocation call, threads, fork and exec, allocation at exit
# (tests/override_prog.c), C++'s new and delete when a C++ compiler is at
# hand (tests/override_prog_cxx.cc), the three invalid-free policies and
# the other environment options; pallocator-run.
set -u
b="${top_builddir:-.}"
src="${top_srcdir:-.}"
lib="$b/.libs/libpallocator-malloc.so"
prog="$b/tests/override_prog"
[ -f "$lib" ] || { echo "test_override: $lib not built (static-only build?)"; exit 77; }
if [ "${PA_SANITIZED:-no}" = yes ]; then
    echo "test_override: sanitizer build, whose runtime must be loaded first; skipped"
    exit 77
fi
lib=$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_override: $*"; for f in "$tmp"/out "$tmp"/err; do [ -f "$f" ] && sed 's/^/  | /' "$f"; done; exit 1; }

# run ENV... -- ARGS: runs the program preloaded; rc, out and err kept.
run() {
    env "$@" LD_PRELOAD="$lib" "$prog_run" $prog_args >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

prog_run=$prog prog_args=
run PALLOCATOR_VERIFY=1
[ $rc -eq 0 ] || fail "override_prog failed (rc $rc)"
grep -q "all calls behaved" "$tmp/out" || fail "override_prog did not finish"
[ ! -s "$tmp/err" ] || fail "unexpected messages on stderr"

run PALLOCATOR_SHOW_STATS=1
[ $rc -eq 0 ] || fail "with PALLOCATOR_SHOW_STATS=1: rc $rc"
grep -Eq '^pallocator: at exit: allocated [0-9]+, free [0-9]+, peak [0-9]+, mapped [0-9]+, resident [0-9]+ bytes; heaps [1-9][0-9]*, segments [0-9]+' "$tmp/err" ||
    fail "no statistics at exit"
grep -q "numa" "$tmp/err" && fail "a NUMA line with the mode off"

run PALLOCATOR_SHOW_STATS=1 PALLOCATOR_NUMA=strict
[ $rc -eq 0 ] || fail "with PALLOCATOR_NUMA=strict: rc $rc"
grep -Eq '^pallocator: at exit: numa strict: node [0-9]+: [1-9][0-9]* heaps, [1-9][0-9]* resident pages;' "$tmp/err" ||
    fail "no heaps and pages by node at exit"

# A bad NUMA mode: one line from the allocator's initialisation, which
# under the override runs before main and must not lean on stdio (the
# child mode: one process, which neither forks nor execs).
prog_args=child
run PALLOCATOR_NUMA=sometimes PALLOCATOR_VERIFY=1
[ $rc -eq 0 ] || fail "with PALLOCATOR_NUMA=sometimes: rc $rc"
[ "$(grep -c '^pallocator: PALLOCATOR_NUMA=sometimes is not off, preferred or strict; using the default$' "$tmp/err")" -eq 1 ] ||
    fail "want one warning line for PALLOCATOR_NUMA=sometimes"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "PALLOCATOR_NUMA=sometimes: more than the warning on stderr"

prog_args=bad-free
run
[ $rc -ne 0 ] || fail "a bad free did not abort by default"
grep -q "after bad free" "$tmp/out" && fail "the program went on after a bad free"
grep -Eq '^pallocator: free\(\): invalid pointer 0x[0-9a-f]+$' "$tmp/err" || fail "no report of the bad free"
[ "$(grep -c "^pallocator:" "$tmp/err")" -eq 1 ] || fail "more than one line reported"

run PALLOCATOR_INVALID_FREE=warn PALLOCATOR_VERIFY=1
[ $rc -eq 0 ] || fail "PALLOCATOR_INVALID_FREE=warn: rc $rc"
grep -q "after double free" "$tmp/out" || fail "warn: the program did not go on"
[ "$(grep -c 'invalid pointer' "$tmp/err")" -eq 2 ] || fail "warn: want two reports"

run PALLOCATOR_INVALID_FREE=ignore PALLOCATOR_VERIFY=1
[ $rc -eq 0 ] || fail "PALLOCATOR_INVALID_FREE=ignore: rc $rc"
grep -q "after double free" "$tmp/out" || fail "ignore: the program did not go on"
[ ! -s "$tmp/err" ] || fail "ignore: messages on stderr"

run PALLOCATOR_INVALID_FREE=sometimes
[ $rc -ne 0 ] || fail "an unknown policy must leave the default (abort)"
grep -q "PALLOCATOR_INVALID_FREE=sometimes" "$tmp/err" || fail "no warning for an unknown value"

prog_args=child
run PALLOCATOR_NO_SUCH_OPTION=1 PALLOCATOR_VERIFY=yes PALLOCATOR_NUMA=off
[ $rc -eq 0 ] || fail "unknown options: rc $rc"
grep -q "PALLOCATOR_NO_SUCH_OPTION=1" "$tmp/err" || fail "no warning for an unknown variable"
grep -q "PALLOCATOR_VERIFY=yes" "$tmp/err" || fail "no warning for an unknown value"
[ "$(wc -l <"$tmp/err")" -eq 2 ] || fail "want one line per unknown option"

# The wrapper, pointed at the library of the build tree.
wrapper="$b/tools/pallocator-run"
if [ -x "$wrapper" ]; then
    grep -q '@libdir@' "$wrapper" && fail "pallocator-run: install path not substituted"
    PALLOCATOR_SHOW_STATS=1 "$wrapper" --library="$lib" "$prog" child >"$tmp/out" 2>"$tmp/err" ||
        fail "pallocator-run: the program failed"
    grep -q "^pallocator: at exit:" "$tmp/err" || fail "pallocator-run: the library was not loaded"
    "$wrapper" >"$tmp/out" 2>"$tmp/err"
    [ $? -eq 2 ] || fail "pallocator-run without a command: want status 2"
    "$wrapper" --library="$tmp/none.so" true >"$tmp/out" 2>"$tmp/err"
    [ $? -eq 127 ] || fail "pallocator-run with a missing library: want status 127"
    out=$("$wrapper" --library="$lib" sh -c 'echo "$LD_PRELOAD"')
    [ "${out%% *}" = "$lib" ] || fail "pallocator-run: LD_PRELOAD is '$out'"
else
    fail "$wrapper not built"
fi

cxx=${CXX:-c++}
if "$cxx" -O1 -o "$tmp/cxx" "$src/tests/override_prog_cxx.cc" 2>"$tmp/err"; then
    prog_run=$tmp/cxx prog_args=
    run PALLOCATOR_VERIFY=1
    [ $rc -eq 0 ] || fail "C++ new and delete: rc $rc"
    grep -q "new and delete behaved" "$tmp/out" || fail "C++ program did not finish"
else
    echo "test_override: no working C++ compiler ($cxx): new and delete not tried"
fi
echo "test_override: all cases passed"
