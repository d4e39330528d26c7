/*
 * superres_output.c - lgd superres's output: the tuning table, the results beside the
 * paper's Table 1, the CSV files and the PNG grid.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image_metrics.h"
#include "superres.h"

/* Mean and spread over the evaluation seeds of one field of sr_metrics. */
typedef enum { F_PSNR, F_SSIM, F_ACC, F_FD, F_RMSE, F_SECONDS } sr_field;

static double field(const sr_metrics *m, sr_field f)
{
    switch (f) {
    case F_PSNR:
        return m->psnr;
    case F_SSIM:
        return m->ssim;
    case F_ACC:
        return m->accuracy;
    case F_FD:
        return m->fd;
    case F_RMSE:
        return m->meas_rmse;
    case F_SECONDS:
        return m->seconds;
    }
    return NAN;
}

static void over_seeds(const sr_config *cfg, const sr_eval *ev, int mi, sr_field f,
                       double *mean, double *sd)
{
    double v[SR_MAX_SEEDS];
    for (int k = 0; k < cfg->seeds; k++)
        v[k] = field(&ev->m[mi][k], f);
    img_mean_sd(v, cfg->seeds, mean, sd);
}

static int64_t failed_over_seeds(const sr_config *cfg, const sr_eval *ev, int mi)
{
    int64_t n = 0;
    for (int k = 0; k < cfg->seeds; k++)
        n += ev->m[mi][k].failed;
    return n;
}

void sr_print_grid(const sr_config *cfg, const sr_grid *gr)
{
    printf("Tuning: mean PSNR [dB] on the tune images per scale (* selected; (k) k failed "
           "samples)\n");
    printf("%-22s", "method");
    for (int si = 0; si < cfg->nscales; si++)
        printf(" %12g", cfg->scales[si]);
    printf("\n");
    for (int mi = 0; mi < SR_NMETHODS; mi++) {
        if (!cfg->use[mi])
            continue;
        const sr_method *m = &sr_methods[mi];
        printf("%-22s", m->name);
        if (m->kind == LGD_GUIDANCE_NONE) {
            printf(" %12.2f  (no scale)\n", gr->m[mi][0].psnr);
            continue;
        }
        for (int si = 0; si < cfg->nscales; si++) {
            const sr_metrics *t = &gr->m[mi][si];
            char cell[32];
            if (t->failed)
                snprintf(cell, sizeof cell, "%.2f(%lld)", t->psnr, (long long)t->failed);
            else
                snprintf(cell, sizeof cell, "%.2f%s", t->psnr, gr->best[mi] == si ? "*" : "");
            printf(" %12s", cell);
        }
        printf("\n");
    }
}

void sr_print_table(const sr_config *cfg, const sr_problem *pb, const sr_eval *ev)
{
    printf("\nTable 1 beside the paper's. Ours: 8x8 digits, %s x%d, %lld test images x %d "
           "seeds,\nmean +- sd over the seeds. Theirs: ImageNet 256x256 from 64x64 (bicubic), "
           "the 50k validation images,\nFID and a ResNet-50's accuracy (not comparable in "
           "value: another data set, model and judge).\n\n",
           cfg->op_choice == 0 ? "average pooling" : "bicubic", (int)cfg->factor,
           (long long)pb->test.n, (int)cfg->seeds);
    printf("%-22s %6s %15s %15s %15s %15s %15s %7s | %6s %7s\n", "method", "scale", "PSNR [dB]",
           "SSIM", "accuracy [%]", "FD (judge)", "RMS(Hx - y)", "s/seed", "FID", "acc");
    const sr_metrics *u = &ev->upsampled;
    printf("%-22s %6s %15.2f %15.3f %15.1f %15.2f %15.4f %7s | %6s %7s\n",
           "y upsampled (nearest)", "-", u->psnr, u->ssim, 100.0 * u->accuracy, u->fd,
           u->meas_rmse, "-", "-", "-");
    for (int mi = 0; mi < SR_NMETHODS; mi++) {
        if (!ev->evaluated[mi])
            continue;
        const sr_method *m = &sr_methods[mi];
        double mu[6], sd[6];
        for (int f = 0; f < 6; f++)
            over_seeds(cfg, ev, mi, (sr_field)f, &mu[f], &sd[f]);
        char scale[16], c[5][32];
        if (m->kind == LGD_GUIDANCE_NONE)
            snprintf(scale, sizeof scale, "-");
        else
            snprintf(scale, sizeof scale, "%g", ev->scale[mi]);
        snprintf(c[0], sizeof c[0], "%.2f +- %.2f", mu[0], sd[0]);
        snprintf(c[1], sizeof c[1], "%.3f +- %.3f", mu[1], sd[1]);
        snprintf(c[2], sizeof c[2], "%.1f +- %.1f", 100.0 * mu[2], 100.0 * sd[2]);
        snprintf(c[3], sizeof c[3], "%.2f +- %.2f", mu[3], sd[3]);
        snprintf(c[4], sizeof c[4], "%.4f +- %.4f", mu[4], sd[4]);
        printf("%-22s %6s %15s %15s %15s %15s %15s %7.1f | %6s %7s\n", m->name, scale, c[0],
               c[1], c[2], c[3], c[4], mu[5], m->paper_fid ? m->paper_fid : "-",
               m->paper_acc ? m->paper_acc : "-");
        int64_t nf = failed_over_seeds(cfg, ev, mi);
        if (nf > 0)
            printf("%-22s   (%lld of %lld samples failed: non-finite; counted wrong, left out "
                   "of the other metrics)\n",
                   "", (long long)nf, (long long)(pb->test.n * cfg->seeds));
    }
    printf("%-22s %6s %15s %15s %15s %15s %15s %7s | %6s %7s\n", "DDRM (not run)", "", "", "",
           "", "", "", "", "21.3", "63.2%");
    printf("%-22s %6s %15s %15s %15s %15s %15s %7s | %6s %7s\n", "PiGDM (not run)", "", "", "",
           "", "", "", "", "3.6", "72.1%");
    printf("originals: the judge's accuracy %.1f%%\n", 100.0 * pb->orig_accuracy);
}

