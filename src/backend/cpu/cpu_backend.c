/*
 * cpu_backend.c - the CPU tensor backend: host memory, OpenMP loops, CBLAS GEMM
 * (oneDNN's sgemm when built with it, cpu_dnnl.c), Philox random numbers.
 *
 * This is the reference implementation of every operation of backend/backend.h. The
 * kernels of single modules are not here: each module carries its CPU kernel table
 * (models/gmm_kernels_cpu.c, losses/loss_kernels_cpu.c, ...; the network layers are
 * cpu_layers.c and cpu_conv.c). Loops are written so that each output element is
 * computed by one thread in a fixed order: results do not depend on the thread count.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_nn.h"
#include "backend/cpu/cpu_parallel.h"
#include "backend/cpu/cpu_pool.h"
#include "backend/cpu/cpu_normals.h"
#include "core/philox.h"

static const char *cpu_name(lgd_backend *be) { return be->name; }

struct lgd_cpu_pool *lgd_cpu_pool_get(lgd_backend *be)
{
    if (!be->pool_tried) {
        be->pool_tried = 1;
        be->pool = lgd_cpu_pool_create(be->threads);
    }
    return be->pool;
}

static void cpu_destroy(lgd_backend *be)
{
    lgd_cpu_pool_destroy(be->pool);
    lgd_cpu_dnnl_release(be);
    lgd_cpu_nn_release(be);
    free(be);
}

static void *cpu_alloc(lgd_backend *be, size_t bytes)
{
    (void)be;
    if (bytes == 0)
        bytes = 1;
    /* 64-byte alignment for vector loads; size rounded up as aligned_alloc requires */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes)
        return NULL;
    return aligned_alloc(64, rounded);
}

static void cpu_free(lgd_backend *be, void *p)
{
    (void)be;
    free(p);
}

static int cpu_memcpy(lgd_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes)
        memmove(dst, src, bytes);
    return 0;
}

static int cpu_synchronize(lgd_backend *be)
{
    (void)be;
    return 0;
}

static void cpu_fill(lgd_backend *be, float *x, size_t n, float value)
{
    LGD_CPU_FOR(n)
    for (size_t i = 0; i < n; i++)
        x[i] = value;
}

static void cpu_axpby(lgd_backend *be, size_t n, float a, const float *x, float b, float *y)
{
    if (b == 0.0f) {
        LGD_CPU_FOR(n)
        for (size_t i = 0; i < n; i++)
            y[i] = a * x[i];
    } else {
        LGD_CPU_FOR(n)
        for (size_t i = 0; i < n; i++)
            y[i] = a * x[i] + b * y[i];
    }
}

static void cpu_axpby_rows(lgd_backend *be, size_t rows, size_t cols, const float *a,
                           size_t a_stride, const float *x, float b, float *y)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        float ar = a[r * a_stride];
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        if (b == 0.0f)
            for (size_t j = 0; j < cols; j++)
                yr[j] = ar * xr[j];
        else
            for (size_t j = 0; j < cols; j++)
                yr[j] = ar * xr[j] + b * yr[j];
    }
}

static void cpu_sub_row(lgd_backend *be, size_t rows, size_t cols, const float *x,
                        const float *row, float *out)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++)
            out[r * cols + j] = x[r * cols + j] - row[j];
}

static void cpu_broadcast_axpy(lgd_backend *be, size_t rows, size_t repeat, size_t cols,
                               const float *x, float a, const float *y, float *out)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + (r / repeat) * cols;
        const float *yr = y + r * cols;
        float *o = out + r * cols;
        for (size_t j = 0; j < cols; j++)
            o[j] = xr[j] + a * yr[j];
    }
}

static void cpu_inv_sqrt_scale(lgd_backend *be, size_t n, float w, const float *in, float floor,
                               float *out)
{
    LGD_CPU_FOR(n)
    for (size_t i = 0; i < n; i++)
        out[i] = w / sqrtf(in[i] > floor ? in[i] : floor);
}

static void cpu_row_dot(lgd_backend *be, size_t rows, size_t cols, const float *x,
                                const float *y, float *out, size_t out_stride)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        double acc = 0.0;
        for (size_t j = 0; j < cols; j++)
            acc += (double)x[r * cols + j] * (double)y[r * cols + j];
        out[r * out_stride] = (float)acc;
    }
}


