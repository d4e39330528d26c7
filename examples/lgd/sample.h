/*
 * sample.h - what the files of `lgd sample` share: guided sampling of any model with any
 * loss from the command line, arrays in and out as .npy, optionally over MPI ranks.
 *
 * Not part of liblgd's API. The parts, one file each:
 *   sample.c          the command: usage, the order of the parts, the exit status
 *   sample_options.c  the options (sample_config) and their checks
 *   sample_model.c    model specs (network file, gmm:..., mixture1d, trajectory, plugin)
 *                     and the condition rows (--class, --cond)
 *   sample_loss.c     loss specs (sqerr, linear, logistic, path, obstacle, mixture1d,
 *                     plugin) and their weighted sum
 *   sample_run.c      the sampling of this process's rows in batches: guidance, sampler,
 *                     progress, per-step diagnostics
 *   sample_output.c   the output files: .npy, diagnostics CSV, PNG grid (each written to
 *                     a temporary name and renamed)
 *   sample_png.c      the PNG writer (libpng; without it, a stub that says so)
 *   sample_mpi.c      the ranks: MPI (split, agreement, MPI-IO, gathers), or
 *   sample_mpi_none.c the same interface for a build without MPI (one process)
 *
 * Conventions: a function that can fail prints its message on stderr ("lgd sample: ...")
 * and returns an exit status of tool.h (TOOL_EXIT_ERROR for a run-time problem: a file,
 * the library; TOOL_EXIT_USAGE for a bad command line: an option, a spec's syntax, a bad
 * number); 0 on success.
 */
#ifndef LGD_TOOL_SAMPLE_H
#define LGD_TOOL_SAMPLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <lgd/lgd.h>

#include "tool.h"

#define CMD "sample"
/* Reports a failed library call ("lgd sample: CALL failed: STATUS: MESSAGE"); evaluates to
 * non-zero on error. */
#define CK(ctx, call) tool_failed(CMD, (ctx), call, #call)

/* "lgd sample: MESSAGE" on stderr; returns TOOL_EXIT_ERROR (sample_run_error) or
 * TOOL_EXIT_USAGE with the pointer to the help (sample_usage_error = tool_usage_error). */
int sample_run_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
#define sample_usage_error(...) tool_usage_error(CMD, __VA_ARGS__)

/* ---- options (sample_options.c) ---- */

#define SAMPLE_MAX_LOSSES 16
/* The most samples drawn into the PNG grid (the first rows of the output). */
#define SAMPLE_PNG_MAX 256

typedef enum sample_schedule {
    SCHEDULE_KARRAS = 0,
    SCHEDULE_VP_LINEAR,
    SCHEDULE_VP_COSINE,
    SCHEDULE_FILE        /* sigmas:FILE.npy */
} sample_schedule;

typedef struct sample_config {
    const char *model_spec;                   /* --model */
    const char *loss_specs[SAMPLE_MAX_LOSSES];/* --loss, in order */
    float loss_weights[SAMPLE_MAX_LOSSES];    /* --loss-weight of each (default 1) */
    int nloss;
    lgd_guidance_kind guidance;               /* --guidance */
    int32_t draws;                            /* mc:N, exact:N */
    int rule_choice;                          /* --rule */
    lgd_step_rule rule;
    float scale;                              /* --scale */
    float sigma_data;                         /* --sigma-data (LGD-MC radius) */
    int sampler_choice;                       /* --sampler */
    lgd_sampler_kind sampler;
    int32_t steps;                            /* --steps */
    sample_schedule schedule;                 /* --schedule */
    const char *sigmas_file;                  /* sigmas:FILE.npy */
    float sigma_min, sigma_max, rho;          /* Karras */
    int32_t vp_timesteps;                     /* VP schedules */
    float eta;                                /* --eta (ddim) */
    int64_t samples;                          /* --samples: rows of the whole run */
    int64_t batch;                            /* --batch */
    uint64_t seed;                            /* --seed */
    int64_t row_begin, row_end;               /* --rows A:B (default 0:samples) */
    int32_t class_label;                      /* --class (-1: none) */
    const char *cond_file;                    /* --cond */
    int backend_choice;                       /* --backend */
    int32_t threads;                          /* --threads */
    int32_t device;                           /* --device (-1: default) */
    int32_t devices_per_node;                 /* --devices-per-node (0: one per rank) */
    const char *out;                          /* --out FILE.npy */
    const char *diagnostics;                  /* --diagnostics FILE.csv */
    const char *png;                          /* --png FILE.png */
    int quiet;                                /* --quiet */
} sample_config;

