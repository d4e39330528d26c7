/*
 * nn_kernels.c - the network layers' kernel table descriptor (nn_kernels.h). The
 * CPU's table is the CPU backend's (backend/cpu/cpu_layers.c, cpu_conv.c): it needs oneDNN, im2col
 * and the backend's scratch.
 */
#include "nn/nn_kernels.h"

const lgd_kernel_table lgd_nn_kernel_table = { "nn", LGD_NN_KERNELS_VERSION,
                                               &lgd_nn_kernels_cpu };
