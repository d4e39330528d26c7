/*
 * bench-mixture - the time of the LGD paper's mixture experiment with LGD-MC, through
 * liblgd's public API only (issue 16).
 *
 * The run is `lgd mixture`'s LGD-MC row (examples/lgd/mixture*.c), built here again from
 * the public API (nothing of the tool is shared but the clock and the integer parser of
 * tool_util.h):
 *   prior   p0 = 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2), lgd_model_create_gmm (1-D, isotropic);
 *   loss    -log p(y = 0 | x0) = softplus(-(a x0 + b)), lgd_loss_create_logistic, with
 *           a = (m0 - m1) / s^2 = -50 and b = (m1^2 - m0^2) / (2 s^2) + log(w0 / w1) = 0;
 *   guidance LGD-MC with --n draws (default 100), the default radius
 *           r(sigma) = sigma / sqrt(1 + sigma^2), the score step rule at scale 1;
 *   sampler DDIM, eta 0, --steps steps (default 20), Karras schedule sigma_max 80,
 *           sigma_min 0.002, rho 7; --samples rows (default 10,000) from seed --seed.
 * It runs the experiment --warmup times untimed, then --reps times timed (lgd_sampler_run
 * and lgd_context_synchronize, as `lgd mixture` times it), and prints the time of each rep
 * ("rep K: T s", which bench/run_mixture_bench.sh reads), their median, min and max, and
 * a checksum: the mean and standard deviation (n - 1) of the samples and the Gaussian KL
 * to the target N(-1, 0.2^2), which for seed 0 must match the LGD-MC n=100 row of
 * `lgd mixture --seeds 1 --n 100` to the digits that table prints. Every rep draws from
 * the same seed, so every rep must give the same bytes; the bench checks that too and
 * fails (exit status 1) if they differ.
 * With --exact the guidance is exact importance sampling with --n posterior draws
 * (LGD_GUIDANCE_EXACT: `lgd mixture`'s exact-IS row) instead of LGD-MC, all else alike.
 * --backend cuda runs it on the CUDA backend (the module from --module PATH, else
 * $LGD_CUDA_MODULE, else the library's search; bench/gpu_check.sh does this): each rep
 * ends with lgd_context_synchronize before its clock stops.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lgd/lgd.h>

#include "tool_util.h"

typedef struct config {
    int32_t threads;
    int32_t reps;
    int32_t warmup;
    int64_t samples;
    int32_t n;
    int32_t steps;
    uint64_t seed;
    int exact; /* --exact: exact importance sampling (LGD_GUIDANCE_EXACT) instead of LGD-MC */
    lgd_backend_kind backend; /* --backend cpu | cuda */
    const char *module;       /* --module: the CUDA module */
} config;

/* The experiment's fixed data, as examples/lgd/mixture_problem.c has it. */
#define NCOMP 2
static const float mix_weights[NCOMP] = { 0.5f, 0.5f };
static const float mix_means[NCOMP] = { -1.0f, 1.0f };
static const float mix_std = 0.2f;

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [--threads T] [--reps R] [--warmup W] [--samples N] [--n N]\n"
            "          [--steps N] [--seed S] [--exact] [--backend cpu|cuda] [--module PATH]\n"
            "\n"
            "Times the LGD paper's 1-D mixture experiment with LGD-MC (the LGD-MC row of\n"
            "`lgd mixture`): prior 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2), logistic loss\n"
            "-log p(y = 0 | x0), DDIM (eta 0), Karras sigmas 80 -> 0.002 (rho 7), default\n"
            "radius, score step rule at scale 1. Prints each rep's time, the median, min and\n"
            "max, and the mean and std of the samples.\n"
            "\n"
            "  --threads T   CPU threads, 0 = OpenMP's default (default 0)\n"
            "  --reps R      timed runs (default 5)\n"
            "  --warmup W    untimed runs first (default 1)\n"
            "  --samples N   samples per run (default 10000)\n"
            "  --n N         LGD-MC draws (default 100)\n"
            "  --steps N     sampler steps (default 20)\n"
            "  --seed S      seed of the run (default 0)\n"
            "  --exact       exact importance sampling with --n posterior draws (the exact-IS\n"
            "                row of `lgd mixture`) instead of LGD-MC\n"
            "  --backend B   cpu or cuda (default cpu)\n"
            "  --module P    the CUDA module (default: $LGD_CUDA_MODULE or the search path)\n"
            "  --help        this message\n",
            prog);
}

