/*
 * test_mc_fused.c - the 'mc_fused' part of the 'unit' suite: the CPU's fused LGD-MC
 * loop (sampling/mc_kernels_cpu.c: draws, loss, gradient and online log-sum-exp in one
 * pass per row) gives the same bits as the unfused one (normal_around, the loss's eval,
 * accumulate) for every built-in loss it serves, draw counts that are and are not
 * multiples of the chunk, DPS, the gradient-free kind (values only, folding xhat - x_i),
 * 1 and 2 threads; a non-finite loss and cancellation are
 * reported the same way; a loss without a block evaluator (callbacks) is unchanged.
 * The same for the fused exact loop (the mixture's block posterior sampler,
 * models/gmm_kernels_cpu.c, against sample_posterior, eval, accumulate): isotropic and
 * diagonal mixtures; full covariances keep the unfused loop.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "losses/loss_internal.h"     /* the loss's block evaluator */
#include "core/rng.h"
#include "models/gmm_kernels.h"       /* the CPU's posterior_draws */
#include "models/model_internal.h"    /* the model's block posterior sampler */
#include "sampling/guidance_impl.h" /* g->fused: the switch this test compares */
#include "testutil.h"

typedef struct outcome {
    lgd_status st;
    float *g, *xhat, *row_loss, *row_ess;
    float mean_loss, mean_ess, min_ess;
} outcome;

static void outcome_free(outcome *o)
{
    free(o->g);
    free(o->xhat);
    free(o->row_loss);
    free(o->row_ess);
}

/* One guided term with the fused loop on or off. */
static outcome term(lgd_context *ctx, lgd_model *m, lgd_loss *l, lgd_guidance_kind kind,
                    int32_t n, int32_t chunk, const float *x, int64_t batch, float sigma,
                    int fused)
{
    lgd_guidance_options o = LGD_GUIDANCE_OPTIONS_INIT;
    o.kind = kind;
    o.n_samples = n;
    o.chunk_size = chunk;
    o.seed = 0x5eed;
    lgd_guidance *g = NULL;
    TU_OK(ctx, lgd_guidance_create(ctx, m, l, &o, &g));
    g->fused = fused;
    int64_t dim = lgd_model_dim(m);
    lgd_tensor *xt = tu_tensor(ctx, batch, dim, x), *gt = tu_tensor(ctx, batch, dim, NULL);
    lgd_tensor *xh = tu_tensor(ctx, batch, dim, NULL);
    outcome r = { 0 };
    r.row_loss = calloc((size_t)batch, sizeof(float));
    r.row_ess = calloc((size_t)batch, sizeof(float));
    lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
    rep.rows = batch;
    rep.row_loss = r.row_loss;
    rep.row_ess = r.row_ess;
    r.st = lgd_guidance_term(g, xt, sigma, 3, 17, gt, xh, &rep);
    r.g = tu_download(gt);
    r.xhat = tu_download(xh);
    r.mean_loss = rep.mean_loss;
    r.mean_ess = rep.mean_ess;
    r.min_ess = rep.min_ess;
    lgd_tensor_destroy(xt);
    lgd_tensor_destroy(gt);
    lgd_tensor_destroy(xh);
    lgd_guidance_destroy(g);
    return r;
}

static void assert_same_bits(const float *a, const float *b, size_t n, const char *what,
                             const char *label)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(memcmp(&a[i], &b[i], sizeof(float)) == 0,
                      "%s: %s[%zu] fused %.9g unfused %.9g", label, what, i, (double)a[i],
                      (double)b[i]);
}

