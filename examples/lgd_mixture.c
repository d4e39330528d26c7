/*
 * lgd mixture - the LGD paper's 1-D Gaussian-mixture experiment, end to end
 * (Song et al., ICML 2023: Sec. 4.2, 4.3, 6.1, Fig. 4, 6, 8, App. A.4, B.1).
 *
 * Prior  p0(x0) = 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2): an exact Gaussian-mixture model.
 * Loss   l(x0) = -log p(y = 0 | x0): the logistic loss whose sigmoid is the mixture's own
 *        posterior probability of component 0, so the target p0(x0) exp(-l(x0)) / Z is
 *        exactly component 0, N(-1, 0.2^2).
 *
 * 1. Guidance curves (Fig. 4, Fig. 8): g(x) = grad_x log p_sigma(y = 0 | x) on a grid of x
 *    at sigma = 1 and 80: the exact value, DPS, and LGD-MC with n = 1, 5, 10, 20, 100.
 *    The exact value needs no formula of its own: p_sigma(y = 0 | x) is the
 *    responsibility of component 0 in the noisy mixture, w0 N0_sigma(x) / p_sigma(x), so
 *    g(x) = score of N0_sigma(x) - score of p_sigma(x): two library scores (Tweedie),
 *    from a 1-component model holding component 0 and from the mixture.
 * 2. Sampling (Fig. 6, App. B.1): unguided, exact guidance, the library's exact
 *    importance-sampling estimator, DPS and LGD-MC, every one with the same sampler,
 *    schedule, seeds and the score step rule at scale 1 (Bayes-consistent: the guided
 *    score is score + g, so each method is judged by its estimate of g alone).
 *    Exact guidance adds the exact g to the mixture's score, which gives the score of
 *    N0_sigma itself; sampling with exact guidance is therefore unguided sampling of
 *    the 1-component model N(-1, 0.2^2).
 *    For each method and seed: mean, std, KL(N(-1, 0.2^2) || N(mean, std^2)) (App. B.1)
 *    of --samples samples, and the paper's protocol, runs of --paper-samples (100)
 *    samples: the consecutive blocks of each large run. Noise and Monte Carlo draws are
 *    keyed by (seed, step, row), so rows [k B, (k + 1) B) of a run are exactly the run of
 *    B samples started at first_row = k B (lgd_sampler_run).
 *
 * Uses only the public API of liblgd; the statistics (mean, std, Gaussian KL,
 * histograms, quantiles) are the only arithmetic done here.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lgd/lgd.h>

#include "lgd_tool.h"
#include "progress.h"
#include "sample_stats.h"
#include "svg_plot.h"
#include "tool_util.h"

#define CMD "mixture"
/* Reports a failed library call; evaluates to non-zero on error. */
#define CK(ctx, call) lgd_tool_failed(CMD, (ctx), (call), #call)

/* ---- the experiment's fixed data ---- */

#define NCOMP 2
static const float mix_weights[NCOMP] = { 0.5f, 0.5f };
static const float mix_means[NCOMP] = { -1.0f, 1.0f };
static const float mix_std = 0.2f; /* both components */

/* Noise levels of the guidance curves (Fig. 4, 8) and their x ranges: +-3 sigma_x, with
 * sigma_x^2 = 1 + sigma^2 roughly the spread of p_sigma. */
#define NCURVE_SIGMAS 2
static const double curve_sigmas[NCURVE_SIGMAS] = { 1.0, 80.0 };
static const double curve_half_width[NCURVE_SIGMAS] = { 3.0, 240.0 };
/* LGD-MC sizes of the curves (Fig. 8: 1, 5, 10, 20; Fig. 4: 100). */
#define NCURVE_MC 5
static const int32_t curve_mc[NCURVE_MC] = { 1, 5, 10, 20, 100 };

/* Draws of the library's exact importance-sampling estimator in the sampling table. */
#define EXACT_IS_DRAWS 100
/* Histogram range and bins: large runs, paper-protocol runs. */
#define HIST_LO (-2.5)
#define HIST_HI 2.5
#define HIST_BINS 100
#define HIST_BINS_PAPER 25
/* Grid of the densities (Fig. 4 top, histogram overlays). */
#define DENS_LO (-3.0)
#define DENS_HI 3.0
#define DENS_POINTS 601
#define MAX_MC_SIZES 8

/* Colors: the paper's blue (exact), red (DPS), green (LGD-MC). */
#define C_EXACT "#1f77b4"
#define C_DPS "#d62728"
#define C_MC "#2ca02c"
#define C_OTHER "#7f7f7f"
#define C_IS "#9467bd"
#define C_TARGET "#000000"

/* ---- options ---- */

typedef struct config {
    int64_t samples;
    int64_t paper_samples;
    int32_t steps;
    lgd_sampler_kind sampler;
    const char *sampler_name;
    float eta;
    int eta_given;
    uint64_t seed;
    int32_t seeds;
    int32_t mc[MAX_MC_SIZES];
    int nmc;
    int32_t points;
    int32_t threads;
    lgd_backend_kind backend;
    const char *out;
    int quiet;
} config;

void lgd_mixture_usage(FILE *f)
{
    fprintf(f,
            "usage: lgd mixture [options]\n"
            "\n"
            "The LGD paper's 1-D Gaussian-mixture experiment (Sec. 4.2, 6.1, App. A.4, B.1):\n"
            "prior 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2), loss -log p(y = 0 | x0) (logistic), exact\n"
            "target N(-1, 0.2^2). Computes the guidance term at sigma = 1 and 80 (exact, DPS,\n"
            "LGD-MC n = 1, 5, 10, 20, 100; Fig. 4, 8), samples with unguided, exact, exact-IS,\n"
            "DPS and LGD-MC guidance (Fig. 6), prints mean, std and KL(target || N(mean, std^2))\n"
            "over several seeds, and writes CSV files and SVG figures to the output directory.\n"
            "\n"
            "options (--opt VALUE or --opt=VALUE):\n"
            "  --samples N        samples per run (default 10000)\n"
            "  --paper-samples N  samples per run of the paper's protocol (default 100): the\n"
            "                     consecutive blocks of N samples of every large run\n"
            "  --steps N          sampler steps (default 20)\n"
            "  --sampler K        ddim (default), euler, heun or dpmpp2m; Karras schedule,\n"
            "                     sigma_max 80, sigma_min 0.002, rho 7\n"
            "  --eta E            DDIM stochasticity in [0, 1] (default 0; ddim only)\n"
            "  --seed S           first seed (default 0)\n"
            "  --seeds K          seeds S, S+1, ..., S+K-1 (default 5)\n"
            "  --n LIST           LGD-MC draws for sampling, comma-separated (default 10,100)\n"
            "  --points N         grid points of the guidance curves (default 401)\n"
            "  --backend B        cpu (default), cuda or auto\n"
            "  --threads N        CPU threads (default 0: OpenMP's default)\n"
            "  --out DIR          output directory, created if missing (default lgd-mixture-out)\n"
            "  --quiet            no progress indicator\n"
            "  --help             this message\n"
            "\n"
            "Output files: guidance_sigma1.csv, guidance_sigma80.csv, density.csv,\n"
            "fig4_guidance.svg, fig8_guidance_n.svg, samples.csv, kl.csv, kl_summary.csv,\n"
            "timing.csv, histograms.csv, histograms_paper.csv, fig6_histograms.svg,\n"
            "fig6_histograms_paper.svg.\n");
}

