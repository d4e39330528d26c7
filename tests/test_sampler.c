/*
 * test_sampler.c - noise schedules and samplers.
 *
 * Schedules are checked against their closed forms. Samplers are checked
 *  - exactly: on a 1-D Gaussian prior N(m, s^2) every sampler is a scalar
 *    recurrence that a double-precision reference below reproduces, noise
 *    included (same Philox counters), and the probability-flow ODE has the
 *    closed-form solution x0 = m + s (x_T - m) / sqrt(s^2 + sigma_max^2);
 *  - statistically: unguided sampling of a 1-D and a 16-D Gaussian mixture must
 *    reproduce the mean, the (co)variances and the fraction of samples nearest
 *    each component within 5 standard errors plus a stated discretisation
 *    allowance per sampler;
 *  - for reproducibility: same seed -> same bytes, whatever the batch split or
 *    the thread count;
 *  - on bad input.
 *
 * LGD_TEST_QUICK=1 reduces the sample counts (for valgrind); LGD_TEST_VERBOSE=1
 * prints the measured moments.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/philox.h"
#include "core/rng.h"
#include "backend/backend.h"
#include "testutil.h"

static int env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] && strcmp(v, "0") != 0;
}
static int quick(void) { return env_flag("LGD_TEST_QUICK"); }
static int verbose(void) { return env_flag("LGD_TEST_VERBOSE"); }

/* ------------------------------------------------------------------------ */
/* schedules                                                                */
/* ------------------------------------------------------------------------ */

START_TEST(schedule_karras_closed_form)
{
    const int32_t steps = 12;
    const float smin = 0.002f, smax = 80.0f, rho = 7.0f;
    float g[13];
    ck_assert_int_eq(lgd_schedule_karras(steps, smin, smax, rho, g), LGD_OK);
    ck_assert(g[0] == smax);
    ck_assert(g[steps - 1] == smin);
    ck_assert(g[steps] == 0.0f);
    double a = pow(smax, 1.0 / rho), b = pow(smin, 1.0 / rho);
    for (int i = 0; i < steps; i++) {
        double want = pow(a + (double)i / (steps - 1) * (b - a), rho);
        ck_assert_msg(fabs(g[i] - want) <= 1e-6 * want, "karras[%d] = %.9g, want %.9g", i,
                      (double)g[i], want);
        ck_assert(g[i] > g[i + 1]);
    }
    /* one step: sigma_max then 0 */
    float g1[2];
    ck_assert_int_eq(lgd_schedule_karras(1, smin, smax, rho, g1), LGD_OK);
    ck_assert(g1[0] == smax && g1[1] == 0.0f);
    /* two steps: the two endpoints then 0 */
    float g2[3];
    ck_assert_int_eq(lgd_schedule_karras(2, 0.1f, 10.0f, 3.0f, g2), LGD_OK);
    ck_assert(g2[0] == 10.0f && g2[1] == 0.1f && g2[2] == 0.0f);
    /* rho = 1 is linear */
    float gl[6];
    ck_assert_int_eq(lgd_schedule_karras(5, 1.0f, 5.0f, 1.0f, gl), LGD_OK);
    for (int i = 0; i < 5; i++)
        ck_assert_float_eq_tol(gl[i], 5.0f - (float)i, 1e-6f);
}
END_TEST

/* DDPM linear betas from the float arguments, as the library sees them */
static void direct_linear_abar(int T, float b0f, float b1f, double *abar)
{
    double b0 = b0f, b1 = b1f, p = 1.0;
    for (int t = 0; t < T; t++) {
        double beta = b0 + (b1 - b0) * t / (T - 1);
        p *= 1.0 - beta;
        abar[t] = p;
    }
}

START_TEST(schedule_vp_linear)
{
    enum { T = 1000 };
    static float ac[T];
    static double want[T];
    ck_assert_int_eq(lgd_vp_alphas_cumprod(LGD_SCHEDULE_VP_LINEAR, T, 1e-4f, 0.02f, ac), LGD_OK);
    direct_linear_abar(T, 1e-4f, 0.02f, want);
    for (int t = 0; t < T; t++) {
        ck_assert_msg(fabs(ac[t] - want[t]) <= 1e-6 * want[t], "abar[%d] = %.9g, want %.9g", t,
                      (double)ac[t], want[t]);
        if (t > 0)
            ck_assert(ac[t] < ac[t - 1]);
    }
    /* the well-known DDPM values */
    ck_assert_float_eq_tol(ac[0], 0.9999f, 1e-7f);
    ck_assert_msg(fabs(ac[T - 1] - 4.036e-5) < 0.005e-5, "abar[999] = %g", (double)ac[T - 1]);

    /* the sampler grid: timesteps 999, 888, ..., 0 and sigma = sqrt((1 - abar) / abar) */
    float g[11];
    ck_assert_int_eq(lgd_schedule_vp(LGD_SCHEDULE_VP_LINEAR, T, 1e-4f, 0.02f, 10, g), LGD_OK);
    for (int i = 0; i < 10; i++) {
        int t = 999 - 111 * i;
        double s = sqrt((1.0 - want[t]) / want[t]);
        ck_assert_msg(fabs(g[i] - s) <= 2e-6 * s, "vp sigma[%d] (t=%d) = %.9g, want %.9g", i, t,
                      (double)g[i], s);
    }
    ck_assert(g[10] == 0.0f);
    ck_assert_msg(fabs(g[0] - 157.4) < 0.1, "sigma_max = %g", (double)g[0]);
    ck_assert_msg(fabs(g[9] - 0.0100005) < 1e-6, "sigma_min = %.9g", (double)g[9]);

    /* rounding: 1000 timesteps, 4 steps -> 999, 666, 333, 0; 7 steps of 10 -> 9, 7.5 -> 8 ... */
    float g4[5];
    ck_assert_int_eq(lgd_schedule_vp(LGD_SCHEDULE_VP_LINEAR, T, 1e-4f, 0.02f, 4, g4), LGD_OK);
    const int t4[4] = { 999, 666, 333, 0 };
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq_tol(g4[i], (float)sqrt((1.0 - want[t4[i]]) / want[t4[i]]),
                               2e-6f * g4[i]);
    double w10[10];
    direct_linear_abar(10, 1e-4f, 0.02f, w10);
    float g7[8];
    ck_assert_int_eq(lgd_schedule_vp(LGD_SCHEDULE_VP_LINEAR, 10, 1e-4f, 0.02f, 7, g7), LGD_OK);
    const int t7[7] = { 9, 8, 6, 5, 3, 2, 0 }; /* 9, 7.5, 6, 4.5, 3, 1.5, 0 rounded half up */
    for (int i = 0; i < 7; i++)
        ck_assert_float_eq_tol(g7[i], (float)sqrt((1.0 - w10[t7[i]]) / w10[t7[i]]),
                               2e-6f * g7[i]);
    /* steps == num_timesteps uses every timestep */
    float gall[11];
    ck_assert_int_eq(lgd_schedule_vp(LGD_SCHEDULE_VP_LINEAR, 10, 1e-4f, 0.02f, 10, gall), LGD_OK);
    for (int i = 0; i < 10; i++)
        ck_assert_float_eq_tol(gall[i], (float)sqrt((1.0 - w10[9 - i]) / w10[9 - i]),
                               2e-6f * gall[i]);
}
END_TEST

static double cosine_f(double t)
{
    double c = cos((t + 0.008) / 1.008 * 1.5707963267948966);
    return c * c;
}

START_TEST(schedule_vp_cosine)
{
    enum { T = 1000 };
    static float ac[T];
    /* betas are ignored */
    ck_assert_int_eq(lgd_vp_alphas_cumprod(LGD_SCHEDULE_VP_COSINE, T, -5.0f, 7.0f, ac), LGD_OK);
    /* unclipped, the product telescopes: abar_t = f((t + 1) / T) / f(0) */
    for (int t = 0; t < T - 1; t++) {
        double want = cosine_f((double)(t + 1) / T) / cosine_f(0.0);
        ck_assert_msg(fabs(ac[t] - want) <= 1e-5 * want, "cosine abar[%d] = %.9g, want %.9g", t,
                      (double)ac[t], want);
        if (t > 0)
            ck_assert(ac[t] < ac[t - 1]);
    }
    /* only the last beta hits the 0.999 clip (f(1) = 0) */
    ck_assert_msg(fabs(ac[T - 1] - 0.001 * ac[T - 2]) <= 1e-5 * ac[T - 1], "abar[T-1] = %g",
                  (double)ac[T - 1]);
    ck_assert(ac[T - 1] > 0.0f);
    float g[6];
    ck_assert_int_eq(lgd_schedule_vp(LGD_SCHEDULE_VP_COSINE, T, 0.0f, 0.0f, 5, g), LGD_OK);
    const int ts[5] = { 999, 749, 500, 250, 0 }; /* 999, 749.25, 499.5, 249.75, 0 */
    for (int i = 0; i < 5; i++) {
        double a = ts[i] == T - 1 ? (double)ac[T - 1]
                                  : cosine_f((double)(ts[i] + 1) / T) / cosine_f(0.0);
        double s = sqrt((1.0 - a) / a);
        ck_assert_msg(fabs(g[i] - s) <= 2e-5 * s, "cosine sigma[%d] = %.9g, want %.9g", i,
                      (double)g[i], s);
    }
    ck_assert(g[5] == 0.0f);
}
END_TEST

