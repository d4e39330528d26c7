/*
 * lgd-demo - guided sampling on the 1-D mixture of the LGD paper (Sec. 4.2, 6.1, B.1).
 *
 * Prior:  p0(x0) = 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2), an exact Gaussian-mixture model.
 * Loss:   the logistic loss l(x0) = -log p(y = 0 | x0), so that exp(-l) is the
 *         probability that x0 came from component 0 and the guided target
 *         p0(x0) exp(-l(x0)) / Z = p(x0 | y = 0) is exactly N(-1, 0.2^2).
 *
 * For each guidance estimator the demo draws --samples samples with the same sampler,
 * schedule and seed, and prints their mean, standard deviation, the fraction that
 * landed on the target side (x < 0), the KL divergence KL(N(-1, 0.2^2) || N(mean, std^2))
 * that the paper reports (App. B.1), and the wall time.
 *
 * Uses only the public API of liblgd.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lgd/lgd.h>

#include "tool_util.h"

/* The paper's mixture. */
#define NCOMP 2
static const float mix_weights[NCOMP] = { 0.5f, 0.5f };
static const float mix_means[NCOMP] = { -1.0f, 1.0f };
static const float mix_std = 0.2f; /* both components */

/* Draws the exact estimator uses per guidance call (it is the reference row). */
#define EXACT_DRAWS 100

typedef struct method {
    const char *name;
    lgd_guidance_kind kind;
    int32_t n;
} method;

static const method methods[] = {
    { "unguided", LGD_GUIDANCE_NONE, 0 },
    { "exact (IS, n=100)", LGD_GUIDANCE_EXACT, EXACT_DRAWS },
    { "DPS", LGD_GUIDANCE_DPS, 1 },
    { "LGD-MC n=10", LGD_GUIDANCE_MC, 10 },
    { "LGD-MC n=100", LGD_GUIDANCE_MC, 100 },
};
#define NMETHODS ((int)(sizeof methods / sizeof methods[0]))

typedef struct config {
    int64_t samples;
    int32_t steps;
    uint64_t seed;
    lgd_sampler_kind sampler;
    const char *sampler_name;
} config;

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [--samples N] [--steps N] [--seed S] [--sampler euler|ddim|heun|dpmpp2m]\n"
            "\n"
            "Guided sampling from 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2) with the logistic loss\n"
            "-log p(y = 0 | x0); the exact target is N(-1, 0.2^2).\n"
            "\n"
            "  --samples N   samples per method (default 10000)\n"
            "  --steps N     sampler steps, Karras schedule, sigma_max 80 (default 20)\n"
            "  --seed S      seed of the initial noise and the MC draws (default 0)\n"
            "  --sampler K   euler, ddim (eta 0; the default), heun or dpmpp2m\n"
            "  --help        print this message\n",
            prog);
}

/* Returns 0 to run, 1 after --help, 2 on a bad command line. */
static int parse_args(int argc, char **argv, config *cfg)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, argv[0]);
            return 1;
        } else if (!strcmp(a, "--samples")) {
            if (tool_parse_int(v, 1, INT32_MAX, &n)) {
                fprintf(stderr, "%s: --samples needs a positive integer\n", argv[0]);
                return 2;
            }
            cfg->samples = n;
            i++;
        } else if (!strcmp(a, "--steps")) {
            if (tool_parse_int(v, 1, 100000, &n)) {
                fprintf(stderr, "%s: --steps needs an integer in [1, 100000]\n", argv[0]);
                return 2;
            }
            cfg->steps = (int32_t)n;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if (tool_parse_u64(v, &cfg->seed)) {
                fprintf(stderr, "%s: --seed needs a non-negative integer\n", argv[0]);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--sampler")) {
            if (!v) {
                fprintf(stderr, "%s: --sampler needs a value\n", argv[0]);
                return 2;
            }
            if (!strcmp(v, "euler"))
                cfg->sampler = LGD_SAMPLER_EULER;
            else if (!strcmp(v, "ddim"))
                cfg->sampler = LGD_SAMPLER_DDIM;
            else if (!strcmp(v, "heun"))
                cfg->sampler = LGD_SAMPLER_HEUN;
            else if (!strcmp(v, "dpmpp2m"))
                cfg->sampler = LGD_SAMPLER_DPMPP_2M;
            else {
                fprintf(stderr, "%s: unknown sampler '%s'\n", argv[0], v);
                return 2;
            }
            cfg->sampler_name = v;
            i++;
        } else {
            fprintf(stderr, "%s: unknown argument '%s'\n", argv[0], a);
            return 2;
        }
    }
    return 0;
}

