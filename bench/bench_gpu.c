/*
 * bench-gpu - per-step time and peak device memory of guided sampling on the CUDA
 * backend, with the CPU backend alongside for a speedup column.
 *
 * Prior: a Gaussian mixture in --dim dimensions (default 128) with --components
 * components (default 16), once with diagonal and once with full covariances.
 * Loss: the built-in squared error to a point near one mean. Methods: unguided, DPS,
 * and LGD-MC with n = 1, 10 and 100 draws (chunks of 16, the library default), all
 * with the Euler sampler. For each batch size (default 4096 and 16384) the bench runs
 * warm-up steps, then times --steps steps, each ended by lgd_context_synchronize()
 * before the clock stops, and reports the mean time per step, its ratio to DPS and the
 * context's peak backend memory (lgd_context_memory_usage, reset before each method:
 * it includes the model's parameters). The CPU backend runs the smallest batch with
 * --cpu-steps timed steps (0 skips it). Output: a markdown table on stdout.
 *
 * The CUDA module is taken from --module PATH, else $LGD_CUDA_MODULE, else the
 * library's default search. Exit status 0 when every run succeeded, 1 when one failed,
 * 2 on a bad command line, 3 when no CUDA device can be used.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lgd/lgd.h>

#include "tool_util.h"

typedef struct method {
    const char *name;
    lgd_guidance_kind kind;
    int32_t n;
} method;

static const method methods[] = {
    { "unguided", LGD_GUIDANCE_NONE, 0 },
    { "DPS", LGD_GUIDANCE_DPS, 1 },
    { "LGD-MC n=1", LGD_GUIDANCE_MC, 1 },
    { "LGD-MC n=10", LGD_GUIDANCE_MC, 10 },
    { "LGD-MC n=100", LGD_GUIDANCE_MC, 100 },
};
#define NMETHODS ((int)(sizeof methods / sizeof methods[0]))
#define DPS_INDEX 1
#define MAX_BATCHES 8

typedef struct config {
    const char *module;
    int64_t dim, components;
    int64_t batches[MAX_BATCHES];
    int nbatches;
    int32_t steps, warmup, cpu_steps, threads;
} config;

typedef struct timing {
    int ok;
    double ms_per_step;
    size_t peak;
    char error[512];
} timing;

typedef struct problem {
    int full;
    float *weights, *means, *cov, *target;
} problem;

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [--module PATH] [--dim N] [--components K] [--batch N]...\n"
            "          [--steps N] [--warmup N] [--cpu-steps N] [--threads T]\n"
            "\n"
            "GPU per-step time and peak memory of unguided, DPS and LGD-MC (n = 1, 10, 100)\n"
            "sampling on Gaussian-mixture priors (diagonal and full covariances), with the\n"
            "CPU backend on the smallest batch for comparison. Prints a markdown table.\n"
            "\n"
            "  --module PATH   liblgd-cuda.so to load (default $LGD_CUDA_MODULE, else the\n"
            "                  library's search path)\n"
            "  --dim N         dimension (default 128)\n"
            "  --components K  mixture components (default 16)\n"
            "  --batch N       a batch size; repeat for several (default 4096 and 16384)\n"
            "  --steps N       timed GPU steps per method (default 10)\n"
            "  --warmup N      untimed steps before timing (default 2)\n"
            "  --cpu-steps N   timed CPU steps on the smallest batch, 0 = no CPU run (default 2)\n"
            "  --threads T     CPU threads, 0 = OpenMP's default (default 0)\n"
            "  --help          print this message\n",
            prog);
}

/* Returns 0 to run, 1 after --help, 2 on a bad command line. */
static int parse_args(int argc, char **argv, config *cfg)
{
    static const struct {
        const char *flag;
        long long lo, hi;
    } ints[] = {
        { "--dim", 1, 1 << 16 },   { "--components", 1, 1 << 12 }, { "--batch", 1, 1 << 24 },
        { "--steps", 1, 100000 },  { "--warmup", 0, 1000 },        { "--cpu-steps", 0, 1000 },
        { "--threads", 0, 4096 },
    };
    int user_batches = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, argv[0]);
            return 1;
        }
        if (!strcmp(a, "--module")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: --module needs a path\n", argv[0]);
                return 2;
            }
            cfg->module = argv[++i];
            continue;
        }
        int k = 0, nk = (int)(sizeof ints / sizeof ints[0]);
        while (k < nk && strcmp(a, ints[k].flag))
            k++;
        if (k == nk) {
            fprintf(stderr, "%s: unknown argument '%s'\n", argv[0], a);
            return 2;
        }
        long long v;
        if (tool_parse_int(i + 1 < argc ? argv[i + 1] : NULL, ints[k].lo, ints[k].hi, &v)) {
            fprintf(stderr, "%s: %s needs an integer in [%lld, %lld]\n", argv[0], a, ints[k].lo,
                    ints[k].hi);
            return 2;
        }
        i++;
        switch (k) {
        case 0: cfg->dim = v; break;
        case 1: cfg->components = v; break;
        case 2:
            if (!user_batches)
                cfg->nbatches = 0;
            user_batches = 1;
            if (cfg->nbatches == MAX_BATCHES) {
                fprintf(stderr, "%s: at most %d --batch values\n", argv[0], MAX_BATCHES);
                return 2;
            }
            cfg->batches[cfg->nbatches++] = v;
            break;
        case 3: cfg->steps = (int32_t)v; break;
        case 4: cfg->warmup = (int32_t)v; break;
        case 5: cfg->cpu_steps = (int32_t)v; break;
        default: cfg->threads = (int32_t)v; break;
        }
    }
    return 0;
}

