/* SPDX-License-Identifier: MIT */
/*
 * bench_alloc.h - shared plumbing for the libpallocator benchmark workloads.
 *
 * Every workload is compiled twice from the same source:
 *   - with -DBENCH_PALLOCATOR: BA_MALLOC/BA_FREE/BA_REALLOC call
 *     myalloc/myfree/myrealloc and the program is linked to libpallocator;
 *   - without it: they call malloc/free/realloc, and bench/run picks the
 *     allocator under test with LD_PRELOAD (glibc: nothing preloaded).
 *
 * The workload's own bookkeeping (pointer arrays, latency samples) is taken
 * straight from mmap so it costs every allocator the same and never goes
 * through the allocator under test.
 *
 * Each program prints exactly one line to stdout:
 *   RESULT bench=NAME variant=pa|sys threads=N ... time_s=T ops=N
 *          ops_per_s=X peak_rss_kib=K ru_maxrss_kib=K check=C malloc_lib=PATH
 * (space separated key=value pairs; bench/run parses it). peak_rss_kib is
 * the process's own high-water mark (see ba_peak_rss_kib), ru_maxrss_kib
 * the raw getrusage figure, which includes whatever the launcher had.
 *
 * Everything here is static inline: the header is the whole library.
 */
#ifndef BENCH_ALLOC_H
#define BENCH_ALLOC_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
/* dladdr() lives in libc itself from glibc 2.34 on; older ones need -ldl,
 * so there the malloc_lib report is simply "unknown". */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
#include <dlfcn.h>
#define BA_HAVE_DLADDR 1
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define BA_HAVE_TSC 1
#endif

#ifdef BENCH_PALLOCATOR
#include <pallocator.h>
#define BA_VARIANT "pa"
#define BA_MALLOC(n) myalloc(n)
#define BA_REALLOC(p, n) myrealloc((p), (n))
#define BA_FREE(p)                                          \
	do {                                                    \
		if (myfree(p) != 0)                                 \
			ba_die("myfree(%p) failed: %s", (void *)(p),    \
			       strerror(errno));                        \
	} while (0)
#else
#define BA_VARIANT "sys"
#define BA_MALLOC(n) malloc(n)
#define BA_REALLOC(p, n) realloc((p), (n))
#define BA_FREE(p) free(p)
#endif

#define BA_UNUSED __attribute__((unused))
#define BA_NORETURN __attribute__((noreturn))
#define BA_PRINTF(a, b) __attribute__((format(printf, a, b)))

static inline BA_NORETURN BA_PRINTF(1, 2) void ba_die(const char *fmt, ...);

static inline void ba_die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* Abort when an allocation fails: a benchmark that skips work is worthless. */
#define BA_CHECK(p, n)                                                   \
	do {                                                                 \
		if ((p) == NULL)                                                 \
			ba_die("%s:%d: allocation of %zu bytes returned NULL",      \
			       __FILE__, __LINE__, (size_t)(n));                     \
	} while (0)

/* Allocate, abort on NULL. */
static inline void *ba_xmalloc(size_t n)
{
	void *p = BA_MALLOC(n);
	BA_CHECK(p, n);
	return p;
}

static inline void *ba_xrealloc(void *old, size_t n)
{
	void *p = BA_REALLOC(old, n);
	BA_CHECK(p, n);
	return p;
}

/* ---- bookkeeping memory, outside the allocator under test ---- */

static inline void *ba_meta_alloc(size_t n)
{
	void *p;
	if (n == 0)
		n = 1;
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	         -1, 0);
	if (p == MAP_FAILED)
		ba_die("mmap of %zu bytes for bookkeeping failed: %s", n,
		       strerror(errno));
	return p;
}

static inline void ba_meta_free(void *p, size_t n)
{
	if (p != NULL)
		munmap(p, n == 0 ? 1 : n);
}

/* ---- random numbers (xorshift64*, seeded through splitmix64) ---- */

static inline uint64_t ba_splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static inline uint64_t ba_rng_seed(uint64_t seed, uint64_t stream)
{
	uint64_t s = ba_splitmix(seed * 0x100000001b3ULL + stream);
	return s != 0 ? s : 0x2545f4914f6cdd1dULL;
}

