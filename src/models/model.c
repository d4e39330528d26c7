/*
 * model.c - the lgd_model object, its public entry points, and models made of
 * host callbacks.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "models/model_internal.h"
#include "plugins/plugin_internal.h"
#include "core/rng.h"

/* ---- the object ---- */

lgd_status lgd_model_new(lgd_context *ctx, const lgd_model_vtable *vt, int64_t dim,
                         int64_t cond_dim, void *impl, lgd_model **out)
{
    lgd_model *m = calloc(1, sizeof *m);
    if (!m)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "out of memory creating a %s model",
                         vt->name);
    lgd_ref_init(&m->refs);
    m->ctx = lgd_context_retain(ctx);
    m->vt = vt;
    m->dim = dim;
    m->cond_dim = cond_dim;
    m->impl = impl;
    *out = m;
    return LGD_OK;
}

lgd_model *lgd_model_retain(lgd_model *m)
{
    if (m)
        lgd_ref_take(&m->refs);
    return m;
}

void lgd_model_release(lgd_model *m)
{
    if (!m || !lgd_ref_drop(&m->refs))
        return;
    lgd_context *ctx = m->ctx;
    void *plugin = m->plugin;
    m->vt->destroy(m);
    free(m);
    lgd_context_release(ctx);
    /* last: the destroy callbacks above may be the plugin's code */
    lgd_plugin_handle_release(plugin);
}

void lgd_model_destroy(lgd_model *m) { lgd_model_release(m); }

lgd_context *lgd_model_context(const lgd_model *m) { return m ? m->ctx : NULL; }

int64_t lgd_model_dim(const lgd_model *m) { return m ? m->dim : 0; }
int64_t lgd_model_cond_dim(const lgd_model *m) { return m ? m->cond_dim : 0; }

int32_t lgd_model_has_exact_posterior(const lgd_model *m)
{
    return m && m->vt->sample_posterior != NULL;
}

/* ---- public entry points: validation, then the vtable ---- */

static lgd_status check_sigma(lgd_context *ctx, const char *fn, float sigma, int allow_zero)
{
    if (!isfinite(sigma) || sigma < 0.0f || (!allow_zero && sigma == 0.0f))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: sigma = %g must be finite and %s",
                         fn, (double)sigma, allow_zero ? ">= 0" : "> 0");
    return LGD_OK;
}

static lgd_status check_io(lgd_model *m, const char *fn, const lgd_tensor *x,
                           const lgd_tensor *cond, const lgd_tensor *out, int64_t *batch)
{
    lgd_context *ctx = m->ctx;
    lgd_status st = lgd_tensor_as_rows(ctx, x, "x", m->dim, batch);
    if (st)
        return lgd_error(ctx, st, "%s: %s", fn, lgd_context_last_error(ctx));
    int64_t ob;
    if ((st = lgd_tensor_as_rows(ctx, out, "out", m->dim, &ob)))
        return lgd_error(ctx, st, "%s: %s", fn, lgd_context_last_error(ctx));
    if (ob != *batch)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH, "%s: out has batch %lld, x has %lld", fn,
                         (long long)ob, (long long)*batch);
    if (cond) {
        if (m->cond_dim == 0)
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "%s: cond given but the model is unconditional", fn);
        int64_t cb;
        if ((st = lgd_tensor_as_rows(ctx, cond, "cond", m->cond_dim, &cb)))
            return lgd_error(ctx, st, "%s: %s", fn, lgd_context_last_error(ctx));
        if (cb != *batch)
            return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH, "%s: cond has batch %lld, x has %lld",
                             fn, (long long)cb, (long long)*batch);
    }
    return LGD_OK;
}

static lgd_status check_finite(lgd_model *m, const char *what, const float *p, size_t n,
                               float sigma)
{
    if (!m->ctx->ops->all_finite(m->ctx->be, p, n))
        return lgd_error(m->ctx, LGD_ERR_NON_FINITE,
                         "%s model: %s produced non-finite values at sigma = %g", m->vt->name,
                         what, (double)sigma);
    return LGD_OK;
}

static const float *cond_data(const lgd_tensor *cond) { return cond ? cond->buf.data : NULL; }

lgd_status lgd_model_denoise(lgd_model *m, const lgd_tensor *x, float sigma,
                             const lgd_tensor *cond, lgd_tensor *out)
{
    if (!m)
        return LGD_ERR_INVALID_ARGUMENT;
    int64_t batch;
    lgd_status st = check_sigma(m->ctx, "lgd_model_denoise", sigma, 0);
    if (!st)
        st = check_io(m, "lgd_model_denoise", x, cond, out, &batch);
    if (!st)
        st = m->vt->denoise(m, x->buf.data, sigma, cond_data(cond), (size_t)batch, out->buf.data);
    if (!st)
        st = check_finite(m, "denoise", out->buf.data, (size_t)out->numel, sigma);
    return st;
}

