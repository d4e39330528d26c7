/*
 * cpu_dnnl.c - the CPU backend's GEMMs and convolutions by oneDNN (2.x C API),
 * when liblgd is built with it (LGD_HAVE_DNNL; meson option onednn).
 *
 * GEMMs: dnnl_sgemm (row-major, as cblas_sgemm with CblasRowMajor). It does not read
 * C when beta = 0 (checked: NaN in C does not reach the result for every shape and
 * transposition tried), except that with K = 0 it leaves C as it was, so K = 0 (and
 * very small products, where OpenBLAS has less overhead) stays with OpenBLAS.
 *
 * Convolutions: oneDNN's direct convolutions, forward (forward_inference, bias passed
 * to the primitive) and backward data (with a forward_training primitive descriptor
 * as its hint). The user's tensors are plain NCHW / OIHW. Layouts (measured on 2 AVX-512
 * cores, the U-Net of bench/): for kernels larger than 1x1 with at least 8 input
 * channels the primitive picks its own layouts (format_tag_any: blocked nChw16c, with
 * x, w and y reordered on every call), 1.3-2x faster than plain layouts (oneDNN's
 * gemm:jit, im2col + GEMM) even with the reorders; 1x1 kernels and very few input
 * channels run on the plain layouts, where gemm:jit is the faster one. Reordered
 * weights are not kept between calls: a weight buffer freed and reallocated at the
 * same address would silently reuse stale weights.
 *
 * Primitives are created on first use of a shape (direction, whole lgd_conv_shape and
 * whether there is a bias) and cached in the backend (LGD_DNNL_CONV_CACHE entries,
 * least recently used out first); a shape oneDNN cannot do is cached as such, so the
 * caller's im2col path takes it without another attempt. Scratchpads are in user mode:
 * they, the reordered tensors and the backward pass's accumulation buffer live in the
 * backend's grow-only scratch. oneDNN 2.6 has no sum post-op for backward data, so
 * dx = conv^T(dy) + beta dx with beta != 0 is computed into the scratch and added.
 *
 * oneDNN threads with OpenMP (omp_get_max_threads() of the calling thread, as OpenBLAS
 * does for the GEMMs), which is set to be->threads around each call
 * (lgd_cpu_libs_begin, cpu_parallel.h): the context's thread count reaches oneDNN, and
 * its results are reproducible for a given thread count.
 * LGD_CPU_ONEDNN=0 in the environment when a backend opens switches oneDNN off for it.
 */
#include <stdlib.h>
#include <string.h>

#include "lgd_config.h"

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_nn.h"
#include "backend/cpu/cpu_parallel.h"

void lgd_cpu_dnnl_init(lgd_backend *be)
{
#if LGD_HAVE_DNNL
    const char *v = getenv("LGD_CPU_ONEDNN");
    be->onednn = !(v && strcmp(v, "0") == 0);
#else
    be->onednn = 0;
#endif
}

#if !LGD_HAVE_DNNL

void lgd_cpu_dnnl_release(lgd_backend *be) { (void)be; }

int lgd_cpu_dnnl_sgemm(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                       float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                       float beta, float *C, size_t ldc)
{
    (void)be, (void)trans_a, (void)trans_b, (void)M, (void)N, (void)K, (void)alpha, (void)A;
    (void)lda, (void)B, (void)ldb, (void)beta, (void)C, (void)ldc;
    return -1;
}

int lgd_cpu_dnnl_conv2d_forward(lgd_backend *be, const lgd_conv_shape *s, const float *x,
                                const float *w, const float *bias, float *y)
{
    (void)be, (void)s, (void)x, (void)w, (void)bias, (void)y;
    return -1;
}

int lgd_cpu_dnnl_conv2d_backward_data(lgd_backend *be, const lgd_conv_shape *s,
                                      const float *dy, const float *w, float beta, float *dx)
{
    (void)be, (void)s, (void)dy, (void)w, (void)beta, (void)dx;
    return -1;
}

#else /* LGD_HAVE_DNNL */

