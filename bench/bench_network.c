/*
 * bench-network - one guided denoising step on a network loaded from a file, beside
 * PyTorch doing the same computation with the same weights in the same run.
 *
 * The step: the file's network made a denoiser with the eps-prediction VP adapter
 * (xhat = x - sigma F(x / sqrt(1 + sigma^2), t(sigma))), the loss
 * l(x) = 0.5 |x - 0|^2, and one call of lgd_guidance_term (the guidance term g and
 * xhat) for: unguided (the denoiser alone), DPS, LGD-MC n = 10 and n = 100 (default
 * radius r = sigma / sqrt(1 + sigma^2)). Each is warmed up, then timed --reps times;
 * the table gives the median wall time with its range (min..max) and the median
 * process CPU time (every thread; on a shared machine the CPU time moves less than the
 * wall time, which includes the time other processes hold the cores). With --torch
 * SCRIPT, bench/bench_nn_torch.py runs the same steps in PyTorch eager (float32,
 * --threads threads) on the same file, batch, sigma and t, and the table gives both
 * and their ratios. The load average before and after is printed: the numbers are only
 * as good as the machine was quiet.
 *
 * --profile adds, for DPS and LGD-MC n = 100, the time per layer kind (the graph
 * executor's own timing, src/nn/nn_graph.h: wall and CPU time of every layer, forward
 * and VJP), the FLOPs of the convolutions and GEMMs, the achieved GFLOP/s and the
 * fraction of the cores' peak; the peak is measured here (a loop of independent
 * float32 FMAs on one thread, in thread CPU time, times --threads) beside the nominal
 * one (cpu MHz of /proc/cpuinfo x 2 FMA units x lanes x 2), or given (--peak-gflops).
 * --no-fuse runs the layers one by one as built (the executor's fusions off), --fuse MASK
 * only some fusions (1 group norm + activation, 2 the channel add before it, 4 residual
 * adds; nn_graph.h), for A/B runs: results are bit-identical either way. --ab 0,1,3,7
 * times the masks given interleaved step by step in one process (the fairest comparison
 * on a busy machine) instead of the table above.
 *
 *   bench-network --file unet.safetensors --batch 8 --threads 2 --torch bench/bench_nn_torch.py
 *   bench-network --file unet.safetensors --batch 8 --threads 1 --methods dps,mc100 --profile
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lgd/lgd.h>

#include "nn/network_internal.h"
#include "nn/nn_graph.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BENCH_X86 1
#endif

typedef struct method {
    const char *name;
    const char *key;       /* --methods name */
    const char *torch_key; /* key of bench_nn_torch.py's JSON */
    lgd_guidance_kind kind;
    int32_t n;
} method;

static const method methods[] = {
    { "unguided", "unguided", "unguided", LGD_GUIDANCE_NONE, 0 },
    { "DPS", "dps", "dps", LGD_GUIDANCE_DPS, 1 },
    { "LGD-MC n=10", "mc10", "lgd_mc_10", LGD_GUIDANCE_MC, 10 },
    { "LGD-MC n=100", "mc100", "lgd_mc_100", LGD_GUIDANCE_MC, 100 },
};
#define NMETHODS ((int)(sizeof methods / sizeof methods[0]))

static double clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median of v[0..n) (sorts v) */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
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

static void loadavg(char *out, size_t cap)
{
    FILE *f = fopen("/proc/loadavg", "r");
    out[0] = 0;
    if (f) {
        if (fgets(out, (int)cap, f)) {
            /* the first three fields */
            char *p = out;
            for (int k = 0; k < 3 && p; k++)
                p = strchr(p + 1, ' ');
            if (p)
                *p = 0;
        }
        fclose(f);
    }
    if (!out[0])
        snprintf(out, cap, "?");
}

/* ------------------------------------------------------------------ the cores' peak */