static inline uint64_t ba_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Uniform in [0, n), n > 0 (Lemire's multiply-shift; bias is negligible). */
static inline size_t ba_below(uint64_t *s, size_t n)
{
	return (size_t)(((ba_rand(s) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in [lo, hi]. */
static inline size_t ba_range(uint64_t *s, size_t lo, size_t hi)
{
	return lo + ba_below(s, hi - lo + 1);
}

/*
 * The "realistic" size mix used by churn, larson and latency:
 *   89 %  8 .. 128 bytes, skewed towards the small end,
 *   10 %  129 .. 1024 bytes,
 *    1 %  1 KiB .. 256 KiB, log-uniform (each power of two equally likely).
 */
static inline size_t ba_size_mix(uint64_t *s)
{
	size_t r = ba_below(s, 1000);
	if (r < 890) {
		size_t x = ba_below(s, 1024); /* square for a small-size skew */
		return 8 + (x * x * 121) / (1024 * 1024);
	}
	if (r < 990)
		return ba_range(s, 129, 1024);
	{
		unsigned e = 10 + (unsigned)ba_below(s, 8); /* 2^10 .. 2^17 */
		size_t lo = (size_t)1 << e;
		size_t n = ba_range(s, lo, 2 * lo);
		return n > 256 * 1024 ? 256 * 1024 : n;
	}
}

/* ---- time, cycles, memory ---- */

static inline double ba_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#ifdef BA_HAVE_TSC
#define BA_TICK_UNIT "cycles"
/* Serialised timestamp: the lfences keep the measured call inside. */
static inline uint64_t ba_ticks(void)
{
	uint64_t t;
	_mm_lfence();
	t = __rdtsc();
	_mm_lfence();
	return t;
}
#else
#define BA_TICK_UNIT "ns"
static inline uint64_t ba_ticks(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}
#endif

/*
 * Peak resident set size of the process so far, in KiB: VmHWM from
 * /proc/self/status, else getrusage's ru_maxrss. VmHWM comes first because
 * Linux carries ru_maxrss over execve(): a child of a 20 MiB Python runner
 * would report at least 20 MiB whatever it does itself.
 */
static inline long ba_peak_rss_kib(void)
{
	struct rusage ru;
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");
	if (f != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (strncmp(line, "VmHWM:", 6) == 0) {
				kib = strtol(line + 6, NULL, 10);
				break;
			}
		fclose(f);
	}
	if (kib > 0)
		return kib;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return ru.ru_maxrss; /* Linux reports KiB */
}

/* Current resident set size in KiB, from /proc/self/statm (-1 if absent). */
static inline long ba_cur_rss_kib(void)
{
	long size = 0, resident = -1;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f == NULL)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &resident) != 2)
		resident = -1;
	fclose(f);
	if (resident < 0)
		return -1;
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- options ---- */

struct ba_opts {
	const char *name;   /* workload name */
	int threads;        /* --threads */
	uint64_t seed;      /* --seed */
	double scale;       /* --scale: multiplies the amount of work */
	long size;          /* --size: the workload's size knob (0 = default) */
	int quick;          /* --quick: a much shorter run */
	const char *which;  /* --case: which variant of the workload (or NULL) */
};

static inline void ba_usage(const struct ba_opts *o, const char *size_help,
                            FILE *to)
{
	fprintf(to,
	        "usage: %s [--threads N] [--seed S] [--scale F] [--size N] [--quick]\n"
	        "          [--case NAME]\n"
	        "  --threads N  worker threads (default 1); the total work is split\n"
	        "               between them\n"
	        "  --seed S     random seed (default 1)\n"
	        "  --scale F    multiply the amount of work by F (default 1)\n"
	        "  --size N     %s\n"
	        "  --quick      about a tenth of the default work\n"
	        "  --case NAME  the variant to run, for workloads that have several\n",
	        o->name, size_help);
}

static inline void ba_parse(struct ba_opts *o, const char *name,
                            const char *size_help, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"threads", required_argument, NULL, 't'},
		{"seed", required_argument, NULL, 's'},
		{"scale", required_argument, NULL, 'S'},
		{"size", required_argument, NULL, 'z'},
		{"quick", no_argument, NULL, 'q'},
		{"case", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	char *end;

	o->name = name;
	o->threads = 1;
	o->seed = 1;
	o->scale = 1.0;
	o->size = 0;
	o->quick = 0;
	o->which = NULL;
	while ((c = getopt_long(argc, argv, "t:s:S:z:qc:h", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			o->threads = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || o->threads < 1 || o->threads > 4096)
				ba_die("bad --threads '%s'", optarg);
			break;
		case 's':
			o->seed = strtoull(optarg, &end, 0);
			if (*end != '\0')
				ba_die("bad --seed '%s'", optarg);
			break;
		case 'S':
			o->scale = strtod(optarg, &end);
			if (*end != '\0' || !(o->scale > 0.0) || o->scale > 1e6)
				ba_die("bad --scale '%s'", optarg);
			break;
		case 'z':
			o->size = strtol(optarg, &end, 0);
			if (*end != '\0' || o->size < 0)
				ba_die("bad --size '%s'", optarg);
			break;
		case 'q':
			o->quick = 1;
			break;
		case 'c':
			o->which = optarg;
			break;
		case 'h':
			ba_usage(o, size_help, stdout);
			exit(0);
		default:
			ba_usage(o, size_help, stderr);
			exit(2);
		}
	}
	if (optind != argc) {
		ba_usage(o, size_help, stderr);
		exit(2);
	}
}

/* The amount of work: base count, times --scale, a tenth under --quick. */
static inline size_t ba_amount(const struct ba_opts *o, size_t base)
{
	double n = (double)base * o->scale * (o->quick ? 0.1 : 1.0);
	return n < 1.0 ? 1 : (size_t)n;
}

/* Start-up: with libpallocator, switch on the concurrent mode explicitly. */
static inline void ba_init(void)
{
#ifdef BENCH_PALLOCATOR
	if (allocator_init(1) != 0)
		ba_die("allocator_init(1) failed: %s", strerror(errno));
#endif
}

/* Which shared object provides malloc (tells bench/run LD_PRELOAD worked). */
static inline const char *ba_malloc_lib(void)
{
#ifdef BENCH_PALLOCATOR
	return "libpallocator";
#elif defined(BA_HAVE_DLADDR)
	Dl_info info;
	void *(*volatile fn)(size_t) = malloc;
	if (dladdr((void *)fn, &info) != 0 && info.dli_fname != NULL)
		return info.dli_fname;
	return "unknown";
#else
	return "unknown";
#endif
}

/* ---- threads ---- */

struct ba_team {
	pthread_barrier_t start;  /* workers + the timing thread */
	pthread_barrier_t done;   /* workers only: ba_team_done() */
	double t0, t1;
};

/*
 * Run fn(arg_i) on n threads; args points to n objects of arg_size bytes.
 * Each worker must call ba_team_ready() once it is set up; the clock runs
 * from the moment all have done so until the last one finishes.
 * Returns the elapsed time in seconds.
 */
static inline double ba_run_team(struct ba_team *team, int n,
                                 void *(*fn)(void *), void *args,
                                 size_t arg_size)
{
	pthread_t *tid = ba_meta_alloc(sizeof(*tid) * (size_t)n);
	int i, rc;

	if (pthread_barrier_init(&team->start, NULL, (unsigned)n + 1) != 0 ||
	    pthread_barrier_init(&team->done, NULL, (unsigned)n) != 0)
		ba_die("pthread_barrier_init failed");
	for (i = 0; i < n; i++) {
		rc = pthread_create(&tid[i], NULL, fn, (char *)args + (size_t)i * arg_size);
		if (rc != 0)
			ba_die("pthread_create: %s", strerror(rc));
	}
	pthread_barrier_wait(&team->start);
	team->t0 = ba_now();
	for (i = 0; i < n; i++)
		pthread_join(tid[i], NULL);
	team->t1 = ba_now();
	pthread_barrier_destroy(&team->start);
	pthread_barrier_destroy(&team->done);
	ba_meta_free(tid, sizeof(*tid) * (size_t)n);
	return team->t1 - team->t0;
}

static inline void ba_team_ready(struct ba_team *team)
{
	pthread_barrier_wait(&team->start);
}

/*
 * For a workload whose workers time themselves: each calls this once its
 * timed part is over, and waits there for the others, so that the clean-up
 * of one (freeing, which may unmap pages and interrupt every CPU of the
 * process) never runs inside another's timed part.
 */
static inline void ba_team_done(struct ba_team *team)
{
	pthread_barrier_wait(&team->done);
}

/* ---- the result line ---- */

static inline void ba_result_begin(const struct ba_opts *o)
{
	printf("RESULT bench=%s variant=%s threads=%d seed=%" PRIu64
	       " scale=%g quick=%d",
	       o->name, BA_VARIANT, o->threads, o->seed, o->scale, o->quick);
	if (o->which != NULL)
		printf(" case=%s", o->which);
}

static inline void ba_kv_u(const char *key, uint64_t v)
{
	printf(" %s=%" PRIu64, key, v);
}

static inline void ba_kv_f(const char *key, double v)
{
	printf(" %s=%.6g", key, v);
}

static inline void ba_kv_s(const char *key, const char *v)
{
	printf(" %s=%s", key, v);
}

static inline void ba_result_end(double seconds, uint64_t ops, uint64_t check)
{
	struct rusage ru;
	long maxrss = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
	printf(" time_s=%.6f ops=%" PRIu64 " ops_per_s=%.6g peak_rss_kib=%ld"
	       " ru_maxrss_kib=%ld check=%016" PRIx64 " malloc_lib=%s\n",
	       seconds, ops, seconds > 0 ? (double)ops / seconds : 0.0,
	       ba_peak_rss_kib(), maxrss, check, ba_malloc_lib());
	fflush(stdout);
}

/* Tag byte written into the first and last byte of a block. */
static inline unsigned char ba_tag(size_t slot, size_t size)
{
	return (unsigned char)((slot * 131u + size * 7u) | 1u);
}

static inline void ba_touch(void *p, size_t size, unsigned char tag)
{
	unsigned char *b = p;
	b[0] = tag;
	b[size - 1] = tag;
}

/* Verify the tag; returns a value folded into the check sum. */
static inline uint64_t ba_verify(const void *p, size_t size, unsigned char tag)
{
	const unsigned char *b = p;
	if (b[0] != tag || b[size - 1] != tag)
		ba_die("block %p (%zu bytes) lost its contents: %02x/%02x, want %02x",
		       p, size, b[0], b[size - 1], tag);
	return (uint64_t)b[0] + b[size - 1];
}

#endif /* BENCH_ALLOC_H */
