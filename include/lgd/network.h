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
 * A network, like its context, is used by one thread at a time (the thread contract in
 * <lgd/lgd.h>: retain, destroy and lgd_network_context() from any thread).
 *
 * Moved here in 0.3.0: the network callbacks (lgd_network_callbacks) and the adapter
 * options were in model.h before; <lgd/lgd.h> includes both headers.
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

/** What a network predicts. (Since 0.1.0.) */
typedef enum lgd_prediction {
    LGD_PREDICT_EPS = 0, /**< eps: xhat = x - sigma * F(c_in x, t) */
    LGD_PREDICT_X0 = 1,  /**< x0: xhat = F(c_in x, t) */
    LGD_PREDICT_V = 2,   /**< v = alpha eps - beta x0 (VP): xhat = alpha^2 x - beta F(c_in x, t) */
    LGD_PREDICT_EDM = 3  /**< EDM F: xhat = c_skip x + c_out F(c_in x, c_noise) */
} lgd_prediction;

/** What the network receives as its time input t. (Since 0.1.0.) */
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
 * (lgd/context.h, "Callbacks"). (Since 0.1.0; returns int32_t since 0.3.0, int before:
 * the same ABI.)
 */
typedef int32_t (*lgd_network_forward_fn)(void *user, const float *x_in, float t,
                                          const float *cond, int64_t batch, int64_t dim,
                                          float *out);
/** out = (dF/dx_in)^T v (every element), called right after forward on the same x_in
 *  and t. The same rules as lgd_network_forward_fn: 0 is success, any other value
 *  LGD_ERR_CALLBACK; must not unwind; on the model's context only
 *  lgd_context_set_callback_error() and pure getters. (Since 0.1.0; int32_t since
 *  0.3.0.) */
typedef int32_t (*lgd_network_vjp_fn)(void *user, const float *x_in, float t,
                                      const float *cond, int64_t batch, int64_t dim,
                                      const float *v, float *out);

/** A raw network from host callbacks, for lgd_model_create_network_callbacks() (which
 *  copies the struct; the first published layout is today's). (Since 0.1.0; in
 *  model.h before 0.3.0.) */
typedef struct lgd_network_callbacks {
    uint32_t struct_size;            /**< sizeof(lgd_network_callbacks) */
    lgd_memory memory;               /**< where the callbacks want their buffers:
                                          LGD_MEMORY_HOST (default) or LGD_MEMORY_DEVICE */
    int64_t dim;                     /**< floats per row of x_in and out (> 0) */
    int64_t cond_dim;                /**< floats per condition row (>= 0), 0: unconditional */
    lgd_network_forward_fn forward;  /**< required */
    lgd_network_vjp_fn vjp;          /**< required for DPS / LGD-MC guidance; NULL:
                                          the model's VJP is LGD_ERR_UNSUPPORTED */
    /** Called once when the model is freed (on the thread that drops the last
     *  reference); may be NULL. Must not unwind and must not call liblgd on the model
     *  being freed. */
    void (*destroy)(void *user);
    void *user;                      /**< passed to every callback; owned by the caller */
} lgd_network_callbacks;

#define LGD_NETWORK_CALLBACKS_INIT \
    LGD_STRUCT_INIT_(lgd_network_callbacks, LGD_MEMORY_HOST, 0, 0, NULL, NULL, NULL, NULL)
/** Sets *callbacks to LGD_NETWORK_CALLBACKS_INIT, writing exactly struct_size bytes
 *  (lgd_network_callbacks_init(&c, sizeof c); as lgd_context_options_init()).
 *  LGD_ERR_INVALID_ARGUMENT (no message) when callbacks is NULL or struct_size is below
 *  sizeof(lgd_network_callbacks) (the first published layout). Any thread. (Since 0.1.0;
 *  signature changed in 0.3.0: takes struct_size and returns lgd_status, was void.) */
LGD_API lgd_status lgd_network_callbacks_init(lgd_network_callbacks *callbacks, uint32_t struct_size);

/** How a network is turned into D(x, sigma). Read during the call that takes it (the
 *  first published layout is today's). (Since 0.1.0; in model.h before 0.3.0.) */
typedef struct lgd_adapter_options {
    uint32_t struct_size;           /**< sizeof(lgd_adapter_options) */
    lgd_prediction prediction;      /**< default LGD_PREDICT_EPS */
    lgd_time_input time_input;      /**< default LGD_TIME_DISCRETE */
    /** alphas_cumprod[num_timesteps] of the discrete VP schedule the network was
     *  trained with (copied). Required for LGD_TIME_DISCRETE*; values strictly
     *  decreasing in (0, 1). lgd_vp_alphas_cumprod() makes the usual ones. Ignored by
     *  the other time inputs. */
    const float *alphas_cumprod;
    int32_t num_timesteps;          /**< entries of alphas_cumprod, >= 2 when required */
    float sigma_data;               /**< EDM only (finite, > 0), default 0.5 */
} lgd_adapter_options;

