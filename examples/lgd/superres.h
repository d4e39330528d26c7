/*
 * superres.h - what the files of `lgd superres` share: the methods, the options, the
 * problem (images, measurements, models) and the results of tuning and evaluation.
 *
 * Not part of liblgd's API. The parts, one file each:
 *   superres.c          the command: usage, options, header, the order of the parts
 *   superres_run.c      the problem, sampling one method on a set, metrics, tuning and
 *                       evaluation
 *   superres_output.c   the tables beside the paper's Table 1, CSV files, PNG grid
 * and the shared image module (image.h, image_metrics.h).
 */
#ifndef LGD_TOOL_SUPERRES_H
#define LGD_TOOL_SUPERRES_H

#include <stdint.h>

#include <lgd/lgd.h>

#include "image.h"
#include "tool.h"

#define SR_CMD "superres"

#define SR_MAX_SCALES 16
#define SR_MAX_SEEDS 32

/* ---- the methods ---- */

#define SR_NMETHODS 6
typedef struct sr_method {
    const char *key;        /* --methods name */
    const char *name;       /* in tables */
    lgd_guidance_kind kind;
    int32_t n;              /* draws (MC, gradient-free) */
    double cost;            /* relative cost of a step, for the progress indicator */
    const char *paper_fid;  /* Table 1 of the paper, or NULL */
    const char *paper_acc;
} sr_method;
extern const sr_method sr_methods[SR_NMETHODS];

/* ---- options (superres.c) ---- */

typedef struct sr_config {
    int32_t test;          /* test images per label (0: all) */
    int32_t tune;          /* tuning images per label */
    int32_t seeds;         /* evaluation seeds */
    int32_t steps;         /* DDIM steps */
    float eta;             /* DDIM eta */
    int op_choice;         /* --operator: 0 avgpool, 1 bicubic */
    int32_t factor;        /* downsampling factor */
    float s;               /* --loss-s: the loss's s in |y - H x|^2 / (2 s^2) */
    float noise;           /* measurement noise standard deviation */
    int rule_choice;       /* --rule: 0 score, 1 normalized */
    lgd_step_rule rule;    /* ... and what it means */
    double scales[SR_MAX_SCALES];
    int nscales;
    uint64_t seed;         /* tuning seed; evaluation seeds seed + 1 .. seed + seeds */
    int32_t batch;
    int32_t png_rows;      /* test images in the PNG grid */
    int use[SR_NMETHODS];  /* --methods */
    int32_t threads;
    int backend_choice;
    const char *data_opt, *models_opt;
    const char *out;
    int quiet;
    char data_dir[IMG_PATH_MAX], models_dir[IMG_PATH_MAX];
} sr_config;

/* ---- the problem (superres_run.c) ---- */

typedef struct sr_problem {
    lgd_context *ctx;
    img_models models;
    lgd_operator_options op;
    int64_t m;             /* measurement length: IMG_DIM / factor^2 */
    img_set tune, test;    /* the images used (per label counts of the config) */
    float *y_tune, *y_test;      /* measurements [n][m] */
    float *up_test;              /* the test measurements upsampled (nearest) [n][IMG_DIM] */
    float *orig_logits;          /* the judge's logits of the test originals */
    double orig_accuracy;        /* its accuracy on them */
} sr_problem;

int sr_problem_create(sr_config *cfg, sr_problem *pb);
void sr_problem_destroy(sr_problem *pb);

/* The metrics of one set of results against its originals. */
typedef struct sr_metrics {
    int64_t n, failed;
    double psnr, ssim;     /* means over the finite results */
    double accuracy;       /* the judge's, labels of the originals; failed count wrong */
    double fd;             /* Frechet distance of the judge's logits to the originals' */
    double meas_rmse;      /* RMS of H x - y */
    double seconds;
} sr_metrics;

/* Tuning (seed cfg->seed, the tune images): per method and scale. */
typedef struct sr_grid {
    sr_metrics m[SR_NMETHODS][SR_MAX_SCALES];
    int best[SR_NMETHODS];   /* index of the selected scale (-1: none eligible) */
} sr_grid;

/* Evaluation (seeds cfg->seed + 1 ..., the test images). */
typedef struct sr_eval {
    sr_metrics m[SR_NMETHODS][SR_MAX_SEEDS];
    sr_metrics upsampled;          /* the measurement upsampled, no model */
    int evaluated[SR_NMETHODS];    /* 1 when the method ran (asked for and a scale found) */
    double scale[SR_NMETHODS];     /* the selected scale (0 for the baseline) */
    float *first[SR_NMETHODS];     /* the first seed's results [n][IMG_DIM], for the PNG */
} sr_eval;

int sr_run_tuning(const sr_config *cfg, sr_problem *pb, sr_grid *gr, progress *pr);
int sr_run_evaluation(const sr_config *cfg, sr_problem *pb, const sr_grid *gr, sr_eval *ev,
                      progress *pr);
void sr_eval_free(sr_eval *ev);

/* ---- output (superres_output.c) ---- */

void sr_print_grid(const sr_config *cfg, const sr_grid *gr);
void sr_print_table(const sr_config *cfg, const sr_problem *pb, const sr_eval *ev);
int sr_write_csv(const sr_config *cfg, const sr_grid *gr, const sr_eval *ev);
int sr_write_png(const sr_config *cfg, const sr_problem *pb, const sr_eval *ev);

#endif /* LGD_TOOL_SUPERRES_H */
