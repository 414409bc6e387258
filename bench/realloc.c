/* SPDX-License-Identifier: MIT */
/*
 * realloc - string builders growing in small steps.
 *
 * Every thread owns its share of --size buffers (default 256 in total).
 * They grow round-robin: each turn, every buffer not yet full is realloc'd
 * to its length plus 16..64 bytes and the new bytes are written (the way a
 * string builder appends), until each holds 64 KiB; then all are checked
 * byte by byte and freed. That is one cycle; the work is 4 cycles (times
 * --scale, a tenth of the buffers under --quick), the buffers split between
 * threads. (An allocator that must move every time copies O(64K^2 / 80)
 * bytes per buffer, so the buffer count is kept modest.)
 * Round-robin growth means a buffer's neighbour in memory is usually
 * another live buffer, so growing in place is only possible for an
 * allocator that leaves room or moves cleverly. ops counts realloc calls.
 */
#include "bench_alloc.h"

#define MAX_LEN (64 * 1024)

struct worker {
	struct ba_team *team;
	uint64_t seed;
	size_t nbuf, cycles;
	uint64_t check, ops, moves;
};

static unsigned char content(size_t buf, size_t pos)
{
	return (unsigned char)(buf * 7 + pos * 13 + (pos >> 8));
}

static void *realloc_thread(void *arg)
{
	struct worker *w = arg;
	uint64_t rng = w->seed, check = 0, ops = 0, moves = 0;
	size_t n = w->nbuf, c, b, active, j;
	unsigned char **buf = ba_meta_alloc(n * sizeof(*buf));
	size_t *len = ba_meta_alloc(n * sizeof(*len));

	ba_team_ready(w->team);
	for (c = 0; c < w->cycles; c++) {
		for (b = 0; b < n; b++) {
			buf[b] = NULL;
			len[b] = 0;
		}
		active = n;
		while (active > 0) {
			active = 0;
			for (b = 0; b < n; b++) {
				size_t old = len[b], grow, nl;
				unsigned char *p;
				if (old >= MAX_LEN)
					continue;
				grow = ba_range(&rng, 16, 64);
				nl = old + grow > MAX_LEN ? MAX_LEN : old + grow;
				p = ba_xrealloc(buf[b], nl);
				moves += p != buf[b] && buf[b] != NULL;
				for (j = old; j < nl; j++)
					p[j] = content(b, j);
				buf[b] = p;
				len[b] = nl;
				ops++;
				active += nl < MAX_LEN;
			}
		}
		for (b = 0; b < n; b++) {
			for (j = 0; j < len[b]; j++)
				if (buf[b][j] != content(b, j))
					ba_die("realloc: buffer %zu byte %zu lost (moved contents wrong)",
					       b, j);
			check += buf[b][len[b] - 1];
			BA_FREE(buf[b]);
		}
		ops += n;
	}
	w->check = check;
	w->ops = ops;
	w->moves = moves;
	ba_meta_free(buf, n * sizeof(*buf));
	ba_meta_free(len, n * sizeof(*len));
	return NULL;
}

int main(int argc, char **argv)
{
	struct ba_opts o;
	struct ba_team team;
	struct worker *w;
	size_t nbuf, cycles, t, nt;
	uint64_t check = 0, ops = 0, moves = 0, reallocs = 0;
	double secs;

	ba_parse(&o, "realloc", "buffers in total (default 256)", argc, argv);
	ba_init();
	nt = (size_t)o.threads;
	nbuf = o.size > 0 ? (size_t)o.size : 256;
	if (o.quick)
		nbuf = nbuf / 10 > nt ? nbuf / 10 : nt;
	cycles = (size_t)(4.0 * o.scale + 0.5);
	if (cycles == 0)
		cycles = 1;
	w = ba_meta_alloc(sizeof(*w) * nt);
	for (t = 0; t < nt; t++) {
		w[t].team = &team;
		w[t].seed = ba_rng_seed(o.seed, t);
		w[t].nbuf = nbuf / nt + (t < nbuf % nt);
		w[t].cycles = cycles;
	}
	secs = ba_run_team(&team, o.threads, realloc_thread, w, sizeof(*w));
	for (t = 0; t < nt; t++) {
		check += w[t].check;
		ops += w[t].ops;
		moves += w[t].moves;
		reallocs += w[t].ops - (uint64_t)w[t].nbuf * cycles;
	}
	ba_result_begin(&o);
	ba_kv_u("buffers", nbuf);
	ba_kv_u("max_len", MAX_LEN);
	ba_kv_u("cycles", cycles);
	ba_kv_f("moved_frac", reallocs ? (double)moves / (double)reallocs : 0.0);
	ba_result_end(secs, ops, check);
	return 0;
}
