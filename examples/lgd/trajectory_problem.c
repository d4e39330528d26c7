/*
 * trajectory_problem.c - lgd trajectory's fixed data and problem: the tasks (three
 * straight target paths, two obstacle layouts, and with --gradient-free the same layouts
 * with the hard loss), the methods, the prior (the library's exact trajectory prior, or
 * a learned network: --prior learned) and each task's loss (lgd_loss_create_path,
 * lgd_loss_create_obstacle_avoidance, the hard loss of trajectory_hard.h).
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trajectory.h"

#ifndef LGD_TOOL_SOURCE_ROOT
#define LGD_TOOL_SOURCE_ROOT "" /* set by meson: the source tree the tool was built from */
#endif

const char *const family_key[NFAM] = { "path", "obstacle", "hard" };
const char *const prior_names[] = { "exact", "learned", NULL };

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
    /* --gradient-free: layouts A and B with the hard 0/1 collision indicator */
    { "obstacle_A_hard", "layout A, hard", FAM_HARD, 0.0, 6.0, 1, { 3.0 }, { 0.0 }, { 1.0 } },
    { "obstacle_B_hard", "layout B, hard", FAM_HARD, 135.0, 5.0, 2, { 2.5, 2.5 }, { 0.0, 1.8 },
      { 1.0, 1.0 } },
};

/* cost: seconds per sample and step relative to the Baseline's, measured with the exact
 * prior (for the progress indicator only) */
const method_def method_defs[NMETHODS] = {
    { "baseline", "Baseline", "#7f7f7f", LGD_GUIDANCE_NONE, 0, 1.0, 0 },
    { "dps", "DPS", "#d62728", LGD_GUIDANCE_DPS, 1, 2.0, 0 },
    { "mc_n10", "LGD-MC n=10", "#1f77b4", LGD_GUIDANCE_MC, 10, 2.5, 0 },
    { "mc_n100", "LGD-MC n=100", "#2ca02c", LGD_GUIDANCE_MC, 100, 8.0, 0 },
    { "gf_n100", "LGD-MC-GF n=100", "#9467bd", LGD_GUIDANCE_MC_GRADIENT_FREE, 100, 6.0, 1 },
    { "gf_n1000", "LGD-MC-GF n=1000", "#e377c2", LGD_GUIDANCE_MC_GRADIENT_FREE, 1000, 27.0,
      1 },
};

int traj_method_on(const traj_config *cfg, int mi)
{
    return !method_defs[mi].extra || cfg->gradient_free;
}

int traj_family_on(const traj_config *cfg, int fam)
{
    return fam != FAM_HARD || cfg->gradient_free;
}

int traj_task_on(const traj_config *cfg, int k)
{
    return traj_family_on(cfg, task_defs[k].fam);
}

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
 * direction (ux, uy); the smooth loss of Eq. 15 + 20, or the hard one (FAM_HARD), whose
 * constants t->hard also gives every obstacle task for counting collisions. */
static int create_obstacle_task(lgd_context *ctx, lgd_trajectory_layout lo, task *t,
                                double ux, double uy, int active)
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
    traj_hard_params *h = &t->hard;
    memset(h, 0, sizeof *h);
    h->frames = FRAMES;
    h->velocity_scale = lo.velocity_scale;
    h->goal[0] = goal[0];
    h->goal[1] = goal[1];
    h->goal_weight = 1.0f; /* the paper's, as the smooth loss's default */
    h->weight = (float)HARD_WEIGHT;
    h->nobs = t->nobs;
    memcpy(h->obs, t->obs, sizeof t->obs);
    if (!active)
        return 0;
    if (d->fam == FAM_HARD) {
        lgd_status st = traj_hard_loss_create(ctx, h, &t->loss);
        return tool_failed(CMD, ctx, st, "traj_hard_loss_create (the hard obstacle loss)");
    }
    /* NULL options: the paper's Eq. 20 constants (sharpness 50, weight 100, goal 1) */
    return CK(ctx, lgd_loss_create_obstacle_avoidance(ctx, DIM, &lo, goal, 1, t->obs,
                                                      t->nobs, NULL, &t->loss));
}

