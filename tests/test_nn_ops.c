/*
 * test_nn_ops.c - the 'nn_ops' suite: the CPU backend's network-layer primitives
 * (the "network layers (ABI 2)" block of lgd_backend_ops).
 *
 * Every forward op is compared with a straightforward double-precision reference
 * written here (direct convolution loops, two-pass group statistics, ...), with
 * tolerances relative to the magnitude of the result. Every *_backward is
 * compared with central finite differences of the double reference forward:
 * the VJP dotted with random directions against the directional derivative of
 * <dy, f(x)>, and element by element on small cases; the linear ops also satisfy
 * the adjoint identity <f(x), dy> = <x, f^T(dy)> with the backend's own float
 * forward. The beta convention (dx = result + beta dx; beta = 0 ignores NaN
 * garbage in dx) is checked for every backward op, and results must be bitwise
 * identical with 1 and 2 threads.
 *
 * Built with oneDNN (LGD_HAVE_DNNL), the oneDNN GEMMs and convolutions are also
 * compared with a second backend opened with LGD_CPU_ONEDNN=0 (OpenBLAS, im2col).
 *
 * LGD_TEST_QUICK=1 (the valgrind pass) uses smaller sizes for the thread checks.
 */
#include "testutil.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h" /* struct lgd_backend: onednn, dnnl_conv_calls */
#include "core/internal.h"
#include "losses/loss_internal.h"
#include "models/model_internal.h"
#include "lgd_config.h"
#include "nn/nn_kernels.h"

/* ------------------------------------------------------------------ helpers */

#define PI_D 3.14159265358979323846

typedef struct cpu_be {
    lgd_backend *be;
    const lgd_backend_ops *ops;
} cpu_be;

static cpu_be cpu_open(int threads)
{
    cpu_be c = { NULL, NULL };
    ck_assert_int_eq(lgd_cpu_backend_open(threads, &c.be, &c.ops), 0);
    ck_assert_ptr_nonnull(c.be);
    ck_assert_ptr_nonnull(c.ops);
    ck_assert_uint_eq(c.ops->abi_version, LGD_BACKEND_ABI_VERSION);
    return c;
}

static void cpu_close(cpu_be *c)
{
    c->ops->destroy(c->be);
    c->be = NULL;
}

static float *fcopy(const float *x, size_t n)
{
    float *p = tu_fvec(n);
    memcpy(p, x, n * sizeof *p);
    return p;
}

static double *to_double(const float *x, size_t n)
{
    double *d = tu_dvec(n);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

static void fill_const(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        x[i] = v;
}

static double rms(const double *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += x[i] * x[i];
    return n ? sqrt(s / (double)n) : 0.0;
}

/* Fails unless |got - ref| <= tol (|ref| + rms(ref)) everywhere: an error relative to
 * the element, or to the typical magnitude of the result where the element is small.
 * NaN fails. */
static void check_rel(const char *what, const float *got, const double *ref, size_t n, double tol)
{
    /* one assertion per call: Check records every passing assertion (slow in loops) */
    double m = rms(ref, n);
    size_t bad = n;
    for (size_t i = 0; i < n && bad == n; i++)
        if (!(fabs((double)got[i] - ref[i]) <= tol * (fabs(ref[i]) + m)))
            bad = i;
    ck_assert_msg(bad == n, "%s[%zu]: got %.9g, want %.9g (err %.3g, rms %.3g)", what, bad,
                  bad < n ? (double)got[bad] : 0.0, bad < n ? ref[bad] : 0.0,
                  bad < n ? fabs((double)got[bad] - ref[bad]) : 0.0, m);
}

static void check_bytes_eq(const char *what, const void *a, const void *b, size_t bytes)
{
    ck_assert_msg(memcmp(a, b, bytes) == 0, "%s: results differ bitwise", what);
}

static void check_finite(const char *what, const float *x, size_t n)
{
    size_t bad = n;
    for (size_t i = 0; i < n && bad == n; i++)
        if (!isfinite(x[i]))
            bad = i;
    ck_assert_msg(bad == n, "%s[%zu] = %g is not finite", what, bad, bad < n ? (double)x[bad] : 0.0);
}

/* ------------------------------------------------- finite differences of a reference */

/* A double-precision reference forward y = f(x). */
typedef void (*ref_fn)(const void *ctx, const double *x, double *y);

static double objective(ref_fn f, const void *ctx, const double *x, const double *dy, double *y,
                        size_t ny)
{
    f(ctx, x, y);
    double s = 0.0;
    for (size_t i = 0; i < ny; i++)
        s += dy[i] * y[i];
    return s;
}

/* Checks the float VJP vjp = d/dx <dy, f(x)> against central differences (step h) of
 * the double reference: along `dirs` random directions v, <vjp, v> against
 * (F(x + h v) - F(x - h v)) / 2h within tol (sum_i |vjp_i v_i| + |fd|); with
 * `elementwise`, every entry within tol (|fd_i| + rms(fd)). */
static void check_vjp_fd(const char *what, ref_fn f, const void *ctx, const float *xf, size_t nx,
                         const float *dyf, size_t ny, const float *vjp, int dirs, int elementwise,
                         double h, double tol, tu_rng *r)
{
    double *x = to_double(xf, nx), *dy = to_double(dyf, ny), *xp = tu_dvec(nx), *y = tu_dvec(ny);
    double *v = tu_dvec(nx);
    for (int d = 0; d < dirs; d++) {
        double an = 0.0, mag = 0.0;
        for (size_t i = 0; i < nx; i++) {
            v[i] = tu_normal(r);
            an += (double)vjp[i] * v[i];
            mag += fabs((double)vjp[i] * v[i]);
        }
        for (size_t i = 0; i < nx; i++)
            xp[i] = x[i] + h * v[i];
        double fp = objective(f, ctx, xp, dy, y, ny);
        for (size_t i = 0; i < nx; i++)
            xp[i] = x[i] - h * v[i];
        double fm = objective(f, ctx, xp, dy, y, ny);
        double fd = (fp - fm) / (2.0 * h);
        ck_assert_msg(fabs(fd - an) <= tol * (mag + fabs(fd)),
                      "%s: direction %d: <vjp, v> = %.10g, finite difference %.10g", what, d, an,
                      fd);
    }
    if (elementwise) {
        double *fd = tu_dvec(nx);
        memcpy(xp, x, nx * sizeof *xp);
        for (size_t i = 0; i < nx; i++) {
            xp[i] = x[i] + h;
            double fp = objective(f, ctx, xp, dy, y, ny);
            xp[i] = x[i] - h;
            double fm = objective(f, ctx, xp, dy, y, ny);
            xp[i] = x[i];
            fd[i] = (fp - fm) / (2.0 * h);
        }
        char buf[192];
        snprintf(buf, sizeof buf, "%.120s (element-wise finite differences)", what);
        check_rel(buf, vjp, fd, nx, tol);
        free(fd);
    }
    free(x);
    free(dy);
    free(xp);
    free(y);
    free(v);
}

/* The adjoint identity <y, dy> = <x, dx> for y = f(x), dx = f^T(dy), in double from
 * the float vectors, within tol (sum |y dy| + sum |x dx|). */
static void check_adjoint(const char *what, const float *x, const float *dx, size_t nx,
                          const float *y, const float *dy, size_t ny, double tol)
{
    double l = 0.0, r = 0.0, mag = 0.0;
    for (size_t i = 0; i < ny; i++) {
        l += (double)y[i] * dy[i];
        mag += fabs((double)y[i] * dy[i]);
    }
    for (size_t i = 0; i < nx; i++) {
        r += (double)x[i] * dx[i];
        mag += fabs((double)x[i] * dx[i]);
    }
    ck_assert_msg(fabs(l - r) <= tol * mag, "%s: <f(x), dy> = %.10g, <x, f^T(dy)> = %.10g", what,
                  l, r);
}

/* --------------------------------------------------------- the beta convention */

/* Arguments of the backward ops under test (each uses its own subset). */
typedef struct bw_ctx {
    cpu_be *c;
    const lgd_conv_shape *cs;
    size_t n, ch, s, groups, planes, h, w, fh, fw, stride, count;
    lgd_activation act;
    const float *x, *wt, *dy, *scale, *gamma, *mean, *rstd;
} bw_ctx;

typedef void (*bw_fn)(const bw_ctx *k, float beta, float *dx);

/* beta = 0 over NaN garbage gives the same (finite) result as over zeros, bitwise;
 * beta = 1 over old values gives result + old. Returns the beta = 0 result. */
static float *check_beta(const char *what, bw_fn f, const bw_ctx *k, size_t ndx, tu_rng *r)
{
    float *res = tu_fvec(ndx), *z = tu_fvec(ndx), *acc = tu_randn(r, ndx, 1.0f), *old = fcopy(acc, ndx);
    fill_const(res, ndx, NAN);
    fill_const(z, ndx, 0.0f);
    f(k, 0.0f, res);
    f(k, 0.0f, z);
    char buf[192];
    snprintf(buf, sizeof buf, "%.120s: beta = 0 over NaN", what);
    check_finite(buf, res, ndx);
    snprintf(buf, sizeof buf, "%.120s: beta = 0 over NaN vs over zeros", what);
    check_bytes_eq(buf, res, z, ndx * sizeof(float));
    f(k, 1.0f, acc);
    double *want = tu_dvec(ndx);
    for (size_t i = 0; i < ndx; i++)
        want[i] = (double)res[i] + (double)old[i];
    snprintf(buf, sizeof buf, "%.120s: beta = 1 accumulates", what);
    check_rel(buf, acc, want, ndx, 1e-6);
    free(z);
    free(acc);
    free(old);
    free(want);
    return res;
}

/* ------------------------------------------------------------------ convolution */

typedef struct conv_case {
    int32_t n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw;
} conv_case;

static lgd_conv_shape conv_shape(conv_case k)
{
    lgd_conv_shape s;
    s.n = k.n;
    s.c_in = k.c_in;
    s.h = k.h;
    s.w = k.w;
    s.c_out = k.c_out;
    s.kh = k.kh;
    s.kw = k.kw;
    s.stride_h = k.sh;
    s.stride_w = k.sw;
    s.pad_h = k.ph;
    s.pad_w = k.pw;
    s.h_out = (k.h + 2 * k.ph - k.kh) / k.sh + 1;
    s.w_out = (k.w + 2 * k.pw - k.kw) / k.sw + 1;
    return s;
}

static size_t conv_nx(const lgd_conv_shape *s) { return (size_t)s->n * s->c_in * s->h * s->w; }
static size_t conv_ny(const lgd_conv_shape *s)
{
    return (size_t)s->n * s->c_out * s->h_out * s->w_out;
}
static size_t conv_nw(const lgd_conv_shape *s) { return (size_t)s->c_out * s->c_in * s->kh * s->kw; }

/* direct loops: y[i][co][oh][ow] = bias[co] + sum w[co][ci][ki][kj] x[i][ci][ih][iw] */
static void ref_conv(const lgd_conv_shape *s, const double *x, const double *w, const double *bias,
                     double *y)
{
    for (int i = 0; i < s->n; i++)
        for (int co = 0; co < s->c_out; co++)
            for (int oh = 0; oh < s->h_out; oh++)
                for (int ow = 0; ow < s->w_out; ow++) {
                    double acc = bias ? bias[co] : 0.0;
                    for (int ci = 0; ci < s->c_in; ci++)
                        for (int ki = 0; ki < s->kh; ki++)
                            for (int kj = 0; kj < s->kw; kj++) {
                                int ih = oh * s->stride_h - s->pad_h + ki;
                                int iw = ow * s->stride_w - s->pad_w + kj;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w)
                                    continue;
                                acc += w[((co * s->c_in + ci) * s->kh + ki) * s->kw + kj] *
                                       x[((i * s->c_in + ci) * s->h + ih) * s->w + iw];
                            }
                    y[((i * s->c_out + co) * s->h_out + oh) * s->w_out + ow] = acc;
                }
}

