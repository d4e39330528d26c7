/*
 * test_model.c - models: the Gaussian mixture against its closed form (denoiser,
 * Tweedie, VJP by finite differences, density, exact posterior), network adapters,
 * host-callback models (messages from callbacks, unwritten outputs), and bad input.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "core/internal.h"
#include "losses/loss_internal.h"
#include "models/model_internal.h"
#include "core/linalg.h"

/* ---------- a double-precision reference Gaussian mixture ---------- */

typedef struct ref_gmm {
    int D, K;
    double *w, *mu, *S; /* S: [K][D][D] full */
} ref_gmm;

static void ref_free(ref_gmm *g)
{
    free(g->w);
    free(g->mu);
    free(g->S);
}

/* Solves A y = b (n x n, A copied) by Gaussian elimination with pivoting; returns log|det A|. */
static double solve(const double *A_in, const double *b, double *y, int n)
{
    double *A = malloc((size_t)n * n * sizeof *A), *r = malloc((size_t)n * sizeof *r);
    memcpy(A, A_in, (size_t)n * n * sizeof *A);
    memcpy(r, b, (size_t)n * sizeof *r);
    double logdet = 0.0;
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int i = c + 1; i < n; i++)
            if (fabs(A[i * n + c]) > fabs(A[p * n + c]))
                p = i;
        if (p != c) {
            for (int j = 0; j < n; j++) {
                double t = A[c * n + j];
                A[c * n + j] = A[p * n + j];
                A[p * n + j] = t;
            }
            double t = r[c];
            r[c] = r[p];
            r[p] = t;
        }
        logdet += log(fabs(A[c * n + c]));
        for (int i = c + 1; i < n; i++) {
            double f = A[i * n + c] / A[c * n + c];
            for (int j = c; j < n; j++)
                A[i * n + j] -= f * A[c * n + j];
            r[i] -= f * r[c];
        }
    }
    for (int i = n - 1; i >= 0; i--) {
        double acc = r[i];
        for (int j = i + 1; j < n; j++)
            acc -= A[i * n + j] * y[j];
        y[i] = acc / A[i * n + i];
    }
    free(A);
    free(r);
    return logdet;
}

/* xhat, score and log density of one point at noise s (double precision). */
static void ref_eval(const ref_gmm *g, const double *x, double s, double *xhat, double *score,
                     double *logp)
{
    int D = g->D, K = g->K;
    double *lp = calloc((size_t)K, sizeof *lp), *m = malloc((size_t)K * D * sizeof *m);
    double *gk = malloc((size_t)K * D * sizeof *gk);
    double *A = malloc((size_t)D * D * sizeof *A), *d = malloc((size_t)D * sizeof *d);
    double *y = malloc((size_t)D * sizeof *y);
    for (int k = 0; k < K; k++) {
        const double *S = g->S + (size_t)k * D * D;
        for (int i = 0; i < D * D; i++)
            A[i] = S[i];
        for (int i = 0; i < D; i++) {
            A[i * D + i] += s * s;
            d[i] = x[i] - g->mu[k * D + i];
        }
        double logdet = solve(A, d, y, D);
        double q = 0.0;
        for (int i = 0; i < D; i++)
            q += d[i] * y[i];
        lp[k] = log(g->w[k]) - 0.5 * q - 0.5 * logdet - 0.5 * D * log(6.283185307179586);
        for (int i = 0; i < D; i++) {
            double acc = 0.0;
            for (int j = 0; j < D; j++)
                acc += S[i * D + j] * y[j];
            m[k * D + i] = g->mu[k * D + i] + acc;
            gk[k * D + i] = -y[i];
        }
    }
    double mx = lp[0];
    for (int k = 1; k < K; k++)
        mx = fmax(mx, lp[k]);
    double z = 0.0;
    for (int k = 0; k < K; k++)
        z += exp(lp[k] - mx);
    if (logp)
        *logp = mx + log(z);
    for (int i = 0; i < D; i++) {
        double a = 0.0, b = 0.0;
        for (int k = 0; k < K; k++) {
            double r = exp(lp[k] - mx) / z;
            a += r * m[k * D + i];
            b += r * gk[k * D + i];
        }
        if (xhat)
            xhat[i] = a;
        if (score)
            score[i] = b;
    }
    free(lp);
    free(m);
    free(gk);
    free(A);
    free(d);
    free(y);
}

/* A random mixture: covariances B B^T / D + floor I (full), or their diagonals. */
static ref_gmm ref_random(tu_rng *rng, int D, int K, float mean_scale)
{
    ref_gmm g = { D, K, malloc(K * sizeof(double)), malloc((size_t)K * D * sizeof(double)),
                  calloc((size_t)K * D * D, sizeof(double)) };
    for (int k = 0; k < K; k++) {
        g.w[k] = 0.2 + tu_uniform(rng);
        for (int i = 0; i < D; i++)
            g.mu[k * D + i] = mean_scale * tu_normal(rng);
        double *B = malloc((size_t)D * D * sizeof *B);
        for (int i = 0; i < D * D; i++)
            B[i] = tu_normal(rng);
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) {
                double acc = 0.0;
                for (int l = 0; l < D; l++)
                    acc += B[i * D + l] * B[j * D + l];
                g.S[(size_t)k * D * D + i * D + j] = 0.5 * acc / D + (i == j ? 0.05 : 0.0);
            }
        free(B);
    }
    return g;
}

/* Makes the library model; layout DIAGONAL uses (and forces) only the diagonals. */
static lgd_model *make_model(lgd_context *ctx, ref_gmm *g, lgd_covariance layout)
{
    int D = g->D, K = g->K;
    float *w = malloc(K * sizeof *w), *mu = malloc((size_t)K * D * sizeof *mu);
    float *cov = malloc((size_t)K * D * D * sizeof *cov);
    for (int k = 0; k < K; k++) {
        w[k] = (float)g->w[k];
        for (int i = 0; i < D; i++) {
            mu[k * D + i] = (float)g->mu[k * D + i];
            g->mu[k * D + i] = mu[k * D + i]; /* reference sees the float values */
        }
    }
    for (int k = 0; k < K; k++) {
        double *S = g->S + (size_t)k * D * D;
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) {
                if (layout == LGD_COVARIANCE_DIAGONAL && i != j)
                    S[i * D + j] = 0.0;
                float v = (float)S[i * D + j];
                S[i * D + j] = v;
                if (layout == LGD_COVARIANCE_FULL)
                    cov[(size_t)k * D * D + i * D + j] = v;
                else if (i == j)
                    cov[k * D + i] = v;
            }
    }
    /* weights: the reference normalises too */
    double ws = 0.0;
    for (int k = 0; k < K; k++)
        ws += (g->w[k] = w[k]);
    for (int k = 0; k < K; k++)
        g->w[k] /= ws;
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, D, K, w, mu, cov, layout, &m));
    free(w);
    free(mu);
    free(cov);
    return m;
}

static const float SIGMAS[] = { 0.002f, 0.05f, 0.5f, 2.0f, 80.0f };
#define N_SIGMAS ((int)(sizeof SIGMAS / sizeof SIGMAS[0]))

/* Points where the mixture has mass: near a random component at noise s. */
static void sample_points(tu_rng *rng, const ref_gmm *g, double s, int B, float *x)
{
    for (int b = 0; b < B; b++) {
        int k = (int)(tu_uniform(rng) * g->K);
        for (int i = 0; i < g->D; i++)
            x[b * g->D + i] = (float)(g->mu[k * g->D + i] + 0.5 * tu_normal(rng) +
                                      s * tu_normal(rng));
    }
}

/* ---------- denoiser, score and density against the closed form ---------- */

