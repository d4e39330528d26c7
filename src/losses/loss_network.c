/*
 * loss_network.c - a loaded network as a loss (include/lgd/network_loss.h):
 * l(x) = scale * R(f(c_in x, t)) with R a cross-entropy over labels, the scalar output,
 * or a squared error to targets; its gradient is the network's input VJP of dR/df.
 *
 * Everything runs on the context's backend: the network's own forward and VJP passes
 * (nn/network_internal.h) and the backend table's generic ops (log-sum-exp and softmax
 * rows, row dots, axpby, row broadcasts), so the loss runs wherever networks run. The
 * rows of one evaluation go through the network in pieces of at most max_rows rows
 * (whole samples, or a range of one sample's draws), so the scratch here and the
 * network's activation arena stay bounded by max_rows whatever the batch and n.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/checked.h"
#include "core/internal.h"
#include "losses/loss_internal.h"
#include "losses/loss_network.h"
#include "lgd/network_loss.h"
#include "models/model_internal.h"
#include "nn/network_internal.h"

typedef struct netloss {
    lgd_network *net;
    lgd_network_loss_kind kind;
    lgd_network_input input;
    float scale, t;
    float sigma;           /* INPUT_NOISY: options.sigma, or the sigma of the call in progress */
    float default_sigma;   /* options.sigma */
    size_t max_rows;
    size_t dim, out_dim;
    /* INPUT_NOISY: the adapter's c_in (prediction, sigma_data) and an adapted model of no
     * network whose only use is lgd_model_network_time(), the adapters' rule for t */
    lgd_prediction prediction;
    float sigma_data;
    lgd_model *timer;
    /* per-sample rows: CROSS_ENTROPY one-hot labels, SQUARED_ERROR targets, both
     * [data_rows][out_dim]; data_rows 0: none set */
    lgd_buffer data;
    size_t data_rows;
    /* scratch of one piece of at most max_rows rows */
    lgd_buffer xin;  /* [R][dim] c_in x (INPUT_NOISY) */
    lgd_buffer f;    /* [R][out_dim] the network's output */
    lgd_buffer y;    /* [R][out_dim] the rows' one-hot labels or targets */
    lgd_buffer v;    /* [R][out_dim] dl/df */
    lgd_buffer lse;  /* [R] */
    lgd_buffer dot;  /* [R] */
} netloss;

static const char *kind_name(lgd_network_loss_kind k)
{
    switch (k) {
    case LGD_NETWORK_LOSS_CROSS_ENTROPY: return "cross-entropy";
    case LGD_NETWORK_LOSS_SCALAR: return "scalar";
    default: return "squared-error";
    }
}

/* c_in(sigma) of the adapter (as models/model_network.c computes it) */
static float c_in_of(const netloss *s, float sigma)
{
    double s2 = (double)sigma * (double)sigma;
    if (s->prediction == LGD_PREDICT_EDM) {
        double sd = s->sigma_data;
        return (float)(1.0 / sqrt(s2 + sd * sd));
    }
    return (float)(1.0 / sqrt(1.0 + s2));
}

/* y[R][K] = data row (b0 + r / m) for the piece's rows (data_rows == 1: row 0 for all) */
static void expand_rows(lgd_context *ctx, netloss *s, size_t b0, size_t R, size_t m)
{
    const lgd_backend_ops *o = ctx->ops;
    size_t K = s->out_dim;
    const float *src = s->data.data + (s->data_rows == 1 ? 0 : b0 * K);
    size_t repeat = s->data_rows == 1 ? R : m;
    /* broadcast_axpy reads y (times 0): a zeroed v, which the piece overwrites later */
    o->fill(ctx->be, s->v.data, R * K, 0.0f);
    o->broadcast_axpy(ctx->be, R, repeat, K, src, 0.0f, s->v.data, s->y.data);
}

