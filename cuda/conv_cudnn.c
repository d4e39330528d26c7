/*
 * conv_cudnn.c - 2-D convolution (conv2d_forward) and its input VJP
 * (conv2d_backward_data) of the CUDA "nn" kernel table (kernels_nn.cu): cuDNN when
 * the module is built with it (LGD_HAVE_CUDNN, set by cuda/meson.build), else
 * im2col / col2im kernels (kernels_nn.cu) and cuBLAS GEMMs.
 *
 * cuDNN path. Per shape (the whole lgd_conv_shape is the key) a small cache in
 * the backend keeps the four descriptors and the algorithm chosen for each
 * direction, so steady-state calls do no set-up. Algorithms come from
 * cudnnGet...Algorithm_v7 (heuristics, nothing is run): the first one in its
 * order that
 *   - succeeded, without tensor-op math (the descriptor asks for CUDNN_FMA_MATH:
 *     no TF32 on Ampere and newer, whose CUDNN_DEFAULT_MATH would allow it; the
 *     results are compared with the CPU at ~1e-5),
 *   - is a GEMM-type algorithm (forward: implicit / precomputed implicit /
 *     explicit GEMM; backward data: ALGO_1), i.e. not FFT or Winograd, whose
 *     rounding is further from a direct sum, and deterministic (the backward
 *     ALGO_0 accumulates with atomics),
 *   - needs at most DNN_WORKSPACE_MAX bytes of workspace.
 * The workspace comes from the backend's caching pool for each call and goes
 * back to it after (stream-ordered, see cuda_pool.c), so repeated calls do not
 * call cudaMalloc. When cuDNN cannot be used (the handle cannot be created, a
 * shape it refuses, no acceptable algorithm in the heuristics' list) the
 * convolution falls back to the im2col path, per shape and direction; a failure
 * of cuDNN while running one is an error.
 *
 * LGD_CUDA_CONV_LOG in the environment (when the backend is opened) prints each
 * choice to stderr.
 *
 * im2col path (no cuDNN, or LGD_CUDA_CONV=im2col in the environment when the
 * backend is opened, for cross-checks): per chunk of images, col[b] =
 * im2col(x[b]) ([c_in kh kw][h_out w_out]), y[b] = w col[b] as one strided
 * batched GEMM (the weight shared, stride 0); backward dcol[b] = w^T dy[b], then
 * a gathering col2im (no atomics) that adds beta dx. A 1x1 convolution with
 * stride 1 and no padding is a GEMM on x itself. Chunks keep col under
 * COL_BYTES_MAX (at least one image).
 *
 * Both paths add the bias with lgd_cuda_add_channel_bias, and return non-zero
 * (with the error recorded in the backend's sticky state) when CUDA, cuBLAS or
 * cuDNN fails; a malformed shape returns non-zero without touching that state (the
 * reason is noted for the backend's last_error).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_nn.h"

#if LGD_HAVE_CUDNN
#include <cudnn.h>
#endif

#define COL_BYTES_MAX ((size_t)64 << 20)      /* im2col buffer per chunk */
#define DNN_WORKSPACE_MAX ((size_t)256 << 20) /* largest cuDNN workspace accepted */

/* Non-zero when the shape is consistent (n may be 0). */
static int shape_valid(const lgd_conv_shape *s)
{
    if (s->n < 0 || s->c_in < 0 || s->c_out < 0 || s->h < 1 || s->w < 1 || s->kh < 1 ||
        s->kw < 1 || s->stride_h < 1 || s->stride_w < 1 || s->pad_h < 0 || s->pad_w < 0)
        return 0;
    long long eh = (long long)s->h + 2LL * s->pad_h - s->kh;
    long long ew = (long long)s->w + 2LL * s->pad_w - s->kw;
    if (eh < 0 || ew < 0)
        return 0;
    return s->h_out == eh / s->stride_h + 1 && s->w_out == ew / s->stride_w + 1;
}

