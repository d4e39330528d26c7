/*
 * cuda_backend.h - private state of the CUDA backend module (liblgd-cuda.so).
 *
 * The module fills the lgd_backend_ops table of src/backend.h. Every operation
 * queues its work on the backend's own non-blocking stream; only the operations
 * that hand data to the host (download, all_finite) and synchronize wait for it.
 *
 * Errors: operations that return void cannot report a failed launch or a failed
 * cuBLAS call, so the first CUDA error is recorded in the backend (it is
 * sticky: a CUDA error usually leaves the device context unusable) and every
 * later synchronize, upload, download and copy returns non-zero, and all_finite
 * returns 0 ("not all finite"), so that the core stops at its next check.
 *
 * Memory: a caching pool (cuda_pool.cu) over cudaMalloc keeps freed blocks in
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
    int failed;        /* non-zero once a CUDA or cuBLAS call failed */
    char error[256];   /* what failed first */
    char name[160];
};

#ifdef __cplusplus
extern "C" {
#endif

/* Makes the backend's device current on the calling thread (a context may be
 * used from another thread than the one that created it). */
void lgd_cuda_enter(lgd_backend *be);

/* Records the first failure; returns non-zero when `e` is an error. */
int lgd_cuda_check(lgd_backend *be, cudaError_t e, const char *what);
int lgd_cuda_check_blas(lgd_backend *be, cublasStatus_t s, const char *what);

/* Checks the launch just made (cudaGetLastError, without synchronising). */
#define LGD_CUDA_LAUNCHED(be, what) lgd_cuda_check((be), cudaGetLastError(), (what))

/* Blocks for an n-element grid-stride loop. */
unsigned lgd_cuda_blocks(const lgd_backend *be, size_t n, unsigned threads);

/* the caching pool */
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

/* ---- the operations, by file ---- */

/* cuda_backend.c: C_i = alpha op(A_i) op(B_i) + beta C_i, X_i = X + i stride_X, row-major
 * (the gemm_batched op); returns non-zero when cuBLAS failed (recorded) */
int lgd_cuda_gemm_strided(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N,
                          size_t K, float alpha, const float *A, size_t lda, size_t stride_a,
                          const float *B, size_t ldb, size_t stride_b, float beta, float *C,
                          size_t ldc, size_t stride_c, size_t count);

/* conv_cudnn.c */
int lgd_cuda_conv2d_forward(lgd_backend *be, const lgd_conv_shape *s, const float *x,
                            const float *w, const float *bias, float *y);
int lgd_cuda_conv2d_backward_data(lgd_backend *be, const lgd_conv_shape *s, const float *dy,
                                  const float *w, float beta, float *dx);
/* Releases the descriptor cache (at destroy). */
void lgd_cuda_conv_destroy(lgd_backend *be);

/* ops_nn.cu */
void lgd_cuda_add_channel_bias(lgd_backend *be, size_t n, size_t c, size_t s, const float *b,
                               size_t b_stride, float *y);
void lgd_cuda_scale_shift(lgd_backend *be, size_t n, size_t c, size_t s, const float *x,
                          const float *scale, const float *shift, size_t stride, float *y);
void lgd_cuda_scale_shift_backward(lgd_backend *be, size_t n, size_t c, size_t s,
                                   const float *dy, const float *scale, size_t stride,
                                   float beta, float *dx);
void lgd_cuda_activation(lgd_backend *be, lgd_activation f, size_t count, const float *x,
                         float *y);
void lgd_cuda_activation_backward(lgd_backend *be, lgd_activation f, size_t count,
                                  const float *x, const float *dy, float beta, float *dx);
void lgd_cuda_group_norm(lgd_backend *be, size_t n, size_t c, size_t s, size_t groups,
                         float eps, const float *x, const float *gamma, const float *beta_,
                         float *y, float *mean, float *rstd);
void lgd_cuda_group_norm_backward(lgd_backend *be, size_t n, size_t c, size_t s, size_t groups,
                                  const float *x, const float *gamma, const float *mean,
                                  const float *rstd, const float *dy, float beta, float *dx);
void lgd_cuda_upsample_nearest(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh,
                               size_t fw, const float *x, float *y);
void lgd_cuda_upsample_nearest_backward(lgd_backend *be, size_t planes, size_t h, size_t w,
                                        size_t fh, size_t fw, const float *dy, float beta,
                                        float *dx);
void lgd_cuda_avg_pool(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh,
                       size_t fw, const float *x, float *y);
void lgd_cuda_avg_pool_backward(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh,
                                size_t fw, const float *dy, float beta, float *dx);
void lgd_cuda_copy_rows(lgd_backend *be, size_t rows, size_t cols, const float *src,
                        size_t lds, float beta, float *dst, size_t ldd);
void lgd_cuda_transpose(lgd_backend *be, size_t batch, size_t rows, size_t cols,
                        const float *x, float beta, float *y);
void lgd_cuda_time_embedding(lgd_backend *be, float t, size_t dim, float *out);
/* the im2col fallback of the convolutions: col[b][c_in kh kw][h_out w_out] for nb
 * images of x; dx[b] = col2im(dcol[b]) + beta dx[b]. Non-zero on a failed launch. */
int lgd_cuda_im2col(lgd_backend *be, const lgd_conv_shape *s, size_t nb, const float *x,
                    float *col);
int lgd_cuda_col2im(lgd_backend *be, const lgd_conv_shape *s, size_t nb, const float *dcol,
                    float beta, float *dx);

/* ops_elementwise.cu */
void lgd_cuda_fill(lgd_backend *be, float *x, size_t n, float value);
void lgd_cuda_axpby(lgd_backend *be, size_t n, float a, const float *x, float b, float *y);
void lgd_cuda_axpby_rows(lgd_backend *be, size_t rows, size_t cols, const float *a,
                         size_t a_stride, const float *x, float b, float *y);
void lgd_cuda_sub_row(lgd_backend *be, size_t rows, size_t cols, const float *x,
                      const float *row, float *out);
void lgd_cuda_broadcast_axpy(lgd_backend *be, size_t rows, size_t repeat, size_t cols,
                             const float *x, float a, const float *y, float *out);
void lgd_cuda_diag_filter(lgd_backend *be, lgd_diag_filter filter, size_t rows, size_t cols,
                          const float *lam, float s2, const float *in, float *out);
void lgd_cuda_inv_sqrt_scale(lgd_backend *be, size_t n, float w, const float *in, float floor,
                             float *out);
void lgd_cuda_scale_matrix(lgd_backend *be, size_t rows, size_t cols, float beta, float *C,
                           size_t ldc);
void lgd_cuda_select_rows(lgd_backend *be, size_t n, size_t cols, const int32_t *idx,
                          int32_t k, const float *src, float *dst);

/* ops_rows.cu */
void lgd_cuda_row_dot(lgd_backend *be, size_t rows, size_t cols, const float *x,
                      const float *y, float *out);
void lgd_cuda_row_dot_strided(lgd_backend *be, size_t rows, size_t cols, const float *x,
                              const float *y, float *out, size_t out_stride);
void lgd_cuda_mix_coeffs(lgd_backend *be, size_t rows, size_t K, const float *p,
                         const float *d, float scale, float *out);
void lgd_cuda_gaussian_logp(lgd_backend *be, size_t rows, size_t cols, const float *x,
                            const float *lam, float s2, float c, float *out, size_t out_stride);
void lgd_cuda_softmax_rows(lgd_backend *be, size_t rows, size_t cols, float *x);
void lgd_cuda_logsumexp_rows(lgd_backend *be, size_t rows, size_t cols, const float *x,
                             float *out);
int lgd_cuda_all_finite(lgd_backend *be, const float *x, size_t n);
void lgd_cuda_mc_draws(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                       size_t cols, const float *mean, float scale, float *out);
void lgd_cuda_finite_flag(lgd_backend *be, const float *x, size_t n, float *flag);

/* ops_random.cu */
void lgd_cuda_normal(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                     size_t cols, float *out);
void lgd_cuda_uniform(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                      float *out);
void lgd_cuda_categorical(lgd_backend *be, size_t rows, size_t draws, size_t K,
                          const float *prob, const float *u, int32_t *idx);

/* ops_mc.cu */
void lgd_cuda_mc_reset(lgd_backend *be, size_t rows, size_t cols, lgd_mc_state *st);
void lgd_cuda_mc_accumulate(lgd_backend *be, size_t rows, size_t draws, size_t cols,
                            const float *loss, const float *vec, lgd_mc_state *st);
void lgd_cuda_mc_finish(lgd_backend *be, size_t rows, size_t cols, lgd_mc_state *st,
                        float *out, float *ess);

/* ops_loss.cu */
void lgd_cuda_loss_sqerr(lgd_backend *be, size_t rows, size_t cols, const float *x,
                         const float *target, size_t target_rows, size_t per_target,
                         const float *weights, float *loss, float *grad);
void lgd_cuda_loss_logistic(lgd_backend *be, size_t rows, size_t cols, const float *x,
                            const float *a, float b, float *loss, float *grad);
void lgd_cuda_loss_trajectory(lgd_backend *be, size_t rows, size_t cols, const float *x,
                              const lgd_traj_params *p, float *loss, float *grad);
void lgd_cuda_loss_residual(lgd_backend *be, size_t rows, size_t m, const float *y,
                            size_t target_rows, size_t per_target, float inv_s2, float *hx,
                            float *loss);

#ifdef __cplusplus
}
#endif

#endif
