/*
 * model_network.c - adapters that make a raw network F(x_in, t) a denoiser.
 *
 * Every parameterisation has the form
 *     D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, t(sigma))
 * so the VJP is  J^T v = c_skip v + c_in c_out (dF/dx_in)^T v.
 *   EPS: c_in = 1/sqrt(1+s^2), c_skip = 1,           c_out = -s
 *   X0:  c_in = 1/sqrt(1+s^2), c_skip = 0,           c_out = 1
 *   V:   c_in = 1/sqrt(1+s^2), c_skip = 1/(1+s^2),   c_out = -s/sqrt(1+s^2)
 *   EDM: c_in = 1/sqrt(s^2+sd^2), c_skip = sd^2/(s^2+sd^2), c_out = s sd/sqrt(s^2+sd^2)
 * (VP: x_vp = x / sqrt(1 + s^2) = sqrt(abar) x0 + sqrt(1 - abar) eps, with
 *  s = sqrt((1 - abar)/abar); v = sqrt(abar) eps - sqrt(1 - abar) x0.)
 *
 * F is a raw network (lgd_raw_network_vtable, core/internal.h): backend pointers and
 * lgd_status returns. A loaded network (nn/network.c) is one directly; the host or
 * device callbacks of lgd_model_create_network are wrapped into one here.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "models/model_internal.h"

typedef struct network_model {
    const lgd_raw_network_vtable *vt;
    void *net;
    lgd_adapter_options opt;
    double *log_sigmas; /* [num_timesteps], increasing (discrete time inputs) */
    lgd_buffer x_in;    /* [B][D] scaled input */
} network_model;

lgd_status lgd_network_callbacks_init(lgd_network_callbacks *c, uint32_t struct_size)
{
    const lgd_network_callbacks defaults = LGD_NETWORK_CALLBACKS_INIT;
    return lgd_init_struct(c, struct_size, &defaults, sizeof defaults, sizeof(lgd_network_callbacks));
}

lgd_status lgd_adapter_options_init(lgd_adapter_options *o, uint32_t struct_size)
{
    const lgd_adapter_options defaults = LGD_ADAPTER_OPTIONS_INIT;
    return lgd_init_struct(o, struct_size, &defaults, sizeof defaults, sizeof(lgd_adapter_options));
}

typedef struct coeffs {
    float c_in, c_skip, c_out, t;
} coeffs;

static float time_of(const network_model *nm, float sigma)
{
    switch (nm->opt.time_input) {
    case LGD_TIME_LOG_SIGMA: return 0.25f * logf(sigma);
    case LGD_TIME_SIGMA: return sigma;
    default: break;
    }
    const double *ls = nm->log_sigmas;
    int32_t T = nm->opt.num_timesteps;
    double l = log((double)sigma);
    if (nm->opt.time_input == LGD_TIME_DISCRETE_ROUND) {
        int32_t best = 0;
        for (int32_t i = 1; i < T; i++)
            if (fabs(ls[i] - l) < fabs(ls[best] - l))
                best = i;
        return (float)best;
    }
    if (l <= ls[0])
        return 0.0f;
    if (l >= ls[T - 1])
        return (float)(T - 1);
    int32_t lo = 0, hi = T - 1; /* ls[lo] <= l < ls[hi] */
    while (hi - lo > 1) {
        int32_t mid = lo + (hi - lo) / 2;
        if (ls[mid] <= l)
            lo = mid;
        else
            hi = mid;
    }
    double w = (l - ls[lo]) / (ls[hi] - ls[lo]);
    return (float)((double)lo + w);
}

static coeffs coeffs_of(const network_model *nm, float sigma)
{
    double s = sigma, s2 = s * s;
    coeffs c;
    c.t = time_of(nm, sigma);
    switch (nm->opt.prediction) {
    case LGD_PREDICT_X0:
        c.c_in = (float)(1.0 / sqrt(1.0 + s2));
        c.c_skip = 0.0f;
        c.c_out = 1.0f;
        break;
    case LGD_PREDICT_V:
        c.c_in = (float)(1.0 / sqrt(1.0 + s2));
        c.c_skip = (float)(1.0 / (1.0 + s2));
        c.c_out = (float)(-s / sqrt(1.0 + s2));
        break;
    case LGD_PREDICT_EDM: {
        double sd = nm->opt.sigma_data, sd2 = sd * sd;
        c.c_in = (float)(1.0 / sqrt(s2 + sd2));
        c.c_skip = (float)(sd2 / (s2 + sd2));
        c.c_out = (float)(s * sd / sqrt(s2 + sd2));
        break;
    }
    default: /* EPS */
        c.c_in = (float)(1.0 / sqrt(1.0 + s2));
        c.c_skip = 1.0f;
        c.c_out = (float)-s;
        break;
    }
    return c;
}

