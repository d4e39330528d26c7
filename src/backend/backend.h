/*
 * backend.h - the private tensor-backend interface (versioned vtable).
 *
 * Every pointer argument named like data (x, y, out, ...) is backend memory:
 * host memory on the CPU backend, device memory on CUDA. Matrices are row-major.
 * Operations are queued in order on the backend's stream; the ones that return
 * a value to the host (all_finite, download) synchronise.
 *
 * The CUDA module (cuda/) fills the same table; its entry point is
 * lgd_cuda_backend_open(), checked against LGD_BACKEND_ABI_VERSION. The interface
 * knows tensors only (in the spirit of ggml-backend): memory, transfers,
 * synchronisation, random numbers, BLAS and generic tensor primitives.
 */
#ifndef LGD_BACKEND_H
#define LGD_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#define LGD_BACKEND_ABI_VERSION 3u

typedef struct lgd_backend lgd_backend; /* the backend's own state */

/* Where a Philox stream of numbers sits: keyed by seed, counted by (element block,
 * row, draw, purpose/step). The backend knows nothing of what the purposes mean
 * (core/rng.h names the library's); see core/philox.h for the generator. */
typedef struct lgd_rng_stream {
    uint64_t seed;
    uint32_t purpose;   /* 8 bits: which stream (core/rng.h) */
    uint32_t step;      /* 24 bits: e.g. the sampler step */
    uint64_t first_row; /* global index of row 0 of this call */
    uint32_t first_draw;/* index of draw 0 of this call (MC chunks) */
} lgd_rng_stream;

/*
 * The table a backend fills. Every slot is mandatory unless marked "optional" (NULL:
 * the core's fallback, named in the comment). The core checks abi_version and that
 * every mandatory slot is filled when it opens a backend (core/context.c), so a
 * module built for another interface is refused with a message, never called.
 *
 * What is NOT here: the kernels of one model, loss or estimator (the Gaussian
 * mixture's eigenvalue filters, the built-in losses, the Monte Carlo reductions,
 * the network layers). Each such module declares its own small, versioned kernel
 * table next to its code (e.g. models/gmm_kernels.h) and finds it with
 * lgd_kernels_find() (core/kernels.h): the CPU's from the module's descriptor, other
 * backends' through `kernels` below. Adding a loss touches the loss's files and its
 * kernels, not this header.
 */
