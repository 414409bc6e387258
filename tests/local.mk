# SPDX-License-Identifier: MIT
# Unit tests: a Check program per layer and, for the public API, per area;
# the seeded fuzz driver; the export check.
if PA_TESTS
TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) -I$(top_srcdir)/lib
TEST_LIBS = libpallocator_core.la $(CHECK_LIBS)

# The public API is split by area into several programs, single-threaded
# (api_helpers.h) and concurrent (thread_helpers.h), with one main()
# (check_main.h).
API_CHECKS = tests/check_alloc tests/check_realloc tests/check_free \
	tests/check_lifecycle tests/check_introspect tests/check_dump \
	tests/check_aligned
THREAD_CHECKS = tests/check_threads_churn tests/check_threads_remote \
	tests/check_threads_lifetime
UNIT_CHECKS = tests/check_pages tests/check_blocks tests/check_tlsf tests/check_region \
	tests/check_slab tests/check_cache $(API_CHECKS) $(THREAD_CHECKS) tests/check_numa
check_PROGRAMS += $(UNIT_CHECKS)
tests_check_pages_SOURCES = tests/check_pages.c tests/testutil.h
tests_check_pages_CFLAGS = $(TEST_CFLAGS)
tests_check_pages_LDADD = $(TEST_LIBS)
tests_check_blocks_SOURCES = tests/check_blocks.c tests/testutil.h
tests_check_blocks_CFLAGS = $(TEST_CFLAGS)
tests_check_blocks_LDADD = $(TEST_LIBS)
tests_check_tlsf_SOURCES = tests/check_tlsf.c tests/testutil.h
tests_check_tlsf_CFLAGS = $(TEST_CFLAGS)
tests_check_tlsf_LDADD = $(TEST_LIBS)
tests_check_region_SOURCES = tests/check_region.c tests/testutil.h
tests_check_region_CFLAGS = $(TEST_CFLAGS)
tests_check_region_LDADD = $(TEST_LIBS)
tests_check_slab_SOURCES = tests/check_slab.c tests/testutil.h
tests_check_slab_CFLAGS = $(TEST_CFLAGS)
tests_check_slab_LDADD = $(TEST_LIBS)
tests_check_numa_SOURCES = tests/check_numa.c tests/testutil.h
tests_check_numa_CFLAGS = $(TEST_CFLAGS)
tests_check_numa_LDADD = $(TEST_LIBS)
tests_check_cache_SOURCES = tests/check_cache.c tests/testutil.h
tests_check_cache_CFLAGS = $(TEST_CFLAGS)
tests_check_cache_LDADD = $(TEST_LIBS)
tests_check_alloc_SOURCES = tests/check_alloc.c tests/api_helpers.h \
	tests/check_main.h tests/testutil.h
tests_check_alloc_CFLAGS = $(TEST_CFLAGS)
tests_check_alloc_LDADD = $(TEST_LIBS)
tests_check_realloc_SOURCES = tests/check_realloc.c tests/api_helpers.h \
	tests/check_main.h tests/testutil.h
tests_check_realloc_CFLAGS = $(TEST_CFLAGS)
tests_check_realloc_LDADD = $(TEST_LIBS)
tests_check_free_SOURCES = tests/check_free.c tests/api_helpers.h \
	tests/check_main.h tests/testutil.h
tests_check_free_CFLAGS = $(TEST_CFLAGS)
tests_check_free_LDADD = $(TEST_LIBS)
tests_check_lifecycle_SOURCES = tests/check_lifecycle.c tests/api_helpers.h \
	tests/check_main.h tests/testutil.h
tests_check_lifecycle_CFLAGS = $(TEST_CFLAGS)
tests_check_lifecycle_LDADD = $(TEST_LIBS)
tests_check_introspect_SOURCES = tests/check_introspect.c tests/api_helpers.h \
	tests/check_main.h tests/testutil.h
tests_check_introspect_CFLAGS = $(TEST_CFLAGS)
tests_check_introspect_LDADD = $(TEST_LIBS)
tests_check_dump_SOURCES = tests/check_dump.c tests/api_helpers.h \
	tests/check_main.h tests/testutil.h
tests_check_dump_CFLAGS = $(TEST_CFLAGS)
tests_check_dump_LDADD = $(TEST_LIBS)
tests_check_aligned_SOURCES = tests/check_aligned.c tests/api_helpers.h \
	tests/check_main.h tests/testutil.h
