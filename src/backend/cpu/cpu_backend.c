/*
 * backend_cpu.c - the CPU tensor backend: host memory, OpenMP loops, CBLAS GEMM
 * (oneDNN's sgemm when built with it, backend_cpu_dnnl.c).
 *
 * This is the reference implementation of every backend operation. Loops are
 * written so that each output element is computed by one thread in a fixed
 * order: results do not depend on the thread count.
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
#include "backend/cpu/cpu_backend.h" /* struct lgd_backend, the network layers */
#include "core/philox.h"

/* Parallelise only loops with enough work to pay for waking the threads. */
#define PAR_MIN_WORK 32768
#define LGD_PRAGMA(x) _Pragma(#x)

#ifdef _OPENMP
#define OMP_FOR(work) \
    LGD_PRAGMA(omp parallel for num_threads(be->threads) if ((work) >= 32768) schedule(static))
#else
/* without OpenMP `be` may be otherwise unused (-Werror=unused-parameter) */
#define OMP_FOR(work) (void)be;
#endif

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

static void *cpu_native_stream(lgd_backend *be)
{
    (void)be;
    return NULL;
}

static void cpu_fill(lgd_backend *be, float *x, size_t n, float value)
{
    OMP_FOR(n)
    for (size_t i = 0; i < n; i++)
        x[i] = value;
}

static void cpu_axpby(lgd_backend *be, size_t n, float a, const float *x, float b, float *y)
{
    if (b == 0.0f) {
        OMP_FOR(n)
        for (size_t i = 0; i < n; i++)
            y[i] = a * x[i];
    } else {
        OMP_FOR(n)
        for (size_t i = 0; i < n; i++)
            y[i] = a * x[i] + b * y[i];
    }
}

static void cpu_axpby_rows(lgd_backend *be, size_t rows, size_t cols, const float *a,
                           size_t a_stride, const float *x, float b, float *y)
{
    OMP_FOR(rows * cols)
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
    OMP_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++)
            out[r * cols + j] = x[r * cols + j] - row[j];
}

static void cpu_broadcast_axpy(lgd_backend *be, size_t rows, size_t repeat, size_t cols,
                               const float *x, float a, const float *y, float *out)
{
    OMP_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + (r / repeat) * cols;
        const float *yr = y + r * cols;
        float *o = out + r * cols;
        for (size_t j = 0; j < cols; j++)
            o[j] = xr[j] + a * yr[j];
    }
}

static float diag_factor(lgd_diag_filter filter, float l, float s2)
{
    switch (filter) {
    case LGD_FILTER_SHRINK: return l / (l + s2);
    case LGD_FILTER_PRECISION: return 1.0f / (l + s2);
    default: return sqrtf(l * s2 / (l + s2));
    }
}

static void cpu_diag_filter(lgd_backend *be, lgd_diag_filter filter, size_t rows, size_t cols,
                            const float *lam, float s2, const float *in, float *out)
{
    /* the factors once per call (a division per element would dominate) */
    float *f = malloc(cols * sizeof *f);
    if (f)
        for (size_t j = 0; j < cols; j++)
            f[j] = diag_factor(filter, lam[j], s2);
    OMP_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        const float *ir = in + r * cols;
        float *o = out + r * cols;
        if (f)
            for (size_t j = 0; j < cols; j++)
                o[j] = f[j] * ir[j];
        else
            for (size_t j = 0; j < cols; j++)
                o[j] = diag_factor(filter, lam[j], s2) * ir[j];
    }
    free(f);
}

static void cpu_inv_sqrt_scale(lgd_backend *be, size_t n, float w, const float *in, float floor,
                               float *out)
{
    OMP_FOR(n)
    for (size_t i = 0; i < n; i++)
        out[i] = w / sqrtf(in[i] > floor ? in[i] : floor);
}

static void cpu_row_dot_strided(lgd_backend *be, size_t rows, size_t cols, const float *x,
                                const float *y, float *out, size_t out_stride)
{
    OMP_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        double acc = 0.0;
        for (size_t j = 0; j < cols; j++)
            acc += (double)x[r * cols + j] * (double)y[r * cols + j];
        out[r * out_stride] = (float)acc;
    }
}

static void cpu_row_dot(lgd_backend *be, size_t rows, size_t cols, const float *x,
                        const float *y, float *out)
{
    cpu_row_dot_strided(be, rows, cols, x, y, out, 1);
}

static void cpu_mix_coeffs(lgd_backend *be, size_t rows, size_t K, const float *p,
                           const float *d, float scale, float *out)
{
    OMP_FOR(rows * K * 4)
    for (size_t r = 0; r < rows; r++) {
        const float *pr = p + r * K, *dr = d + r * K;
        double mean = 0.0;
        for (size_t k = 0; k < K; k++)
            mean += (double)pr[k] * dr[k];
        for (size_t k = 0; k < K; k++)
            out[r * K + k] = (float)(scale * pr[k] * ((double)dr[k] - mean));
    }
}