/* out = F(c_in x, t) (v == NULL) or (dF/dx_in)^T v at x_in = c_in x */
static lgd_status run_network(lgd_model *m, const coeffs *c, const float *x, const float *cond,
                              size_t batch, const float *v, float *out)
{
    network_model *nm = m->impl;
    lgd_context *ctx = m->ctx;
    size_t n = batch * (size_t)m->dim;
    lgd_status st = lgd_buffer_reserve(ctx, &nm->x_in, n, "network adapter");
    if (st)
        return st;
    ctx->ops->axpby(ctx->be, n, c->c_in, x, 0.0f, nm->x_in.data);
    if (v)
        return nm->vt->vjp(nm->net, nm->x_in.data, c->t, cond, batch, v, out);
    return nm->vt->forward(nm->net, nm->x_in.data, c->t, cond, batch, out);
}

static lgd_status network_denoise(lgd_model *m, const float *x, float sigma, const float *cond,
                                  size_t batch, float *out)
{
    coeffs c = coeffs_of(m->impl, sigma);
    lgd_status st = run_network(m, &c, x, cond, batch, NULL, out);
    if (st)
        return st;
    /* out = c_skip x + c_out F */
    m->ctx->ops->axpby(m->ctx->be, batch * (size_t)m->dim, c.c_skip, x, c.c_out, out);
    return LGD_OK;
}

static lgd_status network_vjp(lgd_model *m, const float *x, float sigma, const float *cond,
                              size_t batch, const float *v, float *out)
{
    network_model *nm = m->impl;
    if (!nm->vt->vjp)
        return lgd_error(m->ctx, LGD_ERR_UNSUPPORTED,
                         "the network was registered without a vjp callback");
    coeffs c = coeffs_of(nm, sigma);
    lgd_status st = run_network(m, &c, x, cond, batch, v, out);
    if (st)
        return st;
    /* out = c_skip v + c_in c_out (dF/dx_in)^T v */
    m->ctx->ops->axpby(m->ctx->be, batch * (size_t)m->dim, c.c_skip, v, c.c_in * c.c_out, out);
    return LGD_OK;
}

static void network_destroy(lgd_model *m)
{
    network_model *nm = m->impl;
    if (nm->vt->destroy)
        nm->vt->destroy(nm->net);
    lgd_buffer_release(m->ctx, &nm->x_in);
    free(nm->log_sigmas);
    free(nm);
}

static const lgd_model_vtable network_vtable = {
    .name = "network",
    .denoise = network_denoise,
    .vjp = network_vjp,
    .destroy = network_destroy,
};

lgd_status lgd_model_network_time(const lgd_model *m, float sigma, float *out_t)
{
    if (!m)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!out_t)
        return lgd_error(m->ctx, LGD_ERR_INVALID_ARGUMENT,
                         "lgd_model_network_time: out_t is NULL");
    if (m->vt != &network_vtable)
        return lgd_error(m->ctx, LGD_ERR_UNSUPPORTED,
                         "lgd_model_network_time: the %s model is not an adapted network",
                         m->vt->name);
    if (!isfinite(sigma) || sigma <= 0.0f)
        return lgd_error(m->ctx, LGD_ERR_INVALID_ARGUMENT,
                         "lgd_model_network_time: sigma = %g must be finite and > 0",
                         (double)sigma);
    *out_t = time_of(m->impl, sigma);
    return LGD_OK;
}

/* The adapter options over their defaults (lgd_read_struct). */
static lgd_status read_adapter_options(lgd_context *ctx, const char *fn,
                                       const lgd_adapter_options *options,
                                       lgd_adapter_options *opt)
{
    lgd_adapter_options opt_defaults = LGD_ADAPTER_OPTIONS_INIT;
    return lgd_read_struct(ctx, fn, "options", opt, sizeof *opt, sizeof *opt, options,
                           &opt_defaults);
}