/* Parses "10,100" into cfg->mc; 0 or -1. */
static int parse_mc_list(const char *s, config *cfg)
{
    int count = 0;
    while (s && *s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char buf[32];
        long long v;
        if (len == 0 || len >= sizeof buf || count == MAX_MC_SIZES)
            return -1;
        memcpy(buf, s, len);
        buf[len] = '\0';
        if (tool_parse_int(buf, 1, 1000000, &v))
            return -1;
        cfg->mc[count++] = (int32_t)v;
        s = comma ? comma + 1 : NULL;
        if (comma && !*s)
            return -1;
    }
    if (count == 0)
        return -1;
    cfg->nmc = count;
    return 0;
}

/* 0: run; 1: --help printed; 2: bad usage (message printed). */
static int parse_args(int argc, char **argv, config *cfg)
{
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        long long n;
        int m;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            lgd_mixture_usage(stdout);
            return 1;
        } else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
            cfg->quiet = 1;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "samples", &v))) {
            if (m < 0 || tool_parse_int(v, 2, INT32_MAX, &n))
                return m < 0 ? 2 : lgd_tool_usage_error(CMD, "--samples needs an integer >= 2");
            cfg->samples = n;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "paper-samples", &v))) {
            if (m < 0 || tool_parse_int(v, 2, INT32_MAX, &n))
                return m < 0 ? 2
                             : lgd_tool_usage_error(CMD, "--paper-samples needs an integer >= 2");
            cfg->paper_samples = n;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "steps", &v))) {
            if (m < 0 || tool_parse_int(v, 1, 100000, &n))
                return m < 0 ? 2
                             : lgd_tool_usage_error(CMD, "--steps needs an integer in [1, 100000]");
            cfg->steps = (int32_t)n;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "seed", &v))) {
            if (m < 0 || tool_parse_u64(v, &cfg->seed))
                return m < 0 ? 2 : lgd_tool_usage_error(CMD, "--seed needs a non-negative integer");
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "seeds", &v))) {
            if (m < 0 || tool_parse_int(v, 1, 100000, &n))
                return m < 0 ? 2 : lgd_tool_usage_error(CMD, "--seeds needs an integer in [1, 100000]");
            cfg->seeds = (int32_t)n;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "points", &v))) {
            if (m < 0 || tool_parse_int(v, 2, 1000000, &n))
                return m < 0 ? 2
                             : lgd_tool_usage_error(CMD, "--points needs an integer in [2, 1000000]");
            cfg->points = (int32_t)n;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "threads", &v))) {
            if (m < 0 || tool_parse_int(v, 0, 4096, &n))
                return m < 0 ? 2 : lgd_tool_usage_error(CMD, "--threads needs an integer in [0, 4096]");
            cfg->threads = (int32_t)n;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "n", &v))) {
            if (m < 0 || parse_mc_list(v, cfg))
                return m < 0 ? 2
                             : lgd_tool_usage_error(CMD, "--n needs 1 to %d positive integers, "
                                                         "comma-separated (e.g. 10,100)",
                                                    MAX_MC_SIZES);
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "eta", &v))) {
            char *end = NULL;
            if (m < 0)
                return 2;
            errno = 0;
            double e = v ? strtod(v, &end) : -1.0;
            if (!v || !*v || *end || errno || !(e >= 0.0 && e <= 1.0))
                return lgd_tool_usage_error(CMD, "--eta needs a number in [0, 1]");
            cfg->eta = (float)e;
            cfg->eta_given = 1;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "sampler", &v))) {
            if (m < 0)
                return 2;
            if (!strcmp(v, "ddim"))
                cfg->sampler = LGD_SAMPLER_DDIM;
            else if (!strcmp(v, "euler"))
                cfg->sampler = LGD_SAMPLER_EULER;
            else if (!strcmp(v, "heun"))
                cfg->sampler = LGD_SAMPLER_HEUN;
            else if (!strcmp(v, "dpmpp2m"))
                cfg->sampler = LGD_SAMPLER_DPMPP_2M;
            else
                return lgd_tool_usage_error(CMD, "unknown sampler '%s' (ddim, euler, heun, dpmpp2m)",
                                            v);
            cfg->sampler_name = v;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "backend", &v))) {
            if (m < 0)
                return 2;
            if (!strcmp(v, "cpu"))
                cfg->backend = LGD_BACKEND_CPU;
            else if (!strcmp(v, "cuda"))
                cfg->backend = LGD_BACKEND_CUDA;
            else if (!strcmp(v, "auto"))
                cfg->backend = LGD_BACKEND_AUTO;
            else
                return lgd_tool_usage_error(CMD, "unknown backend '%s' (cpu, cuda, auto)", v);
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "out", &v))) {
            if (m < 0)
                return 2;
            if (!*v)
                return lgd_tool_usage_error(CMD, "--out needs a directory");
            cfg->out = v;
        } else {
            return lgd_tool_usage_error(CMD, "unknown argument '%s'", argv[i]);
        }
    }
    if (cfg->eta_given && cfg->eta != 0.0f && cfg->sampler != LGD_SAMPLER_DDIM)
        return lgd_tool_usage_error(CMD, "--eta applies to the ddim sampler only");
    return 0;
}

/* ---- the problem: models and loss ---- */

typedef struct problem {
    lgd_context *ctx;
    lgd_model *mix;    /* p0, the mixture */
    lgd_model *target; /* N(m0, s^2): component 0 alone, the exact target */
    lgd_loss *loss;
    float a, b;        /* the logistic loss's parameters */
    double w0;         /* weight of component 0 (normalised) */
} problem;

static int problem_create(problem *pb, const config *cfg)
{
    const char *cerr = NULL;
    lgd_context_options co = LGD_CONTEXT_OPTIONS_INIT;
    co.backend = cfg->backend;
    co.num_threads = cfg->threads;
    lgd_status st = lgd_context_create(&co, &pb->ctx, &cerr);
    if (st != LGD_OK) {
        fprintf(stderr, "lgd " CMD ": lgd_context_create failed: %s (%d): %s\n",
                lgd_status_string(st), (int)st, cerr ? cerr : "");
        return 1;
    }
    lgd_context *ctx = pb->ctx;
    const float var[NCOMP] = { mix_std * mix_std, mix_std * mix_std };
    if (CK(ctx, lgd_model_create_gmm(ctx, 1, NCOMP, mix_weights, mix_means, var,
                                     LGD_COVARIANCE_ISOTROPIC, &pb->mix)))
        return 1;
    const float one = 1.0f;
    if (CK(ctx, lgd_model_create_gmm(ctx, 1, 1, &one, &mix_means[0], &var[0],
                                     LGD_COVARIANCE_ISOTROPIC, &pb->target)))
        return 1;
    pb->w0 = (double)mix_weights[0] / ((double)mix_weights[0] + mix_weights[1]);
    /*
     * The logistic loss from the mixture's log-odds. For two components with a common
     * variance s^2, Bayes' rule gives
     *   log p(y=0|x0) / p(y=1|x0)
     *     = log(w0/w1) - (x0 - m0)^2 / (2 s^2) + (x0 - m1)^2 / (2 s^2)
     *     = a x0 + b,   a = (m0 - m1) / s^2,   b = (m1^2 - m0^2) / (2 s^2) + log(w0/w1),
     * and p(y=0|x0) = sigmoid(a x0 + b). The library's logistic loss is
     * l(x0) = -log sigmoid(a x0 + b), so exp(-l(x0)) = p(y=0|x0) and
     *   p0(x0) exp(-l(x0)) = p(x0, y=0) = w0 N(x0; m0, s^2):
     * the guided target is exactly component 0, N(-1, 0.2^2). Here a = -50, b = 0.
     */
    const double s2 = (double)mix_std * mix_std;
    pb->a = (float)(((double)mix_means[0] - mix_means[1]) / s2);
    pb->b = (float)(((double)mix_means[1] * mix_means[1] -
                     (double)mix_means[0] * mix_means[0]) / (2.0 * s2) +
                    log((double)mix_weights[0] / mix_weights[1]));
    if (CK(ctx, lgd_loss_create_logistic(ctx, 1, &pb->a, pb->b, &pb->loss)))
        return 1;
    return 0;
}