static void check_closed_form(int D, int K, lgd_covariance layout)
{
    lgd_context *ctx = tu_context(0);
    tu_rng rng = { 1000u + (uint64_t)D * 31u + (uint64_t)K * 7u + (uint64_t)layout };
    ref_gmm g = ref_random(&rng, D, K, 1.5f);
    lgd_model *m = make_model(ctx, &g, layout);
    const int B = 16;
    float *x = malloc((size_t)B * D * sizeof *x), *xhat = malloc((size_t)B * D * sizeof *xhat);
    float *score = malloc((size_t)B * D * sizeof *score), lp[16];
    double *rx = malloc(D * sizeof *rx), *rh = malloc(D * sizeof *rh), *rs = malloc(D * sizeof *rs);
    for (int si = 0; si < N_SIGMAS; si++) {
        double s = SIGMAS[si];
        sample_points(&rng, &g, s, B, x);
        lgd_tensor *tx = tu_tensor(ctx, B, D, x), *to = tu_tensor(ctx, B, D, NULL);
        lgd_tensor *tl = tu_tensor_nd(ctx, 1, (int64_t[]){ B }, NULL);
        TU_OK(ctx, lgd_model_denoise(m, tx, (float)s, NULL, to));
        TU_OK(ctx, lgd_tensor_download(to, xhat, (size_t)B * D));
        TU_OK(ctx, lgd_model_score(m, tx, (float)s, NULL, to));
        TU_OK(ctx, lgd_tensor_download(to, score, (size_t)B * D));
        TU_OK(ctx, lgd_model_log_density(m, tx, (float)s, tl));
        TU_OK(ctx, lgd_tensor_download(tl, lp, B));
        for (int b = 0; b < B; b++) {
            double rlp;
            for (int i = 0; i < D; i++)
                rx[i] = x[b * D + i];
            ref_eval(&g, rx, s, rh, rs, &rlp);
            for (int i = 0; i < D; i++) {
                /* xhat to float accuracy of the data scale */
                double e = fabs(xhat[b * D + i] - rh[i]);
                ck_assert_msg(e < 2e-4 * (1.0 + fabs(rh[i]) + fabs(rx[i])),
                              "D=%d K=%d layout=%d sigma=%g: xhat[%d][%d] = %g, closed form %g",
                              D, K, layout, s, b, i, xhat[b * D + i], rh[i]);
                /* Tweedie: xhat = x + s^2 score, with the closed-form score */
                double tw = rx[i] + s * s * rs[i];
                ck_assert_msg(fabs(tw - rh[i]) < 1e-9 * (1 + fabs(rh[i])) + 1e-9 * s * s,
                              "Tweedie identity of the reference");
                double es = fabs(score[b * D + i] - rs[i]) * s * s;
                ck_assert_msg(es < 4e-4 * (1.0 + fabs(rx[i]) + fabs(rh[i])),
                              "D=%d sigma=%g: score[%d][%d] = %g, closed form %g", D, s, b, i,
                              score[b * D + i], rs[i]);
            }
            ck_assert_msg(fabs(lp[b] - rlp) < 1e-4 * (1 + fabs(rlp)),
                          "D=%d K=%d sigma=%g: log density %g, closed form %g", D, K, s, lp[b],
                          rlp);
        }
        lgd_tensor_destroy(tx);
        lgd_tensor_destroy(to);
        lgd_tensor_destroy(tl);
    }
    free(x);
    free(xhat);
    free(score);
    free(rx);
    free(rh);
    free(rs);
    ref_free(&g);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}

START_TEST(gmm_closed_form_full)
{
    static const int dims[][2] = { { 1, 1 }, { 1, 3 }, { 3, 2 }, { 8, 5 }, { 16, 4 } };
    check_closed_form(dims[_i][0], dims[_i][1], LGD_COVARIANCE_FULL);
}
END_TEST

START_TEST(gmm_closed_form_diagonal)
{
    static const int dims[][2] = { { 1, 2 }, { 4, 3 }, { 32, 6 } };
    check_closed_form(dims[_i][0], dims[_i][1], LGD_COVARIANCE_DIAGONAL);
}
END_TEST

START_TEST(gmm_isotropic_matches_diagonal)
{
    lgd_context *ctx = tu_context(0);
    const int D = 5, K = 3, B = 7;
    float w[3] = { 1, 2, 3 }, mu[15], iso[3] = { 0.3f, 1.0f, 2.5f }, diag[15], x[35];
    tu_rng rng = { 5 };
    tu_fill_normal(&rng, mu, 15, 2.0f);
    tu_fill_normal(&rng, x, 35, 2.0f);
    for (int k = 0; k < K; k++)
        for (int i = 0; i < D; i++)
            diag[k * D + i] = iso[k];
    lgd_model *mi = NULL, *md = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, D, K, w, mu, iso, LGD_COVARIANCE_ISOTROPIC, &mi));
    TU_OK(ctx, lgd_model_create_gmm(ctx, D, K, w, mu, diag, LGD_COVARIANCE_DIAGONAL, &md));
    lgd_tensor *tx = tu_tensor(ctx, B, D, x), *a = tu_tensor(ctx, B, D, NULL),
               *b = tu_tensor(ctx, B, D, NULL);
    TU_OK(ctx, lgd_model_denoise(mi, tx, 0.7f, NULL, a));
    TU_OK(ctx, lgd_model_denoise(md, tx, 0.7f, NULL, b));
    float *ha = tu_download(a), *hb = tu_download(b);
    ck_assert_mem_eq(ha, hb, sizeof(float) * B * D);
    free(ha);
    free(hb);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(a);
    lgd_tensor_destroy(b);
    lgd_model_destroy(mi);
    lgd_model_destroy(md);
    lgd_context_destroy(ctx);
}
END_TEST

/* ---------- VJP against central finite differences ---------- */

/* J^T v by central differences of the double reference denoiser. */
static void ref_vjp_fd(const ref_gmm *g, const double *x, double s, const double *v, double *out)
{
    int D = g->D;
    double *xp = malloc(D * sizeof *xp), *hp = malloc(D * sizeof *hp),
           *hm = malloc(D * sizeof *hm);
    double h = 1e-5 * (s > 1e-3 ? (s < 1 ? s : 1) : 1e-3);
    for (int j = 0; j < D; j++) {
        memcpy(xp, x, D * sizeof *xp);
        xp[j] = x[j] + h;
        ref_eval(g, xp, s, hp, NULL, NULL);
        xp[j] = x[j] - h;
        ref_eval(g, xp, s, hm, NULL, NULL);
        double acc = 0.0; /* (J^T v)_j = sum_i v_i dD_i/dx_j */
        for (int i = 0; i < D; i++)
            acc += v[i] * (hp[i] - hm[i]) / (2 * h);
        out[j] = acc;
    }
    free(xp);
    free(hp);
    free(hm);
}

static void check_vjp(int D, int K, lgd_covariance layout)
{
    lgd_context *ctx = tu_context(0);
    tu_rng rng = { 77u + (uint64_t)D * 13u + (uint64_t)K };
    ref_gmm g = ref_random(&rng, D, K, 1.0f);
    lgd_model *m = make_model(ctx, &g, layout);
    const int B = 6;
    float *x = malloc((size_t)B * D * sizeof *x), *v = malloc((size_t)B * D * sizeof *v);
    float *jv = malloc((size_t)B * D * sizeof *jv);
    double *rx = malloc(D * sizeof *rx), *rv = malloc(D * sizeof *rv), *rj = malloc(D * sizeof *rj);
    for (int si = 0; si < N_SIGMAS; si++) {
        double s = SIGMAS[si];
        sample_points(&rng, &g, s, B, x);
        tu_fill_normal(&rng, v, (size_t)B * D, 1.0f);
        lgd_tensor *tx = tu_tensor(ctx, B, D, x), *tv = tu_tensor(ctx, B, D, v),
                   *to = tu_tensor(ctx, B, D, NULL);
        TU_OK(ctx, lgd_model_vjp(m, tx, (float)s, NULL, tv, to));
        TU_OK(ctx, lgd_tensor_download(to, jv, (size_t)B * D));
        for (int b = 0; b < B; b++) {
            double vnorm = 0.0;
            for (int i = 0; i < D; i++) {
                rx[i] = x[b * D + i];
                rv[i] = v[b * D + i];
                vnorm += rv[i] * rv[i];
            }
            ref_vjp_fd(&g, rx, s, rv, rj);
            /* J = Cov[x0|x]/s^2 can be large at small s: compare relative to the row norm */
            double jn = 0.0;
            for (int i = 0; i < D; i++)
                jn += rj[i] * rj[i];
            double scale = sqrt(jn) + sqrt(vnorm);
            for (int i = 0; i < D; i++)
                ck_assert_msg(fabs(jv[b * D + i] - rj[i]) < 2e-3 * scale,
                              "D=%d K=%d layout=%d sigma=%g: (J^T v)[%d][%d] = %g, FD %g", D, K,
                              layout, s, b, i, jv[b * D + i], rj[i]);
        }
        lgd_tensor_destroy(tx);
        lgd_tensor_destroy(tv);
        lgd_tensor_destroy(to);
    }
    free(x);
    free(v);
    free(jv);
    free(rx);
    free(rv);
    free(rj);
    ref_free(&g);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}

