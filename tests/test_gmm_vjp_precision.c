/*
 * test_gmm_vjp_precision.c - the Gaussian mixture's VJP J^T v against a float64
 * reference (issue 16): 1-D and multi-D mixtures, diagonal, isotropic and full
 * covariances, at sigma in {1, 10, 80} (and smaller sigmas, where the formula must
 * not lose what it gains at large ones), for points drawn around the modes at that
 * noise level and for points far away from every mode.
 *
 * The reference is the closed form evaluated in double the way reverse-mode autograd
 * of the denoiser D(x) = sum_k r_k m_k would: J^T v = sum_k r_k A_k^T v +
 * sum_k (m_k . v) grad r_k, grad r_k = r_k (g_k - sum_j r_j g_j), A_k = d m_k / d x
 * = Sigma_k (Sigma_k + s2 I)^-1, g_k = -(Sigma_k + s2 I)^-1 (x - mu_k), with Cholesky
 * solves; the reference is itself checked against central differences of the double
 * denoiser. The error measure is the norm-wise relative error of each row,
 * |out - ref| / |ref|; the worst row of each mixture and sigma is printed.
 *
 * What a float32 VJP can reach is limited by the float32 forward pass it shares with
 * the denoiser: the responsibilities come from logits l_k (|l_k| up to hundreds for far
 * points) rounded to float. Each row's bound is therefore REL_TOL plus LOGIT_MARGIN
 * times its "logit floor", the error that rounding alone causes: sum_k 2^-24 |l_k|
 * |d(J^T v)/d l_k| / |J^T v|, the derivatives taken by central differences of the
 * reference.
 *
 * LGD_TEST_QUICK=1 (the valgrind pass) checks fewer rows, and the thread check at a
 * size below the threshold for threads (valgrind runs one thread at a time anyway).
 *
 * Also: the result does not depend on the thread count (bit for bit where no GEMM is
 * involved: a diagonal mixture), and the
 * model's cache of the denoiser's intermediates (model_gmm.c) is never used stale
 * (a VJP after a denoise of other rows, of another batch size, at another sigma,
 * after a log density or posterior draws).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "core/internal.h"
#include "models/model_internal.h"

/* A row's relative error must stay below REL_TOL + LOGIT_MARGIN * (its logit floor).
 * Measured on this suite (x86-64, OpenBLAS): the old formula (coefficients from
 * differences of the shared terms e_k = (x - mu_k)^T (Sigma_k + s2)^-1 v) exceeded
 * the bound 26 to 470 times at sigma = 80 for every mixture (relative errors 5e-4 to
 * 3.3e-3 for points far from the modes, 4e-5 to 5.6e-4 near them), and up to 12 times
 * at sigma = 10; the present one uses at most 0.2 of it, with relative errors of at
 * most 3.7e-6 (LGD_TEST_QUICK's rows: 0.6 of it, for a far point at sigma = 1 with a
 * relative error of 3e-5 and a logit floor of 1.2e-5). */
#define REL_TOL 4e-6
#define LOGIT_MARGIN 4.0

static int quick(void)
{
    const char *q = getenv("LGD_TEST_QUICK");
    return q && q[0] && strcmp(q, "0") != 0;
}

/* ---------- the mixtures, as passed to the library and in double ---------- */

typedef struct mix {
    const char *name;
    int D, K;
    lgd_covariance layout;
    float *w, *mu, *cov; /* the library's arguments (cov as `layout` says) */
    double *wn, *mud, *S; /* normalised weights, means, full covariances [K][D][D] */
    double max_var;       /* largest variance on a diagonal, for the spread of points */
} mix;

static void mix_free(mix *m)
{
    free(m->w);
    free(m->mu);
    free(m->cov);
    free(m->wn);
    free(m->mud);
    free(m->S);
}

/* Fills the double copies from the float arguments (the reference sees the same
 * numbers the library does). */