/* shape_valid, noting why not for the backend's last_error */
static int shape_ok(lgd_backend *be, const lgd_conv_shape *s, const char *what)
{
    if (!s) {
        lgd_cuda_note(be, "%s: no shape", what);
        return 0;
    }
    if (!shape_valid(s)) {
        lgd_cuda_note(be,
                      "%s: inconsistent shape n%d c%d->%d %dx%d k%dx%d s%d,%d p%d,%d -> %dx%d",
                      what, s->n, s->c_in, s->c_out, s->h, s->w, s->kh, s->kw, s->stride_h,
                      s->stride_w, s->pad_h, s->pad_w, s->h_out, s->w_out);
        return 0;
    }
    return 1;
}

static size_t image_in(const lgd_conv_shape *s)
{
    return (size_t)s->c_in * (size_t)s->h * (size_t)s->w;
}

static size_t image_out(const lgd_conv_shape *s)
{
    return (size_t)s->c_out * (size_t)s->h_out * (size_t)s->w_out;
}

static int is_pointwise(const lgd_conv_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 0 &&
           s->pad_w == 0;
}

/* ---- im2col path ---- */

/* Images per chunk of a [K][P] buffer per image. */
static size_t chunk_images(const lgd_conv_shape *s)
{
    size_t per = (size_t)s->c_in * (size_t)s->kh * (size_t)s->kw * (size_t)s->h_out *
                 (size_t)s->w_out * sizeof(float);
    size_t nb = per ? COL_BYTES_MAX / per : (size_t)s->n;
    if (nb < 1)
        nb = 1;
    if (nb > (size_t)s->n)
        nb = (size_t)s->n;
    return nb;
}

static int forward_im2col(lgd_backend *be, const lgd_conv_shape *s, const float *x,
                          const float *w, float *y)
{
    size_t n = (size_t)s->n, K = (size_t)s->c_in * (size_t)s->kh * (size_t)s->kw;
    size_t P = (size_t)s->h_out * (size_t)s->w_out, cout = (size_t)s->c_out;
    if (is_pointwise(s))
        return lgd_cuda_gemm_strided(be, 0, 0, cout, P, K, 1.0f, w, K, 0, x, P, image_in(s),
                                     0.0f, y, P, image_out(s), n);
    size_t nb = chunk_images(s);
    float *col = lgd_pool_alloc(be, nb * K * P * sizeof(float));
    if (!col)
        return lgd_cuda_check(be, cudaErrorMemoryAllocation, "conv2d_forward (im2col buffer)"),
               -1;
    int rc = 0;
    for (size_t i0 = 0; i0 < n && rc == 0; i0 += nb) {
        size_t m = n - i0 < nb ? n - i0 : nb;
        rc = lgd_cuda_im2col(be, s, m, x + i0 * image_in(s), col);
        if (rc == 0)
            rc = lgd_cuda_gemm_strided(be, 0, 0, cout, P, K, 1.0f, w, K, 0, col, P, K * P, 0.0f,
                                       y + i0 * image_out(s), P, image_out(s), m);
    }
    lgd_pool_free(be, col); /* stream-ordered: safe while the kernels are queued */
    return rc;
}

