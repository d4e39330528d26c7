/*
 * loss.c - the lgd_loss object: reference counting, evaluation on tensors and on
 * raw backend memory, and losses made from host callbacks.
 *
 * Built-in losses (squared error, linear, logistic, sums) are in loss_builtin.c;
 * they plug into the same object through an lgd_loss_vtable.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "losses/loss_internal.h"
#include "plugins/plugin_internal.h"

/* ---- the object ---- */

lgd_status lgd_loss_new(lgd_context *ctx, const lgd_loss_vtable *vt, int64_t dim, void *impl,
                        lgd_loss **out)
{
    /* On failure nothing is taken over: the caller still owns impl. */
    if (!ctx || !vt || !vt->eval || !out || dim <= 0)
        return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "lgd_loss_new: invalid arguments");
    *out = NULL;
    lgd_loss *l = calloc(1, sizeof *l);
    if (!l)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s loss: out of memory", vt->name);
    lgd_ref_init(&l->refs);
    l->ctx = lgd_context_retain(ctx);
    l->vt = vt;
    l->dim = dim;
    l->impl = impl;
    *out = l;
    return LGD_OK;
}

lgd_loss *lgd_loss_retain(lgd_loss *l)
{
    if (l)
        lgd_ref_take(&l->refs);
    return l;
}

void lgd_loss_release(lgd_loss *l)
{
    if (!l || !lgd_ref_drop(&l->refs))
        return;
    lgd_context *ctx = l->ctx;
    void *plugin = l->plugin;
    /* the implementation may still need the context (to free backend buffers) */
    if (l->vt->destroy)
        l->vt->destroy(l);
    free(l);
    lgd_context_release(ctx);
    /* last: the destroy callbacks above may be the plugin's code */
    lgd_plugin_handle_release(plugin);
}

void lgd_loss_destroy(lgd_loss *l) { lgd_loss_release(l); }

lgd_context *lgd_loss_context(const lgd_loss *l) { return l ? l->ctx : NULL; }

int64_t lgd_loss_dim(const lgd_loss *l) { return l ? l->dim : 0; }

/* ---- evaluation ---- */

lgd_status lgd_loss_eval_raw(lgd_loss *l, const float *x, size_t batch, size_t n, float *loss,
                             float *grad)
{
    return lgd_loss_eval_draws(l, x, batch, n, 0, n, loss, grad);
}

lgd_status lgd_loss_eval_draws(lgd_loss *l, const float *x, size_t batch, size_t n,
                               size_t first_draw, size_t total_draws, float *loss, float *grad)
{
    if (!l)
        return LGD_ERR_INVALID_ARGUMENT;
    lgd_context *ctx = l->ctx;
    if (!x || !loss)
        return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "%s loss: NULL buffer", l->vt->name);
    size_t rows = batch * n;
    if (rows == 0)
        return LGD_OK;
    lgd_status st = l->vt->eval(l, x, batch, n, first_draw, total_draws, loss, grad);
    if (st != LGD_OK)
        return st;
    if (!ctx->ops->all_finite(ctx->be, loss, rows))
        return lgd_error(ctx, LGD_ERR_NON_FINITE,
                         "%s loss: the loss value is non-finite (NaN or Inf) for at least one of "
                         "%zu rows",
                         l->vt->name, rows);
    if (grad && !ctx->ops->all_finite(ctx->be, grad, rows * (size_t)l->dim))
        return lgd_error(ctx, LGD_ERR_NON_FINITE,
                         "%s loss: the gradient is non-finite (NaN or Inf) for at least one of "
                         "%zu rows",
                         l->vt->name, rows);
    return LGD_OK;
}

