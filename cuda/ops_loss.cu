/*
 * ops_loss.cu - the built-in losses (squared error, logistic, linear residual),
 * one row group per row of x[rows][cols], as in src/backend_cpu.c.
 */
#include "cuda_kernels.cuh"

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

extern "C" void lgd_cuda_loss_sqerr(lgd_backend *be, size_t rows, size_t cols, const float *x,
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

/* softplus(t) = log(1 + e^t), stable for large |t| */
__device__ __forceinline__ float softplus_f(float t)
{
    return t > 0 ? t + log1pf(expf(-t)) : log1pf(expf(t));
}

__device__ __forceinline__ float sigmoid_f(float t)
{
    return t >= 0 ? 1.0f / (1.0f + expf(-t)) : expf(t) / (1.0f + expf(t));
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
        if (lane == 0)
            loss[r] = softplus_f(-(float)z);
        if (grad) {
            float s = -sigmoid_f(-(float)z);
            for (size_t j = lane; j < cols; j += G)
                grad[r * cols + j] = s * a[j];
        }
    }
}

extern "C" void lgd_cuda_loss_logistic(lgd_backend *be, size_t rows, size_t cols, const float *x,
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

extern "C" void lgd_cuda_loss_residual(lgd_backend *be, size_t rows, size_t m, const float *y,
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

/* trajectory losses: one thread per row (a trajectory is a short sequential scan) */
__global__ void loss_trajectory_kernel(size_t rows, size_t cols, const float *x,
                                       lgd_traj_params p, float *loss, float *grad)
{
    LGD_GRID_STRIDE(size_t, r, rows)
        lgd_traj_row(&p, cols, x + r * cols, r, loss + r, grad ? grad + r * cols : NULL);
}

extern "C" void lgd_cuda_loss_trajectory(lgd_backend *be, size_t rows, size_t cols,
                                         const float *x, const lgd_traj_params *p, float *loss,
                                         float *grad)
{
    if (rows == 0)
        return;
    lgd_cuda_enter(be);
    loss_trajectory_kernel<<<lgd_cuda_blocks(be, rows, LGD_THREADS), LGD_THREADS, 0,
                             be->stream>>>(rows, cols, x, *p, loss, grad);
    LGD_CUDA_LAUNCHED(be, "loss_trajectory_kernel");
}
