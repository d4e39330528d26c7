/*
 * nn_graph.c - the executor of a network graph (see nn_graph.h).
 *
 * Memory: the activation arena holds the shared values first, then every per-row
 * value in a slot of batch_cap rows; the cotangent arena holds a slot per value that
 * needs one; the saved arena holds what backward passes need beyond activations
 * (group-norm statistics, attention weights). All are sized on the first call and
 * grow only when a larger batch arrives, so a step allocates nothing.
 *
 * Backward: cotangents are written, not zeroed then accumulated: the first layer to
 * reach a value writes its cotangent with beta = 0, later ones add (beta = 1).
 *
 * Fusion: on the first pass (and after nn_graph_set_fusion) the executor makes the list
 * it runs from the list as built (`built`), when the backend's kernel table has the fused
 * kernels:
 *  - group norm + activation (+ the channel add of the time embedding before the norm)
 *    become one NN_NORM with fused_act (kernel group_norm_act): the normalised values and
 *    the sum are never written; the forward pass keeps the activation's derivative at
 *    them (in the saved arena, where the unfused graph kept the normalised values), so
 *    the backward pass needs neither them nor a second exponential;
 *  - a residual add whose one operand is a convolution or linear layer used by nothing
 *    else: that layer writes the sum's value directly and the add accumulates the other
 *    operand into it in place (and passes the cotangent on to it only): no copy of
 *    the layer's output forward, none of the cotangent backward.
 * A value made and used inside a fused operation is `elided`: it has no storage. Every
 * fused path computes the same expressions in the same order as the layers it replaces,
 * so results are bit-identical with and without fusion (tests/test_nn_fused.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/checked.h"
#include "nn/nn_graph.h"

int nn_graph_add_value(nn_graph *g, int32_t c, int32_t h, int32_t w, int shared, int needs_grad)
{
    if (g->n_values == g->cap_values) {
        size_t cap = g->cap_values ? 2 * g->cap_values : 64;
        nn_value *v = realloc(g->values, cap * sizeof *v);
        if (!v)
            return -1;
        g->values = v;
        g->cap_values = cap;
    }
    nn_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->c = c;
    v->h = h;
    v->w = w;
    v->shared = shared;
    v->needs_grad = needs_grad && !shared;
    return (int)g->n_values++;
}

nn_op *nn_graph_add_op(nn_graph *g, nn_op_kind kind, int in0, int in1, int out)
{
    if (g->n_ops == g->cap_ops) {
        size_t cap = g->cap_ops ? 2 * g->cap_ops : 64;
        nn_op *o = realloc(g->ops, cap * sizeof *o);
        if (!o)
            return NULL;
        g->ops = o;
        g->cap_ops = cap;
    }
    nn_op *op = &g->ops[g->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->in[0] = in0;
    op->in[1] = in1;
    op->out = out;
    op->w = SIZE_MAX;
    op->b = SIZE_MAX;
    return op;
}

int nn_graph_plan(nn_graph *g)
{
    size_t per_row = 0, shared = 0, grads = 0, saved = 0, work = 0;
    for (size_t i = 0; i < g->n_values; i++) {
        nn_value *v = &g->values[i];
        size_t n;
        if (lgd_mul3_size((size_t)v->c, (size_t)v->h, (size_t)v->w, &n))
            return -1;
        if (v->elided) {
            v->off = v->goff = 0; /* never addressed */
            continue;
        }
        if (v->shared) {
            v->off = shared;
            if (lgd_add_size(shared, n, &shared))
                return -1;
        } else {
            v->off = per_row;
            if (lgd_add_size(per_row, n, &per_row))
                return -1;
        }
        if (v->needs_grad) {
            v->goff = grads;
            if (lgd_add_size(grads, n, &grads))
                return -1;
        }
    }
    for (size_t i = 0; i < g->n_ops; i++) {
        nn_op *op = &g->ops[i];
        op->soff = saved;
        if (lgd_add_size(saved, op->scratch, &saved))
            return -1;
        size_t twice;
        if (op->kind == NN_ATTENTION) {
            if (lgd_mul_size(2, op->scratch, &twice))
                return -1;
            if (twice > work)
                work = twice;
        }
    }
    g->arena_per_row = per_row;
    g->arena_shared = shared;
    g->grads_per_row = grads;
    g->saved_per_row = saved;
    g->work_per_row = work;
    return 0;
}

void nn_graph_free(lgd_context *ctx, nn_graph *g)
{
    if (!g)
        return;
    lgd_buffer_release(ctx, &g->weights);
    lgd_buffer_release(ctx, &g->arena);
    lgd_buffer_release(ctx, &g->grads);
    lgd_buffer_release(ctx, &g->saved);
    lgd_buffer_release(ctx, &g->work);
    free(g->values);
    free(g->ops);
    free(g->built);
    free(g->written);
    memset(g, 0, sizeof *g);
}

