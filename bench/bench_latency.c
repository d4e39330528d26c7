/*
 * bench-latency - the wall time of whole guided sampling runs, one run at a time
 * (issue 16: "the latency of one guided 100-step trajectory sample (batch 1 and 64)").
 *
 * Problem: the trajectory prior (lgd_model_create_trajectory_prior's defaults: 64 frames,
 * dim 128) with the paper's obstacle-avoidance loss as `lgd trajectory` sets it up (frame
 * stride 2, velocities, velocity scale 0.1; goal (6, 0) behind a radius-1 obstacle at
 * (3, 0); the loss's default constants), sampled with DDIM (eta 0) over the Karras
 * sigmas 80 -> 0.002 (rho 7), radius r(sigma) = sigma / sqrt(1 + sigma^2) (sigma_data 1),
 * score step rule at scale 1. For each batch (default 1 and 64) and method (unguided,
 * DPS, LGD-MC n = 100) a run is lgd_sampler_init, --steps lgd_sampler_step calls and
 * lgd_context_synchronize, timed as a whole after --warmup untimed runs; --reps timed
 * runs give the median, min and max, and LGD-MC n = 100 / DPS is the ratio of the
 * medians. Every run draws new noise (the run index is the seed), so no run replays a
 * cached one.
 *
 * Runs on either backend (--backend cpu|cuda; the CUDA module from --module PATH, else
 * $LGD_CUDA_MODULE, else the library's default search), so the same table is made on a
 * CPU machine and on a GPU one (bench/gpu_check.sh runs it with --backend cuda). Output:
 * a markdown table on stdout. Exit status 0 when every run succeeded, 1 when one failed,
 * 2 on a bad command line, 3 when the backend cannot be created.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lgd/lgd.h>

#include "tool_util.h"

#define MAX_BATCHES 8

typedef struct config {
    lgd_backend_kind backend;
    const char *module;
    int64_t batches[MAX_BATCHES];
    int nbatches;
    int32_t steps, warmup, reps, threads, n;
} config;

typedef struct method {
    const char *name;
    lgd_guidance_kind kind;
    int32_t n; /* 0: the --n value */
} method;

static const method methods[] = {
    { "unguided", LGD_GUIDANCE_NONE, 1 },
    { "DPS", LGD_GUIDANCE_DPS, 1 },
    { "LGD-MC", LGD_GUIDANCE_MC, 0 },
};
#define NMETHODS ((int)(sizeof methods / sizeof methods[0]))
#define DPS_INDEX 1
#define MC_INDEX 2

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [--backend cpu|cuda] [--module PATH] [--batch N]... [--steps N]\n"
            "          [--warmup N] [--reps N] [--n N] [--threads T]\n"
            "\n"
            "Wall time of whole guided sampling runs (init, steps, synchronize) on the\n"
            "trajectory prior with the obstacle-avoidance loss: unguided, DPS and LGD-MC,\n"
            "DDIM over Karras sigmas. Prints a markdown table (median, min, max per run).\n"
            "\n"
            "  --backend B   cpu or cuda (default cpu)\n"
            "  --module P    the CUDA module (default: $LGD_CUDA_MODULE or the search path)\n"
            "  --batch N     a batch size; repeat for several (default 1 and 64)\n"
            "  --steps N     sampler steps per run (default 100)\n"
            "  --warmup N    untimed runs first, per batch and method (default 2)\n"
            "  --reps N      timed runs per batch and method (default 10)\n"
            "  --n N         LGD-MC draws (default 100)\n"
            "  --threads T   CPU threads, 0 = the library's default (default 0)\n"
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
        { "--batch", 1, 1 << 20 }, { "--steps", 1, 100000 }, { "--warmup", 0, 10000 },
        { "--reps", 1, 100000 },   { "--n", 1, 1 << 20 },    { "--threads", 0, 4096 },
    };
    const int nk = (int)(sizeof ints / sizeof ints[0]);
    int user_batches = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, argv[0]);
            return 1;
        }
        int be = tool_parse_backend_arg(argv[0], a, val, &cfg->backend, &cfg->module);
        if (be < 0)
            return 2;
        if (be) {
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
        case 0:
            if (!user_batches)
                cfg->nbatches = 0;
            user_batches = 1;
            if (cfg->nbatches == MAX_BATCHES) {
                fprintf(stderr, "%s: at most %d --batch values\n", argv[0], MAX_BATCHES);
                return 2;
            }
            cfg->batches[cfg->nbatches++] = v;
            break;
        case 1: cfg->steps = (int32_t)v; break;
        case 2: cfg->warmup = (int32_t)v; break;
        case 3: cfg->reps = (int32_t)v; break;
        case 4: cfg->n = (int32_t)v; break;
        default: cfg->threads = (int32_t)v; break;
        }
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct timing {
    int ok;
    double median, min, max; /* ms per run */
    char error[512];
} timing;

