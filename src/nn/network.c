/*
 * network.c - the public side of networks loaded from files (include/lgd/network.h):
 * loading (safetensors.c parses, nn_build.c builds), forward and VJP on tensors,
 * and the raw-network vtable through which the adapters of model_network.c make a
 * network a denoiser.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "models/model_internal.h"
#include "lgd/network.h"
#include "nn/nn_build.h"
#include "nn/network_internal.h"

struct lgd_network {
    lgd_refcount refs;
    lgd_context *ctx;
    nn_graph g;
    int64_t dim, out_dim;
    /* the file's metadata, copied (the file's bytes are not kept) */
    char **keys, **values;
    size_t n_meta;
    lgd_adapter_options adapter;
    float *alphas; /* [adapter.num_timesteps] or NULL */
};

static void network_free(lgd_network *net)
{
    nn_graph_free(net->ctx, &net->g);
    for (size_t i = 0; i < net->n_meta; i++) {
        free(net->keys[i]);
        free(net->values[i]);
    }
    free(net->keys);
    free(net->values);
    free(net->alphas);
    lgd_context_release(net->ctx);
    free(net);
}

lgd_network *lgd_network_retain(lgd_network *net)
{
    if (net)
        lgd_ref_take(&net->refs);
    return net;
}

static void network_release(lgd_network *net)
{
    if (net && lgd_ref_drop(&net->refs))
        network_free(net);
}

void lgd_network_destroy(lgd_network *net) { network_release(net); }

lgd_context *lgd_network_context(const lgd_network *net) { return net ? net->ctx : NULL; }

struct nn_graph *lgd_network_graph(lgd_network *net) { return net ? &net->g : NULL; }

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* index of s among names[n], or -1 */
static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

/* the adapter named by the metadata; LGD_ERR_FORMAT on unknown names */
static lgd_status read_adapter(lgd_context *ctx, const lgd_st_file *f, lgd_network *net)
{
    static const char *const predictions[] = { "eps", "x0", "v", "edm" };
    static const char *const times[] = { "discrete", "discrete_round", "log_sigma", "sigma" };
    lgd_adapter_options o = LGD_ADAPTER_OPTIONS_INIT;
    const char *p = lgd_st_meta_get(f, "lgd.prediction");
    if (p) {
        int k = name_index(predictions, 4, p);
        if (k < 0)
            return lgd_error(ctx, LGD_ERR_FORMAT,
                             "network file: unknown lgd.prediction \"%.40s\" (eps, x0, v, edm)", p);
        o.prediction = (lgd_prediction)k;
    }
    const char *t = lgd_st_meta_get(f, "lgd.time_input");
    if (t) {
        int k = name_index(times, 4, t);
        if (k < 0)
            return lgd_error(ctx, LGD_ERR_FORMAT,
                             "network file: unknown lgd.time_input \"%.40s\" (discrete, "
                             "discrete_round, log_sigma, sigma)", t);
        o.time_input = (lgd_time_input)k;
    }
    const char *sd = lgd_st_meta_get(f, "lgd.sigma_data");
    if (sd) {
        char *end;
        double v = strtod(sd, &end);
        if (end == sd || *end || !(v > 0.0 && v < 1e30))
            return lgd_error(ctx, LGD_ERR_FORMAT,
                             "network file: lgd.sigma_data = \"%.40s\" must be a number > 0", sd);
        o.sigma_data = (float)v;
    }
    const lgd_st_tensor *a = lgd_st_find(f, "lgd.alphas_cumprod");
    if (a) {
        if (a->ndim != 1 || a->numel < 2 || a->numel > (1 << 24))
            return lgd_error(ctx, LGD_ERR_FORMAT,
                             "network file: lgd.alphas_cumprod must be 1-D with 2 to 2^24 values");
        net->alphas = malloc((size_t)a->numel * sizeof *net->alphas);
        if (!net->alphas)
            return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "network file: out of memory");
        lgd_st_to_f32(a, net->alphas);
        for (int64_t i = 0; i < a->numel; i++) {
            float v = net->alphas[i];
            if (!(v > 0.0f && v < 1.0f) || (i > 0 && !(v < net->alphas[i - 1])))
                return lgd_error(ctx, LGD_ERR_FORMAT,
                                 "network file: lgd.alphas_cumprod[%lld] = %g must be in (0, 1) "
                                 "and strictly decreasing", (long long)i, (double)v);
        }
        o.alphas_cumprod = net->alphas;
        o.num_timesteps = (int32_t)a->numel;
    }
    net->adapter = o;
    return LGD_OK;
}