lgd_status lgd_model_vjp(lgd_model *m, const lgd_tensor *x, float sigma, const lgd_tensor *cond,
                         const lgd_tensor *v, lgd_tensor *out)
{
    if (!m)
        return LGD_ERR_INVALID_ARGUMENT;
    int64_t batch, vb;
    lgd_status st = check_sigma(m->ctx, "lgd_model_vjp", sigma, 0);
    if (!st)
        st = check_io(m, "lgd_model_vjp", x, cond, out, &batch);
    if (!st && (st = lgd_tensor_as_rows(m->ctx, v, "v", m->dim, &vb)))
        return lgd_error(m->ctx, st, "lgd_model_vjp: %s", lgd_context_last_error(m->ctx));
    if (!st && vb != batch)
        return lgd_error(m->ctx, LGD_ERR_SHAPE_MISMATCH, "lgd_model_vjp: v has batch %lld, x %lld",
                         (long long)vb, (long long)batch);
    if (st)
        return st;
    if (!m->vt->vjp)
        return lgd_error(m->ctx, LGD_ERR_UNSUPPORTED, "lgd_model_vjp: the %s model has no VJP",
                         m->vt->name);
    /* the VJP contract: it follows a denoise on the same x and sigma */
    lgd_buffer tmp = { 0 };
    st = lgd_buffer_reserve(m->ctx, &tmp, (size_t)x->numel, "lgd_model_vjp");
    if (!st)
        st = m->vt->denoise(m, x->buf.data, sigma, cond_data(cond), (size_t)batch, tmp.data);
    lgd_buffer_release(m->ctx, &tmp);
    if (!st)
        st = m->vt->vjp(m, x->buf.data, sigma, cond_data(cond), (size_t)batch, v->buf.data,
                        out->buf.data);
    if (!st)
        st = check_finite(m, "vjp", out->buf.data, (size_t)out->numel, sigma);
    return st;
}

lgd_status lgd_model_score(lgd_model *m, const lgd_tensor *x, float sigma,
                           const lgd_tensor *cond, lgd_tensor *out)
{
    lgd_status st = lgd_model_denoise(m, x, sigma, cond, out);
    if (st)
        return st;
    /* score = (D - x) / sigma^2 */
    float inv = 1.0f / (sigma * sigma);
    m->ctx->ops->axpby(m->ctx->be, (size_t)out->numel, -inv, x->buf.data, inv, out->buf.data);
    return check_finite(m, "score", out->buf.data, (size_t)out->numel, sigma);
}

lgd_status lgd_model_log_density(lgd_model *m, const lgd_tensor *x, float sigma, lgd_tensor *out)
{
    if (!m)
        return LGD_ERR_INVALID_ARGUMENT;
    int64_t batch;
    lgd_status st = check_sigma(m->ctx, "lgd_model_log_density", sigma, 1);
    if (!st && (st = lgd_tensor_as_rows(m->ctx, x, "x", m->dim, &batch)))
        return lgd_error(m->ctx, st, "lgd_model_log_density: %s", lgd_context_last_error(m->ctx));
    if (st)
        return st;
    if ((st = lgd_check_tensor(m->ctx, out, "out")))
        return st;
    if (out->numel != batch)
        return lgd_error(m->ctx, LGD_ERR_SHAPE_MISMATCH,
                         "lgd_model_log_density: out has %lld elements, need batch = %lld",
                         (long long)out->numel, (long long)batch);
    if (!m->vt->log_density)
        return lgd_error(m->ctx, LGD_ERR_UNSUPPORTED,
                         "lgd_model_log_density: the %s model has no exact density", m->vt->name);
    return m->vt->log_density(m, x->buf.data, sigma, (size_t)batch, out->buf.data);
}

lgd_status lgd_model_sample_posterior(lgd_model *m, const lgd_tensor *x, float sigma,
                                      uint64_t seed, uint64_t first_row, lgd_tensor *out)
{
    if (!m)
        return LGD_ERR_INVALID_ARGUMENT;
    const char *fn = "lgd_model_sample_posterior";
    int64_t batch;
    lgd_status st = check_sigma(m->ctx, fn, sigma, 1);
    if (!st && (st = lgd_tensor_as_rows(m->ctx, x, "x", m->dim, &batch)))
        return lgd_error(m->ctx, st, "%s: %s", fn, lgd_context_last_error(m->ctx));
    if (st)
        return st;
    if ((st = lgd_check_tensor(m->ctx, out, "out")))
        return st;
    if (out->ndim != 3 || out->shape[0] != batch || out->shape[2] != m->dim)
        return lgd_error(m->ctx, LGD_ERR_SHAPE_MISMATCH, "%s: out must be [%lld][n][%lld]", fn,
                         (long long)batch, (long long)m->dim);
    if (!m->vt->sample_posterior)
        return lgd_error(m->ctx, LGD_ERR_UNSUPPORTED, "%s: the %s model has no exact posterior",
                         fn, m->vt->name);
    lgd_rng_stream rng = { seed, LGD_RNG_POSTERIOR, 0, first_row, 0 };
    return m->vt->sample_posterior(m, x->buf.data, sigma, (size_t)batch, (size_t)out->shape[1],
                                   &rng, out->buf.data);
}

