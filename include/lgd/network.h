/**
 * @file network.h
 * Networks loaded from weights files: a trained denoiser F(x_in, t) read from a
 * safetensors file (docs/network-format.md) and run, with its vector-Jacobian
 * product, on the context's backend (CPU or CUDA).
 *
 * The file holds the architecture (a time-conditioned MLP, an ADM-style U-Net, a 1-D
 * temporal U-Net, or a single layer) and its hyperparameters in its metadata, the
 * weights (f32, f16, bf16 or f64; converted to float on load) and, optionally, the
 * adapter that makes F a denoiser (prediction, time input, VP schedule).
 * tools/lgd_convert.py writes such files from PyTorch modules.
 *
 * Two ways in:
 *   - lgd_model_load(): one call from a file to an lgd_model D(x, sigma) usable by
 *     guidance and samplers, with the adapter the file names;
 *   - lgd_network_load() + lgd_network_forward()/lgd_network_vjp() for the raw
 *     network, and lgd_model_create_from_network() with an adapter of your choice.
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

#ifdef __cplusplus
}
#endif

#endif
