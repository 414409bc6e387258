# SPDX-License-Identifier: MIT
# Benchmarks: `make bench` (about 6 minutes) and `make bench-quick` (under
# a minute) build the workloads below and run bench/run, which compares
# libpallocator, through its API and through libpallocator-malloc, with
# glibc malloc, jemalloc, tcmalloc and mimalloc and writes bench/results/
# in the build tree; `make bench` then runs bench/run-programs (python3
# and sqlite3 on the same allocators, also `make bench-programs`), which
# writes bench/results/programs/. Not part of `make check`.
#
# Every workload is compiled twice from one source: NAME-pa calls
# myalloc/myfree/myrealloc (linked to libpallocator; -no-install makes
# libtool produce the real executable rather than a wrapper script), NAME-sys
# calls malloc/free/realloc and gets its allocator through LD_PRELOAD.
#
# Extra runner options: make bench BENCH_ARGS='--threads "1 2 4 8 16"'
# (see bench/run --help, or bench/README.md).

BENCH_PA_DEFS = $(AM_CPPFLAGS) -DBENCH_PALLOCATOR
BENCH_PA_LINK = $(AM_LDFLAGS) -no-install
BENCH_PA_LIBS = libpallocator.la

BENCH_BINARIES = \
	bench/churn-pa bench/churn-sys \
	bench/larson-pa bench/larson-sys \
	bench/prodcons-pa bench/prodcons-sys \
	bench/scratch-pa bench/scratch-sys \
	bench/latency-pa bench/latency-sys \
	bench/memory-pa bench/memory-sys \
	bench/realloc-pa bench/realloc-sys \
	bench/sizes-pa bench/sizes-sys \
	bench/large-pa bench/large-sys \
	bench/worstcase-pa bench/worstcase-sys

