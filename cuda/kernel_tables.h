/*
 * kernel_tables.h - the module kernel tables the CUDA backend implements
 * (core/kernels.h), one kernels_<module>.cu each, returned by the backend's
 * `kernels` slot (cuda_backend.c) when asked for by name and by the version of the
 * module's header it was built with.
 *
 * Adding a module's kernels: write kernels_<module>.cu defining
 *     extern "C" const lgd_<module>_kernels lgd_cuda_<module>_kernels = { ... };
 * include the module's header below and add its line to LGD_CUDA_KERNEL_TABLES
 * (and the .cu to cuda/meson.build).
 */
#ifndef LGD_CUDA_KERNEL_TABLES_H
#define LGD_CUDA_KERNEL_TABLES_H

#include "losses/loss_kernels.h"
#include "losses/operator_kernels.h"
#include "losses/trajectory_kernels.h"
#include "models/gmm_kernels.h"
#include "nn/nn_kernels.h"
#include "sampling/mc_kernels.h"

/* X(name, version, table type, the CUDA table) */
#define LGD_CUDA_KERNEL_TABLES(X)                                                           \
    X("gmm", LGD_GMM_KERNELS_VERSION, lgd_gmm_kernels, lgd_cuda_gmm_kernels)                \
    X("loss_builtin", LGD_LOSS_KERNELS_VERSION, lgd_loss_kernels, lgd_cuda_loss_kernels)    \
    X("loss_trajectory", LGD_TRAJECTORY_KERNELS_VERSION, lgd_trajectory_kernels,            \
      lgd_cuda_trajectory_kernels)                                                          \
    X("mc", LGD_MC_KERNELS_VERSION, lgd_mc_kernels, lgd_cuda_mc_kernels)                    \
    X("nn", LGD_NN_KERNELS_VERSION, lgd_nn_kernels, lgd_cuda_nn_kernels)                    \
    X("operator", LGD_OPERATOR_KERNELS_VERSION, lgd_operator_kernels,                      \
      lgd_cuda_operator_kernels)

#ifdef __cplusplus
extern "C" {
#endif

#define LGD_CUDA_DECLARE_TABLE(name, version, type, table) extern const type table;
LGD_CUDA_KERNEL_TABLES(LGD_CUDA_DECLARE_TABLE)
#undef LGD_CUDA_DECLARE_TABLE

#ifdef __cplusplus
}
#endif

#endif
