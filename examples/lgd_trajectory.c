/*
 * lgd trajectory - the LGD paper's controllable trajectory synthesis (Song et al., ICML 2023:
 * Sec. 6.3, Tables 2 and 3, Fig. 2 and 10, App. B.3, Eq. 14, 15 and 20) on a prior of our own.
 *
 * The paper guides a text-to-motion diffusion model (MDM) whose root trajectory is the
 * running sum of root velocities. That model cannot be had here, so the prior is the
 * library's trajectory prior (lgd_model_create_trajectory_prior, defaults): 64 frames of
 * normalised 2-D root velocities (dim 128), an exact 24-component Gaussian mixture
 * (8 headings x 3 turn rates, smooth Gaussian-process variation), with positions
 * p_t = 0.1 * sum_{s <= t} v_s: a straight walk at the prior's speed covers 6.4 units.
 *
 * Tasks (the losses are the library's built-ins, lgd_loss_create_path and
 * lgd_loss_create_obstacle_avoidance with the paper's constants):
 *  - path following (Table 2): straight target paths y_t = 0.1 (t + 1) (cos a, sin a) from the
 *    origin at a = 20, 110 and 235 degrees (none is one of the prior's 8 headings);
 *  - obstacle avoidance (Table 3): two layouts where the straight path to the goal collides
 *    with an obstacle of radius 1 (Eq. 20).
 * Methods: Baseline (no guidance), DPS, LGD-MC with n = 10 and n = 100 (r(sigma) =
 * sigma / sqrt(1 + sigma^2)); 100-step DDIM (eta 0) on the Karras grid 80 -> 0.002.
 *
 * Fair tuning: every guided method gets the same grid of guidance scales for the chosen
 * step rule; each method's scale is chosen per task family by its mean Objective on tuning
 * samples (seed S + 1), then evaluated at that scale on separate evaluation samples
 * (seed S): the first --seeds rows per task (the paper's 10 seeds per direction) and
 * --large rows per task for a stable estimate.
 *
 * Metrics: Objective (loss / frames, the paper's), collision rate, final distance to the
 * target, and, as a stand-in for the paper's Embedding column (is the motion still a
 * plausible one?), the exact prior's -log p0(x0) / frame and the rate of implausible
 * samples (a frame faster than 3, three times the prior's speed: a path that jumps).
 * --select plausible restricts the selection to scales whose tuning samples are all
 * plausible.
 *
 * A run that produces non-finite values (LGD_ERR_NON_FINITE) is rerun one row at a time,
 * so that the rows that diverge are counted (and rank their scale last) instead of
 * hiding the run; any other library error ends the command with exit status 1.
 *
 * Uses only the public API of liblgd.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lgd/lgd.h>

#include "lgd_tool.h"
#include "progress.h"
#include "sample_stats.h"
#include "svg_plot.h"
#include "tool_util.h"

#define CMD "trajectory"
/* Reports a failed library call; evaluates to non-zero on error. */
#define CK(ctx, call) lgd_tool_failed(CMD, (ctx), (call), #call)

/* ---- the experiment's fixed data ---- */

#define FRAMES 64
#define DIM (2 * FRAMES)
#define VELOCITY_SCALE 0.1
#define PI 3.14159265358979323846
#define MAX_OBS 2
#define MAX_SCALES 16
/* A sample counts as implausible when some frame moves faster than this (normalised units;
 * the prior walks at 1 with a variation of 0.3 per axis, so 3 is about 7 standard
 * deviations out): guidance that "jumps" over an obstacle in one frame. */
#define SPEED_LIMIT 3.0
/* "Reached": final position within this distance of the target. */
#define REACH_RADIUS 1.0
/* Rows of different tasks are independent: task k starts at first_row = k * TASK_ROWS. */
#define TASK_ROWS 1000000ULL

typedef enum family { FAM_PATH = 0, FAM_OBSTACLE = 1, NFAM = 2 } family;
static const char *const family_key[NFAM] = { "path", "obstacle" };

typedef struct task_def {
    const char *key;
    const char *label;
    family fam;
    double angle_deg;   /* path direction, or the direction of the goal */
    double goal_dist;   /* obstacle tasks: distance of the goal from the origin */
    int nobs;
    /* obstacles: position along the straight line to the goal and across it (left of the
     * direction of travel positive), radius */
    double obs_along[MAX_OBS], obs_across[MAX_OBS], obs_r[MAX_OBS];
} task_def;

