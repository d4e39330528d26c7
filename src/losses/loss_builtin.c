/*
 * loss_builtin.c - the built-in losses: weighted squared error, linear inverse
 * problem, logistic, and weighted sums of losses.
 *
 * Parameters live in backend buffers and every computation goes through the
 * backend table (ctx->ops) and the losses' kernel table (loss_kernels.h), so a
 * device backend that implements both runs these losses unchanged. Scratch buffers are kept in the loss
 * and grow only when the batch does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/checked.h"
#include "losses/loss_internal.h"
#include "losses/loss_kernels.h"

/* ---- shared checks ---- */

static lgd_status check_finite_array(lgd_context *ctx, const char *fn, const char *what,
                                     const float *v, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!lgd_is_finite(v[i]))
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: %s[%zu] is not finite", fn,
                             what, i);
    return LGD_OK;
}

/* rows * cols as size_t, failing on overflow (or values that cannot be float counts) */
static lgd_status checked_size(lgd_context *ctx, const char *fn, int64_t rows, int64_t cols,
                               size_t *out)
{
    int64_t n, bytes;
    if (rows <= 0 || cols <= 0 || lgd_mul_i64(rows, cols, &n) ||
        lgd_mul_i64(n, (int64_t)sizeof(float), &bytes) || (uint64_t)bytes > SIZE_MAX)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: %lld x %lld parameters is too large",
                         fn, (long long)rows, (long long)cols);
    *out = (size_t)n;
    return LGD_OK;
}

/* target_rows must be 1 (shared) or the batch of this evaluation */
static lgd_status check_target_rows(lgd_loss *l, size_t target_rows, size_t batch)
{
    if (target_rows == 1 || target_rows == batch)
        return LGD_OK;
    return lgd_error(l->ctx, LGD_ERR_SHAPE_MISMATCH,
                     "%s loss: it has %zu target rows, which must be 1 or the batch (%zu)",
                     l->vt->name, target_rows, batch);
}

/* ---- squared error ---- */

typedef struct sqerr_loss {
    const lgd_loss_kernels *kern;
    lgd_buffer target;  /* [target_rows][dim] */
    lgd_buffer weights; /* [dim], or empty for all ones */
    size_t target_rows;
} sqerr_loss;

static lgd_status sqerr_eval(lgd_loss *l, const float *x, size_t batch, size_t n,
                             size_t first_draw, size_t total_draws, float *loss, float *grad)
{
    (void)first_draw; /* the draw index does not change this loss */
    (void)total_draws;
    sqerr_loss *s = l->impl;
    lgd_status st = check_target_rows(l, s->target_rows, batch);
    if (st)
        return st;
    lgd_context *ctx = l->ctx;
    s->kern->sqerr(ctx->be, batch * n, (size_t)l->dim, x, s->target.data, s->target_rows,
                         n, s->weights.data, loss, grad);
    return LGD_OK;
}

static void sqerr_block(const lgd_loss *l, size_t sample, size_t m, const float *x,
                        float *loss, float *grad)
{
    const sqerr_loss *s = l->impl;
    size_t dim = (size_t)l->dim;
    s->kern->sqerr_rows(m, dim, x, s->target.data + (sample % s->target_rows) * dim,
                        s->weights.data, loss, grad);
}

static void sqerr_free(lgd_context *ctx, sqerr_loss *s)
{
    lgd_buffer_release(ctx, &s->target);
    lgd_buffer_release(ctx, &s->weights);
    free(s);
}

static void sqerr_destroy(lgd_loss *l) { sqerr_free(l->ctx, l->impl); }

static const lgd_loss_vtable sqerr_vtable = {
    .name = "squared_error",
    .eval = sqerr_eval,
    .destroy = sqerr_destroy,
};

