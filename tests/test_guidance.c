/*
 * test_guidance.c - the guidance estimators (DPS, LGD-MC, exact) against exact
 * answers, and the guided denoiser around them.
 *
 *  - LGD-MC on a N(0, 1) prior, where r(sigma) = sigma / sqrt(1 + sigma^2) is the
 *    exact posterior std, so LGD-MC is self-normalised importance sampling of
 *    the true g = d/dx log INT exp(-l(x0)) N(x0; x / (1 + s^2), r^2) dx0; the
 *    truth comes from 1-D quadrature in double (and a closed form for the
 *    squared error). The RMS error over independent batch rows falls like
 *    1/sqrt(n).
 *  - The exact estimator on the paper's mixture 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2)
 *    with the logistic loss exp(-l(x0)) = p(y = 0 | x0): the truth is
 *    g = d/dx log r_0(x) = -2 r_1(x) / (0.04 + s^2) (also checked by quadrature);
 *    DPS is far too large at sigma = 80 and LGD-MC much closer (the paper's Fig. 4).
 *  - DPS = MC(n = 1, r = 0) bitwise, = -J^T grad l(xhat) built by hand; LGD-MC
 *    rebuilt by hand from the draws a callback loss saw.
 *  - Chunking (and a loss on the draw index, eval_draws), memory independent of n, step rules, the sigma window, reports,
 *    determinism and batch splits, conditioning, bad input and recovery.
 *
 * LGD_TEST_QUICK=1 shrinks the statistical tests (for valgrind runs);
 * LGD_TEST_VERBOSE=1 prints the measured figures to stderr.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ------------------------------------------------------------------ helpers */

static int quick(void)
{
    const char *q = getenv("LGD_TEST_QUICK");
    return q && q[0] && strcmp(q, "0") != 0;
}

static int verbose(void)
{
    const char *v = getenv("LGD_TEST_VERBOSE");
    return v && v[0] && strcmp(v, "0") != 0;
}

static void assert_msg_contains(lgd_context *ctx, const char *needle)
{
    const char *msg = lgd_context_last_error(ctx);
    ck_assert_msg(strstr(msg, needle) != NULL, "error message \"%s\" lacks \"%s\"", msg, needle);
}

static lgd_model *gmm_model(lgd_context *ctx, int64_t dim, int64_t K, const float *w,
                            const float *mu, const float *cov, lgd_covariance layout)
{
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, dim, K, w, mu, cov, layout, &m));
    return m;
}

/* 1-D N(0, 1) prior. */
static lgd_model *std_normal_model(lgd_context *ctx)
{
    float w = 1.0f, mu = 0.0f, var = 1.0f;
    return gmm_model(ctx, 1, 1, &w, &mu, &var, LGD_COVARIANCE_ISOTROPIC);
}

/* The paper's 1-D mixture 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2). */
static lgd_model *paper_mixture(lgd_context *ctx)
{
    float w[2] = { 0.5f, 0.5f }, mu[2] = { -1.0f, 1.0f }, var[2] = { 0.04f, 0.04f };
    return gmm_model(ctx, 1, 2, w, mu, var, LGD_COVARIANCE_ISOTROPIC);
}

/* A 3-D, 3-component mixture with full covariances (a non-trivial Jacobian). */
static lgd_model *mixture3d(lgd_context *ctx)
{
    float w[3] = { 0.3f, 0.5f, 0.2f };
    float mu[9] = { -1.0f, 0.5f, 0.0f, 1.0f, -0.5f, 0.8f, 0.2f, 1.5f, -1.0f };
    float cov[27] = {
        0.5f, 0.1f, 0.0f, 0.1f, 0.3f, 0.05f, 0.0f, 0.05f, 0.4f,
        0.2f, -0.05f, 0.02f, -0.05f, 0.6f, 0.1f, 0.02f, 0.1f, 0.3f,
        1.0f, 0.2f, 0.1f, 0.2f, 0.5f, 0.0f, 0.1f, 0.0f, 0.25f,
    };
    return gmm_model(ctx, 3, 3, w, mu, cov, LGD_COVARIANCE_FULL);
}

/* A 2-D, 2-component diagonal mixture. */
static lgd_model *mixture2d(lgd_context *ctx)
{
    float w[2] = { 0.4f, 0.6f }, mu[4] = { -1.0f, 0.5f, 1.0f, -0.5f };
    float var[4] = { 0.3f, 0.1f, 0.2f, 0.4f };
    return gmm_model(ctx, 2, 2, w, mu, var, LGD_COVARIANCE_DIAGONAL);
}

static lgd_loss *logistic_loss(lgd_context *ctx, int64_t dim, const float *a, float b)
{
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_logistic(ctx, dim, a, b, &l));
    return l;
}

static lgd_loss *sqerr_loss(lgd_context *ctx, int64_t dim, const float *target,
                            const float *weights)
{
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, dim, target, 1, weights, &l));
    return l;
}

static lgd_guidance_options guid_options(lgd_guidance_kind kind, int32_t n, int32_t chunk,
                                         uint64_t seed)
{
    lgd_guidance_options o = LGD_GUIDANCE_OPTIONS_INIT;
    o.kind = kind;
    o.n_samples = n;
    o.chunk_size = chunk;
    o.seed = seed;
    return o;
}

static lgd_guidance *make_guidance(lgd_context *ctx, lgd_model *m, lgd_loss *l,
                                   const lgd_guidance_options *o)
{
    lgd_guidance *g = NULL;
    TU_OK(ctx, lgd_guidance_create(ctx, m, l, o, &g));
    ck_assert_ptr_nonnull(g);
    return g;
}

static lgd_guidance *simple_guidance(lgd_context *ctx, lgd_model *m, lgd_loss *l,
                                     lgd_guidance_kind kind, int32_t n, int32_t chunk,
                                     uint64_t seed)
{
    lgd_guidance_options o = guid_options(kind, n, chunk, seed);
    return make_guidance(ctx, m, l, &o);
}

/* Runs lgd_guidance_term on host x[B][D]; returns g (malloc'd); xhat optional. */
static float *term_host(lgd_context *ctx, lgd_guidance *g, const float *x, int64_t B,
                        int64_t D, float sigma, int32_t step, uint64_t first_row, float *xhat,
                        lgd_guidance_report *rep)
{
    lgd_tensor *tx = tu_tensor(ctx, B, D, x);
    lgd_tensor *tg = tu_tensor(ctx, B, D, NULL);
    lgd_tensor *th = tu_tensor(ctx, B, D, NULL);
    TU_OK(ctx, lgd_guidance_term(g, tx, sigma, step, first_row, tg, th, rep));
    float *out = tu_download(tg);
    if (xhat)
        TU_OK(ctx, lgd_tensor_download(th, xhat, (size_t)(B * D)));
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tg);
    lgd_tensor_destroy(th);
    return out;
}

/* Runs lgd_guidance_denoise on host x[B][D]; returns the output (malloc'd). */
static float *denoise_host(lgd_context *ctx, lgd_guidance *g, const float *x, int64_t B,
                           int64_t D, float sigma, int32_t step, uint64_t first_row,
                           lgd_guidance_report *rep)
{
    lgd_tensor *tx = tu_tensor(ctx, B, D, x);
    lgd_tensor *to = tu_tensor(ctx, B, D, NULL);
    TU_OK(ctx, lgd_guidance_denoise(g, tx, sigma, step, first_row, to, rep));
    float *out = tu_download(to);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(to);
    return out;
}

/* D(x, sigma) by the model itself. */
static float *model_denoise_host(lgd_context *ctx, lgd_model *m, const float *x, int64_t B,
                                 int64_t D, float sigma)
{
    lgd_tensor *tx = tu_tensor(ctx, B, D, x);
    lgd_tensor *to = tu_tensor(ctx, B, D, NULL);
    TU_OK(ctx, lgd_model_denoise(m, tx, sigma, NULL, to));
    float *out = tu_download(to);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(to);
    return out;
}

/* ----------------------------------------------- 1-D truths (double precision) */

typedef struct loss1d {
    int logistic; /* 1: softplus(-(a x + b)); 0: w (x - y)^2 */
    double a, b, w, y;
} loss1d;

static double softplus(double t) { return t > 0 ? t + log1p(exp(-t)) : log1p(exp(t)); }
static double sigmoid(double t) { return t >= 0 ? 1.0 / (1.0 + exp(-t)) : exp(t) / (1.0 + exp(t)); }

static double loss1d_value(const loss1d *L, double x0)
{
    if (L->logistic)
        return softplus(-(L->a * x0 + L->b));
    return L->w * (x0 - L->y) * (x0 - L->y);
}

/*
 * N(0, 1) prior, noise s: p(x0 | x) = N(mu, r^2), mu = x / (1 + s^2), r^2 = s^2 / (1 + s^2).
 * log Z(x) = log INT exp(-l(x0)) N(x0; mu, r^2) dx0 by the trapezoid rule over mu +- 12 r
 * (the integrand is smooth and Gaussian-tailed, so this is accurate to ~1e-12);
 * *dlogz = d log Z / dx analytically under the integral: (1 / (1 + s^2)) E~[(x0 - mu) / r^2].
 */
static double gauss_quad(const loss1d *L, double x, double s, double *dlogz)
{
    const int N = 24001;
    double J = 1.0 / (1.0 + s * s), mu = x * J, r = s * sqrt(J);
    double h = 24.0 * r / (N - 1), mx = -INFINITY;
    for (int i = 0; i < N; i++) {
        double x0 = mu - 12.0 * r + h * i, z = (x0 - mu) / r;
        double lw = -loss1d_value(L, x0) - 0.5 * z * z;
        mx = lw > mx ? lw : mx;
    }
    double Z = 0.0, Z1 = 0.0;
    for (int i = 0; i < N; i++) {
        double x0 = mu - 12.0 * r + h * i, z = (x0 - mu) / r;
        double e = exp(-loss1d_value(L, x0) - 0.5 * z * z - mx) * ((i == 0 || i == N - 1) ? 0.5 : 1.0);
        Z += e;
        Z1 += e * (x0 - mu) / (r * r);
    }
    if (dlogz)
        *dlogz = J * Z1 / Z;
    return log(Z * h / (2.5066282746310002 * r)) + mx;
}

static double loss1d_grad(const loss1d *L, double x0)
{
    if (L->logistic)
        return -L->a * sigmoid(-(L->a * x0 + L->b));
    return 2.0 * L->w * (x0 - L->y);
}

/*
 * The asymptotic standard error of LGD-MC (self-normalised importance sampling with
 * proposal q = N(mu, r^2), weights w = exp(-l), integrand f = -J l') for one draw:
 * sqrt(E_q[w^2 (f - g)^2]) / E_q[w]; divide by sqrt(n) for n draws.
 */
static double gauss_snis_sd(const loss1d *L, double x, double s, double g)
{
    const int N = 24001;
    double J = 1.0 / (1.0 + s * s), mu = x * J, r = s * sqrt(J);
    double h = 24.0 * r / (N - 1), mx = -INFINITY;
    for (int i = 0; i < N; i++)
        mx = fmax(mx, -loss1d_value(L, mu - 12.0 * r + h * i));
    double Ew = 0.0, Ew2f = 0.0, norm = 0.0;
    for (int i = 0; i < N; i++) {
        double x0 = mu - 12.0 * r + h * i, z = (x0 - mu) / r;
        double q = exp(-0.5 * z * z), w = exp(-loss1d_value(L, x0) - mx);
        double f = -J * loss1d_grad(L, x0);
        norm += q;
        Ew += q * w;
        Ew2f += q * w * w * (f - g) * (f - g);
    }
    return sqrt(Ew2f / norm) / (Ew / norm);
}

/* The truth for the Gaussian prior, cross-checked three ways. */
static double gauss_truth(const loss1d *L, double x, double s)
{
    double g;
    gauss_quad(L, x, s, &g);
    /* central difference of the quadrature (double) */
    double hx = 1e-4 * (1.0 + s * s);
    double fd = (gauss_quad(L, x + hx, s, NULL) - gauss_quad(L, x - hx, s, NULL)) / (2.0 * hx);
    double J = 1.0 / (1.0 + s * s);
    ck_assert_msg(fabs(fd - g) <= 1e-6 * J + 1e-6 * fabs(g),
                  "quadrature derivative %.12g vs central difference %.12g (s = %g, x = %g)", g,
                  fd, s, x);
    if (!L->logistic) {
        /* exp(-w (x0 - y)^2) N(x0; mu, r^2) integrates to N(mu; y, r^2 + 1 / (2 w)) */
        double r2 = s * s * J, mu = x * J;
        double exact = -J * (mu - L->y) / (r2 + 0.5 / L->w);
        ck_assert_msg(fabs(exact - g) <= 1e-9 * (fabs(exact) + J),
                      "quadrature %.12g vs closed form %.12g (s = %g, x = %g)", g, exact, s, x);
    }
    return g;
}

/* The paper's mixture: p_s(y = 0 | x) = r_0(x), g = d/dx log r_0 = -2 r_1 / (0.04 + s^2). */
static double mixture_truth(double x, double s)
{
    double v = 0.04 + s * s;
    return -2.0 * sigmoid(2.0 * x / v) / v;
}

/* Quadrature of the same: g = (E[x0 | x, y = 0] - E[x0 | x]) / s^2 with the likelihood
 * p(y = 0 | x0) = sigmoid(-50 x0), over x0 in [-4, 4]. */
static double mixture_quad(double x, double s)
{
    const int N = 80001;
    double h = 8.0 / (N - 1), mx = -INFINITY;
    for (int i = 0; i < N; i++) {
        double x0 = -4.0 + h * i, d = (x - x0) / s;
        double lp = log(0.5 * exp(-0.5 * (x0 + 1) * (x0 + 1) / 0.04) +
                        0.5 * exp(-0.5 * (x0 - 1) * (x0 - 1) / 0.04) + 1e-300) -
                    0.5 * d * d;
        mx = lp > mx ? lp : mx;
    }
    double P = 0.0, P1 = 0.0, Q = 0.0, Q1 = 0.0;
    for (int i = 0; i < N; i++) {
        double x0 = -4.0 + h * i, d = (x - x0) / s;
        double lp = log(0.5 * exp(-0.5 * (x0 + 1) * (x0 + 1) / 0.04) +
                        0.5 * exp(-0.5 * (x0 - 1) * (x0 - 1) / 0.04) + 1e-300) -
                    0.5 * d * d;
        double p = exp(lp - mx), q = p * sigmoid(-50.0 * x0);
        P += p;
        P1 += p * x0;
        Q += q;
        Q1 += q * x0;
    }
    return (Q1 / Q - P1 / P) / (s * s);
}

/* ------------------------------------- 1. LGD-MC on a Gaussian prior converges */

static const float GAUSS_SIGMAS[4] = { 0.1f, 1.0f, 10.0f, 80.0f };

/* Posterior means mu = x / (1 + s^2) at which x is placed. */
static const double GAUSS_MUS[3] = { -1.0, -0.3, 1.0 };

