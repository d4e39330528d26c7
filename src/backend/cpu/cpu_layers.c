/*
 * cpu_layers.c - the CPU's network-layer kernels other than convolution (the table
 * lgd_nn_kernels_cpu of nn/nn_kernels.h): per-channel bias and scale-shift, SiLU and
 * GELU, group norm, the fused channel add + group norm + activation (issue 16; the
 * graph executor's fusion, nn/nn_graph.c), nearest upsampling, average pooling, the time
 * embedding.
 *
 * Every output element is computed by one thread in a fixed order, so results do not
 * depend on the backend's thread count. Every *_backward writes dx = result + beta dx;
 * with beta = 0 the old content of dx is never read (it may be NaN).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_nn.h"
#include "backend/cpu/cpu_parallel.h"
#include "core/hd_math.h"

/* ------------------------------------------------------------------ per-channel affine */

void lgd_cpu_add_channel_bias(lgd_backend *be, size_t n, size_t c, size_t s, const float *b,
                              size_t b_stride, float *y)
{
    if (s == 1) {
        /* a linear layer's bias: rows of c */
        LGD_CPU_FOR(n * c)
        for (size_t i = 0; i < n; i++) {
            const float *bi = b + i * b_stride;
            float *yr = y + i * c;
            for (size_t k = 0; k < c; k++)
                yr[k] += bi[k];
        }
        return;
    }
    LGD_CPU_FOR(n * c * s)
    for (size_t ic = 0; ic < n * c; ic++) {
        float bv = b[(ic / c) * b_stride + ic % c], *yr = y + ic * s;
        for (size_t k = 0; k < s; k++)
            yr[k] += bv;
    }
}

void lgd_cpu_scale_shift(lgd_backend *be, size_t n, size_t c, size_t s, const float *x,
                         const float *scale, const float *shift, size_t stride, float *y)
{
    LGD_CPU_FOR(n * c * s)
    for (size_t ic = 0; ic < n * c; ic++) {
        size_t k0 = (ic / c) * stride + ic % c;
        float a = 1.0f + scale[k0], sh = shift ? shift[k0] : 0.0f;
        const float *xr = x + ic * s;
        float *yr = y + ic * s;
        for (size_t k = 0; k < s; k++)
            yr[k] = xr[k] * a + sh;
    }
}

void lgd_cpu_scale_shift_backward(lgd_backend *be, size_t n, size_t c, size_t s,
                                  const float *dy, const float *scale, size_t stride,
                                  float beta, float *dx)
{
    LGD_CPU_FOR(n * c * s)
    for (size_t ic = 0; ic < n * c; ic++) {
        float a = 1.0f + scale[(ic / c) * stride + ic % c];
        const float *dr = dy + ic * s;
        float *xr = dx + ic * s;
        if (beta == 0.0f)
            for (size_t k = 0; k < s; k++)
                xr[k] = dr[k] * a;
        else
            for (size_t k = 0; k < s; k++)
                xr[k] = dr[k] * a + beta * xr[k];
    }
}

/* ------------------------------------------------------------------ activations */

/* The SiLU's sigmoid (lgd_sigmoid2, with lgd_exp_neg) and the GELU (lgd_gelu,
 * lgd_gelu_grad) are in core/hd_math.h, shared with the CUDA kernels. */

/* SiLU kernels on a range, compiled for AVX-512 and AVX2 beside the baseline and chosen
 * at load time (LGD_CPU_CLONES, cpu_parallel.h): bit-identical results in every version. */
#define NN_CLONES LGD_CPU_CLONES

NN_CLONES static void silu_range(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++) {
        float s, sm;
        lgd_sigmoid2(x[i], &s, &sm);
        y[i] = x[i] * s;
    }
}

NN_CLONES static void silu_grad_range(size_t n, const float *x, const float *dy, float beta,
                                      float *dx)
{
    if (beta == 0.0f) {
        for (size_t i = 0; i < n; i++) {
            float s, sm, v = x[i];
            lgd_sigmoid2(v, &s, &sm);
            dx[i] = dy[i] * (s * (1.0f + v * sm));
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float s, sm, v = x[i];
            lgd_sigmoid2(v, &s, &sm);
            dx[i] = dy[i] * (s * (1.0f + v * sm)) + beta * dx[i];
        }
    }
}

