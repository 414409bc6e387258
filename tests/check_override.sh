#!/bin/sh
# SPDX-License-Identifier: MIT
# make check-override: real programs from the distribution run on
# libpallocator-malloc and on glibc's malloc, and must behave the same:
# python3 (an allocation-heavy script and modules of its own test suite),
# sqlite3, xz -T2 and pigz, git, gcc and sort. Each workload runs in a
# directory of its own under each allocator, every command under a
# timeout; the outputs and exit statuses must match, and no run may
# report an invalid free (the library's default is to abort on one, and
# PALLOCATOR_VERIFY=1 checks the heaps of every process at its exit).
set -u
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
# The python script and the sqlite job, shared with bench/run-programs.
programs=$(cd "$(dirname "$0")/../bench/programs" && pwd)
limit=${OVERRIDE_TIMEOUT:-120}
export LC_ALL=C TZ=UTC
# Debian's python3 when there is one, whatever else PATH offers.
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3

have() { command -v "$1" >/dev/null 2>&1; }

# ---- workloads: each writes what must match to stdout --------------------

wl_python() {
    "$python" "$programs/alloc-heavy.py"
}

wl_python_tests() {
    # Quiet mode; the summary's last line is the verdict.
    "$python" -m test -q test_dict test_list test_set test_json test_heapq test_deque \
        2>&1 | grep -E '^(Tests result|== Tests result)' | tail -n 1
}

wl_sqlite() {
    sqlite3 db <"$programs/sqlite-job.sql"
}

# A 30 MB file that compresses, but not to nothing.
make_input() {
    awk 'BEGIN { srand(14); for (i = 0; i < 600000; i++)
        printf "%08d %s %d\n", i, substr("lorem ipsum dolor sit amet consectetur", 1 + int(rand() * 20)), int(rand() * 1e9) }' |
        head -c 31457280 >input
}

wl_xz() {
    make_input
    xz -T2 -1 -k input && xz -d -T2 -c input.xz >output && cmp input output &&
        sha256sum input.xz | cut -d' ' -f1
}

wl_pigz() {
    make_input
    pigz -p 2 -n -k input && pigz -d -p 2 -c input.gz >output && cmp input output &&
        sha256sum input.gz | cut -d' ' -f1
}

wl_git() {
    export GIT_AUTHOR_NAME=tester GIT_AUTHOR_EMAIL=t@example.org \
        GIT_COMMITTER_NAME=tester GIT_COMMITTER_EMAIL=t@example.org \
        GIT_CONFIG_NOSYSTEM=1 HOME="$PWD"
    git init -q -b main repo && cd repo || return 1
    i=0
    while [ $i -lt 300 ]; do
        echo "line $i" >>"file$((i % 17))"
        git add -A
        GIT_AUTHOR_DATE="@$((1700000000 + i)) +0000" GIT_COMMITTER_DATE="@$((1700000000 + i)) +0000" \
            git commit -q -m "commit $i"
        i=$((i + 1))
    done
    cd .. && git clone -q repo clone && cd clone &&
        git log --format='%H %s' | head -n 3 && git log --stat | sha256sum | cut -d' ' -f1 &&
        git gc -q && git fsck --strict 2>&1 && git rev-list --count HEAD
}

wl_gcc() {
    cat >prog.c <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node { struct node *next; char name[32]; int weight; };
static int cmp(const void *a, const void *b)
{
    const struct node *x = *(const struct node *const *)a, *y = *(const struct node *const *)b;
    return x->weight - y->weight;
}
int main(void)
{
    struct node *head = NULL, *v[1000];
    for (int i = 0; i < 1000; i++) {
        struct node *n = malloc(sizeof *n);
        snprintf(n->name, sizeof n->name, "node%d", i);
        n->weight = (i * 7919) % 1009;
        n->next = head;
        head = v[i] = n;
    }
    qsort(v, 1000, sizeof v[0], cmp);
    printf("%s %d\n", v[0]->name, v[999]->weight);
    while (head) { struct node *n = head->next; free(head); head = n; }
    return 0;
}
C
    gcc -O2 -Wall -S -o prog.s prog.c && gcc -O2 -o prog prog.c && ./prog && sha256sum prog.s | cut -d' ' -f1
}