START_TEST(schedule_bad_arguments)
{
    float g[64];
    const lgd_status E = LGD_ERR_INVALID_ARGUMENT;
    ck_assert_int_eq(lgd_schedule_karras(0, 0.1f, 10.0f, 7.0f, g), E);
    ck_assert_int_eq(lgd_schedule_karras(-3, 0.1f, 10.0f, 7.0f, g), E);
    ck_assert_int_eq(lgd_schedule_karras(5, 0.0f, 10.0f, 7.0f, g), E);
    ck_assert_int_eq(lgd_schedule_karras(5, -1.0f, 10.0f, 7.0f, g), E);
    ck_assert_int_eq(lgd_schedule_karras(5, 10.0f, 10.0f, 7.0f, g), E);
    ck_assert_int_eq(lgd_schedule_karras(5, 20.0f, 10.0f, 7.0f, g), E);
    ck_assert_int_eq(lgd_schedule_karras(5, 0.1f, INFINITY, 7.0f, g), E);
    ck_assert_int_eq(lgd_schedule_karras(5, NAN, 10.0f, 7.0f, g), E);
    ck_assert_int_eq(lgd_schedule_karras(5, 0.1f, NAN, 7.0f, g), E);
    ck_assert_int_eq(lgd_schedule_karras(5, 0.1f, 10.0f, 0.0f, g), E);
    ck_assert_int_eq(lgd_schedule_karras(5, 0.1f, 10.0f, NAN, g), E);
    ck_assert_int_eq(lgd_schedule_karras(5, 0.1f, 10.0f, 7.0f, NULL), E);
    /* levels that collide in float */
    ck_assert_int_eq(lgd_schedule_karras(60, 1.0f, 1.000001f, 7.0f, g), E);

    ck_assert_int_eq(lgd_vp_alphas_cumprod(LGD_SCHEDULE_VP_LINEAR, 0, 1e-4f, 0.02f, g), E);
    ck_assert_int_eq(lgd_vp_alphas_cumprod(LGD_SCHEDULE_VP_LINEAR, 10, 1e-4f, 0.02f, NULL), E);
    ck_assert_int_eq(lgd_vp_alphas_cumprod(LGD_SCHEDULE_KARRAS, 10, 1e-4f, 0.02f, g), E);
    ck_assert_int_eq(lgd_vp_alphas_cumprod(LGD_SCHEDULE_USER, 10, 1e-4f, 0.02f, g), E);
    ck_assert_int_eq(lgd_vp_alphas_cumprod((lgd_schedule_kind)42, 10, 1e-4f, 0.02f, g), E);
    ck_assert_int_eq(lgd_vp_alphas_cumprod(LGD_SCHEDULE_VP_LINEAR, 10, 0.0f, 0.02f, g), E);
    ck_assert_int_eq(lgd_vp_alphas_cumprod(LGD_SCHEDULE_VP_LINEAR, 10, 1e-4f, 1.0f, g), E);
    ck_assert_int_eq(lgd_vp_alphas_cumprod(LGD_SCHEDULE_VP_LINEAR, 10, NAN, 0.02f, g), E);
    ck_assert_int_eq(lgd_vp_alphas_cumprod(LGD_SCHEDULE_VP_LINEAR, 10, 1e-4f, -0.5f, g), E);

    ck_assert_int_eq(lgd_schedule_vp(LGD_SCHEDULE_VP_LINEAR, 10, 1e-4f, 0.02f, 0, g), E);
    ck_assert_int_eq(lgd_schedule_vp(LGD_SCHEDULE_VP_LINEAR, 10, 1e-4f, 0.02f, 11, g), E);
    ck_assert_int_eq(lgd_schedule_vp(LGD_SCHEDULE_VP_LINEAR, 0, 1e-4f, 0.02f, 1, g), E);
    ck_assert_int_eq(lgd_schedule_vp(LGD_SCHEDULE_VP_LINEAR, 10, 1e-4f, 0.02f, 5, NULL), E);
    ck_assert_int_eq(lgd_schedule_vp(LGD_SCHEDULE_KARRAS, 10, 1e-4f, 0.02f, 5, g), E);
    ck_assert_int_eq(lgd_schedule_vp(LGD_SCHEDULE_VP_LINEAR, 10, 2.0f, 0.02f, 5, g), E);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* helpers: models, guidance, samplers                                      */
/* ------------------------------------------------------------------------ */

static lgd_guidance *unguided(lgd_context *ctx, lgd_model *model)
{
    lgd_guidance_options o = LGD_GUIDANCE_OPTIONS_INIT;
    o.kind = LGD_GUIDANCE_NONE;
    lgd_guidance *g = NULL;
    TU_OK(ctx, lgd_guidance_create(ctx, model, NULL, &o, &g));
    return g;
}

/* A sampler configuration of the tables below. */
typedef struct kind_case {
    const char *name;
    lgd_sampler_kind kind;
    float eta, s_churn;
    int32_t steps; /* for the statistical tests */
} kind_case;

/* Steps: enough for the discretisation bias to stay within a few per cent
 * (first-order and ancestral samplers need more than second-order ones). */
static const kind_case KINDS[] = {
    { "euler", LGD_SAMPLER_EULER, 0.0f, 0.0f, 100 },
    { "ddim_eta0", LGD_SAMPLER_DDIM, 0.0f, 0.0f, 100 },
    { "ddim_eta1", LGD_SAMPLER_DDIM, 1.0f, 0.0f, 200 },
    { "heun", LGD_SAMPLER_HEUN, 0.0f, 0.0f, 40 },
    { "heun_churn", LGD_SAMPLER_HEUN, 0.0f, 10.0f, 40 },
    { "dpmpp_2m", LGD_SAMPLER_DPMPP_2M, 0.0f, 0.0f, 50 },
};
#define N_KINDS ((int)(sizeof KINDS / sizeof KINDS[0]))

/* Allowance for errors in the mixture weights the sampler reproduces: one
 * percentage point (weights are decided at large sigma, where every grid here
 * takes small steps; measured errors are <= 0.7 points). */
#define ALLOW_FRAC 0.01

static void case_options(const kind_case *k, int32_t steps, lgd_sampler_options *o)
{
    lgd_sampler_options_init(o, sizeof *o);
    o->kind = k->kind;
    o->eta = k->eta;
    o->s_churn = k->s_churn;
    if (k->s_churn > 0.0f) {
        o->s_tmin = 0.05f;
        o->s_tmax = 50.0f;
    }
    o->steps = steps;
}

static lgd_sampler *make_sampler(lgd_context *ctx, lgd_guidance *g, const kind_case *k,
                                 int32_t steps)
{
    lgd_sampler_options o;
    case_options(k, steps, &o);
    lgd_sampler *s = NULL;
    TU_OK(ctx, lgd_sampler_create(g, &o, &s));
    return s;
}

/* The 1-D mixture: weights 0.3 / 0.7, means -2 / 1.5, variances 0.25 / 0.5. */
static const float MIX_W[2] = { 0.3f, 0.7f }, MIX_MU[2] = { -2.0f, 1.5f },
                   MIX_VAR[2] = { 0.25f, 0.5f };

/* Exact 1-D mixture denoiser in double, used elementwise by a callback model. */
static double mix_denoise(double x, double sigma)
{
    double lw[2], m[2], mx = -INFINITY;
    double s2 = sigma * sigma;
    for (int k = 0; k < 2; k++) {
        double v = MIX_VAR[k] + s2, r = x - MIX_MU[k];
        lw[k] = log(MIX_W[k]) - 0.5 * log(v) - 0.5 * r * r / v;
        m[k] = MIX_MU[k] + MIX_VAR[k] / v * r;
        mx = lw[k] > mx ? lw[k] : mx;
    }
    double z = 0.0, acc = 0.0;
    for (int k = 0; k < 2; k++) {
        double w = exp(lw[k] - mx);
        z += w;
        acc += w * m[k];
    }
    return acc / z;
}

/* Callback models: an elementwise mixture, or a Gaussian N(m, s^2) per element. */
typedef struct cb_model {
    int gaussian;      /* 1: Gaussian N(m, s2); 0: elementwise 1-D mixture */
    double m, s2;
    float nan_below;   /* return NaN when sigma < nan_below (0: never) */
    int calls;
} cb_model;

static int cb_denoise(void *user, const float *x, float sigma, const float *cond, int64_t batch,
                      int64_t dim, float *xhat)
{
    (void)cond;
    cb_model *m = user;
    m->calls++;
    double s2 = (double)sigma * sigma;
    for (int64_t i = 0; i < batch * dim; i++) {
        if (m->gaussian)
            xhat[i] = (float)(m->m + m->s2 / (m->s2 + s2) * ((double)x[i] - m->m));
        else
            xhat[i] = (float)mix_denoise(x[i], sigma);
        if (sigma < m->nan_below)
            xhat[i] = NAN;
    }
    return 0;
}

static lgd_model *make_cb_model(lgd_context *ctx, cb_model *m, int64_t dim)
{
    lgd_model_callbacks cb = LGD_MODEL_CALLBACKS_INIT;
    cb.dim = dim;
    cb.denoise = cb_denoise;
    cb.user = m;
    lgd_model *model = NULL;
    TU_OK(ctx, lgd_model_create_callbacks(ctx, &cb, &model));
    return model;
}

static lgd_model *make_gmm1d(lgd_context *ctx)
{
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, 1, 2, MIX_W, MIX_MU, MIX_VAR, LGD_COVARIANCE_DIAGONAL,
                                    &m));
    return m;
}

/* The 16-D mixture: 3 components, full covariances Q_k diag(lam_k) Q_k^T with Q_k a
 * Householder reflection; means at pairwise distance >= 7 while no direction has
 * a std above 0.71, so "nearest mean" misclassifies with probability < 1e-6. */
enum { D16 = 16, K16 = 3 };
typedef struct gmm16 {
    float w[K16], mu[K16][D16], cov[K16][D16][D16];
} gmm16;

static void make_gmm16_params(gmm16 *p)
{
    const float w[K16] = { 0.2f, 0.5f, 0.3f };
    for (int k = 0; k < K16; k++) {
        p->w[k] = w[k];
        for (int j = 0; j < D16; j++)
            p->mu[k][j] = 0.3f; /* a common offset */
        for (int j = 0; j < 4; j++)
            p->mu[k][4 * k + j] += (k == 1 ? -2.5f : 2.5f);
        double v[D16], vv = 0.0, lam[D16];
        for (int j = 0; j < D16; j++) {
            v[j] = sin(1.0 + 0.7 * j + 2.1 * k);
            vv += v[j] * v[j];
            lam[j] = 0.05 + 0.45 * (double)((j + 5 * k) % D16) / (D16 - 1);
        }
        for (int a = 0; a < D16; a++)
            for (int b = a; b < D16; b++) {
                double acc = 0.0;
                for (int j = 0; j < D16; j++) {
                    double qa = (a == j) - 2.0 * v[a] * v[j] / vv;
                    double qb = (b == j) - 2.0 * v[b] * v[j] / vv;
                    acc += qa * lam[j] * qb;
                }
                p->cov[k][a][b] = p->cov[k][b][a] = (float)acc;
            }
    }
}

static lgd_model *make_gmm16(lgd_context *ctx, const gmm16 *p)
{
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, D16, K16, p->w, &p->mu[0][0], &p->cov[0][0][0],
                                    LGD_COVARIANCE_FULL, &m));
    return m;
}

/* A small 6-D diagonal mixture (dim not a multiple of 4: partial Philox blocks). */
enum { D6 = 6 };
static lgd_model *make_gmm6(lgd_context *ctx)
{
    const float w[2] = { 0.4f, 0.6f };
    float mu[2][D6], var[2][D6];
    for (int j = 0; j < D6; j++) {
        mu[0][j] = -1.0f + 0.1f * j;
        mu[1][j] = 1.5f - 0.2f * j;
        var[0][j] = 0.2f + 0.05f * j;
        var[1][j] = 0.6f - 0.05f * j;
    }
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, D6, 2, w, &mu[0][0], &var[0][0],
                                    LGD_COVARIANCE_DIAGONAL, &m));
    return m;
}

/* Draws n samples of dim with sampler kind k; returns the host array. */
static float *sample(lgd_context *ctx, lgd_guidance *g, const kind_case *k, int32_t steps,
                     int64_t n, int64_t dim, uint64_t seed, uint64_t first_row)
{
    lgd_sampler *s = make_sampler(ctx, g, k, steps);
    lgd_tensor *x = tu_tensor(ctx, n, dim, NULL);
    TU_OK(ctx, lgd_sampler_run(s, x, seed, first_row, NULL, NULL));
    ck_assert(lgd_sampler_done(s));
    float *h = tu_download(x);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    return h;
}

/*
 * Discretisation allowance. On a Gaussian prior N(0, lam) every sampler here is a
 * linear map plus Gaussian noise per step, x' = a x + b z, so the variance of its
 * output follows exactly from V' = a^2 V + b^2, V_0 = sigma_max^2 (DPM++(2M) is
 * deterministic: its overall factor is tracked instead). gauss_var_bias() returns
 * V_final / lam - 1: the relative variance error the sampler makes on that grid.
 * The tests allow 1.5 times the largest such error over the variances present in
 * the data (plus the weight allowance), so they are as tight as the sampler's own
 * accuracy permits.
 */
static double gauss_var_bias(const kind_case *k, int32_t n, double lam)
{
    float *g = malloc(((size_t)n + 1) * sizeof *g);
    ck_assert_int_eq(lgd_schedule_karras(n, 0.002f, 80.0f, 7.0f, g), LGD_OK);
    double V = (double)g[0] * g[0], F = 1.0, fold = 0.0;
    for (int32_t i = 0; i < n; i++) {
        double s = g[i], sn = g[i + 1];
        if (k->kind == LGD_SAMPLER_DPMPP_2M) {
            double den = lam / (lam + s * s) * F; /* D(x) = lam / (lam + s^2) x */
            if (sn == 0) {
                F = den;
            } else {
                double h = log(s) - log(sn);
                if (i == 0) {
                    F = sn / s * F - expm1(-h) * den;
                } else {
                    double r = (log((double)g[i - 1]) - log(s)) / h;
                    F = sn / s * F - expm1(-h) * ((1 + 1 / (2 * r)) * den - 1 / (2 * r) * fold);
                }
            }
            fold = den;
        } else if (k->kind == LGD_SAMPLER_HEUN) {
            double gam = 0.0;
            if (k->s_churn > 0 && 0.05 <= s && s <= 50.0) /* case_options' window */
                gam = fmin((double)k->s_churn / n, sqrt(2.0) - 1.0);
            double sh = s * (1 + gam), dt = sn - sh;
            V += sh * sh - s * s;
            double d = sh / (lam + sh * sh), a;
            if (sn == 0) {
                a = 1 + dt * d;
            } else {
                double a2 = 1 + dt * d;
                a = 1 + dt / 2 * (d + sn / (lam + sn * sn) * a2);
            }
            V *= a * a;
        } else {
            double up = 0.0, down = sn;
            if (k->kind == LGD_SAMPLER_DDIM && sn > 0) {
                up = fmin(sn, k->eta * sqrt(sn * sn * (s * s - sn * sn) / (s * s)));
                down = sqrt(sn * sn - up * up);
            }
            double a = 1 + (down - s) * s / (lam + s * s);
            V = a * a * V + up * up;
        }
    }
    free(g);
    if (k->kind == LGD_SAMPLER_DPMPP_2M)
        V *= F * F;
    return V / lam - 1.0;
}

