/*
 * lgd/guidance.h - loss guidance: estimating g = grad_x log p_sigma(y | x).
 *
 * With l the loss and p(x0 | x) the denoising posterior,
 *   p_sigma(y | x) = E_{p(x0|x)}[exp(-l(x0))].
 * Estimators (each uses one model evaluation D(x, sigma) and at most one VJP):
 *  - LGD_GUIDANCE_DPS: point estimate at xhat = D(x, sigma):
 *        g = -J^T grad l(xhat).
 *  - LGD_GUIDANCE_MC (LGD-MC, the paper's Eq. 9): x_i = xhat + r(sigma) eps_i,
 *    i = 1..n, w = softmax(-l(x_i)),  g = -J^T sum_i w_i grad l(x_i).
 *    The model runs once however large n is; the n draws are processed in chunks
 *    with an online log-sum-exp, so memory does not grow with n.
 *    r(sigma) = sigma * s_d / sqrt(sigma^2 + s_d^2) with s_d = sigma_data (default
 *    1: the paper's sigma / sqrt(1 + sigma^2)), or the caller's own function.
 *    DPS is MC with n = 1 and r = 0.
 *  - LGD_GUIDANCE_MC_GRADIENT_FREE: LGD-MC for losses without a gradient (a
 *    simulator, a hard 0/1 indicator, a plugin with values only): the same draws and
 *    weights as LGD_GUIDANCE_MC, and by the score-function identity
 *    grad_xhat log E[exp(-l(xhat + r eps))] = E_w[eps] / r,
 *        g = J^T sum_i w_i eps_i / r.
 *    The loss is evaluated without its gradient (grad = NULL). Same limit as
 *    LGD_GUIDANCE_MC as n grows (Gaussian integration by parts), with more variance:
 *    it needs more draws, and r > 0. (Since 0.5.0.)
 *  - LGD_GUIDANCE_EXACT: for models with exact posterior sampling (Gaussian
 *    mixtures): self-normalised importance sampling with proposals from p(x0 | x)
 *    and weights exp(-l): g = (E[x0 | x, y] - xhat) / sigma^2. Consistent as n grows;
 *    needs no loss gradient and no VJP.
 * The guided denoiser is xhat_g = xhat + lambda * g, which any sampler uses as is.
 * lambda follows the step rule:
 *  - LGD_STEP_SCORE: lambda = scale * sigma^2 (guided score = score + scale * g;
 *    Bayes-consistent at scale = 1);
 *  - LGD_STEP_X0: lambda = scale;
 *  - LGD_STEP_NORMALIZED: lambda = scale / sqrt(l), with l the loss at the estimate
 *    (at xhat for DPS, the weighted loss of the draws for MC); for l = |y - A x|^2
 *    this is the DPS paper's step zeta / |y - A(xhat)|.
 * Outside [sigma_min_active, sigma_max_active] lambda is 0 (the model still runs).
 */
#ifndef LGD_GUIDANCE_H
#define LGD_GUIDANCE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The estimator of g (see the top of this file). (Since 0.1.0.) */
typedef enum lgd_guidance_kind {
    LGD_GUIDANCE_NONE = 0,
    LGD_GUIDANCE_DPS = 1,
    LGD_GUIDANCE_MC = 2,
    LGD_GUIDANCE_EXACT = 3,
    LGD_GUIDANCE_MC_GRADIENT_FREE = 4 /**< since 0.5.0 */
} lgd_guidance_kind;

/** How lambda(sigma) is computed (see the top of this file). (Since 0.1.0.) */
typedef enum lgd_step_rule {
    LGD_STEP_SCORE = 0,
    LGD_STEP_X0 = 1,
    LGD_STEP_NORMALIZED = 2
} lgd_step_rule;

/** A user schedule for the MC radius r(sigma) >= 0. A value that is negative or not
 *  finite fails the guidance call with LGD_ERR_INVALID_ARGUMENT. Like every callback
 *  (lgd/context.h, "Callbacks") it must not unwind (no C++ exception, Rust panic or
 *  longjmp out of it) and may call on the guidance's context only pure getters.
 *  (Since 0.1.0.) */
typedef float (*lgd_radius_fn)(void *user, float sigma);