static void problem_destroy(problem *pb)
{
    lgd_loss_destroy(pb->loss);
    lgd_model_destroy(pb->target);
    lgd_model_destroy(pb->mix);
    lgd_context_destroy(pb->ctx);
}

/* ---- output helpers ---- */


/* ---- 1. guidance curves (Fig. 4, 8) ---- */

typedef struct curves {
    int64_t n;
    double sigma;
    double *x, *exact, *dps, *mc[NCURVE_MC], *p_y0;
} curves;

static void curves_free(curves *c)
{
    free(c->x);
    free(c->exact);
    free(c->dps);
    for (int k = 0; k < NCURVE_MC; k++)
        free(c->mc[k]);
    free(c->p_y0);
}

/* g = lgd_guidance_term of an estimator at every x of the grid, into out[n]. */
static int estimator_curve(problem *pb, const lgd_guidance_options *go, const lgd_tensor *xt,
                           double sigma, lgd_tensor *gt, float *host, double *out)
{
    lgd_context *ctx = pb->ctx;
    lgd_guidance *g = NULL;
    int rc = 1;
    int64_t n = lgd_tensor_numel(xt);
    if (CK(ctx, lgd_guidance_create(ctx, pb->mix, pb->loss, go, &g)))
        goto done;
    if (CK(ctx, lgd_guidance_term(g, xt, (float)sigma, 0, 0, gt, NULL, NULL)))
        goto done;
    if (CK(ctx, lgd_tensor_download(gt, host, (size_t)n)))
        goto done;
    for (int64_t i = 0; i < n; i++)
        out[i] = host[i];
    rc = 0;
done:
    lgd_guidance_destroy(g);
    return rc;
}

static int compute_curves(const config *cfg, problem *pb, double sigma, double half_width,
                          curves *c, progress *pr)
{
    lgd_context *ctx = pb->ctx;
    int64_t n = cfg->points;
    int rc = 1;
    lgd_tensor *xt = NULL, *s_mix = NULL, *s_tgt = NULL, *ld_mix = NULL, *ld_tgt = NULL;
    float *h1 = malloc((size_t)n * sizeof *h1), *h2 = malloc((size_t)n * sizeof *h2);
    c->n = n;
    c->sigma = sigma;
    c->x = malloc((size_t)n * sizeof *c->x);
    c->exact = malloc((size_t)n * sizeof *c->exact);
    c->dps = malloc((size_t)n * sizeof *c->dps);
    c->p_y0 = malloc((size_t)n * sizeof *c->p_y0);
    int ok = h1 && h2 && c->x && c->exact && c->dps && c->p_y0;
    for (int k = 0; k < NCURVE_MC; k++)
        ok = ok && (c->mc[k] = malloc((size_t)n * sizeof *c->mc[k])) != NULL;
    if (!ok) {
        fprintf(stderr, "lgd " CMD ": out of memory\n");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        /* the grid point as the library sees it (float), so the CSV says what was computed */
        h1[i] = (float)(-half_width + 2.0 * half_width * (double)i / (double)(n - 1));
        c->x[i] = h1[i];
    }
    char detail[64];
    snprintf(detail, sizeof detail, "guidance curves, sigma = %g", sigma);
    progress_show(pr, 0.0, detail);
    if (CK(ctx, lgd_tensor_create_2d(ctx, n, 1, &xt)) ||
        CK(ctx, lgd_tensor_create_2d(ctx, n, 1, &s_mix)) ||
        CK(ctx, lgd_tensor_create_2d(ctx, n, 1, &s_tgt)) ||
        CK(ctx, lgd_tensor_create(ctx, 1, &n, &ld_mix)) ||
        CK(ctx, lgd_tensor_create(ctx, 1, &n, &ld_tgt)) ||
        CK(ctx, lgd_tensor_upload(xt, h1, (size_t)n)))
        goto done;

    /* Exact: g = score of N0_sigma - score of p_sigma (p_sigma(y=0|x) = w0 N0_sigma / p_sigma). */
    if (CK(ctx, lgd_model_score(pb->target, xt, (float)sigma, NULL, s_tgt)) ||
        CK(ctx, lgd_model_score(pb->mix, xt, (float)sigma, NULL, s_mix)) ||
        CK(ctx, lgd_tensor_download(s_tgt, h1, (size_t)n)) ||
        CK(ctx, lgd_tensor_download(s_mix, h2, (size_t)n)))
        goto done;
    for (int64_t i = 0; i < n; i++)
        c->exact[i] = (double)h1[i] - (double)h2[i];
    /* p_sigma(y = 0 | x) from the two log densities (Fig. 4, middle row). */
    if (CK(ctx, lgd_model_log_density(pb->target, xt, (float)sigma, ld_tgt)) ||
        CK(ctx, lgd_model_log_density(pb->mix, xt, (float)sigma, ld_mix)) ||
        CK(ctx, lgd_tensor_download(ld_tgt, h1, (size_t)n)) ||
        CK(ctx, lgd_tensor_download(ld_mix, h2, (size_t)n)))
        goto done;
    for (int64_t i = 0; i < n; i++)
        c->p_y0[i] = exp(log(pb->w0) + (double)h1[i] - (double)h2[i]);
    progress_advance(pr, 1.0);

    /* DPS and LGD-MC through lgd_guidance_term (row i's MC draws are keyed by i). */
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = LGD_GUIDANCE_DPS;
    go.seed = cfg->seed;
    if (estimator_curve(pb, &go, xt, sigma, s_mix, h1, c->dps))
        goto done;
    progress_advance(pr, 1.0);
    for (int k = 0; k < NCURVE_MC; k++) {
        progress_show(pr, 0.0, detail);
        go.kind = LGD_GUIDANCE_MC;
        go.n_samples = curve_mc[k];
        if (estimator_curve(pb, &go, xt, sigma, s_mix, h1, c->mc[k]))
            goto done;
        progress_advance(pr, 1.0);
    }
    rc = 0;
done:
    lgd_tensor_destroy(xt);
    lgd_tensor_destroy(s_mix);
    lgd_tensor_destroy(s_tgt);
    lgd_tensor_destroy(ld_mix);
    lgd_tensor_destroy(ld_tgt);
    free(h1);
    free(h2);
    return rc;
}

static int write_curves_csv(const config *cfg, const curves *c)
{
    char name[64], path[4096];
    snprintf(name, sizeof name, "guidance_sigma%g.csv", c->sigma);
    FILE *f = lgd_tool_open_out(CMD, cfg->out, name, path, sizeof path);
    if (!f)
        return 1;
    fprintf(f, "x,exact,dps");
    for (int k = 0; k < NCURVE_MC; k++)
        fprintf(f, ",mc_n%d", (int)curve_mc[k]);
    fprintf(f, ",p_y0\n");
    for (int64_t i = 0; i < c->n; i++) {
        fprintf(f, "%.9g,%.9g,%.9g", c->x[i], c->exact[i], c->dps[i]);
        for (int k = 0; k < NCURVE_MC; k++)
            fprintf(f, ",%.9g", c->mc[k][i]);
        fprintf(f, ",%.9g\n", c->p_y0[i]);
    }
    return lgd_tool_close_out(CMD, f, path);
}

