/*
 * guidance.c - loss-guidance estimators (DPS, LGD-MC, exact), step rules and
 * the guided denoiser. See include/lgd/guidance.h for the math.
 *
 * One code path serves DPS and LGD-MC: DPS is Monte Carlo with n = 1 and r = 0
 * (then the single weight is exactly 1 and the estimate is exactly the DPS one).
 * The n draws are processed in chunks of `chunk` with the backend's online
 * log-sum-exp (mc_accumulate), so memory depends on the chunk, not on n. The
 * model is evaluated once (denoise + one VJP) however large n is.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "losses/loss_internal.h"
#include "core/checked.h"
#include "models/model_internal.h"
#include "sampling/guidance_internal.h"
#include "core/rng.h"
#include "sampling/mc_kernels.h"

#include "sampling/guidance_impl.h"

lgd_status lgd_guidance_options_init(lgd_guidance_options *o, uint32_t struct_size)
{
    const lgd_guidance_options defaults = LGD_GUIDANCE_OPTIONS_INIT;
    return lgd_init_struct(o, struct_size, &defaults, sizeof defaults,
                           sizeof(lgd_guidance_options));
}

lgd_guidance *lgd_guidance_retain(lgd_guidance *g)
{
    if (g)
        lgd_ref_take(&g->refs);
    return g;
}

void lgd_guidance_release(lgd_guidance *g)
{
    if (!g || !lgd_ref_drop(&g->refs))
        return;
    lgd_context *ctx = g->ctx;
    lgd_buffer *bufs[] = { &g->cond, &g->xhat, &g->gvec, &g->v, &g->draws, &g->grad,
                           &g->losses, &g->st_max, &g->st_sum, &g->st_sum2, &g->st_wloss,
                           &g->st_lsum, &g->ess, &g->lambda, &g->norms, &g->st_vec,
                           &g->flags };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        lgd_buffer_release(ctx, bufs[i]);
    free(g->host);
    lgd_model_release(g->model);
    lgd_loss_release(g->loss);
    free(g);
    lgd_context_release(ctx);
}

void lgd_guidance_destroy(lgd_guidance *g) { lgd_guidance_release(g); }

lgd_context *lgd_guidance_context(const lgd_guidance *g) { return g ? g->ctx : NULL; }
int64_t lgd_guidance_dim(const lgd_guidance *g) { return g->model->dim; }

void lgd_guidance_set_seed(lgd_guidance *g, uint64_t seed)
{
    if (g)
        g->opt.seed = seed;
}

static float default_radius(float sigma, float sd)
{
    double s = sigma;
    return (float)(s * sd / sqrt(s * s + (double)sd * sd));
}

float lgd_guidance_radius(const lgd_guidance *g, float sigma)
{
    if (!g)
        return 0.0f;
    if (g->opt.radius)
        return g->opt.radius(g->opt.radius_user, sigma);
    return default_radius(sigma, g->opt.sigma_data);
}

lgd_status lgd_guidance_create(lgd_context *ctx, lgd_model *model, lgd_loss *loss,
                               const lgd_guidance_options *options, lgd_guidance **out)
{
    if (out) /* a failed create leaves NULL, whatever fails (lgd/lgd.h) */
        *out = NULL;
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    const char *fn = "lgd_guidance_create";
    if (!out || !model)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                         out ? "model" : "out_guidance");
    lgd_guidance_options o, defaults = LGD_GUIDANCE_OPTIONS_INIT;
    {
        lgd_status rst =
            lgd_read_struct(ctx, fn, "options", &o, sizeof o, sizeof o, options, &defaults);
        if (rst)
            return rst;
    }
    if (model->ctx != ctx || (loss && loss->ctx != ctx))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: the model and the loss must belong to this context", fn);
    if ((unsigned)o.kind > LGD_GUIDANCE_MC_GRADIENT_FREE)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: unknown guidance kind %d", fn,
                         (int)o.kind);
    if (o.kind != LGD_GUIDANCE_NONE && !loss)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: loss is NULL (only "
                         "LGD_GUIDANCE_NONE works without a loss)", fn);
    if (loss && loss->dim != model->dim)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH, "%s: loss dim %lld != model dim %lld", fn,
                         (long long)loss->dim, (long long)model->dim);
    if ((o.kind == LGD_GUIDANCE_MC || o.kind == LGD_GUIDANCE_EXACT ||
         o.kind == LGD_GUIDANCE_MC_GRADIENT_FREE) &&
        (o.n_samples < 1 || o.n_samples > LGD_GUIDANCE_MAX_SAMPLES || o.chunk_size < 0))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: n_samples = %d must be in [1, %d] and chunk_size = %d >= 0", fn,
                         (int)o.n_samples, LGD_GUIDANCE_MAX_SAMPLES, (int)o.chunk_size);
    if (!(o.sigma_data > 0.0f) || !isfinite(o.sigma_data) || !isfinite(o.scale))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: sigma_data (%g) must be finite and > 0 and scale (%g) finite", fn,
                         (double)o.sigma_data, (double)o.scale);
    if ((unsigned)o.step_rule > LGD_STEP_NORMALIZED)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: unknown step rule %d", fn,
                         (int)o.step_rule);
    if (!(o.sigma_min_active >= 0.0f) || !(o.sigma_max_active >= o.sigma_min_active))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: the window needs 0 <= sigma_min_active <= sigma_max_active", fn);
    if (o.kind == LGD_GUIDANCE_EXACT && !model->vt->sample_posterior)
        return lgd_error(ctx, LGD_ERR_UNSUPPORTED,
                         "%s: LGD_GUIDANCE_EXACT needs a model with exact posterior sampling "
                         "(the %s model has none)", fn, model->vt->name);
    const void *mc = NULL;
    lgd_status kst = lgd_kernels_find(ctx, &lgd_mc_kernel_table, fn, &mc);
    if (kst)
        return kst;
    lgd_guidance *g = calloc(1, sizeof *g);
    if (!g)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    lgd_ref_init(&g->refs);
    g->mc = mc;
    g->ctx = lgd_context_retain(ctx);
    g->model = lgd_model_retain(model);
    g->loss = (loss && o.kind != LGD_GUIDANCE_NONE) ? lgd_loss_retain(loss) : NULL;
    if (o.kind == LGD_GUIDANCE_DPS)
        o.n_samples = 1;
    size_t n = (size_t)(o.n_samples > 0 ? o.n_samples : 1);
    /* LGD_MC_FUSED=0 in the environment turns the fused CPU loops (LGD-MC and exact) off
     * (benchmarks compare the two; the results are the same bits) */
    const char *fused_env = getenv("LGD_MC_FUSED");
    g->fused = !(fused_env && strcmp(fused_env, "0") == 0);
    g->chunk = o.chunk_size > 0 ? (size_t)o.chunk_size : 16;
    if (g->chunk > n)
        g->chunk = n;
    g->opt = o;
    *out = g;
    return LGD_OK;
}