lgd_status lgd_loss_create_squared_error(lgd_context *ctx, int64_t dim, const float *target,
                                         int64_t target_rows, const float *weights,
                                         lgd_loss **out)
{
    static const char fn[] = "lgd_loss_create_squared_error";
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: out_loss is NULL", fn);
    *out = NULL;
    if (dim <= 0)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: dim = %lld must be positive", fn,
                         (long long)dim);
    if (!target)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: target is NULL", fn);
    if (target_rows < 1)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: target_rows = %lld must be 1 or the batch size", fn,
                         (long long)target_rows);
    size_t tcount = 0;
    lgd_status st = checked_size(ctx, fn, target_rows, dim, &tcount);
    if (st)
        return st;
    if ((st = check_finite_array(ctx, fn, "target", target, tcount)))
        return st;
    if (weights) {
        if ((st = check_finite_array(ctx, fn, "weights", weights, (size_t)dim)))
            return st;
        for (int64_t j = 0; j < dim; j++)
            if (weights[j] < 0.0f)
                return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                                 "%s: weights[%lld] = %g is negative", fn, (long long)j,
                                 (double)weights[j]);
    }
    const void *kern = NULL;
    if ((st = lgd_kernels_find(ctx, &lgd_loss_kernel_table, fn, &kern)))
        return st;
    sqerr_loss *s = calloc(1, sizeof *s);
    if (!s)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    s->kern = kern;
    s->target_rows = (size_t)target_rows;
    if ((st = lgd_buffer_from_host(ctx, &s->target, target, tcount, "squared error target")) ||
        (weights &&
         (st = lgd_buffer_from_host(ctx, &s->weights, weights, (size_t)dim,
                                    "squared error weights"))) ||
        (st = lgd_loss_new(ctx, &sqerr_vtable, dim, s, out))) {
        sqerr_free(ctx, s);
        return st;
    }
    if (s->kern->sqerr_rows) {
        (*out)->block.eval = sqerr_block;
        (*out)->block.target_rows = s->target_rows;
    }
    return LGD_OK;
}

/* ---- linear inverse problem ---- */

typedef struct linear_loss {
    const lgd_loss_kernels *kern;
    lgd_buffer H;  /* [m][dim] */
    lgd_buffer y;  /* [target_rows][m] */
    lgd_buffer hx; /* scratch [rows][m]: H x, then the scaled residual */
    size_t m, target_rows;
    float inv_s2;
} linear_loss;

static lgd_status linear_eval(lgd_loss *l, const float *x, size_t batch, size_t n,
                              size_t first_draw, size_t total_draws, float *loss, float *grad)
{
    (void)first_draw; /* the draw index does not change this loss */
    (void)total_draws;
    linear_loss *s = l->impl;
    lgd_context *ctx = l->ctx;
    lgd_status st = check_target_rows(l, s->target_rows, batch);
    if (st)
        return st;
    size_t rows = batch * n, dim = (size_t)l->dim, m = s->m, hx; /* rows <= x's numel */
    if (lgd_mul_size(rows, m, &hx))
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "linear loss: batch %zu is too large",
                         rows);
    if ((st = lgd_buffer_reserve(ctx, &s->hx, hx, "linear loss scratch")))
        return st;
    /* hx[rows][m] = X H^T */
    ctx->ops->gemm(ctx->be, 0, 1, rows, m, dim, 1.0f, x, dim, s->H.data, dim, 0.0f, s->hx.data,
                   m);
    /* hx <- (H x - y) / s^2, loss = |H x - y|^2 / (2 s^2) */
    s->kern->residual(ctx->be, rows, m, s->y.data, s->target_rows, n, s->inv_s2,
                            s->hx.data, loss);
    /* grad[rows][dim] = res H */
    if (grad)
        ctx->ops->gemm(ctx->be, 0, 0, rows, dim, m, 1.0f, s->hx.data, m, s->H.data, dim, 0.0f,
                       grad, dim);
    return LGD_OK;
}

static void linear_free(lgd_context *ctx, linear_loss *s)
{
    lgd_buffer_release(ctx, &s->H);
    lgd_buffer_release(ctx, &s->y);
    lgd_buffer_release(ctx, &s->hx);
    free(s);
}

static void linear_destroy(lgd_loss *l) { linear_free(l->ctx, l->impl); }

static const lgd_loss_vtable linear_vtable = {
    .name = "linear",
    .eval = linear_eval,
    .destroy = linear_destroy,
};