static void compare(lgd_context *ctx, lgd_model *m, lgd_loss *l, lgd_guidance_kind kind,
                    int32_t n, int32_t chunk, const float *x, int64_t batch, float sigma,
                    const char *label)
{
    outcome f = term(ctx, m, l, kind, n, chunk, x, batch, sigma, 1);
    outcome u = term(ctx, m, l, kind, n, chunk, x, batch, sigma, 0);
    ck_assert_msg(f.st == LGD_OK && u.st == LGD_OK, "%s: %s / %s (%s)", label,
                  lgd_status_string(f.st), lgd_status_string(u.st),
                  lgd_context_last_error(ctx));
    size_t nb = (size_t)batch, nv = nb * (size_t)lgd_model_dim(m);
    assert_same_bits(f.g, u.g, nv, "g", label);
    assert_same_bits(f.xhat, u.xhat, nv, "xhat", label);
    assert_same_bits(f.row_loss, u.row_loss, nb, "row_loss", label);
    assert_same_bits(f.row_ess, u.row_ess, nb, "row_ess", label);
    ck_assert_msg(f.mean_loss == u.mean_loss && f.mean_ess == u.mean_ess &&
                      f.min_ess == u.min_ess, "%s: report", label);
    for (size_t i = 0; i < nv; i++)
        ck_assert_msg(isfinite(f.g[i]), "%s: g[%zu] = %g", label, i, (double)f.g[i]);
    outcome_free(&f);
    outcome_free(&u);
}

/* A diagonal mixture in `dim` dimensions with components at +-1 per coordinate. */
static lgd_model *mixture(lgd_context *ctx, int64_t dim, float scale)
/* (scale 1 in every use: the spread of the modes and of the components) */
{
    float w[2] = { 0.3f, 0.7f }, mu[2 * 64], var[2 * 64];
    ck_assert(dim <= 64);
    for (int64_t j = 0; j < dim; j++) {
        mu[j] = -scale * (1.0f + 0.1f * (float)j);
        mu[dim + j] = scale * (1.0f - 0.05f * (float)j);
        var[j] = 0.04f * scale * scale;
        var[dim + j] = 0.09f * scale * scale;
    }
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, dim, 2, w, mu, var, LGD_COVARIANCE_DIAGONAL, &m));
    return m;
}

static const int32_t draw_counts[] = { 1, 16, 37, 100 };
static const int32_t chunks[] = { 0, 3, 64 };

static void sweep(lgd_context *ctx, lgd_model *m, lgd_loss *l, int64_t batch, const char *name)
{
    int64_t dim = lgd_model_dim(m);
    float *x = malloc((size_t)(batch * dim) * sizeof *x);
    tu_rng r = { 42 };
    tu_fill_normal(&r, x, (size_t)(batch * dim), 1.5f);
    char label[160];
    for (size_t s = 0; s < 2; s++) {
        float sigma = (float[]){ 0.05f, 2.0f }[s];
        snprintf(label, sizeof label, "%s DPS sigma %g", name, (double)sigma);
        compare(ctx, m, l, LGD_GUIDANCE_DPS, 1, 0, x, batch, sigma, label);
        for (size_t i = 0; i < sizeof draw_counts / sizeof draw_counts[0]; i++)
            for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
                snprintf(label, sizeof label, "%s MC n %d chunk %d sigma %g", name,
                         (int)draw_counts[i], (int)chunks[c], (double)sigma);
                compare(ctx, m, l, LGD_GUIDANCE_MC, draw_counts[i], chunks[c], x, batch, sigma,
                        label);
                snprintf(label, sizeof label, "%s gradient-free n %d chunk %d sigma %g", name,
                         (int)draw_counts[i], (int)chunks[c], (double)sigma);
                compare(ctx, m, l, LGD_GUIDANCE_MC_GRADIENT_FREE, draw_counts[i], chunks[c], x,
                        batch, sigma, label);
            }
    }
    free(x);
}

START_TEST(logistic_fused_equals_unfused)
{
    for (int threads = 1; threads <= 2; threads++) {
        lgd_context *ctx = tu_context(threads);
        const float a1 = -50.0f, a5[5] = { 1.0f, -2.0f, 0.5f, 3.0f, -0.25f };
        lgd_model *m1 = mixture(ctx, 1, 1.0f), *m5 = mixture(ctx, 5, 1.0f);
        lgd_loss *l1 = NULL, *l5 = NULL;
        TU_OK(ctx, lgd_loss_create_logistic(ctx, 1, &a1, 0.0f, &l1));
        TU_OK(ctx, lgd_loss_create_logistic(ctx, 5, a5, 0.3f, &l5));
        sweep(ctx, m1, l1, threads == 1 ? 300 : 700, "logistic 1-D");
        sweep(ctx, m5, l5, 61, "logistic 5-D");
        lgd_loss_destroy(l1);
        lgd_loss_destroy(l5);
        lgd_model_destroy(m1);
        lgd_model_destroy(m5);
        lgd_context_destroy(ctx);
    }
}
END_TEST

