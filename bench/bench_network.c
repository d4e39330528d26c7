/*
 * bench-network - one guided denoising step on a network loaded from a file, beside
 * PyTorch doing the same computation with the same weights in the same run.
 *
 * The step: the file's network made a denoiser with the eps-prediction VP adapter
 * (xhat = x - sigma F(x / sqrt(1 + sigma^2), t(sigma))), the loss
 * l(x) = 0.5 |x - 0|^2, and one call of lgd_guidance_term (the guidance term g and
 * xhat) for: unguided (the denoiser alone), DPS, LGD-MC n = 10 and n = 100 (default
 * radius r = sigma / sqrt(1 + sigma^2)). Each is warmed up, then timed --reps times;
 * the median is reported. With --torch SCRIPT, bench/bench_nn_torch.py runs the same
 * steps in PyTorch eager (float32, --threads threads) on the same file, batch, sigma
 * and t, and the table gives both times and their ratio.
 *
 *   bench-network --file unet.safetensors --batch 8 --threads 2 --torch bench/bench_nn_torch.py
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lgd/lgd.h>

typedef struct method {
    const char *name;
    const char *torch_key; /* key of bench_nn_torch.py's JSON */
    lgd_guidance_kind kind;
    int32_t n;
} method;

static const method methods[] = {
    { "unguided", "unguided", LGD_GUIDANCE_NONE, 0 },
    { "DPS", "dps", LGD_GUIDANCE_DPS, 1 },
    { "LGD-MC n=10", "lgd_mc_10", LGD_GUIDANCE_MC, 10 },
    { "LGD-MC n=100", "lgd_mc_100", LGD_GUIDANCE_MC, 100 },
};
#define NMETHODS ((int)(sizeof methods / sizeof methods[0]))

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(lgd_context *ctx, const char *what, lgd_status st)
{
    fprintf(stderr, "bench-network: %s: %s (%s)\n", what, lgd_status_string(st),
            ctx ? lgd_context_last_error(ctx) : "");
    exit(1);
}

