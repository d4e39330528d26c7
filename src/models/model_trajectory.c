/*
 * model_trajectory.c - a trajectory prior built on the exact Gaussian mixture:
 * root velocities [frames][2] around headings x turn rates, with Gaussian-process
 * variation (see lgd_trajectory_prior_options in include/lgd/model.h).
 */
#include <math.h>
#include <stdlib.h>

#include "core/internal.h"
#include "models/model_internal.h"

lgd_status lgd_trajectory_prior_options_init(lgd_trajectory_prior_options *options, uint32_t struct_size)
{
    const lgd_trajectory_prior_options defaults = LGD_TRAJECTORY_PRIOR_OPTIONS_INIT;
    return lgd_init_struct(options, struct_size, &defaults, sizeof defaults, sizeof(lgd_trajectory_prior_options));
}

lgd_status lgd_model_create_trajectory_prior(lgd_context *ctx,
                                             const lgd_trajectory_prior_options *options,
                                             lgd_model **out)
{
    static const char fn[] = "lgd_model_create_trajectory_prior";
    if (!ctx)
        return LGD_ERR_INVALID_ARGUMENT;
    if (!out)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT, "%s: out_model is NULL", fn);
    *out = NULL;
    lgd_trajectory_prior_options o, defaults = LGD_TRAJECTORY_PRIOR_OPTIONS_INIT;
    {
        lgd_status rst =
            lgd_read_struct(ctx, fn, "options", &o, sizeof o, sizeof o, options, &defaults);
        if (rst)
            return rst;
    }
    if (o.frames < 1 || o.frames > 4096 || o.headings < 1 || o.turns < 1 ||
        (int64_t)o.headings * o.turns > 4096)
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: need 1 <= frames <= 4096, headings >= 1, turns >= 1 and at most "
                         "4096 components", fn);
    if (!isfinite(o.max_turn) || !isfinite(o.speed) || !(o.gp_std >= 0.0f) ||
        !isfinite(o.gp_std) || !(o.gp_length > 0.0f) || !isfinite(o.gp_length) ||
        !(o.jitter > 0.0f) || !isfinite(o.jitter))
        return lgd_error(ctx, LGD_ERR_INVALID_ARGUMENT,
                         "%s: max_turn and speed must be finite, gp_std >= 0, gp_length > 0 "
                         "and jitter > 0", fn);
    size_t T = (size_t)o.frames, D = 2 * T, K = (size_t)o.headings * (size_t)o.turns;
    float *w = malloc(K * sizeof *w), *mu = malloc(K * D * sizeof *mu);
    float *cov = malloc(K * D * D * sizeof *cov);
    lgd_status st = LGD_OK;
    if (!w || !mu || !cov) {
        st = lgd_error(ctx, LGD_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
        goto done;
    }
    /* the shared covariance: independent axes, SE kernel over frames + jitter */
    double a2 = (double)o.gp_std * o.gp_std, l2 = (double)o.gp_length * o.gp_length;
    for (size_t t = 0; t < T; t++)
        for (size_t s = 0; s < T; s++) {
            double dt = (double)t - (double)s;
            double c = a2 * exp(-0.5 * dt * dt / l2) + (t == s ? o.jitter : 0.0);
            for (size_t ax = 0; ax < 2; ax++)
                for (size_t bx = 0; bx < 2; bx++)
                    cov[(2 * t + ax) * D + 2 * s + bx] = ax == bx ? (float)c : 0.0f;
        }
    for (size_t k = 1; k < K; k++)
        for (size_t i = 0; i < D * D; i++)
            cov[k * D * D + i] = cov[i];
    for (size_t h = 0; h < (size_t)o.headings; h++)
        for (size_t r = 0; r < (size_t)o.turns; r++) {
            size_t k = h * (size_t)o.turns + r;
            double theta0 = 6.283185307179586 * (double)h / (double)o.headings;
            double turn = o.turns == 1 ? 0.0
                                       : -o.max_turn + 2.0 * o.max_turn * (double)r / (o.turns - 1);
            w[k] = 1.0f;
            for (size_t t = 0; t < T; t++) {
                double theta = theta0 + turn * (T > 1 ? (double)t / (double)(T - 1) : 0.0);
                mu[k * D + 2 * t] = (float)(o.speed * cos(theta));
                mu[k * D + 2 * t + 1] = (float)(o.speed * sin(theta));
            }
        }
    st = lgd_model_create_gmm(ctx, (int64_t)D, (int64_t)K, w, mu, cov, LGD_COVARIANCE_FULL, out);
done:
    free(w);
    free(mu);
    free(cov);
    return st;
}
