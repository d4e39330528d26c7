/*
 * mixture_guidance.c - part 1 of lgd mixture (Fig. 4, 8): the guidance term
 * g(x) = grad_x log p_sigma(y = 0 | x) on a grid of x, exact, DPS and LGD-MC; its CSV
 * files (guidance_sigma1.csv, guidance_sigma80.csv) and its table on stdout.
 *
 * The exact value needs no formula of its own: p_sigma(y = 0 | x) is the responsibility
 * of component 0 in the noisy mixture, w0 N0_sigma(x) / p_sigma(x), so
 * g(x) = score of N0_sigma(x) - score of p_sigma(x): two library scores (Tweedie).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "mixture.h"
#include "sample_stats.h"

void mix_curves_free(mix_curves *c)
{
    free(c->x);
    free(c->exact);
    free(c->dps);
    for (int k = 0; k < NCURVE_MC; k++)
        free(c->mc[k]);
    free(c->p_y0);
}

/* g = lgd_guidance_term of an estimator at every x of the grid, into out[n]. */
static int estimator_curve(mix_problem *pb, const lgd_guidance_options *go,
                           const lgd_tensor *xt, double sigma, lgd_tensor *gt, float *host,
                           double *out)
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

/* Allocates c's columns for n grid points; 0, or 1 with a message. */
static int curves_alloc(mix_curves *c, int64_t n, double sigma)
{
    c->n = n;
    c->sigma = sigma;
    c->x = malloc((size_t)n * sizeof *c->x);
    c->exact = malloc((size_t)n * sizeof *c->exact);
    c->dps = malloc((size_t)n * sizeof *c->dps);
    c->p_y0 = malloc((size_t)n * sizeof *c->p_y0);
    int ok = c->x && c->exact && c->dps && c->p_y0;
    for (int k = 0; k < NCURVE_MC; k++)
        ok = ok && (c->mc[k] = malloc((size_t)n * sizeof *c->mc[k])) != NULL;
    return ok ? 0 : tool_out_of_memory(CMD);
}

/* The exact guidance term at the grid xt and p_sigma(y = 0 | x); scratch tensors s_mix,
 * s_tgt [n, 1], ld_mix, ld_tgt [n] and host buffers h1, h2 [n]. */
static int exact_curves(mix_problem *pb, const lgd_tensor *xt, double sigma, lgd_tensor *s_mix,
                        lgd_tensor *s_tgt, lgd_tensor *ld_mix, lgd_tensor *ld_tgt, float *h1,
                        float *h2, mix_curves *c)
{
    lgd_context *ctx = pb->ctx;
    int64_t n = c->n;
    /* Exact: g = score of N0_sigma - score of p_sigma (p_sigma(y=0|x) = w0 N0_sigma / p_sigma). */
    if (CK(ctx, lgd_model_score(pb->target, xt, (float)sigma, NULL, s_tgt)) ||
        CK(ctx, lgd_model_score(pb->mix, xt, (float)sigma, NULL, s_mix)) ||
        CK(ctx, lgd_tensor_download(s_tgt, h1, (size_t)n)) ||
        CK(ctx, lgd_tensor_download(s_mix, h2, (size_t)n)))
        return 1;
    for (int64_t i = 0; i < n; i++)
        c->exact[i] = (double)h1[i] - (double)h2[i];
    /* p_sigma(y = 0 | x) from the two log densities (Fig. 4, middle row). */
    if (CK(ctx, lgd_model_log_density(pb->target, xt, (float)sigma, ld_tgt)) ||
        CK(ctx, lgd_model_log_density(pb->mix, xt, (float)sigma, ld_mix)) ||
        CK(ctx, lgd_tensor_download(ld_tgt, h1, (size_t)n)) ||
        CK(ctx, lgd_tensor_download(ld_mix, h2, (size_t)n)))
        return 1;
    for (int64_t i = 0; i < n; i++)
        c->p_y0[i] = exp(log(pb->w0) + (double)h1[i] - (double)h2[i]);
    return 0;
}