wl_sort() {
    awk 'BEGIN { srand(7); for (i = 0; i < 1000000; i++) printf "%d %s\n", int(rand() * 1e9), i }' >unsorted
    sort -S 64M --parallel=2 -k1,1n -k2 unsorted | sha256sum | cut -d' ' -f1
    sort -u -t' ' -k2,2 unsorted | wc -l
}

if [ "${1:-}" = --workload ]; then
    "wl_$2"
    exit
fi

# ---- running them ------------------------------------------------------------

b="${top_builddir:-.}"
lib="$b/.libs/libpallocator-malloc.so"
[ -f "$lib" ] || { echo "check-override: $lib not built"; exit 1; }
lib=$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")
have timeout || { echo "check-override: timeout (coreutils) is needed"; exit 1; }
# A run that silently lost the library would match glibc trivially.
PALLOCATOR_SHOW_STATS=1 LD_PRELOAD="$lib" env true 2>&1 | grep -q '^pallocator: at exit:' ||
    { echo "check-override: $lib does not load into a program"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# run NAME ALLOCATOR: runs workload NAME in $tmp/ALLOCATOR/NAME, as a
# new instance of this script under timeout, which signals the whole
# process group when time is up.
run() {
    dir="$tmp/$2/$1"
    mkdir -p "$dir"
    (
        cd "$dir" || exit 1
        if [ "$2" = pallocator ]; then
            LD_PRELOAD="$lib" PALLOCATOR_VERIFY=1
            export LD_PRELOAD PALLOCATOR_VERIFY
        fi
        exec timeout -k 10 "$limit" /bin/sh "$self" --workload "$1"
    ) >"$dir.out" 2>"$dir.err"
    echo $? >"$dir.rc"
}

check() {
    name=$1
    t0=$(date +%s)
    run "$name" glibc
    t1=$(date +%s)
    run "$name" pallocator
    t2=$(date +%s)
    g="$tmp/glibc/$name" p="$tmp/pallocator/$name"
    verdict=ok
    if [ "$(cat "$g.rc")" = 124 ] || [ "$(cat "$p.rc")" = 124 ]; then
        verdict="timed out after ${limit}s (glibc status $(cat "$g.rc"), libpallocator $(cat "$p.rc"))"
    elif [ "$(cat "$g.rc")" != 0 ]; then
        verdict="fails under glibc too (status $(cat "$g.rc")): not a fair comparison"
    elif [ "$(cat "$p.rc")" != 0 ]; then
        verdict="status $(cat "$p.rc") under libpallocator"
    elif ! cmp -s "$g.out" "$p.out"; then
        verdict="output differs from glibc's"
    elif grep -q '^pallocator:' "$p.err"; then
        verdict="libpallocator reported a problem"
    fi
    printf 'check-override: %-13s glibc %3ds, libpallocator %3ds: %s\n' "$name" \
        $((t1 - t0)) $((t2 - t1)) "$verdict"
    if [ "$verdict" != ok ]; then
        failures=$((failures + 1))
        echo "--- glibc:"; sed 's/^/  | /' "$g.out" "$g.err" | tail -n 15
        echo "--- libpallocator:"; sed 's/^/  | /' "$p.out" "$p.err" | tail -n 15
    fi
}

skip() {
    printf 'check-override: %-13s skipped: %s\n' "$1" "$2"
}

if have "$python"; then
    check python
    if "$python" -c 'import test.support, test.test_dict' 2>/dev/null; then
        check python_tests
    else
        skip python_tests "python3's test package is not installed (Debian: libpython3.X-testsuite)"
    fi
else
    skip python "no python3"
fi
for w in sqlite:sqlite3 xz:xz pigz:pigz git:git gcc:gcc sort:sort; do
    name=${w%%:*} tool=${w#*:}
    if have "$tool"; then check "$name"; else skip "$name" "no $tool"; fi
done

if [ $failures -ne 0 ]; then
    echo "check-override: $failures workload(s) failed"
    exit 1
fi
echo "check-override: every workload matched glibc's"