/* 1.5 max |bias| over lam in [lam_lo, lam_hi] (log grid), plus 1 point for weights */
static double var_allowance(const kind_case *k, double lam_lo, double lam_hi)
{
    double worst = 0.0;
    for (int i = 0; i <= 8; i++) {
        double lam = lam_lo * pow(lam_hi / lam_lo, i / 8.0);
        worst = fmax(worst, fabs(gauss_var_bias(k, k->steps, lam)));
    }
    return 1.5 * worst + ALLOW_FRAC;
}

static double phi(double z) { return 0.5 * erfc(-z / sqrt(2.0)); }

/* |est - truth| <= 5 se + allow, with a readable message */
#define CHECK_STAT(what, est, truth, se, allow)                                              \
    ck_assert_msg(fabs((est) - (truth)) <= 5.0 * (se) + (allow),                             \
                  "%s %s: %.5f vs true %.5f (|diff| %.5f > 5 se %.5f + allowance %.5f)",    \
                  k->name, what, (double)(est), (double)(truth), fabs((est) - (truth)),     \
                  5.0 * (se), (double)(allow))

/* ------------------------------------------------------------------------ */
/* statistical tests: Gaussian mixtures                                     */
/* ------------------------------------------------------------------------ */

START_TEST(sampler_gmm_1d)
{
    const kind_case *k = &KINDS[_i];
    const int64_t N = quick() ? 1000 : 20000;
    lgd_context *ctx = tu_context(0);
    lgd_model *model = make_gmm1d(ctx);
    lgd_guidance *g = unguided(ctx, model);
    float *x = sample(ctx, g, k, k->steps, N, 1, 1234, 0);

    double mean = 0.0, tvar = 0.0, m4 = 0.0, tmean = 0.0, t2 = 0.0;
    for (int c = 0; c < 2; c++) {
        tmean += MIX_W[c] * MIX_MU[c];
        t2 += MIX_W[c] * ((double)MIX_VAR[c] + (double)MIX_MU[c] * MIX_MU[c]);
    }
    tvar = t2 - tmean * tmean;
    double bnd = 0.5 * (MIX_MU[0] + MIX_MU[1]);
    double tfrac = MIX_W[0] * phi((bnd - MIX_MU[0]) / sqrt(MIX_VAR[0])) +
                   MIX_W[1] * phi((bnd - MIX_MU[1]) / sqrt(MIX_VAR[1]));
    long near0 = 0;
    for (int64_t i = 0; i < N; i++) {
        ck_assert(isfinite(x[i]));
        mean += x[i];
        near0 += x[i] < bnd;
    }
    mean /= (double)N;
    double var = 0.0;
    for (int64_t i = 0; i < N; i++)
        var += (x[i] - mean) * (x[i] - mean);
    var /= (double)(N - 1);
    for (int64_t i = 0; i < N; i++) {
        double e = (x[i] - mean) * (x[i] - mean) - var;
        m4 += e * e;
    }
    double se_mean = sqrt(var / N), se_var = sqrt(m4 / (N - 1) / N);
    double frac = (double)near0 / N, se_frac = sqrt(tfrac * (1 - tfrac) / N);
    if (verbose())
        fprintf(stderr,
                "1-D GMM %-10s N=%lld steps=%d: mean %.4f (true %.4f, se %.4f), var %.4f "
                "(true %.4f, se %.4f), frac0 %.4f (true %.4f, se %.4f)\n",
                k->name, (long long)N, (int)k->steps, mean, tmean, se_mean, var, tvar, se_var,
                frac, tfrac, se_frac);
    /* a weight error of ALLOW_FRAC moves the mean by ALLOW_FRAC * |mu_1 - mu_0| */
    double allow_mean = ALLOW_FRAC * fabs(MIX_MU[1] - MIX_MU[0]);
    double allow_var = var_allowance(k, MIX_VAR[0], tvar);
    if (verbose())
        fprintf(stderr, "    allowances: mean %.4f, variance %.2f%%, fraction %.4f\n", allow_mean,
                100 * allow_var, ALLOW_FRAC);
    CHECK_STAT("mean", mean, tmean, se_mean, allow_mean);
    CHECK_STAT("variance", var, tvar, se_var, allow_var * tvar);
    CHECK_STAT("fraction nearest -2", frac, tfrac, se_frac, ALLOW_FRAC);
    free(x);
    lgd_guidance_destroy(g);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(sampler_gmm_16d)
{
    const kind_case *k = &KINDS[_i];
    const int64_t N = quick() ? 1000 : 20000;
    lgd_context *ctx = tu_context(0);
    gmm16 p;
    make_gmm16_params(&p);
    lgd_model *model = make_gmm16(ctx, &p);
    lgd_guidance *g = unguided(ctx, model);
    float *x = sample(ctx, g, k, k->steps, N, D16, 99, 0);

    /* truth */
    double tm[D16] = { 0 }, tc[D16][D16];
    for (int a = 0; a < D16; a++)
        for (int c = 0; c < K16; c++)
            tm[a] += p.w[c] * p.mu[c][a];
    for (int a = 0; a < D16; a++)
        for (int b = 0; b < D16; b++) {
            double acc = 0.0;
            for (int c = 0; c < K16; c++)
                acc += p.w[c] * ((double)p.cov[c][a][b] + (double)p.mu[c][a] * p.mu[c][b]);
            tc[a][b] = acc - tm[a] * tm[b];
        }
    /* sample moments */
    static double sm[D16], sc[D16][D16], sc2[D16][D16];
    memset(sm, 0, sizeof sm);
    memset(sc, 0, sizeof sc);
    memset(sc2, 0, sizeof sc2);
    long nearest[K16] = { 0 };
    for (int64_t i = 0; i < N; i++) {
        const float *r = x + i * D16;
        double best = INFINITY;
        int bk = 0;
        for (int c = 0; c < K16; c++) {
            double d2 = 0.0;
            for (int a = 0; a < D16; a++)
                d2 += (r[a] - p.mu[c][a]) * (r[a] - p.mu[c][a]);
            if (d2 < best) {
                best = d2;
                bk = c;
            }
        }
        nearest[bk]++;
        for (int a = 0; a < D16; a++) {
            ck_assert(isfinite(r[a]));
            sm[a] += r[a];
        }
    }
    for (int a = 0; a < D16; a++)
        sm[a] /= (double)N;
    for (int64_t i = 0; i < N; i++) {
        const float *r = x + i * D16;
        for (int a = 0; a < D16; a++)
            for (int b = a; b < D16; b++) {
                double v = (r[a] - sm[a]) * (r[b] - sm[b]);
                sc[a][b] += v;
                sc2[a][b] += v * v;
            }
    }
    /* allowances: a weight error of ALLOW_FRAC moves mean[a] by at most ALLOW_FRAC *
     * max_k |mu_k[a] - m[a]| * 2 and cov[a][b] by 2 ALLOW_FRAC max_k |(mu_k - m)_a (mu_k - m)_b|;
     * the variance allowance covers eigenvalues 0.05 to the largest marginal variance */
    double lam_hi = 0.0, dev[K16][D16];
    for (int a = 0; a < D16; a++) {
        lam_hi = fmax(lam_hi, tc[a][a]);
        for (int c = 0; c < K16; c++)
            dev[c][a] = p.mu[c][a] - tm[a];
    }
    double allow_var = var_allowance(k, 0.05, lam_hi);
    if (verbose())
        fprintf(stderr, "    variance allowance %.2f%%\n", 100 * allow_var);
    double worst_mean = 0.0, worst_cov = 0.0;
    for (int a = 0; a < D16; a++) {
        double se = sqrt(sc[a][a] / (N - 1) / N);
        double spread = 0.0;
        for (int c = 0; c < K16; c++)
            spread = fmax(spread, fabs(dev[c][a]));
        char what[48];
        snprintf(what, sizeof what, "mean[%d]", a);
        CHECK_STAT(what, sm[a], tm[a], se, 2 * ALLOW_FRAC * spread);
        worst_mean = fmax(worst_mean, fabs(sm[a] - tm[a]) / se);
    }
    for (int a = 0; a < D16; a++)
        for (int b = a; b < D16; b++) {
            double c = sc[a][b] / (N - 1);
            double var_v = sc2[a][b] / N - c * c;
            double se = sqrt(var_v / N);
            /* allowance relative to the scale sqrt(var_a var_b) */
            double between = 0.0;
            for (int q = 0; q < K16; q++)
                between = fmax(between, fabs(dev[q][a] * dev[q][b]));
            double allow = allow_var * sqrt(tc[a][a] * tc[b][b]) + 2 * ALLOW_FRAC * between;
            char what[48];
            snprintf(what, sizeof what, "cov[%d][%d]", a, b);
            CHECK_STAT(what, c, tc[a][b], se, allow);
            worst_cov = fmax(worst_cov, fabs(c - tc[a][b]) / se);
        }
    double worst_frac = 0.0;
    for (int c = 0; c < K16; c++) {
        double f = (double)nearest[c] / N, t = p.w[c];
        double se = sqrt(t * (1 - t) / N);
        char what[48];
        snprintf(what, sizeof what, "fraction nearest component %d", c);
        CHECK_STAT(what, f, t, se, ALLOW_FRAC);
        worst_frac = fmax(worst_frac, fabs(f - t) / se);
    }
    if (verbose())
        fprintf(stderr,
                "16-D GMM %-10s N=%lld steps=%d: worst |error|/se: mean %.2f, cov %.2f, "
                "fractions %.2f (%.4f %.4f %.4f vs 0.2 0.5 0.3)\n",
                k->name, (long long)N, (int)k->steps, worst_mean, worst_cov, worst_frac,
                (double)nearest[0] / N, (double)nearest[1] / N, (double)nearest[2] / N);
    free(x);
    lgd_guidance_destroy(g);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* exact tests: 1-D Gaussian prior, double-precision reference samplers      */
/* ------------------------------------------------------------------------ */

static double gauss_d(double x, double sigma, double m, double s2)
{
    return m + s2 / (s2 + sigma * sigma) * (x - m);
}

/* The normal the library draws for (seed, purpose, step, row) in 1-D. */
static double ref_normal(uint64_t seed, uint32_t purpose, uint32_t step, uint64_t row)
{
    float z[4];
    lgd_philox_normal4(0u, (uint32_t)row, 0u, lgd_rng_tag(purpose, step), seed, z);
    return z[0];
}

/* Runs sampler case k over grid sig[0..steps] from x0 for one row, in double. */
static double ref_sample(const kind_case *k, const lgd_sampler_options *o, const float *sig,
                         int32_t steps, double x, double m, double s2, uint64_t seed,
                         uint64_t row)
{
    double old = 0.0;
    for (int32_t i = 0; i < steps; i++) {
        double s = sig[i], sn = sig[i + 1];
        if (k->kind == LGD_SAMPLER_EULER || k->kind == LGD_SAMPLER_DDIM) {
            double den = gauss_d(x, s, m, s2);
            double up = 0.0, down = sn;
            if (k->kind == LGD_SAMPLER_DDIM && sn > 0) {
                up = fmin(sn, o->eta * sqrt(sn * sn * (s * s - sn * sn) / (s * s)));
                down = sqrt(sn * sn - up * up);
            }
            x = x + (down - s) * (x - den) / s;
            if (up > 0)
                x += up * ref_normal(seed, LGD_RNG_ANCESTRAL, (uint32_t)i, row);
        } else if (k->kind == LGD_SAMPLER_HEUN) {
            double gamma = 0.0;
            if (o->s_tmin <= s && s <= o->s_tmax)
                gamma = fmin((double)o->s_churn / (double)steps, sqrt(2.0) - 1.0);
            double sh = (float)(s * (1 + gamma));
            if (gamma > 0)
                x += sqrt(sh * sh - s * s) * o->s_noise *
                     ref_normal(seed, LGD_RNG_CHURN, (uint32_t)i, row);
            double d = (x - gauss_d(x, sh, m, s2)) / sh, dt = sn - sh;
            if (sn == 0) {
                x = x + d * dt;
            } else {
                double x2 = x + d * dt;
                double d2 = (x2 - gauss_d(x2, sn, m, s2)) / sn;
                x = x + (d + d2) / 2 * dt;
            }
        } else { /* DPM-Solver++(2M), k-diffusion sample_dpmpp_2m */
            double den = gauss_d(x, s, m, s2);
            if (sn == 0) {
                x = den;
            } else {
                double t = -log(s), tn = -log(sn), h = tn - t;
                if (i == 0) {
                    x = (sn / s) * x - expm1(-h) * den;
                } else {
                    double r = (t + log((double)sig[i - 1])) / h;
                    double dd = (1 + 1 / (2 * r)) * den - 1 / (2 * r) * old;
                    x = (sn / s) * x - expm1(-h) * dd;
                }
            }
            old = den;
        }
    }
    return x;
}

START_TEST(sampler_gaussian_reference)
{
    /* every sampler kind, noise included, against the scalar reference */
    const double m = 0.7, s2 = 0.36;
    const int64_t B = 64;
    const uint64_t seed = 5, first_row = 1000;
    lgd_context *ctx = tu_context(0);
    cb_model cm = { 1, m, s2, 0.0f, 0 };
    lgd_model *model = make_cb_model(ctx, &cm, 1);
    lgd_guidance *g = unguided(ctx, model);
    for (int ki = 0; ki < N_KINDS; ki++) {
        const kind_case *k = &KINDS[ki];
        lgd_sampler_options o;
        case_options(k, 25, &o);
        if (k->s_churn > 0)
            o.s_noise = 1.007f;
        lgd_sampler *s = NULL;
        TU_OK(ctx, lgd_sampler_create(g, &o, &s));
        float sig[26];
        TU_OK(ctx, lgd_sampler_sigmas(s, sig, 26));
        lgd_tensor *x = tu_tensor(ctx, B, 1, NULL);
        TU_OK(ctx, lgd_sampler_init(s, x, seed, first_row));
        float *x0 = tu_download(x);
        /* the initial noise is sigma_max times the documented Philox normal */
        for (int64_t r = 0; r < B; r++)
            ck_assert(x0[r] == sig[0] * (float)ref_normal(seed, LGD_RNG_INIT, 0, first_row + r));
        while (!lgd_sampler_done(s))
            TU_OK(ctx, lgd_sampler_step(s, x, NULL));
        float *xf = tu_download(x);
        double worst = 0.0;
        for (int64_t r = 0; r < B; r++) {
            double want = ref_sample(k, &o, sig, 25, x0[r], m, s2, seed, first_row + r);
            double err = fabs(xf[r] - want) / (1e-3 + fabs(want));
            worst = fmax(worst, err);
            ck_assert_msg(err < 2e-4, "%s row %lld: %.7f, reference %.7f", k->name,
                          (long long)r, (double)xf[r], want);
        }
        if (verbose())
            fprintf(stderr, "reference %-10s: worst relative error %.2e\n", k->name, worst);
        free(x0);
        free(xf);
        lgd_tensor_destroy(x);
        lgd_sampler_destroy(s);
    }
    lgd_guidance_destroy(g);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(sampler_gaussian_ode_limit)
{
    /* On N(m, s^2) the probability-flow ODE maps x_T to
     *   x_0 = m + F (x_T - m),  F = s / sqrt(s^2 + sigma_max^2),
     * and every deterministic sampler is a linear map x_0 = m + F_N (x_T - m).
     * F_N (fitted by least squares over the batch) must converge to F at the
     * sampler's order: the error halves (Euler, first order) or quarters (Heun,
     * DPM++(2M), second order) when the number of steps doubles. Errors at the
     * finer grid (from the double-precision recursion): Euler 1000 steps 2.4e-3,
     * Heun 100 steps 1.1e-3, DPM++(2M) 200 steps 2.6e-4. */
    const double m = -1.3, s2 = 2.25, s = 1.5;
    const int64_t B = quick() ? 64 : 256;
    lgd_context *ctx = tu_context(0);
    cb_model cm = { 1, m, s2, 0.0f, 0 };
    lgd_model *model = make_cb_model(ctx, &cm, 1);
    lgd_guidance *g = unguided(ctx, model);
    const struct {
        int kind_index;
        int32_t steps;   /* coarse; fine = 2 steps */
        double tol;      /* on |F_N / F - 1| at the fine grid */
        double ratio_lo, ratio_hi;
    } runs[] = { { 0, 500, 3e-3, 1.8, 2.2 },
                 { 3, 50, 1.5e-3, 3.5, 4.8 },
                 { 5, 100, 4e-4, 3.5, 4.8 } };
    for (size_t ri = 0; ri < sizeof runs / sizeof runs[0]; ri++) {
        const kind_case *k = &KINDS[runs[ri].kind_index];
        double err[2];
        for (int fine = 0; fine < 2; fine++) {
            int32_t steps = runs[ri].steps * (fine + 1);
            lgd_sampler *smp = make_sampler(ctx, g, k, steps);
            lgd_tensor *x = tu_tensor(ctx, B, 1, NULL);
            TU_OK(ctx, lgd_sampler_init(smp, x, 77, 0));
            float *xt = tu_download(x);
            double smax = lgd_sampler_sigma(smp);
            ck_assert(smax == 80.0);
            while (!lgd_sampler_done(smp))
                TU_OK(ctx, lgd_sampler_step(smp, x, NULL));
            float *x0 = tu_download(x);
            double sxy = 0.0, sxx = 0.0, F = s / sqrt(s2 + smax * smax);
            for (int64_t r = 0; r < B; r++) {
                sxy += (x0[r] - m) * (xt[r] - m);
                sxx += (xt[r] - m) * (xt[r] - m);
            }
            double FN = sxy / sxx, resid = 0.0;
            for (int64_t r = 0; r < B; r++)
                resid = fmax(resid, fabs(x0[r] - (m + FN * (xt[r] - m))));
            err[fine] = FN / F - 1.0;
            if (verbose())
                fprintf(stderr,
                        "ODE limit %-10s %4d steps: F_N / F - 1 = %+.3e, max residual of the "
                        "linear map %.1e\n",
                        k->name, (int)steps, err[fine], resid);
            /* deterministic and linear: nothing but float rounding off the line */
            ck_assert_msg(resid < 1e-5 * s, "%s: residual %g", k->name, resid);
            free(xt);
            free(x0);
            lgd_tensor_destroy(x);
            lgd_sampler_destroy(smp);
        }
        double ratio = err[0] / err[1];
        ck_assert_msg(fabs(err[1]) < runs[ri].tol, "%s, %d steps: F_N / F - 1 = %g", k->name,
                      (int)(2 * runs[ri].steps), err[1]);
        ck_assert_msg(ratio > runs[ri].ratio_lo && ratio < runs[ri].ratio_hi,
                      "%s: error ratio %g between %d and %d steps outside [%g, %g]", k->name,
                      ratio, (int)runs[ri].steps, (int)(2 * runs[ri].steps), runs[ri].ratio_lo,
                      runs[ri].ratio_hi);
    }
    lgd_guidance_destroy(g);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* reproducibility                                                          */
/* ------------------------------------------------------------------------ */

/* Samples rows [first_row, first_row + n) with kind k on model (dim) in ctx. */
static float *run_rows(lgd_context *ctx, lgd_model *model, const kind_case *k, int64_t n,
                       int64_t dim, uint64_t seed, uint64_t first_row)
{
    lgd_guidance *g = unguided(ctx, model);
    lgd_sampler_options o;
    case_options(k, 12, &o);
    o.s_noise = 1.003f;
    lgd_sampler *s = NULL;
    TU_OK(ctx, lgd_sampler_create(g, &o, &s));
    lgd_tensor *x = tu_tensor(ctx, n, dim, NULL);
    TU_OK(ctx, lgd_sampler_run(s, x, seed, first_row, NULL, NULL));
    float *h = tu_download(x);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    return h;
}

START_TEST(sampler_same_seed_same_bytes)
{
    const kind_case *k = &KINDS[_i];
    lgd_context *ctx = tu_context(0);
    lgd_model *model = make_gmm6(ctx);
    const int64_t n = 64;
    float *a = run_rows(ctx, model, k, n, D6, 42, 0);
    float *b = run_rows(ctx, model, k, n, D6, 42, 0);
    float *c = run_rows(ctx, model, k, n, D6, 43, 0);
    ck_assert_msg(memcmp(a, b, (size_t)(n * D6) * sizeof(float)) == 0,
                  "%s: same seed, different bytes", k->name);
    ck_assert_msg(memcmp(a, c, (size_t)(n * D6) * sizeof(float)) != 0,
                  "%s: different seeds, same bytes", k->name);
    free(a);
    free(b);
    free(c);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

/* model 0: callback (row-wise double code, bit-reproducible by construction);
 * model 1: the library's Gaussian mixture */
static lgd_model *split_model(lgd_context *ctx, int which, cb_model *cm)
{
    if (which == 0) {
        cm->gaussian = 0;
        return make_cb_model(ctx, cm, D6);
    }
    return make_gmm6(ctx);
}

START_TEST(sampler_batch_split)
{
    for (int which = 0; which < 2; which++)
        for (int ki = 0; ki < N_KINDS; ki++) {
            const kind_case *k = &KINDS[ki];
            lgd_context *ctx = tu_context(0);
            cb_model cm = { 0, 0, 0, 0.0f, 0 };
            lgd_model *model = split_model(ctx, which, &cm);
            float *all = run_rows(ctx, model, k, 8, D6, 7, 0);
            float *lo = run_rows(ctx, model, k, 4, D6, 7, 0);
            float *hi = run_rows(ctx, model, k, 4, D6, 7, 4);
            ck_assert_msg(memcmp(all, lo, 4 * D6 * sizeof(float)) == 0,
                          "%s (%s model): rows 0..3 differ when sampled alone", k->name,
                          which ? "gmm" : "callback");
            ck_assert_msg(memcmp(all + 4 * D6, hi, 4 * D6 * sizeof(float)) == 0,
                          "%s (%s model): rows 4..7 differ when sampled with first_row 4",
                          k->name, which ? "gmm" : "callback");
            free(all);
            free(lo);
            free(hi);
            lgd_model_destroy(model);
            lgd_context_destroy(ctx);
        }
}
END_TEST

START_TEST(sampler_thread_count)
{
    /* large enough (22528 x 6 > 131072 elements, LGD_CPU_PAR_MIN_WORK) for the backend to go parallel; in
     * quick mode (valgrind) below that threshold: libgomp's pool threads, alive at
     * exit, show up as "possibly lost" thread stacks */
    const int64_t n = quick() ? 1024 : 22528;
    for (int which = 0; which < 2; which++)
        for (int ki = 0; ki < N_KINDS; ki++) {
            const kind_case *k = &KINDS[ki];
            float *res[2];
            for (int t = 0; t < 2; t++) {
                lgd_context *ctx = tu_context(t + 1);
                cb_model cm = { 0, 0, 0, 0.0f, 0 };
                lgd_model *model = split_model(ctx, which, &cm);
                res[t] = run_rows(ctx, model, k, n, D6, 11, 0);
                lgd_model_destroy(model);
                lgd_context_destroy(ctx);
            }
            ck_assert_msg(memcmp(res[0], res[1], (size_t)(n * D6) * sizeof(float)) == 0,
                          "%s (%s model): 1 and 2 threads give different bytes", k->name,
                          which ? "gmm" : "callback");
            free(res[0]);
            free(res[1]);
        }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* schedules in the sampler                                                  */
/* ------------------------------------------------------------------------ */

START_TEST(sampler_user_sigmas)
{
    const double m = 0.2, s2 = 0.8;
    lgd_context *ctx = tu_context(0);
    cb_model cm = { 1, m, s2, 0.0f, 0 };
    lgd_model *model = make_cb_model(ctx, &cm, 1);
    lgd_guidance *g = unguided(ctx, model);
    const float user[7] = { 20.0f, 8.0f, 3.0f, 1.0f, 0.3f, 0.05f, 0.0f };
    float *out[2];
    for (int with_zero = 0; with_zero < 2; with_zero++) {
        lgd_sampler_options o = LGD_SAMPLER_OPTIONS_INIT;
        o.schedule = LGD_SCHEDULE_USER;
        o.steps = 999; /* ignored */
        float copy[7];
        memcpy(copy, user, sizeof copy);
        o.sigmas = copy;
        o.n_sigmas = with_zero ? 7 : 6;
        lgd_sampler *s = NULL;
        TU_OK(ctx, lgd_sampler_create(g, &o, &s));
        memset(copy, 0, sizeof copy); /* the sampler keeps its own copy */
        ck_assert_int_eq(lgd_sampler_num_steps(s), 6);
        float grid[8] = { 0 };
        TU_OK(ctx, lgd_sampler_sigmas(s, grid, 8)); /* a larger array is fine */
        ck_assert(memcmp(grid, user, sizeof user) == 0);
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_sampler_sigmas(s, grid, 6));
        lgd_tensor *x = tu_tensor(ctx, 32, 1, NULL);
        TU_OK(ctx, lgd_sampler_init(s, x, 3, 0));
        float *xt = tu_download(x);
        ck_assert_float_eq(lgd_sampler_sigma(s), 20.0f);
        TU_OK(ctx, lgd_sampler_run(s, x, 3, 0, NULL, NULL));
        out[with_zero] = tu_download(x);
        lgd_sampler_options eo;
        case_options(&KINDS[0], 6, &eo);
        for (int r = 0; r < 32; r++) {
            double want = ref_sample(&KINDS[0], &eo, user, 6, xt[r], m, s2, 3, (uint64_t)r);
            ck_assert_msg(fabs(out[with_zero][r] - want) < 1e-4 * (1 + fabs(want)),
                          "user grid row %d: %g vs %g", r, (double)out[with_zero][r], want);
        }
        free(xt);
        lgd_tensor_destroy(x);
        lgd_sampler_destroy(s);
    }
    ck_assert(memcmp(out[0], out[1], 32 * sizeof(float)) == 0);
    free(out[0]);
    free(out[1]);

    /* a single level: one step from it to 0 */
    lgd_sampler_options o = LGD_SAMPLER_OPTIONS_INIT;
    o.schedule = LGD_SCHEDULE_USER;
    const float one = 2.0f;
    o.sigmas = &one;
    o.n_sigmas = 1;
    lgd_sampler *s = NULL;
    TU_OK(ctx, lgd_sampler_create(g, &o, &s));
    ck_assert_int_eq(lgd_sampler_num_steps(s), 1);
    lgd_sampler_destroy(s);

    /* bad grids */
    const float inc[3] = { 1.0f, 2.0f, 0.5f }, eq[3] = { 2.0f, 2.0f, 1.0f },
                neg[3] = { 2.0f, 1.0f, -0.5f }, mid0[4] = { 2.0f, 0.0f, 0.0f, 0.0f },
                nan3[3] = { 2.0f, NAN, 1.0f }, inf3[3] = { INFINITY, 2.0f, 1.0f },
                zero1[1] = { 0.0f };
    const struct {
        const float *v;
        int32_t n;
    } bad[] = { { inc, 3 }, { eq, 3 }, { neg, 3 }, { mid0, 4 }, { nan3, 3 },
                { inf3, 3 }, { zero1, 1 }, { NULL, 3 }, { inc, 0 }, { inc, -1 } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.sigmas = bad[i].v;
        o.n_sigmas = bad[i].n;
        s = (lgd_sampler *)&o; /* must be reset to NULL */
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_create(g, &o, &s));
        ck_assert_ptr_null(s);
    }
    lgd_guidance_destroy(g);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(sampler_vp_schedules)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *model = make_gmm1d(ctx);
    lgd_guidance *g = unguided(ctx, model);
    for (int c = 0; c < 2; c++) {
        lgd_schedule_kind sk = c ? LGD_SCHEDULE_VP_COSINE : LGD_SCHEDULE_VP_LINEAR;
        lgd_sampler_options o = LGD_SAMPLER_OPTIONS_INIT;
        o.schedule = sk;
        o.steps = 50;
        o.kind = LGD_SAMPLER_DPMPP_2M;
        lgd_sampler *s = NULL;
        TU_OK(ctx, lgd_sampler_create(g, &o, &s));
        float want[51], got[51];
        ck_assert_int_eq(lgd_schedule_vp(sk, 1000, 1e-4f, 0.02f, 50, want), LGD_OK);
        TU_OK(ctx, lgd_sampler_sigmas(s, got, 51));
        ck_assert(memcmp(want, got, sizeof want) == 0);
        lgd_tensor *x = tu_tensor(ctx, 256, 1, NULL);
        TU_OK(ctx, lgd_sampler_run(s, x, 1, 0, NULL, NULL));
        float *h = tu_download(x);
        double mean = 0.0;
        for (int i = 0; i < 256; i++)
            mean += h[i] / 256.0;
        /* true mean 0.45, std 1.73: 5 se = 0.54 */
        ck_assert_msg(fabs(mean - 0.45) < 0.6, "VP %d: mean %g", c, mean);
        free(h);
        lgd_tensor_destroy(x);
        lgd_sampler_destroy(s);
    }
    lgd_guidance_destroy(g);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* state machine, memory and bad input                                      */
/* ------------------------------------------------------------------------ */

START_TEST(sampler_state_and_memory)
{
    const kind_case *k = &KINDS[_i];
    lgd_context *ctx = tu_context(0);
    lgd_model *model = make_gmm6(ctx);
    lgd_guidance *g = unguided(ctx, model);
    lgd_sampler *s = make_sampler(ctx, g, k, 6);
    ck_assert_int_eq(lgd_sampler_num_steps(s), 6);
    float grid[7];
    TU_OK(ctx, lgd_sampler_sigmas(s, grid, 7));
    lgd_tensor *x = tu_tensor(ctx, 16, D6, NULL);
    lgd_tensor *small = tu_tensor(ctx, 8, D6, NULL);
    lgd_tensor *wrong_dim = tu_tensor(ctx, 16, D6 + 1, NULL);

    /* before init */
    ck_assert_int_eq(lgd_sampler_step_index(s), 0);
    ck_assert(lgd_sampler_sigma(s) == grid[0]);
    ck_assert(!lgd_sampler_done(s));
    TU_FAILS(ctx, LGD_ERR_STATE, lgd_sampler_step(s, x, NULL));

    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_init(s, NULL, 1, 0));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_sampler_init(s, wrong_dim, 1, 0));
    TU_OK(ctx, lgd_sampler_init(s, x, 1, 0));
    ck_assert_int_eq(lgd_sampler_step_index(s), 0);
    ck_assert(lgd_sampler_sigma(s) == grid[0]);

    /* mismatched batch or dim: refused without spoiling the run */
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_sampler_step(s, small, NULL));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_sampler_step(s, wrong_dim, NULL));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_step(s, NULL, NULL));
    ck_assert_int_eq(lgd_sampler_step_index(s), 0);

    lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
    TU_OK(ctx, lgd_sampler_step(s, x, &rep));
    ck_assert_int_eq(lgd_sampler_step_index(s), 1);
    ck_assert(lgd_sampler_sigma(s) == grid[1]);
    size_t cur1 = 0, peak1 = 0;
    lgd_context_memory_usage(ctx, &cur1, &peak1);
    for (int i = 1; i < 6; i++) {
        ck_assert(!lgd_sampler_done(s));
        TU_OK(ctx, lgd_sampler_step(s, x, &rep));
        ck_assert_int_eq(lgd_sampler_step_index(s), i + 1);
    }
    size_t cur2 = 0, peak2 = 0;
    lgd_context_memory_usage(ctx, &cur2, &peak2);
    ck_assert_msg(cur2 == cur1 && peak2 == peak1,
                  "%s: backend memory grew during the steps (%zu/%zu -> %zu/%zu bytes)",
                  k->name, cur1, peak1, cur2, peak2);
    ck_assert(lgd_sampler_done(s));
    ck_assert(lgd_sampler_sigma(s) == 0.0f);
    ck_assert_int_eq(lgd_sampler_step_index(s), 6);
    TU_FAILS(ctx, LGD_ERR_STATE, lgd_sampler_step(s, x, NULL));

    /* a smaller batch reuses the scratch buffers */
    TU_OK(ctx, lgd_sampler_init(s, small, 1, 0));
    while (!lgd_sampler_done(s))
        TU_OK(ctx, lgd_sampler_step(s, small, NULL));
    lgd_context_memory_usage(ctx, &cur2, &peak2);
    ck_assert_msg(cur2 <= cur1 && peak2 == peak1, "%s: memory grew for a smaller batch",
                  k->name);
    /* the smaller run's first rows equal the larger run's (same seed, first_row) */
    float *hx = tu_download(x), *hs = tu_download(small);
    ck_assert(memcmp(hx, hs, 8 * D6 * sizeof(float)) == 0);
    free(hx);
    free(hs);

    /* x from another context */
    lgd_context *other = tu_context(1);
    lgd_tensor *ox = tu_tensor(other, 16, D6, NULL);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_init(s, ox, 1, 0));
    lgd_tensor_destroy(ox);
    lgd_context_destroy(other);

    lgd_tensor_destroy(x);
    lgd_tensor_destroy(small);
    lgd_tensor_destroy(wrong_dim);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(sampler_objects_lifetime)
{
    /* the sampler keeps its guidance (and context) alive */
    lgd_context *ctx = tu_context(0);
    lgd_model *model = make_gmm1d(ctx);
    lgd_guidance *g = unguided(ctx, model);
    lgd_sampler *s = NULL;
    TU_OK(ctx, lgd_sampler_create(g, NULL, &s)); /* NULL options: defaults */
    ck_assert_int_eq(lgd_sampler_num_steps(s), 20);
    lgd_tensor *x = tu_tensor(ctx, 10, 1, NULL);
    lgd_guidance_destroy(g);
    lgd_model_destroy(model);
    TU_OK(ctx, lgd_sampler_run(s, x, 0, 0, NULL, NULL));
    lgd_tensor_destroy(x);
    lgd_context_destroy(ctx);
    lgd_sampler_destroy(s); /* last reference to everything */
}
END_TEST

