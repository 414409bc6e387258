/* SPDX-License-Identifier: MIT */
/*
 * worstcase - the cost of single malloc and free calls in the situations
 * that cost a two-level segregated fit heap most and least, in the manner
 * of a WCET timing tool: every call alone between serialised timestamps
 * (lfence; rdtsc; lfence), many samples, high percentiles and the maximum.
 *
 * Scenarios, each run for every size of the plan (16 B, 64 B, 256 B, ...
 * times 4 up to 16 MiB, then the largest the scenario can place in the
 * heap; --size sets that heap's limit in MiB, default 64):
 *   split   a request of s bytes carved from the one huge free block of an
 *           empty heap (malloc timed), then freed so that it merges back
 *           into that block (free timed);
 *   merge   blocks a, b, c of s bytes side by side, a and c freed, then b
 *           freed (timed): both its neighbours are free, so both merge;
 *   search  the lower bins hold free blocks (one in each power of two from
 *           32 B up to s/2, as long as they fit in an eighth of the heap,
 *           each between live guards), and a request of s bytes must take
 *           the one free block in the highest bin (malloc and free timed);
 *   reuse   the best case: one free block of exactly s bytes between two
 *           live neighbours; malloc(s) takes it whole and free(s) puts it
 *           back without a merge (both timed).
 * Before each size's timed loop the same loop runs untimed (a tenth as
 * many iterations, at least 100), so pages are touched and caches warm:
 * the figures are those of a warm heap. Each allocated block has its first
 * and last byte written (and read back before it is freed) outside the
 * timed window.
 *
 * Targets. NAME-pa measures three in one process: "locked", a private heap
 * made by myheap_create with MYHEAP_LOCKED and the limit (when mlock is
 * refused: a heap without the lock nor the limit, its largest block touched
 * once and no memory ever given back, and locked_mlock says why); "heap", a private heap with the default
 * options; "default", myalloc/myfree. NAME-sys measures "malloc": malloc and
 * free of whatever allocator is loaded (LD_PRELOAD). Peers get the same
 * sequence of calls: what happens inside (size classes, caches, mmap) is
 * theirs, so for them the scenarios are the nearest equivalent, not the
 * same state.
 *
 * Printed per target, scenario and call (TARGET_SCEN_CALL_KEY): p50, p999,
 * p9999, max (cycles, timestamp overhead included; tick_overhead shows
 * it), over5k (samples above 5000 cycles), n, and small_p9999 and
 * small_max over the sizes up to 256 KiB alone, and sJ_p999 over the
 * J-th size of the plan alone (J = 0 for 16 B); per target and scenario,
 * minflt: minor page faults while the timed loops ran (getrusage; the
 * untimed setup calls of merge and the byte writes included); per target,
 * setup: "exact" where the scenarios set the state they name (a private
 * heap), "nearest" where they are the same calls on a heap of another
 * design (myalloc's size classes and caches, the peers).
 */
#include "bench_alloc.h"

#include <stdbool.h>

#ifdef BENCH_PALLOCATOR
/* Weak, so that the binary still measures myalloc against a library built
 * without private heaps (the locked and heap targets are then skipped). */
#pragma weak myheap_create
#pragma weak myheap_alloc
#pragma weak myheap_free
#pragma weak myheap_destroy
#endif

#define WC_OVER 5000u /* cycles: a sample above it is counted */
#define WC_MIB ((size_t)1 << 20)
/* Sizes up to this get figures of their own too: where the peers keep
 * blocks in their heaps rather than mapping each one. */
#define WC_SMALL ((size_t)256 << 10)

enum wc_scen { WC_SPLIT, WC_MERGE, WC_SEARCH, WC_REUSE, WC_SCENS };
enum wc_call { WC_MALLOC, WC_FREE, WC_CALLS };
static const char *const scen_name[WC_SCENS] = {"split", "merge", "search", "reuse"};
static const char *const call_name[WC_CALLS] = {"malloc", "free"};

enum wc_kind { WC_SYSTEM, WC_PRIVATE };

struct target {
	const char *name;
	enum wc_kind kind;
#ifdef BENCH_PALLOCATOR
	myheap_t *heap;
#endif
};

struct series {
	uint64_t *v;
	size_t n, cap;
	size_t small; /* samples of sizes up to WC_SMALL (they come first) */
};

struct plan {
	size_t limit;              /* the locked heap's limit, bytes */
	size_t largest;            /* the largest single request planned */
	size_t iters, warm;        /* timed and untimed iterations per size */
	size_t max[WC_SCENS];      /* the largest size of each scenario */
};