/* The prediction, time input and sigma_data (the schedule is create_adapted's). */
static lgd_status check_adapter_options(lgd_context *ctx, const char *fn,
                                        const lgd_adapter_options *opt)
{
    if ((unsigned)opt->prediction > LGD_PREDICT_EDM || (unsigned)opt->time_input > LGD_TIME_SIGMA)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: unknown prediction (%d) or time input (%d)", fn,
                         (int)opt->prediction, (int)opt->time_input);
    if (opt->prediction == LGD_PREDICT_EDM &&
        !(opt->sigma_data > 0.0f && isfinite(opt->sigma_data)))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: sigma_data must be finite and > 0",
                         fn);
    return LGD_OK;
}

/* The model of the raw network (vt, net) with the adapter opt (read and checked by the
 * two functions above). */
static lgd_status create_adapted(lgd_context *ctx, const char *fn,
                                 const lgd_raw_network_vtable *vt, void *net, int64_t dim,
                                 int64_t cond_dim, lgd_adapter_options opt, lgd_model **out)
{
    int discrete = opt.time_input == LGD_TIME_DISCRETE || opt.time_input == LGD_TIME_DISCRETE_ROUND;
    network_model *nm = calloc(1, sizeof *nm);
    if (!nm)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    if (discrete) {
        if (!opt.alphas_cumprod || opt.num_timesteps < 2) {
            free(nm);
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "%s: discrete time inputs need alphas_cumprod with num_timesteps >= 2",
                             fn);
        }
        nm->log_sigmas = malloc((size_t)opt.num_timesteps * sizeof *nm->log_sigmas);
        if (!nm->log_sigmas) {
            free(nm);
            return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
        }
        for (int32_t i = 0; i < opt.num_timesteps; i++) {
            double a = opt.alphas_cumprod[i];
            int ok = a > 0.0 && a < 1.0 && (i == 0 || a < opt.alphas_cumprod[i - 1]);
            if (!ok) {
                free(nm->log_sigmas);
                free(nm);
                return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                                 "%s: alphas_cumprod[%d] = %g must be in (0, 1) and strictly "
                                 "decreasing", fn, (int)i, a);
            }
            nm->log_sigmas[i] = 0.5 * log((1.0 - a) / a);
        }
    }
    opt.alphas_cumprod = NULL; /* not kept: the log sigmas are */
    nm->vt = vt;
    nm->net = net;
    nm->opt = opt;
    lgd_status st = lgd_model_new(ctx, &network_vtable, dim, cond_dim, nm, out);
    if (st) {
        free(nm->log_sigmas);
        free(nm);
    }
    return st;
}

lgd_status lgd_model_create_adapted(lgd_context *ctx, const char *fn,
                                    const lgd_raw_network_vtable *vt, void *net, int64_t dim,
                                    int64_t cond_dim, const lgd_adapter_options *options,
                                    lgd_model **out)
{
    *out = NULL;
    lgd_adapter_options opt;
    lgd_status st = read_adapter_options(ctx, fn, options, &opt);
    if (!st)
        st = check_adapter_options(ctx, fn, &opt);
    if (st)
        return st;
    return create_adapted(ctx, fn, vt, net, dim, cond_dim, opt, out);
}

/* ---- users' callbacks as a raw network ---- */

typedef struct callback_net {
    lgd_context *ctx; /* the model's (which outlives this) */
    lgd_network_callbacks cb;
    lgd_staging stage; /* host copies of the arguments on device backends */
} callback_net;

typedef struct callback_call {
    const callback_net *cn;
    float t;
    int64_t batch;
} callback_call;

/* in = { x_in, cond, v } */
static int32_t call_forward(void *closure, const float *const *in, float *out)
{
    const callback_call *c = closure;
    const lgd_network_callbacks *cb = &c->cn->cb;
    return cb->forward(cb->user, in[0], c->t, in[1], c->batch, cb->dim, out);
}