lgd_status lgd_guidance_mc(lgd_context *ctx, lgd_model *model, lgd_loss *loss, int32_t n,
                           lgd_guidance **out)
{
    lgd_guidance_options o = LGD_GUIDANCE_OPTIONS_INIT;
    o.kind = LGD_GUIDANCE_MC;
    o.n_samples = n;
    return lgd_guidance_create(ctx, model, loss, &o, out);
}

lgd_status lgd_guidance_set_condition(lgd_guidance *g, const lgd_tensor *cond)
{
    if (!g)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!cond) {
        g->has_cond = 0;
        return LGD_OK;
    }
    int64_t rows;
    lgd_status st;
    if (g->model->cond_dim == 0)
        return lgd_error(g->ctx, LGD_ERR_INVALID_ARGUMENT,
                         "lgd_guidance_set_condition: the model is unconditional");
    if ((st = lgd_tensor_as_rows(g->ctx, cond, "cond", g->model->cond_dim, &rows)))
        return st;
    if ((st = lgd_buffer_reserve(g->ctx, &g->cond, (size_t)cond->numel, "condition")))
        return st;
    if (g->ctx->ops->copy(g->ctx->be, g->cond.data, cond->buf.data,
                          (size_t)cond->numel * sizeof(float)) != 0)
        return lgd_backend_error(g->ctx, LGD_ERR_INTERNAL,
                                 "lgd_guidance_set_condition: copying the condition failed");
    g->cond_rows = (size_t)rows;
    g->has_cond = 1;
    return LGD_OK;
}