static lgd_status load_parsed(lgd_context *ctx, const lgd_st_file *f, lgd_network **out)
{
    lgd_network *net = calloc(1, sizeof *net);
    if (!net)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "network: out of memory");
    lgd_ref_init(&net->refs);
    net->ctx = lgd_context_retain(ctx);
    lgd_status st = read_adapter(ctx, f, net);
    if (!st && f->n_meta) {
        net->keys = calloc(f->n_meta, sizeof *net->keys);
        net->values = calloc(f->n_meta, sizeof *net->values);
        if (!net->keys || !net->values)
            st = lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "network: out of memory");
        for (size_t i = 0; !st && i < f->n_meta; i++) {
            net->keys[i] = dup_str(f->meta[i].key);
            net->values[i] = dup_str(f->meta[i].value);
            net->n_meta = i + 1;
            if (!net->keys[i] || !net->values[i])
                st = lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "network: out of memory");
        }
    }
    if (!st)
        st = nn_build(ctx, f, &net->g, &net->dim, &net->out_dim);
    if (st) {
        network_free(net);
        return st;
    }
    *out = net;
    return LGD_OK;
}

lgd_status lgd_network_load(lgd_context *ctx, const char *path, lgd_network **out)
{
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!path || !out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "lgd_network_load: %s is NULL",
                         path ? "out_network" : "path");
    *out = NULL;
    lgd_st_file f;
    char err[LGD_ERROR_CAP];
    lgd_status st = lgd_st_read_file(path, &f, err, sizeof err);
    if (st)
        return lgd_error(ctx, st, "lgd_network_load: %s", err);
    st = load_parsed(ctx, &f, out);
    lgd_st_free(&f);
    return st;
}

lgd_status lgd_network_load_memory(lgd_context *ctx, const void *data, size_t size,
                                   lgd_network **out)
{
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!data || !out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "lgd_network_load_memory: %s is NULL",
                         data ? "out_network" : "data");
    *out = NULL;
    lgd_st_file f;
    char err[LGD_ERROR_CAP];
    lgd_status st = lgd_st_parse(data, size, &f, err, sizeof err);
    if (st)
        return lgd_error(ctx, st, "lgd_network_load_memory: %s", err);
    st = load_parsed(ctx, &f, out);
    lgd_st_free(&f);
    return st;
}

int64_t lgd_network_dim(const lgd_network *net) { return net ? net->dim : 0; }
int64_t lgd_network_out_dim(const lgd_network *net) { return net ? net->out_dim : 0; }
int64_t lgd_network_cond_dim(const lgd_network *net) { return net ? net->g.cond_dim : 0; }
int64_t lgd_network_parameter_count(const lgd_network *net)
{
    return net ? (int64_t)net->g.n_weights : 0;
}

const char *lgd_network_metadata(const lgd_network *net, const char *key)
{
    if (!net || !key)
        return NULL;
    for (size_t i = 0; i < net->n_meta; i++)
        if (!strcmp(net->keys[i], key))
            return net->values[i];
    return NULL;
}

lgd_status lgd_network_adapter_options(const lgd_network *net, lgd_adapter_options *out)
{
    if (!net)
        return LGD_ERR_INVALID_ARGUMENT;
    static const char fn[] = "lgd_network_adapter_options";
    if (!out)
        return lgd_error(net->ctx, LGD_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    /* never past the caller's struct: its struct_size says how much it holds */
    uint32_t size = out->struct_size;
    if (size < sizeof(lgd_adapter_options))
        return lgd_error(net->ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: out->struct_size = %u is smaller than lgd_adapter_options "
                         "(set it with LGD_ADAPTER_OPTIONS_INIT or lgd_adapter_options_init)",
                         fn, (unsigned)size);
    memcpy(out, &net->adapter, sizeof net->adapter);
    out->struct_size = size;
    return LGD_OK;
}

/* checks x [B][dim], cond, and an output of out_cols per row */
static lgd_status check_call(lgd_network *net, const char *fn, const lgd_tensor *x, float t,
                             const lgd_tensor *cond, const lgd_tensor *out, int64_t out_cols,
                             const char *out_name, int64_t *batch)
{
    lgd_context *ctx = net->ctx;
    lgd_status st = lgd_tensor_as_rows(ctx, x, "x_in", net->dim, batch);
    if (st)
        return lgd_error(ctx, st, "%s: %s", fn, lgd_context_last_error(ctx));
    int64_t ob;
    if ((st = lgd_tensor_as_rows(ctx, out, out_name, out_cols, &ob)))
        return lgd_error(ctx, st, "%s: %s", fn, lgd_context_last_error(ctx));
    if (ob != *batch)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH, "%s: %s has %lld rows, x_in %lld", fn,
                         out_name, (long long)ob, (long long)*batch);
    if (!isfinite(t))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: t = %g is not finite", fn, (double)t);
    if (net->g.cond_dim > 0) {
        int64_t cb;
        if (!cond)
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "%s: the network needs a condition of %lld values per row", fn,
                             (long long)net->g.cond_dim);
        if ((st = lgd_tensor_as_rows(ctx, cond, "cond", net->g.cond_dim, &cb)))
            return lgd_error(ctx, st, "%s: %s", fn, lgd_context_last_error(ctx));
        if (cb != *batch)
            return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH, "%s: cond has %lld rows, x_in %lld", fn,
                             (long long)cb, (long long)*batch);
    } else if (cond) {
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: the network is unconditional; pass cond = NULL", fn);
    }
    if (*batch <= 0)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: empty batch", fn);
    return LGD_OK;
}

