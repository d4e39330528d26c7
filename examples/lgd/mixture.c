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
 * histograms, quantiles) are the only arithmetic done here. This file holds the
 * command itself (usage, options, the order of the parts); mixture.h lists the others.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <lgd/lgd.h>

#include "commands.h"
#include "mixture.h"

/* The samplers of --sampler and their kinds, in the same order. */
static const char *const sampler_names[] = { "ddim", "euler", "heun", "dpmpp2m", NULL };
static const lgd_sampler_kind sampler_kinds[] = { LGD_SAMPLER_DDIM, LGD_SAMPLER_EULER,
                                                  LGD_SAMPLER_HEUN, LGD_SAMPLER_DPMPP_2M };

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

/* The option table of lgd mixture, into cfg; TOOL_CONTINUE or an exit status. */
static int parse_args(int argc, char **argv, mix_config *cfg)
{
    const tool_option opts[] = {
        tool_option_quiet(&cfg->quiet),
        { .name = "samples", .kind = TOOL_OPT_INT64, .dest = &cfg->samples, .min = 2,
          .max = INT32_MAX, .needs = "an integer >= 2" },
        { .name = "paper-samples", .kind = TOOL_OPT_INT64, .dest = &cfg->paper_samples,
          .min = 2, .max = INT32_MAX, .needs = "an integer >= 2" },
        { .name = "steps", .kind = TOOL_OPT_INT32, .dest = &cfg->steps, .min = 1,
          .max = 100000 },
        { .name = "seed", .kind = TOOL_OPT_UINT64, .dest = &cfg->seed, .umax = UINT64_MAX },
        { .name = "seeds", .kind = TOOL_OPT_INT32, .dest = &cfg->seeds, .min = 1,
          .max = 100000 },
        { .name = "points", .kind = TOOL_OPT_INT32, .dest = &cfg->points, .min = 2,
          .max = 1000000 },
        tool_option_threads(&cfg->threads),
        { .name = "n", .kind = TOOL_OPT_INT32_LIST, .dest = cfg->mc, .count = &cfg->nmc,
          .capacity = MAX_MC_SIZES, .min = 1, .max = 1000000,
          .needs = "positive integers, comma-separated (e.g. 10,100)" },
        { .name = "eta", .kind = TOOL_OPT_FLOAT, .dest = &cfg->eta, .fmin = 0.0, .fmax = 1.0 },
        { .name = "sampler", .kind = TOOL_OPT_CHOICE, .dest = &cfg->sampler_choice,
          .choices = sampler_names, .what = "sampler" },
        tool_option_backend(&cfg->backend_choice),
        tool_option_out(&cfg->out),
    };
    int st = tool_parse_options(CMD, argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                                lgd_mixture_usage);
    if (st != TOOL_CONTINUE)
        return st;
    cfg->sampler = sampler_kinds[cfg->sampler_choice];
    cfg->sampler_name = sampler_names[cfg->sampler_choice];
    if (cfg->eta != 0.0f && cfg->sampler != LGD_SAMPLER_DDIM)
        return tool_usage_error(CMD, "--eta applies to the ddim sampler only");
    return TOOL_CONTINUE;
}

static void print_header(const mix_config *cfg, const mix_problem *pb, int64_t blocks)
{
    printf("lgd mixture: the LGD paper's 1-D Gaussian mixture (Sec. 4.2, 6.1, App. A.4, B.1)\n");
    tool_print_library(pb->ctx);
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

/* 1. Guidance curves and densities: guidance_sigma*.csv, density.csv, Fig. 4 and 8 and
 * the table of the curves. */
static int guidance_part(const mix_config *cfg, mix_problem *pb, mix_curves *cv,
                         mix_densities *dens, progress *pr)
{
    progress_start(pr, "lgd mixture:", NCURVE_SIGMAS * (2.0 + NCURVE_MC), cfg->quiet);
    for (int s = 0; s < NCURVE_SIGMAS; s++)
        if (mix_compute_curves(cfg, pb, curve_sigmas[s], curve_half_width[s], &cv[s], pr))
            return 1;
    progress_end(pr);
    if (mix_compute_densities(pb, dens))
        return 1;
    for (int s = 0; s < NCURVE_SIGMAS; s++)
        if (mix_write_curves_csv(cfg, &cv[s]))
            return 1;
    if (mix_write_densities_csv(cfg, dens) || mix_write_guidance_figures(cfg, cv, dens))
        return 1;
    mix_print_curves_table(cv);
    fflush(stdout);
    return 0;
}

/* 2. Sampling with every method (samples.csv); *nm is set first, for the clean-up. */
static int sampling_part(const mix_config *cfg, mix_problem *pb, mix_method *ms, int *nm,
                         int64_t blocks, progress *pr)
{
    mix_build_methods(cfg, ms, nm);
    double total = 0.0;
    for (int k = 0; k < *nm; k++) {
        if (mix_method_setup(cfg, pb, &ms[k], blocks))
            return 1;
        total += ms[k].cost * cfg->steps * cfg->seeds;
    }
    progress_start(pr, "lgd mixture:", total, cfg->quiet);
    int bad = mix_run_sampling(cfg, pb, ms, *nm, blocks, pr);
    progress_end(pr);
    return bad;
}

/* The whole experiment; an exit status. */
static int run_experiment(const mix_config *cfg)
{
    int rc = TOOL_EXIT_ERROR;
    mix_problem pb;
    memset(&pb, 0, sizeof pb);
    mix_curves cv[NCURVE_SIGMAS];
    memset(cv, 0, sizeof cv);
    mix_method ms[MIX_MAX_METHODS];
    int nm = 0;
    memset(ms, 0, sizeof ms);
    mix_densities *dens = malloc(sizeof *dens);
    progress pr;
    progress_idle(&pr);
    const int64_t blocks = cfg->samples / cfg->paper_samples;

    if (!dens) {
        tool_out_of_memory(CMD);
        goto done;
    }
    if (tool_make_out_dir(CMD, cfg->out) || mix_problem_create(&pb, cfg))
        goto done;
    print_header(cfg, &pb, blocks);
    fflush(stdout);
    if (guidance_part(cfg, &pb, cv, dens, &pr) ||
        sampling_part(cfg, &pb, ms, &nm, blocks, &pr))
        goto done;
    /* 3. Summaries, tables, figures. */
    if (mix_report_kl(cfg, ms, nm, blocks) ||
        mix_write_all_histograms(cfg, ms, nm, dens, blocks))
        goto done;
    printf("wrote CSV files and SVG figures to %s/\n", cfg->out);
    rc = TOOL_EXIT_OK;
done:
    progress_end(&pr);
    for (int k = 0; k < nm; k++)
        mix_method_free(&ms[k]);
    for (int s = 0; s < NCURVE_SIGMAS; s++)
        mix_curves_free(&cv[s]);
    free(dens);
    mix_problem_destroy(&pb);
    return rc;
}

int lgd_mixture_main(int argc, char **argv)
{
    /* defaults; the choices' index 0 are ddim and cpu */
    mix_config cfg = { .samples = 10000, .paper_samples = 100, .steps = 20, .seeds = 5,
                       .mc = { 10, 100 }, .nmc = 2, .points = 401,
                       .out = "lgd-mixture-out" };
    int st = parse_args(argc, argv, &cfg);
    if (st != TOOL_CONTINUE)
        return st;
    return run_experiment(&cfg);
}