#define LGD_ADAPTER_OPTIONS_INIT \
    LGD_STRUCT_INIT_(lgd_adapter_options, LGD_PREDICT_EPS, LGD_TIME_DISCRETE, NULL, 0, 0.5f)
/** Sets *options to LGD_ADAPTER_OPTIONS_INIT, writing exactly struct_size bytes
 *  (lgd_adapter_options_init(&o, sizeof o); as lgd_context_options_init()).
 *  LGD_ERR_INVALID_ARGUMENT (no message) when options is NULL or struct_size is below
 *  sizeof(lgd_adapter_options) (the first published layout). Any thread. (Since 0.1.0;
 *  signature changed in 0.3.0: takes struct_size and returns lgd_status, was void.) */
LGD_API lgd_status lgd_adapter_options_init(lgd_adapter_options *options, uint32_t struct_size);

/**
 * Wraps a network given as callbacks (your own forward and VJP, e.g. a PyTorch module
 * through a binding) as a denoiser D(x, sigma) with the adapter in options (NULL:
 * defaults, which need alphas_cumprod: see lgd_adapter_options). Both structs are
 * copied (alphas_cumprod too); `user` is kept and passed back. Statuses:
 * LGD_ERR_INVALID_ARGUMENT (context, network or out_model NULL; a bad struct_size of
 * either struct; dim <= 0, cond_dim < 0, forward NULL, memory not an lgd_memory;
 * prediction or time_input unknown; EDM with sigma_data out of range; a discrete time
 * input without alphas_cumprod, with num_timesteps < 2, or with values not strictly
 * decreasing in (0, 1)), LGD_ERR_OUT_OF_MEMORY. On failure the destroy callback is NOT
 * called. (Since 0.3.0; it was lgd_model_create_network, since 0.1.0.)
 */
LGD_API lgd_status lgd_model_create_network_callbacks(lgd_context *context,
                                                      const lgd_network_callbacks *network,
                                                      const lgd_adapter_options *options,
                                                      lgd_model **out_model);

/** Deprecated since 0.3.0: the old name of lgd_model_create_network_callbacks(), the
 *  same function (its messages name the new one). It stays exported within the major
 *  version 0. (Since 0.1.0.) */
LGD_API lgd_status lgd_model_create_network(lgd_context *context,
                                            const lgd_network_callbacks *network,
                                            const lgd_adapter_options *options,
                                            lgd_model **out_model);

/** The network input time t that an adapted model passes for noise level sigma (finite,
 *  > 0) into *out_t. Statuses: LGD_ERR_INVALID_ARGUMENT (model or out_t NULL, without a
 *  message; sigma out of range), LGD_ERR_UNSUPPORTED (the model is not an adapted
 *  network). (Since 0.1.0.) */
LGD_API lgd_status lgd_model_network_time(const lgd_model *model, float sigma, float *out_t);

/* ---- networks loaded from files ---- */

/** A network loaded from a file; reference counted like every handle. (Since 0.2.0.) */
typedef struct lgd_network lgd_network;

/** Loads a network file (path: read during the call; the file is not kept open);
 *  *out_network receives the caller's reference. Errors: LGD_ERR_INVALID_ARGUMENT
 *  (context, path or out_network NULL), LGD_ERR_IO (unreadable, not a regular file),
 *  LGD_ERR_FORMAT (malformed file, unknown architecture, bad hyperparameters or adapter
 *  metadata, missing / misshaped / unexpected tensors), LGD_ERR_UNSUPPORTED (a dtype
 *  liblgd does not read, e.g. I64), LGD_ERR_OUT_OF_MEMORY, LGD_ERR_INTERNAL (a parser
 *  bug) and on a backend failure. The message names the problem. A backend module
 *  without network kernels fails at the first forward pass, not here. (Since 0.2.0.) */
LGD_API lgd_status lgd_network_load(lgd_context *context, const char *path,
                                    lgd_network **out_network);

/** As lgd_network_load() from size bytes at data (non-NULL; not kept after the call),
 *  with its statuses but LGD_ERR_IO. (Since 0.2.0.) */
LGD_API lgd_status lgd_network_load_memory(lgd_context *context, const void *data, size_t size,
                                           lgd_network **out_network);

/** Releases the caller's reference (models made from the network keep their own); the
 *  last one frees it. NULL is a no-op. Any thread. (Since 0.2.0.) */
LGD_API void lgd_network_destroy(lgd_network *network);