#define NN_ACT_BLOCK 4096

void lgd_cpu_activation(lgd_backend *be, lgd_activation f, size_t count, const float *x,
                        float *y)
{
    if (f == LGD_ACT_GELU) {
        LGD_CPU_FOR(count * 8)
        for (size_t i = 0; i < count; i++)
            y[i] = lgd_gelu(x[i]);
    } else {
        size_t blocks = (count + NN_ACT_BLOCK - 1) / NN_ACT_BLOCK;
        LGD_CPU_FOR(count * 4)
        for (size_t k = 0; k < blocks; k++) {
            size_t i0 = k * NN_ACT_BLOCK, n = count - i0 < NN_ACT_BLOCK ? count - i0 : NN_ACT_BLOCK;
            silu_range(n, x + i0, y + i0);
        }
    }
}

void lgd_cpu_activation_backward(lgd_backend *be, lgd_activation f, size_t count,
                                 const float *x, const float *dy, float beta, float *dx)
{
    if (f == LGD_ACT_GELU) {
        LGD_CPU_FOR(count * 8)
        for (size_t i = 0; i < count; i++) {
            float g = dy[i] * lgd_gelu_grad(x[i]);
            dx[i] = beta == 0.0f ? g : g + beta * dx[i];
        }
    } else {
        size_t blocks = (count + NN_ACT_BLOCK - 1) / NN_ACT_BLOCK;
        LGD_CPU_FOR(count * 4)
        for (size_t k = 0; k < blocks; k++) {
            size_t i0 = k * NN_ACT_BLOCK, n = count - i0 < NN_ACT_BLOCK ? count - i0 : NN_ACT_BLOCK;
            silu_grad_range(n, x + i0, dy + i0, beta, dx + i0);
        }
    }
}

/* ------------------------------------------------------------------ group norm */

/* Sums in double with eight independent accumulators (vectorisable, fixed order). */
static double dsum(const float *x, size_t n)
{
    double acc[8] = { 0 };
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += (double)x[i + (size_t)l];
    double t = 0.0;
    for (; i < n; i++)
        t += (double)x[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + t;
}

static double dsum_sqdev(const float *x, size_t n, double mean)
{
    double acc[8] = { 0 };
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) {
            double d = (double)x[i + (size_t)l] - mean;
            acc[l] += d * d;
        }
    double t = 0.0;
    for (; i < n; i++) {
        double d = (double)x[i] - mean;
        t += d * d;
    }
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + t;
}

/* Layer norm (s = 1): a group is cnt contiguous features with their own gamma / beta.
 * The same arithmetic as the general path, in loops that vectorise, compiled for
 * AVX-512 / AVX2 / baseline (no FMA contraction in ISO C: identical results). */
NN_CLONES static void norm_row_forward(size_t cnt, float eps, const float *x, const float *gamma,
                                       const float *beta_, float *y, float *mean, float *rstd)
{
    double m = dsum(x, cnt) / (double)cnt;
    double var = dsum_sqdev(x, cnt, m) / (double)cnt;
    double r = 1.0 / sqrt(var + (double)eps);
    for (size_t k = 0; k < cnt; k++) {
        double a = r * (gamma ? (double)gamma[k] : 1.0);
        double b = beta_ ? (double)beta_[k] : 0.0;
        y[k] = (float)(((double)x[k] - m) * a + b);
    }
    if (mean)
        *mean = (float)m;
    if (rstd)
        *rstd = (float)r;
}