static void mix_finish(mix *m)
{
    int D = m->D, K = m->K;
    m->wn = malloc((size_t)K * sizeof *m->wn);
    m->mud = malloc((size_t)K * D * sizeof *m->mud);
    m->S = calloc((size_t)K * D * D, sizeof *m->S);
    double ws = 0.0;
    for (int k = 0; k < K; k++)
        ws += m->w[k];
    m->max_var = 0.0;
    for (int k = 0; k < K; k++) {
        m->wn[k] = m->w[k] / ws;
        for (int i = 0; i < D; i++)
            m->mud[k * D + i] = m->mu[k * D + i];
        double *S = m->S + (size_t)k * D * D;
        for (int i = 0; i < D; i++) {
            for (int j = 0; j < D; j++) {
                double v = 0.0;
                if (m->layout == LGD_COVARIANCE_FULL)
                    v = m->cov[(size_t)k * D * D + i * D + j];
                else if (i == j)
                    v = m->layout == LGD_COVARIANCE_DIAGONAL ? m->cov[k * D + i] : m->cov[k];
                S[i * D + j] = v;
            }
            m->max_var = fmax(m->max_var, S[i * D + i]);
        }
    }
}

/* A random mixture: means of spread mean_scale; covariances B B^T / D + 0.05 I (full),
 * their diagonals (diagonal), or one variance in [0.05, 1] (isotropic). */
static mix mix_random(tu_rng *rng, const char *name, int D, int K, lgd_covariance layout,
                      double mean_scale)
{
    mix m = { name, D, K, layout, NULL, NULL, NULL, NULL, NULL, NULL, 0.0 };
    size_t ncov = layout == LGD_COVARIANCE_FULL ? (size_t)K * D * D
                  : layout == LGD_COVARIANCE_DIAGONAL ? (size_t)K * D : (size_t)K;
    m.w = malloc((size_t)K * sizeof *m.w);
    m.mu = malloc((size_t)K * D * sizeof *m.mu);
    m.cov = malloc(ncov * sizeof *m.cov);
    double *B = malloc((size_t)D * D * sizeof *B);
    for (int k = 0; k < K; k++) {
        m.w[k] = (float)(0.2 + tu_uniform(rng));
        for (int i = 0; i < D; i++)
            m.mu[k * D + i] = (float)(mean_scale * tu_normal(rng));
        for (int i = 0; i < D * D; i++)
            B[i] = tu_normal(rng);
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) {
                double acc = 0.0;
                for (int l = 0; l < D; l++)
                    acc += B[i * D + l] * B[j * D + l];
                float v = (float)(0.5 * acc / D + (i == j ? 0.05 : 0.0));
                if (layout == LGD_COVARIANCE_FULL)
                    m.cov[(size_t)k * D * D + i * D + j] = v;
                else if (layout == LGD_COVARIANCE_DIAGONAL && i == j)
                    m.cov[k * D + i] = v;
            }
        if (layout == LGD_COVARIANCE_ISOTROPIC)
            m.cov[k] = (float)(0.05 + 0.95 * tu_uniform(rng));
    }
    free(B); /* (B B^T)_ij and _ji are the same sums of the same products: symmetric */
    mix_finish(&m);
    return m;
}

/* The 1-D mixture of the paper's figures: three well separated modes of unequal widths. */
static mix mix_1d(lgd_covariance layout)
{
    static const float w[] = { 0.5f, 0.3f, 0.2f }, mu[] = { -2.0f, 0.5f, 3.0f },
                       var[] = { 0.3f, 1.0f, 0.05f };
    mix m = { layout == LGD_COVARIANCE_FULL ? "1-D K=3 full" : "1-D K=3 diagonal", 1, 3,
              layout, NULL, NULL, NULL, NULL, NULL, NULL, 0.0 };
    m.w = malloc(sizeof w);
    m.mu = malloc(sizeof mu);
    m.cov = malloc(sizeof var);
    memcpy(m.w, w, sizeof w);
    memcpy(m.mu, mu, sizeof mu);
    memcpy(m.cov, var, sizeof var); /* [K][1] diagonal = [K][1][1] full */
    mix_finish(&m);
    return m;
}

static lgd_model *mix_model(lgd_context *ctx, const mix *m)
{
    lgd_model *model = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, m->D, m->K, m->w, m->mu, m->cov, m->layout, &model));
    return model;
}