#include <dnnl.h>

/* Products M N K below this go to OpenBLAS (a few hundred nanoseconds less overhead). */
#define DNNL_GEMM_MIN_WORK 32768.0
/* Parallelise the beta accumulation only with enough work to pay for the threads. */
#define DNNL_PAR_MIN_WORK 32768
#define DNNL_ALIGN 64

int lgd_cpu_dnnl_sgemm(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                       float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                       float beta, float *C, size_t ldc)
{
    if (!be->onednn || K == 0 || (double)M * (double)N * (double)K < DNNL_GEMM_MIN_WORK)
        return -1;
    /* arguments oneDNN would reject (checked before it touches C) go to cblas, which
     * reports them as it always has */
    dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', (dnnl_dim_t)M,
                                  (dnnl_dim_t)N, (dnnl_dim_t)K, alpha, A, (dnnl_dim_t)lda, B,
                                  (dnnl_dim_t)ldb, beta, C, (dnnl_dim_t)ldc);
    return st == dnnl_success ? 0 : -1;
}

/* ------------------------------------------------------------------ convolutions */

enum { CONV_FWD = 0, CONV_FWD_BIAS = 1, CONV_BWD = 2 };

typedef struct lgd_dnnl_conv lgd_dnnl_conv;

/* One cached convolution. "x" is the convolution's input side (x, or dx backward),
 * "y" its output side (y, or dy backward). The u* memory objects wrap the user's
 * plain tensors; p* those in the primitive's layouts in the scratch (NULL, and no
 * reorder, when a layout is the plain one). Handles are set on every call. */
struct lgd_dnnl_conv {
    lgd_conv_shape s;
    int kind;
    int ok; /* 0: oneDNN could not set this shape up; the caller falls back */
    uint64_t used;
    dnnl_primitive_t conv;
    /* forward: x -> px, w -> pw, py -> y; backward: px -> x, w -> pw, y -> py */
    dnnl_primitive_t re_x, re_w, re_y;
    dnnl_memory_t ux, uw, uy, ub;
    dnnl_memory_t px, pw, py, pad;
    /* byte offsets in the scratch of px, pw, py, the scratchpad and (backward with
     * beta != 0) the plain result, which takes tmp_bytes: a call needs off_tmp bytes,
     * or off_tmp + tmp_bytes with the result there */
    size_t off_px, off_pw, off_py, off_pad, off_tmp, tmp_bytes;
};

static size_t align_up(size_t v) { return (v + DNNL_ALIGN - 1) & ~(size_t)(DNNL_ALIGN - 1); }

static void conv_free(lgd_dnnl_conv *e)
{
    if (!e)
        return;
    dnnl_primitive_t prims[] = { e->conv, e->re_x, e->re_w, e->re_y };
    for (size_t i = 0; i < sizeof prims / sizeof prims[0]; i++)
        if (prims[i])
            dnnl_primitive_destroy(prims[i]);
    dnnl_memory_t mems[] = { e->ux, e->uw, e->uy, e->ub, e->px, e->pw, e->py, e->pad };
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (mems[i])
            dnnl_memory_destroy(mems[i]);
    free(e);
}

void lgd_cpu_dnnl_release(lgd_backend *be)
{
    for (size_t i = 0; i < LGD_DNNL_CONV_CACHE; i++) {
        conv_free(be->dnnl_convs[i]);
        be->dnnl_convs[i] = NULL;
    }
    if (be->dnnl_stream)
        dnnl_stream_destroy(be->dnnl_stream);
    if (be->dnnl_engine)
        dnnl_engine_destroy(be->dnnl_engine);
    be->dnnl_stream = NULL;
    be->dnnl_engine = NULL;
}

/* The engine and stream, created on first use. */
static int dnnl_ready(lgd_backend *be)
{
    if (be->dnnl_engine)
        return 1;
    if (be->dnnl_failed)
        return 0;
    dnnl_engine_t eng = NULL;
    dnnl_stream_t strm = NULL;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) {
        be->dnnl_failed = 1;
        return 0;
    }
    if (dnnl_stream_create(&strm, eng, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(eng);
        be->dnnl_failed = 1;
        return 0;
    }
    be->dnnl_engine = eng;
    be->dnnl_stream = strm;
    return 1;
}

