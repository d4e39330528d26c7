/*
 * kernels_loss.cu - the built-in losses' kernel table on CUDA ("loss_builtin",
 * losses/loss_kernels.h): squared error, logistic (lgd_softplus_sigmoid of
 * core/hd_math.h, as on the CPU) and the linear inverse problem's residual, one row
 * group per row of x[rows][cols]. The CPU's table is losses/loss_kernels_cpu.c.
 */
#include "cuda_kernels.cuh"
#include "kernel_tables.h"
#include "losses/loss_kernels.h"

template <int G>
__global__ void loss_sqerr_kernel(size_t rows, size_t cols, const float *x, const float *target,
                                  size_t target_rows, size_t per_target, const float *weights,
                                  float *loss, float *grad)
{
    __shared__ double shm[LGD_THREADS / LGD_WARP];
    const unsigned lane = lgd_group<G>::lane();
    LGD_ROW_LOOP(G, r, rows) {
        const float *t = target + ((r / per_target) % target_rows) * cols;
        const float *xr = x + r * cols;
        double acc = 0.0;
        for (size_t j = lane; j < cols; j += G) {
            float d = xr[j] - t[j];
            float w = weights ? weights[j] : 1.0f;
            acc += (double)w * d * d;
            if (grad)
                grad[r * cols + j] = 2.0f * w * d;
        }
        acc = lgd_group<G>::sum(acc, shm);
        if (lane == 0)
            loss[r] = (float)acc;
    }
}

static void cuda_loss_sqerr(lgd_backend *be, size_t rows, size_t cols, const float *x,
                            const float *target, size_t target_rows, size_t per_target,
                            const float *weights, float *loss, float *grad)
{
    if (rows == 0)
        return;
    lgd_cuda_enter(be);
    if (target_rows == 0 || per_target == 0) {
        lgd_cuda_check(be, cudaErrorInvalidValue, "loss_sqerr: target_rows or per_target is 0");
        return;
    }
    LGD_LAUNCH_ROWS(be, rows, cols, loss_sqerr_kernel, rows, cols, x, target, target_rows,
                    per_target, weights, loss, grad);
}

template <int G>
__global__ void loss_logistic_kernel(size_t rows, size_t cols, const float *x, const float *a,
                                     float b, float *loss, float *grad)
{
    __shared__ double shm[LGD_THREADS / LGD_WARP];
    const unsigned lane = lgd_group<G>::lane();
    LGD_ROW_LOOP(G, r, rows) {
        const float *xr = x + r * cols;
        double z = 0.0;
        for (size_t j = lane; j < cols; j += G)
            z += (double)a[j] * xr[j];
        z = (double)b + lgd_group<G>::sum(z, shm);
        float sp, sg;
        lgd_softplus_sigmoid(-(float)z, &sp, &sg);
        if (lane == 0)
            loss[r] = sp;
        if (grad) {
            float s = -sg;
            for (size_t j = lane; j < cols; j += G)
                grad[r * cols + j] = s * a[j];
        }
    }
}

static void cuda_loss_logistic(lgd_backend *be, size_t rows, size_t cols, const float *x,
                               const float *a, float b, float *loss, float *grad)
{
    if (rows == 0)
        return;
    lgd_cuda_enter(be);
    LGD_LAUNCH_ROWS(be, rows, cols, loss_logistic_kernel, rows, cols, x, a, b, loss, grad);
}

template <int G>
__global__ void loss_residual_kernel(size_t rows, size_t m, const float *y, size_t target_rows,
                                     size_t per_target, float inv_s2, float *hx, float *loss)
{
    __shared__ double shm[LGD_THREADS / LGD_WARP];
    const unsigned lane = lgd_group<G>::lane();
    LGD_ROW_LOOP(G, r, rows) {
        const float *yr = y + ((r / per_target) % target_rows) * m;
        float *h = hx + r * m;
        double acc = 0.0;
        for (size_t j = lane; j < m; j += G) {
            float d = h[j] - yr[j];
            acc += (double)d * d;
            h[j] = d * inv_s2;
        }
        acc = lgd_group<G>::sum(acc, shm);
        if (lane == 0)
            loss[r] = (float)(0.5 * acc * inv_s2);
    }
}

static void cuda_loss_residual(lgd_backend *be, size_t rows, size_t m, const float *y,
                               size_t target_rows, size_t per_target, float inv_s2,
                               float *hx, float *loss)
{
    if (rows == 0)
        return;
    lgd_cuda_enter(be);
    if (target_rows == 0 || per_target == 0) {
        lgd_cuda_check(be, cudaErrorInvalidValue,
                       "loss_residual: target_rows or per_target is 0");
        return;
    }
    LGD_LAUNCH_ROWS(be, rows, m, loss_residual_kernel, rows, m, y, target_rows, per_target,
                    inv_s2, hx, loss);
}

extern "C" const lgd_loss_kernels lgd_cuda_loss_kernels = {
    .sqerr = cuda_loss_sqerr,
    .logistic = cuda_loss_logistic,
    .residual = cuda_loss_residual,
    .sqerr_rows = NULL, /* host-thread evaluators of the CPU's fused loop only */
    .logistic_rows = NULL,
};