static int32_t call_vjp(void *closure, const float *const *in, float *out)
{
    const callback_call *c = closure;
    const lgd_network_callbacks *cb = &c->cn->cb;
    return cb->vjp(cb->user, in[0], c->t, in[1], c->batch, cb->dim, in[2], out);
}

/* the forward (v == NULL) or VJP callback, on host or device memory as registered */
static lgd_status callback_run(callback_net *cn, const float *x_in, float t, const float *cond,
                               size_t batch, const float *v, float *out)
{
    size_t n = batch * (size_t)cn->cb.dim;
    const float *in[3] = { x_in, cond, v };
    size_t counts[3] = { n, batch * (size_t)cn->cb.cond_dim, n };
    callback_call cl = { cn, t, (int64_t)batch };
    int32_t rc = 0;
    lgd_status st = lgd_host_call(cn->ctx, &cn->stage, cn->cb.memory, 3, in, counts, out, n,
                                  v ? call_vjp : call_forward, &cl,
                                  v ? "network vjp callback" : "network forward callback",
                                  "out", &rc);
    if (st)
        return st;
    if (rc != 0)
        return lgd_callback_failed(cn->ctx, "network %s callback returned %d at sigma-time t = %g",
                                   v ? "vjp" : "forward", (int)rc, (double)t);
    return LGD_OK;
}

static lgd_status callback_forward(void *net, const float *x_in, float t, const float *cond,
                                   size_t batch, float *out)
{
    return callback_run(net, x_in, t, cond, batch, NULL, out);
}

static lgd_status callback_vjp(void *net, const float *x_in, float t, const float *cond,
                               size_t batch, const float *v, float *out)
{
    return callback_run(net, x_in, t, cond, batch, v, out);
}

static void callback_destroy(void *net)
{
    callback_net *cn = net;
    if (cn->cb.destroy)
        cn->cb.destroy(cn->cb.user);
    lgd_staging_free(&cn->stage);
    free(cn);
}

static const lgd_raw_network_vtable callback_vtable = {
    .forward = callback_forward,
    .vjp = callback_vjp,
    .destroy = callback_destroy,
};

/* registered without a vjp callback: the model's VJP is LGD_ERR_UNSUPPORTED */
static const lgd_raw_network_vtable callback_vtable_no_vjp = {
    .forward = callback_forward,
    .destroy = callback_destroy,
};

lgd_status lgd_model_create_network_callbacks(lgd_context *ctx,
                                              const lgd_network_callbacks *network,
                                              const lgd_adapter_options *options,
                                              lgd_model **out)
{
    if (out) /* a failed create leaves NULL, whatever fails (lgd/lgd.h) */
        *out = NULL;
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    const char *fn = "lgd_model_create_network_callbacks";
    if (!out || !network)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                         out ? "network" : "out_model");
    *out = NULL;
    lgd_network_callbacks cb, cb_defaults = LGD_NETWORK_CALLBACKS_INIT;
    lgd_adapter_options opt;
    lgd_status st = lgd_read_struct(ctx, fn, "network", &cb, sizeof cb, sizeof cb, network,
                                    &cb_defaults);
    if (st)
        return st;
    st = read_adapter_options(ctx, fn, options, &opt);
    if (st)
        return st;
    if (cb.dim <= 0 || cb.cond_dim < 0 || !cb.forward)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: need dim > 0, cond_dim >= 0 and a forward callback", fn);
    if (cb.memory != LGD_MEMORY_HOST && cb.memory != LGD_MEMORY_DEVICE)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: network->memory is invalid", fn);
    if ((st = check_adapter_options(ctx, fn, &opt)))
        return st;
    callback_net *cn = calloc(1, sizeof *cn);
    if (!cn)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    cn->ctx = ctx;
    cn->cb = cb;
    st = create_adapted(ctx, fn, cb.vjp ? &callback_vtable : &callback_vtable_no_vjp, cn, cb.dim,
                        cb.cond_dim, opt, out);
    if (st)
        free(cn); /* not callback_destroy: on failure the user's destroy is not called */
    return st;
}

lgd_status lgd_model_create_network(lgd_context *ctx, const lgd_network_callbacks *network,
                                    const lgd_adapter_options *options, lgd_model **out)
{
    return lgd_model_create_network_callbacks(ctx, network, options, out);
}
