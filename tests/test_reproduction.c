/*
 * test_reproduction.c - the paper's 1-D Gaussian-mixture experiment (issue 3), as the
 * `lgd mixture` tool runs it:
 *
 *  - the exact guidance term the tool plots, score(N0_sigma) - score(p_sigma) from two
 *    library models, matches d/dx log INT p(y=0|x0) p(x0|x) dx0 by quadrature in double
 *    (with the logistic loss itself, so the test also checks that it is the mixture's
 *    component posterior), at sigma = 1 and 80;
 *  - DPS gets the scale of the guidance wrong (too large at sigma = 80, vanishing on the
 *    target side at sigma = 1) and LGD-MC with n = 100 is closer to the truth;
 *  - the KL ordering exact < LGD-MC (n = 100) < DPS for a fixed seed, with KL(DPS) at
 *    least 10 times KL(LGD-MC), through the public API as the tool does it;
 *  - the paper's protocol by blocks: rows [kB, (k+1)B) of a run are the run of B
 *    samples started at first_row = kB;
 *  - the tool (path in $LGD_TOOL, set by meson): its CSV files are well formed, its
 *    SVG files are SVG, and its exit statuses are 0 / 1 / 2 as documented.
 *
 * LGD_TEST_QUICK=1 (the valgrind pass) uses fewer samples.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "tooltest.h"


/* The experiment: 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2), loss softplus(-(a x0 + b)). */
static const float W[2] = { 0.5f, 0.5f };
static const float M[2] = { -1.0f, 1.0f };
static const float V[2] = { 0.04f, 0.04f };
static const float LOGISTIC_A = -50.0f, LOGISTIC_B = 0.0f;