/* The getters below are pure getters and give 0 (NULL) for a NULL network. */
/** Floats per row of the input x_in (e.g. C*H*W of an image network). (Since 0.2.0.) */
LGD_API int64_t lgd_network_dim(const lgd_network *network);
/** Floats per row of the output F (equal to the input's for the architectures, but an
 *  `mlp` with lgd.out_dim, e.g. a classifier, since 0.5.0). (Since 0.2.0.) */
LGD_API int64_t lgd_network_out_dim(const lgd_network *network);
/** Floats per row of the condition (class one-hot or vector), 0 if unconditional.
 *  (Since 0.2.0.) */
LGD_API int64_t lgd_network_cond_dim(const lgd_network *network);
/** Number of weight values (floats). (Since 0.2.0.) */
LGD_API int64_t lgd_network_parameter_count(const lgd_network *network);
/** The file's metadata value for key (e.g. "lgd.architecture"), or NULL (also for a NULL
 *  key). The string is borrowed: it lives as long as the network. (Since 0.2.0.) */
LGD_API const char *lgd_network_metadata(const lgd_network *network, const char *key);

/**
 * The adapter the file asks for (lgd.prediction, lgd.time_input, lgd.sigma_data,
 * the lgd.alphas_cumprod tensor), defaults where absent. alphas_cumprod points into
 * the network and lives as long as it. out_options->struct_size must be set by the
 * caller (LGD_ADAPTER_OPTIONS_INIT or lgd_adapter_options_init()) and be at least this
 * library's sizeof(lgd_adapter_options); the whole struct is written and struct_size
 * keeps the caller's value. Statuses: LGD_ERR_INVALID_ARGUMENT (network NULL, without a
 * message; out_options NULL or its struct_size too small, with one). (Since 0.2.0.)
 */
LGD_API lgd_status lgd_network_adapter_options(const lgd_network *network,
                                               lgd_adapter_options *out_options);

/** out[B][out_dim] = F(x_in, t) for x_in [B][dim] and a finite t; cond [B][cond_dim]
 *  when the network is conditional, NULL when cond_dim is 0. All tensors belong to the
 *  network's context. Statuses: LGD_ERR_INVALID_ARGUMENT (network, x_in or out NULL, t
 *  not finite, cond missing for a conditional network or given to an unconditional
 *  one), LGD_ERR_SHAPE_MISMATCH (a tensor not of its shape, row counts that differ),
 *  LGD_ERR_UNSUPPORTED (the backend module has no network kernels),
 *  LGD_ERR_OUT_OF_MEMORY (the activation arena grows for a larger batch), and
 *  LGD_ERR_INTERNAL on a backend failure. The output is not checked for NaN.
 *  (Since 0.2.0.) */
LGD_API lgd_status lgd_network_forward(lgd_network *network, const lgd_tensor *x_in, float t,
                                       const lgd_tensor *cond, lgd_tensor *out);

/** out[B][dim] = (dF/dx_in)^T v for v [B][out_dim], and, when out_forward is not NULL,
 *  out_forward[B][out_dim] = F(x_in, t) from the same pass (a fresh forward pass on
 *  every call). x_in, t and cond as lgd_network_forward(), with its statuses (v and
 *  out_forward checked as out). (Since 0.2.0.) */
LGD_API lgd_status lgd_network_vjp(lgd_network *network, const lgd_tensor *x_in, float t,
                                   const lgd_tensor *cond, const lgd_tensor *v,
                                   lgd_tensor *out, lgd_tensor *out_forward);

/**
 * Makes the network a denoiser D(x, sigma) (the adapters: lgd_prediction,
 * lgd_time_input, lgd_adapter_options). options NULL: the file's adapter
 * (lgd_network_adapter_options); otherwise read and copied here. The network's out_dim
 * must equal its dim. The model keeps a reference to the network (the caller may
 * destroy its own). A conditional network needs the condition in every call (see
 * lgd_guidance_set_condition()). Statuses: LGD_ERR_INVALID_ARGUMENT (context, network
 * or out_model NULL; network of another context; adapter options as
 * lgd_model_create_network_callbacks() checks them), LGD_ERR_SHAPE_MISMATCH (out_dim !=
 * dim), LGD_ERR_OUT_OF_MEMORY. (Since 0.2.0.)
 */
LGD_API lgd_status lgd_model_create_from_network(lgd_context *context, lgd_network *network,
                                                 const lgd_adapter_options *options,
                                                 lgd_model **out_model);

/** lgd_network_load() then lgd_model_create_from_network() with the file's adapter (the
 *  model holds the only reference to the network), with the statuses of both.
 *  (Since 0.2.0.) */
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