static int backward_im2col(lgd_backend *be, const lgd_conv_shape *s, const float *dy,
                           const float *w, float beta, float *dx)
{
    size_t n = (size_t)s->n, K = (size_t)s->c_in * (size_t)s->kh * (size_t)s->kw;
    size_t P = (size_t)s->h_out * (size_t)s->w_out, cout = (size_t)s->c_out;
    if (is_pointwise(s)) /* dx[b] = w^T dy[b] + beta dx[b] (cuBLAS ignores C when beta = 0) */
        return lgd_cuda_gemm_strided(be, 1, 0, K, P, cout, 1.0f, w, K, 0, dy, P, image_out(s),
                                     beta, dx, P, image_in(s), n);
    size_t nb = chunk_images(s);
    float *dcol = lgd_pool_alloc(be, nb * K * P * sizeof(float));
    if (!dcol)
        return lgd_cuda_check(be, cudaErrorMemoryAllocation,
                              "conv2d_backward_data (col2im buffer)"),
               -1;
    int rc = 0;
    for (size_t i0 = 0; i0 < n && rc == 0; i0 += nb) {
        size_t m = n - i0 < nb ? n - i0 : nb;
        rc = lgd_cuda_gemm_strided(be, 1, 0, K, P, cout, 1.0f, w, K, 0, dy + i0 * image_out(s),
                                   P, image_out(s), 0.0f, dcol, P, K * P, m);
        if (rc == 0)
            rc = lgd_cuda_col2im(be, s, m, dcol, beta, dx + i0 * image_in(s));
    }
    lgd_pool_free(be, dcol);
    return rc;
}

/* ---- cuDNN path ---- */

#if LGD_HAVE_CUDNN

#define CONV_CACHE 64 /* shapes remembered per backend (round-robin replacement) */

typedef struct conv_entry {
    lgd_conv_shape key;
    int used;   /* the slot holds `key` */
    int usable; /* descriptors ready (0: cuDNN refused the shape: im2col) */
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    int fwd_state, bwd_state; /* 0 not chosen yet, 1 chosen, -1 none acceptable (im2col) */
    cudnnConvolutionFwdAlgo_t fwd_algo;
    cudnnConvolutionBwdDataAlgo_t bwd_algo;
    size_t fwd_ws, bwd_ws; /* workspace bytes of the chosen algorithms */
} conv_entry;

struct lgd_conv_cache {
    conv_entry e[CONV_CACHE];
    unsigned next;
};

static int check_dnn(lgd_backend *be, cudnnStatus_t st, const char *what)
{
    if (st == CUDNN_STATUS_SUCCESS)
        return 0;
    lgd_cuda_fail(be, "%s: %s", what, cudnnGetErrorString(st));
    return 1;
}

static void log_choice(const lgd_backend *be, const lgd_conv_shape *s, const char *dir,
                       int algo, size_t ws)
{
    if (!be->conv_log)
        return;
    fprintf(stderr,
            "liblgd-cuda: conv %s n%d c%d->%d %dx%d k%dx%d s%d,%d p%d,%d: %s%d workspace %zu\n",
            dir, s->n, s->c_in, s->c_out, s->h, s->w, s->kh, s->kw, s->stride_h, s->stride_w,
            s->pad_h, s->pad_w, algo < 0 ? "im2col" : "cuDNN algo ", algo < 0 ? 0 : algo, ws);
}

static void entry_release(conv_entry *e)
{
    if (e->xd)
        cudnnDestroyTensorDescriptor(e->xd);
    if (e->yd)
        cudnnDestroyTensorDescriptor(e->yd);
    if (e->wd)
        cudnnDestroyFilterDescriptor(e->wd);
    if (e->cd)
        cudnnDestroyConvolutionDescriptor(e->cd);
    memset(e, 0, sizeof *e);
}

static int fits_int(size_t a, size_t b, size_t c, size_t d)
{
    return (double)a * (double)b * (double)c * (double)d < (double)INT_MAX;
}