NN_CLONES static void norm_row_backward(size_t cnt, const float *x, const float *gamma, double m,
                                        double r, const float *dy, float beta, float *dx)
{
    double a0[8] = { 0 }, a1[8] = { 0 }, a2[8] = { 0 };
    size_t k = 0;
    for (; k + 8 <= cnt; k += 8)
        for (int l = 0; l < 8; l++) {
            double xh = ((double)x[k + (size_t)l] - m) * r;
            double gd = (gamma ? (double)gamma[k + (size_t)l] : 1.0) * (double)dy[k + (size_t)l];
            a0[l] += xh;
            a1[l] += gd;
            a2[l] += gd * xh;
        }
    for (; k < cnt; k++) {
        double xh = ((double)x[k] - m) * r;
        double gd = (gamma ? (double)gamma[k] : 1.0) * (double)dy[k];
        a0[0] += xh;
        a1[0] += gd;
        a2[0] += gd * xh;
    }
    double s0 = ((a0[0] + a0[4]) + (a0[1] + a0[5])) + ((a0[2] + a0[6]) + (a0[3] + a0[7]));
    double s1 = ((a1[0] + a1[4]) + (a1[1] + a1[5])) + ((a1[2] + a1[6]) + (a1[3] + a1[7]));
    double s2 = ((a2[0] + a2[4]) + (a2[1] + a2[5])) + ((a2[2] + a2[6]) + (a2[3] + a2[7]));
    const double inv = 1.0 / (double)cnt;
    const double m0 = s0 * inv, m1 = s1 * inv, m2 = s2 * inv - m0 * m1;
    if (beta == 0.0f) {
        for (k = 0; k < cnt; k++) {
            double xh = ((double)x[k] - m) * r - m0;
            double ga = gamma ? (double)gamma[k] : 1.0;
            dx[k] = (float)(r * (ga * (double)dy[k] - m1 - xh * m2));
        }
    } else {
        for (k = 0; k < cnt; k++) {
            double xh = ((double)x[k] - m) * r - m0;
            double ga = gamma ? (double)gamma[k] : 1.0;
            dx[k] = (float)(r * (ga * (double)dy[k] - m1 - xh * m2)) + beta * dx[k];
        }
    }
}

/* z = (u - m) r gamma + beta over a group (cpg channels of s values) with the double
 * statistics m, r; gamma, beta_ from the group's first channel (or NULL). Layer-norm
 * rows (s = 1) take a loop over the features, which vectorises; the same expressions. */
NN_CLONES static void gn_group_apply(size_t cpg, size_t s, const float *ug, const float *gamma,
                                     const float *beta_, double m, double r, float *zg)
{
    if (s == 1) {
        for (size_t k = 0; k < cpg; k++) {
            double a = r * (gamma ? (double)gamma[k] : 1.0);
            double b = beta_ ? (double)beta_[k] : 0.0;
            zg[k] = (float)(((double)ug[k] - m) * a + b);
        }
        return;
    }
    for (size_t cc = 0; cc < cpg; cc++) {
        double a = r * (gamma ? (double)gamma[cc] : 1.0);
        double b = beta_ ? (double)beta_[cc] : 0.0;
        const float *ur = ug + cc * s;
        float *zr = zg + cc * s;
        for (size_t k = 0; k < s; k++)
            zr[k] = (float)(((double)ur[k] - m) * a + b);
    }
}

/* One group of the general path: statistics in double (m, r), then
 * y = (x - m) r gamma + beta rounded to float. gamma, beta_ point at the group's first
 * channel (or are NULL). The layer-norm rows (s = 1) compute the same expressions
 * (norm_row_forward), so the fused kernel below uses this for both. */
NN_CLONES static void gn_group_forward(size_t cpg, size_t s, float eps, const float *xg,
                                       const float *gamma, const float *beta_, float *yg,
                                       double *m_out, double *r_out)
{
    const size_t gs = cpg * s;
    double m = gs ? dsum(xg, gs) / (double)gs : 0.0;
    double var = gs ? dsum_sqdev(xg, gs, m) / (double)gs : 0.0;
    double r = 1.0 / sqrt(var + (double)eps);
    gn_group_apply(cpg, s, xg, gamma, beta_, m, r, yg);
    *m_out = m;
    *r_out = r;
}

/* The input VJP of one group of the general path (s > 1), with the saved (float) mean and
 * rstd: dx = r (gamma dy - m1 - xh m2) + beta dx. */
