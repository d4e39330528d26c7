/*
 * cpu_backend.c - the CPU tensor backend: host memory, OpenMP loops, CBLAS GEMM
 * (oneDNN's sgemm when built with it, cpu_dnnl.c), Philox random numbers.
 *
 * This is the reference implementation of every operation of backend/backend.h. The
 * kernels of single modules are not here: each module carries its CPU kernel table
 * (models/gmm_kernels_cpu.c, losses/loss_kernels_cpu.c, ...; the network layers are
 * cpu_layers.c and cpu_conv.c). Loops are written so that each output element is
 * computed by one thread in a fixed order: results do not depend on the thread count.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_nn.h"
#include "backend/cpu/cpu_parallel.h"
#include "core/philox.h"

static const char *cpu_name(lgd_backend *be) { return be->name; }

static void cpu_destroy(lgd_backend *be)
{
    lgd_cpu_dnnl_release(be);
    lgd_cpu_nn_release(be);
    free(be);
}

static void *cpu_alloc(lgd_backend *be, size_t bytes)
{
    (void)be;
    if (bytes == 0)
        bytes = 1;
    /* 64-byte alignment for vector loads; size rounded up as aligned_alloc requires */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes)
        return NULL;
    return aligned_alloc(64, rounded);
}

static void cpu_free(lgd_backend *be, void *p)
{
    (void)be;
    free(p);
}

static int cpu_memcpy(lgd_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes)
        memmove(dst, src, bytes);
    return 0;
}

static int cpu_synchronize(lgd_backend *be)
{
    (void)be;
    return 0;
}

static void cpu_fill(lgd_backend *be, float *x, size_t n, float value)
{
    LGD_CPU_FOR(n)
    for (size_t i = 0; i < n; i++)
        x[i] = value;
}

static void cpu_axpby(lgd_backend *be, size_t n, float a, const float *x, float b, float *y)
{
    if (b == 0.0f) {
        LGD_CPU_FOR(n)
        for (size_t i = 0; i < n; i++)
            y[i] = a * x[i];
    } else {
        LGD_CPU_FOR(n)
        for (size_t i = 0; i < n; i++)
            y[i] = a * x[i] + b * y[i];
    }
}

static void cpu_axpby_rows(lgd_backend *be, size_t rows, size_t cols, const float *a,
                           size_t a_stride, const float *x, float b, float *y)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        float ar = a[r * a_stride];
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        if (b == 0.0f)
            for (size_t j = 0; j < cols; j++)
                yr[j] = ar * xr[j];
        else
            for (size_t j = 0; j < cols; j++)
                yr[j] = ar * xr[j] + b * yr[j];
    }
}

static void cpu_sub_row(lgd_backend *be, size_t rows, size_t cols, const float *x,
                        const float *row, float *out)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++)
            out[r * cols + j] = x[r * cols + j] - row[j];
}

static void cpu_broadcast_axpy(lgd_backend *be, size_t rows, size_t repeat, size_t cols,
                               const float *x, float a, const float *y, float *out)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + (r / repeat) * cols;
        const float *yr = y + r * cols;
        float *o = out + r * cols;
        for (size_t j = 0; j < cols; j++)
            o[j] = xr[j] + a * yr[j];
    }
}

static void cpu_inv_sqrt_scale(lgd_backend *be, size_t n, float w, const float *in, float floor,
                               float *out)
{
    LGD_CPU_FOR(n)
    for (size_t i = 0; i < n; i++)
        out[i] = w / sqrtf(in[i] > floor ? in[i] : floor);
}

static void cpu_row_dot(lgd_backend *be, size_t rows, size_t cols, const float *x,
                                const float *y, float *out, size_t out_stride)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        double acc = 0.0;
        for (size_t j = 0; j < cols; j++)
            acc += (double)x[r * cols + j] * (double)y[r * cols + j];
        out[r * out_stride] = (float)acc;
    }
}


static void cpu_softmax_rows(lgd_backend *be, size_t rows, size_t cols, float *x)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * cols;
        float m = -INFINITY;
        for (size_t j = 0; j < cols; j++)
            m = xr[j] > m ? xr[j] : m;
        double s = 0.0;
        for (size_t j = 0; j < cols; j++) {
            xr[j] = expf(xr[j] - m);
            s += xr[j];
        }
        float inv = (float)(1.0 / s);
        for (size_t j = 0; j < cols; j++)
            xr[j] *= inv;
    }
}

static void cpu_softmax_rows_backward(lgd_backend *be, size_t rows, size_t K, const float *p,
                                      const float *d, float scale, float *out)
{
    LGD_CPU_FOR(rows * K * 4)
    for (size_t r = 0; r < rows; r++) {
        const float *pr = p + r * K, *dr = d + r * K;
        double mean = 0.0;
        for (size_t k = 0; k < K; k++)
            mean += (double)pr[k] * dr[k];
        for (size_t k = 0; k < K; k++)
            out[r * K + k] = (float)(scale * pr[k] * ((double)dr[k] - mean));
    }
}