static float *value_ptr(const nn_graph *g, int i)
{
    const nn_value *v = &g->values[i];
    if (v->shared)
        return g->arena.data + v->off;
    return g->arena.data + g->arena_shared + g->batch_cap * v->off;
}

static float *grad_ptr(const nn_graph *g, int i)
{
    return g->grads.data + g->batch_cap * g->values[i].goff;
}

static const float *weight_ptr(const nn_graph *g, size_t off)
{
    return off == SIZE_MAX ? NULL : g->weights.data + off;
}

static lgd_status reserve(lgd_context *ctx, nn_graph *g, size_t batch)
{
    if (batch <= g->batch_cap && g->arena.data)
        return LGD_OK;
    size_t cap = batch > g->batch_cap ? batch : g->batch_cap;
    /* the contents do not survive a regrow */
    g->tape_valid = 0;
    lgd_buffer_release(ctx, &g->arena);
    lgd_buffer_release(ctx, &g->grads);
    lgd_buffer_release(ctx, &g->saved);
    lgd_buffer_release(ctx, &g->work);
    g->batch_cap = 0;
    size_t arena, grads, saved, work;
    if (lgd_mul_size(cap, g->arena_per_row, &arena) ||
        lgd_add_size(arena, g->arena_shared, &arena) ||
        lgd_mul_size(cap, g->grads_per_row, &grads) ||
        lgd_mul_size(cap, g->saved_per_row, &saved) || lgd_mul_size(cap, g->work_per_row, &work))
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY,
                         "network: the buffers for a batch of %zu rows overflow the address space",
                         cap);
    lgd_status st = lgd_buffer_reserve(ctx, &g->arena, arena, "network activations");
    if (!st && g->grads_per_row)
        st = lgd_buffer_reserve(ctx, &g->grads, grads, "network cotangents");
    if (!st && g->saved_per_row)
        st = lgd_buffer_reserve(ctx, &g->saved, saved, "network saved state");
    if (!st && g->work_per_row)
        st = lgd_buffer_reserve(ctx, &g->work, work, "network scratch");
    if (!st && !g->written) {
        g->written = calloc(g->n_values ? g->n_values : 1, 1);
        if (!g->written)
            st = lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "network: out of memory");
    }
    if (st)
        return st;
    g->batch_cap = cap;
    return LGD_OK;
}

static size_t rows_of(const nn_value *v, size_t batch)
{
    return v->shared ? 1 : batch;
}

/* ------------------------------------------------------------------ fusion */

void nn_graph_set_fusion(nn_graph *g, unsigned mask)
{
    unsigned off = ~mask & NN_FUSE_ALL;
    if (g->fusion_off == off)
        return;
    g->fusion_off = off;
    g->kern = NULL; /* the next pass makes the list again */
    g->tape_valid = 0; /* and a VJP runs that forward pass first, not on the old tape */
}

void nn_graph_set_profile(nn_graph *g, nn_profile *p) { g->profile = p; }

/* Whether an operation strictly between lo and hi reads value v. The fused channel add
 * moves the VJP's write to its input from lo to hi; another reader in between would
 * change the order in which that cotangent is summed (and the bits). */
static int read_between(const nn_op *ops, size_t lo, size_t hi, int v)
{
    for (size_t k = lo + 1; k < hi; k++)
        for (int q = 0; q < NN_MAX_IN; q++)
            if (ops[k].in[q] == v)
                return 1;
    return 0;
}

/* Makes g->ops, the list that runs, from g->built (see the top of the file), and lays
 * the arenas out for it. */
