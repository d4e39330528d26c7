/*
 * schedule.c - noise-level grids: Karras (EDM) rho-schedule and discrete VP (DDPM)
 * schedules with linear or cosine alphas_cumprod.
 *
 * Everything is computed in double and rounded to float once at the end. These
 * functions have no context, so they report bad arguments by status only.
 */
#include <math.h>
#include <stdlib.h>

#include "core/internal.h"

/* Nichol & Dhariwal (2021) cosine schedule offset and beta clip. */
#define LGD_COSINE_S 0.008
#define LGD_COSINE_MAX_BETA 0.999
#define LGD_HALF_PI 1.57079632679489661923

/* A grid of steps + 1 floats must be strictly decreasing and positive, then 0. */
static int grid_ok(const float *g, int32_t steps)
{
    for (int32_t i = 0; i < steps; i++)
        if (!(isfinite(g[i]) && g[i] > 0.0f && g[i] > g[i + 1]))
            return 0;
    return g[steps] == 0.0f;
}

static double cosine_alpha_bar(double t)
{
    double c = cos((t + LGD_COSINE_S) / (1.0 + LGD_COSINE_S) * LGD_HALF_PI);
    return c * c;
}

/* alphas_cumprod in double (internal, shared by both VP functions). */
static lgd_status vp_abar(lgd_schedule_kind kind, int32_t T, float beta_start, float beta_end,
                          double *out)
{
    if (T < 1 || !out)
        return LGD_ERR_INVALID_ARGUMENT;
    if (kind == LGD_SCHEDULE_VP_LINEAR) {
        if (!(beta_start > 0.0f && beta_start < 1.0f && beta_end > 0.0f && beta_end < 1.0f))
            return LGD_ERR_INVALID_ARGUMENT;
        double b0 = beta_start, b1 = beta_end, prod = 1.0;
        for (int32_t t = 0; t < T; t++) {
            double beta = T > 1 ? b0 + (b1 - b0) * ((double)t / (double)(T - 1)) : b0;
            prod *= 1.0 - beta;
            out[t] = prod;
        }
        return LGD_OK;
    }
    if (kind == LGD_SCHEDULE_VP_COSINE) {
        double prod = 1.0;
        for (int32_t t = 0; t < T; t++) {
            double a1 = cosine_alpha_bar((double)t / T);
            double a2 = cosine_alpha_bar((double)(t + 1) / T);
            double beta = 1.0 - a2 / a1;
            if (beta > LGD_COSINE_MAX_BETA)
                beta = LGD_COSINE_MAX_BETA;
            prod *= 1.0 - beta;
            out[t] = prod;
        }
        return LGD_OK;
    }
    return LGD_ERR_INVALID_ARGUMENT;
}

lgd_status lgd_vp_alphas_cumprod(lgd_schedule_kind kind, int32_t num_timesteps,
                                 float beta_start, float beta_end, float *out)
{
    if (num_timesteps < 1 || !out)
        return LGD_ERR_INVALID_ARGUMENT;
    double *abar = malloc((size_t)num_timesteps * sizeof *abar);
    if (!abar)
        return LGD_ERR_OUT_OF_MEMORY;
    lgd_status st = vp_abar(kind, num_timesteps, beta_start, beta_end, abar);
    if (st == LGD_OK)
        for (int32_t t = 0; t < num_timesteps; t++)
            out[t] = (float)abar[t];
    free(abar);
    return st;
}

lgd_status lgd_schedule_karras(int32_t steps, float sigma_min, float sigma_max, float rho,
                               float *out)
{
    if (steps < 1 || !out || !(sigma_min > 0.0f) || !(sigma_max > sigma_min) ||
        !isfinite(sigma_max) || !(rho > 0.0f) || !isfinite(rho))
        return LGD_ERR_INVALID_ARGUMENT;
    double inv_rho = 1.0 / (double)rho;
    double a = pow((double)sigma_max, inv_rho), b = pow((double)sigma_min, inv_rho);
    for (int32_t i = 0; i < steps; i++) {
        double ramp = steps > 1 ? (double)i / (double)(steps - 1) : 0.0;
        out[i] = (float)pow(a + ramp * (b - a), (double)rho);
    }
    /* exact endpoints, whatever pow's rounding */
    out[0] = sigma_max;
    if (steps > 1)
        out[steps - 1] = sigma_min;
    out[steps] = 0.0f;
    return grid_ok(out, steps) ? LGD_OK : LGD_ERR_INVALID_ARGUMENT;
}

lgd_status lgd_schedule_vp(lgd_schedule_kind kind, int32_t num_timesteps, float beta_start,
                           float beta_end, int32_t steps, float *out)
{
    if (num_timesteps < 1 || steps < 1 || steps > num_timesteps || !out)
        return LGD_ERR_INVALID_ARGUMENT;
    double *abar = malloc((size_t)num_timesteps * sizeof *abar);
    if (!abar)
        return LGD_ERR_OUT_OF_MEMORY;
    lgd_status st = vp_abar(kind, num_timesteps, beta_start, beta_end, abar);
    if (st == LGD_OK) {
        double tmax = (double)(num_timesteps - 1);
        for (int32_t i = 0; i < steps; i++) {
            double tf = steps > 1 ? tmax * (double)(steps - 1 - i) / (double)(steps - 1) : tmax;
            int32_t t = (int32_t)lround(tf);
            out[i] = (float)sqrt((1.0 - abar[t]) / abar[t]);
        }
        out[steps] = 0.0f;
        if (!grid_ok(out, steps))
            st = LGD_ERR_INVALID_ARGUMENT;
    }
    free(abar);
    return st;
}
