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

/* What the posterior draws of a mixture without rotations (diagonal or isotropic
 * covariances) need, prepared once per guidance call (model_gmm.c,
 * gmm_posterior_sampler): all backend memory, read only while drawing. */
typedef struct lgd_gmm_posterior {
    size_t D, K, batch;
    const float *resp;     /* [batch][K] responsibilities (softmax_rows) */
    const float *means;    /* [K][batch][D] component posterior means m_k (component_mean) */
    const float *post_std; /* [K][D] diag_filter POST_STD's factors */
    lgd_rng_stream rng;    /* seed, step, first_row of sample_posterior's rng */
} lgd_gmm_posterior;

typedef struct lgd_gmm_kernels {
    /* out[r][j] = f(lam[j], s2) * in[r][j] for the filter f (core/hd_math.h) */
    void (*diag_filter)(lgd_backend *be, lgd_diag_filter filter, size_t rows, size_t cols,
                        const float *lam, float s2, const float *in, float *out);
    /* out[r * out_stride] = c - 0.5 * sum_j x[r][j]^2 / (lam[j] + s2) */
    void (*gaussian_logp)(lgd_backend *be, size_t rows, size_t cols, const float *x,
                          const float *lam, float s2, float c, float *out, size_t out_stride);
    /* Optional (the CPU's table; NULL on devices): draws [first, first + count) of row r
     * of p(x0 | x) into out[count][D], the same bits as model_gmm.c's sample_posterior
     * gives those draws (whatever its chunks): the component of draw j by the backend's
     * uniform (LGD_RNG_COMPONENT, draw index j) and categorical rule on resp[r], and
     * out[j] = m_k[r] + post_std_k * eps_j, eps the normal stream (LGD_RNG_POSTERIOR) of
     * row r, rounded as diag_filter then broadcast_axpy round it. Only the drawn
     * component's candidate is computed (sample_posterior makes all K and selects one).
     * Safe to call for many rows at once (the fused Monte Carlo loop's threads). */
    void (*posterior_draws)(const lgd_gmm_posterior *p, size_t r, size_t first, size_t count,
                            float *out);
} lgd_gmm_kernels;

extern const lgd_gmm_kernels lgd_gmm_kernels_cpu;
extern const lgd_kernel_table lgd_gmm_kernel_table; /* "gmm", version 1 */

#endif
