/*
 * cpu_conv.c - the CPU's convolutions (nn/nn_kernels.h: conv2d_forward and its input
 * VJP conv2d_backward_data) by im2col / col2im tiles and SGEMM, and the grow-only
 * scratch they (and cpu_dnnl.c) use.
 *
 * Every output element is computed by one thread in a fixed order, so results do
 * not depend on the backend's thread count. GEMMs never run inside OpenMP regions:
 * OpenBLAS runs single-threaded inside an active parallel region and with its own
 * threads outside one, and with some of its kernels (Haswell, used on AVX2 machines)
 * the two give different roundings. So GEMMs are called one after the other from the
 * calling thread, and be->threads parallelises the data movement around them.
 * The way a convolution is cut into GEMM tiles depends only on its shape.
 *
 * Built with oneDNN (and not switched off by LGD_CPU_ONEDNN=0), convolutions go to
 * cpu_dnnl.c first; the paths here are the fallback.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_nn.h"
#include "backend/cpu/cpu_parallel.h"

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
    if (be->onednn) {
        int rc = lgd_cpu_dnnl_conv2d_forward(be, s, x, w, bias, y);
        if (rc == 0 || rc == -2)
            return rc; /* -2: out of memory, an error (cpu_nn.h) */
    } /* else im2col below (oneDNN off, or it failed) */
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
    if (be->onednn) {
        int rc = lgd_cpu_dnnl_conv2d_backward_data(be, s, dy, w, beta, dx);
        if (rc == 0 || rc == -2)
            return rc; /* -2: out of memory, an error (cpu_nn.h) */
    } /* else im2col below (it left dx as it was, or beta = 0) */
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

