/*
 * nn_layers.c - the builders of one layer or block each: the graph's values and
 * operations (nn_graph.h), the weight tensors each layer requests by name and shape
 * (checked against the file), and the ADM blocks composed from them (ResBlock,
 * AttentionBlock, Downsample, Upsample).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checked.h"
#include "nn/nn_builder.h"

/* ---- values and weights ---- */

int nnb_value(nn_builder *b, int32_t c, int32_t h, int32_t w, int shared, int needs_grad)
{
    if (b->st)
        return -1;
    if (c <= 0 || h <= 0 || w <= 0)
        return nnb_fail(b, LGD_ERR_FORMAT, "a layer would have an empty output (%d x %d x %d)",
                        (int)c, (int)h, (int)w);
    int64_t numel;
    if (lgd_mul3_i64(c, h, w, &numel) || numel > ((int64_t)1 << 31))
        return nnb_fail(b, LGD_ERR_FORMAT, "a layer output of %d x %d x %d is too large", (int)c,
                        (int)h, (int)w);
    int v = nn_graph_add_value(b->g, c, h, w, shared, needs_grad);
    if (v < 0)
        return nnb_fail(b, LGD_ERR_OUT_OF_MEMORY, "out of memory");
    return v;
}

nn_op *nnb_op(nn_builder *b, nn_op_kind kind, int in0, int in1, int out)
{
    if (b->st)
        return NULL;
    nn_op *o = nn_graph_add_op(b->g, kind, in0, in1, out);
    if (!o)
        nnb_fail(b, LGD_ERR_OUT_OF_MEMORY, "out of memory");
    return o;
}

/* value i; after a failure (i = -1) a read-only 1x1x1 stand-in, so that the layout code
 * can run on to its end without checking every step (nothing is built once b->st is set) */
const nn_value *nnb_val(const nn_builder *b, int i)
{
    static const nn_value failed = { 1, 1, 1, 0, 0, 0, 0, 0 };
    return i >= 0 ? &b->g->values[i] : &failed;
}

/* the new value depends on the input if any of its inputs does */
static int grad_of(const nn_builder *b, int x, int y)
{
    return (x >= 0 && nnb_val(b, x)->needs_grad) || (y >= 0 && nnb_val(b, y)->needs_grad);
}

static int shared_of(const nn_builder *b, int x, int y)
{
    return (x < 0 || nnb_val(b, x)->shared) && (y < 0 || nnb_val(b, y)->shared);
}

/* Requests tensor `name` of shape dims[0..ndim); returns its float offset in the
 * weight buffer, SIZE_MAX on error. */
static size_t weight(nn_builder *b, const char *name, int ndim, const int64_t *dims)
{
    if (b->st)
        return SIZE_MAX;
    const lgd_st_tensor *t = lgd_st_find(b->file, name);
    char want[128] = "", got[128] = "";
    for (int i = 0; i < ndim; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? ", " : "",
                 (long long)dims[i]);
    if (!t) {
        nnb_fail(b, LGD_ERR_FORMAT, "tensor %s [%s] is missing", name, want);
        return SIZE_MAX;
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == dims[i];
    if (!ok) {
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "",
                     (long long)t->shape[i]);
        nnb_fail(b, LGD_ERR_FORMAT, "tensor %s has shape [%s], the architecture needs [%s]", name,
                 got, want);
        return SIZE_MAX;
    }
    size_t idx = (size_t)(t - b->file->tensors);
    if (b->used[idx]) {
        nnb_fail(b, LGD_ERR_INTERNAL, "tensor %s requested twice", name);
        return SIZE_MAX;
    }
    b->used[idx] = 1;
    if (b->n_req == b->cap_req) {
        size_t cap = b->cap_req ? 2 * b->cap_req : 64;
        nn_weight_req *r = realloc(b->req, cap * sizeof *r);
        if (!r) {
            nnb_fail(b, LGD_ERR_OUT_OF_MEMORY, "out of memory");
            return SIZE_MAX;
        }
        b->req = r;
        b->cap_req = cap;
    }
    size_t off = b->g->n_weights;
    b->req[b->n_req].t = t;
    b->req[b->n_req].off = off;
    b->n_req++;
    if (lgd_add_size(b->g->n_weights, (size_t)t->numel, &b->g->n_weights)) {
        nnb_fail(b, LGD_ERR_FORMAT, "the weights' total size overflows");
        return SIZE_MAX;
    }
    return off;
}

void nnb_join(char *out, size_t cap, const char *prefix, const char *fmt, ...)
{
    int r = snprintf(out, cap, "%s%s", prefix, *prefix ? "." : "");
    if (r < 0 || (size_t)r >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + r, cap - (size_t)r, fmt, ap);
    va_end(ap);
}

