/*
 * cpu_contention.h - whether the CPU backend's threads would wait for the machine:
 * the run-queue delay of the thread that drives the backend, measured.
 *
 * OpenMP's parallel loops (LGD_CPU_FOR, cpu_parallel.h) split their work statically
 * between the team's threads and end at a barrier, so a loop is as slow as its most
 * delayed thread; and libgomp's threads spin for a while at that barrier and after it,
 * which a library cannot change (OMP_WAIT_POLICY is read once per process). On a
 * machine whose CPUs are shared with other busy processes, a thread of the team is
 * often waiting for a CPU: a 2-thread step then took up to 16 times the 1-thread step
 * (bench-sampling at load 7 on 2 cores, measured in 0.5.0).
 *
 * lgd_cpu_contended tells the loops to run on the calling thread alone while the
 * calling thread itself spends more than LGD_CPU_CONTENDED_WAIT of its wall time
 * waiting on a run queue (Linux: /proc/thread-self/schedstat, the scheduler's own
 * account), over periods of at least LGD_CPU_CONTENTION_PERIOD_NS; it is re-measured
 * at most once per period (one read of a proc file), so the decision follows the
 * load within milliseconds. The loops it governs compute every element on one thread
 * in a fixed order: going serial changes no bit of any result. Off (never contended)
 * with LGD_CPU_ADAPTIVE=0 in the environment when the backend opens, where
 * /proc/thread-self/schedstat cannot be read, and without OpenMP.
 */
#ifndef LGD_CPU_CONTENTION_H
#define LGD_CPU_CONTENTION_H

#include "backend/cpu/cpu_backend.h"

/* The least period between two measurements, in nanoseconds. */
#define LGD_CPU_CONTENTION_PERIOD_NS 10000000
/* Contended above this fraction of wall time spent waiting for a CPU (per mille);
 * uncontended again below half of it (hysteresis). */
#define LGD_CPU_CONTENDED_WAIT_PERMILLE 150

/* Sets up be->contention (enabled unless LGD_CPU_ADAPTIVE=0 or one thread). */
void lgd_cpu_contention_init(lgd_backend *be);

/* Nonzero while the machine is contended (see above); the last measurement's decision,
 * refreshed when a period has passed. Safe to call from any thread (relaxed atomics:
 * a stale decision at worst). */
int lgd_cpu_contended(lgd_backend *be);

#endif
