/*
 * cpu_nn.c - the CPU backend's network-layer kernels (the table lgd_nn_kernels_cpu of
 * nn/nn_kernels.h): convolutions by im2col + SGEMM, group norm, activations, nearest
 * upsampling, average pooling, the time embedding; and the generic batched GEMM, row
 * copies and transposes of the backend table (they share this file's GEMM and
 * threading rules).
 *
 * As in cpu_backend.c, every output element is computed by one thread in a fixed
 * order, so results do not depend on the backend's thread count. GEMMs therefore
 * never run inside this file's OpenMP regions: OpenBLAS runs single-threaded inside
 * an active parallel region and with its own threads outside one, and with some of
 * its kernels (Haswell, used on AVX2 machines) the two give different roundings.
 * So the GEMMs are called one after the other from the calling thread (BLAS threads
 * them as it does cpu_gemm's, independently of be->threads), the way a convolution
 * is cut into GEMM tiles depends only on its shape, and be->threads parallelises
 * the data movement around them (im2col, col2im) and the other layers.
 *
 * Every *_backward writes dx = result + beta dx; with beta = 0 the old content
 * of dx is never read (it may be NaN).
 *
 * Built with oneDNN (and not switched off by LGD_CPU_ONEDNN=0), the GEMMs and the
 * convolutions go to cpu_dnnl.c first; the paths here are the fallback.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_nn.h"
#include "backend/cpu/cpu_parallel.h"
#include "core/hd_math.h"

/* An im2col block holds about this many floats (4 MiB, cache-sized) ... */
#define NN_COL_TILE_FLOATS (1u << 20)
/* ... but at least this many columns (GEMM efficiency), a multiple of 16. */
#define NN_MIN_TILE 64


/* ------------------------------------------------------------------ scratch */

void lgd_cpu_nn_release(lgd_backend *be)
{
    free(be->nn_scratch);
    be->nn_scratch = NULL;
    be->nn_scratch_floats = 0;
}

/* At least `floats` floats of scratch (grow-only), or NULL when allocation fails
 * (the old buffer is then kept). */