START_TEST(gmm_vjp_fd_full)
{
    static const int dims[][2] = { { 1, 2 }, { 2, 3 }, { 6, 4 }, { 12, 3 } };
    check_vjp(dims[_i][0], dims[_i][1], LGD_COVARIANCE_FULL);
}
END_TEST

START_TEST(gmm_vjp_fd_diagonal)
{
    static const int dims[][2] = { { 1, 3 }, { 5, 4 }, { 20, 2 } };
    check_vjp(dims[_i][0], dims[_i][1], LGD_COVARIANCE_DIAGONAL);
}
END_TEST

/* FD of the library's own float denoiser at moderate sigma, and J symmetric. */
START_TEST(gmm_vjp_fd_of_library_denoiser)
{
    lgd_context *ctx = tu_context(0);
    tu_rng rng = { 99 };
    const int D = 4, K = 3;
    ref_gmm g = ref_random(&rng, D, K, 1.0f);
    lgd_model *m = make_model(ctx, &g, LGD_COVARIANCE_FULL);
    const float s = 0.8f, h = 1e-2f;
    float x[4], xs[2 * 4 * 4], out[2 * 4 * 4], J[16], JT[16];
    sample_points(&rng, &g, s, 1, x);
    /* J by central differences of the float denoiser: rows 2j, 2j+1 = x +- h e_j */
    for (int j = 0; j < D; j++)
        for (int pm = 0; pm < 2; pm++) {
            memcpy(xs + (2 * j + pm) * D, x, sizeof x);
            xs[(2 * j + pm) * D + j] += pm ? -h : h;
        }
    lgd_tensor *tx = tu_tensor(ctx, 2 * D, D, xs), *to = tu_tensor(ctx, 2 * D, D, NULL);
    TU_OK(ctx, lgd_model_denoise(m, tx, s, NULL, to));
    TU_OK(ctx, lgd_tensor_download(to, out, 2 * D * D));
    for (int j = 0; j < D; j++)
        for (int i = 0; i < D; i++)
            J[i * D + j] = (out[(2 * j) * D + i] - out[(2 * j + 1) * D + i]) / (2 * h);
    /* J^T e_i for each i from the library */
    float E[16] = { 0 }, xr[16];
    for (int i = 0; i < D; i++) {
        E[i * D + i] = 1.0f;
        memcpy(xr + i * D, x, sizeof x);
    }
    lgd_tensor *tx1 = tu_tensor(ctx, D, D, xr), *te = tu_tensor(ctx, D, D, E),
               *tj = tu_tensor(ctx, D, D, NULL);
    TU_OK(ctx, lgd_model_vjp(m, tx1, s, NULL, te, tj));
    TU_OK(ctx, lgd_tensor_download(tj, JT, 16)); /* row i = J^T e_i = column i of J... as row */
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            /* (J^T e_i)_j = J[i][j] */
            ck_assert_msg(fabsf(JT[i * D + j] - J[i * D + j]) < 5e-3f * (1 + fabsf(J[i * D + j])),
                          "J[%d][%d]: vjp %g, FD %g", i, j, JT[i * D + j], J[i * D + j]);
            /* J = Cov[x0|x]/s^2 is symmetric */
            ck_assert_msg(fabsf(JT[i * D + j] - JT[j * D + i]) < 1e-4f * (1 + fabsf(JT[i * D + j])),
                          "J not symmetric at (%d, %d)", i, j);
        }
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(to);
    lgd_tensor_destroy(tx1);
    lgd_tensor_destroy(te);
    lgd_tensor_destroy(tj);
    ref_free(&g);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* ---------- the eigensolvers behind full covariances ---------- */

/* Both solvers (LAPACK's when built with it, and the Jacobi fallback) give A V = V diag(w)
 * and V^T V = I on random symmetric matrices, including repeated eigenvalues. */
START_TEST(symmetric_eigensolvers)
{
    tu_rng rng = { 31 };
    const size_t sizes[] = { 1, 2, 7, 40 };
    for (int solver = 0; solver < 2; solver++)
        for (size_t si = 0; si < 4; si++) {
            size_t n = sizes[si];
            double *A = malloc(n * n * sizeof *A), *a = malloc(n * n * sizeof *a);
            double *w = malloc(n * sizeof *w), *V = malloc(n * n * sizeof *V);
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j <= i; j++)
                    A[i * n + j] = A[j * n + i] = tu_normal(&rng);
            if (n == 7) /* a repeated eigenvalue: A = I except one entry */
                for (size_t i = 0; i < n * n; i++)
                    A[i] = (i % (n + 1) == 0) ? (i == 0 ? 3.0 : 1.0) : 0.0;
            memcpy(a, A, n * n * sizeof *a);
            if (solver == 0)
                ck_assert_int_eq(lgd_symmetric_eigen(a, n, w, V), 0);
            else
                lgd_jacobi_eigen(a, n, w, V);
            for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < n; k++) {
                    double av = 0.0, vv = 0.0;
                    for (size_t j = 0; j < n; j++) {
                        av += A[i * n + j] * V[j * n + k];
                        vv += V[j * n + i] * V[j * n + k];
                    }
                    ck_assert_msg(fabs(av - w[k] * V[i * n + k]) < 1e-9 * (1 + fabs(w[k])),
                                  "solver %d n %zu: (A v_%zu)_%zu = %g, w v = %g", solver, n, k,
                                  i, av, w[k] * V[i * n + k]);
                    ck_assert_msg(fabs(vv - (i == k)) < 1e-9, "solver %d n %zu: V not orthonormal",
                                  solver, n);
                }
            free(A);
            free(a);
            free(w);
            free(V);
        }
}
END_TEST

/* ---------- exact posterior sampling ---------- */