/* The densities on [DENS_LO, DENS_HI]: prior, exp(-loss), target. */
typedef struct densities {
    double x[DENS_POINTS], prior[DENS_POINTS], likelihood[DENS_POINTS], target[DENS_POINTS];
} densities;

static int compute_densities(problem *pb, densities *d)
{
    lgd_context *ctx = pb->ctx;
    int64_t n = DENS_POINTS;
    float h[DENS_POINTS];
    lgd_tensor *xt = NULL, *out = NULL;
    int rc = 1;
    for (int64_t i = 0; i < n; i++) {
        d->x[i] = DENS_LO + (DENS_HI - DENS_LO) * (double)i / (double)(n - 1);
        h[i] = (float)d->x[i];
    }
    if (CK(ctx, lgd_tensor_create_2d(ctx, n, 1, &xt)) ||
        CK(ctx, lgd_tensor_create(ctx, 1, &n, &out)) ||
        CK(ctx, lgd_tensor_upload(xt, h, (size_t)n)))
        goto done;
    if (CK(ctx, lgd_model_log_density(pb->mix, xt, 0.0f, out)) ||
        CK(ctx, lgd_tensor_download(out, h, (size_t)n)))
        goto done;
    for (int64_t i = 0; i < n; i++)
        d->prior[i] = exp((double)h[i]);
    if (CK(ctx, lgd_model_log_density(pb->target, xt, 0.0f, out)) ||
        CK(ctx, lgd_tensor_download(out, h, (size_t)n)))
        goto done;
    for (int64_t i = 0; i < n; i++)
        d->target[i] = exp((double)h[i]);
    if (CK(ctx, lgd_loss_eval(pb->loss, xt, out, NULL)) ||
        CK(ctx, lgd_tensor_download(out, h, (size_t)n)))
        goto done;
    for (int64_t i = 0; i < n; i++)
        d->likelihood[i] = exp(-(double)h[i]);
    rc = 0;
done:
    lgd_tensor_destroy(xt);
    lgd_tensor_destroy(out);
    return rc;
}

static int write_densities_csv(const config *cfg, const densities *d)
{
    char path[4096];
    FILE *f = lgd_tool_open_out(CMD, cfg->out, "density.csv", path, sizeof path);
    if (!f)
        return 1;
    fprintf(f, "x,prior,exp_neg_loss,target\n");
    for (int i = 0; i < DENS_POINTS; i++)
        fprintf(f, "%.9g,%.9g,%.9g,%.9g\n", d->x[i], d->prior[i], d->likelihood[i],
                d->target[i]);
    return lgd_tool_close_out(CMD, f, path);
}

/* y range covering the columns cols[0..k-1], padded by `pad` of the span. */
static void curve_yrange(const curves *c, const double *const *cols, int k, double pad,
                         double *lo, double *hi)
{
    double a = INFINITY, b = -INFINITY;
    for (int j = 0; j < k; j++)
        for (int64_t i = 0; i < c->n; i++) {
            if (!isfinite(cols[j][i]))
                continue;
            a = fmin(a, cols[j][i]);
            b = fmax(b, cols[j][i]);
        }
    if (!(a < b)) {
        a = -1.0;
        b = 1.0;
    }
    *lo = a - pad * (b - a);
    *hi = b + pad * (b - a);
}

/* Median over the grid points with x < 0 (side < 0) or x > 0 (side > 0) of g / exact;
 * NAN if there are none. */
static double median_ratio(const curves *c, const double *g, int side)
{
    double *r = malloc((size_t)c->n * sizeof *r);
    int64_t m = 0;
    if (!r)
        return NAN;
    for (int64_t i = 0; i < c->n; i++)
        if ((side < 0 ? c->x[i] < 0.0 : c->x[i] > 0.0) && c->exact[i] != 0.0)
            r[m++] = g[i] / c->exact[i];
    double q = NAN;
    const double half = 0.5;
    if (m > 0)
        stats_quantiles(r, m, &half, 1, &q);
    free(r);
    return q;
}

/* Adds exact, DPS and LGD-MC n = curve_mc[k] to a guidance panel. zoom: the y range
 * covers exact and LGD-MC only (DPS may leave the plot); otherwise all three. */
static int guidance_panel(svg_figure *fig, int p, const curves *c, int k, int zoom)
{
    char title[80], lab[32], note[96];
    snprintf(title, sizeof title, "guidance term, sigma = %g%s", c->sigma,
             zoom ? " (zoom on exact)" : "");
    snprintf(lab, sizeof lab, "LGD-MC n=%d", (int)curve_mc[k]);
    const double *cols[3] = { c->exact, c->mc[k], c->dps };
    double lo, hi;
    curve_yrange(c, cols, zoom ? 2 : 3, zoom ? 0.15 : 0.06, &lo, &hi);
    snprintf(note, sizeof note, "max|DPS| / max|exact| = %.3g",
             stats_max_abs(c->dps, c->n) / stats_max_abs(c->exact, c->n));
    return svg_panel_axes(fig, p, title, "x (noisy sample x_t)", "grad_x log p_sigma(y=0|x)") ||
           svg_panel_xrange(fig, p, c->x[0], c->x[c->n - 1]) ||
           svg_panel_yrange(fig, p, lo, hi) ||
           svg_panel_legend(fig, p, SVG_BOTTOM_LEFT) ||
           svg_panel_line(fig, p, c->x, c->mc[k], (size_t)c->n, C_MC, 1.4, SVG_SOLID, lab) ||
           svg_panel_line(fig, p, c->x, c->dps, (size_t)c->n, C_DPS, 2.0, SVG_SOLID, "DPS") ||
           svg_panel_line(fig, p, c->x, c->exact, (size_t)c->n, C_EXACT, 2.2, SVG_DASHED,
                          "exact") ||
           svg_panel_note(fig, p, note);
}

static int write_guidance_figures(const config *cfg, const curves *c, const densities *d)
{
    int rc = 1;
    /* Fig. 4: prior and exp(-loss); p_sigma(y=0|x); guidance with n = 100. */
    svg_figure *f4 = svg_figure_create(4, NCURVE_SIGMAS, 470, 300,
                                       "Fig. 4: prior, loss, p_sigma(y=0|x) and the guidance term");
    svg_figure *f8 = svg_figure_create(NCURVE_MC, NCURVE_SIGMAS, 470, 290,
                                       "Fig. 8: the guidance term, LGD-MC with n = 1, 5, 10, 20, 100");
    if (!f4 || !f8)
        goto done;
    if (svg_panel_axes(f4, 0, "prior p0(x0) = 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2)", "x0",
                       "density") ||
        svg_panel_line(f4, 0, d->x, d->prior, DENS_POINTS, C_EXACT, 2.0, SVG_SOLID, NULL) ||
        svg_panel_axes(f4, 1, "exp(-loss(x0)) = p(y=0|x0)", "x0", "exp(-loss)") ||
        svg_panel_line(f4, 1, d->x, d->likelihood, DENS_POINTS, C_EXACT, 2.0, SVG_SOLID, NULL))
        goto done;
    for (int s = 0; s < NCURVE_SIGMAS; s++) {
        char title[64];
        snprintf(title, sizeof title, "p_sigma(y=0|x), sigma = %g", c[s].sigma);
        if (svg_panel_axes(f4, 2 + s, title, "x (noisy sample x_t)", "probability") ||
            svg_panel_yrange(f4, 2 + s, -0.05, 1.05) ||
            svg_panel_line(f4, 2 + s, c[s].x, c[s].p_y0, (size_t)c[s].n, C_EXACT, 2.0,
                           SVG_SOLID, NULL) ||
            guidance_panel(f4, 4 + s, &c[s], NCURVE_MC - 1, 0) ||
            guidance_panel(f4, 6 + s, &c[s], NCURVE_MC - 1, 1))
            goto done;
        for (int k = 0; k < NCURVE_MC; k++)
            if (guidance_panel(f8, k * NCURVE_SIGMAS + s, &c[s], k, 0))
                goto done;
    }
    if (lgd_tool_write_svg(CMD, cfg->out, f4, "fig4_guidance.svg") || lgd_tool_write_svg(CMD, cfg->out, f8, "fig8_guidance_n.svg"))
        goto done;
    rc = 0;
done:
    if (rc && (!f4 || !f8))
        fprintf(stderr, "lgd " CMD ": out of memory\n");
    svg_figure_destroy(f4);
    svg_figure_destroy(f8);
    return rc;
}

