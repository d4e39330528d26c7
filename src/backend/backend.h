/*
 * backend.h - the private tensor-backend interface (versioned vtable).
 *
 * Every pointer argument named like data (x, y, out, ...) is backend memory:
 * host memory on the CPU backend, device memory on CUDA. Matrices are row-major.
 * Operations are queued in order on the backend's stream; the ones that return
 * a value to the host (all_finite, download) synchronise.
 *
 * The CUDA module (cuda/) fills the same table; its entry point is
 * lgd_cuda_backend_open(), checked against LGD_BACKEND_ABI_VERSION.
 */
#ifndef LGD_BACKEND_H
#define LGD_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "losses/trajectory_loss.h"

#define LGD_BACKEND_ABI_VERSION 2u

typedef struct lgd_backend lgd_backend; /* the backend's own state */

/* Where a Philox stream of numbers sits: keyed by seed, counted by
 * (element block, row, draw, purpose/step). See src/philox.h. */
typedef struct lgd_rng_stream {
    uint64_t seed;
    uint32_t purpose;   /* LGD_RNG_* below, 8 bits */
    uint32_t step;      /* sampler step, 24 bits */
    uint64_t first_row; /* global index of row 0 of this call */
    uint32_t first_draw;/* index of draw 0 of this call (MC chunks) */
} lgd_rng_stream;

enum {
    LGD_RNG_INIT = 1,        /* initial noise x = sigma_max z */
    LGD_RNG_MC_DRAW = 2,     /* LGD-MC draws x_i = xhat + r eps_i */
    LGD_RNG_ANCESTRAL = 3,   /* DDIM(eta) / ancestral noise */
    LGD_RNG_CHURN = 4,       /* Heun churn noise */
    LGD_RNG_POSTERIOR = 5,   /* exact posterior draws: the normals */
    LGD_RNG_COMPONENT = 6    /* exact posterior draws: mixture component choice */
};

/* Filters of the eigenvalues lam of a covariance at noise variance s2, applied
 * column-wise by diag_filter: out[r][j] = f(lam[j], s2) * in[r][j]. */
typedef enum lgd_diag_filter {
    LGD_FILTER_SHRINK = 0,    /* lam / (lam + s2)                 (posterior mean gain) */
    LGD_FILTER_PRECISION = 1, /* 1 / (lam + s2)                   (noisy precision) */
    LGD_FILTER_POST_STD = 2   /* sqrt(lam * s2 / (lam + s2))      (posterior std) */
} lgd_diag_filter;

/* State of the online log-sum-exp over Monte Carlo draws, one entry per row b:
 *   max[b] = running max of -l, sum[b] = sum_i exp(-l_i - max), sum2[b] = sum_i
 *   exp(-2 l_i - 2 max), wloss[b] = sum_i exp(-l_i - max) l_i, lsum[b] = sum_i l_i,
 *   vec[b][:] = sum_i exp(-l_i - max) v_i. */
typedef struct lgd_mc_state {
    float *max, *sum, *sum2, *wloss, *lsum; /* [rows] */
    float *vec;                             /* [rows][cols] */
} lgd_mc_state;


/* Shape of a 2-D convolution (1-D: h = kh = 1, stride_h = 1, pad_h = 0). Input
 * x[n][c_in][h][w], weight w[c_out][c_in][kh][kw], output y[n][c_out][h_out][w_out]
 * with h_out = (h + 2 pad_h - kh) / stride_h + 1 (likewise w_out); groups = 1,
 * dilation = 1. */
typedef struct lgd_conv_shape {
    int32_t n, c_in, h, w;
    int32_t c_out, kh, kw;
    int32_t stride_h, stride_w, pad_h, pad_w;
    int32_t h_out, w_out;
} lgd_conv_shape;

/* Elementwise activations of network layers. */
typedef enum lgd_activation {
    LGD_ACT_SILU = 0, /* x sigmoid(x) */
    LGD_ACT_GELU = 1  /* x Phi(x), Phi the standard normal CDF (erf form) */
} lgd_activation;

