/*
 * trajectory_sampling.c - lgd trajectory's sampling of one batch: `rows` samples of one
 * task with one method at one scale, rerun row by row when the batch diverges, and each
 * sample's outcome (objective, collision, final distance, speed, NLL under the prior).
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tool_util.h"
#include "trajectory.h"

void traj_batch_free(batch *b)
{
    free(b->x);
    free(b->o);
    b->x = NULL;
    b->o = NULL;
}

/* The outcome of sample v that its positions give: top speed, plausibility, collision
 * (some frame inside an obstacle, positions as the library's losses compute them: the
 * hard loss's indicator), final distance. */
static void path_outcome(const task *t, const float *v, outcome *o)
{
    double ax = 0.0, ay = 0.0;
    o->max_speed = 0.0;
    for (int f = 0; f < FRAMES; f++) {
        traj_path_pos(v, f, 0, &ax);
        traj_path_pos(v, f, 1, &ay);
        o->max_speed = fmax(o->max_speed, hypot(v[2 * f], v[2 * f + 1]));
    }
    o->collided = t->nobs > 0 && traj_hard_collides(&t->hard, v);
    o->implausible = !(o->max_speed <= SPEED_LIMIT);
    o->final_dist = hypot(ax - t->target[0], ay - t->target[1]);
}

/* The objective (the task's loss / frames) and the NLL under the exact prior of sample v
 * (also for the learned prior: the distribution its network was trained on),
 * through the one-row tensors x1, l1 and d1: row by row, since a huge sample may overflow
 * them in float (then +infinity). */
static int library_outcome(traj_problem *pb, const task *t, const float *v, lgd_tensor *x1,
                           lgd_tensor *l1, lgd_tensor *d1, outcome *o)
{
    lgd_context *ctx = pb->ctx;
    float lv = 0.0f, dv = 0.0f;
    lgd_status st;
    if (CK(ctx, lgd_tensor_upload(x1, v, DIM)))
        return 1;
    lgd_context_clear_error(ctx);
    st = lgd_loss_eval(t->loss, x1, l1, NULL);
    if (st == LGD_ERR_NON_FINITE)
        lv = INFINITY;
    else if (CK(ctx, st) || CK(ctx, lgd_tensor_download(l1, &lv, 1)))
        return 1;
    o->objective = (double)lv / FRAMES;
    lgd_context_clear_error(ctx);
    st = lgd_model_log_density(pb->exact, x1, 0.0f, d1);
    if (st == LGD_ERR_NON_FINITE)
        dv = -INFINITY;
    else if (CK(ctx, st) || CK(ctx, lgd_tensor_download(d1, &dv, 1)))
        return 1;
    o->nll = -(double)dv / FRAMES;
    return 0;
}

/* The outcomes of b's rows; failed rows get infinite measures. */
static int evaluate(traj_problem *pb, const task *t, batch *b)
{
    lgd_context *ctx = pb->ctx;
    int rc = 1;
    lgd_tensor *x1 = NULL, *l1 = NULL, *d1 = NULL;
    int64_t one = 1;
    if (CK(ctx, lgd_tensor_create_2d(ctx, 1, DIM, &x1)) ||
        CK(ctx, lgd_tensor_create(ctx, 1, &one, &l1)) ||
        CK(ctx, lgd_tensor_create(ctx, 1, &one, &d1)))
        goto done;
    for (int64_t r = 0; r < b->rows; r++) {
        outcome *o = &b->o[r];
        const float *v = b->x + r * DIM;
        if (o->failed) {
            o->objective = o->final_dist = o->max_speed = o->nll = INFINITY;
            continue;
        }
        path_outcome(t, v, o);
        if (library_outcome(pb, t, v, x1, l1, d1, o))
            goto done;
    }
    rc = 0;
done:
    lgd_tensor_destroy(x1);
    lgd_tensor_destroy(l1);
    lgd_tensor_destroy(d1);
    return rc;
}

/* The guidance of method m at `scale` for task t (seed) and its DDIM sampler, into *gp
 * and *sp (NULL when not created; the caller destroys them). */
static int create_sampler(const traj_config *cfg, traj_problem *pb, const method_def *m,
                          double scale, const task *t, uint64_t seed, lgd_guidance **gp,
                          lgd_sampler **sp)
{
    lgd_context *ctx = pb->ctx;
    lgd_guidance *g = NULL;
    lgd_sampler *s = NULL;
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = m->kind;
    if (m->kind == LGD_GUIDANCE_MC || m->kind == LGD_GUIDANCE_MC_GRADIENT_FREE)
        go.n_samples = m->n;
    go.sigma_data = 1.0f; /* r(sigma) = sigma / sqrt(1 + sigma^2), the paper's App. B.3 */
    go.step_rule = cfg->rule;
    go.sigma_min_active = cfg->sigma_min; /* --sigma-min: the guidance window */
    go.scale = (float)scale;
    go.seed = seed;
    int bad = CK(ctx, lgd_guidance_create(ctx, pb->prior,
                                          m->kind == LGD_GUIDANCE_NONE ? NULL : t->loss, &go,
                                          &g));
    if (!bad) {
        lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
        so.kind = LGD_SAMPLER_DDIM;
        so.eta = 0.0f;
        so.steps = cfg->steps;
        so.schedule = LGD_SCHEDULE_KARRAS; /* defaults: 80 -> 0.002, rho 7 */
        bad = CK(ctx, lgd_sampler_create(g, &so, &s));
    }
    *gp = g;
    *sp = s;
    return bad;
}

