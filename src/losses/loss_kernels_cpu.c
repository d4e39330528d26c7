/*
 * loss_kernels_cpu.c - the built-in losses' kernel table on the CPU (loss_kernels.h).
 */
#include <math.h>
#include <stddef.h>

#include "backend/cpu/cpu_parallel.h"
#include "core/hd_math.h"
#include "losses/loss_kernels.h"

static void cpu_loss_sqerr(lgd_backend *be, size_t rows, size_t cols, const float *x,
                           const float *target, size_t target_rows, size_t per_target,
                           const float *weights, float *loss, float *grad)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        const float *t = target + ((r / per_target) % target_rows) * cols;
        const float *xr = x + r * cols;
        double acc = 0.0;
        for (size_t j = 0; j < cols; j++) {
            float d = xr[j] - t[j];
            float w = weights ? weights[j] : 1.0f;
            acc += (double)w * d * d;
            if (grad)
                grad[r * cols + j] = 2.0f * w * d;
        }
        loss[r] = (float)acc;
    }
}

static void cpu_loss_logistic(lgd_backend *be, size_t rows, size_t cols, const float *x,
                              const float *a, float b, float *loss, float *grad)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        double z = b;
        for (size_t j = 0; j < cols; j++)
            z += (double)a[j] * x[r * cols + j];
        loss[r] = lgd_softplus(-(float)z);
        if (grad) {
            float s = -lgd_sigmoid(-(float)z);
            for (size_t j = 0; j < cols; j++)
                grad[r * cols + j] = s * a[j];
        }
    }
}

static void cpu_loss_residual(lgd_backend *be, size_t rows, size_t m, const float *y,
                              size_t target_rows, size_t per_target, float inv_s2, float *hx,
                              float *loss)
{
    LGD_CPU_FOR(rows * m)
    for (size_t r = 0; r < rows; r++) {
        const float *yr = y + ((r / per_target) % target_rows) * m;
        float *h = hx + r * m;
        double acc = 0.0;
        for (size_t j = 0; j < m; j++) {
            float d = h[j] - yr[j];
            acc += (double)d * d;
            h[j] = d * inv_s2;
        }
        loss[r] = (float)(0.5 * acc * inv_s2);
    }
}

const lgd_loss_kernels lgd_loss_kernels_cpu = {
    .sqerr = cpu_loss_sqerr,
    .logistic = cpu_loss_logistic,
    .residual = cpu_loss_residual,
};

const lgd_kernel_table lgd_loss_kernel_table = { "loss_builtin", LGD_LOSS_KERNELS_VERSION,
                                                 &lgd_loss_kernels_cpu };