static lgd_status make_ops(lgd_context *ctx, nn_graph *g)
{
    if (!g->built) {
        g->built = g->ops;
        g->n_built = g->n_ops;
        g->ops = NULL;
        g->n_ops = g->cap_ops = 0;
    }
    const size_t nb = g->n_built, nv = g->n_values;
    nn_op *ops = malloc((nb ? nb : 1) * sizeof *ops);
    int *prod = malloc((nv ? nv : 1) * sizeof *prod);   /* op making value v, or -1 */
    int *cons = malloc((nv ? nv : 1) * sizeof *cons);   /* its one user (when uses = 1) */
    int *uses = calloc(nv ? nv : 1, sizeof *uses);      /* operand slots reading v (+1: output) */
    unsigned char *dead = calloc(nb ? nb : 1, 1);
    if (!ops || !prod || !cons || !uses || !dead) {
        free(ops);
        free(prod);
        free(cons);
        free(uses);
        free(dead);
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "network: out of memory");
    }
    if (nb)
        memcpy(ops, g->built, nb * sizeof *ops);
    for (size_t v = 0; v < nv; v++) {
        g->values[v].elided = 0;
        prod[v] = cons[v] = -1;
    }
    for (size_t i = 0; i < nb; i++) {
        prod[ops[i].out] = (int)i;
        for (int k = 0; k < NN_MAX_IN; k++)
            if (ops[i].in[k] >= 0) {
                uses[ops[i].in[k]]++;
                cons[ops[i].in[k]] = (int)i;
            }
    }
    uses[g->output]++;
    const lgd_nn_kernels *kern = g->kern;
    const unsigned fuse = ~g->fusion_off & NN_FUSE_ALL;
    /* a value only `user` reads (and not the network's output) */
    #define ONLY_FOR(v, user) ((v) >= 0 && uses[v] == 1 && cons[v] == (int)(user))
    if ((fuse & NN_FUSE_NORM_ACT) && kern->group_norm_act && kern->group_norm_act_backward) {
        for (size_t i = 0; i < nb; i++) {
            nn_op *nrm = &ops[i];
            if (nrm->kind != NN_NORM || nrm->in[1] >= 0)
                continue;
            const int v = nrm->out;
            const int j = cons[v];
            if (j < 0 || !ONLY_FOR(v, j) || ops[j].kind != NN_ACT || ops[j].in[0] != v)
                continue;
            /* group norm + activation */
            nrm->fused_act = 1;
            nrm->act = ops[j].act;
            nrm->out = ops[j].out;
            /* the statistics, then f'(z) for the backward pass */
            nrm->scratch = (size_t)LGD_NN_NORM_ACT_STATS * (size_t)nrm->groups +
                           nn_value_numel(&g->values[v]);
            g->values[v].elided = 1;
            dead[j] = 1;
            /* the channel add before it */
            const int u = nrm->in[0], p = prod[u];
            if ((fuse & NN_FUSE_CHANNEL_ADD) && p >= 0 && ops[p].kind == NN_ADD_CHANNEL &&
                ONLY_FOR(u, i) && !read_between(ops, (size_t)p, i, ops[p].in[0]) &&
                !g->values[ops[p].in[0]].shared && !g->values[ops[p].in[1]].needs_grad) {
                nrm->in[0] = ops[p].in[0];
                nrm->in[1] = ops[p].in[1];
                g->values[u].elided = 1;
                dead[p] = 1;
            }
        }
    }
    if (fuse & NN_FUSE_RESIDUAL) {
        for (size_t i = 0; i < nb; i++) {
            nn_op *add = &ops[i];
            if (add->kind != NN_ADD || g->values[add->out].shared)
                continue;
            for (int k = 1; k >= 0; k--) {
                const int b = add->in[k], c = add->in[1 - k], p = b >= 0 ? prod[b] : -1;
                if (p < 0 || dead[p] || (ops[p].kind != NN_CONV && ops[p].kind != NN_LINEAR) ||
                    !ONLY_FOR(b, i) || g->values[b].shared ||
                    nn_value_numel(&g->values[b]) != nn_value_numel(&g->values[add->out]))
                    continue;
                /* the layer writes the sum; the add accumulates c into it */
                ops[p].out = add->out;
                g->values[b].elided = 1;
                add->accumulate = 1;
                add->in[0] = c;
                add->in[1] = -1;
                break;
            }
        }
    }
    #undef ONLY_FOR
    size_t n = 0;
    for (size_t i = 0; i < nb; i++)
        if (!dead[i])
            ops[n++] = ops[i];
    free(g->ops);
    g->ops = ops;
    g->n_ops = g->cap_ops = n;
    free(prod);
    free(cons);
    free(uses);
    free(dead);
    /* the layout for this list: the arenas are made again by reserve() */
    g->tape_valid = 0;
    lgd_buffer_release(ctx, &g->arena);
    lgd_buffer_release(ctx, &g->grads);
    lgd_buffer_release(ctx, &g->saved);
    lgd_buffer_release(ctx, &g->work);
    g->batch_cap = 0;
    if (nn_graph_plan(g))
        return lgd_error(ctx, LGD_ERR_INTERNAL, "network: the fused layout overflows");
    return LGD_OK;
}

/* ------------------------------------------------------------------ profile */

static const char *const prof_names[NN_PROF_KINDS] = {
    "convolution kxk", "convolution 1x1", "linear (GEMM)", "attention (GEMMs, softmax)",
    "group/layer norm", "activation", "adds, channel adds", "concatenation",
    "upsample, pooling", "embedding, transpose", "executor copies",
};

const char *nn_prof_kind_name(int kind)
{
    return kind >= 0 && kind < NN_PROF_KINDS ? prof_names[kind] : "?";
}

typedef struct prof_mark {
    double wall, cpu;
} prof_mark;

