/*
 * model_gmm.c - the exact Gaussian-mixture prior p0 = sum_k w_k N(mu_k, Sigma_k).
 *
 * Each covariance is eigendecomposed once, Sigma_k = U_k diag(lam_k) U_k^T, so
 * that every noise level sigma (s2 = sigma^2) costs only GEMMs and diagonal
 * filters. With z_k = U_k^T (x - mu_k):
 *   log N(x; mu_k, Sigma_k + s2 I) = -0.5 sum_j z_kj^2 / (lam_kj + s2)
 *                                    -0.5 sum_j log(lam_kj + s2) - D/2 log(2 pi)
 *   r_k = softmax_k(log w_k + log N_k)                 (responsibilities)
 *   m_k = mu_k + U_k (lam/(lam+s2) * z_k)              (component posterior mean)
 *   D(x) = sum_k r_k m_k = mbar
 *   J = dD/dx = Cov[x0 | x] / s2 (symmetric), so that
 *   J^T v = sum_k r_k U_k (lam/(lam+s2) * (U_k^T v))            (within components)
 *         + 1/s2 sum_k r_k (m_k - mbar) ((m_k - mbar) . v)       (between components)
 *   (from m_k = x + s2 g_k, g_k = -(Sigma_k + s2)^-1 (x - mu_k), dr_k/dx = r_k (g_k - gbar):
 *   sum_k (m_k . v) dr_k/dx = sum_k r_k ((m_k - mbar) . v) (g_k - gbar), and
 *   g_k - gbar = (m_k - mbar) / s2). The between term is formed from deviation
 *   vectors, never from differences of dot products: m_k - mbar at large sigma, where
 *   the m_k sit near the means mu_k while x is far, and equivalently
 *   s2 (g_k - gbar) at small sigma, where every m_k is close to x (see vjp_form()).
 *   p(x0 | x) = sum_k r_k N(m_k, U_k diag(lam s2/(lam+s2)) U_k^T).
 * Diagonal and isotropic covariances skip the rotations (U_k = I).
 * All math runs through the backend table and the mixture's own kernel table
 * (gmm_kernels.h), so the model runs on any backend that has them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/checked.h"
#include "models/model_internal.h"
#include "core/linalg.h"
#include "core/rng.h"
#include "models/gmm_kernels.h"


typedef struct gmm {
    size_t D, K;
    const lgd_gmm_kernels *kern; /* the backend's mixture kernels */
    int rotated;        /* full covariances: U_k are used */
    lgd_buffer mu;      /* [K][D] */
    lgd_buffer U;       /* [K][D][D], eigenvectors in columns (full only) */
    lgd_buffer lam;     /* [K][D] eigenvalues / variances */
    double *lam_host;   /* [K][D] */
    double *logw;       /* [K] normalised log weights */
    double mean_sq;     /* sum_k w_k |mu_k|^2 (vjp_form()) */
    float *const_host;  /* [K] per-call log-normaliser constants */
    /* scratch, grown with the batch */
    size_t batch_cap;
    lgd_buffer z;       /* [K][B][D]: U_k^T (x - mu_k) */
    lgd_buffer dev;     /* [K][B][D], full covariances, VJP users only: the m_k, or
                           U_k z_k/(lam+s2) = -g_k (gmm_vjp) */
    lgd_buffer resp;    /* [B][K] responsibilities (log-probs before softmax) */
    lgd_buffer coef;    /* [B][K] */
    lgd_buffer t1, t2;  /* [B][D] */
    lgd_buffer mean;    /* [B][D]: D(x), or sum_k r_k (-g_k) (gmm_vjp) */
    lgd_buffer draws_a, draws_b, draws_c; /* posterior sampling: [B][n][D] each */
    lgd_buffer unif;    /* [B][n] */
    int32_t *idx;       /* [B][n] component indices (backend memory) */
    size_t idx_cap;
    lgd_buffer post;    /* block sampler: [K][B][D] the m_k, then [K][D] the posterior stds */
    lgd_gmm_posterior post_state; /* what the block sampler's draws read (gmm_kernels.h) */
    /* what z and resp were computed for (the VJP reuses them) */
    const float *cache_x;
    float cache_sigma;
    size_t cache_batch;
    int cache_vjp;      /* mean holds D(x) (and dev the m_k, full covariances) for it */
    int vjp_seen;       /* a VJP has reserved its scratch: the denoiser keeps what it needs */
} gmm;