static struct series samples[WC_SCENS][WC_CALLS];
static long faults[WC_SCENS];
static uint64_t check;

/* ---- the calls under test ---- */

static inline void *t_alloc(const struct target *t, size_t n)
{
	void *p;
#ifdef BENCH_PALLOCATOR
	if (t->kind == WC_PRIVATE)
		p = myheap_alloc(t->heap, n);
	else
#endif
		p = BA_MALLOC(n);
	(void)t;
	return p;
}

static inline void t_free(const struct target *t, void *p)
{
#ifdef BENCH_PALLOCATOR
	if (t->kind == WC_PRIVATE) {
		if (myheap_free(t->heap, p) != 0)
			ba_die("myheap_free(%p) failed: %s", p, strerror(errno));
		return;
	}
#endif
	(void)t;
	BA_FREE(p);
}

/* Untimed: allocate and write the first and last byte. */
static void *get(const struct target *t, size_t n)
{
	void *p = t_alloc(t, n);
	BA_CHECK(p, n);
	ba_touch(p, n, ba_tag(1, n));
	return p;
}

/* Untimed: read the bytes back and free. */
static void put(const struct target *t, void *p, size_t n)
{
	check += ba_verify(p, n, ba_tag(1, n));
	t_free(t, p);
}

static inline void record(struct series *s, uint64_t c)
{
	if (s != NULL && s->n < s->cap)
		s->v[s->n++] = c;
}

/* Timed: one allocation, recorded in s (NULL: warm-up). */
static inline void *timed_get(const struct target *t, size_t n, struct series *s)
{
	uint64_t t0, t1;
	void *p;
	t0 = ba_ticks();
	p = t_alloc(t, n);
	t1 = ba_ticks();
	record(s, t1 - t0);
	BA_CHECK(p, n);
	ba_touch(p, n, ba_tag(1, n));
	return p;
}

static inline void timed_put(const struct target *t, void *p, size_t n, struct series *s)
{
	uint64_t t0, t1;
	check += ba_verify(p, n, ba_tag(1, n));
	t0 = ba_ticks();
	t_free(t, p);
	t1 = ba_ticks();
	record(s, t1 - t0);
}

static long minflt(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		ba_die("getrusage: %s", strerror(errno));
	return ru.ru_minflt;
}

/* ---- scenarios: one size, n iterations; rec false for the warm-up ---- */

static void scen_split(const struct target *t, size_t s, size_t n, bool rec)
{
	struct series *m = rec ? &samples[WC_SPLIT][WC_MALLOC] : NULL;
	struct series *f = rec ? &samples[WC_SPLIT][WC_FREE] : NULL;
	long f0 = minflt();
	size_t i;
	for (i = 0; i < n; i++)
		timed_put(t, timed_get(t, s, m), s, f);
	if (rec)
		faults[WC_SPLIT] += minflt() - f0;
}

static void scen_merge(const struct target *t, size_t s, size_t n, bool rec)
{
	struct series *f = rec ? &samples[WC_MERGE][WC_FREE] : NULL;
	long f0 = minflt();
	size_t i;
	for (i = 0; i < n; i++) {
		void *a = get(t, s), *b = get(t, s), *c = get(t, s);
		put(t, a, s);
		put(t, c, s);
		timed_put(t, b, s, f);
	}
	if (rec)
		faults[WC_MERGE] += minflt() - f0;
}

/* The free blocks of the search scenario: one per power of two from 32 B
 * up to s/2, sized in the middle of its band (so in a bin of its own below
 * the request's), smallest first, while they fit in budget bytes. */
#define WC_FRAGS 48

static size_t frag_sizes(size_t s, size_t budget, size_t *out)
{
	size_t k = 0, used = 0, band;
	for (band = 32; band <= s / 2 && k < WC_FRAGS; band *= 2) {
		size_t f = band + band / 2 - 16;
		if (used + f + 64 > budget)
			break;
		used += f + 64;
		out[k++] = f;
	}
	return k;
}

static void scen_search(const struct target *t, size_t s, size_t n, bool rec,
                        size_t budget)
{
	struct series *m = rec ? &samples[WC_SEARCH][WC_MALLOC] : NULL;
	struct series *f = rec ? &samples[WC_SEARCH][WC_FREE] : NULL;
	size_t fs[WC_FRAGS];
	void *frag[WC_FRAGS], *guard[WC_FRAGS + 1];
	size_t k = frag_sizes(s, budget, fs), j, i;
	long f0;

	guard[0] = get(t, 16);
	for (j = 0; j < k; j++) {
		frag[j] = get(t, fs[j]);
		guard[j + 1] = get(t, 16);
	}
	for (j = 0; j < k; j++)
		put(t, frag[j], fs[j]);
	f0 = minflt();
	for (i = 0; i < n; i++)
		timed_put(t, timed_get(t, s, m), s, f);
	if (rec)
		faults[WC_SEARCH] += minflt() - f0;
	for (j = 0; j <= k; j++)
		put(t, guard[j], 16);
}