START_TEST(sampler_bad_options)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *model = make_gmm1d(ctx);
    lgd_guidance *g = unguided(ctx, model);
    lgd_sampler *s = NULL;
    lgd_sampler_options o;

    ck_assert_int_eq(lgd_sampler_create(NULL, NULL, &s), LGD_ERR_INVALID_ARGUMENT);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_create(g, NULL, NULL));

#define BAD_OPTION(field, value)                                                            \
    do {                                                                                    \
        lgd_sampler_options_init(&o, sizeof o);                                             \
        o.field = value;                                                                    \
        s = NULL;                                                                           \
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_create(g, &o, &s));             \
        ck_assert_ptr_null(s);                                                              \
    } while (0)
    BAD_OPTION(struct_size, 0);
    BAD_OPTION(struct_size, 3);
    BAD_OPTION(kind, (lgd_sampler_kind)4);
    BAD_OPTION(kind, (lgd_sampler_kind)-1);
    BAD_OPTION(steps, 0);
    BAD_OPTION(steps, -5);
    BAD_OPTION(schedule, (lgd_schedule_kind)17);
    BAD_OPTION(sigma_min, 0.0f);
    BAD_OPTION(sigma_min, NAN);
    BAD_OPTION(sigma_max, 0.001f);
    BAD_OPTION(sigma_max, INFINITY);
    BAD_OPTION(rho, 0.0f);
    BAD_OPTION(rho, -7.0f);
    BAD_OPTION(eta, -0.1f);
    BAD_OPTION(eta, 1.5f);
    BAD_OPTION(eta, NAN);
    BAD_OPTION(s_churn, -1.0f);
    BAD_OPTION(s_churn, INFINITY);
    BAD_OPTION(s_noise, -1.0f);
    BAD_OPTION(s_noise, NAN);
    BAD_OPTION(s_tmin, -1.0f);
    BAD_OPTION(s_tmax, -1.0f);
    BAD_OPTION(s_tmax, NAN);
    BAD_OPTION(schedule, LGD_SCHEDULE_USER); /* no array */
