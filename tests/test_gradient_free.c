/*
 * test_gradient_free.c - the 'gradient_free' part of the 'unit' suite:
 * LGD_GUIDANCE_MC_GRADIENT_FREE (g = J^T sum_i w_i eps_i / r, loss values only) against
 * a float64 quadrature of grad_xhat log E[exp(-l(xhat + r eps))] mapped through the
 * model's VJP, beside gradient LGD-MC (the same limit); the loss is called without a
 * gradient; a hard 0/1 indicator (no gradient at all) is pushed against; a zero radius
 * is refused; thread counts give the same bits.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static lgd_model *mixture(lgd_context *ctx)
{
    const float w[2] = { 0.5f, 0.5f }, mu[2] = { -1.0f, 1.0f }, var[2] = { 0.04f, 0.04f };
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, 1, 2, w, mu, var, LGD_COVARIANCE_DIAGONAL, &m));
    return m;
}

static lgd_guidance *make(lgd_context *ctx, lgd_model *m, lgd_loss *l, lgd_guidance_kind kind,
                          int32_t n)
{
    lgd_guidance_options o = LGD_GUIDANCE_OPTIONS_INIT;
    o.kind = kind;
    o.n_samples = n;
    o.chunk_size = 4096;
    o.seed = 99;
    lgd_guidance *g = NULL;
    TU_OK(ctx, lgd_guidance_create(ctx, m, l, &o, &g));
    return g;
}

/* g for x[batch] (dim 1) at sigma */
static float *term(lgd_context *ctx, lgd_guidance *g, const float *x, int64_t batch,
                   float sigma)
{
    lgd_tensor *xt = tu_tensor(ctx, batch, 1, x), *gt = tu_tensor(ctx, batch, 1, NULL);
    TU_OK(ctx, lgd_guidance_term(g, xt, sigma, 0, 0, gt, NULL, NULL));
    float *out = tu_download(gt);
    lgd_tensor_destroy(xt);
    lgd_tensor_destroy(gt);
    return out;
}

/* logistic loss l(x) = softplus(-(a x + b)) in double */
static double logistic(double x, double a, double b)
{
    double z = -(a * x + b);
    return fmax(z, 0.0) + log1p(exp(-fabs(z)));
}

START_TEST(gradient_free_matches_the_smoothed_gradient)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *m = mixture(ctx);
    const float a = -2.0f, b = 0.5f;
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_logistic(ctx, 1, &a, b, &l));
    enum { B = 5, N = 1 << 16 };
    const float x[B] = { -1.5f, -0.4f, 0.0f, 0.7f, 2.0f };
    const float sigmas[2] = { 0.5f, 2.0f };
    lgd_guidance *gf = make(ctx, m, l, LGD_GUIDANCE_MC_GRADIENT_FREE, N);
    lgd_guidance *mc = make(ctx, m, l, LGD_GUIDANCE_MC, N);
    for (int s = 0; s < 2; s++) {
        float sigma = sigmas[s], r = lgd_guidance_radius(gf, sigma);
        /* xhat = D(x); v_ref = -d/dxhat log int exp(-l(xhat + r e)) phi(e) de by the
         * trapezoid rule on [-12, 12] in double; g_ref = -J^T v_ref */
        lgd_tensor *xt = tu_tensor(ctx, B, 1, x), *xh = tu_tensor(ctx, B, 1, NULL);
        TU_OK(ctx, lgd_model_denoise(m, xt, sigma, NULL, xh));
        float *xhat = tu_download(xh), vref[B];
        for (int i = 0; i < B; i++) {
            double z0 = 0.0, z1 = 0.0, h = 24.0 / 200000;
            for (int k = 0; k <= 200000; k++) {
                double e = -12.0 + k * h, wk = (k == 0 || k == 200000) ? 0.5 : 1.0;
                double f = wk * exp(-0.5 * e * e - logistic(xhat[i] + r * e, a, b));
                z0 += f;
                z1 += f * e;
            }
            vref[i] = (float)(-(z1 / z0) / r);
        }
        lgd_tensor *vt = tu_tensor(ctx, B, 1, vref), *jt = tu_tensor(ctx, B, 1, NULL);
        TU_OK(ctx, lgd_model_vjp(m, xt, sigma, NULL, vt, jt));
        float *jv = tu_download(jt);
        float *ggf = term(ctx, gf, x, B, sigma), *gmc = term(ctx, mc, x, B, sigma);
        for (int i = 0; i < B; i++) {
            double ref = -(double)jv[i], tol = 0.03 * fabs(ref) + 1e-3;
            ck_assert_msg(fabs(ggf[i] - ref) <= tol, "sigma %g x %g: gradient-free %g, ref %g",
                          (double)sigma, (double)x[i], (double)ggf[i], ref);
            ck_assert_msg(fabs(gmc[i] - ref) <= 0.01 * fabs(ref) + 1e-3,
                          "sigma %g x %g: LGD-MC %g, ref %g", (double)sigma, (double)x[i],
                          (double)gmc[i], ref);
        }
        free(xhat);
        free(jv);
        free(ggf);
        free(gmc);
        lgd_tensor_destroy(xt);
        lgd_tensor_destroy(xh);
        lgd_tensor_destroy(vt);
        lgd_tensor_destroy(jt);
    }
    lgd_guidance_destroy(gf);
    lgd_guidance_destroy(mc);
    lgd_loss_destroy(l);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* l(x) = 5 [x > 0]: no gradient anywhere; counts the calls that were given a gradient */
