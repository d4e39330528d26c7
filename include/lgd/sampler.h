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
 * Noise is drawn from Philox counters keyed by the seed, the step and the global row
 * index, so the same seed gives the same bytes whatever the batch split.
 */
#ifndef LGD_SAMPLER_H
#define LGD_SAMPLER_H

#include "common.h"
#include "guidance.h"
#include "schedule.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lgd_sampler_kind {
    LGD_SAMPLER_EULER = 0,
    LGD_SAMPLER_DDIM = 1,
    LGD_SAMPLER_HEUN = 2,
    LGD_SAMPLER_DPMPP_2M = 3
} lgd_sampler_kind;

typedef struct lgd_sampler_options {
    uint32_t struct_size;
    lgd_sampler_kind kind;          /**< default LGD_SAMPLER_EULER */
    int32_t steps;                  /**< number of steps >= 1, default 20 (USER: from the array) */
    lgd_schedule_kind schedule;     /**< default LGD_SCHEDULE_KARRAS */
    float sigma_min;                /**< Karras, default 0.002 */
    float sigma_max;                /**< Karras, default 80 */
    float rho;                      /**< Karras, default 7 */
    float eta;                      /**< DDIM stochasticity, default 0 */
    float s_churn;                  /**< Heun churn (EDM), default 0 */
    float s_tmin;                   /**< default 0 */
    float s_tmax;                   /**< default +infinity */
    float s_noise;                  /**< default 1 */
    int32_t vp_timesteps;           /**< VP schedules: training timesteps, default 1000 */
    float vp_beta_start;            /**< VP linear, default 1e-4 */
    float vp_beta_end;              /**< VP linear, default 0.02 */
    const float *sigmas;            /**< USER: n_sigmas decreasing values > 0, optionally ending
                                         in 0 (appended when missing). Copied. */
    int32_t n_sigmas;
} lgd_sampler_options;

#define LGD_SAMPLER_OPTIONS_INIT \
    LGD_STRUCT_INIT_(lgd_sampler_options, LGD_SAMPLER_EULER, 20, LGD_SCHEDULE_KARRAS, \
        0.002f, 80.0f, 7.0f, 0.0f, 0.0f, 0.0f, LGD_INFINITY_F_, 1.0f, 1000, 1e-4f, 0.02f, \
        NULL, 0)
LGD_API lgd_status lgd_sampler_options_init(lgd_sampler_options *options, uint32_t struct_size);

/** Creates a sampler that uses `guidance` (kept alive by its own reference); use a
 *  guidance of kind LGD_GUIDANCE_NONE for unguided sampling. options NULL = defaults. */
LGD_API lgd_status lgd_sampler_create(lgd_guidance *guidance, const lgd_sampler_options *options,
                                      lgd_sampler **out_sampler);
LGD_API void lgd_sampler_destroy(lgd_sampler *sampler);

/** Number of steps, and the grid of steps + 1 noise levels into out[count]. */
LGD_API int32_t lgd_sampler_num_steps(const lgd_sampler *sampler);
LGD_API lgd_status lgd_sampler_sigmas(const lgd_sampler *sampler, float *out, size_t count);

/**
 * Starts a run: x [batch][dim] = sigma_max * z, with z drawn from `seed`; rows are
 * numbered from first_row (give the offset of this batch in a larger run to get the
 * same samples whatever the split). The guidance's MC draws use the same seed.
 */
LGD_API lgd_status lgd_sampler_init(lgd_sampler *sampler, lgd_tensor *x, uint64_t seed,
                                    uint64_t first_row);
/** Advances x by one step in place. report (may be NULL) receives the guidance
 *  diagnostics of the step's last guided call. LGD_ERR_STATE when finished. */
LGD_API lgd_status lgd_sampler_step(lgd_sampler *sampler, lgd_tensor *x,
                                    lgd_guidance_report *report);

/** Index of the next step (0 after init, num_steps when done), and its sigma. */
LGD_API int32_t lgd_sampler_step_index(const lgd_sampler *sampler);
LGD_API float lgd_sampler_sigma(const lgd_sampler *sampler);
LGD_API int lgd_sampler_done(const lgd_sampler *sampler);

/** Progress callback: return non-zero to stop the run (LGD_ERR_ABORTED). */
typedef int (*lgd_progress_fn)(void *user, int32_t step, int32_t num_steps, float sigma,
                               const lgd_guidance_report *report);

/** init + every step. progress may be NULL. */
LGD_API lgd_status lgd_sampler_run(lgd_sampler *sampler, lgd_tensor *x, uint64_t seed,
                                   uint64_t first_row, lgd_progress_fn progress, void *user);

#ifdef __cplusplus
}
#endif
#endif
