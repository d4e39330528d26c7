/*
 * mixture.h - what the files of `lgd mixture` share: the experiment's fixed data, its
 * options, the problem (models and loss) and the results of each part.
 *
 * Not part of liblgd's API. The parts, one file each:
 *   mixture.c           the command: usage, options, the order of the parts
 *   mixture_problem.c   the fixed data, the models and loss, the densities (density.csv)
 *   mixture_guidance.c  1. guidance curves at sigma = 1 and 80 (guidance_sigma*.csv)
 *   mixture_sampling.c  2. sampling with every method (samples.csv)
 *   mixture_kl.c        3. KL summaries and tables (kl.csv, kl_summary.csv, timing.csv)
 *   mixture_figures.c   the figures (Fig. 4, 6, 8) and histograms*.csv
 */
#ifndef LGD_TOOL_MIXTURE_H
#define LGD_TOOL_MIXTURE_H

#include <stdint.h>

#include <lgd/lgd.h>

#include "tool.h"

#define CMD "mixture"
/* Reports a failed library call; evaluates to non-zero on error. */
#define CK(ctx, call) TOOL_CHECK(CMD, (ctx), (call))

/* ---- the experiment's fixed data (mixture_problem.c) ---- */

#define NCOMP 2
extern const float mix_weights[NCOMP];
extern const float mix_means[NCOMP];
extern const float mix_std; /* both components */

/* Noise levels of the guidance curves (Fig. 4, 8) and their x ranges: +-3 sigma_x, with
 * sigma_x^2 = 1 + sigma^2 roughly the spread of p_sigma. */
#define NCURVE_SIGMAS 2
extern const double curve_sigmas[NCURVE_SIGMAS];
extern const double curve_half_width[NCURVE_SIGMAS];
/* LGD-MC sizes of the curves (Fig. 8: 1, 5, 10, 20; Fig. 4: 100). */
#define NCURVE_MC 5
extern const int32_t curve_mc[NCURVE_MC];

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

/* ---- options (mixture.c) ---- */

typedef struct mix_config {
    int64_t samples;
    int64_t paper_samples;
    int32_t steps;
    int sampler_choice;          /* --sampler, an index into the sampler names */
    lgd_sampler_kind sampler;    /* ... and what it means */
    const char *sampler_name;
    float eta;
    uint64_t seed;
    int32_t seeds;
    int32_t mc[MAX_MC_SIZES];
    int nmc;
    int32_t points;
    int32_t threads;
    int backend_choice;          /* --backend (tool_backend_kind) */
    const char *out;
    int quiet;
} mix_config;

/* ---- the problem: models and loss (mixture_problem.c) ---- */

typedef struct mix_problem {
    lgd_context *ctx;
    lgd_model *mix;    /* p0, the mixture */
    lgd_model *target; /* N(m0, s^2): component 0 alone, the exact target */
    lgd_loss *loss;
    float a, b;        /* the logistic loss's parameters */
    double w0;         /* weight of component 0 (normalised) */
} mix_problem;

int mix_problem_create(mix_problem *pb, const mix_config *cfg);
void mix_problem_destroy(mix_problem *pb);

/* The densities on [DENS_LO, DENS_HI]: prior, exp(-loss), target. */
typedef struct mix_densities {
    double x[DENS_POINTS], prior[DENS_POINTS], likelihood[DENS_POINTS], target[DENS_POINTS];
} mix_densities;

int mix_compute_densities(mix_problem *pb, mix_densities *d);
int mix_write_densities_csv(const mix_config *cfg, const mix_densities *d);

/* ---- 1. guidance curves (mixture_guidance.c) ---- */

/* The guidance term g(x) on a grid of x at one sigma: exact, DPS, LGD-MC per curve_mc. */
typedef struct mix_curves {
    int64_t n;
    double sigma;
    double *x, *exact, *dps, *mc[NCURVE_MC], *p_y0;
} mix_curves;

int mix_compute_curves(const mix_config *cfg, mix_problem *pb, double sigma, double half_width,
                       mix_curves *c, progress *pr);
void mix_curves_free(mix_curves *c);
int mix_write_curves_csv(const mix_config *cfg, const mix_curves *c);
void mix_print_curves_table(const mix_curves *c);

/* ---- 2. sampling (mixture_sampling.c) ---- */

typedef struct mix_method {
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
} mix_method;

/* The methods: unguided, exact, exact-IS, DPS (index MIX_METHOD_DPS), then LGD-MC for
 * each n of --n. */
#define MIX_METHOD_DPS 3
#define MIX_MAX_METHODS (4 + MAX_MC_SIZES)

void mix_build_methods(const mix_config *cfg, mix_method *ms, int *count);
int mix_method_setup(const mix_config *cfg, mix_problem *pb, mix_method *m, int64_t blocks);
void mix_method_free(mix_method *m);
/* Runs every method for every seed; fills the statistics and writes samples.csv. */
int mix_run_sampling(const mix_config *cfg, mix_problem *pb, mix_method *ms, int nm,
                     int64_t blocks, progress *pr);

/* ---- 3. KL summaries and tables (mixture_kl.c) ---- */

/* Prints the KL tables (large runs, paper protocol, speed) and writes kl.csv,
 * kl_summary.csv and timing.csv; 0 or 1. */
int mix_report_kl(const mix_config *cfg, const mix_method *ms, int nm, int64_t blocks);

/* ---- figures (mixture_figures.c) ---- */

/* fig4_guidance.svg and fig8_guidance_n.svg from the curves at every sigma. */
int mix_write_guidance_figures(const mix_config *cfg, const mix_curves *c,
                               const mix_densities *d);
/* histograms.csv / histograms_paper.csv and their figures (Fig. 6). */
int mix_write_all_histograms(const mix_config *cfg, const mix_method *ms, int nm,
                             const mix_densities *d, int64_t blocks);

#endif /* LGD_MIXTURE_H */