static const double LOG_2PI = 1.8378770664093453;

static lgd_status reserve_batch(lgd_model *m, gmm *g, size_t batch)
{
    if (batch <= g->batch_cap)
        return LGD_OK;
    lgd_context *ctx = m->ctx;
    size_t KBD, BD, BK;
    if (lgd_mul3_size(g->K, batch, g->D, &KBD) || lgd_mul_size(batch, g->D, &BD) ||
        lgd_mul_size(batch, g->K, &BK))
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "gaussian mixture: the scratch for %zu "
                         "rows x %zu components overflows the address space", batch, g->K);
    lgd_status st;
    if ((st = lgd_buffer_reserve(ctx, &g->z, KBD, "gaussian mixture scratch")) ||
        (st = lgd_buffer_reserve(ctx, &g->resp, BK, "gaussian mixture scratch")) ||
        (st = lgd_buffer_reserve(ctx, &g->coef, BK, "gaussian mixture scratch")) ||
        (st = lgd_buffer_reserve(ctx, &g->t1, BD, "gaussian mixture scratch")) ||
        (st = lgd_buffer_reserve(ctx, &g->t2, BD, "gaussian mixture scratch")) ||
        (st = lgd_buffer_reserve(ctx, &g->mean, BD, "gaussian mixture scratch")))
        return st;
    g->batch_cap = batch;
    return LGD_OK;
}

/* Fills g->const_host[k] = log w_k - 0.5 sum_j log(lam_kj + s2) - D/2 log 2pi. */
static int log_constants(gmm *g, double s2)
{
    for (size_t k = 0; k < g->K; k++) {
        double acc = g->logw[k] - 0.5 * (double)g->D * LOG_2PI;
        for (size_t j = 0; j < g->D; j++) {
            double v = g->lam_host[k * g->D + j] + s2;
            if (!(v > 0.0))
                return 0;
            acc -= 0.5 * log(v);
        }
        g->const_host[k] = (float)acc;
    }
    return 1;
}

static const float *lam_k(gmm *g, size_t k) { return g->lam.data + k * g->D; }
static const float *mu_k(gmm *g, size_t k) { return g->mu.data + k * g->D; }
static const float *U_k(gmm *g, size_t k) { return g->U.data + k * g->D * g->D; }
static float *z_k(gmm *g, size_t k, size_t batch) { return g->z.data + k * batch * g->D; }

/* z_k = U_k^T (x - mu_k) for all k, and resp = log w_k + log N_k (unnormalised). */
static void project_and_logp(lgd_context *ctx, gmm *g, const float *x, float s2, size_t batch)
{
    const lgd_backend_ops *ops = ctx->ops;
    for (size_t k = 0; k < g->K; k++) {
        float *zk = z_k(g, k, batch);
        if (g->rotated) {
            ops->sub_row(ctx->be, batch, g->D, x, mu_k(g, k), g->t1.data);
            ops->gemm(ctx->be, 0, 0, batch, g->D, g->D, 1.0f, g->t1.data, g->D, U_k(g, k), g->D,
                      0.0f, zk, g->D);
        } else {
            ops->sub_row(ctx->be, batch, g->D, x, mu_k(g, k), zk);
        }
        g->kern->gaussian_logp(ctx->be, batch, g->D, zk, lam_k(g, k), s2, g->const_host[k],
                           g->resp.data + k, g->K);
    }
}

