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
 *   trajectory_tables.c    the tables on stdout, beside the paper's
 *   trajectory_csv.c       grid.csv, results.csv, trajectories.csv
 *   trajectory_figures.c   fig_path.svg, fig_obstacle.svg
 */
#ifndef LGD_TOOL_TRAJECTORY_H
#define LGD_TOOL_TRAJECTORY_H

#include <stdint.h>

#include <lgd/lgd.h>

#include "tool.h"

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

typedef enum family { FAM_PATH = 0, FAM_OBSTACLE = 1, NFAM = 2 } family;
extern const char *const family_key[NFAM];

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
extern const task_def task_defs[NTASKS];

#define NMETHODS 4
typedef struct method_def {
    const char *key;
    const char *name;
    const char *color;
    lgd_guidance_kind kind;
    int32_t n;
    double cost; /* relative cost of one step (progress units) */
} method_def;
extern const method_def method_defs[NMETHODS];

/* ---- options (trajectory.c) ---- */

/* --select: the choices' order */
enum { SELECT_PLAUSIBLE = 0, SELECT_OBJECTIVE = 1 };

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
    int select_choice;    /* --select */
    int select_plausible; /* --select plausible (or objective, the default) */
    int32_t threads;
    const char *out;
    int quiet;
} traj_config;

/* ---- the problem: prior, tasks and losses (trajectory_problem.c) ---- */

typedef struct task {
    const task_def *def;
    float path[FRAMES * 2]; /* path tasks: the target path */
    double target[2];       /* the goal (obstacle tasks) or the path's end y_T */
    float obs[MAX_OBS * 3]; /* obstacle tasks: centre x, centre y, radius */
    int nobs;
    lgd_loss *loss;
} task;

typedef struct traj_problem {
    lgd_context *ctx;
    lgd_model *prior;
    task tasks[NTASKS];
} traj_problem;

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

int traj_write_grid_csv(const traj_config *cfg, const grid *gr);
int traj_write_results_csv(const traj_config *cfg, const evaluation *ev);
int traj_write_trajectories_csv(const traj_config *cfg, const evaluation *ev);
int traj_write_figures(const traj_config *cfg, const evaluation *ev, const traj_problem *pb);

#endif /* LGD_TRAJECTORY_H */
