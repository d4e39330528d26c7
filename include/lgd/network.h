/**
 * lgd/network.h - networks as denoisers. Networks loaded from weights files: a trained denoiser F(x_in, t) read from a
 * safetensors file (docs/network-format.md) and run, with its vector-Jacobian
 * product, on the context's backend (CPU or CUDA).
 *
 * The file holds the architecture (a time-conditioned MLP, an ADM-style U-Net, a 1-D
 * temporal U-Net, or a single layer) and its hyperparameters in its metadata, the
 * weights (f32, f16, bf16 or f64; converted to float on load) and, optionally, the
 * adapter that makes F a denoiser (prediction, time input, VP schedule).
 * tools/lgd_convert.py writes such files from PyTorch modules.
 *
 * Three ways in:
 *   - lgd_model_load(): one call from a file to an lgd_model D(x, sigma) usable by
 *     guidance and samplers, with the adapter the file names;
 *   - lgd_network_load() + lgd_network_forward()/lgd_network_vjp() for the raw
 *     network, and lgd_model_create_from_network() with an adapter of your choice;
 *   - lgd_model_create_network_callbacks(): a network you run yourself (forward and
 *     VJP callbacks), with the same adapters.
 *
 * Loading checks everything before it allocates: the file's structure (sizes,
 * offsets, dtypes, shapes; a truncated or hostile file gives LGD_ERR_FORMAT), the
 * hyperparameters, and that the tensors are exactly those the architecture needs
 * with exactly the expected shapes (a missing, misshaped or unexpected tensor is
 * LGD_ERR_FORMAT naming it). The weights then live in one backend allocation.
 * Activations live in one arena per network, sized for the largest batch seen
 * (grown, never shrunk, on a larger batch).
 *
 * A network, like its context, is used by one thread at a time.
 */
#ifndef LGD_NETWORK_H
#define LGD_NETWORK_H

#include "common.h"
#include "context.h"
#include "tensor.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- networks as denoisers: the adapters (for loaded and callback networks) ---- */

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
 * A raw network F(x_in, t): writes every element of out[batch][dim]. x_in = c_in(sigma)
 * * x where c_in = 1/sqrt(1 + sigma^2) (the VP scaling: x_vp = sqrt(abar) x0 +
 * sqrt(1 - abar) eps) for EPS, X0 and V, and 1/sqrt(sigma^2 + sigma_data^2) for EDM.
 * Returns 0 on success; any other value is a failure reported as LGD_ERR_CALLBACK (with
 * the value, and the message of lgd_context_set_callback_error() if the callback set
 * one). Must not unwind (no C++ exception, Rust panic or longjmp out of it); may call on
 * the model's context only lgd_context_set_callback_error() and pure getters
 * (lgd/context.h, "Callbacks"). (Returns int32_t since 0.3.0; int before, the same ABI.)
 */
typedef int32_t (*lgd_network_forward_fn)(void *user, const float *x_in, float t,
                                          const float *cond, int64_t batch, int64_t dim,
                                          float *out);
/** out = (dF/dx_in)^T v (every element), called right after forward on the same x_in
 *  and t. The same rules as lgd_network_forward_fn: 0 is success, any other value
 *  LGD_ERR_CALLBACK; must not unwind; on the model's context only
 *  lgd_context_set_callback_error() and pure getters. (int32_t since 0.3.0.) */
typedef int32_t (*lgd_network_vjp_fn)(void *user, const float *x_in, float t,
                                      const float *cond, int64_t batch, int64_t dim,
                                      const float *v, float *out);

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
    LGD_STRUCT_INIT_(lgd_network_callbacks, LGD_MEMORY_HOST, 0, 0, NULL, NULL, NULL, NULL)
LGD_API lgd_status lgd_network_callbacks_init(lgd_network_callbacks *callbacks, uint32_t struct_size);

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
    LGD_STRUCT_INIT_(lgd_adapter_options, LGD_PREDICT_EPS, LGD_TIME_DISCRETE, NULL, 0, 0.5f)
LGD_API lgd_status lgd_adapter_options_init(lgd_adapter_options *options, uint32_t struct_size);

/**
 * Wraps a network given as callbacks (your own forward and VJP, e.g. a PyTorch module
 * through a binding) as a denoiser D(x, sigma) with the adapter in options (NULL:
 * defaults, which need alphas_cumprod: see lgd_adapter_options). On failure the
 * destroy callback is NOT called. (Since 0.3.0; it was lgd_model_create_network.)
 */
LGD_API lgd_status lgd_model_create_network_callbacks(lgd_context *context,
                                                      const lgd_network_callbacks *network,
                                                      const lgd_adapter_options *options,
                                                      lgd_model **out_model);