static lgd_status reserve(lgd_guidance *g, size_t batch)
{
    if (batch <= g->batch_cap)
        return LGD_OK;
    lgd_context *ctx = g->ctx;
    size_t D = (size_t)g->model->dim, m = g->chunk;
    const char *what = "guidance scratch";
    lgd_status st = LGD_OK;
    lgd_buffer *rows_bufs[] = { &g->st_max, &g->st_sum, &g->st_sum2, &g->st_wloss,
                                &g->st_lsum, &g->ess, &g->lambda, &g->norms };
    for (size_t i = 0; i < sizeof rows_bufs / sizeof rows_bufs[0] && !st; i++)
        st = lgd_buffer_reserve(ctx, rows_bufs[i], batch, what);
    if (!st)
        st = lgd_buffer_reserve(ctx, &g->xhat, batch * D, what);
    if (!st)
        st = lgd_buffer_reserve(ctx, &g->gvec, batch * D, what);
    if (!st)
        st = lgd_buffer_reserve(ctx, &g->v, batch * D, what);
    if (!st)
        st = lgd_buffer_reserve(ctx, &g->st_vec, batch * D, what);
    if (!st)
        st = lgd_buffer_reserve(ctx, &g->flags, FLAG_COUNT, what);
    if (!st && g->loss) {
        size_t rows, values;
        if (lgd_mul_size(batch, m, &rows) || lgd_mul_size(rows, D, &values))
            return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY,
                             "%s: %zu rows x %zu draws per chunk x %zu values overflow the "
                             "address space (lower chunk_size)", what, batch, m, D);
        st = lgd_buffer_reserve(ctx, &g->draws, values, what);
        if (!st)
            st = lgd_buffer_reserve(ctx, &g->grad, values, what);
        if (!st)
            st = lgd_buffer_reserve(ctx, &g->losses, rows, what);
    }
    if (st)
        return st;
    float *h = realloc(g->host, batch * sizeof *h);
    if (!h)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    g->host = h;
    g->batch_cap = batch;
    return LGD_OK;
}

/* Re-labels the last error with the public function the caller called and where it
 * happened (once: internal callers such as the sampler add their own prefix). */
static lgd_status at_step(lgd_guidance *g, lgd_status st, const char *fn, int32_t step,
                          float sigma)
{
    return lgd_error(g->ctx, st, "%s: step %d (sigma %g): %s", fn, (int)step, (double)sigma,
                     g->ctx->error);
}

static const float *cond_for(lgd_guidance *g, size_t batch, lgd_status *st)
{
    *st = LGD_OK;
    if (!g->has_cond)
        return NULL;
    if (g->cond_rows != batch) {
        *st = lgd_error(g->ctx, LGD_ERR_SHAPE_MISMATCH,
                        "the condition has %zu rows but the batch is %zu", g->cond_rows, batch);
        return NULL;
    }
    return g->cond.data;
}

/* xhat = D(x, sigma); clears the call's flags and flags a non-finite xhat. */
static lgd_status run_denoise(lgd_guidance *g, const float *x, float sigma, const float *cond,
                              size_t batch)
{
    lgd_context *ctx = g->ctx;
    ctx->ops->fill(ctx->be, g->flags.data, FLAG_COUNT, 0.0f);
    lgd_status st = g->model->vt->denoise(g->model, x, sigma, cond, batch, g->xhat.data);
    if (st)
        return st;
    ctx->ops->finite_flag(ctx->be, g->xhat.data, batch * (size_t)g->model->dim,
                          g->flags.data + FLAG_XHAT);
    return LGD_OK;
}