/* ---- 2. sampling (Fig. 6, App. B.1) ---- */

typedef struct method {
    char name[32];
    char key[32];
    lgd_guidance_kind kind;
    int32_t n;
    int on_target; /* sample the 1-component target model (exact guidance) */
    const char *color;
    lgd_guidance *guidance;
    lgd_sampler *sampler;
    double cost; /* progress units of one run */
    /* per seed */
    double *run_mean, *run_std, *run_kl, *run_sec;
    /* per paper-protocol run (seeds * blocks) */
    double *blk_mean, *blk_std, *blk_kl;
    float *first; /* the samples of the first seed */
} method;

typedef struct run_progress {
    progress *p;
    double units;
    char detail[96];
} run_progress;

static int on_step(void *user, int32_t step, int32_t num_steps, float sigma,
                   const lgd_guidance_report *report)
{
    (void)sigma;
    (void)report;
    run_progress *rp = user;
    progress_show(rp->p, rp->units * (double)step / (double)num_steps, rp->detail);
    return 0;
}

static void method_free(method *m)
{
    lgd_sampler_destroy(m->sampler);
    lgd_guidance_destroy(m->guidance);
    free(m->run_mean);
    free(m->run_std);
    free(m->run_kl);
    free(m->run_sec);
    free(m->blk_mean);
    free(m->blk_std);
    free(m->blk_kl);
    free(m->first);
}

/* Creates the guidance and sampler of m and its result arrays. */
static int method_setup(const config *cfg, problem *pb, method *m, int64_t blocks)
{
    lgd_context *ctx = pb->ctx;
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = m->kind;
    if (m->n > 0)
        go.n_samples = m->n;
    /* Score step rule at scale 1: the guided score is score + g (Bayes-consistent). */
    go.step_rule = LGD_STEP_SCORE;
    go.scale = 1.0f;
    go.seed = cfg->seed;
    if (CK(ctx, lgd_guidance_create(ctx, m->on_target ? pb->target : pb->mix,
                                    m->kind == LGD_GUIDANCE_NONE ? NULL : pb->loss, &go,
                                    &m->guidance)))
        return 1;
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = cfg->sampler;
    so.steps = cfg->steps;
    so.schedule = LGD_SCHEDULE_KARRAS;
    so.sigma_max = 80.0f; /* the paper's largest sigma in Fig. 4 */
    so.sigma_min = 0.002f;
    so.rho = 7.0f;
    so.eta = cfg->eta;
    if (CK(ctx, lgd_sampler_create(m->guidance, &so, &m->sampler)))
        return 1;
    size_t ns = (size_t)cfg->seeds, nb = (size_t)cfg->seeds * (size_t)(blocks ? blocks : 1);
    m->run_mean = malloc(ns * sizeof(double));
    m->run_std = malloc(ns * sizeof(double));
    m->run_kl = malloc(ns * sizeof(double));
    m->run_sec = malloc(ns * sizeof(double));
    m->blk_mean = malloc(nb * sizeof(double));
    m->blk_std = malloc(nb * sizeof(double));
    m->blk_kl = malloc(nb * sizeof(double));
    m->first = malloc((size_t)cfg->samples * sizeof(float));
    if (!m->run_mean || !m->run_std || !m->run_kl || !m->run_sec || !m->blk_mean ||
        !m->blk_std || !m->blk_kl || !m->first) {
        fprintf(stderr, "lgd " CMD ": out of memory\n");
        return 1;
    }
    return 0;
}

/* Fills ms[] in the order unguided, exact, exact-IS, DPS (index METHOD_DPS), then
 * LGD-MC for each n of --n. */
#define METHOD_DPS 3
static void build_methods(const config *cfg, method *ms, int *count)
{
    int k = 0;
    memset(ms, 0, (size_t)(4 + cfg->nmc) * sizeof *ms);
    snprintf(ms[k].name, sizeof ms[k].name, "unguided");
    snprintf(ms[k].key, sizeof ms[k].key, "unguided");
    ms[k].kind = LGD_GUIDANCE_NONE;
    ms[k].color = C_OTHER;
    ms[k++].cost = 1.0;
    snprintf(ms[k].name, sizeof ms[k].name, "exact");
    snprintf(ms[k].key, sizeof ms[k].key, "exact");
    ms[k].kind = LGD_GUIDANCE_NONE;
    ms[k].on_target = 1;
    ms[k].color = C_EXACT;
    ms[k++].cost = 1.0;
    snprintf(ms[k].name, sizeof ms[k].name, "exact-IS n=%d", EXACT_IS_DRAWS);
    snprintf(ms[k].key, sizeof ms[k].key, "exact_is_n%d", EXACT_IS_DRAWS);
    ms[k].kind = LGD_GUIDANCE_EXACT;
    ms[k].n = EXACT_IS_DRAWS;
    ms[k].color = C_IS;
    ms[k++].cost = 1.0 + 1.4 * EXACT_IS_DRAWS;
    snprintf(ms[k].name, sizeof ms[k].name, "DPS");
    snprintf(ms[k].key, sizeof ms[k].key, "dps");
    ms[k].kind = LGD_GUIDANCE_DPS;
    ms[k].n = 1;
    ms[k].color = C_DPS;
    ms[k++].cost = 3.0;
    for (int j = 0; j < cfg->nmc; j++) {
        snprintf(ms[k].name, sizeof ms[k].name, "LGD-MC n=%d", (int)cfg->mc[j]);
        snprintf(ms[k].key, sizeof ms[k].key, "mc_n%d", (int)cfg->mc[j]);
        ms[k].kind = LGD_GUIDANCE_MC;
        ms[k].n = cfg->mc[j];
        ms[k].color = C_MC;
        ms[k++].cost = 3.0 + cfg->mc[j];
    }
    *count = k;
}

