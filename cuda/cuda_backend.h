/*
 * cuda_backend.h - private state of the CUDA backend module (liblgd-cuda.so).
 *
 * The module fills the lgd_backend_ops table of src/backend/backend.h (ABI 3: tensors
 * only) and returns the kernel tables of the library's modules (models/gmm_kernels.h,
 * losses/loss_kernels.h, ...) through its `kernels` slot: kernel_tables.h lists them,
 * one kernels_<module>.cu defines each. Every operation queues its work on the
 * backend's own non-blocking stream; only the operations that hand data to the host
 * (download, all_finite) and synchronize wait for it.
 *
 * Errors: operations that return void cannot report a failed launch or a failed
 * cuBLAS call, so the first CUDA error is recorded in the backend (it is
 * sticky: a CUDA error usually leaves the device context unusable) and every
 * later synchronize, upload, download and copy returns non-zero, and all_finite
 * returns 0 ("not all finite"), so that the core stops at its next check.
 * Failures that leave the device usable (out of device memory in alloc, a malformed
 * convolution shape) are not sticky; their reason is noted instead. The backend's
 * last_error returns the sticky error when there is one, else the last note.
 *
 * Memory: a caching pool (cuda_pool.c) over cudaMalloc keeps freed blocks in
 * size-class free lists and reuses them, so a sampling loop that frees and
 * re-allocates scratch of the same sizes does not call cudaMalloc again.
 */
#ifndef LGD_CUDA_BACKEND_H
#define LGD_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifndef LGD_HAVE_CUDNN
#define LGD_HAVE_CUDNN 0
#endif

/* ---- caching allocator ---- */

#define LGD_POOL_CLASSES 256   /* size classes: 4 per power of two, from 512 bytes */
#define LGD_POOL_HASH 1024     /* buckets of the live-block table (power of two) */

typedef struct lgd_pool_block {
    void *ptr;
    size_t size;  /* the class size actually allocated */
    int cls;
    struct lgd_pool_block *next;
} lgd_pool_block;

typedef struct lgd_pool {
    lgd_pool_block *free_list[LGD_POOL_CLASSES]; /* cached blocks by class */
    lgd_pool_block *live[LGD_POOL_HASH];         /* blocks handed out, by pointer */
    lgd_pool_block *spare;                       /* recycled block records */
    size_t reserved;   /* bytes obtained from cudaMalloc and not yet released */
    size_t in_use;     /* bytes of the blocks handed out (class sizes) */
    size_t mallocs;    /* cudaMalloc calls made */
} lgd_pool;

/* ---- the backend ---- */

#define LGD_CUDA_ERROR_CAP 256

struct lgd_backend {
    int device;
    int sm_count;
    int cc_major, cc_minor;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_workspace;
    size_t blas_workspace_bytes;
#if LGD_HAVE_CUDNN
    void *dnn; /* cudnnHandle_t, created on first use (lgd_cuda_dnn_handle) */
#endif
    struct lgd_conv_cache *conv; /* cuDNN descriptors and algorithms by shape (conv_cudnn.c) */
    int conv_im2col; /* convolutions by im2col + cuBLAS: no cuDNN, or LGD_CUDA_CONV=im2col */
    int conv_log;    /* LGD_CUDA_CONV_LOG set: the choice per shape goes to stderr */
    int *flag_dev;  /* one int of device memory for all_finite */
    int *flag_host; /* one int of pinned host memory */
    lgd_pool pool;
    int failed;                    /* non-zero once a CUDA, cuBLAS or cuDNN call failed */
    char error[LGD_CUDA_ERROR_CAP]; /* what failed first (sticky) */
    char note[LGD_CUDA_ERROR_CAP];  /* the last failure that is not sticky */
    char name[160];
};