/* out (+)= U_k t  (t in the eigenbasis, [batch][D]); accumulate when beta = 1 */
static void back_project(lgd_context *ctx, gmm *g, size_t k, size_t rows, const float *t,
                         float beta, float *out)
{
    if (g->rotated)
        ctx->ops->gemm(ctx->be, 0, 1, rows, g->D, g->D, 1.0f, t, g->D, U_k(g, k), g->D, beta, out,
                       g->D);
    else
        ctx->ops->axpby(ctx->be, rows * g->D, 1.0f, t, beta, out);
}

/* dst = m_k = mu_k + U_k (shrink * z_k), the component's posterior mean (uses t1) */
static void component_mean(lgd_context *ctx, gmm *g, size_t k, size_t batch, float s2, float *dst)
{
    const lgd_backend_ops *ops = ctx->ops;
    g->kern->diag_filter(ctx->be, LGD_FILTER_SHRINK, batch, g->D, lam_k(g, k), s2, z_k(g, k, batch),
                     g->t1.data);
    back_project(ctx, g, k, batch, g->t1.data, 0.0f, dst);
    ops->broadcast_axpy(ctx->be, batch, batch, g->D, mu_k(g, k), 1.0f, dst, dst);
}

static lgd_status gmm_denoise(lgd_model *m, const float *x, float sigma, const float *cond,
                              size_t batch, float *out)
{
    (void)cond;
    gmm *g = m->impl;
    lgd_context *ctx = m->ctx;
    const lgd_backend_ops *ops = ctx->ops;
    float s2 = sigma * sigma;
    lgd_status st = reserve_batch(m, g, batch);
    if (st)
        return st;
    if (!log_constants(g, (double)s2))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "gaussian mixture: sigma = %g is too small for a zero-variance component",
                         (double)sigma);
    project_and_logp(ctx, g, x, s2, batch);
    ops->softmax_rows(ctx->be, batch, g->K, g->resp.data);
    /* once a VJP has been asked for, D(x) is kept in mean for the VJP that follows, and
     * with full covariances every m_k (a GEMM each) in dev, when dev holds this batch
     * (K B D <= the checked K * batch_cap * D) */
    size_t BD = batch * g->D;
    int keep = g->rotated && g->dev.data && g->dev.count >= g->K * BD;
    ops->fill(ctx->be, out, BD, 0.0f);
    for (size_t k = 0; k < g->K; k++) {
        /* out += r_k m_k */
        float *mk = keep ? g->dev.data + k * BD : g->t2.data;
        component_mean(ctx, g, k, batch, s2, mk);
        ops->axpby_rows(ctx->be, batch, g->D, g->resp.data + k, g->K, mk, 1.0f, out);
    }
    if (g->vjp_seen && out != g->mean.data)
        ops->copy(ctx->be, g->mean.data, out, BD * sizeof(float));
    g->cache_x = x;
    g->cache_sigma = sigma;
    g->cache_batch = batch;
    g->cache_vjp = g->vjp_seen && (keep || !g->rotated);
    return LGD_OK;
}

/* Makes z, resp, D(x) (in mean) and with full covariances the m_k (in dev) those of
 * (x, sigma, batch); the VJP's scratch must be reserved and vjp_seen set. */
static lgd_status ensure_cache(lgd_model *m, gmm *g, const float *x, float sigma, size_t batch)
{
    if (g->cache_x == x && g->cache_sigma == sigma && g->cache_batch == batch && g->cache_vjp)
        return LGD_OK;
    return gmm_denoise(m, x, sigma, NULL, batch, g->mean.data);
}

/*
 * Which deviation vectors the VJP's between-components term is formed from: 1 for
 * m_k - mbar (scale 1/s2), 0 for s2 (g_k - gbar) (the same vectors, scale s2 on
 * -g_k = U_k z_k/(lam+s2)). Each is exact up to the rounding of the vectors it
 * subtracts, i.e. of float m_k or of float m_k - x = s2 g_k, and one of the two is
 * always at least |x|/2 in size: at large sigma the m_k are near the means and m_k - x
 * is about mu_k - x; at small sigma every m_k is near x (shrink -> 1) and s2 g_k is
 * small. The form is picked on the host from the expected squares of the two under
 * p_sigma (a point x of component k: E|m_k|^2 = |mu_k|^2 + sum_j lam^2/(lam+s2),
 * E|s2 g_k|^2 = sum_j s2^2/(lam+s2)), weighted by w_k, so that it needs no data and
 * does not depend on the batch or the thread count.
 */
