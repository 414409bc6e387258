/* SPDX-License-Identifier: MIT */
/*
 * memory - footprint across a phase change (small blocks, then medium).
 *
 *   1. every thread allocates its share of --size small blocks (default
 *      1000000 in total, a tenth under --quick; --scale multiplies) of
 *      16..64 bytes and writes all of each;
 *   2. it frees a random 90 % of them;
 *   3. it allocates medium blocks of 1..16 KiB (written in full) until it
 *      holds as many bytes again as it did after step 1.
 * Threads meet at a barrier between the steps, so the bytes held live are
 * known exactly: the peak is the larger of the totals after steps 1 and 3.
 *
 * Reported: peak RSS (VmHWM; see ba_peak_rss_kib) against the peak live bytes, and
 * the RSS at the end (/proc/self/statm, read while the step 3 blocks are
 * still live) against the live bytes then. "Live" counts the bytes requested
 * plus the workload's own pointer arrays (mmap'd, 16 bytes per block, also
 * resident); it does not count the ~1-2 MiB a bare process occupies, so
 * ratios slightly above 1 are the floor. Lower is better.
 */
#include "bench_alloc.h"

struct shared {
	pthread_barrier_t step;
	long rss_after_small;   /* RSS after step 1 (thread 0 reads it) */
	long rss_end;           /* RSS after step 3, blocks still live */
};

struct worker {
	struct ba_team *team;
	struct shared *sh;
	int id;
	uint64_t seed;
	size_t nsmall;
	void **ptr;
	size_t *sz;
	size_t cap;             /* entries in ptr/sz */
	uint64_t bytes_small, bytes_end, meta_bytes;
	uint64_t check, ops;
};

static void *memory_thread(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	uint64_t rng = w->seed, check = 0, ops = 0;
	size_t i, kept = 0, nmed = 0;
	uint64_t held = 0, target;

	w->cap = w->nsmall + w->nsmall / 8 + 64;
	w->meta_bytes = w->cap * (sizeof(void *) + sizeof(size_t));
	w->ptr = ba_meta_alloc(w->cap * sizeof(void *));
	w->sz = ba_meta_alloc(w->cap * sizeof(size_t));
	memset(w->ptr, 0, w->cap * sizeof(void *));
	memset(w->sz, 0, w->cap * sizeof(size_t));
	ba_team_ready(w->team);

	for (i = 0; i < w->nsmall; i++) {
		size_t n = ba_range(&rng, 16, 64);
		w->sz[i] = n;
		w->ptr[i] = ba_xmalloc(n);
		memset(w->ptr[i], ba_tag(i, n), n);
		held += n;
	}
	ops += w->nsmall;
	w->bytes_small = held;
	target = held;
	pthread_barrier_wait(&sh->step);
	if (w->id == 0)
		sh->rss_after_small = ba_cur_rss_kib();
	pthread_barrier_wait(&sh->step);

	for (i = 0; i < w->nsmall; i++) {
		if (ba_below(&rng, 10) != 0) {
			check += ba_verify(w->ptr[i], w->sz[i], ba_tag(i, w->sz[i]));
			BA_FREE(w->ptr[i]);
			held -= w->sz[i];
			ops++;
		} else {
			w->ptr[kept] = w->ptr[i];
			w->sz[kept] = w->sz[i];
			kept++;
		}
	}
	pthread_barrier_wait(&sh->step);

	for (i = kept; held < target; i++) {
		size_t n = ba_range(&rng, 1024, 16384);
		if (i >= w->cap)
			ba_die("memory: slot array too small");
		w->sz[i] = n;
		w->ptr[i] = ba_xmalloc(n);
		memset(w->ptr[i], 0x6d, n);
		held += n;
		nmed++;
	}
	ops += nmed;
	w->bytes_end = held;
	pthread_barrier_wait(&sh->step);
	if (w->id == 0)
		sh->rss_end = ba_cur_rss_kib();
	pthread_barrier_wait(&sh->step);

	/* Check and free everything (timed like the rest). */
	for (i = 0; i < kept + nmed; i++) {
		unsigned char *b = w->ptr[i];
		check += b[0] + b[w->sz[i] - 1];
		BA_FREE(b);
	}
	ops += kept + nmed;
	w->check = check;
	w->ops = ops;
	ba_meta_free(w->ptr, w->cap * sizeof(void *));
	ba_meta_free(w->sz, w->cap * sizeof(size_t));
	return NULL;
}

int main(int argc, char **argv)
{
	struct ba_opts o;
	struct ba_team team;
	struct shared sh;
	struct worker *w;
	size_t total, t, nt;
	uint64_t small = 0, end = 0, meta = 0, check = 0, ops = 0, live_peak;
	long peak;
	double secs;

	ba_parse(&o, "memory", "small blocks in total (default 1000000)", argc, argv);
	ba_init();
	nt = (size_t)o.threads;
	total = ba_amount(&o, o.size > 0 ? (size_t)o.size : 1000000);
	if (pthread_barrier_init(&sh.step, NULL, (unsigned)o.threads) != 0)
		ba_die("pthread_barrier_init failed");
	w = ba_meta_alloc(sizeof(*w) * nt);
	for (t = 0; t < nt; t++) {
		w[t].team = &team;
		w[t].sh = &sh;
		w[t].id = (int)t;
		w[t].seed = ba_rng_seed(o.seed, t);
		w[t].nsmall = total / nt;
	}
	secs = ba_run_team(&team, o.threads, memory_thread, w, sizeof(*w));
	peak = ba_peak_rss_kib();
	for (t = 0; t < nt; t++) {
		small += w[t].bytes_small;
		end += w[t].bytes_end;
		meta += w[t].meta_bytes;
		check += w[t].check;
		ops += w[t].ops;
	}
	live_peak = (small > end ? small : end) + meta;
	ba_result_begin(&o);
	ba_kv_u("small_blocks", total);
	ba_kv_u("live_peak_kib", live_peak / 1024);
	ba_kv_u("live_end_kib", (end + meta) / 1024);
	ba_kv_u("rss_after_small_kib", (uint64_t)sh.rss_after_small);
	ba_kv_u("rss_end_kib", (uint64_t)sh.rss_end);
	ba_kv_f("peak_ratio", (double)peak / ((double)live_peak / 1024.0));
	ba_kv_f("end_ratio", (double)sh.rss_end / ((double)(end + meta) / 1024.0));
	ba_result_end(secs, ops, check);
	pthread_barrier_destroy(&sh.step);
	return 0;
}