START_TEST(squared_error_fused_equals_unfused)
{
    for (int threads = 1; threads <= 2; threads++) {
        lgd_context *ctx = tu_context(threads);
        enum { D = 19, B = 23 };
        float target[B * D], weights[D];
        tu_rng r = { 7 };
        tu_fill_normal(&r, target, B * D, 1.0f);
        for (int j = 0; j < D; j++)
            weights[j] = 0.25f + 0.1f * (float)j;
        lgd_model *m = mixture(ctx, D, 1.0f);
        lgd_loss *shared = NULL, *rows = NULL, *weighted = NULL;
        TU_OK(ctx, lgd_loss_create_squared_error(ctx, D, target, 1, NULL, &shared));
        TU_OK(ctx, lgd_loss_create_squared_error(ctx, D, target, B, NULL, &rows));
        TU_OK(ctx, lgd_loss_create_squared_error(ctx, D, target, B, weights, &weighted));
        sweep(ctx, m, shared, B, "sqerr shared target");
        sweep(ctx, m, rows, B, "sqerr per-row targets");
        sweep(ctx, m, weighted, B, "sqerr weighted");
        /* a target whose rows match neither 1 nor the batch: the same error either way */
        float x[5 * D] = { 0 };
        outcome f = term(ctx, m, rows, LGD_GUIDANCE_MC, 8, 0, x, 5, 1.0f, 1);
        outcome u = term(ctx, m, rows, LGD_GUIDANCE_MC, 8, 0, x, 5, 1.0f, 0);
        ck_assert_int_eq(f.st, LGD_ERR_SHAPE_MISMATCH);
        ck_assert_int_eq(u.st, LGD_ERR_SHAPE_MISMATCH);
        outcome_free(&f);
        outcome_free(&u);
        lgd_loss_destroy(shared);
        lgd_loss_destroy(rows);
        lgd_loss_destroy(weighted);
        lgd_model_destroy(m);
        lgd_context_destroy(ctx);
    }
}
END_TEST

START_TEST(trajectory_losses_fused_equal_unfused)
{
    for (int threads = 1; threads <= 2; threads++) {
        lgd_context *ctx = tu_context(threads);
        lgd_trajectory_prior_options po = LGD_TRAJECTORY_PRIOR_OPTIONS_INIT;
        po.frames = 12;
        po.headings = 4;
        po.turns = 2;
        lgd_model *prior = NULL;
        TU_OK(ctx, lgd_model_create_trajectory_prior(ctx, &po, &prior));
        lgd_trajectory_layout layout = LGD_TRAJECTORY_LAYOUT_INIT;
        layout.frames = 12;
        enum { B = 9 };
        float path[B * 12 * 2];
        for (int b = 0; b < B; b++)
            for (int t = 0; t < 12; ++t) {
                path[(b * 12 + t) * 2] = 0.8f * (float)(t + 1) + 0.1f * (float)b;
                path[(b * 12 + t) * 2 + 1] = 0.1f * (float)(t * t) / 4.0f - 0.05f * (float)b;
            }
        lgd_loss *follow = NULL, *follow_rows = NULL, *avoid = NULL;
        TU_OK(ctx, lgd_loss_create_path(ctx, 24, &layout, path, 1, &follow));
        TU_OK(ctx, lgd_loss_create_path(ctx, 24, &layout, path, B, &follow_rows));
        const float goal[2] = { 10.0f, 0.0f }, obstacles[3] = { 5.0f, 0.0f, 1.5f };
        lgd_obstacle_options oo = LGD_OBSTACLE_OPTIONS_INIT;
        TU_OK(ctx, lgd_loss_create_obstacle_avoidance(ctx, 24, &layout, goal, 1, obstacles, 1,
                                                      &oo, &avoid));
        ck_assert_ptr_nonnull(follow->block.eval);
        ck_assert_ptr_nonnull(avoid->block.eval);
        sweep(ctx, prior, follow, B, "path, one target");
        sweep(ctx, prior, follow_rows, B, "path, a target per row");
        sweep(ctx, prior, avoid, B, "obstacle avoidance");
        lgd_loss_destroy(follow);
        lgd_loss_destroy(follow_rows);
        lgd_loss_destroy(avoid);
        lgd_model_destroy(prior);
        lgd_context_destroy(ctx);
    }
}
END_TEST

