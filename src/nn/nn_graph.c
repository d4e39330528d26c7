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
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
        g->kern->group_norm(be, n, (size_t)vo->c, (size_t)vo->h * (size_t)vo->w, (size_t)op->groups,
                      op->eps, a, weight_ptr(g, op->w), weight_ptr(g, op->b), y, mean, rstd);
        break;
    }
    case NN_ACT:
        g->kern->activation(be, op->act, n * numel, a, y);
        break;
    case NN_ADD: {
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
    }
    st = reserve(ctx, g, batch);
    if (st)
        return st;
    const lgd_backend_ops *o = ctx->ops;
    g->tape_valid = 0;
    size_t in_numel = nn_value_numel(&g->values[g->input]);
    if (o->copy(ctx->be, value_ptr(g, g->input), x, batch * in_numel * sizeof(float)))
        return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "network: copying the input failed");
    for (size_t i = 0; i < g->n_ops; i++)
        if ((st = run_forward_op(ctx, g, &g->ops[i], t, cond, batch)))
            return st;
    if (out) {
        size_t out_numel = nn_value_numel(&g->values[g->output]);
        if (o->copy(ctx->be, out, value_ptr(g, g->output), batch * out_numel * sizeof(float)))
            return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "network: copying the output failed");
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
        if (wants(g, a_i)) {
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
        for (int k = 0; k < 2; k++) {
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
    if (o->copy(ctx->be, grad_ptr(g, g->output), v, batch * out_numel * sizeof(float)))
        return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "network: copying the cotangent failed");
    g->written[g->output] = 1;
    for (size_t i = g->n_ops; i-- > 0;) {
        const nn_op *op = &g->ops[i];
        if (!g->values[op->out].needs_grad || !g->written[op->out])
            continue;
        if ((st = run_backward_op(ctx, g, op, batch)))
            return st;
    }
    if (!g->written[g->input])
        o->fill(ctx->be, dx, batch * in_numel, 0.0f);
    else if (o->copy(ctx->be, dx, grad_ptr(g, g->input), batch * in_numel * sizeof(float)))
        return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "network: copying the VJP failed");
    return LGD_OK;
}
