/*
 * mixture_figures.c - the figures of lgd mixture: Fig. 4 (prior, loss, p_sigma(y=0|x)
 * and the guidance term with n = 100), Fig. 8 (the guidance term for every n) and Fig. 6
 * (histograms of the samples against the target density), with histograms.csv and
 * histograms_paper.csv.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "mixture.h"
#include "sample_stats.h"
#include "svg_plot.h"

/* y range covering the columns cols[0..k-1], padded by `pad` of the span. */
static void curve_yrange(const mix_curves *c, const double *const *cols, int k, double pad,
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

/* Adds exact, DPS and LGD-MC n = curve_mc[k] to a guidance panel. zoom: the y range
 * covers exact and LGD-MC only (DPS may leave the plot); otherwise all three. */
static int guidance_panel(svg_figure *fig, int p, const mix_curves *c, int k, int zoom)
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
    return svg_panel_axes(fig, p, title, "x (noisy sample x_t)",
                          "grad_x log p_sigma(y=0|x)") ||
           svg_panel_xrange(fig, p, c->x[0], c->x[c->n - 1]) ||
           svg_panel_yrange(fig, p, lo, hi) ||
           svg_panel_legend(fig, p, SVG_BOTTOM_LEFT) ||
           svg_panel_line(fig, p, c->x, c->mc[k], (size_t)c->n, C_MC, 1.4, SVG_SOLID, lab) ||
           svg_panel_line(fig, p, c->x, c->dps, (size_t)c->n, C_DPS, 2.0, SVG_SOLID, "DPS") ||
           svg_panel_line(fig, p, c->x, c->exact, (size_t)c->n, C_EXACT, 2.2, SVG_DASHED,
                          "exact") ||
           svg_panel_note(fig, p, note);
}