static void cpu_logsumexp_rows(lgd_backend *be, size_t rows, size_t cols, const float *x,
                               float *out)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float m = -INFINITY;
        for (size_t j = 0; j < cols; j++)
            m = xr[j] > m ? xr[j] : m;
        double s = 0.0;
        for (size_t j = 0; j < cols; j++)
            s += exp((double)xr[j] - (double)m);
        out[r] = m + (float)log(s);
    }
}

static int cpu_all_finite(lgd_backend *be, const float *x, size_t n)
{
    int ok = 1;
#ifdef _OPENMP
#pragma omp parallel for num_threads(be->threads) if (n >= LGD_CPU_PAR_MIN_WORK) reduction(&& : ok)
#else
    (void)be;
#endif
    for (size_t i = 0; i < n; i++)
        ok = ok && isfinite(x[i]);
    return ok;
}

static void cpu_finite_flag(lgd_backend *be, const float *x, size_t n, float *flag)
{
    if (!cpu_all_finite(be, x, n))
        *flag = 1.0f;
}

/* Eight Philox4x32-10 blocks at consecutive 64-bit block indices blk..blk+7 (split
 * over counter words 0 and 2, as in cpu_normal), written lane-wise so the compiler
 * vectorises the rounds. Same results as lgd_philox4x32_10 lane by lane. */
#define PHILOX_LANES 8
static void philox_x8(uint64_t blk, uint32_t c1, uint32_t c3, uint64_t seed,
                      uint32_t out[4][PHILOX_LANES])
{
    uint32_t x0[PHILOX_LANES], x1[PHILOX_LANES], x2[PHILOX_LANES], x3[PHILOX_LANES];
    for (int l = 0; l < PHILOX_LANES; l++) {
        x0[l] = (uint32_t)(blk + (uint64_t)l);
        x1[l] = c1;
        x2[l] = (uint32_t)((blk + (uint64_t)l) >> 32);
        x3[l] = c3;
    }
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        for (int l = 0; l < PHILOX_LANES; l++) {
            uint64_t p0 = (uint64_t)0xD2511F53u * x0[l], p1 = (uint64_t)0xCD9E8D57u * x2[l];
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ x1[l] ^ k0;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ x3[l] ^ k1;
            x1[l] = (uint32_t)p1;
            x3[l] = (uint32_t)p0;
            x0[l] = n0;
            x2[l] = n2;
        }
    }
    for (int l = 0; l < PHILOX_LANES; l++) {
        out[0][l] = x0[l];
        out[1][l] = x1[l];
        out[2][l] = x2[l];
        out[3][l] = x3[l];
    }
}

/* normals of the flat per-row stream (see backend.h), or mean + scale * normals */
static void normal_stream(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                          size_t cols, const float *mean, float scale, float *out)
{
    uint32_t tag = lgd_rng_tag(s->purpose, s->step);
    uint64_t f0 = (uint64_t)s->first_draw * cols, n = (uint64_t)draws * cols;
    uint64_t blk0 = f0 / 4, blk1 = (f0 + n + 3) / 4; /* blocks touching [f0, f0 + n) */
    uint64_t per_row = blk1 - blk0, groups = (per_row + PHILOX_LANES - 1) / PHILOX_LANES;
    LGD_CPU_FOR(rows * n)
    for (size_t rg = 0; rg < rows * groups; rg++) {
        size_t r = rg / groups;
        uint64_t blk = blk0 + (rg % groups) * PHILOX_LANES;
        uint32_t w[4][PHILOX_LANES];
        philox_x8(blk, (uint32_t)(s->first_row + r), tag, s->seed, w);
        /* the group's normals, then the part of them inside [f0, f0 + n) */
        float z[4 * PHILOX_LANES];
        uint64_t fa = blk * 4, fb = (blk + PHILOX_LANES) * 4;
        fb = fb < blk1 * 4 ? fb : blk1 * 4;
        for (uint64_t l = 0; l < (fb - fa) / 4; l++) {
            lgd_box_muller(w[0][l], w[1][l], &z[4 * l], &z[4 * l + 1]);
            lgd_box_muller(w[2][l], w[3][l], &z[4 * l + 2], &z[4 * l + 3]);
        }
        uint64_t a = fa > f0 ? fa : f0, b = fb < f0 + n ? fb : f0 + n;
        if (a >= b)
            continue;
        float *o = out + r * n + (a - f0);
        const float *zz = z + (a - fa);
        size_t cnt = (size_t)(b - a);
        if (mean) {
            const float *mr = mean + r * cols;
            size_t c = (size_t)(a % cols); /* one division per group, not per value */
            for (size_t i = 0; i < cnt; i++) {
                o[i] = mr[c] + scale * zz[i];
                if (++c == cols)
                    c = 0;
            }
        } else {
            memcpy(o, zz, cnt * sizeof *o);
        }
    }
}