static prof_mark prof_now(lgd_context *ctx)
{
    prof_mark m;
    struct timespec ts;
    if (ctx->kind != LGD_BACKEND_CPU)
        ctx->ops->synchronize(ctx->be);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    m.wall = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    m.cpu = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
    return m;
}

static void prof_add(nn_graph *g, int bwd, int kind, prof_mark t0, prof_mark t1, double flops,
                     double bytes)
{
    nn_prof_entry *e = &g->profile->e[bwd][kind];
    e->calls++;
    e->wall_ms += t1.wall - t0.wall;
    e->cpu_ms += t1.cpu - t0.cpu;
    e->flops += flops;
    e->bytes += bytes;
}

/* An operation's kind, FLOPs and activation bytes (batch rows). */
static int op_cost(const nn_graph *g, const nn_op *op, size_t batch, int bwd, double *flops,
                   double *bytes)
{
    const nn_value *vo = &g->values[op->out];
    const double n = (double)rows_of(vo, batch), out = (double)nn_value_numel(vo);
    double in = 0.0;
    for (int k = 0; k < NN_MAX_IN; k++)
        if (op->in[k] >= 0)
            in += (double)rows_of(&g->values[op->in[k]], batch) *
                  (double)nn_value_numel(&g->values[op->in[k]]);
    *flops = 0.0;
    *bytes = 4.0 * (in + n * out);
    switch (op->kind) {
    case NN_CONV: {
        const lgd_conv_shape *s = &op->conv;
        *flops = 2.0 * n * s->c_out * (double)s->h_out * s->w_out * s->c_in * s->kh * s->kw;
        return (int64_t)s->kh * s->kw == 1 ? NN_PROF_CONV1X1 : NN_PROF_CONV;
    }
    case NN_LINEAR: {
        const double i1 = (double)nn_value_numel(&g->values[op->in[0]]);
        *flops = 2.0 * n * i1 * out;
        return NN_PROF_LINEAR;
    }
    case NN_ATTENTION: {
        const double S = (double)vo->h * vo->w, H = (double)op->heads, ch = (double)vo->c / H;
        const double count = n * H;
        *flops = (bwd ? 8.0 : 4.0) * count * S * S * ch;
        *bytes += 4.0 * count * S * S * (bwd ? 4.0 : 2.0);
        return NN_PROF_ATTENTION;
    }
    case NN_NORM:
        return NN_PROF_NORM;
    case NN_ACT:
        return NN_PROF_ACT;
    case NN_ADD:
    case NN_ADD_CHANNEL:
    case NN_SCALE_SHIFT:
        return NN_PROF_ADD;
    case NN_CONCAT:
        return NN_PROF_CONCAT;
    case NN_UPSAMPLE:
    case NN_AVG_POOL:
        return NN_PROF_RESAMPLE;
    case NN_TIME_EMBED:
    case NN_COND:
    case NN_TRANSPOSE:
        break;
    }
    return NN_PROF_OTHER;
}

/* attention pointers: qkv [B*H][3ch][S], out [B*H][ch][S] */
static void attention_forward(lgd_context *ctx, const nn_graph *g, const nn_op *op,
                              size_t batch)
{
    const lgd_backend_ops *o = ctx->ops;
    const nn_value *vo = &g->values[op->out];
    size_t C = (size_t)vo->c, S = (size_t)vo->h * (size_t)vo->w, H = (size_t)op->heads;
    size_t ch = C / H, count = rows_of(vo, batch) * H;
    const float *qkv = value_ptr(g, op->in[0]);
    float *a = value_ptr(g, op->out);
    float *W = g->saved.data + g->batch_cap * op->soff;
    float alpha = 1.0f / sqrtf((float)ch);
    /* W[t][s] = alpha sum_c q[c][t] k[c][s] */
    o->gemm_batched(ctx->be, 1, 0, S, S, ch, alpha, qkv, S, 3 * ch * S, qkv + ch * S, S,
                    3 * ch * S, 0.0f, W, S, S * S, count);
    o->softmax_rows(ctx->be, count * S, S, W);
    /* a[c][t] = sum_s v[c][s] W[t][s] */
    o->gemm_batched(ctx->be, 0, 1, ch, S, S, 1.0f, qkv + 2 * ch * S, S, 3 * ch * S, W, S, S * S,
                    0.0f, a, S, ch * S, count);
}

