/*
 * sampler.c - samplers that integrate x from sigma_max down to 0 with the guided
 * denoiser xhat_g(x, sigma) = lgd_guidance_denoise_raw(): Euler (= DDIM eta 0),
 * DDIM(eta) (ancestral), Heun (EDM Algorithm 2 with churn) and DPM-Solver++(2M).
 *
 * All vector arithmetic goes through the backend vtable, so the same code runs on
 * the CPU and on CUDA; only scalars (step sizes, coefficients) are computed here,
 * in double. Noise is drawn from Philox streams keyed by (seed, purpose, step,
 * global row), which makes the samples independent of the batch split and of the
 * thread count.
 *
 * Keys of the guided-denoiser calls (they key the guidance's own random draws):
 * the call at the start of step i uses step index i; Heun's second (corrector)
 * call of step i uses num_steps + i, so no two calls of a run share draws.
 *
 * A run begins with init (x = sigma_max z) or start (the caller's x at any grid index,
 * optionally plus sigmas[k] z with init's z): both set the same state, so the steps
 * that follow are the same whichever began the run (DPM++(2M) aside: a start has no
 * previous denoised estimate, so its first step is first-order, as step 0 is).
 *
 * Scratch buffers live in the sampler and grow only when a larger batch is
 * initialised; a step never allocates.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "sampling/guidance_internal.h"
#include "core/rng.h"
#include "sampling/sampler_grid.h"

/* Step counters share 24 bits of the Philox counter with nothing else, and Heun
 * uses two keys per step (i and num_steps + i). */
#define LGD_SAMPLER_MAX_STEPS (1 << 22)

/* EDM caps the churn at gamma = sqrt(2) - 1 (doubling the noise variance). */
#define LGD_MAX_GAMMA 0.41421356237309504880

enum { RUN_IDLE = 0, RUN_ACTIVE = 1, RUN_FAILED = 2 };

struct lgd_sampler {
    lgd_refcount refs;
    lgd_context *ctx;
    lgd_guidance *guidance;
    lgd_sampler_options opt; /* validated; opt.sigmas is not kept */
    int32_t steps;
    float *sigmas;           /* host, steps + 1, last one 0 */
    int64_t dim;

    /* the current run */
    int state;
    int32_t step;            /* next step */
    uint64_t seed, first_row;
    int64_t batch;
    int have_old;            /* DPM++(2M): old_denoised holds the previous step's */
    const char *caller;      /* the public function running the step, for messages */

    /* scratch, backend memory, [batch][dim] each */
    lgd_buffer denoised;
    lgd_buffer old;          /* DPM++: previous denoised; Heun: corrector denoised */
    lgd_buffer noise;        /* DDIM / churn noise; Heun: the Euler predictor x_2 */
    lgd_buffer d;            /* derivative (x - xhat) / sigma */
};

lgd_status lgd_sampler_options_init(lgd_sampler_options *options, uint32_t struct_size)
{
    const lgd_sampler_options defaults = LGD_SAMPLER_OPTIONS_INIT;
    return lgd_init_struct(options, struct_size, &defaults, sizeof defaults, sizeof(lgd_sampler_options));
}

static int finite_nonneg(float v) { return isfinite(v) && v >= 0.0f; }

/* Validates the solver's own options (the grid's are checked by lgd_sampler_grid). */
static lgd_status check_solver_options(lgd_context *ctx, const lgd_sampler_options *o)
{
    const char *fn = "lgd_sampler_create";
    if (o->kind != LGD_SAMPLER_EULER && o->kind != LGD_SAMPLER_DDIM &&
        o->kind != LGD_SAMPLER_HEUN && o->kind != LGD_SAMPLER_DPMPP_2M)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: options->kind = %d is not a known lgd_sampler_kind", fn,
                         (int)o->kind);
    if (!(o->eta >= 0.0f && o->eta <= 1.0f))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: options->eta = %g must be in [0, 1]", fn, (double)o->eta);
    if (!finite_nonneg(o->s_churn))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: options->s_churn = %g must be finite and >= 0", fn,
                         (double)o->s_churn);
    if (!finite_nonneg(o->s_noise))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: options->s_noise = %g must be finite and >= 0", fn,
                         (double)o->s_noise);
    if (!finite_nonneg(o->s_tmin) || !(o->s_tmax >= o->s_tmin))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: options->s_tmin = %g, s_tmax = %g must satisfy "
                         "0 <= s_tmin <= s_tmax",
                         fn, (double)o->s_tmin, (double)o->s_tmax);
    return LGD_OK;
}

