/*
 * mixture_kl.c - part 3 of lgd mixture (App. B.1): each method's mean, std and
 * KL(N(-1, 0.2^2) || N(mean, std^2)) summarised over the large runs (one per seed) and
 * over the paper protocol's runs (the blocks of --paper-samples), the tables on stdout
 * and kl.csv, kl_summary.csv and timing.csv.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mixture.h"
#include "sample_stats.h"

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
    if (!tmp)
        return tool_out_of_memory(CMD);
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

static int write_kl_csv(const mix_config *cfg, const mix_method *ms, int nm, int64_t blocks)
{
    tool_file out;
    if (tool_file_open(&out, CMD, cfg->out, "kl.csv",
                       "protocol,method,seed,first_row,samples,mean,std,kl"))
        return 1;
    for (int k = 0; k < nm; k++)
        for (int32_t si = 0; si < cfg->seeds; si++)
            fprintf(out.f, "large,%s,%" PRIu64 ",0,%" PRId64 ",%.9g,%.9g,%.9g\n", ms[k].key,
                    cfg->seed + (uint64_t)si, cfg->samples, ms[k].run_mean[si],
                    ms[k].run_std[si], ms[k].run_kl[si]);
    for (int k = 0; k < nm; k++)
        for (int32_t si = 0; si < cfg->seeds; si++)
            for (int64_t b = 0; b < blocks; b++) {
                size_t j = (size_t)si * (size_t)blocks + (size_t)b;
                fprintf(out.f, "paper,%s,%" PRIu64 ",%" PRId64 ",%" PRId64 ",%.9g,%.9g,%.9g\n",
                        ms[k].key, cfg->seed + (uint64_t)si, b * cfg->paper_samples,
                        cfg->paper_samples, ms[k].blk_mean[j], ms[k].blk_std[j],
                        ms[k].blk_kl[j]);
            }
    return tool_file_close(&out);
}

static int write_summary_csv(const mix_config *cfg, const mix_method *ms, const summary *large,
                             const summary *paper, int nm, int64_t blocks)
{
    tool_file out;
    if (tool_file_open(&out, CMD, cfg->out, "kl_summary.csv",
                       "protocol,method,runs,samples,mean_mean,mean_sd,std_mean,std_sd,"
                       "kl_mean,kl_sd,kl_min,kl_q25,kl_median,kl_q75,kl_max"))
        return 1;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && blocks == 0)
            break;
        const summary *su = pass ? paper : large;
        for (int k = 0; k < nm; k++) {
            const summary *s = &su[k];
            fprintf(out.f, "%s,%s,%" PRId64 ",%" PRId64 ",%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,"
                       "%.9g,%.9g,%.9g\n",
                    pass ? "paper" : "large", ms[k].key, s->runs,
                    pass ? cfg->paper_samples : cfg->samples, s->mean_m, s->mean_sd, s->std_m,
                    s->std_sd, s->kl_m, s->kl_sd, s->kl_q[0], s->kl_q[1], s->kl_q[2],
                    s->kl_q[3], s->kl_q[4]);
        }
    }
    return tool_file_close(&out);
}

static int write_timing_csv(const mix_config *cfg, const mix_method *ms, int nm)
{
    tool_file out;
    if (tool_file_open(&out, CMD, cfg->out, "timing.csv",
                       "method,samples,steps,runs,seconds_mean,seconds_min"))
        return 1;
    for (int k = 0; k < nm; k++) {
        double m, sd, mn = INFINITY;
        stats_mean_sd(ms[k].run_sec, cfg->seeds, &m, &sd);
        for (int32_t si = 0; si < cfg->seeds; si++)
            mn = fmin(mn, ms[k].run_sec[si]);
        fprintf(out.f, "%s,%" PRId64 ",%d,%d,%.6f,%.6f\n", ms[k].key, cfg->samples,
                (int)cfg->steps, (int)cfg->seeds, m, mn);
    }
    return tool_file_close(&out);
}

static void print_large_table(const mix_config *cfg, const mix_method *ms, const summary *su,
                              int nm)
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

static void print_paper_table(const mix_config *cfg, const mix_method *ms, const summary *su,
                              int nm, int64_t blocks)
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


/* The line under the large table: KL(DPS) / KL(LGD-MC, last n) of the means and the
 * range of the per-seed ratios (ratio[cfg->seeds] is scratch). */