int mix_write_guidance_figures(const mix_config *cfg, const mix_curves *c,
                               const mix_densities *d)
{
    int rc = 1;
    /* Fig. 4: prior and exp(-loss); p_sigma(y=0|x); guidance with n = 100. */
    svg_figure *f4 =
        svg_figure_create(4, NCURVE_SIGMAS, 470, 300,
                          "Fig. 4: prior, loss, p_sigma(y=0|x) and the guidance term");
    svg_figure *f8 =
        svg_figure_create(NCURVE_MC, NCURVE_SIGMAS, 470, 290,
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
    if (tool_write_svg(CMD, cfg->out, f4, "fig4_guidance.svg") ||
        tool_write_svg(CMD, cfg->out, f8, "fig8_guidance_n.svg"))
        goto done;
    rc = 0;
done:
    if (rc && (!f4 || !f8))
        tool_out_of_memory(CMD);
    svg_figure_destroy(f4);
    svg_figure_destroy(f8);
    return rc;
}

/* Every method's density histogram of the first `count` samples of its first seed. */
typedef struct histograms {
    int64_t count;
    int nbins;
    double *dens;     /* [methods][nbins] */
    double *edges;    /* [nbins + 1] */
    int64_t *outside; /* [methods]: samples outside [HIST_LO, HIST_HI) */
} histograms;

static void compute_histograms(const mix_method *ms, int nm, histograms *h)
{
    for (int b = 0; b <= h->nbins; b++)
        h->edges[b] = HIST_LO + (HIST_HI - HIST_LO) * b / h->nbins;
    for (int k = 0; k < nm; k++)
        h->outside[k] = stats_histogram(ms[k].first, h->count, HIST_LO, HIST_HI, h->nbins,
                                        h->dens + (size_t)k * (size_t)h->nbins);
}

static int write_histograms_csv(const mix_config *cfg, const mix_method *ms, int nm,
                                const histograms *h, const char *csv_name)
{
    tool_file out;
    if (tool_file_open(&out, CMD, cfg->out, csv_name, NULL))
        return 1;
    fprintf(out.f, "bin_lo,bin_hi");
    for (int k = 0; k < nm; k++)
        fprintf(out.f, ",%s", ms[k].key);
    fprintf(out.f, "\n");
    for (int b = 0; b < h->nbins; b++) {
        fprintf(out.f, "%.9g,%.9g", h->edges[b], h->edges[b + 1]);
        for (int k = 0; k < nm; k++)
            fprintf(out.f, ",%.9g", h->dens[(size_t)k * (size_t)h->nbins + (size_t)b]);
        fprintf(out.f, "\n");
    }
    return tool_file_close(&out);
}

/* Panel k: method k's histogram over the target density, with its mean, std and KL. */
static int histogram_panel(svg_figure *fig, int k, const mix_method *m, const histograms *h,
                           const mix_densities *d)
{
    char note[96], ptitle[64];
    double mean, std;
    stats_mean_std(m->first, h->count, &mean, &std);
    snprintf(ptitle, sizeof ptitle, "%s (%" PRId64 " samples)", m->name, h->count);
    if (svg_panel_axes(fig, k, ptitle, "x0", "density") ||
        svg_panel_xrange(fig, k, HIST_LO, HIST_HI) ||
        svg_panel_bars(fig, k, h->edges, h->dens + (size_t)k * (size_t)h->nbins,
                       (size_t)h->nbins, m->color, "samples") ||
        svg_panel_line(fig, k, d->x, d->target, DENS_POINTS, C_TARGET, 1.8, SVG_DASHED,
                       "target N(-1, 0.2^2)"))
        return 1;
    snprintf(note, sizeof note, "mean %.3f", fabs(mean) < 5e-4 ? 0.0 : mean);
    if (svg_panel_note(fig, k, note))
        return 1;
    snprintf(note, sizeof note, "std %.3f", std);
    if (svg_panel_note(fig, k, note))
        return 1;
    snprintf(note, sizeof note, "KL %.4g", stats_kl_gauss(mix_means[0], mix_std, mean, std));
    if (svg_panel_note(fig, k, note))
        return 1;
    if (h->outside[k]) {
        snprintf(note, sizeof note, "%" PRId64 " outside", h->outside[k]);
        if (svg_panel_note(fig, k, note))
            return 1;
    }
    return 0;
}

/* csv_name and its figure svg_name from the first seed's first `count` samples. */
static int write_histograms(const mix_config *cfg, const mix_method *ms, int nm,
                            const mix_densities *d, int64_t count, int nbins,
                            const char *csv_name, const char *svg_name, const char *title)
{
    int rc = 1;
    histograms h = { count, nbins, malloc((size_t)nm * (size_t)nbins * sizeof(double)),
                     malloc((size_t)(nbins + 1) * sizeof(double)),
                     malloc((size_t)nm * sizeof(int64_t)) };
    int cols = nm < 3 ? nm : 3, rows = (nm + cols - 1) / cols;
    svg_figure *fig = svg_figure_create(rows, cols, 400, 290, title);
    if (!h.dens || !h.edges || !h.outside || !fig) {
        tool_out_of_memory(CMD);
        goto done;
    }
    compute_histograms(ms, nm, &h);
    if (write_histograms_csv(cfg, ms, nm, &h, csv_name))
        goto done;
    for (int k = 0; k < nm; k++)
        if (histogram_panel(fig, k, &ms[k], &h, d))
            goto done;
    if (tool_write_svg(CMD, cfg->out, fig, svg_name))
        goto done;
    rc = 0;
done:
    svg_figure_destroy(fig);
    free(h.dens);
    free(h.edges);
    free(h.outside);
    return rc;
}

int mix_write_all_histograms(const mix_config *cfg, const mix_method *ms, int nm,
                             const mix_densities *d, int64_t blocks)
{
    if (write_histograms(cfg, ms, nm, d, cfg->samples, HIST_BINS, "histograms.csv",
                         "fig6_histograms.svg",
                         "Fig. 6: samples against the target density (first seed)"))
        return 1;
    char title[96];
    snprintf(title, sizeof title, "Fig. 6, paper protocol: one run of %" PRId64
             " samples (first seed)", cfg->paper_samples);
    return blocks && write_histograms(cfg, ms, nm, d, cfg->paper_samples, HIST_BINS_PAPER,
                                      "histograms_paper.csv", "fig6_histograms_paper.svg",
                                      title);
}
