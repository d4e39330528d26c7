/*
 * trajectory_csv.c - lgd trajectory's CSV files: grid.csv (tuning: every method, scale
 * and task), results.csv (evaluation at the selected scales, per protocol),
 * trajectories.csv (the positions of every finite evaluation sample) and, with
 * --compare, compare.csv (both priors' family results).
 */
#include <inttypes.h>
#include <stdio.h>

#include "trajectory.h"

/* The metric columns shared by grid.csv and results.csv. */
#define METRIC_HEADER                                                                         \
    "samples,objective,objective_sd,objective_median,collision,final_distance,"              \
    "final_distance_sd,success,nll_median,speed_median,speed_max,failed,implausible,seconds"

static void write_metrics(FILE *f, const metrics *mt)
{
    fprintf(f, "%" PRId64 ",%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%" PRId64
               ",%" PRId64 ",%.6f",
            mt->n, mt->obj_mean, mt->obj_sd, mt->obj_median, mt->collision, mt->fd_mean,
            mt->fd_sd, mt->success, mt->nll_median, mt->speed_median, mt->speed_max, mt->failed,
            mt->implausible, mt->seconds);
}

int traj_write_grid_csv(const traj_config *cfg, const grid *gr)
{
    tool_file out;
    if (tool_file_open(&out, CMD, cfg->out, "grid.csv",
                       "method,family,task,scale,selected," METRIC_HEADER))
        return 1;
    FILE *f = out.f;
    for (int mi = 0; mi < NMETHODS; mi++) {
        if (!traj_method_on(cfg, mi))
            continue;
        const method_def *m = &method_defs[mi];
        for (int si = 0; si < traj_nscales_of(cfg, m); si++) {
            for (int k = 0; k < NTASKS; k++) {
                if (!traj_task_on(cfg, k))
                    continue;
                int fam = task_defs[k].fam;
                fprintf(f, "%s,%s,%s,%.9g,%d,", m->key, family_key[fam], task_defs[k].key,
                        traj_scale_of(cfg, m, si), gr->best[mi][fam] == si);
                write_metrics(f, &gr->m[mi][si][k]);
                fputc('\n', f);
            }
            for (int fam = 0; fam < NFAM; fam++) {
                if (!traj_family_on(cfg, fam))
                    continue;
                fprintf(f, "%s,%s,all,%.9g,%d,", m->key, family_key[fam],
                        traj_scale_of(cfg, m, si), gr->best[mi][fam] == si);
                write_metrics(f, &gr->fam[mi][si][fam]);
                fputc('\n', f);
            }
        }
    }
    return tool_file_close(&out);
}

int traj_write_results_csv(const traj_config *cfg, const evaluation *ev)
{
    tool_file out;
    if (tool_file_open(&out, CMD, cfg->out, "results.csv",
                       "protocol,method,family,task,scale," METRIC_HEADER))
        return 1;
    FILE *f = out.f;
    for (int p = 0; p < 2; p++) {
        if (p == 1 && cfg->large == 0)
            break;
        const char *proto = p == 0 ? "paper" : "large";
        for (int mi = 0; mi < NMETHODS; mi++) {
            if (!traj_method_on(cfg, mi))
                continue;
            const method_def *m = &method_defs[mi];
            for (int k = 0; k < NTASKS; k++) {
                if (!traj_task_on(cfg, k))
                    continue;
                int fam = task_defs[k].fam;
                fprintf(f, "%s,%s,%s,%s,%.9g,", proto, m->key, family_key[fam],
                        task_defs[k].key, ev->scale[mi][fam]);
                write_metrics(f, &ev->task_m[p][mi][k]);
                fputc('\n', f);
            }
            for (int fam = 0; fam < NFAM; fam++) {
                if (!traj_family_on(cfg, fam))
                    continue;
                fprintf(f, "%s,%s,%s,all,%.9g,", proto, m->key, family_key[fam],
                        ev->scale[mi][fam]);
                write_metrics(f, &ev->fam_m[p][mi][fam]);
                fputc('\n', f);
            }
        }
    }
    return tool_file_close(&out);
}

/* The positions of sample r (velocities v) of method mi on task k, one row per frame. */
static void write_positions(FILE *f, int mi, int k, int64_t r, const float *v)
{
    double ax = 0.0, ay = 0.0;
    for (int fr = 0; fr < FRAMES; fr++) {
        double px = traj_path_pos(v, fr, 0, &ax), py = traj_path_pos(v, fr, 1, &ay);
        fprintf(f, "%s,%s,%" PRId64 ",%d,%.6g,%.6g\n", method_defs[mi].key, task_defs[k].key,
                r, fr, px, py);
    }
}

int traj_write_trajectories_csv(const traj_config *cfg, const evaluation *ev)
{
    tool_file out;
    if (tool_file_open(&out, CMD, cfg->out, "trajectories.csv", "method,task,sample,frame,x,y"))
        return 1;
    for (int mi = 0; mi < NMETHODS; mi++)
        for (int k = 0; k < NTASKS; k++) {
            if (!traj_method_on(cfg, mi) || !traj_task_on(cfg, k))
                continue;
            const batch *b = &ev->b[mi][k];
            for (int64_t r = 0; r < b->rows; r++)
                if (!b->o[r].failed)
                    write_positions(out.f, mi, k, r, b->x + r * DIM);
        }
    return tool_file_close(&out);
}

int traj_write_compare_csv(const traj_config *cfg, const evaluation *const ev[2])
{
    tool_file out;
    if (tool_file_open(&out, CMD, cfg->out, "compare.csv",
                       "protocol,family,method,prior,scale," METRIC_HEADER))
        return 1;
    FILE *f = out.f;
    for (int p = 0; p < 2; p++) {
        if (p == 1 && cfg->large == 0)
            break;
        for (int fam = 0; fam < NFAM; fam++) {
            if (!traj_family_on(cfg, fam))
                continue;
            for (int mi = 0; mi < NMETHODS; mi++) {
                if (!traj_method_on(cfg, mi))
                    continue;
                for (int i = 0; i < 2; i++) {
                    fprintf(f, "%s,%s,%s,%s,%.9g,", p == 0 ? "paper" : "large",
                            family_key[fam], method_defs[mi].key, prior_names[i],
                            ev[i]->scale[mi][fam]);
                    write_metrics(f, &ev[i]->fam_m[p][mi][fam]);
                    fputc('\n', f);
                }
            }
        }
    }
    return tool_file_close(&out);
}
