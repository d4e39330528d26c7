/*
 * cpu_nn.h - the CPU backend's matrix and network-layer kernels: GEMMs, row copies,
 * transposes (cpu_matrix.c), convolutions and their scratch (cpu_conv.c), the other
 * layers and the table lgd_nn_kernels_cpu of nn/nn_kernels.h (cpu_layers.c), and the
 * oneDNN paths (cpu_dnnl.c).
 *
 * Private to backend/cpu/.
 */
#ifndef LGD_CPU_NN_H
#define LGD_CPU_NN_H

#include <stddef.h>
#include <stdint.h>

#include "backend/cpu/cpu_backend.h"
#include "nn/nn_kernels.h"

/* oneDNN (cpu_dnnl.c; without LGD_HAVE_DNNL these do nothing and report
 * failure). init sets be->onednn (reads LGD_CPU_ONEDNN); release frees the primitives,
 * stream and engine. sgemm, conv2d_forward and conv2d_backward_data compute what the
 * ops of the same names do and return 0, or return non-zero having written nothing
 * that the caller's fallback does not overwrite (sgemm: C untouched; forward: y;
 * backward: dx untouched unless beta = 0) so that the caller falls back to OpenBLAS /
 * im2col. The convolutions return -2 when host memory for oneDNN's cache entry or
 * scratch cannot be allocated: the caller fails then (out of memory) rather than fall
 * back, since im2col rounds differently and the same seed must give the same bytes. */
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
int lgd_cpu_group_norm_act(lgd_backend *be, size_t n, size_t c, size_t s, size_t groups,
                           float eps, const float *x, const float *e, size_t e_stride,
                           const float *gamma, const float *beta_, lgd_activation f, float *y,
                           float *stats, float *dact);
int lgd_cpu_group_norm_act_backward(lgd_backend *be, size_t n, size_t c, size_t s,
                                    size_t groups, const float *x, const float *e,
                                    size_t e_stride, const float *gamma, const float *beta_,
                                    lgd_activation f, const float *stats, const float *dact,
                                    const float *dy, float beta, float *dx);
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