lgd_status lgd_sampler_create(lgd_guidance *guidance, const lgd_sampler_options *options,
                              lgd_sampler **out_sampler)
{
    if (out_sampler) /* a failed create leaves NULL, whatever fails (lgd/lgd.h) */
        *out_sampler = NULL;
    if (!guidance)
        return LGD_ERR_INVALID_ARGUMENT;
    lgd_context *ctx = lgd_guidance_context(guidance);
    if (!out_sampler)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "lgd_sampler_create: out_sampler is NULL");
    *out_sampler = NULL;
    lgd_sampler_options o, defaults = LGD_SAMPLER_OPTIONS_INIT;
    {
        lgd_status rst =
            lgd_read_struct(ctx, "lgd_sampler_create", "options", &o, sizeof o, sizeof o,
                            options, &defaults);
        if (rst)
            return rst;
    }
    lgd_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "lgd_sampler_create: out of memory");
    lgd_status st = check_solver_options(ctx, &o);
    if (!st)
        st = lgd_sampler_grid(ctx, &o, LGD_SAMPLER_MAX_STEPS, &s->sigmas, &s->steps);
    if (st) {
        free(s->sigmas);
        free(s);
        return st;
    }
    o.sigmas = NULL;
    o.n_sigmas = 0;
    o.steps = s->steps;
    s->opt = o;
    s->dim = lgd_guidance_dim(guidance);
    lgd_ref_init(&s->refs);
    s->ctx = lgd_context_retain(ctx);
    s->guidance = lgd_guidance_retain(guidance);
    s->state = RUN_IDLE;
    *out_sampler = s;
    return LGD_OK;
}

lgd_sampler *lgd_sampler_retain(lgd_sampler *s)
{
    if (s)
        lgd_ref_take(&s->refs);
    return s;
}

lgd_context *lgd_sampler_context(const lgd_sampler *s) { return s ? s->ctx : NULL; }

void lgd_sampler_destroy(lgd_sampler *s)
{
    if (!s || !lgd_ref_drop(&s->refs))
        return;
    lgd_buffer_release(s->ctx, &s->denoised);
    lgd_buffer_release(s->ctx, &s->old);
    lgd_buffer_release(s->ctx, &s->noise);
    lgd_buffer_release(s->ctx, &s->d);
    free(s->sigmas);
    lgd_guidance_release(s->guidance);
    lgd_context_release(s->ctx);
    free(s);
}

int32_t lgd_sampler_num_steps(const lgd_sampler *s) { return s ? s->steps : 0; }

lgd_status lgd_sampler_sigmas(const lgd_sampler *s, float *out, int64_t count)
{
    if (!s)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!out)
        return lgd_error(s->ctx, LGD_ERR_INVALID_ARGUMENT, "lgd_sampler_sigmas: out is NULL");
    if (count < (int64_t)s->steps + 1)
        return lgd_error(s->ctx, LGD_ERR_SHAPE_MISMATCH,
                         "lgd_sampler_sigmas: count %lld is less than num_steps + 1 = %lld",
                         (long long)count, (long long)s->steps + 1);
    memcpy(out, s->sigmas, ((size_t)s->steps + 1) * sizeof(float));
    return LGD_OK;
}

int32_t lgd_sampler_step_index(const lgd_sampler *s)
{
    if (!s)
        return -1;
    return s->state == RUN_IDLE ? 0 : s->step;
}

float lgd_sampler_sigma(const lgd_sampler *s)
{
    if (!s)
        return NAN;
    return s->sigmas[lgd_sampler_step_index(s)];
}

int32_t lgd_sampler_done(const lgd_sampler *s)
{
    if (!s)
        return 1;
    return s->state == RUN_ACTIVE && s->step >= s->steps;
}

/* x must be a [batch][dim] tensor of the sampler's context. */
static lgd_status check_x(lgd_sampler *s, const lgd_tensor *x, const char *fn, int64_t *batch)
{
    char name[64];
    snprintf(name, sizeof name, "%s: x", fn);
    return lgd_tensor_as_rows(s->ctx, x, name, s->dim, batch);
}

