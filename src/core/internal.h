/*
 * internal.h - private structures shared by the core's files.
 */
#ifndef LGD_INTERNAL_H
#define LGD_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "lgd/lgd.h"
#include "backend/backend.h"
#include "core/kernels.h"

#define LGD_ERROR_CAP 512

#if defined(__GNUC__)
#  define LGD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define LGD_PRINTF(a, b)
#endif

struct lgd_context {
    int refs;
    lgd_backend *be;
    const lgd_backend_ops *ops;
    lgd_backend_kind kind;
    void *module; /* dlopen handle of liblgd-cuda, or NULL */
    lgd_log_fn log;
    void *log_user;
    lgd_log_level log_level;
    size_t mem_current, mem_peak;
    char backend_name[128];
    char error[LGD_ERROR_CAP];
};

/* Records `status` with a formatted message on ctx (and logs it); returns status. */
lgd_status lgd_error(lgd_context *ctx, lgd_status status, const char *fmt, ...) LGD_PRINTF(3, 4);
/* lgd_error for a failed backend operation: the message, then the backend's own
 * precise reason (its last_error, e.g. the CUDA error and the operation) when it has one. */
lgd_status lgd_backend_error(lgd_context *ctx, lgd_status status, const char *fmt, ...)
    LGD_PRINTF(3, 4);
void lgd_log(lgd_context *ctx, lgd_log_level level, const char *fmt, ...) LGD_PRINTF(3, 4);

lgd_context *lgd_context_retain(lgd_context *ctx);
void lgd_context_release(lgd_context *ctx);

/* Backend memory with accounting. A buffer of `count` floats. */
typedef struct lgd_buffer {
    float *data;
    size_t count; /* capacity in floats */
} lgd_buffer;

/* Makes buf hold at least count floats (keeps it when large enough). */
lgd_status lgd_buffer_reserve(lgd_context *ctx, lgd_buffer *buf, size_t count, const char *what);
void lgd_buffer_release(lgd_context *ctx, lgd_buffer *buf);
/* Raw accounted allocation for non-float data (int32 indices). */
void *lgd_backend_alloc(lgd_context *ctx, size_t bytes);
void lgd_backend_free(lgd_context *ctx, void *p, size_t bytes);

/* Copies host data into a new backend buffer. */
lgd_status lgd_buffer_from_host(lgd_context *ctx, lgd_buffer *buf, const float *host,
                                size_t count, const char *what);

struct lgd_tensor {
    lgd_context *ctx;
    int ndim;
    int64_t shape[LGD_TENSOR_MAX_DIMS];
    int64_t numel;
    lgd_buffer buf;
};

/* Host staging for host-memory callbacks on a device backend. */
typedef struct lgd_staging {
    float *host;
    size_t count;
} lgd_staging;
lgd_status lgd_staging_reserve(lgd_context *ctx, lgd_staging *st, size_t count);
void lgd_staging_free(lgd_staging *st);

/* Runs fn(closure, inputs, out) with host pointers when `memory` is
 * LGD_MEMORY_HOST, staging through `stage` on device backends (see host_call.c).
 * NULL inputs stay NULL. *rc receives the callback's return value. */
#define LGD_HOST_CALL_MAX_INPUTS 4
typedef int (*lgd_host_thunk)(void *closure, const float *const *in, float *out);
lgd_status lgd_host_call(lgd_context *ctx, lgd_staging *stage, lgd_memory memory, int n_in,
                         const float *const *in, const size_t *in_count, float *out,
                         size_t out_count, lgd_host_thunk fn, void *closure, int *rc);

/* ---- models ---- */
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
} lgd_model_vtable;

struct lgd_model {
    int refs;
    lgd_context *ctx;
    const lgd_model_vtable *vt;
    int64_t dim;
    int64_t cond_dim;
    void *impl;
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
 * the adapter of options (NULL: defaults), checked as lgd_model_create_network checks
 * them (messages name it). On failure nothing is destroyed: net stays the caller's. */
lgd_status lgd_model_create_adapted(lgd_context *ctx, const lgd_raw_network_vtable *vt,
                                    void *net, int64_t dim, int64_t cond_dim,
                                    const lgd_adapter_options *options, lgd_model **out);

/* ---- losses ---- */
typedef struct lgd_loss_vtable {
    const char *name;
    /* x[batch][n][dim] -> loss[batch * n], grad (may be NULL) like x */
    lgd_status (*eval)(lgd_loss *l, const float *x, size_t batch, size_t n, float *loss,
                       float *grad);
    void (*destroy)(lgd_loss *l);
} lgd_loss_vtable;

struct lgd_loss {
    int refs;
    lgd_context *ctx;
    const lgd_loss_vtable *vt;
    int64_t dim;
    void *impl;
};

lgd_status lgd_loss_new(lgd_context *ctx, const lgd_loss_vtable *vt, int64_t dim, void *impl,
                        lgd_loss **out);
lgd_loss *lgd_loss_retain(lgd_loss *l);
void lgd_loss_release(lgd_loss *l);
/* Evaluates through the vtable and checks the outputs are finite. */
lgd_status lgd_loss_eval_raw(lgd_loss *l, const float *x, size_t batch, size_t n, float *loss,
                             float *grad);

/* ---- guidance (used by the sampler) ---- */
lgd_guidance *lgd_guidance_retain(lgd_guidance *g);
void lgd_guidance_release(lgd_guidance *g);
lgd_context *lgd_guidance_context(const lgd_guidance *g);
int64_t lgd_guidance_dim(const lgd_guidance *g);
/* Guided denoiser on raw backend memory: out = xhat + lambda g. */
lgd_status lgd_guidance_denoise_raw(lgd_guidance *g, const float *x, float sigma, size_t batch,
                                    int32_t step, uint64_t first_row, float *out,
                                    lgd_guidance_report *report);

/* ---- helpers ---- */
/* Reads an options struct from a caller that may know fewer fields: copies
 * min(struct_size, sizeof) bytes over the defaults. Returns 0 if struct_size is
 * too small to be valid (< 4). */
int lgd_read_options(void *dst, size_t dst_size, const void *src, const void *defaults);
/* Checks a tensor argument: non-NULL, same context, and shape. */
lgd_status lgd_check_tensor(lgd_context *ctx, const lgd_tensor *t, const char *name);
/* batch and dim of a [batch][dim] tensor (or [batch][1][dim]); error if not 2-D-like */
lgd_status lgd_tensor_as_rows(lgd_context *ctx, const lgd_tensor *t, const char *name,
                              int64_t dim, int64_t *out_batch);
int lgd_is_finite(float v);

#endif
