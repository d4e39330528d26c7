/*
 * trajectory_loss.h - the per-row math of the trajectory losses (path following,
 * goal reaching, obstacle avoidance; the paper's Eq. 14, 15 and 20).
 *
 * Header-only so that the CPU backend and the CUDA kernel run the same code
 * (__host__ __device__ under nvcc). One row of x is one trajectory: frame t's root
 * entry is the pair x[offset + t * stride + {0, 1}]. With `velocities`, those are root
 * velocities and the positions are p_t = scale * sum_{s <= t} v_s (as a motion model's
 * root is integrated); otherwise they are the positions themselves. The loss is
 *   sum_t path_weight |y_t - p_t|^2                       (path, if given)
 * + goal_weight |g - p_{T-1}|^2                            (goal, if given)
 * + sum_t sum_o obstacle_weight sigmoid(-(|p_t - c_o|^2 - r_o^2) sharpness)
 * and its gradient goes back through the cumulative sum by a reverse pass that
 * rebuilds p_{t-1} = p_t - scale v_t, so no per-row scratch is needed.
 */
#ifndef LGD_TRAJECTORY_LOSS_H
#define LGD_TRAJECTORY_LOSS_H

#include <math.h>
#include <stddef.h>

#include "core/hd_math.h" /* LGD_HD */

typedef struct lgd_traj_params {
    size_t frames, stride, offset;
    int velocities;
    float velocity_scale;
    const float *path;      /* [target_rows][frames][2] or NULL */
    float path_weight;
    const float *goal;      /* [target_rows][2] or NULL */
    float goal_weight;
    const float *obstacles; /* [n_obstacles][3]: centre x, centre y, radius */
    size_t n_obstacles;
    float sharpness, obstacle_weight;
    size_t target_rows, per_target; /* target row of row r: (r / per_target) % target_rows */
} lgd_traj_params;

/* d loss / d p_t (into gx, gy) and the loss terms of frame t, at position (px, py) */
LGD_HD double lgd_traj_frame(const lgd_traj_params *p, const float *path, const float *goal,
                                  size_t t, double px, double py, double *gx, double *gy)
{
    double loss = 0.0, dx = 0.0, dy = 0.0;
    if (path) {
        double ex = px - path[2 * t], ey = py - path[2 * t + 1];
        loss += p->path_weight * (ex * ex + ey * ey);
        dx += 2.0 * p->path_weight * ex;
        dy += 2.0 * p->path_weight * ey;
    }
    if (goal && t + 1 == p->frames) {
        double ex = px - goal[0], ey = py - goal[1];
        loss += p->goal_weight * (ex * ex + ey * ey);
        dx += 2.0 * p->goal_weight * ex;
        dy += 2.0 * p->goal_weight * ey;
    }
    for (size_t o = 0; o < p->n_obstacles; o++) {
        const float *c = p->obstacles + 3 * o;
        double cx = px - c[0], cy = py - c[1];
        double z = -((cx * cx + cy * cy) - (double)c[2] * c[2]) * p->sharpness;
        double s = z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
        loss += p->obstacle_weight * s;
        /* d sigmoid(z) / dp = s (1 - s) dz/dp, dz/dp = -2 sharpness (p - c) */
        double f = p->obstacle_weight * s * (1.0 - s) * (-2.0 * p->sharpness);
        dx += f * cx;
        dy += f * cy;
    }
    *gx = dx;
    *gy = dy;
    return loss;
}

/* Loss of row r into *loss; gradient row (all cols, zeros off the root) into grad. */
LGD_HD void lgd_traj_row(const lgd_traj_params *p, size_t cols, const float *xr, size_t r,
                              float *loss, float *gr)
{
    size_t tr = (r / p->per_target) % p->target_rows;
    const float *path = p->path ? p->path + tr * p->frames * 2 : NULL;
    const float *goal = p->goal ? p->goal + tr * 2 : NULL;
    double px = 0.0, py = 0.0, acc = 0.0, gx, gy;
    double scale = p->velocities ? p->velocity_scale : 1.0;
    for (size_t t = 0; t < p->frames; t++) {
        const float *v = xr + p->offset + t * p->stride;
        if (p->velocities) {
            px += scale * v[0];
            py += scale * v[1];
        } else {
            px = v[0];
            py = v[1];
        }
        acc += lgd_traj_frame(p, path, goal, t, px, py, &gx, &gy);
    }
    *loss = (float)acc;
    if (!gr)
        return;
    for (size_t j = 0; j < cols; j++)
        gr[j] = 0.0f;
    double sx = 0.0, sy = 0.0; /* suffix sums of d loss / d p */
    for (size_t k = p->frames; k-- > 0;) {
        const float *v = xr + p->offset + k * p->stride;
        if (!p->velocities) {
            px = v[0];
            py = v[1];
        }
        lgd_traj_frame(p, path, goal, k, px, py, &gx, &gy);
        float *g = gr + p->offset + k * p->stride;
        if (p->velocities) {
            sx += gx;
            sy += gy;
            g[0] = (float)(scale * sx);
            g[1] = (float)(scale * sy);
            px -= scale * v[0];
            py -= scale * v[1];
        } else {
            g[0] = (float)gx;
            g[1] = (float)gy;
        }
    }
}

#endif