/* Runs every method for every seed; fills the statistics and writes samples.csv. */
static int run_sampling(const config *cfg, problem *pb, method *ms, int nm, int64_t blocks,
                        progress *pr)
{
    lgd_context *ctx = pb->ctx;
    int rc = 1;
    char path[4096];
    lgd_tensor *x = NULL;
    float *host = malloc((size_t)cfg->samples * sizeof *host);
    FILE *f = lgd_tool_open_out(CMD, cfg->out, "samples.csv", path, sizeof path);
    if (!f)
        goto done;
    if (!host) {
        fprintf(stderr, "lgd " CMD ": out of memory\n");
        goto done;
    }
    if (CK(ctx, lgd_tensor_create_2d(ctx, cfg->samples, 1, &x)))
        goto done;
    fprintf(f, "method,seed,value\n");
    const double m0 = mix_means[0], s0 = mix_std;
    for (int32_t si = 0; si < cfg->seeds; si++) {
        uint64_t seed = cfg->seed + (uint64_t)si;
        for (int k = 0; k < nm; k++) {
            method *m = &ms[k];
            run_progress rp = { pr, m->cost * cfg->steps, "" };
            snprintf(rp.detail, sizeof rp.detail, "sampling: %.31s, seed %" PRIu64 " (%d/%d)",
                     m->name, seed, (int)si + 1, (int)cfg->seeds);
            lgd_guidance_set_seed(m->guidance, seed);
            double t0 = tool_now_ms();
            if (CK(ctx, lgd_sampler_run(m->sampler, x, seed, 0, on_step, &rp)) ||
                CK(ctx, lgd_context_synchronize(ctx)))
                goto done;
            m->run_sec[si] = (tool_now_ms() - t0) / 1e3;
            progress_advance(pr, rp.units);
            if (CK(ctx, lgd_tensor_download(x, host, (size_t)cfg->samples)))
                goto done;
            stats_mean_std(host, cfg->samples, &m->run_mean[si], &m->run_std[si]);
            m->run_kl[si] = stats_kl_gauss(m0, s0, m->run_mean[si], m->run_std[si]);
            for (int64_t b = 0; b < blocks; b++) {
                size_t j = (size_t)si * (size_t)blocks + (size_t)b;
                stats_mean_std(host + b * cfg->paper_samples, cfg->paper_samples, &m->blk_mean[j],
                         &m->blk_std[j]);
                m->blk_kl[j] = stats_kl_gauss(m0, s0, m->blk_mean[j], m->blk_std[j]);
            }
            if (si == 0)
                memcpy(m->first, host, (size_t)cfg->samples * sizeof *host);
            for (int64_t i = 0; i < cfg->samples; i++)
                fprintf(f, "%s,%" PRIu64 ",%.9g\n", m->key, seed, (double)host[i]);
        }
    }
    rc = 0;
done:
    if (f && lgd_tool_close_out(CMD, f, path))
        rc = 1;
    lgd_tensor_destroy(x);
    free(host);
    return rc;
}

/* Summary of one method over a set of runs (seeds, or paper-protocol blocks). */
typedef struct summary {
    int64_t runs;
    double mean_m, mean_sd, std_m, std_sd, kl_m, kl_sd;
    double kl_q[5]; /* min, 25 %, median, 75 %, max */
} summary;

static const double summary_q[5] = { 0.0, 0.25, 0.5, 0.75, 1.0 };

static int summarize(const double *mean, const double *std, const double *kl, int64_t n,
                     summary *s)
{
    double *tmp = malloc((size_t)n * sizeof *tmp);
    if (!tmp) {
        fprintf(stderr, "lgd " CMD ": out of memory\n");
        return 1;
    }
    s->runs = n;
    stats_mean_sd(mean, n, &s->mean_m, &s->mean_sd);
    stats_mean_sd(std, n, &s->std_m, &s->std_sd);
    stats_mean_sd(kl, n, &s->kl_m, &s->kl_sd);
    memcpy(tmp, kl, (size_t)n * sizeof *tmp);
    stats_quantiles(tmp, n, summary_q, 5, s->kl_q);
    free(tmp);
    return 0;
}

/* Per-run ratios KL(DPS) / KL(LGD-MC) into out[n]. */
static void kl_ratios(const double *dps, const double *mc, int64_t n, double *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = dps[i] / mc[i];
}

static int write_kl_csv(const config *cfg, const method *ms, int nm, int64_t blocks)
{
    char path[4096];
    FILE *f = lgd_tool_open_out(CMD, cfg->out, "kl.csv", path, sizeof path);
    if (!f)
        return 1;
    fprintf(f, "protocol,method,seed,first_row,samples,mean,std,kl\n");
    for (int k = 0; k < nm; k++)
        for (int32_t si = 0; si < cfg->seeds; si++)
            fprintf(f, "large,%s,%" PRIu64 ",0,%" PRId64 ",%.9g,%.9g,%.9g\n", ms[k].key,
                    cfg->seed + (uint64_t)si, cfg->samples, ms[k].run_mean[si],
                    ms[k].run_std[si], ms[k].run_kl[si]);
    for (int k = 0; k < nm; k++)
        for (int32_t si = 0; si < cfg->seeds; si++)
            for (int64_t b = 0; b < blocks; b++) {
                size_t j = (size_t)si * (size_t)blocks + (size_t)b;
                fprintf(f, "paper,%s,%" PRIu64 ",%" PRId64 ",%" PRId64 ",%.9g,%.9g,%.9g\n",
                        ms[k].key, cfg->seed + (uint64_t)si, b * cfg->paper_samples,
                        cfg->paper_samples, ms[k].blk_mean[j], ms[k].blk_std[j],
                        ms[k].blk_kl[j]);
            }
    return lgd_tool_close_out(CMD, f, path);
}

static int write_summary_csv(const config *cfg, const method *ms, const summary *large,
                             const summary *paper, int nm, int64_t blocks)
{
    char path[4096];
    FILE *f = lgd_tool_open_out(CMD, cfg->out, "kl_summary.csv", path, sizeof path);
    if (!f)
        return 1;
    fprintf(f, "protocol,method,runs,samples,mean_mean,mean_sd,std_mean,std_sd,kl_mean,kl_sd,"
               "kl_min,kl_q25,kl_median,kl_q75,kl_max\n");
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && blocks == 0)
            break;
        const summary *su = pass ? paper : large;
        for (int k = 0; k < nm; k++) {
            const summary *s = &su[k];
            fprintf(f, "%s,%s,%" PRId64 ",%" PRId64 ",%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,"
                       "%.9g,%.9g,%.9g\n",
                    pass ? "paper" : "large", ms[k].key, s->runs,
                    pass ? cfg->paper_samples : cfg->samples, s->mean_m, s->mean_sd, s->std_m,
                    s->std_sd, s->kl_m, s->kl_sd, s->kl_q[0], s->kl_q[1], s->kl_q[2],
                    s->kl_q[3], s->kl_q[4]);
        }
    }
    return lgd_tool_close_out(CMD, f, path);
}

static int write_timing_csv(const config *cfg, const method *ms, int nm)
{
    char path[4096];
    FILE *f = lgd_tool_open_out(CMD, cfg->out, "timing.csv", path, sizeof path);
    if (!f)
        return 1;
    fprintf(f, "method,samples,steps,runs,seconds_mean,seconds_min\n");
    for (int k = 0; k < nm; k++) {
        double m, sd, mn = INFINITY;
        stats_mean_sd(ms[k].run_sec, cfg->seeds, &m, &sd);
        for (int32_t si = 0; si < cfg->seeds; si++)
            mn = fmin(mn, ms[k].run_sec[si]);
        fprintf(f, "%s,%" PRId64 ",%d,%d,%.6f,%.6f\n", ms[k].key, cfg->samples,
                (int)cfg->steps, (int)cfg->seeds, m, mn);
    }
    return lgd_tool_close_out(CMD, f, path);
}

/* histograms.csv / histograms_paper.csv and their figures from the first seed's
 * first `count` samples. */
