/*
 * hd_math.h - formulas that both backends compute, written once.
 *
 * Header-only: the CPU backend's kernels include it as static inline C, the CUDA
 * module's .cu files as __host__ __device__ functions (LGD_HD). Every formula used on
 * both sides of the backend interface lives here (or in a header of its module that
 * uses LGD_HD: core/philox.h, losses/trajectory_loss.h), so CPU and CUDA cannot drift
 * apart. The CUDA module is compiled with -fmad=false (no contracted FMAs, as ISO C),
 * but the device's expf, erfcf, ... are not glibc's, so the two backends agree to
 * rounding, not bitwise (the CUDA suite compares them with a tolerance).
 *
 * Modelled on ggml's ggml-common.h. Nothing here allocates, branches on global state
 * or calls anything but <math.h>.
 */
#ifndef LGD_HD_MATH_H
#define LGD_HD_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#  define LGD_HD __host__ __device__ __forceinline__
#else
#  define LGD_HD static inline
#endif

/* ---- bit casts (memcpy on the host, intrinsics on the device) ---- */

LGD_HD uint32_t lgd_f32_bits(float x)
{
#if defined(__CUDA_ARCH__)
    return __float_as_uint(x);
#else
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return b;
#endif
}

LGD_HD float lgd_bits_f32(uint32_t b)
{
#if defined(__CUDA_ARCH__)
    return __uint_as_float(b);
#else
    float x;
    memcpy(&x, &b, sizeof x);
    return x;
#endif
}

/* ---- exponentials and sigmoids ---- */

/* exp(-a) for a in [0, 104], branch-free so that loops using it vectorise (libm's
 * expf is an opaque call): -a = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite), exp(r) by
 * its Taylor polynomial of degree 7 (truncation 1.5e-8 relative), times 2^n built from
 * the exponent bits in two factors so that results down to the subnormals come out
 * right. Accurate to a few ulp. */
LGD_HD float lgd_exp_neg(float a)
{
    float x = -a;
    float t = x * 1.44269504088896341f;
    float n = (t + 12582912.0f) - 12582912.0f; /* round to nearest (|t| < 2^22) */
    float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.66666672e-1f + r * (4.16666679e-2f +
              r * (8.33333377e-3f + r * (1.38888892e-3f + r * 1.98412701e-4f))))));
    int32_t ni = (int32_t)n, n1 = ni / 2, n2 = ni - n1;
    float f1 = lgd_bits_f32((uint32_t)(n1 + 127) << 23);
    float f2 = lgd_bits_f32((uint32_t)(n2 + 127) << 23);
    return p * f1 * f2;
}

/* sigmoid(x) and 1 - sigmoid(x), both without cancellation or overflow. Branch-free
 * (selections on bits; with -ftrapping-math the compiler may not if-convert float
 * selects), so the activation loops vectorise. |x| is clamped at 104, where exp(-|x|)
 * has underflowed; a NaN x gives finite s, but x s and the derivative stay NaN. */
LGD_HD void lgd_sigmoid2(float x, float *s, float *sm)
{
    uint32_t xb = lgd_f32_bits(x);
    uint32_t ab = xb & 0x7fffffffu;
    ab = ab > 0x42d00000u ? 0x42d00000u : ab; /* 104.0f */
    float e = lgd_exp_neg(lgd_bits_f32(ab)), v = 1.0f / (1.0f + e), ev = e * v;
    uint32_t vb = lgd_f32_bits(v), evb = lgd_f32_bits(ev);
    uint32_t neg = 0u - (xb >> 31); /* all ones when the sign bit is set */
    *s = lgd_bits_f32((vb & ~neg) | (evb & neg));
    *sm = lgd_bits_f32((evb & ~neg) | (vb & neg));
}

/* log(x) for finite x >= 2^-126 (normal, positive): x = 2^e m with m in [sqrt(1/2),
 * sqrt(2)), log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716, by the odd series
 * to s^9 (truncation 2.4e-9 relative), plus e ln 2 in two parts. Branch-free (the
 * mantissa test is on bits), so loops using it vectorise; within 2 ulp of the correctly
 * rounded log on [2^-24, 2] (tests/test_core.c checks every float there). Box-Muller's
 * radius and the logistic loss use it; libm's logf is an opaque call. */
LGD_HD float lgd_log_pos(float x)
{
    uint32_t b = lgd_f32_bits(x);
    uint32_t mant = b & 0x007fffffu;
    uint32_t big = (uint32_t)(mant >= 0x003504f3u); /* m >= sqrt(2): use m / 2, e + 1 */
    int32_t e = (int32_t)(b >> 23) - 127 + (int32_t)big;
    float m = lgd_bits_f32((mant | 0x3f800000u) - (big << 23));
    float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    float p = s2 * (0.333333333f + s2 * (0.2f + s2 * (0.142857143f + s2 * 0.111111111f)));
    float ef = (float)e;
    return ef * 0.693145752f + (2.0f * s + (2.0f * s * p + ef * 1.42860677e-6f));
}

/* sin(2 pi u) and cos(2 pi u) for u in [0, 1] (Box-Muller's angle): 4u = q + f with q the
 * nearest integer and |f| <= 1/2 (both exact), x = f pi / 2 in [-pi/4, pi/4], Taylor
 * polynomials of sin (to x^9) and cos (to x^10) (truncation below 2e-9), then the
 * quadrant q mod 4 swaps them and sets the signs on bits. Branch-free. */
