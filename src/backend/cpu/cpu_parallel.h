/*
 * cpu_parallel.h - how the CPU kernels share work between OpenMP threads.
 *
 * LGD_CPU_FOR(work) before a `for` runs it on the backend's threads (be->threads, a
 * `lgd_backend *be` in scope) when `work` (about the number of values touched) pays
 * for waking them and while the machine is not contended (cpu_contention.h: the
 * driving thread waits for a CPU; the loop then runs on it alone), with a static
 * schedule: each output element is computed by one thread in a fixed order, so
 * results do not depend on the thread count.
 * LGD_CPU_FOR_IF(threads, cond) gives the team size and the condition explicitly.
 * Used by the CPU backend and by the CPU kernel tables of the modules.
 */
#ifndef LGD_CPU_PARALLEL_H
#define LGD_CPU_PARALLEL_H

#include "backend/cpu/cpu_backend.h"    /* struct lgd_backend: threads */
#include "backend/cpu/cpu_contention.h" /* lgd_cpu_contended */

/* Parallelise only loops with enough work to pay for waking the threads: about 100 us
 * of work. (It was 32768 until 0.5.0; a region of a few microseconds costs more than its
 * work once libgomp's woken thread spins after it on a machine shared with other busy
 * processes: 35 % of the 2-thread mixture run's CPU time, measured.) */
#define LGD_CPU_PAR_MIN_WORK 131072

#define LGD_CPU_PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
#define LGD_CPU_FOR(work)                                                                \
    LGD_CPU_PRAGMA(omp parallel for num_threads(be->threads)                             \
                   if ((work) >= LGD_CPU_PAR_MIN_WORK && !lgd_cpu_contended(be))         \
                   schedule(static))
#define LGD_CPU_FOR_IF(nt, cond)                                                         \
    LGD_CPU_PRAGMA(omp parallel for num_threads(nt) if (cond) schedule(static))
#else
/* without OpenMP `be` may be otherwise unused (-Werror=unused-parameter) */
#define LGD_CPU_FOR(work) (void)be;
#define LGD_CPU_FOR_IF(nt, cond) (void)(nt), (void)(cond);
#endif

/* OpenBLAS (its OpenMP build, which meson links) and oneDNN size their thread teams by
 * omp_get_max_threads() of the calling thread. lgd_cpu_libs_begin / _end set it to the
 * backend's count around their calls: an ICV of the calling thread only, restored after,
 * so the host's own OpenMP code keeps its setting. (Their results can round differently
 * with another thread count: networks are bit-reproducible for a given thread count.) */
#ifdef _OPENMP
#include <omp.h>
static inline int lgd_cpu_libs_begin(const lgd_backend *be)
{
    int saved = omp_get_max_threads();
    if (be->threads > 0 && saved != be->threads)
        omp_set_num_threads(be->threads);
    return saved;
}
static inline void lgd_cpu_libs_end(const lgd_backend *be, int saved)
{
    if (be->threads > 0 && saved != be->threads)
        omp_set_num_threads(saved);
}
#else
static inline int lgd_cpu_libs_begin(const lgd_backend *be)
{
    (void)be;
    return 0;
}
static inline void lgd_cpu_libs_end(const lgd_backend *be, int saved)
{
    (void)be;
    (void)saved;
}
#endif

/* LGD_CPU_CLONES before a function compiles it for AVX-512 and AVX2 beside the baseline
 * and picks one at load time (GCC/clang function multiversioning, an ifunc). ISO C mode
 * contracts no FMAs, so every version computes bit-identical results; reductions are
 * written with a fixed number of partial sums, never left to the vector width. Put it
 * on the loop body a parallel loop calls, not on the function holding the pragma (the
 * outlined OpenMP body would not be cloned). Off with -Dcpu_dispatch=false
 * (LGD_NO_TARGET_CLONES) and under ThreadSanitizer, whose runtime is not yet set up when
 * the ifunc resolvers run at load time (a crash before main). */
#if defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define LGD_TSAN_BUILD 1
#  endif
#endif
#if defined(__SANITIZE_THREAD__)
#  define LGD_TSAN_BUILD 1
#endif
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(LGD_TSAN_BUILD) && !defined(LGD_NO_TARGET_CLONES)
#define LGD_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LGD_CPU_CLONES
#endif

#endif