static void cpu_softmax_rows(lgd_backend *be, size_t rows, size_t cols, float *x)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * cols;
        float m = -INFINITY;
        for (size_t j = 0; j < cols; j++)
            m = xr[j] > m ? xr[j] : m;
        double s = 0.0;
        for (size_t j = 0; j < cols; j++) {
            xr[j] = expf(xr[j] - m);
            s += xr[j];
        }
        float inv = (float)(1.0 / s);
        for (size_t j = 0; j < cols; j++)
            xr[j] *= inv;
    }
}

static void cpu_softmax_rows_backward(lgd_backend *be, size_t rows, size_t K, const float *p,
                                      const float *d, float scale, float *out)
{
    LGD_CPU_FOR(rows * K * 4)
    for (size_t r = 0; r < rows; r++) {
        const float *pr = p + r * K, *dr = d + r * K;
        double mean = 0.0;
        for (size_t k = 0; k < K; k++)
            mean += (double)pr[k] * dr[k];
        for (size_t k = 0; k < K; k++)
            out[r * K + k] = (float)(scale * pr[k] * ((double)dr[k] - mean));
    }
}

static void cpu_logsumexp_rows(lgd_backend *be, size_t rows, size_t cols, const float *x,
                               float *out)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float m = -INFINITY;
        for (size_t j = 0; j < cols; j++)
            m = xr[j] > m ? xr[j] : m;
        double s = 0.0;
        for (size_t j = 0; j < cols; j++)
            s += exp((double)xr[j] - (double)m);
        out[r] = m + (float)log(s);
    }
}

static int cpu_all_finite(lgd_backend *be, const float *x, size_t n)
{
    int ok = 1;
#ifdef _OPENMP
#pragma omp parallel for num_threads(be->threads) if (n >= LGD_CPU_PAR_MIN_WORK && !lgd_cpu_contended(be)) reduction(&& : ok)
#else
    (void)be;
#endif
    for (size_t i = 0; i < n; i++)
        ok = ok && isfinite(x[i]);
    return ok;
}

static void cpu_finite_flag(lgd_backend *be, const float *x, size_t n, float *flag)
{
    if (!cpu_all_finite(be, x, n))
        *flag = 1.0f;
}

/* Groups [g0, g1) of the (row, group) units of a normal stream (cpu_normals.h), compiled
 * for AVX-512 / AVX2 / baseline with the same bits. */
LGD_CPU_CLONES static void normal_units(const lgd_rng_stream *s, uint64_t f0, uint64_t n,
                                        uint64_t groups, size_t cols, const float *mean,
                                        float scale, float *out, size_t u0, size_t u1)
{
    for (size_t u = u0; u < u1; u++) {
        size_t r = u / groups;
        lgd_cpu_normal_stream_group(s, r, f0, n, u % groups, cols, mean ? mean + r * cols : NULL,
                                    scale, out + r * n);
    }
}

/* normals of the flat per-row stream (see backend.h), or mean + scale * normals */
static void normal_stream(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                          size_t cols, const float *mean, float scale, float *out)
{
    uint64_t f0 = (uint64_t)s->first_draw * cols, n = (uint64_t)draws * cols;
    uint64_t groups = lgd_cpu_normal_groups(f0, n);
    size_t units = rows * (size_t)groups, per = 64; /* units per call of the clone */
    size_t calls = (units + per - 1) / per;
    LGD_CPU_FOR(rows * n)
    for (size_t c = 0; c < calls; c++) {
        size_t u0 = c * per, u1 = u0 + per < units ? u0 + per : units;
        normal_units(s, f0, n, groups, cols, mean, scale, out, u0, u1);
    }
}

static void cpu_normal(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                       size_t cols, float *out)
{
    normal_stream(be, s, rows, draws, cols, NULL, 0.0f, out);
}

static void cpu_normal_around(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                         size_t cols, const float *mean, float scale, float *out)
{
    if (scale != 0.0f) {
        normal_stream(be, s, rows, draws, cols, mean, scale, out);
        return;
    }
    LGD_CPU_FOR(rows * draws * cols)
    for (size_t rj = 0; rj < rows * draws; rj++)
        memcpy(out + rj * cols, mean + (rj / draws) * cols, cols * sizeof(float));
}

static void cpu_uniform(lgd_backend *be, const lgd_rng_stream *s, size_t rows, size_t draws,
                        float *out)
{
    uint32_t tag = lgd_rng_tag(s->purpose, s->step);
    size_t n = rows * draws;
    LGD_CPU_FOR(n * 16)
    for (size_t rj = 0; rj < n; rj++) {
        size_t r = rj / draws, j = rj % draws;
        lgd_philox_block b =
            lgd_philox4x32_10(0u, (uint32_t)(s->first_row + r), (uint32_t)(s->first_draw + j),
                              tag, (uint32_t)s->seed, (uint32_t)(s->seed >> 32));
        out[rj] = lgd_u32_to_uniform_open(b.v[0]);
    }
}