static int quick(void)
{
    const char *q = getenv("LGD_TEST_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

typedef struct fixture {
    lgd_context *ctx;
    lgd_model *mix, *target;
    lgd_loss *loss;
} fixture;

static void fixture_init(fixture *f)
{
    f->ctx = tu_context(0);
    const float one = 1.0f;
    TU_OK(f->ctx, lgd_model_create_gmm(f->ctx, 1, 2, W, M, V, LGD_COVARIANCE_ISOTROPIC, &f->mix));
    TU_OK(f->ctx, lgd_model_create_gmm(f->ctx, 1, 1, &one, &M[0], &V[0], LGD_COVARIANCE_ISOTROPIC,
                                       &f->target));
    TU_OK(f->ctx, lgd_loss_create_logistic(f->ctx, 1, &LOGISTIC_A, LOGISTIC_B, &f->loss));
}

static void fixture_free(fixture *f)
{
    lgd_loss_destroy(f->loss);
    lgd_model_destroy(f->target);
    lgd_model_destroy(f->mix);
    lgd_context_destroy(f->ctx);
}

/* ---- 1. closed form vs quadrature ---- */

static double log_sigmoid(double z)
{
    return z >= 0.0 ? -log1p(exp(-z)) : z - log1p(exp(z));
}

#define TWO_PI 6.283185307179586

static double log_prior(double x0)
{
    double l0 = log(0.5) - 0.5 * log(TWO_PI * 0.04) - (x0 + 1.0) * (x0 + 1.0) / (2.0 * 0.04);
    double l1 = log(0.5) - 0.5 * log(TWO_PI * 0.04) - (x0 - 1.0) * (x0 - 1.0) / (2.0 * 0.04);
    double m = fmax(l0, l1);
    return m + log(exp(l0 - m) + exp(l1 - m));
}

/*
 * d/dx log INT p(y=0|x0) p(x0|x) dx0 = (E[x0 | x, y=0] - E[x0 | x]) / sigma^2, both
 * posterior means by the trapezoid rule on x0 in [-3, 3] (the prior is negligible
 * beyond), in log space for stability.
 */
static double quadrature_guidance(double x, double sigma)
{
    const int n = 12001;
    const double lo = -3.0, hi = 3.0, h = (hi - lo) / (n - 1);
    double max_a = -INFINITY, max_b = -INFINITY;
    for (int i = 0; i < n; i++) {
        double x0 = lo + h * i;
        double la = log_prior(x0) - (x - x0) * (x - x0) / (2.0 * sigma * sigma);
        double lb = la + log_sigmoid(LOGISTIC_A * x0 + LOGISTIC_B);
        max_a = fmax(max_a, la);
        max_b = fmax(max_b, lb);
    }
    double za = 0.0, ma = 0.0, zb = 0.0, mb = 0.0;
    for (int i = 0; i < n; i++) {
        double x0 = lo + h * i, wt = (i == 0 || i == n - 1) ? 0.5 : 1.0;
        double la = log_prior(x0) - (x - x0) * (x - x0) / (2.0 * sigma * sigma);
        double lb = la + log_sigmoid(LOGISTIC_A * x0 + LOGISTIC_B);
        double ea = wt * exp(la - max_a), eb = wt * exp(lb - max_b);
        za += ea;
        ma += ea * x0;
        zb += eb;
        mb += eb * x0;
    }
    return (mb / zb - ma / za) / (sigma * sigma);
}

/* The tool's exact guidance term: score(target) - score(mixture) at every x. */
static void api_exact_guidance(fixture *f, const float *x, int64_t n, float sigma, double *g)
{
    lgd_tensor *xt = tu_tensor(f->ctx, n, 1, x);
    lgd_tensor *s_tgt = tu_tensor(f->ctx, n, 1, NULL), *s_mix = tu_tensor(f->ctx, n, 1, NULL);
    TU_OK(f->ctx, lgd_model_score(f->target, xt, sigma, NULL, s_tgt));
    TU_OK(f->ctx, lgd_model_score(f->mix, xt, sigma, NULL, s_mix));
    float *a = tu_download(s_tgt), *b = tu_download(s_mix);
    for (int64_t i = 0; i < n; i++)
        g[i] = (double)a[i] - (double)b[i];
    free(a);
    free(b);
    lgd_tensor_destroy(xt);
    lgd_tensor_destroy(s_tgt);
    lgd_tensor_destroy(s_mix);
}

/* An estimator's guidance term (lgd_guidance_term) at every x. */
static void api_guidance(fixture *f, lgd_guidance_kind kind, int32_t n_mc, const float *x,
                         int64_t n, float sigma, double *g)
{
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = kind;
    go.n_samples = n_mc;
    lgd_guidance *gd = NULL;
    TU_OK(f->ctx, lgd_guidance_create(f->ctx, f->mix, f->loss, &go, &gd));
    lgd_tensor *xt = tu_tensor(f->ctx, n, 1, x), *out = tu_tensor(f->ctx, n, 1, NULL);
    TU_OK(f->ctx, lgd_guidance_term(gd, xt, sigma, 0, 0, out, NULL, NULL));
    float *h = tu_download(out);
    for (int64_t i = 0; i < n; i++)
        g[i] = h[i];
    free(h);
    lgd_tensor_destroy(xt);
    lgd_tensor_destroy(out);
    lgd_guidance_destroy(gd);
}

#define NGRID 61
static const float SIGMAS[2] = { 1.0f, 80.0f };
static const double HALF_WIDTH[2] = { 3.0, 240.0 };

START_TEST(closed_form_matches_quadrature)
{
    fixture f;
    fixture_init(&f);
    for (int s = 0; s < 2; s++) {
        float x[NGRID];
        double g[NGRID], q[NGRID], qmax = 0.0;
        for (int i = 0; i < NGRID; i++)
            x[i] = (float)(-HALF_WIDTH[s] + 2.0 * HALF_WIDTH[s] * i / (NGRID - 1));
        api_exact_guidance(&f, x, NGRID, SIGMAS[s], g);
        for (int i = 0; i < NGRID; i++) {
            q[i] = quadrature_guidance(x[i], SIGMAS[s]);
            qmax = fmax(qmax, fabs(q[i]));
        }
        ck_assert_msg(qmax > 0.0, "quadrature gave zero");
        for (int i = 0; i < NGRID; i++) {
            double err = fabs(g[i] - q[i]);
            ck_assert_msg(err <= 1e-4 * qmax + 1e-4 * fabs(q[i]),
                          "sigma %g, x %g: closed form %.9g, quadrature %.9g (max |g| %.3g)",
                          (double)SIGMAS[s], (double)x[i], g[i], q[i], qmax);
        }
    }
    fixture_free(&f);
}
END_TEST

/* ||g - exact|| / ||exact||. */
static double rel_err(const double *g, const double *e, int n)
{
    double a = 0.0, b = 0.0;
    for (int i = 0; i < n; i++) {
        a += (g[i] - e[i]) * (g[i] - e[i]);
        b += e[i] * e[i];
    }
    return sqrt(a / b);
}

START_TEST(dps_misjudges_the_scale)
{
    fixture f;
    fixture_init(&f);
    for (int s = 0; s < 2; s++) {
        float x[NGRID];
        double ex[NGRID], dps[NGRID], mc[NGRID];
        for (int i = 0; i < NGRID; i++)
            x[i] = (float)(-HALF_WIDTH[s] + 2.0 * HALF_WIDTH[s] * i / (NGRID - 1));
        api_exact_guidance(&f, x, NGRID, SIGMAS[s], ex);
        api_guidance(&f, LGD_GUIDANCE_DPS, 1, x, NGRID, SIGMAS[s], dps);
        api_guidance(&f, LGD_GUIDANCE_MC, 100, x, NGRID, SIGMAS[s], mc);
        for (int i = 0; i < NGRID; i++) {
            ck_assert_msg(ex[i] < 0.0, "exact guidance must push towards y = 0");
            if (SIGMAS[s] > 10.0)      /* sigma 80: DPS far too large everywhere */
                ck_assert_msg(dps[i] / ex[i] > 5.0, "sigma 80, x %g: DPS %g, exact %g",
                              (double)x[i], dps[i], ex[i]);
            else if (x[i] < -0.5f)     /* sigma 1, target side: DPS vanishes */
                ck_assert_msg(fabs(dps[i]) < 0.01 * fabs(ex[i]), "sigma 1, x %g: DPS %g, exact %g",
                              (double)x[i], dps[i], ex[i]);
        }
        double max_dps = 0.0, max_ex = 0.0;
        for (int i = 0; i < NGRID; i++) {
            max_dps = fmax(max_dps, fabs(dps[i]));
            max_ex = fmax(max_ex, fabs(ex[i]));
        }
        ck_assert_msg(max_dps > 20.0 * max_ex, "sigma %g: max |DPS| %g, max |exact| %g",
                      (double)SIGMAS[s], max_dps, max_ex);
        double e_dps = rel_err(dps, ex, NGRID), e_mc = rel_err(mc, ex, NGRID);
        ck_assert_msg(e_mc < 0.25 * e_dps, "sigma %g: rel. error LGD-MC %g, DPS %g",
                      (double)SIGMAS[s], e_mc, e_dps);
    }
    fixture_free(&f);
}
END_TEST

/* ---- 2. KL ordering ---- */

/* Samples n points with the given guidance (on model) and seed; returns KL to N(-1, 0.04). */
static double sample_kl(fixture *f, lgd_model *model, lgd_guidance_kind kind, int32_t n_mc,
                        int64_t n, uint64_t seed)
{
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = kind;
    go.n_samples = n_mc > 0 ? n_mc : 1;
    go.step_rule = LGD_STEP_SCORE;
    go.scale = 1.0f;
    lgd_guidance *g = NULL;
    TU_OK(f->ctx, lgd_guidance_create(f->ctx, model, kind == LGD_GUIDANCE_NONE ? NULL : f->loss,
                                      &go, &g));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_DDIM;
    so.steps = 20;
    so.sigma_max = 80.0f;
    so.eta = 0.0f;
    lgd_sampler *s = NULL;
    TU_OK(f->ctx, lgd_sampler_create(g, &so, &s));
    lgd_tensor *x = tu_tensor(f->ctx, n, 1, NULL);
    TU_OK(f->ctx, lgd_sampler_run(s, x, seed, 0, NULL, NULL));
    float *h = tu_download(x);
    double m = 0.0, v = 0.0;
    for (int64_t i = 0; i < n; i++)
        m += h[i];
    m /= (double)n;
    for (int64_t i = 0; i < n; i++)
        v += (h[i] - m) * (h[i] - m);
    double sd = sqrt(v / (double)(n - 1));
    free(h);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    /* KL(N(-1, 0.2^2) || N(m, sd^2)) */
    return log(sd / 0.2) + (0.04 + (m + 1.0) * (m + 1.0)) / (2.0 * sd * sd) - 0.5;
}

START_TEST(kl_ordering)
{
    fixture f;
    fixture_init(&f);
    const int64_t n = quick() ? 2000 : 10000;
    const uint64_t seed = 0;
    double kl_exact = sample_kl(&f, f.target, LGD_GUIDANCE_NONE, 0, n, seed);
    double kl_is = sample_kl(&f, f.mix, LGD_GUIDANCE_EXACT, 100, n, seed);
    double kl_dps = sample_kl(&f, f.mix, LGD_GUIDANCE_DPS, 1, n, seed);
    double kl_mc = sample_kl(&f, f.mix, LGD_GUIDANCE_MC, 100, n, seed);
    double kl_none = sample_kl(&f, f.mix, LGD_GUIDANCE_NONE, 0, n, seed);
    ck_assert_msg(kl_exact < kl_mc && kl_is < kl_mc && kl_mc < kl_dps,
                  "KL: exact %g, exact-IS %g, LGD-MC %g, DPS %g", kl_exact, kl_is, kl_mc, kl_dps);
    ck_assert_msg(kl_dps >= 10.0 * kl_mc, "KL(DPS) %g is not 10x KL(LGD-MC) %g", kl_dps, kl_mc);
    ck_assert_msg(kl_mc < kl_none, "LGD-MC %g no better than unguided %g", kl_mc, kl_none);
    fixture_free(&f);
}
END_TEST

/* ---- 3. the paper's protocol as blocks of a large run ---- */

START_TEST(blocks_are_runs)
{
    fixture f;
    fixture_init(&f);
    const int64_t n = 400, b = 100, first = 200;
    lgd_guidance *g = NULL;
    TU_OK(f.ctx, lgd_guidance_mc(f.ctx, f.mix, f.loss, 10, &g));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_DDIM;
    so.steps = 20;
    lgd_sampler *s = NULL;
    TU_OK(f.ctx, lgd_sampler_create(g, &so, &s));
    lgd_tensor *xa = tu_tensor(f.ctx, n, 1, NULL), *xb = tu_tensor(f.ctx, b, 1, NULL);
    TU_OK(f.ctx, lgd_sampler_run(s, xa, 7, 0, NULL, NULL));
    TU_OK(f.ctx, lgd_sampler_run(s, xb, 7, (uint64_t)first, NULL, NULL));
    float *ha = tu_download(xa), *hb = tu_download(xb);
    ck_assert_msg(memcmp(ha + first, hb, (size_t)b * sizeof(float)) == 0,
                  "rows %d.. of a run differ from the run started at first_row %d", (int)first,
                  (int)first);
    free(ha);
    free(hb);
    lgd_tensor_destroy(xa);
    lgd_tensor_destroy(xb);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    fixture_free(&f);
}
END_TEST

/* ---- 4. the tool ---- */


/*
 * Checks a CSV file: the header line is `header`; every row has as many fields; the
 * fields from column `first_numeric` on are finite numbers; there are `rows` rows.
 */
static void check_csv(const char *dir, const char *name, const char *header, int first_numeric,
                      long rows)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = tt_slurp(path, NULL);
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    ck_assert_msg(line != NULL, "%s is empty", name);
    ck_assert_msg(strcmp(line, header) == 0, "%s: header '%s', expected '%s'", name, line, header);
    int ncols = 1;
    for (const char *c = header; *c; c++)
        ncols += *c == ',';
    long count = 0;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        count++;
        int col = 0;
        char *fsave = NULL;
        /* strtok_r skips empty fields, so count the commas first. */
        int commas = 0;
        for (const char *c = line; *c; c++)
            commas += *c == ',';
        ck_assert_msg(commas + 1 == ncols, "%s row %ld: %d fields, expected %d", name, count,
                      commas + 1, ncols);
        for (char *fld = strtok_r(line, ",", &fsave); fld; fld = strtok_r(NULL, ",", &fsave), col++) {
            if (col < first_numeric) {
                ck_assert_msg(*fld != '\0', "%s row %ld: empty field %d", name, count, col);
                continue;
            }
            char *end = NULL;
            double v = strtod(fld, &end);
            ck_assert_msg(end != fld && *end == '\0' && isfinite(v),
                          "%s row %ld column %d: '%s' is not a finite number", name, count, col,
                          fld);
        }
        ck_assert_int_eq(col, ncols);
    }
    ck_assert_msg(count == rows, "%s: %ld rows, expected %ld", name, count, rows);
    free(text);
}