static void gauss_convergence(const loss1d *L, int si, const char *name)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *m = std_normal_model(ctx);
    lgd_loss *loss = L->logistic ? logistic_loss(ctx, 1, &(float){ (float)L->a }, (float)L->b)
                                 : sqerr_loss(ctx, 1, &(float){ (float)L->y },
                                              &(float){ (float)L->w });
    const float sigma = GAUSS_SIGMAS[si];
    const double s = sigma, J = 1.0 / (1.0 + s * s);
    const int G = 3, R = quick() ? 24 : 96;
    const int64_t B = (int64_t)G * R;
    float *x = malloc((size_t)B * sizeof *x);
    double truth[3];
    ck_assert_ptr_nonnull(x);
    for (int k = 0; k < G; k++) {
        float xk = (float)(GAUSS_MUS[k] * (1.0 + s * s));
        truth[k] = gauss_truth(L, (double)xk, s);
        for (int b = 0; b < R; b++)
            x[k * R + b] = xk;
    }
    /* the radius is the exact posterior std */
    lgd_guidance *probe = simple_guidance(ctx, m, loss, LGD_GUIDANCE_MC, 10, 0, 0);
    double r_want = s / sqrt(1.0 + s * s);
    ck_assert_msg(fabs(lgd_guidance_radius(probe, sigma) - r_want) <= 1e-6 * r_want,
                  "radius %.9g, want %.9g", (double)lgd_guidance_radius(probe, sigma), r_want);
    lgd_guidance_destroy(probe);

    const int32_t ns[4] = { 10, 100, 1000, 10000 };
    const int nn = quick() ? 3 : 4;
    double err[4][3];
    for (int t = 0; t < nn; t++) {
        lgd_guidance *gd = simple_guidance(ctx, m, loss, LGD_GUIDANCE_MC, ns[t], 0, 1234);
        float *g = term_host(ctx, gd, x, B, 1, sigma, 7, 0, NULL, NULL);
        for (int k = 0; k < G; k++) {
            double acc = 0.0;
            for (int b = 0; b < R; b++) {
                double e = (double)g[k * R + b] - truth[k];
                acc += e * e;
            }
            err[t][k] = sqrt(acc / R);
        }
        free(g);
        lgd_guidance_destroy(gd);
    }
    for (int k = 0; k < G; k++) {
        double xk = GAUSS_MUS[k] * (1 + s * s);
        /* the stated tolerance is relative to |truth| + 0.1 J (J = dxhat/dx: loss gradients
         * of order 1 give terms of order J) */
        double scale = fabs(truth[k]) + 0.1 * J;
        /* the asymptotic standard error of n draws, from quadrature; float rounding floor */
        double sd1 = gauss_snis_sd(L, (double)(float)xk, s, truth[k]), fl = 1e-6 * scale;
        if (verbose())
            fprintf(stderr,
                    "gauss %-8s sigma %5g x %10.4g truth %12.5g | rms err / (|truth| + 0.1 J): "
                    "n=10 %.4f n=100 %.4f n=1000 %.4f n=10000 %.4f | rms err / SE(n): n=1000 "
                    "%.3f n=10000 %.3f\n",
                    name, (double)sigma, xk, truth[k], err[0][k] / scale, err[1][k] / scale,
                    err[2][k] / scale, nn > 3 ? err[3][k] / scale : NAN,
                    err[2][k] / (sd1 / sqrt(1000.0)),
                    nn > 3 ? err[3][k] / (sd1 / sqrt(10000.0)) : NAN);
        ck_assert_msg(err[2][k] < 0.25 * err[0][k],
                      "%s, sigma %g, x = %g: RMS error %.4g at n = 1000 is not < 0.25 x %.4g "
                      "at n = 10 (truth %.6g)",
                      name, (double)sigma, xk, err[2][k], err[0][k], truth[k]);
        ck_assert_msg(err[1][k] < 0.6 * err[0][k] && err[2][k] < 0.6 * err[1][k],
                      "%s, sigma %g, x = %g: RMS error does not fall with n: %.4g %.4g %.4g",
                      name, (double)sigma, xk, err[0][k], err[1][k], err[2][k]);
        ck_assert_msg(err[2][k] <= 0.12 * scale,
                      "%s, sigma %g, x = %g: RMS error %.4g at n = 1000 exceeds 0.12 (|truth| "
                      "+ 0.1 J) = %.4g (truth %.6g)",
                      name, (double)sigma, xk, err[2][k], 0.12 * scale, truth[k]);
        /* the RMS over R rows estimates the standard error to ~1/sqrt(2R) */
        const double se_factor = quick() ? 1.7 : 1.5;
        for (int t = 2; t < nn; t++) {
            double se = sd1 / sqrt((double)ns[t]);
            ck_assert_msg(err[t][k] <= se_factor * se + fl,
                          "%s, sigma %g, x = %g: RMS error %.4g at n = %d exceeds %.1f x the "
                          "asymptotic standard error %.4g (truth %.6g)",
                          name, (double)sigma, xk, err[t][k], ns[t], se_factor, se, truth[k]);
        }
        if (nn > 3)
            ck_assert_msg(err[3][k] <= 0.04 * scale,
                          "%s, sigma %g, x = %g: RMS error %.4g at n = 10000 exceeds 0.04 "
                          "(|truth| + 0.1 J) = %.4g (truth %.6g)",
                          name, (double)sigma, xk, err[3][k], 0.04 * scale, truth[k]);
    }
    free(x);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}

START_TEST(mc_gaussian_logistic_converges)
{
    loss1d L = { 1, 3.0, 1.0, 0.0, 0.0 };
    gauss_convergence(&L, _i, "logistic");
}
END_TEST

START_TEST(mc_gaussian_sqerr_converges)
{
    loss1d L = { 0, 0.0, 0.0, 0.5, 0.7 };
    gauss_convergence(&L, _i, "sqerr");
}
END_TEST

/* ------------------------------------------- 2. the paper's mixture example */

START_TEST(mixture_truth_matches_quadrature)
{
    const double sig[4] = { 0.1, 1.0, 10.0, 80.0 };
    const double xs[5] = { -1.5, -0.5, 0.0, 0.5, 1.5 };
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++) {
            double x = xs[j] * (1.0 + sig[i]), v = 0.04 + sig[i] * sig[i];
            double c = mixture_truth(x, sig[i]), q = mixture_quad(x, sig[i]);
            ck_assert_msg(fabs(c - q) <= 1e-7 * (fabs(c) + 1e-3 / v),
                          "sigma %g x %g: closed form %.12g vs quadrature %.12g", sig[i], x, c, q);
        }
}
END_TEST

