/*
 * nn_build.c - builds a network graph from a parsed network file: reads the
 * architecture and its hyperparameters from the metadata, lays out the layers
 * (docs/network-format.md), checks every weight tensor against the shape the
 * architecture expects, refuses tensors it does not expect, and loads the weights
 * into one backend buffer.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_build.h"

#define MAX_LEVELS 8

typedef struct weight_req {
    const lgd_st_tensor *t;
    size_t off;
} weight_req;

typedef struct builder {
    lgd_context *ctx;
    nn_graph *g;
    const lgd_st_file *file;
    unsigned char *used; /* per file tensor */
    weight_req *req;
    size_t n_req, cap_req;
    lgd_activation act;
    int dims; /* spatial dims of the layers: 1 or 2 */
    lgd_status st;
} builder;

static int fail(builder *b, lgd_status st, const char *fmt, ...) LGD_PRINTF(3, 4);
static int fail(builder *b, lgd_status st, const char *fmt, ...)
{
    if (b->st)
        return -1;
    char msg[LGD_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    b->st = lgd_error(b->ctx, st, "network file: %s", msg);
    return -1;
}

/* ---- metadata ---- */

static const char *meta(const builder *b, const char *key)
{
    return lgd_st_meta_get(b->file, key);
}

static int parse_int(const char *s, long long *out)
{
    if (!s || !*s)
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* An integer key in [lo, hi]; def when absent and def_ok. */
static int32_t meta_int(builder *b, const char *key, int def_ok, int32_t def, int32_t lo,
                        int32_t hi)
{
    const char *s = meta(b, key);
    if (!s) {
        if (def_ok)
            return def;
        fail(b, LGD_ERR_FORMAT, "metadata key %s is required", key);
        return def;
    }
    long long v;
    if (!strcmp(s, "true") || !strcmp(s, "True"))
        v = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "False"))
        v = 0;
    else if (parse_int(s, &v)) {
        fail(b, LGD_ERR_FORMAT, "metadata %s = \"%.40s\" is not an integer", key, s);
        return def;
    }
    if (v < lo || v > hi) {
        fail(b, LGD_ERR_FORMAT, "metadata %s = %lld is out of range [%d, %d]", key, v, (int)lo,
             (int)hi);
        return def;
    }
    return (int32_t)v;
}

static float meta_float(builder *b, const char *key, float def, float lo, float hi)
{
    const char *s = meta(b, key);
    if (!s)
        return def;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= lo && v <= hi)) {
        fail(b, LGD_ERR_FORMAT, "metadata %s = \"%.40s\" is not a number in [%g, %g]", key, s,
             (double)lo, (double)hi);
        return def;
    }
    return (float)v;
}

/* A comma-separated list of integers in [lo, hi]; returns the count (0 for "") */
static int meta_list(builder *b, const char *key, int32_t *out, int max, int32_t lo, int32_t hi)
{
    const char *s = meta(b, key);
    if (!s) {
        fail(b, LGD_ERR_FORMAT, "metadata key %s is required", key);
        return 0;
    }
    int n = 0;
    const char *p = s;
    while (*p == ' ')
        p++;
    if (!*p)
        return 0;
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < lo || v > hi || n == max) {
            fail(b, LGD_ERR_FORMAT, "metadata %s = \"%.60s\" is not a list of at most %d "
                 "integers in [%d, %d]", key, s, max, (int)lo, (int)hi);
            return 0;
        }
        out[n++] = (int32_t)v;
        p = end;
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (*p != ',') {
            fail(b, LGD_ERR_FORMAT, "metadata %s = \"%.60s\" is not a comma-separated list",
                 key, s);
            return 0;
        }
        p++;
    }
    return n;
}

/* ---- values and weights ---- */

static int value(builder *b, int32_t c, int32_t h, int32_t w, int shared, int needs_grad)
{
    if (b->st)
        return -1;
    if (c <= 0 || h <= 0 || w <= 0)
        return fail(b, LGD_ERR_FORMAT, "a layer would have an empty output (%d x %d x %d)",
                    (int)c, (int)h, (int)w);
    if ((int64_t)c * h * w > ((int64_t)1 << 31))
        return fail(b, LGD_ERR_FORMAT, "a layer output of %d x %d x %d is too large", (int)c,
                    (int)h, (int)w);
    int v = nn_graph_add_value(b->g, c, h, w, shared, needs_grad);
    if (v < 0)
        return fail(b, LGD_ERR_OUT_OF_MEMORY, "out of memory");
    return v;
}

