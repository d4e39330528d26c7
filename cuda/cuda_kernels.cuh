/*
 * cuda_kernels.cuh - device helpers shared by the kernels (the generic ops_*.cu and
 * the module tables' kernels_*.cu): grid-stride loops, row groups and their
 * reductions, the flat and row launch macros. Formulas that the CPU computes too are
 * not here but in core/hd_math.h, one copy for both backends.
 *
 * Row-wise operations give each row a group of G threads: a warp (G = 32) when
 * rows are short, a whole block (G = 256) when they are long. A group's threads
 * stride over the row's columns and combine their partial results with
 * lgd_group<G>::sum / max, which every thread of the group receives (the same
 * value in every thread: the partials are combined in a fixed order).
 *
 * Accumulations that the CPU backend does in double are done in double here,
 * and the kernels are compiled without FMA contraction (-fmad=false in
 * cuda/meson.build), so elementwise results equal the CPU's bit for bit except
 * where a libm function (expf, logf, ...) differs by an ulp.
 */
#ifndef LGD_CUDA_KERNELS_CUH
#define LGD_CUDA_KERNELS_CUH

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/hd_math.h"
#include "cuda_backend.h"

#define LGD_THREADS 256 /* threads per block of the elementwise and row kernels */
#define LGD_WARP 32

/* for (i = global thread; i < n; i += grid size), in the index type I */
#define LGD_GRID_STRIDE(I, i, n)                                                        \
    for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < (I)(n);              \
         i += (I)blockDim.x * (I)gridDim.x)

/* result + beta * old, never reading old when beta is 0 (the backward ops' and the
 * layout ops' dx = result + beta dx, beta 0 or 1; with beta 0, dx may hold NaN) */
__device__ __forceinline__ float lgd_acc(float result, float beta, const float *old)
{
    return beta == 0.0f ? result : result + beta * *old;
}

__device__ __forceinline__ double lgd_warp_sum(double v)
{
    for (int off = LGD_WARP / 2; off > 0; off /= 2)
        v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

/* max that ignores NaN like the CPU's `v > m ? v : m` with m starting at -inf */
__device__ __forceinline__ float lgd_fmax_cpu(float m, float v) { return v > m ? v : m; }

__device__ __forceinline__ float lgd_warp_max(float v)
{
    for (int off = LGD_WARP / 2; off > 0; off /= 2)
        v = lgd_fmax_cpu(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

template <int G> struct lgd_group;

/* one warp per row */
template <> struct lgd_group<LGD_WARP> {
    static __device__ __forceinline__ unsigned lane() { return threadIdx.x % LGD_WARP; }
    static __device__ __forceinline__ double sum(double v, double *) { return lgd_warp_sum(v); }
    static __device__ __forceinline__ float max(float v, double *) { return lgd_warp_max(v); }
};

/* one block (LGD_THREADS threads) per row; shm holds LGD_THREADS / 32 doubles */
template <> struct lgd_group<LGD_THREADS> {
    static __device__ __forceinline__ unsigned lane() { return threadIdx.x; }
    static __device__ __forceinline__ double sum(double v, double *shm)
    {
        v = lgd_warp_sum(v);
        __syncthreads(); /* shm may still be read by a previous reduction */
        if (threadIdx.x % LGD_WARP == 0)
            shm[threadIdx.x / LGD_WARP] = v;
        __syncthreads();
        double t = 0.0;
        for (int w = 0; w < LGD_THREADS / LGD_WARP; w++)
            t += shm[w];
        return t;
    }
    static __device__ __forceinline__ float max(float v, double *shm)
    {
        v = lgd_warp_max(v);
        __syncthreads();
        if (threadIdx.x % LGD_WARP == 0)
            shm[threadIdx.x / LGD_WARP] = (double)v;
        __syncthreads();
        float t = -INFINITY;
        for (int w = 0; w < LGD_THREADS / LGD_WARP; w++)
            t = lgd_fmax_cpu(t, (float)shm[w]);
        return t;
    }
};

/* Loops r over the rows a group handles; the loop condition is uniform in a
 * group, so the group's reductions are reached by all of its threads. */
#define LGD_ROW_LOOP(G, r, rows)                                                        \
    for (size_t r = (size_t)blockIdx.x * (LGD_THREADS / (G)) + threadIdx.x / (G); r < (rows); \
         r += (size_t)gridDim.x * (LGD_THREADS / (G)))

/* Rows of more than this many columns get a whole block. */
#define LGD_LONG_ROW 512

/* Grid of a row kernel with G threads per row. */
static inline unsigned lgd_row_blocks(const lgd_backend *be, size_t rows, int G)
{
    size_t per_block = LGD_THREADS / (size_t)G;
    size_t blocks = (rows + per_block - 1) / per_block;
    size_t cap = (size_t)(be->sm_count > 0 ? be->sm_count : 16) * 64;
    if (blocks > cap)
        blocks = cap;
    return blocks ? (unsigned)blocks : 1u;
}

/* Launches KERNEL<G> with G = 32 or 256 depending on the row length. */
#define LGD_LAUNCH_ROWS(be, rows, cols, KERNEL, ...)                                    \
    do {                                                                                \
        if ((cols) > LGD_LONG_ROW)                                                      \
            KERNEL<LGD_THREADS><<<lgd_row_blocks((be), (rows), LGD_THREADS), LGD_THREADS, 0, \
                                  (be)->stream>>>(__VA_ARGS__);                         \
        else                                                                            \
            KERNEL<LGD_WARP><<<lgd_row_blocks((be), (rows), LGD_WARP), LGD_THREADS, 0,  \
                               (be)->stream>>>(__VA_ARGS__);                            \
        LGD_CUDA_LAUNCHED((be), #KERNEL);                                               \
    } while (0)

/* Launches KERNEL<uint32_t> or KERNEL<size_t> over n elements on the backend's stream
 * (32-bit indices, with cheaper divisions, whenever the count allows). */
#define LGD_LAUNCH_FLAT(be, n, KERNEL, ...)                                             \
    do {                                                                                \
        unsigned blocks_ = lgd_cuda_blocks((be), (n), LGD_THREADS);                     \
        if ((n) <= (size_t)UINT32_MAX - 2u * LGD_THREADS * (size_t)blocks_)             \
            KERNEL<uint32_t><<<blocks_, LGD_THREADS, 0, (be)->stream>>>(__VA_ARGS__);   \
        else                                                                            \
            KERNEL<size_t><<<blocks_, LGD_THREADS, 0, (be)->stream>>>(__VA_ARGS__);     \
        LGD_CUDA_LAUNCHED((be), #KERNEL);                                               \
    } while (0)

#endif
