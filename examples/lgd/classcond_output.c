/*
 * classcond_output.c - lgd classcond's output: the tuning table, the results beside the
 * paper's Table 4, the CSV files and the PNG grid.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "classcond.h"
#include "image_metrics.h"

typedef enum {
    F_LOSS,
    F_LOSS_JUDGE,
    F_ACC,
    F_ACC_NOISY,
    F_FD,
    F_FD_POOLED,
    F_SECONDS,
    NFIELDS
} cc_field;

static double field(const cc_metrics *m, cc_field f)
{
    switch (f) {
    case F_LOSS:
        return m->loss;
    case F_LOSS_JUDGE:
        return m->loss_judge;
    case F_ACC:
        return m->accuracy;
    case F_ACC_NOISY:
        return m->accuracy_noisy;
    case F_FD:
        return m->fd;
    case F_FD_POOLED:
        return m->fd_pooled;
    case F_SECONDS:
        return m->seconds;
    case NFIELDS:
        break;
    }
    return NAN;
}

static void over_seeds(const cc_config *cfg, const cc_eval *ev, int mi, cc_field f,
                       double *mean, double *sd)
{
    double v[CC_MAX_SEEDS];
    for (int k = 0; k < cfg->seeds; k++)
        v[k] = field(&ev->m[mi][k], f);
    img_mean_sd(v, cfg->seeds, mean, sd);
}

static int64_t failed_over_seeds(const cc_config *cfg, const cc_eval *ev, int mi)
{
    int64_t n = 0;
    for (int k = 0; k < cfg->seeds; k++)
        n += ev->m[mi][k].failed;
    return n;
}

void cc_print_grid(const cc_config *cfg, const cc_grid *gr)
{
    printf("Tuning: per scale, mean per-label Frechet distance (judge) to the tune split / "
           "mean cross-entropy\n(* selected; (k) k failed samples)\n");
    printf("%-22s", "method");
    for (int si = 0; si < cfg->nscales; si++)
        printf(" %15g", cfg->scales[si]);
    printf("\n");
    for (int mi = 0; mi < CC_NMETHODS; mi++) {
        if (!cfg->use[mi])
            continue;
        const cc_method *m = &cc_methods[mi];
        printf("%-22s", m->name);
        int ns = m->kind == CC_BASELINE ? 1 : cfg->nscales;
        for (int si = 0; si < ns; si++) {
            const cc_metrics *t = &gr->m[mi][si];
            char cell[48];
            if (t->failed)
                snprintf(cell, sizeof cell, "%.2f/%.2f(%lld)", t->fd, t->loss,
                         (long long)t->failed);
            else
                snprintf(cell, sizeof cell, "%.2f/%.2f%s", t->fd, t->loss,
                         m->kind != CC_BASELINE && gr->best[mi] == si ? "*" : "");
            printf(" %15s", cell);
        }
        printf(m->kind == CC_BASELINE ? "  (no scale)\n" : "\n");
    }
}

void cc_print_table(const cc_config *cfg, const cc_problem *pb, const cc_eval *ev)
{
    printf("\nTable 4 beside the paper's. Ours: 8x8 digits, %d samples per label x %d seeds, "
           "mean +- sd over the seeds;\nloss = mean cross-entropy (nats) of the guiding "
           "classifier w.r.t. the target label; judge CE, accuracy: the judge's;\nacc. noisy: "
           "the noise-aware classifier's; FD = Frechet distance of the judge's logits to the\n"
           "%lld held-out test images (per label, mean over labels; and pooled). Theirs: "
           "ImageNet 256x256,\n10,000 samples, FID (Inception features) and their "
           "classifier's loss (not comparable in value).\n\n",
           (int)cfg->per_label, (int)cfg->seeds, (long long)pb->test_real.n);
    printf("%-22s %6s %15s %15s %13s %13s %15s %15s %7s | %6s %7s\n", "method", "scale",
           "loss (CE)", "judge CE", "accuracy [%]", "acc. noisy", "FD per label", "FD pooled",
           "s/seed", "FID", "loss");
    const cc_metrics *r = &ev->real;
    char an[32];
    if (isnan(r->accuracy_noisy))
        snprintf(an, sizeof an, "-");
    else
        snprintf(an, sizeof an, "%.1f", 100.0 * r->accuracy_noisy);
    printf("%-22s %6s %15.3f %15.3f %13.1f %13s %15.2f %15.2f %7s | %6s %7s\n",
           "real (tune split)", "-", r->loss, r->loss_judge, 100.0 * r->accuracy, an, r->fd,
           r->fd_pooled, "-", "-", "-");
    for (int mi = 0; mi < CC_NMETHODS; mi++) {
        if (!ev->evaluated[mi])
            continue;
        const cc_method *m = &cc_methods[mi];
        double mu[NFIELDS], sd[NFIELDS];
        for (int f = 0; f < NFIELDS; f++)
            over_seeds(cfg, ev, mi, (cc_field)f, &mu[f], &sd[f]);
        char scale[16], c[6][40];
        if (m->kind == CC_BASELINE)
            snprintf(scale, sizeof scale, "-");
        else
            snprintf(scale, sizeof scale, "%g", ev->scale[mi]);
        snprintf(c[0], sizeof c[0], "%.3f +- %.3f", mu[F_LOSS], sd[F_LOSS]);
        snprintf(c[1], sizeof c[1], "%.3f +- %.3f", mu[F_LOSS_JUDGE], sd[F_LOSS_JUDGE]);
        snprintf(c[2], sizeof c[2], "%.1f +- %.1f", 100.0 * mu[F_ACC], 100.0 * sd[F_ACC]);
        if (isnan(mu[F_ACC_NOISY]))
            snprintf(c[3], sizeof c[3], "-");
        else
            snprintf(c[3], sizeof c[3], "%.1f +- %.1f", 100.0 * mu[F_ACC_NOISY],
                     100.0 * sd[F_ACC_NOISY]);
        snprintf(c[4], sizeof c[4], "%.2f +- %.2f", mu[F_FD], sd[F_FD]);
        snprintf(c[5], sizeof c[5], "%.2f +- %.2f", mu[F_FD_POOLED], sd[F_FD_POOLED]);
        printf("%-22s %6s %15s %15s %13s %13s %15s %15s %7.1f | %6s %7s\n", m->name, scale,
               c[0], c[1], c[2], c[3], c[4], c[5], mu[F_SECONDS],
               m->paper_fid ? m->paper_fid : "-", m->paper_loss ? m->paper_loss : "-");
        int64_t nf = failed_over_seeds(cfg, ev, mi);
        if (nf > 0)
            printf("%-22s   (%lld of %lld samples failed: non-finite; counted wrong, left out "
                   "of the other metrics)\n",
                   "", (long long)nf, (long long)cfg->per_label * IMG_CLASSES * cfg->seeds);
    }
    printf("%-22s %6s %15s %15s %13s %13s %15s %15s %7s | %6s %7s\n", "D-PnP (not run)", "", "",
           "", "", "", "", "", "", "317.21", "221.75");
}

static void csv_metrics(FILE *f, const cc_metrics *m)
{
    fprintf(f, "%lld,%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.4f", (long long)m->n,
            (long long)m->failed, m->loss, m->loss_judge, m->accuracy, m->accuracy_noisy, m->fd,
            m->fd_pooled, m->seconds);
}

int cc_write_csv(const cc_config *cfg, const cc_grid *gr, const cc_eval *ev)
{
    tool_file f;
    if (tool_file_open(&f, CC_CMD, cfg->out, "classcond_tuning.csv",
                       "method,n,scale,samples,failed,loss,loss_judge,accuracy,accuracy_noisy,fd,"
                       "fd_pooled,seconds,selected"))
        return 1;
    for (int mi = 0; mi < CC_NMETHODS; mi++) {
        if (!cfg->use[mi])
            continue;
        const cc_method *m = &cc_methods[mi];
        int ns = m->kind == CC_BASELINE ? 1 : cfg->nscales;
        for (int si = 0; si < ns; si++) {
            fprintf(f.f, "%s,%d,%g,", m->key, (int)m->n,
                    m->kind == CC_BASELINE ? 0.0 : cfg->scales[si]);
            csv_metrics(f.f, &gr->m[mi][si]);
            fprintf(f.f, ",%d\n", m->kind == CC_BASELINE || gr->best[mi] == si);
        }
    }
    if (tool_file_close(&f))
        return 1;

    if (tool_file_open(&f, CC_CMD, cfg->out, "classcond_results.csv",
                       "method,n,scale,seed,samples,failed,loss,loss_judge,accuracy,"
                       "accuracy_noisy,fd,"
                       "fd_pooled,seconds"))
        return 1;
    for (int mi = 0; mi < CC_NMETHODS; mi++) {
        if (!ev->evaluated[mi])
            continue;
        for (int k = 0; k < cfg->seeds; k++) {
            fprintf(f.f, "%s,%d,%g,%llu,", cc_methods[mi].key, (int)cc_methods[mi].n,
                    ev->scale[mi], (unsigned long long)(cfg->seed + 1 + (uint64_t)k));
            csv_metrics(f.f, &ev->m[mi][k]);
            fprintf(f.f, "\n");
        }
    }
    if (tool_file_close(&f))
        return 1;

    if (tool_file_open(&f, CC_CMD, cfg->out, "classcond_summary.csv",
                       "method,n,scale,seeds,failed,loss_mean,loss_sd,loss_judge_mean,"
                       "loss_judge_sd,accuracy_mean,"
                       "accuracy_sd,accuracy_noisy_mean,accuracy_noisy_sd,fd_mean,fd_sd,"
                       "fd_pooled_mean,fd_pooled_sd,seconds_mean"))
        return 1;
    const cc_metrics *r = &ev->real;
    fprintf(f.f, "real,0,0,1,0,%.6g,0,%.6g,0,%.6g,0,%.6g,0,%.6g,0,%.6g,0,0\n", r->loss,
            r->loss_judge, r->accuracy, r->accuracy_noisy, r->fd, r->fd_pooled);
    for (int mi = 0; mi < CC_NMETHODS; mi++) {
        if (!ev->evaluated[mi])
            continue;
        fprintf(f.f, "%s,%d,%g,%d,%lld", cc_methods[mi].key, (int)cc_methods[mi].n,
                ev->scale[mi], (int)cfg->seeds, (long long)failed_over_seeds(cfg, ev, mi));
        for (int fi = 0; fi < NFIELDS; fi++) {
            double mu, sd;
            over_seeds(cfg, ev, mi, (cc_field)fi, &mu, &sd);
            if (fi < F_SECONDS)
                fprintf(f.f, ",%.6g,%.6g", mu, sd);
            else
                fprintf(f.f, ",%.4f", mu);
        }
        fprintf(f.f, "\n");
    }
    return tool_file_close(&f);
}

int cc_write_png(const cc_config *cfg, const cc_problem *pb, const cc_eval *ev)
{
    if (cfg->png_cols <= 0)
        return 0;
    const int k = cfg->png_cols < cfg->per_label ? cfg->png_cols : cfg->per_label;
    int blocks = 1;
    for (int mi = 0; mi < CC_NMETHODS; mi++)
        blocks += ev->evaluated[mi];
    const int cols = blocks * k + (blocks - 1); /* a blank column between blocks */
    const float **tiles = calloc((size_t)IMG_CLASSES * (size_t)cols, sizeof *tiles);
    if (!tiles)
        return tool_out_of_memory(CC_CMD);
    for (int c = 0; c < IMG_CLASSES; c++) {
        /* block 0: the first k test images of label c */
        int taken = 0;
        for (int64_t i = 0; i < pb->test_real.n && taken < k; i++)
            if (pb->test_real.labels[i] == c)
                tiles[c * cols + taken++] = pb->test_real.x + i * IMG_DIM;
        int b = 1;
        for (int mi = 0; mi < CC_NMETHODS; mi++) {
            if (!ev->evaluated[mi])
                continue;
            for (int j = 0; j < k; j++)
                tiles[c * cols + b * (k + 1) + j] =
                    ev->first[mi] + ((size_t)c * (size_t)cfg->per_label + (size_t)j) * IMG_DIM;
            b++;
        }
    }
    int rc = img_write_png_grid(CC_CMD, cfg->out, "classcond_grid.png", tiles, IMG_CLASSES,
                                cols, 3);
    free(tiles);
    return rc;
}