static float *scratch(lgd_backend *be, size_t floats)
{
    if (floats == 0)
        floats = 1;
    if (floats <= be->nn_scratch_floats)
        return be->nn_scratch;
    if (floats > (SIZE_MAX - 63) / sizeof(float))
        return NULL;
    size_t bytes = (floats * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (!p)
        return NULL;
    free(be->nn_scratch);
    be->nn_scratch = p;
    be->nn_scratch_floats = bytes / sizeof(float);
    return p;
}

float *lgd_cpu_nn_scratch(lgd_backend *be, size_t floats) { return scratch(be, floats); }

/* ------------------------------------------------------------------ GEMM */

void lgd_cpu_sgemm(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                   float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                   float beta, float *C, size_t ldc)
{
    if (M == 0 || N == 0)
        return;
    /* oneDNN's sgemm when built with it (backend_cpu_dnnl.c); OpenBLAS otherwise, and
     * for what oneDNN leaves to it (small or K = 0 products, errors) */
    if (be->onednn && lgd_cpu_dnnl_sgemm(be, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb,
                                         beta, C, ldc) == 0)
        return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, (blasint)K, alpha,
                A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

void lgd_cpu_gemm_batched(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N,
                          size_t K, float alpha, const float *A, size_t lda, size_t stride_a,
                          const float *B, size_t ldb, size_t stride_b, float beta, float *C,
                          size_t ldc, size_t stride_c, size_t count)
{
    /* one call after another: see the top of the file */
    for (size_t i = 0; i < count; i++)
        lgd_cpu_sgemm(be, trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda,
                      B + i * stride_b, ldb, beta, C + i * stride_c, ldc);
}

/* ------------------------------------------------------------------ convolution */

/* How a convolution is cut into GEMMs (a function of the shape only). The columns of
 * the im2col matrix are the output positions; a block of columns is either a tile of
 * one image's positions (large images: ipb = 1, tiles >= 1) or all positions of ipb
 * consecutive images side by side (small images, so that the GEMMs are wide enough
 * for BLAS's threads). */
typedef struct conv_plan {
    size_t n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, ho, wo;
    size_t K;      /* c_in kh kw: rows of the im2col matrix */
    size_t P;      /* h_out w_out: output positions per image */
    size_t plane;  /* h w */
    size_t ipb;    /* images per block */
    size_t pt;     /* positions per tile when ipb = 1 (the last tile may be shorter) */
    size_t tiles;  /* tiles per image (1 when ipb > 1) */
    size_t cols;   /* most columns of a block: max(pt, ipb P) */
    int direct;    /* 1x1, stride 1, no padding, ipb = 1: x_i is the im2col matrix */
} conv_plan;

static int conv_plan_make(const lgd_conv_shape *s, conv_plan *p)
{
    if (!s || s->n < 0 || s->c_in <= 0 || s->h <= 0 || s->w <= 0 || s->c_out <= 0 ||
        s->kh <= 0 || s->kw <= 0 || s->stride_h <= 0 || s->stride_w <= 0 || s->pad_h < 0 ||
        s->pad_w < 0)
        return -1;
    /* every size and index below must fit a size_t with room to spare */
    const double big = 4.0e18;
    if ((double)s->c_in * s->kh * s->kw * ((double)s->h_out * s->w_out + NN_MIN_TILE) > big ||
        (double)s->n * s->c_in * s->h * s->w > big ||
        (double)s->n * s->c_out * ((double)s->h_out * s->w_out) > big)
        return -1;
    int64_t eh = (int64_t)s->h + 2 * (int64_t)s->pad_h - s->kh;
    int64_t ew = (int64_t)s->w + 2 * (int64_t)s->pad_w - s->kw;
    if (eh < 0 || ew < 0 || eh / s->stride_h + 1 != s->h_out || ew / s->stride_w + 1 != s->w_out)
        return -1;
    p->n = (size_t)s->n;
    p->cin = (size_t)s->c_in;
    p->h = (size_t)s->h;
    p->w = (size_t)s->w;
    p->cout = (size_t)s->c_out;
    p->kh = (size_t)s->kh;
    p->kw = (size_t)s->kw;
    p->sh = (size_t)s->stride_h;
    p->sw = (size_t)s->stride_w;
    p->ph = (size_t)s->pad_h;
    p->pw = (size_t)s->pad_w;
    p->ho = (size_t)s->h_out;
    p->wo = (size_t)s->w_out;
    p->K = p->cin * p->kh * p->kw;
    p->P = p->ho * p->wo;
    p->plane = p->h * p->w;
    const int one_by_one =
        p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && p->ph == 0 && p->pw == 0;

    size_t budget = NN_COL_TILE_FLOATS / p->K; /* columns per block */
    if (budget < NN_MIN_TILE)
        budget = NN_MIN_TILE;
    p->tiles = 1;
    p->pt = p->P;
    p->ipb = 1;
    if (p->P >= budget || p->n <= 1 || (one_by_one && p->P >= NN_MIN_TILE)) {
        /* tiles of one image (a 1x1 convolution of a large enough image needs no
         * im2col at all) */
        p->direct = one_by_one;
        if (!p->direct && p->P > budget) {
            size_t pt = (budget + 15) & ~(size_t)15;
            size_t tiles = (p->P + pt - 1) / pt;
            pt = (p->P + tiles - 1) / tiles; /* balance the tiles */
            pt = (pt + 15) & ~(size_t)15;
            if (pt > p->P)
                pt = p->P;
            p->pt = pt;
            p->tiles = (p->P + pt - 1) / pt;
        }
    } else {
        /* blocks of whole images, balanced */
        size_t ipb = budget / p->P;
        if (ipb > p->n)
            ipb = p->n;
        size_t blocks = (p->n + ipb - 1) / ipb;
        p->ipb = (p->n + blocks - 1) / blocks;
        p->direct = 0;
    }
    p->cols = p->ipb > 1 ? p->ipb * p->P : p->pt;
    return 0;
}

static ptrdiff_t clampd(ptrdiff_t v, ptrdiff_t lo, ptrdiff_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* ceil(a / b), floor(a / b) for b > 0 */
static ptrdiff_t ceil_div(ptrdiff_t a, ptrdiff_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
static ptrdiff_t floor_div(ptrdiff_t a, ptrdiff_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* The output columns ow in [*lo, *hi) whose input column ow sw - pw + kj lies in [0, w). */
static void valid_cols(const conv_plan *p, size_t kj, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t off = (ptrdiff_t)kj - (ptrdiff_t)p->pw, sw = (ptrdiff_t)p->sw;
    ptrdiff_t wo = (ptrdiff_t)p->wo;
    *lo = clampd(ceil_div(-off, sw), 0, wo);
    *hi = clampd(floor_div((ptrdiff_t)p->w - 1 - off, sw) + 1, *lo, wo);
}

/* Stride 1 with w_out = w: output position q reads input position q + shift of the
 * plane (when in range), shift = (ki - ph) w + kj - pw, so a row of the im2col matrix
 * is a shifted copy of the plane with a few entries zeroed. */
static int is_flat(const conv_plan *p) { return p->sh == 1 && p->sw == 1 && p->wo == p->w; }

/* For a flat row: the positions [*qa, *qb) within [p0, p1) whose input row lies in
 * the image and whose input position q + shift lies in the plane (the positions
 * left out at the ends are wrapped-around columns); returns the shift. */
static ptrdiff_t flat_range(const conv_plan *p, size_t ki, ptrdiff_t off, size_t p0, size_t p1,
                            size_t *qa, size_t *qb)
{
    const ptrdiff_t dr = (ptrdiff_t)ki - (ptrdiff_t)p->ph, w = (ptrdiff_t)p->w;
    const ptrdiff_t shift = dr * w + off;
    ptrdiff_t a = -dr * w > -shift ? -dr * w : -shift;
    ptrdiff_t b = ((ptrdiff_t)p->h - dr) * w;
    if (b > (ptrdiff_t)p->plane - shift)
        b = (ptrdiff_t)p->plane - shift;
    a = clampd(a, (ptrdiff_t)p0, (ptrdiff_t)p1);
    b = clampd(b, a, (ptrdiff_t)p1);
    *qa = (size_t)a;
    *qb = (size_t)b;
    return shift;
}

/* row[q - p0] = 0 for the positions q in [qa, qb) whose output column lies outside
 * [lo, hi) (their input column wrapped around to the neighbouring row). */
static void zero_wrapped(const conv_plan *p, ptrdiff_t lo, ptrdiff_t hi, size_t qa, size_t qb,
                         float *row, size_t p0)
{
    if (qa >= qb || (lo == 0 && hi == (ptrdiff_t)p->wo))
        return;
    for (size_t oh = qa / p->wo; oh * p->wo < qb; oh++) {
        const size_t base = oh * p->wo;
        for (size_t ow = 0; ow < (size_t)lo; ow++)
            if (base + ow >= qa && base + ow < qb)
                row[base + ow - p0] = 0.0f;
        for (size_t ow = (size_t)hi; ow < p->wo; ow++)
            if (base + ow >= qa && base + ow < qb)
                row[base + ow - p0] = 0.0f;
    }
}

/* im2col of the block of images [i0, i0 + ni) and positions [p0, p1) of each (ni = 1
 * for a tile; p0 = 0, p1 = P for whole images):
 *   col[(c kh + ki) kw + kj][j (p1 - p0) + q - p0] = x[i0 + j][c][oh sh - ph + ki][ow sw - pw + kj]
 * (0 outside the image), q = oh wo + ow; rows of col are ld floats apart. The
 * (image, channel) pairs run in parallel when par is set. */
static void im2col(const conv_plan *p, const float *x, size_t i0, size_t ni, size_t p0, size_t p1,
                   float *col, size_t ld, int nt, int par)
{
    const size_t np = p1 - p0;
    const int flat = is_flat(p);
    LGD_CPU_FOR_IF(nt, par)
    for (size_t u = 0; u < ni * p->cin; u++) {
        const size_t j = u / p->cin, c = u % p->cin;
        const float *xc = x + ((i0 + j) * p->cin + c) * p->plane;
        for (size_t ki = 0; ki < p->kh; ki++)
            for (size_t kj = 0; kj < p->kw; kj++) {
                float *row = col + ((c * p->kh + ki) * p->kw + kj) * ld + j * np;
                ptrdiff_t lo, hi;
                valid_cols(p, kj, &lo, &hi);
                const ptrdiff_t off = (ptrdiff_t)kj - (ptrdiff_t)p->pw;
                if (flat) {
                    /* the row is the plane shifted by `shift`: one copy, then zeros
                     * for the rows outside the image and the wrapped-around columns */
                    size_t qa, qb;
                    ptrdiff_t shift = flat_range(p, ki, off, p0, p1, &qa, &qb);
                    memset(row, 0, (qa - p0) * sizeof(float));
                    if (qb > qa)
                        memcpy(row + (qa - p0), xc + ((ptrdiff_t)qa + shift),
                               (qb - qa) * sizeof(float));
                    memset(row + (qb - p0), 0, (p1 - qb) * sizeof(float));
                    zero_wrapped(p, lo, hi, qa, qb, row, p0);
                    continue;
                }
                for (size_t q = p0; q < p1;) {
                    size_t oh = q / p->wo, a = q % p->wo;
                    size_t b = p->wo < a + (p1 - q) ? p->wo : a + (p1 - q), len = b - a;
                    float *dst = row + (q - p0); /* dst[ow - a] is output column ow */
                    ptrdiff_t ih = (ptrdiff_t)(oh * p->sh) - (ptrdiff_t)p->ph + (ptrdiff_t)ki;
                    if (ih < 0 || ih >= (ptrdiff_t)p->h) {
                        memset(dst, 0, len * sizeof(float));
                    } else {
                        const float *xr = xc + (size_t)ih * p->w;
                        size_t l = (size_t)clampd(lo, (ptrdiff_t)a, (ptrdiff_t)b);
                        size_t r = (size_t)clampd(hi, (ptrdiff_t)l, (ptrdiff_t)b);
                        for (size_t ow = a; ow < l; ow++)
                            dst[ow - a] = 0.0f;
                        if (p->sw == 1 && r > l) {
                            const float *src = xr + (ptrdiff_t)l + off;
                            float *d = dst + (l - a);
                            for (size_t e = 0; e < r - l; e++)
                                d[e] = src[e];
                        } else if (p->sw != 1) {
                            for (size_t ow = l; ow < r; ow++)
                                dst[ow - a] = xr[(ptrdiff_t)(ow * p->sw) + off];
                        }
                        for (size_t ow = r; ow < b; ow++)
                            dst[ow - a] = 0.0f;
                    }
                    q += len;
                }
            }
    }
}

/* The adjoint of im2col (same block and layout): dx[i][c][ih][iw] += col[...] in the
 * fixed order (c, ki, kj, q) per element. Each (image, channel) pair writes its own
 * plane of dx, so the pairs may run in parallel. */
static void col2im(const conv_plan *p, float *col, size_t ld, size_t i0, size_t ni, size_t p0,
                   size_t p1, float *dx, int nt, int par)
{
    const size_t np = p1 - p0;
    const int flat = is_flat(p);
    LGD_CPU_FOR_IF(nt, par)
    for (size_t u = 0; u < ni * p->cin; u++) {
        const size_t j = u / p->cin, c = u % p->cin;
        float *dc = dx + ((i0 + j) * p->cin + c) * p->plane;
        for (size_t ki = 0; ki < p->kh; ki++)
            for (size_t kj = 0; kj < p->kw; kj++) {
                float *row = col + ((c * p->kh + ki) * p->kw + kj) * ld + j * np;
                ptrdiff_t lo, hi;
                valid_cols(p, kj, &lo, &hi);
                const ptrdiff_t off = (ptrdiff_t)kj - (ptrdiff_t)p->pw;
                if (flat) {
                    /* zero the wrapped-around columns of the (scratch) row, then one
                     * contiguous add (their zeros land on neighbouring columns) */
                    size_t qa, qb;
                    ptrdiff_t shift = flat_range(p, ki, off, p0, p1, &qa, &qb);
                    zero_wrapped(p, lo, hi, qa, qb, row, p0);
                    if (qb > qa) {
                        float *d = dc + ((ptrdiff_t)qa + shift);
                        const float *sr = row + (qa - p0);
                        for (size_t e = 0; e < qb - qa; e++)
                            d[e] += sr[e];
                    }
                    continue;
                }
                for (size_t q = p0; q < p1;) {
                    size_t oh = q / p->wo, a = q % p->wo;
                    size_t b = p->wo < a + (p1 - q) ? p->wo : a + (p1 - q);
                    const float *src = row + (q - p0); /* src[ow - a] is output column ow */
                    ptrdiff_t ih = (ptrdiff_t)(oh * p->sh) - (ptrdiff_t)p->ph + (ptrdiff_t)ki;
                    if (ih >= 0 && ih < (ptrdiff_t)p->h) {
                        float *dr = dc + (size_t)ih * p->w;
                        size_t l = (size_t)clampd(lo, (ptrdiff_t)a, (ptrdiff_t)b);
                        size_t r = (size_t)clampd(hi, (ptrdiff_t)l, (ptrdiff_t)b);
                        if (p->sw == 1 && r > l) {
                            float *d = dr + (ptrdiff_t)l + off;
                            const float *sr = src + (l - a);
                            for (size_t e = 0; e < r - l; e++)
                                d[e] += sr[e];
                        } else if (p->sw != 1) {
                            for (size_t ow = l; ow < r; ow++)
                                dr[(ptrdiff_t)(ow * p->sw) + off] += src[ow - a];
                        }
                    }
                    q += b - a;
                }
            }
    }
}

/* Whether data movement of `work` floats runs on be->threads threads. */
static int par_work(const lgd_backend *be, size_t work)
{
    return be->threads > 1 && work >= LGD_CPU_PAR_MIN_WORK;
}

int lgd_cpu_conv2d_forward(lgd_backend *be, const lgd_conv_shape *s, const float *x,
                           const float *w, const float *bias, float *y)
{
    conv_plan p;
    if (conv_plan_make(s, &p))
        return -1;
    if (p.n == 0)
        return 0;
    if (be->onednn && lgd_cpu_dnnl_conv2d_forward(be, s, x, w, bias, y) == 0)
        return 0; /* else im2col below (oneDNN off, or it failed) */
    float *col = NULL, *yt = NULL;
    if (!p.direct) {
        /* the im2col block, and for blocks of several images the GEMM's output */
        size_t need = p.K * p.cols + (p.ipb > 1 ? p.cout * p.cols : 0);
        if (!(col = scratch(be, need)))
            return -1;
        yt = col + p.K * p.cols;
    }
    const int nt = be->threads;
    if (p.ipb > 1) {
        for (size_t i0 = 0; i0 < p.n; i0 += p.ipb) {
            const size_t ni = p.n - i0 < p.ipb ? p.n - i0 : p.ipb, nb = ni * p.P;
            im2col(&p, x, i0, ni, 0, p.P, col, nb, nt, par_work(be, p.K * nb));
            lgd_cpu_sgemm(be, 0, 0, p.cout, nb, p.K, 1.0f, w, p.K, col, nb, 0.0f, yt, nb);
            /* yt[co][j P + q] -> y[i0 + j][co][q] (+ bias) */
            LGD_CPU_FOR(p.cout * nb)
            for (size_t u = 0; u < ni * p.cout; u++) {
                const size_t j = u / p.cout, co = u % p.cout;
                const float *src = yt + co * nb + j * p.P;
                float *dst = y + ((i0 + j) * p.cout + co) * p.P;
                if (bias) {
                    const float bv = bias[co];
                    for (size_t q = 0; q < p.P; q++)
                        dst[q] = src[q] + bv;
                } else {
                    memcpy(dst, src, p.P * sizeof(float));
                }
            }
        }
        return 0;
    }
    for (size_t i = 0; i < p.n; i++) {
        const float *xi = x + i * p.cin * p.plane;
        float *yi = y + i * p.cout * p.P;
        for (size_t t = 0; t < p.tiles; t++) {
            size_t p0 = t * p.pt, p1 = p0 + p.pt < p.P ? p0 + p.pt : p.P, np = p1 - p0;
            float gbeta = 0.0f;
            if (bias) {
                /* y = bias, then the GEMM accumulates onto it */
                LGD_CPU_FOR(p.cout * np)
                for (size_t co = 0; co < p.cout; co++) {
                    float *yr = yi + co * p.P + p0, bv = bias[co];
                    for (size_t q = 0; q < np; q++)
                        yr[q] = bv;
                }
                gbeta = 1.0f;
            }
            if (p.direct) {
                lgd_cpu_sgemm(be, 0, 0, p.cout, np, p.K, 1.0f, w, p.K, xi + p0, p.P, gbeta,
                              yi + p0, p.P);
            } else {
                im2col(&p, x, i, 1, p0, p1, col, np, nt, par_work(be, p.K * np));
                lgd_cpu_sgemm(be, 0, 0, p.cout, np, p.K, 1.0f, w, p.K, col, np, gbeta, yi + p0,
                              p.P);
            }
        }
    }
    return 0;
}

int lgd_cpu_conv2d_backward_data(lgd_backend *be, const lgd_conv_shape *s, const float *dy,
                                 const float *w, float beta, float *dx)
{
    conv_plan p;
    if (conv_plan_make(s, &p))
        return -1;
    if (p.n == 0)
        return 0;
    if (be->onednn && lgd_cpu_dnnl_conv2d_backward_data(be, s, dy, w, beta, dx) == 0)
        return 0; /* else im2col below (it left dx as it was, or beta = 0) */
    if (p.direct) {
        /* dx_i = W^T dy_i + beta dx_i (BLAS does not read C when beta = 0) */
        for (size_t i = 0; i < p.n; i++)
            lgd_cpu_sgemm(be, 1, 0, p.cin, p.P, p.cout, 1.0f, w, p.K, dy + i * p.cout * p.P,
                          p.P, beta, dx + i * p.cin * p.plane, p.plane);
        return 0;
    }
    /* the column block, and for blocks of several images dy gathered side by side */
    float *col = scratch(be, p.K * p.cols + (p.ipb > 1 ? p.cout * p.cols : 0));
    if (!col)
        return -1;
    float *dyt = col + p.K * p.cols;
    const int nt = be->threads;
    const size_t m = p.n * p.cin * p.plane;
    if (beta == 0.0f) {
        LGD_CPU_FOR(m)
        for (size_t j = 0; j < m; j++)
            dx[j] = 0.0f;
    } else if (beta != 1.0f) {
        LGD_CPU_FOR(m)
        for (size_t j = 0; j < m; j++)
            dx[j] *= beta;
    }
    if (p.ipb > 1) {
        for (size_t i0 = 0; i0 < p.n; i0 += p.ipb) {
            const size_t ni = p.n - i0 < p.ipb ? p.n - i0 : p.ipb, nb = ni * p.P;
            LGD_CPU_FOR(p.cout * nb)
            for (size_t u = 0; u < ni * p.cout; u++) {
                const size_t j = u / p.cout, co = u % p.cout;
                memcpy(dyt + co * nb + j * p.P, dy + ((i0 + j) * p.cout + co) * p.P,
                       p.P * sizeof(float));
            }
            /* dcol[K][nb] = W^T dyt, scattered back onto the images' dx */
            lgd_cpu_sgemm(be, 1, 0, p.K, nb, p.cout, 1.0f, w, p.K, dyt, nb, 0.0f, col, nb);
            col2im(&p, col, nb, i0, ni, 0, p.P, dx, nt, par_work(be, p.K * nb));
        }
        return 0;
    }
    for (size_t i = 0; i < p.n; i++) {
        const float *dyi = dy + i * p.cout * p.P;
        for (size_t t = 0; t < p.tiles; t++) {
            size_t p0 = t * p.pt, p1 = p0 + p.pt < p.P ? p0 + p.pt : p.P, np = p1 - p0;
            /* dcol[K][np] = W^T dy_i[:, p0:p1], scattered back onto dx_i */
            lgd_cpu_sgemm(be, 1, 0, p.K, np, p.cout, 1.0f, w, p.K, dyi + p0, p.P, 0.0f, col, np);
            col2im(&p, col, np, i, 1, p0, p1, dx, nt, par_work(be, p.K * np));
        }
    }
    return 0;
}

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

#define NN_SQRT1_2 0.70710678118654752440f
#define NN_INV_SQRT_2PI 0.39894228040143267794f

/* lgd_exp_neg and lgd_sigmoid2, the SiLU's formulas, are in core/hd_math.h (shared with
 * the CUDA kernels). */

/* GELU x Phi(x), Phi(x) = 0.5 erfc(-x / sqrt 2) (no cancellation for x << 0), and its
 * derivative Phi(x) + x phi(x). In the left tail the relative error of a float
 * argument (x / sqrt 2, x^2 / 2) is amplified by about x^2, so there the arithmetic
 * is double. */
static inline float gelu(float x)
{
    if (x < -3.0f)
        return (float)(0.5 * (double)x * erfc(-(double)x * 0.70710678118654752440));
    return x * (0.5f * erfcf(-x * NN_SQRT1_2));
}

static inline float gelu_grad(float x)
{
    if (x < -3.0f) {
        double v = x;
        return (float)(0.5 * erfc(-v * 0.70710678118654752440) +
                       v * 0.39894228040143267794 * exp(-0.5 * v * v));
    }
    return 0.5f * erfcf(-x * NN_SQRT1_2) + x * NN_INV_SQRT_2PI * expf(-0.5f * x * x);
}

/* SiLU kernels on a range, compiled for AVX-512 and AVX2 beside the baseline and chosen
 * at load time (GCC/clang function multiversioning). ISO C mode contracts no FMAs, so
 * every version computes bit-identical results. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
#define NN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NN_CLONES
#endif

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
            y[i] = gelu(x[i]);
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
            float g = dy[i] * gelu_grad(x[i]);
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
        const float *xg = x + g * gs; /* groups are contiguous: [n][groups][cpg][s] */
        float *yg = y + g * gs;
        double m = gs ? dsum(xg, gs) / (double)gs : 0.0;
        double var = gs ? dsum_sqdev(xg, gs, m) / (double)gs : 0.0;
        double r = 1.0 / sqrt(var + (double)eps);
        size_t c0 = (g % groups) * cpg;
        for (size_t cc = 0; cc < cpg; cc++) {
            double a = r * (gamma ? (double)gamma[c0 + cc] : 1.0);
            double b = beta_ ? (double)beta_[c0 + cc] : 0.0;
            const float *xr = xg + cc * s;
            float *yr = yg + cc * s;
            for (size_t k = 0; k < s; k++)
                yr[k] = (float)(((double)xr[k] - m) * a + b);
        }
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
        const float *xg = x + g * gs, *dg = dy + g * gs;
        float *og = dx + g * gs;
        const double m = mean[g], r = rstd[g];
        const size_t c0 = (g % groups) * cpg;
        /* xh' = (x - mean) rstd with the saved (rounded) mean; its group mean m0 is
         * the rounding error, removed exactly below: xh = xh' - m0 */
        double s0 = 0.0, s1 = 0.0, s2 = 0.0;
        for (size_t cc = 0; cc < cpg; cc++) {
            const double ga = gamma ? (double)gamma[c0 + cc] : 1.0;
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
            const double ga = gamma ? (double)gamma[c0 + cc] : 1.0;
            const float *xr = xg + cc * s, *dr = dg + cc * s;
            float *orow = og + cc * s;
            for (size_t k = 0; k < s; k++) {
                double xh = ((double)xr[k] - m) * r - m0;
                float v = (float)(r * (ga * (double)dr[k] - m1 - xh * m2));
                orow[k] = beta == 0.0f ? v : v + beta * orow[k];
            }
        }
    }
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

/* ------------------------------------------------------------------ copies */

void lgd_cpu_copy_rows(lgd_backend *be, size_t rows, size_t cols, const float *src, size_t lds,
                       float beta, float *dst, size_t ldd)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        const float *sr = src + r * lds;
        float *dr = dst + r * ldd;
        if (beta == 0.0f) {
            memmove(dr, sr, cols * sizeof(float));
        } else {
            for (size_t j = 0; j < cols; j++)
                dr[j] = sr[j] + beta * dr[j];
        }
    }
}

#define NN_TBLOCK 32

void lgd_cpu_transpose(lgd_backend *be, size_t batch, size_t rows, size_t cols, const float *x,
                       float beta, float *y)
{
    /* one unit: a band of NN_TBLOCK rows of y (columns of x) of one batch item */
    const size_t bands = (cols + NN_TBLOCK - 1) / NN_TBLOCK;
    LGD_CPU_FOR(batch * rows * cols)
    for (size_t u = 0; u < batch * bands; u++) {
        const size_t b = u / bands, j0 = (u % bands) * NN_TBLOCK;
        const size_t j1 = j0 + NN_TBLOCK < cols ? j0 + NN_TBLOCK : cols;
        const float *xb = x + b * rows * cols;
        float *yb = y + b * rows * cols;
        for (size_t i0 = 0; i0 < rows; i0 += NN_TBLOCK) {
            const size_t i1 = i0 + NN_TBLOCK < rows ? i0 + NN_TBLOCK : rows;
            for (size_t j = j0; j < j1; j++) {
                float *yr = yb + j * rows;
                if (beta == 0.0f)
                    for (size_t i = i0; i < i1; i++)
                        yr[i] = xb[i * cols + j];
                else
                    for (size_t i = i0; i < i1; i++)
                        yr[i] = xb[i * cols + j] + beta * yr[i];
            }
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
};
