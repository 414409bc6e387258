/* SPDX-License-Identifier: MIT */
/*
 * check_numa.c - NUMA placement: the topology read from fake sysfs trees
 * (1, 2 and 4 nodes, a node without CPUs, sparse nodes, long CPU lists,
 * malformed files), the mode from PALLOCATOR_NUMA, the policy the kernel
 * reports for blocks' pages in each mode and where their touched pages
 * are, adoption of an abandoned heap by a thread of its node, and a heap
 * that follows its thread to another node.
 *
 * The kernel is asked through the system calls themselves (get_mempolicy,
 * move_pages, getcpu), like the library, so no libnuma is needed.
 */
#define _GNU_SOURCE 1 /* sched_getcpu, CPU_SET, pthread_setaffinity_np */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/mempolicy.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "heap.h"
#include "numa.h"
#include "pallocator.h"
#include "testutil.h"

#define SYSFS_NODES "/sys/devices/system/node"

/* ------------------------------------------------------------------ */
/* Fake topology trees                                                  */
/* ------------------------------------------------------------------ */

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_msg(fd >= 0, "cannot create %s", path);
    size_t len = strlen(text);
    ck_assert(write(fd, text, len) == (ssize_t)len);
    close(fd);
}

/* A tree under a new temporary directory: cpulists[n] is node n's list
 * (NULL: no such node), online the online file's text (NULL: none).
 * The path goes to dir (PATH_MAX bytes). */