/** The largest n_samples lgd_guidance_create() accepts (16,777,216 draws per row and
 *  call; larger values are refused as the input of a bug rather than a plan). Before
 *  0.4.0 any int32 was accepted. (Since 0.4.0.) */
#define LGD_GUIDANCE_MAX_SAMPLES (1 << 24)

/** Options of lgd_guidance_create() (read during the call; the first published layout is
 *  today's). (Since 0.1.0.) */
typedef struct lgd_guidance_options {
    uint32_t struct_size;       /**< sizeof(lgd_guidance_options) */
    lgd_guidance_kind kind;     /**< default LGD_GUIDANCE_MC */
    int32_t n_samples;          /**< MC / gradient-free / exact draws
                                     1 <= n <= LGD_GUIDANCE_MAX_SAMPLES,
                                     default 10 (DPS ignores it) */
    int32_t chunk_size;         /**< draws per chunk >= 0, 0 (default) = min(n, 16) */
    float sigma_data;           /**< r(sigma) parameter s_d, finite and > 0, default 1 */
    lgd_radius_fn radius;       /**< overrides sigma_data when not NULL (LGD-MC and
                                     gradient-free only) */
    void *radius_user;          /**< passed to radius; owned by the caller */
    lgd_step_rule step_rule;    /**< default LGD_STEP_SCORE */
    float scale;                /**< the step rule's w, finite, default 1 */
    float sigma_min_active;     /**< guidance window, >= 0, default 0 */
    float sigma_max_active;     /**< >= sigma_min_active, default +infinity */
    uint64_t seed;              /**< seed of the MC draws, default 0 */
} lgd_guidance_options;

#define LGD_GUIDANCE_OPTIONS_INIT \
    LGD_STRUCT_INIT_(lgd_guidance_options, LGD_GUIDANCE_MC, 10, 0, 1.0f, NULL, NULL, \
        LGD_STEP_SCORE, 1.0f, 0.0f, LGD_INFINITY_F_, 0)
/** Sets *options to LGD_GUIDANCE_OPTIONS_INIT, writing exactly struct_size bytes
 *  (lgd_guidance_options_init(&o, sizeof o); as lgd_context_options_init()).
 *  LGD_ERR_INVALID_ARGUMENT (no message) when options is NULL or struct_size is below
 *  sizeof(lgd_guidance_options) (the first published layout). Any thread. (Since 0.1.0;
 *  signature changed in 0.3.0: takes struct_size and returns lgd_status, was void.) */
LGD_API lgd_status lgd_guidance_options_init(lgd_guidance_options *options, uint32_t struct_size);

/**
 * Per-call diagnostics: averages over the batch, and on request the same values per row.
 *
 * The caller sets struct_size (LGD_GUIDANCE_REPORT_INIT or lgd_guidance_report_init());
 * the library writes only the bytes struct_size covers, so a report of an older layout
 * (0.1.0's ends at `active`) stays valid. When guidance is off at the call's sigma
 * (active = 0, or a guidance of kind LGD_GUIDANCE_NONE) every mean is 0.
 *
 * Per-row values (since 0.3.0): give host arrays of `rows` floats in row_loss, row_ess,
 * row_grad_norm, row_lambda (any may be NULL; all NULL, the default, asks for none).
 * When one is given, rows must be >= the call's batch (else LGD_ERR_INVALID_ARGUMENT,
 * before any work); entries [0, batch) are written, the rest are left alone. Row b
 * receives the value the batch fields average, in float, and the batch fields are
 * computed from exactly these floats: mean_loss = the mean of row_loss (accumulated in
 * double, in row order), mean_ess = the mean of row_ess, min_ess = their minimum, and so
 * on. Where guidance is not active every entry is 0 (never NaN); row_lambda is 0 for
 * lgd_guidance_term(), which applies no step weight. A row whose row_ess is near 1 while
 * the batch's is high is a row where one draw takes all the weight (an extreme loss
 * compared with r(sigma)).
 *
 * A call refuses a report whose struct_size is below 4 (LGD_ERR_INVALID_ARGUMENT). The
 * report is written by each guidance evaluation that succeeds (a failed call may leave
 * it untouched), with struct_size and the row_* request left as the caller set them.
 * (Since 0.1.0; the per-row fields since 0.3.0.)
 */