EXTRA_PROGRAMS += $(BENCH_BINARIES) bench/measure
CLEANFILES += $(BENCH_BINARIES) \
	bench/results/results.md bench/results/raw.csv bench/results/raw.log \
	bench/results/plots.gp bench/results/*.dat bench/results/*.png \
	bench/results/*.svg bench/results/cachegrind.out.* bench/measure \
	bench/results/programs/results.md bench/results/programs/raw.csv \
	bench/results/programs/raw.log

bench_churn_pa_SOURCES = bench/churn.c bench/bench_alloc.h
bench_churn_pa_CPPFLAGS = $(BENCH_PA_DEFS)
bench_churn_pa_LDFLAGS = $(BENCH_PA_LINK)
bench_churn_pa_LDADD = $(BENCH_PA_LIBS)
bench_churn_sys_SOURCES = bench/churn.c bench/bench_alloc.h
bench_churn_sys_CPPFLAGS = $(AM_CPPFLAGS)

bench_larson_pa_SOURCES = bench/larson.c bench/bench_alloc.h
bench_larson_pa_CPPFLAGS = $(BENCH_PA_DEFS)
bench_larson_pa_LDFLAGS = $(BENCH_PA_LINK)
bench_larson_pa_LDADD = $(BENCH_PA_LIBS)
bench_larson_sys_SOURCES = bench/larson.c bench/bench_alloc.h
bench_larson_sys_CPPFLAGS = $(AM_CPPFLAGS)

bench_prodcons_pa_SOURCES = bench/prodcons.c bench/bench_alloc.h
bench_prodcons_pa_CPPFLAGS = $(BENCH_PA_DEFS)
bench_prodcons_pa_LDFLAGS = $(BENCH_PA_LINK)
bench_prodcons_pa_LDADD = $(BENCH_PA_LIBS)
bench_prodcons_sys_SOURCES = bench/prodcons.c bench/bench_alloc.h
bench_prodcons_sys_CPPFLAGS = $(AM_CPPFLAGS)

bench_scratch_pa_SOURCES = bench/scratch.c bench/bench_alloc.h
bench_scratch_pa_CPPFLAGS = $(BENCH_PA_DEFS)
bench_scratch_pa_LDFLAGS = $(BENCH_PA_LINK)
bench_scratch_pa_LDADD = $(BENCH_PA_LIBS)
bench_scratch_sys_SOURCES = bench/scratch.c bench/bench_alloc.h
bench_scratch_sys_CPPFLAGS = $(AM_CPPFLAGS)

bench_latency_pa_SOURCES = bench/latency.c bench/bench_alloc.h
bench_latency_pa_CPPFLAGS = $(BENCH_PA_DEFS)
bench_latency_pa_LDFLAGS = $(BENCH_PA_LINK)
bench_latency_pa_LDADD = $(BENCH_PA_LIBS)
bench_latency_sys_SOURCES = bench/latency.c bench/bench_alloc.h
bench_latency_sys_CPPFLAGS = $(AM_CPPFLAGS)

bench_memory_pa_SOURCES = bench/memory.c bench/bench_alloc.h
bench_memory_pa_CPPFLAGS = $(BENCH_PA_DEFS)
bench_memory_pa_LDFLAGS = $(BENCH_PA_LINK)
bench_memory_pa_LDADD = $(BENCH_PA_LIBS)
bench_memory_sys_SOURCES = bench/memory.c bench/bench_alloc.h
bench_memory_sys_CPPFLAGS = $(AM_CPPFLAGS)

bench_realloc_pa_SOURCES = bench/realloc.c bench/bench_alloc.h
bench_realloc_pa_CPPFLAGS = $(BENCH_PA_DEFS)
bench_realloc_pa_LDFLAGS = $(BENCH_PA_LINK)
bench_realloc_pa_LDADD = $(BENCH_PA_LIBS)
bench_realloc_sys_SOURCES = bench/realloc.c bench/bench_alloc.h
bench_realloc_sys_CPPFLAGS = $(AM_CPPFLAGS)

bench_sizes_pa_SOURCES = bench/sizes.c bench/bench_alloc.h
bench_sizes_pa_CPPFLAGS = $(BENCH_PA_DEFS)
bench_sizes_pa_LDFLAGS = $(BENCH_PA_LINK)
bench_sizes_pa_LDADD = $(BENCH_PA_LIBS)
bench_sizes_sys_SOURCES = bench/sizes.c bench/bench_alloc.h
bench_sizes_sys_CPPFLAGS = $(AM_CPPFLAGS)

bench_large_pa_SOURCES = bench/large.c bench/bench_alloc.h
bench_large_pa_CPPFLAGS = $(BENCH_PA_DEFS)
bench_large_pa_LDFLAGS = $(BENCH_PA_LINK)
bench_large_pa_LDADD = $(BENCH_PA_LIBS)
bench_large_sys_SOURCES = bench/large.c bench/bench_alloc.h
bench_large_sys_CPPFLAGS = $(AM_CPPFLAGS)

bench_worstcase_pa_SOURCES = bench/worstcase.c bench/bench_alloc.h
bench_worstcase_pa_CPPFLAGS = $(BENCH_PA_DEFS)
bench_worstcase_pa_LDFLAGS = $(BENCH_PA_LINK)
bench_worstcase_pa_LDADD = $(BENCH_PA_LIBS)
bench_worstcase_sys_SOURCES = bench/worstcase.c bench/bench_alloc.h
bench_worstcase_sys_CPPFLAGS = $(AM_CPPFLAGS)

# The region layer's fits (lib/region.c) on one random workload: not part
# of make bench; make bench/region-fits && bench/region-fits.
EXTRA_PROGRAMS += bench/region-fits
CLEANFILES += bench/region-fits
bench_region_fits_SOURCES = bench/region_fits.c
bench_region_fits_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/lib
bench_region_fits_LDFLAGS = $(AM_LDFLAGS) -no-install
bench_region_fits_LDADD = libpallocator_core.la

# myheap_reset and myheap_destroy with many live blocks, beside munmap:
# make bench/heapreset && bench/heapreset [blocks] [rounds].
EXTRA_PROGRAMS += bench/heapreset
CLEANFILES += bench/heapreset
bench_heapreset_SOURCES = bench/heapreset.c bench/heaps_mapped.h
bench_heapreset_LDFLAGS = $(AM_LDFLAGS) -no-install
bench_heapreset_LDADD = libpallocator.la

# Each private-heap policy for giving memory back, on one bursty workload:
# time per pair and memory kept; make bench/heappolicy && bench/heappolicy.
EXTRA_PROGRAMS += bench/heappolicy
CLEANFILES += bench/heappolicy
bench_heappolicy_SOURCES = bench/heappolicy.c bench/heaps_mapped.h
bench_heappolicy_LDFLAGS = $(AM_LDFLAGS) -no-install
bench_heappolicy_LDADD = libpallocator.la

# Starts one command of bench/run-programs and reports its time and peak RSS.
bench_measure_SOURCES = bench/measure.c

EXTRA_DIST += bench/run bench/README.md bench/bench_alloc.h \
	bench/churn.c bench/larson.c bench/prodcons.c bench/scratch.c \
	bench/latency.c bench/memory.c bench/realloc.c bench/sizes.c \
	bench/large.c bench/worstcase.c bench/worstcase.gp bench/scale bench/instr-per-pair \
	bench/run-programs bench/measure.c bench/programs/alloc-heavy.py \
	bench/programs/sqlite-job.sql

# The runner is Python 3 without extra modules.
BENCH_PY = python3
BENCH_ARGS =
BENCH_RUN = $(BENCH_PY) $(srcdir)/bench/run --bindir bench \
	--out bench/results

bench: $(BENCH_BINARIES) bench/measure libpallocator-malloc.la
	$(BENCH_RUN) $(BENCH_ARGS)
	$(BENCH_PROG_RUN) $(BENCH_PROG_ARGS)

# python3 and sqlite3 on libpallocator-malloc and the peers (bench/README.md).
BENCH_PROG_ARGS =
BENCH_PROG_RUN = $(BENCH_PY) $(srcdir)/bench/run-programs --bindir bench \
	--out bench/results/programs

bench-programs: bench/measure libpallocator-malloc.la
	$(BENCH_PROG_RUN) $(BENCH_PROG_ARGS)

bench-quick: $(BENCH_BINARIES) libpallocator-malloc.la
	$(BENCH_RUN) --quick $(BENCH_ARGS)

# Instructions per malloc/free pair on churn (valgrind; see bench/README.md).
bench-instr: bench/churn-pa bench/churn-sys
	$(BENCH_PY) $(srcdir)/bench/instr-per-pair --bindir bench --out bench/results

PHONY_TARGETS += bench bench-quick bench-instr bench-programs
