/* SPDX-License-Identifier: MIT */
/*
 * check_dump.c - allocator_dump(): its summary gives allocator_stats'
 * figures and their parts by kind, each heap's line its own share, and the
 * output stays short however many blocks are live (a line per slab and per
 * run of arena blocks, not per block), in both modes.
 *
 * Through <pallocator.h> only (two threads in one test, which assert
 * nothing themselves): the dump is read back from a temporary file
 * that stderr is sent to, and parsed as allocator_dump(3) describes it.
 */
#include <stdatomic.h>
#include <stdbool.h>

#include "api_helpers.h"
#include "check_main.h"

/* ------------------------------------------------------------------ */
/* Reading the dump                                                     */
/* ------------------------------------------------------------------ */

/* Runs allocator_dump() with stderr sent to a temporary file; returns the
 * output (NUL-terminated, malloc'd). */
static char *capture_dump(void)
{
    char path[] = "/tmp/pa_check_dumpXXXXXX";
    int fd = mkstemp(path);
    ck_assert_msg(fd >= 0, "mkstemp failed");
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ck_assert(saved >= 0);
    ck_assert(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
    allocator_dump();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    ck_assert(len >= 0);
    char *text = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert(pread(fd, text, (size_t)len, 0) == (ssize_t)len);
    text[len] = '\0';
    close(fd);
    return text;
}

/* What the test reads from a dump. SIZE_MAX: the line was not found. */
struct dump {
    size_t lines;
    size_t allocated, freed, peak;         /* the summary's allocator_stats figures */
    size_t owned, waiting;                 /* heaps */
    size_t slab_segments, arena_segments, pooled, map_slots;
    size_t slab_blocks, slab_bytes, arena_blocks, arena_bytes, large_blocks, large_bytes;
    size_t heaps, heaps_allocated, heaps_with_blocks; /* from the heap lines */
    size_t slab_lines, run_lines;          /* lines for slabs and for runs of arena blocks */
    bool heap_parts_add_up;                /* each heap: allocated = arena + slab */
};

static void parse_heap_line(struct dump *d, const char *line)
{
    const char *p = strstr(line, "): allocated ");
    size_t all, arena, slab;
    if (!p || sscanf(p, "): allocated %zu (arena %zu, slab %zu)", &all, &arena, &slab) != 3) {
        d->heap_parts_add_up = false;
        return;
    }
    d->heaps++;
    d->heaps_allocated += all;
    d->heaps_with_blocks += all > 0;
    d->heap_parts_add_up = d->heap_parts_add_up && all == arena + slab;
}

static void parse_line(struct dump *d, const char *line)
{
    void *addr;
    if (sscanf(line, "  allocated %zu, freed %zu, peak %zu", &d->allocated, &d->freed,
               &d->peak) == 3)
        return;
    if (sscanf(line, "  heaps: %zu owned, %zu waiting", &d->owned, &d->waiting) == 2)
        return;
    if (sscanf(line, "  segments: %zu slab, %zu arena (TLSF), %zu pooled; %zu segment map",
               &d->slab_segments, &d->arena_segments, &d->pooled, &d->map_slots) == 4)
        return;
    if (sscanf(line, "  live blocks: %zu slab (%zu bytes), %zu arena (%zu bytes), %zu large "
               "(%zu bytes)", &d->slab_blocks, &d->slab_bytes, &d->arena_blocks,
               &d->arena_bytes, &d->large_blocks, &d->large_bytes) == 6)
        return;
    if (strncmp(line, "  heap ", 7) == 0)
        parse_heap_line(d, line);
    else if (strncmp(line, "      slab ", 11) == 0)
        d->slab_lines++;
    else if (sscanf(line, "        %p: ", &addr) == 1)
        d->run_lines++;
}

static struct dump parse_dump(const char *text)
{
    struct dump d;
    memset(&d, 0xff, sizeof d);
    d.lines = d.heaps = d.heaps_allocated = d.heaps_with_blocks = 0;
    d.slab_lines = d.run_lines = 0;
    d.heap_parts_add_up = true;
    ck_assert_msg(strncmp(text, "pallocator: ", 12) == 0, "first line:\n%.200s", text);
    char line[512];
    for (const char *p = text; *p;) {
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
        parse_line(&d, line);
        d.lines++;
        p += n + (end != NULL);
    }
    return d;
}

static struct dump dump_now(void)
{
    char *text = capture_dump();
    struct dump d = parse_dump(text);
    free(text);
    return d;
}

/* The summary agrees with allocator_stats called right after, and its parts
 * add up: the kinds to allocated, the heap lines to the heaps' kinds. */
static void check_against_stats(const struct dump *d)
{
    struct pa_stats s = get_stats();
    ck_assert_msg(d->allocated == s.allocated && d->freed == s.freed && d->peak == s.peak,
                  "dump says allocated %zu freed %zu peak %zu, allocator_stats %zu %zu %zu",
                  d->allocated, d->freed, d->peak, s.allocated, s.freed, s.peak);
    ck_assert_uint_eq(d->slab_bytes + d->arena_bytes + d->large_bytes, d->allocated);
    ck_assert_uint_eq(d->heaps_allocated, d->slab_bytes + d->arena_bytes);
    ck_assert_uint_eq(d->heaps, d->owned + d->waiting);
    ck_assert(d->heap_parts_add_up);
    ck_assert_uint_ge(d->map_slots, d->slab_segments + d->arena_segments + d->large_blocks);
}

/* ------------------------------------------------------------------ */
/* A few blocks of each kind                                            */
/* ------------------------------------------------------------------ */

START_TEST(test_dump_kinds)
{
    /* Uninitialised: must not crash, and says so. */
    char *text = capture_dump();
    ck_assert_msg(strstr(text, "not initialised") != NULL, "%.300s", text);
    free(text);

    ck_assert_int_eq(allocator_init(_i), 0);
    void *a = myalloc(40), *b = myalloc(3000), *c = myalloc(20000), *big = myalloc(2 * MiB);
    ck_assert(a && b && c && big);
    ck_assert_int_eq(myfree(a), 0);
    struct pa_stats before = get_stats();
    struct dump d = dump_now();
    ck_assert(stats_equal(before, get_stats()));
    check_against_stats(&d);
    ck_assert_uint_eq(d.allocated, myalloc_usable_size(b) + myalloc_usable_size(c) +
                                       myalloc_usable_size(big));
    ck_assert_uint_eq(d.slab_blocks, 1);
    ck_assert_uint_eq(d.slab_bytes, myalloc_usable_size(b));
    ck_assert_uint_eq(d.arena_blocks, 1);
    ck_assert_uint_eq(d.arena_bytes, myalloc_usable_size(c));
    ck_assert_uint_eq(d.large_blocks, 1);
    ck_assert_uint_eq(d.large_bytes, myalloc_usable_size(big));
    ck_assert_uint_eq(d.owned, 1);
    ck_assert_uint_eq(d.waiting, 0);
    ck_assert_uint_ge(d.slab_segments, 1);
    ck_assert_uint_ge(d.arena_segments, 1);
    ck_assert_uint_ge(d.slab_lines, 2); /* a's slab and b's */
    ck_assert_uint_ge(d.run_lines, 2);  /* c, and the free rest of its segment */
    ck_assert_int_eq(allocator_verify(), 0);

    ck_assert_int_eq(myfree(b), 0);
    ck_assert_int_eq(myfree(c), 0);
    ck_assert_int_eq(myfree(big), 0);
    d = dump_now();
    check_against_stats(&d);
    ck_assert_uint_eq(d.allocated, 0);
    ck_assert_uint_eq(d.slab_blocks + d.arena_blocks + d.large_blocks, 0);
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Many small blocks                                                    */
/* ------------------------------------------------------------------ */

enum { MANY = 5000, MAX_LINES = 200 };

/* Small blocks of sizes up to 256 bytes; returns the usable bytes. */
static size_t alloc_small(void **p, size_t n, uint64_t seed)
{
    size_t usable = 0;
    for (size_t i = 0; i < n; i++) {
        p[i] = myalloc(1 + test_rand_below(&seed, 256));
        if (!p[i])
            return SIZE_MAX;
        usable += myalloc_usable_size(p[i]);
    }
    return usable;
}

static void check_many(const struct dump *d, size_t live_blocks, size_t live_usable)
{
    check_against_stats(d);
    ck_assert_uint_eq(d->allocated, live_usable);
    ck_assert_uint_eq(d->slab_blocks, live_blocks);
    ck_assert_uint_eq(d->arena_blocks + d->large_blocks, 0);
    ck_assert_msg(d->lines < MAX_LINES, "%zu lines for %zu blocks", d->lines, live_blocks);
}

START_TEST(test_dump_many_single)
{
    static void *p[MANY];
    ck_assert_int_eq(allocator_init(0), 0);
    size_t usable = alloc_small(p, MANY, 42);
    ck_assert_uint_ne(usable, SIZE_MAX);
    size_t live = MANY;
    for (size_t i = 0; i < MANY; i += 3, live--) {
        usable -= myalloc_usable_size(p[i]);
        ck_assert_int_eq(myfree(p[i]), 0);
        p[i] = NULL;
    }
    struct dump d = dump_now();
    check_many(&d, live, usable);
    ck_assert_uint_eq(d.heaps, 1);
    ck_assert_uint_eq(d.heaps_with_blocks, 1);
    for (size_t i = 0; i < MANY; i++)
        ck_assert_int_eq(myfree(p[i]), 0);
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

/* Two threads allocate half the blocks each; the second frees a third of
 * the first's, which leaves a batch in its outbox and others in the
 * first's hand-over list. Both wait, alive, while the test dumps. */
struct pair {
    void *blocks[MANY];
    size_t usable[2];
    pthread_barrier_t allocated, dumped;
    pthread_mutex_t first_done_lock;
    pthread_cond_t first_done_cond;
    bool first_done;
    atomic_int failed;
};

static void wait_first(struct pair *w)
{
    pthread_mutex_lock(&w->first_done_lock);
    while (!w->first_done)
        pthread_cond_wait(&w->first_done_cond, &w->first_done_lock);
    pthread_mutex_unlock(&w->first_done_lock);
}

static void *first_thread(void *arg)
{
    struct pair *w = arg;
    w->usable[0] = alloc_small(w->blocks, MANY / 2, 1);
    pthread_mutex_lock(&w->first_done_lock);
    w->first_done = true;
    pthread_cond_signal(&w->first_done_cond);
    pthread_mutex_unlock(&w->first_done_lock);
    pthread_barrier_wait(&w->allocated);
    pthread_barrier_wait(&w->dumped);
    return NULL;
}

static void *second_thread(void *arg)
{
    struct pair *w = arg;
    size_t own = alloc_small(w->blocks + MANY / 2, MANY - MANY / 2, 2);
    wait_first(w);
    size_t freed = 0;
    for (size_t i = 0; i < MANY / 2 && own != SIZE_MAX; i += 3) {
        freed += myalloc_usable_size(w->blocks[i]);
        if (myfree(w->blocks[i]) != 0)
            atomic_store(&w->failed, 1);
        w->blocks[i] = NULL;
    }
    w->usable[1] = own == SIZE_MAX ? SIZE_MAX : own - freed;
    pthread_barrier_wait(&w->allocated);
    pthread_barrier_wait(&w->dumped);
    return NULL;
}

START_TEST(test_dump_many_concurrent)
{
    static struct pair w;
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.first_done_lock, NULL);
    pthread_cond_init(&w.first_done_cond, NULL);
    pthread_barrier_init(&w.allocated, NULL, 3);
    pthread_barrier_init(&w.dumped, NULL, 3);
    ck_assert_int_eq(allocator_init(1), 0);
    pthread_t t[2];
    ck_assert_int_eq(pthread_create(&t[0], NULL, first_thread, &w), 0);
    ck_assert_int_eq(pthread_create(&t[1], NULL, second_thread, &w), 0);
    pthread_barrier_wait(&w.allocated);

    /* The dump first, so that it is the call that settles the heaps. */
    struct dump d = dump_now();
    pthread_barrier_wait(&w.dumped);
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    ck_assert_int_eq(atomic_load(&w.failed), 0);
    ck_assert(w.usable[0] != SIZE_MAX && w.usable[1] != SIZE_MAX);
    size_t live = 0;
    for (size_t i = 0; i < MANY; i++)
        live += w.blocks[i] != NULL;
    check_many(&d, live, w.usable[0] + w.usable[1]);
    ck_assert_uint_eq(d.owned, 2);
    ck_assert_uint_eq(d.heaps_with_blocks, 2);

    /* Both threads gone: their heaps wait for adoption, blocks still live. */
    d = dump_now();
    check_many(&d, live, w.usable[0] + w.usable[1]);
    ck_assert_uint_eq(d.waiting, 2);
    ck_assert_int_eq(allocator_verify(), 0);
    for (size_t i = 0; i < MANY; i++)
        ck_assert_int_eq(myfree(w.blocks[i]), 0);
    d = dump_now();
    check_against_stats(&d);
    ck_assert_uint_eq(d.allocated, 0);
    pthread_barrier_destroy(&w.allocated);
    pthread_barrier_destroy(&w.dumped);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *dump_suite(void)
{
    Suite *s = suite_create("dump");
    TCase *tc = tcase_create("dump");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_dump_kinds, 0, 2);
    tcase_add_test(tc, test_dump_many_single);
    tcase_add_test(tc, test_dump_many_concurrent);
    suite_add_tcase(s, tc);
    return s;
}

PA_CHECK_MAIN(dump_suite)