/* One piece: samples b0 .. b0 + nb - 1, draws i0 .. i0 + m - 1 of each (nb == 1 or the
 * piece holds whole samples, m == n), rows r0 = b0 * n + i0 .. r0 + R - 1 of x. */
static lgd_status eval_piece(lgd_loss *l, const float *x, size_t b0, size_t R, size_t m,
                             size_t r0, float t, float c_in, float *loss, float *grad)
{
    netloss *s = l->impl;
    lgd_context *ctx = l->ctx;
    const lgd_backend_ops *o = ctx->ops;
    const size_t D = s->dim, K = s->out_dim;
    const float *xp = x + r0 * D;
    float *lp = loss + r0;
    float *gp = grad ? grad + r0 * D : NULL;
    const float *xin = xp;
    lgd_status st;
    if (s->input == LGD_NETWORK_INPUT_NOISY) {
        o->axpby(ctx->be, R * D, c_in, xp, 0.0f, s->xin.data);
        xin = s->xin.data;
    }
    if ((st = lgd_network_forward_raw(s->net, xin, t, NULL, R, s->f.data)))
        return st;
    const float sc = s->scale;
    switch (s->kind) {
    case LGD_NETWORK_LOSS_CROSS_ENTROPY:
        expand_rows(ctx, s, b0, R, m);
        /* loss = scale (logsumexp(f) - f . onehot) */
        o->logsumexp_rows(ctx->be, R, K, s->f.data, s->lse.data);
        o->row_dot(ctx->be, R, K, s->f.data, s->y.data, s->dot.data, 1);
        o->axpby(ctx->be, R, -1.0f, s->dot.data, 1.0f, s->lse.data);
        o->axpby(ctx->be, R, sc, s->lse.data, 0.0f, lp);
        if (gp) { /* v = scale (softmax(f) - onehot) */
            if (o->copy(ctx->be, s->v.data, s->f.data, R * K * sizeof(float)))
                return lgd_backend_error(ctx, LGD_ERR_INTERNAL,
                                         "network loss: copying the logits failed");
            o->softmax_rows(ctx->be, R, K, s->v.data);
            o->axpby(ctx->be, R * K, -sc, s->y.data, sc, s->v.data);
        }
        break;
    case LGD_NETWORK_LOSS_SCALAR: /* loss = scale f, v = scale */
        o->axpby(ctx->be, R, sc, s->f.data, 0.0f, lp);
        if (gp)
            o->fill(ctx->be, s->v.data, R, sc);
        break;
    default: /* SQUARED_ERROR: d = f - y; loss = scale |d|^2 / 2, v = scale d */
        if (s->data_rows) {
            expand_rows(ctx, s, b0, R, m);
            o->axpby(ctx->be, R * K, -1.0f, s->y.data, 1.0f, s->f.data);
        }
        o->row_dot(ctx->be, R, K, s->f.data, s->f.data, lp, 1);
        o->axpby(ctx->be, R, 0.5f * sc, lp, 0.0f, lp);
        if (gp)
            o->axpby(ctx->be, R * K, sc, s->f.data, 0.0f, s->v.data);
        break;
    }
    if (!gp)
        return LGD_OK;
    /* grad = c_in (df/dx_in)^T v, the VJP right after the forward pass on the same x_in */
    if ((st = lgd_network_vjp_raw(s->net, xin, t, NULL, R, s->v.data, gp)))
        return st;
    if (s->input == LGD_NETWORK_INPUT_NOISY)
        o->axpby(ctx->be, R * D, c_in, gp, 0.0f, gp);
    return LGD_OK;
}