#undef BAD_OPTION
    /* VP specifics */
    lgd_sampler_options_init(&o, sizeof o);
    o.schedule = LGD_SCHEDULE_VP_LINEAR;
    o.vp_beta_start = 0.0f;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_create(g, &o, &s));
    o.vp_beta_start = 1e-4f;
    o.vp_timesteps = 0;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_create(g, &o, &s));
    o.vp_timesteps = 10;
    o.steps = 11;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_create(g, &o, &s));
    o.steps = 10;
    TU_OK(ctx, lgd_sampler_create(g, &o, &s));
    lgd_sampler_destroy(s);
    /* Karras levels that collide in float */
    lgd_sampler_options_init(&o, sizeof o);
    o.sigma_min = 1.0f;
    o.sigma_max = 1.000001f;
    o.steps = 50;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_create(g, &o, &s));

    /* options_init equals the macro; NULL is harmless */
    lgd_sampler_options m = LGD_SAMPLER_OPTIONS_INIT;
    ck_assert_int_eq(lgd_sampler_options_init(&o, sizeof o), LGD_OK);
    ck_assert_int_eq(lgd_sampler_options_init(NULL, sizeof o), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(o.struct_size, sizeof o);
    ck_assert(o.kind == m.kind && o.steps == m.steps && o.schedule == m.schedule &&
              o.sigma_min == m.sigma_min && o.sigma_max == m.sigma_max && o.rho == m.rho &&
              o.eta == m.eta && o.s_churn == m.s_churn && o.s_tmin == m.s_tmin &&
              o.s_tmax == m.s_tmax && isinf(o.s_tmax) && o.s_noise == m.s_noise &&
              o.vp_timesteps == m.vp_timesteps && o.vp_beta_start == m.vp_beta_start &&
              o.vp_beta_end == m.vp_beta_end && o.sigmas == NULL && o.n_sigmas == 0);

    /* NULL-safe queries */
    lgd_sampler_destroy(NULL);
    ck_assert_int_eq(lgd_sampler_num_steps(NULL), 0);
    ck_assert_int_eq(lgd_sampler_step_index(NULL), -1);
    ck_assert(isnan(lgd_sampler_sigma(NULL)));
    ck_assert(lgd_sampler_done(NULL));
    float grid[21];
    ck_assert_int_eq(lgd_sampler_sigmas(NULL, grid, 21), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lgd_sampler_init(NULL, NULL, 0, 0), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lgd_sampler_step(NULL, NULL, NULL), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lgd_sampler_run(NULL, NULL, 0, 0, NULL, NULL), LGD_ERR_INVALID_ARGUMENT);
    TU_OK(ctx, lgd_sampler_create(g, NULL, &s));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_sigmas(s, NULL, 21));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_run(s, NULL, 0, 0, NULL, NULL));
    lgd_sampler_destroy(s);

    lgd_guidance_destroy(g);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(sampler_older_and_newer_options)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *model = make_gmm1d(ctx);
    lgd_guidance *g = unguided(ctx, model);
    /* smaller than the first published layout (0.1.0 had every field): refused,
     * whatever lies beyond struct_size */
    lgd_sampler_options o;
    memset(&o, 0xFF, sizeof o); /* garbage: eta = NaN, s_churn = NaN, ... */
    o.struct_size = (uint32_t)offsetof(lgd_sampler_options, eta);
    o.kind = LGD_SAMPLER_DDIM;
    o.steps = 7;
    o.schedule = LGD_SCHEDULE_KARRAS;
    o.sigma_min = 0.01f;
    o.sigma_max = 10.0f;
    o.rho = 7.0f;
    lgd_sampler *old = NULL;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_create(g, &o, &old));
    ck_assert_ptr_null(old);
    ck_assert(strstr(lgd_context_last_error(ctx), "options->struct_size = ") != NULL);
    /* init for that size writes only the bytes it covers (the rest stays garbage) */
    ck_assert_int_eq(lgd_sampler_options_init(&o, (uint32_t)offsetof(lgd_sampler_options, eta)),
                     LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lgd_sampler_options_init(&o, sizeof o), LGD_OK);
    o.kind = LGD_SAMPLER_DDIM; /* DDIM with the default eta 0 */
    o.steps = 7;
    o.sigma_min = 0.01f;
    o.sigma_max = 10.0f;
    TU_OK(ctx, lgd_sampler_create(g, &o, &old));
    ck_assert_int_eq(lgd_sampler_num_steps(old), 7);
    /* DDIM with the default eta 0 is Euler, to the bit */
    lgd_sampler_options e = LGD_SAMPLER_OPTIONS_INIT;
    e.kind = LGD_SAMPLER_EULER;
    e.steps = 7;
    e.sigma_min = 0.01f;
    e.sigma_max = 10.0f;
    lgd_sampler *eul = NULL;
    TU_OK(ctx, lgd_sampler_create(g, &e, &eul));
    lgd_tensor *x1 = tu_tensor(ctx, 32, 1, NULL), *x2 = tu_tensor(ctx, 32, 1, NULL);
    TU_OK(ctx, lgd_sampler_run(old, x1, 9, 0, NULL, NULL));
    TU_OK(ctx, lgd_sampler_run(eul, x2, 9, 0, NULL, NULL));
    float *h1 = tu_download(x1), *h2 = tu_download(x2);
    ck_assert(memcmp(h1, h2, 32 * sizeof(float)) == 0);
    free(h1);
    free(h2);
    lgd_sampler_destroy(old);
    lgd_sampler_destroy(eul);

    /* a newer caller with a larger struct: refused while its unknown tail is not
     * zero, accepted once it is */
    unsigned char big[sizeof(lgd_sampler_options) + 32];
    memset(big, 0xAB, sizeof big);
    ck_assert_int_eq(lgd_sampler_options_init(&o, sizeof o), LGD_OK);
    o.steps = 5;
    memcpy(big, &o, sizeof o);
    uint32_t bigsize = (uint32_t)sizeof big;
    memcpy(big, &bigsize, sizeof bigsize);
    lgd_sampler *nw = NULL;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_sampler_create(g, (const lgd_sampler_options *)(const void *)big, &nw));
    ck_assert_ptr_null(nw);
    memset(big + sizeof o, 0, sizeof big - sizeof o);
    TU_OK(ctx, lgd_sampler_create(g, (const lgd_sampler_options *)(const void *)big, &nw));
    ck_assert_int_eq(lgd_sampler_num_steps(nw), 5);
    lgd_sampler_destroy(nw);

    lgd_tensor_destroy(x1);
    lgd_tensor_destroy(x2);
    lgd_guidance_destroy(g);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

