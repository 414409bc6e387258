# SPDX-License-Identifier: MIT
# Examples: built with the library (not installed), run by `make run-examples`.
# They see only the public header (AM_CPPFLAGS: -I$(top_srcdir)/include) and
# link against the shared libpallocator.la, as a user program would.
PA_EXAMPLES = examples/simple_alloc examples/stress_test examples/concurrent_stress \
	examples/private_heaps
noinst_PROGRAMS += $(PA_EXAMPLES)
examples_simple_alloc_SOURCES = examples/simple_alloc.c
examples_simple_alloc_LDADD = libpallocator.la
examples_stress_test_SOURCES = examples/stress_test.c
examples_stress_test_LDADD = libpallocator.la
examples_concurrent_stress_SOURCES = examples/concurrent_stress.c
examples_concurrent_stress_LDADD = libpallocator.la
# A heap per request, and a real-time heap over a fixed budget.
examples_private_heaps_SOURCES = examples/private_heaps.c
examples_private_heaps_LDADD = libpallocator.la

# Build and run every example; the first failure stops the target.
run-examples: $(PA_EXAMPLES:=$(EXEEXT))
	@set -e; for e in $(PA_EXAMPLES); do \
	  echo "== $$e"; ./$$e; \
	done

# The README quick start: compile the demo against the INSTALLED library
# (after `make install` and `ldconfig`), with the compiler's default paths.
run-demo:
	$(CC) $(srcdir)/examples/simple_alloc.c -o simple_alloc_installed -lpallocator
	./simple_alloc_installed

PHONY_TARGETS += run-examples run-demo
CLEANFILES += simple_alloc_installed
