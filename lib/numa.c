/* SPDX-License-Identifier: MIT */
/*
 * numa.c - NUMA placement: reading the topology, finding the calling
 * thread's node, choosing the mode, binding mappings to a node, and
 * counting where a mapping's pages are.
 *
 * The memory policy is set with the mbind system call directly, not
 * through libnuma: the library needs one call with a one-word node mask,
 * and libnuma would be a new run-time dependency of every program linked
 * with it. get_mempolicy and move_pages are reached the same way.
 *
 * Nothing here allocates: the topology is read at initialisation with
 * open and read into stack buffers, parsed as it streams in, and kept in
 * fixed static tables. PALLOCATOR_NUMA is found without getenv: under
 * libpallocator-malloc the first allocation, and so initialisation, may
 * come from the dynamic loader before the C library has set environ up;
 * the environment the process started with is then read from
 * /proc/self/environ the same way, and a bad value is reported with
 * write, not stdio, which may allocate. The thread's CPU comes from sched_getcpu, which
 * glibc answers from the rseq area or the vDSO without entering the
 * kernel; the table maps it to its node, so a fake topology is tested
 * like a real one.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "numa.h"

#include <fcntl.h>
#include <linux/mempolicy.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NUMA_SYSFS_DIR "/sys/devices/system/node"
#define NUMA_MASK_WORDS (NUMA_MAX_NODES / 64 + 1)

static numa_mode_t mode_in_force;
static bool mode_chosen;
static int16_t cpu_node[NUMA_MAX_CPUS];    /* -1: named by no cpulist */
static uint64_t nodes_present = 1;         /* bit n: node n exists (node 0 until read) */
static bool topology_loaded;

numa_mode_t pa_numa_mode(void)
{
    return __atomic_load_n(&mode_in_force, __ATOMIC_RELAXED);
}

void pa_numa_mode_set(numa_mode_t mode)
{
    if (mode != NUMA_OFF && !topology_loaded)
        pa_numa_topology_load(NUMA_SYSFS_DIR);
    mode_chosen = true;
    __atomic_store_n(&mode_in_force, mode, __ATOMIC_RELAXED);
}

static const char *const mode_names[] = {"off", "preferred", "strict"};

const char *pa_numa_mode_name(numa_mode_t mode)
{
    return mode_names[mode];
}

void pa_numa_mode_forget(void)
{
    mode_chosen = false;
    __atomic_store_n(&mode_in_force, NUMA_OFF, __ATOMIC_RELAXED);
}

bool pa_numa_mode_parse(const char *value, numa_mode_t *mode)
{
    for (int m = NUMA_OFF; m <= NUMA_STRICT; m++) {
        if (strcmp(value, mode_names[m]) == 0) {
            *mode = (numa_mode_t)m;
            return true;
        }
    }
    return false;
}

/* ---- reading lists ("0-3,8-11,64-127\n") as they stream in ------------- */

typedef void (*numa_range_fn)(long lo, long hi, void *ctx);

typedef struct list_parser {
    long first;                  /* a range's start after '-', else -1 */
    long value;                  /* the number being read, -1 before a digit */
    numa_range_fn emit;
    void *ctx;
} list_parser_t;

/* Ends an item at ',' or a newline; false when it is malformed. */
static bool list_item_end(list_parser_t *p, bool comma)
{
    if (p->value < 0)
        return p->first < 0 && !comma; /* only a list's end may be empty */
    long lo = p->first >= 0 ? p->first : p->value;
    if (p->value < lo)
        return false;
    p->emit(lo, p->value, p->ctx);
    p->first = p->value = -1;
    return true;
}

static bool list_feed(list_parser_t *p, char c)
{
    if (c >= '0' && c <= '9') {
        long v = (p->value < 0 ? 0 : p->value) * 10 + (c - '0');
        p->value = v > NUMA_MAX_CPUS ? NUMA_MAX_CPUS : v; /* past the tables anyway */
        return true;
    }
    if (c == '-') {
        if (p->value < 0 || p->first >= 0)
            return false;
        p->first = p->value;
        p->value = -1;
        return true;
    }
    if (c == ',' || c == '\n')
        return list_item_end(p, c == ',');
    return false;
}

/* Reads the list in file path; false when it is missing or malformed
 * (ranges already emitted stay emitted). */
