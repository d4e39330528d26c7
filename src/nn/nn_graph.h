/*
 * nn_graph.h - a network as a static list of layer operations (built once from a
 * file by nn_build.c) and its executor (nn_graph.c): the forward pass keeps every
 * activation, the backward pass walks the list in reverse and gives the input VJP.
 *
 * Values are activations of per-row shape [c][h][w] (1-D layers: h = 1), either one
 * per batch row or one shared by the whole batch (the time embedding and what is
 * computed from it alone). Only values that depend on the network input x carry a
 * cotangent; shared values never do. Weights are constants: there are no weight
 * gradients.
 */
#ifndef LGD_NN_GRAPH_H
#define LGD_NN_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"
#include "nn/nn_kernels.h"

typedef enum nn_op_kind {
    NN_TIME_EMBED, /* out[E] = sinusoidal(t), shared; no inputs */
    NN_COND,       /* out = the condition rows */
    NN_LINEAR,     /* out[n][o] = in[n][i] W^T + b (W [o][i]; transposed: W [i][o]) */
    NN_CONV,       /* 2-D / 1-D convolution */
    NN_NORM,       /* group norm (layer norm: s = 1, groups = 1) */
    NN_ACT,        /* SiLU / GELU */
    NN_ADD,        /* out = a + b (either may be shared) */
    NN_ADD_CHANNEL,/* out[c][s] = a[c][s] + e[c] (e per row or shared) */
    NN_SCALE_SHIFT,/* out = a * (1 + e[0:c]) + e[c:2c] */
    NN_CONCAT,     /* out = [a; b] along channels */
    NN_UPSAMPLE,   /* nearest, factors fh x fw */
    NN_AVG_POOL,   /* average pooling fh x fw */
    NN_ATTENTION,  /* qkv [3C][S] -> [C][S], legacy head order */
    NN_TRANSPOSE   /* [c][h*w] viewed as [rows][cols] -> [cols][rows] */
} nn_op_kind;

typedef struct nn_value {
    int32_t c, h, w;
    int shared;     /* one row for the whole batch */
    int needs_grad; /* depends on the input */
    int elided;     /* made and used inside one fused operation: no storage (nn_graph.c) */
    size_t off;     /* float offset into the activation arena (rows of this value) */
    size_t goff;    /* float offset into the cotangent arena */
} nn_value;

#define NN_MAX_IN 2

typedef struct nn_op {
    nn_op_kind kind;
    int in[NN_MAX_IN]; /* value indices, -1 unused */
    int out;
    /* weights: float offsets into the weight buffer, SIZE_MAX when absent */
    size_t w, b;
    int transposed;     /* NN_LINEAR: W stored [in][out] */
    lgd_conv_shape conv;/* NN_CONV (n filled per call) */
    int32_t groups;     /* NN_NORM */
    float eps;          /* NN_NORM */
    lgd_activation act; /* NN_ACT */
    int32_t fh, fw;     /* NN_UPSAMPLE / NN_AVG_POOL */
    int32_t heads;      /* NN_ATTENTION */
    int32_t rows, cols; /* NN_TRANSPOSE */
    int32_t embed_dim;  /* NN_TIME_EMBED */
    size_t scratch;     /* saved per-op floats per row (norm statistics, f'(z) of a fused norm,
                         * attention weights) */
    size_t soff;        /* float offset into the saved-scratch arena */
    /* Fusions (made by the executor from the list as built, nn_graph.c):
     * NN_NORM with fused_act: out = act(group_norm(in[0] + in[1])) (in[1] a per-channel
     *   addend, -1 for none): an NN_ADD_CHANNEL before it and an NN_ACT after it absorbed;
     * NN_CONV / NN_LINEAR: out is the output of an NN_ADD that follows (the residual add)
     *   and now only accumulates into it; that NN_ADD has accumulate set: out += in[0]. */
    int fused_act;
    int accumulate;
} nn_op;

/* Per-layer-kind timing of the executor (nn_graph_set_profile): for the benchmark's
 * --profile. Kinds are layer kinds, with convolutions split by kernel size. */
typedef enum nn_prof_kind {
    NN_PROF_CONV,      /* k x k convolutions (k > 1) */
    NN_PROF_CONV1X1,   /* 1x1 convolutions (attention qkv / proj_out, skip connections) */
    NN_PROF_LINEAR,    /* GEMMs of linear layers (+ bias) */
    NN_PROF_ATTENTION, /* attention's batched GEMMs and softmax */
    NN_PROF_NORM,      /* group / layer norm (fused: + channel add + activation) */
    NN_PROF_ACT,       /* activations that run on their own */
    NN_PROF_ADD,       /* residual adds, channel adds, scale-shift */
    NN_PROF_CONCAT,    /* skip concatenation */
    NN_PROF_RESAMPLE,  /* nearest upsampling, average pooling */
    NN_PROF_OTHER,     /* time embedding, condition, transposes */
    NN_PROF_COPY,      /* the input, output and cotangent copies of the executor */
    NN_PROF_KINDS
} nn_prof_kind;