/* Parses argv (argv[0] is "sample") into cfg; TOOL_CONTINUE to run, or an exit status
 * (after --help, or a usage error with its message). */
int sample_parse_args(int argc, char **argv, sample_config *cfg);
void lgd_sample_usage(FILE *out);

/* ---- arrays from .npy files (sample_model.c) ---- */

typedef struct sample_array {
    float *data;        /* malloc'd, row-major */
    int64_t shape[8];
    int ndim;
    int64_t numel;
} sample_array;

/* Reads path (a .npy file) into a; `what` names it in the message ("sqerr target").
 * 0, or TOOL_EXIT_ERROR with "lgd sample: cannot read WHAT PATH: REASON". */
int sample_array_load(const char *path, const char *what, sample_array *a);
void sample_array_free(sample_array *a);
/* "[3][8]" into buf. */
const char *sample_shape_text(const int64_t *shape, int ndim, char *buf, size_t size);
/* A whole finite number of a spec (s: the text); 0 or -1. */
int sample_parse_number(const char *s, double *out);

/* ---- the model and the condition rows (sample_model.c) ---- */

typedef struct sample_model {
    lgd_model *model;
    lgd_network *network;       /* a network file's network (for its metadata), or NULL */
    int64_t dim, cond_dim;
    int64_t row_shape[4];       /* one sample's shape in the output: [C][H][W], [T][C], [dim] */
    int row_ndim;
    int image;                  /* 1 when row_shape is an image [C][H][W] (PNG possible) */
    char what[256];             /* a description for the summary line */
} sample_model;

/* The model of cfg->model_spec on ctx; 0 or an exit status. */
int sample_model_open(lgd_context *ctx, const sample_config *cfg, sample_model *m);
void sample_model_close(sample_model *m);

/* The condition of every row: `rows` rows of cond_dim floats (1: shared by all). */
typedef struct sample_cond {
    float *data;
    int64_t rows;
    int64_t cond_dim;
} sample_cond;

/* The condition rows of cfg (--class, --cond) for the model (none when it is
 * unconditional); 0 or an exit status. */
int sample_cond_prepare(const sample_config *cfg, const sample_model *m, sample_cond *c);
/* Rows [row0, row0 + n) of the run into out[n][cond_dim]. */
void sample_cond_rows(const sample_cond *c, int64_t row0, int64_t n, float *out);
void sample_cond_free(sample_cond *c);

/* ---- the loss (sample_loss.c) ---- */

struct sample_term;
typedef struct sample_loss {
    struct sample_term *terms;
    int nterms;
    int64_t dim;        /* the model's */
    int per_row;        /* 1 when a term has a target per row: the loss is built per batch */
    char what[512];     /* a description for the summary line */
} sample_loss;

/* Parses and loads cfg's --loss specs for a model of dimension dim (arrays are checked
 * against dim and cfg->samples; plugins are loaded on ctx); 0 or an exit status. */
int sample_loss_open(lgd_context *ctx, const sample_config *cfg, int64_t dim, sample_loss *L);
/* The loss of rows [row0, row0 + rows) of the run (the sum of the terms, weighted);
 * 0 or TOOL_EXIT_ERROR. */
int sample_loss_build(const sample_loss *L, lgd_context *ctx, int64_t row0, int64_t rows,
                      lgd_loss **out);
void sample_loss_close(sample_loss *L);

/* ---- the run (sample_run.c) ---- */

/* Per-step diagnostics, accumulated over the rows of every batch (sums in double). */
typedef struct sample_diag {
    int32_t steps;
    float *sigmas;          /* [steps + 1]: the grid */
    double *rows;           /* [steps] rows seen */
    double *sum_loss, *sum_ess, *sum_grad_norm, *sum_lambda, *active_rows; /* [steps] */
    double *min_ess;        /* [steps] (+infinity when no row was seen) */
} sample_diag;

/* This process's part of the run: rows [begin, end). */
typedef struct sample_job {
    int64_t begin, end;
    float *x;               /* [end - begin][dim], the samples */
    sample_diag diag;
    double seconds;         /* wall time of the sampling */
} sample_job;

/* Samples rows [job->begin, job->end) into job->x (allocated here) and accumulates the
 * diagnostics; progress on stderr under progress_label (NULL: none; --quiet: none).
 * 0 or TOOL_EXIT_ERROR. */
