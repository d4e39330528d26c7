/*
 * ops_random.cu - the backend table's Philox random numbers (normal, normal_around,
 * uniform) and categorical draws.
 *
 * The generator and the uniform/normal maps are core/philox.h, compiled here as
 * __host__ __device__ code (LGD_HD of core/hd_math.h), with the counter layout of the
 * CPU backend (backend/backend.h): each row's draws are one flat stream
 * f = (first_draw + j) * cols + e, counter (f / 4, first_row + r, f / 4 >> 32,
 * purpose << 24 | step), key = the seed's two 32-bit halves. The numbers therefore
 * equal the CPU's up to the last-ulp differences of logf/cosf/sinf in Box-Muller.
 */
#include "cuda_kernels.cuh"
#include "core/philox.h"

/* One thread per Philox block: 4 consecutive normals of row r's flat stream
 * f = (first_draw + j) * cols + e (see backend.h). */
template <typename I>
__global__ void normal_kernel(uint64_t seed, uint32_t tag, uint64_t first_row, uint64_t f0,
                              uint64_t n, uint64_t blk0, size_t per_row, size_t units, int vec4,
                              const float *mean, size_t cols, float scale, float *out)
{
    LGD_GRID_STRIDE(I, u, units) {
        I r = u / (I)per_row;
        uint64_t blk = blk0 + (uint64_t)(u - r * (I)per_row);
        float z[4];
        lgd_philox_normal4((uint32_t)blk, (uint32_t)(first_row + (uint64_t)r),
                           (uint32_t)(blk >> 32), tag, seed, z);
        float *o = out + (size_t)r * n;
        if (mean) { /* normal_around: mean[r][f % cols] + scale * z */
            const float *mr = mean + (size_t)r * cols;
            for (uint64_t e = 0; e < 4; e++) {
                uint64_t f = blk * 4 + e;
                if (f >= f0 && f < f0 + n)
                    o[f - f0] = mr[f % cols] + scale * z[e];
            }
        } else if (vec4) {
            *(float4 *)(o + (blk * 4 - f0)) = make_float4(z[0], z[1], z[2], z[3]);
        } else {
            for (uint64_t e = 0; e < 4; e++) {
                uint64_t f = blk * 4 + e;
                if (f >= f0 && f < f0 + n)
                    o[f - f0] = z[e];
            }
        }
    }
}

static void launch_normal(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                          size_t cols, const float *mean, float scale, float *out)
{
    uint64_t f0 = (uint64_t)s->first_draw * cols, n = (uint64_t)draws * cols;
    uint64_t blk0 = f0 / 4, per_row = (f0 + n + 3) / 4 - blk0;
    size_t units = rows * (size_t)per_row;
    if (units == 0 || n == 0)
        return;
    lgd_cuda_enter(be);
    uint32_t tag = lgd_rng_tag(s->purpose, s->step);
    int vec4 = f0 % 4 == 0 && n % 4 == 0 && ((uintptr_t)out % 16) == 0;
    unsigned grid = lgd_cuda_blocks(be, units, LGD_THREADS);
    if (units <= (size_t)UINT32_MAX - 2u * LGD_THREADS * (size_t)grid)
        normal_kernel<uint32_t><<<grid, LGD_THREADS, 0, be->stream>>>(
            s->seed, tag, s->first_row, f0, n, blk0, (size_t)per_row, units, vec4, mean, cols,
            scale, out);
    else
        normal_kernel<size_t><<<grid, LGD_THREADS, 0, be->stream>>>(
            s->seed, tag, s->first_row, f0, n, blk0, (size_t)per_row, units, vec4, mean, cols,
            scale, out);
    LGD_CUDA_LAUNCHED(be, "normal_kernel");
}

extern "C" void lgd_cuda_normal(lgd_backend *be, const lgd_rng_stream *s, size_t rows,
                                size_t draws, size_t cols, float *out)
{
    launch_normal(be, s, rows, draws, cols, NULL, 0.0f, out);
}

/* scale = 0: every draw is the mean row */
__global__ void repeat_rows_kernel(const float *mean, size_t draws, size_t cols, size_t n,
                                   float *out)
{
    LGD_GRID_STRIDE(size_t, i, n) {
        size_t e = i % cols, rj = i / cols;
        out[i] = mean[(rj / draws) * cols + e];
    }
}

extern "C" void lgd_cuda_normal_around(lgd_backend *be, const lgd_rng_stream *s, size_t rows,
                                       size_t draws, size_t cols, const float *mean,
                                       float scale, float *out)
{
    if (scale != 0.0f) {
        launch_normal(be, s, rows, draws, cols, mean, scale, out);
        return;
    }
    size_t n = rows * draws * cols;
    if (n == 0)
        return;
    lgd_cuda_enter(be);
    repeat_rows_kernel<<<lgd_cuda_blocks(be, n, LGD_THREADS), LGD_THREADS, 0, be->stream>>>(
        mean, draws, cols, n, out);
    LGD_CUDA_LAUNCHED(be, "repeat_rows_kernel");
}

/* One uniform in (0, 1) per (r, j), from word 0 of the block with element counter 0. */
__global__ void uniform_kernel(uint64_t seed, uint32_t tag, uint64_t first_row,
                               uint32_t first_draw, size_t draws, size_t n, float *out)
{
    LGD_GRID_STRIDE(size_t, rj, n) {
        size_t r = rj / draws, j = rj % draws;
        lgd_philox_block b =
            lgd_philox4x32_10(0u, (uint32_t)(first_row + r), (uint32_t)(first_draw + j), tag,
                              (uint32_t)seed, (uint32_t)(seed >> 32));
        out[rj] = lgd_u32_to_uniform_open(b.v[0]);
    }
}

extern "C" void lgd_cuda_uniform(lgd_backend *be, const lgd_rng_stream *s, size_t rows,
                                 size_t draws, float *out)
{
    size_t n = rows * draws;
    if (n == 0)
        return;
    lgd_cuda_enter(be);
    uint32_t tag = lgd_rng_tag(s->purpose, s->step);
    uniform_kernel<<<lgd_cuda_blocks(be, n, LGD_THREADS), LGD_THREADS, 0, be->stream>>>(
        s->seed, tag, s->first_row, s->first_draw, draws, n, out);
    LGD_CUDA_LAUNCHED(be, "uniform_kernel");
}

/* idx[r][j] = first k with cumsum(prob[r][:k+1]) > u[r][j], else K - 1; the cumulative
 * sum runs in float in the CPU's order. */
__global__ void categorical_kernel(size_t draws, size_t K, size_t n, const float *prob,
                                   const float *u, int32_t *idx)
{
    LGD_GRID_STRIDE(size_t, rj, n) {
        const float *p = prob + (rj / draws) * K;
        float target = u[rj], c = 0.0f;
        int32_t k = (int32_t)K - 1;
        for (size_t i = 0; i < K; i++) {
            c += p[i];
            if (c > target) {
                k = (int32_t)i;
                break;
            }
        }
        idx[rj] = k;
    }
}

extern "C" void lgd_cuda_categorical(lgd_backend *be, size_t rows, size_t draws, size_t K,
                                     const float *prob, const float *u, int32_t *idx)
{
    size_t n = rows * draws;
    if (n == 0)
        return;
    lgd_cuda_enter(be);
    categorical_kernel<<<lgd_cuda_blocks(be, n, LGD_THREADS), LGD_THREADS, 0, be->stream>>>(
        draws, K, n, prob, u, idx);
    LGD_CUDA_LAUNCHED(be, "categorical_kernel");
}