tests_check_aligned_CFLAGS = $(TEST_CFLAGS)
tests_check_aligned_LDADD = $(TEST_LIBS)
tests_check_threads_churn_SOURCES = tests/check_threads_churn.c tests/thread_helpers.h \
	tests/check_main.h tests/testutil.h
tests_check_threads_churn_CFLAGS = $(TEST_CFLAGS)
tests_check_threads_churn_LDADD = $(TEST_LIBS)
tests_check_threads_remote_SOURCES = tests/check_threads_remote.c tests/thread_helpers.h \
	tests/check_main.h tests/testutil.h
tests_check_threads_remote_CFLAGS = $(TEST_CFLAGS)
tests_check_threads_remote_LDADD = $(TEST_LIBS)
tests_check_threads_lifetime_SOURCES = tests/check_threads_lifetime.c tests/thread_helpers.h \
	tests/check_main.h tests/testutil.h
tests_check_threads_lifetime_CFLAGS = $(TEST_CFLAGS)
tests_check_threads_lifetime_LDADD = $(TEST_LIBS)

PA_CHECK_SUITES = $(UNIT_CHECKS) tests/fuzz_ops
# Seeded random operation strings through the fuzz target's driver.
check_PROGRAMS += tests/fuzz_ops
tests_fuzz_ops_SOURCES = tests/fuzz_ops.c tests/testutil.h
tests_fuzz_ops_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/lib
tests_fuzz_ops_LDADD = libpallocator_core.la

TESTS += tests/fuzz_ops $(UNIT_CHECKS) tests/test_exports.sh

# Large blocks: the mapping cache, realloc by mremap, address-space limits.
check_PROGRAMS += tests/check_large
tests_check_large_SOURCES = tests/check_large.c tests/check_main.h tests/testutil.h
tests_check_large_CFLAGS = $(TEST_CFLAGS)
tests_check_large_LDADD = $(TEST_LIBS)
TESTS += tests/check_large
PA_CHECK_SUITES += tests/check_large

# Frees racing with segment reuse; the single-threaded mode misused.
check_PROGRAMS += tests/check_race
tests_check_race_SOURCES = tests/check_race.c tests/testutil.h
tests_check_race_CFLAGS = $(TEST_CFLAGS)
tests_check_race_LDADD = $(TEST_LIBS)
TESTS += tests/check_race
PA_CHECK_SUITES += tests/check_race
endif
# Private heaps (myheap_create(3)).
if PA_TESTS
check_PROGRAMS += tests/check_myheap
tests_check_myheap_SOURCES = tests/check_myheap.c tests/api_helpers.h tests/check_main.h \
	tests/testutil.h
tests_check_myheap_CFLAGS = $(TEST_CFLAGS)
tests_check_myheap_LDADD = $(TEST_LIBS)
TESTS += tests/check_myheap
PA_CHECK_SUITES += tests/check_myheap
endif
# Life-cycle hardening and fault injection (issue 13).
if PA_TESTS
check_PROGRAMS += tests/check_lifecycle_hardening tests/check_faults
tests_check_lifecycle_hardening_SOURCES = tests/check_lifecycle_hardening.c tests/testutil.h
tests_check_lifecycle_hardening_CFLAGS = $(TEST_CFLAGS)
tests_check_lifecycle_hardening_LDADD = $(TEST_LIBS)
tests_check_faults_SOURCES = tests/check_faults.c tests/testutil.h
tests_check_faults_CFLAGS = $(TEST_CFLAGS)
tests_check_faults_LDADD = $(TEST_LIBS) -ldl
TESTS += tests/check_lifecycle_hardening tests/check_faults
PA_CHECK_SUITES += tests/check_lifecycle_hardening tests/check_faults
endif
EXTRA_DIST += tests/test_exports.sh

# A program that defines its own myalloc/myfree, linked against the shared
# library: the library's internal calls must not reach them.
check_PROGRAMS += tests/test_binding
tests_test_binding_SOURCES = tests/test_binding.c
tests_test_binding_CFLAGS = $(AM_CFLAGS)
tests_test_binding_LDADD = libpallocator.la
TESTS += tests/test_binding
# Memory mistakes the build's checker must report (memcheck in a
# --enable-valgrind build, ASan, or the hardened build's canaries): one
# program that makes each, and the script that runs it and reads the report.
check_PROGRAMS += tests/mistakes
tests_mistakes_SOURCES = tests/mistakes.c
tests_mistakes_CFLAGS = $(AM_CFLAGS)
tests_mistakes_LDADD = libpallocator_core.la
TESTS += tests/test_mistakes.sh
EXTRA_DIST += tests/test_mistakes.sh
if PA_VALGRIND
PA_TOOL = memcheck
else
if PA_ASAN
PA_TOOL = asan
else
if PA_HARDENED
PA_TOOL = hardened
else
PA_TOOL = none
endif
endif
endif

