/* SPDX-License-Identifier: MIT */
/*
 * prodcons - producer/consumer pairs: every free is a remote free.
 *
 * --threads N runs N pairs, i.e. 2N threads; --threads 1 therefore still
 * runs one producer and one consumer thread (a pipeline needs both ends).
 * Each pair has its own bounded queue (mutex + two condition variables,
 * at most 32 batches in flight). The producer allocates a batch of --size
 * blocks (default 64) of 16..512 bytes, writes the first and last byte of
 * each, and also allocates the batch descriptor itself with the allocator
 * under test; the consumer checks and frees all of it. So all frees happen
 * on a thread other than the one that allocated.
 *
 * The total number of blocks (15 M, times --scale, a tenth under --quick) is
 * split evenly between the pairs; ops counts malloc and free calls.
 */
#include "bench_alloc.h"

#define QUEUE_CAP 32

struct batch {
	size_t n;
	void *ptr[]; /* the n blocks */
};

struct queue {
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	struct batch *slot[QUEUE_CAP];
	size_t head, count;
};

struct pair {
	struct ba_team *team;
	struct queue q;
	uint64_t seed;
	size_t batches, batch_len;
	uint64_t check, ops;
};

/* Each block carries its size in its first 4 bytes and a tag in its last
 * byte, so the consumer can check it without a side channel. */
static size_t pick_size(uint64_t *rng)
{
	return ba_range(rng, 16, 512);
}

static void queue_push(struct queue *q, struct batch *b)
{
	pthread_mutex_lock(&q->lock);
	while (q->count == QUEUE_CAP)
		pthread_cond_wait(&q->not_full, &q->lock);
	q->slot[(q->head + q->count) % QUEUE_CAP] = b;
	q->count++;
	pthread_cond_signal(&q->not_empty);
	pthread_mutex_unlock(&q->lock);
}

static struct batch *queue_pop(struct queue *q)
{
	struct batch *b;
	pthread_mutex_lock(&q->lock);
	while (q->count == 0)
		pthread_cond_wait(&q->not_empty, &q->lock);
	b = q->slot[q->head];
	q->head = (q->head + 1) % QUEUE_CAP;
	q->count--;
	pthread_cond_signal(&q->not_full);
	pthread_mutex_unlock(&q->lock);
	return b;
}

static void *producer(void *arg)
{
	struct pair *p = arg;
	uint64_t rng = p->seed;
	size_t b, i;

	ba_team_ready(p->team);
	for (b = 0; b < p->batches; b++) {
		struct batch *bt = ba_xmalloc(sizeof(*bt) + p->batch_len * sizeof(void *));
		bt->n = p->batch_len;
		for (i = 0; i < bt->n; i++) {
			size_t sz = pick_size(&rng);
			unsigned char *blk = ba_xmalloc(sz);
			uint32_t s32 = (uint32_t)sz;
			memcpy(blk, &s32, sizeof(s32));
			blk[sz - 1] = ba_tag(i, sz);
			bt->ptr[i] = blk;
		}
		queue_push(&p->q, bt);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	struct pair *p = arg;
	uint64_t check = 0;
	size_t b, i;

	ba_team_ready(p->team);
	for (b = 0; b < p->batches; b++) {
		struct batch *bt = queue_pop(&p->q);
		for (i = 0; i < bt->n; i++) {
			unsigned char *blk = bt->ptr[i];
			uint32_t s32;
			memcpy(&s32, blk, sizeof(s32));
			if (s32 < 16 || s32 > 512 || blk[s32 - 1] != ba_tag(i, s32))
				ba_die("prodcons: block %p lost its contents", (void *)blk);
			check += s32;
			BA_FREE(blk);
		}
		BA_FREE(bt);
	}
	p->check = check;
	p->ops = 2 * (uint64_t)p->batches * (p->batch_len + 1);
	return NULL;
}

/* The team runs 2N threads; even ones produce, odd ones consume. */
struct role {
	struct pair *pair;
	int consume;
};

static void *role_thread(void *arg)
{
	struct role *r = arg;
	return r->consume ? consumer(r->pair) : producer(r->pair);
}

int main(int argc, char **argv)
{
	struct ba_opts o;
	struct ba_team team;
	struct pair *pairs;
	struct role *roles;
	size_t total, blen, t, np;
	uint64_t ops = 0, check = 0;
	double secs;

	ba_parse(&o, "prodcons", "blocks per batch (default 64)", argc, argv);
	ba_init();
	np = (size_t)o.threads;
	total = ba_amount(&o, 15000000);
	blen = o.size > 0 ? (size_t)o.size : 64;
	pairs = ba_meta_alloc(sizeof(*pairs) * np);
	roles = ba_meta_alloc(sizeof(*roles) * 2 * np);
	for (t = 0; t < np; t++) {
		struct pair *p = &pairs[t];
		p->team = &team;
		pthread_mutex_init(&p->q.lock, NULL);
		pthread_cond_init(&p->q.not_empty, NULL);
		pthread_cond_init(&p->q.not_full, NULL);
		p->q.head = p->q.count = 0;
		p->seed = ba_rng_seed(o.seed, t);
		p->batch_len = blen;
		p->batches = total / np / blen;
		if (p->batches == 0)
			p->batches = 1;
		roles[2 * t].pair = p;
		roles[2 * t].consume = 0;
		roles[2 * t + 1].pair = p;
		roles[2 * t + 1].consume = 1;
	}
	secs = ba_run_team(&team, 2 * o.threads, role_thread, roles, sizeof(*roles));
	for (t = 0; t < np; t++) {
		ops += pairs[t].ops;
		check += pairs[t].check;
		pthread_mutex_destroy(&pairs[t].q.lock);
		pthread_cond_destroy(&pairs[t].q.not_empty);
		pthread_cond_destroy(&pairs[t].q.not_full);
	}
	ba_result_begin(&o);
	ba_kv_u("pairs", np);
	ba_kv_u("batch_len", blen);
	ba_result_end(secs, ops, check);
	return 0;
}
