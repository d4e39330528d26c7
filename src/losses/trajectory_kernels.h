/*
 * trajectory_kernels.h - the trajectory losses' kernel table (core/kernels.h): one
 * row routine (losses/trajectory_loss.h, host-device code) run over the rows.
 *
 * CPU: losses/trajectory_kernels_cpu.c; CUDA: cuda/kernels_trajectory.cu.
 */
#ifndef LGD_TRAJECTORY_KERNELS_H
#define LGD_TRAJECTORY_KERNELS_H

#include <stddef.h>

#include "backend/backend.h"
#include "core/kernels.h"
#include "losses/trajectory_loss.h"

#define LGD_TRAJECTORY_KERNELS_VERSION 1u

typedef struct lgd_trajectory_kernels {
    /* one row of x[rows][cols] per trajectory; the pointers inside p are backend
     * memory; grad may be NULL */
    void (*loss)(lgd_backend *be, size_t rows, size_t cols, const float *x,
                 const lgd_traj_params *p, float *loss, float *grad);
    /* Optional (the CPU's table; NULL on devices): rows first_row .. first_row + rows - 1
     * of the same computation, on the calling thread (the fused Monte Carlo loop's block
     * evaluator, losses/loss_internal.h); x, loss and grad start at row first_row. */
    void (*loss_rows)(size_t first_row, size_t rows, size_t cols, const float *x,
                      const lgd_traj_params *p, float *loss, float *grad);
} lgd_trajectory_kernels;

extern const lgd_trajectory_kernels lgd_trajectory_kernels_cpu;
extern const lgd_kernel_table lgd_trajectory_kernel_table; /* "loss_trajectory", version 1 */

#endif