static int vjp_form(const gmm *g, double s2)
{
    double em = g->mean_sq, eg = 0.0;
    for (size_t k = 0; k < g->K; k++) {
        double w = exp(g->logw[k]), am = 0.0, ag = 0.0;
        for (size_t j = 0; j < g->D; j++) {
            double lam = g->lam_host[k * g->D + j], v = lam + s2;
            if (v > 0.0) { /* 0 only for a zero variance at s2 = 0, refused before */
                am += lam * lam / v;
                ag += s2 * s2 / v;
            }
        }
        em += w * am;
        eg += w * ag;
    }
    return em <= eg;
}

/* dst = dev_k - mean, the deviation of component k in the VJP's form (uses t1): the
 * vectors kept in dev (full covariances), else formed again from z_k, which is cheaper
 * than keeping them when no rotation is needed. */
static void deviation(lgd_context *ctx, gmm *g, size_t k, size_t batch, float s2, int from_means,
                      float *dst)
{
    size_t BD = batch * g->D;
    if (g->rotated) {
        ctx->ops->broadcast_axpy(ctx->be, batch, 1, g->D, g->dev.data + k * BD, -1.0f,
                                 g->mean.data, dst);
        return;
    }
    if (from_means)
        component_mean(ctx, g, k, batch, s2, dst);
    else
        g->kern->diag_filter(ctx->be, LGD_FILTER_PRECISION, batch, g->D, lam_k(g, k), s2,
                             z_k(g, k, batch), dst);
    ctx->ops->axpby(ctx->be, BD, -1.0f, g->mean.data, 1.0f, dst);
}

static lgd_status gmm_vjp(lgd_model *m, const float *x, float sigma, const float *cond,
                          size_t batch, const float *v, float *out)
{
    (void)cond;
    gmm *g = m->impl;
    lgd_context *ctx = m->ctx;
    const lgd_backend_ops *ops = ctx->ops;
    float s2 = sigma * sigma;
    size_t BD = batch * g->D;
    lgd_status st = reserve_batch(m, g, batch);
    if (!st && g->rotated) /* only VJP users (guided sampling) pay for this buffer */
        st = lgd_buffer_reserve(ctx, &g->dev, g->K * BD, /* <= KBD, checked */
                                "gaussian mixture scratch");
    if (st)
        return st;
    g->vjp_seen = 1;
    if ((st = ensure_cache(m, g, x, sigma, batch)))
        return st;
    int from_means = vjp_form(g, (double)s2);
    float scale;
    if (from_means) {
        /* dev_k = m_k (full covariances) and mean = D(x) = mbar, from the denoiser */
        scale = (float)(1.0 / (double)s2);
    } else {
        /* y_k = U_k (z_k / (lam + s2)) = -g_k (into dev_k with full covariances) and
         * mean = sum_k r_k y_k */
        scale = s2;
        for (size_t k = 0; k < g->K; k++) {
            float *yk = g->rotated ? g->dev.data + k * BD : g->t1.data;
            g->kern->diag_filter(ctx->be, LGD_FILTER_PRECISION, batch, g->D, lam_k(g, k), s2,
                                 z_k(g, k, batch), g->rotated ? g->t1.data : yk);
            if (g->rotated)
                back_project(ctx, g, k, batch, g->t1.data, 0.0f, yk);
            ops->axpby_rows(ctx->be, batch, g->D, g->resp.data + k, g->K, yk,
                            k == 0 ? 0.0f : 1.0f, g->mean.data);
        }
        g->cache_vjp = 0; /* dev and mean no longer hold the m_k and D(x) */
    }
    /* coef[:, k] = (y_k - ybar) . v, then scale r_k (coef_k - sum_j r_j coef_j): the
     * centring removes only rounding, as sum_k r_k (y_k - ybar) = 0 */
    for (size_t k = 0; k < g->K; k++) {
        deviation(ctx, g, k, batch, s2, from_means, g->t2.data);
        ops->row_dot(ctx->be, batch, g->D, g->t2.data, v, g->coef.data + k, g->K);
    }
    ops->softmax_rows_backward(ctx->be, batch, g->K, g->resp.data, g->coef.data, scale,
                               g->coef.data);
    /* out = sum_k [ U_k (r_k shrink(U_k^T v)) + coef_k (y_k - ybar) ] */
    for (size_t k = 0; k < g->K; k++) {
        if (g->rotated) {
            ops->gemm(ctx->be, 0, 0, batch, g->D, g->D, 1.0f, v, g->D, U_k(g, k), g->D, 0.0f,
                      g->t1.data, g->D);
            g->kern->diag_filter(ctx->be, LGD_FILTER_SHRINK, batch, g->D, lam_k(g, k), s2,
                                 g->t1.data, g->t2.data);
        } else {
            g->kern->diag_filter(ctx->be, LGD_FILTER_SHRINK, batch, g->D, lam_k(g, k), s2, v,
                                 g->t2.data);
        }
        ops->axpby_rows(ctx->be, batch, g->D, g->resp.data + k, g->K, g->t2.data, 0.0f,
                        g->t2.data);
        back_project(ctx, g, k, batch, g->t2.data, k == 0 ? 0.0f : 1.0f, out);
        deviation(ctx, g, k, batch, s2, from_means, g->t2.data);
        ops->axpby_rows(ctx->be, batch, g->D, g->coef.data + k, g->K, g->t2.data, 1.0f, out);
    }
    return LGD_OK;
}

