/*
 * lgd/tensor.h - float32 tensors living on a context's backend.
 *
 * A tensor has 1 to 4 dimensions; the first is the batch. Data are row-major
 * (C order). On the CPU backend the data are host memory; on CUDA they are
 * device memory, reached with upload/download or lgd_tensor_data(). A tensor
 * either owns its memory (lgd_tensor_create) or wraps the caller's
 * (lgd_tensor_wrap, zero-copy). Tensors are reference counted.
 */
#ifndef LGD_TENSOR_H
#define LGD_TENSOR_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The most dimensions a tensor has. (Since 0.1.0.) */
#define LGD_TENSOR_MAX_DIMS 4

/**
 * Creates a zero-filled tensor on the context's backend; *out_tensor receives the
 * caller's reference (lgd_tensor_destroy()). ndim: 1 to LGD_TENSOR_MAX_DIMS; shape:
 * ndim positive sizes (read during the call). Statuses: LGD_ERR_INVALID_ARGUMENT
 * (context or out_tensor NULL, ndim out of range, shape NULL, a size <= 0),
 * LGD_ERR_OUT_OF_MEMORY (the element count overflows, or the backend memory cannot be
 * allocated). (Since 0.1.0; signature changed in 0.3.0: ndim is int32_t, it was int.)
 */
LGD_API lgd_status lgd_tensor_create(lgd_context *context, int32_t ndim, const int64_t *shape,
                                     lgd_tensor **out_tensor);
/** lgd_tensor_create() of the common [batch][dim] case (batch, dim > 0), with its
 *  statuses. (Since 0.1.0.) */
LGD_API lgd_status lgd_tensor_create_2d(lgd_context *context, int64_t batch, int64_t dim,
                                        lgd_tensor **out_tensor);

/** Called once with `user` when a wrapped tensor is freed (lgd_tensor_wrap()), on the
 *  thread that drops the last reference; must not unwind and must not call liblgd on
 *  the tensor being freed. (Since 0.3.0.) */
typedef void (*lgd_tensor_release_fn)(void *user);

/**
 * A tensor over memory the caller owns, without a copy: a numpy array, a Rust Vec, a
 * buffer of another GPU library. The tensor works everywhere a tensor does (sampler
 * state x, model, loss and guidance inputs and outputs), and the library reads and
 * writes `data` in place.
 *
 *  - memory: where `data` lives. LGD_MEMORY_HOST: host memory; zero-copy on the CPU
 *    backend, LGD_ERR_UNSUPPORTED on a device backend (CUDA: upload a created tensor
 *    instead). LGD_MEMORY_DEVICE: memory of the context's backend, allocated by the
 *    caller (device memory from cudaMalloc on CUDA, used on the context's stream,
 *    lgd_context_native_stream(); host memory on the CPU).
 *  - ndim, shape: as lgd_tensor_create(); data holds numel floats, row-major.
 *  - data: non-NULL and float-aligned (4 bytes; no stronger alignment is needed).
 *    It must stay valid, and must not be freed, until the tensor is freed; the caller
 *    may read and write it between the library's calls on the context (on CUDA after
 *    lgd_context_synchronize()).
 *  - release (may be NULL): release(user) is called exactly once when the last
 *    reference to the tensor is dropped, on the thread that drops it; never when
 *    lgd_tensor_wrap fails (the caller still owns the memory then).
 *
 * The memory is not counted by lgd_context_memory_usage(). Statuses:
 * LGD_ERR_INVALID_ARGUMENT (context NULL: no message; out_tensor or data NULL, data
 * not float-aligned, ndim or shape as lgd_tensor_create() refuses, memory not an
 * lgd_memory), LGD_ERR_OUT_OF_MEMORY (a shape too large, or no memory for the
 * tensor's record), LGD_ERR_UNSUPPORTED (host memory on a device backend).
 * *out_tensor is NULL on failure. (Since 0.3.0.)
 */
LGD_API lgd_status lgd_tensor_wrap(lgd_context *context, lgd_memory memory, int32_t ndim,
                                   const int64_t *shape, float *data,
                                   lgd_tensor_release_fn release, void *user,
                                   lgd_tensor **out_tensor);