static void scen_reuse(const struct target *t, size_t s, size_t n, bool rec)
{
	struct series *m = rec ? &samples[WC_REUSE][WC_MALLOC] : NULL;
	struct series *f = rec ? &samples[WC_REUSE][WC_FREE] : NULL;
	void *left = get(t, 16), *x = get(t, s), *right = get(t, 16);
	long f0;
	size_t i;

	put(t, x, s);
	f0 = minflt();
	for (i = 0; i < n; i++)
		timed_put(t, timed_get(t, s, m), s, f);
	if (rec)
		faults[WC_REUSE] += minflt() - f0;
	put(t, left, 16);
	put(t, right, 16);
}

static void scen_run(const struct target *t, enum wc_scen sc, size_t s, size_t n,
                     bool rec, const struct plan *pl)
{
	switch (sc) {
	case WC_SPLIT:
		scen_split(t, s, n, rec);
		break;
	case WC_MERGE:
		scen_merge(t, s, n, rec);
		break;
	case WC_SEARCH:
		scen_search(t, s, n, rec, pl->limit / 8);
		break;
	default:
		scen_reuse(t, s, n, rec);
		break;
	}
}

/* ---- the plan of sizes ---- */

/* The sizes of scenario sc: 16 B times powers of 4, then its largest. */
static size_t plan_sizes(const struct plan *pl, enum wc_scen sc, size_t *out)
{
	size_t k = 0, s;
	for (s = 16; s <= 16 * WC_MIB && s < pl->max[sc]; s *= 4)
		out[k++] = s;
	out[k++] = pl->max[sc];
	return k;
}

static void plan_make(struct plan *pl, const struct ba_opts *o)
{
	size_t mib = o->size > 0 ? (size_t)o->size : 64;
	if (mib < 8 || mib > 65536)
		ba_die("worstcase: --size (heap limit in MiB) must be 8..65536");
	pl->limit = mib * WC_MIB;
	/* A sixteenth below the limit leaves room for the heap's own header,
	 * live map and alignment (a 64 MiB locked heap serves up to 62 MiB)
	 * and for the guards; locked_largest reports what the heap serves. */
	pl->largest = (pl->limit - pl->limit / 16) & ~(size_t)4095;
	pl->max[WC_SPLIT] = pl->largest;
	pl->max[WC_REUSE] = pl->largest - 4096;
	pl->max[WC_MERGE] = ((pl->largest - 4096) / 3) & ~(size_t)4095;
	pl->max[WC_SEARCH] = (pl->largest - pl->limit / 8) & ~(size_t)4095;
	pl->iters = ba_amount(o, 20000);
	pl->warm = pl->iters / 10 < 100 ? 100 : pl->iters / 10;
}

/* ---- results ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The quantile of a sorted series at ppm parts per million, nearest rank
 * (the least sample with at least that share of the samples at or below
 * it; integer arithmetic, so p99.99 of 10,000 samples is the second
 * largest, not the largest). */
static uint64_t quantile(const struct series *s, uint64_t ppm)
{
	uint64_t rank;
	if (s->n == 0)
		return 0;
	rank = ((uint64_t)s->n * ppm + 999999) / 1000000;
	return s->v[rank == 0 ? 0 : rank - 1];
}

static void kv(const char *t, const char *scen, const char *call, const char *what,
               uint64_t v)
{
	char key[96];
	if (call != NULL)
		snprintf(key, sizeof(key), "%s_%s_%s_%s", t, scen, call, what);
	else
		snprintf(key, sizeof(key), "%s_%s_%s", t, scen, what);
	ba_kv_u(key, v);
}