static lgd_status gmm_log_density(lgd_model *m, const float *x, float sigma, size_t batch,
                                  float *out)
{
    gmm *g = m->impl;
    lgd_context *ctx = m->ctx;
    float s2 = sigma * sigma;
    lgd_status st = reserve_batch(m, g, batch);
    if (st)
        return st;
    if (!log_constants(g, (double)s2))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "gaussian mixture: the density at sigma = %g is singular (a component "
                         "has zero variance)", (double)sigma);
    project_and_logp(ctx, g, x, s2, batch);
    ctx->ops->logsumexp_rows(ctx->be, batch, g->K, g->resp.data, out);
    g->cache_x = NULL; /* z is valid, but resp holds log-probs now */
    return LGD_OK;
}

static lgd_status gmm_sample_posterior(lgd_model *m, const float *x, float sigma, size_t batch,
                                       size_t draws, const lgd_rng_stream *rng, float *out)
{
    gmm *g = m->impl;
    lgd_context *ctx = m->ctx;
    const lgd_backend_ops *ops = ctx->ops;
    float s2 = sigma * sigma;
    size_t rows = batch * draws;
    lgd_status st = reserve_batch(m, g, batch);
    if (!st)
        st = lgd_buffer_reserve(ctx, &g->draws_a, rows * g->D, "gaussian mixture posterior");
    if (!st)
        st = lgd_buffer_reserve(ctx, &g->draws_b, rows * g->D, "gaussian mixture posterior");
    if (!st)
        st = lgd_buffer_reserve(ctx, &g->draws_c, rows * g->D, "gaussian mixture posterior");
    if (!st)
        st = lgd_buffer_reserve(ctx, &g->unif, rows, "gaussian mixture posterior");
    if (st)
        return st;
    if (g->idx_cap < rows) {
        int32_t *p = lgd_backend_alloc(ctx, rows * sizeof(int32_t));
        if (!p)
            return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "gaussian mixture posterior: indices");
        lgd_backend_free(ctx, g->idx, g->idx_cap * sizeof(int32_t));
        g->idx = p;
        g->idx_cap = rows;
    }
    if (sigma == 0.0f) { /* p(x0 | x) is a point mass at x */
        ops->fill(ctx->be, g->draws_a.data, rows * g->D, 0.0f);
        ops->broadcast_axpy(ctx->be, rows, draws, g->D, x, 1.0f, g->draws_a.data, out);
        return LGD_OK;
    }
    /* responsibilities and projections at x */
    if ((st = gmm_denoise(m, x, sigma, NULL, batch, g->mean.data)))
        return st;
    lgd_rng_stream comp = *rng;
    comp.purpose = LGD_RNG_COMPONENT;
    ops->uniform(ctx->be, &comp, batch, draws, g->unif.data);
    ops->categorical(ctx->be, batch, draws, g->K, g->resp.data, g->unif.data, g->idx);
    lgd_rng_stream normal = *rng;
    normal.purpose = LGD_RNG_POSTERIOR;
    float *eps = g->draws_a.data, *scaled = g->draws_b.data, *cand = g->draws_c.data;
    ops->normal(ctx->be, &normal, batch, draws, g->D, eps); /* the same eps serve every k */
    for (size_t k = 0; k < g->K; k++) {
        component_mean(ctx, g, k, batch, s2, g->t2.data);
        /* cand = m_k + U_k (post_std * eps) */
        g->kern->diag_filter(ctx->be, LGD_FILTER_POST_STD, rows, g->D, lam_k(g, k), s2, eps,
                         scaled);
        back_project(ctx, g, k, rows, scaled, 0.0f, cand);
        ops->broadcast_axpy(ctx->be, rows, draws, g->D, g->t2.data, 1.0f, cand, cand);
        ops->select_rows(ctx->be, rows, g->D, g->idx, (int32_t)k, cand, out);
    }
    g->cache_x = NULL;
    return LGD_OK;
}