/* the number after "key": in a flat JSON object, or NAN */
static double json_number(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(json, pat);
    if (!p)
        return NAN;
    p = strchr(p + strlen(pat), ':');
    return p ? strtod(p + 1, NULL) : NAN;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench-network --file PATH [--batch B] [--sigma S] [--threads T] [--reps R]\n"
            "                     [--backend cpu|cuda] [--module liblgd-cuda.so]\n"
            "                     [--torch bench/bench_nn_torch.py]\n"
            "                     [--python python3] [--label NAME]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *file = NULL, *torch = NULL, *python = "python3", *label = NULL;
    const char *backend = "cpu", *module = getenv("LGD_CUDA_MODULE");
    int64_t batch = 8;
    float sigma = 1.0f;
    int threads = 0, reps = 10;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(a, "--file"))
            file = v;
        else if (!strcmp(a, "--batch"))
            batch = atoll(v);
        else if (!strcmp(a, "--sigma"))
            sigma = (float)atof(v);
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--reps"))
            reps = atoi(v);
        else if (!strcmp(a, "--torch"))
            torch = v;
        else if (!strcmp(a, "--python"))
            python = v;
        else if (!strcmp(a, "--label"))
            label = v;
        else if (!strcmp(a, "--backend"))
            backend = v;
        else if (!strcmp(a, "--module"))
            module = v;
        else
            usage();
        i++;
    }
    if (!file || batch <= 0 || reps <= 0 || !(sigma > 0.0f))
        usage();
    if (!label)
        label = file;

    lgd_context_options co = LGD_CONTEXT_OPTIONS_INIT;
    co.backend = !strcmp(backend, "cuda") ? LGD_BACKEND_CUDA : LGD_BACKEND_CPU;
    co.num_threads = threads;
    co.cuda_module_path = module;
    lgd_context *ctx = NULL;
    lgd_status st = lgd_context_create(&co, &ctx, NULL);
    if (st)
        die(NULL, "context", st);
    lgd_network *net;
    if ((st = lgd_network_load(ctx, file, &net)))
        die(ctx, "load", st);
    int64_t D = lgd_network_dim(net);
    /* eps prediction on the file's discrete schedule, or the usual linear one */
    lgd_adapter_options ao;
    if ((st = lgd_network_adapter_options(net, &ao)))
        die(ctx, "adapter", st);
    float *alphas = NULL;
    if (!ao.alphas_cumprod) {
        alphas = malloc(1000 * sizeof *alphas);
        if ((st = lgd_vp_alphas_cumprod(LGD_SCHEDULE_VP_LINEAR, 1000, 1e-4f, 0.02f, alphas)))
            die(ctx, "schedule", st);
        ao.alphas_cumprod = alphas;
        ao.num_timesteps = 1000;
    }
    ao.prediction = LGD_PREDICT_EPS;
    ao.time_input = LGD_TIME_DISCRETE;
    lgd_model *model;
    if ((st = lgd_model_create_from_network(ctx, net, &ao, &model)))
        die(ctx, "model", st);
    float t;
    lgd_model_network_time(model, sigma, &t);
    float *w = malloc((size_t)D * sizeof *w), *zero = calloc((size_t)D, sizeof *zero);
    for (int64_t j = 0; j < D; j++)
        w[j] = 0.5f;
    lgd_loss *loss;
    if ((st = lgd_loss_create_squared_error(ctx, D, zero, 1, w, &loss)))
        die(ctx, "loss", st);
    float *hx = malloc((size_t)(batch * D) * sizeof *hx);
    uint64_t s = 12345;
    for (int64_t i = 0; i < batch * D; i++) {
        /* a deterministic normal-ish input x ~ sigma-scaled noise */
        double u = 0.0;
        for (int k = 0; k < 4; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            u += (double)(s >> 11) / 9007199254740992.0;
        }
        hx[i] = (float)((u - 2.0) * 1.7320508 * sqrt(1.0 + (double)sigma * sigma));
    }
    lgd_tensor *x, *gt, *xh;
    if ((st = lgd_tensor_create_2d(ctx, batch, D, &x)) ||
        (st = lgd_tensor_create_2d(ctx, batch, D, &gt)) ||
        (st = lgd_tensor_create_2d(ctx, batch, D, &xh)))
        die(ctx, "tensors", st);
    lgd_tensor_upload(x, hx, (size_t)(batch * D));

    double ms[NMETHODS];
    size_t peak[NMETHODS];
    for (int m = 0; m < NMETHODS; m++) {
        lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
        go.kind = methods[m].kind;
        go.n_samples = methods[m].n > 0 ? methods[m].n : 1;
        lgd_guidance *g;
        if ((st = lgd_guidance_create(ctx, model, methods[m].kind == LGD_GUIDANCE_NONE ? NULL : loss,
                                      &go, &g)))
            die(ctx, "guidance", st);
        double *times = malloc((size_t)reps * sizeof *times);
        for (int r = -2; r < reps; r++) {
            double t0 = now_ms();
            if (methods[m].kind == LGD_GUIDANCE_NONE)
                st = lgd_model_denoise(model, x, sigma, NULL, xh);
            else
                st = lgd_guidance_term(g, x, sigma, 0, 0, gt, xh, NULL);
            if (!st)
                st = lgd_context_synchronize(ctx);
            if (st)
                die(ctx, methods[m].name, st);
            if (r >= 0)
                times[r] = now_ms() - t0;
        }
        qsort(times, (size_t)reps, sizeof *times, cmp_double);
        ms[m] = times[reps / 2];
        free(times);
        lgd_context_memory_usage(ctx, NULL, &peak[m]);
        lgd_guidance_destroy(g);
    }

    double tms[NMETHODS];
    for (int m = 0; m < NMETHODS; m++)
        tms[m] = NAN;
    char torch_version[64] = "";
    if (torch) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd,
                 "%s %s --file '%s' --batch %lld --sigma %.9g --t %.9g --threads %d --reps %d "
                 "--json",
                 python, torch, file, (long long)batch, (double)sigma, (double)t,
                 threads > 0 ? threads : 1, reps);
        FILE *p = popen(cmd, "r");
        char out[8192] = "";
        size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
        out[n] = 0;
        int rc = p ? pclose(p) : -1;
        if (rc != 0)
            fprintf(stderr, "bench-network: the PyTorch side failed (%s)\n", cmd);
        /* {"...", "modes": {"dps": {"ms_median": ...}, ...}} */
        const char *modes = strstr(out, "\"modes\"");
        for (int m = 0; m < NMETHODS && modes; m++) {
            char pat[64];
            snprintf(pat, sizeof pat, "\"%s\"", methods[m].torch_key);
            const char *at = strstr(modes, pat);
            if (at)
                tms[m] = json_number(at, "ms_median");
        }
        const char *v = strstr(out, "\"torch\"");
        if (v && (v = strchr(v + 7, '"')))
            sscanf(v + 1, "%63[^\"]", torch_version);
    }

    printf("## %s: dim %lld, %lld weights, batch %lld, sigma %g (t = %.2f), %s\n\n", label,
           (long long)D, (long long)lgd_network_parameter_count(net), (long long)batch,
           (double)sigma, (double)t, lgd_context_backend_name(ctx));
    printf("| method | liblgd ms | PyTorch%s%s ms | PyTorch / liblgd | liblgd / DPS | peak MiB |\n",
           torch_version[0] ? " " : "", torch_version);
    printf("|---|---:|---:|---:|---:|---:|\n");
    for (int m = 0; m < NMETHODS; m++)
        printf("| %s | %.2f | %.2f | %.2f | %.3f | %.1f |\n", methods[m].name, ms[m], tms[m],
               tms[m] / ms[m], ms[m] / ms[1], (double)peak[m] / 1048576.0);
    printf("\n");

    lgd_tensor_destroy(x);
    lgd_tensor_destroy(gt);
    lgd_tensor_destroy(xh);
    lgd_loss_destroy(loss);
    lgd_model_destroy(model);
    lgd_network_destroy(net);
    lgd_context_destroy(ctx);
    free(alphas);
    free(w);
    free(zero);
    free(hx);
    return 0;
}
