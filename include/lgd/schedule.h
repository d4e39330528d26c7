/*
 * lgd/schedule.h - noise-level grids for samplers, and VP (DDPM) schedules.
 *
 * A grid of `steps` steps is steps + 1 decreasing noise levels, the last one 0.
 */
#ifndef LGD_SCHEDULE_H
#define LGD_SCHEDULE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lgd_schedule_kind {
    LGD_SCHEDULE_KARRAS = 0,    /**< EDM: (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho */
    LGD_SCHEDULE_VP_LINEAR = 1, /**< discrete DDPM timesteps, linear betas */
    LGD_SCHEDULE_VP_COSINE = 2, /**< discrete timesteps, cosine alphas_cumprod (Nichol & Dhariwal) */
    LGD_SCHEDULE_USER = 3       /**< an array the caller gives */
} lgd_schedule_kind;

/** alphas_cumprod[num_timesteps] of a VP schedule: LGD_SCHEDULE_VP_LINEAR with betas
 *  linear from beta_start to beta_end (DDPM: 1e-4, 0.02), or LGD_SCHEDULE_VP_COSINE
 *  (beta_start, beta_end ignored; offset 0.008, betas clipped at 0.999). */
LGD_API lgd_status lgd_vp_alphas_cumprod(lgd_schedule_kind kind, int32_t num_timesteps,
                                         float beta_start, float beta_end, float *out);

/** Karras grid: out[steps + 1], out[steps] = 0. steps >= 1, 0 < sigma_min < sigma_max, rho > 0. */
LGD_API lgd_status lgd_schedule_karras(int32_t steps, float sigma_min, float sigma_max,
                                       float rho, float *out);

/** VP grid: `steps` timesteps evenly spaced from num_timesteps - 1 down to 0 (rounded),
 *  their sigmas sqrt((1 - abar) / abar), then 0. out[steps + 1]. */
LGD_API lgd_status lgd_schedule_vp(lgd_schedule_kind kind, int32_t num_timesteps,
                                   float beta_start, float beta_end, int32_t steps, float *out);

#ifdef __cplusplus
}
#endif
#endif
