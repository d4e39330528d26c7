/*
 * test_trajectory.c - trajectory losses (path following, obstacle avoidance) against
 * hand computations and finite differences, the trajectory prior, and guided sampling
 * that reaches a goal around an obstacle.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* double reference: positions of one row, then the loss */
typedef struct ref_layout {
    int T, stride, offset, velocities;
    double scale;
} ref_layout;

static void ref_positions(const ref_layout *L, const float *x, double *px, double *py)
{
    double ax = 0, ay = 0;
    for (int t = 0; t < L->T; t++) {
        const float *v = x + L->offset + t * L->stride;
        if (L->velocities) {
            ax += L->scale * v[0];
            ay += L->scale * v[1];
        } else {
            ax = v[0];
            ay = v[1];
        }
        px[t] = ax;
        py[t] = ay;
    }
}

static double ref_loss(const ref_layout *L, const float *x, const float *path, const float *goal,
                       const float *obs, int nobs, double sharp, double wobs, double wgoal)
{
    double px[256], py[256], l = 0;
    ref_positions(L, x, px, py);
    for (int t = 0; t < L->T; t++) {
        if (path)
            l += (px[t] - path[2 * t]) * (px[t] - path[2 * t]) +
                 (py[t] - path[2 * t + 1]) * (py[t] - path[2 * t + 1]);
        for (int o = 0; o < nobs; o++) {
            double dx = px[t] - obs[3 * o], dy = py[t] - obs[3 * o + 1];
            double z = -((dx * dx + dy * dy) - (double)obs[3 * o + 2] * obs[3 * o + 2]) * sharp;
            l += wobs / (1 + exp(-z));
        }
    }
    if (goal) {
        int t = L->T - 1;
        l += wgoal * ((px[t] - goal[0]) * (px[t] - goal[0]) + (py[t] - goal[1]) * (py[t] - goal[1]));
    }
    return l;
}

static lgd_trajectory_layout to_layout(const ref_layout *L)
{
    lgd_trajectory_layout lo = LGD_TRAJECTORY_LAYOUT_INIT;
    lo.frames = L->T;
    lo.frame_stride = L->stride;
    lo.root_offset = L->offset;
    lo.velocities = L->velocities;
    lo.velocity_scale = (float)L->scale;
    return lo;
}

static const ref_layout LAYOUTS[] = {
    { 16, 2, 0, 1, 1.0 },  /* plain [T][2] velocities */
    { 12, 5, 1, 1, 0.3 },  /* root inside a wider frame, scaled */
    { 10, 3, 2, 0, 1.0 },  /* positions */
};