static void csv_metrics(FILE *f, const sr_metrics *m)
{
    fprintf(f, "%lld,%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%.4f", (long long)m->n, (long long)m->failed,
            m->psnr, m->ssim, m->accuracy, m->fd, m->meas_rmse, m->seconds);
}

int sr_write_csv(const sr_config *cfg, const sr_grid *gr, const sr_eval *ev)
{
    tool_file f;
    if (tool_file_open(&f, SR_CMD, cfg->out, "superres_tuning.csv",
                       "method,n,scale,images,failed,psnr,ssim,accuracy,fd,meas_rmse,seconds,"
                       "selected"))
        return 1;
    for (int mi = 0; mi < SR_NMETHODS; mi++) {
        if (!cfg->use[mi])
            continue;
        const sr_method *m = &sr_methods[mi];
        int ns = m->kind == LGD_GUIDANCE_NONE ? 1 : cfg->nscales;
        for (int si = 0; si < ns; si++) {
            fprintf(f.f, "%s,%d,%g,", m->key, (int)m->n,
                    m->kind == LGD_GUIDANCE_NONE ? 0.0 : cfg->scales[si]);
            csv_metrics(f.f, &gr->m[mi][si]);
            fprintf(f.f, ",%d\n", m->kind == LGD_GUIDANCE_NONE || gr->best[mi] == si);
        }
    }
    if (tool_file_close(&f))
        return 1;

    if (tool_file_open(&f, SR_CMD, cfg->out, "superres_results.csv",
                       "method,n,scale,seed,images,failed,psnr,ssim,accuracy,fd,meas_rmse,"
                       "seconds"))
        return 1;
    for (int mi = 0; mi < SR_NMETHODS; mi++) {
        if (!ev->evaluated[mi])
            continue;
        for (int k = 0; k < cfg->seeds; k++) {
            fprintf(f.f, "%s,%d,%g,%llu,", sr_methods[mi].key, (int)sr_methods[mi].n,
                    ev->scale[mi], (unsigned long long)(cfg->seed + 1 + (uint64_t)k));
            csv_metrics(f.f, &ev->m[mi][k]);
            fprintf(f.f, "\n");
        }
    }
    if (tool_file_close(&f))
        return 1;

    if (tool_file_open(&f, SR_CMD, cfg->out, "superres_summary.csv",
                       "method,n,scale,seeds,failed,psnr_mean,psnr_sd,ssim_mean,ssim_sd,"
                       "accuracy_mean,accuracy_sd,fd_mean,fd_sd,meas_rmse_mean,meas_rmse_sd,"
                       "seconds_mean"))
        return 1;
    const sr_metrics *u = &ev->upsampled;
    fprintf(f.f, "upsampled,0,0,1,0,%.6g,0,%.6g,0,%.6g,0,%.6g,0,%.6g,0,0\n", u->psnr, u->ssim,
            u->accuracy, u->fd, u->meas_rmse);
    for (int mi = 0; mi < SR_NMETHODS; mi++) {
        if (!ev->evaluated[mi])
            continue;
        fprintf(f.f, "%s,%d,%g,%d,%lld", sr_methods[mi].key, (int)sr_methods[mi].n,
                ev->scale[mi], (int)cfg->seeds, (long long)failed_over_seeds(cfg, ev, mi));
        for (int fi = 0; fi < 6; fi++) {
            double mu, sd;
            over_seeds(cfg, ev, mi, (sr_field)fi, &mu, &sd);
            if (fi < 5)
                fprintf(f.f, ",%.6g,%.6g", mu, sd);
            else
                fprintf(f.f, ",%.4f", mu);
        }
        fprintf(f.f, "\n");
    }
    return tool_file_close(&f);
}

int sr_write_png(const sr_config *cfg, const sr_problem *pb, const sr_eval *ev)
{
    if (cfg->png_rows <= 0)
        return 0;
    int rows = (int)(pb->test.n < cfg->png_rows ? pb->test.n : cfg->png_rows);
    int cols = 2;
    for (int mi = 0; mi < SR_NMETHODS; mi++)
        cols += ev->evaluated[mi];
    const float **tiles = malloc((size_t)rows * (size_t)cols * sizeof *tiles);
    if (!tiles)
        return tool_out_of_memory(SR_CMD);
    for (int r = 0; r < rows; r++) {
        int c = 0;
        tiles[r * cols + c++] = pb->up_test + (size_t)r * IMG_DIM;
        tiles[r * cols + c++] = pb->test.x + (size_t)r * IMG_DIM;
        for (int mi = 0; mi < SR_NMETHODS; mi++)
            if (ev->evaluated[mi])
                tiles[r * cols + c++] = ev->first[mi] + (size_t)r * IMG_DIM;
    }
    int rc = img_write_png_grid(SR_CMD, cfg->out, "superres_grid.png", tiles, rows, cols, 4);
    free(tiles);
    return rc;
}
