/*
 * trajectory_hard.c - the hard (0/1) obstacle loss (trajectory_hard.h): a host callback
 * loss, positions as the library's trajectory losses compute them.
 */
#include <math.h>
#include <stdlib.h>

#include "trajectory_hard.h"

/* The position p_t, accumulated as src/losses/trajectory_loss.h does: in double, with the
 * scale rounded to float first (the library keeps it as a float). */
static void advance(double scale, const float *v, int t, double *px, double *py)
{
    *px += scale * v[2 * t];
    *py += scale * v[2 * t + 1];
}

static int inside(const traj_hard_params *p, double px, double py)
{
    for (int o = 0; o < p->nobs; o++) {
        const float *c = p->obs + 3 * o;
        double cx = px - c[0], cy = py - c[1];
        if (cx * cx + cy * cy < (double)c[2] * c[2])
            return 1;
    }
    return 0;
}

int traj_hard_collides(const traj_hard_params *p, const float *v)
{
    double scale = (double)p->velocity_scale, px = 0.0, py = 0.0;
    for (int t = 0; t < p->frames; t++) {
        advance(scale, v, t, &px, &py);
        if (inside(p, px, py))
            return 1;
    }
    return 0;
}

float traj_hard_eval(const traj_hard_params *p, const float *v, float *grad)
{
    double scale = (double)p->velocity_scale, px = 0.0, py = 0.0;
    int hit = 0;
    for (int t = 0; t < p->frames; t++) {
        advance(scale, v, t, &px, &py);
        hit = hit || inside(p, px, py);
    }
    double ex = px - p->goal[0], ey = py - p->goal[1];
    double loss = (double)p->goal_weight * (ex * ex + ey * ey);
    if (hit)
        loss += (double)p->weight;
    if (grad) {
        /* d/dv_s of goal_weight |p_{T-1} - g|^2 = velocity_scale * 2 goal_weight
         * (p_{T-1} - g) for every frame s, as the library's reverse pass writes it */
        float gx = (float)(scale * (2.0 * p->goal_weight * ex));
        float gy = (float)(scale * (2.0 * p->goal_weight * ey));
        for (int t = 0; t < p->frames; t++) {
            grad[2 * t] = gx;
            grad[2 * t + 1] = gy;
        }
    }
    return (float)loss;
}

static int32_t hard_callback(void *user, const float *x, int64_t batch, int64_t n, int64_t dim,
                             float *loss, float *grad)
{
    const traj_hard_params *p = user;
    for (int64_t r = 0; r < batch * n; r++)
        loss[r] = traj_hard_eval(p, x + r * dim, grad ? grad + r * dim : NULL);
    return 0;
}

lgd_status traj_hard_loss_create(lgd_context *ctx, const traj_hard_params *p, lgd_loss **out)
{
    if (!ctx || !p || !out || p->frames < 1 || p->nobs < 0 || p->nobs > TRAJ_HARD_MAX_OBS ||
        !(p->weight >= 0.0f) || !isfinite(p->weight) || !(p->goal_weight >= 0.0f) ||
        !isfinite(p->goal_weight) || !isfinite(p->velocity_scale))
        return LGD_ERR_INVALID_ARGUMENT;
    traj_hard_params *copy = malloc(sizeof *copy);
    if (!copy)
        return LGD_ERR_OUT_OF_MEMORY;
    *copy = *p;
    lgd_loss_callbacks cb = LGD_LOSS_CALLBACKS_INIT;
    cb.dim = 2 * (int64_t)p->frames;
    cb.eval = hard_callback;
    cb.destroy = free;
    cb.user = copy;
    lgd_status st = lgd_loss_create_callbacks(ctx, &cb, out);
    if (st != LGD_OK)
        free(copy); /* the destroy callback is not called on failure */
    return st;
}