static void gmm_posterior_draw(const void *state, size_t r, size_t first, size_t count,
                               float *out)
{
    const gmm *g = state;
    g->kern->posterior_draws(&g->post_state, r, first, count, out);
}

/* The block sampler of the fused exact estimator (model_internal.h): the
 * responsibilities and every component's posterior mean m_k for the whole batch, once
 * per call (sample_posterior forms them again for every chunk, by the same code), and
 * the posterior standard deviations; the backend's posterior_draws then draws any row's
 * draws from them. None for full covariances (their back-projection is a GEMM whose bits
 * depend on its blocking, i.e. on the chunk) and on backends without the kernel. */
static lgd_status gmm_posterior_sampler(lgd_model *m, const float *x, float sigma, size_t batch,
                                        const lgd_rng_stream *rng, lgd_posterior_sampler *out)
{
    gmm *g = m->impl;
    lgd_context *ctx = m->ctx;
    out->draw = NULL;
    out->state = NULL;
    if (g->rotated || !g->kern->posterior_draws || sigma == 0.0f)
        return LGD_OK;
    float s2 = sigma * sigma;
    size_t KBD, KD, total;
    if (lgd_mul3_size(g->K, batch, g->D, &KBD) || lgd_mul_size(g->K, g->D, &KD) ||
        lgd_add_size(KBD, KD, &total))
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "gaussian mixture posterior: %zu rows x "
                         "%zu components overflow the address space", batch, g->K);
    lgd_status st = reserve_batch(m, g, batch);
    if (!st)
        st = lgd_buffer_reserve(ctx, &g->post, total, "gaussian mixture posterior");
    if (!st) /* responsibilities and projections at x, as sample_posterior has them */
        st = gmm_denoise(m, x, sigma, NULL, batch, g->mean.data);
    if (st)
        return st;
    float *means = g->post.data, *post_std = g->post.data + KBD;
    const lgd_backend_ops *ops = ctx->ops;
    ops->fill(ctx->be, g->t2.data, g->D, 1.0f); /* f * 1 = f: the filter's factors */
    for (size_t k = 0; k < g->K; k++) {
        component_mean(ctx, g, k, batch, s2, means + k * batch * g->D);
        g->kern->diag_filter(ctx->be, LGD_FILTER_POST_STD, 1, g->D, lam_k(g, k), s2, g->t2.data,
                             post_std + k * g->D);
    }
    g->cache_x = NULL; /* as after sample_posterior */
    lgd_gmm_posterior *p = &g->post_state;
    p->D = g->D;
    p->K = g->K;
    p->batch = batch;
    p->resp = g->resp.data;
    p->means = means;
    p->post_std = post_std;
    p->rng = *rng;
    out->draw = gmm_posterior_draw;
    out->state = g;
    return LGD_OK;
}

