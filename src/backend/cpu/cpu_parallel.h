/*
 * cpu_parallel.h - how the CPU kernels share work between OpenMP threads.
 *
 * LGD_CPU_FOR(work) before a `for` runs it on the backend's threads (be->threads, a
 * `lgd_backend *be` in scope) when `work` (about the number of values touched) pays
 * for waking them, with a static schedule: each output element is computed by one
 * thread in a fixed order, so results do not depend on the thread count.
 * LGD_CPU_FOR_IF(threads, cond) gives the team size and the condition explicitly.
 * Used by the CPU backend and by the CPU kernel tables of the modules.
 */
#ifndef LGD_CPU_PARALLEL_H
#define LGD_CPU_PARALLEL_H

#include "backend/cpu/cpu_backend.h" /* struct lgd_backend: threads */

/* Parallelise only loops with enough work to pay for waking the threads. */
#define LGD_CPU_PAR_MIN_WORK 32768

#define LGD_CPU_PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
#define LGD_CPU_FOR(work)                                                                \
    LGD_CPU_PRAGMA(omp parallel for num_threads(be->threads)                             \
                   if ((work) >= LGD_CPU_PAR_MIN_WORK) schedule(static))
#define LGD_CPU_FOR_IF(nt, cond)                                                         \
    LGD_CPU_PRAGMA(omp parallel for num_threads(nt) if (cond) schedule(static))
#else
/* without OpenMP `be` may be otherwise unused (-Werror=unused-parameter) */
#define LGD_CPU_FOR(work) (void)be;
#define LGD_CPU_FOR_IF(nt, cond) (void)(nt), (void)(cond);
#endif

#endif
