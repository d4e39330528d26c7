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
 * Denoiser callback: writes every element of xhat[batch][dim] = D(x, sigma). cond is
 * [batch][cond_dim] or NULL when no condition was given. Buffers are host or backend
 * memory as lgd_model_callbacks.memory says, valid only during the call. Returns 0 on
 * success; any other value is a failure reported as LGD_ERR_CALLBACK (with the value
 * in the message, and the message of lgd_context_set_callback_error() if the callback
 * set one). Must not unwind (no C++ exception, Rust panic or longjmp out of it); may
 * call on the model's context only lgd_context_set_callback_error() and pure getters
 * (lgd/context.h, "Callbacks"). (Returns int32_t since 0.3.0; int before, the same ABI.)
 */
typedef int32_t (*lgd_denoise_fn)(void *user, const float *x, float sigma, const float *cond,
                                  int64_t batch, int64_t dim, float *xhat);
/**
 * VJP callback: writes every element of out[batch][dim] = J^T v, J = d D(x, sigma) /
 * d x per batch row. liblgd always calls it right after the denoiser on the same x and
 * sigma, so a callback may reuse what its forward pass saved. The same rules as
 * lgd_denoise_fn: 0 is success, any other value LGD_ERR_CALLBACK (with the message of
 * lgd_context_set_callback_error() if set); must not unwind; on the model's context
 * only lgd_context_set_callback_error() and pure getters. (int32_t since 0.3.0.)
 */
typedef int32_t (*lgd_vjp_fn)(void *user, const float *x, float sigma, const float *cond,
                              int64_t batch, int64_t dim, const float *v, float *out);

/** A model from host callbacks. */
typedef struct lgd_model_callbacks {
    uint32_t struct_size;       /**< sizeof(lgd_model_callbacks) */
    lgd_memory memory;          /**< where the callbacks want x, v and outputs */
    int64_t dim;                /**< length of one sample (> 0) */
    int64_t cond_dim;           /**< length of one condition row, 0 if unconditional */
    lgd_denoise_fn denoise;     /**< required */
    lgd_vjp_fn vjp;             /**< required for DPS / LGD-MC guidance; may be NULL otherwise */
    /** Called once when the model is freed; may be NULL. Must not unwind and must not
     *  call liblgd on the model being freed. */
    void (*destroy)(void *user);
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

/** Takes a reference to the model and returns it (NULL for NULL); each reference is
 *  dropped with lgd_model_destroy(), the last one frees the model. Any thread (see the
 *  thread contract in <lgd/lgd.h>). (Since 0.3.0.) */
LGD_API lgd_model *lgd_model_retain(lgd_model *model);
/** The context the model was made from (NULL for NULL): borrowed, valid while the
 *  caller holds a reference to the model; for lgd_context_last_error(). (Since 0.3.0.) */
LGD_API lgd_context *lgd_model_context(const lgd_model *model);

#ifdef __cplusplus
}
#endif
#endif