/* Reports a failed call with the context's message; evaluates to non-zero on error. */
#define CHECK(ctx, call)                                                                \
    check_status((ctx), (call), #call, __LINE__)

static int check_status(const lgd_context *ctx, lgd_status st, const char *what, int line)
{
    if (st == LGD_OK)
        return 0;
    fprintf(stderr, "lgd-demo:%d: %s failed: %s (%d): %s\n", line, what,
            lgd_status_string(st), (int)st, ctx ? lgd_context_last_error(ctx) : "");
    return 1;
}

/* KL(N(m1, s1^2) || N(m2, s2^2)) = ln(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2. */
static double kl_gauss(double m1, double s1, double m2, double s2)
{
    return log(s2 / s1) + (s1 * s1 + (m1 - m2) * (m1 - m2)) / (2.0 * s2 * s2) - 0.5;
}

typedef struct result {
    double mean, std, frac_target, kl, seconds;
} result;

/* Samples with one guidance kind and summarises the samples. Returns 0 on success. */
static int run_method(lgd_context *ctx, lgd_model *model, lgd_loss *loss, const method *m,
                      const config *cfg, lgd_tensor *x, float *host, result *res)
{
    int rc = 1;
    lgd_guidance *guidance = NULL;
    lgd_sampler *sampler = NULL;

    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = m->kind;
    if (m->n > 0)
        go.n_samples = m->n;
    /* The score step rule at scale 1 adds exactly g to the score: the Bayes-consistent
     * choice, so that every estimator is judged by how well it estimates g alone. */
    go.step_rule = LGD_STEP_SCORE;
    go.scale = 1.0f;
    if (CHECK(ctx, lgd_guidance_create(ctx, model, m->kind == LGD_GUIDANCE_NONE ? NULL : loss,
                                       &go, &guidance)))
        goto done;

    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = cfg->sampler;
    so.steps = cfg->steps;
    so.schedule = LGD_SCHEDULE_KARRAS;
    so.sigma_max = 80.0f;
    so.eta = 0.0f; /* deterministic DDIM, as in the paper */
    if (CHECK(ctx, lgd_sampler_create(guidance, &so, &sampler)))
        goto done;

    double t0 = tool_now_ms();
    if (CHECK(ctx, lgd_sampler_run(sampler, x, cfg->seed, 0, NULL, NULL)))
        goto done;
    if (CHECK(ctx, lgd_context_synchronize(ctx)))
        goto done;
    res->seconds = (tool_now_ms() - t0) / 1e3;

    if (CHECK(ctx, lgd_tensor_download(x, host, (size_t)cfg->samples)))
        goto done;
    double sum = 0.0, sum2 = 0.0;
    int64_t left = 0;
    for (int64_t i = 0; i < cfg->samples; i++) {
        sum += host[i];
        left += host[i] < 0.0f;
    }
    res->mean = sum / (double)cfg->samples;
    for (int64_t i = 0; i < cfg->samples; i++)
        sum2 += (host[i] - res->mean) * (host[i] - res->mean);
    res->std = cfg->samples > 1 ? sqrt(sum2 / (double)(cfg->samples - 1)) : 0.0;
    res->frac_target = (double)left / (double)cfg->samples;
    res->kl = res->std > 0.0 ? kl_gauss(mix_means[0], mix_std, res->mean, res->std) : INFINITY;
    rc = 0;
done:
    lgd_sampler_destroy(sampler);
    lgd_guidance_destroy(guidance);
    return rc;
}

int main(int argc, char **argv)
{
    config cfg = { 10000, 20, 0, LGD_SAMPLER_DDIM, "ddim" };
    int pr = parse_args(argc, argv, &cfg);
    if (pr == 1)
        return 0;
    if (pr) {
        usage(stderr, argv[0]);
        return 2;
    }

    int rc = 1;
    lgd_context *ctx = NULL;
    lgd_model *model = NULL;
    lgd_loss *loss = NULL;
    lgd_tensor *x = NULL;
    float *host = NULL;
    const char *cerr = NULL;

    lgd_status st = lgd_context_create(NULL, &ctx, &cerr);
    if (st != LGD_OK) {
        fprintf(stderr, "lgd-demo: lgd_context_create failed: %s: %s\n", lgd_status_string(st),
                cerr ? cerr : "");
        return 1;
    }

    /* The exact mixture prior (isotropic layout: one variance per component). */
    const float var[NCOMP] = { mix_std * mix_std, mix_std * mix_std };
    if (CHECK(ctx, lgd_model_create_gmm(ctx, 1, NCOMP, mix_weights, mix_means, var,
                                        LGD_COVARIANCE_ISOTROPIC, &model)))
        goto done;

    /*
     * The logistic loss from the mixture's log-odds. For two components with a common
     * variance s^2, Bayes' rule gives
     *   log p(y=0|x0) / p(y=1|x0)
     *     = log(w0/w1) - (x0 - m0)^2 / (2 s^2) + (x0 - m1)^2 / (2 s^2)
     *     = a x0 + b,   a = (m0 - m1) / s^2,   b = (m1^2 - m0^2) / (2 s^2) + log(w0/w1),
     * and p(y=0|x0) = sigmoid(a x0 + b). The library's logistic loss is
     * l(x0) = -log sigmoid(a x0 + b), so exp(-l(x0)) = p(y=0|x0) and
     *   p0(x0) exp(-l(x0)) = p(x0, y=0) = w0 N(x0; m0, s^2),
     * i.e. the guided target is exactly component 0, N(-1, 0.2^2). Here a = -50, b = 0.
     */
    const double s2 = (double)mix_std * mix_std;
    const float a = (float)((mix_means[0] - mix_means[1]) / s2);
    const float b = (float)(((double)mix_means[1] * mix_means[1] -
                             (double)mix_means[0] * mix_means[0]) / (2.0 * s2) +
                            log((double)mix_weights[0] / mix_weights[1]));
    if (CHECK(ctx, lgd_loss_create_logistic(ctx, 1, &a, b, &loss)))
        goto done;

    if (CHECK(ctx, lgd_tensor_create_2d(ctx, cfg.samples, 1, &x)))
        goto done;
    host = malloc((size_t)cfg.samples * sizeof *host);
    if (!host) {
        fprintf(stderr, "lgd-demo: out of memory\n");
        goto done;
    }

    printf("liblgd %s, backend %s\n", lgd_version_string(), lgd_context_backend_name(ctx));
    printf("prior 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2); loss softplus(-(%g x + %g)); "
           "target N(-1, 0.2^2)\n",
           (double)a, (double)b);
    printf("sampler %s, %d steps, Karras schedule (sigma_max 80, sigma_min 0.002, rho 7), "
           "%" PRId64 " samples, seed %" PRIu64 "\n\n",
           cfg.sampler_name, (int)cfg.steps, cfg.samples, cfg.seed);
    printf("%-20s %9s %9s %10s %13s %9s\n", "method", "mean", "std", "P(x<0)",
           "KL(target||.)", "time [s]");
    printf("%-20s %9.4f %9.4f %10.4f %13.5f %9s\n", "target", (double)mix_means[0],
           (double)mix_std, 1.0, 0.0, "-");
    for (int i = 0; i < NMETHODS; i++) {
        result r;
        if (run_method(ctx, model, loss, &methods[i], &cfg, x, host, &r))
            goto done;
        printf("%-20s %9.4f %9.4f %10.4f %13.5f %9.3f\n", methods[i].name, r.mean, r.std,
               r.frac_target, r.kl, r.seconds);
        fflush(stdout);
    }
    rc = 0;
done:
    free(host);
    lgd_tensor_destroy(x);
    lgd_loss_destroy(loss);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
    return rc;
}