NN_CLONES static void gn_group_backward(size_t cpg, size_t s, const float *xg,
                                        const float *gamma, double m, double r,
                                        const float *dg, float beta, float *og)
{
    const size_t gs = cpg * s;
    /* xh' = (x - mean) rstd with the saved (rounded) mean; its group mean m0 is
     * the rounding error, removed exactly below: xh = xh' - m0 */
    double s0 = 0.0, s1 = 0.0, s2 = 0.0;
    for (size_t cc = 0; cc < cpg; cc++) {
        const double ga = gamma ? (double)gamma[cc] : 1.0;
        const float *xr = xg + cc * s, *dr = dg + cc * s;
        double a0[4] = { 0 }, a1[4] = { 0 }, a2[4] = { 0 };
        size_t k = 0;
        for (; k + 4 <= s; k += 4)
            for (int l = 0; l < 4; l++) {
                double xh = ((double)xr[k + (size_t)l] - m) * r;
                double gd = ga * (double)dr[k + (size_t)l];
                a0[l] += xh;
                a1[l] += gd;
                a2[l] += gd * xh;
            }
        for (; k < s; k++) {
            double xh = ((double)xr[k] - m) * r, gd = ga * (double)dr[k];
            a0[0] += xh;
            a1[0] += gd;
            a2[0] += gd * xh;
        }
        s0 += (a0[0] + a0[2]) + (a0[1] + a0[3]);
        s1 += (a1[0] + a1[2]) + (a1[1] + a1[3]);
        s2 += (a2[0] + a2[2]) + (a2[1] + a2[3]);
    }
    const double inv = gs ? 1.0 / (double)gs : 0.0;
    const double m0 = s0 * inv, m1 = s1 * inv, m2 = s2 * inv - m0 * m1;
    for (size_t cc = 0; cc < cpg; cc++) {
        const double ga = gamma ? (double)gamma[cc] : 1.0;
        const float *xr = xg + cc * s, *dr = dg + cc * s;
        float *orow = og + cc * s;
        if (beta == 0.0f) {
            for (size_t k = 0; k < s; k++) {
                double xh = ((double)xr[k] - m) * r - m0;
                orow[k] = (float)(r * (ga * (double)dr[k] - m1 - xh * m2));
            }
        } else {
            for (size_t k = 0; k < s; k++) {
                double xh = ((double)xr[k] - m) * r - m0;
                float v = (float)(r * (ga * (double)dr[k] - m1 - xh * m2));
                orow[k] = v + beta * orow[k];
            }
        }
    }
}

void lgd_cpu_group_norm(lgd_backend *be, size_t n, size_t c, size_t s, size_t groups,
                        float eps, const float *x, const float *gamma, const float *beta_,
                        float *y, float *mean, float *rstd)
{
    if (groups == 0 || c % groups != 0)
        return;
    const size_t cpg = c / groups, gs = cpg * s;
    if (s == 1 && cpg > 0) {
        LGD_CPU_FOR(n * c * 3)
        for (size_t g = 0; g < n * groups; g++) {
            size_t c0 = (g % groups) * cpg;
            norm_row_forward(cpg, eps, x + g * cpg, gamma ? gamma + c0 : NULL,
                             beta_ ? beta_ + c0 : NULL, y + g * cpg, mean ? mean + g : NULL,
                             rstd ? rstd + g : NULL);
        }
        return;
    }
    LGD_CPU_FOR(n * c * s * 3)
    for (size_t g = 0; g < n * groups; g++) {
        /* groups are contiguous: [n][groups][cpg][s] */
        size_t c0 = (g % groups) * cpg;
        double m, r;
        gn_group_forward(cpg, s, eps, x + g * gs, gamma ? gamma + c0 : NULL,
                         beta_ ? beta_ + c0 : NULL, y + g * gs, &m, &r);
        if (mean)
            mean[g] = (float)m;
        if (rstd)
            rstd[g] = (float)r;
    }
}

