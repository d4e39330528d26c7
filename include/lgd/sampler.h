/*
 * lgd/sampler.h - samplers that integrate from sigma_max to 0 with the guided denoiser.
 *
 * Each step asks the guidance object for xhat_g(x, sigma) and moves x:
 *  - LGD_SAMPLER_EULER: d = (x - xhat_g) / sigma, x += (sigma_next - sigma) d
 *    (this is DDIM with eta = 0);
 *  - LGD_SAMPLER_DDIM: with eta, sigma_up = min(sigma_next, eta * sqrt(sigma_next^2
 *    (sigma^2 - sigma_next^2) / sigma^2)), sigma_down = sqrt(sigma_next^2 - sigma_up^2);
 *    Euler to sigma_down, then + sigma_up z. eta = 1 is DDPM ancestral sampling;
 *  - LGD_SAMPLER_HEUN: EDM Algorithm 2 with optional churn (two model calls per step,
 *    one on the last);
 *  - LGD_SAMPLER_DPMPP_2M: DPM-Solver++(2M) as in k-diffusion.
 * The host owns x ([batch][dim]): lgd_sampler_init() fills it with sigma_max noise,
 * lgd_sampler_step() advances it one step in place, or lgd_sampler_run() does all.
 * lgd_sampler_start() / lgd_sampler_run_from() start from the caller's own x instead, at
 * any level of the grid (the caller's noise, or SDEdit from a clean x0).
 * Noise is drawn from Philox counters keyed by the seed, the step and the global row
 * index, so the same seed gives the same bytes whatever the batch split for liblgd's
 * own kernels (mixtures, losses, samplers). A network evaluated with more than one
 * thread is the exception: OpenBLAS and oneDNN split a GEMM or a convolution by its size,
 * so a row's rounding can depend on the batch it is computed in. To split such a run
 * and get the whole run's bytes, compute whole batches of one batch grid and keep the
 * rows wanted (what `lgd sample --rows` does), or use one thread.
 */
#ifndef LGD_SAMPLER_H
#define LGD_SAMPLER_H

#include "common.h"
#include "guidance.h"
#include "schedule.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The integrator (see the top of this file). (Since 0.1.0.) */
typedef enum lgd_sampler_kind {
    LGD_SAMPLER_EULER = 0,
    LGD_SAMPLER_DDIM = 1,
    LGD_SAMPLER_HEUN = 2,
    LGD_SAMPLER_DPMPP_2M = 3
} lgd_sampler_kind;

/** Options of lgd_sampler_create() (read during the call; the first published layout is
 *  today's). (Since 0.1.0.) */
typedef struct lgd_sampler_options {
    uint32_t struct_size;           /**< sizeof(lgd_sampler_options) */
    lgd_sampler_kind kind;          /**< default LGD_SAMPLER_EULER */
    int32_t steps;                  /**< number of steps, 1 to 2^22, default 20 (USER: from
                                         the array; VP: at most vp_timesteps) */
    lgd_schedule_kind schedule;     /**< default LGD_SCHEDULE_KARRAS */
    float sigma_min;                /**< Karras, default 0.002; 0 < sigma_min < sigma_max */
    float sigma_max;                /**< Karras, default 80; finite */
    float rho;                      /**< Karras, default 7; finite and > 0 */
    float eta;                      /**< DDIM stochasticity in [0, 1], default 0 */
    float s_churn;                  /**< Heun churn (EDM), finite and >= 0, default 0 */
    float s_tmin;                   /**< churn window, 0 <= s_tmin <= s_tmax, default 0 */
    float s_tmax;                   /**< default +infinity */
    float s_noise;                  /**< churn noise scale, finite and >= 0, default 1 */
    int32_t vp_timesteps;           /**< VP schedules: training timesteps >= 1, default 1000 */
    float vp_beta_start;            /**< VP linear, in (0, 1), default 1e-4 */
    float vp_beta_end;              /**< VP linear, in (0, 1), default 0.02 */
    const float *sigmas;            /**< USER: n_sigmas strictly decreasing finite values > 0,
                                         optionally ending in 0 (appended when missing);
                                         at most 2^22 steps. Copied. */
    int32_t n_sigmas;               /**< USER: entries of sigmas, >= 1 (2 or more when
                                         the last is 0) */
} lgd_sampler_options;

