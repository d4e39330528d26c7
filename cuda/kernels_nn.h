/*
 * kernels_nn.h - what the CUDA "nn" kernel table's two files share: the
 * convolutions of conv_cudnn.c (cuDNN, else im2col + cuBLAS) go into the table of
 * kernels_nn.cu, and use its channel-bias and im2col/col2im kernels.
 */
#ifndef LGD_CUDA_KERNELS_NN_H
#define LGD_CUDA_KERNELS_NN_H

#include "cuda_backend.h"
#include "nn/nn_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* conv_cudnn.c: the table's conv2d_forward and conv2d_backward_data */
int lgd_cuda_conv2d_forward(lgd_backend *be, const lgd_conv_shape *s, const float *x,
                            const float *w, const float *bias, float *y);
int lgd_cuda_conv2d_backward_data(lgd_backend *be, const lgd_conv_shape *s, const float *dy,
                                  const float *w, float beta, float *dx);

/* kernels_nn.cu: the table's add_channel_bias */
void lgd_cuda_add_channel_bias(lgd_backend *be, size_t n, size_t c, size_t s, const float *b,
                               size_t b_stride, float *y);
/* kernels_nn.cu: the im2col fallback of the convolutions: col[b][c_in kh kw][h_out w_out]
 * for nb images of x; dx[b] = col2im(dcol[b]) + beta dx[b]. Non-zero on a failed launch. */
int lgd_cuda_im2col(lgd_backend *be, const lgd_conv_shape *s, size_t nb, const float *x,
                    float *col);
int lgd_cuda_col2im(lgd_backend *be, const lgd_conv_shape *s, size_t nb, const float *dcol,
                    float beta, float *dx);

#ifdef __cplusplus
}
#endif

#endif