/* Whether the primitive chooses its layouts (blocked, with reorders) rather than
 * working on the plain ones: see the top of the file. */
static int use_blocked(const lgd_conv_shape *s)
{
    return (int64_t)s->kh * s->kw > 1 && s->c_in >= 8;
}

#define TRY(call)                      \
    do {                               \
        if ((call) != dnnl_success)    \
            goto done;                 \
    } while (0)

/* A reorder primitive from `from` to `to`, and the memory object of the primitive's
 * side (`prim_md`, handle set per call), unless the two layouts are the same. */
static dnnl_status_t make_reorder(dnnl_engine_t eng, const dnnl_memory_desc_t *from,
                                  const dnnl_memory_desc_t *to, const dnnl_memory_desc_t *prim_md,
                                  dnnl_primitive_t *re, dnnl_memory_t *pm)
{
    if (dnnl_memory_desc_equal(from, to))
        return dnnl_success;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, from, eng, to, eng, NULL);
    if (st == dnnl_success)
        st = dnnl_primitive_create(re, pd);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (st == dnnl_success)
        st = dnnl_memory_create(pm, prim_md, eng, DNNL_MEMORY_NONE);
    return st;
}

/* Sets up the primitives of e->s / e->kind; 0 on success. On failure the objects
 * created so far stay in e (conv_free destroys them). */
