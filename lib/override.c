/* SPDX-License-Identifier: MIT */
/*
 * override.c - libpallocator-malloc: the C library's allocation calls
 * (malloc, free, calloc, realloc, reallocarray, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size) and C++'s
 * operator new and delete, defined on libpallocator, so that a program
 * loaded with LD_PRELOAD runs on it without being rebuilt. Also the
 * run-time options read from the environment and the report at exit.
 *
 * The first call may come from the dynamic loader or the C library before
 * any constructor has run, and initialising the allocator may itself call
 * malloc (pthread_atfork may allocate, for one): a call made while the
 * calling thread initialises is served from a small static area, whose
 * blocks free, realloc and malloc_usable_size recognise. A constructor that
 * runs before every other constructor of the library initialises the
 * allocator, so that no other initialisation step of the library can
 * reach it half-done.
 *
 * An invalid pointer handed to free or realloc never reaches the heap
 * (libpallocator validates it exactly); it is reported and, by default,
 * the process aborts, as glibc does.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "heap.h"
#include "pallocator.h"
#include "segment.h"
#include "introspect.h"
#include "large.h"

#define OVERRIDE_API __attribute__((visibility("default")))

extern char **environ;

/* ---- options -------------------------------------------------------- */

typedef enum { INVALID_ABORT, INVALID_WARN, INVALID_IGNORE } invalid_policy_t;

static invalid_policy_t opt_invalid = INVALID_ABORT;
static bool opt_show_stats;
static bool opt_verify;

/* Messages go straight to file descriptor 2: stdio may allocate, or hold
 * a lock of a stream the program was using when the error struck. */
static void say(const char *a, const char *b, const char *c, const char *d)
{
    const char *parts[] = {"pallocator: ", a, b, c, d, "\n"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        size_t n = strlen(parts[i]);
        while (n > 0) {
            ssize_t w = write(STDERR_FILENO, parts[i], n);
            if (w <= 0)
                return;
            parts[i] += w;
            n -= (size_t)w;
        }
    }
}

static bool option_flag(const char *name, const char *value, bool *flag)
{
    if (strcmp(value, "0") == 0 || strcmp(value, "1") == 0) {
        *flag = value[0] == '1';
        return true;
    }
    say(name, "=", value, ": want 0 or 1; ignored");
    return false;
}

static void option_invalid_free(const char *value)
{
    if (strcmp(value, "abort") == 0)
        opt_invalid = INVALID_ABORT;
    else if (strcmp(value, "warn") == 0)
        opt_invalid = INVALID_WARN;
    else if (strcmp(value, "ignore") == 0)
        opt_invalid = INVALID_IGNORE;
    else
        say("PALLOCATOR_INVALID_FREE=", value, ": want abort, warn or ignore; ignored", "");
}

/* One PALLOCATOR_NAME=value entry of the environment. */
static void option_read(const char *entry)
{
    static const char prefix[] = "PALLOCATOR_";
    const char *eq = strchr(entry, '=');
    if (!eq)
        return;
    const char *name = entry + sizeof prefix - 1;
    size_t len = (size_t)(eq - name);
    const char *value = eq + 1;
    if (len == 10 && strncmp(name, "SHOW_STATS", len) == 0)
        option_flag("PALLOCATOR_SHOW_STATS", value, &opt_show_stats);
    else if (len == 6 && strncmp(name, "VERIFY", len) == 0)
        option_flag("PALLOCATOR_VERIFY", value, &opt_verify);
    else if (len == 12 && strncmp(name, "INVALID_FREE", len) == 0)
        option_invalid_free(value);
    else if (len == 4 && strncmp(name, "NUMA", len) == 0)
        ; /* the allocator's own, which reads and checks it */
    else
        say("unknown environment variable ", entry, " ignored", "");
}

/* Reads the options once, at load, walking the environment without
 * allocating; the C library has set it up by then. */
static void options_read(void)
{
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, "PALLOCATOR_", 11) == 0)
            option_read(*e);
}

