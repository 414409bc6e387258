/* SPDX-License-Identifier: MIT */
/*
 * latency - the cost of single malloc and free calls on a fragmented heap.
 *
 * Single-threaded (--threads is accepted and ignored). One phase:
 *   1. fragment: allocate --size blocks (default 100000) from the
 *      bench_alloc.h size mix and free a random half of them (untimed);
 *   2. measure: 200000 operations (times --scale, a tenth under --quick),
 *      each a malloc of a random size (probability 1/2, stored in a pool
 *      that also holds the survivors of step 1) or a free of a random pool
 *      entry; every call alone is bracketed by serialised timestamps
 *      (lfence; rdtsc; lfence) and its cost recorded;
 *   3. free everything left.
 * The phase runs twice with the same seed: "cold" in a fresh process (the
 * heap grows while it runs, so page faults and system calls show up) and
 * "warm" after everything was freed, with the heap already grown.
 *
 * Reported per phase and call: median, p99.9, p99.99 and max, in TSC cycles
 * (ns where there is no TSC; the unit is printed), raw, minus nothing: the
 * cost of an empty measurement is printed as tick_overhead for reference.
 * The allocated block's first byte is written after the second timestamp,
 * so the measurement is of the call alone.
 */
#include "bench_alloc.h"

struct samples {
	uint64_t *v;
	size_t n, cap;
};

struct pool {
	void **ptr;
	size_t *sz;
	size_t n, cap;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* q-quantile of a sorted sample, nearest rank. */
static uint64_t quantile(const struct samples *s, double q)
{
	size_t i;
	if (s->n == 0)
		return 0;
	i = (size_t)(q * (double)s->n);
	if (i >= s->n)
		i = s->n - 1;
	return s->v[i];
}

static void pool_add(struct pool *p, void *ptr, size_t sz)
{
	if (p->n == p->cap)
		ba_die("latency: pool overflow");
	p->ptr[p->n] = ptr;
	p->sz[p->n] = sz;
	p->n++;
}

static uint64_t pool_take(struct pool *p, size_t i, void **ptr)
{
	uint64_t check = ba_verify(p->ptr[i], p->sz[i], ba_tag(0, p->sz[i]));
	*ptr = p->ptr[i];
	p->n--;
	p->ptr[i] = p->ptr[p->n];
	p->sz[i] = p->sz[p->n];
	return check;
}

static uint64_t phase(uint64_t seed, size_t frag, size_t nops, struct pool *pool,
                      struct samples *ms, struct samples *fs)
{
	uint64_t rng = ba_rng_seed(seed, 0x1a7e);
	uint64_t check = 0;
	void **tmp = ba_meta_alloc(frag * sizeof(void *));
	size_t *tsz = ba_meta_alloc(frag * sizeof(size_t));
	size_t i;

	pool->n = 0;
	ms->n = fs->n = 0;
	for (i = 0; i < frag; i++) {
		tsz[i] = ba_size_mix(&rng);
		tmp[i] = ba_xmalloc(tsz[i]);
		ba_touch(tmp[i], tsz[i], ba_tag(0, tsz[i]));
	}
	for (i = 0; i < frag; i++) {
		if (ba_rand(&rng) & 1) {
			check += ba_verify(tmp[i], tsz[i], ba_tag(0, tsz[i]));
			BA_FREE(tmp[i]);
		} else {
			pool_add(pool, tmp[i], tsz[i]);
		}
	}
	ba_meta_free(tmp, frag * sizeof(void *));
	ba_meta_free(tsz, frag * sizeof(size_t));

	for (i = 0; i < nops; i++) {
		uint64_t t0, t1;
		if (pool->n == 0 || (ba_rand(&rng) & 1)) {
			size_t sz = ba_size_mix(&rng);
			void *p;
			t0 = ba_ticks();
			p = BA_MALLOC(sz);
			t1 = ba_ticks();
			BA_CHECK(p, sz);
			ba_touch(p, sz, ba_tag(0, sz));
			pool_add(pool, p, sz);
			ms->v[ms->n++] = t1 - t0;
		} else {
			void *p;
			check += pool_take(pool, ba_below(&rng, pool->n), &p);
			t0 = ba_ticks();
			BA_FREE(p);
			t1 = ba_ticks();
			fs->v[fs->n++] = t1 - t0;
		}
	}
	while (pool->n > 0) {
		void *p;
		check += pool_take(pool, pool->n - 1, &p);
		BA_FREE(p);
	}
	qsort(ms->v, ms->n, sizeof(uint64_t), cmp_u64);
	qsort(fs->v, fs->n, sizeof(uint64_t), cmp_u64);
	return check;
}

static void report(const char *phase_name, const char *call, const struct samples *s)
{
	char key[64];
	static const struct {
		const char *name;
		double q;
	} qs[] = {{"p50", 0.5}, {"p999", 0.999}, {"p9999", 0.9999}};
	size_t i;

	for (i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		snprintf(key, sizeof(key), "%s_%s_%s", phase_name, call, qs[i].name);
		ba_kv_u(key, quantile(s, qs[i].q));
	}
	snprintf(key, sizeof(key), "%s_%s_max", phase_name, call);
	ba_kv_u(key, s->n ? s->v[s->n - 1] : 0);
}

int main(int argc, char **argv)
{
	struct ba_opts o;
	struct pool pool;
	struct samples cm, cf, wm, wf;
	size_t frag, nops;
	uint64_t check = 0, overhead = UINT64_MAX;
	double t0, secs;
	int i;

	ba_parse(&o, "latency", "blocks allocated to fragment the heap (default 100000)",
	         argc, argv);
	ba_init();
	frag = o.size > 0 ? (size_t)o.size : 100000;
	if (o.quick && o.size == 0)
		frag /= 4;
	nops = ba_amount(&o, 200000);
	pool.cap = frag + nops;
	pool.ptr = ba_meta_alloc(pool.cap * sizeof(void *));
	pool.sz = ba_meta_alloc(pool.cap * sizeof(size_t));
	cm.v = ba_meta_alloc(nops * sizeof(uint64_t));
	cf.v = ba_meta_alloc(nops * sizeof(uint64_t));
	wm.v = ba_meta_alloc(nops * sizeof(uint64_t));
	wf.v = ba_meta_alloc(nops * sizeof(uint64_t));
	for (i = 0; i < 1000; i++) {
		uint64_t a = ba_ticks(), b = ba_ticks();
		if (b - a < overhead)
			overhead = b - a;
	}

	t0 = ba_now();
	check += phase(o.seed, frag, nops, &pool, &cm, &cf);
	check += phase(o.seed, frag, nops, &pool, &wm, &wf);
	secs = ba_now() - t0;

	ba_result_begin(&o);
	ba_kv_u("frag_blocks", frag);
	ba_kv_s("unit", BA_TICK_UNIT);
	ba_kv_u("tick_overhead", overhead);
	ba_kv_u("malloc_calls", cm.n);
	ba_kv_u("free_calls", cf.n);
	report("cold", "malloc", &cm);
	report("cold", "free", &cf);
	report("warm", "malloc", &wm);
	report("warm", "free", &wf);
	ba_result_end(secs, 2 * ((uint64_t)cm.n + cf.n), check);
	return 0;
}