lgd_status lgd_network_forward(lgd_network *net, const lgd_tensor *x, float t,
                               const lgd_tensor *cond, lgd_tensor *out)
{
    if (!net)
        return LGD_ERR_INVALID_ARGUMENT;
    int64_t batch;
    lgd_status st = check_call(net, "lgd_network_forward", x, t, cond, out, net->out_dim, "out",
                               &batch);
    if (st)
        return st;
    return nn_graph_forward(net->ctx, &net->g, x->buf.data, t, cond ? cond->buf.data : NULL,
                            (size_t)batch, out->buf.data);
}

lgd_status lgd_network_vjp(lgd_network *net, const lgd_tensor *x, float t,
                           const lgd_tensor *cond, const lgd_tensor *v, lgd_tensor *out,
                           lgd_tensor *out_forward)
{
    if (!net)
        return LGD_ERR_INVALID_ARGUMENT;
    const char *fn = "lgd_network_vjp";
    lgd_context *ctx = net->ctx;
    int64_t batch, vb;
    lgd_status st = check_call(net, fn, x, t, cond, out, net->dim, "out", &batch);
    if (st)
        return st;
    if ((st = lgd_tensor_as_rows(ctx, v, "v", net->out_dim, &vb)))
        return lgd_error(ctx, st, "%s: %s", fn, lgd_context_last_error(ctx));
    if (vb != batch)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH, "%s: v has %lld rows, x_in %lld", fn,
                         (long long)vb, (long long)batch);
    if (out_forward) {
        int64_t fb;
        if ((st = lgd_tensor_as_rows(ctx, out_forward, "out_forward", net->out_dim, &fb)))
            return lgd_error(ctx, st, "%s: %s", fn, lgd_context_last_error(ctx));
        if (fb != batch)
            return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH, "%s: out_forward has %lld rows, x_in %lld",
                             fn, (long long)fb, (long long)batch);
    }
    const float *c = cond ? cond->buf.data : NULL;
    /* always a fresh forward pass: the caller's x may have changed since the last one */
    if ((st = nn_graph_forward(ctx, &net->g, x->buf.data, t, c, (size_t)batch,
                               out_forward ? out_forward->buf.data : NULL)))
        return st;
    return nn_graph_vjp(ctx, &net->g, x->buf.data, t, c, (size_t)batch, v->buf.data,
                        out->buf.data);
}

/* ---- as a denoiser: the raw network of the adapters (model_network.c) ---- */

static lgd_status net_forward(void *self, const float *x_in, float t, const float *cond,
                              size_t batch, float *out)
{
    lgd_network *net = self;
    return nn_graph_forward(net->ctx, &net->g, x_in, t, cond, batch, out);
}

/* the adapters call the VJP right after the forward pass on the same x_in and t
 * (model_network.c), so the graph's tape is reused */
static lgd_status net_vjp(void *self, const float *x_in, float t, const float *cond,
                          size_t batch, const float *v, float *out)
{
    lgd_network *net = self;
    return nn_graph_vjp(net->ctx, &net->g, x_in, t, cond, batch, v, out);
}

static void net_destroy(void *self) { network_release(self); }

static const lgd_raw_network_vtable net_vtable = {
    .forward = net_forward,
    .vjp = net_vjp,
    .destroy = net_destroy,
};

lgd_status lgd_model_create_from_network(lgd_context *ctx, lgd_network *net,
                                         const lgd_adapter_options *options, lgd_model **out)
{
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    const char *fn = "lgd_model_create_from_network";
    if (!net || !out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                         net ? "out_model" : "network");
    *out = NULL;
    if (net->ctx != ctx)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: the network belongs to another context", fn);
    if (net->dim != net->out_dim)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH,
                         "%s: the network maps %lld values to %lld; a denoiser needs the same",
                         fn, (long long)net->dim, (long long)net->out_dim);
    const lgd_adapter_options *opt = options ? options : &net->adapter;
    lgd_status st = lgd_model_create_adapted(ctx, fn, &net_vtable, net, net->dim,
                                             net->g.cond_dim, opt, out);
    if (st)
        return st;
    lgd_network_retain(net);
    return LGD_OK;
}

lgd_status lgd_model_load(lgd_context *ctx, const char *path, lgd_model **out)
{
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "lgd_model_load: out_model is NULL");
    *out = NULL;
    lgd_network *net;
    lgd_status st = lgd_network_load(ctx, path, &net);
    if (st)
        return st;
    st = lgd_model_create_from_network(ctx, net, NULL, out);
    network_release(net);
    return st;
}

/* ---- the raw passes for the network loss (nn/network_internal.h) ---- */

lgd_status lgd_network_forward_raw(lgd_network *net, const float *x_in, float t,
                                   const float *cond, size_t batch, float *out)
{
    return nn_graph_forward(net->ctx, &net->g, x_in, t, cond, batch, out);
}

lgd_status lgd_network_vjp_raw(lgd_network *net, const float *x_in, float t,
                               const float *cond, size_t batch, const float *v, float *out)
{
    return nn_graph_vjp(net->ctx, &net->g, x_in, t, cond, batch, v, out);
}