static int conv_build(lgd_backend *be, lgd_dnnl_conv *e)
{
    const lgd_conv_shape *s = &e->s;
    const dnnl_engine_t eng = be->dnnl_engine;
    const int bwd = e->kind == CONV_BWD, blocked = use_blocked(s);
    const dnnl_format_tag_t act_tag = blocked ? dnnl_format_tag_any : dnnl_nchw;
    const dnnl_format_tag_t wei_tag = blocked ? dnnl_format_tag_any : dnnl_oihw;
    dnnl_dims_t xd = { s->n, s->c_in, s->h, s->w }, wd = { s->c_out, s->c_in, s->kh, s->kw };
    dnnl_dims_t yd = { s->n, s->c_out, s->h_out, s->w_out }, bd = { s->c_out };
    /* right padding as the left: oneDNN's output size (x + pl + pr - k) / stride + 1
     * (rounded down) is then ours */
    dnnl_dims_t strides = { s->stride_h, s->stride_w }, pad = { s->pad_h, s->pad_w };
    dnnl_memory_desc_t ux_md, uw_md, uy_md, b_md, x_md, w_md, y_md, pad_md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t fwd_pd = NULL, bwd_pd = NULL;
    int rc = -1;

    TRY(dnnl_memory_desc_init_by_tag(&ux_md, 4, xd, dnnl_f32, dnnl_nchw));
    TRY(dnnl_memory_desc_init_by_tag(&uw_md, 4, wd, dnnl_f32, dnnl_oihw));
    TRY(dnnl_memory_desc_init_by_tag(&uy_md, 4, yd, dnnl_f32, dnnl_nchw));
    TRY(dnnl_memory_desc_init_by_tag(&b_md, 1, bd, dnnl_f32, dnnl_x));
    TRY(dnnl_memory_desc_init_by_tag(&x_md, 4, xd, dnnl_f32, act_tag));
    TRY(dnnl_memory_desc_init_by_tag(&w_md, 4, wd, dnnl_f32, wei_tag));
    TRY(dnnl_memory_desc_init_by_tag(&y_md, 4, yd, dnnl_f32, act_tag));
    TRY(dnnl_primitive_attr_create(&attr));
    TRY(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));

    dnnl_convolution_desc_t fd;
    TRY(dnnl_convolution_forward_desc_init(
        &fd, bwd ? dnnl_forward_training : dnnl_forward_inference, dnnl_convolution_direct,
        &x_md, &w_md, e->kind == CONV_FWD_BIAS ? &b_md : NULL, &y_md, strides, pad, pad));
    TRY(dnnl_primitive_desc_create(&fwd_pd, &fd, attr, eng, NULL));
    dnnl_primitive_desc_t pd = fwd_pd;
    if (bwd) {
        dnnl_convolution_desc_t bdesc;
        TRY(dnnl_convolution_backward_data_desc_init(&bdesc, dnnl_convolution_direct, &x_md,
                                                     &w_md, &y_md, strides, pad, pad));
        TRY(dnnl_primitive_desc_create(&bwd_pd, &bdesc, attr, eng, fwd_pd));
        pd = bwd_pd;
    }
    const dnnl_query_t qx = bwd ? dnnl_query_diff_src_md : dnnl_query_src_md;
    const dnnl_query_t qy = bwd ? dnnl_query_diff_dst_md : dnnl_query_dst_md;
    const dnnl_memory_desc_t *q;
    if (!(q = dnnl_primitive_desc_query_md(pd, qx, 0)))
        goto done;
    x_md = *q;
    if (!(q = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)))
        goto done;
    w_md = *q;
    if (!(q = dnnl_primitive_desc_query_md(pd, qy, 0)))
        goto done;
    y_md = *q;
    q = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t pad_bytes = q ? dnnl_memory_desc_get_size(q) : 0;
    if (pad_bytes)
        pad_md = *q;
    TRY(dnnl_primitive_create(&e->conv, pd));

    TRY(dnnl_memory_create(&e->ux, &ux_md, eng, DNNL_MEMORY_NONE));
    TRY(dnnl_memory_create(&e->uw, &uw_md, eng, DNNL_MEMORY_NONE));
    TRY(dnnl_memory_create(&e->uy, &uy_md, eng, DNNL_MEMORY_NONE));
    if (e->kind == CONV_FWD_BIAS)
        TRY(dnnl_memory_create(&e->ub, &b_md, eng, DNNL_MEMORY_NONE));
    if (bwd) {
        TRY(make_reorder(eng, &x_md, &ux_md, &x_md, &e->re_x, &e->px));
        TRY(make_reorder(eng, &uy_md, &y_md, &y_md, &e->re_y, &e->py));
    } else {
        TRY(make_reorder(eng, &ux_md, &x_md, &x_md, &e->re_x, &e->px));
        TRY(make_reorder(eng, &y_md, &uy_md, &y_md, &e->re_y, &e->py));
    }
    TRY(make_reorder(eng, &uw_md, &w_md, &w_md, &e->re_w, &e->pw));
    if (pad_bytes)
        TRY(dnnl_memory_create(&e->pad, &pad_md, eng, DNNL_MEMORY_NONE));

    /* the scratch: [px][pw][py][scratchpad][tmp] (absent parts take no room) */
    size_t off = 0;
    e->off_px = off;
    off += e->px ? align_up(dnnl_memory_desc_get_size(&x_md)) : 0;
    e->off_pw = off;
    off += e->pw ? align_up(dnnl_memory_desc_get_size(&w_md)) : 0;
    e->off_py = off;
    off += e->py ? align_up(dnnl_memory_desc_get_size(&y_md)) : 0;
    e->off_pad = off;
    off += align_up(pad_bytes);
    e->off_tmp = off;
    e->tmp_bytes = bwd ? align_up(dnnl_memory_desc_get_size(&ux_md)) : 0;
    rc = 0;
done:
    if (bwd_pd)
        dnnl_primitive_desc_destroy(bwd_pd);
    if (fwd_pd)
        dnnl_primitive_desc_destroy(fwd_pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return rc;
}

/* The cached convolution of this shape and kind (created on a miss, evicting the
 * least recently used entry when the cache is full), or NULL without memory. */
