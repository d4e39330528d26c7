/*
 * backend_cpu_nn.h - the CPU backend's state and its network-layer primitives
 * (the "network layers (ABI 2)" block of lgd_backend_ops, see backend.h).
 *
 * Private to backend_cpu.c and backend_cpu_nn.c.
 */
#ifndef LGD_BACKEND_CPU_NN_H
#define LGD_BACKEND_CPU_NN_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

/* Convolution primitives that one backend keeps (oneDNN, backend_cpu_dnnl.c). */
#define LGD_DNNL_CONV_CACHE 96

struct lgd_dnnl_conv;
struct dnnl_engine;
struct dnnl_stream;

/* The CPU backend's state. A backend object is used by one thread at a time, so
 * the scratch buffer and the oneDNN state need no lock. */
struct lgd_backend {
    int threads;
    char name[96];
    /* grow-only scratch of the network layers (im2col / col2im tiles, oneDNN's
     * reordered tensors and scratchpads), 64-byte aligned; freed by lgd_cpu_nn_release */
    float *nn_scratch;
    size_t nn_scratch_floats;
    /* oneDNN (backend_cpu_dnnl.c). onednn: built with it and not switched off by
     * LGD_CPU_ONEDNN=0 when the backend opened (lgd_cpu_dnnl_init). The engine and
     * stream are created by the first convolution (dnnl_failed: that failed, so the
     * im2col path is used from then on); primitives are cached per shape, least
     * recently used out first; all freed by lgd_cpu_dnnl_release. */
    int onednn;
    int dnnl_failed;
    struct dnnl_engine *dnnl_engine;
    struct dnnl_stream *dnnl_stream;
    struct lgd_dnnl_conv *dnnl_convs[LGD_DNNL_CONV_CACHE];
    uint64_t dnnl_clock;      /* LRU clock */
    uint64_t dnnl_conv_calls; /* convolutions computed by oneDNN (seen by the tests) */
};

/* Frees the network layers' scratch (called by the backend's destroy). */
void lgd_cpu_nn_release(lgd_backend *be);
/* At least `floats` floats of the grow-only scratch (64-byte aligned), or NULL. */
float *lgd_cpu_nn_scratch(lgd_backend *be, size_t floats);

/* oneDNN (backend_cpu_dnnl.c; without LGD_HAVE_DNNL these do nothing and report
 * failure). init sets be->onednn (reads LGD_CPU_ONEDNN); release frees the primitives,
 * stream and engine. sgemm, conv2d_forward and conv2d_backward_data compute what the
 * ops of the same names do and return 0, or return non-zero having written nothing
 * that the caller's fallback does not overwrite (sgemm: C untouched; forward: y;
 * backward: dx untouched unless beta = 0) so that the caller falls back to OpenBLAS /
 * im2col. */
void lgd_cpu_dnnl_init(lgd_backend *be);
void lgd_cpu_dnnl_release(lgd_backend *be);
int lgd_cpu_dnnl_sgemm(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                       float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                       float beta, float *C, size_t ldc);
int lgd_cpu_dnnl_conv2d_forward(lgd_backend *be, const lgd_conv_shape *s, const float *x,
                                const float *w, const float *bias, float *y);
int lgd_cpu_dnnl_conv2d_backward_data(lgd_backend *be, const lgd_conv_shape *s,
                                      const float *dy, const float *w, float beta, float *dx);

/* C = alpha op(A) op(B) + beta C, row-major: oneDNN's sgemm when the backend has it,
 * OpenBLAS otherwise (the backend's gemm op, and every GEMM of the layers) */
void lgd_cpu_sgemm(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                   float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                   float beta, float *C, size_t ldc);
void lgd_cpu_gemm_batched(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N,
                          size_t K, float alpha, const float *A, size_t lda, size_t stride_a,
                          const float *B, size_t ldb, size_t stride_b, float beta, float *C,
                          size_t ldc, size_t stride_c, size_t count);
int lgd_cpu_conv2d_forward(lgd_backend *be, const lgd_conv_shape *s, const float *x,
                           const float *w, const float *bias, float *y);
int lgd_cpu_conv2d_backward_data(lgd_backend *be, const lgd_conv_shape *s, const float *dy,
                                 const float *w, float beta, float *dx);
void lgd_cpu_add_channel_bias(lgd_backend *be, size_t n, size_t c, size_t s, const float *b,
                              size_t b_stride, float *y);
void lgd_cpu_scale_shift(lgd_backend *be, size_t n, size_t c, size_t s, const float *x,
                         const float *scale, const float *shift, size_t stride, float *y);
void lgd_cpu_scale_shift_backward(lgd_backend *be, size_t n, size_t c, size_t s,
                                  const float *dy, const float *scale, size_t stride,
                                  float beta, float *dx);
void lgd_cpu_activation(lgd_backend *be, lgd_activation f, size_t count, const float *x,
                        float *y);
void lgd_cpu_activation_backward(lgd_backend *be, lgd_activation f, size_t count,
                                 const float *x, const float *dy, float beta, float *dx);
void lgd_cpu_group_norm(lgd_backend *be, size_t n, size_t c, size_t s, size_t groups,
                        float eps, const float *x, const float *gamma, const float *beta_,
                        float *y, float *mean, float *rstd);
void lgd_cpu_group_norm_backward(lgd_backend *be, size_t n, size_t c, size_t s, size_t groups,
                                 const float *x, const float *gamma, const float *mean,
                                 const float *rstd, const float *dy, float beta, float *dx);
void lgd_cpu_upsample_nearest(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh,
                              size_t fw, const float *x, float *y);
void lgd_cpu_upsample_nearest_backward(lgd_backend *be, size_t planes, size_t h, size_t w,
                                       size_t fh, size_t fw, const float *dy, float beta,
                                       float *dx);
void lgd_cpu_avg_pool(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh, size_t fw,
                      const float *x, float *y);
void lgd_cpu_avg_pool_backward(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh,
                               size_t fw, const float *dy, float beta, float *dx);
void lgd_cpu_copy_rows(lgd_backend *be, size_t rows, size_t cols, const float *src, size_t lds,
                       float beta, float *dst, size_t ldd);
void lgd_cpu_transpose(lgd_backend *be, size_t batch, size_t rows, size_t cols, const float *x,
                       float beta, float *y);
void lgd_cpu_time_embedding(lgd_backend *be, float t, size_t dim, float *out);

#endif