#define LGD_SAMPLER_OPTIONS_INIT \
    LGD_STRUCT_INIT_(lgd_sampler_options, LGD_SAMPLER_EULER, 20, LGD_SCHEDULE_KARRAS, \
        0.002f, 80.0f, 7.0f, 0.0f, 0.0f, 0.0f, LGD_INFINITY_F_, 1.0f, 1000, 1e-4f, 0.02f, \
        NULL, 0)
/** Sets *options to LGD_SAMPLER_OPTIONS_INIT, writing exactly struct_size bytes
 *  (lgd_sampler_options_init(&o, sizeof o); as lgd_context_options_init()).
 *  LGD_ERR_INVALID_ARGUMENT (no message) when options is NULL or struct_size is below
 *  sizeof(lgd_sampler_options) (the first published layout). Any thread. (Since 0.1.0;
 *  signature changed in 0.3.0: takes struct_size and returns lgd_status, was void.) */
LGD_API lgd_status lgd_sampler_options_init(lgd_sampler_options *options, uint32_t struct_size);

/** Creates a sampler that uses `guidance` (kept alive by its own reference) on the
 *  guidance's context; use a guidance of kind LGD_GUIDANCE_NONE for unguided sampling.
 *  options NULL = defaults; read during the call (a USER grid is copied). The grid is
 *  built here (lgd_sampler_sigmas()). Statuses: LGD_ERR_INVALID_ARGUMENT (guidance or
 *  out_sampler NULL, a bad struct_size, any option outside the rules of
 *  lgd_sampler_options, a schedule that gives no strictly decreasing grid in float),
 *  LGD_ERR_OUT_OF_MEMORY. (Since 0.1.0.) */
LGD_API lgd_status lgd_sampler_create(lgd_guidance *guidance, const lgd_sampler_options *options,
                                      lgd_sampler **out_sampler);
/** Releases the caller's reference; the last one frees the sampler and drops its
 *  guidance. NULL is a no-op. Any thread. (Since 0.1.0.) */
LGD_API void lgd_sampler_destroy(lgd_sampler *sampler);

/** Number of steps (0 for NULL; a pure getter), and the grid of steps + 1 noise levels
 *  into out[count]: sigmas[0] = sigma_max > ... > sigmas[num_steps] = 0; step i goes
 *  from sigmas[i] to sigmas[i + 1]. Statuses of lgd_sampler_sigmas():
 *  LGD_ERR_INVALID_ARGUMENT (sampler or out NULL), LGD_ERR_SHAPE_MISMATCH (count <
 *  num_steps + 1; a larger array is fine, the rest left alone). (Both since 0.1.0;
 *  lgd_sampler_sigmas' signature changed in 0.3.0: count is int64_t, it was size_t.) */
LGD_API int32_t lgd_sampler_num_steps(const lgd_sampler *sampler);
LGD_API lgd_status lgd_sampler_sigmas(const lgd_sampler *sampler, float *out, int64_t count);

/**
 * Starts a run: x [batch][dim] = sigma_max * z, with z drawn from `seed`; rows are
 * numbered from first_row (give the offset of this batch in a larger run to get the
 * same samples whatever the split). The guidance's MC draws use the same seed.
 * Same as lgd_sampler_start(sampler, x, 0, LGD_START_ADD_NOISE, seed, first_row) with
 * x all zeros, byte for byte. Starts a new run whatever the sampler's state (a finished
 * or failed run included). Statuses (the sampler's state unchanged):
 * LGD_ERR_INVALID_ARGUMENT (sampler or x NULL, x of another context),
 * LGD_ERR_SHAPE_MISMATCH (x not [batch][dim]), LGD_ERR_OUT_OF_MEMORY (scratch for the
 * batch). (Since 0.1.0.)
 */