/* value and central-difference gradient of a loss at random points, rows in [B][n] */
static void check_loss(lgd_context *ctx, lgd_loss *loss, const ref_layout *L, int dim,
                       const float *path, const float *goal, int target_rows, const float *obs,
                       int nobs, double sharp, double wobs, double wgoal, float xscale)
{
    const int B = 3, n = 2, rows = B * n;
    tu_rng rng = { 5u + (uint64_t)dim };
    float *x = malloc((size_t)rows * dim * sizeof *x), *g = malloc((size_t)rows * dim * sizeof *g);
    float l[6];
    tu_fill_normal(&rng, x, (size_t)rows * dim, xscale);
    int64_t shape[3] = { B, n, dim };
    lgd_tensor *tx = tu_tensor_nd(ctx, 3, shape, x), *tg = tu_tensor_nd(ctx, 3, shape, NULL);
    lgd_tensor *tl = tu_tensor(ctx, B, n, NULL);
    TU_OK(ctx, lgd_loss_eval(loss, tx, tl, tg));
    TU_OK(ctx, lgd_tensor_download(tl, l, rows));
    TU_OK(ctx, lgd_tensor_download(tg, g, (size_t)rows * dim));
    lgd_tensor *t1 = tu_tensor(ctx, 1, dim, NULL), *l1 = tu_tensor_nd(ctx, 1, (int64_t[]){ 1 }, NULL);
    for (int r = 0; r < rows; r++) {
        int tr = target_rows == 1 ? 0 : r / n;
        const float *pr = path ? path + (size_t)tr * L->T * 2 : NULL;
        const float *gr = goal ? goal + 2 * tr : NULL;
        float *xr = x + (size_t)r * dim;
        double want = ref_loss(L, xr, pr, gr, obs, nobs, sharp, wobs, wgoal);
        ck_assert_msg(fabs(l[r] - want) < 1e-4 * (1 + fabs(want)), "row %d: loss %g, want %g", r,
                      l[r], want);
        for (int j = 0; j < dim; j++) {
            double h = 1e-4, keep = xr[j];
            xr[j] = (float)(keep + h);
            double lp = ref_loss(L, xr, pr, gr, obs, nobs, sharp, wobs, wgoal);
            xr[j] = (float)(keep - h);
            double lm = ref_loss(L, xr, pr, gr, obs, nobs, sharp, wobs, wgoal);
            double hp = (double)(float)(keep + h) - (double)(float)(keep - h);
            xr[j] = (float)keep;
            double fd = (lp - lm) / hp;
            ck_assert_msg(fabs(g[(size_t)r * dim + j] - fd) < 2e-3 * (1 + fabs(fd)),
                          "row %d coord %d: grad %g, FD %g", r, j, g[(size_t)r * dim + j], fd);
        }
    }
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tg);
    lgd_tensor_destroy(tl);
    lgd_tensor_destroy(t1);
    lgd_tensor_destroy(l1);
    free(x);
    free(g);
}

