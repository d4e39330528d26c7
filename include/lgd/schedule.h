/*
 * lgd/schedule.h - noise-level grids for samplers, and VP (DDPM) schedules.
 *
 * A grid of `steps` steps is steps + 1 decreasing noise levels, the last one 0.
 * These functions take no context: they report bad arguments by status only (no
 * message), and may be called from any thread.
 */
#ifndef LGD_SCHEDULE_H
#define LGD_SCHEDULE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A noise schedule: of a sampler's grid (lgd_sampler_options.schedule) or of the VP
 *  functions below. (Since 0.1.0.) */
typedef enum lgd_schedule_kind {
    LGD_SCHEDULE_KARRAS = 0,    /**< EDM: (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho */
    LGD_SCHEDULE_VP_LINEAR = 1, /**< discrete DDPM timesteps, linear betas */
    LGD_SCHEDULE_VP_COSINE = 2, /**< discrete timesteps, cosine alphas_cumprod (Nichol & Dhariwal) */
    LGD_SCHEDULE_USER = 3       /**< an array the caller gives */
} lgd_schedule_kind;

/** alphas_cumprod[num_timesteps] (num_timesteps >= 1) into out of a VP schedule:
 *  LGD_SCHEDULE_VP_LINEAR with betas linear from beta_start to beta_end, both in (0, 1)
 *  (DDPM: 1e-4, 0.02), or LGD_SCHEDULE_VP_COSINE (beta_start, beta_end ignored; offset
 *  0.008, betas clipped at 0.999). Statuses: LGD_ERR_INVALID_ARGUMENT (out NULL,
 *  num_timesteps < 1, kind neither VP schedule, linear betas out of range),
 *  LGD_ERR_OUT_OF_MEMORY; out is written only on success. (Since 0.1.0.) */
LGD_API lgd_status lgd_vp_alphas_cumprod(lgd_schedule_kind kind, int32_t num_timesteps,
                                         float beta_start, float beta_end, float *out);

/** Karras grid: out[steps + 1], out[0] = sigma_max, out[steps - 1] = sigma_min,
 *  out[steps] = 0. steps >= 1, 0 < sigma_min < sigma_max < infinity, 0 < rho < infinity.
 *  Statuses: LGD_ERR_INVALID_ARGUMENT (out NULL or an argument out of range; also when
 *  the grid is not strictly decreasing in float, e.g. many steps over a narrow range:
 *  out is then written but not a valid grid). (Since 0.1.0.) */
LGD_API lgd_status lgd_schedule_karras(int32_t steps, float sigma_min, float sigma_max,
                                       float rho, float *out);

/** VP grid: `steps` timesteps evenly spaced from num_timesteps - 1 down to 0 (rounded),
 *  their sigmas sqrt((1 - abar) / abar), then 0, into out[steps + 1]. kind, num_timesteps,
 *  beta_start and beta_end as lgd_vp_alphas_cumprod(); 1 <= steps <= num_timesteps.
 *  Statuses: LGD_ERR_INVALID_ARGUMENT (out NULL, an argument out of range, a grid that
 *  is not strictly decreasing in float), LGD_ERR_OUT_OF_MEMORY. (Since 0.1.0.) */
LGD_API lgd_status lgd_schedule_vp(lgd_schedule_kind kind, int32_t num_timesteps,
                                   float beta_start, float beta_end, int32_t steps, float *out);

#ifdef __cplusplus
}
#endif
#endif