static size_t weight_v(nn_builder *b, const char *prefix, const char *suffix, int ndim, ...)
{
    char name[256];
    nnb_join(name, sizeof name, prefix, "%s", suffix);
    int64_t dims[4];
    va_list ap;
    va_start(ap, ndim);
    for (int i = 0; i < ndim; i++)
        dims[i] = va_arg(ap, int64_t);
    va_end(ap);
    return weight(b, name, ndim, dims);
}

/* ---- layers ---- */

int nnb_linear(nn_builder *b, int x, int32_t out, const char *prefix, int bias, int transposed)
{
    if (b->st)
        return -1;
    int64_t in = (int64_t)nn_value_numel(nnb_val(b, x));
    int y = nnb_value(b, out, 1, 1, nnb_val(b, x)->shared, grad_of(b, x, -1));
    nn_op *o = nnb_op(b, NN_LINEAR, x, -1, y);
    if (!o)
        return -1;
    o->transposed = transposed;
    o->w = transposed ? weight_v(b, prefix, "weight", 2, in, (int64_t)out)
                      : weight_v(b, prefix, "weight", 2, (int64_t)out, in);
    if (bias)
        o->b = weight_v(b, prefix, "bias", 1, (int64_t)out);
    return b->st ? -1 : y;
}

/* convolution with a k x k (2-D) or k (1-D) kernel; wdims = kernel dims in the weight
 * tensor (1 for the attention's Conv1d 1x1 even on 2-D values) */
int nnb_conv(nn_builder *b, int x, int32_t cout, int32_t k, int32_t stride, int32_t pad,
             const char *prefix, int wdims, int bias)
{
    if (b->st)
        return -1;
    const nn_value *vx = nnb_val(b, x);
    lgd_conv_shape s;
    memset(&s, 0, sizeof s);
    s.c_in = vx->c;
    s.h = vx->h;
    s.w = vx->w;
    s.c_out = cout;
    int two = b->dims == 2;
    s.kh = two ? k : 1;
    s.kw = k;
    s.stride_h = two ? stride : 1;
    s.stride_w = stride;
    s.pad_h = two ? pad : 0;
    s.pad_w = pad;
    if (b->dims == 1 && vx->h != 1)
        return nnb_fail(b, LGD_ERR_INTERNAL, "1-D convolution on a 2-D value");
    if (s.h + 2 * s.pad_h < s.kh || s.w + 2 * s.pad_w < s.kw)
        return nnb_fail(b, LGD_ERR_FORMAT, "%s: kernel %d is larger than its padded input %d x %d",
                        prefix, (int)k, (int)s.h, (int)s.w);
    s.h_out = (s.h + 2 * s.pad_h - s.kh) / s.stride_h + 1;
    s.w_out = (s.w + 2 * s.pad_w - s.kw) / s.stride_w + 1;
    int y = nnb_value(b, cout, s.h_out, s.w_out, vx->shared, grad_of(b, x, -1));
    nn_op *o = nnb_op(b, NN_CONV, x, -1, y);
    if (!o)
        return -1;
    o->conv = s;
    if (wdims == 2)
        o->w = weight_v(b, prefix, "weight", 4, (int64_t)cout, (int64_t)s.c_in, (int64_t)k,
                        (int64_t)k);
    else
        o->w = weight_v(b, prefix, "weight", 3, (int64_t)cout, (int64_t)s.c_in, (int64_t)k);
    if (bias)
        o->b = weight_v(b, prefix, "bias", 1, (int64_t)cout);
    return b->st ? -1 : y;
}

int nnb_norm(nn_builder *b, int x, int32_t groups, float eps, const char *prefix)
{
    if (b->st)
        return -1;
    const nn_value *vx = nnb_val(b, x);
    if (groups <= 0 || vx->c % groups)
        return nnb_fail(b, LGD_ERR_FORMAT, "%s: %d channels do not split into %d groups", prefix,
                        (int)vx->c, (int)groups);
    int y = nnb_value(b, vx->c, vx->h, vx->w, vx->shared, grad_of(b, x, -1));
    nn_op *o = nnb_op(b, NN_NORM, x, -1, y);
    if (!o)
        return -1;
    o->groups = groups;
    o->eps = eps;
    o->scratch = 2 * (size_t)groups;
    o->w = weight_v(b, prefix, "weight", 1, (int64_t)nnb_val(b, x)->c);
    o->b = weight_v(b, prefix, "bias", 1, (int64_t)nnb_val(b, x)->c);
    return b->st ? -1 : y;
}

