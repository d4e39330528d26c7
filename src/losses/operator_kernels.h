/*
 * operator_kernels.h - the kernels of the matrix-free linear operators of
 * losses/operator.c (lgd/operator.h), as a kernel table (core/kernels.h).
 *
 * Every separable operator (average pooling, bicubic downsampling, Gaussian blur) and
 * its transpose is two passes of apply_axis, one per image axis, each a sparse 1-D
 * matrix in CSR form built on the host; the mask is mul_rows. Each output element is
 * summed in double over its taps in CSR order by one thread, so results do not depend
 * on the thread count, and CUDA (whose products of floats are exact in double, and
 * which is built without FMA contraction) is to give the CPU's bits (compared by
 * tests/test_operators.c where a device is present).
 *
 * CPU: losses/operator_kernels_cpu.c; CUDA: cuda/kernels_operator.cu.
 */
#ifndef LGD_OPERATOR_KERNELS_H
#define LGD_OPERATOR_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/kernels.h"

#define LGD_OPERATOR_KERNELS_VERSION 1u

typedef struct lgd_operator_kernels {
    /* A 1-D linear map A [n_out][n_in] along the middle axis of x [outer][n_in][inner]:
     *   out[o][i][k] = sum_{e = offsets[i]}^{offsets[i + 1] - 1} weight[e] *
     *                  x[o][index[e]][k]
     * for o < outer, i < n_out, k < inner (accumulated in double, rounded once);
     * out is [outer][n_out][inner] and must not overlap x. offsets [n_out + 1] (from 0),
     * index (each < n_in) and weight [offsets[n_out]] are backend memory. */
    void (*apply_axis)(lgd_backend *be, size_t outer, size_t n_in, size_t n_out, size_t inner,
                       const int32_t *offsets, const int32_t *index, const float *weight,
                       const float *x, float *out);
    /* out[r][j] = mask[j] * x[r][j] for r < rows, j < cols (out may be x) */
    void (*mul_rows)(lgd_backend *be, size_t rows, size_t cols, const float *mask,
                     const float *x, float *out);
} lgd_operator_kernels;

extern const lgd_operator_kernels lgd_operator_kernels_cpu;
extern const lgd_kernel_table lgd_operator_kernel_table; /* "operator", version 1 */

#endif