static void report(const char *t)
{
	int sc, c;
	for (sc = 0; sc < WC_SCENS; sc++) {
		for (c = 0; c < WC_CALLS; c++) {
			struct series *s = &samples[sc][c];
			struct series small = *s;
			uint64_t over = 0;
			size_t i;
			if (s->n == 0)
				continue;
			/* The small sizes' samples lead: sort them apart first. */
			small.n = s->small;
			qsort(small.v, small.n, sizeof(uint64_t), cmp_u64);
			kv(t, scen_name[sc], call_name[c], "small_p9999", quantile(&small, 999900));
			kv(t, scen_name[sc], call_name[c], "small_max",
			   small.n ? small.v[small.n - 1] : 0);
			qsort(s->v, s->n, sizeof(uint64_t), cmp_u64);
			for (i = s->n; i > 0 && s->v[i - 1] > WC_OVER; i--)
				over++;
			kv(t, scen_name[sc], call_name[c], "p50", quantile(s, 500000));
			kv(t, scen_name[sc], call_name[c], "p999", quantile(s, 999000));
			kv(t, scen_name[sc], call_name[c], "p9999", quantile(s, 999900));
			kv(t, scen_name[sc], call_name[c], "max", s->v[s->n - 1]);
			kv(t, scen_name[sc], call_name[c], "over5k", over);
			kv(t, scen_name[sc], call_name[c], "n", s->n);
		}
		kv(t, scen_name[sc], NULL, "minflt", (uint64_t)faults[sc]);
	}
}

/* p99.9 of the samples of one size, v[from..to) (sorted in a copy; their
 * p99.99 would be little more than their maximum): key
 * TARGET_SCEN_CALL_sJ_p999, J the size's place in the plan. */
static uint64_t *scratch;

static void report_size(const char *t, int sc, int c, size_t j, size_t from, size_t to)
{
	struct series one = {scratch, to - from, to - from, 0};
	char what[32];
	memcpy(scratch, samples[sc][c].v + from, (to - from) * sizeof(uint64_t));
	qsort(scratch, to - from, sizeof(uint64_t), cmp_u64);
	snprintf(what, sizeof(what), "s%zu_p999", j);
	kv(t, scen_name[sc], call_name[c], what, quantile(&one, 999000));
}

/* Every scenario at every size: warm-up, then the timed loop. */
static uint64_t measure(const struct target *t, const struct plan *pl)
{
	size_t sizes[24];
	uint64_t calls = 0;
	int sc, c;

	for (sc = 0; sc < WC_SCENS; sc++) {
		size_t k = plan_sizes(pl, (enum wc_scen)sc, sizes), j;
		faults[sc] = 0;
		for (c = 0; c < WC_CALLS; c++)
			samples[sc][c].n = samples[sc][c].small = 0;
		for (j = 0; j < k; j++) {
			size_t from[WC_CALLS];
			for (c = 0; c < WC_CALLS; c++)
				from[c] = samples[sc][c].n;
			scen_run(t, (enum wc_scen)sc, sizes[j], pl->warm, false, pl);
			scen_run(t, (enum wc_scen)sc, sizes[j], pl->iters, true, pl);
			for (c = 0; c < WC_CALLS; c++) {
				if (sizes[j] <= WC_SMALL)
					samples[sc][c].small = samples[sc][c].n;
				if (samples[sc][c].n > from[c])
					report_size(t->name, sc, c, j, from[c], samples[sc][c].n);
			}
		}
		for (c = 0; c < WC_CALLS; c++)
			calls += samples[sc][c].n;
	}
	report(t->name);
	{
		char key[64];
		snprintf(key, sizeof(key), "%s_setup", t->name);
		/* Only a private heap is one TLSF area whose state the scenarios
		 * set exactly; elsewhere they are the same calls on another heap. */
		ba_kv_s(key, t->kind == WC_PRIVATE ? "exact" : "nearest");
	}
	return calls;
}

#ifdef BENCH_PALLOCATOR
/* Lets mlock take the whole limit where only the soft limit forbids it. */
static void raise_memlock(size_t need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
	(void)setrlimit(RLIMIT_MEMLOCK, &rl);
}

/* The largest request the empty heap h serves (a bisection). */
static size_t heap_largest(myheap_t *h, size_t limit)
{
	size_t lo = 0, hi = limit;
	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;
		void *p = myheap_alloc(h, mid);
		if (p != NULL) {
			if (myheap_free(h, p) != 0)
				ba_die("myheap_free: %s", strerror(errno));
			lo = mid;
		} else {
			hi = mid - 1;
		}
	}
	return lo;
}

/* The locked heap, or when mlock is refused the same heap unlocked with
 * every page touched once and kept; *why says which. */
