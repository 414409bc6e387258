/* SPDX-License-Identifier: MIT */
/*
 * large - blocks of megabytes: fresh big buffers, and one buffer grown.
 *
 * --case malloc2m: 2000 rounds (times --scale, a tenth under --quick) of
 *   malloc(2 MiB), memset of the whole block, a check of one byte, free.
 *   An allocator that maps and unmaps every such block pays the system
 *   calls and 512 page faults per round; one that keeps a freed mapping
 *   for the next request pays neither.
 * --case grow: one block grown by realloc from 64 KiB to 64 MiB in 64 KiB
 *   steps, the new 64 KiB written after every step and the old contents
 *   checked at both ends, then freed; repeated 3 times (times --scale, at
 *   least once; once under --quick). An allocator that copies at every
 *   step moves about 32 GiB per growth; one that grows in place (mremap
 *   or room behind the block) moves little. moved_frac reports the share
 *   of reallocs that returned a new address.
 *
 * Every thread does the whole work on its own blocks (threads are
 * independent); time_s is the wall time of the team. ops counts malloc,
 * realloc and free calls.
 */
#include "bench_alloc.h"

#define KIB ((size_t)1024)
#define MIB (KIB * 1024)
#define BIG (2 * MIB)
#define STEP (64 * KIB)
#define GROW_MAX (64 * MIB)

struct worker {
	struct ba_team *team;
	int grow;
	size_t rounds;
	uint64_t check, ops, moves;
};

static uint64_t malloc2m(struct worker *w)
{
	uint64_t check = 0;
	size_t i;

	for (i = 0; i < w->rounds; i++) {
		unsigned char *p = ba_xmalloc(BIG);
		int v = (int)(i * 37 + 1) & 0xff;
		memset(p, v, BIG);
		if (p[(i * 4099) % BIG] != (unsigned char)v)
			ba_die("malloc2m: block %p lost its contents", (void *)p);
		check += p[BIG - 1];
		BA_FREE(p);
	}
	w->ops = 2 * (uint64_t)w->rounds;
	return check;
}

static uint64_t grow_once(struct worker *w, size_t rep)
{
	unsigned char *p = ba_xmalloc(STEP), *q;
	unsigned char first = (unsigned char)(rep * 11 + 3);
	unsigned char last = first;
	size_t len = STEP;
	uint64_t check = 0;

	memset(p, first, STEP);
	while (len < GROW_MAX) {
		q = ba_xrealloc(p, len + STEP);
		w->moves += q != p;
		p = q;
		if (p[0] != first || p[len - 1] != last)
			ba_die("grow: block %p lost its contents at %zu bytes",
			       (void *)p, len);
		last = (unsigned char)(len / STEP + rep);
		memset(p + len, last, STEP);
		len += STEP;
		check += p[len - 1];
		w->ops++;
	}
	BA_FREE(p);
	w->ops += 2;
	return check;
}

static void *large_thread(void *arg)
{
	struct worker *w = arg;
	size_t r;

	ba_team_ready(w->team);
	if (!w->grow) {
		w->check = malloc2m(w);
		return NULL;
	}
	for (r = 0; r < w->rounds; r++)
		w->check += grow_once(w, r);
	return NULL;
}

int main(int argc, char **argv)
{
	struct ba_opts o;
	struct ba_team team;
	struct worker *w;
	uint64_t ops = 0, check = 0, moves = 0, reallocs = 0;
	double secs;
	int t, grow;

	ba_parse(&o, "large", "unused", argc, argv);
	if (o.which != NULL && strcmp(o.which, "grow") == 0)
		grow = 1;
	else if (o.which != NULL && strcmp(o.which, "malloc2m") == 0)
		grow = 0;
	else {
		fprintf(stderr, "large: --case wants malloc2m or grow\n");
		return 2;
	}
	ba_init();
	w = ba_meta_alloc(sizeof(*w) * (size_t)o.threads);
	for (t = 0; t < o.threads; t++) {
		w[t].team = &team;
		w[t].grow = grow;
		if (grow)
			w[t].rounds = o.quick ? 1 : (size_t)(3 * o.scale + 0.5);
		else
			w[t].rounds = ba_amount(&o, 2000);
		if (w[t].rounds == 0)
			w[t].rounds = 1;
	}
	secs = ba_run_team(&team, o.threads, large_thread, w, sizeof(*w));
	for (t = 0; t < o.threads; t++) {
		ops += w[t].ops;
		check += w[t].check;
		moves += w[t].moves;
		reallocs += grow ? w[t].rounds * (GROW_MAX / STEP - 1) : 0;
	}
	ba_result_begin(&o);
	ba_kv_u("rounds_per_thread", w[0].rounds);
	if (grow)
		ba_kv_f("moved_frac", reallocs ? (double)moves / (double)reallocs : 0);
	ba_result_end(secs, ops, check);
	ba_meta_free(w, sizeof(*w) * (size_t)o.threads);
	return 0;
}