/* A loss that overflows at every draw gives LGD_ERR_NON_FINITE with the same message
 * fused and unfused, and a cancelled context LGD_ERR_ABORTED (x: 4 rows of 3). */
static void non_finite_and_cancel_alike(lgd_context *ctx, lgd_model *m, lgd_loss *l,
                                        lgd_guidance_kind kind, const float *x)
{
    for (int fused = 0; fused <= 1; fused++) {
        outcome o = term(ctx, m, l, kind, 20, 0, x, 4, 1.0f, fused);
        ck_assert_int_eq(o.st, LGD_ERR_NON_FINITE);
        ck_assert_msg(strstr(lgd_context_last_error(ctx), "loss value is non-finite"),
                      "fused %d: %s", fused, lgd_context_last_error(ctx));
        outcome_free(&o);
    }
    lgd_context_cancel(ctx);
    for (int fused = 0; fused <= 1; fused++) {
        outcome o = term(ctx, m, l, kind, 20, 0, x, 4, 1.0f, fused);
        ck_assert_int_eq(o.st, LGD_ERR_ABORTED);
        outcome_free(&o);
    }
    lgd_context_reset_cancel(ctx);
}

START_TEST(non_finite_loss_and_cancel_are_reported_alike)
{
    lgd_context *ctx = tu_context(2);
    /* a target at 1e20: the squared error of a finite draw overflows float (Inf) */
    lgd_model *m = mixture(ctx, 3, 1.0f);
    const float far[3] = { 1e20f, 0.0f, -1e20f };
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 3, far, 1, NULL, &l));
    float x[4 * 3] = { 1, 1, 1, -1, -1, -1, 0, 0, 0, 3, 0, 0 };
    non_finite_and_cancel_alike(ctx, m, l, LGD_GUIDANCE_MC, x);
    lgd_loss_destroy(l);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(only_built_in_cpu_losses_have_a_block_evaluator)
{
    lgd_context *ctx = tu_context(1);
    const float a = 1.0f, t = 0.0f;
    lgd_loss *lo = NULL, *sq = NULL, *sum = NULL;
    TU_OK(ctx, lgd_loss_create_logistic(ctx, 1, &a, 0.0f, &lo));
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 1, &t, 1, NULL, &sq));
    lgd_loss *terms[2] = { lo, sq };
    const float w[2] = { 1.0f, 0.5f };
    TU_OK(ctx, lgd_loss_create_sum(ctx, 2, terms, w, &sum));
    ck_assert_ptr_nonnull(lo->block.eval);
    ck_assert_ptr_nonnull(sq->block.eval);
    ck_assert_ptr_null(sum->block.eval); /* evaluated through eval, unfused */
    lgd_loss_destroy(lo);
    lgd_loss_destroy(sq);
    lgd_loss_destroy(sum);
    lgd_context_destroy(ctx);
}
END_TEST


/* ------------------------------------------------------------------ exact */

enum { XD = 17, XK = 3 }; /* the largest mixture of the exact tests */

/* A mixture of K components in dim dimensions with the covariance layout given: means
 * spread by component and coordinate, small variances (at sigma 0.05 a point sits in
 * one component: responsibilities 0 in float, see smallest_responsibility). Its
 * weights, means and variances of the diagonal (all layouts) into w, mu, var. */
