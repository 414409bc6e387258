/* SPDX-License-Identifier: MIT */
/*
 * sizes - the cost of a malloc/free pair in one size range at a time.
 *
 * --case names the range (16-128, 128-2K, 2K-8K, 8K-32K, 32K-256K, 256K-1M,
 * 1M-4M; bytes, K = KiB, M = MiB). Each thread on its own fills an array of
 * --size live blocks (default 2000) with sizes uniform in the range, then
 * repeatedly picks a random slot, checks the first and last byte of the
 * block there, frees it and allocates a new block of a new random size in
 * its place, writing its first and last byte. Only that replacement loop is
 * timed, by each thread for itself; ns_per_pair is the mean over threads of
 * (loop time / replacements). Every thread does the same number of
 * replacements (chosen per range so that one run takes a few tenths of a
 * second; times --scale, a tenth under --quick), so threads are independent
 * and ns_per_pair at N threads is directly comparable with 1 thread.
 * time_s is the slowest thread's loop; ops counts malloc and free calls in
 * the loops. A thread frees its blocks only once every thread's loop is
 * over: unmapping them would stop the others' loops for the TLB flush.
 *
 * Touching only two bytes per block keeps the page-fault cost of the big
 * ranges at what a program that uses a little of each buffer would pay,
 * and lets the allocator's own cost show.
 */
#include "bench_alloc.h"

struct range {
	const char *name;
	size_t lo, hi;      /* sizes are uniform in [lo, hi] */
	size_t pairs;       /* replacements per thread at --scale 1 */
};

#define KIB ((size_t)1024)
#define MIB (KIB * 1024)

static const struct range ranges[] = {
	{"16-128", 16, 128, 12000000},
	{"128-2K", 128, 2 * KIB, 5000000},
	{"2K-8K", 2 * KIB, 8 * KIB, 2000000},
	{"8K-32K", 8 * KIB, 32 * KIB, 1000000},
	{"32K-256K", 32 * KIB, 256 * KIB, 200000},
	{"256K-1M", 256 * KIB, MIB, 60000},
	{"1M-4M", MIB, 4 * MIB, 10000},
};
#define NRANGES (sizeof(ranges) / sizeof(ranges[0]))

struct worker {
	struct ba_team *team;
	const struct range *r;
	uint64_t seed;
	size_t live;
	size_t rounds;
	double secs;
	uint64_t check;
};

static void *sizes_thread(void *arg)
{
	struct worker *w = arg;
	uint64_t rng = w->seed, check = 0;
	size_t n = w->live, lo = w->r->lo, hi = w->r->hi, i;
	void **ptr = ba_meta_alloc(n * sizeof(*ptr));
	size_t *sz = ba_meta_alloc(n * sizeof(*sz));
	double t0;

	for (i = 0; i < n; i++) {
		sz[i] = ba_range(&rng, lo, hi);
		ptr[i] = ba_xmalloc(sz[i]);
		ba_touch(ptr[i], sz[i], ba_tag(i, sz[i]));
	}
	ba_team_ready(w->team);
	t0 = ba_now();
	for (i = 0; i < w->rounds; i++) {
		size_t k = ba_below(&rng, n);
		check += ba_verify(ptr[k], sz[k], ba_tag(k, sz[k]));
		BA_FREE(ptr[k]);
		sz[k] = ba_range(&rng, lo, hi);
		ptr[k] = ba_xmalloc(sz[k]);
		ba_touch(ptr[k], sz[k], ba_tag(k, sz[k]));
	}
	w->secs = ba_now() - t0;
	ba_team_done(w->team);
	for (i = 0; i < n; i++) {
		check += ba_verify(ptr[i], sz[i], ba_tag(i, sz[i]));
		BA_FREE(ptr[i]);
	}
	w->check = check;
	ba_meta_free(ptr, n * sizeof(*ptr));
	ba_meta_free(sz, n * sizeof(*sz));
	return NULL;
}

static const struct range *find_range(const char *name)
{
	size_t i;

	for (i = 0; i < NRANGES; i++)
		if (name != NULL && strcmp(name, ranges[i].name) == 0)
			return &ranges[i];
	fprintf(stderr, "sizes: --case wants one of:");
	for (i = 0; i < NRANGES; i++)
		fprintf(stderr, " %s", ranges[i].name);
	fputc('\n', stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	struct ba_opts o;
	struct ba_team team;
	struct worker *w;
	const struct range *r;
	uint64_t check = 0;
	double slowest = 0, ns = 0;
	int t;

	ba_parse(&o, "sizes", "live blocks per thread (default 2000)", argc, argv);
	r = find_range(o.which);
	ba_init();
	w = ba_meta_alloc(sizeof(*w) * (size_t)o.threads);
	for (t = 0; t < o.threads; t++) {
		w[t].team = &team;
		w[t].r = r;
		w[t].seed = ba_rng_seed(o.seed, (uint64_t)t);
		w[t].live = o.size > 0 ? (size_t)o.size : 2000;
		w[t].rounds = ba_amount(&o, r->pairs);
	}
	ba_run_team(&team, o.threads, sizes_thread, w, sizeof(*w));
	for (t = 0; t < o.threads; t++) {
		check += w[t].check;
		ns += w[t].secs * 1e9 / (double)w[t].rounds;
		if (w[t].secs > slowest)
			slowest = w[t].secs;
	}
	ba_result_begin(&o);
	ba_kv_u("live_per_thread", w[0].live);
	ba_kv_u("min_size", r->lo);
	ba_kv_u("max_size", r->hi);
	ba_kv_u("pairs_per_thread", w[0].rounds);
	ba_kv_f("ns_per_pair", ns / o.threads);
	ba_result_end(slowest, 2 * (uint64_t)w[0].rounds * (uint64_t)o.threads,
	              check);
	ba_meta_free(w, sizeof(*w) * (size_t)o.threads);
	return 0;
}