/* DPS and LGD-MC through lgd_guidance_term (row i's MC draws are keyed by i); gt [n, 1]
 * and host [n] are scratch. */
static int estimator_curves(const mix_config *cfg, mix_problem *pb, const lgd_tensor *xt,
                            lgd_tensor *gt, float *host, mix_curves *c, progress *pr,
                            const char *detail)
{
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = LGD_GUIDANCE_DPS;
    go.seed = cfg->seed;
    if (estimator_curve(pb, &go, xt, c->sigma, gt, host, c->dps))
        return 1;
    progress_advance(pr, 1.0);
    for (int k = 0; k < NCURVE_MC; k++) {
        progress_show(pr, 0.0, detail);
        go.kind = LGD_GUIDANCE_MC;
        go.n_samples = curve_mc[k];
        if (estimator_curve(pb, &go, xt, c->sigma, gt, host, c->mc[k]))
            return 1;
        progress_advance(pr, 1.0);
    }
    return 0;
}

int mix_compute_curves(const mix_config *cfg, mix_problem *pb, double sigma, double half_width,
                       mix_curves *c, progress *pr)
{
    lgd_context *ctx = pb->ctx;
    int64_t n = cfg->points;
    int rc = 1;
    lgd_tensor *xt = NULL, *s_mix = NULL, *s_tgt = NULL, *ld_mix = NULL, *ld_tgt = NULL;
    float *h1 = malloc((size_t)n * sizeof *h1), *h2 = malloc((size_t)n * sizeof *h2);
    if (curves_alloc(c, n, sigma))
        goto done;
    if (!h1 || !h2) {
        tool_out_of_memory(CMD);
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
    if (exact_curves(pb, xt, sigma, s_mix, s_tgt, ld_mix, ld_tgt, h1, h2, c))
        goto done;
    progress_advance(pr, 1.0);
    if (estimator_curves(cfg, pb, xt, s_mix, h1, c, pr, detail))
        goto done;
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

int mix_write_curves_csv(const mix_config *cfg, const mix_curves *c)
{
    char name[64];
    tool_file out;
    snprintf(name, sizeof name, "guidance_sigma%g.csv", c->sigma);
    if (tool_file_open(&out, CMD, cfg->out, name, NULL))
        return 1;
    fprintf(out.f, "x,exact,dps");
    for (int k = 0; k < NCURVE_MC; k++)
        fprintf(out.f, ",mc_n%d", (int)curve_mc[k]);
    fprintf(out.f, ",p_y0\n");
    for (int64_t i = 0; i < c->n; i++) {
        fprintf(out.f, "%.9g,%.9g,%.9g", c->x[i], c->exact[i], c->dps[i]);
        for (int k = 0; k < NCURVE_MC; k++)
            fprintf(out.f, ",%.9g", c->mc[k][i]);
        fprintf(out.f, ",%.9g\n", c->p_y0[i]);
    }
    return tool_file_close(&out);
}

/* Median over the grid points with x < 0 (side < 0) or x > 0 (side > 0) of g / exact;
 * NAN if there are none. */
static double median_ratio(const mix_curves *c, const double *g, int side)
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

static void print_curve_row(const mix_curves *c, const char *name, const double *g)
{
    double me = stats_max_abs(c->exact, c->n);
    printf("%-6g %-13s %11.4g %13.3g %13.3g %13.3g %12.3g\n", c->sigma, name,
           stats_max_abs(g, c->n), stats_max_abs(g, c->n) / me, median_ratio(c, g, -1),
           median_ratio(c, g, 1), stats_rel_l2(g, c->exact, c->n));
}

void mix_print_curves_table(const mix_curves *c)
{
    printf("Guidance term g(x) = grad_x log p_sigma(y=0 | x) on %" PRId64
           " grid points (Fig. 4, 8)\n", c[0].n);
    printf("%-6s %-13s %11s %13s %13s %13s %12s\n", "sigma", "estimator", "max|g|",
           "max|g|/exact", "g/exact x<0", "g/exact x>0", "rel.L2 err");
    for (int s = 0; s < NCURVE_SIGMAS; s++) {
        const mix_curves *cs = &c[s];
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