static nn_op *op(builder *b, nn_op_kind kind, int in0, int in1, int out)
{
    if (b->st)
        return NULL;
    nn_op *o = nn_graph_add_op(b->g, kind, in0, in1, out);
    if (!o)
        fail(b, LGD_ERR_OUT_OF_MEMORY, "out of memory");
    return o;
}

/* value i; after a failure (i = -1) a read-only 1x1x1 stand-in, so that the layout code
 * can run on to its end without checking every step (nothing is built once b->st is set) */
static const nn_value *val(const builder *b, int i)
{
    static const nn_value failed = { 1, 1, 1, 0, 0, 0, 0 };
    return i >= 0 ? &b->g->values[i] : &failed;
}

/* the new value depends on the input if any of its inputs does */
static int grad_of(const builder *b, int x, int y)
{
    return (x >= 0 && val(b, x)->needs_grad) || (y >= 0 && val(b, y)->needs_grad);
}

static int shared_of(const builder *b, int x, int y)
{
    return (x < 0 || val(b, x)->shared) && (y < 0 || val(b, y)->shared);
}

/* Requests tensor `name` of shape dims[0..ndim); returns its float offset in the
 * weight buffer, SIZE_MAX on error. */
static size_t weight(builder *b, const char *name, int ndim, const int64_t *dims)
{
    if (b->st)
        return SIZE_MAX;
    const lgd_st_tensor *t = lgd_st_find(b->file, name);
    char want[128] = "", got[128] = "";
    for (int i = 0; i < ndim; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? ", " : "",
                 (long long)dims[i]);
    if (!t) {
        fail(b, LGD_ERR_FORMAT, "tensor %s [%s] is missing", name, want);
        return SIZE_MAX;
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == dims[i];
    if (!ok) {
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "",
                     (long long)t->shape[i]);
        fail(b, LGD_ERR_FORMAT, "tensor %s has shape [%s], the architecture needs [%s]", name,
             got, want);
        return SIZE_MAX;
    }
    size_t idx = (size_t)(t - b->file->tensors);
    if (b->used[idx]) {
        fail(b, LGD_ERR_INTERNAL, "tensor %s requested twice", name);
        return SIZE_MAX;
    }
    b->used[idx] = 1;
    if (b->n_req == b->cap_req) {
        size_t cap = b->cap_req ? 2 * b->cap_req : 64;
        weight_req *r = realloc(b->req, cap * sizeof *r);
        if (!r) {
            fail(b, LGD_ERR_OUT_OF_MEMORY, "out of memory");
            return SIZE_MAX;
        }
        b->req = r;
        b->cap_req = cap;
    }
    size_t off = b->g->n_weights;
    b->req[b->n_req].t = t;
    b->req[b->n_req].off = off;
    b->n_req++;
    b->g->n_weights += (size_t)t->numel;
    return off;
}

static void join(char *out, size_t cap, const char *prefix, const char *fmt, ...)
    LGD_PRINTF(4, 5);
static void join(char *out, size_t cap, const char *prefix, const char *fmt, ...)
{
    int r = snprintf(out, cap, "%s%s", prefix, *prefix ? "." : "");
    if (r < 0 || (size_t)r >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + r, cap - (size_t)r, fmt, ap);
    va_end(ap);
}

static size_t weight_v(builder *b, const char *prefix, const char *suffix, int ndim, ...)
{
    char name[256];
    join(name, sizeof name, prefix, "%s", suffix);
    int64_t dims[4];
    va_list ap;
    va_start(ap, ndim);
    for (int i = 0; i < ndim; i++)
        dims[i] = va_arg(ap, int64_t);
    va_end(ap);
    return weight(b, name, ndim, dims);
}

/* ---- layers ---- */