typedef struct lgd_backend_ops {
    uint32_t abi_version;
    const char *(*name)(lgd_backend *be);
    int host_memory; /* non-zero when backend memory is host memory */
    void (*destroy)(lgd_backend *be);

    /* memory */
    void *(*alloc)(lgd_backend *be, size_t bytes);
    void (*free)(lgd_backend *be, void *p);
    int (*upload)(lgd_backend *be, void *dst, const void *src, size_t bytes);
    int (*download)(lgd_backend *be, void *dst, const void *src, size_t bytes);
    int (*copy)(lgd_backend *be, void *dst, const void *src, size_t bytes);
    int (*synchronize)(lgd_backend *be);
    /* the native stream (cudaStream_t) or NULL */
    void *(*native_stream)(lgd_backend *be);

    /* elementwise */
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
    void (*diag_filter)(lgd_backend *be, lgd_diag_filter filter, size_t rows, size_t cols,
                        const float *lam, float s2, const float *in, float *out);

    /* out[i] = w / sqrt(max(in[i], floor)) */
    void (*inv_sqrt_scale)(lgd_backend *be, size_t n, float w, const float *in, float floor,
                           float *out);

    /* reductions (outputs in backend memory) */
    void (*row_dot)(lgd_backend *be, size_t rows, size_t cols, const float *x,
                    const float *y, float *out);
    /* out[r * out_stride] = sum_j x[r][j] * y[r][j] */
    void (*row_dot_strided)(lgd_backend *be, size_t rows, size_t cols, const float *x,
                            const float *y, float *out, size_t out_stride);
    /* out[r][k] = scale * p[r][k] * (d[r][k] - sum_j p[r][j] d[r][j]), all [rows][K]
     * (the centred mixture coefficients of a Gaussian-mixture VJP) */
    void (*mix_coeffs)(lgd_backend *be, size_t rows, size_t K, const float *p, const float *d,
                       float scale, float *out);
    /* out[r * out_stride] = c - 0.5 * sum_j x[r][j]^2 / (lam[j] + s2) */
    void (*gaussian_logp)(lgd_backend *be, size_t rows, size_t cols, const float *x,
                          const float *lam, float s2, float c, float *out, size_t out_stride);
    /* row-wise softmax in place, x[rows][cols] */
    void (*softmax_rows)(lgd_backend *be, size_t rows, size_t cols, float *x);
    /* out[r] = log sum_j exp(x[r][j]) */
    void (*logsumexp_rows)(lgd_backend *be, size_t rows, size_t cols, const float *x,
                           float *out);
    /* returns 1 if all n values are finite (synchronises) */
    int (*all_finite)(lgd_backend *be, const float *x, size_t n);
    /* *flag = 1.0f when any of the n values is not finite; never clears it.
     * Queued like any op (no synchronisation): callers read a set of flags back
     * once, so a sampling step does not wait on every check. */
    void (*finite_flag)(lgd_backend *be, const float *x, size_t n, float *flag);

    /* C[M][N] = alpha op(A) op(B) + beta C, row-major */
    void (*gemm)(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                 float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                 float beta, float *C, size_t ldc);

    /* random numbers: out[r][j][e] for r < rows, j < draws, e < cols is element
     * f % 4 of the Philox normal block at counter
     *   (f / 4 mod 2^32, first_row + r, f / 4 >> 32, purpose << 24 | step),
     *   f = (first_draw + j) * cols + e
     * i.e. each row's draws are one flat stream of normals, so every Philox block
     * is used whole however small cols is, and the numbers do not depend on how
     * the draws are split into calls. */
    void (*normal)(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                   size_t cols, float *out);
    /* Monte Carlo draws out[r][j][e] = mean[r][e] + scale * z[r][j][e], with z exactly
     * the normals of `normal` (same stream, same layout); scale = 0 copies the mean */
    void (*mc_draws)(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                     size_t cols, const float *mean, float scale, float *out);
    /* one uniform in (0, 1) per (r, j) */
    void (*uniform)(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                    float *out);

    /* Monte Carlo reductions */
    void (*mc_reset)(lgd_backend *be, size_t rows, size_t cols, lgd_mc_state *st);
    /* folds draws loss[rows][draws], vec[rows][draws][cols] into the state */
    void (*mc_accumulate)(lgd_backend *be, size_t rows, size_t draws, size_t cols,
                          const float *loss, const float *vec, lgd_mc_state *st);
    /* out[r][:] = vec / sum; ess[r] = sum^2 / sum2; wloss[r] = wloss / sum (in place) */
    void (*mc_finish)(lgd_backend *be, size_t rows, size_t cols, lgd_mc_state *st,
                      float *out, float *ess);

    /* exact posterior sampling of a mixture: idx[r][j] = the first k with
     * cumsum(prob[r][:k+1]) > u[r][j] (clamped to K-1) */
    void (*categorical)(lgd_backend *be, size_t rows, size_t draws, size_t K,
                        const float *prob, const float *u, int32_t *idx);
    /* dst[r][j][:] = src[r][j][:] where idx[r][j] == k */
    void (*select_rows)(lgd_backend *be, size_t n, size_t cols, const int32_t *idx, int32_t k,
                        const float *src, float *dst);

    /* built-in losses on x[rows][cols]; target row of x row r is (r / per_target) %
     * target_rows; grad may be NULL */
    void (*loss_sqerr)(lgd_backend *be, size_t rows, size_t cols, const float *x,
                       const float *target, size_t target_rows, size_t per_target,
                       const float *weights, float *loss, float *grad);
    /* logistic: z = x . a + b; loss = softplus(-z); grad = -sigmoid(-z) a */
    void (*loss_logistic)(lgd_backend *be, size_t rows, size_t cols, const float *x,
                          const float *a, float b, float *loss, float *grad);
    /* residual form: res[r][:] = (H x_r - y_t) / s2 precomputed by gemm; this
     * turns res into loss (0.5 * s2 * |res|^2) */
    void (*loss_residual)(lgd_backend *be, size_t rows, size_t m, const float *y,
                          size_t target_rows, size_t per_target, float inv_s2, float *hx,
                          float *loss);
    /* trajectory losses (src/trajectory_loss.h), one row of x[rows][cols] per trajectory;
     * the pointers inside p are backend memory; grad may be NULL */
    void (*loss_trajectory)(lgd_backend *be, size_t rows, size_t cols, const float *x,
                            const lgd_traj_params *p, float *loss, float *grad);

    /* ---- network layers (ABI 2; src/nn/, cuda/ops_nn.cu) ----
     * Activations are laid out [n][c][spatial] (NCHW; 1-D layers use h = 1). Every
     * *_backward writes the input's cotangent as  dx = result + beta * dx  with beta
     * 0 or 1, so a value used by several layers accumulates its cotangent. Only
     * input VJPs exist: weights are constants. The int-returning ops return 0 on
     * success and non-zero when the backend failed (allocation, cuDNN). */

    /* C_i = alpha op(A_i) op(B_i) + beta C_i for i < count, X_i = X + i * stride_X */
    void (*gemm_batched)(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N,
                         size_t K, float alpha, const float *A, size_t lda, size_t stride_a,
                         const float *B, size_t ldb, size_t stride_b, float beta, float *C,
                         size_t ldc, size_t stride_c, size_t count);
    /* y = conv(x, w) + bias (cross-correlation, as PyTorch); bias may be NULL */
    int (*conv2d_forward)(lgd_backend *be, const lgd_conv_shape *s, const float *x,
                          const float *w, const float *bias, float *y);
    /* dx = conv2d^T(dy, w) + beta dx  (the input VJP of conv2d_forward) */
    int (*conv2d_backward_data)(lgd_backend *be, const lgd_conv_shape *s, const float *dy,
                                const float *w, float beta, float *dx);
    /* y[i][c][k] += b[i * b_stride + c] for i < n, c < c, k < s (b_stride 0: shared) */
    void (*add_channel_bias)(lgd_backend *be, size_t n, size_t c, size_t s, const float *b,
                             size_t b_stride, float *y);
    /* y[i][c][k] = x[i][c][k] * (1 + scale[i*stride + c]) + shift[i*stride + c] */
    void (*scale_shift)(lgd_backend *be, size_t n, size_t c, size_t s, const float *x,
                        const float *scale, const float *shift, size_t stride, float *y);
    /* dx = dy * (1 + scale) + beta dx (the input VJP of scale_shift) */
    void (*scale_shift_backward)(lgd_backend *be, size_t n, size_t c, size_t s,
                                 const float *dy, const float *scale, size_t stride,
                                 float beta, float *dx);
    /* elementwise y = f(x), f = SiLU / GELU (erf form, as torch's default) */
    void (*activation)(lgd_backend *be, lgd_activation f, size_t count, const float *x,
                       float *y);
    /* dx = dy * f'(x) + beta dx */
    void (*activation_backward)(lgd_backend *be, lgd_activation f, size_t count,
                                const float *x, const float *dy, float beta, float *dx);
    /* group norm of x[n][c][s] over `groups` groups of c / groups channels (layer norm
     * over the c features of each row is n rows, s = 1, groups = 1):
     * y = (x - mean) * rstd * gamma[c] + beta[c]; mean, rstd [n][groups] are saved
     * for the backward pass (rstd = 1 / sqrt(var + eps), biased variance) */
    void (*group_norm)(lgd_backend *be, size_t n, size_t c, size_t s, size_t groups,
                       float eps, const float *x, const float *gamma, const float *beta_,
                       float *y, float *mean, float *rstd);
    /* dx = d/dx <dy, group_norm(x)> + beta dx */
    void (*group_norm_backward)(lgd_backend *be, size_t n, size_t c, size_t s, size_t groups,
                                const float *x, const float *gamma, const float *mean,
                                const float *rstd, const float *dy, float beta, float *dx);
    /* nearest upsampling y[p][h*fh][w*fw] = x[p][h][w] for p < planes */
    void (*upsample_nearest)(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh,
                             size_t fw, const float *x, float *y);
    /* dx[p][i][j] = sum of dy over the fh x fw block of (i, j) + beta dx */
    void (*upsample_nearest_backward)(lgd_backend *be, size_t planes, size_t h, size_t w,
                                      size_t fh, size_t fw, const float *dy, float beta,
                                      float *dx);
    /* average pooling y[p][i][j] = mean of x over the fh x fw block; x is [p][h][w]
     * with h, w multiples of fh, fw */
    void (*avg_pool)(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh, size_t fw,
                     const float *x, float *y);
    /* dx = (dy spread over each block) / (fh fw) + beta dx */
    void (*avg_pool_backward)(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh,
                              size_t fw, const float *dy, float beta, float *dx);
    /* dst[r * ldd + j] = src[r * lds + j] + beta * dst[r * ldd + j], r < rows, j < cols
     * (lds = 0 broadcasts one row; channel concatenation and its VJP) */
    void (*copy_rows)(lgd_backend *be, size_t rows, size_t cols, const float *src, size_t lds,
                      float beta, float *dst, size_t ldd);
    /* y[b][j][i] = x[b][i][j] + beta y[b][j][i] for x [batch][rows][cols] */
    void (*transpose)(lgd_backend *be, size_t batch, size_t rows, size_t cols, const float *x,
                      float beta, float *y);
    /* ADM's sinusoidal time embedding of a scalar t, computed on the backend (no copy from
     * the host per network call): with half = dim / 2 and f_i = exp(-ln(10000) i / half),
     * out[i] = cos(t f_i), out[half + i] = sin(t f_i) for i < half; dim is even */
    void (*time_embedding)(lgd_backend *be, float t, size_t dim, float *out);
} lgd_backend_ops;

/* The CPU backend (always built). threads = 0: OpenMP default. */
int lgd_cpu_backend_open(int threads, lgd_backend **out_be, const lgd_backend_ops **out_ops);

/* Signature of the CUDA module's entry point "lgd_cuda_backend_open". */
typedef int (*lgd_backend_open_fn)(uint32_t abi_version, int device_index, lgd_backend **out_be,
                                   const lgd_backend_ops **out_ops, char *err, size_t err_len);

#endif