void lgd_cpu_group_norm_backward(lgd_backend *be, size_t n, size_t c, size_t s, size_t groups,
                                 const float *x, const float *gamma, const float *mean,
                                 const float *rstd, const float *dy, float beta, float *dx)
{
    if (groups == 0 || c % groups != 0)
        return;
    const size_t cpg = c / groups, gs = cpg * s;
    if (s == 1 && cpg > 0) {
        LGD_CPU_FOR(n * c * 3)
        for (size_t g = 0; g < n * groups; g++) {
            size_t c0 = (g % groups) * cpg;
            norm_row_backward(cpg, x + g * cpg, gamma ? gamma + c0 : NULL, mean[g], rstd[g],
                              dy + g * cpg, beta, dx + g * cpg);
        }
        return;
    }
    LGD_CPU_FOR(n * c * s * 3)
    for (size_t g = 0; g < n * groups; g++) {
        const size_t c0 = (g % groups) * cpg;
        gn_group_backward(cpg, s, x + g * gs, gamma ? gamma + c0 : NULL, mean[g], rstd[g],
                          dy + g * gs, beta, dx + g * gs);
    }
}

/* ------------------------------------------------------------------ fused group norm */

/* The fused layer act(group_norm(x + e)) (nn_kernels.h: group_norm_act) computes what
 * add_channel_bias (x + e), group_norm and activation compute one after the other, with
 * the same expressions in the same order, so its results are bit-identical to theirs;
 * it only keeps the intermediate values of a group in a per-thread scratch (L1/L2
 * sized: cpg s floats) instead of writing and re-reading whole activations. The forward
 * pass can keep f'(z) (dact, formed as activation_backward forms it) for the backward,
 * which then needs no second exponential: dz = dy f'(z); without it the backward
 * recomputes z from x and the double statistics the forward saved (the same bits as the
 * forward's z) and f'(z). Then group_norm_backward's arithmetic runs on dz. */

/* the per-group saved statistics: mean and rstd as group_norm saves them (floats, for
 * the backward formula), then the forward's double m and r (bit patterns, for z) */
static void stats_put(float *stats, size_t ng, size_t g, double m, double r)
{
    stats[g] = (float)m;
    stats[ng + g] = (float)r;
    double mr[2] = { m, r };
    memcpy(stats + 2 * ng + 4 * g, mr, sizeof mr);
}

static void stats_get(const float *stats, size_t ng, size_t g, double *mf, double *rf,
                      double *md, double *rd)
{
    double mr[2];
    memcpy(mr, stats + 2 * ng + 4 * g, sizeof mr);
    *mf = stats[g];
    *rf = stats[ng + g];
    *md = mr[0];
    *rd = mr[1];
}

/* u = x + e[channel] (add_channel_bias's float sum) for one group, or x itself */
static const float *group_input(size_t cpg, size_t s, const float *xg, const float *eg,
                                float *ubuf)
{
    if (!eg)
        return xg;
    for (size_t cc = 0; cc < cpg; cc++) {
        const float ev = eg[cc], *xr = xg + cc * s;
        float *ur = ubuf + cc * s;
        for (size_t k = 0; k < s; k++)
            ur[k] = xr[k] + ev;
    }
    return ubuf;
}

/* y = f(z) in place over z, and with d the derivative f'(z) as activation_backward
 * forms it (so that dy d is its dz, bit for bit) */
NN_CLONES static void act_range(lgd_activation f, size_t n, float *y, float *d)
{
    if (f == LGD_ACT_GELU) {
        if (d)
            for (size_t i = 0; i < n; i++)
                d[i] = lgd_gelu_grad(y[i]);
        for (size_t i = 0; i < n; i++)
            y[i] = lgd_gelu(y[i]);
    } else if (d) {
        for (size_t i = 0; i < n; i++) {
            float sg, sm, v = y[i];
            lgd_sigmoid2(v, &sg, &sm);
            y[i] = v * sg;
            d[i] = sg * (1.0f + v * sm);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float sg, sm;
            lgd_sigmoid2(y[i], &sg, &sm);
            y[i] = y[i] * sg;
        }
    }
}

