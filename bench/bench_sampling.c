/*
 * bench-sampling - time and memory per sampler step of the guidance estimators.
 *
 * Prior: a Gaussian mixture in --dim dimensions with --components components (random
 * means, random diagonal variances, or random full covariances with --full). Loss: the
 * built-in squared error to a random target point. For unguided sampling, DPS and
 * LGD-MC with n = 1, 10 and 100 draws, the bench runs one warm-up Euler step and then
 * times --steps steps on a batch of --batch samples. It reports the median, mean and
 * smallest time per step, the median's ratio to DPS, the context's peak backend memory
 * (lgd_context_memory_usage) and the process's peak resident set (getrusage). Each
 * method runs in its own child process so that the resident-set peaks do not mix.
 *
 * This is the experiment of the paper's App. A.5 (Tab. 6) on a cheap analytic model:
 * LGD-MC runs the model and its VJP once per step however large n is.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lgd/lgd.h>

#include "tool_util.h"

typedef struct config {
    int64_t batch;
    int64_t dim;
    int64_t components;
    int32_t steps;
    int32_t threads;
    int full;
} config;

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
#define WARMUP_STEPS 1

/* What a child process sends back through its pipe. */
typedef struct result {
    int ok;
    double ms_median; /* per timed step */
    double ms_mean;
    double ms_min;
    size_t ctx_peak;
    long max_rss_kb;
    char backend[96];
    char error[512];
} result;

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [--batch N] [--dim N] [--components K] [--steps N] [--threads T] [--full]\n"
            "\n"
            "Per-step time and peak memory of unguided, DPS and LGD-MC (n = 1, 10, 100)\n"
            "sampling on a Gaussian-mixture prior with a squared-error loss.\n"
            "\n"
            "  --batch N       samples per batch (default 4096)\n"
            "  --dim N         dimension (default 128)\n"
            "  --components K  mixture components (default 16)\n"
            "  --steps N       timed steps after %d warm-up step (default 5)\n"
            "  --threads T     CPU threads, 0 = OpenMP's default (default 0)\n"
            "  --full          full covariances (default diagonal)\n"
            "  --help          print this message\n",
            prog, WARMUP_STEPS);
}