/* Returns 0 to run, 1 after --help, 2 on a bad command line. */
static int parse_args(int argc, char **argv, config *cfg)
{
    static const struct {
        const char *flag;
        long long lo, hi;
    } ints[] = {
        { "--threads", 0, 4096 },     { "--reps", 1, 100000 },    { "--warmup", 0, 100000 },
        { "--samples", 2, INT32_MAX }, { "--n", 1, 1 << 24 },     { "--steps", 1, 100000 },
    };
    const int nk = (int)(sizeof ints / sizeof ints[0]);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, argv[0]);
            return 1;
        }
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--exact")) {
            cfg->exact = 1;
            continue;
        }
        int be = tool_parse_backend_arg(argv[0], a, val, &cfg->backend, &cfg->module);
        if (be < 0)
            return 2;
        if (be) {
            i++;
            continue;
        }
        if (!strcmp(a, "--seed")) {
            if (tool_parse_u64(val, &cfg->seed)) {
                fprintf(stderr, "%s: --seed needs a non-negative integer\n", argv[0]);
                return 2;
            }
            i++;
            continue;
        }
        int k = 0;
        while (k < nk && strcmp(a, ints[k].flag))
            k++;
        if (k == nk) {
            fprintf(stderr, "%s: unknown argument '%s'\n", argv[0], a);
            return 2;
        }
        long long v;
        if (tool_parse_int(val, ints[k].lo, ints[k].hi, &v)) {
            fprintf(stderr, "%s: %s needs an integer in [%lld, %lld]\n", argv[0], a, ints[k].lo,
                    ints[k].hi);
            return 2;
        }
        i++;
        switch (k) {
        case 0: cfg->threads = (int32_t)v; break;
        case 1: cfg->reps = (int32_t)v; break;
        case 2: cfg->warmup = (int32_t)v; break;
        case 3: cfg->samples = v; break;
        case 4: cfg->n = (int32_t)v; break;
        default: cfg->steps = (int32_t)v; break;
        }
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Mean and sample standard deviation (n - 1) of v[n], accumulated in double in row
 * order (as `lgd mixture` computes them). */
static void mean_std(const float *v, int64_t n, double *mean, double *std)
{
    double s = 0.0, s2 = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += v[i];
    double m = s / (double)n;
    for (int64_t i = 0; i < n; i++)
        s2 += ((double)v[i] - m) * ((double)v[i] - m);
    *mean = m;
    *std = sqrt(s2 / (double)(n - 1));
}

/* KL(N(m1, s1^2) || N(m2, s2^2)). */
static double kl_gauss(double m1, double s1, double m2, double s2)
{
    if (!(s2 > 0.0))
        return INFINITY;
    return log(s2 / s1) + (s1 * s1 + (m1 - m2) * (m1 - m2)) / (2.0 * s2 * s2) - 0.5;
}

#define CHECK(call)                                                                     \
    do {                                                                                \
        lgd_status st_ = (call);                                                        \
        if (st_ != LGD_OK) {                                                            \
            fprintf(stderr, "bench-mixture: %s: %s: %s\n", #call, lgd_status_string(st_), \
                    lgd_context_last_error(ctx));                                       \
            goto done;                                                                  \
        }                                                                               \
    } while (0)

