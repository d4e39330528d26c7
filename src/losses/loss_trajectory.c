/*
 * loss_trajectory.c - built-in losses on a root trajectory: path following and
 * obstacle avoidance (the paper's Eq. 14, 15, 20). The per-row math is in
 * trajectory_loss.h, shared with the CUDA backend; this file validates, copies the
 * parameters to the backend and evaluates through the trajectory kernel table (trajectory_kernels.h).
 */
#include <math.h>
#include <stdlib.h>

#include "core/internal.h"
#include "core/checked.h"
#include "losses/loss_internal.h"
#include "losses/trajectory_kernels.h"

typedef struct trajectory_loss {
    const lgd_trajectory_kernels *kern;
    lgd_traj_params p;  /* pointers into the buffers below */
    lgd_buffer path, goal, obstacles;
} trajectory_loss;

lgd_status lgd_trajectory_layout_init(lgd_trajectory_layout *layout, uint32_t struct_size)
{
    const lgd_trajectory_layout defaults = LGD_TRAJECTORY_LAYOUT_INIT;
    return lgd_init_struct(layout, struct_size, &defaults, sizeof defaults, sizeof(lgd_trajectory_layout));
}

lgd_status lgd_obstacle_options_init(lgd_obstacle_options *options, uint32_t struct_size)
{
    const lgd_obstacle_options defaults = LGD_OBSTACLE_OPTIONS_INIT;
    return lgd_init_struct(options, struct_size, &defaults, sizeof defaults, sizeof(lgd_obstacle_options));
}

static lgd_status trajectory_eval(lgd_loss *l, const float *x, size_t batch, size_t n,
                                  size_t first_draw, size_t total_draws,
                                  float *loss, float *grad)
{
    (void)first_draw; /* the draw index does not change this loss */
    (void)total_draws;
    trajectory_loss *t = l->impl;
    if (t->p.target_rows != 1 && t->p.target_rows != batch)
        return lgd_error(l->ctx, LGD_ERR_SHAPE_MISMATCH,
                         "%s loss: it has %zu target rows, which must be 1 or the batch (%zu)",
                         l->vt->name, t->p.target_rows, batch);
    lgd_traj_params p = t->p;
    p.per_target = n;
    t->kern->loss(l->ctx->be, batch * n, (size_t)l->dim, x, &p, loss, grad);
    return LGD_OK;
}

/* The block evaluator (loss_internal.h): sample `sample`'s m draws are rows
 * sample * m .. of a call with per_target = m, as trajectory_eval computes them. */
static void trajectory_block(const lgd_loss *l, size_t sample, size_t m, const float *x,
                             float *loss, float *grad)
{
    const trajectory_loss *t = l->impl;
    lgd_traj_params p = t->p;
    p.per_target = m;
    t->kern->loss_rows(sample * m, m, (size_t)l->dim, x, &p, loss, grad);
}

static void trajectory_destroy(lgd_loss *l)
{
    trajectory_loss *t = l->impl;
    lgd_buffer_release(l->ctx, &t->path);
    lgd_buffer_release(l->ctx, &t->goal);
    lgd_buffer_release(l->ctx, &t->obstacles);
    free(t);
}

static const lgd_loss_vtable path_vtable = {
    .name = "path",
    .eval = trajectory_eval,
    .destroy = trajectory_destroy,
};

static const lgd_loss_vtable obstacle_vtable = {
    .name = "obstacle_avoidance",
    .eval = trajectory_eval,
    .destroy = trajectory_destroy,
};

static lgd_status check_finite(lgd_context *ctx, const char *fn, const char *what,
                               const float *v, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!isfinite(v[i]))
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: %s[%zu] is not finite", fn,
                             what, i);
    return LGD_OK;
}

/* Validates the common arguments and fills the layout part of p. */
static lgd_status begin(lgd_context *ctx, const char *fn, int64_t dim,
                        const lgd_trajectory_layout *layout, int64_t target_rows,
                        lgd_loss **out, lgd_traj_params *p)
{
    if (!out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: out_loss is NULL", fn);
    *out = NULL;
    if (!layout)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: layout is NULL", fn);
    lgd_trajectory_layout lo, defaults = LGD_TRAJECTORY_LAYOUT_INIT;
    {
        lgd_status rst =
            lgd_read_struct(ctx, fn, "layout", &lo, sizeof lo, sizeof lo, layout, &defaults);
        if (rst)
            return rst;
    }
    if (dim <= 0 || lo.frames < 1 || lo.frame_stride < 2 || lo.root_offset < 0)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: need dim > 0, frames >= 1, frame_stride >= 2, root_offset >= 0", fn);
    int64_t end; /* one past the last value read: root_offset + (frames - 1) * stride + 2 */
    if (lo.frames > dim || lgd_muladd_i64(lo.frames - 1, lo.frame_stride, 2, &end) ||
        lgd_add_i64(end, lo.root_offset, &end) || end > dim)
        return lgd_error(ctx, LGD_ERR_SHAPE_MISMATCH,
                         "%s: %lld frames of stride %lld from offset %lld do not fit in dim %lld",
                         fn, (long long)lo.frames, (long long)lo.frame_stride,
                         (long long)lo.root_offset, (long long)dim);
    if (lo.velocities != 0 && lo.velocities != 1)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: layout->velocities must be 0 or 1",
                         fn);
    if (!isfinite(lo.velocity_scale))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: velocity_scale is not finite", fn);
    if (target_rows < 1)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: target_rows = %lld must be >= 1",
                         fn, (long long)target_rows);
    *p = (lgd_traj_params){ 0 };
    p->frames = (size_t)lo.frames;
    p->stride = (size_t)lo.frame_stride;
    p->offset = (size_t)lo.root_offset;
    p->velocities = lo.velocities;
    p->velocity_scale = lo.velocity_scale;
    p->target_rows = (size_t)target_rows;
    p->per_target = 1;
    return LGD_OK;
}