static myheap_t *locked_heap(const struct plan *pl, const char **why)
{
	struct myheap_options op;
	myheap_t *h;
	void *p;

	memset(&op, 0, sizeof(op));
	op.size = sizeof(op);
	op.limit = pl->limit;
	op.flags = MYHEAP_LOCKED;
	raise_memlock(pl->limit);
	h = myheap_create(&op);
	if (h != NULL) {
		*why = "ok";
		return h;
	}
	*why = errno == EPERM ? "refused-EPERM-unlocked" :
	       errno == ENOMEM ? "refused-ENOMEM-unlocked" :
	       errno == EAGAIN ? "refused-EAGAIN-unlocked" : "refused-unlocked";
	fprintf(stderr, "worstcase: MYHEAP_LOCKED heap of %zu MiB refused (%s); "
	        "measuring it unlocked, pages touched once and never released\n",
	        pl->limit / WC_MIB, strerror(errno));
	/* No limit: an unlocked heap maps a chunk of its own for a request
	 * too large for the usual one, and the limit counts that chunk too. */
	op.flags = 0;
	op.limit = 0;
	op.release = MYHEAP_RELEASE_NEVER;
	h = myheap_create(&op);
	if (h == NULL)
		ba_die("myheap_create: %s", strerror(errno));
	p = myheap_alloc(h, pl->largest);
	BA_CHECK(p, pl->largest);
	memset(p, 1, pl->largest);
	if (myheap_free(h, p) != 0)
		ba_die("myheap_free: %s", strerror(errno));
	return h;
}
#endif

int main(int argc, char **argv)
{
	struct ba_opts o;
	struct plan pl;
	uint64_t calls = 0, overhead = UINT64_MAX;
	size_t sizes[24], most = 0;
	double t0, secs;
	int sc, c, i;

	ba_parse(&o, "worstcase", "heap limit in MiB; the largest request is 1/16 below it "
	         "(default 64)", argc, argv);
	ba_init();
	plan_make(&pl, &o);
	for (sc = 0; sc < WC_SCENS; sc++) {
		size_t k = plan_sizes(&pl, (enum wc_scen)sc, sizes);
		most = k > most ? k : most;
	}
	for (sc = 0; sc < WC_SCENS; sc++)
		for (c = 0; c < WC_CALLS; c++) {
			samples[sc][c].cap = most * pl.iters;
			samples[sc][c].v = ba_meta_alloc(samples[sc][c].cap * sizeof(uint64_t));
			/* Touched now, so that recording a sample takes no fault. */
			memset(samples[sc][c].v, 0, samples[sc][c].cap * sizeof(uint64_t));
		}
	scratch = ba_meta_alloc(pl.iters * sizeof(uint64_t));
	memset(scratch, 0, pl.iters * sizeof(uint64_t));
	for (i = 0; i < 1000; i++) {
		uint64_t a = ba_ticks(), b = ba_ticks();
		if (b - a < overhead)
			overhead = b - a;
	}

	ba_result_begin(&o);
	ba_kv_s("unit", BA_TICK_UNIT);
	ba_kv_u("tick_overhead", overhead);
	ba_kv_u("heap_limit_mib", pl.limit / WC_MIB);
	ba_kv_u("largest", pl.largest);
	ba_kv_u("iters_per_size", pl.iters);
	t0 = ba_now();
#ifdef BENCH_PALLOCATOR
	if (myheap_create != NULL) {
		const char *why;
		struct target lk = {"locked", WC_PRIVATE, NULL};
		struct target hp = {"heap", WC_PRIVATE, NULL};
		size_t most_served;
		lk.heap = locked_heap(&pl, &why);
		ba_kv_s("locked_mlock", why);
		/* The stand-in of a refused lock has no limit to probe. */
		most_served = strcmp(why, "ok") == 0 ? heap_largest(lk.heap, pl.limit) : pl.largest;
		ba_kv_u("locked_largest", most_served);
		if (most_served < pl.largest)
			ba_die("a locked heap of %zu MiB serves at most %zu bytes, less than the "
			       "%zu planned", pl.limit / WC_MIB, most_served, pl.largest);
		calls += measure(&lk, &pl);
		if (myheap_destroy(lk.heap) != 0)
			ba_die("myheap_destroy: %s", strerror(errno));
		hp.heap = myheap_create(NULL);
		if (hp.heap == NULL)
			ba_die("myheap_create(NULL): %s", strerror(errno));
		calls += measure(&hp, &pl);
		if (myheap_destroy(hp.heap) != 0)
			ba_die("myheap_destroy: %s", strerror(errno));
	} else {
		fprintf(stderr, "worstcase: this libpallocator has no private heaps; "
		        "measuring myalloc only\n");
		ba_kv_s("locked_mlock", "absent");
	}
	{
		struct target df = {"default", WC_SYSTEM, NULL};
		calls += measure(&df, &pl);
	}
#else
	{
		struct target sy = {"malloc", WC_SYSTEM};
		calls += measure(&sy, &pl);
	}
#endif
	secs = ba_now() - t0;
	ba_result_end(secs, calls, check);
	return 0;
}