static bool list_file_read(const char *path, numa_range_fn emit, void *ctx)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    list_parser_t p = {-1, -1, emit, ctx};
    char buf[256];
    bool ok = true;
    ssize_t n = 0;
    while (ok && (n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; ok && i < n; i++)
            ok = list_feed(&p, buf[i]);
    close(fd);
    return ok && n == 0 && list_item_end(&p, false);
}

/* ---- the topology ------------------------------------------------------ */

static void cpus_assign(long lo, long hi, void *ctx)
{
    int16_t node = (int16_t)(intptr_t)ctx;
    for (long c = lo; c <= hi && c < NUMA_MAX_CPUS; c++)
        cpu_node[c] = node;
}

static void nodes_mark(long lo, long hi, void *ctx)
{
    uint64_t *mask = ctx;
    for (long n = lo; n <= hi && n < NUMA_MAX_NODES; n++)
        *mask |= (uint64_t)1 << n;
}

/* Writes the decimal digits of n (not negative) at p; returns their end. */
static char *digits_put(char *p, int n)
{
    if (n >= 10)
        p = digits_put(p, n / 10);
    *p++ = (char)('0' + n % 10);
    return p;
}

/* dir + "/node<node>/cpulist" (node < 0: dir + "/online") into path, or
 * false when it does not fit. */
static bool numa_path(char *path, size_t size, const char *dir, int node)
{
    char tail[32] = "/online";
    if (node >= 0)
        strcpy(digits_put(stpcpy(tail, "/node"), node), "/cpulist");
    size_t dlen = strlen(dir), tlen = strlen(tail);
    if (dlen + tlen + 1 > size)
        return false;
    memcpy(path, dir, dlen);
    memcpy(path + dlen, tail, tlen + 1);
    return true;
}

/* Reads node's cpulist; true when the node exists. A malformed list
 * leaves the node without CPUs. */
static bool node_cpus_read(const char *dir, int node)
{
    char path[512];
    if (!numa_path(path, sizeof path, dir, node))
        return false;
    if (list_file_read(path, cpus_assign, (void *)(intptr_t)node))
        return true;
    for (int c = 0; c < NUMA_MAX_CPUS; c++)
        if (cpu_node[c] == node)
            cpu_node[c] = -1;
    return access(path, R_OK) == 0;
}

int pa_numa_topology_load(const char *dir)
{
    for (int c = 0; c < NUMA_MAX_CPUS; c++)
        cpu_node[c] = -1;
    /* The online list names the nodes with one read; without it (an older
     * kernel, a test's directory) each possible node is tried. */
    char path[512];
    uint64_t listed = 0;
    if (!numa_path(path, sizeof path, dir, -1) || !list_file_read(path, nodes_mark, &listed))
        listed = ~(uint64_t)0;
    uint64_t found = 0;
    for (int n = 0; n < NUMA_MAX_NODES; n++)
        if ((listed >> n & 1) && node_cpus_read(dir, n))
            found |= (uint64_t)1 << n;
    nodes_present = found ? found : 1;
    topology_loaded = true;
    return __builtin_popcountll(found);
}

int pa_numa_node_count(void)
{
    return __builtin_popcountll(nodes_present);
}

int pa_numa_node_of_cpu(int cpu)
{
    if (cpu >= 0 && cpu < NUMA_MAX_CPUS && cpu_node[cpu] >= 0)
        return cpu_node[cpu];
    return __builtin_ctzll(nodes_present);
}

/* ---- PALLOCATOR_NUMA ---------------------------------------------------- */

#define NUMA_ENV_NAME "PALLOCATOR_NUMA="

/* Copies the value of entry (NAME=value) into value[size] when NAME is
 * PALLOCATOR_NUMA, cut to size - 1 bytes; true when it is. */
static bool env_entry_take(const char *entry, char *value, size_t size)
{
    if (strncmp(entry, NUMA_ENV_NAME, sizeof NUMA_ENV_NAME - 1) != 0)
        return false;
    const char *v = entry + sizeof NUMA_ENV_NAME - 1;
    size_t n = strnlen(v, size - 1);
    memcpy(value, v, n);
    value[n] = '\0';
    return true;
}

