/*
 * trajectory_metrics.c - lgd trajectory's metrics and its two stages: the metrics of a
 * set of samples (per task, per family), 1. tuning every guided method on the grid of
 * scales (seed + 1) and the selection of a scale per task family, 2. the evaluation at
 * the selected scales (seed).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample_stats.h"
#include "trajectory.h"

/* The measures of the finite samples among outcomes os[i][0..counts[i]-1], i < nb. */
typedef struct finite_samples {
    int64_t k; /* how many */
    double *obj, *fd, *nll, *spd;
} finite_samples;

/* Counts the failed, implausible, colliding and successful samples into mt and copies the
 * finite ones' measures into fs; returns the number of successes. */
static int64_t gather_outcomes(const outcome *const *os, const int64_t *counts, int nb,
                               metrics *mt, finite_samples *fs, int64_t *collisions)
{
    int64_t succ = 0;
    fs->k = 0;
    *collisions = 0;
    for (int i = 0; i < nb; i++)
        for (int64_t r = 0; r < counts[i]; r++) {
            const outcome *o = &os[i][r];
            if (o->failed) {
                mt->failed++;
                continue;
            }
            mt->implausible += o->implausible;
            *collisions += o->collided;
            succ += !o->collided && !o->implausible && o->final_dist < REACH_RADIUS;
            fs->obj[fs->k] = o->objective;
            fs->fd[fs->k] = o->final_dist;
            fs->nll[fs->k] = o->nll;
            fs->spd[fs->k] = o->max_speed;
            fs->k++;
        }
    return succ;
}

/* Means, standard deviations, medians and rates over the finite samples (NaN when there
 * are none); the arrays of fs are sorted. */
static void summarize_finite(finite_samples *fs, int64_t collisions, metrics *mt)
{
    const double half = 0.5;
    int64_t k = fs->k;
    if (k > 0) {
        stats_mean_sd(fs->obj, k, &mt->obj_mean, &mt->obj_sd);
        stats_mean_sd(fs->fd, k, &mt->fd_mean, &mt->fd_sd);
        stats_quantiles(fs->obj, k, &half, 1, &mt->obj_median);
        stats_quantiles(fs->fd, k, &half, 1, &mt->fd_median);
        stats_quantiles(fs->nll, k, &half, 1, &mt->nll_median);
        const double qs[2] = { 0.5, 1.0 };
        double qv[2];
        stats_quantiles(fs->spd, k, qs, 2, qv);
        mt->speed_median = qv[0];
        mt->speed_max = qv[1];
        mt->collision = (double)collisions / (double)k;
    } else {
        mt->obj_mean = mt->obj_sd = mt->obj_median = NAN;
        mt->fd_mean = mt->fd_sd = mt->fd_median = NAN;
        mt->nll_median = mt->speed_median = mt->speed_max = NAN;
        mt->collision = NAN;
    }
}

/* Metrics of the outcomes os[i][0..counts[i]-1], i < nb (several batches together). */
static int compute_metrics(const outcome *const *os, const int64_t *counts, int nb, metrics *mt)
{
    int64_t total = 0;
    for (int i = 0; i < nb; i++)
        total += counts[i];
    memset(mt, 0, sizeof *mt);
    mt->n = total;
    size_t size = (size_t)(total ? total : 1) * sizeof(double);
    finite_samples fs = { 0, malloc(size), malloc(size), malloc(size), malloc(size) };
    int rc = 1;
    if (!fs.obj || !fs.fd || !fs.nll || !fs.spd) {
        tool_out_of_memory(CMD);
        goto done;
    }
    int64_t collisions;
    int64_t succ = gather_outcomes(os, counts, nb, mt, &fs, &collisions);
    summarize_finite(&fs, collisions, mt);
    mt->success = total ? (double)succ / (double)total : NAN;
    rc = 0;
done:
    free(fs.obj);
    free(fs.fd);
    free(fs.nll);
    free(fs.spd);
    return rc;
}

int traj_nscales_of(const traj_config *cfg, const method_def *m)
{
    return m->kind == LGD_GUIDANCE_NONE ? 1 : cfg->nscales;
}

double traj_scale_of(const traj_config *cfg, const method_def *m, int si)
{
    return m->kind == LGD_GUIDANCE_NONE ? 0.0 : cfg->scales[si];
}

/* Metrics of task k's first `rows` outcomes, and of every family's tasks together (the
 * tasks and families that take part). */
static int task_and_family_metrics(const traj_config *cfg, const batch *bs, int64_t rows,
                                   metrics *task_m, metrics *fam_m)
{
    for (int k = 0; k < NTASKS; k++) {
        if (!traj_task_on(cfg, k))
            continue;
        const outcome *os = bs[k].o;
        if (compute_metrics(&os, &rows, 1, &task_m[k]))
            return 1;
        task_m[k].seconds = bs[k].seconds;
    }
    for (int fam = 0; fam < NFAM; fam++) {
        if (!traj_family_on(cfg, fam))
            continue;
        const outcome *os[NTASKS];
        int64_t cnt[NTASKS];
        int nb = 0;
        double secs = 0.0;
        for (int k = 0; k < NTASKS; k++)
            if (task_defs[k].fam == (family)fam) {
                os[nb] = bs[k].o;
                cnt[nb++] = rows;
                secs += bs[k].seconds;
            }
        if (compute_metrics(os, cnt, nb, &fam_m[fam]))
            return 1;
        fam_m[fam].seconds = secs;
    }
    return 0;
}