static int linear(builder *b, int x, int32_t out, const char *prefix, int bias, int transposed)
{
    if (b->st)
        return -1;
    int64_t in = (int64_t)nn_value_numel(val(b, x));
    int y = value(b, out, 1, 1, val(b, x)->shared, grad_of(b, x, -1));
    nn_op *o = op(b, NN_LINEAR, x, -1, y);
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
static int conv(builder *b, int x, int32_t cout, int32_t k, int32_t stride, int32_t pad,
                const char *prefix, int wdims, int bias)
{
    if (b->st)
        return -1;
    const nn_value *vx = val(b, x);
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
        return fail(b, LGD_ERR_INTERNAL, "1-D convolution on a 2-D value");
    if (s.h + 2 * s.pad_h < s.kh || s.w + 2 * s.pad_w < s.kw)
        return fail(b, LGD_ERR_FORMAT, "%s: kernel %d is larger than its padded input %d x %d",
                    prefix, (int)k, (int)s.h, (int)s.w);
    s.h_out = (s.h + 2 * s.pad_h - s.kh) / s.stride_h + 1;
    s.w_out = (s.w + 2 * s.pad_w - s.kw) / s.stride_w + 1;
    int y = value(b, cout, s.h_out, s.w_out, vx->shared, grad_of(b, x, -1));
    nn_op *o = op(b, NN_CONV, x, -1, y);
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

static int norm(builder *b, int x, int32_t groups, float eps, const char *prefix)
{
    if (b->st)
        return -1;
    const nn_value *vx = val(b, x);
    if (groups <= 0 || vx->c % groups)
        return fail(b, LGD_ERR_FORMAT, "%s: %d channels do not split into %d groups", prefix,
                    (int)vx->c, (int)groups);
    int y = value(b, vx->c, vx->h, vx->w, vx->shared, grad_of(b, x, -1));
    nn_op *o = op(b, NN_NORM, x, -1, y);
    if (!o)
        return -1;
    o->groups = groups;
    o->eps = eps;
    o->scratch = 2 * (size_t)groups;
    o->w = weight_v(b, prefix, "weight", 1, (int64_t)val(b, x)->c);
    o->b = weight_v(b, prefix, "bias", 1, (int64_t)val(b, x)->c);
    return b->st ? -1 : y;
}

static int activation(builder *b, int x)
{
    if (b->st)
        return -1;
    const nn_value *vx = val(b, x);
    int y = value(b, vx->c, vx->h, vx->w, vx->shared, grad_of(b, x, -1));
    nn_op *o = op(b, NN_ACT, x, -1, y);
    if (!o)
        return -1;
    o->act = b->act;
    return y;
}

static int add(builder *b, int x, int y)
{
    if (b->st)
        return -1;
    const nn_value *vx = val(b, x), *vy = val(b, y);
    if (nn_value_numel(vx) != nn_value_numel(vy))
        return fail(b, LGD_ERR_INTERNAL, "adding values of different sizes");
    int z = value(b, vx->c, vx->h, vx->w, shared_of(b, x, y), grad_of(b, x, y));
    return op(b, NN_ADD, x, y, z) ? z : -1;
}

/* NN_ADD_CHANNEL or NN_SCALE_SHIFT: x modulated by a per-channel embedding e (which
 * carries no cotangent) */
static int modulate(builder *b, nn_op_kind kind, int x, int e)
{
    if (b->st)
        return -1;
    const nn_value *vx = val(b, x);
    int z = value(b, vx->c, vx->h, vx->w, shared_of(b, x, e), grad_of(b, x, -1));
    return op(b, kind, x, e, z) ? z : -1;
}

static int concat(builder *b, int x, int y)
{
    if (b->st)
        return -1;
    const nn_value *vx = val(b, x), *vy = val(b, y);
    if (vx->h != vy->h || vx->w != vy->w || vx->shared != vy->shared)
        return fail(b, LGD_ERR_FORMAT, "concatenating %dx%d with %dx%d activations (spatial "
                    "sizes must be divisible by 2^(levels - 1))", (int)vx->h, (int)vx->w,
                    (int)vy->h, (int)vy->w);
    int z = value(b, vx->c + vy->c, vx->h, vx->w, vx->shared, grad_of(b, x, y));
    return op(b, NN_CONCAT, x, y, z) ? z : -1;
}

static int resample(builder *b, nn_op_kind kind, int x)
{
    if (b->st)
        return -1;
    const nn_value *vx = val(b, x);
    int32_t fh = b->dims == 2 ? 2 : 1, fw = 2;
    int32_t h = vx->h, w = vx->w;
    if (kind == NN_UPSAMPLE) {
        h *= fh;
        w *= fw;
    } else {
        if (h % fh || w % fw)
            return fail(b, LGD_ERR_FORMAT, "average pooling of an odd-sized %dx%d activation",
                        (int)h, (int)w);
        h /= fh;
        w /= fw;
    }
    int y = value(b, vx->c, h, w, vx->shared, grad_of(b, x, -1));
    nn_op *o = op(b, kind, x, -1, y);
    if (!o)
        return -1;
    o->fh = fh;
    o->fw = fw;
    return y;
}

static int transpose(builder *b, int x, int32_t rows, int32_t cols)
{
    if (b->st)
        return -1;
    const nn_value *vx = val(b, x);
    int y = value(b, cols, 1, rows, vx->shared, grad_of(b, x, -1));
    nn_op *o = op(b, NN_TRANSPOSE, x, -1, y);
    if (!o)
        return -1;
    o->rows = rows;
    o->cols = cols;
    return y;
}

static int time_embed(builder *b, int32_t dim)
{
    if (dim <= 0 || dim % 2)
        return fail(b, LGD_ERR_FORMAT, "the sinusoidal embedding width %d must be even and > 0",
                    (int)dim);
    int y = value(b, dim, 1, 1, 1, 0);
    nn_op *o = op(b, NN_TIME_EMBED, -1, -1, y);
    if (!o)
        return -1;
    o->embed_dim = dim;
    return y;
}

/* sinusoidal(t, e_in) -> Linear(e_in, hidden) -> act -> Linear(hidden, hidden) */
static int time_mlp(builder *b, int32_t e_in, int32_t hidden, const char *prefix)
{
    char n0[160], n2[160];
    join(n0, sizeof n0, prefix, "0");
    join(n2, sizeof n2, prefix, "2");
    int e = time_embed(b, e_in);
    e = linear(b, e, hidden, n0, 1, 0);
    e = activation(b, e);
    return linear(b, e, hidden, n2, 1, 0);
}

typedef struct unet_cfg {
    int32_t groups, kernel, heads, scale_shift, conv_resample;
} unet_cfg;

/* ADM ResBlock; emb_act = act(emb) */
static int resblock(builder *b, const unet_cfg *u, int x, int emb_act, int32_t cout,
                    const char *prefix)
{
    if (b->st)
        return -1;
    char name[192];
    int32_t cin = val(b, x)->c, k = u->kernel;
    join(name, sizeof name, prefix, "in_layers.0");
    int h = norm(b, x, u->groups, 1e-5f, name);
    h = activation(b, h);
    join(name, sizeof name, prefix, "in_layers.2");
    h = conv(b, h, cout, k, 1, k / 2, name, b->dims, 1);
    join(name, sizeof name, prefix, "emb_layers.1");
    int e = linear(b, emb_act, u->scale_shift ? 2 * cout : cout, name, 1, 0);
    join(name, sizeof name, prefix, "out_layers.0");
    if (u->scale_shift) {
        h = norm(b, h, u->groups, 1e-5f, name);
        h = modulate(b, NN_SCALE_SHIFT, h, e);
    } else {
        h = modulate(b, NN_ADD_CHANNEL, h, e);
        h = norm(b, h, u->groups, 1e-5f, name);
    }
    h = activation(b, h);
    join(name, sizeof name, prefix, "out_layers.3");
    h = conv(b, h, cout, k, 1, k / 2, name, b->dims, 1);
    int skip = x;
    if (cin != cout) {
        join(name, sizeof name, prefix, "skip_connection");
        skip = conv(b, x, cout, 1, 1, 0, name, b->dims, 1);
    }
    return add(b, skip, h);
}

/* ADM AttentionBlock (legacy head order) */
static int attention(builder *b, const unet_cfg *u, int x, const char *prefix)
{
    if (b->st)
        return -1;
    char name[192];
    const nn_value *vx = val(b, x);
    int32_t C = vx->c, hh = vx->h, ww = vx->w;
    if (u->heads <= 0 || C % u->heads)
        return fail(b, LGD_ERR_FORMAT, "%s: %d channels do not split into %d heads", prefix,
                    (int)C, (int)u->heads);
    join(name, sizeof name, prefix, "norm");
    int h = norm(b, x, u->groups, 1e-5f, name);
    join(name, sizeof name, prefix, "qkv");
    int qkv = conv(b, h, 3 * C, 1, 1, 0, name, 1, 1);
    if (b->st)
        return -1;
    int a = value(b, C, hh, ww, val(b, qkv)->shared, grad_of(b, qkv, -1));
    nn_op *o = op(b, NN_ATTENTION, qkv, -1, a);
    if (!o)
        return -1;
    size_t S = (size_t)hh * (size_t)ww;
    o->heads = u->heads;
    o->scratch = (size_t)u->heads * S * S;
    join(name, sizeof name, prefix, "proj_out");
    int p = conv(b, a, C, 1, 1, 0, name, 1, 1);
    return add(b, x, p);
}

static int downsample(builder *b, const unet_cfg *u, int x, const char *prefix)
{
    if (u->conv_resample) {
        char name[192];
        join(name, sizeof name, prefix, "op");
        return conv(b, x, val(b, x)->c, 3, 2, 1, name, b->dims, 1);
    }
    return resample(b, NN_AVG_POOL, x);
}

static int upsample(builder *b, const unet_cfg *u, int x, const char *prefix)
{
    int y = resample(b, NN_UPSAMPLE, x);
    if (u->conv_resample && y >= 0) {
        char name[192];
        join(name, sizeof name, prefix, "conv");
        y = conv(b, y, val(b, y)->c, u->kernel, 1, u->kernel / 2, name, b->dims, 1);
    }
    return y;
}

/* ---- architectures ---- */

static int build_mlp(builder *b, int64_t *dim)
{
    int32_t D = meta_int(b, "lgd.dim", 0, 0, 1, 1 << 24);
    int32_t H = meta_int(b, "lgd.hidden", 0, 0, 1, 1 << 16);
    int32_t L = meta_int(b, "lgd.depth", 0, 0, 0, 1024);
    int32_t E = meta_int(b, "lgd.time_embed_dim", 0, 0, 2, 1 << 16);
    int32_t K = meta_int(b, "lgd.cond_dim", 1, 0, 0, 1 << 20);
    if (b->st)
        return -1;
    b->dims = 1;
    *dim = D;
    b->g->cond_dim = K;
    int x = value(b, D, 1, 1, 0, 1);
    b->g->input = x;
    int temb = time_mlp(b, E, H, "time_embed");
    int h = linear(b, x, H, "input", 1, 0);
    h = add(b, h, temb);
    if (K > 0) {
        int c = value(b, K, 1, 1, 0, 0);
        if (!op(b, NN_COND, -1, -1, c))
            return -1;
        h = add(b, h, linear(b, c, H, "cond_proj", 0, 0));
    }
    for (int32_t i = 0; i < L && !b->st; i++) {
        char p[64], n[96];
        snprintf(p, sizeof p, "blocks.%d", (int)i);
        join(n, sizeof n, p, "norm");
        int r = norm(b, h, 1, 1e-5f, n);
        r = activation(b, r);
        join(n, sizeof n, p, "fc1");
        r = linear(b, r, H, n, 1, 0);
        r = activation(b, r);
        join(n, sizeof n, p, "fc2");
        r = linear(b, r, H, n, 1, 0);
        h = add(b, h, r);
    }
    h = norm(b, h, 1, 1e-5f, "out_norm");
    h = activation(b, h);
    return linear(b, h, D, "output", 1, 0);
}

static int build_unet(builder *b, int temporal, int64_t *dim)
{
    unet_cfg u;
    int32_t in_ch = meta_int(b, "lgd.in_channels", 0, 0, 1, 1 << 16);
    int32_t out_ch = meta_int(b, "lgd.out_channels", 0, 0, 1, 1 << 16);
    int32_t C0 = meta_int(b, "lgd.model_channels", 0, 0, 1, 1 << 16);
    int32_t R = meta_int(b, "lgd.num_res_blocks", 0, 0, 1, 64);
    u.heads = meta_int(b, "lgd.num_heads", 1, 1, 1, 1024);
    u.groups = meta_int(b, "lgd.num_groups", 1, 32, 1, 1 << 16);
    int32_t classes = meta_int(b, "lgd.num_classes", 1, 0, 0, 1 << 20);
    u.conv_resample = meta_int(b, "lgd.conv_resample", 1, 1, 0, 1);
    u.scale_shift = meta_int(b, "lgd.use_scale_shift_norm", 1, 0, 0, 1);
    u.kernel = meta_int(b, "lgd.kernel_size", 1, temporal ? 5 : 3, 1, 31);
    int32_t E = meta_int(b, "lgd.time_embed_dim", 1, 4 * C0, 1, 1 << 18);
    int32_t side = temporal ? meta_int(b, "lgd.horizon", 0, 0, 1, 1 << 20)
                            : meta_int(b, "lgd.image_size", 0, 0, 1, 1 << 14);
    int32_t mult[MAX_LEVELS], att[MAX_LEVELS];
    int levels = meta_list(b, "lgd.channel_mult", mult, MAX_LEVELS, 1, 64);
    int n_att = meta_list(b, "lgd.attention_levels", att, MAX_LEVELS, 0, MAX_LEVELS - 1);
    if (b->st)
        return -1;
    if (levels == 0)
        return fail(b, LGD_ERR_FORMAT, "lgd.channel_mult is empty");
    if (u.kernel % 2 == 0)
        return fail(b, LGD_ERR_FORMAT, "lgd.kernel_size = %d must be odd", (int)u.kernel);
    if (side % (1 << (levels - 1)))
        return fail(b, LGD_ERR_FORMAT, "the %s %d is not divisible by 2^(levels - 1) = %d",
                    temporal ? "horizon" : "image size", (int)side, 1 << (levels - 1));
    int has_att[MAX_LEVELS] = { 0 };
    for (int i = 0; i < n_att; i++) {
        if (att[i] >= levels)
            return fail(b, LGD_ERR_FORMAT, "lgd.attention_levels names level %d of %d",
                        (int)att[i], levels);
        has_att[att[i]] = 1;
    }
    b->dims = temporal ? 1 : 2;
    b->g->cond_dim = classes;
    int x, h;
    if (temporal) {
        *dim = (int64_t)side * in_ch;
        x = value(b, side, 1, in_ch, 0, 1);
        h = transpose(b, x, side, in_ch); /* [T][C] -> [C][T] */
    } else {
        *dim = (int64_t)in_ch * side * side;
        x = value(b, in_ch, side, side, 0, 1);
        h = x;
    }
    b->g->input = x;
    int emb = time_mlp(b, C0, E, "time_embed");
    if (classes > 0) {
        int c = value(b, classes, 1, 1, 0, 0);
        if (!op(b, NN_COND, -1, -1, c))
            return -1;
        emb = add(b, emb, linear(b, c, E, "label_emb", 0, 1));
    }
    int emb_act = activation(b, emb);
    /* guided diffusion: the first conv gives channel_mult[0] * C0 channels */
    h = conv(b, h, mult[0] * C0, u.kernel, 1, u.kernel / 2, "input_blocks.0.0", b->dims, 1);
    int hs[MAX_LEVELS * 66];
    int n_hs = 0, block = 1;
    hs[n_hs++] = h;
    char p[96], q[128];
    for (int level = 0; level < levels && !b->st; level++) {
        for (int32_t r = 0; r < R && !b->st; r++) {
            snprintf(p, sizeof p, "input_blocks.%d", block++);
            join(q, sizeof q, p, "0");
            h = resblock(b, &u, h, emb_act, mult[level] * C0, q);
            if (has_att[level]) {
                join(q, sizeof q, p, "1");
                h = attention(b, &u, h, q);
            }
            hs[n_hs++] = h;
        }
        if (level != levels - 1) {
            snprintf(p, sizeof p, "input_blocks.%d", block++);
            join(q, sizeof q, p, "0");
            h = downsample(b, &u, h, q);
            hs[n_hs++] = h;
        }
    }
    h = resblock(b, &u, h, emb_act, val(b, h)->c, "middle_block.0");
    h = attention(b, &u, h, "middle_block.1");
    h = resblock(b, &u, h, emb_act, val(b, h)->c, "middle_block.2");
    block = 0;
    for (int level = levels - 1; level >= 0 && !b->st; level--) {
        for (int32_t r = 0; r <= R && !b->st; r++) {
            snprintf(p, sizeof p, "output_blocks.%d", block++);
            h = concat(b, h, hs[--n_hs]);
            join(q, sizeof q, p, "0");
            h = resblock(b, &u, h, emb_act, mult[level] * C0, q);
            int sub = 1;
            if (has_att[level]) {
                join(q, sizeof q, p, "%d", sub++);
                h = attention(b, &u, h, q);
            }
            if (level > 0 && r == R) {
                join(q, sizeof q, p, "%d", sub++);
                h = upsample(b, &u, h, q);
            }
        }
    }
    h = norm(b, h, u.groups, 1e-5f, "out.0");
    h = activation(b, h);
    h = conv(b, h, out_ch, u.kernel, 1, u.kernel / 2, "out.2", b->dims, 1);
    if (temporal)
        h = transpose(b, h, out_ch, side); /* [C][T] -> [T][C] */
    return h;
}

/* lgd.input_shape "C,H,W" | "C,T" | "F" */
static int layer_input(builder *b, int *out_x)
{
    int32_t s[3];
    int n = meta_list(b, "lgd.input_shape", s, 3, 1, 1 << 24);
    if (b->st)
        return -1;
    if (n == 0)
        return fail(b, LGD_ERR_FORMAT, "lgd.input_shape is empty");
    b->dims = n == 3 ? 2 : 1;
    *out_x = n == 3 ? value(b, s[0], s[1], s[2], 0, 1)
                    : n == 2 ? value(b, s[0], 1, s[1], 0, 1) : value(b, s[0], 1, 1, 0, 1);
    return n;
}

static int build_layer(builder *b)
{
    const char *kind = meta(b, "lgd.layer");
    if (!kind)
        return fail(b, LGD_ERR_FORMAT, "metadata key lgd.layer is required");
    int x = -1;
    int rank = layer_input(b, &x);
    if (rank < 0)
        return -1;
    b->g->input = x;
    const nn_value *vx = val(b, x);
    int32_t C = vx->c;
    unet_cfg u;
    u.groups = meta_int(b, "lgd.num_groups", 1, 1, 1, 1 << 16);
    u.heads = meta_int(b, "lgd.num_heads", 1, 1, 1, 1024);
    u.kernel = meta_int(b, "lgd.kernel_size", 1, 3, 1, 31);
    u.conv_resample = meta_int(b, "lgd.conv_resample", 1, 1, 0, 1);
    u.scale_shift = meta_int(b, "lgd.use_scale_shift_norm", 1, 0, 0, 1);
    float eps = meta_float(b, "lgd.eps", 1e-5f, 0.0f, 1.0f);
    if (b->st)
        return -1;
    if (!strcmp(kind, "linear")) {
        int32_t out = meta_int(b, "lgd.out_features", 0, 0, 1, 1 << 24);
        int bias = meta_int(b, "lgd.bias", 1, 1, 0, 1);
        return linear(b, x, out, "", bias, 0);
    }
    if (!strcmp(kind, "conv1d") || !strcmp(kind, "conv2d")) {
        int want = !strcmp(kind, "conv2d") ? 3 : 2;
        if (rank != want)
            return fail(b, LGD_ERR_FORMAT, "%s needs a %s lgd.input_shape", kind,
                        want == 3 ? "C,H,W" : "C,T");
        int32_t out = meta_int(b, "lgd.out_channels", 0, 0, 1, 1 << 16);
        int32_t k = meta_int(b, "lgd.kernel_size", 0, 0, 1, 31);
        int32_t stride = meta_int(b, "lgd.stride", 1, 1, 1, 16);
        int32_t pad = meta_int(b, "lgd.padding", 1, 0, 0, 15);
        int bias = meta_int(b, "lgd.bias", 1, 1, 0, 1);
        return conv(b, x, out, k, stride, pad, "", b->dims, bias);
    }
    if (!strcmp(kind, "group_norm"))
        return norm(b, x, u.groups, eps, "");
    if (!strcmp(kind, "layer_norm"))
        return norm(b, x, 1, eps, "");
    if (!strcmp(kind, "silu") || !strcmp(kind, "gelu")) {
        b->act = kind[0] == 's' ? LGD_ACT_SILU : LGD_ACT_GELU;
        return activation(b, x);
    }
    if (!strcmp(kind, "attention"))
        return attention(b, &u, x, "");
    if (!strcmp(kind, "resblock")) {
        int32_t out = meta_int(b, "lgd.out_channels", 0, 0, 1, 1 << 16);
        int32_t E = meta_int(b, "lgd.time_embed_dim", 0, 0, 2, 1 << 16);
        if (b->st)
            return -1;
        int emb_act = activation(b, time_embed(b, E));
        return resblock(b, &u, x, emb_act, out, "");
    }
    if (!strcmp(kind, "upsample"))
        return upsample(b, &u, x, "");
    if (!strcmp(kind, "downsample"))
        return downsample(b, &u, x, "");
    if (!strcmp(kind, "concat")) {
        b->act = LGD_ACT_SILU;
        return concat(b, x, activation(b, x));
    }
    if (!strcmp(kind, "time_embedding")) {
        int32_t E = meta_int(b, "lgd.time_embed_dim", 0, 0, 2, 1 << 16);
        if (b->st)
            return -1;
        return add(b, x, time_mlp(b, E, C, "time_embed"));
    }
    return fail(b, LGD_ERR_FORMAT, "unknown lgd.layer \"%.40s\"", kind);
}

lgd_status nn_build(lgd_context *ctx, const lgd_st_file *file, nn_graph *g, int64_t *out_dim,
                    int64_t *out_out_dim)
{
    builder b;
    memset(&b, 0, sizeof b);
    b.ctx = ctx;
    b.g = g;
    b.file = file;
    b.act = LGD_ACT_SILU;
    memset(g, 0, sizeof *g);
    g->input = g->output = -1;
    b.used = calloc(file->n_tensors ? file->n_tensors : 1, 1);
    if (!b.used)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "network file: out of memory");

    const char *format = meta(&b, "lgd.format");
    const char *arch = meta(&b, "lgd.architecture");
    const char *act = meta(&b, "lgd.act");
    int64_t dim = 0;
    int out = -1;
    if (!format || strcmp(format, "1"))
        fail(&b, LGD_ERR_FORMAT, "metadata lgd.format = %s%.20s%s (this liblgd reads format 1)",
             format ? "\"" : "", format ? format : "(missing)", format ? "\"" : "");
    else if (!arch)
        fail(&b, LGD_ERR_FORMAT, "metadata key lgd.architecture is required");
    else if (act && strcmp(act, "silu") && strcmp(act, "gelu"))
        fail(&b, LGD_ERR_FORMAT, "unknown lgd.act \"%.20s\" (silu or gelu)", act);
    else {
        if (act && !strcmp(act, "gelu"))
            b.act = LGD_ACT_GELU;
        if (!strcmp(arch, "mlp"))
            out = build_mlp(&b, &dim);
        else if (!strcmp(arch, "unet"))
            out = build_unet(&b, 0, &dim);
        else if (!strcmp(arch, "temporal_unet"))
            out = build_unet(&b, 1, &dim);
        else if (!strcmp(arch, "layer")) {
            out = build_layer(&b);
            if (!b.st)
                dim = (int64_t)nn_value_numel(&g->values[g->input]);
        } else
            fail(&b, LGD_ERR_FORMAT, "unknown lgd.architecture \"%.40s\"", arch);
    }
    if (!b.st && out < 0)
        fail(&b, LGD_ERR_INTERNAL, "the network builder produced no output");
    if (!b.st)
        g->output = out;
    /* every tensor must be one the architecture asked for */
    for (size_t i = 0; !b.st && i < file->n_tensors; i++)
        if (!b.used[i] && strcmp(file->tensors[i].name, "lgd.alphas_cumprod"))
            fail(&b, LGD_ERR_FORMAT, "tensor %s is not part of this %s network (was the file "
                 "converted from a different configuration?)", file->tensors[i].name, arch);
    if (!b.st) {
        nn_graph_plan(g);
        /* one backend allocation for the weights, converted on the host */
        float *host = malloc((g->n_weights ? g->n_weights : 1) * sizeof *host);
        if (!host)
            fail(&b, LGD_ERR_OUT_OF_MEMORY, "out of memory for %zu weights", g->n_weights);
        for (size_t i = 0; !b.st && i < b.n_req; i++)
            lgd_st_to_f32(b.req[i].t, host + b.req[i].off);
        if (!b.st) {
            lgd_status st = lgd_buffer_from_host(ctx, &g->weights, host,
                                                 g->n_weights ? g->n_weights : 1,
                                                 "network weights");
            if (st)
                b.st = st;
        }
        free(host);
    }
    free(b.used);
    free(b.req);
    if (b.st) {
        nn_graph_free(ctx, g);
        return b.st;
    }
    *out_dim = dim;
    *out_out_dim = (int64_t)nn_value_numel(&g->values[g->output]);
    return LGD_OK;
}
