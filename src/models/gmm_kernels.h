/*
 * gmm_kernels.h - the Gaussian mixture's own kernels, as a kernel table
 * (core/kernels.h), used by models/model_gmm.c. The formulas shared by both backends
 * (the eigenvalue filters) are in core/hd_math.h.
 *
 * CPU: models/gmm_kernels_cpu.c; CUDA: cuda/kernels_gmm.cu.
 */
#ifndef LGD_GMM_KERNELS_H
#define LGD_GMM_KERNELS_H

#include <stddef.h>

#include "backend/backend.h"
#include "core/hd_math.h" /* lgd_diag_filter */
#include "core/kernels.h"

#define LGD_GMM_KERNELS_VERSION 1u

typedef struct lgd_gmm_kernels {
    /* out[r][j] = f(lam[j], s2) * in[r][j] for the filter f (core/hd_math.h) */
    void (*diag_filter)(lgd_backend *be, lgd_diag_filter filter, size_t rows, size_t cols,
                        const float *lam, float s2, const float *in, float *out);
    /* out[r * out_stride] = c - 0.5 * sum_j x[r][j]^2 / (lam[j] + s2) */
    void (*gaussian_logp)(lgd_backend *be, size_t rows, size_t cols, const float *x,
                          const float *lam, float s2, float c, float *out, size_t out_stride);
} lgd_gmm_kernels;

extern const lgd_gmm_kernels lgd_gmm_kernels_cpu;
extern const lgd_kernel_table lgd_gmm_kernel_table; /* "gmm", version 1 */

#endif