/* ---- blocks handed out during initialisation ------------------------ */

/* Each block of the early area has a header holding its size; they are
 * never reused (a few calls of the C library before the heaps exist). */
#define EARLY_AREA_SIZE ((size_t)64 << 10)
#define EARLY_HEADER ((size_t)16)

static _Alignas(4096) char early_area[EARLY_AREA_SIZE];
static size_t early_used;

static bool early_holds(const void *p)
{
    return (const char *)p >= early_area && (const char *)p < early_area + EARLY_AREA_SIZE;
}

static size_t early_size(const void *p)
{
    return *(const size_t *)((const char *)p - EARLY_HEADER);
}

static void *early_alloc(size_t align, size_t size)
{
    if (align < EARLY_HEADER)
        align = EARLY_HEADER;
    size_t used = __atomic_load_n(&early_used, __ATOMIC_RELAXED);
    for (;;) {
        if (align > EARLY_AREA_SIZE || size > EARLY_AREA_SIZE)
            break;
        size_t start = align_up(used + EARLY_HEADER, align);
        if (start + size > EARLY_AREA_SIZE)
            break;
        if (__atomic_compare_exchange_n(&early_used, &used, align_up(start + size, EARLY_HEADER),
                                        false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
            char *p = early_area + start;
            *(size_t *)(p - EARLY_HEADER) = size;
            return p;
        }
    }
    errno = ENOMEM;
    return NULL;
}

/* ---- initialisation -------------------------------------------------- */

static bool override_ready;
/* The calling thread is initialising the allocator: its calls go to the
 * early area. */
static __thread bool override_initialising __attribute__((tls_model("initial-exec")));

static void override_init(void)
{
    override_initialising = true;
    int rc = allocator_init(1);
    override_initialising = false;
    if (rc == 0)
        __atomic_store_n(&override_ready, true, __ATOMIC_RELEASE);
}

/* Whether a call must be served from the early area; initialises the
 * allocator on the first call of the process. */
static pa_noinline bool override_early(void)
{
    if (override_initialising)
        return true;
    override_init();
    return false;
}

static inline bool override_not_ready(void)
{
    return pa_unlikely(!__atomic_load_n(&override_ready, __ATOMIC_ACQUIRE)) && override_early();
}

/* ---- invalid pointers ------------------------------------------------ */

static void format_pointer(char *out, const void *p)
{
    uintptr_t v = (uintptr_t)p;
    char digits[2 * sizeof v + 1];
    size_t n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    *out++ = '0';
    *out++ = 'x';
    while (n)
        *out++ = digits[--n];
    *out = '\0';
}

static pa_cold void invalid_pointer(const char *call, const void *p)
{
    if (opt_invalid == INVALID_IGNORE)
        return;
    char text[2 * sizeof p + 3];
    format_pointer(text, p);
    say(call, ": invalid pointer ", text, "");
    if (opt_invalid == INVALID_ABORT)
        abort();
}

/* ---- the C calls ------------------------------------------------------ */

/* malloc and its kin report ENOMEM for every failure. */
static inline void *enomem_on_null(void *p)
{
    if (pa_unlikely(!p))
        errno = ENOMEM;
    return p;
}

/* myalloc and mycalloc fail with ENOMEM alone, as malloc and calloc must:
 * they are called last, so that the call is a jump. */
OVERRIDE_API void *malloc(size_t size)
{
    if (override_not_ready())
        return early_alloc(PA_GRANULE, size);
    return myalloc(size);
}

OVERRIDE_API void free(void *p)
{
    if (pa_unlikely(myfree(p) != 0) && !early_holds(p))
        invalid_pointer("free()", p);
}

OVERRIDE_API void *calloc(size_t count, size_t size)
{
    if (override_not_ready()) {
        size_t total;
        if (__builtin_mul_overflow(count, size, &total))
            return enomem_on_null(NULL);
        return early_alloc(PA_GRANULE, total); /* static storage: zero */
    }
    return mycalloc(count, size);
}

static pa_noinline void *realloc_early(void *p, size_t size)
{
    void *q = malloc(size);
    if (q) {
        size_t old = early_size(p);
        memcpy(q, p, old < size ? old : size);
    }
    return q;
}

OVERRIDE_API void *realloc(void *p, size_t size)
{
    if (!p)
        return malloc(size);
    /* As glibc does: size 0 frees the block. */
    if (size == 0) {
        free(p);
        return NULL;
    }
    if (early_holds(p))
        return realloc_early(p, size);
    if (override_not_ready()) {
        invalid_pointer("realloc()", p); /* none of ours exists yet */
        return enomem_on_null(NULL);
    }
    void *q = myrealloc(p, size);
    if (pa_unlikely(!q) && errno == EINVAL) {
        invalid_pointer("realloc()", p);
        errno = ENOMEM;
    }
    return enomem_on_null(q);
}

OVERRIDE_API void *reallocarray(void *p, size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total))
        return enomem_on_null(NULL);
    return realloc(p, total);
}