START_TEST(gmm_posterior_moments)
{
    /* Posterior mean = xhat; posterior covariance = s^2 J (Tweedie's second moment). */
    lgd_context *ctx = tu_context(0);
    tu_rng rng = { 4242 };
    const int D = 3, K = 3, n = getenv("LGD_TEST_QUICK") ? 20000 : 200000;
    ref_gmm g = ref_random(&rng, D, K, 1.0f);
    lgd_model *m = make_model(ctx, &g, LGD_COVARIANCE_FULL);
    const float s = 0.7f;
    float x[3];
    sample_points(&rng, &g, s, 1, x);
    lgd_tensor *tx = tu_tensor(ctx, 1, D, x);
    lgd_tensor *draws = tu_tensor_nd(ctx, 3, (int64_t[]){ 1, n, D }, NULL);
    TU_OK(ctx, lgd_model_sample_posterior(m, tx, s, 123, 0, draws));
    float *h = tu_download(draws);
    double mean[3] = { 0 }, cov[9] = { 0 };
    for (int i = 0; i < n; i++)
        for (int a = 0; a < D; a++)
            mean[a] += h[i * D + a] / n;
    for (int i = 0; i < n; i++)
        for (int a = 0; a < D; a++)
            for (int b = 0; b < D; b++)
                cov[a * D + b] += (h[i * D + a] - mean[a]) * (h[i * D + b] - mean[b]) / (n - 1);
    double rx[3] = { x[0], x[1], x[2] }, rh[3], jcol[3], e[3];
    ref_eval(&g, rx, s, rh, NULL, NULL);
    for (int a = 0; a < D; a++) {
        double se = sqrt(cov[a * D + a] / n);
        ck_assert_msg(fabs(mean[a] - rh[a]) < 5 * se + 1e-4,
                      "posterior mean[%d] = %g, xhat %g (5 se = %g)", a, mean[a], rh[a], 5 * se);
        for (int b = 0; b < D; b++)
            e[b] = (a == b);
        ref_vjp_fd(&g, rx, s, e, jcol); /* row a of J (J symmetric) */
        for (int b = 0; b < D; b++) {
            double want = s * s * jcol[b];
            double se_c = sqrt((cov[a * D + a] * cov[b * D + b] + want * want) / n);
            ck_assert_msg(fabs(cov[a * D + b] - want) < 6 * se_c + 1e-4,
                          "posterior cov[%d][%d] = %g, s^2 J = %g", a, b, cov[a * D + b], want);
        }
    }
    /* same seed, rows split: row 0 of a 2-row call with first_row 0 == 1-row call */
    float x2[6] = { x[0], x[1], x[2], 0.3f, -0.2f, 0.1f };
    lgd_tensor *tx2 = tu_tensor(ctx, 2, D, x2);
    lgd_tensor *d2 = tu_tensor_nd(ctx, 3, (int64_t[]){ 2, 8, D }, NULL);
    lgd_tensor *d1 = tu_tensor_nd(ctx, 3, (int64_t[]){ 1, 8, D }, NULL);
    TU_OK(ctx, lgd_model_sample_posterior(m, tx2, s, 9, 0, d2));
    lgd_tensor *tx_row1 = tu_tensor(ctx, 1, D, x2 + 3);
    TU_OK(ctx, lgd_model_sample_posterior(m, tx_row1, s, 9, 1, d1));
    float *h2 = tu_download(d2), *h1 = tu_download(d1);
    ck_assert_mem_eq(h2 + 8 * D, h1, sizeof(float) * 8 * D);
    free(h);
    free(h2);
    free(h1);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tx2);
    lgd_tensor_destroy(tx_row1);
    lgd_tensor_destroy(draws);
    lgd_tensor_destroy(d1);
    lgd_tensor_destroy(d2);
    ref_free(&g);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(gmm_posterior_1d_quadrature)
{
    /* p(x0 | x) for the paper's 1-D mixture vs quadrature of p0(x0) N(x; x0, s^2):
     * compare P(x0 < 0 | x) and E[x0^2 | x]. */
    lgd_context *ctx = tu_context(0);
    float w[2] = { 0.5f, 0.5f }, mu[2] = { -1, 1 }, var[2] = { 0.04f, 0.04f };
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, 1, 2, w, mu, var, LGD_COVARIANCE_DIAGONAL, &m));
    const int n = getenv("LGD_TEST_QUICK") ? 20000 : 100000;
    const float s = 1.0f, x = 0.3f;
    lgd_tensor *tx = tu_tensor(ctx, 1, 1, &x);
    lgd_tensor *d = tu_tensor_nd(ctx, 3, (int64_t[]){ 1, n, 1 }, NULL);
    TU_OK(ctx, lgd_model_sample_posterior(m, tx, s, 5, 0, d));
    float *h = tu_download(d);
    double neg = 0, m2 = 0;
    for (int i = 0; i < n; i++) {
        neg += h[i] < 0;
        m2 += (double)h[i] * h[i];
    }
    neg /= n;
    m2 /= n;
    double z = 0, qneg = 0, qm2 = 0;
    for (int i = 0; i <= 200000; i++) {
        double x0 = -4 + 8.0 * i / 200000;
        double p0 = 0.5 * exp(-0.5 * (x0 + 1) * (x0 + 1) / 0.04) +
                    0.5 * exp(-0.5 * (x0 - 1) * (x0 - 1) / 0.04);
        double p = p0 * exp(-0.5 * (x - x0) * (x - x0) / (s * s));
        z += p;
        qneg += x0 < 0 ? p : 0;
        qm2 += x0 * x0 * p;
    }
    qneg /= z;
    qm2 /= z;
    ck_assert_msg(fabs(neg - qneg) < 5 * sqrt(qneg * (1 - qneg) / n),
                  "P(x0<0|x): sampled %g, quadrature %g", neg, qneg);
    ck_assert_msg(fabs(m2 - qm2) < 0.01, "E[x0^2|x]: sampled %g, quadrature %g", m2, qm2);
    free(h);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(d);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* ---------- network adapters ---------- */

/* A Gaussian prior N(0, c2 I): the exact network output for each parameterisation,
 * recovering sigma from t = sigma (LGD_TIME_SIGMA). */
typedef struct gauss_net {
    lgd_prediction pred;
    double c2, sd;
    int calls;
} gauss_net;

static double c_in_of(const gauss_net *n, double s)
{
    return n->pred == LGD_PREDICT_EDM ? 1.0 / sqrt(s * s + n->sd * n->sd) : 1.0 / sqrt(1 + s * s);
}

/* output coefficient: F = k(s) * x (all parameterisations are linear in x here) */
static double f_coef(const gauss_net *n, double s)
{
    double s2 = s * s, shrink = n->c2 / (n->c2 + s2); /* xhat = shrink * x */
    switch (n->pred) {
    case LGD_PREDICT_EPS: return (1.0 - shrink) / s;             /* eps = (x - xhat)/s */
    case LGD_PREDICT_X0: return shrink;                          /* x0 = xhat */
    case LGD_PREDICT_V: {                                        /* v = a eps - b x0 */
        double a = 1 / sqrt(1 + s2), b = s / sqrt(1 + s2);
        return a * (1.0 - shrink) / s - b * shrink;
    }
    default: {                                                   /* F = (xhat - c_skip x)/c_out */
        double sd2 = n->sd * n->sd;
        double c_skip = sd2 / (s2 + sd2), c_out = s * n->sd / sqrt(s2 + sd2);
        return (shrink - c_skip) / c_out;
    }
    }
}

static int gauss_forward(void *user, const float *x_in, float t, const float *cond, int64_t B,
                         int64_t D, float *out)
{
    (void)cond;
    gauss_net *n = user;
    n->calls++;
    double s = t, k = f_coef(n, s) / c_in_of(n, s); /* F as a function of x_in */
    for (int64_t i = 0; i < B * D; i++)
        out[i] = (float)(k * x_in[i]);
    return 0;
}

static int gauss_vjp(void *user, const float *x_in, float t, const float *cond, int64_t B,
                     int64_t D, const float *v, float *out)
{
    (void)x_in;
    (void)cond;
    gauss_net *n = user;
    double s = t, k = f_coef(n, s) / c_in_of(n, s);
    for (int64_t i = 0; i < B * D; i++)
        out[i] = (float)(k * v[i]);
    return 0;
}

START_TEST(network_adapters_exact_gaussian)
{
    lgd_context *ctx = tu_context(0);
    const lgd_prediction preds[] = { LGD_PREDICT_EPS, LGD_PREDICT_X0, LGD_PREDICT_V,
                                     LGD_PREDICT_EDM };
    const int B = 3, D = 4;
    float x[12], v[12], out[12];
    tu_rng rng = { 3 };
    tu_fill_normal(&rng, x, 12, 3.0f);
    tu_fill_normal(&rng, v, 12, 1.0f);
    for (int p = 0; p < 4; p++) {
        gauss_net net = { preds[p], 2.0, 0.5, 0 };
        lgd_network_callbacks cb = LGD_NETWORK_CALLBACKS_INIT;
        cb.dim = D;
        cb.forward = gauss_forward;
        cb.vjp = gauss_vjp;
        cb.user = &net;
        lgd_adapter_options o = LGD_ADAPTER_OPTIONS_INIT;
        o.prediction = preds[p];
        o.time_input = LGD_TIME_SIGMA;
        o.sigma_data = 0.5f;
        lgd_model *m = NULL;
        TU_OK(ctx, lgd_model_create_network_callbacks(ctx, &cb, &o, &m));
        for (int si = 1; si < N_SIGMAS; si++) {
            double s = SIGMAS[si], shrink = 2.0 / (2.0 + s * s);
            lgd_tensor *tx = tu_tensor(ctx, B, D, x), *tv = tu_tensor(ctx, B, D, v),
                       *to = tu_tensor(ctx, B, D, NULL);
            TU_OK(ctx, lgd_model_denoise(m, tx, (float)s, NULL, to));
            TU_OK(ctx, lgd_tensor_download(to, out, 12));
            for (int i = 0; i < 12; i++)
                ck_assert_msg(fabs(out[i] - shrink * x[i]) < 2e-5 * (1 + fabs(x[i])) * (1 + s),
                              "prediction %d sigma %g: D = %g, want %g", p, s, out[i],
                              shrink * x[i]);
            TU_OK(ctx, lgd_model_vjp(m, tx, (float)s, NULL, tv, to));
            TU_OK(ctx, lgd_tensor_download(to, out, 12));
            for (int i = 0; i < 12; i++)
                ck_assert_msg(fabs(out[i] - shrink * v[i]) < 2e-5 * (1 + fabs(v[i])) * (1 + s),
                              "prediction %d sigma %g: J^T v = %g, want %g", p, s, out[i],
                              shrink * v[i]);
            lgd_tensor_destroy(tx);
            lgd_tensor_destroy(tv);
            lgd_tensor_destroy(to);
        }
        lgd_model_destroy(m);
    }
    lgd_context_destroy(ctx);
}
END_TEST

