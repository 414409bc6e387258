/* SPDX-License-Identifier: MIT */
/*
 * larson - server-style churn where blocks migrate between threads.
 *
 * There are as many sets of --size live blocks (default 4000) as threads.
 * Work proceeds in rounds. In a round every thread replaces each block of
 * the set it holds once, in a scrambled order (random start, random stride
 * coprime to the set size): check the tag bytes, free, allocate a new random
 * size from the bench_alloc.h mix, write first and last byte. Then all
 * threads meet at a barrier and the sets rotate: thread i takes over the set
 * thread i-1 just worked on. So with 2 threads or more every free in a round
 * is of a block that another thread allocated (the measured share is
 * reported as remote_frac). With --threads 1 there is nobody to hand sets
 * to and the workload degenerates into churn with barriers.
 *
 * The total number of replacements (30 M, times --scale, a tenth under
 * --quick) is split evenly between the threads; ops counts malloc and free
 * calls.
 */
#include "bench_alloc.h"

struct set {
	void **ptr;
	size_t *sz;
	unsigned short *owner; /* thread that allocated the block */
};

struct shared {
	struct set *sets;
	size_t nsets;
	size_t live;
	size_t rounds;
	pthread_barrier_t round_end;
};

struct worker {
	struct ba_team *team;
	struct shared *sh;
	size_t id;
	uint64_t seed;
	uint64_t check, ops, remote;
};

static size_t gcd(size_t a, size_t b)
{
	while (b != 0) {
		size_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* A step in 1..n-1 (1 for n <= 2) coprime to n: visiting k, k+s, k+2s, ...
 * modulo n touches every slot exactly once. */
static size_t pick_stride(uint64_t *rng, size_t n)
{
	size_t s;
	if (n <= 2)
		return 1;
	do
		s = ba_range(rng, 1, n - 1);
	while (gcd(s, n) != 1);
	return s;
}

static void *larson_thread(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	uint64_t rng = w->seed;
	uint64_t check = 0, remote = 0, ops = 0;
	size_t r, i, n = sh->live;
	unsigned short me = (unsigned short)w->id;

	/* Each thread fills its own set first, untimed. */
	{
		struct set *s = &sh->sets[w->id];
		for (i = 0; i < n; i++) {
			s->sz[i] = ba_size_mix(&rng);
			s->ptr[i] = ba_xmalloc(s->sz[i]);
			s->owner[i] = me;
			ba_touch(s->ptr[i], s->sz[i], ba_tag(i, s->sz[i]));
		}
	}
	ba_team_ready(w->team);
	for (r = 0; r < sh->rounds; r++) {
		struct set *s = &sh->sets[(w->id + r) % sh->nsets];
		size_t k = ba_below(&rng, n), stride = pick_stride(&rng, n);
		for (i = 0; i < n; i++) {
			k += stride;
			if (k >= n)
				k -= n;
			check += ba_verify(s->ptr[k], s->sz[k], ba_tag(k, s->sz[k]));
			remote += s->owner[k] != me;
			BA_FREE(s->ptr[k]);
			s->sz[k] = ba_size_mix(&rng);
			s->ptr[k] = ba_xmalloc(s->sz[k]);
			s->owner[k] = me;
			ba_touch(s->ptr[k], s->sz[k], ba_tag(k, s->sz[k]));
		}
		ops += 2 * (uint64_t)n;
		pthread_barrier_wait(&sh->round_end);
	}
	/* Free whatever set this thread ended up holding (timed). */
	{
		struct set *s = &sh->sets[(w->id + sh->rounds) % sh->nsets];
		for (i = 0; i < n; i++) {
			check += ba_verify(s->ptr[i], s->sz[i], ba_tag(i, s->sz[i]));
			remote += s->owner[i] != me;
			BA_FREE(s->ptr[i]);
		}
		ops += n;
	}
	w->check = check;
	w->ops = ops;
	w->remote = remote;
	return NULL;
}

int main(int argc, char **argv)
{
	struct ba_opts o;
	struct ba_team team;
	struct shared sh;
	struct worker *w;
	size_t total, t, frees;
	uint64_t ops = 0, check = 0, remote = 0;
	double secs;

	ba_parse(&o, "larson", "live blocks per set (default 4000)", argc, argv);
	ba_init();
	total = ba_amount(&o, 30000000);
	sh.nsets = (size_t)o.threads;
	sh.live = o.size > 0 ? (size_t)o.size : 4000;
	sh.rounds = total / sh.nsets / sh.live;
	if (sh.rounds == 0)
		sh.rounds = 1;
	sh.sets = ba_meta_alloc(sizeof(*sh.sets) * sh.nsets);
	for (t = 0; t < sh.nsets; t++) {
		sh.sets[t].ptr = ba_meta_alloc(sh.live * sizeof(void *));
		sh.sets[t].sz = ba_meta_alloc(sh.live * sizeof(size_t));
		sh.sets[t].owner = ba_meta_alloc(sh.live * sizeof(unsigned short));
	}
	if (pthread_barrier_init(&sh.round_end, NULL, (unsigned)o.threads) != 0)
		ba_die("pthread_barrier_init failed");
	w = ba_meta_alloc(sizeof(*w) * sh.nsets);
	for (t = 0; t < sh.nsets; t++) {
		w[t].team = &team;
		w[t].sh = &sh;
		w[t].id = t;
		w[t].seed = ba_rng_seed(o.seed, t);
	}
	secs = ba_run_team(&team, o.threads, larson_thread, w, sizeof(*w));
	for (t = 0; t < sh.nsets; t++) {
		ops += w[t].ops;
		check += w[t].check;
		remote += w[t].remote;
	}
	frees = sh.nsets * (sh.rounds + 1) * sh.live;
	ba_result_begin(&o);
	ba_kv_u("live_per_set", sh.live);
	ba_kv_u("rounds", sh.rounds);
	ba_kv_f("remote_frac", (double)remote / (double)frees);
	ba_result_end(secs, ops, check);
	pthread_barrier_destroy(&sh.round_end);
	return 0;
}