/* Creates the descriptors of e->key; returns non-zero when cuDNN refuses them. */
static int entry_setup(conv_entry *e)
{
    const lgd_conv_shape *s = &e->key;
    if (!fits_int((size_t)s->n, (size_t)s->c_in, (size_t)s->h, (size_t)s->w) ||
        !fits_int((size_t)s->n, (size_t)s->c_out, (size_t)s->h_out, (size_t)s->w_out) ||
        !fits_int((size_t)s->c_out, (size_t)s->c_in, (size_t)s->kh, (size_t)s->kw))
        return -1;
    if (cudnnCreateTensorDescriptor(&e->xd) != CUDNN_STATUS_SUCCESS ||
        cudnnCreateTensorDescriptor(&e->yd) != CUDNN_STATUS_SUCCESS ||
        cudnnCreateFilterDescriptor(&e->wd) != CUDNN_STATUS_SUCCESS ||
        cudnnCreateConvolutionDescriptor(&e->cd) != CUDNN_STATUS_SUCCESS)
        return -1;
    if (cudnnSetTensor4dDescriptor(e->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s->n, s->c_in,
                                   s->h, s->w) != CUDNN_STATUS_SUCCESS ||
        cudnnSetTensor4dDescriptor(e->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s->n, s->c_out,
                                   s->h_out, s->w_out) != CUDNN_STATUS_SUCCESS ||
        cudnnSetFilter4dDescriptor(e->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, s->c_out, s->c_in,
                                   s->kh, s->kw) != CUDNN_STATUS_SUCCESS ||
        cudnnSetConvolution2dDescriptor(e->cd, s->pad_h, s->pad_w, s->stride_h, s->stride_w, 1, 1,
                                        CUDNN_CROSS_CORRELATION,
                                        CUDNN_DATA_FLOAT) != CUDNN_STATUS_SUCCESS ||
        cudnnSetConvolutionMathType(e->cd, CUDNN_FMA_MATH) != CUDNN_STATUS_SUCCESS)
        return -1;
    int on = 0, oc = 0, oh = 0, ow = 0;
    if (cudnnGetConvolution2dForwardOutputDim(e->cd, e->xd, e->wd, &on, &oc, &oh, &ow) !=
            CUDNN_STATUS_SUCCESS ||
        on != s->n || oc != s->c_out || oh != s->h_out || ow != s->w_out)
        return -1;
    return 0;
}

/* The cache entry of shape s (created on first use), or NULL (use im2col). */
static conv_entry *entry_for(lgd_backend *be, const lgd_conv_shape *s)
{
    if (!be->conv) {
        be->conv = calloc(1, sizeof *be->conv);
        if (!be->conv)
            return NULL;
    }
    struct lgd_conv_cache *c = be->conv;
    for (int i = 0; i < CONV_CACHE; i++)
        if (c->e[i].used && memcmp(&c->e[i].key, s, sizeof *s) == 0)
            return c->e[i].usable ? &c->e[i] : NULL;
    conv_entry *e = &c->e[c->next++ % CONV_CACHE];
    entry_release(e);
    e->key = *s;
    e->used = 1;
    if (entry_setup(e) != 0) {
        log_choice(be, s, "descriptors refused", -1, 0);
        entry_release(e);
        e->key = *s;
        e->used = 1; /* remembered as refused */
        return NULL;
    }
    e->usable = 1;
    return e;
}

