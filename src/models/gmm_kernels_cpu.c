/*
 * gmm_kernels_cpu.c - the Gaussian mixture's kernel table on the CPU (gmm_kernels.h).
 */
#include <math.h>
#include <stddef.h>

#include "backend/cpu/cpu_parallel.h"
#include "core/hd_math.h"
#include "models/gmm_kernels.h"

/* Columns whose filter factors are computed at once, on the stack: a factor per
 * column rather than a division per element, and no allocation per call. */
#define GMM_FACTOR_BLOCK 1024

static void cpu_diag_filter(lgd_backend *be, lgd_diag_filter filter, size_t rows, size_t cols,
                            const float *lam, float s2, const float *in, float *out)
{
    for (size_t j0 = 0; j0 < cols; j0 += GMM_FACTOR_BLOCK) {
        size_t nj = cols - j0 < GMM_FACTOR_BLOCK ? cols - j0 : GMM_FACTOR_BLOCK;
        float f[GMM_FACTOR_BLOCK];
        for (size_t j = 0; j < nj; j++)
            f[j] = lgd_diag_factor(filter, lam[j0 + j], s2);
        LGD_CPU_FOR(rows * nj)
        for (size_t r = 0; r < rows; r++) {
            const float *ir = in + r * cols + j0;
            float *o = out + r * cols + j0;
            for (size_t j = 0; j < nj; j++)
                o[j] = f[j] * ir[j];
        }
    }
}

static void cpu_gaussian_logp(lgd_backend *be, size_t rows, size_t cols, const float *x,
                              const float *lam, float s2, float c, float *out,
                              size_t out_stride)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        double acc = 0.0;
        for (size_t j = 0; j < cols; j++) {
            double v = x[r * cols + j];
            acc += v * v / ((double)lam[j] + (double)s2);
        }
        out[r * out_stride] = (float)((double)c - 0.5 * acc);
    }
}

const lgd_gmm_kernels lgd_gmm_kernels_cpu = {
    .diag_filter = cpu_diag_filter,
    .gaussian_logp = cpu_gaussian_logp,
};

const lgd_kernel_table lgd_gmm_kernel_table = { "gmm", LGD_GMM_KERNELS_VERSION,
                                                &lgd_gmm_kernels_cpu };
