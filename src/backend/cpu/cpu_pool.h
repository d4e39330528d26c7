/*
 * cpu_pool.h - the CPU backend's own worker threads, for the loops where the backend
 * must not spin: workers that park (a condition variable, a futex on Linux) as soon
 * as a loop is done, units handed out one at a time.
 *
 * OpenMP's threads (libgomp) spin for a while after each parallel region before they
 * sleep, and a library cannot change that for its own regions (OMP_WAIT_POLICY is
 * read once per process). On a machine shared with another busy process, a thread
 * spinning at the end of a loop takes the core from the thread still working; and a
 * static schedule makes every loop as slow as its slowest thread. The fused Monte
 * Carlo loop (sampling/mc_kernels_cpu.c), most of an LGD-MC step on the CPU, runs
 * here instead: no spinning, dynamic units (a slowed thread costs its share only),
 * and each unit computed by one thread in a fixed order, so results do not depend on
 * which thread takes which unit.
 */
#ifndef LGD_CPU_POOL_H
#define LGD_CPU_POOL_H

#include <stddef.h>

typedef struct lgd_cpu_pool lgd_cpu_pool;

/* A pool for `threads` threads in all (the caller of lgd_cpu_pool_run is one of them:
 * threads - 1 workers are started). NULL when threads < 2 or a thread cannot be made
 * (lgd_cpu_pool_run with a NULL pool runs every unit on the caller). */
lgd_cpu_pool *lgd_cpu_pool_create(int threads);
void lgd_cpu_pool_destroy(lgd_cpu_pool *pool);

/* Calls fn(arg, u) for every u in [0, units), on the caller and the workers, and
 * returns when all calls have returned. One run at a time per pool (the backend is
 * used by one thread at a time). */
void lgd_cpu_pool_run(lgd_cpu_pool *pool, size_t units, void (*fn)(void *arg, size_t unit),
                      void *arg);

#endif
