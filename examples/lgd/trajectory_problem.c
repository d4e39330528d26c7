/*
 * trajectory_problem.c - lgd trajectory's fixed data and problem: the tasks (three
 * straight target paths, two obstacle layouts), the methods, the library's trajectory
 * prior and each task's loss (lgd_loss_create_path, lgd_loss_create_obstacle_avoidance).
 */
#include <inttypes.h>
#include <math.h>

#include "trajectory.h"

const char *const family_key[NFAM] = { "path", "obstacle" };

const task_def task_defs[NTASKS] = {
    { "path_20", "path 20 deg", FAM_PATH, 20.0, 0.0, 0, { 0 }, { 0 }, { 0 } },
    { "path_110", "path 110 deg", FAM_PATH, 110.0, 0.0, 0, { 0 }, { 0 }, { 0 } },
    { "path_235", "path 235 deg", FAM_PATH, 235.0, 0.0, 0, { 0 }, { 0 }, { 0 } },
    /* A: the paper's Fig. 10: one obstacle halfway to the goal, goal (6, 0) */
    { "obstacle_A", "layout A", FAM_OBSTACLE, 0.0, 6.0, 1, { 3.0 }, { 0.0 }, { 1.0 } },
    /* B: goal at 135 degrees, 5 away; an obstacle halfway and a second one beside it on the
     * left that closes the gap, so only the right-hand detour is short */
    { "obstacle_B", "layout B", FAM_OBSTACLE, 135.0, 5.0, 2, { 2.5, 2.5 }, { 0.0, 1.8 },
      { 1.0, 1.0 } },
};

const method_def method_defs[NMETHODS] = {
    { "baseline", "Baseline", "#7f7f7f", LGD_GUIDANCE_NONE, 0, 1.0 },
    { "dps", "DPS", "#d62728", LGD_GUIDANCE_DPS, 1, 2.0 },
    { "mc_n10", "LGD-MC n=10", "#1f77b4", LGD_GUIDANCE_MC, 10, 2.5 },
    { "mc_n100", "LGD-MC n=100", "#2ca02c", LGD_GUIDANCE_MC, 100, 8.0 },
};

/* The loss of path task t: the straight line at the task's angle, as the prior walks it. */
static int create_path_task(lgd_context *ctx, lgd_trajectory_layout lo, task *t, double ux,
                            double uy)
{
    /* the prior's typical walk: 0.1 per frame, p_t = 0.1 (t + 1) u */
    for (int f = 0; f < FRAMES; f++) {
        t->path[2 * f] = (float)(VELOCITY_SCALE * (f + 1) * ux);
        t->path[2 * f + 1] = (float)(VELOCITY_SCALE * (f + 1) * uy);
    }
    t->target[0] = t->path[2 * (FRAMES - 1)];
    t->target[1] = t->path[2 * (FRAMES - 1) + 1];
    t->nobs = 0;
    return CK(ctx, lgd_loss_create_path(ctx, DIM, &lo, t->path, 1, &t->loss));
}

/* The loss of obstacle task t: its goal and obstacles placed along and across the
 * direction (ux, uy). */
static int create_obstacle_task(lgd_context *ctx, lgd_trajectory_layout lo, task *t,
                                double ux, double uy)
{
    const task_def *d = t->def;
    float goal[2] = { (float)(d->goal_dist * ux), (float)(d->goal_dist * uy) };
    t->target[0] = goal[0];
    t->target[1] = goal[1];
    t->nobs = d->nobs;
    for (int o = 0; o < d->nobs; o++) {
        /* along u, across the left normal (-uy, ux) */
        t->obs[3 * o] = (float)(d->obs_along[o] * ux - d->obs_across[o] * uy);
        t->obs[3 * o + 1] = (float)(d->obs_along[o] * uy + d->obs_across[o] * ux);
        t->obs[3 * o + 2] = (float)d->obs_r[o];
    }
    /* NULL options: the paper's Eq. 20 constants (sharpness 50, weight 100, goal 1) */
    return CK(ctx, lgd_loss_create_obstacle_avoidance(ctx, DIM, &lo, goal, 1, t->obs,
                                                      t->nobs, NULL, &t->loss));
}

int traj_problem_create(traj_problem *pb, const traj_config *cfg)
{
    if (tool_context_create(CMD, LGD_BACKEND_CPU, cfg->threads, &pb->ctx))
        return 1;
    lgd_context *ctx = pb->ctx;
    lgd_trajectory_prior_options po = LGD_TRAJECTORY_PRIOR_OPTIONS_INIT; /* 64 frames */
    if (CK(ctx, lgd_model_create_trajectory_prior(ctx, &po, &pb->prior)))
        return 1;
    if (lgd_model_dim(pb->prior) != DIM) {
        fprintf(stderr, "lgd " CMD ": the trajectory prior has dim %" PRId64 ", expected %d\n",
                lgd_model_dim(pb->prior), DIM);
        return 1;
    }
    lgd_trajectory_layout lo = LGD_TRAJECTORY_LAYOUT_INIT;
    lo.frames = FRAMES;
    lo.frame_stride = 2;
    lo.root_offset = 0;
    lo.velocities = 1;
    lo.velocity_scale = (float)VELOCITY_SCALE;
    for (int k = 0; k < NTASKS; k++) {
        task *t = &pb->tasks[k];
        t->def = &task_defs[k];
        double a = t->def->angle_deg * PI / 180.0, ux = cos(a), uy = sin(a);
        if (t->def->fam == FAM_PATH ? create_path_task(ctx, lo, t, ux, uy)
                                    : create_obstacle_task(ctx, lo, t, ux, uy))
            return 1;
    }
    return 0;
}

void traj_problem_destroy(traj_problem *pb)
{
    for (int k = 0; k < NTASKS; k++)
        lgd_loss_destroy(pb->tasks[k].loss);
    lgd_model_destroy(pb->prior);
    lgd_context_destroy(pb->ctx);
}

double traj_path_pos(const float *v, int f, int axis, double *acc)
{
    *acc += VELOCITY_SCALE * (double)v[2 * f + axis];
    return *acc;
}