/* the scratch for pieces of R rows */
static lgd_status reserve_scratch(lgd_loss *l, size_t R)
{
    netloss *s = l->impl;
    lgd_context *ctx = l->ctx;
    size_t rk, rd;
    if (lgd_mul_size(R, s->out_dim, &rk) || lgd_mul_size(R, s->dim, &rd))
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY,
                         "network loss: %zu rows of scratch is too large (max_rows)", R);
    lgd_status st;
    if ((st = lgd_buffer_reserve(ctx, &s->f, rk, "network loss")) ||
        (st = lgd_buffer_reserve(ctx, &s->y, rk, "network loss")) ||
        (st = lgd_buffer_reserve(ctx, &s->v, rk, "network loss")) ||
        (st = lgd_buffer_reserve(ctx, &s->lse, R, "network loss")) ||
        (st = lgd_buffer_reserve(ctx, &s->dot, R, "network loss")) ||
        (s->input == LGD_NETWORK_INPUT_NOISY &&
         (st = lgd_buffer_reserve(ctx, &s->xin, rd, "network loss"))))
        return st;
    return LGD_OK;
}

static lgd_status netloss_eval(lgd_loss *l, const float *x, size_t batch, size_t n,
                               size_t first_draw, size_t total_draws, float *loss, float *grad)
{
    (void)first_draw; /* a row's loss does not depend on its draw index */
    (void)total_draws;
    netloss *s = l->impl;
    lgd_context *ctx = l->ctx;
    if (s->kind == LGD_NETWORK_LOSS_CROSS_ENTROPY && !s->data_rows)
        return lgd_error(ctx, LGD_ERR_STATE,
                         "network loss: the cross-entropy has no labels (set them with "
                         "lgd_loss_network_set_labels)");
    if (s->data_rows > 1 && s->data_rows != batch)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH,
                         "network loss: it has %zu %s rows, which must be 1 or the batch (%zu)",
                         s->data_rows,
                         s->kind == LGD_NETWORK_LOSS_CROSS_ENTROPY ? "label" : "target",
                         batch);
    float t = s->t, c_in = 1.0f;
    lgd_status st;
    if (s->input == LGD_NETWORK_INPUT_NOISY) {
        if ((st = lgd_model_network_time(s->timer, s->sigma, &t)))
            return st;
        c_in = c_in_of(s, s->sigma);
    }
    const size_t M = s->max_rows;
    size_t rows_max = n <= M ? (M / n) * n : M;
    if (rows_max > batch * n)
        rows_max = batch * n;
    if ((st = reserve_scratch(l, rows_max)))
        return st;
    if (n <= M) { /* whole samples: M / n of them per piece */
        size_t per = M / n;
        for (size_t b0 = 0; b0 < batch; b0 += per) {
            size_t nb = batch - b0 < per ? batch - b0 : per;
            if ((st = eval_piece(l, x, b0, nb * n, n, b0 * n, t, c_in, loss, grad)))
                return st;
        }
    } else { /* one sample's draws, M at a time */
        for (size_t b = 0; b < batch; b++)
            for (size_t i0 = 0; i0 < n; i0 += M) {
                size_t m = n - i0 < M ? n - i0 : M;
                if ((st = eval_piece(l, x, b, m, m, b * n + i0, t, c_in, loss, grad)))
                    return st;
            }
    }
    return LGD_OK;
}

static void netloss_destroy(lgd_loss *l)
{
    netloss *s = l->impl;
    lgd_context *ctx = l->ctx;
    lgd_buffer *bufs[] = { &s->data, &s->xin, &s->f, &s->y, &s->v, &s->lse, &s->dot };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        lgd_buffer_release(ctx, bufs[i]);
    lgd_model_release(s->timer);
    lgd_network_destroy(s->net);
    free(s);
}

static const lgd_loss_vtable netloss_vtable = {
    .name = "network",
    .eval = netloss_eval,
    .destroy = netloss_destroy,
};

/* ---- the adapters' time rule without a network ---- */

static lgd_status no_forward(void *net, const float *x_in, float t, const float *cond,
                             size_t batch, float *out)
{
    (void)net, (void)x_in, (void)t, (void)cond, (void)batch, (void)out;
    return LGD_ERR_INTERNAL; /* never called: the model only maps sigma to t */
}

static const lgd_raw_network_vtable timer_vtable = {
    .forward = no_forward,
    .vjp = NULL,
    .destroy = NULL,
};

