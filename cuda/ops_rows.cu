/*
 * ops_rows.cu - the backend table's row reductions: dot products, softmax and its
 * VJP, log-sum-exp by row, and the finiteness checks. A warp per row for short rows,
 * a block per row for long ones (see cuda_kernels.cuh); sums in double as in
 * src/backend/cpu/cpu_backend.c.
 */
#include "cuda_kernels.cuh"

template <int G>
__global__ void row_dot_kernel(size_t rows, size_t cols, const float *x, const float *y,
                               float *out, size_t out_stride)
{
    __shared__ double shm[LGD_THREADS / LGD_WARP];
    const unsigned lane = lgd_group<G>::lane();
    LGD_ROW_LOOP(G, r, rows) {
        const float *xr = x + r * cols, *yr = y + r * cols;
        double acc = 0.0;
        for (size_t j = lane; j < cols; j += G)
            acc += (double)xr[j] * (double)yr[j];
        acc = lgd_group<G>::sum(acc, shm);
        if (lane == 0)
            out[r * out_stride] = (float)acc;
    }
}

extern "C" void lgd_cuda_row_dot(lgd_backend *be, size_t rows, size_t cols, const float *x,
                                 const float *y, float *out, size_t out_stride)
{
    if (rows == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_ROWS(be, rows, cols, row_dot_kernel, rows, cols, x, y, out, out_stride);
}

/* out[r][k] = scale p[r][k] (d[r][k] - sum_j p[r][j] d[r][j]): the VJP of softmax_rows */
template <int G>
__global__ void softmax_backward_kernel(size_t rows, size_t K, const float *p, const float *d,
                                  float scale, float *out)
{
    __shared__ double shm[LGD_THREADS / LGD_WARP];
    const unsigned lane = lgd_group<G>::lane();
    LGD_ROW_LOOP(G, r, rows) {
        const float *pr = p + r * K, *dr = d + r * K;
        double mean = 0.0;
        for (size_t k = lane; k < K; k += G)
            mean += (double)pr[k] * dr[k];
        mean = lgd_group<G>::sum(mean, shm);
        /* d may alias out: each thread rewrites only the entries it read */
        for (size_t k = lane; k < K; k += G)
            out[r * K + k] = (float)(scale * pr[k] * ((double)dr[k] - mean));
    }
}

extern "C" void lgd_cuda_softmax_rows_backward(lgd_backend *be, size_t rows, size_t K,
                                               const float *p, const float *d, float scale,
                                               float *out)
{
    if (rows == 0 || K == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_ROWS(be, rows, K, softmax_backward_kernel, rows, K, p, d, scale, out);
}

template <int G> __global__ void softmax_rows_kernel(size_t rows, size_t cols, float *x)
{
    __shared__ double shm[LGD_THREADS / LGD_WARP];
    const unsigned lane = lgd_group<G>::lane();
    LGD_ROW_LOOP(G, r, rows) {
        float *xr = x + r * cols;
        float m = -INFINITY;
        for (size_t j = lane; j < cols; j += G)
            m = lgd_fmax_cpu(m, xr[j]);
        m = lgd_group<G>::max(m, shm);
        double s = 0.0;
        for (size_t j = lane; j < cols; j += G) {
            xr[j] = expf(xr[j] - m);
            s += xr[j];
        }
        s = lgd_group<G>::sum(s, shm);
        float inv = (float)(1.0 / s);
        for (size_t j = lane; j < cols; j += G)
            xr[j] *= inv;
    }
}

extern "C" void lgd_cuda_softmax_rows(lgd_backend *be, size_t rows, size_t cols, float *x)
{
    if (rows == 0 || cols == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_ROWS(be, rows, cols, softmax_rows_kernel, rows, cols, x);
}

template <int G>
__global__ void logsumexp_rows_kernel(size_t rows, size_t cols, const float *x, float *out)
{
    __shared__ double shm[LGD_THREADS / LGD_WARP];
    const unsigned lane = lgd_group<G>::lane();
    LGD_ROW_LOOP(G, r, rows) {
        const float *xr = x + r * cols;
        float m = -INFINITY;
        for (size_t j = lane; j < cols; j += G)
            m = lgd_fmax_cpu(m, xr[j]);
        m = lgd_group<G>::max(m, shm);
        double s = 0.0;
        for (size_t j = lane; j < cols; j += G)
            s += exp((double)xr[j] - (double)m);
        s = lgd_group<G>::sum(s, shm);
        if (lane == 0)
            out[r] = m + (float)log(s);
    }
}

extern "C" void lgd_cuda_logsumexp_rows(lgd_backend *be, size_t rows, size_t cols,
                                        const float *x, float *out)
{
    if (rows == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_ROWS(be, rows, cols, logsumexp_rows_kernel, rows, cols, x, out);
}

template <typename I> __global__ void all_finite_kernel(const float *x, size_t n, int *flag)
{
    int bad = 0;
    LGD_GRID_STRIDE(I, i, n)
        bad |= !isfinite(x[i]);
    if (bad)
        *flag = 1;
}

template <typename I> __global__ void finite_flag_kernel(const float *x, size_t n, float *flag)
{
    int bad = 0;
    LGD_GRID_STRIDE(I, i, n)
        bad |= !isfinite(x[i]);
    if (bad)
        *flag = 1.0f; /* every writer writes the same value */
}

extern "C" void lgd_cuda_finite_flag(lgd_backend *be, const float *x, size_t n, float *flag)
{
    if (n == 0)
        return;
    lgd_cuda_enter(be);
    unsigned blocks = lgd_cuda_blocks(be, n, LGD_THREADS);
    if (n <= (size_t)UINT32_MAX - 2u * LGD_THREADS * (size_t)blocks)
        finite_flag_kernel<uint32_t><<<blocks, LGD_THREADS, 0, be->stream>>>(x, n, flag);
    else
        finite_flag_kernel<size_t><<<blocks, LGD_THREADS, 0, be->stream>>>(x, n, flag);
    LGD_CUDA_LAUNCHED(be, "finite_flag_kernel");
}

extern "C" int lgd_cuda_all_finite(lgd_backend *be, const float *x, size_t n)
{
    if (be->failed)
        return 0;
    if (n == 0)
        return 1;
    lgd_cuda_enter(be);
    if (lgd_cuda_check(be, cudaMemsetAsync(be->flag_dev, 0, sizeof(int), be->stream),
                       "all_finite (cudaMemsetAsync)"))
        return 0;
    unsigned blocks = lgd_cuda_blocks(be, n, LGD_THREADS);
    if (n <= (size_t)UINT32_MAX - 2u * LGD_THREADS * (size_t)blocks)
        all_finite_kernel<uint32_t><<<blocks, LGD_THREADS, 0, be->stream>>>(x, n, be->flag_dev);
    else
        all_finite_kernel<size_t><<<blocks, LGD_THREADS, 0, be->stream>>>(x, n, be->flag_dev);
    if (LGD_CUDA_LAUNCHED(be, "all_finite_kernel"))
        return 0;
    if (lgd_cuda_check(be, cudaMemcpyAsync(be->flag_host, be->flag_dev, sizeof(int),
                                           cudaMemcpyDeviceToHost, be->stream),
                       "all_finite (cudaMemcpyAsync)") ||
        lgd_cuda_check(be, cudaStreamSynchronize(be->stream), "all_finite (synchronize)"))
        return 0;
    return *be->flag_host == 0;
}
