/*
 * kernels_mc.cu - the guidance's Monte Carlo reductions on CUDA ("mc",
 * sampling/mc_kernels.h): the online log-sum-exp over draws that LGD-MC and the exact
 * estimator fold their draws into, chunk by chunk. The CPU's table is
 * sampling/mc_kernels_cpu.c.
 *
 * accumulate gives each row a block. The block finds the new running max,
 * rescales the row's accumulator, and folds the draws in the CPU's order: the
 * weights w_j = exp(-l_j - max) of a tile of draws go to shared memory, each
 * thread adds w_j v_j[e] for its columns e draw after draw, and thread 0 keeps
 * the scalar sums (sum, sum2, wloss, lsum) sequentially, as the CPU does.
 */
#include "cuda_kernels.cuh"
#include "kernel_tables.h"
#include "sampling/mc_kernels.h"

#define MC_TILE 256 /* draws whose weights sit in shared memory at once */

__global__ void mc_reset_kernel(size_t rows, size_t cols, size_t n, float *max, float *sum,
                                float *sum2, float *wloss, float *lsum, float *vec)
{
    LGD_GRID_STRIDE(size_t, i, n) {
        if (i < rows * cols)
            vec[i] = 0.0f;
        if (i < rows) {
            max[i] = -INFINITY;
            sum[i] = 0.0f;
            sum2[i] = 0.0f;
            wloss[i] = 0.0f;
            lsum[i] = 0.0f;
        }
    }
}

static void cuda_mc_reset(lgd_backend *be, size_t rows, size_t cols, lgd_mc_state *st)
{
    size_t n = rows * cols > rows ? rows * cols : rows;
    if (n == 0)
        return;
    lgd_cuda_enter(be);
    mc_reset_kernel<<<lgd_cuda_blocks(be, n, LGD_THREADS), LGD_THREADS, 0, be->stream>>>(
        rows, cols, n, st->max, st->sum, st->sum2, st->wloss, st->lsum, st->vec);
    LGD_CUDA_LAUNCHED(be, "mc_reset_kernel");
}

__global__ void mc_accumulate_kernel(size_t rows, size_t draws, size_t cols, const float *loss,
                                     const float *vec, float *st_max, float *st_sum,
                                     float *st_sum2, float *st_wloss, float *st_lsum,
                                     float *st_vec)
{
    __shared__ double shm[LGD_THREADS / LGD_WARP];
    __shared__ float w[MC_TILE];
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *l = loss + r * draws;
        const float old_max = st_max[r];
        float m = old_max;
        for (size_t j = threadIdx.x; j < draws; j += blockDim.x)
            m = lgd_fmax_cpu(m, -l[j]);
        m = lgd_group<LGD_THREADS>::max(m, shm);
        /* rescale the running sums to the new max */
        float scale = (old_max == -INFINITY) ? 0.0f : expf(old_max - m);
        float sum = 0.0f, sum2 = 0.0f, wloss = 0.0f, lsum = 0.0f;
        if (threadIdx.x == 0) {
            sum = st_sum[r] * scale;
            sum2 = st_sum2[r] * scale * scale;
            wloss = st_wloss[r] * scale;
            lsum = st_lsum[r];
        }
        float *acc = st_vec + r * cols;
        if (scale != 1.0f)
            for (size_t e = threadIdx.x; e < cols; e += blockDim.x)
                acc[e] *= scale;
        for (size_t j0 = 0; j0 < draws; j0 += MC_TILE) {
            size_t nt = draws - j0 < MC_TILE ? draws - j0 : MC_TILE;
            __syncthreads(); /* the previous tile's weights are no longer read */
            for (size_t t = threadIdx.x; t < nt; t += blockDim.x)
                w[t] = expf(-l[j0 + t] - m);
            __syncthreads();
            if (threadIdx.x == 0)
                for (size_t t = 0; t < nt; t++) {
                    float lj = l[j0 + t];
                    sum += w[t];
                    sum2 += w[t] * w[t];
                    wloss += w[t] * lj;
                    lsum += lj;
                }
            const float *v = vec + (r * draws + j0) * cols;
            for (size_t e = threadIdx.x; e < cols; e += blockDim.x) {
                float a = acc[e];
                for (size_t t = 0; t < nt; t++)
                    a += w[t] * v[t * cols + e];
                acc[e] = a;
            }
        }
        if (threadIdx.x == 0) {
            st_max[r] = m;
            st_sum[r] = sum;
            st_sum2[r] = sum2;
            st_wloss[r] = wloss;
            st_lsum[r] = lsum;
        }
        __syncthreads(); /* st_max[r] is read by all before the next row's writes */
    }
}

static void cuda_mc_accumulate(lgd_backend *be, size_t rows, size_t draws, size_t cols,
                               const float *loss, const float *vec, lgd_mc_state *st)
{
    if (rows == 0 || draws == 0)
        return;
    lgd_cuda_enter(be);
    size_t cap = (size_t)(be->sm_count > 0 ? be->sm_count : 16) * 32;
    unsigned grid = (unsigned)(rows < cap ? rows : cap);
    mc_accumulate_kernel<<<grid, LGD_THREADS, 0, be->stream>>>(
        rows, draws, cols, loss, vec, st->max, st->sum, st->sum2, st->wloss, st->lsum, st->vec);
    LGD_CUDA_LAUNCHED(be, "mc_accumulate_kernel");
}

__global__ void mc_finish_kernel(size_t rows, size_t cols, size_t n, const float *sum,
                                 const float *sum2, float *wloss, const float *vec, float *out,
                                 float *ess)
{
    LGD_GRID_STRIDE(size_t, i, n) {
        if (i < rows * cols) {
            float inv = 1.0f / sum[i / cols];
            out[i] = vec[i] * inv;
        }
        if (i < rows) {
            float inv = 1.0f / sum[i];
            ess[i] = sum[i] * sum[i] / sum2[i];
            wloss[i] *= inv;
        }
    }
}

static void cuda_mc_finish(lgd_backend *be, size_t rows, size_t cols, lgd_mc_state *st,
                           float *out, float *ess)
{
    size_t n = rows * cols > rows ? rows * cols : rows;
    if (n == 0)
        return;
    lgd_cuda_enter(be);
    mc_finish_kernel<<<lgd_cuda_blocks(be, n, LGD_THREADS), LGD_THREADS, 0, be->stream>>>(
        rows, cols, n, st->sum, st->sum2, st->wloss, st->vec, out, ess);
    LGD_CUDA_LAUNCHED(be, "mc_finish_kernel");
}

extern "C" const lgd_mc_kernels lgd_cuda_mc_kernels = {
    .reset = cuda_mc_reset,
    .accumulate = cuda_mc_accumulate,
    .finish = cuda_mc_finish,
    .fused = NULL, /* the fused loop is the CPU's: a device runs the three kernels */
    .fused_exact = NULL,
};
