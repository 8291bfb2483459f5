/* What the benchmarks share: the clock, sorting samples, the daemon under test started with
 * its log in a file, and the processes of its temporary tree. */
#ifndef CWS_BENCH_UTIL_H
#define CWS_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t bench_now_ns(void);
/* qsort comparator of int64_t. */
int bench_cmp_i64(const void *x, const void *y);

/* Start cwsandboxd in a fresh tree (th_daemon_start with env) with its stderr and its
 * backend's in a new file /tmp/PREFIX-XXXXXX.log, whose name is written to log_path. On failure
 * returns -1 with why filled, and nothing of the attempt left running. */
int bench_start_daemon(struct th_daemon *d, const char *const *env, const char *prefix,
                       char *log_path, size_t log_size, char *why, size_t why_size);

/* Processes but this one and skip (0: none) whose command line names root; without
 * count_backend, cwsandbox-local is not counted. first (may be NULL) describes the first one
 * found. -1 when /proc cannot be read. */
int bench_tree_processes(const char *root, pid_t skip, bool count_backend, char *first,
                         size_t first_size);

#endif
