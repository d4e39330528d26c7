/*
 * sampler_grid.c - the noise-level grid of a sampler (sampler_grid.h): a USER array
 * checked and copied, or a Karras / VP schedule (sampling/schedule.c) built.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/sampler_grid.h"

static const char *const FN = "lgd_sampler_create";

/* A USER array: finite, strictly decreasing, > 0 except a final 0. Sets *steps. */
static lgd_status check_user_sigmas(lgd_context *ctx, const lgd_sampler_options *o,
                                    int32_t max_steps, int32_t *steps)
{
    if (!o->sigmas || o->n_sigmas < 1)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: the USER schedule needs options->sigmas and n_sigmas >= 1 "
                         "(got %s, %d)",
                         FN, o->sigmas ? "an array" : "NULL", (int)o->n_sigmas);
    int32_t n = o->n_sigmas;
    for (int32_t i = 0; i < n; i++) {
        float v = o->sigmas[i];
        int last = i == n - 1;
        if (!isfinite(v) || v < 0.0f || (v == 0.0f && !last) || (v == 0.0f && n == 1))
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "%s: options->sigmas[%d] = %g: noise levels must be finite "
                             "and > 0 (only the last may be 0, and not alone)",
                             FN, (int)i, (double)v);
        if (i > 0 && !(v < o->sigmas[i - 1]))
            return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                             "%s: options->sigmas must be strictly decreasing "
                             "(sigmas[%d] = %g, sigmas[%d] = %g)",
                             FN, (int)(i - 1), (double)o->sigmas[i - 1], (int)i, (double)v);
    }
    *steps = o->sigmas[n - 1] == 0.0f ? n - 1 : n;
    if (*steps > max_steps)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: %d noise levels is more than the %d steps supported", FN, (int)n,
                         (int)max_steps);
    return LGD_OK;
}

static lgd_status karras_grid(lgd_context *ctx, const lgd_sampler_options *o, int32_t steps,
                              float *sigmas)
{
    if (!(o->sigma_min > 0.0f) || !(o->sigma_max > o->sigma_min) || !isfinite(o->sigma_max) ||
        !(o->rho > 0.0f) || !isfinite(o->rho))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: Karras schedule needs 0 < sigma_min < sigma_max < inf and "
                         "0 < rho < inf (got sigma_min %g, sigma_max %g, rho %g)",
                         FN, (double)o->sigma_min, (double)o->sigma_max, (double)o->rho);
    lgd_status st = lgd_schedule_karras(steps, o->sigma_min, o->sigma_max, o->rho, sigmas);
    if (st == LGD_ERR_INVALID_ARGUMENT)
        return lgd_error(ctx, st,
                         "%s: the Karras grid of %d steps from %g to %g has repeated "
                         "noise levels in float",
                         FN, (int)steps, (double)o->sigma_max, (double)o->sigma_min);
    return st;
}

static lgd_status vp_grid(lgd_context *ctx, const lgd_sampler_options *o, int32_t steps,
                          float *sigmas)
{
    if (o->vp_timesteps < 1 || steps > o->vp_timesteps)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: VP schedule needs 1 <= steps <= vp_timesteps (got steps %d, "
                         "vp_timesteps %d)",
                         FN, (int)steps, (int)o->vp_timesteps);
    if (o->schedule == LGD_SCHEDULE_VP_LINEAR &&
        !(o->vp_beta_start > 0.0f && o->vp_beta_start < 1.0f && o->vp_beta_end > 0.0f &&
          o->vp_beta_end < 1.0f))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: VP linear betas must be in (0, 1) (got vp_beta_start %g, "
                         "vp_beta_end %g)",
                         FN, (double)o->vp_beta_start, (double)o->vp_beta_end);
    lgd_status st = lgd_schedule_vp(o->schedule, o->vp_timesteps, o->vp_beta_start,
                                    o->vp_beta_end, steps, sigmas);
    if (st == LGD_ERR_INVALID_ARGUMENT)
        return lgd_error(ctx, st, "%s: the VP schedule gives no strictly decreasing positive grid",
                         FN);
    return st;
}

lgd_status lgd_sampler_grid(lgd_context *ctx, const lgd_sampler_options *o, int32_t max_steps,
                            float **out_sigmas, int32_t *out_steps)
{
    *out_sigmas = NULL;
    *out_steps = 0;
    int user = o->schedule == LGD_SCHEDULE_USER;
    if (!user && o->schedule != LGD_SCHEDULE_KARRAS && o->schedule != LGD_SCHEDULE_VP_LINEAR &&
        o->schedule != LGD_SCHEDULE_VP_COSINE)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: options->schedule = %d is not a known lgd_schedule_kind", FN,
                         (int)o->schedule);
    int32_t steps = o->steps;
    lgd_status st;
    if (user && (st = check_user_sigmas(ctx, o, max_steps, &steps)))
        return st;
    if (!user && (steps < 1 || steps > max_steps))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: options->steps = %d must be in [1, %d]", FN, (int)steps,
                         (int)max_steps);
    float *sigmas = malloc(((size_t)steps + 1) * sizeof *sigmas);
    if (!sigmas)
        return lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", FN);
    if (user) {
        memcpy(sigmas, o->sigmas, (size_t)o->n_sigmas * sizeof *sigmas);
        sigmas[steps] = 0.0f;
        st = LGD_OK;
    } else if (o->schedule == LGD_SCHEDULE_KARRAS) {
        st = karras_grid(ctx, o, steps, sigmas);
    } else {
        st = vp_grid(ctx, o, steps, sigmas);
    }
    if (st) {
        free(sigmas);
        /* invalid arguments have their message; other failures of the schedule
         * functions get one here */
        if (st != LGD_ERR_INVALID_ARGUMENT)
            return lgd_error(ctx, st, "%s: cannot build the noise schedule (%s)", FN,
                             lgd_status_string(st));
        return st;
    }
    *out_sigmas = sigmas;
    *out_steps = steps;
    return LGD_OK;
}