/* Returns 0 to run, 1 after --help, 2 on a bad command line. */
static int parse_args(int argc, char **argv, config *cfg)
{
    static const struct {
        const char *flag;
        long long lo, hi;
    } ints[] = {
        { "--batch", 1, 1 << 24 }, { "--dim", 1, 1 << 16 }, { "--components", 1, 1 << 12 },
        { "--steps", 1, 10000 },   { "--threads", 0, 4096 },
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, argv[0]);
            return 1;
        }
        if (!strcmp(a, "--full")) {
            cfg->full = 1;
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
        case 0: cfg->batch = v; break;
        case 1: cfg->dim = v; break;
        case 2: cfg->components = v; break;
        case 3: cfg->steps = (int32_t)v; break;
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

#define CHECK(call)                                                                     \
    do {                                                                                \
        lgd_status st_ = (call);                                                        \
        if (st_ != LGD_OK) {                                                            \
            snprintf(res->error, sizeof res->error, "%s: %s: %s", #call,                \
                     lgd_status_string(st_), lgd_context_last_error(ctx));              \
            goto done;                                                                  \
        }                                                                               \
    } while (0)

/* Builds the problem and times one method; fills *res. Runs in a child process. */
static void run_method(const config *cfg, const method *m, result *res)
{
    const int64_t D = cfg->dim, K = cfg->components;
    lgd_context *ctx = NULL;
    lgd_model *model = NULL;
    lgd_loss *loss = NULL;
    lgd_guidance *guidance = NULL;
    lgd_sampler *sampler = NULL;
    lgd_tensor *x = NULL;
    float *weights = NULL, *means = NULL, *cov = NULL, *target = NULL, *a = NULL;
    double *times = NULL;

    lgd_context_options co = LGD_CONTEXT_OPTIONS_INIT;
    co.backend = LGD_BACKEND_CPU;
    co.num_threads = cfg->threads;
    const char *cerr = NULL;
    lgd_status st = lgd_context_create(&co, &ctx, &cerr);
    if (st != LGD_OK) {
        snprintf(res->error, sizeof res->error, "lgd_context_create: %s: %s",
                 lgd_status_string(st), cerr ? cerr : "");
        return;
    }
    snprintf(res->backend, sizeof res->backend, "%s", lgd_context_backend_name(ctx));

    /* The same problem in every child: the generator starts from its fixed seed. */
    tool_rng rng = { TOOL_RNG_SEED };
    size_t cov_count = cfg->full ? (size_t)(K * D * D) : (size_t)(K * D);
    weights = malloc(sizeof(float) * (size_t)K);
    means = malloc(sizeof(float) * (size_t)(K * D));
    cov = malloc(sizeof(float) * cov_count);
    target = malloc(sizeof(float) * (size_t)D);
    a = cfg->full ? malloc(sizeof(float) * (size_t)(D * D)) : NULL;
    if (!weights || !means || !cov || !target || (cfg->full && !a)) {
        snprintf(res->error, sizeof res->error, "out of host memory");
        goto done;
    }
    for (int64_t k = 0; k < K; k++) {
        weights[k] = (float)(0.5 + tool_uniform01(&rng));
        for (int64_t j = 0; j < D; j++)
            means[k * D + j] = (float)(2.0 * tool_normal01(&rng));
        if (!cfg->full) {
            for (int64_t j = 0; j < D; j++)
                cov[k * D + j] = (float)(0.05 + 0.45 * tool_uniform01(&rng));
            continue;
        }
        /* Sigma_k = 0.3 A A^T / D + 0.05 I: symmetric positive definite. */
        for (int64_t i = 0; i < D * D; i++)
            a[i] = (float)tool_normal01(&rng);
        float *s = cov + k * D * D;
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
        target[j] = means[j] + (float)(0.5 * tool_normal01(&rng));

    CHECK(lgd_model_create_gmm(ctx, D, K, weights, means, cov,
                               cfg->full ? LGD_COVARIANCE_FULL : LGD_COVARIANCE_DIAGONAL,
                               &model));
    CHECK(lgd_loss_create_squared_error(ctx, D, target, 1, NULL, &loss));

    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = m->kind;
    if (m->n > 0)
        go.n_samples = m->n;
    CHECK(lgd_guidance_create(ctx, model, m->kind == LGD_GUIDANCE_NONE ? NULL : loss, &go,
                              &guidance));
    lgd_sampler_options so = LGD_SAMPLER_OPTIONS_INIT;
    so.kind = LGD_SAMPLER_EULER;
    so.steps = WARMUP_STEPS + cfg->steps;
    CHECK(lgd_sampler_create(guidance, &so, &sampler));
    CHECK(lgd_tensor_create_2d(ctx, cfg->batch, D, &x));

    CHECK(lgd_sampler_init(sampler, x, 1, 0));
    for (int i = 0; i < WARMUP_STEPS; i++)
        CHECK(lgd_sampler_step(sampler, x, NULL));
    CHECK(lgd_context_synchronize(ctx));

    times = malloc(sizeof(double) * (size_t)cfg->steps);
    if (!times) {
        snprintf(res->error, sizeof res->error, "out of host memory");
        goto done;
    }
    double total = 0.0;
    for (int32_t i = 0; i < cfg->steps; i++) {
        double t0 = tool_now_ms();
        CHECK(lgd_sampler_step(sampler, x, NULL));
        CHECK(lgd_context_synchronize(ctx));
        times[i] = tool_now_ms() - t0;
        total += times[i];
    }
    qsort(times, (size_t)cfg->steps, sizeof *times, cmp_double);
    res->ms_median = cfg->steps % 2 ? times[cfg->steps / 2]
                                    : 0.5 * (times[cfg->steps / 2 - 1] + times[cfg->steps / 2]);
    res->ms_mean = total / cfg->steps;
    res->ms_min = times[0];
    lgd_context_memory_usage(ctx, NULL, &res->ctx_peak);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        res->max_rss_kb = ru.ru_maxrss; /* kilobytes on Linux */
    res->ok = 1;
done:
    lgd_tensor_destroy(x);
    lgd_sampler_destroy(sampler);
    lgd_guidance_destroy(guidance);
    lgd_loss_destroy(loss);
    lgd_model_destroy(model);
    lgd_context_destroy(ctx);
    free(times);
    free(a);
    free(target);
    free(cov);
    free(means);
    free(weights);
}

/* Runs one method in a child process and collects its result. */
static int run_in_child(const config *cfg, const method *m, result *res)
{
    memset(res, 0, sizeof *res);
    int fds[2];
    if (pipe(fds)) {
        perror("pipe");
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        run_method(cfg, m, res);
        const char *p = (const char *)res;
        size_t left = sizeof *res;
        while (left > 0) {
            ssize_t w = write(fds[1], p, left);
            if (w <= 0)
                _exit(1);
            p += w;
            left -= (size_t)w;
        }
        _exit(0);
    }
    close(fds[1]);
    char *p = (char *)res;
    size_t got = 0;
    while (got < sizeof *res) {
        ssize_t r = read(fds[0], p + got, sizeof *res - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fds[0]);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (got != sizeof *res) {
        memset(res, 0, sizeof *res);
        snprintf(res->error, sizeof res->error, "child process died (status %d)", wstatus);
    }
    return 0;
}

int main(int argc, char **argv)
{
    config cfg = { 4096, 128, 16, 5, 0, 0 };
    int pr = parse_args(argc, argv, &cfg);
    if (pr == 1)
        return 0;
    if (pr) {
        usage(stderr, argv[0]);
        return 2;
    }

    result res[NMETHODS];
    int failed = 0;
    for (int i = 0; i < NMETHODS; i++) {
        if (run_in_child(&cfg, &methods[i], &res[i]))
            return 1;
        if (!res[i].ok) {
            fprintf(stderr, "bench-sampling: %s: %s\n", methods[i].name, res[i].error);
            failed = 1;
        }
    }

    const char *backend = "?";
    for (int i = 0; i < NMETHODS; i++)
        if (res[i].backend[0]) {
            backend = res[i].backend;
            break;
        }
    printf("liblgd %s, backend %s\n", lgd_version_string(), backend);
    printf("GMM prior: dim %" PRId64 ", %" PRId64 " components, %s covariances; "
           "squared-error loss; batch %" PRId64 "\n",
           cfg.dim, cfg.components, cfg.full ? "full" : "diagonal", cfg.batch);
    printf("Euler sampler: %d warm-up step, %d timed steps; threads %d%s\n\n", WARMUP_STEPS,
           (int)cfg.steps, (int)cfg.threads, cfg.threads ? "" : " (OpenMP default)");
    printf("%-14s %10s %10s %10s %8s %14s %14s\n", "method", "ms/step", "mean ms", "min ms",
           "x DPS", "ctx peak MiB", "max RSS MiB");
    const double dps = res[DPS_INDEX].ok ? res[DPS_INDEX].ms_median : NAN;
    for (int i = 0; i < NMETHODS; i++) {
        if (!res[i].ok) {
            printf("%-14s %10s\n", methods[i].name, "failed");
            continue;
        }
        printf("%-14s %10.2f %10.2f %10.2f %8.2f %14.1f %14.1f\n", methods[i].name,
               res[i].ms_median, res[i].ms_mean, res[i].ms_min, res[i].ms_median / dps,
               (double)res[i].ctx_peak / (1024.0 * 1024.0), (double)res[i].max_rss_kb / 1024.0);
    }
    return failed;
}
