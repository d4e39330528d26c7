/*
 * classcond.h - what the files of `lgd classcond` share: the methods, the options, the
 * problem (models, reference images) and the results of tuning and evaluation.
 *
 * Not part of liblgd's API. The parts, one file each:
 *   classcond.c          the command: usage, options, header, the order of the parts
 *   classcond_run.c      the problem, sampling one method for every label, metrics,
 *                        tuning and evaluation
 *   classcond_output.c   the tables beside the paper's Table 4, CSV files, PNG grid
 * and the shared image module (image.h, image_metrics.h).
 */
#ifndef LGD_TOOL_CLASSCOND_H
#define LGD_TOOL_CLASSCOND_H

#include <stdint.h>

#include <lgd/lgd.h>

#include "image.h"
#include "tool.h"

#define CC_CMD "classcond"

#define CC_MAX_SCALES 16
#define CC_MAX_SEEDS 32

/* ---- the methods ---- */

typedef enum cc_kind { CC_BASELINE, CC_CG, CC_LGD } cc_kind;

#define CC_NMETHODS 7
typedef struct cc_method {
    const char *key;        /* --methods name */
    const char *name;       /* in tables */
    cc_kind kind;
    lgd_guidance_kind guidance; /* CC_LGD: the estimator */
    int32_t n;              /* draws (MC, gradient-free) */
    double cost;            /* relative cost of a step, for the progress indicator */
    const char *paper_fid;  /* Table 4 of the paper, or NULL */
    const char *paper_loss;
} cc_method;
extern const cc_method cc_methods[CC_NMETHODS];

/* --select: the choices' order */
enum { CC_SELECT_FD = 0, CC_SELECT_LOSS = 1 };

/* ---- options (classcond.c) ---- */

typedef struct cc_config {
    int32_t per_label;     /* evaluation samples per label and seed */
    int32_t tune;          /* tuning samples per label */
    int32_t seeds;         /* evaluation seeds */
    int32_t steps;         /* Heun steps (2 steps - 1 network evaluations) */
    float churn;           /* EDM S_churn */
    double scales[CC_MAX_SCALES];
    int nscales;
    int select_choice;     /* --select */
    uint64_t seed;         /* tuning seed; evaluation seeds seed + 1 .. seed + seeds */
    int32_t batch;
    int32_t png_cols;      /* samples per label and method in the PNG (0: none) */
    int use[CC_NMETHODS];  /* --methods */
    int32_t threads;
    int backend_choice;
    const char *data_opt, *models_opt;
    const char *out;
    int quiet;
    char data_dir[IMG_PATH_MAX], models_dir[IMG_PATH_MAX];
} cc_config;

/* The Heun sampler's fixed churn window and noise (EDM's ImageNet-64 settings). */
#define CC_S_TMIN 0.05f
#define CC_S_TMAX 50.0f
#define CC_S_NOISE 1.003f
/* The noise level at which the noise-aware classifier judges the samples. */
#define CC_JUDGE_SIGMA 0.002f

/* ---- the problem (classcond_run.c) ---- */

typedef struct cc_problem {
    lgd_context *ctx;
    img_models models;
    img_set tune_real;     /* the tune split (the tuning's reference) */
    img_set test_real;     /* the test split (the evaluation's reference) */
    float *tune_logits, *test_logits; /* the judge's logits of those */
    int32_t *labels_tune;  /* the target label of each tuning row [tune * 10] */
    int32_t *labels_eval;  /* ... of each evaluation row [per_label * 10] */
} cc_problem;

int cc_problem_create(cc_config *cfg, cc_problem *pb);
void cc_problem_destroy(cc_problem *pb);

/* The metrics of one set of samples (rows label-major: row r has label labels[r]). */
typedef struct cc_metrics {
    int64_t n, failed;
    double loss;           /* mean cross-entropy of the guiding clean classifier (the
                              objective of DPS and LGD-MC), target labels */
    double loss_judge;     /* ... of the judge (a classifier trained apart) */
    double accuracy;       /* the judge's (failed samples count wrong) */
    double accuracy_noisy; /* the noise-aware classifier's at sigma CC_JUDGE_SIGMA (NaN
                              when it is not loaded) */
    double fd;             /* Frechet distance of the judge's logits to the real images
                              of the same label, mean over the labels */
    double fd_pooled;      /* ... of all samples to all real images */
    double seconds;
} cc_metrics;

typedef struct cc_grid {
    cc_metrics m[CC_NMETHODS][CC_MAX_SCALES];
    int best[CC_NMETHODS];
} cc_grid;

typedef struct cc_eval {
    cc_metrics m[CC_NMETHODS][CC_MAX_SEEDS];
    cc_metrics real;               /* tune-split real images as samples (the floor) */
    int evaluated[CC_NMETHODS];
    double scale[CC_NMETHODS];
    float *first[CC_NMETHODS];     /* the first seed's samples, for the PNG */
} cc_eval;

int cc_run_tuning(const cc_config *cfg, cc_problem *pb, cc_grid *gr, progress *pr);
int cc_run_evaluation(const cc_config *cfg, cc_problem *pb, const cc_grid *gr, cc_eval *ev,
                      progress *pr);
void cc_eval_free(cc_eval *ev);

/* ---- output (classcond_output.c) ---- */

void cc_print_grid(const cc_config *cfg, const cc_grid *gr);
void cc_print_table(const cc_config *cfg, const cc_problem *pb, const cc_eval *ev);
int cc_write_csv(const cc_config *cfg, const cc_grid *gr, const cc_eval *ev);
int cc_write_png(const cc_config *cfg, const cc_problem *pb, const cc_eval *ev);

#endif /* LGD_TOOL_CLASSCOND_H */