static void cpu_gaussian_logp(lgd_backend *be, size_t rows, size_t cols, const float *x,
                              const float *lam, float s2, float c, float *out,
                              size_t out_stride)
{
    OMP_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        double acc = 0.0;
        for (size_t j = 0; j < cols; j++) {
            double v = x[r * cols + j];
            acc += v * v / ((double)lam[j] + (double)s2);
        }
        out[r * out_stride] = (float)((double)c - 0.5 * acc);
    }
}

static void cpu_softmax_rows(lgd_backend *be, size_t rows, size_t cols, float *x)
{
    OMP_FOR(rows * cols)
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

static void cpu_logsumexp_rows(lgd_backend *be, size_t rows, size_t cols, const float *x,
                               float *out)
{
    OMP_FOR(rows * cols)
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
#pragma omp parallel for num_threads(be->threads) if (n >= PAR_MIN_WORK) reduction(&& : ok)
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
    OMP_FOR(rows * n)
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

static void cpu_mc_draws(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                         size_t cols, const float *mean, float scale, float *out)
{
    if (scale != 0.0f) {
        normal_stream(be, s, rows, draws, cols, mean, scale, out);
        return;
    }
    OMP_FOR(rows * draws * cols)
    for (size_t rj = 0; rj < rows * draws; rj++)
        memcpy(out + rj * cols, mean + (rj / draws) * cols, cols * sizeof(float));
}

static void cpu_uniform(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                        float *out)
{
    uint32_t tag = lgd_rng_tag(s->purpose, s->step);
    size_t n = rows * draws;
    OMP_FOR(n * 16)
    for (size_t rj = 0; rj < n; rj++) {
        size_t r = rj / draws, j = rj % draws;
        lgd_philox_block b =
            lgd_philox4x32_10(0u, (uint32_t)(s->first_row + r), (uint32_t)(s->first_draw + j),
                              tag, (uint32_t)s->seed, (uint32_t)(s->seed >> 32));
        out[rj] = lgd_u32_to_uniform_open(b.v[0]);
    }
}

static void cpu_mc_reset(lgd_backend *be, size_t rows, size_t cols, lgd_mc_state *st)
{
    for (size_t r = 0; r < rows; r++) {
        st->max[r] = -INFINITY;
        st->sum[r] = 0.0f;
        st->sum2[r] = 0.0f;
        st->wloss[r] = 0.0f;
        st->lsum[r] = 0.0f;
    }
    cpu_fill(be, st->vec, rows * cols, 0.0f);
}

static void cpu_mc_accumulate(lgd_backend *be, size_t rows, size_t draws, size_t cols,
                              const float *loss, const float *vec, lgd_mc_state *st)
{
    OMP_FOR(rows * draws * cols)
    for (size_t r = 0; r < rows; r++) {
        const float *l = loss + r * draws;
        float m = st->max[r];
        for (size_t j = 0; j < draws; j++)
            m = -l[j] > m ? -l[j] : m;
        /* rescale the running sums to the new max */
        float scale = (st->max[r] == -INFINITY) ? 0.0f : expf(st->max[r] - m);
        float sum = st->sum[r] * scale;
        float sum2 = st->sum2[r] * scale * scale;
        float wloss = st->wloss[r] * scale;
        float lsum = st->lsum[r];
        float *acc = st->vec + r * cols;
        if (scale != 1.0f)
            for (size_t e = 0; e < cols; e++)
                acc[e] *= scale;
        for (size_t j = 0; j < draws; j++) {
            float w = expf(-l[j] - m);
            sum += w;
            sum2 += w * w;
            wloss += w * l[j];
            lsum += l[j];
            const float *v = vec + (r * draws + j) * cols;
            for (size_t e = 0; e < cols; e++)
                acc[e] += w * v[e];
        }
        st->max[r] = m;
        st->sum[r] = sum;
        st->sum2[r] = sum2;
        st->wloss[r] = wloss;
        st->lsum[r] = lsum;
    }
}

static void cpu_mc_finish(lgd_backend *be, size_t rows, size_t cols, lgd_mc_state *st,
                          float *out, float *ess)
{
    OMP_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        float inv = 1.0f / st->sum[r];
        for (size_t e = 0; e < cols; e++)
            out[r * cols + e] = st->vec[r * cols + e] * inv;
        ess[r] = st->sum[r] * st->sum[r] / st->sum2[r];
        st->wloss[r] *= inv;
    }
}

static void cpu_categorical(lgd_backend *be, size_t rows, size_t draws, size_t K,
                            const float *prob, const float *u, int32_t *idx)
{
    OMP_FOR(rows * draws * K)
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
    OMP_FOR(n * cols)
    for (size_t r = 0; r < n; r++)
        if (idx[r] == k)
            memcpy(dst + r * cols, src + r * cols, cols * sizeof(float));
}

static void cpu_loss_sqerr(lgd_backend *be, size_t rows, size_t cols, const float *x,
                           const float *target, size_t target_rows, size_t per_target,
                           const float *weights, float *loss, float *grad)
{
    OMP_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        const float *t = target + ((r / per_target) % target_rows) * cols;
        const float *xr = x + r * cols;
        double acc = 0.0;
        for (size_t j = 0; j < cols; j++) {
            float d = xr[j] - t[j];
            float w = weights ? weights[j] : 1.0f;
            acc += (double)w * d * d;
            if (grad)
                grad[r * cols + j] = 2.0f * w * d;
        }
        loss[r] = (float)acc;
    }
}

