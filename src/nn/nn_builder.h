/*
 * nn_builder.h - the network builder's private interface, shared by nn_build.c (the
 * dispatch by architecture name, weight loading), nn_metadata.c (lgd.* values),
 * nn_layers.c (one function per layer or block) and nn_arch_*.c (the architectures of
 * docs/network-format.md). Names start with nnb_.
 *
 * Error handling: the first failure is recorded in b->st (with its message on the
 * context, prefixed "network file: "); every later builder call is then a no-op that
 * returns -1, so layout code runs on to its end without checking each step.
 */
#ifndef LGD_NN_BUILDER_H
#define LGD_NN_BUILDER_H

#include "nn/nn_graph.h"
#include "nn/safetensors.h"

/* a weight tensor of the file and its float offset in the weight buffer */
typedef struct nn_weight_req {
    const lgd_st_tensor *t;
    size_t off;
} nn_weight_req;

typedef struct nn_builder {
    lgd_context *ctx;
    nn_graph *g;
    const lgd_st_file *file;
    unsigned char *used; /* per file tensor */
    nn_weight_req *req;
    size_t n_req, cap_req;
    lgd_activation act;
    int dims; /* spatial dims of the layers: 1 or 2 */
    lgd_status st;
} nn_builder;

/* Records the first failure; returns -1. */
int nnb_fail(nn_builder *b, lgd_status st, const char *fmt, ...) LGD_PRINTF(3, 4);

/* ---- metadata values (nn_metadata.c) ---- */
const char *nnb_meta(const nn_builder *b, const char *key);
/* An integer key in [lo, hi] ("true"/"false" read as 1/0); def when absent and def_ok,
 * else an error. */
int32_t nnb_meta_int(nn_builder *b, const char *key, int def_ok, int32_t def, int32_t lo,
                     int32_t hi);
/* A number in [lo, hi]; def when absent. */
float nnb_meta_float(nn_builder *b, const char *key, float def, float lo, float hi);
/* A required comma-separated list of at most max integers in [lo, hi]; returns the
 * count (0 for ""). */
int nnb_meta_list(nn_builder *b, const char *key, int32_t *out, int max, int32_t lo,
                  int32_t hi);

/* ---- values, operations and weights (nn_layers.c) ---- */
/* A new value of per-row shape [c][h][w] (one row for the batch when shared; needs_grad
 * when it depends on the input); its index, or -1. */
int nnb_value(nn_builder *b, int32_t c, int32_t h, int32_t w, int shared, int needs_grad);
/* Appends an operation in0 (, in1) -> out; NULL after a failure. */
nn_op *nnb_op(nn_builder *b, nn_op_kind kind, int in0, int in1, int out);
/* Value i; after a failure (i = -1) a read-only 1x1x1 stand-in. */
const nn_value *nnb_val(const nn_builder *b, int i);
/* out = prefix "." formatted (or the formatted part alone when prefix is ""). */
void nnb_join(char *out, size_t cap, const char *prefix, const char *fmt, ...) LGD_PRINTF(4, 5);

/* ---- layers (nn_layers.c): each takes value indices, requests its weights by the
 * names prefix.weight, prefix.bias... and returns its output value, or -1 ---- */
/* Linear(in, out) on the whole row (W [out][in]; transposed: W [in][out]). */
int nnb_linear(nn_builder *b, int x, int32_t out, const char *prefix, int bias, int transposed);
/* Convolution with a k x k (2-D) or k (1-D) kernel; wdims = kernel dims in the weight
 * tensor (1 for the attention's Conv1d 1x1 even on 2-D values). */
int nnb_conv(nn_builder *b, int x, int32_t cout, int32_t k, int32_t stride, int32_t pad,
             const char *prefix, int wdims, int bias);
/* GroupNorm (LayerNorm with groups = 1). */
int nnb_norm(nn_builder *b, int x, int32_t groups, float eps, const char *prefix);
/* b->act (SiLU or GELU). */
int nnb_activation(nn_builder *b, int x);
int nnb_add(nn_builder *b, int x, int y);
/* [x; y] along channels. */
int nnb_concat(nn_builder *b, int x, int y);
/* [rows][cols] -> [cols][rows] */
int nnb_transpose(nn_builder *b, int x, int32_t rows, int32_t cols);
/* sinusoidal(t) of width dim (shared). */
int nnb_time_embed(nn_builder *b, int32_t dim);
/* sinusoidal(t, e_in) -> Linear(e_in, hidden) -> act -> Linear(hidden, hidden), the
 * linears named prefix.0 and prefix.2. */
int nnb_time_mlp(nn_builder *b, int32_t e_in, int32_t hidden, const char *prefix);

/* ---- ADM blocks (nn_layers.c) ---- */
typedef struct nn_unet_cfg {
    int32_t groups, kernel, heads, scale_shift, conv_resample;
} nn_unet_cfg;

/* ResBlock(cin, cout); emb_act = act(emb). */
int nnb_resblock(nn_builder *b, const nn_unet_cfg *u, int x, int emb_act, int32_t cout,
                 const char *prefix);
/* AttentionBlock (legacy head order). */
int nnb_attention(nn_builder *b, const nn_unet_cfg *u, int x, const char *prefix);
int nnb_downsample(nn_builder *b, const nn_unet_cfg *u, int x, const char *prefix);
int nnb_upsample(nn_builder *b, const nn_unet_cfg *u, int x, const char *prefix);

/* ---- architectures: lay out the graph (input value, cond_dim), set *dim to the floats
 * per input row, return the output value or -1 ---- */
int nnb_arch_mlp(nn_builder *b, int64_t *dim);           /* nn_arch_mlp.c */
int nnb_arch_unet(nn_builder *b, int64_t *dim);          /* nn_arch_unet.c */
int nnb_arch_temporal_unet(nn_builder *b, int64_t *dim); /* nn_arch_unet.c */
int nnb_arch_layer(nn_builder *b, int64_t *dim);         /* nn_arch_layer.c */

#endif