static void attention_backward(lgd_context *ctx, const nn_graph *g, const nn_op *op,
                               size_t batch, float beta)
{
    const lgd_backend_ops *o = ctx->ops;
    const nn_value *vo = &g->values[op->out];
    size_t C = (size_t)vo->c, S = (size_t)vo->h * (size_t)vo->w, H = (size_t)op->heads;
    size_t ch = C / H, count = rows_of(vo, batch) * H;
    const float *qkv = value_ptr(g, op->in[0]);
    const float *da = grad_ptr(g, op->out);
    float *dqkv = grad_ptr(g, op->in[0]);
    const float *W = g->saved.data + g->batch_cap * op->soff;
    float *dW = g->work.data;
    float *dS = g->work.data + g->batch_cap * op->scratch;
    float alpha = 1.0f / sqrtf((float)ch);
    size_t s3 = 3 * ch * S;
    /* dW[t][s] = sum_c da[c][t] v[c][s] */
    o->gemm_batched(ctx->be, 1, 0, S, S, ch, 1.0f, da, S, ch * S, qkv + 2 * ch * S, S, s3, 0.0f,
                    dW, S, S * S, count);
    /* dv[c][s] = sum_t da[c][t] W[t][s] */
    o->gemm_batched(ctx->be, 0, 0, ch, S, S, 1.0f, da, S, ch * S, W, S, S * S, beta,
                    dqkv + 2 * ch * S, S, s3, count);
    /* softmax VJP with the scale: dS = alpha W (dW - rowsum(W dW)) */
    o->softmax_rows_backward(ctx->be, count * S, S, W, dW, alpha, dS);
    /* dq[c][t] = sum_s k[c][s] dS[t][s];  dk[c][s] = sum_t q[c][t] dS[t][s] */
    o->gemm_batched(ctx->be, 0, 1, ch, S, S, 1.0f, qkv + ch * S, S, s3, dS, S, S * S, beta, dqkv,
                    S, s3, count);
    o->gemm_batched(ctx->be, 0, 0, ch, S, S, 1.0f, qkv, S, s3, dS, S, S * S, beta,
                    dqkv + ch * S, S, s3, count);
}

static lgd_status run_forward_op(lgd_context *ctx, nn_graph *g, const nn_op *op, float t,
                                 const float *cond, size_t batch)
{
    const lgd_backend_ops *o = ctx->ops;
    lgd_backend *be = ctx->be;
    const nn_value *vo = &g->values[op->out];
    size_t n = rows_of(vo, batch), numel = nn_value_numel(vo);
    float *y = value_ptr(g, op->out);
    const nn_value *va = op->in[0] >= 0 ? &g->values[op->in[0]] : NULL;
    const float *a = op->in[0] >= 0 ? value_ptr(g, op->in[0]) : NULL;
    const float *b = op->in[1] >= 0 ? value_ptr(g, op->in[1]) : NULL;
    switch (op->kind) {
    case NN_TIME_EMBED:
        g->kern->time_embedding(be, t, (size_t)op->embed_dim, y);
        break;
    case NN_COND:
        if (o->copy(be, y, cond, n * numel * sizeof(float)))
            return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "network: copying the condition failed");
        break;
    case NN_LINEAR: {
        size_t in = nn_value_numel(va), out = numel;
        if (op->transposed)
            o->gemm(be, 0, 0, n, out, in, 1.0f, a, in, weight_ptr(g, op->w), out, 0.0f, y, out);
        else
            o->gemm(be, 0, 1, n, out, in, 1.0f, a, in, weight_ptr(g, op->w), in, 0.0f, y, out);
        if (op->b != SIZE_MAX)
            g->kern->add_channel_bias(be, n, out, 1, weight_ptr(g, op->b), 0, y);
        break;
    }
    case NN_CONV: {
        lgd_conv_shape s = op->conv;
        s.n = (int32_t)n;
        if (g->kern->conv2d_forward(be, &s, a, weight_ptr(g, op->w), weight_ptr(g, op->b), y))
            return lgd_backend_error(ctx, LGD_ERR_OUT_OF_MEMORY,
                                     "network: convolution failed on the %s backend",
                                     ctx->backend_name);
        break;
    }
    case NN_NORM: {
        float *mean = g->saved.data + g->batch_cap * op->soff;
        float *rstd = mean + n * (size_t)op->groups;
        if (op->fused_act) {
            const nn_value *ve = op->in[1] >= 0 ? &g->values[op->in[1]] : NULL;
            float *dact = mean + (size_t)LGD_NN_NORM_ACT_STATS * n * (size_t)op->groups;
            if (g->kern->group_norm_act(be, n, (size_t)vo->c, (size_t)vo->h * (size_t)vo->w,
                                        (size_t)op->groups, op->eps, a, b,
                                        ve && !ve->shared ? (size_t)vo->c : 0,
                                        weight_ptr(g, op->w), weight_ptr(g, op->b), op->act, y,
                                        mean, vo->needs_grad ? dact : NULL))
                return lgd_backend_error(ctx, LGD_ERR_OUT_OF_MEMORY,
                                         "network: group norm failed on the %s backend",
                                         ctx->backend_name);
            break;
        }
        g->kern->group_norm(be, n, (size_t)vo->c, (size_t)vo->h * (size_t)vo->w, (size_t)op->groups,
                      op->eps, a, weight_ptr(g, op->w), weight_ptr(g, op->b), y, mean, rstd);
        break;
    }
    case NN_ACT:
        g->kern->activation(be, op->act, n * numel, a, y);
        break;
    case NN_ADD: {
        if (op->accumulate) {
            /* y already holds the other operand (its layer wrote it): y = a + y */
            o->copy_rows(be, n, numel, a, va->shared ? 0 : numel, 1.0f, y, numel);
            break;
        }
        const nn_value *vb = &g->values[op->in[1]];
        o->copy_rows(be, n, numel, a, va->shared ? 0 : numel, 0.0f, y, numel);
        o->copy_rows(be, n, numel, b, vb->shared ? 0 : numel, 1.0f, y, numel);
        break;
    }
    case NN_ADD_CHANNEL: {
        const nn_value *ve = &g->values[op->in[1]];
        o->copy_rows(be, n, numel, a, va->shared ? 0 : numel, 0.0f, y, numel);
        g->kern->add_channel_bias(be, n, (size_t)vo->c, (size_t)vo->h * (size_t)vo->w, b,
                            ve->shared ? 0 : (size_t)vo->c, y);
        break;
    }
    case NN_SCALE_SHIFT: {
        const nn_value *ve = &g->values[op->in[1]];
        size_t c = (size_t)vo->c;
        g->kern->scale_shift(be, n, c, (size_t)vo->h * (size_t)vo->w, a, b, b + c,
                       ve->shared ? 0 : 2 * c, y);
        break;
    }
    case NN_CONCAT: {
        const nn_value *vb = &g->values[op->in[1]];
        size_t na = nn_value_numel(va), nb = nn_value_numel(vb);
        o->copy_rows(be, n, na, a, na, 0.0f, y, numel);
        o->copy_rows(be, n, nb, b, nb, 0.0f, y + na, numel);
        break;
    }
    case NN_UPSAMPLE:
        g->kern->upsample_nearest(be, n * (size_t)va->c, (size_t)va->h, (size_t)va->w,
                            (size_t)op->fh, (size_t)op->fw, a, y);
        break;
    case NN_AVG_POOL:
        g->kern->avg_pool(be, n * (size_t)va->c, (size_t)va->h, (size_t)va->w, (size_t)op->fh,
                    (size_t)op->fw, a, y);
        break;
    case NN_ATTENTION:
        attention_forward(ctx, g, op, batch);
        break;
    case NN_TRANSPOSE:
        o->transpose(be, n, (size_t)op->rows, (size_t)op->cols, a, 0.0f, y);
        break;
    }
    return LGD_OK;
}

