/*
 * lgd/model.h - denoisers D(x, sigma) ~ E[x0 | x] and their vector-Jacobian products.
 *
 * Notation (EDM / sigma space): x = x0 + sigma * eps, eps ~ N(0, I). Every model
 * is seen through the denoiser xhat = D(x, sigma) and the vector-Jacobian product
 * J^T v with J = d xhat / d x. Tensors are [batch][dim] unless stated otherwise.
 *
 * The kinds of model:
 *  - lgd_model_create_callbacks(): the host's own denoiser and VJP;
 *  - lgd_model_create_gmm(): an exact Gaussian-mixture prior (denoiser, VJP,
 *    score, log density and exact posterior sampling);
 *  - in <lgd/network.h>: lgd_model_load() and lgd_model_create_from_network() (a
 *    network from a weights file) and lgd_model_create_network_callbacks() (a raw
 *    network you run, eps-, x0-, v-prediction or EDM F, with discrete VP timesteps or
 *    continuous noise levels), wrapped by an adapter so that it is seen as D(x, sigma);
 *  - in <lgd/trajectory.h>: lgd_model_create_trajectory_prior() (a Gaussian mixture).
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
 * (lgd/context.h, "Callbacks"). (Since 0.1.0; returns int32_t since 0.3.0, int before:
 * the same ABI.)
 */
typedef int32_t (*lgd_denoise_fn)(void *user, const float *x, float sigma, const float *cond,
                                  int64_t batch, int64_t dim, float *xhat);
/**
 * VJP callback: writes every element of out[batch][dim] = J^T v, J = d D(x, sigma) /
 * d x per batch row. liblgd always calls it right after the denoiser on the same x and
 * sigma, so a callback may reuse what its forward pass saved. The same rules as
 * lgd_denoise_fn: 0 is success, any other value LGD_ERR_CALLBACK (with the message of
 * lgd_context_set_callback_error() if set); must not unwind; on the model's context
 * only lgd_context_set_callback_error() and pure getters. (Since 0.1.0; int32_t since
 * 0.3.0.)
 */
typedef int32_t (*lgd_vjp_fn)(void *user, const float *x, float sigma, const float *cond,
                              int64_t batch, int64_t dim, const float *v, float *out);

/** A model from host callbacks. The struct is copied by lgd_model_create_callbacks();
 *  the first published layout is today's. (Since 0.1.0.) */
typedef struct lgd_model_callbacks {
    uint32_t struct_size;       /**< sizeof(lgd_model_callbacks) */
    lgd_memory memory;          /**< where the callbacks want x, cond, v and outputs:
                                     LGD_MEMORY_HOST (default) or LGD_MEMORY_DEVICE */
    int64_t dim;                /**< length of one sample (> 0) */
    int64_t cond_dim;           /**< length of one condition row (>= 0), 0 if unconditional */
    lgd_denoise_fn denoise;     /**< required */
    lgd_vjp_fn vjp;             /**< required for DPS / LGD-MC guidance and lgd_model_vjp();
                                     may be NULL otherwise (then LGD_ERR_UNSUPPORTED) */
    /** Called once when the model is freed (on the thread that drops the last
     *  reference); may be NULL. Must not unwind and must not call liblgd on the model
     *  being freed. */
    void (*destroy)(void *user);
    void *user;                 /**< passed to every callback; owned by the caller */
} lgd_model_callbacks;

#define LGD_MODEL_CALLBACKS_INIT \
    LGD_STRUCT_INIT_(lgd_model_callbacks, LGD_MEMORY_HOST, 0, 0, NULL, NULL, NULL, NULL)
/** Sets *callbacks to LGD_MODEL_CALLBACKS_INIT, writing exactly struct_size bytes
 *  (lgd_model_callbacks_init(&c, sizeof c); as lgd_context_options_init()).
 *  LGD_ERR_INVALID_ARGUMENT (no message) when callbacks is NULL or struct_size is below
 *  sizeof(lgd_model_callbacks) (the first published layout). Any thread. (Since 0.1.0;
 *  signature changed in 0.3.0: takes struct_size and returns lgd_status, was void.) */
LGD_API lgd_status lgd_model_callbacks_init(lgd_model_callbacks *callbacks, uint32_t struct_size);

/**
 * Creates a model from host callbacks (the struct is copied; `user` is kept and passed
 * back). Statuses: LGD_ERR_INVALID_ARGUMENT (context, callbacks or out_model NULL; a
 * bad struct_size; dim <= 0, cond_dim < 0, denoise NULL, memory not an lgd_memory),
 * LGD_ERR_OUT_OF_MEMORY. On failure the destroy callback is NOT called. (Since 0.1.0.)
 */
LGD_API lgd_status lgd_model_create_callbacks(lgd_context *context,
                                              const lgd_model_callbacks *callbacks,
                                              lgd_model **out_model);

/** Covariance layout of a Gaussian mixture. (Since 0.1.0.) */
typedef enum lgd_covariance {
    LGD_COVARIANCE_FULL = 0,      /**< covariances[K][dim][dim], symmetric positive semi-definite */
    LGD_COVARIANCE_DIAGONAL = 1,  /**< covariances[K][dim], variances >= 0 */
    LGD_COVARIANCE_ISOTROPIC = 2  /**< covariances[K], one variance per component */
} lgd_covariance;