int nnb_activation(nn_builder *b, int x)
{
    if (b->st)
        return -1;
    const nn_value *vx = nnb_val(b, x);
    int y = nnb_value(b, vx->c, vx->h, vx->w, vx->shared, grad_of(b, x, -1));
    nn_op *o = nnb_op(b, NN_ACT, x, -1, y);
    if (!o)
        return -1;
    o->act = b->act;
    return y;
}

int nnb_add(nn_builder *b, int x, int y)
{
    if (b->st)
        return -1;
    const nn_value *vx = nnb_val(b, x), *vy = nnb_val(b, y);
    if (nn_value_numel(vx) != nn_value_numel(vy))
        return nnb_fail(b, LGD_ERR_INTERNAL, "adding values of different sizes");
    int z = nnb_value(b, vx->c, vx->h, vx->w, shared_of(b, x, y), grad_of(b, x, y));
    return nnb_op(b, NN_ADD, x, y, z) ? z : -1;
}

/* NN_ADD_CHANNEL or NN_SCALE_SHIFT: x modulated by a per-channel embedding e (which
 * carries no cotangent) */
static int modulate(nn_builder *b, nn_op_kind kind, int x, int e)
{
    if (b->st)
        return -1;
    const nn_value *vx = nnb_val(b, x);
    int z = nnb_value(b, vx->c, vx->h, vx->w, shared_of(b, x, e), grad_of(b, x, -1));
    return nnb_op(b, kind, x, e, z) ? z : -1;
}

int nnb_concat(nn_builder *b, int x, int y)
{
    if (b->st)
        return -1;
    const nn_value *vx = nnb_val(b, x), *vy = nnb_val(b, y);
    if (vx->h != vy->h || vx->w != vy->w || vx->shared != vy->shared)
        return nnb_fail(b, LGD_ERR_FORMAT, "concatenating %dx%d with %dx%d activations (spatial "
                        "sizes must be divisible by 2^(levels - 1))", (int)vx->h, (int)vx->w,
                        (int)vy->h, (int)vy->w);
    int z = nnb_value(b, vx->c + vy->c, vx->h, vx->w, vx->shared, grad_of(b, x, y));
    return nnb_op(b, NN_CONCAT, x, y, z) ? z : -1;
}

static int resample(nn_builder *b, nn_op_kind kind, int x)
{
    if (b->st)
        return -1;
    const nn_value *vx = nnb_val(b, x);
    int32_t fh = b->dims == 2 ? 2 : 1, fw = 2;
    int32_t h = vx->h, w = vx->w;
    if (kind == NN_UPSAMPLE) {
        h *= fh;
        w *= fw;
    } else {
        if (h % fh || w % fw)
            return nnb_fail(b, LGD_ERR_FORMAT, "average pooling of an odd-sized %dx%d activation",
                            (int)h, (int)w);
        h /= fh;
        w /= fw;
    }
    int y = nnb_value(b, vx->c, h, w, vx->shared, grad_of(b, x, -1));
    nn_op *o = nnb_op(b, kind, x, -1, y);
    if (!o)
        return -1;
    o->fh = fh;
    o->fw = fw;
    return y;
}

int nnb_transpose(nn_builder *b, int x, int32_t rows, int32_t cols)
{
    if (b->st)
        return -1;
    const nn_value *vx = nnb_val(b, x);
    int y = nnb_value(b, cols, 1, rows, vx->shared, grad_of(b, x, -1));
    nn_op *o = nnb_op(b, NN_TRANSPOSE, x, -1, y);
    if (!o)
        return -1;
    o->rows = rows;
    o->cols = cols;
    return y;
}

int nnb_time_embed(nn_builder *b, int32_t dim)
{
    if (dim <= 0 || dim % 2)
        return nnb_fail(b, LGD_ERR_FORMAT, "the sinusoidal embedding width %d must be even and > 0",
                        (int)dim);
    int y = nnb_value(b, dim, 1, 1, 1, 0);
    nn_op *o = nnb_op(b, NN_TIME_EMBED, -1, -1, y);
    if (!o)
        return -1;
    o->embed_dim = dim;
    return y;
}

/* sinusoidal(t, e_in) -> Linear(e_in, hidden) -> act -> Linear(hidden, hidden) */
int nnb_time_mlp(nn_builder *b, int32_t e_in, int32_t hidden, const char *prefix)
{
    char n0[160], n2[160];
    nnb_join(n0, sizeof n0, prefix, "0");
    nnb_join(n2, sizeof n2, prefix, "2");
    int e = nnb_time_embed(b, e_in);
    e = nnb_linear(b, e, hidden, n0, 1, 0);
    e = nnb_activation(b, e);
    return nnb_linear(b, e, hidden, n2, 1, 0);
}