#define NTASKS 5
static const task_def task_defs[NTASKS] = {
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

#define NMETHODS 4
typedef struct method_def {
    const char *key;
    const char *name;
    const char *color;
    lgd_guidance_kind kind;
    int32_t n;
    double cost; /* relative cost of one step (progress units) */
} method_def;

static const method_def method_defs[NMETHODS] = {
    { "baseline", "Baseline", "#7f7f7f", LGD_GUIDANCE_NONE, 0, 1.0 },
    { "dps", "DPS", "#d62728", LGD_GUIDANCE_DPS, 1, 2.0 },
    { "mc_n10", "LGD-MC n=10", "#1f77b4", LGD_GUIDANCE_MC, 10, 2.5 },
    { "mc_n100", "LGD-MC n=100", "#2ca02c", LGD_GUIDANCE_MC, 100, 8.0 },
};

/* The paper's Tables 2 and 3 (Objective column). */
static const char *const paper_t2_prompts[4] = { "(i)", "(ii)", "(iii)", "(iv)" };
static const double paper_t2[NMETHODS][4] = {
    { 11.583, 1.024, 5.831, 7.080 },
    { 2.168, 0.388, 3.521, 2.954 },
    { 2.150, 0.395, 3.505, 2.857 },
    { 2.126, 0.402, 3.458, 2.800 },
};
static const double paper_t3[NMETHODS][2] = {
    { 43.736, 42.933 },
    { 7.040, 5.307 },
    { 3.902, 3.921 },
    { 3.666, 4.160 },
};

/* Default grids of scales per step rule. */
static const double grid_x0[] = { 0.03, 0.1, 0.3, 1.0, 3.0, 10.0 };
static const double grid_score[] = { 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0 };
static const double grid_normalized[] = { 0.1, 0.3, 1.0, 3.0, 10.0, 30.0 };

/* ---- options ---- */

typedef struct config {
    int32_t seeds;      /* evaluation samples per task, headline (the paper's 10 seeds) */
    int32_t large;      /* evaluation samples per task, large estimate (0: off) */
    int32_t tune;       /* tuning samples per task */
    int32_t steps;
    uint64_t seed;      /* evaluation seed; tuning uses seed + 1 */
    double scales[MAX_SCALES];
    int nscales;
    int scales_given;
    lgd_step_rule rule;
    const char *rule_name;
    int select_plausible; /* --select plausible (default) or objective */
    int32_t threads;
    const char *out;
    int quiet;
} config;

void lgd_trajectory_usage(FILE *f)
{
    fprintf(f,
            "usage: lgd trajectory [options]\n"
            "\n"
            "The LGD paper's controllable trajectory synthesis (Sec. 6.3, Tables 2 and 3) on\n"
            "liblgd's trajectory prior: 64 frames of root velocities (dim 128, 24 components),\n"
            "positions 0.1 * cumsum(v). Path following to straight lines at 20, 110 and 235\n"
            "degrees (Table 2) and obstacle avoidance in two layouts whose straight path\n"
            "collides (Table 3); Baseline, DPS, LGD-MC n = 10 and n = 100; DDIM (eta 0) on the\n"
            "Karras grid 80 -> 0.002. Each guided method's scale is tuned on one fixed grid (the\n"
            "same for all) by its mean Objective on tuning samples, then evaluated on separate\n"
            "samples. Prints the tables beside the paper's and writes CSV files and SVG figures.\n"
            "\n"
            "options (--opt VALUE or --opt=VALUE):\n"
            "  --seeds N      evaluation samples per task, the paper's protocol (default 10)\n"
            "  --large N      evaluation samples per task for a stable estimate (default 100;\n"
            "                 0: off); the first --seeds of them are the paper-protocol ones\n"
            "  --tune N       tuning samples per task, from another seed (default 20)\n"
            "  --steps N      DDIM steps (default 100)\n"
            "  --seed S       evaluation seed (default 0); tuning uses S + 1\n"
            "  --rule R       step rule: x0 (default; lambda = scale), score (lambda =\n"
            "                 scale * sigma^2) or normalized (lambda = scale / sqrt(loss))\n"
            "  --scales LIST  the grid of scales, comma-separated, the same for every guided\n"
            "                 method (default for x0: 0.03,0.1,0.3,1,3,10; score:\n"
            "                 0.0003,0.001,...,1; normalized: 0.1,0.3,...,30)\n"
            "  --select S     how a method's scale is chosen per task family on the tuning\n"
            "                 samples: objective (default; the lowest mean Objective among the\n"
            "                 scales without failed (non-finite) samples) or plausible (the\n"
            "                 same among the scales whose samples are also all plausible: no\n"
            "                 frame faster than 3, three times the prior's speed)\n"
            "  --threads N    CPU threads (default 0: OpenMP's default)\n"
            "  --out DIR      output directory, created if missing (default\n"
            "                 lgd-trajectory-out)\n"
            "  --quiet        no progress indicator\n"
            "  --help         this message\n"
            "\n"
            "Output files: grid.csv, results.csv, trajectories.csv, fig_path.svg,\n"
            "fig_obstacle.svg.\n");
}

/* Parses "0.1,1,10" (positive finite numbers) into cfg->scales; 0 or -1. */
static int parse_scales(const char *s, config *cfg)
{
    int count = 0;
    while (s && *s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char buf[64], *end = NULL;
        if (len == 0 || len >= sizeof buf || count == MAX_SCALES)
            return -1;
        memcpy(buf, s, len);
        buf[len] = '\0';
        errno = 0;
        double v = strtod(buf, &end);
        if (errno || *end || !(v > 0.0) || !isfinite(v) || v > 1e30)
            return -1;
        cfg->scales[count++] = v;
        s = comma ? comma + 1 : NULL;
        if (comma && !*s)
            return -1;
    }
    if (count == 0)
        return -1;
    cfg->nscales = count;
    return 0;
}

/* 0: run; 1: --help printed; 2: bad usage (message printed). */
static int parse_args(int argc, char **argv, config *cfg)
{
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        long long n;
        int m;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            lgd_trajectory_usage(stdout);
            return 1;
        } else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
            cfg->quiet = 1;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "seeds", &v))) {
            if (m < 0 || tool_parse_int(v, 1, 100000, &n))
                return m < 0 ? 2 : lgd_tool_usage_error(CMD, "--seeds needs an integer in [1, 100000]");
            cfg->seeds = (int32_t)n;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "large", &v))) {
            if (m < 0 || tool_parse_int(v, 0, 100000, &n))
                return m < 0 ? 2 : lgd_tool_usage_error(CMD, "--large needs an integer in [0, 100000]");
            cfg->large = (int32_t)n;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "tune", &v))) {
            if (m < 0 || tool_parse_int(v, 1, 100000, &n))
                return m < 0 ? 2 : lgd_tool_usage_error(CMD, "--tune needs an integer in [1, 100000]");
            cfg->tune = (int32_t)n;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "steps", &v))) {
            if (m < 0 || tool_parse_int(v, 1, 100000, &n))
                return m < 0 ? 2 : lgd_tool_usage_error(CMD, "--steps needs an integer in [1, 100000]");
            cfg->steps = (int32_t)n;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "seed", &v))) {
            if (m < 0 || tool_parse_u64(v, &cfg->seed) || cfg->seed == UINT64_MAX)
                return m < 0 ? 2 : lgd_tool_usage_error(CMD, "--seed needs a non-negative integer "
                                                             "below 2^64 - 1");
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "threads", &v))) {
            if (m < 0 || tool_parse_int(v, 0, 4096, &n))
                return m < 0 ? 2 : lgd_tool_usage_error(CMD, "--threads needs an integer in [0, 4096]");
            cfg->threads = (int32_t)n;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "scales", &v))) {
            if (m < 0 || parse_scales(v, cfg))
                return m < 0 ? 2
                             : lgd_tool_usage_error(CMD, "--scales needs 1 to %d positive numbers, "
                                                         "comma-separated (e.g. 0.1,1,10)",
                                                    MAX_SCALES);
            cfg->scales_given = 1;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "rule", &v))) {
            if (m < 0)
                return 2;
            if (!strcmp(v, "x0"))
                cfg->rule = LGD_STEP_X0;
            else if (!strcmp(v, "score"))
                cfg->rule = LGD_STEP_SCORE;
            else if (!strcmp(v, "normalized"))
                cfg->rule = LGD_STEP_NORMALIZED;
            else
                return lgd_tool_usage_error(CMD, "unknown step rule '%s' (x0, score, normalized)", v);
            cfg->rule_name = v;
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "select", &v))) {
            if (m < 0)
                return 2;
            if (!strcmp(v, "plausible"))
                cfg->select_plausible = 1;
            else if (!strcmp(v, "objective"))
                cfg->select_plausible = 0;
            else
                return lgd_tool_usage_error(CMD, "unknown selection rule '%s' (plausible, "
                                                 "objective)", v);
        } else if ((m = lgd_tool_option(CMD, argc, argv, &i, "out", &v))) {
            if (m < 0)
                return 2;
            if (!*v)
                return lgd_tool_usage_error(CMD, "--out needs a directory");
            cfg->out = v;
        } else {
            return lgd_tool_usage_error(CMD, "unknown argument '%s'", argv[i]);
        }
    }
    if (!cfg->scales_given) {
        const double *g = cfg->rule == LGD_STEP_X0 ? grid_x0
                          : cfg->rule == LGD_STEP_SCORE ? grid_score : grid_normalized;
        size_t n = cfg->rule == LGD_STEP_X0 ? sizeof grid_x0 / sizeof grid_x0[0]
                   : cfg->rule == LGD_STEP_SCORE ? sizeof grid_score / sizeof grid_score[0]
                                                 : sizeof grid_normalized / sizeof grid_normalized[0];
        for (size_t k = 0; k < n; k++)
            cfg->scales[k] = g[k];
        cfg->nscales = (int)n;
    }
    return 0;
}

/* ---- the problem: prior, tasks and losses ---- */

typedef struct task {
    const task_def *def;
    float path[FRAMES * 2]; /* path tasks: the target path */
    double target[2];       /* the goal (obstacle tasks) or the path's end y_T */
    float obs[MAX_OBS * 3]; /* obstacle tasks: centre x, centre y, radius */
    int nobs;
    lgd_loss *loss;
} task;

typedef struct problem {
    lgd_context *ctx;
    lgd_model *prior;
    task tasks[NTASKS];
} problem;