typedef struct progress_log {
    int calls, stop_at, last_step, bad;
    float grid[16];
} progress_log;

static int on_progress(void *user, int32_t step, int32_t num_steps, float sigma,
                       const lgd_guidance_report *report)
{
    progress_log *p = user;
    p->calls++;
    if (step != p->last_step + 1 || num_steps != 8 || sigma != p->grid[step] || !report ||
        report->sigma != p->grid[step - 1])
        p->bad++;
    p->last_step = step;
    return step == p->stop_at;
}

START_TEST(sampler_progress_abort)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *model = make_gmm6(ctx);
    lgd_guidance *g = unguided(ctx, model);
    lgd_sampler_options o = LGD_SAMPLER_OPTIONS_INIT;
    o.steps = 8;
    lgd_sampler *s = NULL;
    TU_OK(ctx, lgd_sampler_create(g, &o, &s));
    progress_log p = { 0, 3, 0, 0, { 0 } };
    TU_OK(ctx, lgd_sampler_sigmas(s, p.grid, 9));
    lgd_tensor *x = tu_tensor(ctx, 12, D6, NULL);
    TU_FAILS(ctx, LGD_ERR_ABORTED, lgd_sampler_run(s, x, 21, 0, on_progress, &p));
    ck_assert_int_eq(p.calls, 3);
    ck_assert_int_eq(p.bad, 0);
    ck_assert_int_eq(lgd_sampler_step_index(s), 3);
    ck_assert(!lgd_sampler_done(s));
    /* reusable: a full run now gives what a fresh sampler gives */
    p.calls = 0;
    p.last_step = 0;
    p.stop_at = -1;
    TU_OK(ctx, lgd_sampler_run(s, x, 21, 0, on_progress, &p));
    ck_assert_int_eq(p.calls, 8);
    ck_assert_int_eq(p.bad, 0);
    ck_assert(lgd_sampler_done(s));
    float *a = tu_download(x);
    lgd_sampler *fresh = NULL;
    TU_OK(ctx, lgd_sampler_create(g, &o, &fresh));
    lgd_tensor *y = tu_tensor(ctx, 12, D6, NULL);
    TU_OK(ctx, lgd_sampler_run(fresh, y, 21, 0, NULL, NULL));
    float *b = tu_download(y);
    ck_assert(memcmp(a, b, 12 * D6 * sizeof(float)) == 0);
    free(a);
    free(b);
    lgd_tensor_destroy(x);
    lgd_tensor_destroy(y);
    lgd_sampler_destroy(s);
    lgd_sampler_destroy(fresh);
    lgd_guidance_destroy(g);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(sampler_non_finite_model)
{
    const kind_case *k = &KINDS[_i];
    lgd_context *ctx = tu_context(0);
    /* NaN from the model once sigma < 1: with 10 Karras steps (80 .. 0.002),
     * sigma[6] = 0.83 is the first level below 1 (Heun's corrector at step 5
     * already evaluates it) */
    cb_model cm = { 1, 0.5, 1.0, 1.0f, 0 };
    lgd_model *model = make_cb_model(ctx, &cm, 3);
    lgd_guidance *g = unguided(ctx, model);
    lgd_sampler *s = make_sampler(ctx, g, k, 10);
    float grid[11];
    TU_OK(ctx, lgd_sampler_sigmas(s, grid, 11));
    int first_bad = 0;
    while (grid[first_bad] >= 1.0f)
        first_bad++;
    if (k->kind == LGD_SAMPLER_HEUN)
        first_bad--; /* the corrector of the step before sees it */
    lgd_tensor *x = tu_tensor(ctx, 4, 3, NULL);
    TU_OK(ctx, lgd_sampler_init(s, x, 1, 0));
    lgd_status st = LGD_OK;
    int at = -1;
    for (int i = 0; i < 10 && st == LGD_OK; i++) {
        lgd_context_clear_error(ctx);
        st = lgd_sampler_step(s, x, NULL);
        at = i;
    }
    ck_assert_msg(st == LGD_ERR_NON_FINITE, "%s: status %d (%s)", k->name, (int)st,
                  lgd_context_last_error(ctx));
    ck_assert_int_eq(at, first_bad);
    char want[32];
    snprintf(want, sizeof want, "step %d", first_bad);
    ck_assert_msg(strstr(lgd_context_last_error(ctx), want) != NULL,
                  "%s: message '%s' does not name '%s'", k->name, lgd_context_last_error(ctx),
                  want);
    /* the run cannot go on, but the sampler can start again */
    TU_FAILS(ctx, LGD_ERR_STATE, lgd_sampler_step(s, x, NULL));
    cm.nan_below = 0.0f;
    TU_OK(ctx, lgd_sampler_run(s, x, 1, 0, NULL, NULL));
    ck_assert(lgd_sampler_done(s));
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

/* A loss that always fails: where the message says it failed. */
static int failing_loss(void *user, const float *x, int64_t batch, int64_t n, int64_t dim,
                        float *loss, float *grad)
{
    (void)user, (void)x, (void)batch, (void)n, (void)dim, (void)loss, (void)grad;
    return 7;
}

static int count_substr(const char *s, const char *needle)
{
    int c = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        c++;
    return c;
}

/* Issue 10: the message names the function the caller called, each prefix appears
 * once, and the deepest reason (the callback's status) is kept. */
START_TEST(sampler_error_message_names_the_caller)
{
    lgd_context *ctx = tu_context(0);
    const float w = 1.0f, mu = 0.0f, var = 1.0f;
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, 1, 1, &w, &mu, &var, LGD_COVARIANCE_ISOTROPIC, &m));
    lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
    cb.dim = 1;
    cb.eval = failing_loss;
    lgd_loss *loss = NULL;
    TU_OK(ctx, lgd_loss_create_callbacks(ctx, &cb, &loss));
    lgd_guidance *g = NULL;
    TU_OK(ctx, lgd_guidance_mc(ctx, m, loss, 4, &g));
    lgd_sampler *smp = NULL;
    TU_OK(ctx, lgd_sampler_create(g, NULL, &smp));
    lgd_tensor *x = tu_tensor(ctx, 2, 1, NULL);

    TU_FAILS(ctx, LGD_ERR_CALLBACK, lgd_sampler_run(smp, x, 1, 0, NULL, NULL));
    const char *e = lgd_context_last_error(ctx);
    ck_assert_msg(strncmp(e, "lgd_sampler_run: step 0 of 20 (sigma 80): ", 42) == 0, "%s", e);
    ck_assert_msg(count_substr(e, " step ") == 1 && count_substr(e, "(sigma") == 1, "%s", e);
    ck_assert_msg(strstr(e, "returned 7") != NULL, "the callback's status is lost: %s", e);

    TU_OK(ctx, lgd_sampler_init(smp, x, 1, 0));
    TU_FAILS(ctx, LGD_ERR_CALLBACK, lgd_sampler_step(smp, x, NULL));
    e = lgd_context_last_error(ctx);
    ck_assert_msg(strncmp(e, "lgd_sampler_step: step 0 of 20 (sigma 80): ", 43) == 0, "%s", e);
    ck_assert_msg(count_substr(e, " step ") == 1, "%s", e);

    lgd_tensor *out = tu_tensor(ctx, 2, 1, NULL);
    TU_FAILS(ctx, LGD_ERR_CALLBACK, lgd_guidance_denoise(g, x, 2.0f, 3, 0, out, NULL));
    e = lgd_context_last_error(ctx);
    ck_assert_msg(strncmp(e, "lgd_guidance_denoise: step 3 (sigma 2): ", 40) == 0, "%s", e);
    ck_assert_msg(count_substr(e, " step ") == 1, "%s", e);
    TU_FAILS(ctx, LGD_ERR_CALLBACK, lgd_guidance_term(g, x, 2.0f, 3, 0, out, NULL, NULL));
    e = lgd_context_last_error(ctx);
    ck_assert_msg(strncmp(e, "lgd_guidance_term: step 3 (sigma 2): ", 37) == 0, "%s", e);

    lgd_tensor_destroy(out);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(smp);
    lgd_guidance_destroy(g);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* runs from the caller's x: lgd_sampler_start / lgd_sampler_run_from        */