static void *aligned(size_t align, size_t size)
{
    if (override_not_ready())
        return early_alloc(align, size);
    void *p = myalloc_aligned(align, size);
    if (pa_unlikely(!p) && errno != EINVAL)
        errno = ENOMEM;
    return p;
}

static bool power_of_two(size_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

OVERRIDE_API int posix_memalign(void **out, size_t align, size_t size)
{
    if (!power_of_two(align) || align % sizeof(void *) != 0)
        return EINVAL;
    int saved = errno;
    void *p = aligned(align, size);
    if (!p) {
        int error = errno;
        errno = saved;
        return error;
    }
    *out = p;
    return 0;
}

OVERRIDE_API void *aligned_alloc(size_t align, size_t size)
{
    return aligned(align, size);
}

/* memalign rounds an alignment that is not a power of two up to one. */
OVERRIDE_API void *memalign(size_t align, size_t size)
{
    if (align > (SIZE_MAX >> 1) + 1) {
        errno = EINVAL;
        return NULL;
    }
    size_t a = 1;
    while (a < align)
        a <<= 1;
    return aligned(a, size);
}

OVERRIDE_API void *valloc(size_t size)
{
    return aligned((size_t)sysconf(_SC_PAGESIZE), size);
}

/* pvalloc rounds the size up to whole pages, one at least. */
OVERRIDE_API void *pvalloc(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (size > SIZE_MAX - page)
        return enomem_on_null(NULL);
    size_t rounded = size ? align_up(size, page) : page;
    return aligned(page, rounded);
}

OVERRIDE_API size_t malloc_usable_size(void *p)
{
    if (!p)
        return 0;
    if (early_holds(p))
        return early_size(p);
    int saved = errno;
    size_t usable = myalloc_usable_size(p);
    errno = saved;
    return usable;
}

/* ---- C++ operator new and delete ------------------------------------- */

/* C++'s operators by their mangled names (Itanium ABI, 64-bit size_t;
 * align_val_t is passed as a size_t, a nothrow_t reference as a pointer). */
void *_Znwm(size_t size);
void *_Znam(size_t size);
void *_ZnwmRKSt9nothrow_t(size_t size, const void *tag);
void *_ZnamRKSt9nothrow_t(size_t size, const void *tag);
void *_ZnwmSt11align_val_t(size_t size, size_t align);
void *_ZnamSt11align_val_t(size_t size, size_t align);
void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *tag);
void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *tag);
void _ZdlPv(void *p);
void _ZdaPv(void *p);
void _ZdlPvm(void *p, size_t size);
void _ZdaPvm(void *p, size_t size);
void _ZdlPvRKSt9nothrow_t(void *p, const void *tag);
void _ZdaPvRKSt9nothrow_t(void *p, const void *tag);
void _ZdlPvSt11align_val_t(void *p, size_t align);
void _ZdaPvSt11align_val_t(void *p, size_t align);
void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t align);
void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t align);
void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *tag);
void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *tag);