/* ---- models from host callbacks ---- */

typedef struct callback_model {
    lgd_model_callbacks cb;
    lgd_staging stage; /* host copies of x | cond | v | out, for device backends */
} callback_model;

lgd_status lgd_model_callbacks_init(lgd_model_callbacks *c, uint32_t struct_size)
{
    const lgd_model_callbacks defaults = LGD_MODEL_CALLBACKS_INIT;
    return lgd_init_struct(c, struct_size, &defaults, sizeof defaults, sizeof(lgd_model_callbacks));
}

typedef struct callback_closure {
    const callback_model *cm;
    float sigma;
    int64_t batch, dim;
} callback_closure;

/* in = { x, cond, v } */
static int32_t call_denoise(void *closure, const float *const *in, float *out)
{
    callback_closure *c = closure;
    return c->cm->cb.denoise(c->cm->cb.user, in[0], c->sigma, in[1], c->batch, c->dim, out);
}

static int32_t call_vjp(void *closure, const float *const *in, float *out)
{
    callback_closure *c = closure;
    return c->cm->cb.vjp(c->cm->cb.user, in[0], c->sigma, in[1], c->batch, c->dim, in[2], out);
}

/* Calls the user's denoise (v == NULL) or vjp through lgd_host_call. */
static lgd_status callback_call(lgd_model *m, const float *x, float sigma, const float *cond,
                                size_t batch, const float *v, float *out)
{
    callback_model *cm = m->impl;
    size_t n = batch * (size_t)m->dim;
    const float *in[3] = { x, cond, v };
    size_t counts[3] = { n, batch * (size_t)m->cond_dim, n };
    callback_closure c = { cm, sigma, (int64_t)batch, m->dim };
    int32_t rc = 0;
    lgd_status st = lgd_host_call(m->ctx, &cm->stage, cm->cb.memory, 3, in, counts, out, n,
                                  v ? call_vjp : call_denoise, &c,
                                  v ? "model vjp callback" : "model denoise callback",
                                  v ? "out" : "xhat", &rc);
    if (st)
        return st;
    if (rc != 0)
        return lgd_callback_failed(m->ctx, "model %s callback returned %d at sigma = %g",
                                   v ? "vjp" : "denoise", (int)rc, (double)sigma);
    return LGD_OK;
}

static lgd_status callback_denoise(lgd_model *m, const float *x, float sigma, const float *cond,
                                   size_t batch, float *out)
{
    return callback_call(m, x, sigma, cond, batch, NULL, out);
}

static lgd_status callback_vjp(lgd_model *m, const float *x, float sigma, const float *cond,
                               size_t batch, const float *v, float *out)
{
    callback_model *cm = m->impl;
    if (!cm->cb.vjp)
        return lgd_error(m->ctx, LGD_ERR_UNSUPPORTED,
                         "the callback model was registered without a vjp callback");
    return callback_call(m, x, sigma, cond, batch, v, out);
}

static void callback_destroy(lgd_model *m)
{
    callback_model *cm = m->impl;
    if (cm->cb.destroy)
        cm->cb.destroy(cm->cb.user);
    lgd_staging_free(&cm->stage);
    free(cm);
}

static const lgd_model_vtable callback_vtable = {
    .name = "callback",
    .denoise = callback_denoise,
    .vjp = callback_vjp,
    .destroy = callback_destroy,
};

lgd_status lgd_model_create_callbacks(lgd_context *ctx, const lgd_model_callbacks *callbacks,
                                      lgd_model **out)
{
    if (out) /* a failed create leaves NULL, whatever fails (lgd/lgd.h) */
        *out = NULL;
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    const char *fn = "lgd_model_create_callbacks";
    if (!out || !callbacks)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                         out ? "callbacks" : "out_model");
    *out = NULL;
    lgd_model_callbacks cb, defaults = LGD_MODEL_CALLBACKS_INIT;
    {
        lgd_status rst =
            lgd_read_struct(ctx, fn, "callbacks", &cb, sizeof cb, sizeof cb, callbacks, &defaults);
        if (rst)
            return rst;
    }
    if (cb.dim <= 0 || cb.cond_dim < 0)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: dim = %lld must be > 0 and cond_dim = %lld >= 0", fn,
                         (long long)cb.dim, (long long)cb.cond_dim);
    if (!cb.denoise)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: callbacks->denoise is NULL", fn);
    if (cb.memory != LGD_MEMORY_HOST && cb.memory != LGD_MEMORY_DEVICE)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: callbacks->memory is invalid", fn);
    callback_model *cm = calloc(1, sizeof *cm);
    if (!cm)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    cm->cb = cb;
    lgd_status st = lgd_model_new(ctx, &callback_vtable, cb.dim, cb.cond_dim, cm, out);
    if (st)
        free(cm);
    return st;
}