#ifdef BENCH_X86
/* independent FMA chains (more than the FMA latency x units), returns a value that
 * depends on all of them so the loop is kept */
__attribute__((target("avx2,fma"))) static float fma_loop_avx2(long iters)
{
    __m256 a[12];
    const __m256 b = _mm256_set1_ps(0.99999f), c = _mm256_set1_ps(1e-6f);
    for (int k = 0; k < 12; k++)
        a[k] = _mm256_set1_ps(1.0f + 0.01f * (float)k);
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 12; k++)
            a[k] = _mm256_fmadd_ps(a[k], b, c);
    __m256 s = a[0];
    for (int k = 1; k < 12; k++)
        s = _mm256_add_ps(s, a[k]);
    float o[8];
    _mm256_storeu_ps(o, s);
    return o[0] + o[7];
}

__attribute__((target("avx512f"))) static float fma_loop_avx512(long iters)
{
    __m512 a[16];
    const __m512 b = _mm512_set1_ps(0.99999f), c = _mm512_set1_ps(1e-6f);
    for (int k = 0; k < 16; k++)
        a[k] = _mm512_set1_ps(1.0f + 0.01f * (float)k);
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 16; k++)
            a[k] = _mm512_fmadd_ps(a[k], b, c);
    __m512 s = a[0];
    for (int k = 1; k < 16; k++)
        s = _mm512_add_ps(s, a[k]);
    return _mm512_reduce_add_ps(s);
}
#endif

/* float32 FMA peak of one core in GFLOP/s, measured in thread CPU time (best of 5), and
 * the vector width used; 0 where no FMA loop is available */
static double measured_core_peak(int *lanes)
{
    *lanes = 0;
#ifdef BENCH_X86
    __builtin_cpu_init();
    int w512 = __builtin_cpu_supports("avx512f");
    if (!w512 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return 0.0;
    *lanes = w512 ? 16 : 8;
    const int chains = w512 ? 16 : 12;
    const long iters = 4000000;
    double best = 0.0;
    volatile float sink = 0.0f;
    for (int r = 0; r < 5; r++) {
        double t0 = clock_ms(CLOCK_THREAD_CPUTIME_ID);
        sink += w512 ? fma_loop_avx512(iters) : fma_loop_avx2(iters);
        double ms = clock_ms(CLOCK_THREAD_CPUTIME_ID) - t0;
        double gf = (double)iters * chains * (*lanes) * 2.0 / (ms * 1e6);
        if (gf > best)
            best = gf;
    }
    (void)sink;
    return best;
#else
    return 0.0;
#endif
}

static double cpuinfo_mhz(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    double mhz = 0.0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "cpu MHz", 7)) {
            const char *p = strchr(line, ':');
            if (p)
                mhz = atof(p + 1);
            break;
        }
    if (f)
        fclose(f);
    return mhz;
}

/* ------------------------------------------------------------------ the profile */

typedef struct prof_run {
    nn_profile p;
    double step_wall, step_cpu;
} prof_run;

static double kind_total(const prof_run *r, int k, int cpu)
{
    const nn_prof_entry *f = &r->p.e[0][k], *b = &r->p.e[1][k];
    return cpu ? f->cpu_ms + b->cpu_ms : f->wall_ms + b->wall_ms;
}

static int is_compute_kind(int k)
{
    return k == NN_PROF_CONV || k == NN_PROF_CONV1X1 || k == NN_PROF_LINEAR ||
           k == NN_PROF_ATTENTION;
}