static lgd_status finish(lgd_context *ctx, const lgd_loss_vtable *vt, int64_t dim,
                         trajectory_loss *t, lgd_loss **out)
{
    t->p.path = t->path.data;
    t->p.goal = t->goal.data;
    t->p.obstacles = t->obstacles.data;
    lgd_status st = lgd_loss_new(ctx, vt, dim, t, out);
    if (st) {
        lgd_loss tmp = { .ctx = ctx, .impl = t };
        trajectory_destroy(&tmp);
        return st;
    }
    if (t->kern->loss_rows) {
        (*out)->block.eval = trajectory_block;
        (*out)->block.target_rows = t->p.target_rows;
    }
    return st;
}

lgd_status lgd_loss_create_path(lgd_context *ctx, int64_t dim, const lgd_trajectory_layout *layout,
                                const float *path, int64_t target_rows, lgd_loss **out)
{
    static const char fn[] = "lgd_loss_create_path";
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    lgd_traj_params p;
    lgd_status st = begin(ctx, fn, dim, layout, target_rows, out, &p);
    if (st)
        return st;
    if (!path)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: path is NULL", fn);
    size_t count;
    if (lgd_mul3_size(p.target_rows, p.frames, 2, &count) || count > SIZE_MAX / sizeof(float))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: %zu target rows of %zu frames is too large", fn, p.target_rows,
                         p.frames);
    if ((st = check_finite(ctx, fn, "path", path, count)))
        return st;
    const void *kern = NULL;
    if ((st = lgd_kernels_find(ctx, &lgd_trajectory_kernel_table, fn, &kern)))
        return st;
    trajectory_loss *t = calloc(1, sizeof *t);
    if (!t)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    t->kern = kern;
    p.path_weight = 1.0f;
    t->p = p;
    st = lgd_buffer_from_host(ctx, &t->path, path, count, fn);
    if (st) {
        free(t);
        return st;
    }
    return finish(ctx, &path_vtable, dim, t, out);
}

lgd_status lgd_loss_create_obstacle_avoidance(lgd_context *ctx, int64_t dim,
                                              const lgd_trajectory_layout *layout,
                                              const float *goal, int64_t target_rows,
                                              const float *obstacles, int64_t count,
                                              const lgd_obstacle_options *options, lgd_loss **out)
{
    static const char fn[] = "lgd_loss_create_obstacle_avoidance";
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    lgd_traj_params p;
    lgd_status st = begin(ctx, fn, dim, layout, target_rows, out, &p);
    if (st)
        return st;
    lgd_obstacle_options o, defaults = LGD_OBSTACLE_OPTIONS_INIT;
    {
        lgd_status rst =
            lgd_read_struct(ctx, fn, "options", &o, sizeof o, sizeof o, options, &defaults);
        if (rst)
            return rst;
    }
    if (!isfinite(o.sharpness) || o.sharpness <= 0.0f || !isfinite(o.obstacle_weight) ||
        o.obstacle_weight < 0.0f || !isfinite(o.goal_weight) || o.goal_weight < 0.0f)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: sharpness must be > 0 and the weights >= 0 (all finite)", fn);
    if (count < 0 || (count > 0 && !obstacles))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: count = %lld must be >= 0, with obstacles non-NULL when > 0", fn,
                         (long long)count);
    if (!goal && count == 0)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: neither a goal nor any obstacle: the loss would be 0", fn);
    if (goal && (st = check_finite(ctx, fn, "goal", goal, p.target_rows * 2)))
        return st;
    size_t obstacle_values = 0, goal_values = 0;
    if (lgd_mul_size((size_t)count, 3, &obstacle_values) ||
        obstacle_values > SIZE_MAX / sizeof(float) ||
        lgd_mul_size(p.target_rows, 2, &goal_values) || goal_values > SIZE_MAX / sizeof(float))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: %lld obstacles or %zu target rows is too large", fn,
                         (long long)count, p.target_rows);
    if (count > 0 && (st = check_finite(ctx, fn, "obstacles", obstacles, obstacle_values)))
        return st;
    for (int64_t i = 0; i < count; i++)
        if (obstacles[3 * i + 2] <= 0.0f)
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "%s: obstacle %lld has radius %g; it must be > 0", fn, (long long)i,
                             (double)obstacles[3 * i + 2]);
    const void *kern = NULL;
    if ((st = lgd_kernels_find(ctx, &lgd_trajectory_kernel_table, fn, &kern)))
        return st;
    trajectory_loss *t = calloc(1, sizeof *t);
    if (!t)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    t->kern = kern;
    p.goal_weight = goal ? o.goal_weight : 0.0f;
    p.n_obstacles = (size_t)count;
    p.sharpness = o.sharpness;
    p.obstacle_weight = o.obstacle_weight;
    t->p = p;
    if (goal)
        st = lgd_buffer_from_host(ctx, &t->goal, goal, goal_values, fn);
    if (!st && count > 0)
        st = lgd_buffer_from_host(ctx, &t->obstacles, obstacles, obstacle_values, fn);
    if (st) {
        lgd_loss tmp = { .ctx = ctx, .impl = t };
        trajectory_destroy(&tmp);
        return st;
    }
    return finish(ctx, &obstacle_vtable, dim, t, out);
}
