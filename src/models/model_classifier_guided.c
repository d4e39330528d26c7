/*
 * model_classifier_guided.c - classifier guidance (include/lgd/network_loss.h):
 *   D_cg(x, sigma) = D(x, sigma) - w sigma^2 grad_x l(x; sigma)
 * with l = -log p(y | x_sigma), usually the cross-entropy of a noise-aware classifier
 * (a network loss with LGD_NETWORK_INPUT_NOISY, evaluated at each call's sigma).
 * Tweedie's D = x + sigma^2 score makes this the denoiser of the guided score
 * score(x) + w grad log p(y | x). It has no VJP (that would need the classifier's
 * Hessian); CG runs it with LGD_GUIDANCE_NONE.
 */
#include <math.h>
#include <stdlib.h>

#include "core/internal.h"
#include "losses/loss_internal.h"
#include "losses/loss_network.h"
#include "models/model_internal.h"
#include "lgd/network_loss.h"

typedef struct cg_model {
    lgd_model *base;
    lgd_loss *loss;
    float scale;
    lgd_buffer lval; /* [batch] loss values */
    lgd_buffer grad; /* [batch][dim] */
} cg_model;

static lgd_status cg_denoise(lgd_model *m, const float *x, float sigma, const float *cond,
                             size_t batch, float *out)
{
    cg_model *c = m->impl;
    lgd_context *ctx = m->ctx;
    size_t n = batch * (size_t)m->dim;
    lgd_status st = c->base->vt->denoise(c->base, x, sigma, cond, batch, out);
    if (st)
        return st;
    if ((st = lgd_buffer_reserve(ctx, &c->lval, batch, "classifier-guided model")) ||
        (st = lgd_buffer_reserve(ctx, &c->grad, n, "classifier-guided model")))
        return st;
    if ((st = lgd_loss_eval_at_sigma(c->loss, x, batch, sigma, c->lval.data, c->grad.data)))
        return st;
    /* out = D - w sigma^2 grad l */
    float lambda = (float)(-(double)c->scale * (double)sigma * (double)sigma);
    ctx->ops->axpby(ctx->be, n, lambda, c->grad.data, 1.0f, out);
    return LGD_OK;
}

static lgd_status cg_vjp(lgd_model *m, const float *x, float sigma, const float *cond,
                         size_t batch, const float *v, float *out)
{
    (void)x, (void)sigma, (void)cond, (void)batch, (void)v, (void)out;
    return lgd_error(m->ctx, LGD_ERR_UNSUPPORTED,
                     "the classifier-guided model has no VJP (it would need the classifier's "
                     "Hessian); use it with LGD_GUIDANCE_NONE");
}

static void cg_destroy(lgd_model *m)
{
    cg_model *c = m->impl;
    lgd_buffer_release(m->ctx, &c->lval);
    lgd_buffer_release(m->ctx, &c->grad);
    lgd_model_release(c->base);
    lgd_loss_release(c->loss);
    free(c);
}

static const lgd_model_vtable cg_vtable = {
    .name = "classifier-guided",
    .denoise = cg_denoise,
    .vjp = cg_vjp,
    .destroy = cg_destroy,
};

lgd_status lgd_model_create_classifier_guided(lgd_context *ctx, lgd_model *model,
                                              lgd_loss *loss, float scale, lgd_model **out)
{
    static const char fn[] = "lgd_model_create_classifier_guided";
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: out_model is NULL", fn);
    *out = NULL;
    if (!model || !loss)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                         model ? "loss" : "model");
    if (model->ctx != ctx || loss->ctx != ctx)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: the %s belongs to another context",
                         fn, model->ctx != ctx ? "model" : "loss");
    if (!isfinite(scale))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: scale = %g is not finite", fn,
                         (double)scale);
    if (model->dim != loss->dim)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH, "%s: the model has dim %lld, the loss %lld",
                         fn, (long long)model->dim, (long long)loss->dim);
    cg_model *c = calloc(1, sizeof *c);
    if (!c)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    c->base = model;
    c->loss = loss;
    c->scale = scale;
    lgd_status st = lgd_model_new(ctx, &cg_vtable, model->dim, model->cond_dim, c, out);
    if (st) {
        free(c);
        return st;
    }
    lgd_model_retain(model);
    lgd_loss_retain(loss);
    return LGD_OK;
}