/* After the batch diverged: finds the rows that diverge by running each alone (rows are
 * keyed by their index, so a row alone is the same sample as in the batch); those are
 * marked failed, with NaN samples. */
static int rerun_rows(lgd_context *ctx, lgd_sampler *s, uint64_t seed, uint64_t first_row,
                      batch *b)
{
    lgd_tensor *x1 = NULL;
    int rc = 1;
    if (CK(ctx, lgd_tensor_create_2d(ctx, 1, DIM, &x1)))
        goto done;
    for (int64_t r = 0; r < b->rows; r++) {
        lgd_context_clear_error(ctx);
        lgd_status st = lgd_sampler_run(s, x1, seed, first_row + (uint64_t)r, NULL, NULL);
        if (st == LGD_ERR_NON_FINITE) {
            b->o[r].failed = 1;
            for (int j = 0; j < DIM; j++)
                b->x[r * DIM + j] = NAN;
        } else if (CK(ctx, st) ||
                   CK(ctx, lgd_tensor_download(x1, b->x + r * DIM, DIM))) {
            goto done;
        }
    }
    rc = 0;
done:
    lgd_tensor_destroy(x1);
    return rc;
}

/* Runs sampler s over all rows of b into x, then downloads them; a divergence is said on
 * stderr and the rows are rerun one at a time. */
static int sample_rows(lgd_context *ctx, lgd_sampler *s, lgd_tensor *x, const method_def *m,
                       double scale, const task *t, uint64_t seed, uint64_t first_row,
                       progress_run *rp, batch *b)
{
    const lgd_progress_fn on_step = progress_on_step;
    const int64_t rows = b->rows;
    lgd_context_clear_error(ctx);
    lgd_status st = lgd_sampler_run(s, x, seed, first_row, on_step, rp);
    if (st == LGD_OK)
        return CK(ctx, lgd_context_synchronize(ctx)) ||
               CK(ctx, lgd_tensor_download(x, b->x, (size_t)rows * DIM));
    if (st != LGD_ERR_NON_FINITE)
        return CK(ctx, st);
    fprintf(stderr, "lgd " CMD ": note: %s at scale %g on %s (seed %" PRIu64 ", %" PRId64
                    " rows) failed: %s: %s; rerunning the rows one at a time\n",
            m->name, scale, t->def->label, seed, rows, lgd_status_string(st),
            lgd_context_last_error(ctx));
    return rerun_rows(ctx, s, seed, first_row, b);
}

int traj_run_batch(const traj_config *cfg, traj_problem *pb, const method_def *m, double scale,
                   task *t, int64_t rows, uint64_t seed, uint64_t first_row, progress *pr,
                   batch *b)
{
    lgd_context *ctx = pb->ctx;
    lgd_guidance *g = NULL;
    lgd_sampler *s = NULL;
    lgd_tensor *x = NULL;
    int rc = 1;
    memset(b, 0, sizeof *b);
    b->rows = rows;
    b->x = malloc((size_t)rows * DIM * sizeof *b->x);
    b->o = calloc((size_t)rows, sizeof *b->o);
    if (!b->x || !b->o) {
        tool_out_of_memory(CMD);
        goto done;
    }
    if (create_sampler(cfg, pb, m, scale, t, seed, &g, &s) ||
        CK(ctx, lgd_tensor_create_2d(ctx, rows, DIM, &x)))
        goto done;
    progress_run rp = { pr, m->cost * cfg->steps * (double)rows, "" };
    if (m->kind == LGD_GUIDANCE_NONE)
        snprintf(rp.detail, sizeof rp.detail, "%s, %s", m->name, t->def->label);
    else
        snprintf(rp.detail, sizeof rp.detail, "%s, scale %g, %s", m->name, scale, t->def->label);
    double t0 = tool_now_ms();
    if (sample_rows(ctx, s, x, m, scale, t, seed, first_row, &rp, b))
        goto done;
    b->seconds = (tool_now_ms() - t0) / 1e3;
    progress_advance(pr, rp.units);
    if (evaluate(pb, t, b))
        goto done;
    rc = 0;
done:
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    return rc;
}