START_TEST(path_loss_value_and_gradient)
{
    lgd_context *ctx = tu_context(0);
    const ref_layout *L = &LAYOUTS[_i];
    int dim = L->offset + (L->T - 1) * L->stride + 2 + 1; /* one spare trailing entry */
    tu_rng rng = { 11 };
    for (int target_rows = 1; target_rows <= 3; target_rows += 2) {
        float *path = malloc((size_t)target_rows * L->T * 2 * sizeof *path);
        tu_fill_normal(&rng, path, (size_t)target_rows * L->T * 2, 2.0f);
        lgd_trajectory_layout lo = to_layout(L);
        lgd_loss *loss = NULL;
        TU_OK(ctx, lgd_loss_create_path(ctx, dim, &lo, path, target_rows, &loss));
        check_loss(ctx, loss, L, dim, path, NULL, target_rows, NULL, 0, 0, 0, 0, 1.0f);
        lgd_loss_destroy(loss);
        free(path);
    }
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(obstacle_loss_value_and_gradient)
{
    lgd_context *ctx = tu_context(0);
    const ref_layout *L = &LAYOUTS[_i];
    int dim = L->offset + (L->T - 1) * L->stride + 2;
    /* obstacles placed where the random paths pass, with small sharpness so the sigmoid's
     * slope is resolved by the finite differences, and the paper's constants */
    float obs[9] = { 0.5f, -0.5f, 1.0f, 2.0f, 1.0f, 1.5f, -1.0f, 0.0f, 0.7f };
    float goal[6] = { 3.0f, -1.0f, 0.5f, 0.5f, -2.0f, 2.0f };
    const double sharps[2] = { 2.0, 50.0 };
    for (int si = 0; si < 2; si++)
        for (int target_rows = 1; target_rows <= 3; target_rows += 2) {
            lgd_trajectory_layout lo = to_layout(L);
            lgd_obstacle_options o = LGD_OBSTACLE_OPTIONS_INIT;
            o.sharpness = (float)sharps[si];
            o.goal_weight = 0.7f;
            lgd_loss *loss = NULL;
            TU_OK(ctx, lgd_loss_create_obstacle_avoidance(ctx, dim, &lo, goal, target_rows, obs,
                                                          3, &o, &loss));
            /* sharpness 50: inputs small so the positions stay near the obstacles' rims */
            check_loss(ctx, loss, L, dim, NULL, goal, target_rows, obs, 3, sharps[si], 100.0,
                       0.7, si ? 0.3f : 1.0f);
            lgd_loss_destroy(loss);
        }
    /* obstacles only (no goal) with the default options */
    lgd_trajectory_layout lo = to_layout(L);
    lgd_loss *loss = NULL;
    TU_OK(ctx, lgd_loss_create_obstacle_avoidance(ctx, dim, &lo, NULL, 1, obs, 3, NULL, &loss));
    check_loss(ctx, loss, L, dim, NULL, NULL, 1, obs, 3, 50.0, 100.0, 0.0, 0.3f);
    lgd_loss_destroy(loss);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(paper_collision_term)
{
    /* Eq. 20: a trajectory standing still inside a radius-1 obstacle costs 100 per frame;
     * far outside it costs ~0 */
    lgd_context *ctx = tu_context(0);
    const int T = 4;
    float obs[3] = { 0.0f, 0.0f, 1.0f }, x[8] = { 0 }, l;
    lgd_trajectory_layout lo = LGD_TRAJECTORY_LAYOUT_INIT;
    lo.frames = T;
    lgd_loss *loss = NULL;
    TU_OK(ctx, lgd_loss_create_obstacle_avoidance(ctx, 2 * T, &lo, NULL, 1, obs, 1, NULL, &loss));
    lgd_tensor *tx = tu_tensor(ctx, 1, 2 * T, x), *tl = tu_tensor_nd(ctx, 1, (int64_t[]){ 1 }, NULL);
    TU_OK(ctx, lgd_loss_eval(loss, tx, tl, NULL));
    TU_OK(ctx, lgd_tensor_download(tl, &l, 1));
    ck_assert_msg(fabs(l - 4 * 100.0 / (1 + exp(-50.0))) < 1e-3, "inside: %g", l);
    x[0] = 5.0f; /* first velocity jumps 5 away: every frame is outside */
    TU_OK(ctx, lgd_tensor_upload(tx, x, 8));
    TU_OK(ctx, lgd_loss_eval(loss, tx, tl, NULL));
    TU_OK(ctx, lgd_tensor_download(tl, &l, 1));
    ck_assert_msg(l < 1e-6, "outside: %g", l);
    lgd_tensor_destroy(tx);
    lgd_tensor_destroy(tl);
    lgd_loss_destroy(loss);
    lgd_context_destroy(ctx);
}
END_TEST

START_TEST(trajectory_loss_bad_input)
{
    lgd_context *ctx = tu_context(0);
    float path[8] = { 0 }, obs[3] = { 0, 0, 1 }, goal[2] = { 1, 1 };
    lgd_trajectory_layout lo = LGD_TRAJECTORY_LAYOUT_INIT;
    lo.frames = 4;
    lgd_loss *l = NULL;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_path(ctx, 8, NULL, path, 1, &l));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_path(ctx, 8, &lo, NULL, 1, &l));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_path(ctx, 8, &lo, path, 0, &l));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_path(ctx, 8, &lo, path, 1, NULL));
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_loss_create_path(ctx, 7, &lo, path, 1, &l));
    lo.root_offset = 1;
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_loss_create_path(ctx, 8, &lo, path, 1, &l));
    lo.root_offset = 0;
    lo.frame_stride = 1;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_path(ctx, 8, &lo, path, 1, &l));
    lo.frame_stride = 2;
    lo.velocities = 2;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_path(ctx, 8, &lo, path, 1, &l));
    lo.velocities = 1;
    lo.struct_size = 0;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_path(ctx, 8, &lo, path, 1, &l));
    lo.struct_size = sizeof lo;
    path[3] = NAN;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_path(ctx, 8, &lo, path, 1, &l));
    path[3] = 0;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_loss_create_obstacle_avoidance(ctx, 8, &lo, NULL, 1, NULL, 0, NULL, &l));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_loss_create_obstacle_avoidance(ctx, 8, &lo, goal, 1, NULL, 2, NULL, &l));
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_loss_create_obstacle_avoidance(ctx, 8, &lo, goal, 1, obs, -1, NULL, &l));
    obs[2] = 0.0f;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_loss_create_obstacle_avoidance(ctx, 8, &lo, goal, 1, obs, 1, NULL, &l));
    obs[2] = 1.0f;
    /* Regression (hardening issue, finding 2): a layout whose fit check
     * root_offset + (frames - 1) * frame_stride + 2 > dim overflowed int64 was accepted,
     * and evaluation then read outside x. Each of these wraps to a small end. */
    {
        const struct { int64_t frames, stride, offset; } wrap[] = {
            { 4, INT64_MAX / 3 + 1, 0 },             /* (frames - 1) * stride wraps */
            { 4, 2, INT64_MAX - 1 },                 /* + 2 after the offset wraps */
            { 2, INT64_MAX, 0 },                     /* stride + 2 wraps */
            { 4, (INT64_MAX / 3) * 2, INT64_MAX / 2 }, /* both large */
            { 2, ((int64_t)1 << 62) - 1, ((int64_t)1 << 62) }, /* sum just past INT64_MAX */
        };
        for (size_t i = 0; i < sizeof wrap / sizeof wrap[0]; i++) {
            lgd_trajectory_layout big = LGD_TRAJECTORY_LAYOUT_INIT;
            big.frames = wrap[i].frames;
            big.frame_stride = wrap[i].stride;
            big.root_offset = wrap[i].offset;
            TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH,
                     lgd_loss_create_path(ctx, 8, &big, path, 1, &l));
            ck_assert_ptr_null(l);
            TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH,
                     lgd_loss_create_obstacle_avoidance(ctx, 8, &big, goal, 1, obs, 1, NULL, &l));
            ck_assert_ptr_null(l);
            ck_assert_msg(strstr(lgd_context_last_error(ctx), "do not fit in dim 8"), "%s",
                          lgd_context_last_error(ctx));
        }
        /* the largest layout that fits is still accepted: 2 frames, stride 4, offset 2 */
        lgd_trajectory_layout edge = LGD_TRAJECTORY_LAYOUT_INIT;
        edge.frames = 2;
        edge.frame_stride = 4;
        edge.root_offset = 2;
        float path2f[4] = { 0 };
        TU_OK(ctx, lgd_loss_create_path(ctx, 8, &edge, path2f, 1, &l));
        lgd_loss_destroy(l);
        l = NULL;
        edge.root_offset = 3;
        TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_loss_create_path(ctx, 8, &edge, path2f, 1, &l));
    }
    lgd_obstacle_options o = LGD_OBSTACLE_OPTIONS_INIT;
    o.sharpness = 0.0f;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT,
             lgd_loss_create_obstacle_avoidance(ctx, 8, &lo, goal, 1, obs, 1, &o, &l));
    ck_assert_ptr_null(l);
    /* smaller than the first published layout (0.1.0 had velocity_scale): refused */
    lo.struct_size = (uint32_t)offsetof(lgd_trajectory_layout, velocity_scale);
    lo.velocity_scale = 1e9f;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_loss_create_path(ctx, 8, &lo, path, 1, &l));
    ck_assert_ptr_null(l);
    lo.struct_size = sizeof lo;
    lo.velocity_scale = 1.0f;
    TU_OK(ctx, lgd_loss_create_path(ctx, 8, &lo, path, 1, &l));
    /* per-batch targets must match the batch */
    lgd_loss *l2 = NULL;
    float path2[16] = { 0 };
    lo.struct_size = sizeof lo;
    TU_OK(ctx, lgd_loss_create_path(ctx, 8, &lo, path2, 2, &l2));
    lgd_tensor *x3 = tu_tensor(ctx, 3, 8, NULL), *o3 = tu_tensor_nd(ctx, 1, (int64_t[]){ 3 }, NULL);
    TU_FAILS(ctx, LGD_ERR_SHAPE_MISMATCH, lgd_loss_eval(l2, x3, o3, NULL));
    TU_OK(ctx, lgd_loss_eval(l, x3, o3, NULL));
    float v[3];
    TU_OK(ctx, lgd_tensor_download(o3, v, 3));
    ck_assert_float_eq(v[0], 0.0f);
    lgd_tensor_destroy(x3);
    lgd_tensor_destroy(o3);
    lgd_loss_destroy(l);
    lgd_loss_destroy(l2);
    lgd_context_destroy(ctx);
}
END_TEST