/* ---- creation and setters ---- */

lgd_status lgd_network_loss_options_init(lgd_network_loss_options *o, uint32_t struct_size)
{
    const lgd_network_loss_options defaults = LGD_NETWORK_LOSS_OPTIONS_INIT;
    return lgd_init_struct(o, struct_size, &defaults, sizeof defaults,
                           sizeof(lgd_network_loss_options));
}

static lgd_status check_options(lgd_context *ctx, const char *fn,
                                const lgd_network_loss_options *o)
{
    if ((unsigned)o->kind > LGD_NETWORK_LOSS_SQUARED_ERROR)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: options->kind = %d is not an lgd_network_loss_kind", fn,
                         (int)o->kind);
    if ((unsigned)o->input > LGD_NETWORK_INPUT_NOISY)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: options->input = %d is not an lgd_network_input", fn,
                         (int)o->input);
    if (!isfinite(o->scale))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: options->scale = %g is not finite",
                         fn, (double)o->scale);
    if (o->input == LGD_NETWORK_INPUT_CLEAN && !isfinite(o->t))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: options->t = %g is not finite", fn,
                         (double)o->t);
    if (o->input == LGD_NETWORK_INPUT_NOISY && !(isfinite(o->sigma) && o->sigma > 0.0f))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: options->sigma = %g must be finite and > 0", fn, (double)o->sigma);
    if (o->max_rows < 1)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: options->max_rows = %lld must be >= 1",
                         fn, (long long)o->max_rows);
    return LGD_OK;
}

/* The INPUT_NOISY adapter: the caller's (read over the defaults) or the file's. */
static lgd_status make_timer(lgd_context *ctx, const char *fn, netloss *s,
                             const lgd_adapter_options *user)
{
    lgd_adapter_options a = LGD_ADAPTER_OPTIONS_INIT, defaults = LGD_ADAPTER_OPTIONS_INIT;
    lgd_status st;
    if (user)
        st = lgd_read_struct(ctx, fn, "options->adapter", &a, sizeof a, sizeof a, user,
                             &defaults);
    else
        st = lgd_network_adapter_options(s->net, &a);
    if (st)
        return st;
    if ((st = lgd_model_create_adapted(ctx, fn, &timer_vtable, NULL, (int64_t)s->dim, 0, &a,
                                       &s->timer)))
        return st;
    s->prediction = a.prediction;
    s->sigma_data = a.sigma_data;
    return LGD_OK;
}

lgd_status lgd_loss_create_network(lgd_context *ctx, lgd_network *net,
                                   const lgd_network_loss_options *options, lgd_loss **out)
{
    static const char fn[] = "lgd_loss_create_network";
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: out_loss is NULL", fn);
    *out = NULL;
    if (!net)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: network is NULL", fn);
    if (lgd_network_context(net) != ctx)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: the network belongs to another context", fn);
    lgd_network_loss_options o, defaults = LGD_NETWORK_LOSS_OPTIONS_INIT;
    lgd_status st = lgd_read_struct(ctx, fn, "options", &o, sizeof o, sizeof o, options,
                                    &defaults);
    if (st || (st = check_options(ctx, fn, &o)))
        return st;
    int64_t D = lgd_network_dim(net), K = lgd_network_out_dim(net);
    if (lgd_network_cond_dim(net) > 0)
        return lgd_error(ctx, LGD_ERR_UNSUPPORTED,
                         "%s: the network is conditional (%lld condition values per row); a "
                         "network loss takes an unconditional network",
                         fn, (long long)lgd_network_cond_dim(net));
    if (o.kind == LGD_NETWORK_LOSS_SCALAR && K != 1)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH,
                         "%s: a scalar loss needs a network with out_dim 1; this one has %lld "
                         "outputs (use the squared error, or a cross-entropy over logits)",
                         fn, (long long)K);
    if (o.kind == LGD_NETWORK_LOSS_CROSS_ENTROPY && K < 2)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH,
                         "%s: a cross-entropy needs a network with out_dim >= 2 (one logit per "
                         "class); this one has %lld",
                         fn, (long long)K);
    netloss *s = calloc(1, sizeof *s);
    if (!s)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    s->net = net;
    s->kind = o.kind;
    s->input = o.input;
    s->scale = o.scale;
    s->t = o.t;
    s->sigma = s->default_sigma = o.sigma;
    s->max_rows = (uint64_t)o.max_rows > SIZE_MAX ? SIZE_MAX : (size_t)o.max_rows;
    s->dim = (size_t)D;
    s->out_dim = (size_t)K;
    if (o.input == LGD_NETWORK_INPUT_NOISY && (st = make_timer(ctx, fn, s, o.adapter))) {
        free(s);
        return st;
    }
    if ((st = lgd_loss_new(ctx, &netloss_vtable, D, s, out))) {
        lgd_model_release(s->timer);
        free(s);
        return st;
    }
    lgd_network_retain(net);
    return LGD_OK;
}