lgd_status lgd_loss_eval(lgd_loss *l, const lgd_tensor *x, lgd_tensor *out_loss,
                         lgd_tensor *out_grad)
{
    if (!l)
        return LGD_ERR_INVALID_ARGUMENT;
    lgd_context *ctx = l->ctx;
    lgd_status st = lgd_check_tensor(ctx, x, "lgd_loss_eval: x");
    if (st)
        return st;
    st = lgd_check_tensor(ctx, out_loss, "lgd_loss_eval: out_loss");
    if (st)
        return st;
    if (out_grad) {
        st = lgd_check_tensor(ctx, out_grad, "lgd_loss_eval: out_grad");
        if (st)
            return st;
    }
    int64_t batch, n;
    if (x->ndim == 2) {
        batch = x->shape[0];
        n = 1;
    } else if (x->ndim == 3) {
        batch = x->shape[0];
        n = x->shape[1];
    } else {
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH,
                         "lgd_loss_eval: x must be [batch][%lld] or [batch][n][%lld]; got %d "
                         "dims",
                         (long long)l->dim, (long long)l->dim, x->ndim);
    }
    if (x->shape[x->ndim - 1] != l->dim)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH,
                         "lgd_loss_eval: x's last dimension is %lld but the loss has dim %lld",
                         (long long)x->shape[x->ndim - 1], (long long)l->dim);
    if (out_loss->numel != batch * n)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH,
                         "lgd_loss_eval: out_loss has %lld elements; x needs batch * n = %lld",
                         (long long)out_loss->numel, (long long)(batch * n));
    if (out_grad && out_grad->numel != x->numel)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH,
                         "lgd_loss_eval: out_grad has %lld elements; it must be shaped like x "
                         "(%lld)",
                         (long long)out_grad->numel, (long long)x->numel);
    if ((const lgd_tensor *)out_loss == x || (const lgd_tensor *)out_grad == x ||
        (out_grad && out_grad == out_loss))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "lgd_loss_eval: x, out_loss and out_grad must be distinct tensors");
    return lgd_loss_eval_raw(l, x->buf.data, (size_t)batch, (size_t)n, out_loss->buf.data,
                             out_grad ? out_grad->buf.data : NULL);
}

/* ---- losses from host callbacks ---- */

typedef struct callback_loss {
    lgd_loss_callbacks cb;
    lgd_staging sx, sl, sg; /* host copies when the backend memory is not host memory */
} callback_loss;

static lgd_status callback_eval(lgd_loss *l, const float *x, size_t batch, size_t n,
                                size_t first_draw, size_t total_draws, float *loss, float *grad)
{
    callback_loss *c = l->impl;
    lgd_context *ctx = l->ctx;
    size_t rows = batch * n, dim = (size_t)l->dim;
    int host = c->cb.memory == LGD_MEMORY_HOST;
    int stage = host && !ctx->ops->host_memory;
    int check = ctx->check_callback_outputs;
    const char *who = c->cb.eval_draws ? "callback loss: eval_draws" : "callback loss: eval";
    const float *cx = x;
    float *closs = loss, *cgrad = grad;
    lgd_status st;
    if (stage) {
        if ((st = lgd_staging_reserve(ctx, &c->sx, rows * dim)) ||
            (st = lgd_staging_reserve(ctx, &c->sl, rows)) ||
            (grad && (st = lgd_staging_reserve(ctx, &c->sg, rows * dim))))
            return st;
        if (ctx->ops->download(ctx->be, c->sx.host, x, rows * dim * sizeof(float)) != 0)
            return lgd_backend_error(ctx, LGD_ERR_INTERNAL, "callback loss: copying x to the host failed");
        cx = c->sx.host;
        closs = c->sl.host;
        cgrad = grad ? c->sg.host : NULL;
    }
    if (check) {
        lgd_callback_poison(ctx, host, closs, rows);
        lgd_callback_poison(ctx, host, cgrad, rows * dim);
    }
    lgd_callback_begin(ctx);
    int32_t rc;
    if (c->cb.eval_draws) {
        rc = c->cb.eval_draws(c->cb.user, cx, (int64_t)batch, (int64_t)n, l->dim,
                              (int64_t)first_draw, (int64_t)total_draws, closs, cgrad);
        if (rc != 0)
            return lgd_callback_failed(ctx,
                                       "%s returned %d (batch %zu, n %zu, dim %zu, draws %zu.."
                                       "%zu of %zu)",
                                       who, (int)rc, batch, n, dim, first_draw,
                                       first_draw + n - 1, total_draws);
    } else {
        rc = c->cb.eval(c->cb.user, cx, (int64_t)batch, (int64_t)n, l->dim, closs, cgrad);
        if (rc != 0)
            return lgd_callback_failed(ctx, "%s returned %d (batch %zu, n %zu, dim %zu)", who,
                                       (int)rc, batch, n, dim);
    }
    lgd_callback_begin(ctx); /* returned 0: a message it set is discarded */
    if (check && ((st = lgd_callback_check_output(ctx, host, closs, rows, who, "loss")) ||
                  (st = lgd_callback_check_output(ctx, host, cgrad, rows * dim, who, "grad"))))
        return st;
    if (stage) {
        if (ctx->ops->upload(ctx->be, loss, closs, rows * sizeof(float)) != 0 ||
            (grad && ctx->ops->upload(ctx->be, grad, cgrad, rows * dim * sizeof(float)) != 0))
            return lgd_backend_error(ctx, LGD_ERR_INTERNAL,
                                     "callback loss: copying the results to the backend failed");
    }
    return LGD_OK;
}