lgd_status lgd_loss_create_linear(lgd_context *ctx, int64_t dim, int64_t m, const float *H,
                                  const float *y, int64_t target_rows, float noise_sigma,
                                  lgd_loss **out)
{
    static const char fn[] = "lgd_loss_create_linear";
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: out_loss is NULL", fn);
    *out = NULL;
    if (dim <= 0)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: dim = %lld must be positive", fn,
                         (long long)dim);
    if (m <= 0)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: m = %lld must be positive", fn,
                         (long long)m);
    if (!H)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: H is NULL", fn);
    if (!y)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: y is NULL", fn);
    if (target_rows < 1)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: target_rows = %lld must be 1 or the batch size", fn,
                         (long long)target_rows);
    if (!(noise_sigma > 0.0f) || !lgd_is_finite(noise_sigma))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: noise_sigma = %g must be positive and finite", fn,
                         (double)noise_sigma);
    double inv_s2 = 1.0 / ((double)noise_sigma * (double)noise_sigma);
    if (!lgd_is_finite((float)inv_s2))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: noise_sigma = %g is too small (1 / sigma^2 overflows float)", fn,
                         (double)noise_sigma);
    size_t hcount = 0, ycount = 0;
    lgd_status st;
    if ((st = checked_size(ctx, fn, m, dim, &hcount)) ||
        (st = checked_size(ctx, fn, target_rows, m, &ycount)) ||
        (st = check_finite_array(ctx, fn, "H", H, hcount)) ||
        (st = check_finite_array(ctx, fn, "y", y, ycount)))
        return st;
    const void *kern = NULL;
    if ((st = lgd_kernels_find(ctx, &lgd_loss_kernel_table, fn, &kern)))
        return st;
    linear_loss *s = calloc(1, sizeof *s);
    if (!s)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    s->kern = kern;
    s->m = (size_t)m;
    s->target_rows = (size_t)target_rows;
    s->inv_s2 = (float)inv_s2;
    if ((st = lgd_buffer_from_host(ctx, &s->H, H, hcount, "linear loss H")) ||
        (st = lgd_buffer_from_host(ctx, &s->y, y, ycount, "linear loss y")) ||
        (st = lgd_loss_new(ctx, &linear_vtable, dim, s, out))) {
        linear_free(ctx, s);
        return st;
    }
    return LGD_OK;
}

/* ---- logistic ---- */

typedef struct logistic_loss {
    const lgd_loss_kernels *kern;
    lgd_buffer a; /* [dim] */
    float b;
} logistic_loss;

static lgd_status logistic_eval(lgd_loss *l, const float *x, size_t batch, size_t n,
                                size_t first_draw, size_t total_draws,
                                float *loss, float *grad)
{
    (void)first_draw; /* the draw index does not change this loss */
    (void)total_draws;
    logistic_loss *s = l->impl;
    lgd_context *ctx = l->ctx;
    s->kern->logistic(ctx->be, batch * n, (size_t)l->dim, x, s->a.data, s->b, loss, grad);
    return LGD_OK;
}

static void logistic_block(const lgd_loss *l, size_t sample, size_t m, const float *x,
                           float *loss, float *grad)
{
    (void)sample;
    const logistic_loss *s = l->impl;
    s->kern->logistic_rows(m, (size_t)l->dim, x, s->a.data, s->b, loss, grad);
}

static void logistic_free(lgd_context *ctx, logistic_loss *s)
{
    lgd_buffer_release(ctx, &s->a);
    free(s);
}

static void logistic_destroy(lgd_loss *l) { logistic_free(l->ctx, l->impl); }

static const lgd_loss_vtable logistic_vtable = {
    .name = "logistic",
    .eval = logistic_eval,
    .destroy = logistic_destroy,
};

lgd_status lgd_loss_create_logistic(lgd_context *ctx, int64_t dim, const float *a, float b,
                                    lgd_loss **out)
{
    static const char fn[] = "lgd_loss_create_logistic";
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: out_loss is NULL", fn);
    *out = NULL;
    if (dim <= 0)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: dim = %lld must be positive", fn,
                         (long long)dim);
    if (!a)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: a is NULL", fn);
    size_t acount = 0;
    lgd_status st;
    if ((st = checked_size(ctx, fn, 1, dim, &acount)) ||
        (st = check_finite_array(ctx, fn, "a", a, acount)))
        return st;
    if (!lgd_is_finite(b))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: b = %g is not finite", fn,
                         (double)b);
    const void *kern = NULL;
    if ((st = lgd_kernels_find(ctx, &lgd_loss_kernel_table, fn, &kern)))
        return st;
    logistic_loss *s = calloc(1, sizeof *s);
    if (!s)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    s->kern = kern;
    s->b = b;
    if ((st = lgd_buffer_from_host(ctx, &s->a, a, acount, "logistic loss a")) ||
        (st = lgd_loss_new(ctx, &logistic_vtable, dim, s, out))) {
        logistic_free(ctx, s);
        return st;
    }
    if (s->kern->logistic_rows)
        (*out)->block.eval = logistic_block;
    return LGD_OK;
}

/* ---- weighted sums ---- */

typedef struct sum_loss {
    int count;
    lgd_loss **terms; /* each retained */
    float *weights;   /* host copy [count] */
    lgd_buffer tl;    /* scratch: one term's loss [rows] */
    lgd_buffer tg;    /* scratch: one term's gradient [rows][dim] */
} sum_loss;

