/*
 * guide_example.c - the complete example of docs/guide.md.
 *
 * Steers samples of a 2-D Gaussian-mixture prior towards a target point with a
 * loss written here in C, using LGD-MC guidance and stepping the sampler by hand.
 * Exits 0 when the guided mean ends up closer to the target than the prior mean.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <lgd/lgd.h>

#define DIM 2
#define BATCH 2000

/* 1. The host's own loss: l(x) = |x - target|^2 / (2 s^2), gradient (x - target) / s^2. */
typedef struct point_loss {
    float target[DIM];
    float s;
} point_loss;

static int32_t point_loss_eval(void *user, const float *x, int64_t batch, int64_t n,
                               int64_t dim, float *loss, float *grad)
{
    const point_loss *pl = user;
    const float inv_s2 = 1.0f / (pl->s * pl->s);
    for (int64_t r = 0; r < batch * n; r++) { /* rows are [batch][n], dim floats each */
        const float *xr = x + r * dim;
        float l = 0.0f;
        for (int64_t j = 0; j < dim; j++) {
            float d = xr[j] - pl->target[j];
            l += d * d;
            if (grad)
                grad[r * dim + j] = d * inv_s2;
        }
        loss[r] = 0.5f * l * inv_s2;
    }
    return 0; /* non-zero would abort the step with LGD_ERR_CALLBACK */
}

/* Prints the library's failure message and jumps to the cleanup. */
#define CHECK(call)                                                                  \
    do {                                                                             \
        lgd_status st_ = (call);                                                     \
        if (st_ != LGD_OK) {                                                         \
            fprintf(stderr, "%s failed: %s: %s\n", #call, lgd_status_string(st_),    \
                    lgd_context_last_error(ctx));                                    \
            goto cleanup;                                                            \
        }                                                                            \
    } while (0)