static lgd_status reserve_scratch(lgd_sampler *s, size_t n, const char *fn)
{
    char what[64];
    snprintf(what, sizeof what, "%s: scratch", fn);
    lgd_status st = lgd_buffer_reserve(s->ctx, &s->denoised, n, what);
    if (!st)
        st = lgd_buffer_reserve(s->ctx, &s->d, n, what);
    if (!st && (s->opt.kind == LGD_SAMPLER_DPMPP_2M || s->opt.kind == LGD_SAMPLER_HEUN))
        st = lgd_buffer_reserve(s->ctx, &s->old, n, what);
    if (!st && ((s->opt.kind == LGD_SAMPLER_DDIM && s->opt.eta > 0.0f) ||
                s->opt.kind == LGD_SAMPLER_HEUN))
        st = lgd_buffer_reserve(s->ctx, &s->noise, n, what);
    return st;
}

/* The run's state from grid index step on: what init and start share. The step
 * functions read nothing else, so the steps after a start at k are those of a run
 * after init, except DPM++(2M)'s history, which a start does not have. */
static void begin_run(lgd_sampler *s, int64_t batch, int32_t step, uint64_t seed,
                      uint64_t first_row)
{
    lgd_guidance_set_seed(s->guidance, seed);
    s->seed = seed;
    s->first_row = first_row;
    s->batch = batch;
    s->step = step;
    s->have_old = 0;
    s->state = RUN_ACTIVE;
}

static lgd_status sampler_init(lgd_sampler *s, lgd_tensor *x, uint64_t seed,
                               uint64_t first_row, const char *fn)
{
    int64_t batch = 0;
    lgd_status st = check_x(s, x, fn, &batch);
    if (st)
        return st;
    size_t n = (size_t)batch * (size_t)s->dim;
    st = reserve_scratch(s, n, fn);
    if (st)
        return st;
    lgd_context *ctx = s->ctx;
    lgd_rng_stream rs = { seed, LGD_RNG_INIT, 0, first_row, 0 };
    ctx->ops->normal(ctx->be, &rs, (size_t)batch, 1, (size_t)s->dim, x->buf.data);
    ctx->ops->axpby(ctx->be, n, s->sigmas[0], x->buf.data, 0.0f, x->buf.data);
    begin_run(s, batch, 0, seed, first_row);
    return LGD_OK;
}

/* A run from the caller's x at grid index start_step (lgd_sampler_start). Checks
 * everything before touching x or the sampler's state. */
static lgd_status sampler_start(lgd_sampler *s, lgd_tensor *x, int32_t start_step,
                                int32_t flags, uint64_t seed, uint64_t first_row,
                                const char *fn)
{
    lgd_context *ctx = s->ctx;
    if (start_step < 0 || start_step >= s->steps)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: start_step = %d must be in [0, num_steps) = [0, %d)", fn,
                         (int)start_step, (int)s->steps);
    if (flags != LGD_START_NOISY && flags != LGD_START_ADD_NOISE)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: flags = %d is neither LGD_START_NOISY (0) nor "
                         "LGD_START_ADD_NOISE (%d)",
                         fn, (int)flags, (int)LGD_START_ADD_NOISE);
    int64_t batch = 0;
    lgd_status st = check_x(s, x, fn, &batch);
    if (st)
        return st;
    size_t n = (size_t)batch * (size_t)s->dim;
    st = reserve_scratch(s, n, fn);
    if (st)
        return st;
    if (!ctx->ops->all_finite(ctx->be, x->buf.data, n))
        return lgd_error(ctx, LGD_ERR_NON_FINITE,
                         "%s: x is not finite (a NaN or an infinity in the caller's x)", fn);
    if (flags == LGD_START_ADD_NOISE) {
        /* z from init's stream, in the derivative scratch (free until the first step) */
        lgd_rng_stream rs = { seed, LGD_RNG_INIT, 0, first_row, 0 };
        ctx->ops->normal(ctx->be, &rs, (size_t)batch, 1, (size_t)s->dim, s->d.data);
        ctx->ops->axpby(ctx->be, n, s->sigmas[start_step], s->d.data, 1.0f, x->buf.data);
    }
    begin_run(s, batch, start_step, seed, first_row);
    return LGD_OK;
}