/* Reads the call's flags back (the one synchronisation of a guided call) and names
 * the first stage that produced a non-finite value. */
static lgd_status check_flags(lgd_guidance *g)
{
    lgd_context *ctx = g->ctx;
    float f[FLAG_COUNT];
    if (ctx->ops->download(ctx->be, f, g->flags.data, sizeof f) != 0)
        return lgd_backend_error(ctx, LGD_ERR_INTERNAL,
                                 "the backend failed (reading the guidance flags)");
    if (f[FLAG_XHAT] != 0.0f)
        return lgd_error(ctx, LGD_ERR_NON_FINITE,
                         "the %s model's denoiser produced non-finite values", g->model->vt->name);
    if (f[FLAG_LOSS] != 0.0f)
        return lgd_error(ctx, LGD_ERR_NON_FINITE,
                         "%s loss: the loss value is non-finite (NaN or Inf) at some draw",
                         g->loss->vt->name);
    if (f[FLAG_GRAD] != 0.0f)
        return lgd_error(ctx, LGD_ERR_NON_FINITE,
                         "%s loss: the gradient is non-finite (NaN or Inf) at some draw",
                         g->loss->vt->name);
    if (f[FLAG_TERM] != 0.0f)
        return lgd_error(ctx, LGD_ERR_NON_FINITE,
                         "the guidance term is non-finite (the %s model's VJP overflowed)",
                         g->model->vt->name);
    return LGD_OK;
}

/* The Monte Carlo loop: folds n draws, chunk by chunk, into the online
 * log-sum-exp state (sampling/mc_kernels.h). LGD-MC/DPS draw x_i = xhat + r eps_i and fold the loss
 * gradients; the gradient-free kind draws the same and folds xhat - x_i = -r eps_i;
 * EXACT draws from the model's posterior and folds the draws. */