static lgd_dnnl_conv *conv_get(lgd_backend *be, const lgd_conv_shape *s, int kind)
{
    size_t slot = LGD_DNNL_CONV_CACHE, lru = LGD_DNNL_CONV_CACHE;
    for (size_t i = 0; i < LGD_DNNL_CONV_CACHE; i++) {
        lgd_dnnl_conv *e = be->dnnl_convs[i];
        if (!e) {
            if (slot == LGD_DNNL_CONV_CACHE)
                slot = i;
            continue;
        }
        if (e->kind == kind && memcmp(&e->s, s, sizeof *s) == 0) {
            e->used = ++be->dnnl_clock;
            return e;
        }
        if (lru == LGD_DNNL_CONV_CACHE || e->used < be->dnnl_convs[lru]->used)
            lru = i;
    }
    lgd_dnnl_conv *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->s = *s;
    e->kind = kind;
    e->ok = conv_build(be, e) == 0;
    if (!e->ok) {
        /* keep only the verdict */
        lgd_dnnl_conv *bare = calloc(1, sizeof *bare);
        conv_free(e);
        if (!bare)
            return NULL;
        e = bare;
        e->s = *s;
        e->kind = kind;
    }
    if (slot == LGD_DNNL_CONV_CACHE) {
        slot = lru;
        conv_free(be->dnnl_convs[slot]);
    }
    e->used = ++be->dnnl_clock;
    be->dnnl_convs[slot] = e;
    return e;
}

static dnnl_status_t run_reorder(lgd_backend *be, dnnl_primitive_t re, dnnl_memory_t from,
                                 dnnl_memory_t to)
{
    dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, to } };
    return dnnl_primitive_execute(re, be->dnnl_stream, 2, args);
}

/* Runs a cached convolution on the user's tensors: forward x -> y (+ bias), backward
 * y (dy) -> x (dx, or `xout` when that is the scratch). */
static int conv_run(lgd_backend *be, lgd_dnnl_conv *e, const float *x, const float *w,
                    const float *bias, const float *y, float *xout, float *yout, char *base)
{
    const int bwd = e->kind == CONV_BWD;
    dnnl_memory_t mx = e->px ? e->px : e->ux, mw = e->pw ? e->pw : e->uw;
    dnnl_memory_t my = e->py ? e->py : e->uy;
    /* the user's buffers are only read where they are const here (plain layouts have
     * no padding for oneDNN to zero) */
    TRY(dnnl_memory_set_data_handle(e->ux, bwd ? (void *)xout : (void *)(uintptr_t)x));
    TRY(dnnl_memory_set_data_handle(e->uw, (void *)(uintptr_t)w));
    TRY(dnnl_memory_set_data_handle(e->uy, bwd ? (void *)(uintptr_t)y : (void *)yout));
    if (e->ub)
        TRY(dnnl_memory_set_data_handle(e->ub, (void *)(uintptr_t)bias));
    if (e->px)
        TRY(dnnl_memory_set_data_handle(e->px, base + e->off_px));
    if (e->pw)
        TRY(dnnl_memory_set_data_handle(e->pw, base + e->off_pw));
    if (e->py)
        TRY(dnnl_memory_set_data_handle(e->py, base + e->off_py));
    if (e->pad)
        TRY(dnnl_memory_set_data_handle(e->pad, base + e->off_pad));

    if (e->re_w)
        TRY(run_reorder(be, e->re_w, e->uw, e->pw));
    dnnl_exec_arg_t args[5];
    int na = 0;
    if (!bwd) {
        if (e->re_x)
            TRY(run_reorder(be, e->re_x, e->ux, e->px));
        args[na++] = (dnnl_exec_arg_t){ DNNL_ARG_SRC, mx };
        args[na++] = (dnnl_exec_arg_t){ DNNL_ARG_WEIGHTS, mw };
        if (e->ub)
            args[na++] = (dnnl_exec_arg_t){ DNNL_ARG_BIAS, e->ub };
        args[na++] = (dnnl_exec_arg_t){ DNNL_ARG_DST, my };
    } else {
        if (e->re_y)
            TRY(run_reorder(be, e->re_y, e->uy, e->py));
        args[na++] = (dnnl_exec_arg_t){ DNNL_ARG_DIFF_DST, my };
        args[na++] = (dnnl_exec_arg_t){ DNNL_ARG_WEIGHTS, mw };
        args[na++] = (dnnl_exec_arg_t){ DNNL_ARG_DIFF_SRC, mx };
    }
    if (e->pad)
        args[na++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, e->pad };
    TRY(dnnl_primitive_execute(e->conv, be->dnnl_stream, na, args));
    if (!bwd && e->re_y)
        TRY(run_reorder(be, e->re_y, e->py, e->uy));
    if (bwd && e->re_x)
        TRY(run_reorder(be, e->re_x, e->px, e->ux));
    TRY(dnnl_stream_wait(be->dnnl_stream));
    return 0;
done:
    return -1;
}