static void problem_free(problem *p)
{
    free(p->weights);
    free(p->means);
    free(p->cov);
    free(p->target);
    memset(p, 0, sizeof *p);
}

/* problem.full: diagonal (0) or full (1) covariances, or the trajectory prior */
#define TRAJECTORY 2

/* The same problem for both backends: random means, variances in [0.05, 0.5] or
 * Sigma_k = 0.3 A A^T / D + 0.05 I; the target is near the first mean. */
static int problem_make(problem *p, int64_t D, int64_t K, int full)
{
    tool_rng rng = { TOOL_RNG_SEED };
    p->full = full;
    size_t cov_count = full ? (size_t)(K * D * D) : (size_t)(K * D);
    p->weights = malloc(sizeof(float) * (size_t)K);
    p->means = malloc(sizeof(float) * (size_t)(K * D));
    p->cov = malloc(sizeof(float) * cov_count);
    p->target = malloc(sizeof(float) * (size_t)D);
    float *a = full ? malloc(sizeof(float) * (size_t)(D * D)) : NULL;
    if (!p->weights || !p->means || !p->cov || !p->target || (full && !a)) {
        free(a);
        problem_free(p);
        return -1;
    }
    for (int64_t k = 0; k < K; k++) {
        p->weights[k] = (float)(0.5 + tool_uniform01(&rng));
        for (int64_t j = 0; j < D; j++)
            p->means[k * D + j] = (float)(2.0 * tool_normal01(&rng));
        if (!full) {
            for (int64_t j = 0; j < D; j++)
                p->cov[k * D + j] = (float)(0.05 + 0.45 * tool_uniform01(&rng));
            continue;
        }
        for (int64_t i = 0; i < D * D; i++)
            a[i] = (float)tool_normal01(&rng);
        float *s = p->cov + k * D * D;
        for (int64_t i = 0; i < D; i++)
            for (int64_t j = 0; j <= i; j++) {
                double acc = 0.0;
                for (int64_t l = 0; l < D; l++)
                    acc += (double)a[i * D + l] * a[j * D + l];
                float v = (float)(0.3 * acc / (double)D + (i == j ? 0.05 : 0.0));
                s[i * D + j] = s[j * D + i] = v;
            }
    }
    for (int64_t j = 0; j < D; j++)
        p->target[j] = p->means[j] + (float)(0.5 * tool_normal01(&rng));
    free(a);
    return 0;
}

#define CHECK(call)                                                                     \
    do {                                                                                \
        lgd_status st_ = (call);                                                        \
        if (st_ != LGD_OK) {                                                            \
            snprintf(t->error, sizeof t->error, "%s: %s: %s", #call,                   \
                     lgd_status_string(st_), lgd_context_last_error(ctx));              \
            goto done;                                                                  \
        }                                                                               \
    } while (0)