static void cpu_normal(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                       size_t cols, float *out)
{
    normal_stream(be, s, rows, draws, cols, NULL, 0.0f, out);
}

static void cpu_normal_around(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                         size_t cols, const float *mean, float scale, float *out)
{
    if (scale != 0.0f) {
        normal_stream(be, s, rows, draws, cols, mean, scale, out);
        return;
    }
    LGD_CPU_FOR(rows * draws * cols)
    for (size_t rj = 0; rj < rows * draws; rj++)
        memcpy(out + rj * cols, mean + (rj / draws) * cols, cols * sizeof(float));
}

static void cpu_uniform(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                        float *out)
{
    uint32_t tag = lgd_rng_tag(s->purpose, s->step);
    size_t n = rows * draws;
    LGD_CPU_FOR(n * 16)
    for (size_t rj = 0; rj < n; rj++) {
        size_t r = rj / draws, j = rj % draws;
        lgd_philox_block b =
            lgd_philox4x32_10(0u, (uint32_t)(s->first_row + r), (uint32_t)(s->first_draw + j),
                              tag, (uint32_t)s->seed, (uint32_t)(s->seed >> 32));
        out[rj] = lgd_u32_to_uniform_open(b.v[0]);
    }
}

static void cpu_categorical(lgd_backend *be, size_t rows, size_t draws, size_t K,
                            const float *prob, const float *u, int32_t *idx)
{
    LGD_CPU_FOR(rows * draws * K)
    for (size_t r = 0; r < rows; r++) {
        const float *p = prob + r * K;
        for (size_t j = 0; j < draws; j++) {
            float target = u[r * draws + j], c = 0.0f;
            int32_t k = (int32_t)K - 1;
            for (size_t i = 0; i < K; i++) {
                c += p[i];
                if (c > target) {
                    k = (int32_t)i;
                    break;
                }
            }
            idx[r * draws + j] = k;
        }
    }
}

static void cpu_select_rows(lgd_backend *be, size_t n, size_t cols, const int32_t *idx,
                            int32_t k, const float *src, float *dst)
{
    LGD_CPU_FOR(n * cols)
    for (size_t r = 0; r < n; r++)
        if (idx[r] == k)
            memcpy(dst + r * cols, src + r * cols, cols * sizeof(float));
}

static const lgd_backend_ops cpu_ops = {
    .abi_version = LGD_BACKEND_ABI_VERSION,
    .name = cpu_name,
    .host_memory = 1,
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .copy = cpu_memcpy,
    .synchronize = cpu_synchronize,
    .native_stream = NULL,
    .last_error = NULL,
    .fill = cpu_fill,
    .axpby = cpu_axpby,
    .axpby_rows = cpu_axpby_rows,
    .sub_row = cpu_sub_row,
    .broadcast_axpy = cpu_broadcast_axpy,
    .inv_sqrt_scale = cpu_inv_sqrt_scale,
    .copy_rows = lgd_cpu_copy_rows,
    .transpose = lgd_cpu_transpose,
    .row_dot = cpu_row_dot,
    .softmax_rows = cpu_softmax_rows,
    .softmax_rows_backward = cpu_softmax_rows_backward,
    .logsumexp_rows = cpu_logsumexp_rows,
    .all_finite = cpu_all_finite,
    .finite_flag = cpu_finite_flag,
    .gemm = lgd_cpu_sgemm,
    .gemm_batched = lgd_cpu_gemm_batched,
    .normal = cpu_normal,
    .normal_around = cpu_normal_around,
    .uniform = cpu_uniform,
    .categorical = cpu_categorical,
    .select_rows = cpu_select_rows,
    .kernels = NULL, /* modules carry the CPU's kernel tables (core/kernels.h) */
};


int lgd_cpu_backend_open(int threads, lgd_backend **out_be, const lgd_backend_ops **out_ops)
{
    lgd_backend *be = calloc(1, sizeof *be);
    if (!be)
        return -1;
#ifdef _OPENMP
    be->threads = threads > 0 ? threads : omp_get_max_threads();
#else
    be->threads = 1;
    (void)threads;
#endif
    lgd_cpu_dnnl_init(be); /* be->onednn, from LGD_CPU_ONEDNN */
    snprintf(be->name, sizeof be->name, "cpu (openblas%s, %d threads)",
             be->onednn ? " + onednn" : "", be->threads);
    *out_be = be;
    *out_ops = &cpu_ops;
    return 0;
}