/* ------------------------------------------------------------------------ */

enum { START_STEPS = 12, START_B = 5 };

/* LGD-MC on the 6-D mixture with a squared-error loss: its draws are keyed by the
 * step and the row as the sampler's own noise is. */
static lgd_guidance *guided6(lgd_context *ctx, lgd_model *model, lgd_loss **loss)
{
    float target[D6];
    for (int j = 0; j < D6; j++)
        target[j] = 0.5f - 0.1f * (float)j;
    TU_OK(ctx, lgd_loss_create_squared_error(ctx, D6, target, 1, NULL, loss));
    lgd_guidance_options o = LGD_GUIDANCE_OPTIONS_INIT;
    o.kind = LGD_GUIDANCE_MC;
    o.n_samples = 4;
    o.scale = 0.5f;
    lgd_guidance *g = NULL;
    TU_OK(ctx, lgd_guidance_create(ctx, model, *loss, &o, &g));
    return g;
}

static lgd_sampler *start_sampler(lgd_context *ctx, lgd_guidance *g, const kind_case *k)
{
    lgd_sampler_options o;
    case_options(k, START_STEPS, &o);
    o.s_noise = 1.003f;
    lgd_sampler *s = NULL;
    TU_OK(ctx, lgd_sampler_create(g, &o, &s));
    return s;
}

static void finish_steps(lgd_context *ctx, lgd_sampler *s, lgd_tensor *x)
{
    while (!lgd_sampler_done(s))
        TU_OK(ctx, lgd_sampler_step(s, x, NULL));
}

/* A run started at step k with the x a full run had after k steps continues exactly
 * as the full run (same bytes), for every sampler but DPM++(2M) after step 0 (its
 * first started step has no history: checked for determinism and closeness). Also:
 * init == start at 0 from x = 0 with LGD_START_ADD_NOISE; x may be overwritten between
 * steps; run_from == start + steps. */
START_TEST(sampler_start_continues_a_run)
{
    const kind_case *k = &KINDS[_i];
    int history = k->kind == LGD_SAMPLER_DPMPP_2M;
    lgd_context *ctx = tu_context(0);
    lgd_model *model = make_gmm6(ctx);
    lgd_loss *loss = NULL;
    lgd_guidance *g = guided6(ctx, model, &loss);
    lgd_sampler *s = start_sampler(ctx, g, k);
    float grid[START_STEPS + 1];
    TU_OK(ctx, lgd_sampler_sigmas(s, grid, START_STEPS + 1));
    const size_t n = (size_t)START_B * D6;
    const uint64_t seed = 77, first_row = 3;
    lgd_tensor *x = tu_tensor(ctx, START_B, D6, NULL);
    lgd_tensor *y = tu_tensor(ctx, START_B, D6, NULL);

    /* the full run, with x after every step */
    static float at[START_STEPS + 1][START_B * D6];
    TU_OK(ctx, lgd_sampler_init(s, x, seed, first_row));
    TU_OK(ctx, lgd_tensor_download(x, at[0], n));
    for (int i = 0; i < START_STEPS; i++) {
        TU_OK(ctx, lgd_sampler_step(s, x, NULL));
        TU_OK(ctx, lgd_tensor_download(x, at[i + 1], n));
    }
    float *out = malloc(n * sizeof(float)), *out2 = malloc(n * sizeof(float));

    /* init is start at 0 on zeros with LGD_START_ADD_NOISE */
    TU_OK(ctx, lgd_tensor_fill(y, 0.0f));
    TU_OK(ctx, lgd_sampler_start(s, y, 0, LGD_START_ADD_NOISE, seed, first_row));
    TU_OK(ctx, lgd_tensor_download(y, out, n));
    ck_assert_msg(memcmp(out, at[0], n * sizeof(float)) == 0,
                  "%s: start(0, ADD_NOISE) on zeros differs from init", k->name);

    const int32_t starts[] = { 0, 1, 5, START_STEPS - 1 };
    for (size_t si = 0; si < sizeof starts / sizeof starts[0]; si++) {
        int32_t k0 = starts[si];
        TU_OK(ctx, lgd_tensor_upload(y, at[k0], n));
        TU_OK(ctx, lgd_sampler_start(s, y, k0, LGD_START_NOISY, seed, first_row));
        ck_assert_int_eq(lgd_sampler_step_index(s), k0);
        ck_assert(lgd_sampler_sigma(s) == grid[k0]);
        ck_assert(!lgd_sampler_done(s));
        TU_OK(ctx, lgd_tensor_download(y, out, n));
        ck_assert_msg(memcmp(out, at[k0], n * sizeof(float)) == 0,
                      "%s: a start with flags 0 changed x", k->name);
        for (int32_t i = k0; i < START_STEPS; i++) {
            TU_OK(ctx, lgd_sampler_step(s, y, NULL));
            TU_OK(ctx, lgd_tensor_download(y, out, n));
            if (history && i == k0 && k0 > 0) {
                /* DPM++'s first started step is a first-order step: the Euler step
                 * (the same formula, rounded another way) */
                lgd_sampler *eu = start_sampler(ctx, g, &KINDS[0]);
                TU_OK(ctx, lgd_tensor_upload(x, at[k0], n));
                TU_OK(ctx, lgd_sampler_start(eu, x, k0, 0, seed, first_row));
                TU_OK(ctx, lgd_sampler_step(eu, x, NULL));
                TU_OK(ctx, lgd_tensor_download(x, out2, n));
                ck_assert_msg(tu_max_scaled_err(out, out2, n, 1e-5, 1e-5) <= 1.0,
                              "%s started at %d: the first step is not the Euler step",
                              k->name, (int)k0);
                lgd_sampler_destroy(eu);
            }
            if (!history || k0 == 0)
                ck_assert_msg(memcmp(out, at[i + 1], n * sizeof(float)) == 0,
                              "%s: started at step %d, x after step %d differs from the "
                              "full run's",
                              k->name, (int)k0, (int)i);
        }
        ck_assert(lgd_sampler_done(s));
        /* lgd_sampler_run_from: the same bytes as start + steps */
        TU_OK(ctx, lgd_tensor_upload(y, at[k0], n));
        TU_OK(ctx, lgd_sampler_run_from(s, y, k0, LGD_START_NOISY, seed, first_row, NULL, NULL));
        ck_assert(lgd_sampler_done(s));
        TU_OK(ctx, lgd_tensor_download(y, out2, n));
        ck_assert_msg(memcmp(out, out2, n * sizeof(float)) == 0,
                      "%s: run_from at %d differs from start + steps", k->name, (int)k0);
        if (history && k0 > 0) {
            /* finite, and near the full run (the one first-order step's error, carried
             * through the coarse 12-step grid: 0.07 to 0.5 here) */
            double worst = 0.0;
            for (size_t e = 0; e < n; e++) {
                ck_assert(isfinite(out[e]));
                double dlt = fabs((double)out[e] - at[START_STEPS][e]);
                worst = dlt > worst ? dlt : worst;
            }
            if (verbose())
                printf("%s started at %d: max |x - full run's x| = %g\n", k->name, (int)k0,
                       worst);
            ck_assert_msg(worst < 1.0, "%s started at %d: max deviation %g from the full run",
                          k->name, (int)k0, worst);
        }
    }

    /* x is the caller's: overwriting it between steps = starting from it there */
    if (!history) {
        const int32_t k0 = 4;
        TU_OK(ctx, lgd_sampler_init(s, x, seed, first_row));
        for (int32_t i = 0; i < k0; i++)
            TU_OK(ctx, lgd_sampler_step(s, x, NULL));
        float repl[START_B * D6];
        for (size_t e = 0; e < n; e++)
            repl[e] = 0.5f * at[k0][e] + 0.25f;
        TU_OK(ctx, lgd_tensor_upload(x, repl, n));
        finish_steps(ctx, s, x);
        TU_OK(ctx, lgd_tensor_download(x, out, n));
        TU_OK(ctx, lgd_tensor_upload(y, repl, n));
        TU_OK(ctx, lgd_sampler_run_from(s, y, k0, 0, seed, first_row, NULL, NULL));
        TU_OK(ctx, lgd_tensor_download(y, out2, n));
        ck_assert_msg(memcmp(out, out2, n * sizeof(float)) == 0,
                      "%s: overwriting x between steps differs from a start there", k->name);
    }
    free(out);
    free(out2);
    lgd_tensor_destroy(x);
    lgd_tensor_destroy(y);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_loss_destroy(loss);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

/* DPM++(2M) started mid-run: the same bytes every time and for every batch split. */
START_TEST(sampler_start_dpmpp_deterministic)
{
    const kind_case *k = &KINDS[N_KINDS - 1];
    ck_assert(k->kind == LGD_SAMPLER_DPMPP_2M);
    lgd_context *ctx = tu_context(0);
    lgd_model *model = make_gmm6(ctx);
    lgd_loss *loss = NULL;
    lgd_guidance *g = guided6(ctx, model, &loss);
    lgd_sampler *s = start_sampler(ctx, g, k);
    const size_t n = (size_t)START_B * D6;
    float x0[START_B * D6], a[START_B * D6], b[START_B * D6], c[START_B * D6];
    tu_rng rng = { 5 };
    tu_fill_normal(&rng, x0, n, 0.8f);
    lgd_tensor *x = tu_tensor(ctx, START_B, D6, x0);
    TU_OK(ctx, lgd_sampler_run_from(s, x, 6, LGD_START_ADD_NOISE, 9, 0, NULL, NULL));
    TU_OK(ctx, lgd_tensor_download(x, a, n));
    TU_OK(ctx, lgd_tensor_upload(x, x0, n));
    TU_OK(ctx, lgd_sampler_run_from(s, x, 6, LGD_START_ADD_NOISE, 9, 0, NULL, NULL));
    TU_OK(ctx, lgd_tensor_download(x, b, n));
    ck_assert(memcmp(a, b, sizeof a) == 0);
    /* rows 2.. alone, numbered from 2 */
    lgd_tensor *hi = tu_tensor(ctx, START_B - 2, D6, x0 + 2 * D6);
    TU_OK(ctx, lgd_sampler_run_from(s, hi, 6, LGD_START_ADD_NOISE, 9, 2, NULL, NULL));
    TU_OK(ctx, lgd_tensor_download(hi, c, (size_t)(START_B - 2) * D6));
    ck_assert(memcmp(a + 2 * D6, c, (size_t)(START_B - 2) * D6 * sizeof(float)) == 0);
    /* another seed, other noise */
    TU_OK(ctx, lgd_tensor_upload(x, x0, n));
    TU_OK(ctx, lgd_sampler_run_from(s, x, 6, LGD_START_ADD_NOISE, 10, 0, NULL, NULL));
    TU_OK(ctx, lgd_tensor_download(x, b, n));
    ck_assert(memcmp(a, b, sizeof a) != 0);
    for (size_t e = 0; e < n; e++)
        ck_assert(isfinite(a[e]) && fabs(a[e]) < 10.0f);
    lgd_tensor_destroy(hi);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_loss_destroy(loss);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

/* SDEdit: LGD_START_ADD_NOISE adds sigmas[k] z with init's z; from a late step the
 * sample stays near x0, from step 0 it forgets x0. */
START_TEST(sampler_start_sdedit)
{
    lgd_context *ctx = tu_context(0);
    cb_model cm = { 1, 0.0, 1.0, 0.0f, 0 }; /* N(0, 1) per element */
    lgd_model *model = make_cb_model(ctx, &cm, D6);
    lgd_guidance *g = unguided(ctx, model);
    lgd_sampler *s = start_sampler(ctx, g, &KINDS[0]);
    float grid[START_STEPS + 1];
    TU_OK(ctx, lgd_sampler_sigmas(s, grid, START_STEPS + 1));
    enum { B = 64 };
    const size_t n = (size_t)B * D6;
    float *x0 = malloc(n * sizeof(float)), *z = malloc(n * sizeof(float));
    float *got = malloc(n * sizeof(float));
    for (size_t e = 0; e < n; e++)
        x0[e] = 0.75f + 0.01f * (float)(e % 7);
    lgd_tensor *x = tu_tensor(ctx, B, D6, NULL);
    TU_OK(ctx, lgd_sampler_init(s, x, 4, 0));
    TU_OK(ctx, lgd_tensor_download(x, z, n)); /* sigma_max z */
    for (int32_t k0 = 0; k0 < START_STEPS; k0 += 4) {
        TU_OK(ctx, lgd_tensor_upload(x, x0, n));
        TU_OK(ctx, lgd_sampler_start(s, x, k0, LGD_START_ADD_NOISE, 4, 0));
        TU_OK(ctx, lgd_tensor_download(x, got, n));
        for (size_t e = 0; e < n; e++) {
            double want = x0[e] + (double)grid[k0] * (z[e] / (double)grid[0]);
            ck_assert_msg(fabs(got[e] - want) <= 1e-5 * (1.0 + fabs(want)),
                          "start at %d: x[%zu] = %g, want x0 + sigma z = %g", (int)k0, e,
                          (double)got[e], want);
        }
    }
    /* from the last level (0.002) the sample stays within a few sigma of x0 (the
     * N(0, 1) denoiser barely moves it); from sigma_max it does not remember x0 */
    TU_OK(ctx, lgd_tensor_upload(x, x0, n));
    TU_OK(ctx, lgd_sampler_run_from(s, x, START_STEPS - 1, LGD_START_ADD_NOISE, 4, 0, NULL,
                                    NULL));
    TU_OK(ctx, lgd_tensor_download(x, got, n));
    for (size_t e = 0; e < n; e++)
        ck_assert_msg(fabs(got[e] - x0[e]) < 0.02, "late SDEdit moved x[%zu] from %g to %g", e,
                      (double)x0[e], (double)got[e]);
    TU_OK(ctx, lgd_tensor_upload(x, x0, n));
    TU_OK(ctx, lgd_sampler_run_from(s, x, 0, LGD_START_ADD_NOISE, 4, 0, NULL, NULL));
    TU_OK(ctx, lgd_tensor_download(x, got, n));
    double mean = 0.0;
    for (size_t e = 0; e < n; e++)
        mean += got[e] / (double)n;
    ck_assert_msg(fabs(mean) < 0.2, "SDEdit from sigma_max: mean %g, want about 0 (the prior's)",
                  mean);
    free(x0);
    free(z);
    free(got);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

typedef struct from_log {
    int calls, first, last;
} from_log;

static int on_from_progress(void *user, int32_t step, int32_t num_steps, float sigma,
                            const lgd_guidance_report *report)
{
    (void)num_steps, (void)sigma, (void)report;
    from_log *p = user;
    if (p->calls++ == 0)
        p->first = step;
    p->last = step;
    return 0;
}

START_TEST(sampler_start_bad_arguments)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *model = make_gmm6(ctx);
    lgd_guidance *g = unguided(ctx, model);
    lgd_sampler *s = start_sampler(ctx, g, &KINDS[0]);
    lgd_tensor *x = tu_tensor(ctx, 4, D6, NULL);
    lgd_tensor *wrong = tu_tensor(ctx, 4, D6 + 1, NULL);
    const char *e;

    ck_assert_int_eq(lgd_sampler_start(NULL, x, 0, 0, 1, 0), LGD_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lgd_sampler_run_from(NULL, x, 0, 0, 1, 0, NULL, NULL),
                     LGD_ERR_INVALID_ARGUMENT);
    const int32_t bad_steps[] = { -1, START_STEPS, START_STEPS + 5, INT32_MIN };
    for (size_t i = 0; i < sizeof bad_steps / sizeof bad_steps[0]; i++) {
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_start(s, x, bad_steps[i], 0, 1, 0));
        e = lgd_context_last_error(ctx);
        ck_assert_msg(strncmp(e, "lgd_sampler_start: start_step", 29) == 0, "%s", e);
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
                 lgd_sampler_run_from(s, x, bad_steps[i], 0, 1, 0, NULL, NULL));
        e = lgd_context_last_error(ctx);
        ck_assert_msg(strncmp(e, "lgd_sampler_run_from: start_step", 32) == 0, "%s", e);
    }
    const int32_t bad_flags[] = { -1, 2, 3, 0x100 };
    for (size_t i = 0; i < sizeof bad_flags / sizeof bad_flags[0]; i++) {
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_start(s, x, 0, bad_flags[i], 1, 0));
        e = lgd_context_last_error(ctx);
        ck_assert_msg(strncmp(e, "lgd_sampler_start: flags", 24) == 0, "%s", e);
        TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
                 lgd_sampler_run_from(s, x, 0, bad_flags[i], 1, 0, NULL, NULL));
        e = lgd_context_last_error(ctx);
        ck_assert_msg(strncmp(e, "lgd_sampler_run_from: flags", 27) == 0, "%s", e);
    }
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_start(s, NULL, 0, 0, 1, 0));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_sampler_start(s, wrong, 0, 0, 1, 0));
    float h[4 * D6] = { 0 };
    h[7] = NAN;
    TU_OK(ctx, lgd_tensor_upload(x, h, 4 * D6));
    TU_FAILS(ctx, LGD_ERR_NON_FINITE, lgd_sampler_start(s, x, 2, 0, 1, 0));
    h[7] = INFINITY;
    TU_OK(ctx, lgd_tensor_upload(x, h, 4 * D6));
    TU_FAILS(ctx, LGD_ERR_NON_FINITE, lgd_sampler_start(s, x, 2, LGD_START_ADD_NOISE, 1, 0));
    e = lgd_context_last_error(ctx);
    ck_assert_msg(strncmp(e, "lgd_sampler_start: x", 20) == 0, "%s", e);
    /* nothing started: the sampler is still idle and x untouched */
    TU_FAILS(ctx, LGD_ERR_STATE, lgd_sampler_step(s, x, NULL));
    float back[4 * D6];
    TU_OK(ctx, lgd_tensor_download(x, back, 4 * D6));
    ck_assert(memcmp(back, h, sizeof h) == 0);

    /* progress after a start: steps start_step + 1 .. num_steps */
    TU_OK(ctx, lgd_tensor_fill(x, 0.5f));
    from_log p = { 0, 0, 0 };
    TU_OK(ctx, lgd_sampler_run_from(s, x, 7, 0, 1, 0, on_from_progress, &p));
    ck_assert_int_eq(p.calls, START_STEPS - 7);
    ck_assert_int_eq(p.first, 8);
    ck_assert_int_eq(p.last, START_STEPS);
    /* the last level: one step */
    TU_OK(ctx, lgd_sampler_start(s, x, START_STEPS - 1, 0, 1, 0));
    TU_OK(ctx, lgd_sampler_step(s, x, NULL));
    ck_assert(lgd_sampler_done(s));
    TU_FAILS(ctx, LGD_ERR_STATE, lgd_sampler_step(s, x, NULL));

    /* lgd_sampler_sigmas takes an int64_t count: negative is too small */
    float grid[START_STEPS + 1];
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_sampler_sigmas(s, grid, -1));
    TU_OK(ctx, lgd_sampler_sigmas(s, grid, (int64_t)START_STEPS + 1));

    lgd_tensor_destroy(x);
    lgd_tensor_destroy(wrong);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