#define CHECK(call)                                                                     \
    do {                                                                                \
        lgd_status st_ = (call);                                                        \
        if (st_ != LGD_OK) {                                                            \
            snprintf(t->error, sizeof t->error, "%s: %s: %s", #call,                   \
                     lgd_status_string(st_), lgd_context_last_error(ctx));              \
            goto done;                                                                  \
        }                                                                               \
    } while (0)

/* warmup + reps whole runs of one method at one batch size. */
static void time_method(lgd_context *ctx, lgd_model *model, lgd_loss *loss, const method *m,
                        const config *cfg, int64_t batch, timing *t)
{
    lgd_guidance *guidance = NULL;
    lgd_sampler *sampler = NULL;
    lgd_tensor *x = NULL;
    double *ms = malloc(sizeof(double) * (size_t)cfg->reps);
    memset(t, 0, sizeof *t);
    if (!ms) {
        snprintf(t->error, sizeof t->error, "out of host memory");
        return;
    }
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = m->kind;
    go.n_samples = m->n > 0 ? m->n : cfg->n;
    go.sigma_data = 1.0f; /* r(sigma) = sigma / sqrt(1 + sigma^2), the paper's App. B.3 */
    CHECK(lgd_guidance_create(ctx, model, m->kind == LGD_GUIDANCE_NONE ? NULL : loss, &go,
                              &guidance));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_DDIM;
    so.eta = 0.0f;
    so.steps = cfg->steps;
    so.schedule = LGD_SCHEDULE_KARRAS; /* defaults: 80 -> 0.002, rho 7 */
    CHECK(lgd_sampler_create(guidance, &so, &sampler));
    CHECK(lgd_tensor_create_2d(ctx, batch, lgd_model_dim(model), &x));
    for (int32_t run = 0; run < cfg->warmup + cfg->reps; run++) {
        CHECK(lgd_context_synchronize(ctx));
        double t0 = tool_now_ms();
        CHECK(lgd_sampler_init(sampler, x, (uint64_t)run + 1, 0));
        for (int32_t i = 0; i < cfg->steps; i++)
            CHECK(lgd_sampler_step(sampler, x, NULL));
        CHECK(lgd_context_synchronize(ctx));
        if (run >= cfg->warmup)
            ms[run - cfg->warmup] = tool_now_ms() - t0;
    }
    qsort(ms, (size_t)cfg->reps, sizeof *ms, cmp_double);
    t->min = ms[0];
    t->max = ms[cfg->reps - 1];
    t->median = cfg->reps % 2 ? ms[cfg->reps / 2]
                              : 0.5 * (ms[cfg->reps / 2 - 1] + ms[cfg->reps / 2]);
    t->ok = 1;
done:
    free(ms);
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(sampler);
    lgd_guidance_destroy(guidance);
}

