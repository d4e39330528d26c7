/*
 * nn_kernels.h - the network layers' kernel table (core/kernels.h): the primitives
 * that nn/nn_graph.c composes into layers (attention, residual blocks and the
 * architectures are backend-independent code above them).
 *
 * Activations are laid out [n][c][spatial] (NCHW; 1-D layers use h = 1). Every
 * *_backward writes the input's cotangent as  dx = result + beta * dx  with beta 0 or
 * 1, so a value used by several layers accumulates its cotangent. Only input VJPs
 * exist: weights are constants. The int-returning kernels return 0 on success and
 * non-zero when the backend failed (allocation, cuDNN). GEMMs, row copies and
 * transposes are generic and in the backend table itself (backend/backend.h).
 *
 * CPU: backend/cpu/cpu_layers.c, cpu_conv.c and cpu_dnnl.c (oneDNN, im2col and the
 * CPU backend's scratch); CUDA: cuda/kernels_nn.cu and conv_cudnn.c. Shared formulas (the sigmoid,
 * the time embedding's frequencies) are in core/hd_math.h.
 */
#ifndef LGD_NN_KERNELS_H
#define LGD_NN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/kernels.h"

/* 2 (0.5.0): the fused group norm (+ channel addend, + activation) below. A table built
 * for version 1 is refused rather than read past its end. */
#define LGD_NN_KERNELS_VERSION 2u

/* Floats of saved statistics per group of group_norm_act: mean, rstd (floats, as
 * group_norm saves them) and the double mean and rstd of the forward pass. */
#define LGD_NN_NORM_ACT_STATS 6

/* Shape of a 2-D convolution (1-D: h = kh = 1, stride_h = 1, pad_h = 0). Input
 * x[n][c_in][h][w], weight w[c_out][c_in][kh][kw], output y[n][c_out][h_out][w_out]
 * with h_out = (h + 2 pad_h - kh) / stride_h + 1 (likewise w_out); groups = 1,
 * dilation = 1. */
typedef struct lgd_conv_shape {
    int32_t n, c_in, h, w;
    int32_t c_out, kh, kw;
    int32_t stride_h, stride_w, pad_h, pad_w;
    int32_t h_out, w_out;
} lgd_conv_shape;

/* Elementwise activations of network layers. */
typedef enum lgd_activation {
    LGD_ACT_SILU = 0, /* x sigmoid(x) */
    LGD_ACT_GELU = 1  /* x Phi(x), Phi the standard normal CDF (erf form) */
} lgd_activation;

