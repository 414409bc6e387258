# Unit tests: one Check suite per module, plus the export check.
if PA_TESTS
TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) -I$(top_srcdir)/lib
TEST_LIBS = libpallocator_core.la $(CHECK_LIBS)

check_PROGRAMS += tests/check_pages tests/check_blocks tests/check_tlsf \
	tests/check_api tests/check_threads
tests_check_pages_SOURCES = tests/check_pages.c tests/testutil.h
tests_check_pages_CFLAGS = $(TEST_CFLAGS)
tests_check_pages_LDADD = $(TEST_LIBS)
tests_check_blocks_SOURCES = tests/check_blocks.c tests/testutil.h
tests_check_blocks_CFLAGS = $(TEST_CFLAGS)
tests_check_blocks_LDADD = $(TEST_LIBS)
tests_check_tlsf_SOURCES = tests/check_tlsf.c tests/testutil.h
tests_check_tlsf_CFLAGS = $(TEST_CFLAGS)
tests_check_tlsf_LDADD = $(TEST_LIBS)
tests_check_api_SOURCES = tests/check_api.c tests/testutil.h
tests_check_api_CFLAGS = $(TEST_CFLAGS)
tests_check_api_LDADD = $(TEST_LIBS)
tests_check_threads_SOURCES = tests/check_threads.c tests/testutil.h
tests_check_threads_CFLAGS = $(TEST_CFLAGS)
tests_check_threads_LDADD = $(TEST_LIBS)

PA_CHECK_SUITES = tests/check_pages tests/check_blocks tests/check_tlsf \
	tests/check_api tests/check_threads
TESTS += tests/check_pages tests/check_blocks tests/check_tlsf \
	tests/check_api tests/check_threads tests/test_exports.sh
endif
EXTRA_DIST += tests/test_exports.sh
TESTS_ENVIRONMENT = top_builddir=$(top_builddir) top_srcdir=$(top_srcdir) NM="$(NM)"

# The whole suite under valgrind's memcheck (use a build without sanitizers).
check-valgrind: $(check_PROGRAMS)
	@for t in $(PA_CHECK_SUITES); do \
	  echo "valgrind $$t"; \
	  CK_FORK=no CK_TIMEOUT_MULTIPLIER=20 PA_TEST_SCALE=small $(LIBTOOL) --mode=execute \
	    $(VALGRIND) --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
	    --quiet ./$$t || exit 1; \
	done
PHONY_TARGETS += check-valgrind