typedef struct indicator {
    int grad_calls, calls;
} indicator;

static int32_t indicator_eval(void *user, const float *x, int64_t batch, int64_t n, int64_t dim,
                              float *loss, float *grad)
{
    indicator *ind = user;
    ind->calls++;
    if (grad)
        ind->grad_calls++;
    for (int64_t i = 0; i < batch * n; i++)
        loss[i] = x[i * dim] > 0.0f ? 5.0f : 0.0f;
    return 0;
}

START_TEST(a_hard_indicator_is_avoided)
{
    for (int threads = 1; threads <= 2; threads++) {
        lgd_context *ctx = tu_context(threads);
        lgd_model *m = mixture(ctx);
        indicator ind = { 0, 0 };
        lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
        cb.dim = 1;
        cb.eval = indicator_eval;
        cb.user = &ind;
        lgd_loss *l = NULL;
        TU_OK(ctx, lgd_loss_create_callbacks(ctx, &cb, &l));
        lgd_guidance *g = make(ctx, m, l, LGD_GUIDANCE_MC_GRADIENT_FREE, 512);
        const float x[3] = { -0.05f, 0.0f, 0.05f };
        float *gv = term(ctx, g, x, 3, 0.3f);
        for (int i = 0; i < 3; i++) /* D is increasing in x: J > 0, pushed to x < 0 */
            ck_assert_msg(gv[i] < 0.0f, "x %g: g = %g", (double)x[i], (double)gv[i]);
        ck_assert_int_gt(ind.calls, 0);
        ck_assert_int_eq(ind.grad_calls, 0);
        /* DPS with the same loss sees a zero gradient: no push at all */
        static float store[2][3];
        memcpy(store[threads - 1], gv, sizeof store[0]);
        if (threads == 2)
            ck_assert(memcmp(store[0], store[1], sizeof store[0]) == 0);
        free(gv);
        lgd_guidance_destroy(g);
        lgd_loss_destroy(l);
        lgd_model_destroy(m);
        lgd_context_destroy(ctx);
    }
}
END_TEST

static float zero_radius(void *user, float sigma)
{
    (void)user;
    (void)sigma;
    return 0.0f;
}

START_TEST(a_zero_radius_and_unknown_kinds_are_refused)
{
    lgd_context *ctx = tu_context(1);
    lgd_model *m = mixture(ctx);
    const float a = 1.0f;
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_logistic(ctx, 1, &a, 0.0f, &l));
    lgd_guidance_options o = LGD_GUIDANCE_OPTIONS_INIT;
    o.kind = LGD_GUIDANCE_MC_GRADIENT_FREE;
    o.radius = zero_radius;
    lgd_guidance *g = NULL;
    TU_OK(ctx, lgd_guidance_create(ctx, m, l, &o, &g));
    lgd_tensor *xt = tu_tensor(ctx, 2, 1, NULL), *gt = tu_tensor(ctx, 2, 1, NULL);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_term(g, xt, 1.0f, 0, 0, gt, NULL, NULL));
    ck_assert_ptr_nonnull(strstr(lgd_context_last_error(ctx), "r > 0"));
    lgd_guidance_destroy(g);
    o.radius = NULL;
    o.kind = (lgd_guidance_kind)5;
    g = (lgd_guidance *)(uintptr_t)1;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, l, &o, &g));
    ck_assert_ptr_null(g);
    o.kind = LGD_GUIDANCE_MC_GRADIENT_FREE;
    o.n_samples = 0;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, l, &o, &g));
    lgd_tensor_destroy(xt);
    lgd_tensor_destroy(gt);
    lgd_loss_destroy(l);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gradient_free");
    TCase *tc = tcase_create("gradient_free");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, gradient_free_matches_the_smoothed_gradient);
    tcase_add_test(tc, a_hard_indicator_is_avoided);
    tcase_add_test(tc, a_zero_radius_and_unknown_kinds_are_refused);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
