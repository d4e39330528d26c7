/*
 * kernels_nn.cu - the network layers' kernel table on CUDA ("nn", nn/nn_kernels.h):
 * channel bias, FiLM scale/shift, SiLU/GELU, group norm, nearest upsampling, average
 * pooling and their input VJPs, the sinusoidal time embedding, and the convolutions
 * of conv_cudnn.c; here too the im2col/col2im kernels of the convolutions' fallback
 * (conv_cudnn.c uses them when cuDNN is not built in or not usable).
 *
 * Each kernel mirrors the CPU's (backend/cpu/cpu_layers.c); the SiLU's sigmoid, the GELU
 * and the time embedding's angles are the CPU's own formulas (core/hd_math.h). The
 * backward operations write dx = result + beta dx with beta 0 or 1; with beta 0 the
 * old contents of dx are never read (they may be NaN). Group norm sums in double, as
 * the CPU does.
 */
#include "cuda_kernels.cuh"
#include "kernel_tables.h"
#include "kernels_nn.h"

/* ---- channel bias, scale/shift ---- */

template <typename I>
__global__ void add_channel_bias_kernel(size_t total, size_t c, size_t s, const float *b,
                                        size_t b_stride, float *y)
{
    LGD_GRID_STRIDE(I, i, total) {
        I ic = i / (I)s;                /* i * c + ch */
        I ch = ic % (I)c, n = ic / (I)c;
        y[i] += b[(size_t)n * b_stride + (size_t)ch];
    }
}

extern "C" void lgd_cuda_add_channel_bias(lgd_backend *be, size_t n, size_t c, size_t s,
                                          const float *b, size_t b_stride, float *y)
{
    size_t total = n * c * s;
    if (total == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, total, add_channel_bias_kernel, total, c, s, b, b_stride, y);
}

template <typename I>
__global__ void scale_shift_kernel(size_t total, size_t c, size_t s, const float *x,
                                   const float *scale, const float *shift, size_t stride,
                                   float *y)
{
    LGD_GRID_STRIDE(I, i, total) {
        I ic = i / (I)s;
        I ch = ic % (I)c, n = ic / (I)c;
        size_t k = (size_t)n * stride + (size_t)ch;
        float v = x[i] * (1.0f + scale[k]);
        y[i] = shift ? v + shift[k] : v;
    }
}

static void cuda_scale_shift(lgd_backend *be, size_t n, size_t c, size_t s, const float *x,
                             const float *scale, const float *shift, size_t stride, float *y)
{
    size_t total = n * c * s;
    if (total == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, total, scale_shift_kernel, total, c, s, x, scale, shift, stride, y);
}

template <typename I>
__global__ void scale_shift_backward_kernel(size_t total, size_t c, size_t s, const float *dy,
                                            const float *scale, size_t stride, float beta,
                                            float *dx)
{
    LGD_GRID_STRIDE(I, i, total) {
        I ic = i / (I)s;
        I ch = ic % (I)c, n = ic / (I)c;
        float v = dy[i] * (1.0f + scale[(size_t)n * stride + (size_t)ch]);
        dx[i] = lgd_acc(v, beta, dx + i);
    }
}

static void cuda_scale_shift_backward(lgd_backend *be, size_t n, size_t c, size_t s,
                                      const float *dy, const float *scale, size_t stride,
                                      float beta, float *dx)
{
    size_t total = n * c * s;
    if (total == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, total, scale_shift_backward_kernel, total, c, s, dy, scale, stride, beta,
                  dx);
}

/* ---- activations ---- */

template <typename I>
__global__ void activation_kernel(int f, size_t n, const float *x, float *y)
{
    if (f == LGD_ACT_GELU) {
        LGD_GRID_STRIDE(I, i, n) {
            y[i] = lgd_gelu(x[i]);
        }
    } else {
        LGD_GRID_STRIDE(I, i, n) {
            float v = x[i], s, sm;
            lgd_sigmoid2(v, &s, &sm);
            y[i] = v * s;
        }
    }
}

static void cuda_activation(lgd_backend *be, lgd_activation f, size_t count, const float *x,
                            float *y)
{
    if (count == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, count, activation_kernel, (int)f, count, x, y);
}

