/*
 * kernels_trajectory.cu - the trajectory losses' kernel table on CUDA
 * ("loss_trajectory", losses/trajectory_kernels.h): the row routine lgd_traj_row of
 * losses/trajectory_loss.h, the CPU's own code compiled as __host__ __device__, run
 * over the rows. The CPU's table is losses/trajectory_kernels_cpu.c.
 */
#include "cuda_kernels.cuh"
#include "kernel_tables.h"
#include "losses/trajectory_kernels.h"

/* one thread per row (a trajectory is a short sequential scan); p by value */
__global__ void loss_trajectory_kernel(size_t rows, size_t cols, const float *x,
                                       lgd_traj_params p, float *loss, float *grad)
{
    LGD_GRID_STRIDE(size_t, r, rows)
        lgd_traj_row(&p, cols, x + r * cols, r, loss + r, grad ? grad + r * cols : NULL);
}

static void cuda_loss_trajectory(lgd_backend *be, size_t rows, size_t cols, const float *x,
                                 const lgd_traj_params *p, float *loss, float *grad)
{
    if (rows == 0)
        return;
    lgd_cuda_enter(be);
    loss_trajectory_kernel<<<lgd_cuda_blocks(be, rows, LGD_THREADS), LGD_THREADS, 0,
                             be->stream>>>(rows, cols, x, *p, loss, grad);
    LGD_CUDA_LAUNCHED(be, "loss_trajectory_kernel");
}

extern "C" const lgd_trajectory_kernels lgd_cuda_trajectory_kernels = {
    .loss = cuda_loss_trajectory,
    .loss_rows = NULL, /* the CPU's fused Monte Carlo loop only */
};