/* Per-row diagnostics through lgd_sampler_step: filled for the batch; a report whose
 * arrays are too short is refused before the step, which can then be retried. */
START_TEST(sampler_step_per_row_report)
{
    lgd_context *ctx = tu_context(0);
    lgd_model *model = make_gmm6(ctx);
    lgd_loss *loss = NULL;
    lgd_guidance *g = guided6(ctx, model, &loss);
    lgd_sampler *s = start_sampler(ctx, g, &KINDS[3]); /* Heun: two guided calls a step */
    lgd_tensor *x = tu_tensor(ctx, START_B, D6, NULL);
    TU_OK(ctx, lgd_sampler_init(s, x, 3, 0));
    float ess[START_B + 1], loss_row[START_B + 1], gn[START_B + 1], lam[START_B + 1];
    for (int b = 0; b <= START_B; b++)
        ess[b] = loss_row[b] = gn[b] = lam[b] = -1.0f;
    lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
    rep.rows = START_B - 1;
    rep.row_ess = ess;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_sampler_step(s, x, &rep));
    const char *e = lgd_context_last_error(ctx);
    ck_assert_msg(strstr(e, "lgd_sampler_step: report->rows") == e, "%s", e);
    ck_assert_int_eq(lgd_sampler_step_index(s), 0);
    ck_assert(ess[0] == -1.0f);
    rep.rows = START_B + 1;
    rep.row_loss = loss_row;
    rep.row_grad_norm = gn;
    rep.row_lambda = lam;
    TU_OK(ctx, lgd_sampler_step(s, x, &rep));
    ck_assert_int_eq(lgd_sampler_step_index(s), 1);
    ck_assert(rep.rows == START_B + 1 && rep.row_ess == ess && rep.row_lambda == lam);
    double m[4] = { 0, 0, 0, 0 };
    float mn = ess[0];
    for (int b = 0; b < START_B; b++) {
        ck_assert(ess[b] >= 1.0f && ess[b] <= 4.0f && loss_row[b] >= 0.0f && gn[b] >= 0.0f &&
                  lam[b] > 0.0f);
        m[0] += ess[b];
        m[1] += loss_row[b];
        m[2] += gn[b];
        m[3] += lam[b];
        mn = ess[b] < mn ? ess[b] : mn;
    }
    ck_assert(rep.active == 1);
    ck_assert(rep.mean_ess == (float)(m[0] / START_B) && rep.min_ess == mn);
    ck_assert(rep.mean_loss == (float)(m[1] / START_B));
    ck_assert(rep.mean_grad_norm == (float)(m[2] / START_B));
    ck_assert(rep.mean_lambda == (float)(m[3] / START_B));
    ck_assert(ess[START_B] == -1.0f && loss_row[START_B] == -1.0f); /* past the batch */
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_loss_destroy(loss);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sampler");

    TCase *tc = tcase_create("schedules");
    tcase_add_test(tc, schedule_karras_closed_form);
    tcase_add_test(tc, schedule_vp_linear);
    tcase_add_test(tc, schedule_vp_cosine);
    tcase_add_test(tc, schedule_bad_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("exact");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, sampler_gaussian_reference);
    tcase_add_test(tc, sampler_gaussian_ode_limit);
    tcase_add_test(tc, sampler_user_sigmas);
    tcase_add_test(tc, sampler_vp_schedules);
    suite_add_tcase(s, tc);

    tc = tcase_create("mixtures");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, sampler_gmm_1d, 0, N_KINDS);
    tcase_add_loop_test(tc, sampler_gmm_16d, 0, N_KINDS);
    suite_add_tcase(s, tc);

    tc = tcase_create("reproducibility");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, sampler_same_seed_same_bytes, 0, N_KINDS);
    tcase_add_test(tc, sampler_batch_split);
    tcase_add_test(tc, sampler_thread_count);
    suite_add_tcase(s, tc);

    tc = tcase_create("api");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, sampler_state_and_memory, 0, N_KINDS);
    tcase_add_test(tc, sampler_objects_lifetime);
    tcase_add_test(tc, sampler_bad_options);
    tcase_add_test(tc, sampler_older_and_newer_options);
    tcase_add_test(tc, sampler_progress_abort);
    tcase_add_test(tc, sampler_error_message_names_the_caller);
    tcase_add_loop_test(tc, sampler_non_finite_model, 0, N_KINDS);
    suite_add_tcase(s, tc);

    tc = tcase_create("start");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, sampler_start_continues_a_run, 0, N_KINDS);
    tcase_add_test(tc, sampler_start_dpmpp_deterministic);
    tcase_add_test(tc, sampler_start_sdedit);
    tcase_add_test(tc, sampler_start_bad_arguments);
    tcase_add_test(tc, sampler_step_per_row_report);
    suite_add_tcase(s, tc);

    return tu_run(s);
}