static lgd_model *mixture_k(lgd_context *ctx, int64_t dim, int64_t K, lgd_covariance layout,
                            double w[XK], double mu[XK * XD], double var[XK * XD])
{
    ck_assert(dim <= XD && K <= XK);
    float wf[XK], muf[XK * XD], cov[XK * XD * XD];
    for (int64_t k = 0; k < K; k++) {
        wf[k] = 0.2f + 0.3f * (float)k;
        w[k] = wf[k];
        for (int64_t j = 0; j < dim; j++) {
            muf[k * dim + j] = (float)(k - 1) * (1.0f + 0.07f * (float)j) + 0.1f * (float)(j % 3);
            mu[k * dim + j] = muf[k * dim + j];
        }
    }
    size_t per = layout == LGD_COVARIANCE_ISOTROPIC ? 1
                 : layout == LGD_COVARIANCE_DIAGONAL ? (size_t)dim
                                                     : (size_t)(dim * dim);
    for (int64_t k = 0; k < K; k++)
        for (size_t i = 0; i < per; i++) {
            size_t row = layout == LGD_COVARIANCE_FULL ? i / (size_t)dim : i;
            size_t col = layout == LGD_COVARIANCE_FULL ? i % (size_t)dim : i;
            float v = row == col ? 0.01f * (float)(1 + 2 * k) + 0.002f * (float)(i % 5)
                                 : 0.002f / (float)(1 + row + col); /* full: dominant diagonal */
            cov[(size_t)k * per + i] = v;
            if (row == col)
                for (int64_t j = 0; j < dim; j++)
                    if (per == 1 || (size_t)j == row)
                        var[k * dim + j] = v;
        }
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, dim, K, wf, muf, cov, layout, &m));
    return m;
}

/* The smallest responsibility over the rows of x at sigma (float64, from the diagonal
 * covariances): below FLT_MIN it is 0 in float, the categorical rule's edge. */
static double smallest_responsibility(int64_t dim, int64_t K, const double *w, const double *mu,
                                      const double *var, const float *x, int64_t batch,
                                      double sigma)
{
    double smallest = 1.0;
    for (int64_t b = 0; b < batch; b++) {
        double lp[XK], mx = -INFINITY, z = 0.0;
        for (int64_t k = 0; k < K; k++) {
            lp[k] = log(w[k]);
            for (int64_t j = 0; j < dim; j++) {
                double v = var[k * dim + j] + sigma * sigma, d = x[b * dim + j] - mu[k * dim + j];
                lp[k] -= 0.5 * (d * d / v + log(v));
            }
            mx = fmax(mx, lp[k]);
        }
        for (int64_t k = 0; k < K; k++)
            z += exp(lp[k] - mx);
        for (int64_t k = 0; k < K; k++)
            smallest = fmin(smallest, exp(lp[k] - mx) / z);
    }
    return smallest;
}

/* Whether the model has a block sampler for this call (the fused exact loop's condition) */
static int has_block_sampler(lgd_model *m, const float *x, int64_t batch, float sigma)
{
    lgd_context *ctx = lgd_model_context(m);
    lgd_tensor *xt = tu_tensor(ctx, batch, lgd_model_dim(m), x);
    lgd_rng_stream rng = { 1, 5, 0, 0, 0 };
    lgd_posterior_sampler ps = { 0 };
    ck_assert_ptr_nonnull(m->vt->posterior_sampler);
    TU_OK(ctx, m->vt->posterior_sampler(m, xt->buf.data, sigma, (size_t)batch, &rng, &ps));
    lgd_tensor_destroy(xt);
    return ps.draw != NULL;
}