/* Times one method on ctx with a model already built. */
static void time_method(lgd_context *ctx, lgd_model *model, lgd_loss *loss, const method *m,
                        int64_t batch, int64_t D, int32_t warmup, int32_t steps, timing *t)
{
    lgd_guidance *guidance = NULL;
    lgd_sampler *sampler = NULL;
    lgd_tensor *x = NULL;
    memset(t, 0, sizeof *t);
    lgd_context_reset_peak_memory(ctx);

    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = m->kind;
    if (m->n > 0)
        go.n_samples = m->n;
    CHECK(lgd_guidance_create(ctx, model, m->kind == LGD_GUIDANCE_NONE ? NULL : loss, &go,
                              &guidance));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_EULER;
    so.steps = warmup + steps;
    CHECK(lgd_sampler_create(guidance, &so, &sampler));
    CHECK(lgd_tensor_create_2d(ctx, batch, D, &x));
    CHECK(lgd_sampler_init(sampler, x, 1, 0));
    for (int32_t i = 0; i < warmup; i++)
        CHECK(lgd_sampler_step(sampler, x, NULL));
    CHECK(lgd_context_synchronize(ctx));
    double t0 = tool_now_ms();
    for (int32_t i = 0; i < steps; i++)
        CHECK(lgd_sampler_step(sampler, x, NULL));
    CHECK(lgd_context_synchronize(ctx));
    t->ms_per_step = (tool_now_ms() - t0) / steps;
    lgd_context_memory_usage(ctx, NULL, &t->peak);
    t->ok = 1;
done:
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(sampler);
    lgd_guidance_destroy(guidance);
}

/* All methods at one batch size into out[NMETHODS]. */
static void time_all(lgd_context *ctx, const problem *p, const config *cfg, int64_t batch,
                     int32_t warmup, int32_t steps, timing *out)
{
    lgd_model *model = NULL;
    lgd_loss *loss = NULL;
    timing setup, *t = &setup;
    memset(&setup, 0, sizeof setup);
    for (int i = 0; i < NMETHODS; i++)
        memset(&out[i], 0, sizeof out[i]);
    if (p->full == TRAJECTORY) {
        /* the trajectory prior (64 frames, 8 headings x 3 turns, dim 128) and the paper's
         * obstacle-avoidance loss: goal (6, 0) behind a radius-1 obstacle at (3, 0) */
        static const float goal[2] = { 6.0f, 0.0f }, obstacle[3] = { 3.0f, 0.0f, 1.0f };
        lgd_trajectory_layout lo = LGD_TRAJECTORY_LAYOUT_INIT;
        lo.frames = 64;
        lo.velocity_scale = 0.1f;
        CHECK(lgd_model_create_trajectory_prior(ctx, NULL, &model));
        CHECK(lgd_loss_create_obstacle_avoidance(ctx, lgd_model_dim(model), &lo, goal, 1,
                                                 obstacle, 1, NULL, &loss));
    } else {
        CHECK(lgd_model_create_gmm(ctx, cfg->dim, cfg->components, p->weights, p->means, p->cov,
                                   p->full ? LGD_COVARIANCE_FULL : LGD_COVARIANCE_DIAGONAL,
                                   &model));
        CHECK(lgd_loss_create_squared_error(ctx, cfg->dim, p->target, 1, NULL, &loss));
    }
    for (int i = 0; i < NMETHODS; i++) {
        time_method(ctx, model, loss, &methods[i], batch, lgd_model_dim(model), warmup, steps,
                    &out[i]);
        if (!out[i].ok)
            fprintf(stderr, "bench-gpu: %s, batch %" PRId64 ", %s: %s\n",
                    lgd_context_backend_name(ctx), batch, methods[i].name, out[i].error);
    }
done:
    if (setup.error[0]) {
        fprintf(stderr, "bench-gpu: %s, batch %" PRId64 ": %s\n", lgd_context_backend_name(ctx),
                batch, setup.error);
        for (int i = 0; i < NMETHODS; i++)
            out[i] = setup;
    }
    lgd_loss_destroy(loss);
    lgd_model_destroy(model);
}