LGD_HD void lgd_sincos_turn(float u, float *sin_out, float *cos_out)
{
    float t = 4.0f * u;
    float q = (t + 12582912.0f) - 12582912.0f; /* round to nearest (t < 2^22) */
    float x = (t - q) * 1.57079632679489662f, x2 = x * x;
    float sp = x + x * x2 * (-1.66666667e-1f + x2 * (8.33333333e-3f +
               x2 * (-1.98412698e-4f + x2 * 2.75573192e-6f)));
    float cp = 1.0f + x2 * (-0.5f + x2 * (4.16666667e-2f + x2 * (-1.38888889e-3f +
               x2 * (2.48015873e-5f + x2 * -2.75573192e-7f))));
    uint32_t qi = (uint32_t)(int32_t)q & 3u;
    uint32_t swap = 0u - (qi & 1u); /* q = 1, 3: sin and cos trade places */
    uint32_t sb = lgd_f32_bits(sp), cb = lgd_f32_bits(cp);
    uint32_t sin_b = (sb & ~swap) | (cb & swap), cos_b = (cb & ~swap) | (sb & swap);
    uint32_t sin_neg = ((qi >> 1) & 1u) << 31;        /* q = 2, 3 */
    uint32_t cos_neg = ((qi ^ (qi >> 1)) & 1u) << 31; /* q = 1, 2 */
    *sin_out = lgd_bits_f32(sin_b ^ sin_neg);
    *cos_out = lgd_bits_f32(cos_b ^ cos_neg);
}

/* softplus(t) = log(1 + e^t) and sigmoid(t) together (the logistic loss and its
 * gradient), without overflow or cancellation for either sign: e = exp(-|t|) (|t|
 * clamped at 104, where it has underflowed), softplus = max(t, 0) + log1p(e) with log1p
 * from lgd_log_pos(1 + e) and the rounding of 1 + e corrected, sigmoid = 1 / (1 + e) or
 * e / (1 + e) by t's sign. Branch-free (selections on bits), so loops vectorise. A NaN t
 * gives a NaN softplus (and a finite sigmoid); t = +Inf gives +Inf. */
LGD_HD void lgd_softplus_sigmoid(float t, float *softplus, float *sigmoid)
{
    uint32_t tb = lgd_f32_bits(t), ab = tb & 0x7fffffffu;
    uint32_t nan = 0u - (uint32_t)(ab > 0x7f800000u);
    uint32_t cb = ab > 0x42d00000u ? 0x42d00000u : ab; /* 104.0f */
    float e = lgd_exp_neg(lgd_bits_f32(cb)), w = 1.0f + e;
    float log1p_e = lgd_log_pos(w) + (e - (w - 1.0f)) / w;
    uint32_t neg = 0u - (tb >> 31); /* all ones when the sign bit is set */
    float pos = lgd_bits_f32(tb & ~neg); /* max(t, 0) */
    *softplus = lgd_bits_f32(lgd_f32_bits(pos + log1p_e) | nan);
    float v = 1.0f / w, ev = e * v;
    *sigmoid = lgd_bits_f32((lgd_f32_bits(v) & ~neg) | (lgd_f32_bits(ev) & neg));
}

/* ---- GELU, erf form (the network layers' activation, nn/) ---- */

/* GELU x Phi(x), Phi(x) = 0.5 erfc(-x / sqrt 2) (no cancellation for x << 0), and its
 * derivative Phi(x) + x phi(x). In the left tail the relative error of a float
 * argument (x / sqrt 2, x^2 / 2) is amplified by about x^2, so there the arithmetic
 * is double. */
LGD_HD float lgd_gelu(float x)
{
    if (x < -3.0f)
        return (float)(0.5 * (double)x * erfc(-(double)x * 0.70710678118654752440));
    return x * (0.5f * erfcf(-x * 0.70710678118654752440f));
}

LGD_HD float lgd_gelu_grad(float x)
{
    if (x < -3.0f) {
        double v = x;
        return (float)(0.5 * erfc(-v * 0.70710678118654752440) +
                       v * 0.39894228040143267794 * exp(-0.5 * v * v));
    }
    return 0.5f * erfcf(-x * 0.70710678118654752440f) +
           x * 0.39894228040143267794f * expf(-0.5f * x * x);
}

/* ---- Gaussian filters of a covariance's eigenvalues (models/model_gmm.c) ---- */

/* Filters of the eigenvalues lam of a covariance at noise variance s2, applied
 * column-wise: out[r][j] = f(lam[j], s2) * in[r][j]. Numbered for the kernel tables. */
typedef enum lgd_diag_filter {
    LGD_FILTER_SHRINK = 0,    /* lam / (lam + s2)                 (posterior mean gain) */
    LGD_FILTER_PRECISION = 1, /* 1 / (lam + s2)                   (noisy precision) */
    LGD_FILTER_POST_STD = 2   /* sqrt(lam * s2 / (lam + s2))      (posterior std) */
} lgd_diag_filter;

LGD_HD float lgd_diag_factor(lgd_diag_filter filter, float lam, float s2)
{
    switch (filter) {
    case LGD_FILTER_SHRINK: return lam / (lam + s2);
    case LGD_FILTER_PRECISION: return 1.0f / (lam + s2);
    default: return sqrtf(lam * s2 / (lam + s2));
    }
}

/* ---- ADM's sinusoidal time embedding (nn/) ---- */

/* Angle of entry i < half: t f_i with f_i = exp(-ln(10000) i / half); the embedding is
 * out[i] = cos(angle), out[half + i] = sin(angle). */
LGD_HD float lgd_time_embedding_angle(float t, size_t i, size_t half)
{
    return t * expf(-logf(10000.0f) * (float)i / (float)half);
}

#endif