template <typename I>
__global__ void activation_backward_kernel(int f, size_t n, const float *x, const float *dy,
                                           float beta, float *dx)
{
    if (f == LGD_ACT_GELU) {
        /* d/dx x Phi(x) = Phi(x) + x phi(x) */
        LGD_GRID_STRIDE(I, i, n)
            dx[i] = lgd_acc(dy[i] * lgd_gelu_grad(x[i]), beta, dx + i);
    } else {
        /* d/dx x s(x) = s (1 + x (1 - s)) */
        LGD_GRID_STRIDE(I, i, n) {
            float v = x[i], s, sm;
            lgd_sigmoid2(v, &s, &sm);
            dx[i] = lgd_acc(dy[i] * (s * (1.0f + v * sm)), beta, dx + i);
        }
    }
}

static void cuda_activation_backward(lgd_backend *be, lgd_activation f, size_t count,
                                     const float *x, const float *dy, float beta, float *dx)
{
    if (count == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, count, activation_backward_kernel, (int)f, count, x, dy, beta, dx);
}

/* ---- group norm ----
 * One row per (sample, group): the group's cpg channels x s positions are
 * contiguous, L = cpg * s values. A warp per row when L is short, a block when
 * long (LGD_LAUNCH_ROWS). Two passes in double: the mean, then the mean squared
 * deviation (biased variance). */

template <int G>
__global__ void group_norm_kernel(size_t rows, size_t groups, size_t cpg, size_t s, float eps,
                                  const float *x, const float *gamma, const float *beta,
                                  float *y, float *mean_out, float *rstd_out)
{
    __shared__ double shm[LGD_THREADS / LGD_WARP];
    const unsigned lane = lgd_group<G>::lane();
    const size_t L = cpg * s;
    LGD_ROW_LOOP(G, r, rows) {
        const float *xr = x + r * L;
        float *yr = y + r * L;
        const size_t c0 = (r % groups) * cpg;
        double acc = 0.0;
        for (size_t k = lane; k < L; k += G)
            acc += (double)xr[k];
        const double mean = lgd_group<G>::sum(acc, shm) / (double)L;
        double acc2 = 0.0;
        for (size_t k = lane; k < L; k += G) {
            double d = (double)xr[k] - mean;
            acc2 += d * d;
        }
        const double var = lgd_group<G>::sum(acc2, shm) / (double)L;
        const double rstd = 1.0 / sqrt(var + (double)eps);
        if (lane == 0) {
            if (mean_out)
                mean_out[r] = (float)mean;
            if (rstd_out)
                rstd_out[r] = (float)rstd;
        }
        /* y may alias x: every read of the row by other threads is over (the
         * reduction above synchronised the group); each thread rewrites only the
         * values it reads here */
        for (size_t k = lane; k < L; k += G) {
            size_t ch = c0 + k / s;
            double a = rstd * (gamma ? (double)gamma[ch] : 1.0);
            double b = beta ? (double)beta[ch] : 0.0;
            yr[k] = (float)(((double)xr[k] - mean) * a + b);
        }
    }
}

static void cuda_group_norm(lgd_backend *be, size_t n, size_t c, size_t s, size_t groups,
                            float eps, const float *x, const float *gamma, const float *beta_,
                            float *y, float *mean, float *rstd)
{
    if (n == 0 || groups == 0 || c == 0 || s == 0)
        return;
    lgd_cuda_enter(be);
    size_t rows = n * groups, cpg = c / groups, L = cpg * s;
    LGD_LAUNCH_ROWS(be, rows, L, group_norm_kernel, rows, groups, cpg, s, eps, x, gamma, beta_,
                    y, mean, rstd);
}

/* dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma, xhat = (x - mean) rstd,
 * the means over the group's L values. As on the CPU, xhat' computed from the saved
 * (rounded) mean and rstd has a group mean m0 (the rounding error) that is removed:
 * xhat = xhat' - m0, mean(g xhat) = mean(g xhat') - m0 mean(g). */