static int write_histograms(const config *cfg, const method *ms, int nm, const densities *d,
                            int64_t count, int nbins, const char *csv_name,
                            const char *svg_name, const char *title)
{
    int rc = 1;
    char path[4096];
    double *dens = malloc((size_t)nm * (size_t)nbins * sizeof *dens);
    double *edges = malloc((size_t)(nbins + 1) * sizeof *edges);
    int64_t *outside = malloc((size_t)nm * sizeof *outside);
    FILE *f = NULL;
    int cols = nm < 3 ? nm : 3, rows = (nm + cols - 1) / cols;
    svg_figure *fig = svg_figure_create(rows, cols, 400, 290, title);
    if (!dens || !edges || !outside || !fig) {
        fprintf(stderr, "lgd " CMD ": out of memory\n");
        goto done;
    }
    for (int b = 0; b <= nbins; b++)
        edges[b] = HIST_LO + (HIST_HI - HIST_LO) * b / nbins;
    for (int k = 0; k < nm; k++)
        outside[k] = stats_histogram(ms[k].first, count, HIST_LO, HIST_HI, nbins,
                               dens + (size_t)k * (size_t)nbins);
    if (!(f = lgd_tool_open_out(CMD, cfg->out, csv_name, path, sizeof path)))
        goto done;
    fprintf(f, "bin_lo,bin_hi");
    for (int k = 0; k < nm; k++)
        fprintf(f, ",%s", ms[k].key);
    fprintf(f, "\n");
    for (int b = 0; b < nbins; b++) {
        fprintf(f, "%.9g,%.9g", edges[b], edges[b + 1]);
        for (int k = 0; k < nm; k++)
            fprintf(f, ",%.9g", dens[(size_t)k * (size_t)nbins + (size_t)b]);
        fprintf(f, "\n");
    }
    int bad = lgd_tool_close_out(CMD, f, path);
    f = NULL;
    if (bad)
        goto done;

    for (int k = 0; k < nm; k++) {
        char note[96], ptitle[64];
        double mean, std;
        stats_mean_std(ms[k].first, count, &mean, &std);
        snprintf(ptitle, sizeof ptitle, "%s (%" PRId64 " samples)", ms[k].name, count);
        if (svg_panel_axes(fig, k, ptitle, "x0", "density") ||
            svg_panel_xrange(fig, k, HIST_LO, HIST_HI) ||
            svg_panel_bars(fig, k, edges, dens + (size_t)k * (size_t)nbins, (size_t)nbins,
                           ms[k].color, "samples") ||
            svg_panel_line(fig, k, d->x, d->target, DENS_POINTS, C_TARGET, 1.8, SVG_DASHED,
                           "target N(-1, 0.2^2)"))
            goto done;
        snprintf(note, sizeof note, "mean %.3f", fabs(mean) < 5e-4 ? 0.0 : mean);
        if (svg_panel_note(fig, k, note))
            goto done;
        snprintf(note, sizeof note, "std %.3f", std);
        if (svg_panel_note(fig, k, note))
            goto done;
        snprintf(note, sizeof note, "KL %.4g", stats_kl_gauss(mix_means[0], mix_std, mean, std));
        if (svg_panel_note(fig, k, note))
            goto done;
        if (outside[k]) {
            snprintf(note, sizeof note, "%" PRId64 " outside", outside[k]);
            if (svg_panel_note(fig, k, note))
                goto done;
        }
    }
    if (lgd_tool_write_svg(CMD, cfg->out, fig, svg_name))
        goto done;
    rc = 0;
done:
    if (f)
        fclose(f);
    svg_figure_destroy(fig);
    free(dens);
    free(edges);
    free(outside);
    return rc;
}

/* ---- printing ---- */

static void print_header(const config *cfg, const problem *pb, int64_t blocks)
{
    printf("lgd mixture: the LGD paper's 1-D Gaussian mixture (Sec. 4.2, 6.1, App. A.4, B.1)\n");
    printf("liblgd %s, backend %s\n", lgd_version_string(), lgd_context_backend_name(pb->ctx));
    printf("prior  0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2)\n");
    printf("loss   -log p(y=0 | x0) = softplus(-(%g x0 + %g))   target N(-1, 0.2^2)\n",
           (double)pb->a, (double)pb->b);
    printf("sampler %s", cfg->sampler_name);
    if (cfg->sampler == LGD_SAMPLER_DDIM)
        printf(" (eta %g)", (double)cfg->eta);
    printf(", %d steps, Karras sigmas 80 -> 0.002 (rho 7); score step rule, scale 1\n",
           (int)cfg->steps);
    printf("seeds %" PRIu64 "..%" PRIu64 "; %" PRId64 " samples per run",
           cfg->seed, cfg->seed + (uint64_t)cfg->seeds - 1, cfg->samples);
    if (blocks)
        printf("; paper protocol: %" PRId64 " runs of %" PRId64 " samples", blocks * cfg->seeds,
               cfg->paper_samples);
    printf("\n\n");
}

static void print_curve_row(const curves *c, const char *name, const double *g)
{
    double me = stats_max_abs(c->exact, c->n);
    printf("%-6g %-13s %11.4g %13.3g %13.3g %13.3g %12.3g\n", c->sigma, name, stats_max_abs(g, c->n),
           stats_max_abs(g, c->n) / me, median_ratio(c, g, -1), median_ratio(c, g, 1),
           stats_rel_l2(g, c->exact, c->n));
}

static void print_curves_table(const curves *c)
{
    printf("Guidance term g(x) = grad_x log p_sigma(y=0 | x) on %" PRId64 " grid points (Fig. 4, 8)\n",
           c[0].n);
    printf("%-6s %-13s %11s %13s %13s %13s %12s\n", "sigma", "estimator", "max|g|",
           "max|g|/exact", "g/exact x<0", "g/exact x>0", "rel.L2 err");
    for (int s = 0; s < NCURVE_SIGMAS; s++) {
        const curves *cs = &c[s];
        print_curve_row(cs, "exact", cs->exact);
        print_curve_row(cs, "DPS", cs->dps);
        for (int k = 0; k < NCURVE_MC; k++) {
            char name[32];
            snprintf(name, sizeof name, "LGD-MC n=%d", (int)curve_mc[k]);
            print_curve_row(cs, name, cs->mc[k]);
        }
    }
    printf("(g/exact: median over the grid points on that side of 0; rel.L2 err: "
           "|g - exact| / |exact| over the grid)\n\n");
}

static void print_large_table(const config *cfg, const method *ms, const summary *su, int nm)
{
    printf("KL(N(-1, 0.2^2) || N(mean, std^2)), %" PRId64 " samples per run, mean +- sd over "
           "%d seed%s\n",
           cfg->samples, (int)cfg->seeds, cfg->seeds == 1 ? "" : "s");
    printf("%-15s %19s %19s %21s %10s\n", "method", "mean", "std", "KL", "s/run");
    printf("%-15s %19.4f %19.4f %21s %10s\n", "target", (double)mix_means[0], (double)mix_std,
           "0", "-");
    for (int k = 0; k < nm; k++) {
        double t, sd;
        stats_mean_sd(ms[k].run_sec, cfg->seeds, &t, &sd);
        printf("%-15s %9.4f +- %6.4f %9.4f +- %6.4f %10.5f +- %7.5f %10.3f\n", ms[k].name,
               su[k].mean_m, su[k].mean_sd, su[k].std_m, su[k].std_sd, su[k].kl_m, su[k].kl_sd,
               t);
    }
}

