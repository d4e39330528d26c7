/*
 * mixture_problem.c - lgd mixture's fixed data and problem: the prior
 * 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2), the exact target N(-1, 0.2^2) as a model of its
 * own, the logistic loss -log p(y = 0 | x0), and their densities on a grid
 * (density.csv).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mixture.h"

const float mix_weights[NCOMP] = { 0.5f, 0.5f };
const float mix_means[NCOMP] = { -1.0f, 1.0f };
const float mix_std = 0.2f;

const double curve_sigmas[NCURVE_SIGMAS] = { 1.0, 80.0 };
const double curve_half_width[NCURVE_SIGMAS] = { 3.0, 240.0 };
const int32_t curve_mc[NCURVE_MC] = { 1, 5, 10, 20, 100 };

/*
 * The logistic loss from the mixture's log-odds. For two components with a common
 * variance s^2, Bayes' rule gives
 *   log p(y=0|x0) / p(y=1|x0)
 *     = log(w0/w1) - (x0 - m0)^2 / (2 s^2) + (x0 - m1)^2 / (2 s^2)
 *     = a x0 + b,   a = (m0 - m1) / s^2,   b = (m1^2 - m0^2) / (2 s^2) + log(w0/w1),
 * and p(y=0|x0) = sigmoid(a x0 + b). The library's logistic loss is
 * l(x0) = -log sigmoid(a x0 + b), so exp(-l(x0)) = p(y=0|x0) and
 *   p0(x0) exp(-l(x0)) = p(x0, y=0) = w0 N(x0; m0, s^2):
 * the guided target is exactly component 0, N(-1, 0.2^2). Here a = -50, b = 0.
 */
static int create_loss(mix_problem *pb)
{
    lgd_context *ctx = pb->ctx;
    const double s2 = (double)mix_std * mix_std;
    pb->a = (float)(((double)mix_means[0] - mix_means[1]) / s2);
    pb->b = (float)(((double)mix_means[1] * mix_means[1] -
                     (double)mix_means[0] * mix_means[0]) / (2.0 * s2) +
                    log((double)mix_weights[0] / mix_weights[1]));
    return CK(ctx, lgd_loss_create_logistic(ctx, 1, &pb->a, pb->b, &pb->loss));
}

int mix_problem_create(mix_problem *pb, const mix_config *cfg)
{
    if (tool_context_create(CMD, tool_backend_kind(cfg->backend_choice), cfg->threads,
                            &pb->ctx))
        return 1;
    lgd_context *ctx = pb->ctx;
    const float var[NCOMP] = { mix_std * mix_std, mix_std * mix_std };
    if (CK(ctx, lgd_model_create_gmm(ctx, 1, NCOMP, mix_weights, mix_means, var,
                                     LGD_COVARIANCE_ISOTROPIC, &pb->mix)))
        return 1;
    const float one = 1.0f;
    if (CK(ctx, lgd_model_create_gmm(ctx, 1, 1, &one, &mix_means[0], &var[0],
                                     LGD_COVARIANCE_ISOTROPIC, &pb->target)))
        return 1;
    pb->w0 = (double)mix_weights[0] / ((double)mix_weights[0] + mix_weights[1]);
    return create_loss(pb);
}

void mix_problem_destroy(mix_problem *pb)
{
    lgd_loss_destroy(pb->loss);
    lgd_model_destroy(pb->target);
    lgd_model_destroy(pb->mix);
    lgd_context_destroy(pb->ctx);
}

int mix_compute_densities(mix_problem *pb, mix_densities *d)
{
    lgd_context *ctx = pb->ctx;
    int64_t n = DENS_POINTS;
    float h[DENS_POINTS];
    lgd_tensor *xt = NULL, *out = NULL;
    int rc = 1;
    for (int64_t i = 0; i < n; i++) {
        d->x[i] = DENS_LO + (DENS_HI - DENS_LO) * (double)i / (double)(n - 1);
        h[i] = (float)d->x[i];
    }
    if (CK(ctx, lgd_tensor_create_2d(ctx, n, 1, &xt)) ||
        CK(ctx, lgd_tensor_create(ctx, 1, &n, &out)) ||
        CK(ctx, lgd_tensor_upload(xt, h, (size_t)n)))
        goto done;
    if (CK(ctx, lgd_model_log_density(pb->mix, xt, 0.0f, out)) ||
        CK(ctx, lgd_tensor_download(out, h, (size_t)n)))
        goto done;
    for (int64_t i = 0; i < n; i++)
        d->prior[i] = exp((double)h[i]);
    if (CK(ctx, lgd_model_log_density(pb->target, xt, 0.0f, out)) ||
        CK(ctx, lgd_tensor_download(out, h, (size_t)n)))
        goto done;
    for (int64_t i = 0; i < n; i++)
        d->target[i] = exp((double)h[i]);
    if (CK(ctx, lgd_loss_eval(pb->loss, xt, out, NULL)) ||
        CK(ctx, lgd_tensor_download(out, h, (size_t)n)))
        goto done;
    for (int64_t i = 0; i < n; i++)
        d->likelihood[i] = exp(-(double)h[i]);
    rc = 0;
done:
    lgd_tensor_destroy(xt);
    lgd_tensor_destroy(out);
    return rc;
}

int mix_write_densities_csv(const mix_config *cfg, const mix_densities *d)
{
    tool_file out;
    if (tool_file_open(&out, CMD, cfg->out, "density.csv", "x,prior,exp_neg_loss,target"))
        return 1;
    for (int i = 0; i < DENS_POINTS; i++)
        fprintf(out.f, "%.9g,%.9g,%.9g,%.9g\n", d->x[i], d->prior[i], d->likelihood[i],
                d->target[i]);
    return tool_file_close(&out);
}
