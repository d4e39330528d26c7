/*
 * internal.h - the core's private interface, shared by every layer above it: the
 * context, errors and logging, accounted backend buffers, tensors, host staging for
 * callbacks, option and argument helpers. The models', losses' and guidance's own
 * private interfaces are models/model_internal.h, losses/loss_internal.h and
 * sampling/guidance_internal.h.
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

/* ---- helpers ---- */
/* Option structs across versions (options.c). lgd_struct_size_problem: NULL when
 * src->struct_size is acceptable for a struct of this library's dst_size whose first
 * published layout had min_size bytes (from min_size up; larger only with a zero
 * tail), else a static reason. lgd_read_struct: dst = defaults, then the caller's
 * fields over them (src NULL: the defaults), dst->struct_size = dst_size; on a bad
 * size LGD_ERR_INVALID_ARGUMENT with "fn: name->struct_size = N ...". lgd_init_struct:
 * the public *_init functions: writes the defaults over min(struct_size, size) bytes,
 * zeroes a newer header's tail, sets struct_size; never writes past struct_size. */
const char *lgd_struct_size_problem(const void *src, size_t dst_size, size_t min_size);
lgd_status lgd_read_struct(lgd_context *ctx, const char *fn, const char *name, void *dst,
                           size_t dst_size, size_t min_size, const void *src,
                           const void *defaults);
lgd_status lgd_init_struct(void *dst, uint32_t struct_size, const void *defaults, size_t size,
                           size_t min_size);
/* Checks a tensor argument: non-NULL, same context, and shape. */
lgd_status lgd_check_tensor(lgd_context *ctx, const lgd_tensor *t, const char *name);
/* batch and dim of a [batch][dim] tensor (or [batch][1][dim]); error if not 2-D-like */
lgd_status lgd_tensor_as_rows(lgd_context *ctx, const lgd_tensor *t, const char *name,
                              int64_t dim, int64_t *out_batch);
int lgd_is_finite(float v);

#endif
