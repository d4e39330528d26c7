/*
 * lgd/model.h - denoisers D(x, sigma) ~ E[x0 | x] and their vector-Jacobian products.
 *
 * Notation (EDM / sigma space): x = x0 + sigma * eps, eps ~ N(0, I). Every model
 * is seen through the denoiser xhat = D(x, sigma) and the vector-Jacobian product
 * J^T v with J = d xhat / d x. Tensors are [batch][dim] unless stated otherwise.
 *
 * Three kinds of model:
 *  - lgd_model_create_callbacks(): the host's own denoiser and VJP;
 *  - lgd_model_create_network(): a raw network (eps-, x0-, v-prediction or EDM F)
 *    with discrete VP timesteps or continuous noise levels, wrapped by an
 *    adapter so that it is seen as D(x, sigma);
 *  - lgd_model_create_gmm(): an exact Gaussian-mixture prior (denoiser, VJP,
 *    score, log density and exact posterior sampling).
 */
#ifndef LGD_MODEL_H
#define LGD_MODEL_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Host denoiser: writes xhat[batch][dim] = D(x, sigma). cond is [batch][cond_dim]
 * or NULL when no condition was given. Returns 0 on success; any other value is
 * reported as LGD_ERR_CALLBACK (with the value in the message).
 */
typedef int (*lgd_denoise_fn)(void *user, const float *x, float sigma, const float *cond,
                              int64_t batch, int64_t dim, float *xhat);
/**
 * Host VJP: writes out[batch][dim] = J^T v, J = d D(x, sigma) / d x per batch row.
 * liblgd always calls it right after the denoiser on the same x and sigma, so a
 * callback may reuse what its forward pass saved.
 */
typedef int (*lgd_vjp_fn)(void *user, const float *x, float sigma, const float *cond,
                          int64_t batch, int64_t dim, const float *v, float *out);

/** A model from host callbacks. */
typedef struct lgd_model_callbacks {
    uint32_t struct_size;       /**< sizeof(lgd_model_callbacks) */
    lgd_memory memory;          /**< where the callbacks want x, v and outputs */
    int64_t dim;                /**< length of one sample (> 0) */
    int64_t cond_dim;           /**< length of one condition row, 0 if unconditional */
    lgd_denoise_fn denoise;     /**< required */
    lgd_vjp_fn vjp;             /**< required for DPS / LGD-MC guidance; may be NULL otherwise */
    void (*destroy)(void *user);/**< called once when the model is freed; may be NULL */
    void *user;
} lgd_model_callbacks;

#define LGD_MODEL_CALLBACKS_INIT \
    LGD_STRUCT_INIT_(lgd_model_callbacks, LGD_MEMORY_HOST, 0, 0, NULL, NULL, NULL, NULL)
LGD_API lgd_status lgd_model_callbacks_init(lgd_model_callbacks *callbacks, uint32_t struct_size);

/** Creates a model from host callbacks. On failure the destroy callback is NOT called. */
LGD_API lgd_status lgd_model_create_callbacks(lgd_context *context,
                                              const lgd_model_callbacks *callbacks,
                                              lgd_model **out_model);

/** Covariance layout of a Gaussian mixture. */
typedef enum lgd_covariance {
    LGD_COVARIANCE_FULL = 0,      /**< covariances[K][dim][dim], symmetric positive semi-definite */
    LGD_COVARIANCE_DIAGONAL = 1,  /**< covariances[K][dim], variances >= 0 */
    LGD_COVARIANCE_ISOTROPIC = 2  /**< covariances[K], one variance per component */
} lgd_covariance;

/**
 * An exact Gaussian-mixture prior p0 = sum_k w_k N(mu_k, Sigma_k) in `dim`
 * dimensions with K components. weights[K] (positive, normalised here),
 * means[K][dim], covariances as `layout` says. All arrays are copied. Full
 * covariances are eigendecomposed once here; a matrix that is not symmetric
 * or has a negative eigenvalue is rejected.
 */
LGD_API lgd_status lgd_model_create_gmm(lgd_context *context, int64_t dim, int64_t components,
                                        const float *weights, const float *means,
                                        const float *covariances, lgd_covariance layout,
                                        lgd_model **out_model);

/** Releases the caller's reference (guidance objects keep their own). */
LGD_API void lgd_model_destroy(lgd_model *model);

/** Length of one sample, and of one condition row (0 if unconditional). */
LGD_API int64_t lgd_model_dim(const lgd_model *model);
LGD_API int64_t lgd_model_cond_dim(const lgd_model *model);

/** xhat = D(x, sigma). x, out: [batch][dim]; cond: [batch][cond_dim] or NULL. sigma > 0. */
LGD_API lgd_status lgd_model_denoise(lgd_model *model, const lgd_tensor *x, float sigma,
                                     const lgd_tensor *cond, lgd_tensor *out);
/** out = J^T v where J = dD(x, sigma)/dx (row by row). */
LGD_API lgd_status lgd_model_vjp(lgd_model *model, const lgd_tensor *x, float sigma,
                                 const lgd_tensor *cond, const lgd_tensor *v, lgd_tensor *out);
/** score(x) = grad log p_sigma(x) = (D(x, sigma) - x) / sigma^2 (Tweedie). */
LGD_API lgd_status lgd_model_score(lgd_model *model, const lgd_tensor *x, float sigma,
                                   const lgd_tensor *cond, lgd_tensor *out);
/** log p_sigma(x) per row into out[batch] (sigma >= 0). Gaussian mixtures only. */
LGD_API lgd_status lgd_model_log_density(lgd_model *model, const lgd_tensor *x, float sigma,
                                         lgd_tensor *out);

/** Non-zero when the model can draw from its exact posterior p(x0 | x). */
LGD_API int lgd_model_has_exact_posterior(const lgd_model *model);
/**
 * Draws out[batch][n][dim] from p(x0 | x) at noise level sigma (exact; Gaussian
 * mixtures only). Draw i of row b uses Philox counters (seed, b + first_row, i),
 * so results do not depend on how the batch is split.
 */
LGD_API lgd_status lgd_model_sample_posterior(lgd_model *model, const lgd_tensor *x,
                                              float sigma, uint64_t seed, uint64_t first_row,
                                              lgd_tensor *out);

#ifdef __cplusplus
}
#endif
#endif