/* the transpose, scattering each output's cotangent back over its window */
static void ref_conv_t(const lgd_conv_shape *s, const double *dy, const double *w, double *dx)
{
    memset(dx, 0, conv_nx(s) * sizeof *dx);
    for (int i = 0; i < s->n; i++)
        for (int co = 0; co < s->c_out; co++)
            for (int oh = 0; oh < s->h_out; oh++)
                for (int ow = 0; ow < s->w_out; ow++) {
                    double g = dy[((i * s->c_out + co) * s->h_out + oh) * s->w_out + ow];
                    for (int ci = 0; ci < s->c_in; ci++)
                        for (int ki = 0; ki < s->kh; ki++)
                            for (int kj = 0; kj < s->kw; kj++) {
                                int ih = oh * s->stride_h - s->pad_h + ki;
                                int iw = ow * s->stride_w - s->pad_w + kj;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w)
                                    continue;
                                dx[((i * s->c_in + ci) * s->h + ih) * s->w + iw] +=
                                    w[((co * s->c_in + ci) * s->kh + ki) * s->kw + kj] * g;
                            }
                }
}

typedef struct conv_ref_ctx {
    const lgd_conv_shape *s;
    const double *w;
} conv_ref_ctx;

static void ref_conv_fn(const void *ctx, const double *x, double *y)
{
    const conv_ref_ctx *k = ctx;
    ref_conv(k->s, x, k->w, NULL, y);
}

static void bw_conv(const bw_ctx *k, float beta, float *dx)
{
    ck_assert_int_eq(lgd_nn_kernels_cpu.conv2d_backward_data(k->c->be, k->cs, k->dy, k->wt, beta, dx), 0);
}

/* Shapes: odd sizes, strides 1/2 (and mixed), padding 0/1/2, kernels 1/3/5 (and
 * rectangular), 1-D (h = kh = 1), c_in != c_out, batch 1 and 3; and every way the
 * backend cuts a convolution into GEMMs: several images side by side in one block
 * (small images; also in several blocks), one image per block, several tiles per
 * image (tile boundaries inside a row), and the direct 1x1 GEMM. */
static const conv_case conv_cases[] = {
    { 1, 3, 5, 7, 4, 3, 3, 1, 1, 1, 1 },    /* odd, pad 1 */
    { 3, 4, 9, 8, 6, 3, 3, 2, 2, 1, 1 },    /* stride 2, batch 3 */
    { 2, 5, 11, 13, 3, 5, 5, 1, 1, 2, 2 },  /* kernel 5, pad 2 */
    { 3, 6, 7, 9, 5, 5, 5, 2, 2, 0, 0 },    /* kernel 5, stride 2, no pad */
    { 3, 8, 6, 6, 5, 1, 1, 1, 1, 0, 0 },    /* 1x1, small images: batched im2col */
    { 1, 6, 3, 3, 4, 1, 1, 1, 1, 0, 0 },    /* 1x1, one image: direct GEMM */
    { 2, 5, 1, 70, 4, 1, 1, 1, 1, 0, 0 },   /* 1x1, 1-D, wide enough: direct GEMM */
    { 2, 4, 7, 7, 6, 1, 1, 2, 2, 0, 0 },    /* 1x1 stride 2 */
    { 1, 3, 4, 5, 2, 1, 1, 1, 1, 1, 1 },    /* 1x1 pad 1 */
    { 1, 2, 8, 9, 3, 3, 3, 2, 1, 1, 0 },    /* mixed stride / pad */
    { 2, 3, 6, 7, 4, 3, 1, 1, 1, 1, 0 },    /* 3x1 kernel */
    { 1, 2, 3, 3, 2, 3, 3, 2, 2, 2, 2 },    /* padding as large as the kernel reach */
    { 3, 4, 1, 17, 6, 1, 3, 1, 1, 0, 1 },   /* 1-D k3 pad 1 */
    { 2, 3, 1, 20, 5, 1, 5, 1, 2, 0, 2 },   /* 1-D k5 stride 2 pad 2 */
    { 3, 5, 1, 9, 4, 1, 1, 1, 1, 0, 0 },    /* 1-D direct */
    { 2, 16, 20, 25, 8, 3, 3, 1, 1, 1, 1 }, /* medium */
    { 1, 40, 9, 11, 6, 5, 5, 1, 1, 2, 2 },  /* large K */
    { 2, 64, 30, 40, 3, 1, 1, 1, 1, 0, 0 }, /* direct, larger */
    /* K (h_out w_out) over the 4 MiB im2col tile: several tiles per image, split
     * inside a row */
    { 1, 64, 30, 30, 3, 5, 5, 1, 1, 2, 2 },   /* 2 tiles */
    { 1, 64, 61, 61, 2, 5, 5, 2, 2, 2, 2 },   /* 2 tiles, stride 2 */
    { 1, 512, 1, 1500, 2, 1, 3, 1, 1, 0, 1 }, /* 1-D, 3 tiles */
    /* small images batched side by side: 2 blocks of 2 and 1 images */
    { 3, 64, 15, 20, 2, 5, 5, 1, 1, 2, 2 },
};
#define N_CONV_CASES (sizeof conv_cases / sizeof conv_cases[0])