typedef struct lgd_nn_kernels {
    /* y = conv(x, w) + bias (cross-correlation, as PyTorch); bias may be NULL */
    int (*conv2d_forward)(lgd_backend *be, const lgd_conv_shape *s, const float *x,
                          const float *w, const float *bias, float *y);
    /* dx = conv2d^T(dy, w) + beta dx  (the input VJP of conv2d_forward) */
    int (*conv2d_backward_data)(lgd_backend *be, const lgd_conv_shape *s, const float *dy,
                                const float *w, float beta, float *dx);
    /* y[i][c][k] += b[i * b_stride + c] for i < n, c < c, k < s (b_stride 0: shared) */
    void (*add_channel_bias)(lgd_backend *be, size_t n, size_t c, size_t s, const float *b,
                             size_t b_stride, float *y);
    /* y[i][c][k] = x[i][c][k] * (1 + scale[i*stride + c]) + shift[i*stride + c] */
    void (*scale_shift)(lgd_backend *be, size_t n, size_t c, size_t s, const float *x,
                        const float *scale, const float *shift, size_t stride, float *y);
    /* dx = dy * (1 + scale) + beta dx (the input VJP of scale_shift) */
    void (*scale_shift_backward)(lgd_backend *be, size_t n, size_t c, size_t s,
                                 const float *dy, const float *scale, size_t stride,
                                 float beta, float *dx);
    /* elementwise y = f(x), f = SiLU / GELU (erf form, as torch's default) */
    void (*activation)(lgd_backend *be, lgd_activation f, size_t count, const float *x,
                       float *y);
    /* dx = dy * f'(x) + beta dx */
    void (*activation_backward)(lgd_backend *be, lgd_activation f, size_t count,
                                const float *x, const float *dy, float beta, float *dx);
    /* group norm of x[n][c][s] over `groups` groups of c / groups channels (layer norm
     * over the c features of each row is n rows, s = 1, groups = 1):
     * y = (x - mean) * rstd * gamma[c] + beta[c]; mean, rstd [n][groups] are saved
     * for the backward pass (rstd = 1 / sqrt(var + eps), biased variance) */
    void (*group_norm)(lgd_backend *be, size_t n, size_t c, size_t s, size_t groups,
                       float eps, const float *x, const float *gamma, const float *beta_,
                       float *y, float *mean, float *rstd);
    /* dx = d/dx <dy, group_norm(x)> + beta dx */
    void (*group_norm_backward)(lgd_backend *be, size_t n, size_t c, size_t s, size_t groups,
                                const float *x, const float *gamma, const float *mean,
                                const float *rstd, const float *dy, float beta, float *dx);
    /* nearest upsampling y[p][h*fh][w*fw] = x[p][h][w] for p < planes */
    void (*upsample_nearest)(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh,
                             size_t fw, const float *x, float *y);
    /* dx[p][i][j] = sum of dy over the fh x fw block of (i, j) + beta dx */
    void (*upsample_nearest_backward)(lgd_backend *be, size_t planes, size_t h, size_t w,
                                      size_t fh, size_t fw, const float *dy, float beta,
                                      float *dx);
    /* average pooling y[p][i][j] = mean of x over the fh x fw block; x is [p][h][w]
     * with h, w multiples of fh, fw */
    void (*avg_pool)(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh, size_t fw,
                     const float *x, float *y);
    /* dx = (dy spread over each block) / (fh fw) + beta dx */
    void (*avg_pool_backward)(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh,
                              size_t fw, const float *dy, float beta, float *dx);
    /* ADM's sinusoidal time embedding of a scalar t, computed on the backend (no copy from
     * the host per network call): with half = dim / 2 and f_i = exp(-ln(10000) i / half),
     * out[i] = cos(t f_i), out[half + i] = sin(t f_i) for i < half; dim is even */
    void (*time_embedding)(lgd_backend *be, float t, size_t dim, float *out);
    /* Version 2, optional (NULL: the graph runs the layers one by one). One layer for
     * add_channel_bias, group_norm and activation in sequence:
     *   y = f(group_norm(x + e)),  (x + e)[i][c][k] = x[i][c][k] + e[i * e_stride + c]
     * (e NULL: no addend; e_stride 0: shared), with results bit-identical to the three
     * kernels run one after the other, and without writing the intermediate values.
     * stats [LGD_NN_NORM_ACT_STATS n groups floats] keeps what the backward pass needs:
     * n groups means, then n groups rstds (as group_norm's), then the forward's double
     * statistics; dact [n c s] (NULL: not kept) the activation's derivative f'(z) at the
     * normalised values z, as activation_backward forms it. Return 0, or non-zero when
     * the backend's scratch could not be had. */
    int (*group_norm_act)(lgd_backend *be, size_t n, size_t c, size_t s, size_t groups,
                          float eps, const float *x, const float *e, size_t e_stride,
                          const float *gamma, const float *beta_, lgd_activation f, float *y,
                          float *stats, float *dact);
    /* dx = d/dx <dy, group_norm_act(x)> + beta dx (the input VJP; e, gamma, beta_, f,
     * stats and dact as the forward pass had them; dact NULL: f'(z) recomputed),
     * bit-identical to activation_backward, group_norm_backward and the channel add's
     * identity VJP in sequence */
    int (*group_norm_act_backward)(lgd_backend *be, size_t n, size_t c, size_t s,
                                   size_t groups, const float *x, const float *e,
                                   size_t e_stride, const float *gamma, const float *beta_,
                                   lgd_activation f, const float *stats, const float *dact,
                                   const float *dy, float beta, float *dx);
} lgd_nn_kernels;

extern const lgd_nn_kernels lgd_nn_kernels_cpu;  /* backend/cpu/cpu_layers.c */
extern const lgd_kernel_table lgd_nn_kernel_table; /* "nn", LGD_NN_KERNELS_VERSION */

#endif
