/*
 * mixture_samples.c - the reference for tests/c_api.rs: the paper's 1-D mixture sampled
 * through the C API exactly as `lgd mixture` does (examples/lgd/mixture_problem.c and
 * mixture_sampling.c): prior 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2), target N(-1, 0.2^2),
 * the built-in logistic loss from the log-odds, DDIM (eta 0), 20 Karras steps from 80 to
 * 0.002 (rho 7), score step rule at scale 1; one run per method of `samples` rows from
 * `seed` (rows from 0). Prints "METHOD v0 v1 ..." per method, each value the hex bit
 * pattern of the float, so that the comparison is exact.
 *
 * usage: mixture_samples SAMPLES SEED
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lgd/lgd.h>

#define CHECK(ctx, call)                                                                     \
    do {                                                                                     \
        lgd_status st_ = (call);                                                             \
        if (st_ != LGD_OK) {                                                                 \
            fprintf(stderr, "%s: %s (%s)\n", #call, lgd_context_last_error(ctx),            \
                    lgd_status_string(st_));                                                 \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

static void run(lgd_context *ctx, const char *name, lgd_model *model, lgd_loss *loss,
                lgd_guidance_kind kind, int32_t n, int64_t samples, uint64_t seed)
{
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = kind;
    if (n > 0)
        go.n_samples = n;
    go.step_rule = LGD_STEP_SCORE;
    go.scale = 1.0f;
    go.seed = seed;
    lgd_guidance *g = NULL;
    CHECK(ctx, lgd_guidance_create(ctx, model, kind == LGD_GUIDANCE_NONE ? NULL : loss, &go, &g));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_DDIM;
    so.steps = 20;
    so.schedule = LGD_SCHEDULE_KARRAS;
    so.sigma_max = 80.0f;
    so.sigma_min = 0.002f;
    so.rho = 7.0f;
    so.eta = 0.0f;
    lgd_sampler *s = NULL;
    CHECK(ctx, lgd_sampler_create(g, &so, &s));
    lgd_tensor *x = NULL;
    CHECK(ctx, lgd_tensor_create_2d(ctx, samples, 1, &x));
    lgd_guidance_set_seed(g, seed);
    CHECK(ctx, lgd_sampler_run(s, x, seed, 0, NULL, NULL));
    float *h = malloc((size_t)samples * sizeof *h);
    if (!h)
        exit(1);
    CHECK(ctx, lgd_tensor_download(x, h, samples));
    printf("%s", name);
    for (int64_t i = 0; i < samples; i++) {
        uint32_t b;
        memcpy(&b, &h[i], sizeof b);
        printf(" %08" PRIx32, b);
    }
    printf("\n");
    free(h);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(s);
    lgd_guidance_destroy(g);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    int64_t samples = strtoll(argv[1], NULL, 10);
    uint64_t seed = strtoull(argv[2], NULL, 10);
    lgd_context *ctx = NULL;
    const char *err = NULL;
    if (lgd_context_create(NULL, &ctx, &err) != LGD_OK) {
        fprintf(stderr, "lgd_context_create: %s\n", err);
        return 1;
    }
    const float w[2] = { 0.5f, 0.5f }, m[2] = { -1.0f, 1.0f }, s = 0.2f;
    const float var[2] = { s * s, s * s }, one = 1.0f;
    lgd_model *prior = NULL, *target = NULL;
    CHECK(ctx, lgd_model_create_gmm(ctx, 1, 2, w, m, var, LGD_COVARIANCE_ISOTROPIC, &prior));
    CHECK(ctx, lgd_model_create_gmm(ctx, 1, 1, &one, &m[0], &var[0], LGD_COVARIANCE_ISOTROPIC,
                                    &target));
    const double s2 = (double)s * s;
    float a = (float)(((double)m[0] - m[1]) / s2);
    float b = (float)(((double)m[1] * m[1] - (double)m[0] * m[0]) / (2.0 * s2) +
                      log((double)w[0] / w[1]));
    lgd_loss *loss = NULL;
    CHECK(ctx, lgd_loss_create_logistic(ctx, 1, &a, b, &loss));
    run(ctx, "unguided", prior, loss, LGD_GUIDANCE_NONE, 0, samples, seed);
    run(ctx, "exact", target, loss, LGD_GUIDANCE_NONE, 0, samples, seed);
    run(ctx, "exact_is_n100", prior, loss, LGD_GUIDANCE_EXACT, 100, samples, seed);
    run(ctx, "dps", prior, loss, LGD_GUIDANCE_DPS, 1, samples, seed);
    run(ctx, "mc_n10", prior, loss, LGD_GUIDANCE_MC, 10, samples, seed);
    run(ctx, "mc_n100", prior, loss, LGD_GUIDANCE_MC, 100, samples, seed);
    lgd_loss_destroy(loss);
    lgd_model_destroy(target);
    lgd_model_destroy(prior);
    lgd_context_destroy(ctx);
    return 0;
}