template <int G>
__global__ void group_norm_backward_kernel(size_t rows, size_t groups, size_t cpg, size_t s,
                                           const float *x, const float *gamma,
                                           const float *mean, const float *rstd,
                                           const float *dy, float beta, float *dx)
{
    __shared__ double shm[LGD_THREADS / LGD_WARP];
    const unsigned lane = lgd_group<G>::lane();
    const size_t L = cpg * s;
    LGD_ROW_LOOP(G, r, rows) {
        const float *xr = x + r * L, *dyr = dy + r * L;
        float *dxr = dx + r * L;
        const size_t c0 = (r % groups) * cpg;
        const double mu = (double)mean[r], rs = (double)rstd[r];
        double a0 = 0.0, a1 = 0.0, a2 = 0.0;
        for (size_t k = lane; k < L; k += G) {
            double g = (double)dyr[k] * (gamma ? (double)gamma[c0 + k / s] : 1.0);
            double xhat = ((double)xr[k] - mu) * rs;
            a0 += xhat;
            a1 += g;
            a2 += g * xhat;
        }
        const double m0 = lgd_group<G>::sum(a0, shm) / (double)L;
        const double m1 = lgd_group<G>::sum(a1, shm) / (double)L;
        const double m2 = lgd_group<G>::sum(a2, shm) / (double)L - m0 * m1;
        /* dx may alias dy (beta 0): as in the forward, rows are read in full before
         * the first write, and each thread writes only what it reads */
        for (size_t k = lane; k < L; k += G) {
            double g = (double)dyr[k] * (gamma ? (double)gamma[c0 + k / s] : 1.0);
            double xhat = ((double)xr[k] - mu) * rs - m0;
            float v = (float)(rs * (g - m1 - xhat * m2));
            dxr[k] = lgd_acc(v, beta, dxr + k);
        }
    }
}

static void cuda_group_norm_backward(lgd_backend *be, size_t n, size_t c, size_t s,
                                     size_t groups, const float *x, const float *gamma,
                                     const float *mean, const float *rstd, const float *dy,
                                     float beta, float *dx)
{
    if (n == 0 || groups == 0 || c == 0 || s == 0)
        return;
    lgd_cuda_enter(be);
    size_t rows = n * groups, cpg = c / groups, L = cpg * s;
    LGD_LAUNCH_ROWS(be, rows, L, group_norm_backward_kernel, rows, groups, cpg, s, x, gamma,
                    mean, rstd, dy, beta, dx);
}

/* ---- nearest upsampling, average pooling ---- */

/* y[p][Y][X] = x[p][Y / fh][X / fw], y of H = h fh by W = w fw */
template <typename I>
__global__ void upsample_nearest_kernel(size_t total, size_t h, size_t w, size_t fh, size_t fw,
                                        const float *x, float *y)
{
    const I W = (I)(w * fw), H = (I)(h * fh);
    LGD_GRID_STRIDE(I, i, total) {
        I X = i % W, t = i / W;
        I Y = t % H, p = t / H;
        y[i] = x[((size_t)p * h + (size_t)(Y / (I)fh)) * w + (size_t)(X / (I)fw)];
    }
}

static void cuda_upsample_nearest(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh,
                                  size_t fw, const float *x, float *y)
{
    size_t total = planes * h * fh * w * fw;
    if (total == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, total, upsample_nearest_kernel, total, h, w, fh, fw, x, y);
}

/* dx[p][i][j] = sum over the fh x fw block of dy at (i, j) + beta dx */
template <typename I>
__global__ void upsample_nearest_backward_kernel(size_t total, size_t h, size_t w, size_t fh,
                                                 size_t fw, const float *dy, float beta,
                                                 float *dx)
{
    const size_t W = w * fw;
    LGD_GRID_STRIDE(I, i, total) {
        I j = i % (I)w, t = i / (I)w;
        I r = t % (I)h, p = t / (I)h;
        const float *blk = dy + ((size_t)p * h * fh + (size_t)r * fh) * W + (size_t)j * fw;
        float acc = 0.0f;
        for (size_t a = 0; a < fh; a++)
            for (size_t b = 0; b < fw; b++)
                acc += blk[a * W + b];
        dx[i] = lgd_acc(acc, beta, dx + i);
    }
}

static void cuda_upsample_nearest_backward(lgd_backend *be, size_t planes, size_t h, size_t w,
                                           size_t fh, size_t fw, const float *dy, float beta,
                                           float *dx)
{
    size_t total = planes * h * w;
    if (total == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, total, upsample_nearest_backward_kernel, total, h, w, fh, fw, dy, beta,
                  dx);
}

