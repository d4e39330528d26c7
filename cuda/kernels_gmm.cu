/*
 * kernels_gmm.cu - the Gaussian mixture's kernel table on CUDA ("gmm",
 * models/gmm_kernels.h): the eigenvalue filters (their factors are
 * lgd_diag_factor of core/hd_math.h, as on the CPU) and the diagonal Gaussian
 * log-density by row. The CPU's table is models/gmm_kernels_cpu.c.
 */
#include "cuda_kernels.cuh"
#include "kernel_tables.h"
#include "models/gmm_kernels.h"

/* out[r][j] = f(lam[j], s2) in[r][j] */
template <typename I>
__global__ void gmm_diag_filter_kernel(lgd_diag_filter filter, size_t n, size_t cols,
                                       const float *lam, float s2, const float *in, float *out)
{
    LGD_GRID_STRIDE(I, i, n)
        out[i] = lgd_diag_factor(filter, lam[i % (I)cols], s2) * in[i];
}

static void cuda_diag_filter(lgd_backend *be, lgd_diag_filter filter, size_t rows, size_t cols,
                             const float *lam, float s2, const float *in, float *out)
{
    size_t n = rows * cols;
    if (n == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_FLAT(be, n, gmm_diag_filter_kernel, filter, n, cols, lam, s2, in, out);
}

/* out[r * out_stride] = c - 0.5 sum_j x[r][j]^2 / (lam[j] + s2), the sum in double */
template <int G>
__global__ void gmm_gaussian_logp_kernel(size_t rows, size_t cols, const float *x,
                                         const float *lam, float s2, float c, float *out,
                                         size_t out_stride)
{
    __shared__ double shm[LGD_THREADS / LGD_WARP];
    const unsigned lane = lgd_group<G>::lane();
    LGD_ROW_LOOP(G, r, rows) {
        const float *xr = x + r * cols;
        double acc = 0.0;
        for (size_t j = lane; j < cols; j += G) {
            double v = xr[j];
            acc += v * v / ((double)lam[j] + (double)s2);
        }
        acc = lgd_group<G>::sum(acc, shm);
        if (lane == 0)
            out[r * out_stride] = (float)((double)c - 0.5 * acc);
    }
}

static void cuda_gaussian_logp(lgd_backend *be, size_t rows, size_t cols, const float *x,
                               const float *lam, float s2, float c, float *out,
                               size_t out_stride)
{
    if (rows == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_ROWS(be, rows, cols, gmm_gaussian_logp_kernel, rows, cols, x, lam, s2, c, out,
                    out_stride);
}

extern "C" const lgd_gmm_kernels lgd_cuda_gmm_kernels = {
    .diag_filter = cuda_diag_filter,
    .gaussian_logp = cuda_gaussian_logp,
    .posterior_draws = NULL, /* the fused exact loop is the CPU's: a device samples by chunks */
};
