/*
 * trajectory.h - what the files of `lgd trajectory` share: the experiment's fixed data
 * (tasks, methods), its options, the problem (prior, tasks' losses), the samples'
 * outcomes and metrics, and the results of tuning and evaluation.
 *
 * Not part of liblgd's API. The parts, one file each:
 *   trajectory.c           the command: usage, options, header, the order of the parts
 *   trajectory_problem.c   the fixed data, the prior and the tasks' losses
 *   trajectory_sampling.c  sampling one batch of one task and its outcomes
 *   trajectory_metrics.c   metrics, 1. tuning on the grid of scales, 2. evaluation
 *   trajectory_tables.c    the tables on stdout, beside the paper's; --compare's table
 *   trajectory_csv.c       grid.csv, results.csv, trajectories.csv, compare.csv
 *   trajectory_figures.c   fig_path.svg, fig_obstacle.svg, fig_hard.svg
 *   trajectory_noise.c     --gradient-free: the estimators' noise against their limit
 *   trajectory_hard.c      the hard (0/1) obstacle loss (trajectory_hard.h)
 */
#ifndef LGD_TOOL_TRAJECTORY_H
#define LGD_TOOL_TRAJECTORY_H

#include <stdint.h>

#include <lgd/lgd.h>

#include "tool.h"
#include "trajectory_hard.h"

#define CMD "trajectory"
/* Reports a failed library call; evaluates to non-zero on error. */
#define CK(ctx, call) TOOL_CHECK(CMD, (ctx), (call))

/* ---- the experiment's fixed data (trajectory_problem.c) ---- */

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

/* Task families: path following, obstacle avoidance with the smooth collision term
 * (Eq. 20), and with the hard 0/1 indicator (--gradient-free; trajectory_hard.h). */
typedef enum family { FAM_PATH = 0, FAM_OBSTACLE = 1, FAM_HARD = 2, NFAM = 3 } family;
extern const char *const family_key[NFAM];
/* The hard family's W: loss = goal term + W * 1[some frame inside an obstacle]. */
#define HARD_WEIGHT 100.0

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

/* path_20, path_110, path_235, obstacle_A, obstacle_B, and (--gradient-free) the same
 * layouts with the hard loss, obstacle_A_hard and obstacle_B_hard */
#define NTASKS 7
extern const task_def task_defs[NTASKS];

/* Baseline, DPS, LGD-MC n = 10 and 100 and (with --gradient-free) gradient-free LGD-MC
 * n = 100 and n = 1000 */
#define NMETHODS 6
typedef struct method_def {
    const char *key;
    const char *name;
    const char *color;
    lgd_guidance_kind kind;
    int32_t n;
    double cost;   /* relative cost of one step (progress units) */
    int extra;     /* 1: run only with --gradient-free */
} method_def;
extern const method_def method_defs[NMETHODS];

/* ---- options (trajectory.c) ---- */

/* --select: the choices' order */
enum { SELECT_PLAUSIBLE = 0, SELECT_OBJECTIVE = 1 };
/* --prior: the choices' order */
enum { PRIOR_EXACT = 0, PRIOR_LEARNED = 1 };
extern const char *const prior_names[];
/* The learned prior's file when --model is not given: $LGD_MODEL_DIR/NAME if set, else
 * models/NAME under the current directory, else under the source tree the tool was built
 * from (as lgd superres and classcond find models/). */
#define DEFAULT_MODEL_NAME "trajectory_denoiser.safetensors"

typedef struct traj_config {
    int32_t seeds;      /* evaluation samples per task, headline (the paper's 10 seeds) */
    int32_t large;      /* evaluation samples per task, large estimate (0: off) */
    int32_t tune;       /* tuning samples per task */
    int32_t steps;
    uint64_t seed;      /* evaluation seed; tuning uses seed + 1 */
    double scales[MAX_SCALES];
    int nscales;        /* 0 until set: --scales, or the rule's default grid */
    int rule_choice;    /* --rule, an index into the rule names */
    lgd_step_rule rule; /* ... and what it means */
    const char *rule_name;
    float sigma_min;    /* --sigma-min: guidance off below this noise level (0: never) */
    int select_choice;    /* --select */
    int select_plausible; /* --select plausible (or objective, the default) */
    int prior;          /* --prior: PRIOR_EXACT or PRIOR_LEARNED */
    const char *model;  /* --model: the learned prior's network file, or NULL */
    char model_path[4096]; /* the file used: --model, or the default (traj_model_path) */
    int compare;        /* --compare: the exact, then the learned prior, side by side */
    int gradient_free;  /* --gradient-free: the extra methods and the hard family */
    int32_t noise_draws; /* --noise-draws: the noise table's reference draws (0: none) */
    int32_t threads;
    const char *out;
    int quiet;
} traj_config;

/* Whether method mi, task k, family fam take part in the run cfg describes. */
int traj_method_on(const traj_config *cfg, int mi);
int traj_task_on(const traj_config *cfg, int k);
int traj_family_on(const traj_config *cfg, int fam);

/* ---- the problem: prior, tasks and losses (trajectory_problem.c) ---- */