/* The library is C: the forms that throw std::bad_alloc cannot throw it
 * themselves. When a request fails they hand it to the next definition of
 * the same operator (the C++ runtime's), which calls the new-handler and
 * throws through malloc, that is through this library again. Without one
 * (no C++ runtime loaded), the process aborts with a message. */
typedef void *(*operator_new_t)(size_t);
typedef void *(*operator_new_aligned_t)(size_t, size_t);


static pa_cold void *new_failed(const char *symbol, size_t size)
{
    operator_new_t next = (operator_new_t)dlsym(RTLD_NEXT, symbol);
    if (!next) {
        say("operator new: out of memory and no C++ runtime to throw std::bad_alloc", "", "", "");
        abort();
    }
    return next(size);
}

static pa_cold void *new_aligned_failed(const char *symbol, size_t size, size_t align)
{
    operator_new_aligned_t next = (operator_new_aligned_t)dlsym(RTLD_NEXT, symbol);
    if (!next) {
        say("operator new: out of memory and no C++ runtime to throw std::bad_alloc", "", "", "");
        abort();
    }
    return next(size, align);
}

/* operator new(size_t), new[](size_t) */
OVERRIDE_API void *_Znwm(size_t size)
{
    void *p = malloc(size);
    if (p)
        return p;
    return new_failed("_Znwm", size);
}

OVERRIDE_API void *_Znam(size_t size)
{
    void *p = malloc(size);
    if (p)
        return p;
    return new_failed("_Znam", size);
}

/* The nothrow forms return NULL after the runtime's own nothrow form had
 * its try with the new-handler. */
typedef void *(*operator_new_nothrow_t)(size_t, const void *);

static pa_cold void *new_nothrow_failed(const char *symbol, size_t size, const void *tag)
{
    operator_new_nothrow_t next = (operator_new_nothrow_t)dlsym(RTLD_NEXT, symbol);
    return next ? next(size, tag) : NULL;
}

OVERRIDE_API void *_ZnwmRKSt9nothrow_t(size_t size, const void *tag)
{
    void *p = malloc(size);
    if (p)
        return p;
    return new_nothrow_failed("_ZnwmRKSt9nothrow_t", size, tag);
}

OVERRIDE_API void *_ZnamRKSt9nothrow_t(size_t size, const void *tag)
{
    void *p = malloc(size);
    if (p)
        return p;
    return new_nothrow_failed("_ZnamRKSt9nothrow_t", size, tag);
}

/* operator new(size_t, align_val_t) and its array form */
OVERRIDE_API void *_ZnwmSt11align_val_t(size_t size, size_t align)
{
    void *p = aligned(align, size);
    if (p)
        return p;
    return new_aligned_failed("_ZnwmSt11align_val_t", size, align);
}

OVERRIDE_API void *_ZnamSt11align_val_t(size_t size, size_t align)
{
    void *p = aligned(align, size);
    if (p)
        return p;
    return new_aligned_failed("_ZnamSt11align_val_t", size, align);
}

OVERRIDE_API void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *tag)
{
    (void)tag;
    return aligned(align, size);
}

OVERRIDE_API void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *tag)
{
    (void)tag;
    return aligned(align, size);
}

/* Every delete is free: the size and alignment are not needed to find the
 * block, and a wrong one is caught like any invalid pointer. */
OVERRIDE_API void _ZdlPv(void *p)
{
    free(p);
}

OVERRIDE_API void _ZdaPv(void *p)
{
    free(p);
}

OVERRIDE_API void _ZdlPvm(void *p, size_t size)
{
    (void)size;
    free(p);
}

OVERRIDE_API void _ZdaPvm(void *p, size_t size)
{
    (void)size;
    free(p);
}

OVERRIDE_API void _ZdlPvRKSt9nothrow_t(void *p, const void *tag)
{
    (void)tag;
    free(p);
}

OVERRIDE_API void _ZdaPvRKSt9nothrow_t(void *p, const void *tag)
{
    (void)tag;
    free(p);
}

