/*
 * mc_kernels_cpu.c - the Monte Carlo reductions' kernel table on the CPU
 * (mc_kernels.h).
 */
#include <math.h>
#include <stddef.h>

#include "backend/cpu/cpu_parallel.h"
#include "sampling/mc_kernels.h"

static void cpu_mc_reset(lgd_backend *be, size_t rows, size_t cols, lgd_mc_state *st)
{
    for (size_t r = 0; r < rows; r++) {
        st->max[r] = -INFINITY;
        st->sum[r] = 0.0f;
        st->sum2[r] = 0.0f;
        st->wloss[r] = 0.0f;
        st->lsum[r] = 0.0f;
    }
    float *vec = st->vec;
    size_t n = rows * cols;
    LGD_CPU_FOR(n)
    for (size_t i = 0; i < n; i++)
        vec[i] = 0.0f;
}

static void cpu_mc_accumulate(lgd_backend *be, size_t rows, size_t draws, size_t cols,
                              const float *loss, const float *vec, lgd_mc_state *st)
{
    LGD_CPU_FOR(rows * draws * cols)
    for (size_t r = 0; r < rows; r++) {
        const float *l = loss + r * draws;
        float m = st->max[r];
        for (size_t j = 0; j < draws; j++)
            m = -l[j] > m ? -l[j] : m;
        /* rescale the running sums to the new max */
        float scale = (st->max[r] == -INFINITY) ? 0.0f : expf(st->max[r] - m);
        float sum = st->sum[r] * scale;
        float sum2 = st->sum2[r] * scale * scale;
        float wloss = st->wloss[r] * scale;
        float lsum = st->lsum[r];
        float *acc = st->vec + r * cols;
        if (scale != 1.0f)
            for (size_t e = 0; e < cols; e++)
                acc[e] *= scale;
        for (size_t j = 0; j < draws; j++) {
            float w = expf(-l[j] - m);
            sum += w;
            sum2 += w * w;
            wloss += w * l[j];
            lsum += l[j];
            const float *v = vec + (r * draws + j) * cols;
            for (size_t e = 0; e < cols; e++)
                acc[e] += w * v[e];
        }
        st->max[r] = m;
        st->sum[r] = sum;
        st->sum2[r] = sum2;
        st->wloss[r] = wloss;
        st->lsum[r] = lsum;
    }
}

static void cpu_mc_finish(lgd_backend *be, size_t rows, size_t cols, lgd_mc_state *st,
                          float *out, float *ess)
{
    LGD_CPU_FOR(rows * cols)
    for (size_t r = 0; r < rows; r++) {
        float inv = 1.0f / st->sum[r];
        for (size_t e = 0; e < cols; e++)
            out[r * cols + e] = st->vec[r * cols + e] * inv;
        ess[r] = st->sum[r] * st->sum[r] / st->sum2[r];
        st->wloss[r] *= inv;
    }
}

const lgd_mc_kernels lgd_mc_kernels_cpu = {
    .reset = cpu_mc_reset,
    .accumulate = cpu_mc_accumulate,
    .finish = cpu_mc_finish,
};

const lgd_kernel_table lgd_mc_kernel_table = { "mc", LGD_MC_KERNELS_VERSION,
                                               &lgd_mc_kernels_cpu };