START_TEST(exact_fused_equals_unfused)
{
    static const int64_t dims[] = { 1, 3, 17 }, comps[] = { 1, 3 };
    static const lgd_covariance layouts[] = { LGD_COVARIANCE_ISOTROPIC, LGD_COVARIANCE_DIAGONAL };
    static const float sigmas[] = { 0.05f, 2.0f };
    enum { B = 29 };
    for (int threads = 1; threads <= 2; threads++) {
        lgd_context *ctx = tu_context(threads);
        for (size_t li = 0; li < 2; li++)
            for (size_t di = 0; di < 3; di++)
                for (size_t ki = 0; ki < 2; ki++) {
                    int64_t D = dims[di], K = comps[ki];
                    double w[XK], mu[XK * XD], var[XK * XD];
                    lgd_model *m = mixture_k(ctx, D, K, layouts[li], w, mu, var);
                    float a[XD], target[B * XD], x[B * XD];
                    tu_rng r = { 11 + (uint64_t)D };
                    tu_fill_normal(&r, a, (size_t)D, 1.0f);
                    tu_fill_normal(&r, target, (size_t)(B * D), 1.0f);
                    tu_fill_normal(&r, x, (size_t)(B * D), 1.5f);
                    if (K > 1) /* sigma 0.05 takes the categorical rule to its edge */
                        ck_assert(smallest_responsibility(D, K, w, mu, var, x, B, 0.05) <
                                  1e-38);
                    /* a logistic loss (shared) and a squared error (a target per row) */
                    lgd_loss *lo = NULL, *sq = NULL;
                    TU_OK(ctx, lgd_loss_create_logistic(ctx, D, a, 0.2f, &lo));
                    TU_OK(ctx, lgd_loss_create_squared_error(ctx, D, target, B, NULL, &sq));
                    lgd_loss *losses[2] = { lo, sq };
                    for (size_t s = 0; s < 2; s++) {
                        ck_assert(has_block_sampler(m, x, B, sigmas[s]));
                        for (size_t i = 0; i < sizeof draw_counts / sizeof draw_counts[0]; i++)
                            for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
                                size_t which = (s + i + c) % 2;
                                char label[160];
                                snprintf(label, sizeof label,
                                         "exact %s D %d K %d n %d chunk %d sigma %g threads %d "
                                         "%s", li ? "diagonal" : "isotropic", (int)D, (int)K,
                                         (int)draw_counts[i], (int)chunks[c], (double)sigmas[s],
                                         threads, which ? "squared error" : "logistic");
                                compare(ctx, m, losses[which], LGD_GUIDANCE_EXACT, draw_counts[i],
                                        chunks[c], x, B, sigmas[s], label);
                            }
                    }
                    lgd_loss_destroy(lo);
                    lgd_loss_destroy(sq);
                    lgd_model_destroy(m);
                }
        lgd_context_destroy(ctx);
    }
}
END_TEST

/* Full covariances have no block sampler (their back-projection is a GEMM): exact
 * guidance takes the unfused loop with the fused switch on, and works. */
START_TEST(exact_full_covariance_stays_unfused)
{
    for (int threads = 1; threads <= 2; threads++) {
        lgd_context *ctx = tu_context(threads);
        enum { B = 13, D = 3 };
        double w[XK], mu[XK * XD], var[XK * XD];
        lgd_model *m = mixture_k(ctx, D, 3, LGD_COVARIANCE_FULL, w, mu, var);
        float x[B * D], a[D] = { 1.0f, -0.5f, 0.25f };
        tu_rng r = { 5 };
        tu_fill_normal(&r, x, B * D, 1.5f);
        ck_assert(!has_block_sampler(m, x, B, 1.0f));
        lgd_loss *lo = NULL;
        TU_OK(ctx, lgd_loss_create_logistic(ctx, D, a, 0.0f, &lo));
        compare(ctx, m, lo, LGD_GUIDANCE_EXACT, 37, 0, x, B, 1.0f, "exact full");
        compare(ctx, m, lo, LGD_GUIDANCE_EXACT, 16, 3, x, B, 0.05f, "exact full small sigma");
        lgd_loss_destroy(lo);
        lgd_model_destroy(m);
        lgd_context_destroy(ctx);
    }
}
END_TEST

START_TEST(exact_non_finite_loss_and_cancel_are_reported_alike)
{
    lgd_context *ctx = tu_context(2);
    double w[XK], mu[XK * XD], var[XK * XD];
    lgd_model *m = mixture_k(ctx, 3, 3, LGD_COVARIANCE_DIAGONAL, w, mu, var);
    const float far[3] = { 1e20f, 0.0f, -1e20f };
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, 3, far, 1, NULL, &l));
    float x[4 * 3] = { 1, 1, 1, -1, -1, -1, 0, 0, 0, 3, 0, 0 };
    ck_assert(has_block_sampler(m, x, 4, 1.0f));
    non_finite_and_cancel_alike(ctx, m, l, LGD_GUIDANCE_EXACT, x);
    lgd_loss_destroy(l);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* The CPU's posterior_draws kernel against the backend's ops it stands for (uniform,
 * categorical, normal) for crafted responsibilities the sweep cannot reach by chance:
 * a row whose sum is 0.75 (a uniform above it takes the last component, the rule's
 * default), rows of exact 0s and 1s, and draw ranges that start anywhere and cross the
 * kernel's blocks of 64. */