/* the network loss behind l, or NULL after recording LGD_ERR_UNSUPPORTED */
static netloss *as_netloss(lgd_loss *l, const char *fn, int want_kind)
{
    if (l->vt != &netloss_vtable) {
        lgd_error(l->ctx, LGD_ERR_UNSUPPORTED, "%s: the %s loss is not a network loss", fn,
                  l->vt->name);
        return NULL;
    }
    netloss *s = l->impl;
    if (want_kind >= 0 && (int)s->kind != want_kind) {
        lgd_error(l->ctx, LGD_ERR_UNSUPPORTED, "%s: the network loss is a %s, not a %s", fn,
                  kind_name(s->kind), kind_name((lgd_network_loss_kind)want_kind));
        return NULL;
    }
    return s;
}

/* replaces s->data with rows x out_dim floats from host (NULL: none) */
static lgd_status replace_data(lgd_loss *l, netloss *s, const float *host, size_t rows,
                               const char *what)
{
    lgd_buffer nb = { 0 };
    if (host) {
        lgd_status st = lgd_buffer_from_host(l->ctx, &nb, host, rows * s->out_dim, what);
        if (st)
            return st;
    }
    lgd_buffer_release(l->ctx, &s->data);
    s->data = nb;
    s->data_rows = host ? rows : 0;
    return LGD_OK;
}

/* rows * out_dim floats as a size, or LGD_ERR_OUT_OF_MEMORY */
static lgd_status data_size(lgd_loss *l, const char *fn, netloss *s, int64_t rows, size_t *count)
{
    int64_t n, bytes;
    if (lgd_mul_i64(rows, (int64_t)s->out_dim, &n) ||
        lgd_mul_i64(n, (int64_t)sizeof(float), &bytes) || (uint64_t)bytes > SIZE_MAX)
        return lgd_error(l->ctx, LGD_ERR_OUT_OF_MEMORY, "%s: %lld rows of %zu values is too large",
                         fn, (long long)rows, s->out_dim);
    *count = (size_t)n;
    return LGD_OK;
}