int main(int argc, char **argv)
{
    config cfg = { .threads = 0, .reps = 5, .warmup = 1, .samples = 10000, .n = 100,
                   .steps = 20, .seed = 0, .backend = LGD_BACKEND_CPU };
    int pr = parse_args(argc, argv, &cfg);
    if (pr == 1)
        return 0;
    if (pr) {
        usage(stderr, argv[0]);
        return 2;
    }

    int rc = 1;
    lgd_context *ctx = NULL;
    lgd_model *prior = NULL;
    lgd_loss *loss = NULL;
    lgd_guidance *guidance = NULL;
    lgd_sampler *sampler = NULL;
    lgd_tensor *x = NULL;
    const size_t ns = (size_t)cfg.samples;
    float *host = malloc(ns * sizeof *host), *first = malloc(ns * sizeof *first);
    double *times = malloc((size_t)cfg.reps * sizeof *times);
    if (!host || !first || !times) {
        fprintf(stderr, "bench-mixture: out of host memory\n");
        goto done;
    }

    lgd_context_options co = LGD_CONTEXT_OPTIONS_INIT;
    co.backend = cfg.backend;
    co.num_threads = cfg.threads;
    if (cfg.backend == LGD_BACKEND_CUDA) {
        const char *env = getenv("LGD_CUDA_MODULE");
        co.cuda_module_path = cfg.module ? cfg.module : env && env[0] ? env : NULL;
    }
    const char *cerr = NULL;
    lgd_status cst = lgd_context_create(&co, &ctx, &cerr);
    if (cst != LGD_OK) {
        fprintf(stderr, "bench-mixture: lgd_context_create: %s: %s\n", lgd_status_string(cst),
                cerr ? cerr : "");
        goto done;
    }

    /* The problem, exactly as examples/lgd/mixture_problem.c builds it. */
    const float var[NCOMP] = { mix_std * mix_std, mix_std * mix_std };
    CHECK(lgd_model_create_gmm(ctx, 1, NCOMP, mix_weights, mix_means, var,
                               LGD_COVARIANCE_ISOTROPIC, &prior));
    const double s2 = (double)mix_std * mix_std;
    const float a = (float)(((double)mix_means[0] - mix_means[1]) / s2);
    const float b = (float)(((double)mix_means[1] * mix_means[1] -
                             (double)mix_means[0] * mix_means[0]) / (2.0 * s2) +
                            log((double)mix_weights[0] / mix_weights[1]));
    CHECK(lgd_loss_create_logistic(ctx, 1, &a, b, &loss));

    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = cfg.exact ? LGD_GUIDANCE_EXACT : LGD_GUIDANCE_MC;
    go.n_samples = cfg.n;
    go.step_rule = LGD_STEP_SCORE;
    go.scale = 1.0f;
    go.seed = cfg.seed;
    CHECK(lgd_guidance_create(ctx, prior, loss, &go, &guidance));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_DDIM;
    so.steps = cfg.steps;
    so.schedule = LGD_SCHEDULE_KARRAS;
    so.sigma_max = 80.0f;
    so.sigma_min = 0.002f;
    so.rho = 7.0f;
    so.eta = 0.0f;
    CHECK(lgd_sampler_create(guidance, &so, &sampler));
    CHECK(lgd_tensor_create_2d(ctx, cfg.samples, 1, &x));

    printf("bench-mixture: %s n=%d, %" PRId64 " samples x %d steps, seed %" PRIu64 "\n",
           cfg.exact ? "exact-IS" : "LGD-MC", (int)cfg.n, cfg.samples, (int)cfg.steps, cfg.seed);
    printf("prior 0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2); loss softplus(-(%g x0 + %g)); DDIM eta 0, "
           "Karras 80 -> 0.002 (rho 7); score step rule, scale 1\n",
           (double)a, (double)b);
    printf("liblgd %s, backend %s; --threads %d%s\n", lgd_version_string(),
           lgd_context_backend_name(ctx), (int)cfg.threads,
           cfg.threads ? "" : " (OpenMP's default)");
    printf("%d warm-up run(s), %d timed rep(s)\n", (int)cfg.warmup, (int)cfg.reps);
    fflush(stdout);

    for (int32_t i = 0; i < cfg.warmup; i++) {
        lgd_guidance_set_seed(guidance, cfg.seed);
        CHECK(lgd_sampler_run(sampler, x, cfg.seed, 0, NULL, NULL));
        CHECK(lgd_context_synchronize(ctx));
    }
    int identical = 1;
    for (int32_t i = 0; i < cfg.reps; i++) {
        lgd_guidance_set_seed(guidance, cfg.seed);
        double t0 = tool_now_ms();
        CHECK(lgd_sampler_run(sampler, x, cfg.seed, 0, NULL, NULL));
        CHECK(lgd_context_synchronize(ctx));
        times[i] = (tool_now_ms() - t0) / 1e3;
        CHECK(lgd_tensor_download(x, host, ns));
        if (i == 0)
            memcpy(first, host, ns * sizeof *host);
        else if (memcmp(first, host, ns * sizeof *host))
            identical = 0;
        printf("rep %d: %.4f s\n", (int)i + 1, times[i]);
        fflush(stdout);
    }

    double mean, std;
    mean_std(first, cfg.samples, &mean, &std);
    const double kl = kl_gauss(mix_means[0], mix_std, mean, std);
    qsort(times, (size_t)cfg.reps, sizeof *times, cmp_double);
    int32_t h = cfg.reps / 2;
    double median = cfg.reps % 2 ? times[h] : 0.5 * (times[h - 1] + times[h]);
    printf("time: median %.4f s, min %.4f s, max %.4f s (%d reps)\n", median, times[0],
           times[cfg.reps - 1], (int)cfg.reps);
    printf("samples: mean %.6f, std %.6f, KL(N(-1, 0.2^2) || N(mean, std^2)) %.5f\n", mean, std,
           kl);
    printf("samples identical in every rep: %s\n", identical ? "yes" : "NO");
    if (!identical)
        fprintf(stderr, "bench-mixture: the reps gave different samples from the same seed\n");
    rc = identical ? 0 : 1;
done:
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(sampler);
    lgd_guidance_destroy(guidance);
    lgd_loss_destroy(loss);
    lgd_model_destroy(prior);
    lgd_context_destroy(ctx);
    free(times);
    free(first);
    free(host);
    return rc;
}