static void callback_destroy(lgd_loss *l)
{
    callback_loss *c = l->impl;
    if (c->cb.destroy)
        c->cb.destroy(c->cb.user);
    lgd_staging_free(&c->sx);
    lgd_staging_free(&c->sl);
    lgd_staging_free(&c->sg);
    free(c);
}

static const lgd_loss_vtable callback_vtable = {
    .name = "callback",
    .eval = callback_eval,
    .destroy = callback_destroy,
};

lgd_status lgd_loss_callbacks_init(lgd_loss_callbacks *callbacks, uint32_t struct_size)
{
    const lgd_loss_callbacks defaults = LGD_LOSS_CALLBACKS_INIT;
    return lgd_init_struct(callbacks, struct_size, &defaults, sizeof defaults,
                           offsetof(lgd_loss_callbacks, eval_draws));
}

lgd_status lgd_loss_create_callbacks(lgd_context *ctx, const lgd_loss_callbacks *callbacks,
                                     lgd_loss **out)
{
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "lgd_loss_create_callbacks: out_loss is NULL");
    *out = NULL;
    if (!callbacks)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "lgd_loss_create_callbacks: callbacks is NULL");
    lgd_loss_callbacks cb, defaults = LGD_LOSS_CALLBACKS_INIT;
    {
        lgd_status rst =
            lgd_read_struct(ctx, "lgd_loss_create_callbacks", "callbacks", &cb, sizeof cb,
                            offsetof(lgd_loss_callbacks, eval_draws), callbacks, &defaults);
        if (rst)
            return rst;
    }
    if (cb.memory != LGD_MEMORY_HOST && cb.memory != LGD_MEMORY_DEVICE)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "lgd_loss_create_callbacks: callbacks->memory = %d is not an lgd_memory",
                         (int)cb.memory);
    if (cb.dim <= 0)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "lgd_loss_create_callbacks: callbacks->dim = %lld must be positive",
                         (long long)cb.dim);
    if (!cb.eval == !cb.eval_draws)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "lgd_loss_create_callbacks: %s",
                         cb.eval ? "callbacks->eval and callbacks->eval_draws are both set; "
                                   "set exactly one"
                                 : "callbacks->eval is NULL (set eval or eval_draws)");
    callback_loss *c = calloc(1, sizeof *c);
    if (!c)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "lgd_loss_create_callbacks: out of memory");
    c->cb = cb;
    lgd_status st = lgd_loss_new(ctx, &callback_vtable, cb.dim, c, out);
    if (st) {
        free(c); /* the user's destroy is not called on failure */
        return st;
    }
    return LGD_OK;
}