/* The logistic loss with a = -50, b = 0 is exactly -log p(y = 0 | x0). */
START_TEST(mixture_loss_is_the_posterior_class_probability)
{
    lgd_context *ctx = tu_context(1);
    lgd_loss *loss = logistic_loss(ctx, 1, &(float){ -50.0f }, 0.0f);
    float x0[5] = { -1.0f, -0.1f, 0.0f, 0.03f, 1.0f }, l[5];
    lgd_tensor *tx = tu_tensor(ctx, 5, 1, x0), *tl = tu_tensor(ctx, 5, 1, NULL);
    TU_OK(ctx, lgd_loss_eval(loss, tx, tl, NULL));
    TU_OK(ctx, lgd_tensor_download(tl, l, 5));
    for (int i = 0; i < 5; i++) {
        double n0 = exp(-0.5 * (x0[i] + 1.0) * (x0[i] + 1.0) / 0.04);
        double n1 = exp(-0.5 * (x0[i] - 1.0) * (x0[i] - 1.0) / 0.04);
        double want = -log(n0 / (n0 + n1));
        ck_assert_msg(fabs(l[i] - want) <= 1e-5 * (1.0 + want), "x0 %g: loss %g, want %g",
                      (double)x0[i], (double)l[i], want);
    }
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tl);
    lgd_loss_destroy(loss);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(exact_estimator_converges_on_mixture)
{
    const float sigma = _i == 0 ? 1.0f : 80.0f;
    const double s = sigma, v = 0.04 + s * s;
    lgd_context *ctx = tu_context(0);
    lgd_model *m = paper_mixture(ctx);
    lgd_loss *loss = logistic_loss(ctx, 1, &(float){ -50.0f }, 0.0f);
    const float xs1[3] = { -1.0f, 0.0f, 1.0f }, xs80[3] = { -80.0f, 0.0f, 80.0f };
    const float *xs = _i == 0 ? xs1 : xs80;
    const int G = 3, R = quick() ? 24 : 96;
    const int64_t B = (int64_t)G * R;
    float *x = malloc((size_t)B * sizeof *x);
    double truth[3];
    ck_assert_ptr_nonnull(x);
    for (int k = 0; k < G; k++) {
        truth[k] = mixture_truth(xs[k], s);
        for (int b = 0; b < R; b++)
            x[k * R + b] = xs[k];
    }
    const int32_t ns[3] = { 10, 100, 1000 };
    double err[3][3];
    for (int t = 0; t < 3; t++) {
        lgd_guidance *gd = simple_guidance(ctx, m, loss, LGD_GUIDANCE_EXACT, ns[t], 0, 99);
        lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
        float *g = term_host(ctx, gd, x, B, 1, sigma, 3, 0, NULL, &rep);
        ck_assert_msg(rep.mean_ess >= 1.0f - 1e-4f && rep.mean_ess <= ns[t] * (1.0f + 1e-4f),
                      "exact: mean ess %g outside [1, %d]", (double)rep.mean_ess, ns[t]);
        for (int k = 0; k < G; k++) {
            double acc = 0.0;
            for (int b = 0; b < R; b++) {
                double e = (double)g[k * R + b] - truth[k];
                acc += e * e;
            }
            err[t][k] = sqrt(acc / R);
        }
        free(g);
        lgd_guidance_destroy(gd);
    }
    for (int k = 0; k < G; k++) {
        double scale = fabs(truth[k]) + 0.02 / v;
        if (verbose())
            fprintf(stderr,
                    "exact mixture sigma %g x %g truth %.6g | rms err/(|truth|+0.02/v): n=10 %.4f "
                    "n=100 %.4f n=1000 %.4f\n",
                    (double)sigma, (double)xs[k], truth[k], err[0][k] / scale, err[1][k] / scale,
                    err[2][k] / scale);
        ck_assert_msg(err[2][k] < 0.25 * err[0][k],
                      "exact, sigma %g, x = %g: RMS error %.4g at n = 1000 is not < 0.25 x %.4g "
                      "at n = 10 (truth %.6g)",
                      (double)sigma, (double)xs[k], err[2][k], err[0][k], truth[k]);
        ck_assert_msg(err[2][k] <= 0.05 * scale,
                      "exact, sigma %g, x = %g: RMS error %.4g at n = 1000 exceeds 0.05 (|truth| "
                      "+ 0.02 / v) = %.4g (truth %.6g)",
                      (double)sigma, (double)xs[k], err[2][k], 0.05 * scale, truth[k]);
    }
    free(x);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* Fig. 4 at sigma = 80: DPS is far too large; LGD-MC (n = 100) is much closer. */
START_TEST(dps_too_large_mc_closer_at_sigma_80)
{
    const float sigma = 80.0f;
    const double v = 0.04 + 6400.0;
    lgd_context *ctx = tu_context(0);
    lgd_model *m = paper_mixture(ctx);
    lgd_loss *loss = logistic_loss(ctx, 1, &(float){ -50.0f }, 0.0f);
    const float xs[5] = { -80.0f, -20.0f, 0.0f, 20.0f, 80.0f };
    const int G = 5, R = quick() ? 32 : 128;
    const int64_t B = (int64_t)G * R;
    float *x = malloc((size_t)B * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (int k = 0; k < G; k++)
        for (int b = 0; b < R; b++)
            x[k * R + b] = xs[k];
    lgd_guidance *dps = simple_guidance(ctx, m, loss, LGD_GUIDANCE_DPS, 1, 0, 0);
    lgd_guidance *mc = simple_guidance(ctx, m, loss, LGD_GUIDANCE_MC, 100, 0, 5);
    float *gd = term_host(ctx, dps, x, B, 1, sigma, 0, 0, NULL, NULL);
    float *gm = term_host(ctx, mc, x, B, 1, sigma, 0, 0, NULL, NULL);
    for (int k = 0; k < G; k++) {
        double truth = mixture_truth(xs[k], 80.0);
        double dps_g = gd[k * R], acc = 0.0, mean = 0.0;
        for (int b = 0; b < R; b++) {
            double e = (double)gm[k * R + b] - truth;
            acc += e * e;
            mean += gm[k * R + b];
        }
        double mc_rms = sqrt(acc / R);
        mean /= R;
        double dps_err = fabs(dps_g - truth);
        if (verbose())
            fprintf(stderr,
                    "fig4 sigma 80 x %5g: truth %.5g (x v: %.4f) | DPS %.5g (x v: %.4f) | MC n=100 "
                    "mean %.5g (x v: %.4f), rms err %.3g (x v: %.4f)\n",
                    (double)xs[k], truth, truth * v, dps_g, dps_g * v, mean, mean * v, mc_rms,
                    mc_rms * v);
        ck_assert_msg(fabs(dps_g) > 5.0 * fabs(truth) && dps_g * truth > 0,
                      "x = %g: DPS %.5g is not > 5x the truth %.5g (same sign)", (double)xs[k],
                      dps_g, truth);
        ck_assert_msg(mc_rms < 0.1 * dps_err,
                      "x = %g: LGD-MC(n = 100) RMS error %.4g is not < 0.1 x the DPS error %.4g "
                      "(truth %.5g, DPS %.5g, MC mean %.5g)",
                      (double)xs[k], mc_rms, dps_err, truth, dps_g, mean);
        ck_assert_msg(fabs(mean - truth) < 0.35 * fabs(truth),
                      "x = %g: LGD-MC(n = 100) mean %.5g is not within 35%% of the truth %.5g",
                      (double)xs[k], mean, truth);
    }
    free(gd);
    free(gm);
    free(x);
    lgd_guidance_destroy(dps);
    lgd_guidance_destroy(mc);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------- 3. DPS is MC(n = 1, r = 0) */

static float zero_radius(void *user, float sigma)
{
    (void)user;
    (void)sigma;
    return 0.0f;
}

static lgd_loss *loss3d(lgd_context *ctx)
{
    float a[3] = { 1.5f, -0.7f, 0.4f };
    return logistic_loss(ctx, 3, a, 0.3f);
}

START_TEST(dps_equals_mc_with_one_draw_and_zero_radius)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *m = mixture3d(ctx);
    lgd_loss *loss = loss3d(ctx);
    const int64_t B = 6, D = 3;
    float x[18];
    tu_rng rng = { 11 };
    tu_fill_normal(&rng, x, 18, 1.5f);
    const float sigmas[3] = { 0.05f, 0.8f, 20.0f };
    lgd_guidance *dps = simple_guidance(ctx, m, loss, LGD_GUIDANCE_DPS, 1, 0, 3);
    lgd_guidance_options o = guid_options(LGD_GUIDANCE_MC, 1, 0, 3);
    o.radius = zero_radius;
    lgd_guidance *mc = make_guidance(ctx, m, loss, &o);
    ck_assert_float_eq(lgd_guidance_radius(mc, 1.0f), 0.0f);
    for (int si = 0; si < 3; si++) {
        float h1[18], h2[18];
        lgd_guidance_report r1 = LGD_GUIDANCE_REPORT_INIT, r2 = LGD_GUIDANCE_REPORT_INIT;
        float *g1 = term_host(ctx, dps, x, B, D, sigmas[si], 4, 0, h1, &r1);
        float *g2 = term_host(ctx, mc, x, B, D, sigmas[si], 4, 0, h2, &r2);
        ck_assert_msg(memcmp(g1, g2, sizeof h1) == 0, "sigma %g: DPS and MC(1, r=0) terms differ",
                      (double)sigmas[si]);
        ck_assert_msg(memcmp(h1, h2, sizeof h1) == 0, "sigma %g: xhat differs", (double)sigmas[si]);
        ck_assert(memcmp(&r1, &r2, sizeof r1) == 0);
        float *o1 = denoise_host(ctx, dps, x, B, D, sigmas[si], 4, 0, NULL);
        float *o2 = denoise_host(ctx, mc, x, B, D, sigmas[si], 4, 0, NULL);
        ck_assert_msg(memcmp(o1, o2, sizeof h1) == 0, "sigma %g: guided denoisers differ",
                      (double)sigmas[si]);
        free(g1);
        free(g2);
        free(o1);
        free(o2);
    }
    lgd_guidance_destroy(dps);
    lgd_guidance_destroy(mc);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* With r = 0 every draw is xhat: any n gives the DPS term (up to rounding), ess = n. */
START_TEST(mc_zero_radius_many_draws_is_dps)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *m = mixture3d(ctx);
    lgd_loss *loss = loss3d(ctx);
    float x[12];
    tu_rng rng = { 12 };
    tu_fill_normal(&rng, x, 12, 1.0f);
    lgd_guidance *dps = simple_guidance(ctx, m, loss, LGD_GUIDANCE_DPS, 1, 0, 3);
    lgd_guidance_options o = guid_options(LGD_GUIDANCE_MC, 37, 5, 3);
    o.radius = zero_radius;
    lgd_guidance *mc = make_guidance(ctx, m, loss, &o);
    lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
    float *g1 = term_host(ctx, dps, x, 4, 3, 0.7f, 0, 0, NULL, NULL);
    float *g2 = term_host(ctx, mc, x, 4, 3, 0.7f, 0, 0, NULL, &rep);
    ck_assert_msg(tu_max_scaled_err(g2, g1, 12, 1e-7, 1e-5) <= 1.0,
                  "MC(37, r = 0) differs from DPS");
    ck_assert_msg(fabs(rep.mean_ess - 37.0) <= 37e-5 && fabs(rep.min_ess - 37.0) <= 37e-5,
                  "ess %g / %g, want 37", (double)rep.mean_ess, (double)rep.min_ess);
    free(g1);
    free(g2);
    lgd_guidance_destroy(dps);
    lgd_guidance_destroy(mc);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* DPS = -J^T grad l(xhat) with the public model and loss calls. */
START_TEST(dps_equals_manual_vjp)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *m = mixture3d(ctx);
    lgd_loss *losses[2] = { loss3d(ctx), NULL };
    float target[3] = { 0.5f, -1.0f, 0.2f }, wts[3] = { 1.0f, 0.5f, 2.0f };
    losses[1] = sqerr_loss(ctx, 3, target, wts);
    const int64_t B = 5, D = 3;
    float x[15];
    tu_rng rng = { 13 };
    tu_fill_normal(&rng, x, 15, 2.0f);
    const float sigmas[3] = { 0.1f, 1.0f, 30.0f };
    for (int li = 0; li < 2; li++) {
        lgd_guidance *dps = simple_guidance(ctx, m, losses[li], LGD_GUIDANCE_DPS, 1, 0, 0);
        for (int si = 0; si < 3; si++) {
            float sigma = sigmas[si];
            lgd_tensor *tx = tu_tensor(ctx, B, D, x), *th = tu_tensor(ctx, B, D, NULL);
            lgd_tensor *tl = tu_tensor(ctx, B, 1, NULL), *tgr = tu_tensor(ctx, B, D, NULL);
            lgd_tensor *tv = tu_tensor(ctx, B, D, NULL);
            TU_OK(ctx, lgd_model_denoise(m, tx, sigma, NULL, th));
            TU_OK(ctx, lgd_loss_eval(losses[li], th, tl, tgr));
            TU_OK(ctx, lgd_model_vjp(m, tx, sigma, NULL, tgr, tv));
            float *xh = tu_download(th), *jv = tu_download(tv);
            float manual[15], xh2[15];
            for (int i = 0; i < 15; i++)
                manual[i] = -jv[i];
            float *g = term_host(ctx, dps, x, B, D, sigma, 0, 0, xh2, NULL);
            ck_assert_msg(memcmp(xh, xh2, sizeof xh2) == 0, "sigma %g: xhat differs from D(x)",
                          (double)sigma);
            double amax = 0.0;
            for (int i = 0; i < 15; i++)
                amax = fmax(amax, fabs(manual[i]));
            ck_assert_msg(tu_max_scaled_err(g, manual, 15, 1e-6 * amax + 1e-30, 1e-6) <= 1.0,
                          "loss %d sigma %g: DPS term differs from -J^T grad l(xhat): %g vs %g",
                          li, (double)sigma, (double)g[0], (double)manual[0]);
            free(g);
            free(xh);
            free(jv);
            lgd_tensor_destroy(tx);
            lgd_tensor_destroy(th);
            lgd_tensor_destroy(tl);
            lgd_tensor_destroy(tgr);
            lgd_tensor_destroy(tv);
        }
        lgd_guidance_destroy(dps);
    }
    lgd_loss_destroy(losses[0]);
    lgd_loss_destroy(losses[1]);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* ----------------- LGD-MC rebuilt by hand from the draws a callback loss saw */

typedef struct recording_loss {
    lgd_loss *inner;
    lgd_context *ctx;
    int64_t dim;
    /* every call appends: the call's batch, m, then its draws, losses and grads */
    size_t calls;
    int64_t call_batch[4096], call_n[4096];
    float *x, *l, *g;       /* concatenated over calls */
    size_t nx, nl, cap_x, cap_l;
} recording_loss;

static int recording_eval(void *user, const float *x, int64_t batch, int64_t n, int64_t dim,
                          float *loss, float *grad)
{
    recording_loss *r = user;
    int64_t shape[3] = { batch, n, dim };
    lgd_tensor *tx = NULL, *tl = NULL, *tg = NULL;
    if (lgd_tensor_create(r->ctx, 3, shape, &tx) || lgd_tensor_create(r->ctx, 3, shape, &tg) ||
        lgd_tensor_create_2d(r->ctx, batch, n, &tl))
        return 1;
    size_t cnt = (size_t)(batch * n * dim), rows = (size_t)(batch * n);
    int rc = lgd_tensor_upload(tx, x, cnt) || lgd_loss_eval(r->inner, tx, tl, tg) ||
             lgd_tensor_download(tl, loss, rows);
    float *gtmp = malloc(cnt * sizeof *gtmp);
    if (!rc && gtmp)
        rc = lgd_tensor_download(tg, gtmp, cnt) != LGD_OK;
    if (!rc && grad)
        memcpy(grad, gtmp, cnt * sizeof *gtmp);
    if (!rc && r->calls < 4096 && r->nx + cnt <= r->cap_x && r->nl + rows <= r->cap_l) {
        r->call_batch[r->calls] = batch;
        r->call_n[r->calls] = n;
        r->calls++;
        memcpy(r->x + r->nx, x, cnt * sizeof *x);
        memcpy(r->g + r->nx, gtmp, cnt * sizeof *gtmp);
        memcpy(r->l + r->nl, loss, rows * sizeof *loss);
        r->nx += cnt;
        r->nl += rows;
    } else if (!rc) {
        rc = 2;
    }
    free(gtmp);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tl);
    lgd_tensor_destroy(tg);
    return rc;
}

static lgd_loss *recording_loss_create(lgd_context *ctx, recording_loss *r, lgd_loss *inner,
                                       size_t cap_rows)
{
    memset(r, 0, sizeof *r);
    r->inner = inner;
    r->ctx = ctx;
    r->dim = lgd_loss_dim(inner);
    r->cap_x = cap_rows * (size_t)r->dim;
    r->cap_l = cap_rows;
    r->x = malloc(r->cap_x * sizeof(float));
    r->g = malloc(r->cap_x * sizeof(float));
    r->l = malloc(r->cap_l * sizeof(float));
    ck_assert(r->x && r->g && r->l);
    lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
    cb.dim = r->dim;
    cb.eval = recording_eval;
    cb.user = r;
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_callbacks(ctx, &cb, &l));
    return l;
}

static void recording_reset(recording_loss *r)
{
    r->calls = 0;
    r->nx = r->nl = 0;
}

static void recording_free(recording_loss *r)
{
    free(r->x);
    free(r->g);
    free(r->l);
}

START_TEST(mc_matches_manual_snis_from_recorded_draws)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *m = mixture3d(ctx);
    lgd_loss *inner = loss3d(ctx);
    recording_loss rec;
    const int64_t B = 16, D = 3;
    const int32_t n = 200, chunk = 7;
    lgd_loss *loss = recording_loss_create(ctx, &rec, inner, (size_t)(B * n));
    float x[48];
    tu_rng rng = { 21 };
    tu_fill_normal(&rng, x, 48, 1.2f);
    const float sigma = 0.9f, scale = 0.6f;
    lgd_guidance_options o = guid_options(LGD_GUIDANCE_MC, n, chunk, 77);
    o.step_rule = LGD_STEP_NORMALIZED;
    o.scale = scale;
    lgd_guidance *gd = make_guidance(ctx, m, loss, &o);
    float r = lgd_guidance_radius(gd, sigma);
    ck_assert_msg(fabs(r - sigma / sqrt(1.0 + (double)sigma * sigma)) < 1e-6, "radius %g",
                  (double)r);

    float xhat[48];
    lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
    float *g = term_host(ctx, gd, x, B, D, sigma, 2, 0, xhat, &rep);
    /* chunks of 7: ceil(200 / 7) calls, each [B][m][D] */
    ck_assert_int_eq((int)rec.calls, (n + chunk - 1) / chunk);
    double *lw = malloc((size_t)(B * n) * sizeof *lw); /* [B][n] */
    double *eps = malloc((size_t)(B * n * D) * sizeof *eps);
    double *ld = malloc((size_t)(B * n) * sizeof *ld);
    double *gd3 = malloc((size_t)(B * n * D) * sizeof *gd3);
    ck_assert(lw && eps && ld && gd3);
    size_t ox = 0, ol = 0;
    int done = 0;
    for (size_t c = 0; c < rec.calls; c++) {
        int64_t cb = rec.call_batch[c], cm = rec.call_n[c];
        ck_assert_int_eq((int)cb, (int)B);
        for (int64_t b = 0; b < cb; b++)
            for (int64_t j = 0; j < cm; j++) {
                size_t id = (size_t)(b * n + done + j);
                ld[id] = rec.l[ol + (size_t)(b * cm + j)];
                for (int64_t e = 0; e < D; e++) {
                    size_t src = ox + (size_t)((b * cm + j) * D + e);
                    eps[id * D + (size_t)e] = ((double)rec.x[src] - xhat[b * D + e]) / r;
                    gd3[id * D + (size_t)e] = rec.g[src];
                }
            }
        ox += (size_t)(cb * cm * D);
        ol += (size_t)(cb * cm);
        done += (int)cm;
    }
    ck_assert_int_eq(done, n);
    /* the draws are xhat + r eps with eps ~ N(0, 1) */
    double s1 = 0.0, s2 = 0.0;
    size_t ne = (size_t)(B * n * D);
    for (size_t i = 0; i < ne; i++) {
        s1 += eps[i];
        s2 += eps[i] * eps[i];
    }
    double emean = s1 / ne, evar = s2 / ne - emean * emean;
    ck_assert_msg(fabs(emean) < 5.0 / sqrt((double)ne) && fabs(evar - 1.0) < 7.0 * sqrt(2.0 / ne),
                  "draw noise: mean %g var %g over %zu values", emean, evar, ne);
    /* rebuild: w = softmax(-l), v = sum w grad, g = -J^T v; ess; weighted loss */
    float v[48];
    double ess_mean = 0.0, ess_min = INFINITY, loss_mean = 0.0, wl[16];
    for (int64_t b = 0; b < B; b++) {
        double mx = -INFINITY;
        for (int j = 0; j < n; j++)
            mx = fmax(mx, -ld[b * n + j]);
        double sw = 0.0, sw2 = 0.0, swl = 0.0, acc[3] = { 0, 0, 0 };
        for (int j = 0; j < n; j++) {
            double w = exp(-ld[b * n + j] - mx);
            sw += w;
            sw2 += w * w;
            swl += w * ld[b * n + j];
            loss_mean += ld[b * n + j];
            for (int e = 0; e < D; e++)
                acc[e] += w * gd3[(size_t)(b * n + j) * D + (size_t)e];
        }
        for (int e = 0; e < D; e++)
            v[b * D + e] = (float)(acc[e] / sw);
        double ess = sw * sw / sw2;
        ess_mean += ess / B;
        ess_min = fmin(ess_min, ess);
        wl[b] = swl / sw;
    }
    loss_mean /= (double)(B * n);
    lgd_tensor *tx = tu_tensor(ctx, B, D, x), *tv = tu_tensor(ctx, B, D, v);
    lgd_tensor *tj = tu_tensor(ctx, B, D, NULL);
    TU_OK(ctx, lgd_model_vjp(m, tx, sigma, NULL, tv, tj));
    float *jv = tu_download(tj);
    float manual[48];
    double amax = 0.0, norm_mean = 0.0;
    for (int i = 0; i < 48; i++) {
        manual[i] = -jv[i];
        amax = fmax(amax, fabs(manual[i]));
    }
    for (int64_t b = 0; b < B; b++) {
        double nn = 0.0;
        for (int e = 0; e < D; e++)
            nn += (double)g[b * D + e] * g[b * D + e];
        norm_mean += sqrt(nn) / B;
    }
    ck_assert_msg(tu_max_scaled_err(g, manual, 48, 1e-5 * amax, 1e-4) <= 1.0,
                  "LGD-MC term differs from the hand-made SNIS: %g vs %g", (double)g[0],
                  (double)manual[0]);
    ck_assert_msg(fabs(rep.mean_ess - ess_mean) <= 1e-4 * ess_mean, "mean ess %g, want %g",
                  (double)rep.mean_ess, ess_mean);
    ck_assert_msg(fabs(rep.min_ess - ess_min) <= 1e-4 * ess_min, "min ess %g, want %g",
                  (double)rep.min_ess, ess_min);
    ck_assert_msg(rep.min_ess >= 1.0f && rep.mean_ess <= (float)n && rep.min_ess <= rep.mean_ess,
                  "ess out of range: min %g mean %g", (double)rep.min_ess, (double)rep.mean_ess);
    ck_assert_msg(fabs(rep.mean_loss - loss_mean) <= 1e-5 * (1.0 + fabs(loss_mean)),
                  "mean loss %g, want the mean of the %d draws' losses %g", (double)rep.mean_loss,
                  (int)(B * n), loss_mean);
    ck_assert_msg(fabs(rep.mean_grad_norm - norm_mean) <= 1e-5 * norm_mean,
                  "mean |g| %g, want %g", (double)rep.mean_grad_norm, norm_mean);

    /* the normalized step: lambda = scale / sqrt(weighted loss of the draws) */
    recording_reset(&rec);
    lgd_guidance_report rep2 = LGD_GUIDANCE_REPORT_INIT;
    float *out = denoise_host(ctx, gd, x, B, D, sigma, 2, 0, &rep2);
    double lam_mean = 0.0;
    for (int64_t b = 0; b < B; b++) {
        double lam = scale / sqrt(wl[b]);
        lam_mean += lam / B;
        for (int e = 0; e < D; e++) {
            double want = (double)xhat[b * D + e] + lam * (double)g[b * D + e];
            ck_assert_msg(fabs(out[b * D + e] - want) <=
                              1e-5 * (fabs(xhat[b * D + e]) + fabs(lam * g[b * D + e])) + 1e-7,
                          "row %d: normalized MC step %g, want %g (lambda %g)", (int)b,
                          (double)out[b * D + e], want, lam);
        }
    }
    ck_assert_msg(fabs(rep2.mean_lambda - lam_mean) <= 1e-5 * lam_mean, "mean lambda %g, want %g",
                  (double)rep2.mean_lambda, lam_mean);
    ck_assert_int_eq(rep2.active, 1);
    free(out);
    free(jv);
    free(g);
    free(lw);
    free(eps);
    free(ld);
    free(gd3);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tv);
    lgd_tensor_destroy(tj);
    lgd_guidance_destroy(gd);
    lgd_loss_destroy(loss);
    lgd_loss_destroy(inner);
    recording_free(&rec);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* The exact estimator rebuilt from the posterior draws the loss saw:
 * g = (sum_i w_i x_i / sum_i w_i - xhat) / sigma^2, w = softmax(-l). */
START_TEST(exact_matches_manual_snis_from_recorded_draws)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *m = mixture2d(ctx);
    float a[2] = { 2.0f, -1.0f };
    lgd_loss *inner = logistic_loss(ctx, 2, a, 0.5f);
    recording_loss rec;
    const int64_t B = 12, D = 2;
    const int32_t n = 150, chunk = 16;
    lgd_loss *loss = recording_loss_create(ctx, &rec, inner, (size_t)(B * n));
    float x[24];
    tu_rng rng = { 22 };
    tu_fill_normal(&rng, x, 24, 1.2f);
    const float sigmas[2] = { 0.5f, 3.0f };
    for (int si = 0; si < 2; si++) {
        const float sigma = sigmas[si];
        recording_reset(&rec);
        lgd_guidance *gd = simple_guidance(ctx, m, loss, LGD_GUIDANCE_EXACT, n, chunk, 5);
        float xhat[24];
        lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
        float *g = term_host(ctx, gd, x, B, D, sigma, 1, 0, xhat, &rep);
        ck_assert_int_eq((int)rec.calls, (n + chunk - 1) / chunk);
        double num[12][2] = { { 0 } }, den[12] = { 0 }, mx[12], xs[12][2] = { { 0 } };
        double xs2[12][2] = { { 0 } };
        for (int b = 0; b < B; b++)
            mx[b] = -INFINITY;
        /* pass 1: the max of -l per row */
        size_t ox = 0, ol = 0;
        for (size_t c = 0; c < rec.calls; c++) {
            int64_t cm = rec.call_n[c];
            for (int64_t b = 0; b < B; b++)
                for (int64_t j = 0; j < cm; j++)
                    mx[b] = fmax(mx[b], -(double)rec.l[ol + (size_t)(b * cm + j)]);
            ol += (size_t)(B * cm);
        }
        ol = 0;
        for (size_t c = 0; c < rec.calls; c++) {
            int64_t cm = rec.call_n[c];
            for (int64_t b = 0; b < B; b++)
                for (int64_t j = 0; j < cm; j++) {
                    double w = exp(-(double)rec.l[ol + (size_t)(b * cm + j)] - mx[b]);
                    den[b] += w;
                    for (int e = 0; e < D; e++) {
                        double xv = rec.x[ox + (size_t)((b * cm + j) * D + e)];
                        num[b][e] += w * xv;
                        xs[b][e] += xv;
                        xs2[b][e] += xv * xv;
                    }
                }
            ol += (size_t)(B * cm);
            ox += (size_t)(B * cm * D);
        }
        float manual[24];
        double amax = 0.0;
        for (int b = 0; b < B; b++)
            for (int e = 0; e < D; e++) {
                manual[b * D + e] =
                    (float)((num[b][e] / den[b] - xhat[b * D + e]) / ((double)sigma * sigma));
                amax = fmax(amax, fabs(manual[b * D + e]));
                /* the draws are centred on the posterior mean xhat (5 standard errors) */
                double mean = xs[b][e] / n, var = xs2[b][e] / n - mean * mean;
                ck_assert_msg(fabs(mean - xhat[b * D + e]) <= 5.0 * sqrt(var / n) + 1e-6,
                              "sigma %g row %d: posterior draws average %g, xhat %g (sd %g)",
                              (double)sigma, b, mean, (double)xhat[b * D + e], sqrt(var));
            }
        ck_assert_msg(tu_max_scaled_err(g, manual, 24, 1e-5 * amax, 1e-4) <= 1.0,
                      "sigma %g: exact term differs from (E_w[x0] - xhat) / sigma^2: %g vs %g",
                      (double)sigma, (double)g[0], (double)manual[0]);
        free(g);
        lgd_guidance_destroy(gd);
    }
    lgd_loss_destroy(loss);
    lgd_loss_destroy(inner);
    recording_free(&rec);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* ----------------------------------------------- 4. chunking and memory */