/**
 * An exact Gaussian-mixture prior p0 = sum_k w_k N(mu_k, Sigma_k) in `dim`
 * dimensions with K components (unconditional: cond_dim 0). dim: 1 to 65536;
 * components K: 1 to 2^20. weights[K] (finite, > 0, normalised here),
 * means[K][dim] (finite), covariances as `layout` says (finite; variances >= 0, a full
 * matrix symmetric positive semi-definite). All arrays are copied. Full
 * covariances are eigendecomposed once here; a matrix that is not symmetric
 * or has a negative eigenvalue is rejected. A zero variance is allowed; such a model
 * refuses a sigma whose square is 0 in float (LGD_ERR_INVALID_ARGUMENT), e.g. sigma = 0
 * in lgd_model_log_density().
 * Statuses: LGD_ERR_INVALID_ARGUMENT (context or out_model NULL, a NULL array, dim or
 * components out of range, layout not an lgd_covariance, a weight, mean or covariance
 * entry that breaks the rules above, a failed eigendecomposition),
 * LGD_ERR_UNSUPPORTED (the backend module has no Gaussian-mixture kernels),
 * LGD_ERR_OUT_OF_MEMORY, and LGD_ERR_INTERNAL on a backend failure. (Since 0.1.0.)
 */
LGD_API lgd_status lgd_model_create_gmm(lgd_context *context, int64_t dim, int64_t components,
                                        const float *weights, const float *means,
                                        const float *covariances, lgd_covariance layout,
                                        lgd_model **out_model);

/** Releases the caller's reference (guidance objects keep their own); the last one
 *  frees the model and calls a callback model's destroy. NULL is a no-op. Any thread.
 *  (Since 0.1.0.) */
LGD_API void lgd_model_destroy(lgd_model *model);

/** Length of one sample, and of one condition row (0 if unconditional); 0 for NULL.
 *  Pure getters. (Since 0.1.0.) */
LGD_API int64_t lgd_model_dim(const lgd_model *model);
LGD_API int64_t lgd_model_cond_dim(const lgd_model *model);

/**
 * xhat = D(x, sigma) into out. x, out: [batch][dim] tensors of the model's context (a
 * [batch][1][dim] tensor counts as [batch][dim]); cond: [batch][cond_dim], or NULL
 * (a callback model then gets cond = NULL; a conditional network needs it); sigma
 * finite and > 0. Statuses: LGD_ERR_INVALID_ARGUMENT (model, x or out NULL, sigma out of
 * range, cond given to an unconditional model), LGD_ERR_SHAPE_MISMATCH (x, out or cond
 * not of these shapes, batches that differ), LGD_ERR_NON_FINITE (the denoiser produced
 * NaN or Inf), LGD_ERR_UNSUPPORTED (a network model on a backend module without network
 * kernels), and those of running the model (<lgd/lgd.h>). (Since 0.1.0.)
 */
LGD_API lgd_status lgd_model_denoise(lgd_model *model, const lgd_tensor *x, float sigma,
                                     const lgd_tensor *cond, lgd_tensor *out);
/** out = J^T v where J = dD(x, sigma)/dx (row by row); v and out [batch][dim], the
 *  rest as lgd_model_denoise(), which runs first (the VJP contract). Statuses: those of
 *  lgd_model_denoise() (v checked as x), and LGD_ERR_UNSUPPORTED when the model has no
 *  VJP (callbacks registered without vjp). (Since 0.1.0.) */
LGD_API lgd_status lgd_model_vjp(lgd_model *model, const lgd_tensor *x, float sigma,
                                 const lgd_tensor *cond, const lgd_tensor *v, lgd_tensor *out);
/** score(x) = grad log p_sigma(x) = (D(x, sigma) - x) / sigma^2 (Tweedie) into out;
 *  arguments and statuses as lgd_model_denoise() (LGD_ERR_NON_FINITE also when the
 *  score overflows at a tiny sigma). (Since 0.1.0.) */
LGD_API lgd_status lgd_model_score(lgd_model *model, const lgd_tensor *x, float sigma,
                                   const lgd_tensor *cond, lgd_tensor *out);
/** log p_sigma(x) per row into out (batch elements, any shape) for x [batch][dim];
 *  sigma finite and >= 0. Gaussian mixtures only. Statuses: LGD_ERR_INVALID_ARGUMENT
 *  (model, x or out NULL, sigma out of range, sigma = 0 with a zero-variance component),
 *  LGD_ERR_SHAPE_MISMATCH (x not [batch][dim], out not of batch elements),
 *  LGD_ERR_UNSUPPORTED (the model has no exact density), LGD_ERR_OUT_OF_MEMORY.
 *  (Since 0.1.0.) */
LGD_API lgd_status lgd_model_log_density(lgd_model *model, const lgd_tensor *x, float sigma,
                                         lgd_tensor *out);

/** 1 when the model can draw from its exact posterior p(x0 | x) (Gaussian mixtures,
 *  the trajectory prior), else 0 (also for NULL). A pure getter. (Since 0.1.0.) */
LGD_API int32_t lgd_model_has_exact_posterior(const lgd_model *model);
/**
 * Draws out[batch][n][dim] (a 3-D tensor; n >= 1 draws per row) from p(x0 | x) at
 * noise level sigma (finite, >= 0; 0 gives x itself) for x [batch][dim] (exact;
 * Gaussian mixtures only). Draw i of row b uses Philox counters (seed, b + first_row,
 * i), so results do not depend on how the batch is split. Statuses:
 * LGD_ERR_INVALID_ARGUMENT (model, x or out NULL, sigma out of range),
 * LGD_ERR_SHAPE_MISMATCH (x or out not of these shapes), LGD_ERR_UNSUPPORTED (no exact
 * posterior: lgd_model_has_exact_posterior() is 0), LGD_ERR_OUT_OF_MEMORY.
 * (Since 0.1.0.)
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