LGD_API lgd_status lgd_sampler_init(lgd_sampler *sampler, lgd_tensor *x, uint64_t seed,
                                    uint64_t first_row);

/** Flags of lgd_sampler_start() (passed as int32_t). (Since 0.3.0.) */
typedef enum lgd_start_flags {
    LGD_START_NOISY = 0,     /**< x is already at the start level (the caller's noise) */
    LGD_START_ADD_NOISE = 1  /**< x is clean data x0: the sampler adds the noise (SDEdit) */
} lgd_start_flags;
LGD_ENUM_32_(lgd_start_flags);

/**
 * Starts a run from the caller's x [batch][dim] at grid index start_step: the next
 * lgd_sampler_step() goes from sigmas[start_step] to sigmas[start_step + 1], and the run
 * ends after step num_steps - 1 as any run does.
 *  - start_step: 0 <= start_step < lgd_sampler_num_steps() (lgd_sampler_sigmas() gives
 *    the levels);
 *  - flags LGD_START_NOISY (0): x is already at noise level sigmas[start_step] (the
 *    caller's own noise); it is used as is;
 *  - flags LGD_START_ADD_NOISE: x is clean data x0 and becomes x0 + sigmas[start_step] * z,
 *    z from the same Philox stream (seed, first_row) that lgd_sampler_init() draws from
 *    (SDEdit: a larger start_step keeps more of x0);
 *  - seed and first_row key every later random draw (the guidance's MC draws, DDIM and
 *    churn noise) exactly as lgd_sampler_init() does.
 * The steps after a start behave exactly as the same steps after lgd_sampler_init(): a
 * run started at step k with the x that a full run had after k steps gives the same
 * bytes as the rest of that full run. One exception: DPM-Solver++(2M) uses the previous
 * step's denoised estimate, which a started run does not have, so its first step is a
 * first-order step (as step 0 of any run is) and the result differs slightly from the
 * full run's; it is still deterministic. init is start at step 0 from noise: see above.
 * Errors (x and the sampler unchanged): LGD_ERR_INVALID_ARGUMENT (sampler or x NULL,
 * x of another context, start_step out of range, unknown flags; the message names
 * lgd_sampler_start), LGD_ERR_SHAPE_MISMATCH (x is not [batch][dim]),
 * LGD_ERR_NON_FINITE (x has a NaN or an infinity), LGD_ERR_OUT_OF_MEMORY (scratch for
 * the batch). (Since 0.3.0.)
 */
LGD_API lgd_status lgd_sampler_start(lgd_sampler *sampler, lgd_tensor *x, int32_t start_step,
                                     int32_t flags, uint64_t seed, uint64_t first_row);

/** Advances x by one step in place. report (may be NULL) receives the guidance
 *  diagnostics of the step's last guided call, per row too when it asks for them (see
 *  lgd_guidance_report; a report whose per-row arrays are shorter than the batch is
 *  refused with LGD_ERR_INVALID_ARGUMENT before the step, which can then be retried).
 *  x belongs to the caller: it may be read or overwritten between steps (e.g. to
 *  project it or to replace rows); the next step continues from whatever it holds, at
 *  the current level lgd_sampler_sigma(). It must be a [batch][dim] tensor with the
 *  run's batch (the same tensor or another).
 *  Statuses, refused before the step (the step can be retried): LGD_ERR_INVALID_ARGUMENT
 *  (sampler or x NULL, x of another context, a bad report), LGD_ERR_SHAPE_MISMATCH (x
 *  not [batch][dim] or not the run's batch), LGD_ERR_STATE (not started, finished, or
 *  an earlier step failed), LGD_ERR_ABORTED (lgd_context_cancel() was called; since
 *  0.4.0). Failing during the step (LGD_ERR_ABORTED included, when the cancel request
 *  comes during the step's guided call): LGD_ERR_NON_FINITE (x is not
 *  finite after the step) and the guidance's statuses (lgd_guidance_denoise(): e.g.
 *  LGD_ERR_CALLBACK, LGD_ERR_NON_FINITE, LGD_ERR_UNSUPPORTED, LGD_ERR_SHAPE_MISMATCH for
 *  condition rows, LGD_ERR_OUT_OF_MEMORY, LGD_ERR_INTERNAL); x may then be half
 *  updated and the run is over: later steps give LGD_ERR_STATE until init or start.
 *  (Since 0.1.0.) */