static void print_paper_table(const config *cfg, const method *ms, const summary *su, int nm,
                              int64_t blocks)
{
    printf("Paper protocol (App. B.1): %" PRId64 " samples per run, %" PRId64
           " runs (%d seeds x %" PRId64 " blocks)\n",
           cfg->paper_samples, blocks * cfg->seeds, (int)cfg->seeds, blocks);
    printf("%-15s %10s %21s %10s %10s %10s\n", "method", "KL median", "[25%, 75%]", "min",
           "max", "mean std");
    for (int k = 0; k < nm; k++)
        printf("%-15s %10.4f   [%7.4f, %7.4f] %10.4f %10.4f %10.4f\n", ms[k].name,
               su[k].kl_q[2], su[k].kl_q[1], su[k].kl_q[3], su[k].kl_q[0], su[k].kl_q[4],
               su[k].std_m);
}

/* ---- the command ---- */

int lgd_mixture_main(int argc, char **argv)
{
    config cfg = { 10000, 100, 20, LGD_SAMPLER_DDIM, "ddim", 0.0f, 0, 0, 5,
                   { 10, 100 }, 2, 401, 0, LGD_BACKEND_CPU, "lgd-mixture-out", 0 };
    int pr_args = parse_args(argc, argv, &cfg);
    if (pr_args == 1)
        return LGD_TOOL_EXIT_OK;
    if (pr_args)
        return LGD_TOOL_EXIT_USAGE;

    int rc = LGD_TOOL_EXIT_ERROR;
    problem pb;
    memset(&pb, 0, sizeof pb);
    curves cv[NCURVE_SIGMAS];
    memset(cv, 0, sizeof cv);
    method ms[4 + MAX_MC_SIZES];
    int nm = 0;
    memset(ms, 0, sizeof ms);
    densities *dens = malloc(sizeof *dens);
    summary large[4 + MAX_MC_SIZES], paper[4 + MAX_MC_SIZES];
    double *ratio_large = NULL, *ratio_paper = NULL;
    progress pr;
    progress_start(&pr, "", 1.0, 1); /* disabled until a task starts */
    const int64_t blocks = cfg.samples / cfg.paper_samples;

    if (!dens) {
        fprintf(stderr, "lgd " CMD ": out of memory\n");
        goto done;
    }
    if (lgd_tool_mkdirs(cfg.out)) {
        fprintf(stderr, "lgd " CMD ": cannot create %s: %s\n", cfg.out, strerror(errno));
        goto done;
    }
    if (problem_create(&pb, &cfg))
        goto done;
    print_header(&cfg, &pb, blocks);
    fflush(stdout);

    /* 1. Guidance curves and densities. */
    progress_start(&pr, "lgd mixture:", NCURVE_SIGMAS * (2.0 + NCURVE_MC), cfg.quiet);
    for (int s = 0; s < NCURVE_SIGMAS; s++)
        if (compute_curves(&cfg, &pb, curve_sigmas[s], curve_half_width[s], &cv[s], &pr))
            goto done;
    progress_end(&pr);
    if (compute_densities(&pb, dens))
        goto done;
    for (int s = 0; s < NCURVE_SIGMAS; s++)
        if (write_curves_csv(&cfg, &cv[s]))
            goto done;
    if (write_densities_csv(&cfg, dens) || write_guidance_figures(&cfg, cv, dens))
        goto done;
    print_curves_table(cv);
    fflush(stdout);

    /* 2. Sampling. */
    build_methods(&cfg, ms, &nm);
    double total = 0.0;
    for (int k = 0; k < nm; k++) {
        if (method_setup(&cfg, &pb, &ms[k], blocks))
            goto done;
        total += ms[k].cost * cfg.steps * cfg.seeds;
    }
    progress_start(&pr, "lgd mixture:", total, cfg.quiet);
    int bad = run_sampling(&cfg, &pb, ms, nm, blocks, &pr);
    progress_end(&pr);
    if (bad)
        goto done;

    /* 3. Summaries, tables, figures. */
    const int idps = METHOD_DPS, imc = nm - 1; /* LGD-MC with the last n of --n */
    ratio_large = malloc((size_t)cfg.seeds * sizeof *ratio_large);
    ratio_paper = malloc((size_t)(cfg.seeds * (blocks ? blocks : 1)) * sizeof *ratio_paper);
    if (!ratio_large || !ratio_paper) {
        fprintf(stderr, "lgd " CMD ": out of memory\n");
        goto done;
    }
    for (int k = 0; k < nm; k++) {
        if (summarize(ms[k].run_mean, ms[k].run_std, ms[k].run_kl, cfg.seeds, &large[k]))
            goto done;
        if (blocks && summarize(ms[k].blk_mean, ms[k].blk_std, ms[k].blk_kl,
                                blocks * cfg.seeds, &paper[k]))
            goto done;
    }
    print_large_table(&cfg, ms, large, nm);
    kl_ratios(ms[idps].run_kl, ms[imc].run_kl, cfg.seeds, ratio_large);
    double rq[5];
    stats_quantiles(ratio_large, cfg.seeds, summary_q, 5, rq);
    printf("KL(DPS) / KL(%s) = %.1f (ratio of the means; per seed %.1f to %.1f)\n\n",
           ms[imc].name, large[idps].kl_m / large[imc].kl_m, rq[0], rq[4]);
    if (blocks) {
        print_paper_table(&cfg, ms, paper, nm, blocks);
        int64_t nb = blocks * cfg.seeds, below = 0;
        kl_ratios(ms[idps].blk_kl, ms[imc].blk_kl, nb, ratio_paper);
        for (int64_t j = 0; j < nb; j++)
            below += ratio_paper[j] > 1.0;
        stats_quantiles(ratio_paper, nb, summary_q, 5, rq);
        printf("KL(DPS) / KL(%s) per run: median %.1f [25%%: %.1f, 75%%: %.1f]; "
               "%s below DPS in %.1f %% of the runs\n\n",
               ms[imc].name, rq[2], rq[1], rq[3], ms[imc].name,
               100.0 * (double)below / (double)nb);
    }
    for (int k = 0; k < nm; k++)
        if (ms[k].kind == LGD_GUIDANCE_MC && ms[k].n == 100) {
            double t, sd;
            stats_mean_sd(ms[k].run_sec, cfg.seeds, &t, &sd);
            printf("speed: %s, %" PRId64 " samples x %d steps: %.3f s per run (mean of %d)\n",
                   ms[k].name, cfg.samples, (int)cfg.steps, t, (int)cfg.seeds);
        }

    if (write_kl_csv(&cfg, ms, nm, blocks) ||
        write_summary_csv(&cfg, ms, large, paper, nm, blocks) ||
        write_timing_csv(&cfg, ms, nm) ||
        write_histograms(&cfg, ms, nm, dens, cfg.samples, HIST_BINS, "histograms.csv",
                         "fig6_histograms.svg",
                         "Fig. 6: samples against the target density (first seed)"))
        goto done;
    char title[96];
    snprintf(title, sizeof title, "Fig. 6, paper protocol: one run of %" PRId64
             " samples (first seed)", cfg.paper_samples);
    if (blocks && write_histograms(&cfg, ms, nm, dens, cfg.paper_samples, HIST_BINS_PAPER,
                                   "histograms_paper.csv", "fig6_histograms_paper.svg", title))
        goto done;
    printf("wrote CSV files and SVG figures to %s/\n", cfg.out);
    rc = LGD_TOOL_EXIT_OK;
done:
    progress_end(&pr);
    for (int k = 0; k < nm; k++)
        method_free(&ms[k]);
    for (int s = 0; s < NCURVE_SIGMAS; s++)
        curves_free(&cv[s]);
    free(ratio_large);
    free(ratio_paper);
    free(dens);
    problem_destroy(&pb);
    return rc;
}