START_TEST(chunked_equals_unchunked)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *m = mixture2d(ctx);
    float a[2] = { 2.0f, -1.0f };
    lgd_loss *loss = logistic_loss(ctx, 2, a, 0.5f);
    const int64_t B = 8, D = 2;
    float x[16];
    tu_rng rng = { 31 };
    tu_fill_normal(&rng, x, 16, 1.5f);
    const lgd_guidance_kind kinds[2] = { LGD_GUIDANCE_MC, LGD_GUIDANCE_EXACT };
    const float sigmas[2] = { 0.3f, 2.0f };
    for (int ki = 0; ki < 2; ki++)
        for (int si = 0; si < 2; si++) {
            lgd_guidance *ref = simple_guidance(ctx, m, loss, kinds[ki], 50, 50, 8);
            lgd_guidance_report rr = LGD_GUIDANCE_REPORT_INIT;
            float *g0 = term_host(ctx, ref, x, B, D, sigmas[si], 1, 0, NULL, &rr);
            double amax = 0.0;
            for (int i = 0; i < 16; i++)
                amax = fmax(amax, fabs(g0[i]));
            const int32_t chunks[4] = { 1, 7, 16, 0 };
            for (int c = 0; c < 4; c++) {
                lgd_guidance *gd = simple_guidance(ctx, m, loss, kinds[ki], 50, chunks[c], 8);
                lgd_guidance_report rc = LGD_GUIDANCE_REPORT_INIT;
                float *g1 = term_host(ctx, gd, x, B, D, sigmas[si], 1, 0, NULL, &rc);
                double e = tu_max_scaled_err(g1, g0, 16, 1e-5 * amax, 1e-5);
                ck_assert_msg(e <= 1.0,
                              "kind %d sigma %g chunk %d: differs from unchunked (scaled err %g)",
                              (int)kinds[ki], (double)sigmas[si], chunks[c], e);
                ck_assert_msg(fabs(rc.mean_ess - rr.mean_ess) <= 1e-4 * rr.mean_ess &&
                                  fabs(rc.mean_loss - rr.mean_loss) <=
                                      1e-5 * (1.0 + fabs(rr.mean_loss)),
                              "kind %d chunk %d: reports differ (ess %g vs %g, loss %g vs %g)",
                              (int)kinds[ki], chunks[c], (double)rc.mean_ess,
                              (double)rr.mean_ess, (double)rc.mean_loss, (double)rr.mean_loss);
                free(g1);
                lgd_guidance_destroy(gd);
            }
            free(g0);
            lgd_guidance_destroy(ref);
        }
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------ losses that know which draws they get */

/* l(x) = w_k 0.5 |x - t|^2 with the draw's weight w_k = 1 + 0.5 sin(1.7 k): k is the
 * draw index first_draw + i (eval_draws), or, in the wrong variant, the index i within
 * the call (eval), which changes with the chunk size. Records the calls it gets. */
typedef struct draw_loss {
    lgd_context *ctx;
    const char *message; /* lgd_context_set_callback_error when not NULL */
    int32_t rc;          /* returned when non-zero */
    int calls;
    int64_t first[64], n[64], total[64];
} draw_loss;

static int32_t draw_loss_fill(draw_loss *d, const float *x, int64_t batch, int64_t n,
                              int64_t dim, int64_t first, int64_t total, float *loss,
                              float *grad)
{
    if (d->calls < 64) {
        d->first[d->calls] = first;
        d->n[d->calls] = n;
        d->total[d->calls] = total;
    }
    d->calls++;
    if (d->message)
        lgd_context_set_callback_error(d->ctx, d->message);
    if (d->rc)
        return d->rc;
    static const float t[2] = { 0.7f, -0.4f };
    for (int64_t b = 0; b < batch; b++)
        for (int64_t i = 0; i < n; i++) {
            int64_t r = b * n + i;
            double w = 1.0 + 0.5 * sin(1.7 * (double)(first + i)), acc = 0.0;
            for (int64_t j = 0; j < dim; j++) {
                double e = (double)x[r * dim + j] - t[j % 2];
                acc += 0.5 * w * e * e;
                if (grad)
                    grad[r * dim + j] = (float)(w * e);
            }
            loss[r] = (float)acc;
        }
    return 0;
}

static int32_t draw_loss_eval_draws(void *user, const float *x, int64_t batch, int64_t n,
                                    int64_t dim, int64_t first_draw, int64_t total_draws,
                                    float *loss, float *grad)
{
    return draw_loss_fill(user, x, batch, n, dim, first_draw, total_draws, loss, grad);
}

static int32_t draw_loss_eval_local(void *user, const float *x, int64_t batch, int64_t n,
                                    int64_t dim, float *loss, float *grad)
{
    return draw_loss_fill(user, x, batch, n, dim, 0, -1, loss, grad);
}

static lgd_loss *draw_loss_create(lgd_context *ctx, draw_loss *d, int global)
{
    memset(d, 0, sizeof *d);
    d->ctx = ctx;
    lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
    cb.dim = 2;
    if (global)
        cb.eval_draws = draw_loss_eval_draws;
    else
        cb.eval = draw_loss_eval_local;
    cb.user = d;
    lgd_loss *l = NULL;
    TU_OK(ctx, lgd_loss_create_callbacks(ctx, &cb, &l));
    return l;
}

START_TEST(eval_draws_covers_every_draw_once)
{
    lgd_context *ctx = tu_context(1);
    lgd_model *m = mixture2d(ctx);
    draw_loss d;
    lgd_loss *loss = draw_loss_create(ctx, &d, 1);
    const int64_t B = 3, D = 2;
    float x[6] = { 0.3f, -1.0f, 1.2f, 0.4f, -0.5f, 2.0f };
    const lgd_guidance_kind kinds[2] = { LGD_GUIDANCE_MC, LGD_GUIDANCE_EXACT };
    const int32_t chunks[3] = { 16, 0, 5 };
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < 3; c++) {
            lgd_guidance *gd = simple_guidance(ctx, m, loss, kinds[k], 37, chunks[c], 3);
            d.calls = 0;
            float *g = term_host(ctx, gd, x, B, D, 0.8f, 0, 0, NULL, NULL);
            int64_t chunk = chunks[c] ? chunks[c] : 16;
            ck_assert_int_eq(d.calls, (int)((37 + chunk - 1) / chunk));
            int seen[37] = { 0 };
            int64_t next = 0;
            for (int i = 0; i < d.calls; i++) {
                ck_assert_int_eq(d.total[i], 37);
                ck_assert_int_eq(d.first[i], next); /* in order, no gap, no overlap */
                ck_assert_int_eq(d.n[i], 37 - next < chunk ? 37 - next : chunk);
                for (int64_t j = d.first[i]; j < d.first[i] + d.n[i]; j++)
                    seen[j]++;
                next += d.n[i];
            }
            for (int j = 0; j < 37; j++)
                ck_assert_msg(seen[j] == 1, "kind %d chunk %d: draw %d seen %d times",
                              (int)kinds[k], chunks[c], j, seen[j]);
            free(g);
            lgd_guidance_destroy(gd);
        }
    /* DPS: one draw, the loss at xhat */
    lgd_guidance *gd = simple_guidance(ctx, m, loss, LGD_GUIDANCE_DPS, 37, 16, 3);
    d.calls = 0;
    free(term_host(ctx, gd, x, B, D, 0.8f, 0, 0, NULL, NULL));
    ck_assert_int_eq(d.calls, 1);
    ck_assert_int_eq(d.first[0], 0);
    ck_assert_int_eq(d.n[0], 1);
    ck_assert_int_eq(d.total[0], 1);
    lgd_guidance_destroy(gd);

    /* a message from the loss reaches the context's last error, after the step */
    gd = simple_guidance(ctx, m, loss, LGD_GUIDANCE_MC, 37, 16, 3);
    lgd_tensor *tx = tu_tensor(ctx, B, D, x), *tg = tu_tensor(ctx, B, D, NULL);
    d.message = "the classifier is not loaded";
    d.rc = 2;
    TU_FAILS(ctx, LGD_ERR_CALLBACK, lgd_guidance_term(gd, tx, 0.8f, 3, 0, tg, NULL, NULL));
    assert_msg_contains(ctx, "step 3");
    assert_msg_contains(ctx, "eval_draws returned 2");
    assert_msg_contains(ctx, ": the classifier is not loaded");
    d.rc = 0; /* a message with success is discarded */
    TU_OK(ctx, lgd_guidance_term(gd, tx, 0.8f, 3, 0, tg, NULL, NULL));
    d.message = NULL;
    d.rc = 5;
    TU_FAILS(ctx, LGD_ERR_CALLBACK, lgd_guidance_term(gd, tx, 0.8f, 3, 0, tg, NULL, NULL));
    ck_assert_ptr_null(strstr(lgd_context_last_error(ctx), "classifier"));
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tg);
    lgd_guidance_destroy(gd);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(draw_dependent_loss_independent_of_chunk)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *m = mixture2d(ctx);
    const int64_t B = 6, D = 2;
    float x[12];
    tu_rng rng = { 77 };
    tu_fill_normal(&rng, x, 12, 1.5f);
    const lgd_guidance_kind kinds[2] = { LGD_GUIDANCE_MC, LGD_GUIDANCE_EXACT };
    for (int global = 1; global >= 0; global--) {
        draw_loss d;
        lgd_loss *loss = draw_loss_create(ctx, &d, global);
        for (int k = 0; k < 2; k++) {
            lgd_guidance *ref = simple_guidance(ctx, m, loss, kinds[k], 37, 37, 11);
            float *g0 = term_host(ctx, ref, x, B, D, 0.6f, 2, 0, NULL, NULL);
            double amax = 0.0;
            for (int i = 0; i < 12; i++)
                amax = fmax(amax, fabs(g0[i]));
            const int32_t chunks[4] = { 16, 5, 1, 0 };
            double worst = 0.0;
            for (int c = 0; c < 4; c++) {
                lgd_guidance *gd = simple_guidance(ctx, m, loss, kinds[k], 37, chunks[c], 11);
                float *g1 = term_host(ctx, gd, x, B, D, 0.6f, 2, 0, NULL, NULL);
                double e = tu_max_scaled_err(g1, g0, 12, 1e-5 * amax, 1e-5);
                worst = fmax(worst, e);
                if (global)
                    ck_assert_msg(e <= 1.0,
                                  "kind %d chunk %d: a loss on the draw index depends on the "
                                  "chunk (scaled err %g)",
                                  (int)kinds[k], chunks[c], e);
                free(g1);
                lgd_guidance_destroy(gd);
            }
            /* the test can tell: indexing by the position in the call does depend on it */
            if (!global)
                ck_assert_msg(worst > 10.0, "kind %d: the local-index loss gave the same term "
                              "for every chunk (scaled err %g)", (int)kinds[k], worst);
            free(g0);
            lgd_guidance_destroy(ref);
        }
        lgd_loss_destroy(loss);
    }
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* Peak backend memory of a fresh context after one guidance call. */
static size_t peak_after_call(lgd_guidance_kind kind, int32_t n, int32_t chunk)
{
    lgd_context *ctx = tu_context(1);
    lgd_model *m = mixture2d(ctx);
    float a[2] = { 2.0f, -1.0f };
    lgd_loss *loss = logistic_loss(ctx, 2, a, 0.5f);
    float x[64];
    tu_rng rng = { 41 };
    tu_fill_normal(&rng, x, 64, 1.0f);
    lgd_guidance *gd = simple_guidance(ctx, m, loss, kind, n, chunk, 1);
    lgd_tensor *tx = tu_tensor(ctx, 32, 2, x), *tg = tu_tensor(ctx, 32, 2, NULL);
    lgd_tensor *to = tu_tensor(ctx, 32, 2, NULL);
    TU_OK(ctx, lgd_guidance_term(gd, tx, 1.0f, 0, 0, tg, NULL, NULL));
    TU_OK(ctx, lgd_guidance_denoise(gd, tx, 1.0f, 0, 0, to, NULL));
    size_t cur = 0, peak = 0;
    lgd_context_memory_usage(ctx, &cur, &peak);
    ck_assert(peak >= cur && peak > 0);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tg);
    lgd_tensor_destroy(to);
    lgd_guidance_destroy(gd);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    size_t after = 0;
    lgd_context_memory_usage(ctx, &after, NULL);
    ck_assert_msg(after == 0, "%zu bytes still held after destroying everything", after);
    lgd_context_destroy(ctx);
    return peak;
}

START_TEST(memory_independent_of_n)
{
    const lgd_guidance_kind kinds[2] = { LGD_GUIDANCE_MC, LGD_GUIDANCE_EXACT };
    for (int ki = 0; ki < 2; ki++) {
        const int32_t chunks[2] = { 0, 8 };
        for (int c = 0; c < 2; c++) {
            size_t p16 = peak_after_call(kinds[ki], 16, chunks[c]);
            size_t p4k = peak_after_call(kinds[ki], 4096, chunks[c]);
            ck_assert_msg(p16 == p4k, "kind %d chunk %d: peak %zu bytes at n = 16 but %zu at "
                          "n = 4096", (int)kinds[ki], chunks[c], p16, p4k);
        }
    }
    /* and on one context with a reset of the peak in between */
    lgd_context *ctx = tu_context(1);
    lgd_model *m = mixture2d(ctx);
    float a[2] = { 2.0f, -1.0f };
    lgd_loss *loss = logistic_loss(ctx, 2, a, 0.5f);
    float x[64] = { 0 };
    lgd_tensor *tx = tu_tensor(ctx, 32, 2, x), *tg = tu_tensor(ctx, 32, 2, NULL);
    size_t peaks[2];
    const int32_t ns[2] = { 16, 4096 };
    /* warm-up: the model keeps its own batch scratch from the first call on */
    lgd_guidance *warm = simple_guidance(ctx, m, loss, LGD_GUIDANCE_DPS, 1, 0, 1);
    TU_OK(ctx, lgd_guidance_term(warm, tx, 0.5f, 0, 0, tg, NULL, NULL));
    lgd_guidance_destroy(warm);
    for (int t = 0; t < 2; t++) {
        lgd_context_reset_peak_memory(ctx);
        size_t base = 0;
        lgd_context_memory_usage(ctx, &base, NULL);
        lgd_guidance *gd = simple_guidance(ctx, m, loss, LGD_GUIDANCE_MC, ns[t], 16, 1);
        TU_OK(ctx, lgd_guidance_term(gd, tx, 0.5f, 0, 0, tg, NULL, NULL));
        lgd_context_memory_usage(ctx, NULL, &peaks[t]);
        peaks[t] -= base;
        lgd_guidance_destroy(gd);
    }
    ck_assert_msg(peaks[0] == peaks[1], "extra peak %zu bytes at n = 16, %zu at n = 4096",
                  peaks[0], peaks[1]);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tg);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------------- 5. step rules */