START_TEST(tool_output_is_well_formed)
{
    const char *tool = tt_tool_path();
    char tmpl[] = "/tmp/lgd-tool-test.XXXXXX";
    char *tmp = mkdtemp(tmpl);
    ck_assert_msg(tmp != NULL, "mkdtemp: %s", strerror(errno));
    char out[4096], log[4096];
    snprintf(out, sizeof out, "%s/out", tmp);
    snprintf(log, sizeof log, "%s/log.txt", tmp);

    /* 1000 samples x 2 seeds, 10 paper blocks each; LGD-MC with n = 5 and 20. */
    char *args[] = { (char *)tool, "mixture", "--samples", "1000", "--seeds", "2",
                     "--paper-samples=100", "--points", "41", "--n", "5,20", "--quiet",
                     "--out", out, NULL };
    int rc = tt_run_tool(log, args);
    if (rc != 0) {
        char *text = tt_slurp(log, NULL);
        ck_abort_msg("lgd mixture exited %d:\n%s", rc, text);
    }
    char *text = tt_slurp(log, NULL);
    ck_assert_msg(strstr(text, "KL(DPS) / KL(LGD-MC n=20)") != NULL, "no ratio line:\n%s", text);
    ck_assert_msg(strstr(text, "Paper protocol") != NULL, "no paper-protocol table:\n%s", text);
    free(text);

    const char *guidance = "x,exact,dps,mc_n1,mc_n5,mc_n10,mc_n20,mc_n100,p_y0";
    check_csv(out, "guidance_sigma1.csv", guidance, 0, 41);
    check_csv(out, "guidance_sigma80.csv", guidance, 0, 41);
    check_csv(out, "density.csv", "x,prior,exp_neg_loss,target", 0, 601);
    const long methods = 6, seeds = 2, blocks = 10;
    check_csv(out, "samples.csv", "method,seed,value", 1, methods * seeds * 1000);
    check_csv(out, "kl.csv", "protocol,method,seed,first_row,samples,mean,std,kl", 2,
              methods * seeds + methods * seeds * blocks);
    check_csv(out, "kl_summary.csv",
              "protocol,method,runs,samples,mean_mean,mean_sd,std_mean,std_sd,kl_mean,kl_sd,"
              "kl_min,kl_q25,kl_median,kl_q75,kl_max",
              2, 2 * methods);
    check_csv(out, "timing.csv", "method,samples,steps,runs,seconds_mean,seconds_min", 1, methods);
    const char *hist = "bin_lo,bin_hi,unguided,exact,exact_is_n100,dps,mc_n5,mc_n20";
    check_csv(out, "histograms.csv", hist, 0, 100);
    check_csv(out, "histograms_paper.csv", hist, 0, 25);
    tt_check_svg(out, "fig4_guidance.svg");
    tt_check_svg(out, "fig8_guidance_n.svg");
    tt_check_svg(out, "fig6_histograms.svg");
    tt_check_svg(out, "fig6_histograms_paper.svg");
    tt_remove_dir(out);
    unlink(log);
    rmdir(tmp);
}
END_TEST

