/*
 * network_internal.h - the raw passes of a loaded network (nn/network.c) for the library's
 * own users other than the adapter models: the network loss (losses/loss_network.c).
 * All pointers are backend memory of the network's context; batch rows of
 * lgd_network_dim() floats in, lgd_network_out_dim() out; cond NULL for an unconditional
 * network. Statuses are recorded on the context with their message.
 */
#ifndef LGD_NETWORK_INTERNAL_H
#define LGD_NETWORK_INTERNAL_H

#include <stddef.h>

#include "core/internal.h"
#include "lgd/network.h"

/* out[batch][out_dim] = F(x_in, t); out may be NULL (the result stays in the network). */
lgd_status lgd_network_forward_raw(lgd_network *net, const float *x_in, float t,
                                   const float *cond, size_t batch, float *out);
/* out[batch][dim] = (dF/dx_in)^T v for v[batch][out_dim]; reuses the forward pass just run
 * on the same x_in, t, cond and batch (runs it again otherwise). */
lgd_status lgd_network_vjp_raw(lgd_network *net, const float *x_in, float t,
                               const float *cond, size_t batch, const float *v, float *out);

/* The network's layer graph (nn/nn_graph.h): for bench-network's per-layer profile and
 * the fusion tests (nn_graph_set_profile, nn_graph_set_fusion). */
struct nn_graph;
struct nn_graph *lgd_network_graph(lgd_network *net);

#endif