static void gmm_destroy(lgd_model *m)
{
    gmm *g = m->impl;
    if (!g)
        return;
    lgd_context *ctx = m->ctx;
    lgd_buffer *bufs[] = { &g->mu, &g->U, &g->lam, &g->z, &g->dev, &g->resp, &g->coef,
                           &g->t1, &g->t2, &g->mean, &g->draws_a, &g->draws_b, &g->draws_c, &g->unif,
                           &g->post };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        lgd_buffer_release(ctx, bufs[i]);
    lgd_backend_free(ctx, g->idx, g->idx_cap * sizeof(int32_t));
    free(g->lam_host);
    free(g->logw);
    free(g->const_host);
    free(g);
}

static const lgd_model_vtable gmm_vtable = {
    .name = "gaussian mixture",
    .denoise = gmm_denoise,
    .vjp = gmm_vjp,
    .log_density = gmm_log_density,
    .sample_posterior = gmm_sample_posterior,
    .destroy = gmm_destroy,
    .posterior_sampler = gmm_posterior_sampler,
};

/* Validates and decomposes the covariances into g (host arrays + uploads). */
static lgd_status load_covariances(lgd_context *ctx, gmm *g, const float *cov,
                                   lgd_covariance layout)
{
    size_t D = g->D, K = g->K;
    const char *fn = "lgd_model_create_gmm";
    if (layout == LGD_COVARIANCE_ISOTROPIC || layout == LGD_COVARIANCE_DIAGONAL) {
        for (size_t k = 0; k < K; k++)
            for (size_t j = 0; j < D; j++) {
                float v = layout == LGD_COVARIANCE_ISOTROPIC ? cov[k] : cov[k * D + j];
                if (!isfinite(v) || v < 0.0f)
                    return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                                     "%s: variance of component %zu (entry %zu) is %g; must be "
                                     "finite and >= 0", fn, k, j, (double)v);
                g->lam_host[k * D + j] = v;
            }
        return LGD_OK;
    }
    double *a = malloc(D * D * sizeof *a), *vecs = malloc(D * D * sizeof *vecs);
    float *U = malloc(K * D * D * sizeof *U);
    lgd_status st = LGD_OK;
    if (!a || !vecs || !U) {
        st = lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
        goto done;
    }
    for (size_t k = 0; k < K && !st; k++) {
        const float *S = cov + k * D * D;
        double scale = 0.0;
        for (size_t i = 0; i < D * D; i++) {
            if (!isfinite(S[i])) {
                st = lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                               "%s: covariance %zu has a non-finite entry", fn, k);
                goto done;
            }
            scale = fmax(scale, fabs((double)S[i]));
        }
        for (size_t i = 0; i < D; i++)
            for (size_t j = 0; j < D; j++) {
                double sij = S[i * D + j], sji = S[j * D + i];
                if (fabs(sij - sji) > 1e-5 * scale + 1e-30) {
                    st = lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                                   "%s: covariance %zu is not symmetric at (%zu, %zu)", fn, k, i, j);
                    goto done;
                }
                a[i * D + j] = 0.5 * (sij + sji);
            }
        double *w = g->lam_host + k * D;
        int erc = lgd_symmetric_eigen(a, D, w, vecs);
        if (erc == -2) {
            st = lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY,
                           "%s: out of memory for the eigendecomposition of covariance %zu",
                           fn, k);
            goto done;
        }
        if (erc != 0) {
            st = lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                           "%s: the eigendecomposition of covariance %zu failed", fn, k);
            goto done;
        }
        for (size_t j = 0; j < D; j++) {
            if (w[j] < -1e-5 * scale) {
                st = lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                               "%s: covariance %zu is not positive semi-definite (eigenvalue %g)",
                               fn, k, w[j]);
                goto done;
            }
            if (w[j] < 0.0)
                w[j] = 0.0;
        }
        for (size_t i = 0; i < D * D; i++)
            U[k * D * D + i] = (float)vecs[i];
    }
    st = lgd_buffer_from_host(ctx, &g->U, U, K * D * D, fn);
    g->rotated = 1;