int sample_run(const sample_config *cfg, lgd_context *ctx, const sample_model *m,
               const sample_loss *L, const sample_cond *c, sample_job *job,
               const char *progress_label);
void sample_job_free(sample_job *job);

/* ---- output files (sample_output.c) ---- */

/* path + ".tmp" into buf (0, or TOOL_EXIT_USAGE when too long). */
int sample_tmp_path(const char *path, char *buf, size_t size);
/* Writes `rows` samples x of the model's row shape to path (.npy; the npy module writes a
 * temporary file and renames it). 0 or TOOL_EXIT_ERROR. */
int sample_write_npy(const char *path, const sample_model *m, int64_t rows, const float *x);
/* The .npy header of `rows` samples of the model's row shape, malloc'd into *header
 * (*len bytes, the data follow); 0 or TOOL_EXIT_ERROR. */
int sample_npy_header(const sample_model *m, int64_t rows, char **header, size_t *len);
/* The diagnostics CSV (diag summed over every row of the run) to tmp_path; 0 or
 * TOOL_EXIT_ERROR (the temporary removed). */
int sample_write_diagnostics(const char *tmp_path, const sample_diag *d);
/* The PNG grid of the first n <= SAMPLE_PNG_MAX samples x to tmp_path; 0 or
 * TOOL_EXIT_ERROR (the temporary removed). */
int sample_write_png(const char *tmp_path, const sample_model *m, int64_t n, const float *x);
/* Renames tmp to path; 0 or TOOL_EXIT_ERROR (tmp removed). */
int sample_commit(const char *tmp, const char *path);

/* ---- PNG (sample_png.c) ---- */

/* 1 when the tool was built with libpng. */
int sample_png_available(void);
/* Writes an 8-bit PNG of width x height pixels, `channels` 1 (grey) or 3 (RGB), rows of
 * width * channels bytes; 0, or -1 with the reason in err. */
int sample_png_write(const char *path, const unsigned char *pixels, int width, int height,
                     int channels, char *err, size_t errlen);

/* ---- ranks (sample_mpi.c, or sample_mpi_none.c without MPI) ---- */

typedef struct sample_par {
    int rank, size;         /* 0 and 1 without MPI or without a launcher */
    int local_rank;         /* the rank within its node (for the device index) */
    int mpi;                /* 1 when MPI was initialised */
} sample_par;

/* 1 when the tool was built with MPI. */
int sample_par_built(void);
/* 1 when an MPI launcher started this process (mpirun / mpiexec of Open MPI or MPICH,
 * srun with PMI or PMIx: OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK), else 0 (sample.c). */
int sample_par_launched(void);
/* Initialises MPI when the process was started by an MPI launcher (mpirun, mpiexec,
 * srun: their environment variables), else one process; 0 or TOOL_EXIT_ERROR. */
int sample_par_init(sample_par *p, int *argc, char ***argv);
void sample_par_finalize(sample_par *p);
/* Every rank says whether it succeeded; returns -1 when all did, else the lowest rank
 * that failed (the same on every rank). */
int sample_par_agree(const sample_par *p, int ok);
/* The largest v of every rank (the slowest rank's sampling time); collective. */
double sample_par_max(const sample_par *p, double v);
/* Sums the diagnostics of every rank into rank 0's d (min for min_ess). 0 or
 * TOOL_EXIT_ERROR (on every rank). */
int sample_par_reduce_diag(const sample_par *p, sample_diag *d);
/* Writes one .npy file at tmp_path: rank 0 the header (len bytes), each rank its rows
 * (rows of row_bytes bytes at row offset `first` from the file's first row). Collective;
 * the file is complete when every rank returns 0; on failure it is removed (rank 0).
 * The result agrees on every rank: 0 or TOOL_EXIT_ERROR. */
int sample_par_write_npy(const sample_par *p, const char *tmp_path, const char *header,
                         size_t len, const float *x, int64_t first, int64_t rows,
                         size_t row_bytes);
/* Rank 0 receives rows [0, n) of the output (every rank holds its block, rows
 * [first, first + rows) of the output) into out[n][dim] (rank 0 only; others pass
 * NULL). Collective. 0 or TOOL_EXIT_ERROR (on every rank). */
int sample_par_gather_head(const sample_par *p, const float *x, int64_t first, int64_t rows,
                           int64_t dim, int64_t n, float *out);

#endif /* LGD_TOOL_SAMPLE_H */