/* softplus(t) = log(1 + e^t), stable for large |t| */
static float softplusf(float t) { return t > 0 ? t + log1pf(expf(-t)) : log1pf(expf(t)); }
static float sigmoidf(float t)
{
    return t >= 0 ? 1.0f / (1.0f + expf(-t)) : expf(t) / (1.0f + expf(t));
}

static void cpu_loss_logistic(lgd_backend *be, size_t rows, size_t cols, const float *x,
                              const float *a, float b, float *loss, float *grad)
{
    OMP_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        double z = b;
        for (size_t j = 0; j < cols; j++)
            z += (double)a[j] * x[r * cols + j];
        loss[r] = softplusf(-(float)z);
        if (grad) {
            float s = -sigmoidf(-(float)z);
            for (size_t j = 0; j < cols; j++)
                grad[r * cols + j] = s * a[j];
        }
    }
}

static void cpu_loss_trajectory(lgd_backend *be, size_t rows, size_t cols, const float *x,
                                const lgd_traj_params *p, float *loss, float *grad)
{
    OMP_FOR(rows * p->frames * (4 + p->n_obstacles))
    for (size_t r = 0; r < rows; r++)
        lgd_traj_row(p, cols, x + r * cols, r, loss + r, grad ? grad + r * cols : NULL);
}

static void cpu_loss_residual(lgd_backend *be, size_t rows, size_t m, const float *y,
                              size_t target_rows, size_t per_target, float inv_s2, float *hx,
                              float *loss)
{
    OMP_FOR(rows * m)
    for (size_t r = 0; r < rows; r++) {
        const float *yr = y + ((r / per_target) % target_rows) * m;
        float *h = hx + r * m;
        double acc = 0.0;
        for (size_t j = 0; j < m; j++) {
            float d = h[j] - yr[j];
            acc += (double)d * d;
            h[j] = d * inv_s2;
        }
        loss[r] = (float)(0.5 * acc * inv_s2);
    }
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
    .native_stream = cpu_native_stream,
    .fill = cpu_fill,
    .axpby = cpu_axpby,
    .axpby_rows = cpu_axpby_rows,
    .sub_row = cpu_sub_row,
    .broadcast_axpy = cpu_broadcast_axpy,
    .diag_filter = cpu_diag_filter,
    .inv_sqrt_scale = cpu_inv_sqrt_scale,
    .row_dot = cpu_row_dot,
    .row_dot_strided = cpu_row_dot_strided,
    .mix_coeffs = cpu_mix_coeffs,
    .gaussian_logp = cpu_gaussian_logp,
    .softmax_rows = cpu_softmax_rows,
    .logsumexp_rows = cpu_logsumexp_rows,
    .all_finite = cpu_all_finite,
    .finite_flag = cpu_finite_flag,
    .gemm = lgd_cpu_sgemm,
    .normal = cpu_normal,
    .mc_draws = cpu_mc_draws,
    .uniform = cpu_uniform,
    .mc_reset = cpu_mc_reset,
    .mc_accumulate = cpu_mc_accumulate,
    .mc_finish = cpu_mc_finish,
    .categorical = cpu_categorical,
    .select_rows = cpu_select_rows,
    .loss_sqerr = cpu_loss_sqerr,
    .loss_logistic = cpu_loss_logistic,
    .loss_residual = cpu_loss_residual,
    .loss_trajectory = cpu_loss_trajectory,
    /* network layers (backend_cpu_nn.c) */
    .gemm_batched = lgd_cpu_gemm_batched,
    .conv2d_forward = lgd_cpu_conv2d_forward,
    .conv2d_backward_data = lgd_cpu_conv2d_backward_data,
    .add_channel_bias = lgd_cpu_add_channel_bias,
    .scale_shift = lgd_cpu_scale_shift,
    .scale_shift_backward = lgd_cpu_scale_shift_backward,
    .activation = lgd_cpu_activation,
    .activation_backward = lgd_cpu_activation_backward,
    .group_norm = lgd_cpu_group_norm,
    .group_norm_backward = lgd_cpu_group_norm_backward,
    .upsample_nearest = lgd_cpu_upsample_nearest,
    .upsample_nearest_backward = lgd_cpu_upsample_nearest_backward,
    .avg_pool = lgd_cpu_avg_pool,
    .avg_pool_backward = lgd_cpu_avg_pool_backward,
    .copy_rows = lgd_cpu_copy_rows,
    .transpose = lgd_cpu_transpose,
    .time_embedding = lgd_cpu_time_embedding,
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