lgd_status nn_graph_forward(lgd_context *ctx, nn_graph *g, const float *x, float t,
                            const float *cond, size_t batch, float *out)
{
    lgd_status st;
    if (g->cond_dim > 0 && !cond)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "network: the network is conditional (%lld values per row) and no "
                         "condition was given (lgd_guidance_set_condition, or the cond "
                         "argument)",
                         (long long)g->cond_dim);
    if (!g->kern) {
        const void *kern = NULL;
        if ((st = lgd_kernels_find(ctx, &lgd_nn_kernel_table, "network", &kern)))
            return st;
        g->kern = kern;
        if ((st = make_ops(ctx, g))) {
            g->kern = NULL;
            return st;
        }
    }
    st = reserve(ctx, g, batch);
    if (st)
        return st;
    const lgd_backend_ops *o = ctx->ops;
    g->tape_valid = 0;
    size_t in_numel = nn_value_numel(&g->values[g->input]);
    prof_mark t0 = { 0, 0 }, t1;
    if (g->profile)
        t0 = prof_now(ctx);
    if (o->copy(ctx->be, value_ptr(g, g->input), x, batch * in_numel * sizeof(float)))
        return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "network: copying the input failed");
    if (g->profile) {
        t1 = prof_now(ctx);
        prof_add(g, 0, NN_PROF_COPY, t0, t1, 0.0, 8.0 * (double)(batch * in_numel));
        t0 = t1;
    }
    for (size_t i = 0; i < g->n_ops; i++) {
        if ((st = run_forward_op(ctx, g, &g->ops[i], t, cond, batch)))
            return st;
        if (g->profile) {
            double flops, bytes;
            int kind = op_cost(g, &g->ops[i], batch, 0, &flops, &bytes);
            t1 = prof_now(ctx);
            prof_add(g, 0, kind, t0, t1, flops, bytes);
            t0 = t1;
        }
    }
    if (out) {
        size_t out_numel = nn_value_numel(&g->values[g->output]);
        if (o->copy(ctx->be, out, value_ptr(g, g->output), batch * out_numel * sizeof(float)))
            return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "network: copying the output failed");
        if (g->profile)
            prof_add(g, 0, NN_PROF_COPY, t0, prof_now(ctx), 0.0,
                     8.0 * (double)(batch * out_numel));
    }
    g->tape_valid = 1;
    g->tape_x = x;
    g->tape_cond = cond;
    g->tape_t = t;
    g->tape_batch = batch;
    return LGD_OK;
}