static int math_ok(cudnnMathType_t m)
{
    return m != CUDNN_TENSOR_OP_MATH && m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

static int fwd_algo_ok(cudnnConvolutionFwdAlgo_t a)
{
    return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
           a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
           a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM;
}

#define PERF_MAX 16

static void choose_forward(cudnnHandle_t h, conv_entry *e)
{
    cudnnConvolutionFwdAlgoPerf_t perf[PERF_MAX];
    int requested = 0, returned = 0;
    e->fwd_state = -1;
    if (cudnnGetConvolutionForwardAlgorithmMaxCount(h, &requested) != CUDNN_STATUS_SUCCESS ||
        requested <= 0 || requested > PERF_MAX)
        requested = PERF_MAX;
    if (cudnnGetConvolutionForwardAlgorithm_v7(h, e->xd, e->wd, e->cd, e->yd, requested,
                                               &returned, perf) != CUDNN_STATUS_SUCCESS)
        return;
    for (int i = 0; i < returned && i < PERF_MAX; i++) {
        cudnnConvolutionFwdAlgo_t algo = perf[i].algo;
        if (perf[i].status != CUDNN_STATUS_SUCCESS || !fwd_algo_ok(algo) ||
            !math_ok(perf[i].mathType))
            continue;
        size_t ws = 0;
        if (cudnnGetConvolutionForwardWorkspaceSize(h, e->xd, e->wd, e->cd, e->yd, algo, &ws) !=
                CUDNN_STATUS_SUCCESS ||
            ws > DNN_WORKSPACE_MAX)
            continue;
        e->fwd_algo = algo;
        e->fwd_ws = ws;
        e->fwd_state = 1;
        return;
    }
}

static void choose_backward(cudnnHandle_t h, conv_entry *e)
{
    cudnnConvolutionBwdDataAlgoPerf_t perf[PERF_MAX];
    int requested = 0, returned = 0;
    e->bwd_state = -1;
    if (cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &requested) !=
            CUDNN_STATUS_SUCCESS ||
        requested <= 0 || requested > PERF_MAX)
        requested = PERF_MAX;
    if (cudnnGetConvolutionBackwardDataAlgorithm_v7(h, e->wd, e->yd, e->cd, e->xd, requested,
                                                    &returned, perf) != CUDNN_STATUS_SUCCESS)
        return;
    for (int i = 0; i < returned && i < PERF_MAX; i++) {
        /* ALGO_1 only: deterministic (ALGO_0 uses atomics), neither FFT nor Winograd */
        cudnnConvolutionBwdDataAlgo_t algo = perf[i].algo;
        if (perf[i].status != CUDNN_STATUS_SUCCESS || algo != CUDNN_CONVOLUTION_BWD_DATA_ALGO_1 ||
            perf[i].determinism != CUDNN_DETERMINISTIC || !math_ok(perf[i].mathType))
            continue;
        size_t ws = 0;
        if (cudnnGetConvolutionBackwardDataWorkspaceSize(h, e->wd, e->yd, e->cd, e->xd, algo,
                                                         &ws) != CUDNN_STATUS_SUCCESS ||
            ws > DNN_WORKSPACE_MAX)
            continue;
        e->bwd_algo = algo;
        e->bwd_ws = ws;
        e->bwd_state = 1;
        return;
    }
}

/* The handle, or NULL (im2col); a failed creation leaves no CUDA error behind. */
static cudnnHandle_t dnn(lgd_backend *be)
{
    if (be->conv_im2col)
        return NULL;
    cudnnHandle_t h = (cudnnHandle_t)lgd_cuda_dnn_handle(be);
    if (!h) {
        (void)cudaGetLastError();
        be->conv_im2col = 1; /* do not retry on every call */
        if (be->conv_log)
            fprintf(stderr, "liblgd-cuda: no cuDNN handle: convolutions by im2col\n");
    }
    return h;
}

/* 1: done (rc in *rc), 0: not by cuDNN */
static int forward_dnn(lgd_backend *be, const lgd_conv_shape *s, const float *x, const float *w,
                       float *y, int *rc)
{
    cudnnHandle_t h = dnn(be);
    conv_entry *e = h ? entry_for(be, s) : NULL;
    if (!e)
        return 0;
    if (e->fwd_state == 0) {
        choose_forward(h, e);
        log_choice(be, s, "forward", e->fwd_state > 0 ? (int)e->fwd_algo : -1, e->fwd_ws);
    }
    if (e->fwd_state < 0)
        return 0;
    void *ws = NULL;
    if (e->fwd_ws) {
        ws = lgd_pool_alloc(be, e->fwd_ws);
        if (!ws) {
            lgd_cuda_check(be, cudaErrorMemoryAllocation, "conv2d_forward (cuDNN workspace)");
            *rc = -1;
            return 1;
        }
    }
    const float one = 1.0f, zero = 0.0f;
    cudnnStatus_t st = cudnnConvolutionForward(h, &one, e->xd, x, e->wd, w, e->cd, e->fwd_algo,
                                               ws, e->fwd_ws, &zero, e->yd, y);
    lgd_pool_free(be, ws);
    *rc = check_dnn(be, st, "conv2d_forward (cudnnConvolutionForward)") ? -1 : 0;
    return 1;
}