START_TEST(conv2d_forward_reference)
{
    tu_rng r = { 501 };
    cpu_be c = cpu_open(2);
    for (size_t t = 0; t < N_CONV_CASES; t++) {
        lgd_conv_shape s = conv_shape(conv_cases[t]);
        size_t nx = conv_nx(&s), ny = conv_ny(&s), nw = conv_nw(&s);
        float *x = tu_randn(&r, nx, 1.0f), *w = tu_randn(&r, nw, 0.5f), *b = tu_randn(&r, s.c_out, 1.0f);
        float *y = tu_fvec(ny);
        double *xd = to_double(x, nx), *wd = to_double(w, nw), *bd = to_double(b, s.c_out);
        double *yd = tu_dvec(ny);
        char what[96];
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            fill_const(y, ny, NAN); /* the output is written, never read */
            ck_assert_int_eq(lgd_nn_kernels_cpu.conv2d_forward(c.be, &s, x, w, with_bias ? b : NULL, y), 0);
            ref_conv(&s, xd, wd, with_bias ? bd : NULL, yd);
            snprintf(what, sizeof what, "conv case %zu%s", t, with_bias ? " + bias" : "");
            check_rel(what, y, yd, ny, 2e-5);
        }
        free(x);
        free(w);
        free(b);
        free(y);
        free(xd);
        free(wd);
        free(bd);
        free(yd);
    }
    cpu_close(&c);
}
END_TEST

START_TEST(conv2d_bad_shape)
{
    cpu_be c = cpu_open(1);
    float x[64] = { 0 }, w[64] = { 0 }, y[64] = { 0 };
    conv_case k = { 1, 1, 4, 4, 1, 3, 3, 1, 1, 1, 1 };
    lgd_conv_shape s = conv_shape(k);
    ck_assert_int_eq(lgd_nn_kernels_cpu.conv2d_forward(c.be, &s, x, w, NULL, y), 0);
    s.h_out = 5; /* inconsistent with the formula */
    ck_assert_int_ne(lgd_nn_kernels_cpu.conv2d_forward(c.be, &s, x, w, NULL, y), 0);
    ck_assert_int_ne(lgd_nn_kernels_cpu.conv2d_backward_data(c.be, &s, y, w, 0.0f, x), 0);
    s = conv_shape(k);
    s.stride_w = 0;
    ck_assert_int_ne(lgd_nn_kernels_cpu.conv2d_forward(c.be, &s, x, w, NULL, y), 0);
    s = conv_shape(k);
    s.kh = 7; /* kernel larger than the padded input */
    s.h_out = 0;
    ck_assert_int_ne(lgd_nn_kernels_cpu.conv2d_forward(c.be, &s, x, w, NULL, y), 0);
    s = conv_shape(k);
    s.n = 0; /* nothing to do */
    ck_assert_int_eq(lgd_nn_kernels_cpu.conv2d_forward(c.be, &s, x, w, NULL, y), 0);
    cpu_close(&c);
}
END_TEST

START_TEST(conv2d_backward_data_vjp)
{
    tu_rng r = { 502 };
    cpu_be c = cpu_open(2);
    for (size_t t = 0; t < N_CONV_CASES; t++) {
        lgd_conv_shape s = conv_shape(conv_cases[t]);
        size_t nx = conv_nx(&s), ny = conv_ny(&s), nw = conv_nw(&s);
        float *x = tu_randn(&r, nx, 1.0f), *w = tu_randn(&r, nw, 0.5f), *dy = tu_randn(&r, ny, 1.0f);
        float *y = tu_fvec(ny);
        double *wd = to_double(w, nw), *dyd = to_double(dy, ny), *dxd = tu_dvec(nx);
        char what[96];
        snprintf(what, sizeof what, "conv^T case %zu", t);

        bw_ctx k = { .c = &c, .cs = &s, .wt = w, .dy = dy };
        float *dx = check_beta(what, bw_conv, &k, nx, &r);
        ref_conv_t(&s, dyd, wd, dxd);
        check_rel(what, dx, dxd, nx, 2e-5);

        /* the adjoint of the backend's own forward */
        ck_assert_int_eq(lgd_nn_kernels_cpu.conv2d_forward(c.be, &s, x, w, NULL, y), 0);
        check_adjoint(what, x, dx, nx, y, dy, ny, 1e-5);

        /* finite differences of <dy, conv(x)>; element-wise on the small cases */
        conv_ref_ctx rc = { &s, wd };
        check_vjp_fd(what, ref_conv_fn, &rc, x, nx, dy, ny, dx, 3, nx <= 400, 1e-3, 2e-5, &r);

        free(x);
        free(w);
        free(dy);
        free(y);
        free(wd);
        free(dyd);
        free(dxd);
        free(dx);
    }
    cpu_close(&c);
}
END_TEST

/* ------------------------------------------------------------------ batched GEMM */

/* C[M][N] = alpha op(A) op(B) + beta C in double (row-major) */
static void ref_gemm(int ta, int tb, size_t M, size_t N, size_t K, double alpha, const float *A,
                     size_t lda, const float *B, size_t ldb, double beta, const float *C0,
                     size_t ldc, double *C)
{
    for (size_t m = 0; m < M; m++)
        for (size_t n = 0; n < N; n++) {
            double acc = 0.0;
            for (size_t k = 0; k < K; k++)
                acc += (double)(ta ? A[k * lda + m] : A[m * lda + k]) *
                       (double)(tb ? B[n * ldb + k] : B[k * ldb + n]);
            C[m * N + n] = alpha * acc + (beta != 0.0 ? beta * C0[m * ldc + n] : 0.0);
        }
}

START_TEST(gemm_batched_vs_gemm)
{
    tu_rng r = { 503 };
    cpu_be c = cpu_open(2);
    const size_t M = 13, N = 11, K = 7;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int variant = 0; variant < 3; variant++) {
                /* 0: one item; 1: five items with gaps; 2: A shared (stride 0), beta 1 */
                size_t count = variant == 0 ? 1 : 5;
                size_t arows = ta ? K : M, acols = ta ? M : K, brows = tb ? N : K,
                       bcols = tb ? K : N;
                size_t lda = acols + 2, ldb = bcols + 1, ldc = N + 3;
                size_t sa = variant == 2 ? 0 : arows * lda + 5, sb = brows * ldb + 2,
                       sc = M * ldc + 4;
                float alpha = variant == 2 ? 0.5f : 1.0f, beta = variant == 2 ? 1.0f : 0.0f;
                size_t na = (count - 1) * sa + arows * lda, nb = (count - 1) * sb + brows * ldb,
                       nc = (count - 1) * sc + M * ldc;
                float *A = tu_randn(&r, na, 1.0f), *B = tu_randn(&r, nb, 1.0f),
                      *C = tu_randn(&r, nc, 1.0f);
                float *C0 = fcopy(C, nc), *Cg = fcopy(C, nc);
                if (beta == 0.0f)
                    fill_const(C, nc, NAN); /* beta 0 must not read C */
                float *Cin = fcopy(C, nc);
                c.ops->gemm_batched(c.be, ta, tb, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta,
                                    C, ldc, sc, count);
                double *ref = tu_dvec(M * N);
                float *got = tu_fvec(M * N), *per = tu_fvec(M * N);
                char *inside = calloc(nc, 1);
                ck_assert_ptr_nonnull(inside);
                for (size_t i = 0; i < count; i++) {
                    c.ops->gemm(c.be, ta, tb, M, N, K, alpha, A + i * sa, lda, B + i * sb, ldb,
                                beta, Cg + i * sc, ldc);
                    ref_gemm(ta, tb, M, N, K, alpha, A + i * sa, lda, B + i * sb, ldb, beta,
                             C0 + i * sc, ldc, ref);
                    for (size_t m = 0; m < M; m++)
                        for (size_t n = 0; n < N; n++) {
                            got[m * N + n] = C[i * sc + m * ldc + n];
                            per[m * N + n] = Cg[i * sc + m * ldc + n];
                            inside[i * sc + m * ldc + n] = 1;
                        }
                    char what[96];
                    snprintf(what, sizeof what, "gemm_batched ta %d tb %d variant %d item %zu",
                             ta, tb, variant, i);
                    check_rel(what, got, ref, M * N, 1e-5);
                    double *perd = to_double(per, M * N);
                    check_rel(what, got, perd, M * N, 1e-5);
                    free(perd);
                }
                /* the gaps between items and the padding of each row are untouched */
                for (size_t j = 0; j < nc; j++)
                    if (!inside[j] && memcmp(&C[j], &Cin[j], sizeof(float)) != 0)
                        ck_abort_msg("gemm_batched wrote outside its items at %zu", j);
                free(inside);
                free(Cin);
                free(A);
                free(B);
                free(C);
                free(C0);
                free(Cg);
                free(ref);
                free(got);
                free(per);
            }
    cpu_close(&c);
}
END_TEST