int main(void)
{
    int exit_code = 1;
    lgd_context *ctx = NULL;
    lgd_model *model = NULL;
    lgd_loss *loss = NULL;
    lgd_guidance *guidance = NULL;
    lgd_sampler *sampler = NULL;
    lgd_tensor *x = NULL;
    float *samples = NULL;

    /* 2. A context on the CPU backend. */
    lgd_context_options copts = LGD_CONTEXT_OPTIONS_INIT;
    copts.backend = LGD_BACKEND_CPU;
    const char *create_error = NULL;
    lgd_status st = lgd_context_create(&copts, &ctx, &create_error);
    if (st != LGD_OK) {
        fprintf(stderr, "lgd_context_create: %s\n", create_error);
        return 1;
    }

    /* 3. The prior: four isotropic Gaussians at the corners of a square. */
    const float weights[4] = { 0.4f, 0.3f, 0.2f, 0.1f };
    const float means[4 * DIM] = { -2, -2,   2, -2,   -2, 2,   2, 2 };
    const float variances[4] = { 0.1f, 0.1f, 0.1f, 0.1f };
    CHECK(lgd_model_create_gmm(ctx, DIM, 4, weights, means, variances,
                               LGD_COVARIANCE_ISOTROPIC, &model));

    /* 4. Register the loss. The library calls point_loss_eval with host pointers. */
    point_loss pl = { { 1.5f, 1.5f }, 1.0f };
    lgd_loss_callbacks lcb = LGD_LOSS_CALLBACKS_INIT;
    lcb.memory = LGD_MEMORY_HOST;
    lcb.dim = DIM;
    lcb.eval = point_loss_eval;
    lcb.user = &pl; /* outlives the loss, so no destroy callback is needed */
    CHECK(lgd_loss_create_callbacks(ctx, &lcb, &loss));

    /* 5. LGD-MC guidance with 16 draws per call, the paper's r(sigma). */
    lgd_guidance_options gopts = LGD_GUIDANCE_OPTIONS_INIT;
    gopts.kind = LGD_GUIDANCE_MC;
    gopts.n_samples = 16;
    gopts.step_rule = LGD_STEP_SCORE;
    gopts.scale = 1.0f;
    CHECK(lgd_guidance_create(ctx, model, loss, &gopts, &guidance));

    /* 6. A 20-step Euler (DDIM) sampler on the Karras schedule. */
    lgd_sampler_options sopts = LGD_SAMPLER_OPTIONS_INIT;
    sopts.kind = LGD_SAMPLER_EULER;
    sopts.steps = 20;
    CHECK(lgd_sampler_create(guidance, &sopts, &sampler));

    /* The objects keep what they use alive: drop our references now. */
    lgd_guidance_destroy(guidance);
    guidance = NULL;
    lgd_loss_destroy(loss);
    loss = NULL;

    /* 7. Step the sampler by hand, printing the guidance report of each step. */
    CHECK(lgd_tensor_create_2d(ctx, BATCH, DIM, &x));
    CHECK(lgd_sampler_init(sampler, x, /*seed=*/42, /*first_row=*/0));
    printf("%4s %10s %12s %8s %8s\n", "step", "sigma", "mean loss", "ESS", "min ESS");
    while (!lgd_sampler_done(sampler)) {
        int32_t step = lgd_sampler_step_index(sampler);
        float sigma = lgd_sampler_sigma(sampler);
        lgd_guidance_report rep = LGD_GUIDANCE_REPORT_INIT;
        CHECK(lgd_sampler_step(sampler, x, &rep));
        printf("%4d %10.4f %12.4f %8.2f %8.2f\n", (int)step, (double)sigma,
               (double)rep.mean_loss, (double)rep.mean_ess, (double)rep.min_ess);
    }

    /* 8. Download the samples and compare their mean with the prior's. */
    samples = malloc(sizeof(float) * BATCH * DIM);
    if (!samples) {
        fprintf(stderr, "out of memory\n");
        goto cleanup;
    }
    CHECK(lgd_tensor_download(x, samples, (int64_t)BATCH * DIM));
    double guided[DIM] = { 0 }, prior[DIM] = { 0 }, exact[DIM] = { 0 }, z = 0.0;
    for (int i = 0; i < BATCH; i++)
        for (int j = 0; j < DIM; j++)
            guided[j] += samples[i * DIM + j] / (double)BATCH;
    /* For reference, the exact answer: prior times the Gaussian exp(-l) is again a
     * mixture, with weights w_k N(target; mu_k, (v_k + s^2) I) and component means
     * (s^2 mu_k + v_k target) / (v_k + s^2). */
    const double s2 = (double)pl.s * pl.s;
    for (int k = 0; k < 4; k++) {
        double vk = variances[k], d2 = 0.0;
        for (int j = 0; j < DIM; j++) {
            double d = means[k * DIM + j] - pl.target[j];
            d2 += d * d;
        }
        double wk = weights[k] * exp(-0.5 * d2 / (vk + s2)) / (vk + s2); /* 2-D normaliser */
        z += wk;
        for (int j = 0; j < DIM; j++) {
            prior[j] += weights[k] * means[k * DIM + j];
            exact[j] += wk * (s2 * means[k * DIM + j] + vk * pl.target[j]) / (vk + s2);
        }
    }
    double d_prior = hypot(prior[0] - pl.target[0], prior[1] - pl.target[1]);
    double d_guided = hypot(guided[0] - pl.target[0], guided[1] - pl.target[1]);
    printf("prior mean  (%7.3f, %7.3f), distance to target %.3f\n", prior[0], prior[1], d_prior);
    printf("guided mean (%7.3f, %7.3f), distance to target %.3f\n", guided[0], guided[1],
           d_guided);
    printf("exact mean of p0(x) exp(-l(x)) / Z: (%7.3f, %7.3f)\n", exact[0] / z, exact[1] / z);
    if (!(d_guided < d_prior)) {
        fprintf(stderr, "guidance did not move the samples towards the target\n");
        goto cleanup;
    }
    exit_code = 0;

cleanup: /* 9. Free everything; destroy(NULL) is a no-op. */
    free(samples);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(sampler);
    lgd_guidance_destroy(guidance);
    lgd_loss_destroy(loss);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
    return exit_code;
}