typedef struct lgd_guidance_report {
    uint32_t struct_size;       /**< set by the caller: sizeof(lgd_guidance_report) */
    float sigma;                /**< noise level of the call */
    float mean_loss;            /**< mean of the losses evaluated (over draws and batch) */
    float mean_ess;             /**< effective sample size 1 / sum_i w_i^2, batch mean */
    float min_ess;              /**< smallest effective sample size in the batch */
    float mean_grad_norm;       /**< mean over the batch of |g| */
    float mean_lambda;          /**< mean step weight lambda actually applied */
    int32_t active;             /**< 1 if guidance was applied, 0 if off at this sigma */
    /* 0.3.0: per-row values on request (the first published layout ends above) */
    int64_t rows;               /**< entries of each row_* array the caller gives, default 0 */
    float *row_loss;            /**< [rows] or NULL: the mean loss of the row's n draws
                                     (DPS: the loss at xhat) */
    float *row_ess;             /**< [rows] or NULL: the row's 1 / sum_i w_i^2, in [1, n] */
    float *row_grad_norm;       /**< [rows] or NULL: the row's |g| */
    float *row_lambda;          /**< [rows] or NULL: the row's step weight lambda */
} lgd_guidance_report;

#define LGD_GUIDANCE_REPORT_INIT \
    LGD_STRUCT_INIT_(lgd_guidance_report, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL)
/** Sets *report to LGD_GUIDANCE_REPORT_INIT, writing only struct_size bytes (from the
 *  first published layout, offsetof(lgd_guidance_report, rows), up; a larger size zeroes
 *  the bytes past this library's struct). LGD_ERR_INVALID_ARGUMENT when report is NULL
 *  or struct_size is smaller than the first published layout. (Since 0.3.0.) */
LGD_API lgd_status lgd_guidance_report_init(lgd_guidance_report *report, uint32_t struct_size);

/**
 * Creates a guidance estimator for `model` and `loss` (kept alive by their own
 * references; both of this context, with the same dim). loss may be NULL only for
 * LGD_GUIDANCE_NONE (which ignores it). options NULL = defaults, read during the call.
 * A model without a VJP is accepted here, but DPS and LGD-MC calls then fail with
 * LGD_ERR_UNSUPPORTED. Statuses: LGD_ERR_INVALID_ARGUMENT (context, model or
 * out_guidance NULL; a bad struct_size; model or loss of another context; kind or
 * step_rule unknown; loss NULL for a kind other than NONE; MC / EXACT with
 * n_samples outside [1, LGD_GUIDANCE_MAX_SAMPLES] (the upper bound since 0.4.0) or
 * chunk_size < 0; sigma_data or scale out of range; a window that
 * breaks 0 <= sigma_min_active <= sigma_max_active), LGD_ERR_SHAPE_MISMATCH (loss and
 * model dims differ), LGD_ERR_UNSUPPORTED (LGD_GUIDANCE_EXACT with a model without an
 * exact posterior; a backend module without the Monte Carlo kernels),
 * LGD_ERR_OUT_OF_MEMORY. (Since 0.1.0.)
 */
LGD_API lgd_status lgd_guidance_create(lgd_context *context, lgd_model *model, lgd_loss *loss,
                                       const lgd_guidance_options *options,
                                       lgd_guidance **out_guidance);
/** Releases the caller's reference (samplers keep their own); the last one frees the
 *  guidance and drops its model and loss. NULL is a no-op. Any thread. (Since 0.1.0.) */
LGD_API void lgd_guidance_destroy(lgd_guidance *guidance);

/** Shorthand for LGD-MC with n draws (n_samples >= 1) and every other option at its
 *  default (r(sigma) = sigma / sqrt(1 + sigma^2), score step rule, scale 1): the
 *  arguments and statuses of lgd_guidance_create() (whose name its messages carry).
 *  (Since 0.1.0.) */
LGD_API lgd_status lgd_guidance_mc(lgd_context *context, lgd_model *model, lgd_loss *loss,
                                   int32_t n_samples, lgd_guidance **out_guidance);