START_TEST(step_rules)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *m = mixture2d(ctx);
    float a[2] = { 2.0f, -1.0f };
    lgd_loss *loss = logistic_loss(ctx, 2, a, 0.5f);
    const int64_t B = 6, D = 2;
    float x[12];
    tu_rng rng = { 51 };
    tu_fill_normal(&rng, x, 12, 1.5f);
    const lgd_guidance_kind kinds[2] = { LGD_GUIDANCE_DPS, LGD_GUIDANCE_MC };
    const lgd_step_rule rules[3] = { LGD_STEP_SCORE, LGD_STEP_X0, LGD_STEP_NORMALIZED };
    const float sigmas[2] = { 0.4f, 3.0f };
    const float scale = 0.7f;
    for (int ki = 0; ki < 2; ki++)
        for (int ri = 0; ri < 3; ri++) {
            if (kinds[ki] == LGD_GUIDANCE_MC && rules[ri] == LGD_STEP_NORMALIZED)
                continue; /* covered by mc_matches_manual_snis_from_recorded_draws */
            lgd_guidance_options o = guid_options(kinds[ki], 20, 0, 4);
            o.step_rule = rules[ri];
            o.scale = scale;
            lgd_guidance *gd = make_guidance(ctx, m, loss, &o);
            for (int si = 0; si < 2; si++) {
                float sigma = sigmas[si], xhat[12];
                float *g = term_host(ctx, gd, x, B, D, sigma, 9, 0, xhat, NULL);
                lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
                float *out = denoise_host(ctx, gd, x, B, D, sigma, 9, 0, &rep);
                /* the loss at xhat for the normalized rule */
                float lx[6];
                lgd_tensor *th = tu_tensor(ctx, B, D, xhat), *tl = tu_tensor(ctx, B, 1, NULL);
                TU_OK(ctx, lgd_loss_eval(loss, th, tl, NULL));
                TU_OK(ctx, lgd_tensor_download(tl, lx, 6));
                lgd_tensor_destroy(th);
                lgd_tensor_destroy(tl);
                double lam_mean = 0.0;
                for (int64_t b = 0; b < B; b++) {
                    double lam = rules[ri] == LGD_STEP_SCORE ? (double)scale * sigma * sigma
                                 : rules[ri] == LGD_STEP_X0  ? (double)scale
                                                             : scale / sqrt((double)lx[b]);
                    lam_mean += lam / B;
                    for (int e = 0; e < D; e++) {
                        double want = (double)xhat[b * D + e] + lam * g[b * D + e];
                        double tol = 2e-6 * (fabs(xhat[b * D + e]) + fabs(lam * g[b * D + e])) +
                                     1e-30;
                        ck_assert_msg(fabs(out[b * D + e] - want) <= tol,
                                      "kind %d rule %d sigma %g row %d: out %.9g, want xhat %.9g "
                                      "+ %.6g g %.9g = %.9g",
                                      (int)kinds[ki], (int)rules[ri], (double)sigma, (int)b,
                                      (double)out[b * D + e], (double)xhat[b * D + e], lam,
                                      (double)g[b * D + e], want);
                    }
                }
                ck_assert_msg(fabs(rep.mean_lambda - lam_mean) <= 1e-5 * lam_mean,
                              "kind %d rule %d: mean lambda %g, want %g", (int)kinds[ki],
                              (int)rules[ri], (double)rep.mean_lambda, lam_mean);
                ck_assert_int_eq(rep.active, 1);
                ck_assert_float_eq(rep.sigma, sigma);
                free(g);
                free(out);
            }
            lgd_guidance_destroy(gd);
        }
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(sigma_window)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *m = mixture2d(ctx);
    float a[2] = { 2.0f, -1.0f };
    lgd_loss *loss = logistic_loss(ctx, 2, a, 0.5f);
    const int64_t B = 5, D = 2;
    float x[10];
    tu_rng rng = { 61 };
    tu_fill_normal(&rng, x, 10, 1.5f);
    lgd_guidance_options o = guid_options(LGD_GUIDANCE_MC, 10, 0, 0);
    o.sigma_min_active = 0.5f;
    o.sigma_max_active = 5.0f;
    lgd_guidance *gd = make_guidance(ctx, m, loss, &o);
    const float sig[6] = { 0.2f, 0.4999f, 0.5f, 1.0f, 5.0f, 10.0f };
    const int act[6] = { 0, 0, 1, 1, 1, 0 };
    for (int i = 0; i < 6; i++) {
        lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
        rep.active = -1;
        float *out = denoise_host(ctx, gd, x, B, D, sig[i], 0, 0, &rep);
        float *d = model_denoise_host(ctx, m, x, B, D, sig[i]);
        ck_assert_msg(rep.active == act[i], "sigma %g: active %d, want %d", (double)sig[i],
                      rep.active, act[i]);
        if (!act[i]) {
            ck_assert_msg(memcmp(out, d, sizeof x) == 0,
                          "sigma %g outside the window: output is not D(x) bitwise",
                          (double)sig[i]);
            ck_assert_msg(rep.mean_lambda == 0.0f, "sigma %g: inactive but mean_lambda %g",
                          (double)sig[i], (double)rep.mean_lambda);
        } else {
            ck_assert_msg(memcmp(out, d, sizeof x) != 0, "sigma %g inside the window: no guidance",
                          (double)sig[i]);
            ck_assert_msg(rep.mean_lambda > 0.0f, "sigma %g: mean_lambda %g", (double)sig[i],
                          (double)rep.mean_lambda);
        }
        free(out);
        free(d);
    }
    /* LGD_GUIDANCE_NONE: plain D(x), inactive, with or without a loss */
    lgd_guidance_options on = guid_options(LGD_GUIDANCE_NONE, 10, 0, 0);
    lgd_guidance *none = make_guidance(ctx, m, NULL, &on);
    lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
    float *out = denoise_host(ctx, none, x, B, D, 1.0f, 0, 0, &rep);
    float *d = model_denoise_host(ctx, m, x, B, D, 1.0f);
    ck_assert(memcmp(out, d, sizeof x) == 0);
    ck_assert_int_eq(rep.active, 0);
    lgd_guidance_report trep = LGD_GUIDANCE_REPORT_INIT;
    float *g = term_host(ctx, none, x, B, D, 1.0f, 0, 0, NULL, &trep);
    for (int i = 0; i < 10; i++)
        ck_assert_float_eq(g[i], 0.0f);
    ck_assert_int_eq(trep.active, 0); /* no term was estimated (0.4.0; was 1) */
    ck_assert_float_eq(trep.mean_grad_norm, 0.0f);
    free(out);
    free(d);
    free(g);
    lgd_guidance_destroy(none);
    lgd_guidance_destroy(gd);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* An inactive call evaluates no loss and applies no g: its report must not carry
 * diagnostics from an earlier call (or from uninitialised scratch). */
START_TEST(inactive_report_has_no_stale_diagnostics)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *m = mixture2d(ctx);
    float a[2] = { 2.0f, -1.0f };
    lgd_loss *loss = logistic_loss(ctx, 2, a, 0.5f);
    float x[10];
    tu_rng rng = { 62 };
    tu_fill_normal(&rng, x, 10, 1.5f);
    lgd_guidance_options o = guid_options(LGD_GUIDANCE_MC, 10, 0, 0);
    o.sigma_max_active = 5.0f;
    lgd_guidance *gd = make_guidance(ctx, m, loss, &o);
    lgd_guidance_report r1 = LGD_GUIDANCE_REPORT_INIT, r2 = LGD_GUIDANCE_REPORT_INIT;
    float *o1 = denoise_host(ctx, gd, x, 5, 2, 1.0f, 0, 0, &r1);
    ck_assert(r1.active == 1 && r1.mean_grad_norm > 0.0f && r1.mean_loss > 0.0f);
    float *o2 = denoise_host(ctx, gd, x, 5, 2, 10.0f, 1, 0, &r2);
    ck_assert_int_eq(r2.active, 0);
    ck_assert_msg(r2.mean_grad_norm == 0.0f && r2.mean_loss == 0.0f && r2.mean_ess == 0.0f &&
                      r2.min_ess == 0.0f && r2.mean_lambda == 0.0f,
                  "inactive call at sigma 10 reports mean_grad_norm %g, mean_loss %g, mean_ess %g, "
                  "min_ess %g, mean_lambda %g (the previous active call at sigma 1 reported "
                  "%g, %g, %g, %g, %g)",
                  (double)r2.mean_grad_norm, (double)r2.mean_loss, (double)r2.mean_ess,
                  (double)r2.min_ess, (double)r2.mean_lambda, (double)r1.mean_grad_norm,
                  (double)r1.mean_loss, (double)r1.mean_ess, (double)r1.min_ess,
                  (double)r1.mean_lambda);
    free(o1);
    free(o2);
    lgd_guidance_destroy(gd);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* The same when the very first call of a guidance object is outside the window (the
 * report must not be read from scratch that no estimate has written). */
START_TEST(inactive_first_call_report)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *m = mixture2d(ctx);
    float a[2] = { 2.0f, -1.0f };
    lgd_loss *loss = logistic_loss(ctx, 2, a, 0.5f);
    float x[10];
    tu_rng rng = { 63 };
    tu_fill_normal(&rng, x, 10, 1.5f);
    lgd_guidance_options o = guid_options(LGD_GUIDANCE_MC, 10, 0, 0);
    o.sigma_min_active = 2.0f;
    lgd_guidance *gd = make_guidance(ctx, m, loss, &o);
    lgd_guidance_report r = LGD_GUIDANCE_REPORT_INIT;
    float *out = denoise_host(ctx, gd, x, 5, 2, 1.0f, 0, 0, &r);
    ck_assert_int_eq(r.active, 0);
    ck_assert_msg(r.mean_grad_norm == 0.0f && r.mean_loss == 0.0f && r.mean_ess == 0.0f &&
                      r.min_ess == 0.0f && r.mean_lambda == 0.0f,
                  "first (inactive) call reports mean_grad_norm %g, mean_loss %g, mean_ess %g, "
                  "min_ess %g, mean_lambda %g",
                  (double)r.mean_grad_norm, (double)r.mean_loss, (double)r.mean_ess,
                  (double)r.min_ess, (double)r.mean_lambda);
    free(out);
    lgd_guidance_destroy(gd);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* --------------------------------------------------------- 6. reports */

START_TEST(reports)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *m = mixture3d(ctx);
    lgd_loss *loss = loss3d(ctx);
    const int64_t B = 7, D = 3;
    float x[21];
    tu_rng rng = { 71 };
    tu_fill_normal(&rng, x, 21, 1.3f);
    const float sigma = 0.6f;
    /* DPS: ess exactly 1; mean loss = mean of l(xhat); mean |g| */
    lgd_guidance *dps = simple_guidance(ctx, m, loss, LGD_GUIDANCE_DPS, 1, 0, 0);
    lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
    float xhat[21];
    float *g = term_host(ctx, dps, x, B, D, sigma, 0, 0, xhat, &rep);
    ck_assert_msg(rep.mean_ess == 1.0f && rep.min_ess == 1.0f, "DPS ess %g / %g",
                  (double)rep.mean_ess, (double)rep.min_ess);
    float lx[7];
    lgd_tensor *th = tu_tensor(ctx, B, D, xhat), *tl = tu_tensor(ctx, B, 1, NULL);
    TU_OK(ctx, lgd_loss_eval(loss, th, tl, NULL));
    TU_OK(ctx, lgd_tensor_download(tl, lx, 7));
    double lm = 0.0, gn = 0.0;
    for (int b = 0; b < B; b++) {
        lm += lx[b] / (double)B;
        gn += sqrt((double)g[b * 3] * g[b * 3] + (double)g[b * 3 + 1] * g[b * 3 + 1] +
                   (double)g[b * 3 + 2] * g[b * 3 + 2]) /
              B;
    }
    ck_assert_msg(fabs(rep.mean_loss - lm) <= 1e-6 * (1.0 + lm), "DPS mean loss %g, want %g",
                  (double)rep.mean_loss, lm);
    ck_assert_msg(fabs(rep.mean_grad_norm - gn) <= 1e-5 * gn, "DPS mean |g| %g, want %g",
                  (double)rep.mean_grad_norm, gn);
    ck_assert_float_eq(rep.sigma, sigma);
    ck_assert_int_eq(rep.active, 1);
    ck_assert_float_eq(rep.mean_lambda, 0.0f); /* term applies no step */
    free(g);
    /* MC: ess in [1, n], min <= mean, |g| */
    const int32_t ns[3] = { 1, 10, 300 };
    for (int t = 0; t < 3; t++) {
        lgd_guidance *mc = simple_guidance(ctx, m, loss, LGD_GUIDANCE_MC, ns[t], 0, 5);
        lgd_guidance_report r = LGD_GUIDANCE_REPORT_INIT;
        float *gm = term_host(ctx, mc, x, B, D, sigma, 0, 0, NULL, &r);
        ck_assert_msg(r.min_ess >= 1.0f && r.mean_ess <= (float)ns[t] && r.min_ess <= r.mean_ess,
                      "n = %d: ess min %g mean %g", ns[t], (double)r.min_ess, (double)r.mean_ess);
        if (ns[t] > 1)
            ck_assert_msg(r.mean_ess > 1.0f, "n = %d: mean ess %g", ns[t], (double)r.mean_ess);
        double n2 = 0.0;
        for (int b = 0; b < B; b++)
            n2 += sqrt((double)gm[b * 3] * gm[b * 3] + (double)gm[b * 3 + 1] * gm[b * 3 + 1] +
                       (double)gm[b * 3 + 2] * gm[b * 3 + 2]) /
                  B;
        ck_assert_msg(fabs(r.mean_grad_norm - n2) <= 1e-5 * n2, "MC mean |g| %g, want %g",
                      (double)r.mean_grad_norm, n2);
        ck_assert(isfinite(r.mean_loss) && r.mean_loss > 0.0f);
        free(gm);
        lgd_guidance_destroy(mc);
    }
    /* a struct_size inside the first published layout (a caller's bug, not an older
     * header: 0.1.0's report ends at rows) is refused since 0.4.0, and nothing is
     * written; the 0.1.0 size itself is tested in per_row_report */
    struct {
        lgd_guidance_report r;
        float guard;
    } small, small_before;
    memset(&small, 0x5a, sizeof small);
    small.r.struct_size = (uint32_t)offsetof(lgd_guidance_report, mean_grad_norm);
    small_before = small;
    {
        lgd_tensor *sx = tu_tensor(ctx, B, D, x), *sg = tu_tensor(ctx, B, D, NULL);
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
                 lgd_guidance_term(dps, sx, sigma, 0, 0, sg, NULL, &small.r));
        ck_assert_msg(strstr(lgd_context_last_error(ctx), "first published layout"), "%s",
                      lgd_context_last_error(ctx));
        ck_assert_msg(memcmp(&small, &small_before, sizeof small) == 0,
                      "a refused report was written");
        lgd_tensor_destroy(sx);
        lgd_tensor_destroy(sg);
    }
    /* a report with struct_size 0 is refused */
    lgd_guidance_report bad = LGD_GUIDANCE_REPORT_INIT;
    bad.struct_size = 0;
    lgd_tensor *tx = tu_tensor(ctx, B, D, x), *tg = tu_tensor(ctx, B, D, NULL);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_term(dps, tx, sigma, 0, 0, tg, NULL, &bad));
    TU_OK(ctx, lgd_guidance_term(dps, tx, sigma, 0, 0, tg, NULL, NULL));
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tg);
    lgd_tensor_destroy(th);
    lgd_tensor_destroy(tl);
    lgd_guidance_destroy(dps);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------ per-row diagnostics (issue 11) */

/* The batch fields are computed from the per-row floats: mean = their mean accumulated
 * in double in row order, min_ess = their minimum. */
static void assert_rows_make_batch(const lgd_guidance_report *r, int64_t B, int have_lambda)
{
    double m[4] = { 0, 0, 0, 0 };
    float mn = r->row_ess[0];
    for (int64_t b = 0; b < B; b++) {
        m[0] += r->row_loss[b];
        m[1] += r->row_ess[b];
        m[2] += r->row_grad_norm[b];
        m[3] += r->row_lambda[b];
        mn = r->row_ess[b] < mn ? r->row_ess[b] : mn;
        ck_assert(isfinite(r->row_loss[b]) && isfinite(r->row_grad_norm[b]));
        if (!have_lambda)
            ck_assert(r->row_lambda[b] == 0.0f);
    }
    ck_assert_msg(r->mean_loss == (float)(m[0] / (double)B), "mean_loss %.9g, rows give %.9g",
                  (double)r->mean_loss, m[0] / (double)B);
    ck_assert_msg(r->mean_ess == (float)(m[1] / (double)B), "mean_ess %.9g, rows give %.9g",
                  (double)r->mean_ess, m[1] / (double)B);
    ck_assert_msg(r->min_ess == mn, "min_ess %.9g, rows give %.9g", (double)r->min_ess,
                  (double)mn);
    ck_assert_msg(r->mean_grad_norm == (float)(m[2] / (double)B),
                  "mean_grad_norm %.9g, rows give %.9g", (double)r->mean_grad_norm,
                  m[2] / (double)B);
    ck_assert_msg(r->mean_lambda == (float)(m[3] / (double)B), "mean_lambda %.9g, rows give %.9g",
                  (double)r->mean_lambda, m[3] / (double)B);
}