/* ------------------------------------------------- oneDNN vs OpenBLAS / im2col */

#if LGD_HAVE_DNNL
/* A backend opened with LGD_CPU_ONEDNN set to `value` (the environment restored). */
static cpu_be cpu_open_onednn(int threads, const char *value)
{
    const char *env = getenv("LGD_CPU_ONEDNN");
    char *saved = env ? strdup(env) : NULL;
    ck_assert_int_eq(setenv("LGD_CPU_ONEDNN", value, 1), 0);
    cpu_be c = cpu_open(threads);
    if (saved) {
        setenv("LGD_CPU_ONEDNN", saved, 1);
        free(saved);
    } else {
        unsetenv("LGD_CPU_ONEDNN");
    }
    return c;
}

/* got against a float result of another path (as a double reference) */
static void check_rel_f(const char *what, const float *got, const float *want, size_t n,
                        double tol)
{
    double *wd = to_double(want, n);
    check_rel(what, got, wd, n, tol);
    free(wd);
}

/* Every convolution case through oneDNN and through im2col: forward with and without
 * bias (over NaN in y), backward data with beta = 0 over NaN and beta = 1 over old
 * values; the oneDNN backend must have done each of them itself. */
START_TEST(conv2d_onednn_vs_im2col)
{
    tu_rng r = { 511 };
    cpu_be d = cpu_open_onednn(2, "1"), c = cpu_open_onednn(2, "0");
    ck_assert_int_eq(d.be->onednn, 1);
    ck_assert_int_eq(c.be->onednn, 0);
    for (size_t t = 0; t < N_CONV_CASES; t++) {
        lgd_conv_shape s = conv_shape(conv_cases[t]);
        size_t nx = conv_nx(&s), ny = conv_ny(&s), nw = conv_nw(&s);
        float *x = tu_randn(&r, nx, 1.0f), *w = tu_randn(&r, nw, 0.5f), *b = tu_randn(&r, s.c_out, 1.0f);
        float *dy = tu_randn(&r, ny, 1.0f), *old = tu_randn(&r, nx, 1.0f);
        float *yd = tu_fvec(ny), *yc = tu_fvec(ny), *dxd = tu_fvec(nx), *dxc = tu_fvec(nx);
        char what[96];
        for (int pass = 0; pass < 2; pass++) { /* the second pass: cached primitives */
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                const float *bias = with_bias ? b : NULL;
                uint64_t calls = d.be->dnnl_conv_calls;
                fill_const(yd, ny, NAN);
                ck_assert_int_eq(lgd_nn_kernels_cpu.conv2d_forward(d.be, &s, x, w, bias, yd), 0);
                ck_assert_msg(d.be->dnnl_conv_calls == calls + 1,
                              "conv case %zu: the forward did not run on oneDNN", t);
                ck_assert_int_eq(lgd_nn_kernels_cpu.conv2d_forward(c.be, &s, x, w, bias, yc), 0);
                snprintf(what, sizeof what, "oneDNN conv case %zu%s", t,
                         with_bias ? " + bias" : "");
                check_finite(what, yd, ny);
                check_rel_f(what, yd, yc, ny, 2e-5);
            }
            for (int beta = 0; beta < 2; beta++) {
                if (beta) {
                    memcpy(dxd, old, nx * sizeof(float));
                    memcpy(dxc, old, nx * sizeof(float));
                } else {
                    fill_const(dxd, nx, NAN);
                    fill_const(dxc, nx, NAN);
                }
                uint64_t calls = d.be->dnnl_conv_calls;
                ck_assert_int_eq(lgd_nn_kernels_cpu.conv2d_backward_data(d.be, &s, dy, w, (float)beta, dxd), 0);
                ck_assert_msg(d.be->dnnl_conv_calls == calls + 1,
                              "conv case %zu: the backward did not run on oneDNN", t);
                ck_assert_int_eq(lgd_nn_kernels_cpu.conv2d_backward_data(c.be, &s, dy, w, (float)beta, dxc), 0);
                snprintf(what, sizeof what, "oneDNN conv^T case %zu beta %d", t, beta);
                check_finite(what, dxd, nx);
                check_rel_f(what, dxd, dxc, nx, 2e-5);
            }
        }
        free(x);
        free(w);
        free(b);
        free(dy);
        free(old);
        free(yd);
        free(yc);
        free(dxd);
        free(dxc);
    }
    cpu_close(&d);
    cpu_close(&c);
}
END_TEST

/* More shapes than the backend caches primitives for, twice: evicted shapes are set
 * up again and give the same bytes. */
START_TEST(conv2d_onednn_cache)
{
    tu_rng r = { 512 };
    cpu_be d = cpu_open_onednn(1, "1");
    /* 8 -> 4 channels, 3x3 (oneDNN's blocked layouts), widths 3, 4, ... */
    const size_t shapes = LGD_DNNL_CONV_CACHE + 8;
    const conv_case widest = { 1, 8, 3, 3 + (int32_t)shapes, 4, 3, 3, 1, 1, 1, 1 };
    lgd_conv_shape sw = conv_shape(widest);
    const size_t ny_max = conv_ny(&sw);
    float *x = tu_randn(&r, conv_nx(&sw), 1.0f), *w = tu_randn(&r, conv_nw(&sw), 0.5f);
    float *first = tu_fvec(shapes * ny_max), *y = tu_fvec(ny_max);
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < shapes; i++) {
            conv_case k = widest;
            k.w = 3 + (int32_t)i;
            lgd_conv_shape s = conv_shape(k);
            float *out = pass ? y : first + i * ny_max;
            ck_assert_int_eq(lgd_nn_kernels_cpu.conv2d_forward(d.be, &s, x, w, NULL, out), 0);
            if (pass)
                check_bytes_eq("conv after eviction", y, first + i * ny_max,
                               conv_ny(&s) * sizeof(float));
        }
    ck_assert_uint_eq(d.be->dnnl_conv_calls, 2 * shapes);
    free(x);
    free(w);
    free(first);
    free(y);
    cpu_close(&d);
}
END_TEST

/* gemm and gemm_batched through oneDNN's sgemm (products large enough for it) against
 * OpenBLAS and the double reference: every transposition, padded leading dimensions,
 * beta = 0 over NaN (must not be read) and beta = 1. */
