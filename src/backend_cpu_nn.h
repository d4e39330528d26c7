/*
 * backend_cpu_nn.h - the CPU backend's state and its network-layer primitives
 * (the "network layers (ABI 2)" block of lgd_backend_ops, see backend.h).
 *
 * Private to backend_cpu.c and backend_cpu_nn.c.
 */
#ifndef LGD_BACKEND_CPU_NN_H
#define LGD_BACKEND_CPU_NN_H

#include <stddef.h>

#include "backend.h"

/* The CPU backend's state. A backend object is used by one thread at a time, so
 * the scratch buffer needs no lock. */
struct lgd_backend {
    int threads;
    char name[96];
    /* grow-only scratch of the network layers (im2col / col2im tiles), 64-byte
     * aligned; freed by lgd_cpu_nn_release */
    float *nn_scratch;
    size_t nn_scratch_floats;
};

/* Frees the network layers' scratch (called by the backend's destroy). */
void lgd_cpu_nn_release(lgd_backend *be);

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

#endif
