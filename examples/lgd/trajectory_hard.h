/*
 * trajectory_hard.h - the hard (0/1) obstacle loss of `lgd trajectory --gradient-free`:
 *
 *   l(x) = goal_weight |g - p_{T-1}|^2 + W * 1[some frame p_t lies inside an obstacle],
 *
 * a host callback loss (lgd_loss_create_callbacks) on the layout of the library's
 * trajectory losses: frame t's root velocity is x[2 t + {0, 1}] and the positions are
 * p_t = velocity_scale * sum_{s <= t} v_s, summed in double with velocity_scale rounded
 * to float first, exactly as src/losses/trajectory_loss.h does ("inside": |p_t - c|^2 <
 * r^2, the region where the library's smooth collision term is above one half).
 *
 * Its gradient, when asked for, is the goal term's: the indicator is piecewise constant,
 * so that is the loss's gradient everywhere but on the obstacles' rims (a set of
 * measure zero), and all DPS and gradient LGD-MC can use. Gradient-free LGD-MC
 * (LGD_GUIDANCE_MC_GRADIENT_FREE) calls it without a gradient and sees the indicator
 * through the loss values.
 *
 * Depends only on <lgd/lgd.h>, so that the tests can link it (tests/meson.build).
 */
#ifndef LGD_TOOL_TRAJECTORY_HARD_H
#define LGD_TOOL_TRAJECTORY_HARD_H

#include <stdint.h>

#include <lgd/lgd.h>

#define TRAJ_HARD_MAX_OBS 8

/* The loss's constants (copied by traj_hard_loss_create). */
typedef struct traj_hard_params {
    int frames;           /* T >= 1; dim = 2 T */
    float velocity_scale; /* positions = velocity_scale * cumsum(v) */
    float goal[2];
    float goal_weight;    /* >= 0 */
    float weight;         /* W >= 0: the indicator's weight */
    int nobs;             /* 0 .. TRAJ_HARD_MAX_OBS */
    float obs[3 * TRAJ_HARD_MAX_OBS]; /* centre x, centre y, radius */
} traj_hard_params;

/* Whether some frame of the trajectory v (velocities [frames][2]) lies inside one of the
 * obstacles of p, positions computed as the library's trajectory losses do. */
int traj_hard_collides(const traj_hard_params *p, const float *v);

/* The loss value of v (float, as the callback writes it) and, when grad is not NULL, its
 * gradient [2 frames] (the goal term's). */
float traj_hard_eval(const traj_hard_params *p, const float *v, float *grad);

/* The loss as an lgd_loss of dim 2 * frames on ctx (the callback owns a copy of p).
 * Statuses: LGD_ERR_INVALID_ARGUMENT (ctx, p or out NULL, frames < 1, nobs out of range,
 * a negative or non-finite weight), LGD_ERR_OUT_OF_MEMORY, and those of
 * lgd_loss_create_callbacks(). */
lgd_status traj_hard_loss_create(lgd_context *ctx, const traj_hard_params *p, lgd_loss **out);

#endif