/* dz = dy d (d = f'(z) kept by the forward pass) */
NN_CLONES static void mul_range(size_t n, const float *dy, const float *d, float *dz)
{
    for (size_t i = 0; i < n; i++)
        dz[i] = dy[i] * d[i];
}

/* dz = dy f'(z) in place over z (activation_backward with beta = 0) */
NN_CLONES static void act_grad_range(lgd_activation f, size_t n, const float *dy, float *z)
{
    if (f == LGD_ACT_GELU) {
        for (size_t i = 0; i < n; i++)
            z[i] = dy[i] * lgd_gelu_grad(z[i]);
    } else {
        for (size_t i = 0; i < n; i++) {
            float sg, sm, v = z[i];
            lgd_sigmoid2(v, &sg, &sm);
            z[i] = dy[i] * (sg * (1.0f + v * sm));
        }
    }
}

#ifdef _OPENMP
#define NN_TID() ((size_t)omp_get_thread_num())
#else
#define NN_TID() ((size_t)0)
#endif

int lgd_cpu_group_norm_act(lgd_backend *be, size_t n, size_t c, size_t s, size_t groups,
                           float eps, const float *x, const float *e, size_t e_stride,
                           const float *gamma, const float *beta_, lgd_activation f, float *y,
                           float *stats, float *dact)
{
    if (groups == 0 || c % groups != 0)
        return -1;
    const size_t cpg = c / groups, gs = cpg * s, ng = n * groups;
    const int nt = be->threads > 0 ? be->threads : 1;
    float *scratch = NULL;
    if (e && !(scratch = lgd_cpu_nn_scratch(be, (size_t)nt * gs)))
        return -1;
    LGD_CPU_FOR(n * c * s * 4)
    for (size_t g = 0; g < ng; g++) {
        const size_t i = g / groups, c0 = (g % groups) * cpg;
        const float *ug = group_input(cpg, s, x + g * gs, e ? e + i * e_stride + c0 : NULL,
                                     scratch ? scratch + NN_TID() * gs : NULL);
        double m, r;
        gn_group_forward(cpg, s, eps, ug, gamma ? gamma + c0 : NULL, beta_ ? beta_ + c0 : NULL,
                         y + g * gs, &m, &r);
        act_range(f, gs, y + g * gs, dact ? dact + g * gs : NULL);
        stats_put(stats, ng, g, m, r);
    }
    return 0;
}

int lgd_cpu_group_norm_act_backward(lgd_backend *be, size_t n, size_t c, size_t s,
                                    size_t groups, const float *x, const float *e,
                                    size_t e_stride, const float *gamma, const float *beta_,
                                    lgd_activation f, const float *stats, const float *dact,
                                    const float *dy, float beta, float *dx)
{
    if (groups == 0 || c % groups != 0)
        return -1;
    const size_t cpg = c / groups, gs = cpg * s, ng = n * groups;
    const size_t per = (e ? 2 : 1) * gs; /* z (and u) per thread */
    const int nt = be->threads > 0 ? be->threads : 1;
    float *scratch = lgd_cpu_nn_scratch(be, (size_t)nt * per);
    if (!scratch)
        return -1;
    LGD_CPU_FOR(n * c * s * 6)
    for (size_t g = 0; g < ng; g++) {
        const size_t i = g / groups, c0 = (g % groups) * cpg;
        float *zb = scratch + NN_TID() * per;
        const float *ug = group_input(cpg, s, x + g * gs, e ? e + i * e_stride + c0 : NULL,
                                      zb + gs);
        const float *gm = gamma ? gamma + c0 : NULL;
        double mf, rf, md, rd;
        stats_get(stats, ng, g, &mf, &rf, &md, &rd);
        if (dact) {
            mul_range(gs, dy + g * gs, dact + g * gs, zb);
        } else {
            /* z again from u and the double statistics, then f'(z) */
            gn_group_apply(cpg, s, ug, gm, beta_ ? beta_ + c0 : NULL, md, rd, zb);
            act_grad_range(f, gs, dy + g * gs, zb);
        }
        /* group_norm_backward on dz, with its own choice of path */
        if (s == 1)
            norm_row_backward(cpg, ug, gm, mf, rf, zb, beta, dx + g * gs);
        else
            gn_group_backward(cpg, s, ug, gm, mf, rf, zb, beta, dx + g * gs);
    }
    return 0;
}