static lgd_status monte_carlo(lgd_guidance *g, const float *x, float sigma, size_t batch,
                              int32_t step, uint64_t first_row, float r)
{
    lgd_context *ctx = g->ctx;
    const lgd_backend_ops *ops = ctx->ops;
    size_t D = (size_t)g->model->dim;
    size_t n = (size_t)g->opt.n_samples;
    int exact = g->opt.kind == LGD_GUIDANCE_EXACT;
    int values_only = g->opt.kind == LGD_GUIDANCE_MC_GRADIENT_FREE;
    lgd_mc_state state = { g->st_max.data, g->st_sum.data, g->st_sum2.data, g->st_wloss.data,
                           g->st_lsum.data, g->st_vec.data };
    g->mc->reset(ctx->be, batch, D, &state);
    lgd_status st;
    const lgd_loss_block *blk = &g->loss->block;
    int block_loss = blk->eval && (blk->target_rows <= 1 || blk->target_rows == batch);
    if (exact && g->fused && g->mc->fused_exact && block_loss &&
        g->model->vt->posterior_sampler) {
        /* the fused exact loop (mc_kernels.h), when the model has a block sampler for
         * this call: the same bits as the loop below */
        lgd_rng_stream rng = { g->opt.seed, LGD_RNG_POSTERIOR, (uint32_t)step, first_row, 0 };
        lgd_posterior_sampler ps;
        if ((st = g->model->vt->posterior_sampler(g->model, x, sigma, batch, &rng, &ps)))
            return st;
        if (ps.draw) {
            size_t span = g->chunk * (size_t)64;
            for (size_t done = 0; done < n; done += span) {
                if ((st = lgd_check_cancel(ctx, "guidance")))
                    return st;
                size_t end = n - done < span ? n : done + span;
                if (g->mc->fused_exact(ctx->be, g->loss, &ps, batch, done, end, g->chunk, D,
                                       g->draws.data, g->losses.data, &state))
                    ops->fill(ctx->be, g->flags.data + FLAG_LOSS, 1, 1.0f);
            }
            g->mc->finish(ctx->be, batch, D, &state, g->v.data, g->ess.data);
            return LGD_OK;
        }
    }
    if (!exact && g->fused && g->mc->fused && block_loss) {
        /* the fused loop (mc_kernels.h): the same bits as the loop below; cancellation is
         * looked at every `span` draws */
        size_t span = g->chunk * (size_t)64;
        for (size_t done = 0; done < n; done += span) {
            if ((st = lgd_check_cancel(ctx, "guidance")))
                return st;
            size_t end = n - done < span ? n : done + span;
            lgd_rng_stream rng = { g->opt.seed, LGD_RNG_MC_DRAW, (uint32_t)step, first_row,
                                   (uint32_t)done };
            if (g->mc->fused(ctx->be, g->loss, &rng, batch, end, g->chunk, D, g->xhat.data, r,
                             values_only, g->draws.data, g->grad.data, g->losses.data,
                             &state))
                ops->fill(ctx->be, g->flags.data + FLAG_LOSS, 1, 1.0f);
        }
        g->mc->finish(ctx->be, batch, D, &state, g->v.data, g->ess.data);
        ops->finite_flag(ctx->be, g->v.data, batch * D, g->flags.data + FLAG_GRAD);
        return LGD_OK;
    }
    for (size_t done = 0; done < n; done += g->chunk) {
        if ((st = lgd_check_cancel(ctx, "guidance")))
            return st;
        size_t m = n - done < g->chunk ? n - done : g->chunk;
        lgd_rng_stream rng = { g->opt.seed, exact ? LGD_RNG_POSTERIOR : LGD_RNG_MC_DRAW,
                               (uint32_t)step, first_row, (uint32_t)done };
        if (exact) {
            st = g->model->vt->sample_posterior(g->model, x, sigma, batch, m, &rng,
                                                g->draws.data);
            if (st)
                return st;
        } else { /* x_i = xhat + r eps_i; r = 0 (DPS): every draw is xhat */
            ops->normal_around(ctx->be, &rng, batch, m, D, g->xhat.data, r, g->draws.data);
        }
        /* values flagged here, gradients once through their weighted sum below */
        st = g->loss->vt->eval(g->loss, g->draws.data, batch, m, done, n, g->losses.data,
                               exact || values_only ? NULL : g->grad.data);
        if (st)
            return st;
        ops->finite_flag(ctx->be, g->losses.data, batch * m, g->flags.data + FLAG_LOSS);
        if (values_only) /* grad <- xhat - x_i = -r eps_i, exact for the rounded draw */
            ops->broadcast_axpy(ctx->be, batch * m, m, D, g->xhat.data, -1.0f, g->draws.data,
                                g->grad.data);
        g->mc->accumulate(ctx->be, batch, m, D, g->losses.data,
                           exact ? g->draws.data : g->grad.data, &state);
    }
    g->mc->finish(ctx->be, batch, D, &state, g->v.data, g->ess.data);
    if (!exact)
        ops->finite_flag(ctx->be, g->v.data, batch * D, g->flags.data + FLAG_GRAD);
    return LGD_OK;
}