int main(int argc, char **argv)
{
    config cfg = { LGD_BACKEND_CPU, NULL, { 1, 64 }, 2, 100, 2, 10, 0, 100 };
    int pr = parse_args(argc, argv, &cfg);
    if (pr == 1)
        return 0;
    if (pr) {
        usage(stderr, argv[0]);
        return 2;
    }
    if (cfg.backend == LGD_BACKEND_CUDA && !cfg.module) {
        const char *env = getenv("LGD_CUDA_MODULE");
        cfg.module = env && env[0] ? env : NULL;
    }
    lgd_context_options co = LGD_CONTEXT_OPTIONS_INIT;
    co.backend = cfg.backend;
    co.cuda_module_path = cfg.module;
    co.num_threads = cfg.threads;
    lgd_context *ctx = NULL;
    const char *cerr = NULL;
    lgd_status st = lgd_context_create(&co, &ctx, &cerr);
    if (st != LGD_OK) {
        fprintf(stderr, "bench-latency: no %s context: %s: %s\n",
                cfg.backend == LGD_BACKEND_CUDA ? "CUDA" : "CPU", lgd_status_string(st),
                cerr ? cerr : "");
        return 3;
    }
    int failed = 0;
    lgd_model *model = NULL;
    lgd_loss *loss = NULL;
    timing setup, *t = &setup;
    memset(&setup, 0, sizeof setup);
    /* as `lgd trajectory` (examples/lgd/trajectory_problem.c) lays out the trajectory */
    static const float goal[2] = { 6.0f, 0.0f }, obstacle[3] = { 3.0f, 0.0f, 1.0f };
    lgd_trajectory_layout lo = LGD_TRAJECTORY_LAYOUT_INIT;
    lo.frames = 64;
    lo.frame_stride = 2;
    lo.root_offset = 0;
    lo.velocities = 1;
    lo.velocity_scale = 0.1f;
    CHECK(lgd_model_create_trajectory_prior(ctx, NULL, &model));
    CHECK(lgd_loss_create_obstacle_avoidance(ctx, lgd_model_dim(model), &lo, goal, 1, obstacle,
                                             1, NULL, &loss));

    printf("## Latency of whole guided sampling runs (liblgd %s)\n\n", lgd_version_string());
    printf("- backend: %s\n", lgd_context_backend_name(ctx));
    printf("- trajectory prior (dim %" PRId64 ") with the obstacle-avoidance loss; DDIM "
           "(eta 0), %d Karras steps 80 -> 0.002; LGD-MC n = %d\n",
           lgd_model_dim(model), (int)cfg.steps, (int)cfg.n);
    printf("- a run: lgd_sampler_init + %d steps + lgd_context_synchronize; %d warm-up and "
           "%d timed runs per row\n\n",
           (int)cfg.steps, (int)cfg.warmup, (int)cfg.reps);
    printf("| batch | method | median ms/run | min ms | max ms | x DPS (medians) |\n");
    printf("|---:|---|---:|---:|---:|---:|\n");
    fflush(stdout);
    for (int b = 0; b < cfg.nbatches; b++) {
        timing r[NMETHODS];
        for (int i = 0; i < NMETHODS; i++) {
            time_method(ctx, model, loss, &methods[i], &cfg, cfg.batches[b], &r[i]);
            if (!r[i].ok) {
                fprintf(stderr, "bench-latency: batch %" PRId64 ", %s: %s\n", cfg.batches[b],
                        methods[i].name, r[i].error);
                failed = 1;
            }
        }
        for (int i = 0; i < NMETHODS; i++) {
            char name[64];
            if (i == MC_INDEX)
                snprintf(name, sizeof name, "%s n=%d", methods[i].name, (int)cfg.n);
            else
                snprintf(name, sizeof name, "%s", methods[i].name);
            if (!r[i].ok) {
                printf("| %" PRId64 " | %s | failed | - | - | - |\n", cfg.batches[b], name);
                continue;
            }
            char ratio[32] = "-";
            if (r[DPS_INDEX].ok)
                snprintf(ratio, sizeof ratio, "%.3f", r[i].median / r[DPS_INDEX].median);
            printf("| %" PRId64 " | %s | %.3f | %.3f | %.3f | %s |\n", cfg.batches[b], name,
                   r[i].median, r[i].min, r[i].max, ratio);
        }
        fflush(stdout);
    }
    printf("\n");
done:
    if (setup.error[0]) {
        fprintf(stderr, "bench-latency: %s\n", setup.error);
        failed = 1;
    }
    lgd_loss_destroy(loss);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
    return failed;
}