typedef struct task {
    const task_def *def;
    float path[FRAMES * 2]; /* path tasks: the target path */
    double target[2];       /* the goal (obstacle tasks) or the path's end y_T */
    float obs[MAX_OBS * 3]; /* obstacle tasks: centre x, centre y, radius */
    int nobs;
    traj_hard_params hard; /* obstacle tasks: the hard loss's constants (collisions) */
    lgd_loss *loss;        /* NULL for a task that does not take part */
} task;

typedef struct traj_problem {
    lgd_context *ctx;
    lgd_model *exact;   /* the library's exact prior: the NLL metric, and the exact prior */
    lgd_model *prior;   /* the prior sampled from: exact, or the learned network's model */
    lgd_network *net;   /* the learned prior's network (NULL for the exact prior) */
    task tasks[NTASKS];
} traj_problem;

/* The learned prior's file (see DEFAULT_MODEL_NAME) into buf; 1 when it does not fit. */
int traj_model_path(const traj_config *cfg, char *buf, size_t size);
int traj_problem_create(traj_problem *pb, const traj_config *cfg);
void traj_problem_destroy(traj_problem *pb);
/* Adds the frame f's velocity v[2 f + axis] (scaled) to *acc: the position p_f. */
double traj_path_pos(const float *v, int f, int axis, double *acc);

/* ---- sampling one batch (trajectory_sampling.c) ---- */

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

/*
 * Samples `rows` rows of task t with method m at `scale`: seed, rows numbered from
 * first_row. A run that fails with LGD_ERR_NON_FINITE is reported and rerun row by row;
 * rows that fail alone are marked failed. Any other error: 1.
 */
int traj_run_batch(const traj_config *cfg, traj_problem *pb, const method_def *m, double scale,
                   task *t, int64_t rows, uint64_t seed, uint64_t first_row, progress *pr,
                   batch *b);
void traj_batch_free(batch *b);

/* ---- metrics, tuning and evaluation (trajectory_metrics.c) ---- */

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

/* Grid results: per method, scale and task (the baseline has one "scale", index 0). */
typedef struct grid {
    metrics m[NMETHODS][MAX_SCALES][NTASKS];
    metrics fam[NMETHODS][MAX_SCALES][NFAM]; /* all tasks of a family together */
    int eligible[NMETHODS][MAX_SCALES][NFAM];
    int best[NMETHODS][NFAM];
    double seconds[NMETHODS];
} grid;

typedef struct evaluation {
    int64_t rows;            /* max(seeds, large) */
    batch b[NMETHODS][NTASKS];
    double seconds[NMETHODS];
    double scale[NMETHODS][NFAM];
    /* [protocol 0: the first --seeds rows, 1: the first --large rows] */
    metrics task_m[2][NMETHODS][NTASKS];
    metrics fam_m[2][NMETHODS][NFAM];
} evaluation;

/* Scales of method m on the grid (the baseline has one), and the si-th of them. */
int traj_nscales_of(const traj_config *cfg, const method_def *m);
double traj_scale_of(const traj_config *cfg, const method_def *m, int si);
/* 1. Tuning (seed + 1): every method at every scale of the grid; the selection. */
int traj_run_tuning(const traj_config *cfg, traj_problem *pb, grid *gr, progress *pr);
/* 2. Evaluation (seed) at the selected scales. */
int traj_run_evaluation(const traj_config *cfg, traj_problem *pb, const grid *gr,
                        evaluation *ev, progress *pr);
void traj_evaluation_free(evaluation *ev);

/* ---- output (trajectory_tables.c, trajectory_csv.c, trajectory_figures.c) ---- */

void traj_print_grid(const traj_config *cfg, const grid *gr);
/* Tables 2 and 3 for protocol p (0: the paper's, 1: the large estimate). */
void traj_print_table2(const traj_config *cfg, const evaluation *ev, int p);
void traj_print_table3(const traj_config *cfg, const evaluation *ev, int p);
/* The obstacle-avoidance ratios against the paper's, and the times. */
void traj_print_reading(const traj_config *cfg, const evaluation *ev, const grid *gr);

/* --compare: per family and method, the exact prior's results (index 0) beside the
 * learned prior's (index 1), on stdout and into cfg->out/compare.csv. */
void traj_print_comparison(const traj_config *cfg, const evaluation *const ev[2]);
int traj_write_compare_csv(const traj_config *cfg, const evaluation *const ev[2]);

/* --gradient-free: the noise of each estimator of g against its n -> infinity limit on
 * the obstacle losses, printed and written to cfg->out/noise.csv. */
int traj_estimator_noise(const traj_config *cfg, traj_problem *pb, progress *pr);

int traj_write_grid_csv(const traj_config *cfg, const grid *gr);
int traj_write_results_csv(const traj_config *cfg, const evaluation *ev);
int traj_write_trajectories_csv(const traj_config *cfg, const evaluation *ev);
int traj_write_figures(const traj_config *cfg, const evaluation *ev, const traj_problem *pb);

#endif /* LGD_TRAJECTORY_H */
