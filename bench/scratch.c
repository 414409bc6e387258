/* SPDX-License-Identifier: MIT */
/*
 * scratch - allocator-induced false sharing (cache-scratch style).
 *
 * The main thread allocates small blocks back to back, 4 per worker,
 * interleaved (block j goes to worker j mod T), so every cache line there
 * holds blocks of different workers. Each worker allocates and frees one
 * object first, as a pooled thread has done before work reaches it: the
 * result must not hinge on how an allocator treats a thread whose very
 * first call is a free. It then frees the blocks it was handed and
 * repeats: allocate 4 objects of the same size, write every byte of them
 * many times (through a volatile pointer), check them, free them. An
 * allocator that gives the worker the main thread's freed blocks back (or
 * any memory next to another worker's objects) makes the workers fight
 * over cache lines; one that serves each thread from its own memory does
 * not. Handing out 4 interleaved blocks rather than one makes the
 * sharing independent of where the heap happens to start relative to a
 * cache line.
 *
 * Object size: --size N, 8..64 bytes (default 8). The work is 75000 rounds
 * of 4 objects x 1000 passes in total (times --scale, a tenth under
 * --quick), split between the workers. ops counts byte writes; with
 * --threads 1 nothing can be shared and the run is the baseline.
 */
#include "bench_alloc.h"

#define PASSES 1000
#define PER_WORKER 4

struct worker {
	struct ba_team *team;
	unsigned char *handed[PER_WORKER];
	size_t size;
	size_t rounds;
	uint64_t check;
};

/*
 * The hot loop lives in its own function, aligned to a cache line and never
 * inlined, so both binaries (-pa and -sys) run byte-identical, identically
 * placed machine code here: otherwise the loop's position relative to a
 * 64-byte fetch boundary alone can change its speed by 2x.
 */
__attribute__((noinline, aligned(64)))
static void scribble(volatile unsigned char *const *obj, size_t size)
{
	size_t r, j, k;
	for (r = 0; r < PASSES; r++)
		for (j = 0; j < PER_WORKER; j++) {
			volatile unsigned char *p = obj[j];
			for (k = 0; k < size; k++)
				p[k]++;
		}
}

static void *scratch_thread(void *arg)
{
	struct worker *w = arg;
	volatile unsigned char *obj[PER_WORKER];
	uint64_t check = 0;
	size_t i, k, j;

	ba_team_ready(w->team);
	{
		void *first = ba_xmalloc(w->size);
		BA_FREE(first);
	}
	for (j = 0; j < PER_WORKER; j++) {
		check += w->handed[j][0];
		BA_FREE(w->handed[j]);
	}
	for (i = 0; i < w->rounds; i++) {
		for (j = 0; j < PER_WORKER; j++) {
			obj[j] = ba_xmalloc(w->size);
			for (k = 0; k < w->size; k++)
				obj[j][k] = (unsigned char)k;
		}
		scribble(obj, w->size);
		for (j = 0; j < PER_WORKER; j++) {
			for (k = 0; k < w->size; k++)
				if (obj[j][k] != (unsigned char)(k + PASSES))
					ba_die("scratch: object %p lost a write", (void *)obj[j]);
			check += obj[j][w->size - 1];
			BA_FREE((void *)obj[j]);
		}
	}
	w->check = check;
	return NULL;
}

int main(int argc, char **argv)
{
	struct ba_opts o;
	struct ba_team team;
	struct worker *w;
	size_t rounds, t, nt, j, size;
	uint64_t check = 0, writes = 0;
	double secs;

	ba_parse(&o, "scratch", "object size, 8..64 (default 8)", argc, argv);
	if (o.size != 0 && (o.size < 8 || o.size > 64))
		ba_die("scratch: --size must be 8..64");
	ba_init();
	nt = (size_t)o.threads;
	size = o.size ? (size_t)o.size : 8;
	rounds = ba_amount(&o, 75000) / nt;
	if (rounds == 0)
		rounds = 1;
	w = ba_meta_alloc(sizeof(*w) * nt);
	for (j = 0; j < PER_WORKER; j++)
		for (t = 0; t < nt; t++) {
			w[t].handed[j] = ba_xmalloc(size);
			memset(w[t].handed[j], 0x5a, size);
		}
	for (t = 0; t < nt; t++) {
		w[t].team = &team;
		w[t].size = size;
		w[t].rounds = rounds;
		writes += (uint64_t)rounds * PER_WORKER * size * (PASSES + 1);
	}
	secs = ba_run_team(&team, o.threads, scratch_thread, w, sizeof(*w));
	for (t = 0; t < nt; t++)
		check += w[t].check;
	ba_result_begin(&o);
	ba_kv_u("object_size", size);
	ba_kv_u("rounds_per_thread", rounds);
	ba_kv_u("passes", PASSES);
	ba_result_end(secs, writes, check);
	ba_meta_free(w, sizeof(*w) * nt);
	return 0;
}