int traj_model_path(const traj_config *cfg, char *buf, size_t size)
{
    const char *dir = getenv("LGD_MODEL_DIR");
    int n;
    if (cfg->model)
        n = snprintf(buf, size, "%s", cfg->model);
    else if (dir && *dir)
        n = snprintf(buf, size, "%s/" DEFAULT_MODEL_NAME, dir);
    else {
        n = snprintf(buf, size, "models/" DEFAULT_MODEL_NAME);
        if (access(buf, F_OK) != 0 && LGD_TOOL_SOURCE_ROOT[0]) {
            char alt[4096];
            int m = snprintf(alt, sizeof alt, "%s/models/" DEFAULT_MODEL_NAME,
                             LGD_TOOL_SOURCE_ROOT);
            if (m > 0 && (size_t)m < sizeof alt && access(alt, F_OK) == 0)
                n = snprintf(buf, size, "%s", alt);
        }
    }
    return n < 0 || (size_t)n >= size;
}

/* The learned prior: the network file cfg->model_path as a denoiser, with the adapter the
 * file names (lgd_model_create_from_network with NULL options). */
static int create_learned_prior(traj_problem *pb, const traj_config *cfg)
{
    lgd_context *ctx = pb->ctx;
    lgd_status st = lgd_network_load(ctx, cfg->model_path, &pb->net);
    if (st != LGD_OK) {
        fprintf(stderr, "lgd " CMD ": cannot load the learned prior %s: %s: %s\n",
                cfg->model_path, lgd_status_string(st), lgd_context_last_error(ctx));
        return 1;
    }
    if (lgd_network_dim(pb->net) != DIM || lgd_network_out_dim(pb->net) != DIM ||
        lgd_network_cond_dim(pb->net) != 0) {
        fprintf(stderr,
                "lgd " CMD ": %s is not a trajectory denoiser: dim %" PRId64 ", out_dim %" PRId64
                ", cond_dim %" PRId64 " (expected %d, %d and 0: %d frames of 2-D root "
                "velocities, unconditional)\n",
                cfg->model_path, lgd_network_dim(pb->net), lgd_network_out_dim(pb->net),
                lgd_network_cond_dim(pb->net), DIM, DIM, FRAMES);
        return 1;
    }
    return CK(ctx, lgd_model_create_from_network(ctx, pb->net, NULL, &pb->prior));
}

int traj_problem_create(traj_problem *pb, const traj_config *cfg)
{
    if (tool_context_create(CMD, LGD_BACKEND_CPU, cfg->threads, &pb->ctx))
        return 1;
    lgd_context *ctx = pb->ctx;
    lgd_trajectory_prior_options po = LGD_TRAJECTORY_PRIOR_OPTIONS_INIT; /* 64 frames */
    if (CK(ctx, lgd_model_create_trajectory_prior(ctx, &po, &pb->exact)))
        return 1;
    if (lgd_model_dim(pb->exact) != DIM) {
        fprintf(stderr, "lgd " CMD ": the trajectory prior has dim %" PRId64 ", expected %d\n",
                lgd_model_dim(pb->exact), DIM);
        return 1;
    }
    if (cfg->prior == PRIOR_LEARNED) {
        if (create_learned_prior(pb, cfg))
            return 1;
    } else {
        pb->prior = lgd_model_retain(pb->exact);
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
                                    : create_obstacle_task(ctx, lo, t, ux, uy,
                                                           traj_task_on(cfg, k)))
            return 1;
    }
    return 0;
}

void traj_problem_destroy(traj_problem *pb)
{
    for (int k = 0; k < NTASKS; k++)
        lgd_loss_destroy(pb->tasks[k].loss);
    lgd_model_destroy(pb->prior);
    lgd_model_destroy(pb->exact);
    lgd_network_destroy(pb->net);
    lgd_context_destroy(pb->ctx);
}

double traj_path_pos(const float *v, int f, int axis, double *acc)
{
    *acc += VELOCITY_SCALE * (double)v[2 * f + axis];
    return *acc;
}