/* Computes xhat and the raw guidance term g into g->xhat, g->gvec. */
static lgd_status estimate(lgd_guidance *g, const float *x, float sigma, size_t batch,
                           int32_t step, uint64_t first_row)
{
    lgd_context *ctx = g->ctx;
    const lgd_backend_ops *ops = ctx->ops;
    size_t D = (size_t)g->model->dim;
    lgd_status st;
    const float *cond = cond_for(g, batch, &st);
    if (st)
        return st;
    if ((st = run_denoise(g, x, sigma, cond, batch)))
        return st;
    if (g->opt.kind == LGD_GUIDANCE_NONE) {
        ops->fill(ctx->be, g->gvec.data, batch * D, 0.0f);
        return check_flags(g);
    }
    float r = 0.0f;
    int values_only = g->opt.kind == LGD_GUIDANCE_MC_GRADIENT_FREE;
    if (g->opt.kind == LGD_GUIDANCE_MC || values_only) {
        r = lgd_guidance_radius(g, sigma);
        if (!isfinite(r) || r < 0.0f)
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "the radius schedule returned r = %g; it must be finite and >= 0",
                             (double)r);
        if (values_only && !(r > 0.0f && 1.0f / (r * r) < INFINITY))
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "LGD_GUIDANCE_MC_GRADIENT_FREE needs a radius r > 0 (with 1 / r^2 "
                             "finite); the radius is %g at sigma %g", (double)r, (double)sigma);
    }
    if ((st = monte_carlo(g, x, sigma, batch, step, first_row, r)))
        return st;
    if (values_only) /* v = E_w[xhat - x_i] / r^2 = -E_w[eps_i] / r: g = -J^T v below */
        ops->axpby(ctx->be, batch * D, 1.0f / (r * r), g->v.data, 0.0f, g->v.data);
    if (g->opt.kind == LGD_GUIDANCE_EXACT) {
        /* g = (E[x0 | x, y] - xhat) / sigma^2 */
        float inv = 1.0f / (sigma * sigma);
        ops->copy(ctx->be, g->gvec.data, g->v.data, batch * D * sizeof(float));
        ops->axpby(ctx->be, batch * D, -inv, g->xhat.data, inv, g->gvec.data);
    } else {
        /* g = -J^T v; the VJP follows the denoise on the same x and sigma */
        st = g->model->vt->vjp(g->model, x, sigma, cond, batch, g->v.data, g->gvec.data);
        if (st)
            return st;
        ops->axpby(ctx->be, batch * D, -1.0f, g->gvec.data, 0.0f, g->gvec.data);
    }
    ops->finite_flag(ctx->be, g->gvec.data, batch * D, g->flags.data + FLAG_TERM);
    return check_flags(g);
}

static int is_active(const lgd_guidance *g, float sigma)
{
    return g->opt.kind != LGD_GUIDANCE_NONE && sigma >= g->opt.sigma_min_active &&
           sigma <= g->opt.sigma_max_active;
}

/* lambda per row into g->lambda. */
static void step_weights(lgd_guidance *g, float sigma, size_t batch)
{
    lgd_context *ctx = g->ctx;
    float w = g->opt.scale;
    switch (g->opt.step_rule) {
    case LGD_STEP_NORMALIZED:
        ctx->ops->inv_sqrt_scale(ctx->be, batch, w, g->st_wloss.data, 1e-12f, g->lambda.data);
        break;
    case LGD_STEP_X0:
        ctx->ops->fill(ctx->be, g->lambda.data, batch, w);
        break;
    default:
        ctx->ops->fill(ctx->be, g->lambda.data, batch, w * sigma * sigma);
        break;
    }
}

static lgd_status check_call(lgd_guidance *g, const char *fn, const lgd_tensor *x, float sigma,
                             int64_t *batch)
{
    lgd_context *ctx = g->ctx;
    if (!isfinite(sigma) || sigma <= 0.0f)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: sigma = %g must be finite and > 0",
                         fn, (double)sigma);
    lgd_status st = lgd_tensor_as_rows(ctx, x, "x", g->model->dim, batch);
    if (st)
        return lgd_error(ctx, st, "%s: %s", fn, lgd_context_last_error(ctx));
    return LGD_OK;
}

static lgd_status check_out(lgd_guidance *g, const char *fn, const char *name,
                            const lgd_tensor *t, int64_t batch)
{
    int64_t b;
    lgd_status st = lgd_tensor_as_rows(g->ctx, t, name, g->model->dim, &b);
    if (st)
        return lgd_error(g->ctx, st, "%s: %s", fn, lgd_context_last_error(g->ctx));
    if (b != batch)
        return lgd_error(g->ctx, LGD_ERR_SHAPE_MISMATCH, "%s: %s has batch %lld, x has %lld", fn,
                         name, (long long)b, (long long)batch);
    return LGD_OK;
}