/* ---------- the float64 reference ---------- */

/* In-place Cholesky of the SPD n x n matrix A (lower triangle); returns sum log L_ii. */
static double cholesky(double *A, int n)
{
    double logdet_half = 0.0;
    for (int j = 0; j < n; j++) {
        double d = A[j * n + j];
        for (int l = 0; l < j; l++)
            d -= A[j * n + l] * A[j * n + l];
        ck_assert_msg(d > 0.0, "reference: matrix not positive definite");
        double L = sqrt(d);
        A[j * n + j] = L;
        logdet_half += log(L);
        for (int i = j + 1; i < n; i++) {
            double s = A[i * n + j];
            for (int l = 0; l < j; l++)
                s -= A[i * n + l] * A[j * n + l];
            A[i * n + j] = s / L;
        }
    }
    return logdet_half;
}

/* y = (L L^T)^-1 b */
static void chol_solve(const double *L, int n, const double *b, double *y)
{
    for (int i = 0; i < n; i++) {
        double s = b[i];
        for (int l = 0; l < i; l++)
            s -= L[i * n + l] * y[l];
        y[i] = s / L[i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) {
        double s = y[i];
        for (int l = i + 1; l < n; l++)
            s -= L[l * n + i] * y[l];
        y[i] = s / L[i * n + i];
    }
}

/* D(x) into xhat and, when v is not NULL, J^T v into jtv, at noise s, in double; dl
 * (may be NULL) is added to the logits, and lmag (may be NULL) receives the size
 * |l_k| of the logits as the library forms them (the constant and the quadratic
 * form, model_gmm.c). */
static void ref_eval_logits(const mix *m, const double *x, double s, const double *v,
                            double *xhat, double *jtv, const double *dl, double *lmag)
{
    int D = m->D, K = m->K;
    double s2 = s * s;
    double *A = malloc((size_t)D * D * sizeof *A), *d = malloc((size_t)D * sizeof *d);
    double *y = malloc((size_t)D * sizeof *y), *t = malloc((size_t)D * sizeof *t);
    double *lp = malloc((size_t)K * sizeof *lp), *mk = malloc((size_t)K * D * sizeof *mk);
    double *gk = malloc((size_t)K * D * sizeof *gk), *q = malloc((size_t)K * D * sizeof *q);
    for (int k = 0; k < K; k++) {
        const double *S = m->S + (size_t)k * D * D;
        for (int i = 0; i < D * D; i++)
            A[i] = S[i];
        for (int i = 0; i < D; i++) {
            A[i * D + i] += s2;
            d[i] = x[i] - m->mud[k * D + i];
        }
        double half_logdet = cholesky(A, D);
        chol_solve(A, D, d, y); /* y = (S + s2)^-1 (x - mu_k) */
        double quad = 0.0;
        for (int i = 0; i < D; i++)
            quad += d[i] * y[i];
        double c = log(m->wn[k]) - half_logdet - 0.5 * D * 1.8378770664093453;
        lp[k] = c - 0.5 * quad + (dl ? dl[k] : 0.0);
        if (lmag)
            lmag[k] = fabs(c) + 0.5 * quad;
        for (int i = 0; i < D; i++) {
            double acc = 0.0;
            for (int j = 0; j < D; j++)
                acc += S[i * D + j] * y[j];
            mk[k * D + i] = m->mud[k * D + i] + acc;
            gk[k * D + i] = -y[i];
        }
        if (v) { /* A_k^T v = (S + s2)^-1 S v */
            for (int i = 0; i < D; i++) {
                double acc = 0.0;
                for (int j = 0; j < D; j++)
                    acc += S[i * D + j] * v[j];
                t[i] = acc;
            }
            chol_solve(A, D, t, q + (size_t)k * D);
        }
    }
    double mx = lp[0], z = 0.0;
    for (int k = 1; k < K; k++)
        mx = fmax(mx, lp[k]);
    for (int k = 0; k < K; k++)
        z += (lp[k] = exp(lp[k] - mx)); /* lp now holds unnormalised r_k */
    for (int i = 0; i < D; i++) {
        double acc = 0.0;
        for (int k = 0; k < K; k++)
            acc += lp[k] / z * mk[k * D + i];
        xhat[i] = acc;
    }
    if (v) {
        double *gbar = d; /* reuse */
        for (int i = 0; i < D; i++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++)
                acc += lp[k] / z * gk[k * D + i];
            gbar[i] = acc;
        }
        for (int i = 0; i < D; i++)
            jtv[i] = 0.0;
        for (int k = 0; k < K; k++) {
            double r = lp[k] / z, mv = 0.0;
            for (int i = 0; i < D; i++)
                mv += mk[k * D + i] * v[i];
            for (int i = 0; i < D; i++)
                jtv[i] += r * q[(size_t)k * D + i] + r * mv * (gk[k * D + i] - gbar[i]);
        }
    }
    free(A);
    free(d);
    free(y);
    free(t);
    free(lp);
    free(mk);
    free(gk);
    free(q);
}