TESTS_ENVIRONMENT = top_builddir=$(top_builddir) top_srcdir=$(top_srcdir) NM="$(NM)" \
	PA_TOOL=$(PA_TOOL) LIBTOOL="$(LIBTOOL)" VALGRIND="$(VALGRIND)"

# The whole suite under valgrind's memcheck (use a build without sanitizers).
# Leaks of the kinds named fail it.
VALGRIND_LEAK_ERRORS = definite
check-valgrind: $(check_PROGRAMS)
	@for t in $(PA_CHECK_SUITES); do \
	  echo "valgrind $$t"; \
	  CK_FORK=no CK_TIMEOUT_MULTIPLIER=20 PA_TEST_SCALE=small $(LIBTOOL) --mode=execute \
	    $(VALGRIND) --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=$(VALGRIND_LEAK_ERRORS) \
	    --quiet ./$$t || exit 1; \
	done
PHONY_TARGETS += check-valgrind

# In a --enable-valgrind build: memcheck reports each mistake of
# tests/mistakes as it would for malloc, then the whole suite under it.
# There memcheck sees the suite's blocks, and a child forked from a
# threaded parent has lost the blocks only its other threads pointed to,
# as it would with malloc: leaks are reported but fail only the mistakes
# test.
check-memcheck: $(check_PROGRAMS)
	@test "$(PA_TOOL)" = memcheck || { echo "check-memcheck needs ./configure --enable-valgrind"; exit 1; }
	top_builddir=$(top_builddir) PA_TOOL=memcheck LIBTOOL="$(LIBTOOL)" VALGRIND="$(VALGRIND)" \
	  $(SHELL) $(top_srcdir)/tests/test_mistakes.sh
	$(MAKE) $(AM_MAKEFLAGS) check-valgrind VALGRIND_LEAK_ERRORS=none
PHONY_TARGETS += check-memcheck

# libFuzzer over the public API (needs clang and its runtime, Debian:
# clang libclang-rt-14-dev): make fuzz [FUZZ_SECONDS=60]. The library is
# built without the malloc override, which would replace the sanitizers'
# own malloc in the fuzzer.
FUZZ_CC = clang
FUZZ_SECONDS = 60
fuzz:
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -DPA_LIBFUZZER \
	  -DHAVE_CONFIG_H -I$(top_builddir) -I$(top_srcdir)/include -I$(top_srcdir)/lib \
	  -I$(top_srcdir)/tests $(top_srcdir)/tests/fuzz_ops.c \
	  `ls $(top_srcdir)/lib/*.c | grep -v '/override\.c$$'` \
	  -pthread -o fuzz_ops_libfuzzer
	mkdir -p fuzz-corpus
	@if ./fuzz_ops_libfuzzer -max_total_time=$(FUZZ_SECONDS) -max_len=12288 \
	    fuzz-corpus > fuzz.log 2>&1; then tail -n 3 fuzz.log; \
	else tail -n 60 fuzz.log; exit 1; fi
PHONY_TARGETS += fuzz
CLEANFILES += fuzz_ops_libfuzzer fuzz.log
clean-local:
	rm -rf fuzz-corpus

# The header's checking attributes reach the compiler (no Check needed).
TESTS += tests/test_mismatched_dealloc.sh
EXTRA_DIST += tests/test_mismatched_dealloc.sh
TESTS_ENVIRONMENT += CC="$(CC)"

# Programs run with libpallocator-malloc preloaded (the C++ one is built by
# the script when a C++ compiler is at hand).
check_PROGRAMS += tests/override_prog
tests_override_prog_SOURCES = tests/override_prog.c
tests_override_prog_CFLAGS = $(AM_CFLAGS)
TESTS += tests/test_override.sh
EXTRA_DIST += tests/test_override.sh tests/override_prog_cxx.cc
if PA_SANITIZED
TESTS_ENVIRONMENT += PA_SANITIZED=yes
endif

# Real programs (python3, sqlite3, xz, pigz, git, gcc, sort) on the override
# library and on glibc's malloc, outputs compared (see the script).
check-override: all
	@top_builddir=$(top_builddir) $(SHELL) $(srcdir)/tests/check_override.sh
PHONY_TARGETS += check-override
EXTRA_DIST += tests/check_override.sh