lgd_status lgd_guidance_term(lgd_guidance *g, const lgd_tensor *x, float sigma,
                             int32_t step_index, uint64_t first_row, lgd_tensor *out_g,
                             lgd_tensor *out_xhat, lgd_guidance_report *report)
{
    if (!g)
        return LGD_ERR_INVALID_ARGUMENT;
    const char *fn = "lgd_guidance_term";
    int64_t batch;
    lgd_status st = check_call(g, fn, x, sigma, &batch);
    if (!st)
        st = check_out(g, fn, "out_g", out_g, batch);
    if (!st && out_xhat)
        st = check_out(g, fn, "out_xhat", out_xhat, batch);
    if (!st)
        st = lgd_guidance_check_report(g->ctx, fn, report, batch);
    if (!st)
        st = reserve(g, (size_t)batch);
    if (st)
        return st;
    st = estimate(g, x->buf.data, sigma, (size_t)batch, step_index, first_row);
    if (st)
        return at_step(g, st, fn, step_index, sigma);
    size_t bytes = (size_t)batch * (size_t)g->model->dim * sizeof(float);
    g->ctx->ops->copy(g->ctx->be, out_g->buf.data, g->gvec.data, bytes);
    if (out_xhat)
        g->ctx->ops->copy(g->ctx->be, out_xhat->buf.data, g->xhat.data, bytes);
    /* active: a term was estimated (NONE estimates none; the means stay 0) */
    return lgd_guidance_fill_report(g, sigma, (size_t)batch, g->opt.kind != LGD_GUIDANCE_NONE,
                                    0, report);
}

lgd_status lgd_guidance_denoise_raw(lgd_guidance *g, const float *x, float sigma, size_t batch,
                                    int32_t step, uint64_t first_row, float *out,
                                    lgd_guidance_report *report)
{
    lgd_context *ctx = g->ctx;
    const lgd_backend_ops *ops = ctx->ops;
    size_t D = (size_t)g->model->dim;
    lgd_status st = reserve(g, batch);
    if (st)
        return st;
    int active = is_active(g, sigma);
    if (active) {
        st = estimate(g, x, sigma, batch, step, first_row);
    } else {
        const float *cond = cond_for(g, batch, &st);
        if (!st)
            st = run_denoise(g, x, sigma, cond, batch);
        if (!st)
            st = check_flags(g);
    }
    if (st)
        return st; /* the caller says where (lgd_guidance_denoise, the sampler) */
    ops->copy(ctx->be, out, g->xhat.data, batch * D * sizeof(float));
    if (active) {
        /* xhat_g = xhat + lambda g */
        step_weights(g, sigma, batch);
        ops->axpby_rows(ctx->be, batch, D, g->lambda.data, 1, g->gvec.data, 1.0f, out);
    }
    return lgd_guidance_fill_report(g, sigma, batch, active, active, report);
}

lgd_status lgd_guidance_denoise(lgd_guidance *g, const lgd_tensor *x, float sigma,
                                int32_t step_index, uint64_t first_row, lgd_tensor *out,
                                lgd_guidance_report *report)
{
    if (!g)
        return LGD_ERR_INVALID_ARGUMENT;
    const char *fn = "lgd_guidance_denoise";
    int64_t batch;
    lgd_status st = check_call(g, fn, x, sigma, &batch);
    if (!st)
        st = check_out(g, fn, "out", out, batch);
    if (!st)
        st = lgd_guidance_check_report(g->ctx, fn, report, batch);
    if (st)
        return st;
    st = lgd_guidance_denoise_raw(g, x->buf.data, sigma, (size_t)batch, step_index, first_row,
                                  out->buf.data, report);
    if (st)
        return at_step(g, st, fn, step_index, sigma);
    /* D(x) and g are finite (checked), but xhat + lambda g can still overflow (a huge
     * sigma with the score rule): that is no guided denoiser either (found by fuzz_api) */
    if (!g->ctx->ops->all_finite(g->ctx->be, out->buf.data,
                                 (size_t)batch * (size_t)g->model->dim))
        return lgd_error(g->ctx, LGD_ERR_NON_FINITE,
                         "%s: D(x) + lambda g overflows at sigma %g (lambda is too large for "
                         "this scale and step rule)", fn, (double)sigma);
    return LGD_OK;
}