done:
    free(a);
    free(vecs);
    free(U);
    return st;
}

lgd_status lgd_model_create_gmm(lgd_context *ctx, int64_t dim, int64_t components,
                                const float *weights, const float *means,
                                const float *covariances, lgd_covariance layout,
                                lgd_model **out)
{
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    const char *fn = "lgd_model_create_gmm";
    if (!out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: out_model is NULL", fn);
    *out = NULL;
    if (dim <= 0 || components <= 0)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: dim = %lld and components = %lld must be > 0", fn, (long long)dim,
                         (long long)components);
    if (dim > (1 << 16) || components > (1 << 20))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: dim or components too large", fn);
    if (!weights || !means || !covariances)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                         !weights ? "weights" : !means ? "means" : "covariances");
    if (layout != LGD_COVARIANCE_FULL && layout != LGD_COVARIANCE_DIAGONAL &&
        layout != LGD_COVARIANCE_ISOTROPIC)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: unknown covariance layout %d", fn,
                         (int)layout);
    size_t D = (size_t)dim, K = (size_t)components;
    double wsum = 0.0;
    for (size_t k = 0; k < K; k++) {
        if (!isfinite(weights[k]) || weights[k] <= 0.0f)
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "%s: weights[%zu] = %g must be finite and > 0", fn, k,
                             (double)weights[k]);
        wsum += weights[k];
    }
    for (size_t i = 0; i < K * D; i++)
        if (!isfinite(means[i]))
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: means[%zu] is not finite", fn, i);

    const void *kern = NULL;
    lgd_status kst = lgd_kernels_find(ctx, &lgd_gmm_kernel_table, fn, &kern);
    if (kst)
        return kst;
    gmm *g = calloc(1, sizeof *g);
    if (!g)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    g->kern = kern;
    g->D = D;
    g->K = K;
    g->lam_host = malloc(K * D * sizeof *g->lam_host);
    g->logw = malloc(K * sizeof *g->logw);
    g->const_host = malloc(K * sizeof *g->const_host);
    float *lam_f = malloc(K * D * sizeof *lam_f);
    lgd_status st = LGD_OK;
    if (!g->lam_host || !g->logw || !g->const_host || !lam_f)
        st = lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    if (!st) {
        for (size_t k = 0; k < K; k++) {
            g->logw[k] = log((double)weights[k] / wsum);
            double sq = 0.0;
            for (size_t j = 0; j < D; j++)
                sq += (double)means[k * D + j] * (double)means[k * D + j];
            g->mean_sq += (double)weights[k] / wsum * sq;
        }
        st = load_covariances(ctx, g, covariances, layout);
    }
    if (!st) {
        for (size_t i = 0; i < K * D; i++)
            lam_f[i] = (float)g->lam_host[i];
        st = lgd_buffer_from_host(ctx, &g->lam, lam_f, K * D, fn);
    }
    if (!st)
        st = lgd_buffer_from_host(ctx, &g->mu, means, K * D, fn);
    free(lam_f);
    lgd_model tmp = { .ctx = ctx, .impl = g };
    if (!st)
        st = lgd_model_new(ctx, &gmm_vtable, dim, 0, g, out);
    if (st)
        gmm_destroy(&tmp);
    return st;
}