/* y[p][i][j] = mean of x over the block, y of (h / fh) x (w / fw) */
template <typename I>
__global__ void avg_pool_kernel(size_t total, size_t h, size_t w, size_t fh, size_t fw,
                                const float *x, float *y)
{
    const size_t ho = h / fh, wo = w / fw;
    const float inv = 1.0f / (float)(fh * fw);
    LGD_GRID_STRIDE(I, i, total) {
        I j = i % (I)wo, t = i / (I)wo;
        I r = t % (I)ho, p = t / (I)ho;
        const float *blk = x + ((size_t)p * h + (size_t)r * fh) * w + (size_t)j * fw;
        float acc = 0.0f;
        for (size_t a = 0; a < fh; a++)
            for (size_t b = 0; b < fw; b++)
                acc += blk[a * w + b];
        y[i] = acc * inv;
    }
}

static void cuda_avg_pool(lgd_backend *be, size_t planes, size_t h, size_t w, size_t fh,
                          size_t fw, const float *x, float *y)
{
    if (fh == 0 || fw == 0)
        return;
    size_t total = planes * (h / fh) * (w / fw);
    if (total == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, total, avg_pool_kernel, total, h, w, fh, fw, x, y);
}

/* dx[p][i][j] = dy[p][i / fh][j / fw] / (fh fw) + beta dx, dx of h x w */
template <typename I>
__global__ void avg_pool_backward_kernel(size_t total, size_t h, size_t w, size_t fh, size_t fw,
                                         const float *dy, float beta, float *dx)
{
    const size_t ho = h / fh, wo = w / fw;
    const float inv = 1.0f / (float)(fh * fw);
    LGD_GRID_STRIDE(I, i, total) {
        I j = i % (I)w, t = i / (I)w;
        I r = t % (I)h, p = t / (I)h;
        float v = dy[((size_t)p * ho + (size_t)(r / (I)fh)) * wo + (size_t)(j / (I)fw)] * inv;
        dx[i] = lgd_acc(v, beta, dx + i);
    }
}

static void cuda_avg_pool_backward(lgd_backend *be, size_t planes, size_t h, size_t w,
                                   size_t fh, size_t fw, const float *dy, float beta, float *dx)
{
    size_t total = planes * h * w;
    if (total == 0 || fh == 0 || fw == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, total, avg_pool_backward_kernel, total, h, w, fh, fw, dy, beta, dx);
}

/* ---- sinusoidal time embedding (the CPU's angles, lgd_time_embedding_angle) ---- */

__global__ void time_embedding_kernel(float t, unsigned half, float *out)
{
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < half;
         i += gridDim.x * blockDim.x) {
        float a = lgd_time_embedding_angle(t, i, half);
        out[i] = cosf(a);
        out[half + i] = sinf(a);
    }
}

static void cuda_time_embedding(lgd_backend *be, float t, size_t dim, float *out)
{
    if (dim < 2)
        return;
    lgd_cuda_enter(be);
    unsigned half = (unsigned)(dim / 2);
    unsigned blocks = (half + LGD_THREADS - 1) / LGD_THREADS;
    time_embedding_kernel<<<blocks, LGD_THREADS, 0, be->stream>>>(t, half, out);
    LGD_CUDA_LAUNCHED(be, "time_embedding_kernel");
}

/* ---- convolution by im2col / col2im (the fallback of conv_cudnn.c) ---- */

/* col[b][k][p] for b < nb, k = (ci kh + ky) kw + kx < K, p = oy w_out + ox < P:
 * x[b][ci][oy sh - ph + ky][ox sw - pw + kx], 0 outside */
template <typename I>
__global__ void im2col_kernel(size_t total, lgd_conv_shape s, const float *x, float *col)
{
    const I P = (I)s.h_out * (I)s.w_out, K = (I)s.c_in * (I)s.kh * (I)s.kw;
    LGD_GRID_STRIDE(I, i, total) {
        I p = i % P, t = i / P;
        I k = t % K, b = t / K;
        I ox = p % (I)s.w_out, oy = p / (I)s.w_out;
        I kx = k % (I)s.kw, u = k / (I)s.kw;
        I ky = u % (I)s.kh, ci = u / (I)s.kh;
        long long iy = (long long)oy * s.stride_h - s.pad_h + (long long)ky;
        long long ix = (long long)ox * s.stride_w - s.pad_w + (long long)kx;
        float v = 0.0f;
        if (iy >= 0 && iy < s.h && ix >= 0 && ix < s.w)
            v = x[(((size_t)b * (size_t)s.c_in + (size_t)ci) * (size_t)s.h + (size_t)iy) *
                      (size_t)s.w + (size_t)ix];
        col[i] = v;
    }
}

