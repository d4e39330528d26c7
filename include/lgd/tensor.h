/*
 * lgd/tensor.h - float32 tensors living on a context's backend.
 *
 * A tensor has 1 to 4 dimensions; the first is the batch. Data are row-major
 * (C order). On the CPU backend the data are host memory; on CUDA they are
 * device memory, reached with upload/download or lgd_tensor_data().
 */
#ifndef LGD_TENSOR_H
#define LGD_TENSOR_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LGD_TENSOR_MAX_DIMS 4

/** Creates a zero-filled tensor of ndim (1..4) positive dimensions. */
LGD_API lgd_status lgd_tensor_create(lgd_context *context, int ndim, const int64_t *shape,
                                     lgd_tensor **out_tensor);
/** Convenience for the common [batch][dim] case. */
LGD_API lgd_status lgd_tensor_create_2d(lgd_context *context, int64_t batch, int64_t dim,
                                        lgd_tensor **out_tensor);
LGD_API void lgd_tensor_destroy(lgd_tensor *tensor);

/** Number of dimensions (0 for a NULL tensor). */
LGD_API int lgd_tensor_ndim(const lgd_tensor *tensor);
/** Size of dimension `axis` (0 for a NULL tensor or an axis out of range). */
LGD_API int64_t lgd_tensor_dim(const lgd_tensor *tensor, int axis);
/** Total number of elements. */
LGD_API int64_t lgd_tensor_numel(const lgd_tensor *tensor);

/** Copies `count` floats from host memory into the tensor; count must equal numel. */
LGD_API lgd_status lgd_tensor_upload(lgd_tensor *tensor, const float *host, size_t count);
/** Copies the tensor into `count` floats of host memory; count must equal numel. */
LGD_API lgd_status lgd_tensor_download(const lgd_tensor *tensor, float *host, size_t count);
/** Copies src into dst (same number of elements). */
LGD_API lgd_status lgd_tensor_copy(lgd_tensor *dst, const lgd_tensor *src);
/** Sets every element to value. */
LGD_API lgd_status lgd_tensor_fill(lgd_tensor *tensor, float value);
/** The backend pointer to the data (host memory on the CPU backend). Valid for the
 *  tensor's lifetime. */
LGD_API float *lgd_tensor_data(lgd_tensor *tensor);

#ifdef __cplusplus
}
#endif
#endif