static void ref_eval(const mix *m, const double *x, double s, const double *v, double *xhat,
                     double *jtv)
{
    ref_eval_logits(m, x, s, v, xhat, jtv, NULL, NULL);
}

/* The row's logit floor (see the top): sum_k 2^-24 |l_k| |d(J^T v)/d l_k| / |J^T v|. */
static double logit_floor(const mix *m, const double *x, double s, const double *v,
                          const double *jtv)
{
    int D = m->D, K = m->K;
    const double h = 1e-6;
    double *dl = calloc((size_t)K, sizeof *dl), *lmag = malloc((size_t)K * sizeof *lmag);
    double *jp = malloc((size_t)D * sizeof *jp), *jm = malloc((size_t)D * sizeof *jm);
    double *xh = malloc((size_t)D * sizeof *xh), floor = 0.0, norm = 0.0;
    ref_eval_logits(m, x, s, NULL, xh, NULL, NULL, lmag);
    for (int k = 0; k < K; k++) {
        dl[k] = h;
        ref_eval_logits(m, x, s, v, xh, jp, dl, NULL);
        dl[k] = -h;
        ref_eval_logits(m, x, s, v, xh, jm, dl, NULL);
        dl[k] = 0.0;
        double d2 = 0.0;
        for (int i = 0; i < D; i++)
            d2 += (jp[i] - jm[i]) * (jp[i] - jm[i]);
        floor += ldexp(lmag[k], -24) * sqrt(d2) / (2.0 * h);
    }
    for (int i = 0; i < D; i++)
        norm += jtv[i] * jtv[i];
    free(dl);
    free(lmag);
    free(jp);
    free(jm);
    free(xh);
    return floor / sqrt(norm);
}

/* J^T v by central differences of the double denoiser (to check the reference). */
static void ref_vjp_fd(const mix *m, const double *x, double s, const double *v, double *out)
{
    int D = m->D;
    double *xp = malloc((size_t)D * sizeof *xp), *hp = malloc((size_t)D * sizeof *hp);
    double *hm = malloc((size_t)D * sizeof *hm);
    double h = 1e-4 * (1.0 + s);
    for (int j = 0; j < D; j++) {
        memcpy(xp, x, (size_t)D * sizeof *xp);
        xp[j] = x[j] + h;
        ref_eval(m, xp, s, NULL, hp, NULL);
        xp[j] = x[j] - h;
        ref_eval(m, xp, s, NULL, hm, NULL);
        double acc = 0.0;
        for (int i = 0; i < D; i++)
            acc += v[i] * (hp[i] - hm[i]) / (2.0 * h);
        out[j] = acc;
    }
    free(xp);
    free(hp);
    free(hm);
}

