/*
 * loss_kernels.h - the kernels of the built-in losses of losses/loss_builtin.c
 * (squared error, linear inverse problem, logistic), as a kernel table
 * (core/kernels.h). The softplus and sigmoid they use are in core/hd_math.h.
 *
 * CPU: losses/loss_kernels_cpu.c; CUDA: cuda/kernels_loss.cu.
 */
#ifndef LGD_LOSS_KERNELS_H
#define LGD_LOSS_KERNELS_H

#include <stddef.h>

#include "backend/backend.h"
#include "core/kernels.h"

#define LGD_LOSS_KERNELS_VERSION 1u

/* Losses on x[rows][cols]; the target row of x's row r is (r / per_target) %
 * target_rows; grad may be NULL. */
typedef struct lgd_loss_kernels {
    /* loss[r] = sum_j w_j (x[r][j] - t[j])^2, grad = 2 w (x - t); weights may be NULL */
    void (*sqerr)(lgd_backend *be, size_t rows, size_t cols, const float *x,
                  const float *target, size_t target_rows, size_t per_target,
                  const float *weights, float *loss, float *grad);
    /* logistic: z = x . a + b; loss = softplus(-z); grad = -sigmoid(-z) a */
    void (*logistic)(lgd_backend *be, size_t rows, size_t cols, const float *x, const float *a,
                     float b, float *loss, float *grad);
    /* residual form: hx[r][:] = H x_r, computed by gemm; turns it into
     * (H x_r - y_t) / s2 in place and loss[r] = 0.5 |H x_r - y_t|^2 / s2 */
    void (*residual)(lgd_backend *be, size_t rows, size_t m, const float *y,
                     size_t target_rows, size_t per_target, float inv_s2, float *hx,
                     float *loss);

    /* Optional (the CPU's table; NULL on devices): the same losses on `rows` rows that
     * share one target row, on the calling thread, host memory. The kernels above are
     * these, called on blocks of rows in parallel, so the two give the same bits; the
     * fused Monte Carlo kernel (sampling/mc_kernels.h) calls them one sample's draws at a
     * time inside its own parallel loop. */
    void (*sqerr_rows)(size_t rows, size_t cols, const float *x, const float *target,
                       const float *weights, float *loss, float *grad);
    void (*logistic_rows)(size_t rows, size_t cols, const float *x, const float *a, float b,
                          float *loss, float *grad);
} lgd_loss_kernels;

extern const lgd_loss_kernels lgd_loss_kernels_cpu;
extern const lgd_kernel_table lgd_loss_kernel_table; /* "loss_builtin", version 1 */

#endif