/* A nonlinear network F = tanh(W x_in + t u): adapter VJP vs FD of the adapter. */
typedef struct tanh_net {
    int D;
    float W[9], u[3];
} tanh_net;

static int tanh_forward(void *user, const float *x, float t, const float *cond, int64_t B,
                        int64_t D, float *out)
{
    (void)cond;
    tanh_net *n = user;
    for (int64_t b = 0; b < B; b++)
        for (int i = 0; i < D; i++) {
            double a = t * n->u[i];
            for (int j = 0; j < D; j++)
                a += n->W[i * D + j] * x[b * D + j];
            out[b * D + i] = (float)tanh(a);
        }
    return 0;
}

static int tanh_vjp(void *user, const float *x, float t, const float *cond, int64_t B, int64_t D,
                    const float *v, float *out)
{
    (void)cond;
    tanh_net *n = user;
    for (int64_t b = 0; b < B; b++) {
        double g[3];
        for (int i = 0; i < D; i++) {
            double a = t * n->u[i];
            for (int j = 0; j < D; j++)
                a += n->W[i * D + j] * x[b * D + j];
            double th = tanh(a);
            g[i] = v[b * D + i] * (1 - th * th);
        }
        for (int j = 0; j < D; j++) {
            double acc = 0;
            for (int i = 0; i < D; i++)
                acc += n->W[i * D + j] * g[i];
            out[b * D + j] = (float)acc;
        }
    }
    return 0;
}

START_TEST(network_adapter_vjp_fd)
{
    lgd_context *ctx = tu_context(0);
    tanh_net net = { 3, { 0.8f, -0.3f, 0.5f, 0.2f, 1.1f, -0.7f, -0.4f, 0.6f, 0.9f },
                     { 0.01f, -0.02f, 0.015f } };
    float abar[100];
    for (int i = 0; i < 100; i++)
        abar[i] = (float)exp(-0.05 * (i + 1) - 0.0005 * (i + 1) * (i + 1));
    const lgd_prediction preds[] = { LGD_PREDICT_EPS, LGD_PREDICT_X0, LGD_PREDICT_V,
                                     LGD_PREDICT_EDM };
    for (int p = 0; p < 4; p++) {
        lgd_network_callbacks cb = LGD_NETWORK_CALLBACKS_INIT;
        cb.dim = 3;
        cb.forward = tanh_forward;
        cb.vjp = tanh_vjp;
        cb.user = &net;
        lgd_adapter_options o = LGD_ADAPTER_OPTIONS_INIT;
        o.prediction = preds[p];
        o.time_input = p == 3 ? LGD_TIME_LOG_SIGMA : LGD_TIME_DISCRETE;
        o.alphas_cumprod = abar;
        o.num_timesteps = 100;
        lgd_model *m = NULL;
        TU_OK(ctx, lgd_model_create_network_callbacks(ctx, &cb, &o, &m));
        for (int si = 1; si < 4; si++) {
            float s = SIGMAS[si], x[3] = { 0.4f, -1.2f, 0.7f }, v[3] = { 1.0f, 0.5f, -2.0f };
            float xs[6 * 3], out[6 * 3], jv[3];
            float h = 1e-2f * (1 + s);
            for (int j = 0; j < 3; j++)
                for (int pm = 0; pm < 2; pm++) {
                    memcpy(xs + (2 * j + pm) * 3, x, sizeof x);
                    xs[(2 * j + pm) * 3 + j] += pm ? -h : h;
                }
            lgd_tensor *tx = tu_tensor(ctx, 6, 3, xs), *to = tu_tensor(ctx, 6, 3, NULL);
            TU_OK(ctx, lgd_model_denoise(m, tx, s, NULL, to));
            TU_OK(ctx, lgd_tensor_download(to, out, 18));
            lgd_tensor *t1 = tu_tensor(ctx, 1, 3, x), *tv = tu_tensor(ctx, 1, 3, v),
                       *tj = tu_tensor(ctx, 1, 3, NULL);
            TU_OK(ctx, lgd_model_vjp(m, t1, s, NULL, tv, tj));
            TU_OK(ctx, lgd_tensor_download(tj, jv, 3));
            for (int j = 0; j < 3; j++) {
                double fd = 0;
                for (int i = 0; i < 3; i++)
                    fd += v[i] * (out[(2 * j) * 3 + i] - out[(2 * j + 1) * 3 + i]) / (2.0 * h);
                ck_assert_msg(fabs(jv[j] - fd) < 3e-3 * (1 + fabs(fd)),
                              "prediction %d sigma %g: (J^T v)[%d] = %g, FD %g", p, s, j, jv[j],
                              fd);
            }
            lgd_tensor_destroy(tx);
            lgd_tensor_destroy(to);
            lgd_tensor_destroy(t1);
            lgd_tensor_destroy(tv);
            lgd_tensor_destroy(tj);
        }
        lgd_model_destroy(m);
    }
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(network_time_inputs)
{
    lgd_context *ctx = tu_context(0);
    float abar[50];
    for (int i = 0; i < 50; i++)
        abar[i] = 1.0f - 0.019f * (i + 1);
    tanh_net net = { 3, { 0 }, { 0 } };
    lgd_network_callbacks cb = LGD_NETWORK_CALLBACKS_INIT;
    cb.dim = 3;
    cb.forward = tanh_forward;
    cb.user = &net;
    lgd_adapter_options o = LGD_ADAPTER_OPTIONS_INIT;
    o.alphas_cumprod = abar;
    o.num_timesteps = 50;
    lgd_model *m = NULL, *mr = NULL, *ml = NULL;
    TU_OK(ctx, lgd_model_create_network_callbacks(ctx, &cb, &o, &m));
    o.time_input = LGD_TIME_DISCRETE_ROUND;
    TU_OK(ctx, lgd_model_create_network_callbacks(ctx, &cb, &o, &mr));
    o.time_input = LGD_TIME_LOG_SIGMA;
    TU_OK(ctx, lgd_model_create_network_callbacks(ctx, &cb, &o, &ml));
    double sig[50];
    for (int i = 0; i < 50; i++)
        sig[i] = sqrt((1.0 - abar[i]) / abar[i]);
    float t;
    for (int i = 0; i < 50; i++) {
        TU_OK(ctx, lgd_model_network_time(m, (float)sig[i], &t));
        ck_assert_msg(fabsf(t - (float)i) < 1e-3f, "t(sigma_%d) = %g", i, t);
    }
    /* geometric midpoint of sigma_10 and sigma_11 -> t = 10.5 (log-sigma interpolation) */
    TU_OK(ctx, lgd_model_network_time(m, (float)sqrt(sig[10] * sig[11]), &t));
    ck_assert_msg(fabsf(t - 10.5f) < 1e-3f, "t(mid) = %g", t);
    TU_OK(ctx, lgd_model_network_time(mr, (float)(sig[10] * pow(sig[11] / sig[10], 0.4)), &t));
    ck_assert_msg(t == 10.0f, "rounded t = %g", t);
    TU_OK(ctx, lgd_model_network_time(m, 1e-6f, &t));
    ck_assert_msg(t == 0.0f, "clamped low t = %g", t);
    TU_OK(ctx, lgd_model_network_time(m, 1e6f, &t));
    ck_assert_msg(t == 49.0f, "clamped high t = %g", t);
    TU_OK(ctx, lgd_model_network_time(ml, 2.0f, &t));
    ck_assert_msg(fabsf(t - 0.25f * logf(2.0f)) < 1e-7f, "c_noise = %g", t);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_network_time(m, -1.0f, &t));
    /* not a network */
    float w = 1, mu = 0, var = 1;
    lgd_model *gm = NULL;
    TU_OK(ctx, lgd_model_create_gmm(ctx, 1, 1, &w, &mu, &var, LGD_COVARIANCE_ISOTROPIC, &gm));
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_model_network_time(gm, 1.0f, &t));
    /* bad alphas_cumprod */
    abar[20] = abar[19];
    o.time_input = LGD_TIME_DISCRETE;
    lgd_model *bad = NULL;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_create_network_callbacks(ctx, &cb, &o, &bad));
    ck_assert_ptr_null(bad);
    o.alphas_cumprod = NULL;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_create_network_callbacks(ctx, &cb, &o, &bad));
    o.time_input = LGD_TIME_SIGMA;
    o.prediction = LGD_PREDICT_EDM;
    o.sigma_data = 0.0f;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_create_network_callbacks(ctx, &cb, &o, &bad));
    o.sigma_data = 0.5f;
    o.prediction = (lgd_prediction)9;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_create_network_callbacks(ctx, &cb, &o, &bad));
    lgd_model_destroy(m);
    lgd_model_destroy(mr);
    lgd_model_destroy(ml);
    lgd_model_destroy(gm);
    lgd_context_destroy(ctx);
}
END_TEST