lgd_status lgd_sampler_init(lgd_sampler *s, lgd_tensor *x, uint64_t seed, uint64_t first_row)
{
    if (!s)
        return LGD_ERR_INVALID_ARGUMENT;
    return sampler_init(s, x, seed, first_row, "lgd_sampler_init");
}

lgd_status lgd_sampler_start(lgd_sampler *s, lgd_tensor *x, int32_t start_step, int32_t flags,
                             uint64_t seed, uint64_t first_row)
{
    if (!s)
        return LGD_ERR_INVALID_ARGUMENT;
    return sampler_start(s, x, start_step, flags, seed, first_row, "lgd_sampler_start");
}

/* Calls the guided denoiser; on failure, prefixes the sampler step to the message
 * (the guidance's own message names the call's key, which differs for Heun's
 * corrector). */
static lgd_status denoise(lgd_sampler *s, const float *x, float sigma, int32_t key, float *out,
                          lgd_guidance_report *report)
{
    lgd_status st = lgd_guidance_denoise_raw(s->guidance, x, sigma, (size_t)s->batch, key,
                                             s->first_row, out, report);
    if (st) {
        char prev[LGD_ERROR_CAP];
        snprintf(prev, sizeof prev, "%s", s->ctx->error);
        if (key != s->step)
            return lgd_error(s->ctx, st,
                             "%s: step %d of %d, Heun corrector at sigma %g (guidance call "
                             "key %d): %s",
                             s->caller, (int)s->step, (int)s->steps, (double)sigma, (int)key,
                             prev);
        return lgd_error(s->ctx, st, "%s: step %d of %d (sigma %g): %s", s->caller,
                         (int)s->step, (int)s->steps, (double)sigma, prev);
    }
    return LGD_OK;
}

/* d = (x - den) / sigma */
static void to_d(lgd_context *ctx, size_t n, const float *x, const float *den, double sigma,
                 float *d)
{
    float inv = (float)(1.0 / sigma);
    ctx->ops->copy(ctx->be, d, den, n * sizeof(float));
    ctx->ops->axpby(ctx->be, n, inv, x, -inv, d);
}

static lgd_status step_euler_ddim(lgd_sampler *s, float *x, size_t n,
                                  lgd_guidance_report *report)
{
    lgd_context *ctx = s->ctx;
    int32_t i = s->step;
    double sigma = s->sigmas[i], sn = s->sigmas[i + 1];
    lgd_status st = denoise(s, x, (float)sigma, i, s->denoised.data, report);
    if (st)
        return st;
    double sigma_up = 0.0, sigma_down = sn;
    if (s->opt.kind == LGD_SAMPLER_DDIM && s->opt.eta > 0.0f && sn > 0.0) {
        sigma_up = (double)s->opt.eta * sqrt(sn * sn * (sigma * sigma - sn * sn) / (sigma * sigma));
        if (sigma_up > sn)
            sigma_up = sn;
        double down2 = sn * sn - sigma_up * sigma_up;
        sigma_down = down2 > 0.0 ? sqrt(down2) : 0.0;
    }
    to_d(ctx, n, x, s->denoised.data, sigma, s->d.data);
    ctx->ops->axpby(ctx->be, n, (float)(sigma_down - sigma), s->d.data, 1.0f, x);
    if (sigma_up > 0.0) {
        lgd_rng_stream rs = { s->seed, LGD_RNG_ANCESTRAL, (uint32_t)i, s->first_row, 0 };
        ctx->ops->normal(ctx->be, &rs, (size_t)s->batch, 1, (size_t)s->dim, s->noise.data);
        ctx->ops->axpby(ctx->be, n, (float)sigma_up, s->noise.data, 1.0f, x);
    }
    return LGD_OK;
}