static int problem_create(problem *pb, const config *cfg)
{
    const char *cerr = NULL;
    lgd_context_options co = LGD_CONTEXT_OPTIONS_INIT;
    co.backend = LGD_BACKEND_CPU;
    co.num_threads = cfg->threads;
    lgd_status st = lgd_context_create(&co, &pb->ctx, &cerr);
    if (st != LGD_OK) {
        fprintf(stderr, "lgd " CMD ": lgd_context_create failed: %s (%d): %s\n",
                lgd_status_string(st), (int)st, cerr ? cerr : "");
        return 1;
    }
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
        const task_def *d = &task_defs[k];
        t->def = d;
        double a = d->angle_deg * PI / 180.0, ux = cos(a), uy = sin(a);
        if (d->fam == FAM_PATH) {
            /* the prior's typical walk: 0.1 per frame, p_t = 0.1 (t + 1) u */
            for (int f = 0; f < FRAMES; f++) {
                t->path[2 * f] = (float)(VELOCITY_SCALE * (f + 1) * ux);
                t->path[2 * f + 1] = (float)(VELOCITY_SCALE * (f + 1) * uy);
            }
            t->target[0] = t->path[2 * (FRAMES - 1)];
            t->target[1] = t->path[2 * (FRAMES - 1) + 1];
            t->nobs = 0;
            if (CK(ctx, lgd_loss_create_path(ctx, DIM, &lo, t->path, 1, &t->loss)))
                return 1;
        } else {
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
            if (CK(ctx, lgd_loss_create_obstacle_avoidance(ctx, DIM, &lo, goal, 1, t->obs,
                                                           t->nobs, NULL, &t->loss)))
                return 1;
        }
    }
    return 0;
}

static void problem_destroy(problem *pb)
{
    for (int k = 0; k < NTASKS; k++)
        lgd_loss_destroy(pb->tasks[k].loss);
    lgd_model_destroy(pb->prior);
    lgd_context_destroy(pb->ctx);
}

/* ---- sampling one batch ---- */

/* Per-sample outcome. */
typedef struct outcome {
    int failed;        /* the run produced non-finite values for this row */
    int implausible;   /* finite, but some frame is faster than SPEED_LIMIT */
    int collided;      /* entered an obstacle */
    double objective;  /* loss / frames (+infinity when failed) */
    double final_dist; /* |p_T - target| */
    double max_speed;  /* max_t |v_t| */
    double nll;        /* -log p0(x0) / frames under the prior (exact) */
} outcome;

/* A batch's samples and outcomes. */
typedef struct batch {
    int64_t rows;
    float *x;     /* [rows][DIM] velocities (NaN rows when failed) */
    outcome *o;   /* [rows] */
    double seconds;
} batch;

static void batch_free(batch *b)
{
    free(b->x);
    free(b->o);
    b->x = NULL;
    b->o = NULL;
}

typedef struct run_progress {
    progress *p;
    double units;
    char detail[128];
} run_progress;

static int on_step(void *user, int32_t step, int32_t num_steps, float sigma,
                   const lgd_guidance_report *report)
{
    (void)sigma;
    (void)report;
    run_progress *rp = user;
    progress_show(rp->p, rp->units * (double)step / (double)num_steps, rp->detail);
    return 0;
}

static double path_pos(const float *v, int f, int axis, double *acc)
{
    *acc += VELOCITY_SCALE * (double)v[2 * f + axis];
    return *acc;
}

/* Outcomes of the finite rows (collisions, final distance, divergence) from the positions,
 * and the objective from the library's loss. */
static int evaluate(problem *pb, const task *t, batch *b)
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
        double ax = 0.0, ay = 0.0;
        o->max_speed = 0.0;
        for (int f = 0; f < FRAMES; f++) {
            double px = path_pos(v, f, 0, &ax), py = path_pos(v, f, 1, &ay);
            o->max_speed = fmax(o->max_speed, hypot(v[2 * f], v[2 * f + 1]));
            for (int k = 0; k < t->nobs; k++)
                if (hypot(px - t->obs[3 * k], py - t->obs[3 * k + 1]) < t->obs[3 * k + 2])
                    o->collided = 1;
        }
        o->implausible = !(o->max_speed <= SPEED_LIMIT);
        o->final_dist = hypot(ax - t->target[0], ay - t->target[1]);
        /* the loss and the prior density row by row: a huge sample may overflow them in
         * float */
        float lv = 0.0f, dv = 0.0f;
        lgd_status st;
        if (CK(ctx, lgd_tensor_upload(x1, v, DIM)))
            goto done;
        lgd_context_clear_error(ctx);
        st = lgd_loss_eval(t->loss, x1, l1, NULL);
        if (st == LGD_ERR_NON_FINITE) {
            lv = INFINITY;
        } else if (CK(ctx, st) || CK(ctx, lgd_tensor_download(l1, &lv, 1))) {
            goto done;
        }
        o->objective = (double)lv / FRAMES;
        lgd_context_clear_error(ctx);
        st = lgd_model_log_density(pb->prior, x1, 0.0f, d1);
        if (st == LGD_ERR_NON_FINITE) {
            dv = -INFINITY;
        } else if (CK(ctx, st) || CK(ctx, lgd_tensor_download(d1, &dv, 1))) {
            goto done;
        }
        o->nll = -(double)dv / FRAMES;
    }
    rc = 0;
done:
    lgd_tensor_destroy(x1);
    lgd_tensor_destroy(l1);
    lgd_tensor_destroy(d1);
    return rc;
}

/*
 * Samples `rows` rows of task t with method m at `scale`: seed, rows numbered from
 * first_row. A run that fails with LGD_ERR_NON_FINITE is reported and rerun row by row;
 * rows that fail alone are marked failed. Any other error: 1.
 */
static int run_batch(const config *cfg, problem *pb, const method_def *m, double scale, task *t,
                     int64_t rows, uint64_t seed, uint64_t first_row, progress *pr, batch *b)
{
    lgd_context *ctx = pb->ctx;
    lgd_guidance *g = NULL;
    lgd_sampler *s = NULL;
    lgd_tensor *x = NULL, *x1 = NULL;
    int rc = 1;
    memset(b, 0, sizeof *b);
    b->rows = rows;
    b->x = malloc((size_t)rows * DIM * sizeof *b->x);
    b->o = calloc((size_t)rows, sizeof *b->o);
    if (!b->x || !b->o) {
        fprintf(stderr, "lgd " CMD ": out of memory\n");
        goto done;
    }
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = m->kind;
    if (m->kind == LGD_GUIDANCE_MC)
        go.n_samples = m->n;
    go.sigma_data = 1.0f; /* r(sigma) = sigma / sqrt(1 + sigma^2), the paper's App. B.3 */
    go.step_rule = cfg->rule;
    go.scale = (float)scale;
    go.seed = seed;
    if (CK(ctx, lgd_guidance_create(ctx, pb->prior, m->kind == LGD_GUIDANCE_NONE ? NULL : t->loss,
                                    &go, &g)))
        goto done;
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_DDIM;
    so.eta = 0.0f;
    so.steps = cfg->steps;
    so.schedule = LGD_SCHEDULE_KARRAS; /* defaults: 80 -> 0.002, rho 7 */
    if (CK(ctx, lgd_sampler_create(g, &so, &s)) ||
        CK(ctx, lgd_tensor_create_2d(ctx, rows, DIM, &x)))
        goto done;
    run_progress rp = { pr, m->cost * cfg->steps * (double)rows, "" };
    if (m->kind == LGD_GUIDANCE_NONE)
        snprintf(rp.detail, sizeof rp.detail, "%s, %s", m->name, t->def->label);
    else
        snprintf(rp.detail, sizeof rp.detail, "%s, scale %g, %s", m->name, scale, t->def->label);
    double t0 = tool_now_ms();
    lgd_context_clear_error(ctx);
    lgd_status st = lgd_sampler_run(s, x, seed, first_row, on_step, &rp);
    if (st == LGD_OK) {
        if (CK(ctx, lgd_context_synchronize(ctx)) ||
            CK(ctx, lgd_tensor_download(x, b->x, (size_t)rows * DIM)))
            goto done;
    } else if (st == LGD_ERR_NON_FINITE) {
        /* Diverged: say so, then find the rows that diverge by running each alone (rows are
         * keyed by their index, so a row alone is the same sample as in the batch). */
        fprintf(stderr, "lgd " CMD ": note: %s at scale %g on %s (seed %" PRIu64 ", %" PRId64
                        " rows) failed: %s: %s; rerunning the rows one at a time\n",
                m->name, scale, t->def->label, seed, rows, lgd_status_string(st),
                lgd_context_last_error(ctx));
        if (CK(ctx, lgd_tensor_create_2d(ctx, 1, DIM, &x1)))
            goto done;
        for (int64_t r = 0; r < rows; r++) {
            lgd_context_clear_error(ctx);
            st = lgd_sampler_run(s, x1, seed, first_row + (uint64_t)r, NULL, NULL);
            if (st == LGD_ERR_NON_FINITE) {
                b->o[r].failed = 1;
                for (int j = 0; j < DIM; j++)
                    b->x[r * DIM + j] = NAN;
            } else if (CK(ctx, st) ||
                       CK(ctx, lgd_tensor_download(x1, b->x + r * DIM, DIM))) {
                goto done;
            }
        }
    } else {
        CK(ctx, st);
        goto done;
    }
    b->seconds = (tool_now_ms() - t0) / 1e3;
    progress_advance(pr, rp.units);
    if (evaluate(pb, t, b))
        goto done;
    rc = 0;
done:
    lgd_tensor_destroy(x);
    lgd_tensor_destroy(x1);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
    return rc;
}