/* Re-reports a term's error with the term's index in front. */
static lgd_status sum_term_error(lgd_context *ctx, lgd_status st, int k)
{
    char msg[LGD_ERROR_CAP];
    memcpy(msg, ctx->error, sizeof msg);
    msg[sizeof msg - 1] = '\0';
    return lgd_error(ctx, st, "sum loss, term %d: %s", k, msg);
}

static lgd_status sum_eval(lgd_loss *l, const float *x, size_t batch, size_t n,
                           size_t first_draw, size_t total_draws, float *loss, float *grad)
{
    sum_loss *s = l->impl;
    lgd_context *ctx = l->ctx;
    size_t rows = batch * n, dim = (size_t)l->dim;
    lgd_status st;
    /* term 0 writes straight into the outputs, then is scaled in place */
    if ((st = lgd_loss_eval_draws(s->terms[0], x, batch, n, first_draw, total_draws, loss,
                                   grad)))
        return sum_term_error(ctx, st, 0);
    if (s->weights[0] != 1.0f) {
        ctx->ops->axpby(ctx->be, rows, s->weights[0], loss, 0.0f, loss);
        if (grad)
            ctx->ops->axpby(ctx->be, rows * dim, s->weights[0], grad, 0.0f, grad);
    }
    if (s->count == 1)
        return LGD_OK;
    if ((st = lgd_buffer_reserve(ctx, &s->tl, rows, "sum loss scratch")) ||
        (grad && (st = lgd_buffer_reserve(ctx, &s->tg, rows * dim, "sum loss gradient scratch"))))
        return st;
    for (int k = 1; k < s->count; k++) {
        float *tg = grad ? s->tg.data : NULL;
        if ((st = lgd_loss_eval_draws(s->terms[k], x, batch, n, first_draw, total_draws,
                                       s->tl.data, tg)))
            return sum_term_error(ctx, st, k);
        ctx->ops->axpby(ctx->be, rows, s->weights[k], s->tl.data, 1.0f, loss);
        if (grad)
            ctx->ops->axpby(ctx->be, rows * dim, s->weights[k], tg, 1.0f, grad);
    }
    return LGD_OK;
}

static void sum_free(lgd_context *ctx, sum_loss *s)
{
    if (s->terms)
        for (int k = 0; k < s->count; k++)
            lgd_loss_release(s->terms[k]);
    free(s->terms);
    free(s->weights);
    lgd_buffer_release(ctx, &s->tl);
    lgd_buffer_release(ctx, &s->tg);
    free(s);
}

static void sum_destroy(lgd_loss *l) { sum_free(l->ctx, l->impl); }

static const lgd_loss_vtable sum_vtable = {
    .name = "sum",
    .eval = sum_eval,
    .destroy = sum_destroy,
};

lgd_status lgd_loss_create_sum(lgd_context *ctx, int32_t count, lgd_loss *const *terms,
                               const float *weights, lgd_loss **out)
{
    static const char fn[] = "lgd_loss_create_sum";
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: out_loss is NULL", fn);
    *out = NULL;
    if (count < 1)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: count = %d must be positive", fn,
                         count);
    if (!terms)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: terms is NULL", fn);
    for (int k = 0; k < count; k++) {
        if (!terms[k])
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: terms[%d] is NULL", fn, k);
        if (terms[k]->ctx != ctx)
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "%s: terms[%d] belongs to a different context", fn, k);
        if (terms[k]->dim != terms[0]->dim)
            return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH,
                             "%s: terms[%d] has dim %lld but terms[0] has dim %lld", fn, k,
                             (long long)terms[k]->dim, (long long)terms[0]->dim);
    }
    lgd_status st;
    if (weights && (st = check_finite_array(ctx, fn, "weights", weights, (size_t)count)))
        return st;
    sum_loss *s = calloc(1, sizeof *s);
    if (!s)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    s->terms = calloc((size_t)count, sizeof *s->terms);
    s->weights = malloc((size_t)count * sizeof *s->weights);
    if (!s->terms || !s->weights) {
        sum_free(ctx, s);
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    s->count = count;
    for (int k = 0; k < count; k++) {
        s->terms[k] = lgd_loss_retain(terms[k]);
        s->weights[k] = weights ? weights[k] : 1.0f;
    }
    if ((st = lgd_loss_new(ctx, &sum_vtable, terms[0]->dim, s, out))) {
        sum_free(ctx, s);
        return st;
    }
    return LGD_OK;
}