extern "C" int lgd_cuda_im2col(lgd_backend *be, const lgd_conv_shape *s, size_t nb,
                               const float *x, float *col)
{
    size_t total = nb * (size_t)s->c_in * (size_t)s->kh * (size_t)s->kw * (size_t)s->h_out *
                   (size_t)s->w_out;
    if (total == 0)
        return 0;
    LGD_LAUNCH_FLAT(be, total, im2col_kernel, total, *s, x, col);
    return be->failed ? -1 : 0;
}

/* dx[b][ci][iy][ix] = sum over (ky, kx) of dcol[b][(ci kh + ky) kw + kx][oy w_out + ox]
 * for the output positions (oy, ox) that read (iy, ix), + beta dx. A gather (no
 * atomics): deterministic. */
template <typename I>
__global__ void col2im_kernel(size_t total, lgd_conv_shape s, const float *dcol, float beta,
                              float *dx)
{
    const size_t P = (size_t)s.h_out * (size_t)s.w_out;
    const size_t K = (size_t)s.c_in * (size_t)s.kh * (size_t)s.kw;
    LGD_GRID_STRIDE(I, i, total) {
        I ix = i % (I)s.w, t = i / (I)s.w;
        I iy = t % (I)s.h, u = t / (I)s.h;
        I ci = u % (I)s.c_in, b = u / (I)s.c_in;
        const float *db = dcol + (size_t)b * K * P;
        float acc = 0.0f;
        for (int ky = 0; ky < s.kh; ky++) {
            long long ny = (long long)iy + s.pad_h - ky; /* = oy * stride_h */
            if (ny < 0 || ny % s.stride_h != 0)
                continue;
            long long oy = ny / s.stride_h;
            if (oy >= s.h_out)
                continue;
            for (int kx = 0; kx < s.kw; kx++) {
                long long nx = (long long)ix + s.pad_w - kx;
                if (nx < 0 || nx % s.stride_w != 0)
                    continue;
                long long ox = nx / s.stride_w;
                if (ox >= s.w_out)
                    continue;
                size_t k = ((size_t)ci * (size_t)s.kh + (size_t)ky) * (size_t)s.kw + (size_t)kx;
                acc += db[k * P + (size_t)oy * (size_t)s.w_out + (size_t)ox];
            }
        }
        dx[i] = lgd_acc(acc, beta, dx + i);
    }
}

extern "C" int lgd_cuda_col2im(lgd_backend *be, const lgd_conv_shape *s, size_t nb,
                               const float *dcol, float beta, float *dx)
{
    size_t total = nb * (size_t)s->c_in * (size_t)s->h * (size_t)s->w;
    if (total == 0)
        return 0;
    LGD_LAUNCH_FLAT(be, total, col2im_kernel, total, *s, dcol, beta, dx);
    return be->failed ? -1 : 0;
}

extern "C" const lgd_nn_kernels lgd_cuda_nn_kernels = {
    .conv2d_forward = lgd_cuda_conv2d_forward,
    .conv2d_backward_data = lgd_cuda_conv2d_backward_data,
    .add_channel_bias = lgd_cuda_add_channel_bias,
    .scale_shift = cuda_scale_shift,
    .scale_shift_backward = cuda_scale_shift_backward,
    .activation = cuda_activation,
    .activation_backward = cuda_activation_backward,
    .group_norm = cuda_group_norm,
    .group_norm_backward = cuda_group_norm_backward,
    .upsample_nearest = cuda_upsample_nearest,
    .upsample_nearest_backward = cuda_upsample_nearest_backward,
    .avg_pool = cuda_avg_pool,
    .avg_pool_backward = cuda_avg_pool_backward,
    .time_embedding = cuda_time_embedding,
    /* the fused group norm (version 2) is CPU-only: the graph runs the layers one by one */
    .group_norm_act = NULL,
    .group_norm_act_backward = NULL,
};