typedef struct nn_prof_entry {
    uint64_t calls;
    double wall_ms; /* CLOCK_MONOTONIC */
    double cpu_ms;  /* CLOCK_PROCESS_CPUTIME_ID: every thread of the process */
    double flops;   /* multiply-adds count 2 (GEMMs and convolutions; 0 for the rest) */
    double bytes;   /* activation bytes read and written (a lower bound of the traffic) */
} nn_prof_entry;

typedef struct nn_profile {
    nn_prof_entry e[2][NN_PROF_KINDS]; /* [0] forward, [1] input VJP */
} nn_profile;

const char *nn_prof_kind_name(int kind);

typedef struct nn_graph {
    nn_value *values;
    size_t n_values, cap_values;
    nn_op *ops;         /* the operations executed: as built, or fused (nn_graph.c) */
    size_t n_ops, cap_ops;
    nn_op *built;       /* the list as built, once the executor has made `ops` from it */
    size_t n_built;
    unsigned fusion_off;/* NN_FUSE_* bits switched off (nn_graph_set_fusion) */
    nn_profile *profile;/* nn_graph_set_profile */
    int input, output; /* value indices */
    int64_t cond_dim;
    /* weights: one backend buffer */
    lgd_buffer weights;
    size_t n_weights; /* floats */

    /* executor state */
    const lgd_nn_kernels *kern; /* the backend's layer kernels (found on first use) */
    size_t batch_cap;      /* batch the arenas are sized for */
    lgd_buffer arena;      /* activations */
    lgd_buffer grads;      /* cotangents */
    lgd_buffer saved;      /* per-op saved scratch */
    lgd_buffer work;       /* attention backward scratch */
    size_t arena_per_row, arena_shared, grads_per_row, saved_per_row, work_per_row;
    unsigned char *written;/* per value, backward pass bookkeeping */
    /* the forward pass the arenas hold (for a VJP right after it) */
    int tape_valid;
    const float *tape_x;
    const float *tape_cond;
    float tape_t;
    size_t tape_batch;
} nn_graph;

/* Builder side */
int nn_graph_add_value(nn_graph *g, int32_t c, int32_t h, int32_t w, int shared,
                       int needs_grad);
nn_op *nn_graph_add_op(nn_graph *g, nn_op_kind kind, int in0, int in1, int out);
/* Lays out the arenas' per-row and shared sizes (after building); non-zero when a
 * size overflows (a graph from a hostile file; nothing is usable then). */
int nn_graph_plan(nn_graph *g);
void nn_graph_free(lgd_context *ctx, nn_graph *g);

static inline size_t nn_value_numel(const nn_value *v)
{
    return (size_t)v->c * (size_t)v->h * (size_t)v->w;
}

/* Fusions of layers (nn_graph.c), each on by default: */
#define NN_FUSE_NORM_ACT 1u    /* group / layer norm + activation */
#define NN_FUSE_CHANNEL_ADD 2u /* + the channel add before the norm (with NORM_ACT) */
#define NN_FUSE_RESIDUAL 4u    /* residual adds written by the layer before them */
#define NN_FUSE_ALL 7u
/* The fusions in `mask` on, the others off (0: the layers one by one, as built). Takes
 * effect at the next forward pass, which lays the arenas out again. Results are
 * bit-identical for every mask (tests/test_nn_fused.c). */
void nn_graph_set_fusion(nn_graph *g, unsigned mask);
/* Adds each operation's time to *p (not cleared here) until set to NULL; p is the
 * caller's and must outlive its use. On a device backend every operation is followed by
 * a synchronisation while profiling. */
void nn_graph_set_profile(nn_graph *g, nn_profile *p);

/* Executor: all pointers backend memory. out may be NULL (keeps the result in the arena). */
lgd_status nn_graph_forward(lgd_context *ctx, nn_graph *g, const float *x, float t,
                            const float *cond, size_t batch, float *out);
/* dx = (dF/dx)^T v, using the forward pass just run on the same x, t, cond and batch
 * when the tape holds it (else runs it first). */
lgd_status nn_graph_vjp(lgd_context *ctx, nn_graph *g, const float *x, float t,
                        const float *cond, size_t batch, const float *v, float *dx);
/* The output of the last forward pass (backend memory, [batch][out_dim]). */
const float *nn_graph_output(const nn_graph *g);

#endif