/* ---------- the prior ---------- */

START_TEST(trajectory_prior_shape_and_modes)
{
    lgd_context *ctx = tu_context(0);
    /* quick (valgrind) runs use 16 frames: the same modes, a quarter of the dimension */
    const int quick = getenv("LGD_TEST_QUICK") != NULL, T = quick ? 16 : 64, D = 2 * T;
    lgd_trajectory_prior_options po = LGD_TRAJECTORY_PRIOR_OPTIONS_INIT;
    po.frames = T;
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_create_trajectory_prior(ctx, &po, &m));
    ck_assert_int_eq(lgd_model_dim(m), D);
    ck_assert(lgd_model_has_exact_posterior(m));
    /* unguided samples: every one of the 8 heading sectors is visited (multimodal) */
    const int B = quick ? 64 : 512;
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = LGD_GUIDANCE_NONE;
    lgd_guidance *g = NULL;
    TU_OK(ctx, lgd_guidance_create(ctx, m, NULL, &go, &g));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.steps = 30;
    lgd_sampler *s = NULL;
    TU_OK(ctx, lgd_sampler_create(g, &so, &s));
    lgd_tensor *x = tu_tensor(ctx, B, D, NULL);
    TU_OK(ctx, lgd_sampler_run(s, x, 3, 0, NULL, NULL));
    float *h = tu_download(x);
    int sectors[8] = { 0 };
    double speed = 0;
    for (int b = 0; b < B; b++) {
        double vx = h[b * D], vy = h[b * D + 1]; /* the first frame's heading */
        double a = atan2(vy, vx);
        const double pi = 3.141592653589793;
        int sec = (int)floor((a + pi / 8) / (pi / 4) + 8) % 8;
        sectors[sec]++;
        double px = 0, py = 0;
        for (int t = 0; t < T; t++) {
            px += h[b * D + 2 * t];
            py += h[b * D + 2 * t + 1];
        }
        speed += sqrt(px * px + py * py) / T / B;
    }
    for (int k = 0; k < 8; k++)
        ck_assert_msg(sectors[k] > B / 32, "heading sector %d has %d of %d samples", k, sectors[k],
                      B);
    /* displacement per frame: straight paths reach 1, turning ones less (chord / arc) */
    ck_assert_msg(speed > 0.8 && speed < 1.05, "mean displacement per frame %g", speed);
    free(h);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    lgd_model_destroy(m);
    /* bad options */
    po.frames = 0;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_create_trajectory_prior(ctx, &po, &m));
    po.frames = 8;
    po.gp_length = 0;
    TU_FAILS(ctx, LGD_ERR_INVALID_ARGUMENT, lgd_model_create_trajectory_prior(ctx, &po, &m));
    lgd_context_destroy(ctx);
}
END_TEST