static void make_tree(char *dir, const char *const *cpulists, int nodes, const char *online)
{
    strcpy(dir, "/tmp/pa_check_numaXXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[512];
    for (int n = 0; n < nodes; n++) {
        if (!cpulists[n])
            continue;
        snprintf(path, sizeof path, "%s/node%d", dir, n);
        ck_assert_int_eq(mkdir(path, 0755), 0);
        snprintf(path, sizeof path, "%s/node%d/cpulist", dir, n);
        write_file(path, cpulists[n]);
    }
    if (online) {
        snprintf(path, sizeof path, "%s/online", dir);
        write_file(path, online);
    }
}

static void remove_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Loads a tree of the given lists and checks the node count it reports. */
static void load_tree(const char *const *cpulists, int nodes, const char *online, int expect)
{
    char dir[4096];
    make_tree(dir, cpulists, nodes, online);
    ck_assert_int_eq(pa_numa_topology_load(dir), expect);
    remove_tree(dir);
    ck_assert_int_eq(pa_numa_node_count(), expect > 0 ? expect : 1);
}

START_TEST(test_topology_one_node)
{
    static const char *const lists[] = {"0-3\n"};
    load_tree(lists, 1, "0\n", 1);
    for (int cpu = 0; cpu < 4; cpu++)
        ck_assert_int_eq(pa_numa_node_of_cpu(cpu), 0);
    ck_assert_int_eq(pa_numa_node_of_cpu(100), 0); /* unlisted: the lowest node */
    ck_assert_int_eq(pa_numa_node_of_cpu(-1), 0);  /* sched_getcpu failed */
}
END_TEST

START_TEST(test_topology_two_nodes)
{
    static const char *const lists[] = {"0-1\n", "2-3\n"};
    load_tree(lists, 2, "0-1\n", 2);
    ck_assert_int_eq(pa_numa_node_of_cpu(0), 0);
    ck_assert_int_eq(pa_numa_node_of_cpu(1), 0);
    ck_assert_int_eq(pa_numa_node_of_cpu(2), 1);
    ck_assert_int_eq(pa_numa_node_of_cpu(3), 1);
    ck_assert_int_eq(pa_numa_node_of_cpu(4), 0);
}
END_TEST

/* Interleaved CPUs, and no online file: each node directory is tried. */
START_TEST(test_topology_four_nodes)
{
    static const char *const lists[] = {"0,4\n", "1,5\n", "2,6\n", "3,7\n"};
    load_tree(lists, 4, NULL, 4);
    for (int cpu = 0; cpu < 8; cpu++)
        ck_assert_int_eq(pa_numa_node_of_cpu(cpu), cpu % 4);
    load_tree(lists, 4, "0-3\n", 4);
    ck_assert_int_eq(pa_numa_node_of_cpu(7), 3);
}
END_TEST

/* A node with memory and no CPU counts as a node; no CPU maps to it. */
START_TEST(test_topology_empty_node)
{
    static const char *const lists[] = {"0-3\n", "\n", "4-7\n"};
    load_tree(lists, 3, "0-2\n", 3);
    for (int cpu = 0; cpu < 8; cpu++)
        ck_assert_int_eq(pa_numa_node_of_cpu(cpu), cpu < 4 ? 0 : 2);
    static const char *const bare[] = {"0-1\n", ""}; /* an empty file, too */
    load_tree(bare, 2, NULL, 2);
    ck_assert_int_eq(pa_numa_node_of_cpu(1), 0);
}
END_TEST

/* Sparse node numbers: an unknown CPU goes to the lowest node there is. */
START_TEST(test_topology_sparse_nodes)
{
    static const char *const lists[] = {NULL, "0-1\n", NULL, "2-3\n"};
    load_tree(lists, 4, NULL, 2);
    ck_assert_int_eq(pa_numa_node_of_cpu(0), 1);
    ck_assert_int_eq(pa_numa_node_of_cpu(3), 3);
    ck_assert_int_eq(pa_numa_node_of_cpu(9), 1);
    /* The online file decides which nodes are read. */
    static const char *const both[] = {"0-1\n", "2-3\n"};
    load_tree(both, 2, "1\n", 1);
    ck_assert_int_eq(pa_numa_node_of_cpu(0), 1);
    ck_assert_int_eq(pa_numa_node_of_cpu(2), 1);
}
END_TEST

START_TEST(test_topology_long_ranges)
{
    static const char *const lists[] = {"0-3,8-11,64-127\n", "4-7,12-63,128-5000\n"};
    load_tree(lists, 2, NULL, 2);
    static const int node0[] = {0, 3, 8, 11, 64, 100, 127};
    static const int node1[] = {4, 7, 12, 63, 128, 2048, NUMA_MAX_CPUS - 1};
    for (size_t i = 0; i < sizeof node0 / sizeof node0[0]; i++)
        ck_assert_int_eq(pa_numa_node_of_cpu(node0[i]), 0);
    for (size_t i = 0; i < sizeof node1 / sizeof node1[0]; i++)
        ck_assert_int_eq(pa_numa_node_of_cpu(node1[i]), 1);
    /* Past the table: the lowest node, however the list ran on. */
    ck_assert_int_eq(pa_numa_node_of_cpu(NUMA_MAX_CPUS), 0);
    ck_assert_int_eq(pa_numa_node_of_cpu(4500), 0);
}
END_TEST

/* Lists far longer than one read: even CPUs on node 1, odd on node 0. */
START_TEST(test_topology_list_across_reads)
{
    static char even[8192], odd[8192];
    size_t e = 0, o = 0;
    for (int cpu = 0; cpu < 2000; cpu++) {
        char *buf = cpu % 2 ? odd : even;
        size_t *at = cpu % 2 ? &o : &e;
        *at += (size_t)snprintf(buf + *at, 8192 - *at, "%s%d", *at ? "," : "", cpu);
    }
    strcpy(even + e, "\n");
    strcpy(odd + o, "\n");
    ck_assert_uint_gt(e, 4 * 256);
    const char *const lists[] = {odd, even};
    load_tree(lists, 2, NULL, 2);
    for (int cpu = 0; cpu < 2000; cpu++)
        ck_assert_int_eq(pa_numa_node_of_cpu(cpu), cpu % 2 ? 0 : 1);
}
END_TEST

/* A malformed list gives its node no CPUs (not even those read before the
 * error); the node still counts, and the other nodes are unaffected. */
START_TEST(test_topology_malformed)
{
    static const char *const lists[] = {"0-1\n", "2-3,x\n", "5-4\n", "6,,7\n", "8-\n",
                                        "9-10-11\n", "12\n"};
    load_tree(lists, 7, NULL, 7);
    ck_assert_int_eq(pa_numa_node_of_cpu(1), 0);
    for (int cpu = 2; cpu <= 11; cpu++)
        ck_assert_msg(pa_numa_node_of_cpu(cpu) == 0, "cpu %d of a malformed list mapped to %d",
                      cpu, pa_numa_node_of_cpu(cpu));
    ck_assert_int_eq(pa_numa_node_of_cpu(12), 6);
    /* A malformed online file: every node directory is tried instead. */
    static const char *const two[] = {"0\n", "1\n"};
    load_tree(two, 2, "0-z\n", 2);
    ck_assert_int_eq(pa_numa_node_of_cpu(1), 1);
}
END_TEST

START_TEST(test_topology_no_nodes)
{
    load_tree(NULL, 0, NULL, 0);
    ck_assert_int_eq(pa_numa_node_of_cpu(0), 0);
    ck_assert_int_eq(pa_numa_node_of_cpu(77), 0);
    ck_assert_int_eq(pa_numa_topology_load("/nonexistent/pa_numa"), 0);
    ck_assert_int_eq(pa_numa_node_count(), 1);
}
END_TEST

/* The real tree, against the node the kernel names for the running CPU. */
START_TEST(test_topology_sysfs)
{
    ck_assert_int_ge(pa_numa_topology_load(SYSFS_NODES), 1);
    unsigned cpu, node;
    ck_assert_int_eq(syscall(SYS_getcpu, &cpu, &node, NULL), 0);
    ck_assert_int_eq(pa_numa_node_of_cpu((int)cpu), (int)node);
}
END_TEST

START_TEST(test_mode_parse)
{
    numa_mode_t m = NUMA_STRICT;
    ck_assert(pa_numa_mode_parse("off", &m) && m == NUMA_OFF);
    ck_assert(pa_numa_mode_parse("preferred", &m) && m == NUMA_PREFERRED);
    ck_assert(pa_numa_mode_parse("strict", &m) && m == NUMA_STRICT);
    ck_assert(!pa_numa_mode_parse("Strict", &m) && m == NUMA_STRICT);
    ck_assert(!pa_numa_mode_parse("", &m));
    ck_assert(!pa_numa_mode_parse("bind", &m));
    ck_assert_str_eq(pa_numa_mode_name(NUMA_PREFERRED), "preferred");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Policies and pages, on this machine's nodes                          */
/* ------------------------------------------------------------------ */

#define MASK_BITS 1024

typedef struct page_policy {
    int mode;
    unsigned long mask[MASK_BITS / (8 * sizeof(unsigned long))];
} page_policy_t;

static page_policy_t policy_of(const void *p)
{
    page_policy_t pol = {-1, {0}};
    long rc = syscall(SYS_get_mempolicy, &pol.mode, pol.mask, (unsigned long)MASK_BITS, p,
                      (unsigned long)MPOL_F_ADDR);
    ck_assert_msg(rc == 0, "get_mempolicy: errno %d", errno);
    return pol;
}

static bool mask_is_only(const page_policy_t *pol, int node)
{
    for (size_t w = 0; w < sizeof pol->mask / sizeof pol->mask[0]; w++) {
        unsigned long want = (size_t)node / 64 == w ? 1UL << (node % 64) : 0;
        if (pol->mask[w] != want)
            return false;
    }
    return true;
}

/* Touches n bytes at p, then asks where each page is: true when every
 * page of the range is on node. */
static bool pages_on_node(void *p, size_t n, int node)
{
    memset(p, 0xa5, n);
    uintptr_t first = (uintptr_t)p & ~(uintptr_t)(PA_PAGE_SIZE - 1);
    size_t count = ((uintptr_t)p + n - first + PA_PAGE_SIZE - 1) / PA_PAGE_SIZE;
    void *pages[64];
    int status[64];
    ck_assert_uint_le(count, 64);
    for (size_t i = 0; i < count; i++)
        pages[i] = (void *)(first + i * PA_PAGE_SIZE);
    ck_assert_int_eq(syscall(SYS_move_pages, 0, count, pages, NULL, status, 0), 0);
    for (size_t i = 0; i < count; i++)
        if (status[i] != node)
            return false;
    return true;
}

/* Blocks of each kind: a slab block, an arena block, a large block. */
static const size_t kind_sizes[] = {48, 100000, 3u << 20};

static void restart_in_mode(numa_mode_t mode)
{
    allocator_cleanup();
    pa_numa_mode_set(mode);
    ck_assert_int_eq(allocator_init(1), 0);
}

/* In a bound mode each block's page reports the policy for the heap's
 * node, the node the thread runs on, and its touched pages lie there. */
static void check_bound_blocks(numa_mode_t mode, int policy)
{
    ck_assert_int_ge(pa_numa_topology_load(SYSFS_NODES), 1);
    restart_in_mode(mode);
    unsigned cpu, node;
    ck_assert_int_eq(syscall(SYS_getcpu, &cpu, &node, NULL), 0);
    for (size_t k = 0; k < sizeof kind_sizes / sizeof kind_sizes[0]; k++) {
        char *p = myalloc(kind_sizes[k]);
        ck_assert_ptr_nonnull(p);
        heap_t *h = pa_thread.heap;
        ck_assert_ptr_nonnull(h);
        /* Single-node machines cannot tell a migration; on several nodes
         * a test thread may be moved, so the heap's own node is the one. */
        ck_assert_int_ge(h->numa_node, 0);
        if (pa_numa_node_count() == 1)
            ck_assert_int_eq(h->numa_node, (int)node);
        page_policy_t pol = policy_of(p);
        ck_assert_msg(pol.mode == policy, "block of %zu bytes: policy %d, want %d",
                      kind_sizes[k], pol.mode, policy);
        ck_assert_msg(mask_is_only(&pol, h->numa_node), "block of %zu bytes: mask %#lx",
                      kind_sizes[k], pol.mask[0]);
        size_t touch = kind_sizes[k] < 16 * PA_PAGE_SIZE ? kind_sizes[k] : 16 * PA_PAGE_SIZE;
        ck_assert_msg(pages_on_node(p, touch, h->numa_node), "block of %zu bytes off node %d",
                      kind_sizes[k], h->numa_node);
        ck_assert_int_eq(myfree(p), 0);
    }
    ck_assert_int_eq(allocator_verify(), 0);
    allocator_cleanup();
}

START_TEST(test_strict_binds)
{
    check_bound_blocks(NUMA_STRICT, MPOL_BIND);
}
END_TEST

START_TEST(test_preferred_prefers)
{
    check_bound_blocks(NUMA_PREFERRED, MPOL_PREFERRED);
}
END_TEST

/* Off: no policy on any block, and the heap has no node. */
START_TEST(test_off_sets_nothing)
{
    restart_in_mode(NUMA_OFF);
    for (size_t k = 0; k < sizeof kind_sizes / sizeof kind_sizes[0]; k++) {
        char *p = myalloc(kind_sizes[k]);
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(policy_of(p).mode, MPOL_DEFAULT);
        ck_assert_int_eq(pa_thread.heap->numa_node, -1);
        ck_assert_int_eq(myfree(p), 0);
    }
    allocator_cleanup();
}
END_TEST

/* A segment retired under one policy and reused under another gets the
 * new one (the pool hands it back through pa_segment_acquire). */
START_TEST(test_pooled_segment_rebound)
{
    ck_assert_int_ge(pa_numa_topology_load(SYSFS_NODES), 1);
    restart_in_mode(NUMA_STRICT);
    size_t n = 40;
    void *blocks[40];
    for (size_t i = 0; i < n; i++)
        ck_assert_ptr_nonnull(blocks[i] = myalloc(200000));
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(myfree(blocks[i]), 0);
    size_t pooled = pa_segment_pool_count();
    ck_assert_uint_gt(pooled, 0);
    /* The segments the heap kept (its spare, and those its cache of freed
     * blocks holds on to) stay bound; only pooled ones are bound anew. */
    const segment_t *kept[64];
    size_t kept_count = 0;
    for (const segment_t *s = pa_thread.heap->arena.segments; s && kept_count < 64; s = s->next)
        kept[kept_count++] = s;
    pa_numa_mode_set(NUMA_PREFERRED);
    for (size_t i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(blocks[i] = myalloc(200000));
        int want = MPOL_PREFERRED;
        for (size_t k = 0; k < kept_count; k++)
            if (segment_of(blocks[i]) == kept[k])
                want = MPOL_BIND;
        ck_assert_int_eq(policy_of(blocks[i]).mode, want);
    }
    ck_assert_uint_lt(pa_segment_pool_count(), pooled);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(myfree(blocks[i]), 0);
    allocator_cleanup();
}
END_TEST

/* ------------------------------------------------------------------ */
/* PALLOCATOR_NUMA, read once at initialisation (in a child of its own) */
/* ------------------------------------------------------------------ */

/* Runs the body in a child whose environment says value, with stderr in
 * a file; returns the child's status and what it wrote to stderr. */
static int run_child_with(const char *value, int (*body)(void), char *err, size_t err_size)
{
    char path[] = "/tmp/pa_check_numa_errXXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    unlink(path);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        dup2(fd, STDERR_FILENO);
        allocator_cleanup();
        pa_numa_mode_forget(); /* as in a process that never initialised */
        setenv("PALLOCATOR_NUMA", value, 1);
        _exit(body());
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ssize_t len = pread(fd, err, err_size - 1, 0);
    close(fd);
    err[len > 0 ? len : 0] = '\0';
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

/* 0 when a fresh block's page is bound to the heap's node, 1 when it has
 * no policy, 2 when something else is wrong. */
static int child_block_policy(void)
{
    char *p = myalloc(1000);
    if (!p || !pa_thread.heap)
        return 2;
    page_policy_t pol = {-1, {0}};
    if (syscall(SYS_get_mempolicy, &pol.mode, pol.mask, (unsigned long)MASK_BITS, p,
                (unsigned long)MPOL_F_ADDR) != 0)
        return 2;
    if (pol.mode == MPOL_DEFAULT)
        return pa_thread.heap->numa_node == -1 && pa_numa_mode() == NUMA_OFF ? 1 : 2;
    bool bound = pol.mode == MPOL_BIND && pa_thread.heap->numa_node >= 0 &&
                 mask_is_only(&pol, pa_thread.heap->numa_node);
    return bound && pa_numa_mode() == NUMA_STRICT ? 0 : 2;
}

/* Lines of err that name PALLOCATOR_NUMA (debug builds log more). */
static int warning_lines(const char *err)
{
    int n = 0;
    for (const char *p = err; (p = strstr(p, "PALLOCATOR_NUMA")) != NULL; p++)
        n++;
    return n;
}

START_TEST(test_environment_modes)
{
    char err[4096];
    ck_assert_int_eq(run_child_with("strict", child_block_policy, err, sizeof err), 0);
    ck_assert_int_eq(warning_lines(err), 0);
    ck_assert_int_eq(run_child_with("off", child_block_policy, err, sizeof err), 1);
    ck_assert_int_eq(warning_lines(err), 0);
}
END_TEST

/* An unknown value: one line on stderr, then the default, which on a
 * single-node machine sets no policy (and on several, a preferred one). */
static int child_default_mode(void)
{
    if (!myalloc(1000))
        return 2;
    int nodes = pa_numa_node_count();
    return pa_numa_mode() == (nodes > 1 ? NUMA_PREFERRED : NUMA_OFF) ? 0 : 1;
}

START_TEST(test_environment_unknown)
{
    char err[4096];
    ck_assert_int_eq(run_child_with("fast", child_default_mode, err, sizeof err), 0);
    ck_assert_int_eq(warning_lines(err), 1);
    const char *line = strstr(err, "pallocator: PALLOCATOR_NUMA=fast ");
    ck_assert_msg(line != NULL, "stderr: %s", err);
    const char *nl = strchr(line, '\n');
    static const char tail[] = "using the default";
    ck_assert(nl && strstr(line, tail) == nl - strlen(tail)); /* one line */
    ck_assert_int_eq(run_child_with("", child_default_mode, err, sizeof err), 0);
    ck_assert_int_eq(warning_lines(err), 0);
}
END_TEST

/* A file laid out as /proc/self/environ: entries ended by NUL bytes. */
static void environ_file_write(const char *path, const char *bytes, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert(fd >= 0);
    ck_assert_int_eq(write(fd, bytes, len), (ssize_t)len);
    close(fd);
}

START_TEST(test_environment_file)
{
    char path[] = "/tmp/pa_check_numa_envXXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    char value[32];
    /* Among others, after a longer entry that spans the reader's buffer. */
    char bytes[2048];
    size_t len = 0;
    len += (size_t)sprintf(bytes + len, "A=1") + 1;
    memset(bytes + len, 'x', 1000);
    memcpy(bytes + len, "LONG=", 5);
    len += 1000;
    bytes[len++] = '\0';
    len += (size_t)sprintf(bytes + len, "PALLOCATOR_NUMAX=off") + 1;
    len += (size_t)sprintf(bytes + len, "PALLOCATOR_NUMA=strict") + 1;
    len += (size_t)sprintf(bytes + len, "B=2") + 1;
    environ_file_write(path, bytes, len);
    ck_assert(pa_numa_env_file_read(path, value, sizeof value));
    ck_assert_str_eq(value, "strict");
    /* Cut to the buffer. */
    ck_assert(pa_numa_env_file_read(path, value, 4));
    ck_assert_str_eq(value, "str");
    /* Set but empty. */
    static const char empty[] = "A=1\0PALLOCATOR_NUMA=\0";
    environ_file_write(path, empty, sizeof empty - 1);
    ck_assert(pa_numa_env_file_read(path, value, sizeof value));
    ck_assert_str_eq(value, "");
    /* Not set; a name that only starts the same. */
    static const char absent[] = "PALLOCATOR_NUMA_X=strict\0PALLOCATOR_NUM=off\0";
    environ_file_write(path, absent, sizeof absent - 1);
    ck_assert(!pa_numa_env_file_read(path, value, sizeof value));
    unlink(path);
    ck_assert(!pa_numa_env_file_read(path, value, sizeof value));
}
END_TEST

/* Initialisation before the C library has set environ up, as under
 * libpallocator-malloc when the dynamic loader makes the first call: this
 * program, started again with PALLOCATOR_NUMA=strict in its environment
 * and EARLY_CHILD_MARK, drops environ before its first allocation
 * (main() below), and must still find the mode. */
#define EARLY_CHILD_MARK "PA_CHECK_NUMA_EARLY_CHILD=1"

static int early_child(void)
{
    environ = NULL;
    if (!myalloc(1000))
        return 2;
    return pa_numa_mode() == NUMA_STRICT ? 0 : 1;
}

START_TEST(test_environment_before_environ)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ck_assert(n > 0);
    exe[n] = '\0';
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        char *argv[] = {exe, NULL};
        char *envp[] = {EARLY_CHILD_MARK, "PALLOCATOR_NUMA=strict", NULL};
        execve(exe, argv, envp);
        _exit(3);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Threads and nodes, on a fake topology of two CPUs on two nodes       */
/* ------------------------------------------------------------------ */

static int fake_cpu[2]; /* the CPUs given fake nodes 0 and 1 */

/* Two CPUs this thread may run on, put on fake nodes 0 and 1; false when
 * the thread may run on only one. */
static bool fake_two_nodes(void)
{
    cpu_set_t set;
    ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
    int found = 0;
    for (int c = 0; c < CPU_SETSIZE && c < NUMA_MAX_CPUS && found < 2; c++)
        if (CPU_ISSET(c, &set))
            fake_cpu[found++] = c;
    if (found < 2)
        return false;
    char l0[16], l1[16], dir[4096];
    snprintf(l0, sizeof l0, "%d\n", fake_cpu[0]);
    snprintf(l1, sizeof l1, "%d\n", fake_cpu[1]);
    const char *const lists[] = {l0, l1};
    make_tree(dir, lists, 2, NULL);
    ck_assert_int_eq(pa_numa_topology_load(dir), 2);
    remove_tree(dir);
    /* Preferred: the fake node 1 may not exist, and a failed mbind only
     * leaves the pages to first touch. */
    restart_in_mode(NUMA_PREFERRED);
    return true;
}

/* Moves the calling thread to the CPU of fake node node; false when it
 * did not get there. Threads assert nothing themselves. */
static bool pin_to_node(int node)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(fake_cpu[node], &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0 &&
           sched_getcpu() == fake_cpu[node];
}

typedef struct node_thread {
    int node;
    bool pinned;
    heap_t *heap;                /* the heap the thread got */
    int heap_node;               /* its node after an allocation */
    sem_t allocated, leave;
    pthread_t th;
} node_thread_t;

/* Pins itself to its node, allocates and frees, then waits to be let go. */
static void *alloc_on_node(void *arg)
{
    node_thread_t *t = arg;
    t->pinned = pin_to_node(t->node);
    void *p = myalloc(64);
    t->heap = pa_thread.heap;
    t->heap_node = t->heap ? t->heap->numa_node : -2;
    myfree(p);
    sem_post(&t->allocated);
    sem_wait(&t->leave);
    return NULL;
}

static void node_thread_start(node_thread_t *t, int node)
{
    t->node = node;
    t->pinned = false;
    t->heap = NULL;
    t->heap_node = -2;
    ck_assert_int_eq(sem_init(&t->allocated, 0, 0), 0);
    ck_assert_int_eq(sem_init(&t->leave, 0, 0), 0);
    ck_assert_int_eq(pthread_create(&t->th, NULL, alloc_on_node, t), 0);
    ck_assert_int_eq(sem_wait(&t->allocated), 0);
    ck_assert(t->pinned);
    ck_assert_ptr_nonnull(t->heap);
    ck_assert_int_eq(t->heap_node, node);
}

/* Lets t exit; its heap goes to the head of the abandoned list. */
static void node_thread_end(node_thread_t *t)
{
    ck_assert_int_eq(sem_post(&t->leave), 0);
    ck_assert_int_eq(pthread_join(t->th, NULL), 0);
    sem_destroy(&t->allocated);
    sem_destroy(&t->leave);
}

/* Heaps of exited threads of both nodes wait; a new thread takes the one
 * of its node although the other was abandoned after it. */
START_TEST(test_adopt_same_node)
{
    if (!fake_two_nodes()) {
        fprintf(stderr, "check_numa: one CPU allowed, adoption by node not tested\n");
        return;
    }
    node_thread_t a, b, c, d;
    node_thread_start(&a, 1);
    node_thread_start(&b, 0);
    ck_assert_ptr_ne(a.heap, b.heap);
    node_thread_end(&a);
    node_thread_end(&b); /* abandoned: b's heap (node 0), then a's (node 1) */
    node_thread_start(&c, 1);
    ck_assert_ptr_eq(c.heap, a.heap);
    node_thread_end(&c); /* abandoned: a's heap, then b's */
    node_thread_start(&d, 0);
    ck_assert_ptr_eq(d.heap, b.heap);
    node_thread_end(&d);
    allocator_cleanup();
}
END_TEST

/* A heap whose thread moves to the other node for good takes its next
 * segment for the new node. */
typedef struct mover {
    bool pinned;
    int node_before, node_after;
    size_t segments_before, segments_after;
} mover_t;

static void *move_and_grow(void *arg)
{
    mover_t *m = arg;
    enum { N = 30 }; /* more than a segment's worth of 200000-byte blocks */
    void *blocks[N] = {0};
    m->pinned = pin_to_node(0);
    blocks[0] = myalloc(200000);
    heap_t *h = pa_thread.heap;
    if (!h)
        return NULL;
    m->node_before = h->numa_node;
    m->segments_before = h->arena.segment_count;
    m->pinned = m->pinned && pin_to_node(1);
    for (int i = 1; i < N; i++)
        blocks[i] = myalloc(200000);
    m->segments_after = h->arena.segment_count;
    m->node_after = h->numa_node;
    for (int i = 0; i < N; i++)
        myfree(blocks[i]);
    return NULL;
}

START_TEST(test_heap_follows_thread)
{
    if (!fake_two_nodes()) {
        fprintf(stderr, "check_numa: one CPU allowed, migration not tested\n");
        return;
    }
    mover_t m = {false, -2, -2, 0, 0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, move_and_grow, &m), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert(m.pinned);
    ck_assert_int_eq(m.node_before, 0);
    ck_assert_uint_gt(m.segments_after, m.segments_before);
    ck_assert_int_eq(m.node_after, 1);
    allocator_cleanup();
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *numa_suite(void)
{
    Suite *s = suite_create("numa");
    TCase *tc = tcase_create("topology");
    tcase_add_test(tc, test_topology_one_node);
    tcase_add_test(tc, test_topology_two_nodes);
    tcase_add_test(tc, test_topology_four_nodes);
    tcase_add_test(tc, test_topology_empty_node);
    tcase_add_test(tc, test_topology_sparse_nodes);
    tcase_add_test(tc, test_topology_long_ranges);
    tcase_add_test(tc, test_topology_list_across_reads);
    tcase_add_test(tc, test_topology_malformed);
    tcase_add_test(tc, test_topology_no_nodes);
    tcase_add_test(tc, test_topology_sysfs);
    tcase_add_test(tc, test_mode_parse);
    suite_add_tcase(s, tc);
    tc = tcase_create("policy");
    tcase_add_test(tc, test_strict_binds);
    tcase_add_test(tc, test_preferred_prefers);
    tcase_add_test(tc, test_off_sets_nothing);
    tcase_add_test(tc, test_pooled_segment_rebound);
    tcase_add_test(tc, test_environment_modes);
    tcase_add_test(tc, test_environment_unknown);
    tcase_add_test(tc, test_environment_file);
    tcase_add_test(tc, test_environment_before_environ);
    suite_add_tcase(s, tc);
    tc = tcase_create("threads");
    tcase_add_test(tc, test_adopt_same_node);
    tcase_add_test(tc, test_heap_follows_thread);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *mark = getenv("PA_CHECK_NUMA_EARLY_CHILD");
    if (mark && strcmp(mark, "1") == 0)
        return early_child();
    SRunner *sr = srunner_create(numa_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