/* ---------- host-callback models ---------- */

typedef struct cb_state {
    int destroyed, denoise_calls, vjp_calls, fail_with;
    float poison;        /* written into the output when non-zero */
    float last_cond[4];
    int64_t last_batch;
} cb_state;

/* D(x) = 0.5 x + cond[0] (if any); J = 0.5 I */
static int cb_denoise(void *user, const float *x, float sigma, const float *cond, int64_t B,
                      int64_t D, float *out)
{
    (void)sigma;
    cb_state *s = user;
    s->denoise_calls++;
    s->last_batch = B;
    if (s->fail_with)
        return s->fail_with;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < D; i++)
            out[b * D + i] = 0.5f * x[b * D + i] + (cond ? cond[b * 2] : 0.0f);
    if (cond)
        memcpy(s->last_cond, cond, 4 * sizeof(float));
    if (s->poison != 0.0f)
        out[0] = s->poison;
    return 0;
}

static int cb_vjp(void *user, const float *x, float sigma, const float *cond, int64_t B,
                  int64_t D, const float *v, float *out)
{
    (void)x;
    (void)sigma;
    (void)cond;
    cb_state *s = user;
    s->vjp_calls++;
    for (int64_t i = 0; i < B * D; i++)
        out[i] = 0.5f * v[i];
    return 0;
}

static void cb_destroy(void *user) { ((cb_state *)user)->destroyed++; }

START_TEST(callback_model_roundtrip_and_failures)
{
    lgd_context *ctx = tu_context(0);
    cb_state st = { 0 };
    lgd_model_callbacks cb = LGD_MODEL_CALLBACKS_INIT;
    cb.dim = 2;
    cb.cond_dim = 2;
    cb.denoise = cb_denoise;
    cb.vjp = cb_vjp;
    cb.destroy = cb_destroy;
    cb.user = &st;
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_create_callbacks(ctx, &cb, &m));
    ck_assert_int_eq(lgd_model_dim(m), 2);
    ck_assert_int_eq(lgd_model_cond_dim(m), 2);
    ck_assert_int_eq(lgd_model_has_exact_posterior(m), 0);
    float x[4] = { 1, 2, 3, 4 }, c[4] = { 10, 0, 20, 0 }, out[4];
    lgd_tensor *tx = tu_tensor(ctx, 2, 2, x), *tc = tu_tensor(ctx, 2, 2, c),
               *to = tu_tensor(ctx, 2, 2, NULL);
    TU_OK(ctx, lgd_model_denoise(m, tx, 1.0f, tc, to));
    TU_OK(ctx, lgd_tensor_download(to, out, 4));
    ck_assert_float_eq(out[0], 10.5f);
    ck_assert_float_eq(out[3], 22.0f);
    ck_assert_float_eq(st.last_cond[2], 20.0f);
    /* score = (D - x)/s^2 */
    TU_OK(ctx, lgd_model_score(m, tx, 2.0f, NULL, to));
    TU_OK(ctx, lgd_tensor_download(to, out, 4));
    ck_assert_float_eq_tol(out[1], (1.0f - 2.0f) / 4.0f, 1e-7f);
    /* VJP runs a denoise first (the contract), then the vjp */
    int before = st.denoise_calls;
    TU_OK(ctx, lgd_model_vjp(m, tx, 1.0f, NULL, tx, to));
    ck_assert_int_eq(st.denoise_calls, before + 1);
    ck_assert_int_eq(st.vjp_calls, 1);
    TU_OK(ctx, lgd_tensor_download(to, out, 4));
    ck_assert_float_eq(out[2], 1.5f);
    /* failing callback: status, message with the code, model still usable */
    st.fail_with = 7;
    TU_FAILS(ctx, LGD_ERR_CALLBACK, lgd_model_denoise(m, tx, 1.0f, NULL, to));
    ck_assert_ptr_nonnull(strstr(lgd_context_last_error(ctx), "7"));
    st.fail_with = 0;
    TU_OK(ctx, lgd_model_denoise(m, tx, 1.0f, NULL, to));
    /* non-finite output */
    st.poison = NAN;
    TU_FAILS(ctx, LGD_ERR_NON_FINITE, lgd_model_denoise(m, tx, 1.0f, NULL, to));
    st.poison = INFINITY;
    TU_FAILS(ctx, LGD_ERR_NON_FINITE, lgd_model_denoise(m, tx, 1.0f, NULL, to));
    st.poison = 0.0f;
    TU_OK(ctx, lgd_model_denoise(m, tx, 1.0f, NULL, to));
    /* unsupported operations */
    lgd_tensor *tl = tu_tensor_nd(ctx, 1, (int64_t[]){ 2 }, NULL);
    lgd_tensor *td = tu_tensor_nd(ctx, 3, (int64_t[]){ 2, 3, 2 }, NULL);
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_model_log_density(m, tx, 1.0f, tl));
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_model_sample_posterior(m, tx, 1.0f, 0, 0, td));
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tc);
    lgd_tensor_destroy(to);
    lgd_tensor_destroy(tl);
    lgd_tensor_destroy(td);
    /* the context goes first: the model keeps it alive */
    lgd_context_destroy(ctx);
    ck_assert_int_eq(st.destroyed, 0);
    lgd_model_destroy(m);
    ck_assert_int_eq(st.destroyed, 1);
}
END_TEST