typedef struct lgd_backend_ops {
    uint32_t abi_version;       /* LGD_BACKEND_ABI_VERSION the backend was built for */
    const char *(*name)(lgd_backend *be);
    int host_memory;            /* non-zero when backend memory is host memory */
    void (*destroy)(lgd_backend *be);

    /* ---- memory, transfers, synchronisation ---- */
    void *(*alloc)(lgd_backend *be, size_t bytes);
    void (*free)(lgd_backend *be, void *p);
    int (*upload)(lgd_backend *be, void *dst, const void *src, size_t bytes);
    int (*download)(lgd_backend *be, void *dst, const void *src, size_t bytes);
    int (*copy)(lgd_backend *be, void *dst, const void *src, size_t bytes);
    int (*synchronize)(lgd_backend *be);
    /* optional: the native stream (cudaStream_t); NULL: none */
    void *(*native_stream)(lgd_backend *be);
    /* optional: the precise reason of the backend's last failure (a CUDA error with
     * the operation that raised it), or "" / NULL; the core appends it to its own
     * message when an op returned non-zero */
    const char *(*last_error)(lgd_backend *be);

    /* ---- elementwise ---- */
    void (*fill)(lgd_backend *be, float *x, size_t n, float value);
    /* y = a x + b y */
    void (*axpby)(lgd_backend *be, size_t n, float a, const float *x, float b, float *y);
    /* y[r][:] = a[r * a_stride] * x[r][:] + b * y[r][:] */
    void (*axpby_rows)(lgd_backend *be, size_t rows, size_t cols, const float *a,
                       size_t a_stride, const float *x, float b, float *y);
    /* out[r][:] = x[r][:] - row[:] */
    void (*sub_row)(lgd_backend *be, size_t rows, size_t cols, const float *x,
                    const float *row, float *out);
    /* out[r][:] = x[r / repeat][:] + a * y[r][:]  (broadcast rows of x over `repeat`) */
    void (*broadcast_axpy)(lgd_backend *be, size_t rows, size_t repeat, size_t cols,
                           const float *x, float a, const float *y, float *out);
    /* out[i] = w / sqrt(max(in[i], floor)) */
    void (*inv_sqrt_scale)(lgd_backend *be, size_t n, float w, const float *in, float floor,
                           float *out);
    /* dst[r * ldd + j] = src[r * lds + j] + beta * dst[r * ldd + j], r < rows, j < cols
     * (lds = 0 broadcasts one row) */
    void (*copy_rows)(lgd_backend *be, size_t rows, size_t cols, const float *src, size_t lds,
                      float beta, float *dst, size_t ldd);
    /* y[b][j][i] = x[b][i][j] + beta y[b][j][i] for x [batch][rows][cols] */
    void (*transpose)(lgd_backend *be, size_t batch, size_t rows, size_t cols, const float *x,
                      float beta, float *y);

    /* ---- row reductions (outputs in backend memory) ---- */
    /* out[r * out_stride] = sum_j x[r][j] * y[r][j] */
    void (*row_dot)(lgd_backend *be, size_t rows, size_t cols, const float *x,
                    const float *y, float *out, size_t out_stride);
    /* row-wise softmax in place, x[rows][cols] */
    void (*softmax_rows)(lgd_backend *be, size_t rows, size_t cols, float *x);
    /* the VJP of softmax_rows: out[r][k] = scale * p[r][k] * (d[r][k] - sum_j p[r][j]
     * d[r][j]) with p the softmax output, all [rows][cols] (out may alias d) */
    void (*softmax_rows_backward)(lgd_backend *be, size_t rows, size_t cols, const float *p,
                                  const float *d, float scale, float *out);
    /* out[r] = log sum_j exp(x[r][j]) */
    void (*logsumexp_rows)(lgd_backend *be, size_t rows, size_t cols, const float *x,
                           float *out);
    /* returns 1 if all n values are finite (synchronises) */
    int (*all_finite)(lgd_backend *be, const float *x, size_t n);
    /* *flag = 1.0f when any of the n values is not finite; never clears it.
     * Queued like any op (no synchronisation): callers read a set of flags back
     * once, so a sampling step does not wait on every check. */
    void (*finite_flag)(lgd_backend *be, const float *x, size_t n, float *flag);

    /* ---- BLAS ---- */
    /* C[M][N] = alpha op(A) op(B) + beta C, row-major */
    void (*gemm)(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                 float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                 float beta, float *C, size_t ldc);
    /* optional: C_i = alpha op(A_i) op(B_i) + beta C_i for i < count, X_i = X + i *
     * stride_X; NULL: `count` calls of gemm */
    void (*gemm_batched)(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N,
                         size_t K, float alpha, const float *A, size_t lda, size_t stride_a,
                         const float *B, size_t ldb, size_t stride_b, float beta, float *C,
                         size_t ldc, size_t stride_c, size_t count);

    /* ---- random numbers (Philox4x32-10, core/philox.h) ---- */
    /* out[r][j][e] for r < rows, j < draws, e < cols is element f % 4 of the Philox
     * normal block at counter
     *   (f / 4 mod 2^32, first_row + r, f / 4 >> 32, purpose << 24 | step),
     *   f = (first_draw + j) * cols + e
     * i.e. each row's draws are one flat stream of normals, so every Philox block
     * is used whole however small cols is, and the numbers do not depend on how
     * the draws are split into calls. */
    void (*normal)(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                   size_t cols, float *out);
    /* out[r][j][e] = mean[r][e] + scale * z[r][j][e], with z exactly the normals of
     * `normal` (same stream, same layout); scale = 0 copies the mean (the Monte Carlo
     * draws around a denoised estimate, and noise added to a state) */
    void (*normal_around)(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                          size_t cols, const float *mean, float scale, float *out);
    /* one uniform in (0, 1) per (r, j): the first word of the Philox block at counter
     * (0, first_row + r, first_draw + j, purpose << 24 | step) */
    void (*uniform)(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                    float *out);
    /* idx[r][j] = the first k with cumsum(prob[r][:k+1]) > u[r][j] (clamped to K-1):
     * categorical draws from rows of probabilities */
    void (*categorical)(lgd_backend *be, size_t rows, size_t draws, size_t K,
                        const float *prob, const float *u, int32_t *idx);
    /* dst[r][:] = src[r][:] where idx[r] == k, for r < n (other rows untouched) */
    void (*select_rows)(lgd_backend *be, size_t n, size_t cols, const int32_t *idx, int32_t k,
                        const float *src, float *dst);

    /* ---- module kernel tables ----
     * optional: the backend's kernel table `name` of interface `version` (a module's
     * table, core/kernels.h), or NULL when it has none. NULL slot: the backend has no
     * module kernels (the CPU backend: modules carry the CPU's tables themselves). */
    const void *(*kernels)(lgd_backend *be, const char *name, uint32_t version);
} lgd_backend_ops;

/* Checks a table a backend returned: the ABI version and every mandatory slot.
 * Returns NULL when usable, else a static message naming the problem. */
const char *lgd_backend_ops_check(const lgd_backend_ops *ops);

/* The CPU backend (always built). threads = 0: OpenMP default. */
int lgd_cpu_backend_open(int threads, lgd_backend **out_be, const lgd_backend_ops **out_ops);

/* Signature of the CUDA module's entry point "lgd_cuda_backend_open". */
typedef int (*lgd_backend_open_fn)(uint32_t abi_version, int device_index, lgd_backend **out_be,
                                   const lgd_backend_ops **out_ops, char *err, size_t err_len);

#endif