const float *nn_graph_output(const nn_graph *g)
{
    return value_ptr(g, g->output);
}

/* beta for writing the cotangent of value i, and marks it written */
static float take(nn_graph *g, int i)
{
    float beta = g->written[i] ? 1.0f : 0.0f;
    g->written[i] = 1;
    return beta;
}

static int wants(const nn_graph *g, int i)
{
    return i >= 0 && g->values[i].needs_grad;
}

static lgd_status run_backward_op(lgd_context *ctx, nn_graph *g, const nn_op *op, size_t batch)
{
    const lgd_backend_ops *o = ctx->ops;
    lgd_backend *be = ctx->be;
    const nn_value *vo = &g->values[op->out];
    size_t n = rows_of(vo, batch), numel = nn_value_numel(vo);
    const float *dy = grad_ptr(g, op->out);
    int a_i = op->in[0], b_i = op->in[1];
    const nn_value *va = a_i >= 0 ? &g->values[a_i] : NULL;
    switch (op->kind) {
    case NN_TIME_EMBED:
    case NN_COND:
        break;
    case NN_LINEAR:
        if (wants(g, a_i)) {
            size_t in = nn_value_numel(va);
            float beta = take(g, a_i);
            if (op->transposed)
                o->gemm(be, 0, 1, n, in, numel, 1.0f, dy, numel, weight_ptr(g, op->w), numel,
                        beta, grad_ptr(g, a_i), in);
            else
                o->gemm(be, 0, 0, n, in, numel, 1.0f, dy, numel, weight_ptr(g, op->w), in, beta,
                        grad_ptr(g, a_i), in);
        }
        break;
    case NN_CONV:
        if (wants(g, a_i)) {
            lgd_conv_shape s = op->conv;
            s.n = (int32_t)n;
            float beta = take(g, a_i);
            if (g->kern->conv2d_backward_data(be, &s, dy, weight_ptr(g, op->w), beta,
                                              grad_ptr(g, a_i)))
                return lgd_backend_error(ctx, LGD_ERR_OUT_OF_MEMORY,
                                         "network: convolution VJP failed on the %s backend",
                                         ctx->backend_name);
        }
        break;
    case NN_NORM:
        if (wants(g, a_i) && op->fused_act) {
            const float *stats = g->saved.data + g->batch_cap * op->soff;
            const float *dact = stats + (size_t)LGD_NN_NORM_ACT_STATS * n * (size_t)op->groups;
            const nn_value *ve = b_i >= 0 ? &g->values[b_i] : NULL;
            float beta = take(g, a_i);
            if (g->kern->group_norm_act_backward(
                    be, n, (size_t)vo->c, (size_t)vo->h * (size_t)vo->w, (size_t)op->groups,
                    value_ptr(g, a_i), ve ? value_ptr(g, b_i) : NULL,
                    ve && !ve->shared ? (size_t)vo->c : 0, weight_ptr(g, op->w),
                    weight_ptr(g, op->b), op->act, stats, dact, dy, beta, grad_ptr(g, a_i)))
                return lgd_backend_error(ctx, LGD_ERR_OUT_OF_MEMORY,
                                         "network: group norm VJP failed on the %s backend",
                                         ctx->backend_name);
        } else if (wants(g, a_i)) {
            const float *mean = g->saved.data + g->batch_cap * op->soff;
            const float *rstd = mean + n * (size_t)op->groups;
            float beta = take(g, a_i);
            g->kern->group_norm_backward(be, n, (size_t)vo->c, (size_t)vo->h * (size_t)vo->w,
                                   (size_t)op->groups, value_ptr(g, a_i), weight_ptr(g, op->w),
                                   mean, rstd, dy, beta, grad_ptr(g, a_i));
        }
        break;
    case NN_ACT:
        if (wants(g, a_i)) {
            float beta = take(g, a_i);
            g->kern->activation_backward(be, op->act, n * numel, value_ptr(g, a_i), dy, beta,
                                   grad_ptr(g, a_i));
        }
        break;
    case NN_ADD:
        /* accumulate: the layer that wrote the other operand reads dy itself */
        for (int k = 0; k < (op->accumulate ? 1 : 2); k++) {
            int i = op->in[k];
            if (wants(g, i)) {
                float beta = take(g, i);
                o->copy_rows(be, n, numel, dy, numel, beta, grad_ptr(g, i), numel);
            }
        }
        break;
    case NN_ADD_CHANNEL:
        if (wants(g, a_i)) {
            float beta = take(g, a_i);
            o->copy_rows(be, n, numel, dy, numel, beta, grad_ptr(g, a_i), numel);
        }
        break;
    case NN_SCALE_SHIFT:
        if (wants(g, a_i)) {
            const nn_value *ve = &g->values[b_i];
            size_t c = (size_t)vo->c;
            float beta = take(g, a_i);
            g->kern->scale_shift_backward(be, n, c, (size_t)vo->h * (size_t)vo->w, dy,
                                    value_ptr(g, b_i), ve->shared ? 0 : 2 * c, beta,
                                    grad_ptr(g, a_i));
        }
        break;
    case NN_CONCAT: {
        size_t na = nn_value_numel(va);
        if (wants(g, a_i)) {
            float beta = take(g, a_i);
            o->copy_rows(be, n, na, dy, numel, beta, grad_ptr(g, a_i), na);
        }
        if (wants(g, b_i)) {
            size_t nb = numel - na;
            float beta = take(g, b_i);
            o->copy_rows(be, n, nb, dy + na, numel, beta, grad_ptr(g, b_i), nb);
        }
        break;
    }
    case NN_UPSAMPLE:
        if (wants(g, a_i)) {
            float beta = take(g, a_i);
            g->kern->upsample_nearest_backward(be, n * (size_t)va->c, (size_t)va->h, (size_t)va->w,
                                         (size_t)op->fh, (size_t)op->fw, dy, beta,
                                         grad_ptr(g, a_i));
        }
        break;
    case NN_AVG_POOL:
        if (wants(g, a_i)) {
            float beta = take(g, a_i);
            g->kern->avg_pool_backward(be, n * (size_t)va->c, (size_t)va->h, (size_t)va->w,
                                 (size_t)op->fh, (size_t)op->fw, dy, beta, grad_ptr(g, a_i));
        }
        break;
    case NN_ATTENTION:
        if (wants(g, a_i))
            attention_backward(ctx, g, op, batch, take(g, a_i));
        break;
    case NN_TRANSPOSE:
        if (wants(g, a_i)) {
            float beta = take(g, a_i);
            o->transpose(be, n, (size_t)op->cols, (size_t)op->rows, dy, beta, grad_ptr(g, a_i));
        }
        break;
    }
    return LGD_OK;
}