/* ---- metrics ---- */

typedef struct metrics {
    int64_t n;          /* samples */
    int64_t failed;     /* non-finite */
    int64_t implausible; /* finite but faster than SPEED_LIMIT somewhere */
    double obj_mean, obj_sd, obj_median; /* over the finite samples */
    double collision;   /* rate over the finite samples */
    double fd_mean, fd_sd, fd_median;
    double nll_median;  /* median of -log p0(x0) / frames */
    double speed_median, speed_max; /* of the samples' top speeds */
    double success;     /* reached (final distance < 1), no collision, plausible; over all
                           samples */
    double seconds;
} metrics;

/* Metrics of outcomes o[0..n-1] (several batches are combined by calling with a list). */
static int compute_metrics(const outcome *const *os, const int64_t *counts, int nb, metrics *mt)
{
    int64_t total = 0;
    for (int i = 0; i < nb; i++)
        total += counts[i];
    memset(mt, 0, sizeof *mt);
    mt->n = total;
    double *obj = malloc((size_t)(total ? total : 1) * sizeof *obj);
    double *fd = malloc((size_t)(total ? total : 1) * sizeof *fd);
    double *nll = malloc((size_t)(total ? total : 1) * sizeof *nll);
    double *spd = malloc((size_t)(total ? total : 1) * sizeof *spd);
    if (!obj || !fd || !nll || !spd) {
        free(obj);
        free(fd);
        free(nll);
        free(spd);
        fprintf(stderr, "lgd " CMD ": out of memory\n");
        return 1;
    }
    int64_t k = 0, coll = 0, succ = 0;
    for (int i = 0; i < nb; i++)
        for (int64_t r = 0; r < counts[i]; r++) {
            const outcome *o = &os[i][r];
            if (o->failed) {
                mt->failed++;
                continue;
            }
            mt->implausible += o->implausible;
            coll += o->collided;
            succ += !o->collided && !o->implausible && o->final_dist < REACH_RADIUS;
            obj[k] = o->objective;
            fd[k] = o->final_dist;
            nll[k] = o->nll;
            spd[k] = o->max_speed;
            k++;
        }
    const double half = 0.5;
    if (k > 0) {
        stats_mean_sd(obj, k, &mt->obj_mean, &mt->obj_sd);
        stats_mean_sd(fd, k, &mt->fd_mean, &mt->fd_sd);
        stats_quantiles(obj, k, &half, 1, &mt->obj_median);
        stats_quantiles(fd, k, &half, 1, &mt->fd_median);
        stats_quantiles(nll, k, &half, 1, &mt->nll_median);
        const double qs[2] = { 0.5, 1.0 };
        double qv[2];
        stats_quantiles(spd, k, qs, 2, qv);
        mt->speed_median = qv[0];
        mt->speed_max = qv[1];
        mt->collision = (double)coll / (double)k;
    } else {
        mt->obj_mean = mt->obj_sd = mt->obj_median = NAN;
        mt->fd_mean = mt->fd_sd = mt->fd_median = NAN;
        mt->nll_median = mt->speed_median = mt->speed_max = NAN;
        mt->collision = NAN;
    }
    mt->success = total ? (double)succ / (double)total : NAN;
    free(obj);
    free(fd);
    free(nll);
    free(spd);
    return 0;
}

/* ---- output helpers ---- */


/* ---- 1. tuning ---- */

/* Grid results: per method, scale and task (the baseline has one "scale", index 0). */
typedef struct grid {
    metrics m[NMETHODS][MAX_SCALES][NTASKS];
    metrics fam[NMETHODS][MAX_SCALES][NFAM]; /* all tasks of a family together */
    int eligible[NMETHODS][MAX_SCALES][NFAM];
    int best[NMETHODS][NFAM];
    double seconds[NMETHODS];
} grid;

static int nscales_of(const config *cfg, const method_def *m)
{
    return m->kind == LGD_GUIDANCE_NONE ? 1 : cfg->nscales;
}

static double scale_of(const config *cfg, const method_def *m, int si)
{
    return m->kind == LGD_GUIDANCE_NONE ? 0.0 : cfg->scales[si];
}