/* ---------- guided sampling: reach a goal around an obstacle ---------- */

typedef struct outcome {
    double reached, collided, success;
} outcome;

static outcome sample_outcome(lgd_context *ctx, lgd_model *m, lgd_loss *loss, lgd_guidance_kind kind,
                              int n, int B, int T, float scale_v, const float *goal,
                              const float *obs)
{
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = kind;
    go.n_samples = n;
    /* the x0 rule at scale 1 (lambda = 1): the score rule's sigma^2 lets the collision
     * term's steep gradients overshoot at high noise (see docs/design-notes.md) */
    go.step_rule = LGD_STEP_X0;
    go.scale = 1.0f;
    lgd_guidance *g = NULL;
    TU_OK(ctx, lgd_guidance_create(ctx, m, kind == LGD_GUIDANCE_NONE ? NULL : loss, &go, &g));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_DDIM;
    so.steps = 50;
    lgd_sampler *s = NULL;
    TU_OK(ctx, lgd_sampler_create(g, &so, &s));
    const int D = 2 * T;
    lgd_tensor *x = tu_tensor(ctx, B, D, NULL);
    TU_OK(ctx, lgd_sampler_run(s, x, 17, 0, NULL, NULL));
    float *h = tu_download(x);
    outcome o = { 0, 0, 0 };
    for (int b = 0; b < B; b++) {
        double px = 0, py = 0, dmin = 1e9;
        for (int t = 0; t < T; t++) {
            px += scale_v * h[b * D + 2 * t];
            py += scale_v * h[b * D + 2 * t + 1];
            dmin = fmin(dmin, hypot(px - obs[0], py - obs[1]));
        }
        int reached = hypot(px - goal[0], py - goal[1]) < 1.0, collided = dmin < obs[2];
        o.reached += reached;
        o.collided += collided;
        o.success += reached && !collided;
    }
    o.reached /= B;
    o.collided /= B;
    o.success /= B;
    free(h);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    return o;
}