START_TEST(gemm_onednn_vs_openblas)
{
    tu_rng r = { 513 };
    cpu_be d = cpu_open_onednn(2, "1"), c = cpu_open_onednn(2, "0");
    const size_t M = 45, N = 37, K = 29, count = 3;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int beta = 0; beta < 2; beta++) {
                size_t arows = ta ? K : M, acols = ta ? M : K, brows = tb ? N : K,
                       bcols = tb ? K : N;
                size_t lda = acols + 3, ldb = bcols + 1, ldc = N + 2;
                size_t sa = arows * lda, sb = brows * ldb, sc = M * ldc;
                float *A = tu_randn(&r, count * sa, 1.0f), *B = tu_randn(&r, count * sb, 1.0f);
                float *C0 = tu_randn(&r, count * sc, 1.0f);
                float *Cd = fcopy(C0, count * sc), *Cc = fcopy(C0, count * sc);
                float *Cb = fcopy(C0, count * sc);
                if (!beta) {
                    fill_const(Cd, count * sc, NAN);
                    fill_const(Cb, count * sc, NAN);
                }
                float *Cin = fcopy(Cb, count * sc);
                d.ops->gemm(d.be, ta, tb, M, N, K, 0.5f, A, lda, B, ldb, (float)beta, Cd, ldc);
                c.ops->gemm(c.be, ta, tb, M, N, K, 0.5f, A, lda, B, ldb, (float)beta, Cc, ldc);
                d.ops->gemm_batched(d.be, ta, tb, M, N, K, 0.5f, A, lda, sa, B, ldb, sb,
                                    (float)beta, Cb, ldc, sc, count);
                double *ref = tu_dvec(M * N);
                float *got = tu_fvec(M * N), *gotc = tu_fvec(M * N), *gotb = tu_fvec(M * N);
                for (size_t i = 0; i < count; i++) {
                    ref_gemm(ta, tb, M, N, K, 0.5, A + i * sa, lda, B + i * sb, ldb, beta,
                             C0 + i * sc, ldc, ref);
                    for (size_t m = 0; m < M; m++)
                        for (size_t n = 0; n < N; n++) {
                            gotb[m * N + n] = Cb[i * sc + m * ldc + n];
                            if (i == 0) {
                                got[m * N + n] = Cd[m * ldc + n];
                                gotc[m * N + n] = Cc[m * ldc + n];
                            }
                        }
                    char what[96];
                    snprintf(what, sizeof what, "oneDNN gemm_batched ta %d tb %d beta %d item %zu",
                             ta, tb, beta, i);
                    check_rel(what, gotb, ref, M * N, 1e-5);
                    if (i == 0) {
                        snprintf(what, sizeof what, "oneDNN gemm ta %d tb %d beta %d", ta, tb,
                                 beta);
                        check_rel(what, got, ref, M * N, 1e-5);
                        check_rel_f(what, got, gotc, M * N, 2e-5);
                        /* gemm and an item of gemm_batched: the same path, the same bytes */
                        check_bytes_eq(what, got, gotb, M * N * sizeof(float));
                    }
                }
                /* the padding of the rows of C is untouched */
                for (size_t j = 0; j < count * sc; j++)
                    if (j % ldc >= N && memcmp(&Cb[j], &Cin[j], sizeof(float)) != 0)
                        ck_abort_msg("oneDNN gemm_batched wrote into the padding at %zu", j);
                free(A);
                free(B);
                free(C0);
                free(Cd);
                free(Cc);
                free(Cb);
                free(Cin);
                free(ref);
                free(got);
                free(gotc);
                free(gotb);
            }
    cpu_close(&d);
    cpu_close(&c);
}
END_TEST
#endif

/* --------------------------------------------------------- per-channel affine ops */

typedef struct ss_ref_ctx {
    size_t n, c, s, stride;
    const double *scale, *shift;
} ss_ref_ctx;

static void ref_scale_shift(const void *ctx, const double *x, double *y)
{
    const ss_ref_ctx *k = ctx;
    for (size_t i = 0; i < k->n; i++)
        for (size_t ch = 0; ch < k->c; ch++) {
            size_t j = i * k->stride + ch;
            for (size_t q = 0; q < k->s; q++) {
                size_t e = (i * k->c + ch) * k->s + q;
                y[e] = x[e] * (1.0 + k->scale[j]) + (k->shift ? k->shift[j] : 0.0);
            }
        }
}

static void bw_scale_shift(const bw_ctx *k, float beta, float *dx)
{
    lgd_nn_kernels_cpu.scale_shift_backward(k->c->be, k->n, k->ch, k->s, k->dy, k->scale, k->stride, beta,
                                    dx);
}

START_TEST(channel_bias_scale_shift)
{
    tu_rng r = { 504 };
    cpu_be c = cpu_open(2);
    const size_t n = 3, ch = 5, s = 7, numel = n * ch * s;
    /* add_channel_bias: shared (b_stride 0), per sample (c), per sample in a wider row */
    const size_t bstrides[3] = { 0, ch, 2 * ch + 1 };
    for (int v = 0; v < 3; v++) {
        float *b = tu_randn(&r, n * bstrides[2] + ch, 1.0f), *y = tu_randn(&r, numel, 1.0f);
        double *want = tu_dvec(numel);
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < ch; k++)
                for (size_t q = 0; q < s; q++) {
                    size_t e = (i * ch + k) * s + q;
                    want[e] = (double)y[e] + b[i * bstrides[v] + k];
                }
        lgd_nn_kernels_cpu.add_channel_bias(c.be, n, ch, s, b, bstrides[v], y);
        check_rel("add_channel_bias", y, want, numel, 1e-6);
        free(b);
        free(y);
        free(want);
    }
    /* scale_shift: stride 0 (shared), c, 2c (FiLM: scale and shift halves of one row) */
    const size_t strides[3] = { 0, ch, 2 * ch };
    for (int v = 0; v < 3; v++) {
        size_t nemb = n * 2 * ch + 2 * ch;
        float *emb = tu_randn(&r, nemb, 0.5f), *x = tu_randn(&r, numel, 1.0f), *y = tu_fvec(numel);
        /* stride 0: one row [scale | shift]; c: scale rows then shift rows; 2c: FiLM rows */
        const float *scale = emb, *shift = v == 1 ? emb + n * ch : emb + ch;
        double *embd = to_double(emb, nemb), *xd = to_double(x, numel), *yd = tu_dvec(numel);
        ss_ref_ctx rc = { n, ch, s, strides[v], embd, embd + (shift - emb) };
        fill_const(y, numel, NAN);
        lgd_nn_kernels_cpu.scale_shift(c.be, n, ch, s, x, scale, shift, strides[v], y);
        ref_scale_shift(&rc, xd, yd);
        check_rel("scale_shift", y, yd, numel, 1e-6);
        /* in place */
        float *xi = fcopy(x, numel);
        lgd_nn_kernels_cpu.scale_shift(c.be, n, ch, s, xi, scale, shift, strides[v], xi);
        check_bytes_eq("scale_shift in place", xi, y, numel * sizeof(float));

        float *dy = tu_randn(&r, numel, 1.0f);
        bw_ctx k = { .c = &c, .n = n, .ch = ch, .s = s, .stride = strides[v], .dy = dy,
                     .scale = scale };
        float *dx = check_beta("scale_shift_backward", bw_scale_shift, &k, numel, &r);
        check_vjp_fd("scale_shift_backward", ref_scale_shift, &rc, x, numel, dy, numel, dx, 3, 1,
                     1e-3, 1e-5, &r);
        free(emb);
        free(x);
        free(y);
        free(embd);
        free(xd);
        free(yd);
        free(xi);
        free(dy);
        free(dx);
    }
    cpu_close(&c);
}
END_TEST

/* ------------------------------------------------------------------ activations */

static double ref_act(lgd_activation f, double x)
{
    if (f == LGD_ACT_GELU)
        return 0.5 * x * erfc(-x / sqrt(2.0));
    return x / (1.0 + exp(-x));
}

static double ref_act_grad(lgd_activation f, double x, double *mag)
{
    if (f == LGD_ACT_GELU) {
        double P = 0.5 * erfc(-x / sqrt(2.0)), p = exp(-0.5 * x * x) / sqrt(2.0 * PI_D);
        *mag = fabs(P) + fabs(x * p);
        return P + x * p;
    }
    double s = 1.0 / (1.0 + exp(-x));
    *mag = s + fabs(x) * s * (1.0 - s);
    return s * (1.0 + x * (1.0 - s));
}

typedef struct act_ref_ctx {
    lgd_activation f;
    size_t n;
} act_ref_ctx;

static void ref_act_fn(const void *ctx, const double *x, double *y)
{
    const act_ref_ctx *k = ctx;
    for (size_t i = 0; i < k->n; i++)
        y[i] = ref_act(k->f, x[i]);
}

static void bw_act(const bw_ctx *k, float beta, float *dx)
{
    lgd_nn_kernels_cpu.activation_backward(k->c->be, k->act, k->count, k->x, k->dy, beta, dx);
}