static lgd_status step_heun(lgd_sampler *s, float *x, size_t n, lgd_guidance_report *report)
{
    lgd_context *ctx = s->ctx;
    int32_t i = s->step;
    double sigma = s->sigmas[i], sn = s->sigmas[i + 1];
    double gamma = 0.0;
    if (s->opt.s_churn > 0.0f && s->opt.s_tmin <= (float)sigma && (float)sigma <= s->opt.s_tmax) {
        gamma = (double)s->opt.s_churn / (double)s->steps;
        if (gamma > LGD_MAX_GAMMA)
            gamma = LGD_MAX_GAMMA;
    }
    double sigma_hat = sigma * (gamma + 1.0);
    float fsigma_hat = (float)sigma_hat;
    if (gamma > 0.0) {
        double shat = fsigma_hat; /* the level the denoiser is told */
        double add2 = shat * shat - sigma * sigma;
        double amp = (add2 > 0.0 ? sqrt(add2) : 0.0) * (double)s->opt.s_noise;
        lgd_rng_stream rs = { s->seed, LGD_RNG_CHURN, (uint32_t)i, s->first_row, 0 };
        ctx->ops->normal(ctx->be, &rs, (size_t)s->batch, 1, (size_t)s->dim, s->noise.data);
        ctx->ops->axpby(ctx->be, n, (float)amp, s->noise.data, 1.0f, x);
    }
    double shat = fsigma_hat;
    lgd_status st = denoise(s, x, fsigma_hat, i, s->denoised.data, report);
    if (st)
        return st;
    to_d(ctx, n, x, s->denoised.data, shat, s->d.data);
    double dt = sn - shat;
    if (sn == 0.0) {
        ctx->ops->axpby(ctx->be, n, (float)dt, s->d.data, 1.0f, x);
        return LGD_OK;
    }
    /* predictor x_2 = x + dt d (in the noise buffer), corrector denoised in old */
    float *x2 = s->noise.data, *den2 = s->old.data;
    ctx->ops->copy(ctx->be, x2, x, n * sizeof(float));
    ctx->ops->axpby(ctx->be, n, (float)dt, s->d.data, 1.0f, x2);
    st = denoise(s, x2, (float)sn, s->steps + i, den2, report);
    if (st)
        return st;
    /* d_2 = (x_2 - den2) / sn, in place in den2 */
    float inv = (float)(1.0 / sn);
    ctx->ops->axpby(ctx->be, n, inv, x2, -inv, den2);
    /* x += dt (d + d_2) / 2 */
    ctx->ops->axpby(ctx->be, n, 1.0f, den2, 1.0f, s->d.data);
    ctx->ops->axpby(ctx->be, n, (float)(0.5 * dt), s->d.data, 1.0f, x);
    return LGD_OK;
}

static lgd_status step_dpmpp_2m(lgd_sampler *s, float *x, size_t n,
                                lgd_guidance_report *report)
{
    lgd_context *ctx = s->ctx;
    int32_t i = s->step;
    double sigma = s->sigmas[i], sn = s->sigmas[i + 1];
    lgd_status st = denoise(s, x, (float)sigma, i, s->denoised.data, report);
    if (st)
        return st;
    if (sn == 0.0) {
        /* t_next = inf: x = 0 * x - expm1(-inf) denoised = denoised */
        ctx->ops->copy(ctx->be, x, s->denoised.data, n * sizeof(float));
    } else {
        double t = -log(sigma), t_next = -log(sn);
        double h = t_next - t;
        double ratio = sn / sigma, coef = -expm1(-h);
        if (!s->have_old) {
            ctx->ops->axpby(ctx->be, n, (float)coef, s->denoised.data, (float)ratio, x);
        } else {
            double h_last = t - (-log((double)s->sigmas[i - 1]));
            double r = h_last / h;
            double a = 1.0 + 1.0 / (2.0 * r), b = -1.0 / (2.0 * r);
            /* d = a denoised + b old_denoised */
            ctx->ops->copy(ctx->be, s->d.data, s->old.data, n * sizeof(float));
            ctx->ops->axpby(ctx->be, n, (float)a, s->denoised.data, (float)b, s->d.data);
            ctx->ops->axpby(ctx->be, n, (float)coef, s->d.data, (float)ratio, x);
        }
    }
    /* old_denoised = denoised (swap, no copy) */
    lgd_buffer tmp = s->old;
    s->old = s->denoised;
    s->denoised = tmp;
    s->have_old = 1;
    return LGD_OK;
}