START_TEST(guided_sampling_avoids_obstacle)
{
    /* 64 frames at 0.1 per frame: a straight walk east ends at (6.4, 0); the goal (6, 0)
     * lies behind an obstacle of radius 1 at (3, 0), so the straight path collides */
    lgd_context *ctx = tu_context(0);
    /* quick (valgrind) runs: 16 frames at 0.4 per frame cover the same 6.4 */
    const int quick = getenv("LGD_TEST_QUICK") != NULL, T = quick ? 16 : 64;
    lgd_trajectory_prior_options po = LGD_TRAJECTORY_PRIOR_OPTIONS_INIT;
    po.frames = T;
    lgd_model *m = NULL;
    TU_OK(ctx, lgd_model_create_trajectory_prior(ctx, &po, &m));
    const float vs = 6.4f / (float)T, goal[2] = { 6.0f, 0.0f }, obs[3] = { 3.0f, 0.0f, 1.0f };
    lgd_trajectory_layout lo = LGD_TRAJECTORY_LAYOUT_INIT;
    lo.frames = T;
    lo.velocity_scale = vs;
    lgd_loss *loss = NULL;
    TU_OK(ctx, lgd_loss_create_obstacle_avoidance(ctx, 2 * T, &lo, goal, 1, obs, 1, NULL, &loss));
    const int B = quick ? 32 : 128;
    outcome un = sample_outcome(ctx, m, loss, LGD_GUIDANCE_NONE, 1, B, T, vs, goal, obs);
    outcome mc = sample_outcome(ctx, m, loss, LGD_GUIDANCE_MC, 20, B, T, vs, goal, obs);
    fprintf(stderr, "obstacle: unguided reached %.2f collided %.2f success %.2f; "
                    "LGD-MC n=20 reached %.2f collided %.2f success %.2f\n",
            un.reached, un.collided, un.success, mc.reached, mc.collided, mc.success);
    ck_assert_msg(mc.success > un.success + 0.5, "guided success %.2f vs unguided %.2f",
                  mc.success, un.success);
    ck_assert_msg(mc.collided < 0.2, "guided collision rate %.2f", mc.collided);
    lgd_loss_destroy(loss);
    lgd_model_destroy(m);
    lgd_context_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("trajectory");
    TCase *tl = tcase_create("losses");
    tcase_add_loop_test(tl, path_loss_value_and_gradient, 0, 3);
    tcase_add_loop_test(tl, obstacle_loss_value_and_gradient, 0, 3);
    tcase_add_test(tl, paper_collision_term);
    tcase_add_test(tl, trajectory_loss_bad_input);
    suite_add_tcase(s, tl);
    TCase *tp = tcase_create("prior");
    tcase_set_timeout(tp, 300);
    tcase_add_test(tp, trajectory_prior_shape_and_modes);
    tcase_add_test(tp, guided_sampling_avoids_obstacle);
    suite_add_tcase(s, tp);
    return tu_run(s);
}