START_TEST(tool_exit_statuses)
{
    const char *tool = tt_tool_path();
    char tmpl[] = "/tmp/lgd-tool-test.XXXXXX";
    char *tmp = mkdtemp(tmpl);
    ck_assert_msg(tmp != NULL, "mkdtemp: %s", strerror(errno));
    char log[4096], file[4096], under_file[4096];
    snprintf(log, sizeof log, "%s/log.txt", tmp);
    snprintf(file, sizeof file, "%s/file", tmp);
    snprintf(under_file, sizeof under_file, "%s/file/out", tmp);
    FILE *fp = fopen(file, "w");
    ck_assert_ptr_nonnull(fp);
    fclose(fp);

    char *version[] = { (char *)tool, "--version", NULL };
    ck_assert_int_eq(tt_run_tool(log, version), 0);
    char *help[] = { (char *)tool, "help", "mixture", NULL };
    ck_assert_int_eq(tt_run_tool(log, help), 0);
    char *none[] = { (char *)tool, NULL };
    ck_assert_int_eq(tt_run_tool(log, none), 2);
    char *unknown[] = { (char *)tool, "no-such-command", NULL };
    ck_assert_int_eq(tt_run_tool(log, unknown), 2);
    char *bad_opt[] = { (char *)tool, "mixture", "--bogus", NULL };
    ck_assert_int_eq(tt_run_tool(log, bad_opt), 2);
    char *bad_val[] = { (char *)tool, "mixture", "--samples", "0", NULL };
    ck_assert_int_eq(tt_run_tool(log, bad_val), 2);
    char *missing[] = { (char *)tool, "mixture", "--steps", NULL };
    ck_assert_int_eq(tt_run_tool(log, missing), 2);
    char *bad_n[] = { (char *)tool, "mixture", "--n", "10,,100", NULL };
    ck_assert_int_eq(tt_run_tool(log, bad_n), 2);
    char *bad_eta[] = { (char *)tool, "mixture", "--sampler", "heun", "--eta", "0.5", NULL };
    ck_assert_int_eq(tt_run_tool(log, bad_eta), 2);
    /* An output directory that cannot be created: an error, not bad usage. */
    char *bad_out[] = { (char *)tool, "mixture", "--quiet", "--out", under_file, NULL };
    ck_assert_int_eq(tt_run_tool(log, bad_out), 1);
    char *text = tt_slurp(log, NULL);
    ck_assert_msg(strstr(text, "cannot create") != NULL, "no message:\n%s", text);
    free(text);
    unlink(file);
    unlink(log);
    rmdir(tmp);
}
END_TEST

static Suite *reproduction_suite(void)
{
    Suite *s = suite_create("reproduction");
    TCase *tc = tcase_create("guidance");
    tcase_add_test(tc, closed_form_matches_quadrature);
    tcase_add_test(tc, dps_misjudges_the_scale);
    suite_add_tcase(s, tc);
    tc = tcase_create("sampling");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, kl_ordering);
    tcase_add_test(tc, blocks_are_runs);
    suite_add_tcase(s, tc);
    tc = tcase_create("tool");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, tool_output_is_well_formed);
    tcase_add_test(tc, tool_exit_statuses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(reproduction_suite());
}
