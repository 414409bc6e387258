/* SPDX-License-Identifier: MIT */
/*
 * numa.h - NUMA placement: the machine's memory nodes and the node of each
 * CPU, the mode PALLOCATOR_NUMA chooses, the calling thread's node, and
 * the binding of a new mapping to a node. Beside the os layer: it talks to
 * the kernel and knows nothing of heaps.
 */
#ifndef PA_NUMA_H
#define PA_NUMA_H

#include "internal.h"

/* Bounds of the static topology tables: CPUs past NUMA_MAX_CPUS and nodes
 * past NUMA_MAX_NODES are ignored (their memory is left to first touch). */
#define NUMA_MAX_CPUS 4096
#define NUMA_MAX_NODES 64

typedef enum pa_numa_mode { NUMA_OFF, NUMA_PREFERRED, NUMA_STRICT } numa_mode_t;

/* Reads PALLOCATOR_NUMA and, unless it says off, the topology from sysfs;
 * once per process (later calls do nothing). Under the init lock. */
void pa_numa_init(void);
/* The mode in force: NUMA_OFF when no policy is set and no node asked. */
numa_mode_t pa_numa_mode(void);
/* Sets the mode (and counts pa_numa_init as done), or forgets it so that the
 * next pa_numa_init reads the environment again: for tests. */
void pa_numa_mode_set(numa_mode_t mode);
void pa_numa_mode_forget(void);
/* Finds PALLOCATOR_NUMA in a file laid out as /proc/self/environ (entries
 * ended by NUL bytes) and copies its value, cut to size - 1 bytes, into
 * value; false when the file or the variable is missing. Allocates
 * nothing. Exposed for tests. */
bool pa_numa_env_file_read(const char *path, char *value, size_t size);
/* Parses an environment value; false when it names no mode. */
bool pa_numa_mode_parse(const char *value, numa_mode_t *mode);
/* The mode as PALLOCATOR_NUMA spells it. */
const char *pa_numa_mode_name(numa_mode_t mode);

/* Reads nodeN/cpulist under dir (sysfs: /sys/devices/system/node) into the
 * tables, replacing what they held. Returns the number of nodes found, or
 * 0 when dir holds none (the tables then describe one node, node 0, with
 * every CPU on it). Allocates nothing. Exposed for tests. */
int pa_numa_topology_load(const char *dir);
int pa_numa_node_count(void);
/* The node of cpu: the node whose cpulist names it, else the lowest node. */
int pa_numa_node_of_cpu(int cpu);

/* The calling thread's node, or -1 with the mode off (then without any
 * system call). */
int pa_numa_current_node(void);
/* pa_numa_current_node, also stored in *cache (if not NULL) when there is one: how a heap
 * keeps its node fresh each time it grows. */
static inline int numa_node_refresh(int *cache)
{
    int node = pa_numa_current_node();
    if (node >= 0 && cache)
        *cache = node;
    return node;
}

/* Gives [addr, addr + size), not yet touched, the policy of the mode for
 * node: preferred or bound. Nothing with the mode off or node < 0. */
void pa_os_bind_node(void *addr, size_t size, int node);

/* Whether node is one of the machine's nodes (the topology is read if no
 * mode has read it yet). */
bool pa_numa_node_exists(int node);
/* Binds [addr, addr + size), not yet touched, to node (MPOL_BIND) whatever
 * the mode: for a private heap that names its node. */
void pa_os_bind_node_strict(void *addr, size_t size, int node);

/* Adds the resident pages of [addr, addr + size) (page aligned) to
 * pages[node] (NUMA_MAX_NODES entries), asking the kernel where each is.
 * For allocator_dump only: a system call per 256 pages. */
void pa_numa_count_pages(const void *addr, size_t size, size_t *pages);

#endif /* PA_NUMA_H */