START_TEST(posterior_draws_kernel_equals_the_backend_ops)
{
    lgd_context *ctx = tu_context(1);
    const lgd_backend_ops *ops = ctx->ops;
    enum { B = 4, K = 3, D = 5, MAXN = 70 };
    float resp[B * K] = { 0.25f, 0.25f, 0.25f, 0.0f, 1.0f, 0.0f,
                          1.0f, 0.0f, 0.0f, 0.2f, 0.3f, 0.5f };
    float means[K * B * D], post_std[K * D];
    tu_rng r = { 3 };
    tu_fill_normal(&r, means, K * B * D, 2.0f);
    tu_fill_normal(&r, post_std, K * D, 0.3f);
    lgd_gmm_posterior p = { D, K, B, resp, means, post_std,
                            { 0x1234567890abcdefull, LGD_RNG_POSTERIOR, 7, 1000, 0 } };
    static const size_t firsts[] = { 0, 5, 37 }, counts[] = { 1, 8, 70 };
    float u[B * MAXN], eps[B * MAXN * D], got[MAXN * D];
    { /* row 3's first weight is the uniform of its draw 5: a tie, which is not a hit */
        lgd_rng_stream comp = p.rng;
        comp.purpose = LGD_RNG_COMPONENT;
        comp.first_draw = 5;
        ops->uniform(ctx->be, &comp, B, 1, u);
        resp[3 * K] = u[3];
        resp[3 * K + 1] = 0.5f * (1.0f - u[3]);
        resp[3 * K + 2] = 0.5f * (1.0f - u[3]);
    }
    int32_t idx[B * MAXN];
    size_t last_component = 0;
    for (size_t fi = 0; fi < 3; fi++)
        for (size_t ci = 0; ci < 3; ci++) {
            size_t first = firsts[fi], n = counts[ci];
            lgd_rng_stream comp = p.rng, normal = p.rng;
            comp.purpose = LGD_RNG_COMPONENT;
            comp.first_draw = normal.first_draw = (uint32_t)first;
            ops->uniform(ctx->be, &comp, B, n, u);
            ops->categorical(ctx->be, B, n, K, resp, u, idx);
            ops->normal(ctx->be, &normal, B, n, D, eps);
            for (size_t b = 0; b < B; b++) {
                lgd_gmm_kernels_cpu.posterior_draws(&p, b, first, n, got);
                for (size_t j = 0; j < n; j++) {
                    size_t k = (size_t)idx[b * n + j];
                    last_component += b == 0 && k == K - 1;
                    for (size_t e = 0; e < D; e++) {
                        float scaled = post_std[k * D + e] * eps[(b * n + j) * D + e];
                        float want = means[(k * B + b) * D + e] + scaled;
                        ck_assert_msg(memcmp(&want, &got[j * D + e], sizeof want) == 0,
                                      "row %zu draw %zu + %zu elem %zu: %.9g, want %.9g", b,
                                      first, j, e, (double)got[j * D + e], (double)want);
                    }
                }
            }
        }
    ck_assert(last_component > 0); /* the default was taken */
    lgd_context_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mc_fused");
    TCase *tc = tcase_create("mc_fused");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, logistic_fused_equals_unfused);
    tcase_add_test(tc, squared_error_fused_equals_unfused);
    tcase_add_test(tc, trajectory_losses_fused_equal_unfused);
    tcase_add_test(tc, non_finite_loss_and_cancel_are_reported_alike);
    tcase_add_test(tc, only_built_in_cpu_losses_have_a_block_evaluator);
    tcase_add_test(tc, posterior_draws_kernel_equals_the_backend_ops);
    tcase_add_test(tc, exact_fused_equals_unfused);
    tcase_add_test(tc, exact_full_covariance_stays_unfused);
    tcase_add_test(tc, exact_non_finite_loss_and_cancel_are_reported_alike);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