lgd_status nn_graph_vjp(lgd_context *ctx, nn_graph *g, const float *x, float t,
                        const float *cond, size_t batch, const float *v, float *dx)
{
    lgd_status st;
    int same = g->tape_valid && g->tape_x == x && g->tape_cond == cond && g->tape_t == t &&
               g->tape_batch == batch;
    if (!same && (st = nn_graph_forward(ctx, g, x, t, cond, batch, NULL)))
        return st;
    const lgd_backend_ops *o = ctx->ops;
    size_t in_numel = nn_value_numel(&g->values[g->input]);
    if (!g->values[g->output].needs_grad) {
        /* the output does not depend on the input */
        o->fill(ctx->be, dx, batch * in_numel, 0.0f);
        return LGD_OK;
    }
    memset(g->written, 0, g->n_values);
    size_t out_numel = nn_value_numel(&g->values[g->output]);
    prof_mark t0 = { 0, 0 }, t1;
    if (g->profile)
        t0 = prof_now(ctx);
    if (o->copy(ctx->be, grad_ptr(g, g->output), v, batch * out_numel * sizeof(float)))
        return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "network: copying the cotangent failed");
    if (g->profile) {
        t1 = prof_now(ctx);
        prof_add(g, 1, NN_PROF_COPY, t0, t1, 0.0, 8.0 * (double)(batch * out_numel));
        t0 = t1;
    }
    g->written[g->output] = 1;
    for (size_t i = g->n_ops; i-- > 0;) {
        const nn_op *op = &g->ops[i];
        if (!g->values[op->out].needs_grad || !g->written[op->out])
            continue;
        if ((st = run_backward_op(ctx, g, op, batch)))
            return st;
        if (g->profile) {
            double flops, bytes;
            int kind = op_cost(g, op, batch, 1, &flops, &bytes);
            t1 = prof_now(ctx);
            prof_add(g, 1, kind, t0, t1, flops, bytes);
            t0 = t1;
        }
    }
    if (!g->written[g->input])
        o->fill(ctx->be, dx, batch * in_numel, 0.0f);
    else if (o->copy(ctx->be, dx, grad_ptr(g, g->input), batch * in_numel * sizeof(float)))
        return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "network: copying the VJP failed");
    if (g->profile)
        prof_add(g, 1, NN_PROF_COPY, t0, prof_now(ctx), 0.0, 8.0 * (double)(batch * in_numel));
    return LGD_OK;
}