static void print_large_ratios(const mix_config *cfg, const mix_method *ms, int nm,
                               const summary *large, double *ratio)
{
    const int idps = MIX_METHOD_DPS, imc = nm - 1; /* LGD-MC with the last n of --n */
    double rq[5];
    kl_ratios(ms[idps].run_kl, ms[imc].run_kl, cfg->seeds, ratio);
    stats_quantiles(ratio, cfg->seeds, summary_q, 5, rq);
    printf("KL(DPS) / KL(%s) = %.1f (ratio of the means; per seed %.1f to %.1f)\n\n",
           ms[imc].name, large[idps].kl_m / large[imc].kl_m, rq[0], rq[4]);
}

/* The line under the paper-protocol table: the quartiles of the per-run ratios
 * KL(DPS) / KL(LGD-MC) and how often LGD-MC is below DPS (ratio[runs] is scratch). */
static void print_paper_ratios(const mix_config *cfg, const mix_method *ms, int nm,
                               int64_t blocks, double *ratio)
{
    const int idps = MIX_METHOD_DPS, imc = nm - 1;
    int64_t nb = blocks * cfg->seeds, below = 0;
    double rq[5];
    kl_ratios(ms[idps].blk_kl, ms[imc].blk_kl, nb, ratio);
    for (int64_t j = 0; j < nb; j++)
        below += ratio[j] > 1.0;
    stats_quantiles(ratio, nb, summary_q, 5, rq);
    printf("KL(DPS) / KL(%s) per run: median %.1f [25%%: %.1f, 75%%: %.1f]; "
           "%s below DPS in %.1f %% of the runs\n\n",
           ms[imc].name, rq[2], rq[1], rq[3], ms[imc].name, 100.0 * (double)below / (double)nb);
}

/* The time per run of LGD-MC with n = 100, when it is one of the methods. */
static void print_speed(const mix_config *cfg, const mix_method *ms, int nm)
{
    for (int k = 0; k < nm; k++)
        if (ms[k].kind == LGD_GUIDANCE_MC && ms[k].n == 100) {
            double t, sd;
            stats_mean_sd(ms[k].run_sec, cfg->seeds, &t, &sd);
            printf("speed: %s, %" PRId64 " samples x %d steps: %.3f s per run (mean of %d)\n",
                   ms[k].name, cfg->samples, (int)cfg->steps, t, (int)cfg->seeds);
        }
}

/* The summaries of every method: over the seeds (large) and over the paper-protocol
 * runs (paper, when there are blocks). */
static int summarize_methods(const mix_config *cfg, const mix_method *ms, int nm,
                             int64_t blocks, summary *large, summary *paper)
{
    for (int k = 0; k < nm; k++) {
        if (summarize(ms[k].run_mean, ms[k].run_std, ms[k].run_kl, cfg->seeds, &large[k]))
            return 1;
        if (blocks && summarize(ms[k].blk_mean, ms[k].blk_std, ms[k].blk_kl,
                                blocks * cfg->seeds, &paper[k]))
            return 1;
    }
    return 0;
}

int mix_report_kl(const mix_config *cfg, const mix_method *ms, int nm, int64_t blocks)
{
    int rc = 1;
    summary large[MIX_MAX_METHODS], paper[MIX_MAX_METHODS];
    memset(paper, 0, sizeof paper);
    double *ratio_large = malloc((size_t)cfg->seeds * sizeof *ratio_large);
    double *ratio_paper =
        malloc((size_t)(cfg->seeds * (blocks ? blocks : 1)) * sizeof *ratio_paper);
    if (!ratio_large || !ratio_paper) {
        tool_out_of_memory(CMD);
        goto done;
    }
    if (summarize_methods(cfg, ms, nm, blocks, large, paper))
        goto done;
    print_large_table(cfg, ms, large, nm);
    print_large_ratios(cfg, ms, nm, large, ratio_large);
    if (blocks) {
        print_paper_table(cfg, ms, paper, nm, blocks);
        print_paper_ratios(cfg, ms, nm, blocks, ratio_paper);
    }
    print_speed(cfg, ms, nm);
    rc = write_kl_csv(cfg, ms, nm, blocks) ||
         write_summary_csv(cfg, ms, large, paper, nm, blocks) ||
         write_timing_csv(cfg, ms, nm);
done:
    free(ratio_large);
    free(ratio_paper);
    return rc;
}
