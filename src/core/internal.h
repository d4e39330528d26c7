/*
 * internal.h - the core's private interface, shared by every layer above it: the
 * context, errors and logging, accounted backend buffers, tensors, host staging for
 * callbacks, option and argument helpers. The models', losses' and guidance's own
 * private interfaces are models/model_internal.h, losses/loss_internal.h and
 * sampling/guidance_internal.h.
 */
#ifndef LGD_INTERNAL_H
#define LGD_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
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

/* Reference counts of every handle (the thread contract is in lgd/lgd.h): atomic, so
 * that a reference may be taken or dropped on any thread. Taking one is relaxed (the
 * caller already holds one, which keeps the object alive); dropping one is acq_rel, so
 * that every thread's use of the object happens before the free by whoever drops the
 * last one (a release decrement plus an acquire fence would do, but ThreadSanitizer
 * does not model standalone fences). */
typedef atomic_int lgd_refcount;
static inline void lgd_ref_init(lgd_refcount *r) { atomic_init(r, 1); }
static inline void lgd_ref_take(lgd_refcount *r)
{
    atomic_fetch_add_explicit(r, 1, memory_order_relaxed);
}
/* Drops one reference; non-zero when it was the last (the caller frees the object). */
static inline int lgd_ref_drop(lgd_refcount *r)
{
    return atomic_fetch_sub_explicit(r, 1, memory_order_acq_rel) == 1;
}

/* Backend blocks whose free was deferred (context.c, lgd_backend_free). */
typedef struct lgd_deferred_frees {
    pthread_mutex_t lock;
    void **ptrs;
    size_t count, cap;
    atomic_int pending; /* count != 0, read without the lock */
} lgd_deferred_frees;

struct lgd_context {
    lgd_refcount refs;
    lgd_backend *be;
    const lgd_backend_ops *ops;
    lgd_backend_kind kind;
    void *module; /* dlopen handle of liblgd-cuda, or NULL */
    lgd_log_fn log;
    void *log_user;
    lgd_log_level log_level;
    /* bytes of backend memory held by live objects, and the peak: atomic, since the
     * last release of an object (which frees its memory) may run on any thread */
    atomic_size_t mem_current, mem_peak;
    /* frees of backend memory that cannot run on any thread (device backends' caching
     * allocators are not thread-safe): queued here and handed to the backend by the
     * thread that uses the context, at its next allocation (context.c) */
    int free_anywhere; /* the backend's free may run on any thread (the CPU's free()) */
    lgd_deferred_frees deferred;
    char backend_name[128];
    char error[LGD_ERROR_CAP];
    int check_callback_outputs;              /* lgd_context_options' */
    char callback_error[LGD_ERROR_CAP];      /* lgd_context_set_callback_error's message */
    atomic_int cancel;                       /* lgd_context_cancel's request, until reset */
};

/* Records `status` with a formatted message on ctx (and logs it); returns status. */
lgd_status lgd_error(lgd_context *ctx, lgd_status status, const char *fmt, ...) LGD_PRINTF(3, 4);
/* lgd_error for a failed backend operation: the message, then the backend's own
 * precise reason (its last_error, e.g. the CUDA error and the operation) when it has one. */
lgd_status lgd_backend_error(lgd_context *ctx, lgd_status status, const char *fmt, ...)
    LGD_PRINTF(3, 4);
void lgd_log(lgd_context *ctx, lgd_log_level level, const char *fmt, ...) LGD_PRINTF(3, 4);

/* LGD_ERR_ABORTED with a message naming fn when lgd_context_cancel() has asked the
 * context's calls to stop, LGD_OK otherwise: called at the check points (between
 * chunks of Monte Carlo draws, before each sampler step). One relaxed atomic load. */
lgd_status lgd_check_cancel(lgd_context *ctx, const char *fn);

/* lgd_context_retain is public (lgd/context.h); release = destroy. */
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
    lgd_refcount refs;
    lgd_context *ctx;
    int32_t ndim;
    int64_t shape[LGD_TENSOR_MAX_DIMS];
    int64_t numel;
    /* the data; for a wrapped tensor (lgd_tensor_wrap) the caller's memory, which is
     * neither accounted nor freed: release(user) is called instead */
    lgd_buffer buf;
    int wrapped;
    lgd_tensor_release_fn release;
    void *release_user;
};

/* Host staging for host-memory callbacks on a device backend. */
typedef struct lgd_staging {
    float *host;
    size_t count;
} lgd_staging;
lgd_status lgd_staging_reserve(lgd_context *ctx, lgd_staging *st, size_t count);
void lgd_staging_free(lgd_staging *st);

/* ---- calling users' callbacks (host_call.c) ----
 * Around every call of a user callback that returns a status: lgd_callback_begin()
 * before it (forgets a message an earlier callback left); when it returned non-zero,
 * lgd_callback_failed() records LGD_ERR_CALLBACK with the formatted description and
 * ": <message>" when the callback set one with lgd_context_set_callback_error()
 * (consumed); when it returned 0, lgd_callback_begin() again (discards a message).
 * With ctx->check_callback_outputs, each output is poisoned before the call and
 * checked after a call that returned 0: `host` says the pointer is host-accessible
 * (a host callback's buffer, staged or direct), else it is backend memory handled
 * through the backend's fill / all_finite. `who` names the callback ("callback
 * loss: eval"), `name` the output ("loss"). */
void lgd_callback_begin(lgd_context *ctx);
lgd_status lgd_callback_failed(lgd_context *ctx, const char *fmt, ...) LGD_PRINTF(2, 3);
void lgd_callback_poison(lgd_context *ctx, int host, float *p, size_t count);
lgd_status lgd_callback_check_output(lgd_context *ctx, int host, const float *p, size_t count,
                                     const char *who, const char *name);

/* Runs fn(closure, inputs, out) with host pointers when `memory` is
 * LGD_MEMORY_HOST, staging through `stage` on device backends (see host_call.c).
 * NULL inputs stay NULL. *rc receives the callback's return value; when it is non-zero
 * the caller reports it with lgd_callback_failed(). With check_callback_outputs the
 * output is poisoned and checked (named by who and out_name). */
#define LGD_HOST_CALL_MAX_INPUTS 4
typedef int32_t (*lgd_host_thunk)(void *closure, const float *const *in, float *out);
lgd_status lgd_host_call(lgd_context *ctx, lgd_staging *stage, lgd_memory memory, int n_in,
                         const float *const *in, const size_t *in_count, float *out,
                         size_t out_count, lgd_host_thunk fn, void *closure, const char *who,
                         const char *out_name, int32_t *rc);

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