static int backward_dnn(lgd_backend *be, const lgd_conv_shape *s, const float *dy,
                        const float *w, float beta, float *dx, int *rc)
{
    cudnnHandle_t h = dnn(be);
    conv_entry *e = h ? entry_for(be, s) : NULL;
    if (!e)
        return 0;
    if (e->bwd_state == 0) {
        choose_backward(h, e);
        log_choice(be, s, "backward_data", e->bwd_state > 0 ? (int)e->bwd_algo : -1, e->bwd_ws);
    }
    if (e->bwd_state < 0)
        return 0;
    void *ws = NULL;
    if (e->bwd_ws) {
        ws = lgd_pool_alloc(be, e->bwd_ws);
        if (!ws) {
            lgd_cuda_check(be, cudaErrorMemoryAllocation,
                           "conv2d_backward_data (cuDNN workspace)");
            *rc = -1;
            return 1;
        }
    }
    /* cuDNN does not read dx when beta is 0 */
    const float one = 1.0f, b = beta == 0.0f ? 0.0f : beta;
    cudnnStatus_t st = cudnnConvolutionBackwardData(h, &one, e->wd, w, e->yd, dy, e->cd,
                                                    e->bwd_algo, ws, e->bwd_ws, &b, e->xd, dx);
    lgd_pool_free(be, ws);
    *rc = check_dnn(be, st, "conv2d_backward_data (cudnnConvolutionBackwardData)") ? -1 : 0;
    return 1;
}

#endif /* LGD_HAVE_CUDNN */

void lgd_cuda_conv_destroy(lgd_backend *be)
{
#if LGD_HAVE_CUDNN
    if (be->conv) {
        for (int i = 0; i < CONV_CACHE; i++)
            entry_release(&be->conv->e[i]);
    }
#endif
    free(be->conv);
    be->conv = NULL;
}

/* ---- the operations ---- */

int lgd_cuda_conv2d_forward(lgd_backend *be, const lgd_conv_shape *s, const float *x,
                            const float *w, const float *bias, float *y)
{
    if (be->failed)
        return -1;
    if (!shape_ok(be, s, "conv2d_forward"))
        return -1;
    size_t out = (size_t)s->n * image_out(s);
    if (out == 0)
        return 0;
    lgd_cuda_enter(be);
    int rc = 0;
    if (s->c_in == 0) { /* an empty sum */
        lgd_cuda_fill(be, y, out, 0.0f);
    } else {
#if LGD_HAVE_CUDNN
        if (!forward_dnn(be, s, x, w, y, &rc))
#endif
            rc = forward_im2col(be, s, x, w, y);
    }
    if (rc == 0 && bias)
        lgd_cuda_add_channel_bias(be, (size_t)s->n, (size_t)s->c_out,
                                  (size_t)s->h_out * (size_t)s->w_out, bias, 0, y);
    return rc || be->failed ? -1 : 0;
}

int lgd_cuda_conv2d_backward_data(lgd_backend *be, const lgd_conv_shape *s, const float *dy,
                                  const float *w, float beta, float *dx)
{
    if (be->failed)
        return -1;
    if (!shape_ok(be, s, "conv2d_backward_data"))
        return -1;
    size_t in = (size_t)s->n * image_in(s);
    if (in == 0)
        return 0;
    lgd_cuda_enter(be);
    int rc = 0;
    if (s->c_out == 0) { /* dx = 0 + beta dx */
        if (beta == 0.0f)
            lgd_cuda_fill(be, dx, in, 0.0f);
        else if (beta != 1.0f)
            lgd_cuda_scale_matrix(be, 1, in, beta, dx, in);
    } else {
#if LGD_HAVE_CUDNN
        if (!backward_dnn(be, s, dy, w, beta, dx, &rc))
#endif
            rc = backward_im2col(be, s, dy, w, beta, dx);
    }
    return rc || be->failed ? -1 : 0;
}