/* One step; fn names the public function the caller called, for messages. */
static lgd_status sampler_step(lgd_sampler *s, lgd_tensor *x, lgd_guidance_report *report,
                               const char *fn)
{
    lgd_context *ctx = s->ctx;
    if (s->state == RUN_IDLE)
        return lgd_error(ctx, LGD_ERR_STATE,
                         "%s: the sampler is not initialised (call lgd_sampler_init, "
                         "lgd_sampler_start or lgd_sampler_run first)", fn);
    if (s->state == RUN_FAILED)
        return lgd_error(ctx, LGD_ERR_STATE,
                         "%s: step %d failed earlier; call lgd_sampler_init or "
                         "lgd_sampler_start to start a new run",
                         fn, (int)s->step);
    if (s->step >= s->steps)
        return lgd_error(ctx, LGD_ERR_STATE,
                         "%s: the run is finished (%d of %d steps done)", fn,
                         (int)s->step, (int)s->steps);
    int64_t batch = 0;
    lgd_status st = check_x(s, x, fn, &batch);
    if (st)
        return st;
    /* before anything changes: the run can go on from this step after a reset */
    if ((st = lgd_check_cancel(ctx, fn)))
        return st;
    if (batch != s->batch)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH,
                         "%s: x has batch %lld but the run was initialised with "
                         "batch %lld",
                         fn, (long long)batch, (long long)s->batch);
    st = lgd_guidance_check_report(s->ctx, fn, report, s->batch);
    if (st)
        return st;
    size_t n = (size_t)batch * (size_t)s->dim;
    float *xd = x->buf.data;
    s->caller = fn;
    switch (s->opt.kind) {
    case LGD_SAMPLER_EULER:
    case LGD_SAMPLER_DDIM: st = step_euler_ddim(s, xd, n, report); break;
    case LGD_SAMPLER_HEUN: st = step_heun(s, xd, n, report); break;
    case LGD_SAMPLER_DPMPP_2M: st = step_dpmpp_2m(s, xd, n, report); break;
    default: st = lgd_error(ctx, LGD_ERR_INTERNAL, "%s: bad sampler kind", fn);
    }
    if (!st && !ctx->ops->all_finite(ctx->be, xd, n))
        st = lgd_error(ctx, LGD_ERR_NON_FINITE,
                       "%s: x is not finite after step %d of %d "
                       "(sigma %g -> %g)",
                       fn, (int)s->step, (int)s->steps, (double)s->sigmas[s->step],
                       (double)s->sigmas[s->step + 1]);
    if (st) {
        /* x may be half-updated: the run cannot go on */
        s->state = RUN_FAILED;
        return st;
    }
    s->step++;
    return LGD_OK;
}

lgd_status lgd_sampler_step(lgd_sampler *s, lgd_tensor *x, lgd_guidance_report *report)
{
    if (!s)
        return LGD_ERR_INVALID_ARGUMENT;
    return sampler_step(s, x, report, "lgd_sampler_step");
}

/* The steps left after init or start. progress(user, step, num_steps, sigma, report)
 * after each step: step = the grid index x is now at (the number of steps done in a
 * run from init; start_step + 1 .. num_steps after a start), sigma = the noise level x
 * is now at (0 at the end), report = the diagnostics of the step's last guided call. */
static lgd_status run_steps(lgd_sampler *s, lgd_tensor *x, lgd_progress_fn progress,
                            void *user, const char *fn)
{
    while (s->step < s->steps) {
        lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
        lgd_status st = sampler_step(s, x, progress ? &rep : NULL, fn);
        if (st)
            return st;
        if (progress && progress(user, s->step, s->steps, s->sigmas[s->step], &rep) != 0)
            return lgd_error(s->ctx, LGD_ERR_ABORTED,
                             "%s: the progress callback stopped the run after step %d of %d",
                             fn, (int)s->step, (int)s->steps);
    }
    return LGD_OK;
}

lgd_status lgd_sampler_run(lgd_sampler *s, lgd_tensor *x, uint64_t seed, uint64_t first_row,
                           lgd_progress_fn progress, void *user)
{
    if (!s)
        return LGD_ERR_INVALID_ARGUMENT;
    const char *fn = "lgd_sampler_run";
    lgd_status st = sampler_init(s, x, seed, first_row, fn);
    if (st)
        return st;
    return run_steps(s, x, progress, user, fn);
}

lgd_status lgd_sampler_run_from(lgd_sampler *s, lgd_tensor *x, int32_t start_step,
                                int32_t flags, uint64_t seed, uint64_t first_row,
                                lgd_progress_fn progress, void *user)
{
    if (!s)
        return LGD_ERR_INVALID_ARGUMENT;
    const char *fn = "lgd_sampler_run_from";
    lgd_status st = sampler_start(s, x, start_step, flags, seed, first_row, fn);
    if (st)
        return st;
    return run_steps(s, x, progress, user, fn);
}