static void print_profile(const char *name, const prof_run *runs, int reps, int threads,
                          double core_peak, const char *peak_how)
{
    double *v = malloc((size_t)reps * sizeof *v);
    double step_med, step_min = INFINITY, step_max = 0, cpu_med;
    for (int r = 0; r < reps; r++) {
        v[r] = runs[r].step_wall;
        step_min = fmin(step_min, v[r]);
        step_max = fmax(step_max, v[r]);
    }
    step_med = median(v, reps);
    for (int r = 0; r < reps; r++)
        v[r] = runs[r].step_cpu;
    cpu_med = median(v, reps);
    const double peak = core_peak * threads;
    printf("### Profile: %s, %d steps (median per step; wall %.2f ms, min %.2f, max %.2f; "
           "CPU %.2f ms)\n\n",
           name, reps, step_med, step_min, step_max, cpu_med);
    printf("Peak: %.1f GFLOP/s = %d thread%s x %.1f GFLOP/s per core (%s).\n\n", peak, threads,
           threads == 1 ? "" : "s", core_peak, peak_how);
    printf("| layer kind | calls | forward ms | VJP ms | wall ms (min..max) | %% of step | "
           "CPU ms | GFLOP | GFLOP/s | %% of peak | GFLOP/s per CPU-s | GB/s |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < NN_PROF_KINDS; k++) {
        const nn_prof_entry *f0 = &runs[0].p.e[0][k], *b0 = &runs[0].p.e[1][k];
        uint64_t calls = f0->calls + b0->calls;
        if (!calls)
            continue;
        double fwd, bwd, tot, cpu, mn = INFINITY, mx = 0.0;
        for (int r = 0; r < reps; r++)
            v[r] = runs[r].p.e[0][k].wall_ms;
        fwd = median(v, reps);
        for (int r = 0; r < reps; r++)
            v[r] = runs[r].p.e[1][k].wall_ms;
        bwd = median(v, reps);
        for (int r = 0; r < reps; r++) {
            v[r] = kind_total(&runs[r], k, 0);
            mn = fmin(mn, v[r]);
            mx = fmax(mx, v[r]);
        }
        tot = median(v, reps);
        for (int r = 0; r < reps; r++)
            v[r] = kind_total(&runs[r], k, 1);
        cpu = median(v, reps);
        double flops = f0->flops + b0->flops, bytes = f0->bytes + b0->bytes;
        printf("| %s | %llu | %.2f | %.2f | %.2f (%.2f..%.2f) | %.1f | %.2f |", nn_prof_kind_name(k),
               (unsigned long long)calls, fwd, bwd, tot, mn, mx, 100.0 * tot / step_med, cpu);
        if (flops > 0)
            printf(" %.3f | %.1f | %.0f%% | %.1f |", flops * 1e-9, flops / (tot * 1e6),
                   peak > 0 ? 100.0 * flops / (tot * 1e6) / peak : NAN, flops / (cpu * 1e6));
        else
            printf(" - | - | - | - |");
        printf(" %.1f |\n", bytes / (tot * 1e6));
    }
    /* the rows below per step, then their medians (medians of the kinds above need not
     * add up to the step's) */
    double *nw = malloc((size_t)reps * sizeof *nw), *nc = malloc((size_t)reps * sizeof *nc);
    double *ow = malloc((size_t)reps * sizeof *ow), *oc = malloc((size_t)reps * sizeof *oc);
    double *cw = malloc((size_t)reps * sizeof *cw), *cc = malloc((size_t)reps * sizeof *cc);
    double *pw = malloc((size_t)reps * sizeof *pw);
    for (int r = 0; r < reps; r++) {
        double net_wall = 0.0, net_cpu = 0.0, comp_wall = 0.0, comp_cpu = 0.0;
        for (int k = 0; k < NN_PROF_KINDS; k++) {
            net_wall += kind_total(&runs[r], k, 0);
            net_cpu += kind_total(&runs[r], k, 1);
            if (is_compute_kind(k)) {
                comp_wall += kind_total(&runs[r], k, 0);
                comp_cpu += kind_total(&runs[r], k, 1);
            }
        }
        nw[r] = net_wall;
        nc[r] = net_cpu;
        pw[r] = 100.0 * net_wall / runs[r].step_wall;
        ow[r] = runs[r].step_wall - net_wall;
        oc[r] = runs[r].step_cpu - net_cpu;
        cw[r] = 100.0 * (runs[r].step_wall - comp_wall) / runs[r].step_wall;
        cc[r] = 100.0 * (runs[r].step_cpu - comp_cpu) / runs[r].step_cpu;
    }
    const double pct_net = median(pw, reps);
    printf("| **network (sum of the layers)** | | | | %.2f | %.1f | %.2f | | | | | |\n",
           median(nw, reps), pct_net, median(nc, reps));
    printf("| outside the network (guidance: loss, draws, weights, adapter) | | | | %.2f | %.1f "
           "| %.2f | | | | | |\n\n",
           median(ow, reps), 100.0 - pct_net, median(oc, reps));
    double cw_min = INFINITY, cw_max = 0.0;
    for (int r = 0; r < reps; r++) {
        cw_min = fmin(cw_min, cw[r]);
        cw_max = fmax(cw_max, cw[r]);
    }
    printf("Time outside convolutions, GEMMs and attention: %.1f%% of the step's wall time "
           "(median over the steps; %.1f..%.1f%%), %.1f%% of its CPU time. Per-kind columns "
           "are medians over the steps; the last two rows are taken per step.\n\n",
           median(cw, reps), cw_min, cw_max, median(cc, reps));
    free(nw);
    free(nc);
    free(ow);
    free(oc);
    free(cw);
    free(cc);
    free(pw);
    free(v);
}