bool pa_numa_env_file_read(const char *path, char *value, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    /* One entry at a time, NUL-terminated as the file has them; only the
     * name and a short value matter, so a longer entry is cut. */
    char entry[sizeof NUMA_ENV_NAME + 64];
    size_t len = 0;
    bool found = false;
    char buf[512];
    ssize_t n;
    while (!found && (n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n && !found; i++) {
            if (buf[i] != '\0') {
                if (len < sizeof entry - 1)
                    entry[len++] = buf[i];
                continue;
            }
            entry[len] = '\0';
            found = env_entry_take(entry, value, size);
            len = 0;
        }
    }
    close(fd);
    return found;
}

/* PALLOCATOR_NUMA's value into value[size]; false when it is not set. */
static bool numa_env_value(char *value, size_t size)
{
    char **env = environ;
    if (!env)
        return pa_numa_env_file_read("/proc/self/environ", value, size);
    for (; *env; env++)
        if (env_entry_take(*env, value, size))
            return true;
    return false;
}

/* One line on stderr, written at once, without stdio. */
static void numa_env_complain(const char *value)
{
    char line[160];
    char *p = stpcpy(line, "pallocator: " NUMA_ENV_NAME);
    p = stpcpy(p, value);
    p = stpcpy(p, " is not off, preferred or strict; using the default\n");
    if (write(STDERR_FILENO, line, (size_t)(p - line)) < 0)
        return; /* nowhere else to say it */
}

void pa_numa_init(void)
{
    if (mode_chosen)
        return;
    /* Longer than any mode's name, so that a longer value is not cut to one. */
    char value[32];
    numa_mode_t mode;
    bool set = numa_env_value(value, sizeof value) && value[0] != '\0';
    if (set && pa_numa_mode_parse(value, &mode)) {
        pa_numa_mode_set(mode);
        return;
    }
    if (set)
        numa_env_complain(value);
    /* The default: a policy only where there is a choice of node. */
    int nodes = pa_numa_topology_load(NUMA_SYSFS_DIR);
    pa_numa_mode_set(nodes > 1 ? NUMA_PREFERRED : NUMA_OFF);
}

int pa_numa_current_node(void)
{
    if (pa_numa_mode() == NUMA_OFF)
        return -1;
    return pa_numa_node_of_cpu(sched_getcpu());
}

/* ---- policies and pages ------------------------------------------------ */

static void numa_mbind(void *addr, size_t size, int policy, int node)
{
    unsigned long mask[NUMA_MASK_WORDS] = {0};
    mask[node / 64] = 1UL << (node % 64);
    /* maxnode counts one past the last bit, as the kernel reads it. */
    if (syscall(SYS_mbind, addr, size, policy, mask, (unsigned long)NUMA_MAX_NODES + 1, 0) != 0)
        pa_log("mbind(%p, %zu, node %d) failed", addr, size, node);
}

void pa_os_bind_node(void *addr, size_t size, int node)
{
    numa_mode_t mode = pa_numa_mode();
    if (mode == NUMA_OFF || node < 0 || node >= NUMA_MAX_NODES)
        return;
    numa_mbind(addr, size, mode == NUMA_STRICT ? MPOL_BIND : MPOL_PREFERRED, node);
}

bool pa_numa_node_exists(int node)
{
    if (!topology_loaded)
        pa_numa_topology_load(NUMA_SYSFS_DIR);
    return node >= 0 && node < NUMA_MAX_NODES && (nodes_present >> node & 1);
}

void pa_os_bind_node_strict(void *addr, size_t size, int node)
{
    if (node >= 0 && node < NUMA_MAX_NODES)
        numa_mbind(addr, size, MPOL_BIND, node);
}

#define NUMA_QUERY_PAGES 256

void pa_numa_count_pages(const void *addr, size_t size, size_t *pages)
{
    void *batch[NUMA_QUERY_PAGES];
    int status[NUMA_QUERY_PAGES];
    for (size_t off = 0; off < size; off += NUMA_QUERY_PAGES * PA_PAGE_SIZE) {
        size_t n = 0;
        for (; n < NUMA_QUERY_PAGES && off + n * PA_PAGE_SIZE < size; n++)
            batch[n] = (char *)addr + off + n * PA_PAGE_SIZE;
        /* No target nodes: a query, each status a node or -ENOENT. */
        if (syscall(SYS_move_pages, 0, n, batch, NULL, status, 0) != 0)
            return;
        for (size_t i = 0; i < n; i++)
            if (status[i] >= 0 && status[i] < NUMA_MAX_NODES)
                pages[status[i]]++;
    }
}