/* ------------------------------------------------------------------ resampling */

void lgd_cpu_upsample_nearest(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh,
                              size_t fw, const float *x, float *y)
{
    const size_t W = w * fw;
    LGD_CPU_FOR(planes * h * W * fh)
    for (size_t r = 0; r < planes * h; r++) {
        const float *xr = x + r * w;
        float *y0 = y + r * fh * W;
        if (fw == 2) {
            for (size_t j = 0; j < w; j++)
                y0[2 * j] = y0[2 * j + 1] = xr[j];
        } else {
            for (size_t j = 0; j < w; j++)
                for (size_t b = 0; b < fw; b++)
                    y0[j * fw + b] = xr[j];
        }
        for (size_t a = 1; a < fh; a++)
            memcpy(y0 + a * W, y0, W * sizeof(float));
    }
}

void lgd_cpu_upsample_nearest_backward(lgd_backend *be, size_t planes, size_t h, size_t w,
                                       size_t fh, size_t fw, const float *dy, float beta,
                                       float *dx)
{
    const size_t W = w * fw;
    LGD_CPU_FOR(planes * h * W * fh)
    for (size_t r = 0; r < planes * h; r++) {
        const float *d0 = dy + r * fh * W;
        float *o = dx + r * w;
        for (size_t j = 0; j < w; j++) {
            float acc = 0.0f;
            for (size_t a = 0; a < fh; a++)
                for (size_t b = 0; b < fw; b++)
                    acc += d0[a * W + j * fw + b];
            o[j] = beta == 0.0f ? acc : acc + beta * o[j];
        }
    }
}

void lgd_cpu_avg_pool(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh, size_t fw,
                      const float *x, float *y)
{
    if (fh == 0 || fw == 0)
        return;
    const size_t ho = h / fh, wo = w / fw;
    const float inv = 1.0f / (float)(fh * fw);
    LGD_CPU_FOR(planes * h * w)
    for (size_t r = 0; r < planes * ho; r++) {
        const float *x0 = x + r * fh * w; /* input rows r fh .. r fh + fh - 1 */
        float *o = y + r * wo;
        for (size_t j = 0; j < wo; j++) {
            float acc = 0.0f;
            for (size_t a = 0; a < fh; a++)
                for (size_t b = 0; b < fw; b++)
                    acc += x0[a * w + j * fw + b];
            o[j] = acc * inv;
        }
    }
}

void lgd_cpu_avg_pool_backward(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh,
                               size_t fw, const float *dy, float beta, float *dx)
{
    if (fh == 0 || fw == 0)
        return;
    const size_t wo = w / fw;
    const float inv = 1.0f / (float)(fh * fw);
    LGD_CPU_FOR(planes * h * w)
    for (size_t r = 0; r < planes * h; r++) {
        const float *d = dy + (r / fh) * wo;
        float *o = dx + r * w;
        for (size_t j = 0; j < w; j++) {
            float v = d[j / fw] * inv;
            o[j] = beta == 0.0f ? v : v + beta * o[j];
        }
    }
}

/* ------------------------------------------------------------------ time embedding */

void lgd_cpu_time_embedding(lgd_backend *be, float t, size_t dim, float *out)
{
    (void)be;
    size_t half = dim / 2;
    for (size_t i = 0; i < half; i++) {
        float a = lgd_time_embedding_angle(t, i, half);
        out[i] = cosf(a);
        out[half + i] = sinf(a);
    }
}

/* ------------------------------------------------------------------ the table */

const lgd_nn_kernels lgd_nn_kernels_cpu = {
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
    .time_embedding = lgd_cpu_time_embedding,
    .group_norm_act = lgd_cpu_group_norm_act,
    .group_norm_act_backward = lgd_cpu_group_norm_act_backward,
};