START_TEST(activations)
{
    tu_rng r = { 505 };
    cpu_be c = cpu_open(2);
    static const float special[] = { 0.0f, -0.0f, 1e-3f, -1e-3f, 0.5f, -0.75f, 3.0f, -3.0f,
                                     8.0f, -8.0f, 15.0f, -15.0f, 20.0f, -20.0f, 50.0f, -50.0f,
                                     88.0f, -88.0f, 100.0f, -100.0f, 1e4f, -1e4f, 1e30f, -1e30f };
    const size_t ns = sizeof special / sizeof special[0], n = ns + 300;
    float *x = tu_fvec(n), *y = tu_fvec(n), *dy = tu_randn(&r, n, 1.0f);
    memcpy(x, special, sizeof special);
    tu_fill_normal(&r, x + ns, n - ns, 3.0f);
    for (int fi = 0; fi < 2; fi++) {
        lgd_activation f = fi ? LGD_ACT_GELU : LGD_ACT_SILU;
        const char *name = fi ? "gelu" : "silu";
        lgd_nn_kernels_cpu.activation(c.be, f, n, x, y);
        for (size_t i = 0; i < n; i++) {
            double want = ref_act(f, x[i]);
            if (!(fabs(y[i] - want) <= 2e-6 * fabs(want) + 1e-37))
                ck_abort_msg("%s(%.9g) = %.9g, want %.9g", name, (double)x[i], (double)y[i], want);
        }
        bw_ctx k = { .c = &c, .act = f, .count = n, .x = x, .dy = dy };
        float *dx = check_beta(name, bw_act, &k, n, &r);
        for (size_t i = 0; i < n; i++) {
            double mag, want = dy[i] * ref_act_grad(f, x[i], &mag);
            if (!(fabs(dx[i] - want) <= 4e-6 * (fabs(want) + fabs(dy[i]) * mag) + 1e-37))
                ck_abort_msg("%s'(%.9g) * %.6g = %.9g, want %.9g", name, (double)x[i],
                             (double)dy[i], (double)dx[i], want);
        }
        /* finite differences on the moderate inputs (the random part) */
        act_ref_ctx rc = { f, n - ns };
        check_vjp_fd(name, ref_act_fn, &rc, x + ns, n - ns, dy + ns, n - ns, dx + ns, 3, 1, 1e-5,
                     1e-5, &r);
        free(dx);
    }
    free(x);
    free(y);
    free(dy);
    cpu_close(&c);
}
END_TEST

/* ------------------------------------------------------------------ group norm */

typedef struct gn_ref_ctx {
    size_t n, c, s, groups;
    double eps;
    const double *gamma, *beta;
    double *mean, *rstd; /* outputs (may be NULL) */
} gn_ref_ctx;

static void ref_group_norm(const void *ctx, const double *x, double *y)
{
    const gn_ref_ctx *k = ctx;
    size_t cpg = k->c / k->groups, gs = cpg * k->s;
    for (size_t g = 0; g < k->n * k->groups; g++) {
        const double *xg = x + g * gs;
        double m = 0.0, v = 0.0;
        for (size_t j = 0; j < gs; j++)
            m += xg[j];
        m /= (double)gs;
        for (size_t j = 0; j < gs; j++)
            v += (xg[j] - m) * (xg[j] - m);
        v /= (double)gs;
        double rs = 1.0 / sqrt(v + k->eps);
        for (size_t j = 0; j < gs; j++) {
            size_t ch = (g % k->groups) * cpg + j / k->s;
            y[g * gs + j] = (xg[j] - m) * rs * k->gamma[ch] + k->beta[ch];
        }
        if (k->mean)
            k->mean[g] = m;
        if (k->rstd)
            k->rstd[g] = rs;
    }
}

static void bw_gn(const bw_ctx *k, float beta, float *dx)
{
    lgd_nn_kernels_cpu.group_norm_backward(k->c->be, k->n, k->ch, k->s, k->groups, k->x, k->gamma,
                                   k->mean, k->rstd, k->dy, beta, dx);
}

START_TEST(group_norm)
{
    tu_rng r = { 506 };
    cpu_be c = cpu_open(2);
    static const struct {
        size_t n, c, s, groups;
        float offset; /* added to x: a large mean relative to the spread */
    } cases[] = {
        { 2, 4, 3, 2, 0.0f },      /* small: element-wise finite differences */
        { 1, 6, 1, 1, 0.0f },      /* layer norm of one row */
        { 5, 32, 1, 1, 0.0f },     /* layer norm over 32 features */
        { 3, 12, 25, 3, 0.0f },    /* odd spatial size, several groups */
        { 3, 12, 25, 12, 0.0f },   /* one channel per group */
        { 2, 8, 49, 4, 1000.0f },  /* large mean */
        { 1, 16, 130, 2, -300.0f },
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        size_t n = cases[t].n, ch = cases[t].c, s = cases[t].s, G = cases[t].groups;
        size_t numel = n * ch * s;
        float eps = 1e-5f;
        float *x = tu_randn(&r, numel, 1.5f), *gamma = tu_randn(&r, ch, 1.0f),
              *beta = tu_randn(&r, ch, 1.0f), *dy = tu_randn(&r, numel, 1.0f);
        for (size_t i = 0; i < numel; i++)
            x[i] += cases[t].offset;
        float *y = tu_fvec(numel), *mean = tu_fvec(n * G), *rstd = tu_fvec(n * G);
        double *xd = to_double(x, numel), *gd = to_double(gamma, ch), *bd = to_double(beta, ch);
        double *yd = tu_dvec(numel), *md = tu_dvec(n * G), *rd = tu_dvec(n * G);
        gn_ref_ctx rc = { n, ch, s, G, (double)eps, gd, bd, md, rd };
        ref_group_norm(&rc, xd, yd);
        fill_const(y, numel, NAN);
        lgd_nn_kernels_cpu.group_norm(c.be, n, ch, s, G, eps, x, gamma, beta, y, mean, rstd);
        char what[96];
        snprintf(what, sizeof what, "group_norm case %zu", t);
        check_rel(what, y, yd, numel, 2e-6);
        check_rel(what, mean, md, n * G, 1e-6);
        check_rel(what, rstd, rd, n * G, 1e-6);

        bw_ctx k = { .c = &c, .n = n, .ch = ch, .s = s, .groups = G, .x = x, .gamma = gamma,
                     .mean = mean, .rstd = rstd, .dy = dy };
        snprintf(what, sizeof what, "group_norm_backward case %zu", t);
        float *dx = check_beta(what, bw_gn, &k, numel, &r);
        rc.mean = rc.rstd = NULL;
        check_vjp_fd(what, ref_group_norm, &rc, x, numel, dy, numel, dx, 4, numel <= 200, 1e-4,
                     5e-5, &r);
        free(x);
        free(gamma);
        free(beta);
        free(dy);
        free(y);
        free(mean);
        free(rstd);
        free(xd);
        free(gd);
        free(bd);
        free(yd);
        free(md);
        free(rd);
        free(dx);
    }
    cpu_close(&c);
}
END_TEST

/* ------------------------------------------------------------------ resampling */

typedef struct rs_ref_ctx {
    size_t planes, h, w, fh, fw; /* h, w: the small side for upsampling, the input for pooling */
} rs_ref_ctx;

static void ref_upsample(const void *ctx, const double *x, double *y)
{
    const rs_ref_ctx *k = ctx;
    size_t H = k->h * k->fh, W = k->w * k->fw;
    for (size_t p = 0; p < k->planes; p++)
        for (size_t i = 0; i < H; i++)
            for (size_t j = 0; j < W; j++)
                y[(p * H + i) * W + j] = x[(p * k->h + i / k->fh) * k->w + j / k->fw];
}

static void ref_avg_pool(const void *ctx, const double *x, double *y)
{
    const rs_ref_ctx *k = ctx;
    size_t ho = k->h / k->fh, wo = k->w / k->fw;
    for (size_t p = 0; p < k->planes; p++)
        for (size_t i = 0; i < ho; i++)
            for (size_t j = 0; j < wo; j++) {
                double acc = 0.0;
                for (size_t a = 0; a < k->fh; a++)
                    for (size_t b = 0; b < k->fw; b++)
                        acc += x[(p * k->h + i * k->fh + a) * k->w + j * k->fw + b];
                y[(p * ho + i) * wo + j] = acc / (double)(k->fh * k->fw);
            }
}

static void bw_up(const bw_ctx *k, float beta, float *dx)
{
    lgd_nn_kernels_cpu.upsample_nearest_backward(k->c->be, k->planes, k->h, k->w, k->fh, k->fw, k->dy,
                                         beta, dx);
}

static void bw_pool(const bw_ctx *k, float beta, float *dx)
{
    lgd_nn_kernels_cpu.avg_pool_backward(k->c->be, k->planes, k->h, k->w, k->fh, k->fw, k->dy, beta, dx);
}