/* The cached convolution for a call and the scratch it needs (*base; with_tmp: with
 * the room for a plain dx), or NULL when oneDNN is off, failed, or cannot do the shape
 * (*oom = 0: the caller falls back), or when the cache entry or the scratch cannot be
 * allocated (*oom = 1: an error, not a fallback, so that a failed allocation never
 * changes which code computes the result). */
static lgd_dnnl_conv *conv_prepare(lgd_backend *be, const lgd_conv_shape *s, int kind,
                                   int with_tmp, char **base, int *oom)
{
    *oom = 0;
    if (!be->onednn || !dnnl_ready(be))
        return NULL;
    lgd_dnnl_conv *e = conv_get(be, s, kind);
    if (!e) {
        *oom = 1;
        return NULL;
    }
    if (!e->ok)
        return NULL;
    size_t bytes = e->off_tmp + (with_tmp ? e->tmp_bytes : 0);
    float *p = lgd_cpu_nn_scratch(be, (bytes + sizeof(float) - 1) / sizeof(float));
    if (!p) {
        *oom = 1;
        return NULL;
    }
    *base = (char *)p;
    return e;
}

int lgd_cpu_dnnl_conv2d_forward(lgd_backend *be, const lgd_conv_shape *s, const float *x,
                                const float *w, const float *bias, float *y)
{
    char *base = NULL;
    int oom;
    lgd_dnnl_conv *e = conv_prepare(be, s, bias ? CONV_FWD_BIAS : CONV_FWD, 0, &base, &oom);
    if (!e)
        return oom ? -2 : -1;
    int saved = lgd_cpu_libs_begin(be), rc = conv_run(be, e, x, w, bias, NULL, NULL, y, base);
    lgd_cpu_libs_end(be, saved);
    if (rc != 0)
        return -1;
    be->dnnl_conv_calls++;
    return 0;
}

int lgd_cpu_dnnl_conv2d_backward_data(lgd_backend *be, const lgd_conv_shape *s,
                                      const float *dy, const float *w, float beta, float *dx)
{
    char *base = NULL;
    int oom;
    lgd_dnnl_conv *e = conv_prepare(be, s, CONV_BWD, beta != 0.0f, &base, &oom);
    if (!e)
        return oom ? -2 : -1;
    /* beta != 0: the result goes to the scratch, and dx is touched only once it is
     * complete (so that a failure leaves dx for the fallback) */
    float *out = beta != 0.0f ? (float *)(void *)(base + e->off_tmp) : dx;
    int saved = lgd_cpu_libs_begin(be), rc = conv_run(be, e, NULL, w, NULL, dy, out, NULL, base);
    lgd_cpu_libs_end(be, saved);
    if (rc != 0)
        return -1;
    if (beta != 0.0f) {
        const size_t m = (size_t)s->n * s->c_in * s->h * s->w;
#ifdef _OPENMP
#pragma omp parallel for num_threads(be->threads) if (m >= DNNL_PAR_MIN_WORK) schedule(static)
#endif
        for (size_t j = 0; j < m; j++)
            dx[j] = out[j] + beta * dx[j];
    }
    be->dnnl_conv_calls++;
    return 0;
}

#endif /* LGD_HAVE_DNNL */
