/*
 * trajectory_kernels_cpu.c - the trajectory losses' kernel table on the CPU
 * (trajectory_kernels.h): the shared row routine of trajectory_loss.h over the rows.
 */
#include <stddef.h>

#include "backend/cpu/cpu_parallel.h"
#include "losses/trajectory_kernels.h"

LGD_CPU_CLONES static void trajectory_rows(size_t first_row, size_t rows, size_t cols,
                                           const float *x, const lgd_traj_params *p,
                                           float *loss, float *grad)
{
    for (size_t i = 0; i < rows; i++)
        lgd_traj_row(p, cols, x + i * cols, first_row + i, loss + i,
                     grad ? grad + i * cols : NULL);
}

static void cpu_loss_trajectory(lgd_backend *be, size_t rows, size_t cols, const float *x,
                                const lgd_traj_params *p, float *loss, float *grad)
{
    LGD_CPU_FOR(rows * p->frames * (4 + p->n_obstacles))
    for (size_t r = 0; r < rows; r++)
        trajectory_rows(r, 1, cols, x + r * cols, p, loss + r, grad ? grad + r * cols : NULL);
}

const lgd_trajectory_kernels lgd_trajectory_kernels_cpu = {
    .loss = cpu_loss_trajectory,
    .loss_rows = trajectory_rows,
};

const lgd_kernel_table lgd_trajectory_kernel_table = {
    "loss_trajectory", LGD_TRAJECTORY_KERNELS_VERSION, &lgd_trajectory_kernels_cpu };