static void cpu_categorical(lgd_backend *be, size_t rows, size_t draws, size_t K,
                            const float *prob, const float *u, int32_t *idx)
{
    LGD_CPU_FOR(rows * draws * K)
    for (size_t r = 0; r < rows; r++) {
        const float *p = prob + r * K;
        for (size_t j = 0; j < draws; j++) {
            float target = u[r * draws + j], c = 0.0f;
            int32_t k = (int32_t)K - 1;
            for (size_t i = 0; i < K; i++) {
                c += p[i];
                if (c > target) {
                    k = (int32_t)i;
                    break;
                }
            }
            idx[r * draws + j] = k;
        }
    }
}

static void cpu_select_rows(lgd_backend *be, size_t n, size_t cols, const int32_t *idx,
                            int32_t k, const float *src, float *dst)
{
    LGD_CPU_FOR(n * cols)
    for (size_t r = 0; r < n; r++)
        if (idx[r] == k)
            memcpy(dst + r * cols, src + r * cols, cols * sizeof(float));
}

static const lgd_backend_ops cpu_ops = {
    .abi_version = LGD_BACKEND_ABI_VERSION,
    .name = cpu_name,
    .host_memory = 1,
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .copy = cpu_memcpy,
    .synchronize = cpu_synchronize,
    .native_stream = NULL,
    .last_error = NULL,
    .fill = cpu_fill,
    .axpby = cpu_axpby,
    .axpby_rows = cpu_axpby_rows,
    .sub_row = cpu_sub_row,
    .broadcast_axpy = cpu_broadcast_axpy,
    .inv_sqrt_scale = cpu_inv_sqrt_scale,
    .copy_rows = lgd_cpu_copy_rows,
    .transpose = lgd_cpu_transpose,
    .row_dot = cpu_row_dot,
    .softmax_rows = cpu_softmax_rows,
    .softmax_rows_backward = cpu_softmax_rows_backward,
    .logsumexp_rows = cpu_logsumexp_rows,
    .all_finite = cpu_all_finite,
    .finite_flag = cpu_finite_flag,
    .gemm = lgd_cpu_sgemm,
    .gemm_batched = lgd_cpu_gemm_batched,
    .normal = cpu_normal,
    .normal_around = cpu_normal_around,
    .uniform = cpu_uniform,
    .categorical = cpu_categorical,
    .select_rows = cpu_select_rows,
    .kernels = NULL, /* modules carry the CPU's kernel tables (core/kernels.h) */
};


#ifdef _OPENMP
/* The default thread count: OpenMP's (OMP_NUM_THREADS when set, else the CPUs of the
 * affinity mask), capped, when OMP_NUM_THREADS is not set, by the CPU quota of the
 * process's cgroup (cgroup v2 cpu.max "quota period", rounded up): in a container
 * limited to 2 CPUs of a 64-core machine, 64 threads would share 2 CPUs' time. */
static int default_threads(void)
{
    int n = omp_get_max_threads();
    if (getenv("OMP_NUM_THREADS"))
        return n;
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (!f)
        return n;
    char quota[32] = "";
    long long period = 0;
    if (fscanf(f, "%31s %lld", quota, &period) == 2 && strcmp(quota, "max") != 0 &&
        period > 0) {
        long long q = atoll(quota);
        long long cpus = q > 0 ? (q + period - 1) / period : 0;
        if (cpus >= 1 && cpus < n)
            n = (int)cpus;
    }
    fclose(f);
    return n;
}
#endif

int lgd_cpu_backend_open(int threads, lgd_backend **out_be, const lgd_backend_ops **out_ops)
{
    lgd_backend *be = calloc(1, sizeof *be);
    if (!be)
        return -1;
#ifdef _OPENMP
    be->threads = threads > 0 ? threads : default_threads();
#else
    be->threads = 1;
    (void)threads;
#endif
    lgd_cpu_contention_init(be); /* from LGD_CPU_ADAPTIVE */
    lgd_cpu_dnnl_init(be);       /* be->onednn, from LGD_CPU_ONEDNN */
    snprintf(be->name, sizeof be->name, "cpu (openblas%s, %d threads)",
             be->onednn ? " + onednn" : "", be->threads);
    *out_be = be;
    *out_ops = &cpu_ops;
    return 0;
}