/** Takes a reference to the tensor and returns it (NULL for NULL). Every reference is
 *  dropped with lgd_tensor_destroy(); the last one frees the tensor. Any thread (see
 *  the thread contract in <lgd/lgd.h>). (Since 0.3.0.) */
LGD_API lgd_tensor *lgd_tensor_retain(lgd_tensor *tensor);
/** Drops the caller's reference; the last one frees the tensor (its backend memory, or
 *  calls a wrapped tensor's release). NULL is a no-op. Any thread. (Since 0.1.0.) */
LGD_API void lgd_tensor_destroy(lgd_tensor *tensor);
/** The context the tensor was made from (NULL for NULL): a borrowed pointer, valid
 *  while the caller holds a reference to the tensor (retain it with
 *  lgd_context_retain() to keep it longer). For lgd_context_last_error() after a failed
 *  call on the tensor. (Since 0.3.0.) */
LGD_API lgd_context *lgd_tensor_context(const lgd_tensor *tensor);

/* The shape getters are pure getters (callable from inside callbacks). */
/** Number of dimensions, 1 to 4 (0 for a NULL tensor). (Since 0.1.0; signature changed
 *  in 0.3.0: returns int32_t, it was int.) */
LGD_API int32_t lgd_tensor_ndim(const lgd_tensor *tensor);
/** Size of dimension `axis`, 0 <= axis < ndim (0 for a NULL tensor or an axis out of
 *  range). (Since 0.1.0; signature changed in 0.3.0: axis is int32_t, it was int.) */
LGD_API int64_t lgd_tensor_dim(const lgd_tensor *tensor, int32_t axis);
/** Total number of elements (0 for a NULL tensor). (Since 0.1.0.) */
LGD_API int64_t lgd_tensor_numel(const lgd_tensor *tensor);

/** Copies `count` floats from host memory into the tensor (synchronously: host may be
 *  reused when it returns). host: non-NULL; count must equal lgd_tensor_numel().
 *  Statuses: LGD_ERR_INVALID_ARGUMENT (tensor or host NULL, count negative),
 *  LGD_ERR_SHAPE_MISMATCH (count != numel), LGD_ERR_INTERNAL on a backend failure.
 *  (Since 0.1.0; signature changed in 0.3.0: count is int64_t, it was size_t.) */
LGD_API lgd_status lgd_tensor_upload(lgd_tensor *tensor, const float *host, int64_t count);
/** Copies the tensor into `count` floats of host memory (synchronously: the data are
 *  there when it returns). host and count as lgd_tensor_upload(), with its statuses.
 *  (Since 0.1.0; signature changed in 0.3.0: count is int64_t, it was size_t.) */
LGD_API lgd_status lgd_tensor_download(const lgd_tensor *tensor, float *host, int64_t count);
/** Copies src into dst: tensors of the same context with the same number of elements
 *  (the shapes may differ; the data are copied in row-major order). Statuses:
 *  LGD_ERR_INVALID_ARGUMENT (dst or src NULL, different contexts),
 *  LGD_ERR_SHAPE_MISMATCH (element counts differ), LGD_ERR_INTERNAL on a backend
 *  failure. (Since 0.1.0.) */
LGD_API lgd_status lgd_tensor_copy(lgd_tensor *dst, const lgd_tensor *src);
/** Sets every element to value (any float). Statuses: LGD_ERR_INVALID_ARGUMENT (tensor
 *  NULL); otherwise LGD_OK. (Since 0.1.0.) */
LGD_API lgd_status lgd_tensor_fill(lgd_tensor *tensor, float value);
/** The backend pointer to the data (host memory on the CPU backend; device memory on
 *  CUDA; a wrapped tensor's `data`); NULL for NULL. A borrowed view: valid while the
 *  caller holds a reference to the tensor, so a binding that hands the view out (a
 *  numpy array over it) retains the tensor with lgd_tensor_retain() for the view's
 *  lifetime and destroys that reference when the view goes. (Since 0.1.0.) */
LGD_API float *lgd_tensor_data(lgd_tensor *tensor);

#ifdef __cplusplus
}
#endif
#endif