/* ADM ResBlock; emb_act = act(emb) */
int nnb_resblock(nn_builder *b, const nn_unet_cfg *u, int x, int emb_act, int32_t cout,
                 const char *prefix)
{
    if (b->st)
        return -1;
    char name[192];
    int32_t cin = nnb_val(b, x)->c, k = u->kernel;
    nnb_join(name, sizeof name, prefix, "in_layers.0");
    int h = nnb_norm(b, x, u->groups, 1e-5f, name);
    h = nnb_activation(b, h);
    nnb_join(name, sizeof name, prefix, "in_layers.2");
    h = nnb_conv(b, h, cout, k, 1, k / 2, name, b->dims, 1);
    nnb_join(name, sizeof name, prefix, "emb_layers.1");
    int e = nnb_linear(b, emb_act, u->scale_shift ? 2 * cout : cout, name, 1, 0);
    nnb_join(name, sizeof name, prefix, "out_layers.0");
    if (u->scale_shift) {
        h = nnb_norm(b, h, u->groups, 1e-5f, name);
        h = modulate(b, NN_SCALE_SHIFT, h, e);
    } else {
        h = modulate(b, NN_ADD_CHANNEL, h, e);
        h = nnb_norm(b, h, u->groups, 1e-5f, name);
    }
    h = nnb_activation(b, h);
    nnb_join(name, sizeof name, prefix, "out_layers.3");
    h = nnb_conv(b, h, cout, k, 1, k / 2, name, b->dims, 1);
    int skip = x;
    if (cin != cout) {
        nnb_join(name, sizeof name, prefix, "skip_connection");
        skip = nnb_conv(b, x, cout, 1, 1, 0, name, b->dims, 1);
    }
    return nnb_add(b, skip, h);
}

/* ADM AttentionBlock (legacy head order) */
int nnb_attention(nn_builder *b, const nn_unet_cfg *u, int x, const char *prefix)
{
    if (b->st)
        return -1;
    char name[192];
    const nn_value *vx = nnb_val(b, x);
    int32_t C = vx->c, hh = vx->h, ww = vx->w;
    if (u->heads <= 0 || C % u->heads)
        return nnb_fail(b, LGD_ERR_FORMAT, "%s: %d channels do not split into %d heads", prefix,
                        (int)C, (int)u->heads);
    nnb_join(name, sizeof name, prefix, "norm");
    int h = nnb_norm(b, x, u->groups, 1e-5f, name);
    nnb_join(name, sizeof name, prefix, "qkv");
    int qkv = nnb_conv(b, h, 3 * C, 1, 1, 0, name, 1, 1);
    if (b->st)
        return -1;
    int a = nnb_value(b, C, hh, ww, nnb_val(b, qkv)->shared, grad_of(b, qkv, -1));
    nn_op *o = nnb_op(b, NN_ATTENTION, qkv, -1, a);
    if (!o)
        return -1;
    size_t S = (size_t)hh * (size_t)ww, scratch;
    if (lgd_mul3_size((size_t)u->heads, S, S, &scratch) || scratch > ((size_t)1 << 40))
        return nnb_fail(b, LGD_ERR_FORMAT, "%s: attention over %zu positions with %d heads is "
                        "too large", prefix, S, (int)u->heads);
    o->heads = u->heads;
    o->scratch = scratch;
    nnb_join(name, sizeof name, prefix, "proj_out");
    int p = nnb_conv(b, a, C, 1, 1, 0, name, 1, 1);
    return nnb_add(b, x, p);
}

int nnb_downsample(nn_builder *b, const nn_unet_cfg *u, int x, const char *prefix)
{
    if (u->conv_resample) {
        char name[192];
        nnb_join(name, sizeof name, prefix, "op");
        return nnb_conv(b, x, nnb_val(b, x)->c, 3, 2, 1, name, b->dims, 1);
    }
    return resample(b, NN_AVG_POOL, x);
}

int nnb_upsample(nn_builder *b, const nn_unet_cfg *u, int x, const char *prefix)
{
    int y = resample(b, NN_UPSAMPLE, x);
    if (u->conv_resample && y >= 0) {
        char name[192];
        nnb_join(name, sizeof name, prefix, "conv");
        y = nnb_conv(b, y, nnb_val(b, y)->c, u->kernel, 1, u->kernel / 2, name, b->dims, 1);
    }
    return y;
}