int main(int argc, char **argv)
{
    config cfg = { NULL, 128, 16, { 4096, 16384 }, 2, 10, 2, 2, 0 };
    int pr = parse_args(argc, argv, &cfg);
    if (pr == 1)
        return 0;
    if (pr) {
        usage(stderr, argv[0]);
        return 2;
    }
    if (!cfg.module || !cfg.module[0]) {
        const char *env = getenv("LGD_CUDA_MODULE");
        cfg.module = env && env[0] ? env : NULL;
    }
    int64_t smallest = cfg.batches[0];
    for (int b = 1; b < cfg.nbatches; b++)
        smallest = cfg.batches[b] < smallest ? cfg.batches[b] : smallest;

    lgd_context_options co = LGD_CONTEXT_OPTIONS_INIT;
    co.backend = LGD_BACKEND_CUDA;
    co.cuda_module_path = cfg.module;
    lgd_context *gpu = NULL, *cpu = NULL;
    const char *cerr = NULL;
    lgd_status st = lgd_context_create(&co, &gpu, &cerr);
    if (st != LGD_OK) {
        fprintf(stderr, "bench-gpu: no CUDA context (module %s): %s: %s\n",
                cfg.module ? cfg.module : "from the default search path", lgd_status_string(st),
                cerr ? cerr : "");
        return 3;
    }
    if (cfg.cpu_steps > 0) {
        co.backend = LGD_BACKEND_CPU;
        co.num_threads = cfg.threads;
        if (lgd_context_create(&co, &cpu, &cerr) != LGD_OK) {
            fprintf(stderr, "bench-gpu: no CPU context: %s\n", cerr ? cerr : "");
            lgd_context_destroy(gpu);
            return 1;
        }
    }

    printf("## GPU sampling benchmark (liblgd %s)\n\n", lgd_version_string());
    printf("- GPU backend: %s\n", lgd_context_backend_name(gpu));
    if (cpu)
        printf("- CPU backend: %s\n", lgd_context_backend_name(cpu));
    printf("- Gaussian-mixture prior, dim %" PRId64 ", %" PRId64
           " components, diagonal or full covariances; squared-error loss; Euler sampler\n",
           cfg.dim, cfg.components);
    printf("- trajectory: the trajectory prior (64 frames, 24 components, dim 128) with the "
           "obstacle-avoidance loss (goal and one obstacle)\n");
    printf("- GPU: %d warm-up + %d timed steps per method; CPU (batch %" PRId64
           "): %d warm-up + %d timed steps\n",
           (int)cfg.warmup, (int)cfg.steps, smallest, cfg.warmup > 0 ? 1 : 0,
           (int)cfg.cpu_steps);
    printf("- ms/step: mean wall time per sampler step, each timed run ended by "
           "lgd_context_synchronize; peak: lgd_context_memory_usage peak (model included)\n\n");
    printf("| covariance | batch | method | GPU ms/step | x DPS | GPU peak MiB | CPU ms/step | "
           "CPU x DPS | speedup |\n");
    printf("|---|---:|---|---:|---:|---:|---:|---:|---:|\n");
    fflush(stdout);

    int failed = 0;
    for (int full = 0; full <= TRAJECTORY; full++) {
        problem p = { 0 };
        p.full = full;
        if (full != TRAJECTORY && problem_make(&p, cfg.dim, cfg.components, full)) {
            fprintf(stderr, "bench-gpu: out of host memory\n");
            failed = 1;
            break;
        }
        for (int b = 0; b < cfg.nbatches; b++) {
            int64_t batch = cfg.batches[b];
            timing g[NMETHODS], c[NMETHODS];
            time_all(gpu, &p, &cfg, batch, cfg.warmup, cfg.steps, g);
            int with_cpu = cpu && batch == smallest;
            if (with_cpu)
                time_all(cpu, &p, &cfg, batch, cfg.warmup > 0 ? 1 : 0, cfg.cpu_steps, c);
            for (int i = 0; i < NMETHODS; i++) {
                char gms[32] = "failed", gx[32] = "-", gpk[32] = "-";
                char cms[32] = "-", cx[32] = "-", sp[32] = "-";
                if (g[i].ok) {
                    snprintf(gms, sizeof gms, "%.3f", g[i].ms_per_step);
                    snprintf(gpk, sizeof gpk, "%.1f", (double)g[i].peak / (1024.0 * 1024.0));
                    if (g[DPS_INDEX].ok)
                        snprintf(gx, sizeof gx, "%.2f",
                                 g[i].ms_per_step / g[DPS_INDEX].ms_per_step);
                } else {
                    failed = 1;
                }
                if (with_cpu) {
                    if (c[i].ok) {
                        snprintf(cms, sizeof cms, "%.2f", c[i].ms_per_step);
                        if (c[DPS_INDEX].ok)
                            snprintf(cx, sizeof cx, "%.2f",
                                     c[i].ms_per_step / c[DPS_INDEX].ms_per_step);
                        if (g[i].ok)
                            snprintf(sp, sizeof sp, "%.1f", c[i].ms_per_step / g[i].ms_per_step);
                    } else {
                        snprintf(cms, sizeof cms, "failed");
                        failed = 1;
                    }
                }
                printf("| %s | %" PRId64 " | %s | %s | %s | %s | %s | %s | %s |\n",
                       full == TRAJECTORY ? "trajectory" : full ? "full" : "diagonal", batch,
                       methods[i].name, gms, gx, gpk, cms, cx,
                       sp);
            }
            fflush(stdout);
        }
        problem_free(&p);
    }
    printf("\n");
    lgd_context_destroy(cpu);
    lgd_context_destroy(gpu);
    return failed;
}