/* --ab: the fusion masks interleaved step by step in this process (each step after one
 * untimed step with the same mask, which lays the arenas out again), so that a burst of
 * load from other processes reaches every mask alike; per mask the median and min of the
 * step's wall and CPU time and of the CPU time in the layers a fusion touches (norms,
 * activations, adds). */
static void run_ab(lgd_context *ctx, nn_graph *graph, lgd_model *model, lgd_loss *loss,
                   const method *m, lgd_tensor *x, float sigma, lgd_tensor *gt, lgd_tensor *xh,
                   const unsigned *masks, int nm, int reps)
{
    lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
    go.kind = m->kind;
    go.n_samples = m->n > 0 ? m->n : 1;
    lgd_guidance *g;
    lgd_status st = lgd_guidance_create(ctx, model, m->kind == LGD_GUIDANCE_NONE ? NULL : loss,
                                        &go, &g);
    if (st)
        die(ctx, "guidance", st);
    double *wall = malloc((size_t)(nm * reps) * sizeof *wall);
    double *cpu = malloc((size_t)(nm * reps) * sizeof *cpu);
    double *elem = malloc((size_t)(nm * reps) * sizeof *elem);
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < nm; k++) {
            nn_graph_set_fusion(graph, masks[k]);
            for (int w = 0; w < 2; w++) {
                nn_profile p;
                memset(&p, 0, sizeof p);
                if (w)
                    nn_graph_set_profile(graph, &p);
                double t0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
                st = m->kind == LGD_GUIDANCE_NONE ? lgd_model_denoise(model, x, sigma, NULL, xh)
                                                  : lgd_guidance_term(g, x, sigma, 0, 0, gt, xh,
                                                                      NULL);
                if (!st)
                    st = lgd_context_synchronize(ctx);
                if (st)
                    die(ctx, m->name, st);
                double t1 = clock_ms(CLOCK_MONOTONIC), c1 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
                nn_graph_set_profile(graph, NULL);
                if (w) {
                    wall[k * reps + r] = t1 - t0;
                    cpu[k * reps + r] = c1 - c0;
                    double e = 0.0;
                    for (int d = 0; d < 2; d++)
                        e += p.e[d][NN_PROF_NORM].cpu_ms + p.e[d][NN_PROF_ACT].cpu_ms +
                             p.e[d][NN_PROF_ADD].cpu_ms;
                    elem[k * reps + r] = e;
                }
            }
        }
    printf("### Fusions A/B: %s, %d steps per mask, interleaved\n\n", m->name, reps);
    printf("| fusions (--fuse) | wall ms median | min | CPU ms median | min | norms + "
           "activations + adds, CPU ms median | min |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < nm; k++) {
        double *w = wall + k * reps, *c = cpu + k * reps, *e = elem + k * reps;
        double wm = median(w, reps), cm = median(c, reps), em = median(e, reps);
        printf("| %u%s%s%s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", masks[k],
               masks[k] & NN_FUSE_NORM_ACT ? " norm+act" : "",
               masks[k] & NN_FUSE_CHANNEL_ADD ? " channel-add" : "",
               masks[k] & NN_FUSE_RESIDUAL ? " residual" : (masks[k] ? "" : " none"), wm, w[0],
               cm, c[0], em, e[0]);
    }
    printf("\n");
    free(wall);
    free(cpu);
    free(elem);
    lgd_guidance_destroy(g);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench-network --file PATH [--batch B] [--sigma S] [--threads T] [--reps R]\n"
            "                     [--methods unguided,dps,mc10,mc100] [--profile]\n"
            "                     [--no-fuse | --fuse MASK (1 norm+act, 2 channel add, 4 residual)]\n"
            "                     [--ab MASK,MASK,...]\n"
            "                     [--peak-gflops G] [--backend cpu|cuda] [--module liblgd-cuda.so]\n"
            "                     [--torch bench/bench_nn_torch.py]\n"
            "                     [--python python3] [--label NAME]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *file = NULL, *torch = NULL, *python = "python3", *label = NULL;
    const char *backend = "cpu", *module = getenv("LGD_CUDA_MODULE"), *which = NULL;
    const char *ab = NULL;
    int64_t batch = 8;
    float sigma = 1.0f;
    int threads = 0, reps = 10, profile = 0;
    unsigned fuse_mask = NN_FUSE_ALL;
    double peak_given = 0.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--profile")) {
            profile = 1;
            continue;
        }
        if (!strcmp(a, "--no-fuse")) {
            fuse_mask = 0;
            continue;
        }
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
        else if (!strcmp(a, "--methods"))
            which = v;
        else if (!strcmp(a, "--ab"))
            ab = v;
        else if (!strcmp(a, "--fuse"))
            fuse_mask = (unsigned)strtoul(v, NULL, 0) & NN_FUSE_ALL;
        else if (!strcmp(a, "--peak-gflops"))
            peak_given = atof(v);
        else
            usage();
        i++;
    }
    if (!file || batch <= 0 || reps <= 0 || !(sigma > 0.0f))
        usage();
    if (!label)
        label = file;
    int run[NMETHODS];
    for (int m = 0; m < NMETHODS; m++) {
        run[m] = !which;
        if (which) {
            /* whole names of the comma-separated list */
            size_t len = strlen(methods[m].key);
            for (const char *p = which; (p = strstr(p, methods[m].key)); p += len)
                if ((p == which || p[-1] == ',') && (p[len] == 0 || p[len] == ','))
                    run[m] = 1;
        }
    }
    char load0[64], load1[64];
    loadavg(load0, sizeof load0);

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
    nn_graph *graph = lgd_network_graph(net);
    nn_graph_set_fusion(graph, fuse_mask);
    int64_t D = lgd_network_dim(net);
    /* eps prediction on the file's discrete schedule, or the usual linear one */
    lgd_adapter_options ao = LGD_ADAPTER_OPTIONS_INIT;
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

    const int nthreads = threads > 0 ? threads : 1;
    double core_peak = 0.0;
    char peak_how[256] = "";
    if (profile) {
        int lanes;
        double measured = measured_core_peak(&lanes), mhz = cpuinfo_mhz();
        char nominal[128] = "";
        if (mhz > 0 && lanes > 0)
            snprintf(nominal, sizeof nominal,
                     "; nominal: %.0f MHz (/proc/cpuinfo) x 2 FMA units x %d lanes x 2 = %.1f",
                     mhz, lanes, mhz * 1e-3 * 2 * lanes * 2);
        if (peak_given > 0) {
            core_peak = peak_given / nthreads;
            snprintf(peak_how, sizeof peak_how, "given with --peak-gflops%s", nominal);
        } else {
            core_peak = measured;
            snprintf(peak_how, sizeof peak_how,
                     "measured: independent %d-lane float32 FMAs on one thread, thread CPU "
                     "time, best of 5%s",
                     lanes, nominal);
        }
    }

    if (ab) {
        unsigned masks[16];
        int nm = 0;
        for (const char *p = ab; *p && nm < 16;) {
            char *end;
            masks[nm++] = (unsigned)strtoul(p, &end, 0) & NN_FUSE_ALL;
            p = *end == ',' ? end + 1 : end + strlen(end);
        }
        char la[64], lb[64];
        loadavg(la, sizeof la);
        printf("## %s: fusion A/B, batch %lld, %s\n\n", label, (long long)batch,
               lgd_context_backend_name(ctx));
        for (int m = 0; m < NMETHODS; m++)
            if (run[m])
                run_ab(ctx, graph, model, loss, &methods[m], x, sigma, gt, xh, masks, nm, reps);
        loadavg(lb, sizeof lb);
        printf("Load average (1, 5, 15 min) before: %s, after: %s.\n\n", la, lb);
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

    double ms[NMETHODS], mn[NMETHODS], mx[NMETHODS], cpu[NMETHODS];
    size_t peak[NMETHODS];
    prof_run *pr[NMETHODS] = { NULL };
    for (int m = 0; m < NMETHODS; m++) {
        ms[m] = mn[m] = mx[m] = cpu[m] = NAN;
        peak[m] = 0;
        if (!run[m])
            continue;
        lgd_guidance_options go = LGD_GUIDANCE_OPTIONS_INIT;
        go.kind = methods[m].kind;
        go.n_samples = methods[m].n > 0 ? methods[m].n : 1;
        lgd_guidance *g;
        if ((st = lgd_guidance_create(ctx, model, methods[m].kind == LGD_GUIDANCE_NONE ? NULL : loss,
                                      &go, &g)))
            die(ctx, "guidance", st);
        const int prof_this = profile && (m == 1 || m == 3);
        if (prof_this)
            pr[m] = calloc((size_t)reps, sizeof *pr[m]);
        double *times = malloc((size_t)reps * sizeof *times);
        double *cpus = malloc((size_t)reps * sizeof *cpus);
        for (int r = -2; r < reps; r++) {
            if (prof_this && r >= 0)
                nn_graph_set_profile(graph, &pr[m][r].p);
            double t0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
            if (methods[m].kind == LGD_GUIDANCE_NONE)
                st = lgd_model_denoise(model, x, sigma, NULL, xh);
            else
                st = lgd_guidance_term(g, x, sigma, 0, 0, gt, xh, NULL);
            if (!st)
                st = lgd_context_synchronize(ctx);
            if (st)
                die(ctx, methods[m].name, st);
            double t1 = clock_ms(CLOCK_MONOTONIC), c1 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
            nn_graph_set_profile(graph, NULL);
            if (r >= 0) {
                times[r] = t1 - t0;
                cpus[r] = c1 - c0;
                if (prof_this) {
                    pr[m][r].step_wall = t1 - t0;
                    pr[m][r].step_cpu = c1 - c0;
                }
            }
        }
        ms[m] = median(times, reps);
        mn[m] = times[0];
        mx[m] = times[reps - 1];
        cpu[m] = median(cpus, reps);
        free(times);
        free(cpus);
        lgd_context_memory_usage(ctx, NULL, &peak[m]);
        lgd_guidance_destroy(g);
    }

    double tms[NMETHODS], tmn[NMETHODS], tmx[NMETHODS], tcpu[NMETHODS];
    for (int m = 0; m < NMETHODS; m++)
        tms[m] = tmn[m] = tmx[m] = tcpu[m] = NAN;
    char torch_version[64] = "";
    if (torch) {
        char cmd[4096], list[256] = "";
        for (int m = 0; m < NMETHODS; m++)
            if (run[m])
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                         list[0] ? "," : "", methods[m].torch_key);
        snprintf(cmd, sizeof cmd,
                 "%s %s --file '%s' --batch %lld --sigma %.9g --t %.9g --threads %d --reps %d "
                 "--modes %s --json",
                 python, torch, file, (long long)batch, (double)sigma, (double)t,
                 threads > 0 ? threads : 1, reps, list);
        FILE *p = popen(cmd, "r");
        char out[16384] = "";
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
            const char *end = at ? strchr(at, '}') : NULL;
            if (at && end) {
                /* this mode's flat object only */
                char obj[2048];
                size_t len = (size_t)(end - at) < sizeof obj - 1 ? (size_t)(end - at)
                                                                  : sizeof obj - 1;
                memcpy(obj, at, len);
                obj[len] = 0;
                tms[m] = json_number(obj, "ms_median");
                tmn[m] = json_number(obj, "ms_min");
                tmx[m] = json_number(obj, "ms_max");
                tcpu[m] = json_number(obj, "cpu_ms_median");
            }
        }
        const char *v = strstr(out, "\"torch\"");
        if (v && (v = strchr(v + 7, '"')))
            sscanf(v + 1, "%63[^\"]", torch_version);
    }
    loadavg(load1, sizeof load1);

    char fusions[96];
    if (fuse_mask == NN_FUSE_ALL)
        snprintf(fusions, sizeof fusions, "layers fused");
    else if (!fuse_mask)
        snprintf(fusions, sizeof fusions, "layers unfused (--no-fuse)");
    else
        snprintf(fusions, sizeof fusions, "fusions%s%s%s (--fuse %u)",
                 fuse_mask & NN_FUSE_NORM_ACT ? " norm+act" : "",
                 fuse_mask & NN_FUSE_CHANNEL_ADD ? " channel-add" : "",
                 fuse_mask & NN_FUSE_RESIDUAL ? " residual" : "", fuse_mask);
    printf("## %s: dim %lld, %lld weights, batch %lld, sigma %g (t = %.2f), %s, %s\n\n", label,
           (long long)D, (long long)lgd_network_parameter_count(net), (long long)batch,
           (double)sigma, (double)t, lgd_context_backend_name(ctx), fusions);
    printf("Load average (1, 5, 15 min) before: %s, after: %s. Median of %d steps after 2 "
           "warm-ups; min..max; CPU = process CPU time.\n\n",
           load0, load1, reps);
    printf("| method | liblgd ms | (min..max) | liblgd CPU ms | PyTorch%s%s ms | (min..max) | "
           "PyTorch CPU ms | PyTorch / liblgd | (CPU) | liblgd / DPS | peak MiB |\n",
           torch_version[0] ? " " : "", torch_version);
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int m = 0; m < NMETHODS; m++) {
        if (!run[m])
            continue;
        printf("| %s | %.2f | %.2f..%.2f | %.2f | %.2f | %.2f..%.2f | %.2f | %.2f | %.2f | %.3f "
               "| %.1f |\n",
               methods[m].name, ms[m], mn[m], mx[m], cpu[m], tms[m], tmn[m], tmx[m], tcpu[m],
               tms[m] / ms[m], tcpu[m] / cpu[m], ms[m] / ms[1], (double)peak[m] / 1048576.0);
    }
    printf("\n");
    for (int m = 0; m < NMETHODS; m++)
        if (pr[m]) {
            print_profile(methods[m].name, pr[m], reps, nthreads, core_peak, peak_how);
            free(pr[m]);
        }

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