START_TEST(callback_model_bad_input)
{
    lgd_context *ctx = tu_context(0);
    cb_state st = { 0 };
    lgd_model_callbacks cb = LGD_MODEL_CALLBACKS_INIT;
    cb.dim = 2;
    cb.denoise = cb_denoise;
    cb.destroy = cb_destroy;
    cb.user = &st;
    lgd_model *m = NULL;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_create_callbacks(ctx, NULL, &m));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_create_callbacks(ctx, &cb, NULL));
    ck_assert_int_eq(lgd_model_create_callbacks(NULL, &cb, &m), LGD_ERR_INVALID_ARGUMENT);
    cb.dim = 0;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_create_callbacks(ctx, &cb, &m));
    cb.dim = 2;
    cb.denoise = NULL;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_create_callbacks(ctx, &cb, &m));
    cb.denoise = cb_denoise;
    cb.struct_size = 0;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_create_callbacks(ctx, &cb, &m));
    ck_assert_int_eq(st.destroyed, 0); /* never called on a failed create */
    /* smaller than the first published layout: refused (no field is half-read) */
    cb.struct_size = (uint32_t)offsetof(lgd_model_callbacks, vjp);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_create_callbacks(ctx, &cb, &m));
    ck_assert_ptr_null(m);
    /* a model without a VJP and without destroy */
    cb.struct_size = sizeof cb;
    cb.destroy = NULL;
    TU_OK(ctx, lgd_model_create_callbacks(ctx, &cb, &m));
    cb.destroy = cb_destroy;
    float x[4] = { 1, 2, 3, 4 };
    lgd_tensor *tx = tu_tensor(ctx, 2, 2, x), *to = tu_tensor(ctx, 2, 2, NULL),
               *t3 = tu_tensor(ctx, 2, 3, NULL), *tb = tu_tensor(ctx, 3, 2, NULL),
               *tc = tu_tensor(ctx, 2, 2, NULL);
    lgd_model_destroy(m); /* destroy = NULL: nothing to call */
    ck_assert_int_eq(st.destroyed, 0);
    cb.struct_size = sizeof cb;
    TU_OK(ctx, lgd_model_create_callbacks(ctx, &cb, &m));
    TU_FAILS(ctx, LGD_ERR_UNSUPPORTED, lgd_model_vjp(m, tx, 1.0f, NULL, tx, to));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_denoise(m, tx, 0.0f, NULL, to));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_denoise(m, tx, -1.0f, NULL, to));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_denoise(m, tx, NAN, NULL, to));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_denoise(m, NULL, 1.0f, NULL, to));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_model_denoise(m, t3, 1.0f, NULL, to));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_model_denoise(m, tx, 1.0f, NULL, tb));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_denoise(m, tx, 1.0f, tc, to));
    ck_assert_int_eq(lgd_model_denoise(NULL, tx, 1.0f, NULL, to), LGD_ERR_INVALID_ARGUMENT);
    /* tensors of another context */
    lgd_context *other = tu_context(0);
    lgd_tensor *tf = tu_tensor(other, 2, 2, NULL);
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_denoise(m, tf, 1.0f, NULL, to));
    TU_OK(ctx, lgd_model_denoise(m, tx, 1.0f, NULL, to)); /* still usable */
    lgd_model_destroy(NULL);
    lgd_tensor_destroy(tf);
    lgd_context_destroy(other);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(to);
    lgd_tensor_destroy(t3);
    lgd_tensor_destroy(tb);
    lgd_tensor_destroy(tc);
    lgd_model_destroy(m);
    ck_assert_int_eq(st.destroyed, 1);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(gmm_bad_input)
{
    lgd_context *ctx = tu_context(0);
    float w[2] = { 1, 1 }, mu[4] = { 0, 0, 1, 1 };
    float full[8] = { 1, 0.5f, 0.5f, 1, 1, 0, 0, 1 }, diag[4] = { 1, 1, 1, 1 };
    lgd_model *m = NULL;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_model_create_gmm(ctx, 0, 2, w, mu, diag, LGD_COVARIANCE_DIAGONAL, &m));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_model_create_gmm(ctx, 2, 0, w, mu, diag, LGD_COVARIANCE_DIAGONAL, &m));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_model_create_gmm(ctx, 2, 2, NULL, mu, diag, LGD_COVARIANCE_DIAGONAL, &m));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_model_create_gmm(ctx, 2, 2, w, mu, diag, (lgd_covariance)7, &m));
    w[1] = -1;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_model_create_gmm(ctx, 2, 2, w, mu, diag, LGD_COVARIANCE_DIAGONAL, &m));
    w[1] = 1;
    mu[3] = NAN;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_model_create_gmm(ctx, 2, 2, w, mu, diag, LGD_COVARIANCE_DIAGONAL, &m));
    mu[3] = 1;
    diag[2] = -0.1f;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_model_create_gmm(ctx, 2, 2, w, mu, diag, LGD_COVARIANCE_DIAGONAL, &m));
    full[1] = 0.9f; /* not symmetric */
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_model_create_gmm(ctx, 2, 2, w, mu, full, LGD_COVARIANCE_FULL, &m));
    full[1] = full[2] = 2.0f; /* eigenvalues 3 and -1 */
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_model_create_gmm(ctx, 2, 2, w, mu, full, LGD_COVARIANCE_FULL, &m));
    ck_assert_ptr_null(m);
    /* a singular (rank-1) covariance is fine at sigma > 0 */
    full[0] = full[1] = full[2] = full[3] = 1.0f;
    TU_OK(ctx, lgd_model_create_gmm(ctx, 2, 2, w, mu, full, LGD_COVARIANCE_FULL, &m));
    float x[2] = { 0.3f, -0.2f };
    lgd_tensor *tx = tu_tensor(ctx, 1, 2, x), *to = tu_tensor(ctx, 1, 2, NULL);
    lgd_tensor *tl = tu_tensor_nd(ctx, 1, (int64_t[]){ 1 }, NULL);
    TU_OK(ctx, lgd_model_denoise(m, tx, 0.01f, NULL, to));
    /* ... but its density at sigma = 0 is singular */
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_log_density(m, tx, 0.0f, tl));
    lgd_tensor *bad = tu_tensor_nd(ctx, 3, (int64_t[]){ 2, 4, 2 }, NULL);
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_model_sample_posterior(m, tx, 1.0f, 0, 0, bad));
    TU_OK(ctx, lgd_model_denoise(m, tx, 0.5f, NULL, to));
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(to);
    lgd_tensor_destroy(tl);
    lgd_tensor_destroy(bad);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

/* ---------- callbacks that report errors or leave outputs unwritten ---------- */

/* Model callbacks D(x) = 0.5 x, J^T v = 0.5 v, or network callbacks F(x_in) = 0.5 x_in
 * (x0-prediction) with the same VJP; the callback `which` (0: denoise / forward, 1: vjp)
 * misbehaves on request. */
typedef struct report_cb {
    lgd_context *ctx;
    int which;
    const char *message; /* lgd_context_set_callback_error(ctx, message) when not NULL */
    int32_t rc;          /* returned */
    int64_t skip;        /* out[skip] left unwritten when >= 0 */
} report_cb;

static int32_t report_run(report_cb *r, int which, const float *in, int64_t count, float *out)
{
    if (r->which == which) {
        if (r->message)
            lgd_context_set_callback_error(r->ctx, r->message);
        if (r->rc)
            return r->rc;
    }
    for (int64_t i = 0; i < count; i++)
        if (r->which != which || i != r->skip)
            out[i] = 0.5f * in[i];
    return 0;
}

static int32_t report_denoise(void *user, const float *x, float sigma, const float *cond,
                              int64_t B, int64_t D, float *xhat)
{
    (void)sigma;
    (void)cond;
    return report_run(user, 0, x, B * D, xhat);
}

static int32_t report_vjp(void *user, const float *x, float sigma, const float *cond, int64_t B,
                          int64_t D, const float *v, float *out)
{
    (void)x;
    (void)sigma;
    (void)cond;
    return report_run(user, 1, v, B * D, out);
}

static int32_t report_forward(void *user, const float *x_in, float t, const float *cond,
                              int64_t B, int64_t D, float *out)
{
    (void)t;
    (void)cond;
    return report_run(user, 0, x_in, B * D, out);
}

static int32_t report_net_vjp(void *user, const float *x_in, float t, const float *cond,
                              int64_t B, int64_t D, const float *v, float *out)
{
    (void)x_in;
    (void)t;
    (void)cond;
    return report_run(user, 1, v, B * D, out);
}

