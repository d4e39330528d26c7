/*
 * nn_build.h - from a parsed network file to a graph with its weights loaded
 * (the architectures of docs/network-format.md).
 */
#ifndef LGD_NN_BUILD_H
#define LGD_NN_BUILD_H

#include "nn/nn_graph.h"
#include "nn/safetensors.h"

/* Builds g (zeroed first) from the file: architecture, hyperparameters, weight
 * shapes; loads the weights into one backend buffer. *out_dim / *out_out_dim receive
 * the floats per row of the input and output. On failure g is left empty and the
 * context's error names the problem. */
lgd_status nn_build(lgd_context *ctx, const lgd_st_file *file, nn_graph *g, int64_t *out_dim,
                    int64_t *out_out_dim);

#endif