static double rel_err(const float *a, const double *ref, int n)
{
    double num = 0.0, den = 0.0;
    for (int i = 0; i < n; i++) {
        num += (a[i] - ref[i]) * (a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return sqrt(num / den);
}

/* ---------- points ---------- */

/* Rows 0 .. B/2-1: draws of p_sigma (a component's mean, its spread, noise s); rows
 * B/2 .. B-1: far from every mode, 6 (1 + s + spread) away from a random mean in a
 * random direction. */
static void make_points(tu_rng *rng, const mix *m, double s, int B, float *x)
{
    int D = m->D;
    double spread = sqrt(m->max_var);
    for (int b = 0; b < B; b++) {
        int k = (int)(tu_uniform(rng) * m->K);
        if (b < B / 2) {
            for (int i = 0; i < D; i++)
                x[b * D + i] = (float)(m->mud[k * D + i] + spread * tu_normal(rng) +
                                       s * tu_normal(rng));
        } else {
            double nrm = 0.0;
            double *u = malloc((size_t)D * sizeof *u);
            for (int i = 0; i < D; i++) {
                u[i] = tu_normal(rng);
                nrm += u[i] * u[i];
            }
            double far = 6.0 * (1.0 + s + spread) / sqrt(nrm);
            for (int i = 0; i < D; i++)
                x[b * D + i] = (float)(m->mud[k * D + i] + far * u[i]);
            free(u);
        }
    }
}

/* ---------- the suites ---------- */

enum { N_MIX = 8, B_FULL = 16, B_QUICK = 6 };

/* Every mixture of the suite, from a fixed seed. */
static mix make_mix(int i)
{
    tu_rng rng = { 1600u + (uint64_t)i };
    switch (i) {
    case 0: return mix_1d(LGD_COVARIANCE_DIAGONAL);
    case 1: return mix_1d(LGD_COVARIANCE_FULL);
    case 2: return mix_random(&rng, "2-D K=2 full", 2, 2, LGD_COVARIANCE_FULL, 2.0);
    case 3: return mix_random(&rng, "4-D K=3 diagonal", 4, 3, LGD_COVARIANCE_DIAGONAL, 2.0);
    case 4: return mix_random(&rng, "4-D K=3 full", 4, 3, LGD_COVARIANCE_FULL, 2.0);
    case 5: return mix_random(&rng, "8-D K=4 isotropic", 8, 4, LGD_COVARIANCE_ISOTROPIC, 2.0);
    case 6: return mix_random(&rng, "16-D K=5 diagonal", 16, 5, LGD_COVARIANCE_DIAGONAL, 1.5);
    default: return mix_random(&rng, "16-D K=5 full", 16, 5, LGD_COVARIANCE_FULL, 1.5);
    }
}

/* Checks the reference against central differences of the double denoiser. */
static void check_reference(const mix *m, const double *x, double s, const double *v,
                            const double *jtv)
{
    int D = m->D;
    double *fd = malloc((size_t)D * sizeof *fd), num = 0.0, den = 0.0;
    ref_vjp_fd(m, x, s, v, fd);
    for (int i = 0; i < D; i++) {
        num += (fd[i] - jtv[i]) * (fd[i] - jtv[i]);
        den += jtv[i] * jtv[i];
    }
    ck_assert_msg(sqrt(num) <= 1e-6 * sqrt(den),
                  "%s sigma=%g: the reference is %.3g off central differences", m->name, s,
                  sqrt(num / den));
    free(fd);
}

/* The worst relative error of the rows [b0, b1) of jv (the VJP at x, v) against the
 * reference, and in *ratio the worst of error / bound (<= 1 passes); the first row is
 * also checked against central differences. */
static double rows_error(const mix *m, double s, const float *x, const float *v,
                         const float *jv, int b0, int b1, double *ratio)
{
    int D = m->D;
    double *rx = malloc((size_t)D * sizeof *rx), *rv = malloc((size_t)D * sizeof *rv);
    double *rj = malloc((size_t)D * sizeof *rj), *rh = malloc((size_t)D * sizeof *rh);
    double worst = 0.0;
    *ratio = 0.0;
    for (int b = b0; b < b1; b++) {
        for (int i = 0; i < D; i++) {
            rx[i] = x[b * D + i];
            rv[i] = v[b * D + i];
        }
        ref_eval(m, rx, s, rv, rh, rj);
        if (b == b0)
            check_reference(m, rx, s, rv, rj);
        double e = rel_err(jv + b * D, rj, D);
        worst = fmax(worst, e);
        *ratio = fmax(*ratio, e / (REL_TOL + LOGIT_MARGIN * logit_floor(m, rx, s, rv, rj)));
    }
    free(rx);
    free(rv);
    free(rj);
    free(rh);
    return worst;
}

/* lgd_model_vjp at x, v ([rows][D]) into jv. */
static void model_vjp(lgd_context *ctx, lgd_model *model, double s, int rows, int D,
                      const float *x, const float *v, float *jv)
{
    lgd_tensor *tx = tu_tensor(ctx, rows, D, x), *tv = tu_tensor(ctx, rows, D, v),
               *to = tu_tensor(ctx, rows, D, NULL);
    TU_OK(ctx, lgd_model_vjp(model, tx, (float)s, NULL, tv, to));
    TU_OK(ctx, lgd_tensor_download(to, jv, (size_t)rows * D));
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tv);
    lgd_tensor_destroy(to);
}

/* sigma in {1, 10, 80}: the issue's; the small ones guard the other end, where every m_k
 * is close to x and differences of the m_k would cancel instead (model_gmm.c, vjp_form). */
static const double SIGMAS[] = { 1.0, 10.0, 80.0, 0.3, 0.05, 0.002, 1e-6 };
#define N_SIGMAS ((int)(sizeof SIGMAS / sizeof SIGMAS[0]))

START_TEST(vjp_against_float64)
{
    mix m = make_mix(_i);
    int D = m.D;
    lgd_context *ctx = tu_context(0);
    lgd_model *model = mix_model(ctx, &m);
    tu_rng rng = { 7u + (uint64_t)_i };
    const int B = quick() ? B_QUICK : B_FULL;
    float *x = malloc((size_t)B * D * sizeof *x), *v = malloc((size_t)B * D * sizeof *v);
    float *jv = malloc((size_t)B * D * sizeof *jv);
    double near[N_SIGMAS], far[N_SIGMAS], rnear[N_SIGMAS], rfar[N_SIGMAS];
    for (int si = 0; si < N_SIGMAS; si++) {
        double s = SIGMAS[si];
        make_points(&rng, &m, s, B, x);
        tu_fill_normal(&rng, v, (size_t)B * D, 1.0f);
        model_vjp(ctx, model, s, B, D, x, v, jv);
        near[si] = rows_error(&m, s, x, v, jv, 0, B / 2, &rnear[si]);
        far[si] = rows_error(&m, s, x, v, jv, B / 2, B, &rfar[si]);
    }
    /* all the numbers first, then the verdict */
    for (int si = 0; si < N_SIGMAS; si++)
        fprintf(stderr, "gmm vjp %-18s sigma %-6g max rel err: near modes %.2e, far %.2e "
                "(of the bound: %.2f, %.2f)\n", m.name, SIGMAS[si], near[si], far[si],
                rnear[si], rfar[si]);
    for (int si = 0; si < N_SIGMAS; si++)
        ck_assert_msg(rnear[si] <= 1.0 && rfar[si] <= 1.0,
                      "%s sigma=%g: J^T v has relative error %.3e (near the modes), %.3e "
                      "(far): %.2f, %.2f times the bound", m.name, SIGMAS[si], near[si],
                      far[si], rnear[si], rfar[si]);
    free(x);
    free(v);
    free(jv);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
    mix_free(&m);
}
END_TEST

/* The same bytes on 1 and 3 threads (liblgd's own kernels: a diagonal mixture), for
 * sizes above the CPU kernels' threshold for using threads (cpu_parallel.h), on both
 * forms of the between-components term. */
START_TEST(vjp_thread_count)
{
    static const lgd_covariance layouts[] = { LGD_COVARIANCE_DIAGONAL, LGD_COVARIANCE_FULL };
    const int D = quick() ? 8 : 64, K = 4, R = quick() ? 24 : 700;
    tu_rng rng = { 4242u + (uint64_t)_i };
    mix m = mix_random(&rng, layouts[_i] == LGD_COVARIANCE_FULL ? "K=4 full" : "K=4 diagonal", D,
                       K, layouts[_i], 2.0);
    float *x = malloc((size_t)R * D * sizeof *x), *v = malloc((size_t)R * D * sizeof *v);
    float *jv[2] = { malloc((size_t)R * D * sizeof(float)), malloc((size_t)R * D * sizeof(float)) };
    static const double sig[] = { 80.0, 0.01 };
    for (int si = 0; si < 2; si++) {
        make_points(&rng, &m, sig[si], R, x);
        tu_fill_normal(&rng, v, (size_t)R * D, 1.0f);
        for (int t = 0; t < 2; t++) {
            lgd_context *ctx = tu_context(t == 0 ? 1 : 3);
            lgd_model *model = mix_model(ctx, &m);
            model_vjp(ctx, model, sig[si], R, D, x, v, jv[t]);
            lgd_model_destroy(model);
            lgd_context_destroy(ctx);
        }
        /* GEMMs (full covariances) are OpenBLAS's or oneDNN's, whose rounding may change
         * with the thread count (docs/design-notes.md): there, both must be right */
        if (layouts[_i] != LGD_COVARIANCE_FULL)
            ck_assert_msg(memcmp(jv[0], jv[1], (size_t)R * D * sizeof(float)) == 0,
                          "%s sigma %g: 1 and 3 threads give different bytes", m.name, sig[si]);
        for (int t = 0; t < 2; t++) {
            double ratio, e = rows_error(&m, sig[si], x, v, jv[t], R / 2 - 2, R / 2 + 2, &ratio);
            ck_assert_msg(ratio <= 1.0, "%s sigma %g, %d threads: relative error %.3e (%.2f "
                          "times the bound)", m.name, sig[si], t == 0 ? 1 : 3, e, ratio);
        }
    }
    free(x);
    free(v);
    free(jv[0]);
    free(jv[1]);
    mix_free(&m);
}
END_TEST

/* The model keeps the denoiser's m_k and D(x) for the VJP that follows it (the
 * guidance's order, through the vtable); every other order must recompute them. Each
 * VJP is compared with the reference: a stale cache is off by far more than the bound. */
typedef struct cache_case {
    lgd_context *ctx;
    const mix *m;
    lgd_model *model;
    tu_rng rng;
} cache_case;

/* Rows at noise s in a tensor (caller destroys), host copy in *host. */
static lgd_tensor *points(cache_case *c, double s, int rows, float **host)
{
    *host = malloc((size_t)rows * c->m->D * sizeof **host);
    make_points(&c->rng, c->m, s, rows, *host);
    return tu_tensor(c->ctx, rows, c->m->D, *host);
}

static void denoise_vt(cache_case *c, const lgd_tensor *x, double s, int rows)
{
    lgd_tensor *out = tu_tensor(c->ctx, rows, c->m->D, NULL);
    TU_OK(c->ctx, c->model->vt->denoise(c->model, x->buf.data, (float)s, NULL, (size_t)rows,
                                        out->buf.data));
    lgd_tensor_destroy(out);
}

/* vt->vjp at x (host copy xh) with a fresh v; checks it against the reference. */
static void vjp_vt_check(cache_case *c, const lgd_tensor *x, const float *xh, double s, int rows,
                         const char *what)
{
    int D = c->m->D;
    float *v = malloc((size_t)rows * D * sizeof *v), *jv = malloc((size_t)rows * D * sizeof *jv);
    tu_fill_normal(&c->rng, v, (size_t)rows * D, 1.0f);
    lgd_tensor *tv = tu_tensor(c->ctx, rows, D, v), *to = tu_tensor(c->ctx, rows, D, NULL);
    TU_OK(c->ctx, c->model->vt->vjp(c->model, x->buf.data, (float)s, NULL, (size_t)rows,
                                    tv->buf.data, to->buf.data));
    TU_OK(c->ctx, lgd_tensor_download(to, jv, (size_t)rows * D));
    double ratio, e = rows_error(c->m, s, xh, v, jv, 0, rows, &ratio);
    ck_assert_msg(ratio <= 1.0, "%s, %s: relative error %.3e (%.2f times the bound)",
                  c->m->name, what, e, ratio);
    lgd_tensor_destroy(tv);
    lgd_tensor_destroy(to);
    free(v);
    free(jv);
}

START_TEST(vjp_cache_orders)
{
    mix m = make_mix(_i == 0 ? 3 : 4); /* 4-D K=3, diagonal and full */
    cache_case c = { tu_context(0), &m, NULL, { 99u + (uint64_t)_i } };
    c.model = mix_model(c.ctx, &m);
    float *h1, *h2, *h8;
    /* a VJP with no denoise before it */
    lgd_tensor *x1 = points(&c, 10.0, 4, &h1), *x2 = points(&c, 10.0, 4, &h2);
    vjp_vt_check(&c, x1, h1, 10.0, 4, "VJP first");
    /* denoise other rows, then the VJP */
    denoise_vt(&c, x2, 10.0, 4);
    vjp_vt_check(&c, x1, h1, 10.0, 4, "VJP after a denoise of other rows");
    /* the guidance's order, twice on the same rows */
    denoise_vt(&c, x2, 10.0, 4);
    vjp_vt_check(&c, x2, h2, 10.0, 4, "denoise then VJP");
    vjp_vt_check(&c, x2, h2, 10.0, 4, "a second VJP");
    /* another sigma */
    denoise_vt(&c, x2, 80.0, 4);
    vjp_vt_check(&c, x2, h2, 10.0, 4, "VJP at sigma 10 after a denoise at 80");
    /* a larger batch than the VJP's buffer holds: the denoiser cannot keep the m_k */
    lgd_tensor *x8 = points(&c, 80.0, 8, &h8);
    denoise_vt(&c, x8, 80.0, 8);
    vjp_vt_check(&c, x8, h8, 80.0, 8, "VJP after a denoise of a larger batch");
    /* the batch's prefix at the same address */
    denoise_vt(&c, x8, 80.0, 8);
    vjp_vt_check(&c, x8, h8, 80.0, 4, "VJP of a prefix of the denoised batch");
    /* a log density or posterior draws between the denoise and the VJP */
    denoise_vt(&c, x8, 80.0, 8);
    lgd_tensor *lp = tu_tensor_nd(c.ctx, 1, (int64_t[]){ 8 }, NULL);
    TU_OK(c.ctx, lgd_model_log_density(c.model, x8, 80.0f, lp));
    vjp_vt_check(&c, x8, h8, 80.0, 8, "VJP after a log density");
    denoise_vt(&c, x8, 80.0, 8);
    lgd_tensor *dr = tu_tensor_nd(c.ctx, 3, (int64_t[]){ 8, 2, m.D }, NULL);
    TU_OK(c.ctx, lgd_model_sample_posterior(c.model, x8, 80.0f, 5, 0, dr));
    vjp_vt_check(&c, x8, h8, 80.0, 8, "VJP after posterior draws");
    /* the small-sigma form overwrites the kept m_k: a VJP at a large sigma follows */
    denoise_vt(&c, x8, 0.01, 8);
    vjp_vt_check(&c, x8, h8, 0.01, 8, "VJP at sigma 0.01");
    vjp_vt_check(&c, x8, h8, 0.01, 8, "a second VJP at sigma 0.01");
    denoise_vt(&c, x8, 80.0, 8);
    vjp_vt_check(&c, x8, h8, 80.0, 8, "VJP at sigma 80 after one at 0.01");
    lgd_tensor_destroy(lp);
    lgd_tensor_destroy(dr);
    lgd_tensor_destroy(x1);
    lgd_tensor_destroy(x2);
    lgd_tensor_destroy(x8);
    free(h1);
    free(h2);
    free(h8);
    lgd_model_destroy(c.model);
    lgd_context_destroy(c.ctx);
    mix_free(&m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gmm_vjp_precision");
    TCase *tc = tcase_create("float64");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, vjp_against_float64, 0, N_MIX);
    suite_add_tcase(s, tc);
    TCase *tt = tcase_create("threads");
    tcase_set_timeout(tt, 300);
    tcase_add_loop_test(tt, vjp_thread_count, 0, 2);
    suite_add_tcase(s, tt);
    TCase *tk = tcase_create("cache");
    tcase_set_timeout(tk, 300);
    tcase_add_loop_test(tk, vjp_cache_orders, 0, 2);
    suite_add_tcase(s, tk);
    return tu_run(s);
}