#ifdef __cplusplus
extern "C" {
#endif

/* Makes the backend's device current on the calling thread (a context may be
 * used from another thread than the one that created it). */
void lgd_cuda_enter(lgd_backend *be);

/* Records the first failure (sticky); returns non-zero when `e` is an error. */
int lgd_cuda_check(lgd_backend *be, cudaError_t e, const char *what);
int lgd_cuda_check_blas(lgd_backend *be, cublasStatus_t s, const char *what);
/* Records a sticky failure described by the format (the first one is kept). */
void lgd_cuda_fail(lgd_backend *be, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Notes the reason of a failure that leaves the backend usable (not sticky): an
 * allocation refused, an argument refused by an op that returns a status. */
void lgd_cuda_note(lgd_backend *be, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checks the launch just made (cudaGetLastError, without synchronising). */
#define LGD_CUDA_LAUNCHED(be, what) lgd_cuda_check((be), cudaGetLastError(), (what))

/* Blocks for an n-element grid-stride loop. */
unsigned lgd_cuda_blocks(const lgd_backend *be, size_t n, unsigned threads);

/* the caching pool (a NULL return has noted why) */
void lgd_pool_init(lgd_pool *pool);
void *lgd_pool_alloc(lgd_backend *be, size_t bytes);
void lgd_pool_free(lgd_backend *be, void *p);
/* Returns the cached (free) blocks to CUDA. */
void lgd_pool_trim(lgd_backend *be);
/* Releases everything, live blocks included (at destroy). */
void lgd_pool_release_all(lgd_backend *be);

#if LGD_HAVE_CUDNN
/* The backend's cuDNN handle (created on first call, bound to the stream), or
 * NULL when cuDNN cannot be initialised. For the network layers. */
void *lgd_cuda_dnn_handle(lgd_backend *be);
#endif

/* Releases the convolutions' descriptor cache (conv_cudnn.c; at destroy). */
void lgd_cuda_conv_destroy(lgd_backend *be);

/* ---- the generic operations of the backend table, by file ---- */

/* cuda_backend.c: C_i = alpha op(A_i) op(B_i) + beta C_i, X_i = X + i stride_X, row-major
 * (the gemm_batched op); returns non-zero when cuBLAS failed (recorded) */
int lgd_cuda_gemm_strided(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N,
                          size_t K, float alpha, const float *A, size_t lda, size_t stride_a,
                          const float *B, size_t ldb, size_t stride_b, float beta, float *C,
                          size_t ldc, size_t stride_c, size_t count);

/* ops_elementwise.cu */
void lgd_cuda_fill(lgd_backend *be, float *x, size_t n, float value);
void lgd_cuda_axpby(lgd_backend *be, size_t n, float a, const float *x, float b, float *y);
void lgd_cuda_axpby_rows(lgd_backend *be, size_t rows, size_t cols, const float *a,
                         size_t a_stride, const float *x, float b, float *y);
void lgd_cuda_sub_row(lgd_backend *be, size_t rows, size_t cols, const float *x,
                      const float *row, float *out);
void lgd_cuda_broadcast_axpy(lgd_backend *be, size_t rows, size_t repeat, size_t cols,
                             const float *x, float a, const float *y, float *out);
void lgd_cuda_inv_sqrt_scale(lgd_backend *be, size_t n, float w, const float *in, float floor,
                             float *out);
void lgd_cuda_copy_rows(lgd_backend *be, size_t rows, size_t cols, const float *src,
                        size_t lds, float beta, float *dst, size_t ldd);
void lgd_cuda_transpose(lgd_backend *be, size_t batch, size_t rows, size_t cols,
                        const float *x, float beta, float *y);
void lgd_cuda_select_rows(lgd_backend *be, size_t n, size_t cols, const int32_t *idx,
                          int32_t k, const float *src, float *dst);
/* C[r][j] = beta C[r][j] (GEMM with K = 0; beta 0 writes zeros) */
void lgd_cuda_scale_matrix(lgd_backend *be, size_t rows, size_t cols, float beta, float *C,
                           size_t ldc);

/* ops_rows.cu */
void lgd_cuda_row_dot(lgd_backend *be, size_t rows, size_t cols, const float *x,
                      const float *y, float *out, size_t out_stride);
void lgd_cuda_softmax_rows(lgd_backend *be, size_t rows, size_t cols, float *x);
void lgd_cuda_softmax_rows_backward(lgd_backend *be, size_t rows, size_t cols, const float *p,
                                    const float *d, float scale, float *out);
void lgd_cuda_logsumexp_rows(lgd_backend *be, size_t rows, size_t cols, const float *x,
                             float *out);
int lgd_cuda_all_finite(lgd_backend *be, const float *x, size_t n);
void lgd_cuda_finite_flag(lgd_backend *be, const float *x, size_t n, float *flag);

/* ops_random.cu */
void lgd_cuda_normal(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                     size_t cols, float *out);
void lgd_cuda_normal_around(lgd_backend *be, const lgd_rng_stream *s, size_t rows,
                            size_t draws, size_t cols, const float *mean, float scale,
                            float *out);
void lgd_cuda_uniform(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                      float *out);
void lgd_cuda_categorical(lgd_backend *be, size_t rows, size_t draws, size_t K,
                          const float *prob, const float *u, int32_t *idx);

#ifdef __cplusplus
}
#endif

#endif