/** Deprecated since 0.3.0: the old name of lgd_model_create_network_callbacks(). */
LGD_API lgd_status lgd_model_create_network(lgd_context *context,
                                            const lgd_network_callbacks *network,
                                            const lgd_adapter_options *options,
                                            lgd_model **out_model);

/** The network input time t that an adapted model passes for noise level sigma. */
LGD_API lgd_status lgd_model_network_time(const lgd_model *model, float sigma, float *out_t);

/* ---- networks loaded from files ---- */

/** A network loaded from a file. */
typedef struct lgd_network lgd_network;

/** Loads a network file. Errors: LGD_ERR_IO (unreadable), LGD_ERR_FORMAT (malformed
 *  file, unknown architecture, bad hyperparameters, missing / misshaped / unexpected
 *  tensors), LGD_ERR_UNSUPPORTED (a dtype liblgd does not read, e.g. I64),
 *  LGD_ERR_OUT_OF_MEMORY. The message names the problem. */
LGD_API lgd_status lgd_network_load(lgd_context *context, const char *path,
                                    lgd_network **out_network);

/** As lgd_network_load() from size bytes in memory (not kept after the call). */
LGD_API lgd_status lgd_network_load_memory(lgd_context *context, const void *data, size_t size,
                                           lgd_network **out_network);

/** Releases the caller's reference (models made from the network keep their own). */
LGD_API void lgd_network_destroy(lgd_network *network);

/** Floats per row of the input x_in (e.g. C*H*W of an image network). */
LGD_API int64_t lgd_network_dim(const lgd_network *network);
/** Floats per row of the output F (equal to the input's for the architectures). */
LGD_API int64_t lgd_network_out_dim(const lgd_network *network);
/** Floats per row of the condition (class one-hot or vector), 0 if unconditional. */
LGD_API int64_t lgd_network_cond_dim(const lgd_network *network);
/** Number of weight values (floats). */
LGD_API int64_t lgd_network_parameter_count(const lgd_network *network);
/** The file's metadata value for key (e.g. "lgd.architecture"), or NULL. The string
 *  lives as long as the network. */
LGD_API const char *lgd_network_metadata(const lgd_network *network, const char *key);

/**
 * The adapter the file asks for (lgd.prediction, lgd.time_input, lgd.sigma_data,
 * the lgd.alphas_cumprod tensor), defaults where absent. alphas_cumprod points into
 * the network and lives as long as it.
 */
LGD_API lgd_status lgd_network_adapter_options(const lgd_network *network,
                                               lgd_adapter_options *out_options);

/** out[B][out_dim] = F(x_in, t) for x_in [B][dim]; cond [B][cond_dim] or NULL when
 *  cond_dim is 0. All tensors belong to the network's context. */
LGD_API lgd_status lgd_network_forward(lgd_network *network, const lgd_tensor *x_in, float t,
                                       const lgd_tensor *cond, lgd_tensor *out);

/** out[B][dim] = (dF/dx_in)^T v for v [B][out_dim], and, when out_forward is not NULL,
 *  out_forward[B][out_dim] = F(x_in, t) from the same pass. */
LGD_API lgd_status lgd_network_vjp(lgd_network *network, const lgd_tensor *x_in, float t,
                                   const lgd_tensor *cond, const lgd_tensor *v,
                                   lgd_tensor *out, lgd_tensor *out_forward);

/**
 * Makes the network a denoiser D(x, sigma) (see lgd_model_create_network for the
 * adapters). options NULL: the file's adapter (lgd_network_adapter_options). The
 * network's out_dim must equal its dim. The model keeps a reference to the network.
 */
LGD_API lgd_status lgd_model_create_from_network(lgd_context *context, lgd_network *network,
                                                 const lgd_adapter_options *options,
                                                 lgd_model **out_model);

/** lgd_network_load() then lgd_model_create_from_network() with the file's adapter. */
LGD_API lgd_status lgd_model_load(lgd_context *context, const char *path,
                                  lgd_model **out_model);

/** Takes a reference to the network and returns it (NULL for NULL); each reference is
 *  dropped with lgd_network_destroy(), the last one frees the network. Any thread (see the
 *  thread contract in <lgd/lgd.h>). (Since 0.3.0.) */
LGD_API lgd_network *lgd_network_retain(lgd_network *network);
/** The context the network was made from (NULL for NULL): borrowed, valid while the
 *  caller holds a reference to the network; for lgd_context_last_error(). (Since 0.3.0.) */
LGD_API lgd_context *lgd_network_context(const lgd_network *network);

#ifdef __cplusplus
}
#endif

#endif