/* kind 0: lgd_model_create_callbacks, 1: lgd_model_create_network_callbacks */
static lgd_model *report_model(lgd_context *ctx, report_cb *r, int kind, lgd_memory memory)
{
    r->ctx = ctx;
    r->skip = -1;
    lgd_model *m = NULL;
    if (kind == 0) {
        lgd_model_callbacks cb = LGD_MODEL_CALLBACKS_INIT;
        cb.memory = memory;
        cb.dim = 2;
        cb.denoise = report_denoise;
        cb.vjp = report_vjp;
        cb.user = r;
        TU_OK(ctx, lgd_model_create_callbacks(ctx, &cb, &m));
    } else {
        lgd_network_callbacks cb = LGD_NETWORK_CALLBACKS_INIT;
        cb.memory = memory;
        cb.dim = 2;
        cb.forward = report_forward;
        cb.vjp = report_net_vjp;
        cb.user = r;
        lgd_adapter_options o = LGD_ADAPTER_OPTIONS_INIT;
        o.prediction = LGD_PREDICT_X0;
        o.time_input = LGD_TIME_SIGMA;
        TU_OK(ctx, lgd_model_create_network_callbacks(ctx, &cb, &o, &m));
    }
    return m;
}

static void assert_error_has(lgd_context *ctx, const char *needle, int want)
{
    const char *msg = lgd_context_last_error(ctx);
    ck_assert_msg((strstr(msg, needle) != NULL) == want, "error message \"%s\" %s \"%s\"", msg,
                  want ? "lacks" : "has", needle);
}

/* the failing call for callback `which` */
static lgd_status report_call(lgd_model *m, int which, lgd_tensor *tx, lgd_tensor *to)
{
    return which ? lgd_model_vjp(m, tx, 1.0f, NULL, tx, to)
                 : lgd_model_denoise(m, tx, 1.0f, NULL, to);
}

static const char *const REPORT_NAMES[2][2] = { { "model denoise callback",
                                                  "model vjp callback" },
                                                { "network forward callback",
                                                  "network vjp callback" } };

START_TEST(callback_messages_reach_last_error)
{
    lgd_context *ctx = tu_context(0);
    lgd_backend_ops fake = *ctx->ops;
    fake.host_memory = 0;
    const lgd_backend_ops *real = ctx->ops;
    float x[4] = { 1, 2, 3, 4 };
    lgd_tensor *tx = tu_tensor(ctx, 2, 2, x), *to = tu_tensor(ctx, 2, 2, NULL);
    char want[128];
    for (int kind = 0; kind < 2; kind++)
        for (int mode = 0; mode < 3; mode++) /* direct host, staged host, device memory */
            for (int which = 0; which < 2; which++) {
                report_cb r = { 0 };
                lgd_model *m =
                    report_model(ctx, &r, kind, mode == 2 ? LGD_MEMORY_DEVICE : LGD_MEMORY_HOST);
                if (mode == 1)
                    ctx->ops = &fake;
                r.which = which;
                r.message = "weights not loaded";
                r.rc = 3;
                TU_FAILS(ctx, LGD_ERR_CALLBACK, report_call(m, which, tx, to));
                snprintf(want, sizeof want, "%s returned 3", REPORT_NAMES[kind][which]);
                assert_error_has(ctx, want, 1);
                assert_error_has(ctx, ": weights not loaded", 1);
                /* set, then return 0: discarded, and not seen by a later failure */
                r.rc = 0;
                r.message = "just a remark";
                TU_OK(ctx, report_call(m, which, tx, to));
                r.message = NULL;
                r.rc = 9;
                TU_FAILS(ctx, LGD_ERR_CALLBACK, report_call(m, which, tx, to));
                snprintf(want, sizeof want, "%s returned 9", REPORT_NAMES[kind][which]);
                assert_error_has(ctx, want, 1);
                assert_error_has(ctx, "remark", 0);
                ctx->ops = real;
                lgd_model_destroy(m);
            }
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(to);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(callback_unwritten_outputs)
{
    lgd_context *ctx = tu_context(0); /* check_callback_outputs = 1 (testutil.c) */
    lgd_backend_ops fake = *ctx->ops;
    fake.host_memory = 0;
    const lgd_backend_ops *real = ctx->ops;
    float x[4] = { 1, 2, 3, 4 }, out[4];
    lgd_tensor *tx = tu_tensor(ctx, 2, 2, x), *to = tu_tensor(ctx, 2, 2, NULL);
    char want[160];
    for (int kind = 0; kind < 2; kind++)
        for (int mode = 0; mode < 3; mode++) /* direct host, staged host, device memory */
            for (int which = 0; which < 2; which++) {
                report_cb r = { 0 };
                lgd_model *m =
                    report_model(ctx, &r, kind, mode == 2 ? LGD_MEMORY_DEVICE : LGD_MEMORY_HOST);
                if (mode == 1)
                    ctx->ops = &fake;
                r.which = which;
                TU_OK(ctx, report_call(m, which, tx, to));
                r.skip = 3;
                TU_FAILS(ctx, LGD_ERR_CALLBACK, report_call(m, which, tx, to));
                const char *out_name = kind == 0 && which == 0 ? "xhat" : "out";
                if (mode < 2)
                    snprintf(want, sizeof want,
                             "%s returned 0 but left %s[3] unwritten (NaN; 1 of 4 values "
                             "unwritten; check_callback_outputs is on)",
                             REPORT_NAMES[kind][which], out_name);
                else
                    snprintf(want, sizeof want, "%s returned 0 but left %s non-finite",
                             REPORT_NAMES[kind][which], out_name);
                assert_error_has(ctx, want, 1);
                r.skip = -1;
                TU_OK(ctx, report_call(m, which, tx, to));
                ctx->ops = real;
                lgd_model_destroy(m);
            }
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(to);
    lgd_context_destroy(ctx);

    /* off (the default): not filled, not checked; the entry keeps what was there */
    lgd_context_options o = LGD_CONTEXT_OPTIONS_INIT;
    ctx = NULL;
    ck_assert_int_eq(lgd_context_create(&o, &ctx, NULL), LGD_OK);
    const float before[4] = { -1, -2, -3, -4 };
    tx = tu_tensor(ctx, 2, 2, x);
    to = tu_tensor(ctx, 2, 2, before);
    for (int mode = 0; mode < 2; mode++) {
        report_cb r = { 0 };
        lgd_model *m = report_model(ctx, &r, 0, mode ? LGD_MEMORY_DEVICE : LGD_MEMORY_HOST);
        r.skip = 3;
        TU_OK(ctx, lgd_model_denoise(m, tx, 1.0f, NULL, to));
        TU_OK(ctx, lgd_tensor_download(to, out, 4));
        ck_assert_float_eq(out[2], 1.5f);
        ck_assert_float_eq(out[3], -4.0f);
        lgd_model_destroy(m);
    }
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(to);
    lgd_context_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("gmm");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, gmm_closed_form_full, 0, 5);
    tcase_add_loop_test(tc, gmm_closed_form_diagonal, 0, 3);
    tcase_add_test(tc, gmm_isotropic_matches_diagonal);
    tcase_add_loop_test(tc, gmm_vjp_fd_full, 0, 4);
    tcase_add_loop_test(tc, gmm_vjp_fd_diagonal, 0, 3);
    tcase_add_test(tc, gmm_vjp_fd_of_library_denoiser);
    tcase_add_test(tc, symmetric_eigensolvers);
    tcase_add_test(tc, gmm_posterior_moments);
    tcase_add_test(tc, gmm_posterior_1d_quadrature);
    tcase_add_test(tc, gmm_bad_input);
    suite_add_tcase(s, tc);
    TCase *tn = tcase_create("network");
    tcase_add_test(tn, network_adapters_exact_gaussian);
    tcase_add_test(tn, network_adapter_vjp_fd);
    tcase_add_test(tn, network_time_inputs);
    suite_add_tcase(s, tn);
    TCase *tcb = tcase_create("callbacks");
    tcase_add_test(tcb, callback_model_roundtrip_and_failures);
    tcase_add_test(tcb, callback_model_bad_input);
    tcase_add_test(tcb, callback_messages_reach_last_error);
    tcase_add_test(tcb, callback_unwritten_outputs);
    suite_add_tcase(s, tcb);
    return tu_run(s);
}