START_TEST(upsample_avg_pool)
{
    tu_rng r = { 507 };
    cpu_be c = cpu_open(2);
    static const size_t cases[][5] = {
        /* planes, h, w, fh, fw (h, w: the small side) */
        { 1, 2, 3, 2, 2 }, { 6, 5, 7, 2, 2 }, { 4, 3, 4, 1, 2 }, { 3, 1, 9, 1, 2 },
        { 2, 4, 3, 3, 3 }, { 5, 6, 6, 2, 1 },
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        rs_ref_ctx rc = { cases[t][0], cases[t][1], cases[t][2], cases[t][3], cases[t][4] };
        size_t ns = rc.planes * rc.h * rc.w, nb = ns * rc.fh * rc.fw;
        char what[96];

        /* upsampling small -> big */
        float *x = tu_randn(&r, ns, 1.0f), *y = tu_fvec(nb), *dy = tu_randn(&r, nb, 1.0f);
        double *xd = to_double(x, ns), *yd = tu_dvec(nb);
        fill_const(y, nb, NAN);
        lgd_nn_kernels_cpu.upsample_nearest(c.be, rc.planes, rc.h, rc.w, rc.fh, rc.fw, x, y);
        ref_upsample(&rc, xd, yd);
        snprintf(what, sizeof what, "upsample_nearest case %zu", t);
        check_rel(what, y, yd, nb, 1e-7);
        bw_ctx k = { .c = &c, .planes = rc.planes, .h = rc.h, .w = rc.w, .fh = rc.fh,
                     .fw = rc.fw, .dy = dy };
        float *dx = check_beta(what, bw_up, &k, ns, &r);
        check_adjoint(what, x, dx, ns, y, dy, nb, 1e-6);
        check_vjp_fd(what, ref_upsample, &rc, x, ns, dy, nb, dx, 3, 1, 1e-3, 1e-5, &r);

        /* pooling big -> small: the input is h fh x w fw */
        rs_ref_ctx pc = { rc.planes, rc.h * rc.fh, rc.w * rc.fw, rc.fh, rc.fw };
        float *xb = tu_randn(&r, nb, 1.0f), *ys = tu_fvec(ns), *dys = tu_randn(&r, ns, 1.0f);
        double *xbd = to_double(xb, nb), *ysd = tu_dvec(ns);
        fill_const(ys, ns, NAN);
        lgd_nn_kernels_cpu.avg_pool(c.be, pc.planes, pc.h, pc.w, pc.fh, pc.fw, xb, ys);
        ref_avg_pool(&pc, xbd, ysd);
        snprintf(what, sizeof what, "avg_pool case %zu", t);
        check_rel(what, ys, ysd, ns, 1e-6);
        bw_ctx kp = { .c = &c, .planes = pc.planes, .h = pc.h, .w = pc.w, .fh = pc.fh,
                      .fw = pc.fw, .dy = dys };
        float *dxb = check_beta(what, bw_pool, &kp, nb, &r);
        check_adjoint(what, xb, dxb, nb, ys, dys, ns, 1e-6);
        check_vjp_fd(what, ref_avg_pool, &pc, xb, nb, dys, ns, dxb, 3, 1, 1e-3, 1e-5, &r);

        free(x);
        free(y);
        free(dy);
        free(xd);
        free(yd);
        free(dx);
        free(xb);
        free(ys);
        free(dys);
        free(xbd);
        free(ysd);
        free(dxb);
    }
    cpu_close(&c);
}
END_TEST

/* ------------------------------------------------------------------ copies */

START_TEST(copy_rows)
{
    tu_rng r = { 508 };
    cpu_be c = cpu_open(2);
    const size_t rows = 5, cols = 7, ldd = 10;
    const size_t ldss[2] = { 9, 0 }; /* strided rows; one row broadcast */
    for (int v = 0; v < 2; v++) {
        size_t lds = ldss[v];
        float *src = tu_randn(&r, rows * 9, 1.0f), *dst = tu_fvec(rows * ldd);
        /* NaN where the copy goes (beta 0 must ignore it), a sentinel in the padding */
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < ldd; j++)
                dst[i * ldd + j] = j < cols ? NAN : 42.0f + (float)j;
        c.ops->copy_rows(c.be, rows, cols, src, lds, 0.0f, dst, ldd);
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < ldd; j++) {
                float want = j < cols ? src[i * lds + j] : 42.0f + (float)j;
                ck_assert_msg(memcmp(&dst[i * ldd + j], &want, sizeof want) == 0,
                              "copy_rows lds %zu: [%zu][%zu] = %g, want %g", lds, i, j,
                              (double)dst[i * ldd + j], (double)want);
            }
        float *old = fcopy(dst, rows * ldd);
        c.ops->copy_rows(c.be, rows, cols, src, lds, 1.0f, dst, ldd);
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < ldd; j++) {
                float want = j < cols ? src[i * lds + j] + old[i * ldd + j] : old[i * ldd + j];
                ck_assert_msg(dst[i * ldd + j] == want, "copy_rows beta 1 lds %zu: [%zu][%zu]",
                              lds, i, j);
            }
        free(src);
        free(dst);
        free(old);
    }
    cpu_close(&c);
}
END_TEST

/* The sinusoidal time embedding against a double-precision evaluation of the formula
 * (t up to 1000, as discrete timesteps go: float rounding of t f_i dominates). */
START_TEST(time_embedding)
{
    cpu_be c = cpu_open(1);
    static const float ts[] = { 0.0f, 0.7f, 37.5f, 999.0f };
    static const size_t dims[] = { 2, 16, 64, 320 };
    for (size_t a = 0; a < 4; a++)
        for (size_t d = 0; d < 4; d++) {
            size_t dim = dims[d], half = dim / 2;
            float *out = tu_fvec(dim);
            lgd_nn_kernels_cpu.time_embedding(c.be, ts[a], dim, out);
            for (size_t i = 0; i < half; i++) {
                double f = exp(-log(10000.0) * (double)i / (double)half), arg = ts[a] * f;
                /* |d arg| <= |arg| 2^-22 from the float product and frequency */
                double tol = 1e-6 + fabs(arg) * 5e-7;
                ck_assert_msg(fabs(out[i] - cos(arg)) <= tol && fabs(out[half + i] - sin(arg)) <= tol,
                              "t %g dim %zu i %zu: (%g, %g) vs (%g, %g)", (double)ts[a], dim, i,
                              (double)out[i], (double)out[half + i], cos(arg), sin(arg));
            }
            free(out);
        }
    cpu_close(&c);
}
END_TEST

START_TEST(transpose)
{
    tu_rng r = { 509 };
    cpu_be c = cpu_open(2);
    static const size_t cases[][3] = { { 1, 1, 1 }, { 3, 37, 45 }, { 2, 64, 32 }, { 1, 5, 100 } };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        size_t B = cases[t][0], R = cases[t][1], C = cases[t][2], n = B * R * C;
        float *x = tu_randn(&r, n, 1.0f), *y = tu_fvec(n), *back = tu_fvec(n);
        fill_const(y, n, NAN);
        fill_const(back, n, NAN);
        c.ops->transpose(c.be, B, R, C, x, 0.0f, y);
        for (size_t b = 0; b < B; b++)
            for (size_t i = 0; i < R; i++)
                for (size_t j = 0; j < C; j++)
                    if (y[(b * C + j) * R + i] != x[(b * R + i) * C + j])
                        ck_abort_msg("transpose case %zu: [%zu][%zu][%zu]", t, b, j, i);
        /* round trip is the identity, bitwise */
        c.ops->transpose(c.be, B, C, R, y, 0.0f, back);
        check_bytes_eq("transpose round trip", back, x, n * sizeof(float));
        /* beta 1 accumulates: x + transpose(transpose(x)) = 2 x */
        c.ops->transpose(c.be, B, C, R, y, 1.0f, back);
        for (size_t i = 0; i < n; i++)
            if (back[i] != 2.0f * x[i])
                ck_abort_msg("transpose beta 1 [%zu]", i);
        free(x);
        free(y);
        free(back);
    }
    cpu_close(&c);
}
END_TEST

/* ------------------------------------------------------------------ thread invariance */