START_TEST(per_row_report)
{
    enum { B = 7, D = 3, R = B + 2, N = 10 };
    lgd_context *ctx = tu_context(0);
    lgd_model *m = mixture3d(ctx);
    lgd_loss *loss = loss3d(ctx);
    float x[B * D];
    tu_rng rng = { 81 };
    tu_fill_normal(&rng, x, B * D, 1.2f);
    const float sigma = 0.7f;
    lgd_guidance_kind kinds[3] = { LGD_GUIDANCE_DPS, LGD_GUIDANCE_MC, LGD_GUIDANCE_EXACT };
    for (int ki = 0; ki < 3; ki++) {
        lgd_guidance_options o = guid_options(kinds[ki], N, 4, 3);
        o.step_rule = LGD_STEP_NORMALIZED; /* lambda differs per row */
        o.sigma_max_active = 5.0f;
        lgd_guidance *gd = make_guidance(ctx, m, loss, &o);
        float rl[R], re[R], rg[R], rw[R];
        for (int b = 0; b < R; b++)
            rl[b] = re[b] = rg[b] = rw[b] = -3.0f;
        lgd_guidance_report r = LGD_GUIDANCE_REPORT_INIT;
        r.rows = R;
        r.row_loss = rl;
        r.row_ess = re;
        r.row_grad_norm = rg;
        r.row_lambda = rw;
        /* the guided denoiser: lambda applied */
        float *out = denoise_host(ctx, gd, x, B, D, sigma, 2, 5, &r);
        ck_assert(r.active == 1 && r.rows == R && r.row_loss == rl && r.row_lambda == rw);
        assert_rows_make_batch(&r, B, 1);
        for (int b = 0; b < B; b++) {
            ck_assert(re[b] >= 1.0f - 1e-5f && re[b] <= (float)N * (1.0f + 1e-5f));
            if (kinds[ki] == LGD_GUIDANCE_DPS)
                ck_assert(re[b] == 1.0f);
            ck_assert(rw[b] > 0.0f);
        }
        ck_assert(rl[B] == -3.0f && re[B + 1] == -3.0f && rg[B] == -3.0f && rw[B + 1] == -3.0f);
        /* the term, same keys: row_grad_norm = |g| of each row; no lambda */
        float *g = term_host(ctx, gd, x, B, D, sigma, 2, 5, NULL, &r);
        assert_rows_make_batch(&r, B, 0);
        for (int b = 0; b < B; b++) {
            double n2 = 0.0;
            for (int j = 0; j < D; j++)
                n2 += (double)g[b * D + j] * g[b * D + j];
            ck_assert_msg(fabs(rg[b] - sqrt(n2)) <= 1e-5 * sqrt(n2) + 1e-12,
                          "kind %d row %d: |g| %g, want %g", (int)kinds[ki], b, (double)rg[b],
                          sqrt(n2));
        }
        free(g);
        free(out);
        /* inactive (sigma above the window): every row 0 */
        for (int b = 0; b < R; b++)
            rl[b] = re[b] = rg[b] = rw[b] = -3.0f;
        out = denoise_host(ctx, gd, x, B, D, 8.0f, 3, 5, &r);
        ck_assert_int_eq(r.active, 0);
        for (int b = 0; b < B; b++)
            ck_assert(rl[b] == 0.0f && re[b] == 0.0f && rg[b] == 0.0f && rw[b] == 0.0f);
        ck_assert(rl[B] == -3.0f);
        free(out);
        /* only some arrays: those given are filled, the others left alone */
        for (int b = 0; b < R; b++)
            rl[b] = re[b] = -3.0f;
        r.row_loss = r.row_grad_norm = r.row_lambda = NULL;
        out = denoise_host(ctx, gd, x, B, D, sigma, 2, 5, &r);
        float mn = re[0];
        for (int b = 0; b < B; b++) {
            ck_assert(re[b] >= 1.0f - 1e-5f && rl[b] == -3.0f);
            mn = re[b] < mn ? re[b] : mn;
        }
        ck_assert(r.min_ess == mn && r.row_loss == NULL && r.row_ess == re);
        free(out);
        lgd_guidance_destroy(gd);
    }
    /* rows < batch: refused before any work, naming the function and the report */
    lgd_guidance *gd = simple_guidance(ctx, m, loss, LGD_GUIDANCE_MC, N, 0, 1);
    lgd_tensor *tx = tu_tensor(ctx, B, D, x), *tg = tu_tensor(ctx, B, D, NULL);
    float few[B];
    few[0] = -3.0f;
    lgd_guidance_report r = LGD_GUIDANCE_REPORT_INIT;
    r.rows = B - 1;
    r.row_ess = few;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_term(gd, tx, 1.0f, 0, 0, tg, NULL, &r));
    assert_msg_contains(ctx, "lgd_guidance_term: report->rows = 6");
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_denoise(gd, tx, 1.0f, 0, 0, tg, &r));
    assert_msg_contains(ctx, "lgd_guidance_denoise: report->rows");
    r.rows = -1;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_denoise(gd, tx, 1.0f, 0, 0, tg, &r));
    ck_assert(few[0] == -3.0f);
    /* rows is ignored when no array is given */
    r.row_ess = NULL;
    TU_OK(ctx, lgd_guidance_denoise(gd, tx, 1.0f, 0, 0, tg, &r));
    /* 0.1.0's report (ends at `active`): what lies past it is never read nor written,
     * even when it looks like a per-row request */
    struct {
        lgd_guidance_report r;
        unsigned char guard[16];
    } old;
    memset(&old, 0xA5, sizeof old);
    old.r.struct_size = (uint32_t)offsetof(lgd_guidance_report, rows);
    TU_OK(ctx, lgd_guidance_denoise(gd, tx, 1.0f, 0, 0, tg, &old.r));
    ck_assert(old.r.active == 1 && old.r.mean_ess >= 1.0f);
    const unsigned char *tail = (const unsigned char *)&old.r + offsetof(lgd_guidance_report, rows);
    for (size_t i = 0; i < sizeof old - offsetof(lgd_guidance_report, rows); i++)
        ck_assert_msg(tail[i] == 0xA5, "byte %zu past the old report was written", i);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tg);
    lgd_guidance_destroy(gd);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(report_init_function)
{
    const size_t first = offsetof(lgd_guidance_report, rows);
    ck_assert_uint_eq(first, 32); /* 0.1.0's sizeof(lgd_guidance_report) */
    struct {
        lgd_guidance_report r;
        unsigned char guard[24];
    } box;
    const lgd_guidance_report want = LGD_GUIDANCE_REPORT_INIT;
    /* today's size: the macro's values */
    memset(&box, 0x77, sizeof box);
    ck_assert_int_eq(lgd_guidance_report_init(&box.r, sizeof box.r), LGD_OK);
    ck_assert(box.r.struct_size == sizeof box.r && box.r.rows == 0 && !box.r.row_loss &&
              !box.r.row_ess && !box.r.row_grad_norm && !box.r.row_lambda &&
              box.r.active == 0 && box.r.mean_ess == 0.0f);
    ck_assert(want.struct_size == sizeof want && want.rows == 0 && !want.row_lambda);
    ck_assert(box.guard[0] == 0x77 && box.guard[23] == 0x77);
    /* the first published size: nothing past it */
    memset(&box, 0x77, sizeof box);
    ck_assert_int_eq(lgd_guidance_report_init(&box.r, (uint32_t)first), LGD_OK);
    ck_assert(box.r.struct_size == first && box.r.sigma == 0.0f && box.r.active == 0);
    const unsigned char *p = (const unsigned char *)&box.r;
    for (size_t i = first; i < sizeof box; i++)
        ck_assert_msg(p[i] == 0x77, "byte %zu written", i);
    /* a newer, larger struct: its unknown tail is zeroed (off) */
    memset(&box, 0x77, sizeof box);
    ck_assert_int_eq(lgd_guidance_report_init(&box.r, (uint32_t)(sizeof box.r + 8)), LGD_OK);
    ck_assert(box.r.struct_size == sizeof box.r + 8);
    for (size_t i = 0; i < 8; i++)
        ck_assert(box.guard[i] == 0);
    ck_assert(box.guard[8] == 0x77);
    /* too small, NULL */
    ck_assert_int_eq(lgd_guidance_report_init(&box.r, (uint32_t)first - 4),
                     LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lgd_guidance_report_init(&box.r, 0), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lgd_guidance_report_init(NULL, sizeof box.r), LGD_ERR_INVALID_ARGUMENT);
}
END_TEST

/* One row far from the loss's minimum: its draws' losses differ by hundreds, one draw
 * takes all the weight. The batch averages hide it; the per-row ESS finds it. */
START_TEST(per_row_report_finds_collapsed_ess)
{
    enum { B = 9, D = 2, N = 64, BAD = 5 };
    lgd_context *ctx = tu_context(0);
    lgd_model *m = mixture2d(ctx);
    const float target[2] = { 0.0f, 0.0f }, w[2] = { 0.5f, 0.5f };
    lgd_loss *loss = sqerr_loss(ctx, D, target, w);
    float x[B * D];
    tu_rng rng = { 91 };
    tu_fill_normal(&rng, x, B * D, 0.3f);
    x[BAD * D] = 60.0f;
    x[BAD * D + 1] = -60.0f;
    lgd_guidance *gd = simple_guidance(ctx, m, loss, LGD_GUIDANCE_MC, N, 0, 7);
    float rl[B], re[B], rg[B];
    lgd_guidance_report r = LGD_GUIDANCE_REPORT_INIT;
    r.rows = B;
    r.row_loss = rl;
    r.row_ess = re;
    r.row_grad_norm = rg;
    float *out = denoise_host(ctx, gd, x, B, D, 1.0f, 0, 0, &r);
    int argmin = 0, argmax = 0;
    for (int b = 1; b < B; b++) {
        argmin = re[b] < re[argmin] ? b : argmin;
        argmax = rl[b] > rl[argmax] ? b : argmax;
    }
    if (verbose())
        for (int b = 0; b < B; b++)
            printf("row %d: loss %g ess %g |g| %g\n", b, (double)rl[b], (double)re[b],
                   (double)rg[b]);
    ck_assert_int_eq(argmin, BAD);
    ck_assert_int_eq(argmax, BAD);
    ck_assert_msg(re[BAD] < 1.5f, "the far row's ESS %g is not collapsed", (double)re[BAD]);
    ck_assert(r.min_ess == re[BAD]);
    for (int b = 0; b < B; b++)
        if (b != BAD)
            ck_assert_msg(re[b] > N / 4, "row %d: ESS %g", b, (double)re[b]);
    ck_assert_msg(r.mean_ess > N / 4, "the batch mean %g", (double)r.mean_ess);
    free(out);
    lgd_guidance_destroy(gd);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------------ 7. determinism */

START_TEST(determinism_and_batch_split)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *models[2] = { mixture2d(ctx), mixture3d(ctx) };
    float a2[2] = { 2.0f, -1.0f };
    lgd_loss *losses[2] = { logistic_loss(ctx, 2, a2, 0.5f), loss3d(ctx) };
    const lgd_guidance_kind kinds[3] = { LGD_GUIDANCE_DPS, LGD_GUIDANCE_MC, LGD_GUIDANCE_EXACT };
    for (int mi = 0; mi < 2; mi++) {
        const int64_t B = 8, D = lgd_model_dim(models[mi]);
        float x[24];
        tu_rng rng = { 81 };
        tu_fill_normal(&rng, x, (size_t)(B * D), 1.5f);
        size_t bytes = (size_t)(B * D) * sizeof(float), half = bytes / 2;
        for (int ki = 0; ki < 3; ki++) {
            lgd_guidance *g1 = simple_guidance(ctx, models[mi], losses[mi], kinds[ki], 33, 5, 42);
            lgd_guidance *g2 = simple_guidance(ctx, models[mi], losses[mi], kinds[ki], 33, 5, 42);
            float *a = term_host(ctx, g1, x, B, D, 0.8f, 6, 0, NULL, NULL);
            float *b = term_host(ctx, g2, x, B, D, 0.8f, 6, 0, NULL, NULL);
            float *c = term_host(ctx, g1, x, B, D, 0.8f, 6, 0, NULL, NULL);
            ck_assert_msg(memcmp(a, b, bytes) == 0 && memcmp(a, c, bytes) == 0,
                          "model %d kind %d: same seed, different bytes", mi, (int)kinds[ki]);
            float *oa = denoise_host(ctx, g1, x, B, D, 0.8f, 6, 0, NULL);
            float *ob = denoise_host(ctx, g2, x, B, D, 0.8f, 6, 0, NULL);
            ck_assert(memcmp(oa, ob, bytes) == 0);
            /* rows 4..7 alone, keyed by first_row = 4 */
            float *h = term_host(ctx, g1, x + 4 * D, 4, D, 0.8f, 6, 4, NULL, NULL);
            ck_assert_msg(memcmp(h, a + 4 * D, half) == 0,
                          "model %d kind %d: rows 4..7 alone differ from rows 4..7 of the batch",
                          mi, (int)kinds[ki]);
            float *oh = denoise_host(ctx, g1, x + 4 * D, 4, D, 0.8f, 6, 4, NULL);
            ck_assert(memcmp(oh, oa + 4 * D, half) == 0);
            if (kinds[ki] != LGD_GUIDANCE_DPS) {
                /* first_row = 0 for the second half draws other numbers */
                float *h0 = term_host(ctx, g1, x + 4 * D, 4, D, 0.8f, 6, 0, NULL, NULL);
                ck_assert_msg(memcmp(h0, a + 4 * D, half) != 0,
                              "kind %d: first_row does not key the draws", (int)kinds[ki]);
                /* a different seed, or step, changes the estimate */
                lgd_guidance_set_seed(g2, 43);
                float *d = term_host(ctx, g2, x, B, D, 0.8f, 6, 0, NULL, NULL);
                ck_assert_msg(memcmp(a, d, bytes) != 0, "kind %d: a new seed changed nothing",
                              (int)kinds[ki]);
                float *e = term_host(ctx, g1, x, B, D, 0.8f, 7, 0, NULL, NULL);
                ck_assert_msg(memcmp(a, e, bytes) != 0, "kind %d: the step does not key draws",
                              (int)kinds[ki]);
                lgd_guidance_set_seed(g2, 42);
                float *f = term_host(ctx, g2, x, B, D, 0.8f, 6, 0, NULL, NULL);
                ck_assert(memcmp(a, f, bytes) == 0);
                free(h0);
                free(d);
                free(e);
                free(f);
            }
            free(a);
            free(b);
            free(c);
            free(h);
            free(oa);
            free(ob);
            free(oh);
            lgd_guidance_destroy(g1);
            lgd_guidance_destroy(g2);
        }
    }
    /* scratch growing with the batch: small batch first, then a larger one */
    {
        float xb[16];
        tu_rng rb = { 83 };
        tu_fill_normal(&rb, xb, 16, 1.0f);
        lgd_guidance *gs = simple_guidance(ctx, models[0], losses[0], LGD_GUIDANCE_MC, 21, 4, 3);
        lgd_guidance *gf = simple_guidance(ctx, models[0], losses[0], LGD_GUIDANCE_MC, 21, 4, 3);
        float *s1 = term_host(ctx, gs, xb, 2, 2, 0.9f, 1, 0, NULL, NULL);
        float *s2 = term_host(ctx, gs, xb, 8, 2, 0.9f, 1, 0, NULL, NULL);
        float *s3 = term_host(ctx, gs, xb, 3, 2, 0.9f, 1, 0, NULL, NULL);
        float *f8 = term_host(ctx, gf, xb, 8, 2, 0.9f, 1, 0, NULL, NULL);
        ck_assert_msg(memcmp(s2, f8, 16 * sizeof(float)) == 0, "batch growth changed the result");
        ck_assert(memcmp(s1, f8, 4 * sizeof(float)) == 0 && memcmp(s3, f8, 6 * sizeof(float)) == 0);
        free(s1);
        free(s2);
        free(s3);
        free(f8);
        lgd_guidance_destroy(gs);
        lgd_guidance_destroy(gf);
    }
    /* the thread count does not change the bytes */
    float x[16];
    tu_rng rng = { 82 };
    tu_fill_normal(&rng, x, 16, 1.5f);
    float *res[2];
    for (int t = 0; t < 2; t++) {
        lgd_context *c2 = tu_context(t == 0 ? 1 : 2);
        lgd_model *m2 = mixture2d(c2);
        lgd_loss *l2 = logistic_loss(c2, 2, a2, 0.5f);
        lgd_guidance *gd = simple_guidance(c2, m2, l2, LGD_GUIDANCE_MC, 40, 0, 9);
        res[t] = term_host(c2, gd, x, 8, 2, 1.1f, 2, 0, NULL, NULL);
        lgd_guidance_destroy(gd);
        lgd_loss_destroy(l2);
        lgd_model_destroy(m2);
        lgd_context_destroy(c2);
    }
    ck_assert_msg(memcmp(res[0], res[1], 16 * sizeof(float)) == 0, "1 vs 2 threads differ");
    free(res[0]);
    free(res[1]);
    for (int i = 0; i < 2; i++) {
        lgd_loss_destroy(losses[i]);
        lgd_model_destroy(models[i]);
    }
    lgd_context_destroy(ctx);
}
END_TEST

/* ----------------------------------------------------- 8. conditioning */

typedef struct cond_model {
    int64_t seen_batch;
    float seen_cond[16];   /* [batch][2] as the denoiser saw it */
    float seen_vjp_cond[16];
    int cond_was_null, vjp_cond_was_null;
    int denoise_calls, vjp_calls;
    int fail_denoise, fail_vjp;   /* return this from the callback when non-zero */
    int inf_denoise, inf_vjp;     /* write +Inf into the output */
} cond_model;

/* xhat = 0.5 x + cond[b][0] (cond[b][1] unused); J = 0.5 I. Unconditional: cond = 0. */
static int cond_denoise(void *user, const float *x, float sigma, const float *cond, int64_t batch,
                        int64_t dim, float *xhat)
{
    (void)sigma;
    cond_model *c = user;
    c->denoise_calls++;
    c->seen_batch = batch;
    c->cond_was_null = cond == NULL;
    if (cond && batch <= 8)
        memcpy(c->seen_cond, cond, (size_t)(batch * 2) * sizeof(float));
    if (c->fail_denoise)
        return c->fail_denoise;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t j = 0; j < dim; j++)
            xhat[b * dim + j] = 0.5f * x[b * dim + j] + (cond ? cond[b * 2] : 0.0f);
    if (c->inf_denoise)
        xhat[0] = INFINITY;
    return 0;
}

static int cond_vjp(void *user, const float *x, float sigma, const float *cond, int64_t batch,
                    int64_t dim, const float *v, float *out)
{
    (void)x;
    (void)sigma;
    cond_model *c = user;
    c->vjp_calls++;
    c->vjp_cond_was_null = cond == NULL;
    if (cond && batch <= 8)
        memcpy(c->seen_vjp_cond, cond, (size_t)(batch * 2) * sizeof(float));
    if (c->fail_vjp)
        return c->fail_vjp;
    for (int64_t i = 0; i < batch * dim; i++)
        out[i] = 0.5f * v[i];
    if (c->inf_vjp)
        out[0] = INFINITY;
    return 0;
}