OVERRIDE_API void _ZdlPvSt11align_val_t(void *p, size_t align)
{
    (void)align;
    free(p);
}

OVERRIDE_API void _ZdaPvSt11align_val_t(void *p, size_t align)
{
    (void)align;
    free(p);
}

OVERRIDE_API void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t align)
{
    (void)size;
    (void)align;
    free(p);
}

OVERRIDE_API void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t align)
{
    (void)size;
    (void)align;
    free(p);
}

OVERRIDE_API void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *tag)
{
    (void)align;
    (void)tag;
    free(p);
}

OVERRIDE_API void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *tag)
{
    (void)align;
    (void)tag;
    free(p);
}

/* ---- load and exit ---------------------------------------------------- */

/* The process's resident bytes, from /proc/self/statm; 0 when unknown. */
static size_t resident_bytes(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *s = strchr(buf, ' ');
    size_t pages = 0;
    for (s = s ? s + 1 : buf + n; *s >= '0' && *s <= '9'; s++)
        pages = pages * 10 + (size_t)(*s - '0');
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

typedef struct heap_census {
    size_t heaps, segments;
} heap_census_t;

/* Heaps and the segments they hold, at rest or nearly (at exit). */
static heap_census_t heap_census(void)
{
    heap_census_t c = {0, 0};
    pa_heap_registry_lock();
    for (heap_t *h = pa_heap_registry_first(); h; h = h->next_all) {
        c.heaps++;
        c.segments += h->arena.segment_count + h->slabs.segment_count;
    }
    pa_heap_registry_unlock();
    return c;
}

/* With a NUMA mode on: each node's heaps and resident pages. */
static void show_nodes(void)
{
    numa_mode_t mode = pa_numa_mode();
    if (mode == NUMA_OFF)
        return;
    size_t pages[NUMA_MAX_NODES] = {0};
    char line[512];
    int len = snprintf(line, sizeof line, "numa %s:", pa_numa_mode_name(mode));
    pa_heap_pause_all();
    pa_large_lock();
    pa_pages_by_node(pages);
    pa_large_unlock();
    for (int n = 0; n < NUMA_MAX_NODES && len < (int)sizeof line - 64; n++) {
        size_t heaps = 0;
        for (const heap_t *h = pa_heap_registry_first(); h; h = h->next_all)
            heaps += h->numa_node == n;
        if (pages[n] || heaps)
            len += snprintf(line + len, sizeof line - (size_t)len,
                            " node %d: %zu heaps, %zu resident pages;", n, heaps, pages[n]);
    }
    pa_heap_resume_all();
    say("at exit: ", line, "", "");
}

static void show_stats(void)
{
    size_t allocated = 0, freed = 0, peak = 0;
    allocator_stats(&allocated, &freed, &peak);
    heap_census_t c = heap_census();
    size_t pooled = pa_segment_pool_count();
    pa_large_lock();
    large_stats_t large = pa_large_stats();
    pa_large_unlock();
    size_t mapped = (c.segments + pooled) * PA_SEGMENT_SIZE + large.mapped;
    char line[512];
    snprintf(line, sizeof line,
             "allocated %zu, free %zu, peak %zu, mapped %zu, resident %zu bytes; "
             "heaps %zu, segments %zu (pooled %zu), large blocks %zu",
             allocated, freed, peak, mapped, resident_bytes(), c.heaps, c.segments, pooled,
             large.count);
    say("at exit: ", line, "", "");
    show_nodes();
}

/* Runs before every other constructor of the library (the default
 * priority is the lowest). */
__attribute__((constructor(101))) static void override_load(void)
{
    options_read();
    if (!__atomic_load_n(&override_ready, __ATOMIC_ACQUIRE))
        override_init();
}

__attribute__((destructor(101))) static void override_exit(void)
{
    if (!override_ready)
        return;
    if (opt_show_stats)
        show_stats();
    if (opt_verify && allocator_verify() != 0) {
        say("at exit: allocator_verify failed", "", "", "");
        _exit(70);
    }
}