/* Metrics of task k's first `rows` outcomes, and of every family's tasks together. */
static int task_and_family_metrics(const batch *bs, int64_t rows, metrics *task_m,
                                   metrics *fam_m)
{
    for (int k = 0; k < NTASKS; k++) {
        const outcome *os = bs[k].o;
        if (compute_metrics(&os, &rows, 1, &task_m[k]))
            return 1;
        task_m[k].seconds = bs[k].seconds;
    }
    for (int fam = 0; fam < NFAM; fam++) {
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

/*
 * The selection rule, per method and family: among the scales whose tuning samples are all
 * finite (and, with --select plausible, all plausible: no frame faster than SPEED_LIMIT),
 * the one with the lowest mean Objective; ties keep the smaller scale. When no scale is
 * eligible, the one with the fewest failed (then implausible) samples, then the lowest
 * Objective.
 */
static void select_scales(const config *cfg, grid *gr, int mi)
{
    const method_def *m = &method_defs[mi];
    for (int fam = 0; fam < NFAM; fam++) {
        int best = -1;
        for (int si = 0; si < nscales_of(cfg, m); si++) {
            const metrics *mt = &gr->fam[mi][si][fam];
            gr->eligible[mi][si][fam] =
                mt->failed == 0 && (!cfg->select_plausible || mt->implausible == 0);
            if (gr->eligible[mi][si][fam] &&
                (best < 0 || mt->obj_mean < gr->fam[mi][best][fam].obj_mean))
                best = si;
        }
        if (best < 0) {
            best = 0;
            for (int si = 1; si < nscales_of(cfg, m); si++) {
                const metrics *a = &gr->fam[mi][si][fam], *b = &gr->fam[mi][best][fam];
                if (a->failed < b->failed ||
                    (a->failed == b->failed &&
                     (a->implausible < b->implausible ||
                      (a->implausible == b->implausible &&
                       (a->obj_mean < b->obj_mean || (isnan(b->obj_mean) && !isnan(a->obj_mean)))))))
                    best = si;
            }
        }
        gr->best[mi][fam] = best;
    }
}

static int run_tuning(const config *cfg, problem *pb, grid *gr, progress *pr)
{
    const uint64_t seed = cfg->seed + 1;
    for (int mi = 0; mi < NMETHODS; mi++) {
        const method_def *m = &method_defs[mi];
        for (int si = 0; si < nscales_of(cfg, m); si++) {
            batch bs[NTASKS];
            memset(bs, 0, sizeof bs);
            int bad = 0;
            for (int k = 0; k < NTASKS && !bad; k++) {
                bad = run_batch(cfg, pb, m, scale_of(cfg, m, si), &pb->tasks[k], cfg->tune, seed,
                                (uint64_t)k * TASK_ROWS, pr, &bs[k]);
                if (!bad)
                    gr->seconds[mi] += bs[k].seconds;
            }
            if (!bad)
                bad = task_and_family_metrics(bs, cfg->tune, gr->m[mi][si], gr->fam[mi][si]);
            for (int k = 0; k < NTASKS; k++)
                batch_free(&bs[k]);
            if (bad)
                return 1;
        }
        select_scales(cfg, gr, mi);
    }
    return 0;
}

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

static int write_grid_csv(const config *cfg, const grid *gr)
{
    char path[4096];
    FILE *f = lgd_tool_open_out(CMD, cfg->out, "grid.csv", path, sizeof path);
    if (!f)
        return 1;
    fprintf(f, "method,family,task,scale,selected," METRIC_HEADER "\n");
    for (int mi = 0; mi < NMETHODS; mi++) {
        const method_def *m = &method_defs[mi];
        for (int si = 0; si < nscales_of(cfg, m); si++) {
            for (int k = 0; k < NTASKS; k++) {
                int fam = task_defs[k].fam;
                fprintf(f, "%s,%s,%s,%.9g,%d,", m->key, family_key[fam], task_defs[k].key,
                        scale_of(cfg, m, si), gr->best[mi][fam] == si);
                write_metrics(f, &gr->m[mi][si][k]);
                fputc('\n', f);
            }
            for (int fam = 0; fam < NFAM; fam++) {
                fprintf(f, "%s,%s,all,%.9g,%d,", m->key, family_key[fam], scale_of(cfg, m, si),
                        gr->best[mi][fam] == si);
                write_metrics(f, &gr->fam[mi][si][fam]);
                fputc('\n', f);
            }
        }
    }
    return lgd_tool_close_out(CMD, f, path);
}

static void print_grid(const config *cfg, const grid *gr)
{
    printf("Tuning (seed %" PRIu64 ", %d samples per task), per family and scale: mean "
           "Objective; (f,i) = failed (non-finite) and implausible (a frame faster than %g) "
           "samples; * = selected, x = not eligible (%s)\n",
           cfg->seed + 1, (int)cfg->tune, SPEED_LIMIT,
           cfg->select_plausible ? "--select plausible: a failed or implausible sample"
                                 : "--select objective: a failed sample");
    for (int fam = 0; fam < NFAM; fam++) {
        for (int block = 0; block < 2; block++) {
            printf("%-9s %-13s", block == 0 ? family_key[fam] : "", block == 0 ? "Objective" : "success");
            for (int si = 0; si < cfg->nscales; si++)
                printf(" %15g ", cfg->scales[si]);
            printf("\n");
            for (int mi = 0; mi < NMETHODS; mi++) {
                const method_def *m = &method_defs[mi];
                printf("%-9s %-13s", "", m->name);
                for (int si = 0; si < nscales_of(cfg, m); si++) {
                    const metrics *mt = &gr->fam[mi][si][fam];
                    char cell[48];
                    if (block == 1)
                        snprintf(cell, sizeof cell, "%.2f", mt->success);
                    else if (mt->failed || mt->implausible)
                        snprintf(cell, sizeof cell, "%.4g (%" PRId64 ",%" PRId64 ")",
                                 mt->obj_mean, mt->failed, mt->implausible);
                    else
                        snprintf(cell, sizeof cell, "%.4g", mt->obj_mean);
                    char mark = m->kind == LGD_GUIDANCE_NONE ? ' '
                                : gr->best[mi][fam] == si   ? '*'
                                : !gr->eligible[mi][si][fam] ? 'x' : ' ';
                    printf(" %15s%c", cell, mark);
                }
                if (m->kind == LGD_GUIDANCE_NONE)
                    printf("   (no guidance: one run)");
                printf("\n");
            }
        }
    }
    printf("(success: final position within %g of the target, no collision, plausible)\n\n",
           REACH_RADIUS);
}

/* ---- 2. evaluation ---- */

typedef struct evaluation {
    int64_t rows;            /* max(seeds, large) */
    batch b[NMETHODS][NTASKS];
    double seconds[NMETHODS];
    double scale[NMETHODS][NFAM];
    /* [protocol 0: the first --seeds rows, 1: the first --large rows] */
    metrics task_m[2][NMETHODS][NTASKS];
    metrics fam_m[2][NMETHODS][NFAM];
} evaluation;

static int run_evaluation(const config *cfg, problem *pb, const grid *gr, evaluation *ev,
                          progress *pr)
{
    ev->rows = cfg->large > cfg->seeds ? cfg->large : cfg->seeds;
    for (int mi = 0; mi < NMETHODS; mi++) {
        const method_def *m = &method_defs[mi];
        for (int fam = 0; fam < NFAM; fam++)
            ev->scale[mi][fam] = scale_of(cfg, m, gr->best[mi][fam]);
        for (int k = 0; k < NTASKS; k++) {
            if (run_batch(cfg, pb, m, ev->scale[mi][task_defs[k].fam], &pb->tasks[k], ev->rows,
                          cfg->seed, (uint64_t)k * TASK_ROWS, pr, &ev->b[mi][k]))
                return 1;
            ev->seconds[mi] += ev->b[mi][k].seconds;
        }
    }
    for (int p = 0; p < 2; p++) {
        if (p == 1 && cfg->large == 0)
            break;
        int64_t rows = p == 0 ? cfg->seeds : cfg->large;
        for (int mi = 0; mi < NMETHODS; mi++)
            if (task_and_family_metrics(ev->b[mi], rows, ev->task_m[p][mi], ev->fam_m[p][mi]))
                return 1;
    }
    return 0;
}

static void evaluation_free(evaluation *ev)
{
    for (int mi = 0; mi < NMETHODS; mi++)
        for (int k = 0; k < NTASKS; k++)
            batch_free(&ev->b[mi][k]);
}

static int write_results_csv(const config *cfg, const evaluation *ev)
{
    char path[4096];
    FILE *f = lgd_tool_open_out(CMD, cfg->out, "results.csv", path, sizeof path);
    if (!f)
        return 1;
    fprintf(f, "protocol,method,family,task,scale," METRIC_HEADER "\n");
    for (int p = 0; p < 2; p++) {
        if (p == 1 && cfg->large == 0)
            break;
        const char *proto = p == 0 ? "paper" : "large";
        for (int mi = 0; mi < NMETHODS; mi++) {
            const method_def *m = &method_defs[mi];
            for (int k = 0; k < NTASKS; k++) {
                int fam = task_defs[k].fam;
                fprintf(f, "%s,%s,%s,%s,%.9g,", proto, m->key, family_key[fam], task_defs[k].key,
                        ev->scale[mi][fam]);
                write_metrics(f, &ev->task_m[p][mi][k]);
                fputc('\n', f);
            }
            for (int fam = 0; fam < NFAM; fam++) {
                fprintf(f, "%s,%s,%s,all,%.9g,", proto, m->key, family_key[fam],
                        ev->scale[mi][fam]);
                write_metrics(f, &ev->fam_m[p][mi][fam]);
                fputc('\n', f);
            }
        }
    }
    return lgd_tool_close_out(CMD, f, path);
}

static int write_trajectories_csv(const config *cfg, const evaluation *ev)
{
    char path[4096];
    FILE *f = lgd_tool_open_out(CMD, cfg->out, "trajectories.csv", path, sizeof path);
    if (!f)
        return 1;
    fprintf(f, "method,task,sample,frame,x,y\n");
    for (int mi = 0; mi < NMETHODS; mi++)
        for (int k = 0; k < NTASKS; k++) {
            const batch *b = &ev->b[mi][k];
            for (int64_t r = 0; r < b->rows; r++) {
                if (b->o[r].failed)
                    continue;
                double ax = 0.0, ay = 0.0;
                const float *v = b->x + r * DIM;
                for (int fr = 0; fr < FRAMES; fr++) {
                    double px = path_pos(v, fr, 0, &ax), py = path_pos(v, fr, 1, &ay);
                    fprintf(f, "%s,%s,%" PRId64 ",%d,%.6g,%.6g\n", method_defs[mi].key,
                            task_defs[k].key, r, fr, px, py);
                }
            }
        }
    return lgd_tool_close_out(CMD, f, path);
}

/* ---- figures ---- */

#define VIEW 7.5 /* the figures show [-VIEW, VIEW]^2: every path of a non-diverged walk */
/* Square plot areas: the panel less svg_plot's margins (70 + 14 wide, 26 + 44 high). */
#define PANEL_W 404.0
#define PANEL_H 390.0

/* A path of task k, row r of b: the origin, then p_0 .. p_{T-1}. */
static int add_path(svg_figure *fig, int p, const float *v, const char *color, double width,
                    const char *label)
{
    double xs[FRAMES + 1], ys[FRAMES + 1], ax = 0.0, ay = 0.0;
    xs[0] = ys[0] = 0.0;
    for (int f = 0; f < FRAMES; f++) {
        xs[f + 1] = path_pos(v, f, 0, &ax);
        ys[f + 1] = path_pos(v, f, 1, &ay);
    }
    return svg_panel_line(fig, p, xs, ys, FRAMES + 1, color, width, SVG_SOLID, label);
}

static int add_circle(svg_figure *fig, int p, double cx, double cy, double r, const char *color,
                      double width, svg_dash dash, const char *label)
{
    enum { N = 73 };
    double xs[N], ys[N];
    for (int i = 0; i < N; i++) {
        double a = 2.0 * PI * i / (N - 1);
        xs[i] = cx + r * cos(a);
        ys[i] = cy + r * sin(a);
    }
    return svg_panel_line(fig, p, xs, ys, N, color, width, dash, label);
}

/* A cross marker of half-size h. */
static int add_cross(svg_figure *fig, int p, double cx, double cy, double h, const char *color,
                     const char *label)
{
    double x1[2] = { cx - h, cx + h }, y1[2] = { cy - h, cy + h };
    double x2[2] = { cx - h, cx + h }, y2[2] = { cy + h, cy - h };
    return svg_panel_line(fig, p, x1, y1, 2, color, 3.0, SVG_SOLID, label) ||
           svg_panel_line(fig, p, x2, y2, 2, color, 3.0, SVG_SOLID, NULL);
}

static int panel_frame(svg_figure *fig, int p, const char *title)
{
    return svg_panel_axes(fig, p, title, "x", "y") || svg_panel_xrange(fig, p, -VIEW, VIEW) ||
           svg_panel_yrange(fig, p, -VIEW, VIEW) ||
           add_cross(fig, p, 0.0, 0.0, 0.12, "#000000", NULL); /* the start */
}

static int write_figures(const config *cfg, const evaluation *ev, const problem *pb)
{
    int rc = 1;
    int64_t shown = cfg->seeds; /* the paper-protocol samples */
    char title[160], lab[64], note[96];
    snprintf(title, sizeof title,
             "Path following (Table 2): %d samples per direction; dashed: the target paths",
             (int)shown);
    svg_figure *fp = svg_figure_create(1, NMETHODS, PANEL_W, PANEL_H, title);
    snprintf(title, sizeof title,
             "Obstacle avoidance (Table 3): %d samples per layout; circles: obstacles (r = 1), "
             "x: goal; long straight segments: jumps (implausible)",
             (int)shown);
    svg_figure *fo = svg_figure_create(2, NMETHODS, PANEL_W, PANEL_H, title);
    if (!fp || !fo) {
        fprintf(stderr, "lgd " CMD ": out of memory\n");
        goto done;
    }
    for (int mi = 0; mi < NMETHODS; mi++) {
        const method_def *m = &method_defs[mi];
        /* path following: the three directions in one panel */
        if (m->kind == LGD_GUIDANCE_NONE)
            snprintf(lab, sizeof lab, "%s", m->name);
        else
            snprintf(lab, sizeof lab, "%s, scale %g", m->name, ev->scale[mi][FAM_PATH]);
        if (panel_frame(fp, mi, lab) || svg_panel_legend(fp, mi, SVG_BOTTOM_RIGHT))
            goto done;
        int first = 1;
        for (int k = 0; k < NTASKS; k++) {
            if (task_defs[k].fam != FAM_PATH)
                continue;
            const batch *b = &ev->b[mi][k];
            for (int64_t r = 0; r < shown; r++) {
                if (b->o[r].failed)
                    continue;
                if (add_path(fp, mi, b->x + r * DIM, m->color, 1.1, first ? "samples" : NULL))
                    goto done;
                first = 0;
            }
        }
        first = 1;
        for (int k = 0; k < NTASKS; k++) {
            if (task_defs[k].fam != FAM_PATH)
                continue;
            double xs[FRAMES + 1], ys[FRAMES + 1];
            xs[0] = ys[0] = 0.0;
            for (int f = 0; f < FRAMES; f++) {
                xs[f + 1] = pb->tasks[k].path[2 * f];
                ys[f + 1] = pb->tasks[k].path[2 * f + 1];
            }
            if (svg_panel_line(fp, mi, xs, ys, FRAMES + 1, "#000000", 2.0, SVG_DASHED,
                               first ? "target paths" : NULL))
                goto done;
            first = 0;
        }
        snprintf(note, sizeof note, "Objective %.3g (mean of %d)",
                 ev->fam_m[0][mi][FAM_PATH].obj_mean, (int)ev->fam_m[0][mi][FAM_PATH].n);
        if (svg_panel_note(fp, mi, note))
            goto done;

        /* obstacle avoidance: one row per layout */
        int row = 0;
        for (int k = 0; k < NTASKS; k++) {
            if (task_defs[k].fam != FAM_OBSTACLE)
                continue;
            const task *t = &pb->tasks[k];
            const batch *b = &ev->b[mi][k];
            const metrics *mt = &ev->task_m[0][mi][k];
            int p = row * NMETHODS + mi;
            if (m->kind == LGD_GUIDANCE_NONE)
                snprintf(lab, sizeof lab, "%s: %s", t->def->label, m->name);
            else
                snprintf(lab, sizeof lab, "%s: %s, scale %g", t->def->label, m->name,
                         ev->scale[mi][FAM_OBSTACLE]);
            if (panel_frame(fo, p, lab) || svg_panel_legend(fo, p, SVG_BOTTOM_RIGHT))
                goto done;
            double sx[2] = { 0.0, t->target[0] }, sy[2] = { 0.0, t->target[1] };
            if (svg_panel_line(fo, p, sx, sy, 2, "#999999", 1.2, SVG_DOTTED, "straight path"))
                goto done;
            int first_s = 1;
            for (int64_t r = 0; r < shown; r++) {
                if (b->o[r].failed)
                    continue;
                if (add_path(fo, p, b->x + r * DIM, m->color, 1.1, first_s ? "samples" : NULL))
                    goto done;
                first_s = 0;
            }
            for (int o = 0; o < t->nobs; o++)
                if (add_circle(fo, p, t->obs[3 * o], t->obs[3 * o + 1], t->obs[3 * o + 2],
                               "#000000", 2.2, SVG_SOLID, o == 0 ? "obstacle" : NULL))
                    goto done;
            if (add_cross(fo, p, t->target[0], t->target[1], 0.25, "#ff7f0e", "goal"))
                goto done;
            snprintf(note, sizeof note, "Objective %.3g", mt->obj_mean);
            if (svg_panel_note(fo, p, note))
                goto done;
            snprintf(note, sizeof note, "collisions %.0f of %" PRId64,
                     mt->collision * (double)(mt->n - mt->failed), mt->n);
            if (svg_panel_note(fo, p, note))
                goto done;
            snprintf(note, sizeof note, "final distance %.2f", mt->fd_mean);
            if (svg_panel_note(fo, p, note))
                goto done;
            snprintf(note, sizeof note, "implausible %" PRId64 " of %" PRId64, mt->implausible,
                     mt->n);
            if (svg_panel_note(fo, p, note))
                goto done;
            if (mt->failed) {
                snprintf(note, sizeof note, "%" PRId64 " failed (non-finite)", mt->failed);
                if (svg_panel_note(fo, p, note))
                    goto done;
            }
            row++;
        }
    }
    if (lgd_tool_write_svg(CMD, cfg->out, fp, "fig_path.svg") || lgd_tool_write_svg(CMD, cfg->out, fo, "fig_obstacle.svg"))
        goto done;
    rc = 0;
done:
    svg_figure_destroy(fp);
    svg_figure_destroy(fo);
    return rc;
}

/* ---- printing ---- */

static const char *rule_formula(lgd_step_rule r)
{
    return r == LGD_STEP_X0 ? "lambda = scale"
           : r == LGD_STEP_SCORE ? "lambda = scale * sigma^2" : "lambda = scale / sqrt(loss)";
}

static void print_header(const config *cfg, const problem *pb)
{
    printf("lgd trajectory: controllable trajectory synthesis (Sec. 6.3, Tables 2 and 3)\n");
    printf("liblgd %s, backend %s\n", lgd_version_string(), lgd_context_backend_name(pb->ctx));
    printf("prior  lgd_model_create_trajectory_prior (defaults): %d frames of root velocities "
           "(dim %d), 8 headings x 3 turns = 24 components; positions = %g * cumsum(v)\n",
           FRAMES, DIM, VELOCITY_SCALE);
    printf("tasks ");
    for (int k = 0; k < NTASKS; k++) {
        const task *t = &pb->tasks[k];
        if (t->def->fam == FAM_PATH) {
            printf(" %s: line to (%.2f, %.2f);", t->def->key, t->target[0], t->target[1]);
        } else {
            printf(" %s: goal (%.2f, %.2f), obstacles", t->def->key, t->target[0], t->target[1]);
            for (int o = 0; o < t->nobs; o++)
                printf(" (%.2f, %.2f, r %g)", (double)t->obs[3 * o], (double)t->obs[3 * o + 1],
                       (double)t->obs[3 * o + 2]);
            printf("%s", k + 1 < NTASKS ? ";" : "");
        }
    }
    printf("\n");
    printf("sampler DDIM (eta 0), %d steps, Karras sigmas 80 -> 0.002 (rho 7); LGD-MC r(sigma) = "
           "sigma / sqrt(1 + sigma^2)\n",
           (int)cfg->steps);
    printf("guidance step rule %s (%s); grid of scales:", cfg->rule_name, rule_formula(cfg->rule));
    for (int si = 0; si < cfg->nscales; si++)
        printf(" %g", cfg->scales[si]);
    printf("\n");
    printf("selection: per method and task family, %s\n",
           cfg->select_plausible
               ? "the lowest mean Objective among the scales whose tuning samples are all finite "
                 "and plausible (--select plausible)"
               : "the lowest mean Objective among the scales whose tuning samples are all finite "
                 "(--select objective)");
    printf("tuning seed %" PRIu64 " (%d samples per task); evaluation seed %" PRIu64
           " (%d samples per task, the paper's protocol",
           cfg->seed + 1, (int)cfg->tune, cfg->seed, (int)cfg->seeds);
    if (cfg->large > 0)
        printf("; and %d for the large estimate", (int)cfg->large);
    printf(")\n\n");
}

static void print_fail_note(const metrics *mt)
{
    if (mt->failed)
        printf("  [%" PRId64 " failed: non-finite]", mt->failed);
}

static void print_method_scale(const method_def *m, double scale)
{
    if (m->kind == LGD_GUIDANCE_NONE)
        printf("%-13s %6s", m->name, "-");
    else
        printf("%-13s %6g", m->name, scale);
}

static void print_table2(const config *cfg, const evaluation *ev, int p)
{
    int64_t rows = p == 0 ? cfg->seeds : cfg->large;
    printf("Table 2 analogue, path following (%s: %" PRId64 " samples per direction).\n"
           "Objective = path loss / %d frames per direction and over all; final distance "
           "|p_T - y_T|; NLL = median -log p0(x0) / frame under the prior\n",
           p == 0 ? "the paper's protocol" : "large estimate", rows, FRAMES);
    printf("%-13s %6s", "method", "scale");
    for (int k = 0; k < NTASKS; k++)
        if (task_defs[k].fam == FAM_PATH)
            printf(" %9s", task_defs[k].key);
    printf(" | %19s %8s %7s %6s", "all: mean +- sd", "median", "dist", "NLL");
    if (p == 0) {
        printf(" | paper");
        for (int j = 0; j < 4; j++)
            printf(" %6s", paper_t2_prompts[j]);
    }
    printf("\n");
    for (int mi = 0; mi < NMETHODS; mi++) {
        const metrics *fm = &ev->fam_m[p][mi][FAM_PATH];
        print_method_scale(&method_defs[mi], ev->scale[mi][FAM_PATH]);
        for (int k = 0; k < NTASKS; k++)
            if (task_defs[k].fam == FAM_PATH)
                printf(" %9.4f", ev->task_m[p][mi][k].obj_mean);
        printf(" | %8.4f +- %7.4f %8.4f %7.3f %6.2f", fm->obj_mean, fm->obj_sd, fm->obj_median,
               fm->fd_mean, fm->nll_median);
        if (p == 0) {
            printf(" |      ");
            for (int j = 0; j < 4; j++)
                printf(" %6.3f", paper_t2[mi][j]);
        }
        print_fail_note(fm);
        printf("\n");
    }
    printf("\n");
}

static void print_table3(const config *cfg, const evaluation *ev, int p)
{
    int64_t rows = p == 0 ? cfg->seeds : cfg->large;
    printf("Table 3 analogue, obstacle avoidance (%s: %" PRId64 " samples per layout).\n"
           "Obj. = loss (Eq. 15, 20) / %d frames; coll. = collision rate; dist = |p_T - goal|; "
           "NLL = median -log p0(x0) / frame; impl. = rate of implausible samples (a frame "
           "faster than %g); success = within %g of the goal, no collision, plausible\n",
           p == 0 ? "the paper's protocol" : "large estimate", rows, FRAMES, SPEED_LIMIT,
           REACH_RADIUS);
    printf("%-13s %6s", "", "");
    for (int k = 0; k < NTASKS; k++)
        if (task_defs[k].fam == FAM_OBSTACLE)
            printf(" | %-24s", task_defs[k].label);
    printf(" | %-70s", "both layouts");
    if (p == 0)
        printf(" | paper Obj.");
    printf("\n");
    printf("%-13s %6s", "method", "scale");
    for (int k = 0; k < NTASKS; k++)
        if (task_defs[k].fam == FAM_OBSTACLE)
            printf(" | %8s %6s %8s", "Obj.", "coll.", "dist");
    printf(" | %20s %8s %6s %7s %6s %6s %7s", "Obj. mean +- sd", "median", "coll.", "dist", "NLL",
           "impl.", "success");
    if (p == 0)
        printf(" | %6s %6s", "(v)", "(vi)");
    printf("\n");
    for (int mi = 0; mi < NMETHODS; mi++) {
        const metrics *fm = &ev->fam_m[p][mi][FAM_OBSTACLE];
        print_method_scale(&method_defs[mi], ev->scale[mi][FAM_OBSTACLE]);
        for (int k = 0; k < NTASKS; k++)
            if (task_defs[k].fam == FAM_OBSTACLE) {
                const metrics *tm = &ev->task_m[p][mi][k];
                printf(" | %8.3f %6.2f %8.3f", tm->obj_mean, tm->collision, tm->fd_mean);
            }
        printf(" | %8.3f +- %8.3f %8.3f %6.2f %7.3f %6.2f %6.2f %7.2f", fm->obj_mean, fm->obj_sd,
               fm->obj_median, fm->collision, fm->fd_mean, fm->nll_median,
               (double)fm->implausible / (double)(fm->n - fm->failed), fm->success);
        if (p == 0)
            printf(" | %6.3f %6.3f", paper_t3[mi][0], paper_t3[mi][1]);
        print_fail_note(fm);
        printf("\n");
    }
    printf("\n");
}

/* The target, stated as numbers: LGD-MC (n = 100) below DPS, both far below the
 * Baseline, on obstacle avoidance. */
static void print_reading(const config *cfg, const evaluation *ev, const grid *gr)
{
    for (int p = 0; p < 2; p++) {
        if (p == 1 && cfg->large == 0)
            break;
        const metrics *b = &ev->fam_m[p][0][FAM_OBSTACLE], *d = &ev->fam_m[p][1][FAM_OBSTACLE],
                      *m = &ev->fam_m[p][3][FAM_OBSTACLE];
        printf("obstacle avoidance, %s (%" PRId64 " samples per method): Objective Baseline "
               "%.4g, DPS %.4g, LGD-MC n=100 %.4g (DPS / LGD-MC = %.3g, Baseline / DPS = %.3g, "
               "Baseline / LGD-MC = %.3g); success Baseline %.2f, DPS %.2f, LGD-MC n=100 %.2f\n",
               p == 0 ? "paper protocol" : "large estimate", m->n, b->obj_mean, d->obj_mean,
               m->obj_mean, d->obj_mean / m->obj_mean, b->obj_mean / d->obj_mean,
               b->obj_mean / m->obj_mean, b->success, d->success, m->success);
    }
    printf("paper, Table 3: DPS / LGD-MC n=100 = %.2f (v) and %.2f (vi); Baseline / DPS = %.1f "
           "and %.1f\n",
           paper_t3[1][0] / paper_t3[3][0], paper_t3[1][1] / paper_t3[3][1],
           paper_t3[0][0] / paper_t3[1][0], paper_t3[0][1] / paper_t3[1][1]);
    printf("\ntimes (s): method, tuning runs (all scales), evaluation runs, evaluation per "
           "sample (%d steps)\n", (int)cfg->steps);
    for (int mi = 0; mi < NMETHODS; mi++)
        printf("  %-13s %9.2f %9.2f %9.4f\n", method_defs[mi].name, gr->seconds[mi],
               ev->seconds[mi], ev->seconds[mi] / (double)(ev->rows * NTASKS));
}

/* ---- the command ---- */

int lgd_trajectory_main(int argc, char **argv)
{
    config cfg = { 10, 100, 20, 100, 0, { 0 }, 0, 0, LGD_STEP_X0, "x0", 0, 0,
                   "lgd-trajectory-out", 0 };
    int pr_args = parse_args(argc, argv, &cfg);
    if (pr_args == 1)
        return LGD_TOOL_EXIT_OK;
    if (pr_args)
        return LGD_TOOL_EXIT_USAGE;

    int rc = LGD_TOOL_EXIT_ERROR;
    problem pb;
    memset(&pb, 0, sizeof pb);
    grid *gr = calloc(1, sizeof *gr);
    evaluation *ev = calloc(1, sizeof *ev);
    progress pr;
    progress_start(&pr, "", 1.0, 1); /* disabled until a task starts */
    double t_start = tool_now_ms();

    if (!gr || !ev) {
        fprintf(stderr, "lgd " CMD ": out of memory\n");
        goto done;
    }
    if (lgd_tool_mkdirs(cfg.out)) {
        fprintf(stderr, "lgd " CMD ": cannot create %s: %s\n", cfg.out, strerror(errno));
        goto done;
    }
    if (problem_create(&pb, &cfg))
        goto done;
    print_header(&cfg, &pb);
    fflush(stdout);

    /* 1. Tuning on the grid (seed + 1). */
    double total = 0.0;
    for (int mi = 0; mi < NMETHODS; mi++)
        total += method_defs[mi].cost * nscales_of(&cfg, &method_defs[mi]);
    total *= (double)cfg.steps * cfg.tune * NTASKS;
    progress_start(&pr, "lgd trajectory: tuning", total, cfg.quiet);
    int bad = run_tuning(&cfg, &pb, gr, &pr);
    progress_end(&pr);
    if (bad || write_grid_csv(&cfg, gr))
        goto done;
    print_grid(&cfg, gr);
    fflush(stdout);

    /* 2. Evaluation at the selected scales (seed). */
    int64_t rows = cfg.large > cfg.seeds ? cfg.large : cfg.seeds;
    total = 0.0;
    for (int mi = 0; mi < NMETHODS; mi++)
        total += method_defs[mi].cost;
    total *= (double)cfg.steps * (double)rows * NTASKS;
    progress_start(&pr, "lgd trajectory: evaluation", total, cfg.quiet);
    bad = run_evaluation(&cfg, &pb, gr, ev, &pr);
    progress_end(&pr);
    if (bad)
        goto done;
    print_table2(&cfg, ev, 0);
    print_table3(&cfg, ev, 0);
    if (cfg.large > 0) {
        print_table2(&cfg, ev, 1);
        print_table3(&cfg, ev, 1);
    }
    print_reading(&cfg, ev, gr);
    if (write_results_csv(&cfg, ev) || write_trajectories_csv(&cfg, ev) ||
        write_figures(&cfg, ev, &pb))
        goto done;
    printf("\ntotal %.1f s; wrote grid.csv, results.csv, trajectories.csv, fig_path.svg and "
           "fig_obstacle.svg to %s/\n",
           (tool_now_ms() - t_start) / 1e3, cfg.out);
    rc = LGD_TOOL_EXIT_OK;
done:
    progress_end(&pr);
    if (ev)
        evaluation_free(ev);
    free(ev);
    free(gr);
    problem_destroy(&pb);
    return rc;
}