/** Sets (or with NULL clears) the condition rows [rows][cond_dim] passed to the model.
 *  cond is copied; rows must equal the batch of each later call (else that call fails
 *  with LGD_ERR_SHAPE_MISMATCH). Statuses: LGD_ERR_INVALID_ARGUMENT (guidance NULL, cond
 *  of another context, the model is unconditional), LGD_ERR_SHAPE_MISMATCH (cond not
 *  [rows][cond_dim]), LGD_ERR_OUT_OF_MEMORY. (Since 0.1.0.) */
LGD_API lgd_status lgd_guidance_set_condition(lgd_guidance *guidance, const lgd_tensor *cond);

/** Sets the seed of the MC / exact draws (they are also keyed by step and row);
 *  lgd_sampler_init() and lgd_sampler_start() set it to their own seed. NULL is a no-op.
 *  (Since 0.1.0.) */
LGD_API void lgd_guidance_set_seed(lgd_guidance *guidance, uint64_t seed);

/** The radius r(sigma) that LGD-MC uses at sigma (calls the options' radius function
 *  when one was given, which may return any value; 0 for NULL). Never fails.
 *  (Since 0.1.0.) */
LGD_API float lgd_guidance_radius(const lgd_guidance *guidance, float sigma);

/**
 * Estimates g = grad_x log p_sigma(y | x) into out_g [batch][dim]; also writes
 * xhat = D(x, sigma) into out_xhat ([batch][dim]) when not NULL. x [batch][dim]; sigma
 * finite and > 0. The window [sigma_min_active, sigma_max_active] does not apply here:
 * the term is always computed (0 for LGD_GUIDANCE_NONE). step_index and first_row key
 * the random draws (draw i of row b at step t uses counters (t, first_row + b, i)).
 * report may be NULL. Statuses: LGD_ERR_INVALID_ARGUMENT (guidance, x or out_g NULL,
 * sigma out of range, a report with a struct_size below the first published layout
 * (offsetof(lgd_guidance_report, rows); before 0.4.0 any size >= 4 was taken) or
 * per-row arrays shorter than the batch, a radius function that returns a negative or non-finite r),
 * LGD_ERR_SHAPE_MISMATCH (a tensor not [batch][dim], batches that differ, condition rows
 * that are not the batch), LGD_ERR_NON_FINITE (the denoiser, a loss value or gradient,
 * or g is NaN or Inf; the message names which), LGD_ERR_UNSUPPORTED (DPS / LGD-MC on a
 * model without a VJP), LGD_ERR_ABORTED (lgd_context_cancel() was called: checked
 * before each chunk of draws; since 0.4.0), and those of running the model and the loss
 * (<lgd/lgd.h>). (Since 0.1.0.)
 */
LGD_API lgd_status lgd_guidance_term(lgd_guidance *guidance, const lgd_tensor *x, float sigma,
                                     int32_t step_index, uint64_t first_row,
                                     lgd_tensor *out_g, lgd_tensor *out_xhat,
                                     lgd_guidance_report *report);

/** The guided denoiser xhat_g = D(x, sigma) + lambda(sigma) * g into out [batch][dim]:
 *  outside the window, or for LGD_GUIDANCE_NONE, xhat_g = D(x, sigma) (the model still
 *  runs; report->active = 0). Arguments, keys and statuses as lgd_guidance_term().
 *  (Since 0.1.0.) */
LGD_API lgd_status lgd_guidance_denoise(lgd_guidance *guidance, const lgd_tensor *x,
                                        float sigma, int32_t step_index, uint64_t first_row,
                                        lgd_tensor *out, lgd_guidance_report *report);

/** Takes a reference to the guidance and returns it (NULL for NULL); each reference is
 *  dropped with lgd_guidance_destroy(), the last one frees the guidance. Any thread (see the
 *  thread contract in <lgd/lgd.h>). (Since 0.3.0.) */
LGD_API lgd_guidance *lgd_guidance_retain(lgd_guidance *guidance);
/** The context the guidance was made from (NULL for NULL): borrowed, valid while the
 *  caller holds a reference to the guidance; for lgd_context_last_error(). (Since 0.3.0.) */
LGD_API lgd_context *lgd_guidance_context(const lgd_guidance *guidance);

#ifdef __cplusplus
}
#endif
#endif
