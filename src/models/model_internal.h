/*
 * model_internal.h - the models' private interface: the vtable every model fills
 * (built-in or callbacks), the model object, and the adapter model over a raw
 * network (models/model_network.c). Used by models/, nn/network.c and the guidance.
 */
#ifndef LGD_MODEL_INTERNAL_H
#define LGD_MODEL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"

/* A model's per-row block sampler of p(x0 | x) for one guidance call, for the CPU's fused
 * exact estimator (sampling/mc_kernels.h, fused_exact): draw(state, r, first, count, out)
 * writes draws [first, first + count) of row r into out[count][dim], the same bits as
 * sample_posterior gives those draws with the rng the sampler was made for, whatever the
 * chunks. draw is called for many rows at once from the kernel's threads; state belongs
 * to the model and holds until the model's next call. */
typedef struct lgd_posterior_sampler {
    void (*draw)(const void *state, size_t r, size_t first, size_t count, float *out);
    const void *state;
} lgd_posterior_sampler;

typedef struct lgd_model_vtable {
    const char *name;
    /* all pointers backend memory; cond may be NULL */
    lgd_status (*denoise)(lgd_model *m, const float *x, float sigma, const float *cond,
                          size_t batch, float *out);
    lgd_status (*vjp)(lgd_model *m, const float *x, float sigma, const float *cond,
                      size_t batch, const float *v, float *out);
    /* may be NULL: unsupported */
    lgd_status (*log_density)(lgd_model *m, const float *x, float sigma, size_t batch,
                              float *out);
    /* out[batch][draws][dim] from p(x0 | x); rng gives seed/step/rows/first draw */
    lgd_status (*sample_posterior)(lgd_model *m, const float *x, float sigma, size_t batch,
                                   size_t draws, const lgd_rng_stream *rng, float *out);
    void (*destroy)(lgd_model *m);
    /* may be NULL: none. Prepares the block sampler of p(x0 | x) for (x, sigma, batch)
     * and rng (seed, step, first row; first_draw unused) into *out; out->draw NULL when
     * this call has none (a layout or a backend without one): the caller then takes
     * sample_posterior. */
    lgd_status (*posterior_sampler)(lgd_model *m, const float *x, float sigma, size_t batch,
                                    const lgd_rng_stream *rng, lgd_posterior_sampler *out);
} lgd_model_vtable;

struct lgd_model {
    lgd_refcount refs;
    lgd_context *ctx;
    const lgd_model_vtable *vt;
    int64_t dim;
    int64_t cond_dim;
    void *impl;
    /* the dlopen reference of the plugin that made this model (lgd_model_load_plugin),
     * or NULL; dropped by the final release after vt->destroy (src/plugins/) */
    void *plugin;
};

lgd_status lgd_model_new(lgd_context *ctx, const lgd_model_vtable *vt, int64_t dim,
                         int64_t cond_dim, void *impl, lgd_model **out);
lgd_model *lgd_model_retain(lgd_model *m);
void lgd_model_release(lgd_model *m);

/* A raw network F(x_in, t) as the adapters of model_network.c see it: all pointers
 * backend memory, batch rows of dim floats (cond: cond_dim floats, NULL when 0), and an
 * lgd_status returned with its message already recorded on the context. The library's
 * loaded networks (network.c) implement it directly; users' host/device callbacks
 * through a wrapper in model_network.c. */
typedef struct lgd_raw_network_vtable {
    lgd_status (*forward)(void *net, const float *x_in, float t, const float *cond,
                          size_t batch, float *out);
    /* out = (dF/dx_in)^T v; NULL when the network has none */
    lgd_status (*vjp)(void *net, const float *x_in, float t, const float *cond, size_t batch,
                      const float *v, float *out);
    /* called with net when the model is destroyed; may be NULL */
    void (*destroy)(void *net);
} lgd_raw_network_vtable;

/* The model D(x, sigma) = c_skip x + c_out F(c_in x, t(sigma)) of a raw network, with
 * the adapter of options (NULL: defaults), checked (messages name fn, the public
 * function the caller called). On failure nothing is destroyed: net stays the
 * caller's. */
lgd_status lgd_model_create_adapted(lgd_context *ctx, const char *fn,
                                    const lgd_raw_network_vtable *vt, void *net, int64_t dim,
                                    int64_t cond_dim, const lgd_adapter_options *options,
                                    lgd_model **out);

#endif