LGD_API lgd_status lgd_sampler_step(lgd_sampler *sampler, lgd_tensor *x,
                                    lgd_guidance_report *report);

/** Index of the next step (0 before the first run and after init, start_step after a
 *  start, num_steps when done; -1 for NULL), and its sigma (x's current level; 0 when
 *  done, NaN for NULL). Pure getters. (Since 0.1.0.) */
LGD_API int32_t lgd_sampler_step_index(const lgd_sampler *sampler);
LGD_API float lgd_sampler_sigma(const lgd_sampler *sampler);
/** 1 when the run is finished (and for NULL), else 0: also 0 before the first run and
 *  after a failed step, so a loop on it must check each step's status. A pure getter.
 *  (Since 0.1.0; signature changed in 0.3.0: returns int32_t, it was int.) */
LGD_API int32_t lgd_sampler_done(const lgd_sampler *sampler);

/** Progress callback: returns 0 to go on; any non-zero value stops the run, which
 *  returns LGD_ERR_ABORTED. report is valid only during the call. Like every callback
 *  (lgd/context.h, "Callbacks") it must not unwind (no C++ exception, Rust panic or
 *  longjmp out of it) and may call on the sampler's context only pure getters.
 *  (Since 0.1.0; returns int32_t since 0.3.0, int before: the same ABI.) */
typedef int32_t (*lgd_progress_fn)(void *user, int32_t step, int32_t num_steps, float sigma,
                                   const lgd_guidance_report *report);

/** lgd_sampler_init() + every step: x ends at sigma 0. progress (may be NULL) is called
 *  after each step with step = the number of steps done (1 .. num_steps), num_steps,
 *  the sigma x is now at and the step's report. Statuses: those of lgd_sampler_init()
 *  and lgd_sampler_step() (the messages name lgd_sampler_run), and LGD_ERR_ABORTED when
 *  progress returns non-zero (x holds the last completed step; the run can go on with
 *  lgd_sampler_step()). (Since 0.1.0.) */
LGD_API lgd_status lgd_sampler_run(lgd_sampler *sampler, lgd_tensor *x, uint64_t seed,
                                   uint64_t first_row, lgd_progress_fn progress, void *user);

/** lgd_sampler_start() + every remaining step: x ends at sigma 0. progress (may be NULL)
 *  is called after each step with step = the grid index x is now at (start_step + 1 ..
 *  num_steps). Statuses: those of lgd_sampler_start() (naming lgd_sampler_run_from), of
 *  the steps, and LGD_ERR_ABORTED when progress stops the run. (Since 0.3.0.) */
LGD_API lgd_status lgd_sampler_run_from(lgd_sampler *sampler, lgd_tensor *x,
                                        int32_t start_step, int32_t flags, uint64_t seed,
                                        uint64_t first_row, lgd_progress_fn progress,
                                        void *user);

/** Takes a reference to the sampler and returns it (NULL for NULL); each reference is
 *  dropped with lgd_sampler_destroy(), the last one frees the sampler. Any thread (see the
 *  thread contract in <lgd/lgd.h>). (Since 0.3.0.) */
LGD_API lgd_sampler *lgd_sampler_retain(lgd_sampler *sampler);
/** The context the sampler was made from (NULL for NULL): borrowed, valid while the
 *  caller holds a reference to the sampler; for lgd_context_last_error(). (Since 0.3.0.) */
LGD_API lgd_context *lgd_sampler_context(const lgd_sampler *sampler);

#ifdef __cplusplus
}
#endif
#endif
