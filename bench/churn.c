/* SPDX-License-Identifier: MIT */
/*
 * churn - steady-state replacement of live blocks, every thread on its own.
 *
 * Each thread fills an array of --size live blocks (default 4000) from the
 * size mix of bench_alloc.h (mostly 8..128 bytes, 1 % up to 256 KiB), then
 * repeatedly picks a random slot, checks the tag bytes of the block there,
 * frees it and puts a freshly allocated block of a new random size in its
 * place (first and last byte written). At the end everything is freed.
 *
 * The total number of replacements (30 M, times --scale, a tenth under
 * --quick) is split evenly between the threads, so ops/s over thread counts
 * is a strong-scaling curve. ops counts malloc and free calls.
 */
#include "bench_alloc.h"

struct worker {
	struct ba_team *team;
	uint64_t seed;
	size_t live;
	size_t rounds;
	uint64_t check;
	uint64_t ops;
};

static void *churn_thread(void *arg)
{
	struct worker *w = arg;
	uint64_t rng = w->seed;
	size_t n = w->live, i;
	void **ptr = ba_meta_alloc(n * sizeof(*ptr));
	size_t *sz = ba_meta_alloc(n * sizeof(*sz));
	uint64_t check = 0;

	ba_team_ready(w->team);
	for (i = 0; i < n; i++) {
		sz[i] = ba_size_mix(&rng);
		ptr[i] = ba_xmalloc(sz[i]);
		ba_touch(ptr[i], sz[i], ba_tag(i, sz[i]));
	}
	for (i = 0; i < w->rounds; i++) {
		size_t k = ba_below(&rng, n);
		check += ba_verify(ptr[k], sz[k], ba_tag(k, sz[k]));
		BA_FREE(ptr[k]);
		sz[k] = ba_size_mix(&rng);
		ptr[k] = ba_xmalloc(sz[k]);
		ba_touch(ptr[k], sz[k], ba_tag(k, sz[k]));
	}
	for (i = 0; i < n; i++) {
		check += ba_verify(ptr[i], sz[i], ba_tag(i, sz[i]));
		BA_FREE(ptr[i]);
	}
	w->check = check;
	w->ops = 2 * ((uint64_t)n + w->rounds);
	ba_meta_free(ptr, n * sizeof(*ptr));
	ba_meta_free(sz, n * sizeof(*sz));
	return NULL;
}

int main(int argc, char **argv)
{
	struct ba_opts o;
	struct ba_team team;
	struct worker *w;
	size_t total;
	uint64_t ops = 0, check = 0;
	double secs;
	int t;

	ba_parse(&o, "churn", "live blocks per thread (default 4000)", argc, argv);
	ba_init();
	total = ba_amount(&o, 30000000);
	w = ba_meta_alloc(sizeof(*w) * (size_t)o.threads);
	for (t = 0; t < o.threads; t++) {
		w[t].team = &team;
		w[t].seed = ba_rng_seed(o.seed, (uint64_t)t);
		w[t].live = o.size > 0 ? (size_t)o.size : 4000;
		w[t].rounds = total / (size_t)o.threads;
	}
	secs = ba_run_team(&team, o.threads, churn_thread, w, sizeof(*w));
	for (t = 0; t < o.threads; t++) {
		ops += w[t].ops;
		check += w[t].check;
	}
	ba_result_begin(&o);
	ba_kv_u("live_per_thread", w[0].live);
	ba_result_end(secs, ops, check);
	ba_meta_free(w, sizeof(*w) * (size_t)o.threads);
	return 0;
}
