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
    { (uint32_t)sizeof(lgd_model_callbacks), LGD_MEMORY_HOST, 0, 0, NULL, NULL, NULL, NULL }
LGD_API void lgd_model_callbacks_init(lgd_model_callbacks *callbacks);

/** Creates a model from host callbacks. On failure the destroy callback is NOT called. */
LGD_API lgd_status lgd_model_create_callbacks(lgd_context *context,
                                              const lgd_model_callbacks *callbacks,
                                              lgd_model **out_model);

/** What a network predicts. */
typedef enum lgd_prediction {
    LGD_PREDICT_EPS = 0, /**< eps: xhat = x - sigma * F(c_in x, t) */
    LGD_PREDICT_X0 = 1,  /**< x0: xhat = F(c_in x, t) */
    LGD_PREDICT_V = 2,   /**< v = alpha eps - beta x0 (VP): xhat = alpha^2 x - beta F(c_in x, t) */
    LGD_PREDICT_EDM = 3  /**< EDM F: xhat = c_skip x + c_out F(c_in x, c_noise) */
} lgd_prediction;

/** What the network receives as its time input t. */
typedef enum lgd_time_input {
    /** Fractional discrete timestep: sigma is located among the sigmas of
     *  alphas_cumprod by linear interpolation in log sigma (k-diffusion's rule). */
    LGD_TIME_DISCRETE = 0,
    /** As LGD_TIME_DISCRETE, rounded to the nearest integer timestep. */
    LGD_TIME_DISCRETE_ROUND = 1,
    /** EDM noise conditioning c_noise = ln(sigma) / 4. */
    LGD_TIME_LOG_SIGMA = 2,
    /** sigma itself. */
    LGD_TIME_SIGMA = 3
} lgd_time_input;

/**
 * A raw network F(x_in, t). x_in = c_in(sigma) * x where c_in = 1/sqrt(1 + sigma^2)
 * (the VP scaling: x_vp = sqrt(abar) x0 + sqrt(1 - abar) eps) for EPS, X0 and V, and
 * 1/sqrt(sigma^2 + sigma_data^2) for EDM.
 */
typedef int (*lgd_network_forward_fn)(void *user, const float *x_in, float t,
                                      const float *cond, int64_t batch, int64_t dim,
                                      float *out);
/** out = (dF/dx_in)^T v, called right after forward on the same x_in and t. */
typedef int (*lgd_network_vjp_fn)(void *user, const float *x_in, float t, const float *cond,
                                  int64_t batch, int64_t dim, const float *v, float *out);

typedef struct lgd_network_callbacks {
    uint32_t struct_size;
    lgd_memory memory;
    int64_t dim;
    int64_t cond_dim;
    lgd_network_forward_fn forward;  /**< required */
    lgd_network_vjp_fn vjp;          /**< required for DPS / LGD-MC guidance */
    void (*destroy)(void *user);
    void *user;
} lgd_network_callbacks;

#define LGD_NETWORK_CALLBACKS_INIT \
    { (uint32_t)sizeof(lgd_network_callbacks), LGD_MEMORY_HOST, 0, 0, NULL, NULL, NULL, NULL }
LGD_API void lgd_network_callbacks_init(lgd_network_callbacks *callbacks);

/** How a network is turned into D(x, sigma). */
typedef struct lgd_adapter_options {
    uint32_t struct_size;
    lgd_prediction prediction;      /**< default LGD_PREDICT_EPS */
    lgd_time_input time_input;      /**< default LGD_TIME_DISCRETE */
    /** alphas_cumprod[num_timesteps] of the discrete VP schedule the network was
     *  trained with (copied). Required for LGD_TIME_DISCRETE*; values strictly
     *  decreasing in (0, 1). lgd_vp_alphas_cumprod() makes the usual ones. */
    const float *alphas_cumprod;
    int32_t num_timesteps;
    float sigma_data;               /**< EDM only, default 0.5 */
} lgd_adapter_options;

#define LGD_ADAPTER_OPTIONS_INIT \
    { (uint32_t)sizeof(lgd_adapter_options), LGD_PREDICT_EPS, LGD_TIME_DISCRETE, NULL, 0, 0.5f }
LGD_API void lgd_adapter_options_init(lgd_adapter_options *options);

/** Wraps a network as a denoiser. On failure the destroy callback is NOT called. */
LGD_API lgd_status lgd_model_create_network(lgd_context *context,
                                            const lgd_network_callbacks *network,
                                            const lgd_adapter_options *options,
                                            lgd_model **out_model);

/** The network input time t that an adapted model passes for noise level sigma. */
LGD_API lgd_status lgd_model_network_time(const lgd_model *model, float sigma, float *out_t);

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

/**
 * Options of lgd_model_create_trajectory_prior(): a multimodal prior over a root
 * trajectory's normalised 2-D velocities, laid out [frames][2] (vx, vy per frame, the
 * layout LGD_TRAJECTORY_LAYOUT_INIT describes). Component (h, k) walks at `speed` with a
 * heading that starts at 2 pi h / headings and turns at a constant rate to
 * theta_k = -max_turn + 2 max_turn k / (turns - 1) over the clip (straight when turns
 * is 1); around that mean, each velocity axis varies as a Gaussian process with a
 * squared-exponential kernel gp_std^2 exp(-(t - s)^2 / (2 gp_length^2)) plus jitter on
 * the diagonal. So many directions and smoothly curved paths are plausible and the
 * mixture (headings x turns equally weighted components) is strongly multimodal.
 */
typedef struct lgd_trajectory_prior_options {
    uint32_t struct_size;
    int32_t frames;      /**< T, default 64 */
    int32_t headings;    /**< initial headings, evenly spaced, default 8 */
    int32_t turns;       /**< turn rates per heading (1 or more), default 3 */
    float max_turn;      /**< largest total heading change over the clip, radians, default pi/2 */
    float speed;         /**< mean speed, normalised units per frame, default 1 */
    float gp_std;        /**< std of the smooth velocity variation, default 0.3 */
    float gp_length;     /**< its length scale in frames, default 10 */
    float jitter;        /**< white-noise variance on the diagonal, default 1e-4 */
} lgd_trajectory_prior_options;

#define LGD_TRAJECTORY_PRIOR_OPTIONS_INIT                                                   \
    { (uint32_t)sizeof(lgd_trajectory_prior_options), 64, 8, 3, 1.5707963267948966f, 1.0f, \
      0.3f, 10.0f, 1e-4f }
LGD_API void lgd_trajectory_prior_options_init(lgd_trajectory_prior_options *options);

/** Creates the trajectory prior as an exact Gaussian mixture (lgd_model_create_gmm with
 *  full covariances) of dim 2 * frames and headings * turns components. */
LGD_API lgd_status lgd_model_create_trajectory_prior(lgd_context *context,
                                                     const lgd_trajectory_prior_options *options,
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