/* Whether scale a ranks before scale b when no scale is eligible: fewer failed, then
 * fewer implausible samples, then a lower mean Objective (a number before NaN). */
static int ranks_before(const metrics *a, const metrics *b)
{
    if (a->failed != b->failed)
        return a->failed < b->failed;
    if (a->implausible != b->implausible)
        return a->implausible < b->implausible;
    return a->obj_mean < b->obj_mean || (isnan(b->obj_mean) && !isnan(a->obj_mean));
}

/*
 * The selection rule, per method and family: among the scales whose tuning samples are all
 * finite (and, with --select plausible, all plausible: no frame faster than SPEED_LIMIT),
 * the one with the lowest mean Objective; ties keep the smaller scale. When no scale is
 * eligible, the one with the fewest failed (then implausible) samples, then the lowest
 * Objective.
 */
static void select_scales(const traj_config *cfg, grid *gr, int mi)
{
    const int ns = traj_nscales_of(cfg, &method_defs[mi]);
    for (int fam = 0; fam < NFAM; fam++) {
        if (!traj_family_on(cfg, fam))
            continue;
        int best = -1;
        for (int si = 0; si < ns; si++) {
            const metrics *mt = &gr->fam[mi][si][fam];
            gr->eligible[mi][si][fam] =
                mt->failed == 0 && (!cfg->select_plausible || mt->implausible == 0);
            if (gr->eligible[mi][si][fam] &&
                (best < 0 || mt->obj_mean < gr->fam[mi][best][fam].obj_mean))
                best = si;
        }
        if (best < 0) {
            best = 0;
            for (int si = 1; si < ns; si++)
                if (ranks_before(&gr->fam[mi][si][fam], &gr->fam[mi][best][fam]))
                    best = si;
        }
        gr->best[mi][fam] = best;
    }
}

/* Tuning runs of method mi at scale si on every task; their metrics into the grid. */
static int tune_scale(const traj_config *cfg, traj_problem *pb, grid *gr, int mi, int si,
                      progress *pr)
{
    const method_def *m = &method_defs[mi];
    const uint64_t seed = cfg->seed + 1;
    batch bs[NTASKS];
    memset(bs, 0, sizeof bs);
    int bad = 0;
    for (int k = 0; k < NTASKS && !bad; k++) {
        if (!traj_task_on(cfg, k))
            continue;
        bad = traj_run_batch(cfg, pb, m, traj_scale_of(cfg, m, si), &pb->tasks[k], cfg->tune,
                             seed, (uint64_t)k * TASK_ROWS, pr, &bs[k]);
        if (!bad)
            gr->seconds[mi] += bs[k].seconds;
    }
    if (!bad)
        bad = task_and_family_metrics(cfg, bs, cfg->tune, gr->m[mi][si], gr->fam[mi][si]);
    for (int k = 0; k < NTASKS; k++)
        traj_batch_free(&bs[k]);
    return bad;
}

int traj_run_tuning(const traj_config *cfg, traj_problem *pb, grid *gr, progress *pr)
{
    for (int mi = 0; mi < NMETHODS; mi++) {
        if (!traj_method_on(cfg, mi))
            continue;
        for (int si = 0; si < traj_nscales_of(cfg, &method_defs[mi]); si++)
            if (tune_scale(cfg, pb, gr, mi, si, pr))
                return 1;
        select_scales(cfg, gr, mi);
    }
    return 0;
}

/* The evaluation runs of every method at its selected scales, ev->rows per task. */
static int evaluation_runs(const traj_config *cfg, traj_problem *pb, const grid *gr,
                           evaluation *ev, progress *pr)
{
    for (int mi = 0; mi < NMETHODS; mi++) {
        if (!traj_method_on(cfg, mi))
            continue;
        const method_def *m = &method_defs[mi];
        for (int fam = 0; fam < NFAM; fam++)
            ev->scale[mi][fam] = traj_scale_of(cfg, m, gr->best[mi][fam]);
        for (int k = 0; k < NTASKS; k++) {
            if (!traj_task_on(cfg, k))
                continue;
            if (traj_run_batch(cfg, pb, m, ev->scale[mi][task_defs[k].fam], &pb->tasks[k],
                               ev->rows, cfg->seed, (uint64_t)k * TASK_ROWS, pr,
                               &ev->b[mi][k]))
                return 1;
            ev->seconds[mi] += ev->b[mi][k].seconds;
        }
    }
    return 0;
}

int traj_run_evaluation(const traj_config *cfg, traj_problem *pb, const grid *gr,
                        evaluation *ev, progress *pr)
{
    ev->rows = cfg->large > cfg->seeds ? cfg->large : cfg->seeds;
    if (evaluation_runs(cfg, pb, gr, ev, pr))
        return 1;
    for (int p = 0; p < 2; p++) {
        if (p == 1 && cfg->large == 0)
            break;
        int64_t rows = p == 0 ? cfg->seeds : cfg->large;
        for (int mi = 0; mi < NMETHODS; mi++)
            if (traj_method_on(cfg, mi) &&
                task_and_family_metrics(cfg, ev->b[mi], rows, ev->task_m[p][mi],
                                        ev->fam_m[p][mi]))
                return 1;
    }
    return 0;
}

void traj_evaluation_free(evaluation *ev)
{
    for (int mi = 0; mi < NMETHODS; mi++)
        for (int k = 0; k < NTASKS; k++)
            traj_batch_free(&ev->b[mi][k]);
}