static lgd_model *callback_model(lgd_context *ctx, cond_model *c, int64_t dim, int64_t cond_dim)
{
    lgd_model_callbacks cb = LGD_MODEL_CALLBACKS_INIT;
    cb.dim = dim;
    cb.cond_dim = cond_dim;
    cb.denoise = cond_denoise;
    cb.vjp = cond_vjp;
    cb.user = c;
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_create_callbacks(ctx, &cb, &m));
    return m;
}

START_TEST(conditioning)
{
    lgd_context *ctx = tu_context(0);
    cond_model cm;
    memset(&cm, 0, sizeof cm);
    lgd_model *m = callback_model(ctx, &cm, 2, 2);
    float a[2] = { 1.0f, 1.0f };
    lgd_loss *loss = logistic_loss(ctx, 2, a, 0.0f);
    const lgd_guidance_kind kinds[2] = { LGD_GUIDANCE_DPS, LGD_GUIDANCE_MC };
    float x[6] = { 0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f };
    float cond[6] = { 1.0f, 10.0f, 2.0f, 20.0f, 3.0f, 30.0f };
    for (int ki = 0; ki < 2; ki++) {
        lgd_guidance *gd = simple_guidance(ctx, m, loss, kinds[ki], 8, 0, 0);
        lgd_tensor *tc = tu_tensor(ctx, 3, 2, cond);
        TU_OK(ctx, lgd_guidance_set_condition(gd, tc));
        lgd_tensor_destroy(tc); /* the guidance keeps its own copy */
        float xhat[6];
        memset(&cm.seen_cond, 0, sizeof cm.seen_cond);
        memset(&cm.seen_vjp_cond, 0, sizeof cm.seen_vjp_cond);
        float *g = term_host(ctx, gd, x, 3, 2, 1.0f, 0, 0, xhat, NULL);
        ck_assert(!cm.cond_was_null && !cm.vjp_cond_was_null);
        ck_assert_msg(memcmp(cm.seen_cond, cond, sizeof cond) == 0,
                      "denoiser saw cond %g %g %g %g %g %g", (double)cm.seen_cond[0],
                      (double)cm.seen_cond[1], (double)cm.seen_cond[2], (double)cm.seen_cond[3],
                      (double)cm.seen_cond[4], (double)cm.seen_cond[5]);
        ck_assert(memcmp(cm.seen_vjp_cond, cond, sizeof cond) == 0);
        for (int b = 0; b < 3; b++)
            for (int j = 0; j < 2; j++)
                ck_assert_float_eq(xhat[b * 2 + j], 0.5f * x[b * 2 + j] + cond[b * 2]);
        /* the guided denoiser passes it too */
        memset(&cm.seen_cond, 0, sizeof cm.seen_cond);
        float *o = denoise_host(ctx, gd, x, 3, 2, 1.0f, 0, 0, NULL);
        ck_assert(memcmp(cm.seen_cond, cond, sizeof cond) == 0);
        /* mismatched rows */
        lgd_tensor *tx2 = tu_tensor(ctx, 2, 2, x), *tg2 = tu_tensor(ctx, 2, 2, NULL);
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH,
                 lgd_guidance_term(gd, tx2, 1.0f, 0, 0, tg2, NULL, NULL));
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_guidance_denoise(gd, tx2, 1.0f, 0, 0, tg2, NULL));
        /* a condition of the wrong width */
        lgd_tensor *tc3 = tu_tensor(ctx, 3, 3, NULL);
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_guidance_set_condition(gd, tc3));
        lgd_tensor_destroy(tc3);
        /* still works with the old condition */
        float *g2 = term_host(ctx, gd, x, 3, 2, 1.0f, 0, 0, NULL, NULL);
        ck_assert(memcmp(g, g2, sizeof x) == 0);
        ck_assert(memcmp(cm.seen_cond, cond, sizeof cond) == 0);
        /* cleared: the model gets NULL, and any batch works */
        TU_OK(ctx, lgd_guidance_set_condition(gd, NULL));
        lgd_tensor *tg = tu_tensor(ctx, 2, 2, NULL);
        TU_OK(ctx, lgd_guidance_term(gd, tx2, 1.0f, 0, 0, tg, NULL, NULL));
        ck_assert(cm.cond_was_null && cm.vjp_cond_was_null);
        lgd_tensor_destroy(tg);
        lgd_tensor_destroy(tx2);
        lgd_tensor_destroy(tg2);
        free(g);
        free(g2);
        free(o);
        lgd_guidance_destroy(gd);
    }
    /* a condition tensor from another context */
    {
        lgd_guidance *gd = simple_guidance(ctx, m, loss, LGD_GUIDANCE_DPS, 1, 0, 0);
        lgd_context *ctx2 = tu_context(1);
        lgd_tensor *tf = tu_tensor(ctx2, 3, 2, cond);
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_set_condition(gd, tf));
        lgd_tensor_destroy(tf);
        lgd_context_destroy(ctx2);
        lgd_guidance_destroy(gd);
    }
    /* an unconditional model refuses a condition */
    cond_model cu;
    memset(&cu, 0, sizeof cu);
    lgd_model *mu = callback_model(ctx, &cu, 2, 0);
    lgd_guidance *gu = simple_guidance(ctx, mu, loss, LGD_GUIDANCE_DPS, 1, 0, 0);
    lgd_tensor *tc = tu_tensor(ctx, 3, 2, cond);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_set_condition(gu, tc));
    ck_assert_int_eq(lgd_guidance_set_condition(NULL, tc), LGD_ERR_INVALID_ARGUMENT);
    lgd_tensor_destroy(tc);
    lgd_guidance_destroy(gu);
    lgd_model_destroy(mu);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------------- 9. bad input */

typedef struct bad_loss {
    int fail;        /* return this */
    int nan_loss;    /* write NaN into a loss */
    int nan_grad;    /* write NaN into a gradient */
    int calls;
} bad_loss;

/* l = 0.5 |x|^2 unless told otherwise */
static int bad_eval(void *user, const float *x, int64_t batch, int64_t n, int64_t dim,
                    float *loss, float *grad)
{
    bad_loss *b = user;
    b->calls++;
    if (b->fail)
        return b->fail;
    for (int64_t r = 0; r < batch * n; r++) {
        double acc = 0.0;
        for (int64_t j = 0; j < dim; j++) {
            acc += 0.5 * (double)x[r * dim + j] * x[r * dim + j];
            if (grad)
                grad[r * dim + j] = x[r * dim + j];
        }
        loss[r] = (float)acc;
    }
    if (b->nan_loss)
        loss[batch * n - 1] = NAN;
    if (b->nan_grad && grad)
        grad[0] = NAN;
    return 0;
}

static float nan_radius(void *user, float sigma)
{
    (void)sigma;
    return *(const float *)user;
}

/* The good call after a failure: must succeed with a finite g. */
static void good_call(lgd_context *ctx, lgd_guidance *gd, lgd_tensor *tx, lgd_tensor *tg)
{
    lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
    TU_OK(ctx, lgd_guidance_term(gd, tx, 1.0f, 0, 0, tg, NULL, &rep));
    float *g = tu_download(tg);
    for (int64_t i = 0; i < lgd_tensor_numel(tg); i++)
        ck_assert(isfinite(g[i]));
    free(g);
    ck_assert(isfinite(rep.mean_grad_norm) && isfinite(rep.mean_ess) && rep.mean_ess >= 1.0f);
    TU_OK(ctx, lgd_guidance_denoise(gd, tx, 1.0f, 0, 0, tg, NULL));
}

START_TEST(bad_create_arguments)
{
    lgd_context *ctx = tu_context(1);
    lgd_model *m = mixture2d(ctx);
    float a[2] = { 1.0f, 1.0f };
    lgd_loss *loss = logistic_loss(ctx, 2, a, 0.0f);
    lgd_loss *loss3 = loss3d(ctx);
    cond_model cm;
    memset(&cm, 0, sizeof cm);
    lgd_model *cbm = callback_model(ctx, &cm, 2, 0);
    lgd_guidance *gd = (lgd_guidance *)(uintptr_t)1;
    lgd_guidance_options o = guid_options(LGD_GUIDANCE_MC, 10, 0, 0);

    ck_assert_int_eq(lgd_guidance_create(NULL, m, loss, &o, &gd), LGD_ERR_INVALID_ARGUMENT);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, NULL, loss, &o, &gd));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, loss, &o, NULL));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, NULL, &o, &gd));
    ck_assert_ptr_null(gd);
    o.kind = LGD_GUIDANCE_DPS;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, NULL, &o, &gd));
    o.kind = LGD_GUIDANCE_EXACT;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, NULL, &o, &gd));
    /* NONE needs no loss */
    o.kind = LGD_GUIDANCE_NONE;
    TU_OK(ctx, lgd_guidance_create(ctx, m, NULL, &o, &gd));
    lgd_guidance_destroy(gd);
    /* dims */
    o = guid_options(LGD_GUIDANCE_MC, 10, 0, 0);
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_guidance_create(ctx, m, loss3, &o, &gd));
    /* exact needs exact posterior sampling */
    o.kind = LGD_GUIDANCE_EXACT;
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_guidance_create(ctx, cbm, loss, &o, &gd));
    assert_msg_contains(ctx, "EXACT");
    /* n_samples */
    const lgd_guidance_kind nk[2] = { LGD_GUIDANCE_MC, LGD_GUIDANCE_EXACT };
    for (int k = 0; k < 2; k++) {
        o = guid_options(nk[k], 0, 0, 0);
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, loss, &o, &gd));
        o.n_samples = -3;
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, loss, &o, &gd));
        o.n_samples = 10;
        o.chunk_size = -1;
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, loss, &o, &gd));
    }
    /* DPS ignores n_samples */
    o = guid_options(LGD_GUIDANCE_DPS, 0, 0, 0);
    TU_OK(ctx, lgd_guidance_create(ctx, m, loss, &o, &gd));
    lgd_guidance_destroy(gd);
    /* sigma_data and scale */
    const float bad_sd[4] = { 0.0f, -1.0f, NAN, INFINITY };
    for (int i = 0; i < 4; i++) {
        o = guid_options(LGD_GUIDANCE_MC, 10, 0, 0);
        o.sigma_data = bad_sd[i];
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, loss, &o, &gd));
    }
    o = guid_options(LGD_GUIDANCE_MC, 10, 0, 0);
    o.scale = NAN;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, loss, &o, &gd));
    /* unknown kind / step rule */
    o = guid_options((lgd_guidance_kind)5, 10, 0, 0);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, loss, &o, &gd));
    o = guid_options((lgd_guidance_kind)-1, 10, 0, 0);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, loss, &o, &gd));
    o = guid_options(LGD_GUIDANCE_MC, 10, 0, 0);
    o.step_rule = (lgd_step_rule)3;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, loss, &o, &gd));
    o.step_rule = (lgd_step_rule)-1;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, loss, &o, &gd));
    /* window */
    o = guid_options(LGD_GUIDANCE_MC, 10, 0, 0);
    o.sigma_min_active = 2.0f;
    o.sigma_max_active = 1.0f;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, loss, &o, &gd));
    o.sigma_min_active = -1.0f;
    o.sigma_max_active = 1.0f;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, loss, &o, &gd));
    o.sigma_min_active = 0.0f;
    o.sigma_max_active = NAN;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, loss, &o, &gd));
    o.sigma_min_active = 1.0f; /* a single point is a valid window */
    o.sigma_max_active = 1.0f;
    TU_OK(ctx, lgd_guidance_create(ctx, m, loss, &o, &gd));
    lgd_guidance_destroy(gd);
    /* struct_size */
    o = guid_options(LGD_GUIDANCE_MC, 10, 0, 0);
    o.struct_size = 0;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, loss, &o, &gd));
    /* NULL options = defaults */
    TU_OK(ctx, lgd_guidance_create(ctx, m, loss, NULL, &gd));
    lgd_guidance_destroy(gd);
    /* objects of another context */
    lgd_context *ctx2 = tu_context(1);
    lgd_loss *other = logistic_loss(ctx2, 2, a, 0.0f);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, other, &o, &gd));
    lgd_loss_destroy(other);
    lgd_context_destroy(ctx2);
    /* destroy(NULL) is a no-op; the NULL-safe accessors */
    lgd_guidance_destroy(NULL);
    lgd_guidance_set_seed(NULL, 1);
    ck_assert_float_eq(lgd_guidance_radius(NULL, 1.0f), 0.0f);

    lgd_model_destroy(cbm);
    lgd_loss_destroy(loss3);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* Options from an older caller that knew the struct only up to (not including) seed. */