lgd_status lgd_loss_network_set_labels(lgd_loss *l, const int32_t *labels, int64_t rows)
{
    static const char fn[] = "lgd_loss_network_set_labels";
    if (!l)
        return LGD_ERR_INVALID_ARGUMENT;
    netloss *s = as_netloss(l, fn, LGD_NETWORK_LOSS_CROSS_ENTROPY);
    if (!s)
        return LGD_ERR_UNSUPPORTED;
    if (!labels)
        return lgd_error(l->ctx, LGD_ERR_INVALID_ARGUMENT, "%s: labels is NULL", fn);
    if (rows < 1)
        return lgd_error(l->ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: rows = %lld must be 1 or the batch size", fn, (long long)rows);
    for (int64_t i = 0; i < rows; i++)
        if (labels[i] < 0 || (uint64_t)labels[i] >= s->out_dim)
            return lgd_error(l->ctx, LGD_ERR_INVALID_ARGUMENT,
                             "%s: labels[%lld] = %d is not a class of the network (0 .. %zu)",
                             fn, (long long)i, (int)labels[i], s->out_dim - 1);
    size_t count = 0;
    lgd_status st = data_size(l, fn, s, rows, &count);
    if (st)
        return st;
    float *onehot = calloc(count, sizeof *onehot);
    if (!onehot)
        return lgd_error(l->ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    for (int64_t i = 0; i < rows; i++)
        onehot[(size_t)i * s->out_dim + (size_t)labels[i]] = 1.0f;
    st = replace_data(l, s, onehot, (size_t)rows, "network loss labels");
    free(onehot);
    return st;
}

lgd_status lgd_loss_network_set_targets(lgd_loss *l, const float *targets, int64_t rows,
                                        int64_t cols)
{
    static const char fn[] = "lgd_loss_network_set_targets";
    if (!l)
        return LGD_ERR_INVALID_ARGUMENT;
    netloss *s = as_netloss(l, fn, LGD_NETWORK_LOSS_SQUARED_ERROR);
    if (!s)
        return LGD_ERR_UNSUPPORTED;
    if (!targets)
        return replace_data(l, s, NULL, 0, "network loss targets");
    if (rows < 1)
        return lgd_error(l->ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: rows = %lld must be 1 or the batch size", fn, (long long)rows);
    if (cols != (int64_t)s->out_dim)
        return lgd_error(l->ctx, LGD_ERR_SHAPE_MISMATCH,
                         "%s: cols = %lld, but the network has %zu outputs", fn, (long long)cols,
                         s->out_dim);
    size_t count = 0;
    lgd_status st = data_size(l, fn, s, rows, &count);
    if (st)
        return st;
    for (size_t i = 0; i < count; i++)
        if (!lgd_is_finite(targets[i]))
            return lgd_error(l->ctx, LGD_ERR_INVALID_ARGUMENT, "%s: targets[%zu] is not finite",
                             fn, i);
    return replace_data(l, s, targets, (size_t)rows, "network loss targets");
}

lgd_status lgd_loss_network_eval_sigma(lgd_loss *l, const lgd_tensor *x, float sigma,
                                       lgd_tensor *out_loss, lgd_tensor *out_grad)
{
    static const char fn[] = "lgd_loss_network_eval_sigma";
    if (!l)
        return LGD_ERR_INVALID_ARGUMENT;
    netloss *s = as_netloss(l, fn, -1);
    if (!s)
        return LGD_ERR_UNSUPPORTED;
    if (s->input != LGD_NETWORK_INPUT_NOISY)
        return lgd_error(l->ctx, LGD_ERR_UNSUPPORTED,
                         "%s: the network loss takes the clean input (LGD_NETWORK_INPUT_CLEAN); "
                         "create it with LGD_NETWORK_INPUT_NOISY to evaluate it at a sigma", fn);
    if (!(isfinite(sigma) && sigma > 0.0f))
        return lgd_error(l->ctx, LGD_ERR_INVALID_ARGUMENT, "%s: sigma = %g must be finite and > 0",
                         fn, (double)sigma);
    s->sigma = sigma;
    lgd_status st = lgd_loss_eval(l, x, out_loss, out_grad);
    s->sigma = s->default_sigma;
    return st;
}

lgd_status lgd_loss_eval_at_sigma(lgd_loss *l, const float *x, size_t batch, float sigma,
                                  float *loss, float *grad)
{
    if (l->vt != &netloss_vtable || ((netloss *)l->impl)->input != LGD_NETWORK_INPUT_NOISY)
        return lgd_loss_eval_raw(l, x, batch, 1, loss, grad);
    netloss *s = l->impl;
    s->sigma = sigma;
    lgd_status st = lgd_loss_eval_raw(l, x, batch, 1, loss, grad);
    s->sigma = s->default_sigma;
    return st;
}