/* Every op with 1 and 2 threads, at sizes that take the parallel paths. */
START_TEST(thread_invariance)
{
    tu_rng r = { 510 };
    const int quick = tu_quick();
    cpu_be c1 = cpu_open(1), c2 = cpu_open(2);
    cpu_be *cs[2] = { &c1, &c2 };

    /* convolutions: im2col with several tiles, direct, stride 2, 1-D */
    const conv_case cc[] = {
        { 4, 16, 20, 25, 16, 3, 3, 1, 1, 1, 1 },
        { 4, 32, 16, 16, 32, 1, 1, 1, 1, 0, 0 },
        { 3, 16, 17, 17, 24, 3, 3, 2, 2, 1, 1 },
        { 5, 32, 1, 300, 32, 1, 5, 1, 1, 0, 2 },
        { 1, 64, 8, 8, 64, 3, 3, 1, 1, 1, 1 },
        { 2, 64, 30, 30, 8, 5, 5, 1, 1, 2, 2 }, /* 2 tiles per image */
    };
    for (size_t t = 0; t < sizeof cc / sizeof cc[0]; t++) {
        if (quick && t >= 3 && t + 1 < sizeof cc / sizeof cc[0])
            continue;
        lgd_conv_shape s = conv_shape(cc[t]);
        size_t nx = conv_nx(&s), ny = conv_ny(&s), nw = conv_nw(&s);
        float *x = tu_randn(&r, nx, 1.0f), *w = tu_randn(&r, nw, 0.2f), *b = tu_randn(&r, s.c_out, 1.0f);
        float *dy = tu_randn(&r, ny, 1.0f), *old = tu_randn(&r, nx, 1.0f);
        float *y[2], *dx[2];
        for (int k = 0; k < 2; k++) {
            y[k] = tu_fvec(ny);
            dx[k] = fcopy(old, nx);
            ck_assert_int_eq(lgd_nn_kernels_cpu.conv2d_forward(cs[k]->be, &s, x, w, b, y[k]), 0);
            ck_assert_int_eq(lgd_nn_kernels_cpu.conv2d_backward_data(cs[k]->be, &s, dy, w, 1.0f, dx[k]), 0);
        }
        check_bytes_eq("conv2d_forward threads", y[0], y[1], ny * sizeof(float));
        check_bytes_eq("conv2d_backward_data threads", dx[0], dx[1], nx * sizeof(float));
        for (int k = 0; k < 2; k++) {
            free(y[k]);
            free(dx[k]);
        }
        free(x);
        free(w);
        free(b);
        free(dy);
        free(old);
    }

    /* batched GEMM */
    {
        const size_t M = 48, N = 40, K = 32, count = 8;
        float *A = tu_randn(&r, count * M * K, 1.0f), *B = tu_randn(&r, count * K * N, 1.0f);
        float *C[2];
        for (int k = 0; k < 2; k++) {
            C[k] = tu_fvec(count * M * N);
            cs[k]->ops->gemm_batched(cs[k]->be, 0, 1, M, N, K, 1.0f, A, K, M * K, B, K, K * N,
                                     0.0f, C[k], N, M * N, count);
        }
        check_bytes_eq("gemm_batched threads", C[0], C[1], count * M * N * sizeof(float));
        free(A);
        free(B);
        free(C[0]);
        free(C[1]);
    }

    /* the elementwise, normalisation, resampling and copy ops */
    const size_t n = quick ? 4 : 8, ch = 32, sp = quick ? 256 : 1024, G = 8;
    const size_t numel = n * ch * sp;
    float *x = tu_randn(&r, numel, 2.0f), *dy = tu_randn(&r, numel, 1.0f), *old = tu_randn(&r, 4 * numel, 1.0f);
    float *gamma = tu_randn(&r, ch, 1.0f), *beta = tu_randn(&r, ch, 1.0f), *emb = tu_randn(&r, n * 2 * ch, 0.3f);
    float *out[2], *out2[2], *mean[2], *rstd[2];
    for (int k = 0; k < 2; k++) {
        out[k] = tu_fvec(4 * numel);
        out2[k] = tu_fvec(4 * numel);
        mean[k] = tu_fvec(n * G);
        rstd[k] = tu_fvec(n * G);
    }
#define BOTH(call_k, what, buf, count)                                                     \
    do {                                                                                    \
        for (int k = 0; k < 2; k++) {                                                       \
            memcpy(buf[k], old, (count) * sizeof(float));                                   \
            call_k;                                                                         \
        }                                                                                   \
        check_bytes_eq(what, buf[0], buf[1], (count) * sizeof(float));                      \
    } while (0)
    BOTH(lgd_nn_kernels_cpu.activation(cs[k]->be, LGD_ACT_SILU, numel, x, out[k]), "silu", out, numel);
    BOTH(lgd_nn_kernels_cpu.activation(cs[k]->be, LGD_ACT_GELU, numel, x, out[k]), "gelu", out, numel);
    BOTH(lgd_nn_kernels_cpu.activation_backward(cs[k]->be, LGD_ACT_SILU, numel, x, dy, 1.0f, out[k]),
         "silu backward", out, numel);
    BOTH(lgd_nn_kernels_cpu.activation_backward(cs[k]->be, LGD_ACT_GELU, numel, x, dy, 0.0f, out[k]),
         "gelu backward", out, numel);
    BOTH(lgd_nn_kernels_cpu.add_channel_bias(cs[k]->be, n, ch, sp, emb, 2 * ch, out[k]), "add_channel_bias",
         out, numel);
    BOTH(lgd_nn_kernels_cpu.scale_shift(cs[k]->be, n, ch, sp, x, emb, emb + ch, 2 * ch, out[k]),
         "scale_shift", out, numel);
    BOTH(lgd_nn_kernels_cpu.scale_shift_backward(cs[k]->be, n, ch, sp, dy, emb, 2 * ch, 1.0f, out[k]),
         "scale_shift_backward", out, numel);
    BOTH(lgd_nn_kernels_cpu.group_norm(cs[k]->be, n, ch, sp, G, 1e-5f, x, gamma, beta, out[k], mean[k],
                                rstd[k]),
         "group_norm", out, numel);
    check_bytes_eq("group_norm mean", mean[0], mean[1], n * G * sizeof(float));
    check_bytes_eq("group_norm rstd", rstd[0], rstd[1], n * G * sizeof(float));
    BOTH(lgd_nn_kernels_cpu.group_norm_backward(cs[k]->be, n, ch, sp, G, x, gamma, mean[0], rstd[0], dy,
                                         1.0f, out[k]),
         "group_norm_backward", out, numel);
    /* planes = n ch of sp = 16 x (sp / 16) */
    const size_t P = n * ch, H = 16, W = sp / 16;
    BOTH(lgd_nn_kernels_cpu.upsample_nearest(cs[k]->be, P, H, W, 2, 2, x, out[k]), "upsample", out,
         4 * numel);
    BOTH(lgd_nn_kernels_cpu.upsample_nearest_backward(cs[k]->be, P, H / 2, W / 2, 2, 2, x, 1.0f, out[k]),
         "upsample backward", out, numel / 4);
    BOTH(lgd_nn_kernels_cpu.avg_pool(cs[k]->be, P, H, W, 2, 2, x, out[k]), "avg_pool", out, numel / 4);
    BOTH(lgd_nn_kernels_cpu.avg_pool_backward(cs[k]->be, P, H, W, 2, 2, dy, 1.0f, out[k]),
         "avg_pool backward", out, numel);
    BOTH(cs[k]->ops->copy_rows(cs[k]->be, n * ch, sp, x, sp, 1.0f, out[k], sp + 3), "copy_rows",
         out, n * ch * (sp + 3));
    BOTH(cs[k]->ops->transpose(cs[k]->be, n, ch, sp, x, 1.0f, out[k]), "transpose", out, numel);
    (void)out2;
#undef BOTH
    for (int k = 0; k < 2; k++) {
        free(out[k]);
        free(out2[k]);
        free(mean[k]);
        free(rstd[k]);
    }
    free(x);
    free(dy);
    free(old);
    free(gamma);
    free(beta);
    free(emb);
    cpu_close(&c1);
    cpu_close(&c2);
}
END_TEST

/* ------------------------------------------------------------------ suite */

static Suite *nn_ops_suite(void)
{
    Suite *s = suite_create("nn_ops");
    TCase *tc = tcase_create("conv");
    tcase_add_test(tc, conv2d_forward_reference);
    tcase_add_test(tc, conv2d_bad_shape);
    tcase_add_test(tc, conv2d_backward_data_vjp);
    tcase_add_test(tc, gemm_batched_vs_gemm);
    suite_add_tcase(s, tc);

#if LGD_HAVE_DNNL
    tc = tcase_create("onednn");
    tcase_add_test(tc, conv2d_onednn_vs_im2col);
    tcase_add_test(tc, conv2d_onednn_cache);
    tcase_add_test(tc, gemm_onednn_vs_openblas);
    suite_add_tcase(s, tc);
#endif

    tc = tcase_create("layers");
    tcase_add_test(tc, channel_bias_scale_shift);
    tcase_add_test(tc, activations);
    tcase_add_test(tc, group_norm);
    tcase_add_test(tc, upsample_avg_pool);
    tcase_add_test(tc, copy_rows);
    tcase_add_test(tc, transpose);
    tcase_add_test(tc, time_embedding);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_add_test(tc, thread_invariance);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(nn_ops_suite()); }