START_TEST(older_options_struct)
{
    lgd_context *ctx = tu_context(1);
    lgd_model *m = mixture2d(ctx);
    float a[2] = { 1.0f, -1.0f };
    lgd_loss *loss = logistic_loss(ctx, 2, a, 0.3f);
    float x[8] = { 0.1f, 0.2f, -0.3f, 0.4f, 1.0f, -1.0f, 0.0f, 2.0f };
    lgd_guidance_options full = guid_options(LGD_GUIDANCE_MC, 12, 0, 0);
    lgd_guidance *g1 = make_guidance(ctx, m, loss, &full);
    float *r1 = term_host(ctx, g1, x, 4, 2, 0.7f, 0, 0, NULL, NULL);
    /* smaller than the first published layout (0.1.0 had every field): refused */
    lgd_guidance_options old = guid_options(LGD_GUIDANCE_MC, 12, 0, 987654321);
    old.struct_size = (uint32_t)offsetof(lgd_guidance_options, seed);
    lgd_guidance *g2 = NULL;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, loss, &old, &g2));
    ck_assert_ptr_null(g2);
    ck_assert(strstr(lgd_context_last_error(ctx), "smaller than the first published") != NULL);
    /* a newer caller's larger struct: refused while the fields this library does not
     * know are not zero (a request it cannot honour), accepted once they are */
    struct {
        lgd_guidance_options o;
        unsigned char future[32];
    } newer;
    memset(&newer, 0x77, sizeof newer);
    newer.o = guid_options(LGD_GUIDANCE_MC, 12, 0, 0);
    newer.o.struct_size = (uint32_t)sizeof newer;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_create(ctx, m, loss, &newer.o, &g2));
    ck_assert(strstr(lgd_context_last_error(ctx), "newer liblgd") != NULL);
    memset(newer.future, 0, sizeof newer.future);
    lgd_guidance *g4 = make_guidance(ctx, m, loss, &newer.o);
    float *r4 = term_host(ctx, g4, x, 4, 2, 0.7f, 0, 0, NULL, NULL);
    ck_assert(memcmp(r1, r4, sizeof x) == 0);
    free(r4);
    lgd_guidance_destroy(g4);
    /* lgd_guidance_options_init gives the macro's defaults */
    lgd_guidance_options init, mac = LGD_GUIDANCE_OPTIONS_INIT;
    memset(&init, 0xab, sizeof init);
    ck_assert_int_eq(lgd_guidance_options_init(&init, sizeof init), LGD_OK);
    ck_assert_uint_eq(init.struct_size, sizeof init);
    ck_assert(init.kind == mac.kind && init.n_samples == mac.n_samples &&
              init.chunk_size == mac.chunk_size && init.sigma_data == mac.sigma_data &&
              init.radius == NULL && init.step_rule == mac.step_rule &&
              init.scale == mac.scale && init.sigma_min_active == mac.sigma_min_active &&
              init.sigma_max_active == mac.sigma_max_active && init.seed == mac.seed);
    ck_assert(mac.kind == LGD_GUIDANCE_MC && mac.n_samples == 10 && mac.scale == 1.0f &&
              mac.sigma_data == 1.0f && isinf(mac.sigma_max_active));
    ck_assert_int_eq(lgd_guidance_options_init(NULL, sizeof init), LGD_ERR_INVALID_ARGUMENT);
    free(r1);
    lgd_guidance_destroy(g1);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(bad_call_arguments)
{
    lgd_context *ctx = tu_context(1);
    lgd_model *m = mixture2d(ctx);
    float a[2] = { 1.0f, 1.0f };
    lgd_loss *loss = logistic_loss(ctx, 2, a, 0.0f);
    const lgd_guidance_kind kinds[3] = { LGD_GUIDANCE_DPS, LGD_GUIDANCE_MC, LGD_GUIDANCE_EXACT };
    float x[8] = { 0.1f, 0.2f, -0.3f, 0.4f, 1.0f, -1.0f, 0.0f, 2.0f };
    lgd_tensor *tx = tu_tensor(ctx, 4, 2, x), *tg = tu_tensor(ctx, 4, 2, NULL);
    lgd_tensor *t3 = tu_tensor(ctx, 4, 3, NULL), *tb = tu_tensor(ctx, 3, 2, NULL);
    int64_t s1[1] = { 8 }, s3[3] = { 4, 1, 2 };
    lgd_tensor *flat = tu_tensor_nd(ctx, 1, s1, x), *t412 = tu_tensor_nd(ctx, 3, s3, x);
    lgd_context *ctx2 = tu_context(1);
    lgd_tensor *foreign = tu_tensor(ctx2, 4, 2, x);
    for (int k = 0; k < 3; k++) {
        lgd_guidance *gd = simple_guidance(ctx, m, loss, kinds[k], 6, 0, 0);
        ck_assert_int_eq(lgd_guidance_term(NULL, tx, 1.0f, 0, 0, tg, NULL, NULL),
                         LGD_ERR_INVALID_ARGUMENT);
        ck_assert_int_eq(lgd_guidance_denoise(NULL, tx, 1.0f, 0, 0, tg, NULL),
                         LGD_ERR_INVALID_ARGUMENT);
        const float bad_sigma[5] = { 0.0f, -1.0f, NAN, INFINITY, -0.0f };
        for (int i = 0; i < 5; i++) {
            TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
                     lgd_guidance_term(gd, tx, bad_sigma[i], 0, 0, tg, NULL, NULL));
            assert_msg_contains(ctx, "sigma");
            TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
                     lgd_guidance_denoise(gd, tx, bad_sigma[i], 0, 0, tg, NULL));
        }
        good_call(ctx, gd, tx, tg);
        /* NULL tensors */
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
                 lgd_guidance_term(gd, NULL, 1.0f, 0, 0, tg, NULL, NULL));
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
                 lgd_guidance_term(gd, tx, 1.0f, 0, 0, NULL, NULL, NULL));
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
                 lgd_guidance_denoise(gd, tx, 1.0f, 0, 0, NULL, NULL));
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
                 lgd_guidance_denoise(gd, NULL, 1.0f, 0, 0, tg, NULL));
        /* shapes */
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_guidance_term(gd, t3, 1.0f, 0, 0, tg, NULL, NULL));
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_guidance_term(gd, tx, 1.0f, 0, 0, t3, NULL, NULL));
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_guidance_term(gd, tx, 1.0f, 0, 0, tb, NULL, NULL));
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_guidance_term(gd, tx, 1.0f, 0, 0, tg, tb, NULL));
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_guidance_term(gd, tx, 1.0f, 0, 0, tg, t3, NULL));
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_guidance_term(gd, flat, 1.0f, 0, 0, tg, NULL, NULL));
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_guidance_denoise(gd, t3, 1.0f, 0, 0, tg, NULL));
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_guidance_denoise(gd, tx, 1.0f, 0, 0, tb, NULL));
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
                 lgd_guidance_term(gd, foreign, 1.0f, 0, 0, tg, NULL, NULL));
        /* [batch][1][dim] is a valid row layout */
        TU_OK(ctx, lgd_guidance_term(gd, t412, 1.0f, 0, 0, tg, NULL, NULL));
        good_call(ctx, gd, tx, tg);
        lgd_guidance_destroy(gd);
    }
    /* radius callbacks returning NaN, Inf or a negative r */
    const float bad_r[3] = { NAN, INFINITY, -0.5f };
    for (int i = 0; i < 3; i++) {
        float rv = bad_r[i];
        lgd_guidance_options o = guid_options(LGD_GUIDANCE_MC, 6, 0, 0);
        o.radius = nan_radius;
        o.radius_user = &rv;
        lgd_guidance *gd = make_guidance(ctx, m, loss, &o);
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
                 lgd_guidance_term(gd, tx, 1.0f, 3, 0, tg, NULL, NULL));
        assert_msg_contains(ctx, "radius");
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_denoise(gd, tx, 1.0f, 3, 0, tg, NULL));
        rv = 0.5f;
        good_call(ctx, gd, tx, tg);
        lgd_guidance_destroy(gd);
    }
    lgd_tensor_destroy(foreign);
    lgd_context_destroy(ctx2);
    lgd_tensor_destroy(flat);
    lgd_tensor_destroy(t412);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tg);
    lgd_tensor_destroy(t3);
    lgd_tensor_destroy(tb);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(failing_callbacks)
{
    lgd_context *ctx = tu_context(1);
    bad_loss bl;
    memset(&bl, 0, sizeof bl);
    lgd_loss_callbacks lc = LGD_LOSS_CALLBACKS_INIT;
    lc.dim = 2;
    lc.eval = bad_eval;
    lc.user = &bl;
    lgd_loss *loss = NULL;
    TU_OK(ctx, lgd_loss_create_callbacks(ctx, &lc, &loss));
    lgd_model *gm = mixture2d(ctx);
    cond_model cm;
    memset(&cm, 0, sizeof cm);
    lgd_model *cbm = callback_model(ctx, &cm, 2, 0);
    float x[8] = { 0.1f, 0.2f, -0.3f, 0.4f, 1.0f, -1.0f, 0.0f, 2.0f };
    lgd_tensor *tx = tu_tensor(ctx, 4, 2, x), *tg = tu_tensor(ctx, 4, 2, NULL);
    const lgd_guidance_kind kinds[3] = { LGD_GUIDANCE_DPS, LGD_GUIDANCE_MC, LGD_GUIDANCE_EXACT };
    lgd_model *models[2] = { gm, cbm };
    for (int mi = 0; mi < 2; mi++)
        for (int k = 0; k < 3; k++) {
            if (mi == 1 && kinds[k] == LGD_GUIDANCE_EXACT)
                continue;
            lgd_guidance *gd = simple_guidance(ctx, models[mi], loss, kinds[k], 20, 7, 0);
            /* a loss callback that fails: the message names the step */
            bl.fail = 17;
            TU_FAILS(ctx, LGD_ERR_CALLBACK, lgd_guidance_term(gd, tx, 1.0f, 3, 0, tg, NULL, NULL));
            assert_msg_contains(ctx, "step 3");
            assert_msg_contains(ctx, "17");
            TU_FAILS(ctx, LGD_ERR_CALLBACK, lgd_guidance_denoise(gd, tx, 1.0f, 5, 0, tg, NULL));
            assert_msg_contains(ctx, "step 5");
            bl.fail = 0;
            good_call(ctx, gd, tx, tg);
            /* a loss value of NaN */
            bl.nan_loss = 1;
            TU_FAILS(ctx, LGD_ERR_NON_FINITE, lgd_guidance_term(gd, tx, 1.0f, 3, 0, tg, NULL, NULL));
            assert_msg_contains(ctx, "step 3");
            TU_FAILS(ctx, LGD_ERR_NON_FINITE, lgd_guidance_denoise(gd, tx, 1.0f, 3, 0, tg, NULL));
            bl.nan_loss = 0;
            good_call(ctx, gd, tx, tg);
            /* a NaN gradient (the exact estimator asks for none) */
            if (kinds[k] != LGD_GUIDANCE_EXACT) {
                bl.nan_grad = 1;
                TU_FAILS(ctx, LGD_ERR_NON_FINITE,
                         lgd_guidance_term(gd, tx, 1.0f, 3, 0, tg, NULL, NULL));
                bl.nan_grad = 0;
                good_call(ctx, gd, tx, tg);
            }
            if (mi == 1) {
                /* the model: Inf from the denoiser or the VJP, or a failing callback */
                cm.inf_denoise = 1;
                TU_FAILS(ctx, LGD_ERR_NON_FINITE,
                         lgd_guidance_term(gd, tx, 1.0f, 3, 0, tg, NULL, NULL));
                assert_msg_contains(ctx, "step 3");
                TU_FAILS(ctx, LGD_ERR_NON_FINITE, lgd_guidance_denoise(gd, tx, 1.0f, 3, 0, tg, NULL));
                cm.inf_denoise = 0;
                good_call(ctx, gd, tx, tg);
                cm.inf_vjp = 1;
                TU_FAILS(ctx, LGD_ERR_NON_FINITE,
                         lgd_guidance_term(gd, tx, 1.0f, 3, 0, tg, NULL, NULL));
                cm.inf_vjp = 0;
                good_call(ctx, gd, tx, tg);
                cm.fail_denoise = 4;
                TU_FAILS(ctx, LGD_ERR_CALLBACK,
                         lgd_guidance_term(gd, tx, 1.0f, 3, 0, tg, NULL, NULL));
                assert_msg_contains(ctx, "step 3");
                cm.fail_denoise = 0;
                good_call(ctx, gd, tx, tg);
                cm.fail_vjp = 6;
                TU_FAILS(ctx, LGD_ERR_CALLBACK,
                         lgd_guidance_denoise(gd, tx, 1.0f, 3, 0, tg, NULL));
                cm.fail_vjp = 0;
                good_call(ctx, gd, tx, tg);
            }
            lgd_guidance_destroy(gd);
        }
    /* EXACT on a callback model */
    lgd_guidance_options o = guid_options(LGD_GUIDANCE_EXACT, 10, 0, 0);
    lgd_guidance *gd = NULL;
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_guidance_create(ctx, cbm, loss, &o, &gd));
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tg);
    lgd_loss_destroy(loss);
    lgd_model_destroy(gm);
    lgd_model_destroy(cbm);
    lgd_context_destroy(ctx);
}
END_TEST

/* A callback model registered without a VJP cannot do DPS or LGD-MC. */
static int plain_denoise(void *user, const float *x, float sigma, const float *cond,
                         int64_t batch, int64_t dim, float *xhat)
{
    (void)user;
    (void)sigma;
    (void)cond;
    for (int64_t i = 0; i < batch * dim; i++)
        xhat[i] = 0.5f * x[i];
    return 0;
}

START_TEST(model_without_vjp)
{
    lgd_context *ctx = tu_context(1);
    lgd_model_callbacks cb = LGD_MODEL_CALLBACKS_INIT;
    cb.dim = 2;
    cb.denoise = plain_denoise;
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_create_callbacks(ctx, &cb, &m));
    float a[2] = { 1.0f, 1.0f };
    lgd_loss *loss = logistic_loss(ctx, 2, a, 0.0f);
    float x[4] = { 1.0f, 2.0f, 3.0f, 4.0f };
    lgd_tensor *tx = tu_tensor(ctx, 2, 2, x), *tg = tu_tensor(ctx, 2, 2, NULL);
    const lgd_guidance_kind kinds[2] = { LGD_GUIDANCE_DPS, LGD_GUIDANCE_MC };
    for (int k = 0; k < 2; k++) {
        lgd_guidance_options o = guid_options(kinds[k], 4, 0, 0);
        lgd_guidance *gd = NULL;
        lgd_context_clear_error(ctx);
        lgd_status st = lgd_guidance_create(ctx, m, loss, &o, &gd);
        if (st == LGD_OK) {
            TU_FAILS(ctx, LGD_ERR_UNSUPPORTED,
                     lgd_guidance_term(gd, tx, 1.0f, 0, 0, tg, NULL, NULL));
            lgd_guidance_destroy(gd);
        } else {
            ck_assert_int_eq(st, LGD_ERR_UNSUPPORTED);
        }
    }
    /* NONE works without one */
    lgd_guidance_options o = guid_options(LGD_GUIDANCE_NONE, 4, 0, 0);
    lgd_guidance *gd = make_guidance(ctx, m, loss, &o);
    TU_OK(ctx, lgd_guidance_denoise(gd, tx, 1.0f, 0, 0, tg, NULL));
    float *out = tu_download(tg);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(out[i], 0.5f * x[i]);
    free(out);
    lgd_guidance_destroy(gd);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tg);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* lgd_guidance_mc(n) is LGD-MC with n draws and every other option at its default. */
START_TEST(mc_shorthand)
{
    lgd_context *ctx = tu_context(1);
    lgd_model *m = mixture2d(ctx);
    float a[2] = { 1.0f, -2.0f };
    lgd_loss *loss = logistic_loss(ctx, 2, a, 0.2f);
    float x[8] = { 0.1f, 0.2f, -0.3f, 0.4f, 1.0f, -1.0f, 0.0f, 2.0f };
    lgd_guidance *g1 = NULL;
    TU_OK(ctx, lgd_guidance_mc(ctx, m, loss, 25, &g1));
    lgd_guidance *g2 = simple_guidance(ctx, m, loss, LGD_GUIDANCE_MC, 25, 0, 0);
    ck_assert_float_eq_tol(lgd_guidance_radius(g1, 3.0f), 3.0f / sqrtf(10.0f), 1e-6f);
    float *r1 = term_host(ctx, g1, x, 4, 2, 0.9f, 1, 0, NULL, NULL);
    float *r2 = term_host(ctx, g2, x, 4, 2, 0.9f, 1, 0, NULL, NULL);
    ck_assert(memcmp(r1, r2, sizeof x) == 0);
    lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
    float *o1 = denoise_host(ctx, g1, x, 4, 2, 0.9f, 1, 0, &rep);
    float *o2 = denoise_host(ctx, g2, x, 4, 2, 0.9f, 1, 0, NULL);
    ck_assert(memcmp(o1, o2, sizeof x) == 0);
    ck_assert_float_eq_tol(rep.mean_lambda, 0.81f, 1e-6f); /* score rule, scale 1 */
    ck_assert(rep.mean_ess > 1.0f && rep.mean_ess <= 25.0f);
    lgd_guidance *bad = (lgd_guidance *)(uintptr_t)1;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_mc(ctx, m, loss, 0, &bad));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_guidance_mc(ctx, m, NULL, 5, &bad));
    /* sigma_data generalises the radius */
    lgd_guidance_options o = guid_options(LGD_GUIDANCE_MC, 5, 0, 0);
    o.sigma_data = 0.5f;
    lgd_guidance *g3 = make_guidance(ctx, m, loss, &o);
    double want = 2.0 * 0.5 / sqrt(4.0 + 0.25);
    ck_assert_msg(fabs(lgd_guidance_radius(g3, 2.0f) - want) <= 1e-6 * want, "radius %g, want %g",
                  (double)lgd_guidance_radius(g3, 2.0f), want);
    free(r1);
    free(r2);
    free(o1);
    free(o2);
    lgd_guidance_destroy(g1);
    lgd_guidance_destroy(g2);
    lgd_guidance_destroy(g3);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* The guidance keeps its model and loss alive; destroying the context first is safe. */
START_TEST(lifetimes)
{
    lgd_context *ctx = tu_context(1);
    lgd_model *m = mixture2d(ctx);
    float a[2] = { 1.0f, -2.0f };
    lgd_loss *loss = logistic_loss(ctx, 2, a, 0.2f);
    lgd_guidance *gd = simple_guidance(ctx, m, loss, LGD_GUIDANCE_MC, 8, 0, 0);
    lgd_model_destroy(m);
    lgd_loss_destroy(loss);
    float x[4] = { 0.5f, -0.5f, 1.0f, 0.0f };
    lgd_tensor *tx = tu_tensor(ctx, 2, 2, x), *tg = tu_tensor(ctx, 2, 2, NULL);
    lgd_context_destroy(ctx);
    TU_OK(ctx, lgd_guidance_term(gd, tx, 1.0f, 0, 0, tg, NULL, NULL));
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tg);
    lgd_guidance_destroy(gd);
}
END_TEST

/* ---------------------------------------------------------------- main */

int main(void)
{
    Suite *s = suite_create("guidance");
    TCase *tc;

    tc = tcase_create("gaussian_prior");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, mc_gaussian_logistic_converges, 0, 4);
    tcase_add_loop_test(tc, mc_gaussian_sqerr_converges, 0, 4);
    suite_add_tcase(s, tc);

    tc = tcase_create("paper_mixture");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, mixture_truth_matches_quadrature);
    tcase_add_test(tc, mixture_loss_is_the_posterior_class_probability);
    tcase_add_loop_test(tc, exact_estimator_converges_on_mixture, 0, 2);
    tcase_add_test(tc, dps_too_large_mc_closer_at_sigma_80);
    suite_add_tcase(s, tc);

    tc = tcase_create("estimators");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, dps_equals_mc_with_one_draw_and_zero_radius);
    tcase_add_test(tc, mc_zero_radius_many_draws_is_dps);
    tcase_add_test(tc, dps_equals_manual_vjp);
    tcase_add_test(tc, mc_matches_manual_snis_from_recorded_draws);
    tcase_add_test(tc, exact_matches_manual_snis_from_recorded_draws);
    tcase_add_test(tc, chunked_equals_unchunked);
    tcase_add_test(tc, eval_draws_covers_every_draw_once);
    tcase_add_test(tc, draw_dependent_loss_independent_of_chunk);
    tcase_add_test(tc, memory_independent_of_n);
    suite_add_tcase(s, tc);

    tc = tcase_create("denoiser");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, step_rules);
    tcase_add_test(tc, sigma_window);
    tcase_add_test(tc, reports);
    tcase_add_test(tc, determinism_and_batch_split);
    tcase_add_test(tc, conditioning);
    suite_add_tcase(s, tc);

    tc = tcase_create("per_row_reports");
    tcase_add_test(tc, per_row_report);
    tcase_add_test(tc, report_init_function);
    tcase_add_test(tc, per_row_report_finds_collapsed_ess);
    suite_add_tcase(s, tc);

    tc = tcase_create("inactive_reports");
    tcase_add_test(tc, inactive_report_has_no_stale_diagnostics);
    tcase_add_test(tc, inactive_first_call_report);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad_input");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, bad_create_arguments);
    tcase_add_test(tc, older_options_struct);
    tcase_add_test(tc, bad_call_arguments);
    tcase_add_test(tc, failing_callbacks);
    tcase_add_test(tc, model_without_vjp);
    tcase_add_test(tc, mc_shorthand);
    tcase_add_test(tc, lifetimes);
    suite_add_tcase(s, tc);

    return tu_run(s);
}
